//! The binary form of [`ModelMethod::Predict`](super::ModelMethod::Predict)'s request
//! `(ModelData, Params)` and response `ModelData`: tensors cross as their raw elements, not as
//! JSON arrays (a 1000×100 float input is 400 KB of copies instead of a megabyte of text to
//! print and parse).
//!
//! Layout (integers little-endian):
//!
//! ```text
//! MAGIC (1 byte) VERSION (1 byte) u32 header length, header (JSON), payload
//! header:  {"params": {...} | null, "kind": "tensors" | "table", "rows": n,
//!           "items": [{"name", "dtype", "len", "shape"?, "missing"?}, ...]}
//! payload: each item's elements in order: numbers as their little-endian bytes, booleans
//!          one byte each, strings and bytes as a u32 length and the bytes, JSON values as a
//!          u32 length and their JSON text
//! ```

use crate::flavor::{Column, DType, ModelData, Params, Table, Tensor, TensorData};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// The first byte of the binary form (never `[` or `{`, which start JSON).
const MAGIC: u8 = 0xCD;
/// The version of the layout above.
const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    params: Option<Params>,
    kind: String,
    rows: usize,
    items: Vec<Item>,
}

#[derive(Serialize, Deserialize)]
struct Item {
    name: String,
    dtype: DType,
    len: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shape: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    missing: Option<Vec<bool>>,
}

