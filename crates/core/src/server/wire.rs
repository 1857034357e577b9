//! MLflow's wire format (api.md §0): how requests are decoded and responses encoded.
//!
//! **Requests.** [`Wire<T>`] is the extractor every handler uses:
//! - `GET` with a query string: fields come from the query string. A field `T` declares
//!   repeated ([`RequestSpec::REPEATED`]) collects every occurrence of its key
//!   (`?run_ids=a&run_ids=b`); any other field takes the first. A bool field
//!   ([`RequestSpec::BOOLS`]) must be `true` or `false`, case-insensitive.
//! - `GET` without a query string, `PATCH` and `DELETE`: the body is read as JSON whatever the
//!   `Content-Type`.
//! - `POST` and `PUT`: `Content-Type: application/json` is required (parameters such as
//!   `; charset=utf-8` allowed), with MLflow's messages when it is missing or different.
//! - An empty body means `{}`; a body that is a JSON string is decoded a second time (legacy
//!   clients double-encode); `null` values mean "absent", as in protobuf.
//! - lowerCamelCase keys are renamed to snake_case at every level by one generic normaliser, so
//!   every request type declares snake_case names only; a key given both ways is refused with
//!   MLflow's "Request specifies both 'x' and 'xY'" message.
//! - A body over the limit is 413, a malformed body 400 `INVALID_PARAMETER_VALUE`; a value of
//!   the wrong type names its JSON path (`metrics[3].timestamp`) in MLflow's wording. Nothing
//!   is ever answered as a framework's plain-text rejection.
//!
//! **Responses.** [`json`] writes any `Serialize` value as `application/json`. The plugin-api
//! entities already serialise in MLflow's form (snake_case, int64 as numbers, enums by name,
//! NaN/±Infinity as strings, empty fields omitted). Responses are compact rather than
//! pretty-printed as MLflow's: clients parse JSON, and compact is smaller and faster.

use super::error::{ApiError, ApiResult, SEE_API_DOCS};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The request body limit when none is configured: 32 MiB (`server.max_body_bytes`).
pub const DEFAULT_BODY_LIMIT: usize = crate::config::DEFAULT_MAX_BODY_BYTES;

/// The request body limit in force, put into every request's extensions by the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

/// How many bodies of the largest size ([`BodyLimit`]) the server holds in memory at once
/// while reading and decoding JSON requests; further requests wait for room.
pub const BUFFERED_BODIES: usize = 8;

/// The bytes of JSON request bodies all requests together may hold while they are read and
/// decoded (a request extension): each request takes its declared `Content-Length`, or the
/// body limit when it declares none, and gives it back when decoded, so many large bodies at
/// once cannot take the process to gigabytes.
#[derive(Debug, Clone)]
pub struct BodyBudget(pub Arc<tokio::sync::Semaphore>);

impl BodyBudget {
    /// A budget of [`BUFFERED_BODIES`] bodies of `limit` bytes.
    pub fn for_limit(limit: usize) -> Self {
        let bytes = limit.saturating_mul(BUFFERED_BODIES);
        BodyBudget(Arc::new(tokio::sync::Semaphore::new(
            bytes.min(tokio::sync::Semaphore::MAX_PERMITS),
        )))
    }
}

/// What a request type tells the decoder about its fields, for reading query strings (which
/// carry no types).
pub trait RequestSpec: DeserializeOwned {
    /// Repeated (list) fields, by snake_case name.
    const REPEATED: &'static [&'static str] = &[];
    /// Bool fields, by snake_case name.
    const BOOLS: &'static [&'static str] = &[];
}

/// A request of type `T` decoded by MLflow's rules (see the module documentation).
#[derive(Debug, Clone)]
pub struct Wire<T>(pub T);

impl<S: Send + Sync, T: RequestSpec> FromRequest<S> for Wire<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let value = decode_request(req, T::REPEATED, T::BOOLS).await?;
        from_json(value).map(Wire)
    }
}

/// Path parameters (`{model_id}`, `{*tag_key}`), with a malformed path answered in MLflow's
/// error shape rather than as axum's plain-text rejection.
#[derive(Debug, Clone)]
pub struct WirePath<T>(pub T);

impl<S: Send + Sync, T> axum::extract::FromRequestParts<S> for WirePath<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| WirePath(t))
            .map_err(|e| ApiError::invalid(format!("Invalid request path: {}", e.body_text())))
    }
}

