//! MLflow's basic-auth app (`cairn server --app-name basic-auth`, or `[auth] enabled = true`).
//!
//! One layer in front of every route ([`authorize`], a `route_layer`, so it runs after routing
//! and knows the route template): it looks the route up in [`rules::rule`], the one table from
//! route to required permission; a route with no entry is refused (fail closed). It then
//! authenticates HTTP Basic credentials against the [`AuthStore`] (401 with
//! `WWW-Authenticate: Basic realm="mlflow"` and MLflow's text), lets admins through, and
//! checks the user's permission on the experiment or registered model the request names (403
//! `Permission denied`). The request goes on with a [`Caller`] extension, which the search
//! handlers use to restrict their query to what the caller may read ([`Caller::restrict`]).
//! After a successful creation the creator gets `MANAGE` on what they created.
//!
//! Permissions are MLflow's: `READ`, `USE`, `EDIT`, `MANAGE`, `NO_PERMISSIONS` and `DENY` (a
//! grant that allows nothing); a user's grant on a resource wins over `auth.default_permission`.

pub mod api;
pub mod password;
pub mod rules;

use super::error::ApiError;
use super::wire::{self, BodyLimit};
use crate::config::AuthConfig;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_plugin_api::auth::{AuthStore, AuthUser, Grant, RolePermission};
use cairn_plugin_api::search::{Comparison, Entity, Expr, Key, Op, Value};
use cairn_plugin_api::{ErrorKind, TrackingStore};
use rules::{Cap, Locate, Rule};
use serde_json::Map;
use sha2::Digest;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// MLflow's text for a request without valid credentials.
pub const UNAUTHENTICATED: &str = "You are not authenticated. Please see \
https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow on how to authenticate.";

/// The resource type of experiment grants.
pub const EXPERIMENT: &str = "experiment";
/// The resource type of registered-model grants.
pub const REGISTERED_MODEL: &str = "registered_model";

/// Most checked credentials remembered (then the memory is cleared).
const CHECKED_CAPACITY: usize = 10_000;

/// A permission level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read.
    Read,
    /// Read and use.
    Use,
    /// Read, use and update.
    Edit,
    /// Everything, including deleting and managing permissions.
    Manage,
    /// Nothing.
    NoPermissions,
    /// Nothing, as an explicit grant that vetoes.
    Deny,
}

impl Permission {
    /// The permission named `name` (MLflow's spelling), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "READ" => Permission::Read,
            "USE" => Permission::Use,
            "EDIT" => Permission::Edit,
            "MANAGE" => Permission::Manage,
            "NO_PERMISSIONS" => Permission::NoPermissions,
            "DENY" => Permission::Deny,
            _ => return None,
        })
    }

    /// MLflow's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Use => "USE",
            Permission::Edit => "EDIT",
            Permission::Manage => "MANAGE",
            Permission::NoPermissions => "NO_PERMISSIONS",
            Permission::Deny => "DENY",
        }
    }

    /// MLflow's priority: how much it allows (`DENY` and `NO_PERMISSIONS` nothing).
    fn level(self) -> u8 {
        match self {
            Permission::NoPermissions | Permission::Deny => 0,
            Permission::Read => 1,
            Permission::Use => 2,
            Permission::Edit => 3,
            Permission::Manage => 4,
        }
    }

    /// Whether this permission allows `cap`.
    pub fn allows(self, cap: Cap) -> bool {
        self.level()
            >= match cap {
                Cap::Read => 1,
                Cap::Use => 2,
                Cap::Update => 3,
                Cap::Delete | Cap::Manage => 4,
            }
    }
}

/// A user's permission on the resource `id` from `perms` — their own grants and their roles'
/// permissions, each naming an id or `*` — folded as MLflow folds them (a user's grants are a
/// role of their own there): `DENY` anywhere vetoes, else the highest wins; `None` when nothing
/// matches (the default applies). With `id` `None` only `*` matches (a resource nobody named).
fn fold(perms: &[RolePermission], id: Option<&str>) -> Option<Permission> {
    let matching: Vec<Permission> = perms
        .iter()
        .filter(|p| p.resource_pattern == "*" || Some(p.resource_pattern.as_str()) == id)
        .filter_map(|p| Permission::parse(&p.permission))
        .collect();
    if matching.contains(&Permission::Deny) {
        return Some(Permission::Deny);
    }
    matching.into_iter().max_by_key(|p| p.level())
}

