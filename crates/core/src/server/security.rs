//! Request safety: the `Host`-header allowlist (DNS rebinding), the cross-origin check of
//! state-changing API requests with the CORS headers that go with it, and the security headers
//! added to every response. The `Content-Type` check of JSON `POST`/`PUT` requests (the
//! `text/plain` cross-site-request class) lives with request decoding in [`super::wire`].
//!
//! **Allowed hosts.** `server.allowed_hosts` (MLflow's `--allowed-hosts`) lists patterns for
//! the `Host` header; `*` matches any run of characters and `?` one character, and a lone `*`
//! allows every host. A pattern is compared with the whole header (`example.com:5000`) and, so
//! that a port never has to be spelt out, with the host name alone (`example.com`).
//!
//! When the list is empty the default depends on the bind address:
//! - bound to a loopback address (`127.0.0.1`, `::1`, `localhost`): `localhost` and loopback
//!   IPs, with any port — nothing else can reach the server anyway;
//! - bound to anything else (`0.0.0.0`, a LAN address): as MLflow, `localhost`, loopback IPs,
//!   `0.0.0.0`, the private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) and the bind address
//!   itself, with any port. A server reached through a DNS name must list that name.
//!
//! `/health` and `/version` are exempt, as in MLflow, so load balancers can probe them.
//! A refused request gets MLflow's 403 text "Invalid Host header - possible DNS rebinding
//! attack detected".
//!
//! **Cross-origin requests.** On API paths (`/api/...`, `/ajax-api/...`, under the static
//! prefix if one is set), a `POST`, `PUT`, `PATCH` or `DELETE` whose `Origin` header is present
//! and not allowed gets MLflow's 403 text "Cross-origin request blocked", so a page on another
//! site cannot drive the server from a user's browser. An origin is allowed when its host is
//! local — `localhost`, `127.0.0.1` or `[::1]`, any scheme and port, as MLflow's
//! `is_localhost_origin` — or when it is listed in `server.cors_allowed_origins` (MLflow's
//! `--cors-allowed-origins`): exactly, or as a pattern if the entry has a `*`. A same-origin
//! request — its `Origin` is the scheme, host and port its `Host` header names — is not
//! cross-origin and passes (the web UI opened at a LAN address or an allowed DNS name), unless
//! `allowed_hosts` is `*` (the `Host` header then proves nothing). `Origin: null`
//! (sandboxed frames, `file:` pages) is not allowed. Reads are never refused. A lone `*` allows
//! every origin: nothing is refused and responses carry `Access-Control-Allow-Origin: *`
//! without credentials, as MLflow's wildcard mode.
//!
//! CORS headers: a response to an allowed origin echoes it in `Access-Control-Allow-Origin`
//! with `Access-Control-Allow-Credentials: true`, and every API response varies on `Origin`.
//! `OPTIONS` on an API path answers 204 without reaching a handler; for a preflight from an
//! allowed origin it also carries MLflow's `Access-Control-Allow-Methods` (`GET, POST, PUT,
//! DELETE, OPTIONS, PATCH`), the requested headers in `Access-Control-Allow-Headers` and
//! `Access-Control-Max-Age: 600`.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// MLflow's body for a refused `Host` header.
pub const INVALID_HOST_MESSAGE: &str =
    "Invalid Host header - possible DNS rebinding attack detected";

/// Which `Host` headers the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Every host (`allowed_hosts = ["*"]`).
    Any,
    /// The configured patterns.
    Patterns(Vec<String>),
    /// The default for a loopback bind: localhost names and loopback IPs.
    Loopback,
    /// The default for other binds: loopback, private ranges and the bind address.
    LoopbackAndPrivate {
        /// The bind address, if it is a specific IP.
        bind: Option<IpAddr>,
    },
}

