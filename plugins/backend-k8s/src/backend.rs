//! The backend: submit a Job, watch it and its pods, stream their logs, cancel, re-attach.

use crate::config::{self, DEFAULT_GIT_IMAGE};
use crate::job::{self, RUN_ID_LABEL, Substitution};
use crate::runtime::{run, runtime};
use cairn_plugin_api::entities::RunStatus;
use cairn_plugin_api::projects::{
    LogOptions, LogStream, ProjectCapabilities, ProjectEnvironment, ProjectRun, ProjectSource,
    RunHandle, RunState,
};
use cairn_plugin_api::{Error, ErrorKind, ProjectBackend, Result, SubmittedRun, async_trait};
use futures_util::{AsyncBufReadExt as _, StreamExt as _};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, Resource, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The backend's name (`cairn run -b kubernetes`).
pub const NAME: &str = "kubernetes";

/// How long a watch request asks the server to keep it open before it is re-issued.
const WATCH_SECONDS: u32 = 290;

/// How long a call waits for a run's first listing before it reports the API server
/// unavailable.
const SYNC_WAIT: Duration = Duration::from_secs(30);

/// The `kubernetes` project backend.
#[derive(Default)]
pub struct KubernetesBackend {
    /// The kubeconfig file, if not `KUBECONFIG` or `~/.kube/config`.
    kubeconfig: Option<PathBuf>,
    /// One client per kubeconfig context (`None`: the current context, or in-cluster).
    clients: Arc<Mutex<HashMap<Option<String>, Client>>>,
}

impl std::fmt::Debug for KubernetesBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesBackend").finish_non_exhaustive()
    }
}

/// What a run handle's id holds: the Job, and the kubeconfig context it was created through,
/// as `<namespace>/<job>` or `<namespace>/<job>@<context>` (neither a namespace nor a Job name
/// can hold `/` or `@`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobRef {
    context: Option<String>,
    namespace: String,
    job: String,
}

impl JobRef {
    fn to_id(&self) -> String {
        match &self.context {
            Some(c) => format!("{}/{}@{c}", self.namespace, self.job),
            None => format!("{}/{}", self.namespace, self.job),
        }
    }

    fn parse(id: &str) -> Option<JobRef> {
        let (namespace, rest) = id.split_once('/')?;
        let (job, context) = match rest.split_once('@') {
            Some((job, context)) => (job, Some(context.to_owned())),
            None => (rest, None),
        };
        let valid = |s: &str| !s.is_empty() && !s.contains('/');
        (valid(namespace) && valid(job)).then(|| JobRef {
            context,
            namespace: namespace.to_owned(),
            job: job.to_owned(),
        })
    }
}

impl KubernetesBackend {
    /// A backend reading `KUBECONFIG` or `~/.kube/config` (else the in-cluster
    /// configuration); clients are built on first use per kubeconfig context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend reading the kubeconfig file `path` instead.
    pub fn with_kubeconfig(path: impl Into<PathBuf>) -> Self {
        KubernetesBackend {
            kubeconfig: Some(path.into()),
            ..Self::default()
        }
    }

    /// The client for `context`, built once (must run on the plugin's runtime).
    async fn client(
        clients: &Mutex<HashMap<Option<String>, Client>>,
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
    ) -> Result<Client> {
        if let Some(client) = clients.lock().unwrap().get(&context) {
            return Ok(client.clone());
        }
        let options = kube::config::KubeConfigOptions {
            context: context.clone(),
            ..Default::default()
        };
        let bad_context = |e: kube::config::KubeconfigError| match &context {
            Some(name) => Error::invalid(format!(
                "backend config kube-context: cannot load the context {name:?}: {e}"
            )),
            None => unavailable(format!("cannot load the kubeconfig: {e}")),
        };
        let config = match (&kubeconfig, &context) {
            (Some(path), _) => {
                let file = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                    unavailable(format!(
                        "cannot read the kubeconfig {}: {e}",
                        path.display()
                    ))
                })?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(bad_context)?
            }
            (None, None) => kube::Config::infer().await.map_err(|e| {
                unavailable(format!(
                    "cannot load a Kubernetes configuration (KUBECONFIG, ~/.kube/config or \
                     in-cluster): {e}"
                ))
            })?,
            (None, Some(_)) => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(bad_context)?,
        };
        let client = Client::try_from(config)
            .map_err(|e| unavailable(format!("cannot build a Kubernetes client: {e}")))?;
        clients.lock().unwrap().insert(context, client.clone());
        Ok(client)
    }
}

