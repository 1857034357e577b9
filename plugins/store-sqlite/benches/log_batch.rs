//! `log_batch` throughput against a bare SQLite insert loop.
//!
//! Both sides write to a file-backed database in WAL mode with `synchronous = NORMAL`:
//! - **store**: `N` calls of `TrackingStore::log_batch` with 1000 metrics each (10 keys × 100
//!   steps), driven with `futures_executor::block_on`; each call validates, checks the run,
//!   inserts the history rows and updates the latest values in one transaction;
//! - **bare**: the same rows inserted with one prepared rusqlite statement into a plain table
//!   with the same columns and no index, one transaction per 1000 rows.
//!
//! Prints rows/s of both (best of three rounds) and the ratio store / bare.
//! Run: `cargo bench -p cairn-store-sqlite --bench log_batch`.

use cairn_plugin_api::TrackingStore;
use cairn_plugin_api::entities::Metric;
use cairn_plugin_api::tracking::CreateRun;
use futures_executor::block_on;
use rusqlite::{Connection, params};
use std::time::Instant;

const BATCHES: i64 = 200;
const PER_BATCH: i64 = 1000;
const KEYS: i64 = 10;
const ROUNDS: usize = 3;

fn batch(b: i64) -> Vec<Metric> {
    (0..PER_BATCH)
        .map(|i| {
            let key = i % KEYS;
            let step = b * (PER_BATCH / KEYS) + i / KEYS;
            Metric::new(
                format!("metric_{key}"),
                (step as f64).sin(),
                1_700_000_000_000 + step,
                step,
            )
        })
        .collect()
}

fn store_rate(dir: &std::path::Path, round: usize) -> f64 {
    let uri = format!("sqlite:///{}/store-{round}.db", dir.display());
    // Behind the host's validation layer, as the server serves it.
    let store = cairn_plugin_api::Validated::new(std::sync::Arc::new(
        cairn_store_sqlite::open(&uri, Some("file:///tmp/bench")).unwrap(),
    ));
    let run = block_on(store.create_run(CreateRun {
        experiment_id: "0".into(),
        start_time: 0,
        ..Default::default()
    }))
    .unwrap()
    .info
    .run_id;
    let batches: Vec<Vec<Metric>> = (0..BATCHES).map(batch).collect();
    let t = Instant::now();
    for metrics in batches {
        block_on(store.log_batch(&run, metrics, vec![], vec![])).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    (BATCHES * PER_BATCH) as f64 / secs
}

fn bare_rate(dir: &std::path::Path, round: usize) -> f64 {
    let conn = Connection::open(dir.join(format!("bare-{round}.db"))).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE metrics (run INTEGER NOT NULL, key TEXT NOT NULL, timestamp INTEGER NOT NULL,
             step INTEGER NOT NULL, value REAL NOT NULL, is_nan INTEGER NOT NULL,
             dataset_name TEXT, dataset_digest TEXT, model_id TEXT);",
    )
    .unwrap();
    let batches: Vec<Vec<Metric>> = (0..BATCHES).map(batch).collect();
    let mut conn = conn;
    let t = Instant::now();
    for metrics in batches {
        let tx = conn.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO metrics (run, key, timestamp, step, value, is_nan, dataset_name, \
                     dataset_digest, model_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .unwrap();
            for m in &metrics {
                stmt.execute(params![
                    1i64,
                    m.key,
                    m.timestamp,
                    m.step,
                    m.value,
                    false,
                    m.dataset_name,
                    m.dataset_digest,
                    m.model_id
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    (BATCHES * PER_BATCH) as f64 / secs
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut store_best: f64 = 0.0;
    let mut bare_best: f64 = 0.0;
    for round in 0..ROUNDS {
        let s = store_rate(dir.path(), round);
        let b = bare_rate(dir.path(), round);
        println!("round {round}: store {s:.0} rows/s, bare {b:.0} rows/s");
        store_best = store_best.max(s);
        bare_best = bare_best.max(b);
    }
    println!(
        "log_batch: {BATCHES} batches x {PER_BATCH} metrics ({KEYS} keys), best of {ROUNDS} rounds"
    );
    println!("store (TrackingStore::log_batch): {store_best:.0} rows/s");
    println!("bare  (prepared INSERT, 1 tx per 1000 rows): {bare_best:.0} rows/s");
    println!("ratio store/bare: {:.2}", store_best / bare_best);
}
