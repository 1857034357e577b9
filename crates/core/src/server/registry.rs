//! Handlers of the model-registry endpoints (api.md §2.2): registered models, model versions,
//! tags, stages and aliases, and the one check every model version's `source` passes
//! ([`validate_source`], the CVE class of DESIGN.md §9).
//!
//! The registry store is built at start-up from `store.registry_store_uri` (which defaults to
//! the backend store URI); when no plugin serves that URI every registry endpoint answers
//! `501 NOT_IMPLEMENTED`.

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::wire::{RequestSpec, Wire, de, empty, json, page, required};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use cairn_plugin_api::entities::{LoggedModel, LoggedModelTag};
use cairn_plugin_api::model_registry::{
    CreateModelVersion, ModelParam, ModelRegistryStore, ModelVersion, RegisteredModel,
    RegistrySearch, RegistryTag, Stage,
};
use cairn_plugin_api::paths::canonical_artifact_path;
use cairn_plugin_api::search::{SearchKind, parse_filter, parse_order_by};
use cairn_plugin_api::validation::{self, validate_max_results};
use cairn_plugin_api::{Error, ErrorKind, TrackingStore};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Default page size of `registered-models/search` (api.md §5.7).
pub const SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT: i64 = 100;
/// Largest page of `registered-models/search`.
pub const SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD: usize = 1000;
/// Default page size of `model-versions/search` (the store's default, api.md §5.7).
pub const SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT: i64 = 10_000;
/// Largest page of `model-versions/search`.
pub const SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD: usize = 200_000;

/// The LoggedModel tag listing the registry versions made from it (api.md §10).
const MODEL_VERSIONS_TAG: &str = "mlflow.modelVersions";

const REGISTRY_NOT_IMPLEMENTED: &str = "The model registry is not available on this Cairn server: \
     no model-registry-store plugin serves store.registry_store_uri.";

/// The registry side of the server state: the store (if a plugin serves the registry URI) and
/// the configured artifact roots a model version's source may lie under.
#[derive(Clone, Default)]
pub struct RegistryAccess {
    store: Option<Arc<dyn ModelRegistryStore>>,
    roots: Vec<String>,
}

impl RegistryAccess {
    /// Access through `store`, accepting sources under `roots` (`default_artifact_root`,
    /// `artifacts_destination`) besides runs' and logged models' artifact locations.
    pub fn new(store: Option<Arc<dyn ModelRegistryStore>>, roots: Vec<String>) -> Self {
        RegistryAccess { store, roots }
    }

    fn store(&self) -> ApiResult<&Arc<dyn ModelRegistryStore>> {
        self.store
            .as_ref()
            .ok_or_else(|| ApiError::not_implemented(REGISTRY_NOT_IMPLEMENTED))
    }
}

fn registry(state: &AppState) -> ApiResult<&Arc<dyn ModelRegistryStore>> {
    state.registry().store()
}

// ----- source validation ----------------------------------------------------------------------

/// The tag that makes a model version a prompt version (MLflow's `IS_PROMPT_TAG_KEY`).
const IS_PROMPT_TAG: &str = "mlflow.prompt.is_prompt";
/// The sources a prompt version may have: placeholders the client and MLflow's stores write,
/// not locations (MLflow's `_PROMPT_SOURCE_PLACEHOLDERS`).
const PROMPT_SOURCES: [&str; 2] = ["dummy-source", "prompt-template"];

/// Whether a new version is a prompt version, as MLflow decides it: the last
/// `mlflow.prompt.is_prompt` tag of the request says `true`, in any case.
fn is_prompt_request(tags: &[RegistryTag]) -> bool {
    tags.iter()
        .rev()
        .find(|t| t.key == IS_PROMPT_TAG)
        .is_some_and(|t| t.value.eq_ignore_ascii_case("true"))
}

/// MLflow's refusal of a model version source.
pub fn invalid_source(source: &str) -> Error {
    Error::invalid(format!("Invalid model version source: '{source}'."))
}

/// MLflow's refusal of a local source that is not inside the artifact directory of the run
/// (`id_name` `run_id`) or LoggedModel (`model_id`) the request names.
fn invalid_local_source(source: &str, id_name: &str) -> Error {
    Error::invalid(format!(
        "Invalid model version source: '{source}'. To use a local path as a model version \
         source, the {id_name} request parameter has to be specified and the local path has to \
         be contained within the artifact directory of the run specified by the {id_name}."
    ))
}

