//! The one table from route to required permission. Every route of the router has an entry;
//! a route without one is refused for everyone, admins included (fail closed), and the test
//! `every_route_is_mapped_and_guarded` (crates/core/tests/server_auth.rs) calls every route of
//! the router to prove there is none.

use axum::http::Method;

/// What a grant allows (MLflow's `can_read`, `can_use`, `can_update`, `can_delete`,
/// `can_manage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// Read the resource.
    Read,
    /// Use it (MLflow 3's tier between read and edit).
    Use,
    /// Change it.
    Update,
    /// Delete or restore it.
    Delete,
    /// Change who may do what with it.
    Manage,
}

/// Where a request names the experiment it acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locate {
    /// Parameter `experiment_id`.
    ExperimentId,
    /// Parameter `experiment_id`, `"0"` (the default experiment) when absent (`runs/create`).
    ExperimentIdOrDefault,
    /// Every id of the list parameter `experiment_ids`.
    ExperimentIds,
    /// Parameter `experiment_name` (an unknown name goes on to the handler's 404).
    ExperimentName,
    /// Parameter `run_id` (or `run_uuid`): the run's experiment.
    Run,
    /// Query parameter `run_id` only (the body is a file: `upload-artifact`).
    RunInQuery,
    /// Every run of the list parameter named here: their experiments.
    Runs(&'static str),
    /// Path parameter `model_id`: the LoggedModel's experiment.
    LoggedModel,
    /// Path parameter `path` of the artifact proxy: its first segment is the experiment id.
    ArtifactPath,
    /// Query parameter `path` of the proxy's listing: its first segment is the experiment id.
    ArtifactQuery,
    /// Path parameter `trace_id`: the trace's experiment.
    TracePath,
    /// Parameter `trace_id` (or `request_id`): the trace's experiment.
    TraceParam,
    /// Every trace of the list parameter `trace_ids`: their experiments (unknown ones skipped).
    TraceIds,
    /// `trace.trace_info.trace_location.mlflow_experiment.experiment_id` of StartTraceV3.
    TraceLocation,
    /// Header `x-mlflow-experiment-id` (OTLP ingest).
    ExperimentHeader,
}

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Nothing: `/health`, `/version`, `server-info`.
    Public,
    /// Any authenticated user (creations; searches, whose handlers filter what the user may
    /// read; endpoints that answer 501/503 whatever the user).
    Authenticated,
    /// Admins only.
    Admin,
    /// The user named by parameter `username`, or an admin.
    SelfOrAdmin,
    /// A capability on the experiment the request names.
    Experiment(Cap, Locate),
    /// A capability on the registered model named by parameter `name`.
    Model(Cap),
    /// `MANAGE` on the resource named by parameters `resource_type` and `resource_id`.
    ManageResource,
}

/// The route template `path` as the table knows it: without the static prefix (already
/// removed), `/ajax-api` read as `/api` and the API version dropped, so
/// `/ajax-api/2.0/mlflow/runs/get` and `/api/2.0/mlflow/runs/get` are both `/mlflow/runs/get`.
pub fn normalise(path: &str) -> &str {
    for base in ["/ajax-api/", "/api/"] {
        if let Some(rest) = path.strip_prefix(base)
            && let Some(slash) = rest.find('/')
            && matches!(&rest[..slash], "2.0" | "3.0")
        {
            return &rest[slash..];
        }
    }
    path
}

