//! Dynamic plugins: the one module of `cairn-core` that loads shared libraries.
//!
//! Libraries are named by `[[plugins]] path = "..."` in `cairn.toml` (a relative path is
//! relative to that file's directory) and by the `:`-separated [`PLUGINS_PATH_VAR`]
//! environment variable (relative to the working directory). Each is loaded once at start-up
//! through [`cairn_plugin_api::ffi::host`], checked (a Cairn plugin, built against a
//! compatible `cairn-plugin-api`, with this ABI version, wire-form schema hash and layout) and
//! described; every plugin it exports becomes a registry entry with [`Origin::File`], next to
//! the built-ins, so a scheme claimed twice is the registry's usual error naming both owners.
//! A library is never unloaded.
//!
//! The host-side wrappers below implement the ordinary plugin traits over a library's objects,
//! so nothing outside this module knows a plugin came from a file; they are generated from
//! each trait's one ABI declaration in `cairn-plugin-api` (`ffi/methods.rs`). A call into a library
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
    Library, Object, decode_predict_response, decode_response, encode_request, log_batch_request,
    predict_request,
};
use cairn_plugin_api::ffi::{
    ArtifactMethod, BackendMethod, ContextMethod, FlavorMethod, LibraryDescription, ModelMethod,
    RegistryMethod, StreamMethod, SubmittedRunMethod, TrackingMethod,
};
use cairn_plugin_api::flavor::{MlModel, ModelCapabilities, ModelData, Params, Signature};
use cairn_plugin_api::model_registry::*;
use cairn_plugin_api::projects::{
    LogOptions, LogStream, ProjectCapabilities, ProjectRun, RunHandle, RunState,
};
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
    description
        .plugins
        .iter()
        .enumerate()
        .map(|(index, plugin)| {
            Ok(PluginEntry {
                name: plugin.name.clone(),
                package: description.name.clone(),
                version: description.version.clone(),
                origin: Origin::File(path.to_owned()),
                builder: builder(library.clone(), index, plugin.kind).ok_or_else(|| {
                    Error::PluginLoad {
                        path: path.to_owned(),
                        from: from.to_owned(),
                        cause: format!(
                            "its plugin '{}' is a {:?}, a kind this Cairn does not know",
                            plugin.name, plugin.kind
                        ),
                    }
                })?,
            })
        })
        .collect()
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
/// wraps it in the host type of its kind. The closure keeps the library's handle. `None` for a
/// kind this host does not know.
fn builder(library: Arc<Library>, index: usize, kind: PluginKind) -> Option<Builder> {
    let build = move |ctx: &BuildContext| library.build(index, ctx);
    Some(match kind {
        PluginKind::TrackingStore => Builder::TrackingStore(Arc::new(move |ctx| {
            Ok(Arc::new(FfiTrackingStore::new(build(ctx)?)?))
        })),
        PluginKind::ArtifactRepository => Builder::ArtifactRepository(Arc::new(move |ctx| {
            Ok(Arc::new(FfiArtifactRepository::new(build(ctx)?)?))
        })),
        PluginKind::RunContextProvider => Builder::RunContextProvider(Arc::new(move |ctx| {
            Ok(Arc::new(FfiRunContextProvider::new(build(ctx)?)?))
        })),
        PluginKind::ModelRegistryStore => Builder::ModelRegistryStore(Arc::new(move |ctx| {
            Ok(Arc::new(FfiModelRegistryStore::new(build(ctx)?)?))
        })),
        PluginKind::ProjectBackend => Builder::ProjectBackend(Arc::new(move |ctx| {
            Ok(Arc::new(FfiProjectBackend::new(build(ctx)?)?))
        })),
        PluginKind::ModelFlavor => Builder::ModelFlavor(Arc::new(move |ctx| {
            Ok(Arc::new(FfiModelFlavor::new(build(ctx)?)?))
        })),
        _ => return None,
    })
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

// ----- the host wrappers -----------------------------------------------------------------------

/// Generates the host wrapper of a plugin trait from its declaration in `cairn-plugin-api`'s
/// `ffi/methods.rs`: a struct over the library's object holding the `cached` values (asked
/// once, in `new`), and the trait's implementation making each `call` method a JSON call. The
/// `custom` methods' bodies are given in declaration order as `[async] (&self, params) -> Ret { .. }`;
/// the name comes from the declaration, so none can be left out or misnamed.
macro_rules! host_wrapper {
    (
        { $host:ident $( [$($kw:tt)*] ($($params:tt)*) -> $xr:ty $body:block )* }
        $trait:ident, $enum:ident;
        cached { $( $cv:ident = $cid:literal => $cname:ident () -> $cret:ty $(as $cw:ty)?; )* }
        call { $( $v:ident = $id:literal => $name:ident ( $($arg:ident : $aty:ty $(as $aw:ty)?),* ) -> $ret:ty; )* }
        custom { $( $xv:ident = $xid:literal => $xname:ident ( $($xarg:ident : $xaty:ty $(as $xaw:ty)?),* ) $(-> $xret:ty)?; )* }
    ) => {
        #[doc = concat!("A [`", stringify!($trait), "`] served by a library.")]
        struct $host {
            object: Object,
            $( $cname: cairn_plugin_api::__cairn_ffi_wire!($cret $(as $cw)?), )*
        }

        impl $host {
            /// Wraps `object`, asking it for the constant values once. Blocks.
            fn new(object: Object) -> PluginResult<Self> {
                Ok($host {
                    $( $cname: object.call_json($enum::$cv.id(), &())?, )*
                    object,
                })
            }
        }

        #[async_trait]
        impl $trait for $host {
            $(
                fn $cname(&self) -> $cret {
                    cairn_plugin_api::__cairn_ffi_cached!(self.$cname $(, $cw)?)
                }
            )*
            $(
                async fn $name(&self, $($arg: $aty),*) -> PluginResult<$ret> {
                    call(&self.object, $enum::$v.id(), &($($arg,)*)).await
                }
            )*
            $(
                $($kw)* fn $xname($($params)*) -> $xr $body
            )*
        }
    };
}

cairn_plugin_api::__cairn_ffi_tracking!(host_wrapper {
    FfiTrackingStore
    [async] (
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<RunTag>,
    ) -> PluginResult<()> {
        // The compact binary request: JSON costs more than the rest of a large batch's call.
        let request = log_batch_request(run_id, &metrics, &params, &tags);
        let object = self.object.clone();
        let id = TrackingMethod::LogBatch.id();
        blocking(move || decode_response(&object.call(id, &request)?)).await
    }
});

cairn_plugin_api::__cairn_ffi_artifacts!(host_wrapper {
    FfiArtifactRepository
    [async] (&self, path: &str, body: ByteStream) -> PluginResult<u64> {
        let sink = open(&self.object, ArtifactMethod::Put.id(), &(path,)).await?;
        push_all(sink, body).await
    }
    [async] (&self, path: &str) -> PluginResult<Download> {
        let source = open(&self.object, ArtifactMethod::Get.id(), &(path,)).await?;
        let size: Option<u64> = call(&source, StreamMethod::Size.id(), &()).await?;
        Ok(Download {
            size,
            body: pull_stream(source, Ok),
        })
    }
    [async] (
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
});

// Its methods are synchronous by contract, so the call is made on the calling thread.
cairn_plugin_api::__cairn_ffi_context!(host_wrapper {
    FfiRunContextProvider
    [] (&self, ctx: &RunContext) -> bool {
        // On a failed call, say yes so that `tags` runs and reports the error.
        self.object
            .call_json(ContextMethod::InContext.id(), &(ctx,))
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "run-context provider in_context failed");
                true
            })
    }
    [] (&self, ctx: &RunContext) -> PluginResult<BTreeMap<String, String>> {
        self.object.call_json(ContextMethod::Tags.id(), &(ctx,))
    }
});

