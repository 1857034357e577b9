//! An in-memory artifact repository (scheme `mem`) as a Cairn plugin library: the smallest
//! complete [`ArtifactRepository`] a vendor can start from.
//!
//! It behaves like an object store: one process-wide map from keys to bytes, where the key of
//! a file is its repository's root (the URI without `mem://`) joined with the file's path, and
//! directories exist only as prefixes of keys. So `mem://bucket/exp` and a repository rooted
//! at `mem://bucket/exp/1/run/artifacts` (what the server builds for a run) see the same files.
//! Everything is lost when the process exits: use it for tests and demos.
//!
//! The whole export is [`export_plugins!`](cairn_plugin_api::export_plugins) at the bottom.

use cairn_plugin_api::artifacts::{ArtifactCapabilities, ByteStream, Download};
use cairn_plugin_api::bytes::{Bytes, BytesMut};
use cairn_plugin_api::entities::FileInfo;
use cairn_plugin_api::futures_core::Stream;
use cairn_plugin_api::paths::{INVALID_PATH_MESSAGE, canonical_artifact_path};
use cairn_plugin_api::{ArtifactRepository, BuildContext, Error, Result, async_trait};
use std::collections::{BTreeMap, btree_map::Entry};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};

/// The URI scheme this repository serves.
pub const SCHEME: &str = "mem";

/// Size of the chunks a download yields.
const CHUNK: usize = 1 << 20;

/// Every file of every `mem` repository in this process, by key.
fn objects() -> MutexGuard<'static, BTreeMap<String, Bytes>> {
    static OBJECTS: OnceLock<Mutex<BTreeMap<String, Bytes>>> = OnceLock::new();
    let map = OBJECTS.get_or_init(Default::default);
    // No code panics while holding the lock, but a poisoned map is still consistent.
    map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A repository rooted at `mem://<root>`.
pub struct MemRepository {
    uri: String,
    /// The key prefix of this repository's files: the root without `/` at either end.
    root: String,
}

/// The factory Cairn calls with the URI of every root it needs a repository for: an
/// artifact destination, an experiment's or run's artifact location, a `cairn artifacts`
/// argument. It must not do I/O a client would wait for twice; here it only parses.
pub fn build(ctx: &BuildContext) -> Result<Arc<dyn ArtifactRepository>> {
    let uri = ctx.require_uri()?;
    let root = uri
        .strip_prefix("mem://")
        .ok_or_else(|| Error::invalid(format!("not a mem:// URI: {uri}")))?;
    Ok(Arc::new(MemRepository {
        uri: uri.to_owned(),
        root: canonical_artifact_path(root.trim_matches('/'))?,
    }))
}

impl MemRepository {
    /// The key of `path` (canonicalised: traversal in any spelling is `InvalidArgument`).
    fn key(&self, path: &str) -> Result<String> {
        let path = canonical_artifact_path(path)?;
        Ok(match (self.root.is_empty(), path.is_empty()) {
            (true, _) => path,
            (_, true) => self.root.clone(),
            _ => format!("{}/{path}", self.root),
        })
    }

    /// The key prefix of everything below `path` (`None` = the root): `<key>/`, or `` for an
    /// empty key.
    fn prefix(&self, path: Option<&str>) -> Result<String> {
        let key = self.key(path.unwrap_or(""))?;
        Ok(if key.is_empty() { key } else { key + "/" })
    }

    /// The file at `path`, or `NotFound` (a directory is only a prefix, so it is not found).
    fn file(&self, path: &str) -> Result<Bytes> {
        let key = self.key(path)?;
        objects()
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("No such artifact: '{path}'")))
    }
}

#[async_trait]
impl ArtifactRepository for MemRepository {
    fn capabilities(&self) -> ArtifactCapabilities {
        ArtifactCapabilities {
            multipart_upload: false,
            presigned_urls: false,
        }
    }

    fn root_uri(&self) -> &str {
        &self.uri
    }

    /// Collects the body, then stores it in one step: a failed body stores nothing, and
    /// readers see the old file or the new one. A file may sit where a "directory" is
    /// (object-store semantics), so `put` onto a prefix or below a file succeeds.
    async fn put(&self, path: &str, mut body: ByteStream) -> Result<u64> {
        let key = self.key(path)?;
        if key == self.key("")? {
            return Err(Error::invalid(INVALID_PATH_MESSAGE).with_context("path", path));
        }
        let mut data = BytesMut::new();
        while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
            data.extend_from_slice(&chunk?);
        }
        let size = data.len() as u64;
        objects().insert(key, data.freeze());
        Ok(size)
    }

    async fn get(&self, path: &str) -> Result<Download> {
        let data = self.file(path)?;
        Ok(Download {
            size: Some(data.len() as u64),
            body: Box::pin(Chunks(data)),
        })
    }

    async fn head(&self, path: &str) -> Result<FileInfo> {
        let size = self.file(path)?.len();
        Ok(FileInfo {
            path: canonical_artifact_path(path)?,
            is_dir: false,
            file_size: Some(size as i64),
        })
    }

    async fn list(&self, path: Option<&str>) -> Result<Vec<FileInfo>> {
        let prefix = self.prefix(path)?;
        let base = canonical_artifact_path(path.unwrap_or(""))?;
        let mut children = BTreeMap::new();
        for (key, data) in objects().range(prefix.clone()..) {
            let Some(rest) = key.strip_prefix(&prefix) else {
                break;
            };
            let (name, is_dir) = match rest.split_once('/') {
                Some((dir, _)) => (dir, true),
                None => (rest, false),
            };
            let path = if base.is_empty() {
                name.to_owned()
            } else {
                format!("{base}/{name}")
            };
            if let Entry::Vacant(slot) = children.entry(path.clone()) {
                let file_size = (!is_dir).then_some(data.len() as i64);
                slot.insert(FileInfo {
                    path,
                    is_dir,
                    file_size,
                });
            }
        }
        Ok(children.into_values().collect())
    }

    async fn delete(&self, path: Option<&str>) -> Result<()> {
        let prefix = self.prefix(path)?;
        let file = path.map(|p| self.key(p)).transpose()?;
        objects().retain(|key, _| !key.starts_with(&prefix) && Some(key) != file.as_ref());
        Ok(())
    }
}

/// A download: the file's bytes in chunks of at most [`CHUNK`] (cheap slices, no copies).
struct Chunks(Bytes);

impl Stream for Chunks {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.0.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.0.len().min(CHUNK);
        Poll::Ready(Some(Ok(self.0.split_to(n))))
    }
}

cairn_plugin_api::export_plugins! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    factories: [
        ArtifactRepository(build) as "mem",
    ],
}
