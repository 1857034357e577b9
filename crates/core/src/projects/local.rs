//! The `local` project backend: runs the command as a process group on this machine.
//!
//! Every run gets a state directory `<storage dir>/<run id>/`, and its [`RunHandle`] id is that
//! directory's absolute path, so any `cairn` process on the machine can attach to it:
//!
//! * `output.log` — the command's stdout and stderr, as written;
//! * `pgid` — the process group id, written right after the start;
//! * `exit_code` — written (atomically) by the wrapper shell when the command returns;
//! * `cancelled` — written by [`SubmittedRun::cancel`] before it signals the group.
//!
//! The process is `sh -c '"$@"; <record the exit code>' cairn-run <argv...>` started as the
//! leader of a new process group, so cancelling signals the whole tree (SIGTERM, then SIGKILL
//! after [`KILL_GRACE`]) and a terminal's Ctrl-C reaches only `cairn`, which decides. The
//! status reads the files and asks the kernel whether the group still exists: an exit code
//! means FINISHED (0) or FAILED; a group gone without one means KILLED when cancelled, else
//! FAILED (killed from outside). Liveness is checked before the exit code file is read (an exit
//! in between is never taken for a kill), and an exit code decides over liveness: a process
//! group id can be reused after the group ends, so only a group that died without an exit code
//! and whose id was taken again in between would read as running.

use cairn_plugin_api::entities::RunStatus;
use cairn_plugin_api::projects::{
    LogOptions, LogStream, ProjectCapabilities, ProjectEnvironment, ProjectRun, ProjectSource,
    RunHandle, RunState,
};
use cairn_plugin_api::{
    Build, BuildContext, Error, PluginFactory, ProjectBackend, Result, SubmittedRun, async_trait,
};
use rustix::process::{Pid, Signal};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The backend's name.
pub const NAME: &str = "local";

/// How long a cancelled group gets after SIGTERM before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Core's built-in `local` backend.
pub const BUILTIN: PluginFactory = PluginFactory {
    name: NAME,
    plugin: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    build: Build::ProjectBackend(build),
};

/// `[settings.local]`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    /// Where runs' state directories and Python environments go.
    storage_dir: Option<PathBuf>,
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn ProjectBackend>> {
    let settings: Settings = ctx.settings()?;
    Ok(Arc::new(LocalBackend::new(
        settings.storage_dir.unwrap_or_else(default_storage_dir),
    )))
}

/// `$MLFLOW_TMP_DIR`, else `<temp dir>/cairn-projects` (MLflow's `--storage-dir` default).
pub fn default_storage_dir() -> PathBuf {
    std::env::var_os("MLFLOW_TMP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("cairn-projects"))
}

/// The `local` backend.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    storage_dir: PathBuf,
}

impl LocalBackend {
    /// A backend keeping its runs' state under `storage_dir`.
    pub fn new(storage_dir: impl Into<PathBuf>) -> Self {
        LocalBackend {
            storage_dir: storage_dir.into(),
        }
    }

    fn start(&self, run: &ProjectRun, state: &Path) -> Result<()> {
        let ProjectSource::Local { path } = &run.source else {
            return Err(Error::invalid(
                "the local backend runs a project from a local directory; cairn run fetches \
                 Git projects before submitting",
            ));
        };
        let mut argv = match &run.environment {
            ProjectEnvironment::Local => Vec::new(),
            ProjectEnvironment::PythonEnv { spec, manager } => {
                super::environment::python_env(&self.storage_dir, spec, *manager)?
            }
            ProjectEnvironment::Conda { file } => {
                super::environment::conda_env(&self.storage_dir, file)?
            }
            ProjectEnvironment::Docker {
                image,
                volumes,
                environment,
            } => {
                let mut vars: Vec<(&str, Option<&str>)> = environment
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_deref()))
                    .collect();
                vars.extend(run.env.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))));
                super::environment::docker_argv(&super::environment::DockerRun {
                    image,
                    project_dir: path,
                    volumes,
                    environment: vars,
                    docker_args: docker_args(&run.backend_config)?,
                    build: build_image(&run.backend_config)?,
                })?
            }
        };
        argv.extend(run.command.iter().cloned());
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state.join(OUTPUT))
            .map_err(|e| io_error("cannot open the run's output file", e))?;
        let stderr = output
            .try_clone()
            .map_err(|e| io_error("cannot open the run's output file", e))?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("cairn-run")
            .arg(state)
            .args(&argv)
            .current_dir(path)
            .envs(&run.env)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|e| io_error("cannot start the run's process", e))?;
        write_atomic(&state.join(PGID), &child.id().to_string())?;
        // Reap the leader when it ends, so the group disappears (no zombie) while this
        // process lives; after it exits, init reaps.
        std::thread::Builder::new()
            .name("cairn-run-reaper".into())
            .spawn(move || child.wait())
            .map_err(|e| io_error("cannot start a thread", e))?;
        Ok(())
    }
}

