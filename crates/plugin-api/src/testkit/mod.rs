//! Conformance suites: the executable statement of the behaviour every plugin promises.
//!
//! A plugin proves itself by running the suite for its kind against a real instance. Each case
//! is a plain `pub async fn <name>(store: &dyn Trait)` that uses fresh random names, so cases
//! are independent of each other and of whatever else lives in the backing database: one
//! database may be shared by every case, or each case may get its own.
//!
//! # Tracking stores
//!
//! [`tracking_store_conformance!`](crate::tracking_store_conformance) stamps every case of
//! [`tracking`] into its own `#[test] fn <case>()`, so `cargo test` lists, filters and reports
//! each case by name:
//!
//! ```ignore
//! // plugins/store-foo/tests/conformance.rs
//! use std::sync::Arc;
//!
//! mod file {
//!     cairn_plugin_api::tracking_store_conformance!(
//!         Arc::new(super::open_temp_store()),
//!         skips = [],
//!     );
//! }
//! ```
//!
//! The expression is evaluated once per test, inside the future the runner drives, so it may
//! `.await`. By default the runner is [`block_on`] (a `futures-executor` single-thread
//! executor): the store must not need a tokio runtime provided by the caller (a store that
//! does its blocking work on its own threads and wakes the future through a channel is fine).
//! A store built on tokio passes its own runner, any
//! `fn(Pin<Box<dyn Future<Output = ()>>>)`:
//!
//! ```ignore
//! fn run_on_tokio(fut: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) {
//!     tokio::runtime::Runtime::new().unwrap().block_on(fut)
//! }
//! cairn_plugin_api::tracking_store_conformance!(
//!     Arc::new(PgStore::connect(URL).await.unwrap()),
//!     skips = [],
//!     runner = run_on_tokio
//! );
//! ```
//!
//! A store whose backing data must be cleaned up after it (a temporary directory, a scratch
//! database) is given as a pair `(store, guard)`: the pair is a [`Fixture`], the store is
//! dropped first and the guard right after it.
//!
//! Cases that need an optional capability ([`TrackingCapabilities`](crate::TrackingCapabilities))
//! are marked `case if capability` in the suite's case list. A plugin lists the cases its
//! missing capabilities skip at the macro call, `skips = [case, ...]` (`skips = []` when it has
//! every capability): those are stamped as `#[ignore]`d tests, so `cargo test` reports them as
//! ignored rather than passed, and a stamped `conformance_skips_are_as_declared` test fails —
//! printing the list to write — unless `skips` is exactly the cases the plugin's capabilities
//! skip. (A listed case still returns early, printing why, if run with `--include-ignored`.)
//! check it first and, when the plugin lacks it, return early through
//! [`support::skipped`], which prints why on stderr and reports the case as skipped to
//! [`run::run_case`].
//!
//! The cases build filters with [`crate::search::parse_filter`], exactly as the host does, so
//! the search cases also exercise the parser a store receives its trees from.
//!
//! # Model registry stores
//!
//! [`model_registry_store_conformance!`](crate::model_registry_store_conformance) stamps every
//! case of [`registry`] the same way, from an expression producing a [`RegistryFixture`] (an
//! `Arc` of a store, or a pair `(store, guard)`). Cases use fresh model names, so one database
//! may serve them all.
//!
//! # Project backends
//!
//! [`project_backend_conformance!`](crate::project_backend_conformance) stamps every case of
//! [`backend`] the same way, from an expression producing a [`BackendFixture`]: the backend and
//! a template [`ProjectRun`] it can execute (the cases run `sh -c ...` commands in it).
//!
//! # Artifact repositories
//!
//! [`artifact_repository_conformance!`](crate::artifact_repository_conformance) stamps every
//! case of [`artifacts`] the same way, from an expression producing an [`ArtifactFixture`]
//! (an `Arc` of a repository, or a pair `(repository, guard)`). Each test must get a
//! repository with a **fresh, empty root** of its own (a new temporary directory, a new random
//! prefix in a bucket): one case deletes the whole root.
//!
//! ```ignore
//! // plugins/artifacts-foo/tests/conformance.rs
//! fn fresh_repo() -> (std::sync::Arc<FooRepository>, tempfile::TempDir) { ... }
//! cairn_plugin_api::artifact_repository_conformance!(
//!     fresh_repo(),
//!     skips = [presigned_urls_are_urls], // no presigned URLs
//! );
//! ```
//!
//! # Against a built shared library
//!
//! The macros test a plugin linked into the test binary. To prove the library Cairn actually
//! loads — every call through the ABI, chunked streams, caught panics — run
//! `cairn plugins check --conformance <library>`: it builds each plugin of the library through
//! Cairn's loader and runs every suite of its kind from the [`run`] tables, reporting each case
//! passed, failed or skipped, and exits nonzero if one failed.

