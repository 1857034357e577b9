//! The backend's Kubernetes behaviour against the fake API server: the Job it creates, logs,
//! failures and their reasons, a pending image pull, cancel, an expired watch, a Git project
//! fetched by the init container.

mod support;

use cairn_plugin_api::ProjectBackend;
use cairn_plugin_api::entities::RunStatus;
use cairn_plugin_api::projects::{LogOptions, ProjectSource, RunState, SubmittedRun};
use cairn_plugin_api::testkit::backend::{read_logs, wait};
use futures_executor::block_on;
use std::path::Path;
use std::time::{Duration, Instant};
use support::Env;

/// Polls `run` until `done` holds for its state; a guard against hanging, not a timing check.
fn poll_until(run: &dyn SubmittedRun, done: impl Fn(&RunState) -> bool) -> RunState {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = block_on(run.status()).unwrap();
        if done(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "still {state:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_successful_job_is_mlflows_definition_and_its_logs_stream() {
    let env = Env::new();
    let mut spec = env.run(
        &env.dir.path().join("job.yaml"),
        &[
            "bash",
            "-c",
            "echo \"run=$MLFLOW_RUN_ID exp=$MLFLOW_EXPERIMENT_ID\"; sleep 0.5; echo bye",
        ],
    );
    spec.env.insert("MLFLOW_RUN_ID".into(), spec.run_id.clone());
    spec.env.insert("MLFLOW_EXPERIMENT_ID".into(), "7".into());
    spec.env
        .insert("MLFLOW_TRACKING_URI".into(), "http://tracking:5000".into());
    let run = block_on(env.backend.submit(spec.clone())).unwrap();
    // Followed while it runs: everything, and the stream ends with the run.
    let followed = text(block_on(read_logs(
        &*run,
        LogOptions {
            offset: 0,
            follow: true,
        },
    )));
    assert_eq!(followed, format!("run={} exp=7\nbye\n", spec.run_id));
    let state = block_on(wait(&*run));
    assert_eq!(
        state,
        RunState {
            status: RunStatus::Finished,
            message: None,
            exit_code: Some(0)
        }
    );

    let jobs = env.cluster.jobs();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    let name = job["metadata"]["name"].as_str().unwrap();
    // `<project>-<YYYY-MM-DD-HH-MM-SS-ffffff>`, the project named by its MLproject.
    assert!(name.starts_with("conformance-"), "{name}");
    assert_eq!(name.len(), "conformance-".len() + 26, "{name}");
    assert_eq!(job["metadata"]["namespace"], "mlflow");
    assert_eq!(
        job["metadata"]["labels"]["cairn-run-id"],
        spec.run_id.as_str()
    );
    assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 100);
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "conformance");
    assert_eq!(container["image"], "busybox:1.36");
    assert_eq!(container["command"][0], "bash");
    let env_vars: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(env_vars.contains(&("MLFLOW_TRACKING_URI".into(), "http://tracking:5000".into())));
    assert!(env_vars.contains(&("MLFLOW_EXPERIMENT_ID".into(), "7".into())));
    // The handle names the Job and the context; any process re-attaches from it.
    assert_eq!(
        run.handle().id,
        format!("mlflow/{name}@{}", support::CONTEXT)
    );
    let other = cairn_backend_k8s::KubernetesBackend::with_kubeconfig(env.kubeconfig());
    let attached = block_on(other.attach(run.handle().clone())).unwrap();
    assert_eq!(attached.run_id(), spec.run_id);
    assert_eq!(
        block_on(attached.status()).unwrap().status,
        RunStatus::Finished
    );
    assert_eq!(
        text(block_on(read_logs(
            &*attached,
            LogOptions {
                offset: 4,
                follow: false
            }
        ))),
        format!("{} exp=7\nbye\n", spec.run_id)
    );
}

#[test]
fn a_failing_job_is_failed_with_its_exit_code_and_reason() {
    let env = Env::new();
    let spec = env.run(
        &env.dir.path().join("job.yaml"),
        &["sh", "-c", "echo oops >&2; exit 3"],
    );
    let run = block_on(env.backend.submit(spec)).unwrap();
    let state = block_on(wait(&*run));
    assert_eq!(state.status, RunStatus::Failed, "{state:?}");
    assert_eq!(state.exit_code, Some(3), "{state:?}");
    let message = state.message.unwrap();
    assert!(message.contains("BackoffLimitExceeded"), "{message}");
    assert!(message.contains("exit code 3"), "{message}");
    assert_eq!(
        text(block_on(read_logs(&*run, LogOptions::default()))),
        "oops\n"
    );
}

