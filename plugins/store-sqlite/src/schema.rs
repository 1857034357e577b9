//! Where the database lives, how a file is recognised as Cairn's, and the versioned schema.
//!
//! A Cairn database carries `PRAGMA application_id` = [`APPLICATION_ID`] and its schema
//! version in both `PRAGMA user_version` and the one-row table `cairn_schema`. Before opening
//! a file for writing, the store reads its header with plain file I/O and, when needed, looks
//! at it through a read-only connection: a file that is not Cairn's (an MLflow `mlflow.db`, a
//! database of another application, anything that is not SQLite) is refused with
//! `InvalidArgument` naming the file, and is never modified. A missing file, an empty (0-byte)
//! file and a SQLite database without any table are initialised. A schema newer than this
//! build knows is refused; an older one is migrated, one transaction per version.

use crate::error::{StoreError, StoreResult, invalid};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::io::Read;
use std::path::{Path, PathBuf};

/// `PRAGMA application_id` of every Cairn database: the ASCII bytes `Cair`.
pub const APPLICATION_ID: i32 = 0x4361_6972;

/// The migrations, in order; the schema version is the number applied.
const MIGRATIONS: &[&str] = &[
    MIGRATION_1,
    MIGRATION_2,
    MIGRATION_3,
    MIGRATION_4,
    MIGRATION_5,
    MIGRATION_6,
    MIGRATION_7,
    MIGRATION_8,
    MIGRATION_9,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Version 1: experiments, runs, params, tags, metric history and latest values, datasets and
/// inputs, model inputs/outputs, LoggedModels.
///
/// Metric values: NaN is stored in `metrics` as `0` with `is_nan = 1` (so exact duplicates of a
/// NaN point are still recognised by the primary key) and in the search tables
/// `latest_metrics` / `logged_model_metrics` as `NULL` with `is_nan = 1`, so every comparison
/// with it is false and it sorts with missing values. ±Inf are stored as SQLite REAL infinities
/// (not clamped to ±f64::MAX as MLflow does) and come back unchanged.
const MIGRATION_1: &str = r#"
CREATE TABLE cairn_schema (version INTEGER NOT NULL);

CREATE TABLE experiments (
    experiment_id     INTEGER PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL,
    lifecycle_stage   TEXT NOT NULL CHECK (lifecycle_stage IN ('active', 'deleted')),
    creation_time     INTEGER NOT NULL,
    last_update_time  INTEGER NOT NULL
);
CREATE INDEX experiments_by_stage_created
    ON experiments (lifecycle_stage, creation_time DESC, experiment_id);

CREATE TABLE experiment_tags (
    experiment_id INTEGER NOT NULL REFERENCES experiments (experiment_id),
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
) WITHOUT ROWID;
CREATE INDEX experiment_tags_by_key_value ON experiment_tags (key, value);

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    run_uuid        TEXT NOT NULL UNIQUE,
    experiment_id   INTEGER NOT NULL REFERENCES experiments (experiment_id),
    name            TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    status          TEXT NOT NULL,
    start_time      INTEGER NOT NULL,
    end_time        INTEGER,
    artifact_uri    TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL CHECK (lifecycle_stage IN ('active', 'deleted')),
    deleted_time    INTEGER
);
CREATE INDEX runs_by_experiment_stage_start
    ON runs (experiment_id, lifecycle_stage, start_time DESC, run_uuid);

CREATE TABLE params (
    run   INTEGER NOT NULL REFERENCES runs (id),
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run, key)
) WITHOUT ROWID;
CREATE INDEX params_by_key_value ON params (key, value);

CREATE TABLE tags (
    run   INTEGER NOT NULL REFERENCES runs (id),
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run, key)
) WITHOUT ROWID;
CREATE INDEX tags_by_key_value ON tags (key, value);

-- One row per (run, key), the series of that metric: its latest value, the one with the
-- greatest (step, timestamp, value), NaN counting as 0 in that comparison (as MLflow) and
-- stored as NULL. Its id keys the history rows, so they carry a small integer, not the key.
CREATE TABLE latest_metrics (
    id        INTEGER PRIMARY KEY,
    run       INTEGER NOT NULL REFERENCES runs (id),
    key       TEXT NOT NULL,
    value     REAL,
    is_nan    INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    UNIQUE (run, key)
);

