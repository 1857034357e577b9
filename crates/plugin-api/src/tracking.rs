//! The tracking-store contract: experiments, runs, metrics, params, tags, datasets, LoggedModels.
//!
//! MLflow counterpart: `mlflow.store.tracking.abstract_store.AbstractStore` (entry point group
//! `mlflow.tracking_store`), chosen by the scheme of the backend store URI.
//!
//! Rules every implementation follows (the conformance suite in `testkit` checks them):
//! - Validation follows MLflow (api.md §4) through [`crate::validation`]. MLflow's stateless
//!   checks are made once, by [`Validated`](crate::Validated), which the host puts in front of
//!   every tracking store it builds (and the conformance suite in front of the store it tests).
//!   Before a call reaches a store, the host guarantees: experiment names, experiment tags and
//!   a non-empty `artifact_location` are valid; `max_results` of `search_experiments` and
//!   `search_runs` is 1 to 50000; `create_run` tags are valid and its `run_name` is resolved
//!   ([`resolve_run_name`](crate::validation::resolve_run_name): always `Some`, agreeing with
//!   any `mlflow.runName` tag); an `update_run_info` name is at most 8000 characters;
//!   `log_batch` (and `log_metric`, `log_param`, `set_tag`) has a well-formed run id, is within
//!   the batch limits, has valid keys, unique param keys and values truncated to MLflow's
//!   limits; `log_inputs` datasets and their tags are within MLflow's sizes; LoggedModel names,
//!   tags and params are valid (values truncated). A store checks only what needs its data: a
//!   param's existing value, an experiment's or run's lifecycle, the form of its own ids.
//! - Every write is atomic: a failed call leaves nothing half-written.
//! - Ids: experiment ids are strings (decimal integers in SQL stores, `"0"` is `Default`, which
//!   every store creates); run ids are 32 lowercase hex characters; LoggedModel ids are `m-` and
//!   32 lowercase hex characters.
//! - Lists inside entities (tags, params, latest metrics) are ordered by key.
//! - Page tokens are opaque to the host, produced and understood only by the store that issued
//!   them; a malformed token is [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument).

use crate::entities::*;
use crate::search::{Expr, OrderBy};
use crate::{Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One page of results and the token for the next, if there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page, in the requested order.
    pub items: Vec<T>,
    /// Present only when more items exist; pass it back unchanged to get them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

impl<T> Page<T> {
    /// A last page holding `items`.
    pub fn last(items: Vec<T>) -> Self {
        Page {
            items,
            next_page_token: None,
        }
    }
}

/// What a tracking store can do beyond the core of experiments and runs.
///
/// Grows without breaking plugins: a field missing from a plugin's answer (a plugin built before
/// the capability existed) reads as `false`, and a plugin sets the fields it knows and leaves
/// the rest to `..Default::default()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackingCapabilities {
    /// MLflow 3 LoggedModels (`*_logged_model*` methods).
    pub logged_models: bool,
    /// Dataset inputs (`log_inputs` with datasets, `search_datasets`, `datasets.*` filters).
    pub datasets: bool,
}

impl TrackingCapabilities {
    /// Everything.
    pub const ALL: TrackingCapabilities = TrackingCapabilities {
        logged_models: true,
        datasets: true,
    };
}

/// Arguments of [`TrackingStore::create_experiment`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CreateExperiment {
    /// Unique name: non-blank, at most 500 characters.
    pub name: String,
    /// Artifact root; `None` means `<default artifact root>/<experiment_id>`.
    #[serde(default)]
    pub artifact_location: Option<String>,
    /// Initial tags.
    #[serde(default)]
    pub tags: Vec<ExperimentTag>,
}

/// Arguments of [`TrackingStore::search_experiments`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchExperiments {
    /// Lifecycle stages to include.
    pub view_type: ViewType,
    /// Page size, 1 to 50000 (the host enforces the range).
    pub max_results: usize,
    /// Parsed filter ([`SearchKind::Experiments`](crate::search::SearchKind::Experiments)).
    pub filter: Option<Expr>,
    /// Order keys; the store appends `creation_time DESC, experiment_id ASC` as tie-breakers.
    pub order_by: Vec<OrderBy>,
    /// Token from the previous page.
    pub page_token: Option<String>,
}

