//! A supervised pool of Python worker processes, each holding the model loaded once.
//!
//! A predict call takes an idle worker (waiting while all are busy), sends it one frame and
//! reads one back. A worker whose process dies mid-call (SIGKILL, out of memory), that
//! exceeds the timeout, or whose caller went away mid-call (the scoring server's 504) is
//! killed and replaced in the background; the call answers an error, never hangs. A worker's
//! structured error (the model raised) leaves the worker in the pool.
//!
//! A memory limit (`worker_memory_limit`) is enforced twice: the worker sets it as its own
//! `RLIMIT_DATA` before importing anything (so an allocation past it fails at once, as a
//! `MemoryError` that the worker reports, instead of growing until the machine's OOM killer
//! picks a victim), and Cairn samples the resident size (`VmRSS`) of a busy worker every
//! [`MEMORY_POLL`] (which also catches memory the data limit does not count, such as mapped
//! files). Either way the worker is killed and replaced and its call answers an error naming
//! the limit. The limit covers the worker process, not processes a model starts itself.

use crate::protocol::{self, PROTOCOL};
use cairn_plugin_api::flavor::{MLFLOW_ERROR_BODY, MLFLOW_ERROR_CODE, ModelData, Params};
use cairn_plugin_api::{Error, ErrorKind, Result};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, mpsc};

/// The worker script, shipped inside the binary.
pub const WORKER_SCRIPT: &str = include_str!("worker.py");

/// How often the resident size of a busy worker is checked against its memory limit.
pub const MEMORY_POLL: Duration = Duration::from_millis(50);

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct Spawn {
    /// The argv that runs Python (an environment's prefix, then the interpreter).
    pub python: Vec<String>,
    /// The model directory.
    pub model_dir: PathBuf,
    /// The most memory a worker may use, in bytes.
    pub memory_limit: Option<u64>,
}

