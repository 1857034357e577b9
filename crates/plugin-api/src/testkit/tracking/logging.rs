//! Params, metrics and run tags: values, histories, latest values, key rules.

use crate::ErrorKind;
use crate::entities::*;
use crate::testkit::support::*;
use crate::tracking::*;
use rand::seq::SliceRandom;
use std::cmp::Ordering;

/// A run in a fresh experiment, for cases that only need somewhere to log.
async fn scratch_run(store: &dyn TrackingStore, prefix: &str) -> String {
    let exp_id = new_experiment(store, prefix).await;
    new_run(store, &exp_id).await.info.run_id
}

/// `(value, timestamp, step)` of a metric value.
type Latest = (f64, i64, i64);

/// `(value, timestamp, step)` of the latest value of `key` on `run_id`.
async fn latest(store: &dyn TrackingStore, run_id: &str, key: &str) -> Latest {
    let run = get_run(store, run_id).await;
    let m = run
        .metric(key)
        .unwrap_or_else(|| panic!("get_run shows no metric {key:?}"));
    (m.value, m.timestamp, m.step)
}

/// The order of metric history: `(timestamp, step, value)`.
fn history_order(a: &Metric, b: &Metric) -> Ordering {
    (a.timestamp, a.step)
        .cmp(&(b.timestamp, b.step))
        .then(a.value.total_cmp(&b.value))
}

/// Re-logging a param with the same value is a no-op; a different value is `InvalidArgument`
/// with MLflow's message "Changing param values is not allowed. ..." and the value stays.
pub async fn param_same_value_again_is_ok_different_value_is_invalid(store: &dyn TrackingStore) {
    let run_id = scratch_run(store, "conf-param").await;
    ok(
        store.log_param(&run_id, Param::new("lr", "0.1")).await,
        "log_param",
    );
    ok(
        store.log_param(&run_id, Param::new("lr", "0.1")).await,
        "log_param with the same value again",
    );
    ok(
        store
            .log_batch(&run_id, vec![], vec![Param::new("lr", "0.1")], vec![])
            .await,
        "log_batch with the same param value again",
    );
    let e = expect_err(
        store.log_param(&run_id, Param::new("lr", "0.2")).await,
        ErrorKind::InvalidArgument,
        "log_param with a different value",
    );
    assert!(
        e.message
            .starts_with("Changing param values is not allowed"),
        "message {:?} should start with \"Changing param values is not allowed\"",
        e.message
    );
    expect_err(
        store
            .log_batch(&run_id, vec![], vec![Param::new("lr", "0.3")], vec![])
            .await,
        ErrorKind::InvalidArgument,
        "log_batch with a different param value",
    );
    let run = get_run(store, &run_id).await;
    assert_eq!(
        run.data.params,
        vec![Param::new("lr", "0.1")],
        "params after rejected changes"
    );

    // Params belong to a run: another run may log the same key with another value.
    let other = new_run(store, &run.info.experiment_id).await.info.run_id;
    ok(
        store.log_param(&other, Param::new("lr", "0.2")).await,
        "log_param of the same key on another run",
    );
}

/// Param values of 6000 characters, unicode, quotes and newlines, and the empty string come
/// back exactly; params are ordered by key.
pub async fn param_long_and_unicode_values_round_trip(store: &dyn TrackingStore) {
    let exp_id = new_experiment(store, "conf-param-val").await;
    let run_id = new_run(store, &exp_id).await.info.run_id;
    // MLflow's longest param value.
    let long = incompressible(6000);
    let values = [
        ("long", long),
        ("unicode", "héllo wörld — 你好 🚀".to_string()),
        ("quotes", "it's \"quoted\"\nand\ttabbed".to_string()),
        ("empty", String::new()),
    ];
    for (k, v) in &values {
        ok(
            store.log_param(&run_id, Param::new(*k, v.clone())).await,
            &format!("log_param({k})"),
        );
    }
    let run = get_run(store, &run_id).await;
    for (k, v) in &values {
        assert_eq!(
            run.param(k),
            Some(v.as_str()),
            "param {k} (length {}) did not round-trip",
            v.chars().count()
        );
    }
    assert_sorted_by_key(run.data.params.iter().map(|p| p.key.as_str()), "run params");
    for (k, v) in &values[..2] {
        assert_eq!(
            run_ids_matching(store, &exp_id, &format!("params.{k} = '{v}'")).await,
            vec![run_id.clone()],
            "search by the whole param {k} (length {})",
            v.chars().count()
        );
    }
}

