//! `cairn models serve` as a real process on an ONNX model (a perceptron built in code, with
//! its reference predictions computed by plain arithmetic): MLflow's scoring protocol, its
//! input formats, its error shapes and statuses.
#![cfg(all(unix, feature = "flavor-onnx"))]

mod support;

use cairn_flavor_onnx::fixtures;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use support::{Running, address, first_line, terminate};

/// One HTTP/1.1 request; returns the status and the body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response[9..12].parse().unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    (status, body.to_owned())
}

fn post_json(addr: &str, body: &Value) -> (u16, Value) {
    let (status, text) = http(
        addr,
        "POST",
        "/invocations",
        Some("application/json"),
        body.to_string().as_bytes(),
    );
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, v)
}

struct Server {
    child: Running,
    addr: String,
}

/// `cairn args...` in `dir`, stdout and stderr piped.
fn cairn(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = support::cairn(dir, args, &[]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

fn serve(dir: &std::path::Path, model: &str) -> Server {
    let child = cairn(
        dir,
        &[
            "models",
            "serve",
            "-m",
            model,
            "-p",
            "0",
            "--env-manager",
            "local",
        ],
    )
    .spawn()
    .expect("start cairn models serve");
    let mut child = Running(child);
    let addr = address(&mut child, "Cairn is serving the model on http://");
    Server { child, addr }
}

/// Asserts `actual` numbers equal `expected` within 1e-5 relative, structure included.
fn close(actual: &Value, expected: &Value) {
    match (actual, expected) {
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{actual} vs {expected}");
            a.iter().zip(b).for_each(|(x, y)| close(x, y));
        }
        (Value::Object(a), Value::Object(b)) => {
            assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
            a.iter().for_each(|(k, v)| close(v, &b[k]));
        }
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let scale = x.abs().max(y.abs()).max(1e-12);
            assert!((x - y).abs() <= 1e-5 * scale, "{x} vs {y}");
        }
        _ => assert_eq!(actual, expected),
    }
}

/// The reference predictions: as tensors (tensor input) and as records (DataFrame input).
fn reference(rows: &[[f32; 4]]) -> (Value, Value) {
    let (p, l) = fixtures::mlp_reference(rows);
    let tensors = json!({"label": l, "probabilities": p});
    let records = p
        .iter()
        .zip(&l)
        .map(|(p, l)| json!({"label": l, "probabilities": p}))
        .collect();
    (tensors, Value::Array(records))
}

