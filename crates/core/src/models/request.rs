//! Reading a scoring request into the model's input, in one pass.
//!
//! A JSON body is read by serde visitors straight into typed element vectors: where the
//! signature declares a tensor's dtype or a column's type, each JSON scalar is converted as it is
//! read (`[[1.5, 2], ...]` for a `float32` tensor fills a `Vec<f32>`); where it declares none, the
//! scalars are kept until the whole input is read and the type is inferred from them. No
//! `serde_json::Value` tree of the input is built. CSV and Parquet cells go through the same
//! column sinks.
//!
//! Lists and objects where a scalar would be (a DataFrame cell, a tensor element), and every cell
//! of a column the signature types `Array`, `Object`, `Map` or `AnyType`, are kept as JSON values
//! ([`TensorData::Json`]): a Python model gets them as the lists and dicts MLflow's scoring server
//! passes. A model with a column signature given `inputs` or `instances` gets the whole value
//! unread ([`RAW_INPUTS`], [`RAW_INSTANCES`]): MLflow's own rules for that form run in the
//! Python worker.
//!
//! Failures keep MLflow's families and the order in which the old two-pass reader found them:
//! invalid JSON first (the whole body is read before any other failure is reported), then the
//! top-level shape, `params`, the format keys, and last the format's own failures (missing
//! columns before conversions). Parse and conversion failures are `BAD_REQUEST`, schema failures
//! `INVALID_PARAMETER_VALUE`.

use super::scoring::{Failure, bad, invalid};
use cairn_plugin_api::flavor::{
    ColSpec, Column, ColumnType, DType, ModelData, Params, RAW_INPUTS, RAW_INSTANCES, Schema,
    Signature, Table, Tensor, TensorData, TensorSpec,
};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

const FORMATS: &str = "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}";

// ----- scalars and sinks ----------------------------------------------------------------------

/// A JSON scalar as read (or, where a scalar was expected, any other JSON value: its compact
/// JSON text, keys in the request's order).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Other(String),
}

impl Scalar {
    fn is_null(&self) -> bool {
        matches!(self, Scalar::Null)
    }

    fn is_int(&self) -> bool {
        matches!(self, Scalar::Int(_) | Scalar::UInt(_))
    }

    fn is_number(&self) -> bool {
        matches!(self, Scalar::Int(_) | Scalar::UInt(_) | Scalar::Float(_))
    }

    /// The value as compact JSON text (as serde_json writes it).
    fn into_text(self) -> String {
        match self {
            Scalar::Null => "null".into(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::UInt(u) => u.to_string(),
            Scalar::Float(f) => Value::from(f).to_string(),
            Scalar::Str(s) => Value::String(s).to_string(),
            Scalar::Other(text) => text,
        }
    }

    fn num(&self) -> Option<f64> {
        match self {
            Scalar::Null => Some(0.0),
            Scalar::Int(i) => Some(*i as f64),
            Scalar::UInt(u) => Some(*u as f64),
            Scalar::Float(f) => Some(*f),
            Scalar::Bool(b) => Some(f64::from(u8::from(*b))),
            Scalar::Str(s) => s.trim().parse().ok(),
            Scalar::Other(_) => None,
        }
    }

    fn int(&self) -> Option<i64> {
        match self {
            Scalar::Null => Some(0),
            Scalar::Int(i) => Some(*i),
            Scalar::UInt(u) => i64::try_from(*u).ok(),
            Scalar::Bool(b) => Some(i64::from(*b)),
            Scalar::Str(s) => s.trim().parse().ok(),
            Scalar::Float(_) | Scalar::Other(_) => None,
        }
    }
}

impl From<Value> for Scalar {
    fn from(v: Value) -> Scalar {
        match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Scalar::Int(i),
                (None, Some(u)) => Scalar::UInt(u),
                _ => Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Scalar::Str(s),
            other => Scalar::Other(other.to_string()),
        }
    }
}

/// The empty element vector a value of `dtype` is read into (types without a JSON conversion
/// are read as strings).
fn empty(dtype: DType) -> TensorData {
    match dtype {
        DType::Float64 => TensorData::Float64(vec![]),
        DType::Float32 => TensorData::Float32(vec![]),
        DType::Int64 => TensorData::Int64(vec![]),
        DType::Int32 => TensorData::Int32(vec![]),
        DType::Bool => TensorData::Bool(vec![]),
        DType::Bytes => TensorData::Bytes(vec![]),
        DType::Json => TensorData::Json(vec![]),
        _ => TensorData::Str(vec![]),
    }
}

/// `s` converted into `data`'s element type (null as a placeholder) and appended; numeric
/// strings, ints and bools convert to numbers, as MLflow does. `Err(s)` when it does not convert.
fn append(data: &mut TensorData, s: Scalar) -> Result<(), Scalar> {
    macro_rules! push {
        ($v:expr, $x:expr) => {
            match $x {
                Some(x) => {
                    $v.push(x);
                    Ok(())
                }
                None => Err(s),
            }
        };
    }
    match data {
        TensorData::Float64(v) => push!(v, s.num()),
        TensorData::Float32(v) => push!(v, s.num().map(|x| x as f32)),
        TensorData::Int64(v) => push!(v, s.int()),
        TensorData::Int32(v) => push!(v, s.int().and_then(|x| i32::try_from(x).ok())),
        TensorData::Bool(v) => push!(
            v,
            match &s {
                Scalar::Null => Some(false),
                Scalar::Bool(b) => Some(*b),
                _ => None,
            }
        ),
        TensorData::Bytes(v) => push!(
            v,
            match &s {
                Scalar::Null => Some(vec![]),
                Scalar::Str(x) => {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.decode(x).ok()
                }
                _ => None,
            }
        ),
        TensorData::Str(v) => {
            v.push(match s {
                Scalar::Null => String::new(),
                Scalar::Str(x) => x,
                other => other.into_text(),
            });
            Ok(())
        }
        TensorData::Json(v) => {
            v.push(s.into_text());
            Ok(())
        }
        _ => Err(s),
    }
}

/// The elements of one tensor or column as they are read: converted at once when the type is
/// declared, kept as scalars until the end otherwise. The first value that does not convert is
/// kept for the error; the rest is then only counted.
pub(crate) struct Sink {
    data: Result<TensorData, Vec<Scalar>>,
    /// Which elements were null (columns only).
    missing: Option<Vec<bool>>,
    /// The positions of the nulls that stand for an absent key of a record (columns only): in
    /// a column of JSON values only these are missing, a JSON `null` is a value.
    absent: Vec<usize>,
    failed: Option<Scalar>,
    len: usize,
}

impl Sink {
    fn new(dtype: Option<DType>, track_missing: bool) -> Sink {
        Sink {
            data: dtype.map(empty).ok_or_else(Vec::new),
            missing: track_missing.then(Vec::new),
            absent: Vec::new(),
            failed: None,
            len: 0,
        }
    }

    /// A record without this key.
    fn push_absent(&mut self) {
        if self.failed.is_none() {
            self.absent.push(self.len);
        }
        self.push(Scalar::Null);
    }

    /// Whether a list or an object was read where a scalar would be (values kept for
    /// inference only).
    fn has_json(&self) -> bool {
        self.kept().iter().any(|s| matches!(s, Scalar::Other(_)))
    }

    fn push(&mut self, s: Scalar) {
        self.len += 1;
        if self.failed.is_some() {
            return;
        }
        if let Some(m) = &mut self.missing {
            m.push(s.is_null());
        }
        match &mut self.data {
            Ok(data) => {
                if let Err(s) = append(data, s) {
                    self.failed = Some(s);
                }
            }
            Err(kept) => kept.push(s),
        }
    }

    /// The scalars kept for inference (none when the type was declared).
    fn kept(&self) -> &[Scalar] {
        self.data.as_ref().err().map_or(&[], Vec::as_slice)
    }

