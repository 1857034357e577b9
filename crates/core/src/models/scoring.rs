//! MLflow's scoring protocol (api.md §7): `/ping`, `/health`, `/version` and `/invocations`.
//!
//! `/invocations` takes `application/json` (`dataframe_split`, `dataframe_records`,
//! `instances`, `inputs`, optional `params`), `text/csv` with a header row (a leading
//! unnamed index column, as pandas' `to_csv()` writes, is ignored) and
//! `application/vnd.apache.parquet` (as pandas' `to_parquet()` writes it). Parse and conversion
//! failures are 400 `BAD_REQUEST`; schema failures (the model's `InvalidArgument`) are 400
//! `INVALID_PARAMETER_VALUE`; other content types are 415 with a plain-text body. Tensor input
//! answers `{"predictions": {output: nested list}}`; table input answers records, one object
//! per row, as MLflow's `_get_jsonable_obj(orient="records")`, an output of one value per row
//! as that value (MLflow's ONNX flavor flattens each output into a column).
//!
//! Predictions go through a [`Batcher`] (micro-batching of small concurrent requests); every
//! answer is counted in [`Metrics`] (`GET /metrics`); a request slower than the timeout
//! answers 504 with MLflow's text.

use super::batch::Batcher;
use super::metrics::Metrics;
use crate::server::MLFLOW_COMPATIBLE_VERSION;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_plugin_api::ErrorKind;
use cairn_plugin_api::flavor::{
    Column, ColumnType, DType, ModelData, Params, Schema, Signature, Table, Tensor, TensorData,
};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FORMATS: &str = "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}";

/// The scoring server's routes for the model `batcher` predicts with; `metrics` are the
/// batcher's too.
pub fn router(
    batcher: Arc<Batcher>,
    metrics: Arc<Metrics>,
    body_limit: usize,
    timeout: Duration,
) -> Router {
    let state = Arc::new(Scorer { batcher, timeout });
    let render = metrics.clone();
    Router::new()
        .route("/ping", get(ping))
        .route("/health", get(ping))
        .route("/version", get(|| async { MLFLOW_COMPATIBLE_VERSION }))
        .route("/invocations", post(invocations))
        .with_state(state)
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    render.render(),
                )
            }),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(metrics, count))
}

struct Scorer {
    batcher: Arc<Batcher>,
    timeout: Duration,
}

/// Counts every answer by route and status (unmatched paths as one route), with its latency.
async fn count(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let response = next.run(request).await;
    metrics.request(&route, response.status().as_u16(), start.elapsed());
    response
}

async fn ping() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], "\n").into_response()
}

/// A failed request: MLflow's JSON error, or a plain-text one (415, 504).
#[derive(Debug)]
pub enum Failure {
    /// `{error_code, message}` with 400.
    Json(&'static str, String),
    /// A plain-text body with a status.
    Text(StatusCode, String),
    /// A whole MLflow JSON error body (a Python model's, as MLflow words it) with 400.
    Body(String),
}

fn bad(message: impl Into<String>) -> Failure {
    Failure::Json("BAD_REQUEST", message.into())
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure::Json("INVALID_PARAMETER_VALUE", message.into())
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Json(code, message) => write!(f, "{code}: {message}"),
            Failure::Text(_, text) | Failure::Body(text) => f.write_str(text),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Json(code, message) => (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::json!({"error_code": code, "message": message}).to_string(),
            )
                .into_response(),
            Failure::Body(body) => (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response(),
            Failure::Text(status, text) => (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                text,
            )
                .into_response(),
        }
    }
}

fn unsupported_type(ct: &str) -> Failure {
    Failure::Text(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "This predictor only supports the following content types: Types: ['text/csv', \
             'application/json', 'application/vnd.apache.parquet']. Got '{ct}'."
        ),
    )
}

