//! Traces ([`TraceStore`]): spans and infos, search, tags, metadata, assessments, deletion.
//! Every case is skipped for a store whose [`TrackingStore::trace_store`] is `None`.

use crate::ErrorKind;
use crate::search::SearchKind;
use crate::testkit::support::*;
use crate::traces::*;
use crate::tracking::*;

fn hex_id(n: usize) -> String {
    let u = unique_name("t");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in u.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}{n:016x}")
}

fn span(
    trace_id: &str,
    span_id: &str,
    parent: Option<&str>,
    name: &str,
    start_ms: i64,
) -> SpanRecord {
    SpanRecord::new(
        trace_id,
        span_id,
        parent.map(String::from),
        name,
        Some("CHAIN".into()),
        "OK",
        start_ms * 1_000_000,
        Some((start_ms + 10) * 1_000_000),
        format!("{{\"name\":\"{name}\"}}"),
    )
}

fn store_of(store: &dyn TrackingStore) -> &dyn TraceStore {
    store.trace_store().expect("checked by supports()")
}

/// A finished trace written by `start_trace` at `time_ms`, with one root span.
async fn new_trace(store: &dyn TraceStore, exp: &str, time_ms: i64, state: TraceState) -> String {
    let id = format!("tr-{}", hex_id(time_ms as usize));
    ok(
        store
            .log_spans(
                exp,
                vec![span(&id, "00000000000000aa", None, "root", time_ms)],
            )
            .await,
        "log_spans",
    );
    let mut info = TraceInfo::new(id.clone(), exp, time_ms, state);
    info.execution_duration_ms = Some(10);
    ok(store.start_trace(info).await, "start_trace");
    id
}

/// Spans logged first create an in-progress trace; `start_trace` completes it, keeps the spans
/// (paged in start order) and sets the spans-location and artifact-location tags.
pub async fn traces_spans_then_info_round_trip(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::Traces,
        "traces_spans_then_info_round_trip",
    ) {
        return;
    }
    let traces = store_of(store);
    let exp = new_experiment(store, "conf-tr-rt").await;
    let id = format!("tr-{}", hex_id(1));
    ok(
        traces
            .log_spans(
                &exp,
                vec![span(
                    &id,
                    "0000000000000002",
                    Some("0000000000000001"),
                    "child",
                    1005,
                )],
            )
            .await,
        "log_spans child",
    );
    let partial = ok(traces.get_trace_info(&id).await, "get_trace_info");
    assert_eq!(partial.state, TraceState::InProgress);
    assert_eq!(partial.experiment_id, exp);
    ok(
        traces
            .log_spans(
                &exp,
                vec![span(&id, "0000000000000001", None, "root", 1000)],
            )
            .await,
        "log_spans root",
    );
    let mut info = TraceInfo::new(id.clone(), exp.clone(), 1000, TraceState::Ok);
    info.execution_duration_ms = Some(15);
    info.request_preview = Some("{\"x\": 1}".into());
    info.trace_metadata
        .insert("mlflow.user".into(), "alice".into());
    info.tags.insert("mlflow.traceName".into(), "root".into());
    let stored = ok(traces.start_trace(info).await, "start_trace");
    assert_eq!(stored.state, TraceState::Ok);
    assert_eq!(stored.execution_duration_ms, Some(15));
    assert_eq!(stored.request_preview.as_deref(), Some("{\"x\": 1}"));
    assert_eq!(
        stored.trace_metadata.get("mlflow.user").map(String::as_str),
        Some("alice")
    );
    assert_eq!(
        stored.tags.get(SPANS_LOCATION_TAG).map(String::as_str),
        Some(SPANS_IN_TRACKING_STORE)
    );
    assert!(
        stored.tags.contains_key(ARTIFACT_LOCATION_TAG),
        "{:?}",
        stored.tags
    );
    let page = ok(traces.get_spans(&id, 1, None).await, "get_spans page 1");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].name, "root");
    let token = page.next_page_token.expect("a second page");
    let page = ok(
        traces.get_spans(&id, 1, Some(token)).await,
        "get_spans page 2",
    );
    assert_eq!(page.items[0].name, "child");
    assert_eq!(
        page.items[0].parent_span_id.as_deref(),
        Some("0000000000000001")
    );
    assert_eq!(page.items[0].content, "{\"name\":\"child\"}");
    assert!(page.next_page_token.is_none());
    let infos = ok(
        traces
            .batch_get_trace_infos(&[id.clone(), "tr-0".into()])
            .await,
        "batch_get_trace_infos",
    );
    assert_eq!(infos.len(), 1);
}

