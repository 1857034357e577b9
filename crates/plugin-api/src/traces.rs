//! The trace part of the tracking-store contract (MLflow 3 tracing, api.md §1.5).
//!
//! MLflow counterpart: the trace methods of `mlflow.store.tracking.abstract_store.AbstractStore`
//! (`start_trace`, `log_spans`, `get_trace_info`, `get_trace`, `search_traces`,
//! `delete_traces`, `set_trace_tag`, `delete_trace_tag`, `link_traces_to_run`, assessments).
//!
//! A tracking store that keeps traces answers [`TrackingStore::trace_store`](crate::TrackingStore::trace_store)
//! with `Some`; the default is `None` and the host then answers every trace endpoint with
//! `NOT_IMPLEMENTED`. The trace methods do not cross the plugin ABI (yet): a dynamic plugin's
//! store is always without traces, and plugins built before traces existed keep loading (the
//! ABI's schema hash is unchanged).
//!
//! Rules every implementation follows (the conformance suite in `testkit` checks them):
//! - Trace ids are `tr-` and 32 lowercase hex characters (the OTel trace id); span ids are 16
//!   lowercase hex characters.
//! - Spans are stored with the trace (as MLflow's SQL store does with
//!   `mlflow.trace.spansLocation = TRACKING_STORE`): [`TraceStore::start_trace`] sets that tag
//!   and the client then never uploads span data to the artifact store.
//! - [`TraceStore::log_spans`] creates the trace if it does not exist yet (state
//!   `IN_PROGRESS` until a root span arrives, then the root span's status), and replaces a span
//!   logged again with the same id; [`TraceStore::start_trace`] then writes the final info over
//!   it, keeping the spans, and merges tags, metadata and assessments.
//! - Host-side checks (tag key/value limits, immutable `mlflow.trace.*` keys, the number of
//!   ids in one request) are made before a call reaches the store.
//! - Every write is atomic; reads are bounded (spans come a page at a time).

use crate::Result;
use crate::search::{Expr, OrderBy};
use crate::tracking::Page;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Tag set by the store on every trace: where the spans are (`TRACKING_STORE`).
pub const SPANS_LOCATION_TAG: &str = "mlflow.trace.spansLocation";
/// The value of [`SPANS_LOCATION_TAG`] for spans kept in the store.
pub const SPANS_IN_TRACKING_STORE: &str = "TRACKING_STORE";
/// Tag holding the trace's artifact location (attachments go there).
pub const ARTIFACT_LOCATION_TAG: &str = "mlflow.artifactLocation";
/// Tag holding the trace's name.
pub const TRACE_NAME_TAG: &str = "mlflow.traceName";
/// Metadata key naming the run a trace belongs to.
pub const SOURCE_RUN_METADATA: &str = "mlflow.sourceRun";

/// The state of a trace (`TraceInfoV3.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum TraceState {
    /// Not given.
    #[default]
    StateUnspecified,
    /// Finished without error.
    Ok,
    /// Finished with an error.
    Error,
    /// Still running (spans logged, no root span yet).
    InProgress,
}

impl TraceState {
    /// The wire name (`OK`, `ERROR`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TraceState::StateUnspecified => "STATE_UNSPECIFIED",
            TraceState::Ok => "OK",
            TraceState::Error => "ERROR",
            TraceState::InProgress => "IN_PROGRESS",
        }
    }

    /// Parses a wire name; `None` if unknown.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "STATE_UNSPECIFIED" => TraceState::StateUnspecified,
            "OK" => TraceState::Ok,
            "ERROR" => TraceState::Error,
            "IN_PROGRESS" => TraceState::InProgress,
            _ => return None,
        })
    }
}

/// An assessment (feedback or expectation) of a trace. The store keeps its whole body (the
/// `mlflow.assessments.Assessment` message as JSON: source, feedback/expectation, rationale,
/// metadata, span_id, overrides, valid, times) and indexes the fields below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Assessment {
    /// `a-` and 32 hex characters.
    pub assessment_id: String,
    /// The trace it belongs to.
    pub trace_id: String,
    /// Its name.
    pub name: String,
    /// ms since the epoch.
    pub create_time_ms: i64,
    /// ms since the epoch.
    pub last_update_time_ms: i64,
    /// The whole message, JSON (snake_case field names).
    pub body: serde_json::Value,
}

