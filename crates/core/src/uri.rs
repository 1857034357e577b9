//! Artifact URI resolution, in one place: given an artifact URI, the repository that holds it
//! and the path inside that repository.
//!
//! | URI | resolves to |
//! |---|---|
//! | `runs:/<run_id>/<path>` | the run's `artifact_uri` (looked up through [`RunRoots`]), resolved again, plus `<path>` |
//! | `mlflow-artifacts:/<path>`, `mlflow-artifacts://<host>/<path>` | the artifact proxy ([`Proxy`]) at `<path>` |
//! | `http(s)://<host>/<prefix>/api/2.0/mlflow-artifacts/artifacts/<path>` | the artifact proxy at `<path>`, as `mlflow-artifacts:` |
//! | `models:/<name>/<version>`, `models:/<name>/<stage>`, `models:/<name>/latest`, `models:/<name>@<alias>`, `models:/<model_id>` | parsed by [`parse_model_uri`]; a [`ModelRoots`] (the registry and tracking stores, or a tracking server's API) gives the version's download URI or the LoggedModel's artifact location, resolved again, plus the path after the model part |
//! | anything else (`file:`, a plain path, `s3:`, ...) | the repository plugin of the URI's scheme, rooted at the URI |
//!
//! Who resolves decides what the proxy is: the server, serving artifacts, maps `mlflow-artifacts:`
//! onto its destination repository (api.md §3.2); a client of a tracking server (the CLI with
//! `MLFLOW_TRACKING_URI=http://...`) maps it onto the server's proxy API over HTTP. Every path
//! taken from a URI goes through the one canonicaliser of `cairn-plugin-api`
//! ([`cairn_plugin_api::paths`]).

use crate::assembly::Contexts;
#[cfg(doc)]
use crate::config::Settings;
use crate::registry::{Registry, scheme_of};
use cairn_plugin_api::paths::canonical_artifact_dir;
use cairn_plugin_api::{ArtifactRepository, Error, PluginKind, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The path of MLflow's artifact proxy service under a server's base URL.
pub const PROXY_SERVICE_PATH: &str = "/api/2.0/mlflow-artifacts/artifacts";

/// MLflow's message for a malformed `runs:/` URI.
fn bad_runs_uri(uri: &str) -> Error {
    Error::invalid(format!(
        "Not a proper runs:/ URI: {uri}. Runs URIs must be of the form \
         'runs:/<run_id>/run-relative/path/to/artifact'"
    ))
}

/// An artifact URI, parsed by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactUri {
    /// `runs:/<run_id>/<path>`.
    Run {
        /// The run.
        run_id: String,
        /// The canonical path under the run's artifact root (`None`: the root).
        path: Option<String>,
    },
    /// `models:/...`: the whole URI, for [`parse_model_uri`].
    Model(String),
    /// `mlflow-artifacts:` or an `http(s)` URI of the proxy service.
    Proxied {
        /// `scheme://host[:port][/prefix]` of an explicit server (`http(s)` URIs and
        /// `mlflow-artifacts://host/...`); `None` means "the tracking server".
        server: Option<String>,
        /// The canonical path under the proxy's root (`None`: the root).
        path: Option<String>,
    },
    /// A URI a repository plugin serves directly (`file:`, a plain path, `s3:`, ...).
    Direct(String),
}