//! # Model flavors
//!
//! [`model_flavor_conformance!`](crate::model_flavor_conformance) stamps every case of
//! [`flavor`] from an expression producing a [`FlavorFixture`]: a [`flavor::FlavorCase`] (the
//! flavor, a model directory, an input with the output an independent reference computed for
//! it, and the capabilities the loaded model reports), or a pair `(case, guard)`. Cases that
//! need tensor input or a batchable model are skipped by the declared capabilities.
//!
//! ```ignore
//! cairn_plugin_api::model_flavor_conformance!(logistic_regression_case(), skips = []);
//! ```

pub mod artifacts;
pub mod backend;
pub mod flavor;
pub mod import;
pub mod registry;
pub mod run;
#[cfg(feature = "property-tests")]
pub mod search_property;
pub mod support;
pub mod tracking;

use crate::projects::ProjectRun;
use crate::{ArtifactRepository, ModelRegistryStore, ProjectBackend, TrackingStore};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use support::unique_name;

/// What a conformance macro's expression produces: something that holds a store.
///
/// Implemented for `Arc<S>` of any store (including `Arc<dyn TrackingStore>`) and for a pair
/// `(fixture, guard)`, where the guard (a temporary directory, say) must outlive the store.
pub trait Fixture {
    /// The store under test.
    fn store(&self) -> &dyn TrackingStore;

    /// The store under test, shared.
    fn shared(&self) -> Arc<dyn TrackingStore>;
}

impl<S: TrackingStore> Fixture for Arc<S> {
    fn store(&self) -> &dyn TrackingStore {
        &**self
    }

    fn shared(&self) -> Arc<dyn TrackingStore> {
        self.clone()
    }
}

impl Fixture for Arc<dyn TrackingStore> {
    fn store(&self) -> &dyn TrackingStore {
        &**self
    }

    fn shared(&self) -> Arc<dyn TrackingStore> {
        self.clone()
    }
}

/// Tuple fields drop in order, so the store goes before its guard.
impl<F: Fixture, G> Fixture for (F, G) {
    fn store(&self) -> &dyn TrackingStore {
        self.0.store()
    }

    fn shared(&self) -> Arc<dyn TrackingStore> {
        self.0.shared()
    }
}

/// `fixture`'s store behind [`Validated`](crate::Validated), as the host serves every tracking
/// store: [`tracking_store_conformance!`](crate::tracking_store_conformance) tests a store
/// through it, since a store does not repeat the stateless checks the layer makes.
pub fn validated<F: Fixture>(fixture: F) -> (Arc<dyn TrackingStore>, F) {
    (Arc::new(crate::Validated::new(fixture.shared())), fixture)
}

/// What [`model_registry_store_conformance!`](crate::model_registry_store_conformance)'s
/// expression produces: something that holds a model registry store.
///
/// Implemented for `Arc<S>` of any store (including `Arc<dyn ModelRegistryStore>`) and for a
/// pair `(fixture, guard)`, where the guard must outlive the store.
pub trait RegistryFixture {
    /// The store under test.
    fn registry(&self) -> &dyn ModelRegistryStore;
}

impl<S: ModelRegistryStore> RegistryFixture for Arc<S> {
    fn registry(&self) -> &dyn ModelRegistryStore {
        &**self
    }
}

impl RegistryFixture for Arc<dyn ModelRegistryStore> {
    fn registry(&self) -> &dyn ModelRegistryStore {
        &**self
    }
}

/// Tuple fields drop in order, so the store goes before its guard.
impl<F: RegistryFixture, G> RegistryFixture for (F, G) {
    fn registry(&self) -> &dyn ModelRegistryStore {
        self.0.registry()
    }
}

/// What [`artifact_repository_conformance!`](crate::artifact_repository_conformance)'s
/// expression produces: something that holds an artifact repository.
///
/// Implemented for `Arc<R>` of any repository (including `Arc<dyn ArtifactRepository>`) and
/// for a pair `(fixture, guard)`, where the guard (a temporary directory, say) must outlive
/// the repository.
pub trait ArtifactFixture {
    /// The repository under test.
    fn repo(&self) -> &dyn ArtifactRepository;
}

impl<R: ArtifactRepository> ArtifactFixture for Arc<R> {
    fn repo(&self) -> &dyn ArtifactRepository {
        &**self
    }
}

