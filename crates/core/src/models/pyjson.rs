//! A Python model's answer body written byte for byte as MLflow's scoring server writes it:
//! `json.dump({"predictions": _get_jsonable_obj(out, "records")}, cls=NumpyEncoder)`, i.e.
//! Python's `json` defaults: `", "` and `": "` separators, `ensure_ascii` escapes, floats as
//! `repr` (`1e-05`, `1e+16`, `2.0`), `NaN` / `Infinity` / `-Infinity` as Python writes them,
//! keys in the model's column order, bytes as `base64.encodebytes` (lines of 76, each ending
//! in a newline).
//!
//! The forms ([`predictions_body`]): a table (a DataFrame or Series) as records, the unnamed
//! tensor (an ndarray, list or scalar) as its nested list, named tensors (a dict whose keys
//! are in name order) as an object of nested lists, and the tensor [`RENDERED`]: texts MLflow's
//! own code wrote in the worker for a value no other form carries exactly (nested values, lists
//! mixing element types, a dict in another key order, non-string column names, NaN in a
//! string column), one per element of a list (shape `[n]`, so it splits by rows) or one for
//! the whole value (shape `[]`).

use cairn_plugin_api::flavor::{ModelData, TensorData};
use std::fmt::Write;

/// The name of the tensor of texts that the `python_function` flavor's worker rendered with
/// MLflow's code (`cairn_flavor_pyfunc::protocol::RENDERED`, the same name).
pub const RENDERED: &str = "\u{0}json";

/// A float as Python's `repr` writes it (the shortest digits that read back the same).
pub fn float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits as Python's repr.
    let e = format!("{x:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len() as i32;
    let decpt = exp + 1;
    let mut out = String::from(sign);
    if decpt <= -4 || decpt > 16 {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-decpt) as usize));
        out.push_str(&digits);
    } else if decpt >= n {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (decpt - n) as usize));
        out.push_str(".0");
    } else {
        out.push_str(&digits[..decpt as usize]);
        out.push('.');
        out.push_str(&digits[decpt as usize..]);
    }
    out
}