-- Full history. The primary key orders a series by (timestamp, step, value), the order
-- get_metric_history returns, and drops exact duplicates as MLflow does.
CREATE TABLE metrics (
    series         INTEGER NOT NULL,
    timestamp      INTEGER NOT NULL,
    step           INTEGER NOT NULL,
    value          REAL NOT NULL,
    is_nan         INTEGER NOT NULL,
    dataset_name   TEXT,
    dataset_digest TEXT,
    model_id       TEXT,
    PRIMARY KEY (series, timestamp, step, value, is_nan)
) WITHOUT ROWID;
CREATE INDEX latest_metrics_by_key_value ON latest_metrics (key, value);

CREATE TABLE datasets (
    id            INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments (experiment_id),
    name          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    source_type   TEXT NOT NULL,
    source        TEXT NOT NULL,
    schema        TEXT,
    profile       TEXT,
    UNIQUE (experiment_id, name, digest)
);

CREATE TABLE inputs (
    id      INTEGER PRIMARY KEY,
    run     INTEGER NOT NULL REFERENCES runs (id),
    dataset INTEGER NOT NULL REFERENCES datasets (id),
    UNIQUE (run, dataset)
);

CREATE TABLE input_tags (
    input INTEGER NOT NULL REFERENCES inputs (id),
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (input, key)
) WITHOUT ROWID;

CREATE TABLE model_inputs (
    id       INTEGER PRIMARY KEY,
    run      INTEGER NOT NULL REFERENCES runs (id),
    model_id TEXT NOT NULL,
    UNIQUE (run, model_id)
);

CREATE TABLE model_outputs (
    id       INTEGER PRIMARY KEY,
    run      INTEGER NOT NULL REFERENCES runs (id),
    model_id TEXT NOT NULL,
    step     INTEGER NOT NULL,
    UNIQUE (run, model_id)
);

CREATE TABLE logged_models (
    id                        INTEGER PRIMARY KEY,
    model_id                  TEXT NOT NULL UNIQUE,
    experiment_id             INTEGER NOT NULL REFERENCES experiments (experiment_id),
    name                      TEXT NOT NULL,
    artifact_location         TEXT NOT NULL,
    creation_timestamp_ms     INTEGER NOT NULL,
    last_updated_timestamp_ms INTEGER NOT NULL,
    status                    TEXT NOT NULL,
    lifecycle_stage           TEXT NOT NULL CHECK (lifecycle_stage IN ('active', 'deleted')),
    model_type                TEXT,
    source_run_id             TEXT,
    status_message            TEXT
);
CREATE INDEX logged_models_by_experiment_stage_created
    ON logged_models (experiment_id, lifecycle_stage, creation_timestamp_ms DESC, model_id);

CREATE TABLE logged_model_tags (
    model INTEGER NOT NULL REFERENCES logged_models (id),
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model, key)
) WITHOUT ROWID;

CREATE TABLE logged_model_params (
    model INTEGER NOT NULL REFERENCES logged_models (id),
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model, key)
) WITHOUT ROWID;

-- The latest value of each (model, key, dataset); '' stands for "no dataset".
CREATE TABLE logged_model_metrics (
    model          INTEGER NOT NULL REFERENCES logged_models (id),
    key            TEXT NOT NULL,
    dataset_name   TEXT NOT NULL,
    dataset_digest TEXT NOT NULL,
    value          REAL,
    is_nan         INTEGER NOT NULL,
    timestamp      INTEGER NOT NULL,
    step           INTEGER NOT NULL,
    run_id         TEXT,
    PRIMARY KEY (model, key, dataset_name, dataset_digest)
) WITHOUT ROWID;
"#;

/// Version 2: the model registry. Models are keyed by an integer id, so a rename touches one
/// row; `max_version` is the highest version number ever given, so numbers are never reused
/// after a delete (MLflow keeps deleted versions as hidden rows for the same effect). Tags,
/// versions and aliases go with their model (`ON DELETE CASCADE`).
const MIGRATION_2: &str = r#"
CREATE TABLE registered_models (
    id                     INTEGER PRIMARY KEY,
    name                   TEXT NOT NULL UNIQUE,
    creation_timestamp     INTEGER NOT NULL,
    last_updated_timestamp INTEGER NOT NULL,
    user_id                TEXT,
    description            TEXT,
    max_version            INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE registered_model_tags (
    model INTEGER NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model, key)
) WITHOUT ROWID;

CREATE TABLE model_versions (
    id                     INTEGER PRIMARY KEY,
    model                  INTEGER NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    version                INTEGER NOT NULL,
    creation_timestamp     INTEGER NOT NULL,
    last_updated_timestamp INTEGER NOT NULL,
    user_id                TEXT,
    current_stage          TEXT NOT NULL,
    description            TEXT,
    source                 TEXT NOT NULL,
    storage_location       TEXT,
    run_id                 TEXT,
    run_link               TEXT,
    status                 TEXT NOT NULL,
    status_message         TEXT,
    model_id               TEXT,
    UNIQUE (model, version)
);
CREATE INDEX model_versions_by_updated ON model_versions (last_updated_timestamp DESC);

