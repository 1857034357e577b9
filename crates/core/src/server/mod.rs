//! `cairn server`: the MLflow-compatible tracking server (axum on tokio).
//!
//! Every MLflow 3.18 tracking endpoint is served at `/api/2.0/mlflow/...` and
//! `/ajax-api/2.0/mlflow/...` (and at `3.0` where MLflow uses it), one handler per endpoint
//! shared by all its paths, so the official `mlflow` client works unchanged.
//!
//! | module | what it holds |
//! |---|---|
//! | [`wire`] | request decoding (query strings, JSON bodies, camelCase, lenient int64/double) and JSON responses |
//! | [`error`] | [`ApiError`], MLflow's `{"error_code", "message"}` envelope |
//! | [`security`] | the `Host`-header allowlist, the cross-origin check and CORS headers, security headers |
//! | [`tracking`] | experiments, runs, metrics, params, tags, searches, histories, datasets |
//! | [`history`] | `get-history` streamed page by page |
//! | [`logged_models`] | MLflow 3 LoggedModels |
//! | [`traces`] | MLflow 3 traces, spans, assessments, and OTLP ingest at `/v1/traces` |
//! | [`registry`] | the model registry: registered models, versions, tags, stages, aliases, and model-version source validation |
//! | [`listen`] | the accept loop: connection cap, idle timeout, shutdown deadline |
//! | [`artifacts`] | the `mlflow-artifacts` proxy (streamed both ways), artifact listing and downloads of runs and logged models, `upload-artifact` |
//! | [`ui`] | the web UI (crate `cairn-ui`): `/` and `/static-files/<hashed name>` |
//!
//! Besides the API: `GET /health` answers `OK`; `GET /version` answers the MLflow version Cairn
//! is compatible with ([`MLFLOW_COMPATIBLE_VERSION`]); `GET /api/3.0/mlflow/server-info`
//! describes what this server supports. The tracking API's presigned-URL
//! endpoints answer `501 NOT_IMPLEMENTED` for now (so do the registry endpoints when no
//! model-registry store serves `store.registry_store_uri`); any other path is
//! `404 ENDPOINT_NOT_FOUND`, in MLflow's JSON error shape.
//!
//! Requests are logged by tower-http's `TraceLayer` (method, URI, status, latency), filtered by
//! `RUST_LOG`. The server stops on Ctrl-C or SIGTERM after in-flight requests finish, or when
//! `server.shutdown_timeout_secs` has passed (see [`listen`]).

pub mod artifacts;
pub mod auth;
pub mod error;
pub mod history;
pub mod listen;
pub mod logged_models;
pub mod registry;
pub mod security;
pub mod traces;
pub mod tracking;
pub mod ui;
pub mod ui_api;
pub mod wire;

pub use error::{ApiError, ApiResult};

use crate::assembly::{Assembly, ServerPlugins, Step};
use crate::config::LoadedConfig;
use crate::error::{Error, Result};
use crate::registry::{Registry, scheme_of};
use crate::run_context::RunContextProviders;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, patch, post};
use cairn_plugin_api::PluginKind;
use cairn_plugin_api::TrackingStore;
use security::{AllowedHosts, AllowedOrigins};
use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use wire::{BodyBudget, BodyLimit};

/// The MLflow version whose tracking API Cairn serves; `GET /version` answers it, so tools
/// that check the server's version see a version they know.
pub const MLFLOW_COMPATIBLE_VERSION: &str = "3.18.0";

/// What the handlers share: the tracking store and the server's fixed facts.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    store: Arc<dyn TrackingStore>,
    server_info: serde_json::Value,
    history_chunk: usize,
    artifact_schemes: Vec<String>,
    artifacts: artifacts::Artifacts,
    registry: registry::RegistryAccess,
    run_context: RunContextProviders,
}

impl AppState {
    /// State over `store`, describing itself with `info`, with the built-in artifact
    /// repositories and no artifact-proxy destination.
    pub fn new(store: Arc<dyn TrackingStore>, info: &ServerInfo) -> Self {
        Self::with_artifacts(store, info, artifacts::Artifacts::builtin_without_proxy())
    }

