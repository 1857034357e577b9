//! Serde helpers that give plugin-api types MLflow's JSON form.
//!
//! MLflow writes doubles NaN and ±Inf as the strings `"NaN"`, `"Infinity"` and `"-Infinity"`,
//! int64 as JSON numbers (and accepts numeric strings), and enums by name (and accepts numbers).
//! The same form is what crosses a shared-library boundary, so one set of helpers serves both.

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use std::fmt;

/// (De)serialises an `f64` as MLflow does: finite values as numbers, NaN and ±Inf as strings.
pub mod f64_mlflow {
    use super::*;

    /// Writes `v` as a JSON number, or as `"NaN"`, `"Infinity"`, `"-Infinity"`.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v == f64::INFINITY {
            s.serialize_str("Infinity")
        } else if *v == f64::NEG_INFINITY {
            s.serialize_str("-Infinity")
        } else {
            s.serialize_f64(*v)
        }
    }

    /// Reads a JSON number, or one of the strings MLflow writes for non-finite values, or a
    /// numeric string. Booleans are refused, as MLflow refuses them for metric values.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        struct F64Visitor;
        impl Visitor<'_> for F64Visitor {
            type Value = f64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
                match v {
                    "NaN" | "nan" => Ok(f64::NAN),
                    "Infinity" | "inf" | "+Infinity" => Ok(f64::INFINITY),
                    "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
                    other => other
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
        }
        d.deserialize_any(F64Visitor)
    }
}

/// (De)serialises an `i64` as a JSON number, accepting numeric strings on input (proto3 JSON
/// writes int64 as strings; MLflow accepts both).
pub mod i64_lenient {
    use super::*;

    /// Writes `v` as a JSON number.
    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(*v)
    }

    /// Reads a JSON integer or a string holding one.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        struct I64Visitor;
        impl Visitor<'_> for I64Visitor {
            type Value = i64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
                Ok(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
                i64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
                if v.fract() == 0.0 && v.is_finite() && v.abs() < 9.2e18 {
                    Ok(v as i64)
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
                v.trim()
                    .parse()
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(I64Visitor)
    }
}

/// The same as [`i64_lenient`] for `Option<i64>` fields (absent or `null` is `None`).
pub mod opt_i64_lenient {
    use super::*;

    /// Writes `Some(v)` as a number (callers skip `None`).
    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_i64(*v),
            None => s.serialize_none(),
        }
    }

    /// Reads `null`, a JSON integer or a string holding one.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        #[derive(serde::Deserialize)]
        struct Wrap(#[serde(with = "super::i64_lenient")] i64);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
    use serde::Deserialize;
}

/// Declares an MLflow proto enum: serialised by name, deserialised from its name or number.
macro_rules! mlflow_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $num:literal => $wire:literal, )+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $( $(#[$vmeta])* $variant, )+ }

        impl $name {
            /// Every value, in proto order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// MLflow's name for this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire,)+ }
            }

            /// MLflow's proto number for this value.
            pub fn number(self) -> i32 {
                match self { $($name::$variant => $num,)+ }
            }

            /// The value with MLflow's name `s` (case-insensitive).
            pub fn from_name(s: &str) -> Option<$name> {
                $( if s.eq_ignore_ascii_case($wire) { return Some($name::$variant); } )+
                None
            }

            /// The value with proto number `n`.
            pub fn from_number(n: i64) -> Option<$name> {
                match n { $($num => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "one of {:?} or its number", [$($wire),+])
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        if let Some(x) = $name::from_name(v) { return Ok(x); }
                        v.parse::<i64>().ok().and_then($name::from_number)
                            .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$name, E> {
                        $name::from_number(v)
                            .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$name, E> {
                        self.visit_i64(v as i64)
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}
pub(crate) use mlflow_enum;

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct M {
        #[serde(with = "super::f64_mlflow")]
        v: f64,
        #[serde(with = "super::i64_lenient")]
        t: i64,
    }

    #[test]
    fn non_finite_doubles_use_mlflow_strings() {
        for (v, s) in [
            (f64::INFINITY, "\"Infinity\""),
            (f64::NEG_INFINITY, "\"-Infinity\""),
            (1.5, "1.5"),
        ] {
            let json = serde_json::to_string(&M { v, t: 1 }).unwrap();
            assert!(json.contains(s), "{json}");
            assert_eq!(serde_json::from_str::<M>(&json).unwrap().v, v);
        }
        let nan = serde_json::to_string(&M { v: f64::NAN, t: 1 }).unwrap();
        assert!(nan.contains("\"NaN\""));
        assert!(serde_json::from_str::<M>(&nan).unwrap().v.is_nan());
    }

    #[test]
    fn doubles_round_trip_exactly() {
        // Parsed with serde_json's `float_roundtrip`: without it this value comes back 1 ulp off.
        for v in [
            0.14595480067964695,
            1e-300,
            123456.78901234568,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let json = serde_json::to_string(&M { v, t: 0 }).unwrap();
            assert_eq!(
                serde_json::from_str::<M>(&json).unwrap().v.to_bits(),
                v.to_bits()
            );
        }
    }

    #[test]
    fn int64_accepts_numeric_strings_and_refuses_bools() {
        let m: M = serde_json::from_str(r#"{"v": "2.5", "t": "1700000000000"}"#).unwrap();
        assert_eq!(
            m,
            M {
                v: 2.5,
                t: 1_700_000_000_000
            }
        );
        assert!(serde_json::from_str::<M>(r#"{"v": true, "t": 1}"#).is_err());
        assert!(serde_json::from_str::<M>(r#"{"v": 1, "t": 1.5}"#).is_err());
    }
}