/// Arguments of [`TrackingStore::create_run`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CreateRun {
    /// Owning experiment; empty means `"0"`.
    pub experiment_id: String,
    /// Stored verbatim.
    pub user_id: String,
    /// ms since the epoch.
    pub start_time: i64,
    /// Initial tags (run-context tags already merged in by the host).
    pub tags: Vec<RunTag>,
    /// Display name; when neither this nor tag `mlflow.runName` is given the store generates one.
    pub run_name: Option<String>,
}

/// Arguments of [`TrackingStore::update_run_info`]; only present fields change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdateRun {
    /// New status.
    pub status: Option<RunStatus>,
    /// New end time, ms.
    pub end_time: Option<i64>,
    /// New name (also upserts tag `mlflow.runName`).
    pub run_name: Option<String>,
}

/// Arguments of [`TrackingStore::search_runs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRuns {
    /// Experiments to search; an empty list matches no runs.
    pub experiment_ids: Vec<String>,
    /// Parsed filter ([`SearchKind::Runs`](crate::search::SearchKind::Runs)).
    pub filter: Option<Expr>,
    /// Lifecycle stages to include.
    pub view_type: ViewType,
    /// Page size, 1 to 50000.
    pub max_results: usize,
    /// Order keys; the store appends `start_time DESC, run_id ASC` as tie-breakers.
    pub order_by: Vec<OrderBy>,
    /// Token from the previous page.
    pub page_token: Option<String>,
}

/// Arguments of [`TrackingStore::get_metric_history_bulk_interval`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkIntervalRequest {
    /// Runs, at most 100.
    pub run_ids: Vec<String>,
    /// The metric.
    pub metric_key: String,
    /// Steps to sample, 1 to 2500.
    pub max_results: usize,
    /// Inclusive lower step bound (given together with `end_step`).
    pub start_step: Option<i64>,
    /// Inclusive upper step bound.
    pub end_step: Option<i64>,
}

/// Which keys [`TrackingStore::run_keys`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKeyKind {
    /// Param keys.
    Params,
    /// Metric keys.
    Metrics,
    /// Tag keys (system tags included).
    Tags,
}

/// Arguments of [`TrackingStore::run_keys`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunKeysRequest {
    /// Experiments whose runs (active and deleted) are looked at; at most 100 (the host
    /// enforces it). An empty list has no keys.
    pub experiment_ids: Vec<String>,
    /// Params, metrics or tags.
    pub kind: RunKeyKind,
    /// Page size (the host keeps it between 1 and 10000).
    pub max_results: usize,
    /// Token from the previous page.
    pub page_token: Option<String>,
}

/// One page of [`TrackingStore::run_keys`]: distinct keys in ascending (byte) order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunKeys {
    /// The keys of this page.
    pub keys: Vec<String>,
    /// Present only when more keys exist.
    pub next_page_token: Option<String>,
    /// `Some(n)`: the store has no index of keys and read only the first `n` runs (most recent
    /// first), so keys used only by older runs may be missing.
    pub runs_scanned: Option<usize>,
}

/// Runs the default [`TrackingStore::run_keys`] reads at most.
pub const RUN_KEYS_SCAN_LIMIT: usize = 10_000;

/// Arguments of [`TrackingStore::get_metric_history_downsampled`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownsampleRequest {
    /// Runs, at most 100 (the host enforces it); unknown ones have no points.
    pub run_ids: Vec<String>,
    /// The metric.
    pub metric_key: String,
    /// The x coordinate buckets are cut on.
    pub axis: crate::downsample::HistoryAxis,
    /// Buckets per run, 1 to 5000 (the host enforces it): at most twice as many points.
    pub buckets: usize,
    /// Inclusive lower x bound; `None`: the run's first x.
    pub min_x: Option<i64>,
    /// Inclusive upper x bound; `None`: the run's last x.
    pub max_x: Option<i64>,
}