impl Assessment {
    /// An assessment with every field given.
    pub fn new(
        assessment_id: impl Into<String>,
        trace_id: impl Into<String>,
        name: impl Into<String>,
        create_time_ms: i64,
        last_update_time_ms: i64,
        body: serde_json::Value,
    ) -> Self {
        Assessment {
            assessment_id: assessment_id.into(),
            trace_id: trace_id.into(),
            name: name.into(),
            create_time_ms,
            last_update_time_ms,
            body,
        }
    }
}

/// A trace's metadata (`TraceInfoV3`), without its spans.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TraceInfo {
    /// `tr-<32 hex>`.
    pub trace_id: String,
    /// The client's own id for the request, if any.
    pub client_request_id: Option<String>,
    /// The experiment the trace belongs to.
    pub experiment_id: String,
    /// Start, ms since the epoch.
    pub request_time_ms: i64,
    /// Duration in ms, when known.
    pub execution_duration_ms: Option<i64>,
    /// State.
    pub state: TraceState,
    /// Preview of the request (truncated by the client).
    pub request_preview: Option<String>,
    /// Preview of the response.
    pub response_preview: Option<String>,
    /// Request metadata (immutable after the trace is written).
    pub trace_metadata: StringMap,
    /// Tags (mutable).
    pub tags: StringMap,
    /// Assessments, by creation time.
    pub assessments: Vec<Assessment>,
}

impl TraceInfo {
    /// An info for `trace_id` in `experiment_id` starting at `request_time_ms`.
    pub fn new(
        trace_id: impl Into<String>,
        experiment_id: impl Into<String>,
        request_time_ms: i64,
        state: TraceState,
    ) -> Self {
        TraceInfo {
            trace_id: trace_id.into(),
            experiment_id: experiment_id.into(),
            request_time_ms,
            state,
            ..Default::default()
        }
    }
}

/// A trace's tags or metadata: a map of strings that a store may hand over as the text of its
/// JSON object, to be written out as it is.
///
/// A page of a trace search carries hundreds of entries, and building a `BTreeMap` of them only
/// to write them out again was most of the search's work. A store that keeps each trace's
/// entries as a JSON object ([`from_json`](Self::from_json)) hands over that text, and the
/// server copies it into its answer ([`write_json`](Self::write_json)). Everything else uses
/// the map: a `StringMap` dereferences to a `BTreeMap<String, String>`, parsed from the text the
/// first time it is read (once); a mutable borrow makes the map its value and drops the text.
///
/// Equality is the maps' equality, whatever the form.
#[derive(Clone, Default)]
pub struct StringMap(StringMapForm);

#[derive(Clone)]
enum StringMapForm {
    Map(BTreeMap<String, String>),
    /// A JSON object of strings, and the map parsed from it, once read.
    Json(Box<str>, OnceLock<BTreeMap<String, String>>),
}

impl Default for StringMapForm {
    fn default() -> Self {
        StringMapForm::Map(BTreeMap::new())
    }
}

fn parse_json_map(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_else(|e| {
        panic!("a stored map of strings is not a JSON object of strings ({e}): {text}")
    })
}

impl StringMap {
    /// An empty map.
    pub fn new() -> Self {
        StringMap::default()
    }

    /// The map whose JSON object is `text`, as a store keeps it (SQLite's `json_group_object`
    /// of a trace's entries, say): a JSON object whose values are all strings, a key at most
    /// once. It is not parsed here; it goes into answers as it is, and is parsed when the map is
    /// first read. Reading a map whose text is not such an object panics, naming the text.
    pub fn from_json(text: impl Into<Box<str>>) -> Self {
        StringMap(StringMapForm::Json(text.into(), OnceLock::new()))
    }

    /// Appends the map as a JSON object to `out`: the text a store wrote, or the map
    /// serialised.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match &self.0 {
            StringMapForm::Json(text, _) => out.extend_from_slice(text.as_bytes()),
            StringMapForm::Map(m) => {
                serde_json::to_writer(out, m).expect("a map of strings is always JSON")
            }
        }
    }
}

impl std::ops::Deref for StringMap {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        match &self.0 {
            StringMapForm::Map(m) => m,
            StringMapForm::Json(text, parsed) => parsed.get_or_init(|| parse_json_map(text)),
        }
    }
}

