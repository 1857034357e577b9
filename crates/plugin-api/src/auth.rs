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

/// Users and grants. A missing user or grant is `NotFound`, a duplicate `AlreadyExists`.
#[async_trait]
pub trait AuthStore: Send + Sync + 'static {
    /// Creates a user; `AlreadyExists` "User '<name>' already exists." when the name is taken.
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
}
