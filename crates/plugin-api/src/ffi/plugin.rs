//! The library side: the root module [`export_plugins!`](crate::export_plugins) exports, and
//! the objects that serve the host's calls by decoding the request, driving the plugin's
//! future to completion on the calling thread and encoding the result.
//!
//! Every function the host can reach catches panics and turns them into `Internal` errors.

use super::abi::{FfiObject, FfiObject_TO, LibHeader, ObjectBox, PluginLib, PluginLibRef};
use super::*;
// The generated dispatch names the declared types unqualified.
use crate::artifacts::*;
use crate::context::{RunContext, RunContextProvider};
use crate::entities::*;
use crate::error::ErrorRecord;
use crate::flavor::{LoadedModel, ModelData, ModelFlavor, Params};
use crate::mlmodel::MlModel;
use crate::model_registry::ModelRegistryStore;
use crate::model_registry::*;
use crate::projects::{ProjectBackend, SubmittedRun};
use crate::tracking::TrackingStore;
use crate::tracking::*;
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
    let call = Call {
        plugin: E::exports().name,
        method: "describe",
    };
    // An empty string tells the host the description could not be produced.
    guard(call, || encode_string(&E::exports().description()))
        .map(RString::from)
        .unwrap_or_default()
}

extern "C" fn build<E: ExportsSource>(
    index: u32,
    context: RStr<'_>,
) -> RResult<ObjectBox, RString> {
    let factory = E::exports().factories.get(index as usize);
    let call = Call {
        plugin: factory.map_or(E::exports().name, |f| f.name),
        method: "build",
    };
    to_rresult(guard(call, || {
        let factory = factory
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
        Ok(Instance {
            plugin: call.plugin,
            opened_by: None,
            served,
        }
        .into_box())
    }))
}

/// The plugin call a thread is making: named in the panic hook's line and in panic errors.
#[derive(Debug, Clone, Copy)]
struct Call {
    /// The plugin's scheme or name (the library's name for `describe`).
    plugin: &'static str,
    /// The trait method (`build` for the factory).
    method: &'static str,
}

thread_local! {
    static CURRENT: std::cell::Cell<Option<Call>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` as `call`, turning a panic into an `Internal` error that names the panic message,
/// the plugin and the method.
fn guard<T>(call: Call, f: impl FnOnce() -> Result<T>) -> Result<T> {
    install_panic_hook();
    let outer = CURRENT.replace(Some(call));
    let result = catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|payload| Err(panic_error(call, &*payload)));
    CURRENT.set(outer);
    result
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

fn panic_error(call: Call, payload: &(dyn Any + Send)) -> Error {
    Error::internal(format!("the plugin panicked: {}", panic_message(payload)))
        .with_context("plugin", call.plugin)
        .with_context("method", call.method)
}

/// Makes this library's panic hook print one line for a panic inside a plugin call — `cairn
/// plugin 'memtest' panicked in list: <message> at src/lib.rs:103:13` — instead of the default
/// report; with `RUST_BACKTRACE` set (not `0`) the default report and its backtrace follow.
/// A panic outside a plugin call gets the default report. (A `cdylib` has its own copy of std,
/// so this hook is the library's, never the host's.)
fn install_panic_hook() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let Some(call) = CURRENT.try_with(std::cell::Cell::get).ok().flatten() else {
                return default(info);
            };
            let at = info
                .location()
                .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            eprintln!(
                "cairn plugin '{}' panicked in {}: {}{at}",
                call.plugin,
                call.method,
                panic_message(info.payload())
            );
            if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                default(info);
            }
        }));
    });
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

/// An object as the host holds it: what it serves, and the plugin (and, for an object a
/// method returned, that method) it belongs to.
struct Instance {
    plugin: &'static str,
    opened_by: Option<&'static str>,
    served: Served,
}

impl Instance {
    fn into_box(self) -> ObjectBox {
        FfiObject_TO::from_value(self, TD_Opaque)
    }

    /// The call `method` of this object is, for panic reports: a stream's calls are named by
    /// the method that opened it (`get`, `put`, `logs`).
    fn call(&self, method: u32) -> Call {
        let name = match &self.served {
            Served::Tracking(_) => TrackingMethod::from_id(method).map(TrackingMethod::name),
            Served::Artifacts(_) => ArtifactMethod::from_id(method).map(ArtifactMethod::name),
            Served::Context(_) => ContextMethod::from_id(method).map(ContextMethod::name),
            Served::Registry(_) => RegistryMethod::from_id(method).map(RegistryMethod::name),
            Served::Backend(_) => BackendMethod::from_id(method).map(BackendMethod::name),
            Served::Submitted(_) => {
                SubmittedRunMethod::from_id(method).map(SubmittedRunMethod::name)
            }
            Served::Flavor(_) => FlavorMethod::from_id(method).map(FlavorMethod::name),
            Served::Model(_) => ModelMethod::from_id(method).map(ModelMethod::name),
            Served::Source(_) | Served::Sink(_) => self.opened_by,
        };
        Call {
            plugin: self.plugin,
            method: name.unwrap_or("an unknown method"),
        }
    }
}

