//! MLflow's tracking entities as plain serde types with MLflow's field names (api.md §1.1, §1.4).
//!
//! Their JSON form is MLflow's: snake_case names (lowerCamelCase accepted on input), int64 as
//! numbers, enums by name, NaN/±Inf as strings, absent optional fields omitted. The server
//! writes these types straight to the wire; a dynamic plugin receives them as the same JSON.

use crate::wire::{f64_mlflow, i64_lenient, mlflow_enum, opt_i64_lenient};
use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

mlflow_enum! {
    /// Which lifecycle stages a search returns.
    #[derive(Default)]
    pub enum ViewType {
        /// Active entities only (the default).
        #[default]
        ActiveOnly = 1 => "ACTIVE_ONLY",
        /// Deleted entities only.
        DeletedOnly = 2 => "DELETED_ONLY",
        /// Both.
        All = 3 => "ALL",
    }
}

impl ViewType {
    /// Whether an entity in `stage` is included by this view.
    pub fn includes(self, stage: LifecycleStage) -> bool {
        match self {
            ViewType::ActiveOnly => stage == LifecycleStage::Active,
            ViewType::DeletedOnly => stage == LifecycleStage::Deleted,
            ViewType::All => true,
        }
    }
}

mlflow_enum! {
    /// A run's status.
    pub enum RunStatus {
        /// The run is in progress (the status of a new run).
        Running = 1 => "RUNNING",
        /// The run is scheduled but not started.
        Scheduled = 2 => "SCHEDULED",
        /// The run completed.
        Finished = 3 => "FINISHED",
        /// The run failed.
        Failed = 4 => "FAILED",
        /// The run was killed.
        Killed = 5 => "KILLED",
    }
}

/// Whether an experiment, run or logged model is active or soft-deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleStage {
    /// Visible and writable.
    #[default]
    Active,
    /// Soft-deleted: hidden from default searches, restorable.
    Deleted,
}

impl LifecycleStage {
    /// MLflow's name: `active` or `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleStage::Active => "active",
            LifecycleStage::Deleted => "deleted",
        }
    }
}

/// A key/value tag on an experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentTag {
    /// Tag key.
    pub key: String,
    /// Tag value (may be empty).
    #[serde(default)]
    pub value: String,
}

/// An experiment: a named group of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Store-assigned id; the SQL stores use decimal integers, `"0"` is `Default`.
    pub experiment_id: String,
    /// Unique name among experiments.
    pub name: String,
    /// Root URI under which this experiment's runs store artifacts.
    pub artifact_location: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: LifecycleStage,
    /// Last change, ms since the epoch.
    #[serde(
        default,
        with = "opt_i64_lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_update_time: Option<i64>,
    /// Creation, ms since the epoch.
    #[serde(
        default,
        with = "opt_i64_lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub creation_time: Option<i64>,
    /// Tags, ordered by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<ExperimentTag>,
}

/// A run's identity and lifecycle facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// 32 lowercase hex characters.
    pub run_id: String,
    /// Display name, mirrored in tag `mlflow.runName`.
    #[serde(default)]
    pub run_name: String,
    /// The experiment that owns the run.
    pub experiment_id: String,
    /// The user recorded at creation, verbatim.
    #[serde(default)]
    pub user_id: String,
    /// Current status.
    pub status: RunStatus,
    /// Start, ms since the epoch.
    #[serde(with = "i64_lenient")]
    pub start_time: i64,
    /// End, ms since the epoch, once set.
    #[serde(
        default,
        with = "opt_i64_lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_time: Option<i64>,
    /// `<experiment artifact_location>/<run_id>/artifacts`.
    pub artifact_uri: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: LifecycleStage,
}

/// One metric value. In [`RunData::metrics`] it is the latest value of its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metric {
    /// Metric name.
    pub key: String,
    /// The value; NaN and ±Inf are allowed.
    #[serde(with = "f64_mlflow")]
    pub value: f64,
    /// When it was measured, ms since the epoch.
    #[serde(with = "i64_lenient")]
    pub timestamp: i64,
    /// Training step (default 0).
    #[serde(default, with = "i64_lenient")]
    pub step: i64,
    /// Dataset the value was computed on, if any.
    #[serde(
        default,
        alias = "datasetName",
        skip_serializing_if = "Option::is_none"
    )]
    pub dataset_name: Option<String>,
    /// Digest of that dataset.
    #[serde(
        default,
        alias = "datasetDigest",
        skip_serializing_if = "Option::is_none"
    )]
    pub dataset_digest: Option<String>,
    /// LoggedModel the value belongs to, if any.
    #[serde(default, alias = "modelId", skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// The run that logged it (filled on LoggedModel metrics).
    #[serde(default, alias = "runId", skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl Metric {
    /// A plain metric value with no dataset or model link.
    pub fn new(key: impl Into<String>, value: f64, timestamp: i64, step: i64) -> Self {
        Metric {
            key: key.into(),
            value,
            timestamp,
            step,
            dataset_name: None,
            dataset_digest: None,
            model_id: None,
            run_id: None,
        }
    }
}

