//! [`PostgresStore`]: the [`TrackingStore`] (and, in `crate::registry`, the
//! `ModelRegistryStore`) on PostgreSQL.
//!
//! Every public method sends one job to the store's own tokio runtime, where it takes a pooled
//! connection and runs one transaction: writes in READ COMMITTED, locking the rows they build
//! on (the run, the registered model, ...) with `FOR UPDATE` so that concurrent writers from any
//! number of processes serialise on them; reads in one REPEATABLE READ, READ ONLY transaction,
//! so a multi-query read sees one snapshot. The result comes back through a oneshot, so any
//! executor may await the store. The concerns mirror the SQLite store's modules.

use crate::config::PostgresSettings;
pub(crate) use crate::db::Transaction;
use crate::error::{StoreError, StoreResult, invalid, not_found};
use crate::schema;
use crate::stats::Statistics;
use cairn_plugin_api::entities::*;
use cairn_plugin_api::search::sql::{self as search_sql, Dialect, SortVal, Sql, SqlParam, Target};
use cairn_plugin_api::tracking::*;
use cairn_plugin_api::{Error, ErrorKind, Result, names, validation};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

mod experiments;
mod import;
mod logged_models;
mod metrics;
mod runs;
pub(crate) mod search;
mod traces;

use experiments::*;
use logged_models::*;
use metrics::*;
use runs::*;
pub(crate) use search::run_page_query;

use cairn_plugin_api::validation::RUN_NAME_TAG;
/// The input tag that holds a dataset's context (`training`, `eval`, ...).
const CONTEXT_TAG: &str = "mlflow.data.context";
/// Most rows bound into one `IN (...)` list.
const IN_CHUNK: usize = 500;
/// The advisory lock that serialises experiment creation (ids are `max + 1`, as MLflow).
const EXPERIMENT_LOCK: i64 = 0x4361_6973;

/// A boxed future borrowing a transaction.
pub(crate) type Fut<'a, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'a>>;

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PostgresStore {
    pool: deadpool_postgres::Pool,
    ctx: Arc<Ctx>,
    stats: Arc<Statistics>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.ctx.what)
            .finish_non_exhaustive()
    }
}

/// Facts every job needs.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// `host:port/database`, for messages (never the password).
    pub(crate) what: String,
    pub(crate) default_artifact_root: String,
}

/// The store's runtime, built on first use and shared by every store of the process.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    let built = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
                    .clamp(2, 8),
            )
            .thread_name("cairn-postgres")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    built.as_ref().map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!("the PostgreSQL store could not start its runtime: {e}"),
        )
    })
}

/// Runs `fut` on the store's runtime; any executor may await the result.
async fn run<T: Send + 'static>(
    fut: impl Future<Output = StoreResult<T>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = futures_channel::oneshot::channel();
    runtime()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    Ok(rx.await.map_err(|_| {
        Error::internal("a PostgreSQL store task ended without a result (it panicked)")
    })??)
}

/// Runs `fut` on the store's runtime and blocks the calling thread until it ends (start-up
/// only; safe inside another runtime, which a nested `block_on` is not).
fn run_blocking<T: Send + 'static>(
    fut: impl Future<Output = StoreResult<T>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    runtime()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    Ok(rx
        .recv()
        .map_err(|_| Error::internal("the PostgreSQL store's start-up task panicked"))??)
}

/// Opens the store at `uri` with default settings.
pub fn open(uri: &str, default_artifact_root: Option<&str>) -> Result<PostgresStore> {
    open_with_settings(uri, default_artifact_root, &PostgresSettings::default())
}

