//! The one error type that crosses the plugin boundary.
//!
//! Plugins keep their own private error enums and convert them into [`Error`] at the boundary.
//! [`ErrorKind`] maps one-to-one onto MLflow's `error_code` strings and HTTP statuses, so the
//! host can answer any plugin failure in MLflow's error shape without knowing the plugin.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong, in the terms MLflow clients understand.
///
/// Non-exhaustive: kinds may be added in a minor version, so a `match` outside this crate
/// keeps a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The entity does not exist: `RESOURCE_DOES_NOT_EXIST`, HTTP 404.
    NotFound,
    /// An entity with that identity already exists: `RESOURCE_ALREADY_EXISTS`, HTTP **400** (as MLflow).
    AlreadyExists,
    /// The request is malformed or violates a rule: `INVALID_PARAMETER_VALUE`, HTTP 400.
    InvalidArgument,
    /// The entity is in a state that forbids the operation where MLflow reports `INVALID_STATE`
    /// (for example renaming a deleted experiment): HTTP 500, as MLflow answers it.
    InvalidState,
    /// The caller lacks permission: `PERMISSION_DENIED`, HTTP 403.
    PermissionDenied,
    /// The caller is not authenticated: `UNAUTHENTICATED`, HTTP 401.
    Unauthenticated,
    /// The plugin does not implement this operation: `NOT_IMPLEMENTED`, HTTP 501.
    Unsupported,
    /// A backing service is down or overloaded; retrying may help: `TEMPORARILY_UNAVAILABLE`, HTTP 503.
    Unavailable,
    /// A bug or an unexpected failure: `INTERNAL_ERROR`, HTTP 500. Its message is not shown to clients.
    Internal,
}

impl ErrorKind {
    /// MLflow's `error_code` string for this kind.
    pub fn error_code(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "RESOURCE_DOES_NOT_EXIST",
            ErrorKind::AlreadyExists => "RESOURCE_ALREADY_EXISTS",
            ErrorKind::InvalidArgument => "INVALID_PARAMETER_VALUE",
            ErrorKind::InvalidState => "INVALID_STATE",
            ErrorKind::PermissionDenied => "PERMISSION_DENIED",
            ErrorKind::Unauthenticated => "UNAUTHENTICATED",
            ErrorKind::Unsupported => "NOT_IMPLEMENTED",
            ErrorKind::Unavailable => "TEMPORARILY_UNAVAILABLE",
            ErrorKind::Internal => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status MLflow answers with for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::AlreadyExists | ErrorKind::InvalidArgument => 400,
            ErrorKind::InvalidState | ErrorKind::Internal => 500,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Unsupported => 501,
            ErrorKind::Unavailable => 503,
        }
    }

    /// The kind for an MLflow `error_code`; unknown codes are [`ErrorKind::Internal`], as MLflow
    /// maps unknown codes to HTTP 500.
    pub fn from_error_code(code: &str) -> ErrorKind {
        match code {
            "RESOURCE_DOES_NOT_EXIST" | "NOT_FOUND" | "ENDPOINT_NOT_FOUND" => ErrorKind::NotFound,
            "RESOURCE_ALREADY_EXISTS" => ErrorKind::AlreadyExists,
            "INVALID_PARAMETER_VALUE" | "BAD_REQUEST" => ErrorKind::InvalidArgument,
            "INVALID_STATE" => ErrorKind::InvalidState,
            "PERMISSION_DENIED" => ErrorKind::PermissionDenied,
            "UNAUTHENTICATED" | "CUSTOMER_UNAUTHORIZED" => ErrorKind::Unauthenticated,
            "NOT_IMPLEMENTED" => ErrorKind::Unsupported,
            "TEMPORARILY_UNAVAILABLE" => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.error_code())
    }
}

/// The error every plugin method returns.
///
/// `message` is what an MLflow client shows its user and follows MLflow's wording where MLflow
/// has one. `context` carries extra key/value facts for logs (the plugin, a file, a URI).
/// `source` keeps the underlying cause for logs; it does not cross a shared-library boundary.
#[derive(Debug)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// A human-readable message in MLflow's wording.
    pub message: String,
    /// Extra facts for logs, as `(key, value)` pairs; never sent to clients.
    pub context: Vec<(String, String)>,
    /// The underlying cause, if any.
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Shorthand for results at the plugin boundary.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            context: Vec::new(),
            source: None,
        }
    }

    /// [`ErrorKind::NotFound`] with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// [`ErrorKind::AlreadyExists`] with `message`.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }

    /// [`ErrorKind::InvalidArgument`] with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// [`ErrorKind::Unsupported`] naming the operation that is not implemented.
    pub fn unsupported(operation: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::Unsupported,
            format!("{operation} is not implemented by this plugin"),
        )
    }

    /// [`ErrorKind::Internal`] with `message` (logged, not shown to clients).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Adds a `(key, value)` fact for logs.
    pub fn with_context(mut self, key: impl Into<String>, value: impl fmt::Display) -> Self {
        self.context.push((key.into(), value.to_string()));
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        for (key, value) in &self.context {
            write!(f, " [{key}={value}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The serialisable form of [`Error`]: what crosses a shared-library boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The error's kind.
    pub kind: ErrorKind,
    /// The error's message.
    pub message: String,
    /// The error's context pairs; the cause is flattened into a `cause` entry.
    #[serde(default)]
    pub context: Vec<(String, String)>,
}

impl From<&Error> for ErrorRecord {
    fn from(e: &Error) -> Self {
        let mut context = e.context.clone();
        if let Some(source) = &e.source {
            context.push(("cause".into(), source.to_string()));
        }
        ErrorRecord {
            kind: e.kind,
            message: e.message.clone(),
            context,
        }
    }
}

impl From<ErrorRecord> for Error {
    fn from(r: ErrorRecord) -> Self {
        Error {
            kind: r.kind,
            message: r.message,
            context: r.context,
            source: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_mlflow_codes_and_statuses() {
        let all = [
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::InvalidArgument,
            ErrorKind::InvalidState,
            ErrorKind::PermissionDenied,
            ErrorKind::Unauthenticated,
            ErrorKind::Unsupported,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ];
        for kind in all {
            assert_eq!(ErrorKind::from_error_code(kind.error_code()), kind);
        }
        assert_eq!(ErrorKind::AlreadyExists.http_status(), 400);
        assert_eq!(ErrorKind::NotFound.http_status(), 404);
        assert_eq!(ErrorKind::Unsupported.http_status(), 501);
        assert_eq!(
            ErrorKind::from_error_code("FEATURE_DISABLED"),
            ErrorKind::Internal
        );
    }

    #[test]
    fn record_round_trip_keeps_kind_message_and_cause() {
        let e = Error::invalid("bad")
            .with_context("plugin", "x")
            .with_source(std::io::Error::other("disk"));
        let r = ErrorRecord::from(&e);
        let json = serde_json::to_string(&r).unwrap();
        let back: Error = serde_json::from_str::<ErrorRecord>(&json).unwrap().into();
        assert_eq!(back.kind, ErrorKind::InvalidArgument);
        assert_eq!(back.message, "bad");
        assert!(
            back.context
                .iter()
                .any(|(k, v)| k == "cause" && v == "disk")
        );
    }
}
