//! The backend conformance suite against the `local` project backend.

use cairn_core::projects::local::LocalBackend;
use cairn_plugin_api::projects::{ProjectEnvironment, ProjectRun, ProjectSource};
use std::sync::Arc;

fn fixture() -> ((Arc<LocalBackend>, ProjectRun), tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(LocalBackend::new(dir.path().join("runs")));
    let template = ProjectRun {
        run_id: String::new(),
        experiment_id: "0".into(),
        source: ProjectSource::Local {
            path: dir.path().to_string_lossy().into_owned(),
        },
        entry_point: "main".into(),
        command: Vec::new(),
        parameters: Default::default(),
        environment: ProjectEnvironment::Local,
        env: Default::default(),
        backend_config: serde_json::Value::Null,
    };
    ((backend, template), dir)
}

cairn_plugin_api::project_backend_conformance!(fixture(), skips = []);