impl ArtifactFixture for Arc<dyn ArtifactRepository> {
    fn repo(&self) -> &dyn ArtifactRepository {
        &**self
    }
}

/// Tuple fields drop in order, so the repository goes before its guard.
impl<F: ArtifactFixture, G> ArtifactFixture for (F, G) {
    fn repo(&self) -> &dyn ArtifactRepository {
        self.0.repo()
    }
}

/// What [`project_backend_conformance!`](crate::project_backend_conformance)'s expression
/// produces: a backend, and runs it can execute.
///
/// Implemented for a pair `(backend, template)` of an `Arc` of a backend and a [`ProjectRun`]
/// whose source and environment the backend can run with a POSIX `sh` on the `PATH` (the
/// cases set the run id, the command and variables), and for `((backend, template), guard)`
/// where the guard (a temporary directory, say) must outlive the backend.
pub trait BackendFixture {
    /// The backend under test.
    fn backend(&self) -> &dyn ProjectBackend;
    /// A run of `command` the backend can execute (run id and variables are set by the case).
    fn run(&self, command: Vec<String>) -> ProjectRun;
    /// The backend's capabilities.
    fn capabilities(&self) -> crate::projects::ProjectCapabilities {
        self.backend().capabilities()
    }
    /// The fixture as the cases take it.
    fn fixture(&self) -> &dyn BackendFixture
    where
        Self: Sized,
    {
        self
    }
}

impl<B: ProjectBackend> BackendFixture for (Arc<B>, ProjectRun) {
    fn backend(&self) -> &dyn ProjectBackend {
        &*self.0
    }
    fn run(&self, command: Vec<String>) -> ProjectRun {
        ProjectRun {
            command,
            ..self.1.clone()
        }
    }
}

impl BackendFixture for (Arc<dyn ProjectBackend>, ProjectRun) {
    fn backend(&self) -> &dyn ProjectBackend {
        &*self.0
    }
    fn run(&self, command: Vec<String>) -> ProjectRun {
        ProjectRun {
            command,
            ..self.1.clone()
        }
    }
}

/// Tuple fields drop in order, so the backend goes before its guard.
impl<F: BackendFixture, G> BackendFixture for (F, G) {
    fn backend(&self) -> &dyn ProjectBackend {
        self.0.backend()
    }
    fn run(&self, command: Vec<String>) -> ProjectRun {
        self.0.run(command)
    }
}

/// What [`model_flavor_conformance!`](crate::model_flavor_conformance)'s expression produces:
/// a [`flavor::FlavorCase`], or a pair `(case, guard)` whose guard (a temporary directory
/// holding the model) must outlive it.
pub trait FlavorFixture {
    /// The case under test.
    fn case(&self) -> &flavor::FlavorCase;
}

impl FlavorFixture for flavor::FlavorCase {
    fn case(&self) -> &flavor::FlavorCase {
        self
    }
}

/// Tuple fields drop in order, so the case goes before its guard.
impl<F: FlavorFixture, G> FlavorFixture for (F, G) {
    fn case(&self) -> &flavor::FlavorCase {
        self.0.case()
    }
}

/// The default runner of the stamped tests: drives the case's future to completion on the
/// current thread with `futures_executor::block_on`.
pub fn block_on(fut: Pin<Box<dyn Future<Output = ()>>>) {
    futures_executor::block_on(fut)
}

/// Stamps the conformance cases of one suite: `names` mode gives the case names as a
/// `&[&str]`; `tests` mode stamps each case into its own `#[test] fn <case>()` — those named in
/// `skips` as `#[ignore]`d tests, so `cargo test` reports them as skipped — plus
/// `conformance_skips_are_as_declared`, which fails unless `skips` names exactly the cases whose
/// capability (`case if capability` in the list) the plugin lacks.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_suite_stamp {
    ([names] ($module:ident, $fixture:ident, $access:ident) $($case:ident $(if $cap:ident)?,)*) => {
        &[$(stringify!($case)),*]
    };
    ([fns $named:ident] ($module:ident, $fixture:ident, $access:ident) $($case:ident $(if $cap:ident)?,)*) => {
        &[$((stringify!($case), |p| ::std::boxed::Box::pin($crate::testkit::$module::$case(p)))),*]
    };
    (
        [tests ($make:expr) ($runner:path) [$($skip:ident),*]]
        ($module:ident, $fixture:ident, $access:ident)
        $($case:ident $(if $cap:ident)?,)*
    ) => {
        $crate::__cairn_stamp_cases! { ($) [$($skip),*] {
            $( $case => {
                let fut: ::std::pin::Pin<
                    ::std::boxed::Box<dyn ::std::future::Future<Output = ()>>,
                > = ::std::boxed::Box::pin(async {
                    let fixture = $make;
                    $crate::testkit::$module::$case($crate::testkit::$fixture::$access(&fixture))
                        .await;
                });
                $runner(fut);
            } )*
        } }

        #[test]
        fn conformance_skips_are_as_declared() {
            let fut: ::std::pin::Pin<
                ::std::boxed::Box<dyn ::std::future::Future<Output = ()>>,
            > = ::std::boxed::Box::pin(async {
                let fixture = $make;
                let capabilities = $crate::testkit::$fixture::$access(&fixture).capabilities();
                $crate::testkit::check_skips(
                    &capabilities,
                    &[$((stringify!($case), $crate::__cairn_capability!($($cap)?))),*],
                    &[$(stringify!($skip)),*],
                );
            });
            $runner(fut);
        }
    };
}

