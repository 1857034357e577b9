//! Test-only plugins for cairn-core's loader tests (`crates/core/tests/dynamic.rs`):
//!
//! - artifact repository `memtest`: files in memory, downloads streamed back in 3-byte chunks,
//!   so a test can push and pull bytes through the ABI's chunked interface. Paths steer it:
//!   `put("stop-early")` refuses after the first chunk; `list(Some("panic"))` panics; files
//!   under `unreadable/` can be stored and looked up with its own `head` but not read (`get`
//!   is `PermissionDenied`), so a test tells its `head` from the trait's default;
//! - run-context provider `panicky`: `tags` panics;
//! - tracking store `panics-on-build`: its factory panics;
//! - model flavor `echo`: its models answer their input back with every tensor's elements
//!   reversed (a table unchanged), and report the loaded `MLmodel`'s signature and `model_id`
//!   (as the output tensor `model_id`), so a test sees every request and response cross the ABI;
//! - project backend `shtest` (module `backend`): runs commands as process groups with `sh`,
//!   so `cairn plugins check --conformance` runs the backend suite through the ABI.

mod backend;

use bytes::Bytes;
use cairn_plugin_api::artifacts::{ArtifactCapabilities, ByteStream, Download};
use cairn_plugin_api::context::RunContext;
use cairn_plugin_api::entities::FileInfo;
use cairn_plugin_api::flavor::{
    MlModel, ModelCapabilities, ModelData, Params, Signature, Tensor, TensorData,
};
use cairn_plugin_api::{
    ArtifactRepository, BuildContext, Error, ErrorKind, LoadedModel, ModelFlavor, Result,
    RunContextProvider, TrackingStore, async_trait,
};
use futures_core::Stream;
use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Bytes per chunk of a download.
const CHUNK: usize = 3;

struct MemoryRepo {
    root: String,
    files: Mutex<BTreeMap<String, Vec<u8>>>,
}

struct Chunks(VecDeque<Bytes>);

impl Stream for Chunks {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

#[async_trait]
impl ArtifactRepository for MemoryRepo {
    fn capabilities(&self) -> ArtifactCapabilities {
        ArtifactCapabilities {
            multipart_upload: false,
            presigned_urls: false,
        }
    }

    fn root_uri(&self) -> &str {
        &self.root
    }

    async fn put(&self, path: &str, mut body: ByteStream) -> Result<u64> {
        let mut data = Vec::new();
        while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
            data.extend_from_slice(&chunk?);
            if path == "stop-early" {
                return Err(Error::invalid("refused after the first chunk"));
            }
        }
        let n = data.len() as u64;
        self.files.lock().unwrap().insert(path.to_owned(), data);
        Ok(n)
    }

    async fn get(&self, path: &str) -> Result<Download> {
        if path.starts_with("unreadable/") {
            return Err(Error::new(ErrorKind::PermissionDenied, "unreadable"));
        }
        let data = self
            .files
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no file {path}")))?;
        Ok(Download {
            size: Some(data.len() as u64),
            body: Box::pin(Chunks(
                data.chunks(CHUNK).map(Bytes::copy_from_slice).collect(),
            )),
        })
    }

    async fn head(&self, path: &str) -> Result<FileInfo> {
        let size = self
            .files
            .lock()
            .unwrap()
            .get(path)
            .map(Vec::len)
            .ok_or_else(|| Error::not_found(format!("no file {path}")))?;
        Ok(FileInfo {
            path: path.to_owned(),
            is_dir: false,
            file_size: Some(size as i64),
        })
    }

    async fn list(&self, path: Option<&str>) -> Result<Vec<FileInfo>> {
        if path == Some("panic") {
            panic!("list panicked on purpose");
        }
        Ok(self
            .files
            .lock()
            .unwrap()
            .iter()
            .map(|(p, d)| FileInfo {
                path: p.clone(),
                is_dir: false,
                file_size: Some(d.len() as i64),
            })
            .collect())
    }

    async fn delete(&self, path: Option<&str>) -> Result<()> {
        let mut files = self.files.lock().unwrap();
        match path {
            Some(p) => {
                files.remove(p);
            }
            None => files.clear(),
        }
        Ok(())
    }
}

fn build_memory(ctx: &BuildContext) -> Result<Arc<dyn ArtifactRepository>> {
    Ok(Arc::new(MemoryRepo {
        root: ctx.require_uri()?.to_owned(),
        files: Mutex::default(),
    }))
}

struct Panicky;

impl RunContextProvider for Panicky {
    fn in_context(&self, _: &RunContext) -> bool {
        true
    }
    fn tags(&self, _: &RunContext) -> Result<BTreeMap<String, String>> {
        panic!("tags panicked on purpose")
    }
}

fn build_panicky(_: &BuildContext) -> Result<Arc<dyn RunContextProvider>> {
    Ok(Arc::new(Panicky))
}

fn build_panics(_: &BuildContext) -> Result<Arc<dyn TrackingStore>> {
    panic!("the factory panicked on purpose")
}

cairn_plugin_api::export_plugins! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    factories: [
        ArtifactRepository(build_memory) as "memtest",
        RunContextProvider(build_panicky) as "panicky",
        TrackingStore(build_panics) as "panics-on-build",
        ModelFlavor(build_echo) as "echo",
        ProjectBackend(backend::build) as "shtest",
    ],
}

struct Echo;
struct EchoModel {
    signature: Signature,
    model_id: String,
}

#[async_trait]
impl ModelFlavor for Echo {
    async fn load(&self, _: &std::path::Path, model: &MlModel) -> Result<Arc<dyn LoadedModel>> {
        Ok(Arc::new(EchoModel {
            signature: model.signature.clone().unwrap_or_default(),
            model_id: model.model_id.clone().unwrap_or_default(),
        }))
    }
}

fn reversed(t: &Tensor) -> Tensor {
    let mut data = t.data().clone();
    match &mut data {
        TensorData::Float32(v) => v.reverse(),
        TensorData::Float64(v) => v.reverse(),
        TensorData::Int64(v) => v.reverse(),
        TensorData::Str(v) => v.reverse(),
        TensorData::Bytes(v) => v.reverse(),
        TensorData::Float16(v) => v.reverse(),
        TensorData::Bool(v) => v.reverse(),
        _ => {}
    }
    Tensor::new(t.shape().to_vec(), data).expect("same element count")
}

#[async_trait]
impl LoadedModel for EchoModel {
    fn signature(&self) -> Signature {
        self.signature.clone()
    }
    fn capabilities(&self) -> ModelCapabilities {
        ModelCapabilities::new(true, true, false)
    }
    async fn predict(&self, input: ModelData, params: Params) -> Result<ModelData> {
        self.signature.validate_params(params)?;
        Ok(match input {
            ModelData::Tensors(m) => {
                let mut out: BTreeMap<String, Tensor> =
                    m.iter().map(|(k, t)| (k.clone(), reversed(t))).collect();
                let id = TensorData::Str(vec![self.model_id.clone()]);
                out.insert("model_id".into(), Tensor::new(vec![1], id)?);
                ModelData::Tensors(out)
            }
            table => table,
        })
    }
}

fn build_echo(_: &BuildContext) -> Result<Arc<dyn ModelFlavor>> {
    Ok(Arc::new(Echo))
}
