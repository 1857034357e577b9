//! The library side: the root module [`export_plugins!`](crate::export_plugins) exports, and
//! the objects that serve the host's calls by decoding the request, driving the plugin's
//! future to completion on the calling thread and encoding the result.
//!
//! Every function the host can reach catches panics and turns them into `Internal` errors.

use super::abi::{FfiObject, FfiObject_TO, LibHeader, ObjectBox, PluginLib, PluginLibRef};
use super::*;
use crate::artifacts::{ArtifactRepository, ByteStream};
use crate::context::RunContextProvider;
use crate::error::ErrorRecord;
use crate::flavor::{LoadedModel, ModelFlavor};
use crate::model_registry::ModelRegistryStore;
use crate::projects::{LogStream, ProjectBackend, SubmittedRun};
use crate::tracking::TrackingStore;
use crate::{Build, BuildContext, Error, Result};
use abi_stable::library::{CheckTypeLayout, RootModuleResult};
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, ROk, RResult, RSlice, RStr, RString, RVec};
use bytes::Bytes;
use futures_channel::mpsc;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// The link between a library's [`Exports`] and the generic exported functions; implemented
/// by a type [`export_plugins!`](crate::export_plugins) declares.
pub trait ExportsSource: 'static {
    /// The library's exports.
    fn exports() -> &'static Exports;
}

/// The header `abi_stable` reads from the exported symbol: the root module's version strings
/// and layout, and the function that builds the root module.
pub const fn lib_header<E: ExportsSource>() -> LibHeader {
    // Safety: the constructor returns the prefix of a `PluginLib`, the module type named here.
    unsafe {
        LibHeader::from_constructor::<PluginLibRef>(root_module_loader::<E>, CheckTypeLayout::Yes)
    }
}

extern "C" fn root_module_loader<E: ExportsSource>() -> RootModuleResult {
    // Catches panics itself (a panic becomes a root-module error the host reports).
    abi_stable::library::__call_root_module_loader(root_module::<E>)
}

fn root_module<E: ExportsSource>() -> PluginLibRef {
    PluginLib {
        abi_version: E::exports().abi_version,
        describe: describe::<E>,
        build: build::<E>,
    }
    .leak_into_prefix()
}

extern "C" fn describe<E: ExportsSource>() -> RString {
    // An empty string tells the host the description could not be produced.
    guard(|| encode_string(&E::exports().description()))
        .map(RString::from)
        .unwrap_or_default()
}

extern "C" fn build<E: ExportsSource>(
    index: u32,
    context: RStr<'_>,
) -> RResult<ObjectBox, RString> {
    to_rresult(guard(|| {
        let factory = E::exports()
            .factories
            .get(index as usize)
            .ok_or_else(|| Error::internal(format!("the library has no plugin number {index}")))?;
        let ctx: BuildContext = serde_json::from_str(context.as_str())
            .map_err(|e| protocol_error("the build context", e))?;
        let served = match factory.build {
            Build::TrackingStore(build) => Served::Tracking(build(&ctx)?),
            Build::ArtifactRepository(build) => Served::Artifacts(build(&ctx)?),
            Build::RunContextProvider(build) => Served::Context(build(&ctx)?),
            Build::ModelRegistryStore(build) => Served::Registry(build(&ctx)?),
            Build::ProjectBackend(build) => Served::Backend(build(&ctx)?),
            Build::ModelFlavor(build) => Served::Flavor(build(&ctx)?),
        };
        Ok(served.into_box())
    }))
}

/// Runs `f`, turning a panic into an `Internal` error that names the panic message.
fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| Err(panic_error(&*payload)))
}

fn panic_error(payload: &(dyn Any + Send)) -> Error {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned());
    Error::internal(format!("the plugin panicked: {message}"))
}

fn to_rresult<T>(r: Result<T>) -> RResult<T, RString> {
    match r {
        Ok(v) => ROk(v),
        Err(e) => RErr(encode_error(&e)),
    }
}

