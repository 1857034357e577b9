//! `cairn server` as a real process: it starts on the default SQLite store in its working
//! directory, prints where it listens, answers over TCP, and exits cleanly on SIGTERM.
#![cfg(all(unix, feature = "store-sqlite"))]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{Running, address, cairn, terminate};

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

#[test]
fn server_starts_on_the_default_store_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "server",
        "-p",
        "0",
        "--workers",
        "4",
        "--no-serve-artifacts",
    ];
    let (mut child, addr) = spawn(cairn(dir.path(), &args, &[]).stderr(Stdio::piped()));
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

    let status = terminate(&mut child);
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

/// Starts `cmd` (a `cairn server` or `cairn ui` on port 0); returns it and the address it
/// prints first.
fn spawn(cmd: &mut Command) -> (Running, String) {
    let mut child = Running(cmd.stdout(Stdio::piped()).spawn().expect("start cairn"));
    let addr = address(&mut child, "Cairn is listening on http://");
    (child, addr)
}

/// Starts `cairn server` on a free port in a fresh directory with the variables `env`; returns
/// the child, its address and the directory.
fn start(env: &[(&str, &str)]) -> (Running, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let args = ["server", "-p", "0", "--no-serve-artifacts"];
    let (child, addr) = spawn(cairn(dir.path(), &args, env).stderr(Stdio::piped()));
    (child, addr, dir)
}

/// Reads until the server closes the connection; the read timeout only guards against
/// hanging the test run.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut got = Vec::new();
    stream
        .read_to_end(&mut got)
        .expect("the server did not close the connection");
    got
}

