//! The worker protocol, version [`PROTOCOL`]: frames over a Unix socket, batches as Arrow IPC.
//!
//! A frame is a `u32` LE header length, the header (UTF-8 JSON: `op`, `id`, `params`, the
//! data's form), a `u64` LE body length and the body, one Arrow IPC stream (or nothing).
//! Data never crosses as per-row JSON:
//!
//! * a [`Table`] is one record batch, one column per column, missing values as nulls;
//! * [`Tensor`]s are one record batch of one row, one list column per tensor holding its
//!   elements row-major; the header's `tensors` lists each one's `name` and `shape`;
//! * JSON values ([`TensorData::Json`]: list and dict cells, a column signature's whole
//!   `inputs`) are a string column of their JSON texts whose field's metadata has
//!   [`JSON_KEY`]` = `[`JSON_VALUE`] (a table's column; a tensor's list column); the worker
//!   `json.loads` each into the Python value MLflow's scoring server would pass;
//! * an output neither form carries exactly (nested values, lists mixing element types, a dict
//!   whose keys are not in name order, ...) comes back rendered by MLflow's own code in the
//!   worker (`output: "json"`): one string column of JSON texts, one per element of a list
//!   (`rows: true`) or one for the whole value. It becomes the one tensor [`RENDERED`] of
//!   strings, shape `[n]` or `[]`, which splits by rows like any tensor and which
//!   `cairn_core::models::pyjson` writes back (`[` + the texts joined by `, ` + `]`).
//!
//! The worker's side is `worker.py` (the same rules, in its docstring).

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, ListArray, PrimitiveArray, RecordBatch, StringArray,
};
use arrow_buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema};
use cairn_plugin_api::flavor::{Column, ModelData, Table, Tensor, TensorData};
use cairn_plugin_api::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The protocol version the worker script speaks; its `ready` frame must name it.
pub const PROTOCOL: u32 = 3;

/// The field metadata key (and its value) marking a string column of JSON texts.
pub const JSON_KEY: &str = "cairn.json";
/// See [`JSON_KEY`].
pub const JSON_VALUE: &str = "1";

/// The name of the tensor holding a prediction rendered by MLflow's code in the worker (JSON
/// texts); `cairn_core::models::pyjson::RENDERED` is the same name. No other tensor of a
/// worker's answer has it (a dict's keys are carried as tensor names only when they do not
/// start with NUL).
pub const RENDERED: &str = "\u{0}json";

/// The largest header Cairn accepts from a worker.
const MAX_HEADER: u32 = 16 << 20;

/// One tensor's name and shape in a header.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TensorHead {
    /// Its name (`""`: the unnamed tensor).
    pub name: String,
    /// Its dimensions.
    pub shape: Vec<usize>,
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    header: &serde_json::Value,
    body: &[u8],
) -> std::io::Result<()> {
    let h = serde_json::to_vec(header).map_err(std::io::Error::other)?;
    let hlen = u32::try_from(h.len()).map_err(std::io::Error::other)?;
    let mut buf = Vec::with_capacity(12 + h.len() + body.len());
    buf.extend_from_slice(&hlen.to_le_bytes());
    buf.extend_from_slice(&h);
    buf.extend_from_slice(&(body.len() as u64).to_le_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf).await?;
    w.flush().await
}

/// Reads one frame: its header and body.
pub async fn read_frame<R: AsyncReadExt + Unpin>(
    r: &mut R,
) -> std::io::Result<(serde_json::Value, Vec<u8>)> {
    let hlen = r.read_u32_le().await?;
    if hlen > MAX_HEADER {
        return Err(std::io::Error::other(format!(
            "a frame header of {hlen} bytes"
        )));
    }
    let mut h = vec![0; hlen as usize];
    r.read_exact(&mut h).await?;
    let header = serde_json::from_slice(&h).map_err(std::io::Error::other)?;
    let blen = r.read_u64_le().await?;
    let mut body = vec![0; usize::try_from(blen).map_err(std::io::Error::other)?];
    r.read_exact(&mut body).await?;
    Ok((header, body))
}

