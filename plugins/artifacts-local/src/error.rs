//! The repository's private error type, converted to [`cairn_plugin_api::Error`] at the
//! boundary. Messages shown to clients name artifact paths relative to the root, never the
//! server's absolute paths (those go into the error's log context only).

use cairn_plugin_api::blocking::BlockingError;
use cairn_plugin_api::{Error, ErrorKind};
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong inside the repository.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LocalError {
    /// An error already in boundary form (invalid path, not found, ...).
    #[error("{0}")]
    Api(#[from] Error),
    /// A file system call failed unexpectedly.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The absolute path it was done to.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The I/O threads are gone or a job panicked.
    #[error(transparent)]
    Pool(#[from] BlockingError),
}

pub(crate) type LocalResult<T> = std::result::Result<T, LocalError>;

/// A file system failure of `op` on `path`.
pub(crate) fn io_err(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> LocalError {
    LocalError::Io {
        op,
        path: path.into(),
        source,
    }
}

/// `NotFound` naming the artifact path as MLflow does.
pub(crate) fn no_such_artifact(rel: &str) -> LocalError {
    LocalError::Api(Error::not_found(format!("No such artifact: '{rel}'")))
}

/// A path that resolves outside the root (through a symlink): refused like any unsafe path.
pub(crate) fn escapes_root(rel: &str) -> LocalError {
    LocalError::Api(
        Error::invalid(cairn_plugin_api::paths::INVALID_PATH_MESSAGE)
            .with_context("path", rel)
            .with_context("reason", "resolves outside the artifact root"),
    )
}

impl From<LocalError> for Error {
    fn from(e: LocalError) -> Self {
        match e {
            LocalError::Api(e) => e,
            LocalError::Io { op, path, source } => {
                let kind = match source.kind() {
                    io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                        ErrorKind::Unavailable
                    }
                    _ => ErrorKind::Internal,
                };
                Error::new(kind, format!("local artifact repository: {op} failed"))
                    .with_context("path", path.display())
                    .with_source(source)
            }
            LocalError::Pool(p) => p.into(),
        }
    }
}
