//! The TrackingStore conformance suite (`cairn_plugin_api::testkit::tracking`) against the
//! SQLite store, twice: on a fresh database file per test (the deployed shape: WAL, a writer
//! thread and reader threads) and on a private in-memory database (one connection).

use cairn_store_sqlite::SqliteStore;
use std::sync::Arc;
use tempfile::TempDir;

/// A store on a new database file in a new temporary directory, which is removed right after
/// the store is dropped.
fn file_store() -> (Arc<SqliteStore>, TempDir) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let db = dir.path().join("cairn.db");
    let root = dir.path().join("artifacts");
    let db = db.to_str().expect("temporary path is UTF-8");
    let root = root.to_str().expect("temporary path is UTF-8");
    // An absolute path after `sqlite:///` gives MLflow's four-slash form `sqlite:////tmp/...`.
    let uri = format!("sqlite:///{db}");
    let store =
        cairn_store_sqlite::open(&uri, Some(root)).unwrap_or_else(|e| panic!("open {uri}: {e}"));
    (Arc::new(store), dir)
}

/// A store on a private in-memory database.
fn memory_store() -> (Arc<SqliteStore>, TempDir) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let root = dir.path().join("artifacts");
    let root = root.to_str().expect("temporary path is UTF-8");
    let store = cairn_store_sqlite::open("sqlite://", Some(root))
        .unwrap_or_else(|e| panic!("open sqlite://: {e}"));
    (Arc::new(store), dir)
}

mod file {
    cairn_plugin_api::tracking_store_conformance!(super::file_store(), skips = []);
}

mod memory {
    cairn_plugin_api::tracking_store_conformance!(super::memory_store(), skips = []);
}