fn arrow_error(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("the worker protocol's Arrow data: {e}"))
}

fn nulls(missing: Option<&[bool]>) -> Option<NullBuffer> {
    missing.map(|m| NullBuffer::from(m.iter().map(|x| !x).collect::<Vec<bool>>()))
}

/// `data` (flat) as an Arrow array, `missing` rows null.
fn to_array(data: &TensorData, missing: Option<&[bool]>) -> Result<ArrayRef> {
    fn prim<T: arrow_array::types::ArrowPrimitiveType>(
        v: &[T::Native],
        n: Option<NullBuffer>,
    ) -> ArrayRef {
        Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(v.to_vec()), n))
    }
    let n = nulls(missing);
    Ok(match data {
        TensorData::Bool(v) => Arc::new(BooleanArray::new(BooleanBuffer::from(v.clone()), n)),
        TensorData::Int8(v) => prim::<Int8Type>(v, n),
        TensorData::Int16(v) => prim::<Int16Type>(v, n),
        TensorData::Int32(v) => prim::<Int32Type>(v, n),
        TensorData::Int64(v) => prim::<Int64Type>(v, n),
        TensorData::UInt8(v) => prim::<UInt8Type>(v, n),
        TensorData::UInt16(v) => prim::<UInt16Type>(v, n),
        TensorData::UInt32(v) => prim::<UInt32Type>(v, n),
        TensorData::UInt64(v) => prim::<UInt64Type>(v, n),
        TensorData::Float32(v) => prim::<Float32Type>(v, n),
        TensorData::Float64(v) => prim::<Float64Type>(v, n),
        TensorData::Str(v) => {
            Arc::new(StringArray::from_iter(v.iter().enumerate().map(
                |(i, s)| (!missing.is_some_and(|m| m[i])).then_some(s.as_str()),
            )))
        }
        TensorData::Bytes(v) => {
            Arc::new(BinaryArray::from_iter(v.iter().enumerate().map(
                |(i, b)| (!missing.is_some_and(|m| m[i])).then_some(b.as_slice()),
            )))
        }
        TensorData::Json(v) => {
            Arc::new(StringArray::from_iter(v.iter().enumerate().map(
                |(i, s)| (!missing.is_some_and(|m| m[i])).then_some(s.as_str()),
            )))
        }
        other => {
            return Err(Error::invalid(format!(
                "a python_function model cannot take {:?} elements",
                other.dtype()
            )));
        }
    })
}

/// An Arrow array as flat elements and missing flags (`None`: nothing missing).
fn from_array(a: &dyn Array) -> Result<(TensorData, Option<Vec<bool>>)> {
    let missing = a
        .logical_nulls()
        .map(|n| (0..a.len()).map(|i| n.is_null(i)).collect::<Vec<bool>>());
    macro_rules! prim {
        ($t:ty, $var:ident) => {
            TensorData::$var(a.as_primitive::<$t>().values().to_vec())
        };
    }
    let data = match a.data_type() {
        DataType::Boolean => {
            let b = a.as_boolean();
            TensorData::Bool((0..b.len()).map(|i| b.value(i)).collect())
        }
        DataType::Int8 => prim!(Int8Type, Int8),
        DataType::Int16 => prim!(Int16Type, Int16),
        DataType::Int32 => prim!(Int32Type, Int32),
        DataType::Int64 => prim!(Int64Type, Int64),
        DataType::UInt8 => prim!(UInt8Type, UInt8),
        DataType::UInt16 => prim!(UInt16Type, UInt16),
        DataType::UInt32 => prim!(UInt32Type, UInt32),
        DataType::UInt64 => prim!(UInt64Type, UInt64),
        DataType::Float32 => prim!(Float32Type, Float32),
        DataType::Float64 => prim!(Float64Type, Float64),
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            TensorData::Str((0..s.len()).map(|i| s.value(i).to_owned()).collect())
        }
        DataType::LargeUtf8 => {
            let s = a.as_string::<i64>();
            TensorData::Str((0..s.len()).map(|i| s.value(i).to_owned()).collect())
        }
        DataType::Binary => {
            let s = a.as_binary::<i32>();
            TensorData::Bytes((0..s.len()).map(|i| s.value(i).to_vec()).collect())
        }
        DataType::LargeBinary => {
            let s = a.as_binary::<i64>();
            TensorData::Bytes((0..s.len()).map(|i| s.value(i).to_vec()).collect())
        }
        DataType::Null => TensorData::Str(vec![String::new(); a.len()]),
        other => {
            return Err(arrow_error(format!(
                "a column of type {other} (not one Cairn reads)"
            )));
        }
    };
    Ok((data, missing))
}

