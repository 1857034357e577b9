//! The real `cairn` binary, run in a fresh temporary directory per test.

use std::path::Path;
use std::process::{Command, Output};

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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
#[cfg(feature = "store-sqlite")]
fn plugins_list_shows_sqlite_as_a_builtin_tracking_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(dir.path(), &["plugins", "list"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let row = text
        .lines()
        .find(|l| l.starts_with("tracking-store") && l.contains(" sqlite "))
        .unwrap_or_else(|| panic!("no sqlite row in:\n{text}"));
    assert!(row.contains("cairn-store-sqlite"), "{row}");
    assert!(row.ends_with("built-in"), "{row}");
}

#[test]
#[cfg(feature = "store-sqlite")]
fn check_with_the_default_sqlite_store_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(dir.path(), &["check"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("ok: tracking-store 'sqlite' (cairn-store-sqlite"),
        "{text}"
    );
    assert!(
        text.contains("the default store.backend_store_uri"),
        "{text}"
    );
    assert!(text.contains("check passed"), "{text}");
    assert!(dir.path().join("cairn.db").is_file(), "{text}");
}

#[test]
#[cfg(feature = "store-sqlite")]
fn check_with_an_absolute_sqlite_uri_flag_creates_that_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sub-dir.db");
    let uri = format!("sqlite:///{}", db.display());
    let out = cairn(dir.path(), &["check", "--backend-store-uri", &uri], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!("for --backend-store-uri {uri}")),
        "{}",
        stdout(&out)
    );
    assert!(db.is_file());
    assert!(!dir.path().join("cairn.db").exists());
}

#[test]
fn check_with_an_unknown_scheme_lists_the_available_schemes() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(
        dir.path(),
        &["check", "--backend-store-uri", "nosuch://x"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "error: no tracking-store plugin serves scheme 'nosuch' (from --backend-store-uri \
             nosuch://x); available schemes: "
        ),
        "{err}"
    );
    let available = err.lines().next().unwrap().rsplit(": ").next().unwrap();
    assert_eq!(
        available.split(", ").any(|s| s == "sqlite"),
        cfg!(feature = "store-sqlite"),
        "{err}"
    );
}

#[test]
#[cfg(feature = "store-sqlite")]
fn a_plugin_rejecting_its_settings_points_at_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairn.toml");
    std::fs::write(
        &file,
        "[settings.sqlite]
no_such_setting = 1
",
    )
    .unwrap();
    let out = cairn(dir.path(), &["check"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("tracking-store plugin 'sqlite' (cairn-store-sqlite"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "with `settings.sqlite.no_such_setting` (in {})",
            file.display()
        )),
        "{err}"
    );
    assert!(err.contains("caused by: "), "{err}");
    assert!(err.contains("no_such_setting"), "{err}");
}

#[test]
fn settings_for_a_plugin_that_does_not_exist_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cairn.toml"),
        "[settings.sqlight]
x = 1
",
    )
    .unwrap();
    let out = cairn(dir.path(), &["check"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("`settings.sqlight`"), "{err}");
    assert!(err.contains("no plugin is named 'sqlight'"), "{err}");
}

#[test]
#[cfg(not(feature = "store-sqlite"))]
fn without_the_sqlite_feature_the_default_store_is_reported_compiled_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(dir.path(), &["check"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "the `sqlite` tracking store is compiled out of this binary (cargo feature \
             `store-sqlite` of cairn-core)"
        ),
        "{}",
        stderr(&out)
    );
    let out = cairn(dir.path(), &["plugins", "list"], &[]);
    assert!(stdout(&out).contains("compiled out"), "{}", stdout(&out));
}

#[test]
#[cfg(feature = "store-sqlite")]
fn check_fails_for_an_explicit_registry_uri_no_plugin_serves() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(
        dir.path(),
        &["check", "--registry-store-uri", "nosuch://registry"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no model-registry-store plugin serves scheme 'nosuch'"),
        "{err}"
    );
    assert!(
        err.contains("from --registry-store-uri nosuch://registry"),
        "{err}"
    );
}

#[test]
fn check_names_the_env_var_a_bad_uri_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(
        dir.path(),
        &["check"],
        &[("CAIRN_STORE__BACKEND_STORE_URI", "nosuch://u:hunter2@h/db")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("from CAIRN_STORE__BACKEND_STORE_URI=nosuch://u:***@h/db"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn config_show_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cairn.toml"),
        r#"
[server]
port = 6001

[store]
backend_store_uri = "postgresql://alice:hunter2@db.internal/mlflow"

[settings.s3]
secret_access_key = "wJalrXUtnFEMI"
bucket = "models"
"#,
    )
    .unwrap();
    let out = cairn(dir.path(), &["config", "show"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("wJalrXUtnFEMI"), "{text}");
    assert!(
        text.contains("postgresql://alice:***@db.internal/mlflow"),
        "{text}"
    );
    assert!(text.contains("port = 6001"), "{text}");
    assert!(text.contains("bucket = \"models\""), "{text}");
}

#[test]
fn config_show_takes_the_global_config_option() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prod.toml"), "[server]\nport = 7007\n").unwrap();
    let out = cairn(
        dir.path(),
        &["--config", "prod.toml", "config", "show"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("port = 7007"), "{}", stdout(&out));

    let out = cairn(
        dir.path(),
        &["config", "show", "--config", "missing.toml"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

#[test]
fn misspelt_key_in_cairn_toml_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairn.toml");
    std::fs::write(&file, "[store]\nbackend_store_url = \"sqlite:///x.db\"\n").unwrap();
    let out = cairn(dir.path(), &["check"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains("unknown key `store.backend_store_url`"),
        "{err}"
    );
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(!dir.path().join("x.db").exists());
}

#[test]
fn bad_port_in_the_environment_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(
        dir.path(),
        &["config", "show"],
        &[("CAIRN_SERVER__PORT", "abc")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("`server.port`"), "{err}");
    assert!(err.contains("CAIRN_SERVER__PORT"), "{err}");
}

#[test]
#[cfg(feature = "store-sqlite")]
fn a_settings_value_of_the_wrong_type_names_the_full_key_and_its_source_in_check_and_server() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairn.toml");
    std::fs::write(&file, "[settings.sqlite]\nbusy_timeout_ms = \"soon\"\n").unwrap();
    let in_file = format!(
        "with `settings.sqlite.busy_timeout_ms` (in {})",
        file.display()
    );
    for command in [&["check"][..], &["server", "--port", "0"][..]] {
        let out = cairn(dir.path(), command, &[]);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains(&in_file), "{command:?}: {err}");
        assert!(
            err.contains("`busy_timeout_ms`: invalid type"),
            "{command:?}: {err}"
        );
    }
    // The same value from the environment names the whole variable.
    std::fs::write(&file, "[settings.sqlite]\nreaders = 2\n").unwrap();
    for command in [&["check"][..], &["server", "--port", "0"][..]] {
        let out = cairn(
            dir.path(),
            command,
            &[("CAIRN_SETTINGS__SQLITE__BUSY_TIMEOUT_MS", "soon")],
        );
        assert_eq!(out.status.code(), Some(1), "{command:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains(
                "with `settings.sqlite.busy_timeout_ms` (from environment variable \
                 CAIRN_SETTINGS__SQLITE__BUSY_TIMEOUT_MS)"
            ),
            "{command:?}: {err}"
        );
    }
}
