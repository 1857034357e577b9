//! The [`ProjectBackend`] conformance cases: the contract of `projects.rs`, one `pub async fn`
//! per behaviour.
//!
//! Each case submits runs with fresh run ids through the fixture's
//! [`BackendFixture::run`](super::BackendFixture::run), which supplies what only the backend's test knows (the project's
//! files, an environment with a POSIX `sh`); the case sets the command and variables. Cases
//! wait by polling [`SubmittedRun::status`] with backoff, as the host does.
//!
//! Run them all with [`project_backend_conformance!`](crate::project_backend_conformance);
//! [`BACKEND_CASES`] lists their names.

use super::support::{expect_err, ok, random_run_id};
use crate::ErrorKind;
use crate::entities::RunStatus;
use crate::projects::*;
use futures_core::Stream as _;
use std::future::poll_fn;
use std::time::Duration;

/// The name of every backend case, in suite order; the same list the macro stamps tests from.
pub const BACKEND_CASES: &[&str] = crate::__cairn_backend_cases!(names);

type Fixture<'a> = &'a dyn super::BackendFixture;

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

async fn submit(fx: Fixture<'_>, command: Vec<String>) -> Box<dyn SubmittedRun> {
    submit_with(fx, command, &[]).await
}

async fn submit_with(
    fx: Fixture<'_>,
    command: Vec<String>,
    env: &[(&str, &str)],
) -> Box<dyn SubmittedRun> {
    let mut run = fx.run(command);
    run.run_id = random_run_id();
    run.env.insert("MLFLOW_RUN_ID".into(), run.run_id.clone());
    for (k, v) in env {
        run.env.insert((*k).into(), (*v).into());
    }
    let submitted = ok(fx.backend().submit(run.clone()).await, "submit");
    assert_eq!(submitted.run_id(), run.run_id, "submit: the run id");
    submitted
}

