//! The ModelRegistryStore conformance suite (`cairn_plugin_api::testkit::registry`) against
//! the SQLite store: on a fresh database file per test (shared with a tracking-store instance,
//! as the server runs it) and on a private in-memory database.

use cairn_plugin_api::ModelRegistryStore;
use cairn_store_sqlite::SqliteStore;
use std::sync::Arc;
use tempfile::TempDir;

/// A registry on a new database file, opened by a second store instance while a first one
/// (the tracking side) holds the same file open.
fn file_store() -> (Arc<dyn ModelRegistryStore>, (Arc<SqliteStore>, TempDir)) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let db = dir.path().join("cairn.db");
    let root = dir.path().join("artifacts");
    let db = db.to_str().expect("temporary path is UTF-8");
    let root = root.to_str().expect("temporary path is UTF-8");
    let uri = format!("sqlite:///{db}");
    let tracking =
        cairn_store_sqlite::open(&uri, Some(root)).unwrap_or_else(|e| panic!("open {uri}: {e}"));
    let registry =
        cairn_store_sqlite::open(&uri, Some(root)).unwrap_or_else(|e| panic!("open {uri}: {e}"));
    (Arc::new(registry), (Arc::new(tracking), dir))
}

/// A registry on a private in-memory database.
fn memory_store() -> (Arc<SqliteStore>, TempDir) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let root = dir.path().join("artifacts");
    let root = root.to_str().expect("temporary path is UTF-8");
    let store = cairn_store_sqlite::open("sqlite://", Some(root))
        .unwrap_or_else(|e| panic!("open sqlite://: {e}"));
    (Arc::new(store), dir)
}

mod file {
    cairn_plugin_api::model_registry_store_conformance!(super::file_store(), skips = []);
}

mod memory {
    cairn_plugin_api::model_registry_store_conformance!(super::memory_store(), skips = []);
}
