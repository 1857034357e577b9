//! `metrics/get-history` with bounded memory.
//!
//! MLflow returns a metric's whole history when `max_results` is absent. Cairn does too, but
//! never holds it: the history is read from the store one page (`chunk` values) at a time and
//! written to the response as it comes, so a history of any length costs one page of memory.
//! With `max_results`, at most that many values are returned (still read page by page) with
//! the store's token for the next page.
//!
//! The history of a run the store does not know is empty, as in MLflow (whose SQL store reads
//! the metrics table without looking the run up): [`read_history`] turns the store's
//! `NotFound` into an empty page. The first page is read before the response starts, so any
//! other store error is still a proper MLflow error. A store failure on a later page can only abort the response body (the status
//! line is already sent); it is logged and the client sees a truncated body.

use super::error::ApiResult;
use super::wire::json;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_plugin_api::entities::Metric;
use cairn_plugin_api::{ErrorKind, Page, TrackingStore};
use serde::Serialize;
use std::sync::Arc;

/// Values read from the store per page while streaming a history.
pub const DEFAULT_HISTORY_CHUNK: usize = 10_000;

#[derive(Serialize)]
struct HistoryResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<Metric>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

fn append_metrics(
    buf: &mut Vec<u8>,
    metrics: &[Metric],
    mut first: bool,
) -> serde_json::Result<()> {
    for m in metrics {
        if !first {
            buf.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *buf, m)?;
    }
    Ok(())
}

/// One page of `run_id`'s history of `key`; a run the store does not know has an empty one
/// (MLflow answers `{}`, not `RESOURCE_DOES_NOT_EXIST`).
pub async fn read_history(
    store: &dyn TrackingStore,
    run_id: &str,
    key: &str,
    max_results: usize,
    page_token: Option<String>,
) -> cairn_plugin_api::Result<Page<Metric>> {
    match store
        .get_metric_history(run_id, key, max_results, page_token)
        .await
    {
        Err(e) if e.kind == ErrorKind::NotFound => Ok(Page::last(Vec::new())),
        other => other,
    }
}

/// Answers `get-history` for `run_id`/`key`: at most `limit` values (all when `None`) from
/// `page_token` on, read `chunk` at a time.
pub async fn stream_metric_history(
    store: Arc<dyn TrackingStore>,
    run_id: String,
    key: String,
    limit: Option<usize>,
    page_token: Option<String>,
    chunk: usize,
) -> ApiResult<Response> {
    let chunk = chunk.max(1);
    let first_size = limit.map_or(chunk, |l| l.min(chunk));
    let first = read_history(store.as_ref(), &run_id, &key, first_size, page_token).await?;
    let sent = first.items.len();
    let left = limit.map(|l| l.saturating_sub(sent));
    if first.next_page_token.is_none() || left == Some(0) {
        return Ok(json(&HistoryResponse {
            metrics: first.items,
            next_page_token: first.next_page_token,
        }));
    }

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut buf = b"{\"metrics\":[".to_vec();
        if let Err(e) = append_metrics(&mut buf, &first.items, true) {
            let _ = tx.send(Err(std::io::Error::other(e))).await;
            return;
        }
        if tx.send(Ok(Bytes::from(buf))).await.is_err() {
            return; // The client went away.
        }
        let mut sent = sent;
        let mut token = first.next_page_token;
        while let Some(current) = token.take() {
            let want = limit.map_or(chunk, |l| l.saturating_sub(sent).min(chunk));
            if want == 0 {
                token = Some(current);
                break;
            }
            let page = match store
                .get_metric_history(&run_id, &key, want, Some(current))
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(run_id = %run_id, key = %key, error = %e,
                        "metric history failed mid-stream; aborting the response");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let mut buf = Vec::with_capacity(page.items.len() * 80);
            if let Err(e) = append_metrics(&mut buf, &page.items, false) {
                let _ = tx.send(Err(std::io::Error::other(e))).await;
                return;
            }
            sent += page.items.len();
            token = page.next_page_token;
            if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                return;
            }
        }
        let tail = match token {
            Some(t) => format!(
                "],\"next_page_token\":{}}}",
                serde_json::to_string(&t).unwrap_or_else(|_| "\"\"".into())
            ),
            None => "]}".to_owned(),
        };
        let _ = tx.send(Ok(Bytes::from(tail))).await;
    });

    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
