//! The backend conformance suite against the fake API server: the real `kube` client, Jobs
//! created from MLflow's template, pods run by the fake's kubelet.

mod support;

use cairn_backend_k8s::KubernetesBackend;
use cairn_plugin_api::projects::ProjectRun;
use std::sync::Arc;

fn fixture() -> ((Arc<KubernetesBackend>, ProjectRun), support::Env) {
    let env = support::Env::new();
    let template = env.run(&env.dir.path().join("job.yaml"), &[]);
    ((env.backend.clone(), template), env)
}

cairn_plugin_api::project_backend_conformance!(fixture(), skips = []);