impl std::ops::DerefMut for StringMap {
    fn deref_mut(&mut self) -> &mut Self::Target {
        if let StringMapForm::Json(text, parsed) = &mut self.0 {
            let map = parsed.take().unwrap_or_else(|| parse_json_map(text));
            self.0 = StringMapForm::Map(map);
        }
        match &mut self.0 {
            StringMapForm::Map(m) => m,
            StringMapForm::Json(..) => unreachable!("made a map above"),
        }
    }
}

impl From<BTreeMap<String, String>> for StringMap {
    fn from(map: BTreeMap<String, String>) -> Self {
        StringMap(StringMapForm::Map(map))
    }
}

impl<'a> IntoIterator for &'a StringMap {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for StringMap {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for StringMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl Serialize for StringMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        BTreeMap::deserialize(d).map(StringMap::from)
    }
}

/// One span as stored. `content` is the span as an OpenTelemetry `Span` message in protobuf
/// JSON form with snake_case names (what `traces/get` returns, ids base64); the other fields
/// are indexed copies of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SpanRecord {
    /// `tr-<32 hex>`.
    pub trace_id: String,
    /// 16 hex characters.
    pub span_id: String,
    /// `None` for a root span.
    pub parent_span_id: Option<String>,
    /// Span name.
    pub name: String,
    /// `mlflow.spanType` (`LLM`, `CHAIN`, ...), unquoted; `None` if absent.
    pub span_type: Option<String>,
    /// `OK`, `ERROR` or `UNSET`.
    pub status: String,
    /// Start, ns since the epoch.
    pub start_time_unix_nano: i64,
    /// End, ns since the epoch; `None` while running.
    pub end_time_unix_nano: Option<i64>,
    /// The whole span, JSON text.
    pub content: String,
}

impl SpanRecord {
    /// A span record with every field given.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        trace_id: impl Into<String>,
        span_id: impl Into<String>,
        parent_span_id: Option<String>,
        name: impl Into<String>,
        span_type: Option<String>,
        status: impl Into<String>,
        start_time_unix_nano: i64,
        end_time_unix_nano: Option<i64>,
        content: impl Into<String>,
    ) -> Self {
        SpanRecord {
            trace_id: trace_id.into(),
            span_id: span_id.into(),
            parent_span_id,
            name: name.into(),
            span_type,
            status: status.into(),
            start_time_unix_nano,
            end_time_unix_nano,
            content: content.into(),
        }
    }
}

/// Arguments of [`TraceStore::search_traces`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SearchTraces {
    /// Experiments to search; empty matches nothing.
    pub experiment_ids: Vec<String>,
    /// Parsed filter ([`SearchKind::Traces`](crate::search::SearchKind::Traces)).
    pub filter: Option<Expr>,
    /// Order keys; the store appends `timestamp_ms DESC, trace_id ASC` as tie-breakers.
    pub order_by: Vec<OrderBy>,
    /// Page size, 1 to 50000 (the host enforces the range).
    pub max_results: usize,
    /// Token from the previous page.
    pub page_token: Option<String>,
}

impl SearchTraces {
    /// A search of `experiment_ids`.
    pub fn new(
        experiment_ids: Vec<String>,
        filter: Option<Expr>,
        order_by: Vec<OrderBy>,
        max_results: usize,
        page_token: Option<String>,
    ) -> Self {
        SearchTraces {
            experiment_ids,
            filter,
            order_by,
            max_results,
            page_token,
        }
    }
}

/// Which traces [`TraceStore::delete_traces`] deletes: the given ids, or the oldest traces
/// with `request_time <= max_timestamp_millis` (at most `max_traces` of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeleteTraces {
    /// These ids (unknown ids, or ids of another experiment, are ignored).
    Ids(Vec<String>),
    /// By age.
    OlderThan {
        /// Inclusive upper bound on `request_time`, ms.
        max_timestamp_millis: i64,
        /// Most traces to delete; `None` means all that match.
        max_traces: Option<usize>,
    },
}

/// What `traces/metrics` aggregates over (`MetricViewType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum MetricView {
    /// One row per trace.
    Traces,
    /// One row per span.
    Spans,
    /// One row per valid assessment.
    Assessments,
}