/// Opens (initialising or migrating the schema if needed) the store at `uri`.
pub fn open_with_settings(
    uri: &str,
    default_artifact_root: Option<&str>,
    settings: &PostgresSettings,
) -> Result<PostgresStore> {
    let (mut config, tls) = schema::parse_uri_tls(uri)?;
    let tls = crate::tls::connector(&tls).map_err(Error::invalid)?;
    config.connect_timeout(Duration::from_millis(settings.connect_timeout_ms.max(1)));
    // Session settings, after any `options` the URI gives. The store's own statements are
    // fixed texts written for their indexes, prepared once per connection: they are planned
    // once, generically, instead of for each call's values until PostgreSQL's plan cache
    // decides (five custom plans, again after every ANALYZE), which on small, freshly analysed
    // tables chose sequential scans for the `= ANY($1)` loads of a page and cost a search a
    // third more database CPU. The search translation's statements are still planned for
    // their values (`Transaction::query_sql`).
    let mut options = config.get_options().unwrap_or_default().to_string();
    let mut set = |setting: String| {
        if !options.is_empty() {
            options.push(' ');
        }
        options.push_str("-c ");
        options.push_str(&setting);
    };
    set("plan_cache_mode=force_generic_plan".to_string());
    if settings.statement_timeout_ms > 0 {
        set(format!(
            "statement_timeout={}",
            settings.statement_timeout_ms
        ));
    }
    config.options(options);
    if config.get_application_name().is_none() {
        config.application_name("cairn");
    }
    let what = format!(
        "{}/{}",
        config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_default(),
        config.get_dbname().unwrap_or_default()
    );
    let root = match default_artifact_root {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => default_mlruns_uri()?,
    };
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(settings.pool_size.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_millis(settings.wait_timeout_ms)))
        .create_timeout(Some(Duration::from_millis(
            settings.connect_timeout_ms.max(1),
        )))
        .recycle_timeout(Some(Duration::from_millis(
            settings.connect_timeout_ms.max(1),
        )))
        .build()
        .map_err(|e| Error::invalid(format!("cannot build the PostgreSQL pool: {e}")))?;
    let ctx = Arc::new(Ctx {
        what,
        default_artifact_root: root,
    });
    {
        let (pool, ctx) = (pool.clone(), ctx.clone());
        run_blocking(async move {
            let mut client = pool.get().await.map_err(|e| {
                invalid(format!(
                    "cannot connect to the PostgreSQL database '{}': {}",
                    ctx.what,
                    chain(&e)
                ))
            })?;
            let tx = Transaction::new(client.transaction().await?);
            schema::migrate(&tx, &ctx.what).await?;
            ensure_default_experiment(&tx, &ctx).await?;
            tx.commit().await?;
            Ok(())
        })?;
    }
    Ok(PostgresStore {
        pool,
        ctx,
        stats: Arc::default(),
    })
}

/// An error and its causes, `: `-joined.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cause = c.source();
    }
    text
}

fn default_mlruns_uri() -> Result<String> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::internal("cannot read the working directory").with_source(e))?;
    let s = cwd.join("mlruns").to_string_lossy().into_owned();
    let mut out = String::from("file://");
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn stage(s: &str) -> StoreResult<LifecycleStage> {
    match s {
        "active" => Ok(LifecycleStage::Active),
        "deleted" => Ok(LifecycleStage::Deleted),
        other => Err(StoreError::Corrupt(format!("lifecycle stage {other:?}"))),
    }
}

fn stages(view: ViewType) -> Vec<String> {
    let s: &[&str] = match view {
        ViewType::ActiveOnly => &["active"],
        ViewType::DeletedOnly => &["deleted"],
        ViewType::All => &["active", "deleted"],
    };
    s.iter().map(|s| s.to_string()).collect()
}

fn experiment_id(id: &str) -> StoreResult<i64> {
    if id.is_empty() {
        return Ok(0);
    }
    Ok(validation::parse_integer_experiment_id(id)?)
}

fn no_experiment(id: impl std::fmt::Display) -> StoreError {
    not_found(format!("No Experiment with id={id} exists"))
}

fn no_run(id: &str) -> StoreError {
    not_found(format!("Run with id={id} not found"))
}

