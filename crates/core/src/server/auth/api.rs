//! The auth app's REST API (api.md §11.2): users, MLflow 3.18's per-user grants
//! (`/api/3.0/mlflow/users/permissions/...`), its roles (`/api/3.0/mlflow/roles/...`, in
//! MLflow's default workspace: Cairn has no workspaces) and the 2.x per-resource endpoints
//! (`experiments/permissions/...`, `registered-models/permissions/...`) older
//! `AuthServiceClient`s use. Who may call what is decided by the auth layer's route table
//! ([`super::rules`]); these handlers only do the work.

use super::{Auth, Caller, EXPERIMENT, Permission, REGISTERED_MODEL, hash_blocking, password};
use crate::server::error::{ApiError, ApiResult};
use crate::server::wire::{RequestSpec, Wire, empty, json, required};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, patch, post};
use axum::{Extension, Router};
use cairn_plugin_api::auth::{AuthUser, Grant, Role, RoleAssignment, RolePermission};
use serde::Deserialize;
use serde_json::json as j;
use std::sync::Arc;

/// The auth API's routes, each under `/api/<v>/mlflow` and `/ajax-api/<v>/mlflow`.
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<Arc<Auth>>)> {
    vec![
        ("2.0", "/users/create", post(create_user)),
        ("2.0", "/users/get", get(get_user)),
        ("2.0", "/users/list", get(list_users)),
        ("2.0", "/users/current", get(current_user)),
        ("2.0", "/users/update-password", patch(update_password)),
        ("2.0", "/users/update-admin", patch(update_admin)),
        ("2.0", "/users/delete", delete(delete_user)),
        (
            "3.0",
            "/users/current/permissions",
            get(current_permissions),
        ),
        ("3.0", "/users/permissions/list", get(list_permissions)),
        ("3.0", "/users/permissions/grant", post(grant)),
        ("3.0", "/users/permissions/revoke", post(revoke)),
        ("3.0", "/users/permissions/get", get(get_permission)),
        ("3.0", "/roles/create", post(create_role)),
        ("3.0", "/roles/get", get(get_role)),
        ("3.0", "/roles/list", get(list_roles)),
        ("3.0", "/roles/update", patch(update_role)),
        ("3.0", "/roles/delete", delete(delete_role)),
        ("3.0", "/roles/permissions/add", post(add_role_permission)),
        (
            "3.0",
            "/roles/permissions/remove",
            delete(remove_role_permission),
        ),
        ("3.0", "/roles/permissions/list", get(list_role_permissions)),
        (
            "3.0",
            "/roles/permissions/update",
            patch(update_role_permission),
        ),
        ("3.0", "/roles/assign", post(assign_role)),
        ("3.0", "/roles/unassign", delete(unassign_role)),
        ("3.0", "/users/roles/list", get(list_user_roles)),
        ("3.0", "/roles/users/list", get(list_role_users)),
        (
            "2.0",
            "/experiments/permissions/create",
            post(legacy_create),
        ),
        ("2.0", "/experiments/permissions/get", get(legacy_get)),
        (
            "2.0",
            "/experiments/permissions/update",
            patch(legacy_update),
        ),
        (
            "2.0",
            "/experiments/permissions/delete",
            delete(legacy_delete),
        ),
        (
            "2.0",
            "/registered-models/permissions/create",
            post(legacy_create),
        ),
        ("2.0", "/registered-models/permissions/get", get(legacy_get)),
        (
            "2.0",
            "/registered-models/permissions/update",
            patch(legacy_update),
        ),
        (
            "2.0",
            "/registered-models/permissions/delete",
            delete(legacy_delete),
        ),
    ]
}

/// The auth API as a router over `auth`.
pub fn router(auth: Arc<Auth>) -> Router {
    let mut r = Router::new();
    for (version, path, handler) in routes() {
        r = r
            .route(&format!("/api/{version}/mlflow{path}"), handler.clone())
            .route(&format!("/ajax-api/{version}/mlflow{path}"), handler);
    }
    r.with_state(auth)
}