/// Decodes a request into a JSON object with snake_case keys, by MLflow's rules.
pub async fn decode_request(
    req: Request,
    repeated: &[&str],
    bools: &[&str],
) -> ApiResult<Map<String, Value>> {
    if req.method() == Method::GET
        && let Some(query) = req.uri().query()
        && form_urlencoded::parse(query.as_bytes()).next().is_some()
    {
        return query_to_json(query, repeated, bools);
    }
    if req.method() == Method::POST || req.method() == Method::PUT {
        check_json_content_type(req.headers())?;
    }
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
    // Refuse a declared oversize body before reading any of it.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(body_too_large(limit));
    }
    // Held until the body is decoded.
    let _room = match req.extensions().get::<BodyBudget>() {
        Some(BodyBudget(budget)) => {
            // Never more than the budget holds: it is BUFFERED_BODIES times the limit.
            let wanted = declared.map_or(limit, |n| n as usize).min(limit);
            let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
            Some(
                Arc::clone(budget)
                    .acquire_many_owned(wanted)
                    .await
                    .map_err(|_| ApiError::internal("the request-body budget is closed"))?,
            )
        }
        None => None,
    };
    let bytes = read_body(req.into_body(), limit).await?;
    body_to_json(&bytes)
}

/// MLflow's `Content-Type` check for `POST` and `PUT`: `application/json`, parameters allowed.
pub fn check_json_content_type(headers: &HeaderMap) -> ApiResult<()> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::invalid(
            "Bad Request. Content-Type header is missing.",
        ));
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "Bad Request. Content-Type must be one of ['application/json'].",
        ))
    }
}

/// The 413 answered for a body over `limit` bytes.
pub fn body_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "INVALID_PARAMETER_VALUE",
        format!("Request body is too large: the limit is {limit} bytes."),
    )
}

/// Request bodies an answer that does not need them still reads, at most, before answering.
pub const DISCARDED_BODY_LIMIT: usize = 1 << 20;

/// Reads and drops up to [`DISCARDED_BODY_LIMIT`] bytes of a body its answer does not need
/// (404, 405, 501): hyper keeps a connection alive only once the request body is read, so an
/// unread body of more than its buffer closed the connection, often while the client was still
/// sending, and the client saw a broken pipe instead of the answer. A larger body is left unread
/// (the connection closes, as before).
pub async fn discard_body(body: Body) {
    use http_body_util::BodyExt;
    let _ = http_body_util::Limited::new(body, DISCARDED_BODY_LIMIT)
        .collect()
        .await;
}

/// Reads at most `limit` bytes of `body`; more is a 413.
pub async fn read_body(body: Body, limit: usize) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // `to_bytes` wraps http-body-util's limit error; anything else is a broken stream.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if err.is::<http_body_util::LengthLimitError>() {
                return body_too_large(limit);
            }
            source = err.source();
        }
        ApiError::invalid(format!("Could not read the request body: {e}"))
    })
}

/// Most JSON values a request body may hold. Decoding builds a tree of them, tens of bytes
/// each, so a 32 MiB body of `[0,0,...]` would cost gigabytes; they are counted (roughly: one
/// per string, `,`, `[` and `{` outside strings) in one pass before decoding. The largest
/// legitimate bodies (a 1,000-metric batch, 10,000 `experiment_ids`) hold far fewer.
pub const MAX_JSON_VALUES: usize = 250_000;

/// Refuses `bytes` if it holds more than [`MAX_JSON_VALUES`] JSON values.
fn check_json_size(bytes: &[u8]) -> ApiResult<()> {
    let (mut count, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                count += 1;
            }
            b'[' | b'{' | b',' => count += 1,
            _ => {}
        }
        if count > MAX_JSON_VALUES {
            return Err(ApiError::invalid(format!(
                "The request body holds more than {MAX_JSON_VALUES} JSON values; split the \
                 request into smaller ones"
            )));
        }
    }
    Ok(())
}

/// Parses a request body: empty is `{}`, a JSON string is decoded again, `null` is `{}`,
/// anything but an object is refused. Keys are normalised (see [`normalise_keys`]). A body of
/// more than [`MAX_JSON_VALUES`] values is refused before it is decoded.
pub fn body_to_json(bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    check_json_size(bytes)?;
    let mut value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid(format!("Malformed JSON in the request body: {e}")))?;
    if let Value::String(inner) = &value {
        check_json_size(inner.as_bytes())?;
        value = serde_json::from_str(inner).map_err(|e| {
            ApiError::invalid(format!(
                "Malformed JSON in the (double-encoded) request body: {e}"
            ))
        })?;
    }
    match value {
        Value::Null => Ok(Map::new()),
        Value::Object(mut map) => {
            normalise_map(&mut map)?;
            Ok(map)
        }
        other => Err(ApiError::invalid(format!(
            "Invalid request body: expected a JSON object, got {}.",
            python_type(&other)
        ))),
    }
}