fn no_model(id: &str) -> StoreError {
    not_found(format!("Logged model with ID '{id}' not found."))
}

fn none_if_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

/// A new statement in the PostgreSQL dialect.
pub(crate) fn sql() -> Sql {
    Sql::new(Dialect::Postgres)
}

/// The bound values of `sql`, owned.
pub(crate) fn owned_params(sql: &Sql) -> Vec<Box<dyn ToSql + Sync + Send>> {
    sql.params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                SqlParam::Null => Box::new(Option::<String>::None),
                SqlParam::Int(v) => Box::new(*v),
                SqlParam::Real(v) => Box::new(*v),
                SqlParam::Text(v) => Box::new(v.clone()),
            }
        })
        .collect()
}

/// Runs the query `sql` (built per request by the search translation) in `tx`, uncached.
pub(crate) async fn query(tx: &Transaction<'_>, sql: &Sql) -> StoreResult<Vec<Row>> {
    Ok(tx.query_sql(sql).await?)
}

/// The value in column `i` of `row`, as a sort key.
pub(crate) fn sort_val(row: &Row, i: usize) -> StoreResult<SortVal> {
    let t = row.columns()[i].type_().clone();
    Ok(if t == Type::INT8 {
        row.try_get::<_, Option<i64>>(i)?
            .map_or(SortVal::N, SortVal::I)
    } else if t == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)?
            .map_or(SortVal::N, |v| SortVal::I(v.into()))
    } else if t == Type::FLOAT8 {
        row.try_get::<_, Option<f64>>(i)?
            .map_or(SortVal::N, |v| SortVal::R(v.to_bits()))
    } else {
        row.try_get::<_, Option<String>>(i)?
            .map_or(SortVal::N, SortVal::S)
    })
}

// ----- the trait -----

impl PostgresStore {
    /// Runs `f` in one READ COMMITTED write transaction; any error rolls it back. A committed
    /// write is counted by the planner-statistics watcher (`crate::stats`).
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Transaction<'a>, &'a Ctx) -> Fut<'a, T> + Send + 'static,
    {
        let (pool, ctx, stats) = (self.pool.clone(), self.ctx.clone(), self.stats.clone());
        run(async move {
            let mut client = pool.get().await?;
            let tx = Transaction::new(client.transaction().await?);
            let out = f(&tx, &ctx).await?;
            tx.commit().await?;
            drop(client);
            stats.wrote(&pool);
            Ok(out)
        })
        .await
    }

    /// Runs `f` in one REPEATABLE READ, READ ONLY transaction (one snapshot).
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Transaction<'a>) -> Fut<'a, T> + Send + 'static,
    {
        let pool = self.pool.clone();
        run(async move {
            let mut client = pool.get().await?;
            let tx = Transaction::new(
                client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await?,
            );
            let out = f(&tx).await?;
            // A read-only transaction has nothing to commit: dropping it sends ROLLBACK
            // without waiting for the answer (the connection runs it before its next user's
            // statements), which saves a round trip per read.
            drop(tx);
            Ok(out)
        })
        .await
    }
}

#[cairn_plugin_api::async_trait]
impl TrackingStore for PostgresStore {
    fn capabilities(&self) -> TrackingCapabilities {
        TrackingCapabilities::ALL
    }

    fn importer(&self) -> Option<&dyn cairn_plugin_api::import::TrackingImport> {
        Some(self)
    }

    fn trace_store(&self) -> Option<&dyn cairn_plugin_api::TraceStore> {
        Some(self)
    }

    async fn create_experiment(&self, req: CreateExperiment) -> Result<String> {
        experiments::create_experiment(self, req).await
    }