/// Equality treats NaN as equal to NaN, so histories compare as logged.
impl PartialEq for Metric {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
            && (self.value == o.value || (self.value.is_nan() && o.value.is_nan()))
            && self.timestamp == o.timestamp
            && self.step == o.step
            && self.dataset_name == o.dataset_name
            && self.dataset_digest == o.dataset_digest
            && self.model_id == o.model_id
            && self.run_id == o.run_id
    }
}

/// A run parameter: logged once, immutable afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// Parameter name.
    pub key: String,
    /// Parameter value (a missing value means `""`).
    #[serde(default)]
    pub value: String,
}

/// A run tag: mutable key/value metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    #[serde(default)]
    pub value: String,
}

/// Convenience constructors shared by the key/value entities.
macro_rules! kv_new {
    ($($t:ident),*) => {$(
        impl $t {
            /// A `key`/`value` pair.
            pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
                $t { key: key.into(), value: value.into() }
            }
        }
    )*};
}
kv_new!(
    ExperimentTag,
    Param,
    RunTag,
    InputTag,
    LoggedModelTag,
    LoggedModelParameter
);

/// What a run logged: latest metrics, params and tags, each ordered by key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunData {
    /// The latest value of each metric key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// Every parameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// Every tag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<RunTag>,
}

/// A tag on a dataset input, e.g. `mlflow.data.context = training`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTag {
    /// Tag key (at most 255 characters).
    pub key: String,
    /// Tag value (at most 500 characters).
    pub value: String,
}

/// A dataset, identified by `(name, digest)` within an experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// Dataset name.
    pub name: String,
    /// Content digest (at most 36 characters).
    pub digest: String,
    /// Kind of source, e.g. `local`, `s3`, `code`.
    #[serde(alias = "sourceType")]
    pub source_type: String,
    /// The source as a JSON string.
    pub source: String,
    /// The schema as a JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The profile as a JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// A dataset used by a run, with tags on the use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInput {
    /// Tags on this use, e.g. the context.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<InputTag>,
    /// The dataset.
    pub dataset: Dataset,
}

/// A LoggedModel used as a run input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInput {
    /// The LoggedModel's id.
    #[serde(alias = "modelId")]
    pub model_id: String,
}

/// A LoggedModel produced by a run at a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOutput {
    /// The LoggedModel's id.
    #[serde(alias = "modelId")]
    pub model_id: String,
    /// The step at which it was produced.
    #[serde(default, with = "i64_lenient")]
    pub step: i64,
}

/// A run's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunInputs {
    /// Datasets used, deduplicated by `(name, digest)`, in first-logged order.
    #[serde(
        default,
        alias = "datasetInputs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dataset_inputs: Vec<DatasetInput>,
    /// LoggedModels used.
    #[serde(default, alias = "modelInputs", skip_serializing_if = "Vec::is_empty")]
    pub model_inputs: Vec<ModelInput>,
}

/// A run's outputs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunOutputs {
    /// LoggedModels produced.
    #[serde(default, alias = "modelOutputs", skip_serializing_if = "Vec::is_empty")]
    pub model_outputs: Vec<ModelOutput>,
}

/// A run with everything it logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Identity and lifecycle.
    pub info: RunInfo,
    /// Latest metrics, params, tags.
    #[serde(default)]
    pub data: RunData,
    /// Dataset and model inputs.
    #[serde(default)]
    pub inputs: RunInputs,
    /// Model outputs.
    #[serde(default)]
    pub outputs: RunOutputs,
}

impl Run {
    /// The latest value of metric `key`, if logged.
    pub fn metric(&self, key: &str) -> Option<&Metric> {
        self.data.metrics.iter().find(|m| m.key == key)
    }
    /// The value of param `key`, if logged.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.data
            .params
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }
    /// The value of tag `key`, if set.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.data
            .tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

/// An entry of an artifact listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Path relative to the listed root, `/`-separated.
    pub path: String,
    /// Whether it is a directory.
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_dir: bool,
    /// Size in bytes (files only).
    #[serde(
        default,
        with = "opt_i64_lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_size: Option<i64>,
}

