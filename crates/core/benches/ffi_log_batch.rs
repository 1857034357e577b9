//! `log_batch` through the dynamic-plugin ABI against the same store linked natively.
//!
//! Both sides are Cairn's SQLite store on a file-backed database (WAL, `synchronous = NORMAL`),
//! driven the way `cairn server` drives a store: `TrackingStore::log_batch` awaited on a tokio
//! runtime, `N` calls of 1000 metrics each (10 keys × 100 steps):
//! - **native**: `cairn-store-sqlite` linked into this binary;
//! - **abi**: the same store built as a plugin library (`examples/plugin-sqlite-dylib`) and
//!   loaded through `cairn_core::loader`: each call is encoded in the ABI's binary
//!   `log_batch` form on the host, crosses the ABI (under `block_in_place`), is decoded in
//!   the library and driven there.
//!
//! Within each round the calls alternate between the two sides (so a change in the machine's
//! load hits both); prints each round's median time per call, the overhead ratio abi / native
//! (median over rounds) and what encoding the request costs on its own (binary, and JSON for
//! comparison). Run:
//! `cargo bench -p cairn-core --bench ffi_log_batch`
//! (cargo builds the plugin library in the bench profile, as a dev-dependency).

use cairn_core::loader;
use cairn_core::registry::Registry;
use cairn_plugin_api::entities::Metric;
use cairn_plugin_api::tracking::CreateRun;
use cairn_plugin_api::{BuildContext, TrackingStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const BATCHES: i64 = 200;
const PER_BATCH: i64 = 1000;
const KEYS: i64 = 10;
const ROUNDS: usize = 5;

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

/// The plugin library next to this binary (target/<profile>/deps).
fn library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let file = exe.parent().unwrap().join(format!(
        "{}cairn_example_sqlite_dylib{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(
        file.is_file(),
        "{} was not built (it is a dev-dependency of cairn-core; run through cargo bench)",
        file.display()
    );
    file
}

/// A run in `store` to log to.
fn new_run(rt: &tokio::runtime::Runtime, store: &Arc<dyn TrackingStore>) -> String {
    rt.block_on(store.create_run(CreateRun {
        experiment_id: "0".into(),
        start_time: 0,
        ..Default::default()
    }))
    .unwrap()
    .info
    .run_id
}

/// Seconds one `log_batch` call of `metrics` takes.
fn time_call(
    rt: &tokio::runtime::Runtime,
    store: &Arc<dyn TrackingStore>,
    run: &str,
    metrics: Vec<Metric>,
) -> f64 {
    rt.block_on(async {
        let t = Instant::now();
        store.log_batch(run, metrics, vec![], vec![]).await.unwrap();
        t.elapsed().as_secs_f64()
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ctx(dir: &Path) -> BuildContext {
    BuildContext {
        default_artifact_root: Some(format!("file://{}/artifacts", dir.display())),
        ..BuildContext::default()
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let path = library();
    let registry = Registry::new(loader::load_entries(&path, "the benchmark").unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut native_all, mut abi_all, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let uri = format!("sqlite:///{}/native-{round}.db", dir.path().display());
        // Behind `Validated`, as the registry builds the library's store.
        let native: Arc<dyn TrackingStore> = Arc::new(cairn_plugin_api::Validated::new(Arc::new(
            cairn_store_sqlite::open(&uri, Some("file:///tmp/bench")).unwrap(),
        )));
        let uri = format!("sqlite:///{}/abi-{round}.db", dir.path().display());
        let abi = registry.tracking_store(&uri, ctx(dir.path())).unwrap();
        let (native_run, abi_run) = (new_run(&rt, &native), new_run(&rt, &abi));
        // Calls alternate between the two stores, so a change in the machine's load hits both.
        let (mut n, mut a) = (Vec::new(), Vec::new());
        for b in 0..BATCHES {
            n.push(time_call(&rt, &native, &native_run, batch(b)));
            a.push(time_call(&rt, &abi, &abi_run, batch(b)));
        }
        let (n, a) = (median(n), median(a));
        println!(
            "round {round}: median native {:.3} ms/call, abi {:.3} ms/call, abi/native {:.2}",
            n * 1e3,
            a * 1e3,
            a / n
        );
        native_all.push(n);
        abi_all.push(a);
        ratios.push(a / n);
    }
    let (native, abi) = (median(native_all), median(abi_all));
    println!(
        "log_batch: {ROUNDS} rounds x {BATCHES} calls x {PER_BATCH} metrics ({KEYS} keys), \
         calls alternating; medians"
    );
    println!(
        "native (cairn-store-sqlite linked): {:.3} ms/call, {:.0} rows/s",
        native * 1e3,
        PER_BATCH as f64 / native
    );
    println!(
        "abi (same store loaded from {}): {:.3} ms/call, {:.0} rows/s",
        path.file_name().unwrap().to_string_lossy(),
        abi * 1e3,
        PER_BATCH as f64 / abi
    );
    println!(
        "overhead ratio abi/native (median of rounds): {:.2}",
        median(ratios)
    );
    let (encode, decode) = json_cost();
    println!(
        "the same request as JSON (the ABI before version 2): encode {:.3} ms, decode {:.3} ms",
        encode * 1e3,
        decode * 1e3
    );
    println!(
        "the binary request the ABI sends: encode {:.3} ms (host)",
        binary_cost() * 1e3
    );
}

/// Seconds to encode one `log_batch` request in the ABI's binary form (best of several tries).
fn binary_cost() -> f64 {
    let (run, metrics) = ("0".repeat(32), batch(7));
    let mut best = f64::MAX;
    for _ in 0..50 {
        let t = Instant::now();
        let bytes = cairn_plugin_api::ffi::host::log_batch_request(&run, &metrics, &[], &[]);
        best = best.min(t.elapsed().as_secs_f64());
        assert!(bytes.len() > metrics.len() * 29);
    }
    best
}

/// Seconds to encode and to decode one `log_batch` request as JSON (best of several tries).
fn json_cost() -> (f64, f64) {
    type Request = (String, Vec<Metric>, Vec<()>, Vec<()>);
    let request: Request = ("0".repeat(32), batch(7), vec![], vec![]);
    let (mut encode, mut decode) = (f64::MAX, f64::MAX);
    for _ in 0..50 {
        let t = Instant::now();
        let bytes = serde_json::to_vec(&request).unwrap();
        encode = encode.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let back: Request = serde_json::from_slice(&bytes).unwrap();
        decode = decode.min(t.elapsed().as_secs_f64());
        assert_eq!(back.1.len(), request.1.len());
    }
    (encode, decode)
}