#[test]
fn a_failed_pod_is_retried_up_to_the_backoff_limit() {
    let env = Env::new();
    let template = env.dir.path().join("retry.yaml");
    std::fs::write(
        &template,
        support::template("").replace("backoffLimit: 0", "backoffLimit: 2"),
    )
    .unwrap();
    let spec = env.run(&template, &["sh", "-c", "exit 1"]);
    let run = block_on(env.backend.submit(spec)).unwrap();
    let state = block_on(wait(&*run));
    assert_eq!(state.status, RunStatus::Failed, "{state:?}");
    assert_eq!(env.cluster.pods().len(), 3, "one pod and two retries");
}

#[test]
fn an_oom_killed_container_is_the_failure_message() {
    let env = Env::new();
    let template = env.template_with("oom.yaml", "fake.cairn/behaviour: oom-killed");
    let run = block_on(
        env.backend
            .submit(env.run(&template, &["sh", "-c", "exit 0"])),
    )
    .unwrap();
    let state = block_on(wait(&*run));
    assert_eq!(state.status, RunStatus::Failed, "{state:?}");
    assert_eq!(state.exit_code, Some(137), "{state:?}");
    assert!(
        state.message.as_deref().unwrap().contains("OOMKilled"),
        "{state:?}"
    );
}

