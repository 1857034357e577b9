//! The store's connections, each owned by its own thread.
//!
//! SQLite calls block, and the store must not block its caller's async executor nor depend on
//! any async runtime (it may run inside a shared library with no host runtime). So every
//! connection is the state of a thread of a
//! [`BlockingPool`](cairn_plugin_api::blocking::BlockingPool): one writer thread owns the only
//! read-write connection, and a few reader threads share a queue of read jobs. A call sends a
//! closure to the right pool and awaits its result. In WAL mode readers run concurrently with
//! the writer; an in-memory database has a single connection that serves everything.

use crate::error::{StoreError, StoreResult};
use cairn_plugin_api::blocking::{BlockingError, BlockingPool};
use rusqlite::Connection;

/// The writer and reader threads. Dropping it ends the threads once their queues are drained,
/// which closes their connections. A panicking job rolls back its transaction on unwind; its
/// caller gets an `Internal` error and the thread keeps serving.
pub(crate) struct Pool {
    writer: BlockingPool<Connection>,
    readers: Option<BlockingPool<Connection>>,
}

impl Pool {
    /// Starts one thread for `writer` and one per reader connection.
    pub(crate) fn start(writer: Connection, readers: Vec<Connection>) -> Pool {
        Pool {
            writer: BlockingPool::with_states("cairn-sqlite-writer", [writer]),
            readers: (!readers.is_empty())
                .then(|| BlockingPool::with_states("cairn-sqlite-reader", readers)),
        }
    }

    fn submit<T, F>(
        pool: &BlockingPool<Connection>,
        f: F,
    ) -> impl Future<Output = StoreResult<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let job = pool.run(f);
        async move {
            job.await.map_err(|e| match e {
                BlockingError::Stopped => StoreError::Closed,
                e => StoreError::Api(e.into()),
            })?
        }
    }

    /// Runs `f` on the writer connection.
    pub(crate) fn write<T, F>(&self, f: F) -> impl Future<Output = StoreResult<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        Self::submit(&self.writer, f)
    }

    /// Runs `f` on a reader connection (the writer's, for an in-memory database).
    pub(crate) fn read<T, F>(&self, f: F) -> impl Future<Output = StoreResult<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        Self::submit(self.readers.as_ref().unwrap_or(&self.writer), f)
    }
}
