//! The Job definition: MLflow's template substitution (`_get_kubernetes_job_definition`,
//! api.md §8.4) and, for a Git project, the init container that fetches it.

use cairn_plugin_api::projects::ProjectSource;
use cairn_plugin_api::{Error, Result};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// The label holding the tracking run id on every Job this backend creates (submit is
/// idempotent on it).
pub const RUN_ID_LABEL: &str = "cairn-run-id";

/// Where the project's files are in the pod when an init container fetches them (MLflow's
/// image build copies them to the same path).
pub const PROJECT_DIR: &str = "/mlflow/projects/code";

/// The `emptyDir` volume shared by the init container and the main container.
pub const PROJECT_VOLUME: &str = "cairn-project";

/// The init container's name.
pub const FETCH_CONTAINER: &str = "cairn-fetch-project";

/// What goes into the template.
#[derive(Debug, Clone)]
pub struct Substitution<'a> {
    /// The project's name (the Job name's prefix and the container's name).
    pub project: &'a str,
    /// The tracking run id.
    pub run_id: &'a str,
    /// The image.
    pub image: &'a str,
    /// The command, as argv.
    pub command: &'a [String],
    /// Variables appended to the container's `env`, in order.
    pub env: &'a [(String, String)],
    /// The project's files.
    pub source: &'a ProjectSource,
    /// The init container's image for a Git source.
    pub git_image: &'a str,
    /// When the Job is created (its name's suffix).
    pub now: Timestamp,
}

/// Lower-case letters, digits and `-` only, no leading or trailing `-`, at most `max`
/// characters: valid as a DNS-1123 label, a container name and a label value.
pub fn dns_label(name: &str, max: usize) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    out.truncate(max);
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// `<project>-<YYYY-MM-DD-HH-MM-SS-ffffff>` as MLflow names the Job, made a valid name of at
/// most 63 characters (a Job's name becomes its pods' label value): the project part is
/// sanitised and cut, never the timestamp.
pub fn job_name(project: &str, now: Timestamp) -> String {
    let stamp = now.strftime("%Y-%m-%d-%H-%M-%S-%6f").to_string();
    let prefix = dns_label(project, 63 - stamp.len() - 1);
    let prefix = if prefix.is_empty() {
        "mlflow-project"
    } else {
        &prefix
    };
    format!("{prefix}-{stamp}")
}

/// The container's name: the project's name as a DNS-1123 label.
pub fn container_name(project: &str) -> String {
    let name = dns_label(project, 63);
    if name.is_empty() {
        "mlflow-project".into()
    } else {
        name
    }
}

fn invalid(what: &str) -> Error {
    Error::invalid(format!("backend config kube-job-template-path: {what}"))
}

/// The Job to create from `template`: MLflow's fields overwritten, the run id label added, the
/// init container and volume added for a Git source. The template's other fields are kept.
pub fn definition(template: &Value, s: &Substitution<'_>) -> Result<Job> {
    let mut job = template.clone();
    let meta = job
        .as_object_mut()
        .ok_or_else(|| invalid("the Job template is not a mapping"))?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if meta["namespace"].as_str().is_none_or(str::is_empty) {
        return Err(invalid(
            "the Job template has no metadata.namespace (MLflow requires it)",
        ));
    }
    meta["name"] = json!(job_name(s.project, s.now));
    if !meta["labels"].is_object() {
        meta["labels"] = json!({});
    }
    meta["labels"][RUN_ID_LABEL] = json!(s.run_id);
    let pod_spec = job
        .pointer_mut("/spec/template/spec")
        .filter(|v| v.is_object())
        .ok_or_else(|| invalid("the Job template has no spec.template.spec"))?;
    let containers = pod_spec["containers"]
        .as_array_mut()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid("the Job template has no spec.template.spec.containers[0]"))?;
    let main = &mut containers[0];
    if !main.is_object() {
        return Err(invalid("spec.template.spec.containers[0] is not a mapping"));
    }
    main["name"] = json!(container_name(s.project));
    main["image"] = json!(s.image);
    main["command"] = json!(s.command);
    // The command is the whole argv: `args` would be appended to it.
    if let Some(obj) = main.as_object_mut() {
        obj.remove("args");
    }
    if !main["env"].is_array() {
        main["env"] = json!([]);
    }
    let env = main["env"].as_array_mut().expect("an array");
    for (name, value) in s.env {
        env.retain(|e| e["name"] != name.as_str());
        env.push(json!({"name": name, "value": value}));
    }
    if let ProjectSource::Git {
        url,
        commit,
        subdirectory,
    } = s.source
    {
        let workdir = if subdirectory.is_empty() {
            PROJECT_DIR.to_owned()
        } else {
            format!("{PROJECT_DIR}/{}", subdirectory.trim_matches('/'))
        };
        let mount = json!({"name": PROJECT_VOLUME, "mountPath": PROJECT_DIR});
        main["workingDir"] = json!(workdir);
        push(main, "volumeMounts", mount.clone());
        // A full clone, then the exact commit: servers need not allow fetching a commit by
        // its hash, and a clone into the (empty) volume's root needs no subdirectory.
        let fetch = json!({
            "name": FETCH_CONTAINER,
            "image": s.git_image,
            "command": ["sh", "-c",
                "git clone --quiet --no-checkout \"$0\" . && git checkout --quiet --detach \"$1\"",
                url, commit],
            "workingDir": PROJECT_DIR,
            "volumeMounts": [mount],
        });
        if !pod_spec["initContainers"].is_array() {
            pod_spec["initContainers"] = json!([]);
        }
        pod_spec["initContainers"]
            .as_array_mut()
            .expect("an array")
            .insert(0, fetch);
        push(
            pod_spec,
            "volumes",
            json!({"name": PROJECT_VOLUME, "emptyDir": {}}),
        );
    }
    serde_json::from_value(job)
        .map_err(|e| invalid(&format!("the template is not a batch/v1 Job: {e}")))
}

