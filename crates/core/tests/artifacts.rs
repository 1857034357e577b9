//! Artifacts through the server's router (tower `oneshot`): the `mlflow-artifacts` proxy
//! (streamed upload and download, headers, listing, delete, multipart, presigned), the tracking
//! endpoints that read run and model artifacts, `upload-artifact`, `server-info`'s flags, and
//! path safety — every traversal encoding against every proxy endpoint.
//!
//! Repositories here are an in-memory test double registered under the scheme `mem`, so these
//! tests pin the server's behaviour whatever the file and S3 plugins do; those plugins prove
//! themselves with the conformance suite, and tests/compat runs the real thing end to end.
#![cfg(feature = "store-sqlite")]

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use cairn_core::Registry;
use cairn_core::config::Settings;
use cairn_core::registry::{Builder, Origin, PluginEntry};
use cairn_core::server::artifacts::Artifacts;
use cairn_core::server::{ServerInfo, router_with_artifacts};
use cairn_core::uri::Repositories;
use cairn_plugin_api::artifacts::{
    ArtifactCapabilities, ByteStream, CompletedPart, Download, MultipartCredential,
    MultipartUpload, PresignedUrl,
};
use cairn_plugin_api::entities::FileInfo;
use cairn_plugin_api::{ArtifactRepository, BuildContext, Error, ErrorKind, Result, TrackingStore};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

// ----- an in-memory repository ------------------------------------------------------------------

/// Files by path, shared by every repository built on the same "bucket" so a test can look
/// inside; each repository sees the files under its root.
#[derive(Default)]
struct Bucket {
    files: Mutex<BTreeMap<String, Bytes>>,
    /// Chunks received by the last `put`, to prove uploads arrive as a stream.
    last_put_chunks: Mutex<usize>,
    parts: Mutex<BTreeMap<(String, u32), Bytes>>,
    /// Downloads fail after their first chunk (a disk or a connection lost mid-transfer).
    fail_downloads: std::sync::atomic::AtomicBool,
}

struct MemRepo {
    root: String,
    prefix: String,
    bucket: Arc<Bucket>,
    caps: ArtifactCapabilities,
}

impl MemRepo {
    fn key(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_owned()
        } else if path.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }
}

