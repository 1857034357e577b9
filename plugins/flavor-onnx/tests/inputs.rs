//! Input binding beyond the conformance suite: MLflow's casts, unnamed and table inputs, and
//! the error for an operator tract lacks.

use cairn_flavor_onnx::{OnnxFlavor, fixtures};
use cairn_plugin_api::flavor::{
    Column, MlModel, ModelData, ModelFlavor, Params, Table, Tensor, TensorData,
};
use cairn_plugin_api::testkit::flavor::assert_close;
use cairn_plugin_api::{ErrorKind, LoadedModel};
use futures_executor::block_on;
use prost::Message;
use std::sync::Arc;

fn load(dir: &std::path::Path) -> cairn_plugin_api::Result<Arc<dyn LoadedModel>> {
    block_on(OnnxFlavor.load(dir, &MlModel::read_dir(dir)?))
}

fn mlp() -> (Arc<dyn LoadedModel>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    fixtures::write_mlp(dir.path()).unwrap();
    (load(dir.path()).unwrap(), dir)
}

#[test]
fn float64_input_is_cast_to_float32_as_mlflow_does() {
    let (model, _dir) = mlp();
    let rows = fixtures::mlp_rows(3);
    let data: Vec<f64> = rows.iter().flatten().map(|x| f64::from(*x)).collect();
    let x = Tensor::new(vec![3, 4], TensorData::Float64(data)).unwrap();
    let input = ModelData::Tensors([("x".to_string(), x)].into_iter().collect());
    let out = block_on(model.predict(input, Params::new())).unwrap();
    assert_close(&out, &fixtures::mlp_expected(&rows), 1e-5, "float64 input");
}

#[test]
fn an_unnamed_tensor_feeds_a_single_input_model() {
    let (model, _dir) = mlp();
    let rows = fixtures::mlp_rows(2);
    let ModelData::Tensors(mut m) = fixtures::mlp_input(&rows) else {
        unreachable!()
    };
    let x = m.remove("x").unwrap();
    let input = ModelData::Tensors([(String::new(), x)].into_iter().collect());
    let out = block_on(model.predict(input, Params::new())).unwrap();
    assert_close(&out, &fixtures::mlp_expected(&rows), 1e-5, "unnamed input");
}

#[test]
fn a_table_feeds_its_values_to_a_single_input_model() {
    let (model, _dir) = mlp();
    let rows = fixtures::mlp_rows(4);
    let columns = (0..4)
        .map(|c| {
            // Integer-valued columns are accepted where floats are wanted.
            let values = if c == 0 {
                TensorData::Float64(rows.iter().map(|r| f64::from(r[c])).collect())
            } else {
                TensorData::Float32(rows.iter().map(|r| r[c]).collect())
            };
            Column::new(format!("f{c}"), values, None).unwrap()
        })
        .collect();
    let input = ModelData::Table(Table::new(columns).unwrap());
    let out = block_on(model.predict(input, Params::new())).unwrap();
    assert_close(&out, &fixtures::mlp_expected(&rows), 1e-5, "table input");

    let missing = Column::new(
        "f0",
        TensorData::Float64(vec![0.0; 4]),
        Some(vec![true, false, false, false]),
    );
    let input = ModelData::Table(Table::new(vec![missing.unwrap()]).unwrap());
    let err = block_on(model.predict(input, Params::new())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err}");
}

#[test]
fn wrong_types_and_empty_inputs_are_invalid_argument() {
    let (model, _dir) = mlp();
    let s = Tensor::new(vec![1, 4], TensorData::Str(vec!["a".into(); 4])).unwrap();
    let err = block_on(model.predict(
        ModelData::Tensors([("x".to_string(), s)].into_iter().collect()),
        Params::new(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("'x'"), "{err}");
    let empty = Tensor::new(vec![0, 4], TensorData::Float32(vec![])).unwrap();
    let err = block_on(model.predict(
        ModelData::Tensors([("x".to_string(), empty)].into_iter().collect()),
        Params::new(),
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err}");
    let wide = Tensor::new(vec![1, 5], TensorData::Float32(vec![0.0; 5])).unwrap();
    let err = block_on(model.predict(
        ModelData::Tensors([("x".to_string(), wide)].into_iter().collect()),
        Params::new(),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("(-1, 4)"), "{err}");
}

#[test]
fn the_signature_is_read_from_the_graph_when_mlmodel_has_none() {
    let dir = tempfile::tempdir().unwrap();
    fixtures::write_mlp(dir.path()).unwrap();
    let mut mlmodel = MlModel::read_dir(dir.path()).unwrap();
    mlmodel.signature = None;
    let model = block_on(OnnxFlavor.load(dir.path(), &mlmodel)).unwrap();
    let declared = MlModel::read_dir(dir.path()).unwrap().signature.unwrap();
    let sig = model.signature();
    assert_eq!(sig.inputs, declared.inputs);
    let names = sig
        .outputs
        .unwrap()
        .names()
        .into_iter()
        .map(|n| n.unwrap().to_string())
        .collect::<Vec<_>>();
    assert_eq!(names, ["probabilities", "label"]);
}

#[test]
fn an_operator_tract_lacks_is_unsupported_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    fixtures::write_mlp(dir.path()).unwrap();
    let mut proto = tract_onnx_pb(&fixtures::mlp_onnx());
    let graph = proto.graph.as_mut().unwrap();
    let argmax = graph
        .node
        .iter_mut()
        .find(|n| n.op_type == "ArgMax")
        .unwrap();
    argmax.op_type = "ZipMap".into();
    argmax.domain = "ai.onnx.ml".into();
    std::fs::write(dir.path().join("model.onnx"), proto.encode_to_vec()).unwrap();
    let err = load(dir.path())
        .err()
        .expect("a model with ZipMap must not load");
    assert_eq!(err.kind, ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("ZipMap"), "{err}");
}

fn tract_onnx_pb(bytes: &[u8]) -> tract_onnx::pb::ModelProto {
    tract_onnx::pb::ModelProto::decode(bytes).unwrap()
}
