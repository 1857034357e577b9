//! Handlers of the MLflow 3 trace endpoints (api.md §1.5) and OTLP span ingest (`POST
//! /v1/traces`). The store's [`TraceStore`] does the work; a tracking store without traces
//! answers `NOT_IMPLEMENTED`.
//!
//! Bodies carrying maps (tags, metadata) are read as plain JSON, not through [`Wire`]'s
//! camelCase normalisation, which would rename map keys such as `mlflow.traceName`.

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::wire::{
    RequestSpec, Wire, WirePath as Path, check_json_content_type, empty, json, read_body,
};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_plugin_api::search::{SearchKind, parse_filter, parse_order_by};
use cairn_plugin_api::traces::*;
use cairn_plugin_api::validation::{SEARCH_MAX_RESULTS_THRESHOLD, validate_max_results};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

/// `max_results` of trace searches when absent (`SEARCH_TRACES_DEFAULT_MAX_RESULTS`).
pub const SEARCH_TRACES_DEFAULT: usize = 100;
/// Most trace ids in one `link-to-run` (`MAX_TRACE_LINKS_PER_REQUEST`).
pub const MAX_TRACE_LINKS_PER_REQUEST: usize = 100;
/// Longest trace tag key (`MAX_TRACE_TAG_KEY_LENGTH`).
pub const MAX_TRACE_TAG_KEY_LENGTH: usize = 250;
/// Longest trace tag value; longer values are truncated (`MAX_TRACE_TAG_VAL_LENGTH`).
pub const MAX_TRACE_TAG_VAL_LENGTH: usize = 8000;
/// Largest trace request body (StartTraceV3, OTLP), bytes.
const TRACE_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Spans read from the store per page when assembling a trace.
const SPAN_PAGE: usize = 1000;

/// Tags no client may set (or delete) on a trace (`_HANDLER_BLOCKED_TRACE_TAGS`).
const BLOCKED_TAGS: &[&str] = &[
    ARTIFACT_LOCATION_TAG,
    SPANS_LOCATION_TAG,
    "mlflow.trace.archiveLocation",
    "mlflow.trace.archivalFailure",
];

fn traces(state: &AppState) -> ApiResult<&dyn TraceStore> {
    state.store().trace_store().ok_or_else(|| {
        ApiError::not_implemented("Traces are not supported by this server's tracking store.")
    })
}

/// The experiments of a trace search (or metrics, or correlation) request the caller may read:
/// the ids checked as MLflow checks them, then narrowed by the caller's permissions.
async fn readable_experiments(
    caller: Option<&axum::Extension<super::auth::Caller>>,
    experiment_ids: Vec<String>,
) -> ApiResult<Vec<String>> {
    cairn_plugin_api::search::check_experiment_ids(&experiment_ids)?;
    super::auth::readable_experiments(caller.map(|c| &c.0), experiment_ids).await
}

// ----- time formats --------------------------------------------------------------------------

/// ms since the epoch as protobuf JSON's RFC 3339 timestamp (`2024-01-02T03:04:05.678Z`).
pub fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An RFC 3339 timestamp (UTC `Z` or a `±hh:mm` offset) as ms since the epoch.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = &s[start..i];
        let padded: String = frac.chars().chain("000".chars()).take(3).collect();
        millis = padded.parse().ok()?;
    }
    let offset = match s.get(i..)? {
        "Z" | "z" => 0,
        o if o.len() == 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o[1..3].parse::<i64>().ok()? * 60 + o[4..6].parse::<i64>().ok()?) * 60
        }
        _ => return None,
    };
    // days_from_civil.
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) - offset) * 1000 + millis)
}

/// A protobuf JSON duration (`"1.5s"`) as ms.
fn parse_duration(s: &str) -> Option<i64> {
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    Some((secs * 1000.0).round() as i64)
}

fn duration(ms: i64) -> String {
    format!("{}.{:03}s", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// ----- JSON forms ----------------------------------------------------------------------------

/// Appends a `TraceInfoV3` message as JSON to `out`, written straight from the info: the
/// answers of `traces/search` and `traces/batchGet` are mostly these, and building a JSON tree
/// of each only to write and drop it was a fifth of a search's CPU. Tags and metadata go in as
/// the text the store wrote, when it wrote one ([`StringMap::write_json`]).
fn write_info(out: &mut Vec<u8>, i: &TraceInfo) {
    fn string(out: &mut Vec<u8>, s: &str) {
        serde_json::to_writer(out, s).expect("a string is always JSON");
    }
    fn key(out: &mut Vec<u8>, name: &str) {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
    }
    out.extend_from_slice(b"{\"trace_id\":");
    string(out, &i.trace_id);
    if let Some(c) = &i.client_request_id {
        key(out, "client_request_id");
        string(out, c);
    }
    key(out, "trace_location");
    out.extend_from_slice(
        b"{\"type\":\"MLFLOW_EXPERIMENT\",\"mlflow_experiment\":{\"experiment_id\":",
    );
    string(out, &i.experiment_id);
    out.extend_from_slice(b"}}");
    if let Some(p) = &i.request_preview {
        key(out, "request_preview");
        string(out, p);
    }
    if let Some(p) = &i.response_preview {
        key(out, "response_preview");
        string(out, p);
    }
    key(out, "request_time");
    string(out, &timestamp(i.request_time_ms));
    if let Some(d) = i.execution_duration_ms {
        key(out, "execution_duration");
        string(out, &duration(d));
    }
    key(out, "state");
    string(out, i.state.as_str());
    key(out, "trace_metadata");
    i.trace_metadata.write_json(out);
    key(out, "assessments");
    let bodies: Vec<&Value> = i.assessments.iter().map(|a| &a.body).collect();
    serde_json::to_writer(&mut *out, &bodies).expect("a JSON value is always JSON");
    key(out, "tags");
    i.tags.write_json(out);
    out.push(b'}');
}

/// Appends `[item, ...]` to `out`, each item written by `write`.
fn write_array<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (n, item) in items.into_iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// `{"trace": {"trace_info": TraceInfoV3}}`, the answer of StartTraceV3 and GetTraceInfoV3.
fn trace_info_answer(info: &TraceInfo) -> Response {
    let mut out = b"{\"trace\":{\"trace_info\":".to_vec();
    write_info(&mut out, info);
    out.extend_from_slice(b"}}");
    super::wire::json_bytes(out)
}

/// A string map (`trace_metadata`, `tags`) of a JSON object.
fn string_map(v: Option<&Value>, what: &str) -> ApiResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.insert(k.clone(), v);
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "Invalid value for '{what}': expected an object"
            )));
        }
    }
    Ok(out)
}

fn str_field<'a>(m: &'a Map<String, Value>, snake: &str, camel: &str) -> Option<&'a str> {
    m.get(snake)
        .or_else(|| m.get(camel))
        .and_then(Value::as_str)
}

fn get<'a>(m: &'a Map<String, Value>, snake: &str, camel: &str) -> Option<&'a Value> {
    m.get(snake).or_else(|| m.get(camel))
}

/// An assessment message, completed with its ids and times.
fn assessment_from_json(
    mut body: Map<String, Value>,
    trace_id: &str,
    now: i64,
) -> ApiResult<Assessment> {
    // snake_case the top-level names only (the values' maps are the user's).
    let keys: Vec<String> = body.keys().cloned().collect();
    for k in keys {
        let snake = super::wire::snake_case(&k);
        if snake != k
            && let Some(v) = body.remove(&k)
        {
            body.insert(snake, v);
        }
    }
    let name = body
        .get("assessment_name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("assessment_name"))?
        .to_string();
    let id = match body.get("assessment_id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!("a-{}", uuid::Uuid::new_v4().simple()),
    };
    let create = body
        .get("create_time")
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
        .unwrap_or(now);
    let update = body
        .get("last_update_time")
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
        .unwrap_or(create);
    // An expectation whose value is not a primitive is stored serialised, as MLflow's
    // `ExpectationValue.to_proto` does: `serialized_value {serialization_format: JSON_FORMAT,
    // value: json.dumps(value)}`.
    if let Some(Value::Object(exp)) = body.get_mut("expectation")
        && matches!(exp.get("value"), Some(Value::Object(_) | Value::Array(_)))
        && let Some(v) = exp.remove("value")
    {
        exp.insert(
            "serialized_value".into(),
            json!({"serialization_format": "JSON_FORMAT", "value": python_json(&v)}),
        );
    }
    body.insert("assessment_id".into(), id.clone().into());
    body.insert("trace_id".into(), trace_id.into());
    body.insert("create_time".into(), timestamp(create).into());
    body.insert("last_update_time".into(), timestamp(update).into());
    body.entry("valid").or_insert(Value::Bool(true));
    Ok(Assessment::new(
        id,
        trace_id,
        name,
        create,
        update,
        Value::Object(body),
    ))
}

/// `v` as Python's `json.dumps` writes it by default (`", "` and `": "` separators,
/// non-ASCII escaped), so serialised values read the same as MLflow's.
fn python_json(v: &Value) -> String {
    fn string(out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || !c.is_ascii() => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    fn write(out: &mut String, v: &Value) {
        match v {
            Value::Object(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    string(out, k);
                    out.push_str(": ");
                    write(out, v);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write(out, v);
                }
                out.push(']');
            }
            Value::String(s) => string(out, s),
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(&mut out, v);
    out
}

/// A `TraceInfoV3` JSON object as the store's info.
fn info_from_json(m: &Map<String, Value>) -> ApiResult<TraceInfo> {
    let trace_id = str_field(m, "trace_id", "traceId")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("trace_id"))?
        .to_string();
    let experiment_id = get(m, "trace_location", "traceLocation")
        .and_then(Value::as_object)
        .and_then(|l| get(l, "mlflow_experiment", "mlflowExperiment"))
        .and_then(Value::as_object)
        .and_then(|e| str_field(e, "experiment_id", "experimentId"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::invalid("The trace location must be an MLflow experiment (trace_location.mlflow_experiment.experiment_id)")
        })?
        .to_string();
    let request_time = match get(m, "request_time", "requestTime") {
        Some(Value::String(s)) => parse_timestamp(s)
            .ok_or_else(|| ApiError::invalid(format!("Invalid request_time '{s}'")))?,
        _ => now_ms(),
    };
    let state = match str_field(m, "state", "state") {
        Some(s) => TraceState::parse(s)
            .ok_or_else(|| ApiError::invalid(format!("Invalid trace state '{s}'")))?,
        None => TraceState::StateUnspecified,
    };
    let mut info = TraceInfo::new(trace_id.clone(), experiment_id, request_time, state);
    info.client_request_id = str_field(m, "client_request_id", "clientRequestId").map(String::from);
    info.request_preview = str_field(m, "request_preview", "requestPreview").map(String::from);
    info.response_preview = str_field(m, "response_preview", "responsePreview").map(String::from);
    info.execution_duration_ms =
        str_field(m, "execution_duration", "executionDuration").and_then(parse_duration);
    info.trace_metadata =
        string_map(get(m, "trace_metadata", "traceMetadata"), "trace_metadata")?.into();
    info.tags = string_map(m.get("tags"), "tags")?.into();
    for (k, v) in info.tags.iter_mut() {
        check_tag_key(k)?;
        truncate(v);
    }
    let now = now_ms();
    if let Some(Value::Array(items)) = m.get("assessments") {
        for a in items {
            if let Value::Object(a) = a {
                info.assessments
                    .push(assessment_from_json(a.clone(), &trace_id, now)?);
            }
        }
    }
    Ok(info)
}

fn check_tag_key(key: &str) -> ApiResult<()> {
    if key.is_empty() {
        return Err(ApiError::invalid(
            "Missing value for required parameter 'key'.",
        ));
    }
    if key.chars().count() > MAX_TRACE_TAG_KEY_LENGTH {
        return Err(ApiError::invalid(format!(
            "'key' exceeds the maximum length of {MAX_TRACE_TAG_KEY_LENGTH} characters"
        )));
    }
    Ok(())
}

fn truncate(v: &mut String) {
    if let Some((i, _)) = v.char_indices().nth(MAX_TRACE_TAG_VAL_LENGTH) {
        v.truncate(i);
    }
}

/// Reads a JSON object body (Content-Type checked for POST) without renaming keys.
async fn json_body(req: Request) -> ApiResult<Map<String, Value>> {
    if req.method() == axum::http::Method::POST {
        check_json_content_type(req.headers())?;
    }
    let bytes = read_body(req.into_body(), TRACE_BODY_LIMIT).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::invalid("The request body must be a JSON object")),
        Err(e) => Err(ApiError::invalid(format!("Malformed JSON body: {e}"))),
    }
}