/// The history keeps every value logged: several values at one step, the same value at
/// several timestamps, one timestamp at several steps, and several values of a key in one batch.
pub async fn metric_history_keeps_every_value(store: &dyn TrackingStore) {
    let run_id = scratch_run(store, "conf-hist").await;
    let t = 1_700_000_000_000;
    let singles = [
        Metric::new("loss", 1.0, t, 0),
        Metric::new("loss", 2.0, t, 0),
        Metric::new("loss", 1.0, t + 1, 0),
        Metric::new("loss", 3.0, t, 1),
    ];
    for m in &singles {
        ok(store.log_metric(&run_id, m.clone()).await, "log_metric");
    }
    let batch = vec![
        Metric::new("loss", 5.0, t + 2, 0),
        Metric::new("loss", 6.0, t + 2, 0),
    ];
    ok(
        store
            .log_batch(&run_id, batch.clone(), vec![], vec![])
            .await,
        "log_batch with two values of one key",
    );
    let mut expected: Vec<Metric> = singles.iter().cloned().chain(batch).collect();
    expected.sort_by(history_order);
    let got = metric_history(store, &run_id, "loss", 10_000).await;
    assert_eq!(
        got, expected,
        "the history holds every value, ordered by (timestamp, step, value)"
    );
}

/// The latest value (in `get_run`) is the one with the greatest step, then timestamp, then
/// value, whatever order the values were logged in.
pub async fn metric_latest_is_max_step_then_timestamp_then_value(store: &dyn TrackingStore) {
    let run_id = scratch_run(store, "conf-latest").await;
    // (value, timestamp, step) logged, then the expected latest (value, timestamp, step).
    let steps: [(Latest, Latest); 7] = [
        ((1.0, 100, 5), (1.0, 100, 5)),
        ((2.0, 50, 10), (2.0, 50, 10)), // a higher step wins over a newer timestamp
        ((3.0, 10, 10), (2.0, 50, 10)), // same step, older timestamp: no change
        ((0.5, 50, 10), (2.0, 50, 10)), // same step and timestamp, smaller value: no change
        ((9.0, 50, 10), (9.0, 50, 10)), // same step and timestamp, larger value wins
        ((100.0, 1000, 3), (9.0, 50, 10)), // lower step, even if newer: no change
        ((-1.0, 60, 10), (-1.0, 60, 10)), // same step, newer timestamp wins over value
    ];
    for ((v, ts, step), want) in steps {
        ok(
            store
                .log_metric(&run_id, Metric::new("acc", v, ts, step))
                .await,
            "log_metric",
        );
        assert_eq!(
            latest(store, &run_id, "acc").await,
            want,
            "latest (value, timestamp, step) after logging ({v}, {ts}, {step})"
        );
    }

    // Several values of one key inside one batch.
    let batch = vec![
        Metric::new("f1", 1.0, 10, 2),
        Metric::new("f1", 7.0, 5, 3),
        Metric::new("f1", 4.0, 5, 3),
        Metric::new("f1", 2.0, 20, 1),
    ];
    ok(
        store.log_batch(&run_id, batch, vec![], vec![]).await,
        "log_batch",
    );
    assert_eq!(
        latest(store, &run_id, "f1").await,
        (7.0, 5, 3),
        "latest of values logged in one batch"
    );
    let run = get_run(store, &run_id).await;
    assert_eq!(
        run.data.metrics.len(),
        2,
        "one latest entry per key: {:?}",
        run.data.metrics
    );
    assert_sorted_by_key(
        run.data.metrics.iter().map(|m| m.key.as_str()),
        "latest metrics",
    );
}

