//! The model-flavor contract: load a model directory and predict with it natively.
//!
//! MLflow counterpart: a flavor module with `_load_pyfunc` / `python_function`'s `predict`
//! (api.md §6, §7), chosen by the flavor name in the `MLmodel` file (`onnx`, ...).

use crate::Result;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Element type of a tensor or column, named as MLflow's signature names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// `boolean`
    #[serde(rename = "boolean")]
    Bool,
    /// `int32`
    Int32,
    /// `int64`
    Int64,
    /// `float32`
    Float32,
    /// `float64`
    Float64,
    /// `string`
    String,
}

/// A tensor's elements, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TensorData {
    /// Booleans.
    Bool(Vec<bool>),
    /// 32-bit integers.
    Int32(Vec<i32>),
    /// 64-bit integers.
    Int64(Vec<i64>),
    /// 32-bit floats.
    Float32(Vec<f32>),
    /// 64-bit floats.
    Float64(Vec<f64>),
    /// Strings.
    String(Vec<String>),
}

/// A dense n-dimensional array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    /// Dimensions; their product is the number of elements.
    pub shape: Vec<usize>,
    /// Elements, row-major.
    pub data: TensorData,
}

/// A column-oriented table (MLflow's `dataframe_split` / `dataframe_records` inputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Columns in order; each is a 1-D tensor of the same length.
    pub columns: Vec<(String, Tensor)>,
}

/// A model's input or output: named tensors, or a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelData {
    /// Named tensors (MLflow's `inputs` / `instances`); an unnamed single input uses `""`.
    Tensors(BTreeMap<String, Tensor>),
    /// A table.
    Table(Table),
}

/// One input or output of a signature (`-1` in `shape` means any size).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// The name, if the model names it.
    pub name: Option<String>,
    /// Element type.
    pub dtype: DataType,
    /// Shape, `-1` for dynamic dimensions.
    pub shape: Vec<i64>,
}

/// What a loaded model takes and returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Inputs.
    pub inputs: Vec<TensorSpec>,
    /// Outputs.
    pub outputs: Vec<TensorSpec>,
}

/// Loads models of one flavor.
#[async_trait]
pub trait ModelFlavor: Send + Sync + 'static {
    /// Loads the model stored in `model_dir` (the directory holding `MLmodel`), given this
    /// flavor's section of the `MLmodel` file as JSON. A missing or corrupt model file is
    /// `InvalidArgument` naming the file.
    async fn load(
        &self,
        model_dir: &Path,
        flavor_config: &serde_json::Value,
    ) -> Result<Arc<dyn LoadedModel>>;
}

/// A model ready to predict; shared by concurrent requests.
#[async_trait]
pub trait LoadedModel: Send + Sync + 'static {
    /// The model's inputs and outputs.
    fn signature(&self) -> Signature;

    /// Runs the model. Input that does not fit the signature is `InvalidArgument` naming the
    /// input and the expected type or shape. CPU-heavy work runs off the async executor.
    async fn predict(&self, input: ModelData) -> Result<ModelData>;
}