/// MLflow's refusal of a source whose `run_id`/`model_id` names nothing the tracking store has.
fn unknown_source_owner(source: &str, id_name: &str) -> Error {
    Error::invalid(format!(
        "Invalid model version source: '{source}'. The {id_name} request parameter must \
         identify the resource that contains the source."
    ))
}

/// The artifact location of the run `id` a `source` must lie under.
async fn run_root(
    tracking: &dyn TrackingStore,
    id: &str,
    source: &str,
) -> cairn_plugin_api::Result<String> {
    match tracking.get_run(id).await {
        Ok(run) => Ok(run.info.artifact_uri),
        Err(e) if e.kind == ErrorKind::NotFound => Err(unknown_source_owner(source, "run_id")),
        Err(e) => Err(e),
    }
}

/// The artifact location of the LoggedModel `id` a `source` must lie under.
async fn logged_model_root(
    tracking: &dyn TrackingStore,
    id: &str,
    source: &str,
) -> cairn_plugin_api::Result<String> {
    match tracking.get_logged_model(id, false).await {
        Ok(model) => Ok(model.info.artifact_uri),
        Err(e) if e.kind == ErrorKind::NotFound => Err(unknown_source_owner(source, "model_id")),
        Err(e) => Err(e),
    }
}

/// What a validated source resolves to: the storage location (what `get-download-uri`
/// answers), and the run and logged model it inherits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedSource {
    /// Where the version's files are.
    pub location: String,
    /// The producing run.
    pub run_id: Option<String>,
    /// The LoggedModel.
    pub model_id: Option<String>,
}

/// A URI split for prefix comparison: `(scheme-and-authority, path)`, with `file:` URIs and
/// plain paths both as `("file", "/abs/path")`.
fn split_location(uri: &str) -> (String, String) {
    let scheme = crate::registry::scheme_of(uri);
    if scheme == "file" {
        let path = uri
            .strip_prefix("file://")
            .or_else(|| uri.strip_prefix("file:"))
            .unwrap_or(uri);
        let path = if std::path::Path::new(path).is_relative() {
            std::env::current_dir()
                .map(|d| d.join(path).to_string_lossy().into_owned())
                .unwrap_or_else(|_| path.to_owned())
        } else {
            path.to_owned()
        };
        return ("file".to_owned(), path);
    }
    let rest = &uri[scheme.len() + 1..];
    match rest.strip_prefix("//") {
        Some(after) => {
            let (authority, path) = after.split_once('/').unwrap_or((after, ""));
            (format!("{scheme}://{authority}"), format!("/{path}"))
        }
        None => (format!("{scheme}:"), rest.to_owned()),
    }
}

/// Whether `source` is `root` or lies under it, with no traversal (in any encoding) in the
/// part below the root.
fn lies_under(source: &str, root: &str) -> bool {
    let (s_base, s_path) = split_location(source);
    let (r_base, r_path) = split_location(root);
    if !s_base.eq_ignore_ascii_case(&r_base) {
        return false;
    }
    let r_path = r_path.trim_end_matches('/');
    let Some(below) = s_path.strip_prefix(r_path) else {
        return false;
    };
    if !(below.is_empty() || below.starts_with('/')) {
        return false;
    }
    canonical_artifact_path(below.trim_start_matches('/')).is_ok()
}

/// The local path a `file:` URI (percent-decoded) or plain path names; `None` for other
/// schemes.
fn local_path(uri: &str) -> Option<std::path::PathBuf> {
    let (base, path) = split_location(uri);
    if base != "file" {
        return None;
    }
    if uri.starts_with("file:") {
        cairn_plugin_api::paths::percent_decode_utf8(&path)
            .ok()
            .map(Into::into)
    } else {
        Some(path.into())
    }
}

/// `path` with symlinks resolved as far as it exists: its deepest existing ancestor
/// canonicalised, then the rest as written.
fn resolve_existing(path: &std::path::Path) -> std::path::PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(resolved) = std::fs::canonicalize(existing) {
            return rest.iter().rev().fold(resolved, |acc, name| acc.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return path.to_owned(),
        }
    }
}

