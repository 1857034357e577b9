//! Handlers of the core tracking endpoints (api.md §1.2): experiments, runs, metrics, params,
//! tags, batches, inputs and outputs, searches, metric histories and dataset summaries.
//!
//! Each handler decodes its request with [`Wire`], checks what MLflow's handler schema
//! requires (with MLflow's messages), calls the tracking store and writes the response in
//! MLflow's JSON form. Stores validate names, lengths and limits themselves (api.md §4).

use super::AppState;
use super::error::{ApiError, ApiResult, SEE_API_DOCS};
use super::history;
use super::wire::{RequestSpec, Wire, de, empty, json, page, required, run_id};
use axum::extract::State;
use axum::response::Response;
use cairn_plugin_api::entities::{
    DatasetInput, DatasetSummary, Experiment, ExperimentTag, Metric, MetricWithRunId, ModelInput,
    ModelOutput, Param, Run, RunData, RunInfo, RunInputs, RunOutputs, RunStatus, RunTag, ViewType,
};
use cairn_plugin_api::search::{SearchKind, check_experiment_ids, parse_filter, parse_order_by};
use cairn_plugin_api::tracking::{
    BulkIntervalRequest, CreateExperiment, CreateRun, SearchExperiments, SearchRuns, UpdateRun,
};
use cairn_plugin_api::validation::{
    SEARCH_MAX_RESULTS_THRESHOLD, validate_artifact_location_scheme, validate_max_results,
};
use serde::{Deserialize, Serialize};

/// Default page size of `runs/search` and `experiments/search` (api.md §5.7).
pub const SEARCH_MAX_RESULTS_DEFAULT: i64 = 1000;
/// Most run ids in one `get-history-bulk-interval` request.
pub const MAX_RUNS_GET_METRIC_HISTORY_BULK: usize = 100;
/// Default and largest `max_results` of `get-history-bulk-interval`.
pub const MAX_RESULTS_PER_RUN: i64 = 2500;
/// Default and largest `max_results` of the AJAX `get-history-bulk`.
pub const MAX_RESULTS_GET_HISTORY_BULK: i64 = 25000;
/// Most experiment ids in one `search-datasets` request.
pub const MAX_EXPERIMENT_IDS_PER_SEARCH_DATASETS: usize = 20;
/// Most `mlflow.customView.view*` tags per experiment.
pub const MAX_CUSTOM_VIEWS_PER_EXPERIMENT: usize = 50;
const CUSTOM_VIEW_TAG_PREFIX: &str = "mlflow.customView.view";

// ----- response shapes -------------------------------------------------------------------------

/// [`RunInfo`] as MLflow's server writes it: with the deprecated `run_uuid` duplicate of
/// `run_id`, which older clients (and MLflow's own UI) still read.
#[derive(Serialize)]
pub struct WireRunInfo<'a> {
    #[serde(flatten)]
    info: &'a RunInfo,
    run_uuid: &'a str,
}

impl<'a> WireRunInfo<'a> {
    /// Wraps `info`.
    pub fn new(info: &'a RunInfo) -> Self {
        WireRunInfo {
            info,
            run_uuid: &info.run_id,
        }
    }
}

/// A [`Run`] as MLflow's server writes it (see [`WireRunInfo`]).
#[derive(Serialize)]
pub struct WireRun<'a> {
    info: WireRunInfo<'a>,
    data: &'a RunData,
    inputs: &'a RunInputs,
    outputs: &'a RunOutputs,
}

impl<'a> WireRun<'a> {
    /// Wraps `run`.
    pub fn new(run: &'a Run) -> Self {
        WireRun {
            info: WireRunInfo::new(&run.info),
            data: &run.data,
            inputs: &run.inputs,
            outputs: &run.outputs,
        }
    }
}

// ----- shared request pieces -------------------------------------------------------------------

/// A request that names only a run (`runs/get`, `runs/delete`, `runs/restore`).
#[derive(Deserialize)]
pub struct RunRef {
    run_id: Option<String>,
    run_uuid: Option<String>,
}
impl RequestSpec for RunRef {}

/// A request that names only an experiment (`experiments/get`, `delete`, `restore`).
#[derive(Deserialize)]
pub struct ExperimentRef {
    experiment_id: Option<String>,
}
impl RequestSpec for ExperimentRef {}

/// A `max_results` within `1..=max`, or `default` when absent.
fn page_size(max_results: Option<i64>, default: i64, max: usize) -> ApiResult<usize> {
    let n = max_results.unwrap_or(default);
    if n < 0 {
        return Err(ApiError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be a positive integer"
        )));
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    validate_max_results(n, max)?;
    Ok(n)
}