/// What the auth app is configured with (`[auth]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// What users may do where they have no grant.
    pub default_permission: Permission,
    /// Failed logins per user and address within [`FAILED_LOGIN_WINDOW`] before further
    /// attempts are refused (429) until the window ends.
    pub max_failed_logins: u32,
}

/// The window failed logins are counted in.
pub const FAILED_LOGIN_WINDOW: Duration = Duration::from_secs(60);

/// Failed logins per (user, address), in bounded memory.
struct FailedLogins {
    max: u32,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl FailedLogins {
    fn blocked(&self, key: &str) -> bool {
        self.counts.lock().is_ok_and(|c| {
            c.get(key)
                .is_some_and(|(since, n)| since.elapsed() < FAILED_LOGIN_WINDOW && *n >= self.max)
        })
    }

    fn failed(&self, key: &str) {
        let Ok(mut c) = self.counts.lock() else {
            return;
        };
        if c.len() >= CHECKED_CAPACITY && !c.contains_key(key) {
            c.retain(|_, (since, _)| since.elapsed() < FAILED_LOGIN_WINDOW);
            if c.len() >= CHECKED_CAPACITY {
                // Still full of fresh entries: forget them rather than grow without bound.
                c.clear();
            }
        }
        let entry = c.entry(key.to_owned()).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= FAILED_LOGIN_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    fn succeeded(&self, key: &str) {
        if let Ok(mut c) = self.counts.lock() {
            c.remove(key);
        }
    }
}

/// The auth app's shared state.
pub struct Auth {
    store: Arc<dyn AuthStore>,
    tracking: Arc<dyn TrackingStore>,
    default_permission: Permission,
    failures: FailedLogins,
    prefix: String,
    /// The outcome of credentials already checked, by SHA-256 of (username, password, stored
    /// hash): a client sending Basic credentials on every request costs one slow hash, not one
    /// each, and so does a client repeating the same wrong password. A changed password
    /// changes the stored hash, so its old entries no longer match.
    checked: Mutex<HashMap<[u8; 32], bool>>,
    /// A hash to verify against when the user does not exist, so both cost the same.
    dummy_hash: String,
}

impl Auth {
    /// The auth app over `store`, resolving runs and LoggedModels through `tracking`;
    /// `prefix` is the static prefix routes are served under.
    pub fn new(
        store: Arc<dyn AuthStore>,
        tracking: Arc<dyn TrackingStore>,
        settings: Settings,
        prefix: &str,
    ) -> Arc<Self> {
        Arc::new(Auth {
            store,
            tracking,
            default_permission: settings.default_permission,
            failures: FailedLogins {
                max: settings.max_failed_logins,
                counts: Mutex::new(HashMap::new()),
            },
            prefix: prefix.to_owned(),
            checked: Mutex::new(HashMap::new()),
            dummy_hash: password::hash("not a password anyone has"),
        })
    }

    /// The users and grants.
    pub fn store(&self) -> &Arc<dyn AuthStore> {
        &self.store
    }

    /// The user `username` if `pw` is their password.
    async fn authenticate(&self, username: String, pw: String) -> Option<AuthUser> {
        let user = self.store.get_user(&username).await.ok().flatten();
        let stored = user
            .as_ref()
            .map_or(self.dummy_hash.clone(), |u| u.password_hash.clone());
        let key: [u8; 32] = {
            let mut h = sha2::Sha256::new();
            for part in [username.as_bytes(), pw.as_bytes(), stored.as_bytes()] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part);
            }
            h.finalize().into()
        };
        let known = self.checked.lock().ok().and_then(|c| c.get(&key).copied());
        let ok = match known {
            Some(ok) => ok,
            None => {
                let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &stored))
                    .await
                    .unwrap_or(false);
                if let Ok(mut c) = self.checked.lock() {
                    if c.len() >= CHECKED_CAPACITY {
                        c.clear();
                    }
                    c.insert(key, ok);
                }
                ok
            }
        };
        user.filter(|_| ok)
    }

    /// The user's permission on a resource: their own grants and their roles' permissions
    /// folded (`fold`: a `DENY` vetoes), else the default.
    pub async fn permission(
        &self,
        username: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Permission, ApiError> {
        let perms = self.permissions_of(username, resource_type).await?;
        Ok(fold(&perms, Some(resource_id)).unwrap_or(self.default_permission))
    }

    /// The user's own grants (as permissions of a role of their own, the id the pattern) and
    /// their roles' permissions, on resources of `resource_type`.
    async fn permissions_of(
        &self,
        username: &str,
        resource_type: &str,
    ) -> Result<Vec<RolePermission>, ApiError> {
        let mut perms = self
            .store
            .user_role_permissions(username, resource_type)
            .await?;
        let own = self.store.list_grants(username).await?;
        perms.extend(
            own.into_iter()
                .filter(|g| g.resource_type == resource_type)
                .map(|g| RolePermission {
                    id: 0,
                    role_id: 0,
                    resource_type: g.resource_type,
                    resource_pattern: g.resource_id,
                    permission: g.permission,
                }),
        );
        Ok(perms)
    }

    /// Grants `MANAGE` on a resource its creator just created (replacing any grant left).
    async fn grant_creator(&self, username: &str, resource_type: &str, resource_id: &str) {
        let grant = Grant {
            username: username.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id: resource_id.to_owned(),
            permission: Permission::Manage.as_str().to_owned(),
        };
        let result = match self.store.create_grant(&grant).await {
            Err(e) if e.kind == ErrorKind::AlreadyExists => self.store.update_grant(&grant).await,
            other => other,
        };
        if let Err(e) = result {
            tracing::error!(error = %e.message, resource_type, resource_id, "cannot grant MANAGE to the creator");
        }
    }
}

