//! `cairn models serve`: a model found by any URI Cairn resolves, loaded by the flavor plugin
//! its `MLmodel` names, served with MLflow's scoring protocol ([`scoring`]).
//!
//! The model URI (`runs:/`, `models:/`, `mlflow-artifacts:/`, `s3://`, `file:`, a path) is
//! resolved as `cairn artifacts download` resolves it ([`crate::artifacts_cli`]): a local
//! directory is used in place, anything else is downloaded to a temporary directory first.
//! The flavor is the first flavor of `MLmodel` (besides `python_function`) that a plugin of
//! this build serves; a model with none is refused with one line naming both lists.

pub mod batch;
pub mod metrics;
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
    /// Accepted for compatibility and ignored: Cairn runs models natively, without Python.
    #[arg(long, value_name = "MANAGER")]
    pub env_manager: Option<String>,
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
    /// Accepted for compatibility and ignored: Cairn serves from one multi-threaded process.
    #[arg(long, short = 'w', value_name = "N", env = "MLFLOW_MODELS_WORKERS")]
    pub workers: Option<String>,
    /// Request timeout in seconds (MLflow's default 60); a slower request answers 504.
    #[arg(long, short = 't', value_name = "S", default_value_t = 60)]
    pub timeout: u64,
    /// Accepted for compatibility and ignored: Cairn runs models natively, without Python.
    #[arg(long, value_name = "MANAGER")]
    pub env_manager: Option<String>,
    /// Accepted for compatibility and ignored: there is no Python environment to build.
    #[arg(long)]
    pub no_conda: bool,
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

impl ServeArgs {
    /// One note per given option that does not apply to Cairn.
    pub fn ignored_options(&self) -> Vec<String> {
        crate::cli::ignored_notes(&[
            (self.workers.is_some(), "--workers", crate::cli::ONE_PROCESS),
            (
                self.env_manager.is_some() || self.no_conda || self.install_mlflow,
                "--env-manager/--no-conda/--install-mlflow",
                "Cairn runs models natively, without a Python environment",
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

/// Resolves the command's model URI, downloads it if it is not local, and loads it with its
/// flavor.
pub async fn load(command: &ModelsCommand, loaded: &LoadedConfig, dir: &Path) -> Result<Served> {
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
    let Some(flavor) = mlmodel.flavors.keys().find(|f| served.contains(f)).cloned() else {
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
    let ctx = assembly.repositories().contexts().for_plugin(&flavor, None);
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
    for note in args.ignored_options() {
        tracing::warn!("{note}");
    }
    runtime.block_on(async {
        let served = load(command, loaded, dir).await?;
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
        // One inference call per core at once, as the flavors' pools run them.
        let slots = std::thread::available_parallelism().map_or(2, usize::from);
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
    let served = load(command, loaded, dir).await?;
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
    let text = serde_json::json!({ "predictions": predictions }).to_string() + "\n";
    match &args.output_path {
        Some(p) => std::fs::write(dir.join(p), text).map_err(Error::Output),
        None => out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(Error::Output),
    }
}
