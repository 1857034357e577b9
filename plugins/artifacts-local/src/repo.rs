//! The repository: artifact paths confined to one directory, files streamed through the I/O
//! threads of [`crate::io`].

use crate::LocalSettings;
use crate::error::{LocalError, LocalResult, escapes_root, io_err, no_such_artifact};
use crate::io;
use async_trait::async_trait;
use bytes::Bytes;
use cairn_plugin_api::artifacts::{ArtifactCapabilities, ArtifactRepository, ByteStream, Download};
use cairn_plugin_api::entities::FileInfo;
use cairn_plugin_api::paths::{
    canonical_artifact_dir, canonical_artifact_path, file_name, parent, percent_decode_utf8,
};
use cairn_plugin_api::{Error, Result};
use futures_core::Stream;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Uploads in progress are written to a hidden file named with this prefix in the target's
/// directory and renamed over the target when complete. Listings never show such files. The
/// uploading process holds an exclusive lock on the file (`flock`) until it is renamed or
/// removed, so a temporary file nobody holds is stale: its upload died with its process
/// (`kill -9`, a crash), and the start-up sweep ([`LocalArtifactRepository::open`]) removes it.
pub const TEMP_PREFIX: &str = ".cairn-tmp-";

/// The roots this process has swept (or is sweeping), so each is swept once however often a
/// repository on it is built.
static SWEPT_ROOTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Bytes the upload's `BufWriter` gathers before a `write` call, so many small body chunks
/// cost few system calls.
const WRITE_BUFFER: usize = 256 * 1024;

/// An artifact repository on the local file system, rooted at one directory.
///
/// Every path argument goes through
/// [`canonical_artifact_path`](cairn_plugin_api::paths::canonical_artifact_path), and what it
/// resolves to on disk — symlinks followed — must stay under the root: a symlink that leads
/// out of the root is refused with `InvalidArgument`, and such entries are left out of
/// listings. The root directory is created by the first upload; before that, listings are
/// empty and reads find nothing.
///
/// The root itself may be (or lie under) a symlink: it is resolved once per call and
/// everything is compared against the resolved root.
pub struct LocalArtifactRepository {
    root_uri: String,
    inner: Arc<Inner>,
}

struct Inner {
    /// The root as configured, made absolute (not resolved: it may not exist yet).
    root: PathBuf,
    settings: LocalSettings,
    /// Set when the start-up sweep of stale temporary files is over.
    #[cfg(test)]
    swept: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl std::fmt::Debug for LocalArtifactRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalArtifactRepository")
            .field("root_uri", &self.root_uri)
            .field("root", &self.inner.root)
            .finish()
    }
}

/// The directory a `file:` URI or a plain path names, made absolute against the working
/// directory.
///
/// Accepted forms, as MLflow accepts them: `file:///abs/path`, `file://localhost/abs/path`,
/// `file:/abs/path`, `file:relative/path`, and plain paths (`/abs`, `relative`, `C:\dir`).
/// The path of a `file:` URI is percent-decoded (`file:///a%20b` is `/a b`); a plain path is
/// taken literally. A `file:` URI naming another host is `InvalidArgument`.
pub fn root_dir_of(uri: &str) -> Result<PathBuf> {
    let has_scheme = uri
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("file:"));
    let path = if has_scheme {
        let rest = &uri[5..];
        if let Some(authority_and_path) = rest.strip_prefix("//") {
            let (host, path) = match authority_and_path.find('/') {
                Some(i) => authority_and_path.split_at(i),
                None => (authority_and_path, ""),
            };
            if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
                return Err(Error::invalid(format!(
                    "artifact URI '{uri}' names the host '{host}'; a file: URI must name a \
                     local path (file:///path)"
                )));
            }
            percent_decode_utf8(path)?
        } else {
            percent_decode_utf8(rest)?
        }
    } else {
        uri.to_owned()
    };
    if path.is_empty() {
        return Err(Error::invalid(format!(
            "artifact URI '{uri}' names no directory"
        )));
    }
    if path.contains('\0') {
        return Err(Error::invalid(format!(
            "artifact URI '{}' contains a NUL byte",
            uri.escape_debug()
        )));
    }
    std::path::absolute(&path).map_err(|e| {
        Error::invalid(format!(
            "artifact root '{path}' cannot be made absolute: {e}"
        ))
    })
}