fn unavailable(message: String) -> Error {
    Error::new(ErrorKind::Unavailable, message)
}

/// A `kube` error as the plugin API's: the API server's `Status` by its code, anything else
/// (connection, TLS, ...) `Unavailable`.
fn api_error(what: &str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(status) => {
            let kind = match status.code {
                404 => ErrorKind::NotFound,
                409 => ErrorKind::AlreadyExists,
                400 | 422 => ErrorKind::InvalidArgument,
                401 => ErrorKind::Unauthenticated,
                403 => ErrorKind::PermissionDenied,
                500..=599 => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            };
            Error::new(
                kind,
                format!("{what}: {} ({})", status.message, status.reason),
            )
        }
        e => unavailable(format!(
            "{what}: cannot reach the Kubernetes API server: {e}"
        )),
    }
}

/// The project's name: the `name` in a local project's `MLproject`, else the directory's name;
/// for a Git project (the backend gets its URL and commit, not its files) the subdirectory's
/// or the repository's name.
pub fn project_name(source: &ProjectSource) -> String {
    let last = |s: &str| {
        s.trim_end_matches('/')
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("")
            .trim_end_matches(".git")
            .to_owned()
    };
    match source {
        ProjectSource::Local { path } => {
            let from_file = std::fs::read_dir(path).ok().and_then(|entries| {
                let file = entries
                    .flatten()
                    .find(|e| e.file_name().to_string_lossy().to_lowercase() == "mlproject")?;
                let text = std::fs::read_to_string(file.path()).ok()?;
                let yaml: serde_json::Value = yaml_serde::from_str(&text).ok()?;
                yaml["name"].as_str().map(String::from)
            });
            from_file.unwrap_or_else(|| last(path))
        }
        ProjectSource::Git {
            url, subdirectory, ..
        } => {
            let sub = last(subdirectory);
            if sub.is_empty() { last(url) } else { sub }
        }
    }
}

