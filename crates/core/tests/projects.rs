//! `cairn run` and `cairn runs` with the real binary against a real `cairn server`, running the
//! shell-only example project (examples/projects/shell) on the local backend: what the run
//! records (tags, params, metrics, status, exit code), the failure paths, Ctrl-C, and
//! asynchronous submission re-attached through the stored handle.
#![cfg(all(unix, feature = "store-sqlite"))]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{Running, cairn, server, signal, sqlite_server, wait};

/// A `cairn server` on a fresh SQLite store, and a scratch directory with a copy of the
/// example project.
struct Env {
    // Stopped when the Env is dropped.
    _server: Running,
    uri: String,
    dir: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/projects/shell");
        let project = dir.path().join("project");
        std::fs::create_dir(&project).unwrap();
        for entry in std::fs::read_dir(example).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), project.join(entry.file_name())).unwrap();
        }
        let (server, uri) = sqlite_server(dir.path());
        Env {
            _server: server,
            uri,
            dir,
        }
    }

    fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    fn command(&self, args: &[&str]) -> Command {
        let storage = self.dir.path().join("storage");
        let mut all = args.to_vec();
        let storage = storage.to_string_lossy().into_owned();
        all.extend(["--storage-dir", &storage]);
        cairn(self.dir.path(), &all, &[("MLFLOW_TRACKING_URI", &self.uri)])
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn get(&self, endpoint: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-sf", &format!("{}/api/2.0/mlflow/{endpoint}", self.uri)])
            .output()
            .unwrap();
        assert!(out.status.success(), "GET {endpoint} failed");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn run_data(&self, run_id: &str) -> Run {
        let v = self.get(&format!("runs/get?run_id={run_id}"))["run"].clone();
        let pairs = |k: &str| -> Vec<(String, String)> {
            let mut out: Vec<_> = v["data"][k]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    (
                        t["key"].as_str().unwrap().to_owned(),
                        t["value"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            out.sort();
            out
        };
        Run {
            status: v["info"]["status"].as_str().unwrap().to_owned(),
            experiment_id: v["info"]["experiment_id"].as_str().unwrap().to_owned(),
            tags: pairs("tags"),
            params: pairs("params"),
        }
    }

    /// The ids of the runs in `experiment_id`.
    fn run_ids(&self, experiment_id: &str) -> Vec<String> {
        let out = Command::new("curl")
            .args([
                "-sf",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                &format!("{}/api/2.0/mlflow/runs/search", self.uri),
                "-d",
                &format!("{{\"experiment_ids\": [\"{experiment_id}\"]}}"),
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["info"]["run_id"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[derive(Debug)]
struct Run {
    status: String,
    experiment_id: String,
    tags: Vec<(String, String)>,
    params: Vec<(String, String)>,
}

impl Run {
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The run id `cairn run` announced on stderr.
fn announced_run_id(stderr: &str) -> String {
    let start = stderr
        .find("in run with ID '")
        .unwrap_or_else(|| panic!("no run announced: {stderr}"))
        + "in run with ID '".len();
    stderr[start..start + 32].to_owned()
}

#[test]
fn a_shell_project_runs_and_logs_into_its_run() {
    let env = Env::start();
    let project = env.project();
    let out = env.run(&[
        "run",
        project.to_str().unwrap(),
        "-P",
        "alpha=0.25",
        "-P",
        "greeting=hi there",
        "-P",
        "extra=x y",
        "--experiment-name",
        "projects",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The output streamed through, the quoting kept "hi there" one argument.
    assert!(
        stdout.contains("training with alpha=0.25 for 3 steps: hi there"),
        "{stdout}"
    );
    assert!(
        stderr.contains("'sh train.sh 0.25 3 'hi there' --extra 'x y'' in run with ID"),
        "{stderr}"
    );
    let run_id = announced_run_id(&stderr);
    let run = env.run_data(&run_id);
    assert_eq!(run.status, "FINISHED", "{run:?}");
    assert_ne!(
        run.experiment_id, "0",
        "--experiment-name creates the experiment"
    );
    assert_eq!(
        run.params,
        [
            ("alpha".into(), "0.25".into()),
            ("extra".into(), "x y".into()),
            ("greeting".into(), "hi there".into()),
            ("steps".into(), "3".into()),
        ]
    );
    assert_eq!(run.tag("mlflow.source.type"), Some("PROJECT"));
    assert_eq!(run.tag("mlflow.project.entryPoint"), Some("main"));
    assert_eq!(run.tag("mlflow.project.backend"), Some("local"));
    assert_eq!(
        run.tag("mlflow.source.name"),
        Some(project.to_str().unwrap())
    );
    assert_eq!(run.tag("mlflow.project.env"), None, "not set for local");
    assert_eq!(run.tag("cairn.project.exitCode"), Some("0"));
    // The entry point logged into the same run, through MLFLOW_RUN_ID/MLFLOW_TRACKING_URI.
    assert_eq!(run.tag("greeting"), Some("hi there"));
    let history = env.get(&format!(
        "metrics/get-history?run_id={run_id}&metric_key=loss"
    ));
    assert_eq!(history["metrics"].as_array().unwrap().len(), 3, "{history}");
    let handle = run.tag("cairn.project.handle").expect("the handle tag");
    assert!(handle.contains("\"backend\":\"local\""), "{handle}");

    // A remote `path` parameter is downloaded through Cairn's artifact resolution; the run
    // records the URI.
    std::fs::write(env.dir.path().join("lines.txt"), "1\n2\n3\n4\n").unwrap();
    let up = cairn(
        env.dir.path(),
        &[
            "artifacts",
            "upload",
            "--local-path",
            "lines.txt",
            &format!("runs:/{run_id}/inputs"),
        ],
        &[("MLFLOW_TRACKING_URI", &env.uri)],
    )
    .output()
    .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let uri = format!("runs:/{run_id}/inputs/lines.txt");
    let out = env.run(&[
        "run",
        project.to_str().unwrap(),
        "-e",
        "count",
        "-P",
        &format!("data={uri}"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "counting file:///dev/null\n4\n"
    );
    let counted = env.run_data(&announced_run_id(&stderr));
    assert!(
        counted.params.contains(&("data".into(), uri.clone())),
        "{counted:?}"
    );
    assert!(stderr.contains("/downloads/"), "{stderr}");
}

#[test]
fn failure_paths_name_the_problem() {
    let env = Env::start();
    let project = env.project();
    let project = project.to_str().unwrap();

    // A missing parameter and bad typed values: refused before any run is created.
    let out = env.run(&["run", project, "-e", "greet"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: No value given for missing parameters: 'name'"),
        "{stderr}"
    );
    let out = env.run(&["run", project, "-P", "alpha=fast", "-P", "steps=2.5"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "error: Invalid parameter values: alpha=\"fast\" is not a float; steps=\"2.5\" is \
             not an int"
        ),
        "{stderr}"
    );
    assert!(env.run_ids("0").is_empty(), "no run for refused parameters");

    // An entry point that exits 3: FAILED with the exit code recorded.
    let out = env.run(&["run", project, "-e", "fail"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FAILED (exit code 3)"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("about to fail"));
    let run = env.run_data(&announced_run_id(&stderr));
    assert_eq!(run.status, "FAILED");
    assert_eq!(run.tag("cairn.project.exitCode"), Some("3"));

    // `path` and `uri` parameters: a local path must exist and reaches the command absolute;
    // the run records the value as given.
    std::fs::write(env.dir.path().join("data.txt"), "a\nb\nc\n").unwrap();
    let out = env.run(&["run", project, "-e", "count", "-P", "data=data.txt"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "counting file:///dev/null\n3\n"
    );
    let abs = env.dir.path().join("data.txt");
    assert!(
        stderr.contains(&format!("wc -l < {}", abs.display())),
        "{stderr}"
    );
    let run = env.run_data(&announced_run_id(&stderr));
    assert!(
        run.params.contains(&("data".into(), "data.txt".into())),
        "{run:?}"
    );
    let out = env.run(&["run", project, "-e", "count", "-P", "data=missing.txt"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Got value missing.txt for parameter data, but no such file"),
        "{stderr}"
    );
    let out = env.run(&[
        "run",
        project,
        "-e",
        "count",
        "-P",
        "data=data.txt",
        "-P",
        "source=plain",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Expected URI for parameter source but got plain"),
        "{stderr}"
    );

    let out = env.run(&["run", project, "-e", "nosuch"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Could not find nosuch among entry points"),
        "{stderr}"
    );
}

fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text.trim().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: &str) -> bool {
    Command::new("kill")
        .args(["-0", pid])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn ctrl_c_and_sigterm_kill_the_process_group_and_mark_the_run_killed() {
    let env = Env::start();
    let project = env.project();
    for sig in ["-INT", "-TERM"] {
        let _ = std::fs::remove_file(project.join("sleeper.pid"));
        let mut child = env
            .command(&["run", project.to_str().unwrap(), "-e", "sleep"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let sleeper = wait_for_file(&project.join("sleeper.pid"));
        assert!(alive(&sleeper));
        signal(child.id(), sig);
        let status = wait(&mut child);
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(1), "{sig}: {stderr}");
        assert!(stderr.contains("KILLED"), "{sig}: {stderr}");
        let run = env.run_data(&announced_run_id(&stderr));
        assert_eq!(run.status, "KILLED", "{sig}");
        // `cairn run` waited for the group to be gone: no orphan.
        assert!(
            !alive(&sleeper),
            "{sig}: the entry point's child outlived the run"
        );
    }
}

#[test]
fn no_wait_then_runs_logs_wait_and_cancel_reattach_through_the_handle() {
    let env = Env::start();
    let project = env.project();
    let project = project.to_str().unwrap();
    let out = env.run(&["run", project, "-P", "steps=2", "--no-wait"]);
    assert!(out.status.success());
    let run_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(run_id.len(), 32, "{run_id}");
    let logs = env.run(&["runs", "logs", "--follow", &run_id]);
    assert_eq!(
        String::from_utf8_lossy(&logs.stdout),
        "training with alpha=0.5 for 2 steps: hello world\nstep 0 loss 0.5\nstep 1 loss 0.25\n\
         done (experiment 0)\n"
    );
    // Until someone waits, the run is RUNNING in the tracking store; `runs wait` ends it.
    let waited = env.run(&["runs", "wait", &run_id]);
    assert!(waited.status.success());
    assert_eq!(env.run_data(&run_id).status, "FINISHED");

    let out = env.run(&["run", project, "-e", "sleep", "--no-wait"]);
    let run_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let sleeper = wait_for_file(&env.project().join("sleeper.pid"));
    let cancelled = env.run(&["runs", "cancel", &run_id]);
    assert_eq!(
        String::from_utf8_lossy(&cancelled.stdout),
        format!("{run_id} KILLED\n")
    );
    assert_eq!(env.run_data(&run_id).status, "KILLED");
    assert!(!alive(&sleeper));
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_git_project_runs_at_a_commit_and_subdirectory() {
    let env = Env::start();
    // A repository with the example under `sub/`; the second commit changes alpha's default.
    let repo = env.dir.path().join("repo");
    std::fs::create_dir_all(repo.join("sub")).unwrap();
    git(&repo, &["init", "--quiet", "-b", "main"]);
    for name in ["MLproject", "train.sh"] {
        std::fs::copy(env.project().join(name), repo.join("sub").join(name)).unwrap();
    }
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "--quiet", "-m", "first"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    let spec = std::fs::read_to_string(repo.join("sub/MLproject")).unwrap();
    std::fs::write(
        repo.join("sub/MLproject"),
        spec.replace(
            "alpha: {type: float, default: 0.5}",
            "alpha: {type: float, default: 0.75}",
        ),
    )
    .unwrap();
    git(&repo, &["commit", "--quiet", "-am", "second"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", repo.display());
    let uri = format!("{url}#sub");

    for (version, commit, alpha, branch) in [
        (Some(first.as_str()), &first, "0.5", None),
        (Some("main"), &second, "0.75", Some("main")),
        (None, &second, "0.75", None),
    ] {
        let mut args = vec!["run", uri.as_str(), "-P", "steps=1"];
        if let Some(v) = version {
            args.extend(["--version", v]);
        }
        let out = env.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let run = env.run_data(&announced_run_id(&stderr));
        assert_eq!(run.status, "FINISHED");
        assert!(
            run.params.contains(&("alpha".into(), alpha.into())),
            "{version:?}: {run:?}"
        );
        assert_eq!(run.tag("mlflow.source.git.commit"), Some(commit.as_str()));
        assert_eq!(run.tag("mlflow.source.git.repoURL"), Some(url.as_str()));
        assert_eq!(run.tag("mlflow.source.git.branch"), branch);
        assert_eq!(run.tag("mlflow.source.name"), Some(uri.as_str()));
    }

    let out = env.run(&["run", &format!("{url}#sub"), "--version", "nosuchref"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("git checkout --quiet --detach nosuchref"),
        "{stderr}"
    );
    let out = env.run(&["run", env.project().to_str().unwrap(), "--version", "x"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Setting a version is only supported for Git project URIs"),
        "{stderr}"
    );
}

/// A `python_env` project in `dir` whose entry point prints the interpreter's prefix.
fn python_env_project(dir: &Path, dependencies: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("MLproject"),
        "name: venv\npython_env: python_env.yaml\nentry_points:\n  main:\n    command: \
         \"python -c 'import sys; print(\\\"prefix=\\\" + sys.prefix)'\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("python_env.yaml"),
        format!("python: \"3\"\nbuild_dependencies: []\ndependencies: {dependencies}\n"),
    )
    .unwrap();
}

#[test]
fn python_env_projects_get_a_virtualenv_built_once_and_reused() {
    let env = Env::start();
    let project = env.dir.path().join("venv-project");
    python_env_project(&project, "[]");
    let storage = env.dir.path().join("storage");
    let envs = storage.join("envs");
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let out = env.run(&["run", project.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let run = env.run_data(&announced_run_id(&stderr));
        assert_eq!(run.tag("mlflow.project.env"), Some("virtualenv"));
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let prefix = format!("prefix={}/virtualenv-", envs.display());
    assert!(
        outputs[0].contains("=== Creating the Python environment"),
        "{}",
        outputs[0]
    );
    assert!(outputs[0].contains(&prefix), "{}", outputs[0]);
    assert!(
        !outputs[1].contains("=== Creating"),
        "reused: {}",
        outputs[1]
    );
    assert!(outputs[1].contains(&prefix), "{}", outputs[1]);

    // A failing pip install fails the run, with pip's error in the output.
    let broken = env.dir.path().join("broken-project");
    python_env_project(&broken, "[\"not a valid requirement!!\"]");
    let out = env.run(&["run", broken.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("FAILED (exit code 1)"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Invalid requirement"), "{stdout}");
    assert_eq!(env.run_data(&announced_run_id(&stderr)).status, "FAILED");

    // A conda project with --env-manager virtualenv: its Python and pip packages, as MLflow.
    let conda = env.dir.path().join("conda-as-venv");
    python_env_project(&conda, "[]");
    std::fs::remove_file(conda.join("python_env.yaml")).unwrap();
    let spec = std::fs::read_to_string(conda.join("MLproject")).unwrap();
    std::fs::write(
        conda.join("MLproject"),
        spec.replace("python_env: python_env.yaml", "conda_env: conda.yaml"),
    )
    .unwrap();
    std::fs::write(
        conda.join("conda.yaml"),
        "dependencies:\n  - python=3\n  - numpy\n  - pip:\n    - not a valid requirement!!\n",
    )
    .unwrap();
    let out = env.run(&[
        "run",
        conda.to_str().unwrap(),
        "--env-manager",
        "virtualenv",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("The conda packages numpy are not installed in a virtualenv environment"),
        "{stderr}"
    );
    let run = env.run_data(&announced_run_id(&stderr));
    assert_eq!(run.tag("mlflow.project.env"), Some("virtualenv"));
    // The pip list reached pip.
    assert_eq!(run.status, "FAILED");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Invalid requirement"), "{stdout}");

    // A missing environment file is refused before a run exists.
    std::fs::remove_file(broken.join("python_env.yaml")).unwrap();
    let out = env.run(&["run", broken.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Project specified python_env file") && stderr.contains("no such file"),
        "{stderr}"
    );
}

#[test]
fn a_sweep_runs_the_cross_product_as_children_of_one_parent() {
    let env = Env::start();
    let project = env.project();
    let out = env.run(&[
        "run",
        project.to_str().unwrap(),
        "-P",
        "alpha=0.1,0.5,1.0",
        "-P",
        "steps=1,2",
        "--sweep",
        "--max-parallel",
        "2",
        "--sweep-metric",
        "loss",
        "--experiment-name",
        "sweep",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parent = stdout
        .lines()
        .next()
        .and_then(|l| l.split("parent run ").nth(1))
        .and_then(|l| l.split(',').next())
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_owned();
    // Never more than two running at once, as the progress lines tell.
    let mut running = 0i32;
    for line in stdout.lines().filter(|l| l.starts_with('[')) {
        if line.ends_with(" RUNNING") {
            running += 1;
        } else {
            running -= 1;
        }
        assert!((0..=2).contains(&running), "{stdout}");
    }
    let parent_run = env.run_data(&parent);
    assert_eq!(parent_run.status, "FINISHED");
    let children: Vec<Run> = env
        .run_ids(&parent_run.experiment_id)
        .iter()
        .filter(|id| **id != parent)
        .map(|id| env.run_data(id))
        .collect();
    assert_eq!(children.len(), 6, "{children:?}");
    let mut combos: Vec<(String, String)> = children
        .iter()
        .map(|c| {
            assert_eq!(c.tag("mlflow.parentRunId"), Some(parent.as_str()));
            assert_eq!(c.status, "FINISHED");
            let p = |k: &str| c.params.iter().find(|(n, _)| n == k).unwrap().1.clone();
            (p("alpha"), p("steps"))
        })
        .collect();
    combos.sort();
    let expected: Vec<(String, String)> = [
        ("0.1", "1"),
        ("0.1", "2"),
        ("0.5", "1"),
        ("0.5", "2"),
        ("1.0", "1"),
        ("1.0", "2"),
    ]
    .iter()
    .map(|(a, s)| (a.to_string(), s.to_string()))
    .collect();
    assert_eq!(combos, expected);
    // The summary: a header and one row per run with its parameters, status and metric.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("run ") && l.contains("alpha") && l.ends_with("loss")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.contains(" 1.0 ")
            && l.contains(" 2 ")
            && l.contains("FINISHED")
            && l.ends_with(" 0.5")),
        "{stdout}"
    );

    // A failing child fails the parent; a bad value in any combination is refused up front.
    let out = env.run(&[
        "run",
        project.to_str().unwrap(),
        "-e",
        "fail",
        "-P",
        "code=0,3",
        "--sweep",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sweep parent run") && stderr.contains("FAILED"),
        "{stderr}"
    );
    let out = env.run(&[
        "run",
        project.to_str().unwrap(),
        "-P",
        "alpha=0.1,x",
        "--sweep",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("alpha=\"x\" is not a float"), "{stderr}");
}

/// The shared library of the jsonl example (a dev-dependency of cairn-core), next to this test.
fn jsonl_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().join(format!(
        "{}cairn_example_jsonl{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

#[test]
fn against_the_configured_store_with_its_run_context_providers() {
    let env = Env::start();
    let dir = env.dir.path().join("store-mode");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("cairn.toml"),
        format!(
            "[[plugins]]\npath = \"{}\"\n\n[run_context]\nproviders = [\"vendor\"]\n\n\
             [settings.vendor]\nhost = \"build-7\"\n",
            jsonl_library().display()
        ),
    )
    .unwrap();
    let db = dir.join("store.db");
    let store_uri = format!("sqlite:///{}", db.display());
    let project = env.project();
    let out = cairn(
        &dir,
        &[
            "run",
            project.to_str().unwrap(),
            "-e",
            "greet",
            "-P",
            "name=store",
            "--storage-dir",
            dir.join("storage").to_str().unwrap(),
        ],
        &[("MLFLOW_TRACKING_URI", &store_uri)],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello store\n");
    let run_id = announced_run_id(&stderr);

    // Read the run back through a server on that store.
    let args = ["server", "-p", "0", "--backend-store-uri", &store_uri];
    let (server, uri) = server(&dir, &args, Stdio::null());
    let reader = Env {
        _server: server,
        uri,
        dir: tempfile::tempdir().unwrap(),
    };
    let run = reader.run_data(&run_id);
    assert_eq!(run.status, "FINISHED");
    assert_eq!(run.params, [("name".into(), "store".into())]);
    assert_eq!(run.tag("mlflow.source.type"), Some("PROJECT"));
    assert_eq!(run.tag("vendor.host"), Some("build-7"), "{run:?}");
    assert_eq!(run.tag("cairn.project.exitCode"), Some("0"));
}

/// `files` (name, content, mode) zipped into `path`, deflated.
fn write_zip(path: &Path, files: &[(&str, &[u8], u32)]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, content, mode) in files {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(*mode);
        zip.start_file(*name, options).unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn zip_projects_run_from_a_local_path_and_from_a_runs_uri() {
    let env = Env::start();
    let spec = std::fs::read(env.project().join("MLproject")).unwrap();
    let script = std::fs::read(env.project().join("train.sh")).unwrap();
    let archive = env.dir.path().join("project.zip");
    write_zip(
        &archive,
        &[
            ("proj/MLproject", &spec, 0o644),
            ("proj/train.sh", &script, 0o755),
            ("proj/run.sh", b"#!/bin/sh\necho script $1\n", 0o755),
        ],
    );

    // A local archive, with a subdirectory; the run names it by its absolute path.
    let out = env.run(&["run", "project.zip#proj", "-e", "greet", "-P", "name=zip"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello zip\n");
    let first_id = announced_run_id(&stderr);
    let run = env.run_data(&first_id);
    assert_eq!(run.status, "FINISHED");
    assert_eq!(
        run.tag("mlflow.source.name"),
        Some(format!("{}#proj", archive.display()).as_str())
    );
    assert_eq!(run.tag("mlflow.source.git.commit"), None);
    // Unix modes survive extraction: an executable entry point runs as is.
    let mut edited = String::from_utf8(spec.clone()).unwrap();
    edited.push_str("  exec:\n    command: \"./run.sh ok\"\n");
    write_zip(
        &archive,
        &[
            ("proj/MLproject", edited.as_bytes(), 0o644),
            ("proj/run.sh", b"#!/bin/sh\necho script $1\n", 0o755),
        ],
    );
    let out = env.run(&[
        "run",
        &format!("file://{}#proj", archive.display()),
        "-e",
        "exec",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "script ok\n");

    // A remote archive: uploaded into a run, run from its runs:/ URI through Cairn's artifact
    // resolution; the run records the URI.
    let up = cairn(
        env.dir.path(),
        &[
            "artifacts",
            "upload",
            "--local-path",
            "project.zip",
            &format!("runs:/{first_id}/src"),
        ],
        &[("MLFLOW_TRACKING_URI", &env.uri)],
    )
    .output()
    .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let uri = format!("runs:/{first_id}/src/project.zip#proj");
    let out = env.run(&["run", &uri, "-e", "exec"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("=== Fetching project from runs:/"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "script ok\n");
    let remote = env.run_data(&announced_run_id(&stderr));
    assert_eq!(remote.status, "FINISHED");
    assert_eq!(remote.tag("mlflow.source.name"), Some(uri.as_str()));
    // The same archive over plain http(s), as MLflow fetches one: the server's artifact proxy.
    let http = format!(
        "{}/api/2.0/mlflow-artifacts/artifacts/0/{first_id}/artifacts/src/project.zip#proj",
        env.uri
    );
    let out = env.run(&["run", &http, "-e", "exec"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "script ok\n");
    let out = env.run(&["run", &format!("{}/nosuch.zip", env.uri)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot download {}/nosuch.zip", env.uri)),
        "{stderr}"
    );

    // Not an archive, a missing subdirectory, a version: named errors.
    std::fs::write(env.dir.path().join("bad.zip"), "not a zip").unwrap();
    let out = env.run(&["run", "bad.zip"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot extract the project archive") && stderr.contains("bad.zip"),
        "{stderr}"
    );
    let out = env.run(&["run", "project.zip#nosuch"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the subdirectory nosuch does not exist in project.zip"),
        "{stderr}"
    );
    let out = env.run(&["run", "project.zip#proj", "--version", "v1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Setting a version is only supported for Git project URIs"),
        "{stderr}"
    );
}

#[test]
fn conda_and_docker_environments_name_what_is_missing() {
    let env = Env::start();
    let conda = env.dir.path().join("conda-project");
    std::fs::create_dir(&conda).unwrap();
    std::fs::write(
        conda.join("MLproject"),
        "name: c\nentry_points:\n  main:\n    command: \"python -c 'print(1)'\"\n",
    )
    .unwrap();
    std::fs::write(
        conda.join("conda.yaml"),
        "name: c\ndependencies: [python=3.11]\n",
    )
    .unwrap();
    let docker = env.dir.path().join("docker-project");
    std::fs::create_dir(&docker).unwrap();
    std::fs::write(
        docker.join("MLproject"),
        "name: d\ndocker_env:\n  image: python:3.11-slim\nentry_points:\n  main:\n    command: \"echo hi\"\n",
    )
    .unwrap();
    let path_without = env.dir.path().join("empty-bin");
    std::fs::create_dir(&path_without).unwrap();
    let failing = |project: &Path, vars: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec!["run", project.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut cmd = env.command(&args);
        cmd.env_remove("CONDA_EXE");
        cmd.envs(vars.iter().copied());
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let run = env.run_data(&announced_run_id(&stderr));
        assert_eq!(run.status, "FAILED", "{stderr}");
        (stderr, run)
    };

    // conda: MLflow's lookup (MLFLOW_CONDA_HOME, CONDA_EXE, then the PATH), each named.
    let home = env.dir.path().join("no-conda");
    let (stderr, run) = failing(
        &conda,
        &[("MLFLOW_CONDA_HOME", home.to_str().unwrap())],
        &[],
    );
    assert!(
        stderr.contains(&format!(
            "conda environments need the `conda` executable: {}/bin/conda does not exist (from \
             MLFLOW_CONDA_HOME or CONDA_EXE)",
            home.display()
        )),
        "{stderr}"
    );
    assert_eq!(run.tag("mlflow.project.env"), Some("conda"));
    let (stderr, _) = failing(&conda, &[("PATH", path_without.to_str().unwrap())], &[]);
    assert!(
        stderr.contains("conda environments need the `conda` executable, which is not on the PATH"),
        "{stderr}"
    );

    // docker_env without docker: the error says the Kubernetes backend runs it.
    let (stderr, run) = failing(&docker, &[("PATH", path_without.to_str().unwrap())], &[]);
    assert!(
        stderr
            .contains("docker_env projects need the `docker` executable, which is not on the PATH")
            && stderr.contains("-b kubernetes"),
        "{stderr}"
    );
    assert_eq!(run.tag("mlflow.project.env"), Some("docker"));
    assert_eq!(run.tag("mlflow.docker.image.uri"), Some("python:3.11-slim"));
    // A project that declares no environment gets one of the manager asked for.
    let plain = env.dir.path().join("plain-project");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(
        plain.join("MLproject"),
        "name: p\nentry_points:\n  main:\n    command: \"echo hi\"\n",
    )
    .unwrap();
    let home = home.to_str().unwrap();
    let mut cmd = env.command(&["run", plain.to_str().unwrap(), "--env-manager", "conda"]);
    let out = cmd.env("MLFLOW_CONDA_HOME", home).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("conda environments need the `conda` executable"),
        "{stderr}"
    );
    let run = env.run_data(&announced_run_id(&stderr));
    assert_eq!(run.tag("mlflow.project.env"), Some("conda"));
    // (uv may or may not be installed: only the recorded environment is checked.)
    let out = env.run(&["run", plain.to_str().unwrap(), "--env-manager", "uv"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let run = env.run_data(&announced_run_id(&stderr));
    assert_eq!(run.tag("mlflow.project.env"), Some("uv"), "{stderr}");

    // --build-image: MLflow's tag for the image to build (the project name, no commit here).
    let (_, run) = failing(
        &docker,
        &[("PATH", path_without.to_str().unwrap())],
        &["--build-image"],
    );
    assert_eq!(run.tag("mlflow.docker.image.uri"), Some("d"));
}

#[test]
fn a_random_sweep_draws_from_ranges_reproducibly_by_seed() {
    let env = Env::start();
    let project = env.project();
    let sweep = |experiment: &str| -> Vec<(String, String, String)> {
        let out = env.run(&[
            "run",
            project.to_str().unwrap(),
            "-P",
            "alpha=uniform:0.1:0.2",
            "-P",
            "steps=int:1:3",
            "-P",
            "greeting=a,b",
            "--sweep-random",
            "5",
            "--sweep-seed",
            "7",
            "--max-parallel",
            "2",
            "--experiment-name",
            experiment,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stderr.contains("=== Random sweep of 5 runs with --sweep-seed 7 ==="),
            "{stderr}"
        );
        let parent = stdout
            .lines()
            .next()
            .and_then(|l| l.split("parent run ").nth(1))
            .and_then(|l| l.split(',').next())
            .unwrap()
            .to_owned();
        let parent_run = env.run_data(&parent);
        assert_eq!(parent_run.status, "FINISHED");
        let mut draws: Vec<(String, String, String)> = env
            .run_ids(&parent_run.experiment_id)
            .iter()
            .filter(|id| **id != parent)
            .map(|id| {
                let c = env.run_data(id);
                assert_eq!(c.tag("mlflow.parentRunId"), Some(parent.as_str()));
                assert_eq!(c.status, "FINISHED");
                let p = |k: &str| c.params.iter().find(|(n, _)| n == k).unwrap().1.clone();
                let alpha: f64 = p("alpha").parse().unwrap();
                assert!((0.1..=0.2).contains(&alpha), "{c:?}");
                assert!(["1", "2", "3"].contains(&p("steps").as_str()), "{c:?}");
                assert!(["a", "b"].contains(&p("greeting").as_str()), "{c:?}");
                (p("alpha"), p("steps"), p("greeting"))
            })
            .collect();
        draws.sort();
        assert_eq!(draws.len(), 5);
        draws
    };
    let first = sweep("random-1");
    // Random draws, not one value repeated.
    assert!(first.iter().any(|d| d.0 != first[0].0), "{first:?}");
    assert_eq!(
        sweep("random-2"),
        first,
        "the same seed draws the same values"
    );

    // A bad range is refused before any run exists.
    let out = env.run(&[
        "run",
        project.to_str().unwrap(),
        "-P",
        "alpha=uniform:1:0.5",
        "--sweep-random",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("-P alpha=uniform:1:0.5: the bounds must be numbers with LOW < HIGH"),
        "{stderr}"
    );
}

#[test]
fn ctrl_c_cancels_a_sweeps_running_children_and_starts_no_more() {
    let env = Env::start();
    let project = env.dir.path().join("sleepers");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("MLproject"),
        "name: sleepers\nentry_points:\n  main:\n    parameters:\n      n: int\n    command: \
         \"sleep 600 & echo $! > sleeper-{n}.pid; wait\"\n",
    )
    .unwrap();
    let mut child = env
        .command(&[
            "run",
            project.to_str().unwrap(),
            "-P",
            "n=1,2,3",
            "--sweep",
            "--max-parallel",
            "2",
            "--experiment-name",
            "cancelled-sweep",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sleepers = [
        wait_for_file(&project.join("sleeper-1.pid")),
        wait_for_file(&project.join("sleeper-2.pid")),
    ];
    signal(child.id(), "-INT");
    let status = wait(&mut child);
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("sweep: cancelling 2 running run(s)"),
        "{stdout}"
    );
    for pid in &sleepers {
        assert!(!alive(pid), "a child's process outlived the sweep");
    }
    assert!(
        !project.join("sleeper-3.pid").exists(),
        "a third run started"
    );
    let parent = stdout
        .lines()
        .next()
        .and_then(|l| l.split("parent run ").nth(1))
        .and_then(|l| l.split(',').next())
        .unwrap()
        .to_owned();
    let parent_run = env.run_data(&parent);
    assert_eq!(parent_run.status, "KILLED");
    let children: Vec<Run> = env
        .run_ids(&parent_run.experiment_id)
        .iter()
        .filter(|id| **id != parent)
        .map(|id| env.run_data(id))
        .collect();
    assert_eq!(children.len(), 2, "{children:?}");
    assert!(
        children.iter().all(|c| c.status == "KILLED"),
        "{children:?}"
    );
}