/// Filters on attributes, tags, metadata and spans (with OR), ordering and complete pages.
pub async fn traces_search_filter_order_pages(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::Traces,
        "traces_search_filter_order_pages",
    ) {
        return;
    }
    let traces = store_of(store);
    let exp = new_experiment(store, "conf-tr-search").await;
    let a = new_trace(traces, &exp, 1000, TraceState::Ok).await;
    let b = new_trace(traces, &exp, 2000, TraceState::Error).await;
    let c = new_trace(traces, &exp, 3000, TraceState::Ok).await;
    ok(traces.set_trace_tag(&a, "team", "red").await, "tag");
    ok(traces.set_trace_tag(&b, "team", "blue").await, "tag");
    let search = |f: &str, order: &[&str], max: usize, token: Option<String>| {
        SearchTraces::new(
            vec![exp.clone()],
            filter(SearchKind::Traces, f),
            order_by(SearchKind::Traces, order),
            max,
            token,
        )
    };
    let ids = |p: Page<TraceInfo>| p.items.into_iter().map(|i| i.trace_id).collect::<Vec<_>>();
    let all = ok(
        traces.search_traces(search("", &[], 100, None)).await,
        "search",
    );
    assert_eq!(
        ids(all),
        vec![c.clone(), b.clone(), a.clone()],
        "newest first"
    );
    let asc = ok(
        traces
            .search_traces(search("", &["timestamp_ms ASC"], 100, None))
            .await,
        "asc",
    );
    assert_eq!(ids(asc), vec![a.clone(), b.clone(), c.clone()]);
    let errors = ok(
        traces
            .search_traces(search("trace.status = 'ERROR'", &[], 100, None))
            .await,
        "status",
    );
    assert_eq!(ids(errors), vec![b.clone()]);
    let or = ok(
        traces
            .search_traces(search(
                "tags.team = 'red' OR (trace.timestamp_ms >= 3000 AND span.name = 'root')",
                &[],
                100,
                None,
            ))
            .await,
        "or",
    );
    assert_eq!(ids(or), vec![c.clone(), a.clone()]);
    let none = ok(
        traces
            .search_traces(search("span.name = 'nope'", &[], 100, None))
            .await,
        "span",
    );
    assert!(none.items.is_empty());
    let p1 = ok(
        traces.search_traces(search("", &[], 2, None)).await,
        "page 1",
    );
    let token = p1.next_page_token.clone().expect("more");
    assert_eq!(ids(p1), vec![c.clone(), b.clone()]);
    let p2 = ok(
        traces.search_traces(search("", &[], 2, Some(token))).await,
        "page 2",
    );
    assert!(p2.next_page_token.is_none());
    assert_eq!(ids(p2), vec![a.clone()]);
    expect_err(
        traces
            .search_traces(search("", &[], 2, Some("garbage".into())))
            .await,
        ErrorKind::InvalidArgument,
        "bad token",
    );
    ok(
        traces
            .link_traces_to_run(std::slice::from_ref(&a), "r1")
            .await,
        "link",
    );
    let linked = ok(
        traces
            .search_traces(search("trace.run_id = 'r1'", &[], 10, None))
            .await,
        "run_id",
    );
    assert_eq!(ids(linked), vec![a.clone()]);
    let md = ok(
        traces
            .search_traces(search("metadata.`mlflow.sourceRun` = 'r1'", &[], 10, None))
            .await,
        "metadata",
    );
    assert_eq!(ids(md), vec![a]);
}

/// Tags overwrite and delete; assessments are created, read, replaced and deleted, and come
/// with the trace's info.
pub async fn traces_tags_metadata_and_assessments(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::Traces,
        "traces_tags_metadata_and_assessments",
    ) {
        return;
    }
    let traces = store_of(store);
    let exp = new_experiment(store, "conf-tr-tags").await;
    let id = new_trace(traces, &exp, 5000, TraceState::Ok).await;
    ok(traces.set_trace_tag(&id, "k", "v1").await, "set");
    ok(traces.set_trace_tag(&id, "k", "v2").await, "overwrite");
    let info = ok(traces.get_trace_info(&id).await, "get");
    assert_eq!(info.tags.get("k").map(String::as_str), Some("v2"));
    // MLflow's longest trace tag value.
    let long = incompressible(8000);
    ok(
        traces.set_trace_tag(&id, "long", &long).await,
        "set the longest value",
    );
    let info = ok(traces.get_trace_info(&id).await, "get");
    assert_eq!(info.tags.get("long"), Some(&long), "the longest tag value");
    ok(
        traces.delete_trace_tag(&id, "long").await,
        "delete the longest value",
    );
    ok(traces.delete_trace_tag(&id, "k").await, "delete");
    expect_err(
        traces.delete_trace_tag(&id, "k").await,
        ErrorKind::NotFound,
        "delete again",
    );
    let body = serde_json::json!({"assessment_name": "quality", "feedback": {"value": 1}});
    let a = Assessment::new("a-1", id.clone(), "quality", 10, 10, body);
    ok(traces.create_assessment(a.clone()).await, "create");
    let got = ok(traces.get_assessment(&id, "a-1").await, "get assessment");
    assert_eq!(got, a);
    let mut b = a.clone();
    b.body = serde_json::json!({"assessment_name": "quality", "feedback": {"value": 0}});
    b.last_update_time_ms = 20;
    ok(traces.update_assessment(b.clone()).await, "update");
    let info = ok(traces.get_trace_info(&id).await, "get");
    assert_eq!(info.assessments, vec![b]);
    ok(
        traces.delete_assessment(&id, "a-1").await,
        "delete assessment",
    );
    expect_err(
        traces.get_assessment(&id, "a-1").await,
        ErrorKind::NotFound,
        "deleted",
    );
}