/// Encodes model data (and, for a request, its params).
pub(crate) fn encode(data: &ModelData, params: Option<&Params>) -> Vec<u8> {
    let mut items = Vec::new();
    let mut payload = Vec::new();
    let (kind, rows) = match data {
        ModelData::Tensors(tensors) => {
            for (name, t) in tensors {
                items.push(Item {
                    name: name.clone(),
                    dtype: t.dtype(),
                    len: t.data().len(),
                    shape: Some(t.shape().to_vec()),
                    missing: None,
                });
                put_data(&mut payload, t.data());
            }
            ("tensors", 0)
        }
        ModelData::Table(table) => {
            for c in table.columns() {
                items.push(Item {
                    name: c.name().to_string(),
                    dtype: c.values().dtype(),
                    len: c.values().len(),
                    shape: None,
                    missing: c.missing().map(<[bool]>::to_vec),
                });
                put_data(&mut payload, c.values());
            }
            ("table", table.rows())
        }
    };
    let header = Header {
        params: params.cloned(),
        kind: kind.into(),
        rows,
        items,
    };
    // A header of names, shapes and params always serializes.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = Vec::with_capacity(6 + header.len() + payload.len());
    out.push(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
    out
}

/// Whether `bytes` are in this binary form (rather than JSON).
pub(crate) fn is_binary(bytes: &[u8]) -> bool {
    bytes.first() == Some(&MAGIC)
}

/// Decodes what [`encode`] made: the data and the params (`None` in a response).
pub(crate) fn decode(bytes: &[u8]) -> Result<(ModelData, Option<Params>)> {
    let mut r = Reader(bytes);
    if r.take(1)? != [MAGIC] {
        return Err(malformed("it is not binary model data"));
    }
    let version = r.take(1)?[0];
    if version != VERSION {
        return Err(malformed(&format!(
            "its layout version is {version}, this build reads version {VERSION}"
        )));
    }
    let len = r.u32()? as usize;
    let header: Header =
        serde_json::from_slice(r.take(len)?).map_err(|e| malformed(&format!("its header: {e}")))?;
    let mut tensors = std::collections::BTreeMap::new();
    let mut columns = Vec::new();
    for item in header.items {
        let data = r.data(item.dtype, item.len)?;
        if header.kind == "table" {
            columns.push(Column::new(item.name, data, item.missing)?);
        } else {
            let shape = item
                .shape
                .ok_or_else(|| malformed("a tensor has no shape"))?;
            tensors.insert(item.name, Tensor::new(shape, data)?);
        }
    }
    if !r.0.is_empty() {
        return Err(malformed("it has trailing bytes"));
    }
    let data = match header.kind.as_str() {
        "tensors" => ModelData::Tensors(tensors),
        "table" => {
            let table = Table::new(columns)?;
            if table.rows() != header.rows && !table.columns().is_empty() {
                return Err(malformed("its row count does not match its columns"));
            }
            ModelData::Table(table)
        }
        other => return Err(malformed(&format!("unknown kind '{other}'"))),
    };
    Ok((data, header.params))
}

fn put_data(out: &mut Vec<u8>, data: &TensorData) {
    macro_rules! le {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match data {
        TensorData::Bool(v) => out.extend(v.iter().map(|b| u8::from(*b))),
        TensorData::Int8(v) => le!(v),
        TensorData::Int16(v) => le!(v),
        TensorData::Int32(v) => le!(v),
        TensorData::Int64(v) => le!(v),
        TensorData::UInt8(v) => out.extend_from_slice(v),
        TensorData::UInt16(v) | TensorData::Float16(v) => le!(v),
        TensorData::UInt32(v) => le!(v),
        TensorData::UInt64(v) => le!(v),
        TensorData::Float32(v) => le!(v),
        TensorData::Float64(v) => le!(v),
        TensorData::Str(v) => {
            for s in v {
                put_bytes(out, s.as_bytes());
            }
        }
        TensorData::Bytes(v) => {
            for b in v {
                put_bytes(out, b);
            }
        }
        TensorData::Json(v) => {
            for x in v {
                put_bytes(out, x.as_bytes());
            }
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // An element over 4 GiB cannot reach a model (request bodies are bounded far below).
    let len = u32::try_from(b.len()).expect("a tensor element longer than 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(b);
}

fn malformed(why: &str) -> Error {
    Error::internal(format!(
        "binary model data could not be decoded (are both sides' cairn-plugin-api compatible \
         with {}?): {why}",
        crate::API_VERSION
    ))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(malformed("it ends early"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `n` fixed-size elements, each decoded from `W` bytes.
    fn fixed<const W: usize, T>(&mut self, n: usize, f: fn([u8; W]) -> T) -> Result<Vec<T>> {
        let bytes = self.take(
            n.checked_mul(W)
                .ok_or_else(|| malformed("a length overflows"))?,
        )?;
        Ok(bytes
            .chunks_exact(W)
            .map(|c| f(c.try_into().unwrap_or([0; W])))
            .collect())
    }

    fn blobs(&mut self, n: usize) -> Result<Vec<Vec<u8>>> {
        if n.saturating_mul(4) > self.0.len() {
            return Err(malformed("a count exceeds the data's length"));
        }
        (0..n)
            .map(|_| {
                let len = self.u32()? as usize;
                Ok(self.take(len)?.to_vec())
            })
            .collect()
    }

    fn data(&mut self, dtype: DType, n: usize) -> Result<TensorData> {
        Ok(match dtype {
            DType::Bool => TensorData::Bool(self.fixed(n, |[b]: [u8; 1]| b != 0)?),
            DType::Int8 => TensorData::Int8(self.fixed(n, i8::from_le_bytes)?),
            DType::Int16 => TensorData::Int16(self.fixed(n, i16::from_le_bytes)?),
            DType::Int32 => TensorData::Int32(self.fixed(n, i32::from_le_bytes)?),
            DType::Int64 => TensorData::Int64(self.fixed(n, i64::from_le_bytes)?),
            DType::UInt8 => TensorData::UInt8(self.fixed(n, u8::from_le_bytes)?),
            DType::UInt16 => TensorData::UInt16(self.fixed(n, u16::from_le_bytes)?),
            DType::UInt32 => TensorData::UInt32(self.fixed(n, u32::from_le_bytes)?),
            DType::UInt64 => TensorData::UInt64(self.fixed(n, u64::from_le_bytes)?),
            DType::Float16 => TensorData::Float16(self.fixed(n, u16::from_le_bytes)?),
            DType::Float32 => TensorData::Float32(self.fixed(n, f32::from_le_bytes)?),
            DType::Float64 => TensorData::Float64(self.fixed(n, f64::from_le_bytes)?),
            DType::Str | DType::Object => TensorData::Str(
                self.blobs(n)?
                    .into_iter()
                    .map(String::from_utf8)
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| malformed("a string is not UTF-8"))?,
            ),
            DType::Bytes => TensorData::Bytes(self.blobs(n)?),
            DType::Json => TensorData::Json(
                self.blobs(n)?
                    .into_iter()
                    .map(String::from_utf8)
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| malformed("a JSON text is not UTF-8"))?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<ModelData> {
        let t = |shape: Vec<usize>, d| Tensor::new(shape, d).unwrap();
        vec![
            ModelData::Tensors(
                [
                    (
                        "x".to_string(),
                        t(
                            vec![2, 2],
                            TensorData::Float32(vec![1.0, -2.5, f32::NAN, 0.0]),
                        ),
                    ),
                    (
                        "ids".to_string(),
                        t(vec![3], TensorData::Int64(vec![1, i64::MIN, i64::MAX])),
                    ),
                    (
                        "s".to_string(),
                        t(vec![2], TensorData::Str(vec!["é".into(), String::new()])),
                    ),
                    (
                        "b".to_string(),
                        t(vec![1], TensorData::Bytes(vec![vec![0, 255]])),
                    ),
                    (
                        "h".to_string(),
                        t(vec![], TensorData::Float16(vec![0x3c00])),
                    ),
                    (
                        "f".to_string(),
                        t(vec![2], TensorData::Bool(vec![true, false])),
                    ),
                    (
                        "j".to_string(),
                        t(
                            vec![2],
                            TensorData::Json(vec![
                                r#"[{"role":"user","content":"é"}]"#.into(),
                                r#"{"k":[1,2.5,null]}"#.into(),
                            ]),
                        ),
                    ),
                ]
                .into_iter()
                .collect(),
            ),
            ModelData::Table(
                Table::new(vec![
                    Column::new(
                        "a",
                        TensorData::Float64(vec![1.0, 0.0]),
                        Some(vec![false, true]),
                    )
                    .unwrap(),
                    Column::new("b", TensorData::UInt16(vec![7, 8]), None).unwrap(),
                    Column::new(
                        "c",
                        TensorData::Json(vec![r#"["x"]"#.into(), "null".into()]),
                        Some(vec![false, true]),
                    )
                    .unwrap(),
                ])
                .unwrap(),
            ),
            ModelData::Table(Table::new(vec![]).unwrap()),
        ]
    }

    #[test]
    fn model_data_round_trips_and_prefixes_are_refused() {
        let params: Params = [("k".to_string(), serde_json::json!(1.5))]
            .into_iter()
            .collect();
        for data in samples() {
            let bytes = encode(&data, Some(&params));
            let (back, p) = decode(&bytes).unwrap();
            // NaN != NaN: compare the encodings.
            assert_eq!(encode(&back, Some(&params)), bytes);
            assert_eq!(p.as_ref(), Some(&params));
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "prefix {cut} accepted");
            }
            let mut trailing = bytes.clone();
            trailing.push(0);
            assert!(decode(&trailing).is_err());
        }
        let (_, none) = decode(&encode(&samples()[1], None)).unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn a_corrupt_shape_is_refused_by_the_checked_constructor() {
        let data = &samples()[0];
        let bytes = encode(data, None);
        let header_end = 6 + u32::from_le_bytes(bytes[2..6].try_into().unwrap()) as usize;
        let header = String::from_utf8(bytes[6..header_end].to_vec())
            .unwrap()
            .replace("\"shape\":[2,2]", "\"shape\":[2,3]");
        let mut corrupt = bytes[..2].to_vec();
        corrupt.extend_from_slice(&(header.len() as u32).to_le_bytes());
        corrupt.extend_from_slice(header.as_bytes());
        corrupt.extend_from_slice(&bytes[header_end..]);
        assert_ne!(corrupt, bytes);
        assert!(decode(&corrupt).is_err());
    }
}
