//! The import contract (`cairn_plugin_api::testkit::import`) against the PostgreSQL store.

mod common;

#[test]
fn import_contract() {
    let uri = common::fresh_uri();
    let store =
        cairn_store_postgres::open(&uri, Some("file:///tmp/cairn-import-artifacts")).unwrap();
    futures_executor::block_on(cairn_plugin_api::testkit::import::contract(&store, &store));
}
