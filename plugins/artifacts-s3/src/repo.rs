//! The repository: artifact paths as keys under one bucket prefix, transfers bridged between
//! the caller's executor and the plugin's runtime through bounded channels.

use crate::config::{MAX_EXPIRY_SECS, S3Settings, ignore_tls, resolve_endpoint};
use crate::error::{from_store, internal};
use crate::runtime::{run, runtime};
use async_trait::async_trait;
use bytes::Bytes;
use cairn_plugin_api::artifacts::{
    ArtifactCapabilities, ArtifactRepository, ByteStream, CompletedPart, Download,
    MultipartCredential, MultipartUpload, PresignedUrl,
};
use cairn_plugin_api::entities::FileInfo;
use cairn_plugin_api::paths::{canonical_artifact_dir, canonical_artifact_path};
use cairn_plugin_api::{Error, ErrorKind, Result};
use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{ClientConfigKey, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload};
use object_store::{GetResult, WriteMultipart};
use std::collections::BTreeMap;
use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

/// Chunks in flight between the caller's executor and the runtime, each way.
const CHANNEL_DEPTH: usize = 4;

/// S3's most parts in one multipart upload.
pub const MAX_PARTS: u32 = 10_000;

/// An artifact repository on S3 or an S3-compatible server, rooted at `s3://bucket/prefix`.
///
/// Artifact paths (canonicalised with
/// [`canonical_artifact_path`](cairn_plugin_api::paths::canonical_artifact_path)) become keys
/// `prefix/path`; directories are key prefixes, so an empty directory does not exist. Object
/// keys are used exactly as the artifact paths spell them (no extra escaping), so a client
/// writing straight to the bucket (`--no-serve-artifacts`) and Cairn see the same names.
pub struct S3ArtifactRepository {
    root_uri: String,
    bucket: String,
    prefix: String,
    store: Arc<AmazonS3>,
    settings: S3Settings,
}

impl std::fmt::Debug for S3ArtifactRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3ArtifactRepository")
            .field("root_uri", &self.root_uri)
            .field("settings", &self.settings)
            .finish()
    }
}