fn push(object: &mut Value, key: &str, item: Value) {
    if !object[key].is_array() {
        object[key] = json!([]);
    }
    object[key].as_array_mut().expect("an array").push(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: "{replaced with MLflow Project name}", namespace: mlflow}
spec:
  ttlSecondsAfterFinished: 100
  backoffLimit: 0
  template:
    spec:
      containers:
      - name: "{replaced with MLflow Project name}"
        image: "{replaced with URI of Docker image created during Project execution}"
        command: ["{replaced with MLflow Project entry point command}"]
        env: [{name: KEEP, value: "1"}, {name: MLFLOW_RUN_ID, value: stale}]
        resources: {limits: {memory: 512Mi}}
      restartPolicy: Never
"#;

    fn now() -> Timestamp {
        "2024-03-05T06:07:08.123456Z".parse().unwrap()
    }

    #[test]
    fn names_are_mlflows_and_valid() {
        assert_eq!(
            job_name("My_Project", now()),
            "my-project-2024-03-05-06-07-08-123456"
        );
        let long = job_name(&"x".repeat(100), now());
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-2024-03-05-06-07-08-123456"), "{long}");
        assert_eq!(
            job_name("--", now()),
            "mlflow-project-2024-03-05-06-07-08-123456"
        );
        // A cut that would end in '-' drops it.
        let cut = job_name(&format!("{}-b", "a".repeat(35)), now());
        assert!(!cut.contains("--"), "{cut}");
        assert_eq!(container_name("Tiny.Model v2"), "tiny-model-v2");
        assert_eq!(container_name("_"), "mlflow-project");
    }

    #[test]
    fn the_template_gets_mlflows_substitution_and_keeps_the_rest() {
        let template: Value = yaml_serde::from_str(TEMPLATE).unwrap();
        let command = ["bash", "-c", "python train.py --alpha 0.5"].map(String::from);
        let env = [
            ("MLFLOW_RUN_ID".to_owned(), "abc".to_owned()),
            ("MLFLOW_TRACKING_URI".to_owned(), "http://t".to_owned()),
        ];
        let source = ProjectSource::Local { path: "/p".into() };
        let job = definition(
            &template,
            &Substitution {
                project: "tiny",
                run_id: "abc",
                image: "repo/img:1",
                command: &command,
                env: &env,
                source: &source,
                git_image: "git:1",
                now: now(),
            },
        )
        .unwrap();
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(v["metadata"]["name"], "tiny-2024-03-05-06-07-08-123456");
        assert_eq!(v["metadata"]["namespace"], "mlflow");
        assert_eq!(v["metadata"]["labels"][RUN_ID_LABEL], "abc");
        assert_eq!(v["spec"]["ttlSecondsAfterFinished"], 100);
        let c = &v["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["name"], "tiny");
        assert_eq!(c["image"], "repo/img:1");
        assert_eq!(c["command"], json!(command));
        assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
        assert_eq!(
            c["env"],
            json!([{"name": "KEEP", "value": "1"}, {"name": "MLFLOW_RUN_ID", "value": "abc"},
                   {"name": "MLFLOW_TRACKING_URI", "value": "http://t"}])
        );
        assert!(v["spec"]["template"]["spec"]["initContainers"].is_null());
    }

    #[test]
    fn a_git_project_is_fetched_by_an_init_container_at_its_commit() {
        let template: Value = yaml_serde::from_str(TEMPLATE).unwrap();
        let source = ProjectSource::Git {
            url: "https://example.com/p.git".into(),
            commit: "0123abcd".into(),
            subdirectory: "sub/dir".into(),
        };
        let job = definition(
            &template,
            &Substitution {
                project: "p",
                run_id: "r",
                image: "img",
                command: &["true".to_owned()],
                env: &[],
                source: &source,
                git_image: "git:1",
                now: now(),
            },
        )
        .unwrap();
        let v = serde_json::to_value(&job).unwrap();
        let spec = &v["spec"]["template"]["spec"];
        assert_eq!(
            spec["volumes"],
            json!([{"name": PROJECT_VOLUME, "emptyDir": {}}])
        );
        let init = &spec["initContainers"][0];
        assert_eq!(init["image"], "git:1");
        assert_eq!(init["command"][3], "https://example.com/p.git");
        assert_eq!(init["command"][4], "0123abcd");
        assert_eq!(init["workingDir"], PROJECT_DIR);
        let main = &spec["containers"][0];
        assert_eq!(main["workingDir"], format!("{PROJECT_DIR}/sub/dir"));
        assert_eq!(main["volumeMounts"][0]["mountPath"], PROJECT_DIR);
    }

    #[test]
    fn a_template_without_a_namespace_or_container_is_refused_naming_the_key() {
        let source = ProjectSource::Local { path: "/p".into() };
        let s = Substitution {
            project: "p",
            run_id: "r",
            image: "img",
            command: &[],
            env: &[],
            source: &source,
            git_image: "git",
            now: now(),
        };
        let e = definition(&json!({"metadata": {}}), &s).unwrap_err();
        assert!(e.message.contains("metadata.namespace"), "{e}");
        assert!(e.message.contains("kube-job-template-path"), "{e}");
        let e = definition(
            &json!({"metadata": {"namespace": "x"}, "spec": {"template": {"spec": {"containers": []}}}}),
            &s,
        )
        .unwrap_err();
        assert!(e.message.contains("containers[0]"), "{e}");
    }
}