fn non_empty(token: Option<String>) -> Option<String> {
    token.filter(|t| !t.is_empty())
}

fn is_custom_view_tag(key: &str) -> bool {
    key.starts_with(CUSTOM_VIEW_TAG_PREFIX)
}

fn custom_view_limit_exceeded(experiment_id: Option<&str>) -> ApiError {
    let experiment = experiment_id
        .map(|id| format!(" for experiment {id}"))
        .unwrap_or_default();
    ApiError::invalid(format!(
        "Unable to create another custom view{experiment}; the maximum number of custom views \
         per experiment is {MAX_CUSTOM_VIEWS_PER_EXPERIMENT}. Delete an existing custom view \
         before creating a new one."
    ))
}

// ----- experiments -----------------------------------------------------------------------------

/// `experiments/create`.
#[derive(Deserialize)]
pub struct CreateExperimentRequest {
    name: Option<String>,
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<ExperimentTag>,
}
impl RequestSpec for CreateExperimentRequest {
    const REPEATED: &'static [&'static str] = &["tags"];
}

/// `POST experiments/create` → `{"experiment_id"}`.
pub async fn create_experiment(
    State(state): State<AppState>,
    Wire(req): Wire<CreateExperimentRequest>,
) -> ApiResult<Response> {
    let name = required(&req.name, "name")?.to_owned();
    if req
        .tags
        .iter()
        .filter(|t| is_custom_view_tag(&t.key))
        .count()
        > MAX_CUSTOM_VIEWS_PER_EXPERIMENT
    {
        return Err(custom_view_limit_exceeded(None));
    }
    let artifact_location = non_empty(req.artifact_location);
    if let Some(location) = &artifact_location {
        validate_artifact_location_scheme(location, state.artifact_schemes())?;
    }
    let id = state
        .store()
        .create_experiment(CreateExperiment {
            name,
            artifact_location: artifact_location.map(absolute_local_location),
            tags: req.tags,
        })
        .await?;
    Ok(json(&serde_json::json!({ "experiment_id": id })))
}

/// A relative local `artifact_location` (`my_location`, `file:my_location`) made absolute
/// against the server's working directory, as MLflow's `resolve_uri_if_local` does; anything
/// else (absolute paths, other schemes) as given.
fn absolute_local_location(location: String) -> String {
    if crate::registry::scheme_of(&location) != "file" {
        return location;
    }
    let (prefix, path) = match location.strip_prefix("file:") {
        Some(rest) if !rest.starts_with('/') => ("file:", rest),
        Some(_) => return location,
        None => ("", location.as_str()),
    };
    if std::path::Path::new(path).is_absolute() {
        return location;
    }
    match std::env::current_dir() {
        Ok(cwd) => format!("{prefix}{}", cwd.join(path).display()),
        Err(_) => location,
    }
}

#[derive(Serialize)]
struct ExperimentResponse<'a> {
    experiment: &'a Experiment,
}

/// `GET experiments/get` → `{"experiment"}` (deleted experiments too).
pub async fn get_experiment(
    State(state): State<AppState>,
    Wire(req): Wire<ExperimentRef>,
) -> ApiResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    let experiment = state.store().get_experiment(id).await?;
    Ok(json(&ExperimentResponse {
        experiment: &experiment,
    }))
}

/// `experiments/get-by-name`.
#[derive(Deserialize)]
pub struct GetExperimentByNameRequest {
    experiment_name: Option<String>,
}
impl RequestSpec for GetExperimentByNameRequest {}

/// `GET experiments/get-by-name` → `{"experiment"}`.
pub async fn get_experiment_by_name(
    State(state): State<AppState>,
    Wire(req): Wire<GetExperimentByNameRequest>,
) -> ApiResult<Response> {
    let name = required(&req.experiment_name, "experiment_name")?;
    match state.store().get_experiment_by_name(name).await? {
        Some(experiment) => Ok(json(&ExperimentResponse {
            experiment: &experiment,
        })),
        None => Err(ApiError::not_found(format!(
            "Could not find experiment with name '{name}'"
        ))),
    }
}

/// `POST experiments/delete` → `{}`.
pub async fn delete_experiment(
    State(state): State<AppState>,
    Wire(req): Wire<ExperimentRef>,
) -> ApiResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    state.store().delete_experiment(id).await?;
    Ok(empty())
}

