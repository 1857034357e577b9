//! Handlers of the MLflow 3 LoggedModel endpoints (api.md §1.4): create, get, finalize,
//! delete, search, tags and params. The model id (and a tag key) come from the path.

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::wire::{RequestSpec, Wire, WirePath as Path, de, empty, json, page, required};
use axum::extract::State;
use axum::response::Response;
use cairn_plugin_api::entities::{
    LoggedModel, LoggedModelParameter, LoggedModelStatus, LoggedModelTag,
};
use cairn_plugin_api::search::{SearchKind, parse_filter, parse_order_by};
use cairn_plugin_api::tracking::{
    CreateLoggedModel, DatasetRef, LoggedModelOrderBy, SearchLoggedModels,
};
use cairn_plugin_api::validation::{SEARCH_MAX_RESULTS_THRESHOLD, validate_max_results};
use serde::{Deserialize, Serialize};

/// `max_results` of `logged-models/search` when absent (the proto default).
pub const SEARCH_LOGGED_MODELS_DEFAULT: i64 = 50;
/// `max_results` of `logged-models/search` when given as 0 (the store default).
pub const SEARCH_LOGGED_MODELS_STORE_DEFAULT: usize = 100;

#[derive(Serialize)]
struct ModelResponse<'a> {
    model: &'a LoggedModel,
}

/// `POST logged-models`.
#[derive(Deserialize)]
pub struct CreateLoggedModelRequest {
    experiment_id: Option<String>,
    name: Option<String>,
    model_type: Option<String>,
    source_run_id: Option<String>,
    #[serde(default)]
    params: Vec<LoggedModelParameter>,
    #[serde(default)]
    tags: Vec<LoggedModelTag>,
}
impl RequestSpec for CreateLoggedModelRequest {}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// `POST logged-models` → `{"model"}` (status `LOGGED_MODEL_PENDING`).
pub async fn create_logged_model(
    State(state): State<AppState>,
    Wire(req): Wire<CreateLoggedModelRequest>,
) -> ApiResult<Response> {
    let experiment_id = required(&req.experiment_id, "experiment_id")?.to_owned();
    let model = state
        .store()
        .create_logged_model(CreateLoggedModel {
            experiment_id,
            name: non_empty(req.name),
            model_type: non_empty(req.model_type),
            source_run_id: non_empty(req.source_run_id),
            params: req.params,
            tags: req.tags,
        })
        .await?;
    Ok(json(&ModelResponse { model: &model }))
}

/// `GET logged-models/{model_id}`.
#[derive(Deserialize)]
pub struct GetLoggedModelRequest {
    allow_deleted: Option<bool>,
}
impl RequestSpec for GetLoggedModelRequest {
    const BOOLS: &'static [&'static str] = &["allow_deleted"];
}

/// `GET logged-models/{model_id}[?allow_deleted=true]` → `{"model"}`.
pub async fn get_logged_model(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    Wire(req): Wire<GetLoggedModelRequest>,
) -> ApiResult<Response> {
    let model = state
        .store()
        .get_logged_model(&model_id, req.allow_deleted.unwrap_or(false))
        .await?;
    Ok(json(&ModelResponse { model: &model }))
}

/// `PATCH logged-models/{model_id}`.
#[derive(Deserialize)]
pub struct FinalizeLoggedModelRequest {
    status: Option<LoggedModelStatus>,
}
impl RequestSpec for FinalizeLoggedModelRequest {}

/// `PATCH logged-models/{model_id}` with `{"status"}` → `{"model"}`.
pub async fn finalize_logged_model(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    Wire(req): Wire<FinalizeLoggedModelRequest>,
) -> ApiResult<Response> {
    let status = req.status.ok_or_else(|| ApiError::missing("status"))?;
    let model = state
        .store()
        .finalize_logged_model(&model_id, status)
        .await?;
    Ok(json(&ModelResponse { model: &model }))
}

/// A request whose only parameters are in the path.
#[derive(Deserialize)]
pub struct NoFields {}
impl RequestSpec for NoFields {}

/// `DELETE logged-models/{model_id}` → `{}` (soft delete).
pub async fn delete_logged_model(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    Wire(NoFields {}): Wire<NoFields>,
) -> ApiResult<Response> {
    state.store().delete_logged_model(&model_id).await?;
    Ok(empty())
}

/// `PATCH logged-models/{model_id}/tags`.
#[derive(Deserialize)]
pub struct SetLoggedModelTagsRequest {
    #[serde(default)]
    tags: Vec<LoggedModelTag>,
}
impl RequestSpec for SetLoggedModelTagsRequest {}

/// `PATCH logged-models/{model_id}/tags` with `{"tags"}` → `{}` (tags are upserted).
pub async fn set_logged_model_tags(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    Wire(req): Wire<SetLoggedModelTagsRequest>,
) -> ApiResult<Response> {
    state
        .store()
        .set_logged_model_tags(&model_id, req.tags)
        .await?;
    Ok(empty())
}

/// `DELETE logged-models/{model_id}/tags/{tag_key}` → `{}`. The key is the rest of the path,
/// so keys containing `/` work as the Python client sends them (unescaped).
pub async fn delete_logged_model_tag(
    State(state): State<AppState>,
    Path((model_id, tag_key)): Path<(String, String)>,
    Wire(NoFields {}): Wire<NoFields>,
) -> ApiResult<Response> {
    state
        .store()
        .delete_logged_model_tag(&model_id, &tag_key)
        .await?;
    Ok(empty())
}