#[test]
fn scoring_protocol_on_an_onnx_model() {
    let dir = tempfile::tempdir().unwrap();
    fixtures::write_mlp(&dir.path().join("model")).unwrap();
    let server = serve(dir.path(), "model");
    let addr = server.addr.as_str();

    assert_eq!(http(addr, "GET", "/ping", None, b""), (200, "\n".into()));
    assert_eq!(http(addr, "GET", "/health", None, b""), (200, "\n".into()));
    assert_eq!(
        http(addr, "GET", "/version", None, b""),
        (200, "3.18.0".into())
    );

    for n in [1, 7, 1000] {
        let rows = fixtures::mlp_rows(n);
        let (tensors, records) = reference(&rows);
        let x: Vec<Vec<f32>> = rows.iter().map(|r| r.to_vec()).collect();
        for body in [
            json!({"inputs": x}),
            json!({"inputs": {"x": x}}),
            json!({"instances": x}),
        ] {
            let (status, out) = post_json(addr, &body);
            assert_eq!(status, 200, "{out}");
            close(&out["predictions"], &tensors);
        }
        let cols = ["a", "b", "c", "d"];
        let index: Vec<usize> = (0..n).collect();
        let split = json!({"dataframe_split": {"columns": cols, "data": x, "index": index}});
        let recs: Vec<Value> = x
            .iter()
            .map(|r| json!({"a": r[0], "b": r[1], "c": r[2], "d": r[3]}))
            .collect();
        for body in [split, json!({"dataframe_records": recs})] {
            let (status, out) = post_json(addr, &body);
            assert_eq!(status, 200, "{out}");
            close(&out["predictions"], &records);
        }
        let mut csv = String::from(",a,b,c,d\n");
        for (i, r) in rows.iter().enumerate() {
            csv.push_str(&format!("{i},{},{},{},{}\n", r[0], r[1], r[2], r[3]));
        }
        let (status, text) = http(
            addr,
            "POST",
            "/invocations",
            Some("text/csv"),
            csv.as_bytes(),
        );
        assert_eq!(status, 200, "{text}");
        let out: Value = serde_json::from_str(&text).unwrap();
        close(&out["predictions"], &records);
    }

    // Params the model does not declare are ignored; an empty DataFrame predicts nothing.
    let x = vec![fixtures::mlp_rows(1)[0].to_vec()];
    let (status, _) = post_json(addr, &json!({"inputs": x, "params": {"anything": 1}}));
    assert_eq!(status, 200);
    let (status, out) = post_json(
        addr,
        &json!({"dataframe_split": {"columns": [], "data": []}}),
    );
    assert_eq!((status, out), (200, json!({"predictions": []})));

    // Parse and conversion failures: BAD_REQUEST.
    let bad: [&[u8]; 8] = [
        b"{not json",
        b"[1, 2]",
        b"{}",
        b"\xff\xfe",
        br#"{"inputs": [1], "instances": [1]}"#,
        br#"{"inputs": [["a", "b", "c", "d"]]}"#,
        br#"{"inputs": [[1, 2], [3]]}"#,
        br#"{"dataframe_split": {"data": [[1]], "bogus": 1}}"#,
    ];
    for body in bad {
        let (status, text) = http(addr, "POST", "/invocations", Some("application/json"), body);
        assert_eq!(status, 400, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let sent = String::from_utf8_lossy(body);
        assert_eq!(v["error_code"], "BAD_REQUEST", "{sent}: {text}");
    }
    // Schema failures: INVALID_PARAMETER_VALUE.
    for body in [
        json!({"inputs": {"y": x}}),
        json!({"inputs": [[1.0, 2.0, 3.0]]}),
        json!({"inputs": []}),
    ] {
        let (status, out) = post_json(addr, &body);
        assert_eq!(status, 400, "{out}");
        assert_eq!(
            out["error_code"], "INVALID_PARAMETER_VALUE",
            "{body}: {out}"
        );
    }
    // Content types MLflow refuses: 415 with plain text; no Content-Type too (MLflow: 500).
    for ct in [
        Some("text/plain"),
        Some("Application/JSON"),
        Some("application/json; charset=latin-1"),
        Some("application/json; foo=1"),
        Some("application/xml"),
        None,
    ] {
        let body = br#"{"inputs": [[1, 2, 3, 4]]}"#;
        let (status, text) = http(addr, "POST", "/invocations", ct, body);
        assert_eq!(status, 415, "{ct:?}: {text}");
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    }
}

#[test]
fn a_model_without_a_served_flavor_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(
        model.join("MLmodel"),
        "flavors:\n  sklearn:\n    pickled_model: model.pkl\n",
    )
    .unwrap();
    let out = cairn(dir.path(), &["models", "serve", "-m", "model", "-p", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "its flavors are [sklearn]; this build serves the flavors [onnx, python_function]"
        ),
        "{stderr}"
    );
}

