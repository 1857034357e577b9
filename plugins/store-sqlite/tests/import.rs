//! The import contract (`cairn_plugin_api::testkit::import`) against the SQLite store.

#[test]
fn import_contract() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite:///{}", dir.path().join("cairn.db").display());
    let store = cairn_store_sqlite::open(&uri, Some("file:///tmp/cairn-import-artifacts")).unwrap();
    futures_executor::block_on(cairn_plugin_api::testkit::import::contract(&store, &store));
}
