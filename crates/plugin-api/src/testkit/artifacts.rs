//! The [`ArtifactRepository`] conformance cases: what every artifact repository promises
//! (the contract in [`crate::artifacts`], MLflow's `ArtifactRepository` behaviour in api.md
//! §3 and §9.1), one `pub async fn` per behaviour.
//!
//! **Fixture contract.** Each test gets a repository whose root is **fresh and empty** and
//! used by nothing else (a new temporary directory, a new random prefix in a bucket):
//! [`delete_root_removes_everything`] deletes the whole root. Every other case also works in
//! its own random directory, so a leftover from an earlier run never matters.
//!
//! **Large files.** [`large_file_streams_both_ways`] writes 64 MiB as a stream of irregular
//! chunks generated on the fly and checks the download against the same generator chunk by
//! chunk: neither side ever holds the file in memory, so a repository that buffers whole files
//! is caught by its own memory use, not by this suite's.
//!
//! Run them all with [`artifact_repository_conformance!`](crate::artifact_repository_conformance);
//! [`ARTIFACT_CASES`] lists their names.

use crate::artifacts::{ArtifactRepository, ByteStream, CompletedPart, Download};
use crate::entities::FileInfo;
use crate::testkit::support::{expect_err, ok, unique_name};
use crate::{Error, ErrorKind, Result};
use bytes::Bytes;
use futures_core::Stream;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The name of every artifact case, in suite order; the same list the macro stamps tests from.
pub const ARTIFACT_CASES: &[&str] = crate::__cairn_artifact_cases!(names);

/// Size of the file [`large_file_streams_both_ways`] writes.
pub const LARGE_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// The smallest part S3 accepts in a multipart upload, except the last: 5 MiB.
pub const MIN_MULTIPART_PART: usize = 5 * 1024 * 1024;

/// Spellings of a relative path that climbs out of wherever it starts, which a repository must
/// refuse with `InvalidArgument` whatever the method, at its root and in a subdirectory: `..`,
/// `..\`, percent-encoded and double-encoded traversal, `;` path parameters, NUL bytes, `#`.
pub const TRAVERSAL_ATTEMPTS: &[&str] = &[
    "..",
    "../escape.txt",
    "a/../../escape.txt",
    "..\\escape.txt",
    "a\\..\\..\\escape.txt",
    "%2e%2e%2fescape.txt",
    "%2E%2E%2Fescape.txt",
    "..%2fescape.txt",
    "%2e%2e/escape.txt",
    "..%5cescape.txt",
    "%252e%252e%252fescape.txt",
    "a/%252e%252e/%252e%252e/escape.txt",
    "%25252e%25252e%25252fescape.txt",
    "..;/escape.txt",
    "a;b/escape.txt",
    "escape\0.txt",
    "escape%00.txt",
    "escape#.txt",
    "...",
];

/// Absolute paths in every form — POSIX, encoded, Windows drive, UNC — which a repository must
/// refuse with `InvalidArgument` whatever the method.
pub const ABSOLUTE_ATTEMPTS: &[&str] = &[
    "/etc/passwd",
    "//server/share/escape.txt",
    "%2fetc%2fpasswd",
    "%252fetc%252fpasswd",
    "C:\\escape.txt",
    "C:/escape.txt",
    "\\\\server\\share\\escape.txt",
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A stream of the given chunks.
pub fn chunks_stream(chunks: Vec<Bytes>) -> ByteStream {
    Box::pin(Iter(
        chunks.into_iter().map(Ok).collect::<Vec<_>>().into_iter(),
    ))
}

/// A stream of `data` in one chunk.
pub fn bytes_stream(data: impl Into<Bytes>) -> ByteStream {
    chunks_stream(vec![data.into()])
}

/// A stream that yields `data` and then fails with an `Unavailable` error (a client that
/// disconnects mid-upload).
pub fn failing_stream(data: impl Into<Bytes>) -> ByteStream {
    Box::pin(Iter(
        vec![
            Ok(data.into()),
            Err(Error::new(ErrorKind::Unavailable, "the client went away")),
        ]
        .into_iter(),
    ))
}

struct Iter<I>(I);

impl<I: Iterator<Item = Result<Bytes>> + Unpin> Stream for Iter<I> {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.next())
    }
}

/// The next item of `stream`.
pub async fn next_chunk(stream: &mut ByteStream) -> Option<Result<Bytes>> {
    poll_fn(|cx| stream.as_mut().poll_next(cx)).await
}

