//! [`AuthStore`] on the same database file: the tables `auth_users` and `auth_grants`
//! (schema version 3).

use crate::error::{StoreError, not_found};
use crate::store::SqliteStore;
use cairn_plugin_api::auth::{AuthStore, AuthUser, Grant};
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
