//! The one assembly, seen from the real `cairn` binary: `cairn check` and `cairn server` accept
//! and refuse the same configurations with the same messages, and the run-context providers
//! the configuration names — built-in and from a plugin library, through the ABI — tag the
//! runs `runs/create` makes, the user's tags winning.
#![cfg(all(unix, feature = "store-sqlite"))]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use support::{Running, cairn, first_line, terminate, wait};

/// The shared library of package `name` (with `-` as `_`), built next to this test binary (it
/// is a dev-dependency of cairn-core).
fn library(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let file = exe.parent().unwrap().join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(file.is_file(), "{} was not built", file.display());
    file
}

fn jsonl_library() -> PathBuf {
    library("cairn_example_jsonl")
}

/// A started `cairn server`: the process and the address it listens on.
struct Server {
    child: Running,
    addr: String,
}

/// What `cairn server` did with a configuration: listened (the server, still running), or
/// exited with a code and its error lines.
enum Started {
    Listening(Server),
    Refused { code: Option<i32>, errors: String },
}

fn start_server(dir: &Path, flags: &[&str], env: &[(&str, &str)]) -> Started {
    let mut args = vec!["server", "-p", "0"];
    args.extend_from_slice(flags);
    let child = cairn(dir, &args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cairn server");
    let mut child = Running(child);
    let line = first_line(&mut child);
    if let Some(addr) = line.strip_prefix("Cairn is listening on http://") {
        return Started::Listening(Server {
            addr: addr.to_owned(),
            child,
        });
    }
    let status = wait(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Started::Refused {
        code: status.code(),
        errors: error_lines(&stderr),
    }
}

/// The `error:` line and its `caused by:` lines (the server's stderr also holds its logs).
fn error_lines(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| l.starts_with("error: ") || l.starts_with("  caused by: "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One configuration: `cairn.toml` (if any), flags, environment, and the expected verdict
/// (`Ok(())`, or `Err(part of the error message)`).
struct Case {
    name: &'static str,
    toml: String,
    flags: Vec<&'static str>,
    env: Vec<(&'static str, String)>,
    refused_with: Option<&'static str>,
}

fn case(name: &'static str, toml: &str, flags: &[&'static str]) -> Case {
    Case {
        name,
        toml: toml.to_owned(),
        flags: flags.to_vec(),
        env: Vec::new(),
        refused_with: None,
    }
}

impl Case {
    fn refused(mut self, with: &'static str) -> Self {
        self.refused_with = Some(with);
        self
    }
    fn env(mut self, key: &'static str, value: &str) -> Self {
        self.env.push((key, value.to_owned()));
        self
    }
}

#[test]
fn check_and_server_accept_and_refuse_the_same_configs_with_the_same_messages() {
    let jsonl = jsonl_library();
    let cases = [
        case("defaults", "", &[]),
        case("no proxy", "", &[]).env("CAIRN_STORE__SERVE_ARTIFACTS", "false"),
        case(
            "providers",
            "[run_context]\nproviders = [\"user\", \"source\", \"git\"]\n",
            &[],
        ),
        // A tracking store without a registry: the defaulted registry URI is a note, not an
        // error.
        case(
            "jsonl tracking store",
            &format!(
                "[[plugins]]\npath = \"{}\"\n[store]\nbackend_store_uri = \"jsonl://store\"\n",
                jsonl.display()
            ),
            &[],
        ),
        case("unknown backend", "", &["--backend-store-uri", "nosuch://x"])
            .refused("no tracking-store plugin serves scheme 'nosuch' (from --backend-store-uri"),
        case(
            "explicit registry no plugin serves",
            "",
            &["--registry-store-uri", "nosuch://registry"],
        )
        .refused(
            "no model-registry-store plugin serves scheme 'nosuch' (from --registry-store-uri \
             nosuch://registry)",
        ),
        case(
            "explicit registry from the environment",
            "",
            &[],
        )
        .env("CAIRN_STORE__REGISTRY_STORE_URI", "nosuch://u:hunter2@h/r")
        .refused("(from CAIRN_STORE__REGISTRY_STORE_URI=nosuch://u:***@h/r)"),
        case(
            "explicit default root no plugin serves",
            "",
            &["--default-artifact-root", "nosuch://bucket/root"],
        )
        .refused("no artifact-repository plugin serves scheme 'nosuch' (from --default-artifact-root"),
        case(
            "destination no plugin serves",
            "[store]\nartifacts_destination = \"nosuch://dest\"\n",
            &[],
        )
        .refused("no artifact-repository plugin serves scheme 'nosuch' (from store.artifacts_destination"),
        case(
            "destination unused without the proxy",
            "[store]\nartifacts_destination = \"nosuch://dest\"\nserve_artifacts = false\n",
            &[],
        ),
        case("bad plugin settings", "[settings.sqlite]\nno_such_setting = 1\n", &[])
            .refused("with `settings.sqlite.no_such_setting` (in "),
        case(
            "unknown provider",
            "[run_context]\nproviders = [\"user\", \"nope\"]\n",
            &[],
        )
        .refused("no run-context-provider plugin named 'nope' (from `run_context.providers` (in "),
        case(
            "provider refusing its settings",
            "[run_context]\nproviders = [\"git\"]\n[settings.git]\nnope = 1\n",
            &[],
        )
        .refused("run-context-provider plugin 'git' (cairn-core"),
        case("settings of no plugin", "[settings.sqlight]\nx = 1\n", &[])
            .refused("`settings.sqlight` (in "),
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        if !case.toml.is_empty() {
            std::fs::write(dir.path().join("cairn.toml"), &case.toml).unwrap();
        }
        let env: Vec<(&str, &str)> = case.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut check_args = vec!["check"];
        check_args.extend(&case.flags);
        let check = cairn(dir.path(), &check_args, &env).output().unwrap();
        let check_errors = error_lines(&String::from_utf8_lossy(&check.stderr));
        match (
            start_server(dir.path(), &case.flags, &env),
            case.refused_with,
        ) {
            (Started::Listening(server), None) => {
                assert!(
                    check.status.success(),
                    "{}: server started, check failed:\n{check_errors}",
                    case.name
                );
                drop(server);
            }
            (Started::Refused { code, errors }, Some(expected)) => {
                assert_eq!(code, check.status.code(), "{}: exit codes", case.name);
                assert_ne!(code, Some(0), "{}", case.name);
                assert_eq!(errors, check_errors, "{}: messages differ", case.name);
                assert!(errors.contains(expected), "{}: {errors}", case.name);
                assert!(!errors.contains("hunter2"), "{}: {errors}", case.name);
            }
            (Started::Listening(_), Some(expected)) => {
                panic!(
                    "{}: server started; expected a refusal with {expected}",
                    case.name
                )
            }
            (Started::Refused { errors, .. }, None) => {
                panic!("{}: server refused the config:\n{errors}", case.name)
            }
        }
    }
}

#[test]
fn a_note_of_check_is_a_warning_of_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cairn.toml"),
        format!(
            "[[plugins]]\npath = \"{}\"\n[store]\nbackend_store_uri = \"jsonl://store\"\n",
            jsonl_library().display()
        ),
    )
    .unwrap();
    let check = cairn(dir.path(), &["check"], &[]).output().unwrap();
    let report = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(check.status.success(), "{report}");
    let note = report
        .lines()
        .find_map(|l| l.strip_prefix("note: "))
        .unwrap_or_else(|| panic!("no note in:\n{report}"));
    assert!(
        note.contains("no model-registry-store plugin serves scheme 'jsonl'"),
        "{note}"
    );
    let Started::Listening(mut server) = start_server(dir.path(), &[], &[]) else {
        panic!("the server refused a config check passed")
    };
    // Once it answers, its SIGTERM handler is installed (it is set up when serving starts,
    // just after the address is printed).
    assert_eq!(http(&server.addr, "GET", "/health", "").0, 200);
    assert!(terminate(&mut server.child).success());
    let mut stderr = String::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let warning = stderr
        .lines()
        .find(|l| l.contains("WARN"))
        .unwrap_or_else(|| panic!("no warning in:\n{stderr}"));
    assert!(warning.ends_with(note), "{warning}\nvs\n{note}");
}

/// Sends one HTTP/1.1 request and returns the status code and body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    // The server answers JSON with a length, not chunked, for these small bodies.
    (status, serde_json::from_str(body).unwrap_or_default())
}

fn tags_of(run: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    run["run"]["data"]["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["key"].as_str().unwrap().to_owned(),
                t["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn runs_created_over_rest_carry_the_configured_providers_tags_built_in_and_through_the_abi() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cairn.toml"),
        format!(
            r#"[[plugins]]
path = "{}"

[run_context]
providers = ["user", "vendor"]

[settings.vendor]
host = "build-7"
tags = {{ "vendor.team" = "vision", "vendor.site" = "lab-2" }}
"#,
            jsonl_library().display()
        ),
    )
    .unwrap();
    let Started::Listening(server) = start_server(dir.path(), &["--no-serve-artifacts"], &[])
    else {
        panic!("the server refused the config")
    };

    // The user's `vendor.team` wins over the provider's; the rest come from the providers.
    let (status, created) = http(
        &server.addr,
        "POST",
        "/api/2.0/mlflow/runs/create",
        r#"{"experiment_id": "0", "user_id": "ada",
            "tags": [{"key": "vendor.team", "value": "mine"}, {"key": "k", "value": "v"}]}"#,
    );
    assert_eq!(status, 200, "{created}");
    let run_id = created["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, fetched) = http(
        &server.addr,
        "GET",
        &format!("/api/2.0/mlflow/runs/get?run_id={run_id}"),
        "",
    );
    assert_eq!(status, 200, "{fetched}");
    for run in [&created, &fetched] {
        let tags = tags_of(run);
        assert_eq!(tags["vendor.host"], "build-7", "{tags:?}");
        assert_eq!(tags["vendor.user"], "ada", "{tags:?}");
        assert_eq!(tags["vendor.site"], "lab-2", "{tags:?}");
        assert_eq!(tags["vendor.team"], "mine", "{tags:?}");
        assert_eq!(tags["mlflow.user"], "ada", "{tags:?}");
        assert_eq!(tags["k"], "v", "{tags:?}");
    }

    // A user-given `mlflow.user` wins over the built-in provider.
    let (status, created) = http(
        &server.addr,
        "POST",
        "/api/2.0/mlflow/runs/create",
        r#"{"experiment_id": "0", "user_id": "ada",
            "tags": [{"key": "mlflow.user", "value": "grace"}]}"#,
    );
    assert_eq!(status, 200, "{created}");
    let tags = tags_of(&created);
    assert_eq!(tags["mlflow.user"], "grace", "{tags:?}");
    assert_eq!(tags["vendor.host"], "build-7", "{tags:?}");
}