fn user_json(u: &AuthUser) -> serde_json::Value {
    j!({"id": u.id, "username": u.username, "is_admin": u.is_admin})
}

async fn user(auth: &Auth, username: &str) -> ApiResult<AuthUser> {
    auth.store
        .get_user(username)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("User with username={username} not found")))
}

#[derive(Deserialize)]
struct UserRequest {
    username: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
    is_admin: Option<serde_json::Value>,
}
impl RequestSpec for UserRequest {
    const BOOLS: &'static [&'static str] = &["is_admin"];
}

async fn create_user(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<UserRequest>,
) -> ApiResult<Response> {
    let username = required(&req.username, "username")?;
    let pw = required(&req.password, "password")?;
    if username.is_empty() || pw.is_empty() {
        return Err(ApiError::invalid("Username and password cannot be empty."));
    }
    if let Some(why) = password::check_strength(pw) {
        return Err(ApiError::invalid(why));
    }
    let hash = hash_blocking(pw.to_owned()).await;
    let u = auth.store.create_user(username, &hash, false).await?;
    Ok(json(&j!({"user": user_json(&u)})))
}

async fn get_user(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<UserRequest>,
) -> ApiResult<Response> {
    let u = user(&auth, required(&req.username, "username")?).await?;
    Ok(json(&j!({"user": user_json(&u)})))
}

async fn list_users(State(auth): State<Arc<Auth>>) -> ApiResult<Response> {
    let users: Vec<_> = auth
        .store
        .list_users()
        .await?
        .iter()
        .map(user_json)
        .collect();
    Ok(json(&j!({"users": users})))
}

async fn current_user(Extension(caller): Extension<Caller>) -> Response {
    json(&j!({"user": user_json(&caller.user), "is_basic_auth": true}))
}

async fn update_password(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Wire(req): Wire<UserRequest>,
) -> ApiResult<Response> {
    let username = required(&req.username, "username")?;
    let pw = required(&req.password, "password")?;
    let target = user(&auth, username).await?;
    // Self-service changes re-assert the current password, as MLflow.
    if caller.user.username == username {
        let Some(current) = req.current_password.as_deref().filter(|c| !c.is_empty()) else {
            return Err(ApiError::invalid(
                "Current password is required when changing your own password.",
            ));
        };
        let (current_owned, stored) = (current.to_owned(), target.password_hash.clone());
        let matches =
            tokio::task::spawn_blocking(move || password::verify(&current_owned, &stored))
                .await
                .unwrap_or(false);
        if !matches {
            return Err(ApiError::invalid("Current password does not match."));
        }
        if pw == current {
            return Err(ApiError::invalid(
                "New password must differ from the current password.",
            ));
        }
    }
    if let Some(why) = password::check_strength(pw) {
        return Err(ApiError::invalid(why));
    }
    let hash = hash_blocking(pw.to_owned()).await;
    auth.store.update_password(username, &hash).await?;
    Ok(empty())
}

async fn update_admin(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<UserRequest>,
) -> ApiResult<Response> {
    let username = required(&req.username, "username")?;
    let is_admin = match req.is_admin {
        Some(serde_json::Value::Bool(b)) => b,
        Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "Invalid value {other} for parameter 'is_admin': must be true or false"
            )));
        }
        None => return Err(ApiError::missing("is_admin")),
    };
    auth.store.update_admin(username, is_admin).await?;
    Ok(empty())
}

async fn delete_user(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Wire(req): Wire<UserRequest>,
) -> ApiResult<Response> {
    let username = required(&req.username, "username")?;
    if caller.user.username == username {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Users cannot delete their own account. Ask another admin to delete this user instead.",
        ));
    }
    auth.store.delete_user(username).await?;
    Ok(empty())
}

async fn permissions_of(auth: &Auth, u: &AuthUser) -> ApiResult<Response> {
    let rows: Vec<_> = auth
        .store
        .list_grants(&u.username)
        .await?
        .into_iter()
        .map(|g| {
            j!({
                "resource_type": g.resource_type,
                "resource_pattern": g.resource_id,
                "permission": g.permission,
            })
        })
        .collect();
    Ok(json(&j!({"is_admin": u.is_admin, "permissions": rows})))
}