    /// The elements as `dtype` (the declared one when there was one), or the value that does
    /// not convert.
    fn finish(self, dtype: DType) -> Result<(TensorData, Option<Vec<bool>>), String> {
        if let Some(s) = self.failed {
            return Err(s.into_text());
        }
        let data = match self.data {
            Ok(data) => data,
            Err(kept) => {
                let mut data = empty(dtype);
                for s in kept {
                    append(&mut data, s).map_err(Scalar::into_text)?;
                }
                data
            }
        };
        let missing = match (&data, self.missing) {
            (TensorData::Json(_), Some(_)) => {
                let mut m = vec![false; data.len()];
                for i in self.absent {
                    m[i] = true;
                }
                Some(m)
            }
            (_, missing) => missing,
        };
        Ok((data, missing))
    }
}

/// A tensor's type inferred from its elements, as MLflow's `np.array` would (JSON values
/// when a list or an object stands where a scalar would).
fn infer_dtype(leaves: &[Scalar]) -> DType {
    if leaves.iter().any(|s| matches!(s, Scalar::Other(_))) {
        DType::Json
    } else if leaves.iter().all(|s| matches!(s, Scalar::Bool(_))) && !leaves.is_empty() {
        DType::Bool
    } else if leaves.iter().all(Scalar::is_int) {
        DType::Int64
    } else if leaves.iter().all(Scalar::is_number) {
        DType::Float64
    } else {
        DType::Str
    }
}

/// A column's element type inferred from its present values, as pandas would: JSON values
/// when a cell is a list or an object (pandas keeps them as they are), else a column type's.
fn infer_column(values: &[Scalar]) -> DType {
    if values.iter().any(|s| matches!(s, Scalar::Other(_))) {
        return DType::Json;
    }
    infer_column_type(values).dtype()
}

/// A scalar column's type inferred from its present values, as pandas would.
fn infer_column_type(values: &[Scalar]) -> ColumnType {
    let present = || values.iter().filter(|v| !v.is_null());
    let some = present().next().is_some();
    if some && present().all(|s| matches!(s, Scalar::Bool(_))) {
        ColumnType::Boolean
    } else if some && present().all(Scalar::is_int) {
        ColumnType::Long
    } else if present().all(Scalar::is_number) {
        ColumnType::Double
    } else {
        ColumnType::String
    }
}

// ----- tensors --------------------------------------------------------------------------------

/// A tensor being read from nested JSON lists: its shape from the nesting (a dimension is
/// `usize::MAX` until its first list ends), ragged nesting remembered.
struct Nest {
    shape: Vec<usize>,
    ragged: bool,
    sink: Sink,
    declared: Option<DType>,
}

impl Nest {
    fn new(dtype: Option<DType>) -> Nest {
        Nest {
            shape: Vec::new(),
            ragged: false,
            sink: Sink::new(dtype, false),
            declared: dtype,
        }
    }

    fn scalar(&mut self, depth: usize, s: Scalar) {
        if self.ragged {
            return;
        }
        if self.shape.len() != depth {
            self.ragged = true;
        } else {
            self.sink.push(s);
        }
    }

    /// Entering a list at `depth`: whether its items are read (false once ragged).
    fn open(&mut self, depth: usize) -> bool {
        if self.ragged {
            return false;
        }
        if self.shape.len() == depth {
            if self.sink.len > 0 {
                self.ragged = true; // a list where a scalar was
                return false;
            }
            self.shape.push(usize::MAX);
        } else if self.shape.len() < depth {
            self.ragged = true;
            return false;
        }
        true
    }

    fn close(&mut self, depth: usize, len: usize) {
        if self.ragged {
            return;
        }
        if self.shape[depth] == usize::MAX {
            self.shape[depth] = len;
        } else if self.shape[depth] != len {
            self.ragged = true;
        }
    }

    fn finish(self, name: &str) -> Result<Tensor, Failure> {
        if self.ragged {
            return Err(bad(format!(
                "input '{name}' is not a rectangular (non-ragged) list"
            )));
        }
        let dtype = self
            .declared
            .unwrap_or_else(|| infer_dtype(self.sink.kept()));
        let (data, _) = self.sink.finish(dtype).map_err(|v| {
            bad(format!(
                "Can not safely convert {v} of input '{name}' to {dtype:?}."
            ))
        })?;
        Tensor::new(self.shape, data).map_err(|e| bad(e.message))
    }
}

/// One JSON value at `depth` of a [`Nest`].
struct Level<'a> {
    nest: &'a mut Nest,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Level<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// The `visit_*` methods of a JSON scalar, each handing a
/// [`Scalar`] to `self.scalar(..)`.
macro_rules! scalar_visits {
    () => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(self.scalar(Scalar::Bool(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(self.scalar(Scalar::Int(v)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(self.scalar(match i64::try_from(v) {
                Ok(i) => Scalar::Int(i),
                Err(_) => Scalar::UInt(v),
            }))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(self.scalar(Scalar::Float(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(self.scalar(Scalar::Str(v.to_string())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(self.scalar(Scalar::Str(v)))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(self.scalar(Scalar::Null))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(self.scalar(Scalar::Null))
        }
    };
}

/// `visit_map` reading a JSON object whole as one [`Scalar::Other`].
macro_rules! object_as_scalar {
    () => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let mut text = String::new();
            JsonText(&mut text).visit_map(map)?;
            Ok(self.scalar(Scalar::Other(text)))
        }
    };
}

/// One JSON value written back as compact JSON text, object keys in the order read (a
/// `serde_json::Value` would sort them; Python keeps a dict's order), numbers as serde_json
/// writes them.
struct JsonText<'a>(&'a mut String);

impl JsonText<'_> {
    fn scalar(self, s: Scalar) {
        self.0.push_str(&s.into_text());
    }
}

impl<'de> DeserializeSeed<'de> for JsonText<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonText<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    scalar_visits!();
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push('[');
        let mut first = true;
        loop {
            let at = self.0.len();
            if !first {
                self.0.push(',');
            }
            if seq.next_element_seed(JsonText(&mut *self.0))?.is_none() {
                self.0.truncate(at);
                break;
            }
            first = false;
        }
        self.0.push(']');
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push('{');
        let mut first = true;
        while let Some(key) = map.next_key::<String>()? {
            if !first {
                self.0.push(',');
            }
            first = false;
            self.0.push_str(&Value::String(key).to_string());
            self.0.push(':');
            map.next_value_seed(JsonText(&mut *self.0))?;
        }
        self.0.push('}');
        Ok(())
    }
}

fn drain<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<usize, A::Error> {
    let mut n = 0;
    while seq.next_element::<IgnoredAny>()?.is_some() {
        n += 1;
    }
    Ok(n)
}

impl Level<'_> {
    fn scalar(self, s: Scalar) {
        self.nest.scalar(self.depth, s);
    }
}

impl<'de> Visitor<'de> for Level<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    scalar_visits!();
    object_as_scalar!();
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.nest.open(self.depth) {
            drain(seq)?;
            return Ok(());
        }
        let mut n = 0;
        while seq
            .next_element_seed(Level {
                nest: self.nest,
                depth: self.depth + 1,
            })?
            .is_some()
        {
            n += 1;
        }
        self.nest.close(self.depth, n);
        Ok(())
    }
}

/// The tensor specs of the signature (`None` without a signature, or with a column signature,
/// whose `inputs` and `instances` are read whole: [`raw`]).
fn tensor_specs(signature: &Signature) -> Result<Option<&[TensorSpec]>, Failure> {
    match &signature.inputs {
        Some(Schema::Tensors(t)) => Ok(Some(t)),
        _ => Ok(None),
    }
}

