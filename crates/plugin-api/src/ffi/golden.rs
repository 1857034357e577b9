//! The JSON that crosses the ABI, as samples: one request and one response per method of
//! every declaration in `methods.rs`, the boundary's own records (build context, library
//! description, error record) and the variants of every enum met on the way.
//!
//! A sample is built by deserialising the type from [`Filler`], a deserializer that answers
//! every question serde asks with a value (every field present, every `Option` `Some`, every
//! list one element long, every enum its first variant), and serialising it back: so the
//! samples are the wire form itself, field names, nesting and types included, and change
//! exactly when the wire form changes.
//!
//! The samples are kept as golden files (`crates/plugin-api/abi/*.json`); a test compares them
//! and refuses a change unless [`ABI_VERSION`](super::ABI_VERSION) was bumped (see
//! `golden_files_match_the_wire_form`). Their digest is the [`schema_hash`](super::schema_hash)
//! a library reports and the host checks, so a library whose wire form differs from the host's
//! is refused even when both claim the same ABI version.

use super::LibraryDescription;
use crate::BuildContext;
use crate::artifacts::*;
use crate::context::RunContext;
use crate::entities::*;
use crate::error::ErrorRecord;
use crate::flavor::{ModelCapabilities, ModelData, Params, Signature};
use crate::mlmodel::MlModel;
use crate::model_registry::*;
use crate::projects::{LogOptions, ProjectCapabilities, ProjectRun, RunHandle, RunState};
use crate::tracking::*;
use serde::Serialize;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The golden documents: file stem → content, in a fixed order.
pub(crate) fn documents() -> BTreeMap<&'static str, Value> {
    let enums = RefCell::new(BTreeMap::new());
    let mut docs = BTreeMap::new();
    let mut capabilities = serde_json::Map::new();
    macro_rules! trait_doc {
        (
            { } $trait:ident, $enum:ident;
            cached { $( $cv:ident = $cid:literal => $cname:ident () -> $cret:ty $(as $cw:ty)?; )* }
            call { $( $v:ident = $id:literal => $name:ident ( $($arg:ident : $aty:ty $(as $aw:ty)?),* ) -> $ret:ty; )* }
            custom { $( $xv:ident = $xid:literal => $xname:ident ( $($xarg:ident : $xaty:ty $(as $xaw:ty)?),* ) $(-> $xret:ty)?; )* }
        ) => {{
            let mut methods = serde_json::Map::new();
            $(
                let method = serde_json::json!({
                    "id": $cid,
                    "request": sample::<()>(&enums),
                    "response": sample::<crate::__cairn_ffi_wire!($cret $(as $cw)?)>(&enums),
                });
                // Capabilities may grow without breaking a plugin (see CAPABILITIES).
                if stringify!($cname) == "capabilities" {
                    capabilities.insert(stringify!($trait).into(), method);
                } else {
                    methods.insert(stringify!($cname).into(), method);
                }
            )*
            $(
                methods.insert(stringify!($name).into(), serde_json::json!({
                    "id": $id,
                    "request": sample::<($(crate::__cairn_ffi_wire!($aty $(as $aw)?),)*)>(&enums),
                    "response": sample::<$ret>(&enums),
                }));
            )*
            $(
                #[allow(unused_mut)]
                let mut method = serde_json::json!({
                    "id": $xid,
                    "request": sample::<($(crate::__cairn_ffi_wire!($xaty $(as $xaw)?),)*)>(&enums),
                });
                $( method["response"] = sample::<$xret>(&enums); )?
                methods.insert(stringify!($xname).into(), method);
            )*
            docs.insert(stringify!($trait), Value::Object(methods));
        }};
    }
    crate::__cairn_ffi_each!(trait_doc);
    docs.insert(
        "boundary",
        serde_json::json!({
            "BuildContext": sample::<BuildContext>(&enums),
            "LibraryDescription": sample::<LibraryDescription>(&enums),
            "ErrorRecord": sample::<ErrorRecord>(&enums),
            "stream size": sample::<Option<u64>>(&enums),
        }),
    );
    docs.insert(CAPABILITIES, Value::Object(capabilities));
    let enums = enums.into_inner();
    docs.insert("enums", serde_json::to_value(enums).unwrap_or_default());
    docs
}