/// Whether a local `location`, symlinks followed, stays under the local `root`, symlinks
/// followed: the rule the artifact repositories apply to artifact paths. Blocking file-system
/// calls; true when either is not local.
fn stays_under_on_disk(location: &str, root: &str) -> bool {
    match (local_path(location), local_path(root)) {
        (Some(location), Some(root)) => {
            resolve_existing(&location).starts_with(resolve_existing(&root))
        }
        _ => true,
    }
}

/// [`stays_under_on_disk`] for `location` and any of `roots`, off the async executor.
async fn on_disk_under_any(location: &str, roots: Vec<String>) -> bool {
    let location = location.to_owned();
    tokio::task::spawn_blocking(move || roots.iter().any(|r| stays_under_on_disk(&location, r)))
        .await
        .unwrap_or(false)
}

/// Checks a model version's `source` (api.md §2.3, DESIGN.md §9) and resolves it to the
/// location the version is stored at. Accepted:
///
/// - `runs:/<id>/<path>` when `<id>` is `run_id` and no `model_id` is given, as MLflow does:
///   only the two ids are compared (the registry may be another store than the tracking
///   store), and the URI itself is stored; it is resolved through the tracking store when
///   something downloads it ([`crate::uri::Resolver`], `model-versions/get-artifact`);
/// - `models:/<model_id>` when it is `model_id`: the LoggedModel's artifact location;
/// - `models:/<name>/<version>`: that version's location, run and model;
/// - a local path or `file:` URI lying under the artifact location of the LoggedModel
///   `model_id` or, without one, of the run `run_id` — nothing else, as in MLflow (refused
///   with MLflow's "To use a local path as a model version source, ..." message);
/// - any other URI lying under the artifact location of the run `run_id`, of the LoggedModel
///   `model_id`, or under one of `roots`.
///
/// A local location must also stay under its root with symlinks followed, as artifact paths
/// must in the local repository: a link inside a root does not lead a version out of it.
///
/// A `run_id` or `model_id` the tracking store does not know is MLflow's "The run_id request
/// parameter must identify the resource that contains the source." Everything else — relative
/// or scheme-less paths, traversal (`..`, `\`, `;`, NUL, percent-encoded in any depth) — is
/// `InvalidArgument` "Invalid model version source: '…'", whatever else the request carries.
pub async fn validate_source(
    source: &str,
    run_id: Option<&str>,
    model_id: Option<&str>,
    tracking: &dyn TrackingStore,
    registry: &dyn ModelRegistryStore,
    roots: &[String],
) -> cairn_plugin_api::Result<ValidatedSource> {
    let refuse = || invalid_source(source);
    if source.is_empty() || source.chars().any(|c| c.is_control()) {
        return Err(refuse());
    }
    let scheme = crate::registry::scheme_of(source);
    let ids = |location: String| ValidatedSource {
        location,
        run_id: run_id.map(str::to_owned),
        model_id: model_id.map(str::to_owned),
    };
    match scheme.as_str() {
        "runs" => {
            let crate::uri::ArtifactUri::Run { run_id: id, .. } =
                crate::uri::parse(source).map_err(|_| refuse())?
            else {
                return Err(refuse());
            };
            if model_id.is_some() || run_id != Some(id.as_str()) {
                return Err(refuse());
            }
            Ok(ids(source.to_owned()))
        }
        "models" => match crate::uri::parse_model_uri(source).map_err(|_| refuse())? {
            crate::uri::ModelUri::LoggedModel { model_id: id, path } => {
                if path.is_some() || model_id != Some(id.as_str()) {
                    return Err(refuse());
                }
                Ok(ids(logged_model_root(tracking, &id, source).await?))
            }
            crate::uri::ModelUri::Version {
                name,
                version,
                path: None,
            } if version.bytes().all(|b| b.is_ascii_digit()) => {
                let mv = registry.get_model_version(&name, &version).await?;
                let location = registry
                    .get_model_version_download_uri(&name, &version)
                    .await?;
                Ok(ValidatedSource {
                    location,
                    run_id: mv.run_id.or_else(|| run_id.map(str::to_owned)),
                    model_id: mv.model_id.or_else(|| model_id.map(str::to_owned)),
                })
            }
            _ => Err(refuse()),
        },
        "file" => {
            // MLflow: the LoggedModel's directory when `model_id` is given, else the run's.
            let (root, id_name) = match (model_id, run_id) {
                (Some(id), _) => (
                    Some(logged_model_root(tracking, id, source).await?),
                    "model_id",
                ),
                (None, Some(id)) => (Some(run_root(tracking, id, source).await?), "run_id"),
                (None, None) => (None, "run_id"),
            };
            // A scheme-less relative path has no root to lie under.
            let relative =
                !source.starts_with("file:") && std::path::Path::new(source).is_relative();
            let root = root.filter(|root| !relative && lies_under(source, root));
            // Under the root as written, and still under it with symlinks followed.
            let on_disk = match root {
                Some(root) => on_disk_under_any(source, vec![root]).await,
                None => false,
            };
            if on_disk {
                Ok(ids(source.to_owned()))
            } else {
                Err(invalid_local_source(source, id_name))
            }
        }
        _ => {
            let mut allowed: Vec<String> = roots.to_vec();
            if let Some(id) = run_id {
                allowed.push(run_root(tracking, id, source).await?);
            }
            if let Some(id) = model_id {
                allowed.push(logged_model_root(tracking, id, source).await?);
            }
            let under: Vec<String> = allowed
                .into_iter()
                .filter(|root| lies_under(source, root))
                .collect();
            if !under.is_empty() && on_disk_under_any(source, under).await {
                Ok(ids(source.to_owned()))
            } else {
                Err(refuse())
            }
        }
    }
}