impl AllowedHosts {
    /// The policy for the configured `patterns` (empty: the default) and the bind `host`.
    pub fn new(patterns: &[String], bind_host: &str) -> Self {
        let patterns: Vec<String> = patterns
            .iter()
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .collect();
        if patterns.iter().any(|p| p == "*") {
            return AllowedHosts::Any;
        }
        if !patterns.is_empty() {
            return AllowedHosts::Patterns(patterns);
        }
        let bind = parse_ip(bind_host);
        let loopback =
            bind_host.eq_ignore_ascii_case("localhost") || bind.is_some_and(|ip| ip.is_loopback());
        if loopback {
            AllowedHosts::Loopback
        } else {
            AllowedHosts::LoopbackAndPrivate {
                bind: bind.filter(|ip| !ip.is_unspecified()),
            }
        }
    }

    /// Whether a request with this `Host` header value is answered.
    pub fn allows(&self, host_header: &str) -> bool {
        let header = host_header.trim().to_ascii_lowercase();
        if header.is_empty() {
            return false;
        }
        let name = host_name(&header);
        match self {
            AllowedHosts::Any => true,
            AllowedHosts::Patterns(patterns) => patterns.iter().any(|p| {
                glob(p.as_bytes(), header.as_bytes()) || glob(p.as_bytes(), name.as_bytes())
            }),
            AllowedHosts::Loopback => is_loopback_name(name),
            AllowedHosts::LoopbackAndPrivate { bind } => {
                if is_loopback_name(name) {
                    return true;
                }
                match parse_ip(name) {
                    Some(ip) => ip.is_unspecified() || is_private(ip) || Some(ip) == *bind,
                    None => false,
                }
            }
        }
    }
}

/// The host name of a `Host` header: the port removed, IPv6 brackets kept off.
fn host_name(header: &str) -> &str {
    if let Some(rest) = header.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match header.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address.
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => header,
    }
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost" || parse_ip(name).is_some_and(|ip| ip.is_loopback())
}

/// RFC 1918 and RFC 4193 ranges, as MLflow's default allowlist.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xfe00) == 0xfc00
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4: Ipv4Addr| v4.is_private())
                || v6 == Ipv6Addr::UNSPECIFIED
        }
    }
}

/// `fnmatch`-style matching with `*` and `?` (no character classes), iterative.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// What the `Host` check middleware needs: the policy and the paths exempt from it.
#[derive(Debug, Clone)]
pub struct HostCheck {
    /// The policy.
    pub policy: AllowedHosts,
    /// Paths answered whatever the `Host` (`/health`, `/version`, with the static prefix).
    pub exempt: Vec<String>,
}

impl HostCheck {
    /// The check for `policy`, exempting the health routes under `prefix` (`""` for none).
    pub fn new(policy: AllowedHosts, prefix: &str) -> Self {
        HostCheck {
            policy,
            exempt: vec![format!("{prefix}/health"), format!("{prefix}/version")],
        }
    }
}

/// Middleware: refuses requests whose `Host` header the policy does not allow.
pub async fn check_host(State(check): State<Arc<HostCheck>>, req: Request, next: Next) -> Response {
    let policy = &check.policy;
    if *policy == AllowedHosts::Any {
        return next.run(req).await;
    }
    let path = req.uri().path();
    let exempt = check.exempt.iter().any(|p| p == path);
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    if exempt || policy.allows(&host) {
        return next.run(req).await;
    }
    tracing::warn!(host = %host, "rejected request with an invalid Host header");
    forbidden(INVALID_HOST_MESSAGE)
}

/// A 403 with a `text/plain` body, as MLflow's security middleware answers.
fn forbidden(message: &'static str) -> Response {
    let mut response = (StatusCode::FORBIDDEN, message).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// MLflow's body for a refused cross-origin state-changing request.
pub const CORS_BLOCKED_MESSAGE: &str = "Cross-origin request blocked";

/// The methods MLflow's CORS preflight answers allow.
const CORS_ALLOW_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS, PATCH";

/// How long a browser may cache a preflight answer, in seconds (Starlette's default, as MLflow).
const CORS_MAX_AGE: &str = "600";

/// Which browser origins may make cross-origin API requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Every origin (`cors_allowed_origins = ["*"]`): nothing is refused, and responses carry
    /// `Access-Control-Allow-Origin: *` without credentials.
    Any,
    /// Local origins and these entries: exact origins, or patterns when they contain `*`.
    Listed(Vec<String>),
}