fn ids(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(String::from))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

// ----- handlers ------------------------------------------------------------------------------

/// `POST /api/3.0/mlflow/traces` (StartTraceV3): `{"trace": {"trace_info", "spans"}}`.
pub async fn start_trace_v3(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let store = traces(&state)?;
    let body = json_body(req).await?;
    let trace = body
        .get("trace")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::missing("trace"))?;
    let info = trace
        .get("trace_info")
        .or_else(|| trace.get("traceInfo"))
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::missing("trace_info"))?;
    let info = info_from_json(info)?;
    let stored = store.start_trace(info).await?;
    Ok(trace_info_answer(&stored))
}

/// `GET /api/3.0/mlflow/traces/{trace_id}` (GetTraceInfoV3).
pub async fn get_trace_info_v3(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
) -> ApiResult<Response> {
    let info = traces(&state)?.get_trace_info(&trace_id).await?;
    Ok(trace_info_answer(&info))
}

/// The spans of a trace, as stored JSON, a page at a time.
async fn spans_json(store: &dyn TraceStore, trace_id: &str) -> ApiResult<Vec<Value>> {
    stored_spans(store, trace_id)
        .await?
        .iter()
        .map(|s| {
            serde_json::from_str(s)
                .map_err(|e| ApiError::internal(format!("stored span is not JSON: {e}")))
        })
        .collect()
}

/// The spans of a trace as the JSON text the store holds, a page at a time.
async fn stored_spans(store: &dyn TraceStore, trace_id: &str) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = store.get_spans(trace_id, SPAN_PAGE, token).await?;
        out.extend(page.items.into_iter().map(|s| s.content));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// Appends `{"trace_info": ..., "spans": [...]}` to `out`. The spans are written as stored:
/// the server itself wrote that text (`span_record`, `Value::to_string`), so it is JSON, and
/// parsing it into a tree only to write it out again was most of the CPU of `traces/get` and
/// `traces/batchGet` (the client's `search_traces` fetches its spans through the latter).
fn write_trace(out: &mut Vec<u8>, info: &TraceInfo, spans: &[String]) {
    out.extend_from_slice(b"{\"trace_info\":");
    write_info(out, info);
    out.extend_from_slice(b",\"spans\":");
    write_array(out, spans, |out, span| {
        out.extend_from_slice(span.as_bytes())
    });
    out.push(b'}');
}

/// `GET traces/get?trace_id=`.
#[derive(Deserialize)]
pub struct GetTraceRequest {
    trace_id: Option<String>,
    #[allow(dead_code)]
    allow_partial: Option<bool>,
}
impl RequestSpec for GetTraceRequest {
    const BOOLS: &'static [&'static str] = &["allow_partial"];
}

/// `GET /api/3.0/mlflow/traces/get` (GetTrace): info and spans.
pub async fn get_trace(
    State(state): State<AppState>,
    Wire(req): Wire<GetTraceRequest>,
) -> ApiResult<Response> {
    let store = traces(&state)?;
    let trace_id = super::wire::required(&req.trace_id, "trace_id")?;
    let info = store.get_trace_info(trace_id).await?;
    let spans = stored_spans(store, trace_id).await?;
    let mut out = b"{\"trace\":".to_vec();
    write_trace(&mut out, &info, &spans);
    out.push(b'}');
    Ok(super::wire::json_bytes(out))
}

/// `traces/batchGet` and `traces/batchGetInfos`.
#[derive(Deserialize)]
pub struct BatchGetRequest {
    #[serde(default)]
    trace_ids: Vec<String>,
    #[serde(default)]
    experiment_ids: Option<Vec<String>>,
}
impl RequestSpec for BatchGetRequest {
    const REPEATED: &'static [&'static str] = &["trace_ids", "experiment_ids"];
}

async fn batch_infos(state: &AppState, req: &BatchGetRequest) -> ApiResult<Vec<TraceInfo>> {
    if req.trace_ids.len() > MAX_TRACE_LINKS_PER_REQUEST {
        return Err(ApiError::invalid(format!(
            "At most {MAX_TRACE_LINKS_PER_REQUEST} trace ids may be fetched at once, got {}",
            req.trace_ids.len()
        )));
    }
    let mut infos = traces(state)?.batch_get_trace_infos(&req.trace_ids).await?;
    if let Some(exps) = &req.experiment_ids {
        infos.retain(|i| exps.contains(&i.experiment_id));
    }
    Ok(infos)
}

/// `GET /api/3.0/mlflow/traces/batchGet` → `{"traces": [Trace]}`.
pub async fn batch_get_traces(
    State(state): State<AppState>,
    Wire(req): Wire<BatchGetRequest>,
) -> ApiResult<Response> {
    let infos = batch_infos(&state, &req).await?;
    let store = traces(&state)?;
    // The spans of all the traces, a page of SPAN_PAGE at a time (one store read a page, not
    // one a trace: on a loaded machine each read's hand-off to the store's thread was most of
    // the latency), grouped by trace.
    let ids: Vec<String> = infos.iter().map(|i| i.trace_id.clone()).collect();
    let mut spans: HashMap<String, Vec<String>> = HashMap::with_capacity(ids.len());
    let mut token = None;
    loop {
        let page = store.batch_get_spans(&ids, SPAN_PAGE, token).await?;
        for s in page.items {
            spans.entry(s.trace_id).or_default().push(s.content);
        }
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let mut out = b"{\"traces\":".to_vec();
    write_array(&mut out, &infos, |out, info| {
        let spans = spans.remove(&info.trace_id).unwrap_or_default();
        write_trace(out, info, &spans);
    });
    out.push(b'}');
    Ok(super::wire::json_bytes(out))
}

/// `POST /api/3.0/mlflow/traces/batchGetInfos` → `{"trace_infos": [TraceInfoV3]}`.
pub async fn batch_get_trace_infos(
    State(state): State<AppState>,
    Wire(req): Wire<BatchGetRequest>,
) -> ApiResult<Response> {
    let infos = batch_infos(&state, &req).await?;
    let mut out = Vec::with_capacity(1024 * (infos.len() + 1));
    out.extend_from_slice(b"{\"trace_infos\":");
    write_array(&mut out, &infos, write_info);
    out.push(b'}');
    Ok(super::wire::json_bytes(out))
}

/// `POST /api/3.0/mlflow/traces/search` (SearchTracesV3) and `GET /api/2.0/mlflow/traces`.
pub async fn search_traces(
    State(state): State<AppState>,
    caller: Option<axum::Extension<super::auth::Caller>>,
    req: Request,
) -> ApiResult<Response> {
    let store = traces(&state)?;
    let v2 = req.method() == axum::http::Method::GET;
    let body = if v2 {
        super::wire::decode_request(req, &["experiment_ids", "order_by"], &[]).await?
    } else {
        json_body(req).await?
    };
    let mut experiment_ids = ids(body.get("experiment_ids"));
    if let Some(Value::Array(locations)) = body.get("locations") {
        for l in locations {
            if let Some(id) = l
                .get("mlflow_experiment")
                .or_else(|| l.get("mlflowExperiment"))
                .and_then(|e| e.get("experiment_id").or_else(|| e.get("experimentId")))
                .and_then(Value::as_str)
            {
                experiment_ids.push(id.to_string());
            }
        }
    }
    let experiment_ids = readable_experiments(caller.as_ref(), experiment_ids).await?;
    let max_results = match get(&body, "max_results", "maxResults") {
        None => SEARCH_TRACES_DEFAULT,
        Some(v) => {
            let n = v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| {
                    ApiError::invalid(format!("Invalid value {v} for parameter 'max_results'"))
                })?;
            if n <= 0 {
                return Err(ApiError::invalid(format!(
                    "Invalid value {n} for parameter 'max_results' supplied. It must be a positive integer"
                )));
            }
            n as usize
        }
    };
    validate_max_results(max_results, SEARCH_MAX_RESULTS_THRESHOLD)?;
    let filter = match body.get("filter").and_then(Value::as_str) {
        Some(f) => parse_filter(SearchKind::Traces, f)?,
        None => None,
    };
    let order_by = parse_order_by(SearchKind::Traces, &ids(get(&body, "order_by", "orderBy")))?;
    let page_token = str_field(&body, "page_token", "pageToken")
        .filter(|s| !s.is_empty())
        .map(String::from);
    let page = store
        .search_traces(SearchTraces::new(
            experiment_ids,
            filter,
            order_by,
            max_results,
            page_token,
        ))
        .await?;
    if v2 {
        let traces: Vec<Value> = page.items.iter().map(info_v2_json).collect();
        let mut out = json!({"traces": traces});
        if let Some(t) = page.next_page_token {
            out["next_page_token"] = t.into();
        }
        return Ok(json(&out));
    }
    // Written straight from the infos (no JSON tree): this answer is most of a search's work.
    let mut out = Vec::with_capacity(1024 * (page.items.len() + 1));
    out.extend_from_slice(b"{\"traces\":");
    write_array(&mut out, &page.items, write_info);
    if let Some(t) = page.next_page_token {
        out.extend_from_slice(b",\"next_page_token\":");
        serde_json::to_writer(&mut out, &t).map_err(ApiError::internal)?;
    }
    out.push(b'}');
    Ok(super::wire::json_bytes(out))
}

