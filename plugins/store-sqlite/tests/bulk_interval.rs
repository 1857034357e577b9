//! `get_metric_history_bulk_interval`: steps sampled in SQL, as MLflow samples them.

use cairn_plugin_api::entities::Metric;
use cairn_plugin_api::tracking::{BulkIntervalRequest, CreateRun};
use cairn_plugin_api::{ErrorKind, TrackingStore};
use futures_executor::block_on;

fn new_run(store: &impl TrackingStore) -> String {
    block_on(store.create_run(CreateRun {
        experiment_id: "0".into(),
        start_time: 1,
        ..Default::default()
    }))
    .unwrap()
    .info
    .run_id
}

fn request(run_ids: &[&str], max_results: usize, range: Option<(i64, i64)>) -> BulkIntervalRequest {
    BulkIntervalRequest {
        run_ids: run_ids.iter().map(|s| s.to_string()).collect(),
        metric_key: "loss".into(),
        max_results,
        start_step: range.map(|r| r.0),
        end_step: range.map(|r| r.1),
    }
}

#[test]
fn samples_evenly_spaced_steps_plus_each_runs_first_and_last() {
    let store = cairn_store_sqlite::open("sqlite://", Some("file:///tmp/x")).unwrap();
    let a = new_run(&store);
    let b = new_run(&store);
    let metrics = |steps: std::ops::RangeInclusive<i64>| {
        steps
            .map(|s| Metric::new("loss", s as f64, 1000 + s, s))
            .collect::<Vec<_>>()
    };
    block_on(store.log_batch(&a, metrics(0..=100), vec![], vec![])).unwrap();
    block_on(store.log_batch(&b, metrics(50..=60), vec![], vec![])).unwrap();
    // A second value at step 50 of run b, logged later.
    block_on(store.log_metric(&b, Metric::new("loss", -1.0, 5000, 50))).unwrap();

    // 101 distinct steps, 5 samples: indices floor(i * 101 / 5) = 0, 20, 40, 60, 80, plus
    // the last step (100), plus each run's first and last step (0, 100, 50, 60).
    let got =
        block_on(store.get_metric_history_bulk_interval(request(&[&a, &b], 5, None))).unwrap();
    let points: Vec<(String, i64, i64)> = got
        .iter()
        .map(|m| (m.run_id.clone(), m.step, m.timestamp))
        .collect();
    let mut want: Vec<(String, i64, i64)> = [0, 20, 40, 50, 60, 80, 100]
        .iter()
        .map(|&s| (a.clone(), s, 1000 + s))
        .collect();
    want.extend([
        (b.clone(), 50, 1050),
        (b.clone(), 50, 5000),
        (b.clone(), 60, 1060),
    ]);
    assert_eq!(points, want);
    assert!(got.iter().all(|m| m.key == "loss"));

    // The runs come in the order asked for.
    let got =
        block_on(store.get_metric_history_bulk_interval(request(&[&b, &a], 5, None))).unwrap();
    assert_eq!(got[0].run_id, b);

    // A range keeps only steps inside it; below the limit every step is returned.
    let got =
        block_on(store.get_metric_history_bulk_interval(request(&[&a, &b], 2500, Some((10, 30)))))
            .unwrap();
    let steps: Vec<i64> = got.iter().map(|m| m.step).collect();
    assert_eq!(steps, (10..=30).collect::<Vec<_>>());

    // Unknown runs and keys give nothing.
    let got = block_on(store.get_metric_history_bulk_interval(request(
        &["f".repeat(32).as_str()],
        10,
        None,
    )))
    .unwrap();
    assert!(got.is_empty());
}

#[test]
fn limits_are_checked() {
    let store = cairn_store_sqlite::open("sqlite://", Some("file:///tmp/x")).unwrap();
    let ids: Vec<String> = (0..101).map(|i| format!("{i:032x}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    for req in [
        request(&refs, 10, None),
        request(&["a"], 0, None),
        request(&["a"], 2501, None),
        request(&["a"], 10, Some((5, 1))),
        BulkIntervalRequest {
            start_step: Some(1),
            ..request(&["a"], 10, None)
        },
    ] {
        let e = block_on(store.get_metric_history_bulk_interval(req)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
    }
}
