//! [`ApiError`]: the one error type of the HTTP edge, written in MLflow's error shape.
//!
//! Every failure a client sees — a plugin error, a malformed body, a missing parameter, an
//! unknown route, a body over the limit — is answered as
//! `{"error_code": "...", "message": "..."}` with the HTTP status MLflow uses for that code
//! (api.md §0). Internal errors keep their detail in the server log and show clients a
//! generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_plugin_api::{Error as PluginError, ErrorKind};

/// What clients see instead of an internal error's detail.
pub const INTERNAL_MESSAGE: &str =
    "An internal error occurred while processing the request. See the server logs for details.";

/// The suffix MLflow appends to request-validation messages.
pub const SEE_API_DOCS: &str = "See the API docs for more information about request parameters.";

/// An error answered in MLflow's JSON error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// MLflow's `error_code`, e.g. `INVALID_PARAMETER_VALUE`.
    pub error_code: &'static str,
    /// The message shown to the client.
    pub message: String,
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, error_code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error_code,
            message: message.into(),
        }
    }

    /// `INVALID_PARAMETER_VALUE` (400) with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", message)
    }

    /// `RESOURCE_DOES_NOT_EXIST` (404) with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", message)
    }

    /// `NOT_IMPLEMENTED` (501) with `message`.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, "NOT_IMPLEMENTED", message)
    }

    /// `ENDPOINT_NOT_FOUND` (404) for a request no route serves.
    pub fn endpoint_not_found(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ENDPOINT_NOT_FOUND",
            format!("No API endpoint for {method} {path}"),
        )
    }

    /// MLflow's message for a required parameter that is absent or empty.
    pub fn missing(param: &str) -> Self {
        Self::invalid(format!(
            "{} {SEE_API_DOCS}",
            cairn_plugin_api::validation::missing_value_message(param)
        ))
    }

    /// A 500 `INTERNAL_ERROR` whose `detail` is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(detail = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            INTERNAL_MESSAGE,
        )
    }

    /// The JSON body: `{"error_code": ..., "message": ...}`.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "error_code": self.error_code,
            "message": self.message,
        }))
        .unwrap_or_else(|_| b"{}".to_vec())
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        if e.kind == ErrorKind::Internal {
            // `Display` carries the context pairs; the cause chain follows.
            let mut detail = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                detail.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            return ApiError::internal(detail);
        }
        if e.kind == ErrorKind::Unavailable {
            tracing::warn!(error = %e, "backing service unavailable");
        }
        let status =
            StatusCode::from_u16(e.kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, e.kind.error_code(), e.message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.error_code, self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_errors_keep_kind_status_and_message() {
        let e = ApiError::from(PluginError::already_exists(
            "Experiment(name=x) already exists.",
        ));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.error_code, "RESOURCE_ALREADY_EXISTS");
        assert_eq!(e.message, "Experiment(name=x) already exists.");
        let e = ApiError::from(PluginError::unsupported("search_logged_models"));
        assert_eq!(e.status, StatusCode::NOT_IMPLEMENTED);
        assert_eq!(e.error_code, "NOT_IMPLEMENTED");
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let e = ApiError::from(
            PluginError::internal("disk I/O error at /secret/path").with_context("db", "x"),
        );
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.error_code, "INTERNAL_ERROR");
        assert!(!e.message.contains("/secret/path"));
        let body: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(body["error_code"], "INTERNAL_ERROR");
        assert_eq!(body["message"], INTERNAL_MESSAGE);
    }

    #[test]
    fn missing_parameter_uses_mlflow_wording() {
        assert_eq!(
            ApiError::missing("name").message,
            "Missing value for required parameter 'name'. See the API docs for more \
             information about request parameters."
        );
    }
}
