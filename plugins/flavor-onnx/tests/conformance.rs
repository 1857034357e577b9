//! The flavor conformance suite on a perceptron built in code, against a reference computed
//! by plain arithmetic (`cairn_flavor_onnx::fixtures`).

use cairn_flavor_onnx::{OnnxFlavor, fixtures};
use cairn_plugin_api::flavor::ModelCapabilities;
use cairn_plugin_api::testkit::flavor::FlavorCase;
use std::sync::Arc;

fn mlp_case() -> (FlavorCase, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    fixtures::write_mlp(dir.path()).unwrap();
    let rows = fixtures::mlp_rows(7);
    let case = FlavorCase {
        flavor: Arc::new(OnnxFlavor),
        model_dir: dir.path().to_path_buf(),
        input: fixtures::mlp_input(&rows),
        expected: fixtures::mlp_expected(&rows),
        tolerance: 1e-5,
        capabilities: ModelCapabilities::new(true, true, true),
    };
    (case, dir)
}

cairn_plugin_api::model_flavor_conformance!(mlp_case(), skips = []);