#[test]
fn idle_connections_and_half_sent_headers_are_closed_after_the_idle_timeout() {
    let (mut child, addr, _dir) = start(&[("CAIRN_SERVER__IDLE_TIMEOUT_SECS", "1")]);
    // Silent from the start.
    let mut idle = TcpStream::connect(&addr).unwrap();
    // A header that never ends.
    let mut half = TcpStream::connect(&addr).unwrap();
    write!(half, "GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Slow: a").unwrap();
    // Idle after a first request on a keep-alive connection.
    let mut kept = TcpStream::connect(&addr).unwrap();
    write!(kept, "GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();

    assert!(read_until_closed(&mut idle).is_empty());
    let _ = read_until_closed(&mut half);
    let kept = String::from_utf8(read_until_closed(&mut kept)).unwrap();
    assert!(kept.starts_with("HTTP/1.1 200"), "{kept}");
    assert_eq!(kept.matches("HTTP/1.1").count(), 1, "{kept}");
    // The server still answers.
    assert!(http_get(&addr, "/health").starts_with("HTTP/1.1 200"));
    assert!(terminate(&mut child).success());
}

#[test]
fn sigterm_exits_after_the_deadline_while_a_client_holds_a_half_sent_request() {
    let (mut child, addr, _dir) = start(&[
        ("CAIRN_SERVER__IDLE_TIMEOUT_SECS", "3600"),
        ("CAIRN_SERVER__BODY_READ_TIMEOUT_SECS", "3600"),
        ("CAIRN_SERVER__SHUTDOWN_TIMEOUT_SECS", "1"),
    ]);
    let mut half_header = TcpStream::connect(&addr).unwrap();
    write!(
        half_header,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Slow: a"
    )
    .unwrap();
    let mut half_body = TcpStream::connect(&addr).unwrap();
    write!(
        half_body,
        "POST /api/2.0/mlflow/experiments/create HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\""
    )
    .unwrap();
    // Both connections are in the server's hands before the signal.
    assert!(http_get(&addr, "/health").starts_with("HTTP/1.1 200"));
    let status = terminate(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(stderr.contains("shutdown deadline passed"), "{stderr}");
    drop((half_header, half_body));
}

#[test]
fn connections_beyond_the_cap_wait_until_one_closes() {
    let (mut child, addr, _dir) = start(&[("CAIRN_SERVER__MAX_CONNECTIONS", "1")]);
    let holder = TcpStream::connect(&addr).unwrap();
    // Make sure the holder has been accepted before the second connection arrives.
    let mut probe = TcpStream::connect(&addr).unwrap();
    write!(
        probe,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    let early = probe.read(&mut buf);
    assert!(
        early.is_err(),
        "a connection over the cap was served: {early:?}"
    );
    drop(holder);
    let answer = String::from_utf8(read_until_closed(&mut probe)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(terminate(&mut child).success());
}

/// The process's resident-set high-water mark (`VmHWM`), in bytes.
fn peak_rss(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

fn post_json(addr: &str, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn huge_search_inputs_are_refused_with_400_in_bounded_memory() {
    let (mut child, addr, _dir) = start(&[]);
    let search = "/api/2.0/mlflow/runs/search";
    // Warm up: the first search builds the store's statements and caches.
    let ok = post_json(&addr, search, r#"{"experiment_ids":["0"]}"#);
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let before = peak_rss(&child);

    let items = vec!["'a'"; 1_000_000].join(",");
    let body = serde_json::json!({
        "experiment_ids": ["0"],
        "filter": format!("attributes.run_id IN ({items})"),
    })
    .to_string();
    let answer = post_json(&addr, search, &body);
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "{}",
        &answer[..200.min(answer.len())]
    );
    assert!(
        answer.contains("INVALID_PARAMETER_VALUE"),
        "{}",
        &answer[..500.min(answer.len())]
    );
    assert!(
        answer.len() < 8192,
        "the answer quotes the whole filter back"
    );
    let growth = peak_rss(&child).saturating_sub(before);
    eprintln!("peak RSS growth for a 1M-item IN list: {growth} bytes");
    assert!(
        growth < 64 * 1024 * 1024,
        "a 1M-item IN list grew the server's peak RSS by {} MiB",
        growth / (1024 * 1024)
    );

    // 5M experiment ids (20 MB): refused before the body is decoded into millions of values.
    let ids = vec!["\"0\""; 5_000_000].join(",");
    let answer = post_json(&addr, search, &format!("{{\"experiment_ids\":[{ids}]}}"));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("INVALID_PARAMETER_VALUE"), "{answer}");
    let growth = peak_rss(&child).saturating_sub(before);
    eprintln!("peak RSS growth after 5M experiment_ids too: {growth} bytes");
    assert!(
        growth < 64 * 1024 * 1024,
        "5M experiment_ids grew the server's peak RSS by {} MiB",
        growth / (1024 * 1024)
    );

    let ands = vec!["metrics.a > 1"; 1100].join(" AND ");
    let body = serde_json::json!({"experiment_ids": ["0"], "filter": ands}).to_string();
    let answer = post_json(&addr, search, &body);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("INVALID_PARAMETER_VALUE"), "{answer}");

    let keys: Vec<String> = (0..5000).map(|i| format!("metrics.m{i}")).collect();
    let body = serde_json::json!({"experiment_ids": ["0"], "order_by": keys}).to_string();
    let answer = post_json(&addr, search, &body);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("INVALID_PARAMETER_VALUE"), "{answer}");

    assert!(terminate(&mut child).success());
}

/// Sends `request` raw and reads the answer until the server closes the connection.
fn raw_exchange(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(request).unwrap();
    String::from_utf8(read_until_closed(&mut stream)).unwrap()
}

#[test]
fn uri_too_long_and_headers_too_large_answer_in_mlflows_json_shape() {
    let (mut child, addr, _dir) = start(&[]);
    let long_uri = format!(
        "GET /health?{} HTTP/1.1\r\nHost: {addr}\r\n\r\n",
        "a".repeat(70_000)
    );
    let many_headers = format!(
        "GET /health HTTP/1.1\r\nHost: {addr}\r\n{}\r\n",
        (0..200).map(|i| format!("x{i}: y\r\n")).collect::<String>()
    );
    let huge_header = format!(
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(500_000)
    );
    for (request, status) in [
        (long_uri, "414"),
        (many_headers, "431"),
        (huge_header, "431"),
    ] {
        let answer = raw_exchange(&addr, request.as_bytes());
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        assert!(
            answer.contains("content-type: application/json"),
            "{answer}"
        );
        let body: serde_json::Value =
            serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error_code"], "BAD_REQUEST", "{answer}");
        assert!(
            body["message"].as_str().unwrap().contains("too"),
            "{answer}"
        );
    }
    // The same oversized head in two pieces, so that it completes within one large read (the
    // server bounds every complete head, not only an incomplete one).
    let huge = format!(
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(500_000)
    );
    let mut stream = TcpStream::connect(&addr).expect("connect");
    stream.write_all(&huge.as_bytes()[..1000]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // The server may close before it has read everything: then the rest is refused.
    let _ = stream.write_all(&huge.as_bytes()[1000..]);
    let answer = String::from_utf8_lossy(&read_until_closed(&mut stream)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert!(http_get(&addr, "/health").starts_with("HTTP/1.1 200"));
    assert!(terminate(&mut child).success());
}

/// `--app-name basic-auth` as a process: it refuses to start without an admin password, naming
/// the key; with one it answers 401 without credentials and 200 with them, and neither the
/// password nor the `Authorization` header reaches the log (at `RUST_LOG=debug`).
#[test]
fn basic_auth_needs_an_admin_password_and_keeps_credentials_out_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // Without the caller's MLFLOW_AUTH_ADMIN_PASSWORD or CAIRN_AUTH__ADMIN_PASSWORD.
    let out = cairn(
        dir.path(),
        &["server", "-p", "0", "--app-name", "basic-auth"],
        &[],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("auth.admin_password"), "{stderr}");

    let password = "s3cret-admin-pw";
    let (mut child, addr, _dir) = start(&[
        ("CAIRN_AUTH__ENABLED", "true"),
        ("MLFLOW_AUTH_ADMIN_PASSWORD", password),
        ("RUST_LOG", "debug"),
    ]);
    let path = "/api/2.0/mlflow/experiments/get?experiment_id=0";
    let anonymous = http_get(&addr, path);
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"));
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {token}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(terminate(&mut child).success());
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("user=admin"), "{log}");
    for secret in [password, token.as_str(), "Basic "] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// `cairn ui`, as `mlflow ui`: the same server, with the web UI at `/`.
#[test]
fn cairn_ui_serves_the_web_ui_and_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn(cairn(dir.path(), &["ui", "-p", "0"], &[]).stderr(Stdio::null()));
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let page = http_get(&addr, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("text/html"), "{page}");
    assert!(page.contains("content-security-policy"), "{page}");
    assert!(page.contains("static-files/app-"), "{page}");
    let api = http_get(
        &addr,
        "/ajax-api/2.0/mlflow/experiments/get?experiment_id=0",
    );
    assert!(api.contains("\"name\":\"Default\""), "{api}");
    assert!(terminate(&mut child).success());
}