/// The rule of the route `template` (a normalised route template) for `method`; `None` for a
/// route the table does not know.
pub fn rule(method: &Method, template: &str) -> Option<Rule> {
    use Cap::*;
    use Locate::*;
    use Rule::*;
    let m = method.as_str();
    let exp = Experiment;
    Some(match (m, template) {
        (_, "/health" | "/version") | ("GET", "/mlflow/server-info") => Public,

        // Experiments.
        ("GET", "/mlflow/experiments/get-by-name") => exp(Read, ExperimentName),
        ("POST", "/mlflow/experiments/create") => Authenticated,
        ("GET" | "POST", "/mlflow/experiments/search") => Authenticated,
        ("GET", "/mlflow/experiments/get") => exp(Read, ExperimentId),
        ("POST", "/mlflow/experiments/delete" | "/mlflow/experiments/restore") => {
            exp(Delete, ExperimentId)
        }
        (
            "POST",
            "/mlflow/experiments/update"
            | "/mlflow/experiments/set-experiment-tag"
            | "/mlflow/experiments/delete-experiment-tag",
        ) => exp(Update, ExperimentId),
        ("POST", "/mlflow/experiments/search-datasets") => exp(Read, ExperimentIds),

        // Runs, metrics, run artifacts.
        ("POST", "/mlflow/runs/create") => exp(Update, ExperimentIdOrDefault),
        (
            "POST",
            "/mlflow/runs/update"
            | "/mlflow/runs/log-metric"
            | "/mlflow/runs/log-parameter"
            | "/mlflow/runs/set-tag"
            | "/mlflow/runs/delete-tag"
            | "/mlflow/runs/log-batch"
            | "/mlflow/runs/log-model"
            | "/mlflow/runs/log-inputs"
            | "/mlflow/runs/outputs",
        ) => exp(Update, Run),
        ("POST", "/mlflow/runs/delete" | "/mlflow/runs/restore") => exp(Delete, Run),
        ("GET", "/mlflow/runs/get") => exp(Read, Run),
        ("POST", "/mlflow/runs/search") => Authenticated,
        ("GET", "/mlflow/metrics/get-history") => exp(Read, Run),
        ("GET", "/mlflow/metrics/get-history-bulk-interval") => exp(Read, Runs("run_ids")),
        ("GET", "/mlflow/metrics/get-history-bulk") => exp(Read, Runs("run_id")),
        // The web UI's reads (server/ui_api.rs).
        ("GET", "/cairn/runs/keys") => exp(Read, ExperimentIds),
        ("GET", "/cairn/metrics/get-history-downsampled") => exp(Read, Runs("run_id")),
        ("GET", "/mlflow/artifacts/list") => exp(Read, Run),
        ("GET", "/get-artifact") => exp(Read, Run),
        ("POST", "/mlflow/upload-artifact") => exp(Update, RunInQuery),
        // 501 for now, whoever asks. Whoever implements one of the `Authenticated` 501/503
        // routes here (these, traces) must give it a real rule: the completeness test cannot
        // see that change.
        (
            _,
            "/mlflow/artifacts/presigned-upload-url" | "/mlflow/artifacts/presigned-download-url",
        ) => Authenticated,

        // LoggedModels.
        ("POST", "/mlflow/logged-models") => exp(Update, ExperimentId),
        ("POST", "/mlflow/logged-models/search") => Authenticated,
        ("GET", "/mlflow/logged-models/{model_id}") => exp(Read, LoggedModel),
        ("PATCH", "/mlflow/logged-models/{model_id}") => exp(Update, LoggedModel),
        ("DELETE", "/mlflow/logged-models/{model_id}") => exp(Delete, LoggedModel),
        ("PATCH", "/mlflow/logged-models/{model_id}/tags")
        | ("DELETE", "/mlflow/logged-models/{model_id}/tags/{*tag_key}")
        | ("POST", "/mlflow/logged-models/{model_id}/params") => exp(Update, LoggedModel),
        (
            "GET",
            "/mlflow/logged-models/{model_id}/artifacts/directories"
            | "/mlflow/logged-models/{model_id}/artifacts/files",
        ) => exp(Read, LoggedModel),

        // The artifact proxy.
        ("GET", "/mlflow-artifacts/artifacts") => exp(Read, ArtifactQuery),
        ("GET", "/mlflow-artifacts/artifacts/{*path}" | "/mlflow-artifacts/presigned/{*path}") => {
            exp(Read, ArtifactPath)
        }
        ("PUT", "/mlflow-artifacts/artifacts/{*path}")
        | (
            "POST",
            "/mlflow-artifacts/mpu/create/{*path}"
            | "/mlflow-artifacts/mpu/complete/{*path}"
            | "/mlflow-artifacts/mpu/abort/{*path}",
        ) => exp(Update, ArtifactPath),
        ("DELETE", "/mlflow-artifacts/artifacts/{*path}") => exp(Delete, ArtifactPath),
        // The proxy switched off: 503 whoever asks.
        (_, "/mlflow-artifacts" | "/mlflow-artifacts/{*path}") => Authenticated,

        // The model registry.
        ("POST", "/mlflow/registered-models/create") => Authenticated,
        ("GET", "/mlflow/registered-models/search" | "/mlflow/model-versions/search") => {
            Authenticated
        }
        (
            "GET",
            "/mlflow/registered-models/get"
            | "/mlflow/registered-models/alias"
            | "/mlflow/model-versions/get"
            | "/mlflow/model-versions/get-download-uri"
            | "/model-versions/get-artifact",
        )
        | ("GET" | "POST", "/mlflow/registered-models/get-latest-versions") => Model(Read),
        ("POST", "/mlflow/registered-models/rename")
        | ("PATCH", "/mlflow/registered-models/update")
        | ("POST", "/mlflow/registered-models/set-tag")
        | ("DELETE", "/mlflow/registered-models/delete-tag")
        | ("POST" | "DELETE", "/mlflow/registered-models/alias")
        | ("POST", "/mlflow/model-versions/create")
        | ("PATCH", "/mlflow/model-versions/update")
        | ("POST", "/mlflow/model-versions/transition-stage")
        | ("POST", "/mlflow/model-versions/set-tag")
        | ("DELETE", "/mlflow/model-versions/delete-tag") => Model(Update),
        ("DELETE", "/mlflow/registered-models/delete" | "/mlflow/model-versions/delete") => {
            Model(Delete)
        }

        // Traces (issue 18): permission on the trace's experiment, as MLflow's basic-auth app
        // (`validate_can_read_trace` / `..._update_trace` / `..._delete_trace`): reads need
        // READ, writes (tags, assessments, links, spans) EDIT, deletion DELETE.
        ("POST", "/mlflow/traces") => exp(Update, TraceLocation),
        ("POST", "/v1/traces") => exp(Update, ExperimentHeader),
        ("GET", "/mlflow/traces/{trace_id}" | "/mlflow/traces/{trace_id}/info") => {
            exp(Read, TracePath)
        }
        ("GET", "/mlflow/traces/{trace_id}/assessments/{assessment_id}") => exp(Read, TracePath),
        ("PATCH" | "DELETE", "/mlflow/traces/{trace_id}/tags")
        | ("POST", "/mlflow/traces/{trace_id}/assessments")
        | ("PATCH" | "DELETE", "/mlflow/traces/{trace_id}/assessments/{assessment_id}") => {
            exp(Update, TracePath)
        }
        ("GET", "/mlflow/traces/get") => exp(Read, TraceParam),
        ("POST", "/mlflow/traces/link-prompts") => exp(Update, TraceParam),
        ("GET", "/mlflow/traces/batchGet") | ("POST", "/mlflow/traces/batchGetInfos") => {
            exp(Read, TraceIds)
        }
        ("POST", "/mlflow/traces/link-to-run") => exp(Update, Run),
        ("POST", "/mlflow/traces/delete-traces") => exp(Delete, ExperimentId),
        // Searches filter by the experiments the caller may read.
        ("POST", "/mlflow/traces/search") | ("GET", "/mlflow/traces") => Authenticated,
        // 501 (404 for the Databricks-only ones) whoever asks.
        (
            _,
            "/mlflow/traces"
            | "/mlflow/traces/{trace_id}"
            | "/mlflow/traces/metrics"
            | "/mlflow/traces/calculate-filter-correlation"
            | "/mlflow/get-trace-artifact"
            | "/mlflow/unified-traces"
            | "/mlflow/get-online-trace-details",
        ) => Authenticated,

        // The auth app's own API.
        ("POST", "/mlflow/users/create")
        | ("PATCH", "/mlflow/users/update-admin")
        | ("DELETE", "/mlflow/users/delete") => Admin,
        ("GET", "/mlflow/users/get" | "/mlflow/users/permissions/list")
        | ("PATCH", "/mlflow/users/update-password") => SelfOrAdmin,
        (
            "GET",
            "/mlflow/users/list" | "/mlflow/users/current" | "/mlflow/users/current/permissions",
        ) => Authenticated,
        ("POST", "/mlflow/users/permissions/grant" | "/mlflow/users/permissions/revoke")
        | ("GET", "/mlflow/users/permissions/get") => ManageResource,
        (
            "POST",
            "/mlflow/roles/create" | "/mlflow/roles/permissions/add" | "/mlflow/roles/assign",
        )
        | (
            "GET",
            "/mlflow/roles/get"
            | "/mlflow/roles/list"
            | "/mlflow/roles/permissions/list"
            | "/mlflow/roles/users/list",
        )
        | ("PATCH", "/mlflow/roles/update" | "/mlflow/roles/permissions/update")
        | (
            "DELETE",
            "/mlflow/roles/delete" | "/mlflow/roles/permissions/remove" | "/mlflow/roles/unassign",
        ) => Admin,
        ("GET", "/mlflow/users/roles/list") => SelfOrAdmin,
        ("POST", "/mlflow/experiments/permissions/create")
        | ("GET", "/mlflow/experiments/permissions/get")
        | ("PATCH", "/mlflow/experiments/permissions/update")
        | ("DELETE", "/mlflow/experiments/permissions/delete") => exp(Manage, ExperimentId),
        ("POST", "/mlflow/registered-models/permissions/create")
        | ("GET", "/mlflow/registered-models/permissions/get")
        | ("PATCH", "/mlflow/registered-models/permissions/update")
        | ("DELETE", "/mlflow/registered-models/permissions/delete") => Model(Manage),

        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_across_prefixes_and_versions() {
        assert_eq!(normalise("/api/2.0/mlflow/runs/get"), "/mlflow/runs/get");
        assert_eq!(normalise("/ajax-api/3.0/mlflow/traces"), "/mlflow/traces");
        assert_eq!(
            normalise("/api/2.0/mlflow-artifacts/artifacts/{*path}"),
            "/mlflow-artifacts/artifacts/{*path}"
        );
        assert_eq!(normalise("/get-artifact"), "/get-artifact");
        assert_eq!(
            normalise("/api/9.0/mlflow/runs/get"),
            "/api/9.0/mlflow/runs/get"
        );
    }

    #[test]
    fn unknown_routes_and_methods_have_no_rule() {
        assert_eq!(rule(&Method::GET, "/mlflow/runs/made-up"), None);
        assert_eq!(rule(&Method::DELETE, "/mlflow/runs/get"), None);
        assert_eq!(
            rule(&Method::GET, "/mlflow/runs/get"),
            Some(Rule::Experiment(Cap::Read, Locate::Run))
        );
    }
}
