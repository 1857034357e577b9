//! [`SqliteStore`]: the [`TrackingStore`] on SQLite.
//!
//! Every public method validates its arguments (through `cairn_plugin_api::validation`), then
//! sends one closure to the writer thread (writes, one `BEGIN IMMEDIATE` transaction each) or a
//! reader thread (reads, one deferred transaction each, so a multi-query read sees one
//! snapshot) and awaits the result; see [`crate::pool`].

use crate::config::SqliteSettings;
use crate::error::{StoreError, StoreResult, invalid, not_found};
use crate::pool::Pool;
use crate::schema::{self, FileState, Location};
use crate::search_sql::{self, SortVal, Sql, Target};
use cairn_plugin_api::entities::*;
use cairn_plugin_api::tracking::*;
use cairn_plugin_api::{Error, Result, names, validation};
use rusqlite::types::Value as SqlValue;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The run tag that mirrors a run's name.
use cairn_plugin_api::validation::RUN_NAME_TAG;
/// The input tag that holds a dataset's context (`training`, `eval`, ...).
const CONTEXT_TAG: &str = "mlflow.data.context";
/// Most rows bound into one `IN (...)` list.
const IN_CHUNK: usize = 500;
/// Most dataset summaries `search_datasets` returns (MLflow's limit).
const MAX_DATASET_SUMMARIES: i64 = 1000;
/// Most runs of one `get_metric_history_bulk_interval` request.
const MAX_BULK_RUNS: usize = 100;
/// Most sampled steps of one `get_metric_history_bulk_interval` request.
const MAX_BULK_RESULTS: usize = 2500;

/// The SQLite tracking store. Cheap to share behind an `Arc`; dropping the last handle closes
/// its connections once queued work is done.
pub struct SqliteStore {
    pool: Pool,
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
    let (writer, readers) = match &location {
        Location::Memory => {
            let mut conn = Connection::open_in_memory().map_err(StoreError::from)?;
            configure(&conn, settings).map_err(StoreError::from)?;
            schema::migrate(&mut conn, ":memory:")?;
            (conn, Vec::new())
        }
        Location::File(path) => open_file(path, settings)?,
    };
    let ctx = Arc::new(Ctx {
        location,
        default_artifact_root: root,
    });
    // Experiment 0, `Default`, exists in every store.
    let mut writer = writer;
    ensure_default_experiment(&mut writer, &ctx)?;
    Ok(SqliteStore {
        pool: Pool::start(writer, readers),
        ctx,
    })
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
    Ok(())
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
    // WAL + NORMAL: commits do not fsync; the database stays consistent after a crash, and a
    // power loss may lose the last commits.
    writer.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -16000;")?;
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

fn ensure_default_experiment(conn: &mut Connection, ctx: &Ctx) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let exists: bool = tx
        .query_row(
            "SELECT 1 FROM experiments WHERE experiment_id = 0",
            [],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    if !exists {
        let now = now_ms();
        tx.execute(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, \
             creation_time, last_update_time) VALUES (0, 'Default', ?1, 'active', ?2, ?2)",
            params![
                cairn_plugin_api::paths::append_uri_path(&ctx.default_artifact_root, &["0"]),
                now
            ],
        )?;
    }
    tx.commit()?;
    Ok(())
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

/// Stored value and NaN flag of a metric value for the search tables (NaN is `NULL`).
fn search_value(v: f64) -> (Option<f64>, bool) {
    if v.is_nan() {
        (None, true)
    } else {
        (Some(v), false)
    }
}

/// The value a `(step, timestamp, value)` comparison uses: NaN counts as 0, as in MLflow.
fn cmp_value(v: f64) -> f64 {
    if v.is_nan() { 0.0 } else { v }
}

fn metric_value(value: Option<f64>, is_nan: bool) -> f64 {
    if is_nan {
        f64::NAN
    } else {
        value.unwrap_or(f64::NAN)
    }
}

fn none_if_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

// ----- experiments -----

fn load_experiment(conn: &Connection, id: i64) -> StoreResult<Option<Experiment>> {
    let row = conn
        .prepare_cached(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, \
             last_update_time FROM experiments WHERE experiment_id = ?1",
        )?
        .query_row([id], experiment_row)
        .optional()?;
    let Some((exp, stage_text)) = row else {
        return Ok(None);
    };
    let mut exp = exp;
    exp.lifecycle_stage = stage(&stage_text)?;
    exp.tags = experiment_tags(conn, &[id])?
        .remove(&id)
        .unwrap_or_default();
    Ok(Some(exp))
}

fn experiment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Experiment, String)> {
    Ok((
        Experiment {
            experiment_id: r.get::<_, i64>(0)?.to_string(),
            name: r.get(1)?,
            artifact_location: r.get(2)?,
            lifecycle_stage: LifecycleStage::Active,
            creation_time: r.get(4)?,
            last_update_time: r.get(5)?,
            tags: Vec::new(),
        },
        r.get(3)?,
    ))
}

fn experiment_tags(
    conn: &Connection,
    ids: &[i64],
) -> StoreResult<HashMap<i64, Vec<ExperimentTag>>> {
    let mut out: HashMap<i64, Vec<ExperimentTag>> = HashMap::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let mut sql = Sql::default();
        let list = sql.bind_list(chunk);
        let mut stmt = conn.prepare(&format!(
            "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN {list} \
             ORDER BY experiment_id, key"
        ))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(sql.params), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                ExperimentTag::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?),
            ))
        })?;
        for row in rows {
            let (id, tag) = row?;
            out.entry(id).or_default().push(tag);
        }
    }
    Ok(out)
}

fn require_experiment(conn: &Connection, id: i64) -> StoreResult<Experiment> {
    load_experiment(conn, id)?.ok_or_else(|| no_experiment(id))
}

fn require_active_experiment(conn: &Connection, id: i64) -> StoreResult<Experiment> {
    let exp = require_experiment(conn, id)?;
    if exp.lifecycle_stage != LifecycleStage::Active {
        return Err(invalid(format!(
            "The experiment {id} must be in the 'active' state. Current state is deleted."
        )));
    }
    Ok(exp)
}

fn upsert_experiment_tag(tx: &Connection, id: i64, tag: &ExperimentTag) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![id, tag.key, tag.value])?;
    Ok(())
}

// ----- runs -----

/// The facts about a run that writes check.
struct RunRef {
    id: i64,
    run_uuid: String,
    experiment_id: i64,
    stage: LifecycleStage,
}

fn find_run(conn: &Connection, run_uuid: &str) -> StoreResult<Option<RunRef>> {
    let row = conn
        .prepare_cached("SELECT id, experiment_id, lifecycle_stage FROM runs WHERE run_uuid = ?1")?
        .query_row([run_uuid], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((id, experiment_id, s)) => Ok(Some(RunRef {
            id,
            run_uuid: run_uuid.to_string(),
            experiment_id,
            stage: stage(&s)?,
        })),
    }
}

fn require_run(conn: &Connection, run_uuid: &str) -> StoreResult<RunRef> {
    find_run(conn, run_uuid)?.ok_or_else(|| no_run(run_uuid))
}

fn require_active_run(conn: &Connection, run_uuid: &str) -> StoreResult<RunRef> {
    let run = require_run(conn, run_uuid)?;
    if run.stage != LifecycleStage::Active {
        return Err(invalid(format!(
            "The run {run_uuid} must be in the 'active' state. Current state is deleted."
        )));
    }
    Ok(run)
}

const RUN_COLUMNS: &str = "id, run_uuid, experiment_id, name, user_id, status, start_time, \
                           end_time, artifact_uri, lifecycle_stage";

