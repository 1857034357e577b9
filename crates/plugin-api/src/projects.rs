//! The project-backend contract: run an MLflow Project somewhere and watch it.
//!
//! MLflow counterpart: `mlflow.projects.backend.abstract_backend.AbstractBackend` (entry point
//! group `mlflow.project_backend`) and `mlflow.projects.submitted_run.SubmittedRun`, chosen by
//! backend name (`local`, `kubernetes`).
//!
//! The division of work:
//!
//! * The host fetches the project, resolves the entry point and its parameters (api.md §8.2),
//!   creates the tracking run, and submits a [`ProjectRun`]: the command as argv, the
//!   environment as a typed [`ProjectEnvironment`], the project's files as a [`ProjectSource`].
//! * The backend starts the run and answers a [`RunHandle`] (its name and its own id for the
//!   run), which the host stores as the run's tag [`RunHandle::TAG`]. Any `cairn` process can
//!   later [`ProjectBackend::attach`] to the run from that handle: watch it, read its logs,
//!   cancel it.
//! * The host polls [`SubmittedRun::status`] (with backoff; no call blocks across the plugin
//!   ABI until the run ends) and writes the terminal status to the tracking store. A backend
//!   never writes to the tracking store.

use crate::Result;
use crate::entities::RunStatus;
use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A run's output as bytes, in order, from the position asked for. A backend never fails the
/// stream for what the bytes contain; [`lossy_lines`] turns it into text lines.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send + 'static>>;

/// What a backend supports.
///
/// Grows without breaking plugins: a field missing from a plugin's answer (a plugin built before
/// the capability existed) reads as `false`, and a plugin sets the fields it knows and leaves
/// the rest to `..Default::default()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectCapabilities {
    /// [`SubmittedRun::logs`] streams output.
    pub logs: bool,
    /// [`SubmittedRun::cancel`] stops the run.
    pub cancel: bool,
}

/// Where a backend finds the project's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectSource {
    /// A directory on the machine the host runs on: the entry point's working directory.
    Local {
        /// The project directory (the subdirectory, for a Git project fetched by the host).
        path: String,
    },
    /// A Git repository at a commit, for backends that fetch it themselves.
    Git {
        /// The repository URL.
        url: String,
        /// The full commit hash.
        commit: String,
        /// The project's subdirectory inside the repository (`""` for its root).
        subdirectory: String,
    },
}

/// The Python environment of a `python_env` project (its `python_env.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PythonEnv {
    /// The Python version, e.g. `3.11`.
    pub python: String,
    /// Packages installed first (`pip`, `setuptools`, ...).
    pub build_dependencies: Vec<String>,
    /// The project's dependencies, as `pip install` arguments.
    pub dependencies: Vec<String>,
}

/// How a `python_env` environment is built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PythonEnvManager {
    /// `python -m venv` / `virtualenv` and `pip`.
    #[default]
    Virtualenv,
    /// `uv venv` and `uv pip`.
    Uv,
}

/// The environment the command runs in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectEnvironment {
    /// The backend's own environment, as is (`--env-manager local`).
    #[default]
    Local,
    /// A Python virtual environment built from `spec`.
    PythonEnv {
        /// What to install.
        spec: PythonEnv,
        /// What builds it.
        manager: PythonEnvManager,
    },
    /// A conda environment built from the project's conda file.
    Conda {
        /// The conda environment file's content (YAML).
        file: String,
    },
    /// A container image.
    Docker {
        /// The image, e.g. `python:3.11-slim`.
        image: String,
        /// Volumes to mount, in `docker run -v` form.
        volumes: Vec<String>,
        /// Variables set in the container; a `None` value copies the host's value.
        environment: BTreeMap<String, Option<String>>,
    },
}

/// A project run to submit. The host has already fetched the project, resolved the entry point
/// and its parameters (api.md §8.2) and created the tracking run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectRun {
    /// The tracking run that records it; [`ProjectBackend::submit`] is idempotent on it.
    pub run_id: String,
    /// Its experiment.
    pub experiment_id: String,
    /// The project's files.
    pub source: ProjectSource,
    /// The entry point name.
    pub entry_point: String,
    /// The command as argv, parameters already substituted; a backend runs it as is, without
    /// a shell of its own (MLflow's shell commands arrive as `["bash", "-c", command]`).
    pub command: Vec<String>,
    /// The resolved parameters, for backends that pass them on.
    pub parameters: BTreeMap<String, String>,
    /// The environment to run the command in.
    pub environment: ProjectEnvironment,
    /// Environment variables for the process, including `MLFLOW_TRACKING_URI`,
    /// `MLFLOW_RUN_ID` and `MLFLOW_EXPERIMENT_ID`.
    pub env: BTreeMap<String, String>,
    /// Backend-specific configuration (`--backend-config`), as JSON.
    pub backend_config: serde_json::Value,
}

/// Names a submitted run durably: which backend runs it and the backend's own id for it (a
/// process group and state directory, a Job's namespace and name). Stored as the run's tag
/// [`RunHandle::TAG`], so any `cairn` process can [`ProjectBackend::attach`] to the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHandle {
    /// The backend's name (`local`, `kubernetes`, a plugin's name).
    pub backend: String,
    /// The backend's own id of the run; opaque to the host.
    pub id: String,
}

impl RunHandle {
    /// The run tag holding the handle, as JSON.
    pub const TAG: &'static str = "cairn.project.handle";