/// `Some("capability")` for a case that needs one, else `None`.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_capability {
    () => {
        None
    };
    ($cap:ident) => {
        Some(stringify!($cap))
    };
}

/// Stamps `case => { body }` as `#[test] fn case() { body }`, `#[ignore]`d when `case` is in
/// the skip list. (`$d` is `$`, for the matcher generated here.)
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_stamp_cases {
    (($d:tt) [$($skip:ident),*] { $($case:ident => { $($body:tt)* })* }) => {
        macro_rules! __cairn_stamp_one {
            $(
                ($skip { $d($d body:tt)* }) => {
                    #[test]
                    #[ignore = "skipped: the plugin lacks the capability this conformance case needs (declared in `skips = [...]`)"]
                    fn $skip() { $d($d body)* }
                };
            )*
            ($d name:ident { $d($d body:tt)* }) => {
                #[test]
                fn $d name() { $d($d body)* }
            };
        }
        $( __cairn_stamp_one! { $case { $($body)* } } )*
    };
}

/// Checks a conformance macro's `skips = [...]` against the plugin's capabilities: `cases` are
/// the suite's cases with the capability each needs (if any), `declared` the skip list. Fails,
/// naming the difference and the list to write, unless `declared` is exactly the cases whose
/// capability is `false` in `capabilities`; prints the skipped cases otherwise.
pub fn check_skips<C: serde::Serialize>(
    capabilities: &C,
    cases: &[(&str, Option<&str>)],
    declared: &[&str],
) {
    let caps = serde_json::to_value(capabilities).expect("capabilities serialise");
    let lacking = |cap: &str| match caps.get(cap) {
        Some(serde_json::Value::Bool(has)) => !has,
        _ => panic!("the suite names capability `{cap}`, which {caps} does not have"),
    };
    let actual: Vec<&str> = cases
        .iter()
        .filter(|(_, cap)| cap.is_some_and(lacking))
        .map(|(case, _)| *case)
        .collect();
    let unknown: Vec<&&str> = declared
        .iter()
        .filter(|d| !cases.iter().any(|(case, _)| case == *d))
        .collect();
    let not_skipped: Vec<&&str> = declared.iter().filter(|d| !actual.contains(d)).collect();
    let undeclared: Vec<&&str> = actual.iter().filter(|a| !declared.contains(a)).collect();
    assert!(
        unknown.is_empty() && not_skipped.is_empty() && undeclared.is_empty(),
        "the conformance macro's `skips` differ from what the plugin's capabilities ({caps}) \
         skip:\n  not cases of this suite: {unknown:?}\n  declared but the plugin has the \
         capability (they must run): {not_skipped:?}\n  skipped but not declared: \
         {undeclared:?}\nwrite: skips = [{}]",
        actual.join(", ")
    );
    if !actual.is_empty() {
        eprintln!(
            "{} conformance case(s) skipped for missing capabilities (reported as ignored): {}",
            actual.len(),
            actual.join(", ")
        );
    }
}

