//! `cairn models serve`: a model found by any URI Cairn resolves, loaded by the flavor plugin
//! its `MLmodel` names, served with MLflow's scoring protocol ([`scoring`]).
//!
//! The model URI (`runs:/`, `models:/`, `mlflow-artifacts:/`, `s3://`, `file:`, a path) is
//! resolved as `cairn artifacts download` resolves it ([`crate::artifacts_cli`]): a local
//! directory is used in place, anything else is downloaded to a temporary directory first.
//! The flavor is the first flavor of `MLmodel` besides `python_function` that a plugin of this
//! build serves natively, else `python_function` (a pool of Python workers, plugin
//! `cairn-flavor-pyfunc`) when the model has it; a model with neither is refused with one line
//! naming both lists.
//!
//! A `python_function` model runs in the Python environment `--env-manager` names
//! ([`python_command`]): `local` (the default: `--python`, else `$PYTHON`, else `python3`, which
//! must have mlflow and the model's libraries), `virtualenv` / `uv` (built from the model's
//! `python_env.yaml` and `requirements.txt`) or `conda` (from its `conda.yaml`), with the same
//! environment code and cache as `cairn run` ([`crate::projects::environment`]).

pub mod batch;
pub mod metrics;
pub mod pyjson;
pub mod request;
pub mod scoring;

use crate::artifacts_cli::{Target, download, resolver_for};
use crate::assembly::Assembly;
use crate::config::{LoadedConfig, Overrides};
use crate::error::{Error, Result};
use cairn_plugin_api::flavor::MlModel;
use cairn_plugin_api::{LoadedModel, PluginKind};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `cairn models ...`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Serve a model with MLflow's scoring protocol (accepts `mlflow models serve`'s options).
    #[command(disable_help_flag = true)]
    Serve(ServeArgs),
    /// Predict on a file with a model, without a server (as `mlflow models predict`).
    Predict(PredictArgs),
}

/// `cairn models predict`: `mlflow models predict`'s options.
#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// The model URI: runs:/, models:/, mlflow-artifacts:/, s3://, file:, or a path.
    #[arg(long, short = 'm', value_name = "URI")]
    pub model_uri: String,
    /// The input file (a scoring request body); default: standard input.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub input_path: Option<PathBuf>,
    /// Where to write `{"predictions": ...}`; default: standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output_path: Option<PathBuf>,
    /// The input's format.
    #[arg(long, short = 't', value_name = "TYPE", default_value = "json", value_parser = ["json", "csv"])]
    pub content_type: String,
    /// The Python environment of a `python_function` model: local (default), virtualenv, uv
    /// or conda; ignored for models Cairn runs natively.
    #[arg(long, value_name = "MANAGER", value_parser = ENV_MANAGERS)]
    pub env_manager: Option<String>,
    /// The Python interpreter of `--env-manager local`; default `$PYTHON`, else `python3`.
    #[arg(long, value_name = "PATH")]
    pub python: Option<String>,
    /// Accepted for compatibility and ignored.
    #[arg(long)]
    pub install_mlflow: bool,
    /// Tracking server or store used to resolve runs:/ and models:/ URIs; default
    /// MLFLOW_TRACKING_URI, else the configuration's store.
    #[arg(long, value_name = "URI", env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: Option<String>,
}

impl ModelsCommand {
    fn target(&self) -> Target {
        let (uri, tracking_uri) = match self {
            ModelsCommand::Serve(a) => (&a.model_uri, &a.tracking_uri),
            ModelsCommand::Predict(a) => (&a.model_uri, &a.tracking_uri),
        };
        Target {
            uri: Some(uri.clone()),
            run_id: None,
            artifact_path: None,
            tracking_uri: tracking_uri.clone(),
        }
    }

    /// The configuration layer: a tracking URI naming a store is the tracking store.
    pub fn overrides(&self) -> Overrides {
        crate::artifacts_cli::ArtifactsCommand::List(self.target()).overrides()
    }
}

