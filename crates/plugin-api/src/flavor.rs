//! The model-flavor contract: load a model directory and predict with it natively.
//!
//! MLflow counterpart: a flavor module with `_load_pyfunc` / `python_function`'s `predict`
//! (api.md §6, §7), chosen by the flavor name in the `MLmodel` file (`onnx`, ...). The
//! `MLmodel` file itself is read by [`MlModel`] (module [`mlmodel`](crate::mlmodel)).
//!
//! Data: a model takes and returns [`ModelData`], named [`Tensor`]s (MLflow's `inputs` /
//! `instances`) or a [`Table`] of columns that may hold missing values (`dataframe_split` /
//! `dataframe_records`). Element types are MLflow's two vocabularies: [`ColumnType`] for
//! column specs and [`DType`] (numpy's names) for tensor specs and tensor elements.

pub use crate::mlmodel::{ColSpec, MlModel, ParamSpec, Schema, Signature, TensorSpec};
use crate::{Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A column type of an MLflow column signature (api.md §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ColumnType {
    /// `boolean`
    Boolean,
    /// `integer` (32-bit)
    Integer,
    /// `long` (64-bit)
    Long,
    /// `float` (32-bit)
    Float,
    /// `double` (64-bit)
    Double,
    /// `string`
    String,
    /// `binary` (base64 in JSON)
    Binary,
    /// `datetime` (nanoseconds since the Unix epoch, as [`TensorData::Int64`])
    Datetime,
}

impl ColumnType {
    /// The tensor element type a column of this type holds.
    pub fn dtype(self) -> DType {
        match self {
            ColumnType::Boolean => DType::Bool,
            ColumnType::Integer => DType::Int32,
            ColumnType::Long | ColumnType::Datetime => DType::Int64,
            ColumnType::Float => DType::Float32,
            ColumnType::Double => DType::Float64,
            ColumnType::String => DType::Str,
            ColumnType::Binary => DType::Bytes,
        }
    }
}

/// A tensor element type, named as numpy names it (MLflow's tensor specs, api.md §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DType {
    /// `bool`
    Bool,
    /// `int8`
    Int8,
    /// `int16`
    Int16,
    /// `int32`
    Int32,
    /// `int64`
    Int64,
    /// `uint8`
    UInt8,
    /// `uint16`
    UInt16,
    /// `uint32`
    UInt32,
    /// `uint64`
    UInt64,
    /// `float16`
    Float16,
    /// `float32`
    Float32,
    /// `float64`
    Float64,
    /// `str`
    Str,
    /// `bytes`
    Bytes,
    /// `object` (numpy's dtype of string arrays; elements are strings)
    Object,
}

/// A tensor's (or column's) elements, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TensorData {
    /// `bool`
    Bool(Vec<bool>),
    /// `int8`
    Int8(Vec<i8>),
    /// `int16`
    Int16(Vec<i16>),
    /// `int32`
    Int32(Vec<i32>),
    /// `int64`
    Int64(Vec<i64>),
    /// `uint8`
    UInt8(Vec<u8>),
    /// `uint16`
    UInt16(Vec<u16>),
    /// `uint32`
    UInt32(Vec<u32>),
    /// `uint64`
    UInt64(Vec<u64>),
    /// `float16`, as the IEEE 754 half-precision bits.
    Float16(Vec<u16>),
    /// `float32`
    Float32(Vec<f32>),
    /// `float64`
    Float64(Vec<f64>),
    /// `str` (and `object`)
    Str(Vec<String>),
    /// `bytes`
    Bytes(Vec<Vec<u8>>),
}

impl TensorData {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Bool(v) => v.len(),
            TensorData::Int8(v) => v.len(),
            TensorData::Int16(v) => v.len(),
            TensorData::Int32(v) => v.len(),
            TensorData::Int64(v) => v.len(),
            TensorData::UInt8(v) => v.len(),
            TensorData::UInt16(v) | TensorData::Float16(v) => v.len(),
            TensorData::UInt32(v) => v.len(),
            TensorData::UInt64(v) => v.len(),
            TensorData::Float32(v) => v.len(),
            TensorData::Float64(v) => v.len(),
            TensorData::Str(v) => v.len(),
            TensorData::Bytes(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::Bool(_) => DType::Bool,
            TensorData::Int8(_) => DType::Int8,
            TensorData::Int16(_) => DType::Int16,
            TensorData::Int32(_) => DType::Int32,
            TensorData::Int64(_) => DType::Int64,
            TensorData::UInt8(_) => DType::UInt8,
            TensorData::UInt16(_) => DType::UInt16,
            TensorData::UInt32(_) => DType::UInt32,
            TensorData::UInt64(_) => DType::UInt64,
            TensorData::Float16(_) => DType::Float16,
            TensorData::Float32(_) => DType::Float32,
            TensorData::Float64(_) => DType::Float64,
            TensorData::Str(_) => DType::Str,
            TensorData::Bytes(_) => DType::Bytes,
        }
    }
}

