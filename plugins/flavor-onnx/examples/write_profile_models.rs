//! Writes the fixture models the release build (`scripts/release-build`) serves to learn which
//! functions start-up and scoring run: `cargo run -p cairn-flavor-onnx --example
//! write_profile_models -- <dir>` makes `<dir>/mlp` (`Gemm` layers, a tensor signature),
//! `<dir>/dense` (`MatMul`/`Add` layers of 48, 192, 192 and 5, its weights in an external data file) and `<dir>/linear` (an
//! `ai.onnx.ml` logistic regression of 8 features).

use cairn_flavor_onnx::fixtures;
use std::path::Path;

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: write_profile_models <directory>");
        std::process::exit(2);
    };
    let dir = Path::new(&dir);
    let written = fixtures::write_mlp(&dir.join("mlp"))
        .and_then(|()| {
            fixtures::write_model(&dir.join("dense"), fixtures::dense_onnx(&[48, 192, 192, 5]))
        })
        .and_then(|()| {
            fixtures::write_model(&dir.join("linear"), fixtures::linear_classifier_onnx(8))
        });
    if let Err(e) = written {
        eprintln!("write_profile_models: {}: {e}", dir.display());
        std::process::exit(1);
    }
}
