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
//! - **JSON for 414 and 431.** hyper answers a request head it refuses (a request target over
//!   64 KiB, a head over 408 KiB or with over 100 headers) itself, with an empty body,
//!   before any handler runs. `JsonHeadErrors` rewrites exactly those answers on their way
//!   to the socket into MLflow's `{"error_code", "message"}` shape.

use super::ApiError;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

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

/// The largest request head (request line and headers) accepted, in bytes: hyper's read buffer
/// (8 KiB + 100 × 4 KiB). hyper checks its buffer only while a head is incomplete, so a head
/// that completes within one large read could pass it (a 500 KB header sent in two pieces was
/// answered 200); this bound is checked on every complete head.
const MAX_HEAD_BYTES: usize = 408 * 1024;

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
        .header_read_timeout(limits.idle_timeout)
        .max_header_size(MAX_HEAD_BYTES);
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
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let connection = builder.serve_connection(
            TokioIo::new(JsonHeadErrors::new(stream)),
            // The peer's address, for handlers and layers that need it (the auth app's limit
            // on failed logins per user and address).
            TowerToHyperService::new(app.clone().map_request(
                move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                },
            )),
        );
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

/// A connection's socket with hyper's automatic `414`/`431` answers rewritten into MLflow's
/// JSON error shape (see the [module docs](self)).
///
/// hyper writes such an answer as one buffer, alone, and closes the connection after it:
/// `HTTP/1.1 431 Request Header Fields Too Large`, then exactly the headers `connection:
/// close`, `content-length: 0` and `date`. A write of exactly that form is replaced by the same
/// status with a JSON body; every other write passes through untouched.
struct JsonHeadErrors<IO> {
    io: IO,
    /// A replacement being written: its bytes, how many are written, and the length of the
    /// write it replaces (reported to hyper once the replacement is out).
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<IO> JsonHeadErrors<IO> {
    fn new(io: IO) -> Self {
        JsonHeadErrors {
            io,
            replacing: None,
        }
    }
}

/// The JSON answer that replaces `written` if it is one of hyper's empty `414`/`431` answers.
fn json_head_error(written: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(written)
        .ok()?
        .strip_suffix("\r\n\r\n")?;
    let mut lines = text.split("\r\n");
    let (status, message) = match lines.next()? {
        "HTTP/1.1 414 URI Too Long" => (
            StatusCode::URI_TOO_LONG,
            "The request URI is too long (at most 65534 bytes).",
        ),
        "HTTP/1.1 431 Request Header Fields Too Large" => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "The request headers are too large or too many.",
        ),
        _ => return None,
    };
    let mut date = None;
    let mut others = 0;
    for line in lines {
        match line.split_once(": ") {
            Some(("date", value)) if date.is_none() => date = Some(value),
            Some(("connection", "close")) | Some(("content-length", "0")) => others += 1,
            _ => return None,
        }
    }
    if others != 2 {
        return None;
    }
    let body = ApiError::new(status, "BAD_REQUEST", message).body();
    let mut out = format!(
        "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nx-content-type-options: nosniff\r\ndate: {}\r\n\r\n",
        body.len(),
        date?,
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

impl<IO: AsyncWrite + Unpin> JsonHeadErrors<IO> {
    /// Writes the pending replacement out; `Ready(n)` reports the replaced write's length.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        while let Some((bytes, written, replaced)) = &mut self.replacing {
            if *written == bytes.len() {
                let n = *replaced;
                self.replacing = None;
                return Poll::Ready(Ok(n));
            }
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(0))
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for JsonHeadErrors<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for JsonHeadErrors<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none() {
            match json_head_error(buf) {
                Some(json) => this.replacing = Some((json, 0, buf.len())),
                None => return Pin::new(&mut this.io).poll_write(cx, buf),
            }
        }
        this.poll_replacement(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none() {
            let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
            let json = match (non_empty.next(), non_empty.next()) {
                (Some(only), None) => json_head_error(only).map(|json| (json, only.len())),
                _ => None,
            };
            match json {
                Some((json, len)) => this.replacing = Some((json, 0, len)),
                None => return Pin::new(&mut this.io).poll_write_vectored(cx, bufs),
            }
        }
        this.poll_replacement(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_head_answers_are_rewritten() {
        let date = "date: Thu, 03 Dec 2026 22:50:14 GMT";
        let auto = format!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
             content-length: 0\r\n{date}\r\n\r\n"
        );
        let json = String::from_utf8(json_head_error(auto.as_bytes()).unwrap()).unwrap();
        assert!(
            json.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{json}"
        );
        assert!(json.contains("content-type: application/json"), "{json}");
        assert!(json.contains(date), "{json}");
        let body: serde_json::Value =
            serde_json::from_str(json.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error_code"], "BAD_REQUEST");

        for other in [
            // Our own answers carry a content type; bodies and other statuses pass.
            format!(
                "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\ncontent-length: 0\r\n{date}\r\n\r\n"
            ),
            format!(
                "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n{date}\r\n\r\n"
            ),
            format!("{auto}x"),
            "HTTP/1.1 414 URI Too Long".to_owned(),
        ] {
            assert!(json_head_error(other.as_bytes()).is_none(), "{other}");
        }
    }
}
