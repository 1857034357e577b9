//! `cairn artifacts list|download|upload`: artifacts from the command line, by URI.
//!
//! A URI is anything [`crate::uri`] resolves: `runs:/<run_id>/<path>`, `mlflow-artifacts:/...`,
//! an `s3://` or `file:` URI, a plain path. (`--run-id` with `--artifact-path` spells
//! `runs:/<run_id>/<path>` as MLflow's own CLI does.)
//!
//! **Where artifacts are reached.** With `MLFLOW_TRACKING_URI` (or `--tracking-uri`) an
//! `http(s)` URL, the tracking server is the way in: `runs:/` URIs are looked up with its REST
//! API and proxied roots go through its artifact proxy, as the MLflow client does; `s3://`
//! and other direct roots are reached directly, with this machine's credentials. Otherwise the
//! configuration is used as `cairn server` would use it: the tracking store (or
//! `MLFLOW_TRACKING_URI` when it is a store URI such as `sqlite:///mlflow.db`) for `runs:/`,
//! and `store.artifacts_destination` for `mlflow-artifacts:` roots.
//!
//! Transfers stream with bounded memory; a download is written to a temporary file renamed into
//! place when complete. On a terminal, transfers of 1 MiB and more show a progress meter on
//! stderr.

use crate::assembly::Assembly;
use crate::config::{LoadedConfig, Overrides};
use crate::error::{Error, Result};
use crate::http_repo::{HttpArtifactRepository, TrackingClient};
use crate::uri::{
    ArtifactUri, ModelRoots, Proxy, Resolver, RunRoots, StoreModels, StoreRuns, parse, split_last,
};
use bytes::BytesMut;
use cairn_plugin_api::artifacts::ByteStream;
use cairn_plugin_api::paths::canonical_artifact_path;
use cairn_plugin_api::{ArtifactRepository, ErrorKind};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `cairn artifacts ...`.
#[derive(Debug, Subcommand)]
pub enum ArtifactsCommand {
    /// List the entries of an artifact directory as JSON (path, is_dir, file_size).
    List(Target),
    /// Download an artifact file or directory.
    Download {
        /// What to download.
        #[command(flatten)]
        target: Target,
        /// Local directory to download into (created if needed); default: the current one.
        #[arg(long, short = 'd', value_name = "DIR")]
        dst_path: Option<PathBuf>,
    },
    /// Upload a local file or directory (its contents, recursively) into an artifact directory.
    Upload {
        /// The local file or directory.
        #[arg(long, short = 'l', value_name = "PATH")]
        local_path: PathBuf,
        /// Where to put it.
        #[command(flatten)]
        target: Target,
    },
}

impl ArtifactsCommand {
    /// The configuration layer of this command's options: a tracking URI that names a store
    /// (not an `http(s)` server) is the tracking store, `store.backend_store_uri`, as
    /// MLflow's client takes it (the registry store defaults to it too).
    pub fn overrides(&self) -> Overrides {
        let target = match self {
            ArtifactsCommand::List(target)
            | ArtifactsCommand::Download { target, .. }
            | ArtifactsCommand::Upload { target, .. } => target,
        };
        let mut overrides = Overrides::default();
        if let Some(uri) = target.store_uri() {
            overrides.set(
                "store.backend_store_uri",
                "--tracking-uri (or MLFLOW_TRACKING_URI)",
                uri,
            );
        }
        overrides
    }
}

/// Which artifacts: a URI, or a run id and a path inside its artifacts.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Artifact URI: `runs:/<run_id>/<path>`, `mlflow-artifacts:/...`, `s3://...`, a path.
    #[arg(
        value_name = "URI",
        required_unless_present = "run_id",
        conflicts_with = "run_id"
    )]
    pub uri: Option<String>,
    /// Run whose artifacts to use (instead of a URI), as `mlflow artifacts` takes it.
    #[arg(long, short = 'r', value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// Path inside the run's artifacts (with --run-id).
    #[arg(long, short = 'a', value_name = "PATH", requires = "run_id")]
    pub artifact_path: Option<String>,
    /// Tracking server or store; default MLFLOW_TRACKING_URI, else the configuration's store.
    #[arg(long, value_name = "URI", env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: Option<String>,
}