/// The container's variables: the `docker_env`'s (a bare name copies this process's value),
/// then the run's (`MLFLOW_RUN_ID`, `MLFLOW_TRACKING_URI`, `MLFLOW_EXPERIMENT_ID`, ...), with
/// `KUBE_MLFLOW_TRACKING_URI` from this process replacing `MLFLOW_TRACKING_URI` when set.
fn container_env(
    docker: &BTreeMap<String, Option<String>>,
    run: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>> {
    let mut env = Vec::new();
    for (name, value) in docker {
        let value = match value {
            Some(v) => v.clone(),
            None => std::env::var(name).map_err(|_| {
                Error::invalid(format!(
                    "docker_env: the environment variable {name} is not set in this process"
                ))
            })?,
        };
        env.push((name.clone(), value));
    }
    let kube_uri = std::env::var("KUBE_MLFLOW_TRACKING_URI")
        .ok()
        .filter(|v| !v.is_empty());
    for (name, value) in run {
        let value = match (&kube_uri, name.as_str()) {
            (Some(uri), "MLFLOW_TRACKING_URI") => uri.clone(),
            _ => value.clone(),
        };
        env.push((name.clone(), value));
    }
    Ok(env)
}

#[async_trait]
impl ProjectBackend for KubernetesBackend {
    fn capabilities(&self) -> ProjectCapabilities {
        ProjectCapabilities {
            logs: true,
            cancel: true,
        }
    }

    async fn submit(&self, run_spec: ProjectRun) -> Result<Box<dyn SubmittedRun>> {
        let id = &run_spec.run_id;
        if id.is_empty() || id.len() > 63 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::invalid(format!("bad run id {id:?}")));
        }
        let parsed = config::parse(&run_spec.backend_config)?;
        let ProjectEnvironment::Docker {
            image, environment, ..
        } = &run_spec.environment
        else {
            return Err(Error::invalid(
                "the kubernetes backend runs projects with a docker_env only (its image runs \
                 the command); add docker_env: {image: ...} to the MLproject",
            ));
        };
        let env = container_env(environment, &run_spec.env)?;
        let project = project_name(&run_spec.source);
        let git_image = parsed
            .config
            .git_image
            .clone()
            .unwrap_or_else(|| DEFAULT_GIT_IMAGE.to_owned());
        let definition = job::definition(
            &parsed.template,
            &Substitution {
                project: &project,
                run_id: id,
                image,
                command: &run_spec.command,
                env: &env,
                source: &run_spec.source,
                git_image: &git_image,
                now: Timestamp::now(),
            },
        )?;
        let context = parsed.config.kube_context.clone();
        let clients = self.clients.clone();
        let kubeconfig = self.kubeconfig.clone();
        let run_id = id.clone();
        run(async move {
            let client = Self::client(&clients, kubeconfig, context.clone()).await?;
            let namespace = definition.metadata.namespace.clone().unwrap_or_default();
            let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
            // Idempotent on the run id: a Job carrying it is this run.
            let existing = jobs
                .list(&ListParams::default().labels(&format!("{RUN_ID_LABEL}={run_id}")))
                .await
                .map_err(|e| {
                    api_error(
                        &format!(
                            "cannot list Jobs in the namespace {namespace} (the template's \
                             metadata.namespace)"
                        ),
                        e,
                    )
                })?;
            let job = match existing.items.into_iter().next() {
                Some(job) => job,
                None => jobs
                    .create(&PostParams::default(), &definition)
                    .await
                    .map_err(|e| {
                        api_error(
                            &format!(
                                "cannot create a Job in the namespace {namespace} (the \
                                 template's metadata.namespace)"
                            ),
                            e,
                        )
                    })?,
            };
            KubeRun::open(client, context, job)
        })
        .await
        .map(|r| Box::new(r) as Box<dyn SubmittedRun>)
    }

    async fn attach(&self, handle: RunHandle) -> Result<Box<dyn SubmittedRun>> {
        if handle.backend != NAME {
            return Err(Error::invalid(format!(
                "the run handle is for backend {:?}, not {NAME}",
                handle.backend
            )));
        }
        // Any id is this backend's; one that names no Job is not found.
        let job_ref = JobRef::parse(&handle.id).ok_or_else(|| {
            Error::not_found(format!(
                "the run handle {:?} names no Job (expected <namespace>/<job>[@<context>])",
                handle.id
            ))
        })?;
        let clients = self.clients.clone();
        let kubeconfig = self.kubeconfig.clone();
        run(async move {
            let client = Self::client(&clients, kubeconfig, job_ref.context.clone()).await?;
            let jobs: Api<Job> = Api::namespaced(client.clone(), &job_ref.namespace);
            let job = jobs.get(&job_ref.job).await.map_err(|e| {
                api_error(&format!("no Job {}/{}", job_ref.namespace, job_ref.job), e)
            })?;
            KubeRun::open(client, job_ref.context, job)
        })
        .await
        .map(|r| Box::new(r) as Box<dyn SubmittedRun>)
    }
}

/// What the watches have seen of a Job and its pods.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    job_synced: bool,
    pods_synced: bool,
    job: Option<Job>,
    /// The Job is gone from the API server.
    deleted: bool,
    /// The Job's pods by name, as last seen (deleted pods stay, for their final state).
    pods: BTreeMap<String, Pod>,
    /// The last error a list or watch request met.
    last_error: Option<String>,
    /// Set while the API server does not answer (the latest list or watch request failed);
    /// cleared by the next one that succeeds.
    unreachable: bool,
}

fn condition<'a>(
    job: &'a Job,
    kind: &str,
) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
}

impl Snapshot {
    fn job_ended(&self) -> bool {
        self.deleted
            || self.job.as_ref().is_some_and(|j| {
                condition(j, "Complete").is_some() || condition(j, "Failed").is_some()
            })
    }