impl LocalArtifactRepository {
    /// A repository rooted at the directory `uri` names (see [`root_dir_of`]). Nothing is
    /// created or checked on disk until the first call. The first repository on a root in
    /// this process starts a background sweep of the tree (on the I/O threads) that removes
    /// stale upload files: [`TEMP_PREFIX`] files older than this call that no process holds
    /// locked.
    pub fn open(uri: &str, settings: LocalSettings) -> Result<Self> {
        if settings.chunk_size == 0 {
            return Err(Error::invalid("chunk_size must be at least 1"));
        }
        let inner = Arc::new(Inner {
            root: root_dir_of(uri)?,
            settings,
            #[cfg(test)]
            swept: Default::default(),
        });
        let first = SWEPT_ROOTS.lock().is_ok_and(|mut roots| {
            let first = !roots.contains(&inner.root);
            if first {
                roots.push(inner.root.clone());
            }
            first
        });
        let opened_at = std::time::SystemTime::now();
        let sweeping = Arc::clone(&inner);
        io::spawn(move || {
            if first {
                sweep_stale_uploads(&sweeping.root, opened_at);
            }
            #[cfg(test)]
            {
                let (done, cv) = &*sweeping.swept;
                *done.lock().unwrap() = true;
                cv.notify_all();
            }
        });
        Ok(LocalArtifactRepository {
            root_uri: uri.to_owned(),
            inner,
        })
    }

    /// The root directory as configured (absolute; symlinks not resolved).
    pub fn root_dir(&self) -> &Path {
        &self.inner.root
    }

    /// Runs `f` on an I/O thread with the repository's state.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> LocalResult<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        io::run(move || f(&inner))
            .await
            .map_err(LocalError::from)?
            .map_err(Error::from)
    }
}

// ---------------------------------------------------------------------------------------------
// Confinement: resolving canonical paths under the root
// ---------------------------------------------------------------------------------------------

