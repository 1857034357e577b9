//! [`AuthStore`] on the same database file: the tables `auth_users` and `auth_grants`
//! (schema version 3).

use crate::error::{StoreError, not_found};
use crate::store::SqliteStore;
use cairn_plugin_api::auth::{AuthStore, AuthUser, Grant, Role, RoleAssignment, RolePermission};
use cairn_plugin_api::{Error, Result};
use rusqlite::{OptionalExtension, Row, Transaction, params};

const USER_COLUMNS: &str = "id, username, password_hash, is_admin";

fn user_from(row: &Row<'_>) -> rusqlite::Result<AuthUser> {
    Ok(AuthUser {
        id: row.get(0)?,
        username: row.get(1)?,
        password_hash: row.get(2)?,
        is_admin: row.get(3)?,
    })
}

fn user_id(tx: &Transaction<'_>, username: &str) -> Result<i64, StoreError> {
    tx.prepare_cached("SELECT id FROM auth_users WHERE username = ?1")?
        .query_row([username], |r| r.get(0))
        .optional()?
        .ok_or_else(|| not_found(format!("User with username={username} not found")))
}

fn role_from(row: &Row<'_>) -> rusqlite::Result<Role> {
    Ok(Role {
        id: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
    })
}

fn role_permission_from(row: &Row<'_>) -> rusqlite::Result<RolePermission> {
    Ok(RolePermission {
        id: row.get(0)?,
        role_id: row.get(1)?,
        resource_type: row.get(2)?,
        resource_pattern: row.get(3)?,
        permission: row.get(4)?,
    })
}

const ROLE_PERMISSION_COLUMNS: &str = "id, role_id, resource_type, resource_pattern, permission";

fn role(tx: &Transaction<'_>, id: i64) -> Result<Role, StoreError> {
    tx.prepare_cached("SELECT id, name, description FROM auth_roles WHERE id = ?1")?
        .query_row([id], role_from)
        .optional()?
        .ok_or_else(|| not_found(format!("Role with id={id} not found")))
}

fn role_permission(tx: &Transaction<'_>, id: i64) -> Result<RolePermission, StoreError> {
    tx.prepare_cached(&format!(
        "SELECT {ROLE_PERMISSION_COLUMNS} FROM auth_role_permissions WHERE id = ?1"
    ))?
    .query_row([id], role_permission_from)
    .optional()?
    .ok_or_else(|| not_found(format!("Role permission with id={id} not found")))
}

fn already_exists(message: String) -> StoreError {
    StoreError::Api(Error::already_exists(message))
}

fn grant_not_found(g: &str, t: &str, id: &str) -> StoreError {
    not_found(format!(
        "Permission on {t} '{id}' for user '{g}' does not exist"
    ))
}

