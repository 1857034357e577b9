//! Dynamic plugins: the one module of `cairn-core` that loads shared libraries.
//!
//! Libraries are named by `[[plugins]] path = "..."` in `cairn.toml` (a relative path is
//! relative to that file's directory) and by the `:`-separated [`PLUGINS_PATH_VAR`]
//! environment variable (relative to the working directory). Each is loaded once at start-up
//! through [`cairn_plugin_api::ffi::host`], checked (a Cairn plugin, built against a
//! compatible `cairn-plugin-api`, with this ABI version and layout) and described; every
//! plugin it exports becomes a registry entry with [`Origin::File`], next to the built-ins,
//! so a scheme claimed twice is the registry's usual error naming both owners. A library is
//! never unloaded.
//!
//! The host-side wrappers below implement the ordinary plugin traits over a library's objects,
//! so nothing outside this module knows a plugin came from a file. A call into a library
//! blocks until the plugin answers; async methods make it under `block_in_place` on a
//! multi-thread tokio runtime, on tokio's blocking pool (`spawn_blocking`) on a current-thread
//! one, or inline when no tokio runtime is running. Requests and responses are
//! the serde JSON of the plugin-api types (`log_batch` sends the ffi module's compact binary
//! request); artifact bytes stream in chunks both ways.

use crate::config::{LoadedConfig, ValueSource};
use crate::error::{Error, Result};
use crate::registry::{Builder, Origin, PluginEntry, Registry};
use cairn_plugin_api::artifacts::{
    ArtifactCapabilities, ByteStream, CompletedPart, Download, MultipartUpload, PresignedUrl,
};
use cairn_plugin_api::context::RunContext;
use cairn_plugin_api::entities::*;
use cairn_plugin_api::error::ErrorRecord;
use cairn_plugin_api::ffi::host::{
    Library, Object, decode_response, encode_request, log_batch_request,
};
use cairn_plugin_api::ffi::{
    ArtifactMethod, BackendMethod, ContextMethod, FlavorMethod, LibraryDescription, ModelMethod,
    RegistryMethod, StreamMethod, SubmittedRunMethod, TrackingMethod,
};
use cairn_plugin_api::flavor::{ModelData, Signature};
use cairn_plugin_api::model_registry::*;
use cairn_plugin_api::projects::{LogStream, ProjectCapabilities, ProjectRun};
use cairn_plugin_api::tracking::*;
use cairn_plugin_api::{
    ArtifactRepository, BuildContext, LoadedModel, ModelFlavor, ModelRegistryStore, PluginKind,
    ProjectBackend, RunContextProvider, SubmittedRun, TrackingStore, async_trait,
};
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

type PluginResult<T> = cairn_plugin_api::Result<T>;

/// The environment variable listing plugin libraries to load, `:`-separated.
pub const PLUGINS_PATH_VAR: &str = "CAIRN_PLUGINS_PATH";

/// A plugin library to load and where it was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginPath {
    /// The library's path (absolute when it was named relative to a directory).
    pub path: PathBuf,
    /// Where it was named, for messages: `[[plugins]] in /etc/cairn.toml` or
    /// `CAIRN_PLUGINS_PATH`.
    pub from: String,
}

/// The libraries to load: `[[plugins]]` of the configuration, then the entries of
/// `CAIRN_PLUGINS_PATH` (read from `env_value`), in order, each path once.
pub fn plugin_paths(loaded: &LoadedConfig, env_value: Option<&str>) -> Vec<PluginPath> {
    let (base, from) = match loaded.source_of("plugins") {
        ValueSource::File(file) => (
            file.parent().map(Path::to_path_buf).unwrap_or_default(),
            format!("[[plugins]] in {}", file.display()),
        ),
        other => (loaded.dir().to_path_buf(), format!("`plugins` ({other})")),
    };
    let configured = loaded.config().plugins.iter().map(|p| PluginPath {
        path: base.join(&p.path),
        from: from.clone(),
    });
    let from_env = env_value
        .unwrap_or_default()
        .split(':')
        .filter(|s| !s.trim().is_empty())
        .map(|s| PluginPath {
            path: loaded.dir().join(s.trim()),
            from: PLUGINS_PATH_VAR.to_owned(),
        });
    let mut seen = BTreeSet::new();
    configured
        .chain(from_env)
        .filter(|p| seen.insert(p.path.canonicalize().unwrap_or_else(|_| p.path.clone())))
        .collect()
}

