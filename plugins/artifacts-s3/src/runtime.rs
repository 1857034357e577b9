//! The plugin's own tokio runtime.
//!
//! `object_store`'s HTTP client needs tokio, but the host may drive this plugin's futures from
//! any executor — tokio's, `futures-executor`'s, or a shared library's caller with no runtime
//! of its own — and no tokio handle may cross the plugin boundary. So the plugin owns one
//! multi-thread runtime, built on first use and shared by every repository in the process.
//! Work is spawned onto it and results come back through `futures-channel` oneshots and
//! bounded channels, which wake whatever executor polls them.

use cairn_plugin_api::{Error, ErrorKind, Result};
use futures_channel::oneshot;
use std::sync::OnceLock;
use tokio::runtime::Runtime;

/// The runtime, built on first use; `Unavailable` if the OS refuses its threads.
pub(crate) fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    let built = RUNTIME.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 8);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("cairn-s3")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    built.as_ref().map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!("the S3 repository could not start its runtime: {e}"),
        )
    })
}

/// Runs `fut` on the plugin's runtime; the returned future, which any executor may poll,
/// resolves to its output. Dropping the returned future does not stop `fut`.
pub(crate) async fn run<T, F>(fut: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    runtime()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.await
        .map_err(|_| Error::internal("an S3 task ended without a result (it panicked)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokio_work_runs_from_a_non_tokio_executor() {
        let slept = futures_executor::block_on(run(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            42
        }));
        assert_eq!(slept.unwrap(), 42);
        fn boom() -> u8 {
            panic!("boom")
        }
        let e = futures_executor::block_on(run(async { boom() })).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Internal);
    }
}
