//! The plugin's own tokio runtime.
//!
//! The `kube` client needs tokio, but the host may drive this plugin's futures from any
//! executor (tokio's, `futures-executor`'s, a shared library's caller) and no tokio handle
//! crosses the plugin boundary. So the backend owns one small multi-thread runtime, built on
//! first use: every client call, watch and log stream runs on it, and results come back
//! through `futures-channel` oneshots and channels, which wake whatever executor polls them.

use cairn_plugin_api::{Error, ErrorKind, Result};
use futures_channel::oneshot;
use std::sync::OnceLock;
use tokio::runtime::Runtime;

/// The runtime, built on first use; `Unavailable` if the OS refuses its threads.
pub(crate) fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    let built = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-k8s")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    built.as_ref().map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!("the kubernetes backend could not start its runtime: {e}"),
        )
    })
}

/// Runs `fut` on the plugin's runtime; the returned future, which any executor may poll,
/// resolves to its output.
pub(crate) async fn run<T, F>(fut: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    runtime()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.await
        .map_err(|_| Error::internal("a kubernetes task ended without a result (it panicked)"))?
}