/// `POST experiments/restore` → `{}`.
pub async fn restore_experiment(
    State(state): State<AppState>,
    Wire(req): Wire<ExperimentRef>,
) -> ApiResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    state.store().restore_experiment(id).await?;
    Ok(empty())
}

/// `experiments/update`.
#[derive(Deserialize)]
pub struct UpdateExperimentRequest {
    experiment_id: Option<String>,
    new_name: Option<String>,
}
impl RequestSpec for UpdateExperimentRequest {}

/// `POST experiments/update` → `{}`.
pub async fn update_experiment(
    State(state): State<AppState>,
    Wire(req): Wire<UpdateExperimentRequest>,
) -> ApiResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    let new_name = required(&req.new_name, "new_name")?;
    state.store().rename_experiment(id, new_name).await?;
    Ok(empty())
}

/// `experiments/set-experiment-tag`.
#[derive(Deserialize)]
pub struct SetExperimentTagRequest {
    experiment_id: Option<String>,
    key: Option<String>,
    value: Option<String>,
}
impl RequestSpec for SetExperimentTagRequest {}

/// `POST experiments/set-experiment-tag` → `{}`.
pub async fn set_experiment_tag(
    State(state): State<AppState>,
    Wire(req): Wire<SetExperimentTagRequest>,
) -> ApiResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    let key = required(&req.key, "key")?;
    let store = state.store();
    if is_custom_view_tag(key) {
        // Only a new custom-view tag counts against the cap; overwriting one keeps it flat.
        let experiment = store.get_experiment(id).await?;
        let existing = experiment
            .tags
            .iter()
            .filter(|t| is_custom_view_tag(&t.key));
        if !experiment.tags.iter().any(|t| t.key == key)
            && existing.count() >= MAX_CUSTOM_VIEWS_PER_EXPERIMENT
        {
            return Err(custom_view_limit_exceeded(Some(id)));
        }
    }
    store
        .set_experiment_tag(
            id,
            ExperimentTag::new(key, req.value.clone().unwrap_or_default()),
        )
        .await?;
    Ok(empty())
}

/// `experiments/delete-experiment-tag`.
#[derive(Deserialize)]
pub struct DeleteExperimentTagRequest {
    experiment_id: Option<String>,
    key: Option<String>,
}
impl RequestSpec for DeleteExperimentTagRequest {}

/// `POST experiments/delete-experiment-tag` → `{}`.
pub async fn delete_experiment_tag(
    State(state): State<AppState>,
    Wire(req): Wire<DeleteExperimentTagRequest>,
) -> ApiResult<Response> {
    let id = required(&req.experiment_id, "experiment_id")?;
    let key = required(&req.key, "key")?;
    state.store().delete_experiment_tag(id, key).await?;
    Ok(empty())
}

/// `experiments/search`.
#[derive(Deserialize)]
pub struct SearchExperimentsRequest {
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
    filter: Option<String>,
    #[serde(default)]
    order_by: Vec<String>,
    view_type: Option<ViewType>,
}
impl RequestSpec for SearchExperimentsRequest {
    const REPEATED: &'static [&'static str] = &["order_by"];
}

/// `POST|GET experiments/search` → `{"experiments", "next_page_token"}`. `max_results`
/// defaults to 1000 (MLflow's client default; MLflow's server needs it given) and may be at
/// most 50000.
pub async fn search_experiments(
    State(state): State<AppState>,
    caller: Option<axum::Extension<super::auth::Caller>>,
    Wire(req): Wire<SearchExperimentsRequest>,
) -> ApiResult<Response> {
    let max_results = page_size(
        req.max_results,
        SEARCH_MAX_RESULTS_DEFAULT,
        SEARCH_MAX_RESULTS_THRESHOLD,
    )?;
    let filter = parse_filter(
        SearchKind::Experiments,
        req.filter.as_deref().unwrap_or_default(),
    )?;
    let order_by = parse_order_by(SearchKind::Experiments, &req.order_by)?;
    // With auth on, only what the caller may read, in the query itself.
    let caller = caller.as_ref().map(|c| &c.0);
    let Some(filter) =
        super::auth::restrict(caller, super::auth::EXPERIMENT, "experiment_id", filter).await?
    else {
        return Ok(page("experiments", &[] as &[Experiment], None));
    };
    let found = state
        .store()
        .search_experiments(SearchExperiments {
            view_type: req.view_type.unwrap_or_default(),
            max_results,
            filter,
            order_by,
            page_token: non_empty(req.page_token),
        })
        .await?;
    Ok(page("experiments", &found.items, found.next_page_token))
}

