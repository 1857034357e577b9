//! The `MLmodel` file (api.md §6.1): a model directory's description, its flavors and its
//! signature (§6.2), read from and written as MLflow writes it.
//!
//! Unknown top-level keys are kept ([`MlModel::other`]) and written back. The signature's
//! `inputs`, `outputs` and `params` are JSON strings inside the YAML, as MLflow writes them.

use crate::flavor::{ColumnType, DType, Params};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The file name of a model's description.
pub const MLMODEL_FILE_NAME: &str = "MLmodel";

/// A parsed `MLmodel` file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MlModel {
    /// Flavor name → the flavor's configuration.
    pub flavors: BTreeMap<String, Value>,
    /// The signature, if the model has one.
    pub signature: Option<Signature>,
    /// `saved_input_example_info`: where the input example is stored and its type.
    pub saved_input_example_info: Option<Value>,
    /// The input example (the JSON file `saved_input_example_info.artifact_path` names), when
    /// read with [`MlModel::read_dir`].
    pub input_example: Option<Value>,
    /// `model_uuid`.
    pub model_uuid: Option<String>,
    /// `model_id` (`m-<32 hex>`, MLflow 3).
    pub model_id: Option<String>,
    /// `run_id`.
    pub run_id: Option<String>,
    /// `artifact_path`.
    pub artifact_path: Option<String>,
    /// `utc_time_created`, as written (`2025-11-03 20:27:01.123456`).
    pub utc_time_created: Option<String>,
    /// `mlflow_version`.
    pub mlflow_version: Option<String>,
    /// `metadata`: free-form.
    pub metadata: Option<Value>,
    /// Every other top-level key, kept as read.
    pub other: BTreeMap<String, Value>,
}

/// What a model takes and returns, and the inference parameters it declares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Signature {
    /// The input schema.
    pub inputs: Option<Schema>,
    /// The output schema.
    pub outputs: Option<Schema>,
    /// The params schema; `None` when the model declares none (then params are ignored).
    pub params: Option<Vec<ParamSpec>>,
}

/// A schema: all column specs or all tensor specs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schema {
    /// Column specs (a DataFrame).
    Columns(Vec<ColSpec>),
    /// Tensor specs.
    Tensors(Vec<TensorSpec>),
}

/// A column spec: `{"type": ..., "name": ..., "required": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColSpec {
    /// The name, if the schema names its columns.
    pub name: Option<String>,
    /// The type; `None` for a composite type (array, object, map, any), kept in `composite`.
    pub column_type: Option<ColumnType>,
    /// A composite type's definition, as written.
    pub composite: Option<Value>,
    /// Whether the column must be present.
    pub required: bool,
}

/// A tensor spec: `{"type": "tensor", "tensor-spec": {"dtype", "shape"}, "name"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// The name, if the schema names its tensors.
    pub name: Option<String>,
    /// The element type.
    pub dtype: DType,
    /// The shape, `-1` for a variable dimension.
    pub shape: Vec<i64>,
}

/// A declared inference parameter: `{"name", "type", "default", "shape"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// The name.
    pub name: String,
    /// The type.
    pub param_type: ColumnType,
    /// The default value.
    pub default: Value,
    /// `None` for a scalar, `[-1]` for a list.
    pub shape: Option<Vec<i64>>,
}

fn invalid(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::invalid(format!("invalid {what} in MLmodel: {detail}"))
}