/// Parses `uri` (see the module documentation). Every path part is canonicalised.
pub fn parse(uri: &str) -> Result<ArtifactUri> {
    let scheme = scheme_of(uri);
    let rest = || &uri[uri.find(':').map_or(0, |i| i + 1)..];
    match scheme.as_str() {
        "runs" => {
            let rest = rest();
            // `runs:/id/p` and `runs:///id/p`; a netloc (Databricks profile) is not supported.
            let path = if let Some(after) = rest.strip_prefix("//") {
                after.strip_prefix('/').ok_or_else(|| bad_runs_uri(uri))?
            } else {
                rest.strip_prefix('/').ok_or_else(|| bad_runs_uri(uri))?
            };
            let (run_id, path) = path.split_once('/').unwrap_or((path, ""));
            if run_id.is_empty()
                || !run_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad_runs_uri(uri));
            }
            Ok(ArtifactUri::Run {
                run_id: run_id.to_owned(),
                path: canonical_opt(path)?,
            })
        }
        "models" => Ok(ArtifactUri::Model(uri.to_owned())),
        "mlflow-artifacts" => {
            let rest = rest();
            let (server, path) = match rest.strip_prefix("//") {
                Some(after) => {
                    let (authority, path) = after.split_once('/').unwrap_or((after, ""));
                    if authority.is_empty() {
                        (None, path)
                    } else {
                        if authority.starts_with(':')
                            || authority.bytes().all(|b| b.is_ascii_digit() || b == b':')
                        {
                            return Err(Error::invalid(format!(
                                "The mlflow-artifacts uri was supplied with a port number: \
                                 {authority}, but no host was defined."
                            )));
                        }
                        (Some(authority.to_owned()), path)
                    }
                }
                None => (None, rest.strip_prefix('/').unwrap_or(rest)),
            };
            Ok(ArtifactUri::Proxied {
                // A bare authority keeps the tracking URI's scheme; the client decides it.
                server: server.map(|a| format!("//{a}")),
                path: canonical_opt(path)?,
            })
        }
        "http" | "https" => match uri.find(PROXY_SERVICE_PATH) {
            Some(at) => {
                let tail = &uri[at + PROXY_SERVICE_PATH.len()..];
                if !(tail.is_empty() || tail.starts_with('/')) {
                    return Ok(ArtifactUri::Direct(uri.to_owned()));
                }
                Ok(ArtifactUri::Proxied {
                    server: Some(uri[..at].trim_end_matches('/').to_owned()),
                    path: canonical_opt(tail.strip_prefix('/').unwrap_or(tail))?,
                })
            }
            None => Ok(ArtifactUri::Direct(uri.to_owned())),
        },
        _ => Ok(ArtifactUri::Direct(uri.to_owned())),
    }
}

/// The canonical form of a relative path (already URL-decoded once), `None` for the root
/// (`""`, `.`, `./`); see [`cairn_plugin_api::paths`] for what is refused.
pub fn canonical_opt(path: &str) -> Result<Option<String>> {
    canonical_artifact_dir(Some(path))
}

/// `base/rel`, either of which may be absent (the root).
pub fn join(base: Option<&str>, rel: Option<&str>) -> Option<String> {
    match (base, rel) {
        (None, None) => None,
        (Some(b), None) => Some(b.to_owned()),
        (None, Some(r)) => Some(r.to_owned()),
        (Some(b), Some(r)) => Some(format!("{b}/{r}")),
    }
}

/// MLflow's message for a malformed `models:/` URI.
fn bad_models_uri(uri: &str) -> Error {
    Error::invalid(format!(
        "Not a proper models:/ URI: {uri}. Models URIs must be of the form \
         'models:/model_name/suffix' or 'models:/model_name@alias' where suffix is a model \
         version, stage, or the string 'latest' and where alias is a registered model alias. \
         Only one of suffix or alias can be defined at a time."
    ))
}

/// A `models:/` URI, parsed (api.md §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelUri {
    /// `models:/<name>/<version>`.
    Version {
        /// The registered model.
        name: String,
        /// The version number.
        version: String,
        /// The canonical path inside the version (`None`: its root).
        path: Option<String>,
    },
    /// `models:/<name>/<stage>`: the highest version in that stage.
    Stage {
        /// The registered model.
        name: String,
        /// The stage, as written.
        stage: String,
        /// The canonical path inside the version.
        path: Option<String>,
    },
    /// `models:/<name>/latest` (any case): the highest version.
    Latest {
        /// The registered model.
        name: String,
        /// The canonical path inside the version.
        path: Option<String>,
    },
    /// `models:/<name>@<alias>`.
    Alias {
        /// The registered model.
        name: String,
        /// The alias.
        alias: String,
        /// The canonical path inside the version.
        path: Option<String>,
    },
    /// `models:/<model_id>`: a LoggedModel.
    LoggedModel {
        /// The LoggedModel's id.
        model_id: String,
        /// The canonical path inside its artifacts.
        path: Option<String>,
    },
}