/// The format a Content-Type names, checked as MLflow checks it (case-sensitive type; only
/// `charset=utf-8` as a parameter).
pub fn content_format(ct: Option<&str>) -> Result<&'static str, Failure> {
    let ct = ct.unwrap_or_default();
    let mut parts = ct.split(';');
    let base = parts.next().unwrap_or_default().trim();
    for p in parts {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        if k.trim() == "charset" {
            if !v.trim().eq_ignore_ascii_case("utf-8") {
                return Err(Failure::Text(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "The scoring server only supports UTF-8".into(),
                ));
            }
        } else {
            return Err(Failure::Text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Unrecognized content type parameters: {}", p.trim()),
            ));
        }
    }
    match base {
        "application/json" => Ok("json"),
        "text/csv" => Ok("csv"),
        "application/vnd.apache.parquet" => Ok("parquet"),
        _ => Err(unsupported_type(ct)),
    }
}

async fn invocations(
    State(scorer): State<Arc<Scorer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let format = match content_format(ct) {
        Ok(f) => f,
        Err(f) => return f.into_response(),
    };
    match tokio::time::timeout(scorer.timeout, score(&scorer.batcher, format, &body)).await {
        Err(_) => Failure::Text(
            StatusCode::GATEWAY_TIMEOUT,
            "Request processing time exceeded limit".into(),
        )
        .into_response(),
        Ok(Err(f)) => f.into_response(),
        Ok(Ok(predictions)) => json_ok(predictions),
    }
}

/// Scores a request body of `format` (`json`, `csv` or `parquet`): the `predictions` value,
/// or the failure MLflow answers.
pub async fn score(batcher: &Batcher, format: &str, body: &[u8]) -> Result<Value, Failure> {
    let python = batcher.model().capabilities().python_function;
    let mut signature = batcher.model().signature();
    if python && let Some(Schema::Columns(specs)) = &mut signature.inputs {
        // A Python model enforces its schema itself (MLflow's `_enforce_schema`, with MLflow's
        // words): a missing column is left for it to refuse.
        for spec in specs {
            spec.required = false;
        }
    }
    let (input, params) = match format {
        "json" => parse_json(body, &signature)?,
        "csv" => (parse_csv(body, &signature)?, Params::new()),
        _ => (parse_parquet(body, &signature)?, Params::new()),
    };
    if let ModelData::Table(t) = &input
        && t.rows() == 0
    {
        return Ok(Value::Array(vec![]));
    }
    let table_input = matches!(input, ModelData::Table(_));
    match batcher.predict(input, params).await {
        // A Python model's error, worded and coded by MLflow's own code in the worker.
        Err(e) if mlflow_body(&e).is_some() && mlflow_code(&e).is_some() => {
            Err(Failure::Body(mlflow_body(&e).unwrap_or_default()))
        }
        Err(e) if mlflow_code(&e).is_some() => Err(Failure::Json(
            mlflow_code(&e).unwrap_or("BAD_REQUEST"),
            e.message,
        )),
        Err(e) if e.kind == ErrorKind::InvalidArgument => Err(invalid(e.message)),
        Err(e) => Err(bad(format!(
            "Encountered an unexpected error while evaluating the model. Verify that the \
             serialized input Dataframe is compatible with the model for inference. {}",
            e.message
        ))),
        Ok(out) if python => Ok(python_predictions(out)),
        Ok(out) => Ok(predictions(out, table_input)),
    }
}

/// The MLflow error body (a JSON object) a model put in its error's context.
fn mlflow_body(e: &cairn_plugin_api::Error) -> Option<String> {
    let (_, body) = e
        .context
        .iter()
        .find(|(k, _)| k == cairn_plugin_api::flavor::MLFLOW_ERROR_BODY)?;
    serde_json::from_str::<Map<String, Value>>(body)
        .ok()
        .map(|_| body.clone())
}

/// The MLflow error code a model put in its error's context, if it is one answered with 400.
fn mlflow_code(e: &cairn_plugin_api::Error) -> Option<&'static str> {
    let code = e
        .context
        .iter()
        .find(|(k, _)| k == cairn_plugin_api::flavor::MLFLOW_ERROR_CODE)?;
    ["BAD_REQUEST", "INVALID_PARAMETER_VALUE"]
        .into_iter()
        .find(|c| *c == code.1)
}

fn json_ok(predictions: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "predictions": predictions }).to_string(),
    )
        .into_response()
}

// ----- requests -------------------------------------------------------------------------------

