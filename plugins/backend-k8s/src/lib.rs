//! Cairn's `kubernetes` project backend: MLflow Projects run as Kubernetes Jobs.
//!
//! `cairn run <uri> -b kubernetes -c kubernetes_config.json` with MLflow's configuration keys
//! (`kube-context`, `repository-uri`, `kube-job-template-path`; api.md §8.4) and MLflow's
//! template substitution ([`job`]). The project's `docker_env.image` runs the command; a Git
//! project is fetched into the pod at its exact commit by an init container. The run's handle
//! names the Job (context, namespace, name), so any `cairn` process re-attaches to it.
//!
//! Status comes from watches on the Job and its pods ([`backend`]), kept by the backend's own
//! tokio runtime (`runtime`), so the host's `status()` polls answer from memory; logs stream
//! from the pod's `log` endpoint; cancel deletes the Job with foreground propagation.
//!
//! Feature `fake`: `fake`, an in-process fake API server with a small Job controller, which
//! the tests run the backend against (no real cluster can be had where this project builds).

pub mod backend;
pub mod config;
#[cfg(feature = "fake")]
pub mod fake;
pub mod job;
mod runtime;

pub use backend::{KubernetesBackend, NAME};

use cairn_plugin_api::{Build, BuildContext, PluginFactory, ProjectBackend, Result};
use std::sync::Arc;

cairn_plugin_api::inventory::submit! {
    PluginFactory {
        name: NAME,
        plugin: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        build: Build::ProjectBackend(build),
    }
}

/// `[settings.kubernetes]` takes no keys: everything is per run, in `--backend-config`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {}

fn build(ctx: &BuildContext) -> Result<Arc<dyn ProjectBackend>> {
    let _: Settings = ctx.settings()?;
    Ok(Arc::new(KubernetesBackend::new()))
}