    /// State over `store` and `artifacts` (the proxy's destination and the repositories of run
    /// roots), describing itself with `info`.
    pub fn with_artifacts(
        store: Arc<dyn TrackingStore>,
        info: &ServerInfo,
        artifacts: artifacts::Artifacts,
    ) -> Self {
        Self::with_registry(store, info, artifacts, registry::RegistryAccess::default())
    }

    /// State over `store`, `artifacts` and the model registry `registry`.
    pub fn with_registry(
        store: Arc<dyn TrackingStore>,
        info: &ServerInfo,
        artifacts: artifacts::Artifacts,
        registry: registry::RegistryAccess,
    ) -> Self {
        Self::from_plugins(
            info,
            ServerPlugins {
                tracking: store,
                artifacts,
                registry,
                run_context: RunContextProviders::default(),
                auth: None,
            },
        )
    }

    /// State over the plugins the assembly built, describing itself with `info`.
    pub fn from_plugins(info: &ServerInfo, plugins: ServerPlugins) -> Self {
        let mut server_info = info.to_json();
        if info.serve_artifacts {
            server_info["multipart_uploads_enabled"] =
                plugins.artifacts.multipart_uploads_enabled().into();
            server_info["multipart_downloads_enabled"] =
                plugins.artifacts.multipart_downloads_enabled().into();
        }
        AppState(Arc::new(Shared {
            store: plugins.tracking,
            server_info,
            history_chunk: info.history_chunk,
            artifact_schemes: info.artifact_schemes.clone(),
            artifacts: plugins.artifacts,
            registry: plugins.registry,
            run_context: plugins.run_context,
        }))
    }

    /// The run-context providers whose tags `runs/create` adds.
    pub fn run_context(&self) -> &RunContextProviders {
        &self.0.run_context
    }

    /// Artifact access: the proxy's destination and the repositories of run roots.
    pub fn artifacts(&self) -> &artifacts::Artifacts {
        &self.0.artifacts
    }

    /// The model registry (its store, if any, and the artifact roots sources may lie under).
    pub fn registry(&self) -> &registry::RegistryAccess {
        &self.0.registry
    }

    /// The tracking store.
    pub fn store(&self) -> &Arc<dyn TrackingStore> {
        &self.0.store
    }

    /// Values read from the store per page while streaming a metric history.
    pub fn history_chunk(&self) -> usize {
        self.0.history_chunk
    }

    /// The schemes an experiment's `artifact_location` may use besides host-less
    /// `mlflow-artifacts:`.
    pub fn artifact_schemes(&self) -> &[String] {
        &self.0.artifact_schemes
    }
}

/// The facts `server-info` reports and the knobs of the router.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// MLflow's `store_type`: `SqlStore` for SQL-backed tracking stores, else `None`.
    pub store_type: Option<String>,
    /// Whether the `mlflow-artifacts` proxy is on (`store.serve_artifacts`).
    pub serve_artifacts: bool,
    /// The `Host` header policy.
    pub allowed_hosts: AllowedHosts,
    /// The origins allowed to make cross-origin API requests.
    pub allowed_origins: AllowedOrigins,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// A prefix for every route (MLflow's `--static-prefix`), e.g. `/mlflow`.
    pub static_prefix: Option<String>,
    /// Values read per store page while streaming a metric history.
    pub history_chunk: usize,
    /// The schemes (lower case) an experiment's `artifact_location` may use besides
    /// host-less `mlflow-artifacts:` (see [`allowed_artifact_schemes`]).
    pub artifact_schemes: Vec<String>,
    /// The longest a request body may stall between two pieces.
    pub body_read_timeout: std::time::Duration,
    /// With the basic-auth app on: its settings.
    pub auth: Option<auth::Settings>,
}

impl Default for ServerInfo {
    fn default() -> Self {
        ServerInfo {
            store_type: Some("SqlStore".to_owned()),
            serve_artifacts: true,
            allowed_hosts: AllowedHosts::Loopback,
            allowed_origins: AllowedOrigins::default(),
            body_limit: wire::DEFAULT_BODY_LIMIT,
            static_prefix: None,
            history_chunk: history::DEFAULT_HISTORY_CHUNK,
            artifact_schemes: vec!["file".to_owned()],
            body_read_timeout: std::time::Duration::from_secs(
                crate::config::DEFAULT_BODY_READ_TIMEOUT_SECS,
            ),
            auth: None,
        }
    }
}