/// Whether `inputs` and `instances` are carried whole to the model, unread: a column signature
/// (MLflow reads them by the column types, with its own rules).
fn reads_raw(signature: &Signature) -> bool {
    matches!(signature.inputs, Some(Schema::Columns(_)))
}

/// The whole value of a tensor form as the one tensor `name` ([`RAW_INPUTS`], [`RAW_INSTANCES`]).
fn raw<'de, D: Deserializer<'de>>(
    name: &str,
    d: D,
) -> Result<Result<ModelData, Failure>, D::Error> {
    let mut text = String::new();
    JsonText(&mut text).deserialize(d)?;
    Ok(Tensor::new(vec![], TensorData::Json(vec![text]))
        .map(|t| ModelData::Tensors([(name.to_string(), t)].into()))
        .map_err(|e| bad(e.message)))
}

/// A named input: `Some(dtype)` to read it (declared or inferred), `None` to ignore it (the
/// signature does not name it: extra inputs are ignored, as MLflow's schema enforcement does).
fn named_input(specs: Option<&[TensorSpec]>, name: &str) -> Option<Option<DType>> {
    match specs {
        None => Some(None),
        Some(s) => s
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
            .map(|s| Some(s.dtype)),
    }
}

/// The single unnamed tensor of `inputs: [...]` or `instances: [...]`.
fn unnamed(specs: Option<&[TensorSpec]>) -> (String, Nest) {
    let spec = specs.and_then(|s| (s.len() == 1).then(|| &s[0]));
    let name = spec.and_then(|s| s.name.clone()).unwrap_or_default();
    (name, Nest::new(spec.map(|s| s.dtype)))
}

fn tensors(nests: impl IntoIterator<Item = (String, Nest)>) -> Result<ModelData, Failure> {
    let mut out = BTreeMap::new();
    for (name, nest) in nests {
        let t = nest.finish(&name)?;
        out.insert(name, t);
    }
    Ok(ModelData::Tensors(out))
}

/// `inputs`: a nested list (one unnamed tensor) or a dictionary of named ones.
struct Inputs<'a> {
    signature: &'a Signature,
}

impl<'de> DeserializeSeed<'de> for Inputs<'_> {
    type Value = Result<ModelData, Failure>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if reads_raw(self.signature) {
            return raw(RAW_INPUTS, d);
        }
        d.deserialize_any(self)
    }
}

impl Inputs<'_> {
    fn scalar(self, s: Scalar) -> Result<ModelData, Failure> {
        let (name, mut nest) = unnamed(tensor_specs(self.signature)?);
        nest.scalar(0, s);
        tensors([(name, nest)])
    }
}

impl<'de> Visitor<'de> for Inputs<'_> {
    type Value = Result<ModelData, Failure>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    scalar_visits!();
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let specs = match tensor_specs(self.signature) {
            Ok(s) => s,
            Err(f) => {
                drain(seq)?;
                return Ok(Err(f));
            }
        };
        let (name, mut nest) = unnamed(specs);
        Level {
            nest: &mut nest,
            depth: 0,
        }
        .visit_seq(seq)?;
        Ok(tensors([(name, nest)]))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let specs = tensor_specs(self.signature);
        let mut nests: BTreeMap<String, Nest> = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            match specs.as_ref().ok().and_then(|s| named_input(*s, &name)) {
                Some(dtype) => {
                    let mut nest = Nest::new(dtype);
                    map.next_value_seed(Level {
                        nest: &mut nest,
                        depth: 0,
                    })?;
                    nests.insert(name, nest);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Err(f) = specs {
            return Ok(Err(f));
        }
        Ok(tensors(nests))
    }
}

// ----- records ----------------------------------------------------------------------------------

/// A column of records being read: a tensor (`instances`) or a table column
/// (`dataframe_records`).
trait Field: Sized {
    fn null(&mut self);
    fn read<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error>;
}

impl Field for Nest {
    fn null(&mut self) {
        self.scalar(1, Scalar::Null);
    }
    fn read<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        Level {
            nest: self,
            depth: 1,
        }
        .deserialize(d)
    }
}

/// A table column being read: its name, its declared type (`json`: a composite type, whose
/// cells are all JSON values), its cells.
struct Col {
    name: String,
    ty: Option<ColumnType>,
    json: bool,
    sink: Sink,
}

impl Col {
    fn new(name: String, ty: Option<ColumnType>, json: bool) -> Col {
        let dtype = if json {
            Some(DType::Json)
        } else {
            ty.map(ColumnType::dtype)
        };
        Col {
            name,
            ty,
            json,
            sink: Sink::new(dtype, true),
        }
    }

    /// The column of `spec`.
    fn of(name: String, spec: &ColSpec) -> Col {
        Col::new(name, spec.column_type, is_composite(spec))
    }

    /// The element type: declared, else inferred.
    fn dtype(&self) -> DType {
        match self.ty {
            _ if self.json => DType::Json,
            Some(t) => t.dtype(),
            None => infer_column(self.sink.kept()),
        }
    }
}

/// Whether a column spec has a composite type (`Array`, `Object`, `Map`, `AnyType`): its cells
/// are JSON values.
fn is_composite(spec: &ColSpec) -> bool {
    spec.column_type.is_none() && spec.composite.is_some()
}

/// One table cell: a scalar (a list or an object is one value).
struct Cell<'a>(&'a mut Sink);

impl Cell<'_> {
    fn scalar(self, s: Scalar) {
        self.0.push(s);
    }
}

impl<'de> DeserializeSeed<'de> for Cell<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Cell<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    scalar_visits!();
    object_as_scalar!();
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let mut text = String::new();
        JsonText(&mut text).visit_seq(seq)?;
        self.0.push(Scalar::Other(text));
        Ok(())
    }
}

impl Field for Col {
    fn null(&mut self) {
        self.sink.push_absent();
    }
    fn read<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        Cell(&mut self.sink).deserialize(d)
    }
}

/// Records (a list of dictionaries) read column by column; a key missing from a record is a
/// null there. `make` gives the field a key is read into, `None` to ignore the key.
struct Records<F, M> {
    /// Each key, its field, and how many rows the field holds so far.
    columns: Vec<(String, Option<F>, usize)>,
    rows: usize,
    not_a_record: bool,
    make: M,
}

impl<F: Field, M: FnMut(&str) -> Option<F>> Records<F, M> {
    fn new(make: M) -> Self {
        Records {
            columns: Vec::new(),
            rows: 0,
            not_a_record: false,
            make,
        }
    }

    fn record<'de, A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        let row = self.rows;
        while let Some(key) = map.next_key::<String>()? {
            let at = match self.columns.iter().position(|(k, _, _)| *k == key) {
                Some(at) => at,
                None => {
                    let field = (self.make)(&key);
                    self.columns.push((key, field, 0));
                    self.columns.len() - 1
                }
            };
            match &mut self.columns[at] {
                (_, Some(f), filled) if *filled <= row => {
                    for _ in *filled..row {
                        f.null();
                    }
                    map.next_value_seed(FieldSeed(f))?;
                    *filled = row + 1;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn not_a_record(&mut self) {
        self.not_a_record = true;
    }

    /// The fields read (padded with nulls to every row), or the failure of a list item that
    /// is not a dictionary.
    fn finish(self) -> Result<(Vec<(String, F)>, usize), Failure> {
        if self.not_a_record {
            return Err(bad("records must all be JSON dictionaries"));
        }
        let rows = self.rows;
        let fields = self
            .columns
            .into_iter()
            .filter_map(|(k, f, filled)| {
                f.map(|mut f| {
                    for _ in filled..rows {
                        f.null();
                    }
                    (k, f)
                })
            })
            .collect();
        Ok((fields, rows))
    }
}

struct FieldSeed<'a, F>(&'a mut F);

impl<'de, F: Field> DeserializeSeed<'de> for FieldSeed<'_, F> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.read(d)
    }
}

