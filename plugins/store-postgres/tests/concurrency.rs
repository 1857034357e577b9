//! What several replicas on one database need from the store: writers on separate store
//! instances (separate pools, as separate `cairn server` processes have) racing on one entity,
//! migrations racing at start-up, and the refusal of databases that are not Cairn's.

mod common;

use cairn_plugin_api::entities::{Metric, Param, ViewType};
use cairn_plugin_api::model_registry::CreateModelVersion;
use cairn_plugin_api::tracking::{CreateExperiment, CreateRun, SearchRuns};
use cairn_plugin_api::{ErrorKind, ModelRegistryStore, TrackingStore};
use cairn_store_postgres::PostgresStore;
use futures_executor::block_on;
use std::sync::Arc;

const ROOT: Option<&str> = Some("file:///tmp/cairn-pg-artifacts");

fn replicas(uri: &str, n: usize) -> Vec<Arc<PostgresStore>> {
    (0..n)
        .map(|_| Arc::new(cairn_store_postgres::open(uri, ROOT).unwrap()))
        .collect()
}

#[test]
fn replicas_starting_at_once_migrate_once() {
    let uri = common::fresh_uri();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let uri = uri.clone();
            std::thread::spawn(move || cairn_store_postgres::open(&uri, ROOT).map(|_| ()))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let store = cairn_store_postgres::open(&uri, ROOT).unwrap();
    let exp = block_on(store.get_experiment("0")).unwrap();
    assert_eq!(exp.name, "Default");
}

#[test]
fn model_version_numbers_have_no_duplicates_or_gaps_across_replicas() {
    let uri = common::fresh_uri();
    let stores = replicas(&uri, 3);
    block_on(stores[0].create_registered_model("m", vec![], None)).unwrap();
    let per_thread = 10;
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let store = stores[i % 3].clone();
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|_| {
                        block_on(store.create_model_version(CreateModelVersion {
                            name: "m".into(),
                            source: "file:///tmp/x".into(),
                            ..Default::default()
                        }))
                        .unwrap()
                        .version
                        .parse::<i64>()
                        .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<i64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (1..=6 * per_thread).collect::<Vec<_>>());
}

#[test]
fn latest_metric_is_right_under_concurrent_writers_to_one_run() {
    let uri = common::fresh_uri();
    let stores = replicas(&uri, 3);
    let run = block_on(stores[0].create_run(CreateRun {
        experiment_id: "0".into(),
        user_id: "u".into(),
        start_time: 1,
        ..Default::default()
    }))
    .unwrap();
    let id = run.info.run_id.clone();
    let threads: Vec<_> = (0..6i64)
        .map(|t| {
            let store = stores[t as usize % 3].clone();
            let id = id.clone();
            std::thread::spawn(move || {
                for i in 0..20i64 {
                    let step = i * 6 + t;
                    let batch: Vec<Metric> = ["a", "b", "c"]
                        .iter()
                        .map(|k| Metric::new(*k, step as f64, 1000 + step, step))
                        .collect();
                    block_on(store.log_batch(&id, batch, vec![], vec![])).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let run = block_on(stores[1].get_run(&id)).unwrap();
    assert_eq!(run.data.metrics.len(), 3);
    for m in &run.data.metrics {
        assert_eq!((m.step, m.value), (119, 119.0), "{m:?}");
    }
    let history = block_on(stores[2].get_metric_history(&id, "a", 1000, None)).unwrap();
    assert_eq!(history.items.len(), 120);
}

#[test]
fn a_failing_log_batch_writes_nothing() {
    let uri = common::fresh_uri();
    let store = cairn_store_postgres::open(&uri, ROOT).unwrap();
    let run = block_on(store.create_run(CreateRun {
        experiment_id: "0".into(),
        user_id: "u".into(),
        start_time: 1,
        ..Default::default()
    }))
    .unwrap();
    let id = run.info.run_id;
    block_on(store.log_batch(&id, vec![], vec![Param::new("p", "1")], vec![])).unwrap();
    let e = block_on(store.log_batch(
        &id,
        vec![Metric::new("m", 1.0, 1, 1)],
        vec![Param::new("q", "x"), Param::new("p", "2")],
        vec![],
    ))
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{}", e.message);
    let run = block_on(store.get_run(&id)).unwrap();
    assert!(run.data.metrics.is_empty());
    assert_eq!(run.data.params.len(), 1);
}

#[test]
fn page_tokens_work_on_any_replica() {
    let uri = common::fresh_uri();
    let stores = replicas(&uri, 3);
    let exp = block_on(stores[0].create_experiment(CreateExperiment {
        name: "pages".into(),
        ..Default::default()
    }))
    .unwrap();
    let mut created = Vec::new();
    for i in 0..25 {
        let run = block_on(stores[i % 3].create_run(CreateRun {
            experiment_id: exp.clone(),
            user_id: "u".into(),
            start_time: (i % 4) as i64,
            ..Default::default()
        }))
        .unwrap();
        created.push(run.info.run_id);
    }
    let mut seen = Vec::new();
    let mut token = None;
    for hop in 0.. {
        let page = block_on(stores[hop % 3].search_runs(SearchRuns {
            experiment_ids: vec![exp.clone()],
            filter: None,
            view_type: ViewType::ActiveOnly,
            max_results: 4,
            order_by: vec![],
            page_token: token.take(),
        }))
        .unwrap();
        seen.extend(page.items.into_iter().map(|r| r.info.run_id));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "duplicates in {seen:?}");
    created.sort();
    assert_eq!(sorted, created);
}

#[test]
fn mlflow_and_foreign_databases_are_refused_untouched() {
    let uri = common::fresh_uri();
    let schema = uri.rsplit("%3D").next().unwrap().to_string();
    common::execute(&format!(
        "CREATE TABLE {schema}.alembic_version (version_num TEXT); \
         CREATE TABLE {schema}.experiments (experiment_id INT); \
         INSERT INTO {schema}.alembic_version VALUES ('1b5f0d9ad7c1')"
    ));
    let e = cairn_store_postgres::open(&uri, ROOT).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.contains("MLflow database"), "{}", e.message);
    let uri = common::fresh_uri();
    let other = uri.rsplit("%3D").next().unwrap().to_string();
    common::execute(&format!("CREATE TABLE {other}.customers (id INT)"));
    let e = cairn_store_postgres::open(&uri, ROOT).unwrap_err();
    assert!(e.message.contains("customers"), "{}", e.message);
    // Nothing was created next to the foreign tables.
    common::execute(&format!(
        "DO $$ BEGIN IF (SELECT count(*) FROM pg_tables WHERE schemaname = '{other}') <> 1 \
         THEN RAISE EXCEPTION 'touched'; END IF; END $$"
    ));
}

#[test]
fn a_newer_schema_is_refused() {
    let uri = common::fresh_uri();
    drop(cairn_store_postgres::open(&uri, ROOT).unwrap());
    let schema = uri.rsplit("%3D").next().unwrap().to_string();
    common::execute(&format!("UPDATE {schema}.cairn_schema SET version = 99"));
    let e = cairn_store_postgres::open(&uri, ROOT).unwrap_err();
    assert!(e.message.contains("newer than this build"), "{}", e.message);
}