/// Deleting by ids ignores unknown ids; by age deletes the oldest first, capped by the count.
pub async fn traces_delete_by_ids_and_by_age(store: &dyn TrackingStore) {
    if !supports(store, Capability::Traces, "traces_delete_by_ids_and_by_age") {
        return;
    }
    let traces = store_of(store);
    let exp = new_experiment(store, "conf-tr-del").await;
    let a = new_trace(traces, &exp, 100, TraceState::Ok).await;
    let b = new_trace(traces, &exp, 200, TraceState::Ok).await;
    let c = new_trace(traces, &exp, 300, TraceState::Ok).await;
    let d = new_trace(traces, &exp, 400, TraceState::Ok).await;
    let n = ok(
        traces
            .delete_traces(
                &exp,
                DeleteTraces::Ids(vec![a.clone(), "tr-unknown".into()]),
            )
            .await,
        "by ids",
    );
    assert_eq!(n, 1);
    expect_err(
        traces.get_trace_info(&a).await,
        ErrorKind::NotFound,
        "deleted",
    );
    let n = ok(
        traces
            .delete_traces(
                &exp,
                DeleteTraces::OlderThan {
                    max_timestamp_millis: 350,
                    max_traces: Some(1),
                },
            )
            .await,
        "by age, capped",
    );
    assert_eq!(n, 1);
    expect_err(
        traces.get_trace_info(&b).await,
        ErrorKind::NotFound,
        "oldest first",
    );
    ok(traces.get_trace_info(&c).await, "younger kept");
    let n = ok(
        traces
            .delete_traces(
                &exp,
                DeleteTraces::OlderThan {
                    max_timestamp_millis: 350,
                    max_traces: None,
                },
            )
            .await,
        "by age",
    );
    assert_eq!(n, 1);
    ok(traces.get_trace_info(&d).await, "newer than the cut-off");
    let page = ok(traces.get_spans(&d, 10, None).await, "spans kept");
    assert_eq!(page.items.len(), 1);
}

/// Unknown traces are `NotFound`; spans into an unknown experiment are refused.
pub async fn traces_unknown_is_not_found(store: &dyn TrackingStore) {
    if !supports(store, Capability::Traces, "traces_unknown_is_not_found") {
        return;
    }
    let traces = store_of(store);
    let missing = format!("tr-{}", hex_id(9));
    expect_err(
        traces.get_trace_info(&missing).await,
        ErrorKind::NotFound,
        "info",
    );
    expect_err(
        traces.get_spans(&missing, 10, None).await,
        ErrorKind::NotFound,
        "spans",
    );
    expect_err(
        traces.set_trace_tag(&missing, "k", "v").await,
        ErrorKind::NotFound,
        "tag",
    );
    expect_err(
        traces
            .log_spans(
                "987654321",
                vec![span(&missing, "0000000000000001", None, "r", 1)],
            )
            .await,
        ErrorKind::NotFound,
        "unknown experiment",
    );
}

/// A span whose content is the OTel protobuf JSON the host stores, with one string attribute
/// written as MLflow writes them (JSON-encoded) and one integer attribute.
fn span_with_attributes(trace_id: &str, model: &str, tokens: i64, start_ms: i64) -> SpanRecord {
    let content = serde_json::json!({
        "name": "llm",
        "attributes": [
            {"key": "model", "value": {"string_value": serde_json::to_string(model).unwrap()}},
            {"key": "tokens", "value": {"int_value": tokens.to_string()}},
        ],
    });
    SpanRecord::new(
        trace_id,
        "00000000000000bb",
        Some("00000000000000aa".into()),
        "llm",
        Some("LLM".into()),
        "OK",
        start_ms * 1_000_000,
        Some((start_ms + 5) * 1_000_000),
        content.to_string(),
    )
}