impl Default for AllowedOrigins {
    /// Local origins only, MLflow's default.
    fn default() -> Self {
        AllowedOrigins::Listed(Vec::new())
    }
}

impl AllowedOrigins {
    /// The policy for the configured entries (`server.cors_allowed_origins`); blank entries are
    /// dropped and a lone `*` allows every origin.
    pub fn new(entries: &[String]) -> Self {
        let entries: Vec<String> = entries
            .iter()
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect();
        if entries.iter().any(|e| e == "*") {
            AllowedOrigins::Any
        } else {
            AllowedOrigins::Listed(entries)
        }
    }

    /// Whether a request with this `Origin` header value may act cross-origin. `null` and an
    /// empty value are not allowed (except with [`AllowedOrigins::Any`]).
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::Listed(entries) => {
                is_local_origin(origin)
                    || entries.iter().any(|e| {
                        // As MLflow: fnmatch only for entries with a `*`, else exact and
                        // case-sensitive.
                        if e.contains('*') {
                            glob(e.as_bytes(), origin.as_bytes())
                        } else {
                            e == origin
                        }
                    })
            }
        }
    }

    /// Whether a `method` request with this `Origin` value is refused: a state-changing method
    /// with an origin that is present and not allowed.
    pub fn blocks(&self, origin: &str, method: &Method) -> bool {
        let state_changing = matches!(
            *method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        );
        state_changing && !origin.is_empty() && !self.allows(origin)
    }
}

/// MLflow's `is_localhost_origin`: the origin's host (as Python's `urlparse` reads it) is
/// `localhost`, `127.0.0.1` or `::1`, whatever the scheme and port.
fn is_local_origin(origin: &str) -> bool {
    origin_host(origin).is_some_and(|h| matches!(h.as_str(), "localhost" | "127.0.0.1" | "::1"))
}

/// The lowercased host of `scheme://[user@]host[:port][/...]` (IPv6 without brackets), or
/// `None` when there is no `//` authority (as in `null`).
fn origin_host(origin: &str) -> Option<String> {
    let rest = match origin.split_once(':') {
        Some((scheme, rest))
            if scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            rest
        }
        _ => origin,
    };
    let authority = rest.strip_prefix("//")?;
    let authority = authority.split(['/', '?', '#']).next().unwrap_or(authority);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        None => host_port.split(':').next().unwrap_or(host_port),
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// What the cross-origin middleware needs: the policy and where the API lives.
#[derive(Debug, Clone)]
pub struct OriginCheck {
    /// The policy.
    pub policy: AllowedOrigins,
    /// Path prefixes of the API (`/api/`, `/ajax-api/`, with the static prefix).
    pub api_prefixes: [String; 2],
    /// Whether a same-origin request (its `Origin` names the very host and port of its `Host`
    /// header) passes whatever the policy: the server's own web UI, opened at an address that
    /// is not local (a LAN IP, a DNS name in `allowed_hosts`). Only when the `Host` header is
    /// checked: with `allowed_hosts = ["*"]` a DNS-rebinding page would be "same-origin" too.
    pub same_origin: bool,
}

impl OriginCheck {
    /// The check for `policy`, on the API under `prefix` (`""` for none); same-origin requests
    /// pass (see [`OriginCheck::same_origin`]).
    pub fn new(policy: AllowedOrigins, prefix: &str) -> Self {
        OriginCheck {
            policy,
            api_prefixes: [format!("{prefix}/api/"), format!("{prefix}/ajax-api/")],
            same_origin: true,
        }
    }

    /// Whether `origin` is the origin of a request to `host` (the `Host` header).
    fn is_same_origin(&self, origin: &str, host: Option<&str>) -> bool {
        let Some(host) = host else { return false };
        if !self.same_origin {
            return false;
        }
        let Some((scheme, rest)) = origin.split_once("://") else {
            return false;
        };
        let authority = rest.to_ascii_lowercase();
        let host = host.trim().to_ascii_lowercase();
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "http" => ":80",
            "https" => ":443",
            _ => return false,
        };
        !authority.is_empty()
            && !authority.contains(['/', '@', '?', '#'])
            && (authority == host
                || format!("{authority}{default_port}") == host
                || authority == format!("{host}{default_port}"))
    }

    fn is_api(&self, path: &str) -> bool {
        self.api_prefixes.iter().any(|p| path.starts_with(p))
    }
}