/// A deprecated V2 `TraceInfo` as JSON.
fn info_v2_json(i: &TraceInfo) -> Value {
    let status = match i.state {
        TraceState::Ok => "OK",
        TraceState::Error => "ERROR",
        TraceState::InProgress => "IN_PROGRESS",
        _ => "TRACE_STATUS_UNSPECIFIED",
    };
    let kv = |m: &BTreeMap<String, String>| -> Vec<Value> {
        m.iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect()
    };
    json!({
        "request_id": i.trace_id,
        "experiment_id": i.experiment_id,
        "timestamp_ms": i.request_time_ms,
        "execution_time_ms": i.execution_duration_ms,
        "status": status,
        "request_metadata": kv(&i.trace_metadata),
        "tags": kv(&i.tags),
    })
}

/// `GET /api/2.0/mlflow/traces/{request_id}/info` (deprecated GetTraceInfo).
pub async fn get_trace_info_v2(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
) -> ApiResult<Response> {
    let info = traces(&state)?.get_trace_info(&trace_id).await?;
    Ok(json(&json!({"trace_info": info_v2_json(&info)})))
}

/// `POST traces/delete-traces`: by `request_ids`, or by `max_timestamp_millis` (+ `max_traces`).
pub async fn delete_traces(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let store = traces(&state)?;
    let body = json_body(req).await?;
    let experiment_id = str_field(&body, "experiment_id", "experimentId")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("experiment_id"))?
        .to_string();
    let int = |v: Option<&Value>| -> ApiResult<Option<i64>> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .map(Some)
                .ok_or_else(|| ApiError::invalid(format!("Invalid integer value {v}"))),
        }
    };
    let max_ts = int(get(&body, "max_timestamp_millis", "maxTimestampMillis"))?;
    let max_traces = int(get(&body, "max_traces", "maxTraces"))?;
    let mut request_ids = ids(get(&body, "request_ids", "requestIds"));
    request_ids.extend(ids(get(&body, "trace_ids", "traceIds")));
    let which = match (max_ts, request_ids.is_empty()) {
        (None, true) => {
            return Err(ApiError::invalid(
                "Either `max_timestamp_millis` or `trace_ids` must be specified.",
            ));
        }
        (Some(_), false) => {
            return Err(ApiError::invalid(
                "Only one of `max_timestamp_millis` and `trace_ids` can be specified.",
            ));
        }
        (None, false) => {
            if max_traces.is_some() {
                return Err(ApiError::invalid(
                    "`max_traces` can't be specified if `trace_ids` is specified.",
                ));
            }
            DeleteTraces::Ids(request_ids)
        }
        (Some(ts), true) => {
            if let Some(n) = max_traces
                && n <= 0
            {
                return Err(ApiError::invalid(format!(
                    "`max_traces` must be a positive integer, received {n}."
                )));
            }
            DeleteTraces::OlderThan {
                max_timestamp_millis: ts,
                max_traces: max_traces.map(|n| n as usize),
            }
        }
    };
    let n = store.delete_traces(&experiment_id, which).await?;
    Ok(json(&json!({"traces_deleted": n})))
}

/// `PATCH traces/{trace_id}/tags` with `{"key", "value"}`.
pub async fn set_trace_tag(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let store = traces(&state)?;
    let body = json_body(req).await?;
    let key = body.get("key").and_then(Value::as_str).unwrap_or_default();
    check_tag_key(key)?;
    if BLOCKED_TAGS.contains(&key) {
        return Err(ApiError::invalid(format!(
            "Tag '{key}' is immutable and cannot be set on a trace."
        )));
    }
    let mut value = match body.get("value") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => return Err(ApiError::missing("value")),
        Some(other) => other.to_string(),
    };
    truncate(&mut value);
    store.set_trace_tag(&trace_id, key, &value).await?;
    Ok(empty())
}

/// `DELETE traces/{trace_id}/tags?key=`.
#[derive(Deserialize)]
pub struct DeleteTagRequest {
    key: Option<String>,
}
impl RequestSpec for DeleteTagRequest {}

/// `DELETE traces/{trace_id}/tags`.
pub async fn delete_trace_tag(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
    Wire(req): Wire<DeleteTagRequest>,
) -> ApiResult<Response> {
    let store = traces(&state)?;
    let key = super::wire::required(&req.key, "key")?;
    if BLOCKED_TAGS.contains(&key) && key != "mlflow.trace.archivalFailure" {
        return Err(ApiError::invalid(format!(
            "Tag '{key}' is immutable and cannot be deleted on a trace."
        )));
    }
    store.delete_trace_tag(&trace_id, key).await?;
    Ok(empty())
}

/// `POST traces/link-to-run` with `{"trace_ids", "run_id"}`.
#[derive(Deserialize)]
pub struct LinkToRunRequest {
    #[serde(default)]
    trace_ids: Vec<String>,
    run_id: Option<String>,
}
impl RequestSpec for LinkToRunRequest {
    const REPEATED: &'static [&'static str] = &["trace_ids"];
}

/// `POST /api/2.0/mlflow/traces/link-to-run`.
pub async fn link_traces_to_run(
    State(state): State<AppState>,
    Wire(req): Wire<LinkToRunRequest>,
) -> ApiResult<Response> {
    let store = traces(&state)?;
    let run_id = super::wire::required(&req.run_id, "run_id")?;
    if req.trace_ids.len() > MAX_TRACE_LINKS_PER_REQUEST {
        return Err(ApiError::invalid(format!(
            "Cannot link more than {MAX_TRACE_LINKS_PER_REQUEST} traces to a run in a single \
             request. Provided {} traces.",
            req.trace_ids.len()
        )));
    }
    // The run must exist.
    state.store().get_run(run_id).await?;
    store.link_traces_to_run(&req.trace_ids, run_id).await?;
    Ok(empty())
}

/// `POST traces/link-prompts`: the trace must exist; the links are recorded as the trace tag
/// `mlflow.linkedPrompts` (a JSON list of `{name, version}`), as MLflow does.
pub async fn link_prompts(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let store = traces(&state)?;
    let body = json_body(req).await?;
    let trace_id = str_field(&body, "trace_id", "traceId")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("trace_id"))?
        .to_string();
    let info = store.get_trace_info(&trace_id).await?;
    let mut linked: Vec<Value> = info
        .tags
        .get("mlflow.linkedPrompts")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    if let Some(Value::Array(items)) = get(&body, "prompt_versions", "promptVersions") {
        for p in items {
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            let version = p.get("version").map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let entry = json!({"name": name, "version": version.unwrap_or_default()});
            if !linked.contains(&entry) {
                linked.push(entry);
            }
        }
    }
    let text = serde_json::to_string(&linked).unwrap_or_else(|_| "[]".into());
    store
        .set_trace_tag(&trace_id, "mlflow.linkedPrompts", &text)
        .await?;
    Ok(empty())
}

/// `POST /api/3.0/mlflow/traces/{trace_id}/assessments` with `{"assessment"}`.
pub async fn create_assessment(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let store = traces(&state)?;
    let body = json_body(req).await?;
    let a = body
        .get("assessment")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::missing("assessment"))?;
    let mut a = a.clone();
    // A new assessment: the server assigns its id unless the client did.
    let now = now_ms();
    a.remove("create_time");
    a.remove("last_update_time");
    let assessment = assessment_from_json(a, &trace_id, now)?;
    // An assessment overriding another marks that one invalid (MLflow's `overrides`).
    if let Some(old) = assessment.body.get("overrides").and_then(Value::as_str)
        && let Ok(mut prev) = store.get_assessment(&trace_id, old).await
    {
        if let Value::Object(m) = &mut prev.body {
            m.insert("valid".into(), Value::Bool(false));
        }
        store.update_assessment(prev).await?;
    }
    let stored = store.create_assessment(assessment).await?;
    Ok(json(&json!({"assessment": stored.body})))
}

