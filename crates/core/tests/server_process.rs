//! `cairn server` as a real process: it starts on the default SQLite store in its working
//! directory, prints where it listens, answers over TCP, and exits cleanly on SIGTERM.
#![cfg(all(unix, feature = "store-sqlite"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Waits for the child to exit; a guard against hanging the test run, not a timing check.
fn wait(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cairn server did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn server_starts_on_the_default_store_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.current_dir(dir.path())
        .args([
            "server",
            "-p",
            "0",
            "--workers",
            "4",
            "--no-serve-artifacts",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("CAIRN_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd.spawn().expect("start cairn server");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("Cairn is listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let health = http_get(&addr, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("OK"), "{health}");
    let info = http_get(&addr, "/api/3.0/mlflow/server-info");
    assert!(
        info.contains("\"artifact_serving_enabled\":false"),
        "{info}"
    );
    let exp = http_get(&addr, "/api/2.0/mlflow/experiments/get?experiment_id=0");
    assert!(exp.contains("\"name\":\"Default\""), "{exp}");
    assert!(dir.path().join("cairn.db").is_file());

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(
        stderr.contains("--workers does not apply to Cairn and is ignored"),
        "{stderr}"
    );
    // Request logs: method, path, status and latency.
    assert!(
        stderr.contains("/api/2.0/mlflow/experiments/get"),
        "{stderr}"
    );
    assert!(stderr.contains("status=200"), "{stderr}");
    assert!(stderr.contains("latency="), "{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
}