/// The golden document of the capability structs. They may grow without breaking a plugin:
/// every field reads as `false` when missing (`#[serde(default)]`), so a plugin built before a
/// capability existed still loads and reports it unsupported. Their document may gain fields
/// under the same ABI version, and they are not part of the schema hash.
const CAPABILITIES: &str = "capabilities";

/// The digest of the wire form: FNV-1a (64 bits, hex) of the golden documents except the
/// capabilities, in canonical JSON (keys sorted, so it does not depend on serde_json's map
/// order features).
pub(crate) fn schema_hash() -> String {
    hash_of(&documents())
}

fn hash_of(documents: &BTreeMap<&'static str, Value>) -> String {
    let mut text = String::new();
    for (name, doc) in documents {
        if *name == CAPABILITIES {
            continue;
        }
        text.push_str(name);
        text.push('=');
        canonical(doc, &mut text);
        text.push('\n');
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// `value` as JSON with object keys sorted.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<_, _> = map.iter().collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The sample of `T`'s wire form; a type the filler cannot build reads as an error string,
/// which the golden test then shows.
fn sample<T: DeserializeOwned + Serialize>(
    enums: &RefCell<BTreeMap<String, Vec<String>>>,
) -> Value {
    match T::deserialize(Filler { enums, depth: 0 }) {
        Ok(value) => serde_json::to_value(&value)
            .unwrap_or_else(|e| Value::String(format!("<cannot serialise: {e}>"))),
        Err(e) => Value::String(format!("<cannot build a sample: {}>", e.0)),
    }
}

/// Nesting beyond which options are `None` and lists empty (guards recursive types).
const MAX_DEPTH: usize = 8;

#[derive(Debug)]
struct FillError(String);

impl fmt::Display for FillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FillError {}

impl de::Error for FillError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        FillError(msg.to_string())
    }
}

/// A deserializer that makes up a value of whatever type asks.
#[derive(Clone, Copy)]
struct Filler<'a> {
    enums: &'a RefCell<BTreeMap<String, Vec<String>>>,
    depth: usize,
}

impl<'a> Filler<'a> {
    fn deeper(self) -> Self {
        Filler {
            depth: self.depth + 1,
            ..self
        }
    }
}

macro_rules! fill_with {
    ($($method:ident => $visit:ident($value:expr);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FillError> {
                visitor.$visit($value)
            }
        )*
    };
}

impl<'de, 'a> de::Deserializer<'de> for Filler<'a> {
    type Error = FillError;