#[test]
fn cairn_artifacts_takes_a_store_tracking_uri_as_the_tracking_store() {
    let dir = tempfile::tempdir().unwrap();
    let Started::Listening(mut server) = start_server(
        dir.path(),
        &[
            "--no-serve-artifacts",
            "--backend-store-uri",
            "sqlite:///runs.db",
        ],
        &[],
    ) else {
        panic!("the server refused the config")
    };
    let (status, created) = http(
        &server.addr,
        "POST",
        "/api/2.0/mlflow/runs/create",
        r#"{"experiment_id": "0"}"#,
    );
    assert_eq!(status, 200, "{created}");
    let run_id = created["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(terminate(&mut server.child).success());

    // No cairn.toml names runs.db: the tracking URI does.
    std::fs::write(dir.path().join("a.txt"), "hello").unwrap();
    let uri = format!("runs:/{run_id}/out");
    let env = [("MLFLOW_TRACKING_URI", "sqlite:///runs.db")];
    let out = cairn(
        dir.path(),
        &["artifacts", "upload", "--local-path", "a.txt", &uri],
        &env,
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = cairn(dir.path(), &["artifacts", "list", &uri], &env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["path"], "a.txt", "{listed}");
    assert!(!dir.path().join("cairn.db").exists());

    let out = cairn(
        dir.path(),
        &["artifacts", "list", &uri],
        &[("MLFLOW_TRACKING_URI", "nosuch://u:hunter2@h/x")],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let errors = error_lines(&String::from_utf8_lossy(&out.stderr));
    assert!(
        errors.contains(
            "no tracking-store plugin serves scheme 'nosuch' (from --tracking-uri (or \
             MLFLOW_TRACKING_URI) nosuch://u:***@h/x)"
        ),
        "{errors}"
    );
}

#[test]
fn a_failing_provider_is_skipped_with_a_warning_naming_it_and_the_run_is_created() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cairn.toml"),
        "[run_context]\nproviders = [\"user\", \"panicky\"]\n",
    )
    .unwrap();
    let plugins = library("cairn_test_plugins");
    let Started::Listening(mut server) = start_server(
        dir.path(),
        &["--no-serve-artifacts"],
        &[("CAIRN_PLUGINS_PATH", plugins.to_str().unwrap())],
    ) else {
        panic!("the server refused the config")
    };
    let (status, reply) = http(
        &server.addr,
        "POST",
        "/api/2.0/mlflow/runs/create",
        r#"{"experiment_id": "0"}"#,
    );
    assert_eq!(status, 200, "{reply}");
    // The providers before and after the failing one still tag the run.
    let tags = reply["run"]["data"]["tags"].as_array().unwrap();
    assert!(
        tags.iter().any(|t| t["key"] == "mlflow.user"),
        "the user provider's tag is missing: {reply}"
    );
    assert!(terminate(&mut server.child).success());
    let mut stderr = String::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("run-context provider 'panicky' failed")
            && stderr.contains("tags panicked on purpose"),
        "{stderr}"
    );
}