/// Creates the admin from `config` when the store has no user yet: the password must be
/// set (`auth.admin_password` or `MLFLOW_AUTH_ADMIN_PASSWORD`) and not MLflow's legacy
/// default. Returns the name of the user created, if one was.
pub async fn ensure_admin(
    store: &dyn AuthStore,
    config: &AuthConfig,
) -> crate::error::Result<Option<String>> {
    let store_error = |e: cairn_plugin_api::Error| crate::error::Error::Config {
        problems: vec![format!("`auth`: the auth store failed: {}", e.message)],
    };
    if store.has_users().await.map_err(store_error)? {
        return Ok(None);
    }
    let problem = |text: String| crate::error::Error::Config {
        problems: vec![text],
    };
    let Some(pw) = config.admin_password.as_deref().filter(|p| !p.is_empty()) else {
        return Err(problem(
            "`auth.admin_password` (or MLFLOW_AUTH_ADMIN_PASSWORD) must be set: the auth \
             store has no user yet and the admin is created from it"
                .to_owned(),
        ));
    };
    if pw == password::LEGACY_DEFAULT_PASSWORD {
        return Err(problem(format!(
            "`auth.admin_password` must not be MLflow's legacy default '{}'",
            password::LEGACY_DEFAULT_PASSWORD
        )));
    }
    if let Some(why) = password::check_strength(pw) {
        return Err(problem(format!("`auth.admin_password`: {why}")));
    }
    let hash = hash_blocking(pw.to_owned()).await;
    store
        .create_user(&config.admin_username, &hash, true)
        .await
        .map_err(store_error)?;
    Ok(Some(config.admin_username.clone()))
}

/// Hashes `password` (argon2id) off the async threads.
pub async fn hash_blocking(password: String) -> String {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .expect("hashing does not panic")
}

fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    use base64::Engine;
    let text = value.to_str().ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, pw) = decoded.split_once(':')?;
    Some((user.to_owned(), pw.to_owned()))
}

/// The authenticated user of a request, for handlers (an extension set by [`authorize`]).
#[derive(Clone)]
pub struct Caller {
    /// The user.
    pub user: AuthUser,
    auth: Arc<Auth>,
}

