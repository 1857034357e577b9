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
use super::request::{parse_csv, parse_json, parse_parquet};
use crate::server::MLFLOW_COMPATIBLE_VERSION;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_plugin_api::ErrorKind;
use cairn_plugin_api::flavor::{ModelData, Params, Tensor, TensorData};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

pub(crate) fn bad(message: impl Into<String>) -> Failure {
    Failure::Json("BAD_REQUEST", message.into())
}

pub(crate) fn invalid(message: impl Into<String>) -> Failure {
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
pub async fn score(batcher: &Batcher, format: &str, body: &[u8]) -> Result<Predictions, Failure> {
    let python = batcher.python();
    let signature = batcher.signature();
    let (input, params) = match format {
        "json" => parse_json(body, signature)?,
        "csv" => (parse_csv(body, signature)?, Params::new()),
        _ => (parse_parquet(body, signature)?, Params::new()),
    };
    if let ModelData::Table(t) = &input
        && t.rows() == 0
    {
        return Ok(Predictions::Value(Value::Array(vec![])));
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
        Ok(out) if python => Ok(Predictions::Body(super::pyjson::predictions_body(&out))),
        Ok(out) => Ok(Predictions::of(out, table_input)),
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

fn json_ok(predictions: Predictions) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        predictions.into_body(),
    )
        .into_response()
}

// ----- responses ------------------------------------------------------------------------------

/// The `predictions` of a request, written as JSON straight from the model's output (no
/// `serde_json::Value` tree of it is built): the same text as [`predictions`]' value.
pub enum Predictions {
    /// Already a value (a Python model's output, an empty table).
    Value(Value),
    /// Tensor output: `{output: nested list}`.
    Tensors(BTreeMap<String, Tensor>),
    /// Tensor output of table input: records, one object per row (see [`predictions`]).
    Records(BTreeMap<String, Tensor>),
    /// The whole body, already written (a Python model's, as MLflow's `predictions_to_json`
    /// writes it: [`super::pyjson`]).
    Body(String),
}

impl Predictions {
    /// The predictions of the model output `out` (`table_input`: the request was a table).
    pub fn of(out: ModelData, table_input: bool) -> Predictions {
        match out {
            ModelData::Tensors(m) if table_input => Predictions::Records(m),
            ModelData::Tensors(m) => Predictions::Tensors(m),
            table => Predictions::Value(predictions(table, table_input)),
        }
    }

    /// `{"predictions": ...}` as JSON text.
    pub fn into_body(self) -> Vec<u8> {
        if let Predictions::Body(body) = self {
            return body.into_bytes();
        }
        #[derive(serde::Serialize)]
        struct Body<'a> {
            predictions: &'a Predictions,
        }
        // Writing to a Vec cannot fail, and every value here is serializable.
        serde_json::to_vec(&Body { predictions: &self }).unwrap_or_default()
    }
}

impl Serialize for Predictions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Predictions::Value(v) => v.serialize(s),
            Predictions::Body(_) => Err(serde::ser::Error::custom(
                "a whole answer body is not a predictions value",
            )),
            Predictions::Tensors(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (name, t) in m {
                    map.serialize_entry(name, &Nested(t.data(), t.shape(), 0))?;
                }
                map.end()
            }
            Predictions::Records(m) => {
                let rows = m
                    .values()
                    .next()
                    .and_then(|t| t.shape().first().copied())
                    .unwrap_or(0);
                let mut seq = s.serialize_seq(Some(rows))?;
                for r in 0..rows {
                    seq.serialize_element(&Record(m, r))?;
                }
                seq.end()
            }
        }
    }
}

/// Row `.1` of tensor outputs as one record (as [`predictions`] with table input).
struct Record<'a>(&'a BTreeMap<String, Tensor>, usize);

impl Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, t) in self.0 {
            let rest = &t.shape()[1.min(t.shape().len())..];
            let stride: usize = rest.iter().product();
            // One value per row is that value, as MLflow's column.
            let rest = if stride == 1 { &[][..] } else { rest };
            map.serialize_entry(name, &Nested(t.data(), rest, self.1 * stride))?;
        }
        map.end()
    }
}

/// Elements `.2..` of `.0` nested as `.1` (as [`nested`]).
struct Nested<'a>(&'a TensorData, &'a [usize], usize);