/// Parses a `models:/` URI as MLflow's `_parse_model_uri` does: `models:/<name>/<suffix>[/path]`
/// (suffix a version, a stage or `latest`), `models:/<name>@<alias>[/path]`, or a single
/// segment `models:/<model_id>`. Paths go through the one canonicaliser.
pub fn parse_model_uri(uri: &str) -> Result<ModelUri> {
    let rest = uri
        .strip_prefix("models:")
        .ok_or_else(|| bad_models_uri(uri))?;
    // `models:/x`, `models:///x`; a netloc (Databricks profile) is not supported.
    let rest = match rest.strip_prefix("//") {
        Some(after) => after.strip_prefix('/').ok_or_else(|| bad_models_uri(uri))?,
        None => rest.strip_prefix('/').ok_or_else(|| bad_models_uri(uri))?,
    };
    let (first, after_first) = rest.split_once('/').unwrap_or((rest, ""));
    if first.is_empty() {
        return Err(bad_models_uri(uri));
    }
    if let Some((name, alias)) = first.split_once('@') {
        if name.is_empty() || alias.is_empty() || alias.contains('@') {
            return Err(bad_models_uri(uri));
        }
        return Ok(ModelUri::Alias {
            name: name.to_owned(),
            alias: alias.to_owned(),
            path: canonical_opt(after_first)?,
        });
    }
    if after_first.is_empty() {
        return Ok(ModelUri::LoggedModel {
            model_id: first.to_owned(),
            path: None,
        });
    }
    let (suffix, path) = after_first.split_once('/').unwrap_or((after_first, ""));
    if suffix.is_empty() {
        return Err(bad_models_uri(uri));
    }
    let name = first.to_owned();
    let path = canonical_opt(path)?;
    Ok(if suffix.bytes().all(|b| b.is_ascii_digit()) {
        ModelUri::Version {
            name,
            version: suffix.to_owned(),
            path,
        }
    } else if suffix.eq_ignore_ascii_case("latest") {
        ModelUri::Latest { name, path }
    } else {
        ModelUri::Stage {
            name,
            stage: suffix.to_owned(),
            path,
        }
    })
}

impl ModelUri {
    /// The path inside the model this URI names (`None`: the model's root).
    pub fn path(&self) -> Option<&str> {
        match self {
            ModelUri::Version { path, .. }
            | ModelUri::Stage { path, .. }
            | ModelUri::Latest { path, .. }
            | ModelUri::Alias { path, .. }
            | ModelUri::LoggedModel { path, .. } => path.as_deref(),
        }
    }
}

/// Where models' files live: the registry and tracking stores (server, local CLI) or a
/// tracking server's REST API. Answers the storage URI of what a [`ModelUri`] names, without
/// its path.
#[cairn_plugin_api::async_trait]
pub trait ModelRoots: Send + Sync {
    /// The storage URI of the model version or LoggedModel `uri` names.
    async fn model_artifact_uri(&self, uri: &ModelUri) -> Result<String>;
}

/// Resolves `uri` with the registry and tracking stores: a version's download URI (after
/// picking the version by number, stage, `latest` or alias), or a LoggedModel's artifact
/// location.
pub async fn model_location(
    uri: &ModelUri,
    registry: &dyn cairn_plugin_api::ModelRegistryStore,
    tracking: &dyn cairn_plugin_api::TrackingStore,
) -> Result<String> {
    use cairn_plugin_api::model_registry::Stage;
    let highest = |versions: Vec<cairn_plugin_api::model_registry::ModelVersion>| {
        versions
            .into_iter()
            .max_by_key(|v| v.version.parse::<u64>().unwrap_or(0))
    };
    let (name, version) =
        match uri {
            ModelUri::LoggedModel { model_id, .. } => {
                return Ok(tracking
                    .get_logged_model(model_id, false)
                    .await?
                    .info
                    .artifact_uri);
            }
            ModelUri::Version { name, version, .. } => (name.clone(), version.clone()),
            ModelUri::Alias { name, alias, .. } => (
                name.clone(),
                registry
                    .get_model_version_by_alias(name, alias)
                    .await?
                    .version,
            ),
            ModelUri::Stage { name, stage, .. } => {
                let stage = Stage::parse(stage)?;
                let v = highest(registry.get_latest_versions(name, vec![stage]).await?)
                    .ok_or_else(|| {
                        Error::not_found(format!(
                            "No versions of model with name '{name}' and stage '{}' found",
                            stage.as_str()
                        ))
                    })?;
                (name.clone(), v.version)
            }
            ModelUri::Latest { name, .. } => {
                let v = highest(registry.get_latest_versions(name, vec![]).await?).ok_or_else(
                    || Error::not_found(format!("No versions of model with name '{name}' found")),
                )?;
                (name.clone(), v.version)
            }
        };
    registry
        .get_model_version_download_uri(&name, &version)
        .await
}

