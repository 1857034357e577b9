//! The [`TrackingStore`](crate::TrackingStore) conformance cases: MLflow's tracking-store
//! behaviour (api.md §1.1, §1.2, §1.4, §4, §5), one `pub async fn` per behaviour.
//!
//! Each case creates its own experiments with [`unique_name`](super::unique_name) and scopes
//! every search to them, so cases may run in parallel on one shared database. Search cases
//! build their filters with [`parse_filter`](crate::search::parse_filter), so they need the
//! parser as well as the store.
//!
//! Run them all with [`tracking_store_conformance!`](crate::tracking_store_conformance);
//! [`TRACKING_CASES`] lists their names.

mod batch;
mod datasets;
mod experiments;
mod logged_models;
mod logging;
mod runs;
mod search;
mod traces;
mod ui_reads;

pub use batch::*;
pub use datasets::*;
pub use experiments::*;
pub use logged_models::*;
pub use logging::*;
pub use runs::*;
pub use search::*;
pub use traces::*;
pub use ui_reads::*;

/// The name of every tracking case, in suite order; the same list the macro stamps tests from.
pub const TRACKING_CASES: &[&str] = crate::__cairn_tracking_cases!(names);

#[cfg(test)]
mod tests {
    use super::TRACKING_CASES;

    #[test]
    fn case_names_are_unique_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for name in TRACKING_CASES {
            assert!(seen.insert(*name), "case {name} listed twice");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "case {name} is not snake_case"
            );
        }
        assert!(TRACKING_CASES.len() > 50);
    }
}
