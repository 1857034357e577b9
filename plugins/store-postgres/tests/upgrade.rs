//! A database written by an older build is brought up to date with its data intact: schema
//! version 6 gives every param and run tag its run's experiment, which the run search then
//! relies on, so a wrong backfill would make runs silently disappear from searches.

mod common;

use cairn_plugin_api::TrackingStore;
use cairn_plugin_api::entities::{Param, RunTag, ViewType};
use cairn_plugin_api::search::{SearchKind, parse_filter};
use cairn_plugin_api::tracking::SearchRuns;
use cairn_store_postgres::PostgresStore;
use futures_executor::block_on;

const ROOT: Option<&str> = Some("file:///tmp/cairn-pg-artifacts");

/// An experiment of `n` runs: run `i` has `opt` = adam or sgd and tag `team` = a or b.
fn experiment(store: &PostgresStore, name: &str, n: usize) -> (String, Vec<String>) {
    common::experiment_of_runs(store, name, n, |i| {
        (
            vec![],
            vec![Param::new("opt", ["adam", "sgd"][i % 2])],
            vec![RunTag::new("team", ["a", "b"][i % 2])],
        )
    })
}

/// The ids of the runs of `exp` that `filter` matches, in the default order.
fn search(store: &PostgresStore, exp: &str, filter: &str) -> Vec<String> {
    let page = block_on(store.search_runs(SearchRuns {
        experiment_ids: vec![exp.to_string()],
        filter: parse_filter(SearchKind::Runs, filter).unwrap(),
        view_type: ViewType::ActiveOnly,
        max_results: 1000,
        order_by: vec![],
        page_token: None,
    }))
    .unwrap();
    let mut ids: Vec<String> = page.items.into_iter().map(|r| r.info.run_id).collect();
    ids.sort();
    ids
}

fn every_other(runs: &[String], first: usize) -> Vec<String> {
    let mut ids: Vec<String> = runs.iter().skip(first).step_by(2).cloned().collect();
    ids.sort();
    ids
}

#[test]
fn params_and_tags_of_a_version_5_database_keep_being_found() {
    let uri = common::fresh_uri();
    let schema = common::schema_of(&uri);
    let store = cairn_store_postgres::open(&uri, ROOT).unwrap();
    let (a, runs_a) = experiment(&store, "a", 6);
    let (b, runs_b) = experiment(&store, "b", 4);
    drop(store);
    // Back to version 5 as that build left it: no experiment on params and tags, value indexes
    // `(key, value, run)` (dropping the column drops the version-6 indexes).
    common::execute(&format!(
        "SET search_path TO {schema};
         ALTER TABLE params DROP COLUMN experiment_id;
         ALTER TABLE tags DROP COLUMN experiment_id;
         CREATE INDEX params_by_key_value ON params (key, value, run)
             WHERE octet_length(value) <= 1024;
         CREATE INDEX tags_by_key_value ON tags (key, value, run)
             WHERE octet_length(value) <= 1024;
         UPDATE cairn_schema SET version = 5;"
    ));

    let store = cairn_store_postgres::open(&uri, ROOT).unwrap();
    assert_eq!(
        common::query_text(&format!("SELECT version::text FROM {schema}.cairn_schema")).as_deref(),
        Some("6")
    );
    for (exp, runs) in [(&a, &runs_a), (&b, &runs_b)] {
        assert_eq!(
            search(&store, exp, "params.opt = 'adam'"),
            every_other(runs, 0)
        );
        assert_eq!(
            search(&store, exp, "params.opt != 'adam'"),
            every_other(runs, 1)
        );
        assert_eq!(search(&store, exp, "tags.team = 'b'"), every_other(runs, 1));
        assert_eq!(
            search(&store, exp, "tags.team = 'b' and params.opt = 'sgd'"),
            every_other(runs, 1)
        );
    }
    // Every row got its own run's experiment.
    assert_eq!(
        common::query_text(&format!(
            "SELECT count(*)::text FROM {schema}.params p JOIN {schema}.runs r ON r.id = p.run \
             WHERE p.experiment_id <> r.experiment_id"
        ))
        .as_deref(),
        Some("0")
    );
    // And what is written after the migration is found too.
    let (_, more) = experiment(&store, "c", 2);
    let run = block_on(store.get_run(&more[0])).unwrap();
    let exp_c = run.info.experiment_id;
    assert_eq!(
        search(&store, &exp_c, "params.opt = 'adam'"),
        vec![more[0].clone()]
    );
}

/// The store's `statement_timeout` bounds requests, not migrations: a replica waiting for
/// another one's migration (here a session holding the migration lock for a second, twenty
/// times the timeout) must start once the lock is free instead of failing.
#[test]
fn the_statement_timeout_does_not_cut_short_a_migration() {
    use cairn_store_postgres::{PostgresSettings, schema::MIGRATION_LOCK};
    let uri = common::fresh_uri();
    let holder = std::thread::spawn(|| {
        common::execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({MIGRATION_LOCK}); SELECT pg_sleep(1); COMMIT;"
        ))
    });
    // The lock is held before the store starts waiting for it (a bigint key below 2^32 is
    // `objid` in pg_locks). The wait is a guard against hanging, not a timing check.
    let held = format!(
        "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND classid = 0 AND objid = {MIGRATION_LOCK}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while common::query_text(&held).as_deref() != Some("1") {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock was never taken"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let settings = PostgresSettings {
        statement_timeout_ms: 50,
        ..Default::default()
    };
    let opened = cairn_store_postgres::open_with_settings(&uri, ROOT, &settings);
    holder.join().unwrap();
    let store = opened.unwrap_or_else(|e| panic!("the store did not start: {e}"));
    assert_eq!(block_on(store.get_experiment("0")).unwrap().name, "Default");
}