CREATE TABLE model_version_tags (
    version INTEGER NOT NULL REFERENCES model_versions (id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (version, key)
) WITHOUT ROWID;

CREATE TABLE registered_model_aliases (
    model   INTEGER NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    alias   TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (model, alias)
) WITHOUT ROWID;
"#;

/// Version 3: the basic-auth app's users, per-user grants and roles (`cairn server --app-name
/// basic-auth`). A grant names its resource by type and id (an experiment id, a registered
/// model's name); a role's permission by type and pattern (an id or `*`); grants, role
/// permissions and role assignments go with their user or role (`ON DELETE CASCADE`).
const MIGRATION_3: &str = r#"
CREATE TABLE auth_users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL CHECK (is_admin IN (0, 1))
);

CREATE TABLE auth_grants (
    user_id       INTEGER NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    permission    TEXT NOT NULL,
    PRIMARY KEY (user_id, resource_type, resource_id)
) WITHOUT ROWID;
CREATE INDEX auth_grants_by_resource ON auth_grants (resource_type, resource_id);

CREATE TABLE auth_roles (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT
);

CREATE TABLE auth_role_permissions (
    id               INTEGER PRIMARY KEY,
    role_id          INTEGER NOT NULL REFERENCES auth_roles (id) ON DELETE CASCADE,
    resource_type    TEXT NOT NULL,
    resource_pattern TEXT NOT NULL,
    permission       TEXT NOT NULL,
    UNIQUE (role_id, resource_type, resource_pattern)
);

