//! The users and permission grants of the basic-auth app (MLflow's `--app-name basic-auth`).
//!
//! An [`AuthStore`] keeps users (name, password hash, admin flag) and per-user grants
//! `(user, resource type, resource id, permission)`. It stores what the host gives it: the
//! host hashes passwords and checks permission names; the store only enforces uniqueness and
//! reports missing rows. The SQLite store implements it in the same database file as the
//! tracking store (its own migration); a store for another database implements it the same way.

use crate::Result;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthUser {
    /// The store's numeric id.
    pub id: i64,
    /// The login name (unique).
    pub username: String,
    /// The password hash as the host wrote it (a PHC string or a werkzeug hash).
    pub password_hash: String,
    /// Whether the user bypasses every permission check.
    pub is_admin: bool,
}

/// One grant of `permission` on a resource to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The user's login name.
    pub username: String,
    /// `experiment` or `registered_model`.
    pub resource_type: String,
    /// The experiment id or the registered model's name.
    pub resource_id: String,
    /// `READ`, `USE`, `EDIT`, `MANAGE`, `NO_PERMISSIONS` or `DENY`.
    pub permission: String,
}

/// A role: a named set of permissions assigned to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The store's numeric id.
    pub id: i64,
    /// The name (unique).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
}

/// One permission of a role on the resources of a type whose id matches a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolePermission {
    /// The store's numeric id.
    pub id: i64,
    /// The role.
    pub role_id: i64,
    /// `experiment` or `registered_model`.
    pub resource_type: String,
    /// A resource id, or `*` for every resource of the type.
    pub resource_pattern: String,
    /// `READ`, `USE`, `EDIT`, `MANAGE` or `DENY`.
    pub permission: String,
}

/// A role assigned to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    /// The store's numeric id.
    pub id: i64,
    /// The user's id.
    pub user_id: i64,
    /// The role's id.
    pub role_id: i64,
}

/// Users, grants and roles. A missing user, grant, role, role permission or assignment is
/// `NotFound`, a duplicate `AlreadyExists`.
#[async_trait]
pub trait AuthStore: Send + Sync + 'static {
    /// Creates a user; `AlreadyExists` `User '<name>' already exists.` when the name is taken.
    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        is_admin: bool,
    ) -> Result<AuthUser>;

    /// The user named `username`, if any.
    async fn get_user(&self, username: &str) -> Result<Option<AuthUser>>;

    /// Every user, by id.
    async fn list_users(&self) -> Result<Vec<AuthUser>>;

    /// Whether any user exists (the admin is created on first start when none does).
    async fn has_users(&self) -> Result<bool>;

    /// Replaces the user's password hash.
    async fn update_password(&self, username: &str, password_hash: &str) -> Result<()>;

    /// Sets the user's admin flag.
    async fn update_admin(&self, username: &str, is_admin: bool) -> Result<()>;

    /// Deletes the user and their grants.
    async fn delete_user(&self, username: &str) -> Result<()>;

    /// Adds a grant; `AlreadyExists` when the user already has one on the resource.
    async fn create_grant(&self, grant: &Grant) -> Result<()>;

    /// Changes the permission of an existing grant.
    async fn update_grant(&self, grant: &Grant) -> Result<()>;

    /// Removes the user's grant on the resource.
    async fn delete_grant(
        &self,
        username: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<()>;

    /// The user's grant on the resource, if any.
    async fn get_grant(
        &self,
        username: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<Grant>>;

    /// Every grant of the user, by resource type then id.
    async fn list_grants(&self, username: &str) -> Result<Vec<Grant>>;

    /// Removes every grant on the resource (it was deleted).
    async fn delete_resource_grants(&self, resource_type: &str, resource_id: &str) -> Result<()>;

    /// Moves every grant on a resource to its new id (a registered model was renamed).
    async fn rename_resource(&self, resource_type: &str, old_id: &str, new_id: &str) -> Result<()>;

    /// Creates a role; `AlreadyExists` when the name is taken.
    async fn create_role(&self, name: &str, description: Option<&str>) -> Result<Role>;

    /// The role with `id`.
    async fn get_role(&self, id: i64) -> Result<Role>;

    /// Every role, by id.
    async fn list_roles(&self) -> Result<Vec<Role>>;

    /// Renames a role or changes its description (only what is given).
    async fn update_role(
        &self,
        id: i64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Role>;

    /// Deletes a role with its permissions and assignments.
    async fn delete_role(&self, id: i64) -> Result<()>;

    /// Adds a permission to a role; `AlreadyExists` for a second one on the same type and pattern.
    async fn add_role_permission(
        &self,
        role_id: i64,
        resource_type: &str,
        resource_pattern: &str,
        permission: &str,
    ) -> Result<RolePermission>;

    /// Removes a role permission.
    async fn remove_role_permission(&self, id: i64) -> Result<()>;

    /// Changes a role permission's permission.
    async fn update_role_permission(&self, id: i64, permission: &str) -> Result<RolePermission>;

    /// The permissions of a role, by id.
    async fn list_role_permissions(&self, role_id: i64) -> Result<Vec<RolePermission>>;

    /// Assigns a role to a user; `AlreadyExists` when it is assigned already.
    async fn assign_role(&self, username: &str, role_id: i64) -> Result<RoleAssignment>;

    /// Takes a role from a user.
    async fn unassign_role(&self, username: &str, role_id: i64) -> Result<()>;

    /// The roles of a user, by id.
    async fn list_user_roles(&self, username: &str) -> Result<Vec<Role>>;

    /// The assignments of a role, by id.
    async fn list_role_users(&self, role_id: i64) -> Result<Vec<RoleAssignment>>;

    /// Every permission of every role of the user, on resources of `resource_type`.
    async fn user_role_permissions(
        &self,
        username: &str,
        resource_type: &str,
    ) -> Result<Vec<RolePermission>>;
}
