//! An in-process fake Kubernetes API server for tests (feature `fake`).
//!
//! No real kube-apiserver can be had on the machines this project builds on, so the tests run
//! the backend, through the real `kube` client and a generated kubeconfig, against this axum
//! app. It serves what the client uses for Jobs and pods, with the API server's own shapes:
//!
//! * discovery (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/batch/v1`), enough for
//!   `kubectl get jobs,pods`, `kubectl logs -l job-name` and `kubectl delete job
//!   --cascade=foreground` against it too;
//! * Jobs (`batch/v1`): create, get (also `/status`), list and watch (label and field
//!   selectors: `=`, `==`, `!=`, `key`, `!key`), delete with `propagationPolicy`
//!   (`Foreground`: the Job gets a `deletionTimestamp` and the `foregroundDeletion`
//!   finalizer, its pods go, then the Job; `Background`: the Job goes, then its pods;
//!   `Orphan`, the default: the Job only);
//! * pods: get, list and watch by label selector, and `log` (`container`, `follow`);
//! * `Status` errors: 404 (`NotFound`), 409 (`AlreadyExists`), 422 (`Invalid`: a name that is
//!   not a DNS-1123 subdomain or longer than 63 characters), 400 (a container still waiting),
//!   and 410 (`Expired`) to a watch from a resource version older than the history kept —
//!   [`FakeCluster::expire_watches`] ends every open watch and drops the history, as an API
//!   server does after compaction.
//!
//! A small Job controller creates a pod per attempt (labels `job-name`, `controller-uid`, ...)
//! and retries failed pods up to `spec.backoffLimit` (default 6), then marks the Job `Failed`
//! with reason `BackoffLimitExceeded`; a succeeded pod makes it `Complete`. The "kubelet" runs
//! each container's `command` + `args` as a local process group (init containers first, in
//! order), with the container's `env` (plus the host's `PATH` and `HOME`), stdout and stderr
//! into one log. `emptyDir` volumes are directories on the host; a container's `workingDir`
//! under a volume's `mountPath` runs in that directory, so an init container can prepare files
//! for the main one. The image is never pulled. A pod template annotation
//! [`BEHAVIOUR`] scripts what a real cluster does on its own: `image-pull-backoff` (the pod
//! stays `Pending`, its container waiting with `ErrImagePull`, then `ImagePullBackOff`),
//! `unschedulable` (`Pending`, condition `PodScheduled=False`), `oom-killed` (the container is
//! terminated with reason `OOMKilled`, exit code 137).
//!
//! What it does not do: admission, authentication and RBAC, scheduling and resources, image
//! pulls, the TTL-after-finished controller, `parallelism`/`completions` other than 1, any
//! kind other than Jobs and pods, PATCH, `resourceVersion` preconditions, tables for
//! `kubectl get` (it lists names and ages only).

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, watch};

/// The pod template annotation that scripts what the fake cluster does with a pod.
pub const BEHAVIOUR: &str = "fake.cairn/behaviour";

/// How many events the fake keeps for watches to resume from.
const HISTORY: usize = 10_000;

/// A running fake API server, stopped when dropped.
pub struct FakeCluster {
    state: Arc<Cluster>,
    url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile_dir::Dir,
}