#[test]
fn models_predict_scores_a_file_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    fixtures::write_mlp(&dir.path().join("model")).unwrap();
    let rows = fixtures::mlp_rows(7);
    let (tensors, records) = reference(&rows);
    let x: Vec<Vec<f32>> = rows.iter().map(|r| r.to_vec()).collect();
    std::fs::write(dir.path().join("in.json"), json!({"inputs": x}).to_string()).unwrap();
    let out = cairn(
        dir.path(),
        &[
            "models", "predict", "-m", "model", "-i", "in.json", "-o", "out.json",
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out.json")).unwrap())
            .unwrap();
    close(&written["predictions"], &tensors);

    let mut csv = String::from("a,b,c,d\n");
    for r in &rows {
        csv.push_str(&format!("{},{},{},{}\n", r[0], r[1], r[2], r[3]));
    }
    std::fs::write(dir.path().join("in.csv"), csv).unwrap();
    let out = cairn(
        dir.path(),
        &[
            "models", "predict", "-m", "model", "-i", "in.csv", "-t", "csv",
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    close(&printed["predictions"], &records);

    // A schema failure is an error naming the model, not a crash.
    std::fs::write(dir.path().join("bad.json"), r#"{"inputs": [[1, 2, 3]]}"#).unwrap();
    let out = cairn(
        dir.path(),
        &["models", "predict", "-m", "model", "-i", "bad.json"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INVALID_PARAMETER_VALUE"), "{stderr}");
}

/// Starts `cairn server` on a fresh SQLite store in `dir`; returns it with its address.
fn tracking_server(dir: &std::path::Path) -> Server {
    let child = cairn(dir, &["server", "-p", "0"])
        .spawn()
        .expect("start cairn server");
    let mut child = Running(child);
    let addr = address(&mut child, "Cairn is listening on http://");
    Server { child, addr }
}

fn api(addr: &str, path: &str, body: Value) -> Value {
    let (status, text) = http(
        addr,
        "POST",
        &format!("/api/2.0/mlflow/{path}"),
        Some("application/json"),
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_registered_model_alias_is_served_straight_from_a_tracking_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = tracking_server(dir.path());
    let tracking = format!("http://{}", server.addr);
    fixtures::write_mlp(&dir.path().join("model")).unwrap();

    let run = api(&server.addr, "runs/create", json!({"experiment_id": "0"}));
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_owned();
    let uploaded = cairn(
        dir.path(),
        &[
            "artifacts",
            "upload",
            "--local-path",
            "model",
            &format!("runs:/{run_id}/model"),
        ],
    )
    .env("MLFLOW_TRACKING_URI", &tracking)
    .output()
    .unwrap();
    assert!(
        uploaded.status.success(),
        "{}",
        String::from_utf8_lossy(&uploaded.stderr)
    );
    api(
        &server.addr,
        "registered-models/create",
        json!({"name": "mlp"}),
    );
    let source = format!("runs:/{run_id}/model");
    api(
        &server.addr,
        "model-versions/create",
        json!({"name": "mlp", "source": source, "run_id": run_id}),
    );
    api(
        &server.addr,
        "registered-models/alias",
        json!({"name": "mlp", "alias": "champion", "version": "1"}),
    );

    // The server downloads the model into a temporary directory of its own, here.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let child = cairn(
        dir.path(),
        &["models", "serve", "-m", "models:/mlp@champion", "-p", "0"],
    )
    .env("MLFLOW_TRACKING_URI", &tracking)
    .env("TMPDIR", &tmp)
    .spawn()
    .unwrap();
    let mut child = Running(child);
    let line = first_line(&mut child);
    let Some(addr) = line.strip_prefix("Cairn is serving the model on http://") else {
        let mut stderr = String::new();
        let _ = child.kill();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        panic!("unexpected first line {line:?}; stderr: {stderr}");
    };
    let mut scoring = Server {
        child,
        addr: addr.to_owned(),
    };
    let rows = fixtures::mlp_rows(3);
    let x: Vec<Vec<f32>> = rows.iter().map(|r| r.to_vec()).collect();
    let (status, out) = post_json(&scoring.addr, &json!({"inputs": x}));
    assert_eq!(status, 200, "{out}");
    close(&out["predictions"], &reference(&rows).0);
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        1,
        "the downloaded model"
    );
    // Stopped as a service manager stops it, the server removes what it downloaded.
    assert!(terminate(&mut scoring.child).success());
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Many concurrent batch-1 requests (which the server may merge into shared inference calls):
/// every answer is its own row's prediction, and `/metrics` accounts for every request once.
#[test]
fn concurrent_requests_each_get_their_own_prediction_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    fixtures::write_mlp(&dir.path().join("model")).unwrap();
    let server = serve(dir.path(), "model");
    let rows = fixtures::mlp_rows(64);
    std::thread::scope(|s| {
        for chunk in rows.chunks(8) {
            let addr = server.addr.as_str();
            s.spawn(move || {
                for row in chunk {
                    let (tensors, _) = reference(std::slice::from_ref(row));
                    let (status, out) = post_json(addr, &json!({"inputs": [row.to_vec()]}));
                    assert_eq!(status, 200, "{out}");
                    close(&out["predictions"], &tensors);
                }
            });
        }
    });
    let (status, text) = http(&server.addr, "GET", "/metrics", None, b"");
    assert_eq!(status, 200);
    for line in [
        "cairn_models_requests_total{route=\"/invocations\",status=\"200\"} 64",
        "cairn_models_request_duration_seconds_count 64",
        "cairn_models_batch_requests_sum 64",
        "cairn_models_queued_requests 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}
