//! # cairn-store-postgres — Cairn's tracking and model-registry store on PostgreSQL
//!
//! The store for deployments beyond one machine: several stateless `cairn server` replicas on
//! one PostgreSQL database. It implements [`cairn_plugin_api::TrackingStore`] and
//! [`cairn_plugin_api::ModelRegistryStore`] and registers itself for the URI schemes
//! `postgresql` and `postgres`; the host maps MLflow's SQLAlchemy spelling
//! `postgresql+psycopg2://` to `postgresql` (URIs `user:password@host:port/database?options`,
//! all three accepted by [`schema::parse_uri`]). Settings come from
//! `[settings.postgres]`, whatever the scheme ([`PostgresSettings`]).
//!
//! Design:
//! - **Its own runtime.** `tokio-postgres` needs tokio; the store owns one multi-thread runtime
//!   and a `deadpool-postgres` pool, and results come back through oneshots, so any executor
//!   may drive the store and no tokio handle crosses the plugin API.
//! - **One transaction per call.** Writes lock the row they build on (`FOR UPDATE` on the run,
//!   the LoggedModel, the registered model) first, so concurrent writers from any replica
//!   serialise per entity: a `log_batch` is all or nothing, the latest-metric row is always
//!   the greatest `(step, timestamp, value)`, and model version numbers are allocated under the
//!   model's row lock without duplicates or gaps. Reads run in one REPEATABLE READ snapshot.
//! - **Statistics that follow the writes** (`stats.rs`): tables a burst of writes changed by a
//!   fifth are analysed by the store within about a second, not on autovacuum's next round.
//! - **Searches in SQL,** by the translation shared with the SQLite store
//!   ([`cairn_plugin_api::search::sql`], PostgreSQL dialect): bound parameters only, keyset
//!   pages whose tokens carry the last row's sort keys, so any replica answers any token.
//! - **Never touches a foreign database.** See [`schema`]: versioned migrations under an
//!   advisory lock; a newer schema, MLflow's tables or any other tables are refused untouched.
//! - **TLS through rustls** where the URI asks (`sslmode=prefer|require|verify-ca|verify-full`,
//!   `sslrootcert`), as libpq reads them: see [`tls`].

mod config;
mod db;
mod error;
mod registry;
pub mod schema;
mod stats;
mod store;
pub mod tls;

pub use config::PostgresSettings;
pub use schema::SCHEMES;
pub use store::{PostgresStore, open, open_with_settings};

use cairn_plugin_api::{
    Build, BuildContext, ModelRegistryStore, PluginFactory, Result, TrackingStore,
};
use std::sync::Arc;

fn build(ctx: &BuildContext) -> Result<PostgresStore> {
    let settings: PostgresSettings = ctx.settings()?;
    open_with_settings(
        ctx.require_uri()?,
        ctx.default_artifact_root.as_deref(),
        &settings,
    )
}

/// One connection (outside any pool) to the database of `uri` (TLS as its `sslmode` asks),
/// its connection task spawned on the current tokio runtime: for tools that read a PostgreSQL
/// database that is not a Cairn store (`cairn import` reading MLflow's). Errors never carry
/// the password.
pub async fn connect(uri: &str) -> Result<tokio_postgres::Client> {
    let (config, tls) = schema::parse_uri_tls(uri)?;
    let tls = tls::connector(&tls).map_err(cairn_plugin_api::Error::invalid)?;
    let (client, connection) = config.connect(tls).await.map_err(|e| {
        cairn_plugin_api::Error::invalid(format!(
            "cannot connect to PostgreSQL: {}",
            store::chain(&e)
        ))
    })?;
    // A connection that ends with an error fails the client's next query, which reports it.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Builds the tracking store from the host's context.
pub fn build_tracking_store(ctx: &BuildContext) -> Result<Arc<dyn TrackingStore>> {
    Ok(Arc::new(build(ctx)?))
}

/// Builds the model registry store from the host's context (usually the same database).
pub fn build_model_registry_store(ctx: &BuildContext) -> Result<Arc<dyn ModelRegistryStore>> {
    Ok(Arc::new(build(ctx)?))
}

macro_rules! register {
    ($scheme:literal) => {
        cairn_plugin_api::inventory::submit! {
            PluginFactory {
                name: $scheme,
                plugin: env!("CARGO_PKG_NAME"),
                version: env!("CARGO_PKG_VERSION"),
                build: Build::TrackingStore(build_tracking_store),
            }
        }
        cairn_plugin_api::inventory::submit! {
            PluginFactory {
                name: $scheme,
                plugin: env!("CARGO_PKG_NAME"),
                version: env!("CARGO_PKG_VERSION"),
                build: Build::ModelRegistryStore(build_model_registry_store),
            }
        }
    };
}

register!("postgresql");
register!("postgres");