/// A field of `array`'s type, marked as JSON texts when `data` holds JSON values.
fn field(name: impl Into<String>, data_type: DataType, data: &TensorData) -> Field {
    let f = Field::new(name, data_type, true);
    if matches!(data, TensorData::Json(_)) {
        f.with_metadata([(JSON_KEY, JSON_VALUE)])
    } else {
        f
    }
}

/// Whether a field is marked as JSON texts.
fn is_json(f: &Field) -> bool {
    f.metadata().get(JSON_KEY).map(String::as_str) == Some(JSON_VALUE)
}

/// Strings read from a column marked as JSON texts, as JSON values (`null` placeholders for
/// missing ones).
fn json_values(data: TensorData, missing: Option<&[bool]>) -> Result<TensorData> {
    let TensorData::Str(mut texts) = data else {
        return Err(arrow_error("a JSON column that is not text"));
    };
    for (i, t) in texts.iter_mut().enumerate() {
        if missing.is_some_and(|m| m[i]) {
            *t = "null".into();
        } else if serde_json::from_str::<serde::de::IgnoredAny>(t).is_err() {
            return Err(arrow_error(format!("a JSON column holds {t:?}")));
        }
    }
    Ok(TensorData::Json(texts))
}

/// One record batch as an IPC stream.
fn ipc(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())
        .map_err(arrow_error)?;
    w.write(batch).map_err(arrow_error)?;
    w.into_inner().map_err(arrow_error)
}

/// The record batches of an IPC stream.
fn batches(body: &[u8]) -> Result<Vec<RecordBatch>> {
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)
        .map_err(arrow_error)?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(arrow_error)
}

/// The header fields (`input`, `tensors`) and the body of `data`.
pub fn encode(data: &ModelData) -> Result<(serde_json::Value, Vec<u8>)> {
    match data {
        ModelData::Table(t) => {
            let fields: Vec<Field> = t
                .columns()
                .iter()
                .map(|c| -> Result<Field> {
                    let a = to_array(c.values(), c.missing())?;
                    Ok(field(c.name(), a.data_type().clone(), c.values()))
                })
                .collect::<Result<_>>()?;
            let arrays = t
                .columns()
                .iter()
                .map(|c| to_array(c.values(), c.missing()))
                .collect::<Result<Vec<_>>>()?;
            let batch = RecordBatch::try_new_with_options(
                Arc::new(Schema::new(fields)),
                arrays,
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(t.rows())),
            )
            .map_err(arrow_error)?;
            Ok((serde_json::json!({"input": "table"}), ipc(&batch)?))
        }
        ModelData::Tensors(m) => {
            let mut heads = Vec::new();
            let mut fields = Vec::new();
            let mut arrays: Vec<ArrayRef> = Vec::new();
            for (i, (name, t)) in m.iter().enumerate() {
                let values = to_array(t.data(), None)?;
                let item = Arc::new(Field::new("item", values.data_type().clone(), true));
                let len = i32::try_from(values.len())
                    .map_err(|_| Error::invalid(format!("tensor '{name}' is too large")))?;
                let list = ListArray::new(
                    item.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(vec![0, len])),
                    values,
                    None,
                );
                fields.push(field(format!("t{i}"), DataType::List(item), t.data()));
                arrays.push(Arc::new(list));
                heads.push(TensorHead {
                    name: name.clone(),
                    shape: t.shape().to_vec(),
                });
            }
            let batch = RecordBatch::try_new_with_options(
                Arc::new(Schema::new(fields)),
                arrays,
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(1)),
            )
            .map_err(arrow_error)?;
            Ok((
                serde_json::json!({"input": "tensors", "tensors": heads}),
                ipc(&batch)?,
            ))
        }
    }
}

