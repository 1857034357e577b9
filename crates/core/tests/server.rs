//! The REST server, driven through its router (tower `oneshot`) against a fresh in-memory
//! SQLite store per test: every endpoint's happy path and error codes, and the wire rules
//! (camelCase, both spellings, content types, double-encoded bodies, query-string lists and
//! bools, NaN), the Host check, the cross-origin check and CORS, the body limit and the JSON 404.
#![cfg(feature = "store-sqlite")]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use cairn_core::Registry;
use cairn_core::server::security::{AllowedHosts, AllowedOrigins};
use cairn_core::server::{ServerInfo, router};
use cairn_plugin_api::BuildContext;
use serde_json::{Value, json};
use tower::ServiceExt;

const MISSING_SUFFIX: &str = "See the API docs for more information about request parameters.";

struct App {
    router: Router,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
    #[track_caller]
    fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        self.json()
    }
    #[track_caller]
    fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        let v = self.json();
        assert_eq!(v["error_code"], code, "{}", self.text);
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/json",
            "{}",
            self.text
        );
        v["message"].as_str().unwrap().to_owned()
    }
}

fn store() -> std::sync::Arc<dyn cairn_plugin_api::TrackingStore> {
    let mut ctx = BuildContext::for_uri("sqlite://");
    ctx.default_artifact_root = Some("mlflow-artifacts:/".into());
    Registry::builtin()
        .unwrap()
        .tracking_store("sqlite://", ctx)
        .unwrap()
}

impl App {
    fn new() -> Self {
        Self::with(ServerInfo::default())
    }

    fn with(info: ServerInfo) -> Self {
        App {
            router: router(store(), &info),
        }
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn raw(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "127.0.0.1:5000");
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        self.send(req.body(body.into()).unwrap()).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.raw(
            Method::POST,
            &api(path),
            Some("application/json"),
            body.to_string(),
        )
        .await
    }

    async fn get(&self, path_and_query: &str) -> Reply {
        self.raw(Method::GET, &api(path_and_query), None, Body::empty())
            .await
    }

    async fn call(&self, method: Method, path: &str, body: Value) -> Reply {
        self.raw(method, &api(path), None, body.to_string()).await
    }

    async fn experiment(&self, name: &str) -> String {
        self.post("experiments/create", json!({"name": name}))
            .await
            .ok()["experiment_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn run(&self, experiment_id: &str) -> String {
        let v = self
            .post(
                "runs/create",
                json!({"experiment_id": experiment_id, "start_time": 1}),
            )
            .await
            .ok();
        v["run"]["info"]["run_id"].as_str().unwrap().to_owned()
    }
}

fn api(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/api/2.0/mlflow/{path}")
    }
}

fn missing(param: &str) -> String {
    format!("Missing value for required parameter '{param}'. {MISSING_SUFFIX}")
}

// ----- non-API routes ---------------------------------------------------------------------------

#[tokio::test]
async fn health_version_and_server_info() {
    let app = App::new();
    let r = app.get("/health").await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "OK"));
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(r.headers["x-frame-options"], "SAMEORIGIN");
    let r = app.get("/version").await;
    assert_eq!(r.text, "3.18.0");
    for path in [
        "/api/3.0/mlflow/server-info",
        "/ajax-api/3.0/mlflow/server-info",
    ] {
        let v = app.get(path).await.ok();
        assert_eq!(v["store_type"], "SqlStore");
        assert_eq!(v["workspaces_enabled"], false);
        assert_eq!(v["multipart_uploads_enabled"], false);
        assert_eq!(v["artifact_serving_enabled"], true);
    }
    let app = App::with(ServerInfo {
        serve_artifacts: false,
        ..ServerInfo::default()
    });
    let v = app.get("/api/3.0/mlflow/server-info").await.ok();
    assert_eq!(v["artifact_serving_enabled"], false);
}

#[tokio::test]
async fn unknown_routes_are_json_404_and_unimplemented_ones_501() {
    let app = App::new();
    let msg = app.get("nope").await.error(404, "ENDPOINT_NOT_FOUND");
    assert!(msg.contains("/api/2.0/mlflow/nope"), "{msg}");
    // `/` is the web UI (see the_web_ui_is_served_at_the_root_and_under_the_static_prefix).
    app.get("/nope").await.error(404, "ENDPOINT_NOT_FOUND");
    // The broken proto path of search-datasets is not served, as in MLflow.
    app.post("/api/2.0mlflow/experiments/search-datasets", json!({}))
        .await
        .error(404, "ENDPOINT_NOT_FOUND");
    app.get("runs/create").await.error(405, "BAD_REQUEST");
    for (method, path) in [
        (
            Method::POST,
            "/api/2.0/mlflow/artifacts/presigned-upload-url",
        ),
        // The proxy of a router built without a destination (tests/artifacts.rs covers it).
        (Method::GET, "/api/2.0/mlflow-artifacts/artifacts/x/y.txt"),
    ] {
        app.call(method, path, json!({}))
            .await
            .error(501, "NOT_IMPLEMENTED");
    }
    let r = app.get("unified-traces").await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::NOT_FOUND, ""));
    let app = App::with(ServerInfo {
        serve_artifacts: false,
        ..ServerInfo::default()
    });
    let r = app.get("/api/2.0/mlflow-artifacts/artifacts/x").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

// ----- request safety ---------------------------------------------------------------------------