/// Middleware on API paths: refuses cross-origin state changes from origins the policy does not
/// allow, answers `OPTIONS` (CORS preflights) with 204, and adds the CORS response headers.
pub async fn check_origin(
    State(check): State<Arc<OriginCheck>>,
    req: Request,
    next: Next,
) -> Response {
    if !check.is_api(req.uri().path()) {
        return next.run(req).await;
    }
    let policy = &check.policy;
    let origin = req.headers().get(header::ORIGIN).cloned();
    let origin_text = origin
        .as_ref()
        .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned())
        .unwrap_or_default();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if policy.blocks(&origin_text, req.method()) && !check.is_same_origin(&origin_text, host) {
        tracing::warn!(origin = %origin_text, "blocked a cross-origin request");
        return forbidden(CORS_BLOCKED_MESSAGE);
    }
    let allow_origin = match (&origin, policy) {
        (Some(_), AllowedOrigins::Any) => Some(HeaderValue::from_static("*")),
        (Some(o), _) if !origin_text.is_empty() && policy.allows(&origin_text) => Some(o.clone()),
        _ => None,
    };
    let mut response = if req.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let preflight = req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight && allow_origin.is_some() {
            let h = response.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(CORS_ALLOW_METHODS),
            );
            if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(CORS_MAX_AGE),
            );
        }
        response
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    if let Some(value) = allow_origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if *policy != AllowedOrigins::Any {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// The headers MLflow's security middleware adds to every response.
pub const SECURITY_HEADERS: [(&str, &str); 2] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_default_allows_local_names_with_any_port() {
        let p = AllowedHosts::new(&[], "127.0.0.1");
        assert_eq!(p, AllowedHosts::Loopback);
        for ok in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:80",
            "LOCALHOST:1",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:5000",
            "10.0.0.1:5000",
            "localhost.evil.com",
            "",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
    }

    #[test]
    fn other_binds_default_to_mlflow_private_ranges() {
        let p = AllowedHosts::new(&[], "0.0.0.0");
        for ok in [
            "localhost:5000",
            "10.1.2.3:5000",
            "172.16.0.1",
            "192.168.1.1:80",
            "[fd00::1]:5000",
            "0.0.0.0:5000",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "172.32.0.1",
            "8.8.8.8:5000",
            "mlflow.example.com",
            "attacker.test:5000",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
        let p = AllowedHosts::new(&[], "203.0.113.7");
        assert!(p.allows("203.0.113.7:5000"));
        assert!(!p.allows("203.0.113.8:5000"));
    }

    #[test]
    fn configured_patterns_match_with_or_without_port() {
        let p = AllowedHosts::new(
            &["mlflow.example.com".into(), "*.corp.test".into()],
            "0.0.0.0",
        );
        assert!(p.allows("mlflow.example.com"));
        assert!(p.allows("mlflow.example.com:5000"));
        assert!(p.allows("a.b.corp.test:443"));
        assert!(!p.allows("localhost:5000"));
        assert!(!p.allows("example.com"));
        assert_eq!(
            AllowedHosts::new(&["*".into()], "127.0.0.1"),
            AllowedHosts::Any
        );
    }

    #[test]
    fn local_origins_are_allowed_whatever_the_scheme_and_port() {
        let p = AllowedOrigins::new(&[]);
        assert_eq!(p, AllowedOrigins::default());
        for ok in [
            "http://localhost",
            "http://localhost:3000",
            "https://localhost:8443",
            "http://LOCALHOST:1",
            "http://127.0.0.1:5000",
            "http://[::1]:80",
            "http://[::1]",
            "http://user@localhost:3000",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "null",
            "",
            "http://evil.example.com",
            "http://localhost.evil.com",
            "http://evil.com/localhost",
            "http://localhost@evil.com",
            "http://127.0.0.2:5000",
            "http://[::2]:80",
            "http://[::1",
            "localhost:3000",
            "http://0.0.0.0:5000",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
    }

    #[test]
    fn configured_origins_match_exactly_or_as_patterns() {
        let p = AllowedOrigins::new(&[
            " https://app.example.com ".into(),
            "https://*.corp.test".into(),
            String::new(),
        ]);
        assert!(p.allows("https://app.example.com"));
        assert!(p.allows("https://a.b.corp.test"));
        assert!(p.allows("http://localhost:3000"));
        // Exact entries are case-sensitive and compared whole, as MLflow.
        assert!(!p.allows("https://APP.example.com"));
        assert!(!p.allows("https://app.example.com:8443"));
        assert!(!p.allows("http://app.example.com"));
        assert!(!p.allows("https://corp.test"));
        assert!(!p.allows("null"));
        // `?` is literal in an entry without `*`.
        let p = AllowedOrigins::new(&["https://a?.test".into()]);
        assert!(!p.allows("https://ab.test"));
        assert_eq!(
            AllowedOrigins::new(&["https://x.test".into(), "*".into()]),
            AllowedOrigins::Any
        );
    }

    #[test]
    fn only_state_changes_from_foreign_origins_are_blocked() {
        let p = AllowedOrigins::default();
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(p.blocks("http://evil.example.com", &m), "{m}");
            assert!(p.blocks("null", &m), "{m}");
            assert!(!p.blocks("http://localhost:3000", &m), "{m}");
            // No Origin header (an empty one counts as none, as MLflow): not cross-origin.
            assert!(!p.blocks("", &m), "{m}");
        }
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!p.blocks("http://evil.example.com", &m), "{m}");
        }
        let any = AllowedOrigins::new(&["*".into()]);
        assert!(!any.blocks("http://evil.example.com", &Method::POST));
        assert!(!any.blocks("null", &Method::DELETE));
    }

    #[test]
    fn same_origin_is_the_host_header_with_the_scheme_default_port() {
        let c = OriginCheck::new(AllowedOrigins::default(), "");
        for (origin, host) in [
            ("http://10.0.0.5:5000", "10.0.0.5:5000"),
            ("http://mlflow.corp", "mlflow.corp"),
            ("https://mlflow.corp", "mlflow.corp:443"),
            // Behind a TLS-terminating proxy the server cannot know the scheme: the Host
            // header names no port.
            ("https://mlflow.corp", "mlflow.corp"),
            ("http://MLflow.corp:80", "mlflow.corp"),
        ] {
            assert!(c.is_same_origin(origin, Some(host)), "{origin} {host}");
        }
        for (origin, host) in [
            ("http://evil.example", "10.0.0.5:5000"),
            ("http://10.0.0.5:5001", "10.0.0.5:5000"),
            ("https://mlflow.corp", "mlflow.corp:80"),
            ("null", "mlflow.corp"),
            ("http://u@mlflow.corp", "mlflow.corp"),
            ("file://mlflow.corp", "mlflow.corp"),
        ] {
            assert!(!c.is_same_origin(origin, Some(host)), "{origin} {host}");
        }
        assert!(!c.is_same_origin("http://a", None));
        let off = OriginCheck {
            same_origin: false,
            ..c
        };
        assert!(!off.is_same_origin("http://10.0.0.5:5000", Some("10.0.0.5:5000")));
    }

    #[test]
    fn api_paths_follow_the_static_prefix() {
        let c = OriginCheck::new(AllowedOrigins::default(), "");
        assert!(c.is_api("/api/2.0/mlflow/experiments/create"));
        assert!(c.is_api("/ajax-api/2.0/mlflow/runs/create"));
        assert!(!c.is_api("/health"));
        assert!(!c.is_api("/apis/x"));
        let c = OriginCheck::new(AllowedOrigins::default(), "/mlflow");
        assert!(c.is_api("/mlflow/api/2.0/mlflow/experiments/create"));
        assert!(!c.is_api("/api/2.0/mlflow/experiments/create"));
    }

    #[test]
    fn glob_matches_like_fnmatch() {
        assert!(glob(b"10.*", b"10.0.0.1"));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"abbc"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"abc", b"abcd"));
    }
}
