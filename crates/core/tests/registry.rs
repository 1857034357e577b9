//! The model-registry endpoints over the SQLite stores, and model-version source validation
//! (DESIGN.md §9): one test per refused form.
#![cfg(feature = "store-sqlite")]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use cairn_core::Registry;
use cairn_core::server::artifacts::Artifacts;
use cairn_core::server::registry::RegistryAccess;
use cairn_core::server::{ServerInfo, router, router_with_registry};
use cairn_plugin_api::BuildContext;
use serde_json::{Value, json};
use tower::ServiceExt;

const ROOT: &str = "mlflow-artifacts:/";

struct App {
    router: Router,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    location: Option<String>,
    body: Value,
}

impl Reply {
    #[track_caller]
    fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        &self.body
    }
    #[track_caller]
    fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["error_code"], code, "{}", self.body);
        self.body["message"].as_str().unwrap().to_owned()
    }
}

impl App {
    fn new() -> Self {
        Self::with_root(ROOT)
    }

    /// An app whose default artifact root is `root`.
    fn with_root(root: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("sqlite:///{}", dir.path().join("cairn.db").display());
        let registry = Registry::builtin().unwrap();
        let ctx = || {
            let mut ctx = BuildContext::for_uri(&uri);
            ctx.default_artifact_root = Some(root.into());
            ctx
        };
        let tracking = registry.tracking_store(&uri, ctx()).unwrap();
        let models = registry.model_registry_store(&uri, ctx()).unwrap();
        let info = ServerInfo::default();
        let access = RegistryAccess::new(Some(models), vec![root.to_owned()]);
        App {
            router: router_with_registry(
                tracking,
                &info,
                Artifacts::builtin_without_proxy(),
                access,
            ),
            _dir: dir,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.request(method, &format!("/api/2.0/mlflow{path}"), body)
            .await
    }

    /// `call` of a path outside the REST API's prefix.
    async fn request(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "127.0.0.1:5000");
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let res = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let location = res
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            location,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    /// A run; returns (run_id, artifact_uri).
    async fn run(&self) -> (String, String) {
        let e = self.post("/experiments/create", json!({"name": "e"})).await;
        let exp = match e.status {
            StatusCode::OK => e.body["experiment_id"].as_str().unwrap().to_owned(),
            _ => self
                .get("/experiments/get-by-name?experiment_name=e")
                .await
                .ok()["experiment"]["experiment_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        };
        let r = self
            .post("/runs/create", json!({"experiment_id": exp}))
            .await;
        let info = &r.ok()["run"]["info"];
        (
            info["run_id"].as_str().unwrap().to_owned(),
            info["artifact_uri"].as_str().unwrap().to_owned(),
        )
    }

    async fn version(&self, source: &str, run_id: Option<&str>) -> Reply {
        let mut body = json!({"name": "churn", "source": source});
        if let Some(r) = run_id {
            body["run_id"] = r.into();
        }
        self.post("/model-versions/create", body).await
    }
}

#[tokio::test]
async fn registered_models_lifecycle() {
    let app = App::new();
    let m = app
        .post(
            "/registered-models/create",
            json!({"name": "churn", "description": "d", "tags": [{"key": "k", "value": "v"}]}),
        )
        .await;
    assert_eq!(m.ok()["registered_model"]["name"], "churn");
    let msg = app
        .post("/registered-models/create", json!({"name": "churn"}))
        .await
        .error(400, "RESOURCE_ALREADY_EXISTS");
    assert_eq!(msg, "Registered Model (name=churn) already exists.");
    app.post("/registered-models/create", json!({}))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    let got = app.get("/registered-models/get?name=churn").await;
    assert_eq!(got.ok()["registered_model"]["tags"][0]["key"], "k");
    let upd = app
        .call(
            Method::PATCH,
            "/registered-models/update",
            Some(json!({"name": "churn", "description": "new"})),
        )
        .await;
    assert_eq!(upd.ok()["registered_model"]["description"], "new");
    app.post(
        "/registered-models/rename",
        json!({"name": "churn", "new_name": "churn2"}),
    )
    .await
    .ok();
    let msg = app
        .get("/registered-models/get?name=churn")
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(msg, "Registered Model with name=churn not found");
    app.post("/registered-models/create", json!({"name": "other"}))
        .await
        .ok();
    let page = app
        .get("/registered-models/search?max_results=1&order_by=name%20DESC")
        .await;
    let page = page.ok();
    assert_eq!(page["registered_models"][0]["name"], "other");
    let token = page["next_page_token"].as_str().unwrap().to_owned();
    let next = app
        .get(&format!(
            "/registered-models/search?max_results=1&order_by=name%20DESC&page_token={token}"
        ))
        .await;
    assert_eq!(next.ok()["registered_models"][0]["name"], "churn2");
    let filtered = app
        .get("/registered-models/search?filter=name%20LIKE%20%27ch%25%27")
        .await;
    assert_eq!(
        filtered.ok()["registered_models"].as_array().unwrap().len(),
        1
    );
    app.get("/registered-models/search?max_results=1001")
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    app.get("/registered-models/search?filter=bogus%20%3D%20%271%27")
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    app.call(
        Method::DELETE,
        "/registered-models/delete",
        Some(json!({"name": "churn2"})),
    )
    .await
    .ok();
    app.get("/registered-models/get?name=churn2")
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn versions_stages_aliases_and_download_uri() {
    let app = App::new();
    let (run_id, root) = app.run().await;
    app.post("/registered-models/create", json!({"name": "churn"}))
        .await
        .ok();
    let v1 = app
        .version(&format!("runs:/{run_id}/model"), Some(&run_id))
        .await;
    let v1 = v1.ok()["model_version"].clone();
    assert_eq!(v1["version"], "1");
    assert_eq!(v1["source"], format!("runs:/{run_id}/model"));
    // The runs:/ URI itself is the download URI, as in MLflow; it is resolved on download.
    let uri = app
        .get("/model-versions/get-download-uri?name=churn&version=1")
        .await;
    assert_eq!(uri.ok()["artifact_uri"], format!("runs:/{run_id}/model"));
    let v2 = app.version(&format!("{root}/model"), Some(&run_id)).await;
    assert_eq!(v2.ok()["model_version"]["version"], "2");

    let t = app
        .post(
            "/model-versions/transition-stage",
            json!({"name": "churn", "version": "1", "stage": "production", "archive_existing_versions": false}),
        )
        .await;
    assert_eq!(t.ok()["model_version"]["current_stage"], "Production");
    let msg = app
        .post(
            "/model-versions/transition-stage",
            json!({"name": "churn", "version": "2", "stage": "Archived", "archive_existing_versions": true}),
        )
        .await
        .error(500, "INTERNAL_ERROR");
    assert!(msg.contains("is not an Active stage"), "{msg}");
    app.post(
        "/model-versions/transition-stage",
        json!({"name": "churn", "version": "2", "stage": "Bogus", "archive_existing_versions": false}),
    )
    .await
    .error(400, "INVALID_PARAMETER_VALUE");
    let latest = app
        .post(
            "/registered-models/get-latest-versions",
            json!({"name": "churn", "stages": ["Production"]}),
        )
        .await;
    assert_eq!(latest.ok()["model_versions"][0]["version"], "1");

    app.post(
        "/registered-models/alias",
        json!({"name": "churn", "alias": "champion", "version": "2"}),
    )
    .await
    .ok();
    let by_alias = app
        .get("/registered-models/alias?name=churn&alias=champion")
        .await;
    assert_eq!(by_alias.ok()["model_version"]["version"], "2");
    let msg = app
        .get("/registered-models/alias?name=churn&alias=nope")
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert!(msg.contains("alias nope not found"), "{msg}");
    app.call(
        Method::DELETE,
        "/registered-models/alias",
        Some(json!({"name": "churn", "alias": "champion"})),
    )
    .await
    .ok();

    app.post(
        "/model-versions/set-tag",
        json!({"name": "churn", "version": "1", "key": "k", "value": "v"}),
    )
    .await
    .ok();
    let found = app
        .get("/model-versions/search?filter=tags.k%20%3D%20%27v%27")
        .await;
    assert_eq!(found.ok()["model_versions"].as_array().unwrap().len(), 1);
    app.get("/model-versions/search?max_results=200001")
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    let msg = app
        .get("/model-versions/get?name=churn&version=x")
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(msg, "Parameter 'version' must be an integer, got 'x'.");
    app.call(
        Method::DELETE,
        "/model-versions/delete",
        Some(json!({"name": "churn", "version": "1"})),
    )
    .await
    .ok();
    app.get("/model-versions/get?name=churn&version=1")
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn a_models_name_version_source_resolves_to_that_version() {
    let app = App::new();
    let (run_id, root) = app.run().await;
    app.post("/registered-models/create", json!({"name": "churn"}))
        .await
        .ok();
    app.version(&format!("runs:/{run_id}/model"), Some(&run_id))
        .await
        .ok();
    app.version(&format!("{root}/model"), Some(&run_id))
        .await
        .ok();
    let v3 = app.version("models:/churn/1", None).await;
    assert_eq!(v3.ok()["model_version"]["run_id"], run_id.as_str());
    let v4 = app.version("models:/churn/2", None).await;
    assert_eq!(v4.ok()["model_version"]["run_id"], run_id.as_str());
    for (version, expected) in [
        ("3", format!("runs:/{run_id}/model")),
        ("4", format!("{root}/model")),
    ] {
        let uri = app
            .get(&format!(
                "/model-versions/get-download-uri?name=churn&version={version}"
            ))
            .await;
        assert_eq!(uri.ok()["artifact_uri"], expected);
    }
}

/// MLflow compares only the ids of a `runs:/` source (the registry may be another store than
/// the tracking store): a run this tracking store does not know is accepted (issue 9 §6b).
#[tokio::test]
async fn a_runs_source_is_checked_against_run_id_only() {
    let app = App::new();
    app.post("/registered-models/create", json!({"name": "churn"}))
        .await
        .ok();
    for (i, run) in ["run_id_1", &"a".repeat(32)].into_iter().enumerate() {
        let source = format!("runs:/{run}/model");
        let v = app.version(&source, Some(run)).await;
        let v = &v.ok()["model_version"];
        assert_eq!(v["source"], source.as_str());
        assert_eq!(v["run_id"], run);
        let version = (i + 1).to_string();
        let uri = app
            .get(&format!(
                "/model-versions/get-download-uri?name=churn&version={version}"
            ))
            .await;
        assert_eq!(uri.ok()["artifact_uri"], source.as_str());
        // Downloading resolves the run through the tracking store: it has no such run.
        app.request(
            Method::GET,
            &format!("/model-versions/get-artifact?name=churn&version={version}&path=MLmodel"),
            None,
        )
        .await
        .error(404, "RESOURCE_DOES_NOT_EXIST");
    }
}

/// A version registered from a LoggedModel: listed in the model's `mlflow.modelVersions` tag
/// (MLflow's JSON), the model's source run as its run, the model's params and metrics in the
/// answers of create and get (issue 9 §6, §6b).
#[tokio::test]
async fn a_version_of_a_logged_model_links_both_ways() {
    let app = App::new();
    let (run_id, _) = app.run().await;
    let exp = app
        .get("/experiments/get-by-name?experiment_name=e")
        .await
        .ok()["experiment"]["experiment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let model = app
        .post(
            "/logged-models",
            json!({"experiment_id": exp, "source_run_id": run_id}),
        )
        .await;
    let model_id = model.ok()["model"]["info"]["model_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        &format!("/logged-models/{model_id}/params"),
        json!({"model_id": model_id, "params": [{"key": "C", "value": "0.5"}]}),
    )
    .await
    .ok();
    app.post(
        "/runs/log-metric",
        json!({"run_id": run_id, "key": "acc", "value": 0.9, "timestamp": 1, "step": 0, "model_id": model_id}),
    )
    .await
    .ok();
    app.post("/registered-models/create", json!({"name": "churn"}))
        .await
        .ok();
    let source = format!("models:/{model_id}");
    for version in ["1", "2"] {
        let v = app
            .post(
                "/model-versions/create",
                json!({"name": "churn", "source": source, "model_id": model_id}),
            )
            .await;
        let v = &v.ok()["model_version"];
        assert_eq!(v["version"], version);
        assert_eq!(v["run_id"], run_id.as_str());
        assert_eq!(v["model_id"], model_id.as_str());
        assert_eq!(v["model_params"], json!([{"name": "C", "value": "0.5"}]));
        assert_eq!(v["model_metrics"][0]["key"], "acc");
    }
    let got = app.get("/model-versions/get?name=churn&version=2").await;
    assert_eq!(got.ok()["model_version"]["model_params"][0]["name"], "C");
    let model = app.get(&format!("/logged-models/{model_id}")).await;
    let tags = model.ok()["model"]["info"]["tags"]
        .as_array()
        .unwrap()
        .clone();
    let tag = tags
        .iter()
        .find(|t| t["key"] == "mlflow.modelVersions")
        .expect("the mlflow.modelVersions tag");
    assert_eq!(
        tag["value"],
        r#"[{"name": "churn", "version": 1}, {"name": "churn", "version": 2}]"#
    );
}

#[tokio::test]
async fn refused_sources() {
    let app = App::new();
    let (run_id, root) = app.run().await;
    let (other_run, _) = app.run().await;
    app.post("/registered-models/create", json!({"name": "churn"}))
        .await
        .ok();
    let refused: Vec<(String, Option<&str>)> = vec![
        // Local paths and file: URIs outside every root.
        ("/etc/passwd".into(), Some(&run_id)),
        ("file:///etc/passwd".into(), Some(&run_id)),
        ("file:/etc".into(), None),
        // A relative path with no scheme.
        ("model".into(), Some(&run_id)),
        // Traversal out of the run's root, plain and encoded once and twice.
        (format!("{root}/../../x"), Some(&run_id)),
        (format!("{root}/%2e%2e/%2e%2e/x"), Some(&run_id)),
        (format!("{root}/%252e%252e/x"), Some(&run_id)),
        (format!("{root}/..%5cx"), Some(&run_id)),
        (format!("{root}/a;/x"), Some(&run_id)),
        // runs:/ of another run than run_id, and with no run_id.
        (format!("runs:/{other_run}/model"), Some(&run_id)),
        (format!("runs:/{run_id}/model"), None),
        (format!("runs:/{run_id}/../x"), Some(&run_id)),
        // A models:/<model_id> that is not the request's model_id.
        ("models:/m-123".into(), None),
        // Storage the server was never configured with.
        ("s3://bucket/model".into(), Some(&run_id)),
        ("http://evil/x".into(), None),
    ];
    for (source, run) in refused {
        let msg = app
            .version(&source, run)
            .await
            .error(400, "INVALID_PARAMETER_VALUE");
        let local = !source.contains(":/") || source.starts_with("file:");
        let expected = if local {
            // MLflow's message for every refused local source.
            format!(
                "Invalid model version source: '{source}'. To use a local path as a model \
                 version source, the run_id request parameter has to be specified and the local \
                 path has to be contained within the artifact directory of the run specified by \
                 the run_id."
            )
        } else {
            format!("Invalid model version source: '{source}'.")
        };
        assert_eq!(msg, expected, "{source}");
    }
    // A run_id the tracking store does not know, for a source that must lie under its root.
    let msg = app
        .version("mlflow-artifacts:/elsewhere/model", Some(&"f".repeat(32)))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(
        msg,
        "Invalid model version source: 'mlflow-artifacts:/elsewhere/model'. The run_id request \
         parameter must identify the resource that contains the source."
    );
    // Tags do not matter.
    let r = app
        .post(
            "/model-versions/create",
            json!({"name": "churn", "source": "/etc/passwd", "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]}),
        )
        .await;
    r.error(400, "INVALID_PARAMETER_VALUE");
    // Accepted: under the run's root, and under the configured root.
    app.version(&format!("{root}/model"), Some(&run_id))
        .await
        .ok();
    app.version("mlflow-artifacts:/elsewhere/model", None)
        .await
        .ok();
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_inside_a_root_does_not_lead_a_source_out_of_it() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(outside.path().join("secret")).unwrap();
    let root = tempfile::tempdir().unwrap();
    let app = App::with_root(&root.path().display().to_string());
    let (run_id, run_root) = app.run().await;
    std::fs::create_dir_all(format!("{run_root}/real/model")).unwrap();
    // An operator-made link inside the run's root, pointing out of it.
    std::os::unix::fs::symlink(outside.path(), format!("{run_root}/link")).unwrap();
    app.post("/registered-models/create", json!({"name": "churn"}))
        .await
        .ok();
    for source in [
        format!("{run_root}/link/secret"),
        format!("file://{run_root}/link"),
        format!("{run_root}/link/not-yet-there"),
    ] {
        let msg = app
            .version(&source, Some(&run_id))
            .await
            .error(400, "INVALID_PARAMETER_VALUE");
        assert!(
            msg.starts_with(&format!("Invalid model version source: '{source}'.")),
            "{msg}"
        );
    }
    app.version(&format!("{run_root}/real/model"), Some(&run_id))
        .await
        .ok();
    app.version(&format!("{run_root}/new/model"), Some(&run_id))
        .await
        .ok();
}

/// A local source must lie in the artifact directory of the request's run: lying under the
/// default artifact root is not enough, as in MLflow (issue 9 §6b).
#[tokio::test]
async fn a_local_source_needs_its_run() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().display().to_string();
    let app = App::with_root(&root);
    let (run_id, run_root) = app.run().await;
    app.post("/registered-models/create", json!({"name": "churn"}))
        .await
        .ok();
    for source in [format!("{run_root}/model"), format!("{root}/elsewhere")] {
        let msg = app
            .version(&source, None)
            .await
            .error(400, "INVALID_PARAMETER_VALUE");
        assert_eq!(
            msg,
            format!(
                "Invalid model version source: '{source}'. To use a local path as a model \
                 version source, the run_id request parameter has to be specified and the local \
                 path has to be contained within the artifact directory of the run specified by \
                 the run_id."
            )
        );
    }
    app.version(&format!("{root}/elsewhere"), Some(&run_id))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    let v = app
        .version(&format!("{run_root}/model"), Some(&run_id))
        .await;
    assert_eq!(v.ok()["model_version"]["run_id"], run_id.as_str());
}

/// MLflow's router merges repeated slashes by redirecting; the merged path then checks the
/// artifact path first (issue 9 §6b).
#[tokio::test]
async fn repeated_slashes_redirect_to_the_merged_path() {
    let app = App::new();
    let query = "name=model&version=1&path=..%2Fpath";
    let r = app
        .request(
            Method::GET,
            &format!("//model-versions//get-artifact?{query}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    let location = r.location.unwrap();
    assert_eq!(location, format!("/model-versions/get-artifact?{query}"));
    let msg = app
        .request(Method::GET, &location, None)
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
    assert_eq!(msg, "Invalid path");
    // A path no route serves, merged or not, is still 404 in the end.
    let r = app.request(Method::GET, "//nowhere", None).await;
    assert_eq!(r.location.as_deref(), Some("/nowhere"));
    app.request(Method::GET, "/nowhere", None)
        .await
        .error(404, "ENDPOINT_NOT_FOUND");
}

#[tokio::test]
async fn without_a_registry_store_the_endpoints_answer_501() {
    let mut ctx = BuildContext::for_uri("sqlite://");
    ctx.default_artifact_root = Some(ROOT.into());
    let tracking = Registry::builtin()
        .unwrap()
        .tracking_store("sqlite://", ctx)
        .unwrap();
    let app = router(tracking, &ServerInfo::default());
    let res = app
        .oneshot(
            Request::builder()
                .uri("/api/2.0/mlflow/registered-models/get?name=x")
                .header(header::HOST, "127.0.0.1:5000")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_IMPLEMENTED);
}
