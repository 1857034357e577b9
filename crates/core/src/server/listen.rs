//! The connection layer of `cairn server`: accepts TCP connections and serves HTTP/1.1 on them
//! with hyper, within [`ConnectionLimits`].
//!
//! - **Connection cap.** At most `max_connections` connections are open at once; the next one
//!   is accepted only when one closes (it waits in the kernel's backlog meanwhile), so hostile
//!   clients cannot take every file descriptor the stores need.
//! - **Idle timeout.** A connection must deliver a complete request head within `idle_timeout`
//!   of the previous response (or of being accepted): an idle keep-alive connection and a
//!   half-sent header are both closed after it (hyper's header-read timer, which starts when
//!   the connection waits for a request).
//! - **Body-read timeout.** A request body that stalls for `body_read_timeout` between two
//!   pieces fails (a router layer, see [`super::router`]).
//! - **Shutdown deadline.** When `shutdown` resolves, no more connections are accepted, idle
//!   ones close, and in-flight requests get `shutdown_timeout` to finish; connections still
//!   open after it are dropped.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// The bounds a server keeps on its connections (`[server]` keys of the same names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// The longest a connection may wait for a complete request head.
    pub idle_timeout: Duration,
    /// How long in-flight requests may run after the shutdown signal.
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: crate::config::DEFAULT_MAX_CONNECTIONS,
            idle_timeout: Duration::from_secs(crate::config::DEFAULT_IDLE_TIMEOUT_SECS),
            shutdown_timeout: Duration::from_secs(crate::config::DEFAULT_SHUTDOWN_TIMEOUT_SECS),
        }
    }
}

/// Pause after a failed `accept` (e.g. `EMFILE`) before trying again, so a full descriptor
/// table does not spin the accept loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then drains the
/// connections (see the [module docs](self)).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let _permit = permit;
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    drop(stop_tx);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "shutdown deadline passed: dropping the connections still open"
        );
        connections.abort_all();
    }
    Ok(())
}
