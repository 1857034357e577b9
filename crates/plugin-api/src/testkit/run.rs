//! The conformance cases as data, for a runner outside `cargo test`: `cairn plugins check
//! --conformance <library>` runs them against the plugins of a built shared library.
//!
//! [`TRACKING`], [`ARTIFACTS`], [`REGISTRY`] and [`BACKEND`] list every case of a suite with a function that
//! starts it (from the same lists the stamping macros use, so they cannot drift apart), and
//! [`run_case`] drives one case's future and reports its [`Outcome`]: a panic is a failure
//! naming the panic message, a case that returned early for a missing capability is skipped
//! (see [`support::skipped`](super::support::skipped)), anything else passed.

use crate::{ArtifactRepository, ModelRegistryStore, TrackingStore};
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A case's future, borrowing the plugin under test.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;
/// Starts a tracking case.
pub type TrackingCase = for<'a> fn(&'a dyn TrackingStore) -> CaseFuture<'a>;
/// Starts an artifact case (the repository must have a fresh, empty root).
pub type ArtifactCase = for<'a> fn(&'a dyn ArtifactRepository) -> CaseFuture<'a>;
/// Starts a registry case.
pub type RegistryCase = for<'a> fn(&'a dyn ModelRegistryStore) -> CaseFuture<'a>;

/// Starts a project-backend case.
pub type BackendCase = for<'a> fn(&'a dyn super::BackendFixture) -> CaseFuture<'a>;

/// Every tracking case, in suite order.
pub const TRACKING: &[(&str, TrackingCase)] = crate::__cairn_tracking_cases!(fns tracking);
/// Every artifact case, in suite order.
pub const ARTIFACTS: &[(&str, ArtifactCase)] = crate::__cairn_artifact_cases!(fns artifacts);
/// Every registry case, in suite order.
pub const REGISTRY: &[(&str, RegistryCase)] = crate::__cairn_registry_cases!(fns registry);
/// Every project-backend case, in suite order.
pub const BACKEND: &[(&str, BackendCase)] = crate::__cairn_backend_cases!(fns backend);

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every check held.
    Passed,
    /// A check failed (or the plugin panicked through it): the message.
    Failed(String),
    /// The case did not apply: why (a capability the plugin does not claim).
    Skipped(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Passed => f.write_str("passed"),
            Outcome::Failed(m) => write!(f, "FAILED: {m}"),
            Outcome::Skipped(why) => write!(f, "skipped: {why}"),
        }
    }
}

thread_local! {
    /// The skip reason of the case being polled on this thread, if it skipped.
    static SKIPPED: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

/// Records that the case being polled on this thread skipped; `false` outside [`run_case`].
pub(crate) fn record_skip(reason: &str) -> bool {
    SKIPPED.with(|s| match s.borrow_mut().as_mut() {
        Some(slot) => {
            *slot = Some(reason.to_owned());
            true
        }
        None => false,
    })
}

/// Drives `case` with whatever executor awaits this future and reports how it ended. Each
/// poll of the case is wrapped in `catch_unwind`, so a failed check ends the case, not the
/// runner.
pub async fn run_case(case: CaseFuture<'_>) -> Outcome {
    let mut case = Some(case);
    let mut skipped: Option<String> = None;
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        let Some(fut) = case.as_mut() else {
            return Poll::Ready(Outcome::Failed("polled after completion".into()));
        };
        // The skip slot is set around each poll, so a case moved between threads between
        // polls is still seen.
        SKIPPED.with(|s| *s.borrow_mut() = Some(skipped.take()));
        let polled = catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx)));
        skipped = SKIPPED.with(|s| s.borrow_mut().take()).flatten();
        let outcome = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(())) => match skipped.take() {
                Some(why) => Outcome::Skipped(why),
                None => Outcome::Passed,
            },
            Err(payload) => Outcome::Failed(crate::blocking::panic_message(&*payload)),
        };
        case = None;
        Poll::Ready(outcome)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_executor::block_on;

    #[test]
    fn the_case_tables_match_the_stamped_lists() {
        fn names<F>(table: &[(&'static str, F)]) -> Vec<&'static str> {
            table.iter().map(|(n, _)| *n).collect()
        }
        assert_eq!(names(TRACKING), super::super::tracking::TRACKING_CASES);
        assert_eq!(names(ARTIFACTS), super::super::artifacts::ARTIFACT_CASES);
        assert_eq!(names(REGISTRY), super::super::registry::REGISTRY_CASES);
    }

    #[test]
    fn outcomes_are_passed_failed_with_the_message_or_skipped_with_the_reason() {
        assert_eq!(block_on(run_case(Box::pin(async {}))), Outcome::Passed);
        let failed = block_on(run_case(Box::pin(async {
            let x = 1;
            assert_eq!(x, 2, "one is not two");
        })));
        match failed {
            Outcome::Failed(m) => assert!(m.contains("one is not two"), "{m}"),
            other => panic!("expected a failure, got {other:?}"),
        }
        let skipped = block_on(run_case(Box::pin(async {
            super::super::support::skipped("a_case", "the store lacks `x`");
        })));
        assert_eq!(
            skipped,
            Outcome::Skipped("the store lacks `x`".to_owned()),
            "a skip recorded in the case is reported"
        );
        // The slot does not leak into the next case.
        assert_eq!(block_on(run_case(Box::pin(async {}))), Outcome::Passed);
    }
}
