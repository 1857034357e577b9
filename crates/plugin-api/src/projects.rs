//! The project-backend contract: run an MLflow Project somewhere and watch it.
//!
//! MLflow counterpart: `mlflow.projects.backend.abstract_backend.AbstractBackend` (entry point
//! group `mlflow.project_backend`) and `mlflow.projects.submitted_run.SubmittedRun`, chosen by
//! backend name (`local`, `kubernetes`).

use crate::Result;
use crate::entities::RunStatus;
use async_trait::async_trait;
use futures_core::Stream;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::pin::Pin;

/// Log lines of a submitted run, in order; the stream ends when the run's output ends.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<String>> + Send + 'static>>;

/// What a backend supports.
///
/// Grows without breaking plugins: a field missing from a plugin's answer (a plugin built before
/// the capability existed) reads as `false`, and a plugin sets the fields it knows and leaves
/// the rest to `..Default::default()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectCapabilities {
    /// [`SubmittedRun::logs`] streams output.
    pub logs: bool,
    /// [`SubmittedRun::cancel`] stops the run.
    pub cancel: bool,
}

/// A project run to submit. The host has already fetched the project, resolved the entry point
/// and its parameters (api.md §8.2) and created the tracking run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectRun {
    /// Where the project lives (a local directory or a git URI).
    pub project_uri: String,
    /// Its version (a git commit or branch), if any.
    pub version: Option<String>,
    /// The entry point name.
    pub entry_point: String,
    /// The command to run, with parameters already substituted.
    pub command: String,
    /// The parameters, for backends that pass them on.
    pub parameters: BTreeMap<String, String>,
    /// Backend-specific configuration (`--backend-config`), as JSON.
    pub backend_config: serde_json::Value,
    /// Environment variables for the run, including `MLFLOW_TRACKING_URI`, `MLFLOW_RUN_ID`
    /// and `MLFLOW_EXPERIMENT_ID`.
    pub env: BTreeMap<String, String>,
    /// The tracking run that records it.
    pub run_id: String,
    /// Its experiment.
    pub experiment_id: String,
}

/// Runs projects.
#[async_trait]
pub trait ProjectBackend: Send + Sync + 'static {
    /// What this backend supports.
    fn capabilities(&self) -> ProjectCapabilities;

    /// Submits `run` and returns a handle without waiting for it to finish. Invalid
    /// `backend_config` is `InvalidArgument`; an unreachable cluster `Unavailable`.
    async fn submit(&self, run: ProjectRun) -> Result<Box<dyn SubmittedRun>>;
}

/// A submitted project run.
#[async_trait]
pub trait SubmittedRun: Send + Sync {
    /// The tracking run id.
    fn run_id(&self) -> &str;

    /// Waits until the run ends and returns its final status (`FINISHED`, `FAILED` or `KILLED`).
    async fn wait(&self) -> Result<RunStatus>;

    /// The current status without waiting.
    async fn status(&self) -> Result<RunStatus>;

    /// Stops the run; its status becomes `KILLED`. Cancelling an ended run is a no-op.
    async fn cancel(&self) -> Result<()>;

    /// The run's output, from the start; `Unsupported` without the `logs` capability.
    async fn logs(&self) -> Result<LogStream>;
}