fn encode_error(e: &Error) -> RString {
    // An `ErrorRecord` is strings and an enum: it always serialises.
    RString::from(serde_json::to_string(&ErrorRecord::from(e)).unwrap_or_default())
}

fn encode_string<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::internal("the plugin could not encode its response").with_source(e))
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| Error::internal("the plugin could not encode its response").with_source(e))
}

fn decode<T: DeserializeOwned>(what: &str, request: &[u8]) -> Result<T> {
    serde_json::from_slice(request).map_err(|e| protocol_error(what, e))
}

fn protocol_error(what: &str, e: serde_json::Error) -> Error {
    Error::internal(format!(
        "the plugin could not decode {what} from the host (is the host's cairn-plugin-api \
         compatible with {}?): {e}",
        crate::API_VERSION
    ))
}

fn unknown_method(what: &str, id: u32) -> Error {
    Error::new(
        crate::ErrorKind::Unsupported,
        format!(
            "{what} method {id} is not known to this plugin (built against cairn-plugin-api {})",
            crate::API_VERSION
        ),
    )
}

/// Drives `fut` to completion on the calling thread: the plugin's executor.
fn block_on<F: Future>(fut: F) -> F::Output {
    futures_executor::block_on(fut)
}

/// What an object serves.
enum Served {
    Tracking(Arc<dyn TrackingStore>),
    Artifacts(Arc<dyn ArtifactRepository>),
    Context(Arc<dyn RunContextProvider>),
    Registry(Arc<dyn ModelRegistryStore>),
    Backend(Arc<dyn ProjectBackend>),
    Submitted(Arc<dyn SubmittedRun>),
    Flavor(Arc<dyn ModelFlavor>),
    Model(Arc<dyn LoadedModel>),
    Source(Source),
    Sink(Sink),
}

impl Served {
    fn into_box(self) -> ObjectBox {
        FfiObject_TO::from_value(self, TD_Opaque)
    }

