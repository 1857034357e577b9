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
/// Methods are synchronous and must be cheap: they run on every run creation. A provider that
/// needs I/O (reading a git checkout, say) does it once when built.
pub trait RunContextProvider: Send + Sync + 'static {
    /// Whether this provider applies here (MLflow's `in_context()`); `false` means `tags` is
    /// not called.
    fn in_context(&self, ctx: &RunContext) -> bool;

    /// The tags to add, e.g. `mlflow.source.git.commit`. An error fails the run creation.
    fn tags(&self, ctx: &RunContext) -> Result<BTreeMap<String, String>>;
}