    /// The Job is gone, or it ended and so did every pod of it.
    fn pods_ended(&self) -> bool {
        self.deleted
            || (self.job_ended()
                && self.pods.values().all(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .is_some_and(|phase| matches!(phase, "Succeeded" | "Failed"))
                }))
    }

    /// The newest pod, by creation.
    fn newest_pod(&self) -> Option<&Pod> {
        self.pods
            .values()
            .max_by_key(|p| p.metadata.creation_timestamp.clone())
    }

    /// The newest pod whose container `container` has started (running or ended).
    fn started_pod(&self, container: &str) -> Option<&Pod> {
        self.pods
            .values()
            .filter(|p| {
                main_status(p, container)
                    .and_then(|s| s.state.as_ref())
                    .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
            })
            .max_by_key(|p| p.metadata.creation_timestamp.clone())
    }
}

fn main_status<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == container)
}

/// "container X terminated: REASON (exit code N)" for a pod's ended containers that failed.
fn termination(pod: &Pod, container: &str) -> (Option<i32>, Option<String>) {
    if let Some(t) = main_status(pod, container)
        .and_then(|s| s.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
    {
        let detail = (t.exit_code != 0).then(|| {
            format!(
                "container {container} terminated: {} (exit code {})",
                t.reason.as_deref().unwrap_or("Error"),
                t.exit_code
            )
        });
        return (Some(t.exit_code), detail);
    }
    let init = pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|s| {
            let t = s.state.as_ref()?.terminated.as_ref()?;
            (t.exit_code != 0).then(|| {
                format!(
                    "init container {} terminated: {} (exit code {})",
                    s.name,
                    t.reason.as_deref().unwrap_or("Error"),
                    t.exit_code
                )
            })
        });
    (None, init)
}

/// Why the newest pod has not started its container: a waiting reason other than the
/// ordinary ones, or why it is not scheduled.
fn pending_reason(pod: &Pod, container: &str) -> Option<String> {
    let status = pod.status.as_ref()?;
    let waiting = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(main_status(pod, container))
        .find_map(|s| {
            let w = s.state.as_ref()?.waiting.as_ref()?;
            let reason = w.reason.as_deref()?;
            (!matches!(reason, "ContainerCreating" | "PodInitializing")).then(|| match &w.message {
                Some(m) => format!("container {}: {reason}: {m}", s.name),
                None => format!("container {}: {reason}", s.name),
            })
        });
    waiting.or_else(|| {
        status.conditions.iter().flatten().find_map(|c| {
            (c.type_ == "PodScheduled" && c.status == "False").then(|| {
                format!(
                    "pod not scheduled: {}: {}",
                    c.reason.as_deref().unwrap_or(""),
                    c.message.as_deref().unwrap_or("")
                )
            })
        })
    })
}

