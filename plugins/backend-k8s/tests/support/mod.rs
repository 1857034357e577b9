//! What the tests share: a fake cluster, a kubeconfig for it, a Job template, a backend.

#![allow(dead_code)]

use cairn_backend_k8s::KubernetesBackend;
use cairn_backend_k8s::fake::FakeCluster;
use cairn_plugin_api::projects::{ProjectEnvironment, ProjectRun, ProjectSource};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The kubeconfig context the tests use.
pub const CONTEXT: &str = "fake";

/// A fake cluster, a temporary directory with its kubeconfig and a template, and a backend.
pub struct Env {
    pub backend: Arc<KubernetesBackend>,
    pub cluster: FakeCluster,
    pub dir: tempfile::TempDir,
}

/// MLflow's typical template (api.md §8.4), with extra pod template annotations.
pub fn template(annotations: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata: {{name: "{{replaced with MLflow Project name}}", namespace: mlflow}}
spec:
  ttlSecondsAfterFinished: 100
  backoffLimit: 0
  template:
    metadata:
      annotations: {{{annotations}}}
    spec:
      containers:
      - name: "{{replaced with MLflow Project name}}"
        image: "{{replaced with URI of Docker image created during Project execution}}"
        command: ["{{replaced with MLflow Project entry point command}}"]
      restartPolicy: Never
"#
    )
}

impl Env {
    pub fn new() -> Env {
        let cluster = FakeCluster::start();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubeconfig"), cluster.kubeconfig(CONTEXT)).unwrap();
        std::fs::write(dir.path().join("job.yaml"), template("")).unwrap();
        std::fs::write(dir.path().join("MLproject"), "name: conformance\n").unwrap();
        let backend = Arc::new(KubernetesBackend::with_kubeconfig(
            dir.path().join("kubeconfig"),
        ));
        Env {
            backend,
            cluster,
            dir,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Writes a template with `annotations` (YAML flow-map entries) and returns its path.
    pub fn template_with(&self, name: &str, annotations: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, template(annotations)).unwrap();
        path
    }

    /// A run of a local project with a docker_env, on the template `template`.
    pub fn run(&self, template: &Path, command: &[&str]) -> ProjectRun {
        ProjectRun {
            run_id: uuid_like(),
            experiment_id: "0".into(),
            source: ProjectSource::Local {
                path: self.dir.path().to_string_lossy().into_owned(),
            },
            entry_point: "main".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            parameters: Default::default(),
            environment: ProjectEnvironment::Docker {
                image: "busybox:1.36".into(),
                volumes: vec![],
                environment: Default::default(),
            },
            env: Default::default(),
            backend_config: serde_json::json!({
                "kube-context": CONTEXT,
                "repository-uri": "example/unused",
                "kube-job-template-path": template,
            }),
        }
    }
}

/// A fresh 32-hex-digit run id.
pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:016x}{:016x}",
        t as u64,
        (std::process::id() as u64) << 32 | n
    )
}
