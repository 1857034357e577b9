//! The ModelRegistryStore conformance suite (`cairn_plugin_api::testkit::registry`),
//! unchanged, against the PostgreSQL store: a registry instance opened on a fresh schema while
//! a tracking instance (as the server runs them) holds the same database.

mod common;

use cairn_plugin_api::ModelRegistryStore;
use cairn_store_postgres::PostgresStore;
use std::sync::Arc;

fn store() -> (Arc<dyn ModelRegistryStore>, Arc<PostgresStore>) {
    let uri = common::fresh_uri();
    let root = Some("file:///tmp/cairn-pg-artifacts");
    let tracking = cairn_store_postgres::open(&uri, root).unwrap_or_else(|e| panic!("open: {e}"));
    let registry = cairn_store_postgres::open(&uri, root).unwrap_or_else(|e| panic!("open: {e}"));
    (Arc::new(registry), Arc::new(tracking))
}

mod postgres {
    cairn_plugin_api::model_registry_store_conformance!(super::store(), skips = []);
}