impl MlModel {
    /// Parses the text of an `MLmodel` file. A malformed file or signature is
    /// `InvalidArgument` naming the part.
    pub fn from_yaml(text: &str) -> Result<MlModel> {
        let value: Value = yaml_serde::from_str(text).map_err(|e| invalid("YAML", e))?;
        let Value::Object(mut map) = value else {
            return Err(invalid("YAML", "the top level is not a mapping"));
        };
        let mut take_str = |key: &str| -> Result<Option<String>> {
            match map.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(invalid(key, format!("expected a string, got {other}"))),
            }
        };
        let model_uuid = take_str("model_uuid")?;
        let model_id = take_str("model_id")?;
        let run_id = take_str("run_id")?;
        let artifact_path = take_str("artifact_path")?;
        let utc_time_created = take_str("utc_time_created")?;
        let mlflow_version = take_str("mlflow_version")?;
        let flavors = match map.remove("flavors") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(f)) => f.into_iter().collect(),
            Some(other) => return Err(invalid("flavors", format!("not a mapping: {other}"))),
        };
        let signature = match map.remove("signature") {
            None | Some(Value::Null) => None,
            Some(s) => Some(Signature::from_mlmodel(&s)?),
        };
        let non_null = |v: Option<Value>| v.filter(|v| !v.is_null());
        Ok(MlModel {
            flavors,
            signature,
            saved_input_example_info: non_null(map.remove("saved_input_example_info")),
            input_example: None,
            model_uuid,
            model_id,
            run_id,
            artifact_path,
            utc_time_created,
            mlflow_version,
            metadata: non_null(map.remove("metadata")),
            other: map.into_iter().collect(),
        })
    }

    /// Reads `<dir>/MLmodel` and the input example it names. A missing file is
    /// `InvalidArgument` naming it.
    pub fn read_dir(dir: &Path) -> Result<MlModel> {
        let path = dir.join(MLMODEL_FILE_NAME);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::invalid(format!(
                "cannot read the model file {}: {e}",
                path.display()
            ))
        })?;
        let mut model = MlModel::from_yaml(&text)?;
        let example = model
            .saved_input_example_info
            .as_ref()
            .and_then(|i| i.get("artifact_path"))
            .and_then(Value::as_str);
        if let Some(file) = example {
            let path = dir.join(file);
            if let Ok(text) = std::fs::read_to_string(&path) {
                model.input_example =
                    Some(serde_json::from_str(&text).map_err(|e| {
                        invalid("input example", format!("{}: {e}", path.display()))
                    })?);
            }
        }
        Ok(model)
    }

    /// The `MLmodel` text, keys sorted as MLflow writes them.
    pub fn to_yaml(&self) -> String {
        let mut map: BTreeMap<String, Value> = self.other.clone();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                map.insert(k.to_string(), v);
            }
        };
        put(
            "flavors",
            Some(Value::Object(self.flavors.clone().into_iter().collect())),
        );
        put(
            "signature",
            self.signature.as_ref().map(Signature::to_mlmodel),
        );
        put(
            "saved_input_example_info",
            self.saved_input_example_info.clone(),
        );
        put("model_uuid", Some(self.model_uuid.clone().into()));
        put("model_id", Some(self.model_id.clone().into()));
        put("run_id", self.run_id.clone().map(Value::from));
        put("artifact_path", self.artifact_path.clone().map(Value::from));
        put(
            "utc_time_created",
            self.utc_time_created.clone().map(Value::from),
        );
        put(
            "mlflow_version",
            self.mlflow_version.clone().map(Value::from),
        );
        put("metadata", self.metadata.clone());
        yaml_serde::to_string(&map).unwrap_or_default()
    }
}

impl Signature {
    /// Parses the `signature` mapping of an `MLmodel` file (JSON strings or null).
    pub fn from_mlmodel(value: &Value) -> Result<Signature> {
        let part = |key: &str| -> Result<Option<Vec<Value>>> {
            match value.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => serde_json::from_str(s)
                    .map(Some)
                    .map_err(|e| invalid(&format!("signature {key}"), e)),
                Some(Value::Array(a)) => Ok(Some(a.clone())),
                Some(other) => Err(invalid(&format!("signature {key}"), other)),
            }
        };
        let schema = |key: &str| -> Result<Option<Schema>> {
            part(key)?
                .map(|specs| Schema::from_specs(key, &specs))
                .transpose()
        };
        let params = part("params")?
            .map(|specs| {
                specs
                    .iter()
                    .map(|s| ParamSpec::from_json(s).ok_or_else(|| invalid("signature params", s)))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        Ok(Signature {
            inputs: schema("inputs")?,
            outputs: schema("outputs")?,
            params,
        })
    }

    /// The `signature` mapping as MLflow writes it.
    pub fn to_mlmodel(&self) -> Value {
        let json = |v: Option<Value>| v.map_or(Value::Null, |v| Value::String(v.to_string()));
        let mut m = Map::new();
        m.insert(
            "inputs".into(),
            json(self.inputs.as_ref().map(Schema::to_specs)),
        );
        m.insert(
            "outputs".into(),
            json(self.outputs.as_ref().map(Schema::to_specs)),
        );
        m.insert(
            "params".into(),
            json(
                self.params
                    .as_ref()
                    .map(|p| p.iter().map(ParamSpec::to_json).collect()),
            ),
        );
        Value::Object(m)
    }

    /// Checks `params` against the declared params schema, as MLflow's `_enforce_params_schema`:
    /// with no schema, params are ignored; unknown names are dropped; missing ones take their
    /// default; a value of the wrong type is `InvalidArgument` naming the parameter.
    pub fn validate_params(&self, params: Params) -> Result<Params> {
        let Some(specs) = &self.params else {
            return Ok(Params::new());
        };
        let mut out = Params::new();
        for spec in specs {
            let value = match params.get(&spec.name) {
                None | Some(Value::Null) => spec.default.clone(),
                Some(v) => spec.convert(v)?,
            };
            out.insert(spec.name.clone(), value);
        }
        Ok(out)
    }
}

impl Schema {
    fn from_specs(key: &str, specs: &[Value]) -> Result<Schema> {
        let is_tensor = |s: &Value| s.get("type").and_then(Value::as_str) == Some("tensor");
        if !specs.is_empty() && specs.iter().all(is_tensor) {
            specs
                .iter()
                .map(|s| {
                    TensorSpec::from_json(s).ok_or_else(|| invalid(&format!("signature {key}"), s))
                })
                .collect::<Result<_>>()
                .map(Schema::Tensors)
        } else if specs.iter().any(is_tensor) {
            Err(invalid(
                &format!("signature {key}"),
                "mixes column and tensor specs",
            ))
        } else {
            specs
                .iter()
                .map(|s| {
                    ColSpec::from_json(s).ok_or_else(|| invalid(&format!("signature {key}"), s))
                })
                .collect::<Result<_>>()
                .map(Schema::Columns)
        }
    }

