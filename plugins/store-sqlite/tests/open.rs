//! Opening databases: foreign files are refused untouched, Cairn files reopen idempotently,
//! and readers work while a write is in progress.

use cairn_plugin_api::entities::{Metric, ViewType};
use cairn_plugin_api::tracking::{CreateExperiment, CreateRun, SearchRuns};
use cairn_plugin_api::{ErrorKind, TrackingStore};
use cairn_store_sqlite::{open, schema};
use futures_executor::block_on;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn uri(path: &Path) -> String {
    format!("sqlite:///{}", path.display())
}

fn snapshot(path: &Path) -> (Vec<u8>, std::time::SystemTime) {
    let bytes = std::fs::read(path).unwrap();
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    (bytes, mtime)
}

/// Opening `path` fails with InvalidArgument naming the file, and leaves it (and its
/// directory) exactly as it was.
fn assert_refused_untouched(path: &Path, needle: &str) {
    let before = snapshot(path);
    let dir_before: Vec<PathBuf> = list_dir(path.parent().unwrap());
    let err = open(&uri(path), Some("file:///tmp/a")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err}");
    assert!(
        err.message.contains(&path.display().to_string()),
        "{}",
        err.message
    );
    assert!(err.message.contains(needle), "{}", err.message);
    assert_eq!(snapshot(path), before, "the file changed");
    assert_eq!(
        list_dir(path.parent().unwrap()),
        dir_before,
        "files appeared next to it"
    );
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn an_mlflow_database_is_refused_and_not_modified() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlflow.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
             INSERT INTO alembic_version VALUES ('1b5f0d9ad7c1');
             CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name VARCHAR(256));
             INSERT INTO experiments VALUES (0, 'Default');",
        )
        .unwrap();
    }
    assert_refused_untouched(&path, "MLflow");
}

#[test]
fn a_file_of_random_bytes_is_refused_and_not_modified() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.db");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&path, bytes).unwrap();
    assert_refused_untouched(&path, "not a SQLite database");
}

#[test]
fn a_sqlite_database_of_someone_else_is_refused_and_not_modified() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hi');")
        .unwrap();
    assert_refused_untouched(&path, "notes");

    let path = dir.path().join("app.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA application_id = 1234; CREATE TABLE t (x);")
        .unwrap();
    assert_refused_untouched(&path, "another application");
}

#[test]
fn missing_and_empty_files_are_initialised_with_default_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("new.db");
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    for path in [missing, empty] {
        let store = open(&uri(&path), Some("s3://bucket/root")).unwrap();
        let exp = block_on(store.get_experiment("0")).unwrap();
        assert_eq!(exp.name, "Default");
        assert_eq!(exp.artifact_location, "s3://bucket/root/0");
        drop(store);
        let header = std::fs::read(&path).unwrap();
        assert_eq!(&header[..16], b"SQLite format 3\0");
        let app_id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
        assert_eq!(app_id, schema::APPLICATION_ID);
    }
}

#[test]
fn default_artifact_root_is_an_absolute_mlruns_uri() {
    let store = open("sqlite://", None).unwrap();
    let exp = block_on(store.get_experiment("0")).unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert!(
        exp.artifact_location.starts_with("file:///"),
        "{}",
        exp.artifact_location
    );
    assert!(
        exp.artifact_location.ends_with("/mlruns/0"),
        "{}",
        exp.artifact_location
    );
    assert!(
        exp.artifact_location
            .contains(cwd.file_name().unwrap().to_str().unwrap())
    );
}

fn schema_objects(path: &Path) -> Vec<String> {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut stmt = c
        .prepare("SELECT type || ' ' || name FROM sqlite_schema ORDER BY 1")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn reopening_keeps_data_and_changes_no_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let store = open(&uri(&path), None).unwrap();
    let id = block_on(store.create_experiment(CreateExperiment {
        name: "kept".into(),
        ..Default::default()
    }))
    .unwrap();
    drop(store);
    let before = schema_objects(&path);
    for _ in 0..2 {
        let store = open(&uri(&path), None).unwrap();
        assert_eq!(block_on(store.get_experiment(&id)).unwrap().name, "kept");
        drop(store);
        assert_eq!(schema_objects(&path), before);
    }
    let c = Connection::open(&path).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, schema::SCHEMA_VERSION);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.db");
    drop(open(&uri(&path), None).unwrap());
    {
        let c = Connection::open(&path).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.execute_batch("PRAGMA user_version = 999; UPDATE cairn_schema SET version = 999;")
            .unwrap();
    }
    let err = open(&uri(&path), None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert!(err.message.contains("999"), "{}", err.message);
}

/// While another connection holds the write lock, the store's readers still answer (WAL).
#[test]
fn reads_proceed_while_a_write_transaction_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let store = open(&uri(&path), None).unwrap();
    let run = block_on(store.create_run(CreateRun {
        experiment_id: "0".into(),
        start_time: 1,
        ..Default::default()
    }))
    .unwrap();
    let blocker = Connection::open(&path).unwrap();
    blocker
        .execute_batch("BEGIN IMMEDIATE; UPDATE runs SET user_id = 'x';")
        .unwrap();
    let got = block_on(store.get_run(&run.info.run_id)).unwrap();
    assert_eq!(
        got.info.user_id, "",
        "a reader sees the last committed state"
    );
    let page = block_on(store.search_runs(SearchRuns {
        experiment_ids: vec!["0".into()],
        filter: None,
        view_type: ViewType::All,
        max_results: 10,
        order_by: vec![],
        page_token: None,
    }))
    .unwrap();
    assert_eq!(page.items.len(), 1);
    blocker.execute_batch("ROLLBACK").unwrap();
}

/// Readers running alongside a stream of 1000-metric batches only ever see whole batches.
#[test]
fn concurrent_readers_see_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let store = Arc::new(open(&uri(&path), None).unwrap());
    let run_id = block_on(store.create_run(CreateRun {
        experiment_id: "0".into(),
        start_time: 1,
        ..Default::default()
    }))
    .unwrap()
    .info
    .run_id;
    const BATCHES: i64 = 20;
    let writer = {
        let store = store.clone();
        let run_id = run_id.clone();
        std::thread::spawn(move || {
            for b in 0..BATCHES {
                let metrics = (0..1000)
                    .map(|i| Metric::new("m", i as f64, b, b * 1000 + i))
                    .collect();
                block_on(store.log_batch(&run_id, metrics, vec![], vec![])).unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            let run_id = run_id.clone();
            std::thread::spawn(move || {
                let mut seen = 0;
                while seen < BATCHES * 1000 {
                    let page =
                        block_on(store.get_metric_history(&run_id, "m", 100_000, None)).unwrap();
                    let n = page.items.len() as i64;
                    assert_eq!(n % 1000, 0, "a reader saw half a batch: {n}");
                    if let Some(last) = page.items.last() {
                        let run = block_on(store.get_run(&run_id)).unwrap();
                        assert!(run.metric("m").unwrap().step >= last.step);
                    }
                    seen = n;
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
}