async fn current_permissions(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    permissions_of(&auth, &caller.user).await
}

async fn list_permissions(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<UserRequest>,
) -> ApiResult<Response> {
    let u = user(&auth, required(&req.username, "username")?).await?;
    permissions_of(&auth, &u).await
}

#[derive(Deserialize)]
struct GrantRequest {
    username: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    permission: Option<String>,
    experiment_id: Option<String>,
    name: Option<String>,
}
impl RequestSpec for GrantRequest {}

fn resource_type(name: &str) -> ApiResult<&str> {
    match name {
        EXPERIMENT | REGISTERED_MODEL => Ok(name),
        other => Err(ApiError::invalid(format!(
            "Invalid resource_type '{other}': supported are '{EXPERIMENT}' and '{REGISTERED_MODEL}'"
        ))),
    }
}

fn permission(name: &str, grantable: &[Permission]) -> ApiResult<Permission> {
    Permission::parse(name)
        .filter(|p| grantable.contains(p))
        .ok_or_else(|| {
            let names: Vec<&str> = grantable.iter().map(|p| p.as_str()).collect();
            ApiError::invalid(format!(
                "Invalid permission '{name}'. Valid permissions are: {}",
                names.join(", ")
            ))
        })
}

/// What MLflow 3.18 lets a per-user grant hold.
const GRANTABLE: &[Permission] = &[
    Permission::Read,
    Permission::Use,
    Permission::Edit,
    Permission::Manage,
    Permission::Deny,
];

/// What the 2.x per-resource endpoints accept.
const LEGACY_GRANTABLE: &[Permission] = &[
    Permission::Read,
    Permission::Edit,
    Permission::Manage,
    Permission::NoPermissions,
];

impl GrantRequest {
    fn grant(&self, grantable: &[Permission]) -> ApiResult<Grant> {
        let (resource_type, resource_id) = self.resource()?;
        Ok(Grant {
            username: required(&self.username, "username")?.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id,
            permission: permission(required(&self.permission, "permission")?, grantable)?
                .as_str()
                .to_owned(),
        })
    }

    /// The resource: `resource_type`/`resource_id`, or the 2.x endpoints' `experiment_id` or
    /// `name`.
    fn resource(&self) -> ApiResult<(&'static str, String)> {
        if let Some(id) = &self.experiment_id {
            return Ok((EXPERIMENT, id.clone()));
        }
        if self.resource_type.is_none()
            && let Some(name) = &self.name
        {
            return Ok((REGISTERED_MODEL, name.clone()));
        }
        let t = resource_type(required(&self.resource_type, "resource_type")?)?;
        let t = if t == EXPERIMENT {
            EXPERIMENT
        } else {
            REGISTERED_MODEL
        };
        Ok((t, required(&self.resource_id, "resource_id")?.to_owned()))
    }
}

async fn grant(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<GrantRequest>,
) -> ApiResult<Response> {
    let g = req.grant(GRANTABLE)?;
    user(&auth, &g.username).await?;
    auth.store.create_grant(&g).await?;
    Ok(empty())
}

async fn revoke(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<GrantRequest>,
) -> ApiResult<Response> {
    let username = required(&req.username, "username")?;
    let (t, id) = req.resource()?;
    user(&auth, username).await?;
    auth.store.delete_grant(username, t, &id).await?;
    Ok(empty())
}

async fn get_permission(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<GrantRequest>,
) -> ApiResult<Response> {
    let username = required(&req.username, "username")?;
    let (t, id) = req.resource()?;
    let u = user(&auth, username).await?;
    let p = if u.is_admin {
        Permission::Manage
    } else {
        auth.permission(username, t, &id).await?
    };
    Ok(json(&j!({
        "allowed": p.allows(super::rules::Cap::Use),
        "permission": p.as_str(),
    })))
}

