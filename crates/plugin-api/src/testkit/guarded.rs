//! [`Guarded`]: a store bundled with something that must outlive it.

use crate::Result;
use crate::entities::*;
use crate::tracking::*;
use async_trait::async_trait;
use std::sync::Arc;

/// A tracking store together with a value that must live as long as the store and be dropped
/// right after it: a temporary directory holding its database file, a scratch database to drop.
///
/// The conformance macro takes one expression producing an `Arc<dyn TrackingStore>`; wrapping
/// the store with its guard lets that expression own both. Every method delegates to the store.
///
/// ```ignore
/// let dir = tempfile::tempdir().unwrap();
/// let store = my_store::open(dir.path().join("db"))?;
/// Arc::new(Guarded::new(Arc::new(store), dir))
/// ```
pub struct Guarded<G> {
    // Declared first so it is dropped first, before the guard.
    store: Arc<dyn TrackingStore>,
    _guard: G,
}

impl<G: Send + Sync + 'static> Guarded<G> {
    /// `store`, keeping `guard` alive until the store is dropped.
    pub fn new(store: Arc<dyn TrackingStore>, guard: G) -> Self {
        Guarded {
            store,
            _guard: guard,
        }
    }
}

#[async_trait]
impl<G: Send + Sync + 'static> TrackingStore for Guarded<G> {
    fn capabilities(&self) -> TrackingCapabilities {
        self.store.capabilities()
    }
    async fn create_experiment(&self, req: CreateExperiment) -> Result<String> {
        self.store.create_experiment(req).await
    }
    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        self.store.get_experiment(experiment_id).await
    }
    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        self.store.get_experiment_by_name(name).await
    }
    async fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        self.store.delete_experiment(experiment_id).await
    }
    async fn restore_experiment(&self, experiment_id: &str) -> Result<()> {
        self.store.restore_experiment(experiment_id).await
    }
    async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()> {
        self.store.rename_experiment(experiment_id, new_name).await
    }
    async fn set_experiment_tag(&self, experiment_id: &str, tag: ExperimentTag) -> Result<()> {
        self.store.set_experiment_tag(experiment_id, tag).await
    }
    async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()> {
        self.store.delete_experiment_tag(experiment_id, key).await
    }
    async fn search_experiments(&self, req: SearchExperiments) -> Result<Page<Experiment>> {
        self.store.search_experiments(req).await
    }
    async fn create_run(&self, req: CreateRun) -> Result<Run> {
        self.store.create_run(req).await
    }
    async fn get_run(&self, run_id: &str) -> Result<Run> {
        self.store.get_run(run_id).await
    }
    async fn update_run_info(&self, run_id: &str, update: UpdateRun) -> Result<RunInfo> {
        self.store.update_run_info(run_id, update).await
    }
    async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.store.delete_run(run_id).await
    }
    async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.store.restore_run(run_id).await
    }
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<RunTag>,
    ) -> Result<()> {
        self.store.log_batch(run_id, metrics, params, tags).await
    }
    async fn log_metric(&self, run_id: &str, metric: Metric) -> Result<()> {
        self.store.log_metric(run_id, metric).await
    }
    async fn log_param(&self, run_id: &str, param: Param) -> Result<()> {
        self.store.log_param(run_id, param).await
    }
    async fn set_tag(&self, run_id: &str, tag: RunTag) -> Result<()> {
        self.store.set_tag(run_id, tag).await
    }
    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.store.delete_tag(run_id, key).await
    }
    async fn get_metric_history(
        &self,
        run_id: &str,
        metric_key: &str,
        max_results: usize,
        page_token: Option<String>,
    ) -> Result<Page<Metric>> {
        self.store
            .get_metric_history(run_id, metric_key, max_results, page_token)
            .await
    }
    async fn get_metric_history_bulk_interval(
        &self,
        req: BulkIntervalRequest,
    ) -> Result<Vec<MetricWithRunId>> {
        self.store.get_metric_history_bulk_interval(req).await
    }
    async fn search_runs(&self, req: SearchRuns) -> Result<Page<Run>> {
        self.store.search_runs(req).await
    }
    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        self.store.log_inputs(run_id, datasets, models).await
    }
    async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()> {
        self.store.log_outputs(run_id, models).await
    }
    async fn search_datasets(&self, experiment_ids: &[String]) -> Result<Vec<DatasetSummary>> {
        self.store.search_datasets(experiment_ids).await
    }
    async fn record_logged_model(&self, run_id: &str, model_json: serde_json::Value) -> Result<()> {
        self.store.record_logged_model(run_id, model_json).await
    }
    async fn create_logged_model(&self, req: CreateLoggedModel) -> Result<LoggedModel> {
        self.store.create_logged_model(req).await
    }
    async fn get_logged_model(&self, model_id: &str, allow_deleted: bool) -> Result<LoggedModel> {
        self.store.get_logged_model(model_id, allow_deleted).await
    }
    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        self.store.finalize_logged_model(model_id, status).await
    }
    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.store.delete_logged_model(model_id).await
    }
    async fn set_logged_model_tags(&self, model_id: &str, tags: Vec<LoggedModelTag>) -> Result<()> {
        self.store.set_logged_model_tags(model_id, tags).await
    }
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.store.delete_logged_model_tag(model_id, key).await
    }
    async fn log_logged_model_params(
        &self,
        model_id: &str,
        params: Vec<LoggedModelParameter>,
    ) -> Result<()> {
        self.store.log_logged_model_params(model_id, params).await
    }
    async fn search_logged_models(&self, req: SearchLoggedModels) -> Result<Page<LoggedModel>> {
        self.store.search_logged_models(req).await
    }
}
