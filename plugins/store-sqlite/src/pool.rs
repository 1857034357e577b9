//! The store's connections, each owned by its own thread.
//!
//! SQLite calls block, and the store must not block its caller's async executor nor depend on
//! any async runtime (it may run inside a shared library with no host runtime). So every
//! connection lives on a dedicated thread: one writer thread owns the only read-write
//! connection, and a few reader threads share a queue of read jobs. A call sends a closure to
//! the right thread and awaits its result on a `futures-channel` oneshot, which wakes whatever
//! executor polls it. In WAL mode readers run concurrently with the writer; an in-memory
//! database has a single connection that serves everything.

use crate::error::{StoreError, StoreResult};
use futures_channel::oneshot;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Handles to the writer and reader threads. Dropping it ends the threads once their queues
/// are drained, which closes their connections.
pub(crate) struct Pool {
    writer: mpsc::Sender<Job>,
    readers: Option<mpsc::Sender<Job>>,
}

fn spawn_worker(name: String, mut conn: Connection, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let spawned = thread::Builder::new().name(name).spawn(move || {
        loop {
            // Hold the queue lock only while waiting for the next job.
            let job = match rx.lock() {
                Ok(guard) => guard.recv(),
                Err(poisoned) => poisoned.into_inner().recv(),
            };
            let Ok(job) = job else { break };
            // A panicking job drops its oneshot sender (its caller sees `Closed`) and rolls
            // back its transaction on unwind; the thread keeps serving.
            let _ = catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
        }
    });
    // If the OS refuses a thread the receiver is dropped with the closure and calls fail with
    // `Closed` instead of hanging.
    drop(spawned);
}

impl Pool {
    /// Starts one thread for `writer` and one per reader connection.
    pub(crate) fn start(writer: Connection, readers: Vec<Connection>) -> Pool {
        let (wtx, wrx) = mpsc::channel::<Job>();
        spawn_worker(
            "cairn-sqlite-writer".into(),
            writer,
            Arc::new(Mutex::new(wrx)),
        );
        let readers = if readers.is_empty() {
            None
        } else {
            let (rtx, rrx) = mpsc::channel::<Job>();
            let rrx = Arc::new(Mutex::new(rrx));
            for (i, conn) in readers.into_iter().enumerate() {
                spawn_worker(format!("cairn-sqlite-reader-{i}"), conn, rrx.clone());
            }
            Some(rtx)
        };
        Pool {
            writer: wtx,
            readers,
        }
    }

    fn submit<T, F>(
        queue: &mpsc::Sender<Job>,
        f: F,
    ) -> impl Future<Output = StoreResult<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let sent = queue.send(Box::new(move |conn: &mut Connection| {
            let _ = tx.send(f(conn));
        }));
        async move {
            sent.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
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