    fill_with! {
        // Self-describing values (JSON values, lenient numbers, MLflow enums): the number 1.
        deserialize_any => visit_u64(1);
        deserialize_bool => visit_bool(true);
        deserialize_i8 => visit_i8(1);
        deserialize_i16 => visit_i16(1);
        deserialize_i32 => visit_i32(1);
        deserialize_i64 => visit_i64(1);
        deserialize_u8 => visit_u8(1);
        deserialize_u16 => visit_u16(1);
        deserialize_u32 => visit_u32(1);
        deserialize_u64 => visit_u64(1);
        deserialize_f32 => visit_f32(1.5);
        deserialize_f64 => visit_f64(1.5);
        deserialize_char => visit_char('c');
        deserialize_str => visit_str("s");
        deserialize_string => visit_str("s");
        deserialize_identifier => visit_str("s");
        deserialize_bytes => visit_bytes(b"b");
        deserialize_byte_buf => visit_bytes(b"b");
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FillError> {
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FillError> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FillError> {
        if self.depth >= MAX_DEPTH {
            visitor.visit_none()
        } else {
            visitor.visit_some(self.deeper())
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, FillError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, FillError> {
        visitor.visit_newtype_struct(self.deeper())
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FillError> {
        let len = usize::from(self.depth < MAX_DEPTH);
        visitor.visit_seq(Items {
            filler: self.deeper(),
            left: len,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, FillError> {
        visitor.visit_seq(Items {
            filler: self.deeper(),
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, FillError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FillError> {
        let keys: &'static [&'static str] = if self.depth < MAX_DEPTH { &["k"] } else { &[] };
        visitor.visit_map(Fields {
            filler: self.deeper(),
            keys,
            key_as_filler: true,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, FillError> {
        visitor.visit_map(Fields {
            filler: self.deeper(),
            keys: fields,
            key_as_filler: false,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, FillError> {
        self.enums.borrow_mut().insert(
            name.to_owned(),
            variants.iter().map(|v| v.to_string()).collect(),
        );
        let first = variants
            .first()
            .ok_or_else(|| FillError(format!("enum {name} has no variants")))?;
        visitor.visit_enum(Variant {
            filler: self.deeper(),
            name: first,
        })
    }
}

/// The elements of a list or tuple.
struct Items<'a> {
    filler: Filler<'a>,
    left: usize,
}

impl<'de, 'a> de::SeqAccess<'de> for Items<'a> {
    type Error = FillError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, FillError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.filler).map(Some)
    }
}

/// The entries of a struct (its field names) or of a map (one made-up key).
struct Fields<'a> {
    filler: Filler<'a>,
    keys: &'static [&'static str],
    key_as_filler: bool,
}

impl<'de, 'a> de::MapAccess<'de> for Fields<'a> {
    type Error = FillError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, FillError> {
        let all = self.keys;
        let key = loop {
            let Some((key, rest)) = self.keys.split_first() else {
                return Ok(None);
            };
            self.keys = rest;
            // serde lists a field's aliases with its name; a camelCase alias of a snake_case
            // field would fill the field twice.
            if !self.key_as_filler && is_alias(key, all) {
                continue;
            }
            break key;
        };
        if self.key_as_filler {
            seed.deserialize(self.filler).map(Some)
        } else {
            seed.deserialize((*key).into_deserializer()).map(Some)
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, FillError> {
        seed.deserialize(self.filler)
    }
}

/// Whether `key` is the camelCase spelling of another of `fields`.
fn is_alias(key: &str, fields: &[&str]) -> bool {
    let mut snake = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            snake.push('_');
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    snake != key && fields.contains(&snake.as_str())
}

/// The first variant of an enum.
struct Variant<'a> {
    filler: Filler<'a>,
    name: &'static str,
}

impl<'de, 'a> de::EnumAccess<'de> for Variant<'a> {
    type Error = FillError;
    type Variant = Self;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self), FillError> {
        let name: de::value::StrDeserializer<'_, FillError> = self.name.into_deserializer();
        Ok((seed.deserialize(name)?, self))
    }
}

impl<'de, 'a> de::VariantAccess<'de> for Variant<'a> {
    type Error = FillError;

    fn unit_variant(self) -> Result<(), FillError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, FillError> {
        seed.deserialize(self.filler)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, FillError> {
        de::Deserializer::deserialize_tuple(self.filler, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, FillError> {
        de::Deserializer::deserialize_struct(self.filler, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden_dir() -> PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("abi")
    }

    /// Every golden file, with the ABI version it records. Set `CAIRN_BLESS_ABI=1` to write
    /// them after bumping [`ABI_VERSION`](super::super::ABI_VERSION); the golden files of a
    /// version, once written, are never rewritten for that version.
    #[test]
    fn golden_files_match_the_wire_form() {
        let abi = super::super::ABI_VERSION;
        let bless = std::env::var_os("CAIRN_BLESS_ABI").is_some();
        let mut problems = Vec::new();
        for (name, doc) in documents() {
            let text = serde_json::to_string_pretty(&serde_json::json!({
                "abi_version": abi,
                "schema": doc,
            }))
            .unwrap()
                + "\n";
            let path = golden_dir().join(format!("{name}.json"));
            // Compared as JSON values: the key order of the file does not matter.
            let old = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok());
            if old.as_ref() == Some(&serde_json::from_str::<Value>(&text).unwrap()) {
                continue;
            }
            let old_version = old.as_ref().and_then(|v| v["abi_version"].as_u64());
            let grown = name == CAPABILITIES
                && old_version == Some(u64::from(abi))
                && old.as_ref().is_some_and(|old| {
                    contains(&serde_json::from_str::<Value>(&text).unwrap(), old)
                });
            if bless && (grown || old_version != Some(u64::from(abi))) {
                std::fs::create_dir_all(golden_dir()).unwrap();
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            problems.push(match old_version {
                _ if grown => format!(
                    "{}: a capability was added; that needs no ABI version bump: run this test \
                     with CAIRN_BLESS_ABI=1 to record it",
                    path.display()
                ),
                Some(v) if v == u64::from(abi) => format!(
                    "{}: the wire form changed but ABI_VERSION is still {abi}; bump ABI_VERSION \
                     in ffi/mod.rs, then run this test with CAIRN_BLESS_ABI=1",
                    path.display()
                ),
                Some(v) => format!(
                    "{}: recorded for ABI version {v}, this is {abi}; run this test with \
                     CAIRN_BLESS_ABI=1 to record it",
                    path.display()
                ),
                None => format!(
                    "{}: missing; run this test with CAIRN_BLESS_ABI=1 (after bumping \
                     ABI_VERSION if the wire form changed)",
                    path.display()
                ),
            });
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// Whether `big` has everything `small` has (objects may have more keys).
    fn contains(big: &Value, small: &Value) -> bool {
        match (big, small) {
            (Value::Object(b), Value::Object(s)) => s
                .iter()
                .all(|(k, v)| b.get(k).is_some_and(|bv| contains(bv, v))),
            (b, s) => b == s,
        }
    }

    #[test]
    fn capabilities_are_outside_the_schema_hash_and_everything_else_inside() {
        let docs = documents();
        let hash = hash_of(&docs);
        let mut grown = docs.clone();
        grown.get_mut(CAPABILITIES).unwrap()["ArtifactRepository"]["response"]["streaming"] =
            Value::Bool(true);
        assert_eq!(hash_of(&grown), hash);
        let mut changed = docs.clone();
        changed.get_mut("ArtifactRepository").unwrap()["head"]["response"]["mtime"] =
            Value::Bool(true);
        assert_ne!(hash_of(&changed), hash);
        let mut changed = docs;
        changed.get_mut("enums").unwrap()["ErrorKind"]
            .as_array_mut()
            .unwrap()
            .push("Cancelled".into());
        assert_ne!(hash_of(&changed), hash);
    }

    #[test]
    fn every_sample_was_built() {
        let text = serde_json::to_string(&documents()).unwrap();
        assert!(!text.contains("<cannot"), "{text}");
    }

    #[test]
    fn samples_have_every_field_and_the_hash_is_stable() {
        let docs = documents();
        // A field that MLflow's JSON skips when empty still appears in the sample.
        let run = &docs["TrackingStore"]["get_run"]["response"];
        assert!(run["info"]["run_id"].is_string(), "{run}");
        assert!(run["data"]["metrics"][0]["value"].is_number(), "{run}");
        // Borrowed arguments travel owned.
        assert_eq!(
            docs["ArtifactRepository"]["head"]["request"],
            serde_json::json!(["s"])
        );
        assert!(docs["enums"]["ErrorKind"].as_array().unwrap().len() > 3);
        assert_eq!(schema_hash(), schema_hash());
        assert_eq!(schema_hash().len(), 16);
    }

    #[test]
    fn a_changed_field_changes_the_hash() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Before {
            a: String,
        }
        #[derive(serde::Serialize, serde::Deserialize)]
        struct After {
            a: String,
            b: Option<bool>,
        }
        let enums = RefCell::default();
        assert_ne!(sample::<Before>(&enums), sample::<After>(&enums));
    }
}
