//! Runs: create, read (with everything they logged), update, delete/restore, tags, inputs and outputs.

use super::*;

/// The facts about a run that writes check.
pub(super) struct RunRef {
    pub(super) id: i64,
    pub(super) run_uuid: String,
    pub(super) experiment_id: i64,
    pub(super) stage: LifecycleStage,
}

pub(super) fn find_run(conn: &Connection, run_uuid: &str) -> StoreResult<Option<RunRef>> {
    let row = conn
        .prepare_cached("SELECT id, experiment_id, lifecycle_stage FROM runs WHERE run_uuid = ?1")?
        .query_row([run_uuid], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((id, experiment_id, s)) => Ok(Some(RunRef {
            id,
            run_uuid: run_uuid.to_string(),
            experiment_id,
            stage: stage(&s)?,
        })),
    }
}

pub(super) fn require_run(conn: &Connection, run_uuid: &str) -> StoreResult<RunRef> {
    find_run(conn, run_uuid)?.ok_or_else(|| no_run(run_uuid))
}

pub(super) fn require_active_run(conn: &Connection, run_uuid: &str) -> StoreResult<RunRef> {
    let run = require_run(conn, run_uuid)?;
    if run.stage != LifecycleStage::Active {
        return Err(invalid(format!(
            "The run {run_uuid} must be in the 'active' state. Current state is deleted."
        )));
    }
    Ok(run)
}

pub(super) const RUN_COLUMNS: &str = "id, run_uuid, experiment_id, name, user_id, status, start_time, \
                           end_time, artifact_uri, lifecycle_stage";

pub(super) fn run_info_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(i64, RunInfo, String, String)> {
    Ok((
        r.get(0)?,
        RunInfo {
            run_id: r.get(1)?,
            run_name: r.get(3)?,
            experiment_id: r.get::<_, i64>(2)?.to_string(),
            user_id: r.get(4)?,
            status: RunStatus::Running,
            start_time: r.get(6)?,
            end_time: r.get(7)?,
            artifact_uri: r.get(8)?,
            lifecycle_stage: LifecycleStage::Active,
        },
        r.get(5)?,
        r.get(9)?,
    ))
}

pub(super) fn finish_run_info(
    info: &mut RunInfo,
    status: &str,
    stage_text: &str,
) -> StoreResult<()> {
    info.status = RunStatus::from_name(status)
        .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?;
    info.lifecycle_stage = stage(stage_text)?;
    Ok(())
}

pub(super) fn load_run_info(conn: &Connection, id: i64) -> StoreResult<RunInfo> {
    let (_, mut info, status, st) = conn
        .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
        .query_row([id], run_info_row)?;
    finish_run_info(&mut info, &status, &st)?;
    Ok(info)
}

