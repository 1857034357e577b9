//! The web UI's reads: `run_keys` (column discovery) and `get_metric_history_downsampled`.
//! The same cases hold for a store's own implementation and for the trait's defaults.

use crate::downsample::HistoryAxis;
use crate::entities::*;
use crate::testkit::support::*;
use crate::tracking::*;

async fn keys(
    store: &dyn TrackingStore,
    exps: &[String],
    kind: RunKeyKind,
    n: usize,
) -> Vec<String> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let page = ok(
            store
                .run_keys(RunKeysRequest {
                    experiment_ids: exps.to_vec(),
                    kind,
                    max_results: n,
                    page_token: token,
                })
                .await,
            "run_keys",
        );
        assert!(
            page.keys.len() <= n,
            "a page of {} keys for max_results {n}",
            page.keys.len()
        );
        assert_eq!(page.runs_scanned, None, "a few runs are all read");
        all.extend(page.keys);
        token = page.next_page_token;
        if token.is_none() {
            return all;
        }
    }
}

/// `run_keys` lists, in ascending order and page by page, the distinct keys of the runs of the
/// given experiments only (deleted runs included), for params, metrics and tags.
pub async fn run_keys_are_distinct_sorted_paged_and_scoped(store: &dyn TrackingStore) {
    let a = new_experiment(store, "conf-keys-a").await;
    let b = new_experiment(store, "conf-keys-b").await;
    let r1 = new_run(store, &a).await.info.run_id;
    let r2 = new_run(store, &a).await.info.run_id;
    let r3 = new_run(store, &b).await.info.run_id;
    let log = |run: String, p: &'static [&'static str], t: &'static str| async move {
        let params = p.iter().map(|k| Param::new(*k, "1")).collect();
        let metrics = p
            .iter()
            .map(|k| Metric::new(format!("m_{k}"), 1.0, 1, 0))
            .collect();
        ok(
            store
                .log_batch(&run, metrics, params, vec![RunTag::new(t, "x")])
                .await,
            "log_batch",
        );
    };
    log(r1.clone(), &["lr", "batch", "z"], "team").await;
    log(r2.clone(), &["lr", "dropout"], "owner").await;
    log(r3.clone(), &["only_in_b", "lr"], "b_tag").await;
    ok(store.delete_run(&r2).await, "delete_run");
    let ea = vec![a.clone()];
    assert_eq!(
        keys(store, &ea, RunKeyKind::Params, 2).await,
        ["batch", "dropout", "lr", "z"]
    );
    assert_eq!(
        keys(store, &ea, RunKeyKind::Metrics, 1000).await,
        ["m_batch", "m_dropout", "m_lr", "m_z"]
    );
    let tags = keys(store, &ea, RunKeyKind::Tags, 1).await;
    assert!(
        tags.contains(&"team".to_owned()) && tags.contains(&"owner".to_owned()),
        "{tags:?}"
    );
    assert!(!tags.contains(&"b_tag".to_owned()), "{tags:?}");
    assert!(tags.windows(2).all(|w| w[0] < w[1]), "{tags:?}");
    assert_eq!(
        keys(store, &[a.clone(), b.clone()], RunKeyKind::Params, 3).await,
        ["batch", "dropout", "lr", "only_in_b", "z"]
    );
    let empty = new_experiment(store, "conf-keys-empty").await;
    assert!(
        keys(store, &[empty], RunKeyKind::Params, 10)
            .await
            .is_empty()
    );
}

/// `get_metric_history_downsampled` keeps, per bucket of x, the minimum and the maximum: at
/// most two points per bucket, in x order, a one-step spike kept, bounds honoured, unknown
/// runs and metrics without points.
pub async fn metric_history_downsampled_keeps_min_and_max_per_bucket(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-downsample").await;
    let run = new_run(store, &exp).await.info.run_id;
    let n = 3000i64;
    for start in (0..n).step_by(1000) {
        let batch = (start..start + 1000)
            .map(|i| {
                let v = if i == 1234 {
                    500.0
                } else if i == 2345 {
                    -500.0
                } else {
                    (i % 10) as f64
                };
                Metric::new("sig", v, 10_000 + i * 2, i)
            })
            .collect();
        ok(
            store.log_batch(&run, batch, vec![], vec![]).await,
            "log_batch",
        );
    }
    let req = |axis, buckets, min_x, max_x| DownsampleRequest {
        run_ids: vec![run.clone(), "0123456789abcdef0123456789abcdef".to_owned()],
        metric_key: "sig".to_owned(),
        axis,
        buckets,
        min_x,
        max_x,
    };
    let got = ok(
        store
            .get_metric_history_downsampled(req(HistoryAxis::Step, 30, None, None))
            .await,
        "get_metric_history_downsampled",
    );
    assert!(got.len() <= 60 && got.len() >= 30, "{} points", got.len());
    assert!(got.iter().all(|m| m.run_id == run && m.key == "sig"));
    assert!(
        got.windows(2).all(|w| w[0].step <= w[1].step),
        "not in step order"
    );
    assert!(
        got.iter().any(|m| m.step == 1234 && m.value == 500.0),
        "the spike is lost"
    );
    assert!(
        got.iter().any(|m| m.step == 2345 && m.value == -500.0),
        "the dip is lost"
    );
    assert_eq!(got.first().map(|m| m.step), Some(0));
    // Bounds on the timestamp axis: only points inside, the spike's timestamp is 12_468.
    let got = ok(
        store
            .get_metric_history_downsampled(req(
                HistoryAxis::Timestamp,
                4,
                Some(12_000),
                Some(13_000),
            ))
            .await,
        "get_metric_history_downsampled with bounds",
    );
    assert!(got.len() <= 8 && !got.is_empty(), "{} points", got.len());
    assert!(got.iter().all(|m| (12_000..=13_000).contains(&m.timestamp)));
    assert!(
        got.iter()
            .any(|m| m.timestamp == 12_468 && m.value == 500.0)
    );
    let none = ok(
        store
            .get_metric_history_downsampled(DownsampleRequest {
                metric_key: "missing".to_owned(),
                ..req(HistoryAxis::Step, 10, None, None)
            })
            .await,
        "get_metric_history_downsampled of a missing metric",
    );
    assert!(none.is_empty());
}