/// Arguments of [`TrackingStore::create_logged_model`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CreateLoggedModel {
    /// Owning experiment (must be active).
    pub experiment_id: String,
    /// Name; `None` means a generated one.
    pub name: Option<String>,
    /// Free-form type.
    pub model_type: Option<String>,
    /// The run that produced it.
    pub source_run_id: Option<String>,
    /// Initial params.
    pub params: Vec<LoggedModelParameter>,
    /// Initial tags.
    pub tags: Vec<LoggedModelTag>,
}

/// A dataset restriction for LoggedModel metric filters and ordering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRef {
    /// Dataset name.
    pub dataset_name: String,
    /// Dataset digest; `None` matches any digest.
    pub dataset_digest: Option<String>,
}

/// One LoggedModel order key, optionally restricted to a dataset's metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedModelOrderBy {
    /// Attribute or `metrics.<key>` and direction.
    pub order: OrderBy,
    /// Only metrics logged on this dataset count.
    pub dataset: Option<DatasetRef>,
}

/// Arguments of [`TrackingStore::search_logged_models`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchLoggedModels {
    /// Experiments to search.
    pub experiment_ids: Vec<String>,
    /// Parsed filter ([`SearchKind::LoggedModels`](crate::search::SearchKind::LoggedModels)).
    pub filter: Option<Expr>,
    /// When non-empty, metric filters only consider metrics logged on these datasets.
    pub datasets: Vec<DatasetRef>,
    /// Page size.
    pub max_results: usize,
    /// Order keys; tie-breakers `creation_timestamp DESC, model_id ASC` are appended.
    pub order_by: Vec<LoggedModelOrderBy>,
    /// Token from the previous page.
    pub page_token: Option<String>,
}