/// Runs with everything they logged, in the order of `ids` (ids that do not exist are skipped).
pub(super) fn load_runs(conn: &Connection, ids: &[i64]) -> StoreResult<Vec<Run>> {
    let mut runs: HashMap<i64, Run> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let mut sql = search_sql::sql();
        let list = sql.bind_list(chunk);
        let p = || search_sql::params(&sql);
        {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE id IN {list}"
            ))?;
            let rows = stmt.query_map(p(), run_info_row)?;
            for row in rows {
                let (id, mut info, status, st) = row?;
                finish_run_info(&mut info, &status, &st)?;
                runs.insert(
                    id,
                    Run {
                        info,
                        data: RunData::default(),
                        inputs: RunInputs::default(),
                        outputs: RunOutputs::default(),
                    },
                );
            }
        }
        {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT run, key, value FROM params WHERE run IN {list} ORDER BY run, key"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (id, k, v) = row?;
                if let Some(run) = runs.get_mut(&id) {
                    run.data.params.push(Param::new(k, v));
                }
            }
        }
        {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT run, key, value FROM tags WHERE run IN {list} ORDER BY run, key"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (id, k, v) = row?;
                if let Some(run) = runs.get_mut(&id) {
                    run.data.tags.push(RunTag::new(k, v));
                }
            }
        }
        {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT run, key, value, is_nan, timestamp, step FROM latest_metrics \
                 WHERE run IN {list} ORDER BY run, key"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Metric::new(
                        r.get::<_, String>(1)?,
                        metric_value(r.get(2)?, r.get(3)?),
                        r.get(4)?,
                        r.get(5)?,
                    ),
                ))
            })?;
            for row in rows {
                let (id, m) = row?;
                if let Some(run) = runs.get_mut(&id) {
                    run.data.metrics.push(m);
                }
            }
        }
        {
            // Dataset inputs in first-logged order, with their tags.
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT i.run, i.id, d.name, d.digest, d.source_type, d.source, d.schema, d.profile \
                 FROM inputs i JOIN datasets d ON d.id = i.dataset WHERE i.run IN {list} ORDER BY i.id"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    Dataset {
                        name: r.get(2)?,
                        digest: r.get(3)?,
                        source_type: r.get(4)?,
                        source: r.get(5)?,
                        schema: r.get(6)?,
                        profile: r.get(7)?,
                    },
                ))
            })?;
            let mut inputs: Vec<(i64, i64, Dataset)> = Vec::new();
            for row in rows {
                inputs.push(row?);
            }
            let input_ids: Vec<i64> = inputs.iter().map(|(_, id, _)| *id).collect();
            let mut tags = input_tags(conn, &input_ids)?;
            for (run_id, input_id, dataset) in inputs {
                if let Some(run) = runs.get_mut(&run_id) {
                    run.inputs.dataset_inputs.push(DatasetInput {
                        tags: tags.remove(&input_id).unwrap_or_default(),
                        dataset,
                    });
                }
            }
        }
        {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT run, model_id FROM model_inputs WHERE run IN {list} ORDER BY id"
            ))?;
            let rows =
                stmt.query_map(p(), |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (id, model_id) = row?;
                if let Some(run) = runs.get_mut(&id) {
                    run.inputs.model_inputs.push(ModelInput { model_id });
                }
            }
        }
        {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT run, model_id, step FROM model_outputs WHERE run IN {list} ORDER BY id"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (id, model_id, step) = row?;
                if let Some(run) = runs.get_mut(&id) {
                    run.outputs
                        .model_outputs
                        .push(ModelOutput { model_id, step });
                }
            }
        }
    }
    Ok(ids.iter().filter_map(|id| runs.remove(id)).collect())
}

pub(super) fn input_tags(
    conn: &Connection,
    input_ids: &[i64],
) -> StoreResult<HashMap<i64, Vec<InputTag>>> {
    let mut out: HashMap<i64, Vec<InputTag>> = HashMap::new();
    for chunk in input_ids.chunks(IN_CHUNK) {
        let mut sql = search_sql::sql();
        let list = sql.bind_list(chunk);
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT input, key, value FROM input_tags WHERE input IN {list} ORDER BY input, key"
        ))?;
        let rows = stmt.query_map(search_sql::params(&sql), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                InputTag::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?),
            ))
        })?;
        for row in rows {
            let (id, tag) = row?;
            out.entry(id).or_default().push(tag);
        }
    }
    Ok(out)
}

pub(super) fn load_run(conn: &Connection, run_uuid: &str) -> StoreResult<Run> {
    let run = require_run(conn, run_uuid)?;
    load_runs(conn, &[run.id])?
        .pop()
        .ok_or_else(|| no_run(run_uuid))
}

pub(super) fn upsert_run_tag(tx: &Connection, run: i64, key: &str, value: &str) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO tags (run, key, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (run, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![run, key, value])?;
    if key == RUN_NAME_TAG {
        tx.prepare_cached("UPDATE runs SET name = ?2 WHERE id = ?1")?
            .execute(params![run, value])?;
    }
    Ok(())
}

pub(super) fn set_run_lifecycle(
    tx: &Connection,
    where_clause: &str,
    id: i64,
    deleted: bool,
) -> StoreResult<usize> {
    let sql = if deleted {
        format!(
            "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ?2 WHERE {where_clause}"
        )
    } else {
        format!(
            "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE {where_clause} AND ?2 = ?2"
        )
    };
    Ok(tx.execute(&sql, params![id, now_ms()])?)
}

pub(super) async fn create_run(store: &SqliteStore, req: CreateRun) -> Result<Run> {
    let exp_id = experiment_id(&req.experiment_id)?;
    let tags = req.tags;
    let run_name = validation::resolve_run_name(req.run_name, &tags)?;
    let user_id = req.user_id;
    let start_time = req.start_time;
    store
        .write(move |tx, _| {
            let exp = require_active_experiment(tx, exp_id)?;
            let run_uuid = uuid::Uuid::new_v4().simple().to_string();
            let artifact_uri = cairn_plugin_api::paths::append_uri_path(
                &exp.artifact_location,
                &[&run_uuid, "artifacts"],
            );
            tx.prepare_cached(
                "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, \
             end_time, artifact_uri, lifecycle_stage) \
             VALUES (?1, ?2, ?3, ?4, 'RUNNING', ?5, NULL, ?6, 'active')",
            )?
            .execute(params![
                run_uuid,
                exp_id,
                run_name,
                user_id,
                start_time,
                artifact_uri
            ])?;
            let id = tx.last_insert_rowid();
            for t in &tags {
                upsert_run_tag(tx, id, &t.key, &t.value)?;
            }
            upsert_run_tag(tx, id, RUN_NAME_TAG, &run_name)?;
            load_runs(tx, &[id])?.pop().ok_or_else(|| no_run(&run_uuid))
        })
        .await
}

