//! Read endpoints of the web UI, beside MLflow's API (README "Web UI" lists them):
//!
//! - `GET /ajax-api/2.0/cairn/runs/keys?experiment_ids=1&experiment_ids=2&kind=params`
//!   `[&max_results=1000][&page_token=…]` → `{"keys": [...], "next_page_token"?, "runs_scanned"?}`:
//!   the distinct param (`params`), metric (`metrics`) or tag (`tags`) keys of the runs of 1 to
//!   100 experiments, ascending, a page of at most `max_results` (1 to 10000, default 1000) at
//!   a time. `runs_scanned` is present when the store has no index of keys and read only that
//!   many runs (the list may then miss keys of older runs).
//! - `GET /ajax-api/2.0/cairn/metrics/get-history-downsampled?run_id=a&run_id=b&metric_key=loss`
//!   `[&x_axis=step|timestamp][&buckets=1000][&min_x=…&max_x=…]` → `{"metrics": [{key, value,`
//!   `timestamp, step, run_id}]}`: for each of 1 to 100 runs, the x range (or
//!   `[min_x, max_x]`) cut into `buckets` (1 to 5000, default 1000) equal parts, with the
//!   minimum and the maximum value of each part: at most `2 × buckets` points per run, sorted by
//!   run (order given) and x, and a one-step spike is never lost (which an evenly spaced
//!   sample of steps, `get-history-bulk-interval`, can miss).
//!
//! Both need `READ` on the experiments involved when auth is on (auth/rules.rs).

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::tracking::MAX_RUNS_GET_METRIC_HISTORY_BULK;
use super::wire::{RequestSpec, Wire, de, json, required};
use axum::extract::State;
use axum::response::Response;
use cairn_plugin_api::downsample::HistoryAxis;
use cairn_plugin_api::entities::MetricWithRunId;
use cairn_plugin_api::tracking::{DownsampleRequest, RunKeyKind, RunKeysRequest};
use serde::{Deserialize, Serialize};

/// Most experiments `runs/keys` takes.
pub const MAX_EXPERIMENTS_RUN_KEYS: usize = 100;
/// Largest page of `runs/keys`.
pub const MAX_RUN_KEYS: i64 = 10_000;
/// Default page of `runs/keys`.
pub const DEFAULT_RUN_KEYS: i64 = 1000;
/// Most buckets per run of `get-history-downsampled`.
pub const MAX_BUCKETS: i64 = 5000;
/// Default buckets per run.
pub const DEFAULT_BUCKETS: i64 = 1000;

/// `runs/keys`.
#[derive(Deserialize)]
pub struct RunKeysQuery {
    #[serde(default)]
    experiment_ids: Vec<String>,
    kind: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}
impl RequestSpec for RunKeysQuery {
    const REPEATED: &'static [&'static str] = &["experiment_ids"];
}

#[derive(Serialize)]
struct RunKeysResponse {
    keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runs_scanned: Option<usize>,
}

/// `GET /ajax-api/2.0/cairn/runs/keys` (module docs).
pub async fn run_keys(
    State(state): State<AppState>,
    Wire(req): Wire<RunKeysQuery>,
) -> ApiResult<Response> {
    if req.experiment_ids.is_empty() {
        return Err(ApiError::missing("experiment_ids"));
    }
    if req.experiment_ids.len() > MAX_EXPERIMENTS_RUN_KEYS {
        return Err(ApiError::invalid(format!(
            "runs/keys takes at most {MAX_EXPERIMENTS_RUN_KEYS} experiment_ids. Received {}.",
            req.experiment_ids.len()
        )));
    }
    let kind = match required(&req.kind, "kind")? {
        "params" => RunKeyKind::Params,
        "metrics" => RunKeyKind::Metrics,
        "tags" => RunKeyKind::Tags,
        other => {
            return Err(ApiError::invalid(format!(
                "Invalid value '{other}' for parameter 'kind': expected params, metrics or tags."
            )));
        }
    };
    let max_results = req.max_results.unwrap_or(DEFAULT_RUN_KEYS);
    if !(1..=MAX_RUN_KEYS).contains(&max_results) {
        return Err(ApiError::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results': it must be between 1 \
             and {MAX_RUN_KEYS}."
        )));
    }
    let page = state
        .store()
        .run_keys(RunKeysRequest {
            experiment_ids: req.experiment_ids,
            kind,
            max_results: usize::try_from(max_results).unwrap_or(1),
            page_token: req.page_token.filter(|t| !t.is_empty()),
        })
        .await?;
    Ok(json(&RunKeysResponse {
        keys: page.keys,
        next_page_token: page.next_page_token,
        runs_scanned: page.runs_scanned,
    }))
}

/// `metrics/get-history-downsampled`.
#[derive(Deserialize)]
pub struct DownsampledQuery {
    #[serde(default)]
    run_id: Vec<String>,
    metric_key: Option<String>,
    x_axis: Option<String>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    buckets: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    min_x: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_x: Option<i64>,
}
impl RequestSpec for DownsampledQuery {
    const REPEATED: &'static [&'static str] = &["run_id"];
}

#[derive(Serialize)]
struct MetricsResponse {
    metrics: Vec<MetricWithRunId>,
}

/// `GET /ajax-api/2.0/cairn/metrics/get-history-downsampled` (module docs).
pub async fn get_history_downsampled(
    State(state): State<AppState>,
    Wire(req): Wire<DownsampledQuery>,
) -> ApiResult<Response> {
    if req.run_id.is_empty() {
        return Err(ApiError::missing("run_id"));
    }
    if req.run_id.len() > MAX_RUNS_GET_METRIC_HISTORY_BULK {
        return Err(ApiError::invalid(format!(
            "get-history-downsampled takes at most {MAX_RUNS_GET_METRIC_HISTORY_BULK} run_ids. \
             Received {}.",
            req.run_id.len()
        )));
    }
    let metric_key = required(&req.metric_key, "metric_key")?.to_owned();
    let axis = match req.x_axis.as_deref().unwrap_or("step") {
        "step" => HistoryAxis::Step,
        "timestamp" => HistoryAxis::Timestamp,
        other => {
            return Err(ApiError::invalid(format!(
                "Invalid value '{other}' for parameter 'x_axis': expected step or timestamp."
            )));
        }
    };
    let buckets = req.buckets.unwrap_or(DEFAULT_BUCKETS);
    if !(1..=MAX_BUCKETS).contains(&buckets) {
        return Err(ApiError::invalid(format!(
            "Invalid value {buckets} for parameter 'buckets': it must be between 1 and \
             {MAX_BUCKETS}."
        )));
    }
    if let (Some(lo), Some(hi)) = (req.min_x, req.max_x)
        && lo > hi
    {
        return Err(ApiError::invalid(format!(
            "max_x must not be less than min_x. Found min_x={lo} and max_x={hi}."
        )));
    }
    let metrics = state
        .store()
        .get_metric_history_downsampled(DownsampleRequest {
            run_ids: req.run_id,
            metric_key,
            axis,
            buckets: usize::try_from(buckets).unwrap_or(1),
            min_x: req.min_x,
            max_x: req.max_x,
        })
        .await?;
    Ok(json(&MetricsResponse { metrics }))
}