/// Stamps every [`tracking`] conformance case into its own `#[test] fn <case>()`.
///
/// `$make` is an expression producing a [`Fixture`](crate::testkit::Fixture): an `Arc` of a
/// store, or a pair `(store, guard)`; the cases reach the store through
/// [`Validated`](crate::Validated), as the host's requests do; it is evaluated once per test inside the async block the runner
/// drives, so it may use `.await`. The optional `runner = path` names a
/// `fn(Pin<Box<dyn Future<Output = ()>>>)` that drives each test's future; the default is
/// [`testkit::block_on`](crate::testkit::block_on), which needs no runtime from the caller.
///
/// ```ignore
/// cairn_plugin_api::tracking_store_conformance!(std::sync::Arc::new(my_store()), skips = []);
/// cairn_plugin_api::tracking_store_conformance!(
///     make_store().await,
///     skips = [logged_model_params], // ... every case a missing capability skips
///     runner = my_runtime::run,
/// );
/// ```
#[macro_export]
macro_rules! tracking_store_conformance {
    ($make:expr, skips = [$($skip:ident),* $(,)?] $(,)?) => {
        $crate::__cairn_tracking_cases! {
            tests ($crate::testkit::validated($make)) ($crate::testkit::block_on) [$($skip),*]
        }
    };
    ($make:expr, skips = [$($skip:ident),* $(,)?], runner = $runner:path $(,)?) => {
        $crate::__cairn_tracking_cases! {
            tests ($crate::testkit::validated($make)) ($runner) [$($skip),*]
        }
    };
}

/// The one list of tracking cases. Expands `__cairn_tracking_stamp!` with the given mode and
/// every case name, so the stamped tests and [`tracking::TRACKING_CASES`] cannot drift apart.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_tracking_cases {
    ($($mode:tt)*) => {
        $crate::__cairn_tracking_stamp! { [$($mode)*]
            // experiments
            default_experiment_exists,
            experiment_create_and_get_by_id_and_name,
            experiment_duplicate_name_is_already_exists,
            experiment_invalid_names_are_invalid_argument,
            experiment_get_unknown_is_not_found,
            experiment_rename,
            experiment_rename_to_taken_name_is_already_exists,
            experiment_rename_deleted_is_invalid_state,
            experiment_delete_and_restore,
            experiment_delete_hides_runs_until_restore,
            experiment_tags_set_overwrite_delete,
            search_experiments_filter_by_name,
            search_experiments_filter_by_tags,
            search_experiments_filter_by_creation_time,
            search_experiments_order_by,
            search_experiments_view_types,
            search_experiments_pages_are_complete_and_stable,
            search_experiments_malformed_page_token_is_invalid_argument,
            // runs
            run_create_defaults,
            run_create_generates_a_name,
            run_create_name_conflicting_with_tag_is_invalid_argument,
            run_create_in_default_experiment_when_none_given,
            run_create_in_deleted_experiment_is_invalid_argument,
            run_create_in_unknown_experiment_is_not_found,
            run_update_changes_only_given_fields,
            run_delete_and_restore,
            run_get_unknown_is_not_found,
            run_writes_to_deleted_run_are_invalid_argument,
            run_unknown_run_writes_are_not_found,
            // params, metrics, tags
            param_same_value_again_is_ok_different_value_is_invalid,
            param_long_and_unicode_values_round_trip,
            metric_history_keeps_every_value,
            metric_latest_is_max_step_then_timestamp_then_value,
            metric_nan_and_infinities_round_trip,
            metric_large_and_negative_steps,
            metric_history_pages_are_complete_and_ordered,
            metric_history_of_missing_key_is_empty,
            metric_history_of_unknown_run_is_not_found,
            run_tags_set_overwrite_delete,
            run_tag_long_and_unicode_values_round_trip,
            keys_are_validated,
            // log_batch
            log_batch_at_the_limits_succeeds,
            log_batch_over_a_limit_writes_nothing,
            log_batch_invalid_entry_writes_nothing,
            // search_runs
            search_runs_metric_comparators,
            search_runs_param_comparators,
            search_runs_tag_comparators,
            search_runs_run_id_in_and_not_in,
            search_runs_string_attributes,
            search_runs_time_attributes,
            search_runs_dataset_filters if datasets,
            search_runs_or_and_parentheses,
            search_runs_order_by_metric_missing_last,
            search_runs_order_by_param_tag_attribute,
            search_runs_order_by_multiple_keys,
            search_runs_default_order,
            search_runs_view_types,
            search_runs_pages_are_complete_and_stable,
            search_runs_malformed_page_token_is_invalid_argument,
            search_runs_empty_experiment_list_finds_nothing,
            search_runs_returns_what_get_run_returns,
            // datasets and inputs
            log_inputs_dataset_is_stored_and_listed_once if datasets,
            log_inputs_different_digest_is_another_dataset if datasets,
            search_datasets_returns_summaries_with_context if datasets,
            log_inputs_model_inputs if logged_models,
            // logged models
            logged_model_create_and_get if logged_models,
            logged_model_create_in_deleted_or_unknown_experiment_fails if logged_models,
            logged_model_get_unknown_is_not_found if logged_models,
            logged_model_finalize_ready if logged_models,
            logged_model_tags_set_overwrite_delete if logged_models,
            logged_model_params if logged_models,
            logged_model_metrics_come_from_runs if logged_models,
            logged_model_search_filter_order_pages if logged_models,
            logged_model_delete if logged_models,
            logged_model_log_outputs_links_run if logged_models,
            // legacy log-model
            record_logged_model_appends_history,
            // traces: not a `TrackingCapabilities` flag (traces do not cross the ABI), so
            // not in `skips = [...]`; each case skips itself, saying so, when
            // `trace_store()` is `None` (`support::Capability::Traces`).
            traces_spans_then_info_round_trip,
            traces_search_filter_order_pages,
            traces_tags_metadata_and_assessments,
            traces_delete_by_ids_and_by_age,
            traces_unknown_is_not_found,
            traces_search_span_attributes_assessments_rlike,
            traces_metrics_aggregate_and_group,
            traces_batch_get_spans,
            traces_search_issue_and_prompt,
            traces_metrics_span_cost_and_model,
            // the web UI's reads
            run_keys_are_distinct_sorted_paged_and_scoped,
            metric_history_downsampled_keeps_min_and_max_per_bucket,
        }
    };
}