/// A temporary directory for pods' volumes and working directories (no dependency on
/// `tempfile` outside tests: it is removed when the cluster is dropped).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> std::io::Result<Dir> {
            let path = std::env::temp_dir()
                .join(format!("cairn-fake-kube-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&path)?;
            Ok(Dir(path))
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl FakeCluster {
    /// Starts a fake API server on 127.0.0.1 (a free port) on a thread of its own, with the
    /// namespaces `default` and `mlflow`.
    pub fn start() -> FakeCluster {
        let dir = tempfile_dir::Dir::new().expect("a temporary directory for the fake cluster");
        let (changes, _) = broadcast::channel(4096);
        let (epoch, _) = watch::channel(0u64);
        let state = Arc::new(Cluster {
            store: Mutex::new(Store {
                namespaces: ["default", "mlflow"].map(String::from).into(),
                ..Store::default()
            }),
            changes,
            epoch,
            gone: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            root: dir.path().to_path_buf(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state.clone());
        let thread = std::thread::Builder::new()
            .name("fake-kube-apiserver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("the fake cluster's runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                });
                // Open watches and log streams are dropped with the runtime.
                rt.shutdown_timeout(Duration::from_millis(100));
            })
            .expect("a thread for the fake cluster");
        FakeCluster {
            state,
            url,
            shutdown: Some(tx),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// The server's URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig whose context `context` (also the current context) points at this server.
    pub fn kubeconfig(&self, context: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {context}\nclusters:\n- name: fake\n  \
             cluster:\n    server: {url}\ncontexts:\n- name: {context}\n  context:\n    \
             cluster: fake\n    user: fake\n    namespace: default\nusers:\n- name: fake\n  \
             user:\n    token: fake-token\n",
            url = self.url
        )
    }

    /// Ends every open watch and forgets the event history, as an API server does when it
    /// compacts while the cluster's resource version moves on: a client resuming from a
    /// version it saw before gets `410 Gone` and must list again.
    pub fn expire_watches(&self) {
        let mut store = self.state.store.lock().unwrap();
        // Meanwhile something else in the cluster changed (the resource version is global),
        // so no watcher of these Jobs and pods has seen the newest version.
        store.rv += 1;
        store.events.clear();
        store.oldest = store.rv + 1;
        self.state.epoch.send_modify(|e| *e += 1);
    }

    /// How many `410 Gone` answers the server has given.
    pub fn gone_answers(&self) -> usize {
        self.state.gone.load(Ordering::SeqCst)
    }

    /// Every Job, as JSON.
    pub fn jobs(&self) -> Vec<Value> {
        let store = self.state.store.lock().unwrap();
        store.jobs.values().map(to_json).collect()
    }

    /// Every pod, as JSON.
    pub fn pods(&self) -> Vec<Value> {
        let store = self.state.store.lock().unwrap();
        store.pods.values().map(to_json).collect()
    }

    /// Every Job deletion asked for, in order: the Job's name and the propagation policy.
    pub fn deletions(&self) -> Vec<(String, String)> {
        self.state.store.lock().unwrap().deletions.clone()
    }

    /// The most pods of Jobs that were running (a container started and not yet ended) at
    /// the same time, since the start.
    pub fn max_running_pods(&self) -> usize {
        self.state.store.lock().unwrap().max_running
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        // Gone for its clients first: the deaths of the containers killed below must not reach
        // a watch as pod failures before the server stops.
        self.state.stopping.store(true, Ordering::SeqCst);
        // Kill what the "kubelet" still runs.
        let pids: Vec<i32> = {
            let store = self.state.store.lock().unwrap();
            store.processes.values().copied().collect()
        };
        for pid in pids {
            kill_group(pid);
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.state.epoch.send_modify(|e| *e += 1);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn kill_group(pid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Job,
    Pod,
}

#[derive(Clone, Debug)]
struct Event {
    rv: u64,
    kind: Kind,
    kind_type: &'static str,
    object: Value,
}

type Key = (String, String);

#[derive(Default)]
struct Store {
    rv: u64,
    /// The smallest resource version a watch can resume from.
    oldest: u64,
    namespaces: std::collections::BTreeSet<String>,
    jobs: BTreeMap<Key, Job>,
    pods: BTreeMap<Key, Pod>,
    events: VecDeque<Event>,
    /// Per pod and container, its log.
    logs: HashMap<(String, String, String), Arc<Log>>,
    /// Per pod, the process group the kubelet runs.
    processes: HashMap<Key, i32>,
    running: usize,
    max_running: usize,
    /// Every Job deletion asked for: its name and propagation policy.
    deletions: Vec<(String, String)>,
}

struct Cluster {
    store: Mutex<Store>,
    changes: broadcast::Sender<Event>,
    /// Bumped to end every open watch.
    epoch: watch::Sender<u64>,
    gone: AtomicUsize,
    /// Set when the cluster is being dropped: the containers it kills then are not reported,
    /// as an API server that has gone away reports nothing.
    stopping: AtomicBool,
    root: PathBuf,
}

impl Store {
    /// Records a change of `object` (its resource version set to the next one) and tells the
    /// watches.
    fn record<T: serde::Serialize>(
        &mut self,
        changes: &broadcast::Sender<Event>,
        kind: Kind,
        kind_type: &'static str,
        meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        object: &T,
    ) {
        self.rv += 1;
        meta.resource_version = Some(self.rv.to_string());
        let mut value = to_json(object);
        value["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let event = Event {
            rv: self.rv,
            kind,
            kind_type,
            object: value,
        };
        if self.events.len() == HISTORY {
            self.events.pop_front();
            self.oldest = self.events.front().map_or(self.rv, |e| e.rv);
        }
        self.events.push_back(event.clone());
        let _ = changes.send(event);
    }
}

impl Cluster {
    fn update_job(&self, key: &Key, change: impl FnOnce(&mut Job)) -> bool {
        let mut store = self.store.lock().unwrap();
        let Some(mut job) = store.jobs.get(key).cloned() else {
            return false;
        };
        change(&mut job);
        let mut meta = job.metadata.clone();
        store.record(&self.changes, Kind::Job, "MODIFIED", &mut meta, &job);
        job.metadata = meta;
        store.jobs.insert(key.clone(), job);
        true
    }

    fn update_pod(&self, key: &Key, change: impl FnOnce(&mut Pod)) -> bool {
        let mut store = self.store.lock().unwrap();
        let Some(mut pod) = store.pods.get(key).cloned() else {
            return false;
        };
        change(&mut pod);
        let mut meta = pod.metadata.clone();
        store.record(&self.changes, Kind::Pod, "MODIFIED", &mut meta, &pod);
        pod.metadata = meta;
        store.pods.insert(key.clone(), pod);
        true
    }

    fn delete_pod(&self, key: &Key) {
        let mut store = self.store.lock().unwrap();
        if let Some(pid) = store.processes.remove(key) {
            kill_group(pid);
        }
        if let Some(mut pod) = store.pods.remove(key) {
            let mut meta = pod.metadata.clone();
            store.record(&self.changes, Kind::Pod, "DELETED", &mut meta, &pod);
            pod.metadata = meta;
        }
    }

    fn job_alive(&self, key: &Key) -> bool {
        let store = self.store.lock().unwrap();
        store
            .jobs
            .get(key)
            .is_some_and(|j| j.metadata.deletion_timestamp.is_none())
    }

    fn pod_alive(&self, key: &Key) -> bool {
        self.store.lock().unwrap().pods.contains_key(key)
    }
}

fn now() -> Time {
    Time(Timestamp::now())
}

// ---------------------------------------------------------------------------------------------
// HTTP

fn router(state: Arc<Cluster>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(api_versions))
        .route("/apis", get(api_groups))
        .route("/api/v1", get(core_resources))
        .route("/apis/batch/v1", get(batch_resources))
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs",
            get(list_jobs).post(create_job),
        )
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
            get(get_job).delete(delete_job),
        )
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs/{name}/status",
            get(get_job),
        )
        .route("/api/v1/namespaces/{ns}/pods", get(list_pods))
        .route("/api/v1/namespaces/{ns}/pods/{name}", get(get_pod))
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
        .fallback(|| async {
            status_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            )
        })
        .with_state(state)
}

/// A `Status` object, as the API server answers errors.
fn status_error(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        axum::Json(json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16(),
        })),
    )
        .into_response()
}

