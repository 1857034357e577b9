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

cairn_plugin_api::tracking_store_conformance!(store());
