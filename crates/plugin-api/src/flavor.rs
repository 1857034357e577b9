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
    /// JSON values ([`TensorData::Json`]): not a numpy dtype; no MLflow signature names it.
    Json,
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
    /// JSON values as a request held them, each as its JSON text (compact, an object's keys in
    /// the request's order, which a Python dict keeps): the cells of a column MLflow types
    /// `Array`, `Object`, `Map` or `AnyType`, and list or object cells (or tensor elements)
    /// where no type is declared. A Python model gets each as the Python value `json.loads`
    /// makes of it (a list, a dict, ...), as MLflow's scoring server passes them; a model that
    /// only takes numbers or strings refuses them. A missing value of a table column is a
    /// placeholder `null`; a present JSON `null` is a value.
    Json(Vec<String>),
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
            TensorData::Json(v) => v.len(),
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
            TensorData::Json(_) => DType::Json,
        }
    }
}

/// Expands `$m!(Bool, Int8, ...)` with every [`TensorData`] variant.
macro_rules! every_variant {
    ($m:ident) => {
        $m!(
            Bool, Int8, Int16, Int32, Int64, UInt8, UInt16, UInt32, UInt64, Float16, Float32,
            Float64, Str, Bytes, Json
        )
    };
}

impl TensorData {
    /// Elements `range` (row-major positions) as a new vector of the same type.
    pub fn slice(&self, range: std::ops::Range<usize>) -> TensorData {
        macro_rules! slice {
            ($($var:ident),*) => {
                match self {
                    $(TensorData::$var(v) => TensorData::$var(v[range].to_vec()),)*
                }
            };
        }
        every_variant!(slice)
    }