/// An aggregation of `traces/metrics` (`MetricAggregation`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MetricAggregation {
    /// `COUNT`.
    Count,
    /// `SUM`.
    Sum,
    /// `AVG`.
    Avg,
    /// `MIN`.
    Min,
    /// `MAX`.
    Max,
    /// `PERCENTILE` with its value, 0 to 100: linear interpolation between the closest ranks
    /// (numpy's default, PostgreSQL's `percentile_cont`).
    Percentile(f64),
}

impl MetricAggregation {
    /// The key of the value in a data point: `COUNT`, `AVG`, ..., `P50.0` (Python's
    /// `f"P{percentile_value}"` of a float).
    pub fn label(&self) -> String {
        match self {
            MetricAggregation::Count => "COUNT".into(),
            MetricAggregation::Sum => "SUM".into(),
            MetricAggregation::Avg => "AVG".into(),
            MetricAggregation::Min => "MIN".into(),
            MetricAggregation::Max => "MAX".into(),
            MetricAggregation::Percentile(p) => format!("P{p:?}"),
        }
    }
}

/// One filter of `traces/metrics`: `<view>.<entity>[.<key>] = <value>` (MLflow compares for
/// equality whatever the comparator). The host has checked the entity and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MetricFilter {
    /// `trace.status = 'OK'`.
    TraceStatus(String),
    /// `trace.tag.<key> = <value>`.
    TraceTag(String, String),
    /// `trace.metadata.<key> = <value>`.
    TraceMetadata(String, String),
    /// `span.name = <value>` (span view only).
    SpanName(String),
    /// `span.status = <value>` (span view only).
    SpanStatus(String),
    /// `span.type = <value>` (span view only).
    SpanType(String),
    /// `assessment.name = <value>` (assessment view only).
    AssessmentName(String),
    /// `assessment.type = <value>` (`feedback` or `expectation`; assessment view only).
    AssessmentType(String),
}

/// Arguments of [`TraceStore::query_trace_metrics`], checked by the host against MLflow's
/// table of metrics, aggregations and dimensions per view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TraceMetricsQuery {
    /// Experiments to aggregate over.
    pub experiment_ids: Vec<String>,
    /// The view.
    pub view: MetricView,
    /// `trace_count`, `latency`, `span_count`, `assessment_value`, ...
    pub metric_name: String,
    /// At least one.
    pub aggregations: Vec<MetricAggregation>,
    /// `trace_name`, `trace_status`, `span_name`, `assessment_name`, ...
    pub dimensions: Vec<String>,
    /// All must hold.
    pub filters: Vec<MetricFilter>,
    /// Bucket width; when set, `time_bucket` (ms, floored) is the first dimension.
    pub time_interval_seconds: Option<i64>,
    /// Inclusive bounds on the trace's request time, ms.
    pub start_time_ms: Option<i64>,
    /// Inclusive.
    pub end_time_ms: Option<i64>,
    /// Most data points returned.
    pub max_results: usize,
}

impl TraceMetricsQuery {
    /// A query of `metric_name` over `experiment_ids` in `view`.
    pub fn new(
        experiment_ids: Vec<String>,
        view: MetricView,
        metric_name: impl Into<String>,
        aggregations: Vec<MetricAggregation>,
    ) -> Self {
        TraceMetricsQuery {
            experiment_ids,
            view,
            metric_name: metric_name.into(),
            aggregations,
            dimensions: Vec::new(),
            filters: Vec::new(),
            time_interval_seconds: None,
            start_time_ms: None,
            end_time_ms: None,
            max_results: 1000,
        }
    }
}

/// One group of a `traces/metrics` answer, ordered by its dimensions (time bucket first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MetricDataPoint {
    /// Dimension name to value; `time_bucket` is ms since the epoch as text (the host writes
    /// it as an ISO 8601 date). Groups with a missing dimension value are left out.
    pub dimensions: BTreeMap<String, String>,
    /// [`MetricAggregation::label`] to value; aggregations without a value are left out, and
    /// so is a group without any value.
    pub values: BTreeMap<String, f64>,
}

impl MetricDataPoint {
    /// A data point.
    pub fn new(dimensions: BTreeMap<String, String>, values: BTreeMap<String, f64>) -> Self {
        MetricDataPoint { dimensions, values }
    }
}

