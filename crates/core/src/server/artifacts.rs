//! Artifacts through the tracking server (api.md §3 and the artifact routes of §1.2–§1.4).
//!
//! **The proxy** (`/api/2.0/mlflow-artifacts/...`, also under `/ajax-api/`): the storage behind
//! it is the repository of `store.artifacts_destination`, built once at start-up. Downloads
//! stream the repository's bytes with `Content-Length` when known; uploads stream the request
//! body into the repository — no body limit applies to them, and nothing is buffered whole.
//! Listing answers basenames, as MLflow. Multipart uploads and presigned downloads work when the
//! destination repository can do them, else answer `501` with MLflow's messages. With
//! `--no-serve-artifacts` every proxy route answers `503 text/plain`.
//!
//! **Tracking endpoints** (`artifacts/list`, `logged-models/{id}/artifacts/directories`,
//! `GET /get-artifact`, `logged-models/{id}/artifacts/files`, `POST upload-artifact`): the run's
//! or model's root is resolved by [`crate::uri::Resolver`]: a proxied root
//! (`mlflow-artifacts:`, `http(s)`) maps onto the destination when serving; any other root gets
//! its own repository from the plugin registry (api.md §3.2).
//!
//! Every path from a request goes through the one canonicaliser
//! ([`cairn_plugin_api::paths`]); a path it refuses is `400 INVALID_PARAMETER_VALUE
//! "Invalid path"`, MLflow's answer.

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::wire::{RequestSpec, Wire, WirePath, de, empty, json, read_body};
use crate::uri::{Proxy, Repositories, Resolved, Resolver, canonical_opt};
use axum::body::Body;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_plugin_api::artifacts::{ByteStream, CompletedPart};
use cairn_plugin_api::{ArtifactRepository, Error as PluginError, ErrorKind, TrackingStore};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// MLflow's answer to an unsafe path.
pub const INVALID_PATH: &str = "Invalid path";
/// MLflow's message when the destination cannot do multipart uploads.
pub const MULTIPART_UPLOAD_UNSUPPORTED: &str =
    "Multipart upload is not supported for the current artifact repository";
/// MLflow's message when the destination cannot sign download URLs.
pub const MULTIPART_DOWNLOAD_UNSUPPORTED: &str =
    "Multipart download is not supported for the current artifact repository";
/// The largest body `upload-artifact` accepts: 10 MB, as MLflow.
pub const UPLOAD_ARTIFACT_MAX_BYTES: usize = 10 * 1024 * 1024;
/// MLflow's message for a larger one.
pub const UPLOAD_ARTIFACT_TOO_LARGE: &str = "Artifact size is too large. Max size is 10MB.";
/// The lifetime of a presigned download URL: MLflow's default
/// `MLFLOW_PRESIGNED_DOWNLOAD_URL_TTL_SECONDS`.
pub const PRESIGNED_DOWNLOAD_TTL_SECS: u64 = 300;
/// MLflow's text for a proxy route while `--no-serve-artifacts` is in force.
pub const SERVING_DISABLED: &str = "Endpoint disabled due to the mlflow server running with \
    `--no-serve-artifacts`. To enable artifacts server functionality, run `mlflow server` with \
    `--serve-artifacts`";

/// What the artifact handlers share: the proxy's destination (when serving) and the resolver
/// of run and model roots.
#[derive(Clone)]
pub struct Artifacts {
    destination: Option<Arc<dyn ArtifactRepository>>,
    resolver: Resolver,
}

impl std::fmt::Debug for Artifacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Artifacts")
            .field(
                "destination",
                &self.destination.as_ref().map(|d| d.root_uri().to_owned()),
            )
            .finish()
    }
}

impl Artifacts {
    /// Artifact access building repositories with `repositories`; `destination` is the proxy's
    /// storage when the server serves artifacts (`None` with `--no-serve-artifacts`).
    pub fn new(
        repositories: Repositories,
        destination: Option<Arc<dyn ArtifactRepository>>,
    ) -> Self {
        let proxy = match &destination {
            Some(repo) => Proxy::Destination(repo.clone()),
            None => Proxy::Unavailable(
                "This artifact root is served by the artifact proxy, which this server does \
                 not serve (it runs with --no-serve-artifacts)"
                    .to_owned(),
            ),
        };
        Artifacts {
            resolver: Resolver::new(repositories, proxy, None),
            destination,
        }
    }

