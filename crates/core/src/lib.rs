//! # cairn-core — Cairn's host
//!
//! Everything between the plugins and the operator: the configuration (files, environment,
//! flags), the immutable plugin registry, and the `cairn` command line. Only this crate knows
//! config files and the CLI; plugins see a [`cairn_plugin_api::BuildContext`] and nothing else.
//!
//! | module | what it holds |
//! |---|---|
//! | [`builtins`] | links each enabled built-in plugin; the table of every built-in and its cargo feature |
//! | [`registry`] | the [`Registry`] of plugins keyed by `(kind, name)`, scheme lookup, building plugins |
//! | [`config`] | the [`Config`] shape, its figment layers, default resolution |
//! | [`secrets`] | redaction of passwords, tokens and keys wherever config is shown |
//! | [`cli`] | the `cairn` commands |
//! | [`error`] | core's [`Error`] |
//!
//! Start-up goes: [`config::Loader::load`] → [`Registry::builtin`] → build the plugins the
//! config names ([`Registry::tracking_store`], ...).

pub mod builtins;
pub mod cli;
pub mod config;
pub mod error;
pub mod registry;
pub mod secrets;

pub use config::Config;
pub use error::{Error, Result};
pub use registry::Registry;