/// The trace store: MLflow 3 traces, spans, tags, metadata and assessments.
///
/// Errors: an unknown trace is `NotFound` "Trace with ID '{id}' not found."; an unknown
/// assessment `NotFound` "Assessment with ID '{id}' not found for trace '{trace_id}'.".
#[async_trait]
pub trait TraceStore: Send + Sync {
    /// Writes a finished trace's info (upsert: a trace created by [`TraceStore::log_spans`]
    /// is completed, its spans kept; tags, metadata and assessments merged, the given ones
    /// winning) and returns the stored info, with the tags [`SPANS_LOCATION_TAG`] and
    /// [`ARTIFACT_LOCATION_TAG`] set. The experiment must exist and be active.
    async fn start_trace(&self, info: TraceInfo) -> Result<TraceInfo>;

    /// Stores spans of traces of `experiment_id` (all-or-nothing); see the module rules.
    async fn log_spans(&self, experiment_id: &str, spans: Vec<SpanRecord>) -> Result<()>;

    /// The trace's info with its tags, metadata and assessments.
    async fn get_trace_info(&self, trace_id: &str) -> Result<TraceInfo>;

    /// Infos of the given traces that exist (unknown ids skipped), in the order given.
    async fn batch_get_trace_infos(&self, trace_ids: &[String]) -> Result<Vec<TraceInfo>>;

    /// One page of the trace's spans ordered by `(start_time_unix_nano, span_id)`; the token
    /// is opaque. An unknown trace is `NotFound`.
    async fn get_spans(
        &self,
        trace_id: &str,
        max_results: usize,
        page_token: Option<String>,
    ) -> Result<Page<SpanRecord>>;

    /// One page of the spans of several traces at once (`traces/batchGet`), at most
    /// `max_results` spans, ordered by trace (the store's own order of traces, not the order
    /// given: the caller groups by [`SpanRecord::trace_id`]) and within a trace by
    /// `(start_time_unix_nano, span_id)`. Unknown trace ids are skipped; the token is opaque.
    /// The host passes at most 100 ids (`batchGet`'s limit); a store may refuse more than
    /// 500 with `InvalidArgument`.
    ///
    /// The default reads trace after trace through [`TraceStore::get_spans`] (one store read
    /// per trace); a store that can, answers a page with one query.
    async fn batch_get_spans(
        &self,
        trace_ids: &[String],
        max_results: usize,
        page_token: Option<String>,
    ) -> Result<Page<SpanRecord>> {
        // The default's token: "<index of the trace in trace_ids> <that trace's token>".
        let (mut index, mut inner) = match page_token.as_deref() {
            None => (0, None),
            Some(t) => {
                let (i, rest) = t
                    .split_once(' ')
                    .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)))
                    .ok_or_else(|| crate::Error::invalid("Invalid page token"))?;
                (i, (!rest.is_empty()).then(|| rest.to_string()))
            }
        };
        let max_results = max_results.max(1);
        let mut items = Vec::new();
        while index < trace_ids.len() {
            if items.len() >= max_results {
                return Ok(Page {
                    items,
                    next_page_token: Some(format!("{index} ")),
                });
            }
            let want = max_results - items.len();
            match self.get_spans(&trace_ids[index], want, inner.take()).await {
                Ok(page) => {
                    items.extend(page.items);
                    if let Some(t) = page.next_page_token {
                        return Ok(Page {
                            items,
                            next_page_token: Some(format!("{index} {t}")),
                        });
                    }
                }
                Err(e) if e.kind == crate::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            index += 1;
        }
        Ok(Page::last(items))
    }

    /// One page of trace infos matching the filter (assessments included).
    async fn search_traces(&self, req: SearchTraces) -> Result<Page<TraceInfo>>;

    /// Deletes traces of `experiment_id` with everything they hold and returns how many were
    /// deleted. Deleting by age works in bounded batches (each its own transaction), so it
    /// never holds the store for long.
    async fn delete_traces(&self, experiment_id: &str, which: DeleteTraces) -> Result<usize>;

    /// Sets (overwrites) a tag.
    async fn set_trace_tag(&self, trace_id: &str, key: &str, value: &str) -> Result<()>;

    /// Deletes a tag; a missing one is `NotFound` "No trace tag with key '{key}' for trace
    /// with ID '{id}'".
    async fn delete_trace_tag(&self, trace_id: &str, key: &str) -> Result<()>;

    /// Records `run_id` as the source run of the traces (metadata [`SOURCE_RUN_METADATA`]).
    /// A trace not stored yet (the client logs traces asynchronously, and MLflow accepts such
    /// links) gets the link when it is written, by [`TraceStore::start_trace`] or
    /// [`TraceStore::log_spans`].
    async fn link_traces_to_run(&self, trace_ids: &[String], run_id: &str) -> Result<()>;

    /// Stores a new assessment (or replaces one with the same id) and returns it.
    async fn create_assessment(&self, assessment: Assessment) -> Result<Assessment>;

    /// One assessment.
    async fn get_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<Assessment>;

    /// Replaces an existing assessment (the caller merged the update) and returns it.
    async fn update_assessment(&self, assessment: Assessment) -> Result<Assessment>;

    /// Deletes an assessment; deleting a missing one succeeds (MLflow is idempotent here).
    async fn delete_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<()>;

    /// How many traces of `experiment_ids` match `filter` (all of them when `None`); used by
    /// `calculate-filter-correlation`. The default counts the pages of
    /// [`TraceStore::search_traces`]; a store with an index answers it directly.
    async fn count_traces(&self, experiment_ids: &[String], filter: Option<Expr>) -> Result<usize> {
        let mut n = 0;
        let mut token = None;
        loop {
            let page = self
                .search_traces(SearchTraces::new(
                    experiment_ids.to_vec(),
                    filter.clone(),
                    Vec::new(),
                    COUNT_PAGE,
                    token,
                ))
                .await?;
            n += page.items.len();
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => return Ok(n),
            }
        }
    }

    /// `traces/metrics`: aggregates of the traces, spans or assessments of `experiment_ids`,
    /// grouped by the query's dimensions, at most `max_results` groups. The default is
    /// `Unsupported` (the host answers `NOT_IMPLEMENTED`).
    async fn query_trace_metrics(&self, query: TraceMetricsQuery) -> Result<Vec<MetricDataPoint>> {
        let _ = query;
        Err(crate::Error::unsupported("traces/metrics"))
    }
}