fn run_info_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, RunInfo, String, String)> {
    Ok((
        r.get(0)?,
        RunInfo {
            run_id: r.get(1)?,
            run_name: r.get(3)?,
            experiment_id: r.get::<_, i64>(2)?.to_string(),
            user_id: r.get(4)?,
            status: RunStatus::Running,
            start_time: r.get(6)?,
            end_time: r.get(7)?,
            artifact_uri: r.get(8)?,
            lifecycle_stage: LifecycleStage::Active,
        },
        r.get(5)?,
        r.get(9)?,
    ))
}

fn finish_run_info(info: &mut RunInfo, status: &str, stage_text: &str) -> StoreResult<()> {
    info.status = RunStatus::from_name(status)
        .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?;
    info.lifecycle_stage = stage(stage_text)?;
    Ok(())
}

fn load_run_info(conn: &Connection, id: i64) -> StoreResult<RunInfo> {
    let (_, mut info, status, st) = conn
        .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
        .query_row([id], run_info_row)?;
    finish_run_info(&mut info, &status, &st)?;
    Ok(info)
}

/// Runs with everything they logged, in the order of `ids` (ids that do not exist are skipped).
fn load_runs(conn: &Connection, ids: &[i64]) -> StoreResult<Vec<Run>> {
    let mut runs: HashMap<i64, Run> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let mut sql = Sql::default();
        let list = sql.bind_list(chunk);
        let p = || rusqlite::params_from_iter(sql.params.iter());
        {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE id IN {list}"
            ))?;
            let rows = stmt.query_map(p(), run_info_row)?;
            for row in rows {
                let (id, mut info, status, st) = row?;
                finish_run_info(&mut info, &status, &st)?;
                runs.insert(
                    id,
                    Run {
                        info,
                        data: RunData::default(),
                        inputs: RunInputs::default(),
                        outputs: RunOutputs::default(),
                    },
                );
            }
        }
        {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT run, key, value FROM params WHERE run IN {list} ORDER BY run, key"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (id, k, v) = row?;
                if let Some(run) = runs.get_mut(&id) {
                    run.data.params.push(Param::new(k, v));
                }
            }
        }
        {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT run, key, value FROM tags WHERE run IN {list} ORDER BY run, key"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (id, k, v) = row?;
                if let Some(run) = runs.get_mut(&id) {
                    run.data.tags.push(RunTag::new(k, v));
                }
            }
        }
        {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT run, key, value, is_nan, timestamp, step FROM latest_metrics \
                 WHERE run IN {list} ORDER BY run, key"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Metric::new(
                        r.get::<_, String>(1)?,
                        metric_value(r.get(2)?, r.get(3)?),
                        r.get(4)?,
                        r.get(5)?,
                    ),
                ))
            })?;
            for row in rows {
                let (id, m) = row?;
                if let Some(run) = runs.get_mut(&id) {
                    run.data.metrics.push(m);
                }
            }
        }
        {
            // Dataset inputs in first-logged order, with their tags.
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT i.run, i.id, d.name, d.digest, d.source_type, d.source, d.schema, d.profile \
                 FROM inputs i JOIN datasets d ON d.id = i.dataset WHERE i.run IN {list} ORDER BY i.id"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    Dataset {
                        name: r.get(2)?,
                        digest: r.get(3)?,
                        source_type: r.get(4)?,
                        source: r.get(5)?,
                        schema: r.get(6)?,
                        profile: r.get(7)?,
                    },
                ))
            })?;
            let mut inputs: Vec<(i64, i64, Dataset)> = Vec::new();
            for row in rows {
                inputs.push(row?);
            }
            let input_ids: Vec<i64> = inputs.iter().map(|(_, id, _)| *id).collect();
            let mut tags = input_tags(conn, &input_ids)?;
            for (run_id, input_id, dataset) in inputs {
                if let Some(run) = runs.get_mut(&run_id) {
                    run.inputs.dataset_inputs.push(DatasetInput {
                        tags: tags.remove(&input_id).unwrap_or_default(),
                        dataset,
                    });
                }
            }
        }
        {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT run, model_id FROM model_inputs WHERE run IN {list} ORDER BY id"
            ))?;
            let rows =
                stmt.query_map(p(), |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (id, model_id) = row?;
                if let Some(run) = runs.get_mut(&id) {
                    run.inputs.model_inputs.push(ModelInput { model_id });
                }
            }
        }
        {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT run, model_id, step FROM model_outputs WHERE run IN {list} ORDER BY id"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (id, model_id, step) = row?;
                if let Some(run) = runs.get_mut(&id) {
                    run.outputs
                        .model_outputs
                        .push(ModelOutput { model_id, step });
                }
            }
        }
    }
    Ok(ids.iter().filter_map(|id| runs.remove(id)).collect())
}

fn input_tags(conn: &Connection, input_ids: &[i64]) -> StoreResult<HashMap<i64, Vec<InputTag>>> {
    let mut out: HashMap<i64, Vec<InputTag>> = HashMap::new();
    for chunk in input_ids.chunks(IN_CHUNK) {
        let mut sql = Sql::default();
        let list = sql.bind_list(chunk);
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT input, key, value FROM input_tags WHERE input IN {list} ORDER BY input, key"
        ))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(sql.params), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                InputTag::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?),
            ))
        })?;
        for row in rows {
            let (id, tag) = row?;
            out.entry(id).or_default().push(tag);
        }
    }
    Ok(out)
}

fn load_run(conn: &Connection, run_uuid: &str) -> StoreResult<Run> {
    let run = require_run(conn, run_uuid)?;
    load_runs(conn, &[run.id])?
        .pop()
        .ok_or_else(|| no_run(run_uuid))
}

fn upsert_run_tag(tx: &Connection, run: i64, key: &str, value: &str) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO tags (run, key, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (run, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![run, key, value])?;
    if key == RUN_NAME_TAG {
        tx.prepare_cached("UPDATE runs SET name = ?2 WHERE id = ?1")?
            .execute(params![run, value])?;
    }
    Ok(())
}

fn set_run_lifecycle(
    tx: &Connection,
    where_clause: &str,
    id: i64,
    deleted: bool,
) -> StoreResult<usize> {
    let sql = if deleted {
        format!(
            "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ?2 WHERE {where_clause}"
        )
    } else {
        format!(
            "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE {where_clause} AND ?2 = ?2"
        )
    };
    Ok(tx.execute(&sql, params![id, now_ms()])?)
}

/// Rows per multi-row `INSERT` into `metrics` (8 parameters each).
const METRIC_INSERT_ROWS: usize = 100;

/// `INSERT OR IGNORE INTO metrics ... VALUES (...), (...)` for `rows` rows.
fn metric_insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR IGNORE INTO metrics (series, timestamp, step, value, is_nan, dataset_name, \
         dataset_digest, model_id) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        let b = r * 8;
        sql.push('(');
        for c in 1..=8 {
            if c > 1 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("?{}", b + c));
        }
        sql.push(')');
    }
    sql
}

/// The best `(step, timestamp, value)` per key of a batch, for `latest_metrics`.
fn latest_per_key<'a, K: Eq + std::hash::Hash>(
    metrics: impl Iterator<Item = (K, &'a Metric)>,
) -> Vec<&'a Metric> {
    let mut best: HashMap<K, &Metric> = HashMap::new();
    let mut order: Vec<&Metric> = Vec::new();
    for (k, m) in metrics {
        match best.get_mut(&k) {
            None => {
                best.insert(k, m);
            }
            Some(cur) => {
                if is_later(m, cur) {
                    *cur = m;
                }
            }
        }
    }
    order.extend(best.into_values());
    order
}