/// Every byte of `download`, checking its announced size (if any) against what arrives.
pub async fn read_all(mut download: Download, what: &str) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = next_chunk(&mut download.body).await {
        out.extend_from_slice(&ok(chunk, &format!("{what}: reading the body")));
    }
    if let Some(size) = download.size {
        assert_eq!(
            size,
            out.len() as u64,
            "{what}: the download announced {size} bytes but delivered {}",
            out.len()
        );
    }
    out
}

/// `put` of `data` to `path`, checking the byte count it reports.
pub async fn put_bytes(repo: &dyn ArtifactRepository, path: &str, data: &[u8]) {
    let n = ok(
        repo.put(path, bytes_stream(data.to_vec())).await,
        &format!("put({path:?}, {} bytes)", data.len()),
    );
    assert_eq!(
        n,
        data.len() as u64,
        "put({path:?}) reported {n} bytes written"
    );
}

/// The whole content of the file at `path`.
pub async fn get_bytes(repo: &dyn ArtifactRepository, path: &str) -> Vec<u8> {
    let what = format!("get({path:?})");
    let download = ok(repo.get(path).await, &what);
    read_all(download, &what).await
}

/// The listing of `path`, checked to be sorted by path.
pub async fn list_of(repo: &dyn ArtifactRepository, path: Option<&str>) -> Vec<FileInfo> {
    let listing = ok(repo.list(path).await, &format!("list({path:?})"));
    let paths: Vec<&str> = listing.iter().map(|f| f.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "list({path:?}) is not sorted by path");
    listing
}

/// A file entry as `list` reports it.
pub fn file(path: &str, size: usize) -> FileInfo {
    FileInfo {
        path: path.to_string(),
        is_dir: false,
        file_size: Some(size as i64),
    }
}

/// A directory entry as `list` reports it.
pub fn dir(path: &str) -> FileInfo {
    FileInfo {
        path: path.to_string(),
        is_dir: true,
        file_size: None,
    }
}

/// Directory entries with their size dropped: repositories may or may not report a size for a
/// directory (MLflow's do not), so the cases compare directories by path and kind only.
fn normalised(listing: Vec<FileInfo>) -> Vec<FileInfo> {
    listing
        .into_iter()
        .map(|f| if f.is_dir { dir(&f.path) } else { f })
        .collect()
}

/// A deterministic byte sequence of `len` bytes from `seed`, cut into irregular chunks
/// (between 1 byte and ~1.3 MiB, some empty), generated as the stream is polled.
pub struct PatternStream {
    generator: Pattern,
    remaining: u64,
    step: u64,
}

impl PatternStream {
    /// `len` bytes of the pattern of `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        PatternStream {
            generator: Pattern::new(seed),
            remaining: len,
            step: 0,
        }
    }
}

impl Stream for PatternStream {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        self.step += 1;
        let size = match self.step % 7 {
            0 => 0,
            1 => 1,
            2 => 1_300_000,
            3 => 65_537,
            4 => 1 << 20,
            5 => 4093,
            _ => 777_777,
        };
        let size = size.min(self.remaining);
        self.remaining -= size;
        let mut chunk = vec![0; size as usize];
        self.generator.fill(&mut chunk);
        Poll::Ready(Some(Ok(chunk.into())))
    }
}

/// The byte generator behind [`PatternStream`]: xorshift64*, one word per 8 bytes, continuing
/// across calls so any chunking yields the same sequence.
pub struct Pattern {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Pattern {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Pattern {
            state: seed | 1,
            word: [0; 8],
            used: 8,
        }
    }

    /// Fills `buf` with the next `buf.len()` bytes of the sequence.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut i = 0;
        // Finish the current word, then whole words, then start the next.
        while i < buf.len() && self.used < 8 {
            buf[i] = self.word[self.used];
            self.used += 1;
            i += 1;
        }
        let whole = (buf.len() - i) / 8;
        for _ in 0..whole {
            buf[i..i + 8].copy_from_slice(&self.next_word());
            i += 8;
        }
        if i < buf.len() {
            self.word = self.next_word();
            self.used = 0;
            while i < buf.len() {
                buf[i] = self.word[self.used];
                self.used += 1;
                i += 1;
            }
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes()
    }
}

/// Reads `download` to its end, comparing every chunk against the pattern of `seed`; returns
/// the number of bytes read. Holds one chunk at a time.
pub async fn verify_pattern(mut download: Download, seed: u64, len: u64, what: &str) -> u64 {
    let mut expected = Pattern::new(seed);
    let mut want = Vec::new();
    let mut read = 0u64;
    while let Some(chunk) = next_chunk(&mut download.body).await {
        let chunk = ok(chunk, &format!("{what}: reading the body at byte {read}"));
        assert!(
            read + chunk.len() as u64 <= len,
            "{what}: more than the {len} bytes written"
        );
        want.resize(chunk.len(), 0);
        expected.fill(&mut want);
        if chunk[..] != want[..] {
            let at = chunk
                .iter()
                .zip(&want)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "{what}: byte {} differs from what was written",
                read + at as u64
            );
        }
        read += chunk.len() as u64;
    }
    assert_eq!(read, len, "{what}: the download ended early");
    if let Some(size) = download.size {
        assert_eq!(size, len, "{what}: announced size");
    }
    read
}