// ----- runs ------------------------------------------------------------------------------------

/// `runs/create`.
#[derive(Deserialize)]
pub struct CreateRunRequest {
    experiment_id: Option<String>,
    user_id: Option<String>,
    run_name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<RunTag>,
}
impl RequestSpec for CreateRunRequest {
    const REPEATED: &'static [&'static str] = &["tags"];
}

#[derive(Serialize)]
struct RunResponse<'a> {
    run: WireRun<'a>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `POST runs/create` → `{"run"}`. An absent `start_time` is the current time.
pub async fn create_run(
    State(state): State<AppState>,
    caller: Option<axum::Extension<super::auth::Caller>>,
    Wire(req): Wire<CreateRunRequest>,
) -> ApiResult<Response> {
    let experiment_id = req.experiment_id.unwrap_or_default();
    // With auth on, the run is the authenticated user's, whatever the client says.
    let authenticated = caller.map(|c| c.0.user.username);
    let user_id = authenticated
        .clone()
        .unwrap_or_else(|| req.user_id.unwrap_or_default());
    // The configured run-context providers' tags (`[run_context]`), the user's winning.
    let mut tags = state
        .run_context()
        .apply(&experiment_id, Some(&user_id), req.tags)
        .await?;
    if let Some(user) = authenticated {
        tags.retain(|t| t.key != "mlflow.user");
        tags.push(RunTag {
            key: "mlflow.user".to_owned(),
            value: user,
        });
    }
    let run = state
        .store()
        .create_run(CreateRun {
            experiment_id,
            user_id,
            start_time: req.start_time.unwrap_or_else(now_ms),
            tags,
            run_name: req.run_name,
        })
        .await?;
    Ok(json(&RunResponse {
        run: WireRun::new(&run),
    }))
}

/// `runs/update`.
#[derive(Deserialize)]
pub struct UpdateRunRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    status: Option<RunStatus>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    end_time: Option<i64>,
    run_name: Option<String>,
}
impl RequestSpec for UpdateRunRequest {}

/// `POST runs/update` → `{"run_info"}`; only the fields present change.
pub async fn update_run(
    State(state): State<AppState>,
    Wire(req): Wire<UpdateRunRequest>,
) -> ApiResult<Response> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    let info = state
        .store()
        .update_run_info(
            id,
            UpdateRun {
                status: req.status,
                end_time: req.end_time,
                run_name: req.run_name.clone(),
            },
        )
        .await?;
    Ok(json(
        &serde_json::json!({ "run_info": WireRunInfo::new(&info) }),
    ))
}

/// `POST runs/delete` → `{}`.
pub async fn delete_run(
    State(state): State<AppState>,
    Wire(req): Wire<RunRef>,
) -> ApiResult<Response> {
    state
        .store()
        .delete_run(run_id(&req.run_id, &req.run_uuid)?)
        .await?;
    Ok(empty())
}

/// `POST runs/restore` → `{}`.
pub async fn restore_run(
    State(state): State<AppState>,
    Wire(req): Wire<RunRef>,
) -> ApiResult<Response> {
    state
        .store()
        .restore_run(run_id(&req.run_id, &req.run_uuid)?)
        .await?;
    Ok(empty())
}

/// `GET runs/get` → `{"run"}`.
pub async fn get_run(
    State(state): State<AppState>,
    Wire(req): Wire<RunRef>,
) -> ApiResult<Response> {
    let run = state
        .store()
        .get_run(run_id(&req.run_id, &req.run_uuid)?)
        .await?;
    Ok(json(&RunResponse {
        run: WireRun::new(&run),
    }))
}

/// `runs/log-metric`.
#[derive(Deserialize)]
pub struct LogMetricRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_f64")]
    value: Option<f64>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    step: Option<i64>,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}
impl RequestSpec for LogMetricRequest {}

/// `POST runs/log-metric` → `{}`.
pub async fn log_metric(
    State(state): State<AppState>,
    Wire(req): Wire<LogMetricRequest>,
) -> ApiResult<Response> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    let key = required(&req.key, "key")?;
    let value = req.value.ok_or_else(|| ApiError::missing("value"))?;
    let timestamp = req
        .timestamp
        .ok_or_else(|| ApiError::missing("timestamp"))?;
    let mut metric = Metric::new(key, value, timestamp, req.step.unwrap_or(0));
    metric.model_id = non_empty(req.model_id);
    metric.dataset_name = non_empty(req.dataset_name);
    metric.dataset_digest = non_empty(req.dataset_digest);
    state.store().log_metric(id, metric).await?;
    Ok(empty())
}

