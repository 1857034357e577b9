//! `cairn run` (MLflow's `mlflow run`) and `cairn runs wait|logs|cancel`.
//!
//! `cairn run` reads the project, resolves the entry point's parameters, creates the run with
//! MLflow's project tags (api.md §10) and logs every parameter in one batch, submits the
//! command to the backend, stores the backend's [`RunHandle`] as the run's tag
//! [`RunHandle::TAG`], then follows the output and polls the status (with backoff) until the
//! run ends, and writes the terminal status itself: FINISHED, FAILED (the exit code in the
//! message), or KILLED after Ctrl-C or SIGTERM, which cancel the run's whole process group.
//! `cairn runs ...` find a run's backend and handle from that tag, so they work from any
//! `cairn` process.

use super::fetch::{fetch, is_zip_uri, local_zip, split_subdirectory};
use super::local::{LocalBackend, default_storage_dir};
use super::spec::{
    Project, ProjectEnv, ResolvedParameters, read_conda_as_python_env, read_python_env,
};
use super::tracking::Tracking;
use crate::assembly::Assembly;
use crate::config::{LoadedConfig, Overrides};
use crate::error::{Error, Result};
use crate::http_repo::TrackingClient;
use cairn_plugin_api::entities::{Param, RunStatus, RunTag};
use cairn_plugin_api::projects::{
    LogOptions, ProjectEnvironment, ProjectRun, ProjectSource, PythonEnvManager, RunHandle,
    RunState,
};
use cairn_plugin_api::{ProjectBackend, SubmittedRun};
use clap::{Args, Subcommand, ValueEnum};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind};

/// Where runs are recorded: MLflow's tracking URI.
#[derive(Debug, Clone, Default, Args)]
pub struct TrackingArgs {
    /// Tracking server or store; default MLFLOW_TRACKING_URI, else the configuration's store.
    #[arg(long, value_name = "URI", env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: Option<String>,
}

impl TrackingArgs {
    fn server_uri(&self) -> Option<&str> {
        self.tracking_uri
            .as_deref()
            .filter(|t| t.starts_with("http://") || t.starts_with("https://"))
    }

    /// The configuration layer: a store tracking URI is `store.backend_store_uri`.
    pub fn overrides(&self) -> Overrides {
        let mut overrides = Overrides::default();
        if let Some(uri) = self
            .tracking_uri
            .as_deref()
            .filter(|t| !t.is_empty() && self.server_uri().is_none())
        {
            overrides.set(
                "store.backend_store_uri",
                "--tracking-uri (or MLFLOW_TRACKING_URI)",
                uri,
            );
        }
        overrides
    }

    /// The tracking calls, and the tracking URI the run's process gets.
    fn connect(&self, loaded: &LoadedConfig) -> Result<(Tracking, String)> {
        if let Some(base) = self.server_uri() {
            let client = TrackingClient::from_env(base).map_err(failed)?;
            return Ok((Tracking::Rest(client), base.to_owned()));
        }
        let assembly = Assembly::new(loaded)?;
        let store = assembly.tracking_store()?;
        let providers = assembly.run_context(&mut |_| {})?;
        let uri = loaded.config().store.backend_store_uri.clone();
        Ok((
            Tracking::Store {
                store: store.plugin,
                providers,
            },
            uri,
        ))
    }
}

/// `--env-manager`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvManager {
    /// Run in this machine's environment as is.
    Local,
    /// A virtualenv from `python_env.yaml`.
    Virtualenv,
    /// A uv environment from `python_env.yaml`.
    Uv,
    /// A conda environment.
    Conda,
}

/// The Python environment builder of `--env-manager virtualenv|uv`.
fn python_manager(manager: EnvManager) -> PythonEnvManager {
    if manager == EnvManager::Uv {
        PythonEnvManager::Uv
    } else {
        PythonEnvManager::Virtualenv
    }
}

