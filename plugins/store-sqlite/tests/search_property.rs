//! The search property tests (`cairn_plugin_api::testkit::search_property`) against the SQLite
//! store: a private in-memory database per case.

use cairn_plugin_api::testkit::search_property;

fn open() -> cairn_store_sqlite::SqliteStore {
    cairn_store_sqlite::open("sqlite://", Some("file:///tmp/cairn-prop")).unwrap()
}

#[test]
fn run_search_matches_the_reference_evaluator() {
    search_property::runs_match_the_reference_evaluator(open, 200);
}

#[test]
fn model_version_search_matches_the_reference_evaluator() {
    search_property::model_versions_match_the_reference_evaluator(open, 96);
}

#[test]
fn registered_model_search_matches_the_reference_evaluator() {
    search_property::registered_models_match_the_reference_evaluator(open, 96);
}