/// The 2.x answer for a grant: `{"experiment_permission": {experiment_id, user_id,
/// permission}}` or `{"registered_model_permission": {name, user_id, permission}}`.
fn legacy_json(g: &Grant, user_id: i64) -> serde_json::Value {
    if g.resource_type == EXPERIMENT {
        j!({"experiment_permission": {
            "experiment_id": g.resource_id, "user_id": user_id, "permission": g.permission,
        }})
    } else {
        j!({"registered_model_permission": {
            "name": g.resource_id, "user_id": user_id, "permission": g.permission,
        }})
    }
}

async fn legacy_create(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<GrantRequest>,
) -> ApiResult<Response> {
    let g = req.grant(LEGACY_GRANTABLE)?;
    let u = user(&auth, &g.username).await?;
    auth.store.create_grant(&g).await?;
    Ok(json(&legacy_json(&g, u.id)))
}

async fn legacy_get(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<GrantRequest>,
) -> ApiResult<Response> {
    let username = required(&req.username, "username")?;
    let (t, id) = req.resource()?;
    let u = user(&auth, username).await?;
    let g = auth
        .store
        .get_grant(username, t, &id)
        .await?
        .ok_or_else(|| {
            let what = if t == EXPERIMENT {
                format!("Experiment permission with experiment_id={id} and username={username}")
            } else {
                format!("Registered model permission with name={id} and username={username}")
            };
            ApiError::not_found(format!("{what} not found"))
        })?;
    Ok(json(&legacy_json(&g, u.id)))
}

async fn legacy_update(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<GrantRequest>,
) -> ApiResult<Response> {
    let g = req.grant(LEGACY_GRANTABLE)?;
    user(&auth, &g.username).await?;
    auth.store.update_grant(&g).await?;
    Ok(empty())
}

async fn legacy_delete(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<GrantRequest>,
) -> ApiResult<Response> {
    revoke(State(auth), Wire(req)).await
}

// ----- roles -----------------------------------------------------------------------------------

/// Cairn has no workspaces: every role is in MLflow's default one.
const WORKSPACE: &str = "default";

#[derive(Deserialize)]
struct RoleRequest {
    role_id: Option<serde_json::Value>,
    role_permission_id: Option<serde_json::Value>,
    name: Option<String>,
    description: Option<String>,
    username: Option<String>,
    resource_type: Option<String>,
    resource_pattern: Option<String>,
    permission: Option<String>,
}
impl RequestSpec for RoleRequest {}