    fn name(&self) -> &'static str {
        match self {
            Served::Tracking(_) => "tracking-store",
            Served::Artifacts(_) => "artifact-repository",
            Served::Context(_) => "run-context-provider",
            Served::Registry(_) => "model-registry-store",
            Served::Backend(_) => "project-backend",
            Served::Submitted(_) => "submitted-run",
            Served::Flavor(_) => "model-flavor",
            Served::Model(_) => "loaded-model",
            Served::Source(_) => "stream source",
            Served::Sink(_) => "stream sink",
        }
    }

    fn call(&self, method: u32, request: &[u8]) -> Result<Vec<u8>> {
        let unknown = || unknown_method(self.name(), method);
        match self {
            Served::Tracking(store) => tracking(
                &**store,
                TrackingMethod::from_id(method).ok_or_else(unknown)?,
                request,
            ),
            Served::Artifacts(repo) => artifacts(
                &**repo,
                ArtifactMethod::from_id(method).ok_or_else(unknown)?,
                request,
            ),
            Served::Context(provider) => context(
                &**provider,
                ContextMethod::from_id(method).ok_or_else(unknown)?,
                request,
            ),
            Served::Registry(store) => registry(
                &**store,
                RegistryMethod::from_id(method).ok_or_else(unknown)?,
                request,
            ),
            Served::Backend(backend) => match BackendMethod::from_id(method).ok_or_else(unknown)? {
                BackendMethod::Capabilities => encode(&backend.capabilities()),
                BackendMethod::Submit => Err(needs_open("submit")),
            },
            Served::Submitted(run) => submitted(
                &**run,
                SubmittedRunMethod::from_id(method).ok_or_else(unknown)?,
            ),
            Served::Flavor(_) => match FlavorMethod::from_id(method).ok_or_else(unknown)? {
                FlavorMethod::Load => Err(needs_open("load")),
            },
            Served::Model(model) => match ModelMethod::from_id(method).ok_or_else(unknown)? {
                ModelMethod::Signature => encode(&model.signature()),
                ModelMethod::Predict => {
                    let (input,) = decode("the model input", request)?;
                    encode(&block_on(model.predict(input))?)
                }
            },
            Served::Source(source) => {
                source.call(StreamMethod::from_id(method).ok_or_else(unknown)?)
            }
            Served::Sink(sink) => {
                sink.call(StreamMethod::from_id(method).ok_or_else(unknown)?, request)
            }
        }
    }

    fn open(&self, method: u32, request: &[u8]) -> Result<Served> {
        let unknown = || unknown_method(self.name(), method);
        match self {
            Served::Artifacts(repo) => match ArtifactMethod::from_id(method).ok_or_else(unknown)? {
                ArtifactMethod::Put => {
                    let (path,): (String,) = decode("the put request", request)?;
                    let repo = repo.clone();
                    Sink::start(move |body| async move { encode(&repo.put(&path, body).await?) })
                }
                ArtifactMethod::UploadPart => {
                    let (path, upload_id, part): (String, String, u32) =
                        decode("the upload_part request", request)?;
                    let repo = repo.clone();
                    Sink::start(move |body| async move {
                        encode(&repo.upload_part(&path, &upload_id, part, body).await?)
                    })
                }
                ArtifactMethod::Get => {
                    let (path,): (String,) = decode("the get request", request)?;
                    let download = block_on(repo.get(&path))?;
                    Ok(Served::Source(Source {
                        size: download.size,
                        stream: Mutex::new(SourceStream::Bytes(download.body)),
                    }))
                }
                _ => Err(not_an_opener()),
            },
            Served::Backend(backend) => match BackendMethod::from_id(method).ok_or_else(unknown)? {
                BackendMethod::Submit => {
                    let (run,) = decode("the project run", request)?;
                    Ok(Served::Submitted(Arc::from(block_on(backend.submit(run))?)))
                }
                BackendMethod::Capabilities => Err(not_an_opener()),
            },
            Served::Submitted(run) => {
                match SubmittedRunMethod::from_id(method).ok_or_else(unknown)? {
                    SubmittedRunMethod::Logs => Ok(Served::Source(Source {
                        size: None,
                        stream: Mutex::new(SourceStream::Lines(block_on(run.logs())?)),
                    })),
                    _ => Err(not_an_opener()),
                }
            }
            Served::Flavor(flavor) => match FlavorMethod::from_id(method).ok_or_else(unknown)? {
                FlavorMethod::Load => {
                    let (dir, config): (std::path::PathBuf, serde_json::Value) =
                        decode("the load request", request)?;
                    Ok(Served::Model(block_on(flavor.load(&dir, &config))?))
                }
            },
            _ => Err(not_an_opener()),
        }
    }
}

fn needs_open(what: &str) -> Error {
    Error::internal(format!(
        "{what} returns an object; the host must open it, not call it"
    ))
}

fn not_an_opener() -> Error {
    Error::internal("this method does not return an object; the host must call it, not open it")
}

impl FfiObject for Served {
    fn call(&self, method: u32, request: RSlice<'_, u8>) -> RResult<RVec<u8>, RString> {
        to_rresult(guard(|| {
            Served::call(self, method, request.as_slice()).map(RVec::from)
        }))
    }

    fn open(&self, method: u32, request: RSlice<'_, u8>) -> RResult<ObjectBox, RString> {
        to_rresult(guard(|| {
            Served::open(self, method, request.as_slice()).map(Served::into_box)
        }))
    }
}

/// Decodes the argument tuple `$args: $ty` from the request, awaits `$call` and encodes its
/// `Ok` value.
macro_rules! serve {
    ($request:expr, $what:literal, $args:pat = $ty:ty => $call:expr) => {{
        let $args: $ty = decode($what, $request)?;
        encode(&block_on($call)?)
    }};
}

