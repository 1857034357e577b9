//! The model-flavor conformance cases, stamped by
//! [`model_flavor_conformance!`](crate::model_flavor_conformance).
//!
//! A flavor is tested on a real model it can load: a [`FlavorCase`] names the flavor, a model
//! directory (with its `MLmodel`), an input and the output an independent reference computed
//! for it (not the flavor itself), and the capabilities the loaded model must report.

use super::support::{expect_err, ok, unique_name};
use crate::flavor::{
    Column, MlModel, ModelCapabilities, ModelData, Params, Table, Tensor, TensorData,
};
use crate::mlmodel::MLMODEL_FILE_NAME;
use crate::{ErrorKind, LoadedModel, ModelFlavor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One model a flavor must serve, with its reference prediction.
pub struct FlavorCase {
    /// The flavor under test.
    pub flavor: Arc<dyn ModelFlavor>,
    /// The model directory (holding `MLmodel`).
    pub model_dir: PathBuf,
    /// An input of at least two rows.
    pub input: ModelData,
    /// The reference output for `input`.
    pub expected: ModelData,
    /// The relative tolerance of numeric comparisons (e.g. `1e-5`).
    pub tolerance: f64,
    /// What the loaded model must report.
    pub capabilities: ModelCapabilities,
}

impl FlavorCase {
    /// The declared capabilities (for the skip check).
    pub fn capabilities(&self) -> ModelCapabilities {
        self.capabilities
    }

    /// The parsed `MLmodel` of the model directory.
    pub fn mlmodel(&self) -> MlModel {
        ok(
            MlModel::read_dir(&self.model_dir),
            "reading the case's MLmodel",
        )
    }

    async fn load(&self) -> Arc<dyn LoadedModel> {
        ok(
            self.flavor.load(&self.model_dir, &self.mlmodel()).await,
            "loading the case's model",
        )
    }
}

/// Panics unless `actual` equals `expected`: the same names, shapes and types, numbers within
/// `tolerance` relative (NaN equal to NaN).
pub fn assert_close(actual: &ModelData, expected: &ModelData, tolerance: f64, what: &str) {
    fn numbers(d: &TensorData) -> Option<Vec<f64>> {
        Some(match d {
            TensorData::Int8(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::Int16(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::Int32(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::Int64(v) => v.iter().map(|x| *x as f64).collect(),
            TensorData::UInt8(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::UInt16(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::UInt32(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::UInt64(v) => v.iter().map(|x| *x as f64).collect(),
            TensorData::Float32(v) => v.iter().map(|x| f64::from(*x)).collect(),
            TensorData::Float64(v) => v.clone(),
            _ => return None,
        })
    }
    let same = |a: &TensorData, b: &TensorData, name: &str| {
        assert_eq!(a.dtype(), b.dtype(), "{what}: '{name}' has the wrong type");
        match (numbers(a), numbers(b)) {
            (Some(x), Some(y)) => {
                assert_eq!(x.len(), y.len(), "{what}: '{name}' has the wrong length");
                for (i, (x, y)) in x.iter().zip(&y).enumerate() {
                    let close = (x.is_nan() && y.is_nan())
                        || (x - y).abs() <= tolerance * x.abs().max(y.abs()).max(1e-30)
                        || x == y;
                    assert!(close, "{what}: '{name}'[{i}] is {x}, expected {y}");
                }
            }
            _ => assert_eq!(a, b, "{what}: '{name}' differs"),
        }
    };
    match (actual, expected) {
        (ModelData::Tensors(a), ModelData::Tensors(b)) => {
            let names = |m: &BTreeMap<String, Tensor>| m.keys().cloned().collect::<Vec<_>>();
            assert_eq!(names(a), names(b), "{what}: output names differ");
            for (name, t) in a {
                assert_eq!(
                    t.shape(),
                    b[name].shape(),
                    "{what}: '{name}' has the wrong shape"
                );
                same(t.data(), b[name].data(), name);
            }
        }
        (ModelData::Table(a), ModelData::Table(b)) => {
            assert_eq!(a.rows(), b.rows(), "{what}: row counts differ");
            let names = |t: &Table| {
                t.columns()
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect::<Vec<_>>()
            };
            assert_eq!(names(a), names(b), "{what}: columns differ");
            for (x, y) in a.columns().iter().zip(b.columns()) {
                assert_eq!(
                    x.missing(),
                    y.missing(),
                    "{what}: '{}' missing values differ",
                    x.name()
                );
                same(x.values(), y.values(), x.name());
            }
        }
        _ => panic!("{what}: got {actual:?}, expected {expected:?}"),
    }
}

/// Rows `start..end` (the first dimension) of `data`.
pub fn rows(data: &ModelData, start: usize, end: usize) -> ModelData {
    fn slice(d: &TensorData, start: usize, end: usize) -> TensorData {
        d.slice(start..end)
    }
    match data {
        ModelData::Tensors(m) => ModelData::Tensors(
            m.iter()
                .map(|(name, t)| {
                    let row: usize = t.shape()[1..].iter().product();
                    let mut shape = t.shape().to_vec();
                    shape[0] = end - start;
                    let sliced = slice(t.data(), start * row, end * row);
                    (name.clone(), ok(Tensor::new(shape, sliced), "slicing rows"))
                })
                .collect(),
        ),
        ModelData::Table(t) => ModelData::Table(ok(
            Table::new(
                t.columns()
                    .iter()
                    .map(|c| {
                        let missing = c.missing().map(|m| m[start..end].to_vec());
                        ok(
                            Column::new(c.name(), slice(c.values(), start, end), missing),
                            "slicing",
                        )
                    })
                    .collect(),
            ),
            "slicing rows",
        )),
    }
}

fn row_count(data: &ModelData) -> usize {
    match data {
        ModelData::Tensors(m) => m
            .values()
            .next()
            .map_or(0, |t| t.shape().first().copied().unwrap_or(0)),
        ModelData::Table(t) => t.rows(),
    }
}

/// A fresh copy of `dir` in the temporary directory.
fn copy_dir(dir: &Path) -> PathBuf {
    let to = std::env::temp_dir().join(unique_name("cairn-flavor-case"));
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("creating a copy of the model directory");
        for entry in std::fs::read_dir(from).expect("reading the model directory") {
            let entry = entry.expect("reading the model directory");
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).expect("copying a model file");
            }
        }
    }
    copy(dir, &to);
    to
}

/// Loads the model and predicts the reference output.
pub async fn predictions_match_the_reference(case: &FlavorCase) {
    let model = case.load().await;
    let out = ok(
        model.predict(case.input.clone(), Params::new()).await,
        "predicting",
    );
    assert_close(&out, &case.expected, case.tolerance, "the prediction");
}

/// The loaded model reports the declared capabilities.
pub async fn capabilities_are_reported(case: &FlavorCase) {
    assert_eq!(case.load().await.capabilities(), case.capabilities);
}

/// The loaded model's signature has the `MLmodel` file's inputs and outputs when it declares them.
pub async fn signature_is_the_mlmodel_one(case: &FlavorCase) {
    let declared = case.mlmodel().signature.unwrap_or_default();
    let sig = case.load().await.signature();
    if declared.inputs.is_some() {
        assert_eq!(sig.inputs, declared.inputs, "the signature's inputs");
    }
    if declared.outputs.is_some() {
        assert_eq!(sig.outputs, declared.outputs, "the signature's outputs");
    }
    assert!(
        sig.inputs.is_some(),
        "a loaded model knows its inputs: {sig:?}"
    );
}

/// A model directory without its model files is `InvalidArgument`.
pub async fn missing_model_files_are_invalid_argument(case: &FlavorCase) {
    let dir = std::env::temp_dir().join(unique_name("cairn-flavor-empty"));
    std::fs::create_dir_all(&dir).expect("creating a directory");
    std::fs::copy(
        case.model_dir.join(MLMODEL_FILE_NAME),
        dir.join(MLMODEL_FILE_NAME),
    )
    .expect("copying MLmodel");
    let r = case.flavor.load(&dir, &case.mlmodel()).await;
    let _ = std::fs::remove_dir_all(&dir);
    expect_err(
        r.map(drop),
        ErrorKind::InvalidArgument,
        "loading without model files",
    );
}

/// A model directory whose model files are garbage is `InvalidArgument` (never a panic).
pub async fn corrupt_model_files_are_invalid_argument(case: &FlavorCase) {
    let dir = copy_dir(&case.model_dir);
    fn spoil(dir: &Path) {
        for entry in std::fs::read_dir(dir).expect("reading the copy") {
            let path = entry.expect("reading the copy").path();
            if path.is_dir() {
                spoil(&path);
            } else if path.file_name().is_some_and(|n| n != MLMODEL_FILE_NAME) {
                std::fs::write(&path, b"\x08\x01garbage, not a model\xff\xfe").expect("spoiling");
            }
        }
    }
    spoil(&dir);
    let r = case.flavor.load(&dir, &case.mlmodel()).await;
    let _ = std::fs::remove_dir_all(&dir);
    expect_err(
        r.map(drop),
        ErrorKind::InvalidArgument,
        "loading corrupt model files",
    );
}

/// An input whose names the model does not know is `InvalidArgument` naming what is missing.
pub async fn unknown_input_names_are_invalid_argument(case: &FlavorCase) {
    let model = case.load().await;
    let renamed = match case.input.clone() {
        ModelData::Tensors(m) => ModelData::Tensors(
            m.into_values()
                .enumerate()
                .map(|(i, t)| (format!("no_such_input_{i}"), t))
                .collect(),
        ),
        ModelData::Table(t) => ModelData::Table(ok(
            Table::new(
                t.into_columns()
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let (_, values, missing) = c.into_parts();
                        ok(
                            Column::new(format!("no_such_column_{i}"), values, missing),
                            "renaming",
                        )
                    })
                    .collect(),
            ),
            "renaming",
        )),
    };
    expect_err(
        model.predict(renamed, Params::new()).await,
        ErrorKind::InvalidArgument,
        "predicting with unknown input names",
    );
}

/// A tensor of the wrong rank is `InvalidArgument`.
pub async fn wrong_shapes_are_invalid_argument(case: &FlavorCase) {
    let model = case.load().await;
    let ModelData::Tensors(m) = case.input.clone() else {
        panic!("this case needs a tensor input");
    };
    let reshaped = m
        .into_iter()
        .map(|(name, t)| {
            let (shape, data) = t.into_parts();
            // One more dimension than the model takes.
            let mut shape = shape;
            shape.insert(0, 1);
            (name, ok(Tensor::new(shape, data), "reshaping"))
        })
        .collect();
    expect_err(
        model
            .predict(ModelData::Tensors(reshaped), Params::new())
            .await,
        ErrorKind::InvalidArgument,
        "predicting with a wrongly shaped tensor",
    );
}

/// Params the model does not declare are ignored; declared ones are validated.
pub async fn params_are_validated_against_the_signature(case: &FlavorCase) {
    let model = case.load().await;
    let sig = model.signature();
    let unknown: Params = [(unique_name("p"), serde_json::json!(1))]
        .into_iter()
        .collect();
    let out = ok(
        model.predict(case.input.clone(), unknown).await,
        "predicting with unknown params",
    );
    assert_close(
        &out,
        &case.expected,
        case.tolerance,
        "the prediction with unknown params",
    );
    if let Some(spec) = sig.params.as_ref().and_then(|p| p.first()) {
        let bad: Params = [(spec.name.clone(), serde_json::json!({"not": "a value"}))]
            .into_iter()
            .collect();
        expect_err(
            model.predict(case.input.clone(), bad).await,
            ErrorKind::InvalidArgument,
            "predicting with an ill-typed param",
        );
    }
}

/// Concurrent predictions on one loaded model all give the reference output.
pub async fn concurrent_predictions_agree(case: &FlavorCase) {
    let model = case.load().await;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let model = model.clone();
            let input = case.input.clone();
            std::thread::spawn(move || {
                futures_executor::block_on(model.predict(input, Params::new()))
            })
        })
        .collect();
    for t in threads {
        let out = ok(
            t.join().expect("a prediction thread panicked"),
            "predicting concurrently",
        );
        assert_close(
            &out,
            &case.expected,
            case.tolerance,
            "a concurrent prediction",
        );
    }
}

/// A batchable model predicts each row alone as it predicts it in the batch.
pub async fn rows_predict_alone_as_in_a_batch(case: &FlavorCase) {
    let model = case.load().await;
    let n = row_count(&case.input);
    assert!(n >= 2, "the case's input needs at least two rows");
    for i in 0..n {
        let out = ok(
            model
                .predict(rows(&case.input, i, i + 1), Params::new())
                .await,
            "predicting one row",
        );
        assert_close(
            &out,
            &rows(&case.expected, i, i + 1),
            case.tolerance,
            "a single row",
        );
    }
}