/// The registry of this process: the built-ins and every plugin of the libraries the
/// configuration and `CAIRN_PLUGINS_PATH` name. A library that cannot be loaded, or a scheme
/// or name claimed twice, is an error naming the file (and both owners).
pub fn registry(loaded: &LoadedConfig) -> Result<Registry> {
    let env = std::env::var(PLUGINS_PATH_VAR).ok();
    let mut entries: Vec<PluginEntry> = crate::builtins::factories()
        .map(|f| PluginEntry::from_factory(f, Origin::BuiltIn))
        .collect();
    for plugin in plugin_paths(loaded, env.as_deref()) {
        entries.extend(load_entries(&plugin.path, &plugin.from)?);
    }
    Registry::new(entries)
}

/// Loads the library at `path` (named by `from`) and returns one registry entry per plugin
/// it exports.
pub fn load_entries(path: &Path, from: &str) -> Result<Vec<PluginEntry>> {
    let library = Arc::new(load(path, from)?);
    let description = library.description().clone();
    tracing::info!(
        path = %path.display(),
        library = %description.name,
        version = %description.version,
        plugins = description.plugins.len(),
        "loaded plugin library"
    );
    Ok(description
        .plugins
        .iter()
        .enumerate()
        .map(|(index, plugin)| PluginEntry {
            name: plugin.name.clone(),
            package: description.name.clone(),
            version: description.version.clone(),
            origin: Origin::File(path.to_owned()),
            builder: builder(library.clone(), index, plugin.kind),
        })
        .collect())
}

/// Loads and describes the library at `path` without building anything (`cairn plugins
/// check`).
pub fn describe(path: &Path, from: &str) -> Result<LibraryDescription> {
    Ok(load(path, from)?.description().clone())
}

fn load(path: &Path, from: &str) -> Result<Library> {
    Library::load(path).map_err(|e| {
        if let Some(detail) = e.detail() {
            tracing::debug!(path = %path.display(), "plugin library refused:\n{detail}");
        }
        Error::PluginLoad {
            path: path.to_owned(),
            from: from.to_owned(),
            cause: e.to_string(),
        }
    })
}

/// The builder of plugin `index` of `library`: builds the instance inside the library and
/// wraps it in the host type of its kind. The closure keeps the library's handle.
fn builder(library: Arc<Library>, index: usize, kind: PluginKind) -> Builder {
    let build = move |ctx: &BuildContext| library.build(index, ctx);
    match kind {
        PluginKind::TrackingStore => Builder::TrackingStore(Arc::new(move |ctx| {
            Ok(Arc::new(FfiTrackingStore::new(build(ctx)?)?))
        })),
        PluginKind::ArtifactRepository => Builder::ArtifactRepository(Arc::new(move |ctx| {
            Ok(Arc::new(FfiArtifactRepository::new(build(ctx)?)?))
        })),
        PluginKind::RunContextProvider => Builder::RunContextProvider(Arc::new(move |ctx| {
            Ok(Arc::new(FfiRunContextProvider(build(ctx)?)))
        })),
        PluginKind::ModelRegistryStore => Builder::ModelRegistryStore(Arc::new(move |ctx| {
            Ok(Arc::new(FfiModelRegistryStore::new(build(ctx)?)?))
        })),
        PluginKind::ProjectBackend => Builder::ProjectBackend(Arc::new(move |ctx| {
            Ok(Arc::new(FfiProjectBackend::new(build(ctx)?)?))
        })),
        PluginKind::ModelFlavor => Builder::ModelFlavor(Arc::new(move |ctx| {
            Ok(Arc::new(FfiModelFlavor(build(ctx)?)))
        })),
    }
}

