//! The search property tests (`cairn_plugin_api::testkit::search_property`) against the
//! PostgreSQL store: a fresh schema of the test database per case.

mod common;

cairn_plugin_api::search_property_tests!(|| {
    cairn_store_postgres::open(&common::fresh_uri(), Some("file:///tmp/cairn-prop")).unwrap()
});
