//! LoggedModels: create, read, finalize, delete, tags and params.

use super::*;

pub(super) struct ModelRef {
    pub(super) id: i64,
    pub(super) stage: LifecycleStage,
}

pub(super) fn find_model(conn: &Connection, model_id: &str) -> StoreResult<Option<ModelRef>> {
    let row = conn
        .prepare_cached("SELECT id, lifecycle_stage FROM logged_models WHERE model_id = ?1")?
        .query_row([model_id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((id, s)) => Ok(Some(ModelRef {
            id,
            stage: stage(&s)?,
        })),
    }
}

pub(super) fn require_live_model(conn: &Connection, model_id: &str) -> StoreResult<ModelRef> {
    match find_model(conn, model_id)? {
        Some(m) if m.stage == LifecycleStage::Active => Ok(m),
        _ => Err(no_model(model_id)),
    }
}

pub(super) const MODEL_COLUMNS: &str = "id, model_id, experiment_id, name, artifact_location, \
    creation_timestamp_ms, last_updated_timestamp_ms, status, model_type, source_run_id, \
    status_message";

pub(super) fn load_models(conn: &Connection, ids: &[i64]) -> StoreResult<Vec<LoggedModel>> {
    let mut models: HashMap<i64, LoggedModel> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let mut sql = search_sql::sql();
        let list = sql.bind_list(chunk);
        let p = || search_sql::params(&sql);
        {
            let mut stmt = conn.prepare(&format!(
                "SELECT {MODEL_COLUMNS} FROM logged_models WHERE id IN {list}"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(7)?,
                    LoggedModelInfo {
                        model_id: r.get(1)?,
                        experiment_id: r.get::<_, i64>(2)?.to_string(),
                        name: r.get(3)?,
                        artifact_uri: r.get(4)?,
                        creation_timestamp_ms: r.get(5)?,
                        last_updated_timestamp_ms: r.get(6)?,
                        status: LoggedModelStatus::Unspecified,
                        creator_id: None,
                        model_type: r.get(8)?,
                        source_run_id: r.get(9)?,
                        status_message: r.get(10)?,
                        tags: Vec::new(),
                        registrations: Vec::new(),
                    },
                ))
            })?;
            for row in rows {
                let (id, status, mut info) = row?;
                info.status = LoggedModelStatus::from_name(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("model status {status:?}")))?;
                models.insert(
                    id,
                    LoggedModel {
                        info,
                        data: LoggedModelData::default(),
                    },
                );
            }
        }
        for (table, is_tag) in [("logged_model_tags", true), ("logged_model_params", false)] {
            let mut stmt = conn.prepare(&format!(
                "SELECT model, key, value FROM {table} WHERE model IN {list} ORDER BY model, key"
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
                if let Some(m) = models.get_mut(&id) {
                    if is_tag {
                        m.info.tags.push(LoggedModelTag::new(k, v));
                    } else {
                        m.data.params.push(LoggedModelParameter::new(k, v));
                    }
                }
            }
        }
        {
            let mut stmt = conn.prepare(&format!(
                "SELECT x.model, x.key, x.dataset_name, x.dataset_digest, x.value, x.is_nan, \
                 x.timestamp, x.step, x.run_id, m.model_id FROM logged_model_metrics x \
                 JOIN logged_models m ON m.id = x.model WHERE x.model IN {list} \
                 ORDER BY x.model, x.key, x.dataset_name, x.dataset_digest"
            ))?;
            let rows = stmt.query_map(p(), |r| {
                let mut metric = Metric::new(
                    r.get::<_, String>(1)?,
                    metric_value(r.get(4)?, r.get(5)?),
                    r.get(6)?,
                    r.get(7)?,
                );
                metric.dataset_name = none_if_empty(r.get(2)?);
                metric.dataset_digest = none_if_empty(r.get(3)?);
                metric.run_id = r.get(8)?;
                metric.model_id = Some(r.get(9)?);
                Ok((r.get::<_, i64>(0)?, metric))
            })?;
            for row in rows {
                let (id, metric) = row?;
                if let Some(m) = models.get_mut(&id) {
                    m.data.metrics.push(metric);
                }
            }
        }
    }
    Ok(ids.iter().filter_map(|id| models.remove(id)).collect())
}

pub(super) fn load_model(conn: &Connection, id: i64, model_id: &str) -> StoreResult<LoggedModel> {
    load_models(conn, &[id])?
        .pop()
        .ok_or_else(|| no_model(model_id))
}

pub(super) fn touch_model(tx: &Connection, id: i64) -> StoreResult<()> {
    tx.prepare_cached("UPDATE logged_models SET last_updated_timestamp_ms = ?2 WHERE id = ?1")?
        .execute(params![id, now_ms()])?;
    Ok(())
}