fn tracking(store: &dyn TrackingStore, method: TrackingMethod, req: &[u8]) -> Result<Vec<u8>> {
    use crate::entities::*;
    use crate::tracking::*;
    use TrackingMethod as M;
    match method {
        M::Capabilities => encode(&store.capabilities()),
        M::CreateExperiment => {
            serve!(req, "create_experiment", (r,) = (CreateExperiment,) => store.create_experiment(r))
        }
        M::GetExperiment => {
            serve!(req, "get_experiment", (id,) = (String,) => store.get_experiment(&id))
        }
        M::GetExperimentByName => {
            serve!(req, "get_experiment_by_name", (n,) = (String,) => store.get_experiment_by_name(&n))
        }
        M::DeleteExperiment => {
            serve!(req, "delete_experiment", (id,) = (String,) => store.delete_experiment(&id))
        }
        M::RestoreExperiment => {
            serve!(req, "restore_experiment", (id,) = (String,) => store.restore_experiment(&id))
        }
        M::RenameExperiment => serve!(req, "rename_experiment",
            (id, name) = (String, String) => store.rename_experiment(&id, &name)),
        M::SetExperimentTag => serve!(req, "set_experiment_tag",
            (id, tag) = (String, ExperimentTag) => store.set_experiment_tag(&id, tag)),
        M::DeleteExperimentTag => serve!(req, "delete_experiment_tag",
            (id, key) = (String, String) => store.delete_experiment_tag(&id, &key)),
        M::SearchExperiments => serve!(req, "search_experiments",
            (r,) = (SearchExperiments,) => store.search_experiments(r)),
        M::CreateRun => serve!(req, "create_run", (r,) = (CreateRun,) => store.create_run(r)),
        M::GetRun => serve!(req, "get_run", (id,) = (String,) => store.get_run(&id)),
        M::UpdateRunInfo => serve!(req, "update_run_info",
            (id, u) = (String, UpdateRun) => store.update_run_info(&id, u)),
        M::DeleteRun => serve!(req, "delete_run", (id,) = (String,) => store.delete_run(&id)),
        M::RestoreRun => serve!(req, "restore_run", (id,) = (String,) => store.restore_run(&id)),
        M::LogBatch => {
            let (id, metrics, params, tags): super::batch::LogBatch =
                if super::batch::is_binary(req) {
                    super::batch::decode(req)?
                } else {
                    decode("log_batch", req)?
                };
            encode(&block_on(store.log_batch(&id, metrics, params, tags))?)
        }
        M::LogMetric => serve!(req, "log_metric",
            (id, m) = (String, Metric) => store.log_metric(&id, m)),
        M::LogParam => serve!(req, "log_param",
            (id, p) = (String, Param) => store.log_param(&id, p)),
        M::SetTag => serve!(req, "set_tag", (id, t) = (String, RunTag) => store.set_tag(&id, t)),
        M::DeleteTag => serve!(req, "delete_tag",
            (id, key) = (String, String) => store.delete_tag(&id, &key)),
        M::GetMetricHistory => serve!(req, "get_metric_history",
            (id, key, max, token) = (String, String, usize, Option<String>)
                => store.get_metric_history(&id, &key, max, token)),
        M::GetMetricHistoryBulkInterval => serve!(req, "get_metric_history_bulk_interval",
            (r,) = (BulkIntervalRequest,) => store.get_metric_history_bulk_interval(r)),
        M::SearchRuns => serve!(req, "search_runs", (r,) = (SearchRuns,) => store.search_runs(r)),
        M::LogInputs => serve!(req, "log_inputs",
            (id, datasets, models) = (String, Vec<DatasetInput>, Vec<ModelInput>)
                => store.log_inputs(&id, datasets, models)),
        M::LogOutputs => serve!(req, "log_outputs",
            (id, models) = (String, Vec<ModelOutput>) => store.log_outputs(&id, models)),
        M::SearchDatasets => serve!(req, "search_datasets",
            (ids,) = (Vec<String>,) => store.search_datasets(&ids)),
        M::RecordLoggedModel => serve!(req, "record_logged_model",
            (id, model) = (String, serde_json::Value) => store.record_logged_model(&id, model)),
        M::CreateLoggedModel => serve!(req, "create_logged_model",
            (r,) = (CreateLoggedModel,) => store.create_logged_model(r)),
        M::GetLoggedModel => serve!(req, "get_logged_model",
            (id, deleted) = (String, bool) => store.get_logged_model(&id, deleted)),
        M::FinalizeLoggedModel => serve!(req, "finalize_logged_model",
            (id, status) = (String, LoggedModelStatus) => store.finalize_logged_model(&id, status)),
        M::DeleteLoggedModel => serve!(req, "delete_logged_model",
            (id,) = (String,) => store.delete_logged_model(&id)),
        M::SetLoggedModelTags => serve!(req, "set_logged_model_tags",
            (id, tags) = (String, Vec<LoggedModelTag>) => store.set_logged_model_tags(&id, tags)),
        M::DeleteLoggedModelTag => serve!(req, "delete_logged_model_tag",
            (id, key) = (String, String) => store.delete_logged_model_tag(&id, &key)),
        M::LogLoggedModelParams => serve!(req, "log_logged_model_params",
            (id, params) = (String, Vec<LoggedModelParameter>)
                => store.log_logged_model_params(&id, params)),
        M::SearchLoggedModels => serve!(req, "search_logged_models",
            (r,) = (SearchLoggedModels,) => store.search_logged_models(r)),
    }
}