    /// `parts` one after the other; `InvalidArgument` when there are none or their element
    /// types differ.
    pub fn concat(parts: &[&TensorData]) -> Result<TensorData> {
        let mismatch = |a: &TensorData, b: &TensorData| {
            Error::invalid(format!(
                "cannot concatenate {:?} elements with {:?} elements",
                a.dtype(),
                b.dtype()
            ))
        };
        macro_rules! concat {
            ($($var:ident),*) => {
                match parts.first() {
                    None => Err(Error::invalid("nothing to concatenate")),
                    $(Some(first @ TensorData::$var(_)) => {
                        let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
                        for p in parts {
                            match p {
                                TensorData::$var(v) => out.extend_from_slice(v),
                                other => return Err(mismatch(other, first)),
                            }
                        }
                        Ok(TensorData::$var(out))
                    })*
                }
            };
        }
        every_variant!(concat)
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

    /// The number of rows (the first dimension); `None` for a scalar.
    pub fn rows(&self) -> Option<usize> {
        self.shape.first().copied()
    }

    /// `parts` stacked along the first dimension. `InvalidArgument` unless they share the
    /// element type and every dimension but the first.
    pub fn concat_rows(parts: &[&Tensor]) -> Result<Tensor> {
        let Some(first) = parts.first() else {
            return Err(Error::invalid("nothing to concatenate"));
        };
        let tail = first.shape.get(1..).unwrap_or_default();
        if first.shape.is_empty() || parts.iter().any(|p| p.shape.get(1..) != Some(tail)) {
            return Err(Error::invalid(
                "only tensors of the same shape past the first dimension stack by rows",
            ));
        }
        let data = TensorData::concat(&parts.iter().map(|p| &p.data).collect::<Vec<_>>())?;
        let mut shape = first.shape.clone();
        shape[0] = parts.iter().map(|p| p.shape[0]).sum();
        Tensor::new(shape, data)
    }

    /// The tensor cut along the first dimension into consecutive pieces of `rows[i]` rows.
    /// `InvalidArgument` unless the sizes add up to its rows.
    pub fn split_rows(&self, rows: &[usize]) -> Result<Vec<Tensor>> {
        if self.rows() != Some(rows.iter().sum()) {
            return Err(Error::invalid(format!(
                "a tensor of shape {:?} does not split into {rows:?} rows",
                self.shape
            )));
        }
        let stride: usize = self.shape[1..].iter().product();
        let mut start = 0;
        rows.iter()
            .map(|&n| {
                let mut shape = self.shape.clone();
                shape[0] = n;
                let piece = self.data.slice(start * stride..(start + n) * stride);
                start += n;
                Tensor::new(shape, piece)
            })
            .collect()
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

    /// `parts` one below the other. `InvalidArgument` unless they have the same column names
    /// and types in the same order.
    pub fn concat_rows(parts: &[&Table]) -> Result<Table> {
        let Some(first) = parts.first() else {
            return Err(Error::invalid("nothing to concatenate"));
        };
        let layout = |t: &Table| {
            t.columns
                .iter()
                .map(|c| (c.name.clone(), c.values.dtype()))
                .collect::<Vec<_>>()
        };
        if parts.iter().any(|p| layout(p) != layout(first)) {
            return Err(Error::invalid(
                "only tables with the same columns and types stack by rows",
            ));
        }
        let columns = (0..first.columns.len())
            .map(|i| {
                let values = TensorData::concat(
                    &parts
                        .iter()
                        .map(|p| &p.columns[i].values)
                        .collect::<Vec<_>>(),
                )?;
                let missing = parts
                    .iter()
                    .flat_map(|p| (0..p.rows).map(|r| p.columns[i].is_missing(r)))
                    .collect();
                Column::new(first.columns[i].name.clone(), values, Some(missing))
            })
            .collect::<Result<Vec<_>>>()?;
        Table::new(columns)
    }

    /// The table cut into consecutive pieces of `rows[i]` rows. `InvalidArgument` unless the
    /// sizes add up to its rows.
    pub fn split_rows(&self, rows: &[usize]) -> Result<Vec<Table>> {
        if self.rows != rows.iter().sum::<usize>() || self.columns.is_empty() {
            return Err(Error::invalid(format!(
                "a table of {} rows does not split into {rows:?} rows",
                self.rows
            )));
        }
        let mut start = 0;
        rows.iter()
            .map(|&n| {
                let range = start..start + n;
                start += n;
                let columns = self
                    .columns
                    .iter()
                    .map(|c| {
                        let missing = c.missing.as_ref().map(|m| m[range.clone()].to_vec());
                        Column::new(c.name.clone(), c.values.slice(range.clone()), missing)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Table::new(columns)
            })
            .collect()
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

impl ModelData {
    /// The number of rows: a table's rows, or the first dimension every tensor shares
    /// (`None` when the tensors disagree, one is a scalar, or there are none).
    pub fn rows(&self) -> Option<usize> {
        match self {
            ModelData::Table(t) => Some(t.rows()),
            ModelData::Tensors(m) => {
                let mut rows = m.values().map(Tensor::rows);
                let first = rows.next()??;
                rows.all(|r| r == Some(first)).then_some(first)
            }
        }
    }

    /// `parts` stacked by rows ([`Tensor::concat_rows`] per name, or
    /// [`Table::concat_rows`]). `InvalidArgument` unless they all have the same layout.
    pub fn concat_rows(parts: &[&ModelData]) -> Result<ModelData> {
        let tables: Option<Vec<&Table>> = parts
            .iter()
            .map(|p| match p {
                ModelData::Table(t) => Some(t),
                ModelData::Tensors(_) => None,
            })
            .collect();
        if let Some(tables) = tables {
            return Table::concat_rows(&tables).map(ModelData::Table);
        }
        let Some(ModelData::Tensors(first)) = parts.first() else {
            return Err(Error::invalid("only tensors stack with tensors"));
        };
        let mut out = BTreeMap::new();
        for name in first.keys() {
            let pieces = parts
                .iter()
                .map(|p| match p {
                    ModelData::Tensors(m) if m.len() == first.len() => m.get(name),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::invalid("only tensors with the same names stack by rows"))?;
            out.insert(name.clone(), Tensor::concat_rows(&pieces)?);
        }
        Ok(ModelData::Tensors(out))
    }

    /// The data cut into consecutive pieces of `rows[i]` rows (every tensor along its first
    /// dimension). `InvalidArgument` unless every tensor (or the table) has exactly the sum.
    pub fn split_rows(&self, rows: &[usize]) -> Result<Vec<ModelData>> {
        match self {
            ModelData::Table(t) => Ok(t
                .split_rows(rows)?
                .into_iter()
                .map(ModelData::Table)
                .collect()),
            ModelData::Tensors(m) => {
                let mut out = vec![BTreeMap::new(); rows.len()];
                for (name, t) in m {
                    for (piece, slot) in t.split_rows(rows)?.into_iter().zip(&mut out) {
                        slot.insert(name.clone(), piece);
                    }
                }
                Ok(out.into_iter().map(ModelData::Tensors).collect())
            }
        }
    }
}

/// The [`Error::context`] key under which a model that knows MLflow's exact error (a Python
/// model, whose worker words it as MLflow's scoring server does) gives MLflow's error code
/// (`BAD_REQUEST`, `INVALID_PARAMETER_VALUE`); the scoring server then answers the error's
/// message unchanged with that code.
pub const MLFLOW_ERROR_CODE: &str = "mlflow_error_code";

/// The [`Error::context`] key under which such a model may give MLflow's whole error body (a
/// JSON object: `error_code`, `message`, `sqlstate`, `error_class`, ...); the scoring server
/// then answers it as it is, with 400.
pub const MLFLOW_ERROR_BODY: &str = "mlflow_error_body";

/// The name of the one tensor carrying a JSON request's whole `inputs` value, unread, when the
/// model has a column signature: MLflow reads that form for such a model by its own rules
/// (`parse_tf_serving_input`: a dict of columns, a list of records, a list for the one column,
/// each value checked by its column type), which a Python model's flavor applies with MLflow's
/// code. The tensor is a scalar (shape `[]`) of [`TensorData::Json`]; a flavor that cannot
/// read it refuses it as input it does not know.
pub const RAW_INPUTS: &str = "\u{0}inputs";

/// As [`RAW_INPUTS`], for the `instances` form.
pub const RAW_INSTANCES: &str = "\u{0}instances";

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
    /// Its outputs are a Python `python_function` model's return values, rendered as MLflow's
    /// scoring server renders them whatever the input: a [`ModelData::Table`] (a DataFrame or
    /// Series) as records, the single unnamed tensor `""` (an ndarray, list or scalar) as its
    /// nested list, named tensors (a dict) as an object of nested lists.
    pub python_function: bool,
}

impl ModelCapabilities {
    /// Capabilities with every flag given.
    pub fn new(batchable: bool, tensor_input: bool, table_input: bool) -> Self {
        ModelCapabilities {
            batchable,
            tensor_input,
            table_input,
            python_function: false,
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
    fn model_data_stacks_and_splits_by_rows() {
        let t =
            |shape: Vec<usize>, v: Vec<f32>| Tensor::new(shape, TensorData::Float32(v)).unwrap();
        let a = ModelData::Tensors([("x".to_string(), t(vec![1, 2], vec![1.0, 2.0]))].into());
        let b =
            ModelData::Tensors([("x".to_string(), t(vec![2, 2], vec![3.0, 4.0, 5.0, 6.0]))].into());
        let ab = ModelData::concat_rows(&[&a, &b]).unwrap();
        assert_eq!(ab.rows(), Some(3));
        assert_eq!(ab.split_rows(&[1, 2]).unwrap(), vec![a.clone(), b]);
        assert!(ab.split_rows(&[1, 1]).is_err());
        // Different trailing shapes, names or element types do not stack.
        let c = ModelData::Tensors([("x".to_string(), t(vec![1, 3], vec![0.0; 3]))].into());
        assert!(ModelData::concat_rows(&[&a, &c]).is_err());
        let d = ModelData::Tensors([("y".to_string(), t(vec![1, 2], vec![0.0; 2]))].into());
        assert!(ModelData::concat_rows(&[&a, &d]).is_err());
        let e = ModelData::Tensors(
            [(
                "x".to_string(),
                Tensor::new(vec![1, 2], TensorData::Int64(vec![1, 2])).unwrap(),
            )]
            .into(),
        );
        assert!(ModelData::concat_rows(&[&a, &e]).is_err());
        // Tables keep their missing values.
        let col = |v: Vec<f64>, m: Vec<bool>| {
            Table::new(vec![
                Column::new("a", TensorData::Float64(v), Some(m)).unwrap(),
            ])
            .unwrap()
        };
        let p = ModelData::Table(col(vec![1.0, 0.0], vec![false, true]));
        let q = ModelData::Table(col(vec![3.0], vec![false]));
        let pq = ModelData::concat_rows(&[&p, &q]).unwrap();
        let ModelData::Table(table) = &pq else {
            panic!()
        };
        assert!(
            table.column("a").unwrap().is_missing(1) && !table.column("a").unwrap().is_missing(2)
        );
        assert_eq!(pq.split_rows(&[2, 1]).unwrap(), vec![p, q]);
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