/// `cairn models serve`: `mlflow models serve`'s options. `-h` is `--host`; help is `--help`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The model URI: runs:/, models:/, mlflow-artifacts:/, s3://, file:, or a path.
    #[arg(long, short = 'm', value_name = "URI")]
    pub model_uri: String,
    /// Address to bind; default 127.0.0.1.
    #[arg(long, short = 'h', value_name = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind; default 5000 (0 picks a free port).
    #[arg(long, short = 'p', value_name = "PORT", default_value_t = 5000)]
    pub port: u16,
    /// Python worker processes of a `python_function` model (default: the number of cores);
    /// ignored for models Cairn runs natively, in one multi-threaded process.
    #[arg(long, short = 'w', value_name = "N", env = "MLFLOW_MODELS_WORKERS")]
    pub workers: Option<String>,
    /// Request timeout in seconds (MLflow's default 60); a slower request answers 504.
    #[arg(long, short = 't', value_name = "S", default_value_t = 60)]
    pub timeout: u64,
    /// The Python environment of a `python_function` model: local (default), virtualenv, uv
    /// or conda; ignored for models Cairn runs natively.
    #[arg(long, value_name = "MANAGER", value_parser = ENV_MANAGERS)]
    pub env_manager: Option<String>,
    /// The Python interpreter of `--env-manager local`; default `$PYTHON`, else `python3`.
    #[arg(long, value_name = "PATH")]
    pub python: Option<String>,
    /// `--env-manager local`, as MLflow's deprecated flag.
    #[arg(long)]
    pub no_conda: bool,
    /// The most memory each Python worker of a `python_function` model may use (`2GiB`,
    /// `512MiB`, `none`; default none): a worker going past it is stopped and replaced and
    /// its request answers an error.
    #[arg(long, value_name = "SIZE")]
    pub worker_memory_limit: Option<String>,
    /// Accepted for compatibility and ignored.
    #[arg(long)]
    pub enable_mlserver: bool,
    /// Accepted for compatibility and ignored: there is no environment to install into.
    #[arg(long)]
    pub install_mlflow: bool,
    /// Tracking server or store used to resolve runs:/ and models:/ URIs; default
    /// MLFLOW_TRACKING_URI, else the configuration's store.
    #[arg(long, value_name = "URI", env = "MLFLOW_TRACKING_URI")]
    pub tracking_uri: Option<String>,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

/// `--env-manager`'s values.
const ENV_MANAGERS: [&str; 4] = ["local", "virtualenv", "uv", "conda"];

impl ServeArgs {
    /// One note per given option that does not apply to Cairn (`python`: whether the model is
    /// served by Python workers, which take `--workers` and `--env-manager`).
    pub fn ignored_options(&self, python: bool) -> Vec<String> {
        crate::cli::ignored_notes(&[
            (
                self.workers.is_some() && !python,
                "--workers",
                crate::cli::ONE_PROCESS,
            ),
            (
                (self.env_manager.is_some() || self.no_conda) && !python,
                "--env-manager/--no-conda",
                "Cairn runs this model natively, without a Python environment",
            ),
            (
                self.worker_memory_limit.is_some() && !python,
                "--worker-memory-limit",
                crate::cli::ONE_PROCESS,
            ),
            (
                self.install_mlflow,
                "--install-mlflow",
                "the model's environment is built from its own requirements",
            ),
            (
                self.enable_mlserver,
                "--enable-mlserver",
                "Cairn has its own scoring server",
            ),
        ])
    }
}

/// A loaded model with where it came from.
pub struct Served {
    /// The model.
    pub model: Arc<dyn LoadedModel>,
    /// Its `MLmodel`.
    pub mlmodel: MlModel,
    /// The flavor that loaded it.
    pub flavor: String,
    /// A download directory removed when this is dropped.
    _download: Option<TempDir>,
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn model_error(uri: &str, message: impl Into<String>) -> Error {
    Error::Model {
        uri: uri.to_owned(),
        message: message.into(),
    }
}

/// How a `python_function` model's workers run: from `cairn models serve|predict`'s flags.
#[derive(Debug, Clone, Default)]
pub struct PythonOptions {
    /// `--env-manager` (`None`: local).
    pub env_manager: Option<String>,
    /// `--python`.
    pub python: Option<String>,
    /// `--workers`.
    pub workers: Option<usize>,
    /// `--timeout`, in seconds.
    pub timeout_secs: Option<u64>,
    /// `--worker-memory-limit`, as given.
    pub worker_memory_limit: Option<String>,
}

impl ModelsCommand {
    /// The `python_function` options of the command.
    pub fn python_options(&self) -> Result<PythonOptions> {
        Ok(match self {
            ModelsCommand::Serve(a) => PythonOptions {
                env_manager: if a.no_conda && a.env_manager.is_none() {
                    Some("local".into())
                } else {
                    a.env_manager.clone()
                },
                python: a.python.clone(),
                workers: match &a.workers {
                    None => None,
                    Some(w) => Some(
                        w.trim()
                            .parse::<usize>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| {
                                model_error(
                                    &a.model_uri,
                                    format!("--workers must be a positive number, got '{w}'"),
                                )
                            })?,
                    ),
                },
                timeout_secs: Some(a.timeout),
                worker_memory_limit: a.worker_memory_limit.clone(),
            },
            ModelsCommand::Predict(a) => PythonOptions {
                env_manager: a.env_manager.clone(),
                python: a.python.clone(),
                workers: Some(1),
                timeout_secs: None,
                worker_memory_limit: None,
            },
        })
    }
}

