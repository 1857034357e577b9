//! LoggedModels: create, read, finalize, delete, tags and params.

use super::*;

pub(super) struct ModelRef {
    pub(super) id: i64,
    pub(super) stage: LifecycleStage,
}

pub(super) async fn find_model(
    tx: &Transaction<'_>,
    model_id: &str,
) -> StoreResult<Option<ModelRef>> {
    match tx
        .query_opt(
            "SELECT id, lifecycle_stage FROM logged_models WHERE model_id = $1",
            &[&model_id],
        )
        .await?
    {
        None => Ok(None),
        Some(r) => Ok(Some(ModelRef {
            id: r.try_get(0)?,
            stage: stage(r.try_get(1)?)?,
        })),
    }
}

/// A live model, its row locked for the rest of the transaction.
pub(super) async fn require_live_model(
    tx: &Transaction<'_>,
    model_id: &str,
) -> StoreResult<ModelRef> {
    tx.execute(
        "SELECT 1 FROM logged_models WHERE model_id = $1 FOR UPDATE",
        &[&model_id],
    )
    .await?;
    match find_model(tx, model_id).await? {
        Some(m) if m.stage == LifecycleStage::Active => Ok(m),
        _ => Err(no_model(model_id)),
    }
}

pub(super) const MODEL_COLUMNS: &str = "id, model_id, experiment_id, name, artifact_location, \
    creation_timestamp_ms, last_updated_timestamp_ms, status, model_type, source_run_id, \
    status_message";

pub(super) async fn load_models(
    tx: &Transaction<'_>,
    ids: &[i64],
) -> StoreResult<Vec<LoggedModel>> {
    let mut models: HashMap<i64, LoggedModel> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let chunk = chunk.to_vec();
        for r in tx
            .query(
                &format!("SELECT {MODEL_COLUMNS} FROM logged_models WHERE id = ANY($1)"),
                &[&chunk],
            )
            .await?
        {
            let status: String = r.try_get(7)?;
            let info = LoggedModelInfo {
                model_id: r.try_get(1)?,
                experiment_id: r.try_get::<_, i64>(2)?.to_string(),
                name: r.try_get(3)?,
                artifact_uri: r.try_get(4)?,
                creation_timestamp_ms: r.try_get(5)?,
                last_updated_timestamp_ms: r.try_get(6)?,
                status: LoggedModelStatus::from_name(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("model status {status:?}")))?,
                creator_id: None,
                model_type: r.try_get(8)?,
                source_run_id: r.try_get(9)?,
                status_message: r.try_get(10)?,
                tags: Vec::new(),
                registrations: Vec::new(),
            };
            models.insert(
                r.try_get(0)?,
                LoggedModel {
                    info,
                    data: LoggedModelData::default(),
                },
            );
        }
        for (table, is_tag) in [("logged_model_tags", true), ("logged_model_params", false)] {
            for r in tx
                .query(
                    &format!(
                        "SELECT model, key, value FROM {table} WHERE model = ANY($1) ORDER BY model, key"
                    ),
                    &[&chunk],
                )
                .await?
            {
                let id: i64 = r.try_get(0)?;
                let (k, v): (String, String) = (r.try_get(1)?, r.try_get(2)?);
                if let Some(m) = models.get_mut(&id) {
                    if is_tag {
                        m.info.tags.push(LoggedModelTag::new(k, v));
                    } else {
                        m.data.params.push(LoggedModelParameter::new(k, v));
                    }
                }
            }
        }
        for r in tx
            .query(
                "SELECT x.model, x.key, x.dataset_name, x.dataset_digest, x.value, x.is_nan, \
                 x.timestamp, x.step, x.run_id, m.model_id FROM logged_model_metrics x \
                 JOIN logged_models m ON m.id = x.model WHERE x.model = ANY($1) \
                 ORDER BY x.model, x.key, x.dataset_name, x.dataset_digest",
                &[&chunk],
            )
            .await?
        {
            let mut metric = Metric::new(
                r.try_get::<_, String>(1)?,
                metric_value(r.try_get(4)?, r.try_get::<_, i32>(5)? != 0),
                r.try_get(6)?,
                r.try_get(7)?,
            );
            metric.dataset_name = none_if_empty(r.try_get(2)?);
            metric.dataset_digest = none_if_empty(r.try_get(3)?);
            metric.run_id = r.try_get(8)?;
            metric.model_id = Some(r.try_get(9)?);
            let id: i64 = r.try_get(0)?;
            if let Some(m) = models.get_mut(&id) {
                m.data.metrics.push(metric);
            }
        }
    }
    Ok(ids.iter().filter_map(|id| models.remove(id)).collect())
}

pub(super) async fn load_model(
    tx: &Transaction<'_>,
    id: i64,
    model_id: &str,
) -> StoreResult<LoggedModel> {
    load_models(tx, &[id])
        .await?
        .pop()
        .ok_or_else(|| no_model(model_id))
}

async fn touch_model(tx: &Transaction<'_>, id: i64) -> StoreResult<()> {
    tx.execute(
        "UPDATE logged_models SET last_updated_timestamp_ms = $2 WHERE id = $1",
        &[&id, &now_ms()],
    )
    .await?;
    Ok(())
}

