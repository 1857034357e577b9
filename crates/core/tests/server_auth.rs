//! The basic-auth app through the real router, built by the assembly from a configuration with
//! `[auth]` on (as `cairn server --app-name basic-auth` builds it) over an SQLite file: every
//! route of the router is mapped and answers 401 / 403 / allowed as its rule says, MLflow's
//! 401 and 403, permissions and creators' MANAGE, searches narrowed in the query with full
//! pages, the auth REST API, and the admin created on first start.
#![cfg(feature = "store-sqlite")]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine;
use cairn_core::Assembly;
use cairn_core::config::{Loader, Overrides};
use cairn_core::server::auth::rules::{Rule, normalise, rule};
use cairn_core::server::auth::{UNAUTHENTICATED, ensure_admin};
use cairn_core::server::{route_paths, router_for, server_info_for};
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN: (&str, &str) = ("admin", "admin-password-1");

struct App {
    router: Router,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    #[track_caller]
    fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        serde_json::from_str(&self.text).unwrap()
    }
    #[track_caller]
    fn code(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        let v: Value = serde_json::from_str(&self.text).unwrap();
        assert_eq!(v["error_code"], code, "{}", self.text);
    }
    #[track_caller]
    fn denied(&self) {
        assert_eq!(self.status, StatusCode::FORBIDDEN, "{}", self.text);
        assert_eq!(self.text, "Permission denied");
    }
}

