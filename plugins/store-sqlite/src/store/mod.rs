//! [`SqliteStore`]: the [`TrackingStore`] on SQLite.
//!
//! Every public method checks what needs the database (MLflow's stateless validation is made
//! before, by [`cairn_plugin_api::Validated`], which the host puts in front of it), then
//! sends one closure to the writer thread (writes, one `BEGIN IMMEDIATE` transaction each) or a
//! reader thread (reads, one deferred transaction each, so a multi-query read sees one
//! snapshot) and awaits the result; see [`crate::pool`].
//!
//! This module opens the store and holds what every concern shares; the trait's methods are
//! implemented by concern in `experiments`, `runs`, `metrics`, `logged_models` and `search`.

use crate::config::SqliteSettings;
use crate::error::{StoreError, StoreResult, invalid, not_found};
use crate::pool::Pool;
use crate::schema::{self, FileState, Location};
use crate::search_sql::{self, SortVal, Sql, Target};
use cairn_plugin_api::entities::*;
use cairn_plugin_api::tracking::*;
use cairn_plugin_api::{Error, Result, names, validation};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, config::DbConfig,
    params,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod experiments;
mod import;
mod logged_models;
mod metrics;
mod runs;
mod search;
mod traces;
mod ui_reads;

use experiments::*;
use logged_models::*;
use metrics::*;
use runs::*;
pub(crate) use search::run_page_query;

/// The run tag that mirrors a run's name.
use cairn_plugin_api::validation::RUN_NAME_TAG;
/// The input tag that holds a dataset's context (`training`, `eval`, ...).
const CONTEXT_TAG: &str = "mlflow.data.context";
/// Most rows bound into one `IN (...)` list.
const IN_CHUNK: usize = 500;

/// `ids` as one JSON array for `json_each(?)`, each id once, in the order first given. A
/// statement that joins `json_each` probes an index once per id; an `IN (?, ...)` list is
/// first copied into a temporary b-tree.
fn id_list(ids: &[i64]) -> String {
    use std::fmt::Write as _;
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    let mut out = String::with_capacity(ids.len() * 8 + 2);
    out.push('[');
    for id in ids {
        if seen.insert(*id) {
            if out.len() > 1 {
                out.push(',');
            }
            let _ = write!(out, "{id}");
        }
    }
    out.push(']');
    out
}

/// The SQLite tracking store. Cheap to share behind an `Arc`; dropping the last handle closes
/// its connections once queued work is done.
pub struct SqliteStore {
    /// Shared with every other store of this process on the same file ([`OPEN_FILES`]).
    pool: Arc<Pool>,
    ctx: Arc<Ctx>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.ctx.location)
            .finish_non_exhaustive()
    }
}

/// Facts every job needs.
#[derive(Debug)]
pub(crate) struct Ctx {
    location: Location,
    default_artifact_root: String,
}

/// Opens (creating and initialising if needed) the store at `uri` with default settings.
/// `default_artifact_root` is the root under which new experiments keep their artifacts; `None`
/// means the absolute `file://` URI of `./mlruns`.
pub fn open(uri: &str, default_artifact_root: Option<&str>) -> Result<SqliteStore> {
    open_with_settings(uri, default_artifact_root, &SqliteSettings::default())
}

/// [`open`] with explicit settings.
pub fn open_with_settings(
    uri: &str,
    default_artifact_root: Option<&str>,
    settings: &SqliteSettings,
) -> Result<SqliteStore> {
    let location = schema::parse_uri(uri)?;
    let root = match default_artifact_root {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => default_mlruns_uri()?,
    };
    let ctx = Arc::new(Ctx {
        location,
        default_artifact_root: root,
    });
    let start = |writer, readers| -> StoreResult<Arc<Pool>> {
        // Experiment 0, `Default`, exists in every store.
        let mut writer = writer;
        ensure_default_experiment(&mut writer, &ctx)?;
        Ok(Arc::new(Pool::start(writer, readers)))
    };
    let pool = match &ctx.location {
        Location::Memory => {
            let mut conn = Connection::open_in_memory().map_err(StoreError::from)?;
            configure(&conn, settings).map_err(StoreError::from)?;
            schema::migrate(&mut conn, ":memory:")?;
            start(conn, Vec::new())?
        }
        Location::File(path) => {
            let key = file_key(path);
            let mut open = OPEN_FILES.lock().unwrap_or_else(|e| e.into_inner());
            open.retain(|_, pool| pool.strong_count() > 0);
            match open.get(&key).and_then(std::sync::Weak::upgrade) {
                Some(pool) => pool,
                None => {
                    let (writer, readers) = open_file(path, settings)?;
                    let pool = start(writer, readers)?;
                    open.insert(key, Arc::downgrade(&pool));
                    pool
                }
            }
        }
    };
    Ok(SqliteStore { pool, ctx })
}