/// `GET .../traces/{trace_id}/assessments/{assessment_id}`.
pub async fn get_assessment(
    State(state): State<AppState>,
    Path((trace_id, assessment_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let a = traces(&state)?
        .get_assessment(&trace_id, &assessment_id)
        .await?;
    Ok(json(&json!({"assessment": a.body})))
}

/// `PATCH .../assessments/{assessment_id}` with `{"assessment", "update_mask"}`: the fields the
/// mask names (all given ones when there is no mask) replace the stored ones.
pub async fn update_assessment(
    State(state): State<AppState>,
    Path((trace_id, assessment_id)): Path<(String, String)>,
    req: Request,
) -> ApiResult<Response> {
    let store = traces(&state)?;
    let body = json_body(req).await?;
    let update = body
        .get("assessment")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mask: Vec<String> = match get(&body, "update_mask", "updateMask") {
        Some(Value::String(s)) => s
            .split(',')
            .map(|p| super::wire::snake_case(p.trim()))
            .collect(),
        Some(Value::Object(m)) => ids(m.get("paths")),
        _ => update.keys().map(|k| super::wire::snake_case(k)).collect(),
    };
    let mut current = store.get_assessment(&trace_id, &assessment_id).await?;
    let Value::Object(stored) = &mut current.body else {
        return Err(ApiError::internal("stored assessment is not an object"));
    };
    for path in &mask {
        let value = update
            .iter()
            .find(|(k, _)| super::wire::snake_case(k) == *path)
            .map(|(_, v)| v.clone());
        match value {
            Some(v) => {
                // A new value replaces the other kind (feedback vs expectation).
                if path == "feedback" {
                    stored.remove("expectation");
                } else if path == "expectation" {
                    stored.remove("feedback");
                }
                stored.insert(path.clone(), v);
            }
            None => {
                stored.remove(path);
            }
        }
    }
    let now = now_ms();
    stored.insert("last_update_time".into(), timestamp(now).into());
    if let Some(name) = stored.get("assessment_name").and_then(Value::as_str) {
        current.name = name.to_string();
    }
    current.last_update_time_ms = now;
    let stored = store.update_assessment(current).await?;
    Ok(json(&json!({"assessment": stored.body})))
}

/// `DELETE .../assessments/{assessment_id}`. Deleting an assessment that overrode another
/// makes that one valid again, as in MLflow.
pub async fn delete_assessment(
    State(state): State<AppState>,
    Path((trace_id, assessment_id)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    // The client sends the ids in a JSON body too. Read it: a body left unread makes the
    // server close the connection after answering, and the client's next request on that
    // kept-alive connection then fails ("Remote end closed connection without response").
    read_body(body, TRACE_BODY_LIMIT).await?;
    let store = traces(&state)?;
    let overridden = match store.get_assessment(&trace_id, &assessment_id).await {
        Ok(a) => a
            .body
            .get("overrides")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from),
        Err(_) => None,
    };
    store.delete_assessment(&trace_id, &assessment_id).await?;
    if let Some(old) = overridden
        && let Ok(mut prev) = store.get_assessment(&trace_id, &old).await
    {
        if let Value::Object(m) = &mut prev.body {
            m.insert("valid".into(), Value::Bool(true));
        }
        store.update_assessment(prev).await?;
    }
    Ok(empty())
}

/// The conjunction of the parts present.
fn and_all(
    parts: Vec<Option<cairn_plugin_api::search::Expr>>,
) -> Option<cairn_plugin_api::search::Expr> {
    use cairn_plugin_api::search::Expr;
    let mut all: Vec<Expr> = Vec::new();
    for p in parts.into_iter().flatten() {
        match p {
            Expr::And(items) => all.extend(items),
            other => all.push(other),
        }
    }
    match all.len() {
        0 => None,
        1 => all.pop(),
        _ => Some(Expr::And(all)),
    }
}

/// NPMI and its Jeffreys-smoothed form from the 2×2 counts (MLflow's
/// `calculate_npmi_from_counts`): NaN when undefined, -1 when both filters match but never
/// together.
pub fn npmi_from_counts(joint: usize, n1: usize, n2: usize, total: usize) -> (f64, f64) {
    if total == 0 || n1 == 0 || n2 == 0 {
        return (f64::NAN, f64::NAN);
    }
    let (j, a, b, t) = (joint as i64, n1 as i64, n2 as i64, total as i64);
    let (n11, n10, n01, n00) = (j, a - j, b - j, t - a - b + j);
    if n11.min(n10).min(n01).min(n00) < 0 {
        return (f64::NAN, f64::NAN);
    }
    let core = |smoothing: f64| -> f64 {
        let (n11s, n10s, n01s, n00s) = (
            n11 as f64 + smoothing,
            n10 as f64 + smoothing,
            n01 as f64 + smoothing,
            n00 as f64 + smoothing,
        );
        let n = n11s + n10s + n01s + n00s;
        let (m1, m2) = (n11s + n10s, n11s + n01s);
        if m1 <= 0.0 || m2 <= 0.0 || n11s <= 0.0 {
            return f64::NAN;
        }
        if n10 == 0 && n01 == 0 && n00 == 0 {
            return 1.0;
        }
        let pmi = (n11s.ln() + n.ln()) - (m1.ln() + m2.ln());
        let denominator = -(n11s.ln() - n.ln());
        (pmi / denominator).clamp(-1.0, 1.0)
    };
    let npmi = if joint == 0 { -1.0 } else { core(0.0) };
    (npmi, core(0.5))
}

/// A float as protobuf JSON writes it (`"NaN"` for NaN).
fn proto_double(x: f64) -> Value {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        json!(x)
    }
}

/// `POST /api/3.0/mlflow/traces/calculate-filter-correlation`: NPMI between two trace filters
/// (each combined with `base_filter` when given), over the traces of `experiment_ids`.
pub async fn calculate_filter_correlation(
    State(state): State<AppState>,
    caller: Option<axum::Extension<super::auth::Caller>>,
    req: Request,
) -> ApiResult<Response> {
    let store = traces(&state)?;
    let body = json_body(req).await?;
    let experiment_ids = match get(&body, "experiment_ids", "experimentIds") {
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                out.push(
                    i.as_str()
                        .ok_or_else(|| {
                            ApiError::invalid(format!(
                                "Invalid value {i} for parameter 'experiment_ids' supplied: \
                                 every item must be a string"
                            ))
                        })?
                        .to_string(),
                );
            }
            out
        }
        _ => return Err(ApiError::missing("experiment_ids")),
    };
    let text = |snake: &str, camel: &str, required: bool| -> ApiResult<Option<String>> {
        match get(&body, snake, camel) {
            None | Some(Value::Null) if required => Err(ApiError::missing(snake)),
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(ApiError::invalid(format!(
                "Invalid value {v} for parameter '{snake}' supplied: expected a string"
            ))),
        }
    };
    let f1 = text("filter_string1", "filterString1", true)?.unwrap_or_default();
    let f2 = text("filter_string2", "filterString2", true)?.unwrap_or_default();
    let base = text("base_filter", "baseFilter", false)?;
    let experiment_ids = readable_experiments(caller.as_ref(), experiment_ids).await?;
    let parse = |f: &str| parse_filter(SearchKind::Traces, f);
    let base = match &base {
        Some(b) => parse(b)?,
        None => None,
    };
    let (e1, e2) = (parse(&f1)?, parse(&f2)?);
    let total = store.count_traces(&experiment_ids, base.clone()).await?;
    let n1 = store
        .count_traces(&experiment_ids, and_all(vec![base.clone(), e1.clone()]))
        .await?;
    let n2 = store
        .count_traces(&experiment_ids, and_all(vec![base.clone(), e2.clone()]))
        .await?;
    let joint = store
        .count_traces(&experiment_ids, and_all(vec![base, e1, e2]))
        .await?;
    let (npmi, smoothed) = npmi_from_counts(joint, n1, n2, total);
    Ok(json(&json!({
        "npmi": proto_double(npmi),
        "npmi_smoothed": proto_double(smoothed),
        "filter1_count": n1,
        "filter2_count": n2,
        "joint_count": joint,
        "total_count": total,
    })))
}

// ----- traces/metrics ------------------------------------------------------------------------

/// `max_results` of `traces/metrics` when absent (`MAX_RESULTS_QUERY_TRACE_METRICS`).
pub const TRACE_METRICS_DEFAULT: usize = 1000;

const COUNT: &[&str] = &["COUNT"];
const STATS: &[&str] = &["AVG", "MIN", "MAX", "PERCENTILE"];
const SUMS: &[&str] = &["SUM", "AVG", "MIN", "MAX", "PERCENTILE"];

/// MLflow's `VIEW_TYPE_CONFIGS`: per view, each metric with its aggregations and dimensions,
/// in MLflow's order (its error messages list them so).
#[allow(clippy::type_complexity)]
fn metric_configs(
    view: MetricView,
) -> &'static [(
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
)] {
    const TRACE_NAME: &[&str] = &["trace_name"];
    const MODEL: &[&str] = &["span_model_name", "span_model_provider"];
    match view {
        MetricView::Traces => &[
            ("trace_count", COUNT, &["trace_name", "trace_status"]),
            ("session_count", COUNT, &[]),
            ("latency", STATS, TRACE_NAME),
            ("input_tokens", SUMS, TRACE_NAME),
            ("output_tokens", SUMS, TRACE_NAME),
            ("total_tokens", SUMS, TRACE_NAME),
            ("cache_read_input_tokens", SUMS, TRACE_NAME),
            ("cache_creation_input_tokens", SUMS, TRACE_NAME),
        ],
        MetricView::Spans => &[
            (
                "span_count",
                COUNT,
                &[
                    "span_name",
                    "span_type",
                    "span_status",
                    "span_model_name",
                    "span_model_provider",
                ],
            ),
            ("latency", STATS, &["span_name", "span_status"]),
            ("input_cost", SUMS, MODEL),
            ("output_cost", SUMS, MODEL),
            ("total_cost", SUMS, MODEL),
        ],
        _ => &[
            (
                "assessment_count",
                COUNT,
                &["assessment_name", "assessment_value"],
            ),
            ("assessment_value", STATS, &["assessment_name"]),
        ],
    }
}

