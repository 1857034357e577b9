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
//! evaluator), [`validation`] (MLflow's limits and name rules, shared by every store),
//! [`paths`] (the one canonicaliser every artifact path goes through), [`factory`] (how a
//! plugin registers itself), behind the `testkit` feature the conformance
//! suites every plugin runs against itself, and behind the `ffi` feature `ffi`: the stable ABI
//! through which a plugin ships as a shared library (`export_plugins!`).
//!
//! A built-in plugin registers a [`factory::PluginFactory`] with [`inventory::submit!`]:
//!
//! ```ignore
//! inventory::submit! {
//!     cairn_plugin_api::PluginFactory {
//!         name: "sqlite",
//!         plugin: env!("CARGO_PKG_NAME"),
//!         version: env!("CARGO_PKG_VERSION"),
//!         build: cairn_plugin_api::Build::TrackingStore(build_store),
//!     }
//! }
//! ```
#![deny(missing_docs)]

pub mod artifacts;
pub mod context;
pub mod entities;
pub mod error;
pub mod factory;
pub mod flavor;
pub mod mlmodel;
pub mod model_registry;
pub mod names;
pub mod paths;
pub mod projects;
pub mod search;
pub mod tracking;
pub mod validation;
mod wire;

#[cfg(feature = "testkit")]
pub mod testkit;

#[cfg(feature = "ffi")]
pub mod ffi;

pub use artifacts::{ArtifactCapabilities, ArtifactRepository};
pub use context::RunContextProvider;
pub use error::{Error, ErrorKind, Result};
pub use factory::{Build, BuildContext, PluginFactory, PluginKind};
pub use flavor::{LoadedModel, ModelFlavor};
pub use model_registry::ModelRegistryStore;
pub use projects::{ProjectBackend, SubmittedRun};
pub use tracking::{Page, TrackingCapabilities, TrackingStore};

/// Re-exported so plugins implement the async traits with the same macro version.
pub use async_trait::async_trait;
/// Re-exported so plugins register factories without naming `inventory` themselves.
pub use inventory;

/// The version of this contract crate; dynamic plugins are checked against it.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");