fn not_found(what: &str, name: &str) -> Response {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{what} \"{name}\" not found"),
    )
}

async fn version() -> Response {
    axum::Json(json!({
        "major": "1", "minor": "35", "gitVersion": "v1.35.0-cairn-fake",
        "platform": "linux/amd64"
    }))
    .into_response()
}

async fn api_versions() -> Response {
    axum::Json(json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}))
        .into_response()
}

async fn api_groups() -> Response {
    axum::Json(json!({
        "kind": "APIGroupList", "apiVersion": "v1",
        "groups": [{"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}]
    }))
    .into_response()
}

fn resource(name: &str, kind: &str, verbs: &[&str]) -> Value {
    json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": true, "kind": kind, "verbs": verbs})
}

async fn core_resources() -> Response {
    axum::Json(json!({
        "kind": "APIResourceList", "groupVersion": "v1",
        "resources": [resource("pods", "Pod", &["get", "list", "watch"]),
                      {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}]
    }))
    .into_response()
}

async fn batch_resources() -> Response {
    axum::Json(json!({
        "kind": "APIResourceList", "groupVersion": "batch/v1",
        "resources": [resource("jobs", "Job", &["create", "delete", "get", "list", "watch"]),
                      {"name": "jobs/status", "singularName": "", "namespaced": true, "kind": "Job", "verbs": ["get"]}]
    }))
    .into_response()
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ListQuery {
    watch: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
    resource_version: Option<String>,
    timeout_seconds: Option<u64>,
}

/// A parsed selector: `key=value` (or `==`), `key!=value`, `key` (exists) and `!key` terms,
/// comma-separated; a term's value `None` tests existence.
struct Selector(Vec<(String, bool, Option<String>)>);

impl Selector {
    fn parse(text: Option<&str>) -> Result<Selector, Box<Response>> {
        let mut terms = Vec::new();
        for term in text
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let (k, eq, v) = if let Some((k, v)) = term.split_once("!=") {
                (k, false, Some(v))
            } else if let Some((k, v)) = term.split_once("==") {
                (k, true, Some(v))
            } else if let Some((k, v)) = term.split_once('=') {
                (k, true, Some(v))
            } else if let Some(k) = term.strip_prefix('!') {
                (k, false, None)
            } else if !term.contains([' ', '(', ')']) {
                (term, true, None)
            } else {
                return Err(Box::new(status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!(
                        "unable to parse requirement: {term:?} (the fake supports =, !=, \
                         key and !key only)"
                    ),
                )));
            };
            terms.push((k.trim().to_owned(), eq, v.map(|v| v.trim().to_owned())));
        }
        Ok(Selector(terms))
    }

    fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.0.iter().all(|(k, eq, v)| {
            let found = get(k);
            let hit = match v {
                Some(v) => found.as_deref() == Some(v.as_str()),
                None => found.is_some(),
            };
            hit == *eq
        })
    }
}