// ----- request shapes -------------------------------------------------------------------------

/// A request naming a registered model (`get`, `delete`).
#[derive(Deserialize)]
pub struct ModelRef {
    name: Option<String>,
}
impl RequestSpec for ModelRef {}

/// A request naming a model version (`get`, `delete`, `get-download-uri`).
#[derive(Deserialize)]
pub struct VersionRef {
    name: Option<String>,
    version: Option<String>,
}
impl RequestSpec for VersionRef {}

/// `registered-models/create`.
#[derive(Deserialize)]
pub struct CreateRegisteredModelRequest {
    name: Option<String>,
    #[serde(default)]
    tags: Vec<RegistryTag>,
    description: Option<String>,
}
impl RequestSpec for CreateRegisteredModelRequest {
    const REPEATED: &'static [&'static str] = &["tags"];
}

/// `registered-models/rename`.
#[derive(Deserialize)]
pub struct RenameRequest {
    name: Option<String>,
    new_name: Option<String>,
}
impl RequestSpec for RenameRequest {}

/// `registered-models/update`, `model-versions/update`.
#[derive(Deserialize)]
pub struct UpdateRequest {
    name: Option<String>,
    version: Option<String>,
    description: Option<String>,
}
impl RequestSpec for UpdateRequest {}

/// The two searches.
#[derive(Deserialize)]
pub struct SearchRequest {
    filter: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
}
impl RequestSpec for SearchRequest {
    const REPEATED: &'static [&'static str] = &["order_by"];
}

/// `registered-models/get-latest-versions`.
#[derive(Deserialize)]
pub struct LatestVersionsRequest {
    name: Option<String>,
    #[serde(default)]
    stages: Vec<String>,
}
impl RequestSpec for LatestVersionsRequest {
    const REPEATED: &'static [&'static str] = &["stages"];
}

/// `model-versions/create`.
#[derive(Deserialize)]
pub struct CreateModelVersionRequest {
    name: Option<String>,
    source: Option<String>,
    run_id: Option<String>,
    #[serde(default)]
    tags: Vec<RegistryTag>,
    run_link: Option<String>,
    description: Option<String>,
    model_id: Option<String>,
}
impl RequestSpec for CreateModelVersionRequest {
    const REPEATED: &'static [&'static str] = &["tags"];
}

/// `model-versions/transition-stage`.
#[derive(Deserialize)]
pub struct TransitionRequest {
    name: Option<String>,
    version: Option<String>,
    stage: Option<String>,
    archive_existing_versions: Option<bool>,
}
impl RequestSpec for TransitionRequest {
    const BOOLS: &'static [&'static str] = &["archive_existing_versions"];
}

/// The tag endpoints (`set-tag`, `delete-tag` of models and versions).
#[derive(Deserialize)]
pub struct TagRequest {
    name: Option<String>,
    version: Option<String>,
    key: Option<String>,
    value: Option<String>,
}
impl RequestSpec for TagRequest {}