fn artifacts(repo: &dyn ArtifactRepository, method: ArtifactMethod, req: &[u8]) -> Result<Vec<u8>> {
    use crate::artifacts::CompletedPart;
    use ArtifactMethod as M;
    match method {
        M::Capabilities => encode(&repo.capabilities()),
        M::RootUri => encode(repo.root_uri()),
        M::Put | M::Get | M::UploadPart => Err(needs_open("put, get and upload_part")),
        M::List => serve!(req, "list", (path,) = (Option<String>,) => repo.list(path.as_deref())),
        M::Delete => {
            serve!(req, "delete", (path,) = (Option<String>,) => repo.delete(path.as_deref()))
        }
        M::CreateMultipartUpload => serve!(req, "create_multipart_upload",
            (path, parts) = (String, u32) => repo.create_multipart_upload(&path, parts)),
        M::CompleteMultipartUpload => serve!(req, "complete_multipart_upload",
            (path, id, parts) = (String, String, Vec<CompletedPart>)
                => repo.complete_multipart_upload(&path, &id, parts)),
        M::AbortMultipartUpload => serve!(req, "abort_multipart_upload",
            (path, id) = (String, String) => repo.abort_multipart_upload(&path, &id)),
        M::PresignedDownloadUrl => serve!(req, "presigned_download_url",
            (path, secs) = (String, u64) => repo.presigned_download_url(&path, secs)),
        M::PresignedUploadUrl => serve!(req, "presigned_upload_url",
            (path, secs) = (String, u64) => repo.presigned_upload_url(&path, secs)),
    }
}

fn context(
    provider: &dyn RunContextProvider,
    method: ContextMethod,
    req: &[u8],
) -> Result<Vec<u8>> {
    let (ctx,): (crate::context::RunContext,) = decode("the run context", req)?;
    match method {
        ContextMethod::InContext => encode(&provider.in_context(&ctx)),
        ContextMethod::Tags => encode(&provider.tags(&ctx)?),
    }
}