/// The run's state, mapped as MLflow maps the Job: `Complete` → FINISHED, `Failed` → FAILED
/// (with the reasons), deleted → KILLED; RUNNING once a pod's container started, SCHEDULED
/// before (with what holds it: an image pull, scheduling).
fn state_of(s: &Snapshot, container: &str) -> RunState {
    let newest = s.newest_pod();
    let state = |status, message, exit_code| RunState {
        status,
        message,
        exit_code,
    };
    let Some(job) = s.job.as_ref().filter(|_| !s.deleted) else {
        return state(RunStatus::Killed, Some("the Job was deleted".into()), None);
    };
    if condition(job, "Complete").is_some() {
        return state(RunStatus::Finished, None, Some(0));
    }
    if let Some(c) = condition(job, "Failed") {
        let (code, detail) = newest.map_or((None, None), |p| termination(p, container));
        let message = [c.reason.clone(), c.message.clone(), detail]
            .into_iter()
            .flatten()
            .filter(|m| !m.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        return state(RunStatus::Failed, Some(message), code);
    }
    if job.metadata.deletion_timestamp.is_some() {
        return state(RunStatus::Killed, Some("the Job was deleted".into()), None);
    }
    let (status, message) = if s.started_pod(container).is_some() {
        (RunStatus::Running, None)
    } else {
        (
            RunStatus::Scheduled,
            newest.and_then(|p| pending_reason(p, container)),
        )
    };
    // The last known state is only that while the API server does not answer: say so.
    if s.unreachable {
        let status_name = status.as_str();
        let message = format!(
            "the Kubernetes API server does not answer ({}); the Job's last known state is \
             {status_name}",
            s.last_error.as_deref().unwrap_or("no answer")
        );
        return state(status, Some(message), None);
    }
    state(status, message, None)
}

/// A submitted Job: its watches keep a `Snapshot` current until it ends.
pub struct KubeRun {
    run_id: String,
    handle: RunHandle,
    name: String,
    container: String,
    jobs: Api<Job>,
    pods: Api<Pod>,
    snapshot: watch::Sender<Snapshot>,
    watches: Vec<tokio::task::AbortHandle>,
}

impl Drop for KubeRun {
    fn drop(&mut self) {
        for w in &self.watches {
            w.abort();
        }
    }
}

impl KubeRun {
    /// Opens `job` (must run on the plugin's runtime) and starts watching it and its pods.
    fn open(client: Client, context: Option<String>, job: Job) -> Result<KubeRun> {
        let namespace = job.namespace().unwrap_or_default();
        let name = job.name_any();
        let run_id = job.labels().get(RUN_ID_LABEL).cloned().ok_or_else(|| {
            Error::not_found(format!(
                "the Job {namespace}/{name} has no label {RUN_ID_LABEL}: not a project run"
            ))
        })?;
        let container = job
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers.first())
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let id = JobRef {
            context,
            namespace: namespace.clone(),
            job: name.clone(),
        };
        let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
        let pods: Api<Pod> = Api::namespaced(client, &namespace);
        let (snapshot, _) = watch::channel(Snapshot::default());
        let watches = vec![
            tokio::spawn(follow(
                jobs.clone(),
                Some(format!("metadata.name={name}")),
                None,
                snapshot.clone(),
                apply_job,
                Snapshot::job_ended,
            ))
            .abort_handle(),
            tokio::spawn(follow(
                pods.clone(),
                None,
                Some(format!("job-name={name}")),
                snapshot.clone(),
                apply_pod,
                Snapshot::pods_ended,
            ))
            .abort_handle(),
        ];
        Ok(KubeRun {
            run_id,
            handle: RunHandle {
                backend: NAME.into(),
                id: id.to_id(),
            },
            name,
            container,
            jobs,
            pods,
            snapshot,
            watches,
        })
    }

    /// The snapshot once both watches have listed; `Unavailable` with the last error if they
    /// cannot within [`SYNC_WAIT`] (the API server is unreachable), so no call hangs.
    async fn synced(snapshot: &watch::Sender<Snapshot>) -> Result<Snapshot> {
        let mut rx = snapshot.subscribe();
        let waited =
            tokio::time::timeout(SYNC_WAIT, rx.wait_for(|s| s.job_synced && s.pods_synced)).await;
        match waited {
            Ok(Ok(s)) => Ok(s.clone()),
            _ => Err(unavailable(format!(
                "cannot read the Job from the Kubernetes API server: {}",
                snapshot
                    .borrow()
                    .last_error
                    .as_deref()
                    .unwrap_or("no answer")
            ))),
        }
    }
}

/// The snapshot after reading the Job's pods directly (the watch may lag behind).
async fn refreshed(
    snapshot: &watch::Sender<Snapshot>,
    pods: &Api<Pod>,
    job: &str,
) -> Result<Snapshot> {
    let list = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .map_err(|e| api_error("cannot list the Job's pods", e))?;
    let mut s = snapshot.borrow().clone();
    for pod in list.items {
        s.pods.insert(pod.name_any(), pod);
    }
    Ok(s)
}

enum Change<K> {
    Listed(Vec<K>),
    Upsert(K),
    Deleted(K),
}

fn apply_job(s: &mut Snapshot, change: Change<Job>) {
    match change {
        Change::Listed(items) => {
            match items.into_iter().next() {
                Some(job) => s.job = Some(job),
                None => s.deleted = true,
            }
            s.job_synced = true;
        }
        Change::Upsert(job) => s.job = Some(job),
        Change::Deleted(_) => s.deleted = true,
    }
}

fn apply_pod(s: &mut Snapshot, change: Change<Pod>) {
    match change {
        Change::Listed(items) => {
            for pod in items {
                s.pods.insert(pod.name_any(), pod);
            }
            s.pods_synced = true;
        }
        Change::Upsert(pod) | Change::Deleted(pod) => {
            s.pods.insert(pod.name_any(), pod);
        }
    }
}

