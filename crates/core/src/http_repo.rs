//! A tracking server seen from a client: its artifact proxy as an [`ArtifactRepository`]
//! ([`HttpArtifactRepository`]) and the one REST call `cairn artifacts` needs
//! ([`TrackingClient`], `runs/get` for `runs:/` URIs).
//!
//! This is what MLflow's `HttpArtifactRepository` does, over MLflow's proxy API (api.md §3.1):
//! `PUT`/`GET`/`DELETE <base>/api/2.0/mlflow-artifacts/artifacts/<path>` and
//! `GET ...?path=<dir>` for listings. Bodies stream both ways. Credentials come from MLflow's
//! environment variables: `MLFLOW_TRACKING_TOKEN` (bearer) or `MLFLOW_TRACKING_USERNAME` and
//! `MLFLOW_TRACKING_PASSWORD` (basic); `MLFLOW_TRACKING_INSECURE_TLS=true` skips certificate
//! checks.

use crate::uri::{ModelRoots, ModelUri, PROXY_SERVICE_PATH, RunRoots, join};
use cairn_plugin_api::artifacts::{ArtifactCapabilities, ByteStream, Download};
use cairn_plugin_api::entities::FileInfo;
use cairn_plugin_api::{ArtifactRepository, Error, ErrorKind, Result};
use futures_util::TryStreamExt;
use std::sync::Arc;

/// The HTTP client and the credentials of one tracking server.
#[derive(Clone)]
pub struct TrackingClient {
    base: String,
    http: reqwest::Client,
    auth: Auth,
}

#[derive(Clone)]
enum Auth {
    None,
    Bearer(String),
    Basic(String, String),
}

impl std::fmt::Debug for TrackingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackingClient")
            .field("base", &crate::secrets::redact_uri(&self.base))
            .finish()
    }
}