/// Expands the case list for one mode: `names` (a `&[&str]`), `fns <module>` (the
/// [`run`] tables) or `tests (make) (runner)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_tracking_stamp {
    ([$($mode:tt)*] $($cases:tt)*) => {
        $crate::__cairn_suite_stamp! { [$($mode)*] (tracking, Fixture, store) $($cases)* }
    };
}

/// Stamps every [`artifacts`] conformance case into its own `#[test] fn <case>()`.
///
/// `$make` is an expression producing an [`ArtifactFixture`](crate::testkit::ArtifactFixture)
/// whose repository has a fresh, empty root; it is evaluated once per test inside the async
/// block the runner drives, so it may use `.await`. The optional `runner = path` names a
/// `fn(Pin<Box<dyn Future<Output = ()>>>)` that drives each test's future; the default is
/// [`testkit::block_on`](crate::testkit::block_on), which needs no runtime from the caller.
///
/// ```ignore
/// cairn_plugin_api::artifact_repository_conformance!(fresh_repo(), skips = []);
/// cairn_plugin_api::artifact_repository_conformance!(
///     make_repo().await,
///     skips = [presigned_urls_are_urls],
///     runner = my_rt::run,
/// );
/// ```
#[macro_export]
macro_rules! artifact_repository_conformance {
    ($make:expr, skips = [$($skip:ident),* $(,)?] $(,)?) => {
        $crate::__cairn_artifact_cases! { tests ($make) ($crate::testkit::block_on) [$($skip),*] }
    };
    ($make:expr, skips = [$($skip:ident),* $(,)?], runner = $runner:path $(,)?) => {
        $crate::__cairn_artifact_cases! { tests ($make) ($runner) [$($skip),*] }
    };
}

/// The one list of artifact cases; see [`__cairn_tracking_cases!`](crate::__cairn_tracking_cases).
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_artifact_cases {
    ($($mode:tt)*) => {
        $crate::__cairn_artifact_stamp! { [$($mode)*]
            put_then_get_round_trips,
            put_accepts_any_chunking,
            nested_directories_list_immediate_children,
            non_canonical_spellings_mean_the_canonical_path,
            empty_file_round_trips,
            unicode_and_spaces_in_names,
            large_file_streams_both_ways,
            list_missing_path_is_empty,
            list_a_file_is_empty,
            get_missing_is_not_found,
            get_directory_is_not_found,
            overwrite_replaces_the_file,
            failed_put_leaves_nothing_behind,
            concurrent_puts_leave_one_whole_file,
            delete_file,
            delete_directory_is_recursive,
            delete_missing_is_ok,
            delete_root_removes_everything,
            head_reports_size,
            put_to_the_root_is_invalid,
            traversal_attempts_are_invalid_argument,
            unsupported_operations_say_so,
            multipart_upload_round_trips if multipart_upload,
            multipart_abort_leaves_nothing if multipart_upload,
            multipart_complete_checks_the_parts if multipart_upload,
            presigned_urls_are_urls if presigned_urls,
        }
    };
}

/// Expands the artifact case list for one mode: `names` (a `&[&str]`), `fns <module>` or
/// `tests (make) (runner)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_artifact_stamp {
    ([$($mode:tt)*] $($cases:tt)*) => {
        $crate::__cairn_suite_stamp! { [$($mode)*] (artifacts, ArtifactFixture, repo) $($cases)* }
    };
}

