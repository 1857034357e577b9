//! [`Validated`]: MLflow's stateless request validation, applied once in front of a store.
//!
//! The host wraps every tracking store it builds in [`Validated`], and the conformance suite
//! does too, so a store checks only what needs its own data (a param's existing value, an
//! experiment's lifecycle, its own id format); see [`TrackingStore`] for the list.

use crate::entities::*;
use crate::tracking::*;
use crate::validation;
use crate::{Result, TrackingStore};
use async_trait::async_trait;
use std::sync::Arc;

/// A tracking store behind MLflow's stateless validation (api.md §4): each request is checked
/// (and long values truncated) with [`crate::validation`], then handed to the inner store.
pub struct Validated<S: ?Sized = dyn TrackingStore>(Arc<S>);

impl<S: TrackingStore + ?Sized> Validated<S> {
    /// `store` behind the validation layer.
    pub fn new(store: Arc<S>) -> Self {
        Validated(store)
    }

    /// The store behind the layer.
    pub fn inner(&self) -> &Arc<S> {
        &self.0
    }
}

/// Checks every item with `check(item, "{field}[{i}]")`, keeping what it returns.
fn each<T>(items: Vec<T>, field: &str, check: fn(T, &str) -> Result<T>) -> Result<Vec<T>> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| check(item, &format!("{field}[{i}]")))
        .collect()
}

/// Checks a `log_batch` request; returns the params and tags with long values truncated.
fn batch(
    run_id: &str,
    metrics: &[Metric],
    params: Vec<Param>,
    tags: Vec<RunTag>,
) -> Result<(Vec<Param>, Vec<RunTag>)> {
    validation::validate_run_id(run_id)?;
    validation::validate_log_batch(metrics, params, tags)
}

fn one<T>(mut items: Vec<T>) -> T {
    items.pop().expect("validation keeps every item")
}

fn max_results(max_results: usize) -> Result<()> {
    validation::validate_max_results(max_results, validation::SEARCH_MAX_RESULTS_THRESHOLD)
}

#[async_trait]
impl<S: TrackingStore + ?Sized> TrackingStore for Validated<S> {
    fn capabilities(&self) -> TrackingCapabilities {
        self.0.capabilities()
    }

    // Trace requests are checked by the host's trace handlers (tag limits, immutable keys).
    fn trace_store(&self) -> Option<&dyn crate::traces::TraceStore> {
        self.0.trace_store()
    }

    fn importer(&self) -> Option<&dyn crate::import::TrackingImport> {
        self.0.importer()
    }

