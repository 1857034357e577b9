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

/// SQLite's messages for a statement over one of its limits: the request was too big for
/// the store, which is the caller's to fix (`InvalidArgument`), not a store failure.
const LIMIT_MESSAGES: [&str; 9] = [
    "too many SQL variables",
    "Expression tree is too large",
    "too many columns",
    "too many terms",
    "too many FROM clause terms",
    "tables in a join",
    "parser stack overflow",
    "string or blob too big",
    "pattern too complex",
];

/// Whether `e` says a statement went over one of SQLite's limits.
fn is_limit(e: &rusqlite::Error) -> bool {
    let text = e.to_string();
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::TooBig)
        || LIMIT_MESSAGES.iter().any(|m| text.contains(m))
}

/// How the store's `regexp()` starts the message of a pattern it cannot compile.
pub(crate) const REGEX_ERROR: &str = "Invalid regular expression '";

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
                } else if is_limit(&e) {
                    Error::invalid(format!(
                        "The request is too large for the SQLite store ({}); split it into \
                         smaller ones",
                        e.to_string().lines().next().unwrap_or_default()
                    ))
                    .with_source(e)
                } else if let Some(m) = e
                    .to_string()
                    .find(REGEX_ERROR)
                    .map(|i| e.to_string()[i..].to_string())
                {
                    // A bad RLIKE pattern, reported by the store's `regexp()`.
                    Error::invalid(m)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_limits_are_invalid_arguments_not_internal_errors() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let deep = format!("SELECT 1 WHERE {}1", "1 = 1 AND ".repeat(1100));
        let columns = format!("SELECT {}1", "1, ".repeat(2100));
        for sql in [deep, columns] {
            let e = conn.prepare(&sql).map(|_| ()).unwrap_err();
            let e = Error::from(StoreError::Sqlite(e));
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{}", e.message);
            assert!(e.message.contains("too large"), "{}", e.message);
        }
        let other = conn
            .prepare("SELECT * FROM nowhere")
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            Error::from(StoreError::Sqlite(other)).kind,
            ErrorKind::Internal
        );
    }
}