#[cairn_plugin_api::async_trait]
impl ArtifactRepository for MemRepo {
    fn capabilities(&self) -> ArtifactCapabilities {
        self.caps
    }
    fn root_uri(&self) -> &str {
        &self.root
    }
    async fn put(&self, path: &str, mut body: ByteStream) -> Result<u64> {
        let mut data = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = body.next().await {
            data.extend_from_slice(&chunk?);
            chunks += 1;
        }
        *self.bucket.last_put_chunks.lock().unwrap() = chunks;
        let n = data.len() as u64;
        self.bucket
            .files
            .lock()
            .unwrap()
            .insert(self.key(path), Bytes::from(data));
        Ok(n)
    }
    async fn get(&self, path: &str) -> Result<Download> {
        let data = self
            .bucket
            .files
            .lock()
            .unwrap()
            .get(&self.key(path))
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no file {path}")))?;
        // Two chunks, so the response is really streamed from the repository.
        let half = data.len() / 2;
        let (a, b) = (data.slice(..half), data.slice(half..));
        let second = if self.bucket.fail_downloads.load(Ordering::SeqCst) {
            Err(Error::new(ErrorKind::Unavailable, "the disk went away"))
        } else {
            Ok(b)
        };
        Ok(Download {
            size: Some(data.len() as u64),
            body: Box::pin(futures_util::stream::iter([Ok(a), second])),
        })
    }
    async fn list(&self, path: Option<&str>) -> Result<Vec<FileInfo>> {
        let dir = self.key(path.unwrap_or_default());
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut out: BTreeMap<String, FileInfo> = BTreeMap::new();
        for (key, data) in self.bucket.files.lock().unwrap().iter() {
            let Some(rest) = key.strip_prefix(&prefix) else {
                continue;
            };
            let rel_dir = path.map(|p| format!("{p}/")).unwrap_or_default();
            match rest.split_once('/') {
                Some((child, _)) => {
                    out.insert(
                        child.to_owned(),
                        FileInfo {
                            path: format!("{rel_dir}{child}"),
                            is_dir: true,
                            file_size: None,
                        },
                    );
                }
                None => {
                    out.insert(
                        rest.to_owned(),
                        FileInfo {
                            path: format!("{rel_dir}{rest}"),
                            is_dir: false,
                            file_size: Some(data.len() as i64),
                        },
                    );
                }
            }
        }
        Ok(out.into_values().collect())
    }
    async fn delete(&self, path: Option<&str>) -> Result<()> {
        let key = self.key(path.unwrap_or_default());
        self.bucket
            .files
            .lock()
            .unwrap()
            .retain(|k, _| !(k == &key || k.starts_with(&format!("{key}/"))));
        Ok(())
    }
    async fn create_multipart_upload(&self, path: &str, num_parts: u32) -> Result<MultipartUpload> {
        if !self.caps.multipart_upload {
            return Err(Error::unsupported("multipart upload"));
        }
        Ok(MultipartUpload {
            upload_id: format!("up-{}", self.key(path)),
            credentials: (1..=num_parts)
                .map(|n| MultipartCredential {
                    part_number: n,
                    url: Some(format!(
                        "http://storage.invalid/{}?part={n}",
                        self.key(path)
                    )),
                    headers: BTreeMap::new(),
                })
                .collect(),
        })
    }
    async fn complete_multipart_upload(
        &self,
        path: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<()> {
        assert_eq!(upload_id, format!("up-{}", self.key(path)));
        let mut data = Vec::new();
        for p in parts {
            data.extend_from_slice(p.etag.as_bytes());
        }
        self.bucket
            .files
            .lock()
            .unwrap()
            .insert(self.key(path), Bytes::from(data));
        Ok(())
    }
    async fn abort_multipart_upload(&self, path: &str, _upload_id: &str) -> Result<()> {
        self.bucket
            .parts
            .lock()
            .unwrap()
            .retain(|(k, _), _| k != &self.key(path));
        Ok(())
    }
    async fn presigned_download_url(&self, path: &str, secs: u64) -> Result<PresignedUrl> {
        if !self.caps.presigned_urls {
            return Err(Error::unsupported("presigned URLs"));
        }
        Ok(PresignedUrl {
            url: format!("http://storage.invalid/{}?ttl={secs}", self.key(path)),
            headers: BTreeMap::new(),
        })
    }
}

/// A registry with the `mem` scheme: `mem://<anything>/<prefix>` is rooted at `<prefix>` of the
/// one shared bucket.
fn registry(bucket: Arc<Bucket>, caps: ArtifactCapabilities) -> Registry {
    let build = move |ctx: &BuildContext| -> Result<Arc<dyn ArtifactRepository>> {
        let uri = ctx.require_uri()?.to_owned();
        let rest = uri.strip_prefix("mem://").unwrap_or(&uri);
        let prefix = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
        Ok(Arc::new(MemRepo {
            root: uri.clone(),
            prefix: prefix.trim_matches('/').to_owned(),
            bucket: bucket.clone(),
            caps,
        }))
    };
    let mem = PluginEntry {
        name: "mem".into(),
        package: "test".into(),
        version: "0".into(),
        origin: Origin::BuiltIn,
        builder: Builder::ArtifactRepository(Arc::new(build)),
    };
    let builtin = Registry::builtin().unwrap();
    Registry::new(builtin.entries().cloned().chain([mem])).unwrap()
}

const PLAIN: ArtifactCapabilities = ArtifactCapabilities {
    multipart_upload: false,
    presigned_urls: false,
};
const CLOUD: ArtifactCapabilities = ArtifactCapabilities {
    multipart_upload: true,
    presigned_urls: true,
};

// ----- the app ----------------------------------------------------------------------------------

struct App {
    router: Router,
    bucket: Arc<Bucket>,
    store: Arc<dyn TrackingStore>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    #[track_caller]
    fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text());
        self.json()
    }
    #[track_caller]
    fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        let v = self.json();
        assert_eq!(v["error_code"], code, "{}", self.text());
        v["message"].as_str().unwrap().to_owned()
    }
}

impl App {
    fn new() -> Self {
        Self::with(ServerInfo::default(), PLAIN, "mlflow-artifacts:/")
    }

    /// A server with `info`, a destination `mem://dest/` of capabilities `caps`, and a tracking
    /// store whose experiments default to `default_root`.
    fn with(info: ServerInfo, caps: ArtifactCapabilities, default_root: &str) -> Self {
        let bucket = Arc::new(Bucket::default());
        let registry = Arc::new(registry(bucket.clone(), caps));
        let mut ctx = BuildContext::for_uri("sqlite://");
        ctx.default_artifact_root = Some(default_root.into());
        let store = registry.tracking_store("sqlite://", ctx).unwrap();
        let destination = info.serve_artifacts.then(|| {
            registry
                .artifact_repository("mem://dest/dest", BuildContext::for_uri("mem://dest/dest"))
                .unwrap()
        });
        let artifacts = Artifacts::new(
            Repositories::new(registry.clone(), Settings::default()),
            destination,
        );
        App {
            router: router_with_artifacts(store.clone(), &info, artifacts),
            bucket,
            store,
        }
    }

