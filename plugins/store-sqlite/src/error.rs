//! The store's private error type, converted to [`cairn_plugin_api::Error`] at the boundary.

use cairn_plugin_api::{Error, ErrorKind};

/// Everything that can go wrong inside the store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// An error already in boundary form (validation, not found, ...): passed through as is.
    #[error("{0}")]
    Api(#[from] Error),
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store's threads are gone (the store is shutting down, or a thread panicked).
    #[error("the SQLite store's worker thread is gone")]
    Closed,
    /// A row holds something the schema does not allow.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub(crate) type StoreResult<T> = std::result::Result<T, StoreError>;

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Api(e) => e,
            StoreError::Sqlite(e) => {
                let busy = matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                );
                if busy {
                    Error::new(
                        ErrorKind::Unavailable,
                        "the database is busy; try again later",
                    )
                    .with_source(e)
                } else {
                    Error::internal("SQLite store failure").with_source(e)
                }
            }
            StoreError::Closed => {
                Error::new(ErrorKind::Unavailable, StoreError::Closed.to_string())
            }
            StoreError::Corrupt(m) => {
                Error::internal(format!("corrupt row in the SQLite store: {m}"))
            }
        }
    }
}

/// Shorthand for an `InvalidArgument` store error.
pub(crate) fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::Api(Error::invalid(message))
}

/// Shorthand for a `NotFound` store error.
pub(crate) fn not_found(message: impl Into<String>) -> StoreError {
    StoreError::Api(Error::not_found(message))
}