/// Which resources of a type a caller may read.
enum Visible {
    All,
    Only(Vec<String>),
    AllBut(Vec<String>),
}

impl Caller {
    /// The auth app.
    pub fn auth(&self) -> &Arc<Auth> {
        &self.auth
    }

    async fn visible(&self, resource_type: &str) -> Result<Visible, ApiError> {
        if self.user.is_admin {
            return Ok(Visible::All);
        }
        let perms = self
            .auth
            .permissions_of(&self.user.username, resource_type)
            .await?;
        let default = self.auth.default_permission;
        // What a resource nobody named gets; the ids a grant names may differ.
        let by_default = fold(&perms, None).unwrap_or(default).allows(Cap::Read);
        let mut named: Vec<&str> = perms
            .iter()
            .map(|p| p.resource_pattern.as_str())
            .filter(|p| *p != "*")
            .collect();
        named.sort_unstable();
        named.dedup();
        let ids: Vec<String> = named
            .into_iter()
            .filter(|id| fold(&perms, Some(id)).unwrap_or(default).allows(Cap::Read) != by_default)
            .map(str::to_owned)
            .collect();
        Ok(match (by_default, ids.is_empty()) {
            (true, true) => Visible::All,
            (true, false) => Visible::AllBut(ids),
            (false, _) => Visible::Only(ids),
        })
    }

    /// `filter` narrowed to the resources of `resource_type` the caller may read, compared by
    /// the attribute `key` (`experiment_id`, `name`), so the store's query returns only those
    /// and its pages stay full; `None` when the caller may read none.
    pub async fn restrict(
        &self,
        resource_type: &str,
        key: &str,
        filter: Option<Expr>,
    ) -> Result<Option<Option<Expr>>, ApiError> {
        let (op, ids) = match self.visible(resource_type).await? {
            Visible::All => return Ok(Some(filter)),
            Visible::Only(ids) if ids.is_empty() => return Ok(None),
            Visible::Only(ids) => (Op::In, ids),
            Visible::AllBut(ids) => (Op::NotIn, ids),
        };
        let only = Expr::Compare(Comparison {
            key: Key::new(Entity::Attribute, key),
            op,
            value: Value::List(ids),
        });
        Ok(Some(Some(match filter {
            None => only,
            Some(Expr::And(mut parts)) => {
                parts.push(only);
                Expr::And(parts)
            }
            Some(other) => Expr::And(vec![other, only]),
        })))
    }

    /// The experiments of `ids` the caller may read, in order.
    pub async fn readable_experiments(&self, ids: Vec<String>) -> Result<Vec<String>, ApiError> {
        Ok(match self.visible(EXPERIMENT).await? {
            Visible::All => ids,
            Visible::Only(ok) => ids.into_iter().filter(|i| ok.contains(i)).collect(),
            Visible::AllBut(no) => ids.into_iter().filter(|i| !no.contains(i)).collect(),
        })
    }
}

/// Narrows a search by the request's [`Caller`] (none when auth is off): see
/// [`Caller::restrict`].
pub async fn restrict(
    caller: Option<&Caller>,
    resource_type: &str,
    key: &str,
    filter: Option<Expr>,
) -> Result<Option<Option<Expr>>, ApiError> {
    match caller {
        Some(c) => c.restrict(resource_type, key, filter).await,
        None => Ok(Some(filter)),
    }
}

/// The experiments of `ids` the request's caller may read (all when auth is off).
pub async fn readable_experiments(
    caller: Option<&Caller>,
    ids: Vec<String>,
) -> Result<Vec<String>, ApiError> {
    match caller {
        Some(c) => c.readable_experiments(ids).await,
        None => Ok(ids),
    }
}

fn unauthenticated() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Basic realm=\"mlflow\""),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        UNAUTHENTICATED,
    )
        .into_response()
}

fn too_many_failed_logins() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (
                header::RETRY_AFTER,
                FAILED_LOGIN_WINDOW.as_secs().to_string(),
            ),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
        ],
        "Too many failed login attempts. Try again later.",
    )
        .into_response()
}

fn permission_denied() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Permission denied",
    )
        .into_response()
}