/// NaN comes back as NaN; +Inf and -Inf come back as themselves, or clamped to ±`f64::MAX`
/// as MLflow's SQL store does (it stores ±Inf as ±1.7976931348623157e308). Both in `get_run`
/// and in the history.
pub async fn metric_nan_and_infinities_round_trip(store: &dyn TrackingStore) {
    let run_id = scratch_run(store, "conf-nan").await;
    let t = now_ms();
    ok(
        store
            .log_batch(
                &run_id,
                vec![
                    Metric::new("nan", f64::NAN, t, 0),
                    Metric::new("pinf", f64::INFINITY, t, 0),
                    Metric::new("ninf", f64::NEG_INFINITY, t, 0),
                ],
                vec![],
                vec![],
            )
            .await,
        "log_batch of NaN and infinities",
    );
    let is_pinf = |v: f64| v == f64::INFINITY || v == f64::MAX;
    let is_ninf = |v: f64| v == f64::NEG_INFINITY || v == f64::MIN;
    let run = get_run(store, &run_id).await;
    let value = |k: &str| {
        run.metric(k)
            .unwrap_or_else(|| panic!("no metric {k}"))
            .value
    };
    assert!(value("nan").is_nan(), "NaN came back as {}", value("nan"));
    assert!(
        is_pinf(value("pinf")),
        "+Inf came back as {}",
        value("pinf")
    );
    assert!(
        is_ninf(value("ninf")),
        "-Inf came back as {}",
        value("ninf")
    );
    let hist = |k: &'static str| {
        let run_id = run_id.clone();
        async move {
            let h = metric_history(store, &run_id, k, 100).await;
            assert_eq!(h.len(), 1, "history of {k}: {h:?}");
            h[0].value
        }
    };
    let v = hist("nan").await;
    assert!(v.is_nan(), "NaN in history came back as {v}");
    let v = hist("pinf").await;
    assert!(is_pinf(v), "+Inf in history came back as {v}");
    let v = hist("ninf").await;
    assert!(is_ninf(v), "-Inf in history came back as {v}");
}

/// Steps near `i64::MAX` and negative steps are stored exactly; the latest is the largest.
pub async fn metric_large_and_negative_steps(store: &dyn TrackingStore) {
    let run_id = scratch_run(store, "conf-steps").await;
    let t = 1_700_000_000_000;
    let steps = [i64::MAX - 1, -5, i64::MIN + 1, 0];
    for (i, s) in steps.iter().enumerate() {
        ok(
            store
                .log_metric(&run_id, Metric::new("s", i as f64, t + i as i64, *s))
                .await,
            &format!("log_metric at step {s}"),
        );
    }
    let h = metric_history(store, &run_id, "s", 100).await;
    let mut got: Vec<i64> = h.iter().map(|m| m.step).collect();
    got.sort();
    let mut want = steps.to_vec();
    want.sort();
    assert_eq!(got, want, "steps in the history");
    assert_eq!(
        latest(store, &run_id, "s").await,
        (0.0, t, i64::MAX - 1),
        "the latest value is at the largest step"
    );
}

/// Pages of 1 to 4 values together are the whole history, ordered by `(timestamp, step,
/// value)`, with nothing from other keys; a malformed token is `InvalidArgument`.
pub async fn metric_history_pages_are_complete_and_ordered(store: &dyn TrackingStore) {
    let run_id = scratch_run(store, "conf-hist-pages").await;
    let mut logged: Vec<Metric> = (0..25)
        .map(|i: i64| Metric::new("m", i as f64, 1000 + (i * 7) % 5, i % 3))
        .collect();
    logged.shuffle(&mut rand::rng());
    for chunk in logged.chunks(6) {
        ok(
            store
                .log_batch(&run_id, chunk.to_vec(), vec![], vec![])
                .await,
            "log_batch",
        );
    }
    ok(
        store
            .log_metric(&run_id, Metric::new("other", 1.0, 1000, 0))
            .await,
        "log_metric",
    );
    let mut expected = logged.clone();
    expected.sort_by(history_order);

    let whole = ok(
        store.get_metric_history(&run_id, "m", 10_000, None).await,
        "get_metric_history",
    );
    assert_eq!(
        whole.next_page_token, None,
        "one big page has no next token"
    );
    assert_eq!(
        whole.items, expected,
        "the whole history, in (timestamp, step, value) order"
    );

    for size in 1..=4 {
        let paged = metric_history(store, &run_id, "m", size).await;
        assert_eq!(paged, expected, "history in pages of {size}");
    }

    for token in ["%%% not a token %%%", "Z2FyYmFnZQ=="] {
        expect_err(
            store
                .get_metric_history(&run_id, "m", 5, Some(token.into()))
                .await,
            ErrorKind::InvalidArgument,
            &format!("get_metric_history with page token {token:?}"),
        );
    }
}

