//! The ArtifactRepository conformance suite (`cairn_plugin_api::testkit::artifacts`) against
//! the local repository, each test on a fresh temporary directory; then what only a local
//! file system can do: symlinks out of the root, temporary files, the registration.

use cairn_artifacts_local::{LocalArtifactRepository, LocalSettings, TEMP_PREFIX};
use cairn_plugin_api::testkit::artifacts::{bytes_stream, get_bytes, list_of, put_bytes};
use cairn_plugin_api::{ArtifactRepository, ErrorKind};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use tempfile::TempDir;

/// A repository rooted at `<tmp>/root` (not yet created: the first upload creates it), with
/// the temporary directory removed right after the repository is dropped.
fn fresh_repo() -> (Arc<LocalArtifactRepository>, TempDir) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let root = dir.path().join("root");
    let repo = LocalArtifactRepository::open(root.to_str().unwrap(), LocalSettings::default())
        .expect("open the repository");
    (Arc::new(repo), dir)
}

/// The same through a `file://` URI with small chunks, so every transfer crosses many chunk
/// boundaries, and with fsync on.
fn fresh_repo_small_chunks() -> (Arc<LocalArtifactRepository>, TempDir) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let uri = format!("file://{}/root", dir.path().display());
    let settings = LocalSettings {
        fsync: true,
        chunk_size: 4096,
    };
    let repo = LocalArtifactRepository::open(&uri, settings).expect("open the repository");
    (Arc::new(repo), dir)
}

mod plain_path {
    cairn_plugin_api::artifact_repository_conformance!(
        super::fresh_repo(),
        skips = [
            multipart_upload_round_trips,
            multipart_abort_leaves_nothing,
            multipart_complete_checks_the_parts,
            presigned_urls_are_urls,
        ]
    );
}

mod file_uri_small_chunks {
    cairn_plugin_api::artifact_repository_conformance!(
        super::fresh_repo_small_chunks(),
        skips = [
            multipart_upload_round_trips,
            multipart_abort_leaves_nothing,
            multipart_complete_checks_the_parts,
            presigned_urls_are_urls,
        ]
    );
}

fn block_on<F: Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

/// A root containing `inside/ok.txt`, with a secret file next to the root (outside it) and
/// symlinks from the root to inside and outside targets.
struct Escape {
    _tmp: TempDir,
    repo: LocalArtifactRepository,
}

fn with_symlinks() -> Escape {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(root.join("inside")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("inside/ok.txt"), b"ok").unwrap();
    std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
    symlink(&outside, root.join("out-dir")).unwrap();
    symlink(outside.join("secret.txt"), root.join("out-file")).unwrap();
    symlink(root.join("inside"), root.join("in-dir")).unwrap();
    symlink("inside/ok.txt", root.join("in-file")).unwrap();
    symlink(tmp.path().join("nowhere"), root.join("dangling")).unwrap();
    let repo =
        LocalArtifactRepository::open(root.to_str().unwrap(), LocalSettings::default()).unwrap();
    Escape { _tmp: tmp, repo }
}

fn outside_of(e: &Escape) -> std::path::PathBuf {
    e.repo.root_dir().parent().unwrap().join("outside")
}

#[test]
fn symlinks_out_of_the_root_are_refused() {
    let e = with_symlinks();
    let repo = &e.repo;
    block_on(async {
        for path in ["out-file", "out-dir/secret.txt", "out-dir/missing.txt"] {
            let err = repo.get(path).await.err().expect(path);
            assert_eq!(err.kind, ErrorKind::InvalidArgument, "get({path}): {err}");
            let err = repo.head(path).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidArgument, "head({path}): {err}");
        }
        for path in ["out-dir", "out-dir/sub"] {
            let err = repo.list(Some(path)).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidArgument, "list({path}): {err}");
        }
        for path in ["out-dir/planted.txt", "out-dir/new/planted.txt"] {
            let err = repo.put(path, bytes_stream(&b"x"[..])).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidArgument, "put({path}): {err}");
        }
        let err = repo.delete(Some("out-dir/secret.txt")).await.unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::InvalidArgument,
            "delete through a link: {err}"
        );
    });
    let outside = outside_of(&e);
    assert!(
        !outside.join("planted.txt").exists(),
        "a file was written outside"
    );
    assert!(
        !outside.join("new").exists(),
        "a directory was created outside"
    );
    assert_eq!(
        std::fs::read(outside.join("secret.txt")).unwrap(),
        b"secret"
    );
}

#[test]
fn symlinks_inside_the_root_are_followed() {
    let e = with_symlinks();
    let repo = &e.repo;
    block_on(async {
        assert_eq!(get_bytes(repo, "in-file").await, b"ok");
        assert_eq!(get_bytes(repo, "in-dir/ok.txt").await, b"ok");
        put_bytes(repo, "in-dir/new.txt", b"new").await;
        assert_eq!(get_bytes(repo, "inside/new.txt").await, b"new");
        // The listing shows links that stay inside, by their own names, and leaves out the
        // ones that lead out of the root or nowhere.
        let listing = list_of(repo, None).await;
        let names: Vec<(&str, bool)> = listing
            .iter()
            .map(|f| (f.path.as_str(), f.is_dir))
            .collect();
        assert_eq!(
            names,
            vec![("in-dir", true), ("in-file", false), ("inside", true)]
        );
        let err = repo.get("dangling").await.err().unwrap();
        assert_eq!(err.kind, ErrorKind::NotFound, "a dangling link: {err}");
    });
}