/// One item of a list of records.
struct Record<'a, R>(&'a mut R);

/// What [`Record`] needs of [`Records`] (whatever its field type).
trait RecordSink {
    fn record<'de, A: MapAccess<'de>>(&mut self, map: A) -> Result<(), A::Error>;
    fn not_a_record(&mut self);
}

impl<F: Field, M: FnMut(&str) -> Option<F>> RecordSink for Records<F, M> {
    fn record<'de, A: MapAccess<'de>>(&mut self, map: A) -> Result<(), A::Error> {
        Records::record(self, map)
    }
    fn not_a_record(&mut self) {
        Records::not_a_record(self);
    }
}

impl<R: RecordSink> Record<'_, R> {
    fn scalar(self, _: Scalar) {
        self.0.not_a_record();
    }
}

impl<'de, R: RecordSink> DeserializeSeed<'de> for Record<'_, R> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, R: RecordSink> Visitor<'de> for Record<'_, R> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    scalar_visits!();
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        drain(seq)?;
        self.0.not_a_record();
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.record(map)
    }
}

// ----- instances ------------------------------------------------------------------------------

/// `instances`: a list of records (named tensors, one row per record) when its first item is a
/// dictionary, else one unnamed tensor.
struct Instances<'a> {
    signature: &'a Signature,
}

impl<'de> DeserializeSeed<'de> for Instances<'_> {
    type Value = Result<ModelData, Failure>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if reads_raw(self.signature) {
            return raw(RAW_INSTANCES, d);
        }
        d.deserialize_any(self)
    }
}

impl Instances<'_> {
    fn scalar(self, s: Scalar) -> Result<ModelData, Failure> {
        Inputs {
            signature: self.signature,
        }
        .scalar(s)
    }
}

/// A tensor read from records: its rows are the list's items.
fn record_nest(dtype: Option<DType>) -> Nest {
    let mut nest = Nest::new(dtype);
    nest.open(0);
    nest
}

type RecordNests<'a> = Records<Nest, Box<dyn FnMut(&str) -> Option<Nest> + 'a>>;

enum InstanceMode<'a> {
    Start,
    Tensor(String, Nest),
    Records(RecordNests<'a>),
}

struct Instance<'m, 'a> {
    mode: &'m mut InstanceMode<'a>,
    specs: Option<&'a [TensorSpec]>,
}

impl Instance<'_, '_> {
    /// The unnamed tensor the list is, decided by an item that is not a dictionary first.
    fn tensor(&mut self) -> Option<&mut Nest> {
        if matches!(self.mode, InstanceMode::Start) {
            let (name, nest) = unnamed(self.specs);
            *self.mode = InstanceMode::Tensor(name, record_nest(nest.declared));
        }
        match self.mode {
            InstanceMode::Tensor(_, nest) => Some(nest),
            _ => None,
        }
    }

    fn scalar(mut self, s: Scalar) {
        match self.tensor() {
            Some(nest) => nest.scalar(1, s),
            None => {
                if let InstanceMode::Records(r) = self.mode {
                    r.not_a_record();
                }
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Instance<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Instance<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    scalar_visits!();
    fn visit_seq<A: SeqAccess<'de>>(mut self, seq: A) -> Result<(), A::Error> {
        match self.tensor() {
            Some(nest) => Level { nest, depth: 1 }.visit_seq(seq),
            None => {
                drain(seq)?;
                if let InstanceMode::Records(r) = self.mode {
                    r.not_a_record();
                }
                Ok(())
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        if matches!(self.mode, InstanceMode::Start) {
            let specs = self.specs;
            *self.mode = InstanceMode::Records(Records::new(Box::new(move |name: &str| {
                named_input(specs, name).map(record_nest)
            })));
        }
        match self.mode {
            InstanceMode::Records(r) => r.record(map),
            InstanceMode::Tensor(_, nest) => Level { nest, depth: 1 }.visit_map(map),
            InstanceMode::Start => unreachable!("decided above"),
        }
    }
}

impl<'de> Visitor<'de> for Instances<'_> {
    type Value = Result<ModelData, Failure>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    scalar_visits!();
    object_as_scalar!();
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let specs = tensor_specs(self.signature);
        let mut mode = InstanceMode::Start;
        let mut n = 0;
        while seq
            .next_element_seed(Instance {
                mode: &mut mode,
                specs: *specs.as_ref().unwrap_or(&None),
            })?
            .is_some()
        {
            n += 1;
        }
        let nests = match mode {
            InstanceMode::Start => {
                let (name, nest) = unnamed(*specs.as_ref().unwrap_or(&None));
                vec![(name, record_nest(nest.declared))]
            }
            InstanceMode::Tensor(name, nest) => vec![(name, nest)],
            InstanceMode::Records(r) => match r.finish() {
                Ok((fields, _)) => fields,
                Err(f) => return Ok(Err(f)),
            },
        };
        if let Err(f) = specs {
            return Ok(Err(f));
        }
        Ok(tensors(nests.into_iter().map(|(name, mut nest)| {
            nest.close(0, n);
            (name, nest)
        })))
    }
}

// ----- tables ---------------------------------------------------------------------------------

/// The column specs of a signature whose columns are all named.
fn column_specs(signature: &Signature) -> Option<&[ColSpec]> {
    match &signature.inputs {
        Some(Schema::Columns(specs)) if specs.iter().all(|s| s.name.is_some()) => Some(specs),
        _ => None,
    }
}

/// The column `name` is read into: typed by its spec, `None` when the signature does not have
/// it (extra columns are ignored).
fn column_for(specs: Option<&[ColSpec]>, name: &str) -> Option<Col> {
    match specs {
        None => Some(Col::new(name.to_string(), None, false)),
        Some(specs) => specs
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
            .map(|s| Col::of(name.to_string(), s)),
    }
}

/// The table of the columns read, typed by the column signature (or inferred), missing values
/// kept; required columns missing are `INVALID_PARAMETER_VALUE`.
fn table(columns: Vec<Col>, signature: &Signature) -> Result<ModelData, Failure> {
    let columns: Vec<Col> = match column_specs(signature) {
        Some(specs) => {
            let mut by_name: BTreeMap<String, Col> =
                columns.into_iter().map(|c| (c.name.clone(), c)).collect();
            let missing: Vec<String> = specs
                .iter()
                .filter(|s| {
                    s.required && !by_name.contains_key(s.name.as_deref().unwrap_or_default())
                })
                .map(|s| format!("'{}'", s.name.as_deref().unwrap_or_default()))
                .collect();
            if !missing.is_empty() {
                return Err(invalid(format!(
                    "Model is missing inputs [{}].",
                    missing.join(", ")
                )));
            }
            // Columns are matched by name, in the signature's order.
            specs
                .iter()
                .filter_map(|s| {
                    let mut c = by_name.remove(s.name.as_deref().unwrap_or_default())?;
                    c.ty = s.column_type;
                    c.json = is_composite(s);
                    Some(c)
                })
                .collect()
        }
        None => columns,
    };
    let columns = columns
        .into_iter()
        .map(|c| {
            let dtype = c.dtype();
            let ty = c.ty.unwrap_or_else(|| infer_column_type(c.sink.kept()));
            let name = c.name;
            let (data, missing) = c.sink.finish(dtype).map_err(|v| {
                bad(format!(
                    "Incompatible input types for column {name}. Can not safely convert {v} \
                     to {ty:?}."
                ))
            })?;
            Column::new(name, data, missing).map_err(|e| bad(e.message))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Table::new(columns)
        .map(ModelData::Table)
        .map_err(|e| bad(e.message))
}

/// A JSON DataFrame's table: as [`table`], but a model whose signature is one tensor gets
/// every column as that tensor's type, as MLflow's `cast_df_types_according_to_schema` does
/// (but a column holding lists, which it leaves as they are).
fn json_table(columns: Vec<Col>, signature: &Signature) -> Result<ModelData, Failure> {
    let dtype = match &signature.inputs {
        Some(Schema::Tensors(t)) if t.len() == 1 => t[0].dtype,
        _ => return table(columns, signature),
    };
    let columns = columns
        .into_iter()
        .map(|c| {
            let dtype = if c.sink.has_json() {
                DType::Json
            } else {
                dtype
            };
            let name = c.name;
            let (data, missing) = c.sink.finish(dtype).map_err(|v| {
                bad(format!(
                    "Incompatible input types for column {name}. Can not safely convert {v} \
                     to {dtype:?}."
                ))
            })?;
            Column::new(name, data, missing).map_err(|e| bad(e.message))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Table::new(columns)
        .map(ModelData::Table)
        .map_err(|e| bad(e.message))
}

/// `dataframe_records`: a list of records as a table.
struct DataframeRecords<'a> {
    signature: &'a Signature,
}

impl<'de> DeserializeSeed<'de> for DataframeRecords<'_> {
    type Value = Result<ModelData, Failure>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn not_records() -> Failure {
    bad("dataframe_records must be a list of records")
}

impl DataframeRecords<'_> {
    fn scalar(self, _: Scalar) -> Result<ModelData, Failure> {
        Err(not_records())
    }
}

impl<'de> Visitor<'de> for DataframeRecords<'_> {
    type Value = Result<ModelData, Failure>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON list")
    }
    scalar_visits!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Err(not_records()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let specs = column_specs(self.signature);
        let mut records = Records::new(|name: &str| column_for(specs, name));
        while seq.next_element_seed(Record(&mut records))?.is_some() {}
        Ok(records.finish().and_then(|(fields, _)| {
            json_table(fields.into_iter().map(|(_, c)| c).collect(), self.signature)
        }))
    }
}

/// `dataframe_split`: `{"columns": [...], "data": [[...], ...], "index": [...]}` (pandas'
/// `orient="split"`), in any key order.
struct DataframeSplit<'a> {
    signature: &'a Signature,
}

impl<'de> DeserializeSeed<'de> for DataframeSplit<'_> {
    type Value = Result<ModelData, Failure>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn not_split() -> Failure {
    bad("dataframe_split must be a JSON dictionary")
}

impl DataframeSplit<'_> {
    fn scalar(self, _: Scalar) -> Result<ModelData, Failure> {
        Err(not_split())
    }
}

