//! [`TrackingImport`]: experiments, runs (with their whole metric history) and LoggedModels
//! written with the ids and times of the deployment they come from (`cairn import`). Each
//! entity is one transaction; a run's history chunks are consumed inside it.

use super::*;
use cairn_plugin_api::import::{Chunks, ImportRun, Imported, TrackingImport, next_chunk};

/// `AlreadyExists` naming both identities.
pub(crate) fn conflict(message: String) -> StoreError {
    StoreError::Api(Error::already_exists(message))
}

#[cairn_plugin_api::async_trait]
impl TrackingImport for PostgresStore {
    /// `ANALYZE` of the store's tables (those of the connection's schema, not the whole
    /// database's): autovacuum would analyse the imported tables only on one of its next
    /// rounds (up to `autovacuum_naptime` later), and until then the planner takes them for
    /// nearly empty and plans searches with nested loops (hundreds of ms instead of ~1).
    async fn import_finished(&self) -> Result<()> {
        self.write(|tx, _| {
            Box::pin(async move {
                let tables: Vec<String> = tx
                    .query(
                        "SELECT format('%I', tablename) FROM pg_tables \
                         WHERE schemaname = current_schema() ORDER BY tablename",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<std::result::Result<_, _>>()?;
                if !tables.is_empty() {
                    tx.batch_execute(&format!("ANALYZE {}", tables.join(", ")))
                        .await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn import_experiment(&self, exp: Experiment) -> Result<Imported> {
        let id = experiment_id(&exp.experiment_id)?;
        self.write(move |tx, _| {
            Box::pin(async move {
                // The lock experiment creation takes: ids and names are checked and taken
                // under it, as create_experiment does.
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&EXPERIMENT_LOCK])
                    .await?;
                let by_id = tx
                    .query_opt(
                        "SELECT name FROM experiments WHERE experiment_id = $1",
                        &[&id],
                    )
                    .await?;
                if let Some(r) = by_id {
                    let name: String = r.try_get(0)?;
                    if name == exp.name && id == 0 {
                        return import_default(tx, &exp).await;
                    }
                    if name == exp.name {
                        return Ok(Imported::Present);
                    }
                    return Err(conflict(format!(
                        "experiment id {id} is already taken by experiment '{name}' here; the \
                         source's experiment {id} is '{}'",
                        exp.name
                    )));
                }
                let by_name = tx
                    .query_opt(
                        "SELECT experiment_id FROM experiments WHERE name = $1",
                        &[&exp.name],
                    )
                    .await?;
                if let Some(r) = by_name {
                    let other: i64 = r.try_get(0)?;
                    return Err(conflict(format!(
                        "experiment name '{}' is already taken here by experiment id {other}; \
                         the source gives it id {id}",
                        exp.name
                    )));
                }
                let created = exp.creation_time.or(exp.last_update_time).unwrap_or(0);
                tx.execute(
                    "INSERT INTO experiments (experiment_id, name, artifact_location, \
                     lifecycle_stage, creation_time, last_update_time) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &id,
                        &exp.name,
                        &exp.artifact_location,
                        &exp.lifecycle_stage.as_str(),
                        &created,
                        &exp.last_update_time.unwrap_or(created),
                    ],
                )
                .await?;
                for t in &exp.tags {
                    upsert_experiment_tag(tx, id, t).await?;
                }
                Ok(Imported::Written)
            })
        })
        .await
    }

    async fn import_run(&self, run: ImportRun, metrics: Chunks<Metric>) -> Result<Imported> {
        let exp_id = experiment_id(&run.info.experiment_id)?;
        let mut metrics = metrics;
        self.write(move |tx, _| {
            Box::pin(async move {
                let info = &run.info;
                if let Some(present) = find_run(tx, &info.run_id, false).await? {
                    if present.experiment_id != exp_id {
                        return Err(conflict(format!(
                            "run {} is already here, in experiment {}; the source has it in \
                             experiment {exp_id}",
                            info.run_id, present.experiment_id
                        )));
                    }
                    return Ok(Imported::Present);
                }
                require_experiment(tx, exp_id).await?;
                // A concurrent import of the same run loses on the unique run_uuid and rolls
                // back whole.
                let id: i64 = tx
                    .query_one(
                        "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, \
                         start_time, end_time, artifact_uri, lifecycle_stage, deleted_time) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                        &[
                            &info.run_id,
                            &exp_id,
                            &info.run_name,
                            &info.user_id,
                            &info.status.as_str(),
                            &info.start_time,
                            &info.end_time,
                            &info.artifact_uri,
                            &info.lifecycle_stage.as_str(),
                            &run.deleted_time,
                        ],
                    )
                    .await?
                    .try_get(0)?;
                let rref = RunRef {
                    id,
                    run_uuid: info.run_id.clone(),
                    experiment_id: exp_id,
                    stage: info.lifecycle_stage,
                };
                for p in &run.params {
                    tx.execute(
                        "INSERT INTO params (run, experiment_id, key, value) \
                         VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (run, key) DO UPDATE SET value = excluded.value",
                        &[&id, &exp_id, &p.key, &p.value],
                    )
                    .await?;
                }
                for t in &run.tags {
                    tx.execute(
                        "INSERT INTO tags (run, experiment_id, key, value) \
                         VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (run, key) DO UPDATE SET value = excluded.value",
                        &[&id, &exp_id, &t.key, &t.value],
                    )
                    .await?;
                }
                for input in &run.inputs.dataset_inputs {
                    let d = &input.dataset;
                    tx.execute(
                        "INSERT INTO datasets (experiment_id, name, digest, source_type, source, \
                         schema, profile) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                        &[
                            &exp_id,
                            &d.name,
                            &d.digest,
                            &d.source_type,
                            &d.source,
                            &d.schema,
                            &d.profile,
                        ],
                    )
                    .await?;
                    let dataset: i64 = tx
                        .query_one(
                            "SELECT id FROM datasets WHERE experiment_id = $1 AND name = $2 \
                             AND digest = $3",
                            &[&exp_id, &d.name, &d.digest],
                        )
                        .await?
                        .try_get(0)?;
                    let inserted = tx
                        .query_opt(
                            "INSERT INTO inputs (run, dataset) VALUES ($1, $2) \
                             ON CONFLICT DO NOTHING RETURNING id",
                            &[&id, &dataset],
                        )
                        .await?;
                    if let Some(r) = inserted {
                        let input_id: i64 = r.try_get(0)?;
                        for t in &input.tags {
                            tx.execute(
                                "INSERT INTO input_tags (input, key, value) VALUES ($1, $2, $3) \
                                 ON CONFLICT (input, key) DO UPDATE SET value = excluded.value",
                                &[&input_id, &t.key, &t.value],
                            )
                            .await?;
                        }
                    }
                }
                for m in &run.inputs.model_inputs {
                    tx.execute(
                        "INSERT INTO model_inputs (run, model_id) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                        &[&id, &m.model_id],
                    )
                    .await?;
                }
                for m in &run.outputs.model_outputs {
                    tx.execute(
                        "INSERT INTO model_outputs (run, model_id, step) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING",
                        &[&id, &m.model_id, &m.step],
                    )
                    .await?;
                }
                while let Some(chunk) = next_chunk(&mut metrics).await {
                    let mut chunk = chunk?;
                    // History rows of the run itself: a LoggedModel's metrics come with it.
                    for m in &mut chunk {
                        m.model_id = None;
                    }
                    write_log_batch(tx, &rref, &chunk, &[], &[]).await?;
                }
                Ok(Imported::Written)
            })
        })
        .await
    }

    async fn import_logged_model(
        &self,
        model: LoggedModel,
        stage: LifecycleStage,
    ) -> Result<Imported> {
        let exp_id = experiment_id(&model.info.experiment_id)?;
        self.write(move |tx, _| {
            Box::pin(async move {
                let info = &model.info;
                if find_model(tx, &info.model_id).await?.is_some() {
                    return Ok(Imported::Present);
                }
                require_experiment(tx, exp_id).await?;
                let id: i64 = tx
                    .query_one(
                        "INSERT INTO logged_models (model_id, experiment_id, name, \
                         artifact_location, creation_timestamp_ms, last_updated_timestamp_ms, \
                         status, lifecycle_stage, model_type, source_run_id, status_message) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                        &[
                            &info.model_id,
                            &exp_id,
                            &info.name,
                            &info.artifact_uri,
                            &info.creation_timestamp_ms,
                            &info.last_updated_timestamp_ms,
                            &info.status.as_str(),
                            &stage.as_str(),
                            &info.model_type,
                            &info.source_run_id,
                            &info.status_message,
                        ],
                    )
                    .await?
                    .try_get(0)?;
                write_model_params(tx, id, &info.model_id, &model.data.params).await?;
                write_model_tags(tx, id, &info.tags).await?;
                for m in &model.data.metrics {
                    upsert_model_metric(tx, id, m, m.run_id.as_deref()).await?;
                }
                Ok(Imported::Written)
            })
        })
        .await
    }
}

/// `Default` (experiment 0) exists in every store before any import: it takes the source's
/// artifact location, lifecycle stage, times and tags ([`Imported::Present`] when it already
/// has them).
async fn import_default(tx: &Transaction<'_>, exp: &Experiment) -> StoreResult<Imported> {
    let created = exp.creation_time.or(exp.last_update_time).unwrap_or(0);
    let changed = tx
        .execute(
            "UPDATE experiments SET artifact_location = $1, lifecycle_stage = $2, \
             creation_time = $3, last_update_time = $4 WHERE experiment_id = 0 AND \
             (artifact_location, lifecycle_stage, creation_time, last_update_time) \
             IS DISTINCT FROM ($1, $2, $3, $4)",
            &[
                &exp.artifact_location,
                &exp.lifecycle_stage.as_str(),
                &created,
                &exp.last_update_time.unwrap_or(created),
            ],
        )
        .await?;
    let mut tags_changed = 0;
    for t in &exp.tags {
        tags_changed += tx
            .execute(
                "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (0, $1, $2) \
                 ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value \
                 WHERE experiment_tags.value IS DISTINCT FROM excluded.value",
                &[&t.key, &t.value],
            )
            .await?;
    }
    Ok(if changed + tags_changed > 0 {
        Imported::Written
    } else {
        Imported::Present
    })
}