// ----- calling a library ------------------------------------------------------------------------

/// Runs a blocking library call without stalling the async executor. On a multi-thread tokio
/// runtime it runs on the calling thread under `block_in_place` (tokio hands this worker's
/// other tasks to another thread meanwhile), which spares the call a hand-off to the blocking
/// pool and back; on a current-thread runtime it goes to the blocking pool; without tokio it
/// runs inline (such a caller is already allowed to block).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> PluginResult<T> + Send + 'static,
) -> PluginResult<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        Ok(handle) => handle.spawn_blocking(f).await.unwrap_or_else(|e| {
            Err(cairn_plugin_api::Error::internal(format!(
                "a call into a plugin library did not complete: {e}"
            )))
        }),
        Err(_) => f(),
    }
}

/// Calls `method` of `object` with `args` (a tuple, as JSON) and decodes the response, off the
/// executor. Encoding happens here; the call and the decoding on the blocking thread.
async fn call<A, R>(object: &Object, method: u32, args: &A) -> PluginResult<R>
where
    A: Serialize + ?Sized,
    R: DeserializeOwned + Send + 'static,
{
    let request = encode_request(args)?;
    let object = object.clone();
    blocking(move || decode_response(&object.call(method, &request)?)).await
}

/// Opens `method` of `object` with `args`, off the executor.
async fn open<A: Serialize + ?Sized>(
    object: &Object,
    method: u32,
    args: &A,
) -> PluginResult<Object> {
    let request = encode_request(args)?;
    let object = object.clone();
    blocking(move || object.open(method, &request)).await
}

/// A stream of the items pulled from a library's source object, ending at its end or after
/// its first error.
fn pull_stream<T: Send + 'static>(
    source: Object,
    item: fn(bytes::Bytes) -> PluginResult<T>,
) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = PluginResult<T>> + Send + 'static>> {
    Box::pin(futures_util::stream::unfold(
        Some(source),
        move |state| async move {
            let source = state?;
            let pulling = source.clone();
            match blocking(move || pulling.call(StreamMethod::Pull.id(), &[])).await {
                Ok(bytes) if bytes.is_empty() => None,
                // The first byte marks an item; the rest is the item.
                Ok(bytes) => Some((item(bytes::Bytes::from(bytes).slice(1..)), Some(source))),
                Err(e) => Some((Err(e), None)),
            }
        },
    ))
}

/// Pushes `body` into a library's sink object and returns the plugin call's result. A failed
/// `body` aborts the upload (the plugin sees the error and discards it).
async fn push_all<R: DeserializeOwned + Send + 'static>(
    sink: Object,
    mut body: ByteStream,
) -> PluginResult<R> {
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) if chunk.is_empty() => {}
            Ok(chunk) => {
                let pushing = sink.clone();
                let pushed =
                    blocking(move || pushing.call(StreamMethod::Push.id(), &chunk).map(drop)).await;
                if let Err(e) = pushed {
                    // The plugin stopped reading: its call's own result says why.
                    return match finish::<R>(sink).await {
                        Err(cause) => Err(cause),
                        Ok(_) => Err(e),
                    };
                }
            }
            Err(e) => {
                let record = serde_json::to_vec(&ErrorRecord::from(&e)).unwrap_or_default();
                let aborting = sink.clone();
                // Best effort: the upload fails with `e` whatever the plugin answers.
                let _ = blocking(move || aborting.call(StreamMethod::Abort.id(), &record)).await;
                return Err(e);
            }
        }
    }
    finish(sink).await
}

async fn finish<R: DeserializeOwned + Send + 'static>(sink: Object) -> PluginResult<R> {
    blocking(move || decode_response(&sink.call(StreamMethod::Finish.id(), &[])?)).await
}

// ----- tracking store ---------------------------------------------------------------------------

/// A [`TrackingStore`] served by a library.
struct FfiTrackingStore {
    object: Object,
    capabilities: TrackingCapabilities,
}

