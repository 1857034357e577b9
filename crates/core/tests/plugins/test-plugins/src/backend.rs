//! Project backend `shtest`: runs a command as its own process group on this machine, with
//! nothing but `std` and `sh` (no signals API: `kill` of the shell signals the group), so the
//! backend conformance suite can run through the ABI (`cairn plugins check --conformance`).
//!
//! Each run has a state directory `<temp dir>/cairn-shtest/<run id>/` (the handle's id): the
//! output, the process group id, the exit code written by the wrapper shell, and a `cancelled`
//! marker.

use bytes::Bytes;
use cairn_plugin_api::entities::RunStatus;
use cairn_plugin_api::projects::{
    LogOptions, LogStream, ProjectCapabilities, ProjectRun, ProjectSource, RunHandle, RunState,
};
use cairn_plugin_api::{BuildContext, Error, ProjectBackend, Result, SubmittedRun, async_trait};
use futures_core::Stream;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

const NAME: &str = "shtest";
/// `$1` the state directory, then the command; records the exit code atomically.
const WRAPPER: &str = r#"state="$1"; shift; "$@"; code=$?; echo "$code" > "$state/exit.tmp" && mv "$state/exit.tmp" "$state/exit_code"; exit "$code""#;

fn io(what: &str, e: std::io::Error) -> Error {
    Error::internal(format!("{what}: {e}"))
}

struct ShBackend {
    root: PathBuf,
}

#[derive(Clone)]
struct ShRun {
    run_id: String,
    handle: RunHandle,
    state: PathBuf,
}

impl ShRun {
    fn open(state: &Path) -> Result<ShRun> {
        let run_id = std::fs::read_to_string(state.join("run_id"))
            .map_err(|_| Error::not_found(format!("no shtest run in {}", state.display())))?;
        Ok(ShRun {
            run_id,
            handle: RunHandle {
                backend: NAME.into(),
                id: state.to_string_lossy().into_owned(),
            },
            state: state.to_path_buf(),
        })
    }

    fn read(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.state.join(file))
            .ok()
            .map(|t| t.trim().to_owned())
    }

    /// `kill -SIG -<pgid>` through `sh`; whether it succeeded (`-0`: the group exists).
    fn kill(&self, signal: &str) -> bool {
        let Some(pgid) = self.read("pgid") else {
            return false;
        };
        Command::new("sh")
            .args(["-c", "kill \"$1\" \"-$2\"", "sh", signal, &pgid])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn state(&self) -> RunState {
        let cancelled = self.state.join("cancelled").exists();
        // Liveness before the exit code: a group seen gone has written its code, if it did.
        let alive = self.kill("-0");
        let code = self.read("exit_code").and_then(|c| c.parse::<i32>().ok());
        let (status, message) = match code {
            _ if cancelled && (code.is_some() || !alive) => {
                (RunStatus::Killed, Some("cancelled".into()))
            }
            Some(0) => (RunStatus::Finished, None),
            Some(c) => (RunStatus::Failed, Some(format!("exited with code {c}"))),
            None if alive => (RunStatus::Running, None),
            None => (RunStatus::Failed, Some("ended without an exit code".into())),
        };
        RunState {
            status,
            message,
            exit_code: code,
        }
    }
}

#[async_trait]
impl ProjectBackend for ShBackend {
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
        let ProjectSource::Local { path } = &run.source else {
            return Err(Error::invalid("shtest runs local projects only"));
        };
        std::fs::create_dir_all(&self.root).map_err(|e| io("create the root", e))?;
        let state = self.root.join(&run.run_id);
        match std::fs::create_dir(&state) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok(Box::new(ShRun::open(&state)?));
            }
            Err(e) => return Err(io("create the state directory", e)),
            Ok(()) => {}
        }
        let output = File::create(state.join("output")).map_err(|e| io("create the output", e))?;
        let stderr = output.try_clone().map_err(|e| io("clone the output", e))?;
        let mut child = Command::new("sh")
            .args(["-c", WRAPPER, "cairn-run"])
            .arg(&state)
            .args(&run.command)
            .current_dir(path)
            .envs(&run.env)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|e| io("start the run", e))?;
        std::fs::write(state.join("pgid"), child.id().to_string())
            .map_err(|e| io("write the pgid", e))?;
        // Written last: a run that `open` finds has its process group recorded.
        std::fs::write(state.join("run_id"), &run.run_id).map_err(|e| io("write the id", e))?;
        std::thread::spawn(move || child.wait());
        Ok(Box::new(ShRun::open(&state)?))
    }

    async fn attach(&self, handle: RunHandle) -> Result<Box<dyn SubmittedRun>> {
        if handle.backend != NAME {
            return Err(Error::invalid(format!(
                "not a {NAME} handle: {}",
                handle.backend
            )));
        }
        Ok(Box::new(ShRun::open(Path::new(&handle.id))?))
    }
}

#[async_trait]
impl SubmittedRun for ShRun {
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
        if self.state().is_terminal() {
            return Ok(());
        }
        std::fs::write(self.state.join("cancelled"), "").map_err(|e| io("mark cancelled", e))?;
        self.kill("-TERM");
        let run = self.clone();
        std::thread::spawn(move || {
            for _ in 0..100 {
                if !run.kill("-0") {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            run.kill("-KILL");
        });
        Ok(())
    }

    async fn logs(&self, options: LogOptions) -> Result<LogStream> {
        let mut file =
            File::open(self.state.join("output")).map_err(|e| io("open the output", e))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        file.seek(SeekFrom::Start(options.offset.min(len)))
            .map_err(|e| io("seek the output", e))?;
        Ok(Box::pin(Tail {
            file,
            run: self.clone(),
            follow: options.follow,
            ended: false,
        }))
    }
}

/// The output file from a position; following, it polls the file every 50 ms until the run
/// has ended and everything it wrote was read.
struct Tail {
    file: File,
    run: ShRun,
    follow: bool,
    ended: bool,
}

impl Stream for Tail {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut buf = vec![0u8; 64 * 1024];
        match self.file.read(&mut buf) {
            Ok(0) if !self.follow || self.ended => Poll::Ready(None),
            Ok(0) => {
                // Read once more after the run ends: what it wrote last.
                self.ended = self.run.state().is_terminal();
                let waker = cx.waker().clone();
                let pause = if self.ended { 0 } else { 50 };
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(pause));
                    waker.wake();
                });
                Poll::Pending
            }
            Ok(n) => Poll::Ready(Some(Ok(Bytes::copy_from_slice(&buf[..n])))),
            Err(e) => Poll::Ready(Some(Err(io("read the output", e)))),
        }
    }
}

pub(crate) fn build(_: &BuildContext) -> Result<Arc<dyn ProjectBackend>> {
    Ok(Arc::new(ShBackend {
        root: std::env::temp_dir().join("cairn-shtest"),
    }))
}