/// The registry and tracking stores as the source of model roots.
pub struct StoreModels {
    /// The model registry.
    pub registry: Arc<dyn cairn_plugin_api::ModelRegistryStore>,
    /// The tracking store (LoggedModels).
    pub tracking: Arc<dyn cairn_plugin_api::TrackingStore>,
}

#[cairn_plugin_api::async_trait]
impl ModelRoots for StoreModels {
    async fn model_artifact_uri(&self, uri: &ModelUri) -> Result<String> {
        model_location(uri, self.registry.as_ref(), self.tracking.as_ref()).await
    }
}

/// A repository and the path inside it that an artifact URI names.
#[derive(Clone)]
pub struct Resolved {
    /// The repository holding the artifacts.
    pub repository: Arc<dyn ArtifactRepository>,
    /// The canonical path inside the repository (`None`: its root).
    pub path: Option<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("repository", &self.repository.root_uri())
            .field("path", &self.path)
            .finish()
    }
}

impl Resolved {
    /// The repository path of `rel` (canonical, relative to what this names).
    pub fn join(&self, rel: Option<&str>) -> Option<String> {
        join(self.path.as_deref(), rel)
    }

    /// `repo_path` (as a repository lists it) relative to what this names.
    pub fn relative<'p>(&self, repo_path: &'p str) -> &'p str {
        match self.path.as_deref() {
            None => repo_path,
            Some(base) => repo_path
                .strip_prefix(base)
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(repo_path),
        }
    }
}

/// Builds artifact repositories for URIs through the plugin registry, each plugin with its
/// context from [`Contexts`] (its `[settings.<scheme>]` table and the assembly's shared facts).
/// Repositories are kept (up to [`Repositories::CACHE_SIZE`] roots) so that a busy server does
/// not rebuild one per request. [`crate::assembly::Assembly::repositories`] is the one the
/// commands use; the repositories the assembly builds at start-up are kept here too.
#[derive(Clone)]
pub struct Repositories {
    registry: Arc<Registry>,
    contexts: Contexts,
    cache: Arc<Mutex<HashMap<String, Arc<dyn ArtifactRepository>>>>,
}

impl std::fmt::Debug for Repositories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repositories")
            .field(
                "schemes",
                &self.registry.names(PluginKind::ArtifactRepository),
            )
            .finish()
    }
}

impl Repositories {
    /// Repositories kept at most; the cache is emptied when it would grow past this.
    pub const CACHE_SIZE: usize = 256;

    /// Repositories built from `registry`, each plugin given its context from `contexts`
    /// (plain [`Settings`] for contexts with settings only).
    pub fn new(registry: Arc<Registry>, contexts: impl Into<Contexts>) -> Self {
        Repositories {
            registry,
            contexts: contexts.into(),
            cache: Arc::default(),
        }
    }

    /// How plugins' contexts are made.
    pub fn contexts(&self) -> &Contexts {
        &self.contexts
    }

    /// The repository rooted at `uri`. An unknown scheme or a plugin that refuses to build is
    /// `InvalidArgument` naming the URI's scheme (the message lists the schemes available).
    pub fn build(&self, uri: &str) -> Result<Arc<dyn ArtifactRepository>> {
        self.repository(uri).map_err(|e| match e {
            crate::Error::Build { source, .. } => *source,
            other => Error::invalid(other.to_string()),
        })
    }

    /// The repository rooted at `uri`, with core's errors (a lookup error lists the schemes
    /// available; a build error names the plugin and keeps its cause).
    pub fn repository(&self, uri: &str) -> crate::Result<Arc<dyn ArtifactRepository>> {
        if let Some(repo) = self.cache.lock().ok().and_then(|c| c.get(uri).cloned()) {
            return Ok(repo);
        }
        let entry = self.registry.for_uri(PluginKind::ArtifactRepository, uri)?;
        let repo = self
            .registry
            .artifact_repository(uri, self.contexts.for_plugin(&entry.name, Some(uri)))?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= Self::CACHE_SIZE {
                cache.clear();
            }
            cache.insert(uri.to_owned(), repo.clone());
        }
        Ok(repo)
    }
}