/// Whether `a` replaces `b` as the latest value: `(step, timestamp, value)` strictly greater,
/// NaN counting as 0.
fn is_later(a: &Metric, b: &Metric) -> bool {
    (a.step, a.timestamp)
        .cmp(&(b.step, b.timestamp))
        .then_with(|| {
            cmp_value(a.value)
                .partial_cmp(&cmp_value(b.value))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .is_gt()
}

fn write_log_batch(
    tx: &Transaction<'_>,
    run: &RunRef,
    metrics: &[Metric],
    params: &[Param],
    tags: &[RunTag],
) -> StoreResult<()> {
    // Params first (MLflow's order), refusing a changed value.
    if !params.is_empty() {
        let mut get = tx.prepare_cached("SELECT value FROM params WHERE run = ?1 AND key = ?2")?;
        let mut put =
            tx.prepare_cached("INSERT INTO params (run, key, value) VALUES (?1, ?2, ?3)")?;
        for p in params {
            let existing: Option<String> = get
                .query_row(params![run.id, p.key], |r| r.get(0))
                .optional()?;
            match existing {
                Some(old) if old == p.value => {}
                Some(old) => {
                    return Err(invalid(format!(
                        "Changing param values is not allowed. Param with key='{}' was already \
                         logged with value='{}' for run ID='{}'. Attempted logging new value '{}'.",
                        p.key, old, run.run_uuid, p.value
                    )));
                }
                None => {
                    put.execute(params![run.id, p.key, p.value])?;
                }
            }
        }
    }
    if !metrics.is_empty() {
        // Latest values first: the upsert also creates each key's series row, whose id the
        // history rows carry.
        let mut latest = tx.prepare_cached(
            "INSERT INTO latest_metrics (run, key, value, is_nan, timestamp, step) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (run, key) DO UPDATE SET value = excluded.value, \
             is_nan = excluded.is_nan, timestamp = excluded.timestamp, step = excluded.step \
             WHERE (excluded.step, excluded.timestamp, coalesce(excluded.value, 0)) > \
             (latest_metrics.step, latest_metrics.timestamp, coalesce(latest_metrics.value, 0))",
        )?;
        let mut series_of =
            tx.prepare_cached("SELECT id FROM latest_metrics WHERE run = ?1 AND key = ?2")?;
        let mut series: HashMap<&str, i64> = HashMap::new();
        for m in latest_per_key(metrics.iter().map(|m| (m.key.as_str(), m))) {
            let (v, nan) = search_value(m.value);
            latest.execute(params![run.id, m.key, v, nan, m.timestamp, m.step])?;
            let id: i64 = series_of.query_row(params![run.id, m.key], |r| r.get(0))?;
            series.insert(m.key.as_str(), id);
        }
        // Inserting in primary-key order keeps the b-tree writes local.
        let mut sorted: Vec<(i64, &Metric)> = metrics
            .iter()
            .map(|m| (series.get(m.key.as_str()).copied().unwrap_or_default(), m))
            .collect();
        sorted.sort_unstable_by_key(|(s, m)| (*s, m.timestamp, m.step));
        // Multi-row INSERTs: one statement step per chunk instead of per row.
        for chunk in sorted.chunks(METRIC_INSERT_ROWS) {
            let mut put = if chunk.len() == METRIC_INSERT_ROWS {
                static FULL: OnceLock<String> = OnceLock::new();
                tx.prepare_cached(FULL.get_or_init(|| metric_insert_sql(METRIC_INSERT_ROWS)))?
            } else {
                tx.prepare_cached(&metric_insert_sql(chunk.len()))?
            };
            let mut i = 0;
            for (s, m) in chunk {
                let nan = m.value.is_nan();
                put.raw_bind_parameter(i + 1, s)?;
                put.raw_bind_parameter(i + 2, m.timestamp)?;
                put.raw_bind_parameter(i + 3, m.step)?;
                put.raw_bind_parameter(i + 4, if nan { 0.0 } else { m.value })?;
                put.raw_bind_parameter(i + 5, nan)?;
                put.raw_bind_parameter(i + 6, &m.dataset_name)?;
                put.raw_bind_parameter(i + 7, &m.dataset_digest)?;
                put.raw_bind_parameter(i + 8, &m.model_id)?;
                i += 8;
            }
            put.raw_execute()?;
        }
        let model_metrics: Vec<&Metric> = metrics.iter().filter(|m| m.model_id.is_some()).collect();
        // Few metrics carry a model id: upsert each, the statement keeps the latest.
        for m in model_metrics {
            let model_id = m.model_id.as_deref().unwrap_or("");
            let model = find_model(tx, model_id)?.ok_or_else(|| no_model(model_id))?;
            upsert_model_metric(tx, model.id, m, Some(&run.run_uuid))?;
        }
    }
    for t in tags {
        upsert_run_tag(tx, run.id, &t.key, &t.value)?;
    }
    Ok(())
}

/// Keeps the latest value of each (model, key, dataset): the greatest `(timestamp, step)`, ties
/// to the largest value with NaN lowest (the reference evaluator's rule for LoggedModels).
fn upsert_model_metric(
    tx: &Connection,
    model: i64,
    m: &Metric,
    run_id: Option<&str>,
) -> StoreResult<()> {
    let (v, nan) = search_value(m.value);
    tx.prepare_cached(
        "INSERT INTO logged_model_metrics (model, key, dataset_name, dataset_digest, value, \
         is_nan, timestamp, step, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (model, key, dataset_name, dataset_digest) DO UPDATE SET \
         value = excluded.value, is_nan = excluded.is_nan, timestamp = excluded.timestamp, \
         step = excluded.step, run_id = excluded.run_id \
         WHERE (excluded.timestamp, excluded.step, excluded.value IS NOT NULL, \
         coalesce(excluded.value, 0)) > (logged_model_metrics.timestamp, \
         logged_model_metrics.step, logged_model_metrics.value IS NOT NULL, \
         coalesce(logged_model_metrics.value, 0))",
    )?
    .execute(params![
        model,
        m.key,
        m.dataset_name.as_deref().unwrap_or(""),
        m.dataset_digest.as_deref().unwrap_or(""),
        v,
        nan,
        m.timestamp,
        m.step,
        run_id
    ])?;
    Ok(())
}

// ----- logged models -----

struct ModelRef {
    id: i64,
    stage: LifecycleStage,
}

fn find_model(conn: &Connection, model_id: &str) -> StoreResult<Option<ModelRef>> {
    let row = conn
        .prepare_cached("SELECT id, lifecycle_stage FROM logged_models WHERE model_id = ?1")?
        .query_row([model_id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((id, s)) => Ok(Some(ModelRef {
            id,
            stage: stage(&s)?,
        })),
    }
}

fn require_live_model(conn: &Connection, model_id: &str) -> StoreResult<ModelRef> {
    match find_model(conn, model_id)? {
        Some(m) if m.stage == LifecycleStage::Active => Ok(m),
        _ => Err(no_model(model_id)),
    }
}

const MODEL_COLUMNS: &str = "id, model_id, experiment_id, name, artifact_location, \
    creation_timestamp_ms, last_updated_timestamp_ms, status, model_type, source_run_id, \
    status_message";

fn load_models(conn: &Connection, ids: &[i64]) -> StoreResult<Vec<LoggedModel>> {
    let mut models: HashMap<i64, LoggedModel> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let mut sql = Sql::default();
        let list = sql.bind_list(chunk);
        let p = || rusqlite::params_from_iter(sql.params.iter());
        {
            let mut stmt = conn.prepare(&format!(
                "SELECT {MODEL_COLUMNS} FROM logged_models WHERE id IN {list}"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(7)?,
                    LoggedModelInfo {
                        model_id: r.get(1)?,
                        experiment_id: r.get::<_, i64>(2)?.to_string(),
                        name: r.get(3)?,
                        artifact_uri: r.get(4)?,
                        creation_timestamp_ms: r.get(5)?,
                        last_updated_timestamp_ms: r.get(6)?,
                        status: LoggedModelStatus::Unspecified,
                        creator_id: None,
                        model_type: r.get(8)?,
                        source_run_id: r.get(9)?,
                        status_message: r.get(10)?,
                        tags: Vec::new(),
                        registrations: Vec::new(),
                    },
                ))
            })?;
            for row in rows {
                let (id, status, mut info) = row?;
                info.status = LoggedModelStatus::from_name(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("model status {status:?}")))?;
                models.insert(
                    id,
                    LoggedModel {
                        info,
                        data: LoggedModelData::default(),
                    },
                );
            }
        }
        for (table, is_tag) in [("logged_model_tags", true), ("logged_model_params", false)] {
            let mut stmt = conn.prepare(&format!(
                "SELECT model, key, value FROM {table} WHERE model IN {list} ORDER BY model, key"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (id, k, v) = row?;
                if let Some(m) = models.get_mut(&id) {
                    if is_tag {
                        m.info.tags.push(LoggedModelTag::new(k, v));
                    } else {
                        m.data.params.push(LoggedModelParameter::new(k, v));
                    }
                }
            }
        }
        {
            let mut stmt = conn.prepare(&format!(
                "SELECT x.model, x.key, x.dataset_name, x.dataset_digest, x.value, x.is_nan, \
                 x.timestamp, x.step, x.run_id, m.model_id FROM logged_model_metrics x \
                 JOIN logged_models m ON m.id = x.model WHERE x.model IN {list} \
                 ORDER BY x.model, x.key, x.dataset_name, x.dataset_digest"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                let mut metric = Metric::new(
                    r.get::<_, String>(1)?,
                    metric_value(r.get(4)?, r.get(5)?),
                    r.get(6)?,
                    r.get(7)?,
                );
                metric.dataset_name = none_if_empty(r.get(2)?);
                metric.dataset_digest = none_if_empty(r.get(3)?);
                metric.run_id = r.get(8)?;
                metric.model_id = Some(r.get(9)?);
                Ok((r.get::<_, i64>(0)?, metric))
            })?;
            for row in rows {
                let (id, metric) = row?;
                if let Some(m) = models.get_mut(&id) {
                    m.data.metrics.push(metric);
                }
            }
        }
    }
    Ok(ids.iter().filter_map(|id| models.remove(id)).collect())
}

