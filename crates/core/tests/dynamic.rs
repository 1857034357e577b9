//! Dynamic plugins end to end: real shared libraries loaded through `cairn_core::loader`.
//!
//! The libraries are this package's dev-dependencies (`examples/plugin-jsonl`,
//! `examples/plugin-sqlite-dylib`, `tests/plugins/*`), so cargo builds their `cdylib`s next to
//! this test binary whenever it builds the test. A missing library fails the test; nothing is
//! skipped.

use cairn_core::loader;
use cairn_core::registry::{Origin, Registry};
use cairn_plugin_api::artifacts::ByteStream;
use cairn_plugin_api::context::RunContext;
use cairn_plugin_api::{BuildContext, Error, ErrorKind, TrackingStore};
use futures_util::StreamExt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};
use tempfile::TempDir;

/// The shared library of package `name` (with `-` as `_`), built next to this test binary.
fn library(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().expect("the test binary's directory");
    let file = dir.join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(
        file.is_file(),
        "plugin library {} was not built; cargo builds it with cairn-core's tests because it \
         is a dev-dependency (run `cargo test -p cairn-core`)",
        file.display()
    );
    file
}

fn jsonl_library() -> PathBuf {
    library("cairn_example_jsonl")
}

fn sqlite_library() -> PathBuf {
    library("cairn_example_sqlite_dylib")
}

fn test_library() -> PathBuf {
    library("cairn_test_plugins")
}

/// A registry of the plugins of the libraries at `paths` only (no built-ins).
fn registry_of(paths: &[PathBuf]) -> cairn_core::Result<Registry> {
    let mut entries = Vec::new();
    for path in paths {
        entries.extend(loader::load_entries(path, "the test")?);
    }
    Registry::new(entries)
}

/// One tokio runtime for every test: the loader's wrappers run library calls on its blocking
/// pool, as they do in `cairn server`.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

fn on_tokio(fut: Pin<Box<dyn Future<Output = ()>>>) {
    runtime().block_on(fut)
}

fn block_on<F: Future>(fut: F) -> F::Output {
    runtime().block_on(fut)
}

// ----- the tracking conformance suite through the ABI --------------------------------------------

/// The example jsonl store, loaded from its shared library, in a fresh directory.
fn loaded_jsonl_store() -> (Arc<dyn TrackingStore>, TempDir) {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| registry_of(&[jsonl_library()]).unwrap());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let uri = format!("jsonl://{}", dir.path().display());
    let store = registry
        .tracking_store(&uri, BuildContext::default())
        .unwrap_or_else(|e| panic!("build {uri}: {e}"));
    (store, dir)
}

/// The SQLite store built as a plugin library, loaded through the same ABI, on a fresh file.
fn loaded_sqlite_store() -> (Arc<dyn TrackingStore>, TempDir) {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| registry_of(&[sqlite_library()]).unwrap());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let uri = format!("sqlite:///{}", dir.path().join("cairn.db").display());
    let ctx = BuildContext {
        default_artifact_root: Some(dir.path().join("artifacts").display().to_string()),
        ..BuildContext::default()
    };
    let store = registry
        .tracking_store(&uri, ctx)
        .unwrap_or_else(|e| panic!("build {uri}: {e}"));
    (store, dir)
}

mod jsonl_through_the_abi {
    cairn_plugin_api::tracking_store_conformance!(
        super::loaded_jsonl_store(),
        skips = [
            log_inputs_model_inputs,
            logged_model_create_and_get,
            logged_model_create_in_deleted_or_unknown_experiment_fails,
            logged_model_get_unknown_is_not_found,
            logged_model_finalize_ready,
            logged_model_tags_set_overwrite_delete,
            logged_model_params,
            logged_model_metrics_come_from_runs,
            logged_model_search_filter_order_pages,
            logged_model_delete,
            logged_model_log_outputs_links_run,
        ],
        runner = super::on_tokio
    );
}

mod sqlite_through_the_abi {
    cairn_plugin_api::tracking_store_conformance!(
        super::loaded_sqlite_store(),
        skips = [],
        runner = super::on_tokio
    );
}

// ----- load failures ---------------------------------------------------------------------------

