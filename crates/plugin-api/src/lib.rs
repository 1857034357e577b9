//! # cairn-plugin-api — the stable contract between Cairn and its plugins
//!
//! Cairn is an ML lifecycle platform built as a plugin host and wire-compatible with MLflow's
//! REST API. Everything a plugin needs is here and nothing else is: no HTTP, no config files,
//! no async runtime. A plugin depends on this crate alone (plus its own backend crates).
//!
//! The six contracts, one module each, each the counterpart of an MLflow plugin interface:
//!
//! | module | trait | chosen by |
//! |---|---|---|
//! | [`tracking`] | [`TrackingStore`] | scheme of the backend store URI (`sqlite:`, ...) |
//! | [`artifacts`] | [`ArtifactRepository`] | scheme of the artifact root (`file:`, `s3:`, ...) |
//! | [`context`] | [`RunContextProvider`] | name, applied in configured order |
//! | [`model_registry`] | [`ModelRegistryStore`] | scheme of the registry URI |
//! | [`projects`] | [`ProjectBackend`] (returns a [`SubmittedRun`]) | name (`local`, `kubernetes`) |
//! | [`flavor`] | [`ModelFlavor`] (loads a [`LoadedModel`]) | flavor name in the `MLmodel` file |
//!
//! Supporting modules: [`entities`] (MLflow's tracking entities as serde types), [`error`] (the
//! one boundary [`Error`]), [`search`] (the filter language: parser, tree, reference
//! evaluator), [`validation`] (MLflow's limits and name rules; [`Validated`] applies the
//! stateless ones once in front of every tracking store the host builds),
//! [`paths`] (the one canonicaliser every artifact path goes through), [`blocking`] (a small
//! thread pool for blocking work, so a plugin never blocks its caller's executor), [`factory`]
//! (how a plugin registers itself), behind the `testkit` feature the conformance
//! suites every plugin runs against itself, and behind the `ffi` feature `ffi`: the stable ABI
//! through which a plugin ships as a shared library (`export_plugins!`).
//!
//! ## Shipping a plugin
//!
//! A vendor ships a plugin as a **shared library** (`crate-type = ["cdylib"]`) built against
//! this crate with the `ffi` feature; out of tree, until the crate is published, the dependency
//! line is `cairn-plugin-api = { path = "<cairn checkout>/crates/plugin-api", version = "0.1.0",
//! features = ["ffi"] }` (the same minor version as the `cairn` binary that loads it). One
//! macro call exports every plugin of the library, each a factory and the scheme or name it
//! serves:
//!
//! ```no_run
//! # #[cfg(feature = "ffi")]
//! # mod library {
//! use cairn_plugin_api::{ArtifactRepository, BuildContext, Result};
//! use std::sync::Arc;
//!
//! /// Called with every root URI Cairn needs a repository for (`vendorfs://bucket/prefix`).
//! fn build(ctx: &BuildContext) -> Result<Arc<dyn ArtifactRepository>> {
//!     open_repository(ctx.require_uri()?)
//! }
//! # fn open_repository(uri: &str) -> Result<Arc<dyn ArtifactRepository>> { unimplemented!() }
//!
//! cairn_plugin_api::export_plugins! {
//!     name: env!("CARGO_PKG_NAME"),
//!     version: env!("CARGO_PKG_VERSION"),
//!     factories: [
//!         ArtifactRepository(build) as "vendorfs",
//!     ],
//! }
//! # }
//! # fn main() {}
//! ```
//!
//! The operator names the library in `cairn.toml` (`[[plugins]] path = "..."`);
//! `cairn plugins check --conformance <library>` runs the conformance suites of `testkit`
//! against it through the same ABI `cairn server` uses — how a vendor proves a plugin.
//! `examples/plugin-artifacts-mem` is a complete artifact repository in under 200 lines,
//! `examples/plugin-jsonl` a tracking store and a run-context provider. The library drives
//! each call's future itself on the host's calling thread (no tokio reactor is available;
//! blocking work goes to a [`blocking::BlockingPool`]); see `ffi` for the rules.
//!
//! A plugin built into the `cairn` binary registers the same factory with
//! [`inventory::submit!`] instead:
//!
//! ```no_run
//! # use cairn_plugin_api::{BuildContext, Result, TrackingStore};
//! # use std::sync::Arc;
//! # fn build_store(ctx: &BuildContext) -> Result<Arc<dyn TrackingStore>> { unimplemented!() }
//! cairn_plugin_api::inventory::submit! {
//!     cairn_plugin_api::PluginFactory {
//!         name: "sqlite",
//!         plugin: env!("CARGO_PKG_NAME"),
//!         version: env!("CARGO_PKG_VERSION"),
//!         build: cairn_plugin_api::Build::TrackingStore(build_store),
//!     }
//! }
//! # fn main() {}
//! ```
#![deny(missing_docs)]

pub mod artifacts;
pub mod auth;
pub mod blocking;
pub mod context;
pub mod downsample;
pub mod entities;
pub mod error;
pub mod factory;
pub mod flavor;
pub mod import;
pub mod mlmodel;
pub mod model_registry;
pub mod names;
pub mod paths;
pub mod projects;
pub mod search;
pub mod traces;
pub mod tracking;
pub mod validated;
pub mod validation;
mod wire;

#[cfg(feature = "testkit")]
pub mod testkit;

#[cfg(feature = "ffi")]
pub mod ffi;

pub use artifacts::{ArtifactCapabilities, ArtifactRepository};
pub use auth::AuthStore;
pub use context::RunContextProvider;
pub use error::{Error, ErrorKind, Result};
pub use factory::{Build, BuildContext, PluginFactory, PluginKind};
pub use flavor::{LoadedModel, ModelFlavor};
pub use model_registry::ModelRegistryStore;
pub use projects::{ProjectBackend, SubmittedRun};
pub use traces::TraceStore;
pub use tracking::{Page, TrackingCapabilities, TrackingStore};
pub use validated::Validated;

/// Re-exported so plugins implement the async traits with the same macro version.
pub use async_trait::async_trait;
/// Re-exported: artifact chunks are [`bytes::Bytes`]; a plugin needs no `bytes` dependency of
/// its own (and cannot pick a mismatching version).
pub use bytes;
/// Re-exported: [`ByteStream`](artifacts::ByteStream) and the other stream types are
/// [`futures_core::Stream`]s; implement or poll them without a dependency of your own.
pub use futures_core;
/// Re-exported so plugins register factories without naming `inventory` themselves.
pub use inventory;

/// The version of this contract crate; dynamic plugins are checked against it.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");
