//! What the tests that run the real `cairn` binary share: a command without the caller's
//! configuration, the address a server prints first, waiting with a guard against hangs, and a
//! handle that never leaves a process running after its test, passed or failed.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `cairn args...` in `dir` with `env` added and the caller's `CAIRN_*`, `MLFLOW_*` and
/// `RUST_LOG` variables removed.
pub fn cairn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.current_dir(dir).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("CAIRN_") || key.starts_with("MLFLOW_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// The first line `child` writes to its (piped) stdout, without its line end; the rest of its
/// output is not read.
pub fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout is piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim_end().to_owned()
}

/// The address after `prefix` in `child`'s first line (`Cairn is listening on http://` for
/// `cairn server`), or a panic quoting the line.
pub fn address(child: &mut Child, prefix: &str) -> String {
    let line = first_line(child);
    line.strip_prefix(prefix)
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned()
}

/// Starts `cairn args...` (a server on port 0) in `dir`, its stderr to `stderr`; returns it and
/// the URI it listens on (`http://127.0.0.1:<port>`).
pub fn server(dir: &Path, args: &[&str], stderr: Stdio) -> (Running, String) {
    let child = cairn(dir, args, &[])
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start cairn");
    let mut child = Running(child);
    let uri = address(&mut child, "Cairn is listening on ");
    (child, uri)
}

/// `cairn server` on port 0 on the SQLite store `db.sqlite` in `dir`, its stderr dropped;
/// returns it and its URI.
pub fn sqlite_server(dir: &Path) -> (Running, String) {
    let args = [
        "server",
        "-p",
        "0",
        "--backend-store-uri",
        "sqlite:///db.sqlite",
    ];
    server(dir, &args, Stdio::null())
}

/// Waits for `child` to exit; a guard against hanging the test run, not a timing check.
pub fn wait(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the cairn process did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (`-TERM`, `-INT`, ...) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} {pid}");
}

/// SIGTERM, then waits for the exit.
pub fn terminate(child: &mut Child) -> ExitStatus {
    signal(child.id(), "-TERM");
    wait(child)
}

/// A started `cairn` process: stopped when dropped if it still runs (SIGTERM, SIGKILL after a
/// minute) and reaped, without panicking, so a failed assertion leaves nothing behind.
pub struct Running(pub Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