fn is_missing(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

impl Inner {
    /// The root with every symlink resolved; `None` if it does not exist and `create` is false.
    fn canonical_root(&self, create: bool) -> LocalResult<Option<PathBuf>> {
        match fs::canonicalize(&self.root) {
            Ok(root) => Ok(Some(root)),
            Err(e) if is_missing(&e) && !create => Ok(None),
            Err(e) if is_missing(&e) => {
                fs::create_dir_all(&self.root)
                    .map_err(|e| io_err("create the artifact root", &self.root, e))?;
                fs::canonicalize(&self.root)
                    .map(Some)
                    .map_err(|e| io_err("resolve the artifact root", &self.root, e))
            }
            Err(e) => Err(io_err("resolve the artifact root", &self.root, e)),
        }
    }

    /// What the canonical relative path `rel` resolves to under the resolved `root`: the
    /// resolved path if it exists, `None` if it does not (a missing component, a component
    /// that is a file, a dangling symlink), and `InvalidArgument` if resolving it leaves the
    /// root — even when the final target is missing, so a symlink out of the root cannot be
    /// used to probe what exists outside.
    fn confine(root: &Path, rel: &str) -> LocalResult<Option<PathBuf>> {
        let full = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        match fs::canonicalize(&full) {
            Ok(resolved) if resolved.starts_with(root) => return Ok(Some(resolved)),
            Ok(_) => return Err(escapes_root(rel)),
            Err(e) if is_missing(&e) => {}
            Err(e) => return Err(io_err("resolve", &full, e)),
        }
        // Something is missing: walk down to it, checking every existing step stays inside.
        let mut current = root.to_path_buf();
        for component in rel.split('/') {
            let next = current.join(component);
            if fs::symlink_metadata(&next).is_err() {
                return Ok(None);
            }
            match fs::canonicalize(&next) {
                Ok(resolved) if resolved.starts_with(root) => current = resolved,
                Ok(_) => return Err(escapes_root(rel)),
                // A dangling symlink, or a component that is a file.
                Err(e) if is_missing(&e) => return Ok(None),
                Err(e) => return Err(io_err("resolve", &next, e)),
            }
        }
        // It appeared while we looked; what it is now was checked step by step above.
        Ok(Some(current))
    }

    /// The directory `rel_dir` under the resolved `root`, created (with its parents) where
    /// missing; every step is checked to stay inside the root after it exists.
    fn ensure_dir(root: &Path, rel_dir: &str, rel: &str) -> LocalResult<PathBuf> {
        let mut current = root.to_path_buf();
        if rel_dir.is_empty() {
            return Ok(current);
        }
        let mut so_far = String::new();
        for component in rel_dir.split('/') {
            if !so_far.is_empty() {
                so_far.push('/');
            }
            so_far.push_str(component);
            let next = current.join(component);
            match fs::create_dir(&next) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("create directory", &next, e)),
            }
            let resolved = match fs::canonicalize(&next) {
                Ok(resolved) => resolved,
                // A dangling symlink where a directory should be: where it leads is unknown.
                Err(e) if is_missing(&e) => return Err(escapes_root(rel)),
                Err(e) => return Err(io_err("resolve", &next, e)),
            };
            if !resolved.starts_with(root) {
                return Err(escapes_root(rel));
            }
            if !resolved.is_dir() {
                return Err(LocalError::Api(Error::invalid(format!(
                    "Cannot write '{rel}': '{so_far}' is a file, not a directory"
                ))));
            }
            current = resolved;
        }
        Ok(current)
    }

    /// The resolved path of the regular file at `rel` and its size; `NotFound` for anything
    /// else.
    fn regular_file(&self, rel: &str) -> LocalResult<(PathBuf, u64)> {
        if rel.is_empty() {
            return Err(no_such_artifact(rel));
        }
        let Some(root) = self.canonical_root(false)? else {
            return Err(no_such_artifact(rel));
        };
        let Some(path) = Self::confine(&root, rel)? else {
            return Err(no_such_artifact(rel));
        };
        // Checked before opening: opening a FIFO for reading would block.
        let meta = fs::metadata(&path).map_err(|e| {
            if is_missing(&e) {
                no_such_artifact(rel)
            } else {
                io_err("stat", &path, e)
            }
        })?;
        if !meta.is_file() {
            return Err(no_such_artifact(rel));
        }
        Ok((path, meta.len()))
    }

    fn open(&self, rel: &str) -> LocalResult<(File, u64)> {
        let (path, _) = self.regular_file(rel)?;
        let file = File::open(&path).map_err(|e| {
            if is_missing(&e) {
                no_such_artifact(rel)
            } else {
                io_err("open", &path, e)
            }
        })?;
        // The size of what was opened (a concurrent put replaces the file by rename, so the
        // open file itself never changes).
        let size = file.metadata().map_err(|e| io_err("stat", &path, e))?.len();
        Ok((file, size))
    }

    fn list(&self, rel: &str) -> LocalResult<Vec<FileInfo>> {
        let Some(root) = self.canonical_root(false)? else {
            return Ok(Vec::new());
        };
        let Some(dir) = Self::confine(&root, rel)? else {
            return Ok(Vec::new());
        };
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if is_missing(&e) => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err("list", &dir, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not UTF-8: no artifact path can name it
            };
            // Names no canonical path can reach (`a;b`, `...`) and uploads in progress.
            if name.starts_with(TEMP_PREFIX)
                || canonical_artifact_path(&name).ok().as_deref() != Some(name.as_str())
            {
                continue;
            }
            let Ok(file_type) = entry.file_type() else {
                continue; // removed meanwhile
            };
            let meta = if file_type.is_symlink() {
                match fs::canonicalize(entry.path()) {
                    Ok(target) if target.starts_with(&root) => match fs::metadata(&target) {
                        Ok(meta) => meta,
                        Err(_) => continue,
                    },
                    // Leads out of the root, or nowhere.
                    _ => continue,
                }
            } else {
                match entry.metadata() {
                    Ok(meta) => meta,
                    Err(_) => continue,
                }
            };
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if meta.is_dir() {
                out.push(FileInfo {
                    path,
                    is_dir: true,
                    file_size: None,
                });
            } else if meta.is_file() {
                out.push(FileInfo {
                    path,
                    is_dir: false,
                    file_size: Some(meta.len() as i64),
                });
            }
            // Sockets, FIFOs and devices are not artifacts.
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn delete(&self, rel: Option<&str>) -> LocalResult<()> {
        let Some(root) = self.canonical_root(false)? else {
            return Ok(());
        };
        let Some(rel) = rel else {
            // Everything under the root; the root itself stays (it may be a mount point).
            let entries = match fs::read_dir(&root) {
                Ok(entries) => entries,
                Err(e) if is_missing(&e) => return Ok(()),
                Err(e) => return Err(io_err("list", &root, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_err("list", &root, e))?;
                remove_entry(&entry.path())?;
            }
            return Ok(());
        };
        let Some(dir) = Self::confine(&root, parent(rel))? else {
            return Ok(());
        };
        // The entry itself is not resolved: deleting a symlink removes the link, never what
        // it points to.
        remove_entry(&dir.join(file_name(rel)))
    }

    fn prepare_put(&self, rel: &str, temp: &TempSlot) -> LocalResult<Upload> {
        let root = self
            .canonical_root(true)?
            .expect("canonical_root(create) returns the root");
        let dir = Self::ensure_dir(&root, parent(rel), rel)?;
        let target = dir.join(file_name(rel));
        if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
            return Err(LocalError::Api(Error::invalid(format!(
                "Cannot write '{rel}': it is a directory"
            ))));
        }
        let temp_path = dir.join(format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4().simple()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(|e| io_err("create", &temp_path, e))?;
        temp.created(temp_path.clone());
        // Held until the file is renamed or removed (or this process dies): see TEMP_PREFIX.
        file.lock().map_err(|e| io_err("lock", &temp_path, e))?;
        Ok(Upload {
            writer: BufWriter::with_capacity(WRITE_BUFFER, file),
            temp: temp_path,
            target,
            dir,
        })
    }
}

/// Removes the [`TEMP_PREFIX`] files under `dir` (symlinks not followed) that were last
/// modified before `before` and that no process holds locked: uploads that died with their
/// process. Errors skip the entry; returns how many files were removed.
fn sweep_stale_uploads(dir: &Path, before: std::time::SystemTime) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if file_type.is_dir() {
            removed += sweep_stale_uploads(&path, before);
        } else if file_type.is_file()
            && entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < before)
            && File::open(&path).is_ok_and(|f| f.try_lock().is_ok())
            && fs::remove_file(&path).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Removes a file, a symlink or a whole directory tree (symlinks inside it are removed, not
/// followed); a missing entry is fine.
fn remove_entry(path: &Path) -> LocalResult<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if is_missing(&e) => return Ok(()),
        Err(e) => return Err(io_err("stat", path, e)),
    };
    let removed = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match removed {
        Ok(()) => Ok(()),
        Err(e) if is_missing(&e) => Ok(()),
        Err(e) => Err(io_err("delete", path, e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Uploads
// ---------------------------------------------------------------------------------------------

/// An upload in progress: the temporary file being written and where it goes.
struct Upload {
    writer: BufWriter<File>,
    temp: PathBuf,
    target: PathBuf,
    dir: PathBuf,
}

type Pending<T> = Pin<Box<dyn Future<Output = LocalResult<T>> + Send>>;

/// The temporary file of an upload, removed unless the upload completes — also when the
/// caller drops the upload's future halfway (a client that disconnects).
///
/// Shared with the job that creates the file: if the upload is abandoned before that job has
/// run, the job finds the slot abandoned and removes the file itself.
#[derive(Default)]
struct TempSlot(Mutex<TempState>);

#[derive(Default)]
struct TempState {
    path: Option<PathBuf>,
    abandoned: bool,
}

impl TempSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, TempState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called by the job that created the file.
    fn created(&self, path: PathBuf) {
        let mut state = self.lock();
        if state.abandoned {
            let _ = fs::remove_file(&path);
        } else {
            state.path = Some(path);
        }
    }

    /// The upload completed: the file was renamed and must not be removed.
    fn keep(&self) {
        self.lock().path = None;
    }
}

struct TempGuard(Arc<TempSlot>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        let path = {
            let mut state = self.0.lock();
            state.abandoned = true;
            state.path.take()
        };
        if let Some(path) = path {
            io::spawn(move || {
                let _ = fs::remove_file(path);
            });
        }
    }
}

/// Writes `batch` on an I/O thread and hands the writer back.
fn write_batch(
    mut writer: BufWriter<File>,
    temp: PathBuf,
    batch: Vec<Bytes>,
) -> Pending<BufWriter<File>> {
    let job = io::run(move || {
        for chunk in &batch {
            writer
                .write_all(chunk)
                .map_err(|e| io_err("write", &temp, e))?;
        }
        Ok(writer)
    });
    Box::pin(async move { job.await? })
}

/// Flushes, optionally syncs, and renames the temporary file over the target.
fn finish_upload(upload: Upload, fsync: bool) -> LocalResult<()> {
    let Upload {
        writer,
        temp,
        target,
        dir,
    } = upload;
    let file = writer
        .into_inner()
        .map_err(|e| io_err("write", &temp, e.into_error()))?;
    if fsync {
        file.sync_all().map_err(|e| io_err("fsync", &temp, e))?;
    }
    drop(file);
    fs::rename(&temp, &target).map_err(|e| io_err("rename", &target, e))?;
    if fsync {
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err("fsync", &dir, e))?;
    }
    Ok(())
}

