//! Small ONNX models built in code (feature `fixtures`), with reference predictions computed
//! by plain arithmetic here — never by the engine under test.
//!
//! [`write_mlp`] writes an MLflow model directory: `model.onnx`, a two-layer perceptron
//! `x: float[N, 4] → Gemm → Relu → Gemm → Softmax → probabilities: float[N, 2]` and
//! `ArgMax → label: int64[N]`, with the dynamic batch dimension `N`, and an `MLmodel` as
//! `mlflow.onnx.log_model` writes it (tensor signature, `onnx` and `python_function`
//! flavors).
//!
//! [`dense_onnx`] and [`linear_classifier_onnx`] are the two other common shapes of a served
//! model (a `MatMul`/`Add` network as PyTorch and TensorFlow exporters write it, and
//! skl2onnx's `ai.onnx.ml` linear classifier), written by [`write_model`] without a signature
//! as skl2onnx models are logged. The release build serves all three to learn which functions
//! scoring runs (`examples/write_profile_models.rs`).

use cairn_plugin_api::flavor::{ModelData, Tensor, TensorData};
use prost::Message;
use std::path::Path;
use tract_onnx::pb::{
    self, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};

/// First layer weights, `[4, 3]` row-major.
const W1: [f32; 12] = [
    0.5, -0.2, 0.1, //
    -0.3, 0.8, 0.4, //
    0.25, 0.1, -0.6, //
    0.9, -0.5, 0.3,
];
const B1: [f32; 3] = [0.1, -0.1, 0.05];
/// Second layer weights, `[3, 2]` row-major.
const W2: [f32; 6] = [0.7, -0.4, -0.2, 0.6, 0.5, 0.3];
const B2: [f32; 2] = [0.0, 0.2];

/// The signature `mlflow.onnx.log_model` infers for the model.
pub const MLMODEL: &str = r#"artifact_path: model
flavors:
  onnx:
    code: null
    data: model.onnx
    onnx_session_options: null
    onnx_version: 1.17.0
    providers:
    - CUDAExecutionProvider
    - CPUExecutionProvider
  python_function:
    data: model.onnx
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.onnx
    python_version: 3.11.9
mlflow_version: 3.18.0
model_id: null
model_uuid: 3b1f6d4c2a8e4f0e9d7c6b5a49382716
signature:
  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}, "name": "x"}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}, "name": "label"}, {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}, "name": "probabilities"}]'
  params: null
utc_time_created: '2026-12-03 20:27:01.123456'
"#;

/// An initializer stored as exporters store one: little-endian bytes in `raw_data`.
fn float_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn value_info(
    name: &str,
    elem: pb::tensor_proto::DataType,
    dims: &[Option<i64>],
) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                None => tensor_shape_proto::dimension::Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn floats_attr(name: &str, floats: Vec<f32>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Floats as i32,
        floats,
        ..Default::default()
    }
}

fn ints_attr(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints,
        ..Default::default()
    }
}