CREATE TABLE auth_role_users (
    id      INTEGER PRIMARY KEY,
    role_id INTEGER NOT NULL REFERENCES auth_roles (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    UNIQUE (role_id, user_id)
);
CREATE INDEX auth_role_users_by_user ON auth_role_users (user_id);
"#;

/// Links of traces to runs made before the trace reached the store (`link-to-run` right after a
/// trace the client still logs asynchronously; MLflow accepts those too). Applied, and removed,
/// when the trace is written.
const MIGRATION_5: &str = r#"
CREATE TABLE trace_pending_runs (
    trace_id TEXT PRIMARY KEY,
    run_id   TEXT NOT NULL
);
"#;

/// Spans move to a rowid table. As a `WITHOUT ROWID` table (an index b-tree, whose rows stay
/// on their page only up to about 1000 bytes on 4 KiB pages) every span larger than that
/// spilled its tail onto an overflow page of its own: a database of 10,000 traces of 20
/// spans (313 MB of span JSON) took 1.3 GB, and SQLite reads overflow pages with a system call
/// each, past its cache. A rowid table keeps rows up to about 4 KiB on the page (the same
/// database: 463 MB). The copy is in (trace, start, span) order, the order they are read.
const MIGRATION_6: &str = r#"
CREATE TABLE spans_by_row (
    id             INTEGER PRIMARY KEY,
    trace          INTEGER NOT NULL REFERENCES traces (id) ON DELETE CASCADE,
    span_id        TEXT NOT NULL,
    parent_span_id TEXT,
    name           TEXT NOT NULL,
    type           TEXT,
    status         TEXT NOT NULL,
    start_ns       INTEGER NOT NULL,
    end_ns         INTEGER,
    content        TEXT NOT NULL,
    UNIQUE (trace, span_id)
);
INSERT INTO spans_by_row (trace, span_id, parent_span_id, name, type, status, start_ns, end_ns,
                          content)
    SELECT trace, span_id, parent_span_id, name, type, status, start_ns, end_ns, content
    FROM spans ORDER BY trace, start_ns, span_id;
DROP TABLE spans;
ALTER TABLE spans_by_row RENAME TO spans;
CREATE INDEX spans_by_trace_start ON spans (trace, start_ns, span_id);
"#;

/// The experiment's trace index also holds each trace's state. A search walks it newest first
/// and checks the state (`trace.status`, the client's and the UI's usual filter) of every
/// trace it passes; with the state in the index, neither that nor the page's sort keys read
/// the table row.
const MIGRATION_7: &str = r#"
DROP INDEX traces_by_experiment_time;
CREATE INDEX traces_by_experiment_time ON traces (experiment_id, request_time DESC, trace_id, state);
"#;

/// Each trace tag also holds its trace's experiment, request time and id, kept equal by
/// triggers, and the tag index is ordered by them: a newest-first search of one experiment
/// with a `tags.k = 'v'` condition reads exactly its page's tags from the index instead of
/// walking every trace of the experiment and probing its tags (docs/PERFORMANCE.md, "What the
/// infos-only search would take"). The old `(key, value)` index is this one's prefix.
const MIGRATION_8: &str = r#"
ALTER TABLE trace_tags ADD COLUMN experiment_id INTEGER;
ALTER TABLE trace_tags ADD COLUMN request_time INTEGER;
ALTER TABLE trace_tags ADD COLUMN trace_id TEXT;
UPDATE trace_tags SET (experiment_id, request_time, trace_id) =
    (SELECT t.experiment_id, t.request_time, t.trace_id FROM traces t WHERE t.id = trace_tags.trace);
DROP INDEX trace_tags_by_key_value;
CREATE INDEX trace_tags_by_key_value
    ON trace_tags (key, value, experiment_id, request_time DESC, trace_id);
CREATE TRIGGER trace_tags_take_their_trace AFTER INSERT ON trace_tags BEGIN
    UPDATE trace_tags SET (experiment_id, request_time, trace_id) =
        (SELECT t.experiment_id, t.request_time, t.trace_id FROM traces t WHERE t.id = NEW.trace)
    WHERE trace = NEW.trace AND key = NEW.key;
END;
CREATE TRIGGER traces_pass_on_to_their_tags AFTER UPDATE OF experiment_id, request_time, trace_id
    ON traces
    WHEN NEW.experiment_id IS NOT OLD.experiment_id OR NEW.request_time IS NOT OLD.request_time
        OR NEW.trace_id IS NOT OLD.trace_id
BEGIN
    UPDATE trace_tags SET experiment_id = NEW.experiment_id, request_time = NEW.request_time,
        trace_id = NEW.trace_id
    WHERE trace = NEW.id;
END;
"#;

/// Each trace also holds its tags and its request metadata as the text of a JSON object, kept
/// equal to the entry tables by triggers: a page of a trace search copies that text into its
/// answer instead of reading a row per entry and writing it out again, which was most of the
/// search's time (docs/PERFORMANCE.md, "Tags and metadata as stored JSON"). The entry tables stay
/// what filters and single-entry changes use. A trace's entries are few, so each change
/// rebuilds its object.
const MIGRATION_9: &str = r#"
ALTER TABLE traces ADD COLUMN tags_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE traces ADD COLUMN metadata_json TEXT NOT NULL DEFAULT '{}';
UPDATE traces SET
    tags_json = (SELECT json_group_object(key, value) FROM trace_tags WHERE trace = traces.id),
    metadata_json =
        (SELECT json_group_object(key, value) FROM trace_metadata WHERE trace = traces.id);
CREATE TRIGGER trace_tags_json_after_insert AFTER INSERT ON trace_tags BEGIN
    UPDATE traces SET tags_json =
        (SELECT json_group_object(key, value) FROM trace_tags WHERE trace = NEW.trace)
    WHERE id = NEW.trace;
END;
CREATE TRIGGER trace_tags_json_after_update AFTER UPDATE OF trace, key, value ON trace_tags BEGIN
    UPDATE traces SET tags_json =
        (SELECT json_group_object(key, value) FROM trace_tags WHERE trace = traces.id)
    WHERE id IN (OLD.trace, NEW.trace);
END;
CREATE TRIGGER trace_tags_json_after_delete AFTER DELETE ON trace_tags BEGIN
    UPDATE traces SET tags_json =
        (SELECT json_group_object(key, value) FROM trace_tags WHERE trace = OLD.trace)
    WHERE id = OLD.trace;
END;
CREATE TRIGGER trace_metadata_json_after_insert AFTER INSERT ON trace_metadata BEGIN
    UPDATE traces SET metadata_json =
        (SELECT json_group_object(key, value) FROM trace_metadata WHERE trace = NEW.trace)
    WHERE id = NEW.trace;
END;
CREATE TRIGGER trace_metadata_json_after_update AFTER UPDATE OF trace, key, value
    ON trace_metadata
BEGIN
    UPDATE traces SET metadata_json =
        (SELECT json_group_object(key, value) FROM trace_metadata WHERE trace = traces.id)
    WHERE id IN (OLD.trace, NEW.trace);
END;
CREATE TRIGGER trace_metadata_json_after_delete AFTER DELETE ON trace_metadata BEGIN
    UPDATE traces SET metadata_json =
        (SELECT json_group_object(key, value) FROM trace_metadata WHERE trace = OLD.trace)
    WHERE id = OLD.trace;
END;
"#;

/// MLflow 3 traces (issue 18): trace infos, their tags, request metadata, spans and
/// assessments. Spans live here, not in the artifact store (MLflow's SQL store does the same and
/// tags the trace `mlflow.trace.spansLocation = TRACKING_STORE`): one row per span, the span's
/// OTel JSON in `content`, name/type/status/times indexed for `span.*` filters and paging.
/// Child rows are deleted explicitly with their trace (no reliance on `foreign_keys`).
const MIGRATION_4: &str = r#"
CREATE TABLE traces (
    id                INTEGER PRIMARY KEY,
    trace_id          TEXT NOT NULL UNIQUE,
    experiment_id     INTEGER NOT NULL REFERENCES experiments (experiment_id),
    client_request_id TEXT,
    request_time      INTEGER NOT NULL,
    execution_time    INTEGER,
    state             TEXT NOT NULL,
    request_preview   TEXT,
    response_preview  TEXT
);
CREATE INDEX traces_by_experiment_time ON traces (experiment_id, request_time DESC, trace_id);

CREATE TABLE trace_tags (
    trace INTEGER NOT NULL REFERENCES traces (id) ON DELETE CASCADE,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (trace, key)
) WITHOUT ROWID;
CREATE INDEX trace_tags_by_key_value ON trace_tags (key, value);

CREATE TABLE trace_metadata (
    trace INTEGER NOT NULL REFERENCES traces (id) ON DELETE CASCADE,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (trace, key)
) WITHOUT ROWID;
CREATE INDEX trace_metadata_by_key_value ON trace_metadata (key, value);

CREATE TABLE spans (
    trace          INTEGER NOT NULL REFERENCES traces (id) ON DELETE CASCADE,
    span_id        TEXT NOT NULL,
    parent_span_id TEXT,
    name           TEXT NOT NULL,
    type           TEXT,
    status         TEXT NOT NULL,
    start_ns       INTEGER NOT NULL,
    end_ns         INTEGER,
    content        TEXT NOT NULL,
    PRIMARY KEY (trace, span_id)
) WITHOUT ROWID;
CREATE INDEX spans_by_trace_start ON spans (trace, start_ns, span_id);

CREATE TABLE assessments (
    assessment_id    TEXT PRIMARY KEY,
    trace            INTEGER NOT NULL REFERENCES traces (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    create_time      INTEGER NOT NULL,
    last_update_time INTEGER NOT NULL,
    body             TEXT NOT NULL
);
CREATE INDEX assessments_by_trace ON assessments (trace, create_time);
"#;

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A private in-memory database (`sqlite://` or `sqlite:///:memory:`).
    Memory,
    /// A database file.
    File(PathBuf),
}

/// Parses a store URI as MLflow (SQLAlchemy) writes it: `sqlite:///relative.db` is a path
/// relative to the working directory, `sqlite:////abs/path.db` an absolute path, `sqlite://`
/// and `sqlite:///:memory:` an in-memory database.
pub fn parse_uri(uri: &str) -> cairn_plugin_api::Result<Location> {
    let bad = |why: &str| {
        cairn_plugin_api::Error::invalid(format!(
            "invalid SQLite store URI '{uri}': {why}; expected sqlite:///relative/path.db, \
             sqlite:////absolute/path.db or sqlite:// (in memory)"
        ))
    };
    let rest = uri
        .strip_prefix("sqlite://")
        .ok_or_else(|| bad("it must start with sqlite://"))?;
    if rest.contains('?') {
        return Err(bad("query parameters are not supported"));
    }
    if rest.is_empty() {
        return Ok(Location::Memory);
    }
    let path = rest
        .strip_prefix('/')
        .ok_or_else(|| bad("a host part is not allowed"))?;
    match path {
        "" => Err(bad("the path is empty")),
        ":memory:" => Ok(Location::Memory),
        p => Ok(Location::File(PathBuf::from(p))),
    }
}

/// What a database file holds before the store opens it for writing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FileState {
    /// Missing, empty, or a SQLite database without tables: to be initialised.
    New,
    /// A Cairn database.
    Cairn,
}