impl TrackingClient {
    /// A client of the server at `base` (`http(s)://host[:port][/prefix]`), with credentials
    /// from MLflow's environment variables.
    pub fn from_env(base: &str) -> Result<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let auth = match (
            var("MLFLOW_TRACKING_TOKEN"),
            var("MLFLOW_TRACKING_USERNAME"),
            var("MLFLOW_TRACKING_PASSWORD"),
        ) {
            (Some(token), _, _) => Auth::Bearer(token),
            (None, Some(user), Some(password)) => Auth::Basic(user, password),
            _ => Auth::None,
        };
        let insecure =
            var("MLFLOW_TRACKING_INSECURE_TLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let http = reqwest::Client::builder()
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(insecure)
            .build()
            .map_err(|e| Error::internal(format!("cannot create an HTTP client: {e}")))?;
        Ok(TrackingClient {
            base: base.trim_end_matches('/').to_owned(),
            http,
            auth,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same credentials and connection pool for another server (an explicit
    /// `mlflow-artifacts://host/...`).
    pub fn for_base(&self, base: &str) -> Self {
        TrackingClient {
            base: base.trim_end_matches('/').to_owned(),
            ..self.clone()
        }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        match &self.auth {
            Auth::None => req,
            Auth::Bearer(token) => req.bearer_auth(token),
            Auth::Basic(user, password) => req.basic_auth(user, Some(password)),
        }
    }

    /// Sends `req`; a non-2xx answer becomes the error it carries (MLflow's JSON shape, or its
    /// text).
    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<reqwest::Response> {
        let res = req
            .send()
            .await
            .map_err(|e| transport_error(&self.base, what, e))?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        let parsed: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        let (kind, message) = match parsed {
            Some(v) if v.get("error_code").is_some() => (
                ErrorKind::from_error_code(v["error_code"].as_str().unwrap_or_default()),
                v["message"].as_str().unwrap_or_default().to_owned(),
            ),
            _ => (
                kind_for_status(status.as_u16()),
                format!("{what}: HTTP {status}: {}", text.trim()),
            ),
        };
        // Internal errors keep their (server-side generic) message visible to the CLI user.
        Err(Error::new(kind, message))
    }
}

/// The JSON body of a successful response.
async fn json_of(res: reqwest::Response, what: &str) -> Result<serde_json::Value> {
    let bytes = res
        .bytes()
        .await
        .map_err(|e| Error::new(ErrorKind::Unavailable, format!("{what}: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::internal(format!("{what}: the server answered malformed JSON: {e}")))
}

fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        400 => ErrorKind::InvalidArgument,
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        501 => ErrorKind::Unsupported,
        502..=504 => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

fn transport_error(base: &str, what: &str, e: reqwest::Error) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "{what}: cannot reach the tracking server at {}: {e}",
            crate::secrets::redact_uri(base)
        ),
    )
}

#[cairn_plugin_api::async_trait]
impl RunRoots for TrackingClient {
    async fn run_artifact_uri(&self, run_id: &str) -> Result<String> {
        let url = format!(
            "{}/api/2.0/mlflow/runs/get?{}",
            self.base,
            form_urlencoded::Serializer::new(String::new())
                .append_pair("run_id", run_id)
                .finish()
        );
        let res = self
            .send(self.request(reqwest::Method::GET, &url), "runs/get")
            .await?;
        let v = json_of(res, "runs/get").await?;
        v["run"]["info"]["artifact_uri"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::internal("runs/get answered a run without artifact_uri"))
    }
}

impl TrackingClient {
    /// `POST {base}/api/2.0/mlflow/{endpoint}` with a JSON body; the answer as JSON.
    pub async fn post_json(
        &self,
        endpoint: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let res = self
            .send(
                self.request(reqwest::Method::POST, &url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string()),
                endpoint,
            )
            .await?;
        json_of(res, endpoint).await
    }

    /// `GET {base}/api/2.0/mlflow/{endpoint}?{query}` as JSON.
    pub async fn get_json(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
    ) -> Result<serde_json::Value> {
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in query {
                q.append_pair(k, v);
            }
            q.finish()
        };
        let url = format!("{}/api/2.0/mlflow/{endpoint}?{query}", self.base);
        let res = self
            .send(self.request(reqwest::Method::GET, &url), endpoint)
            .await?;
        json_of(res, endpoint).await
    }
}

/// `models:/` URIs through a tracking server's registry and LoggedModel APIs, as MLflow's
/// `ModelsArtifactRepository` resolves them.
#[cairn_plugin_api::async_trait]
impl ModelRoots for TrackingClient {
    async fn model_artifact_uri(&self, uri: &ModelUri) -> Result<String> {
        let text = |v: &serde_json::Value, what: &str| {
            v.as_str().map(str::to_owned).ok_or_else(|| {
                Error::internal(format!("{what} answered without the expected field"))
            })
        };
        let highest = |v: &serde_json::Value, name: &str| {
            v["model_versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|mv| mv["version"].as_str())
                .max_by_key(|s| s.parse::<u64>().unwrap_or(0))
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::not_found(format!("No versions of model with name '{name}' found"))
                })
        };
        let (name, version) = match uri {
            ModelUri::LoggedModel { model_id, .. } => {
                let v = self
                    .get_json(&format!("logged-models/{}", encode_path(model_id)), &[])
                    .await?;
                return text(&v["model"]["info"]["artifact_uri"], "logged-models/get");
            }
            ModelUri::Version { name, version, .. } => (name.clone(), version.clone()),
            ModelUri::Alias { name, alias, .. } => {
                let v = self
                    .get_json(
                        "registered-models/alias",
                        &[("name", name), ("alias", alias)],
                    )
                    .await?;
                (
                    name.clone(),
                    text(&v["model_version"]["version"], "registered-models/alias")?,
                )
            }
            ModelUri::Stage { name, stage, .. } => {
                let v = self
                    .get_json(
                        "registered-models/get-latest-versions",
                        &[("name", name), ("stages", stage)],
                    )
                    .await?;
                (name.clone(), highest(&v, name)?)
            }
            ModelUri::Latest { name, .. } => {
                let v = self
                    .get_json("registered-models/get-latest-versions", &[("name", name)])
                    .await?;
                (name.clone(), highest(&v, name)?)
            }
        };
        let v = self
            .get_json(
                "model-versions/get-download-uri",
                &[("name", &name), ("version", &version)],
            )
            .await?;
        text(&v["artifact_uri"], "model-versions/get-download-uri")
    }
}

/// Percent-encodes a canonical artifact path for a URL path: every byte but unreserved
/// characters and `/`.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A tracking server's artifact proxy as an [`ArtifactRepository`] rooted at the proxy's root
/// (`<base>/api/2.0/mlflow-artifacts/artifacts`); paths are proxy paths.
#[derive(Debug, Clone)]
pub struct HttpArtifactRepository {
    client: TrackingClient,
    root: String,
}

impl HttpArtifactRepository {
    /// The proxy of the server `client` talks to.
    pub fn new(client: TrackingClient) -> Self {
        let root = format!("{}{PROXY_SERVICE_PATH}", client.base());
        HttpArtifactRepository { client, root }
    }

    /// As an `Arc<dyn ArtifactRepository>`.
    pub fn shared(client: TrackingClient) -> Arc<dyn ArtifactRepository> {
        Arc::new(Self::new(client))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.root, encode_path(path))
    }
}

#[cairn_plugin_api::async_trait]
impl ArtifactRepository for HttpArtifactRepository {
    fn capabilities(&self) -> ArtifactCapabilities {
        ArtifactCapabilities {
            multipart_upload: false,
            presigned_urls: false,
        }
    }