/// Where a run's artifacts live: a tracking store (server, local CLI) or a tracking server's
/// REST API (CLI with an `http(s)` tracking URI).
#[cairn_plugin_api::async_trait]
pub trait RunRoots: Send + Sync {
    /// The `artifact_uri` of run `run_id`; a missing run is `NotFound`.
    async fn run_artifact_uri(&self, run_id: &str) -> Result<String>;
}

/// A tracking store as the source of run roots.
pub struct StoreRuns(pub Arc<dyn cairn_plugin_api::TrackingStore>);

#[cairn_plugin_api::async_trait]
impl RunRoots for StoreRuns {
    async fn run_artifact_uri(&self, run_id: &str) -> Result<String> {
        Ok(self.0.get_run(run_id).await?.info.artifact_uri)
    }
}

/// Builds the repository of a tracking server's artifact proxy from the server's base URL.
pub type Connect = Arc<dyn Fn(&str) -> Result<Arc<dyn ArtifactRepository>> + Send + Sync>;

/// What `mlflow-artifacts:` (and proxy `http(s)`) URIs mean to the resolver.
#[derive(Clone)]
pub enum Proxy {
    /// This process serves the proxy: paths map onto its destination repository.
    Destination(Arc<dyn ArtifactRepository>),
    /// A client: the proxy is the tracking server's (or the URI's explicit server's) proxy
    /// API; the function builds the HTTP repository for a server base URL
    /// (`scheme://host[:port][/prefix]`).
    Remote {
        /// The tracking server's base URL.
        tracking: String,
        /// Builds the repository for a server base URL.
        connect: Connect,
    },
    /// No proxy: such URIs are an error with this message.
    Unavailable(String),
}

/// Resolves artifact URIs to a repository and a path (see the module documentation).
#[derive(Clone)]
pub struct Resolver {
    repositories: Repositories,
    proxy: Proxy,
    runs: Option<Arc<dyn RunRoots>>,
    models: Option<Arc<dyn ModelRoots>>,
}

impl Resolver {
    /// A resolver building direct repositories with `repositories`, mapping proxied URIs with
    /// `proxy`, and looking runs up in `runs` (`None`: `runs:/` URIs are an error).
    pub fn new(repositories: Repositories, proxy: Proxy, runs: Option<Arc<dyn RunRoots>>) -> Self {
        Resolver {
            repositories,
            proxy,
            runs,
            models: None,
        }
    }

    /// This resolver, looking `runs:/` URIs up in `runs`.
    pub fn with_runs(mut self, runs: Arc<dyn RunRoots>) -> Self {
        self.runs = Some(runs);
        self
    }

    /// This resolver, looking `models:/` URIs up in `models`.
    pub fn with_models(mut self, models: Arc<dyn ModelRoots>) -> Self {
        self.models = Some(models);
        self
    }

    /// The repository builder.
    pub fn repositories(&self) -> &Repositories {
        &self.repositories
    }

    /// The repository and path `uri` names.
    pub async fn resolve(&self, uri: &str) -> Result<Resolved> {
        match parse(uri)? {
            ArtifactUri::Run { run_id, path } => {
                let runs = self.runs.as_ref().ok_or_else(|| {
                    Error::invalid(format!(
                        "runs:/ URIs need a tracking store to resolve ({uri})"
                    ))
                })?;
                let root = runs.run_artifact_uri(&run_id).await?;
                // A run's root is never itself a runs:/ URI (stores refuse them), so one level.
                let base = self.resolve_root(&root)?;
                Ok(Resolved {
                    path: base.join(path.as_deref()),
                    repository: base.repository,
                })
            }
            ArtifactUri::Model(uri) => {
                let parsed = parse_model_uri(&uri)?;
                let models = self.models.as_ref().ok_or_else(|| {
                    Error::invalid(format!(
                        "models:/ URIs need a model registry to resolve ({uri})"
                    ))
                })?;
                let root = models.model_artifact_uri(&parsed).await?;
                // A stored location may itself be a runs:/ URI; resolve it one level.
                let base = match parse(&root)? {
                    ArtifactUri::Run { run_id, path } => {
                        let runs = self.runs.as_ref().ok_or_else(|| {
                            Error::invalid(format!(
                                "runs:/ URIs need a tracking store to resolve ({root})"
                            ))
                        })?;
                        let run_root = runs.run_artifact_uri(&run_id).await?;
                        let base = self.resolve_root(&run_root)?;
                        Resolved {
                            path: base.join(path.as_deref()),
                            repository: base.repository,
                        }
                    }
                    _ => self.resolve_root(&root)?,
                };
                Ok(Resolved {
                    path: base.join(parsed.path()),
                    repository: base.repository,
                })
            }
            _ => self.resolve_root(uri),
        }
    }