/// MLflow 3.18's trace-only filters: `RLIKE`, `span.attributes.<key>` (JSON-decoded values),
/// `feedback.<name>` / `expectation.<name>` (string and numeric comparisons, invalid
/// assessments ignored, `IS NULL`), and [`TraceStore::count_traces`] agreeing with search.
pub async fn traces_search_span_attributes_assessments_rlike(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::Traces,
        "traces_search_span_attributes_assessments_rlike",
    ) {
        return;
    }
    let traces = store_of(store);
    let exp = new_experiment(store, "conf-tr-extras").await;
    let a = new_trace(traces, &exp, 1000, TraceState::Ok).await;
    let b = new_trace(traces, &exp, 2000, TraceState::Ok).await;
    let c = new_trace(traces, &exp, 3000, TraceState::Error).await;
    ok(
        traces
            .log_spans(&exp, vec![span_with_attributes(&a, "gpt-4o", 7, 1001)])
            .await,
        "spans a",
    );
    ok(
        traces
            .log_spans(&exp, vec![span_with_attributes(&b, "claude-3", 12, 2001)])
            .await,
        "spans b",
    );
    ok(traces.set_trace_tag(&a, "env", "prod-eu").await, "tag a");
    ok(traces.set_trace_tag(&b, "env", "staging").await, "tag b");
    let feedback = |id: &str, aid: &str, value: serde_json::Value, valid: bool| {
        Assessment::new(
            aid,
            id,
            "quality",
            10,
            10,
            serde_json::json!({"assessment_name": "quality", "feedback": {"value": value},
                "valid": valid}),
        )
    };
    ok(
        traces
            .create_assessment(feedback(
                &a,
                &format!("a-{}", hex_id(1)),
                "yes".into(),
                true,
            ))
            .await,
        "feedback a",
    );
    ok(
        traces
            .create_assessment(feedback(&b, &format!("a-{}", hex_id(2)), 0.9.into(), true))
            .await,
        "feedback b",
    );
    // An overridden (invalid) assessment does not count.
    ok(
        traces
            .create_assessment(feedback(
                &c,
                &format!("a-{}", hex_id(3)),
                "yes".into(),
                false,
            ))
            .await,
        "invalid feedback c",
    );
    ok(
        traces
            .create_assessment(Assessment::new(
                format!("a-{}", hex_id(4)),
                c.clone(),
                "answer",
                10,
                10,
                serde_json::json!({"assessment_name": "answer", "expectation": {"value": "Paris"}}),
            ))
            .await,
        "expectation c",
    );
    let search = |f: &str| {
        SearchTraces::new(
            vec![exp.clone()],
            filter(SearchKind::Traces, f),
            Vec::new(),
            100,
            None,
        )
    };
    let cases: Vec<(&str, Vec<&String>)> = vec![
        ("span.attributes.model = 'gpt-4o'", vec![&a]),
        ("span.attributes.model != 'gpt-4o'", vec![&b]),
        ("span.attributes.model LIKE 'claude%'", vec![&b]),
        ("span.attributes.model RLIKE '^gpt-[0-9]'", vec![&a]),
        ("span.attributes.model IN ('claude-3', 'x')", vec![&b]),
        ("span.attributes.tokens = '12'", vec![&b]),
        ("span.attributes.missing = 'x'", vec![]),
        ("trace.end_time >= 2010", vec![&c, &b]),
        ("trace.end_time > 2010", vec![&c]),
        ("tags.env RLIKE 'prod|stag'", vec![&b, &a]),
        ("tags.env RLIKE '^prod$'", vec![]),
        ("trace.status RLIKE 'ERR'", vec![&c]),
        ("feedback.quality = 'yes'", vec![&a]),
        ("feedback.quality > 0.5", vec![&b]),
        ("feedback.quality <= 0.5", vec![]),
        ("feedback.quality IS NOT NULL", vec![&b, &a]),
        ("feedback.quality IS NULL", vec![&c]),
        ("expectation.answer = 'Paris'", vec![&c]),
        ("expectation.answer LIKE '%ari%'", vec![&c]),
        ("feedback.answer IS NOT NULL", vec![]),
        (
            "feedback.quality = 'yes' OR span.attributes.model RLIKE 'claude'",
            vec![&b, &a],
        ),
    ];
    for (f, want) in cases {
        let page = ok(traces.search_traces(search(f)).await, f);
        let got: Vec<&String> = page.items.iter().map(|i| &i.trace_id).collect();
        assert_eq!(got, want, "{f}");
        let n = ok(
            traces
                .count_traces(std::slice::from_ref(&exp), filter(SearchKind::Traces, f))
                .await,
            f,
        );
        assert_eq!(n, want.len(), "count_traces {f}");
    }
    let by_end = ok(
        traces
            .search_traces(SearchTraces::new(
                vec![exp.clone()],
                None,
                order_by(SearchKind::Traces, &["end_time ASC"]),
                100,
                None,
            ))
            .await,
        "order by end_time",
    );
    let got: Vec<&String> = by_end.items.iter().map(|i| &i.trace_id).collect();
    assert_eq!(got, vec![&a, &b, &c]);
    let n = ok(
        traces.count_traces(std::slice::from_ref(&exp), None).await,
        "count all",
    );
    assert_eq!(n, 3);
    assert_eq!(
        ok(traces.count_traces(&[], None).await, "no experiments"),
        0
    );
    expect_err(
        traces.search_traces(search("tags.env RLIKE '('")).await,
        ErrorKind::InvalidArgument,
        "bad regex",
    );
    // A link to a trace not stored yet applies when the trace arrives.
    let later = format!("tr-{}", hex_id(5));
    ok(
        traces
            .link_traces_to_run(std::slice::from_ref(&later), "run-later")
            .await,
        "link before the trace exists",
    );
    ok(
        traces
            .log_spans(
                &exp,
                vec![span(&later, "00000000000000aa", None, "root", 4000)],
            )
            .await,
        "late trace",
    );
    let linked = ok(
        traces
            .search_traces(search("trace.run_id = 'run-later'"))
            .await,
        "run_id of the late trace",
    );
    let got: Vec<&String> = linked.items.iter().map(|i| &i.trace_id).collect();
    assert_eq!(got, vec![&later]);
}