cairn_plugin_api::__cairn_ffi_registry!(host_wrapper {
    FfiModelRegistryStore
});

cairn_plugin_api::__cairn_ffi_backend!(host_wrapper {
    FfiProjectBackend
    [async] (&self, run: ProjectRun) -> PluginResult<Box<dyn SubmittedRun>> {
        let object = open(&self.object, BackendMethod::Submit.id(), &(run,)).await?;
        Ok(Box::new(blocking(move || FfiSubmittedRun::new(object)).await?))
    }
    [async] (&self, handle: RunHandle) -> PluginResult<Box<dyn SubmittedRun>> {
        let object = open(&self.object, BackendMethod::Attach.id(), &(handle,)).await?;
        Ok(Box::new(blocking(move || FfiSubmittedRun::new(object)).await?))
    }
});

cairn_plugin_api::__cairn_ffi_submitted_run!(host_wrapper {
    FfiSubmittedRun
    [async] (&self, options: LogOptions) -> PluginResult<LogStream> {
        let source = open(&self.object, SubmittedRunMethod::Logs.id(), &(options,)).await?;
        Ok(pull_stream(source, Ok))
    }
});

cairn_plugin_api::__cairn_ffi_flavor!(host_wrapper {
    FfiModelFlavor
    [async] (
        &self,
        model_dir: &Path,
        model: &MlModel,
    ) -> PluginResult<Arc<dyn LoadedModel>> {
        let object = open(&self.object, FlavorMethod::Load.id(), &(model_dir, model)).await?;
        Ok(Arc::new(blocking(move || FfiLoadedModel::new(object)).await?))
    }
});

cairn_plugin_api::__cairn_ffi_model!(host_wrapper {
    FfiLoadedModel
    [async] (&self, input: ModelData, params: Params) -> PluginResult<ModelData> {
        // Tensors cross as raw elements, both ways.
        let request = predict_request(&input, &params);
        let object = self.object.clone();
        let id = ModelMethod::Predict.id();
        blocking(move || decode_predict_response(&object.call(id, &request)?)).await
    }
});