/// Whether `object` (JSON) in namespace `ns` matches the selectors.
fn selected(object: &Value, ns: &str, labels: &Selector, fields: &Selector) -> bool {
    let meta = &object["metadata"];
    meta["namespace"] == ns
        && labels.matches(|k| meta["labels"][k].as_str().map(String::from))
        && fields.matches(|k| match k {
            "metadata.name" => meta["name"].as_str().map(String::from),
            "metadata.namespace" => meta["namespace"].as_str().map(String::from),
            "status.phase" => object["status"]["phase"].as_str().map(String::from),
            _ => None,
        })
}

async fn list_jobs(
    State(c): State<Arc<Cluster>>,
    Path(ns): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    list_or_watch(c, Kind::Job, ns, q)
}

async fn list_pods(
    State(c): State<Arc<Cluster>>,
    Path(ns): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    list_or_watch(c, Kind::Pod, ns, q)
}

fn list_or_watch(c: Arc<Cluster>, kind: Kind, ns: String, q: ListQuery) -> Response {
    let labels = match Selector::parse(q.label_selector.as_deref()) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let fields = match Selector::parse(q.field_selector.as_deref()) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let store = c.store.lock().unwrap();
    let current: Vec<Value> = match kind {
        Kind::Job => store.jobs.values().map(to_json).collect(),
        Kind::Pod => store.pods.values().map(to_json).collect(),
    };
    let current: Vec<Value> = current
        .into_iter()
        .filter(|o| selected(o, &ns, &labels, &fields))
        .collect();
    let (api_version, list_kind) = match kind {
        Kind::Job => ("batch/v1", "JobList"),
        Kind::Pod => ("v1", "PodList"),
    };
    if !matches!(q.watch.as_deref(), Some("true" | "1")) {
        return axum::Json(json!({
            "apiVersion": api_version, "kind": list_kind,
            "metadata": {"resourceVersion": store.rv.to_string()},
            "items": current,
        }))
        .into_response();
    }
    // A watch: replay what happened after the version asked for (or the current objects as
    // ADDED for "" and "0"), then follow the changes.
    let from: Option<u64> = match q.resource_version.as_deref() {
        None | Some("" | "0") => None,
        Some(v) => match v.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("invalid resource version {v:?}"),
                );
            }
        },
    };
    let mut first: Vec<Value> = Vec::new();
    if let Some(from) = from {
        if from + 1 < store.oldest {
            c.gone.fetch_add(1, Ordering::SeqCst);
            let line = json!({"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {from} ({})", store.oldest),
                "reason": "Expired", "code": 410}});
            return watch_body(vec![line], None);
        }
        first.extend(
            store
                .events
                .iter()
                .filter(|e| {
                    e.rv > from && e.kind == kind && selected(&e.object, &ns, &labels, &fields)
                })
                .map(|e| json!({"type": e.kind_type, "object": e.object})),
        );
    } else {
        first.extend(
            current
                .into_iter()
                .map(|o| json!({"type": "ADDED", "object": o})),
        );
    }
    let rx = c.changes.subscribe();
    let mut epoch = c.epoch.subscribe();
    epoch.mark_unchanged();
    drop(store);
    let timeout = Duration::from_secs(q.timeout_seconds.unwrap_or(1800).max(1));
    let follow = futures_util::stream::unfold(
        (rx, epoch, Box::pin(tokio::time::sleep(timeout))),
        move |(mut rx, mut epoch, mut deadline)| {
            let labels = Selector(labels.0.clone());
            let fields = Selector(fields.0.clone());
            let ns = ns.clone();
            async move {
                loop {
                    tokio::select! {
                        _ = &mut deadline => return None,
                        _ = epoch.changed() => return None,
                        event = rx.recv() => match event {
                            Ok(e) if e.kind == kind && selected(&e.object, &ns, &labels, &fields) => {
                                let line = json!({"type": e.kind_type, "object": e.object});
                                return Some((line, (rx, epoch, deadline)));
                            }
                            Ok(_) => {}
                            // Lagged or closed: end the watch; the client resumes.
                            Err(_) => return None,
                        }
                    }
                }
            }
        },
    );
    watch_body(first, Some(Box::pin(follow)))
}

type Lines = std::pin::Pin<Box<dyn futures_util::Stream<Item = Value> + Send>>;

fn watch_body(first: Vec<Value>, rest: Option<Lines>) -> Response {
    use futures_util::StreamExt;
    let head = futures_util::stream::iter(first);
    let lines: Lines = match rest {
        Some(rest) => Box::pin(head.chain(rest)),
        None => Box::pin(head),
    };
    let body = lines.map(|v| Ok::<_, std::convert::Infallible>(format!("{v}\n")));
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(body))
        .unwrap()
}

