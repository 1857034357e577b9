//! [`TrackingImport`]: experiments, runs (with their whole metric history) and LoggedModels
//! written with the ids and times of the deployment they come from (`cairn import`).

use super::*;
use cairn_plugin_api::import::{Chunks, ImportRun, Imported, TrackingImport, next_chunk_blocking};

/// `AlreadyExists` naming both identities.
pub(super) fn conflict(message: String) -> StoreError {
    StoreError::Api(Error::already_exists(message))
}

#[cairn_plugin_api::async_trait]
impl TrackingImport for SqliteStore {
    async fn import_experiment(&self, exp: Experiment) -> Result<Imported> {
        let id = experiment_id(&exp.experiment_id)?;
        self.write(move |tx, _| {
            let by_id: Option<String> = tx
                .prepare_cached("SELECT name FROM experiments WHERE experiment_id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            if let Some(name) = by_id {
                if name == exp.name && id == 0 {
                    return import_default(tx, &exp);
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
            let by_name: Option<i64> = tx
                .prepare_cached("SELECT experiment_id FROM experiments WHERE name = ?1")?
                .query_row([&exp.name], |r| r.get(0))
                .optional()?;
            if let Some(other) = by_name {
                return Err(conflict(format!(
                    "experiment name '{}' is already taken here by experiment id {other}; the \
                     source gives it id {id}",
                    exp.name
                )));
            }
            let created = exp.creation_time.or(exp.last_update_time).unwrap_or(0);
            tx.execute(
                "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, \
                 creation_time, last_update_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    exp.name,
                    exp.artifact_location,
                    exp.lifecycle_stage.as_str(),
                    created,
                    exp.last_update_time.unwrap_or(created)
                ],
            )?;
            for t in &exp.tags {
                upsert_experiment_tag(tx, id, t)?;
            }
            Ok(Imported::Written)
        })
        .await
    }

    async fn import_run(&self, run: ImportRun, metrics: Chunks<Metric>) -> Result<Imported> {
        let exp_id = experiment_id(&run.info.experiment_id)?;
        let mut metrics = metrics;
        self.write(move |tx, _| {
            let info = &run.info;
            if let Some(present) = find_run(tx, &info.run_id)? {
                if present.experiment_id != exp_id {
                    return Err(conflict(format!(
                        "run {} is already here, in experiment {}; the source has it in \
                         experiment {exp_id}",
                        info.run_id, present.experiment_id
                    )));
                }
                return Ok(Imported::Present);
            }
            require_experiment(tx, exp_id)?;
            tx.execute(
                "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, \
                 end_time, artifact_uri, lifecycle_stage, deleted_time) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    info.run_id,
                    exp_id,
                    info.run_name,
                    info.user_id,
                    info.status.as_str(),
                    info.start_time,
                    info.end_time,
                    info.artifact_uri,
                    info.lifecycle_stage.as_str(),
                    run.deleted_time
                ],
            )?;
            let rref = RunRef {
                id: tx.last_insert_rowid(),
                run_uuid: info.run_id.clone(),
                experiment_id: exp_id,
                stage: info.lifecycle_stage,
            };
            for p in &run.params {
                tx.prepare_cached(
                    "INSERT INTO params (run, key, value) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (run, key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![rref.id, p.key, p.value])?;
            }
            for t in &run.tags {
                tx.prepare_cached(
                    "INSERT INTO tags (run, key, value) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (run, key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![rref.id, t.key, t.value])?;
            }
            for input in &run.inputs.dataset_inputs {
                let d = &input.dataset;
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO datasets (experiment_id, name, digest, source_type, \
                     source, schema, profile) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    exp_id,
                    d.name,
                    d.digest,
                    d.source_type,
                    d.source,
                    d.schema,
                    d.profile
                ])?;
                let dataset: i64 = tx
                    .prepare_cached(
                        "SELECT id FROM datasets WHERE experiment_id = ?1 AND name = ?2 \
                         AND digest = ?3",
                    )?
                    .query_row(params![exp_id, d.name, d.digest], |r| r.get(0))?;
                let inserted = tx
                    .prepare_cached("INSERT OR IGNORE INTO inputs (run, dataset) VALUES (?1, ?2)")?
                    .execute(params![rref.id, dataset])?;
                if inserted == 1 {
                    let input_id = tx.last_insert_rowid();
                    for t in &input.tags {
                        tx.prepare_cached(
                            "INSERT INTO input_tags (input, key, value) VALUES (?1, ?2, ?3) \
                             ON CONFLICT (input, key) DO UPDATE SET value = excluded.value",
                        )?
                        .execute(params![input_id, t.key, t.value])?;
                    }
                }
            }
            for m in &run.inputs.model_inputs {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO model_inputs (run, model_id) VALUES (?1, ?2)",
                )?
                .execute(params![rref.id, m.model_id])?;
            }
            for m in &run.outputs.model_outputs {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO model_outputs (run, model_id, step) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![rref.id, m.model_id, m.step])?;
            }
            while let Some(chunk) = next_chunk_blocking(&mut metrics) {
                let mut chunk = chunk?;
                // History rows of the run itself: a LoggedModel's metrics are imported with it.
                for m in &mut chunk {
                    m.model_id = None;
                }
                write_log_batch(tx, &rref, &chunk, &[], &[])?;
            }
            Ok(Imported::Written)
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
            let info = &model.info;
            if find_model(tx, &info.model_id)?.is_some() {
                return Ok(Imported::Present);
            }
            require_experiment(tx, exp_id)?;
            tx.execute(
                "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, \
                 creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, \
                 model_type, source_run_id, status_message) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    info.model_id,
                    exp_id,
                    info.name,
                    info.artifact_uri,
                    info.creation_timestamp_ms,
                    info.last_updated_timestamp_ms,
                    info.status.as_str(),
                    stage.as_str(),
                    info.model_type,
                    info.source_run_id,
                    info.status_message
                ],
            )?;
            let id = tx.last_insert_rowid();
            write_model_params(tx, id, &info.model_id, &model.data.params)?;
            write_model_tags(tx, id, &info.tags)?;
            for m in &model.data.metrics {
                upsert_model_metric(tx, id, m, m.run_id.as_deref())?;
            }
            Ok(Imported::Written)
        })
        .await
    }
}

/// `Default` (experiment 0) exists in every store before any import: it takes the source's
/// artifact location, lifecycle stage, times and tags ([`Imported::Present`] when it already
/// has them).
fn import_default(tx: &Transaction<'_>, exp: &Experiment) -> StoreResult<Imported> {
    let created = exp.creation_time.or(exp.last_update_time).unwrap_or(0);
    let changed = tx.execute(
        "UPDATE experiments SET artifact_location = ?1, lifecycle_stage = ?2, \
         creation_time = ?3, last_update_time = ?4 WHERE experiment_id = 0 AND \
         (artifact_location, lifecycle_stage, creation_time, last_update_time) \
         IS NOT (?1, ?2, ?3, ?4)",
        params![
            exp.artifact_location,
            exp.lifecycle_stage.as_str(),
            created,
            exp.last_update_time.unwrap_or(created)
        ],
    )?;
    let mut tags_changed = 0;
    for t in &exp.tags {
        tags_changed += tx
            .prepare_cached(
                "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (0, ?1, ?2) \
                 ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value \
                 WHERE value IS NOT excluded.value",
            )?
            .execute(params![t.key, t.value])?;
    }
    Ok(if changed + tags_changed > 0 {
        Imported::Written
    } else {
        Imported::Present
    })
}