/// `runs/log-parameter` and `runs/set-tag`: a key and a value on a run.
#[derive(Deserialize)]
pub struct RunKeyValueRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    value: Option<String>,
}
impl RequestSpec for RunKeyValueRequest {}

/// `POST runs/log-parameter` → `{}`. A missing value is `""`.
pub async fn log_param(
    State(state): State<AppState>,
    Wire(req): Wire<RunKeyValueRequest>,
) -> ApiResult<Response> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    let key = required(&req.key, "key")?;
    let value = req.value.clone().unwrap_or_default();
    state.store().log_param(id, Param::new(key, value)).await?;
    Ok(empty())
}

/// `POST runs/set-tag` → `{}`.
pub async fn set_tag(
    State(state): State<AppState>,
    Wire(req): Wire<RunKeyValueRequest>,
) -> ApiResult<Response> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    let key = required(&req.key, "key")?;
    let value = req.value.clone().unwrap_or_default();
    state.store().set_tag(id, RunTag::new(key, value)).await?;
    Ok(empty())
}

/// `runs/delete-tag`.
#[derive(Deserialize)]
pub struct DeleteTagRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
}
impl RequestSpec for DeleteTagRequest {}

/// `POST runs/delete-tag` → `{}`.
pub async fn delete_tag(
    State(state): State<AppState>,
    Wire(req): Wire<DeleteTagRequest>,
) -> ApiResult<Response> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    let key = required(&req.key, "key")?;
    state.store().delete_tag(id, key).await?;
    Ok(empty())
}

/// One metric of `runs/log-batch`, with every field optional so that a missing one gets
/// MLflow's message naming its path.
#[derive(Deserialize)]
pub struct BatchMetric {
    key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_f64")]
    value: Option<f64>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    step: Option<i64>,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

/// One param or tag of `runs/log-batch`.
#[derive(Deserialize)]
pub struct BatchKeyValue {
    key: Option<String>,
    value: Option<String>,
}

/// `runs/log-batch`.
#[derive(Deserialize)]
pub struct LogBatchRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    metrics: Vec<BatchMetric>,
    #[serde(default)]
    params: Vec<BatchKeyValue>,
    #[serde(default)]
    tags: Vec<BatchKeyValue>,
}
impl RequestSpec for LogBatchRequest {
    const REPEATED: &'static [&'static str] = &["metrics", "params", "tags"];
}

fn batch_key(key: Option<String>, path: impl FnOnce() -> String) -> ApiResult<String> {
    match key {
        Some(k) if !k.is_empty() => Ok(k),
        _ => Err(ApiError::missing(&path())),
    }
}

/// `POST runs/log-batch` → `{}`: params, metrics and tags in one store transaction.
pub async fn log_batch(
    State(state): State<AppState>,
    Wire(req): Wire<LogBatchRequest>,
) -> ApiResult<Response> {
    let id = run_id(&req.run_id, &req.run_uuid)?.to_owned();
    let mut metrics = Vec::with_capacity(req.metrics.len());
    for (i, m) in req.metrics.into_iter().enumerate() {
        let key = batch_key(m.key, || format!("metrics[{i}].key"))?;
        let value = m
            .value
            .ok_or_else(|| ApiError::missing(&format!("metrics[{i}].value")))?;
        let timestamp = m
            .timestamp
            .ok_or_else(|| ApiError::missing(&format!("metrics[{i}].timestamp")))?;
        let mut metric = Metric::new(key, value, timestamp, m.step.unwrap_or(0));
        metric.model_id = non_empty(m.model_id);
        metric.dataset_name = non_empty(m.dataset_name);
        metric.dataset_digest = non_empty(m.dataset_digest);
        metrics.push(metric);
    }
    let params = req
        .params
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let key = batch_key(p.key, || format!("params[{i}].key"))?;
            Ok(Param::new(key, p.value.unwrap_or_default()))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let tags = req
        .tags
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let key = batch_key(t.key, || format!("tags[{i}].key"))?;
            Ok(RunTag::new(key, t.value.unwrap_or_default()))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    state.store().log_batch(&id, metrics, params, tags).await?;
    Ok(empty())
}

/// `runs/log-model` (legacy).
#[derive(Deserialize)]
pub struct LogModelRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    model_json: Option<String>,
}
impl RequestSpec for LogModelRequest {}