/// The argv that runs Python for the model in `model_dir` under `--env-manager`: `local` is the
/// interpreter itself (`--python`, the settings' `python`, `$PYTHON`, `python3`); `virtualenv`
/// and `uv` build the model's `python_env.yaml` (its `-r requirements.txt` read from the model
/// directory), `conda` its `conda.yaml`, as `cairn run` builds a project's, in the same cache.
pub fn python_command(
    options: &PythonOptions,
    model_dir: &Path,
    mlmodel: &MlModel,
    configured: Option<Vec<String>>,
) -> Result<Vec<String>> {
    use crate::projects::environment;
    use cairn_plugin_api::projects::PythonEnvManager;
    let uri = model_dir.display().to_string();
    let env_file = |key: &str, default: &str| -> PathBuf {
        let name = mlmodel
            .flavors
            .get("python_function")
            .and_then(|f| f.get("env"))
            .and_then(|e| e.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or(default)
            .to_owned();
        model_dir.join(name)
    };
    let storage = crate::projects::local::default_storage_dir();
    let manager = match options.env_manager.as_deref().unwrap_or("local") {
        "local" => {
            return Ok(match (&options.python, configured) {
                (Some(p), _) => vec![p.clone()],
                (None, Some(argv)) if !argv.is_empty() => argv,
                _ => vec![std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())],
            });
        }
        "conda" => {
            let file = env_file("conda", "conda.yaml");
            let content = std::fs::read_to_string(&file).map_err(|e| {
                model_error(
                    &uri,
                    format!("--env-manager conda needs {}: {e}", file.display()),
                )
            })?;
            let mut argv = environment::conda_env(&storage, &content)
                .map_err(|e| model_error(&uri, e.message))?;
            argv.push("python".into());
            return Ok(argv);
        }
        "uv" => PythonEnvManager::Uv,
        _ => PythonEnvManager::Virtualenv,
    };
    let file = env_file("virtualenv", "python_env.yaml");
    let mut spec = crate::projects::spec::read_python_env(&file).map_err(|e| {
        model_error(
            &uri,
            format!("--env-manager needs the model's python_env.yaml: {e}"),
        )
    })?;
    // `-r requirements.txt` is relative to the model directory: read it here, since the
    // environment builder installs from a copy elsewhere.
    let mut deps = Vec::new();
    for dep in std::mem::take(&mut spec.dependencies) {
        match dep.strip_prefix("-r").map(str::trim) {
            Some(name) => {
                let path = model_dir.join(name);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    model_error(&uri, format!("cannot read {}: {e}", path.display()))
                })?;
                deps.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_owned),
                );
            }
            None => deps.push(dep),
        }
    }
    spec.dependencies = deps;
    let mut argv = environment::python_env(&storage, &spec, manager)
        .map_err(|e| model_error(&uri, e.message))?;
    argv.push("python".into());
    Ok(argv)
}