fn registry(store: &dyn ModelRegistryStore, method: RegistryMethod, req: &[u8]) -> Result<Vec<u8>> {
    use crate::model_registry::*;
    use RegistryMethod as M;
    type S = String;
    match method {
        M::Capabilities => encode(&store.capabilities()),
        M::CreateRegisteredModel => serve!(req, "create_registered_model",
            (n, tags, d) = (S, Vec<RegistryTag>, Option<S>) => store.create_registered_model(&n, tags, d)),
        M::GetRegisteredModel => serve!(req, "get_registered_model",
            (n,) = (S,) => store.get_registered_model(&n)),
        M::RenameRegisteredModel => serve!(req, "rename_registered_model",
            (n, new) = (S, S) => store.rename_registered_model(&n, &new)),
        M::UpdateRegisteredModel => serve!(req, "update_registered_model",
            (n, d) = (S, Option<S>) => store.update_registered_model(&n, d)),
        M::DeleteRegisteredModel => serve!(req, "delete_registered_model",
            (n,) = (S,) => store.delete_registered_model(&n)),
        M::SearchRegisteredModels => serve!(req, "search_registered_models",
            (r,) = (RegistrySearch,) => store.search_registered_models(r)),
        M::GetLatestVersions => serve!(req, "get_latest_versions",
            (n, stages) = (S, Vec<Stage>) => store.get_latest_versions(&n, stages)),
        M::SetRegisteredModelTag => serve!(req, "set_registered_model_tag",
            (n, tag) = (S, RegistryTag) => store.set_registered_model_tag(&n, tag)),
        M::DeleteRegisteredModelTag => serve!(req, "delete_registered_model_tag",
            (n, key) = (S, S) => store.delete_registered_model_tag(&n, &key)),
        M::CreateModelVersion => serve!(req, "create_model_version",
            (r,) = (CreateModelVersion,) => store.create_model_version(r)),
        M::GetModelVersion => serve!(req, "get_model_version",
            (n, v) = (S, S) => store.get_model_version(&n, &v)),
        M::UpdateModelVersion => serve!(req, "update_model_version",
            (n, v, d) = (S, S, Option<S>) => store.update_model_version(&n, &v, d)),
        M::TransitionModelVersionStage => serve!(req, "transition_model_version_stage",
            (n, v, stage, archive) = (S, S, Stage, bool)
                => store.transition_model_version_stage(&n, &v, stage, archive)),
        M::DeleteModelVersion => serve!(req, "delete_model_version",
            (n, v) = (S, S) => store.delete_model_version(&n, &v)),
        M::GetModelVersionDownloadUri => serve!(req, "get_model_version_download_uri",
            (n, v) = (S, S) => store.get_model_version_download_uri(&n, &v)),
        M::SearchModelVersions => serve!(req, "search_model_versions",
            (r,) = (RegistrySearch,) => store.search_model_versions(r)),
        M::SetModelVersionTag => serve!(req, "set_model_version_tag",
            (n, v, tag) = (S, S, RegistryTag) => store.set_model_version_tag(&n, &v, tag)),
        M::DeleteModelVersionTag => serve!(req, "delete_model_version_tag",
            (n, v, key) = (S, S, S) => store.delete_model_version_tag(&n, &v, &key)),
        M::SetRegisteredModelAlias => serve!(req, "set_registered_model_alias",
            (n, alias, v) = (S, S, S) => store.set_registered_model_alias(&n, &alias, &v)),
        M::DeleteRegisteredModelAlias => serve!(req, "delete_registered_model_alias",
            (n, alias) = (S, S) => store.delete_registered_model_alias(&n, &alias)),
        M::GetModelVersionByAlias => serve!(req, "get_model_version_by_alias",
            (n, alias) = (S, S) => store.get_model_version_by_alias(&n, &alias)),
    }
}

