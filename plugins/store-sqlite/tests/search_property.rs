//! The search property tests (`cairn_plugin_api::testkit::search_property`) against the SQLite
//! store: a private in-memory database per case.

cairn_plugin_api::search_property_tests!(|| {
    cairn_store_sqlite::open("sqlite://", Some("file:///tmp/cairn-prop")).unwrap()
});