    /// Artifact access with the built-in plugins and no proxy destination.
    pub fn builtin_without_proxy() -> Self {
        let registry = crate::Registry::builtin().unwrap_or_default();
        Self::new(
            Repositories::new(Arc::new(registry), crate::assembly::Contexts::default()),
            None,
        )
    }

    /// The proxy's storage, when serving.
    pub fn destination(&self) -> Option<&Arc<dyn ArtifactRepository>> {
        self.destination.as_ref()
    }

    /// `server-info`'s `multipart_uploads_enabled`: the destination takes multipart uploads
    /// with presigned part URLs (the only kind MLflow's client can use).
    pub fn multipart_uploads_enabled(&self) -> bool {
        self.destination.as_ref().is_some_and(|d| {
            let caps = d.capabilities();
            caps.multipart_upload && caps.presigned_urls
        })
    }

    /// `server-info`'s `multipart_downloads_enabled`: the destination signs download URLs.
    pub fn multipart_downloads_enabled(&self) -> bool {
        self.destination
            .as_ref()
            .is_some_and(|d| d.capabilities().presigned_urls)
    }

    fn proxy(&self) -> ApiResult<&Arc<dyn ArtifactRepository>> {
        self.destination
            .as_ref()
            .ok_or_else(|| ApiError::not_implemented("The artifact proxy has no destination"))
    }

    /// The repository and base path of a run's or model's artifact root.
    pub(crate) fn root(&self, uri: &str) -> ApiResult<Resolved> {
        Ok(self.resolver.resolve_root(uri)?)
    }

    /// The repository and path of a model version's download URI, which may be a `runs:/`
    /// URI (looked up in `tracking`) as well as a root.
    pub(crate) async fn download_location(
        &self,
        uri: &str,
        tracking: Arc<dyn TrackingStore>,
    ) -> ApiResult<Resolved> {
        let resolver = self
            .resolver
            .clone()
            .with_runs(Arc::new(crate::uri::StoreRuns(tracking)));
        Ok(resolver.resolve(uri).await?)
    }
}

/// The `503 text/plain` of every proxy route under `--no-serve-artifacts`.
pub async fn serving_disabled() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        SERVING_DISABLED,
    )
        .into_response()
}

// ----- paths -----------------------------------------------------------------------------------

/// The canonical form of a request path (`None`: the root); anything the canonicaliser refuses
/// is MLflow's "Invalid path".
fn canonical(raw: &str) -> ApiResult<Option<String>> {
    canonical_opt(raw).map_err(|e| {
        tracing::debug!(path = raw, reason = %e.message, "refused an artifact path");
        ApiError::invalid(INVALID_PATH)
    })
}

/// The canonical path of a request that must name something below the root.
pub(crate) fn canonical_some(raw: &str) -> ApiResult<String> {
    canonical(raw)?.ok_or_else(|| ApiError::invalid(INVALID_PATH))
}

/// The `{*path}` of a proxy route as the router captured it: percent-decoded once, as
/// [`cairn_plugin_api::paths::canonical_url_path`] would; the canonicaliser decodes what is left
/// (double encodings) for its checks. A path that is not UTF-8 once decoded is "Invalid path".
pub struct ProxyPath(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ProxyPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::invalid(INVALID_PATH))?;
        Ok(ProxyPath(
            params
                .iter()
                .find(|(k, _)| *k == "path")
                .map_or_else(String::new, |(_, v)| v.to_owned()),
        ))
    }
}

// ----- response pieces -------------------------------------------------------------------------

/// One entry of a listing, as MLflow writes it: `is_dir` always present, `file_size` for files.
#[derive(Debug, Serialize)]
struct WireFileInfo {
    path: String,
    is_dir: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_size: Option<i64>,
}

/// `{"files": [...]}` (empty listing: `{}`), with `root_uri` for the tracking endpoints.
#[derive(Debug, Serialize)]
struct ListResponse<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    root_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<WireFileInfo>,
}