/// The alias endpoints.
#[derive(Deserialize)]
pub struct AliasRequest {
    name: Option<String>,
    alias: Option<String>,
    version: Option<String>,
}
impl RequestSpec for AliasRequest {}

#[derive(Serialize)]
struct ModelResponse<'a> {
    registered_model: &'a RegisteredModel,
}

#[derive(Serialize)]
struct VersionResponse<'a> {
    model_version: &'a ModelVersion,
}

fn model_response(m: &RegisteredModel) -> Response {
    json(&ModelResponse {
        registered_model: m,
    })
}

fn version_response(v: &ModelVersion) -> Response {
    json(&VersionResponse { model_version: v })
}

fn page_size(max_results: Option<i64>, default: i64, max: usize) -> ApiResult<usize> {
    let n = max_results.unwrap_or(default);
    if n < 1 {
        return Err(ApiError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be a positive integer"
        )));
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    validate_max_results(n, max)?;
    Ok(n)
}

fn search_args(
    req: SearchRequest,
    kind: SearchKind,
    default: i64,
    max: usize,
) -> ApiResult<RegistrySearch> {
    let max_results = page_size(req.max_results, default, max)?;
    let filter = parse_filter(kind, req.filter.as_deref().unwrap_or_default())?;
    let order_by = parse_order_by(kind, &req.order_by)?;
    Ok(RegistrySearch {
        filter,
        max_results,
        order_by,
        page_token: req.page_token.filter(|t| !t.is_empty()),
    })
}

/// With auth on, `args` narrowed (in the query) to the registered models the caller may read;
/// `None` when they may read none.
async fn restrict_to_readable(
    caller: Option<axum::Extension<super::auth::Caller>>,
    mut args: RegistrySearch,
) -> ApiResult<Option<RegistrySearch>> {
    let caller = caller.as_ref().map(|c| &c.0);
    let filter = args.filter.take();
    Ok(
        super::auth::restrict(caller, super::auth::REGISTERED_MODEL, "name", filter)
            .await?
            .map(|filter| RegistrySearch { filter, ..args }),
    )
}

// ----- registered models ----------------------------------------------------------------------

/// `POST registered-models/create` → `{"registered_model"}`.
pub async fn create_registered_model(
    State(state): State<AppState>,
    Wire(req): Wire<CreateRegisteredModelRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let m = store
        .create_registered_model(name, req.tags, req.description)
        .await?;
    Ok(model_response(&m))
}

/// `GET registered-models/get` → `{"registered_model"}`.
pub async fn get_registered_model(
    State(state): State<AppState>,
    Wire(req): Wire<ModelRef>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let m = store
        .get_registered_model(required(&req.name, "name")?)
        .await?;
    Ok(model_response(&m))
}

/// `POST registered-models/rename` → `{"registered_model"}`.
pub async fn rename_registered_model(
    State(state): State<AppState>,
    Wire(req): Wire<RenameRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let new_name = required(&req.new_name, "new_name")?;
    let m = store.rename_registered_model(name, new_name).await?;
    Ok(model_response(&m))
}

/// `PATCH registered-models/update` → `{"registered_model"}`.
pub async fn update_registered_model(
    State(state): State<AppState>,
    Wire(req): Wire<UpdateRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let m = store.update_registered_model(name, req.description).await?;
    Ok(model_response(&m))
}

/// `DELETE registered-models/delete` → `{}`.
pub async fn delete_registered_model(
    State(state): State<AppState>,
    Wire(req): Wire<ModelRef>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    store
        .delete_registered_model(required(&req.name, "name")?)
        .await?;
    Ok(empty())
}

/// `GET registered-models/search` → `{"registered_models", "next_page_token"}`.
pub async fn search_registered_models(
    State(state): State<AppState>,
    caller: Option<axum::Extension<super::auth::Caller>>,
    Wire(req): Wire<SearchRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let args = search_args(
        req,
        SearchKind::RegisteredModels,
        SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT,
        SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD,
    )?;
    let Some(args) = restrict_to_readable(caller, args).await? else {
        return Ok(page("registered_models", &[] as &[RegisteredModel], None));
    };
    let found = store.search_registered_models(args).await?;
    Ok(page(
        "registered_models",
        &found.items,
        found.next_page_token,
    ))
}

