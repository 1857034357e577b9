//! Experiments: create, read, rename, delete/restore, tags; the `Default` experiment.

use super::*;

pub(crate) async fn ensure_default_experiment(tx: &Transaction<'_>, ctx: &Ctx) -> StoreResult<()> {
    let now = now_ms();
    tx.execute(
        "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, \
         creation_time, last_update_time) VALUES (0, 'Default', $1, 'active', $2, $2) \
         ON CONFLICT DO NOTHING",
        &[
            &cairn_plugin_api::paths::append_uri_path(&ctx.default_artifact_root, &["0"]),
            &now,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn load_experiment(
    tx: &Transaction<'_>,
    id: i64,
) -> StoreResult<Option<Experiment>> {
    let Some(r) = tx
        .query_opt(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, \
             last_update_time FROM experiments WHERE experiment_id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let mut exp = experiment_row(&r)?;
    exp.tags = experiment_tags(tx, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    Ok(Some(exp))
}

pub(super) fn experiment_row(r: &Row) -> StoreResult<Experiment> {
    Ok(Experiment {
        experiment_id: r.try_get::<_, i64>(0)?.to_string(),
        name: r.try_get(1)?,
        artifact_location: r.try_get(2)?,
        lifecycle_stage: stage(r.try_get(3)?)?,
        creation_time: r.try_get(4)?,
        last_update_time: r.try_get(5)?,
        tags: Vec::new(),
    })
}

pub(super) async fn experiment_tags(
    tx: &Transaction<'_>,
    ids: &[i64],
) -> StoreResult<HashMap<i64, Vec<ExperimentTag>>> {
    let mut out: HashMap<i64, Vec<ExperimentTag>> = HashMap::new();
    let rows = tx
        .query(
            "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id = ANY($1) \
             ORDER BY experiment_id, key",
            &[&ids],
        )
        .await?;
    for r in rows {
        out.entry(r.try_get(0)?)
            .or_default()
            .push(ExperimentTag::new(
                r.try_get::<_, String>(1)?,
                r.try_get::<_, String>(2)?,
            ));
    }
    Ok(out)
}

pub(super) async fn require_experiment(tx: &Transaction<'_>, id: i64) -> StoreResult<Experiment> {
    load_experiment(tx, id)
        .await?
        .ok_or_else(|| no_experiment(id))
}

pub(super) async fn require_active_experiment(
    tx: &Transaction<'_>,
    id: i64,
) -> StoreResult<Experiment> {
    let exp = require_experiment(tx, id).await?;
    if exp.lifecycle_stage != LifecycleStage::Active {
        return Err(invalid(format!(
            "The experiment {id} must be in the 'active' state. Current state is deleted."
        )));
    }
    Ok(exp)
}

pub(super) async fn upsert_experiment_tag(
    tx: &Transaction<'_>,
    id: i64,
    tag: &ExperimentTag,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
        &[&id, &tag.key, &tag.value],
    )
    .await?;
    Ok(())
}

/// Locks experiment `id`'s row for the rest of the transaction (writes that depend on its
/// lifecycle serialise with its deletion).
async fn lock_experiment(tx: &Transaction<'_>, id: i64) -> StoreResult<()> {
    tx.execute(
        "SELECT 1 FROM experiments WHERE experiment_id = $1 FOR UPDATE",
        &[&id],
    )
    .await?;
    Ok(())
}

pub(super) async fn create_experiment(
    store: &PostgresStore,
    req: CreateExperiment,
) -> Result<String> {
    store
        .write(move |tx, ctx| {
            Box::pin(async move {
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&EXPERIMENT_LOCK])
                    .await?;
                let taken = tx
                    .query_opt("SELECT 1 FROM experiments WHERE name = $1", &[&req.name])
                    .await?
                    .is_some();
                if taken {
                    return Err(StoreError::Api(Error::already_exists(format!(
                        "Experiment(name={}) already exists.",
                        req.name
                    ))));
                }
                let id: i64 = tx
                    .query_one(
                        "SELECT coalesce(max(experiment_id), -1) + 1 FROM experiments",
                        &[],
                    )
                    .await?
                    .try_get(0)?;
                let location = match req.artifact_location.as_deref() {
                    Some(l) if !l.is_empty() => l.to_string(),
                    _ => cairn_plugin_api::paths::append_uri_path(
                        &ctx.default_artifact_root,
                        &[&id.to_string()],
                    ),
                };
                let now = now_ms();
                tx.execute(
                    "INSERT INTO experiments (experiment_id, name, artifact_location, \
                     lifecycle_stage, creation_time, last_update_time) \
                     VALUES ($1, $2, $3, 'active', $4, $4)",
                    &[&id, &req.name, &location, &now],
                )
                .await?;
                for t in &req.tags {
                    upsert_experiment_tag(tx, id, t).await?;
                }
                Ok(id.to_string())
            })
        })
        .await
}

pub(super) async fn get_experiment(
    store: &PostgresStore,
    experiment_id_text: &str,
) -> Result<Experiment> {
    let id = experiment_id(experiment_id_text)?;
    store
        .read(move |tx| Box::pin(async move { require_experiment(tx, id).await }))
        .await
}

pub(super) async fn get_experiment_by_name(
    store: &PostgresStore,
    name: &str,
) -> Result<Option<Experiment>> {
    let name = name.to_string();
    store
        .read(move |tx| {
            Box::pin(async move {
                let id: Option<i64> = tx
                    .query_opt(
                        "SELECT experiment_id FROM experiments WHERE name = $1 \
                         ORDER BY lifecycle_stage = 'active' DESC LIMIT 1",
                        &[&name],
                    )
                    .await?
                    .map(|r| r.get(0));
                match id {
                    Some(id) => load_experiment(tx, id).await,
                    None => Ok(None),
                }
            })
        })
        .await
}

pub(super) async fn delete_experiment(
    store: &PostgresStore,
    experiment_id_text: &str,
) -> Result<()> {
    let id = experiment_id(experiment_id_text)?;
    store
        .write(move |tx, _| {
            Box::pin(async move {
                lock_experiment(tx, id).await?;
                let exp = load_experiment(tx, id).await?;
                if exp.is_none_or(|e| e.lifecycle_stage != LifecycleStage::Active) {
                    return Err(no_experiment(id));
                }
                tx.execute(
                    "UPDATE experiments SET lifecycle_stage = 'deleted', last_update_time = $2 \
                     WHERE experiment_id = $1",
                    &[&id, &now_ms()],
                )
                .await?;
                set_run_lifecycle(tx, "experiment_id = $1", id, true).await?;
                Ok(())
            })
        })
        .await
}

pub(super) async fn restore_experiment(
    store: &PostgresStore,
    experiment_id_text: &str,
) -> Result<()> {
    let id = experiment_id(experiment_id_text)?;
    store
        .write(move |tx, _| {
            Box::pin(async move {
                lock_experiment(tx, id).await?;
                let exp = load_experiment(tx, id).await?;
                if exp.is_none_or(|e| e.lifecycle_stage != LifecycleStage::Deleted) {
                    return Err(no_experiment(id));
                }
                tx.execute(
                    "UPDATE experiments SET lifecycle_stage = 'active', last_update_time = $2 \
                     WHERE experiment_id = $1",
                    &[&id, &now_ms()],
                )
                .await?;
                set_run_lifecycle(tx, "experiment_id = $1", id, false).await?;
                Ok(())
            })
        })
        .await
}

pub(super) async fn rename_experiment(
    store: &PostgresStore,
    experiment_id_text: &str,
    new_name: &str,
) -> Result<()> {
    let id = experiment_id(experiment_id_text)?;
    let new_name = new_name.to_string();
    store
        .write(move |tx, _| {
            Box::pin(async move {
                lock_experiment(tx, id).await?;
                let exp = require_experiment(tx, id).await?;
                if exp.lifecycle_stage != LifecycleStage::Active {
                    return Err(StoreError::Api(Error::new(
                        ErrorKind::InvalidState,
                        "Cannot rename a non-active experiment.",
                    )));
                }
                if exp.name == new_name {
                    return Ok(());
                }
                let taken = tx
                    .query_opt("SELECT 1 FROM experiments WHERE name = $1", &[&new_name])
                    .await?
                    .is_some();
                if taken {
                    return Err(StoreError::Api(Error::already_exists(format!(
                        "Experiment(name={new_name}) already exists."
                    ))));
                }
                tx.execute(
                    "UPDATE experiments SET name = $2, last_update_time = $3 WHERE experiment_id = $1",
                    &[&id, &new_name, &now_ms()],
                )
                .await?;
                Ok(())
            })
        })
        .await
}

pub(super) async fn set_experiment_tag(
    store: &PostgresStore,
    experiment_id_text: &str,
    tag: ExperimentTag,
) -> Result<()> {
    let id = experiment_id(experiment_id_text)?;
    store
        .write(move |tx, _| {
            Box::pin(async move {
                lock_experiment(tx, id).await?;
                require_active_experiment(tx, id).await?;
                upsert_experiment_tag(tx, id, &tag).await
            })
        })
        .await
}

pub(super) async fn delete_experiment_tag(
    store: &PostgresStore,
    experiment_id_text: &str,
    key: &str,
) -> Result<()> {
    let id = experiment_id(experiment_id_text)?;
    let key = key.to_string();
    store
        .write(move |tx, _| {
            Box::pin(async move {
                lock_experiment(tx, id).await?;
                require_active_experiment(tx, id).await?;
                let n = tx
                    .execute(
                        "DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2",
                        &[&id, &key],
                    )
                    .await?;
                if n == 0 {
                    return Err(not_found(format!(
                        "No tag with name: {key} in experiment with id {id}"
                    )));
                }
                Ok(())
            })
        })
        .await
}
