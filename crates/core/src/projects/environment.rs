//! Environments of the local backend, each an argv prefix in front of the entry point's command:
//!
//! * `python_env`: a `python_env.yaml` built with `venv` + `pip` (`virtualenv`) or `uv`, once per
//!   content hash, under `<storage dir>/envs/`, and reused;
//! * `conda`: a conda environment named as MLflow names it (`mlflow-<sha1 of the environment
//!   file>`), created with the `conda` executable unless it exists, then `conda run`;
//! * `docker_env`: `docker run --rm` of the image with the project mounted as its working
//!   directory.
//!
//! The build runs inside the run's own process group, as the first part of its command (a
//! shell script that takes a lock directory, builds the environment unless it is marked
//! ready, and `exec`s the entry point with the environment's `bin` first on the `PATH`): so
//! its output (pip's errors included) is the run's output, a failed build fails the run, and
//! cancelling the run stops the build. Runs that need the same environment at once wait for
//! the first to build it; a lock left by a builder that died is taken over.

use cairn_plugin_api::projects::{PythonEnv, PythonEnvManager};
use cairn_plugin_api::{Error, Result};
use std::path::{Path, PathBuf};

/// Takes the lock directory `$lock` (waiting for its holder; a lock left by a builder that died
/// is taken over, and so is one that has had no holder's pid for over a minute: its builder
/// died between taking it and writing its pid, or a takeover raced with it) and releases it
/// when the script exits.
const LOCK: &str = r#"while ! mkdir "$lock" 2>/dev/null; do
    pid=$(cat "$lock/pid" 2>/dev/null || true)
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then rm -rf "$lock"; continue; fi
    if [ -z "$pid" ] && [ -n "$(find "$lock" -maxdepth 0 -mmin +1 2>/dev/null)" ]; then rm -rf "$lock"; continue; fi
    sleep 1
done
echo $$ > "$lock/pid"
trap 'rm -rf "$lock"' EXIT
"#;

/// `$1` env dir, `$2` manager, `$3` Python version, `$4` build requirements file, `$5`
/// requirements file, then the command.
const BUILD: &str = r#"set -e
env="$1"; manager="$2"; ver="$3"; build="$4"; reqs="$5"; shift 5
lock="$env.lock"
{LOCK}if [ ! -f "$env/.cairn-ready" ]; then
    rm -rf "$env"
    echo "=== Creating the Python environment $env ($manager, Python ${ver:-any}) ==="
    if [ "$manager" = uv ]; then
        command -v uv >/dev/null 2>&1 || { echo "cairn: --env-manager uv needs the uv executable on the PATH" >&2; exit 127; }
        uv venv --quiet ${ver:+--python "$ver"} "$env"
        if [ -s "$build" ]; then uv pip install --python "$env/bin/python" -r "$build"; fi
        if [ -s "$reqs" ]; then uv pip install --python "$env/bin/python" -r "$reqs"; fi
    else
        py=""
        for c in "python$ver" python3 python; do
            if command -v "$c" >/dev/null 2>&1 && WANTED="$ver" "$c" -c "import os, sys; w = os.environ['WANTED']; v = '%d.%d.%d.' % sys.version_info[:3]; sys.exit(0 if not w or v.startswith(w + '.') else 1)" 2>/dev/null; then py="$c"; break; fi
        done
        if [ -z "$py" ]; then
            echo "cairn: no Python $ver on the PATH (tried python$ver, python3, python); install it, or use --env-manager uv (which downloads Python) or local" >&2
            exit 127
        fi
        "$py" -m venv "$env"
        if [ -s "$build" ]; then "$env/bin/python" -m pip install --disable-pip-version-check -r "$build"; fi
        if [ -s "$reqs" ]; then "$env/bin/python" -m pip install --disable-pip-version-check -r "$reqs"; fi
    fi
    touch "$env/.cairn-ready"
fi
rm -rf "$lock"; trap - EXIT
VIRTUAL_ENV="$env"; PATH="$env/bin:$PATH"; export VIRTUAL_ENV PATH
exec "$@""#;

