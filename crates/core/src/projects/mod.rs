//! MLflow Projects (api.md §8): reading a project, resolving its entry point's parameters,
//! and running it on a [`ProjectBackend`](cairn_plugin_api::ProjectBackend).

pub mod cli;
pub mod environment;
pub mod fetch;
pub mod local;
pub mod spec;
pub mod tracking;
