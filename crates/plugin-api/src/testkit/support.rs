//! Helpers shared by the conformance cases: fresh names, result checks, page collection.
//!
//! Every helper panics with a message naming what was being done, so a failing case says what
//! broke without a debugger.

use crate::entities::*;
use crate::search::{Expr, OrderBy, SearchKind, parse_filter, parse_order_by};
use crate::tracking::*;
use crate::{Error, ErrorKind, Result};
use rand::Rng;
use std::fmt::Debug;
use std::future::Future;

/// Upper bound on pages a collecting helper follows before it declares the store's tokens
/// broken (a token that never ends the search).
const MAX_PAGES: usize = 100_000;

/// `n` random lowercase hexadecimal characters.
pub fn random_hex(n: usize) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| HEX[rng.random_range(0..16)] as char)
        .collect()
}

/// `chars` random characters that do not compress: letters, digits and two- to four-byte
/// UTF-8 characters, so the value is longer in bytes than in characters. A long value of a
/// repeated pattern would pass where a real one fails: PostgreSQL compresses an index entry,
/// and only an incompressible value finds that it cannot exceed a third of a page. Safe inside
/// a quoted filter value (no quote, backslash or `LIKE` wildcard).
pub fn incompressible(chars: usize) -> String {
    const WIDE: [char; 4] = ['é', 'Ж', '你', '🚀'];
    let mut rng = rand::rng();
    (0..chars)
        .map(|_| match rng.random_range(0..66u8) {
            i @ 0..26 => (b'a' + i) as char,
            i @ 26..52 => (b'A' + i - 26) as char,
            i @ 52..62 => (b'0' + i - 52) as char,
            i => WIDE[(i - 62) as usize],
        })
        .collect()
}

/// A name no other case (or earlier test run) uses: `<prefix>-<16 random hex>`.
///
/// Only `[A-Za-z0-9-]` is added, so the result is safe inside a quoted filter value and has no
/// `LIKE` wildcard (`%`, `_`) of its own.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex(16))
}

/// A well-formed run id (32 lowercase hex) that no store has issued.
pub fn random_run_id() -> String {
    random_hex(32)
}

/// An experiment id that no store has issued: a large decimal integer, so SQL stores with
/// integer ids report it as missing rather than malformed.
pub fn unknown_experiment_id() -> String {
    let n: u64 = rand::rng().random_range(1_000_000_000_000..9_000_000_000_000);
    n.to_string()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether `s` is `len` lowercase hexadecimal characters.
pub fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The value of `r`, or a panic naming `what` and the error.
#[track_caller]
pub fn ok<T>(r: Result<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e}"),
    }
}

/// The error of `r`, after checking it is of `kind`; panics naming `what` otherwise.
#[track_caller]
pub fn expect_err<T: Debug>(r: Result<T>, kind: ErrorKind, what: &str) -> Error {
    match r {
        Ok(v) => {
            let mut shown = format!("{v:?}");
            if shown.len() > 300 {
                shown.truncate(300);
                shown.push_str("...");
            }
            panic!("{what}: expected a {kind:?} error, got Ok({shown})")
        }
        Err(e) => {
            assert_eq!(e.kind, kind, "{what}: expected a {kind:?} error, got {e}");
            e
        }
    }
}

/// An optional capability a case may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// [`TrackingCapabilities::datasets`].
    Datasets,
    /// [`TrackingCapabilities::logged_models`].
    LoggedModels,
    /// Traces: [`TrackingStore::trace_store`] is `Some`.
    Traces,
}

/// Whether `store` has `capability`; when it does not, prints that `case` was skipped.
pub fn supports(store: &dyn TrackingStore, capability: Capability, case: &str) -> bool {
    let caps = store.capabilities();
    let (has, name) = match capability {
        Capability::Datasets => (caps.datasets, "datasets"),
        Capability::LoggedModels => (caps.logged_models, "logged_models"),
        Capability::Traces => (store.trace_store().is_some(), "traces"),
    };
    if !has {
        skipped(case, &format!("the store lacks the `{name}` capability"));
    }
    has
}