/// FNV-1a, 64 bits: a stable content hash (not a security boundary).
fn fnv(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The argv prefix that builds (or reuses) `spec`'s environment under `storage_dir` and runs
/// the command after it in that environment.
pub fn python_env(
    storage_dir: &Path,
    spec: &PythonEnv,
    manager: PythonEnvManager,
) -> Result<Vec<String>> {
    let manager = match manager {
        PythonEnvManager::Virtualenv => "virtualenv",
        PythonEnvManager::Uv => "uv",
    };
    let content = serde_json::json!([manager, spec]).to_string();
    let name = format!("{manager}-{:016x}", fnv(&content));
    let envs = std::path::absolute(storage_dir.join("envs"))
        .map_err(|e| Error::internal(format!("cannot resolve the storage directory: {e}")))?;
    let files = envs.join(format!("{name}.spec"));
    std::fs::create_dir_all(&files)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", files.display())))?;
    let write = |file: &str, lines: &[String]| -> Result<String> {
        let path = files.join(file);
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let tmp = files.join(format!("{file}.{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))?;
        Ok(path.to_string_lossy().into_owned())
    };
    let build = write("build-requirements.txt", &spec.build_dependencies)?;
    let reqs = write("requirements.txt", &spec.dependencies)?;
    Ok(vec![
        "sh".into(),
        "-c".into(),
        BUILD.replace("{LOCK}", LOCK),
        "cairn-env".into(),
        envs.join(name).to_string_lossy().into_owned(),
        manager.into(),
        spec.python.clone(),
        build,
        reqs,
    ])
}

/// `$1` conda executable, `$2` environment name, `$3` environment file, `$4` lock directory,
/// then the command.
const CONDA: &str = r#"set -e
conda="$1"; name="$2"; file="$3"; lock="$4"; shift 4
{LOCK}if ! "$conda" env list --json | grep -q "/$name\""; then
    echo "=== Creating conda environment $name ==="
    "$conda" env create -n "$name" --file "$file"
fi
rm -rf "$lock"; trap - EXIT
exec "$conda" run --no-capture-output -n "$name" "$@""#;

/// The executable `name` on the `PATH`, if any.
pub fn find_executable(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The conda executable, as MLflow finds it: `$MLFLOW_CONDA_HOME/bin/conda`, else
/// `$CONDA_EXE`, else `conda` on the `PATH`; an error naming what is missing otherwise.
pub fn conda_executable() -> Result<PathBuf> {
    let wanted = if let Some(home) = std::env::var_os("MLFLOW_CONDA_HOME") {
        PathBuf::from(home).join("bin").join("conda")
    } else if let Some(exe) = std::env::var_os("CONDA_EXE") {
        PathBuf::from(exe)
    } else {
        return find_executable("conda").ok_or_else(|| {
            Error::invalid(
                "conda environments need the `conda` executable, which is not on the PATH: \
                 install conda (or miniforge), set MLFLOW_CONDA_HOME to its installation, or run \
                 with --env-manager local",
            )
        });
    };
    if wanted.is_file() {
        Ok(wanted)
    } else {
        Err(Error::invalid(format!(
            "conda environments need the `conda` executable: {} does not exist (from \
             MLFLOW_CONDA_HOME or CONDA_EXE); install conda there, fix the variable, or run with \
             --env-manager local",
            wanted.display()
        )))
    }
}

/// MLflow's name for the conda environment of the file `content`: `mlflow-<sha1>`.
pub fn conda_env_name(content: &str) -> String {
    format!("mlflow-{}", sha1_smol::Sha1::from(content).digest())
}

/// The argv prefix that creates (or reuses) the conda environment of the file `content` and
/// runs the command after it in that environment with `conda run`.
pub fn conda_env(storage_dir: &Path, content: &str) -> Result<Vec<String>> {
    let conda = conda_executable()?;
    let name = conda_env_name(content);
    let envs = std::path::absolute(storage_dir.join("envs"))
        .map_err(|e| Error::internal(format!("cannot resolve the storage directory: {e}")))?;
    std::fs::create_dir_all(&envs)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", envs.display())))?;
    let file = envs.join(format!("{name}.yaml"));
    let tmp = envs.join(format!("{name}.yaml.{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, content)
        .and_then(|()| std::fs::rename(&tmp, &file))
        .map_err(|e| Error::internal(format!("cannot write {}: {e}", file.display())))?;
    Ok(vec![
        "sh".into(),
        "-c".into(),
        CONDA.replace("{LOCK}", LOCK),
        "cairn-conda".into(),
        conda.to_string_lossy().into_owned(),
        name.clone(),
        file.to_string_lossy().into_owned(),
        envs.join(format!("{name}.lock"))
            .to_string_lossy()
            .into_owned(),
    ])
}

/// Where the project is mounted in a docker run, and its working directory (MLflow's).
pub const DOCKER_WORKDIR: &str = "/mlflow/projects/code";

/// A docker run: the image and what `docker_env` and `cairn run` add to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerRun<'a> {
    /// The image.
    pub image: &'a str,
    /// The project directory on this machine, mounted at [`DOCKER_WORKDIR`].
    pub project_dir: &'a str,
    /// `docker_env.volumes`, in `docker run -v` form.
    pub volumes: &'a [String],
    /// `docker_env.environment` (`None`: copied from this machine) then the run's variables.
    pub environment: Vec<(&'a str, Option<&'a str>)>,
    /// `-A name[=value]`, as MLflow passes them: `--name value`, `-n value` for one letter,
    /// and a bare flag for `true`.
    pub docker_args: Vec<(&'a str, Option<&'a str>)>,
    /// `--build-image`: the tag of an image to build first from `image` with the project
    /// copied in (MLflow's Dockerfile), which then runs without the project mounted.
    pub build: Option<&'a str>,
}

/// `$1` docker, `$2` tag, `$3` base image, `$4` project directory, then the command: builds
/// MLflow's project image (`FROM` the base, the project copied to the working directory).
const DOCKER_BUILD: &str = r#"set -e
docker="$1"; tag="$2"; base="$3"; dir="$4"; shift 4
echo "=== Building docker image $tag ==="
printf 'FROM %s\nCOPY ./ /mlflow/projects/code/\nWORKDIR /mlflow/projects/code/\n' "$base" | "$docker" build -t "$tag" -f - "$dir"
exec "$@""#;

/// The argv that builds MLflow's project image `tag` with `docker`: `FROM base`, the project
/// directory copied to [`DOCKER_WORKDIR`], which is its working directory. A command appended
/// to it runs after the build (`exec`); without one the argv only builds.
pub fn image_build_argv(docker: &str, tag: &str, base: &str, project_dir: &str) -> Vec<String> {
    [
        "sh",
        "-c",
        DOCKER_BUILD,
        "cairn-docker-build",
        docker,
        tag,
        base,
        project_dir,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `docker version` asking the daemon for its version: fails when no daemon answers.
pub fn docker_daemon_argv(docker: &str) -> Vec<String> {
    [docker, "version", "--format", "{{.Server.Version}}"]
        .map(str::to_owned)
        .to_vec()
}

/// `docker push <tag>`.
pub fn image_push_argv(docker: &str, tag: &str) -> Vec<String> {
    [docker, "push", tag].map(str::to_owned).to_vec()
}

/// `docker image inspect` printing the registry digests of `tag` (set by a push) as JSON.
pub fn image_digests_argv(docker: &str, tag: &str) -> Vec<String> {
    [
        docker,
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        tag,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The repository of an image reference: without its `:tag` (a registry's `host:port/` kept).
fn repository_of(reference: &str) -> &str {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => reference,
    }
}

/// The digest (`sha256:...`) of `tag`'s repository among `docker image inspect`'s
/// `RepoDigests` (`["repo@sha256:...", ...]`).
pub fn repo_digest(tag: &str, inspect_json: &str) -> Option<String> {
    let repository = repository_of(tag);
    let digests: Vec<String> = serde_json::from_str(inspect_json.trim()).ok()?;
    digests.iter().find_map(|d| {
        let (repo, digest) = d.split_once('@')?;
        (repo == repository).then(|| digest.to_owned())
    })
}

/// An image built and pushed to a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// The tag it was built and pushed as, `<repository>[:<commit[:7]>]`.
    pub tag: String,
    /// Its registry digest, `sha256:...`.
    pub digest: String,
}

impl PushedImage {
    /// The reference a cluster pulls: `<tag>@<digest>` (MLflow's `image_tag@image_digest`).
    pub fn reference(&self) -> String {
        format!("{}@{}", self.tag, self.digest)
    }
}

/// MLflow's `--build-image` for a remote backend: builds the project image `tag` `FROM base`
/// with the project directory in it (the same build as the local backend's), pushes it with
/// `docker push`, and reads back its registry digest. The build and push output goes to this
/// terminal. Needs the `docker` executable and a Docker daemon; either missing is an error
/// naming it, before anything is built.
pub fn build_and_push(tag: &str, base: &str, project_dir: &str) -> Result<PushedImage> {
    use std::process::{Command, Stdio};
    let docker = find_executable("docker").ok_or_else(|| {
        Error::invalid(
            "--build-image builds and pushes the project image with Docker, but the `docker` \
             executable is not on the PATH: install Docker here, or push an image that \
             contains the project and name it in docker_env.image",
        )
    })?;
    let docker = docker.to_string_lossy().into_owned();
    let run = |argv: &[String], capture: bool| -> Result<std::process::Output> {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).stdin(Stdio::null());
        if capture {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        } else {
            // The build and push progress, on this terminal's stderr (stdout carries results).
            cmd.stdout(std::io::stderr()).stderr(Stdio::inherit());
        }
        cmd.output()
            .map_err(|e| Error::invalid(format!("cannot run {}: {e}", argv.join(" "))))
    };
    let version = run(&docker_daemon_argv(&docker), true)?;
    if !version.status.success() {
        let why = String::from_utf8_lossy(&version.stderr);
        return Err(Error::invalid(format!(
            "--build-image builds and pushes the project image with Docker, but no Docker daemon \
             answers `docker version`: {}. Start the Docker daemon (dockerd) or point DOCKER_HOST \
             at one, or push an image that contains the project and name it in docker_env.image",
            why.trim()
        )));
    }
    let steps = [
        (image_build_argv(&docker, tag, base, project_dir), "build"),
        (image_push_argv(&docker, tag), "push"),
    ];
    for (argv, what) in steps {
        if !run(&argv, false)?.status.success() {
            return Err(Error::invalid(format!(
                "docker {what} of the project image {tag} failed (its output is above)"
            )));
        }
    }
    let inspect = run(&image_digests_argv(&docker, tag), true)?;
    let stdout = String::from_utf8_lossy(&inspect.stdout);
    let digest = repo_digest(tag, &stdout).filter(|_| inspect.status.success());
    let digest = digest.ok_or_else(|| {
        Error::invalid(format!(
            "docker pushed {tag} but `docker image inspect` shows no registry digest for it: {}",
            String::from_utf8_lossy(&inspect.stderr).trim()
        ))
    })?;
    Ok(PushedImage {
        tag: tag.to_owned(),
        digest,
    })
}

/// The argv prefix of `run`: `docker run --rm --init ... <image>`, the command after it.
pub fn docker_argv(run: &DockerRun<'_>) -> Result<Vec<String>> {
    // As MLflow: a variable to copy from this machine must be set here.
    if let Some((name, _)) = run
        .environment
        .iter()
        .find(|(name, value)| value.is_none() && std::env::var_os(name).is_none())
    {
        return Err(Error::invalid(format!(
            "docker_env environment variable {name} is to be copied from this machine, but it \
             is not set"
        )));
    }
    let docker = find_executable("docker").ok_or_else(|| {
        Error::invalid(
            "docker_env projects need the `docker` executable, which is not on the PATH: install \
             Docker here, or run the project with -b kubernetes, which runs its image as a \
             Kubernetes Job",
        )
    })?;
    let docker = docker.to_string_lossy().into_owned();
    let mut argv = match run.build {
        Some(tag) => image_build_argv(&docker, tag, run.image, run.project_dir),
        None => Vec::new(),
    };
    // `--init`: the command is not PID 1, so the SIGTERM of a cancel (which `docker run`
    // forwards) stops it rather than being ignored, and the container goes with the run.
    argv.extend([docker, "run".into(), "--rm".into(), "--init".into()]);
    for (name, value) in &run.docker_args {
        let flag = if name.chars().count() == 1 {
            format!("-{name}")
        } else {
            format!("--{name}")
        };
        argv.push(flag);
        if let Some(value) = value {
            argv.push((*value).to_owned());
        }
    }
    if run.build.is_none() {
        argv.extend(["-v".into(), format!("{}:{DOCKER_WORKDIR}", run.project_dir)]);
    }
    argv.extend(["-w".into(), DOCKER_WORKDIR.into()]);
    for volume in run.volumes {
        argv.extend(["-v".into(), volume.clone()]);
    }
    for (name, value) in &run.environment {
        argv.push("-e".into());
        argv.push(match value {
            Some(v) => format!("{name}={v}"),
            None => (*name).to_owned(),
        });
    }
    argv.push(run.build.unwrap_or(run.image).to_owned());
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_left_without_a_pid_is_taken_over_once_stale() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("env.lock");
        let take = |lock: &Path| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("set -e\n{LOCK}echo taken; cat \"$lock/pid\""))
                .env("lock", lock)
                .output()
                .unwrap()
        };
        // A pid-less lock two minutes old (its builder died right after mkdir).
        std::fs::create_dir(&lock).unwrap();
        let old = std::process::Command::new("touch")
            .args(["-d", "2 minutes ago"])
            .arg(&lock)
            .status()
            .unwrap();
        assert!(old.success());
        let out = take(&lock);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.starts_with("taken\n"),
            "{text}"
        );
        // Released on exit; a lock whose holder died is taken over too.
        assert!(!lock.exists());
        std::fs::create_dir(&lock).unwrap();
        std::fs::write(lock.join("pid"), "999999999").unwrap();
        assert!(take(&lock).status.success());
    }

    #[test]
    fn conda_environments_are_named_as_mlflow_names_them() {
        // hashlib.sha1(b"name: x\n").hexdigest()
        assert_eq!(
            conda_env_name("name: x\n"),
            "mlflow-ac44edccaf1276baa513cc835c60d99f9d6601b2"
        );
    }

    #[test]
    fn docker_runs_mount_the_project_and_pass_the_variables_and_args() {
        let err = docker_argv(&DockerRun {
            environment: vec![("CAIRN_TEST_SURELY_UNSET", None)],
            ..DockerRun::default()
        })
        .unwrap_err();
        assert!(
            err.message.contains(
                "docker_env environment variable CAIRN_TEST_SURELY_UNSET is to be copied"
            ),
            "{err}"
        );
        let Some(docker) = find_executable("docker") else {
            let err = docker_argv(&DockerRun::default()).unwrap_err();
            assert!(err.message.contains("-b kubernetes"), "{err}");
            return;
        };
        let volumes = ["/data:/data".to_owned()];
        let argv = docker_argv(&DockerRun {
            image: "python:3.11",
            project_dir: "/p",
            volumes: &volumes,
            environment: vec![("PATH", None), ("MLFLOW_RUN_ID", Some("abc"))],
            docker_args: vec![("network", Some("host")), ("t", None)],
            build: None,
        })
        .unwrap();
        assert_eq!(
            argv,
            [
                docker.to_str().unwrap(),
                "run",
                "--rm",
                "--init",
                "--network",
                "host",
                "-t",
                "-v",
                "/p:/mlflow/projects/code",
                "-w",
                "/mlflow/projects/code",
                "-v",
                "/data:/data",
                "-e",
                "PATH",
                "-e",
                "MLFLOW_RUN_ID=abc",
                "python:3.11",
            ]
        );
    }

    #[test]
    fn build_push_and_digest_argv_and_the_digest_read_back() {
        assert_eq!(
            image_build_argv(
                "/usr/bin/docker",
                "reg:5000/u/p:abc1234",
                "python:3.11",
                "/p"
            ),
            [
                "sh",
                "-c",
                DOCKER_BUILD,
                "cairn-docker-build",
                "/usr/bin/docker",
                "reg:5000/u/p:abc1234",
                "python:3.11",
                "/p"
            ]
        );
        assert_eq!(
            docker_daemon_argv("docker"),
            ["docker", "version", "--format", "{{.Server.Version}}"]
        );
        assert_eq!(
            image_push_argv("docker", "u/p:abc1234"),
            ["docker", "push", "u/p:abc1234"]
        );
        assert_eq!(
            image_digests_argv("docker", "u/p:abc1234"),
            [
                "docker",
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}}",
                "u/p:abc1234"
            ]
        );
        let inspected = r#"["other/x@sha256:00", "reg:5000/u/p@sha256:ab12"]"#;
        assert_eq!(
            repo_digest("reg:5000/u/p:abc1234", inspected).as_deref(),
            Some("sha256:ab12")
        );
        assert_eq!(
            repo_digest("reg:5000/u/p", inspected).as_deref(),
            Some("sha256:ab12")
        );
        assert_eq!(repo_digest("u/p:abc1234", inspected), None);
        assert_eq!(repo_digest("u/p", "[]\n"), None);
        let pushed = PushedImage {
            tag: "u/p:abc1234".into(),
            digest: "sha256:ab12".into(),
        };
        assert_eq!(pushed.reference(), "u/p:abc1234@sha256:ab12");
    }

    #[test]
    fn built_images_run_without_the_project_mounted() {
        let Some(docker) = find_executable("docker") else {
            return; // the argv is only built with docker present (the error is tested above)
        };
        let docker = docker.to_str().unwrap();
        let argv = docker_argv(&DockerRun {
            image: "python:3.11",
            project_dir: "/p",
            build: Some("proj:abc1234"),
            ..DockerRun::default()
        })
        .unwrap();
        assert_eq!(argv[..3], ["sh", "-c", DOCKER_BUILD]);
        assert_eq!(
            argv[3..],
            [
                "cairn-docker-build",
                docker,
                "proj:abc1234",
                "python:3.11",
                "/p",
                docker,
                "run",
                "--rm",
                "--init",
                "-w",
                "/mlflow/projects/code",
                "proj:abc1234",
            ]
        );
    }
}
