//! The store's statements are prepared once per pooled connection (`db::Transaction`): a
//! second identical call prepares nothing new, and the search translation's per-request texts
//! (unnamed statements) are never kept on the connection. They are also planned once: never
//! for a call's values, not even a page query's loads, which run after the page query planned
//! for its values in the same transaction.

mod common;

use cairn_plugin_api::TrackingStore;
use cairn_plugin_api::entities::{Metric, Param, ViewType};
use cairn_plugin_api::search::{SearchKind, parse_filter, parse_order_by};
use cairn_plugin_api::tracking::{CreateExperiment, CreateRun, SearchRuns};
use cairn_store_postgres::PostgresSettings;
use futures_executor::block_on;

#[test]
fn statements_are_prepared_once_per_connection() {
    // One connection, so every call below runs on the same PostgreSQL session.
    let settings = PostgresSettings {
        pool_size: 1,
        ..Default::default()
    };
    let store = cairn_store_postgres::open_with_settings(
        &common::fresh_uri(),
        Some("file:///tmp/a"),
        &settings,
    )
    .unwrap();
    let exp = block_on(store.create_experiment(CreateExperiment {
        name: "statements".into(),
        ..Default::default()
    }))
    .unwrap();
    let run = block_on(store.create_run(CreateRun {
        experiment_id: exp.clone(),
        user_id: "u".into(),
        ..Default::default()
    }))
    .unwrap();
    block_on(store.log_batch(
        &run.info.run_id,
        vec![Metric::new("loss", 0.25, 0, 0)],
        vec![Param::new("opt", "adam")],
        vec![],
    ))
    .unwrap();
    let search = || {
        block_on(
            store.search_runs(SearchRuns {
                experiment_ids: vec![exp.clone()],
                filter: parse_filter(
                    SearchKind::Runs,
                    "metrics.loss < 0.5 and params.opt = 'adam'",
                )
                .unwrap(),
                order_by: parse_order_by(SearchKind::Runs, &["metrics.loss ASC".to_string()])
                    .unwrap(),
                view_type: ViewType::ActiveOnly,
                max_results: 10,
                page_token: None,
            }),
        )
        .unwrap()
    };
    block_on(store.get_run(&run.info.run_id)).unwrap();
    assert_eq!(search().items.len(), 1);
    let texts = || -> Vec<String> {
        let all = block_on(store.prepared_statements()).unwrap();
        all.into_iter().map(|(text, _, _)| text).collect()
    };
    let before = texts();
    assert!(
        before
            .iter()
            .any(|s| s.contains("FROM params WHERE run = ANY($1)")),
        "load_runs' statements are kept on the connection: {before:#?}"
    );
    assert!(
        !before.iter().any(|s| s.contains("LIMIT")),
        "a search's page query is not kept: {before:#?}"
    );
    for _ in 0..3 {
        block_on(store.get_run(&run.info.run_id)).unwrap();
        assert_eq!(search().items.len(), 1);
    }
    let after = texts();
    assert_eq!(before, after, "the same calls again prepared nothing new");
    // PostgreSQL's default plans a statement for its values five times first (and again after
    // each ANALYZE of its tables); the store's session plans it once, without them.
    for _ in 0..4 {
        assert_eq!(search().items.len(), 1);
    }
    let plans = block_on(store.prepared_statements()).unwrap();
    let (_, generic, custom) = plans
        .iter()
        .find(|(text, _, _)| text.contains("FROM params WHERE run = ANY($1)"))
        .unwrap_or_else(|| panic!("load_runs' params statement: {plans:#?}"));
    assert_eq!(*custom, 0, "planned for a call's values: {plans:#?}");
    assert!(*generic >= 8, "eight searches ran it: {plans:#?}");
    assert!(
        plans.iter().all(|(_, _, custom)| *custom == 0),
        "no store statement is planned for a call's values: {plans:#?}"
    );
}

#[test]
fn only_the_search_translations_statements_are_planned_for_their_values() {
    let store = cairn_store_postgres::open(&common::fresh_uri(), Some("file:///tmp/a")).unwrap();
    let (translated, own) = block_on(store.plan_cache_modes()).unwrap();
    assert_eq!(translated, "force_custom_plan");
    assert_eq!(
        own, "force_generic_plan",
        "the setting is back after the statement"
    );
}