impl FfiTrackingStore {
    fn new(object: Object) -> PluginResult<Self> {
        let capabilities = object.call_json(TrackingMethod::Capabilities.id(), &())?;
        Ok(FfiTrackingStore {
            object,
            capabilities,
        })
    }

    async fn call<A: Serialize + ?Sized, R: DeserializeOwned + Send + 'static>(
        &self,
        method: TrackingMethod,
        args: &A,
    ) -> PluginResult<R> {
        call(&self.object, method.id(), args).await
    }
}

#[async_trait]
impl TrackingStore for FfiTrackingStore {
    fn capabilities(&self) -> TrackingCapabilities {
        self.capabilities
    }
    async fn create_experiment(&self, req: CreateExperiment) -> PluginResult<String> {
        self.call(TrackingMethod::CreateExperiment, &(req,)).await
    }
    async fn get_experiment(&self, experiment_id: &str) -> PluginResult<Experiment> {
        self.call(TrackingMethod::GetExperiment, &(experiment_id,))
            .await
    }
    async fn get_experiment_by_name(&self, name: &str) -> PluginResult<Option<Experiment>> {
        self.call(TrackingMethod::GetExperimentByName, &(name,))
            .await
    }
    async fn delete_experiment(&self, experiment_id: &str) -> PluginResult<()> {
        self.call(TrackingMethod::DeleteExperiment, &(experiment_id,))
            .await
    }
    async fn restore_experiment(&self, experiment_id: &str) -> PluginResult<()> {
        self.call(TrackingMethod::RestoreExperiment, &(experiment_id,))
            .await
    }
    async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> PluginResult<()> {
        self.call(TrackingMethod::RenameExperiment, &(experiment_id, new_name))
            .await
    }
    async fn set_experiment_tag(
        &self,
        experiment_id: &str,
        tag: ExperimentTag,
    ) -> PluginResult<()> {
        self.call(TrackingMethod::SetExperimentTag, &(experiment_id, tag))
            .await
    }
    async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> PluginResult<()> {
        self.call(TrackingMethod::DeleteExperimentTag, &(experiment_id, key))
            .await
    }
    async fn search_experiments(&self, req: SearchExperiments) -> PluginResult<Page<Experiment>> {
        self.call(TrackingMethod::SearchExperiments, &(req,)).await
    }
    async fn create_run(&self, req: CreateRun) -> PluginResult<Run> {
        self.call(TrackingMethod::CreateRun, &(req,)).await
    }
    async fn get_run(&self, run_id: &str) -> PluginResult<Run> {
        self.call(TrackingMethod::GetRun, &(run_id,)).await
    }
    async fn update_run_info(&self, run_id: &str, update: UpdateRun) -> PluginResult<RunInfo> {
        self.call(TrackingMethod::UpdateRunInfo, &(run_id, update))
            .await
    }
    async fn delete_run(&self, run_id: &str) -> PluginResult<()> {
        self.call(TrackingMethod::DeleteRun, &(run_id,)).await
    }
    async fn restore_run(&self, run_id: &str) -> PluginResult<()> {
        self.call(TrackingMethod::RestoreRun, &(run_id,)).await
    }
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<RunTag>,
    ) -> PluginResult<()> {
        // The one request not sent as JSON: the compact form of the hottest write.
        let request = log_batch_request(run_id, &metrics, &params, &tags);
        let object = self.object.clone();
        blocking(move || decode_response(&object.call(TrackingMethod::LogBatch.id(), &request)?))
            .await
    }
    async fn log_metric(&self, run_id: &str, metric: Metric) -> PluginResult<()> {
        self.call(TrackingMethod::LogMetric, &(run_id, metric))
            .await
    }
    async fn log_param(&self, run_id: &str, param: Param) -> PluginResult<()> {
        self.call(TrackingMethod::LogParam, &(run_id, param)).await
    }
    async fn set_tag(&self, run_id: &str, tag: RunTag) -> PluginResult<()> {
        self.call(TrackingMethod::SetTag, &(run_id, tag)).await
    }
    async fn delete_tag(&self, run_id: &str, key: &str) -> PluginResult<()> {
        self.call(TrackingMethod::DeleteTag, &(run_id, key)).await
    }
    async fn get_metric_history(
        &self,
        run_id: &str,
        metric_key: &str,
        max_results: usize,
        page_token: Option<String>,
    ) -> PluginResult<Page<Metric>> {
        self.call(
            TrackingMethod::GetMetricHistory,
            &(run_id, metric_key, max_results, page_token),
        )
        .await
    }
    async fn get_metric_history_bulk_interval(
        &self,
        req: BulkIntervalRequest,
    ) -> PluginResult<Vec<MetricWithRunId>> {
        self.call(TrackingMethod::GetMetricHistoryBulkInterval, &(req,))
            .await
    }
    async fn search_runs(&self, req: SearchRuns) -> PluginResult<Page<Run>> {
        self.call(TrackingMethod::SearchRuns, &(req,)).await
    }
    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> PluginResult<()> {
        self.call(TrackingMethod::LogInputs, &(run_id, datasets, models))
            .await
    }
    async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> PluginResult<()> {
        self.call(TrackingMethod::LogOutputs, &(run_id, models))
            .await
    }
    async fn search_datasets(
        &self,
        experiment_ids: &[String],
    ) -> PluginResult<Vec<DatasetSummary>> {
        self.call(TrackingMethod::SearchDatasets, &(experiment_ids,))
            .await
    }
    async fn record_logged_model(
        &self,
        run_id: &str,
        model_json: serde_json::Value,
    ) -> PluginResult<()> {
        self.call(TrackingMethod::RecordLoggedModel, &(run_id, model_json))
            .await
    }
    async fn create_logged_model(&self, req: CreateLoggedModel) -> PluginResult<LoggedModel> {
        self.call(TrackingMethod::CreateLoggedModel, &(req,)).await
    }
    async fn get_logged_model(
        &self,
        model_id: &str,
        allow_deleted: bool,
    ) -> PluginResult<LoggedModel> {
        self.call(TrackingMethod::GetLoggedModel, &(model_id, allow_deleted))
            .await
    }
    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> PluginResult<LoggedModel> {
        self.call(TrackingMethod::FinalizeLoggedModel, &(model_id, status))
            .await
    }
    async fn delete_logged_model(&self, model_id: &str) -> PluginResult<()> {
        self.call(TrackingMethod::DeleteLoggedModel, &(model_id,))
            .await
    }
    async fn set_logged_model_tags(
        &self,
        model_id: &str,
        tags: Vec<LoggedModelTag>,
    ) -> PluginResult<()> {
        self.call(TrackingMethod::SetLoggedModelTags, &(model_id, tags))
            .await
    }
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> PluginResult<()> {
        self.call(TrackingMethod::DeleteLoggedModelTag, &(model_id, key))
            .await
    }
    async fn log_logged_model_params(
        &self,
        model_id: &str,
        params: Vec<LoggedModelParameter>,
    ) -> PluginResult<()> {
        self.call(TrackingMethod::LogLoggedModelParams, &(model_id, params))
            .await
    }
    async fn search_logged_models(
        &self,
        req: SearchLoggedModels,
    ) -> PluginResult<Page<LoggedModel>> {
        self.call(TrackingMethod::SearchLoggedModels, &(req,)).await
    }
}