fn load_error(path: &Path) -> String {
    match loader::load_entries(path, "the test") {
        Ok(entries) => panic!("{} loaded: {entries:?}", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_missing_file_is_named() {
    let path = Path::new("/nonexistent/libnothing.so");
    let err = load_error(path);
    assert_eq!(
        err,
        "cannot load plugin library /nonexistent/libnothing.so (named by the test): the file \
         does not exist"
    );
}

#[test]
fn a_junk_file_is_not_a_shared_library() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("libjunk.so");
    std::fs::write(&junk, "definitely not ELF").unwrap();
    let err = load_error(&junk);
    assert!(err.contains(&junk.display().to_string()), "{err}");
    assert!(err.contains("is not a loadable shared library"), "{err}");
}

#[test]
fn a_shared_library_that_is_not_a_plugin_is_refused() {
    // libc is a shared library without a plugin root module.
    let libc = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/usr/lib/aarch64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib64/libc.so.6",
    ]
    .iter()
    .map(Path::new)
    .find(|p| p.is_file())
    .expect("libc.so.6 on this machine");
    let err = load_error(libc);
    assert!(err.contains("it is not a Cairn plugin"), "{err}");
    assert!(err.contains("export_plugins!"), "{err}");
}

#[test]
fn another_abi_version_is_one_line_naming_both_versions() {
    let path = library("cairn_test_plugin_abi_mismatch");
    let err = load_error(&path);
    assert!(!err.contains('\n'), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("ABI version mismatch"), "{err}");
    assert!(err.contains("version 999"), "{err}");
    assert!(
        err.contains(&format!("version {}", cairn_plugin_api::ffi::ABI_VERSION)),
        "{err}"
    );
}

#[test]
fn a_library_with_another_wire_form_is_refused_naming_both_schema_hashes() {
    let path = library("cairn_test_plugin_schema_mismatch");
    let err = load_error(&path);
    assert!(!err.contains('\n'), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("wire-form mismatch"), "{err}");
    assert!(err.contains("00c0ffee00c0ffee"), "{err}");
    assert!(err.contains(cairn_plugin_api::ffi::schema_hash()), "{err}");
}

#[test]
#[cfg(feature = "store-sqlite")]
fn a_library_claiming_the_builtin_sqlite_scheme_names_both_owners() {
    let path = sqlite_library();
    let builtins = cairn_plugin_api::factory::builtin_factories()
        .map(|f| cairn_core::registry::PluginEntry::from_factory(f, Origin::BuiltIn));
    let dynamic = loader::load_entries(&path, "the test").unwrap();
    let err = Registry::new(builtins.chain(dynamic))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "two plugins claim the tracking-store scheme 'sqlite': cairn-store-sqlite {v} \
             (built-in) and cairn-example-sqlite-dylib {v} ({})",
            path.display(),
            v = env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn two_libraries_claiming_one_scheme_name_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("libjsonl_copy.so");
    std::fs::copy(jsonl_library(), &copy).unwrap();
    let err = registry_of(&[jsonl_library(), copy.clone()])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("two plugins claim the tracking-store scheme 'jsonl'"),
        "{err}"
    );
    assert!(
        err.contains(&jsonl_library().display().to_string()),
        "{err}"
    );
    assert!(err.contains(&copy.display().to_string()), "{err}");
}

// ----- panics and errors cross the boundary as errors --------------------------------------------

#[test]
fn a_panicking_method_is_an_internal_error_and_the_host_carries_on() {
    let registry = registry_of(&[test_library()]).unwrap();
    let provider = registry
        .run_context_provider("panicky", BuildContext::default())
        .unwrap();
    for _ in 0..2 {
        let err = provider.tags(&RunContext::default()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal, "{err}");
        assert!(
            err.message
                .contains("the plugin panicked: tags panicked on purpose"),
            "{err}"
        );
    }

    let repo = registry
        .artifact_repository("memtest://bucket", BuildContext::default())
        .unwrap();
    let err = block_on(repo.list(Some("panic"))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal, "{err}");
    assert!(err.message.contains("list panicked on purpose"), "{err}");
    // What the server logs names the plugin, the method and the library's file.
    let logged = err.to_string();
    assert!(logged.contains("[plugin=memtest]"), "{logged}");
    assert!(logged.contains("[method=list]"), "{logged}");
    assert!(
        logged.contains(&format!("[library={}]", test_library().display())),
        "{logged}"
    );
    // The same instance still answers.
    assert_eq!(block_on(repo.list(None)).unwrap(), vec![]);
}