/// Resolves the command's model URI, downloads it if it is not local, and loads it with its
/// flavor (a `python_function` model in the environment `python` describes).
pub async fn load(
    command: &ModelsCommand,
    loaded: &LoadedConfig,
    dir: &Path,
    python: &PythonOptions,
) -> Result<Served> {
    let target = command.target();
    let uri = target.uri.as_deref().unwrap_or_default();
    let local = uri
        .strip_prefix("file://")
        .or_else(|| uri.strip_prefix("file:"))
        .unwrap_or(uri);
    let local = dir.join(local);
    let (model_dir, download_dir) = if !uri.contains(":/") || uri.starts_with("file:") {
        if !local.is_dir() {
            return Err(model_error(
                uri,
                format!("{} is not a directory", local.display()),
            ));
        }
        (local, None)
    } else {
        let resolver = resolver_for(&target, uri, loaded)?;
        let tmp =
            std::env::temp_dir().join(format!("cairn-model-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&tmp).map_err(|e| model_error(uri, e.to_string()))?;
        let guard = TempDir(tmp.clone());
        let path = download(&resolver, uri, &tmp).await?;
        (path, Some(guard))
    };
    let mlmodel = MlModel::read_dir(&model_dir).map_err(|e| model_error(uri, e.message))?;
    let assembly = Assembly::new(loaded)?;
    let served = assembly.registry().names(PluginKind::ModelFlavor);
    // Native flavors first; python_function (Python workers) only when none serves it.
    let native = mlmodel
        .flavors
        .keys()
        .find(|f| f.as_str() != PYTHON_FUNCTION && served.contains(f));
    let pyfunc = (mlmodel.flavors.contains_key(PYTHON_FUNCTION)
        && served.iter().any(|s| s == PYTHON_FUNCTION))
    .then(|| PYTHON_FUNCTION.to_owned());
    let Some(flavor) = native.cloned().or(pyfunc) else {
        return Err(model_error(
            uri,
            format!(
                "its flavors are [{}]; this build serves the flavors [{}]",
                mlmodel
                    .flavors
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                served.join(", ")
            ),
        ));
    };
    let mut ctx = assembly.repositories().contexts().for_plugin(&flavor, None);
    if flavor == PYTHON_FUNCTION {
        let configured = ctx
            .settings
            .get("python")
            .and_then(|p| serde_json::from_value::<Vec<String>>(p.clone()).ok());
        let argv = python_command(python, &model_dir, &mlmodel, configured)?;
        let settings = ctx
            .settings
            .as_object_mut()
            .ok_or_else(|| model_error(uri, "[settings.python_function] must be a table"))?;
        settings.insert("python".into(), argv.into());
        if let Some(n) = python.workers {
            settings.insert("workers".into(), n.into());
        }
        if let Some(t) = python.timeout_secs {
            settings.insert("timeout_secs".into(), t.into());
        }
        if let Some(limit) = &python.worker_memory_limit {
            settings.insert("worker_memory_limit".into(), limit.clone().into());
        }
    }
    let plugin = assembly.registry().model_flavor(&flavor, ctx)?;
    let model = plugin
        .load(&model_dir, &mlmodel)
        .await
        .map_err(|e| model_error(uri, e.message))?;
    Ok(Served {
        model,
        mlmodel,
        flavor,
        _download: download_dir,
    })
}

/// The flavor served by Python workers.
pub const PYTHON_FUNCTION: &str = "python_function";

/// Runs `command` with the configuration `loaded`, resolving relative paths against `dir`.
pub fn run(
    command: &ModelsCommand,
    loaded: &LoadedConfig,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    let runtime = crate::cli::runtime()?;
    let args = match command {
        ModelsCommand::Serve(args) => args,
        ModelsCommand::Predict(args) => {
            return runtime.block_on(predict(command, args, loaded, dir, out));
        }
    };
    let python = command.python_options()?;
    runtime.block_on(async {
        let served = load(command, loaded, dir, &python).await?;
        let is_python = served.flavor == PYTHON_FUNCTION;
        for note in args.ignored_options(is_python) {
            tracing::warn!("{note}");
        }
        tracing::info!(flavor = %served.flavor, uri = %args.model_uri, "model loaded");
        let host = args.host.trim_start_matches('[').trim_end_matches(']');
        let listener = tokio::net::TcpListener::bind((host, args.port))
            .await
            .map_err(|e| Error::Bind {
                address: format!("{}:{}", args.host, args.port),
                source: e,
            })?;
        let address = listener.local_addr().map_err(Error::Output)?;
        let metrics = Arc::new(metrics::Metrics::default());
        // One inference call per core at once, as the flavors' pools run them; one per worker
        // for Python workers.
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let slots = match python.workers {
            Some(n) if is_python => n,
            _ => cores,
        };
        let batcher = batch::Batcher::new(served.model.clone(), metrics.clone(), slots);
        let app = scoring::router(
            Arc::new(batcher),
            metrics,
            loaded.config().server.max_body_bytes,
            std::time::Duration::from_secs(args.timeout),
        );
        writeln!(out, "Cairn is serving the model on http://{address}")
            .and_then(|()| out.flush())
            .map_err(Error::Output)?;
        crate::server::serve(listener, app, crate::server::shutdown_signal())
            .await
            .map_err(Error::Serve)
    })
}

/// `cairn models predict`: one scoring request from a file (or stdin), no server.
async fn predict(
    command: &ModelsCommand,
    args: &PredictArgs,
    loaded: &LoadedConfig,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    let served = load(command, loaded, dir, &command.python_options()?).await?;
    let body = match &args.input_path {
        Some(p) => std::fs::read(dir.join(p)).map_err(|e| {
            model_error(&args.model_uri, format!("cannot read {}: {e}", p.display()))
        })?,
        None => {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).map_err(Error::Output)?;
            b
        }
    };
    let batcher = batch::Batcher::direct(served.model.clone(), Default::default());
    let predictions = scoring::score(&batcher, &args.content_type, &body)
        .await
        .map_err(|f| Error::Model {
            uri: args.model_uri.clone(),
            message: format!("the prediction failed: {f}"),
        })?;
    let mut text = predictions.into_body();
    text.push(b'\n');
    match &args.output_path {
        Some(p) => std::fs::write(dir.join(p), text).map_err(Error::Output),
        None => out
            .write_all(&text)
            .and_then(|()| out.flush())
            .map_err(Error::Output),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(dir: &Path) -> MlModel {
        let text = "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n    env:\n      \
                    conda: conda.yaml\n      virtualenv: python_env.yaml\n";
        std::fs::write(dir.join("MLmodel"), text).unwrap();
        MlModel::read_dir(dir).unwrap()
    }

    #[test]
    fn local_python_is_the_flag_then_the_settings_then_python() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(dir.path());
        let local = |python: Option<&str>, configured: Option<Vec<String>>| {
            let options = PythonOptions {
                python: python.map(str::to_owned),
                ..PythonOptions::default()
            };
            python_command(&options, dir.path(), &m, configured).unwrap()
        };
        assert_eq!(
            local(Some("/x/python"), Some(vec!["y".into()])),
            ["/x/python"]
        );
        assert_eq!(
            local(None, Some(vec!["y".into(), "-E".into()])),
            ["y", "-E"]
        );
        let default = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        assert_eq!(local(None, None), [default]);
    }

    #[test]
    fn virtualenv_builds_the_models_python_env_with_its_requirements_inlined() {
        let dir = tempfile::tempdir().unwrap();
        let m = model(dir.path());
        let options = PythonOptions {
            env_manager: Some("virtualenv".into()),
            ..PythonOptions::default()
        };
        // No python_env.yaml: the error names the file.
        let err = python_command(&options, dir.path(), &m, None).unwrap_err();
        assert!(err.to_string().contains("python_env.yaml"), "{err}");
        std::fs::write(
            dir.path().join("python_env.yaml"),
            "python: 3.11.7\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("requirements.txt"),
            "# comment\nmlflow==3.18.0\n\nscikit-learn==1.9.1\n",
        )
        .unwrap();
        let argv = python_command(&options, dir.path(), &m, None).unwrap();
        // The environment builder's argv (as `cairn run` uses it), then `python`.
        assert_eq!(argv[..2], ["sh", "-c"]);
        assert_eq!(argv.last().unwrap(), "python");
        assert_eq!(argv[5], "virtualenv");
        assert_eq!(argv[6], "3.11.7");
        let reqs = std::fs::read_to_string(&argv[8]).unwrap();
        assert_eq!(reqs, "mlflow==3.18.0\nscikit-learn==1.9.1\n");
        // conda without conda.yaml names the file.
        let conda = PythonOptions {
            env_manager: Some("conda".into()),
            ..PythonOptions::default()
        };
        let err = python_command(&conda, dir.path(), &m, None).unwrap_err();
        assert!(err.to_string().contains("conda.yaml"), "{err}");
    }
}