fn overrides(dir: &std::path::Path, settings: &[(&'static str, Value)]) -> Overrides {
    let mut o = Overrides::default();
    o.set(
        "store.backend_store_uri",
        "--backend-store-uri",
        format!("sqlite:///{}/cairn.db", dir.display()),
    );
    o.set("auth.enabled", "--app-name", true);
    o.set("auth.admin_password", "--test", ADMIN.1);
    for (key, value) in settings {
        o.set(key, "--test", figment_value(value));
    }
    o
}

fn figment_value(v: &Value) -> figment::value::Value {
    match v {
        Value::Bool(b) => (*b).into(),
        Value::String(s) => s.as_str().into(),
        Value::Number(n) => n.as_u64().unwrap().into(),
        other => panic!("unsupported {other}"),
    }
}

impl App {
    async fn new(settings: &[(&'static str, Value)]) -> App {
        let dir = tempfile::tempdir().unwrap();
        let loaded = Loader::new(dir.path())
            .overrides(overrides(dir.path(), settings))
            .load()
            .unwrap();
        let assembly = Assembly::new(&loaded).unwrap();
        let plugins = assembly.server(&mut |_| {}).unwrap();
        let created = ensure_admin(
            plugins.auth.as_ref().unwrap().as_ref(),
            &loaded.config().auth,
        )
        .await
        .unwrap();
        assert_eq!(created.as_deref(), Some(ADMIN.0));
        let info = server_info_for(&loaded, assembly.registry());
        App {
            router: router_for(&info, plugins),
            _dir: dir,
        }
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        user: Option<(&str, &str)>,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "127.0.0.1:5000");
        if let Some((u, p)) = user {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req = req.header(header::AUTHORIZATION, format!("Basic {token}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
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

    async fn post(&self, user: (&str, &str), path: &str, body: Value) -> Reply {
        self.send(Method::POST, &api(path), Some(user), Some(&body))
            .await
    }

    async fn get(&self, user: (&str, &str), path_and_query: &str) -> Reply {
        self.send(Method::GET, &api(path_and_query), Some(user), None)
            .await
    }

    async fn user(&self, name: &str, password: &str) {
        self.post(
            ADMIN,
            "users/create",
            json!({"username": name, "password": password}),
        )
        .await
        .ok();
    }

    async fn experiment(&self, user: (&str, &str), name: &str) -> String {
        self.post(user, "experiments/create", json!({"name": name}))
            .await
            .ok()["experiment_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn grant(&self, user: &str, resource_type: &str, id: &str, permission: &str) {
        self.send(
            Method::POST,
            "/api/3.0/mlflow/users/permissions/grant",
            Some(ADMIN),
            Some(&json!({"username": user, "resource_type": resource_type,
                         "resource_id": id, "permission": permission})),
        )
        .await
        .ok();
    }
}

fn api(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/api/2.0/mlflow/{path}")
    }
}

const ALICE: (&str, &str) = ("alice", "alice-password-1");
const BOB: (&str, &str) = ("bob", "bob-password-12");

// ----- every route ------------------------------------------------------------------------------

/// Calls every route of the router (every registered path with every method) with no
/// credentials, wrong credentials, a user without any permission and the admin. A route the
/// table does not know fails the test, so a route added later without a rule does too.
#[tokio::test]
async fn every_route_is_mapped_and_guarded() {
    for serve_artifacts in [true, false] {
        let app = App::new(&[
            ("auth.default_permission", json!("NO_PERMISSIONS")),
            ("store.serve_artifacts", json!(serve_artifacts)),
            // Wrong credentials are sent to every route.
            ("auth.max_failed_logins", json!(100_000)),
        ])
        .await;
        app.user(ALICE.0, ALICE.1).await;
        let exp = app.experiment(ADMIN, "e").await;
        let run = app
            .post(ADMIN, "runs/create", json!({"experiment_id": exp}))
            .await
            .ok()["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let model = app
            .post(ADMIN, "logged-models", json!({"experiment_id": exp}))
            .await
            .ok()["model"]["info"]["model_id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.post(ADMIN, "registered-models/create", json!({"name": "m"}))
            .await
            .ok();
        // A trace with an assessment in the experiment (traces are located by their experiment).
        let trace = "tr-0123456789abcdef0123456789abcdef";
        let start = json!({"trace": {"trace_info": {
            "trace_id": trace,
            "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}},
            "request_time": "2026-01-01T00:00:00Z", "state": "OK",
            "assessments": [{"assessment_id": "a-1", "assessment_name": "q", "feedback": {"value": 1}}],
        }}});
        let reply = app
            .send(
                Method::POST,
                "/api/3.0/mlflow/traces",
                Some(ADMIN),
                Some(&start),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let params = json!({
            "trace_id": trace, "trace_ids": [trace], "trace": start["trace"],
            "experiment_id": exp, "experiment_ids": [exp], "experiment_name": "e",
            "run_id": run, "run_ids": [run], "name": "m", "username": "admin",
            "resource_type": "experiment", "resource_id": exp, "path": format!("{exp}/x"),
        });
        let query = format!(
            "experiment_id={exp}&experiment_ids={exp}&experiment_name=e&run_id={run}\
             &run_ids={run}&name=m&username=admin&resource_type=experiment&resource_id={exp}\
             &path={exp}/x&trace_id={trace}&trace_ids={trace}"
        );
        let mut info = cairn_core::server::ServerInfo {
            serve_artifacts,
            ..Default::default()
        };
        info.auth = Some(cairn_core::server::auth::Settings {
            default_permission: cairn_core::server::auth::Permission::NoPermissions,
            max_failed_logins: 1,
        });
        let mut paths = route_paths(&info);
        assert!(paths.len() > 100, "{}", paths.len());
        if !serve_artifacts {
            // Only the proxy's routes differ.
            paths.retain(|p| p.contains("mlflow-artifacts"));
        }
        let mut checked = 0;
        for template in &paths {
            let path = template
                .replace("{model_id}", &model)
                .replace("{trace_id}", trace)
                .replace("{assessment_id}", "a-1")
                .replace("{*path}", &format!("{exp}/x"))
                .replace("{*tag_key}", "k")
                .replace("{*rest}", "x");
            for method in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ] {
                let uri = format!("{path}?{query}");
                let body = (method != Method::GET).then_some(&params);
                let anonymous = app.send(method.clone(), &uri, None, body).await;
                if anonymous.status == StatusCode::METHOD_NOT_ALLOWED {
                    continue; // not routed
                }
                checked += 1;
                let what = format!("{method} {template}");
                let r = rule(&method, normalise(template))
                    .unwrap_or_else(|| panic!("{what} has no permission rule"));
                let wrong = app
                    .send(method.clone(), &uri, Some(("alice", "wrong")), body)
                    .await;
                let user = app.send(method.clone(), &uri, Some(ALICE), body).await;
                if r == Rule::Public {
                    for reply in [&anonymous, &wrong, &user] {
                        assert!(reply.status.is_success(), "{what}: {}", reply.status);
                    }
                    continue;
                }
                assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{what}");
                assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{what}");
                if r == Rule::Authenticated {
                    assert!(
                        ![401, 403].contains(&user.status.as_u16()),
                        "{what}: {} {}",
                        user.status,
                        user.text
                    );
                } else {
                    assert_eq!(user.status, StatusCode::FORBIDDEN, "{what}: {}", user.text);
                }
            }
        }
        assert!(checked > if serve_artifacts { 100 } else { 1 }, "{checked}");
        // The admin passes every check (the handlers then answer as they do).
        for template in &paths {
            let path = template
                .replace("{model_id}", &model)
                .replace("{trace_id}", trace)
                .replace("{assessment_id}", "a-1")
                .replace("{*path}", &format!("{exp}/x"))
                .replace("{*tag_key}", "k")
                .replace("{*rest}", "x");
            for method in [Method::GET, Method::POST, Method::PATCH] {
                let uri = format!("{path}?{query}");
                let body = (method != Method::GET).then_some(&params);
                let r = app.send(method.clone(), &uri, Some(ADMIN), body).await;
                assert!(
                    ![401, 403].contains(&r.status.as_u16()),
                    "{method} {template}: {} {}",
                    r.status,
                    r.text
                );
            }
        }
    }
}

/// A route the table does not know is refused, even for the admin.
#[tokio::test]
async fn a_route_without_a_rule_is_refused() {
    use cairn_core::server::auth::{Auth, Permission, Settings, authorize};
    let dir = tempfile::tempdir().unwrap();
    let loaded = Loader::new(dir.path())
        .overrides(overrides(dir.path(), &[]))
        .load()
        .unwrap();
    let plugins = Assembly::new(&loaded).unwrap().server(&mut |_| {}).unwrap();
    let store = plugins.auth.unwrap();
    ensure_admin(store.as_ref(), &loaded.config().auth)
        .await
        .unwrap();
    let settings = Settings {
        default_permission: Permission::Manage,
        max_failed_logins: 10,
    };
    let auth = Auth::new(store, plugins.tracking, settings, "");
    let router = Router::new()
        .route(
            "/api/2.0/mlflow/made-up",
            axum::routing::get(|| async { "secret" }),
        )
        .route("/health", axum::routing::get(|| async { "OK" }))
        .route_layer(axum::middleware::from_fn_with_state(auth, authorize));
    let app = App { router, _dir: dir };
    app.send(Method::GET, &api("made-up"), Some(ADMIN), None)
        .await
        .denied();
    let r = app.send(Method::GET, &api("made-up"), None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.send(Method::GET, "/health", None, None).await.text,
        "OK"
    );
}

// ----- authentication ---------------------------------------------------------------------------

#[tokio::test]
async fn missing_or_wrong_credentials_get_mlflows_401() {
    let app = App::new(&[]).await;
    for user in [
        None,
        Some(("admin", "not-the-password")),
        Some(("nobody", "x")),
    ] {
        let r = app
            .send(
                Method::GET,
                &api("experiments/get?experiment_id=0"),
                user,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers[header::WWW_AUTHENTICATE],
            "Basic realm=\"mlflow\""
        );
        assert_eq!(r.text, UNAUTHENTICATED);
    }
    // A malformed header is no credential either.
    let req = Request::get(api("experiments/get?experiment_id=0"))
        .header(header::HOST, "127.0.0.1:5000")
        .header(header::AUTHORIZATION, "Basic !!!")
        .body(Body::empty())
        .unwrap();
    let res = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    for path in ["/health", "/version", "/api/3.0/mlflow/server-info"] {
        let r = app.send(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
    // An unknown path is still MLflow's JSON 404.
    app.send(Method::GET, &api("made-up"), None, None)
        .await
        .code(404, "ENDPOINT_NOT_FOUND");
    app.get(ADMIN, "experiments/get?experiment_id=0").await.ok();
}

/// Under a static prefix the same table applies.
#[tokio::test]
async fn routes_under_a_static_prefix_are_guarded_alike() {
    let app = App::new(&[("server.static_prefix", json!("/mlflow"))]).await;
    app.send(
        Method::POST,
        "/mlflow/api/2.0/mlflow/users/create",
        Some(ADMIN),
        Some(&json!({"username": ALICE.0, "password": ALICE.1})),
    )
    .await
    .ok();
    let uri = "/mlflow/api/2.0/mlflow/experiments/get?experiment_id=0";
    assert_eq!(
        app.send(Method::GET, uri, None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.send(Method::GET, uri, Some(ALICE), None).await.ok();
    app.send(
        Method::POST,
        "/mlflow/api/2.0/mlflow/experiments/delete",
        Some(ALICE),
        Some(&json!({"experiment_id": "0"})),
    )
    .await
    .denied();
    let r = app.send(Method::GET, "/mlflow/health", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn failed_logins_are_limited_per_user() {
    let app = App::new(&[("auth.max_failed_logins", json!(3))]).await;
    app.user(ALICE.0, ALICE.1).await;
    let uri = api("experiments/get?experiment_id=0");
    for _ in 0..3 {
        let r = app
            .send(Method::GET, &uri, Some(("alice", "guess-password")), None)
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // Locked for the rest of the minute, even with the right password...
    for user in [("alice", "guess-password"), ALICE] {
        let r = app.send(Method::GET, &uri, Some(user), None).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
        assert_eq!(r.headers[header::RETRY_AFTER], "60");
    }
    // ...while other users are not.
    app.get(ADMIN, "experiments/get?experiment_id=0").await.ok();
    // A success clears the count.
    app.user(BOB.0, BOB.1).await;
    for _ in 0..2 {
        app.send(Method::GET, &uri, Some(("bob", "guess-password")), None)
            .await;
    }
    app.get(BOB, "experiments/get?experiment_id=0").await.ok();
    for _ in 0..2 {
        app.send(Method::GET, &uri, Some(("bob", "guess-password")), None)
            .await;
    }
    app.get(BOB, "experiments/get?experiment_id=0").await.ok();
}

/// The traversal and cross-origin checks of the server still hold with auth on, for users
/// and admins alike.
#[tokio::test]
async fn traversal_and_cross_origin_checks_hold_with_auth_on() {
    let app = App::new(&[]).await;
    app.user(ALICE.0, ALICE.1).await;
    for user in [ALICE, ADMIN] {
        for path in ["0/%2e%2e/x", "0/..%2F..%2Fetc/passwd", "0/a/..%5Cb"] {
            let r = app
                .send(
                    Method::GET,
                    &format!("/api/2.0/mlflow-artifacts/artifacts/{path}"),
                    Some(user),
                    None,
                )
                .await;
            r.code(400, "INVALID_PARAMETER_VALUE");
        }
        let mut req = Request::post(api("experiments/create"))
            .header(header::HOST, "127.0.0.1:5000")
            .header(header::ORIGIN, "https://evil.example")
            .header(header::CONTENT_TYPE, "application/json");
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", user.0, user.1));
        req = req.header(header::AUTHORIZATION, format!("Basic {token}"));
        let res = app
            .router
            .clone()
            .oneshot(req.body(Body::from(r#"{"name": "x"}"#)).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(&body[..], b"Cross-origin request blocked");
    }
}

// ----- permissions ------------------------------------------------------------------------------

#[tokio::test]
async fn read_edit_manage_and_deny_follow_mlflows_model() {
    let app = App::new(&[]).await; // default_permission READ
    app.user(ALICE.0, ALICE.1).await;
    let exp = app.experiment(ADMIN, "shared").await;
    let tag = json!({"experiment_id": exp, "key": "k", "value": "v"});
    // READ by default: reads pass, writes are denied.
    app.get(ALICE, &format!("experiments/get?experiment_id={exp}"))
        .await
        .ok();
    app.post(ALICE, "experiments/set-experiment-tag", tag.clone())
        .await
        .denied();
    app.post(ALICE, "runs/create", json!({"experiment_id": exp}))
        .await
        .denied();
    // EDIT: logs, but cannot delete.
    app.grant("alice", "experiment", &exp, "EDIT").await;
    app.post(ALICE, "experiments/set-experiment-tag", tag.clone())
        .await
        .ok();
    let run = app
        .post(
            ALICE,
            "runs/create",
            json!({"experiment_id": exp, "user_id": "mallory"}),
        )
        .await
        .ok()["run"]["info"]
        .clone();
    // The run is the authenticated user's, whatever the client claims.
    assert_eq!(run["user_id"], "alice");
    let run_id = run["run_id"].as_str().unwrap();
    app.post(
        ALICE,
        "runs/log-metric",
        json!({"run_id": run_id, "key": "m", "value": 1, "timestamp": 1}),
    )
    .await
    .ok();
    app.post(ALICE, "runs/delete", json!({"run_id": run_id}))
        .await
        .denied();
    app.post(ALICE, "experiments/delete", json!({"experiment_id": exp}))
        .await
        .denied();
    // DENY vetoes even reads.
    let update = json!({"username": "alice", "resource_type": "experiment",
                        "resource_id": exp, "permission": "DENY"});
    app.send(
        Method::POST,
        "/api/3.0/mlflow/users/permissions/revoke",
        Some(ADMIN),
        Some(&update),
    )
    .await
    .ok();
    app.grant("alice", "experiment", &exp, "DENY").await;
    app.get(ALICE, &format!("experiments/get?experiment_id={exp}"))
        .await
        .denied();
    app.get(ALICE, &format!("runs/get?run_id={run_id}"))
        .await
        .denied();
    // The artifact proxy is guarded by the experiment its path names.
    app.send(
        Method::GET,
        &format!("/api/2.0/mlflow-artifacts/artifacts/{exp}/{run_id}/artifacts/x"),
        Some(ALICE),
        None,
    )
    .await
    .denied();
    let r = app
        .send(
            Method::GET,
            "/api/2.0/mlflow-artifacts/artifacts?path=",
            Some(ALICE),
            None,
        )
        .await;
    r.denied();
    // A creator gets MANAGE: alice may delete what she created, and manage it.
    let own = app.experiment(ALICE, "alice's").await;
    let p = app
        .get(
            ADMIN,
            &format!(
                "/api/3.0/mlflow/users/permissions/get?username=alice\
                 &resource_type=experiment&resource_id={own}"
            ),
        )
        .await
        .ok();
    assert_eq!(p, json!({"allowed": true, "permission": "MANAGE"}));
    app.user(BOB.0, BOB.1).await;
    app.send(
        Method::POST,
        "/api/3.0/mlflow/users/permissions/grant",
        Some(ALICE),
        Some(&json!({"username": "bob", "resource_type": "experiment",
                     "resource_id": own, "permission": "EDIT"})),
    )
    .await
    .ok();
    // ...but not grant on what she does not manage.
    app.send(
        Method::POST,
        "/api/3.0/mlflow/users/permissions/grant",
        Some(ALICE),
        Some(&json!({"username": "bob", "resource_type": "experiment",
                     "resource_id": exp, "permission": "EDIT"})),
    )
    .await
    .denied();
    app.post(ALICE, "experiments/delete", json!({"experiment_id": own}))
        .await
        .ok();
    // Registered models: the creator manages, others read by default.
    app.post(ALICE, "registered-models/create", json!({"name": "churn"}))
        .await
        .ok();
    app.post(
        BOB,
        "registered-models/set-tag",
        json!({"name": "churn", "key": "a", "value": "b"}),
    )
    .await
    .denied();
    app.post(
        ALICE,
        "registered-models/rename",
        json!({"name": "churn", "new_name": "churn2"}),
    )
    .await
    .ok();
    // Grants follow the rename.
    app.post(
        ALICE,
        "registered-models/set-tag",
        json!({"name": "churn2", "key": "a", "value": "b"}),
    )
    .await
    .ok();
    // Only admins manage users.
    app.post(
        ALICE,
        "users/create",
        json!({"username": "eve", "password": "eve-password-1"}),
    )
    .await
    .denied();
    app.get(ALICE, "users/get?username=bob").await.denied();
    app.get(ALICE, "users/get?username=alice").await.ok();
}

#[tokio::test]
async fn roles_grant_by_pattern_and_a_deny_vetoes_a_roles_grant() {
    let app = App::new(&[("auth.default_permission", json!("NO_PERMISSIONS"))]).await;
    app.user(ALICE.0, ALICE.1).await;
    let a = app.experiment(ADMIN, "a").await;
    let b = app.experiment(ADMIN, "b").await;
    let c = app.experiment(ADMIN, "c").await;
    let v3 = |p: &str| format!("/api/3.0/mlflow/{p}");
    let send = |method: Method, path: String, body: Value| {
        let app = &app;
        async move { app.send(method, &path, Some(ADMIN), Some(&body)).await }
    };
    let role = send(
        Method::POST,
        v3("roles/create"),
        json!({"name": "editors", "workspace": "default"}),
    )
    .await
    .ok()["role"]
        .clone();
    assert_eq!(role["name"], "editors");
    assert_eq!(role["workspace"], "default");
    let role_id = role["id"].as_i64().unwrap();
    let add = |pattern: &str, permission: &str| {
        json!({"role_id": role_id, "resource_type": "experiment",
               "resource_pattern": pattern, "permission": permission})
    };
    send(Method::POST, v3("roles/permissions/add"), add("*", "READ"))
        .await
        .ok();
    let edit = send(Method::POST, v3("roles/permissions/add"), add(&a, "EDIT"))
        .await
        .ok()["role_permission"]
        .clone();
    assert_eq!(edit["resource_pattern"], a.as_str());
    send(Method::POST, v3("roles/permissions/add"), add(&a, "READ"))
        .await
        .code(400, "RESOURCE_ALREADY_EXISTS");
    let v = send(
        Method::POST,
        v3("roles/assign"),
        json!({"username": "alice", "role_id": role_id}),
    )
    .await
    .ok();
    assert_eq!(v["assignment"]["role_id"], role_id);
    // Non-admins manage no roles.
    app.send(
        Method::POST,
        &v3("roles/create"),
        Some(ALICE),
        Some(&json!({"name": "x"})),
    )
    .await
    .denied();
    let v = app
        .get(ALICE, &v3("users/roles/list?username=alice"))
        .await
        .ok();
    assert_eq!(v["roles"][0]["permissions"].as_array().unwrap().len(), 2);

    // `*` READ reaches every experiment, the per-id EDIT adds writes on `a`.
    let tag = |id: &str| json!({"experiment_id": id, "key": "k", "value": "v"});
    app.get(ALICE, &format!("experiments/get?experiment_id={c}"))
        .await
        .ok();
    app.post(ALICE, "experiments/set-experiment-tag", tag(&a))
        .await
        .ok();
    app.post(ALICE, "experiments/set-experiment-tag", tag(&b))
        .await
        .denied();
    // A user's own DENY vetoes the role's grant, and so does a role's DENY.
    app.grant("alice", "experiment", &a, "DENY").await;
    app.get(ALICE, &format!("experiments/get?experiment_id={a}"))
        .await
        .denied();
    send(Method::POST, v3("roles/permissions/add"), add(&b, "DENY"))
        .await
        .ok();
    app.get(ALICE, &format!("experiments/get?experiment_id={b}"))
        .await
        .denied();
    let v = app.post(ALICE, "experiments/search", json!({})).await.ok();
    let mut seen: Vec<&str> = v["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["experiment_id"].as_str().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, ["0", c.as_str()]);
    // Unassigned: back to the default, nothing.
    send(
        Method::DELETE,
        v3("roles/unassign"),
        json!({"username": "alice", "role_id": role_id}),
    )
    .await
    .ok();
    app.get(ALICE, &format!("experiments/get?experiment_id={c}"))
        .await
        .denied();
    let perm_id = edit["id"].as_i64().unwrap();
    let v = send(
        Method::PATCH,
        v3("roles/permissions/update"),
        json!({"role_permission_id": perm_id, "permission": "MANAGE"}),
    )
    .await
    .ok();
    assert_eq!(v["role_permission"]["permission"], "MANAGE");
    send(
        Method::DELETE,
        v3("roles/permissions/remove"),
        json!({"role_permission_id": perm_id}),
    )
    .await
    .ok();
    let v = app
        .get(
            ADMIN,
            &v3(&format!("roles/permissions/list?role_id={role_id}")),
        )
        .await
        .ok();
    assert_eq!(v["role_permissions"].as_array().unwrap().len(), 2);
    let v = send(
        Method::PATCH,
        v3("roles/update"),
        json!({"role_id": role_id, "description": "d"}),
    )
    .await
    .ok();
    assert_eq!(v["role"]["description"], "d");
    send(
        Method::DELETE,
        v3("roles/delete"),
        json!({"role_id": role_id}),
    )
    .await
    .ok();
    app.get(ADMIN, &v3(&format!("roles/get?role_id={role_id}")))
        .await
        .code(404, "RESOURCE_DOES_NOT_EXIST");
}

/// A user's own grant on `*` covers every resource of its type, in checks and searches.
#[tokio::test]
async fn a_users_grant_on_star_covers_every_resource() {
    let app = App::new(&[("auth.default_permission", json!("NO_PERMISSIONS"))]).await;
    app.user(ALICE.0, ALICE.1).await;
    let a = app.experiment(ADMIN, "a").await;
    let get = |id: &str| format!("experiments/get?experiment_id={id}");
    app.get(ALICE, &get(&a)).await.denied();
    app.grant("alice", "experiment", "*", "READ").await;
    app.get(ALICE, &get(&a)).await.ok();
    let v = app.post(ALICE, "experiments/search", json!({})).await.ok();
    assert_eq!(v["experiments"].as_array().unwrap().len(), 2, "{v}");
    // A DENY on one experiment still vetoes it.
    app.grant("alice", "experiment", &a, "DENY").await;
    app.get(ALICE, &get(&a)).await.denied();
    let v = app.post(ALICE, "experiments/search", json!({})).await.ok();
    assert_eq!(v["experiments"].as_array().unwrap().len(), 1, "{v}");
}

// ----- searches ---------------------------------------------------------------------------------

#[tokio::test]
async fn searches_return_only_what_the_caller_may_read_with_full_pages() {
    let app = App::new(&[("auth.default_permission", json!("NO_PERMISSIONS"))]).await;
    app.user(ALICE.0, ALICE.1).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(app.experiment(ADMIN, &format!("e{i}")).await);
    }
    for id in [&ids[0], &ids[2], &ids[3], &ids[5]] {
        app.grant("alice", "experiment", id, "READ").await;
    }
    // Pages of two: full pages and a token that continues, never an unreadable experiment.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let v = app
            .post(
                ALICE,
                "experiments/search",
                json!({"max_results": 2, "page_token": token}),
            )
            .await
            .ok();
        let page: Vec<String> = v["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["experiment_id"].as_str().unwrap().to_owned())
            .collect();
        pages += 1;
        seen.extend(page.clone());
        match v["next_page_token"].as_str() {
            Some(t) if !t.is_empty() => {
                assert_eq!(page.len(), 2, "a page before the last is full");
                token = t.to_owned();
            }
            _ => break,
        }
    }
    seen.sort();
    let mut want = vec![
        ids[0].clone(),
        ids[2].clone(),
        ids[3].clone(),
        ids[5].clone(),
    ];
    want.sort();
    assert_eq!(seen, want);
    assert_eq!(pages, 2);
    // A user filter still applies on top.
    let v = app
        .post(
            ALICE,
            "experiments/search",
            json!({"filter": "name = 'e1'"}),
        )
        .await
        .ok();
    assert!(
        v.get("experiments")
            .is_none_or(|e| e.as_array().unwrap().is_empty()),
        "{v}"
    );

    // Runs: only the readable experiments are searched.
    for id in [&ids[0], &ids[1]] {
        app.post(ADMIN, "runs/create", json!({"experiment_id": id}))
            .await
            .ok();
    }
    let v = app
        .post(
            ALICE,
            "runs/search",
            json!({"experiment_ids": [ids[0], ids[1]]}),
        )
        .await
        .ok();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{v}");
    assert_eq!(runs[0]["info"]["experiment_id"], ids[0].as_str());

    // Registered models and versions: by name, in the query.
    for name in ["a", "b", "c"] {
        app.post(ADMIN, "registered-models/create", json!({"name": name}))
            .await
            .ok();
    }
    app.grant("alice", "registered_model", "b", "READ").await;
    let v = app.get(ALICE, "registered-models/search").await.ok();
    let names: Vec<&str> = v["registered_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b"]);
    let v = app.get(ADMIN, "registered-models/search").await.ok();
    assert_eq!(v["registered_models"].as_array().unwrap().len(), 3);
    let run = app
        .post(ADMIN, "runs/create", json!({"experiment_id": ids[0]}))
        .await
        .ok()["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for name in ["a", "b"] {
        app.post(
            ADMIN,
            "model-versions/create",
            json!({"name": name, "source": format!("runs:/{run}/m"), "run_id": run}),
        )
        .await
        .ok();
    }
    let v = app
        .get(ADMIN, "model-versions/get?name=a&version=1")
        .await
        .ok();
    assert_eq!(v["model_version"]["user_id"], "admin");
    let v = app.get(ALICE, "model-versions/search").await.ok();
    let names: Vec<&str> = v["model_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b"]);
    // LoggedModels: only the readable experiments are searched.
    for id in [&ids[0], &ids[1]] {
        app.post(ADMIN, "logged-models", json!({"experiment_id": id}))
            .await
            .ok();
    }
    let v = app
        .post(
            ALICE,
            "logged-models/search",
            json!({"experiment_ids": [ids[0], ids[1]]}),
        )
        .await
        .ok();
    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["info"]["experiment_id"], ids[0].as_str());
    let v = app
        .post(
            ALICE,
            "logged-models/search",
            json!({"experiment_ids": [ids[1]]}),
        )
        .await
        .ok();
    assert!(
        v.get("models")
            .is_none_or(|m| m.as_array().unwrap().is_empty()),
        "{v}"
    );
    // Nothing readable at all: an empty page.
    app.user(BOB.0, BOB.1).await;
    let v = app.get(BOB, "registered-models/search").await.ok();
    assert!(
        v.get("registered_models")
            .is_none_or(|m| m.as_array().unwrap().is_empty())
    );

    // With READ by default, a DENY hides just that experiment.
    let app = App::new(&[]).await;
    app.user(ALICE.0, ALICE.1).await;
    let a = app.experiment(ADMIN, "a").await;
    let b = app.experiment(ADMIN, "b").await;
    app.grant("alice", "experiment", &a, "DENY").await;
    let v = app.post(ALICE, "experiments/search", json!({})).await.ok();
    let got: Vec<&str> = v["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["experiment_id"].as_str().unwrap())
        .collect();
    assert!(got.contains(&b.as_str()) && got.contains(&"0") && !got.contains(&a.as_str()));
}

// ----- the auth REST API ------------------------------------------------------------------------

#[tokio::test]
async fn the_auth_api_answers_in_mlflows_shapes() {
    let app = App::new(&[]).await;
    let v = app
        .post(
            ADMIN,
            "users/create",
            json!({"username": "alice", "password": ALICE.1}),
        )
        .await
        .ok();
    assert_eq!(v["user"]["username"], "alice");
    assert_eq!(v["user"]["is_admin"], false);
    assert!(v["user"].get("password_hash").is_none());
    app.post(
        ADMIN,
        "users/create",
        json!({"username": "alice", "password": ALICE.1}),
    )
    .await
    .code(400, "RESOURCE_ALREADY_EXISTS");
    app.post(
        ADMIN,
        "users/create",
        json!({"username": "bob", "password": "short"}),
    )
    .await
    .code(400, "INVALID_PARAMETER_VALUE");
    app.get(ADMIN, "users/get?username=nobody")
        .await
        .code(404, "RESOURCE_DOES_NOT_EXIST");
    let v = app.get(ALICE, "users/current").await.ok();
    assert_eq!(v["user"]["username"], "alice");
    assert_eq!(v["is_basic_auth"], true);
    let v = app.get(ADMIN, "users/list").await.ok();
    assert_eq!(v["users"].as_array().unwrap().len(), 2);

    // Self-service password changes need the current password.
    let change = |current: Option<&str>, new: &str| {
        let mut body = json!({"username": "alice", "password": new});
        if let Some(c) = current {
            body["current_password"] = c.into();
        }
        body
    };
    let patch = |user, body: Value| {
        let app = &app;
        async move {
            app.send(
                Method::PATCH,
                &api("users/update-password"),
                Some(user),
                Some(&body),
            )
            .await
        }
    };
    patch(ALICE, change(None, "new-password-12"))
        .await
        .code(400, "INVALID_PARAMETER_VALUE");
    patch(ALICE, change(Some("wrong"), "new-password-12"))
        .await
        .code(400, "INVALID_PARAMETER_VALUE");
    patch(ALICE, change(Some(ALICE.1), "new-password-12"))
        .await
        .ok();
    app.get(ALICE, "users/current").await;
    let r = app.get(ALICE, "users/current").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let alice = ("alice", "new-password-12");
    app.get(alice, "users/current").await.ok();
    // An admin sets it without the current one.
    patch(ADMIN, change(None, ALICE.1)).await.ok();
    app.get(ALICE, "users/current").await.ok();

    // update-admin makes alice an admin: she bypasses every check.
    let exp = app.experiment(ADMIN, "x").await;
    app.send(
        Method::PATCH,
        &api("users/update-admin"),
        Some(ADMIN),
        Some(&json!({"username": "alice", "is_admin": true})),
    )
    .await
    .ok();
    app.post(ALICE, "experiments/delete", json!({"experiment_id": exp}))
        .await
        .ok();

    // MLflow 3.18's per-user grants.
    app.post(
        ADMIN,
        "users/create",
        json!({"username": "bob", "password": BOB.1}),
    )
    .await
    .ok();
    let grant = json!({"username": "bob", "resource_type": "experiment",
                       "resource_id": "0", "permission": "EDIT"});
    let v3 = |p: &str| format!("/api/3.0/mlflow/users/permissions/{p}");
    app.send(Method::POST, &v3("grant"), Some(ADMIN), Some(&grant))
        .await
        .ok();
    app.send(Method::POST, &v3("grant"), Some(ADMIN), Some(&grant))
        .await
        .code(400, "RESOURCE_ALREADY_EXISTS");
    let mut bad = grant.clone();
    bad["permission"] = "NO_PERMISSIONS".into();
    app.send(Method::POST, &v3("grant"), Some(ADMIN), Some(&bad))
        .await
        .code(400, "INVALID_PARAMETER_VALUE");
    let v = app
        .get(BOB, "/api/3.0/mlflow/users/current/permissions")
        .await
        .ok();
    assert_eq!(
        v,
        json!({"is_admin": false, "permissions": [
            {"resource_type": "experiment", "resource_pattern": "0", "permission": "EDIT"}]})
    );
    app.send(Method::POST, &v3("revoke"), Some(ADMIN), Some(&grant))
        .await
        .ok();
    app.send(Method::POST, &v3("revoke"), Some(ADMIN), Some(&grant))
        .await
        .code(404, "RESOURCE_DOES_NOT_EXIST");

    // The 2.x per-resource endpoints.
    let body = json!({"experiment_id": "0", "username": "bob", "permission": "MANAGE"});
    let v = app
        .post(ADMIN, "experiments/permissions/create", body.clone())
        .await
        .ok();
    assert_eq!(v["experiment_permission"]["experiment_id"], "0");
    assert_eq!(v["experiment_permission"]["permission"], "MANAGE");
    app.post(ADMIN, "experiments/permissions/create", body)
        .await
        .code(400, "RESOURCE_ALREADY_EXISTS");
    app.send(
        Method::PATCH,
        &api("experiments/permissions/update"),
        Some(ADMIN),
        Some(&json!({"experiment_id": "0", "username": "bob", "permission": "READ"})),
    )
    .await
    .ok();
    let v = app
        .get(
            ADMIN,
            "experiments/permissions/get?experiment_id=0&username=bob",
        )
        .await
        .ok();
    assert_eq!(v["experiment_permission"]["permission"], "READ");
    app.send(
        Method::DELETE,
        &api("experiments/permissions/delete"),
        Some(ADMIN),
        Some(&json!({"experiment_id": "0", "username": "bob"})),
    )
    .await
    .ok();
    app.get(
        ADMIN,
        "experiments/permissions/get?experiment_id=0&username=bob",
    )
    .await
    .code(404, "RESOURCE_DOES_NOT_EXIST");
    app.post(ADMIN, "registered-models/create", json!({"name": "m"}))
        .await
        .ok();
    let v = app
        .post(
            ADMIN,
            "registered-models/permissions/create",
            json!({"name": "m", "username": "bob", "permission": "EDIT"}),
        )
        .await
        .ok();
    assert_eq!(v["registered_model_permission"]["name"], "m");

    // Users cannot delete themselves; deleting bob ends his access.
    app.send(
        Method::DELETE,
        &api("users/delete"),
        Some(ADMIN),
        Some(&json!({"username": "admin"})),
    )
    .await
    .code(400, "BAD_REQUEST");
    app.send(
        Method::DELETE,
        &api("users/delete"),
        Some(ADMIN),
        Some(&json!({"username": "bob"})),
    )
    .await
    .ok();
    assert_eq!(
        app.get(BOB, "users/current").await.status,
        StatusCode::UNAUTHORIZED
    );
}

// ----- start-up ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_first_admin_needs_a_real_password_and_is_created_once() {
    let dir = tempfile::tempdir().unwrap();
    let load = |settings: &[(&'static str, Value)]| {
        let mut o = overrides(dir.path(), settings);
        o.set("auth.enabled", "--app-name", true);
        Loader::new(dir.path()).overrides(o).load().unwrap()
    };
    let store_of = |loaded: &cairn_core::config::LoadedConfig| {
        Assembly::new(loaded)
            .unwrap()
            .server(&mut |_| {})
            .unwrap()
            .auth
            .unwrap()
    };
    let loaded = load(&[]);
    let store = store_of(&loaded);
    for (password, says) in [
        (
            None,
            "`auth.admin_password` (or MLFLOW_AUTH_ADMIN_PASSWORD) must be set",
        ),
        (Some("password1234"), "legacy default"),
        (Some("short"), "at least 12 characters"),
    ] {
        let mut c = loaded.config().auth.clone();
        c.admin_password = password.map(str::to_owned);
        let e = ensure_admin(store.as_ref(), &c)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{e}");
    }
    let c = loaded.config().auth.clone();
    assert_eq!(
        ensure_admin(store.as_ref(), &c).await.unwrap().as_deref(),
        Some("admin")
    );
    // Users exist now: nothing is created and no password is needed.
    let mut c = c.clone();
    c.admin_password = None;
    assert_eq!(ensure_admin(store.as_ref(), &c).await.unwrap(), None);
    let user = store.get_user("admin").await.unwrap().unwrap();
    assert!(user.is_admin && user.password_hash.starts_with("$argon2id$"));

    // Config mistakes name the key.
    let mut o = overrides(dir.path(), &[]);
    o.set("auth.default_permission", "--test", "WRITE");
    let e = Loader::new(dir.path())
        .overrides(o)
        .load()
        .unwrap_err()
        .to_string();
    assert!(e.contains("auth.default_permission"), "{e}");
}

/// Trace routes follow the permission on the trace's experiment: READ reads the trace and
/// searches find it, but tags need EDIT; another experiment's traces stay hidden.
#[tokio::test]
async fn traces_follow_their_experiments_permission() {
    let app = App::new(&[("auth.default_permission", json!("NO_PERMISSIONS"))]).await;
    app.user(ALICE.0, ALICE.1).await;
    let exp = app.experiment(ADMIN, "traced").await;
    let other = app.experiment(ADMIN, "hidden").await;
    let start = |id: &str, exp: &str| {
        json!({"trace": {"trace_info": {
            "trace_id": id,
            "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}},
            "request_time": "2026-01-01T00:00:00Z", "state": "OK",
        }}})
    };
    let (t1, t2) = (
        "tr-00000000000000000000000000000001",
        "tr-00000000000000000000000000000002",
    );
    for (t, e) in [(t1, &exp), (t2, &other)] {
        let r = app
            .send(
                Method::POST,
                "/api/3.0/mlflow/traces",
                Some(ADMIN),
                Some(&start(t, e)),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    app.grant(ALICE.0, "experiment", &exp, "READ").await;
    let get = |t: &str| format!("/api/3.0/mlflow/traces/{t}");
    let r = app.send(Method::GET, &get(t1), Some(ALICE), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.send(Method::GET, &get(t2), Some(ALICE), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let tag = json!({"key": "k", "value": "v"});
    let r = app
        .send(
            Method::PATCH,
            &format!("{}/tags", get(t1)),
            Some(ALICE),
            Some(&tag),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let search = json!({"locations": [
        {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}},
        {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": other}},
    ]});
    let r = app
        .send(
            Method::POST,
            "/api/3.0/mlflow/traces/search",
            Some(ALICE),
            Some(&search),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = r.ok();
    let found: Vec<&str> = body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(found, vec![t1]);
    app.send(
        Method::PATCH,
        &api("experiments/permissions/update"),
        Some(ADMIN),
        Some(&json!({"experiment_id": exp, "username": ALICE.0, "permission": "EDIT"})),
    )
    .await
    .ok();
    let r = app
        .send(
            Method::PATCH,
            &format!("{}/tags", get(t1)),
            Some(ALICE),
            Some(&tag),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}