/// `GET|POST registered-models/get-latest-versions` → `{"model_versions"}`.
pub async fn get_latest_versions(
    State(state): State<AppState>,
    Wire(req): Wire<LatestVersionsRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let stages = req
        .stages
        .iter()
        .map(|s| Stage::parse(s))
        .collect::<cairn_plugin_api::Result<Vec<_>>>()?;
    let versions = store.get_latest_versions(name, stages).await?;
    Ok(json(&serde_json::json!({ "model_versions": versions })))
}

/// `POST registered-models/set-tag` → `{}`.
pub async fn set_registered_model_tag(
    State(state): State<AppState>,
    Wire(req): Wire<TagRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let key = required(&req.key, "key")?;
    let value = req.value.ok_or_else(|| ApiError::missing("value"))?;
    store
        .set_registered_model_tag(
            name,
            RegistryTag {
                key: key.to_owned(),
                value,
            },
        )
        .await?;
    Ok(empty())
}

/// `DELETE registered-models/delete-tag` → `{}`.
pub async fn delete_registered_model_tag(
    State(state): State<AppState>,
    Wire(req): Wire<TagRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let key = required(&req.key, "key")?;
    store.delete_registered_model_tag(name, key).await?;
    Ok(empty())
}

// ----- model versions -------------------------------------------------------------------------

/// `POST model-versions/create` → `{"model_version"}`, after [`validate_source`]. As in
/// MLflow, a version of a LoggedModel is added to the model's `mlflow.modelVersions` tag; it
/// takes the model's source run when the request names no run, and answers with the model's
/// params and metrics.
pub async fn create_model_version(
    State(state): State<AppState>,
    caller: Option<axum::Extension<super::auth::Caller>>,
    Wire(req): Wire<CreateModelVersionRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let source = required(&req.source, "source")?;
    let run_id = req.run_id.as_deref().filter(|s| !s.is_empty());
    let model_id = req.model_id.as_deref().filter(|s| !s.is_empty());
    let tracking = state.store().as_ref();
    // A prompt version's source is one of MLflow's placeholders, checked as such; it names no
    // files, so there is no run or LoggedModel lineage to check it against.
    let validated = if is_prompt_request(&req.tags) {
        if !PROMPT_SOURCES.contains(&source) {
            return Err(Error::invalid(format!(
                "Invalid prompt source: '{source}'. Prompt sources must use an MLflow placeholder."
            ))
            .into());
        }
        ValidatedSource {
            location: source.to_owned(),
            run_id: run_id.map(str::to_owned),
            model_id: model_id.map(str::to_owned),
        }
    } else {
        validate_source(
            source,
            run_id,
            model_id,
            tracking,
            store.as_ref(),
            &state.registry().roots,
        )
        .await?
    };
    let logged_model = match &validated.model_id {
        Some(id) => find_logged_model(tracking, id).await?,
        None => None,
    };
    let run_id = validated.run_id.or_else(|| {
        logged_model
            .as_ref()
            .and_then(|m| m.info.source_run_id.clone())
    });
    let mut mv = store
        .create_model_version(CreateModelVersion {
            name: name.to_owned(),
            source: source.to_owned(),
            storage_location: (validated.location != source).then_some(validated.location),
            run_id,
            tags: req.tags,
            run_link: req.run_link.filter(|s| !s.is_empty()),
            description: req.description,
            model_id: validated.model_id,
            // With auth on, the version is the authenticated user's.
            user_id: caller.map(|c| c.0.user.username),
        })
        .await?;
    if let Some(model) = &logged_model {
        tracking
            .set_logged_model_tags(
                &model.info.model_id,
                vec![model_versions_tag(model, &mv.name, &mv.version)],
            )
            .await?;
        add_logged_model_data(&mut mv, model);
    }
    Ok(version_response(&mv))
}