/// The history of a key the run never logged is an empty last page.
pub async fn metric_history_of_missing_key_is_empty(store: &dyn TrackingStore) {
    let run_id = scratch_run(store, "conf-hist-missing").await;
    ok(
        store
            .log_metric(&run_id, Metric::new("present", 1.0, now_ms(), 0))
            .await,
        "log_metric",
    );
    let page = ok(
        store.get_metric_history(&run_id, "absent", 100, None).await,
        "get_metric_history of a missing key",
    );
    assert!(
        page.items.is_empty(),
        "history of a missing key: {:?}",
        page.items
    );
    assert_eq!(
        page.next_page_token, None,
        "an empty page has no next token"
    );
}

/// The history of a run that does not exist is `NotFound`.
pub async fn metric_history_of_unknown_run_is_not_found(store: &dyn TrackingStore) {
    expect_err(
        store
            .get_metric_history(&random_run_id(), "m", 100, None)
            .await,
        ErrorKind::NotFound,
        "get_metric_history of an unknown run",
    );
}

/// Run tags: set, overwrite, empty values, delete; deleting a missing tag is `NotFound`;
/// setting `mlflow.runName` renames the run.
pub async fn run_tags_set_overwrite_delete(store: &dyn TrackingStore) {
    let run_id = scratch_run(store, "conf-tags").await;
    ok(
        store.set_tag(&run_id, RunTag::new("t", "1")).await,
        "set_tag",
    );
    ok(
        store.set_tag(&run_id, RunTag::new("t", "2")).await,
        "set_tag overwrite",
    );
    ok(
        store.set_tag(&run_id, RunTag::new("empty", "")).await,
        "set_tag with an empty value",
    );
    let run = get_run(store, &run_id).await;
    assert_eq!(
        user_tags(&run.data.tags),
        vec![("empty".into(), String::new()), ("t".into(), "2".into())],
        "tags after set and overwrite"
    );

    ok(store.delete_tag(&run_id, "t").await, "delete_tag");
    let run = get_run(store, &run_id).await;
    assert_eq!(run.tag("t"), None, "a deleted tag is gone");
    assert_eq!(run.tag("empty"), Some(""), "delete_tag removed another tag");
    let e = expect_err(
        store.delete_tag(&run_id, "t").await,
        ErrorKind::NotFound,
        "delete_tag of a missing tag",
    );
    assert!(
        e.message.contains("No tag with name: t"),
        "message {:?} should be \"No tag with name: t in run with id {run_id}\"",
        e.message
    );

    let new_name = unique_name("conf-tag-renamed");
    ok(
        store
            .set_tag(&run_id, RunTag::new("mlflow.runName", new_name.clone()))
            .await,
        "set_tag mlflow.runName",
    );
    let run = get_run(store, &run_id).await;
    assert_eq!(
        run.info.run_name, new_name,
        "set_tag mlflow.runName renames the run"
    );
    assert_sorted_by_key(run.data.tags.iter().map(|t| t.key.as_str()), "run tags");
}