/// `cairn run`: MLflow's `mlflow run` options.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The project: a local directory, a `.zip` (a path or any URI Cairn downloads), or a Git
    /// URI (https://, file://, git@...), with an optional #subdirectory.
    #[arg(value_name = "URI")]
    pub uri: String,
    /// The entry point.
    #[arg(long, short = 'e', default_value = "main")]
    pub entry_point: String,
    /// The project version (a Git commit, branch or tag).
    #[arg(long, short = 'v')]
    pub version: Option<String>,
    /// A parameter, `name=value` (repeatable).
    #[arg(long = "param-list", short = 'P', value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// A docker argument, `name=value` or `name` (repeatable; docker environments only).
    #[arg(long = "docker-args", short = 'A', value_name = "NAME[=VALUE]")]
    pub docker_args: Vec<String>,
    /// The experiment, by name (created if missing).
    #[arg(long, env = "MLFLOW_EXPERIMENT_NAME", conflicts_with = "experiment_id")]
    pub experiment_name: Option<String>,
    /// The experiment, by id.
    #[arg(long, env = "MLFLOW_EXPERIMENT_ID")]
    pub experiment_id: Option<String>,
    /// The backend: `local` or a project-backend plugin's name.
    #[arg(long, short = 'b', default_value = "local")]
    pub backend: String,
    /// Backend configuration: a `.json` file or inline JSON.
    #[arg(long, short = 'c', value_name = "JSON_OR_FILE")]
    pub backend_config: Option<String>,
    /// How the environment is built; default from the project (`python_env`: virtualenv).
    #[arg(long, value_enum)]
    pub env_manager: Option<EnvManager>,
    /// Where runs' state (output, exit code) and downloads go (the local backend).
    #[arg(long, env = "MLFLOW_TMP_DIR", value_name = "DIR")]
    pub storage_dir: Option<PathBuf>,
    /// Record into this existing run instead of creating one.
    #[arg(long)]
    pub run_id: Option<String>,
    /// The new run's name.
    #[arg(long)]
    pub run_name: Option<String>,
    /// Build a new image for docker environments.
    #[arg(long)]
    pub build_image: bool,
    /// Submit, print the run id and return without waiting (`cairn runs wait|logs|cancel`).
    #[arg(long, conflicts_with_all = ["sweep", "sweep_random"])]
    pub no_wait: bool,
    /// Run the cross product of comma-separated `-P` values (`-P alpha=0.1,0.5`) as child runs
    /// of one parent run.
    #[arg(long, conflicts_with_all = ["run_id", "sweep_random"])]
    pub sweep: bool,
    /// Run K random draws as child runs of one parent run: `-P a=uniform:LOW:HIGH`,
    /// `loguniform:LOW:HIGH`, `int:LOW:HIGH` (inclusive), `v1,v2,...` (one of), else fixed.
    #[arg(long, value_name = "K", conflicts_with = "run_id")]
    pub sweep_random: Option<usize>,
    /// With --sweep-random: the random seed (default: a fresh one, printed).
    #[arg(long, value_name = "SEED", requires = "sweep_random")]
    pub sweep_seed: Option<u64>,
    /// With --sweep or --sweep-random: how many runs at once.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub max_parallel: usize,
    /// With --sweep or --sweep-random: a metric to show for each run in the summary.
    #[arg(long, value_name = "KEY")]
    pub sweep_metric: Option<String>,
    /// Where runs are recorded.
    #[command(flatten)]
    pub tracking: TrackingArgs,
}

/// `cairn runs ...`: a submitted project run, by its tracking run id.
#[derive(Debug, Clone, Subcommand)]
pub enum RunsCommand {
    /// Wait for the run to end, write its final status, and exit non-zero unless it finished.
    Wait(RunRef),
    /// Print the run's output (`--follow` until it ends).
    Logs {
        /// The run.
        #[command(flatten)]
        run: RunRef,
        /// Keep printing new output until the run ends.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Stop the run's processes; its status becomes KILLED.
    Cancel(RunRef),
}

impl RunsCommand {
    /// The tracking options.
    pub fn tracking(&self) -> &TrackingArgs {
        match self {
            RunsCommand::Wait(r) | RunsCommand::Logs { run: r, .. } | RunsCommand::Cancel(r) => {
                &r.tracking
            }
        }
    }
}

/// A run, by id.
#[derive(Debug, Clone, Args)]
pub struct RunRef {
    /// The tracking run id.
    pub run_id: String,
    /// The local backend's storage directory, for runs whose handle is elsewhere.
    #[arg(long, env = "MLFLOW_TMP_DIR", value_name = "DIR")]
    pub storage_dir: Option<PathBuf>,
    /// Where runs are recorded.
    #[command(flatten)]
    pub tracking: TrackingArgs,
}

fn failed(e: cairn_plugin_api::Error) -> Error {
    Error::Project(e.message)
}

fn project_error(e: super::spec::ProjectError) -> Error {
    Error::Project(e.0)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Project(format!("cannot start the async runtime: {e}")))
}