    fn file(&self, key: &str) -> Option<Bytes> {
        self.bucket.files.lock().unwrap().get(key).cloned()
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        ct: Option<&str>,
        body: impl Into<Body>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "127.0.0.1:5000");
        if let Some(ct) = ct {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        self.send(req.body(body.into()).unwrap()).await
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call(Method::GET, uri, None, Body::empty()).await
    }

    async fn put(&self, uri: &str, body: impl Into<Body>) -> Reply {
        self.call(Method::PUT, uri, Some("application/octet-stream"), body)
            .await
    }

    async fn post_json(&self, uri: &str, body: Value) -> Reply {
        self.call(
            Method::POST,
            uri,
            Some("application/json"),
            body.to_string(),
        )
        .await
    }

    async fn run(&self) -> (String, String) {
        let exp = self
            .store
            .create_experiment(cairn_plugin_api::tracking::CreateExperiment {
                name: format!("e-{}", uuid::Uuid::new_v4()),
                artifact_location: None,
                tags: vec![],
            })
            .await
            .unwrap();
        let v = self
            .post_json(
                "/api/2.0/mlflow/runs/create",
                json!({"experiment_id": exp, "start_time": 1}),
            )
            .await
            .ok();
        (exp, v["run"]["info"]["run_id"].as_str().unwrap().to_owned())
    }
}

const ART: &str = "/api/2.0/mlflow-artifacts/artifacts";

// ----- the proxy --------------------------------------------------------------------------------