/// Builds the JSON object of a `GET` query string (see the module documentation).
pub fn query_to_json(
    query: &str,
    repeated: &[&str],
    bools: &[&str],
) -> ApiResult<Map<String, Value>> {
    let mut map = Map::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let key = snake_case(&key);
        if repeated.contains(&key.as_str()) {
            match map.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(items) => items.push(Value::String(value.into_owned())),
                _ => unreachable!("repeated fields are always arrays"),
            }
        } else if !map.contains_key(&key) {
            let value = if bools.contains(&key.as_str()) {
                match value.to_ascii_lowercase().as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => {
                        return Err(ApiError::invalid(format!(
                            "Invalid boolean value: {value}, must be 'true' or 'false'."
                        )));
                    }
                }
            } else {
                Value::String(value.into_owned())
            };
            map.insert(key, value);
        }
    }
    Ok(map)
}

/// protobuf's JSON name back to the field name: `experimentId` → `experiment_id`.
pub fn snake_case(key: &str) -> String {
    if !key.bytes().any(|b| b.is_ascii_uppercase()) {
        return key.to_owned();
    }
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Renames lowerCamelCase keys to snake_case at every level and drops `null` values (protobuf
/// reads them as unset). A key given both ways is an error.
pub fn normalise_keys(value: &mut Value) -> ApiResult<()> {
    match value {
        Value::Object(map) => normalise_map(map),
        Value::Array(items) => items.iter_mut().try_for_each(normalise_keys),
        _ => Ok(()),
    }
}

fn normalise_map(map: &mut Map<String, Value>) -> ApiResult<()> {
    let needs_work = map
        .iter()
        .any(|(k, v)| v.is_null() || v.is_object() || v.is_array() || snake_case(k) != *k);
    if !needs_work {
        return Ok(());
    }
    let old = std::mem::take(map);
    for (key, value) in &old {
        let snake = snake_case(key);
        if snake != *key && old.contains_key(&snake) {
            return Err(ApiError::invalid(format!(
                "Request specifies both '{snake}' and '{key}'; provide only one of them."
            )));
        }
        let _ = value;
    }
    for (key, mut value) in old {
        if value.is_null() {
            continue;
        }
        normalise_keys(&mut value)?;
        map.insert(snake_case(&key), value);
    }
    Ok(())
}

/// Python's name for a JSON value's type, as MLflow's hints name it.
pub fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Deserialises a decoded request into `T`, wording errors as MLflow does: a value of the
/// wrong type is `Invalid value <json> for parameter '<path>' supplied: Hint: Value was of
/// type '<t>'.`, a missing required nested field `Missing value for required parameter
/// '<path>'.`; both end with MLflow's pointer to the API docs.
pub fn from_json<T: DeserializeOwned>(map: Map<String, Value>) -> ApiResult<T> {
    let value = Value::Object(map);
    match serde_path_to_error::deserialize::<_, T>(&value) {
        Ok(t) => Ok(t),
        Err(e) => {
            let (path, at) = walk(&value, e.path());
            let inner = e.into_inner().to_string();
            if let Some(field) = inner
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
            {
                let full = if path.is_empty() {
                    field.to_owned()
                } else {
                    format!("{path}.{field}")
                };
                return Err(ApiError::missing(&full));
            }
            match at {
                Some(v) if !path.is_empty() => Err(ApiError::invalid(format!(
                    "Invalid value {} for parameter '{path}' supplied: Hint: Value was of type \
                     '{}'. {SEE_API_DOCS}",
                    serde_json::to_string(v).unwrap_or_default(),
                    python_type(v)
                ))),
                _ => Err(ApiError::invalid(format!(
                    "Invalid request: {inner}. {SEE_API_DOCS}"
                ))),
            }
        }
    }
}

/// The MLflow-style path (`metrics[3].timestamp`) of a deserialisation error, and the value
/// found there.
fn walk<'v>(root: &'v Value, path: &serde_path_to_error::Path) -> (String, Option<&'v Value>) {
    use serde_path_to_error::Segment;
    let mut text = String::new();
    let mut at = Some(root);
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                text.push_str(&format!("[{index}]"));
                at = at.and_then(|v| v.get(*index));
            }
            Segment::Map { key } => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
                at = at.and_then(|v| v.get(key.as_str()));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    (text, at)
}