/// The rows of `dataframe_split`'s `data`, read into one column per position. When `columns`
/// came first the columns are named and typed already; otherwise they are created from the first
/// row and named at the end.
struct SplitData {
    cols: Vec<Option<Col>>,
    /// Cells every row must have: the named columns, or the first row's.
    width: Option<usize>,
    uneven: bool,
    rows: usize,
    /// Whether the columns were created from the first row (`data` before `columns`).
    positional: bool,
}

impl SplitData {
    /// The sink of cell `j` of the current row (`None`: an ignored column or a cell too many).
    fn cell(&mut self, j: usize) -> Option<&mut Sink> {
        if self.width.is_none() && j == self.cols.len() {
            self.cols.push(Some(Col::new(j.to_string(), None, false)));
        }
        self.cols.get_mut(j)?.as_mut().map(|c| &mut c.sink)
    }

    fn end_row(&mut self, cells: usize) {
        match self.width {
            None => self.width = Some(cells),
            Some(w) if w != cells => self.uneven = true,
            Some(_) => {}
        }
        self.rows += 1;
    }
}

struct Row<'a>(&'a mut SplitData);

impl Row<'_> {
    fn scalar(self, s: Scalar) {
        if let Some(sink) = self.0.cell(0) {
            sink.push(s);
        }
        self.0.end_row(1);
    }
}

impl<'de> DeserializeSeed<'de> for Row<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// A cell read into its column, or skipped.
struct MaybeCell<'a>(Option<&'a mut Sink>);

impl<'de> DeserializeSeed<'de> for MaybeCell<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0 {
            Some(sink) => Cell(sink).deserialize(d),
            None => serde::Deserialize::deserialize(d).map(|IgnoredAny| ()),
        }
    }
}

impl<'de> Visitor<'de> for Row<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON list")
    }
    scalar_visits!();
    object_as_scalar!();
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut j = 0;
        while seq.next_element_seed(MaybeCell(self.0.cell(j)))?.is_some() {
            j += 1;
        }
        // The first row of positional columns created one more (for the item that was not).
        if self.0.width.is_none() {
            self.0.cols.truncate(j);
        }
        self.0.end_row(j);
        Ok(())
    }
}

/// `dataframe_split`'s `data` list.
struct Data<'a>(&'a mut SplitData);

impl<'de> DeserializeSeed<'de> for Data<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl Data<'_> {
    fn scalar(self, _: Scalar) -> bool {
        false
    }
}

impl<'de> Visitor<'de> for Data<'_> {
    /// Whether `data` was a list.
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON list")
    }
    scalar_visits!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element_seed(Row(self.0))?.is_some() {}
        Ok(true)
    }
}

impl<'de> Visitor<'de> for DataframeSplit<'_> {
    type Value = Result<ModelData, Failure>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    scalar_visits!();
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        drain(seq)?;
        Ok(Err(not_split()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let specs = column_specs(self.signature);
        // `None`: absent; `Some(Err(()))`: not a list; `Some(Ok(None))`: null.
        let mut names: Option<Result<Option<Vec<String>>, ()>> = None;
        let mut data: Option<(SplitData, bool)> = None;
        let mut unknown: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "columns" => {
                    names = Some(match map.next_value::<Value>()? {
                        Value::Array(c) => Ok(Some(
                            c.into_iter()
                                .map(|c| match c {
                                    Value::String(s) => s,
                                    other => other.to_string(),
                                })
                                .collect(),
                        )),
                        Value::Null => Ok(None),
                        _ => Err(()),
                    });
                }
                "data" => {
                    let mut rows = match &names {
                        Some(Ok(Some(names))) => SplitData {
                            cols: names.iter().map(|n| column_for(specs, n)).collect(),
                            width: Some(names.len()),
                            uneven: false,
                            rows: 0,
                            positional: false,
                        },
                        _ => SplitData {
                            cols: Vec::new(),
                            width: None,
                            uneven: false,
                            rows: 0,
                            positional: true,
                        },
                    };
                    let is_list = map.next_value_seed(Data(&mut rows))?;
                    data = Some((rows, is_list));
                }
                "index" => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    unknown.push(key);
                }
            }
        }
        if let Some(k) = unknown.iter().min() {
            return Ok(Err(bad(format!(
                "dataframe_split has an unknown field '{k}'"
            ))));
        }
        let Some((rows, true)) = data else {
            return Ok(Err(bad("dataframe_split needs a 'data' list")));
        };
        let names = match names {
            Some(Err(())) => return Ok(Err(bad("dataframe_split 'columns' must be a list"))),
            Some(Ok(Some(names))) => Some(names),
            None | Some(Ok(None)) => None,
        };
        let width = names.as_ref().map_or(rows.cols.len(), Vec::len);
        if rows.uneven || (rows.rows > 0 && rows.width.is_some_and(|w| w != width)) {
            return Ok(Err(bad(format!(
                "dataframe_split rows must each have {width} values, one per column"
            ))));
        }
        let columns: Vec<Col> = match names {
            // `data` came before `columns`: name the positional columns now (a list without
            // rows: the named columns, empty).
            Some(names) if rows.positional => {
                if rows.rows == 0 {
                    names.iter().filter_map(|n| column_for(specs, n)).collect()
                } else {
                    rows.cols
                        .into_iter()
                        .zip(names)
                        .filter_map(|(c, n)| {
                            c.map(|mut c| {
                                c.name = n;
                                c
                            })
                        })
                        .collect()
                }
            }
            _ => rows.cols.into_iter().flatten().collect(),
        };
        Ok(json_table(columns, self.signature))
    }
}