/// A tracking store.
///
/// Errors use MLflow's wording: an unknown run is `NotFound` "Run with id={id} not found", an
/// unknown experiment `NotFound` "No Experiment with id={id} exists", a write to a deleted run
/// `InvalidArgument` "The run {id} must be in the 'active' state. Current state is deleted.".
#[async_trait]
pub trait TrackingStore: Send + Sync + 'static {
    /// What this store supports beyond experiments and runs.
    fn capabilities(&self) -> TrackingCapabilities;

    /// The store's traces (MLflow 3 tracing, [`crate::traces`]); `None` (the default) means
    /// this store keeps no traces and the host answers trace endpoints `NOT_IMPLEMENTED`.
    /// Host-side only: it does not cross the plugin ABI, so a dynamic plugin has no traces.
    fn trace_store(&self) -> Option<&dyn crate::traces::TraceStore> {
        None
    }

    /// Writing entities with the source's ids and times (`cairn import`, [`crate::import`]);
    /// `None` (the default) means this store cannot be an import destination.
    /// Host-side only: it does not cross the plugin ABI.
    fn importer(&self) -> Option<&dyn crate::import::TrackingImport> {
        None
    }

    // ----- experiments -----

    /// Creates an experiment and returns its id. A duplicate name (active or deleted) is
    /// `AlreadyExists` "Experiment(name={n}) already exists."; an invalid name or tag is
    /// `InvalidArgument`.
    async fn create_experiment(&self, req: CreateExperiment) -> Result<String>;

    /// The experiment with `experiment_id`, active or deleted; `NotFound` if there is none.
    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment>;

    /// The experiment named `name`, preferring an active one; `None` if there is none.
    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>>;

    /// Soft-deletes an active experiment and all its runs. `NotFound` if it does not exist or
    /// is already deleted.
    async fn delete_experiment(&self, experiment_id: &str) -> Result<()>;

    /// Restores a deleted experiment and its runs. `NotFound` if it does not exist or is active.
    async fn restore_experiment(&self, experiment_id: &str) -> Result<()>;

    /// Renames an active experiment. A deleted one is `InvalidState` "Cannot rename a
    /// non-active experiment."; a taken name is `AlreadyExists`.
    async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()>;

    /// Sets (or overwrites) a tag on an active experiment; a deleted one is `InvalidArgument`.
    async fn set_experiment_tag(&self, experiment_id: &str, tag: ExperimentTag) -> Result<()>;

    /// Deletes a tag; a missing tag is `NotFound` "No tag with name: {k} in experiment with id {id}".
    async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()>;

    /// One page of experiments matching the filter; an empty page has no token.
    async fn search_experiments(&self, req: SearchExperiments) -> Result<Page<Experiment>>;

    // ----- runs -----

    /// Creates a `RUNNING`, active run in an active experiment (a deleted one is
    /// `InvalidArgument`) and returns it. Both `run_name` and tag `mlflow.runName` given and
    /// different is `InvalidArgument`; neither given means a generated name stored in both.
    async fn create_run(&self, req: CreateRun) -> Result<Run>;

    /// The run with everything it logged (latest metric values only); `NotFound` if unknown.
    /// Deleted runs are returned too.
    async fn get_run(&self, run_id: &str) -> Result<Run>;

    /// Applies the present fields of `update` to an active run and returns the new info.
    async fn update_run_info(&self, run_id: &str, update: UpdateRun) -> Result<RunInfo>;

    /// Soft-deletes a run (deleting a deleted run succeeds). `NotFound` if unknown.
    async fn delete_run(&self, run_id: &str) -> Result<()>;

    /// Restores a soft-deleted run. `NotFound` if unknown.
    async fn restore_run(&self, run_id: &str) -> Result<()>;

    /// Logs metrics, params and tags to an active run in one transaction: all or nothing.
    /// Limits: 1000 metrics, 100 params, 100 tags, 1000 entities in total. Re-logging a param
    /// with the same value is a no-op; a different value is `InvalidArgument` "Changing param
    /// values is not allowed. ..."; a duplicate param key within the batch is `InvalidArgument`.
    /// Every metric value is kept in the history; the latest value of a key is the one with
    /// the greatest `(step, timestamp, value)`. Tags overwrite; `mlflow.runName` renames the run.
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<RunTag>,
    ) -> Result<()>;

    /// Logs one metric value; the same rules as [`TrackingStore::log_batch`].
    async fn log_metric(&self, run_id: &str, metric: Metric) -> Result<()> {
        self.log_batch(run_id, vec![metric], vec![], vec![]).await
    }

    /// Logs one param; the same rules as [`TrackingStore::log_batch`].
    async fn log_param(&self, run_id: &str, param: Param) -> Result<()> {
        self.log_batch(run_id, vec![], vec![param], vec![]).await
    }

    /// Sets one tag; the same rules as [`TrackingStore::log_batch`].
    async fn set_tag(&self, run_id: &str, tag: RunTag) -> Result<()> {
        self.log_batch(run_id, vec![], vec![], vec![tag]).await
    }

    /// Deletes a run tag; a missing tag is `NotFound` "No tag with name: {k} in run with id {id}".
    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()>;

    /// One page of every value logged for `metric_key`, ordered by `(timestamp, step, value)`.
    /// An unknown run is `NotFound`; a run without that metric gives an empty last page.
    async fn get_metric_history(
        &self,
        run_id: &str,
        metric_key: &str,
        max_results: usize,
        page_token: Option<String>,
    ) -> Result<Page<Metric>>;

    /// Sampled histories of one metric over several runs (api.md §1.2): the union of steps in
    /// range, at most `max_results` evenly spaced steps plus each run's minimum and maximum
    /// step, every value at a chosen step, sorted by `(run_id order given, step, timestamp)`.
    async fn get_metric_history_bulk_interval(
        &self,
        req: BulkIntervalRequest,
    ) -> Result<Vec<MetricWithRunId>>;

    /// One page of runs of the given experiments that match the filter.
    async fn search_runs(&self, req: SearchRuns) -> Result<Page<Run>>;

    /// The distinct param, metric or tag keys used by runs of the given experiments, a page at a
    /// time (the web UI's column picker). The default reads the experiments' runs through
    /// [`TrackingStore::search_runs`], at most [`RUN_KEYS_SCAN_LIMIT`] of them, and says so in
    /// [`RunKeys::runs_scanned`] when it stopped early; a store with an index of keys
    /// overrides it. Host-side only (not part of the plugin ABI): a dynamic plugin gets the
    /// default, over its `search_runs`.
    async fn run_keys(&self, req: RunKeysRequest) -> Result<RunKeys> {
        let mut set = std::collections::BTreeSet::new();
        let mut token = None;
        let mut scanned = 0usize;
        let mut more = false;
        if !req.experiment_ids.is_empty() {
            loop {
                let page = self
                    .search_runs(SearchRuns {
                        experiment_ids: req.experiment_ids.clone(),
                        filter: None,
                        view_type: ViewType::All,
                        max_results: 1000,
                        order_by: Vec::new(),
                        page_token: token,
                    })
                    .await?;
                scanned += page.items.len();
                for run in &page.items {
                    match req.kind {
                        RunKeyKind::Params => {
                            set.extend(run.data.params.iter().map(|p| p.key.clone()))
                        }
                        RunKeyKind::Metrics => {
                            set.extend(run.data.metrics.iter().map(|m| m.key.clone()))
                        }
                        RunKeyKind::Tags => set.extend(run.data.tags.iter().map(|t| t.key.clone())),
                    }
                }
                token = page.next_page_token;
                if token.is_none() {
                    break;
                }
                if scanned >= RUN_KEYS_SCAN_LIMIT {
                    more = true;
                    break;
                }
            }
        }
        let after = req.page_token.unwrap_or_default();
        let n = req.max_results.max(1);
        let mut keys: Vec<String> = set
            .into_iter()
            .filter(|k| after.is_empty() || k.as_str() > after.as_str())
            .take(n + 1)
            .collect();
        let next_page_token = if keys.len() > n {
            keys.truncate(n);
            keys.last().cloned()
        } else {
            None
        };
        Ok(RunKeys {
            keys,
            next_page_token,
            runs_scanned: more.then_some(scanned),
        })
    }

    /// The histories of one metric over several runs, each cut into `buckets` equal ranges of
    /// x with the minimum and maximum value of each kept ([`crate::downsample`]): at most
    /// `2 × buckets` points per run, and no spike lost. Sorted by (run order given, x). The
    /// default reads each history twice through [`TrackingStore::get_metric_history`] (the x
    /// range, then the buckets), a page at a time; a store may do it in one read. Host-side
    /// only (not part of the plugin ABI).
    async fn get_metric_history_downsampled(
        &self,
        req: DownsampleRequest,
    ) -> Result<Vec<MetricWithRunId>> {
        use crate::downsample::Buckets;
        const PAGE: usize = 10_000;
        let axis = req.axis;
        let within =
            |x: i64| req.min_x.is_none_or(|lo| x >= lo) && req.max_x.is_none_or(|hi| x <= hi);
        let mut out = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for run_id in &req.run_ids {
            if seen.contains(&run_id.as_str()) {
                continue;
            }
            seen.push(run_id);
            // Pass 1: the x range within the bounds.
            let mut range: Option<(i64, i64)> = None;
            let mut token = None;
            loop {
                let page = match self
                    .get_metric_history(run_id, &req.metric_key, PAGE, token)
                    .await
                {
                    Err(e) if e.kind == crate::ErrorKind::NotFound => break,
                    other => other?,
                };
                for m in &page.items {
                    let x = axis.of(m);
                    if within(x) {
                        range = Some(range.map_or((x, x), |(a, b)| (a.min(x), b.max(x))));
                    }
                }
                token = page.next_page_token;
                if token.is_none() {
                    break;
                }
            }
            let Some((lo, hi)) = range else { continue };
            // Pass 2: the buckets.
            let mut buckets = Buckets::new(axis, lo, hi, req.buckets);
            let mut token = None;
            loop {
                let page = self
                    .get_metric_history(run_id, &req.metric_key, PAGE, token)
                    .await?;
                for m in page.items {
                    buckets.push(m);
                }
                token = page.next_page_token;
                if token.is_none() {
                    break;
                }
            }
            out.extend(buckets.finish().into_iter().map(|m| MetricWithRunId {
                key: m.key,
                value: m.value,
                timestamp: m.timestamp,
                step: m.step,
                run_id: run_id.clone(),
            }));
        }
        Ok(out)
    }

    /// Records dataset and model inputs of an active run. The same dataset `(experiment,
    /// name, digest)` is stored once and linked once per run; logging it again is a no-op.
    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()>;

    /// Links LoggedModels to an active run as outputs.
    async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()>;

    /// The distinct `(experiment, dataset name, digest, context)` used by runs of the given
    /// experiments (at most 20 ids; the host enforces it).
    async fn search_datasets(&self, experiment_ids: &[String]) -> Result<Vec<DatasetSummary>>;

    /// Appends a model's JSON to the run's `mlflow.log-model.history` tag (legacy `log-model`).
    /// `model_json` must already be validated by the caller.
    async fn record_logged_model(&self, run_id: &str, model_json: serde_json::Value) -> Result<()> {
        const KEY: &str = "mlflow.log-model.history";
        let run = self.get_run(run_id).await?;
        let mut history = match run.tag(KEY) {
            Some(s) => serde_json::from_str::<Vec<serde_json::Value>>(s).unwrap_or_default(),
            None => Vec::new(),
        };
        history.push(model_json);
        let value = serde_json::to_string(&history)
            .map_err(|e| Error::internal("could not encode the model history").with_source(e))?;
        self.set_tag(run_id, RunTag::new(KEY, value)).await
    }

    // ----- LoggedModels (capability `logged_models`) -----

    /// Creates a `LOGGED_MODEL_PENDING` model in an active experiment and returns it.
    async fn create_logged_model(&self, req: CreateLoggedModel) -> Result<LoggedModel> {
        let _ = req;
        Err(Error::unsupported("create_logged_model"))
    }

    /// The model; unknown, or deleted unless `allow_deleted`, is `NotFound`
    /// "Logged model with ID '{id}' not found.".
    async fn get_logged_model(&self, model_id: &str, allow_deleted: bool) -> Result<LoggedModel> {
        let _ = (model_id, allow_deleted);
        Err(Error::unsupported("get_logged_model"))
    }

    /// Sets the model's status (normally to READY) and returns it.
    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        let _ = (model_id, status);
        Err(Error::unsupported("finalize_logged_model"))
    }

    /// Soft-deletes the model; `NotFound` if unknown or already deleted.
    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        let _ = model_id;
        Err(Error::unsupported("delete_logged_model"))
    }

    /// Upserts tags on the model.
    async fn set_logged_model_tags(&self, model_id: &str, tags: Vec<LoggedModelTag>) -> Result<()> {
        let _ = (model_id, tags);
        Err(Error::unsupported("set_logged_model_tags"))
    }

    /// Deletes a tag; a missing tag is `NotFound`.
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        let _ = (model_id, key);
        Err(Error::unsupported("delete_logged_model_tag"))
    }

    /// Logs params on the model (same-value re-log is a no-op, a different value `InvalidArgument`).
    async fn log_logged_model_params(
        &self,
        model_id: &str,
        params: Vec<LoggedModelParameter>,
    ) -> Result<()> {
        let _ = (model_id, params);
        Err(Error::unsupported("log_logged_model_params"))
    }

    /// One page of non-deleted models of the given experiments that match the filter.
    async fn search_logged_models(&self, req: SearchLoggedModels) -> Result<Page<LoggedModel>> {
        let _ = req;
        Err(Error::unsupported("search_logged_models"))
    }
}