/// MLflow's check that every requested aggregation (or dimension) is one the metric supports:
/// "Found invalid {what}: [...]. Supported {supported_what}: [...]", both lists sorted.
fn check_supported(
    requested: &[String],
    allowed: &[&str],
    what: &str,
    supported_what: &str,
) -> ApiResult<()> {
    let mut bad: Vec<&str> = requested
        .iter()
        .map(String::as_str)
        .filter(|r| !allowed.contains(r))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    bad.sort();
    bad.dedup();
    let mut supported = allowed.to_vec();
    supported.sort();
    Err(ApiError::invalid(format!(
        "Found invalid {what}: {}. Supported {supported_what}: {}",
        py_list(&bad),
        py_list(&supported)
    )))
}

/// A Python list of strings as `repr` writes it (`['a', 'b']`), for MLflow's messages.
fn py_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{}'", s.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

/// One `traces/metrics` filter: `<view>.<entity>[.<key>] <comparator> <value>`
/// (`SearchTraceMetricsUtils.parse_search_filter`; MLflow compares for equality whatever the
/// comparator is).
fn parse_metric_filter(filter: &str) -> ApiResult<MetricFilter> {
    let bad = || {
        ApiError::invalid(format!(
            "Invalid filter: '{filter}'. Expected one filter clause."
        ))
    };
    let text = filter.trim();
    // The identifier runs to the first space or comparator character outside backticks.
    let mut end = text.len();
    let mut in_tick = false;
    for (i, c) in text.char_indices() {
        if c == '`' {
            in_tick = !in_tick;
        } else if !in_tick && (c.is_whitespace() || "=!<>".contains(c)) {
            end = i;
            break;
        }
    }
    let (ident, rest) = text.split_at(end);
    let rest = rest.trim_start();
    let op_len = rest
        .char_indices()
        .take_while(|(_, c)| "=!<>".contains(*c))
        .count();
    let (op, value) = if op_len > 0 {
        (&rest[..op_len], rest[op_len..].trim())
    } else {
        // LIKE / ILIKE / IN ... are not comparisons MLflow's metrics filters accept.
        return Err(bad());
    };
    if !matches!(op, "=" | "!=" | "<" | ">" | "<=" | ">=") || value.is_empty() {
        return Err(bad());
    }
    let value = match value.as_bytes()[0] {
        q @ (b'\'' | b'"') if value.len() >= 2 && value.as_bytes()[value.len() - 1] == q => {
            value[1..value.len() - 1].to_string()
        }
        _ if !value.contains(char::is_whitespace) => value.to_string(),
        _ => return Err(bad()),
    };
    let ident_error = || {
        ApiError::invalid(format!(
            "Invalid identifier '{ident}'. Columns should be specified as 'trace.<key>', \
             'span.<key>', 'assessment.<key>'."
        ))
    };
    let parts: Vec<&str> = ident.splitn(3, '.').collect();
    let (view, entity, key) = match parts.as_slice() {
        [v, e] => (v.trim_matches('`'), *e, None),
        [v, e, k] => (
            v.trim_matches('`'),
            *e,
            Some(
                k.trim_matches('`')
                    .trim_matches('"')
                    .trim_matches('\'')
                    .to_string(),
            ),
        ),
        _ => return Err(ident_error()),
    };
    let entities: &[(&str, bool)] = match view {
        "trace" => &[("status", false), ("tag", true), ("metadata", true)],
        "span" => &[("name", false), ("status", false), ("type", false)],
        "assessment" => &[("name", false), ("type", false)],
        _ => {
            return Err(ApiError::invalid(format!(
                "Invalid view type '{view}'. Valid values are dict_keys(['trace', 'span', 'assessment'])"
            )));
        }
    };
    let Some(&(_, needs_key)) = entities.iter().find(|(e, _)| *e == entity) else {
        let names: Vec<&str> = entities.iter().map(|(e, _)| *e).collect();
        return Err(ApiError::invalid(format!(
            "Invalid entity '{entity}' specified for view type '{view}'. Valid entities are {}",
            py_list(&names)
        )));
    };
    match (needs_key, key) {
        (true, None) => Err(ApiError::invalid(format!(
            "Filtering by {entity} requires a key, e.g. '{view}.{entity}.<key> = <value>'"
        ))),
        (false, Some(_)) => Err(ApiError::invalid(format!(
            "Filtering by {entity} does not require a key, use '{view}.{entity}' instead"
        ))),
        (_, key) => Ok(match (view, entity, key) {
            ("trace", "status", _) => MetricFilter::TraceStatus(value),
            ("trace", "tag", Some(k)) => MetricFilter::TraceTag(k, value),
            ("trace", _, Some(k)) => MetricFilter::TraceMetadata(k, value),
            ("span", "name", _) => MetricFilter::SpanName(value),
            ("span", "status", _) => MetricFilter::SpanStatus(value),
            ("span", _, _) => MetricFilter::SpanType(value),
            ("assessment", "name", _) => MetricFilter::AssessmentName(value),
            _ => MetricFilter::AssessmentType(value),
        }),
    }
}

/// An integer field given as a JSON number or a decimal string (protobuf JSON's int64).
fn int_like(body: &Map<String, Value>, snake: &str, camel: &str) -> ApiResult<Option<i64>> {
    match get(body, snake, camel) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(Value::String(s)) if s.parse::<i64>().is_ok() => Ok(s.parse().ok()),
        Some(v) => Err(ApiError::invalid(format!(
            "Invalid value {v} for parameter '{snake}' supplied: expected an integer"
        ))),
    }
}

fn string_list(body: &Map<String, Value>, snake: &str, camel: &str) -> ApiResult<Vec<String>> {
    match get(body, snake, camel) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Invalid value {i} for parameter '{snake}' supplied: every item must be a string"
                    ))
                })
            })
            .collect(),
        Some(v) => Err(ApiError::invalid(format!(
            "Invalid value {v} for parameter '{snake}' supplied: expected an array"
        ))),
    }
}