async fn get_job(
    State(c): State<Arc<Cluster>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let store = c.store.lock().unwrap();
    match store.jobs.get(&(ns, name.clone())) {
        Some(job) => axum::Json(to_json(job)).into_response(),
        None => not_found("jobs.batch", &name),
    }
}

async fn get_pod(
    State(c): State<Arc<Cluster>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let store = c.store.lock().unwrap();
    match store.pods.get(&(ns, name.clone())) {
        Some(pod) => axum::Json(to_json(pod)).into_response(),
        None => not_found("pods", &name),
    }
}

/// A DNS-1123 subdomain of at most 63 characters (a Job's name becomes a label value).
fn valid_job_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

async fn create_job(
    State(c): State<Arc<Cluster>>,
    Path(ns): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut job: Job = match serde_json::from_slice(&body) {
        Ok(j) => j,
        Err(e) => {
            return status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("the body is not a batch/v1 Job: {e}"),
            );
        }
    };
    let name = job.metadata.name.clone().unwrap_or_default();
    if job.metadata.namespace.as_deref().is_some_and(|n| n != ns) {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        );
    }
    if !valid_job_name(&name) {
        return status_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            &format!(
                "Job.batch \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a \
                 lowercase RFC 1123 subdomain of at most 63 characters is required"
            ),
        );
    }
    let containers = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map_or(0, |s| s.containers.len());
    if containers == 0 {
        return status_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            &format!(
                "Job.batch \"{name}\" is invalid: spec.template.spec.containers: Required value"
            ),
        );
    }
    let key = (ns.clone(), name.clone());
    let uid = uuid::Uuid::new_v4().to_string();
    {
        let mut store = c.store.lock().unwrap();
        if !store.namespaces.contains(&ns) {
            return not_found("namespaces", &ns);
        }
        if store.jobs.contains_key(&key) {
            return status_error(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("jobs.batch \"{name}\" already exists"),
            );
        }
        job.metadata.namespace = Some(ns.clone());
        job.metadata.uid = Some(uid.clone());
        job.metadata.creation_timestamp = Some(now());
        job.status = Some(JobStatus::default());
        let mut meta = job.metadata.clone();
        store.record(&c.changes, Kind::Job, "ADDED", &mut meta, &job);
        job.metadata = meta;
        store.jobs.insert(key.clone(), job.clone());
    }
    tokio::spawn(control_job(c.clone(), key));
    (StatusCode::CREATED, axum::Json(to_json(&job))).into_response()
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DeleteOptions {
    propagation_policy: Option<String>,
}

async fn delete_job(
    State(c): State<Arc<Cluster>>,
    Path(key): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let options: DeleteOptions = serde_json::from_slice(&body).unwrap_or_default();
    let policy = options
        .propagation_policy
        .unwrap_or_else(|| "Orphan".into());
    let pods: Vec<Key> = {
        let mut store = c.store.lock().unwrap();
        store.deletions.push((key.1.clone(), policy.clone()));
        let Some(job) = store.jobs.get(&key) else {
            return not_found("jobs.batch", &key.1);
        };
        let uid = job.metadata.uid.clone().unwrap_or_default();
        store
            .pods
            .iter()
            .filter(|(_, p)| {
                p.metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|r| r.uid == uid))
            })
            .map(|(k, _)| k.clone())
            .collect()
    };
    let remove_job = |c: &Cluster| {
        let mut store = c.store.lock().unwrap();
        if let Some(mut job) = store.jobs.remove(&key) {
            let mut meta = job.metadata.clone();
            store.record(&c.changes, Kind::Job, "DELETED", &mut meta, &job);
            job.metadata = meta;
            Some(job)
        } else {
            None
        }
    };
    match policy.as_str() {
        "Foreground" => {
            c.update_job(&key, |job| {
                job.metadata.deletion_timestamp = Some(now());
                job.metadata.finalizers = Some(vec!["foregroundDeletion".into()]);
            });
            let job = c.store.lock().unwrap().jobs.get(&key).cloned();
            let c2 = c.clone();
            let key2 = key.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                for pod in &pods {
                    c2.delete_pod(pod);
                }
                let mut store = c2.store.lock().unwrap();
                if let Some(mut job) = store.jobs.remove(&key2) {
                    let mut meta = job.metadata.clone();
                    store.record(&c2.changes, Kind::Job, "DELETED", &mut meta, &job);
                    job.metadata = meta;
                }
            });
            axum::Json(to_json(&job)).into_response()
        }
        "Background" | "Orphan" => {
            let job = remove_job(&c);
            if policy == "Background" {
                for pod in &pods {
                    c.delete_pod(pod);
                }
            }
            axum::Json(to_json(&job)).into_response()
        }
        other => status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("unknown propagationPolicy {other:?}"),
        ),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct LogQuery {
    container: Option<String>,
    follow: Option<String>,
}