/// The value of a required string parameter: absent or `""` is MLflow's "Missing value".
pub fn required<'a>(value: &'a Option<String>, name: &str) -> ApiResult<&'a str> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::missing(name)),
    }
}

/// The run id of a request that accepts the deprecated `run_uuid` as a fallback.
pub fn run_id<'a>(run_id: &'a Option<String>, run_uuid: &'a Option<String>) -> ApiResult<&'a str> {
    match (run_id.as_deref(), run_uuid.as_deref()) {
        (Some(id), _) if !id.is_empty() => Ok(id),
        (_, Some(id)) if !id.is_empty() => Ok(id),
        _ => Err(ApiError::missing("run_id")),
    }
}

/// A JSON response of `value` with status 200.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(bytes),
        Err(e) => ApiError::internal(format!("cannot encode the response: {e}")).into_response(),
    }
}

/// One page of search results as MLflow writes it: `{"<items_field>": [...],
/// "next_page_token": "..."}`, each key omitted when empty. Serialised straight from the
/// items, with no intermediate JSON tree.
pub fn page<T: Serialize>(
    items_field: &'static str,
    items: &[T],
    next_page_token: Option<String>,
) -> Response {
    struct PageBody<'a, T> {
        items_field: &'static str,
        items: &'a [T],
        next_page_token: Option<String>,
    }
    impl<T: Serialize> Serialize for PageBody<'_, T> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(None)?;
            if !self.items.is_empty() {
                map.serialize_entry(self.items_field, self.items)?;
            }
            if let Some(token) = self.next_page_token.as_deref().filter(|t| !t.is_empty()) {
                map.serialize_entry("next_page_token", token)?;
            }
            map.end()
        }
    }
    json(&PageBody {
        items_field,
        items,
        next_page_token,
    })
}

/// An empty response message: `{}`.
pub fn empty() -> Response {
    json_bytes(b"{}".to_vec())
}