    /// [`Resolver::resolve`] for a URI that is not `runs:/` (an experiment's or run's root).
    pub fn resolve_root(&self, uri: &str) -> Result<Resolved> {
        match parse(uri)? {
            ArtifactUri::Run { .. } => Err(Error::invalid(format!(
                "an artifact root cannot be a runs:/ URI ({uri})"
            ))),
            ArtifactUri::Model(uri) => Err(Error::invalid(format!(
                "a models:/ URI cannot be an artifact root ({uri})"
            ))),
            ArtifactUri::Proxied { server, path } => match &self.proxy {
                Proxy::Destination(repo) => Ok(Resolved {
                    repository: repo.clone(),
                    path,
                }),
                Proxy::Remote { tracking, connect } => {
                    let base = match server {
                        None => tracking.trim_end_matches('/').to_owned(),
                        // `//host:port`: the tracking URI's scheme with another netloc.
                        Some(s) if s.starts_with("//") => {
                            let scheme = tracking.split("://").next().unwrap_or("http");
                            format!("{scheme}:{s}")
                        }
                        Some(s) => s,
                    };
                    Ok(Resolved {
                        repository: connect(&base)?,
                        path,
                    })
                }
                Proxy::Unavailable(why) => Err(Error::invalid(why.clone())),
            },
            ArtifactUri::Direct(uri) => Ok(Resolved {
                repository: self.repositories.build(&uri)?,
                path: None,
            }),
        }
    }
}

