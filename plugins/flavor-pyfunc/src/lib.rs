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
//! `timeout_secs` (default 60), `worker_memory_limit` (a size such as `"2GiB"`, or bytes;
//! default none: see [`pool`] for how it is enforced).

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
    /// The most memory one worker may use (`"2GiB"`, `"512MiB"`, bytes, `"none"`); default
    /// none.
    pub worker_memory_limit: Option<MemorySize>,
}

/// A memory size as configured: bytes, or text with a unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MemorySize {
    /// A number of bytes.
    Bytes(u64),
    /// `"2GiB"`, `"512MiB"`, `"1.5G"`, `"500MB"`, `"none"`.
    Text(String),
}

/// Parses a memory size: a number followed by an optional unit, case-insensitive: `B`,
/// `K`/`KiB`, `M`/`MiB`, `G`/`GiB`, `T`/`TiB` (powers of 1024; the one-letter forms as
/// `docker run -m` reads them) or `KB`, `MB`, `GB`, `TB` (powers of 1000). `none` (or `0`) is
/// no limit.
pub fn parse_memory_size(text: &str) -> std::result::Result<Option<u64>, String> {
    let t = text.trim().to_ascii_lowercase();
    if t == "none" || t == "unlimited" {
        return Ok(None);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim();
    let scale: f64 = match unit {
        "" | "b" => 1.0,
        "k" | "ki" | "kib" => 1024.0,
        "m" | "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "ti" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => f64::NAN,
    };
    match number.parse::<f64>() {
        Ok(n) if scale.is_finite() && n.is_finite() => {
            let bytes = (n * scale).round();
            Ok((bytes >= 1.0).then_some(bytes as u64))
        }
        _ => Err(format!(
            "the worker memory limit '{text}' is not a size (examples: 2GiB, 512MiB, 1.5G, \
             500MB, 1073741824, none)"
        )),
    }
}

/// A size for people: `512 MiB`, `1.5 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
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

    /// The memory limit of each worker, in bytes (`None`: no limit).
    pub fn memory_limit(&self) -> Result<Option<u64>> {
        match &self.worker_memory_limit {
            None => Ok(None),
            Some(MemorySize::Bytes(0)) => Ok(None),
            Some(MemorySize::Bytes(n)) => Ok(Some(*n)),
            Some(MemorySize::Text(t)) => parse_memory_size(t).map_err(|m| {
                cairn_plugin_api::Error::invalid(format!(
                    "--worker-memory-limit ([settings.python_function] worker_memory_limit): {m}"
                ))
            }),
        }
    }
}

fn build_flavor(ctx: &BuildContext) -> Result<Arc<dyn ModelFlavor>> {
    let settings: Settings = ctx.settings()?;
    settings.memory_limit()?;
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
            memory_limit: self.settings.memory_limit()?,
        };
        // A second past the request timeout: the scoring server's own timer (its 504, which
        // abandons the call and so replaces the worker) must win over the pool's, which only
        // backs up callers without one (`cairn models predict`, merged calls). Equal timers
        // expiring in the same tick let the inner one answer first (a 400).
        let timeout = Duration::from_secs(self.settings.timeout_secs.unwrap_or(60).max(1))
            + Duration::from_secs(1);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_read_as_operators_write_them() {
        let gib = 1u64 << 30;
        assert_eq!(parse_memory_size("2GiB"), Ok(Some(2 * gib)));
        assert_eq!(parse_memory_size("2g"), Ok(Some(2 * gib)));
        assert_eq!(parse_memory_size(" 512 MiB "), Ok(Some(512 << 20)));
        assert_eq!(parse_memory_size("1.5Gi"), Ok(Some(3 * gib / 2)));
        assert_eq!(parse_memory_size("500MB"), Ok(Some(500_000_000)));
        assert_eq!(parse_memory_size("1073741824"), Ok(Some(gib)));
        assert_eq!(parse_memory_size("none"), Ok(None));
        assert_eq!(parse_memory_size("0"), Ok(None));
        for bad in ["lots", "", "2 GiBs", "-1G", "1..2G"] {
            let err = parse_memory_size(bad).unwrap_err();
            assert!(err.contains("is not a size"), "{bad}: {err}");
        }
        assert_eq!(human_size(700 << 20), "700 MiB");
        assert_eq!(human_size(3 * gib / 2), "1.5 GiB");
        assert_eq!(human_size(12), "12 B");
    }

    #[test]
    fn a_configured_limit_names_the_flag_and_the_key() {
        let s = Settings {
            worker_memory_limit: Some(MemorySize::Text("lots".into())),
            ..Settings::default()
        };
        let err = s.memory_limit().unwrap_err().to_string();
        assert!(err.contains("--worker-memory-limit") && err.contains("worker_memory_limit"));
        let s = Settings {
            worker_memory_limit: Some(MemorySize::Bytes(1 << 20)),
            ..Settings::default()
        };
        assert_eq!(s.memory_limit().unwrap(), Some(1 << 20));
    }
}