impl ServerInfo {
    /// MLflow's `store_type` for a backend store URI: `SqlStore` for the SQL schemes.
    pub fn store_type_for(uri: &str) -> Option<String> {
        matches!(
            scheme_of(uri).as_str(),
            "sqlite" | "postgresql" | "mysql" | "mssql"
        )
        .then(|| "SqlStore".to_owned())
    }

    /// The `server-info` document (api.md §1.3), with what this server really supports.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "store_type": self.store_type,
            "workspaces_enabled": false,
            "trace_archival_enabled": false,
            "multipart_uploads_enabled": false,
            "multipart_downloads_enabled": false,
            "artifact_serving_enabled": self.serve_artifacts,
            "skill_content_max_size": null,
            "skill_content_max_files": null,
            "presigned_upload_run_id_supported": false,
            "presigned_upload_model_id_supported": false,
            "model_artifact_presigned_downloads_supported": false,
            "features_enabled": {"gateway": false, "scheduled_issue_detection": false},
            "tracking_auth": null,
            "artifacts_presigned_only": false,
        })
    }
}

/// The API routes being built, with every path added, so the auth layer's route table can be
/// checked against the router ([`route_paths`]).
#[derive(Default)]
struct Routes {
    router: Router<AppState>,
    paths: Vec<String>,
}

impl Routes {
    fn route(mut self, path: &str, handler: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, handler);
        self.paths.push(path.to_owned());
        self
    }
}

/// Adds `path` (e.g. `/runs/get`) under `/api/{version}/mlflow` and `/ajax-api/{version}/mlflow`.
fn mlflow(router: Routes, version: &str, path: &str, handler: MethodRouter<AppState>) -> Routes {
    router
        .route(&format!("/api/{version}/mlflow{path}"), handler.clone())
        .route(&format!("/ajax-api/{version}/mlflow{path}"), handler)
}

/// A handler answering `501 NOT_IMPLEMENTED` with `message`.
fn not_implemented(message: &'static str) -> MethodRouter<AppState> {
    any(move |body: Body| async move {
        wire::discard_body(body).await;
        ApiError::not_implemented(message)
    })
}

const ARTIFACTS_NOT_IMPLEMENTED: &str =
    "Artifact access through the tracking server is not implemented by this Cairn server yet.";