/// The mandatory keys of a `log-model` JSON.
const MODEL_JSON_FIELDS: [&str; 4] = ["artifact_path", "flavors", "run_id", "utc_time_created"];

/// `POST runs/log-model` → `{}`: appends the model's tag dictionary (run_id,
/// utc_time_created, artifact_path, model_uuid, flavors without their `config`) to the run's
/// `mlflow.log-model.history` tag, as MLflow's `Model.get_tags_dict` does.
pub async fn log_model(
    State(state): State<AppState>,
    Wire(req): Wire<LogModelRequest>,
) -> ApiResult<Response> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    let text = required(&req.model_json, "model_json")?;
    let malformed = || {
        ApiError::invalid(format!(
            "Malformed model info. \n {text} \n is not a valid JSON."
        ))
    };
    let model: serde_json::Value = serde_json::from_str(text).map_err(|_| malformed())?;
    let serde_json::Value::Object(model) = model else {
        return Err(malformed());
    };
    let missing: Vec<String> = MODEL_JSON_FIELDS
        .iter()
        .filter(|f| !model.contains_key(**f))
        .map(|f| format!("'{f}'"))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::invalid(format!(
            "Model json is missing mandatory fields: {{{}}}",
            missing.join(", ")
        )));
    }
    let mut tags = serde_json::Map::new();
    for key in ["run_id", "utc_time_created", "artifact_path"] {
        if let Some(v) = model.get(key).filter(|v| !v.is_null()) {
            tags.insert(key.to_owned(), v.clone());
        }
    }
    tags.insert(
        "model_uuid".to_owned(),
        model
            .get("model_uuid")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
    );
    let flavors = match model.get("flavors") {
        Some(serde_json::Value::Object(flavors)) => flavors
            .iter()
            .map(|(name, conf)| {
                let conf = match conf {
                    serde_json::Value::Object(c) => serde_json::Value::Object(
                        c.iter()
                            .filter(|(k, _)| k.as_str() != "config")
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                    other => other.clone(),
                };
                (name.clone(), conf)
            })
            .collect(),
        _ => serde_json::Map::new(),
    };
    tags.insert("flavors".to_owned(), serde_json::Value::Object(flavors));
    state
        .store()
        .record_logged_model(id, serde_json::Value::Object(tags))
        .await?;
    Ok(empty())
}

/// `runs/log-inputs`.
#[derive(Deserialize)]
pub struct LogInputsRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    datasets: Vec<DatasetInput>,
    #[serde(default)]
    models: Vec<ModelInput>,
}
impl RequestSpec for LogInputsRequest {}

/// `POST runs/log-inputs` → `{}`.
pub async fn log_inputs(
    State(state): State<AppState>,
    Wire(req): Wire<LogInputsRequest>,
) -> ApiResult<Response> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    state
        .store()
        .log_inputs(id, req.datasets.clone(), req.models.clone())
        .await?;
    Ok(empty())
}

/// `runs/outputs`.
#[derive(Deserialize)]
pub struct LogOutputsRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    models: Option<Vec<ModelOutput>>,
}
impl RequestSpec for LogOutputsRequest {}

/// `POST runs/outputs` → `{}`. `models` is required (it may be empty).
pub async fn log_outputs(
    State(state): State<AppState>,
    Wire(req): Wire<LogOutputsRequest>,
) -> ApiResult<Response> {
    let id = run_id(&req.run_id, &req.run_uuid)?;
    let models = req
        .models
        .clone()
        .ok_or_else(|| ApiError::missing("models"))?;
    state.store().log_outputs(id, models).await?;
    Ok(empty())
}

/// `runs/search`.
#[derive(Deserialize)]
pub struct SearchRunsRequest {
    #[serde(default)]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    run_view_type: Option<ViewType>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
}
impl RequestSpec for SearchRunsRequest {
    const REPEATED: &'static [&'static str] = &["experiment_ids", "order_by"];
}