impl Target {
    /// The tracking URI when it is a tracking server (`http(s)`).
    fn server_uri(&self) -> Option<&str> {
        self.tracking_uri
            .as_deref()
            .filter(|t| t.starts_with("http://") || t.starts_with("https://"))
    }

    /// The tracking URI when it is a store URI (`sqlite:///mlflow.db`, ...).
    fn store_uri(&self) -> Option<&str> {
        self.tracking_uri
            .as_deref()
            .filter(|t| !t.is_empty() && self.server_uri().is_none())
    }

    /// The artifact URI this names.
    pub fn uri(&self) -> String {
        match (&self.uri, &self.run_id) {
            (Some(uri), _) => uri.clone(),
            (None, Some(run)) => match self.artifact_path.as_deref().map(|p| p.trim_matches('/')) {
                Some(p) if !p.is_empty() => format!("runs:/{run}/{p}"),
                _ => format!("runs:/{run}"),
            },
            (None, None) => String::new(),
        }
    }
}

fn failed(action: &str, e: cairn_plugin_api::Error) -> Error {
    Error::Artifacts {
        action: action.to_owned(),
        message: e.message,
    }
}

fn io_failed(action: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Artifacts {
        action: action.to_owned(),
        message: format!("{}: {e}", path.display()),
    }
}

/// Runs `command` with the configuration `loaded` (used when no http(s) tracking server is
/// named), resolving relative local paths against `dir`, writing its report to `out`.
pub fn run(
    command: &ArtifactsCommand,
    loaded: &LoadedConfig,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    crate::cli::runtime()?.block_on(async {
        match command {
            ArtifactsCommand::List(target) => {
                let uri = target.uri();
                let resolver = resolver_for(target, &uri, loaded)?;
                let files = list(&resolver, &uri).await.map_err(|e| failed("list", e))?;
                let json = serde_json::to_string(&files).unwrap_or_default();
                writeln!(out, "{json}").map_err(Error::Output)
            }
            ArtifactsCommand::Download { target, dst_path } => {
                let uri = target.uri();
                let resolver = resolver_for(target, &uri, loaded)?;
                let dst = dir.join(dst_path.as_deref().unwrap_or(Path::new(".")));
                let local = download(&resolver, &uri, &dst).await?;
                writeln!(out, "{}", local.display()).map_err(Error::Output)
            }
            ArtifactsCommand::Upload { local_path, target } => {
                let uri = target.uri();
                let resolver = resolver_for(target, &uri, loaded)?;
                let (files, bytes) = upload(&resolver, &dir.join(local_path), &uri).await?;
                writeln!(
                    out,
                    "uploaded {files} file{} ({bytes} bytes) to {uri}",
                    if files == 1 { "" } else { "s" }
                )
                .map_err(Error::Output)
            }
        }
    })
}

