//! The tracking calls `cairn run` and `cairn runs` make, against a tracking server's REST API
//! (`MLFLOW_TRACKING_URI=http(s)://...`) or the configured tracking store.

use crate::http_repo::TrackingClient;
use crate::run_context::RunContextProviders;
use cairn_plugin_api::entities::{Param, RunStatus, RunTag};
use cairn_plugin_api::tracking::{CreateExperiment, CreateRun, UpdateRun};
use cairn_plugin_api::{Error, Result, TrackingStore};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where runs are recorded.
pub enum Tracking {
    /// A tracking server; it applies its own run-context providers in `runs/create`.
    Rest(TrackingClient),
    /// The configured tracking store, with the configured run-context providers.
    Store {
        /// The store.
        store: Arc<dyn TrackingStore>,
        /// The providers applied to new runs.
        providers: RunContextProviders,
    },
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn tags_json(tags: &[RunTag]) -> serde_json::Value {
    tags.iter()
        .map(|t| json!({"key": t.key, "value": t.value}))
        .collect()
}

impl Tracking {
    /// The experiment: `id` if given (it must exist), else `name` (created if missing, as
    /// `mlflow run` does), else the default experiment `0`.
    pub async fn experiment_id(&self, id: Option<&str>, name: Option<&str>) -> Result<String> {
        match (id, name) {
            (Some(id), _) => {
                match self {
                    Tracking::Rest(c) => {
                        c.get_json("experiments/get", &[("experiment_id", id)])
                            .await?;
                    }
                    Tracking::Store { store, .. } => {
                        store.get_experiment(id).await?;
                    }
                }
                Ok(id.to_owned())
            }
            (None, Some(name)) => match self {
                Tracking::Rest(c) => {
                    match c
                        .get_json("experiments/get-by-name", &[("experiment_name", name)])
                        .await
                    {
                        Ok(v) => Ok(v["experiment"]["experiment_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned()),
                        Err(e) if e.kind == cairn_plugin_api::ErrorKind::NotFound => {
                            let v = c
                                .post_json("experiments/create", &json!({"name": name}))
                                .await?;
                            Ok(v["experiment_id"].as_str().unwrap_or_default().to_owned())
                        }
                        Err(e) => Err(e),
                    }
                }
                Tracking::Store { store, .. } => match store.get_experiment_by_name(name).await? {
                    Some(e) => Ok(e.experiment_id),
                    None => {
                        store
                            .create_experiment(CreateExperiment {
                                name: name.to_owned(),
                                artifact_location: None,
                                tags: Vec::new(),
                            })
                            .await
                    }
                },
            },
            (None, None) => Ok("0".to_owned()),
        }
    }

    /// Creates a RUNNING run; returns its id.
    pub async fn create_run(
        &self,
        experiment_id: &str,
        user: &str,
        run_name: Option<&str>,
        tags: Vec<RunTag>,
    ) -> Result<String> {
        match self {
            Tracking::Rest(c) => {
                let mut body = json!({
                    "experiment_id": experiment_id,
                    "user_id": user,
                    "start_time": now_ms(),
                    "tags": tags_json(&tags),
                });
                if let Some(name) = run_name {
                    body["run_name"] = json!(name);
                }
                let v = c.post_json("runs/create", &body).await?;
                v["run"]["info"]["run_id"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::internal("runs/create answered without a run id"))
            }
            Tracking::Store { store, providers } => {
                let tags = providers
                    .apply(experiment_id, Some(user), tags)
                    .await
                    .map_err(|e| Error::internal(e.to_string()))?;
                let run = store
                    .create_run(CreateRun {
                        experiment_id: experiment_id.to_owned(),
                        user_id: user.to_owned(),
                        start_time: now_ms(),
                        tags,
                        run_name: run_name.map(str::to_owned),
                    })
                    .await?;
                Ok(run.info.run_id)
            }
        }
    }

    /// Logs `params` and `tags` in one batch.
    pub async fn log_batch(
        &self,
        run_id: &str,
        params: Vec<Param>,
        tags: Vec<RunTag>,
    ) -> Result<()> {
        match self {
            Tracking::Rest(c) => {
                let params: Vec<_> = params
                    .iter()
                    .map(|p| json!({"key": p.key, "value": p.value}))
                    .collect();
                c.post_json(
                    "runs/log-batch",
                    &json!({"run_id": run_id, "params": params, "tags": tags_json(&tags)}),
                )
                .await
                .map(drop)
            }
            Tracking::Store { store, .. } => store.log_batch(run_id, vec![], params, tags).await,
        }
    }

    /// Ends the run with `status` now.
    pub async fn end_run(&self, run_id: &str, status: RunStatus) -> Result<()> {
        match self {
            Tracking::Rest(c) => c
                .post_json(
                    "runs/update",
                    &json!({"run_id": run_id, "status": status.as_str(), "end_time": now_ms()}),
                )
                .await
                .map(drop),
            Tracking::Store { store, .. } => store
                .update_run_info(
                    run_id,
                    UpdateRun {
                        status: Some(status),
                        end_time: Some(now_ms()),
                        run_name: None,
                    },
                )
                .await
                .map(drop),
        }
    }

    /// The latest value of the run's metric `key`, if logged.
    pub async fn latest_metric(&self, run_id: &str, key: &str) -> Result<Option<f64>> {
        match self {
            Tracking::Rest(c) => {
                let v = c.get_json("runs/get", &[("run_id", run_id)]).await?;
                Ok(v["run"]["data"]["metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|m| m["key"] == key)
                    .and_then(|m| m["value"].as_f64()))
            }
            Tracking::Store { store, .. } => {
                let run = store.get_run(run_id).await?;
                Ok(run
                    .data
                    .metrics
                    .into_iter()
                    .find(|m| m.key == key)
                    .map(|m| m.value))
            }
        }
    }

    /// The run's status and tags.
    pub async fn run_tags(&self, run_id: &str) -> Result<(String, BTreeMap<String, String>)> {
        match self {
            Tracking::Rest(c) => {
                let v = c.get_json("runs/get", &[("run_id", run_id)]).await?;
                let tags = v["run"]["data"]["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| {
                        Some((
                            t["key"].as_str()?.to_owned(),
                            t["value"].as_str()?.to_owned(),
                        ))
                    })
                    .collect();
                let status = v["run"]["info"]["status"].as_str().unwrap_or_default();
                Ok((status.to_owned(), tags))
            }
            Tracking::Store { store, .. } => {
                let run = store.get_run(run_id).await?;
                let tags = run
                    .data
                    .tags
                    .into_iter()
                    .map(|t| (t.key, t.value))
                    .collect();
                Ok((run.info.status.as_str().to_owned(), tags))
            }
        }
    }
}