/// Stamps every [`registry`] conformance case into its own `#[test] fn <case>()`.
///
/// `$make` is an expression producing a [`RegistryFixture`](crate::testkit::RegistryFixture);
/// it is evaluated once per test inside the async block the runner drives, so it may use
/// `.await`. The optional `runner = path` is as for
/// [`tracking_store_conformance!`](crate::tracking_store_conformance).
///
/// ```ignore
/// cairn_plugin_api::model_registry_store_conformance!(std::sync::Arc::new(my_store()), skips = []);
/// ```
#[macro_export]
macro_rules! model_registry_store_conformance {
    ($make:expr, skips = [$($skip:ident),* $(,)?] $(,)?) => {
        $crate::__cairn_registry_cases! { tests ($make) ($crate::testkit::block_on) [$($skip),*] }
    };
    ($make:expr, skips = [$($skip:ident),* $(,)?], runner = $runner:path $(,)?) => {
        $crate::__cairn_registry_cases! { tests ($make) ($runner) [$($skip),*] }
    };
}

/// The one list of registry cases; see [`__cairn_tracking_cases!`](crate::__cairn_tracking_cases).
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_registry_cases {
    ($($mode:tt)*) => {
        $crate::__cairn_registry_stamp! { [$($mode)*]
            registered_model_create_and_get,
            registered_model_duplicate_name_is_already_exists,
            registered_model_invalid_arguments_are_invalid_argument,
            registered_model_unknown_is_not_found,
            registered_model_rename_versions_follow,
            registered_model_rename_to_taken_name_is_already_exists,
            registered_model_update_description,
            registered_model_delete_removes_everything,
            registered_model_tags_set_overwrite_delete,
            model_version_create_numbering,
            model_version_numbers_are_not_reused,
            model_version_bad_and_unknown_versions,
            model_version_update_description,
            model_version_delete,
            model_version_tags_set_overwrite_delete,
            transition_stage_and_latest_versions,
            transition_archive_existing_versions,
            transition_archive_to_inactive_stage_is_internal,
            download_uri_is_storage_location_or_source,
            aliases_set_move_delete_resolve if aliases,
            aliases_invalid_and_unknown if aliases,
            deleting_a_version_drops_its_aliases if aliases,
            search_registered_models_filters,
            search_registered_models_order_and_pages,
            search_registered_models_hides_prompts,
            search_model_versions_filters,
            search_model_versions_order_and_pages,
            search_malformed_page_token_is_invalid_argument,
        }
    };
}

/// Expands the registry case list for one mode: `names` (a `&[&str]`), `fns <module>` or
/// `tests (make) (runner)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_registry_stamp {
    ([$($mode:tt)*] $($cases:tt)*) => {
        $crate::__cairn_suite_stamp! { [$($mode)*] (registry, RegistryFixture, registry) $($cases)* }
    };
}

/// Stamps every [`backend`] conformance case into its own `#[test] fn <case>()`.
///
/// `$make` is an expression producing a [`BackendFixture`](crate::testkit::BackendFixture);
/// it is evaluated once per test inside the async block the runner drives, so it may use
/// `.await`. The optional `runner = path` is as for
/// [`tracking_store_conformance!`](crate::tracking_store_conformance). The cases poll with
/// `std::thread::sleep` between status calls, as a host would with a timer.
///
/// ```ignore
/// cairn_plugin_api::project_backend_conformance!(
///     ((Arc::new(LocalBackend::new(dir.path())), template(dir.path())), dir),
///     skips = [],
/// );
/// ```
#[macro_export]
macro_rules! project_backend_conformance {
    ($make:expr, skips = [$($skip:ident),* $(,)?] $(,)?) => {
        $crate::__cairn_backend_cases! { tests ($make) ($crate::testkit::block_on) [$($skip),*] }
    };
    ($make:expr, skips = [$($skip:ident),* $(,)?], runner = $runner:path $(,)?) => {
        $crate::__cairn_backend_cases! { tests ($make) ($runner) [$($skip),*] }
    };
}

/// The one list of backend cases; see [`__cairn_tracking_cases!`](crate::__cairn_tracking_cases).
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_backend_cases {
    ($($mode:tt)*) => {
        $crate::__cairn_backend_stamp! { [$($mode)*]
            exit_zero_is_finished,
            nonzero_exit_is_failed_with_its_code,
            submit_is_idempotent_on_the_run_id,
            attach_from_the_handle_sees_the_same_run,
            attach_to_an_unknown_run_is_not_found,
            argv_is_passed_as_given if logs,
            environment_variables_reach_the_process if logs,
            logs_from_the_start_and_from_an_offset if logs,
            logs_follow_until_the_run_ends if logs,
            non_utf8_output_never_fails_the_stream if logs,
            cancel_stops_the_run_as_killed if cancel,
            cancel_through_an_attached_run if cancel,
            cancel_after_the_end_is_a_no_op if cancel,
        }
    };
}