/// The LoggedModel `id`, or `None` when the tracking store does not have it (any more).
async fn find_logged_model(
    tracking: &dyn TrackingStore,
    id: &str,
) -> cairn_plugin_api::Result<Option<LoggedModel>> {
    match tracking.get_logged_model(id, false).await {
        Ok(model) => Ok(Some(model)),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `model`'s `mlflow.modelVersions` tag with version `name`/`version` added, in the JSON
/// MLflow writes (`json.dumps` of `[{"name": ..., "version": <int>}, ...]`).
fn model_versions_tag(model: &LoggedModel, name: &str, version: &str) -> LoggedModelTag {
    let entry = |name: &str, version: &str| {
        format!(
            "{{\"name\": {}, \"version\": {version}}}",
            validation::py_json_str(name)
        )
    };
    let existing = model
        .info
        .tags
        .iter()
        .find(|t| t.key == MODEL_VERSIONS_TAG)
        .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(&t.value).ok())
        .unwrap_or_default();
    let mut entries: Vec<String> = Vec::with_capacity(existing.len() + 1);
    let mut present = false;
    for v in &existing {
        let (Some(n), Some(ver)) = (v["name"].as_str(), v["version"].as_i64()) else {
            continue;
        };
        present |= n == name && ver.to_string() == version;
        entries.push(entry(n, &ver.to_string()));
    }
    if !present {
        entries.push(entry(name, version));
    }
    LoggedModelTag {
        key: MODEL_VERSIONS_TAG.to_owned(),
        value: format!("[{}]", entries.join(", ")),
    }
}

/// `model`'s params and metrics on `mv` (MLflow's `ModelVersion.model_params`/`model_metrics`).
fn add_logged_model_data(mv: &mut ModelVersion, model: &LoggedModel) {
    mv.model_params = model
        .data
        .params
        .iter()
        .map(|p| ModelParam {
            name: p.key.clone(),
            value: p.value.clone(),
        })
        .collect();
    mv.model_metrics = model.data.metrics.clone();
}

/// `mv` with its LoggedModel's params and metrics, when it has one the tracking store knows.
async fn with_logged_model_data(state: &AppState, mut mv: ModelVersion) -> ApiResult<ModelVersion> {
    if let Some(id) = mv.model_id.clone()
        && let Some(model) = find_logged_model(state.store().as_ref(), &id).await?
    {
        add_logged_model_data(&mut mv, &model);
    }
    Ok(mv)
}

/// `GET model-versions/get` → `{"model_version"}`.
pub async fn get_model_version(
    State(state): State<AppState>,
    Wire(req): Wire<VersionRef>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let version = required(&req.version, "version")?;
    let mv = store.get_model_version(name, version).await?;
    Ok(version_response(&with_logged_model_data(&state, mv).await?))
}

/// `PATCH model-versions/update` → `{"model_version"}`.
pub async fn update_model_version(
    State(state): State<AppState>,
    Wire(req): Wire<UpdateRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let version = required(&req.version, "version")?;
    let mv = store
        .update_model_version(name, version, req.description)
        .await?;
    Ok(version_response(&mv))
}

/// `POST model-versions/transition-stage` → `{"model_version"}`.
pub async fn transition_model_version_stage(
    State(state): State<AppState>,
    Wire(req): Wire<TransitionRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let version = required(&req.version, "version")?;
    let stage_name = required(&req.stage, "stage")?;
    let archive = req
        .archive_existing_versions
        .ok_or_else(|| ApiError::missing("archive_existing_versions"))?;
    let stage = Stage::parse(stage_name)?;
    if archive && !stage.is_active() {
        // MLflow raises this with the default error code: a 500.
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            format!(
                "Model version transition cannot archive existing model versions because \
                 '{stage_name}' is not an Active stage. Valid stages are ['Staging', 'Production']"
            ),
        ));
    }
    let mv = store
        .transition_model_version_stage(name, version, stage, archive)
        .await?;
    Ok(version_response(&mv))
}

/// `DELETE model-versions/delete` → `{}`.
pub async fn delete_model_version(
    State(state): State<AppState>,
    Wire(req): Wire<VersionRef>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let version = required(&req.version, "version")?;
    store.delete_model_version(name, version).await?;
    Ok(empty())
}

/// `GET model-versions/get-download-uri` → `{"artifact_uri"}`.
pub async fn get_model_version_download_uri(
    State(state): State<AppState>,
    Wire(req): Wire<VersionRef>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let version = required(&req.version, "version")?;
    let uri = store.get_model_version_download_uri(name, version).await?;
    Ok(json(&serde_json::json!({ "artifact_uri": uri })))
}