/// `traces/metrics`: counts by status, latency by name and as a percentile, time buckets, a
/// time range, a tag filter, spans by name, assessment values (booleans as 1/0). A store
/// without the method (the default answers `Unsupported`) skips the case, saying so.
pub async fn traces_metrics_aggregate_and_group(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::Traces,
        "traces_metrics_aggregate_and_group",
    ) {
        return;
    }
    let traces = store_of(store);
    let exp = new_experiment(store, "conf-tr-metrics").await;
    let mut ids = Vec::new();
    for (i, (time, duration, state, name)) in [
        (5000, 10, TraceState::Ok, "a"),
        (5500, 20, TraceState::Ok, "a"),
        (7000, 40, TraceState::Error, "b"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("tr-{}", hex_id(i));
        ok(
            traces
                .log_spans(
                    &exp,
                    vec![span(&id, "00000000000000aa", None, "root", time)],
                )
                .await,
            "log_spans",
        );
        let mut info = TraceInfo::new(id.clone(), exp.clone(), time, state);
        info.execution_duration_ms = Some(duration);
        info.tags.insert(TRACE_NAME_TAG.into(), name.into());
        ok(traces.start_trace(info).await, "start_trace");
        ids.push(id);
    }
    for (n, (id, value)) in [
        (&ids[0], serde_json::json!(true)),
        (&ids[1], serde_json::json!(0.5)),
    ]
    .into_iter()
    .enumerate()
    {
        let body = serde_json::json!({"assessment_name": "q", "feedback": {"value": value}, "valid": true});
        let a = Assessment::new(format!("a-m{n}"), id.clone(), "q", 10, 10, body);
        ok(traces.create_assessment(a).await, "create assessment");
    }
    let query = |view, metric: &str, aggs: Vec<MetricAggregation>| {
        TraceMetricsQuery::new(vec![exp.clone()], view, metric, aggs)
    };
    type Points = Vec<(Vec<(String, String)>, Vec<(String, f64)>)>;
    let points = |r: crate::Result<Vec<MetricDataPoint>>| -> Option<Points> {
        match r {
            Err(e) if e.kind == ErrorKind::Unsupported => None,
            r => Some(
                ok(r, "query_trace_metrics")
                    .into_iter()
                    .map(|p| {
                        (
                            p.dimensions.into_iter().collect(),
                            p.values.into_iter().collect(),
                        )
                    })
                    .collect(),
            ),
        }
    };
    let s = |x: &str| x.to_string();

    let mut q = query(
        MetricView::Traces,
        "trace_count",
        vec![MetricAggregation::Count],
    );
    q.dimensions = vec![s("trace_status")];
    let Some(got) = points(traces.query_trace_metrics(q).await) else {
        eprintln!("skipped traces_metrics_aggregate_and_group: the store has no traces/metrics");
        return;
    };
    assert_eq!(
        got,
        vec![
            (
                vec![(s("trace_status"), s("ERROR"))],
                vec![(s("COUNT"), 1.0)]
            ),
            (vec![(s("trace_status"), s("OK"))], vec![(s("COUNT"), 2.0)]),
        ]
    );

    let mut q = query(
        MetricView::Traces,
        "latency",
        vec![MetricAggregation::Avg, MetricAggregation::Max],
    );
    q.dimensions = vec![s("trace_name")];
    assert_eq!(
        points(traces.query_trace_metrics(q).await).unwrap(),
        vec![
            (
                vec![(s("trace_name"), s("a"))],
                vec![(s("AVG"), 15.0), (s("MAX"), 20.0)]
            ),
            (
                vec![(s("trace_name"), s("b"))],
                vec![(s("AVG"), 40.0), (s("MAX"), 40.0)]
            ),
        ]
    );
    // Linear interpolation: p75 of 10, 20, 40 is 20 + 0.5 * (40 - 20).
    let q = query(
        MetricView::Traces,
        "latency",
        vec![MetricAggregation::Percentile(75.0)],
    );
    assert_eq!(
        points(traces.query_trace_metrics(q).await).unwrap(),
        vec![(vec![], vec![(s("P75.0"), 30.0)])]
    );

    // Buckets of one second over [5000, 7000]; then a range and a tag filter.
    let mut q = query(
        MetricView::Traces,
        "trace_count",
        vec![MetricAggregation::Count],
    );
    q.time_interval_seconds = Some(1);
    q.start_time_ms = Some(5000);
    q.end_time_ms = Some(7000);
    assert_eq!(
        points(traces.query_trace_metrics(q).await).unwrap(),
        vec![
            (vec![(s("time_bucket"), s("5000"))], vec![(s("COUNT"), 2.0)]),
            (vec![(s("time_bucket"), s("7000"))], vec![(s("COUNT"), 1.0)]),
        ]
    );
    let mut q = query(
        MetricView::Traces,
        "trace_count",
        vec![MetricAggregation::Count],
    );
    q.start_time_ms = Some(5001);
    q.filters = vec![MetricFilter::TraceTag(s(TRACE_NAME_TAG), s("a"))];
    assert_eq!(
        points(traces.query_trace_metrics(q).await).unwrap(),
        vec![(vec![], vec![(s("COUNT"), 1.0)])]
    );

    let mut q = query(
        MetricView::Spans,
        "span_count",
        vec![MetricAggregation::Count],
    );
    q.dimensions = vec![s("span_name")];
    q.filters = vec![MetricFilter::TraceStatus(s("OK"))];
    assert_eq!(
        points(traces.query_trace_metrics(q).await).unwrap(),
        vec![(vec![(s("span_name"), s("root"))], vec![(s("COUNT"), 2.0)])]
    );

    let mut q = query(
        MetricView::Assessments,
        "assessment_value",
        vec![MetricAggregation::Avg, MetricAggregation::Min],
    );
    q.dimensions = vec![s("assessment_name")];
    q.filters = vec![MetricFilter::AssessmentType(s("feedback"))];
    assert_eq!(
        points(traces.query_trace_metrics(q).await).unwrap(),
        vec![(
            vec![(s("assessment_name"), s("q"))],
            vec![(s("AVG"), 0.75), (s("MIN"), 0.5)]
        )]
    );
}

/// Forwards every method but [`TraceStore::batch_get_spans`] to the store, so that the
/// contract's default of that method runs over the store's data.
struct DefaultBatchSpans<'a>(&'a dyn TraceStore);