pub(super) async fn get_run(store: &SqliteStore, run_id: &str) -> Result<Run> {
    let run_id = run_id.to_string();
    store.read(move |tx| load_run(tx, &run_id)).await
}

pub(super) async fn update_run_info(
    store: &SqliteStore,
    run_id: &str,
    update: UpdateRun,
) -> Result<RunInfo> {
    let run_id = run_id.to_string();
    store
        .write(move |tx, _| {
            let run = require_active_run(tx, &run_id)?;
            if let Some(status) = update.status {
                tx.execute(
                    "UPDATE runs SET status = ?2 WHERE id = ?1",
                    params![run.id, status.as_str()],
                )?;
            }
            if let Some(end) = update.end_time {
                tx.execute(
                    "UPDATE runs SET end_time = ?2 WHERE id = ?1",
                    params![run.id, end],
                )?;
            }
            if let Some(name) = &update.run_name {
                upsert_run_tag(tx, run.id, RUN_NAME_TAG, name)?;
            }
            load_run_info(tx, run.id)
        })
        .await
}

pub(super) async fn delete_run(store: &SqliteStore, run_id: &str) -> Result<()> {
    let run_id = run_id.to_string();
    store
        .write(move |tx, _| {
            let run = require_run(tx, &run_id)?;
            set_run_lifecycle(tx, "id = ?1", run.id, true)?;
            Ok(())
        })
        .await
}

pub(super) async fn restore_run(store: &SqliteStore, run_id: &str) -> Result<()> {
    let run_id = run_id.to_string();
    store
        .write(move |tx, _| {
            let run = require_run(tx, &run_id)?;
            set_run_lifecycle(tx, "id = ?1", run.id, false)?;
            Ok(())
        })
        .await
}

pub(super) async fn delete_tag(store: &SqliteStore, run_id: &str, key: &str) -> Result<()> {
    let run_id = run_id.to_string();
    let key = key.to_string();
    store
        .write(move |tx, _| {
            let run = require_active_run(tx, &run_id)?;
            let n = tx.execute(
                "DELETE FROM tags WHERE run = ?1 AND key = ?2",
                params![run.id, key],
            )?;
            if n == 0 {
                return Err(not_found(format!(
                    "No tag with name: {key} in run with id {run_id}"
                )));
            }
            Ok(())
        })
        .await
}

pub(super) async fn log_inputs(
    store: &SqliteStore,
    run_id: &str,
    datasets: Vec<DatasetInput>,
    models: Vec<ModelInput>,
) -> Result<()> {
    let run_id = run_id.to_string();
    store.write(move |tx, _| {
        let run = require_active_run(tx, &run_id)?;
        for input in &datasets {
            let d = &input.dataset;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO datasets (experiment_id, name, digest, source_type, \
                 source, schema, profile) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![run.experiment_id, d.name, d.digest, d.source_type, d.source, d.schema, d.profile])?;
            let dataset_id: i64 = tx
                .prepare_cached("SELECT id FROM datasets WHERE experiment_id = ?1 AND name = ?2 AND digest = ?3")?
                .query_row(params![run.experiment_id, d.name, d.digest], |r| r.get(0))?;
            let inserted = tx
                .prepare_cached("INSERT OR IGNORE INTO inputs (run, dataset) VALUES (?1, ?2)")?
                .execute(params![run.id, dataset_id])?;
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
        for m in &models {
            tx.prepare_cached("INSERT OR IGNORE INTO model_inputs (run, model_id) VALUES (?1, ?2)")?
                .execute(params![run.id, m.model_id])?;
        }
        Ok(())
    })
    .await
}

pub(super) async fn log_outputs(
    store: &SqliteStore,
    run_id: &str,
    models: Vec<ModelOutput>,
) -> Result<()> {
    let run_id = run_id.to_string();
    store
        .write(move |tx, _| {
            let run = require_active_run(tx, &run_id)?;
            for m in &models {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO model_outputs (run, model_id, step) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![run.id, m.model_id, m.step])?;
            }
            Ok(())
        })
        .await
}
