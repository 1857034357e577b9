//! `cairn run -b kubernetes` and `cairn runs` with the real binary, a real `cairn server`, and
//! the fake Kubernetes API server of `cairn-backend-k8s` (in this test process; `cairn` finds
//! it through `KUBECONFIG`). The project is a Git repository, so the Job's init container
//! fetches it at the commit and the fake's kubelet runs `train.sh` from it, which logs into
//! the run over REST.
#![cfg(all(unix, feature = "store-sqlite", feature = "backend-k8s"))]

mod support;

use cairn_backend_k8s::fake::FakeCluster;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::Running;

const MLPROJECT: &str = r#"name: k8s-example
docker_env:
  image: python:3.12-slim
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      pause: {type: float, default: 0}
    command: "sh train.sh {alpha} {pause}"
  fail:
    parameters:
      code: {type: int, default: 3}
    command: "echo about to fail; exit {code}"
"#;

const TRAIN: &str = r#"set -eu
echo "alpha=$1 on $MLFLOW_TRACKING_URI"
sleep "$2"
curl -sf -X POST -H 'Content-Type: application/json' \
    "$MLFLOW_TRACKING_URI/api/2.0/mlflow/runs/log-metric" \
    -d "{\"run_id\": \"$MLFLOW_RUN_ID\", \"key\": \"alpha\", \"value\": $1, \"timestamp\": 0}" > /dev/null
echo done
"#;

const TEMPLATE: &str = r#"apiVersion: batch/v1
kind: Job
metadata: {name: "{replaced with MLflow Project name}", namespace: mlflow}
spec:
  ttlSecondsAfterFinished: 100
  backoffLimit: 0
  template:
    spec:
      containers:
      - name: "{replaced with MLflow Project name}"
        image: "{replaced with URI of Docker image created during Project execution}"
        command: ["{replaced with MLflow Project entry point command}"]
      restartPolicy: Never
"#;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A fake cluster, a `cairn server` on a fresh SQLite store, a Git project, a kubeconfig and
/// a backend config.
struct Env {
    cluster: FakeCluster,
    // Stopped when the Env is dropped.
    _server: Running,
    uri: String,
    dir: tempfile::TempDir,
    commit: String,
}

impl Env {
    fn start() -> Env {
        let cluster = FakeCluster::start();
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        std::fs::write(repo.join("MLproject"), MLPROJECT).unwrap();
        std::fs::write(repo.join("train.sh"), TRAIN).unwrap();
        git(&repo, &["init", "-q"]);
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-qm", "project"]);
        let commit = git(&repo, &["rev-parse", "HEAD"]);
        std::fs::write(dir.path().join("kubeconfig"), cluster.kubeconfig("fake")).unwrap();
        std::fs::write(dir.path().join("job.yaml"), TEMPLATE).unwrap();
        std::fs::write(
            dir.path().join("kubernetes_config.json"),
            serde_json::json!({
                "kube-context": "fake",
                "repository-uri": "example/k8s-example",
                "kube-job-template-path": dir.path().join("job.yaml"),
            })
            .to_string(),
        )
        .unwrap();
        let (server, uri) = support::sqlite_server(dir.path());
        Env {
            cluster,
            _server: server,
            uri,
            dir,
            commit,
        }
    }

    fn project_uri(&self) -> String {
        format!("file://{}", self.dir.path().join("repo").display())
    }