/// The model input and params of a JSON request.
pub fn parse_json(body: &[u8], signature: &Signature) -> Result<(ModelData, Params), Failure> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| bad("Invalid input. Ensure that input is a valid JSON formatted string."))?;
    let Value::Object(mut obj) = value else {
        let got = if value.is_array() {
            " Received a list."
        } else {
            ""
        };
        return Err(bad(format!(
            "The input must be a JSON dictionary with exactly one of the input fields {FORMATS}.{got}"
        )));
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Params::new(),
        Some(Value::Object(p)) => p.into_iter().collect(),
        Some(_) => return Err(bad("params must be a JSON dictionary")),
    };
    let keys: Vec<&str> = [
        "dataframe_split",
        "dataframe_records",
        "instances",
        "inputs",
    ]
    .into_iter()
    .filter(|k| obj.contains_key(*k))
    .collect();
    if keys.len() != 1 {
        return Err(bad(format!(
            "The input must be a JSON dictionary with exactly one of the input fields {FORMATS}. \
             Received dictionary with input fields: {:?}.",
            obj.keys().collect::<Vec<_>>()
        )));
    }
    let key = keys[0];
    let value = obj.remove(key).unwrap_or_default();
    let data = match key {
        "dataframe_split" => dataframe_split(value, signature)?,
        "dataframe_records" => dataframe_records(value, signature)?,
        "instances" => match value {
            Value::Array(items) if items.first().is_some_and(Value::is_object) => {
                named_tensors(columns_of_records(items)?, signature)?
            }
            other => unnamed_tensor(other, signature)?,
        },
        _ => match value {
            Value::Object(m) => named_tensor_values(m, signature)?,
            other => unnamed_tensor(other, signature)?,
        },
    };
    Ok((data, params))
}

