//! Writing entities with the ids, timestamps and histories another deployment gave them:
//! what `cairn import` (copying an MLflow deployment into Cairn) writes through.
//!
//! The ordinary contracts allocate ids and stamp times themselves; an import must keep the
//! source's (every `runs:/<id>` and `models:/<name>/<version>` URI, every artifact location
//! keeps working). A store offers this through [`TrackingStore::importer`](crate::TrackingStore::importer)
//! and [`ModelRegistryStore::registry_importer`](crate::ModelRegistryStore::registry_importer);
//! both default to `None`, which the host reports as `NOT_IMPLEMENTED`.
//!
//! **Host-side only:** like the trace store, these traits do not cross the plugin ABI, so a
//! dynamic plugin cannot be an import destination (the built-in SQLite and PostgreSQL stores
//! are).
//!
//! Rules every implementation follows:
//! - **One entity, one transaction.** An experiment with its tags, a run with its params, tags,
//!   inputs, outputs and its whole metric history, a LoggedModel with its tags, params and
//!   metrics, a registered model with its tags and aliases, a model version with its tags: each
//!   is written completely or not at all.
//! - **Present means done.** An entity whose id is already in the store is left untouched and
//!   answered [`Imported::Present`] (a re-run continues where an interrupted one stopped, or
//!   does nothing). An id present with a different identity (an experiment id with another
//!   name, a name held by another experiment id) is `AlreadyExists`, and nothing is written.
//! - **Bounded memory.** A run's metric history arrives as a stream of chunks that the store
//!   consumes inside the run's transaction.
//! - Later allocations continue after imported ids: the next experiment id is above every
//!   imported one, the next version of a registered model above `max_version`.

use crate::Result;
use crate::entities::*;
use crate::model_registry::{ModelVersion, RegisteredModel};
use async_trait::async_trait;
use futures_core::Stream;
use std::pin::Pin;

/// A stream of chunks of `T` (each chunk a bounded `Vec`), ended by the source.
pub type Chunks<T> = Pin<Box<dyn Stream<Item = Result<Vec<T>>> + Send>>;

/// What an import call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// The entity was written.
    Written,
    /// The entity was already there (same id and identity); nothing was written.
    Present,
}

/// A run as the source recorded it, without its metric history (streamed separately).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ImportRun {
    /// Id, name, experiment, user, status, times, artifact URI and lifecycle stage, verbatim.
    pub info: RunInfo,
    /// When it was soft-deleted (ms), if it is.
    pub deleted_time: Option<i64>,
    /// Params.
    pub params: Vec<Param>,
    /// Tags (`mlflow.runName` included, as the source has it).
    pub tags: Vec<RunTag>,
    /// Dataset and model inputs.
    pub inputs: RunInputs,
    /// Model outputs.
    pub outputs: RunOutputs,
}

impl ImportRun {
    /// A run with `info` and nothing logged yet.
    pub fn new(info: RunInfo) -> Self {
        ImportRun {
            info,
            deleted_time: None,
            params: Vec::new(),
            tags: Vec::new(),
            inputs: RunInputs::default(),
            outputs: RunOutputs::default(),
        }
    }
}

/// A model version as the source recorded it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ImportModelVersion {
    /// Every field verbatim (`aliases`, `model_params` and `model_metrics` are ignored: aliases
    /// belong to the registered model, the others are read from the LoggedModel).
    pub version: ModelVersion,
    /// Where the registry copied the model's files, if it did (MLflow's `storage_location`).
    pub storage_location: Option<String>,
}

impl ImportModelVersion {
    /// `version` with no storage location.
    pub fn new(version: ModelVersion) -> Self {
        ImportModelVersion {
            version,
            storage_location: None,
        }
    }
}

/// Import into a tracking store (see the module documentation for the rules).
#[async_trait]
pub trait TrackingImport: Send + Sync {
    /// Writes `experiment` (id, name, artifact location, lifecycle stage, creation and
    /// last-update times, tags) as given.
    async fn import_experiment(&self, experiment: Experiment) -> Result<Imported>;

    /// Writes `run` and every chunk of `metrics` (its full history, any order, exact
    /// duplicates dropped; the latest value per key follows the history) in one transaction.
    /// Its experiment must be there (`NotFound` otherwise). When the run is
    /// [`Imported::Present`], `metrics` is not read.
    async fn import_run(&self, run: ImportRun, metrics: Chunks<Metric>) -> Result<Imported>;

    /// Writes a LoggedModel (info, tags, params and metrics) as given, in lifecycle `stage`
    /// (MLflow keeps deleted LoggedModels as hidden rows).
    async fn import_logged_model(
        &self,
        model: LoggedModel,
        stage: LifecycleStage,
    ) -> Result<Imported>;

    /// Called once after an import wrote everything it had (not after a dry run, nor after a
    /// failed one): a store refreshes what bulk writes leave stale — the PostgreSQL store
    /// runs `ANALYZE`, so the first searches over the imported rows are planned on their
    /// statistics. Default: nothing.
    async fn import_finished(&self) -> Result<()> {
        Ok(())
    }
}

/// Import into a model-registry store (see the module documentation for the rules).
#[async_trait]
pub trait RegistryImport: Send + Sync {
    /// Writes a registered model (name, times, user, description, tags, aliases) as given;
    /// `latest_versions` is ignored. Versions up to `max_version` count as allocated.
    async fn import_registered_model(
        &self,
        model: RegisteredModel,
        max_version: i64,
    ) -> Result<Imported>;

    /// Writes one version of a registered model already imported (`NotFound` otherwise).
    async fn import_model_version(&self, version: ImportModelVersion) -> Result<Imported>;
}

/// The next chunk of `chunks`, awaited.
pub async fn next_chunk<T>(chunks: &mut Chunks<T>) -> Option<Result<Vec<T>>> {
    std::future::poll_fn(|cx| chunks.as_mut().poll_next(cx)).await
}

/// The next chunk of `chunks`, blocking the calling thread (for stores whose transactions run
/// on a thread of their own, as the SQLite store's writer).
pub fn next_chunk_blocking<T>(chunks: &mut Chunks<T>) -> Option<Result<Vec<T>>> {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match chunks.as_mut().poll_next(&mut cx) {
            Poll::Ready(item) => return item,
            Poll::Pending => std::thread::park(),
        }
    }
}