    /// The handle as the value of [`RunHandle::TAG`].
    pub fn to_tag(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the value of [`RunHandle::TAG`]; `InvalidArgument` if it is not a handle.
    pub fn from_tag(value: &str) -> Result<RunHandle> {
        serde_json::from_str(value).map_err(|e| {
            crate::Error::invalid(format!(
                "the run's tag {} is not a project run handle ({e}): {value}",
                RunHandle::TAG
            ))
        })
    }
}

/// The state of a submitted run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// `SCHEDULED` (accepted, not started), `RUNNING`, or a terminal `FINISHED` (exit code
    /// 0), `FAILED` or `KILLED`.
    pub status: RunStatus,
    /// Why the run is in this state, when the backend knows more than the status (a pod
    /// pending on an image pull, a process killed by a signal).
    pub message: Option<String>,
    /// The process's exit code, once known.
    pub exit_code: Option<i32>,
}

impl RunState {
    /// Whether the run has ended.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.status,
            RunStatus::Finished | RunStatus::Failed | RunStatus::Killed
        )
    }
}

/// Which part of a run's output [`SubmittedRun::logs`] streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogOptions {
    /// The byte position to start at (0: from the start). A position past the output written
    /// so far starts at its end.
    pub offset: u64,
    /// Keep streaming new output until the run ends; otherwise stop at what is written now.
    pub follow: bool,
}

/// Runs projects.
#[async_trait]
pub trait ProjectBackend: Send + Sync + 'static {
    /// What this backend supports.
    fn capabilities(&self) -> ProjectCapabilities;

    /// Starts `run` and returns it without waiting for it to finish. Idempotent on
    /// `run.run_id`: submitting a run id this backend already started returns that run and
    /// starts nothing. Invalid `backend_config` or an environment this backend cannot build
    /// is `InvalidArgument`; an unreachable cluster `Unavailable`.
    async fn submit(&self, run: ProjectRun) -> Result<Box<dyn SubmittedRun>>;

    /// The run `handle` names, started by this backend in this or any other process.
    /// `NotFound` if the backend knows no such run; `InvalidArgument` if the handle is not
    /// this backend's.
    async fn attach(&self, handle: RunHandle) -> Result<Box<dyn SubmittedRun>>;
}

/// A submitted project run.
#[async_trait]
pub trait SubmittedRun: Send + Sync {
    /// The tracking run id.
    fn run_id(&self) -> &str;

    /// The durable name of this run, for [`ProjectBackend::attach`].
    fn handle(&self) -> &RunHandle;

    /// The current state, answered without waiting for the run.
    async fn status(&self) -> Result<RunState>;

    /// Stops the run (the whole process tree); its status becomes `KILLED`. Cancelling an
    /// ended run is a no-op. `Unsupported` without the `cancel` capability.
    async fn cancel(&self) -> Result<()>;

    /// The run's output (stdout and stderr, interleaved as written); `Unsupported` without the
    /// `logs` capability.
    async fn logs(&self, options: LogOptions) -> Result<LogStream>;
}

/// `stream` as text lines without their line ends, a line at a time: bytes that are not UTF-8
/// become U+FFFD (never an error), and a last line without a line end is still a line.
pub fn lossy_lines(stream: LogStream) -> LossyLines {
    LossyLines {
        stream: Some(stream),
        pending: Vec::new(),
    }
}

/// The stream [`lossy_lines`] returns.
pub struct LossyLines {
    stream: Option<LogStream>,
    pending: Vec<u8>,
}

impl LossyLines {
    fn take_line(&mut self) -> Option<String> {
        let end = self.pending.iter().position(|b| *b == b'\n')?;
        let mut line: Vec<u8> = self.pending.drain(..=end).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(String::from_utf8_lossy(&line).into_owned())
    }
}

impl Stream for LossyLines {
    type Item = Result<String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(line) = self.take_line() {
                return Poll::Ready(Some(Ok(line)));
            }
            let Some(stream) = self.stream.as_mut() else {
                return Poll::Ready(None);
            };
            match stream.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => self.pending.extend_from_slice(&chunk),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    self.stream = None;
                    if !self.pending.is_empty() {
                        let rest = std::mem::take(&mut self.pending);
                        return Poll::Ready(Some(Ok(String::from_utf8_lossy(&rest).into_owned())));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]]) -> Vec<String> {
        let chunks: Vec<Result<Bytes>> = chunks
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream: LogStream = Box::pin(Iter(chunks.into_iter()));
        let mut lines = lossy_lines(stream);
        let mut out = Vec::new();
        futures_executor::block_on(std::future::poll_fn(|cx| {
            loop {
                match Pin::new(&mut lines).poll_next(cx) {
                    Poll::Ready(Some(line)) => out.push(line.unwrap()),
                    Poll::Ready(None) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }));
        out
    }

    struct Iter(std::vec::IntoIter<Result<Bytes>>);

    impl Stream for Iter {
        type Item = Result<Bytes>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(self.0.next())
        }
    }

    #[test]
    fn lossy_lines_split_across_chunks_and_replace_bad_bytes() {
        assert_eq!(
            lines_of(&[b"hel", b"lo\r\nwor", b"ld\n\xff\xfeend"]),
            ["hello", "world", "\u{fffd}\u{fffd}end"]
        );
        assert_eq!(lines_of(&[b"a\n\n", b"b\n"]), ["a", "", "b"]);
        assert!(lines_of(&[]).is_empty());
    }

    #[test]
    fn the_handle_round_trips_through_its_tag() {
        let handle = RunHandle {
            backend: "local".into(),
            id: "abc".into(),
        };
        assert_eq!(RunHandle::from_tag(&handle.to_tag()).unwrap(), handle);
        let err = RunHandle::from_tag("nope").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::InvalidArgument);
        assert!(err.message.contains(RunHandle::TAG), "{err}");
    }
}
