//! The run-context contract: providers that add tags to runs Cairn creates.
//!
//! MLflow counterpart: `mlflow.tracking.context.abstract_context.RunContextProvider` (entry
//! point group `mlflow.run_context_provider`). Providers are chosen by name in config and
//! applied in that order when Cairn creates a run (the CLI, project backends, the server for
//! an authenticated user); a later provider overrides an earlier one's keys and tags given by
//! the user are applied last.

use crate::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a provider knows about the run being created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunContext {
    /// The experiment the run is created in.
    pub experiment_id: String,
    /// The authenticated or local user, if known.
    pub user: Option<String>,
    /// The run's tags as given so far (from the user and earlier providers).
    pub tags: BTreeMap<String, String>,
}

/// A source of tags for new runs.
///
/// Methods are synchronous. The host never calls them on an async executor thread: it calls
/// a run's providers one after another on its blocking pool (tokio's `spawn_blocking`), so a
/// provider may block (a library-loaded one always blocks its caller for the call across the
/// ABI). They still run on every run creation, so keep them cheap: a provider that needs I/O
/// (reading a git checkout, say) does it once when built. The host applies the providers
/// named in `[run_context] providers` in that order; a later provider's keys override an
/// earlier one's, and keys the user gave are never overridden.
pub trait RunContextProvider: Send + Sync + 'static {
    /// Whether this provider applies here (MLflow's `in_context()`); `false` means `tags` is
    /// not called.
    fn in_context(&self, ctx: &RunContext) -> bool;

    /// The tags to add, e.g. `mlflow.source.git.commit`. An error is logged by the host, naming the provider, and its tags are left out; the run is still created.
    fn tags(&self, ctx: &RunContext) -> Result<BTreeMap<String, String>>;
}