/// Runs two futures concurrently on the current task and returns both outputs.
pub async fn join2<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = Box::pin(a);
    let mut b = Box::pin(b);
    let mut ra = None;
    let mut rb = None;
    poll_fn(|cx| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    (ra.expect("joined"), rb.expect("joined"))
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/// A file written with `put` comes back byte for byte from `get`, and `put` reports the number
/// of bytes written; the download announces the right size, if it announces one.
pub async fn put_then_get_round_trips(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    let path = format!("{d}/hello.txt");
    put_bytes(repo, &path, b"hello, artifacts\n").await;
    assert_eq!(get_bytes(repo, &path).await, b"hello, artifacts\n");
    let binary: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let path = format!("{d}/data.bin");
    put_bytes(repo, &path, &binary).await;
    assert_eq!(get_bytes(repo, &path).await, binary, "binary content");
}

/// Chunks of any size — single bytes, empty chunks, many small ones — are written in order.
pub async fn put_accepts_any_chunking(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    let path = format!("{d}/chunked.bin");
    let mut chunks = Vec::new();
    let mut expected = Vec::new();
    for i in 0..2000u32 {
        let chunk: Vec<u8> = match i % 5 {
            0 => Vec::new(),
            1 => vec![i as u8],
            _ => i.to_le_bytes().repeat((i % 13) as usize),
        };
        expected.extend_from_slice(&chunk);
        chunks.push(Bytes::from(chunk));
    }
    let n = ok(repo.put(&path, chunks_stream(chunks)).await, "put(chunked)");
    assert_eq!(n, expected.len() as u64, "bytes written");
    assert_eq!(get_bytes(repo, &path).await, expected);
}

/// `put` creates missing parent directories; `list` shows the immediate children of a
/// directory only — subdirectories as `is_dir` entries without contents, files with their
/// size — sorted by path, each path relative to the repository root.
pub async fn nested_directories_list_immediate_children(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    put_bytes(repo, &format!("{d}/a/b/c.txt"), b"c").await;
    put_bytes(repo, &format!("{d}/a/d.txt"), b"dd").await;
    put_bytes(repo, &format!("{d}/a/e/f/g/h.txt"), b"hhh").await;
    put_bytes(repo, &format!("{d}/top.txt"), b"top!").await;

    assert_eq!(
        normalised(list_of(repo, Some(&d)).await),
        vec![dir(&format!("{d}/a")), file(&format!("{d}/top.txt"), 4)],
        "list of the case directory"
    );
    assert_eq!(
        normalised(list_of(repo, Some(&format!("{d}/a"))).await),
        vec![
            dir(&format!("{d}/a/b")),
            file(&format!("{d}/a/d.txt"), 2),
            dir(&format!("{d}/a/e")),
        ],
        "list of a directory with files and subdirectories"
    );
    assert_eq!(
        normalised(list_of(repo, Some(&format!("{d}/a/e/f"))).await),
        vec![dir(&format!("{d}/a/e/f/g"))],
        "list of a directory holding only a directory"
    );
    assert_eq!(
        get_bytes(repo, &format!("{d}/a/e/f/g/h.txt")).await,
        b"hhh",
        "a deeply nested file"
    );
    // The root listing holds the case directory as a directory.
    let root = normalised(list_of(repo, None).await);
    assert!(
        root.contains(&dir(&d)),
        "list(None) should hold {d} as a directory: {root:?}"
    );
}

/// Paths given in non-canonical spellings (`a//b`, `./a`, a trailing `/`) mean the canonical
/// path, and listings always report canonical paths.
pub async fn non_canonical_spellings_mean_the_canonical_path(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    put_bytes(repo, &format!("./{d}//x/./y.txt"), b"y").await;
    assert_eq!(get_bytes(repo, &format!("{d}/x/y.txt")).await, b"y");
    assert_eq!(
        normalised(list_of(repo, Some(&format!("{d}/x/"))).await),
        vec![file(&format!("{d}/x/y.txt"), 1)],
        "list with a trailing slash"
    );
    assert_eq!(
        normalised(list_of(repo, Some(&format!("./{d}//x"))).await),
        vec![file(&format!("{d}/x/y.txt"), 1)],
        "list of a non-canonical spelling"
    );
}

/// An empty file is stored, listed with size 0, and read back empty.
pub async fn empty_file_round_trips(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    let path = format!("{d}/empty.txt");
    let n = ok(repo.put(&path, chunks_stream(vec![])).await, "put(empty)");
    assert_eq!(n, 0, "an empty put writes 0 bytes");
    assert_eq!(
        get_bytes(repo, &path).await,
        b"",
        "an empty file reads back empty"
    );
    assert_eq!(
        normalised(list_of(repo, Some(&d)).await),
        vec![file(&path, 0)],
        "an empty file is listed with size 0"
    );
    let info = ok(repo.head(&path).await, "head(empty)");
    assert_eq!(info.file_size, Some(0), "head of an empty file");
}

/// Names with spaces, Unicode (accents, CJK, emoji), `%`, `+`, `=`, `&`, quotes and dots
/// round-trip through put, list and get exactly as given.
pub async fn unicode_and_spaces_in_names(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    let names = [
        "with space.txt",
        "ünïcödé façade.csv",
        "日本語のファイル.json",
        "emoji 🎉.bin",
        "100%.txt",
        "a%20b.txt",
        "plus+equals=amp&.txt",
        "quote'double\".txt",
        ".hidden",
        "many.dots.in.name.tar.gz",
    ];
    let sub = "sub dir ü";
    for name in names {
        put_bytes(repo, &format!("{d}/{sub}/{name}"), name.as_bytes()).await;
    }
    let listing = normalised(list_of(repo, Some(&format!("{d}/{sub}"))).await);
    let mut expected: Vec<FileInfo> = names
        .iter()
        .map(|n| file(&format!("{d}/{sub}/{n}"), n.len()))
        .collect();
    expected.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(listing, expected, "listing of unusual names");
    for name in names {
        assert_eq!(
            get_bytes(repo, &format!("{d}/{sub}/{name}")).await,
            name.as_bytes(),
            "content of {name:?}"
        );
    }
    assert_eq!(
        normalised(list_of(repo, Some(&d)).await),
        vec![dir(&format!("{d}/{sub}"))],
        "a directory with a space and Unicode in its name"
    );
}

/// A 64 MiB file, written as a stream of irregular chunks, reads back identical and is
/// listed with its size. Neither side holds the file in memory.
pub async fn large_file_streams_both_ways(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    let path = format!("{d}/large.bin");
    let seed = 0x5eed_f00d_ca1e;
    let n = ok(
        repo.put(&path, Box::pin(PatternStream::new(seed, LARGE_FILE_SIZE)))
            .await,
        "put(64 MiB)",
    );
    assert_eq!(n, LARGE_FILE_SIZE, "bytes written");
    let download = ok(repo.get(&path).await, "get(64 MiB)");
    verify_pattern(download, seed, LARGE_FILE_SIZE, "get(64 MiB)").await;
    assert_eq!(
        normalised(list_of(repo, Some(&d)).await),
        vec![file(&path, LARGE_FILE_SIZE as usize)],
        "listing of the large file"
    );
    let info = ok(repo.head(&path).await, "head(64 MiB)");
    assert_eq!(info.file_size, Some(LARGE_FILE_SIZE as i64), "head size");
}

/// Listing a path that does not exist gives `[]`, not an error — also below a missing
/// directory and below a file.
pub async fn list_missing_path_is_empty(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    assert_eq!(list_of(repo, Some(&d)).await, vec![], "missing directory");
    assert_eq!(
        list_of(repo, Some(&format!("{d}/deeper/still"))).await,
        vec![],
        "below a missing directory"
    );
    put_bytes(repo, &format!("{d}/f.txt"), b"f").await;
    assert_eq!(
        list_of(repo, Some(&format!("{d}/f.txt/below"))).await,
        vec![],
        "below a file"
    );
}

/// Listing a file (rather than a directory) gives `[]`, as MLflow's repositories do.
pub async fn list_a_file_is_empty(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    let path = format!("{d}/only.txt");
    put_bytes(repo, &path, b"only").await;
    assert_eq!(list_of(repo, Some(&path)).await, vec![], "list of a file");
}

/// `get` of a missing file is `NotFound`, and so is `head`.
pub async fn get_missing_is_not_found(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    let path = format!("{d}/missing.txt");
    expect_err(
        repo.get(&path).await.map(|_| ()),
        ErrorKind::NotFound,
        "get(missing)",
    );
    expect_err(repo.head(&path).await, ErrorKind::NotFound, "head(missing)");
    put_bytes(repo, &format!("{d}/present.txt"), b"p").await;
    expect_err(
        repo.get(&format!("{d}/present.txt/below"))
            .await
            .map(|_| ()),
        ErrorKind::NotFound,
        "get below a file",
    );
}

/// `get` of a directory is `NotFound` (a directory has no bytes), and so is `head`.
pub async fn get_directory_is_not_found(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    put_bytes(repo, &format!("{d}/sub/file.txt"), b"x").await;
    let sub = format!("{d}/sub");
    expect_err(
        repo.get(&sub).await.map(|_| ()),
        ErrorKind::NotFound,
        "get(directory)",
    );
    expect_err(
        repo.head(&sub).await,
        ErrorKind::NotFound,
        "head(directory)",
    );
}

/// `put` to an existing file replaces it whole, whether the new content is longer or shorter.
pub async fn overwrite_replaces_the_file(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    let path = format!("{d}/over.txt");
    put_bytes(repo, &path, b"first version").await;
    put_bytes(repo, &path, b"the second, longer version").await;
    assert_eq!(get_bytes(repo, &path).await, b"the second, longer version");
    put_bytes(repo, &path, b"3rd").await;
    assert_eq!(
        get_bytes(repo, &path).await,
        b"3rd",
        "a shorter overwrite leaves no tail"
    );
    assert_eq!(
        normalised(list_of(repo, Some(&d)).await),
        vec![file(&path, 3)],
        "one file after overwrites"
    );
}

/// A `put` whose body fails midway returns an error, leaves no file at a new path, and
/// leaves an existing file as it was; nothing else appears in the listing.
pub async fn failed_put_leaves_nothing_behind(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    let new_path = format!("{d}/never.txt");
    let e = repo
        .put(&new_path, failing_stream(vec![7u8; 100_000]))
        .await
        .expect_err("put with a failing body should fail");
    assert_eq!(
        e.kind,
        ErrorKind::Unavailable,
        "the body's error comes back: {e}"
    );
    expect_err(
        repo.get(&new_path).await.map(|_| ()),
        ErrorKind::NotFound,
        "a failed put leaves no file",
    );
    let kept = format!("{d}/kept.txt");
    put_bytes(repo, &kept, b"original").await;
    assert!(
        repo.put(&kept, failing_stream(vec![9u8; 100_000]))
            .await
            .is_err(),
        "put over an existing file with a failing body should fail"
    );
    assert_eq!(
        get_bytes(repo, &kept).await,
        b"original",
        "a failed overwrite keeps the old file"
    );
    assert_eq!(
        normalised(list_of(repo, Some(&d)).await),
        vec![file(&kept, 8)],
        "no temporary or partial file is listed"
    );
}

/// Two concurrent `put`s of different content to one path leave one of them, whole.
pub async fn concurrent_puts_leave_one_whole_file(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    let path = format!("{d}/race.bin");
    let a = vec![b'a'; 3 * 1024 * 1024 + 17];
    let b = vec![b'b'; 2 * 1024 * 1024 + 5];
    let (ra, rb) = join2(
        repo.put(
            &path,
            chunks_stream(a.chunks(64 * 1024).map(Bytes::copy_from_slice).collect()),
        ),
        repo.put(
            &path,
            chunks_stream(b.chunks(64 * 1024).map(Bytes::copy_from_slice).collect()),
        ),
    )
    .await;
    ok(ra, "first concurrent put");
    ok(rb, "second concurrent put");
    let got = get_bytes(repo, &path).await;
    assert!(
        got == a || got == b,
        "after concurrent puts the file is neither whole version ({} bytes)",
        got.len()
    );
}

/// `delete` of a file removes it; its siblings stay.
pub async fn delete_file(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    put_bytes(repo, &format!("{d}/gone.txt"), b"x").await;
    put_bytes(repo, &format!("{d}/stays.txt"), b"y").await;
    ok(
        repo.delete(Some(&format!("{d}/gone.txt"))).await,
        "delete(file)",
    );
    expect_err(
        repo.get(&format!("{d}/gone.txt")).await.map(|_| ()),
        ErrorKind::NotFound,
        "get after delete",
    );
    assert_eq!(
        normalised(list_of(repo, Some(&d)).await),
        vec![file(&format!("{d}/stays.txt"), 1)],
        "siblings stay"
    );
}

/// `delete` of a directory removes its whole tree, and nothing outside it (not even a
/// sibling whose name starts with the directory's name).
pub async fn delete_directory_is_recursive(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    for p in [
        "t/a.txt",
        "t/b/c.txt",
        "t/b/d/e.txt",
        "t2/keep.txt",
        "t.txt",
    ] {
        put_bytes(repo, &format!("{d}/{p}"), p.as_bytes()).await;
    }
    ok(
        repo.delete(Some(&format!("{d}/t"))).await,
        "delete(directory)",
    );
    assert_eq!(
        list_of(repo, Some(&format!("{d}/t"))).await,
        vec![],
        "the tree is gone"
    );
    expect_err(
        repo.get(&format!("{d}/t/b/d/e.txt")).await.map(|_| ()),
        ErrorKind::NotFound,
        "a deep file of the deleted tree",
    );
    assert_eq!(
        normalised(list_of(repo, Some(&d)).await),
        vec![file(&format!("{d}/t.txt"), 5), dir(&format!("{d}/t2"))],
        "siblings with a common name prefix stay"
    );
    assert_eq!(
        get_bytes(repo, &format!("{d}/t2/keep.txt")).await,
        b"t2/keep.txt"
    );
}

/// Deleting a path that does not exist succeeds.
pub async fn delete_missing_is_ok(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    ok(repo.delete(Some(&d)).await, "delete(missing directory)");
    ok(
        repo.delete(Some(&format!("{d}/a/b/c.txt"))).await,
        "delete(missing nested file)",
    );
}

/// `delete(None)` removes everything under the root; the repository stays usable. (This case
/// needs the fixture's fresh, unshared root.)
pub async fn delete_root_removes_everything(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    put_bytes(repo, &format!("{d}/x/y.txt"), b"y").await;
    put_bytes(repo, "top-level.txt", b"t").await;
    ok(repo.delete(None).await, "delete(None)");
    assert_eq!(
        list_of(repo, None).await,
        vec![],
        "the root is empty after delete(None)"
    );
    put_bytes(repo, "again.txt", b"again").await;
    assert_eq!(
        get_bytes(repo, "again.txt").await,
        b"again",
        "usable after delete(None)"
    );
}

/// `head` reports a file's canonical path and size without reading it.
pub async fn head_reports_size(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    let path = format!("{d}/h/file.bin");
    put_bytes(repo, &path, &[1u8; 12345]).await;
    let info = ok(repo.head(&format!("{d}//h/./file.bin")).await, "head(file)");
    assert_eq!(info, file(&path, 12345), "head(file)");
}

/// `put` needs a file name: the root (`""`, `.`, `/`-only spellings) is `InvalidArgument`.
pub async fn put_to_the_root_is_invalid(repo: &dyn ArtifactRepository) {
    for path in ["", ".", "./"] {
        expect_err(
            repo.put(path, bytes_stream(&b"x"[..])).await,
            ErrorKind::InvalidArgument,
            &format!("put({path:?})"),
        );
    }
}

/// Every spelling of a path that escapes the root ([`TRAVERSAL_ATTEMPTS`] at the root and in a
/// subdirectory, [`ABSOLUTE_ATTEMPTS`]) is refused with
/// `InvalidArgument` by put, get, head, list, delete and the multipart and presigned methods —
/// the repository canonicalises itself rather than trusting its caller — and nothing is
/// written anywhere.
pub async fn traversal_attempts_are_invalid_argument(repo: &dyn ArtifactRepository) {
    let d = unique_name("conf-art");
    put_bytes(repo, &format!("{d}/inside.txt"), b"inside").await;
    let caps = repo.capabilities();
    let at_root = TRAVERSAL_ATTEMPTS
        .iter()
        .chain(ABSOLUTE_ATTEMPTS)
        .map(|r| r.to_string());
    let in_subdir = TRAVERSAL_ATTEMPTS.iter().map(|r| format!("{d}/{r}"));
    {
        for path in at_root.chain(in_subdir) {
            let what = |op: &str| format!("{op}({path:?})");
            expect_err(
                repo.put(&path, bytes_stream(&b"escaped"[..])).await,
                ErrorKind::InvalidArgument,
                &what("put"),
            );
            expect_err(
                repo.get(&path).await.map(|_| ()),
                ErrorKind::InvalidArgument,
                &what("get"),
            );
            expect_err(
                repo.head(&path).await,
                ErrorKind::InvalidArgument,
                &what("head"),
            );
            expect_err(
                repo.list(Some(&path)).await,
                ErrorKind::InvalidArgument,
                &what("list"),
            );
            expect_err(
                repo.delete(Some(&path)).await,
                ErrorKind::InvalidArgument,
                &what("delete"),
            );
            if caps.multipart_upload {
                expect_err(
                    repo.create_multipart_upload(&path, 1).await,
                    ErrorKind::InvalidArgument,
                    &what("create_multipart_upload"),
                );
                expect_err(
                    repo.abort_multipart_upload(&path, "some-upload-id").await,
                    ErrorKind::InvalidArgument,
                    &what("abort_multipart_upload"),
                );
            }
            if caps.presigned_urls {
                expect_err(
                    repo.presigned_download_url(&path, 60).await,
                    ErrorKind::InvalidArgument,
                    &what("presigned_download_url"),
                );
                expect_err(
                    repo.presigned_upload_url(&path, 60).await,
                    ErrorKind::InvalidArgument,
                    &what("presigned_upload_url"),
                );
            }
        }
    }
    // The file inside is untouched and nothing was written next to it.
    assert_eq!(get_bytes(repo, &format!("{d}/inside.txt")).await, b"inside");
    assert_eq!(
        normalised(list_of(repo, Some(&d)).await),
        vec![file(&format!("{d}/inside.txt"), 6)],
        "nothing written by the refused calls"
    );
}

/// A repository that does not report `multipart_upload` answers every multipart method with
/// `Unsupported`; one that does not report `presigned_urls` answers the presigned methods so.
pub async fn unsupported_operations_say_so(repo: &dyn ArtifactRepository) {
    let caps = repo.capabilities();
    let d = unique_name("conf-art");
    let path = format!("{d}/f.bin");
    if !caps.multipart_upload {
        let u = ErrorKind::Unsupported;
        expect_err(
            repo.create_multipart_upload(&path, 2).await,
            u,
            "create_multipart_upload",
        );
        expect_err(
            repo.upload_part(&path, "id", 1, bytes_stream(&b"x"[..]))
                .await,
            u,
            "upload_part",
        );
        expect_err(
            repo.complete_multipart_upload(&path, "id", vec![]).await,
            u,
            "complete_multipart_upload",
        );
        expect_err(
            repo.abort_multipart_upload(&path, "id").await,
            u,
            "abort_multipart_upload",
        );
    }
    if !caps.presigned_urls {
        let u = ErrorKind::Unsupported;
        expect_err(
            repo.presigned_download_url(&path, 60).await,
            u,
            "presigned_download_url",
        );
        expect_err(
            repo.presigned_upload_url(&path, 60).await,
            u,
            "presigned_upload_url",
        );
    }
}

fn skip(case: &str, capability: &str) {
    super::support::skipped(case, &format!("the repository lacks `{capability}`"));
}

/// (`multipart_upload`) A multipart upload — parts uploaded through the repository in any
/// order, completed with their ETags listed in any order — yields the parts concatenated;
/// nothing is visible at the path before completion.
pub async fn multipart_upload_round_trips(repo: &dyn ArtifactRepository) {
    if !repo.capabilities().multipart_upload {
        return skip("multipart_upload_round_trips", "multipart_upload");
    }
    let d = unique_name("conf-art");
    let path = format!("{d}/multi part.bin");
    let upload = ok(
        repo.create_multipart_upload(&path, 3).await,
        "create_multipart_upload",
    );
    assert!(!upload.upload_id.is_empty(), "an upload id");
    let numbers: Vec<u32> = upload.credentials.iter().map(|c| c.part_number).collect();
    assert_eq!(
        numbers,
        vec![1, 2, 3],
        "one credential per part, numbered from 1"
    );
    let parts: [Vec<u8>; 3] = [
        vec![1u8; MIN_MULTIPART_PART],
        vec![2u8; MIN_MULTIPART_PART],
        b"the short last part".to_vec(),
    ];
    let mut completed = Vec::new();
    for number in [2u32, 3, 1] {
        let data = parts[number as usize - 1].clone();
        let chunks: Vec<Bytes> = data.chunks(300_000).map(Bytes::copy_from_slice).collect();
        let etag = ok(
            repo.upload_part(&path, &upload.upload_id, number, chunks_stream(chunks))
                .await,
            &format!("upload_part({number})"),
        );
        assert!(!etag.is_empty(), "part {number} has an ETag");
        completed.push(CompletedPart {
            part_number: number,
            etag,
        });
    }
    expect_err(
        repo.get(&path).await.map(|_| ()),
        ErrorKind::NotFound,
        "nothing at the path before completion",
    );
    ok(
        repo.complete_multipart_upload(&path, &upload.upload_id, completed)
            .await,
        "complete_multipart_upload",
    );
    let got = get_bytes(repo, &path).await;
    assert_eq!(
        got,
        parts.concat(),
        "the completed file is the parts in order"
    );
}

/// (`multipart_upload`) An aborted multipart upload leaves nothing at its path.
pub async fn multipart_abort_leaves_nothing(repo: &dyn ArtifactRepository) {
    if !repo.capabilities().multipart_upload {
        return skip("multipart_abort_leaves_nothing", "multipart_upload");
    }
    let d = unique_name("conf-art");
    let path = format!("{d}/aborted.bin");
    let upload = ok(
        repo.create_multipart_upload(&path, 1).await,
        "create_multipart_upload",
    );
    ok(
        repo.upload_part(&path, &upload.upload_id, 1, bytes_stream(&b"abc"[..]))
            .await,
        "upload_part",
    );
    ok(
        repo.abort_multipart_upload(&path, &upload.upload_id).await,
        "abort_multipart_upload",
    );
    expect_err(
        repo.get(&path).await.map(|_| ()),
        ErrorKind::NotFound,
        "nothing at the path after abort",
    );
    assert_eq!(
        list_of(repo, Some(&d)).await,
        vec![],
        "nothing listed after abort"
    );
}

/// (`multipart_upload`) Completing with a part list that is not exactly parts `1..=n`
/// (a gap, a duplicate, part 0) is `InvalidArgument`.
pub async fn multipart_complete_checks_the_parts(repo: &dyn ArtifactRepository) {
    if !repo.capabilities().multipart_upload {
        return skip("multipart_complete_checks_the_parts", "multipart_upload");
    }
    let d = unique_name("conf-art");
    let path = format!("{d}/checked.bin");
    let upload = ok(
        repo.create_multipart_upload(&path, 2).await,
        "create_multipart_upload",
    );
    let part = |n: u32| CompletedPart {
        part_number: n,
        etag: format!("\"etag-{n}\""),
    };
    for (parts, what) in [
        (vec![part(1), part(3)], "a gap"),
        (vec![part(1), part(1)], "a duplicate"),
        (vec![part(0), part(1)], "part 0"),
        (vec![], "no parts"),
    ] {
        expect_err(
            repo.complete_multipart_upload(&path, &upload.upload_id, parts)
                .await,
            ErrorKind::InvalidArgument,
            &format!("complete with {what}"),
        );
    }
    ok(
        repo.abort_multipart_upload(&path, &upload.upload_id).await,
        "abort_multipart_upload",
    );
}

/// (`presigned_urls`) Presigned URLs are absolute `http(s)` URLs that name the file.
pub async fn presigned_urls_are_urls(repo: &dyn ArtifactRepository) {
    if !repo.capabilities().presigned_urls {
        return skip("presigned_urls_are_urls", "presigned_urls");
    }
    let d = unique_name("conf-art");
    let path = format!("{d}/signed.txt");
    put_bytes(repo, &path, b"signed").await;
    for (what, url) in [
        (
            "download",
            ok(
                repo.presigned_download_url(&path, 300).await,
                "download url",
            )
            .url,
        ),
        (
            "upload",
            ok(repo.presigned_upload_url(&path, 300).await, "upload url").url,
        ),
    ] {
        assert!(
            url.starts_with("http://") || url.starts_with("https://"),
            "presigned {what} URL {url:?} is not http(s)"
        );
        assert!(
            url.contains("signed.txt"),
            "presigned {what} URL {url:?} names the file"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_are_unique_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for name in ARTIFACT_CASES {
            assert!(seen.insert(*name), "case {name} listed twice");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "case {name} is not snake_case"
            );
        }
        assert!(ARTIFACT_CASES.len() >= 20);
    }

    #[test]
    fn every_traversal_attempt_is_refused_by_the_canonicaliser() {
        for raw in TRAVERSAL_ATTEMPTS.iter().chain(ABSOLUTE_ATTEMPTS) {
            assert!(
                crate::paths::canonical_artifact_path(raw).is_err(),
                "{raw:?} accepted"
            );
        }
    }

    #[test]
    fn the_pattern_does_not_depend_on_chunking() {
        let mut whole = vec![0u8; 10_000];
        Pattern::new(42).fill(&mut whole);
        let mut pieces = Pattern::new(42);
        let mut joined = Vec::new();
        for size in [0usize, 1, 3, 8, 13, 500, 9475] {
            let mut buf = vec![0u8; size];
            pieces.fill(&mut buf);
            joined.extend_from_slice(&buf);
        }
        assert_eq!(joined, whole);
        assert_ne!(
            whole[..5000],
            whole[5000..],
            "the pattern does not repeat quickly"
        );
    }

    #[test]
    fn pattern_stream_yields_exactly_its_length() {
        let mut s: ByteStream = Box::pin(PatternStream::new(7, 5_000_000));
        let total = futures_executor::block_on(async {
            let mut total = 0;
            while let Some(c) = next_chunk(&mut s).await {
                total += c.unwrap().len();
            }
            total
        });
        assert_eq!(total, 5_000_000);
    }
}