/// `POST /api/3.0/mlflow/traces/metrics` (QueryTraceMetrics): aggregates of the traces, spans
/// or assessments of `experiment_ids`, grouped by dimensions and optionally by time bucket.
/// One page: MLflow's SQL store never returns a `next_page_token` either.
pub async fn query_trace_metrics(
    State(state): State<AppState>,
    caller: Option<axum::Extension<super::auth::Caller>>,
    req: Request,
) -> ApiResult<Response> {
    let store = traces(&state)?;
    let body = json_body(req).await?;
    let experiment_ids = string_list(&body, "experiment_ids", "experimentIds")?;
    if !matches!(
        get(&body, "experiment_ids", "experimentIds"),
        Some(Value::Array(_))
    ) {
        return Err(ApiError::missing("experiment_ids"));
    }
    let view = match get(&body, "view_type", "viewType") {
        None | Some(Value::Null) => return Err(ApiError::missing("view_type")),
        Some(Value::String(s)) if s == "TRACES" => MetricView::Traces,
        Some(Value::String(s)) if s == "SPANS" => MetricView::Spans,
        Some(Value::String(s)) if s == "ASSESSMENTS" => MetricView::Assessments,
        Some(Value::Number(n)) if n.as_i64() == Some(1) => MetricView::Traces,
        Some(Value::Number(n)) if n.as_i64() == Some(2) => MetricView::Spans,
        Some(Value::Number(n)) if n.as_i64() == Some(3) => MetricView::Assessments,
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "view_type must be one of ['TRACES', 'SPANS', 'ASSESSMENTS'], got {v}"
            )));
        }
    };
    let metric_name = match get(&body, "metric_name", "metricName") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            return Err(ApiError::missing("metric_name"));
        }
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "Invalid value {v} for parameter 'metric_name' supplied: expected a string"
            )));
        }
    };
    let mut aggregations = Vec::new();
    let mut aggregation_names = Vec::new();
    match get(&body, "aggregations", "aggregations") {
        Some(Value::Array(items)) if !items.is_empty() => {
            for item in items {
                let kind = item
                    .get("aggregation_type")
                    .or_else(|| item.get("aggregationType"));
                let pct = item
                    .get("percentile_value")
                    .or_else(|| item.get("percentileValue"))
                    .filter(|v| !v.is_null());
                let kind = match kind {
                    Some(Value::String(s)) => s.as_str(),
                    Some(Value::Number(n)) => match n.as_i64() {
                        Some(1) => "COUNT",
                        Some(2) => "SUM",
                        Some(3) => "AVG",
                        Some(4) => "PERCENTILE",
                        Some(5) => "MIN",
                        Some(6) => "MAX",
                        _ => "",
                    },
                    _ => "",
                };
                let agg = match (kind, pct) {
                    ("COUNT", None) => MetricAggregation::Count,
                    ("SUM", None) => MetricAggregation::Sum,
                    ("AVG", None) => MetricAggregation::Avg,
                    ("MIN", None) => MetricAggregation::Min,
                    ("MAX", None) => MetricAggregation::Max,
                    ("PERCENTILE", Some(p)) => {
                        let p = p.as_f64().ok_or_else(|| {
                            ApiError::invalid(format!("Invalid percentile_value {p}"))
                        })?;
                        if !(0.0..=100.0).contains(&p) {
                            return Err(ApiError::invalid(format!(
                                "Percentile value must be between 0 and 100, got {p:?}"
                            )));
                        }
                        MetricAggregation::Percentile(p)
                    }
                    ("PERCENTILE", None) => {
                        return Err(ApiError::invalid(
                            "Percentile value is required for PERCENTILE aggregation",
                        ));
                    }
                    ("COUNT" | "SUM" | "AVG" | "MIN" | "MAX", Some(_)) => {
                        return Err(ApiError::invalid(format!(
                            "Percentile value is only allowed for PERCENTILE aggregation type, got {kind}"
                        )));
                    }
                    _ => {
                        return Err(ApiError::invalid(format!(
                            "Invalid aggregation {item}: aggregation_type must be one of \
                             COUNT, SUM, AVG, PERCENTILE, MIN, MAX"
                        )));
                    }
                };
                aggregation_names.push(kind.to_string());
                aggregations.push(agg);
            }
        }
        _ => return Err(ApiError::missing("aggregations")),
    }
    let dimensions = string_list(&body, "dimensions", "dimensions")?;
    let filters = string_list(&body, "filters", "filters")?;
    let time_interval_seconds = int_like(&body, "time_interval_seconds", "timeIntervalSeconds")?;
    let start_time_ms = int_like(&body, "start_time_ms", "startTimeMs")?;
    let end_time_ms = int_like(&body, "end_time_ms", "endTimeMs")?;
    let max_results = match int_like(&body, "max_results", "maxResults")? {
        None | Some(0) => TRACE_METRICS_DEFAULT,
        Some(n) if n > 0 => n as usize,
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "Invalid value {n} for parameter 'max_results' supplied. It must be a positive integer"
            )));
        }
    };
    validate_max_results(max_results, SEARCH_MAX_RESULTS_THRESHOLD)?;

    // validate_query_trace_metrics_params, in MLflow's order and words.
    let configs = metric_configs(view);
    let Some((_, allowed_aggs, allowed_dims)) = configs.iter().find(|(m, _, _)| *m == metric_name)
    else {
        let names: Vec<&str> = configs.iter().map(|(m, _, _)| *m).collect();
        return Err(ApiError::invalid(format!(
            "metric_name must be one of {}, got '{metric_name}'",
            py_list(&names)
        )));
    };
    check_supported(
        &aggregation_names,
        allowed_aggs,
        "aggregation_type(s)",
        "aggregation types",
    )?;
    check_supported(&dimensions, allowed_dims, "dimension(s)", "dimensions")?;
    if time_interval_seconds.is_some() && (start_time_ms.is_none() || end_time_ms.is_none()) {
        return Err(ApiError::invalid(
            "start_time_ms and end_time_ms are required if time_interval_seconds is set",
        ));
    }
    let mut parsed_filters = Vec::with_capacity(filters.len());
    for f in &filters {
        let parsed = parse_metric_filter(f)?;
        let span_only = matches!(
            parsed,
            MetricFilter::SpanName(_) | MetricFilter::SpanStatus(_) | MetricFilter::SpanType(_)
        );
        let assessment_only = matches!(
            parsed,
            MetricFilter::AssessmentName(_) | MetricFilter::AssessmentType(_)
        );
        if span_only && view != MetricView::Spans {
            return Err(ApiError::invalid(format!(
                "Filtering by span is only supported for SPANS view type, got {}",
                view_name(view)
            )));
        }
        if assessment_only && view != MetricView::Assessments {
            return Err(ApiError::invalid(format!(
                "Filtering by assessment is only supported for ASSESSMENTS view type, got {}",
                view_name(view)
            )));
        }
        parsed_filters.push(parsed);
    }
    let experiment_ids = readable_experiments(caller.as_ref(), experiment_ids).await?;

    let mut query = TraceMetricsQuery::new(experiment_ids, view, metric_name.clone(), aggregations);
    query.dimensions = dimensions;
    query.filters = parsed_filters;
    query.time_interval_seconds = time_interval_seconds;
    query.start_time_ms = start_time_ms;
    query.end_time_ms = end_time_ms;
    query.max_results = max_results;
    let points = store.query_trace_metrics(query).await?;
    let data_points: Vec<Value> = points
        .into_iter()
        .map(|p| {
            let dims: Map<String, Value> = p
                .dimensions
                .into_iter()
                .map(|(k, v)| {
                    let v = if k == "time_bucket" {
                        v.parse::<i64>().map(iso_utc).unwrap_or(v)
                    } else {
                        v
                    };
                    (k, Value::String(v))
                })
                .collect();
            let values: Map<String, Value> = p
                .values
                .into_iter()
                .map(|(k, v)| (k, proto_double(v)))
                .collect();
            json!({"metric_name": metric_name, "dimensions": dims, "values": values})
        })
        .collect();
    Ok(json(&json!({ "data_points": data_points })))
}

fn view_name(view: MetricView) -> &'static str {
    match view {
        MetricView::Traces => "TRACES",
        MetricView::Spans => "SPANS",
        _ => "ASSESSMENTS",
    }
}

/// ms since the epoch as Python's `datetime.fromtimestamp(s, tz=timezone.utc).isoformat()`
/// writes it (`2024-01-02T03:00:00+00:00`; microseconds only when not zero).
fn iso_utc(ms: i64) -> String {
    let t = timestamp(ms);
    let (date_time, millis) = (&t[..19], ms.rem_euclid(1000));
    if millis == 0 {
        format!("{date_time}+00:00")
    } else {
        format!("{date_time}.{:06}+00:00", millis * 1000)
    }
}

// ----- get-trace-artifact --------------------------------------------------------------------

/// An OTLP `AnyValue` in protobuf JSON as the plain value it holds.
fn plain_value(v: &Value) -> Value {
    let Some(m) = v.as_object() else {
        return Value::Null;
    };
    if let Some(s) = m.get("string_value") {
        return s.clone();
    }
    if let Some(b) = m.get("bool_value") {
        return b.clone();
    }
    if let Some(i) = m.get("int_value") {
        return match i {
            Value::String(s) => s.parse::<i64>().map(Value::from).unwrap_or(i.clone()),
            other => other.clone(),
        };
    }
    if let Some(d) = m.get("double_value") {
        return d.clone();
    }
    if let Some(a) = m.get("array_value") {
        return Value::Array(
            a.get("values")
                .and_then(Value::as_array)
                .map(|vs| vs.iter().map(plain_value).collect())
                .unwrap_or_default(),
        );
    }
    if let Some(l) = m.get("kvlist_value") {
        return Value::Object(plain_attributes(l.get("values")));
    }
    m.get("bytes_value").cloned().unwrap_or(Value::Null)
}

/// A protobuf JSON attribute list (`[{key, value}]`) as a map of plain values.
fn plain_attributes(v: Option<&Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for kv in v.and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
        if let Some(k) = kv.get("key").and_then(Value::as_str) {
            out.insert(
                k.to_string(),
                kv.get("value").map(plain_value).unwrap_or(Value::Null),
            );
        }
    }
    out
}

/// A stored span (OTel protobuf JSON) as MLflow's `Span.to_dict()` (what `traces.json` holds).
fn mlflow_span_dict(s: &Value) -> Value {
    let nanos = |k: &str| -> Value {
        match s.get(k) {
            Some(Value::String(t)) => t.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
            Some(other) => other.clone(),
            None => Value::Null,
        }
    };
    let events: Vec<Value> = s
        .get("events")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|e| {
            json!({
                "name": e.get("name").cloned().unwrap_or(Value::Null),
                "time_unix_nano": match e.get("time_unix_nano") {
                    Some(Value::String(t)) => t.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
                    Some(other) => other.clone(),
                    None => Value::Null,
                },
                "attributes": plain_attributes(e.get("attributes")),
            })
        })
        .collect();
    json!({
        "trace_id": s.get("trace_id").cloned().unwrap_or(Value::Null),
        "span_id": s.get("span_id").cloned().unwrap_or(Value::Null),
        "parent_span_id": s.get("parent_span_id").cloned().filter(|p| p.as_str().is_some_and(|p| !p.is_empty())).unwrap_or(Value::Null),
        "name": s.get("name").cloned().unwrap_or(Value::Null),
        "kind": s.get("kind").cloned().unwrap_or_else(|| "SPAN_KIND_INTERNAL".into()),
        "start_time_unix_nano": nanos("start_time_unix_nano"),
        "end_time_unix_nano": nanos("end_time_unix_nano"),
        "events": events,
        "status": {
            "code": s.pointer("/status/code").cloned().unwrap_or_else(|| "STATUS_CODE_UNSET".into()),
            "message": s.pointer("/status/message").cloned().unwrap_or_else(|| "".into()),
        },
        // MLflow's span form keeps attribute values JSON-encoded (`dump_span_attribute_value`).
        "attributes": plain_attributes(s.get("attributes"))
            .into_iter()
            .map(|(k, v)| (k, Value::String(v.to_string())))
            .collect::<Map<String, Value>>(),
        "links": [],
    })
}

/// `GET get-trace-artifact?request_id=&path=`.
#[derive(Deserialize)]
pub struct TraceArtifactRequest {
    request_id: Option<String>,
    path: Option<String>,
}
impl RequestSpec for TraceArtifactRequest {}

