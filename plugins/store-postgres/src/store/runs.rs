//! Runs: create, read (with everything they logged), update, delete/restore, tags, inputs and outputs.

use super::*;

/// The facts about a run that writes check.
pub(super) struct RunRef {
    pub(super) id: i64,
    pub(super) run_uuid: String,
    pub(super) experiment_id: i64,
    pub(super) stage: LifecycleStage,
}

/// Finds a run; `lock` takes its row lock, which every write to the run takes first, so
/// concurrent writers to one run (from any replica) serialise and never deadlock.
pub(super) async fn find_run(
    tx: &Transaction<'_>,
    run_uuid: &str,
    lock: bool,
) -> StoreResult<Option<RunRef>> {
    let sql = if lock {
        "SELECT id, experiment_id, lifecycle_stage FROM runs WHERE run_uuid = $1 FOR UPDATE"
    } else {
        "SELECT id, experiment_id, lifecycle_stage FROM runs WHERE run_uuid = $1"
    };
    match tx.query_opt(sql, &[&run_uuid]).await? {
        None => Ok(None),
        Some(r) => Ok(Some(RunRef {
            id: r.try_get(0)?,
            run_uuid: run_uuid.to_string(),
            experiment_id: r.try_get(1)?,
            stage: stage(r.try_get(2)?)?,
        })),
    }
}

pub(super) async fn require_run(
    tx: &Transaction<'_>,
    run_uuid: &str,
    lock: bool,
) -> StoreResult<RunRef> {
    find_run(tx, run_uuid, lock)
        .await?
        .ok_or_else(|| no_run(run_uuid))
}

pub(super) async fn require_active_run(
    tx: &Transaction<'_>,
    run_uuid: &str,
    lock: bool,
) -> StoreResult<RunRef> {
    let run = require_run(tx, run_uuid, lock).await?;
    if run.stage != LifecycleStage::Active {
        return Err(invalid(format!(
            "The run {run_uuid} must be in the 'active' state. Current state is deleted."
        )));
    }
    Ok(run)
}

pub(super) const RUN_COLUMNS: &str = "id, run_uuid, experiment_id, name, user_id, status, start_time, \
                           end_time, artifact_uri, lifecycle_stage";