pub(super) fn write_model_params(
    tx: &Connection,
    model: i64,
    model_id: &str,
    params: &[LoggedModelParameter],
) -> StoreResult<()> {
    for p in params {
        let existing: Option<String> = tx
            .prepare_cached("SELECT value FROM logged_model_params WHERE model = ?1 AND key = ?2")?
            .query_row(params![model, p.key], |r| r.get(0))
            .optional()?;
        match existing {
            Some(old) if old == p.value => {}
            Some(old) => {
                return Err(invalid(format!(
                    "Changing param values is not allowed. Param with key='{}' was already \
                     logged with value='{}' for logged model ID='{}'. Attempted logging new \
                     value '{}'.",
                    p.key, old, model_id, p.value
                )));
            }
            None => {
                tx.prepare_cached(
                    "INSERT INTO logged_model_params (model, key, value) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![model, p.key, p.value])?;
            }
        }
    }
    Ok(())
}

pub(super) fn write_model_tags(
    tx: &Connection,
    model: i64,
    tags: &[LoggedModelTag],
) -> StoreResult<()> {
    for t in tags {
        tx.prepare_cached(
            "INSERT INTO logged_model_tags (model, key, value) VALUES (?1, ?2, ?3) \
             ON CONFLICT (model, key) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![model, t.key, t.value])?;
    }
    Ok(())
}

pub(super) async fn create_logged_model(
    store: &SqliteStore,
    req: CreateLoggedModel,
) -> Result<LoggedModel> {
    let exp_id = experiment_id(&req.experiment_id)?;
    let name = req
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(names::generate_random_name);
    let (params, tags) = (req.params, req.tags);
    let (model_type, source_run_id) = (req.model_type, req.source_run_id);
    store
        .write(move |tx, _| {
            let exp = require_active_experiment(tx, exp_id)?;
            let model_id = format!("m-{}", uuid::Uuid::new_v4().simple());
            let location = cairn_plugin_api::paths::append_uri_path(
                &exp.artifact_location,
                &["models", &model_id, "artifacts"],
            );
            let now = now_ms();
            tx.execute(
                "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, \
             creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, \
             model_type, source_run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, 'active', ?7, ?8)",
                params![
                    model_id,
                    exp_id,
                    name,
                    location,
                    now,
                    LoggedModelStatus::Pending.as_str(),
                    model_type,
                    source_run_id
                ],
            )?;
            let id = tx.last_insert_rowid();
            write_model_params(tx, id, &model_id, &params)?;
            write_model_tags(tx, id, &tags)?;
            load_model(tx, id, &model_id)
        })
        .await
}

pub(super) async fn get_logged_model(
    store: &SqliteStore,
    model_id: &str,
    allow_deleted: bool,
) -> Result<LoggedModel> {
    let model_id = model_id.to_string();
    store
        .read(move |tx| {
            let m = match find_model(tx, &model_id)? {
                Some(m) if allow_deleted || m.stage == LifecycleStage::Active => m,
                _ => return Err(no_model(&model_id)),
            };
            load_model(tx, m.id, &model_id)
        })
        .await
}

pub(super) async fn finalize_logged_model(
    store: &SqliteStore,
    model_id: &str,
    status: LoggedModelStatus,
) -> Result<LoggedModel> {
    let model_id = model_id.to_string();
    store
        .write(move |tx, _| {
            let m = require_live_model(tx, &model_id)?;
            tx.execute(
            "UPDATE logged_models SET status = ?2, last_updated_timestamp_ms = ?3 WHERE id = ?1",
            params![m.id, status.as_str(), now_ms()],
        )?;
            load_model(tx, m.id, &model_id)
        })
        .await
}

pub(super) async fn delete_logged_model(store: &SqliteStore, model_id: &str) -> Result<()> {
    let model_id = model_id.to_string();
    store.write(move |tx, _| {
        let m = require_live_model(tx, &model_id)?;
        tx.execute(
            "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp_ms = ?2 WHERE id = ?1",
            params![m.id, now_ms()],
        )?;
        Ok(())
    })
    .await
}

pub(super) async fn set_logged_model_tags(
    store: &SqliteStore,
    model_id: &str,
    tags: Vec<LoggedModelTag>,
) -> Result<()> {
    let model_id = model_id.to_string();
    store
        .write(move |tx, _| {
            let m = require_live_model(tx, &model_id)?;
            write_model_tags(tx, m.id, &tags)?;
            touch_model(tx, m.id)
        })
        .await
}

pub(super) async fn delete_logged_model_tag(
    store: &SqliteStore,
    model_id: &str,
    key: &str,
) -> Result<()> {
    let model_id = model_id.to_string();
    let key = key.to_string();
    store
        .write(move |tx, _| {
            let m = require_live_model(tx, &model_id)?;
            let n = tx.execute(
                "DELETE FROM logged_model_tags WHERE model = ?1 AND key = ?2",
                params![m.id, key],
            )?;
            if n == 0 {
                return Err(not_found(format!(
                    "No tag with key '{key}' found for logged model with ID '{model_id}'."
                )));
            }
            touch_model(tx, m.id)
        })
        .await
}

pub(super) async fn log_logged_model_params(
    store: &SqliteStore,
    model_id: &str,
    params: Vec<LoggedModelParameter>,
) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for p in &params {
        if !seen.insert(p.key.as_str()) {
            return Err(Error::invalid(format!(
                "Duplicate parameter keys have been submitted: ['{}']. Please ensure the \
                 request contains only one param value per param key.",
                p.key
            )));
        }
    }
    let model_id = model_id.to_string();
    store
        .write(move |tx, _| {
            let m = require_live_model(tx, &model_id)?;
            write_model_params(tx, m.id, &model_id, &params)?;
            touch_model(tx, m.id)
        })
        .await
}