/// Reports that `case` did not run its checks, and why (a capability the plugin lacks): to
/// [`run_case`](super::run::run_case) when it runs the case, else on stderr (the stamped
/// `#[test]`s). The case returns right after.
pub fn skipped(case: &str, reason: &str) {
    if !super::run::record_skip(reason) {
        eprintln!("conformance case `{case}` skipped: {reason}");
    }
}

/// `filter` parsed for a search of `kind`; panics naming the filter if it does not parse.
#[track_caller]
pub fn filter(kind: SearchKind, filter: &str) -> Option<Expr> {
    match parse_filter(kind, filter) {
        Ok(e) => e,
        Err(e) => panic!("filter {filter:?} ({kind:?}) did not parse: {e}"),
    }
}

/// `clauses` parsed as `order_by` keys of a search of `kind`; panics if they do not parse.
#[track_caller]
pub fn order_by(kind: SearchKind, clauses: &[&str]) -> Vec<OrderBy> {
    let owned: Vec<String> = clauses.iter().map(|c| c.to_string()).collect();
    match parse_order_by(kind, &owned) {
        Ok(o) => o,
        Err(e) => panic!("order_by {clauses:?} ({kind:?}) did not parse: {e}"),
    }
}

/// Creates an experiment named `unique_name(prefix)` and returns its id.
pub async fn new_experiment(store: &dyn TrackingStore, prefix: &str) -> String {
    let name = unique_name(prefix);
    ok(
        store
            .create_experiment(CreateExperiment {
                name: name.clone(),
                ..Default::default()
            })
            .await,
        &format!("create_experiment({name})"),
    )
}

/// Creates a run in `experiment_id` started now, named by the store, with no tags.
pub async fn new_run(store: &dyn TrackingStore, experiment_id: &str) -> Run {
    new_run_with(
        store,
        CreateRun {
            experiment_id: experiment_id.to_string(),
            user_id: "conformance".into(),
            start_time: now_ms(),
            ..Default::default()
        },
    )
    .await
}

/// Creates a run from `req`, panicking with the request on failure.
pub async fn new_run_with(store: &dyn TrackingStore, req: CreateRun) -> Run {
    let what = format!("create_run({req:?})");
    ok(store.create_run(req).await, &what)
}

/// The run `run_id`, panicking on failure.
pub async fn get_run(store: &dyn TrackingStore, run_id: &str) -> Run {
    ok(store.get_run(run_id).await, &format!("get_run({run_id})"))
}

/// Follows page tokens from the first page to the last and returns every item in order.
///
/// Checks on the way what MLflow's stores guarantee: no page is larger than `page_size`, a
/// page that carries a token is full (exactly `page_size` items), a token is given only when
/// more items exist (the page it leads to is not empty), and the pages end.
pub async fn collect_pages<T, F, Fut>(what: &str, page_size: usize, mut fetch: F) -> Vec<T>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for page_no in 0..MAX_PAGES {
        let followed_token = token.is_some();
        let page = match fetch(token.take()).await {
            Ok(p) => p,
            Err(e) => panic!("{what}: page {page_no} (size {page_size}) failed: {e}"),
        };
        let len = page.items.len();
        assert!(
            len <= page_size,
            "{what}: page {page_no} holds {len} items, more than max_results {page_size}"
        );
        assert!(
            !(followed_token && len == 0),
            "{what}: page {page_no} (size {page_size}), reached through a next_page_token, is \
             empty: a token must be given only when more items exist"
        );
        all.extend(page.items);
        match page.next_page_token {
            Some(t) => {
                assert_eq!(
                    len, page_size,
                    "{what}: page {page_no} carries a next_page_token but holds {len} of \
                     {page_size} items"
                );
                token = Some(t);
            }
            None => return all,
        }
    }
    panic!("{what}: still getting next_page_tokens after {MAX_PAGES} pages of {page_size}")
}

/// A `search_runs` request over `experiment_ids` returning up to 1000 runs.
pub fn runs_request(
    experiment_ids: &[&str],
    filter: Option<Expr>,
    order_by: Vec<OrderBy>,
    view_type: ViewType,
) -> SearchRuns {
    SearchRuns {
        experiment_ids: experiment_ids.iter().map(|s| s.to_string()).collect(),
        filter,
        view_type,
        max_results: 1000,
        order_by,
        page_token: None,
    }
}