// ----- the request ------------------------------------------------------------------------------

/// The top level of a JSON request, as read.
enum Top {
    /// Not a dictionary (`list`: a list).
    NotObject { list: bool },
    Object {
        /// Every key but `params`.
        keys: Vec<String>,
        params: Option<Value>,
        /// The first format key and what it held.
        format: Option<(String, Result<ModelData, Failure>)>,
    },
}

struct TopSeed<'a> {
    signature: &'a Signature,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Top;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_any(self)
    }
}

impl TopSeed<'_> {
    fn scalar(self, _: Scalar) -> Top {
        Top::NotObject { list: false }
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    scalar_visits!();
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Top, A::Error> {
        drain(seq)?;
        Ok(Top::NotObject { list: true })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let signature = self.signature;
        let mut keys = Vec::new();
        let mut params = None;
        let mut format: Option<(String, Result<ModelData, Failure>)> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "params" {
                params = Some(map.next_value::<Value>()?);
                continue;
            }
            let first = format.as_ref().is_none_or(|(k, _)| *k == key);
            let read = match key.as_str() {
                "dataframe_split" if first => map.next_value_seed(DataframeSplit { signature })?,
                "dataframe_records" if first => {
                    map.next_value_seed(DataframeRecords { signature })?
                }
                "instances" if first => map.next_value_seed(Instances { signature })?,
                "inputs" if first => map.next_value_seed(Inputs { signature })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                    continue;
                }
            };
            format = Some((key.clone(), read));
            keys.push(key);
        }
        Ok(Top::Object {
            keys,
            params,
            format,
        })
    }
}

/// The model input and params of a JSON request, read in one pass.
pub fn parse_json(body: &[u8], signature: &Signature) -> Result<(ModelData, Params), Failure> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let top = TopSeed { signature }
        .deserialize(&mut de)
        .and_then(|top| de.end().map(|()| top))
        .map_err(|_| bad("Invalid input. Ensure that input is a valid JSON formatted string."))?;
    let (mut keys, params, format) = match top {
        Top::NotObject { list } => {
            let got = if list { " Received a list." } else { "" };
            return Err(bad(format!(
                "The input must be a JSON dictionary with exactly one of the input fields {FORMATS}.{got}"
            )));
        }
        Top::Object {
            keys,
            params,
            format,
        } => (keys, params, format),
    };
    let params = match params {
        None | Some(Value::Null) => Params::new(),
        Some(Value::Object(p)) => p.into_iter().collect(),
        Some(_) => return Err(bad("params must be a JSON dictionary")),
    };
    keys.sort();
    keys.dedup();
    let formats = keys
        .iter()
        .filter(|k| {
            [
                "dataframe_split",
                "dataframe_records",
                "instances",
                "inputs",
            ]
            .contains(&k.as_str())
        })
        .count();
    match format {
        Some((_, data)) if formats == 1 => Ok((data?, params)),
        _ => Err(bad(format!(
            "The input must be a JSON dictionary with exactly one of the input fields {FORMATS}. \
             Received dictionary with input fields: {keys:?}."
        ))),
    }
}

/// A CSV request: a header row, then rows; a leading unnamed column (pandas' index) ignored.
pub fn parse_csv(body: &[u8], signature: &Signature) -> Result<ModelData, Failure> {
    let text = std::str::from_utf8(body).map_err(|_| bad("The CSV input is not valid UTF-8"))?;
    let mut lines = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(split_csv_line);
    let header = lines
        .next()
        .ok_or_else(|| bad("The CSV input needs a header row"))??;
    let skip_index = usize::from(header.first().is_some_and(String::is_empty));
    let specs = column_specs(signature);
    let mut columns: Vec<Option<Col>> = header
        .iter()
        .skip(skip_index)
        .map(|n| column_for(specs, n))
        .collect();
    for line in lines {
        let cells = line?;
        if cells.len() != columns.len() + skip_index {
            return Err(bad("Every CSV row needs one value per header column"));
        }
        for (col, cell) in columns.iter_mut().zip(cells.into_iter().skip(skip_index)) {
            if let Some(col) = col {
                col.sink.push(if cell.is_empty() {
                    Scalar::Null
                } else if let Ok(i) = cell.parse::<i64>() {
                    Scalar::Int(i)
                } else if let Ok(f) = cell.parse::<f64>() {
                    Scalar::Float(f)
                } else {
                    Scalar::Str(cell)
                });
            }
        }
    }
    table(columns.into_iter().flatten().collect(), signature)
}

/// A Parquet request (pandas' `to_parquet()`): its columns as a table; pandas' index columns
/// (`__index_level_N__`) are ignored, nulls are missing values.
pub fn parse_parquet(body: &[u8], signature: &Signature) -> Result<ModelData, Failure> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let unreadable = |e: parquet::errors::ParquetError| {
        bad(format!(
            "The request body is not a readable Parquet file: {e}"
        ))
    };
    let reader =
        SerializedFileReader::new(bytes::Bytes::copy_from_slice(body)).map_err(unreadable)?;
    let specs = column_specs(signature);
    let mut columns: Vec<Option<Col>> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| {
            let name = f.name();
            if name.starts_with("__index_level_") && name.ends_with("__") {
                None
            } else {
                column_for(specs, name)
            }
        })
        .collect();
    for row in reader.get_row_iter(None).map_err(unreadable)? {
        let row = row.map_err(unreadable)?;
        for (column, (_, field)) in columns.iter_mut().zip(row.get_column_iter()) {
            if let Some(c) = column {
                c.sink.push(Scalar::from(field.to_json_value()));
            }
        }
    }
    table(columns.into_iter().flatten().collect(), signature)
}

