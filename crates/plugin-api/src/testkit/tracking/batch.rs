//! `log_batch`: MLflow's limits and Cairn's all-or-nothing rule.

use crate::ErrorKind;
use crate::entities::*;
use crate::testkit::support::*;
use crate::tracking::*;

/// The metrics, params and tags of one `log_batch` call.
type Batch = (Vec<Metric>, Vec<Param>, Vec<RunTag>);

fn metrics(n: usize, keys: usize, t: i64) -> Vec<Metric> {
    (0..n)
        .map(|i| Metric::new(format!("m{}", i % keys), i as f64, t, (i / keys) as i64))
        .collect()
}

fn params(n: usize) -> Vec<Param> {
    (0..n)
        .map(|i| Param::new(format!("p{i}"), format!("v{i}")))
        .collect()
}

fn tags(n: usize) -> Vec<RunTag> {
    (0..n)
        .map(|i| RunTag::new(format!("t{i}"), format!("v{i}")))
        .collect()
}

/// Exactly 1000 metrics, or 100 params + 100 tags + 800 metrics (1000 entities), succeed and
/// are all stored.
pub async fn log_batch_at_the_limits_succeeds(store: &dyn TrackingStore) {
    let exp_id = new_experiment(store, "conf-batch-max").await;
    let t = now_ms();

    let run_id = new_run(store, &exp_id).await.info.run_id;
    ok(
        store
            .log_batch(&run_id, metrics(1000, 10, t), vec![], vec![])
            .await,
        "log_batch of 1000 metrics",
    );
    let run = get_run(store, &run_id).await;
    assert_eq!(
        run.data.metrics.len(),
        10,
        "10 metric keys after 1000 metrics"
    );
    assert_eq!(
        metric_history(store, &run_id, "m3", 1000).await.len(),
        100,
        "values of one key after 1000 metrics over 10 keys"
    );

    let run_id = new_run(store, &exp_id).await.info.run_id;
    ok(
        store
            .log_batch(&run_id, metrics(800, 800, t), params(100), tags(100))
            .await,
        "log_batch of 800 metrics, 100 params, 100 tags",
    );
    let run = get_run(store, &run_id).await;
    assert_eq!(run.data.metrics.len(), 800, "metrics stored");
    assert_eq!(run.data.params.len(), 100, "params stored");
    assert_eq!(user_tags(&run.data.tags).len(), 100, "tags stored");
    assert_eq!(run.param("p42"), Some("v42"));
    assert_eq!(run.tag("t99"), Some("v99"));
}

/// One over any limit (1001 metrics, 101 params, 101 tags, 1001 entities) is
/// `InvalidArgument` with MLflow's message, and nothing of the batch is written.
pub async fn log_batch_over_a_limit_writes_nothing(store: &dyn TrackingStore) {
    let exp_id = new_experiment(store, "conf-batch-over").await;
    let run_id = new_run(store, &exp_id).await.info.run_id;
    let t = now_ms();
    let cases: Vec<(&str, Batch, Option<&str>)> = vec![
        (
            "1001 metrics",
            (metrics(1001, 7, t), vec![], vec![]),
            Some("A batch logging request can contain at most 1000 metrics"),
        ),
        (
            "101 params",
            (vec![], params(101), vec![]),
            Some("A batch logging request can contain at most 100 params"),
        ),
        (
            "101 tags",
            (vec![], vec![], tags(101)),
            Some("A batch logging request can contain at most 100 tags"),
        ),
        (
            "901 metrics + 100 params (1001 entities)",
            (metrics(901, 7, t), params(100), vec![]),
            None,
        ),
        (
            "801 metrics + 100 params + 100 tags (1001 entities)",
            (metrics(801, 7, t), params(100), tags(100)),
            None,
        ),
    ];
    for (what, (m, p, tg), message) in cases {
        let e = expect_err(
            store.log_batch(&run_id, m, p, tg).await,
            ErrorKind::InvalidArgument,
            &format!("log_batch of {what}"),
        );
        if let Some(prefix) = message {
            assert!(
                e.message.starts_with(prefix),
                "log_batch of {what}: message {:?} should start with {prefix:?}",
                e.message
            );
        }
        let run = get_run(store, &run_id).await;
        assert!(
            run.data.metrics.is_empty()
                && run.data.params.is_empty()
                && user_tags(&run.data.tags).is_empty(),
            "log_batch of {what} was rejected but wrote {:?}",
            run.data
        );
    }
}

/// A batch with one bad entry anywhere (bad metric, param or tag key, a changed param value,
/// a duplicate param key, a negative timestamp) fails and writes nothing of the batch.
pub async fn log_batch_invalid_entry_writes_nothing(store: &dyn TrackingStore) {
    let exp_id = new_experiment(store, "conf-batch-bad").await;
    let run_id = new_run(store, &exp_id).await.info.run_id;
    let t = now_ms();
    ok(
        store
            .log_batch(
                &run_id,
                vec![Metric::new("base", 1.0, t, 0)],
                vec![Param::new("fixed", "a")],
                vec![RunTag::new("keep", "k")],
            )
            .await,
        "log_batch of the starting state",
    );
    let before = get_run(store, &run_id).await;

    let good_metrics = || {
        vec![
            Metric::new("base", 2.0, t + 1, 1),
            Metric::new("fresh", 3.0, t, 0),
        ]
    };
    let good_params = || vec![Param::new("newp", "x")];
    let good_tags = || vec![RunTag::new("keep", "changed"), RunTag::new("newt", "y")];
    let with_metric = |m: Metric| -> Batch {
        let mut v = good_metrics();
        v.push(m);
        (v, good_params(), good_tags())
    };
    let with_params = |extra: Vec<Param>| -> Batch {
        let mut v = good_params();
        v.extend(extra);
        (good_metrics(), v, good_tags())
    };
    let with_tag = |tag: RunTag| -> Batch {
        let mut v = good_tags();
        v.push(tag);
        (good_metrics(), good_params(), v)
    };
    let cases = vec![
        (
            "a bad metric key",
            with_metric(Metric::new("bad!key", 1.0, t, 0)),
        ),
        (
            "a negative timestamp",
            with_metric(Metric::new("neg", 1.0, -1, 0)),
        ),
        (
            "a changed param value",
            with_params(vec![Param::new("fixed", "b")]),
        ),
        (
            "a duplicate param key with different values",
            with_params(vec![Param::new("dup", "1"), Param::new("dup", "2")]),
        ),
        (
            "a duplicate param key with the same value",
            with_params(vec![Param::new("dup2", "1"), Param::new("dup2", "1")]),
        ),
        (
            "a bad param key",
            with_params(vec![Param::new("a//b", "v")]),
        ),
        ("a bad tag key", with_tag(RunTag::new("../up", "v"))),
        (
            "a 251-character tag key",
            with_tag(RunTag::new("t".repeat(251), "v")),
        ),
    ];
    for (what, (m, p, tg)) in cases {
        expect_err(
            store.log_batch(&run_id, m, p, tg).await,
            ErrorKind::InvalidArgument,
            &format!("log_batch with {what}"),
        );
        let after = get_run(store, &run_id).await;
        assert_eq!(
            after.data, before.data,
            "log_batch with {what} was rejected but changed the run's data"
        );
        let fresh = metric_history(store, &run_id, "fresh", 100).await;
        assert!(
            fresh.is_empty(),
            "log_batch with {what} was rejected but logged {fresh:?}"
        );
        let base = metric_history(store, &run_id, "base", 100).await;
        assert_eq!(
            base.len(),
            1,
            "log_batch with {what} was rejected but added to a history: {base:?}"
        );
    }
}