impl Serialize for Nested<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Nested(data, shape, start) = *self;
        let Some((n, rest)) = shape.split_first() else {
            return Scalar(data, start).serialize(s);
        };
        let stride: usize = rest.iter().product();
        let mut seq = s.serialize_seq(Some(*n))?;
        if rest.is_empty() {
            for i in 0..*n {
                seq.serialize_element(&Scalar(data, start + i))?;
            }
        } else {
            for i in 0..*n {
                seq.serialize_element(&Nested(data, rest, start + i * stride))?;
            }
        }
        seq.end()
    }
}

/// Element `.1` of `.0` (as [`scalar`]).
struct Scalar<'a>(&'a TensorData, usize);

impl Serialize for Scalar<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Scalar(d, i) = *self;
        // Non-finite floats are `null`, as `serde_json::Number::from_f64` makes them.
        fn f<S: Serializer>(s: S, x: f64) -> Result<S::Ok, S::Error> {
            if x.is_finite() {
                s.serialize_f64(x)
            } else {
                s.serialize_unit()
            }
        }
        match d {
            TensorData::Bool(v) => s.serialize_bool(v[i]),
            TensorData::Int8(v) => s.serialize_i64(v[i].into()),
            TensorData::Int16(v) => s.serialize_i64(v[i].into()),
            TensorData::Int32(v) => s.serialize_i64(v[i].into()),
            TensorData::Int64(v) => s.serialize_i64(v[i]),
            TensorData::UInt8(v) => s.serialize_u64(v[i].into()),
            TensorData::UInt16(v) => s.serialize_u64(v[i].into()),
            TensorData::UInt32(v) => s.serialize_u64(v[i].into()),
            TensorData::UInt64(v) => s.serialize_u64(v[i]),
            TensorData::Float32(v) => f(s, f64::from(v[i])),
            TensorData::Float64(v) => f(s, v[i]),
            TensorData::Str(v) => s.serialize_str(&v[i]),
            TensorData::Bytes(v) => {
                use base64::Engine;
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&v[i]))
            }
            TensorData::Json(v) => match serde_json::from_str::<Value>(&v[i]) {
                Ok(x) => x.serialize(s),
                Err(_) => s.serialize_unit(),
            },
            _ => s.serialize_unit(),
        }
    }
}

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
        TensorData::Json(v) => serde_json::from_str(&v[i]).unwrap_or(Value::Null),
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

    use crate::models::batch::Batcher;
    use crate::models::metrics::Metrics;
    use axum::body::Body;
    use cairn_plugin_api::flavor::{ModelCapabilities, Signature, Tensor};
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
    fn predictions_are_written_as_the_value_tree_would_be() {
        let t = |shape: Vec<usize>, data| Tensor::new(shape, data).unwrap();
        let outputs = [
            (
                "f",
                t(
                    vec![2, 3],
                    TensorData::Float32(vec![0.1, f32::NAN, 1.0, -2.5, f32::INFINITY, 3e-7]),
                ),
            ),
            ("d", t(vec![2], TensorData::Float64(vec![1.0 / 3.0, 1e300]))),
            ("i", t(vec![2, 1], TensorData::Int64(vec![-1, i64::MAX]))),
            (
                "u",
                t(vec![2, 2, 1], TensorData::UInt64(vec![u64::MAX, 0, 7, 8])),
            ),
            ("b", t(vec![2], TensorData::Bool(vec![true, false]))),
            (
                "s",
                t(vec![2], TensorData::Str(vec!["a\"b".into(), "é".into()])),
            ),
            (
                "x",
                t(vec![2], TensorData::Bytes(vec![vec![0, 255], vec![]])),
            ),
            ("e", t(vec![2, 0], TensorData::Int32(vec![]))),
        ];
        let out = || {
            ModelData::Tensors(
                outputs
                    .iter()
                    .map(|(n, t)| (n.to_string(), t.clone()))
                    .collect(),
            )
        };
        for table_input in [false, true] {
            let tree = serde_json::json!({ "predictions": predictions(out(), table_input) });
            let body = Predictions::of(out(), table_input).into_body();
            assert_eq!(String::from_utf8(body).unwrap(), tree.to_string());
        }
        let scalar =
            ModelData::Tensors([("".to_string(), t(vec![], TensorData::Int8(vec![5])))].into());
        let tree = serde_json::json!({ "predictions": predictions(scalar.clone(), false) });
        assert_eq!(
            Predictions::of(scalar, false).into_body(),
            tree.to_string().into_bytes()
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
}