/// `GET model-versions/search` → `{"model_versions", "next_page_token"}`.
pub async fn search_model_versions(
    State(state): State<AppState>,
    caller: Option<axum::Extension<super::auth::Caller>>,
    Wire(req): Wire<SearchRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let args = search_args(
        req,
        SearchKind::ModelVersions,
        SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT,
        SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD,
    )?;
    let Some(args) = restrict_to_readable(caller, args).await? else {
        return Ok(page("model_versions", &[] as &[ModelVersion], None));
    };
    let found = store.search_model_versions(args).await?;
    Ok(page("model_versions", &found.items, found.next_page_token))
}

/// `POST model-versions/set-tag` → `{}`.
pub async fn set_model_version_tag(
    State(state): State<AppState>,
    Wire(req): Wire<TagRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let version = required(&req.version, "version")?;
    let key = required(&req.key, "key")?;
    let value = req.value.ok_or_else(|| ApiError::missing("value"))?;
    store
        .set_model_version_tag(
            name,
            version,
            RegistryTag {
                key: key.to_owned(),
                value,
            },
        )
        .await?;
    Ok(empty())
}

/// `DELETE model-versions/delete-tag` → `{}`.
pub async fn delete_model_version_tag(
    State(state): State<AppState>,
    Wire(req): Wire<TagRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let version = required(&req.version, "version")?;
    let key = required(&req.key, "key")?;
    store.delete_model_version_tag(name, version, key).await?;
    Ok(empty())
}

/// `model-versions/get-artifact`.
#[derive(Deserialize)]
pub struct GetVersionArtifactRequest {
    name: Option<String>,
    version: Option<String>,
    path: Option<String>,
}
impl RequestSpec for GetVersionArtifactRequest {}

/// `GET /model-versions/get-artifact?name=&version=&path=`: one file of a model version as an
/// attachment (the UI's download), read from the version's download URI.
pub async fn get_model_version_artifact(
    State(state): State<AppState>,
    Wire(req): Wire<GetVersionArtifactRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let version = required(&req.version, "version")?;
    let path = super::artifacts::canonical_some(required(&req.path, "path")?)?;
    let uri = store.get_model_version_download_uri(name, version).await?;
    let resolved = state
        .artifacts()
        .download_location(&uri, state.store().clone())
        .await?;
    let full = resolved.join(Some(&path)).unwrap_or_default();
    super::artifacts::send_file(&resolved.repository, &full, &path).await
}

// ----- aliases --------------------------------------------------------------------------------

/// `POST registered-models/alias` → `{}`.
pub async fn set_registered_model_alias(
    State(state): State<AppState>,
    Wire(req): Wire<AliasRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let alias = required(&req.alias, "alias")?;
    let version = required(&req.version, "version")?;
    store
        .set_registered_model_alias(name, alias, version)
        .await?;
    Ok(empty())
}

/// `DELETE registered-models/alias` → `{}`.
pub async fn delete_registered_model_alias(
    State(state): State<AppState>,
    Wire(req): Wire<AliasRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let alias = required(&req.alias, "alias")?;
    store.delete_registered_model_alias(name, alias).await?;
    Ok(empty())
}

/// `GET registered-models/alias` → `{"model_version"}`.
pub async fn get_model_version_by_alias(
    State(state): State<AppState>,
    Wire(req): Wire<AliasRequest>,
) -> ApiResult<Response> {
    let store = registry(&state)?;
    let name = required(&req.name, "name")?;
    let alias = required(&req.alias, "alias")?;
    let mv = store.get_model_version_by_alias(name, alias).await?;
    Ok(version_response(&with_logged_model_data(&state, mv).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lies_under_compares_whole_segments_in_one_spelling() {
        assert!(lies_under("s3://b/root/x", "s3://b/root"));
        assert!(lies_under("s3://b/root", "s3://b/root/"));
        assert!(!lies_under("s3://b/root-evil/x", "s3://b/root"));
        assert!(!lies_under("s3://other/root/x", "s3://b/root"));
        assert!(!lies_under("s3://b/root/../x", "s3://b/root"));
        assert!(!lies_under("s3://b/root/%252e%252e/x", "s3://b/root"));
        assert!(lies_under("file:///data/runs/1/a", "/data/runs/1"));
        assert!(lies_under("/data/runs/1/a", "file:///data/runs/1"));
        assert!(!lies_under("/data/runs/10/a", "/data/runs/1"));
        assert!(!lies_under("/data/runs/1/..%5c..%5cx", "/data/runs/1"));
        assert!(!lies_under("http://h/root/x", "s3://b/root"));
    }
}