/// A metric value with the run it belongs to (bulk history endpoints).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricWithRunId {
    /// Metric name.
    pub key: String,
    /// The value.
    #[serde(with = "f64_mlflow")]
    pub value: f64,
    /// ms since the epoch.
    #[serde(with = "i64_lenient")]
    pub timestamp: i64,
    /// Step.
    #[serde(default, with = "i64_lenient")]
    pub step: i64,
    /// The run.
    pub run_id: String,
}

/// One dataset used in an experiment, with the context it was used in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// The experiment.
    pub experiment_id: String,
    /// Dataset name.
    pub name: String,
    /// Dataset digest.
    pub digest: String,
    /// Value of the input tag `mlflow.data.context`, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

mlflow_enum! {
    /// A LoggedModel's upload status.
    pub enum LoggedModelStatus {
        /// Not set.
        Unspecified = 0 => "LOGGED_MODEL_STATUS_UNSPECIFIED",
        /// Created, artifacts not yet uploaded (the status of a new model).
        Pending = 1 => "LOGGED_MODEL_PENDING",
        /// Artifacts uploaded; the model can be loaded.
        Ready = 2 => "LOGGED_MODEL_READY",
        /// The upload failed.
        UploadFailed = 3 => "LOGGED_MODEL_UPLOAD_FAILED",
    }
}

/// A tag on a LoggedModel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedModelTag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    #[serde(default)]
    pub value: String,
}

/// A parameter of a LoggedModel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedModelParameter {
    /// Parameter name.
    pub key: String,
    /// Parameter value.
    #[serde(default)]
    pub value: String,
}

/// A registry version created from a LoggedModel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedModelRegistrationInfo {
    /// Registered model name.
    pub name: String,
    /// Version number as a string.
    pub version: String,
}

/// A LoggedModel's identity and metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModelInfo {
    /// `m-` followed by 32 lowercase hex characters.
    pub model_id: String,
    /// The owning experiment.
    pub experiment_id: String,
    /// Model name (no `/ : . % " '`).
    pub name: String,
    /// Creation, ms since the epoch.
    #[serde(with = "i64_lenient")]
    pub creation_timestamp_ms: i64,
    /// Last change, ms since the epoch.
    #[serde(with = "i64_lenient")]
    pub last_updated_timestamp_ms: i64,
    /// `<experiment artifact_location>/models/<model_id>/artifacts`.
    pub artifact_uri: String,
    /// Upload status.
    pub status: LoggedModelStatus,
    /// Numeric creator id, if known.
    #[serde(
        default,
        with = "opt_i64_lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub creator_id: Option<i64>,
    /// Free-form model type, e.g. `agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// The run that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_run_id: Option<String>,
    /// Detail for the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Tags, ordered by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<LoggedModelTag>,
    /// Registry versions created from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registrations: Vec<LoggedModelRegistrationInfo>,
}

/// A LoggedModel's params and metrics.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LoggedModelData {
    /// Parameters, ordered by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<LoggedModelParameter>,
    /// Metrics logged with this `model_id` (latest per key and dataset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

/// An MLflow 3 LoggedModel: a model addressable as `models:/<model_id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModel {
    /// Identity and metadata.
    pub info: LoggedModelInfo,
    /// Params and metrics.
    #[serde(default)]
    pub data: LoggedModelData,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_info_uses_mlflow_names_and_omits_absent_fields() {
        let info = RunInfo {
            run_id: "a".repeat(32),
            run_name: "r".into(),
            experiment_id: "0".into(),
            user_id: "u".into(),
            status: RunStatus::Finished,
            start_time: 5,
            end_time: None,
            artifact_uri: "file:///x".into(),
            lifecycle_stage: LifecycleStage::Active,
        };
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["status"], "FINISHED");
        assert_eq!(v["lifecycle_stage"], "active");
        assert_eq!(v["start_time"], 5);
        assert!(v.get("end_time").is_none());
        let back: RunInfo = serde_json::from_value(v).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn enums_accept_names_and_numbers() {
        let s: RunStatus = serde_json::from_str("3").unwrap();
        assert_eq!(s, RunStatus::Finished);
        let s: RunStatus = serde_json::from_str("\"killed\"").unwrap();
        assert_eq!(s, RunStatus::Killed);
        assert!(serde_json::from_str::<RunStatus>("9").is_err());
        let v: ViewType = serde_json::from_str("\"ALL\"").unwrap();
        assert_eq!(v, ViewType::All);
    }

    #[test]
    fn metric_accepts_camel_case_and_nan() {
        let m: Metric =
            serde_json::from_str(r#"{"key":"k","value":"NaN","timestamp":"1","datasetName":"d"}"#)
                .unwrap();
        assert!(m.value.is_nan());
        assert_eq!(m.step, 0);
        assert_eq!(m.dataset_name.as_deref(), Some("d"));
        assert_eq!(m, m.clone());
    }
}