async fn next_chunk(body: &mut ByteStream) -> Option<Result<Bytes>> {
    std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await
}

// ---------------------------------------------------------------------------------------------
// Downloads
// ---------------------------------------------------------------------------------------------

/// A file read chunk by chunk on the I/O threads, one chunk ahead of the consumer.
struct FileStream {
    reading: Option<Pending<(File, Vec<u8>)>>,
    chunk_size: usize,
    path: PathBuf,
}

fn read_chunk(mut file: File, chunk_size: usize, path: PathBuf) -> Pending<(File, Vec<u8>)> {
    let job = io::run(move || {
        let mut buf = Vec::with_capacity(chunk_size);
        (&mut file)
            .take(chunk_size as u64)
            .read_to_end(&mut buf)
            .map_err(|e| io_err("read", &path, e))?;
        Ok((file, buf))
    });
    Box::pin(async move { job.await? })
}

impl FileStream {
    fn new(file: File, chunk_size: usize, path: PathBuf) -> Self {
        FileStream {
            reading: Some(read_chunk(file, chunk_size, path.clone())),
            chunk_size,
            path,
        }
    }
}

impl Stream for FileStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(reading) = self.reading.as_mut() else {
            return Poll::Ready(None);
        };
        match reading.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => {
                self.reading = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Ok((_, buf))) if buf.is_empty() => {
                self.reading = None;
                Poll::Ready(None)
            }
            Poll::Ready(Ok((file, buf))) => {
                // Start reading the next chunk while this one is consumed.
                let next = read_chunk(file, self.chunk_size, self.path.clone());
                self.reading = Some(next);
                Poll::Ready(Some(Ok(Bytes::from(buf))))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl ArtifactRepository for LocalArtifactRepository {
    fn capabilities(&self) -> ArtifactCapabilities {
        ArtifactCapabilities {
            multipart_upload: false,
            presigned_urls: false,
        }
    }

    fn root_uri(&self) -> &str {
        &self.root_uri
    }

    async fn put(&self, path: &str, mut body: ByteStream) -> Result<u64> {
        let rel = canonical_artifact_path(path)?;
        if rel.is_empty() {
            return Err(Error::invalid(format!(
                "Cannot write '{path}': the path names no file"
            )));
        }
        let slot = Arc::new(TempSlot::default());
        let guard = TempGuard(Arc::clone(&slot));
        let job_slot = Arc::clone(&slot);
        let upload = self
            .blocking(move |inner| inner.prepare_put(&rel, &job_slot))
            .await?;
        let Upload {
            writer,
            temp,
            target,
            dir,
        } = upload;
        let chunk_size = self.inner.settings.chunk_size;

        // At most one batch is being written while the next is gathered.
        let mut idle = Some(writer);
        let mut writing: Option<Pending<BufWriter<File>>> = None;
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batched = 0usize;
        let mut total = 0u64;
        loop {
            let chunk = match next_chunk(&mut body).await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => return Err(e), // the guard removes the temporary file
                None => break,
            };
            total += chunk.len() as u64;
            batched += chunk.len();
            batch.push(chunk);
            if batched >= chunk_size {
                let writer = match writing.take() {
                    Some(pending) => pending.await?,
                    None => idle.take().expect("one writer"),
                };
                writing = Some(write_batch(
                    writer,
                    temp.clone(),
                    std::mem::take(&mut batch),
                ));
                batched = 0;
            }
        }
        let mut writer = match writing.take() {
            Some(pending) => pending.await?,
            None => idle.take().expect("one writer"),
        };
        if !batch.is_empty() {
            writer = write_batch(writer, temp.clone(), batch).await?;
        }
        let fsync = self.inner.settings.fsync;
        let upload = Upload {
            writer,
            temp,
            target,
            dir,
        };
        self.blocking(move |_| finish_upload(upload, fsync)).await?;
        slot.keep();
        drop(guard);
        Ok(total)
    }

    async fn get(&self, path: &str) -> Result<Download> {
        let rel = canonical_artifact_path(path)?;
        let chunk_size = self.inner.settings.chunk_size;
        let job_rel = rel.clone();
        let (file, size) = self.blocking(move |inner| inner.open(&job_rel)).await?;
        Ok(Download {
            size: Some(size),
            body: Box::pin(FileStream::new(file, chunk_size, PathBuf::from(rel))),
        })
    }

    async fn list(&self, path: Option<&str>) -> Result<Vec<FileInfo>> {
        let rel = canonical_artifact_dir(path)?.unwrap_or_default();
        self.blocking(move |inner| inner.list(&rel)).await
    }

    async fn delete(&self, path: Option<&str>) -> Result<()> {
        let rel = canonical_artifact_dir(path)?;
        self.blocking(move |inner| inner.delete(rel.as_deref()))
            .await
    }

    async fn head(&self, path: &str) -> Result<FileInfo> {
        let rel = canonical_artifact_path(path)?;
        self.blocking(move |inner| {
            let (_, size) = inner.regular_file(&rel)?;
            Ok(FileInfo {
                path: rel,
                is_dir: false,
                file_size: Some(size as i64),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_dirs_of_uris_and_paths() {
        let cwd = std::env::current_dir().unwrap();
        for (uri, dir) in [
            ("file:///tmp/mlruns", PathBuf::from("/tmp/mlruns")),
            ("file://localhost/tmp/mlruns", PathBuf::from("/tmp/mlruns")),
            ("FILE:///tmp/a%20b", PathBuf::from("/tmp/a b")),
            ("file:/tmp/x", PathBuf::from("/tmp/x")),
            ("file:rel/x", cwd.join("rel/x")),
            ("/var/lib/cairn", PathBuf::from("/var/lib/cairn")),
            ("./mlartifacts", cwd.join("mlartifacts")),
            ("plain%20name", cwd.join("plain%20name")),
        ] {
            assert_eq!(root_dir_of(uri).unwrap(), dir, "{uri}");
        }
        for uri in ["file://otherhost/x", "", "file://", "file:", "a\0b"] {
            assert!(root_dir_of(uri).is_err(), "{uri:?} accepted");
        }
    }

    #[test]
    fn start_up_sweeps_temp_files_of_dead_uploads_only() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("1/run/artifacts");
        fs::create_dir_all(&sub).unwrap();
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let make = |name: &str| {
            let path = sub.join(name);
            let f = File::create(&path).unwrap();
            f.set_modified(an_hour_ago).unwrap();
            (path, f)
        };
        // An upload killed with its process: nobody holds its file.
        let (dead, f) = make(&format!("{TEMP_PREFIX}dead"));
        drop(f);
        // An upload still running in another process: its file is locked.
        let (live, held) = make(&format!("{TEMP_PREFIX}live"));
        held.lock().unwrap();
        // An artifact that merely looks old.
        let (artifact, f) = make("model.pkl");
        drop(f);

        let repo =
            LocalArtifactRepository::open(&dir.path().to_string_lossy(), LocalSettings::default())
                .unwrap();
        let (done, cv) = &*repo.inner.swept;
        let _swept = cv.wait_while(done.lock().unwrap(), |done| !*done).unwrap();
        assert!(!dead.exists(), "the stale temp file survived start-up");
        assert!(live.exists(), "a locked (live) upload was removed");
        assert!(artifact.exists());
        drop(held);
    }
}