fn not_cairn(path: &Path, why: impl std::fmt::Display) -> StoreError {
    invalid(format!(
        "'{}' is not a Cairn database: {why}. Cairn refuses to open it and has not modified it; \
         point the store at a new file instead",
        path.display()
    ))
}

/// Decides, without modifying anything, whether `path` may be opened as a Cairn database.
pub(crate) fn inspect_file(path: &Path) -> StoreResult<FileState> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::New),
        Err(e) => {
            return Err(invalid(format!(
                "cannot read the database file '{}': {e}",
                path.display()
            )));
        }
    };
    let mut header = Vec::with_capacity(100);
    file.by_ref()
        .take(100)
        .read_to_end(&mut header)
        .map_err(|e| {
            invalid(format!(
                "cannot read the database file '{}': {e}",
                path.display()
            ))
        })?;
    if header.is_empty() {
        return Ok(FileState::New);
    }
    if header.len() < 100 || &header[..16] != b"SQLite format 3\0" {
        return Err(not_cairn(path, "it is not a SQLite database file"));
    }
    let app_id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
    if app_id == APPLICATION_ID {
        return Ok(FileState::Cairn);
    }
    if app_id != 0 {
        return Err(not_cairn(
            path,
            format_args!(
                "it is a SQLite database of another application (application_id {app_id:#x})"
            ),
        ));
    }
    // A SQLite database without Cairn's id: acceptable only if it holds nothing at all.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not_cairn(path, format_args!("SQLite cannot read it ({e})")))?;
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
        .map_err(|e| not_cairn(path, format_args!("SQLite cannot read it ({e})")))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| not_cairn(path, format_args!("SQLite cannot read it ({e})")))?;
    if names.is_empty() {
        return Ok(FileState::New);
    }
    if names.iter().any(|n| n == "alembic_version") {
        return Err(not_cairn(
            path,
            "it looks like an MLflow database (it has an alembic_version table); Cairn does not \
             share or migrate MLflow's SQL schema",
        ));
    }
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    Err(not_cairn(
        path,
        format_args!(
            "it is a SQLite database with tables Cairn did not create ({}{})",
            shown.join(", "),
            if names.len() > 5 { ", ..." } else { "" }
        ),
    ))
}