/// The tracking API routes (state not yet supplied).
fn api_routes(serve_artifacts: bool) -> Routes {
    use logged_models as lm;
    use tracking as t;
    let mut r = Routes::default();
    let routes: Vec<(&str, MethodRouter<AppState>)> = vec![
        ("/experiments/get-by-name", get(t::get_experiment_by_name)),
        ("/experiments/create", post(t::create_experiment)),
        (
            "/experiments/search",
            post(t::search_experiments).get(t::search_experiments),
        ),
        ("/experiments/get", get(t::get_experiment)),
        ("/experiments/delete", post(t::delete_experiment)),
        ("/experiments/restore", post(t::restore_experiment)),
        ("/experiments/update", post(t::update_experiment)),
        (
            "/experiments/set-experiment-tag",
            post(t::set_experiment_tag),
        ),
        (
            "/experiments/delete-experiment-tag",
            post(t::delete_experiment_tag),
        ),
        ("/runs/create", post(t::create_run)),
        ("/runs/update", post(t::update_run)),
        ("/runs/delete", post(t::delete_run)),
        ("/runs/restore", post(t::restore_run)),
        ("/runs/log-metric", post(t::log_metric)),
        ("/runs/log-parameter", post(t::log_param)),
        ("/runs/set-tag", post(t::set_tag)),
        ("/runs/delete-tag", post(t::delete_tag)),
        ("/runs/get", get(t::get_run)),
        ("/runs/search", post(t::search_runs)),
        ("/runs/log-batch", post(t::log_batch)),
        ("/runs/log-model", post(t::log_model)),
        ("/runs/log-inputs", post(t::log_inputs)),
        ("/runs/outputs", post(t::log_outputs)),
        ("/metrics/get-history", get(t::get_metric_history)),
        (
            "/metrics/get-history-bulk-interval",
            get(t::get_metric_history_bulk_interval),
        ),
        ("/logged-models", post(lm::create_logged_model)),
        ("/logged-models/search", post(lm::search_logged_models)),
        (
            "/logged-models/{model_id}",
            get(lm::get_logged_model)
                .patch(lm::finalize_logged_model)
                .delete(lm::delete_logged_model),
        ),
        (
            "/logged-models/{model_id}/tags",
            patch(lm::set_logged_model_tags),
        ),
        (
            "/logged-models/{model_id}/tags/{*tag_key}",
            axum::routing::delete(lm::delete_logged_model_tag),
        ),
        (
            "/logged-models/{model_id}/params",
            post(lm::log_logged_model_params),
        ),
        ("/artifacts/list", get(artifacts::list_artifacts)),
        (
            "/artifacts/presigned-upload-url",
            not_implemented(ARTIFACTS_NOT_IMPLEMENTED),
        ),
        (
            "/artifacts/presigned-download-url",
            not_implemented(ARTIFACTS_NOT_IMPLEMENTED),
        ),
        (
            "/logged-models/{model_id}/artifacts/directories",
            get(artifacts::list_logged_model_artifacts),
        ),
    ];
    for (path, handler) in routes {
        r = mlflow(r, "2.0", path, handler);
    }
    {
        use axum::routing::delete;
        use registry as rg;
        let registry_routes: Vec<(&str, MethodRouter<AppState>)> = vec![
            (
                "/registered-models/create",
                post(rg::create_registered_model),
            ),
            (
                "/registered-models/rename",
                post(rg::rename_registered_model),
            ),
            (
                "/registered-models/update",
                patch(rg::update_registered_model),
            ),
            (
                "/registered-models/delete",
                delete(rg::delete_registered_model),
            ),
            ("/registered-models/get", get(rg::get_registered_model)),
            (
                "/registered-models/search",
                get(rg::search_registered_models),
            ),
            (
                "/registered-models/get-latest-versions",
                post(rg::get_latest_versions).get(rg::get_latest_versions),
            ),
            (
                "/registered-models/set-tag",
                post(rg::set_registered_model_tag),
            ),
            (
                "/registered-models/delete-tag",
                delete(rg::delete_registered_model_tag),
            ),
            (
                "/registered-models/alias",
                post(rg::set_registered_model_alias)
                    .delete(rg::delete_registered_model_alias)
                    .get(rg::get_model_version_by_alias),
            ),
            ("/model-versions/create", post(rg::create_model_version)),
            ("/model-versions/update", patch(rg::update_model_version)),
            (
                "/model-versions/transition-stage",
                post(rg::transition_model_version_stage),
            ),
            ("/model-versions/delete", delete(rg::delete_model_version)),
            ("/model-versions/get", get(rg::get_model_version)),
            ("/model-versions/search", get(rg::search_model_versions)),
            (
                "/model-versions/get-download-uri",
                get(rg::get_model_version_download_uri),
            ),
            ("/model-versions/set-tag", post(rg::set_model_version_tag)),
            (
                "/model-versions/delete-tag",
                delete(rg::delete_model_version_tag),
            ),
        ];
        for (path, handler) in registry_routes {
            r = mlflow(r, "2.0", path, handler);
        }
    }
    r = r
        .route(
            "/ajax-api/2.0/mlflow/metrics/get-history-bulk",
            get(t::get_metric_history_bulk),
        )
        .route(
            "/ajax-api/2.0/mlflow/experiments/search-datasets",
            post(t::search_datasets),
        )
        // The web UI's own reads (server/ui_api.rs).
        .route("/ajax-api/2.0/cairn/runs/keys", get(ui_api::run_keys))
        .route(
            "/ajax-api/2.0/cairn/metrics/get-history-downsampled",
            get(ui_api::get_history_downsampled),
        )
        .route(
            "/ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts/files",
            get(artifacts::get_logged_model_artifact),
        )
        .route("/get-artifact", get(artifacts::get_artifact))
        .route(
            "/model-versions/get-artifact",
            get(registry::get_model_version_artifact),
        )
        .route(
            "/ajax-api/2.0/mlflow/upload-artifact",
            post(artifacts::upload_artifact),
        );

    // The artifact proxy (api.md §3.1): 503 text/plain when switched off, as MLflow.
    for base in [
        "/api/2.0/mlflow-artifacts",
        "/ajax-api/2.0/mlflow-artifacts",
    ] {
        if serve_artifacts {
            use artifacts as a;
            r = r
                .route(&format!("{base}/artifacts"), get(a::list))
                .route(
                    &format!("{base}/artifacts/{{*path}}"),
                    get(a::download).put(a::upload).delete(a::delete),
                )
                .route(
                    &format!("{base}/mpu/create/{{*path}}"),
                    post(a::create_multipart),
                )
                .route(
                    &format!("{base}/mpu/complete/{{*path}}"),
                    post(a::complete_multipart),
                )
                .route(
                    &format!("{base}/mpu/abort/{{*path}}"),
                    post(a::abort_multipart),
                )
                .route(
                    &format!("{base}/presigned/{{*path}}"),
                    get(a::presigned_download),
                );
        } else {
            r = r.route(base, any(artifacts::serving_disabled)).route(
                &format!("{base}/{{*path}}"),
                any(artifacts::serving_disabled),
            );
        }
    }

    // Traces (api.md §1.5, issue 18). Specific routes first.
    {
        use axum::routing::patch;
        use traces as tr;
        for version in ["2.0", "3.0"] {
            r = mlflow(r, version, "/traces/delete-traces", post(tr::delete_traces));
            r = mlflow(
                r,
                version,
                "/traces/{trace_id}/tags",
                patch(tr::set_trace_tag).delete(tr::delete_trace_tag),
            );
            r = mlflow(
                r,
                version,
                "/traces/link-to-run",
                post(tr::link_traces_to_run),
            );
            r = mlflow(r, version, "/traces/link-prompts", post(tr::link_prompts));
        }
        r = mlflow(r, "3.0", "/traces", post(tr::start_trace_v3));
        r = mlflow(
            r,
            "2.0",
            "/traces",
            get(tr::search_traces).post(tr::start_trace_v2),
        );
        r = mlflow(r, "3.0", "/traces/search", post(tr::search_traces));
        r = mlflow(r, "3.0", "/traces/get", get(tr::get_trace));
        r = mlflow(r, "3.0", "/traces/batchGet", get(tr::batch_get_traces));
        r = mlflow(
            r,
            "3.0",
            "/traces/batchGetInfos",
            post(tr::batch_get_trace_infos),
        );
        r = mlflow(r, "3.0", "/traces/{trace_id}", get(tr::get_trace_info_v3));
        r = mlflow(
            r,
            "2.0",
            "/traces/{trace_id}/info",
            get(tr::get_trace_info_v2),
        );
        r = mlflow(
            r,
            "3.0",
            "/traces/{trace_id}/assessments",
            post(tr::create_assessment),
        );
        r = mlflow(
            r,
            "3.0",
            "/traces/{trace_id}/assessments/{assessment_id}",
            get(tr::get_assessment)
                .patch(tr::update_assessment)
                .delete(tr::delete_assessment),
        );
        r = mlflow(
            r,
            "3.0",
            "/traces/calculate-filter-correlation",
            post(tr::calculate_filter_correlation),
        );
        r = mlflow(r, "2.0", "/traces/{trace_id}", patch(tr::end_trace_v2));
        for version in ["2.0", "3.0"] {
            r = r.route(
                &format!("/ajax-api/{version}/mlflow/get-trace-artifact"),
                get(tr::get_trace_artifact),
            );
        }
        r = mlflow(r, "3.0", "/traces/metrics", post(tr::query_trace_metrics));
    }
    // Databricks-only trace endpoints have no handler in MLflow: 404 with an empty body.
    for path in ["/unified-traces", "/get-online-trace-details"] {
        r = mlflow(
            r,
            "2.0",
            path,
            any(|body: Body| async {
                wire::discard_body(body).await;
                StatusCode::NOT_FOUND
            }),
        );
    }
    r = r.route("/v1/traces", post(traces::otlp_ingest));

    // server-info (MLflow 3 route).
    r = mlflow(r, "3.0", "/server-info", get(get_server_info));
    r
}