fn string_attr(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// `n` deterministic weights in about [-1/sqrt(fan_in), 1/sqrt(fan_in)].
fn weights(n: usize, fan_in: usize, seed: f32) -> Vec<f32> {
    let scale = 1.0 / (fan_in as f32).sqrt();
    (0..n)
        .map(|i| (i as f32 * 0.618 + seed).sin() * scale)
        .collect()
}

fn model_proto(graph: GraphProto, opsets: &[(&str, i64)]) -> ModelProto {
    ModelProto {
        ir_version: 8,
        producer_name: "cairn-fixtures".into(),
        opset_import: opsets
            .iter()
            .map(|(domain, version)| OperatorSetIdProto {
                domain: (*domain).into(),
                version: *version,
            })
            .collect(),
        graph: Some(graph),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: format!("{op}_{}", outputs[0]),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

/// The ONNX bytes of the perceptron.
pub fn mlp_onnx() -> Vec<u8> {
    use pb::tensor_proto::DataType;
    let graph = GraphProto {
        name: "mlp".into(),
        node: vec![
            node("Gemm", &["x", "W1", "B1"], &["h"], vec![]),
            node("Relu", &["h"], &["r"], vec![]),
            node("Gemm", &["r", "W2", "B2"], &["logits"], vec![]),
            node(
                "Softmax",
                &["logits"],
                &["probabilities"],
                vec![int_attr("axis", 1)],
            ),
            node(
                "ArgMax",
                &["logits"],
                &["label"],
                vec![int_attr("axis", 1), int_attr("keepdims", 0)],
            ),
        ],
        initializer: vec![
            float_tensor("W1", &[4, 3], &W1),
            float_tensor("B1", &[3], &B1),
            float_tensor("W2", &[3, 2], &W2),
            float_tensor("B2", &[2], &B2),
        ],
        input: vec![value_info("x", DataType::Float, &[None, Some(4)])],
        output: vec![
            value_info("probabilities", DataType::Float, &[None, Some(2)]),
            value_info("label", DataType::Int64, &[None]),
        ],
        ..Default::default()
    };
    model_proto(graph, &[("", 13)]).encode_to_vec()
}

/// A dense network as exporters write one: per layer `MatMul` then `Add`, `Relu` between
/// layers, then `Softmax` (`probabilities`) and `ArgMax` (`label`); `sizes` are the widths from
/// the input `x: float[N, sizes[0]]` to the classes, at least two of them.
pub fn dense_onnx(sizes: &[usize]) -> ModelProto {
    use pb::tensor_proto::DataType;
    assert!(
        sizes.len() >= 2,
        "a dense network needs an input and an output width"
    );
    let (mut nodes, mut initializer, mut prev) = (Vec::new(), Vec::new(), "x".to_string());
    for (i, pair) in sizes.windows(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        let (w, bias, m, sum) = (
            format!("w{i}"),
            format!("b{i}"),
            format!("m{i}"),
            format!("a{i}"),
        );
        initializer.push(float_tensor(
            &w,
            &[a as i64, b as i64],
            &weights(a * b, a, i as f32),
        ));
        initializer.push(float_tensor(&bias, &[b as i64], &weights(b, b, 0.5)));
        nodes.push(node("MatMul", &[&prev, &w], &[&m], vec![]));
        nodes.push(node("Add", &[&m, &bias], &[&sum], vec![]));
        prev = sum;
        if i + 2 < sizes.len() {
            let relu = format!("r{i}");
            nodes.push(node("Relu", &[&prev], &[&relu], vec![]));
            prev = relu;
        }
    }
    nodes.push(node(
        "Softmax",
        &[&prev],
        &["probabilities"],
        vec![int_attr("axis", 1)],
    ));
    nodes.push(node(
        "ArgMax",
        &[&prev],
        &["label"],
        vec![int_attr("axis", 1), int_attr("keepdims", 0)],
    ));
    let (first, last) = (sizes[0] as i64, sizes[sizes.len() - 1] as i64);
    let graph = GraphProto {
        name: "dense".into(),
        node: nodes,
        initializer,
        input: vec![value_info("x", DataType::Float, &[None, Some(first)])],
        output: vec![
            value_info("probabilities", DataType::Float, &[None, Some(last)]),
            value_info("label", DataType::Int64, &[None]),
        ],
        ..Default::default()
    };
    model_proto(graph, &[("", 17)])
}

/// A binary logistic regression as skl2onnx converts one with `zipmap` off: one
/// `ai.onnx.ml.LinearClassifier` (`post_transform: LOGISTIC`) from `X: float[N, features]` to
/// `label: int64[N]` and `probabilities: float[N, 2]`.
pub fn linear_classifier_onnx(features: usize) -> ModelProto {
    use pb::tensor_proto::DataType;
    let half = weights(features, features, 0.25);
    let coefficients = half
        .iter()
        .map(|w| -w)
        .chain(half.iter().copied())
        .collect();
    let classifier = NodeProto {
        domain: "ai.onnx.ml".into(),
        ..node(
            "LinearClassifier",
            &["X"],
            &["label", "probabilities"],
            vec![
                ints_attr("classlabels_ints", vec![0, 1]),
                floats_attr("coefficients", coefficients),
                floats_attr("intercepts", vec![-0.25, 0.25]),
                int_attr("multi_class", 0),
                string_attr("post_transform", "LOGISTIC"),
            ],
        )
    };
    let graph = GraphProto {
        name: "linear".into(),
        node: vec![classifier],
        input: vec![value_info(
            "X",
            DataType::Float,
            &[None, Some(features as i64)],
        )],
        output: vec![
            value_info("label", DataType::Int64, &[None]),
            value_info("probabilities", DataType::Float, &[None, Some(2)]),
        ],
        ..Default::default()
    };
    model_proto(graph, &[("ai.onnx.ml", 1), ("", 17)])
}

/// `rows` deterministic input rows of `width` features.
pub fn rows(rows: usize, width: usize) -> Vec<Vec<f32>> {
    (0..rows)
        .map(|r| {
            (0..width)
                .map(|c| ((r * width + c) as f32 * 0.37).cos() * 1.5)
                .collect()
        })
        .collect()
}

/// [`dense_onnx`]'s outputs for `rows`, computed in f64 here: `(probabilities, label)`.
pub fn dense_reference(sizes: &[usize], rows: &[Vec<f32>]) -> (Vec<Vec<f32>>, Vec<i64>) {
    let layers: Vec<(Vec<f32>, Vec<f32>)> = sizes
        .windows(2)
        .enumerate()
        .map(|(i, p)| {
            (
                weights(p[0] * p[1], p[0], i as f32),
                weights(p[1], p[1], 0.5),
            )
        })
        .collect();
    rows.iter()
        .map(|x| {
            let mut v: Vec<f64> = x.iter().map(|x| f64::from(*x)).collect();
            for (i, (w, b)) in layers.iter().enumerate() {
                let (a, n) = (sizes[i], sizes[i + 1]);
                v = (0..n)
                    .map(|j| {
                        let s = (0..a).map(|k| v[k] * f64::from(w[k * n + j])).sum::<f64>();
                        let s = s + f64::from(b[j]);
                        if i + 2 < sizes.len() { s.max(0.0) } else { s }
                    })
                    .collect();
            }
            softmax_and_label(&v)
        })
        .unzip()
}

/// [`linear_classifier_onnx`]'s outputs for `rows`, computed in f64 here.
pub fn linear_reference(features: usize, rows: &[Vec<f32>]) -> (Vec<Vec<f32>>, Vec<i64>) {
    let w = weights(features, features, 0.25);
    rows.iter()
        .map(|x| {
            let s: f64 = (0..features)
                .map(|k| f64::from(x[k]) * f64::from(w[k]))
                .sum();
            // Class 0 has the negated coefficients and intercept -0.25, class 1 these and 0.25.
            let p: Vec<f64> = [-s - 0.25, s + 0.25]
                .iter()
                .map(|z| 1.0 / (1.0 + (-z).exp()))
                .collect();
            (
                p.iter().map(|p| *p as f32).collect(),
                i64::from(p[1] > p[0]),
            )
        })
        .unzip()
}

fn softmax_and_label(logits: &[f64]) -> (Vec<f32>, i64) {
    let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
    let z: f64 = e.iter().sum();
    let label = logits.iter().position(|l| *l == m).expect("a maximum") as i64;
    (e.iter().map(|e| (e / z) as f32).collect(), label)
}

/// Two named outputs, `probabilities: float[N, k]` and `label: int64[N]`, as the flavor
/// returns them.
pub fn classifier_output(probabilities: Vec<Vec<f32>>, label: Vec<i64>) -> ModelData {
    let (n, k) = (label.len(), probabilities.first().map_or(0, Vec::len));
    let p = Tensor::new(
        vec![n, k],
        TensorData::Float32(probabilities.into_iter().flatten().collect()),
    )
    .expect("k per row");
    let l = Tensor::new(vec![n], TensorData::Int64(label)).expect("1 per row");
    ModelData::Tensors(
        [("label".to_string(), l), ("probabilities".to_string(), p)]
            .into_iter()
            .collect(),
    )
}

/// One float input tensor named `name` holding `rows`.
pub fn float_input(name: &str, rows: &[Vec<f32>]) -> ModelData {
    let width = rows.first().map_or(0, Vec::len);
    let data = rows.iter().flatten().copied().collect();
    let x = Tensor::new(vec![rows.len(), width], TensorData::Float32(data)).expect("width per row");
    ModelData::Tensors([(name.to_string(), x)].into_iter().collect())
}

/// Writes `model` as an MLflow model directory without a signature, as
/// `mlflow.onnx.save_model` writes a skl2onnx model: initializers of 1 KiB or more go to one
/// external data file (MLflow's default `save_as_external_data=True`), the rest stay inline.
pub fn write_model(dir: &Path, mut model: ModelProto) -> std::io::Result<()> {
    use pb::tensor_proto::DataLocation;
    const DATA: &str = "weights.data";
    std::fs::create_dir_all(dir)?;
    let mut data = Vec::new();
    for tensor in model
        .graph
        .iter_mut()
        .flat_map(|g| g.initializer.iter_mut())
    {
        if tensor.raw_data.len() < 1024 {
            continue;
        }
        let entry = |key: &str, value: String| pb::StringStringEntryProto {
            key: key.into(),
            value,
        };
        tensor.external_data = vec![
            entry("location", DATA.into()),
            entry("offset", data.len().to_string()),
            entry("length", tensor.raw_data.len().to_string()),
        ];
        tensor.data_location = Some(DataLocation::External as i32);
        data.append(&mut tensor.raw_data);
    }
    if !data.is_empty() {
        std::fs::write(dir.join(DATA), data)?;
    }
    std::fs::write(dir.join("model.onnx"), model.encode_to_vec())?;
    std::fs::write(
        dir.join("MLmodel"),
        "flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.17.0\n    providers:\n    \
         - CPUExecutionProvider\nmlflow_version: 3.18.0\nmodel_uuid: 9d3c2b1a0f4e4d8c8b7a695847362514\n",
    )
}

/// Writes the perceptron as an MLflow model directory into `dir`.
pub fn write_mlp(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("model.onnx"), mlp_onnx())?;
    std::fs::write(dir.join("MLmodel"), MLMODEL)
}

/// `rows` deterministic input rows of 4 features.
pub fn mlp_rows(rows: usize) -> Vec<[f32; 4]> {
    (0..rows)
        .map(|r| {
            let r = r as f32;
            [
                r * 0.5 - 1.0,
                1.0 - r * 0.25,
                (r * 0.7).sin(),
                0.3 * r - 0.8,
            ]
        })
        .collect()
}

/// The perceptron's outputs for `rows`, computed in f64 here: `(probabilities, label)`.
pub fn mlp_reference(rows: &[[f32; 4]]) -> (Vec<[f32; 2]>, Vec<i64>) {
    rows.iter()
        .map(|x| {
            let h: Vec<f64> = (0..3)
                .map(|j| {
                    let s: f64 = (0..4)
                        .map(|i| f64::from(x[i]) * f64::from(W1[i * 3 + j]))
                        .sum();
                    (s + f64::from(B1[j])).max(0.0)
                })
                .collect();
            let logits: Vec<f64> = (0..2)
                .map(|k| {
                    (0..3).map(|j| h[j] * f64::from(W2[j * 2 + k])).sum::<f64>() + f64::from(B2[k])
                })
                .collect();
            let m = logits[0].max(logits[1]);
            let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
            let z = e[0] + e[1];
            let label = i64::from(logits[1] > logits[0]);
            ([(e[0] / z) as f32, (e[1] / z) as f32], label)
        })
        .unzip()
}

/// The input tensor `x` for `rows`.
pub fn mlp_input(rows: &[[f32; 4]]) -> ModelData {
    float_input("x", &rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>())
}

/// The reference output for `rows`, as the flavor returns it.
pub fn mlp_expected(rows: &[[f32; 4]]) -> ModelData {
    let (p, l) = mlp_reference(rows);
    classifier_output(p.iter().map(|p| p.to_vec()).collect(), l)
}
