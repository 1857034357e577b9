//! The search property tests (`cairn_plugin_api::testkit::search_property`) against the
//! PostgreSQL store: a fresh schema of the test database per case.

mod common;

use cairn_plugin_api::testkit::search_property;

fn open() -> cairn_store_postgres::PostgresStore {
    cairn_store_postgres::open(&common::fresh_uri(), Some("file:///tmp/cairn-prop")).unwrap()
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
