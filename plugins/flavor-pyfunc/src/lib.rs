//! Cairn's `python_function` model flavor: any MLflow pyfunc model (scikit-learn, XGBoost,
//! PyTorch, a custom `mlflow.pyfunc.PythonModel`, ...) served by a pool of Python worker
//! processes, with Rust in front.
//!
//! * Cairn parses HTTP, checks the signature, batches and schedules; each worker runs
//!   `mlflow.pyfunc.load_model(<model dir>)` once and then `predict` per batch
//!   ([`pool`]). The worker script (`worker.py`) is compiled into the binary.
//! * Batches cross a Unix socket as Arrow IPC ([`protocol`], versioned), never as per-row
//!   JSON; `params` cross as JSON with the frame's header.
//! * Workers are supervised: one that dies, overruns the timeout or is abandoned mid-call is
//!   killed and replaced, its call answering an error.
//! * The model's exceptions come back as MLflow's scoring server words them, with its error
//!   code ([`MLFLOW_ERROR_CODE`](cairn_plugin_api::flavor::MLFLOW_ERROR_CODE) in the error's
//!   context).
//!
//! Settings (`[settings.python_function]`, which `cairn models serve` fills from its flags):
//! `python` (the argv that runs the interpreter, default `$PYTHON` else `python3`; the
//! environment managers put their prefix in front), `workers` (default: the number of cores),
//! `timeout_secs` (default 60).

pub mod pool;
pub mod protocol;

use async_trait::async_trait;
use cairn_plugin_api::flavor::{MlModel, ModelCapabilities, ModelData, Params, Signature};
use cairn_plugin_api::{Build, BuildContext, LoadedModel, ModelFlavor, PluginFactory, Result};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The flavor name in `MLmodel`.
pub const FLAVOR: &str = "python_function";

cairn_plugin_api::inventory::submit! {
    PluginFactory {
        name: FLAVOR,
        plugin: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        build: Build::ModelFlavor(build_flavor),
    }
}

/// `[settings.python_function]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The argv that runs Python; default `$PYTHON`, else `python3`.
    pub python: Option<Vec<String>>,
    /// How many worker processes; default the number of cores.
    pub workers: Option<usize>,
    /// A call slower than this kills its worker; default 60 seconds.
    pub timeout_secs: Option<u64>,
}

impl Settings {
    /// The interpreter argv.
    pub fn python(&self) -> Vec<String> {
        self.python.clone().unwrap_or_else(|| {
            vec![std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())]
        })
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
            .max(1)
    }
}

fn build_flavor(ctx: &BuildContext) -> Result<Arc<dyn ModelFlavor>> {
    let settings: Settings = ctx.settings()?;
    Ok(Arc::new(PyFuncFlavor { settings }))
}

/// The `python_function` flavor.
#[derive(Debug, Default)]
pub struct PyFuncFlavor {
    /// Its settings.
    pub settings: Settings,
}

#[async_trait]
impl ModelFlavor for PyFuncFlavor {
    async fn load(&self, model_dir: &Path, model: &MlModel) -> Result<Arc<dyn LoadedModel>> {
        let spawn = pool::Spawn {
            python: self.settings.python(),
            model_dir: std::path::absolute(model_dir)
                .map_err(|e| cairn_plugin_api::Error::invalid(e.to_string()))?,
        };
        let timeout = Duration::from_secs(self.settings.timeout_secs.unwrap_or(60).max(1));
        let pool = pool::Pool::start(spawn, self.settings.workers(), timeout).await?;
        Ok(Arc::new(PyFuncModel {
            pool,
            signature: model.signature.clone().unwrap_or_default(),
        }))
    }
}

/// A model loaded in every worker of a pool.
pub struct PyFuncModel {
    pool: pool::Pool,
    signature: Signature,
}

#[async_trait]
impl LoadedModel for PyFuncModel {
    fn signature(&self) -> Signature {
        self.signature.clone()
    }

    fn capabilities(&self) -> ModelCapabilities {
        let mut c = ModelCapabilities::new(true, true, true);
        c.python_function = true;
        c
    }

    /// `params` go to the model as they are: MLflow's own `predict` checks them against the
    /// signature in the worker, with MLflow's messages.
    async fn predict(&self, input: ModelData, params: Params) -> Result<ModelData> {
        self.pool.predict(&input, &params).await
    }
}