pub(super) async fn write_model_params(
    tx: &Transaction<'_>,
    model: i64,
    model_id: &str,
    params: &[LoggedModelParameter],
) -> StoreResult<()> {
    for p in params {
        let existing: Option<String> = tx
            .query_opt(
                "SELECT value FROM logged_model_params WHERE model = $1 AND key = $2",
                &[&model, &p.key],
            )
            .await?
            .map(|r| r.get(0));
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
                tx.execute(
                    "INSERT INTO logged_model_params (model, key, value) VALUES ($1, $2, $3)",
                    &[&model, &p.key, &p.value],
                )
                .await?;
            }
        }
    }
    Ok(())
}

pub(super) async fn write_model_tags(
    tx: &Transaction<'_>,
    model: i64,
    tags: &[LoggedModelTag],
) -> StoreResult<()> {
    for t in tags {
        tx.execute(
            "INSERT INTO logged_model_tags (model, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (model, key) DO UPDATE SET value = excluded.value",
            &[&model, &t.key, &t.value],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn create_logged_model(
    store: &PostgresStore,
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
            Box::pin(async move {
                let exp = require_active_experiment(tx, exp_id).await?;
                let model_id = format!("m-{}", uuid::Uuid::new_v4().simple());
                let location = cairn_plugin_api::paths::append_uri_path(
                    &exp.artifact_location,
                    &["models", &model_id, "artifacts"],
                );
                let now = now_ms();
                let id: i64 = tx
                    .query_one(
                        "INSERT INTO logged_models (model_id, experiment_id, name, \
                         artifact_location, creation_timestamp_ms, last_updated_timestamp_ms, \
                         status, lifecycle_stage, model_type, source_run_id) \
                         VALUES ($1, $2, $3, $4, $5, $5, $6, 'active', $7, $8) RETURNING id",
                        &[
                            &model_id,
                            &exp_id,
                            &name,
                            &location,
                            &now,
                            &LoggedModelStatus::Pending.as_str(),
                            &model_type,
                            &source_run_id,
                        ],
                    )
                    .await?
                    .try_get(0)?;
                write_model_params(tx, id, &model_id, &params).await?;
                write_model_tags(tx, id, &tags).await?;
                load_model(tx, id, &model_id).await
            })
        })
        .await
}

pub(super) async fn get_logged_model(
    store: &PostgresStore,
    model_id: &str,
    allow_deleted: bool,
) -> Result<LoggedModel> {
    let model_id = model_id.to_string();
    store
        .read(move |tx| {
            Box::pin(async move {
                let m = match find_model(tx, &model_id).await? {
                    Some(m) if allow_deleted || m.stage == LifecycleStage::Active => m,
                    _ => return Err(no_model(&model_id)),
                };
                load_model(tx, m.id, &model_id).await
            })
        })
        .await
}

pub(super) async fn finalize_logged_model(
    store: &PostgresStore,
    model_id: &str,
    status: LoggedModelStatus,
) -> Result<LoggedModel> {
    let model_id = model_id.to_string();
    store
        .write(move |tx, _| {
            Box::pin(async move {
                let m = require_live_model(tx, &model_id).await?;
                tx.execute(
                    "UPDATE logged_models SET status = $2, last_updated_timestamp_ms = $3 WHERE id = $1",
                    &[&m.id, &status.as_str(), &now_ms()],
                )
                .await?;
                load_model(tx, m.id, &model_id).await
            })
        })
        .await
}

pub(super) async fn delete_logged_model(store: &PostgresStore, model_id: &str) -> Result<()> {
    let model_id = model_id.to_string();
    store
        .write(move |tx, _| {
            Box::pin(async move {
                let m = require_live_model(tx, &model_id).await?;
                tx.execute(
                    "UPDATE logged_models SET lifecycle_stage = 'deleted', \
                     last_updated_timestamp_ms = $2 WHERE id = $1",
                    &[&m.id, &now_ms()],
                )
                .await?;
                Ok(())
            })
        })
        .await
}

pub(super) async fn set_logged_model_tags(
    store: &PostgresStore,
    model_id: &str,
    tags: Vec<LoggedModelTag>,
) -> Result<()> {
    let model_id = model_id.to_string();
    store
        .write(move |tx, _| {
            Box::pin(async move {
                let m = require_live_model(tx, &model_id).await?;
                write_model_tags(tx, m.id, &tags).await?;
                touch_model(tx, m.id).await
            })
        })
        .await
}

pub(super) async fn delete_logged_model_tag(
    store: &PostgresStore,
    model_id: &str,
    key: &str,
) -> Result<()> {
    let model_id = model_id.to_string();
    let key = key.to_string();
    store
        .write(move |tx, _| {
            Box::pin(async move {
                let m = require_live_model(tx, &model_id).await?;
                let n = tx
                    .execute(
                        "DELETE FROM logged_model_tags WHERE model = $1 AND key = $2",
                        &[&m.id, &key],
                    )
                    .await?;
                if n == 0 {
                    return Err(not_found(format!(
                        "No tag with key '{key}' found for logged model with ID '{model_id}'."
                    )));
                }
                touch_model(tx, m.id).await
            })
        })
        .await
}

pub(super) async fn log_logged_model_params(
    store: &PostgresStore,
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
            Box::pin(async move {
                let m = require_live_model(tx, &model_id).await?;
                write_model_params(tx, m.id, &model_id, &params).await?;
                touch_model(tx, m.id).await
            })
        })
        .await
}