/// The resident size of process `pid` in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The worker's argv for messages: an environment builder's script (a multi-line argument)
/// shown as `<script>`.
fn shown(python: &[String]) -> String {
    python
        .iter()
        .map(|a| {
            if a.contains('\n') {
                "<script>"
            } else {
                a.as_str()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words for a worker stopped for its memory.
fn over_limit(pid: u32, limit: u64, resident: Option<u64>) -> Error {
    let seen = resident.map_or(String::new(), |r| {
        format!(" (resident: {})", crate::human_size(r))
    });
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "the Python worker (pid {pid}) exceeded its memory limit of {} \
             (--worker-memory-limit){seen}; it was stopped and is being restarted",
            crate::human_size(limit)
        ),
    )
}

/// Why a worker did not start.
#[derive(Debug)]
pub enum StartError {
    /// The worker said why (a missing module, a failed load): retrying will not help.
    Reported(Error),
    /// The process died or misbehaved without saying why (killed, crashed).
    Died(String),
}

impl StartError {
    fn into_error(self) -> Error {
        match self {
            StartError::Reported(e) => e,
            StartError::Died(m) => Error::new(ErrorKind::Unavailable, m),
        }
    }
}

/// One live worker.
pub struct Worker {
    child: Child,
    stream: UnixStream,
    pid: u32,
}

fn status_text(child: &mut Child) -> String {
    match child.try_wait() {
        Ok(Some(s)) => s.to_string(),
        _ => "still running".into(),
    }
}

/// The error a worker reported in an `error` frame, with MLflow's code in its context.
fn reported(header: &serde_json::Value) -> Error {
    let code = header
        .get("error_code")
        .and_then(|c| c.as_str())
        .unwrap_or("INTERNAL_ERROR")
        .to_owned();
    let message = header
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("the Python worker failed without a message")
        .to_owned();
    let kind = match code.as_str() {
        "INTERNAL_ERROR" => ErrorKind::Internal,
        _ => ErrorKind::InvalidArgument,
    };
    let e = Error::new(kind, message).with_context(MLFLOW_ERROR_CODE, code);
    // MLflow's error body as its scoring server writes it (`serialize_as_json`: its spacing,
    // its key order, the stack trace), passed on as it is.
    match header.get("body").and_then(|b| b.as_str()) {
        Some(body)
            if serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| v.is_object()) =>
        {
            e.with_context(MLFLOW_ERROR_BODY, body)
        }
        _ => e,
    }
}

impl Worker {
    /// Starts a worker and waits until it has loaded the model.
    pub async fn start(spawn: &Spawn) -> std::result::Result<Worker, StartError> {
        let dir =
            std::env::temp_dir().join(format!("cairn-pyfunc-{}", uuid::Uuid::new_v4().simple()));
        let died = |m: String| StartError::Died(m);
        std::fs::create_dir_all(&dir).map_err(|e| died(format!("{}: {e}", dir.display())))?;
        let socket = dir.join("w.sock");
        let listener = UnixListener::bind(&socket);
        let result = async {
            let listener = listener.map_err(|e| died(format!("{}: {e}", socket.display())))?;
            let (program, args) = spawn
                .python
                .split_first()
                .ok_or_else(|| died("no Python command".into()))?;
            let mut command = Command::new(program);
            command
                .args(args)
                .arg("-c")
                .arg(WORKER_SCRIPT)
                .arg(&spawn.model_dir)
                .env("CAIRN_PYFUNC_SOCKET", &socket);
            match spawn.memory_limit {
                Some(limit) => command.env("CAIRN_PYFUNC_MEMORY_LIMIT", limit.to_string()),
                None => command.env_remove("CAIRN_PYFUNC_MEMORY_LIMIT"),
            };
            let mut child = command
                .stdin(Stdio::null())
                // The model's (and an environment build's) output goes to Cairn's stderr,
                // never to its stdout.
                .stdout(Stdio::from(std::io::stderr()))
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| {
                    StartError::Reported(Error::invalid(format!(
                        "cannot start the Python worker `{}`: {e}",
                        shown(&spawn.python)
                    )))
                })?;
            let pid = child.id().unwrap_or_default();
            let mut stream = tokio::select! {
                accepted = listener.accept() => accepted.map_err(|e| died(e.to_string()))?.0,
                status = child.wait() => {
                    let message = format!(
                        "the Python worker `{}` exited before connecting ({}); its output is \
                         above",
                        shown(&spawn.python),
                        status.as_ref().map_or_else(|e| e.to_string(), |s| s.to_string()),
                    );
                    // An exit code is the worker's (or its environment build's) own verdict,
                    // which a retry would repeat; a signal (killed) is worth another try.
                    return Err(match status {
                        Ok(s) if s.code().is_some() => StartError::Reported(Error::invalid(message)),
                        _ => died(message),
                    });
                }
            };
            match protocol::read_frame(&mut stream).await {
                Ok((h, _)) if h["op"] == "ready" => {
                    let version = h["protocol"].as_u64().unwrap_or_default();
                    if version != u64::from(PROTOCOL) {
                        return Err(StartError::Reported(Error::internal(format!(
                            "the Python worker speaks protocol {version}, Cairn {PROTOCOL}"
                        ))));
                    }
                    tracing::info!(
                        pid,
                        python = %h["python"].as_str().unwrap_or_default(),
                        mlflow = %h["mlflow"].as_str().unwrap_or_default(),
                        "python_function worker ready"
                    );
                    Ok(Worker { child, stream, pid })
                }
                Ok((h, _)) if h["memory"] == true => {
                    let limit = spawn.memory_limit.unwrap_or_default();
                    Err(StartError::Reported(Error::invalid(format!(
                        "the model does not load within the worker memory limit of {} \
                         (--worker-memory-limit): {}",
                        crate::human_size(limit),
                        h["message"].as_str().unwrap_or("MemoryError")
                    ))))
                }
                Ok((h, _)) => Err(StartError::Reported(reported(&h))),
                Err(e) => {
                    let _ = child.wait().await;
                    Err(died(format!(
                        "the Python worker (pid {pid}) died while loading the model ({}; {e})",
                        status_text(&mut child)
                    )))
                }
            }
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// One predict call: `Ok(Answer::Done(Err))` is the model's own error (the worker is
    /// fine); `Err` means the worker is broken.
    async fn call(&mut self, header: &serde_json::Value, body: &[u8]) -> std::io::Result<Answer> {
        protocol::write_frame(&mut self.stream, header, body).await?;
        let (h, body) = protocol::read_frame(&mut self.stream).await?;
        Ok(match h["op"].as_str() {
            Some("result") => Answer::Done(protocol::decode(&h, &body)),
            _ if h["memory"] == true => Answer::OutOfMemory,
            _ => Answer::Done(Err(reported(&h))),
        })
    }
}

/// A worker's answer to a predict call.
enum Answer {
    /// The prediction, or the model's own error.
    Done(Result<ModelData>),
    /// An allocation failed at the worker's memory limit (`MemoryError`).
    OutOfMemory,
}

struct Inner {
    spawn: Spawn,
    idle_tx: mpsc::UnboundedSender<Worker>,
    idle_rx: Mutex<mpsc::UnboundedReceiver<Worker>>,
    timeout: Duration,
    memory_limit: Option<u64>,
    next_id: AtomicU64,
    runtime: tokio::runtime::Handle,
}

impl Inner {
    /// Starts a replacement worker in the background, retrying with a growing delay.
    fn replace(self: &Arc<Self>) {
        let inner = Arc::clone(self);
        self.runtime.spawn(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                match Worker::start(&inner.spawn).await {
                    Ok(w) => {
                        tracing::info!(pid = w.pid, "python_function worker replaced");
                        let _ = inner.idle_tx.send(w);
                        return;
                    }
                    Err(e) => {
                        let e = e.into_error();
                        tracing::error!("cannot restart a python_function worker: {e}");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
    }
}

/// A worker taken from the pool: back to the pool when returned, killed and replaced when
/// dropped (a failed or abandoned call).
struct Checkout {
    worker: Option<Worker>,
    inner: Arc<Inner>,
}

impl Checkout {
    fn give_back(mut self) {
        if let Some(w) = self.worker.take() {
            let _ = self.inner.idle_tx.send(w);
        }
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(mut w) = self.worker.take() {
            tracing::warn!(pid = w.pid, "killing a python_function worker");
            let _ = w.child.start_kill();
            self.inner.replace();
        }
    }
}

/// The pool.
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// Starts `workers` workers at once and waits for all of them. A worker that dies without
    /// saying why is retried twice; one that reports an error fails the start with it.
    pub async fn start(spawn: Spawn, workers: usize, timeout: Duration) -> Result<Pool> {
        let (idle_tx, idle_rx) = mpsc::unbounded_channel();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let spawn = spawn.clone();
            set.spawn(async move {
                let mut attempt = 0;
                loop {
                    match Worker::start(&spawn).await {
                        Ok(w) => return Ok(w),
                        Err(StartError::Died(m)) if attempt < 2 => {
                            tracing::warn!("{m}; starting it again");
                            attempt += 1;
                        }
                        Err(e) => return Err(e.into_error()),
                    }
                }
            });
        }
        while let Some(done) = set.join_next().await {
            let worker = done.map_err(|e| Error::internal(e.to_string()))??;
            let _ = idle_tx.send(worker);
        }
        Ok(Pool {
            inner: Arc::new(Inner {
                memory_limit: spawn.memory_limit,
                spawn,
                idle_tx,
                idle_rx: Mutex::new(idle_rx),
                timeout,
                next_id: AtomicU64::new(1),
                runtime: tokio::runtime::Handle::current(),
            }),
        })
    }

    /// Runs the model on one worker.
    pub async fn predict(&self, input: &ModelData, params: &Params) -> Result<ModelData> {
        let (mut header, body) = protocol::encode(input)?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        header["op"] = "predict".into();
        header["id"] = id.into();
        header["params"] =
            serde_json::to_value(params).map_err(|e| Error::internal(e.to_string()))?;
        let worker = {
            let mut rx = self.inner.idle_rx.lock().await;
            rx.recv()
                .await
                .ok_or_else(|| Error::new(ErrorKind::Unavailable, "the worker pool is closed"))?
        };
        let mut checkout = Checkout {
            worker: Some(worker),
            inner: Arc::clone(&self.inner),
        };
        let w = checkout.worker.as_mut().expect("just taken");
        let pid = w.pid;
        let limit = self.inner.memory_limit;
        // Resolves (with the resident size seen) when a busy worker goes over its limit.
        let over = async {
            let Some(limit) = limit else {
                return std::future::pending().await;
            };
            let mut tick = tokio::time::interval(MEMORY_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Some(rss) = resident_bytes(pid).filter(|r| *r > limit) {
                    return rss;
                }
            }
        };
        let called = tokio::select! {
            called = tokio::time::timeout(self.inner.timeout, w.call(&header, &body)) => called,
            rss = over => {
                drop(checkout);
                return Err(over_limit(pid, limit.unwrap_or_default(), Some(rss)));
            }
        };
        let w = checkout.worker.as_mut().expect("still held");
        match called {
            Ok(Ok(Answer::Done(answer))) => {
                checkout.give_back();
                answer
            }
            Ok(Ok(Answer::OutOfMemory)) => {
                drop(checkout);
                Err(over_limit(pid, limit.unwrap_or_default(), None))
            }
            Ok(Err(e)) => {
                // The socket broke: the process died (or is dying) mid-call.
                let status =
                    match tokio::time::timeout(Duration::from_secs(5), w.child.wait()).await {
                        Ok(Ok(s)) => s.to_string(),
                        _ => e.to_string(),
                    };
                drop(checkout);
                Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "the Python worker (pid {pid}) exited while predicting ({status}); it is \
                         being restarted"
                    ),
                ))
            }
            Err(_) => {
                drop(checkout);
                Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "the Python worker (pid {pid}) took longer than {}s; it was stopped and \
                         is being restarted",
                        self.inner.timeout.as_secs()
                    ),
                ))
            }
        }
    }
}