    fn to_specs(&self) -> Value {
        match self {
            Schema::Columns(c) => c.iter().map(ColSpec::to_json).collect(),
            Schema::Tensors(t) => t.iter().map(TensorSpec::to_json).collect(),
        }
    }

    /// The names of the inputs or columns, in order (`None` for unnamed ones).
    pub fn names(&self) -> Vec<Option<&str>> {
        match self {
            Schema::Columns(c) => c.iter().map(|c| c.name.as_deref()).collect(),
            Schema::Tensors(t) => t.iter().map(|t| t.name.as_deref()).collect(),
        }
    }
}

fn from_value<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
    serde_json::from_value(v.clone()).ok()
}

fn name_of(v: &Value) -> Option<String> {
    v.get("name").and_then(Value::as_str).map(str::to_string)
}

impl ColSpec {
    fn from_json(v: &Value) -> Option<ColSpec> {
        let ty = v.get("type")?;
        let column_type = from_value::<ColumnType>(ty);
        let composite = if column_type.is_none() {
            let mut c = v.as_object()?.clone();
            c.remove("name");
            c.remove("required");
            Some(Value::Object(c))
        } else {
            None
        };
        Some(ColSpec {
            name: name_of(v),
            column_type,
            composite,
            required: v.get("required").and_then(Value::as_bool).unwrap_or(true),
        })
    }

    fn to_json(&self) -> Value {
        let mut m = match (&self.column_type, &self.composite) {
            (Some(t), _) => {
                let mut m = Map::new();
                m.insert("type".into(), serde_json::to_value(t).unwrap_or_default());
                m
            }
            (None, Some(Value::Object(c))) => c.clone(),
            (None, _) => Map::new(),
        };
        if let Some(n) = &self.name {
            m.insert("name".into(), n.clone().into());
        }
        m.insert("required".into(), self.required.into());
        Value::Object(m)
    }
}

impl TensorSpec {
    fn from_json(v: &Value) -> Option<TensorSpec> {
        let spec = v.get("tensor-spec")?;
        Some(TensorSpec {
            name: name_of(v),
            dtype: from_value(spec.get("dtype")?)?,
            shape: from_value(spec.get("shape")?)?,
        })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), "tensor".into());
        m.insert(
            "tensor-spec".into(),
            serde_json::json!({ "dtype": self.dtype, "shape": self.shape }),
        );
        if let Some(n) = &self.name {
            m.insert("name".into(), n.clone().into());
        }
        Value::Object(m)
    }
}

impl ParamSpec {
    fn from_json(v: &Value) -> Option<ParamSpec> {
        Some(ParamSpec {
            name: name_of(v)?,
            param_type: from_value(v.get("type")?)?,
            default: v.get("default").cloned().unwrap_or(Value::Null),
            shape: v.get("shape").and_then(from_value),
        })
    }

    fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "type": self.param_type,
            "default": self.default,
            "shape": self.shape,
        })
    }

    /// `value` converted to this parameter's type (a list for shape `[-1]`).
    fn convert(&self, value: &Value) -> Result<Value> {
        let bad = || {
            Error::invalid(format!(
                "Failed to convert value {value} of parameter '{}' to type {}{}",
                self.name,
                serde_json::to_value(self.param_type).unwrap_or_default(),
                if self.shape.is_some() { " list" } else { "" }
            ))
        };
        match (&self.shape, value) {
            (Some(_), Value::Array(items)) => items
                .iter()
                .map(|i| scalar(self.param_type, i).ok_or_else(bad))
                .collect::<Result<Vec<_>>>()
                .map(Value::Array),
            (Some(_), _) => Err(bad()),
            (None, v) => scalar(self.param_type, v).ok_or_else(bad),
        }
    }
}