    async fn get_experiment(&self, experiment_id_text: &str) -> Result<Experiment> {
        experiments::get_experiment(self, experiment_id_text).await
    }

    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        experiments::get_experiment_by_name(self, name).await
    }

    async fn delete_experiment(&self, experiment_id_text: &str) -> Result<()> {
        experiments::delete_experiment(self, experiment_id_text).await
    }

    async fn restore_experiment(&self, experiment_id_text: &str) -> Result<()> {
        experiments::restore_experiment(self, experiment_id_text).await
    }

    async fn rename_experiment(&self, experiment_id_text: &str, new_name: &str) -> Result<()> {
        experiments::rename_experiment(self, experiment_id_text, new_name).await
    }

    async fn set_experiment_tag(&self, experiment_id_text: &str, tag: ExperimentTag) -> Result<()> {
        experiments::set_experiment_tag(self, experiment_id_text, tag).await
    }

    async fn delete_experiment_tag(&self, experiment_id_text: &str, key: &str) -> Result<()> {
        experiments::delete_experiment_tag(self, experiment_id_text, key).await
    }

    async fn search_experiments(&self, req: SearchExperiments) -> Result<Page<Experiment>> {
        search::search_experiments(self, req).await
    }

    async fn create_run(&self, req: CreateRun) -> Result<Run> {
        runs::create_run(self, req).await
    }

    async fn get_run(&self, run_id: &str) -> Result<Run> {
        runs::get_run(self, run_id).await
    }

    async fn update_run_info(&self, run_id: &str, update: UpdateRun) -> Result<RunInfo> {
        runs::update_run_info(self, run_id, update).await
    }

    async fn delete_run(&self, run_id: &str) -> Result<()> {
        runs::delete_run(self, run_id).await
    }

    async fn restore_run(&self, run_id: &str) -> Result<()> {
        runs::restore_run(self, run_id).await
    }

    async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<RunTag>,
    ) -> Result<()> {
        metrics::log_batch(self, run_id, metrics, params, tags).await
    }

    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        runs::delete_tag(self, run_id, key).await
    }

    async fn get_metric_history(
        &self,
        run_id: &str,
        metric_key: &str,
        max_results: usize,
        page_token: Option<String>,
    ) -> Result<Page<Metric>> {
        metrics::get_metric_history(self, run_id, metric_key, max_results, page_token).await
    }

    async fn get_metric_history_bulk_interval(
        &self,
        req: BulkIntervalRequest,
    ) -> Result<Vec<MetricWithRunId>> {
        metrics::get_metric_history_bulk_interval(self, req).await
    }

    async fn search_runs(&self, req: SearchRuns) -> Result<Page<Run>> {
        search::search_runs(self, req).await
    }

    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        runs::log_inputs(self, run_id, datasets, models).await
    }

    async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()> {
        runs::log_outputs(self, run_id, models).await
    }

    async fn search_datasets(&self, experiment_ids: &[String]) -> Result<Vec<DatasetSummary>> {
        search::search_datasets(self, experiment_ids).await
    }

    async fn create_logged_model(&self, req: CreateLoggedModel) -> Result<LoggedModel> {
        logged_models::create_logged_model(self, req).await
    }

    async fn get_logged_model(&self, model_id: &str, allow_deleted: bool) -> Result<LoggedModel> {
        logged_models::get_logged_model(self, model_id, allow_deleted).await
    }

    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        logged_models::finalize_logged_model(self, model_id, status).await
    }

    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        logged_models::delete_logged_model(self, model_id).await
    }

    async fn set_logged_model_tags(&self, model_id: &str, tags: Vec<LoggedModelTag>) -> Result<()> {
        logged_models::set_logged_model_tags(self, model_id, tags).await
    }

    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        logged_models::delete_logged_model_tag(self, model_id, key).await
    }

    async fn log_logged_model_params(
        &self,
        model_id: &str,
        params: Vec<LoggedModelParameter>,
    ) -> Result<()> {
        logged_models::log_logged_model_params(self, model_id, params).await
    }

    async fn search_logged_models(&self, req: SearchLoggedModels) -> Result<Page<LoggedModel>> {
        search::search_logged_models(self, req).await
    }
}