/// The bucket and the canonical key prefix (`""` for the bucket's root) of an `s3://` URI.
///
/// The prefix goes through the artifact-path canonicaliser: `s3://b/a//b/` is `("b", "a/b")`,
/// and `s3://b/../x` is `InvalidArgument`.
pub fn parse_s3_uri(uri: &str) -> Result<(String, String)> {
    let rest = uri
        .get(..5)
        .filter(|s| s.eq_ignore_ascii_case("s3://"))
        .map(|_| &uri[5..])
        .ok_or_else(|| Error::invalid(format!("'{uri}' is not an s3://bucket/prefix URI")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = !bucket.is_empty()
        && bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !bucket_ok {
        return Err(Error::invalid(format!(
            "'{uri}' names no valid bucket (s3://bucket/prefix)"
        )));
    }
    let prefix = canonical_artifact_path(prefix)
        .map_err(|e| Error::invalid(format!("invalid key prefix in '{uri}': {}", e.message)))?;
    Ok((bucket.to_owned(), prefix))
}

impl S3ArtifactRepository {
    /// A repository rooted at the `s3://bucket/prefix` URI `uri`, configured by `settings` and
    /// the process environment (see [`S3Settings`]). Nothing is sent to S3 until the first
    /// call.
    pub fn open(uri: &str, settings: S3Settings) -> Result<Self> {
        Self::open_with_env(uri, settings, std::env::vars())
    }

    /// [`open`](Self::open) with the environment given as `(name, value)` pairs.
    pub fn open_with_env(
        uri: &str,
        settings: S3Settings,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        settings
            .check()
            .map_err(|m| Error::invalid(format!("invalid [settings.s3]: {m}")))?;
        let (bucket, prefix) = parse_s3_uri(uri)?;
        let env: BTreeMap<String, String> = env.into_iter().collect();
        let lookup = |k: &str| env.get(k).cloned();

        let client = ClientOptions::new()
            .with_timeout_disabled()
            .with_connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
            .with_read_timeout(Duration::from_secs(settings.read_timeout_secs));
        let mut builder = AmazonS3Builder::new().with_client_options(client);
        // What `AmazonS3Builder::from_env` reads, applied over the client defaults above.
        for (key, value) in &env {
            if key.starts_with("AWS_")
                && let Ok(config) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>()
            {
                builder = builder.with_config(config, value);
            }
        }
        builder = builder
            .with_bucket_name(&bucket)
            .with_virtual_hosted_style_request(!settings.force_path_style);
        if let Some(endpoint) = resolve_endpoint(&settings, lookup) {
            if settings.allow_http.is_none() && endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(allow) = settings.allow_http {
            builder = builder.with_allow_http(allow);
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(&secret.0);
            if let Some(token) = &settings.session_token {
                builder = builder.with_token(&token.0);
            }
        }
        if settings.skip_signature {
            builder = builder.with_skip_signature(true);
        }
        if ignore_tls(&settings, lookup) {
            builder = builder.with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::AllowInvalidCertificates),
                "true",
            );
        }
        let store = builder
            .build()
            .map_err(|e| Error::invalid(format!("invalid S3 configuration for '{uri}': {e}")))?;
        Ok(S3ArtifactRepository {
            root_uri: uri.to_owned(),
            bucket,
            prefix,
            store: Arc::new(store),
            settings,
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The canonical key prefix (`""` for the bucket's root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The object key of the canonical artifact path `rel`.
    fn key(&self, rel: &str) -> Result<Path> {
        let full = match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        };
        Path::parse(&full).map_err(|e| {
            Error::invalid(cairn_plugin_api::paths::INVALID_PATH_MESSAGE)
                .with_context("path", rel)
                .with_source(e)
        })
    }

    /// The artifact path of an object key under the prefix, if it is a canonical one.
    fn rel_of(&self, key: &Path) -> Option<String> {
        let key: &str = key.as_ref();
        let rel = if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?
        };
        (canonical_artifact_path(rel).ok()? == rel && !rel.is_empty()).then(|| rel.to_owned())
    }

    /// A canonical path that must name a file (not the root).
    fn file_path(path: &str) -> Result<String> {
        let rel = canonical_artifact_path(path)?;
        if rel.is_empty() {
            return Err(Error::invalid(format!(
                "'{path}' names the artifact root, not a file"
            )));
        }
        Ok(rel)
    }

    fn multipart_not_found(e: object_store::Error, rel: &str, upload_id: &str) -> Error {
        match e {
            object_store::Error::NotFound { .. } => Error::not_found(format!(
                "No such multipart upload '{upload_id}' for '{rel}'"
            ))
            .with_source(e),
            e => from_store(e, rel),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming between the caller's executor and the runtime
// ---------------------------------------------------------------------------------------------

/// One message from `put`'s caller to its upload task. The task completes the upload only on
/// `End`: a channel that closes without it (the body failed, the caller went away) aborts.
enum Msg {
    Data(Bytes),
    End,
}

async fn send<T>(tx: &mut mpsc::Sender<T>, item: T) -> std::result::Result<(), ()> {
    poll_fn(|cx| tx.poll_ready(cx)).await.map_err(|_| ())?;
    tx.start_send(item).map_err(|_| ())
}

async fn next_chunk(body: &mut ByteStream) -> Option<Result<Bytes>> {
    poll_fn(|cx| body.as_mut().poll_next(cx)).await
}

fn aborted(rel: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("the upload of '{rel}' was abandoned"),
    )
}

/// Runs on the runtime: a body smaller than one part becomes one `PUT`; a larger one a
/// multipart upload with at most `max_concurrency` parts in flight.
async fn upload(
    store: Arc<AmazonS3>,
    key: Path,
    mut rx: mpsc::Receiver<Msg>,
    part_size: usize,
    max_concurrency: usize,
    rel: String,
) -> Result<u64> {
    let mut first = Vec::new();
    let mut buffered = 0usize;
    let mut total = 0u64;
    loop {
        match rx.next().await {
            Some(Msg::Data(chunk)) => {
                total += chunk.len() as u64;
                buffered += chunk.len();
                first.push(chunk);
                if buffered >= part_size {
                    break;
                }
            }
            Some(Msg::End) => {
                store
                    .put(&key, first.into_iter().collect::<PutPayload>())
                    .await
                    .map_err(|e| from_store(e, &rel))?;
                return Ok(total);
            }
            None => return Err(aborted(&rel)),
        }
    }
    let parts = store
        .put_multipart(&key)
        .await
        .map_err(|e| from_store(e, &rel))?;
    let mut writer = WriteMultipart::new_with_chunk_size(parts, part_size);
    for chunk in first {
        writer.put(chunk);
    }
    loop {
        if let Err(e) = writer.wait_for_capacity(max_concurrency).await {
            let _ = writer.abort().await;
            return Err(from_store(e, &rel));
        }
        match rx.next().await {
            Some(Msg::Data(chunk)) => {
                total += chunk.len() as u64;
                writer.put(chunk);
            }
            Some(Msg::End) => {
                writer.finish().await.map_err(|e| from_store(e, &rel))?;
                return Ok(total);
            }
            None => {
                let _ = writer.abort().await;
                return Err(aborted(&rel));
            }
        }
    }
}

/// Runs on the runtime: forwards a download's chunks until it ends or the reader goes away.
async fn forward(got: GetResult, mut tx: mpsc::Sender<Result<Bytes>>, rel: String) {
    let mut body = got.into_stream();
    while let Some(item) = body.next().await {
        let failed = item.is_err();
        if send(&mut tx, item.map_err(|e| from_store(e, &rel)))
            .await
            .is_err()
            || failed
        {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl ArtifactRepository for S3ArtifactRepository {
    fn capabilities(&self) -> ArtifactCapabilities {
        ArtifactCapabilities {
            multipart_upload: true,
            // Unsigned requests cannot sign URLs.
            presigned_urls: !self.settings.skip_signature,
        }
    }

    fn root_uri(&self) -> &str {
        &self.root_uri
    }

    async fn put(&self, path: &str, mut body: ByteStream) -> Result<u64> {
        let rel = Self::file_path(path)?;
        let key = self.key(&rel)?;
        let (mut tx, rx) = mpsc::channel::<Msg>(CHANNEL_DEPTH);
        let (done_tx, done_rx) = oneshot::channel();
        let task = upload(
            Arc::clone(&self.store),
            key,
            rx,
            self.settings.part_size,
            self.settings.max_concurrency,
            rel.clone(),
        );
        runtime()?.spawn(async move {
            let _ = done_tx.send(task.await);
        });
        // The body is polled here, on the caller's executor, where it came from.
        loop {
            match next_chunk(&mut body).await {
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => {
                    if send(&mut tx, Msg::Data(chunk)).await.is_err() {
                        break; // the task failed; its error follows
                    }
                }
                // Dropping the sender without `End` makes the task abort the upload.
                Some(Err(e)) => return Err(e),
                None => {
                    let _ = send(&mut tx, Msg::End).await;
                    break;
                }
            }
        }
        drop(tx);
        done_rx
            .await
            .map_err(|_| internal("the S3 upload task ended without a result"))?
    }

    async fn get(&self, path: &str) -> Result<Download> {
        let rel = canonical_artifact_path(path)?;
        if rel.is_empty() {
            return Err(Error::not_found(format!("No such artifact: '{rel}'")));
        }
        let key = self.key(&rel)?;
        let store = Arc::clone(&self.store);
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let size = run(async move {
            let got = store.get(&key).await.map_err(|e| from_store(e, &rel))?;
            let size = got.meta.size;
            tokio::spawn(forward(got, tx, rel));
            Ok::<u64, Error>(size)
        })
        .await??;
        Ok(Download {
            size: Some(size),
            body: Box::pin(rx),
        })
    }

    async fn list(&self, path: Option<&str>) -> Result<Vec<FileInfo>> {
        let rel = canonical_artifact_dir(path)?.unwrap_or_default();
        let key = self.key(&rel)?;
        let store = Arc::clone(&self.store);
        let bucket = self.bucket.clone();
        let listed = run(async move {
            let prefix = (!key.as_ref().is_empty()).then_some(key);
            store.list_with_delimiter(prefix.as_ref()).await
        })
        .await?
        .map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                Error::internal(format!("the S3 bucket '{bucket}' does not exist")).with_source(e)
            }
            e => from_store(e, &rel),
        })?;
        let mut out = Vec::new();
        for dir in &listed.common_prefixes {
            if let Some(p) = self.rel_of(dir).filter(|p| *p != rel) {
                out.push(FileInfo {
                    path: p,
                    is_dir: true,
                    file_size: None,
                });
            }
        }
        for object in &listed.objects {
            if let Some(p) = self.rel_of(&object.location).filter(|p| *p != rel) {
                out.push(FileInfo {
                    path: p,
                    is_dir: false,
                    file_size: Some(object.size as i64),
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.dedup_by(|a, b| a.path == b.path);
        Ok(out)
    }

    async fn delete(&self, path: Option<&str>) -> Result<()> {
        let rel = canonical_artifact_dir(path)?.unwrap_or_default();
        let key = self.key(&rel)?;
        let store = Arc::clone(&self.store);
        let what = rel.clone();
        run(async move {
            let prefix = (!key.as_ref().is_empty()).then_some(key);
            if let Some(key) = &prefix {
                match store.delete(key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            let locations = store
                .list(prefix.as_ref())
                .map(|meta| meta.map(|m| m.location))
                .boxed();
            let mut deleted = store.delete_stream(locations);
            while let Some(result) = deleted.next().await {
                match result {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .await?
        .map_err(|e| from_store(e, &what))
    }

    async fn head(&self, path: &str) -> Result<FileInfo> {
        let rel = canonical_artifact_path(path)?;
        if rel.is_empty() {
            return Err(Error::not_found(format!("No such artifact: '{rel}'")));
        }
        let key = self.key(&rel)?;
        let store = Arc::clone(&self.store);
        let meta = run(async move { store.head(&key).await })
            .await?
            .map_err(|e| from_store(e, &rel))?;
        Ok(FileInfo {
            path: rel,
            is_dir: false,
            file_size: Some(meta.size as i64),
        })
    }

    async fn create_multipart_upload(&self, path: &str, num_parts: u32) -> Result<MultipartUpload> {
        let rel = Self::file_path(path)?;
        if num_parts == 0 || num_parts > MAX_PARTS {
            return Err(Error::invalid(format!(
                "num_parts must be between 1 and {MAX_PARTS}, got {num_parts}"
            )));
        }
        let key = self.key(&rel)?;
        let store = Arc::clone(&self.store);
        let sign = !self.settings.skip_signature;
        let expiry = Duration::from_secs(self.settings.multipart_url_expiry_secs);
        run(async move {
            let upload_id = store
                .create_multipart(&key)
                .await
                .map_err(|e| from_store(e, &rel))?;
            let mut credentials = Vec::with_capacity(num_parts as usize);
            for part_number in 1..=num_parts {
                let url = if sign {
                    let options = SignedUrlOptions::default().with_query([
                        ("partNumber", part_number.to_string()),
                        ("uploadId", upload_id.clone()),
                    ]);
                    match store
                        .signed_url_opts(Method::PUT, &key, expiry, &options)
                        .await
                    {
                        Ok(url) => Some(url.to_string()),
                        Err(e) => {
                            let _ = store.abort_multipart(&key, &upload_id).await;
                            return Err(from_store(e, &rel));
                        }
                    }
                } else {
                    None
                };
                credentials.push(MultipartCredential {
                    part_number,
                    url,
                    headers: BTreeMap::new(),
                });
            }
            Ok(MultipartUpload {
                upload_id,
                credentials,
            })
        })
        .await?
    }

    async fn upload_part(
        &self,
        path: &str,
        upload_id: &str,
        part_number: u32,
        mut body: ByteStream,
    ) -> Result<String> {
        let rel = Self::file_path(path)?;
        if part_number == 0 || part_number > MAX_PARTS {
            return Err(Error::invalid(format!(
                "part_number must be between 1 and {MAX_PARTS}, got {part_number}"
            )));
        }
        let key = self.key(&rel)?;
        // S3 needs a part's length and checksum before sending it, so the part is gathered
        // first — bounded by `max_proxied_part_size`.
        let limit = self.settings.max_proxied_part_size;
        let mut chunks = Vec::new();
        let mut size = 0usize;
        while let Some(chunk) = next_chunk(&mut body).await {
            let chunk = chunk?;
            size += chunk.len();
            if size > limit {
                return Err(Error::invalid(format!(
                    "part {part_number} is larger than max_proxied_part_size ({limit} bytes); \
                     upload parts to their presigned URLs instead"
                )));
            }
            chunks.push(chunk);
        }
        let store = Arc::clone(&self.store);
        let id = upload_id.to_owned();
        let part = run(async move {
            store
                .put_part(
                    &key,
                    &id,
                    part_number as usize - 1,
                    chunks.into_iter().collect::<PutPayload>(),
                )
                .await
        })
        .await?
        .map_err(|e| Self::multipart_not_found(e, &rel, upload_id))?;
        Ok(part.content_id)
    }

    async fn complete_multipart_upload(
        &self,
        path: &str,
        upload_id: &str,
        mut parts: Vec<CompletedPart>,
    ) -> Result<()> {
        let rel = Self::file_path(path)?;
        let key = self.key(&rel)?;
        parts.sort_by_key(|p| p.part_number);
        let numbered = !parts.is_empty()
            && parts
                .iter()
                .enumerate()
                .all(|(i, p)| p.part_number as usize == i + 1);
        if !numbered {
            return Err(Error::invalid(
                "the parts of a multipart upload must be numbered 1 to N, each once",
            ));
        }
        if parts.iter().any(|p| p.etag.is_empty()) {
            return Err(Error::invalid("every part needs its ETag"));
        }
        let ids: Vec<PartId> = parts
            .into_iter()
            .map(|p| PartId { content_id: p.etag })
            .collect();
        let store = Arc::clone(&self.store);
        let id = upload_id.to_owned();
        run(async move { store.complete_multipart(&key, &id, ids).await })
            .await?
            .map_err(|e| Self::multipart_not_found(e, &rel, upload_id))?;
        Ok(())
    }

    async fn abort_multipart_upload(&self, path: &str, upload_id: &str) -> Result<()> {
        let rel = Self::file_path(path)?;
        let key = self.key(&rel)?;
        let store = Arc::clone(&self.store);
        let id = upload_id.to_owned();
        match run(async move { store.abort_multipart(&key, &id).await }).await? {
            // Already aborted or completed: nothing is left to discard.
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(from_store(e, &rel)),
        }
    }

    async fn presigned_download_url(
        &self,
        path: &str,
        expiration_secs: u64,
    ) -> Result<PresignedUrl> {
        self.presign(Method::GET, path, expiration_secs).await
    }

    async fn presigned_upload_url(&self, path: &str, expiration_secs: u64) -> Result<PresignedUrl> {
        self.presign(Method::PUT, path, expiration_secs).await
    }
}

impl S3ArtifactRepository {
    async fn presign(&self, method: Method, path: &str, secs: u64) -> Result<PresignedUrl> {
        let rel = Self::file_path(path)?;
        if self.settings.skip_signature {
            return Err(Error::unsupported(
                "presigned URLs (the repository sends unsigned requests)",
            ));
        }
        if secs == 0 || secs > MAX_EXPIRY_SECS {
            return Err(Error::invalid(format!(
                "a presigned URL must expire within 1 to {MAX_EXPIRY_SECS} seconds, got {secs}"
            )));
        }
        let key = self.key(&rel)?;
        let store = Arc::clone(&self.store);
        let url = run(async move {
            store
                .signed_url(method, &key, Duration::from_secs(secs))
                .await
        })
        .await?
        .map_err(|e| from_store(e, &rel))?;
        Ok(PresignedUrl {
            url: url.to_string(),
            headers: BTreeMap::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris_split_into_bucket_and_canonical_prefix() {
        for (uri, bucket, prefix) in [
            ("s3://bucket", "bucket", ""),
            ("s3://bucket/", "bucket", ""),
            ("S3://my-bucket.x/a/b", "my-bucket.x", "a/b"),
            ("s3://b/a//b/./c/", "b", "a/b/c"),
        ] {
            assert_eq!(
                parse_s3_uri(uri).unwrap(),
                (bucket.to_string(), prefix.to_string()),
                "{uri}"
            );
        }
        for uri in [
            "s3://",
            "s3:///x",
            "s3://b/../x",
            "s3://b/%2e%2e/x",
            "gs://b/x",
            "s3://b c/x",
        ] {
            assert!(parse_s3_uri(uri).is_err(), "{uri} accepted");
        }
    }

    fn repo(uri: &str) -> S3ArtifactRepository {
        S3ArtifactRepository::open_with_env(
            uri,
            S3Settings::default(),
            [
                ("AWS_ACCESS_KEY_ID".to_string(), "AKIDEXAMPLE".to_string()),
                ("AWS_SECRET_ACCESS_KEY".to_string(), "secret".to_string()),
                (
                    "MLFLOW_S3_ENDPOINT_URL".to_string(),
                    "http://127.0.0.1:9".to_string(),
                ),
            ],
        )
        .unwrap()
    }

    #[test]
    fn keys_join_the_prefix_and_come_back_as_paths() {
        let r = repo("s3://b/root/dir");
        assert_eq!(r.key("a/b.txt").unwrap().as_ref(), "root/dir/a/b.txt");
        assert_eq!(r.key("").unwrap().as_ref(), "root/dir");
        assert_eq!(
            r.rel_of(&Path::parse("root/dir/a/b").unwrap()).unwrap(),
            "a/b"
        );
        assert_eq!(r.rel_of(&Path::parse("root/dirx/a").unwrap()), None);
        assert_eq!(r.rel_of(&Path::parse("root/dir/a;b").unwrap()), None);
        // Keys keep `%` and spaces as given.
        assert_eq!(r.key("100%.txt").unwrap().as_ref(), "root/dir/100%.txt");
        let bare = repo("s3://b");
        assert_eq!(bare.key("x").unwrap().as_ref(), "x");
        assert_eq!(bare.rel_of(&Path::parse("x/y").unwrap()).unwrap(), "x/y");
    }

    #[test]
    fn presigned_urls_are_signed_for_the_endpoint_without_a_request() {
        let r = repo("s3://bucket/p");
        let url = futures_executor::block_on(r.presigned_download_url("d/f.txt", 300)).unwrap();
        assert!(
            url.url.starts_with("http://127.0.0.1:9/bucket/p/d/f.txt?"),
            "{}",
            url.url
        );
        assert!(url.url.contains("X-Amz-Signature="), "{}", url.url);
        assert!(url.url.contains("X-Amz-Expires=300"), "{}", url.url);
        let e = futures_executor::block_on(r.presigned_download_url("f", 0)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
    }

    #[test]
    fn bad_settings_are_invalid_argument() {
        let e = S3ArtifactRepository::open_with_env(
            "s3://b",
            S3Settings {
                part_size: 10,
                ..Default::default()
            },
            [],
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(e.message.contains("part_size"), "{}", e.message);
    }
}