fn submitted(run: &dyn SubmittedRun, method: SubmittedRunMethod) -> Result<Vec<u8>> {
    match method {
        SubmittedRunMethod::RunId => encode(run.run_id()),
        SubmittedRunMethod::Wait => encode(&block_on(run.wait())?),
        SubmittedRunMethod::Status => encode(&block_on(run.status())?),
        SubmittedRunMethod::Cancel => encode(&block_on(run.cancel())?),
        SubmittedRunMethod::Logs => Err(needs_open("logs")),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while the lock was held was already reported as an error; the state is still
    // usable (at worst the stream ends early).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A download or a log: the host pulls items one at a time.
struct Source {
    size: Option<u64>,
    stream: Mutex<SourceStream>,
}

enum SourceStream {
    Bytes(ByteStream),
    Lines(LogStream),
}

impl Source {
    fn call(&self, method: StreamMethod) -> Result<Vec<u8>> {
        match method {
            StreamMethod::Size => encode(&self.size),
            StreamMethod::Pull => {
                let mut stream = lock(&self.stream);
                let item = match &mut *stream {
                    SourceStream::Bytes(body) => loop {
                        match block_on(poll_fn(|cx| body.as_mut().poll_next(cx))) {
                            // An empty chunk would read as the end: skip it.
                            Some(Ok(chunk)) if chunk.is_empty() => continue,
                            other => break other.map(|r| r.map(|b| b.to_vec())),
                        }
                    },
                    SourceStream::Lines(lines) => {
                        block_on(poll_fn(|cx| lines.as_mut().poll_next(cx)))
                            .map(|r| r.map(String::into_bytes))
                    }
                };
                match item {
                    None => Ok(Vec::new()),
                    Some(Err(e)) => Err(e),
                    Some(Ok(payload)) => {
                        let mut out = Vec::with_capacity(payload.len() + 1);
                        out.push(1);
                        out.extend_from_slice(&payload);
                        Ok(out)
                    }
                }
            }
            _ => Err(Error::internal(format!(
                "{method:?} is not a method of a stream source"
            ))),
        }
    }
}

type Upload = Pin<Box<dyn Future<Output = Result<Vec<u8>>> + Send + 'static>>;

/// An upload: the host pushes chunks; the plugin's call runs on a thread of its own and reads
/// them as an ordinary [`ByteStream`].
struct Sink {
    state: Mutex<SinkState>,
}

struct SinkState {
    chunks: Option<mpsc::Sender<Result<Bytes>>>,
    call: Option<JoinHandle<Result<Vec<u8>>>>,
}

impl Sink {
    /// Starts the plugin call `make(body)` on its own thread.
    fn start<F, Fut>(make: F) -> Result<Served>
    where
        F: FnOnce(ByteStream) -> Fut,
        Fut: Future<Output = Result<Vec<u8>>> + Send + 'static,
    {
        // One chunk in flight at a time: the host's pushes wait for the plugin to read.
        let (tx, rx) = mpsc::channel::<Result<Bytes>>(1);
        let call: Upload = Box::pin(make(Box::pin(rx)));
        let thread = std::thread::Builder::new()
            .name("cairn-plugin-upload".into())
            .spawn(move || guard(|| block_on(call)))
            .map_err(|e| Error::internal("cannot start an upload thread").with_source(e))?;
        Ok(Served::Sink(Sink {
            state: Mutex::new(SinkState {
                chunks: Some(tx),
                call: Some(thread),
            }),
        }))
    }

    fn call(&self, method: StreamMethod, request: &[u8]) -> Result<Vec<u8>> {
        let mut state = lock(&self.state);
        match method {
            StreamMethod::Push => {
                let Some(tx) = state.chunks.as_mut() else {
                    return Err(Error::internal("push after the upload was finished"));
                };
                send(tx, Ok(Bytes::copy_from_slice(request)))?;
                Ok(Vec::new())
            }
            StreamMethod::Abort => {
                let record: ErrorRecord = decode("the abort reason", request)?;
                if let Some(mut tx) = state.chunks.take() {
                    // The plugin may have stopped reading already; it fails either way.
                    let _ = send(&mut tx, Err(record.into()));
                }
                if let Some(call) = state.call.take() {
                    let _ = join(call);
                }
                Ok(Vec::new())
            }
            StreamMethod::Finish => {
                // Dropping the sender ends the plugin's stream.
                state.chunks = None;
                match state.call.take() {
                    Some(call) => join(call),
                    None => Err(Error::internal("the upload was already finished")),
                }
            }
            _ => Err(Error::internal(format!(
                "{method:?} is not a method of a stream sink"
            ))),
        }
    }
}

fn send(tx: &mut mpsc::Sender<Result<Bytes>>, item: Result<Bytes>) -> Result<()> {
    let stopped = || Error::internal("the plugin stopped reading the upload");
    block_on(poll_fn(|cx| tx.poll_ready(cx))).map_err(|_| stopped())?;
    tx.start_send(item).map_err(|_| stopped())
}

fn join(call: JoinHandle<Result<Vec<u8>>>) -> Result<Vec<u8>> {
    call.join()
        .unwrap_or_else(|payload| Err(panic_error(&*payload)))
}

// `Served` crosses threads inside the host's `Arc`; every variant is `Send + Sync`.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Served>();
};