/// Polls `run` with backoff until it ends; returns its final state.
pub async fn wait(run: &dyn SubmittedRun) -> RunState {
    let mut pause = Duration::from_millis(10);
    loop {
        let state = ok(run.status().await, "status");
        if state.is_terminal() {
            return state;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Everything `run`'s output stream yields with `options`.
pub async fn read_logs(run: &dyn SubmittedRun, options: LogOptions) -> Vec<u8> {
    let mut stream = ok(run.logs(options).await, "logs");
    let mut out = Vec::new();
    while let Some(chunk) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        out.extend_from_slice(&ok(chunk, "a chunk of the log stream"));
    }
    out
}

async fn finished_output(run: &dyn SubmittedRun) -> String {
    wait(run).await;
    String::from_utf8_lossy(&read_logs(run, LogOptions::default()).await).into_owned()
}

fn lacks(fx: Fixture<'_>, has: fn(ProjectCapabilities) -> bool, case: &str) -> bool {
    if has(fx.backend().capabilities()) {
        return false;
    }
    eprintln!("{case}: skipped, the backend lacks the capability");
    true
}

/// A command that exits 0 ends `FINISHED` with exit code 0.
pub async fn exit_zero_is_finished(fx: Fixture<'_>) {
    let run = submit(fx, sh("exit 0")).await;
    let state = wait(&*run).await;
    assert_eq!(state.status, RunStatus::Finished, "{state:?}");
    assert_eq!(state.exit_code, Some(0), "{state:?}");
}

/// A command that exits 3 ends `FAILED` with exit code 3.
pub async fn nonzero_exit_is_failed_with_its_code(fx: Fixture<'_>) {
    let run = submit(fx, sh("exit 3")).await;
    let state = wait(&*run).await;
    assert_eq!(state.status, RunStatus::Failed, "{state:?}");
    assert_eq!(state.exit_code, Some(3), "{state:?}");
}

/// The argv reaches the process as given: no shell re-splits an argument with spaces.
pub async fn argv_is_passed_as_given(fx: Fixture<'_>) {
    if lacks(fx, |c| c.logs, "argv_is_passed_as_given") {
        return;
    }
    let mut command = sh("printf '[%s]' \"$@\"");
    command.extend(["sh", "a b", "$HOME", "'q'"].map(String::from));
    let run = submit(fx, command).await;
    assert_eq!(finished_output(&*run).await, "[a b][$HOME]['q']");
}

/// The run's variables (`MLFLOW_RUN_ID` among them) reach the process.
pub async fn environment_variables_reach_the_process(fx: Fixture<'_>) {
    if lacks(fx, |c| c.logs, "environment_variables_reach_the_process") {
        return;
    }
    let run = submit_with(
        fx,
        sh("echo \"id=$MLFLOW_RUN_ID x=$CAIRN_TEST_VALUE\""),
        &[("CAIRN_TEST_VALUE", "a b")],
    )
    .await;
    let out = finished_output(&*run).await;
    assert_eq!(out, format!("id={} x=a b\n", run.run_id()));
}

/// Stdout and stderr both reach the logs; reading from an offset skips that many bytes.
pub async fn logs_from_the_start_and_from_an_offset(fx: Fixture<'_>) {
    if lacks(fx, |c| c.logs, "logs_from_the_start_and_from_an_offset") {
        return;
    }
    let run = submit(fx, sh("echo one; echo two >&2; echo three")).await;
    assert_eq!(finished_output(&*run).await, "one\ntwo\nthree\n");
    let rest = read_logs(
        &*run,
        LogOptions {
            offset: 4,
            follow: false,
        },
    )
    .await;
    assert_eq!(rest, b"two\nthree\n");
    let past = read_logs(
        &*run,
        LogOptions {
            offset: 1000,
            follow: false,
        },
    )
    .await;
    assert!(past.is_empty(), "{past:?}");
}

/// Following the logs of a running run yields everything it writes and ends when it ends.
pub async fn logs_follow_until_the_run_ends(fx: Fixture<'_>) {
    if lacks(fx, |c| c.logs, "logs_follow_until_the_run_ends") {
        return;
    }
    let run = submit(fx, sh("echo first; sleep 1; echo second; exit 4")).await;
    let out = read_logs(
        &*run,
        LogOptions {
            offset: 0,
            follow: true,
        },
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out), "first\nsecond\n");
    let state = wait(&*run).await;
    assert_eq!(state.exit_code, Some(4), "{state:?}");
}

/// Output that is not UTF-8 is passed through as bytes, and reads as U+FFFD in lossy lines.
pub async fn non_utf8_output_never_fails_the_stream(fx: Fixture<'_>) {
    if lacks(fx, |c| c.logs, "non_utf8_output_never_fails_the_stream") {
        return;
    }
    let run = submit(fx, sh("printf 'a\\377b\\nok\\n'")).await;
    wait(&*run).await;
    assert_eq!(
        read_logs(&*run, LogOptions::default()).await,
        b"a\xffb\nok\n"
    );
    let mut lines = lossy_lines(ok(run.logs(LogOptions::default()).await, "logs"));
    let mut text = Vec::new();
    while let Some(line) = poll_fn(|cx| std::pin::Pin::new(&mut lines).poll_next(cx)).await {
        text.push(ok(line, "a lossy line"));
    }
    assert_eq!(text, ["a\u{fffd}b", "ok"]);
}

/// Submitting the same run id again returns the same run and starts nothing new.
pub async fn submit_is_idempotent_on_the_run_id(fx: Fixture<'_>) {
    let mut run = fx.run(sh("echo started; sleep 1"));
    run.run_id = random_run_id();
    let first = ok(fx.backend().submit(run.clone()).await, "submit");
    let again = ok(fx.backend().submit(run.clone()).await, "submit again");
    assert_eq!(first.handle(), again.handle());
    wait(&*first).await;
    if fx.backend().capabilities().logs {
        let out =
            String::from_utf8_lossy(&read_logs(&*again, LogOptions::default()).await).into_owned();
        assert_eq!(out, "started\n", "the command ran more than once");
    }
}

/// A run attached from its handle (through its tag form) reports the same state as the run
/// submitted, and its output.
pub async fn attach_from_the_handle_sees_the_same_run(fx: Fixture<'_>) {
    let run = submit(fx, sh("echo attached; exit 5")).await;
    let handle = RunHandle::from_tag(&run.handle().to_tag()).expect("the handle's tag parses");
    let state = wait(&*run).await;
    let attached = ok(fx.backend().attach(handle.clone()).await, "attach");
    assert_eq!(attached.handle(), &handle);
    assert_eq!(attached.run_id(), run.run_id());
    assert_eq!(
        ok(attached.status().await, "status of the attached run"),
        state
    );
    if fx.backend().capabilities().logs {
        assert_eq!(
            read_logs(&*attached, LogOptions::default()).await,
            b"attached\n"
        );
    }
}

/// Attaching to a handle the backend never issued is `NotFound`.
pub async fn attach_to_an_unknown_run_is_not_found(fx: Fixture<'_>) {
    let run = submit(fx, sh("exit 0")).await;
    let handle = RunHandle {
        backend: run.handle().backend.clone(),
        id: format!("{}-unknown", random_run_id()),
    };
    expect_err(
        fx.backend().attach(handle).await.map(|_| ()),
        ErrorKind::NotFound,
        "attach to an unknown handle",
    );
    wait(&*run).await;
}

/// Cancelling a running run stops its whole process tree; it ends `KILLED`.
pub async fn cancel_stops_the_run_as_killed(fx: Fixture<'_>) {
    if lacks(fx, |c| c.cancel, "cancel_stops_the_run_as_killed") {
        return;
    }
    // A child of the shell that would outlive a kill of the shell alone.
    let run = submit(fx, sh("sleep 1000 & wait")).await;
    ok(run.cancel().await, "cancel");
    let state = wait(&*run).await;
    assert_eq!(state.status, RunStatus::Killed, "{state:?}");
}

/// A run attached from its handle can be cancelled.
pub async fn cancel_through_an_attached_run(fx: Fixture<'_>) {
    if lacks(fx, |c| c.cancel, "cancel_through_an_attached_run") {
        return;
    }
    let run = submit(fx, sh("sleep 1000")).await;
    let attached = ok(fx.backend().attach(run.handle().clone()).await, "attach");
    ok(attached.cancel().await, "cancel");
    assert_eq!(wait(&*run).await.status, RunStatus::Killed);
}

/// Cancelling a run that has ended changes nothing.
pub async fn cancel_after_the_end_is_a_no_op(fx: Fixture<'_>) {
    if lacks(fx, |c| c.cancel, "cancel_after_the_end_is_a_no_op") {
        return;
    }
    let run = submit(fx, sh("exit 0")).await;
    let state = wait(&*run).await;
    ok(run.cancel().await, "cancel after the end");
    assert_eq!(ok(run.status().await, "status"), state);
}