/// `POST runs/search` → `{"runs", "next_page_token"}`; `max_results` defaults to 1000 and may
/// be at most 50000.
pub async fn search_runs(
    State(state): State<AppState>,
    caller: Option<axum::Extension<super::auth::Caller>>,
    Wire(req): Wire<SearchRunsRequest>,
) -> ApiResult<Response> {
    let max_results = page_size(
        req.max_results,
        SEARCH_MAX_RESULTS_DEFAULT,
        SEARCH_MAX_RESULTS_THRESHOLD,
    )?;
    check_experiment_ids(&req.experiment_ids)?;
    let filter = parse_filter(SearchKind::Runs, req.filter.as_deref().unwrap_or_default())?;
    let order_by = parse_order_by(SearchKind::Runs, &req.order_by)?;
    // With auth on, only the experiments the caller may read are searched.
    let experiment_ids =
        super::auth::readable_experiments(caller.as_ref().map(|c| &c.0), req.experiment_ids)
            .await?;
    let found = state
        .store()
        .search_runs(SearchRuns {
            experiment_ids,
            filter,
            view_type: req.run_view_type.unwrap_or_default(),
            max_results,
            order_by,
            page_token: non_empty(req.page_token),
        })
        .await?;
    let runs: Vec<WireRun<'_>> = found.items.iter().map(WireRun::new).collect();
    Ok(page("runs", &runs, found.next_page_token))
}

// ----- metrics ---------------------------------------------------------------------------------

/// `metrics/get-history`.
#[derive(Deserialize)]
pub struct GetMetricHistoryRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    metric_key: Option<String>,
    page_token: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_results: Option<i64>,
}
impl RequestSpec for GetMetricHistoryRequest {}

/// `GET metrics/get-history` → `{"metrics", "next_page_token"}`. Without `max_results` the
/// whole history is returned, as MLflow does, but streamed page by page from the store so
/// memory stays bounded whatever its length; with `max_results`, one page and a token.
pub async fn get_metric_history(
    State(state): State<AppState>,
    Wire(req): Wire<GetMetricHistoryRequest>,
) -> ApiResult<Response> {
    let id = run_id(&req.run_id, &req.run_uuid)?.to_owned();
    let key = required(&req.metric_key, "metric_key")?.to_owned();
    let limit = match req.max_results {
        None => None,
        Some(n) if n <= 0 => {
            return Err(ApiError::invalid(format!(
                "Invalid value {n} for parameter 'max_results' supplied. It must be a positive \
                 integer."
            )));
        }
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    history::stream_metric_history(
        state.store().clone(),
        id,
        key,
        limit,
        non_empty(req.page_token),
        state.history_chunk(),
    )
    .await
}

/// `metrics/get-history-bulk-interval`.
#[derive(Deserialize)]
pub struct GetHistoryBulkIntervalRequest {
    run_ids: Option<Vec<String>>,
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    start_step: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    end_step: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_results: Option<i64>,
}
impl RequestSpec for GetHistoryBulkIntervalRequest {
    const REPEATED: &'static [&'static str] = &["run_ids"];
}

#[derive(Serialize)]
struct MetricsWithRunIdResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<MetricWithRunId>,
}

/// `GET metrics/get-history-bulk-interval` → `{"metrics"}`: the store samples at most
/// `max_results` (1 to 2500, default 2500) steps per run, in SQL.
pub async fn get_metric_history_bulk_interval(
    State(state): State<AppState>,
    Wire(req): Wire<GetHistoryBulkIntervalRequest>,
) -> ApiResult<Response> {
    let run_ids = match req.run_ids {
        Some(ids) if !ids.is_empty() => ids,
        _ => return Err(ApiError::missing("run_ids")),
    };
    if run_ids.len() > MAX_RUNS_GET_METRIC_HISTORY_BULK {
        return Err(ApiError::invalid(format!(
            "GetMetricHistoryBulkInterval request must specify at most \
             {MAX_RUNS_GET_METRIC_HISTORY_BULK} run_ids. Received {} run_ids. {SEE_API_DOCS}",
            run_ids.len()
        )));
    }
    let metric_key = required(&req.metric_key, "metric_key")?.to_owned();
    let max_results = req.max_results.unwrap_or(MAX_RESULTS_PER_RUN);
    if !(1..=MAX_RESULTS_PER_RUN).contains(&max_results) {
        return Err(ApiError::invalid(format!(
            "max_results must be between 1 and {MAX_RESULTS_PER_RUN}. {SEE_API_DOCS}"
        )));
    }
    let (start_step, end_step) = match (req.start_step, req.end_step) {
        (Some(start), Some(end)) if start > end => {
            return Err(ApiError::invalid(format!(
                "end_step must be greater than start_step. Found start_step={start} and \
                 end_step={end}."
            )));
        }
        (Some(start), Some(end)) => (Some(start), Some(end)),
        (None, None) => (None, None),
        _ => {
            return Err(ApiError::invalid(
                "If either start step or end step are specified, both must be specified.",
            ));
        }
    };
    let metrics = state
        .store()
        .get_metric_history_bulk_interval(BulkIntervalRequest {
            run_ids,
            metric_key,
            max_results: usize::try_from(max_results).unwrap_or(1),
            start_step,
            end_step,
        })
        .await?;
    Ok(json(&MetricsWithRunIdResponse { metrics }))
}