#[tokio::test]
async fn upload_download_list_and_delete_through_the_proxy() {
    let app = App::new();
    let r = app
        .put(
            &format!("{ART}/1/r/artifacts/dir/data.bin"),
            vec![0u8, 1, 2, 255],
        )
        .await;
    assert_eq!(r.ok(), json!({}));
    assert_eq!(
        app.file("dest/1/r/artifacts/dir/data.bin")
            .unwrap()
            .as_ref(),
        [0u8, 1, 2, 255]
    );
    app.put(&format!("{ART}/1/r/artifacts/top.json"), "{}")
        .await
        .ok();

    let r = app.get(&format!("{ART}/1/r/artifacts/dir/data.bin")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_ref(), [0u8, 1, 2, 255]);
    assert_eq!(r.headers[header::CONTENT_LENGTH], "4");
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/octet-stream");
    assert_eq!(
        r.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=data.bin"
    );
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    let r = app.get(&format!("{ART}/1/r/artifacts/top.json")).await;
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/plain");

    // Listing answers basenames; directories have no size.
    let v = app.get(&format!("{ART}?path=1/r/artifacts")).await.ok();
    assert_eq!(
        v,
        json!({"files": [
            {"path": "dir", "is_dir": true},
            {"path": "top.json", "is_dir": false, "file_size": 2},
        ]})
    );
    // The /ajax-api/ twin, and the root.
    let v = app
        .get("/ajax-api/2.0/mlflow-artifacts/artifacts?path=1/r/artifacts/dir")
        .await
        .ok();
    assert_eq!(v["files"][0]["path"], "data.bin");
    let v = app.get(ART).await.ok();
    assert_eq!(v, json!({"files": [{"path": "1", "is_dir": true}]}));
    // A missing directory is {}.
    assert_eq!(app.get(&format!("{ART}?path=nope/x")).await.ok(), json!({}));

    // Missing file: 404 in MLflow's words; a directory: 400.
    let msg = app
        .get(&format!("{ART}/1/r/artifacts/nope.txt"))
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(msg, "No such artifact: '1/r/artifacts/nope.txt'");
    let msg = app
        .get(&format!("{ART}/1/r/artifacts/dir"))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(
        msg,
        "Artifact path refers to a directory, not a file: '1/r/artifacts/dir'"
    );

    // Delete is recursive.
    let r = app
        .call(
            Method::DELETE,
            &format!("{ART}/1/r/artifacts/dir"),
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(r.ok(), json!({}));
    assert!(app.file("dest/1/r/artifacts/dir/data.bin").is_none());
    assert!(app.file("dest/1/r/artifacts/top.json").is_some());
}

#[tokio::test]
async fn unicode_and_spaces_in_names_round_trip() {
    let app = App::new();
    let path = "1/r/artifacts/d%C3%A9j%C3%A0%20vu/%E6%97%A5%E6%9C%AC%20x.txt";
    app.put(&format!("{ART}/{path}"), "héllo").await.ok();
    assert_eq!(
        app.file("dest/1/r/artifacts/déjà vu/日本 x.txt")
            .unwrap()
            .as_ref(),
        "héllo".as_bytes()
    );
    let r = app.get(&format!("{ART}/{path}")).await;
    assert_eq!(r.text(), "héllo");
    assert_eq!(
        r.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\" x.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%20x.txt"
    );
    let v = app
        .get(&format!("{ART}?path=1/r/artifacts/d%C3%A9j%C3%A0%20vu"))
        .await
        .ok();
    assert_eq!(v["files"][0]["path"], "日本 x.txt");
}

#[tokio::test]
async fn uploads_stream_and_ignore_the_json_body_limit() {
    let info = ServerInfo {
        body_limit: 1024,
        ..ServerInfo::default()
    };
    let app = App::with(info, PLAIN, "mlflow-artifacts:/");
    // 64 chunks of 1 KiB: over the JSON limit, and delivered to the repository as a stream.
    let chunks: Vec<std::result::Result<Bytes, std::io::Error>> =
        (0..64u8).map(|i| Ok(Bytes::from(vec![i; 1024]))).collect();
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    app.put(&format!("{ART}/big.bin"), body).await.ok();
    let stored = app.file("dest/big.bin").unwrap();
    assert_eq!(stored.len(), 64 * 1024);
    assert_eq!(stored[1024 * 63], 63);
    assert!(
        *app.bucket.last_put_chunks.lock().unwrap() > 1,
        "the upload reached the repository in one piece: it was buffered"
    );
    // JSON endpoints keep the limit.
    let big = json!({"name": "x".repeat(2048)});
    app.post_json("/api/2.0/mlflow/experiments/create", big)
        .await
        .error(413, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn proxy_routes_answer_503_text_when_serving_is_off() {
    let info = ServerInfo {
        serve_artifacts: false,
        ..ServerInfo::default()
    };
    let app = App::with(info, PLAIN, "mlflow-artifacts:/");
    for (method, uri) in [
        (Method::GET, format!("{ART}/a/b.txt")),
        (Method::PUT, format!("{ART}/a/b.txt")),
        (Method::DELETE, format!("{ART}/a")),
        (Method::GET, ART.to_owned()),
        (Method::GET, format!("{ART}?path=a")),
        (
            Method::POST,
            "/ajax-api/2.0/mlflow-artifacts/mpu/create/a".to_owned(),
        ),
        (
            Method::GET,
            "/api/2.0/mlflow-artifacts/presigned/a/b".to_owned(),
        ),
    ] {
        let r = app.call(method.clone(), &uri, None, Body::empty()).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{method} {uri}");
        assert!(
            r.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert!(r.text().contains("--no-serve-artifacts"), "{}", r.text());
    }
    let v = app.get("/api/3.0/mlflow/server-info").await.ok();
    assert_eq!(v["artifact_serving_enabled"], false);
    assert_eq!(v["multipart_uploads_enabled"], false);
}

// ----- path safety ------------------------------------------------------------------------------

/// Every spelling of "outside the root" that MLflow's CVEs used, as it appears in a URL path.
const TRAVERSALS: &[&str] = &[
    "../secret.txt",
    "a/../../secret.txt",
    "..%5Csecret.txt",
    "a%5C..%5C..%5Csecret.txt",
    "%2e%2e%2fsecret.txt",
    "%2E%2E/secret.txt",
    "a/%2e%2e/%2e%2e/secret.txt",
    "%252e%252e%252fsecret.txt",
    "a/%25252e%25252e/secret.txt",
    "a;x=1/secret.txt",
    "secret.txt;jsessionid=1",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "a/%00/secret.txt",
    "secret%00.txt",
    "C:%5Cwindows%5Csecret.txt",
];

#[tokio::test]
async fn every_traversal_encoding_is_refused_by_every_proxy_endpoint() {
    let app = App::with(ServerInfo::default(), CLOUD, "mlflow-artifacts:/");
    app.put(&format!("{ART}/secret.txt"), "s").await.ok();
    for bad in TRAVERSALS {
        let cases = [
            (Method::GET, format!("{ART}/{bad}"), None),
            (Method::PUT, format!("{ART}/{bad}"), None),
            (Method::DELETE, format!("{ART}/{bad}"), None),
            (Method::GET, format!("{ART}?path={bad}"), None),
            (
                Method::GET,
                format!("/api/2.0/mlflow-artifacts/presigned/{bad}"),
                None,
            ),
            (
                Method::POST,
                format!("/api/2.0/mlflow-artifacts/mpu/create/{bad}"),
                Some(json!({"path": "f.bin", "num_parts": 1})),
            ),
            (
                Method::POST,
                format!("/api/2.0/mlflow-artifacts/mpu/abort/{bad}"),
                Some(json!({"path": "f.bin", "upload_id": "u"})),
            ),
        ];
        for (method, uri, body) in cases {
            // Some spellings are not even a valid URI; the HTTP layer refusing them is fine.
            let Ok(uri_parsed) = uri.parse::<axum::http::Uri>() else {
                continue;
            };
            let r = match &body {
                Some(b) => {
                    app.call(
                        method.clone(),
                        &uri_parsed.to_string(),
                        Some("application/json"),
                        b.to_string(),
                    )
                    .await
                }
                None => {
                    app.call(method.clone(), &uri_parsed.to_string(), None, "x")
                        .await
                }
            };
            // `/etc/passwd` after the route prefix is `//etc/passwd`: also refused, or an
            // unknown route; never a success.
            assert!(
                !r.status.is_success(),
                "{method} {uri} was accepted: {}",
                r.text()
            );
            if r.status == StatusCode::BAD_REQUEST {
                assert_eq!(r.json()["message"], "Invalid path", "{method} {uri}");
            }
        }
    }
    // The body's `path` of a multipart upload is a client's local file: only its basename counts.
    let v = app
        .post_json(
            "/api/2.0/mlflow-artifacts/mpu/create/dir",
            json!({"path": "../../../etc/passwd", "num_parts": 1}),
        )
        .await
        .ok();
    assert_eq!(v["upload_id"], "up-dest/dir/passwd");
    // Nothing was written or deleted anywhere.
    let files: Vec<String> = app.bucket.files.lock().unwrap().keys().cloned().collect();
    assert_eq!(files, ["dest/secret.txt"]);
}

#[tokio::test]
async fn tracking_endpoints_refuse_unsafe_paths() {
    let app = App::new();
    let (_, run) = app.run().await;
    for bad in [
        "../x",
        "a/../../x",
        "..%5Cx",
        "%2e%2e%2fx",
        "%252e%252e%252fx",
        "/etc",
        "a%00b",
    ] {
        for uri in [
            format!("/api/2.0/mlflow/artifacts/list?run_id={run}&path={bad}"),
            format!("/get-artifact?run_id={run}&path={bad}"),
        ] {
            let msg = app.get(&uri).await.error(400, "INVALID_PARAMETER_VALUE");
            assert_eq!(msg, "Invalid path", "{uri}");
        }
        let r = app
            .call(
                Method::POST,
                &format!("/ajax-api/2.0/mlflow/upload-artifact?run_uuid={run}&path={bad}"),
                Some("application/octet-stream"),
                "data",
            )
            .await;
        assert_eq!(r.error(400, "INVALID_PARAMETER_VALUE"), "Invalid path");
    }
}

// ----- multipart and presigned ------------------------------------------------------------------

#[tokio::test]
async fn multipart_and_presigned_need_the_capability() {
    let app = App::new();
    let msg = app
        .post_json(
            "/api/2.0/mlflow-artifacts/mpu/create/1/r/artifacts",
            json!({"path": "/home/me/big.bin", "num_parts": 2}),
        )
        .await
        .error(501, "NOT_IMPLEMENTED");
    assert_eq!(
        msg,
        "Multipart upload is not supported for the current artifact repository"
    );
    for op in ["complete", "abort"] {
        app.post_json(
            &format!("/api/2.0/mlflow-artifacts/mpu/{op}/x"),
            json!({"path": "f", "upload_id": "u", "parts": [{"part_number": 1, "etag": "e"}]}),
        )
        .await
        .error(501, "NOT_IMPLEMENTED");
    }
    let msg = app
        .get("/api/2.0/mlflow-artifacts/presigned/x/y.bin")
        .await
        .error(501, "NOT_IMPLEMENTED");
    assert_eq!(
        msg,
        "Multipart download is not supported for the current artifact repository"
    );
    let v = app.get("/api/3.0/mlflow/server-info").await.ok();
    assert_eq!(v["multipart_uploads_enabled"], false);
    assert_eq!(v["multipart_downloads_enabled"], false);
}

#[tokio::test]
async fn multipart_upload_and_presigned_download_when_supported() {
    let app = App::with(ServerInfo::default(), CLOUD, "mlflow-artifacts:/");
    let v = app.get("/ajax-api/3.0/mlflow/server-info").await.ok();
    assert_eq!(v["multipart_uploads_enabled"], true);
    assert_eq!(v["multipart_downloads_enabled"], true);

    // The client sends its local path; the file lands at <dir>/<basename>.
    let v = app
        .post_json(
            "/api/2.0/mlflow-artifacts/mpu/create/1/r/artifacts/m",
            json!({"path": "/home/me/big.bin", "num_parts": 2}),
        )
        .await
        .ok();
    let upload_id = v["upload_id"].as_str().unwrap();
    assert_eq!(upload_id, "up-dest/1/r/artifacts/m/big.bin");
    assert_eq!(v["credentials"].as_array().unwrap().len(), 2);
    assert_eq!(v["credentials"][1]["part_number"], 2);
    assert!(
        v["credentials"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://storage.invalid/")
    );
    let r = app
        .post_json(
            "/api/2.0/mlflow-artifacts/mpu/complete/1/r/artifacts/m",
            json!({"path": "/home/me/big.bin", "upload_id": upload_id,
                   "parts": [{"part_number": 1, "etag": "ab", "url": "u1"},
                             {"part_number": 2, "etag": "cd", "url": "u2"}]}),
        )
        .await;
    assert_eq!(r.ok(), json!({}));
    assert_eq!(
        app.file("dest/1/r/artifacts/m/big.bin").unwrap().as_ref(),
        b"abcd"
    );
    let r = app
        .post_json(
            "/api/2.0/mlflow-artifacts/mpu/abort/1/r/artifacts/m",
            json!({"path": "big.bin", "upload_id": upload_id}),
        )
        .await;
    assert_eq!(r.ok(), json!({}));

    let v = app
        .get("/api/2.0/mlflow-artifacts/presigned/1/r/artifacts/m/big.bin")
        .await
        .ok();
    assert_eq!(
        v["url"],
        "http://storage.invalid/dest/1/r/artifacts/m/big.bin?ttl=300"
    );
    assert_eq!(v["file_size"], 4);
    app.get("/api/2.0/mlflow-artifacts/presigned/1/nope.bin")
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
}

// ----- tracking endpoints -----------------------------------------------------------------------

#[tokio::test]
async fn artifacts_list_of_a_proxied_run_reads_the_destination() {
    let app = App::new();
    let (exp, run) = app.run().await;
    let base = format!("{ART}/{exp}/{run}/artifacts");
    app.put(&format!("{base}/model/MLmodel"), "flavors: {}")
        .await
        .ok();
    app.put(&format!("{base}/a.txt"), "abc").await.ok();

    let v = app
        .get(&format!("/api/2.0/mlflow/artifacts/list?run_id={run}"))
        .await
        .ok();
    assert_eq!(
        v["root_uri"],
        format!("mlflow-artifacts:/{exp}/{run}/artifacts")
    );
    assert_eq!(
        v["files"],
        json!([
            {"path": "a.txt", "is_dir": false, "file_size": 3},
            {"path": "model", "is_dir": true},
        ])
    );
    let v = app
        .get(&format!(
            "/ajax-api/2.0/mlflow/artifacts/list?run_uuid={run}&path=model"
        ))
        .await
        .ok();
    assert_eq!(v["files"][0]["path"], "model/MLmodel");
    let v = app
        .get(&format!(
            "/api/2.0/mlflow/artifacts/list?run_id={run}&path=nope"
        ))
        .await
        .ok();
    assert_eq!(
        v,
        json!({"root_uri": format!("mlflow-artifacts:/{exp}/{run}/artifacts")})
    );
    app.get("/api/2.0/mlflow/artifacts/list?run_id=nosuchrun")
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
    app.get("/api/2.0/mlflow/artifacts/list")
        .await
        .error(400, "INVALID_PARAMETER_VALUE");

    // The UI's download.
    let r = app
        .get(&format!("/get-artifact?run_id={run}&path=model/MLmodel"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "flavors: {}");
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/plain");
    assert_eq!(
        r.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=MLmodel"
    );
    let msg = app
        .get(&format!("/get-artifact?run_id={run}&path=model/none"))
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(msg, "No such artifact: 'model/none'");
}

#[tokio::test]
async fn a_run_with_a_direct_root_gets_its_own_repository() {
    // Experiments default to a root the registry serves directly: no proxy involved.
    let info = ServerInfo {
        serve_artifacts: false,
        ..ServerInfo::default()
    };
    let app = App::with(info, PLAIN, "mem://bucket/prefix");
    let (exp, run) = app.run().await;
    let v = app
        .get(&format!("/api/2.0/mlflow/runs/get?run_id={run}"))
        .await
        .ok();
    let root = format!("mem://bucket/prefix/{exp}/{run}/artifacts");
    assert_eq!(v["run"]["info"]["artifact_uri"], root);
    app.bucket.files.lock().unwrap().insert(
        format!("prefix/{exp}/{run}/artifacts/x/y.txt"),
        Bytes::from_static(b"direct"),
    );
    let v = app
        .get(&format!(
            "/api/2.0/mlflow/artifacts/list?run_id={run}&path=x"
        ))
        .await
        .ok();
    assert_eq!(v["root_uri"], root);
    assert_eq!(
        v["files"],
        json!([{"path": "x/y.txt", "is_dir": false, "file_size": 6}])
    );
    let r = app
        .get(&format!("/get-artifact?run_id={run}&path=x/y.txt"))
        .await;
    assert_eq!(r.text(), "direct");

    // A proxied root while the proxy is off is a clear error, not a crash.
    let (_, run2) = {
        let exp = app
            .store
            .create_experiment(cairn_plugin_api::tracking::CreateExperiment {
                name: "proxied-root".into(),
                artifact_location: Some("mlflow-artifacts:/somewhere".into()),
                tags: vec![],
            })
            .await
            .unwrap();
        let v = app
            .post_json(
                "/api/2.0/mlflow/runs/create",
                json!({"experiment_id": exp, "start_time": 1}),
            )
            .await
            .ok();
        (exp, v["run"]["info"]["run_id"].as_str().unwrap().to_owned())
    };
    let msg = app
        .get(&format!("/api/2.0/mlflow/artifacts/list?run_id={run2}"))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert!(msg.contains("--no-serve-artifacts"), "{msg}");
}

#[tokio::test]
async fn upload_artifact_writes_into_the_run_and_caps_at_10_mb() {
    let app = App::new();
    let (exp, run) = app.run().await;
    let url =
        |path: &str| format!("/ajax-api/2.0/mlflow/upload-artifact?run_uuid={run}&path={path}");
    let r = app
        .call(
            Method::POST,
            &url("notes/a.txt"),
            Some("text/plain"),
            "hello",
        )
        .await;
    assert_eq!(r.ok(), json!({}));
    assert_eq!(
        app.file(&format!("dest/{exp}/{run}/artifacts/notes/a.txt"))
            .unwrap()
            .as_ref(),
        b"hello"
    );
    let msg = app
        .call(
            Method::POST,
            &url("big.bin"),
            Some("application/octet-stream"),
            vec![0u8; 10 * 1024 * 1024 + 1],
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(msg, "Artifact size is too large. Max size is 10MB.");
    let msg = app
        .call(Method::POST, &url("empty.txt"), None, Body::empty())
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(msg, "Request must specify data.");
    let msg = app
        .call(
            Method::POST,
            "/ajax-api/2.0/mlflow/upload-artifact?path=a",
            None,
            "x",
        )
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(msg, "Request must specify run_uuid.");
}

#[tokio::test]
async fn logged_model_artifacts_are_listed_and_downloaded() {
    let app = App::new();
    let (exp, _) = app.run().await;
    let v = app
        .post_json(
            "/api/2.0/mlflow/logged-models",
            json!({"experiment_id": exp}),
        )
        .await
        .ok();
    let id = v["model"]["info"]["model_id"].as_str().unwrap().to_owned();
    let root = v["model"]["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        root,
        format!("mlflow-artifacts:/{exp}/models/{id}/artifacts")
    );
    app.put(
        &format!("{ART}/{exp}/models/{id}/artifacts/MLmodel"),
        "artifact_path: model",
    )
    .await
    .ok();
    let v = app
        .get(&format!(
            "/api/2.0/mlflow/logged-models/{id}/artifacts/directories"
        ))
        .await
        .ok();
    assert_eq!(v["root_uri"], root);
    assert_eq!(
        v["files"],
        json!([{"path": "MLmodel", "is_dir": false, "file_size": 20}])
    );
    let r = app
        .get(&format!(
            "/ajax-api/2.0/mlflow/logged-models/{id}/artifacts/files?artifact_file_path=MLmodel"
        ))
        .await;
    assert_eq!(r.text(), "artifact_path: model");
    app.get("/api/2.0/mlflow/logged-models/m-nope/artifacts/directories")
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
}

// ----- the client side: the proxy over real HTTP, `cairn artifacts` -----------------------------

/// Serves `app` on a free port of 127.0.0.1; returns its base URL.
async fn serve(app: &App) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_repository_and_the_cli_work_through_a_real_server() {
    use cairn_core::artifacts_cli::{download, list, upload};
    use cairn_core::http_repo::{HttpArtifactRepository, TrackingClient};
    use cairn_core::uri::{Proxy, Resolver};

    let app = App::new();
    let (exp, run) = app.run().await;
    let url = serve(&app).await;
    let client = TrackingClient::from_env(&url).unwrap();

    // The repository: put, get, list (basenames re-joined), delete, errors.
    let repo = HttpArtifactRepository::new(client.clone());
    let body: ByteStream = Box::pin(futures_util::stream::iter(
        (0..3u8).map(|i| Ok(Bytes::from(vec![i; 1000]))),
    ));
    assert_eq!(repo.put("x/d é/f.bin", body).await.unwrap(), 3000);
    assert_eq!(app.file("dest/x/d é/f.bin").unwrap().len(), 3000);
    let got = repo.get("x/d é/f.bin").await.unwrap();
    assert_eq!(got.size, Some(3000));
    let bytes: Vec<Bytes> = got.body.map(|c| c.unwrap()).collect().await;
    assert_eq!(bytes.concat()[2000], 2);
    let listed = repo.list(Some("x")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].path.as_str(), listed[0].is_dir), ("x/d é", true));
    // Listing a file is "not a directory": [].
    assert!(repo.list(Some("x/d é/f.bin")).await.unwrap().is_empty());
    let Err(e) = repo.get("x/nope").await else {
        panic!("a missing file was found");
    };
    assert_eq!(e.kind, cairn_plugin_api::ErrorKind::NotFound);
    repo.delete(Some("x")).await.unwrap();
    assert!(app.file("dest/x/d é/f.bin").is_none());

    // The resolver as `cairn artifacts` builds it for MLFLOW_TRACKING_URI=http://...
    let connect_client = client.clone();
    let resolver = Resolver::new(
        Repositories::new(Arc::new(Registry::builtin().unwrap()), Settings::default()),
        Proxy::Remote {
            tracking: url.clone(),
            connect: Arc::new(move |base: &str| {
                Ok(HttpArtifactRepository::shared(
                    connect_client.for_base(base),
                ))
            }),
        },
        Some(Arc::new(client)),
    );
    let resolved = resolver.resolve(&format!("runs:/{run}/out")).await.unwrap();
    assert_eq!(
        resolved.path.as_deref(),
        Some(format!("{exp}/{run}/artifacts/out").as_str())
    );

    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub dir")).unwrap();
    std::fs::write(src.join("sub dir").join("ü.bin"), vec![7u8; 3 << 20]).unwrap();
    std::fs::write(src.join("a.txt"), "a").unwrap();
    std::fs::write(src.join("empty"), "").unwrap();
    let uri = format!("runs:/{run}/out");
    let (files, bytes) = upload(&resolver, &src, &uri).await.unwrap();
    assert_eq!((files, bytes), (3, (3 << 20) + 1));
    assert_eq!(
        app.file(&format!("dest/{exp}/{run}/artifacts/out/sub dir/ü.bin"))
            .unwrap()
            .len(),
        3 << 20
    );

    let entries = list(&resolver, &uri).await.unwrap();
    let names: Vec<(&str, bool)> = entries
        .iter()
        .map(|e| (e.path.as_str(), e.is_dir))
        .collect();
    assert_eq!(
        names,
        [("a.txt", false), ("empty", false), ("sub dir", true)]
    );

    let dst = tmp.path().join("dst");
    let local = download(&resolver, &uri, &dst).await.unwrap();
    assert_eq!(local, dst.join("out"));
    assert_eq!(
        std::fs::read(local.join("sub dir").join("ü.bin")).unwrap(),
        vec![7u8; 3 << 20]
    );
    assert_eq!(std::fs::read(local.join("empty")).unwrap(), b"");
    let one = download(&resolver, &format!("runs:/{run}/out/a.txt"), &dst)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(one).unwrap(), "a");
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dst)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty());
    let e = download(&resolver, &format!("runs:/{run}/out/missing"), &dst)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("No such artifact"), "{e}");
    let e = download(&resolver, &format!("runs:/{run}/%2e%2e/x"), &dst)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Invalid path"), "{e}");
}

/// Log output captured by a test's own subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn a_download_failing_after_the_headers_is_aborted_and_logged_naming_the_plugin() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = App::new();
    let url = format!("{ART}/1/r/artifacts/model.bin");
    app.put(&url, vec![7u8; 10]).await.ok();
    app.bucket.fail_downloads.store(true, Ordering::SeqCst);
    let req = Request::builder()
        .uri(&url)
        .header(header::HOST, "127.0.0.1:5000")
        .body(Body::empty())
        .unwrap();
    let res = app.router.clone().oneshot(req).await.unwrap();
    // The status went out before the failure; the body must not then end as if complete.
    assert_eq!(res.status(), StatusCode::OK);
    let body = axum::body::to_bytes(res.into_body(), usize::MAX).await;
    assert!(body.is_err(), "the body ended cleanly: {body:?}");
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    // (It is logged inside tower-http's request span too; with a thread-local subscriber in
    // a test binary running tests in parallel, tracing's span interest cache makes that span
    // unreliable to observe, so the line is checked for what it names itself.)
    let line = logs
        .lines()
        .find(|l| l.contains("aborting its body"))
        .unwrap_or_else(|| panic!("no error logged:\n{logs}"));
    assert!(line.contains("ERROR"), "{line}");
    for part in [
        "plugin=mem",
        "repository=mem://dest/dest",
        "path=1/r/artifacts/model.bin",
        "the disk went away",
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
}
