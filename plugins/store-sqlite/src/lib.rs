//! # cairn-store-sqlite — Cairn's embedded tracking store on SQLite
//!
//! The default backend of `cairn server`: one database file (or an in-memory database) holds
//! experiments, runs, params, tags, the full metric history, datasets and inputs, and MLflow 3
//! LoggedModels. It implements [`cairn_plugin_api::TrackingStore`] and registers itself for
//! the URI scheme [`SCHEME`].
//!
//! URIs are those MLflow writes: `sqlite:///relative.db` (relative to the working directory),
//! `sqlite:////absolute/path.db`, and `sqlite://` or `sqlite:///:memory:` for a private
//! in-memory database. Settings come from the plugin's config section ([`SqliteSettings`]).
//!
//! Design:
//! - **Threads, not a runtime.** SQLite work runs on the store's own threads: one writer
//!   thread owns the only read-write connection, a few reader threads serve reads concurrently
//!   (WAL mode), as plugin-api's [`BlockingPool`](cairn_plugin_api::blocking::BlockingPool)s;
//!   results come back through oneshots. No async executor is
//!   ever blocked and no tokio is needed, so the store also works inside a shared library.
//! - **One transaction per write call.** A `log_batch` of 1000 metrics (validated completely by
//!   the host's `Validated` layer first) is written in one transaction: all or nothing.
//! - **Searches in SQL.** Filters and orderings become SQL with bound parameters (never rows
//!   filtered in memory), over a `latest_metrics` table kept up to date on every write. Pages
//!   are keyset pages, so deep pages cost what the first does.
//! - **Never touches a foreign file.** A database that is not Cairn's (for example an MLflow
//!   `mlflow.db`) is refused before anything is written; see [`schema`].
//! - **Model registry in the same file.** [`SqliteStore`] also implements
//!   [`cairn_plugin_api::ModelRegistryStore`], registered for the same scheme. The registry
//!   factory opens its own store instance on the URI (the registry URI defaults to the tracking
//!   URI): two instances on one file share it safely through WAL, each with one writer thread,
//!   and `busy_timeout` absorbs contention between their writers. An in-memory URI gives the
//!   registry its own private database.
//! - **Metric values.** NaN is kept as NaN (a `NULL` plus a flag in the search tables, so it
//!   never matches a comparison and sorts with missing values); ±Inf are stored as real
//!   infinities, not clamped to ±f64::MAX as MLflow's SQL store does.

mod auth;
mod config;
mod error;
mod pool;
mod registry;
pub mod schema;
mod search_sql;
mod store;

pub use config::{SqliteSettings, Synchronous};
pub use store::{SqliteStore, open, open_with_settings};

use cairn_plugin_api::{
    AuthStore, Build, BuildContext, ModelRegistryStore, PluginFactory, Result, TrackingStore,
};
use std::sync::Arc;

/// The URI scheme this store serves.
pub const SCHEME: &str = "sqlite";

/// Builds the store from the host's context: the URI, the default artifact root and the
/// `[settings.sqlite]` settings.
pub fn build_tracking_store(ctx: &BuildContext) -> Result<Arc<dyn TrackingStore>> {
    let settings: SqliteSettings = ctx.settings()?;
    let store = open_with_settings(
        ctx.require_uri()?,
        ctx.default_artifact_root.as_deref(),
        &settings,
    )?;
    Ok(Arc::new(store))
}

cairn_plugin_api::inventory::submit! {
    PluginFactory {
        name: SCHEME,
        plugin: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        build: Build::TrackingStore(build_tracking_store),
    }
}

/// Builds the model registry store from the host's context, on the same kind of URI (and
/// usually the same file) as the tracking store.
pub fn build_model_registry_store(ctx: &BuildContext) -> Result<Arc<dyn ModelRegistryStore>> {
    let settings: SqliteSettings = ctx.settings()?;
    let store = open_with_settings(
        ctx.require_uri()?,
        ctx.default_artifact_root.as_deref(),
        &settings,
    )?;
    Ok(Arc::new(store))
}

cairn_plugin_api::inventory::submit! {
    PluginFactory {
        name: SCHEME,
        plugin: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        build: Build::ModelRegistryStore(build_model_registry_store),
    }
}

/// Builds the basic-auth app's store of users and grants (tables of the same database file,
/// schema version 3) from the host's context.
pub fn build_auth_store(ctx: &BuildContext) -> Result<Arc<dyn AuthStore>> {
    let settings: SqliteSettings = ctx.settings()?;
    let store = open_with_settings(
        ctx.require_uri()?,
        ctx.default_artifact_root.as_deref(),
        &settings,
    )?;
    Ok(Arc::new(store))
}
