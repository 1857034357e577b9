//! The web UI (crate `cairn-ui`, bundled at build time and embedded in the binary).
//!
//! - `GET /` (and `/index.html`): the page, with a `<base href>` of the static prefix so every
//!   URL the UI uses is relative to it; `Cache-Control: no-cache` with an `ETag`, so a reload
//!   revalidates and a new build is picked up at once.
//! - `GET /static-files/<name>`: the bundled script and stylesheet. Their names carry a hash of
//!   their content, so they are cached for a year (`immutable`); they also have an `ETag`.
//!
//! Every UI response carries a Content-Security-Policy that allows only this origin's scripts,
//! styles, images and API calls (no inline script, no framing by other sites, no plugins);
//! `X-Content-Type-Options: nosniff` comes with every response of the server. The UI talks only
//! to the API under `/ajax-api/2.0/mlflow/` and to `/get-artifact` (previews, downloads), so its
//! state-changing requests go through the same `Host` and cross-origin checks as any client's.
//!
//! These routes are public even with the basic-auth app on: they hold no data (the API calls
//! the page makes are authorised as any other).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The policy of every UI response. Styles set through the CSSOM (uPlot's, the UI's own) are
/// not inline styles; `data:`/`blob:` images are uPlot's; sandboxed HTML previews use `srcdoc`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-src 'self'; \
     object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'";

struct Page {
    html: String,
    etag: HeaderValue,
}

/// The UI's routes, for a server whose routes live under `prefix` (`""` for none). Nested
/// under the prefix, `/` answers `<prefix>` only; [`prefixed_index`] adds `<prefix>/`.
pub fn routes(prefix: &str) -> Router {
    let index = index_handler(prefix);
    Router::new()
        .route("/", get(index.clone()))
        .route("/index.html", get(index))
        .route("/static-files/{name}", get(serve_asset))
}

/// The page at `<prefix>/` (with its trailing slash), for the outer router of a prefixed server.
pub fn prefixed_index(prefix: &str) -> Router {
    Router::new().route(&format!("{prefix}/"), get(index_handler(prefix)))
}

fn index_handler(
    prefix: &str,
) -> impl Fn(HeaderMap) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    let base = format!("{}/", escape_attribute(prefix));
    let html = cairn_ui::INDEX_HTML.replace("{{base}}", &base);
    let page = Arc::new(Page {
        etag: etag_of(html.as_bytes()),
        html,
    });
    move |headers: HeaderMap| std::future::ready(serve_index(&page, &headers))
}

fn serve_index(page: &Page, headers: &HeaderMap) -> Response {
    if not_modified(headers, &page.etag) {
        return with_common(
            StatusCode::NOT_MODIFIED.into_response(),
            &page.etag,
            "no-cache",
        );
    }
    let response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.html.clone(),
    )
        .into_response();
    with_common(response, &page.etag, "no-cache")
}

async fn serve_asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some((content_type, body)) = cairn_ui::asset(&name) else {
        let mut r = (StatusCode::NOT_FOUND, "Not found").into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return r;
    };
    let etag = etag_of(body);
    let cache = "public, max-age=31536000, immutable";
    if not_modified(&headers, &etag) {
        return with_common(StatusCode::NOT_MODIFIED.into_response(), &etag, cache);
    }
    with_common(
        ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        &etag,
        cache,
    )
}

fn with_common(mut response: Response, etag: &HeaderValue, cache: &'static str) -> Response {
    let h = response.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || t.trim().as_bytes() == etag.as_bytes())
        })
}

fn etag_of(bytes: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// `text` safe inside a double-quoted HTML attribute.
fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn get(app: &Router, uri: &str, etag: Option<&str>) -> Response {
        let mut req = axum::http::Request::builder().uri(uri);
        if let Some(e) = etag {
            req = req.header(header::IF_NONE_MATCH, e);
        }
        app.clone()
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn index_names_the_hashed_assets_and_revalidates() {
        let app = routes("/mlflow");
        let res = get(&app, "/", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers().clone();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert!(
            h[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(html.contains(r#"<base href="/mlflow/">"#), "{html}");
        for (name, content_type, _) in cairn_ui::ASSETS {
            assert!(html.contains(&format!("static-files/{name}")), "{html}");
            let res = get(&app, &format!("/static-files/{name}"), None).await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()[header::CONTENT_TYPE], *content_type);
            assert!(
                res.headers()[header::CACHE_CONTROL]
                    .to_str()
                    .unwrap()
                    .contains("immutable")
            );
            let etag = res.headers()[header::ETAG].to_str().unwrap().to_owned();
            let again = get(&app, &format!("/static-files/{name}"), Some(&etag)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        }
        let etag = h[header::ETAG].to_str().unwrap();
        assert_eq!(
            get(&app, "/", Some(etag)).await.status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            get(&app, "/static-files/nope.js", None).await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn the_prefix_is_escaped_in_the_base_element() {
        assert_eq!(escape_attribute(r#"/a"><x"#), "/a&quot;&gt;&lt;x");
    }
}
