//! The store's private error type, converted to [`cairn_plugin_api::Error`] at the boundary.

use cairn_plugin_api::{Error, ErrorKind};
use tokio_postgres::error::SqlState;

/// Everything that can go wrong inside the store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// An error already in boundary form (validation, not found, ...): passed through as is.
    #[error("{0}")]
    Api(#[from] Error),
    /// PostgreSQL (or the connection to it) failed.
    #[error("postgres: {0}")]
    Pg(#[from] tokio_postgres::Error),
    /// No pooled connection could be had.
    #[error("the PostgreSQL connection pool: {0}")]
    Pool(String),
    /// A row holds something the schema does not allow.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub(crate) type StoreResult<T> = std::result::Result<T, StoreError>;

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::Pg(e),
            e => StoreError::Pool(e.to_string()),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Api(e) => e,
            StoreError::Pg(e) => {
                let code = e.code().cloned();
                match code {
                    // A concurrent writer took the name (or key) first.
                    Some(c) if c == SqlState::UNIQUE_VIOLATION => Error::already_exists(format!(
                        "the entity already exists ({})",
                        e.as_db_error().map(|d| d.message()).unwrap_or_default()
                    )),
                    // Limits and types of a request the store cannot run: the caller's to fix.
                    Some(c)
                        if c == SqlState::PROGRAM_LIMIT_EXCEEDED
                            || c == SqlState::STATEMENT_TOO_COMPLEX
                            || c == SqlState::TOO_MANY_COLUMNS
                            || c == SqlState::UNDEFINED_FUNCTION
                            || c == SqlState::DATATYPE_MISMATCH
                            || c == SqlState::INVALID_TEXT_REPRESENTATION
                            || c == SqlState::NUMERIC_VALUE_OUT_OF_RANGE
                            || c == SqlState::CHARACTER_NOT_IN_REPERTOIRE
                            || c == SqlState::UNTRANSLATABLE_CHARACTER =>
                    {
                        Error::invalid(format!(
                            "The request cannot be run by the PostgreSQL store: {}",
                            e.as_db_error().map(|d| d.message()).unwrap_or_default()
                        ))
                    }
                    // A bad RLIKE pattern in a trace search (`~`), as the SQLite store's
                    // `regexp()` reports one.
                    Some(c) if c == SqlState::INVALID_REGULAR_EXPRESSION => {
                        Error::invalid(format!(
                            "Invalid regular expression in the filter: {}",
                            e.as_db_error().map(|d| d.message()).unwrap_or_default()
                        ))
                    }
                    Some(c)
                        if c == SqlState::T_R_SERIALIZATION_FAILURE
                            || c == SqlState::T_R_DEADLOCK_DETECTED
                            || c == SqlState::LOCK_NOT_AVAILABLE
                            || c == SqlState::QUERY_CANCELED
                            || c == SqlState::ADMIN_SHUTDOWN
                            || c == SqlState::CANNOT_CONNECT_NOW
                            || c == SqlState::TOO_MANY_CONNECTIONS =>
                    {
                        Error::new(
                            ErrorKind::Unavailable,
                            "the database is busy; try again later",
                        )
                        .with_source(e)
                    }
                    _ if e.is_closed() || e.as_db_error().is_none() => Error::new(
                        ErrorKind::Unavailable,
                        "the PostgreSQL server cannot be reached; try again later",
                    )
                    .with_source(e),
                    _ => Error::internal("PostgreSQL store failure").with_source(e),
                }
            }
            StoreError::Pool(m) => Error::new(
                ErrorKind::Unavailable,
                format!("no PostgreSQL connection available: {m}"),
            ),
            StoreError::Corrupt(m) => {
                Error::internal(format!("corrupt row in the PostgreSQL store: {m}"))
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
