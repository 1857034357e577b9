//! The plan of a run search (stated in ARCHITECTURE.md): driven by the searched experiment's
//! runs through `runs_by_experiment_stage_start`, the metric joined once through
//! `latest_metrics`' `(run, key)` index, unchanged when other experiments grow.

mod common;

use cairn_plugin_api::TrackingStore;
use cairn_plugin_api::entities::{Metric, Param, ViewType};
use cairn_plugin_api::search::{SearchKind, parse_filter, parse_order_by};
use cairn_plugin_api::tracking::{CreateExperiment, CreateRun, SearchRuns};
use futures_executor::block_on;

fn experiment_of_runs(store: &cairn_store_postgres::PostgresStore, name: &str, n: usize) -> String {
    let exp = block_on(store.create_experiment(CreateExperiment {
        name: name.into(),
        ..Default::default()
    }))
    .unwrap();
    for i in 0..n {
        let run = block_on(store.create_run(CreateRun {
            experiment_id: exp.clone(),
            user_id: "u".into(),
            start_time: i as i64,
            ..Default::default()
        }))
        .unwrap();
        block_on(store.log_batch(
            &run.info.run_id,
            vec![Metric::new("loss", (i % 10) as f64 / 10.0, 0, 0)],
            vec![Param::new("opt", ["adam", "sgd"][i % 2])],
            vec![],
        ))
        .unwrap();
    }
    exp
}

#[test]
fn run_search_is_driven_by_the_searched_experiment() {
    let store = cairn_store_postgres::open(&common::fresh_uri(), Some("file:///tmp/a")).unwrap();
    let exp = experiment_of_runs(&store, "searched", 100);
    experiment_of_runs(&store, "other", 1000);
    common::execute("ANALYZE");
    let req = SearchRuns {
        experiment_ids: vec![exp],
        filter: parse_filter(
            SearchKind::Runs,
            "metrics.loss < 0.5 and params.opt = 'adam'",
        )
        .unwrap(),
        view_type: ViewType::ActiveOnly,
        max_results: 10,
        order_by: parse_order_by(SearchKind::Runs, &["metrics.loss ASC".to_string()]).unwrap(),
        page_token: None,
    };
    let plan = block_on(store.explain_search_runs(req)).unwrap();
    println!("{}", plan.join("\n"));
    let text = plan.join("\n");
    assert!(text.contains("runs_by_experiment_stage_start"), "{text}");
    assert!(text.contains("latest_metrics_run_key_key"), "{text}");
    assert!(!text.contains("Seq Scan on latest_metrics"), "{text}");
}