/// A string as Python's `json.dumps` writes it (`ensure_ascii`).
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// `base64.encodebytes`: standard base64 in lines of at most 76 characters, each ending in a
/// newline (nothing for no bytes).
fn encodebytes(bytes: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(text.len() + text.len() / 76 + 1);
    for line in text.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Element `i` of `d`, as Python writes the element `.tolist()` or `to_dict` gives.
fn scalar(out: &mut String, d: &TensorData, i: usize) {
    match d {
        TensorData::Bool(v) => out.push_str(if v[i] { "true" } else { "false" }),
        TensorData::Int8(v) => out.push_str(&v[i].to_string()),
        TensorData::Int16(v) => out.push_str(&v[i].to_string()),
        TensorData::Int32(v) => out.push_str(&v[i].to_string()),
        TensorData::Int64(v) => out.push_str(&v[i].to_string()),
        TensorData::UInt8(v) => out.push_str(&v[i].to_string()),
        TensorData::UInt16(v) => out.push_str(&v[i].to_string()),
        TensorData::UInt32(v) => out.push_str(&v[i].to_string()),
        TensorData::UInt64(v) => out.push_str(&v[i].to_string()),
        // A float32 becomes a Python float (a double) before it is written.
        TensorData::Float32(v) => out.push_str(&float(f64::from(v[i]))),
        TensorData::Float64(v) => out.push_str(&float(v[i])),
        TensorData::Str(v) => string(out, &v[i]),
        TensorData::Bytes(v) => string(out, &encodebytes(&v[i])),
        _ => out.push_str("null"),
    }
}

/// Elements `start..` of `data` nested as `shape`.
fn nested(out: &mut String, data: &TensorData, shape: &[usize], start: usize) {
    match shape.split_first() {
        None => scalar(out, data, start),
        Some((n, rest)) => {
            let stride: usize = rest.iter().product();
            out.push('[');
            for i in 0..*n {
                if i > 0 {
                    out.push_str(", ");
                }
                nested(out, data, rest, start + i * stride);
            }
            out.push(']');
        }
    }
}

/// The whole answer body of a Python model's output `out`, as MLflow's
/// `predictions_to_json` writes it.
pub fn predictions_body(out: &ModelData) -> String {
    let mut s = String::from("{\"predictions\": ");
    match out {
        ModelData::Tensors(m) if m.len() == 1 && m.contains_key(RENDERED) => {
            let t = &m[RENDERED];
            if let TensorData::Str(texts) = t.data() {
                if t.shape().is_empty() {
                    s.push_str(texts.first().map_or("null", String::as_str));
                } else {
                    // What json.dump writes for a list: its elements' texts, ", " between.
                    s.push('[');
                    s.push_str(&texts.join(", "));
                    s.push(']');
                }
            }
        }
        ModelData::Tensors(m) if m.len() == 1 && m.contains_key("") => {
            let t = &m[""];
            nested(&mut s, t.data(), t.shape(), 0);
        }
        ModelData::Tensors(m) => {
            s.push('{');
            for (k, (name, t)) in m.iter().enumerate() {
                if k > 0 {
                    s.push_str(", ");
                }
                string(&mut s, name);
                s.push_str(": ");
                nested(&mut s, t.data(), t.shape(), 0);
            }
            s.push('}');
        }
        ModelData::Table(t) => {
            s.push('[');
            for r in 0..t.rows() {
                if r > 0 {
                    s.push_str(", ");
                }
                s.push('{');
                for (k, c) in t.columns().iter().enumerate() {
                    if k > 0 {
                        s.push_str(", ");
                    }
                    string(&mut s, c.name());
                    s.push_str(": ");
                    if c.is_missing(r) {
                        s.push_str("null");
                    } else {
                        scalar(&mut s, c.values(), r);
                    }
                }
                s.push('}');
            }
            s.push(']');
        }
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_api::flavor::{Column, Table, Tensor};

    #[test]
    fn floats_are_written_as_pythons_repr() {
        // Each pair checked against CPython 3.11's repr.
        for (x, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (2.5, "2.5"),
            (0.1, "0.1"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123456789.125, "123456789.125"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e100, "1.2345e+100"),
            (-3.0e-300, "-3e-300"),
            (f64::from(0.1f32), "0.10000000149011612"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(float(x), want, "{x:e}");
        }
    }

    #[test]
    fn strings_are_escaped_as_ensure_ascii_does() {
        let mut s = String::new();
        string(&mut s, "a\"b\\c\n\t\u{1}é€😀\u{7f}/");
        assert_eq!(s, r#""a\"b\\c\n\t\u0001\u00e9\u20ac\ud83d\ude00\u007f/""#);
        assert_eq!(
            encodebytes(&[0u8; 60])
                .lines()
                .map(str::len)
                .collect::<Vec<_>>(),
            [76, 4]
        );
        assert_eq!(encodebytes(b"ab"), "YWI=\n");
    }

    #[test]
    fn tables_are_records_in_column_order_and_tensors_nested_lists() {
        let table = ModelData::Table(
            Table::new(vec![
                Column::new("z", TensorData::Float64(vec![1.0, f64::NAN]), None).unwrap(),
                Column::new(
                    "a",
                    TensorData::Str(vec!["x".into(), String::new()]),
                    Some(vec![false, true]),
                )
                .unwrap(),
            ])
            .unwrap(),
        );
        assert_eq!(
            predictions_body(&table),
            r#"{"predictions": [{"z": 1.0, "a": "x"}, {"z": NaN, "a": null}]}"#
        );
        let t = Tensor::new(vec![2, 2], TensorData::Int64(vec![1, 2, 3, 4])).unwrap();
        let one = ModelData::Tensors([(String::new(), t.clone())].into());
        assert_eq!(
            predictions_body(&one),
            r#"{"predictions": [[1, 2], [3, 4]]}"#
        );
        let scalar = Tensor::new(vec![], TensorData::Float32(vec![0.5])).unwrap();
        let named = ModelData::Tensors([("b".into(), scalar), ("a".into(), t)].into());
        assert_eq!(
            predictions_body(&named),
            r#"{"predictions": {"a": [[1, 2], [3, 4]], "b": 0.5}}"#
        );
    }

    #[test]
    fn rendered_texts_are_written_as_they_are() {
        let texts = |shape: Vec<usize>, v: &[&str]| {
            let data = TensorData::Str(v.iter().map(|t| t.to_string()).collect());
            ModelData::Tensors([(RENDERED.to_string(), Tensor::new(shape, data).unwrap())].into())
        };
        assert_eq!(
            predictions_body(&texts(vec![2], &["1", "2.5"])),
            r#"{"predictions": [1, 2.5]}"#
        );
        assert_eq!(
            predictions_body(&texts(vec![0], &[])),
            r#"{"predictions": []}"#
        );
        assert_eq!(
            predictions_body(&texts(
                vec![],
                &[r#"{"b": {"x": NaN}, "a": [[1], [2, 3]]}"#]
            )),
            r#"{"predictions": {"b": {"x": NaN}, "a": [[1], [2, 3]]}}"#
        );
    }
}