/// `GET /ajax-api/{2,3}.0/mlflow/get-trace-artifact`: the trace's span data as `traces.json`
/// (`{"spans": [...]}` in MLflow's span dict form, the UI's trace view), or with `path` one
/// attachment from `<trace artifact location>/attachments/<path>`.
pub async fn get_trace_artifact(
    State(state): State<AppState>,
    Wire(req): Wire<TraceArtifactRequest>,
) -> ApiResult<Response> {
    let store = traces(&state)?;
    let request_id = req
        .request_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::invalid("Request must include the \"request_id\" query parameter.")
        })?;
    if let Some(path) = req.path.as_deref().filter(|p| !p.is_empty()) {
        let path = super::artifacts::canonical_some(path)?;
        let info = store.get_trace_info(request_id).await?;
        let location = info.tags.get(ARTIFACT_LOCATION_TAG).ok_or_else(|| {
            ApiError::not_found(format!("Trace '{request_id}' has no artifact location"))
        })?;
        let resolved = state.artifacts().root(location)?;
        let full = resolved
            .join(Some(&format!("attachments/{path}")))
            .unwrap_or_default();
        return super::artifacts::send_file(&resolved.repository, &full, &path).await;
    }
    store.get_trace_info(request_id).await?;
    let spans: Vec<Value> = spans_json(store, request_id)
        .await?
        .iter()
        .map(mlflow_span_dict)
        .collect();
    let body = serde_json::to_vec(&json!({"spans": spans})).map_err(ApiError::internal)?;
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        header::HeaderValue::from_static("attachment; filename=traces.json"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

// ----- deprecated V2 StartTrace / EndTrace ---------------------------------------------------

/// A V2 `[{key, value}]` list (or a JSON object) as a map; blocked tags dropped when `tags`.
fn kv_list(
    v: Option<&Value>,
    what: &str,
    drop_blocked: bool,
) -> ApiResult<BTreeMap<String, String>> {
    let mut out = match v {
        Some(Value::Array(items)) => {
            let mut m = BTreeMap::new();
            for i in items {
                let k = i.get("key").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Invalid value for '{what}': every entry needs a 'key'"
                    ))
                })?;
                let v = match i.get("value") {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) => String::new(),
                    Some(other) => other.to_string(),
                };
                m.insert(k.to_string(), v);
            }
            m
        }
        other => string_map(other, what)?,
    };
    if drop_blocked {
        out.retain(|k, _| !BLOCKED_TAGS.contains(&k.as_str()));
        for v in out.values_mut() {
            truncate(v);
        }
    }
    Ok(out)
}

fn int_field(body: &Map<String, Value>, snake: &str, camel: &str) -> ApiResult<Option<i64>> {
    match get(body, snake, camel) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid value {v} for parameter '{snake}' supplied"
                ))
            }),
    }
}

/// `POST /api/2.0/mlflow/traces` (deprecated StartTrace): a new `IN_PROGRESS` trace.
pub async fn start_trace_v2(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let store = traces(&state)?;
    let body = json_body(req).await?;
    let experiment_id = str_field(&body, "experiment_id", "experimentId")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("experiment_id"))?
        .to_string();
    let timestamp = int_field(&body, "timestamp_ms", "timestampMs")?.unwrap_or_else(now_ms);
    let trace_id = format!("tr-{}", uuid::Uuid::new_v4().simple());
    let mut info = TraceInfo::new(trace_id, experiment_id, timestamp, TraceState::InProgress);
    info.trace_metadata = kv_list(
        get(&body, "request_metadata", "requestMetadata"),
        "request_metadata",
        false,
    )?
    .into();
    info.tags = kv_list(body.get("tags"), "tags", true)?.into();
    for k in info.tags.keys() {
        check_tag_key(k)?;
    }
    let stored = store.start_trace(info).await?;
    Ok(json(&json!({"trace_info": info_v2_json(&stored)})))
}

/// `PATCH /api/2.0/mlflow/traces/{request_id}` (deprecated EndTrace): the end time sets the
/// execution time; status, metadata and tags are merged in.
pub async fn end_trace_v2(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let store = traces(&state)?;
    let body = json_body(req).await?;
    let mut info = store.get_trace_info(&trace_id).await?;
    if let Some(end) = int_field(&body, "timestamp_ms", "timestampMs")? {
        info.execution_duration_ms = Some(end - info.request_time_ms);
    }
    if let Some(status) = str_field(&body, "status", "status") {
        info.state = match status {
            "TRACE_STATUS_UNSPECIFIED" => TraceState::StateUnspecified,
            other => TraceState::parse(other)
                .ok_or_else(|| ApiError::invalid(format!("Invalid trace status '{other}'")))?,
        };
    }
    let metadata = kv_list(
        get(&body, "request_metadata", "requestMetadata"),
        "request_metadata",
        false,
    )?;
    info.trace_metadata.extend(metadata);
    let tags = kv_list(body.get("tags"), "tags", true)?;
    for k in tags.keys() {
        check_tag_key(k)?;
    }
    info.tags.extend(tags);
    // Assessments are kept by the store's merge; writing them again is not needed.
    info.assessments.clear();
    let stored = store.start_trace(info).await?;
    Ok(json(&json!({"trace_info": info_v2_json(&stored)})))
}

// ----- OTLP ingest ----------------------------------------------------------------------------

/// OTLP protobuf messages (opentelemetry-proto `collector/trace/v1`, `trace/v1`, `common/v1`),
/// declared by hand: only what ingest reads.
pub mod otlp {
    #![allow(missing_docs)]
    use prost::Message;

    #[derive(Clone, PartialEq, Message)]
    pub struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }
    #[derive(Clone, PartialEq, Message)]
    pub struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
    }
    #[derive(Clone, PartialEq, Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, Message)]
    pub struct ScopeSpans {
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
    }
    #[derive(Clone, PartialEq, Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(string, tag = "3")]
        pub trace_state: String,
        #[prost(bytes = "vec", tag = "4")]
        pub parent_span_id: Vec<u8>,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(int32, tag = "6")]
        pub kind: i32,
        #[prost(fixed64, tag = "7")]
        pub start_time_unix_nano: u64,
        #[prost(fixed64, tag = "8")]
        pub end_time_unix_nano: u64,
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "10")]
        pub dropped_attributes_count: u32,
        #[prost(message, repeated, tag = "11")]
        pub events: Vec<Event>,
        #[prost(message, optional, tag = "15")]
        pub status: Option<Status>,
    }
    #[derive(Clone, PartialEq, Message)]
    pub struct Event {
        #[prost(fixed64, tag = "1")]
        pub time_unix_nano: u64,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, Message)]
    pub struct Status {
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(int32, tag = "3")]
        pub code: i32,
    }
    #[derive(Clone, PartialEq, Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }
    #[derive(Clone, PartialEq, Message)]
    pub struct AnyValue {
        #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<Value>,
    }
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(string, tag = "1")]
        StringValue(String),
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        #[prost(int64, tag = "3")]
        IntValue(i64),
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        #[prost(message, tag = "5")]
        ArrayValue(ArrayValue),
        #[prost(message, tag = "6")]
        KvlistValue(KeyValueList),
        #[prost(bytes = "vec", tag = "7")]
        BytesValue(Vec<u8>),
    }
    #[derive(Clone, PartialEq, Message)]
    pub struct ArrayValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }
    #[derive(Clone, PartialEq, Message)]
    pub struct KeyValueList {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An AnyValue in protobuf JSON (snake_case oneof names).
fn any_json(v: &otlp::AnyValue) -> Value {
    use otlp::Value as V;
    match &v.value {
        None => json!({}),
        Some(V::StringValue(s)) => json!({"string_value": s}),
        Some(V::BoolValue(b)) => json!({"bool_value": b}),
        Some(V::IntValue(i)) => json!({"int_value": i.to_string()}),
        Some(V::DoubleValue(d)) => json!({"double_value": d}),
        Some(V::ArrayValue(a)) => {
            json!({"array_value": {"values": a.values.iter().map(any_json).collect::<Vec<_>>()}})
        }
        Some(V::KvlistValue(l)) => json!({"kvlist_value": {"values": kvs_json(&l.values)}}),
        Some(V::BytesValue(b)) => json!({"bytes_value": b64(b)}),
    }
}

fn kvs_json(kvs: &[otlp::KeyValue]) -> Vec<Value> {
    kvs.iter()
        .map(|kv| {
            json!({"key": kv.key, "value": kv.value.as_ref().map(any_json).unwrap_or(json!({}))})
        })
        .collect()
}

const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];
const SPAN_KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];

/// One OTLP span as the store's record (its content: the span in protobuf JSON).
fn span_record(s: &otlp::Span) -> ApiResult<SpanRecord> {
    if s.trace_id.len() != 16 || s.span_id.len() != 8 {
        return Err(ApiError::invalid(
            "Invalid OTLP span: trace_id must be 16 bytes and span_id 8 bytes",
        ));
    }
    let trace_id = format!("tr-{}", hex(&s.trace_id));
    let code = s.status.as_ref().map_or(0, |st| st.code);
    let status = match code {
        1 => "OK",
        2 => "ERROR",
        _ => "UNSET",
    };
    let span_type = s
        .attributes
        .iter()
        .find(|kv| kv.key == "mlflow.spanType")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            otlp::Value::StringValue(v) => {
                Some(serde_json::from_str::<String>(v).unwrap_or_else(|_| v.clone()))
            }
            _ => None,
        });
    let mut attributes = kvs_json(&s.attributes);
    // MLflow's spans carry their MLflow trace id as an attribute; stored typed, as every OTLP
    // attribute (MLflow's span form JSON-encodes the value, see `mlflow_span_dict`).
    if !s
        .attributes
        .iter()
        .any(|kv| kv.key == "mlflow.traceRequestId")
    {
        attributes.push(json!({"key": "mlflow.traceRequestId",
            "value": {"string_value": trace_id}}));
    }
    let mut content = json!({
        "trace_id": b64(&s.trace_id),
        "span_id": b64(&s.span_id),
        "trace_state": s.trace_state,
        "name": s.name,
        "kind": SPAN_KINDS.get(s.kind as usize).copied().unwrap_or("SPAN_KIND_UNSPECIFIED"),
        "start_time_unix_nano": s.start_time_unix_nano.to_string(),
        "end_time_unix_nano": s.end_time_unix_nano.to_string(),
        "attributes": attributes,
        "events": s.events.iter().map(|e| json!({
            "time_unix_nano": e.time_unix_nano.to_string(),
            "name": e.name,
            "attributes": kvs_json(&e.attributes),
        })).collect::<Vec<_>>(),
        "status": {
            "code": STATUS_CODES.get(code as usize).copied().unwrap_or("STATUS_CODE_UNSET"),
            "message": s.status.as_ref().map(|st| st.message.clone()).unwrap_or_default(),
        },
    });
    if !s.parent_span_id.is_empty() {
        content["parent_span_id"] = b64(&s.parent_span_id).into();
    }
    let end = (s.end_time_unix_nano > 0).then_some(s.end_time_unix_nano as i64);
    Ok(SpanRecord::new(
        trace_id,
        hex(&s.span_id),
        (!s.parent_span_id.is_empty()).then(|| hex(&s.parent_span_id)),
        s.name.clone(),
        span_type,
        status,
        s.start_time_unix_nano as i64,
        end,
        content.to_string(),
    ))
}