/// The auth layer: see the module documentation.
pub async fn authorize(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let template = template
        .strip_prefix(auth.prefix.as_str())
        .unwrap_or(&template)
        .to_owned();
    let template = rules::normalise(&template).to_owned();
    let rule = rules::rule(req.method(), &template);
    if rule == Some(Rule::Public) {
        return next.run(req).await;
    }
    let Some((username, pw)) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(parse_basic)
    else {
        return unauthenticated();
    };
    // Failed logins are limited per user and address: a guessed password costs a slow hash.
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let key = format!("{username}\0{peer}");
    if auth.failures.blocked(&key) {
        tracing::warn!(user = %username, %peer, "refused: too many failed logins");
        return too_many_failed_logins();
    }
    let Some(user) = auth.authenticate(username, pw).await else {
        auth.failures.failed(&key);
        return unauthenticated();
    };
    auth.failures.succeeded(&key);
    let Some(rule) = rule else {
        tracing::error!(method = %req.method(), route = %template, "refused: the route has no permission rule");
        return permission_denied();
    };
    tracing::info!(user = %user.username, "authenticated");
    match check(&auth, &user, rule, req).await {
        Ok((mut req, true)) => {
            let creation = Creation::of(req.method(), &template);
            let params = match creation {
                Some(Creation::RegisteredModel | Creation::Rename | Creation::ModelDelete) => {
                    match with_params(req, false).await {
                        Ok((r, p)) => {
                            req = r;
                            p
                        }
                        Err(e) => return e.into_response(),
                    }
                }
                _ => Map::new(),
            };
            let username = user.username.clone();
            req.extensions_mut().insert(Caller {
                user,
                auth: Arc::clone(&auth),
            });
            let response = next.run(req).await;
            match creation {
                Some(c) if response.status().is_success() => {
                    c.after(&auth, &username, &params, response).await
                }
                _ => response,
            }
        }
        Ok((_, false)) => permission_denied(),
        Err(e) => e.into_response(),
    }
}

/// What happens after a successful request besides its answer.
#[derive(Clone, Copy)]
enum Creation {
    Experiment,
    RegisteredModel,
    Rename,
    ModelDelete,
}

impl Creation {
    fn of(method: &Method, template: &str) -> Option<Self> {
        Some(match (method.as_str(), template) {
            ("POST", "/mlflow/experiments/create") => Creation::Experiment,
            ("POST", "/mlflow/registered-models/create") => Creation::RegisteredModel,
            ("POST", "/mlflow/registered-models/rename") => Creation::Rename,
            ("DELETE", "/mlflow/registered-models/delete") => Creation::ModelDelete,
            _ => return None,
        })
    }

    async fn after(
        self,
        auth: &Auth,
        username: &str,
        params: &Map<String, serde_json::Value>,
        response: Response,
    ) -> Response {
        let param = |k: &str| params.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        match self {
            Creation::Experiment => {
                let (parts, body) = response.into_parts();
                let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
                    return ApiError::internal("cannot read the created experiment")
                        .into_response();
                };
                let id = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v["experiment_id"].as_str().map(str::to_owned));
                if let Some(id) = id {
                    auth.grant_creator(username, EXPERIMENT, &id).await;
                }
                Response::from_parts(parts, Body::from(bytes))
            }
            Creation::RegisteredModel => {
                if let Some(name) = param("name") {
                    auth.grant_creator(username, REGISTERED_MODEL, &name).await;
                }
                response
            }
            Creation::Rename => {
                if let (Some(old), Some(new)) = (param("name"), param("new_name"))
                    && let Err(e) = auth
                        .store
                        .rename_resource(REGISTERED_MODEL, &old, &new)
                        .await
                {
                    tracing::error!(error = %e.message, "cannot move grants to the renamed model");
                }
                response
            }
            Creation::ModelDelete => {
                if let Some(name) = param("name")
                    && let Err(e) = auth
                        .store
                        .delete_resource_grants(REGISTERED_MODEL, &name)
                        .await
                {
                    tracing::error!(error = %e.message, "cannot remove the deleted model's grants");
                }
                response
            }
        }
    }
}