/// Keeps `snapshot` current for the objects the selectors pick: list, then watch from the
/// list's resource version; a watch that ends (the server's timeout) is re-issued from the
/// last version seen, one answered `410 Gone` (the version was compacted away) lists again.
/// Stops once `done` says so.
async fn follow<K>(
    api: Api<K>,
    fields: Option<String>,
    labels: Option<String>,
    snapshot: watch::Sender<Snapshot>,
    apply: fn(&mut Snapshot, Change<K>),
    done: fn(&Snapshot) -> bool,
) where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut lp = ListParams::default();
    let mut wp = WatchParams::default().timeout(WATCH_SECONDS);
    if let Some(f) = &fields {
        lp = lp.fields(f);
        wp = wp.fields(f);
    }
    if let Some(l) = &labels {
        lp = lp.labels(l);
        wp = wp.labels(l);
    }
    let pause = || tokio::time::sleep(Duration::from_millis(250));
    'list: loop {
        let list = match api.list(&lp).await {
            Ok(list) => list,
            Err(e) => {
                snapshot.send_modify(|s| {
                    s.last_error = Some(e.to_string());
                    s.unreachable = true;
                });
                pause().await;
                continue 'list;
            }
        };
        let mut version = list.metadata.resource_version.clone().unwrap_or_default();
        snapshot.send_modify(|s| {
            s.unreachable = false;
            apply(s, Change::Listed(list.items));
        });
        loop {
            if done(&snapshot.borrow()) {
                return;
            }
            let stream = match api.watch(&wp, &version).await {
                Ok(stream) => stream,
                Err(kube::Error::Api(status)) if status.code == 410 => continue 'list,
                Err(e) => {
                    snapshot.send_modify(|s| {
                        s.last_error = Some(e.to_string());
                        s.unreachable = true;
                    });
                    pause().await;
                    continue;
                }
            };
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let change = match event {
                    Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => {
                        version = o.resource_version().unwrap_or(version);
                        Change::Upsert(o)
                    }
                    Ok(WatchEvent::Deleted(o)) => {
                        version = o.resource_version().unwrap_or(version);
                        Change::Deleted(o)
                    }
                    Ok(WatchEvent::Bookmark(b)) => {
                        version = b.metadata.resource_version;
                        continue;
                    }
                    // 410 Gone: the version is too old; anything else: start over too.
                    Ok(WatchEvent::Error(_)) => continue 'list,
                    Err(_) => {
                        pause().await;
                        continue 'list;
                    }
                };
                snapshot.send_modify(|s| apply(s, change));
                if done(&snapshot.borrow()) {
                    return;
                }
            }
        }
    }
}

#[async_trait]
impl SubmittedRun for KubeRun {
    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn handle(&self) -> &RunHandle {
        &self.handle
    }

    async fn status(&self) -> Result<RunState> {
        let snapshot = self.snapshot.clone();
        let pods = self.pods.clone();
        let name = self.name.clone();
        let container = self.container.clone();
        run(async move {
            let s = KubeRun::synced(&snapshot).await?;
            let state = state_of(&s, &container);
            if state.status != RunStatus::Failed || state.exit_code.is_some() {
                return Ok(state);
            }
            // The Job failed before the pod's last update reached the pod watch.
            let s = refreshed(&snapshot, &pods, &name).await?;
            Ok(state_of(&s, &container))
        })
        .await
    }

    async fn cancel(&self) -> Result<()> {
        let snapshot = self.snapshot.clone();
        let jobs = self.jobs.clone();
        let name = self.name.clone();
        let container = self.container.clone();
        run(async move {
            let s = KubeRun::synced(&snapshot).await?;
            if state_of(&s, &container).is_terminal() {
                return Ok(());
            }
            // Foreground: the Job stays (with a deletionTimestamp) until its pods are gone.
            match jobs.delete(&name, &DeleteParams::foreground()).await {
                Ok(either) => {
                    match either.left() {
                        Some(job) => snapshot.send_modify(|s| s.job = Some(job)),
                        None => snapshot.send_modify(|s| s.deleted = true),
                    }
                    Ok(())
                }
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                Err(e) => Err(api_error(&format!("cannot delete the Job {name}"), e)),
            }
        })
        .await
    }

