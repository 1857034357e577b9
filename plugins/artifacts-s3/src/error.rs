//! `object_store` errors converted to [`cairn_plugin_api::Error`] at the boundary.
//!
//! Only "not found" and "invalid path" reach an MLflow client as such. Failures of the
//! server's own access to S3 — refused credentials, an unreachable endpoint, a missing bucket —
//! are the operator's to fix, so they are `Internal` (logged with their cause, not shown to
//! clients) or `Unavailable` (retrying may help), never a 401/403 that a client would take
//! for its own.

use cairn_plugin_api::{Error, ErrorKind};

/// `e` from an operation on the artifact path `rel`, as a boundary error.
pub(crate) fn from_store(e: object_store::Error, rel: &str) -> Error {
    use object_store::Error as E;
    let (kind, message) = match &e {
        E::NotFound { .. } => (ErrorKind::NotFound, format!("No such artifact: '{rel}'")),
        E::InvalidPath { .. } => (
            ErrorKind::InvalidArgument,
            cairn_plugin_api::paths::INVALID_PATH_MESSAGE.to_string(),
        ),
        E::NotSupported { .. } | E::NotImplemented { .. } => (
            ErrorKind::Unsupported,
            format!("the S3 store does not support this operation on '{rel}'"),
        ),
        E::AlreadyExists { .. } | E::Precondition { .. } => (
            ErrorKind::Unavailable,
            format!("'{rel}' changed concurrently; try again"),
        ),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => (
            ErrorKind::Internal,
            "S3 refused the server's credentials".to_string(),
        ),
        _ => (
            ErrorKind::Internal,
            format!("S3 request failed for '{rel}'"),
        ),
    };
    Error::new(kind, message)
        .with_context("path", rel)
        .with_source(e)
}

/// A failure that is not one request's: the client could not be built, a task vanished.
pub(crate) fn internal(message: impl Into<String>) -> Error {
    Error::internal(message)
}