#[test]
fn deleting_a_symlink_removes_the_link_not_its_target() {
    let e = with_symlinks();
    let root = e.repo.root_dir().to_path_buf();
    block_on(async {
        e.repo.delete(Some("out-dir")).await.unwrap();
        e.repo.delete(Some("out-file")).await.unwrap();
        e.repo.delete(Some("in-dir")).await.unwrap();
    });
    let outside = outside_of(&e);
    assert_eq!(
        std::fs::read(outside.join("secret.txt")).unwrap(),
        b"secret"
    );
    assert!(
        root.join("inside/ok.txt").exists(),
        "the link's target stays"
    );
    assert!(std::fs::symlink_metadata(root.join("out-dir")).is_err());
    assert!(std::fs::symlink_metadata(root.join("in-dir")).is_err());
    // delete(None) empties the root without following links out of it.
    symlink(&outside, root.join("out-again")).unwrap();
    block_on(e.repo.delete(None)).unwrap();
    assert_eq!(
        std::fs::read(outside.join("secret.txt")).unwrap(),
        b"secret"
    );
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
}

#[test]
fn a_root_under_a_symlink_works() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    symlink(&real, &link).unwrap();
    let repo =
        LocalArtifactRepository::open(link.join("root").to_str().unwrap(), Default::default())
            .unwrap();
    block_on(async {
        put_bytes(&repo, "a/b.txt", b"b").await;
        assert_eq!(get_bytes(&repo, "a/b.txt").await, b"b");
    });
    assert_eq!(std::fs::read(real.join("root/a/b.txt")).unwrap(), b"b");
}

#[test]
fn uploads_leave_no_temporary_files() {
    let (repo, tmp) = fresh_repo();
    block_on(async {
        put_bytes(&*repo, "d/f.txt", b"content").await;
        let failing = cairn_plugin_api::testkit::artifacts::failing_stream(vec![1u8; 10]);
        assert!(repo.put("d/g.txt", failing).await.is_err());
    });
    // Removal after a failure runs on the I/O threads; wait for it (bounded).
    let dir = tmp.path().join("root/d");
    let mut names = Vec::new();
    for _ in 0..200 {
        names = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        if names.len() == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        names,
        vec!["f.txt"],
        "temporary files ({TEMP_PREFIX}*) left behind"
    );
}

#[test]
fn a_file_in_the_way_of_a_directory_is_invalid() {
    let (repo, _tmp) = fresh_repo();
    block_on(async {
        put_bytes(&*repo, "f", b"file").await;
        let err = repo
            .put("f/g.txt", bytes_stream(&b"x"[..]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err}");
        put_bytes(&*repo, "d/x.txt", b"x").await;
        let err = repo.put("d", bytes_stream(&b"x"[..])).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err}");
    });
}

#[test]
fn a_missing_root_lists_empty_and_is_created_by_the_first_upload() {
    let (repo, tmp) = fresh_repo();
    let root = tmp.path().join("root");
    block_on(async {
        assert_eq!(list_of(&*repo, None).await, vec![]);
        assert_eq!(repo.get("x").await.err().unwrap().kind, ErrorKind::NotFound);
        repo.delete(None).await.unwrap();
        assert!(!root.exists(), "reads and deletes do not create the root");
        put_bytes(&*repo, "x", b"x").await;
    });
    assert!(root.is_dir());
}

#[test]
fn fifos_and_odd_names_on_disk_are_not_artifacts() {
    let (repo, tmp) = fresh_repo();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(root.join("pipe"))
        .status()
        .expect("run mkfifo");
    assert!(status.success());
    std::fs::write(root.join("a;b"), b"x").unwrap();
    std::fs::write(root.join("..."), b"x").unwrap();
    std::fs::write(root.join("fine.txt"), b"x").unwrap();
    block_on(async {
        let listing = list_of(&*repo, None).await;
        let names: Vec<&str> = listing.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, vec!["fine.txt"]);
        // Opening a FIFO would block: it is refused before that.
        assert_eq!(
            repo.get("pipe").await.err().unwrap().kind,
            ErrorKind::NotFound
        );
    });
}

#[test]
fn the_plugin_is_registered_for_file() {
    let factory = cairn_plugin_api::factory::builtin_factories()
        .find(|f| f.name == cairn_artifacts_local::SCHEME)
        .expect("cairn-artifacts-local registers the `file` scheme");
    assert_eq!(factory.plugin, "cairn-artifacts-local");
    let cairn_plugin_api::Build::ArtifactRepository(build) = factory.build else {
        panic!("registered as {:?}", factory.kind());
    };
    let tmp = tempfile::tempdir().unwrap();
    let uri = format!("file://{}", tmp.path().display());
    let repo = build(&cairn_plugin_api::BuildContext::for_uri(&uri)).unwrap();
    assert_eq!(repo.root_uri(), uri);
    let mut ctx = cairn_plugin_api::BuildContext::for_uri(&uri);
    ctx.settings = serde_json::json!({"no_such_key": 1});
    assert!(build(&ctx).is_err(), "unknown settings are refused");
    assert_root_is(tmp.path(), repo.as_ref());
}

fn assert_root_is(dir: &Path, repo: &dyn ArtifactRepository) {
    block_on(put_bytes(repo, "probe.txt", b"p"));
    assert_eq!(std::fs::read(dir.join("probe.txt")).unwrap(), b"p");
}