    async fn logs(&self, options: LogOptions) -> Result<LogStream> {
        let snapshot = self.snapshot.clone();
        let pods = self.pods.clone();
        let name = self.name.clone();
        let container = self.container.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes>>(8);
        runtime()?.spawn(async move {
            let mut watching = snapshot.subscribe();
            let s = if options.follow {
                // Wait for the container to start, or for the run to end without it.
                let found = watching
                    .wait_for(|s| {
                        s.job_synced
                            && s.pods_synced
                            && (s.started_pod(&container).is_some()
                                || state_of(s, &container).is_terminal())
                    })
                    .await;
                match found {
                    Ok(s) => s.clone(),
                    Err(_) => return,
                }
            } else {
                match KubeRun::synced(&snapshot).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            };
            let pod = match s.started_pod(&container) {
                Some(p) => Some(p.name_any()),
                // The pod watch may lag behind the Job's (a container that ended at once):
                // read the pods.
                None => match refreshed(&snapshot, &pods, &name).await {
                    Ok(s) => s.started_pod(&container).map(|p| p.name_any()),
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                },
            };
            let Some(pod) = pod else {
                return;
            };
            let params = LogParams {
                container: Some(container.clone()),
                follow: options.follow,
                ..Default::default()
            };
            let mut reader = match pods.log_stream(&pod, &params).await {
                Ok(r) => Box::pin(r),
                // The container is not running yet, or the pod is gone: no output.
                Err(kube::Error::Api(s)) if s.code == 400 || s.code == 404 => return,
                Err(e) => {
                    let _ = tx
                        .send(Err(api_error(&format!("cannot read the logs of {pod}"), e)))
                        .await;
                    return;
                }
            };
            let mut skip = options.offset;
            loop {
                let chunk = match reader.fill_buf().await {
                    Ok([]) => return,
                    Ok(buf) => buf.to_vec(),
                    Err(e) => {
                        let _ = tx
                            .send(Err(unavailable(format!(
                                "the log stream of {pod} broke: {e}"
                            ))))
                            .await;
                        return;
                    }
                };
                reader.consume_unpin(chunk.len());
                let keep = if skip >= chunk.len() as u64 {
                    skip -= chunk.len() as u64;
                    continue;
                } else {
                    let from = skip as usize;
                    skip = 0;
                    bytes::Bytes::copy_from_slice(&chunk[from..])
                };
                if tx.send(Ok(keep)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Box::pin(futures_util::stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|item| (item, rx))
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_refs_round_trip_through_the_handle_id() {
        for r in [
            JobRef {
                context: None,
                namespace: "mlflow".into(),
                job: "p-2024".into(),
            },
            JobRef {
                context: Some("arn:aws:eks:eu-west-1:1:cluster/a@b".into()),
                namespace: "ns".into(),
                job: "j".into(),
            },
        ] {
            assert_eq!(JobRef::parse(&r.to_id()), Some(r));
        }
        assert_eq!(JobRef::parse("no-slash"), None);
        assert_eq!(JobRef::parse("/job"), None);
        assert_eq!(JobRef::parse("ns/"), None);
    }

    #[test]
    fn project_names_come_from_the_mlproject_or_the_source() {
        let git = |url: &str, sub: &str| ProjectSource::Git {
            url: url.into(),
            commit: "c".into(),
            subdirectory: sub.into(),
        };
        assert_eq!(project_name(&git("https://h/o/repo.git", "")), "repo");
        assert_eq!(project_name(&git("git@h:o/repo.git", "a/tiny/")), "tiny");
        let dir = std::env::temp_dir().join(format!("cairn-k8s-name-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let local = ProjectSource::Local {
            path: dir.to_string_lossy().into_owned(),
        };
        assert!(project_name(&local).starts_with("cairn-k8s-name-"));
        std::fs::write(dir.join("mlproject"), "name: Declared\n").unwrap();
        assert_eq!(project_name(&local), "Declared");
        let _ = std::fs::remove_dir_all(dir);
    }
}