/// Set in the child process of `a_plugin_panic_prints_one_line_unless_rust_backtrace_is_set`.
const PANIC_CHILD_VAR: &str = "CAIRN_TEST_PANIC_CHILD";

/// Runs this test binary's `a_plugin_panic_prints_one_line_unless_rust_backtrace_is_set` as a
/// child with `backtrace` as `RUST_BACKTRACE` (unset if `None`); returns its stderr.
fn panicking_child(backtrace: Option<&str>) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "a_plugin_panic_prints_one_line_unless_rust_backtrace_is_set",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(PANIC_CHILD_VAR, "1")
    .env_remove("RUST_BACKTRACE")
    .env_remove("RUST_LIB_BACKTRACE");
    if let Some(value) = backtrace {
        cmd.env("RUST_BACKTRACE", value);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_plugin_panic_prints_one_line_unless_rust_backtrace_is_set() {
    if std::env::var_os(PANIC_CHILD_VAR).is_some() {
        // The child: one panicking call through the ABI.
        let registry = registry_of(&[test_library()]).unwrap();
        let repo = registry
            .artifact_repository("memtest://bucket", BuildContext::default())
            .unwrap();
        block_on(repo.list(Some("panic"))).unwrap_err();
        return;
    }
    let quiet = panicking_child(None);
    let lines: Vec<&str> = quiet.lines().filter(|l| l.contains("panic")).collect();
    assert_eq!(lines.len(), 1, "{quiet}");
    assert!(
        lines[0]
            .starts_with("cairn plugin 'memtest' panicked in list: list panicked on purpose at "),
        "{quiet}"
    );
    assert!(!quiet.contains("stack backtrace"), "{quiet}");
    assert!(!quiet.contains("RUST_BACKTRACE"), "{quiet}");

    let loud = panicking_child(Some("1"));
    assert!(
        loud.contains("cairn plugin 'memtest' panicked in list"),
        "{loud}"
    );
    assert!(loud.contains("stack backtrace"), "{loud}");
}

#[test]
fn a_panicking_factory_is_a_start_up_error_naming_the_plugin() {
    let registry = registry_of(&[test_library()]).unwrap();
    let err = registry
        .tracking_store("panics-on-build://x", BuildContext::default())
        .err()
        .expect("the factory panics");
    let text = err.to_string();
    assert!(
        text.starts_with("tracking-store plugin 'panics-on-build' (cairn-test-plugins"),
        "{text}"
    );
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        cause.contains("the plugin panicked: the factory panicked on purpose"),
        "{cause}"
    );
}

// ----- streaming artifacts ---------------------------------------------------------------------

fn body(chunks: Vec<cairn_plugin_api::Result<bytes::Bytes>>) -> ByteStream {
    Box::pin(futures_util::stream::iter(chunks))
}

#[test]
fn artifact_bytes_stream_through_the_abi_in_chunks() {
    let registry = registry_of(&[test_library()]).unwrap();
    let repo = registry
        .artifact_repository("memtest://bucket", BuildContext::default())
        .unwrap();
    assert_eq!(repo.root_uri(), "memtest://bucket");

    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let chunks = data
        .chunks(1000)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    assert_eq!(block_on(repo.put("a/b.bin", body(chunks))).unwrap(), 10_000);

    let download = block_on(repo.get("a/b.bin")).unwrap();
    assert_eq!(download.size, Some(10_000));
    let pulled: Vec<bytes::Bytes> = block_on(download.body.collect::<Vec<_>>())
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    // The plugin streams 3-byte chunks; they arrive one by one, not as one buffer.
    assert_eq!(pulled.len(), 10_000usize.div_ceil(3));
    assert_eq!(pulled.concat(), data);

    let err = block_on(repo.get("missing")).err().unwrap();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
}

