//! The TrackingStore conformance suite (`cairn_plugin_api::testkit::tracking`), unchanged,
//! against the PostgreSQL store on a real server, a fresh schema per test.

mod common;

use cairn_store_postgres::PostgresStore;
use std::sync::Arc;

fn store() -> Arc<PostgresStore> {
    let uri = common::fresh_uri();
    Arc::new(
        cairn_store_postgres::open(&uri, Some("file:///tmp/cairn-pg-artifacts"))
            .unwrap_or_else(|e| panic!("open the PostgreSQL store: {e}")),
    )
}

mod postgres {
    cairn_plugin_api::tracking_store_conformance!(super::store(), skips = []);
}