/// The database files this process has open, by canonical path. A second store on a file
/// already open here — the model registry's and the auth app's stores are usually on the
/// tracking store's file — shares the first one's connections and threads instead of opening
/// its own. Besides sparing a second writer that would queue for the same write lock, this is
/// what keeps the database safe: POSIX releases *all* of a process's `fcntl` locks on a file
/// when the process closes *any* descriptor of it, and the second open's checks read the file
/// through a descriptor of their own. That dropped the shared lock that SQLite's open
/// connections hold on a WAL-mode database, so another process's `sqlite3` (a backup, a
/// curious user) took itself for the last connection on closing and deleted the WAL and
/// shared-memory files under the running server: its later commits went to an unlinked file,
/// invisible to everyone else and lost on restart, and its reads then failed.
static OPEN_FILES: std::sync::LazyLock<
    std::sync::Mutex<HashMap<std::path::PathBuf, std::sync::Weak<Pool>>>,
> = std::sync::LazyLock::new(Default::default);

/// The key of `path` in [`OPEN_FILES`]: its canonical form, or its directory's canonical form
/// joined with its name while the file does not exist yet (the path itself when neither
/// exists: opening it then fails with SQLite's own message).
fn file_key(path: &Path) -> std::path::PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(dir), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

fn default_mlruns_uri() -> Result<String> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::internal("cannot read the working directory").with_source(e))?;
    Ok(path_to_file_uri(&cwd.join("mlruns")))
}

/// `file://` URI of an absolute path.
fn path_to_file_uri(path: &Path) -> String {
    let s = path.to_string_lossy();
    let mut out = String::from("file://");
    if !s.starts_with('/') {
        out.push('/');
    }
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Per-connection settings.
fn configure(conn: &Connection, settings: &SqliteSettings) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_millis(settings.busy_timeout_ms))?;
    conn.set_prepared_statement_cache_capacity(settings.statement_cache_capacity);
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA case_sensitive_like = ON; PRAGMA temp_store = MEMORY;",
    )?;
    // Plans never depend on bound values. Without it SQLite marks a statement whose plan
    // looked at a bound value "compile again when rebound", and since the statement cache
    // clears the bindings of each statement it takes back, every search was compiled anew.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    register_regexp(conn)?;
    register_percentile(conn)
}

/// `percentile(value, p)`, p from 0 to 100: the aggregate behind `traces/metrics`'
/// `PERCENTILE`, interpolating linearly between the closest ranks (numpy's default,
/// PostgreSQL's `percentile_cont`, MLflow's own SQLite aggregate). `NULL` values are skipped;
/// no values give `NULL`. It holds one group's values while the group is aggregated.
fn register_percentile(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::{Aggregate, Context, FunctionFlags};
    struct Percentile;
    impl Aggregate<(Vec<f64>, f64), Option<f64>> for Percentile {
        fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<(Vec<f64>, f64)> {
            Ok((Vec::new(), 50.0))
        }
        fn step(&self, ctx: &mut Context<'_>, acc: &mut (Vec<f64>, f64)) -> rusqlite::Result<()> {
            if let Some(v) = ctx.get::<Option<f64>>(0)? {
                acc.0.push(v);
            }
            acc.1 = ctx.get::<f64>(1)?;
            Ok(())
        }
        fn finalize(
            &self,
            _: &mut Context<'_>,
            acc: Option<(Vec<f64>, f64)>,
        ) -> rusqlite::Result<Option<f64>> {
            let Some((mut values, p)) = acc else {
                return Ok(None);
            };
            Ok(cairn_plugin_api::search::metrics_sql::percentile(
                &mut values,
                p,
            ))
        }
    }
    conn.create_aggregate_function(
        "percentile",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        Percentile,
    )
}