async fn health() -> Response {
    text("OK")
}

async fn version() -> Response {
    text(MLFLOW_COMPATIBLE_VERSION)
}

fn text(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn get_server_info(State(state): State<AppState>) -> Response {
    wire::json(&state.0.server_info)
}

/// No route matched. A path with repeated slashes is redirected (308) to its merged form, as
/// MLflow's router (Werkzeug, `merge_slashes`) does: `//model-versions/get-artifact` reaches
/// its handler. Anything else is `404 ENDPOINT_NOT_FOUND`.
async fn endpoint_not_found(req: Request) -> Response {
    let (parts, body) = req.into_parts();
    wire::discard_body(body).await;
    let uri = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    let path = uri.path();
    if path.contains("//") {
        let mut merged = String::with_capacity(path.len());
        for c in path.chars() {
            if !(c == '/' && merged.ends_with('/')) {
                merged.push(c);
            }
        }
        if let Some(query) = uri.query() {
            merged.push('?');
            merged.push_str(query);
        }
        if let Ok(location) = HeaderValue::from_str(&merged) {
            return (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response();
        }
    }
    ApiError::endpoint_not_found(parts.method.as_str(), path).into_response()
}

async fn method_not_allowed(req: Request) -> ApiError {
    let (parts, body) = req.into_parts();
    wire::discard_body(body).await;
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "BAD_REQUEST",
        format!(
            "Method {} is not allowed for {}",
            parts.method,
            parts.uri.path()
        ),
    )
}

/// The answer to a panicking handler: a 500 `INTERNAL_ERROR`, the panic message logged.
fn panic_response(panic: Box<dyn std::any::Any + Send>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a handler panicked");
    ApiError::internal(format!("panic: {detail}")).into_response()
}

/// The whole application: API routes, `/health`, `/version`, the fallbacks, and the layers
/// (request logs, security headers, body limit, `Host` check, cross-origin check).
pub fn router(store: Arc<dyn TrackingStore>, info: &ServerInfo) -> Router {
    router_with_state(AppState::new(store, info), info, None)
}

/// [`router_with_artifacts`] with the model registry `registry`.
pub fn router_with_registry(
    store: Arc<dyn TrackingStore>,
    info: &ServerInfo,
    artifacts: artifacts::Artifacts,
    registry: registry::RegistryAccess,
) -> Router {
    router_with_state(
        AppState::with_registry(store, info, artifacts, registry),
        info,
        None,
    )
}

/// The whole application over the plugins the assembly built ([`Assembly::server`]).
/// With `info.auth` set, the auth app guards every route with the users and grants of
/// `plugins.auth`.
pub fn router_for(info: &ServerInfo, plugins: ServerPlugins) -> Router {
    let auth = match (info.auth, &plugins.auth) {
        (Some(settings), Some(store)) => Some(auth::Auth::new(
            Arc::clone(store),
            Arc::clone(&plugins.tracking),
            settings,
            info.static_prefix.as_deref().unwrap_or_default(),
        )),
        _ => None,
    };
    router_with_state(AppState::from_plugins(info, plugins), info, auth)
}

/// [`router`] over `store` with artifact access through `artifacts`.
pub fn router_with_artifacts(
    store: Arc<dyn TrackingStore>,
    info: &ServerInfo,
    artifacts: artifacts::Artifacts,
) -> Router {
    router_with_state(AppState::with_artifacts(store, info, artifacts), info, None)
}

/// Every route path of the router `info` describes (`auth` adds the auth app's), as
/// registered; the auth layer's table must have an entry for each routed method of each.
pub fn route_paths(info: &ServerInfo) -> Vec<String> {
    let mut paths = vec!["/health".to_owned(), "/version".to_owned()];
    paths.extend(api_routes(info.serve_artifacts).paths);
    if info.auth.is_some() {
        for (version, path, _) in auth::api::routes() {
            paths.push(format!("/api/{version}/mlflow{path}"));
            paths.push(format!("/ajax-api/{version}/mlflow{path}"));
        }
    }
    paths
}

fn router_with_state(state: AppState, info: &ServerInfo, auth: Option<Arc<auth::Auth>>) -> Router {
    let mut app: Router = Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .merge(api_routes(info.serve_artifacts).router.with_state(state));
    if let Some(auth) = auth {
        // A route layer: it runs after routing (so it knows the route template) and only for
        // routed requests; an unknown path stays a 404, a wrong method a 405.
        app = app
            .merge(auth::api::router(Arc::clone(&auth)))
            .route_layer(axum::middleware::from_fn_with_state(auth, auth::authorize));
    }
    // The web UI: added after the auth layer (its page and bundle hold no data; the API calls
    // it makes are authorised as any client's).
    app = app
        .merge(ui::routes(
            info.static_prefix.as_deref().unwrap_or_default(),
        ))
        .fallback(endpoint_not_found)
        .method_not_allowed_fallback(method_not_allowed);
    if let Some(prefix) = info.static_prefix.as_deref() {
        app = Router::new()
            .nest(prefix, app)
            .merge(ui::prefixed_index(prefix))
            .fallback(endpoint_not_found);
    }
    // A panicking handler is a 500 in MLflow's shape (detail logged), not a dropped connection.
    app = app.layer(tower_http::catch_panic::CatchPanicLayer::custom(
        panic_response,
    ));
    let prefix = info.static_prefix.as_deref().unwrap_or_default();
    let hosts = Arc::new(security::HostCheck::new(info.allowed_hosts.clone(), prefix));
    let mut origin_check = security::OriginCheck::new(info.allowed_origins.clone(), prefix);
    origin_check.same_origin = info.allowed_hosts != AllowedHosts::Any;
    let origins = Arc::new(origin_check);
    // Outermost first at run time: the `Host` check, then the cross-origin check.
    let mut app = app
        .layer(axum::middleware::from_fn_with_state(
            origins,
            security::check_origin,
        ))
        .layer(axum::middleware::from_fn_with_state(
            hosts,
            security::check_host,
        ))
        .layer(axum::Extension(BodyLimit(info.body_limit)))
        .layer(axum::Extension(BodyBudget::for_limit(info.body_limit)))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            info.body_read_timeout,
        ));
    for (name, value) in security::SECURITY_HEADERS {
        app = app.layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
    }
    app.layer(
        TraceLayer::new_for_http()
            .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
            .on_response(
                DefaultOnResponse::new()
                    .level(tracing::Level::INFO)
                    .latency_unit(tower_http::LatencyUnit::Micros),
            ),
    )
}