fn pragma_i64(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
}

/// Brings the schema of `conn` to [`SCHEMA_VERSION`]: initialises an empty database, applies
/// missing migrations to an older one, refuses a newer one. `what` names the database in
/// messages. Running it again on an up-to-date database changes nothing.
pub(crate) fn migrate(conn: &mut Connection, what: &str) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let app_id = pragma_i64(&tx, "application_id")?;
    let mut version = pragma_i64(&tx, "user_version")?;
    if app_id == 0 {
        let objects: i64 = tx.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            [],
            |r| r.get(0),
        )?;
        if objects != 0 {
            return Err(invalid(format!(
                "'{what}' is not a Cairn database: it has tables Cairn did not create"
            )));
        }
        tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}"))?;
        version = 0;
    } else if app_id != i64::from(APPLICATION_ID) {
        return Err(invalid(format!(
            "'{what}' is not a Cairn database (application_id {app_id:#x})"
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(invalid(format!(
            "'{what}' has Cairn schema version {version}, newer than this build knows \
             ({SCHEMA_VERSION}); upgrade Cairn to open it"
        )));
    }
    if version > 0 {
        let recorded: i64 = tx
            .query_row("SELECT version FROM cairn_schema", [], |r| r.get(0))
            .map_err(|e| {
                invalid(format!(
                    "'{what}' claims to be a Cairn database but its cairn_schema table is \
                     unreadable: {e}"
                ))
            })?;
        if recorded != version {
            return Err(invalid(format!(
                "'{what}' is inconsistent: user_version {version} but cairn_schema says {recorded}"
            )));
        }
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let to = i as i64 + 1;
        tx.execute_batch(sql)?;
        if to == 1 {
            tx.execute("INSERT INTO cairn_schema (version) VALUES (1)", [])?;
        } else {
            tx.execute("UPDATE cairn_schema SET version = ?1", [to])?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {to}"))?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_as_mlflow_writes_them() {
        assert_eq!(parse_uri("sqlite://").unwrap(), Location::Memory);
        assert_eq!(parse_uri("sqlite:///:memory:").unwrap(), Location::Memory);
        assert_eq!(
            parse_uri("sqlite:///mlflow.db").unwrap(),
            Location::File(PathBuf::from("mlflow.db"))
        );
        assert_eq!(
            parse_uri("sqlite:///dir/sub/x.db").unwrap(),
            Location::File(PathBuf::from("dir/sub/x.db"))
        );
        assert_eq!(
            parse_uri("sqlite:////abs/path.db").unwrap(),
            Location::File(PathBuf::from("/abs/path.db"))
        );
        for bad in [
            "postgresql://x",
            "sqlite:x.db",
            "sqlite://host/x.db",
            "sqlite:///",
            "sqlite:///x.db?mode=ro",
        ] {
            let e = parse_uri(bad).unwrap_err();
            assert_eq!(
                e.kind,
                cairn_plugin_api::ErrorKind::InvalidArgument,
                "{bad}"
            );
            assert!(e.message.contains(bad), "{}", e.message);
        }
    }

    #[test]
    fn migrate_initialises_then_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, "mem").unwrap();
        assert_eq!(
            pragma_i64(&conn, "application_id").unwrap(),
            i64::from(APPLICATION_ID)
        );
        assert_eq!(pragma_i64(&conn, "user_version").unwrap(), SCHEMA_VERSION);
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
                .unwrap()
        };
        let before = count(&conn);
        migrate(&mut conn, "mem").unwrap();
        assert_eq!(count(&conn), before);
        let v: i64 = conn
            .query_row("SELECT version FROM cairn_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    /// An in-memory database at schema `version` (the first `version` migrations applied and
    /// recorded), then `rows` run on it.
    fn database_at(version: usize, rows: &str) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        let migrations = MIGRATIONS[..version].concat();
        conn.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; {migrations} \
             INSERT INTO cairn_schema (version) VALUES ({version}); \
             PRAGMA user_version = {version}; {rows}"
        ))
        .unwrap();
        conn
    }

    #[test]
    fn version_1_database_migrates_to_the_registry_schema() {
        let mut conn = database_at(
            1,
            "INSERT INTO experiments VALUES (7, 'kept', 'file:///a', 'active', 1, 1);",
        );
        migrate(&mut conn, "mem").unwrap();
        assert_eq!(pragma_i64(&conn, "user_version").unwrap(), SCHEMA_VERSION);
        let name: String = conn
            .query_row(
                "SELECT name FROM experiments WHERE experiment_id = 7",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(name, "kept");
        conn.execute(
            "INSERT INTO registered_models (name, creation_timestamp, last_updated_timestamp) \
             VALUES ('m', 1, 1)",
            [],
        )
        .unwrap();
    }

    #[test]
    fn version_7_trace_tags_take_their_traces_experiment_time_and_id() {
        let mut conn = database_at(
            7,
            "INSERT INTO experiments VALUES (1, 'e', 'file:///a', 'active', 1, 1); \
             INSERT INTO experiments VALUES (2, 'f', 'file:///b', 'active', 1, 1); \
             INSERT INTO traces (id, trace_id, experiment_id, request_time, state) \
                 VALUES (3, 'tr-a', 1, 10, 'OK'), (4, 'tr-b', 2, 20, 'OK'); \
             INSERT INTO trace_tags (trace, key, value) \
                 VALUES (3, 'g', 'x'), (3, 'h', 'y'), (4, 'g', 'x');",
        );
        migrate(&mut conn, "mem").unwrap();
        let tags = |conn: &Connection| -> Vec<(i64, String, i64, i64, String)> {
            conn.prepare(
                "SELECT trace, key, experiment_id, request_time, trace_id FROM trace_tags \
                 ORDER BY trace, key",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        let row = |t: i64, k: &str, e: i64, time: i64, id: &str| {
            (t, k.to_string(), e, time, id.to_string())
        };
        assert_eq!(
            tags(&conn),
            [
                row(3, "g", 1, 10, "tr-a"),
                row(3, "h", 1, 10, "tr-a"),
                row(4, "g", 2, 20, "tr-b")
            ]
        );
        // From now on the triggers keep them equal: a new tag takes its trace's, and a trace's
        // new time or experiment reaches its tags.
        conn.execute_batch(
            "INSERT INTO trace_tags (trace, key, value) VALUES (4, 'h', 'z'); \
             UPDATE traces SET request_time = 30, experiment_id = 1 WHERE id = 4;",
        )
        .unwrap();
        assert_eq!(
            tags(&conn)[2..],
            [row(4, "g", 1, 30, "tr-b"), row(4, "h", 1, 30, "tr-b")]
        );
    }

    #[test]
    fn version_8_traces_take_their_tags_and_metadata_as_json_objects() {
        let mut conn = database_at(
            8,
            "INSERT INTO experiments VALUES (1, 'e', 'file:///a', 'active', 1, 1); \
             INSERT INTO traces (id, trace_id, experiment_id, request_time, state) \
                 VALUES (3, 'tr-a', 1, 10, 'OK'), (4, 'tr-b', 1, 20, 'OK'); \
             INSERT INTO trace_tags (trace, key, value) \
                 VALUES (3, 'h', 'say \"hi\"'), (3, 'g', 'x'); \
             INSERT INTO trace_metadata (trace, key, value) VALUES (3, 'm', '1');",
        );
        migrate(&mut conn, "mem").unwrap();
        let objects = |conn: &Connection| -> Vec<(String, String)> {
            conn.prepare("SELECT tags_json, metadata_json FROM traces ORDER BY id")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let pair = |t: &str, m: &str| (t.to_string(), m.to_string());
        assert_eq!(
            objects(&conn),
            [
                pair(r#"{"g":"x","h":"say \"hi\""}"#, r#"{"m":"1"}"#),
                pair("{}", "{}")
            ]
        );
        // From now on the triggers keep them equal, each change on its own: an entry added,
        // changed (the store's upsert) and deleted, in both tables; a new trace.
        let upsert = |table: &str, trace: i64, key: &str, value: &str| {
            format!(
                "INSERT INTO {table} (trace, key, value) VALUES ({trace}, '{key}', '{value}') \
                 ON CONFLICT (trace, key) DO UPDATE SET value = excluded.value"
            )
        };
        let steps = [
            (
                upsert("trace_tags", 3, "a", "new"),
                [
                    r#"{"a":"new","g":"x","h":"say \"hi\""}"#,
                    r#"{"m":"1"}"#,
                    "{}",
                ],
            ),
            (
                "DELETE FROM trace_tags WHERE trace = 3 AND key = 'h'".into(),
                [r#"{"a":"new","g":"x"}"#, r#"{"m":"1"}"#, "{}"],
            ),
            (
                upsert("trace_tags", 3, "g", "y"),
                [r#"{"a":"new","g":"y"}"#, r#"{"m":"1"}"#, "{}"],
            ),
            (
                upsert("trace_metadata", 4, "k", "v"),
                [r#"{"a":"new","g":"y"}"#, r#"{"m":"1"}"#, r#"{"k":"v"}"#],
            ),
            (
                upsert("trace_metadata", 4, "k", "w"),
                [r#"{"a":"new","g":"y"}"#, r#"{"m":"1"}"#, r#"{"k":"w"}"#],
            ),
            (
                "DELETE FROM trace_metadata WHERE trace = 3".into(),
                [r#"{"a":"new","g":"y"}"#, "{}", r#"{"k":"w"}"#],
            ),
        ];
        for (statement, [tags_3, metadata_3, metadata_4]) in steps {
            conn.execute_batch(&statement).unwrap();
            assert_eq!(
                objects(&conn)[..2],
                [pair(tags_3, metadata_3), pair("{}", metadata_4)],
                "after {statement}"
            );
        }
        conn.execute_batch(
            "INSERT INTO traces (id, trace_id, experiment_id, request_time, state) \
             VALUES (5, 'tr-c', 1, 30, 'OK')",
        )
        .unwrap();
        assert_eq!(objects(&conn)[2], pair("{}", "{}"));
    }

    #[test]
    fn version_5_spans_move_to_a_rowid_table_with_every_span_kept() {
        let mut conn = database_at(
            5,
            "INSERT INTO experiments VALUES (1, 'e', 'file:///a', 'active', 1, 1); \
             INSERT INTO traces (id, trace_id, experiment_id, request_time, state) \
                 VALUES (3, 'tr-a', 1, 1, 'OK');",
        );
        let insert_span = |conn: &Connection, id: &str, start: i64, content: &str| {
            conn.execute(
                "INSERT INTO spans (trace, span_id, name, status, start_ns, content) \
                 VALUES (3, ?1, 'n', 'OK', ?2, ?3)",
                rusqlite::params![id, start, content],
            )
        };
        let big = "x".repeat(3000);
        for (id, start, content) in [("b", 20, "{}"), ("a", 10, big.as_str()), ("c", 10, "[]")] {
            insert_span(&conn, id, start, content).unwrap();
        }
        migrate(&mut conn, "mem").unwrap();
        assert_eq!(pragma_i64(&conn, "user_version").unwrap(), SCHEMA_VERSION);
        let without_rowid: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'spans' AND sql LIKE '%WITHOUT ROWID%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(without_rowid, 0);
        let mut stmt = conn
            .prepare("SELECT span_id, length(content) FROM spans WHERE trace = 3 ORDER BY id")
            .unwrap();
        let rows: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let want = [
            ("a".to_string(), 3000),
            ("c".to_string(), 2),
            ("b".to_string(), 2),
        ];
        assert_eq!(rows, want);
        // The (trace, span_id) key still holds.
        assert!(insert_span(&conn, "a", 1, "").is_err());
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, "mem").unwrap();
        conn.execute_batch("PRAGMA user_version = 99; UPDATE cairn_schema SET version = 99")
            .unwrap();
        let e = cairn_plugin_api::Error::from(migrate(&mut conn, "mem").unwrap_err());
        assert!(e.message.contains("newer than this build"), "{}", e.message);
    }

    #[test]
    fn foreign_tables_are_refused_by_migrate() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        assert!(migrate(&mut conn, "mem").is_err());
    }
}
