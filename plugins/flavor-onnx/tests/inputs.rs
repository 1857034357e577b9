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

/// The other two profiling fixtures (what `scripts/release-build` serves): a `MatMul`/`Add`
/// network whose weights are in an external data file, as `mlflow.onnx.save_model` writes
/// them, and an `ai.onnx.ml` logistic regression.
#[test]
fn the_dense_and_linear_fixtures_predict_what_plain_arithmetic_does() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [48, 192, 192, 5];
    let dense = dir.path().join("dense");
    fixtures::write_model(&dense, fixtures::dense_onnx(&sizes)).unwrap();
    assert!(
        dense.join("weights.data").is_file(),
        "the weights are external"
    );
    let rows = fixtures::rows(7, 48);
    let out = block_on(
        load(&dense)
            .unwrap()
            .predict(fixtures::float_input("x", &rows), Params::new()),
    )
    .unwrap();
    let (p, l) = fixtures::dense_reference(&sizes, &rows);
    assert_close(&out, &fixtures::classifier_output(p, l), 1e-5, "dense");

    let linear = dir.path().join("linear");
    fixtures::write_model(&linear, fixtures::linear_classifier_onnx(8)).unwrap();
    let rows = fixtures::rows(7, 8);
    let out = block_on(
        load(&linear)
            .unwrap()
            .predict(fixtures::float_input("X", &rows), Params::new()),
    )
    .unwrap();
    let (p, l) = fixtures::linear_reference(8, &rows);
    assert!(
        l.contains(&0) && l.contains(&1),
        "both classes among the rows: {l:?}"
    );
    assert_close(&out, &fixtures::classifier_output(p, l), 1e-5, "linear");
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

/// A two-class `TreeEnsembleClassifier` as skl2onnx writes it (every leaf weighs class id 0):
/// one tree splitting `x <= 0.5` into leaves of weight 0.1 and 0.9. tract 0.23 alone labels
/// every row with the first class; the flavor's rewrite labels each row with the class of its
/// highest probability, as ONNX (and onnxruntime) do.
#[test]
fn a_binary_tree_classifier_labels_rows_by_their_highest_probability() {
    use tract_onnx::pb::{
        AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto,
        TypeProto, ValueInfoProto, attribute_proto::AttributeType, tensor_proto::DataType,
        tensor_shape_proto, type_proto,
    };
    let ints = |name: &str, v: &[i64]| AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    };
    let floats = |name: &str, v: &[f32]| AttributeProto {
        name: name.into(),
        r#type: AttributeType::Floats as i32,
        floats: v.to_vec(),
        ..Default::default()
    };
    let strings = |name: &str, v: &[&str]| AttributeProto {
        name: name.into(),
        r#type: AttributeType::Strings as i32,
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    };
    let value = |name: &str, elem: DataType, dims: &[Option<i64>]| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| tensor_shape_proto::Dimension {
                            value: Some(match d {
                                Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                                None => tensor_shape_proto::dimension::Value::DimParam("N".into()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let tree = NodeProto {
        op_type: "TreeEnsembleClassifier".into(),
        domain: "ai.onnx.ml".into(),
        name: "tree".into(),
        input: vec!["x".into()],
        output: vec!["label".into(), "probabilities".into()],
        attribute: vec![
            ints("nodes_treeids", &[0, 0, 0]),
            ints("nodes_nodeids", &[0, 1, 2]),
            ints("nodes_featureids", &[0, 0, 0]),
            floats("nodes_values", &[0.5, 0.0, 0.0]),
            strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF"]),
            ints("nodes_truenodeids", &[1, 0, 0]),
            ints("nodes_falsenodeids", &[2, 0, 0]),
            ints("class_treeids", &[0, 0]),
            ints("class_nodeids", &[1, 2]),
            ints("class_ids", &[0, 0]),
            floats("class_weights", &[0.1, 0.9]),
            ints("classlabels_int64s", &[0, 1]),
        ],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 1,
            },
        ],
        graph: Some(GraphProto {
            name: "tree".into(),
            node: vec![tree],
            input: vec![value("x", DataType::Float, &[None, Some(1)])],
            output: vec![
                value("label", DataType::Int64, &[None]),
                value("probabilities", DataType::Float, &[None, Some(2)]),
            ],
            ..Default::default()
        }),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.onnx"), model.encode_to_vec()).unwrap();
    std::fs::write(
        dir.path().join("MLmodel"),
        "flavors:\n  onnx:\n    data: model.onnx\n",
    )
    .unwrap();
    let model = load(dir.path()).unwrap();
    let x = Tensor::new(vec![3, 1], TensorData::Float32(vec![0.2, 0.8, 0.3])).unwrap();
    let out = block_on(model.predict(
        ModelData::Tensors([("x".to_string(), x)].into()),
        Params::new(),
    ))
    .unwrap();
    let ModelData::Tensors(out) = out else {
        panic!("tensors expected")
    };
    let TensorData::Float32(p) = out["probabilities"].data() else {
        panic!("{:?}", out["probabilities"])
    };
    let want: Vec<i64> = p.chunks(2).map(|row| i64::from(row[1] > row[0])).collect();
    assert_eq!(want, [0, 1, 0], "probabilities {p:?}");
    assert_eq!(out["label"].data(), &TensorData::Int64(want));
}

#[test]
fn small_calls_after_a_quick_one_answer_the_same_as_pooled_ones() {
    // The first small call runs on the pool and finds the model quick; later small calls run
    // on the caller's thread, large ones (more than 1024 elements) on the pool again.
    let (model, _dir) = mlp();
    for n in [1, 1, 2, 300, 1, 300, 1] {
        let rows = fixtures::mlp_rows(n);
        let out = block_on(model.predict(fixtures::mlp_input(&rows), Params::new())).unwrap();
        assert_close(
            &out,
            &fixtures::mlp_expected(&rows),
            1e-5,
            &format!("{n} rows"),
        );
    }
}

#[test]
fn json_values_are_refused_as_invalid_argument_never_a_crash() {
    // List or object cells, a composite column, a column-signature model's whole `inputs`:
    // an ONNX model takes none of them, and says so in MLflow's INVALID_PARAMETER_VALUE family.
    let (model, _dir) = mlp();
    let json = |n: usize| TensorData::Json(vec![r#"[1,{"a":2}]"#.to_string(); n]);
    let tensors = [
        ("x", Tensor::new(vec![1, 4], json(4)).unwrap()),
        ("", Tensor::new(vec![1, 4], json(4)).unwrap()),
        (
            cairn_plugin_api::flavor::RAW_INPUTS,
            Tensor::new(vec![], json(1)).unwrap(),
        ),
    ];
    for (name, t) in tensors {
        let input = ModelData::Tensors([(name.to_string(), t)].into_iter().collect());
        let err = block_on(model.predict(input, Params::new())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument, "{name:?}: {err}");
    }
    let columns = (0..4)
        .map(|c| {
            let values = if c == 2 {
                json(2)
            } else {
                TensorData::Float32(vec![0.5; 2])
            };
            Column::new(format!("f{c}"), values, None).unwrap()
        })
        .collect();
    let input = ModelData::Table(Table::new(columns).unwrap());
    let err = block_on(model.predict(input, Params::new())).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err}");
}