/// The backend configuration's `docker_args` (what `cairn run -A name[=value]` gives): an
/// object of names to a string value or `true` (a bare flag).
fn docker_args(config: &serde_json::Value) -> Result<Vec<(&str, Option<&str>)>> {
    let Some(args) = config.get("docker_args") else {
        return Ok(Vec::new());
    };
    let bad = || {
        Error::invalid(
            "the local backend's docker_args must map names to a string or true (a bare flag)",
        )
    };
    args.as_object()
        .ok_or_else(bad)?
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k.as_str(), Some(s.as_str()))),
            serde_json::Value::Bool(true) => Ok((k.as_str(), None)),
            _ => Err(bad()),
        })
        .collect()
}

/// The backend configuration's `build_image` (what `cairn run --build-image` gives): the tag
/// of the image to build with the project copied in.
fn build_image(config: &serde_json::Value) -> Result<Option<&str>> {
    match config.get("build_image") {
        None => Ok(None),
        Some(serde_json::Value::String(tag)) => Ok(Some(tag)),
        Some(_) => Err(Error::invalid(
            "the local backend's build_image must be the image tag to build",
        )),
    }
}

const OUTPUT: &str = "output.log";
const PGID: &str = "pgid";
const EXIT_CODE: &str = "exit_code";
const CANCELLED: &str = "cancelled";
const RUN_ID: &str = "run_id";

/// `$0` is `cairn-run`, `$1` the state directory, the rest the command.
const WRAPPER: &str = r#"state="$1"; shift; "$@"; code=$?; echo "$code" > "$state/exit_code.tmp" && mv "$state/exit_code.tmp" "$state/exit_code"; exit "$code""#;

fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::internal(format!("{what}: {e}"))
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| io_error(&format!("cannot write {}", path.display()), e))
}

#[async_trait]
impl ProjectBackend for LocalBackend {
    fn capabilities(&self) -> ProjectCapabilities {
        ProjectCapabilities {
            logs: true,
            cancel: true,
        }
    }

    async fn submit(&self, run: ProjectRun) -> Result<Box<dyn SubmittedRun>> {
        if run.run_id.is_empty() || !run.run_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::invalid(format!("bad run id {:?}", run.run_id)));
        }
        std::fs::create_dir_all(&self.storage_dir)
            .map_err(|e| io_error("cannot create the storage directory", e))?;
        let root = std::path::absolute(&self.storage_dir)
            .map_err(|e| io_error("cannot resolve the storage directory", e))?;
        let state = root.join(&run.run_id);
        match std::fs::create_dir(&state) {
            // Idempotent: this run id was submitted already.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok(Box::new(LocalRun::open(&state)?));
            }
            Err(e) => return Err(io_error("cannot create the run's state directory", e)),
            Ok(()) => {}
        }
        write_atomic(&state.join(RUN_ID), &run.run_id)?;
        if let Err(e) = self.start(&run, &state) {
            // Record the failure so the run reads as ended (and attachable) rather than stuck.
            let _ = std::fs::write(state.join(OUTPUT), format!("{e}\n"));
            let _ = write_atomic(&state.join(EXIT_CODE), "-1");
            return Err(e);
        }
        Ok(Box::new(LocalRun::open(&state)?))
    }

    async fn attach(&self, handle: RunHandle) -> Result<Box<dyn SubmittedRun>> {
        if handle.backend != NAME {
            return Err(Error::invalid(format!(
                "the run handle is for backend {:?}, not {NAME}",
                handle.backend
            )));
        }
        Ok(Box::new(LocalRun::open(Path::new(&handle.id))?))
    }
}

/// A run of the local backend, by its state directory.
#[derive(Debug, Clone)]
pub struct LocalRun {
    run_id: String,
    handle: RunHandle,
    state: PathBuf,
}