fn parse_pairs(items: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(Error::Project(format!(
                "{flag} {item:?}: expected NAME=VALUE"
            )));
        };
        if out.iter().any(|(seen, _)| seen == k) {
            return Err(Error::Project(format!(
                "{flag}: the parameter {k} was given more than once"
            )));
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

fn backend_for(
    name: &str,
    storage_dir: Option<&Path>,
    loaded: &LoadedConfig,
) -> Result<Arc<dyn ProjectBackend>> {
    if name == super::local::NAME {
        let dir = storage_dir.map_or_else(default_storage_dir, Path::to_path_buf);
        return Ok(Arc::new(LocalBackend::new(dir)));
    }
    Assembly::new(loaded)?.project_backend(name)
}

fn user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// `cairn run`. Returns the run's final state (`None` with `--no-wait`).
pub fn run(args: &RunArgs, loaded: &LoadedConfig, cwd: &Path, out: &mut dyn Write) -> Result<()> {
    let storage_dir = args.storage_dir.clone().unwrap_or_else(default_storage_dir);
    let rt = runtime()?;
    // A remote `.zip` is downloaded through Cairn's artifact resolution first.
    let archive = if is_zip_uri(&args.uri) && local_zip(&args.uri).is_none() {
        let (base, _) = split_subdirectory(&args.uri)?;
        let dst = storage_dir
            .join("downloads")
            .join(uuid::Uuid::new_v4().simple().to_string());
        eprintln!(
            "=== Fetching project from {} into {} ===",
            args.uri,
            dst.display()
        );
        Some(rt.block_on(download_uri(base, &dst, &args.tracking, loaded))?)
    } else {
        None
    };
    let fetched = fetch(
        &args.uri,
        archive.as_deref(),
        args.version.as_deref(),
        cwd,
        &storage_dir,
    )?;
    let dir = fetched.dir.clone();
    let project = Project::load(&dir).map_err(project_error)?;
    let entry = project
        .entry_point(&args.entry_point)
        .map_err(project_error)?;
    let given = parse_pairs(&args.params, "-P")?;
    let sweeping = args.sweep || args.sweep_random.is_some();
    if !sweeping && (args.max_parallel != 1 || args.sweep_metric.is_some()) {
        return Err(Error::Project(
            "--max-parallel and --sweep-metric need --sweep or --sweep-random".into(),
        ));
    }
    let combinations = if let Some(count) = args.sweep_random {
        let seed = args.sweep_seed.unwrap_or_else(|| {
            let id = uuid::Uuid::new_v4().as_u64_pair().0;
            id >> 11 // small enough to retype
        });
        eprintln!("=== Random sweep of {count} runs with --sweep-seed {seed} ===");
        random_combinations(&given, count, seed)?
    } else if args.sweep {
        sweep_combinations(&given)
    } else {
        vec![given]
    };
    // Every combination is checked before any run exists.
    let resolved = combinations
        .iter()
        .map(|given| entry.resolve(given, cwd).map_err(project_error))
        .collect::<Result<Vec<_>>>()?;
    let manager = args.env_manager.unwrap_or(match project.env {
        ProjectEnv::Python(_) => EnvManager::Virtualenv,
        ProjectEnv::Conda(_) => EnvManager::Conda,
        ProjectEnv::Docker(_) | ProjectEnv::None => EnvManager::Local,
    });
    let mut environment = match (&project.env, manager) {
        (ProjectEnv::Docker(docker), _) => ProjectEnvironment::Docker {
            image: docker.image.clone(),
            volumes: docker.volumes.clone(),
            environment: docker.environment.iter().cloned().collect(),
        },
        (_, EnvManager::Local) => ProjectEnvironment::Local,
        (ProjectEnv::Python(file), EnvManager::Virtualenv | EnvManager::Uv) => {
            ProjectEnvironment::PythonEnv {
                spec: read_python_env(file).map_err(project_error)?,
                manager: python_manager(manager),
            }
        }
        (ProjectEnv::Python(_), EnvManager::Conda) => {
            return Err(Error::Project(
                "a python_env project cannot use --env-manager conda".into(),
            ));
        }
        // As MLflow: the conda file's Python and pip packages in a Python environment.
        (ProjectEnv::Conda(file), EnvManager::Virtualenv | EnvManager::Uv) => {
            let (spec, skipped) = read_conda_as_python_env(file).map_err(project_error)?;
            if !skipped.is_empty() {
                eprintln!(
                    "=== The conda packages {} are not installed in a {} environment ===",
                    skipped.join(", "),
                    if manager == EnvManager::Uv {
                        "uv"
                    } else {
                        "virtualenv"
                    }
                );
            }
            ProjectEnvironment::PythonEnv {
                spec,
                manager: python_manager(manager),
            }
        }
        (ProjectEnv::Conda(file), _) => ProjectEnvironment::Conda {
            file: std::fs::read_to_string(file)
                .map_err(|e| Error::Project(format!("cannot read {}: {e}", file.display())))?,
        },
        // Nothing declared: an environment of the chosen manager with Python alone.
        (ProjectEnv::None, EnvManager::Virtualenv | EnvManager::Uv) => {
            ProjectEnvironment::PythonEnv {
                spec: Default::default(),
                manager: python_manager(manager),
            }
        }
        (ProjectEnv::None, EnvManager::Conda) => ProjectEnvironment::Conda {
            file: "dependencies:\n  - python\n".into(),
        },
    };
    let mut backend_config = match args.backend_config.as_deref() {
        None => serde_json::Value::Null,
        Some(c) if c.ends_with(".json") => {
            let text = std::fs::read_to_string(cwd.join(c))
                .map_err(|e| Error::Project(format!("cannot read --backend-config {c}: {e}")))?;
            serde_json::from_str(&text)
                .map_err(|e| Error::Project(format!("--backend-config {c} is not JSON: {e}")))?
        }
        Some(c) => serde_json::from_str(c)
            .map_err(|e| Error::Project(format!("--backend-config is not JSON: {e}")))?,
    };
    // Docker on the local backend: `-A name[=value]` become its `docker_args` (bare flags are
    // `true`, as MLflow), `--build-image` its `build_image`: MLflow's tag
    // `<project name or docker-project>[:<commit[:7]>]`.
    let local_docker = matches!(environment, ProjectEnvironment::Docker { .. })
        && args.backend == super::local::NAME;
    let image_tag = |repository: &str| {
        let commit = match &fetched.git {
            Some(g) => Some(g.commit.clone()),
            None => crate::run_context::git_info(&dir).and_then(|g| g.commit),
        };
        match commit {
            Some(c) => format!("{repository}:{}", c.get(..7).unwrap_or(&c)),
            None => repository.to_owned(),
        }
    };
    let built_image = (local_docker && args.build_image)
        .then(|| image_tag(project.name.as_deref().unwrap_or("docker-project")));
    if local_docker && (built_image.is_some() || !args.docker_args.is_empty()) {
        if backend_config.is_null() {
            backend_config = serde_json::json!({});
        }
        let config = backend_config
            .as_object_mut()
            .ok_or_else(|| Error::Project("--backend-config must be a JSON object".into()))?;
        if !args.docker_args.is_empty() {
            let docker_args: serde_json::Map<String, serde_json::Value> = args
                .docker_args
                .iter()
                .map(|a| match a.split_once('=') {
                    Some((k, v)) => (k.to_owned(), serde_json::Value::from(v)),
                    None => (a.clone(), serde_json::Value::Bool(true)),
                })
                .collect();
            config.insert("docker_args".into(), docker_args.into());
        }
        if let Some(tag) = &built_image {
            config.insert("build_image".into(), tag.clone().into());
        }
    }
    // `--build-image` on Kubernetes, as MLflow: the image is built `FROM docker_env.image`
    // with the project in it, tagged `<repository-uri>[:<commit[:7]>]`, pushed, and the Job
    // runs it by digest (the project is in the image: no init container fetches it).
    let pushed = if args.build_image && args.backend == "kubernetes" {
        let ProjectEnvironment::Docker { image, .. } = &mut environment else {
            return Err(Error::Project(
                "--build-image with -b kubernetes needs a docker_env project (the image is \
                 built FROM its docker_env.image)"
                    .into(),
            ));
        };
        let repository = backend_config
            .get("repository-uri")
            .and_then(serde_json::Value::as_str)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                Error::Project(
                    "--build-image with -b kubernetes pushes the image to the backend config's \
                     repository-uri, which is not set"
                        .into(),
                )
            })?;
        let tag = image_tag(repository);
        eprintln!("=== Building and pushing docker image {tag} ===");
        let pushed = super::environment::build_and_push(&tag, image, &dir.to_string_lossy())
            .map_err(|e| Error::Project(e.message))?;
        *image = pushed.reference();
        Some(pushed)
    } else {
        None
    };
    let backend = backend_for(&args.backend, Some(&storage_dir), loaded)?;
    let (tracking, tracking_uri) = args.tracking.connect(loaded)?;

    rt.block_on(async {
        let mut planned = Vec::new();
        for mut params in resolved {
            download_paths(&mut params, &storage_dir, &args.tracking, loaded).await?;
            let command = entry.render(&params).map_err(project_error)?;
            planned.push((params, command));
        }
        let experiment_id = tracking
            .experiment_id(
                args.experiment_id.as_deref(),
                args.experiment_name.as_deref(),
            )
            .await
            .map_err(failed)?;
        let (source_name, git) = match &fetched.git {
            Some(g) => (
                args.uri.clone(),
                Some(crate::run_context::GitInfo {
                    commit: Some(g.commit.clone()),
                    branch: g.branch.clone(),
                    repo_url: Some(g.url.clone()),
                }),
            ),
            // As MLflow: a local archive by its absolute path, a remote one by its URI.
            None if is_zip_uri(&args.uri) => {
                let name = match local_zip(&args.uri) {
                    Some(local) => {
                        let (_, sub) = split_subdirectory(&args.uri)?;
                        let path = std::path::absolute(cwd.join(local))
                            .unwrap_or_else(|_| cwd.join(local));
                        let sub = if sub.is_empty() {
                            String::new()
                        } else {
                            format!("#{sub}")
                        };
                        format!("{}{sub}", path.display())
                    }
                    None => args.uri.clone(),
                };
                (name, None)
            }
            None => {
                // The branch tag names a `--version` only (as MLflow).
                let git = crate::run_context::git_info(&dir)
                    .map(|g| crate::run_context::GitInfo { branch: None, ..g });
                // As MLflow's `_get_git_url_if_present`: inside a Git work tree the source is
                // `file://<work tree>#<subdirectory>`, not the remote; elsewhere the path.
                let root = git
                    .as_ref()
                    .and_then(|_| dir.ancestors().find(|d| d.join(".git").exists()));
                let name = match root.map(|r| (r, dir.strip_prefix(r))) {
                    Some((r, Ok(sub))) if !sub.as_os_str().is_empty() => {
                        format!("file://{}#{}", r.display(), sub.display())
                    }
                    Some((r, _)) => format!("file://{}", r.display()),
                    None => dir.to_string_lossy().into_owned(),
                };
                (name, git)
            }
        };
        let mut tags = vec![
            tag("mlflow.user", &user()),
            tag("mlflow.source.name", &source_name),
            tag("mlflow.source.type", "PROJECT"),
            tag("mlflow.project.entryPoint", &entry.name),
            tag("mlflow.project.backend", &args.backend),
        ];
        if let Some(git) = &git {
            if let Some(commit) = &git.commit {
                tags.push(tag("mlflow.source.git.commit", commit));
            }
            if let Some(url) = &git.repo_url {
                tags.push(tag("mlflow.source.git.repoURL", url));
                tags.push(tag("mlflow.gitRepoURL", url));
            }
            if let Some(branch) = &git.branch {
                tags.push(tag("mlflow.source.git.branch", branch));
            }
        }
        let env_tag = match &environment {
            ProjectEnvironment::Local => None,
            ProjectEnvironment::PythonEnv { manager, .. } => Some(match manager {
                PythonEnvManager::Virtualenv => "virtualenv",
                PythonEnvManager::Uv => "uv",
            }),
            ProjectEnvironment::Conda { .. } => Some("conda"),
            ProjectEnvironment::Docker { .. } => Some("docker"),
        };
        if let Some(env) = env_tag {
            tags.push(tag("mlflow.project.env", env));
        }
        if let ProjectEnvironment::Docker { image, .. } = &environment {
            let uri = match &pushed {
                Some(p) => &p.tag,
                None => built_image.as_deref().unwrap_or(image),
            };
            tags.push(tag("mlflow.docker.image.uri", uri));
        }
        if let Some(p) = &pushed {
            // MLflow's `mlflow.docker.image.id` on Kubernetes: the registry digest.
            tags.push(tag("mlflow.docker.image.id", &p.digest));
        }
        let launcher = Launcher {
            tracking: &tracking,
            backend: &*backend,
            experiment_id: &experiment_id,
            tracking_uri: &tracking_uri,
            tags: &tags,
            // The local backend runs the checkout; another backend fetches the commit itself.
            source: match &fetched.git {
                Some(g) if args.backend != super::local::NAME && pushed.is_none() => {
                    ProjectSource::Git {
                        url: g.url.clone(),
                        commit: g.commit.clone(),
                        subdirectory: g.subdirectory.clone(),
                    }
                }
                _ => ProjectSource::Local {
                    path: dir.to_string_lossy().into_owned(),
                },
            },
            entry_point: &entry.name,
            environment: &environment,
            backend_config: &backend_config,
        };
        if sweeping {
            return sweep(&launcher, &planned, args, out).await;
        }
        let (params, command) = &planned[0];
        let run_id = match &args.run_id {
            Some(id) => {
                tracking
                    .log_batch(id, vec![], tags.clone())
                    .await
                    .map_err(failed)?;
                id.clone()
            }
            None => launcher.create(None, args.run_name.as_deref()).await?,
        };
        eprintln!("=== Running command '{command}' in run with ID '{run_id}' ===");
        let submitted = launcher.start(&run_id, params, command).await?;
        if args.no_wait {
            writeln!(out, "{run_id}").map_err(Error::Output)?;
            return Ok(());
        }
        finish(&*submitted, &tracking, true, out).await
    })
}