/// MLflow's MIME type for a file name: `text/plain` for its text extensions (and `MLmodel`,
/// `MLproject`), else the registered type, else `application/octet-stream`.
pub fn guess_mime_type(name: &str) -> String {
    const TEXT: &[&str] = &[
        "txt",
        "log",
        "err",
        "cfg",
        "conf",
        "cnf",
        "cf",
        "ini",
        "properties",
        "prop",
        "hocon",
        "toml",
        "yaml",
        "yml",
        "xml",
        "json",
        "js",
        "py",
        "py3",
        "csv",
        "tsv",
        "md",
        "rst",
        "ipynb",
        "MLmodel",
        "MLproject",
    ];
    let base = name.rsplit('/').next().unwrap_or(name);
    let ext = match base.rfind('.') {
        Some(i) if i > 0 => &base[i + 1..],
        _ => base,
    };
    if TEXT.contains(&ext) {
        return "text/plain".to_owned();
    }
    mime_guess::from_path(base)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_owned()
}

/// `Content-Disposition: attachment` for `filename`: a plain (or quoted) `filename=` for ASCII
/// names; for others an ASCII fallback plus RFC 5987 `filename*=UTF-8''...`, as MLflow.
pub fn content_disposition(filename: &str) -> String {
    fn is_token(s: &str) -> bool {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    }
    fn quoted(s: &str) -> String {
        if is_token(s) {
            return s.to_owned();
        }
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c if c.is_ascii_control() => {}
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
    if filename.is_ascii() && !filename.bytes().any(|b| b.is_ascii_control()) {
        return format!("attachment; filename={}", quoted(filename));
    }
    let fallback: String = filename
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect();
    let fallback = if fallback.is_empty() {
        "download".to_owned()
    } else {
        fallback
    };
    let mut encoded = String::new();
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!(
        "attachment; filename={}; filename*=UTF-8''{encoded}",
        quoted(&fallback)
    )
}

/// Streams `path` of `repo` as an attachment named after its last segment; `shown` is the path
/// named in errors. A directory is MLflow's 400, a missing file its 404.
pub(crate) async fn send_file(
    repo: &Arc<dyn ArtifactRepository>,
    path: &str,
    shown: &str,
) -> ApiResult<Response> {
    let download = match repo.get(path).await {
        Ok(d) => d,
        Err(e) if e.kind == ErrorKind::NotFound => {
            let is_dir = !repo.list(Some(path)).await.unwrap_or_default().is_empty();
            return Err(if is_dir {
                ApiError::invalid(format!(
                    "Artifact path refers to a directory, not a file: '{shown}'"
                ))
            } else {
                ApiError::not_found(format!("No such artifact: '{shown}'"))
            });
        }
        Err(e) => return Err(e.into()),
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    let body = logged_download(download.body, repo.root_uri(), path);
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    if let Some(size) = download.size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    if let Ok(v) = HeaderValue::from_str(&guess_mime_type(name)) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&content_disposition(name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// `body` of the download of `path` from the repository at `root`, logging a failure of the
/// stream. The status line and headers are gone by then, so the error is passed on: hyper
/// aborts the body (a chunked body ends without its last chunk, a sized one short), which the
/// client sees as a failed download rather than a complete file. The log line is an error in
/// the request's span (method and URI) naming the plugin (the root's scheme), the root and
/// the path.
fn logged_download(body: ByteStream, root: &str, path: &str) -> ByteStream {
    let plugin = crate::registry::scheme_of(root);
    let (root, path) = (
        crate::secrets::redact_uri(root).into_owned(),
        path.to_owned(),
    );
    Box::pin(body.inspect_err(move |e| {
        tracing::error!(
            %plugin,
            repository = %root,
            %path,
            error = %e,
            "artifact download failed after the response started; aborting its body"
        );
    }))
}

/// A request body as a [`ByteStream`], never collected whole.
fn body_stream(body: Body) -> ByteStream {
    Box::pin(
        body.into_data_stream()
            .map_err(|e| PluginError::invalid(format!("could not read the request body: {e}"))),
    )
}

// ----- the proxy (api.md §3.1) -----------------------------------------------------------------

/// `GET /mlflow-artifacts/artifacts/<path>`: the file's bytes.
pub async fn download(
    State(state): State<AppState>,
    ProxyPath(raw): ProxyPath,
) -> ApiResult<Response> {
    let repo = state.artifacts().proxy()?;
    let path = canonical_some(&raw)?;
    send_file(repo, &path, &path).await
}

/// `PUT /mlflow-artifacts/artifacts/<path>`: the request body, streamed, becomes the file.
pub async fn upload(
    State(state): State<AppState>,
    ProxyPath(raw): ProxyPath,
    req: Request,
) -> ApiResult<Response> {
    let repo = state.artifacts().proxy()?;
    let path = canonical_some(&raw)?;
    if raw.ends_with('/') {
        return Err(ApiError::invalid(format!(
            "Artifact path must name a file, not a directory: '{path}'"
        )));
    }
    repo.put(&path, body_stream(req.into_body())).await?;
    Ok(empty())
}

/// `DELETE /mlflow-artifacts/artifacts/<path>`: the file or directory tree.
pub async fn delete(
    State(state): State<AppState>,
    ProxyPath(raw): ProxyPath,
) -> ApiResult<Response> {
    let repo = state.artifacts().proxy()?;
    let path = canonical_some(&raw)?;
    repo.delete(Some(&path)).await?;
    Ok(empty())
}

/// `GET /mlflow-artifacts/artifacts?path=`.
#[derive(Deserialize)]
pub struct ProxyListRequest {
    path: Option<String>,
}
impl RequestSpec for ProxyListRequest {}

/// `GET /mlflow-artifacts/artifacts?path=<dir>`: the directory's entries by basename; a missing
/// directory is `{}`.
pub async fn list(
    State(state): State<AppState>,
    Wire(req): Wire<ProxyListRequest>,
) -> ApiResult<Response> {
    let repo = state.artifacts().proxy()?;
    let path = canonical(req.path.as_deref().unwrap_or_default())?;
    let files = repo
        .list(path.as_deref())
        .await?
        .into_iter()
        .map(|f| WireFileInfo {
            path: f.path.rsplit('/').next().unwrap_or(&f.path).to_owned(),
            is_dir: f.is_dir,
            file_size: if f.is_dir { None } else { f.file_size },
        })
        .collect();
    Ok(json(&ListResponse {
        root_uri: None,
        files,
    }))
}

/// `POST /mlflow-artifacts/mpu/create/<dir>`.
#[derive(Deserialize)]
pub struct CreateMultipartRequest {
    path: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    num_parts: Option<i64>,
}
impl RequestSpec for CreateMultipartRequest {}

/// The file a multipart request names: `<dir>/<basename of the body's path>` (the client sends
/// its local file path; MLflow keeps its basename).
fn multipart_target(raw_dir: &str, file: &Option<String>) -> ApiResult<String> {
    let file = super::wire::required(file, "path")?;
    let name = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let dir = canonical(raw_dir)?;
    let name = canonical_some(name)?;
    Ok(crate::uri::join(dir.as_deref(), Some(&name)).unwrap_or(name))
}

fn multipart_repo(state: &AppState) -> ApiResult<&Arc<dyn ArtifactRepository>> {
    let repo = state.artifacts().proxy()?;
    if repo.capabilities().multipart_upload {
        Ok(repo)
    } else {
        Err(ApiError::not_implemented(MULTIPART_UPLOAD_UNSUPPORTED))
    }
}

/// Unsupported multipart operations answer MLflow's message, which its client recognises.
fn multipart_error(e: PluginError) -> ApiError {
    if e.kind == ErrorKind::Unsupported {
        ApiError::not_implemented(MULTIPART_UPLOAD_UNSUPPORTED)
    } else {
        e.into()
    }
}

#[derive(Serialize)]
struct WireCredential {
    url: String,
    part_number: u32,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct CreateMultipartResponse {
    upload_id: String,
    credentials: Vec<WireCredential>,
}

/// `POST /mlflow-artifacts/mpu/create/<dir>` → `{upload_id, credentials: [{url, part_number,
/// headers}]}`: presigned part URLs the client uploads to directly.
pub async fn create_multipart(
    State(state): State<AppState>,
    ProxyPath(raw): ProxyPath,
    Wire(req): Wire<CreateMultipartRequest>,
) -> ApiResult<Response> {
    let repo = multipart_repo(&state)?;
    let target = multipart_target(&raw, &req.path)?;
    let num_parts = req.num_parts.unwrap_or(1);
    let num_parts = u32::try_from(num_parts)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "num_parts must be between 1 and 10000, got {num_parts}"
            ))
        })?;
    let upload = repo
        .create_multipart_upload(&target, num_parts)
        .await
        .map_err(multipart_error)?;
    let mut credentials = Vec::with_capacity(upload.credentials.len());
    for c in upload.credentials {
        let Some(url) = c.url else {
            // MLflow's client uploads parts to the URL itself; without one it cannot.
            let _ = repo
                .abort_multipart_upload(&target, &upload.upload_id)
                .await;
            return Err(ApiError::not_implemented(MULTIPART_UPLOAD_UNSUPPORTED));
        };
        credentials.push(WireCredential {
            url,
            part_number: c.part_number,
            headers: c.headers,
        });
    }
    Ok(json(&CreateMultipartResponse {
        upload_id: upload.upload_id,
        credentials,
    }))
}

/// One part in `mpu/complete`.
#[derive(Deserialize)]
pub struct WirePart {
    #[serde(default, deserialize_with = "de::opt_i64")]
    part_number: Option<i64>,
    etag: Option<String>,
}

/// `POST /mlflow-artifacts/mpu/complete/<dir>`.
#[derive(Deserialize)]
pub struct CompleteMultipartRequest {
    path: Option<String>,
    upload_id: Option<String>,
    #[serde(default)]
    parts: Vec<WirePart>,
}
impl RequestSpec for CompleteMultipartRequest {}

/// `POST /mlflow-artifacts/mpu/complete/<dir>` → `{}`: the file appears whole.
pub async fn complete_multipart(
    State(state): State<AppState>,
    ProxyPath(raw): ProxyPath,
    Wire(req): Wire<CompleteMultipartRequest>,
) -> ApiResult<Response> {
    let repo = multipart_repo(&state)?;
    let target = multipart_target(&raw, &req.path)?;
    if req.parts.is_empty() {
        return Err(ApiError::missing("parts"));
    }
    let parts = req
        .parts
        .into_iter()
        .map(|p| {
            let part_number = p
                .part_number
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ApiError::missing("parts.part_number"))?;
            Ok(CompletedPart {
                part_number,
                etag: p.etag.unwrap_or_default(),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    repo.complete_multipart_upload(&target, req.upload_id.as_deref().unwrap_or_default(), parts)
        .await
        .map_err(multipart_error)?;
    Ok(empty())
}

/// `POST /mlflow-artifacts/mpu/abort/<dir>`.
#[derive(Deserialize)]
pub struct AbortMultipartRequest {
    path: Option<String>,
    upload_id: Option<String>,
}
impl RequestSpec for AbortMultipartRequest {}

/// `POST /mlflow-artifacts/mpu/abort/<dir>` → `{}`: the parts are discarded.
pub async fn abort_multipart(
    State(state): State<AppState>,
    ProxyPath(raw): ProxyPath,
    Wire(req): Wire<AbortMultipartRequest>,
) -> ApiResult<Response> {
    let repo = multipart_repo(&state)?;
    let target = multipart_target(&raw, &req.path)?;
    repo.abort_multipart_upload(&target, req.upload_id.as_deref().unwrap_or_default())
        .await
        .map_err(multipart_error)?;
    Ok(empty())
}

#[derive(Serialize)]
struct PresignedResponse {
    url: String,
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_size: Option<i64>,
}

/// `GET /mlflow-artifacts/presigned/<path>` → `{url, headers, file_size}`.
pub async fn presigned_download(
    State(state): State<AppState>,
    ProxyPath(raw): ProxyPath,
) -> ApiResult<Response> {
    let repo = state.artifacts().proxy()?;
    if !repo.capabilities().presigned_urls {
        return Err(ApiError::not_implemented(MULTIPART_DOWNLOAD_UNSUPPORTED));
    }
    let path = canonical_some(&raw)?;
    let signed = repo
        .presigned_download_url(&path, PRESIGNED_DOWNLOAD_TTL_SECS)
        .await
        .map_err(|e| {
            if e.kind == ErrorKind::Unsupported {
                ApiError::not_implemented(MULTIPART_DOWNLOAD_UNSUPPORTED)
            } else {
                e.into()
            }
        })?;
    // The size comes from the parent's listing (the client needs it to split ranges).
    let parent = path.rsplit_once('/').map(|(p, _)| p);
    let file_size = repo
        .list(parent)
        .await?
        .into_iter()
        .find(|f| f.path == path && !f.is_dir)
        .ok_or_else(|| ApiError::not_found(format!("No such artifact: '{path}'")))?
        .file_size;
    Ok(json(&PresignedResponse {
        url: signed.url,
        headers: signed.headers,
        file_size,
    }))
}

// ----- tracking endpoints (api.md §1.2–§1.4) ---------------------------------------------------

/// Lists `path` under `root` as the tracking endpoints answer: paths relative to the root.
async fn list_root(root_uri: &str, resolved: &Resolved, path: Option<&str>) -> ApiResult<Response> {
    let full = resolved.join(path);
    let files = resolved
        .repository
        .list(full.as_deref())
        .await?
        .into_iter()
        .map(|f| {
            let name = f.path.rsplit('/').next().unwrap_or(&f.path);
            WireFileInfo {
                path: crate::uri::join(path, Some(name)).unwrap_or_default(),
                is_dir: f.is_dir,
                file_size: if f.is_dir { None } else { f.file_size },
            }
        })
        .collect();
    Ok(json(&ListResponse {
        root_uri: Some(root_uri),
        files,
    }))
}

/// `artifacts/list`.
#[derive(Deserialize)]
pub struct ListArtifactsRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    path: Option<String>,
    #[allow(dead_code)] // Accepted and unused, as in MLflow.
    page_token: Option<String>,
}
impl RequestSpec for ListArtifactsRequest {}

/// `GET artifacts/list?run_id=&path=` → `{root_uri, files}`.
pub async fn list_artifacts(
    State(state): State<AppState>,
    Wire(req): Wire<ListArtifactsRequest>,
) -> ApiResult<Response> {
    let run_id = super::wire::run_id(&req.run_id, &req.run_uuid)?;
    let path = canonical(req.path.as_deref().unwrap_or_default())?;
    let run = state.store().get_run(run_id).await?;
    let root = &run.info.artifact_uri;
    let resolved = state.artifacts().root(root)?;
    list_root(root, &resolved, path.as_deref()).await
}

/// `logged-models/{model_id}/artifacts/directories`.
#[derive(Deserialize)]
pub struct ListModelArtifactsRequest {
    artifact_directory_path: Option<String>,
    #[allow(dead_code)] // Accepted and unused, as in MLflow.
    page_token: Option<String>,
}
impl RequestSpec for ListModelArtifactsRequest {}

/// `GET logged-models/{model_id}/artifacts/directories?artifact_directory_path=` →
/// `{root_uri, files}`.
pub async fn list_logged_model_artifacts(
    State(state): State<AppState>,
    WirePath(model_id): WirePath<String>,
    Wire(req): Wire<ListModelArtifactsRequest>,
) -> ApiResult<Response> {
    let path = canonical(req.artifact_directory_path.as_deref().unwrap_or_default())?;
    let model = state.store().get_logged_model(&model_id, false).await?;
    let root = &model.info.artifact_uri;
    let resolved = state.artifacts().root(root)?;
    list_root(root, &resolved, path.as_deref()).await
}

/// `GET /get-artifact?run_id=&path=`.
#[derive(Deserialize)]
pub struct GetArtifactRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    path: Option<String>,
}
impl RequestSpec for GetArtifactRequest {}

/// `GET /get-artifact?run_id=&path=`: one run artifact as an attachment (the UI's download).
pub async fn get_artifact(
    State(state): State<AppState>,
    Wire(req): Wire<GetArtifactRequest>,
) -> ApiResult<Response> {
    let run_id = super::wire::run_id(&req.run_id, &req.run_uuid)?;
    let path = canonical_some(super::wire::required(&req.path, "path")?)?;
    let run = state.store().get_run(run_id).await?;
    let resolved = state.artifacts().root(&run.info.artifact_uri)?;
    let full = resolved.join(Some(&path)).unwrap_or_default();
    send_file(&resolved.repository, &full, &path).await
}

/// `logged-models/{model_id}/artifacts/files?artifact_file_path=`.
#[derive(Deserialize)]
pub struct GetModelArtifactRequest {
    artifact_file_path: Option<String>,
}
impl RequestSpec for GetModelArtifactRequest {}

/// `GET /ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts/files?artifact_file_path=`:
/// one logged-model artifact as an attachment.
pub async fn get_logged_model_artifact(
    State(state): State<AppState>,
    WirePath(model_id): WirePath<String>,
    Wire(req): Wire<GetModelArtifactRequest>,
) -> ApiResult<Response> {
    let path = canonical_some(super::wire::required(
        &req.artifact_file_path,
        "artifact_file_path",
    )?)?;
    let model = state.store().get_logged_model(&model_id, false).await?;
    let resolved = state.artifacts().root(&model.info.artifact_uri)?;
    let full = resolved.join(Some(&path)).unwrap_or_default();
    send_file(&resolved.repository, &full, &path).await
}

/// `POST /ajax-api/2.0/mlflow/upload-artifact?run_uuid=&path=` with the file as the raw body
/// (at most 10 MB): the UI's upload into a run's artifacts.
pub async fn upload_artifact(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let (run_id, path) = match upload_target(&parts) {
        Ok(target) => target,
        Err(e) => {
            // Read, so the kept-alive connection survives the refusal.
            crate::server::wire::discard_body(body).await;
            return Err(e);
        }
    };
    let data = read_body(body, UPLOAD_ARTIFACT_MAX_BYTES)
        .await
        .map_err(|e| {
            if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::invalid(UPLOAD_ARTIFACT_TOO_LARGE)
            } else {
                e
            }
        })?;
    if data.is_empty() {
        return Err(ApiError::invalid("Request must specify data."));
    }
    let run = state.store().get_run(&run_id).await?;
    let resolved = state.artifacts().root(&run.info.artifact_uri)?;
    let full = resolved.join(Some(&path)).unwrap_or_default();
    let body: ByteStream = Box::pin(futures_util::stream::once(async move { Ok(data) }));
    resolved.repository.put(&full, body).await?;
    Ok(empty())
}

/// `upload-artifact`'s run id and canonical path, from the query; a body declared larger than
/// MLflow's limit is refused here, before it is read.
fn upload_target(parts: &axum::http::request::Parts) -> ApiResult<(String, String)> {
    let query: BTreeMap<String, String> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let run_id = query
        .get("run_uuid")
        .or_else(|| query.get("run_id"))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::invalid("Request must specify run_uuid."))?
        .clone();
    let raw = query
        .get("path")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::invalid("Request must specify path."))?;
    let path = canonical_some(raw)?;
    if declared_length(&parts.headers).is_some_and(|n| n > UPLOAD_ARTIFACT_MAX_BYTES as u64) {
        return Err(ApiError::invalid(UPLOAD_ARTIFACT_TOO_LARGE));
    }
    Ok((run_id, path))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types_follow_mlflow() {
        assert_eq!(guess_mime_type("a/b/model.json"), "text/plain");
        assert_eq!(guess_mime_type("MLmodel"), "text/plain");
        assert_eq!(guess_mime_type("x.png"), "image/png");
        assert_eq!(guess_mime_type("x.unknownext"), "application/octet-stream");
        assert_eq!(guess_mime_type("noext"), "application/octet-stream");
    }

    #[test]
    fn content_disposition_quotes_and_encodes() {
        assert_eq!(
            content_disposition("model.pkl"),
            "attachment; filename=model.pkl"
        );
        assert_eq!(
            content_disposition("my file.txt"),
            "attachment; filename=\"my file.txt\""
        );
        assert_eq!(
            content_disposition("a\"b.txt"),
            "attachment; filename=\"a\\\"b.txt\""
        );
        assert_eq!(
            content_disposition("résumé.txt"),
            "attachment; filename=rsum.txt; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
        );
        assert_eq!(
            content_disposition("日本"),
            "attachment; filename=download; filename*=UTF-8''%E6%97%A5%E6%9C%AC"
        );
    }
}
