//! Experiments: create, read, rename, delete/restore, tags; the `Default` experiment.

use super::*;

pub(super) fn ensure_default_experiment(conn: &mut Connection, ctx: &Ctx) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let exists: bool = tx
        .query_row(
            "SELECT 1 FROM experiments WHERE experiment_id = 0",
            [],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    if !exists {
        let now = now_ms();
        tx.execute(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, \
             creation_time, last_update_time) VALUES (0, 'Default', ?1, 'active', ?2, ?2)",
            params![
                cairn_plugin_api::paths::append_uri_path(&ctx.default_artifact_root, &["0"]),
                now
            ],
        )?;
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn load_experiment(conn: &Connection, id: i64) -> StoreResult<Option<Experiment>> {
    let row = conn
        .prepare_cached(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, \
             last_update_time FROM experiments WHERE experiment_id = ?1",
        )?
        .query_row([id], experiment_row)
        .optional()?;
    let Some((exp, stage_text)) = row else {
        return Ok(None);
    };
    let mut exp = exp;
    exp.lifecycle_stage = stage(&stage_text)?;
    exp.tags = experiment_tags(conn, &[id])?
        .remove(&id)
        .unwrap_or_default();
    Ok(Some(exp))
}

pub(super) fn experiment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Experiment, String)> {
    Ok((
        Experiment {
            experiment_id: r.get::<_, i64>(0)?.to_string(),
            name: r.get(1)?,
            artifact_location: r.get(2)?,
            lifecycle_stage: LifecycleStage::Active,
            creation_time: r.get(4)?,
            last_update_time: r.get(5)?,
            tags: Vec::new(),
        },
        r.get(3)?,
    ))
}

pub(super) fn experiment_tags(
    conn: &Connection,
    ids: &[i64],
) -> StoreResult<HashMap<i64, Vec<ExperimentTag>>> {
    let mut out: HashMap<i64, Vec<ExperimentTag>> = HashMap::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let mut sql = search_sql::sql();
        let list = sql.bind_list(chunk);
        let mut stmt = conn.prepare(&format!(
            "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN {list} \
             ORDER BY experiment_id, key"
        ))?;
        let rows = stmt.query_map(search_sql::params(&sql), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                ExperimentTag::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?),
            ))
        })?;
        for row in rows {
            let (id, tag) = row?;
            out.entry(id).or_default().push(tag);
        }
    }
    Ok(out)
}

pub(super) fn require_experiment(conn: &Connection, id: i64) -> StoreResult<Experiment> {
    load_experiment(conn, id)?.ok_or_else(|| no_experiment(id))
}

pub(super) fn require_active_experiment(conn: &Connection, id: i64) -> StoreResult<Experiment> {
    let exp = require_experiment(conn, id)?;
    if exp.lifecycle_stage != LifecycleStage::Active {
        return Err(invalid(format!(
            "The experiment {id} must be in the 'active' state. Current state is deleted."
        )));
    }
    Ok(exp)
}

pub(super) fn upsert_experiment_tag(
    tx: &Connection,
    id: i64,
    tag: &ExperimentTag,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![id, tag.key, tag.value])?;
    Ok(())
}

pub(super) async fn create_experiment(
    store: &SqliteStore,
    req: CreateExperiment,
) -> Result<String> {
    store
        .write(move |tx, ctx| {
            let taken: bool = tx
                .prepare_cached("SELECT 1 FROM experiments WHERE name = ?1")?
                .query_row([&req.name], |_| Ok(true))
                .optional()?
                .unwrap_or(false);
            if taken {
                return Err(StoreError::Api(Error::already_exists(format!(
                    "Experiment(name={}) already exists.",
                    req.name
                ))));
            }
            let id: i64 = tx.query_row(
                "SELECT coalesce(max(experiment_id), -1) + 1 FROM experiments",
                [],
                |r| r.get(0),
            )?;
            let location = match req.artifact_location.as_deref() {
                Some(l) if !l.is_empty() => l.to_string(),
                _ => cairn_plugin_api::paths::append_uri_path(
                    &ctx.default_artifact_root,
                    &[&id.to_string()],
                ),
            };
            let now = now_ms();
            tx.execute(
                "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, \
             creation_time, last_update_time) VALUES (?1, ?2, ?3, 'active', ?4, ?4)",
                params![id, req.name, location, now],
            )?;
            for t in &req.tags {
                upsert_experiment_tag(tx, id, t)?;
            }
            Ok(id.to_string())
        })
        .await
}