    fn root_uri(&self) -> &str {
        &self.root
    }

    async fn put(&self, path: &str, body: ByteStream) -> Result<u64> {
        let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = counted.clone();
        let body = body.inspect_ok(move |chunk| {
            counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
        });
        let name = path.rsplit('/').next().unwrap_or(path);
        let req = self
            .client
            .request(reqwest::Method::PUT, &self.url(path))
            .header(
                reqwest::header::CONTENT_TYPE,
                crate::server::artifacts::guess_mime_type(name),
            )
            .body(reqwest::Body::wrap_stream(body));
        self.client.send(req, "upload").await?;
        Ok(counted.load(std::sync::atomic::Ordering::Relaxed))
    }

    async fn get(&self, path: &str) -> Result<Download> {
        let res = self
            .client
            .send(
                self.client.request(reqwest::Method::GET, &self.url(path)),
                "download",
            )
            .await?;
        let size = res.content_length();
        let base = self.client.base.clone();
        let body = res
            .bytes_stream()
            .map_err(move |e| transport_error(&base, "download", e));
        Ok(Download {
            size,
            body: Box::pin(body),
        })
    }

    async fn list(&self, path: Option<&str>) -> Result<Vec<FileInfo>> {
        let url = match path {
            Some(p) => format!(
                "{}?{}",
                self.root,
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("path", p)
                    .finish()
            ),
            None => self.root.clone(),
        };
        let req = self.client.request(reqwest::Method::GET, &url);
        let res = self.client.send(req, "list").await?;
        let v = json_of(res, "list").await?;
        let mut files = Vec::new();
        for f in v["files"].as_array().into_iter().flatten() {
            let name = f["path"].as_str().unwrap_or_default();
            // A listing entry is a basename; refuse anything that is not.
            let name = cairn_plugin_api::paths::canonical_artifact_path(name)?;
            if name.is_empty() || name.contains('/') {
                return Err(Error::invalid(format!(
                    "the server listed an invalid artifact name {name:?}"
                )));
            }
            files.push(FileInfo {
                path: join(path, Some(&name)).unwrap_or(name),
                is_dir: f["is_dir"].as_bool().unwrap_or(false),
                file_size: f["file_size"].as_i64(),
            });
        }
        // MLflow's client: listing a file gives the file itself, which means "not a directory".
        if let ([only], Some(p)) = (files.as_slice(), path)
            && !only.is_dir
            && only.path
                == join(Some(p), Some(p.rsplit('/').next().unwrap_or(p))).unwrap_or_default()
        {
            return Ok(Vec::new());
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    async fn delete(&self, path: Option<&str>) -> Result<()> {
        let url = self.url(path.unwrap_or_default());
        self.client
            .send(self.client.request(reqwest::Method::DELETE, &url), "delete")
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_per_byte_keeping_slashes() {
        assert_eq!(encode_path("a b/日.txt"), "a%20b/%E6%97%A5.txt");
        assert_eq!(encode_path("x%y#z"), "x%25y%23z");
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(kind_for_status(404), ErrorKind::NotFound);
        assert_eq!(kind_for_status(503), ErrorKind::Unavailable);
        assert_eq!(kind_for_status(418), ErrorKind::Internal);
    }
}
