//! Small ONNX models built in code (feature `fixtures`), with reference predictions computed
//! by plain arithmetic here — never by the engine under test.
//!
//! [`write_mlp`] writes an MLflow model directory: `model.onnx`, a two-layer perceptron
//! `x: float[N, 4] → Gemm → Relu → Gemm → Softmax → probabilities: float[N, 2]` and
//! `ArgMax → label: int64[N]`, with the dynamic batch dimension `N`, and an `MLmodel` as
//! `mlflow.onnx.log_model` writes it (tensor signature, `onnx` and `python_function`
//! flavors).

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

fn float_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: data.to_vec(),
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
    ModelProto {
        ir_version: 8,
        producer_name: "cairn-fixtures".into(),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
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
    let data = rows.iter().flatten().copied().collect();
    let x = Tensor::new(vec![rows.len(), 4], TensorData::Float32(data)).expect("4 per row");
    ModelData::Tensors([("x".to_string(), x)].into_iter().collect())
}

/// The reference output for `rows`, as the flavor returns it.
pub fn mlp_expected(rows: &[[f32; 4]]) -> ModelData {
    let (p, l) = mlp_reference(rows);
    let n = rows.len();
    let probabilities = Tensor::new(
        vec![n, 2],
        TensorData::Float32(p.into_iter().flatten().collect()),
    )
    .expect("2 per row");
    let label = Tensor::new(vec![n], TensorData::Int64(l)).expect("1 per row");
    ModelData::Tensors(
        [
            ("label".to_string(), label),
            ("probabilities".to_string(), probabilities),
        ]
        .into_iter()
        .collect(),
    )
}