fn dataframe_split(value: Value, signature: &Signature) -> Result<ModelData, Failure> {
    let Value::Object(mut m) = value else {
        return Err(bad("dataframe_split must be a JSON dictionary"));
    };
    if let Some(k) = m
        .keys()
        .find(|k| !["columns", "data", "index"].contains(&k.as_str()))
    {
        return Err(bad(format!("dataframe_split has an unknown field '{k}'")));
    }
    let Some(Value::Array(data)) = m.remove("data") else {
        return Err(bad("dataframe_split needs a 'data' list"));
    };
    let rows: Vec<Vec<Value>> = data
        .into_iter()
        .map(|r| match r {
            Value::Array(cells) => cells,
            scalar => vec![scalar],
        })
        .collect();
    let width = rows.first().map_or(0, Vec::len);
    let names: Vec<String> = match m.remove("columns") {
        Some(Value::Array(c)) => c
            .into_iter()
            .map(|c| match c {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        None | Some(Value::Null) => (0..width).map(|i| i.to_string()).collect(),
        Some(_) => return Err(bad("dataframe_split 'columns' must be a list")),
    };
    if rows.iter().any(|r| r.len() != names.len()) {
        return Err(bad(format!(
            "dataframe_split rows must each have {} values, one per column",
            names.len()
        )));
    }
    let mut columns: Vec<(String, Vec<Value>)> = names
        .into_iter()
        .map(|n| (n, Vec::with_capacity(rows.len())))
        .collect();
    for row in rows {
        for (c, v) in columns.iter_mut().zip(row) {
            c.1.push(v);
        }
    }
    json_table(columns, signature)
}

fn columns_of_records(items: Vec<Value>) -> Result<Vec<(String, Vec<Value>)>, Failure> {
    let mut columns: Vec<(String, Vec<Value>)> = Vec::new();
    let n = items.len();
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(record) = item else {
            return Err(bad("records must all be JSON dictionaries"));
        };
        for (k, v) in record {
            let col = match columns.iter().position(|(name, _)| *name == k) {
                Some(p) => &mut columns[p].1,
                None => {
                    columns.push((k, vec![Value::Null; i]));
                    &mut columns.last_mut().expect("just pushed").1
                }
            };
            col.resize(i, Value::Null);
            col.push(v);
        }
    }
    for (_, c) in &mut columns {
        c.resize(n, Value::Null);
    }
    Ok(columns)
}

fn dataframe_records(value: Value, signature: &Signature) -> Result<ModelData, Failure> {
    let Value::Array(items) = value else {
        return Err(bad("dataframe_records must be a list of records"));
    };
    json_table(columns_of_records(items)?, signature)
}

/// A table of JSON columns typed by the column signature (or inferred), missing values kept.
/// A JSON DataFrame's table: as [`table`], but a model whose signature is one tensor gets
/// every column as that tensor's type, as MLflow's `cast_df_types_according_to_schema` does.
fn json_table(
    columns: Vec<(String, Vec<Value>)>,
    signature: &Signature,
) -> Result<ModelData, Failure> {
    let dtype = match &signature.inputs {
        Some(Schema::Tensors(t)) if t.len() == 1 => Some(t[0].dtype),
        _ => return table(columns, signature),
    };
    let columns = columns
        .into_iter()
        .map(|(name, values)| {
            let data = convert(&values, dtype.unwrap_or(DType::Float64)).map_err(|v| {
                bad(format!(
                    "Incompatible input types for column {name}. Can not safely convert {v} \
                     to {dtype:?}."
                ))
            })?;
            let missing = values.iter().map(Value::is_null).collect();
            Column::new(name, data, Some(missing)).map_err(|e| bad(e.message))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Table::new(columns)
        .map(ModelData::Table)
        .map_err(|e| bad(e.message))
}

fn table(columns: Vec<(String, Vec<Value>)>, signature: &Signature) -> Result<ModelData, Failure> {
    let specs = match &signature.inputs {
        Some(Schema::Columns(specs)) if specs.iter().all(|s| s.name.is_some()) => Some(specs),
        _ => None,
    };
    let columns: Vec<(String, Vec<Value>, Option<ColumnType>)> = match specs {
        Some(specs) => {
            let mut by_name: BTreeMap<String, Vec<Value>> = columns.into_iter().collect();
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
            // Extra columns are ignored; columns are matched by name, in the signature's order.
            specs
                .iter()
                .filter_map(|s| {
                    let name = s.name.clone().unwrap_or_default();
                    by_name.remove(&name).map(|v| (name, v, s.column_type))
                })
                .collect()
        }
        None => columns.into_iter().map(|(n, v)| (n, v, None)).collect(),
    };
    let columns = columns
        .into_iter()
        .map(|(name, values, ty)| column(name, values, ty))
        .collect::<Result<Vec<_>, _>>()?;
    Table::new(columns)
        .map(ModelData::Table)
        .map_err(|e| bad(e.message))
}

fn column(name: String, values: Vec<Value>, ty: Option<ColumnType>) -> Result<Column, Failure> {
    let missing: Vec<bool> = values.iter().map(Value::is_null).collect();
    let present = || values.iter().filter(|v| !v.is_null());
    let ty = ty.unwrap_or_else(|| {
        if present().all(Value::is_boolean) && present().next().is_some() {
            ColumnType::Boolean
        } else if present().all(|v| v.is_i64() || v.is_u64()) && present().next().is_some() {
            ColumnType::Long
        } else if present().all(Value::is_number) {
            ColumnType::Double
        } else {
            ColumnType::String
        }
    });
    let data = convert(&values, ty.dtype()).map_err(|v| {
        bad(format!(
            "Incompatible input types for column {name}. Can not safely convert {v} to {ty:?}."
        ))
    })?;
    Column::new(name, data, Some(missing)).map_err(|e| bad(e.message))
}

/// JSON scalars as `dtype` elements (null as a placeholder); the first value that does not
/// convert is the error. Numeric strings, ints and bools convert to numbers, as MLflow does.
fn convert(values: &[Value], dtype: DType) -> Result<TensorData, Value> {
    fn num(v: &Value) -> Option<f64> {
        match v {
            Value::Null => Some(0.0),
            Value::Number(n) => n.as_f64(),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
    fn int(v: &Value) -> Option<i64> {
        match v {
            Value::Null => Some(0),
            Value::Number(n) => n.as_i64(),
            Value::Bool(b) => Some(i64::from(*b)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
    macro_rules! each {
        ($f:expr) => {
            values
                .iter()
                .map(|v| $f(v).ok_or_else(|| v.clone()))
                .collect::<Result<Vec<_>, _>>()?
        };
    }
    Ok(match dtype {
        DType::Float64 => TensorData::Float64(each!(num)),
        DType::Float32 => TensorData::Float32(each!(|v| num(v).map(|x| x as f32))),
        DType::Int64 => TensorData::Int64(each!(int)),
        DType::Int32 => TensorData::Int32(each!(|v| int(v).and_then(|x| i32::try_from(x).ok()))),
        DType::Bool => TensorData::Bool(each!(|v: &Value| match v {
            Value::Null => Some(false),
            other => other.as_bool(),
        })),
        DType::Bytes => TensorData::Bytes(each!(|v: &Value| match v {
            Value::Null => Some(vec![]),
            Value::String(s) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(s).ok()
            }
            _ => None,
        })),
        _ => TensorData::Str(each!(|v: &Value| match v {
            Value::Null => Some(String::new()),
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        })),
    })
}

fn tensor_specs(
    signature: &Signature,
) -> Result<Option<&[cairn_plugin_api::flavor::TensorSpec]>, Failure> {
    match &signature.inputs {
        Some(Schema::Tensors(t)) => Ok(Some(t)),
        Some(Schema::Columns(_)) => Err(invalid(
            "This model has a column-based signature; send a DataFrame (dataframe_split or \
             dataframe_records), not a tensor",
        )),
        None => Ok(None),
    }
}

fn unnamed_tensor(value: Value, signature: &Signature) -> Result<ModelData, Failure> {
    let specs = tensor_specs(signature)?;
    let spec = specs.and_then(|s| (s.len() == 1).then(|| &s[0]));
    let name = spec.and_then(|s| s.name.clone()).unwrap_or_default();
    let t = tensor(&name, value, spec.map(|s| s.dtype))?;
    Ok(ModelData::Tensors([(name, t)].into_iter().collect()))
}

fn named_tensors(
    values: Vec<(String, Vec<Value>)>,
    signature: &Signature,
) -> Result<ModelData, Failure> {
    named_tensor_values(
        values
            .into_iter()
            .map(|(k, v)| (k, Value::Array(v)))
            .collect(),
        signature,
    )
}

fn named_tensor_values(
    values: Map<String, Value>,
    signature: &Signature,
) -> Result<ModelData, Failure> {
    let specs = tensor_specs(signature)?;
    let mut out = BTreeMap::new();
    for (name, value) in values {
        let dtype = specs
            .and_then(|s| s.iter().find(|s| s.name.as_deref() == Some(name.as_str())))
            .map(|s| s.dtype);
        if specs.is_some() && dtype.is_none() {
            continue; // extra inputs are ignored, as MLflow's schema enforcement does
        }
        out.insert(name.clone(), tensor(&name, value, dtype)?);
    }
    Ok(ModelData::Tensors(out))
}

/// A nested JSON list as a tensor: its shape from the nesting (ragged is `BAD_REQUEST`), its
/// type `dtype` or inferred.
fn tensor(name: &str, value: Value, dtype: Option<DType>) -> Result<Tensor, Failure> {
    fn walk(
        v: Value,
        depth: usize,
        shape: &mut Vec<usize>,
        leaves: &mut Vec<Value>,
    ) -> Result<(), ()> {
        match v {
            Value::Array(items) => {
                if shape.len() == depth {
                    if !leaves.is_empty() {
                        return Err(()); // a list where a scalar was
                    }
                    shape.push(items.len());
                } else if shape.len() < depth || shape[depth] != items.len() {
                    return Err(());
                }
                for i in items {
                    walk(i, depth + 1, shape, leaves)?;
                }
                Ok(())
            }
            scalar => {
                if shape.len() != depth {
                    return Err(());
                }
                leaves.push(scalar);
                Ok(())
            }
        }
    }
    let mut shape = Vec::new();
    let mut leaves = Vec::new();
    walk(value, 0, &mut shape, &mut leaves).map_err(|()| {
        bad(format!(
            "input '{name}' is not a rectangular (non-ragged) list"
        ))
    })?;
    let dtype = dtype.unwrap_or_else(|| {
        if leaves.iter().all(Value::is_boolean) && !leaves.is_empty() {
            DType::Bool
        } else if leaves.iter().all(|v| v.is_i64() || v.is_u64()) {
            DType::Int64
        } else if leaves.iter().all(Value::is_number) {
            DType::Float64
        } else {
            DType::Str
        }
    });
    let data = convert(&leaves, dtype).map_err(|v| {
        bad(format!(
            "Can not safely convert {v} of input '{name}' to {dtype:?}."
        ))
    })?;
    Tensor::new(shape, data).map_err(|e| bad(e.message))
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
    let skip_index = header.first().is_some_and(String::is_empty);
    let names: Vec<String> = header.into_iter().skip(usize::from(skip_index)).collect();
    let mut columns: Vec<(String, Vec<Value>)> = names.into_iter().map(|n| (n, vec![])).collect();
    for line in lines {
        let cells = line?;
        let cells: Vec<String> = cells.into_iter().skip(usize::from(skip_index)).collect();
        if cells.len() != columns.len() {
            return Err(bad("Every CSV row needs one value per header column"));
        }
        for ((_, col), cell) in columns.iter_mut().zip(cells) {
            col.push(if cell.is_empty() {
                Value::Null
            } else if let Ok(i) = cell.parse::<i64>() {
                Value::from(i)
            } else if let Ok(f) = cell.parse::<f64>() {
                Value::from(f)
            } else {
                Value::String(cell)
            });
        }
    }
    table(columns, signature)
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
    let reader = SerializedFileReader::new(Bytes::copy_from_slice(body)).map_err(unreadable)?;
    let mut columns: Vec<(String, Vec<Value>)> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| (f.name().to_string(), Vec::new()))
        .collect();
    for row in reader.get_row_iter(None).map_err(unreadable)? {
        let row = row.map_err(unreadable)?;
        for ((_, column), (_, field)) in columns.iter_mut().zip(row.get_column_iter()) {
            column.push(field.to_json_value());
        }
    }
    columns.retain(|(name, _)| !(name.starts_with("__index_level_") && name.ends_with("__")));
    table(columns, signature)
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

// ----- responses ------------------------------------------------------------------------------

fn scalar(d: &TensorData, i: usize) -> Value {
    let f = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
    match d {
        TensorData::Bool(v) => Value::from(v[i]),
        TensorData::Int8(v) => Value::from(v[i]),
        TensorData::Int16(v) => Value::from(v[i]),
        TensorData::Int32(v) => Value::from(v[i]),
        TensorData::Int64(v) => Value::from(v[i]),
        TensorData::UInt8(v) => Value::from(v[i]),
        TensorData::UInt16(v) => Value::from(v[i]),
        TensorData::UInt32(v) => Value::from(v[i]),
        TensorData::UInt64(v) => Value::from(v[i]),
        TensorData::Float32(v) => f(f64::from(v[i])),
        TensorData::Float64(v) => f(v[i]),
        TensorData::Str(v) => Value::from(v[i].clone()),
        TensorData::Bytes(v) => {
            use base64::Engine;
            Value::from(base64::engine::general_purpose::STANDARD.encode(&v[i]))
        }
        // Half floats and future types: as their bit patterns are not numbers, say so.
        _ => Value::Null,
    }
}

/// Elements `start..` of `data` nested as `shape`.
fn nested(data: &TensorData, shape: &[usize], start: usize) -> Value {
    match shape.split_first() {
        None => scalar(data, start),
        Some((n, rest)) => {
            let stride: usize = rest.iter().product();
            Value::Array(
                (0..*n)
                    .map(|i| nested(data, rest, start + i * stride))
                    .collect(),
            )
        }
    }
}

/// The `predictions` value of a Python model's output, as MLflow's `predictions_to_json`
/// renders the return value: a DataFrame (table) as records, the unnamed tensor (an ndarray,
/// list or scalar) as its nested list, a dict (named tensors) as an object of nested lists.
pub fn python_predictions(out: ModelData) -> Value {
    match out {
        ModelData::Tensors(m) if m.len() == 1 && m.contains_key("") => {
            let t = &m[""];
            nested(t.data(), t.shape(), 0)
        }
        other => predictions(other, false),
    }
}

/// The `predictions` value of a model output.
pub fn predictions(out: ModelData, table_input: bool) -> Value {
    match out {
        ModelData::Tensors(m) if table_input => {
            // A DataFrame of the outputs, as records: one object per row.
            let rows = m
                .values()
                .next()
                .and_then(|t| t.shape().first().copied())
                .unwrap_or(0);
            (0..rows)
                .map(|r| {
                    Value::Object(
                        m.iter()
                            .map(|(name, t)| {
                                let rest = &t.shape()[1.min(t.shape().len())..];
                                let stride: usize = rest.iter().product();
                                // One value per row is that value, as MLflow's column.
                                let rest = if stride == 1 { &[][..] } else { rest };
                                (name.clone(), nested(t.data(), rest, r * stride))
                            })
                            .collect(),
                    )
                })
                .collect()
        }
        ModelData::Tensors(m) => Value::Object(
            m.iter()
                .map(|(name, t)| (name.clone(), nested(t.data(), t.shape(), 0)))
                .collect(),
        ),
        ModelData::Table(t) => (0..t.rows())
            .map(|r| {
                Value::Object(
                    t.columns()
                        .iter()
                        .map(|c| {
                            let v = if c.is_missing(r) {
                                Value::Null
                            } else {
                                scalar(c.values(), r)
                            };
                            (c.name().to_string(), v)
                        })
                        .collect(),
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_checked_as_mlflow_checks_them() {
        assert_eq!(content_format(Some("application/json")).unwrap(), "json");
        assert_eq!(
            content_format(Some("application/json; charset=UTF-8")).unwrap(),
            "json"
        );
        assert_eq!(content_format(Some("text/csv")).unwrap(), "csv");
        for ct in [
            None,
            Some("Application/JSON"),
            Some("text/plain"),
            Some("application/json; foo=bar"),
            Some("application/json; charset=latin-1"),
        ] {
            assert!(
                matches!(
                    content_format(ct),
                    Err(Failure::Text(StatusCode::UNSUPPORTED_MEDIA_TYPE, _))
                ),
                "{ct:?}"
            );
        }
    }

    #[test]
    fn tensors_nest_and_ragged_lists_are_bad_requests() {
        let t = tensor("x", serde_json::json!([[1, 2], [3, 4], [5, 6]]), None).unwrap();
        assert_eq!(t.shape(), &[3, 2]);
        assert_eq!(
            nested(t.data(), t.shape(), 0),
            serde_json::json!([[1, 2], [3, 4], [5, 6]])
        );
        assert!(matches!(
            tensor("x", serde_json::json!([[1, 2], [3]]), None),
            Err(Failure::Json("BAD_REQUEST", _))
        ));
        assert!(matches!(
            tensor("x", serde_json::json!([[1, 2], 3]), None),
            Err(Failure::Json("BAD_REQUEST", _))
        ));
        let f = tensor("x", serde_json::json!(["1.5", 2]), Some(DType::Float32)).unwrap();
        assert_eq!(f.data(), &TensorData::Float32(vec![1.5, 2.0]));
        assert!(tensor("x", serde_json::json!(["abc"]), Some(DType::Float32)).is_err());
    }

    use crate::models::batch::Batcher;
    use crate::models::metrics::Metrics;
    use axum::body::Body;
    use cairn_plugin_api::flavor::ModelCapabilities;
    use cairn_plugin_api::{LoadedModel, async_trait};
    use std::sync::Mutex;
    use tower::ServiceExt;

    /// A batchable model answering `y = 2x`; it records the rows of every call and waits for
    /// the test to open `gate` before answering.
    struct Gated {
        calls: Mutex<Vec<usize>>,
        gate: tokio::sync::Semaphore,
    }

    #[async_trait]
    impl LoadedModel for Gated {
        fn signature(&self) -> Signature {
            Signature::default()
        }
        fn capabilities(&self) -> ModelCapabilities {
            ModelCapabilities::new(true, true, false)
        }
        async fn predict(
            &self,
            input: ModelData,
            _: Params,
        ) -> cairn_plugin_api::Result<ModelData> {
            let ModelData::Tensors(m) = input else {
                unreachable!()
            };
            let x = &m["x"];
            self.calls.lock().unwrap().push(x.shape()[0]);
            self.gate.acquire().await.unwrap().forget();
            let TensorData::Float64(v) = x.data() else {
                unreachable!()
            };
            let y = TensorData::Float64(v.iter().map(|v| v * 2.0).collect());
            Ok(ModelData::Tensors(
                [("y".to_string(), Tensor::new(x.shape().to_vec(), y)?)].into(),
            ))
        }
    }

    async fn call(app: &Router, method: &str, path: &str, body: &str) -> (StatusCode, String) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// Waits (without a deadline) until `ready` holds, letting other tasks run.
    async fn until(ready: impl Fn() -> bool) {
        while !ready() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn concurrent_small_requests_are_merged_into_one_call_and_routed_back() {
        let model = Arc::new(Gated {
            calls: Mutex::default(),
            gate: tokio::sync::Semaphore::new(0),
        });
        let metrics = Arc::new(Metrics::default());
        let batcher = Batcher::new(model.clone(), metrics.clone(), 1);
        let app = router(
            Arc::new(batcher),
            metrics.clone(),
            1 << 20,
            Duration::from_secs(600),
        );
        let send = |k: usize| {
            let app = app.clone();
            tokio::spawn(async move {
                let body = format!("{{\"inputs\": {{\"x\": [[{k}.0]]}}}}");
                call(&app, "POST", "/invocations", &body).await
            })
        };
        // The first request occupies the only inference slot ...
        let first = send(1);
        until(|| model.calls.lock().unwrap().len() == 1).await;
        // ... while five more arrive and queue.
        let rest: Vec<_> = (2..=6).map(send).collect();
        until(|| metrics.queue_depth() == 5).await;
        model.gate.add_permits(100);
        for (k, task) in std::iter::once(first).chain(rest).enumerate() {
            let (status, body) = task.await.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            let want = serde_json::json!({"predictions": {"y": [[2.0 * (k + 1) as f64]]}});
            assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), want);
        }
        assert_eq!(*model.calls.lock().unwrap(), [1, 5]);
        let (_, text) = call(&app, "GET", "/metrics", "").await;
        for line in [
            "cairn_models_batch_requests_bucket{le=\"1\"} 1",
            "cairn_models_batch_requests_bucket{le=\"4\"} 1",
            "cairn_models_batch_requests_bucket{le=\"8\"} 2",
            "cairn_models_batch_requests_sum 6",
            "cairn_models_requests_total{route=\"/invocations\",status=\"200\"} 6",
            "cairn_models_queued_requests 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[tokio::test]
    async fn a_request_slower_than_the_timeout_answers_504_as_mlflow() {
        let model = Arc::new(Gated {
            calls: Mutex::default(),
            gate: tokio::sync::Semaphore::new(0), // never opened: the call never ends
        });
        let metrics = Arc::new(Metrics::default());
        let batcher = Batcher::direct(model, metrics.clone());
        let app = router(
            Arc::new(batcher),
            metrics,
            1 << 20,
            Duration::from_millis(1),
        );
        let (status, body) = call(
            &app,
            "POST",
            "/invocations",
            r#"{"inputs": {"x": [[1.0]]}}"#,
        )
        .await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(body, "Request processing time exceeded limit");
        let (status, text) = call(&app, "GET", "/metrics", "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains("cairn_models_requests_total{route=\"/invocations\",status=\"504\"} 1"),
            "{text}"
        );
        let (_, text) = call(&app, "GET", "/nowhere", "").await;
        assert!(text.is_empty());
        let (_, text) = call(&app, "GET", "/metrics", "").await;
        assert!(
            text.contains("cairn_models_requests_total{route=\"unmatched\",status=\"404\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn table_input_answers_one_value_per_row_as_a_scalar() {
        let out = ModelData::Tensors(
            [
                (
                    "v".to_string(),
                    Tensor::new(vec![2, 1], TensorData::Float32(vec![0.5, 1.5])).unwrap(),
                ),
                (
                    "p".to_string(),
                    Tensor::new(vec![2, 2], TensorData::Int64(vec![1, 2, 3, 4])).unwrap(),
                ),
            ]
            .into(),
        );
        assert_eq!(
            predictions(out, true),
            serde_json::json!([{"p": [1, 2], "v": 0.5}, {"p": [3, 4], "v": 1.5}])
        );
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
    }
}
