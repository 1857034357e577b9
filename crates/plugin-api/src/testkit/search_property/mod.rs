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

/// Stamps the search property tests as `#[test]`s against the store `$open()` returns (a new
/// one for each case): `search_property_tests!(|| my_store::open(...).unwrap());`
#[macro_export]
macro_rules! search_property_tests {
    ($open:expr $(,)?) => {
        #[test]
        fn run_search_matches_the_reference_evaluator() {
            $crate::testkit::search_property::runs_match_the_reference_evaluator($open, 200);
        }

        #[test]
        fn model_version_search_matches_the_reference_evaluator() {
            $crate::testkit::search_property::model_versions_match_the_reference_evaluator(
                $open, 96,
            );
        }

        #[test]
        fn registered_model_search_matches_the_reference_evaluator() {
            $crate::testkit::search_property::registered_models_match_the_reference_evaluator(
                $open, 96,
            );
        }
    };
}

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