/// Most compiled RLIKE patterns kept per statement (SQLite caches them as auxiliary data).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// `X REGEXP Y` is `regexp(Y, X)`: true when the text matches the pattern somewhere (Python's
/// `re.search`, what MLflow's RLIKE means); NULL text is NULL. The compiled pattern is kept
/// for the statement as SQLite auxiliary data; a bad pattern is an error naming it.
fn register_regexp(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let re: std::sync::Arc<regex::Regex> = ctx.get_or_create_aux(0, |v| {
                let pattern = v.as_str()?;
                regex::RegexBuilder::new(pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        rusqlite::Error::UserFunctionError(
                            format!("{}{pattern}': {e}", crate::error::REGEX_ERROR).into(),
                        )
                    })
            })?;
            let text = ctx.get_raw(1);
            Ok(match text {
                rusqlite::types::ValueRef::Null => None,
                rusqlite::types::ValueRef::Text(t) => {
                    Some(re.is_match(&String::from_utf8_lossy(t)))
                }
                other => {
                    let s: String = match other {
                        rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                        rusqlite::types::ValueRef::Real(r) => r.to_string(),
                        _ => String::new(),
                    };
                    Some(re.is_match(&s))
                }
            })
        },
    )
}

fn open_file(path: &Path, settings: &SqliteSettings) -> StoreResult<(Connection, Vec<Connection>)> {
    // Decide before anything writes: a file that is not Cairn's is never touched.
    let state = schema::inspect_file(path)?;
    let what = path.display().to_string();
    let mut writer = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| invalid(format!("cannot open the SQLite database '{what}': {e}")))?;
    configure(&writer, settings)?;
    if state == FileState::New || state == FileState::Cairn {
        schema::migrate(&mut writer, &what)?;
    }
    let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(invalid(format!(
            "cannot put '{what}' in WAL mode (journal mode stays {mode})"
        )));
    }
    // WAL + NORMAL (the default): commits do not fsync; the database stays consistent after a
    // crash, and a power loss may lose the last commits. FULL fsyncs every commit.
    // The readers keep SQLite's default cache (2 MB each): 16 MB each was tried, for at most a
    // few percent on trace reads against 11 MiB more RSS (docs/PERFORMANCE.md).
    writer.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA cache_size = -16000;",
        settings.synchronous.pragma()
    ))?;
    let mut readers = Vec::new();
    for _ in 0..settings.readers {
        let r = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&r, settings)?;
        readers.push(r);
    }
    Ok((writer, readers))
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

/// An experiment id of this store, or the "Default" experiment for an empty string.
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

// ----- the trait -----

impl SqliteStore {
    /// Runs `f` in one write transaction on the writer thread; any error rolls it back.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &Ctx) -> StoreResult<T> + Send + 'static,
    {
        let ctx = self.ctx.clone();
        Ok(self
            .pool
            .write(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let out = f(&tx, &ctx)?;
                tx.commit()?;
                Ok(out)
            })
            .await?)
    }

    /// Runs `f` in one read transaction (one snapshot) on a reader thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        Ok(self
            .pool
            .read(move |conn| {
                let tx = conn.transaction()?;
                f(&tx)
            })
            .await?)
    }
}

#[cairn_plugin_api::async_trait]
impl TrackingStore for SqliteStore {
    fn importer(&self) -> Option<&dyn cairn_plugin_api::import::TrackingImport> {
        Some(self)
    }

    fn capabilities(&self) -> TrackingCapabilities {
        TrackingCapabilities::ALL
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

    async fn run_keys(&self, req: RunKeysRequest) -> Result<RunKeys> {
        self.read(move |tx| ui_reads::run_keys_sync(tx, &req)).await
    }

    async fn get_metric_history_downsampled(
        &self,
        req: DownsampleRequest,
    ) -> Result<Vec<MetricWithRunId>> {
        self.read(move |tx| ui_reads::downsampled_sync(tx, &req))
            .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_joined_like_mlflow() {
        assert_eq!(
            cairn_plugin_api::paths::append_uri_path("file:///tmp/mlruns", &["1"]),
            "file:///tmp/mlruns/1"
        );
        assert_eq!(
            cairn_plugin_api::paths::append_uri_path("s3://b/p/", &["1", "artifacts"]),
            "s3://b/p/1/artifacts"
        );
        assert_eq!(
            path_to_file_uri(Path::new("/a b/mlruns")),
            "file:///a%20b/mlruns"
        );
    }

    #[test]
    fn synchronous_setting_reaches_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("sqlite:///{}", dir.path().join("s.db").display());
        for (setting, expected) in [
            (crate::config::Synchronous::Normal, 1),
            (crate::config::Synchronous::Full, 2),
        ] {
            let settings = SqliteSettings {
                synchronous: setting,
                ..SqliteSettings::default()
            };
            let store = open_with_settings(&uri, Some("file:///a"), &settings).unwrap();
            let level: i64 = futures_executor::block_on(
                store
                    .pool
                    .write(|c| Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0))?)),
            )
            .unwrap();
            assert_eq!(level, expected, "{setting:?}");
        }
    }
}