#[async_trait::async_trait]
impl TraceStore for DefaultBatchSpans<'_> {
    async fn start_trace(&self, info: TraceInfo) -> crate::Result<TraceInfo> {
        self.0.start_trace(info).await
    }
    async fn log_spans(&self, experiment_id: &str, spans: Vec<SpanRecord>) -> crate::Result<()> {
        self.0.log_spans(experiment_id, spans).await
    }
    async fn get_trace_info(&self, trace_id: &str) -> crate::Result<TraceInfo> {
        self.0.get_trace_info(trace_id).await
    }
    async fn batch_get_trace_infos(&self, trace_ids: &[String]) -> crate::Result<Vec<TraceInfo>> {
        self.0.batch_get_trace_infos(trace_ids).await
    }
    async fn get_spans(
        &self,
        trace_id: &str,
        max_results: usize,
        page_token: Option<String>,
    ) -> crate::Result<Page<SpanRecord>> {
        self.0.get_spans(trace_id, max_results, page_token).await
    }
    async fn search_traces(&self, req: SearchTraces) -> crate::Result<Page<TraceInfo>> {
        self.0.search_traces(req).await
    }
    async fn delete_traces(
        &self,
        experiment_id: &str,
        which: DeleteTraces,
    ) -> crate::Result<usize> {
        self.0.delete_traces(experiment_id, which).await
    }
    async fn set_trace_tag(&self, trace_id: &str, key: &str, value: &str) -> crate::Result<()> {
        self.0.set_trace_tag(trace_id, key, value).await
    }
    async fn delete_trace_tag(&self, trace_id: &str, key: &str) -> crate::Result<()> {
        self.0.delete_trace_tag(trace_id, key).await
    }
    async fn link_traces_to_run(&self, trace_ids: &[String], run_id: &str) -> crate::Result<()> {
        self.0.link_traces_to_run(trace_ids, run_id).await
    }
    async fn create_assessment(&self, assessment: Assessment) -> crate::Result<Assessment> {
        self.0.create_assessment(assessment).await
    }
    async fn get_assessment(
        &self,
        trace_id: &str,
        assessment_id: &str,
    ) -> crate::Result<Assessment> {
        self.0.get_assessment(trace_id, assessment_id).await
    }
    async fn update_assessment(&self, assessment: Assessment) -> crate::Result<Assessment> {
        self.0.update_assessment(assessment).await
    }
    async fn delete_assessment(&self, trace_id: &str, assessment_id: &str) -> crate::Result<()> {
        self.0.delete_assessment(trace_id, assessment_id).await
    }
}

/// All spans of `ids` through `batch_get_spans`, `max` a page, checking each page's size.
async fn all_batch_spans(store: &dyn TraceStore, ids: &[String], max: usize) -> Vec<SpanRecord> {
    let mut out = Vec::new();
    let mut token = None;
    for _ in 0..100 {
        let page = ok(
            store.batch_get_spans(ids, max, token).await,
            "batch_get_spans",
        );
        assert!(
            page.items.len() <= max,
            "a page of {} > {max}",
            page.items.len()
        );
        out.extend(page.items);
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => return out,
        }
    }
    panic!("batch_get_spans never ended");
}

/// Spans of several traces at once: every span of every known trace exactly once, a trace's
/// spans together and in `(start, span_id)` order, unknown ids skipped, pages bounded; the
/// contract's default (one `get_spans` per trace) answers the same.
pub async fn traces_batch_get_spans(store: &dyn TrackingStore) {
    if !supports(store, Capability::Traces, "traces_batch_get_spans") {
        return;
    }
    let traces = store_of(store);
    let exp = new_experiment(store, "conf-tr-batch-spans").await;
    let a = new_trace(traces, &exp, 1000, TraceState::Ok).await;
    let b = new_trace(traces, &exp, 2000, TraceState::Ok).await;
    let c = new_trace(traces, &exp, 3000, TraceState::Error).await;
    // a: root + 3 children (two starting at the same time: span id breaks the tie); c: root + 1.
    ok(
        traces
            .log_spans(
                &exp,
                vec![
                    span(&a, "00000000000000c3", Some("00000000000000aa"), "a3", 1003),
                    span(&a, "00000000000000c2", Some("00000000000000aa"), "a2", 1002),
                    span(&a, "00000000000000c1", Some("00000000000000aa"), "a1", 1002),
                    span(&c, "00000000000000c1", Some("00000000000000aa"), "c1", 3001),
                ],
            )
            .await,
        "log_spans",
    );
    let missing = format!("tr-{}", hex_id(99));
    let ids = vec![c.clone(), missing, a.clone(), b.clone()];
    let expected: Vec<(String, Vec<&str>)> = vec![
        (a.clone(), vec!["root", "a1", "a2", "a3"]),
        (b.clone(), vec!["root"]),
        (c.clone(), vec!["root", "c1"]),
    ];
    let default = DefaultBatchSpans(traces);
    for (which, s) in [("store", traces), ("default", &default as &dyn TraceStore)] {
        for max in [1, 2, 3, 1000] {
            let spans = all_batch_spans(s, &ids, max).await;
            assert_eq!(spans.len(), 7, "{which}, {max} a page: {spans:?}");
            // Each trace's spans are contiguous and in order.
            let mut seen: Vec<(String, Vec<&str>)> = Vec::new();
            for sp in &spans {
                match seen.last_mut() {
                    Some((t, names)) if *t == sp.trace_id => names.push(sp.name.as_str()),
                    _ => {
                        assert!(
                            !seen.iter().any(|(t, _)| *t == sp.trace_id),
                            "{which}, {max} a page: the spans of {} are split",
                            sp.trace_id
                        );
                        seen.push((sp.trace_id.clone(), vec![sp.name.as_str()]));
                    }
                }
            }
            seen.sort();
            let mut want = expected.clone();
            want.sort();
            assert_eq!(seen, want, "{which}, {max} a page");
        }
        let none = ok(
            s.batch_get_spans(&[format!("tr-{}", hex_id(98))], 10, None)
                .await,
            "unknown ids only",
        );
        assert!(none.items.is_empty() && none.next_page_token.is_none());
        expect_err(
            s.batch_get_spans(&ids, 10, Some("not a token".into()))
                .await,
            ErrorKind::InvalidArgument,
            "bad token",
        );
    }
}