/// A dense n-dimensional array whose shape always matches its element count (built with
/// [`Tensor::new`]; deserializing checks the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawTensor")]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

#[derive(Deserialize)]
struct RawTensor {
    shape: Vec<usize>,
    data: TensorData,
}

impl TryFrom<RawTensor> for Tensor {
    type Error = Error;
    fn try_from(raw: RawTensor) -> Result<Tensor> {
        Tensor::new(raw.shape, raw.data)
    }
}

impl Tensor {
    /// A tensor of `shape` holding `data` row-major. `InvalidArgument` when the product of
    /// `shape` is not the number of elements.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor> {
        let expected = shape
            .iter()
            .try_fold(1usize, |n, d| n.checked_mul(*d))
            .ok_or_else(|| Error::invalid(format!("tensor shape {shape:?} overflows")))?;
        if expected != data.len() {
            return Err(Error::invalid(format!(
                "a tensor of shape {shape:?} needs {expected} elements, got {}",
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements, row-major.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The shape and the elements.
    pub fn into_parts(self) -> (Vec<usize>, TensorData) {
        (self.shape, self.data)
    }
}

/// One column of a [`Table`]: its values and which of them are missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawColumn")]
pub struct Column {
    name: String,
    values: TensorData,
    missing: Option<Vec<bool>>,
}

#[derive(Deserialize)]
struct RawColumn {
    name: String,
    values: TensorData,
    missing: Option<Vec<bool>>,
}

impl TryFrom<RawColumn> for Column {
    type Error = Error;
    fn try_from(raw: RawColumn) -> Result<Column> {
        Column::new(raw.name, raw.values, raw.missing)
    }
}

impl Column {
    /// A column named `name`; `missing[i]` marks row `i` as missing (its value in `values` is
    /// a placeholder). `InvalidArgument` when `missing` and `values` differ in length.
    pub fn new(
        name: impl Into<String>,
        values: TensorData,
        missing: Option<Vec<bool>>,
    ) -> Result<Column> {
        let name = name.into();
        if let Some(m) = &missing
            && m.len() != values.len()
        {
            return Err(Error::invalid(format!(
                "column '{name}' has {} values but {} missing-value flags",
                values.len(),
                m.len()
            )));
        }
        // No flag set is the same as no mask: one form for one table.
        let missing = missing.filter(|m| m.iter().any(|x| *x));
        Ok(Column {
            name,
            values,
            missing,
        })
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The values (placeholders where missing).
    pub fn values(&self) -> &TensorData {
        &self.values
    }

    /// Whether row `i` is missing.
    pub fn is_missing(&self, i: usize) -> bool {
        self.missing
            .as_ref()
            .is_some_and(|m| m.get(i).copied().unwrap_or(false))
    }

    /// The missing-value flags, if any value is missing.
    pub fn missing(&self) -> Option<&[bool]> {
        self.missing.as_deref()
    }

    /// The name, values and missing flags.
    pub fn into_parts(self) -> (String, TensorData, Option<Vec<bool>>) {
        (self.name, self.values, self.missing)
    }
}

/// A column-oriented table whose columns all have the same length (MLflow's
/// `dataframe_split` / `dataframe_records` inputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawTable")]
pub struct Table {
    rows: usize,
    columns: Vec<Column>,
}

#[derive(Deserialize)]
struct RawTable {
    rows: usize,
    columns: Vec<Column>,
}

impl TryFrom<RawTable> for Table {
    type Error = Error;
    fn try_from(raw: RawTable) -> Result<Table> {
        let table = Table::new(raw.columns)?;
        if !table.columns.is_empty() || raw.rows == 0 {
            Ok(table)
        } else {
            Ok(Table {
                rows: raw.rows,
                columns: vec![],
            })
        }
    }
}

impl Table {
    /// A table of `columns`. `InvalidArgument` when their lengths differ.
    pub fn new(columns: Vec<Column>) -> Result<Table> {
        let rows = columns.first().map_or(0, |c| c.values.len());
        if let Some(c) = columns.iter().find(|c| c.values.len() != rows) {
            return Err(Error::invalid(format!(
                "column '{}' has {} rows, the first column {rows}",
                c.name,
                c.values.len()
            )));
        }
        Ok(Table { rows, columns })
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The columns in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The columns.
    pub fn into_columns(self) -> Vec<Column> {
        self.columns
    }
}

/// A model's input or output: named tensors, or a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelData {
    /// Named tensors (MLflow's `inputs` / `instances`); an unnamed single tensor uses `""`.
    Tensors(BTreeMap<String, Tensor>),
    /// A table.
    Table(Table),
}

/// Inference parameters (MLflow's `params`), after [`Signature::validate_params`].
pub type Params = BTreeMap<String, serde_json::Value>;

/// What a loaded model accepts and how it may be called.
/// Every flag reads as `false` when missing, so the struct may grow (see the ffi module).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ModelCapabilities {
    /// Rows (the first dimension) are independent, so requests may be concatenated into one
    /// call and the output split back by rows.
    pub batchable: bool,
    /// It accepts [`ModelData::Tensors`].
    pub tensor_input: bool,
    /// It accepts [`ModelData::Table`].
    pub table_input: bool,
}

impl ModelCapabilities {
    /// Capabilities with every flag given.
    pub fn new(batchable: bool, tensor_input: bool, table_input: bool) -> Self {
        ModelCapabilities {
            batchable,
            tensor_input,
            table_input,
        }
    }
}

/// Loads models of one flavor.
#[async_trait]
pub trait ModelFlavor: Send + Sync + 'static {
    /// Loads the model stored in `model_dir` (the directory holding `MLmodel`), given the whole
    /// parsed `MLmodel` (this flavor's section is `model.flavors[<name>]`). A missing or
    /// corrupt model file is `InvalidArgument` naming the file; a model using something this
    /// flavor cannot run is `Unsupported` naming it.
    async fn load(&self, model_dir: &Path, model: &MlModel) -> Result<Arc<dyn LoadedModel>>;
}

/// A model ready to predict; shared by concurrent requests.
#[async_trait]
pub trait LoadedModel: Send + Sync + 'static {
    /// The model's signature: the `MLmodel` file's, else the one the model itself declares.
    fn signature(&self) -> Signature;

    /// What the model accepts and whether requests may be batched.
    fn capabilities(&self) -> ModelCapabilities;

    /// Runs the model. `params` are checked with [`Signature::validate_params`] first (unknown
    /// ones dropped, defaults filled, wrong types refused). Input that does not fit the
    /// signature is `InvalidArgument` naming the input and the expected type or shape.
    /// CPU-heavy work runs off the async executor.
    async fn predict(&self, input: ModelData, params: Params) -> Result<ModelData>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_are_checked_against_their_shape() {
        assert!(Tensor::new(vec![2, 3], TensorData::Float32(vec![0.0; 6])).is_ok());
        let err = Tensor::new(vec![2, 3], TensorData::Float32(vec![0.0; 5])).unwrap_err();
        assert!(err.to_string().contains("needs 6 elements, got 5"), "{err}");
        assert!(Tensor::new(vec![usize::MAX, 3], TensorData::Int8(vec![])).is_err());
        // Deserializing goes through the same check.
        let bad = r#"{"shape":[3],"data":{"int64":[1,2]}}"#;
        assert!(serde_json::from_str::<Tensor>(bad).is_err());
        let scalar = Tensor::new(vec![], TensorData::Int64(vec![7])).unwrap();
        assert_eq!(scalar.shape(), &[] as &[usize]);
    }

    #[test]
    fn tables_hold_missing_values_and_equal_columns() {
        let a = Column::new(
            "a",
            TensorData::Float64(vec![1.0, 0.0]),
            Some(vec![false, true]),
        )
        .unwrap();
        assert!(a.is_missing(1) && !a.is_missing(0));
        let b = Column::new("b", TensorData::Str(vec!["x".into()]), None).unwrap();
        assert!(Table::new(vec![a.clone(), b]).is_err());
        assert!(Column::new("c", TensorData::Bool(vec![true]), Some(vec![])).is_err());
        let t = Table::new(vec![a]).unwrap();
        assert_eq!(t.rows(), 2);
        let back: Table = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }
}