/// The resolver for `uri`: through the tracking server when `target`'s tracking URI is
/// `http(s)`, else through the configuration's [`Assembly`] (building only what `uri` needs;
/// a store tracking URI is already `store.backend_store_uri`, see
/// [`ArtifactsCommand::overrides`]).
pub fn resolver_for(target: &Target, uri: &str, loaded: &LoadedConfig) -> Result<Resolver> {
    let assembly = Assembly::new(loaded)?;
    let repositories = assembly.repositories().clone();
    if let Some(t) = target.server_uri() {
        let client = TrackingClient::from_env(t).map_err(|e| failed("connect", e))?;
        let connect_client = client.clone();
        let proxy = Proxy::Remote {
            tracking: t.to_owned(),
            connect: Arc::new(move |base: &str| {
                Ok(HttpArtifactRepository::shared(
                    connect_client.for_base(base),
                ))
            }),
        };
        let client = Arc::new(client);
        return Ok(Resolver::new(repositories, proxy, Some(client.clone())).with_models(client));
    }
    // Local: the stores of the configuration, built only if the URI needs them.
    let parsed = parse(uri).map_err(|e| failed("resolve", e))?;
    let needs_models = matches!(parsed, ArtifactUri::Model(_));
    let needs_store = needs_models || matches!(parsed, ArtifactUri::Run { .. });
    let needs_proxy = needs_store || matches!(parsed, ArtifactUri::Proxied { .. });
    let mut models: Option<Arc<dyn ModelRoots>> = None;
    let runs: Option<Arc<dyn RunRoots>> = if needs_store {
        let store = assembly.tracking_store()?.plugin;
        if needs_models {
            let registry = assembly.registry_store()?;
            models = Some(Arc::new(StoreModels {
                registry: registry.plugin,
                tracking: store.clone(),
            }));
        }
        Some(Arc::new(StoreRuns(store)))
    } else {
        None
    };
    let proxy = if needs_proxy {
        Proxy::Destination(assembly.artifacts_destination()?.plugin)
    } else {
        Proxy::Unavailable(
            "mlflow-artifacts: URIs need a tracking server (set MLFLOW_TRACKING_URI)".to_owned(),
        )
    };
    let resolver = Resolver::new(repositories, proxy, runs);
    Ok(match models {
        Some(m) => resolver.with_models(m),
        None => resolver,
    })
}