#[tokio::test]
async fn host_header_is_checked_against_the_allowlist() {
    let app = App::new();
    let get = |host: &'static str, path: &'static str| {
        Request::builder()
            .uri(path)
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    };
    let r = app
        .send(get(
            "evil.example:5000",
            "/api/2.0/mlflow/experiments/search",
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.text,
        "Invalid Host header - possible DNS rebinding attack detected"
    );
    assert_eq!(r.headers["x-frame-options"], "SAMEORIGIN");
    // Health probes are exempt; local names pass.
    assert_eq!(
        app.send(get("evil.example", "/health")).await.status,
        StatusCode::OK
    );
    let r = app
        .send(get("localhost:5000", "/api/2.0/mlflow/experiments/search"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let app = App::with(ServerInfo {
        allowed_hosts: AllowedHosts::new(&["mlflow.example.com".into()], "0.0.0.0"),
        ..ServerInfo::default()
    });
    let r = app
        .send(get(
            "mlflow.example.com:443",
            "/api/2.0/mlflow/experiments/search",
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .send(get("localhost", "/api/2.0/mlflow/experiments/search"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// A request to `uri` from a browser page at `origin` (when given), with a JSON body for the
/// methods that carry one.
fn from_origin(method: Method, uri: &str, origin: Option<&str>, body: Value) -> Request<Body> {
    let mut req = Request::builder()
        .method(method.clone())
        .uri(uri)
        .header(header::HOST, "127.0.0.1:5000");
    if let Some(origin) = origin {
        req = req.header(header::ORIGIN, origin);
    }
    if method == Method::GET || method == Method::OPTIONS {
        req.body(Body::empty()).unwrap()
    } else {
        req.header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }
}

#[track_caller]
fn assert_cross_origin_blocked(r: &Reply) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.text, "Cross-origin request blocked");
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        r.headers
    );
    assert!(!r.headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
}

#[tokio::test]
async fn cross_origin_state_changes_are_refused_unless_the_origin_is_local() {
    let app = App::new();
    let create = api("experiments/create");
    for origin in [
        "http://localhost:3000",
        "http://127.0.0.1:5000",
        "http://[::1]",
    ] {
        let r = app
            .send(from_origin(
                Method::POST,
                &create,
                Some(origin),
                json!({"name": format!("local {origin}")}),
            ))
            .await;
        r.ok();
        assert_eq!(r.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], origin);
        assert_eq!(r.headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(r.headers[header::VARY], "Origin");
    }
    for origin in [
        "http://evil.example.com",
        "null",
        "http://localhost.evil.com",
    ] {
        let r = app
            .send(from_origin(
                Method::POST,
                &create,
                Some(origin),
                json!({"name": "forged"}),
            ))
            .await;
        assert_cross_origin_blocked(&r);
    }
    // Nothing was created by the refused requests.
    app.get("experiments/get-by-name?experiment_name=forged")
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
    let id = app.experiment("target").await;
    for (method, uri) in [
        (Method::POST, "/ajax-api/2.0/mlflow/experiments/delete"),
        (Method::PATCH, "/api/2.0/mlflow/logged-models/m-1"),
        (Method::DELETE, "/api/2.0/mlflow/logged-models/m-1"),
    ] {
        let r = app
            .send(from_origin(
                method,
                uri,
                Some("http://evil.example.com"),
                json!({"experiment_id": id}),
            ))
            .await;
        assert_cross_origin_blocked(&r);
    }
    app.get(&format!("experiments/get?experiment_id={id}"))
        .await
        .ok();
    // Reads from any origin pass (without CORS headers for a foreign one), and so does a
    // request with no Origin at all, as the official client sends.
    let r = app
        .send(from_origin(
            Method::GET,
            &api(&format!("experiments/get?experiment_id={id}")),
            Some("http://evil.example.com"),
            json!({}),
        ))
        .await;
    assert_eq!(r.ok()["experiment"]["name"], "target");
    assert!(!r.headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    let r = app
        .send(from_origin(
            Method::POST,
            &create,
            None,
            json!({"name": "plain"}),
        ))
        .await;
    r.ok();
    assert!(!r.headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    // Only API paths are checked.
    let r = app
        .send(from_origin(
            Method::POST,
            "/health",
            Some("http://evil.example.com"),
            json!({}),
        ))
        .await;
    r.error(405, "BAD_REQUEST");
}

#[tokio::test]
async fn options_on_the_api_answers_204_with_cors_headers_for_allowed_origins() {
    let app = App::new();
    let create = api("experiments/create");
    let preflight = |origin: &str| {
        let mut req = from_origin(Method::OPTIONS, &create, Some(origin), json!({}));
        let h = req.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            "POST".parse().unwrap(),
        );
        h.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type, x-custom".parse().unwrap(),
        );
        req
    };
    let r = app.send(preflight("http://localhost:3000")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.text, "");
    let h = &r.headers;
    assert_eq!(
        h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "http://localhost:3000"
    );
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    assert_eq!(
        h[header::ACCESS_CONTROL_ALLOW_METHODS],
        "GET, POST, PUT, DELETE, OPTIONS, PATCH"
    );
    assert_eq!(
        h[header::ACCESS_CONTROL_ALLOW_HEADERS],
        "content-type, x-custom"
    );
    assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
    assert_eq!(h["x-content-type-options"], "nosniff");
    // A foreign origin's preflight gets no grant, so the browser never sends the request.
    let r = app.send(preflight("http://evil.example.com")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for name in [
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ] {
        assert!(!r.headers.contains_key(&name), "{name}: {:?}", r.headers);
    }
    // A bare OPTIONS is answered too, on either API path spelling.
    for uri in [
        api("runs/log-batch"),
        "/ajax-api/2.0/mlflow/runs/log-batch".into(),
    ] {
        let r = app
            .send(from_origin(Method::OPTIONS, &uri, None, json!({})))
            .await;
        assert_eq!((r.status, r.text.as_str()), (StatusCode::NO_CONTENT, ""));
    }
}

#[tokio::test]
async fn configured_origins_are_allowed_and_star_allows_every_origin() {
    let app = App::with(ServerInfo {
        allowed_origins: AllowedOrigins::new(&[
            "https://app.example.com".into(),
            "https://*.corp.test".into(),
        ]),
        static_prefix: Some("/mlflow".into()),
        ..ServerInfo::default()
    });
    let create = "/mlflow/api/2.0/mlflow/experiments/create";
    for (i, origin) in [
        "https://app.example.com",
        "https://team.corp.test",
        "http://localhost:3000",
    ]
    .into_iter()
    .enumerate()
    {
        let r = app
            .send(from_origin(
                Method::POST,
                create,
                Some(origin),
                json!({"name": format!("configured {i}")}),
            ))
            .await;
        r.ok();
        assert_eq!(r.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], origin);
    }
    for origin in [
        "https://other.example.com",
        "http://app.example.com",
        "null",
    ] {
        let r = app
            .send(from_origin(
                Method::POST,
                create,
                Some(origin),
                json!({"name": "forged"}),
            ))
            .await;
        assert_cross_origin_blocked(&r);
    }

    let app = App::with(ServerInfo {
        allowed_origins: AllowedOrigins::new(&["*".into()]),
        ..ServerInfo::default()
    });
    for (i, origin) in ["http://evil.example.com", "null"].into_iter().enumerate() {
        let r = app
            .send(from_origin(
                Method::POST,
                &api("experiments/create"),
                Some(origin),
                json!({"name": format!("any {i}")}),
            ))
            .await;
        r.ok();
        assert_eq!(r.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        // A wildcard grant never carries credentials (the CORS spec forbids both).
        assert!(
            !r.headers
                .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
        );
    }
}

#[tokio::test]
async fn post_needs_a_json_content_type() {
    let app = App::new();
    let body = json!({"name": "x"}).to_string();
    let uri = api("experiments/create");
    let r = app.raw(Method::POST, &uri, None, body.clone()).await;
    assert_eq!(
        r.error(400, "INVALID_PARAMETER_VALUE"),
        "Bad Request. Content-Type header is missing."
    );
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let r = app.raw(Method::POST, &uri, Some(ct), body.clone()).await;
        assert_eq!(
            r.error(400, "INVALID_PARAMETER_VALUE"),
            "Bad Request. Content-Type must be one of ['application/json']."
        );
    }
    let r = app
        .raw(
            Method::POST,
            &uri,
            Some("application/json; charset=utf-8"),
            body,
        )
        .await;
    r.ok();
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_json() {
    let app = App::with(ServerInfo {
        body_limit: 1024,
        ..ServerInfo::default()
    });
    let big = json!({"name": "x".repeat(2000)});
    let msg = app
        .post("experiments/create", big)
        .await
        .error(413, "INVALID_PARAMETER_VALUE");
    assert!(msg.contains("1024"), "{msg}");
    // A declared oversize body is refused before it is read.
    let req = Request::builder()
        .method(Method::POST)
        .uri(api("experiments/create"))
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, "1000000")
        .body(Body::from("{}"))
        .unwrap();
    app.send(req).await.error(413, "INVALID_PARAMETER_VALUE");
    app.post("experiments/create", json!({"name": "small"}))
        .await
        .ok();
}

#[tokio::test]
async fn malformed_and_odd_bodies() {
    let app = App::new();
    let uri = api("experiments/create");
    let r = app
        .raw(Method::POST, &uri, Some("application/json"), "{\"name\": ")
        .await;
    let msg = r.error(400, "INVALID_PARAMETER_VALUE");
    assert!(msg.starts_with("Malformed JSON"), "{msg}");
    // Empty body: {} → the required field is missing.
    let r = app
        .raw(Method::POST, &uri, Some("application/json"), "")
        .await;
    assert_eq!(r.error(400, "INVALID_PARAMETER_VALUE"), missing("name"));
    // A double-encoded body is decoded twice.
    let double = serde_json::to_string(&json!({"name": "twice"}).to_string()).unwrap();
    let r = app
        .raw(Method::POST, &uri, Some("application/json"), double)
        .await;
    let id = r.ok()["experiment_id"].as_str().unwrap().to_owned();
    let v = app
        .get(&format!("experiments/get?experiment_id={id}"))
        .await
        .ok();
    assert_eq!(v["experiment"]["name"], "twice");
    // A wrong type names the parameter.
    let msg = app
        .post("experiments/create", json!({"name": 5}))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(
        msg,
        format!(
            "Invalid value 5 for parameter 'name' supplied: Hint: Value was of type 'int'. \
             {MISSING_SUFFIX}"
        )
    );
}

#[tokio::test]
async fn camel_case_names_are_accepted_and_both_spellings_refused() {
    let app = App::new();
    let id = app.experiment("camel").await;
    let r = app
        .post(
            "runs/create",
            json!({"experimentId": id, "runName": "cc", "startTime": "1700000000000"}),
        )
        .await
        .ok();
    assert_eq!(r["run"]["info"]["run_name"], "cc");
    assert_eq!(r["run"]["info"]["start_time"], 1_700_000_000_000_i64);
    let msg = app
        .post(
            "runs/create",
            json!({"experiment_id": id, "experimentId": id}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(
        msg,
        "Request specifies both 'experiment_id' and 'experimentId'; provide only one of them."
    );
}

// ----- experiments ------------------------------------------------------------------------------

#[tokio::test]
async fn experiment_lifecycle() {
    let app = App::new();
    let r = app
        .post(
            "experiments/create",
            json!({"name": "exp", "tags": [{"key": "a", "value": "b"}]}),
        )
        .await
        .ok();
    let id = r["experiment_id"].as_str().unwrap().to_owned();
    let msg = app
        .post("experiments/create", json!({"name": "exp"}))
        .await
        .error(400, "RESOURCE_ALREADY_EXISTS");
    assert!(msg.contains("already exists"), "{msg}");
    assert_eq!(
        app.post("experiments/create", json!({}))
            .await
            .error(400, "INVALID_PARAMETER_VALUE"),
        missing("name")
    );

    let v = app
        .get(&format!("experiments/get?experiment_id={id}"))
        .await
        .ok();
    let e = &v["experiment"];
    assert_eq!(e["name"], "exp");
    assert_eq!(e["lifecycle_stage"], "active");
    assert_eq!(e["artifact_location"], format!("mlflow-artifacts:/{id}"));
    assert_eq!(e["tags"], json!([{"key": "a", "value": "b"}]));
    assert!(e["creation_time"].is_i64());
    app.get("experiments/get")
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    app.get("experiments/get?experiment_id=999")
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
    // The AJAX path is the same handler.
    app.get(&format!(
        "/ajax-api/2.0/mlflow/experiments/get?experiment_id={id}"
    ))
    .await
    .ok();

    let v = app
        .get("experiments/get-by-name?experiment_name=exp")
        .await
        .ok();
    assert_eq!(v["experiment"]["experiment_id"], id.as_str());
    assert_eq!(
        app.get("experiments/get-by-name?experiment_name=zz")
            .await
            .error(404, "RESOURCE_DOES_NOT_EXIST"),
        "Could not find experiment with name 'zz'"
    );

    app.post(
        "experiments/set-experiment-tag",
        json!({"experiment_id": id, "key": "k", "value": "v"}),
    )
    .await
    .ok();
    app.post(
        "experiments/delete-experiment-tag",
        json!({"experiment_id": id, "key": "k"}),
    )
    .await
    .ok();
    app.post(
        "experiments/delete-experiment-tag",
        json!({"experiment_id": id, "key": "k"}),
    )
    .await
    .error(404, "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(
        app.post(
            "experiments/set-experiment-tag",
            json!({"experiment_id": id})
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE"),
        missing("key")
    );

    assert_eq!(
        app.post("experiments/update", json!({"experiment_id": id}))
            .await
            .error(400, "INVALID_PARAMETER_VALUE"),
        missing("new_name")
    );
    app.post(
        "experiments/update",
        json!({"experiment_id": id, "new_name": "exp2"}),
    )
    .await
    .ok();
    assert_eq!(
        app.post("experiments/delete", json!({"experiment_id": id}))
            .await
            .ok(),
        json!({})
    );
    app.post("experiments/delete", json!({"experiment_id": id}))
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
    app.post(
        "experiments/update",
        json!({"experiment_id": id, "new_name": "exp3"}),
    )
    .await
    .error(500, "INVALID_STATE");
    app.post("experiments/restore", json!({"experiment_id": id}))
        .await
        .ok();
    let v = app
        .get(&format!("experiments/get?experiment_id={id}"))
        .await
        .ok();
    assert_eq!(v["experiment"]["name"], "exp2");
    app.post(
        "experiments/create",
        json!({"name": "x", "artifact_location": "runs:/abc"}),
    )
    .await
    .error(400, "INVALID_PARAMETER_VALUE");
}

/// A relative local artifact_location is made absolute against the server's working directory,
/// as MLflow does; absolute ones and other schemes are kept (issue 9 §6b).
#[tokio::test]
async fn relative_artifact_locations_are_made_absolute() {
    let app = App::with(ServerInfo {
        artifact_schemes: vec!["file".into(), "s3".into()],
        ..ServerInfo::default()
    });
    let cwd = std::env::current_dir().unwrap();
    for (i, (given, expected)) in [
        ("my_location", cwd.join("my_location").display().to_string()),
        (
            "file:rel/dir",
            format!("file:{}", cwd.join("rel/dir").display()),
        ),
        ("/abs/dir", "/abs/dir".to_owned()),
        ("s3://bucket/dir", "s3://bucket/dir".to_owned()),
    ]
    .into_iter()
    .enumerate()
    {
        let id = app
            .post(
                "experiments/create",
                json!({"name": format!("rel{i}"), "artifact_location": given}),
            )
            .await
            .ok()["experiment_id"]
            .clone();
        let e = app
            .get(&format!(
                "experiments/get?experiment_id={}",
                id.as_str().unwrap()
            ))
            .await
            .ok();
        assert_eq!(
            e["experiment"]["artifact_location"],
            expected.as_str(),
            "{given}"
        );
    }
}

#[tokio::test]
async fn artifact_locations_on_foreign_hosts_are_refused() {
    let app = App::with(ServerInfo {
        artifact_schemes: vec!["file".into(), "s3".into()],
        ..ServerInfo::default()
    });
    for (location, scheme) in [
        ("mlflow-artifacts://attacker:8080/x", "mlflow-artifacts"),
        ("http://169.254.169.254/latest/meta-data", "http"),
        ("https://attacker.example/x", "https"),
        ("ftp://attacker/x", "ftp"),
        ("sftp://attacker/x", "sftp"),
        ("hdfs://attacker:9000/x", "hdfs"),
    ] {
        let msg = app
            .post(
                "experiments/create",
                json!({"name": location, "artifact_location": location}),
            )
            .await
            .error(400, "INVALID_PARAMETER_VALUE");
        assert!(
            msg.starts_with(&format!(
                "'artifact_location' cannot use the '{scheme}' scheme"
            )),
            "{msg}"
        );
    }
    for (i, location) in [
        "mlflow-artifacts:/elsewhere",
        "s3://bucket/prefix",
        "/srv/artifacts",
        "file:///srv/artifacts",
    ]
    .into_iter()
    .enumerate()
    {
        let id = app
            .post(
                "experiments/create",
                json!({"name": format!("ok{i}"), "artifact_location": location}),
            )
            .await
            .ok()["experiment_id"]
            .clone();
        let v = app
            .get(&format!(
                "experiments/get?experiment_id={}",
                id.as_str().unwrap()
            ))
            .await
            .ok();
        assert_eq!(v["experiment"]["artifact_location"], location);
    }
}

#[tokio::test]
async fn custom_view_tags_are_capped_at_50() {
    let app = App::new();
    let tags: Vec<Value> = (0..51)
        .map(|i| json!({"key": format!("mlflow.customView.view{i}"), "value": "{}"}))
        .collect();
    let msg = app
        .post(
            "experiments/create",
            json!({"name": "v", "tags": tags[..51]}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert!(msg.contains("maximum number of custom views"), "{msg}");
    let r = app
        .post(
            "experiments/create",
            json!({"name": "v", "tags": tags[..50]}),
        )
        .await
        .ok();
    let id = r["experiment_id"].as_str().unwrap();
    let msg = app
        .post(
            "experiments/set-experiment-tag",
            json!({"experiment_id": id, "key": "mlflow.customView.view99", "value": "{}"}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert!(msg.contains(&format!("for experiment {id}")), "{msg}");
    // Overwriting an existing view is allowed at the cap.
    app.post(
        "experiments/set-experiment-tag",
        json!({"experiment_id": id, "key": "mlflow.customView.view3", "value": "{\"a\":1}"}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn experiment_search_by_post_and_get() {
    let app = App::new();
    for name in ["s-a", "s-b", "s-c", "other"] {
        app.experiment(name).await;
    }
    let v = app
        .post(
            "experiments/search",
            json!({"filter": "name LIKE 's-%' OR name = 'other'", "order_by": ["name DESC"], "max_results": 2}),
        )
        .await
        .ok();
    let names: Vec<&str> = v["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["s-c", "s-b"]);
    let token = v["next_page_token"].as_str().unwrap();
    let v = app
        .post(
            "experiments/search",
            json!({"filter": "name LIKE 's-%' OR name = 'other'", "order_by": ["name DESC"], "max_results": 2, "page_token": token}),
        )
        .await
        .ok();
    assert_eq!(v["experiments"].as_array().unwrap().len(), 2);
    assert!(v.get("next_page_token").is_none(), "{v}");

    // GET with repeated order_by keys and an enum by name.
    let v = app
        .get("experiments/search?filter=name%20LIKE%20%27s-%25%27&order_by=name%20ASC&order_by=experiment_id&view_type=ACTIVE_ONLY&max_results=10")
        .await
        .ok();
    assert_eq!(v["experiments"][0]["name"], "s-a");
    // Default max_results (1000) applies; Default is there too.
    let v = app.get("experiments/search").await.ok();
    assert_eq!(v["experiments"].as_array().unwrap().len(), 5);
    let v = app
        .get("experiments/search?view_type=DELETED_ONLY")
        .await
        .ok();
    assert_eq!(v, json!({}));

    for bad in [json!({"max_results": 0}), json!({"max_results": 50001})] {
        let msg = app
            .post("experiments/search", bad)
            .await
            .error(400, "INVALID_PARAMETER_VALUE");
        assert!(msg.contains("max_results"), "{msg}");
    }
    app.post("experiments/search", json!({"filter": "name >> 1"}))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    app.post("experiments/search", json!({"page_token": "garbage!"}))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    app.get("experiments/search?view_type=SOMETIMES")
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
}

// ----- runs -------------------------------------------------------------------------------------

#[tokio::test]
async fn run_lifecycle_and_logging() {
    let app = App::new();
    let exp = app.experiment("runs").await;
    let v = app
        .post(
            "runs/create",
            json!({"experiment_id": exp, "run_name": "first", "user_id": "ann", "start_time": 5,
                   "tags": [{"key": "t", "value": "1"}]}),
        )
        .await
        .ok();
    let info = &v["run"]["info"];
    let id = info["run_id"].as_str().unwrap().to_owned();
    assert_eq!(info["run_uuid"], id.as_str());
    assert_eq!(info["status"], "RUNNING");
    assert_eq!(info["user_id"], "ann");
    assert_eq!(info["start_time"], 5);
    assert_eq!(
        info["artifact_uri"],
        format!("mlflow-artifacts:/{exp}/{id}/artifacts")
    );
    // An empty experiment id means the Default experiment.
    let v = app.post("runs/create", json!({})).await.ok();
    assert_eq!(v["run"]["info"]["experiment_id"], "0");
    app.post("runs/create", json!({"experiment_id": "424242"}))
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");

    let ok = |r: Reply| assert_eq!(r.ok(), json!({}));
    ok(app
        .post(
            "runs/log-metric",
            json!({"run_id": id, "key": "m", "value": 1.5, "timestamp": 10, "step": 1}),
        )
        .await);
    ok(app
        .post(
            "runs/log-metric",
            json!({"run_uuid": id, "key": "nan", "value": "NaN", "timestamp": "11"}),
        )
        .await);
    ok(app
        .post(
            "runs/log-metric",
            json!({"run_id": id, "key": "inf", "value": "Infinity", "timestamp": 12}),
        )
        .await);
    ok(app
        .post(
            "runs/log-metric",
            json!({"run_id": id, "key": "ninf", "value": "-Infinity", "timestamp": 12}),
        )
        .await);
    ok(app
        .post(
            "runs/log-parameter",
            json!({"run_id": id, "key": "p", "value": "x"}),
        )
        .await);
    ok(app
        .post(
            "runs/set-tag",
            json!({"run_id": id, "key": "k", "value": "v"}),
        )
        .await);
    ok(app
        .post("runs/delete-tag", json!({"run_id": id, "key": "t"}))
        .await);
    app.post("runs/delete-tag", json!({"run_id": id, "key": "t"}))
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
    let msg = app
        .post(
            "runs/log-parameter",
            json!({"run_id": id, "key": "p", "value": "y"}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert!(
        msg.starts_with("Changing param values is not allowed"),
        "{msg}"
    );
    for (body, param) in [
        (json!({"key": "m", "value": 1, "timestamp": 1}), "run_id"),
        (json!({"run_id": id, "value": 1, "timestamp": 1}), "key"),
        (json!({"run_id": id, "key": "m", "timestamp": 1}), "value"),
        (json!({"run_id": id, "key": "m", "value": 1}), "timestamp"),
    ] {
        assert_eq!(
            app.post("runs/log-metric", body)
                .await
                .error(400, "INVALID_PARAMETER_VALUE"),
            missing(param)
        );
    }
    let msg = app
        .post(
            "runs/log-metric",
            json!({"run_id": id, "key": "m", "value": true, "timestamp": 1}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert!(msg.contains("'value'") && msg.contains("'bool'"), "{msg}");

    let v = app.get(&format!("runs/get?run_id={id}")).await.ok();
    let data = &v["run"]["data"];
    let metric = |k: &str| {
        data["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == k)
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(metric("m"), 1.5);
    assert_eq!(metric("nan"), "NaN");
    assert_eq!(metric("inf"), "Infinity");
    assert_eq!(metric("ninf"), "-Infinity");
    assert_eq!(data["params"], json!([{"key": "p", "value": "x"}]));
    assert!(
        data["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "k")
    );
    assert_eq!(v["run"]["info"]["run_uuid"], id.as_str());
    // run_uuid works as the deprecated spelling.
    app.get(&format!("runs/get?run_uuid={id}")).await.ok();
    assert_eq!(
        app.get("runs/get")
            .await
            .error(400, "INVALID_PARAMETER_VALUE"),
        missing("run_id")
    );
    assert_eq!(
        app.get(&format!("runs/get?run_id={}", "0".repeat(32)))
            .await
            .error(404, "RESOURCE_DOES_NOT_EXIST"),
        format!("Run with id={} not found", "0".repeat(32))
    );

    let v = app
        .post(
            "runs/update",
            json!({"run_id": id, "status": "FINISHED", "end_time": 99, "run_name": "renamed"}),
        )
        .await
        .ok();
    assert_eq!(v["run_info"]["status"], "FINISHED");
    assert_eq!(v["run_info"]["end_time"], 99);
    assert_eq!(v["run_info"]["run_name"], "renamed");
    assert_eq!(v["run_info"]["run_uuid"], id.as_str());
    // Enums by number.
    let v = app
        .post("runs/update", json!({"run_uuid": id, "status": 4}))
        .await
        .ok();
    assert_eq!(v["run_info"]["status"], "FAILED");
    app.post("runs/update", json!({"run_id": id, "status": "BOGUS"}))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");

    ok(app.post("runs/delete", json!({"run_id": id})).await);
    let v = app.get(&format!("runs/get?run_id={id}")).await.ok();
    assert_eq!(v["run"]["info"]["lifecycle_stage"], "deleted");
    let msg = app
        .post(
            "runs/set-tag",
            json!({"run_id": id, "key": "a", "value": "b"}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert!(msg.contains("must be in the 'active' state"), "{msg}");
    ok(app.post("runs/restore", json!({"run_id": id})).await);
    app.post("runs/delete", json!({}))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn log_batch_checks_fields_and_limits() {
    let app = App::new();
    let exp = app.experiment("batch").await;
    let id = app.run(&exp).await;
    let metrics: Vec<Value> = (0..5)
        .map(|i| json!({"key": "loss", "value": i, "timestamp": i, "step": i}))
        .collect();
    app.post(
        "runs/log-batch",
        json!({"run_id": id, "metrics": metrics, "params": [{"key": "lr", "value": "0.1"}],
               "tags": [{"key": "mlflow.runName", "value": "batched"}]}),
    )
    .await
    .ok();
    let v = app.get(&format!("runs/get?run_id={id}")).await.ok();
    assert_eq!(v["run"]["info"]["run_name"], "batched");
    assert_eq!(v["run"]["data"]["metrics"][0]["value"], 4.0);

    for (body, path) in [
        (
            json!({"run_id": id, "metrics": [{"value": 1, "timestamp": 1}]}),
            "metrics[0].key",
        ),
        (
            json!({"run_id": id, "metrics": [{"key": "a", "value": 1, "timestamp": 1}, {"key": "a", "value": 1}]}),
            "metrics[1].timestamp",
        ),
        (
            json!({"run_id": id, "params": [{"value": "x"}]}),
            "params[0].key",
        ),
        (json!({"run_id": id, "tags": [{"key": ""}]}), "tags[0].key"),
        (json!({"metrics": []}), "run_id"),
    ] {
        assert_eq!(
            app.post("runs/log-batch", body)
                .await
                .error(400, "INVALID_PARAMETER_VALUE"),
            missing(path)
        );
    }
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"key": "m", "value": 1, "timestamp": i}))
        .collect();
    let msg = app
        .post("runs/log-batch", json!({"run_id": id, "metrics": too_many}))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert!(
        msg.starts_with("A batch logging request can contain at most 1000 metrics. Got 1001"),
        "{msg}"
    );
    let msg = app
        .post(
            "runs/log-batch",
            json!({"run_id": id, "params": [{"key": "d", "value": "1"}, {"key": "d", "value": "2"}]}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert!(msg.starts_with("Duplicate parameter keys"), "{msg}");
}

#[tokio::test]
async fn run_search_filters_orders_and_pages() {
    let app = App::new();
    let exp = app.experiment("search").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = app.run(&exp).await;
        app.post(
            "runs/log-batch",
            json!({"run_id": id, "metrics": [{"key": "acc", "value": i, "timestamp": 1}],
                   "params": [{"key": "i", "value": i.to_string()}]}),
        )
        .await
        .ok();
        ids.push(id);
    }
    let body = |extra: Value| {
        let mut b = json!({"experiment_ids": [exp], "filter": "metrics.acc >= 3 OR params.i = '0'",
                           "order_by": ["metrics.acc DESC"], "max_results": 2});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let v = app.post("runs/search", body(json!({}))).await.ok();
    let got: Vec<&str> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["info"]["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[4].as_str(), ids[3].as_str()]);
    assert!(v["runs"][0]["info"]["run_uuid"].is_string());
    let token = v["next_page_token"].as_str().unwrap().to_owned();
    let v = app
        .post("runs/search", body(json!({"page_token": token})))
        .await
        .ok();
    assert_eq!(v["runs"][0]["info"]["run_id"], ids[0].as_str());
    assert!(v.get("next_page_token").is_none());

    let v = app
        .post(
            "runs/search",
            json!({"experiment_ids": [exp], "run_view_type": "DELETED_ONLY"}),
        )
        .await
        .ok();
    assert_eq!(v, json!({}));
    for (bad, needle) in [
        (
            json!({"experiment_ids": [exp], "max_results": 50001}),
            "max_results",
        ),
        (
            json!({"experiment_ids": [exp], "filter": "metrics.acc > 'x'"}),
            "",
        ),
        (
            json!({"experiment_ids": [exp], "order_by": ["nonsense.x"]}),
            "",
        ),
        (json!({"experiment_ids": "0"}), "experiment_ids"),
    ] {
        let msg = app
            .post("runs/search", bad)
            .await
            .error(400, "INVALID_PARAMETER_VALUE");
        assert!(msg.contains(needle), "{msg}");
    }
}

// ----- metric histories -------------------------------------------------------------------------

#[tokio::test]
async fn metric_history_whole_and_paginated() {
    let app = App::with(ServerInfo {
        history_chunk: 7,
        ..ServerInfo::default()
    });
    let exp = app.experiment("hist").await;
    let id = app.run(&exp).await;
    let metrics: Vec<Value> = (0..30)
        .map(|i| json!({"key": "loss", "value": i, "timestamp": 100 + i, "step": i}))
        .collect();
    app.post("runs/log-batch", json!({"run_id": id, "metrics": metrics}))
        .await
        .ok();
    // Streamed whole history (30 values, read 7 at a time), ordered, no token.
    let v = app
        .get(&format!("metrics/get-history?run_id={id}&metric_key=loss"))
        .await
        .ok();
    let steps: Vec<i64> = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, (0..30).collect::<Vec<_>>());
    assert!(v.get("next_page_token").is_none());
    // Pages of 12 (more than one chunk): 12, 12, 6.
    let mut token: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let mut q = format!("metrics/get-history?run_id={id}&metric_key=loss&max_results=12");
        if let Some(t) = &token {
            q.push_str(&format!("&page_token={}", urlencode(t)));
        }
        let v = app.get(&q).await.ok();
        sizes.push(v["metrics"].as_array().unwrap().len());
        match v["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(sizes, [12, 12, 6]);
    // Unknown metric and unknown run: {} (as MLflow, issue 9 §6); bad max_results: 400.
    let v = app
        .get(&format!("metrics/get-history?run_id={id}&metric_key=none"))
        .await
        .ok();
    assert_eq!(v, json!({}));
    for unknown in ["f".repeat(32), "no-such-run".to_owned()] {
        let v = app
            .get(&format!(
                "metrics/get-history?run_id={unknown}&metric_key=loss"
            ))
            .await
            .ok();
        assert_eq!(v, json!({}), "{unknown}");
        let v = app
            .get(&format!(
                "/ajax-api/2.0/mlflow/metrics/get-history-bulk?run_id={unknown}&run_id={id}&metric_key=loss&max_results=3"
            ))
            .await
            .ok();
        assert_eq!(v["metrics"].as_array().map(Vec::len), Some(3), "{unknown}");
    }
    app.get(&format!(
        "metrics/get-history?run_id={id}&metric_key=loss&max_results=0"
    ))
    .await
    .error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(
        app.get(&format!("metrics/get-history?run_id={id}"))
            .await
            .error(400, "INVALID_PARAMETER_VALUE"),
        missing("metric_key")
    );
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn a_100000_point_history_is_streamed_whole() {
    let app = App::new();
    let exp = app.experiment("big").await;
    let id = app.run(&exp).await;
    for batch in 0..100 {
        let metrics: Vec<Value> = (0..1000)
            .map(|i| {
                let n = batch * 1000 + i;
                json!({"key": "x", "value": n, "timestamp": n, "step": n})
            })
            .collect();
        app.post("runs/log-batch", json!({"run_id": id, "metrics": metrics}))
            .await
            .ok();
    }
    let v = app
        .get(&format!("metrics/get-history?run_id={id}&metric_key=x"))
        .await
        .ok();
    let metrics = v["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 100_000);
    assert_eq!(metrics[99_999]["step"], 99_999);
    assert!(
        metrics
            .windows(2)
            .all(|w| w[0]["timestamp"].as_i64() < w[1]["timestamp"].as_i64())
    );
}

#[tokio::test]
async fn bulk_interval_and_bulk_history() {
    let app = App::new();
    let exp = app.experiment("bulk").await;
    let a = app.run(&exp).await;
    let b = app.run(&exp).await;
    for id in [&a, &b] {
        let metrics: Vec<Value> = (0..10)
            .map(|i| json!({"key": "m", "value": i, "timestamp": i, "step": i}))
            .collect();
        app.post("runs/log-batch", json!({"run_id": id, "metrics": metrics}))
            .await
            .ok();
    }
    for prefix in ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"] {
        let v = app
            .get(&format!(
                "{prefix}/metrics/get-history-bulk-interval?run_ids={a}&run_ids={b}&metric_key=m&max_results=3"
            ))
            .await
            .ok();
        let metrics = v["metrics"].as_array().unwrap();
        assert!(!metrics.is_empty() && metrics.len() <= 8, "{v}");
        assert!(
            metrics
                .iter()
                .all(|m| m["run_id"] == a.as_str() || m["run_id"] == b.as_str())
        );
        // Each run's minimum and maximum step are always kept.
        assert!(
            metrics
                .iter()
                .any(|m| m["step"] == 9 && m["run_id"] == a.as_str())
        );
    }
    let v = app
        .get(&format!(
            "metrics/get-history-bulk-interval?run_ids={a}&metric_key=m&start_step=2&end_step=4"
        ))
        .await
        .ok();
    let steps: Vec<i64> = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, [2, 3, 4]);
    let many: String = (0..101).map(|i| format!("run_ids=r{i}&")).collect();
    for (query, needle) in [
        (
            format!("{many}metric_key=m"),
            "at most 100 run_ids. Received 101 run_ids.",
        ),
        (
            format!("run_ids={a}&metric_key=m&max_results=2501"),
            "max_results must be between 1 and 2500.",
        ),
        (
            format!("run_ids={a}&metric_key=m&start_step=5&end_step=1"),
            "end_step must be greater than start_step",
        ),
        (
            format!("run_ids={a}&metric_key=m&start_step=5"),
            "both must be specified",
        ),
        ("metric_key=m".to_owned(), "'run_ids'"),
        (format!("run_ids={a}"), "'metric_key'"),
    ] {
        let msg = app
            .get(&format!("metrics/get-history-bulk-interval?{query}"))
            .await
            .error(400, "INVALID_PARAMETER_VALUE");
        assert!(msg.contains(needle), "{msg}");
    }

    // The AJAX-only bulk history: sorted by run id, capped by max_results overall.
    let v = app
        .get(&format!(
            "/ajax-api/2.0/mlflow/metrics/get-history-bulk?run_id={b}&run_id={a}&metric_key=m&max_results=15"
        ))
        .await
        .ok();
    let metrics = v["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 15);
    let first = a.as_str().min(b.as_str());
    assert!(metrics[..10].iter().all(|m| m["run_id"] == first));
    let msg = app
        .get("/ajax-api/2.0/mlflow/metrics/get-history-bulk?metric_key=m")
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(
        msg,
        "GetMetricHistoryBulk request must specify at least one run_id."
    );
    // Not served on the /api/ prefix.
    app.get(&format!("metrics/get-history-bulk?run_id={a}&metric_key=m"))
        .await
        .error(404, "ENDPOINT_NOT_FOUND");
}

// ----- inputs, outputs, datasets, log-model -----------------------------------------------------

#[tokio::test]
async fn inputs_outputs_and_dataset_search() {
    let app = App::new();
    let exp = app.experiment("data").await;
    let id = app.run(&exp).await;
    let dataset = json!({"tags": [{"key": "mlflow.data.context", "value": "training"}],
                         "dataset": {"name": "d", "digest": "abc", "sourceType": "local", "source": "{}"}});
    app.post(
        "runs/log-inputs",
        json!({"run_id": id, "datasets": [dataset]}),
    )
    .await
    .ok();
    let msg = app
        .post(
            "runs/log-inputs",
            json!({"run_id": id, "datasets": [{"dataset": {"name": "d", "digest": "x", "source_type": "local"}}]}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(msg, missing("datasets[0].dataset.source"));
    let v = app.get(&format!("runs/get?run_id={id}")).await.ok();
    assert_eq!(
        v["run"]["inputs"]["dataset_inputs"][0]["dataset"]["name"],
        "d"
    );

    let v = app
        .post(
            "/ajax-api/2.0/mlflow/experiments/search-datasets",
            json!({"experiment_ids": [exp]}),
        )
        .await
        .ok();
    assert_eq!(
        v["dataset_summaries"],
        json!([{"experiment_id": exp, "name": "d", "digest": "abc", "context": "training"}])
    );
    let msg = app
        .post(
            "/ajax-api/2.0/mlflow/experiments/search-datasets",
            json!({}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(
        msg,
        "SearchDatasets request must specify at least one experiment_id."
    );
    let ids: Vec<String> = (0..21).map(|i| i.to_string()).collect();
    let msg = app
        .post(
            "/ajax-api/2.0/mlflow/experiments/search-datasets",
            json!({"experiment_ids": ids}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert!(
        msg.contains("cannot specify more than 20 experiment_ids. Received 21"),
        "{msg}"
    );

    let model = app
        .post(
            "logged-models",
            json!({"experiment_id": exp, "source_run_id": id}),
        )
        .await
        .ok();
    let model_id = model["model"]["info"]["model_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        "runs/outputs",
        json!({"run_id": id, "models": [{"model_id": model_id, "step": 3}]}),
    )
    .await
    .ok();
    assert_eq!(
        app.post("runs/outputs", json!({"run_id": id}))
            .await
            .error(400, "INVALID_PARAMETER_VALUE"),
        missing("models")
    );
    let v = app.get(&format!("runs/get?run_id={id}")).await.ok();
    assert_eq!(
        v["run"]["outputs"]["model_outputs"],
        json!([{"model_id": model_id, "step": 3}])
    );
}

#[tokio::test]
async fn legacy_log_model_appends_to_the_history_tag() {
    let app = App::new();
    let exp = app.experiment("lm").await;
    let id = app.run(&exp).await;
    let model = json!({"artifact_path": "model", "run_id": id, "utc_time_created": "2024-01-01",
                       "flavors": {"python_function": {"loader_module": "x", "config": {"a": 1}}}});
    app.post(
        "runs/log-model",
        json!({"run_id": id, "model_json": model.to_string()}),
    )
    .await
    .ok();
    let v = app.get(&format!("runs/get?run_id={id}")).await.ok();
    let tag = v["run"]["data"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "mlflow.log-model.history")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let history: Value = serde_json::from_str(&tag).unwrap();
    assert_eq!(history[0]["artifact_path"], "model");
    assert_eq!(
        history[0]["flavors"]["python_function"],
        json!({"loader_module": "x"})
    );
    let msg = app
        .post(
            "runs/log-model",
            json!({"run_id": id, "model_json": "{\"flavors\": {}}"}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(
        msg,
        "Model json is missing mandatory fields: {'artifact_path', 'run_id', 'utc_time_created'}"
    );
    let msg = app
        .post(
            "runs/log-model",
            json!({"run_id": id, "model_json": "nope"}),
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert!(msg.starts_with("Malformed model info."), "{msg}");
}

// ----- logged models ----------------------------------------------------------------------------

#[tokio::test]
async fn logged_model_lifecycle_and_search() {
    let app = App::new();
    let exp = app.experiment("models").await;
    let v = app
        .post(
            "logged-models",
            json!({"experiment_id": exp, "name": "alpha", "model_type": "agent",
                   "params": [{"key": "p", "value": "1"}], "tags": [{"key": "t", "value": "1"}]}),
        )
        .await
        .ok();
    let info = &v["model"]["info"];
    let id = info["model_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("m-"));
    assert_eq!(info["status"], "LOGGED_MODEL_PENDING");
    assert_eq!(
        info["artifact_uri"],
        format!("mlflow-artifacts:/{exp}/models/{id}/artifacts")
    );
    assert_eq!(
        app.post("logged-models", json!({"name": "x"}))
            .await
            .error(400, "INVALID_PARAMETER_VALUE"),
        missing("experiment_id")
    );
    app.post(
        "logged-models",
        json!({"experiment_id": exp, "name": "bad/name"}),
    )
    .await
    .error(400, "INVALID_PARAMETER_VALUE");
    let beta = app
        .post(
            "logged-models",
            json!({"experiment_id": exp, "name": "beta"}),
        )
        .await
        .ok()["model"]["info"]["model_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let path = format!("logged-models/{id}");
    let v = app.get(&path).await.ok();
    assert_eq!(
        v["model"]["data"]["params"],
        json!([{"key": "p", "value": "1"}])
    );
    let v = app
        .call(
            Method::PATCH,
            &path,
            json!({"status": "LOGGED_MODEL_READY"}),
        )
        .await
        .ok();
    assert_eq!(v["model"]["info"]["status"], "LOGGED_MODEL_READY");
    let v = app
        .call(Method::PATCH, &path, json!({"model_id": id, "status": 3}))
        .await
        .ok();
    assert_eq!(v["model"]["info"]["status"], "LOGGED_MODEL_UPLOAD_FAILED");
    assert_eq!(
        app.call(Method::PATCH, &path, json!({}))
            .await
            .error(400, "INVALID_PARAMETER_VALUE"),
        missing("status")
    );

    app.call(
        Method::PATCH,
        &format!("{path}/tags"),
        json!({"tags": [{"key": "a/b", "value": "2"}]}),
    )
    .await
    .ok();
    app.post(
        &format!("{path}/params"),
        json!({"params": [{"key": "q", "value": "2"}]}),
    )
    .await
    .ok();
    let v = app.get(&path).await.ok();
    assert_eq!(v["model"]["info"]["tags"].as_array().unwrap().len(), 2);
    assert_eq!(v["model"]["data"]["params"].as_array().unwrap().len(), 2);
    // A tag key with a slash is the rest of the path.
    app.call(Method::DELETE, &format!("{path}/tags/a/b"), json!(null))
        .await
        .ok();
    let v = app.get(&path).await.ok();
    assert_eq!(
        v["model"]["info"]["tags"],
        json!([{"key": "t", "value": "1"}])
    );

    // Search: order_by objects, datasets, paging.
    let v = app
        .post(
            "logged-models/search",
            json!({"experiment_ids": [exp], "order_by": [{"field_name": "name", "ascending": false}], "max_results": 1}),
        )
        .await
        .ok();
    assert_eq!(v["models"][0]["info"]["model_id"], beta.as_str());
    let token = v["next_page_token"].as_str().unwrap().to_owned();
    let v = app
        .post(
            "logged-models/search",
            json!({"experiment_ids": [exp], "order_by": [{"field_name": "name", "ascending": false}], "max_results": 1, "page_token": token}),
        )
        .await
        .ok();
    assert_eq!(v["models"][0]["info"]["model_id"], id.as_str());
    let v = app
        .post(
            "logged-models/search",
            json!({"experiment_ids": [exp], "filter": "name = 'alpha' OR name = 'zeta'"}),
        )
        .await
        .ok();
    assert_eq!(v["models"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.post("logged-models/search", json!({}))
            .await
            .error(400, "INVALID_PARAMETER_VALUE"),
        missing("experiment_ids")
    );
    for (bad, needle) in [
        (
            json!({"experiment_ids": [exp], "order_by": [{"ascending": true}]}),
            "`field_name`",
        ),
        (
            json!({"experiment_ids": [exp], "order_by": [{"field_name": "metrics.a", "dataset_digest": "d"}]}),
            "`dataset_digest`",
        ),
        (
            json!({"experiment_ids": [exp], "datasets": [{"dataset_digest": "d"}]}),
            "datasets[0].dataset_name",
        ),
    ] {
        let msg = app
            .post("logged-models/search", bad)
            .await
            .error(400, "INVALID_PARAMETER_VALUE");
        assert!(msg.contains(needle), "{msg}");
    }
    app.post(
        "logged-models/search",
        json!({"experiment_ids": [exp], "datasets": [{"dataset_name": "d"}],
               "order_by": [{"field_name": "metrics.acc", "dataset_name": "d"}]}),
    )
    .await
    .ok();

    // Delete, then get: 404 unless allow_deleted.
    assert_eq!(
        app.call(Method::DELETE, &path, json!({})).await.ok(),
        json!({})
    );
    let msg = app.get(&path).await.error(404, "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(msg, format!("Logged model with ID '{id}' not found."));
    app.get(&format!("{path}?allow_deleted=true")).await.ok();
    app.get(&format!("{path}?allow_deleted=maybe"))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    app.call(Method::DELETE, &path, json!({}))
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
}

// ----- wire details on GET ----------------------------------------------------------------------

#[tokio::test]
async fn get_without_query_string_reads_the_json_body() {
    let app = App::new();
    let id = app.experiment("body-get").await;
    let r = app
        .call(Method::GET, "experiments/get", json!({"experimentId": id}))
        .await;
    assert_eq!(r.ok()["experiment"]["name"], "body-get");
}

#[tokio::test]
async fn static_prefix_moves_every_route() {
    let app = App::with(ServerInfo {
        static_prefix: Some("/mlflow".into()),
        ..ServerInfo::default()
    });
    assert_eq!(app.get("/mlflow/health").await.text, "OK");
    app.get("/mlflow/api/2.0/mlflow/experiments/search")
        .await
        .ok();
    app.get("/api/2.0/mlflow/experiments/search")
        .await
        .error(404, "ENDPOINT_NOT_FOUND");
}

// ----- a real socket ----------------------------------------------------------------------------

/// A server on a free port of 127.0.0.1: its address, the sender that stops it, and its task.
async fn serve_on_a_socket() -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(store(), &ServerInfo::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cairn_core::server::serve(listener, app, async {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

#[tokio::test]
async fn serves_over_tcp_and_shuts_down_gracefully() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, stop, server) = serve_on_a_socket().await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET /api/2.0/mlflow/experiments/get?experiment_id=0 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"name\":\"Default\""), "{response}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// Reads one HTTP/1.1 response with a `content-length` from `stream`: (status line, body).
async fn read_response(stream: &mut tokio::net::TcpStream) -> (String, String) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            if buf.len() >= end + 4 + length {
                let status = text.lines().next().unwrap().to_owned();
                return (status, text[end + 4..end + 4 + length].to_owned());
            }
        }
    }
}

#[tokio::test]
async fn refusals_that_need_no_body_still_read_it_and_keep_the_connection() {
    use tokio::io::AsyncWriteExt;
    let (addr, stop, server) = serve_on_a_socket().await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Larger than hyper's read buffer: left unread, it closed the connection.
    let body = format!("{{\"pad\": \"{}\"}}", "x".repeat(300_000));
    for (method, path, status) in [
        ("POST", "/api/2.0/mlflow/no-such-endpoint", "404"),
        ("DELETE", "/api/2.0/mlflow/experiments/create", "405"),
        (
            "POST",
            "/api/2.0/mlflow/artifacts/presigned-upload-url",
            "501",
        ),
        ("POST", "/api/2.0/mlflow/unified-traces", "404"),
        (
            "POST",
            "/ajax-api/2.0/mlflow/upload-artifact?run_id=&path=",
            "400",
        ),
    ] {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let (line, _) = read_response(&mut stream).await;
        assert!(
            line.starts_with(&format!("HTTP/1.1 {status}")),
            "{method} {path}: {line}"
        );
        // The same connection still answers.
        stream
            .write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (line, text) = read_response(&mut stream).await;
        assert!(
            line.starts_with("HTTP/1.1 200"),
            "after {method} {path}: {line}"
        );
        assert_eq!(text, "OK");
    }
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_stalled_request_body_fails_after_the_body_read_timeout() {
    let app = App::with(ServerInfo {
        body_read_timeout: std::time::Duration::from_millis(50),
        ..ServerInfo::default()
    });
    // One piece of the body, then nothing, ever.
    let first: Result<bytes::Bytes, std::io::Error> = Ok(bytes::Bytes::from_static(b"{\"name\""));
    let body = Body::from_stream(futures_util::StreamExt::chain(
        futures_util::stream::iter([first]),
        futures_util::stream::pending(),
    ));
    let reply = app
        .raw(
            Method::POST,
            &api("experiments/create"),
            Some("application/json"),
            body,
        )
        .await;
    assert_eq!(reply.status.as_u16(), 400, "{}", reply.text);
    assert_eq!(
        reply.json()["error_code"],
        "INVALID_PARAMETER_VALUE",
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn json_bodies_beyond_the_buffer_budget_wait_for_room() {
    use cairn_core::server::wire::BUFFERED_BODIES;
    let limit = 1024;
    let app = App::with(ServerInfo {
        body_limit: limit,
        ..ServerInfo::default()
    });
    // BUFFERED_BODIES requests declaring the largest body, each sending half of it and then
    // waiting: together they hold the whole budget.
    let mut senders = Vec::new();
    let mut holders = Vec::new();
    for _ in 0..BUFFERED_BODIES {
        let (tx, rx) =
            tokio::sync::mpsc::unbounded_channel::<Result<bytes::Bytes, std::io::Error>>();
        tx.send(Ok(bytes::Bytes::from(vec![b' '; limit / 2])))
            .unwrap();
        senders.push(tx);
        let rx = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let req = Request::builder()
            .method(Method::POST)
            .uri(api("experiments/create"))
            .header(header::HOST, "127.0.0.1:5000")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, limit.to_string())
            .body(Body::from_stream(rx))
            .unwrap();
        holders.push(tokio::spawn(app.router.clone().oneshot(req)));
    }
    let small = {
        let router = app.router.clone();
        tokio::spawn(async move {
            let body = json!({"name": "waits"}).to_string();
            let req = Request::builder()
                .method(Method::POST)
                .uri(api("experiments/create"))
                .header(header::HOST, "127.0.0.1:5000")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, body.len().to_string())
                .body(Body::from(body))
                .unwrap();
            router.oneshot(req).await.unwrap().status()
        })
    };
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!small.is_finished(), "a body was read beyond the budget");
    // One holder's client goes away: its room comes back and the waiting request runs.
    drop(senders.remove(0));
    assert_eq!(small.await.unwrap(), StatusCode::OK);
    drop(senders);
    for h in holders {
        let _ = h.await;
    }
}

// ----- the web UI (issue 13) --------------------------------------------------------------------

#[tokio::test]
async fn the_web_ui_is_served_at_the_root_and_under_the_static_prefix() {
    let app = App::new();
    let r = app.get("/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(r.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(r.text.contains(r#"<base href="/">"#), "{}", r.text);
    let js = r
        .text
        .split("static-files/")
        .nth(2)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let asset = app.get(&format!("/static-files/{js}")).await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(
        asset.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(asset.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");

    let app = App::with(ServerInfo {
        static_prefix: Some("/mlflow".into()),
        ..ServerInfo::default()
    });
    for page in ["/mlflow", "/mlflow/"] {
        let r = app.get(page).await;
        assert_eq!(r.status, StatusCode::OK, "{page}");
        assert!(r.text.contains(r#"<base href="/mlflow/">"#), "{}", r.text);
    }
    assert_eq!(
        app.get(&format!("/mlflow/static-files/{js}")).await.status,
        StatusCode::OK
    );
    app.get("/").await.error(404, "ENDPOINT_NOT_FOUND");
}

#[tokio::test]
async fn a_same_origin_state_change_passes_at_a_non_local_address_unless_every_host_is_allowed() {
    let lan = |hosts: AllowedHosts| {
        App::with(ServerInfo {
            allowed_hosts: hosts,
            ..ServerInfo::default()
        })
    };
    let request = |origin: &str, name: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/ajax-api/2.0/mlflow/experiments/create")
            .header(header::HOST, "10.0.0.5:5000")
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({ "name": name }).to_string()))
            .unwrap()
    };
    let app = lan(AllowedHosts::LoopbackAndPrivate { bind: None });
    app.send(request("http://10.0.0.5:5000", "from the UI"))
        .await
        .ok();
    assert_cross_origin_blocked(&app.send(request("http://10.0.0.6:5000", "other")).await);
    // With every Host allowed, the Host header proves nothing: only the origin policy counts.
    let app = lan(AllowedHosts::Any);
    assert_cross_origin_blocked(&app.send(request("http://10.0.0.5:5000", "any")).await);
}
