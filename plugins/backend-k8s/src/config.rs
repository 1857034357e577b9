//! The backend configuration: MLflow's `--backend-config` keys (api.md §8.4) and the Job
//! template they name.

use cairn_plugin_api::{Error, Result};
use serde::Deserialize;
use std::path::PathBuf;

/// The image of the init container that fetches a Git project into the pod, unless the
/// configuration's `git-image` names another (any image with `git` and `sh`).
pub const DEFAULT_GIT_IMAGE: &str = "alpine/git:latest";

/// `--backend-config` for `-b kubernetes`, as MLflow reads it, plus Cairn's `git-image`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// The kubeconfig context; without it `KUBECONFIG` or `~/.kube/config`'s current context,
    /// else the in-cluster configuration.
    #[serde(rename = "kube-context")]
    pub kube_context: Option<String>,
    /// Where a built image is pushed (`--build-image` only).
    #[serde(rename = "repository-uri")]
    pub repository_uri: Option<String>,
    /// The Job template (YAML); required unless `kube-job-template` is given.
    #[serde(rename = "kube-job-template-path")]
    pub template_path: Option<PathBuf>,
    /// The Job template itself, as MLflow's `_parse_kubernetes_config` stores it after
    /// reading `kube-job-template-path`.
    #[serde(rename = "kube-job-template")]
    pub template: Option<serde_json::Value>,
    /// The image of the init container that fetches a Git project (default
    /// [`DEFAULT_GIT_IMAGE`]).
    #[serde(rename = "git-image")]
    pub git_image: Option<String>,
}

/// A parsed configuration and its template.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The configuration.
    pub config: BackendConfig,
    /// The Job template, as JSON.
    pub template: serde_json::Value,
}

/// Parses `--backend-config` and reads the template it names; every error names the key.
pub fn parse(value: &serde_json::Value) -> Result<Parsed> {
    if value.is_null() {
        return Err(Error::invalid(
            "the kubernetes backend needs --backend-config (-c), a JSON file or string with \
             kube-job-template-path (and optionally kube-context, repository-uri)",
        ));
    }
    let config: BackendConfig = serde_path_to_error(value)?;
    let template = match (&config.template, &config.template_path) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::invalid(format!(
                    "backend config kube-job-template-path: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            yaml_serde::from_str::<serde_json::Value>(&text).map_err(|e| {
                Error::invalid(format!(
                    "backend config kube-job-template-path: {} is not YAML: {e}",
                    path.display()
                ))
            })?
        }
        (None, None) => {
            return Err(Error::invalid(
                "backend config: the key kube-job-template-path is required (the Job template)",
            ));
        }
    };
    if !template.is_object() {
        return Err(Error::invalid(
            "backend config kube-job-template-path: the Job template is not a mapping",
        ));
    }
    Ok(Parsed { config, template })
}

fn serde_path_to_error(value: &serde_json::Value) -> Result<BackendConfig> {
    BackendConfig::deserialize(value).map_err(|e| Error::invalid(format!("backend config: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_mlflows_and_errors_name_them() {
        let e = parse(&serde_json::Value::Null).unwrap_err();
        assert!(e.message.contains("--backend-config"), "{e}");
        let e = parse(&json!({"kube-context": "x"})).unwrap_err();
        assert!(e.message.contains("kube-job-template-path"), "{e}");
        let e = parse(&json!({"kube-job-template-path": "/nonexistent/t.yaml"})).unwrap_err();
        assert!(e.message.contains("kube-job-template-path"), "{e}");
        let e =
            parse(&json!({"kube-job-template-path": "t.yaml", "kube-contxt": "x"})).unwrap_err();
        assert!(e.message.contains("kube-contxt"), "{e}");

        let dir = std::env::temp_dir().join(format!("cairn-k8s-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("job.yaml");
        std::fs::write(
            &path,
            "apiVersion: batch/v1\nkind: Job\nmetadata: {namespace: mlflow}\n",
        )
        .unwrap();
        let parsed = parse(&json!({
            "kube-context": "docker-desktop",
            "repository-uri": "user/repo",
            "kube-job-template-path": path,
        }))
        .unwrap();
        assert_eq!(
            parsed.config.kube_context.as_deref(),
            Some("docker-desktop")
        );
        assert_eq!(parsed.template["metadata"]["namespace"], "mlflow");
        std::fs::write(&path, "- a list").unwrap();
        let e = parse(&json!({"kube-job-template-path": path})).unwrap_err();
        assert!(e.message.contains("not a mapping"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