/// An id parameter: a JSON integer or a string of one.
fn id(value: &Option<serde_json::Value>, name: &str) -> ApiResult<i64> {
    let parsed = match value {
        None => return Err(ApiError::missing(name)),
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    parsed.ok_or_else(|| {
        ApiError::invalid(format!(
            "Invalid value for parameter '{name}': must be an integer"
        ))
    })
}

fn role_permission_json(p: &RolePermission) -> serde_json::Value {
    j!({"id": p.id, "role_id": p.role_id, "resource_type": p.resource_type,
        "resource_pattern": p.resource_pattern, "permission": p.permission})
}

async fn role_json(auth: &Auth, r: &Role) -> ApiResult<serde_json::Value> {
    let permissions: Vec<_> = auth
        .store
        .list_role_permissions(r.id)
        .await?
        .iter()
        .map(role_permission_json)
        .collect();
    Ok(
        j!({"id": r.id, "name": r.name, "workspace": WORKSPACE, "description": r.description,
           "permissions": permissions}),
    )
}

async fn roles_json(auth: &Auth, roles: &[Role]) -> ApiResult<Response> {
    let mut out = Vec::with_capacity(roles.len());
    for r in roles {
        out.push(role_json(auth, r).await?);
    }
    Ok(json(&j!({"roles": out})))
}

fn assignment_json(a: &RoleAssignment) -> serde_json::Value {
    j!({"id": a.id, "user_id": a.user_id, "role_id": a.role_id})
}

async fn create_role(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<RoleRequest>,
) -> ApiResult<Response> {
    let name = required(&req.name, "name")?;
    if name.trim().is_empty() {
        return Err(ApiError::invalid("Role name cannot be empty."));
    }
    let r = auth
        .store
        .create_role(name, req.description.as_deref())
        .await?;
    Ok(json(&j!({"role": role_json(&auth, &r).await?})))
}

async fn get_role(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<RoleRequest>,
) -> ApiResult<Response> {
    let r = auth.store.get_role(id(&req.role_id, "role_id")?).await?;
    Ok(json(&j!({"role": role_json(&auth, &r).await?})))
}

async fn list_roles(State(auth): State<Arc<Auth>>) -> ApiResult<Response> {
    let roles = auth.store.list_roles().await?;
    roles_json(&auth, &roles).await
}

async fn update_role(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<RoleRequest>,
) -> ApiResult<Response> {
    let r = auth
        .store
        .update_role(
            id(&req.role_id, "role_id")?,
            req.name.as_deref(),
            req.description.as_deref(),
        )
        .await?;
    Ok(json(&j!({"role": role_json(&auth, &r).await?})))
}

async fn delete_role(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<RoleRequest>,
) -> ApiResult<Response> {
    auth.store.delete_role(id(&req.role_id, "role_id")?).await?;
    Ok(empty())
}

async fn add_role_permission(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<RoleRequest>,
) -> ApiResult<Response> {
    let t = resource_type(required(&req.resource_type, "resource_type")?)?;
    let pattern = required(&req.resource_pattern, "resource_pattern")?;
    if pattern.is_empty() {
        return Err(ApiError::invalid("resource_pattern cannot be empty."));
    }
    let p = permission(required(&req.permission, "permission")?, GRANTABLE)?;
    let added = auth
        .store
        .add_role_permission(id(&req.role_id, "role_id")?, t, pattern, p.as_str())
        .await?;
    Ok(json(&j!({"role_permission": role_permission_json(&added)})))
}

async fn remove_role_permission(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<RoleRequest>,
) -> ApiResult<Response> {
    let pid = id(&req.role_permission_id, "role_permission_id")?;
    auth.store.remove_role_permission(pid).await?;
    Ok(empty())
}

async fn list_role_permissions(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<RoleRequest>,
) -> ApiResult<Response> {
    let items: Vec<_> = auth
        .store
        .list_role_permissions(id(&req.role_id, "role_id")?)
        .await?
        .iter()
        .map(role_permission_json)
        .collect();
    Ok(json(&j!({"role_permissions": items})))
}

async fn update_role_permission(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<RoleRequest>,
) -> ApiResult<Response> {
    let pid = id(&req.role_permission_id, "role_permission_id")?;
    let p = permission(required(&req.permission, "permission")?, GRANTABLE)?;
    let updated = auth.store.update_role_permission(pid, p.as_str()).await?;
    Ok(json(
        &j!({"role_permission": role_permission_json(&updated)}),
    ))
}

async fn assign_role(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<RoleRequest>,
) -> ApiResult<Response> {
    let a = auth
        .store
        .assign_role(
            required(&req.username, "username")?,
            id(&req.role_id, "role_id")?,
        )
        .await?;
    Ok(json(&j!({"assignment": assignment_json(&a)})))
}

async fn unassign_role(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<RoleRequest>,
) -> ApiResult<Response> {
    auth.store
        .unassign_role(
            required(&req.username, "username")?,
            id(&req.role_id, "role_id")?,
        )
        .await?;
    Ok(empty())
}

async fn list_user_roles(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<RoleRequest>,
) -> ApiResult<Response> {
    let roles = auth
        .store
        .list_user_roles(required(&req.username, "username")?)
        .await?;
    roles_json(&auth, &roles).await
}

async fn list_role_users(
    State(auth): State<Arc<Auth>>,
    Wire(req): Wire<RoleRequest>,
) -> ApiResult<Response> {
    let items: Vec<_> = auth
        .store
        .list_role_users(id(&req.role_id, "role_id")?)
        .await?
        .iter()
        .map(assignment_json)
        .collect();
    Ok(json(&j!({"assignments": items})))
}
