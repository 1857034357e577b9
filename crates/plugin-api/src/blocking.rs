//! A small pool of threads for blocking work: file system calls, a database driver, CPU-bound
//! inference.
//!
//! A plugin must never block the async executor that polls its futures, and it must not depend
//! on any async runtime either (a shared library has none of the host's). A [`BlockingPool`]
//! solves both: [`run`](BlockingPool::run) queues a closure for the pool's threads and returns
//! a future that resolves to its result through a `futures-channel` oneshot, which wakes
//! whatever executor polls it. A panicking job does not take its thread down: the caller gets
//! [`BlockingError::Panicked`] with the panic message and the thread serves the next job.
//!
//! Keep jobs short (one chunk, one listing, one transaction), so a slow client costs a queue
//! slot per step rather than a thread for the whole transfer.
//!
//! Each thread can own a state (a database connection, say) that every job on it borrows
//! mutably — [`BlockingPool::with_states`]; the stateless form is [`BlockingPool::new`]:
//!
//! ```
//! use cairn_plugin_api::blocking::BlockingPool;
//!
//! let pool = BlockingPool::new("my-plugin-io", 4);
//! let job = pool.run(|_| std::fs::read_dir(".").map(|d| d.count()));
//! # let entries = futures_executor::block_on(job).unwrap().unwrap();
//! # assert!(entries > 0);
//! ```
//!
//! Dropping the pool lets its threads finish the queued jobs and exit, dropping their states.

use futures_channel::oneshot;
use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// Why a job of a [`BlockingPool`] produced no result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockingError {
    /// The pool has no threads (the OS refused to start them, or every one has exited).
    Stopped,
    /// The job panicked; the panic message.
    Panicked(String),
}

impl fmt::Display for BlockingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockingError::Stopped => f.write_str("the plugin's worker threads are not running"),
            BlockingError::Panicked(m) => write!(f, "a blocking job panicked: {m}"),
        }
    }
}

impl std::error::Error for BlockingError {}

/// `Stopped` is [`Unavailable`](crate::ErrorKind::Unavailable) (503), `Panicked` is
/// [`Internal`](crate::ErrorKind::Internal) (500).
impl From<BlockingError> for crate::Error {
    fn from(e: BlockingError) -> Self {
        let kind = match e {
            BlockingError::Stopped => crate::ErrorKind::Unavailable,
            BlockingError::Panicked(_) => crate::ErrorKind::Internal,
        };
        crate::Error::new(kind, e.to_string())
    }
}

/// Threads sharing one queue of jobs, each thread owning a state `S` its jobs borrow.
/// See the [module docs](self).
pub struct BlockingPool<S = ()> {
    queue: mpsc::Sender<Job<S>>,
}

impl<S> fmt::Debug for BlockingPool<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingPool").finish_non_exhaustive()
    }
}

impl BlockingPool<()> {
    /// Starts `threads` stateless threads (at least one), named `<name>-<i>`.
    pub fn new(name: &str, threads: usize) -> Self {
        Self::with_states(name, std::iter::repeat_n((), threads.max(1)))
    }
}

impl<S: Send + 'static> BlockingPool<S> {
    /// Starts one thread per state, named `<name>-<i>`; a job runs on any free thread with a
    /// `&mut` to that thread's state.
    ///
    /// If the OS refuses every thread, jobs fail with [`BlockingError::Stopped`] instead of
    /// hanging.
    pub fn with_states(name: &str, states: impl IntoIterator<Item = S>) -> Self {
        let (tx, rx) = mpsc::channel::<Job<S>>();
        let rx = Arc::new(Mutex::new(rx));
        for (i, mut state) in states.into_iter().enumerate() {
            let rx = Arc::clone(&rx);
            // A refused thread drops its clone of the receiver with the closure.
            let _ = thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    loop {
                        // Hold the queue lock only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        let Ok(job) = job else { break };
                        // `run` catches its own panics; this keeps the thread alive after a
                        // panic in a `spawn`ed job.
                        let _ = catch_unwind(AssertUnwindSafe(|| job(&mut state)));
                    }
                });
        }
        BlockingPool { queue: tx }
    }

    /// Queues `f`; the returned future resolves to its result. The job runs whether or not
    /// the future is polled (dropping the future discards the result, not the work).
    pub fn run<T, F>(&self, f: F) -> impl Future<Output = Result<T, BlockingError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut S) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let sent = self.queue.send(Box::new(move |state: &mut S| {
            let out = catch_unwind(AssertUnwindSafe(|| f(state)))
                .map_err(|payload| BlockingError::Panicked(panic_message(&*payload)));
            let _ = tx.send(out);
        }));
        async move {
            sent.map_err(|_| BlockingError::Stopped)?;
            // A dropped sender without a reply means the thread died mid-job.
            rx.await.map_err(|_| BlockingError::Stopped)?
        }
    }

    /// Queues `f` without waiting for it (clean-up work from a `Drop`, say). A panic in it is
    /// caught and discarded.
    pub fn spawn(&self, f: impl FnOnce(&mut S) + Send + 'static) {
        let _ = self.queue.send(Box::new(f));
    }
}

/// The message of a panic payload (`panic!` with a literal or a formatted string).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_executor::block_on;

    #[test]
    fn jobs_run_off_the_calling_thread_and_panics_are_errors_naming_the_message() {
        let pool = BlockingPool::new("test-pool", 2);
        let caller = thread::current().id();
        let other = block_on(pool.run(move |_| thread::current().id())).unwrap();
        assert_ne!(other, caller);
        let panicked = block_on(pool.run(|_| -> u8 { panic!("boom {}", 42) }));
        assert_eq!(panicked, Err(BlockingError::Panicked("boom 42".into())));
        let err = crate::Error::from(panicked.unwrap_err());
        assert_eq!(err.kind, crate::ErrorKind::Internal);
        // The pool still serves after a panic, on both threads.
        for _ in 0..4 {
            assert_eq!(block_on(pool.run(|_| 7)), Ok(7));
        }
    }

    #[test]
    fn each_thread_owns_its_state_and_jobs_borrow_it() {
        // One thread: every job sees the state the previous one left.
        let pool = BlockingPool::with_states("test-counter", [0u32]);
        for want in 1..=3 {
            let got = block_on(pool.run(|n| {
                *n += 1;
                *n
            }));
            assert_eq!(got, Ok(want));
        }
        pool.spawn(|n| *n += 10);
        assert_eq!(block_on(pool.run(|n| *n)), Ok(13));
    }

    #[test]
    fn a_pool_without_threads_reports_stopped() {
        let pool = BlockingPool::<u8>::with_states("test-empty", []);
        assert_eq!(block_on(pool.run(|_| 1)), Err(BlockingError::Stopped));
        let err = crate::Error::from(BlockingError::Stopped);
        assert_eq!(err.kind, crate::ErrorKind::Unavailable);
    }

    #[test]
    fn dropping_the_pool_finishes_queued_work_and_drops_the_states() {
        struct Flag(mpsc::Sender<()>);
        impl Drop for Flag {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let (tx, rx) = mpsc::channel();
        let pool = BlockingPool::with_states("test-drop", [Flag(tx)]);
        let job = pool.run(|_| 5);
        drop(pool);
        assert_eq!(block_on(job), Ok(5));
        rx.recv()
            .expect("the state is dropped when the thread exits");
    }
}