async fn pod_log(
    State(c): State<Arc<Cluster>>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let follow = matches!(q.follow.as_deref(), Some("true" | "1"));
    let log = {
        let store = c.store.lock().unwrap();
        let Some(pod) = store.pods.get(&(ns.clone(), name.clone())) else {
            return not_found("pods", &name);
        };
        let containers: Vec<&Container> = pod
            .spec
            .iter()
            .flat_map(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .chain(s.containers.iter())
            })
            .collect();
        let container = match q.container {
            Some(c) => c,
            None if pod.spec.as_ref().is_some_and(|s| s.containers.len() == 1) => {
                pod.spec.as_ref().unwrap().containers[0].name.clone()
            }
            None => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("a container name must be specified for pod {name}"),
                );
            }
        };
        if !containers.iter().any(|k| k.name == container) {
            return status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("container {container} is not valid for pod {name}"),
            );
        }
        match store.logs.get(&(ns, name.clone(), container.clone())) {
            Some(log) => log.clone(),
            None => {
                let reason = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|s| s.iter().find(|s| s.name == container))
                    .and_then(|s| s.state.as_ref()?.waiting.as_ref()?.reason.clone())
                    .unwrap_or_else(|| "ContainerCreating".into());
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!(
                        "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
                    ),
                );
            }
        }
    };
    let body = futures_util::stream::unfold((log, 0usize), move |(log, pos)| async move {
        loop {
            let waker = log.clone();
            let notified = waker.grew.notified();
            let (chunk, closed) = {
                let data = log.data.lock().unwrap();
                (data.0[pos.min(data.0.len())..].to_vec(), data.1)
            };
            if !chunk.is_empty() {
                let next = pos + chunk.len();
                return Some((
                    Ok::<_, std::convert::Infallible>(bytes::Bytes::from(chunk)),
                    (log, next),
                ));
            }
            if closed || !follow {
                return None;
            }
            notified.await;
        }
    });
    Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from_stream(body))
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The Job controller and the "kubelet"

/// A container's output: the bytes and whether it has ended.
#[derive(Default)]
struct Log {
    data: Mutex<(Vec<u8>, bool)>,
    grew: Notify,
}

impl Log {
    fn push(&self, bytes: &[u8]) {
        self.data.lock().unwrap().0.extend_from_slice(bytes);
        self.grew.notify_waiters();
    }
    fn close(&self) {
        self.data.lock().unwrap().1 = true;
        self.grew.notify_waiters();
    }
}

fn condition(kind: &str, reason: &str, message: &str) -> JobCondition {
    JobCondition {
        type_: kind.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(now()),
        last_probe_time: Some(now()),
    }
}

async fn control_job(c: Arc<Cluster>, key: Key) {
    let Some(job) = c.store.lock().unwrap().jobs.get(&key).cloned() else {
        return;
    };
    let spec = job.spec.clone().unwrap_or_default();
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let mut failed = 0;
    c.update_job(&key, |j| {
        let status = j.status.get_or_insert_with(Default::default);
        status.start_time = Some(now());
    });
    loop {
        if !c.job_alive(&key) {
            return;
        }
        let pod_key = create_pod(&c, &job);
        c.update_job(&key, |j| {
            j.status.get_or_insert_with(Default::default).active = Some(1)
        });
        let Some(succeeded) = run_pod(&c, &pod_key).await else {
            return; // deleted, or stuck as scripted
        };
        if succeeded {
            c.update_job(&key, |j| {
                let status = j.status.get_or_insert_with(Default::default);
                status.active = Some(0);
                status.succeeded = Some(1);
                status.completion_time = Some(now());
                status.conditions = Some(vec![
                    condition(
                        "SuccessCriteriaMet",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                    ),
                    condition(
                        "Complete",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                    ),
                ]);
            });
            return;
        }
        failed += 1;
        c.update_job(&key, |j| {
            let status = j.status.get_or_insert_with(Default::default);
            status.active = Some(0);
            status.failed = Some(failed);
            if failed > backoff_limit {
                status.conditions = Some(vec![
                    condition(
                        "FailureTarget",
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    ),
                    condition(
                        "Failed",
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    ),
                ]);
            }
        });
        if failed > backoff_limit {
            return;
        }
    }
}

