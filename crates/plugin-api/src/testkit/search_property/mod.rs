//! Property tests of a SQL store's search translation: for random entities and random filters
//! and orderings, the store returns what the reference evaluator ([`crate::search::eval`])
//! selects, in its order, page by page to the end. SQLite and PostgreSQL run the same tests
//! (`cargo test -p cairn-store-sqlite --test search_property`, and the same under
//! `scripts/pg-test-server` for `cairn-store-postgres`), each with a store of its own per case.
//!
//! Values come from small vocabularies on purpose, so ties, missing keys, NaN, case variants and
//! LIKE wildcards meet often. Feature `property-tests` (it brings `proptest`).

mod registry;
mod runs;

pub use registry::{
    model_versions_match_the_reference_evaluator, registered_models_match_the_reference_evaluator,
};
pub use runs::runs_match_the_reference_evaluator;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Runs `test` on `cases` values of `strategy`, as `proptest!` would; a failure panics with the
/// smallest failing input found. Nothing is written to disk (no regression files).
fn check<T: Strategy>(
    cases: u32,
    strategy: T,
    test: impl Fn(T::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}
