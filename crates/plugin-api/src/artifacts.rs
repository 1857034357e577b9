//! The artifact-repository contract: files under one root URI, streamed both ways.
//!
//! MLflow counterpart: `mlflow.store.artifact.artifact_repo.ArtifactRepository` (entry point
//! group `mlflow.artifact_repository`) with its multipart and presigned-URL mixins, chosen by
//! the scheme of an artifact root (`file:`, `s3:`, ...).
//!
//! Rules:
//! - A repository instance is rooted at one URI ([`ArtifactRepository::root_uri`]); every
//!   `path` argument is relative to it and `/`-separated. The host canonicalises paths before
//!   calling, and every repository runs each `path` through
//!   [`canonical_artifact_path`](crate::paths::canonical_artifact_path) again itself, so a
//!   traversal attempt in any spelling (`..`, `..\`, `%2e%2e%2f`, `%252e%252e%252f`, `;`,
//!   absolute paths, NUL) is `InvalidArgument` ("Invalid path") whoever the caller is. A
//!   repository also refuses, with `InvalidArgument`, anything that would *resolve* outside its
//!   root (a symlink in a local root pointing elsewhere).
//! - Bytes stream: no method buffers a whole file. A `put` is atomic: readers see the old file
//!   or the whole new one, never a partial one, and a failed upload leaves nothing behind.

use crate::entities::FileInfo;
use crate::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::pin::Pin;

/// A stream of byte chunks; an `Err` item aborts the transfer.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send + 'static>>;

/// What an artifact repository supports beyond put/get/list/delete.
///
/// Grows without breaking plugins: a field missing from a plugin's answer (a plugin built before
/// the capability existed) reads as `false`, and a plugin sets the fields it knows and leaves
/// the rest to `..Default::default()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArtifactCapabilities {
    /// Multipart uploads (`*_multipart_upload`, `upload_part`).
    pub multipart_upload: bool,
    /// Presigned URLs a client can use directly.
    pub presigned_urls: bool,
}

/// A file being read.
///
/// The host polls `body` from its async executor, chunk by chunk, while it sends the response,
/// so `poll_next` must not block: a repository whose reads block (a file system, a blocking
/// client) reads each chunk on its own threads — a [`BlockingPool`](crate::blocking::BlockingPool)
/// — and returns `Pending` until the chunk is there. An `Err` chunk after the response has
/// started aborts it: the host logs the error naming the plugin and cuts the body short, so
/// the client sees a failed download, never a short file taken for whole.
pub struct Download {
    /// Its size in bytes, when the repository knows it up front (sent as `Content-Length`).
    pub size: Option<u64>,
    /// Its bytes.
    pub body: ByteStream,
}

/// One part's upload target in a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartCredential {
    /// 1-based part number.
    pub part_number: u32,
    /// A presigned URL for the part, when the repository offers one (else the host proxies).
    pub url: Option<String>,
    /// Headers the client must send with the part.
    pub headers: BTreeMap<String, String>,
}

/// A started multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartUpload {
    /// The repository's id for the upload.
    pub upload_id: String,
    /// One target per part.
    pub credentials: Vec<MultipartCredential>,
}

/// An uploaded part, as reported back when completing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedPart {
    /// 1-based part number.
    pub part_number: u32,
    /// The ETag the storage returned for the part.
    pub etag: String,
}

/// A URL a client can use directly, with the headers it must send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignedUrl {
    /// The signed URL.
    pub url: String,
    /// Required headers.
    pub headers: BTreeMap<String, String>,
}

/// An artifact repository rooted at one URI.
#[async_trait]
pub trait ArtifactRepository: Send + Sync + 'static {
    /// What this repository supports.
    fn capabilities(&self) -> ArtifactCapabilities;

    /// The URI this repository is rooted at, as given to its factory.
    fn root_uri(&self) -> &str;

    /// Writes `body` to `path`, creating parent directories and replacing any existing file;
    /// returns the number of bytes written. Atomic: on error nothing is left at `path` (an
    /// earlier file stays as it was).
    ///
    /// The root itself (`""`) is `InvalidArgument`. On storage with real directories (a file
    /// system), `put` onto an existing directory or below an existing file is
    /// `InvalidArgument` naming the conflict ("Cannot write 'a/b': 'a' is a file, not a
    /// directory") and writes nothing; object storage, where a key and keys below it coexist,
    /// may accept both (S3 does).
    async fn put(&self, path: &str, body: ByteStream) -> Result<u64>;

    /// Opens the file at `path` for reading; a missing file or a directory is `NotFound`.
    async fn get(&self, path: &str) -> Result<Download>;

    /// The immediate children of directory `path` (`None` = the root), directories and files,
    /// sorted by path, each `path` relative to the root. A missing path or a file gives `[]`.
    async fn list(&self, path: Option<&str>) -> Result<Vec<FileInfo>>;

    /// Deletes the file or directory tree at `path` (`None` = everything). Deleting a missing
    /// path succeeds.
    async fn delete(&self, path: Option<&str>) -> Result<()>;

    /// The file at `path` without its bytes: `path` (canonical), `is_dir: false` and its
    /// `file_size`. A missing path or a directory is `NotFound`, as for [`get`](Self::get).
    ///
    /// The default opens the file with `get` and reads its size from the [`Download`] (counting
    /// the bytes when the repository does not know it up front); repositories override it with
    /// a metadata lookup.
    async fn head(&self, path: &str) -> Result<FileInfo> {
        let download = self.get(path).await?;
        let size = match download.size {
            Some(size) => size,
            None => {
                let mut body = download.body;
                let mut size = 0u64;
                while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await
                {
                    size += chunk?.len() as u64;
                }
                size
            }
        };
        Ok(FileInfo {
            path: crate::paths::canonical_artifact_path(path)?,
            is_dir: false,
            file_size: Some(size as i64),
        })
    }

    /// Starts a multipart upload of `num_parts` parts to `path`.
    async fn create_multipart_upload(&self, path: &str, num_parts: u32) -> Result<MultipartUpload> {
        let _ = (path, num_parts);
        Err(Error::unsupported("multipart upload"))
    }

    /// Uploads one part; returns its ETag.
    async fn upload_part(
        &self,
        path: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
    ) -> Result<String> {
        let _ = (path, upload_id, part_number, body);
        Err(Error::unsupported("multipart upload"))
    }

    /// Completes a multipart upload; the file appears at `path` whole.
    async fn complete_multipart_upload(
        &self,
        path: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<()> {
        let _ = (path, upload_id, parts);
        Err(Error::unsupported("multipart upload"))
    }

    /// Aborts a multipart upload and discards its parts.
    async fn abort_multipart_upload(&self, path: &str, upload_id: &str) -> Result<()> {
        let _ = (path, upload_id);
        Err(Error::unsupported("multipart upload"))
    }

    /// A URL from which a client downloads `path` directly, valid for `expiration_secs`.
    async fn presigned_download_url(
        &self,
        path: &str,
        expiration_secs: u64,
    ) -> Result<PresignedUrl> {
        let _ = (path, expiration_secs);
        Err(Error::unsupported("presigned URLs"))
    }

    /// A URL to which a client uploads `path` directly, valid for `expiration_secs`.
    async fn presigned_upload_url(&self, path: &str, expiration_secs: u64) -> Result<PresignedUrl> {
        let _ = (path, expiration_secs);
        Err(Error::unsupported("presigned URLs"))
    }
}
