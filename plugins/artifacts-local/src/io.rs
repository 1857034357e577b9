//! The threads that do the repository's file I/O.
//!
//! File system calls block, and the repository must neither block its caller's async executor
//! nor depend on any async runtime (it also runs inside shared libraries, whose futures a host
//! drives with whatever executor it has). So every file system call runs as a job on a small
//! process-wide pool of threads, and the caller awaits the job's result on a
//! `futures-channel` oneshot, which wakes whichever executor polls it.
//!
//! Jobs are short — one metadata lookup, one directory listing, one chunk read or written —
//! so a transfer never holds a thread while it waits for its client: a slow download costs a
//! queue slot per chunk, not a thread.

use futures_channel::oneshot;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

/// Threads in the pool. File jobs are short and mostly wait on the disk, so a few more threads
/// than cores keep several transfers moving at once.
const THREADS: usize = 8;

type Job = Box<dyn FnOnce() + Send>;

/// Why a job produced no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PoolError {
    /// The pool has no threads left (the OS refused to start them).
    #[error("the file I/O threads are not running")]
    Stopped,
    /// The job panicked.
    #[error("a file I/O job panicked")]
    Panicked,
}

struct Pool {
    queue: mpsc::Sender<Job>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx = Arc::clone(&rx);
            // If the OS refuses every thread, the receiver goes with the last closure and
            // submitting fails with `Stopped` instead of hanging.
            let _ = thread::Builder::new()
                .name(format!("cairn-artifacts-io-{i}"))
                .spawn(move || {
                    loop {
                        // Hold the queue lock only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        let Ok(job) = job else { break };
                        // A panicking job drops its oneshot sender; its caller sees `Panicked`.
                        let _ = catch_unwind(AssertUnwindSafe(job));
                    }
                });
        }
        Pool { queue: tx }
    })
}

/// Runs `f` on a pool thread; the returned future resolves to its result.
pub(crate) fn run<T, F>(f: F) -> impl Future<Output = Result<T, PoolError>> + Send + 'static
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let sent = pool().queue.send(Box::new(move || {
        let _ = tx.send(f());
    }));
    async move {
        sent.map_err(|_| PoolError::Stopped)?;
        rx.await.map_err(|_| PoolError::Panicked)
    }
}

/// Runs `f` on a pool thread without waiting for it (clean-up work from `Drop`).
pub(crate) fn spawn(f: impl FnOnce() + Send + 'static) {
    let _ = pool().queue.send(Box::new(f));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_off_the_calling_thread_and_panics_are_errors() {
        let caller = thread::current().id();
        let other = futures_executor::block_on(run(move || thread::current().id())).unwrap();
        assert_ne!(other, caller);
        let panicked = futures_executor::block_on(run(|| -> u8 { panic!("boom") }));
        assert_eq!(panicked, Err(PoolError::Panicked));
        // The pool still serves after a panic.
        assert_eq!(futures_executor::block_on(run(|| 7)), Ok(7));
    }
}