/// One listed entry, as MLflow's CLI prints it: the path relative to the listed URI.
#[derive(Debug, serde::Serialize)]
pub struct Listed {
    /// Path relative to the listed URI.
    pub path: String,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Size in bytes (files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size: Option<i64>,
}

/// The entries of the directory `uri` names (`[]` for a file or a missing path).
pub async fn list(resolver: &Resolver, uri: &str) -> cairn_plugin_api::Result<Vec<Listed>> {
    let resolved = resolver.resolve(uri).await?;
    let files = resolved.repository.list(resolved.path.as_deref()).await?;
    Ok(files
        .into_iter()
        .map(|f| Listed {
            path: resolved.relative(&f.path).to_owned(),
            is_dir: f.is_dir,
            file_size: f.file_size,
        })
        .collect())
}

/// The last segment of a repository path, checked to be one safe local name.
fn local_name(repo_path: &str) -> cairn_plugin_api::Result<String> {
    let name = repo_path.rsplit('/').next().unwrap_or(repo_path);
    let name = canonical_artifact_path(name)?;
    if name.is_empty() || name.contains('/') {
        return Err(cairn_plugin_api::Error::invalid(format!(
            "refusing to write an artifact named {repo_path:?}"
        )));
    }
    Ok(name)
}

/// Downloads what `uri` names into the directory `dst`; returns the local path written (a file,
/// or the directory holding a downloaded directory's contents).
pub async fn download(resolver: &Resolver, uri: &str, dst: &Path) -> Result<PathBuf> {
    let resolved = resolver
        .resolve(uri)
        .await
        .map_err(|e| failed("download", e))?;
    let (repo, path) = (resolved.repository.clone(), resolved.path.clone());
    let local = match &path {
        Some(p) => dst.join(local_name(p).map_err(|e| failed("download", e))?),
        None => dst.to_owned(),
    };
    let entries = repo
        .list(path.as_deref())
        .await
        .map_err(|e| failed("download", e))?;
    if !entries.is_empty() {
        fetch_tree(&repo, path.as_deref(), &local).await?;
        return Ok(local);
    }
    match path {
        Some(p) => {
            fetch_file(&repo, &p, &local, uri).await?;
            Ok(local)
        }
        // A direct URI may name one file: its parent holds it.
        None if matches!(parse(uri), Ok(ArtifactUri::Direct(_))) => match split_last(uri) {
            Some((parent, name)) => {
                let parent = resolver
                    .resolve(&parent)
                    .await
                    .map_err(|e| failed("download", e))?;
                let name = local_name(&name).map_err(|e| failed("download", e))?;
                let local = dst.join(&name);
                let path = parent.join(Some(&name)).unwrap_or(name);
                fetch_file(&parent.repository, &path, &local, uri).await?;
                Ok(local)
            }
            None => empty_dir(&local).await,
        },
        None => empty_dir(&local).await,
    }
}

async fn empty_dir(local: &Path) -> Result<PathBuf> {
    tokio::fs::create_dir_all(local)
        .await
        .map_err(|e| io_failed("download", local, e))?;
    Ok(local.to_owned())
}

/// Downloads the directory `path` of `repo` into `local`, recursively.
async fn fetch_tree(
    repo: &Arc<dyn ArtifactRepository>,
    path: Option<&str>,
    local: &Path,
) -> Result<()> {
    let mut pending = vec![(path.map(str::to_owned), local.to_owned())];
    while let Some((dir, into)) = pending.pop() {
        tokio::fs::create_dir_all(&into)
            .await
            .map_err(|e| io_failed("download", &into, e))?;
        let entries = repo
            .list(dir.as_deref())
            .await
            .map_err(|e| failed("download", e))?;
        for entry in entries {
            let name = local_name(&entry.path).map_err(|e| failed("download", e))?;
            if entry.is_dir {
                pending.push((Some(entry.path), into.join(name)));
            } else {
                fetch_file(repo, &entry.path, &into.join(name), &entry.path).await?;
            }
        }
    }
    Ok(())
}

/// Streams the file `path` of `repo` to `local` through a temporary file beside it; `shown`
/// names it in errors.
async fn fetch_file(
    repo: &Arc<dyn ArtifactRepository>,
    path: &str,
    local: &Path,
    shown: &str,
) -> Result<()> {
    let download = repo.get(path).await.map_err(|e| {
        if e.kind == ErrorKind::NotFound {
            Error::Artifacts {
                action: "download".into(),
                message: format!("No such artifact: '{shown}'"),
            }
        } else {
            failed("download", e)
        }
    })?;
    if let Some(parent) = local.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| io_failed("download", parent, e))?;
    }
    let tmp = local.with_file_name(format!(
        ".{}.cairn-{}.part",
        local
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("artifact"),
        uuid::Uuid::new_v4().simple()
    ));
    let result = async {
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| io_failed("download", &tmp, e))?;
        let mut meter = Meter::new(path, download.size);
        let mut body = download.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| failed("download", e))?;
            file.write_all(&chunk)
                .await
                .map_err(|e| io_failed("download", &tmp, e))?;
            meter.add(chunk.len() as u64);
        }
        file.flush()
            .await
            .map_err(|e| io_failed("download", &tmp, e))?;
        meter.finish();
        tokio::fs::rename(&tmp, local)
            .await
            .map_err(|e| io_failed("download", local, e))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// Uploads the file or directory `local` into the directory `uri` names; returns the number of
/// files and bytes sent.
pub async fn upload(resolver: &Resolver, local: &Path, uri: &str) -> Result<(usize, u64)> {
    let resolved = resolver
        .resolve(uri)
        .await
        .map_err(|e| failed("upload", e))?;
    let meta = tokio::fs::metadata(local)
        .await
        .map_err(|e| io_failed("upload", local, e))?;
    let mut files = Vec::new();
    if meta.is_dir() {
        // A directory walk is many small blocking calls: one job on the blocking pool.
        let dir = local.to_owned();
        files = tokio::task::spawn_blocking(move || {
            let mut files = Vec::new();
            collect_files(&dir, "", &mut files).map(|()| files)
        })
        .await
        .map_err(|e| Error::Artifacts {
            action: "upload".into(),
            message: format!("listing the local directory failed: {e}"),
        })??;
    } else {
        let name = local
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io_failed("upload", local, std::io::ErrorKind::InvalidInput.into()))?;
        files.push((local.to_owned(), name.to_owned()));
    }
    let mut bytes = 0;
    for (path, rel) in &files {
        let rel = canonical_artifact_path(rel).map_err(|e| failed("upload", e))?;
        let dest = resolved.join(Some(&rel)).unwrap_or(rel);
        bytes += put_file(&resolved.repository, path, &dest).await?;
    }
    Ok((files.len(), bytes))
}

