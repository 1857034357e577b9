//! The artifact conformance suite against the `mem` repository linked natively. CI also runs
//! it against the shared library, through Cairn's loader:
//! `cairn plugins check --conformance target/debug/libcairn_example_artifacts_mem.so`.

use cairn_plugin_api::{ArtifactRepository, BuildContext};
use std::sync::Arc;

/// A repository with a fresh, empty root of its own, as the suite requires.
fn fresh_repo() -> Arc<dyn ArtifactRepository> {
    let root = cairn_plugin_api::testkit::unique_name("conformance");
    cairn_example_artifacts_mem::build(&BuildContext::for_uri(format!("mem://bucket/{root}")))
        .expect("build a mem repository")
}

cairn_plugin_api::artifact_repository_conformance!(
    fresh_repo(),
    // An in-memory store has no multipart uploads and no presigned URLs.
    skips = [
        multipart_upload_round_trips,
        multipart_abort_leaves_nothing,
        multipart_complete_checks_the_parts,
        presigned_urls_are_urls,
    ],
);