/// The request's parameters by MLflow's rules (`_get_request_param`): the query string for
/// `GET`; the JSON body for others, then the query string for what the body lacks. The body
/// is read (within the body limit) and put back. With `query_only` the body is not touched.
async fn with_params(
    req: Request,
    query_only: bool,
) -> Result<(Request, Map<String, serde_json::Value>), ApiError> {
    let query = req.uri().query().unwrap_or_default().to_owned();
    let mut map = Map::new();
    let req = if req.method() == Method::GET || query_only {
        req
    } else {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(wire::DEFAULT_BODY_LIMIT, |l| l.0);
        let (parts, body) = req.into_parts();
        let bytes = wire::read_body(body, limit).await?;
        map = wire::body_to_json(&bytes)?;
        Request::from_parts(parts, Body::from(bytes))
    };
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let k = wire::snake_case(&k);
        match map.get_mut(&k) {
            // Repeated query parameters (`run_id=a&run_id=b`) collect into a list.
            Some(serde_json::Value::Array(items)) => items.push(v.into_owned().into()),
            Some(serde_json::Value::String(first)) if req.method() == Method::GET => {
                let first = std::mem::take(first);
                map.insert(k, serde_json::json!([first, v.into_owned()]));
            }
            Some(_) => {}
            None => {
                map.insert(k, v.into_owned().into());
            }
        }
    }
    Ok((req, map))
}

/// A parameter as a string: strings as given, numbers as written.
fn param(params: &Map<String, serde_json::Value>, name: &str) -> Option<String> {
    match params.get(name)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(items) => {
            items.first().and_then(|v| v.as_str()).map(str::to_owned)
        }
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn param_list(params: &Map<String, serde_json::Value>, name: &str) -> Vec<String> {
    match params.get(name) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| v.as_i64().map(|n| n.to_string()))
            })
            .collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn required(params: &Map<String, serde_json::Value>, name: &str) -> Result<String, ApiError> {
    param(params, name).ok_or_else(|| ApiError::missing(name))
}

/// The experiment id an artifact-proxy path starts with; other paths are refused as MLflow's
/// canonicaliser would refuse them.
fn experiment_of_artifact_path(path: &str) -> Result<Option<String>, ApiError> {
    if path.contains("..") || path.contains('\\') || path.starts_with('/') || path.contains('\0') {
        return Err(ApiError::invalid("Invalid path"));
    }
    let first = path.split('/').next().unwrap_or_default();
    Ok((!first.is_empty() && first.bytes().all(|b| b.is_ascii_digit())).then(|| first.to_owned()))
}

/// The request (its body put back if it was read) and whether `user` may make it.
async fn check(
    auth: &Auth,
    user: &AuthUser,
    rule: Rule,
    req: Request,
) -> Result<(Request, bool), ApiError> {
    let allow = |ok: bool, req: Request| Ok((req, ok));
    if user.is_admin {
        return allow(true, req);
    }
    match rule {
        Rule::Public | Rule::Authenticated => allow(true, req),
        Rule::Admin => allow(false, req),
        Rule::SelfOrAdmin => {
            let (req, params) = with_params(req, false).await?;
            let ok = required(&params, "username")? == user.username;
            allow(ok, req)
        }
        Rule::Model(cap) => {
            let (req, params) = with_params(req, false).await?;
            let name = required(&params, "name")?;
            let p = auth
                .permission(&user.username, REGISTERED_MODEL, &name)
                .await?;
            allow(p.allows(cap), req)
        }
        Rule::ManageResource => {
            let (req, params) = with_params(req, false).await?;
            let resource_type = required(&params, "resource_type")?;
            let resource_id = required(&params, "resource_id")?;
            let p = auth
                .permission(&user.username, &resource_type, &resource_id)
                .await?;
            allow(p.allows(Cap::Manage), req)
        }
        Rule::Experiment(cap, locate) => {
            let (req, experiments) = experiments_of(auth, locate, req).await?;
            let Some(experiments) = experiments else {
                return allow(false, req);
            };
            for id in &experiments {
                if !auth
                    .permission(&user.username, EXPERIMENT, id)
                    .await?
                    .allows(cap)
                {
                    return allow(false, req);
                }
            }
            allow(true, req)
        }
    }
}