    async fn create_experiment(&self, req: CreateExperiment) -> Result<String> {
        validation::validate_experiment_name(&req.name)?;
        for (i, t) in req.tags.iter().enumerate() {
            validation::validate_experiment_tag(t, &format!("tags[{i}]"))?;
        }
        if let Some(loc) = &req.artifact_location
            && !loc.is_empty()
        {
            validation::validate_artifact_location(loc)?;
        }
        self.0.create_experiment(req).await
    }

    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        self.0.get_experiment(experiment_id).await
    }

    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        self.0.get_experiment_by_name(name).await
    }

    async fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        self.0.delete_experiment(experiment_id).await
    }

    async fn restore_experiment(&self, experiment_id: &str) -> Result<()> {
        self.0.restore_experiment(experiment_id).await
    }

    async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()> {
        validation::validate_experiment_name(new_name)?;
        self.0.rename_experiment(experiment_id, new_name).await
    }

    async fn set_experiment_tag(&self, experiment_id: &str, tag: ExperimentTag) -> Result<()> {
        validation::validate_experiment_tag(&tag, "")?;
        self.0.set_experiment_tag(experiment_id, tag).await
    }

    async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()> {
        self.0.delete_experiment_tag(experiment_id, key).await
    }

    async fn search_experiments(&self, req: SearchExperiments) -> Result<Page<Experiment>> {
        max_results(req.max_results)?;
        self.0.search_experiments(req).await
    }

    async fn create_run(&self, mut req: CreateRun) -> Result<Run> {
        req.tags = each(req.tags, "tags", validation::validate_tag)?;
        req.run_name = Some(validation::resolve_run_name(req.run_name, &req.tags)?);
        self.0.create_run(req).await
    }

    async fn get_run(&self, run_id: &str) -> Result<Run> {
        self.0.get_run(run_id).await
    }

    async fn update_run_info(&self, run_id: &str, update: UpdateRun) -> Result<RunInfo> {
        if let Some(name) = &update.run_name {
            validation::validate_length("run_name", validation::MAX_TAG_VAL_LENGTH, name)?;
        }
        self.0.update_run_info(run_id, update).await
    }

    async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.0.delete_run(run_id).await
    }

    async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.0.restore_run(run_id).await
    }

    async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<RunTag>,
    ) -> Result<()> {
        let (params, tags) = batch(run_id, &metrics, params, tags)?;
        self.0.log_batch(run_id, metrics, params, tags).await
    }

    async fn log_metric(&self, run_id: &str, metric: Metric) -> Result<()> {
        let metrics = vec![metric];
        batch(run_id, &metrics, vec![], vec![])?;
        self.0.log_metric(run_id, one(metrics)).await
    }

    async fn log_param(&self, run_id: &str, param: Param) -> Result<()> {
        let (params, _) = batch(run_id, &[], vec![param], vec![])?;
        self.0.log_param(run_id, one(params)).await
    }

    async fn set_tag(&self, run_id: &str, tag: RunTag) -> Result<()> {
        let (_, tags) = batch(run_id, &[], vec![], vec![tag])?;
        self.0.set_tag(run_id, one(tags)).await
    }

    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.0.delete_tag(run_id, key).await
    }

    async fn get_metric_history(
        &self,
        run_id: &str,
        metric_key: &str,
        max_results: usize,
        page_token: Option<String>,
    ) -> Result<Page<Metric>> {
        self.0
            .get_metric_history(run_id, metric_key, max_results, page_token)
            .await
    }

    async fn get_metric_history_bulk_interval(
        &self,
        req: BulkIntervalRequest,
    ) -> Result<Vec<MetricWithRunId>> {
        self.0.get_metric_history_bulk_interval(req).await
    }

    async fn search_runs(&self, req: SearchRuns) -> Result<Page<Run>> {
        max_results(req.max_results)?;
        self.0.search_runs(req).await
    }

    async fn run_keys(&self, req: RunKeysRequest) -> Result<RunKeys> {
        self.0.run_keys(req).await
    }

    async fn get_metric_history_downsampled(
        &self,
        req: DownsampleRequest,
    ) -> Result<Vec<MetricWithRunId>> {
        self.0.get_metric_history_downsampled(req).await
    }

    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        validation::validate_dataset_inputs(&datasets)?;
        self.0.log_inputs(run_id, datasets, models).await
    }

    async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()> {
        self.0.log_outputs(run_id, models).await
    }

    async fn search_datasets(&self, experiment_ids: &[String]) -> Result<Vec<DatasetSummary>> {
        self.0.search_datasets(experiment_ids).await
    }

    // `record_logged_model` keeps the trait's default, so its tag goes through `set_tag` above.

    async fn create_logged_model(&self, mut req: CreateLoggedModel) -> Result<LoggedModel> {
        if let Some(name) = req.name.as_deref().filter(|n| !n.is_empty()) {
            validation::validate_logged_model_name(name)?;
        }
        req.params = each(
            req.params,
            "params",
            validation::validate_logged_model_param,
        )?;
        req.tags = each(req.tags, "tags", validation::validate_logged_model_tag)?;
        self.0.create_logged_model(req).await
    }

    async fn get_logged_model(&self, model_id: &str, allow_deleted: bool) -> Result<LoggedModel> {
        self.0.get_logged_model(model_id, allow_deleted).await
    }

    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        self.0.finalize_logged_model(model_id, status).await
    }

    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.0.delete_logged_model(model_id).await
    }

    async fn set_logged_model_tags(&self, model_id: &str, tags: Vec<LoggedModelTag>) -> Result<()> {
        let tags = each(tags, "tags", validation::validate_logged_model_tag)?;
        self.0.set_logged_model_tags(model_id, tags).await
    }

    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.0.delete_logged_model_tag(model_id, key).await
    }

    async fn log_logged_model_params(
        &self,
        model_id: &str,
        params: Vec<LoggedModelParameter>,
    ) -> Result<()> {
        let params = each(params, "params", validation::validate_logged_model_param)?;
        self.0.log_logged_model_params(model_id, params).await
    }

    async fn search_logged_models(&self, req: SearchLoggedModels) -> Result<Page<LoggedModel>> {
        self.0.search_logged_models(req).await
    }
}