fn load_model(conn: &Connection, id: i64, model_id: &str) -> StoreResult<LoggedModel> {
    load_models(conn, &[id])?
        .pop()
        .ok_or_else(|| no_model(model_id))
}

fn touch_model(tx: &Connection, id: i64) -> StoreResult<()> {
    tx.prepare_cached("UPDATE logged_models SET last_updated_timestamp_ms = ?2 WHERE id = ?1")?
        .execute(params![id, now_ms()])?;
    Ok(())
}

fn write_model_params(
    tx: &Connection,
    model: i64,
    model_id: &str,
    params: &[LoggedModelParameter],
) -> StoreResult<()> {
    for p in params {
        let existing: Option<String> = tx
            .prepare_cached("SELECT value FROM logged_model_params WHERE model = ?1 AND key = ?2")?
            .query_row(params![model, p.key], |r| r.get(0))
            .optional()?;
        match existing {
            Some(old) if old == p.value => {}
            Some(old) => {
                return Err(invalid(format!(
                    "Changing param values is not allowed. Param with key='{}' was already \
                     logged with value='{}' for logged model ID='{}'. Attempted logging new \
                     value '{}'.",
                    p.key, old, model_id, p.value
                )));
            }
            None => {
                tx.prepare_cached(
                    "INSERT INTO logged_model_params (model, key, value) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![model, p.key, p.value])?;
            }
        }
    }
    Ok(())
}

fn write_model_tags(tx: &Connection, model: i64, tags: &[LoggedModelTag]) -> StoreResult<()> {
    for t in tags {
        tx.prepare_cached(
            "INSERT INTO logged_model_tags (model, key, value) VALUES (?1, ?2, ?3) \
             ON CONFLICT (model, key) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![model, t.key, t.value])?;
    }
    Ok(())
}

// ----- searches -----

/// Collects the ids and the last row's sort keys of a page query.
pub(crate) fn run_page_query(
    conn: &Connection,
    sql: &Sql,
    n_keys: usize,
    page_size: usize,
) -> StoreResult<(Vec<i64>, Option<Vec<SortVal>>)> {
    let mut stmt = conn.prepare_cached(&sql.text)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
    let mut ids = Vec::new();
    let mut last_keys = None;
    let mut more = false;
    while let Some(row) = rows.next()? {
        if ids.len() == page_size {
            more = true;
            break;
        }
        ids.push(row.get::<_, i64>(0)?);
        if ids.len() == page_size {
            let mut keys = Vec::with_capacity(n_keys);
            for i in 0..n_keys {
                keys.push(SortVal::from_row(row, i + 1)?);
            }
            last_keys = Some(keys);
        }
    }
    Ok((ids, if more { last_keys } else { None }))
}

fn experiment_ids(ids: &[String]) -> StoreResult<Vec<i64>> {
    ids.iter().map(|s| experiment_id(s)).collect()
}

fn search_runs_sync(conn: &Connection, req: &SearchRuns) -> StoreResult<Page<Run>> {
    validation::validate_max_results(req.max_results, validation::SEARCH_MAX_RESULTS_THRESHOLD)?;
    let exps = experiment_ids(&req.experiment_ids)?;
    if exps.is_empty() {
        return Ok(Page::last(Vec::new()));
    }
    let fp = search_sql::fingerprint(&(
        "runs",
        &req.experiment_ids,
        &req.filter,
        req.view_type,
        &req.order_by,
    ));
    let (sql, n_keys) = search_runs_query(req, &exps, fp)?;
    let (ids, next) = run_page_query(conn, &sql, n_keys, req.max_results)?;
    Ok(Page {
        items: load_runs(conn, &ids)?,
        next_page_token: next.map(|k| search_sql::encode_token(fp, k)),
    })
}

/// The page query of a run search over experiments `exps` (fingerprint `fp`) and its number
/// of sort keys.
fn search_runs_query(req: &SearchRuns, exps: &[i64], fp: u64) -> StoreResult<(Sql, usize)> {
    let mut sql = Sql::default();
    let mut wheres = vec![
        format!("r.experiment_id IN {}", sql.bind_list(exps)),
        format!(
            "r.lifecycle_stage IN {}",
            sql.bind_list(&stages(req.view_type))
        ),
    ];
    let mut joins = search_sql::RunJoins::default();
    if let Some(f) = &req.filter {
        wheres.extend(search_sql::run_filter(&mut sql, &mut joins, f)?);
    }
    let keys = search_sql::run_order_keys(&mut sql, &mut joins, &req.order_by)?;
    let last = match &req.page_token {
        Some(t) if !t.is_empty() => Some(search_sql::decode_token(t, fp, keys.len())?),
        _ => None,
    };
    search_sql::page_query(
        &mut sql,
        Target::Runs,
        &joins.tables(),
        wheres,
        &keys,
        last.as_deref(),
        req.max_results + 1,
    );
    Ok((sql, keys.len()))
}

fn search_experiments_sync(
    conn: &Connection,
    req: &SearchExperiments,
) -> StoreResult<Page<Experiment>> {
    validation::validate_max_results(req.max_results, validation::SEARCH_MAX_RESULTS_THRESHOLD)?;
    let fp = search_sql::fingerprint(&("experiments", &req.filter, req.view_type, &req.order_by));
    let mut sql = Sql::default();
    let keys = search_sql::order_keys(&mut sql, Target::Experiments, &req.order_by)?;
    let last = match &req.page_token {
        Some(t) if !t.is_empty() => Some(search_sql::decode_token(t, fp, keys.len())?),
        _ => None,
    };
    let mut wheres = vec![format!(
        "e.lifecycle_stage IN {}",
        sql.bind_list(&stages(req.view_type))
    )];
    if let Some(f) = &req.filter {
        wheres.push(search_sql::filter(&mut sql, Target::Experiments, f, &[])?);
    }
    search_sql::page_query(
        &mut sql,
        Target::Experiments,
        "experiments e",
        wheres,
        &keys,
        last.as_deref(),
        req.max_results + 1,
    );
    let (ids, next) = run_page_query(conn, &sql, keys.len(), req.max_results)?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        items.extend(load_experiment(conn, id)?);
    }
    Ok(Page {
        items,
        next_page_token: next.map(|k| search_sql::encode_token(fp, k)),
    })
}

fn search_models_sync(
    conn: &Connection,
    req: &SearchLoggedModels,
) -> StoreResult<Page<LoggedModel>> {
    if req.max_results == 0 {
        return Err(invalid(
            "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer",
        ));
    }
    let exps = experiment_ids(&req.experiment_ids)?;
    if exps.is_empty() {
        return Ok(Page::last(Vec::new()));
    }
    let fp = search_sql::fingerprint(&(
        "models",
        &req.experiment_ids,
        &req.filter,
        &req.datasets,
        &req.order_by,
    ));
    let mut sql = Sql::default();
    let keys = search_sql::logged_model_order_keys(&mut sql, &req.order_by)?;
    let last = match &req.page_token {
        Some(t) if !t.is_empty() => Some(search_sql::decode_token(t, fp, keys.len())?),
        _ => None,
    };
    let mut wheres = vec![
        format!("m.experiment_id IN {}", sql.bind_list(&exps)),
        "m.lifecycle_stage = 'active'".to_string(),
    ];
    if let Some(f) = &req.filter {
        wheres.push(search_sql::filter(
            &mut sql,
            Target::LoggedModels,
            f,
            &req.datasets,
        )?);
    }
    if let Some(c) =
        search_sql::logged_model_dataset_condition(&mut sql, req.filter.as_ref(), &req.datasets)
    {
        wheres.push(c);
    }
    search_sql::page_query(
        &mut sql,
        Target::LoggedModels,
        "logged_models m",
        wheres,
        &keys,
        last.as_deref(),
        req.max_results + 1,
    );
    let (ids, next) = run_page_query(conn, &sql, keys.len(), req.max_results)?;
    Ok(Page {
        items: load_models(conn, &ids)?,
        next_page_token: next.map(|k| search_sql::encode_token(fp, k)),
    })
}

fn metric_history_sync(
    conn: &Connection,
    run_uuid: &str,
    key: &str,
    max_results: usize,
    token: Option<&str>,
) -> StoreResult<Page<Metric>> {
    if max_results == 0 {
        return Err(invalid(
            "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer",
        ));
    }
    let run = require_run(conn, run_uuid)?;
    let fp = search_sql::fingerprint(&("history", run_uuid, key));
    let last = match token {
        Some(t) if !t.is_empty() => Some(search_sql::decode_token(t, fp, 4)?),
        _ => None,
    };
    let mut sql = Sql::default();
    let r = sql.bind(run.id);
    let k = sql.bind(key.to_string());
    let mut text = format!(
        "SELECT timestamp, step, value, is_nan, dataset_name, dataset_digest, model_id FROM metrics \
         WHERE series = (SELECT id FROM latest_metrics WHERE run = {r} AND key = {k})"
    );
    if let Some(last) = &last {
        let vals: Vec<String> = last
            .iter()
            .map(|v| match v {
                SortVal::N => sql.bind(SqlValue::Null),
                SortVal::I(i) => sql.bind(*i),
                SortVal::R(b) => sql.bind(f64::from_bits(*b)),
                SortVal::S(s) => sql.bind(s.clone()),
            })
            .collect();
        text.push_str(&format!(
            " AND (timestamp, step, value, is_nan) > ({})",
            vals.join(", ")
        ));
    }
    let lim = sql.bind((max_results + 1) as i64);
    text.push_str(&format!(
        " ORDER BY timestamp, step, value, is_nan LIMIT {lim}"
    ));
    let mut stmt = conn.prepare_cached(&text)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
    let mut items = Vec::new();
    let mut next = None;
    while let Some(row) = rows.next()? {
        if items.len() == max_results {
            let last: &Metric = items.last().unwrap_or_else(|| unreachable!());
            let nan = last.value.is_nan();
            next = Some(search_sql::encode_token(
                fp,
                vec![
                    SortVal::I(last.timestamp),
                    SortVal::I(last.step),
                    SortVal::R(if nan {
                        0.0f64.to_bits()
                    } else {
                        last.value.to_bits()
                    }),
                    SortVal::I(i64::from(nan)),
                ],
            ));
            break;
        }
        let nan: bool = row.get(3)?;
        let value: f64 = row.get(2)?;
        let mut m = Metric::new(
            key,
            if nan { f64::NAN } else { value },
            row.get(0)?,
            row.get(1)?,
        );
        m.dataset_name = row.get(4)?;
        m.dataset_digest = row.get(5)?;
        m.model_id = row.get(6)?;
        items.push(m);
    }
    Ok(Page {
        items,
        next_page_token: next,
    })
}

fn bulk_interval_sync(
    conn: &Connection,
    req: &BulkIntervalRequest,
) -> StoreResult<Vec<MetricWithRunId>> {
    if req.run_ids.len() > MAX_BULK_RUNS {
        return Err(invalid(format!(
            "GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} run_ids. \
             Received {} run_ids.",
            req.run_ids.len()
        )));
    }
    if req.max_results == 0 || req.max_results > MAX_BULK_RESULTS {
        return Err(invalid(format!(
            "max_results must be between 1 and {MAX_BULK_RESULTS}."
        )));
    }
    let (start, end) = match (req.start_step, req.end_step) {
        (None, None) => (i64::MIN, i64::MAX),
        (Some(s), Some(e)) if s <= e => (s, e),
        (Some(_), Some(_)) => {
            return Err(invalid(
                "end_step must be greater than or equal to start_step.",
            ));
        }
        _ => {
            return Err(invalid(
                "If either start step or end step are specified, both must be specified.",
            ));
        }
    };
    let mut run_ids: Vec<&str> = Vec::new();
    for id in &req.run_ids {
        if !run_ids.contains(&id.as_str()) {
            run_ids.push(id);
        }
    }
    if run_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::default();
    let values: Vec<String> = run_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let o = sql.bind(i as i64);
            let u = sql.bind(id.to_string());
            format!("({o}, {u})")
        })
        .collect();
    let key = sql.bind(req.metric_key.clone());
    let s = sql.bind(start);
    let e = sql.bind(end);
    let max = sql.bind(req.max_results as i64);
    // Sampled in SQL: the distinct steps in range across the runs, `max` evenly spaced ones
    // (index floor(i * total / max) for i in 0..max, as MLflow) plus the last, plus each run's
    // first and last step in range; then every value at a chosen step.
    let values = values.join(", ");
    let text = format!(
        "WITH req(ord, uuid) AS (VALUES {values}),
         rr AS (SELECT req.ord, runs.id AS run, runs.run_uuid FROM req JOIN runs ON runs.run_uuid = req.uuid),
         pts AS (SELECT rr.ord, rr.run_uuid, rr.run, m.step, m.timestamp, m.value, m.is_nan
                 FROM rr JOIN latest_metrics lm ON lm.run = rr.run AND lm.key = {key}
                 JOIN metrics m ON m.series = lm.id
                 WHERE m.step BETWEEN {s} AND {e}),
         steps AS (SELECT DISTINCT step FROM pts),
         numbered AS (SELECT step, ROW_NUMBER() OVER (ORDER BY step) - 1 AS idx,
                             COUNT(*) OVER () AS total FROM steps),
         chosen AS (
             SELECT step FROM numbered
              WHERE total <= {max} OR idx = total - 1
                 OR ((idx * {max} + total - 1) / total) * total < (idx + 1) * {max}
             UNION SELECT min(step) FROM pts GROUP BY run
             UNION SELECT max(step) FROM pts GROUP BY run)
         SELECT run_uuid, step, timestamp, value, is_nan FROM pts
          WHERE step IN (SELECT step FROM chosen)
          ORDER BY ord, step, timestamp, value"
    );
    let mut stmt = conn.prepare(&text)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
        let nan: bool = r.get(4)?;
        let v: f64 = r.get(3)?;
        Ok(MetricWithRunId {
            key: req.metric_key.clone(),
            value: if nan { f64::NAN } else { v },
            timestamp: r.get(2)?,
            step: r.get(1)?,
            run_id: r.get(0)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn search_datasets_sync(conn: &Connection, ids: &[String]) -> StoreResult<Vec<DatasetSummary>> {
    let exps = experiment_ids(ids)?;
    if exps.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::default();
    let list = sql.bind_list(&exps);
    let ctx = sql.bind(CONTEXT_TAG.to_string());
    let lim = sql.bind(MAX_DATASET_SUMMARIES);
    let mut stmt = conn.prepare(&format!(
        "SELECT DISTINCT d.experiment_id, d.name, d.digest, it.value FROM datasets d \
         JOIN inputs i ON i.dataset = d.id \
         LEFT JOIN input_tags it ON it.input = i.id AND it.key = {ctx} \
         WHERE d.experiment_id IN {list} \
         ORDER BY d.experiment_id, d.name, d.digest, it.value LIMIT {lim}"
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
        Ok(DatasetSummary {
            experiment_id: r.get::<_, i64>(0)?.to_string(),
            name: r.get(1)?,
            digest: r.get(2)?,
            context: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
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
    fn capabilities(&self) -> TrackingCapabilities {
        TrackingCapabilities::ALL
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
        self.write(move |tx, ctx| {
            let taken: bool = tx
                .prepare_cached("SELECT 1 FROM experiments WHERE name = ?1")?
                .query_row([&req.name], |_| Ok(true))
                .optional()?
                .unwrap_or(false);
            if taken {
                return Err(StoreError::Api(Error::already_exists(format!(
                    "Experiment(name={}) already exists.",
                    req.name
                ))));
            }
            let id: i64 = tx.query_row(
                "SELECT coalesce(max(experiment_id), -1) + 1 FROM experiments",
                [],
                |r| r.get(0),
            )?;
            let location = match req.artifact_location.as_deref() {
                Some(l) if !l.is_empty() => l.to_string(),
                _ => cairn_plugin_api::paths::append_uri_path(
                    &ctx.default_artifact_root,
                    &[&id.to_string()],
                ),
            };
            let now = now_ms();
            tx.execute(
                "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, \
                 creation_time, last_update_time) VALUES (?1, ?2, ?3, 'active', ?4, ?4)",
                params![id, req.name, location, now],
            )?;
            for t in &req.tags {
                upsert_experiment_tag(tx, id, t)?;
            }
            Ok(id.to_string())
        })
        .await
    }

    async fn get_experiment(&self, experiment_id_text: &str) -> Result<Experiment> {
        let id = experiment_id(experiment_id_text)?;
        self.read(move |tx| require_experiment(tx, id)).await
    }

    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        let name = name.to_string();
        self.read(move |tx| {
            let id: Option<i64> = tx
                .prepare_cached(
                    "SELECT experiment_id FROM experiments WHERE name = ?1 \
                     ORDER BY lifecycle_stage = 'active' DESC LIMIT 1",
                )?
                .query_row([&name], |r| r.get(0))
                .optional()?;
            match id {
                Some(id) => load_experiment(tx, id),
                None => Ok(None),
            }
        })
        .await
    }

    async fn delete_experiment(&self, experiment_id_text: &str) -> Result<()> {
        let id = experiment_id(experiment_id_text)?;
        self.write(move |tx, _| {
            let exp = load_experiment(tx, id)?;
            if exp.is_none_or(|e| e.lifecycle_stage != LifecycleStage::Active) {
                return Err(no_experiment(id));
            }
            let now = now_ms();
            tx.execute(
                "UPDATE experiments SET lifecycle_stage = 'deleted', last_update_time = ?2 WHERE experiment_id = ?1",
                params![id, now],
            )?;
            set_run_lifecycle(tx, "experiment_id = ?1", id, true)?;
            Ok(())
        })
        .await
    }

    async fn restore_experiment(&self, experiment_id_text: &str) -> Result<()> {
        let id = experiment_id(experiment_id_text)?;
        self.write(move |tx, _| {
            let exp = load_experiment(tx, id)?;
            if exp.is_none_or(|e| e.lifecycle_stage != LifecycleStage::Deleted) {
                return Err(no_experiment(id));
            }
            tx.execute(
                "UPDATE experiments SET lifecycle_stage = 'active', last_update_time = ?2 WHERE experiment_id = ?1",
                params![id, now_ms()],
            )?;
            set_run_lifecycle(tx, "experiment_id = ?1", id, false)?;
            Ok(())
        })
        .await
    }

    async fn rename_experiment(&self, experiment_id_text: &str, new_name: &str) -> Result<()> {
        let id = experiment_id(experiment_id_text)?;
        validation::validate_experiment_name(new_name)?;
        let new_name = new_name.to_string();
        self.write(move |tx, _| {
            let exp = require_experiment(tx, id)?;
            if exp.lifecycle_stage != LifecycleStage::Active {
                return Err(StoreError::Api(Error::new(
                    cairn_plugin_api::ErrorKind::InvalidState,
                    "Cannot rename a non-active experiment.",
                )));
            }
            if exp.name == new_name {
                return Ok(());
            }
            let taken: bool = tx
                .prepare_cached("SELECT 1 FROM experiments WHERE name = ?1")?
                .query_row([&new_name], |_| Ok(true))
                .optional()?
                .unwrap_or(false);
            if taken {
                return Err(StoreError::Api(Error::already_exists(format!(
                    "Experiment(name={new_name}) already exists."
                ))));
            }
            tx.execute(
                "UPDATE experiments SET name = ?2, last_update_time = ?3 WHERE experiment_id = ?1",
                params![id, new_name, now_ms()],
            )?;
            Ok(())
        })
        .await
    }

    async fn set_experiment_tag(&self, experiment_id_text: &str, tag: ExperimentTag) -> Result<()> {
        let id = experiment_id(experiment_id_text)?;
        validation::validate_experiment_tag(&tag, "")?;
        self.write(move |tx, _| {
            require_active_experiment(tx, id)?;
            upsert_experiment_tag(tx, id, &tag)
        })
        .await
    }

    async fn delete_experiment_tag(&self, experiment_id_text: &str, key: &str) -> Result<()> {
        let id = experiment_id(experiment_id_text)?;
        let key = key.to_string();
        self.write(move |tx, _| {
            require_active_experiment(tx, id)?;
            let n = tx.execute(
                "DELETE FROM experiment_tags WHERE experiment_id = ?1 AND key = ?2",
                params![id, key],
            )?;
            if n == 0 {
                return Err(not_found(format!(
                    "No tag with name: {key} in experiment with id {id}"
                )));
            }
            Ok(())
        })
        .await
    }

    async fn search_experiments(&self, req: SearchExperiments) -> Result<Page<Experiment>> {
        self.read(move |tx| search_experiments_sync(tx, &req)).await
    }

    async fn create_run(&self, req: CreateRun) -> Result<Run> {
        let exp_id = experiment_id(&req.experiment_id)?;
        let tags = req
            .tags
            .into_iter()
            .enumerate()
            .map(|(i, t)| validation::validate_tag(t, &format!("tags[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let run_name = validation::resolve_run_name(req.run_name, &tags)?;
        let user_id = req.user_id;
        let start_time = req.start_time;
        self.write(move |tx, _| {
            let exp = require_active_experiment(tx, exp_id)?;
            let run_uuid = uuid::Uuid::new_v4().simple().to_string();
            let artifact_uri = cairn_plugin_api::paths::append_uri_path(
                &exp.artifact_location,
                &[&run_uuid, "artifacts"],
            );
            tx.prepare_cached(
                "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, \
                 end_time, artifact_uri, lifecycle_stage) \
                 VALUES (?1, ?2, ?3, ?4, 'RUNNING', ?5, NULL, ?6, 'active')",
            )?
            .execute(params![
                run_uuid,
                exp_id,
                run_name,
                user_id,
                start_time,
                artifact_uri
            ])?;
            let id = tx.last_insert_rowid();
            for t in &tags {
                upsert_run_tag(tx, id, &t.key, &t.value)?;
            }
            upsert_run_tag(tx, id, RUN_NAME_TAG, &run_name)?;
            load_runs(tx, &[id])?.pop().ok_or_else(|| no_run(&run_uuid))
        })
        .await
    }

    async fn get_run(&self, run_id: &str) -> Result<Run> {
        let run_id = run_id.to_string();
        self.read(move |tx| load_run(tx, &run_id)).await
    }

    async fn update_run_info(&self, run_id: &str, update: UpdateRun) -> Result<RunInfo> {
        let run_id = run_id.to_string();
        if let Some(name) = &update.run_name {
            validation::validate_length("run_name", validation::MAX_TAG_VAL_LENGTH, name)?;
        }
        self.write(move |tx, _| {
            let run = require_active_run(tx, &run_id)?;
            if let Some(status) = update.status {
                tx.execute(
                    "UPDATE runs SET status = ?2 WHERE id = ?1",
                    params![run.id, status.as_str()],
                )?;
            }
            if let Some(end) = update.end_time {
                tx.execute(
                    "UPDATE runs SET end_time = ?2 WHERE id = ?1",
                    params![run.id, end],
                )?;
            }
            if let Some(name) = &update.run_name {
                upsert_run_tag(tx, run.id, RUN_NAME_TAG, name)?;
            }
            load_run_info(tx, run.id)
        })
        .await
    }

    async fn delete_run(&self, run_id: &str) -> Result<()> {
        let run_id = run_id.to_string();
        self.write(move |tx, _| {
            let run = require_run(tx, &run_id)?;
            set_run_lifecycle(tx, "id = ?1", run.id, true)?;
            Ok(())
        })
        .await
    }

    async fn restore_run(&self, run_id: &str) -> Result<()> {
        let run_id = run_id.to_string();
        self.write(move |tx, _| {
            let run = require_run(tx, &run_id)?;
            set_run_lifecycle(tx, "id = ?1", run.id, false)?;
            Ok(())
        })
        .await
    }

    async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<RunTag>,
    ) -> Result<()> {
        validation::validate_run_id(run_id)?;
        let (params, tags) = validation::validate_log_batch(&metrics, params, tags)?;
        if metrics.is_empty() && params.is_empty() && tags.is_empty() {
            // Still an error for an unknown or deleted run, as MLflow.
            let run_id = run_id.to_string();
            return self
                .read(move |tx| require_active_run(tx, &run_id).map(|_| ()))
                .await;
        }
        let run_id = run_id.to_string();
        self.write(move |tx, _| {
            let run = require_active_run(tx, &run_id)?;
            write_log_batch(tx, &run, &metrics, &params, &tags)
        })
        .await
    }

    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let run_id = run_id.to_string();
        let key = key.to_string();
        self.write(move |tx, _| {
            let run = require_active_run(tx, &run_id)?;
            let n = tx.execute(
                "DELETE FROM tags WHERE run = ?1 AND key = ?2",
                params![run.id, key],
            )?;
            if n == 0 {
                return Err(not_found(format!(
                    "No tag with name: {key} in run with id {run_id}"
                )));
            }
            Ok(())
        })
        .await
    }

    async fn get_metric_history(
        &self,
        run_id: &str,
        metric_key: &str,
        max_results: usize,
        page_token: Option<String>,
    ) -> Result<Page<Metric>> {
        let run_id = run_id.to_string();
        let key = metric_key.to_string();
        self.read(move |tx| {
            metric_history_sync(tx, &run_id, &key, max_results, page_token.as_deref())
        })
        .await
    }

    async fn get_metric_history_bulk_interval(
        &self,
        req: BulkIntervalRequest,
    ) -> Result<Vec<MetricWithRunId>> {
        self.read(move |tx| bulk_interval_sync(tx, &req)).await
    }

    async fn search_runs(&self, req: SearchRuns) -> Result<Page<Run>> {
        self.read(move |tx| search_runs_sync(tx, &req)).await
    }

    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        validation::validate_dataset_inputs(&datasets)?;
        let run_id = run_id.to_string();
        self.write(move |tx, _| {
            let run = require_active_run(tx, &run_id)?;
            for input in &datasets {
                let d = &input.dataset;
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO datasets (experiment_id, name, digest, source_type, \
                     source, schema, profile) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![run.experiment_id, d.name, d.digest, d.source_type, d.source, d.schema, d.profile])?;
                let dataset_id: i64 = tx
                    .prepare_cached("SELECT id FROM datasets WHERE experiment_id = ?1 AND name = ?2 AND digest = ?3")?
                    .query_row(params![run.experiment_id, d.name, d.digest], |r| r.get(0))?;
                let inserted = tx
                    .prepare_cached("INSERT OR IGNORE INTO inputs (run, dataset) VALUES (?1, ?2)")?
                    .execute(params![run.id, dataset_id])?;
                if inserted == 1 {
                    let input_id = tx.last_insert_rowid();
                    for t in &input.tags {
                        tx.prepare_cached(
                            "INSERT INTO input_tags (input, key, value) VALUES (?1, ?2, ?3) \
                             ON CONFLICT (input, key) DO UPDATE SET value = excluded.value",
                        )?
                        .execute(params![input_id, t.key, t.value])?;
                    }
                }
            }
            for m in &models {
                tx.prepare_cached("INSERT OR IGNORE INTO model_inputs (run, model_id) VALUES (?1, ?2)")?
                    .execute(params![run.id, m.model_id])?;
            }
            Ok(())
        })
        .await
    }

    async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()> {
        let run_id = run_id.to_string();
        self.write(move |tx, _| {
            let run = require_active_run(tx, &run_id)?;
            for m in &models {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO model_outputs (run, model_id, step) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![run.id, m.model_id, m.step])?;
            }
            Ok(())
        })
        .await
    }

    async fn search_datasets(&self, experiment_ids: &[String]) -> Result<Vec<DatasetSummary>> {
        let ids = experiment_ids.to_vec();
        self.read(move |tx| search_datasets_sync(tx, &ids)).await
    }

    async fn create_logged_model(&self, req: CreateLoggedModel) -> Result<LoggedModel> {
        let exp_id = experiment_id(&req.experiment_id)?;
        let name = match req.name.filter(|n| !n.is_empty()) {
            Some(n) => {
                validation::validate_logged_model_name(&n)?;
                n
            }
            None => names::generate_random_name(),
        };
        let params = req
            .params
            .into_iter()
            .enumerate()
            .map(|(i, p)| validation::validate_logged_model_param(p, &format!("params[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let tags = req
            .tags
            .into_iter()
            .enumerate()
            .map(|(i, t)| validation::validate_logged_model_tag(t, &format!("tags[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let (model_type, source_run_id) = (req.model_type, req.source_run_id);
        self.write(move |tx, _| {
            let exp = require_active_experiment(tx, exp_id)?;
            let model_id = format!("m-{}", uuid::Uuid::new_v4().simple());
            let location = cairn_plugin_api::paths::append_uri_path(
                &exp.artifact_location,
                &["models", &model_id, "artifacts"],
            );
            let now = now_ms();
            tx.execute(
                "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, \
                 creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, \
                 model_type, source_run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, 'active', ?7, ?8)",
                params![
                    model_id,
                    exp_id,
                    name,
                    location,
                    now,
                    LoggedModelStatus::Pending.as_str(),
                    model_type,
                    source_run_id
                ],
            )?;
            let id = tx.last_insert_rowid();
            write_model_params(tx, id, &model_id, &params)?;
            write_model_tags(tx, id, &tags)?;
            load_model(tx, id, &model_id)
        })
        .await
    }

    async fn get_logged_model(&self, model_id: &str, allow_deleted: bool) -> Result<LoggedModel> {
        let model_id = model_id.to_string();
        self.read(move |tx| {
            let m = match find_model(tx, &model_id)? {
                Some(m) if allow_deleted || m.stage == LifecycleStage::Active => m,
                _ => return Err(no_model(&model_id)),
            };
            load_model(tx, m.id, &model_id)
        })
        .await
    }

    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        let model_id = model_id.to_string();
        self.write(move |tx, _| {
            let m = require_live_model(tx, &model_id)?;
            tx.execute(
                "UPDATE logged_models SET status = ?2, last_updated_timestamp_ms = ?3 WHERE id = ?1",
                params![m.id, status.as_str(), now_ms()],
            )?;
            load_model(tx, m.id, &model_id)
        })
        .await
    }

    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        let model_id = model_id.to_string();
        self.write(move |tx, _| {
            let m = require_live_model(tx, &model_id)?;
            tx.execute(
                "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp_ms = ?2 WHERE id = ?1",
                params![m.id, now_ms()],
            )?;
            Ok(())
        })
        .await
    }

    async fn set_logged_model_tags(&self, model_id: &str, tags: Vec<LoggedModelTag>) -> Result<()> {
        let tags = tags
            .into_iter()
            .enumerate()
            .map(|(i, t)| validation::validate_logged_model_tag(t, &format!("tags[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let model_id = model_id.to_string();
        self.write(move |tx, _| {
            let m = require_live_model(tx, &model_id)?;
            write_model_tags(tx, m.id, &tags)?;
            touch_model(tx, m.id)
        })
        .await
    }

    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        let model_id = model_id.to_string();
        let key = key.to_string();
        self.write(move |tx, _| {
            let m = require_live_model(tx, &model_id)?;
            let n = tx.execute(
                "DELETE FROM logged_model_tags WHERE model = ?1 AND key = ?2",
                params![m.id, key],
            )?;
            if n == 0 {
                return Err(not_found(format!(
                    "No tag with key '{key}' found for logged model with ID '{model_id}'."
                )));
            }
            touch_model(tx, m.id)
        })
        .await
    }

    async fn log_logged_model_params(
        &self,
        model_id: &str,
        params: Vec<LoggedModelParameter>,
    ) -> Result<()> {
        let params = params
            .into_iter()
            .enumerate()
            .map(|(i, p)| validation::validate_logged_model_param(p, &format!("params[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let mut seen = std::collections::HashSet::new();
        for p in &params {
            if !seen.insert(p.key.as_str()) {
                return Err(Error::invalid(format!(
                    "Duplicate parameter keys have been submitted: ['{}']. Please ensure the \
                     request contains only one param value per param key.",
                    p.key
                )));
            }
        }
        let model_id = model_id.to_string();
        self.write(move |tx, _| {
            let m = require_live_model(tx, &model_id)?;
            write_model_params(tx, m.id, &model_id, &params)?;
            touch_model(tx, m.id)
        })
        .await
    }

    async fn search_logged_models(&self, req: SearchLoggedModels) -> Result<Page<LoggedModel>> {
        self.read(move |tx| search_models_sync(tx, &req)).await
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

    /// Logs `n` runs into a new experiment `name`, each with a `loss` metric and an `opt`
    /// param, and returns the experiment's id.
    async fn experiment_of_runs(store: &SqliteStore, name: &str, n: usize) -> String {
        let exp = store
            .create_experiment(CreateExperiment {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        for i in 0..n {
            let run = store
                .create_run(CreateRun {
                    experiment_id: exp.clone(),
                    user_id: "u".into(),
                    start_time: i as i64,
                    tags: vec![],
                    run_name: None,
                })
                .await
                .unwrap();
            let loss = (i % 10) as f64 / 10.0;
            let opt = ["adam", "sgd"][i % 2];
            store
                .log_batch(
                    &run.info.run_id,
                    vec![Metric::new("loss", loss, 0, 0)],
                    vec![Param::new("opt", opt)],
                    vec![],
                )
                .await
                .unwrap();
        }
        exp
    }

    /// The page query of the benchmark's search (a metric filter and the same metric as order
    /// key) over `exp`: its query plan, and the virtual-machine steps one execution takes.
    async fn plan_and_steps(store: &SqliteStore, exp: &str) -> (Vec<String>, i32) {
        let req = SearchRuns {
            experiment_ids: vec![exp.to_string()],
            filter: cairn_plugin_api::search::parse_filter(
                cairn_plugin_api::search::SearchKind::Runs,
                "metrics.loss < 0.5 and params.opt = 'adam'",
            )
            .unwrap(),
            view_type: ViewType::ActiveOnly,
            max_results: 10,
            order_by: cairn_plugin_api::search::parse_order_by(
                cairn_plugin_api::search::SearchKind::Runs,
                &["metrics.loss ASC".to_string()],
            )
            .unwrap(),
            page_token: None,
        };
        let exps = experiment_ids(&req.experiment_ids).unwrap();
        store
            .read(move |conn| {
                let (sql, _) = search_runs_query(&req, &exps, 0)?;
                let params = || rusqlite::params_from_iter(sql.params.iter());
                let plan = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))?
                    .query_map(params(), |r| r.get::<_, String>(3))?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut stmt = conn.prepare(&sql.text)?;
                let rows = stmt.query_map(params(), |r| r.get::<_, i64>(0))?.count();
                assert_eq!(rows, 11);
                Ok((plan, stmt.get_status(rusqlite::StatementStatus::VmStep)))
            })
            .await
            .unwrap()
    }

    #[test]
    fn run_search_cost_follows_the_searched_experiment_not_the_database() {
        let store = open("sqlite://", Some("file:///tmp/cairn-test")).unwrap();
        let (plan, steps, plan_after, steps_after) = futures_executor::block_on(async {
            let exp = experiment_of_runs(&store, "searched", 100).await;
            let (plan, steps) = plan_and_steps(&store, &exp).await;
            experiment_of_runs(&store, "other", 1000).await;
            let (plan_after, steps_after) = plan_and_steps(&store, &exp).await;
            (plan, steps, plan_after, steps_after)
        });
        // Driven by the searched experiment's runs, the metric read once per run through a
        // join (no correlated subquery on latest_metrics, not the (key, value) index, which
        // spans every experiment).
        assert!(
            plan[0].contains("runs_by_experiment_stage_start"),
            "{plan:?}"
        );
        let metric_reads: Vec<&String> = plan
            .iter()
            .filter(|l| l.contains("latest_metrics"))
            .collect();
        assert_eq!(metric_reads.len(), 1, "{plan:?}");
        assert!(
            metric_reads[0].starts_with("SEARCH lm1 USING INDEX sqlite_autoindex_latest_metrics"),
            "{plan:?}"
        );
        assert_eq!(plan, plan_after);
        // Ten times as many runs elsewhere leave the work of the query unchanged (give or take
        // a step of a deeper b-tree).
        assert!(steps_after.abs_diff(steps) * 100 <= steps as u32, "{steps} -> {steps_after}");
    }

    #[test]
    fn latest_is_greatest_step_timestamp_value_with_nan_as_zero() {
        let a = Metric::new("k", 5.0, 10, 1);
        assert!(is_later(&Metric::new("k", 0.0, 0, 2), &a));
        assert!(is_later(&Metric::new("k", 0.0, 11, 1), &a));
        assert!(is_later(&Metric::new("k", 6.0, 10, 1), &a));
        assert!(!is_later(&Metric::new("k", 5.0, 10, 1), &a));
        assert!(!is_later(&Metric::new("k", f64::NAN, 10, 1), &a));
        assert!(is_later(
            &Metric::new("k", f64::NAN, 10, 1),
            &Metric::new("k", -1.0, 10, 1)
        ));
    }
}