/// OTLP/JSON (camelCase or snake_case names, hex ids, int64 as strings) as the protobuf message.
fn otlp_from_json(v: &Value) -> ApiResult<otlp::ExportTraceServiceRequest> {
    fn g<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
        v.get(camel).or_else(|| v.get(snake))
    }
    fn arr(v: Option<&Value>) -> &[Value] {
        v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
    }
    fn u64_of(v: Option<&Value>) -> u64 {
        match v {
            Some(Value::String(s)) => s.parse().unwrap_or(0),
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            _ => 0,
        }
    }
    fn id(v: Option<&Value>) -> ApiResult<Vec<u8>> {
        let s = v.and_then(Value::as_str).unwrap_or_default();
        if !s.len().is_multiple_of(2) {
            return Err(ApiError::invalid(format!("Invalid OTLP JSON id '{s}'")));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| ApiError::invalid(format!("Invalid OTLP JSON id '{s}'")))
    }
    fn any(v: &Value) -> otlp::AnyValue {
        use otlp::Value as V;
        let value = if let Some(s) = g(v, "stringValue", "string_value").and_then(Value::as_str) {
            Some(V::StringValue(s.into()))
        } else if let Some(b) = g(v, "boolValue", "bool_value").and_then(Value::as_bool) {
            Some(V::BoolValue(b))
        } else if let Some(i) = g(v, "intValue", "int_value") {
            Some(V::IntValue(match i {
                Value::String(s) => s.parse().unwrap_or(0),
                other => other.as_i64().unwrap_or(0),
            }))
        } else if let Some(d) = g(v, "doubleValue", "double_value").and_then(Value::as_f64) {
            Some(V::DoubleValue(d))
        } else if let Some(a) = g(v, "arrayValue", "array_value") {
            Some(V::ArrayValue(otlp::ArrayValue {
                values: arr(a.get("values")).iter().map(any).collect(),
            }))
        } else {
            g(v, "kvlistValue", "kvlist_value").map(|l| {
                V::KvlistValue(otlp::KeyValueList {
                    values: kvs(arr(l.get("values"))),
                })
            })
        };
        otlp::AnyValue { value }
    }
    fn kvs(items: &[Value]) -> Vec<otlp::KeyValue> {
        items
            .iter()
            .map(|kv| otlp::KeyValue {
                key: kv
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
                value: kv.get("value").map(any),
            })
            .collect()
    }
    fn code(v: Option<&Value>, names: &[&str]) -> i32 {
        match v {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0) as i32,
            Some(Value::String(s)) => names.iter().position(|n| n == s).unwrap_or(0) as i32,
            _ => 0,
        }
    }
    let mut out = otlp::ExportTraceServiceRequest::default();
    for rs in arr(g(v, "resourceSpans", "resource_spans")) {
        let mut scope_spans = Vec::new();
        for ss in arr(g(rs, "scopeSpans", "scope_spans")) {
            let mut spans = Vec::new();
            for s in arr(ss.get("spans")) {
                spans.push(otlp::Span {
                    trace_id: id(g(s, "traceId", "trace_id"))?,
                    span_id: id(g(s, "spanId", "span_id"))?,
                    trace_state: g(s, "traceState", "trace_state")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    parent_span_id: id(g(s, "parentSpanId", "parent_span_id"))?,
                    name: s
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    kind: code(s.get("kind"), &SPAN_KINDS),
                    start_time_unix_nano: u64_of(g(s, "startTimeUnixNano", "start_time_unix_nano")),
                    end_time_unix_nano: u64_of(g(s, "endTimeUnixNano", "end_time_unix_nano")),
                    attributes: kvs(arr(s.get("attributes"))),
                    dropped_attributes_count: 0,
                    events: arr(s.get("events"))
                        .iter()
                        .map(|e| otlp::Event {
                            time_unix_nano: u64_of(g(e, "timeUnixNano", "time_unix_nano")),
                            name: e
                                .get("name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .into(),
                            attributes: kvs(arr(e.get("attributes"))),
                        })
                        .collect(),
                    status: s.get("status").map(|st| otlp::Status {
                        message: st
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .into(),
                        code: code(st.get("code"), &STATUS_CODES),
                    }),
                });
            }
            scope_spans.push(otlp::ScopeSpans { spans });
        }
        out.resource_spans.push(otlp::ResourceSpans {
            resource: None,
            scope_spans,
        });
    }
    Ok(out)
}

fn otlp_error(status: StatusCode, detail: impl Into<String>) -> Response {
    // MLflow's OTLP route is FastAPI: errors are `{"detail": ...}`.
    let body = json!({"detail": detail.into()}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `POST /v1/traces`: OTLP/HTTP span ingest, protobuf or JSON, optionally gzip-compressed;
/// header `x-mlflow-experiment-id` names the experiment.
pub async fn otlp_ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match otlp_ingest_inner(&state, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn otlp_ingest_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let Some(experiment_id) = headers
        .get("x-mlflow-experiment-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
    else {
        return Ok(otlp_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Missing required header: x-mlflow-experiment-id",
        ));
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let is_json = match content_type.as_deref() {
        Some("application/x-protobuf") => false,
        Some("application/json") => true,
        other => {
            return Ok(otlp_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "Invalid Content-Type: {}. Expected: application/x-protobuf or application/json",
                    other.unwrap_or("None")
                ),
            ));
        }
    };
    let store = traces(state)?;
    let raw = read_body(body, TRACE_BODY_LIMIT).await?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let decoded =
        tokio::task::spawn_blocking(move || decode_otlp(&raw, encoding.as_deref(), is_json))
            .await
            .map_err(ApiError::internal)??;
    let request = match decoded {
        Ok(request) => request,
        Err(response) => return Ok(response),
    };
    let mut spans = Vec::new();
    for rs in &request.resource_spans {
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                spans.push(span_record(s)?);
            }
        }
    }
    if !spans.is_empty() {
        store.log_spans(experiment_id, spans).await?;
    }
    // An empty ExportTraceServiceResponse, in the request's encoding.
    let (ct, body): (&str, Vec<u8>) = if is_json {
        ("application/json", b"{}".to_vec())
    } else {
        ("application/x-protobuf", Vec::new())
    };
    Ok(([(header::CONTENT_TYPE, ct)], body).into_response())
}

/// An OTLP export request from its body: gunzipped (bounded) when `encoding` says so, then
/// decoded as JSON or protobuf. CPU work on up to [`TRACE_BODY_LIMIT`] bytes, so it runs off
/// the async executor. `Ok(Err(response))` is OTLP's own error answer.
fn decode_otlp(
    raw: &[u8],
    encoding: Option<&str>,
    is_json: bool,
) -> ApiResult<Result<otlp::ExportTraceServiceRequest, Response>> {
    let bytes: std::borrow::Cow<'_, [u8]> = match encoding {
        None | Some("") | Some("identity") => std::borrow::Cow::Borrowed(raw),
        Some("gzip") => {
            use std::io::Read as _;
            let mut out = Vec::new();
            let mut dec = flate2::read::GzDecoder::new(raw).take(TRACE_BODY_LIMIT as u64 + 1);
            if dec.read_to_end(&mut out).is_err() {
                return Ok(Err(otlp_error(
                    StatusCode::BAD_REQUEST,
                    "Failed to decompress gzip payload",
                )));
            }
            if out.len() > TRACE_BODY_LIMIT {
                return Err(super::wire::body_too_large(TRACE_BODY_LIMIT));
            }
            std::borrow::Cow::Owned(out)
        }
        Some(other) => {
            return Ok(Err(otlp_error(
                StatusCode::BAD_REQUEST,
                format!("Unsupported Content-Encoding: {other}"),
            )));
        }
    };
    let request = if is_json {
        let v: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => {
                return Ok(Err(otlp_error(
                    StatusCode::BAD_REQUEST,
                    "Invalid OpenTelemetry JSON payload",
                )));
            }
        };
        otlp_from_json(&v)?
    } else {
        match <otlp::ExportTraceServiceRequest as prost::Message>::decode(&bytes[..]) {
            Ok(r) => r,
            Err(_) => {
                return Ok(Err(otlp_error(
                    StatusCode::BAD_REQUEST,
                    "Invalid OpenTelemetry protobuf format",
                )));
            }
        }
    };
    Ok(Ok(request))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for ms in [0, 1, 999, 1_700_000_000_123, 951_782_400_000, -1] {
            let s = timestamp(ms);
            assert_eq!(parse_timestamp(&s), Some(ms), "{s}");
        }
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            parse_timestamp("2023-11-14T23:13:20.123456+01:00"),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_timestamp("2023-11-14"), None);
        assert_eq!(parse_duration("1.5s"), Some(1500));
        assert_eq!(duration(1500), "1.500s");
    }

    #[test]
    fn python_json_matches_json_dumps() {
        let v = json!({"a": [1, 2.5, true, null], "b": "é\"\n"});
        assert_eq!(
            python_json(&v),
            r#"{"a": [1, 2.5, true, null], "b": "\u00e9\"\n"}"#
        );
    }

    #[test]
    fn npmi_follows_mlflow() {
        let (n, s) = npmi_from_counts(1, 2, 2, 4);
        assert!(n.abs() < 1e-12, "{n}");
        assert!((-1.0..=1.0).contains(&s));
        assert_eq!(npmi_from_counts(0, 2, 2, 4).0, -1.0);
        assert_eq!(npmi_from_counts(4, 4, 4, 4).0, 1.0);
        assert!(npmi_from_counts(0, 0, 2, 4).0.is_nan());
        assert!(npmi_from_counts(1, 1, 1, 0).1.is_nan());
    }
}