/// Tag values of 8000 characters and unicode come back exactly.
pub async fn run_tag_long_and_unicode_values_round_trip(store: &dyn TrackingStore) {
    let exp_id = new_experiment(store, "conf-tag-val").await;
    let run_id = new_run(store, &exp_id).await.info.run_id;
    // MLflow's longest run tag value.
    let long = incompressible(8000);
    let unicode = "naïve café — Ελληνικά — 日本語 — 🎉".to_string();
    ok(
        store
            .set_tag(&run_id, RunTag::new("long", long.clone()))
            .await,
        "set_tag with 8000 characters",
    );
    ok(
        store
            .set_tag(&run_id, RunTag::new("unicode", unicode.clone()))
            .await,
        "set_tag with unicode",
    );
    let run = get_run(store, &run_id).await;
    assert_eq!(
        run.tag("long"),
        Some(long.as_str()),
        "8000-character tag value"
    );
    assert_eq!(
        run.tag("unicode"),
        Some(unicode.as_str()),
        "unicode tag value"
    );
    for (k, v) in [("long", &long), ("unicode", &unicode)] {
        assert_eq!(
            run_ids_matching(store, &exp_id, &format!("tags.{k} = '{v}'")).await,
            vec![run_id.clone()],
            "search by the whole tag {k}"
        );
    }
}

/// Metric, param, run-tag and experiment-tag keys follow MLflow's rules (api.md §4):
/// alphanumerics (unicode), `_ - . / :` and space, at most 250 characters, and no key that
/// normalises to another path (`a//b`, `./a`, `a/`, `/a`, `..`). Rejected keys write nothing.
pub async fn keys_are_validated(store: &dyn TrackingStore) {
    let exp_id = new_experiment(store, "conf-keys").await;
    let run_id = new_run(store, &exp_id).await.info.run_id;
    let t = now_ms();
    let valid = [
        "a/b".to_string(),
        "a.b".into(),
        "a-b_c".into(),
        "with space".into(),
        "a:b".into(),
        "größe".into(),
        "k".repeat(250),
    ];
    for k in &valid {
        ok(
            store
                .log_metric(&run_id, Metric::new(k.clone(), 1.0, t, 0))
                .await,
            &format!("log_metric with valid key {k:?}"),
        );
        ok(
            store.log_param(&run_id, Param::new(k.clone(), "v")).await,
            &format!("log_param with valid key {k:?}"),
        );
        ok(
            store.set_tag(&run_id, RunTag::new(k.clone(), "v")).await,
            &format!("set_tag with valid key {k:?}"),
        );
        ok(
            store
                .set_experiment_tag(&exp_id, ExperimentTag::new(k.clone(), "v"))
                .await,
            &format!("set_experiment_tag with valid key {k:?}"),
        );
    }
    let invalid = [
        "bad!key".to_string(),
        "semi;colon".into(),
        "new\nline".into(),
        "a//b".into(),
        "/a".into(),
        "a/".into(),
        "./a".into(),
        "a/./b".into(),
        "..".into(),
        "../a".into(),
        ".".into(),
        "k".repeat(251),
    ];
    for k in &invalid {
        expect_err(
            store
                .log_metric(&run_id, Metric::new(k.clone(), 1.0, t, 0))
                .await,
            ErrorKind::InvalidArgument,
            &format!("log_metric with key {k:?}"),
        );
        expect_err(
            store.log_param(&run_id, Param::new(k.clone(), "v")).await,
            ErrorKind::InvalidArgument,
            &format!("log_param with key {k:?}"),
        );
        expect_err(
            store.set_tag(&run_id, RunTag::new(k.clone(), "v")).await,
            ErrorKind::InvalidArgument,
            &format!("set_tag with key {k:?}"),
        );
        expect_err(
            store
                .set_experiment_tag(&exp_id, ExperimentTag::new(k.clone(), "v"))
                .await,
            ErrorKind::InvalidArgument,
            &format!("set_experiment_tag with key {k:?}"),
        );
    }
    let run = get_run(store, &run_id).await;
    let want = sorted(valid.to_vec());
    assert_eq!(
        sorted(run.data.metrics.iter().map(|m| m.key.clone()).collect()),
        want,
        "metric keys after the rejected writes"
    );
    assert_eq!(
        sorted(run.data.params.iter().map(|p| p.key.clone()).collect()),
        want,
        "param keys after the rejected writes"
    );
    assert_eq!(
        sorted(
            user_tags(&run.data.tags)
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        ),
        want,
        "tag keys after the rejected writes"
    );
}