// ----- artifact repository ----------------------------------------------------------------------

/// An [`ArtifactRepository`] served by a library.
struct FfiArtifactRepository {
    object: Object,
    capabilities: ArtifactCapabilities,
    root_uri: String,
}

impl FfiArtifactRepository {
    fn new(object: Object) -> PluginResult<Self> {
        Ok(FfiArtifactRepository {
            capabilities: object.call_json(ArtifactMethod::Capabilities.id(), &())?,
            root_uri: object.call_json(ArtifactMethod::RootUri.id(), &())?,
            object,
        })
    }

    async fn call<A: Serialize + ?Sized, R: DeserializeOwned + Send + 'static>(
        &self,
        method: ArtifactMethod,
        args: &A,
    ) -> PluginResult<R> {
        call(&self.object, method.id(), args).await
    }
}

#[async_trait]
impl ArtifactRepository for FfiArtifactRepository {
    fn capabilities(&self) -> ArtifactCapabilities {
        self.capabilities
    }
    fn root_uri(&self) -> &str {
        &self.root_uri
    }
    async fn put(&self, path: &str, body: ByteStream) -> PluginResult<u64> {
        let sink = open(&self.object, ArtifactMethod::Put.id(), &(path,)).await?;
        push_all(sink, body).await
    }
    async fn get(&self, path: &str) -> PluginResult<Download> {
        let source = open(&self.object, ArtifactMethod::Get.id(), &(path,)).await?;
        let size: Option<u64> = call(&source, StreamMethod::Size.id(), &()).await?;
        Ok(Download {
            size,
            body: pull_stream(source, Ok),
        })
    }
    async fn list(&self, path: Option<&str>) -> PluginResult<Vec<FileInfo>> {
        self.call(ArtifactMethod::List, &(path,)).await
    }
    async fn delete(&self, path: Option<&str>) -> PluginResult<()> {
        self.call(ArtifactMethod::Delete, &(path,)).await
    }
    async fn create_multipart_upload(
        &self,
        path: &str,
        num_parts: u32,
    ) -> PluginResult<MultipartUpload> {
        self.call(ArtifactMethod::CreateMultipartUpload, &(path, num_parts))
            .await
    }
    async fn upload_part(
        &self,
        path: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
    ) -> PluginResult<String> {
        let sink = open(
            &self.object,
            ArtifactMethod::UploadPart.id(),
            &(path, upload_id, part_number),
        )
        .await?;
        push_all(sink, body).await
    }
    async fn complete_multipart_upload(
        &self,
        path: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> PluginResult<()> {
        self.call(
            ArtifactMethod::CompleteMultipartUpload,
            &(path, upload_id, parts),
        )
        .await
    }
    async fn abort_multipart_upload(&self, path: &str, upload_id: &str) -> PluginResult<()> {
        self.call(ArtifactMethod::AbortMultipartUpload, &(path, upload_id))
            .await
    }
    async fn presigned_download_url(
        &self,
        path: &str,
        expiration_secs: u64,
    ) -> PluginResult<PresignedUrl> {
        self.call(
            ArtifactMethod::PresignedDownloadUrl,
            &(path, expiration_secs),
        )
        .await
    }
    async fn presigned_upload_url(
        &self,
        path: &str,
        expiration_secs: u64,
    ) -> PluginResult<PresignedUrl> {
        self.call(ArtifactMethod::PresignedUploadUrl, &(path, expiration_secs))
            .await
    }
}

// ----- run-context provider ---------------------------------------------------------------------

/// A [`RunContextProvider`] served by a library. Its methods are synchronous by contract, so
/// the call is made on the calling thread.
struct FfiRunContextProvider(Object);

impl RunContextProvider for FfiRunContextProvider {
    fn in_context(&self, ctx: &RunContext) -> bool {
        // On a failed call, say yes so that `tags` runs and reports the error.
        self.0
            .call_json(ContextMethod::InContext.id(), &(ctx,))
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "run-context provider in_context failed");
                true
            })
    }
    fn tags(&self, ctx: &RunContext) -> PluginResult<BTreeMap<String, String>> {
        self.0.call_json(ContextMethod::Tags.id(), &(ctx,))
    }
}