/// The experiments a request acts on; `None` when it names none a user may be granted
/// (an artifact-proxy path outside any experiment: admins only).
async fn experiments_of(
    auth: &Auth,
    locate: Locate,
    req: Request,
) -> Result<(Request, Option<Vec<String>>), ApiError> {
    let store = &auth.tracking;
    let run_experiment = |run_id: String| async move {
        Ok::<_, ApiError>(store.get_run(&run_id).await?.info.experiment_id)
    };
    let trace_experiment = |trace_id: String| async move {
        let traces = store.trace_store().ok_or_else(|| {
            ApiError::not_implemented("Traces are not supported by this server's tracking store.")
        })?;
        Ok::<_, ApiError>(traces.get_trace_info(&trace_id).await?.experiment_id)
    };
    match locate {
        Locate::ExperimentHeader => {
            let id = req
                .headers()
                .get("x-mlflow-experiment-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            // Without the header the request names no experiment: admins only (fail closed).
            Ok((req, (!id.is_empty()).then(|| vec![id])))
        }
        Locate::TracePath => {
            let (mut parts, body) = req.into_parts();
            let raw = RawPathParams::from_request_parts(&mut parts, &())
                .await
                .map_err(|e| {
                    ApiError::invalid(format!("Invalid request path: {}", e.body_text()))
                })?;
            let id = raw
                .iter()
                .find(|(k, _)| *k == "trace_id")
                .map(|(_, v)| v.to_owned())
                .unwrap_or_default();
            let req = Request::from_parts(parts, body);
            Ok((req, Some(vec![trace_experiment(id).await?])))
        }
        Locate::TraceParam | Locate::TraceIds | Locate::TraceLocation => {
            let (req, params) = with_params(req, false).await?;
            let ids = match locate {
                Locate::TraceParam => {
                    let id = param(&params, "trace_id")
                        .or_else(|| param(&params, "request_id"))
                        .ok_or_else(|| ApiError::missing("trace_id"))?;
                    vec![trace_experiment(id).await?]
                }
                Locate::TraceIds => {
                    let traces = store.trace_store().ok_or_else(|| {
                        ApiError::not_implemented(
                            "Traces are not supported by this server's tracking store.",
                        )
                    })?;
                    let ids = param_list(&params, "trace_ids");
                    let mut exps: Vec<String> = traces
                        .batch_get_trace_infos(&ids)
                        .await?
                        .into_iter()
                        .map(|i| i.experiment_id)
                        .collect();
                    exps.sort();
                    exps.dedup();
                    exps
                }
                _ => {
                    let id = params
                        .get("trace")
                        .and_then(|t| t.get("trace_info"))
                        .and_then(|i| i.get("trace_location"))
                        .and_then(|l| l.get("mlflow_experiment"))
                        .and_then(|e| e.get("experiment_id"))
                        .and_then(|e| e.as_str())
                        .ok_or_else(|| ApiError::missing("trace_location"))?;
                    vec![id.to_owned()]
                }
            };
            Ok((req, Some(ids)))
        }
        Locate::LoggedModel | Locate::ArtifactPath => {
            let (mut parts, body) = req.into_parts();
            let raw = RawPathParams::from_request_parts(&mut parts, &())
                .await
                .map_err(|e| {
                    ApiError::invalid(format!("Invalid request path: {}", e.body_text()))
                })?;
            let name = if locate == Locate::LoggedModel {
                "model_id"
            } else {
                "path"
            };
            let value = raw
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
                .unwrap_or_default();
            let req = Request::from_parts(parts, body);
            if locate == Locate::LoggedModel {
                let model = store.get_logged_model(&value, true).await?;
                Ok((req, Some(vec![model.info.experiment_id])))
            } else {
                Ok((req, experiment_of_artifact_path(&value)?.map(|e| vec![e])))
            }
        }
        Locate::RunInQuery | Locate::ArtifactQuery => {
            let (req, params) = with_params(req, true).await?;
            if locate == Locate::ArtifactQuery {
                let path = param(&params, "path").unwrap_or_default();
                return Ok((req, experiment_of_artifact_path(&path)?.map(|e| vec![e])));
            }
            let run = required(&params, "run_id")?;
            Ok((req, Some(vec![run_experiment(run).await?])))
        }
        _ => {
            let (req, params) = with_params(req, false).await?;
            let ids = match locate {
                Locate::ExperimentId => vec![required(&params, "experiment_id")?],
                Locate::ExperimentIdOrDefault => {
                    vec![
                        param(&params, "experiment_id")
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "0".to_owned()),
                    ]
                }
                Locate::ExperimentIds => param_list(&params, "experiment_ids"),
                Locate::ExperimentName => {
                    let name = required(&params, "experiment_name")?;
                    match store.get_experiment_by_name(&name).await? {
                        Some(e) => vec![e.experiment_id],
                        None => Vec::new(),
                    }
                }
                Locate::Run => {
                    let run = param(&params, "run_id")
                        .or_else(|| param(&params, "run_uuid"))
                        .ok_or_else(|| ApiError::missing("run_id"))?;
                    vec![run_experiment(run).await?]
                }
                Locate::Runs(name) => {
                    let mut ids = Vec::new();
                    for run in param_list(&params, name) {
                        ids.push(run_experiment(run).await?);
                    }
                    ids
                }
                _ => unreachable!("handled above"),
            };
            Ok((req, Some(ids)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_allow_mlflows_capabilities() {
        use Permission::*;
        assert!(Read.allows(Cap::Read) && !Read.allows(Cap::Use));
        assert!(Use.allows(Cap::Use) && !Use.allows(Cap::Update));
        assert!(Edit.allows(Cap::Update) && !Edit.allows(Cap::Delete));
        assert!(Manage.allows(Cap::Delete) && Manage.allows(Cap::Manage));
        assert!(!NoPermissions.allows(Cap::Read) && !Deny.allows(Cap::Read));
        for p in [Read, Use, Edit, Manage, NoPermissions, Deny] {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        assert_eq!(Permission::parse("read"), None);
    }

    #[test]
    fn grants_fold_as_mlflow_a_deny_vetoes_and_otherwise_the_highest_wins() {
        let p = |pattern: &str, permission: &str| RolePermission {
            id: 0,
            role_id: 0,
            resource_type: EXPERIMENT.into(),
            resource_pattern: pattern.into(),
            permission: permission.into(),
        };
        let perms = [p("*", "READ"), p("1", "EDIT"), p("2", "DENY")];
        assert_eq!(fold(&perms, Some("1")), Some(Permission::Edit));
        assert_eq!(fold(&perms, Some("2")), Some(Permission::Deny));
        assert_eq!(fold(&perms, Some("3")), Some(Permission::Read));
        assert_eq!(fold(&perms, None), Some(Permission::Read));
        assert_eq!(fold(&perms[1..], Some("3")), None);
        assert_eq!(
            fold(&[p("*", "DENY"), p("1", "MANAGE")], Some("1")),
            Some(Permission::Deny)
        );
        assert_eq!(fold(&[], Some("1")), None);
    }

    #[test]
    fn basic_credentials_are_parsed() {
        let v = HeaderValue::from_static("Basic YWxpY2U6cDpzcw==");
        assert_eq!(parse_basic(&v), Some(("alice".into(), "p:ss".into())));
        assert_eq!(parse_basic(&HeaderValue::from_static("Bearer x")), None);
        assert_eq!(parse_basic(&HeaderValue::from_static("Basic !!")), None);
    }

    #[test]
    fn artifact_paths_name_their_experiment() {
        assert_eq!(
            experiment_of_artifact_path("12/abc/artifacts/x").unwrap(),
            Some("12".into())
        );
        assert_eq!(experiment_of_artifact_path("").unwrap(), None);
        assert_eq!(experiment_of_artifact_path("models/x").unwrap(), None);
        assert!(experiment_of_artifact_path("1/../2/x").is_err());
        assert!(experiment_of_artifact_path("/etc/passwd").is_err());
    }
}