/// Every run `req` finds, following pages of `req.max_results`.
pub async fn all_runs(store: &dyn TrackingStore, req: SearchRuns) -> Vec<Run> {
    let what = format!("search_runs({req:?})");
    let page_size = req.max_results;
    collect_pages(&what, page_size, |page_token| {
        store.search_runs(SearchRuns {
            page_token,
            ..req.clone()
        })
    })
    .await
}

/// Ids of every active run of `experiment_id` matching the `filter` string, in result order.
pub async fn run_ids_matching(
    store: &dyn TrackingStore,
    experiment_id: &str,
    filter_str: &str,
) -> Vec<String> {
    let req = runs_request(
        &[experiment_id],
        filter(SearchKind::Runs, filter_str),
        vec![],
        ViewType::ActiveOnly,
    );
    run_ids(&all_runs(store, req).await)
}

/// Ids of every active run of `experiment_id` in the order given by `order` clauses.
pub async fn run_ids_ordered(
    store: &dyn TrackingStore,
    experiment_id: &str,
    order: &[&str],
) -> Vec<String> {
    let req = runs_request(
        &[experiment_id],
        None,
        order_by(SearchKind::Runs, order),
        ViewType::ActiveOnly,
    );
    run_ids(&all_runs(store, req).await)
}

/// The ids of `runs`, in order.
pub fn run_ids(runs: &[Run]) -> Vec<String> {
    runs.iter().map(|r| r.info.run_id.clone()).collect()
}

/// `v` sorted.
pub fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Panics, naming `what`, if `items` holds a value twice.
#[track_caller]
pub fn assert_no_duplicates<T: Ord + Debug + Clone>(items: &[T], what: &str) {
    let mut s = items.to_vec();
    s.sort();
    for w in s.windows(2) {
        assert!(w[0] != w[1], "{what}: {:?} appears more than once", w[0]);
    }
}

/// A `search_experiments` request returning up to 1000 experiments.
pub fn experiments_request(
    filter: Option<Expr>,
    order_by: Vec<OrderBy>,
    view_type: ViewType,
) -> SearchExperiments {
    SearchExperiments {
        view_type,
        max_results: 1000,
        filter,
        order_by,
        page_token: None,
    }
}

/// Every experiment `req` finds, following pages of `req.max_results`.
pub async fn all_experiments(store: &dyn TrackingStore, req: SearchExperiments) -> Vec<Experiment> {
    let what = format!("search_experiments({req:?})");
    let page_size = req.max_results;
    collect_pages(&what, page_size, |page_token| {
        store.search_experiments(SearchExperiments {
            page_token,
            ..req.clone()
        })
    })
    .await
}

/// Ids of every experiment (of `view_type`) matching the `filter` string, in result order.
pub async fn experiment_ids_matching(
    store: &dyn TrackingStore,
    filter_str: &str,
    view_type: ViewType,
) -> Vec<String> {
    let req = experiments_request(
        filter(SearchKind::Experiments, filter_str),
        vec![],
        view_type,
    );
    all_experiments(store, req)
        .await
        .into_iter()
        .map(|e| e.experiment_id)
        .collect()
}

/// The whole history of `key` on `run_id`, following pages of `page_size`.
pub async fn metric_history(
    store: &dyn TrackingStore,
    run_id: &str,
    key: &str,
    page_size: usize,
) -> Vec<Metric> {
    let what = format!("get_metric_history({run_id}, {key})");
    collect_pages(&what, page_size, |token| {
        store.get_metric_history(run_id, key, page_size, token)
    })
    .await
}

/// The `(key, value)` pairs of `tags` whose key does not start with `mlflow.`.
pub fn user_tags(tags: &[RunTag]) -> Vec<(String, String)> {
    tags.iter()
        .filter(|t| !t.key.starts_with("mlflow."))
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}

/// Panics, naming `what`, unless `keys` is sorted ascending.
#[track_caller]
pub fn assert_sorted_by_key<'a>(keys: impl IntoIterator<Item = &'a str>, what: &str) {
    let keys: Vec<&str> = keys.into_iter().collect();
    let mut s = keys.clone();
    s.sort();
    assert_eq!(keys, s, "{what}: entries are not ordered by key");
}