impl Served {
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
            Served::Tracking(store) => serve(&**store, method, request, unknown),
            Served::Artifacts(repo) => serve(&**repo, method, request, unknown),
            Served::Context(provider) => serve(&**provider, method, request, unknown),
            Served::Registry(store) => serve(&**store, method, request, unknown),
            Served::Backend(backend) => serve(&**backend, method, request, unknown),
            Served::Submitted(run) => serve(&**run, method, request, unknown),
            Served::Flavor(flavor) => serve(&**flavor, method, request, unknown),
            Served::Model(model) => serve(&**model, method, request, unknown),
            Served::Source(source) => {
                source.call(StreamMethod::from_id(method).ok_or_else(unknown)?)
            }
            Served::Sink(sink) => {
                sink.call(StreamMethod::from_id(method).ok_or_else(unknown)?, request)
            }
        }
    }

    fn open(&self, call: Call, method: u32, request: &[u8]) -> Result<Served> {
        let unknown = || unknown_method(self.name(), method);
        match self {
            Served::Artifacts(repo) => match ArtifactMethod::from_id(method).ok_or_else(unknown)? {
                ArtifactMethod::Put => {
                    let (path,): (String,) = decode("the put request", request)?;
                    let repo = repo.clone();
                    Sink::start(call, move |body| async move {
                        encode(&repo.put(&path, body).await?)
                    })
                }
                ArtifactMethod::UploadPart => {
                    let (path, upload_id, part): (String, String, u32) =
                        decode("the upload_part request", request)?;
                    let repo = repo.clone();
                    Sink::start(call, move |body| async move {
                        encode(&repo.upload_part(&path, &upload_id, part, body).await?)
                    })
                }
                ArtifactMethod::Get => {
                    let (path,): (String,) = decode("the get request", request)?;
                    let download = block_on(repo.get(&path))?;
                    Ok(Served::Source(Source {
                        size: download.size,
                        stream: Mutex::new(download.body),
                    }))
                }
                _ => Err(not_an_opener()),
            },
            Served::Backend(backend) => match BackendMethod::from_id(method).ok_or_else(unknown)? {
                BackendMethod::Submit => {
                    let (run,) = decode("the project run", request)?;
                    Ok(Served::Submitted(Arc::from(block_on(backend.submit(run))?)))
                }
                BackendMethod::Attach => {
                    let (handle,) = decode("the run handle", request)?;
                    Ok(Served::Submitted(Arc::from(block_on(
                        backend.attach(handle),
                    )?)))
                }
                BackendMethod::Capabilities => Err(not_an_opener()),
            },
            Served::Submitted(run) => {
                match SubmittedRunMethod::from_id(method).ok_or_else(unknown)? {
                    SubmittedRunMethod::Logs => {
                        let (options,) = decode("the log options", request)?;
                        Ok(Served::Source(Source {
                            size: None,
                            stream: Mutex::new(block_on(run.logs(options))?),
                        }))
                    }
                    _ => Err(not_an_opener()),
                }
            }
            Served::Flavor(flavor) => match FlavorMethod::from_id(method).ok_or_else(unknown)? {
                FlavorMethod::Load => {
                    let (dir, model): (std::path::PathBuf, MlModel) =
                        decode("the load request", request)?;
                    Ok(Served::Model(block_on(flavor.load(&dir, &model))?))
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

impl FfiObject for Instance {
    fn call(&self, method: u32, request: RSlice<'_, u8>) -> RResult<RVec<u8>, RString> {
        to_rresult(guard(self.call(method), || {
            self.served.call(method, request.as_slice()).map(RVec::from)
        }))
    }

    fn open(&self, method: u32, request: RSlice<'_, u8>) -> RResult<ObjectBox, RString> {
        let call = self.call(method);
        to_rresult(guard(call, || {
            let served = self.served.open(call, method, request.as_slice())?;
            Ok(Instance {
                plugin: self.plugin,
                opened_by: Some(call.method),
                served,
            }
            .into_box())
        }))
    }
}

/// A plugin trait object the glue can serve: decodes a request for one of its methods, calls
/// the plugin and encodes the response. Implemented for every plugin trait by the generator
/// below, from the trait's declaration in `methods.rs`.
trait Serve {
    /// The trait's method ids.
    type Method;
    /// The method with `id`, if this version knows it.
    fn method(id: u32) -> Option<Self::Method>;
    /// Serves one `call` of `method`.
    fn serve(&self, method: Self::Method, request: &[u8]) -> Result<Vec<u8>>;
}

fn serve<T: Serve + ?Sized>(
    object: &T,
    method: u32,
    request: &[u8],
    unknown: impl FnOnce() -> Error,
) -> Result<Vec<u8>> {
    object.serve(T::method(method).ok_or_else(unknown)?, request)
}

/// Generates [`Serve`] for a plugin trait from its declaration; the `custom` methods' glue is
/// given in declaration order as `|plugin, request| expression;`.
macro_rules! serve_trait {
    (
        { $( |$o:pat_param, $r:pat_param| $body:expr; )* } $trait:ident, $enum:ident;
        cached { $( $cv:ident = $cid:literal => $cname:ident () -> $cret:ty $(as $cw:ty)?; )* }
        call { $( $v:ident = $id:literal => $name:ident ( $($arg:ident : $aty:ty $(as $aw:ty)?),* ) -> $ret:ty; )* }
        custom { $( $xv:ident = $xid:literal => $xname:ident ( $($xarg:ident : $xaty:ty $(as $xaw:ty)?),* ) $(-> $xret:ty)?; )* }
    ) => {
        impl Serve for dyn $trait {
            type Method = $enum;

            fn method(id: u32) -> Option<$enum> {
                $enum::from_id(id)
            }

            fn serve(&self, method: $enum, request: &[u8]) -> Result<Vec<u8>> {
                match method {
                    $( $enum::$cv => encode(&self.$cname()), )*
                    $( $enum::$v => {
                        let ($($arg,)*): ($(crate::__cairn_ffi_wire!($aty $(as $aw)?),)*) =
                            decode(stringify!($name), request)?;
                        encode(&block_on(self.$name($(crate::__cairn_ffi_pass!($arg $(as $aw)?)),*))?)
                    } )*
                    $( $enum::$xv => {
                        let $o = self;
                        let $r = request;
                        $body
                    } )*
                }
            }
        }
    };
}

crate::__cairn_ffi_tracking!(serve_trait {
    // log_batch: the compact binary request, or the JSON tuple.
    |store, req| {
        let (id, metrics, params, tags): super::batch::LogBatch = if super::batch::is_binary(req) {
            super::batch::decode(req)?
        } else {
            decode("log_batch", req)?
        };
        encode(&block_on(store.log_batch(&id, metrics, params, tags))?)
    };
});
crate::__cairn_ffi_artifacts!(serve_trait {
    |_, _| Err(needs_open("put"));
    |_, _| Err(needs_open("get"));
    |_, _| Err(needs_open("upload_part"));
});
crate::__cairn_ffi_context!(serve_trait {
    |provider, req| {
        let (ctx,): (RunContext,) = decode("the run context", req)?;
        encode(&provider.in_context(&ctx))
    };
    |provider, req| {
        let (ctx,): (RunContext,) = decode("the run context", req)?;
        encode(&provider.tags(&ctx)?)
    };
});
crate::__cairn_ffi_registry!(serve_trait {});
crate::__cairn_ffi_backend!(serve_trait {
    |_, _| Err(needs_open("submit"));
    |_, _| Err(needs_open("attach"));
});
crate::__cairn_ffi_submitted_run!(serve_trait {
    |_, _| Err(needs_open("logs"));
});
crate::__cairn_ffi_flavor!(serve_trait {
    |_, _| Err(needs_open("load"));
});
crate::__cairn_ffi_model!(serve_trait {
    // predict: the binary request (tensors as raw elements), or the JSON tuple; the response
    // is binary.
    |model, req| {
        let (input, params): (ModelData, Params) = if super::tensors::is_binary(req) {
            let (input, params) = super::tensors::decode(req)?;
            (input, params.unwrap_or_default())
        } else {
            decode("predict", req)?
        };
        Ok(super::tensors::encode(&block_on(model.predict(input, params))?, None))
    };
});

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while the lock was held was already reported as an error; the state is still
    // usable (at worst the stream ends early).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A download or a run's output: the host pulls chunks one at a time.
struct Source {
    size: Option<u64>,
    stream: Mutex<ByteStream>,
}

impl Source {
    fn call(&self, method: StreamMethod) -> Result<Vec<u8>> {
        match method {
            StreamMethod::Size => encode(&self.size),
            StreamMethod::Pull => {
                let mut stream = lock(&self.stream);
                let item = loop {
                    match block_on(poll_fn(|cx| stream.as_mut().poll_next(cx))) {
                        // An empty chunk would read as the end: skip it.
                        Some(Ok(chunk)) if chunk.is_empty() => continue,
                        other => break other.map(|r| r.map(|b| b.to_vec())),
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
    fn start<F, Fut>(call: Call, make: F) -> Result<Served>
    where
        F: FnOnce(ByteStream) -> Fut,
        Fut: Future<Output = Result<Vec<u8>>> + Send + 'static,
    {
        // One chunk in flight at a time: the host's pushes wait for the plugin to read.
        let (tx, rx) = mpsc::channel::<Result<Bytes>>(1);
        let upload: Upload = Box::pin(make(Box::pin(rx)));
        let thread = std::thread::Builder::new()
            .name("cairn-plugin-upload".into())
            .spawn(move || guard(call, || block_on(upload)))
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
        // The thread's own guard catches the plugin's panics; this is the thread failing
        // outside it.
        .unwrap_or_else(|payload| {
            Err(Error::internal(format!(
                "the upload thread failed: {}",
                panic_message(&*payload)
            )))
        })
}

// `Instance` crosses threads inside the host's `Arc`; every variant is `Send + Sync`.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Instance>();
};
