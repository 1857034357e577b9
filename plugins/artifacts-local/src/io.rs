//! The threads that do the repository's file I/O: one process-wide
//! [`BlockingPool`](cairn_plugin_api::blocking::BlockingPool).
//!
//! Jobs are short — one metadata lookup, one directory listing, one chunk read or written —
//! so a transfer never holds a thread while it waits for its client: a slow download costs a
//! queue slot per chunk, not a thread.

use cairn_plugin_api::blocking::{BlockingError, BlockingPool};
use std::sync::OnceLock;

/// Threads in the pool. File jobs are short and mostly wait on the disk, so a few more threads
/// than cores keep several transfers moving at once.
const THREADS: usize = 8;

fn pool() -> &'static BlockingPool {
    static POOL: OnceLock<BlockingPool> = OnceLock::new();
    POOL.get_or_init(|| BlockingPool::new("cairn-artifacts-io", THREADS))
}

/// Runs `f` on a pool thread; the returned future resolves to its result.
pub(crate) fn run<T, F>(f: F) -> impl Future<Output = Result<T, BlockingError>> + Send + 'static
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    pool().run(move |_| f())
}

/// Runs `f` on a pool thread without waiting for it (clean-up work from `Drop`).
pub(crate) fn spawn(f: impl FnOnce() + Send + 'static) {
    pool().spawn(move |_| f());
}