impl LocalRun {
    fn open(state: &Path) -> Result<LocalRun> {
        let run_id = std::fs::read_to_string(state.join(RUN_ID)).map_err(|_| {
            Error::not_found(format!(
                "no local project run has its state in {}",
                state.display()
            ))
        })?;
        Ok(LocalRun {
            run_id,
            handle: RunHandle {
                backend: NAME.into(),
                id: state.to_string_lossy().into_owned(),
            },
            state: state.to_path_buf(),
        })
    }

    fn pgid(&self) -> Option<Pid> {
        let text = std::fs::read_to_string(self.state.join(PGID)).ok()?;
        Pid::from_raw(text.trim().parse().ok()?)
    }

    fn group_alive(&self) -> bool {
        self.pgid()
            .is_some_and(|pid| rustix::process::test_kill_process_group(pid).is_ok())
    }

    /// The state, from the files and the process table.
    pub fn state(&self) -> RunState {
        let cancelled = self.state.join(CANCELLED).exists();
        // Liveness before the exit code: a group seen gone has written its code if it ever
        // will, so an exit between the two reads is never taken for a kill from outside.
        let alive = self.group_alive();
        let exit_code = std::fs::read_to_string(self.state.join(EXIT_CODE))
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        let (status, message) = match exit_code {
            _ if cancelled && (exit_code.is_some() || !alive) => {
                (RunStatus::Killed, Some("cancelled".to_owned()))
            }
            Some(0) => (RunStatus::Finished, None),
            Some(-1) => (
                RunStatus::Failed,
                Some("the run could not start".to_owned()),
            ),
            Some(code) => (RunStatus::Failed, Some(format!("exited with code {code}"))),
            None if self.pgid().is_none() => (RunStatus::Scheduled, None),
            None if alive => (RunStatus::Running, None),
            None => (
                RunStatus::Failed,
                Some("the process ended without recording an exit code (killed?)".to_owned()),
            ),
        };
        RunState {
            status,
            message,
            exit_code: exit_code.filter(|c| *c >= 0),
        }
    }

    fn stop(&self) -> Result<()> {
        if self.state().is_terminal() {
            return Ok(());
        }
        write_atomic(&self.state.join(CANCELLED), "")?;
        let Some(pid) = self.pgid() else {
            return Ok(());
        };
        let _ = rustix::process::kill_process_group(pid, Signal::TERM);
        let run = self.clone();
        // SIGKILL what ignores SIGTERM, without holding the caller.
        std::thread::spawn(move || {
            let mut waited = Duration::ZERO;
            while waited < KILL_GRACE && run.group_alive() {
                std::thread::sleep(Duration::from_millis(50));
                waited += Duration::from_millis(50);
            }
            if run.group_alive() {
                let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            }
        });
        Ok(())
    }
}

#[async_trait]
impl SubmittedRun for LocalRun {
    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn handle(&self) -> &RunHandle {
        &self.handle
    }

    async fn status(&self) -> Result<RunState> {
        Ok(self.state())
    }

    async fn cancel(&self) -> Result<()> {
        self.stop()
    }

    async fn logs(&self, options: LogOptions) -> Result<LogStream> {
        let mut file = std::fs::File::open(self.state.join(OUTPUT))
            .map_err(|e| io_error("cannot open the run's output", e))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        file.seek(SeekFrom::Start(options.offset.min(len)))
            .map_err(|e| io_error("cannot read the run's output", e))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes>>(4);
        let run = self.clone();
        std::thread::Builder::new()
            .name("cairn-run-logs".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let mut ended = false;
                loop {
                    match file.read(&mut buf) {
                        Ok(0) if !options.follow || ended => return,
                        Ok(0) => {
                            // Read once more after the run ends: what it wrote last.
                            ended = run.state().is_terminal();
                            if !ended {
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                        Ok(n) => {
                            let chunk = bytes::Bytes::copy_from_slice(&buf[..n]);
                            if tx.blocking_send(Ok(chunk)).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = tx.blocking_send(Err(io_error("cannot read the output", e)));
                            return;
                        }
                    }
                }
            })
            .map_err(|e| io_error("cannot start a thread", e))?;
        Ok(Box::pin(futures_util::stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|item| (item, rx))
        })))
    }
}