#[test]
fn an_image_pull_failure_is_reported_while_pending_and_cancel_deletes_the_job() {
    let env = Env::new();
    let template = env.template_with("pull.yaml", "fake.cairn/behaviour: image-pull-backoff");
    let run = block_on(env.backend.submit(env.run(&template, &["true"]))).unwrap();
    let state = poll_until(&*run, |s| {
        s.message
            .as_deref()
            .is_some_and(|m| m.contains("ImagePullBackOff"))
    });
    assert_eq!(state.status, RunStatus::Scheduled, "{state:?}");
    assert!(
        state
            .message
            .unwrap()
            .contains("Back-off pulling image \"busybox:1.36\"")
    );
    // Nothing to read while the container has not started.
    assert!(block_on(read_logs(&*run, LogOptions::default())).is_empty());

    block_on(run.cancel()).unwrap();
    let state = block_on(wait(&*run));
    assert_eq!(state.status, RunStatus::Killed, "{state:?}");
    assert_eq!(env.cluster.deletions()[0].1, "Foreground");
    // Foreground propagation: the pods go, then the Job.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(env.cluster.jobs().is_empty() && env.cluster.pods().is_empty()) {
        assert!(Instant::now() < deadline, "the Job was not deleted");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_unschedulable_pod_is_reported_while_pending() {
    let env = Env::new();
    let template = env.template_with("unsched.yaml", "fake.cairn/behaviour: unschedulable");
    let run = block_on(env.backend.submit(env.run(&template, &["true"]))).unwrap();
    let state = poll_until(&*run, |s| s.message.is_some());
    assert_eq!(state.status, RunStatus::Scheduled);
    assert!(state.message.unwrap().contains("Unschedulable"));
    block_on(run.cancel()).unwrap();
}

#[test]
fn cancel_stops_a_running_job_and_its_process() {
    let env = Env::new();
    let marker = env.dir.path().join("still-running");
    let script = format!("sleep 2; touch {}", marker.display());
    let run = block_on(
        env.backend
            .submit(env.run(&env.dir.path().join("job.yaml"), &["sh", "-c", &script])),
    )
    .unwrap();
    poll_until(&*run, |s| s.status == RunStatus::Running);
    let job = env.cluster.jobs()[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    block_on(run.cancel()).unwrap();
    assert_eq!(block_on(wait(&*run)).status, RunStatus::Killed);
    assert_eq!(env.cluster.deletions(), [(job, "Foreground".to_owned())]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(!marker.exists(), "the container's process outlived the Job");
    // Attaching after the Job is gone: not found.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env.cluster.jobs().is_empty() {
        assert!(Instant::now() < deadline, "the Job was not deleted");
        std::thread::sleep(Duration::from_millis(20));
    }
    let e = block_on(env.backend.attach(run.handle().clone()))
        .err()
        .unwrap();
    assert_eq!(e.kind, cairn_plugin_api::ErrorKind::NotFound, "{e}");
}

#[test]
fn an_expired_watch_is_resumed_by_listing_again_without_losing_the_end() {
    let env = Env::new();
    let run = block_on(env.backend.submit(env.run(
        &env.dir.path().join("job.yaml"),
        &["sh", "-c", "sleep 1; echo done"],
    )))
    .unwrap();
    poll_until(&*run, |s| s.status == RunStatus::Running);
    env.cluster.expire_watches();
    let state = block_on(wait(&*run));
    assert_eq!(state.status, RunStatus::Finished, "{state:?}");
    assert!(env.cluster.gone_answers() >= 1, "no watch was answered 410");
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_git_project_is_fetched_at_its_commit_by_the_init_container() {
    let env = Env::new();
    let repo = env.dir.path().join("repo");
    std::fs::create_dir_all(repo.join("sub")).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("sub/version.txt"), "first\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "first"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("sub/version.txt"), "second\n").unwrap();
    git(&repo, &["commit", "-qam", "second"]);

    let mut spec = env.run(
        &env.dir.path().join("job.yaml"),
        &["sh", "-c", "cat version.txt; git rev-parse HEAD"],
    );
    spec.source = ProjectSource::Git {
        url: format!("file://{}", repo.display()),
        commit: commit.clone(),
        subdirectory: "sub".into(),
    };
    let run = block_on(env.backend.submit(spec)).unwrap();
    let state = block_on(wait(&*run));
    assert_eq!(state.status, RunStatus::Finished, "{state:?}");
    assert_eq!(
        text(block_on(read_logs(&*run, LogOptions::default()))),
        format!("first\n{commit}\n")
    );
    let job = &env.cluster.jobs()[0];
    assert!(
        job["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("sub-")
    );
    let init = &job["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["image"], cairn_backend_k8s::config::DEFAULT_GIT_IMAGE);
}

#[test]
fn a_project_without_docker_env_or_config_is_refused_naming_the_problem() {
    let env = Env::new();
    let mut spec = env.run(&env.dir.path().join("job.yaml"), &["true"]);
    spec.environment = cairn_plugin_api::projects::ProjectEnvironment::Local;
    let e = block_on(env.backend.submit(spec.clone())).err().unwrap();
    assert!(e.message.contains("docker_env"), "{e}");
    let mut spec = env.run(&env.dir.path().join("job.yaml"), &["true"]);
    spec.backend_config["kube-context"] = "nosuch".into();
    let e = block_on(env.backend.submit(spec)).err().unwrap();
    assert!(e.message.contains("kube-context"), "{e}");
    assert!(env.cluster.jobs().is_empty());
}

#[test]
fn an_unreachable_api_server_is_unavailable() {
    let env = Env::new();
    let spec = env.run(&env.dir.path().join("job.yaml"), &["true"]);
    let url = env.cluster.url().to_owned();
    let kubeconfig = std::fs::read_to_string(env.kubeconfig()).unwrap();
    drop(env.cluster);
    // Nothing listens on the fake's port any more.
    let path = env.dir.path().join("gone-kubeconfig");
    std::fs::write(&path, &kubeconfig).unwrap();
    assert!(kubeconfig.contains(&url));
    let backend = cairn_backend_k8s::KubernetesBackend::with_kubeconfig(&path);
    let e = block_on(backend.submit(spec)).err().unwrap();
    assert_eq!(e.kind, cairn_plugin_api::ErrorKind::Unavailable, "{e}");
    let handle = cairn_plugin_api::projects::RunHandle {
        backend: "kubernetes".into(),
        id: "mlflow/some-job@fake".into(),
    };
    let e = block_on(backend.attach(handle)).err().unwrap();
    assert_eq!(e.kind, cairn_plugin_api::ErrorKind::Unavailable, "{e}");
}

/// An API server that stops answering while the Job runs: the status says so (with the
/// last known state), rather than a stale RUNNING with nothing else.
#[test]
fn an_api_server_lost_while_running_is_the_status_message() {
    let env = Env::new();
    let spec = env.run(&env.dir.path().join("job.yaml"), &["sleep", "600"]);
    let run = block_on(env.backend.submit(spec)).unwrap();
    let running = poll_until(&*run, |s| s.status == RunStatus::Running);
    assert_eq!(running.message, None);
    drop(env.cluster);
    let state = poll_until(&*run, |s| s.message.is_some());
    assert_eq!(state.status, RunStatus::Running, "{state:?}");
    let message = state.message.unwrap();
    assert!(
        message.starts_with("the Kubernetes API server does not answer (")
            && message.ends_with("); the Job's last known state is RUNNING"),
        "{message}"
    );
}

#[test]
fn a_misspelt_fake_behaviour_fails_the_run_rather_than_passing_for_ordinary() {
    let env = Env::new();
    let template = env.template_with("typo.yaml", "fake.cairn/behaviour: oom-kiled");
    let run = block_on(env.backend.submit(env.run(&template, &["true"]))).unwrap();
    let state = block_on(wait(&*run));
    assert_eq!(state.status, RunStatus::Failed, "{state:?}");
    assert!(
        state
            .message
            .as_deref()
            .unwrap()
            .contains("FakeUnknownBehaviour"),
        "{state:?}"
    );
}

#[test]
fn a_template_namespace_the_cluster_lacks_is_named() {
    let env = Env::new();
    let template = env.dir.path().join("ns.yaml");
    std::fs::write(
        &template,
        support::template("").replace("namespace: mlflow", "namespace: nosuch"),
    )
    .unwrap();
    let e = block_on(env.backend.submit(env.run(&template, &["true"])))
        .err()
        .unwrap();
    assert!(e.message.contains("namespace nosuch"), "{e}");
    assert!(e.message.contains("metadata.namespace"), "{e}");
    assert!(e.message.contains("not found"), "{e}");
}