/// Every file under `dir` with its `/`-separated path relative to the top, sorted.
fn collect_files(dir: &Path, prefix: &str, out: &mut Vec<(PathBuf, String)>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io_failed("upload", dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| io_failed("upload", dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = std::fs::metadata(&path).map_err(|e| io_failed("upload", &path, e))?;
        if kind.is_dir() {
            collect_files(&path, &rel, out)?;
        } else {
            out.push((path, rel));
        }
    }
    Ok(())
}

/// The chunk size of uploads read from disk.
const UPLOAD_CHUNK: usize = 1 << 20;

/// Streams the local file `path` into `dest` of `repo`.
async fn put_file(repo: &Arc<dyn ArtifactRepository>, path: &Path, dest: &str) -> Result<u64> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| io_failed("upload", path, e))?;
    let size = file.metadata().await.ok().map(|m| m.len());
    let meter = Meter::new(dest, size);
    let shown = path.display().to_string();
    let stream =
        futures_util::stream::unfold((file, meter, false), move |(mut file, mut meter, done)| {
            let shown = shown.clone();
            async move {
                if done {
                    return None;
                }
                let mut buf = BytesMut::with_capacity(UPLOAD_CHUNK);
                match file.read_buf(&mut buf).await {
                    Ok(0) => {
                        meter.finish();
                        None
                    }
                    Ok(n) => {
                        meter.add(n as u64);
                        Some((Ok(buf.freeze()), (file, meter, false)))
                    }
                    Err(e) => Some((
                        Err(cairn_plugin_api::Error::internal(format!(
                            "reading {shown}: {e}"
                        ))),
                        (file, meter, true),
                    )),
                }
            }
        });
    let body: ByteStream = Box::pin(stream);
    repo.put(dest, body).await.map_err(|e| failed("upload", e))
}

/// A progress meter on stderr for one transfer: drawn only on a terminal and for transfers of
/// at least [`Meter::MIN_SIZE`] bytes (or of unknown size), at most ten times a second.
struct Meter {
    name: String,
    total: Option<u64>,
    done: u64,
    start: Instant,
    last: Option<Instant>,
    enabled: bool,
}

impl Meter {
    const MIN_SIZE: u64 = 1 << 20;

    fn new(name: &str, total: Option<u64>) -> Self {
        Meter {
            name: name.to_owned(),
            total,
            done: 0,
            start: Instant::now(),
            last: None,
            enabled: std::io::stderr().is_terminal() && total.is_none_or(|t| t >= Self::MIN_SIZE),
        }
    }

    fn add(&mut self, n: u64) {
        self.done += n;
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now - l < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(now);
        self.draw();
    }

    fn draw(&self) {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = mib(self.done) / secs;
        let line = match self.total {
            Some(t) if t > 0 => format!(
                "{}: {:.1} / {:.1} MiB ({:.0}%) {rate:.1} MiB/s",
                self.name,
                mib(self.done),
                mib(t),
                100.0 * self.done as f64 / t as f64
            ),
            _ => format!("{}: {:.1} MiB {rate:.1} MiB/s", self.name, mib(self.done)),
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.enabled && self.last.is_some() {
            self.draw();
            let _ = writeln!(std::io::stderr());
            self.enabled = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_and_path_spell_a_runs_uri() {
        let t = |run: &str, path: Option<&str>| Target {
            uri: None,
            run_id: Some(run.into()),
            artifact_path: path.map(Into::into),
            tracking_uri: None,
        };
        assert_eq!(t("abc", None).uri(), "runs:/abc");
        assert_eq!(t("abc", Some("model/")).uri(), "runs:/abc/model");
    }

    #[test]
    fn local_names_are_single_safe_segments() {
        assert_eq!(local_name("a/b/c.txt").unwrap(), "c.txt");
        assert!(local_name("a/..").is_err());
        assert!(local_name("a/%2e%2e").is_err());
        assert!(local_name("").is_err());
    }
}