/// The data of a `result` frame: its header's `output` (`table` or `tensors`) and `tensors`.
pub fn decode(header: &serde_json::Value, body: &[u8]) -> Result<ModelData> {
    let batches = batches(body)?;
    match header.get("output").and_then(|o| o.as_str()) {
        Some("table") => {
            let Some(first) = batches.first() else {
                return Ok(ModelData::Table(Table::new(vec![])?));
            };
            let schema = first.schema();
            let mut columns = Vec::new();
            for (i, field) in schema.fields().iter().enumerate() {
                let mut parts = Vec::new();
                let mut missing = Vec::new();
                for b in &batches {
                    let (data, m) = from_array(b.column(i).as_ref())?;
                    let data = if is_json(field) {
                        json_values(data, m.as_deref())?
                    } else {
                        data
                    };
                    missing.extend(m.unwrap_or_else(|| vec![false; data.len()]));
                    parts.push(data);
                }
                let data = TensorData::concat(&parts.iter().collect::<Vec<_>>())?;
                columns.push(Column::new(field.name().clone(), data, Some(missing))?);
            }
            Ok(ModelData::Table(Table::new(columns)?))
        }
        Some("tensors") => {
            let heads: Vec<TensorHead> = serde_json::from_value(
                header
                    .get("tensors")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null),
            )
            .map_err(arrow_error)?;
            let [batch] = batches.as_slice() else {
                return Err(arrow_error("tensors need exactly one record batch"));
            };
            if batch.num_columns() != heads.len() || batch.num_rows() != 1 {
                return Err(arrow_error("tensors need one list column each, one row"));
            }
            let mut out = std::collections::BTreeMap::new();
            let schema = batch.schema();
            for ((head, col), f) in heads.into_iter().zip(batch.columns()).zip(schema.fields()) {
                let list = col
                    .as_list_opt::<i32>()
                    .ok_or_else(|| arrow_error("a tensor column is not a list"))?;
                let (data, missing) = from_array(list.value(0).as_ref())?;
                let data = if is_json(f) {
                    json_values(data, missing.as_deref())?
                } else {
                    data
                };
                out.insert(head.name, Tensor::new(head.shape, data)?);
            }
            Ok(ModelData::Tensors(out))
        }
        Some("json") => {
            let rows = header.get("rows").and_then(serde_json::Value::as_bool) == Some(true);
            let mut texts = Vec::new();
            for b in &batches {
                if b.num_columns() != 1 {
                    return Err(arrow_error("a rendered prediction needs one column"));
                }
                let (data, missing) = from_array(b.column(0).as_ref())?;
                if missing.is_some_and(|m| m.contains(&true)) {
                    return Err(arrow_error("a rendered prediction with a missing text"));
                }
                match data {
                    TensorData::Str(v) => texts.extend(v),
                    _ => return Err(arrow_error("a rendered prediction that is not text")),
                }
            }
            let shape = if rows {
                vec![texts.len()]
            } else if texts.len() == 1 {
                vec![]
            } else {
                return Err(arrow_error("a rendered value needs exactly one text"));
            };
            let tensor = Tensor::new(shape, TensorData::Str(texts))?;
            Ok(ModelData::Tensors([(RENDERED.to_owned(), tensor)].into()))
        }
        other => Err(arrow_error(format!("an unknown output form {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_tensors_round_trip_through_arrow() {
        let table = ModelData::Table(
            Table::new(vec![
                Column::new(
                    "a",
                    TensorData::Float64(vec![1.5, 0.0, 3.0]),
                    Some(vec![false, true, false]),
                )
                .unwrap(),
                Column::new(
                    "b",
                    TensorData::Str(vec!["x".into(), "".into(), "z".into()]),
                    Some(vec![false, true, false]),
                )
                .unwrap(),
                Column::new("c", TensorData::Int32(vec![1, 2, 3]), None).unwrap(),
                Column::new("d", TensorData::Bool(vec![true, false, true]), None).unwrap(),
                Column::new(
                    "e",
                    TensorData::Json(vec![
                        r#"[{"role":"user","content":"é"}]"#.into(),
                        "null".into(),
                        r#"{"k":[1,2.5]}"#.into(),
                    ]),
                    Some(vec![false, true, false]),
                )
                .unwrap(),
            ])
            .unwrap(),
        );
        let (head, body) = encode(&table).unwrap();
        assert_eq!(head["input"], "table");
        // The JSON column is marked so for the worker.
        let schema = batches(&body).unwrap()[0].schema();
        assert!(is_json(schema.field(4)) && !is_json(schema.field(1)));
        let back = decode(&serde_json::json!({"output": "table"}), &body).unwrap();
        assert_eq!(back, table);

        let tensors = ModelData::Tensors(
            [
                (
                    "".to_string(),
                    Tensor::new(vec![2, 2], TensorData::Float32(vec![1.0, 2.0, 3.0, 4.0])).unwrap(),
                ),
                (
                    "s".to_string(),
                    Tensor::new(vec![2], TensorData::Str(vec!["p".into(), "q".into()])).unwrap(),
                ),
                (
                    "j".to_string(),
                    Tensor::new(
                        vec![1, 2],
                        TensorData::Json(vec![r#"{"b":1,"a":2}"#.into(), "null".into()]),
                    )
                    .unwrap(),
                ),
            ]
            .into(),
        );
        let (head, body) = encode(&tensors).unwrap();
        assert_eq!(head["input"], "tensors");
        let reply = serde_json::json!({"output": "tensors", "tensors": head["tensors"]});
        assert_eq!(decode(&reply, &body).unwrap(), tensors);
    }

    #[test]
    fn rendered_predictions_are_one_tensor_of_texts() {
        let texts = |v: &[&str]| {
            let a: ArrayRef = Arc::new(StringArray::from(v.to_vec()));
            let batch = RecordBatch::try_from_iter([("json", a)]).unwrap();
            ipc(&batch).unwrap()
        };
        let rows = serde_json::json!({"output": "json", "rows": true});
        let got = decode(&rows, &texts(&["[1, 2]", "{\"a\": NaN}"])).unwrap();
        let want = Tensor::new(
            vec![2],
            TensorData::Str(vec!["[1, 2]".into(), "{\"a\": NaN}".into()]),
        )
        .unwrap();
        assert_eq!(got, ModelData::Tensors([(RENDERED.into(), want)].into()));
        // It splits by rows as a batched call's output must.
        assert_eq!(got.split_rows(&[1, 1]).unwrap().len(), 2);
        let whole = serde_json::json!({"output": "json", "rows": false});
        let got = decode(&whole, &texts(&["{\"b\": 1, \"a\": 2}"])).unwrap();
        let ModelData::Tensors(m) = got else { panic!() };
        assert_eq!(m[RENDERED].shape(), &[] as &[usize]);
        assert!(decode(&whole, &texts(&["1", "2"])).is_err());
    }

    #[tokio::test]
    async fn frames_carry_a_header_and_a_body() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_frame(&mut a, &serde_json::json!({"op": "x"}), b"abc")
            .await
            .unwrap();
        let (h, body) = read_frame(&mut b).await.unwrap();
        assert_eq!(h["op"], "x");
        assert_eq!(body, b"abc");
    }
}