    /// The tracking URI the pods get (`KUBE_MLFLOW_TRACKING_URI`): the same server, spelled
    /// differently from `MLFLOW_TRACKING_URI`.
    fn kube_uri(&self) -> String {
        self.uri.replace("127.0.0.1", "localhost")
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// `cairn args...`, with no `CAIRN_*`/`MLFLOW_*` variables of the caller.
    fn cairn(&self, args: &[&str]) -> Output {
        self.cairn_with(args, &[])
    }

    /// [`Env::cairn`] with extra environment variables.
    fn cairn_with(&self, args: &[&str], vars: &[(&str, String)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.current_dir(self.dir.path()).args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("CAIRN_") || key.starts_with("MLFLOW_") || key.starts_with("KUBE") {
                cmd.env_remove(key);
            }
        }
        cmd.env("MLFLOW_TRACKING_URI", &self.uri)
            .env("KUBE_MLFLOW_TRACKING_URI", self.kube_uri())
            .env("KUBECONFIG", self.kubeconfig())
            .env("MLFLOW_TMP_DIR", self.dir.path().join("storage"));
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn get(&self, endpoint: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-sf", &format!("{}/api/2.0/mlflow/{endpoint}", self.uri)])
            .output()
            .unwrap();
        assert!(out.status.success(), "GET {endpoint} failed");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn run(&self, run_id: &str) -> serde_json::Value {
        self.get(&format!("runs/get?run_id={run_id}"))["run"].clone()
    }
}

fn tag_of(run: &serde_json::Value, key: &str) -> Option<String> {
    run["data"]["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| t["value"].as_str().unwrap().to_owned())
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn no_wait_then_runs_logs_and_wait_reattach_from_new_processes() {
    let env = Env::start();
    let out = env.cairn(&[
        "run",
        &env.project_uri(),
        "-b",
        "kubernetes",
        "-c",
        "kubernetes_config.json",
        "-P",
        "alpha=0.25",
        "--no-wait",
    ]);
    check(&out);
    let run_id = stdout(&out).trim().to_owned();
    assert_eq!(run_id.len(), 32, "{run_id}");

    // Another process follows the pod's log through the handle stored on the run.
    let logs = env.cairn(&["runs", "logs", "--follow", &run_id]);
    check(&logs);
    assert_eq!(
        stdout(&logs),
        format!("alpha=0.25 on {}\ndone\n", env.kube_uri())
    );
    let waited = env.cairn(&["runs", "wait", &run_id]);
    check(&waited);

    let run = env.run(&run_id);
    assert_eq!(run["info"]["status"], "FINISHED");
    // train.sh logged into the run from the pod, with the variables the Job carried.
    assert_eq!(run["data"]["metrics"][0]["key"], "alpha");
    assert_eq!(run["data"]["metrics"][0]["value"], 0.25);
    assert_eq!(
        tag_of(&run, "mlflow.project.backend").as_deref(),
        Some("kubernetes")
    );
    assert_eq!(
        tag_of(&run, "mlflow.project.env").as_deref(),
        Some("docker")
    );
    assert_eq!(
        tag_of(&run, "mlflow.docker.image.uri").as_deref(),
        Some("python:3.12-slim")
    );
    assert_eq!(
        tag_of(&run, "mlflow.source.git.commit"),
        Some(env.commit.clone())
    );
    let jobs = env.cluster.jobs();
    assert_eq!(jobs.len(), 1);
    let job_name = jobs[0]["metadata"]["name"].as_str().unwrap();
    // The backend gets a Git project's URL, not its files: the Job is named after the
    // repository (MLflow, which builds the image locally, uses the MLproject's name).
    assert!(job_name.starts_with("repo-"), "{job_name}");
    let handle: serde_json::Value =
        serde_json::from_str(&tag_of(&run, "cairn.project.handle").unwrap()).unwrap();
    assert_eq!(handle["backend"], "kubernetes");
    assert_eq!(handle["id"], format!("mlflow/{job_name}@fake"));
    let init = &jobs[0]["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["command"][4], env.commit.as_str());
}

#[test]
fn a_waiting_run_streams_the_pod_log_and_ends_failed_with_the_exit_code() {
    let env = Env::start();
    let out = env.cairn(&[
        "run",
        &env.project_uri(),
        "-e",
        "fail",
        "-b",
        "kubernetes",
        "-c",
        "kubernetes_config.json",
    ]);
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "about to fail\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FAILED (exit code 3)"), "{stderr}");
    let run_id = stderr
        .split("in run with ID '")
        .nth(1)
        .map(|s| s[..32].to_owned())
        .unwrap_or_else(|| panic!("{stderr}"));
    let run = env.run(&run_id);
    assert_eq!(run["info"]["status"], "FAILED");
    assert_eq!(tag_of(&run, "cairn.project.exitCode").as_deref(), Some("3"));
}

#[test]
fn runs_cancel_deletes_the_job_and_marks_the_run_killed() {
    let env = Env::start();
    let out = env.cairn(&[
        "run",
        &env.project_uri(),
        "-b",
        "kubernetes",
        "-c",
        "kubernetes_config.json",
        "-P",
        "pause=600",
        "--no-wait",
    ]);
    check(&out);
    let run_id = stdout(&out).trim().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    while env.cluster.max_running_pods() == 0 {
        assert!(Instant::now() < deadline, "the pod never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    let cancelled = env.cairn(&["runs", "cancel", &run_id]);
    check(&cancelled);
    assert_eq!(stdout(&cancelled), format!("{run_id} KILLED\n"));
    assert_eq!(env.run(&run_id)["info"]["status"], "KILLED");
    while !env.cluster.jobs().is_empty() {
        assert!(Instant::now() < deadline, "the Job was not deleted");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_sweep_of_four_jobs_runs_at_most_two_at_once() {
    let env = Env::start();
    let out = env.cairn(&[
        "run",
        &env.project_uri(),
        "-b",
        "kubernetes",
        "-c",
        "kubernetes_config.json",
        "-P",
        "alpha=1,2,3,4",
        "-P",
        "pause=2",
        "--sweep",
        "--max-parallel",
        "2",
    ]);
    check(&out);
    let jobs = env.cluster.jobs();
    assert_eq!(jobs.len(), 4);
    let most = env.cluster.max_running_pods();
    assert!((1..=2).contains(&most), "{most} pods ran at once");
    for job in &jobs {
        assert_eq!(job["status"]["succeeded"], 1, "{job}");
    }
    let children = stdout(&out)
        .lines()
        .filter(|l| l.starts_with('[') && l.contains(" FINISHED"))
        .count();
    assert_eq!(children, 4, "{}", stdout(&out));
}

#[test]
fn misconfiguration_is_refused_naming_the_key_or_flag() {
    let env = Env::start();
    let uri = env.project_uri();
    let out = env.cairn(&["run", &uri, "-b", "kubernetes"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--backend-config"));
    let out = env.cairn(&[
        "run",
        &uri,
        "-b",
        "kubernetes",
        "-c",
        r#"{"kube-contxt": "fake"}"#,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("kube-contxt"));
    assert!(env.cluster.jobs().is_empty());
}

/// `--build-image` needs a Docker daemon: with none (the real `docker` client pointed at a
/// socket nobody serves), the error names the daemon and nothing is submitted; without the
/// `docker` executable, it names the executable.
#[test]
fn build_image_without_a_docker_daemon_is_refused_naming_it() {
    let env = Env::start();
    let uri = env.project_uri();
    let nowhere = env.dir.path().join("no-docker.sock");
    let out = env.cairn_with(
        &[
            "run",
            &uri,
            "-b",
            "kubernetes",
            "-c",
            "kubernetes_config.json",
            "--build-image",
        ],
        &[("DOCKER_HOST", format!("unix://{}", nowhere.display()))],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let docker_installed = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .any(|d| d.join("docker").is_file());
    let named = if docker_installed {
        "no Docker daemon answers `docker version`"
    } else {
        "the `docker` executable is not on the PATH"
    };
    assert!(stderr.contains(named), "{stderr}");
    assert!(env.cluster.jobs().is_empty());
    // Without a repository-uri there is nowhere to push: refused naming the key.
    let out = env.cairn(&[
        "run",
        &uri,
        "-b",
        "kubernetes",
        "-c",
        &serde_json::json!({
            "kube-context": "fake",
            "kube-job-template-path": env.dir.path().join("job.yaml"),
        })
        .to_string(),
        "--build-image",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("repository-uri"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `docker` client standing in for a daemon-backed one (no Docker daemon can run on these
/// machines): it records each call's argv and the Dockerfile it is given, and answers
/// `version`, `build`, `push` and `image inspect` as docker does.
const FAKE_DOCKER: &str = r#"#!/bin/sh
printf '%s\n' "$*" >> "$FAKE_DOCKER_DIR/calls"
case "$1" in
    version) echo 28.2.2 ;;
    build) cat > "$FAKE_DOCKER_DIR/Dockerfile"; echo "built $3 from $6" ;;
    push) echo "$2: digest: sha256:feed size: 1" ;;
    image) echo '["example/k8s-example@sha256:feed"]' ;;
    *) exit 1 ;;
esac
"#;

#[test]
fn build_image_builds_pushes_and_the_job_runs_the_pushed_digest() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::start();
    let bin = env.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("docker"), FAKE_DOCKER).unwrap();
    std::fs::set_permissions(bin.join("docker"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin.clone())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let out = env.cairn_with(
        &[
            "run",
            &env.project_uri(),
            "-b",
            "kubernetes",
            "-c",
            "kubernetes_config.json",
            "--build-image",
            "--no-wait",
        ],
        &[
            ("PATH", path.to_string_lossy().into_owned()),
            ("FAKE_DOCKER_DIR", bin.to_string_lossy().into_owned()),
        ],
    );
    check(&out);
    let run_id = stdout(&out).trim().to_owned();
    let tag = format!("example/k8s-example:{}", &env.commit[..7]);
    let calls = std::fs::read_to_string(bin.join("calls")).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(calls[0], "version --format {{.Server.Version}}");
    assert!(
        calls[1].starts_with(&format!("build -t {tag} -f - ")),
        "{}",
        calls[1]
    );
    assert_eq!(calls[2], format!("push {tag}"));
    assert_eq!(
        calls[3],
        format!("image inspect --format {{{{json .RepoDigests}}}} {tag}")
    );
    assert_eq!(
        std::fs::read_to_string(bin.join("Dockerfile")).unwrap(),
        "FROM python:3.12-slim\nCOPY ./ /mlflow/projects/code/\nWORKDIR /mlflow/projects/code/\n"
    );
    // The build context is the project: the fetched checkout with its MLproject.
    let context = calls[1].rsplit(' ').next().unwrap();
    assert!(Path::new(context).join("MLproject").is_file(), "{context}");
    let jobs = env.cluster.jobs();
    assert_eq!(jobs.len(), 1);
    let spec = &jobs[0]["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"][0]["image"],
        format!("{tag}@sha256:feed").as_str()
    );
    // The project is in the image: no init container fetches it.
    assert!(spec["initContainers"].is_null(), "{spec}");
    let run = env.run(&run_id);
    assert_eq!(tag_of(&run, "mlflow.docker.image.uri"), Some(tag));
    assert_eq!(
        tag_of(&run, "mlflow.docker.image.id").as_deref(),
        Some("sha256:feed")
    );
}
