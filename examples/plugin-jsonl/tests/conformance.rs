//! The TrackingStore conformance suite against the jsonl store linked natively (cairn-core's
//! `tests/dynamic.rs` runs the same suite against it loaded from its shared library).

use cairn_plugin_api::{BuildContext, TrackingStore};
use std::sync::Arc;
use tempfile::TempDir;

/// A store in a new temporary directory, removed right after the store is dropped.
fn store() -> (Arc<dyn TrackingStore>, TempDir) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let uri = format!("jsonl://{}", dir.path().display());
    let store = cairn_example_jsonl::build_store(&BuildContext::for_uri(&uri))
        .unwrap_or_else(|e| panic!("open {uri}: {e}"));
    (store, dir)
}

cairn_plugin_api::tracking_store_conformance!(
    store(),
    skips = [
        log_inputs_model_inputs,
        logged_model_create_and_get,
        logged_model_create_in_deleted_or_unknown_experiment_fails,
        logged_model_get_unknown_is_not_found,
        logged_model_finalize_ready,
        logged_model_tags_set_overwrite_delete,
        logged_model_params,
        logged_model_metrics_come_from_runs,
        logged_model_search_filter_order_pages,
        logged_model_delete,
        logged_model_log_outputs_links_run,
    ]
);