/// Already-encoded JSON as a 200 `application/json` response.
pub fn json_bytes(bytes: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Lenient deserialisers for scalar request fields: MLflow (protobuf's JSON parser) accepts
/// int64 as numbers or numeric strings, doubles as numbers, numeric strings or the strings
/// `NaN`, `Infinity`, `-Infinity`.
pub mod de {
    use serde::Deserializer;
    use serde::de::{self, Visitor};
    use std::fmt;

    struct I64;
    impl Visitor<'_> for I64 {
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
            if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.2e18 {
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

    struct F64;
    impl Visitor<'_> for F64 {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            match v.trim() {
                "NaN" | "nan" => Ok(f64::NAN),
                "Infinity" | "inf" | "+Infinity" => Ok(f64::INFINITY),
                "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
                other => other
                    .parse()
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self)),
            }
        }
    }

    /// An optional int64: a number or a numeric string.
    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        d.deserialize_any(I64).map(Some)
    }

    /// An optional double: a number, a numeric string, `NaN`, `Infinity` or `-Infinity`.
    pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        d.deserialize_any(F64).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_of_too_many_json_values_are_refused_before_decoding() {
        let ids = vec!["\"0\""; MAX_JSON_VALUES + 1].join(",");
        let e = body_to_json(format!("{{\"experiment_ids\": [{ids}]}}").as_bytes()).unwrap_err();
        assert_eq!(e.error_code, "INVALID_PARAMETER_VALUE");
        assert!(
            e.message.contains("more than 250000 JSON values"),
            "{}",
            e.message
        );
        // Commas, brackets and escaped quotes inside strings are text, not values.
        let text = format!("a,[{{\\\"{}", ",".repeat(MAX_JSON_VALUES * 2));
        let body = serde_json::json!({"name": text}).to_string();
        assert_eq!(body_to_json(body.as_bytes()).unwrap()["name"], text);
    }
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Req {
        experiment_id: Option<String>,
        #[serde(default, deserialize_with = "de::opt_i64")]
        max_results: Option<i64>,
        #[serde(default)]
        order_by: Vec<String>,
        #[serde(default)]
        flag: Option<bool>,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    struct Item {
        key: String,
        #[serde(default, deserialize_with = "de::opt_f64")]
        value: Option<f64>,
    }

    impl RequestSpec for Req {
        const REPEATED: &'static [&'static str] = &["order_by"];
        const BOOLS: &'static [&'static str] = &["flag"];
    }

    fn decode(body: &str) -> ApiResult<Req> {
        from_json(body_to_json(body.as_bytes())?)
    }

    #[test]
    fn snake_case_undoes_protobuf_json_names() {
        assert_eq!(snake_case("experimentId"), "experiment_id");
        assert_eq!(snake_case("runUuid"), "run_uuid");
        assert_eq!(snake_case("run_id"), "run_id");
    }

    #[test]
    fn camel_case_and_strings_for_int64_are_accepted() {
        let r =
            decode(r#"{"experimentId": "1", "maxResults": "25", "orderBy": ["name"]}"#).unwrap();
        assert_eq!(r.experiment_id.as_deref(), Some("1"));
        assert_eq!(r.max_results, Some(25));
        assert_eq!(r.order_by, ["name"]);
    }

    #[test]
    fn both_spellings_are_refused() {
        let e = decode(r#"{"experiment_id": "1", "experimentId": "2"}"#).unwrap_err();
        assert_eq!(
            e.message,
            "Request specifies both 'experiment_id' and 'experimentId'; provide only one of them."
        );
    }

    #[test]
    fn empty_null_and_double_encoded_bodies() {
        assert!(decode("").unwrap().experiment_id.is_none());
        assert!(decode("null").unwrap().experiment_id.is_none());
        let r = decode(r#""{\"experiment_id\": \"7\"}""#).unwrap();
        assert_eq!(r.experiment_id.as_deref(), Some("7"));
        let r = decode(r#"{"experiment_id": null}"#).unwrap();
        assert!(r.experiment_id.is_none());
    }

    #[test]
    fn malformed_bodies_are_invalid_parameter_value() {
        for body in ["{", "[1]", "5", r#""not json""#] {
            let e = decode(body).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(e.error_code, "INVALID_PARAMETER_VALUE", "{body}");
        }
    }

    #[test]
    fn wrong_types_name_the_path_and_python_type() {
        let e = decode(r#"{"experiment_id": 5}"#).unwrap_err();
        assert_eq!(
            e.message,
            "Invalid value 5 for parameter 'experiment_id' supplied: Hint: Value was of type \
             'int'. See the API docs for more information about request parameters."
        );
        let e = decode(r#"{"items": [{"key": "a"}, {"key": "b", "value": true}]}"#).unwrap_err();
        assert!(
            e.message
                .starts_with("Invalid value true for parameter 'items[1].value'")
        );
        let e = decode(r#"{"items": [{"value": 1}]}"#).unwrap_err();
        assert_eq!(
            e.message,
            "Missing value for required parameter 'items[0].key'. See the API docs for more \
             information about request parameters."
        );
    }

    #[test]
    fn nan_and_infinity_strings_are_doubles() {
        let r = decode(
            r#"{"items": [{"key": "a", "value": "NaN"}, {"key": "b", "value": "-Infinity"}]}"#,
        )
        .unwrap();
        assert_eq!(r.items[1].key, "b");
        assert!(r.items[0].value.unwrap().is_nan());
        assert_eq!(r.items[1].value, Some(f64::NEG_INFINITY));
    }

    #[test]
    fn query_strings_repeat_lists_and_check_bools() {
        let m = query_to_json(
            "experiment_id=1&experiment_id=2&order_by=a&order_by=b&flag=TRUE",
            Req::REPEATED,
            Req::BOOLS,
        )
        .unwrap();
        let r: Req = from_json(m).unwrap();
        assert_eq!(r.experiment_id.as_deref(), Some("1"));
        assert_eq!(r.order_by, ["a", "b"]);
        assert_eq!(r.flag, Some(true));
        let e = query_to_json("flag=yes", Req::REPEATED, Req::BOOLS).unwrap_err();
        assert_eq!(
            e.message,
            "Invalid boolean value: yes, must be 'true' or 'false'."
        );
    }

    #[test]
    fn content_type_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(
            check_json_content_type(&h).unwrap_err().message,
            "Bad Request. Content-Type header is missing."
        );
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(
            check_json_content_type(&h).unwrap_err().message,
            "Bad Request. Content-Type must be one of ['application/json']."
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(check_json_content_type(&h).is_ok());
    }
}