// ----- model registry store ---------------------------------------------------------------------

/// A [`ModelRegistryStore`] served by a library.
struct FfiModelRegistryStore {
    object: Object,
    capabilities: RegistryCapabilities,
}

impl FfiModelRegistryStore {
    fn new(object: Object) -> PluginResult<Self> {
        Ok(FfiModelRegistryStore {
            capabilities: object.call_json(RegistryMethod::Capabilities.id(), &())?,
            object,
        })
    }

    async fn call<A: Serialize + ?Sized, R: DeserializeOwned + Send + 'static>(
        &self,
        method: RegistryMethod,
        args: &A,
    ) -> PluginResult<R> {
        call(&self.object, method.id(), args).await
    }
}

#[async_trait]
impl ModelRegistryStore for FfiModelRegistryStore {
    fn capabilities(&self) -> RegistryCapabilities {
        self.capabilities
    }
    async fn create_registered_model(
        &self,
        name: &str,
        tags: Vec<RegistryTag>,
        description: Option<String>,
    ) -> PluginResult<RegisteredModel> {
        self.call(
            RegistryMethod::CreateRegisteredModel,
            &(name, tags, description),
        )
        .await
    }
    async fn get_registered_model(&self, name: &str) -> PluginResult<RegisteredModel> {
        self.call(RegistryMethod::GetRegisteredModel, &(name,))
            .await
    }
    async fn rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
    ) -> PluginResult<RegisteredModel> {
        self.call(RegistryMethod::RenameRegisteredModel, &(name, new_name))
            .await
    }
    async fn update_registered_model(
        &self,
        name: &str,
        description: Option<String>,
    ) -> PluginResult<RegisteredModel> {
        self.call(RegistryMethod::UpdateRegisteredModel, &(name, description))
            .await
    }
    async fn delete_registered_model(&self, name: &str) -> PluginResult<()> {
        self.call(RegistryMethod::DeleteRegisteredModel, &(name,))
            .await
    }
    async fn search_registered_models(
        &self,
        req: RegistrySearch,
    ) -> PluginResult<Page<RegisteredModel>> {
        self.call(RegistryMethod::SearchRegisteredModels, &(req,))
            .await
    }
    async fn get_latest_versions(
        &self,
        name: &str,
        stages: Vec<Stage>,
    ) -> PluginResult<Vec<ModelVersion>> {
        self.call(RegistryMethod::GetLatestVersions, &(name, stages))
            .await
    }
    async fn set_registered_model_tag(&self, name: &str, tag: RegistryTag) -> PluginResult<()> {
        self.call(RegistryMethod::SetRegisteredModelTag, &(name, tag))
            .await
    }
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> PluginResult<()> {
        self.call(RegistryMethod::DeleteRegisteredModelTag, &(name, key))
            .await
    }
    async fn create_model_version(&self, req: CreateModelVersion) -> PluginResult<ModelVersion> {
        self.call(RegistryMethod::CreateModelVersion, &(req,)).await
    }
    async fn get_model_version(&self, name: &str, version: &str) -> PluginResult<ModelVersion> {
        self.call(RegistryMethod::GetModelVersion, &(name, version))
            .await
    }
    async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: Option<String>,
    ) -> PluginResult<ModelVersion> {
        self.call(
            RegistryMethod::UpdateModelVersion,
            &(name, version, description),
        )
        .await
    }
    async fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: Stage,
        archive_existing_versions: bool,
    ) -> PluginResult<ModelVersion> {
        self.call(
            RegistryMethod::TransitionModelVersionStage,
            &(name, version, stage, archive_existing_versions),
        )
        .await
    }
    async fn delete_model_version(&self, name: &str, version: &str) -> PluginResult<()> {
        self.call(RegistryMethod::DeleteModelVersion, &(name, version))
            .await
    }
    async fn get_model_version_download_uri(
        &self,
        name: &str,
        version: &str,
    ) -> PluginResult<String> {
        self.call(RegistryMethod::GetModelVersionDownloadUri, &(name, version))
            .await
    }
    async fn search_model_versions(&self, req: RegistrySearch) -> PluginResult<Page<ModelVersion>> {
        self.call(RegistryMethod::SearchModelVersions, &(req,))
            .await
    }
    async fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        tag: RegistryTag,
    ) -> PluginResult<()> {
        self.call(RegistryMethod::SetModelVersionTag, &(name, version, tag))
            .await
    }
    async fn delete_model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
    ) -> PluginResult<()> {
        self.call(RegistryMethod::DeleteModelVersionTag, &(name, version, key))
            .await
    }
    async fn set_registered_model_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
    ) -> PluginResult<()> {
        self.call(
            RegistryMethod::SetRegisteredModelAlias,
            &(name, alias, version),
        )
        .await
    }
    async fn delete_registered_model_alias(&self, name: &str, alias: &str) -> PluginResult<()> {
        self.call(RegistryMethod::DeleteRegisteredModelAlias, &(name, alias))
            .await
    }
    async fn get_model_version_by_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> PluginResult<ModelVersion> {
        self.call(RegistryMethod::GetModelVersionByAlias, &(name, alias))
            .await
    }
}