#[cairn_plugin_api::async_trait]
impl AuthStore for SqliteStore {
    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        is_admin: bool,
    ) -> Result<AuthUser> {
        let (username, hash) = (username.to_owned(), password_hash.to_owned());
        self.write(move |tx, _| {
            let taken = tx
                .prepare_cached("SELECT 1 FROM auth_users WHERE username = ?1")?
                .exists([&username])?;
            if taken {
                return Err(StoreError::Api(Error::already_exists(format!(
                    "User '{username}' already exists."
                ))));
            }
            tx.prepare_cached(
                "INSERT INTO auth_users (username, password_hash, is_admin) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![username, hash, is_admin])?;
            Ok(AuthUser {
                id: tx.last_insert_rowid(),
                username,
                password_hash: hash,
                is_admin,
            })
        })
        .await
    }

    async fn get_user(&self, username: &str) -> Result<Option<AuthUser>> {
        let username = username.to_owned();
        self.read(move |tx| {
            Ok(tx
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM auth_users WHERE username = ?1"
                ))?
                .query_row([&username], user_from)
                .optional()?)
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<AuthUser>> {
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM auth_users ORDER BY id"
            ))?;
            let users = stmt
                .query_map([], user_from)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(users)
        })
        .await
    }

    async fn has_users(&self) -> Result<bool> {
        self.read(move |tx| Ok(tx.prepare_cached("SELECT 1 FROM auth_users")?.exists([])?))
            .await
    }

    async fn update_password(&self, username: &str, password_hash: &str) -> Result<()> {
        let (username, hash) = (username.to_owned(), password_hash.to_owned());
        self.write(move |tx, _| {
            let id = user_id(tx, &username)?;
            tx.prepare_cached("UPDATE auth_users SET password_hash = ?1 WHERE id = ?2")?
                .execute(params![hash, id])?;
            Ok(())
        })
        .await
    }

    async fn update_admin(&self, username: &str, is_admin: bool) -> Result<()> {
        let username = username.to_owned();
        self.write(move |tx, _| {
            let id = user_id(tx, &username)?;
            tx.prepare_cached("UPDATE auth_users SET is_admin = ?1 WHERE id = ?2")?
                .execute(params![is_admin, id])?;
            Ok(())
        })
        .await
    }

    async fn delete_user(&self, username: &str) -> Result<()> {
        let username = username.to_owned();
        self.write(move |tx, _| {
            let id = user_id(tx, &username)?;
            // Explicit, so the result does not depend on `foreign_keys` being on.
            tx.prepare_cached("DELETE FROM auth_grants WHERE user_id = ?1")?
                .execute([id])?;
            tx.prepare_cached("DELETE FROM auth_role_users WHERE user_id = ?1")?
                .execute([id])?;
            tx.prepare_cached("DELETE FROM auth_users WHERE id = ?1")?
                .execute([id])?;
            Ok(())
        })
        .await
    }

    async fn create_grant(&self, grant: &Grant) -> Result<()> {
        let g = grant.clone();
        self.write(move |tx, _| {
            let id = user_id(tx, &g.username)?;
            let inserted = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO auth_grants \
                     (user_id, resource_type, resource_id, permission) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![id, g.resource_type, g.resource_id, g.permission])?;
            if inserted == 0 {
                return Err(StoreError::Api(Error::already_exists(format!(
                    "Permission on {} '{}' for user '{}' already exists",
                    g.resource_type, g.resource_id, g.username
                ))));
            }
            Ok(())
        })
        .await
    }

    async fn update_grant(&self, grant: &Grant) -> Result<()> {
        let g = grant.clone();
        self.write(move |tx, _| {
            let id = user_id(tx, &g.username)?;
            let changed = tx
                .prepare_cached(
                    "UPDATE auth_grants SET permission = ?4 \
                     WHERE user_id = ?1 AND resource_type = ?2 AND resource_id = ?3",
                )?
                .execute(params![id, g.resource_type, g.resource_id, g.permission])?;
            if changed == 0 {
                return Err(grant_not_found(
                    &g.username,
                    &g.resource_type,
                    &g.resource_id,
                ));
            }
            Ok(())
        })
        .await
    }

    async fn delete_grant(
        &self,
        username: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<()> {
        let (u, t, r) = (
            username.to_owned(),
            resource_type.to_owned(),
            resource_id.to_owned(),
        );
        self.write(move |tx, _| {
            let id = user_id(tx, &u)?;
            let changed = tx
                .prepare_cached(
                    "DELETE FROM auth_grants \
                     WHERE user_id = ?1 AND resource_type = ?2 AND resource_id = ?3",
                )?
                .execute(params![id, t, r])?;
            if changed == 0 {
                return Err(grant_not_found(&u, &t, &r));
            }
            Ok(())
        })
        .await
    }

    async fn get_grant(
        &self,
        username: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<Grant>> {
        let (u, t, r) = (
            username.to_owned(),
            resource_type.to_owned(),
            resource_id.to_owned(),
        );
        self.read(move |tx| {
            let permission: Option<String> = tx
                .prepare_cached(
                    "SELECT g.permission FROM auth_grants g JOIN auth_users u ON u.id = g.user_id \
                     WHERE u.username = ?1 AND g.resource_type = ?2 AND g.resource_id = ?3",
                )?
                .query_row(params![u, t, r], |row| row.get(0))
                .optional()?;
            Ok(permission.map(|permission| Grant {
                username: u,
                resource_type: t,
                resource_id: r,
                permission,
            }))
        })
        .await
    }

    async fn list_grants(&self, username: &str) -> Result<Vec<Grant>> {
        let username = username.to_owned();
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT g.resource_type, g.resource_id, g.permission \
                 FROM auth_grants g JOIN auth_users u ON u.id = g.user_id \
                 WHERE u.username = ?1 ORDER BY g.resource_type, g.resource_id",
            )?;
            let grants = stmt
                .query_map([&username], |row| {
                    Ok(Grant {
                        username: username.clone(),
                        resource_type: row.get(0)?,
                        resource_id: row.get(1)?,
                        permission: row.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(grants)
        })
        .await
    }

    async fn delete_resource_grants(&self, resource_type: &str, resource_id: &str) -> Result<()> {
        let (t, r) = (resource_type.to_owned(), resource_id.to_owned());
        self.write(move |tx, _| {
            tx.prepare_cached(
                "DELETE FROM auth_grants WHERE resource_type = ?1 AND resource_id = ?2",
            )?
            .execute(params![t, r])?;
            Ok(())
        })
        .await
    }

    async fn rename_resource(&self, resource_type: &str, old_id: &str, new_id: &str) -> Result<()> {
        let (t, old, new) = (
            resource_type.to_owned(),
            old_id.to_owned(),
            new_id.to_owned(),
        );
        self.write(move |tx, _| {
            tx.prepare_cached(
                "UPDATE auth_grants SET resource_id = ?3 WHERE resource_type = ?1 AND resource_id = ?2",
            )?
            .execute(params![t, old, new])?;
            Ok(())
        })
        .await
    }

    async fn create_role(&self, name: &str, description: Option<&str>) -> Result<Role> {
        let (name, description) = (name.to_owned(), description.map(str::to_owned));
        self.write(move |tx, _| {
            let inserted = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO auth_roles (name, description) VALUES (?1, ?2)",
                )?
                .execute(params![name, description])?;
            if inserted == 0 {
                return Err(already_exists(format!("Role '{name}' already exists.")));
            }
            Ok(Role {
                id: tx.last_insert_rowid(),
                name,
                description,
            })
        })
        .await
    }

    async fn get_role(&self, id: i64) -> Result<Role> {
        self.read(move |tx| role(tx, id)).await
    }

    async fn list_roles(&self) -> Result<Vec<Role>> {
        self.read(move |tx| {
            let mut stmt =
                tx.prepare_cached("SELECT id, name, description FROM auth_roles ORDER BY id")?;
            let roles = stmt
                .query_map([], role_from)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(roles)
        })
        .await
    }

    async fn update_role(
        &self,
        id: i64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Role> {
        let (name, description) = (name.map(str::to_owned), description.map(str::to_owned));
        self.write(move |tx, _| {
            let mut r = role(tx, id)?;
            if let Some(name) = name {
                let taken = tx
                    .prepare_cached("SELECT 1 FROM auth_roles WHERE name = ?1 AND id != ?2")?
                    .exists(params![name, id])?;
                if taken {
                    return Err(already_exists(format!("Role '{name}' already exists.")));
                }
                r.name = name;
            }
            if description.is_some() {
                r.description = description;
            }
            tx.prepare_cached("UPDATE auth_roles SET name = ?1, description = ?2 WHERE id = ?3")?
                .execute(params![r.name, r.description, id])?;
            Ok(r)
        })
        .await
    }

    async fn delete_role(&self, id: i64) -> Result<()> {
        self.write(move |tx, _| {
            role(tx, id)?;
            // Explicit, so the result does not depend on `foreign_keys` being on.
            tx.prepare_cached("DELETE FROM auth_role_permissions WHERE role_id = ?1")?
                .execute([id])?;
            tx.prepare_cached("DELETE FROM auth_role_users WHERE role_id = ?1")?
                .execute([id])?;
            tx.prepare_cached("DELETE FROM auth_roles WHERE id = ?1")?
                .execute([id])?;
            Ok(())
        })
        .await
    }

    async fn add_role_permission(
        &self,
        role_id: i64,
        resource_type: &str,
        resource_pattern: &str,
        permission: &str,
    ) -> Result<RolePermission> {
        let (t, p, perm) = (
            resource_type.to_owned(),
            resource_pattern.to_owned(),
            permission.to_owned(),
        );
        self.write(move |tx, _| {
            role(tx, role_id)?;
            let inserted = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO auth_role_permissions \
                     (role_id, resource_type, resource_pattern, permission) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![role_id, t, p, perm])?;
            if inserted == 0 {
                return Err(already_exists(format!(
                    "Role {role_id} already has a permission on {t} '{p}'"
                )));
            }
            Ok(RolePermission {
                id: tx.last_insert_rowid(),
                role_id,
                resource_type: t,
                resource_pattern: p,
                permission: perm,
            })
        })
        .await
    }

    async fn remove_role_permission(&self, id: i64) -> Result<()> {
        self.write(move |tx, _| {
            role_permission(tx, id)?;
            tx.prepare_cached("DELETE FROM auth_role_permissions WHERE id = ?1")?
                .execute([id])?;
            Ok(())
        })
        .await
    }

    async fn update_role_permission(&self, id: i64, permission: &str) -> Result<RolePermission> {
        let permission = permission.to_owned();
        self.write(move |tx, _| {
            let mut p = role_permission(tx, id)?;
            tx.prepare_cached("UPDATE auth_role_permissions SET permission = ?1 WHERE id = ?2")?
                .execute(params![permission, id])?;
            p.permission = permission;
            Ok(p)
        })
        .await
    }

    async fn list_role_permissions(&self, role_id: i64) -> Result<Vec<RolePermission>> {
        self.read(move |tx| {
            role(tx, role_id)?;
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {ROLE_PERMISSION_COLUMNS} FROM auth_role_permissions \
                 WHERE role_id = ?1 ORDER BY id"
            ))?;
            let items = stmt
                .query_map([role_id], role_permission_from)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(items)
        })
        .await
    }

    async fn assign_role(&self, username: &str, role_id: i64) -> Result<RoleAssignment> {
        let username = username.to_owned();
        self.write(move |tx, _| {
            let user_id = user_id(tx, &username)?;
            role(tx, role_id)?;
            let inserted = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO auth_role_users (role_id, user_id) VALUES (?1, ?2)",
                )?
                .execute(params![role_id, user_id])?;
            if inserted == 0 {
                return Err(already_exists(format!(
                    "Role {role_id} is already assigned to user '{username}'"
                )));
            }
            Ok(RoleAssignment {
                id: tx.last_insert_rowid(),
                user_id,
                role_id,
            })
        })
        .await
    }

    async fn unassign_role(&self, username: &str, role_id: i64) -> Result<()> {
        let username = username.to_owned();
        self.write(move |tx, _| {
            let user_id = user_id(tx, &username)?;
            let changed = tx
                .prepare_cached("DELETE FROM auth_role_users WHERE role_id = ?1 AND user_id = ?2")?
                .execute(params![role_id, user_id])?;
            if changed == 0 {
                return Err(not_found(format!(
                    "Role {role_id} is not assigned to user '{username}'"
                )));
            }
            Ok(())
        })
        .await
    }

    async fn list_user_roles(&self, username: &str) -> Result<Vec<Role>> {
        let username = username.to_owned();
        self.read(move |tx| {
            let user_id = user_id(tx, &username)?;
            let mut stmt = tx.prepare_cached(
                "SELECT r.id, r.name, r.description FROM auth_roles r \
                 JOIN auth_role_users a ON a.role_id = r.id WHERE a.user_id = ?1 ORDER BY r.id",
            )?;
            let roles = stmt
                .query_map([user_id], role_from)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(roles)
        })
        .await
    }

    async fn list_role_users(&self, role_id: i64) -> Result<Vec<RoleAssignment>> {
        self.read(move |tx| {
            role(tx, role_id)?;
            let mut stmt = tx.prepare_cached(
                "SELECT id, user_id, role_id FROM auth_role_users WHERE role_id = ?1 ORDER BY id",
            )?;
            let items = stmt
                .query_map([role_id], |row| {
                    Ok(RoleAssignment {
                        id: row.get(0)?,
                        user_id: row.get(1)?,
                        role_id: row.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(items)
        })
        .await
    }

    async fn user_role_permissions(
        &self,
        username: &str,
        resource_type: &str,
    ) -> Result<Vec<RolePermission>> {
        let (username, t) = (username.to_owned(), resource_type.to_owned());
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT p.id, p.role_id, p.resource_type, p.resource_pattern, p.permission \
                 FROM auth_role_permissions p \
                 JOIN auth_role_users a ON a.role_id = p.role_id \
                 JOIN auth_users u ON u.id = a.user_id \
                 WHERE u.username = ?1 AND p.resource_type = ?2 ORDER BY p.id",
            )?;
            let items = stmt
                .query_map(params![username, t], role_permission_from)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(items)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(user: &str, id: &str, permission: &str) -> Grant {
        Grant {
            username: user.into(),
            resource_type: "experiment".into(),
            resource_id: id.into(),
            permission: permission.into(),
        }
    }

    #[test]
    fn users_and_grants_round_trip_with_mlflow_errors() {
        futures_executor::block_on(round_trip());
    }

    async fn round_trip() {
        let store = crate::open("sqlite://", None).unwrap();
        assert!(!store.has_users().await.unwrap());
        let u = store.create_user("alice", "h1", false).await.unwrap();
        assert_eq!((u.username.as_str(), u.is_admin), ("alice", false));
        let e = store.create_user("alice", "h2", true).await.unwrap_err();
        assert_eq!(e.kind, cairn_plugin_api::ErrorKind::AlreadyExists);
        assert!(store.has_users().await.unwrap());
        store.update_password("alice", "h3").await.unwrap();
        store.update_admin("alice", true).await.unwrap();
        let got = store.get_user("alice").await.unwrap().unwrap();
        assert_eq!((got.password_hash.as_str(), got.is_admin), ("h3", true));
        assert!(store.get_user("bob").await.unwrap().is_none());
        let e = store.update_admin("bob", true).await.unwrap_err();
        assert_eq!(e.kind, cairn_plugin_api::ErrorKind::NotFound);

        store
            .create_grant(&grant("alice", "1", "READ"))
            .await
            .unwrap();
        let e = store
            .create_grant(&grant("alice", "1", "EDIT"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, cairn_plugin_api::ErrorKind::AlreadyExists);
        store
            .update_grant(&grant("alice", "1", "EDIT"))
            .await
            .unwrap();
        let g = store.get_grant("alice", "experiment", "1").await.unwrap();
        assert_eq!(g.unwrap().permission, "EDIT");
        let e = store
            .update_grant(&grant("alice", "2", "EDIT"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, cairn_plugin_api::ErrorKind::NotFound);
        store.rename_resource("experiment", "1", "9").await.unwrap();
        assert_eq!(
            store.list_grants("alice").await.unwrap(),
            [grant("alice", "9", "EDIT")]
        );
        store
            .delete_resource_grants("experiment", "9")
            .await
            .unwrap();
        assert!(store.list_grants("alice").await.unwrap().is_empty());
        store
            .create_grant(&grant("alice", "3", "READ"))
            .await
            .unwrap();
        store
            .delete_grant("alice", "experiment", "3")
            .await
            .unwrap();
        let e = store
            .delete_grant("alice", "experiment", "3")
            .await
            .unwrap_err();
        assert_eq!(e.kind, cairn_plugin_api::ErrorKind::NotFound);
        store
            .create_grant(&grant("alice", "4", "READ"))
            .await
            .unwrap();
        store.delete_user("alice").await.unwrap();
        assert!(store.list_users().await.unwrap().is_empty());
        assert!(!store.has_users().await.unwrap());
    }
}