/// Downloads the remote `path` parameters of `params` through Cairn's artifact resolution
/// (`runs:/`, `models:/`, `mlflow-artifacts:`, `s3://`, ...) into a fresh
/// `<storage dir>/downloads/<id>/param_<index>/`, and gives the command the local path (the
/// run still records the URI, as MLflow).
async fn download_paths(
    params: &mut ResolvedParameters,
    storage_dir: &Path,
    tracking: &TrackingArgs,
    loaded: &LoadedConfig,
) -> Result<()> {
    if params.downloads.is_empty() {
        return Ok(());
    }
    let root = storage_dir
        .join("downloads")
        .join(uuid::Uuid::new_v4().simple().to_string());
    for (index, key, uri) in std::mem::take(&mut params.downloads) {
        let dst = root.join(format!("param_{index}"));
        let local = download_uri(&uri, &dst, tracking, loaded)
            .await
            .map_err(|e| Error::Project(format!("parameter {key}: {e}")))?;
        params
            .values
            .insert(key, local.to_string_lossy().into_owned());
    }
    Ok(())
}

/// Downloads `uri` into the directory `dst` and answers the local (absolute) path: `http(s)`
/// with a plain GET (as MLflow fetches a project archive), anything else through Cairn's
/// artifact resolution (`runs:/`, `models:/`, `mlflow-artifacts:/`, `s3://`, ...).
async fn download_uri(
    uri: &str,
    dst: &Path,
    tracking: &TrackingArgs,
    loaded: &LoadedConfig,
) -> Result<PathBuf> {
    let local = if uri.starts_with("http://") || uri.starts_with("https://") {
        let fail =
            |e: &dyn std::fmt::Display| Error::Project(format!("cannot download {uri}: {e}"));
        let body = reqwest::get(uri)
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| fail(&e))?
            .bytes()
            .await
            .map_err(|e| fail(&e))?;
        let name = uri
            .split(['?', '#'])
            .next()
            .and_then(|u| u.rsplit('/').next())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .unwrap_or("download");
        std::fs::create_dir_all(dst).map_err(|e| fail(&e))?;
        let path = dst.join(name);
        std::fs::write(&path, body).map_err(|e| fail(&e))?;
        path
    } else {
        let target = crate::artifacts_cli::Target {
            uri: Some(uri.to_owned()),
            run_id: None,
            artifact_path: None,
            tracking_uri: tracking.tracking_uri.clone(),
        };
        let resolver = crate::artifacts_cli::resolver_for(&target, uri, loaded)?;
        crate::artifacts_cli::download(&resolver, uri, dst).await?
    };
    Ok(std::path::absolute(&local).unwrap_or(local))
}