pub(super) fn run_info_row(r: &Row) -> StoreResult<(i64, RunInfo)> {
    let status: String = r.try_get(5)?;
    Ok((
        r.try_get(0)?,
        RunInfo {
            run_id: r.try_get(1)?,
            run_name: r.try_get(3)?,
            experiment_id: r.try_get::<_, i64>(2)?.to_string(),
            user_id: r.try_get(4)?,
            status: RunStatus::from_name(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?,
            start_time: r.try_get(6)?,
            end_time: r.try_get(7)?,
            artifact_uri: r.try_get(8)?,
            lifecycle_stage: stage(r.try_get(9)?)?,
        },
    ))
}

pub(super) async fn load_run_info(tx: &Transaction<'_>, id: i64) -> StoreResult<RunInfo> {
    let r = tx
        .query_one(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(run_info_row(&r)?.1)
}

fn kv(r: &Row) -> StoreResult<(i64, String, String)> {
    Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
}

/// Runs with everything they logged, in the order of `ids` (ids that do not exist are skipped).
///
/// The eight statements of a chunk are sent at once (pipelined on the connection: one round
/// trip, not eight), each fetching its rows for all the chunk's runs.
pub(super) async fn load_runs(tx: &Transaction<'_>, ids: &[i64]) -> StoreResult<Vec<Run>> {
    let mut runs: HashMap<i64, Run> = HashMap::with_capacity(ids.len());
    let info_sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ANY($1)");
    for chunk in ids.chunks(IN_CHUNK) {
        let chunk = chunk.to_vec();
        let p: &[&(dyn ToSql + Sync)] = &[&chunk];
        let (info, params, tags, metrics, inputs, input_tags, model_inputs, model_outputs) = tokio::try_join!(
            tx.query(&info_sql, p),
            tx.query(
                "SELECT run, key, value FROM params WHERE run = ANY($1) ORDER BY run, key",
                p,
            ),
            tx.query(
                "SELECT run, key, value FROM tags WHERE run = ANY($1) ORDER BY run, key",
                p,
            ),
            tx.query(
                "SELECT run, key, value, is_nan, timestamp, step FROM latest_metrics \
                 WHERE run = ANY($1) ORDER BY run, key",
                p,
            ),
            // Dataset inputs in first-logged order, with their tags.
            tx.query(
                "SELECT i.run, i.id, d.name, d.digest, d.source_type, d.source, d.schema, d.profile \
                 FROM inputs i JOIN datasets d ON d.id = i.dataset WHERE i.run = ANY($1) ORDER BY i.id",
                p,
            ),
            tx.query(
                "SELECT t.input, t.key, t.value FROM input_tags t JOIN inputs i ON i.id = t.input \
                 WHERE i.run = ANY($1) ORDER BY t.input, t.key",
                p,
            ),
            tx.query(
                "SELECT run, model_id FROM model_inputs WHERE run = ANY($1) ORDER BY id",
                p,
            ),
            tx.query(
                "SELECT run, model_id, step FROM model_outputs WHERE run = ANY($1) ORDER BY id",
                p,
            ),
        )?;
        for r in &info {
            let (id, info) = run_info_row(r)?;
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
        for r in &params {
            let (id, k, v) = kv(r)?;
            if let Some(run) = runs.get_mut(&id) {
                run.data.params.push(Param::new(k, v));
            }
        }
        for r in &tags {
            let (id, k, v) = kv(r)?;
            if let Some(run) = runs.get_mut(&id) {
                run.data.tags.push(RunTag::new(k, v));
            }
        }
        for r in &metrics {
            let id: i64 = r.try_get(0)?;
            let m = Metric::new(
                r.try_get::<_, String>(1)?,
                metric_value(r.try_get(2)?, r.try_get::<_, i32>(3)? != 0),
                r.try_get(4)?,
                r.try_get(5)?,
            );
            if let Some(run) = runs.get_mut(&id) {
                run.data.metrics.push(m);
            }
        }
        let mut tags_of_input: HashMap<i64, Vec<InputTag>> = HashMap::new();
        for r in &input_tags {
            let (id, k, v) = kv(r)?;
            tags_of_input
                .entry(id)
                .or_default()
                .push(InputTag::new(k, v));
        }
        for r in &inputs {
            let (run_id, input_id): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
            let dataset = Dataset {
                name: r.try_get(2)?,
                digest: r.try_get(3)?,
                source_type: r.try_get(4)?,
                source: r.try_get(5)?,
                schema: r.try_get(6)?,
                profile: r.try_get(7)?,
            };
            if let Some(run) = runs.get_mut(&run_id) {
                run.inputs.dataset_inputs.push(DatasetInput {
                    tags: tags_of_input.remove(&input_id).unwrap_or_default(),
                    dataset,
                });
            }
        }
        for r in &model_inputs {
            let id: i64 = r.try_get(0)?;
            if let Some(run) = runs.get_mut(&id) {
                run.inputs.model_inputs.push(ModelInput {
                    model_id: r.try_get(1)?,
                });
            }
        }
        for r in &model_outputs {
            let id: i64 = r.try_get(0)?;
            if let Some(run) = runs.get_mut(&id) {
                run.outputs.model_outputs.push(ModelOutput {
                    model_id: r.try_get(1)?,
                    step: r.try_get(2)?,
                });
            }
        }
    }
    Ok(ids.iter().filter_map(|id| runs.remove(id)).collect())
}

pub(super) async fn load_run(tx: &Transaction<'_>, run_uuid: &str) -> StoreResult<Run> {
    let run = require_run(tx, run_uuid, false).await?;
    load_runs(tx, &[run.id])
        .await?
        .pop()
        .ok_or_else(|| no_run(run_uuid))
}

pub(super) async fn upsert_run_tag(
    tx: &Transaction<'_>,
    run: &RunRef,
    key: &str,
    value: &str,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO tags (run, experiment_id, key, value) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (run, key) DO UPDATE SET value = excluded.value",
        &[&run.id, &run.experiment_id, &key, &value],
    )
    .await?;
    if key == RUN_NAME_TAG {
        tx.execute(
            "UPDATE runs SET name = $2 WHERE id = $1",
            &[&run.id, &value],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn set_run_lifecycle(
    tx: &Transaction<'_>,
    where_clause: &str,
    id: i64,
    deleted: bool,
) -> StoreResult<u64> {
    let n = if deleted {
        tx.execute(
            &format!(
                "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = $2 WHERE {where_clause}"
            ),
            &[&id, &now_ms()],
        )
        .await?
    } else {
        tx.execute(
            &format!(
                "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL WHERE {where_clause}"
            ),
            &[&id],
        )
        .await?
    };
    Ok(n)
}

pub(super) async fn create_run(store: &PostgresStore, req: CreateRun) -> Result<Run> {
    let exp_id = experiment_id(&req.experiment_id)?;
    let tags = req.tags;
    let run_name = validation::resolve_run_name(req.run_name, &tags)?;
    let user_id = req.user_id;
    let start_time = req.start_time;
    store
        .write(move |tx, _| {
            Box::pin(async move {
                tx.execute(
                    "SELECT 1 FROM experiments WHERE experiment_id = $1 FOR SHARE",
                    &[&exp_id],
                )
                .await?;
                let exp = require_active_experiment(tx, exp_id).await?;
                let run_uuid = uuid::Uuid::new_v4().simple().to_string();
                let artifact_uri = cairn_plugin_api::paths::append_uri_path(
                    &exp.artifact_location,
                    &[&run_uuid, "artifacts"],
                );
                let id: i64 = tx
                    .query_one(
                        "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, \
                         start_time, end_time, artifact_uri, lifecycle_stage) \
                         VALUES ($1, $2, $3, $4, 'RUNNING', $5, NULL, $6, 'active') RETURNING id",
                        &[
                            &run_uuid,
                            &exp_id,
                            &run_name,
                            &user_id,
                            &start_time,
                            &artifact_uri,
                        ],
                    )
                    .await?
                    .try_get(0)?;
                let run = RunRef {
                    id,
                    run_uuid: run_uuid.clone(),
                    experiment_id: exp_id,
                    stage: LifecycleStage::Active,
                };
                for t in &tags {
                    upsert_run_tag(tx, &run, &t.key, &t.value).await?;
                }
                upsert_run_tag(tx, &run, RUN_NAME_TAG, &run_name).await?;
                load_runs(tx, &[id])
                    .await?
                    .pop()
                    .ok_or_else(|| no_run(&run_uuid))
            })
        })
        .await
}

pub(super) async fn get_run(store: &PostgresStore, run_id: &str) -> Result<Run> {
    let run_id = run_id.to_string();
    store
        .read(move |tx| Box::pin(async move { load_run(tx, &run_id).await }))
        .await
}

pub(super) async fn update_run_info(
    store: &PostgresStore,
    run_id: &str,
    update: UpdateRun,
) -> Result<RunInfo> {
    let run_id = run_id.to_string();
    store
        .write(move |tx, _| {
            Box::pin(async move {
                let run = require_active_run(tx, &run_id, true).await?;
                if let Some(status) = update.status {
                    tx.execute(
                        "UPDATE runs SET status = $2 WHERE id = $1",
                        &[&run.id, &status.as_str()],
                    )
                    .await?;
                }
                if let Some(end) = update.end_time {
                    tx.execute(
                        "UPDATE runs SET end_time = $2 WHERE id = $1",
                        &[&run.id, &end],
                    )
                    .await?;
                }
                if let Some(name) = &update.run_name {
                    upsert_run_tag(tx, &run, RUN_NAME_TAG, name).await?;
                }
                load_run_info(tx, run.id).await
            })
        })
        .await
}

pub(super) async fn delete_run(store: &PostgresStore, run_id: &str) -> Result<()> {
    let run_id = run_id.to_string();
    store
        .write(move |tx, _| {
            Box::pin(async move {
                let run = require_run(tx, &run_id, true).await?;
                set_run_lifecycle(tx, "id = $1", run.id, true).await?;
                Ok(())
            })
        })
        .await
}

pub(super) async fn restore_run(store: &PostgresStore, run_id: &str) -> Result<()> {
    let run_id = run_id.to_string();
    store
        .write(move |tx, _| {
            Box::pin(async move {
                let run = require_run(tx, &run_id, true).await?;
                set_run_lifecycle(tx, "id = $1", run.id, false).await?;
                Ok(())
            })
        })
        .await
}

pub(super) async fn delete_tag(store: &PostgresStore, run_id: &str, key: &str) -> Result<()> {
    let run_id = run_id.to_string();
    let key = key.to_string();
    store
        .write(move |tx, _| {
            Box::pin(async move {
                let run = require_active_run(tx, &run_id, true).await?;
                let n = tx
                    .execute(
                        "DELETE FROM tags WHERE run = $1 AND key = $2",
                        &[&run.id, &key],
                    )
                    .await?;
                if n == 0 {
                    return Err(not_found(format!(
                        "No tag with name: {key} in run with id {run_id}"
                    )));
                }
                Ok(())
            })
        })
        .await
}

pub(super) async fn log_inputs(
    store: &PostgresStore,
    run_id: &str,
    datasets: Vec<DatasetInput>,
    models: Vec<ModelInput>,
) -> Result<()> {
    let run_id = run_id.to_string();
    store
        .write(move |tx, _| {
            Box::pin(async move {
                let run = require_active_run(tx, &run_id, true).await?;
                for input in &datasets {
                    let d = &input.dataset;
                    tx.execute(
                        "INSERT INTO datasets (experiment_id, name, digest, source_type, source, \
                         schema, profile) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                        &[
                            &run.experiment_id,
                            &d.name,
                            &d.digest,
                            &d.source_type,
                            &d.source,
                            &d.schema,
                            &d.profile,
                        ],
                    )
                    .await?;
                    let dataset_id: i64 = tx
                        .query_one(
                            "SELECT id FROM datasets WHERE experiment_id = $1 AND name = $2 \
                             AND digest = $3",
                            &[&run.experiment_id, &d.name, &d.digest],
                        )
                        .await?
                        .try_get(0)?;
                    let inserted = tx
                        .query_opt(
                            "INSERT INTO inputs (run, dataset) VALUES ($1, $2) \
                             ON CONFLICT DO NOTHING RETURNING id",
                            &[&run.id, &dataset_id],
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
                for m in &models {
                    tx.execute(
                        "INSERT INTO model_inputs (run, model_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        &[&run.id, &m.model_id],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
}

pub(super) async fn log_outputs(
    store: &PostgresStore,
    run_id: &str,
    models: Vec<ModelOutput>,
) -> Result<()> {
    let run_id = run_id.to_string();
    store
        .write(move |tx, _| {
            Box::pin(async move {
                let run = require_active_run(tx, &run_id, true).await?;
                for m in &models {
                    tx.execute(
                        "INSERT INTO model_outputs (run, model_id, step) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING",
                        &[&run.id, &m.model_id, &m.step],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
}