/// Page size of the default [`TraceStore::count_traces`].
const COUNT_PAGE: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(m: &StringMap) -> String {
        let mut out = Vec::new();
        m.write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_stored_json_object_is_written_as_it_is_and_read_as_its_map() {
        // As SQLite's json_group_object writes it: no spaces, `/` and non-ASCII as they are.
        let text = r#"{"":"empty key","a\"b":"quote \" and \\ backslash","line":"one\ntwo\u0001","n":"a/b naïve ☃ 𝄞"}"#;
        let m = StringMap::from_json(text);
        assert_eq!(json_of(&m), text, "copied, not re-serialised");
        let map: BTreeMap<String, String> = [
            ("", "empty key"),
            ("a\"b", "quote \" and \\ backslash"),
            ("line", "one\ntwo\u{1}"),
            ("n", "a/b naïve ☃ 𝄞"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(*m, map);
        assert_eq!(m.get("line").map(String::as_str), Some("one\ntwo\u{1}"));
        assert_eq!(m, StringMap::from(map));
        assert_eq!(json_of(&m), text, "reading it kept the text");
    }

    #[test]
    fn a_change_through_the_map_is_what_is_written_after() {
        let mut m = StringMap::from_json(r#"{"a":"1","b":"2"}"#);
        assert_eq!(m.len(), 2, "read first: the parsed map is kept");
        m.insert("c".into(), "3".into());
        m.remove("a");
        assert_eq!(json_of(&m), r#"{"b":"2","c":"3"}"#);
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"b":"2","c":"3"}"#);
        let mut unread = StringMap::from_json(r#"{"x":"1"}"#);
        unread.extend([("y".to_owned(), "2".to_owned())]);
        assert_eq!(json_of(&unread), r#"{"x":"1","y":"2"}"#);
    }

    #[test]
    fn an_empty_map_is_the_empty_object_in_either_form() {
        assert_eq!(json_of(&StringMap::new()), "{}");
        assert_eq!(StringMap::from_json("{}"), StringMap::new());
        let back: StringMap = serde_json::from_str(r#"{"k":"v"}"#).unwrap();
        assert_eq!(json_of(&back), r#"{"k":"v"}"#);
    }

    #[test]
    #[should_panic(expected = "not a JSON object of strings")]
    fn reading_stored_text_that_is_no_map_of_strings_panics_naming_it() {
        let _ = StringMap::from_json(r#"{"k":1}"#).len();
    }
}