// ----- project backend --------------------------------------------------------------------------

/// A [`ProjectBackend`] served by a library.
struct FfiProjectBackend {
    object: Object,
    capabilities: ProjectCapabilities,
}

impl FfiProjectBackend {
    fn new(object: Object) -> PluginResult<Self> {
        Ok(FfiProjectBackend {
            capabilities: object.call_json(BackendMethod::Capabilities.id(), &())?,
            object,
        })
    }
}

#[async_trait]
impl ProjectBackend for FfiProjectBackend {
    fn capabilities(&self) -> ProjectCapabilities {
        self.capabilities
    }
    async fn submit(&self, run: ProjectRun) -> PluginResult<Box<dyn SubmittedRun>> {
        let object = open(&self.object, BackendMethod::Submit.id(), &(run,)).await?;
        let run_id = call(&object, SubmittedRunMethod::RunId.id(), &()).await?;
        Ok(Box::new(FfiSubmittedRun { object, run_id }))
    }
}

/// A [`SubmittedRun`] of a library's project backend.
struct FfiSubmittedRun {
    object: Object,
    run_id: String,
}

#[async_trait]
impl SubmittedRun for FfiSubmittedRun {
    fn run_id(&self) -> &str {
        &self.run_id
    }
    async fn wait(&self) -> PluginResult<RunStatus> {
        call(&self.object, SubmittedRunMethod::Wait.id(), &()).await
    }
    async fn status(&self) -> PluginResult<RunStatus> {
        call(&self.object, SubmittedRunMethod::Status.id(), &()).await
    }
    async fn cancel(&self) -> PluginResult<()> {
        call(&self.object, SubmittedRunMethod::Cancel.id(), &()).await
    }
    async fn logs(&self) -> PluginResult<LogStream> {
        let source = open(&self.object, SubmittedRunMethod::Logs.id(), &()).await?;
        Ok(pull_stream(source, |line| {
            String::from_utf8(line.to_vec())
                .map_err(|_| cairn_plugin_api::Error::internal("a plugin's log line is not UTF-8"))
        }))
    }
}

// ----- model flavor -----------------------------------------------------------------------------

/// A [`ModelFlavor`] served by a library.
struct FfiModelFlavor(Object);

#[async_trait]
impl ModelFlavor for FfiModelFlavor {
    async fn load(
        &self,
        model_dir: &Path,
        flavor_config: &serde_json::Value,
    ) -> PluginResult<Arc<dyn LoadedModel>> {
        let object = open(
            &self.0,
            FlavorMethod::Load.id(),
            &(model_dir, flavor_config),
        )
        .await?;
        let signature = call(&object, ModelMethod::Signature.id(), &()).await?;
        Ok(Arc::new(FfiLoadedModel { object, signature }))
    }
}

/// A [`LoadedModel`] of a library's model flavor.
struct FfiLoadedModel {
    object: Object,
    signature: Signature,
}

#[async_trait]
impl LoadedModel for FfiLoadedModel {
    fn signature(&self) -> Signature {
        self.signature.clone()
    }
    async fn predict(&self, input: ModelData) -> PluginResult<ModelData> {
        call(&self.object, ModelMethod::Predict.id(), &(input,)).await
    }
}