#[test]
fn a_library_repositorys_own_head_is_called_through_the_abi() {
    let registry = registry_of(&[test_library()]).unwrap();
    let repo = registry
        .artifact_repository("memtest://bucket", BuildContext::default())
        .unwrap();
    let five = vec![Ok(bytes::Bytes::from_static(b"12345"))];
    assert_eq!(block_on(repo.put("unreadable/x", body(five))).unwrap(), 5);
    // The trait's default `head` would read the file with `get`, which this plugin refuses.
    let err = block_on(repo.get("unreadable/x")).err().unwrap();
    assert_eq!(err.kind, ErrorKind::PermissionDenied, "{err}");
    let info = block_on(repo.head("unreadable/x")).unwrap();
    assert_eq!(info.file_size, Some(5));
    assert!(!info.is_dir);
    let err = block_on(repo.head("missing")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
}

#[test]
fn a_failed_upload_reports_the_plugins_or_the_hosts_error() {
    let registry = registry_of(&[test_library()]).unwrap();
    let repo = registry
        .artifact_repository("memtest://bucket", BuildContext::default())
        .unwrap();
    let three = || {
        (0..3)
            .map(|_| Ok(bytes::Bytes::from_static(b"chunk")))
            .collect()
    };
    // The plugin stops reading after the first chunk: its own error comes back.
    let err = block_on(repo.put("stop-early", body(three()))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err}");
    assert!(
        err.message.contains("refused after the first chunk"),
        "{err}"
    );

    // The host's stream fails: the upload is aborted with the host's error, nothing stored.
    let mut failing = three();
    failing.push(Err(Error::new(ErrorKind::Unavailable, "client went away")));
    let err = block_on(repo.put("broken", body(failing))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(block_on(repo.list(None)).unwrap().is_empty());
}

#[test]
fn the_vendor_run_context_provider_works_through_the_abi() {
    let registry = registry_of(&[jsonl_library()]).unwrap();
    let ctx = BuildContext {
        settings: serde_json::json!({"host": "build-7", "tags": {"vendor.team": "vision"}}),
        ..BuildContext::default()
    };
    let provider = registry.run_context_provider("vendor", ctx).unwrap();
    let run = RunContext {
        user: Some("ada".into()),
        ..RunContext::default()
    };
    assert!(provider.in_context(&run));
    let tags = provider.tags(&run).unwrap();
    assert_eq!(tags["vendor.host"], "build-7");
    assert_eq!(tags["vendor.user"], "ada");
    assert_eq!(tags["vendor.team"], "vision");

    // Its settings are its own to check: an unknown key fails the build.
    let bad = BuildContext {
        settings: serde_json::json!({"hots": "x"}),
        ..BuildContext::default()
    };
    let err = registry.run_context_provider("vendor", bad).err().unwrap();
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("unknown field `hots`"), "{cause}");
}

// ----- configuration and the CLI ---------------------------------------------------------------

/// Runs `cairn args...` in `dir` with `env` added and every other `CAIRN_*` variable removed.
fn cairn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.current_dir(dir).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("CAIRN_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run cairn")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn plugins_list_shows_libraries_from_the_config_file_and_the_path_variable() {
    let dir = tempfile::tempdir().unwrap();
    // A relative path in cairn.toml is relative to the file's directory.
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    let jsonl = dir.path().join("plugins/libcairn_example_jsonl.so");
    std::fs::copy(jsonl_library(), &jsonl).unwrap();
    std::fs::write(
        dir.path().join("cairn.toml"),
        "[[plugins]]\npath = \"plugins/libcairn_example_jsonl.so\"\n",
    )
    .unwrap();
    let tests = test_library();
    let out = cairn(
        dir.path(),
        &["plugins", "list"],
        &[("CAIRN_PLUGINS_PATH", tests.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", text(&out));
    let table = text(&out);
    let row = |kind: &str, name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(kind) && l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no {kind} {name} row in:\n{table}"))
            .to_owned()
    };
    let store = row("tracking-store", "jsonl");
    assert!(store.contains("cairn-example-jsonl"), "{store}");
    assert!(store.contains(env!("CARGO_PKG_VERSION")), "{store}");
    assert!(store.ends_with(&jsonl.display().to_string()), "{store}");
    assert!(
        row("run-context-provider", "vendor").ends_with(&jsonl.display().to_string()),
        "{table}"
    );
    assert!(
        row("artifact-repository", "memtest").ends_with(&tests.display().to_string()),
        "{table}"
    );
    #[cfg(feature = "store-sqlite")]
    assert!(
        row("tracking-store", "sqlite").ends_with("built-in"),
        "{table}"
    );
}

#[test]
fn a_configured_library_that_fails_to_load_stops_start_up_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cairn.toml"),
        "[[plugins]]\npath = \"missing/libnope.so\"\n",
    )
    .unwrap();
    for args in [&["plugins", "list"][..], &["check"][..]] {
        let out = cairn(dir.path(), args, &[]);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        let msg = text(&out);
        assert!(
            msg.contains(&format!(
                "cannot load plugin library {} (named by [[plugins]] in {}): the file does not \
                 exist",
                dir.path().join("missing/libnope.so").display(),
                dir.path().join("cairn.toml").display()
            )),
            "{args:?}: {msg}"
        );
    }
    let empty = tempfile::tempdir().unwrap();
    let out = cairn(
        empty.path(),
        &["plugins", "list"],
        &[("CAIRN_PLUGINS_PATH", "/nonexistent/libx.so")],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("(named by CAIRN_PLUGINS_PATH): the file does not exist"),
        "{msg}"
    );
}

#[test]
fn plugins_check_describes_a_library_and_refuses_what_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = jsonl_library();
    let out = cairn(
        dir.path(),
        &["plugins", "check", jsonl.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    assert!(report.contains("is a Cairn plugin library"), "{report}");
    assert!(report.contains("cairn-example-jsonl"), "{report}");
    assert!(report.contains("tracking-store scheme 'jsonl'"), "{report}");
    assert!(
        report.contains("run-context-provider name 'vendor'"),
        "{report}"
    );
    // Nothing was started: no store directory, no database.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    std::fs::write(dir.path().join("junk.so"), "junk").unwrap();
    let out = cairn(dir.path(), &["plugins", "check", "junk.so"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.starts_with("error: cannot load plugin library"),
        "{msg}"
    );
    assert!(msg.contains("junk.so"), "{msg}");
    assert!(msg.contains("not a loadable shared library"), "{msg}");
}

#[test]
fn check_builds_a_store_from_a_configured_library() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::write(
        dir.path().join("cairn.toml"),
        format!(
            "[[plugins]]\npath = \"{}\"\n[store]\nbackend_store_uri = \"jsonl://{}\"\n",
            jsonl_library().display(),
            store.display()
        ),
    )
    .unwrap();
    let out = cairn(dir.path(), &["check"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains(&format!(
            "ok: tracking-store 'jsonl' (cairn-example-jsonl {}, {})",
            env!("CARGO_PKG_VERSION"),
            jsonl_library().display()
        )),
        "{report}"
    );
    assert!(store.join("events.jsonl").is_file(), "{report}");
}

// ----- cairn plugins check --conformance ----------------------------------------------------------

fn mem_library() -> PathBuf {
    library("cairn_example_artifacts_mem")
}

/// The case lines (`  <case> ... <outcome>`) of a conformance report.
fn case_lines(report: &str) -> Vec<(&str, &str)> {
    report
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_once(" ... "))
        .collect()
}

/// `cairn plugins check --conformance <lib> <extra...>` in a fresh directory.
fn conformance(lib: &Path, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["plugins", "check", "--conformance", lib.to_str().unwrap()];
    args.extend_from_slice(extra);
    cairn(dir.path(), &args, &[])
}

#[test]
fn conformance_of_the_artifact_example_library_runs_every_case_through_the_abi() {
    let out = conformance(&mem_library(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    let lines = case_lines(&report);
    let names: Vec<&str> = lines.iter().map(|(case, _)| *case).collect();
    assert_eq!(
        names,
        cairn_plugin_api::testkit::artifacts::ARTIFACT_CASES,
        "{report}"
    );
    let skipped: Vec<&str> = lines
        .iter()
        .filter(|(_, outcome)| outcome.starts_with("skipped: the repository lacks"))
        .map(|(case, _)| *case)
        .collect();
    assert_eq!(
        skipped,
        [
            "multipart_upload_round_trips",
            "multipart_abort_leaves_nothing",
            "multipart_complete_checks_the_parts",
            "presigned_urls_are_urls"
        ],
        "{report}"
    );
    assert!(
        report.contains("conformance: 26 cases: 22 passed, 0 failed, 4 skipped"),
        "{report}"
    );
}

#[test]
fn conformance_of_the_jsonl_library_passes_with_its_missing_capabilities_skipped() {
    let out = conformance(&jsonl_library(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    let lines = case_lines(&report);
    assert_eq!(
        lines.len(),
        cairn_plugin_api::testkit::tracking::TRACKING_CASES.len(),
        "{report}"
    );
    assert!(
        lines
            .iter()
            .all(|(_, o)| *o == "passed" || o.starts_with("skipped: ")),
        "{report}"
    );
    assert!(report.contains(" 0 failed, "), "{report}");
}

#[test]
fn conformance_failures_are_listed_per_case_and_exit_nonzero() {
    let out = conformance(
        &test_library(),
        &["--case", "put_then_get", "--case", "list_a_file"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    let lines = case_lines(&report);
    // The tracking store whose factory panics fails its build, with the panic message; the
    // run goes on to the library's artifact repository.
    assert_eq!(
        lines.len(),
        3,
        "the build line and the two selected cases:\n{report}"
    );
    let build = lines
        .iter()
        .find(|(case, _)| *case == "build")
        .unwrap_or_else(|| panic!("no build line in:\n{report}"));
    assert!(build.1.starts_with("FAILED: "), "{report}");
    assert!(
        build.1.contains("the factory panicked on purpose"),
        "{report}"
    );
    assert!(
        lines
            .iter()
            .any(|(case, o)| *case == "put_then_get_round_trips" && *o == "passed"),
        "{report}"
    );
    assert!(
        lines
            .iter()
            .any(|(case, o)| *case == "list_a_file_is_empty" && o.starts_with("FAILED: ")),
        "{report}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("conformance case(s) failed against"),
        "{stderr}"
    );
}

#[test]
fn conformance_runs_the_backend_suite_through_the_abi() {
    // Every backend case of the test library's `shtest` backend: its submitted runs, states,
    // log streams (followed, from an offset, non-UTF-8) and cancellations cross the ABI.
    let cases = cairn_plugin_api::testkit::backend::BACKEND_CASES;
    let mut extra = Vec::new();
    for case in cases {
        extra.extend(["--case", case]);
    }
    let out = conformance(&test_library(), &extra);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("conformance: project-backend 'shtest' at "),
        "{report}"
    );
    let lines = case_lines(&report);
    let backend: Vec<(&str, &str)> = lines
        .iter()
        .copied()
        .filter(|(case, _)| *case != "build")
        .collect();
    let names: Vec<&str> = backend.iter().map(|(case, _)| *case).collect();
    assert_eq!(names, cases, "{report}");
    assert!(
        backend.iter().all(|(_, outcome)| *outcome == "passed"),
        "{report}"
    );
    // The library's tracking store panics in its factory: the one failure, and why it exits 1.
    assert_eq!(lines.len(), cases.len() + 1, "{report}");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn a_conformance_uri_no_plugin_of_the_library_serves_is_a_config_error() {
    let out = conformance(&mem_library(), &["--uri", "s3://bucket/x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--uri s3://bucket/x: no plugin of"),
        "{}",
        text(&out)
    );
}

#[test]
fn plugins_check_warns_when_a_library_claims_a_built_in_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = sqlite_library();
    let out = cairn(
        dir.path(),
        &["plugins", "check", sqlite.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    let warning = report
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("no warning in:\n{report}"));
    assert!(
        warning
            .contains("tracking-store 'sqlite' is also the built-in plugin of cairn-store-sqlite"),
        "{warning}"
    );
    assert!(warning.contains("`store-sqlite`"), "{warning}");
    // A library with schemes of its own gets no warning.
    let jsonl = jsonl_library();
    let out = cairn(
        dir.path(),
        &["plugins", "check", jsonl.to_str().unwrap()],
        &[],
    );
    assert!(!text(&out).contains("warning:"), "{}", text(&out));
}

// ----- model flavors through the ABI -----------------------------------------------------------

/// The `echo` flavor of the test library: the parsed `MLmodel` reaches `load`, and tensors of
/// every kind (binary on the wire), tables with missing values, params and errors cross back.
#[test]
fn model_flavors_load_and_predict_through_the_abi() {
    use cairn_plugin_api::flavor::{
        Column, MlModel, ModelCapabilities, ModelData, Params, Table, Tensor, TensorData,
    };
    let registry = registry_of(&[test_library()]).unwrap();
    let flavor = registry
        .model_flavor("echo", BuildContext::default())
        .unwrap();
    let mlmodel = MlModel::from_yaml(
        "flavors:\n  echo: {}\nmodel_id: m-0123\nsignature:\n  inputs: '[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", \"shape\": [-1, 2]}, \"name\": \"x\"}]'\n  outputs: null\n  params: '[{\"name\": \"k\", \"type\": \"long\", \"default\": 3, \"shape\": null}]'\n",
    )
    .unwrap();
    let model = block_on(flavor.load(Path::new("/nonexistent"), &mlmodel)).unwrap();
    assert_eq!(model.signature(), mlmodel.signature.clone().unwrap());
    assert_eq!(
        model.capabilities(),
        ModelCapabilities::new(true, true, false)
    );

    let t = |shape: Vec<usize>, d| Tensor::new(shape, d).unwrap();
    let input = ModelData::Tensors(
        [
            (
                "x".to_string(),
                t(
                    vec![2, 2],
                    TensorData::Float32(vec![1.0, 2.0, f32::MAX, -0.0]),
                ),
            ),
            (
                "s".to_string(),
                t(vec![2], TensorData::Str(vec!["é".into(), "".into()])),
            ),
            (
                "b".to_string(),
                t(vec![1, 2], TensorData::Bytes(vec![vec![0], vec![255, 1]])),
            ),
            (
                "h".to_string(),
                t(vec![2], TensorData::Float16(vec![0x3c00, 0x4000])),
            ),
        ]
        .into_iter()
        .collect(),
    );
    let out = block_on(model.predict(input, Params::new())).unwrap();
    let ModelData::Tensors(out) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        out["x"].data(),
        &TensorData::Float32(vec![-0.0, f32::MAX, 2.0, 1.0])
    );
    assert_eq!(out["x"].shape(), &[2, 2]);
    assert_eq!(
        out["s"].data(),
        &TensorData::Str(vec!["".into(), "é".into()])
    );
    assert_eq!(
        out["b"].data(),
        &TensorData::Bytes(vec![vec![255, 1], vec![0]])
    );
    assert_eq!(out["h"].data(), &TensorData::Float16(vec![0x4000, 0x3c00]));
    assert_eq!(
        out["model_id"].data(),
        &TensorData::Str(vec!["m-0123".into()])
    );

    let table = Table::new(vec![
        Column::new(
            "a",
            TensorData::Float64(vec![1.5, 0.0]),
            Some(vec![false, true]),
        )
        .unwrap(),
        Column::new("c", TensorData::Int64(vec![7, 8]), None).unwrap(),
    ])
    .unwrap();
    let out = block_on(model.predict(ModelData::Table(table.clone()), Params::new())).unwrap();
    assert_eq!(out, ModelData::Table(table));

    // A param of the wrong type: the plugin's InvalidArgument crosses back.
    let bad: Params = [("k".to_string(), serde_json::json!("seven"))]
        .into_iter()
        .collect();
    let err = block_on(model.predict(ModelData::Tensors(Default::default()), bad)).unwrap_err();
    assert_eq!(
        err.kind,
        cairn_plugin_api::ErrorKind::InvalidArgument,
        "{err}"
    );
    assert!(err.message.contains("'k'"), "{err}");
}