fn split_csv_line(line: &str) -> Result<Vec<String>, Failure> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().expect("one cell").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => cells.last_mut().expect("one cell").push(c),
        }
    }
    if quoted {
        return Err(bad("The CSV input has an unterminated quote"));
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tensor_sig(dtype: DType) -> Signature {
        Signature {
            inputs: Some(Schema::Tensors(vec![TensorSpec {
                name: Some("x".into()),
                dtype,
                shape: vec![-1, -1],
            }])),
            ..Signature::default()
        }
    }

    fn one_tensor(body: Value, sig: &Signature) -> Result<Tensor, Failure> {
        let (data, _) = parse_json(body.to_string().as_bytes(), sig)?;
        let ModelData::Tensors(mut m) = data else {
            panic!("not tensors")
        };
        assert_eq!(m.len(), 1);
        Ok(m.pop_first().unwrap().1)
    }

    fn is_bad(r: Result<impl fmt::Debug, Failure>) -> bool {
        matches!(r, Err(Failure::Json("BAD_REQUEST", _)))
    }

    #[test]
    fn tensors_nest_and_ragged_lists_are_bad_requests() {
        let none = Signature::default();
        let t = one_tensor(json!({"inputs": [[1, 2], [3, 4], [5, 6]]}), &none).unwrap();
        assert_eq!(t.shape(), &[3, 2]);
        assert_eq!(t.data(), &TensorData::Int64(vec![1, 2, 3, 4, 5, 6]));
        for ragged in [
            json!({"inputs": [[1, 2], [3]]}),
            json!({"inputs": [[1, 2], 3]}),
            json!({"inputs": [1, [2]]}),
            json!({"inputs": [[], [1]]}),
            json!({"instances": [[1, 2], [3]]}),
        ] {
            assert!(is_bad(one_tensor(ragged.clone(), &none)), "{ragged}");
        }
        let f32s = tensor_sig(DType::Float32);
        let f = one_tensor(json!({"inputs": [["1.5", 2], [true, null]]}), &f32s).unwrap();
        assert_eq!(f.data(), &TensorData::Float32(vec![1.5, 2.0, 1.0, 0.0]));
        assert!(is_bad(one_tensor(json!({"inputs": [["abc"]]}), &f32s)));
        let Err(Failure::Json(_, m)) = one_tensor(json!({"inputs": [[1, {"a": 1}]]}), &f32s) else {
            panic!()
        };
        assert_eq!(
            m,
            "Can not safely convert {\"a\":1} of input 'x' to Float32."
        );
        // Inferred types: ints, then floats, then strings.
        let t = one_tensor(json!({"inputs": [1, 2.5]}), &none).unwrap();
        assert_eq!(t.data(), &TensorData::Float64(vec![1.0, 2.5]));
        let t = one_tensor(json!({"inputs": [1, "a", null]}), &none).unwrap();
        assert_eq!(
            t.data(),
            &TensorData::Str(vec!["1".into(), "a".into(), String::new()])
        );
        let t = one_tensor(json!({"inputs": []}), &none).unwrap();
        assert_eq!(t.shape(), &[0]);
        let t = one_tensor(json!({"inputs": 7}), &none).unwrap();
        assert_eq!(t.shape(), &[] as &[usize]);
    }

    #[test]
    fn named_inputs_and_instance_records() {
        let sig = tensor_sig(DType::Float64);
        let t = one_tensor(
            json!({"inputs": {"x": [[1], [2]], "extra": "ignored"}}),
            &sig,
        )
        .unwrap();
        assert_eq!(t.shape(), &[2, 1]);
        let t = one_tensor(
            json!({"instances": [{"x": [1, 2]}, {"x": [3, 4], "y": 1}]}),
            &sig,
        )
        .unwrap();
        assert_eq!(t.shape(), &[2, 2]);
        assert_eq!(t.data(), &TensorData::Float64(vec![1.0, 2.0, 3.0, 4.0]));
        // A key missing from a record is null there.
        let none = Signature::default();
        let (data, _) = parse_json(
            json!({"instances": [{"a": 1}, {"b": 2}]})
                .to_string()
                .as_bytes(),
            &none,
        )
        .unwrap();
        let ModelData::Tensors(m) = data else {
            panic!()
        };
        assert_eq!(
            m["a"].data(),
            &TensorData::Str(vec!["1".into(), String::new()])
        );
        assert_eq!(
            m["b"].data(),
            &TensorData::Str(vec![String::new(), "2".into()])
        );
        assert!(is_bad(parse_json(
            br#"{"instances": [{"a": 1}, 2]}"#,
            &none
        )));
        // A list at the top level is a bad request.
        let cols = col_sig();
        let Err(Failure::Json("BAD_REQUEST", m)) = parse_json(b"[1]", &cols) else {
            panic!()
        };
        assert!(m.ends_with("Received a list."), "{m}");
        let Err(Failure::Json("BAD_REQUEST", m)) =
            parse_json(br#"{"inputs": [1], "instances": [1], "params": {}}"#, &cols)
        else {
            panic!()
        };
        assert!(
            m.ends_with(r#"input fields: ["inputs", "instances"]."#),
            "{m}"
        );
        // Invalid JSON wins over every other failure, wherever it is.
        assert!(matches!(
            parse_json(br#"{"inputs": [[1], [2, 3]], "x": }"#, &cols),
            Err(Failure::Json("BAD_REQUEST", m)) if m.starts_with("Invalid input.")
        ));
        let (_, params) =
            parse_json(br#"{"params": {"k": 1}, "inputs": {"x": [[1.0]]}}"#, &sig).unwrap();
        assert_eq!(params["k"], json!(1));
    }

    fn col_sig() -> Signature {
        let spec = |name: &str, ty| ColSpec {
            name: Some(name.into()),
            column_type: Some(ty),
            composite: None,
            required: true,
        };
        Signature {
            inputs: Some(Schema::Columns(vec![
                spec("a", ColumnType::Double),
                spec("b", ColumnType::Long),
            ])),
            ..Signature::default()
        }
    }

    fn table_of(body: &str, sig: &Signature) -> Result<Table, Failure> {
        match parse_json(body.as_bytes(), sig)?.0 {
            ModelData::Table(t) => Ok(t),
            ModelData::Tensors(_) => panic!("not a table"),
        }
    }

    #[test]
    fn dataframes_in_any_key_order_typed_by_the_signature() {
        let sig = col_sig();
        for body in [
            r#"{"dataframe_split": {"columns": ["b", "z", "a"], "data": [[1, "x", 2], [3, "y", "4.5"]]}}"#,
            r#"{"dataframe_split": {"data": [[1, "x", 2], [3, "y", "4.5"]], "index": [0, 1], "columns": ["b", "z", "a"]}}"#,
            r#"{"dataframe_records": [{"b": 1, "z": "x", "a": 2}, {"a": "4.5", "b": 3}]}"#,
        ] {
            let t = table_of(body, &sig).unwrap();
            let names: Vec<&str> = t.columns().iter().map(Column::name).collect();
            assert_eq!(names, ["a", "b"], "{body}");
            assert_eq!(
                t.column("a").unwrap().values(),
                &TensorData::Float64(vec![2.0, 4.5])
            );
            assert_eq!(
                t.column("b").unwrap().values(),
                &TensorData::Int64(vec![1, 3])
            );
        }
        // Missing columns are a schema failure, before any conversion failure.
        assert!(matches!(
            table_of(r#"{"dataframe_records": [{"a": "zz"}]}"#, &sig),
            Err(Failure::Json("INVALID_PARAMETER_VALUE", m)) if m.contains("'b'")
        ));
        let Err(Failure::Json("BAD_REQUEST", m)) =
            table_of(r#"{"dataframe_records": [{"a": "zz", "b": 1}]}"#, &sig)
        else {
            panic!()
        };
        assert_eq!(
            m,
            "Incompatible input types for column a. Can not safely convert \"zz\" to Double."
        );
        for bad_split in [
            r#"{"dataframe_split": {"data": [[1]], "bogus": 1}}"#,
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3]]}}"#,
            r#"{"dataframe_split": {"data": [[1, 2], [3]], "columns": ["a", "b"]}}"#,
            r#"{"dataframe_split": {"data": [[1, 2]], "columns": ["a", "b", "c"]}}"#,
            r#"{"dataframe_split": {"columns": ["a", "b"]}}"#,
            r#"{"dataframe_split": {"columns": 1, "data": []}}"#,
            r#"{"dataframe_split": [1]}"#,
            r#"{"dataframe_records": {"a": 1}}"#,
            r#"{"dataframe_records": [{"a": 1, "b": 2}, [1, 2]]}"#,
        ] {
            assert!(is_bad(table_of(bad_split, &sig)), "{bad_split}");
        }
        // Without a signature: types inferred from the present values, nulls missing.
        let t = table_of(
            r#"{"dataframe_split": {"data": [[1, true, null], [2.5, false, "s"]]}}"#,
            &Signature::default(),
        )
        .unwrap();
        assert_eq!(
            t.column("0").unwrap().values(),
            &TensorData::Float64(vec![1.0, 2.5])
        );
        assert_eq!(
            t.column("1").unwrap().values(),
            &TensorData::Bool(vec![true, false])
        );
        assert!(t.column("2").unwrap().is_missing(0));
        let t = table_of(
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": []}}"#,
            &sig,
        )
        .unwrap();
        assert_eq!(t.rows(), 0);
    }

    #[test]
    fn csv_with_a_pandas_index_column() {
        let sig = Signature::default();
        let d = parse_csv(b",a,b\n0,1.5,x\n1,,\"y,z\"\n", &sig).unwrap();
        let ModelData::Table(t) = d else { panic!() };
        assert_eq!(
            t.columns().iter().map(|c| c.name()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(t.column("a").unwrap().is_missing(1));
        assert_eq!(
            t.column("b").unwrap().values(),
            &TensorData::Str(vec!["x".into(), "y,z".into()])
        );
        assert!(is_bad(parse_csv(b"a,b\n1\n", &sig)));
    }

    fn json_values(d: &TensorData) -> Vec<Value> {
        match d {
            TensorData::Json(v) => v.iter().map(|t| serde_json::from_str(t).unwrap()).collect(),
            other => panic!("not JSON values: {other:?}"),
        }
    }

    fn json_column(t: &Table, name: &str) -> Vec<Value> {
        json_values(t.column(name).unwrap().values())
    }

    #[test]
    fn list_and_object_cells_are_json_values() {
        let none = Signature::default();
        let chat =
            json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "é"}]);
        // Records: a column with a list or an object anywhere is a column of JSON values; an
        // absent key is missing, a JSON null is a value (pandas: NaN and None).
        let body = json!({"dataframe_records": [
            {"m": chat, "n": 1, "o": {"k": [1, 2.5]}},
            {"m": [], "n": 2, "o": null},
            {"n": 3, "o": "plain"},
        ]});
        let t = table_of(&body.to_string(), &none).unwrap();
        assert_eq!(
            json_column(&t, "m"),
            vec![chat.clone(), json!([]), Value::Null]
        );
        assert!(!t.column("m").unwrap().is_missing(1) && t.column("m").unwrap().is_missing(2));
        assert_eq!(
            json_column(&t, "o"),
            vec![json!({"k": [1, 2.5]}), Value::Null, json!("plain")]
        );
        assert_eq!(t.column("o").unwrap().missing(), None);
        assert_eq!(
            t.column("n").unwrap().values(),
            &TensorData::Int64(vec![1, 2, 3])
        );
        // The texts keep the request's key order (a Python dict keeps it), compact.
        let body = r#"{"dataframe_records": [{"m": {"z": 1, "a": [2, {"y": null, "b": 1.5e0}]}}],
                       "params": {}}"#;
        let t = table_of(body, &none).unwrap();
        assert_eq!(
            t.column("m").unwrap().values(),
            &TensorData::Json(vec![r#"{"z":1,"a":[2,{"y":null,"b":1.5}]}"#.into()])
        );
        let raw = r#"{"inputs": {"b": [1, {"y": 2, "x": "\u00e9\n"}], "a": []}}"#;
        let (data, _) = parse_json(raw.as_bytes(), &col_sig()).unwrap();
        let ModelData::Tensors(m) = data else {
            panic!()
        };
        assert_eq!(
            m[RAW_INPUTS].data(),
            &TensorData::Json(vec![r#"{"b":[1,{"y":2,"x":"é\n"}],"a":[]}"#.into()])
        );
        // Split, in either key order.
        for body in [
            json!({"dataframe_split": {"columns": ["m", "s"], "data": [[chat, "a"], [[1, [2]], "b"]]}}),
            json!({"dataframe_split": {"data": [[chat, "a"], [[1, [2]], "b"]], "columns": ["m", "s"]}}),
        ] {
            let t = table_of(&body.to_string(), &none).unwrap();
            assert_eq!(json_column(&t, "m"), vec![chat.clone(), json!([1, [2]])]);
            assert_eq!(t.column("m").unwrap().missing(), None);
            assert_eq!(
                t.column("s").unwrap().values(),
                &TensorData::Str(vec!["a".into(), "b".into()])
            );
        }
        // A column typed Array/Object/Map/Any holds JSON values whatever its cells (MLflow's
        // own checks of them run with the model).
        let spec = |name: &str, ty: Option<ColumnType>, composite: Option<Value>| ColSpec {
            name: Some(name.into()),
            column_type: ty,
            composite,
            required: true,
        };
        let sig = Signature {
            inputs: Some(Schema::Columns(vec![
                spec(
                    "messages",
                    None,
                    Some(json!({"type": "array", "items": {"type": "object",
                    "properties": {"role": {"type": "string"}, "content": {"type": "string"}}}})),
                ),
                spec("any", None, Some(json!({"type": "any"}))),
                spec("k", Some(ColumnType::Double), None),
            ])),
            ..Signature::default()
        };
        let body = json!({"dataframe_records": [
            {"messages": chat, "any": 1, "k": "2"},
            {"messages": "not a list", "any": "x", "k": 3},
        ]});
        let t = table_of(&body.to_string(), &sig).unwrap();
        assert_eq!(
            json_column(&t, "messages"),
            vec![chat.clone(), json!("not a list")]
        );
        assert_eq!(json_column(&t, "any"), vec![json!(1), json!("x")]);
        assert_eq!(
            t.column("k").unwrap().values(),
            &TensorData::Float64(vec![2.0, 3.0])
        );
        let body = json!({"dataframe_split": {"data": [[1, [2]]], "columns": ["any", "messages"]}});
        let t = table_of(&body.to_string(), &sig);
        // 'k' is required.
        assert!(
            matches!(t, Err(Failure::Json("INVALID_PARAMETER_VALUE", _))),
            "{t:?}"
        );
        // One tensor spec: a column of lists is left as it is (MLflow does not cast it).
        let t = table_of(
            r#"{"dataframe_records": [{"x": [1, 2], "y": 1}, {"x": [3, 4], "y": 2}]}"#,
            &tensor_sig(DType::Float32),
        )
        .unwrap();
        assert_eq!(json_column(&t, "x"), vec![json!([1, 2]), json!([3, 4])]);
        assert_eq!(
            t.column("y").unwrap().values(),
            &TensorData::Float32(vec![1.0, 2.0])
        );
    }

    #[test]
    fn tensor_forms_with_objects_are_json_and_column_signatures_read_them_whole() {
        let none = Signature::default();
        let chat = json!([{"role": "user", "content": "hi"}, {"role": "user", "content": "yo"}]);
        let t = one_tensor(json!({"inputs": chat}), &none).unwrap();
        assert_eq!(t.shape(), &[2]);
        assert_eq!(json_values(t.data()), chat.as_array().unwrap().clone());
        let t = one_tensor(json!({"inputs": {"messages": [chat]}}), &none).unwrap();
        assert_eq!(t.shape(), &[1, 2]);
        let t = one_tensor(json!({"instances": [{"m": {"a": 1}}, {"m": 2}]}), &none).unwrap();
        assert_eq!(json_values(t.data()), vec![json!({"a": 1}), json!(2)]);
        // Ragged lists are still a bad request (numpy's refusal in MLflow).
        assert!(is_bad(one_tensor(
            json!({"inputs": [[{"a": 1}], []]}),
            &none
        )));
        // A declared numeric dtype refuses them.
        assert!(is_bad(one_tensor(
            json!({"inputs": [[{"a": 1}]]}),
            &tensor_sig(DType::Float64)
        )));
        // A column signature: the whole value, unread, for MLflow's rules in the model's
        // worker.
        let cols = col_sig();
        for (key, name) in [("inputs", RAW_INPUTS), ("instances", RAW_INSTANCES)] {
            let value = json!([{"a": 1, "b": [1, 2]}, {"a": "x"}]);
            let body = json!({key: value, "params": {"p": 1}});
            let (data, params) = parse_json(body.to_string().as_bytes(), &cols).unwrap();
            assert_eq!(params["p"], json!(1));
            let ModelData::Tensors(m) = data else {
                panic!()
            };
            assert_eq!(m.len(), 1);
            assert_eq!(m[name].shape(), &[] as &[usize]);
            assert_eq!(json_values(m[name].data()), vec![value]);
        }
    }
}