/// Serves `app` on `listener` with the default [`listen::ConnectionLimits`] until `shutdown`
/// resolves; in-flight requests then finish (within the shutdown deadline).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::serve(listener, app, listen::ConnectionLimits::default(), shutdown).await
}

/// The connection limits `[server]` configures.
pub fn connection_limits_for(loaded: &LoadedConfig) -> listen::ConnectionLimits {
    let c = &loaded.config().server;
    listen::ConnectionLimits {
        max_connections: c.max_connections,
        idle_timeout: std::time::Duration::from_secs(c.idle_timeout_secs),
        shutdown_timeout: std::time::Duration::from_secs(c.shutdown_timeout_secs),
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// The facts of a loaded configuration (and its plugins, `registry`) that the router needs.
pub fn server_info_for(loaded: &LoadedConfig, registry: &Registry) -> ServerInfo {
    let c = loaded.config();
    ServerInfo {
        store_type: ServerInfo::store_type_for(&c.store.backend_store_uri),
        serve_artifacts: c.store.serve_artifacts,
        allowed_hosts: AllowedHosts::new(&c.server.allowed_hosts, &c.server.host),
        allowed_origins: AllowedOrigins::new(&c.server.cors_allowed_origins),
        body_limit: c.server.max_body_bytes,
        static_prefix: c.server.static_prefix.clone(),
        history_chunk: history::DEFAULT_HISTORY_CHUNK,
        artifact_schemes: allowed_artifact_schemes(loaded, registry),
        body_read_timeout: std::time::Duration::from_secs(c.server.body_read_timeout_secs),
        auth: c
            .auth
            .enabled
            .then(|| auth::Permission::parse(&c.auth.default_permission))
            .flatten()
            .map(|default_permission| auth::Settings {
                default_permission,
                max_failed_logins: c.auth.max_failed_logins,
            }),
    }
}

/// The schemes an experiment's `artifact_location` may use: `server.allowed_artifact_schemes`
/// if set, else those of the artifact-repository plugins in `registry` and of the configured
/// artifact roots, so no client is told to send artifacts to a host the operator never named.
pub fn allowed_artifact_schemes(loaded: &LoadedConfig, registry: &Registry) -> Vec<String> {
    let configured = &loaded.config().server.allowed_artifact_schemes;
    let mut schemes: Vec<String> = if configured.is_empty() {
        let mut s = registry.names(PluginKind::ArtifactRepository);
        s.push(scheme_of(&loaded.default_artifact_root()));
        s.push(scheme_of(&loaded.artifacts_destination()));
        s
    } else {
        configured.iter().map(|s| s.to_ascii_lowercase()).collect()
    };
    schemes.sort();
    schemes.dedup();
    schemes
}

/// `cairn server`: builds what `assembly` names for a server ([`Assembly::server`], exactly
/// what `cairn check` builds), binds `server.host:server.port`, prints the address to `out`
/// and serves until Ctrl-C or SIGTERM.
pub async fn run(assembly: &Assembly<'_>, out: &mut dyn Write) -> Result<()> {
    let plugins = assembly.server(&mut |step| match step {
        Step::Built { entry, from } => tracing::info!(
            kind = %entry.kind(),
            plugin = %entry.name,
            package = %entry.package,
            origin = %entry.origin,
            "built for {from}"
        ),
        Step::Info(text) => tracing::info!("{text}"),
        Step::Note(text) => tracing::warn!("{text}"),
    })?;
    let loaded = assembly.config();
    let c = loaded.config();
    if let Some(store) = &plugins.auth
        && let Some(admin) = auth::ensure_admin(store.as_ref(), &c.auth.with_mlflow_env()).await?
    {
        tracing::info!(user = %admin, "basic-auth: created the admin user");
    }
    let host = c.server.host.trim_start_matches('[').trim_end_matches(']');
    let listener = tokio::net::TcpListener::bind((host, c.server.port))
        .await
        .map_err(|e| Error::Bind {
            address: format!("{}:{}", c.server.host, c.server.port),
            source: e,
        })?;
    let address = listener.local_addr().map_err(Error::Output)?;
    let info = server_info_for(loaded, assembly.registry());
    let app = router_for(&info, plugins);
    let prefix = info.static_prefix.as_deref().unwrap_or_default();
    writeln!(out, "Cairn is listening on http://{address}{prefix}")
        .and_then(|()| out.flush())
        .map_err(Error::Output)?;
    let backend = crate::secrets::redact_uri(&c.store.backend_store_uri);
    tracing::info!(%address, store = %backend, "serving");
    listen::serve(
        listener,
        app,
        connection_limits_for(loaded),
        shutdown_signal(),
    )
    .await
    .map_err(Error::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_is_a_json_500() {
        use tower::ServiceExt;
        async fn boom() -> &'static str {
            panic!("secret detail")
        }
        let app: Router = Router::new().route("/boom", get(boom)).layer(
            tower_http::catch_panic::CatchPanicLayer::custom(panic_response),
        );
        let res = app
            .oneshot(
                Request::builder()
                    .uri("/boom")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error_code"], "INTERNAL_ERROR");
        assert!(!v["message"].as_str().unwrap().contains("secret detail"));
    }

    #[test]
    fn artifact_schemes_default_to_the_plugins_and_roots_or_the_configured_list() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::builtin().unwrap();
        let mut flags = crate::config::Overrides::default();
        flags.set(
            "store.default_artifact_root",
            "--default-artifact-root",
            "gs://bucket/x",
        );
        let loaded = crate::config::Loader::new(dir.path())
            .overrides(flags.clone())
            .load()
            .unwrap();
        let schemes = allowed_artifact_schemes(&loaded, &registry);
        for s in ["file", "gs"] {
            assert!(schemes.contains(&s.to_owned()), "{schemes:?}");
        }
        assert!(!schemes.iter().any(|s| s == "http" || s == "ftp"));
        flags.set(
            "server.allowed_artifact_schemes",
            "--allowed",
            vec!["S3".to_owned()],
        );
        let loaded = crate::config::Loader::new(dir.path())
            .overrides(flags)
            .load()
            .unwrap();
        assert_eq!(allowed_artifact_schemes(&loaded, &registry), ["s3"]);
    }

    #[test]
    fn store_type_is_sql_for_sql_schemes_only() {
        assert_eq!(
            ServerInfo::store_type_for("sqlite:///x.db").as_deref(),
            Some("SqlStore")
        );
        assert_eq!(
            ServerInfo::store_type_for("postgresql+psycopg2://h/db").as_deref(),
            Some("SqlStore")
        );
        assert_eq!(ServerInfo::store_type_for("./mlruns"), None);
    }
}
