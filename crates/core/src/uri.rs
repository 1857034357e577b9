//! Artifact URI resolution, in one place: given an artifact URI, the repository that holds it
//! and the path inside that repository.
//!
//! | URI | resolves to |
//! |---|---|
//! | `runs:/<run_id>/<path>` | the run's `artifact_uri` (looked up through [`RunRoots`]), resolved again, plus `<path>` |
//! | `mlflow-artifacts:/<path>`, `mlflow-artifacts://<host>/<path>` | the artifact proxy ([`Proxy`]) at `<path>` |
//! | `http(s)://<host>/<prefix>/api/2.0/mlflow-artifacts/artifacts/<path>` | the artifact proxy at `<path>`, as `mlflow-artifacts:` |
//! | `models:/...` | not yet supported (the model registry arrives in a later issue): [`resolve_model`] is the extension point |
//! | anything else (`file:`, a plain path, `s3:`, ...) | the repository plugin of the URI's scheme, rooted at the URI |
//!
//! Who resolves decides what the proxy is: the server, serving artifacts, maps `mlflow-artifacts:`
//! onto its destination repository (api.md §3.2); a client of a tracking server (the CLI with
//! `MLFLOW_TRACKING_URI=http://...`) maps it onto the server's proxy API over HTTP. Every path
//! taken from a URI goes through the one canonicaliser of `cairn-plugin-api`
//! ([`cairn_plugin_api::paths`]).

use crate::config::Settings;
use crate::registry::{Registry, scheme_of};
use cairn_plugin_api::paths::canonical_artifact_dir;
use cairn_plugin_api::{ArtifactRepository, BuildContext, Error, PluginKind, Result};
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
    /// `models:/...`: the whole URI, for [`resolve_model`].
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
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
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

/// The extension point for `models:/` URIs: the model registry (a later issue) resolves them to
/// a model version's or logged model's artifact location. Until then: `InvalidArgument`.
pub fn resolve_model(uri: &str) -> Result<String> {
    Err(Error::invalid(format!(
        "models:/ URIs are not supported yet ({uri}): Cairn's model registry is not \
         implemented; use the model's runs:/ or artifact URI instead"
    )))
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
/// `[settings.<scheme>]` table. Repositories are kept (up to [`Repositories::CACHE_SIZE`] roots)
/// so that a busy server does not rebuild one per request.
#[derive(Clone)]
pub struct Repositories {
    registry: Arc<Registry>,
    settings: Settings,
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

    /// Repositories built from `registry`, each plugin given its table of `settings`.
    pub fn new(registry: Arc<Registry>, settings: Settings) -> Self {
        Repositories {
            registry,
            settings,
            cache: Arc::default(),
        }
    }

    /// The repository rooted at `uri`. An unknown scheme or a plugin that refuses to build is
    /// `InvalidArgument` naming the URI's scheme (the message lists the schemes available).
    pub fn build(&self, uri: &str) -> Result<Arc<dyn ArtifactRepository>> {
        if let Some(repo) = self.cache.lock().ok().and_then(|c| c.get(uri).cloned()) {
            return Ok(repo);
        }
        let entry = self
            .registry
            .for_uri(PluginKind::ArtifactRepository, uri)
            .map_err(|e| Error::invalid(e.to_string()))?;
        let ctx = BuildContext {
            settings: self.settings.for_plugin(&entry.name),
            ..BuildContext::for_uri(uri)
        };
        let repo = self
            .registry
            .artifact_repository(uri, ctx)
            .map_err(|e| match e {
                crate::Error::Build { source, .. } => *source,
                other => Error::invalid(other.to_string()),
            })?;
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
}

impl Resolver {
    /// A resolver building direct repositories with `repositories`, mapping proxied URIs with
    /// `proxy`, and looking runs up in `runs` (`None`: `runs:/` URIs are an error).
    pub fn new(repositories: Repositories, proxy: Proxy, runs: Option<Arc<dyn RunRoots>>) -> Self {
        Resolver {
            repositories,
            proxy,
            runs,
        }
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
            _ => self.resolve_root(uri),
        }
    }

    /// [`Resolver::resolve`] for a URI that is not `runs:/` (an experiment's or run's root).
    pub fn resolve_root(&self, uri: &str) -> Result<Resolved> {
        match parse(uri)? {
            ArtifactUri::Run { .. } => Err(Error::invalid(format!(
                "an artifact root cannot be a runs:/ URI ({uri})"
            ))),
            ArtifactUri::Model(uri) => self.resolve_root(&resolve_model(&uri)?),
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
    fn other_schemes_are_direct_and_models_is_the_extension_point() {
        for uri in ["s3://b/p", "file:///tmp/x", "/tmp/x", "relative/dir"] {
            assert_eq!(parse(uri).unwrap(), ArtifactUri::Direct(uri.into()));
        }
        assert_eq!(
            parse("models:/m/1").unwrap(),
            ArtifactUri::Model("models:/m/1".into())
        );
        let e = resolve_model("models:/m/1").unwrap_err();
        assert_eq!(e.kind, cairn_plugin_api::ErrorKind::InvalidArgument);
        assert!(e.message.contains("not supported yet"), "{e}");
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