fn create_pod(c: &Cluster, job: &Job) -> Key {
    let ns = job.metadata.namespace.clone().unwrap_or_default();
    let job_name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let template = job.spec.clone().unwrap_or_default().template;
    let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..5].to_owned();
    let name = format!("{job_name}-{suffix}");
    let mut meta = template.metadata.unwrap_or_default();
    meta.name = Some(name.clone());
    meta.namespace = Some(ns.clone());
    meta.uid = Some(uuid::Uuid::new_v4().to_string());
    meta.creation_timestamp = Some(now());
    let labels = meta.labels.get_or_insert_with(Default::default);
    for (k, v) in [
        ("job-name", &job_name),
        ("batch.kubernetes.io/job-name", &job_name),
        ("controller-uid", &uid),
        ("batch.kubernetes.io/controller-uid", &uid),
    ] {
        labels.insert(k.into(), v.clone());
    }
    meta.owner_references = Some(vec![OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job_name,
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    let spec = template.spec.unwrap_or_default();
    let waiting = |c: &Container, reason: &str| ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        state: Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|k| waiting(k, "PodInitializing"))
        .collect::<Vec<_>>();
    let status = PodStatus {
        phase: Some("Pending".into()),
        container_statuses: Some(
            spec.containers
                .iter()
                .map(|k| waiting(k, "ContainerCreating"))
                .collect(),
        ),
        init_container_statuses: (!init.is_empty()).then_some(init),
        ..Default::default()
    };
    let mut pod = Pod {
        metadata: meta,
        spec: Some(spec),
        status: Some(status),
    };
    let key = (ns, name);
    let mut store = c.store.lock().unwrap();
    let mut meta = pod.metadata.clone();
    store.record(&c.changes, Kind::Pod, "ADDED", &mut meta, &pod);
    pod.metadata = meta;
    store.pods.insert(key.clone(), pod);
    key
}

fn set_container(pod: &mut Pod, init: bool, name: &str, state: ContainerState) {
    let status = pod.status.get_or_insert_with(Default::default);
    let list = if init {
        status
            .init_container_statuses
            .get_or_insert_with(Default::default)
    } else {
        status
            .container_statuses
            .get_or_insert_with(Default::default)
    };
    if let Some(s) = list.iter_mut().find(|s| s.name == name) {
        s.ready = state.running.is_some();
        if state.terminated.is_some() || state.running.is_some() {
            s.started = Some(state.running.is_some());
        }
        s.state = Some(state);
    }
}