/// `issue.id = '<id>'` holds for traces with an issue reference (an assessment with `issue`,
/// named by the issue id), not for another kind of assessment of that name; `prompt =
/// '<name>/<version>'` holds for traces whose linked-prompts tag lists that version (the
/// version written as text or as a number), and a tag that is not such a list matches nothing
/// without failing the search.
pub async fn traces_search_issue_and_prompt(store: &dyn TrackingStore) {
    if !supports(store, Capability::Traces, "traces_search_issue_and_prompt") {
        return;
    }
    let traces = store_of(store);
    let exp = new_experiment(store, "conf-tr-issue-prompt").await;
    let a = new_trace(traces, &exp, 1000, TraceState::Ok).await;
    let b = new_trace(traces, &exp, 2000, TraceState::Ok).await;
    let c = new_trace(traces, &exp, 3000, TraceState::Error).await;
    let issue = |trace: &str, issue_id: &str| {
        Assessment::new(
            format!("a-{}", hex_id(trace.len() + issue_id.len())),
            trace,
            issue_id,
            10,
            10,
            serde_json::json!({"assessment_name": issue_id, "issue": {"issue_name": "slow"},
                "valid": true}),
        )
    };
    let mut ia = issue(&a, "iss-1");
    ia.assessment_id = format!("a-{}", hex_id(11));
    ok(traces.create_assessment(ia).await, "issue a");
    let mut ib = issue(&b, "iss-2");
    ib.assessment_id = format!("a-{}", hex_id(12));
    ok(traces.create_assessment(ib).await, "issue b");
    // A feedback named like an issue is not an issue reference.
    ok(
        traces
            .create_assessment(Assessment::new(
                format!("a-{}", hex_id(13)),
                c.clone(),
                "iss-1",
                10,
                10,
                serde_json::json!({"assessment_name": "iss-1", "feedback": {"value": true}}),
            ))
            .await,
        "feedback c",
    );
    let tag = "mlflow.linkedPrompts";
    ok(
        traces
            .set_trace_tag(
                &a,
                tag,
                r#"[{"name": "qa", "version": "1"}, {"name": "summary/x", "version": "3"}]"#,
            )
            .await,
        "prompts a",
    );
    ok(
        traces
            .set_trace_tag(&b, tag, r#"[{"name":"qa","version":2}]"#)
            .await,
        "prompts b",
    );
    ok(
        traces.set_trace_tag(&c, tag, "not [json").await,
        "prompts c",
    );
    let cases: Vec<(&str, Vec<&String>)> = vec![
        ("issue.id = 'iss-1'", vec![&a]),
        ("issue.id = 'iss-2'", vec![&b]),
        ("issue.id = 'iss-3'", vec![]),
        ("issue.id = 'iss-1' OR issue.id = 'iss-2'", vec![&b, &a]),
        ("prompt = 'qa/1'", vec![&a]),
        ("prompt = 'qa/2'", vec![&b]),
        ("prompt = 'qa/3'", vec![]),
        ("prompt = 'summary/3'", vec![]),
        ("tags.`mlflow.linkedPrompts` = 'qa/2'", vec![&b]),
        ("prompt = 'qa/1' AND trace.status = 'OK'", vec![&a]),
        ("issue.id = 'iss-1' OR prompt = 'qa/2'", vec![&b, &a]),
    ];
    for (f, want) in cases {
        let page = ok(
            traces
                .search_traces(SearchTraces::new(
                    vec![exp.clone()],
                    filter(SearchKind::Traces, f),
                    Vec::new(),
                    100,
                    None,
                ))
                .await,
            f,
        );
        let got: Vec<&String> = page.items.iter().map(|i| &i.trace_id).collect();
        assert_eq!(got, want, "{f}");
        let n = ok(
            traces
                .count_traces(std::slice::from_ref(&exp), filter(SearchKind::Traces, f))
                .await,
            f,
        );
        assert_eq!(n, want.len(), "count_traces {f}");
    }
}

/// An LLM span as MLflow's client writes one: the model, its provider and the call's cost as
/// span attributes holding JSON text.
fn llm_span(trace_id: &str, span_id: &str, attrs: &[(&str, &str)], start_ms: i64) -> SpanRecord {
    let attributes: Vec<serde_json::Value> = attrs
        .iter()
        .map(|(k, v)| match v.strip_prefix("kvlist:") {
            // A typed key-value list, as the 3.18 client sends a dict over OTLP.
            Some(list) => serde_json::json!({"key": k, "value": {"kvlist_value": {"values":
                serde_json::from_str::<serde_json::Value>(list).unwrap()}}}),
            None => serde_json::json!({"key": k, "value": {"string_value": v}}),
        })
        .collect();
    let content = serde_json::json!({"name": "llm", "attributes": attributes});
    SpanRecord::new(
        trace_id,
        span_id,
        Some("00000000000000aa".into()),
        "llm",
        Some("LLM".into()),
        "OK",
        start_ms * 1_000_000,
        Some((start_ms + 5) * 1_000_000),
        content.to_string(),
    )
}

/// `traces/metrics` over spans: the costs (`input_cost`, `output_cost`, `total_cost`) and the
/// dimensions `span_model_name` / `span_model_provider`, taken from the span attributes
/// `mlflow.llm.cost`, `mlflow.llm.model` and `mlflow.llm.provider` as MLflow takes them (a JSON
/// string decoded, a plain text kept, a non-number cost left out).
pub async fn traces_metrics_span_cost_and_model(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::Traces,
        "traces_metrics_span_cost_and_model",
    ) {
        return;
    }
    let traces = store_of(store);
    let exp = new_experiment(store, "conf-tr-cost").await;
    let id = new_trace(traces, &exp, 9000, TraceState::Ok).await;
    let cost = |i: f64, o: f64| {
        format!(
            r#"{{"input_cost": {i}, "output_cost": {o}, "total_cost": {}}}"#,
            i + o
        )
    };
    let spans = vec![
        llm_span(
            &id,
            "00000000000000b1",
            &[
                ("mlflow.llm.model", "\"gpt-4o\""),
                ("mlflow.llm.provider", "\"openai\""),
                ("mlflow.llm.cost", &cost(0.5, 1.5)),
            ],
            9001,
        ),
        llm_span(
            &id,
            "00000000000000b2",
            &[
                // Plain text (as the 3.18 client sends strings over OTLP), and the cost as
                // a typed list: a double, an integer (protobuf JSON: a string), a double.
                ("mlflow.llm.model", "gpt-4o"),
                ("mlflow.llm.provider", "openai"),
                (
                    "mlflow.llm.cost",
                    r#"kvlist:[{"key": "input_cost", "value": {"double_value": 1.0}},
                        {"key": "output_cost", "value": {"int_value": "2"}},
                        {"key": "total_cost", "value": {"double_value": 3.0}}]"#,
                ),
            ],
            9002,
        ),
        llm_span(
            &id,
            "00000000000000b3",
            &[
                // Not JSON: kept as it is.
                ("mlflow.llm.model", "claude-3"),
                ("mlflow.llm.provider", "\"anthropic\""),
                (
                    "mlflow.llm.cost",
                    r#"{"input_cost": "x", "output_cost": 4, "total_cost": 4}"#,
                ),
            ],
            9003,
        ),
        // No model, no cost.
        llm_span(&id, "00000000000000b4", &[], 9004),
    ];
    ok(traces.log_spans(&exp, spans).await, "log_spans");
    let s = |x: &str| x.to_string();
    let run = |metric: &str, aggs: Vec<MetricAggregation>, dims: &[&str]| {
        let mut q = TraceMetricsQuery::new(vec![exp.clone()], MetricView::Spans, metric, aggs);
        q.dimensions = dims.iter().map(|d| d.to_string()).collect();
        q
    };
    type Points = Vec<(Vec<(String, String)>, Vec<(String, f64)>)>;
    let points = |r: crate::Result<Vec<MetricDataPoint>>| -> Option<Points> {
        match r {
            Err(e) if e.kind == ErrorKind::Unsupported => None,
            r => Some(
                ok(r, "query_trace_metrics")
                    .into_iter()
                    .map(|p| {
                        let mut values: Vec<(String, f64)> = p.values.into_iter().collect();
                        for (_, v) in &mut values {
                            *v = (*v * 1e9).round() / 1e9;
                        }
                        (p.dimensions.into_iter().collect(), values)
                    })
                    .collect(),
            ),
        }
    };
    let Some(got) = points(
        traces
            .query_trace_metrics(run(
                "total_cost",
                vec![MetricAggregation::Sum, MetricAggregation::Max],
                &["span_model_name"],
            ))
            .await,
    ) else {
        eprintln!("skipped traces_metrics_span_cost_and_model: the store has no traces/metrics");
        return;
    };
    assert_eq!(
        got,
        vec![
            (
                vec![(s("span_model_name"), s("claude-3"))],
                vec![(s("MAX"), 4.0), (s("SUM"), 4.0)]
            ),
            (
                vec![(s("span_model_name"), s("gpt-4o"))],
                vec![(s("MAX"), 3.0), (s("SUM"), 5.0)]
            ),
        ]
    );
    // A non-number cost is left out: only the two gpt-4o spans have an input cost.
    let got = points(
        traces
            .query_trace_metrics(run(
                "input_cost",
                vec![MetricAggregation::Avg, MetricAggregation::Count],
                &[],
            ))
            .await,
    );
    assert_eq!(
        got,
        Some(vec![(vec![], vec![(s("AVG"), 0.75), (s("COUNT"), 2.0)])])
    );
    let got = points(
        traces
            .query_trace_metrics(run(
                "output_cost",
                vec![MetricAggregation::Percentile(50.0)],
                &["span_model_provider"],
            ))
            .await,
    );
    assert_eq!(
        got,
        Some(vec![
            (
                vec![(s("span_model_provider"), s("anthropic"))],
                vec![(s("P50.0"), 4.0)]
            ),
            (
                vec![(s("span_model_provider"), s("openai"))],
                vec![(s("P50.0"), 1.75)]
            ),
        ])
    );
    // Span counts by model: spans without one are left out of the groups.
    let got = points(
        traces
            .query_trace_metrics(run(
                "span_count",
                vec![MetricAggregation::Count],
                &["span_model_provider", "span_model_name"],
            ))
            .await,
    );
    assert_eq!(
        got,
        Some(vec![
            (
                vec![
                    (s("span_model_name"), s("claude-3")),
                    (s("span_model_provider"), s("anthropic"))
                ],
                vec![(s("COUNT"), 1.0)]
            ),
            (
                vec![
                    (s("span_model_name"), s("gpt-4o")),
                    (s("span_model_provider"), s("openai"))
                ],
                vec![(s("COUNT"), 2.0)]
            ),
        ])
    );
}
