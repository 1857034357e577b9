//! # cairn-core — Cairn's host
//!
//! Everything between the plugins and the operator: the configuration (files, environment,
//! flags), the immutable plugin registry, and the `cairn` command line. Only this crate knows
//! config files and the CLI; plugins see a [`cairn_plugin_api::BuildContext`] and nothing else.
//!
//! | module | what it holds |
//! |---|---|
//! | [`builtins`] | links each enabled built-in plugin; the table of every built-in and its cargo feature |
//! | [`loader`] | dynamic plugins: loads the shared libraries config names, wraps their plugins in the ordinary traits |
//! | [`registry`] | the [`Registry`] of plugins keyed by `(kind, name)`, scheme lookup, building plugins |
//! | [`assembly`] | the one [`Assembly`] of the configured plugins, used by every command |
//! | [`run_context`] | run-context providers: the built-ins and applying them to new runs |
//! | [`config`] | the [`Config`] shape, its figment layers, default resolution |
//! | [`secrets`] | redaction of passwords, tokens and keys wherever config is shown |
//! | [`cli`] | the `cairn` commands |
//! | [`conformance`] | `cairn plugins check --conformance`: the testkit's suites against a plugin library |
//! | [`artifacts_cli`] | `cairn artifacts list\|download\|upload` |
//! | [`http_repo`] | a tracking server seen from a client: its artifact proxy as a repository, `runs/get` |
//! | [`projects`] | MLflow Projects: the `MLproject` reader, parameters, `cairn run`, the local backend |
//! | [`server`] | `cairn server`: the MLflow-compatible REST server |
//! | [`uri`] | artifact URI resolution (`runs:/`, `mlflow-artifacts:`, `file:`, `s3:`, ...) to a repository and a path |
//! | [`error`] | core's [`Error`] |
//!
//! Start-up goes: [`config::Loader::load`] → [`Assembly::new`] ([`loader::registry`]: the
//! built-ins and the plugin libraries the config names) → [`Assembly::server`] builds the
//! plugins the config names → [`server::router_for`] serves them. `cairn check` stops after
//! [`Assembly::server`].

pub mod artifacts_cli;
pub mod assembly;
pub mod builtins;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod error;
pub mod http_repo;
pub mod import;
pub mod loader;
pub mod models;
pub mod projects;
pub mod registry;
pub mod run_context;
pub mod secrets;
pub mod server;
pub mod uri;

pub use assembly::Assembly;
pub use config::Config;
pub use error::{Error, Result};
pub use registry::Registry;