pub(super) async fn get_experiment(
    store: &SqliteStore,
    experiment_id_text: &str,
) -> Result<Experiment> {
    let id = experiment_id(experiment_id_text)?;
    store.read(move |tx| require_experiment(tx, id)).await
}

pub(super) async fn get_experiment_by_name(
    store: &SqliteStore,
    name: &str,
) -> Result<Option<Experiment>> {
    let name = name.to_string();
    store
        .read(move |tx| {
            let id: Option<i64> = tx
                .prepare_cached(
                    "SELECT experiment_id FROM experiments WHERE name = ?1 \
                 ORDER BY lifecycle_stage = 'active' DESC LIMIT 1",
                )?
                .query_row([&name], |r| r.get(0))
                .optional()?;
            match id {
                Some(id) => load_experiment(tx, id),
                None => Ok(None),
            }
        })
        .await
}

pub(super) async fn delete_experiment(store: &SqliteStore, experiment_id_text: &str) -> Result<()> {
    let id = experiment_id(experiment_id_text)?;
    store.write(move |tx, _| {
        let exp = load_experiment(tx, id)?;
        if exp.is_none_or(|e| e.lifecycle_stage != LifecycleStage::Active) {
            return Err(no_experiment(id));
        }
        let now = now_ms();
        tx.execute(
            "UPDATE experiments SET lifecycle_stage = 'deleted', last_update_time = ?2 WHERE experiment_id = ?1",
            params![id, now],
        )?;
        set_run_lifecycle(tx, "experiment_id = ?1", id, true)?;
        Ok(())
    })
    .await
}

pub(super) async fn restore_experiment(
    store: &SqliteStore,
    experiment_id_text: &str,
) -> Result<()> {
    let id = experiment_id(experiment_id_text)?;
    store.write(move |tx, _| {
        let exp = load_experiment(tx, id)?;
        if exp.is_none_or(|e| e.lifecycle_stage != LifecycleStage::Deleted) {
            return Err(no_experiment(id));
        }
        tx.execute(
            "UPDATE experiments SET lifecycle_stage = 'active', last_update_time = ?2 WHERE experiment_id = ?1",
            params![id, now_ms()],
        )?;
        set_run_lifecycle(tx, "experiment_id = ?1", id, false)?;
        Ok(())
    })
    .await
}

pub(super) async fn rename_experiment(
    store: &SqliteStore,
    experiment_id_text: &str,
    new_name: &str,
) -> Result<()> {
    let id = experiment_id(experiment_id_text)?;
    let new_name = new_name.to_string();
    store
        .write(move |tx, _| {
            let exp = require_experiment(tx, id)?;
            if exp.lifecycle_stage != LifecycleStage::Active {
                return Err(StoreError::Api(Error::new(
                    cairn_plugin_api::ErrorKind::InvalidState,
                    "Cannot rename a non-active experiment.",
                )));
            }
            if exp.name == new_name {
                return Ok(());
            }
            let taken: bool = tx
                .prepare_cached("SELECT 1 FROM experiments WHERE name = ?1")?
                .query_row([&new_name], |_| Ok(true))
                .optional()?
                .unwrap_or(false);
            if taken {
                return Err(StoreError::Api(Error::already_exists(format!(
                    "Experiment(name={new_name}) already exists."
                ))));
            }
            tx.execute(
                "UPDATE experiments SET name = ?2, last_update_time = ?3 WHERE experiment_id = ?1",
                params![id, new_name, now_ms()],
            )?;
            Ok(())
        })
        .await
}

pub(super) async fn set_experiment_tag(
    store: &SqliteStore,
    experiment_id_text: &str,
    tag: ExperimentTag,
) -> Result<()> {
    let id = experiment_id(experiment_id_text)?;
    store
        .write(move |tx, _| {
            require_active_experiment(tx, id)?;
            upsert_experiment_tag(tx, id, &tag)
        })
        .await
}

pub(super) async fn delete_experiment_tag(
    store: &SqliteStore,
    experiment_id_text: &str,
    key: &str,
) -> Result<()> {
    let id = experiment_id(experiment_id_text)?;
    let key = key.to_string();
    store
        .write(move |tx, _| {
            require_active_experiment(tx, id)?;
            let n = tx.execute(
                "DELETE FROM experiment_tags WHERE experiment_id = ?1 AND key = ?2",
                params![id, key],
            )?;
            if n == 0 {
                return Err(not_found(format!(
                    "No tag with name: {key} in experiment with id {id}"
                )));
            }
            Ok(())
        })
        .await
}