/// Splits a direct repository URI (`file:`, a plain path, `s3:`, ...) into its parent and its
/// last path segment, as MLflow's `_download_artifact_from_uri` does: `s3://b/p/model.pkl` →
/// (`s3://b/p`, `model.pkl`), `/tmp/x` → (`/`, `tmp`)... A URI with no path segment (e.g.
/// `s3://bucket`) gives `None`.
pub fn split_last(uri: &str) -> Option<(String, String)> {
    let trimmed = uri.trim_end_matches('/');
    let has_scheme = scheme_of(trimmed) != "file" || trimmed.starts_with("file:");
    let path_start = match trimmed.find("://") {
        Some(i) => i + 3 + trimmed[i + 3..].find('/')?,
        None if has_scheme => trimmed.find(':')? + 1,
        None => 0,
    };
    let path = &trimmed[path_start..];
    let (parent, last) = match path.rfind('/') {
        Some(0) => (format!("{}/", &trimmed[..path_start]), &path[1..]),
        Some(at) => (trimmed[..path_start + at].to_owned(), &path[at + 1..]),
        None if path_start == 0 => (".".to_owned(), path),
        None => return None,
    };
    (!last.is_empty()).then(|| (parent, last.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_uris_parse_and_malformed_ones_use_mlflow_wording() {
        assert_eq!(
            parse("runs:/abc123/model/MLmodel").unwrap(),
            ArtifactUri::Run {
                run_id: "abc123".into(),
                path: Some("model/MLmodel".into())
            }
        );
        assert_eq!(
            parse("runs:///abc123").unwrap(),
            ArtifactUri::Run {
                run_id: "abc123".into(),
                path: None
            }
        );
        for bad in ["runs:abc", "runs:/", "runs://profile/abc/x", "runs:/a b/x"] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.message.starts_with("Not a proper runs:/ URI"),
                "{bad}: {e}"
            );
        }
        let e = parse("runs:/abc/../../etc/passwd").unwrap_err();
        assert_eq!(e.kind, cairn_plugin_api::ErrorKind::InvalidArgument);
    }

    #[test]
    fn proxied_uris_map_to_the_proxy_path() {
        assert_eq!(
            parse("mlflow-artifacts:/1/abc/artifacts").unwrap(),
            ArtifactUri::Proxied {
                server: None,
                path: Some("1/abc/artifacts".into())
            }
        );
        assert_eq!(
            parse("mlflow-artifacts:/").unwrap(),
            ArtifactUri::Proxied {
                server: None,
                path: None
            }
        );
        assert_eq!(
            parse("mlflow-artifacts://other:5000/x").unwrap(),
            ArtifactUri::Proxied {
                server: Some("//other:5000".into()),
                path: Some("x".into())
            }
        );
        assert!(parse("mlflow-artifacts://:5000/x").is_err());
        assert_eq!(
            parse("http://h:5000/mlflow/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts").unwrap(),
            ArtifactUri::Proxied {
                server: Some("http://h:5000/mlflow".into()),
                path: Some("1/r/artifacts".into())
            }
        );
        assert!(parse("mlflow-artifacts:/1/%2e%2e/%2e%2e/x").is_err());
        assert_eq!(
            parse("http://h/other").unwrap(),
            ArtifactUri::Direct("http://h/other".into())
        );
    }

    #[test]
    fn other_schemes_are_direct_and_models_uris_are_kept_whole() {
        for uri in ["s3://b/p", "file:///tmp/x", "/tmp/x", "relative/dir"] {
            assert_eq!(parse(uri).unwrap(), ArtifactUri::Direct(uri.into()));
        }
        assert_eq!(
            parse("models:/m/1").unwrap(),
            ArtifactUri::Model("models:/m/1".into())
        );
    }

    #[test]
    fn models_uris_parse_as_mlflow() {
        assert_eq!(
            parse_model_uri("models:/churn/3/MLmodel").unwrap(),
            ModelUri::Version {
                name: "churn".into(),
                version: "3".into(),
                path: Some("MLmodel".into())
            }
        );
        assert_eq!(
            parse_model_uri("models:/churn/Production").unwrap(),
            ModelUri::Stage {
                name: "churn".into(),
                stage: "Production".into(),
                path: None
            }
        );
        assert_eq!(
            parse_model_uri("models:/churn/LATEST").unwrap(),
            ModelUri::Latest {
                name: "churn".into(),
                path: None
            }
        );
        assert_eq!(
            parse_model_uri("models:/churn@champion/a/b").unwrap(),
            ModelUri::Alias {
                name: "churn".into(),
                alias: "champion".into(),
                path: Some("a/b".into())
            }
        );
        assert_eq!(
            parse_model_uri("models:///m-abc").unwrap(),
            ModelUri::LoggedModel {
                model_id: "m-abc".into(),
                path: None
            }
        );
        for bad in [
            "models:",
            "models:/",
            "models:churn/1",
            "models:/@a",
            "models:/m@",
            "models://p/m/1",
        ] {
            let e = parse_model_uri(bad).unwrap_err();
            assert!(
                e.message.starts_with("Not a proper models:/ URI"),
                "{bad}: {e}"
            );
        }
        assert!(parse_model_uri("models:/m/1/%2e%2e/%2e%2e/x").is_err());
    }

    #[test]
    fn split_last_keeps_the_authority() {
        let split = split_last;
        assert_eq!(
            split("s3://b/p/model.pkl"),
            Some(("s3://b/p".into(), "model.pkl".into()))
        );
        assert_eq!(split("s3://b/p/"), Some(("s3://b/".into(), "p".into())));
        assert_eq!(split("s3://bucket"), None);
        assert_eq!(split("/tmp/x/y"), Some(("/tmp/x".into(), "y".into())));
        assert_eq!(split("/tmp"), Some(("/".into(), "tmp".into())));
        assert_eq!(split("rel"), Some((".".into(), "rel".into())));
        assert_eq!(split("file:///a"), Some(("file:///".into(), "a".into())));
        assert_eq!(split("file:/a/b"), Some(("file:/a".into(), "b".into())));
    }

    #[test]
    fn join_and_relative() {
        assert_eq!(join(None, None), None);
        assert_eq!(join(Some("a"), Some("b/c")).as_deref(), Some("a/b/c"));
        assert_eq!(join(None, Some("b")).as_deref(), Some("b"));
    }
}