/// Expands the backend case list for one mode: `names` (a `&[&str]`) or
/// `tests (make) (runner)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_backend_stamp {
    ([$($mode:tt)*] $($cases:tt)*) => {
        $crate::__cairn_suite_stamp! { [$($mode)*] (backend, BackendFixture, fixture) $($cases)* }
    };
}

/// Stamps every [`flavor`] conformance case into its own `#[test] fn <case>()`.
///
/// `$make` is an expression producing a [`FlavorFixture`](crate::testkit::FlavorFixture); it is
/// evaluated once per test inside the async block the runner drives. The optional
/// `runner = path` is as for [`tracking_store_conformance!`](crate::tracking_store_conformance).
///
/// ```ignore
/// cairn_plugin_api::model_flavor_conformance!(my_case(), skips = []);
/// ```
#[macro_export]
macro_rules! model_flavor_conformance {
    ($make:expr, skips = [$($skip:ident),* $(,)?] $(,)?) => {
        $crate::__cairn_flavor_cases! { tests ($make) ($crate::testkit::block_on) [$($skip),*] }
    };
    ($make:expr, skips = [$($skip:ident),* $(,)?], runner = $runner:path $(,)?) => {
        $crate::__cairn_flavor_cases! { tests ($make) ($runner) [$($skip),*] }
    };
}

/// The one list of flavor cases; see [`__cairn_tracking_cases!`](crate::__cairn_tracking_cases).
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_flavor_cases {
    ($($mode:tt)*) => {
        $crate::__cairn_flavor_stamp! { [$($mode)*]
            predictions_match_the_reference,
            capabilities_are_reported,
            signature_is_the_mlmodel_one,
            missing_model_files_are_invalid_argument,
            corrupt_model_files_are_invalid_argument,
            unknown_input_names_are_invalid_argument,
            wrong_shapes_are_invalid_argument if tensor_input,
            params_are_validated_against_the_signature,
            concurrent_predictions_agree,
            rows_predict_alone_as_in_a_batch if batchable,
        }
    };
}

/// Expands the flavor case list for one mode: `names` (a `&[&str]`) or `tests (make) (runner)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_flavor_stamp {
    ([$($mode:tt)*] $($cases:tt)*) => {
        $crate::__cairn_suite_stamp! { [$($mode)*] (flavor, FlavorFixture, case) $($cases)* }
    };
}

#[cfg(test)]
mod tests {
    use super::check_skips;
    use crate::ArtifactCapabilities;

    const CASES: &[(&str, Option<&str>)] = &[
        ("put_then_get_round_trips", None),
        ("multipart_upload_round_trips", Some("multipart_upload")),
        ("presigned_urls_are_urls", Some("presigned_urls")),
    ];

    fn fails(caps: ArtifactCapabilities, declared: &[&str]) -> String {
        let err = std::panic::catch_unwind(|| check_skips(&caps, CASES, declared)).unwrap_err();
        err.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    #[test]
    fn declared_skips_must_be_exactly_the_cases_a_missing_capability_skips() {
        let multipart_only = ArtifactCapabilities {
            multipart_upload: true,
            ..Default::default()
        };
        check_skips(&multipart_only, CASES, &["presigned_urls_are_urls"]);
        check_skips(
            &ArtifactCapabilities::default(),
            CASES,
            &["multipart_upload_round_trips", "presigned_urls_are_urls"],
        );

        let text = fails(multipart_only, &[]);
        assert!(
            text.contains("skipped but not declared: [\"presigned_urls_are_urls\"]"),
            "{text}"
        );
        assert!(
            text.contains("write: skips = [presigned_urls_are_urls]"),
            "{text}"
        );
        let text = fails(
            multipart_only,
            &["presigned_urls_are_urls", "multipart_upload_round_trips"],
        );
        assert!(
            text.contains("must run): [\"multipart_upload_round_trips\"]"),
            "{text}"
        );
        let text = fails(multipart_only, &["presigned_urls_are_urls", "no_such_case"]);
        assert!(
            text.contains("not cases of this suite: [\"no_such_case\"]"),
            "{text}"
        );
    }
}