/// `POST logged-models/{model_id}/params`.
#[derive(Deserialize)]
pub struct LogLoggedModelParamsRequest {
    #[serde(default)]
    params: Vec<LoggedModelParameter>,
}
impl RequestSpec for LogLoggedModelParamsRequest {}

/// `POST logged-models/{model_id}/params` with `{"params"}` → `{}`.
pub async fn log_logged_model_params(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    Wire(req): Wire<LogLoggedModelParamsRequest>,
) -> ApiResult<Response> {
    state
        .store()
        .log_logged_model_params(&model_id, req.params)
        .await?;
    Ok(empty())
}

/// One `datasets[]` entry of `logged-models/search`.
#[derive(Deserialize)]
pub struct SearchDataset {
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

/// One `order_by[]` entry of `logged-models/search`.
#[derive(Deserialize)]
pub struct SearchOrderBy {
    field_name: Option<String>,
    ascending: Option<bool>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

/// `POST logged-models/search`.
#[derive(Deserialize)]
pub struct SearchLoggedModelsRequest {
    experiment_ids: Option<Vec<String>>,
    filter: Option<String>,
    #[serde(default)]
    datasets: Vec<SearchDataset>,
    #[serde(default, deserialize_with = "de::opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<SearchOrderBy>,
    page_token: Option<String>,
}
impl RequestSpec for SearchLoggedModelsRequest {}

fn order_by(entry: SearchOrderBy) -> ApiResult<LoggedModelOrderBy> {
    let Some(field_name) = entry.field_name.filter(|f| !f.trim().is_empty()) else {
        return Err(ApiError::invalid(
            "`field_name` in the `order_by` clause must be specified.",
        ));
    };
    let dataset_name = non_empty(entry.dataset_name);
    let dataset_digest = non_empty(entry.dataset_digest);
    if dataset_digest.is_some() && dataset_name.is_none() {
        return Err(ApiError::invalid(
            "`dataset_digest` can only be specified if `dataset_name` is also specified.",
        ));
    }
    let mut parsed = parse_order_by(SearchKind::LoggedModels, &[field_name])?;
    let mut order = parsed.pop().ok_or_else(|| {
        ApiError::invalid("`field_name` in the `order_by` clause must be specified.")
    })?;
    order.ascending = entry.ascending.unwrap_or(true);
    Ok(LoggedModelOrderBy {
        order,
        dataset: dataset_name.map(|dataset_name| DatasetRef {
            dataset_name,
            dataset_digest,
        }),
    })
}

/// `POST logged-models/search` → `{"models", "next_page_token"}`. `experiment_ids` is
/// required; `max_results` defaults to 50 (0 means the store default, 100) and may be at most
/// 50000; `order_by` is a list of `{field_name, ascending, dataset_name, dataset_digest}`.
pub async fn search_logged_models(
    State(state): State<AppState>,
    caller: Option<axum::Extension<super::auth::Caller>>,
    Wire(req): Wire<SearchLoggedModelsRequest>,
) -> ApiResult<Response> {
    let experiment_ids = req
        .experiment_ids
        .ok_or_else(|| ApiError::missing("experiment_ids"))?;
    cairn_plugin_api::search::check_experiment_ids(&experiment_ids)?;
    // With auth on, only the experiments the caller may read are searched.
    let experiment_ids =
        super::auth::readable_experiments(caller.as_ref().map(|c| &c.0), experiment_ids).await?;
    if req.order_by.len() > cairn_plugin_api::search::MAX_ORDER_BY_KEYS {
        return Err(ApiError::invalid(format!(
            "Invalid order_by: {} clauses given, at most {} are allowed",
            req.order_by.len(),
            cairn_plugin_api::search::MAX_ORDER_BY_KEYS
        )));
    }
    let max_results = match req.max_results.unwrap_or(SEARCH_LOGGED_MODELS_DEFAULT) {
        0 => SEARCH_LOGGED_MODELS_STORE_DEFAULT,
        n if n < 0 => {
            return Err(ApiError::invalid(format!(
                "Invalid value {n} for parameter 'max_results' supplied. It must be a positive \
                 integer"
            )));
        }
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    validate_max_results(max_results, SEARCH_MAX_RESULTS_THRESHOLD)?;
    let filter = parse_filter(
        SearchKind::LoggedModels,
        req.filter.as_deref().unwrap_or_default(),
    )?;
    let datasets = req
        .datasets
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let dataset_name =
                required(&d.dataset_name, &format!("datasets[{i}].dataset_name"))?.to_owned();
            Ok(DatasetRef {
                dataset_name,
                dataset_digest: non_empty(d.dataset_digest),
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let order_by = req
        .order_by
        .into_iter()
        .map(order_by)
        .collect::<ApiResult<Vec<_>>>()?;
    let found = state
        .store()
        .search_logged_models(SearchLoggedModels {
            experiment_ids,
            filter,
            datasets,
            max_results,
            order_by,
            page_token: non_empty(req.page_token),
        })
        .await?;
    Ok(page("models", &found.items, found.next_page_token))
}