/// The AJAX `get-history-bulk` (query string `run_id=a&run_id=b&metric_key=k`).
#[derive(Deserialize)]
pub struct GetHistoryBulkRequest {
    #[serde(default)]
    run_id: Vec<String>,
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_results: Option<i64>,
}
impl RequestSpec for GetHistoryBulkRequest {
    const REPEATED: &'static [&'static str] = &["run_id"];
}

/// `GET /ajax-api/2.0/mlflow/metrics/get-history-bulk` → `{"metrics"}`: the histories of up to
/// 100 runs (sorted by run id, each by `(timestamp, step, value)`), at most `max_results`
/// values in all (default and cap 25000).
pub async fn get_metric_history_bulk(
    State(state): State<AppState>,
    Wire(req): Wire<GetHistoryBulkRequest>,
) -> ApiResult<Response> {
    if req.run_id.is_empty() {
        return Err(ApiError::invalid(
            "GetMetricHistoryBulk request must specify at least one run_id.",
        ));
    }
    if req.run_id.len() > MAX_RUNS_GET_METRIC_HISTORY_BULK {
        return Err(ApiError::invalid(format!(
            "GetMetricHistoryBulk request cannot specify more than \
             {MAX_RUNS_GET_METRIC_HISTORY_BULK} run_ids. Received {} run_ids.",
            req.run_id.len()
        )));
    }
    let Some(metric_key) = req.metric_key.as_deref() else {
        return Err(ApiError::invalid(
            "GetMetricHistoryBulk request must specify a metric_key.",
        ));
    };
    let cap = req
        .max_results
        .unwrap_or(MAX_RESULTS_GET_HISTORY_BULK)
        .min(MAX_RESULTS_GET_HISTORY_BULK);
    let cap = usize::try_from(cap).unwrap_or(0);
    let mut run_ids = req.run_id.clone();
    run_ids.sort();
    let mut metrics: Vec<MetricWithRunId> = Vec::new();
    for id in run_ids {
        if metrics.len() >= cap {
            break;
        }
        let page = history::read_history(
            state.store().as_ref(),
            &id,
            metric_key,
            cap - metrics.len(),
            None,
        )
        .await?;
        metrics.extend(page.items.into_iter().map(|m| MetricWithRunId {
            key: m.key,
            value: m.value,
            timestamp: m.timestamp,
            step: m.step,
            run_id: id.clone(),
        }));
    }
    Ok(json(&MetricsWithRunIdResponse { metrics }))
}

// ----- datasets --------------------------------------------------------------------------------

/// `experiments/search-datasets` (the working AJAX route).
#[derive(Deserialize)]
pub struct SearchDatasetsRequest {
    #[serde(default)]
    experiment_ids: Vec<String>,
}
impl RequestSpec for SearchDatasetsRequest {
    const REPEATED: &'static [&'static str] = &["experiment_ids"];
}

#[derive(Serialize)]
struct SearchDatasetsResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dataset_summaries: Vec<DatasetSummary>,
}

/// `POST /ajax-api/2.0/mlflow/experiments/search-datasets` → `{"dataset_summaries"}`, for 1 to
/// 20 experiments. (MLflow's proto path for this RPC lacks a slash and never answers; Cairn
/// does not serve that path either.)
pub async fn search_datasets(
    State(state): State<AppState>,
    Wire(req): Wire<SearchDatasetsRequest>,
) -> ApiResult<Response> {
    if req.experiment_ids.is_empty() {
        return Err(ApiError::invalid(
            "SearchDatasets request must specify at least one experiment_id.",
        ));
    }
    if req.experiment_ids.len() > MAX_EXPERIMENT_IDS_PER_SEARCH_DATASETS {
        return Err(ApiError::invalid(format!(
            "SearchDatasets request cannot specify more than \
             {MAX_EXPERIMENT_IDS_PER_SEARCH_DATASETS} experiment_ids. Received {} experiment_ids.",
            req.experiment_ids.len()
        )));
    }
    let dataset_summaries = state.store().search_datasets(&req.experiment_ids).await?;
    Ok(json(&SearchDatasetsResponse { dataset_summaries }))
}