/// A scalar parameter converted to `ty`, as MLflow converts (ints to floats, not back).
fn scalar(ty: ColumnType, v: &Value) -> Option<Value> {
    match ty {
        ColumnType::Boolean => v.as_bool().map(Value::from),
        ColumnType::Integer => v
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .map(Value::from),
        ColumnType::Long | ColumnType::Datetime if v.is_string() => {
            (ty == ColumnType::Datetime).then(|| v.clone())
        }
        ColumnType::Long | ColumnType::Datetime => v.as_i64().map(Value::from),
        ColumnType::Float | ColumnType::Double => v.as_f64().map(Value::from),
        ColumnType::String => v.as_str().map(Value::from),
        ColumnType::Binary => v.as_str().map(Value::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONNX: &str = r#"artifact_path: mlflow-artifacts:/1/models/m-0f7c2d/artifacts
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
is_signature_from_type_hint: false
mlflow_version: 3.18.0
model_id: m-0f7c2d
model_size_bytes: 12345
model_uuid: m-0f7c2d
prompts: null
run_id: 3b0e
saved_input_example_info:
  artifact_path: input_example.json
  serving_input_path: serving_input_example.json
  type: ndarray
signature:
  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}, "name": "x"}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}]'
  params: '[{"name": "alpha", "type": "double", "default": 0.5, "shape": null}, {"name": "ks", "type": "long", "default": [1], "shape": [-1]}]'
type_hint_from_example: false
utc_time_created: '2025-11-03 20:27:01.123456'
"#;

    #[test]
    fn reads_what_the_official_client_writes_and_keeps_unknown_keys() {
        let m = MlModel::from_yaml(ONNX).unwrap();
        assert_eq!(m.flavors["onnx"]["data"], "model.onnx");
        assert_eq!(m.model_id.as_deref(), Some("m-0f7c2d"));
        assert_eq!(
            m.utc_time_created.as_deref(),
            Some("2025-11-03 20:27:01.123456")
        );
        assert_eq!(m.other["model_size_bytes"], 12345);
        assert!(m.other.contains_key("prompts"));
        let sig = m.signature.clone().unwrap();
        let Some(Schema::Tensors(inputs)) = &sig.inputs else {
            panic!("{sig:?}")
        };
        assert_eq!(inputs[0].dtype, DType::Float32);
        assert_eq!(inputs[0].shape, vec![-1, 4]);
        assert_eq!(inputs[0].name.as_deref(), Some("x"));
        // Written back and read again: the same model.
        let again = MlModel::from_yaml(&m.to_yaml()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn column_signatures_with_composite_types() {
        let sig = Signature::from_mlmodel(&serde_json::json!({
            "inputs": r#"[{"type": "double", "name": "a"}, {"type": "string", "name": "b", "required": false},
                          {"type": "array", "items": {"type": "long"}, "name": "c"}]"#,
            "outputs": null,
        }))
        .unwrap();
        let Some(Schema::Columns(cols)) = &sig.inputs else {
            panic!()
        };
        assert_eq!(cols[0].column_type, Some(ColumnType::Double));
        assert!(!cols[1].required);
        assert_eq!(cols[2].column_type, None);
        assert_eq!(cols[2].composite.as_ref().unwrap()["items"]["type"], "long");
        assert_eq!(Signature::from_mlmodel(&sig.to_mlmodel()).unwrap(), sig);
        assert!(Signature::from_mlmodel(&serde_json::json!({"inputs": "[{"})).is_err());
    }

    #[test]
    fn params_are_validated_against_the_schema() {
        let sig = MlModel::from_yaml(ONNX).unwrap().signature.unwrap();
        let p = |v: Value| -> Params { serde_json::from_value(v).unwrap() };
        let ok = sig
            .validate_params(p(serde_json::json!({"alpha": 2, "zzz": 1})))
            .unwrap();
        assert_eq!(ok["alpha"], 2.0);
        assert_eq!(ok["ks"], serde_json::json!([1]));
        assert!(!ok.contains_key("zzz"));
        let err = sig
            .validate_params(p(serde_json::json!({"alpha": "x"})))
            .unwrap_err();
        assert!(err.to_string().contains("'alpha'"), "{err}");
        assert!(
            sig.validate_params(p(serde_json::json!({"ks": 3})))
                .is_err()
        );
        assert!(
            sig.validate_params(p(serde_json::json!({"ks": [1.5]})))
                .is_err()
        );
        // No params schema: params are ignored.
        assert!(
            Signature::default()
                .validate_params(p(serde_json::json!({"a": 1})))
                .unwrap()
                .is_empty()
        );
    }
}