fn terminated(code: i32, reason: &str) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            reason: Some(reason.into()),
            started_at: Some(now()),
            finished_at: Some(now()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs the pod; `Some(succeeded)` when it ended, `None` when it was deleted or is scripted
/// never to end.
async fn run_pod(c: &Arc<Cluster>, key: &Key) -> Option<bool> {
    let pod = c.store.lock().unwrap().pods.get(key).cloned()?;
    let behaviour = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(BEHAVIOUR))
        .cloned()
        .unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let main = spec.containers[0].clone();
    tokio::time::sleep(Duration::from_millis(20)).await;
    match behaviour.as_str() {
        "image-pull-backoff" => {
            let image = main.image.clone().unwrap_or_default();
            for (reason, message) in [
                (
                    "ErrImagePull",
                    format!("failed to pull and unpack image \"{image}\": not found"),
                ),
                (
                    "ImagePullBackOff",
                    format!("Back-off pulling image \"{image}\""),
                ),
            ] {
                c.update_pod(key, |p| {
                    set_container(
                        p,
                        false,
                        &main.name,
                        ContainerState {
                            waiting: Some(ContainerStateWaiting {
                                reason: Some(reason.into()),
                                message: Some(message.clone()),
                            }),
                            ..Default::default()
                        },
                    )
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            return None;
        }
        "unschedulable" => {
            c.update_pod(key, |p| {
                p.status.get_or_insert_with(Default::default).conditions =
                    Some(vec![PodCondition {
                        type_: "PodScheduled".into(),
                        status: "False".into(),
                        reason: Some("Unschedulable".into()),
                        message: Some("0/1 nodes are available: 1 Insufficient cpu.".into()),
                        ..Default::default()
                    }]);
            });
            return None;
        }
        "" | "oom-killed" => {}
        unknown => {
            // A misspelt script must not pass for an ordinary run.
            let message = format!("unknown {BEHAVIOUR} annotation {unknown:?}");
            c.update_pod(key, |p| {
                let s = p.status.get_or_insert_with(Default::default);
                s.phase = Some("Failed".into());
                set_container(
                    p,
                    false,
                    &main.name,
                    ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 128,
                            reason: Some("FakeUnknownBehaviour".into()),
                            message: Some(message),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                );
            });
            return Some(false);
        }
    }
    let dir = c.root.join(&key.1);
    for init in spec.init_containers.iter().flatten() {
        let code = run_container(c, key, &dir, init, true).await?;
        if code != 0 {
            c.update_pod(key, |p| {
                let s = p.status.get_or_insert_with(Default::default);
                s.phase = Some("Failed".into());
                s.reason = Some("Init:Error".into());
            });
            return Some(false);
        }
    }
    let code = if behaviour == "oom-killed" {
        c.update_pod(key, |p| {
            let s = p.status.get_or_insert_with(Default::default);
            s.phase = Some("Running".into());
            set_container(p, false, &main.name, terminated(137, "OOMKilled"));
        });
        137
    } else {
        run_container(c, key, &dir, &main, false).await?
    };
    let ok = code == 0;
    c.update_pod(key, |p| {
        p.status.get_or_insert_with(Default::default).phase =
            Some(if ok { "Succeeded" } else { "Failed" }.into());
    });
    Some(ok)
}

/// The host directory for a container path: under a volume's directory when a mount covers
/// it, else under the pod's own "root file system".
fn host_path(dir: &std::path::Path, container: &Container, path: &str) -> PathBuf {
    for mount in container.volume_mounts.iter().flatten() {
        let root = mount.mount_path.trim_end_matches('/');
        if let Some(rest) = path.strip_prefix(root)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return dir
                .join("volumes")
                .join(&mount.name)
                .join(rest.trim_start_matches('/'));
        }
    }
    dir.join("rootfs").join(path.trim_start_matches('/'))
}

/// Runs one container as a local process group; its exit code, or `None` if the pod was
/// deleted meanwhile.
async fn run_container(
    c: &Arc<Cluster>,
    key: &Key,
    dir: &std::path::Path,
    container: &Container,
    init: bool,
) -> Option<i32> {
    let argv: Vec<String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .cloned()
        .collect();
    let cwd = host_path(
        dir,
        container,
        container.working_dir.as_deref().unwrap_or("/"),
    );
    let log = Arc::new(Log::default());
    let started = (|| {
        std::fs::create_dir_all(&cwd)?;
        let Some((program, args)) = argv.split_first() else {
            return Err(std::io::Error::other(
                "the container has no command (the fake runs no image entrypoints)",
            ));
        };
        let (mut reader, writer) = std::io::pipe()?;
        let mut command = std::process::Command::new(program);
        command
            .args(args)
            .current_dir(&cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .stdin(std::process::Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0);
        for var in container.env.iter().flatten() {
            command.env(&var.name, var.value.as_deref().unwrap_or(""));
        }
        use std::os::unix::process::CommandExt as _;
        let child = command.spawn()?;
        drop(command);
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log2.push(&buf[..n]);
            }
            log2.close();
        });
        Ok(child)
    })();
    let mut child = match started {
        Ok(child) => child,
        Err(e) => {
            let message = format!("failed to start the container's process: {e}");
            c.update_pod(key, |p| {
                set_container(
                    p,
                    init,
                    &container.name,
                    ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 128,
                            reason: Some("StartError".into()),
                            message: Some(message),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )
            });
            return Some(128);
        }
    };
    {
        let mut store = c.store.lock().unwrap();
        if !store.pods.contains_key(key) {
            kill_group(child.id() as i32);
            return None;
        }
        store.processes.insert(key.clone(), child.id() as i32);
        store.logs.insert(
            (key.0.clone(), key.1.clone(), container.name.clone()),
            log.clone(),
        );
        if !init {
            store.running += 1;
            store.max_running = store.max_running.max(store.running);
        }
    }
    c.update_pod(key, |p| {
        let s = p.status.get_or_insert_with(Default::default);
        s.phase = Some(if init { "Pending" } else { "Running" }.into());
        s.start_time.get_or_insert_with(now);
        set_container(
            p,
            init,
            &container.name,
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(now()),
                }),
                ..Default::default()
            },
        );
    });
    let status = tokio::task::spawn_blocking(move || child.wait()).await;
    // The output is complete once the pipe's writers (the whole group) are gone; wait for it,
    // briefly, so a reader after the end sees all of it.
    for _ in 0..100 {
        if log.data.lock().unwrap().1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    {
        let mut store = c.store.lock().unwrap();
        store.processes.remove(key);
        if !init {
            store.running -= 1;
        }
    }
    if c.stopping.load(Ordering::SeqCst) || !c.pod_alive(key) {
        return None;
    }
    use std::os::unix::process::ExitStatusExt as _;
    let code = match status {
        Ok(Ok(s)) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        _ => 128,
    };
    c.update_pod(key, |p| {
        set_container(
            p,
            init,
            &container.name,
            terminated(code, if code == 0 { "Completed" } else { "Error" }),
        )
    });
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_the_api_servers_equality_and_existence_terms() {
        let labels: BTreeMap<&str, &str> = [("job-name", "j"), ("app", "x")].into();
        let get = |k: &str| labels.get(k).map(|v| v.to_string());
        let sel = |t: &str| Selector::parse(Some(t)).ok().unwrap();
        assert!(sel("job-name=j,app==x").matches(get));
        assert!(sel("job-name, !missing, app!=y").matches(get));
        assert!(!sel("job-name=k").matches(get));
        assert!(!sel("!app").matches(get));
        assert!(!sel("missing").matches(get));
        assert!(sel("").matches(get));
        assert!(Selector::parse(Some("app in (x)")).is_err());
    }
}