/// The cross product of `-P name=v1,v2,...` values, the first parameter varying slowest.
///
/// ```
/// # use cairn_core::projects::cli::sweep_combinations;
/// let given = [("a".to_string(), "1,2".to_string()), ("b".to_string(), "x".to_string())];
/// let names: Vec<String> = sweep_combinations(&given)
///     .iter()
///     .map(|c| c.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
///     .collect();
/// assert_eq!(names, ["a=1 b=x", "a=2 b=x"]);
/// ```
pub fn sweep_combinations(given: &[(String, String)]) -> Vec<Vec<(String, String)>> {
    let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (key, values) in given {
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                values.split(',').map(move |v| {
                    let mut next = combo.clone();
                    next.push((key.clone(), v.to_owned()));
                    next
                })
            })
            .collect();
    }
    combos
}

/// `count` random draws of the `-P` values: `uniform:LOW:HIGH` and `loguniform:LOW:HIGH` (a
/// float, log-uniform between positive bounds), `int:LOW:HIGH` (an integer, both bounds
/// included), `v1,v2,...` (one of them), anything else as given. The same `seed` draws the same
/// values.
///
/// ```
/// # use cairn_core::projects::cli::random_combinations;
/// let given = [("alpha".to_string(), "uniform:0.5:1.0".to_string()),
///              ("n".to_string(), "int:1:3".to_string()), ("x".to_string(), "a".to_string())];
/// let draws = random_combinations(&given, 5, 42).unwrap();
/// assert_eq!(draws, random_combinations(&given, 5, 42).unwrap());
/// for draw in &draws {
///     let alpha: f64 = draw[0].1.parse().unwrap();
///     assert!((0.5..1.0).contains(&alpha));
///     assert!(["1", "2", "3"].contains(&draw[1].1.as_str()));
///     assert_eq!(draw[2], ("x".to_string(), "a".to_string()));
/// }
/// ```
pub fn random_combinations(
    given: &[(String, String)],
    count: usize,
    seed: u64,
) -> Result<Vec<Vec<(String, String)>>> {
    enum Space<'a> {
        Uniform(f64, f64),
        LogUniform(f64, f64),
        Int(i64, i64),
        OneOf(Vec<&'a str>),
    }
    let spaces = given
        .iter()
        .map(|(key, value)| {
            let bad = |why: &str| Error::Project(format!("-P {key}={value}: {why}"));
            let no_bounds = || bad("expected LOW:HIGH after the distribution");
            let floats = |rest: &str| -> Result<(f64, f64)> {
                let (lo, hi) = rest.split_once(':').ok_or_else(no_bounds)?;
                match (lo.parse::<f64>(), hi.parse::<f64>()) {
                    (Ok(lo), Ok(hi)) if lo.is_finite() && hi.is_finite() && lo < hi => Ok((lo, hi)),
                    _ => Err(bad("the bounds must be numbers with LOW < HIGH")),
                }
            };
            Ok(if let Some(rest) = value.strip_prefix("uniform:") {
                let (lo, hi) = floats(rest)?;
                Space::Uniform(lo, hi)
            } else if let Some(rest) = value.strip_prefix("loguniform:") {
                let (lo, hi) = floats(rest)?;
                if lo <= 0.0 {
                    return Err(bad("loguniform bounds must be positive"));
                }
                Space::LogUniform(lo.ln(), hi.ln())
            } else if let Some(rest) = value.strip_prefix("int:") {
                let (lo, hi) = rest.split_once(':').ok_or_else(no_bounds)?;
                match (lo.parse::<i64>(), hi.parse::<i64>()) {
                    (Ok(lo), Ok(hi)) if lo <= hi => Space::Int(lo, hi),
                    _ => return Err(bad("the bounds must be integers with LOW <= HIGH")),
                }
            } else {
                Space::OneOf(value.split(',').collect())
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // SplitMix64: a small, well-distributed generator, reproducible from the seed.
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut unit = move || (next() >> 11) as f64 / (1u64 << 53) as f64;
    Ok((0..count)
        .map(|_| {
            given
                .iter()
                .zip(&spaces)
                .map(|((key, _), space)| {
                    let value = match space {
                        Space::Uniform(lo, hi) => (lo + (hi - lo) * unit()).min(*hi).to_string(),
                        Space::LogUniform(lo, hi) => (lo + (hi - lo) * unit()).exp().to_string(),
                        Space::Int(lo, hi) => {
                            let span = (hi - lo) as f64 + 1.0;
                            (lo + ((unit() * span) as i64).min(hi - lo)).to_string()
                        }
                        Space::OneOf(values) => {
                            let i = ((unit() * values.len() as f64) as usize).min(values.len() - 1);
                            values[i].to_owned()
                        }
                    };
                    (key.clone(), value)
                })
                .collect()
        })
        .collect())
}

/// What every run of one `cairn run` shares.
struct Launcher<'a> {
    tracking: &'a Tracking,
    backend: &'a dyn ProjectBackend,
    experiment_id: &'a str,
    tracking_uri: &'a str,
    tags: &'a [RunTag],
    source: ProjectSource,
    entry_point: &'a str,
    environment: &'a ProjectEnvironment,
    backend_config: &'a serde_json::Value,
}

impl Launcher<'_> {
    /// Creates a run with the project tags (a child of `parent`, if given).
    async fn create(&self, parent: Option<&str>, run_name: Option<&str>) -> Result<String> {
        let mut tags = self.tags.to_vec();
        if let Some(parent) = parent {
            tags.push(tag("mlflow.parentRunId", parent));
        }
        self.tracking
            .create_run(self.experiment_id, &user(), run_name, tags)
            .await
            .map_err(failed)
    }

    /// Logs `params` into `run_id` in one batch, submits `command`, stores the handle.
    async fn start(
        &self,
        run_id: &str,
        params: &ResolvedParameters,
        command: &str,
    ) -> Result<Box<dyn SubmittedRun>> {
        let logged = params
            .logged
            .iter()
            .map(|(k, v)| Param {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        self.tracking
            .log_batch(run_id, logged, vec![])
            .await
            .map_err(failed)?;
        let env: BTreeMap<String, String> = [
            ("MLFLOW_RUN_ID", run_id),
            ("MLFLOW_TRACKING_URI", self.tracking_uri),
            ("MLFLOW_EXPERIMENT_ID", self.experiment_id),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let submission = ProjectRun {
            run_id: run_id.to_owned(),
            experiment_id: self.experiment_id.to_owned(),
            source: self.source.clone(),
            entry_point: self.entry_point.to_owned(),
            command: vec!["bash".into(), "-c".into(), command.to_owned()],
            parameters: params.logged.iter().cloned().collect(),
            environment: self.environment.clone(),
            env,
            backend_config: self.backend_config.clone(),
        };
        let submitted = match self.backend.submit(submission).await {
            Ok(s) => s,
            Err(e) => {
                let _ = self.tracking.end_run(run_id, RunStatus::Failed).await;
                return Err(failed(e));
            }
        };
        self.tracking
            .log_batch(
                run_id,
                vec![],
                vec![tag(RunHandle::TAG, &submitted.handle().to_tag())],
            )
            .await
            .map_err(failed)?;
        Ok(submitted)
    }
}

/// SIGINT (Ctrl-C) and SIGTERM, watched from now on until dropped. A signal that arrives while
/// the caller is busy elsewhere (polling a run's status, starting the next one) waits for its
/// next `recv`; a `tokio::signal::ctrl_c()` future made afresh in each turn of a loop misses
/// it, and the run was then never cancelled.
fn stop_signals() -> Result<(Signal, Signal)> {
    let watch = |kind: SignalKind, name: &str| {
        tokio::signal::unix::signal(kind)
            .map_err(|e| Error::Project(format!("cannot watch for {name}: {e}")))
    };
    Ok((
        watch(SignalKind::interrupt(), "SIGINT")?,
        watch(SignalKind::terminate(), "SIGTERM")?,
    ))
}

/// Runs every planned combination as a child of one parent run, at most `--max-parallel` at
/// once, printing a line as each starts and ends and a summary table at the end. The parent
/// ends FAILED if any child did not finish (KILLED after Ctrl-C or SIGTERM, which cancel the
/// running children and start no more).
async fn sweep(
    l: &Launcher<'_>,
    planned: &[(ResolvedParameters, String)],
    args: &RunArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let total = planned.len();
    let max = args.max_parallel.max(1);
    let parent = l.create(None, args.run_name.as_deref()).await?;
    writeln!(
        out,
        "sweep: {total} runs in parent run {parent}, at most {max} at once"
    )
    .map_err(Error::Output)?;
    let swept: Vec<String> = parse_pairs(&args.params, "-P")?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let describe = |params: &ResolvedParameters| -> String {
        swept
            .iter()
            .filter_map(|k| params.logged.iter().find(|(p, _)| p == k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (mut sigint, mut sigterm) = stop_signals()?;
    let mut next = 0;
    let mut running: Vec<(usize, String, Box<dyn SubmittedRun>)> = Vec::new();
    let mut results: Vec<Option<(String, RunState)>> = vec![None; total];
    let mut cancelled = false;
    loop {
        while !cancelled && running.len() < max && next < total {
            let i = next;
            next += 1;
            let (params, command) = &planned[i];
            let run_id = l.create(Some(&parent), None).await?;
            match l.start(&run_id, params, command).await {
                Ok(run) => {
                    writeln!(
                        out,
                        "[{}/{total}] {run_id} {} RUNNING",
                        i + 1,
                        describe(params)
                    )
                    .map_err(Error::Output)?;
                    running.push((i, run_id, run));
                }
                Err(e) => {
                    writeln!(
                        out,
                        "[{}/{total}] {run_id} {} FAILED: {e}",
                        i + 1,
                        describe(params)
                    )
                    .map_err(Error::Output)?;
                    let state = RunState {
                        status: RunStatus::Failed,
                        message: Some(e.to_string()),
                        exit_code: None,
                    };
                    results[i] = Some((run_id, state));
                }
            }
        }
        if running.is_empty() {
            break;
        }
        let interrupted = tokio::select! {
            _ = sigint.recv(), if !cancelled => true,
            _ = sigterm.recv(), if !cancelled => true,
            _ = tokio::time::sleep(Duration::from_millis(200)) => false,
        };
        if interrupted {
            cancelled = true;
            writeln!(out, "sweep: cancelling {} running run(s)", running.len())
                .map_err(Error::Output)?;
            for (_, _, run) in &running {
                run.cancel().await.map_err(failed)?;
            }
        }
        let mut still = Vec::new();
        for (i, run_id, run) in running {
            let state = run.status().await.map_err(failed)?;
            if !state.is_terminal() {
                still.push((i, run_id, run));
                continue;
            }
            end_run(l.tracking, &run_id, &state).await?;
            let code = state
                .exit_code
                .map(|c| format!(" (exit code {c})"))
                .unwrap_or_default();
            writeln!(
                out,
                "[{}/{total}] {run_id} {} {}{code}",
                i + 1,
                describe(&planned[i].0),
                state.status.as_str()
            )
            .map_err(Error::Output)?;
            results[i] = Some((run_id, state));
        }
        running = still;
    }
    // The summary table.
    let mut header = vec!["run".to_owned()];
    header.extend(swept.iter().cloned());
    header.push("status".into());
    if let Some(m) = &args.sweep_metric {
        header.push(m.clone());
    }
    let mut rows = vec![header];
    let mut all_finished = true;
    for (i, result) in results.iter().enumerate() {
        let (params, _) = &planned[i];
        let mut row = Vec::new();
        let status = match result {
            Some((run_id, state)) => {
                row.push(run_id.clone());
                state.status
            }
            None => {
                row.push("-".into());
                RunStatus::Killed
            }
        };
        all_finished &= status == RunStatus::Finished;
        for k in &swept {
            let v = params.logged.iter().find(|(p, _)| p == k).map(|(_, v)| v);
            row.push(v.cloned().unwrap_or_default());
        }
        row.push(status.as_str().to_owned());
        if let Some(metric) = &args.sweep_metric {
            let value = match result {
                Some((run_id, _)) => l
                    .tracking
                    .latest_metric(run_id, metric)
                    .await
                    .map_err(failed)?
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                None => "-".into(),
            };
            row.push(value);
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end()).map_err(Error::Output)?;
    }
    let status = if cancelled {
        RunStatus::Killed
    } else if all_finished {
        RunStatus::Finished
    } else {
        RunStatus::Failed
    };
    l.tracking.end_run(&parent, status).await.map_err(failed)?;
    if status == RunStatus::Finished {
        Ok(())
    } else {
        Err(Error::Project(format!(
            "sweep parent run {parent} {}",
            status.as_str()
        )))
    }
}

fn tag(key: &str, value: &str) -> RunTag {
    RunTag {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

/// Follows `run` to its end (printing its output if `print`), cancelling it on Ctrl-C or
/// SIGTERM; writes the terminal status; errs unless it finished.
async fn finish(
    run: &dyn SubmittedRun,
    tracking: &Tracking,
    print: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mut logs = if print {
        Some(
            run.logs(LogOptions {
                offset: 0,
                follow: true,
            })
            .await
            .map_err(failed)?,
        )
    } else {
        None
    };
    let (mut sigint, mut sigterm) = stop_signals()?;
    let mut pause = Duration::from_millis(50);
    let mut cancelled = false;
    let state: RunState = loop {
        let tick = tokio::time::sleep(pause);
        tokio::select! {
            chunk = async { logs.as_mut()?.next().await }, if logs.is_some() => {
                match chunk {
                    Some(Ok(bytes)) => {
                        out.write_all(&bytes).map_err(Error::Output)?;
                        out.flush().map_err(Error::Output)?;
                    }
                    Some(Err(e)) => {
                        tracing::warn!("reading the run's output failed: {e}");
                        logs = None;
                    }
                    None => logs = None,
                }
                continue;
            }
            _ = sigint.recv(), if !cancelled => {
                eprintln!("=== Cancelling run {} ===", run.run_id());
                run.cancel().await.map_err(failed)?;
                cancelled = true;
            }
            _ = sigterm.recv(), if !cancelled => {
                eprintln!("=== Cancelling run {} ===", run.run_id());
                run.cancel().await.map_err(failed)?;
                cancelled = true;
            }
            _ = tick => {}
        }
        let state = run.status().await.map_err(failed)?;
        if state.is_terminal() && logs.is_none() {
            break state;
        }
        pause = (pause * 2).min(Duration::from_secs(2));
        if state.is_terminal() {
            // The output ends right after; drain it before reporting.
            pause = Duration::from_millis(20);
        }
    };
    end_run(tracking, run.run_id(), &state).await?;
    let code = state
        .exit_code
        .map(|c| format!(" (exit code {c})"))
        .unwrap_or_default();
    match state.status {
        RunStatus::Finished => {
            eprintln!("=== Run ({}) succeeded ===", run.run_id());
            Ok(())
        }
        status => Err(Error::Project(format!(
            "run {} {}{code}{}",
            run.run_id(),
            status.as_str(),
            state
                .message
                .filter(|_| state.exit_code.is_none())
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ))),
    }
}

/// The run's exit code, when known.
pub const EXIT_CODE_TAG: &str = "cairn.project.exitCode";

/// Writes the terminal `state`: the exit code tag, then the status and end time.
async fn end_run(tracking: &Tracking, run_id: &str, state: &RunState) -> Result<()> {
    if let Some(code) = state.exit_code {
        tracking
            .log_batch(run_id, vec![], vec![tag(EXIT_CODE_TAG, &code.to_string())])
            .await
            .map_err(failed)?;
    }
    tracking.end_run(run_id, state.status).await.map_err(failed)
}

/// `cairn runs ...`.
pub fn runs(command: &RunsCommand, loaded: &LoadedConfig, out: &mut dyn Write) -> Result<()> {
    let (RunsCommand::Wait(r) | RunsCommand::Logs { run: r, .. } | RunsCommand::Cancel(r)) =
        command;
    let (tracking, _) = r.tracking.connect(loaded)?;
    runtime()?.block_on(async {
        let (_, tags) = tracking.run_tags(&r.run_id).await.map_err(failed)?;
        let Some(handle) = tags.get(RunHandle::TAG) else {
            return Err(Error::Project(format!(
                "run {} has no {} tag: it was not submitted by cairn run",
                r.run_id,
                RunHandle::TAG
            )));
        };
        let handle = RunHandle::from_tag(handle).map_err(failed)?;
        let backend = backend_for(&handle.backend, r.storage_dir.as_deref(), loaded)?;
        let run = backend.attach(handle).await.map_err(failed)?;
        match command {
            RunsCommand::Wait(_) => finish(&*run, &tracking, false, out).await,
            RunsCommand::Logs { follow, .. } => {
                let mut logs = run
                    .logs(LogOptions {
                        offset: 0,
                        follow: *follow,
                    })
                    .await
                    .map_err(failed)?;
                while let Some(chunk) = logs.next().await {
                    out.write_all(&chunk.map_err(failed)?)
                        .map_err(Error::Output)?;
                }
                out.flush().map_err(Error::Output)
            }
            RunsCommand::Cancel(_) => {
                run.cancel().await.map_err(failed)?;
                // The host writes the terminal status once the group is gone.
                let mut pause = Duration::from_millis(20);
                let state = loop {
                    let state = run.status().await.map_err(failed)?;
                    if state.is_terminal() {
                        break state;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                };
                end_run(&tracking, &r.run_id, &state).await?;
                writeln!(out, "{} {}", r.run_id, state.status.as_str()).map_err(Error::Output)
            }
        }
    })
}
