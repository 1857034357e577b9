//! The [`ModelRegistryStore`] on the same PostgreSQL database as the tracking store.
//!
//! The SQLite store's registry, with PostgreSQL's concurrency: every write locks the registered
//! model's row first (`FOR UPDATE`), so writes to one model from any replica serialise; a new
//! version's number is `max_version + 1` taken under that lock, never reused, never skipped
//! by a committed creation. A registered model's name racing with another creation is caught
//! by the unique index (`RESOURCE_ALREADY_EXISTS`).

use crate::error::{StoreError, StoreResult, invalid, not_found};
use crate::store::Transaction;
use crate::store::{PostgresStore, now_ms, run_page_query, sql};
use cairn_plugin_api::import::{ImportModelVersion, Imported, RegistryImport};
use cairn_plugin_api::model_registry::*;
use cairn_plugin_api::search::eval::PROMPT_TAG;
use cairn_plugin_api::search::sql::{self as search_sql, Target};
use cairn_plugin_api::search::{Entity, Expr, Key, OrderBy};
use cairn_plugin_api::tracking::Page;
use cairn_plugin_api::{Error, Result, validation};
use tokio_postgres::Row;

const VERSION_COLUMNS: &str = "mv.id, rm.name, mv.version, mv.creation_timestamp, \
     mv.last_updated_timestamp, mv.user_id, mv.current_stage, mv.description, mv.source, \
     mv.run_id, mv.run_link, mv.status, mv.status_message, mv.model_id";

fn no_registered_model(name: &str) -> StoreError {
    not_found(format!("Registered Model with name={name} not found"))
}

fn no_version(name: &str, version: impl std::fmt::Display) -> StoreError {
    not_found(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}

/// The row id of the model named `name`; `lock` takes its row lock.
async fn require_model(tx: &Transaction<'_>, name: &str, lock: bool) -> StoreResult<i64> {
    let sql = if lock {
        "SELECT id FROM registered_models WHERE name = $1 FOR UPDATE"
    } else {
        "SELECT id FROM registered_models WHERE name = $1"
    };
    tx.query_opt(sql, &[&name])
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| no_registered_model(name))
}

async fn require_version(
    tx: &Transaction<'_>,
    name: &str,
    version: i64,
    lock: bool,
) -> StoreResult<(i64, i64)> {
    let model = require_model(tx, name, lock).await?;
    let id = tx
        .query_opt(
            "SELECT id FROM model_versions WHERE model = $1 AND version = $2",
            &[&model, &version],
        )
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| no_version(name, version))?;
    Ok((model, id))
}

async fn tags_of(tx: &Transaction<'_>, sql: &str, id: i64) -> StoreResult<Vec<RegistryTag>> {
    tx.query(sql, &[&id])
        .await?
        .iter()
        .map(|r| {
            Ok(RegistryTag {
                key: r.try_get(0)?,
                value: r.try_get(1)?,
            })
        })
        .collect()
}

fn status(s: &str) -> StoreResult<ModelVersionStatus> {
    ModelVersionStatus::from_name(s).ok_or_else(|| StoreError::Corrupt(format!("status {s}")))
}

async fn version_row(tx: &Transaction<'_>, r: &Row) -> StoreResult<ModelVersion> {
    let id: i64 = r.try_get(0)?;
    let stage: String = r.try_get(6)?;
    let status_text: String = r.try_get(11)?;
    let version: i64 = r.try_get(2)?;
    let mut mv = ModelVersion {
        name: r.try_get(1)?,
        version: version.to_string(),
        creation_timestamp: r.try_get(3)?,
        last_updated_timestamp: r.try_get(4)?,
        user_id: r.try_get(5)?,
        current_stage: Stage::parse(&stage).map_err(StoreError::Api)?,
        description: r.try_get(7)?,
        source: r.try_get(8)?,
        run_id: r.try_get(9)?,
        status: status(&status_text)?,
        status_message: r.try_get(12)?,
        tags: Vec::new(),
        run_link: r.try_get(10)?,
        aliases: Vec::new(),
        model_id: r.try_get(13)?,
        model_params: Vec::new(),
        model_metrics: Vec::new(),
    };
    mv.tags = tags_of(
        tx,
        "SELECT key, value FROM model_version_tags WHERE version = $1 ORDER BY key",
        id,
    )
    .await?;
    mv.aliases = tx
        .query(
            "SELECT a.alias FROM registered_model_aliases a JOIN model_versions mv \
             ON mv.model = a.model AND mv.version = a.version WHERE mv.id = $1 ORDER BY a.alias",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    Ok(mv)
}

async fn load_version(tx: &Transaction<'_>, id: i64) -> StoreResult<ModelVersion> {
    let r = tx
        .query_opt(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM model_versions mv JOIN registered_models rm \
                 ON rm.id = mv.model WHERE mv.id = $1"
            ),
            &[&id],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("model version row {id} vanished")))?;
    version_row(tx, &r).await
}

async fn latest_versions(
    tx: &Transaction<'_>,
    model: i64,
    stages: &[Stage],
) -> StoreResult<Vec<ModelVersion>> {
    let mut out = Vec::new();
    for stage in stages {
        let r = tx
            .query_opt(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM model_versions mv JOIN registered_models rm \
                     ON rm.id = mv.model WHERE mv.model = $1 AND mv.current_stage = $2 \
                     ORDER BY mv.version DESC LIMIT 1"
                ),
                &[&model, &stage.as_str()],
            )
            .await?;
        if let Some(r) = r {
            out.push(version_row(tx, &r).await?);
        }
    }
    Ok(out)
}

async fn load_registered_model(tx: &Transaction<'_>, id: i64) -> StoreResult<RegisteredModel> {
    let r = tx
        .query_one(
            "SELECT name, creation_timestamp, last_updated_timestamp, user_id, description \
             FROM registered_models WHERE id = $1",
            &[&id],
        )
        .await?;
    let mut rm = RegisteredModel {
        name: r.try_get(0)?,
        creation_timestamp: r.try_get(1)?,
        last_updated_timestamp: Some(r.try_get(2)?),
        user_id: r.try_get(3)?,
        description: r.try_get(4)?,
        latest_versions: Vec::new(),
        tags: Vec::new(),
        aliases: Vec::new(),
    };
    rm.latest_versions = latest_versions(tx, id, &Stage::ALL).await?;
    rm.tags = tags_of(
        tx,
        "SELECT key, value FROM registered_model_tags WHERE model = $1 ORDER BY key",
        id,
    )
    .await?;
    rm.aliases = tx
        .query(
            "SELECT alias, version FROM registered_model_aliases WHERE model = $1 ORDER BY alias",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(RegisteredModelAlias {
                alias: r.try_get(0)?,
                version: r.try_get::<_, i64>(1)?.to_string(),
            })
        })
        .collect::<StoreResult<_>>()?;
    Ok(rm)
}

async fn touch_model(tx: &Transaction<'_>, model: i64, now: i64) -> StoreResult<()> {
    tx.execute(
        "UPDATE registered_models SET last_updated_timestamp = $2 WHERE id = $1",
        &[&model, &now],
    )
    .await?;
    Ok(())
}

fn validate_tags(tags: &[RegistryTag]) -> Result<()> {
    tags.iter()
        .try_for_each(|t| validation::validate_registry_tag(&t.key, &t.value))
}

fn mentions_prompt_tag(expr: &Expr) -> bool {
    match expr {
        Expr::And(xs) | Expr::Or(xs) => xs.iter().any(mentions_prompt_tag),
        Expr::Compare(c) => c.key.entity == Entity::Tag && c.key.name == PROMPT_TAG,
    }
}

/// The page query of a registry search and its number of keys and fingerprint.
fn search_query(
    target: Target,
    req: &RegistrySearch,
    threshold: usize,
) -> Result<(search_sql::Sql, usize, u64)> {
    validation::validate_max_results(req.max_results, threshold)?;
    let fp = search_sql::fingerprint(&(
        matches!(target, Target::ModelVersions),
        &req.filter,
        &req.order_by,
    ));
    let mut sql = sql();
    let order = if req.order_by.is_empty() && target == Target::ModelVersions {
        vec![OrderBy {
            key: Key::attribute("last_updated_timestamp"),
            ascending: false,
        }]
    } else {
        req.order_by.clone()
    };
    let keys = search_sql::order_keys(&mut sql, target, &order)?;
    let last = match &req.page_token {
        Some(t) if !t.is_empty() => Some(search_sql::decode_token(t, fp, keys.len())?),
        _ => None,
    };
    let mut wheres = Vec::new();
    if !req.filter.as_ref().is_some_and(mentions_prompt_tag) {
        wheres.push(target.not_a_prompt());
    }
    if let Some(f) = &req.filter {
        wheres.push(search_sql::filter(&mut sql, target, f, &[])?);
    }
    let from = match target {
        Target::ModelVersions => "model_versions mv JOIN registered_models rm ON rm.id = mv.model",
        _ => "registered_models rm",
    };
    search_sql::page_query(
        &mut sql,
        target,
        from,
        wheres,
        &keys,
        last.as_deref(),
        req.max_results + 1,
    );
    Ok((sql, keys.len(), fp))
}

fn already(name: &str) -> StoreError {
    StoreError::Api(Error::already_exists(format!(
        "Registered Model (name={name}) already exists."
    )))
}

/// A unique violation on the registered model's name is the racing creation's "already exists".
fn name_taken(e: StoreError, name: &str) -> StoreError {
    match &e {
        StoreError::Pg(pg)
            if pg.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
        {
            already(name)
        }
        _ => e,
    }
}

#[cairn_plugin_api::async_trait]
impl ModelRegistryStore for PostgresStore {
    fn capabilities(&self) -> RegistryCapabilities {
        RegistryCapabilities { aliases: true }
    }

    fn registry_importer(&self) -> Option<&dyn RegistryImport> {
        Some(self)
    }

    async fn create_registered_model(
        &self,
        name: &str,
        tags: Vec<RegistryTag>,
        description: Option<String>,
    ) -> Result<RegisteredModel> {
        validation::validate_model_name(name)?;
        validate_tags(&tags)?;
        let name = name.to_string();
        self.write(move |tx, _| {
            Box::pin(async move {
                let now = now_ms();
                let id: Option<i64> = tx
                    .query_opt(
                        "INSERT INTO registered_models (name, creation_timestamp, \
                         last_updated_timestamp, description) VALUES ($1, $2, $2, $3) \
                         ON CONFLICT (name) DO NOTHING RETURNING id",
                        &[&name, &now, &description],
                    )
                    .await?
                    .map(|r| r.get(0));
                let id = id.ok_or_else(|| already(&name))?;
                for t in &tags {
                    tx.execute(
                        "INSERT INTO registered_model_tags (model, key, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (model, key) DO UPDATE SET value = excluded.value",
                        &[&id, &t.key, &t.value],
                    )
                    .await?;
                }
                load_registered_model(tx, id).await
            })
        })
        .await
    }

    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let name = name.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let id = require_model(tx, &name, false).await?;
                load_registered_model(tx, id).await
            })
        })
        .await
    }

    async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel> {
        validation::validate_model_name(new_name)?;
        let (name, new_name) = (name.to_string(), new_name.to_string());
        self.write(move |tx, _| {
            Box::pin(async move {
                let id = require_model(tx, &name, true).await?;
                if new_name != name {
                    let taken = tx
                        .query_opt("SELECT 1 FROM registered_models WHERE name = $1", &[&new_name])
                        .await?
                        .is_some();
                    if taken {
                        return Err(already(&new_name));
                    }
                }
                let now = now_ms();
                tx.execute(
                    "UPDATE registered_models SET name = $2, last_updated_timestamp = $3 WHERE id = $1",
                    &[&id, &new_name, &now],
                )
                .await
                .map_err(|e| name_taken(e.into(), &new_name))?;
                tx.execute(
                    "UPDATE model_versions SET last_updated_timestamp = $2 WHERE model = $1",
                    &[&id, &now],
                )
                .await?;
                load_registered_model(tx, id).await
            })
        })
        .await
    }

    async fn update_registered_model(
        &self,
        name: &str,
        description: Option<String>,
    ) -> Result<RegisteredModel> {
        let name = name.to_string();
        self.write(move |tx, _| {
            Box::pin(async move {
                let id = require_model(tx, &name, true).await?;
                tx.execute(
                    "UPDATE registered_models SET description = $2, last_updated_timestamp = $3 \
                     WHERE id = $1",
                    &[&id, &description, &now_ms()],
                )
                .await?;
                load_registered_model(tx, id).await
            })
        })
        .await
    }

    async fn delete_registered_model(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.write(move |tx, _| {
            Box::pin(async move {
                let id = require_model(tx, &name, true).await?;
                // Versions, tags and aliases go with it (ON DELETE CASCADE).
                tx.execute("DELETE FROM registered_models WHERE id = $1", &[&id])
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn search_registered_models(&self, req: RegistrySearch) -> Result<Page<RegisteredModel>> {
        let (sql, n_keys, fp) = search_query(
            Target::RegisteredModels,
            &req,
            validation::SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD,
        )?;
        let max = req.max_results;
        self.read(move |tx| {
            Box::pin(async move {
                let (ids, next) = run_page_query(tx, &sql, n_keys, max).await?;
                let mut items = Vec::with_capacity(ids.len());
                for id in ids {
                    items.push(load_registered_model(tx, id).await?);
                }
                Ok(Page {
                    items,
                    next_page_token: next.map(|k| search_sql::encode_token(fp, k)),
                })
            })
        })
        .await
    }

    async fn get_latest_versions(
        &self,
        name: &str,
        stages: Vec<Stage>,
    ) -> Result<Vec<ModelVersion>> {
        let name = name.to_string();
        let mut wanted: Vec<Stage> = Vec::new();
        for s in if stages.is_empty() {
            Stage::ALL.to_vec()
        } else {
            stages
        } {
            if !wanted.contains(&s) {
                wanted.push(s);
            }
        }
        self.read(move |tx| {
            Box::pin(async move {
                let id = require_model(tx, &name, false).await?;
                latest_versions(tx, id, &wanted).await
            })
        })
        .await
    }

    async fn set_registered_model_tag(&self, name: &str, tag: RegistryTag) -> Result<()> {
        validation::validate_registry_tag(&tag.key, &tag.value)?;
        let name = name.to_string();
        self.write(move |tx, _| {
            Box::pin(async move {
                let id = require_model(tx, &name, true).await?;
                tx.execute(
                    "INSERT INTO registered_model_tags (model, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (model, key) DO UPDATE SET value = excluded.value",
                    &[&id, &tag.key, &tag.value],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        validation::validate_key_name(key, "key")?;
        let (name, key) = (name.to_string(), key.to_string());
        self.write(move |tx, _| {
            Box::pin(async move {
                let id = require_model(tx, &name, true).await?;
                tx.execute(
                    "DELETE FROM registered_model_tags WHERE model = $1 AND key = $2",
                    &[&id, &key],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn create_model_version(&self, req: CreateModelVersion) -> Result<ModelVersion> {
        validation::validate_model_name(&req.name)?;
        validate_tags(&req.tags)?;
        if req.source.is_empty() {
            return Err(Error::invalid(validation::missing_value_message("source")));
        }
        self.write(move |tx, _| {
            Box::pin(async move {
                let model = require_model(tx, &req.name, true).await?;
                let now = now_ms();
                let version: i64 = tx
                    .query_one(
                        "UPDATE registered_models SET max_version = max_version + 1, \
                         last_updated_timestamp = $2 WHERE id = $1 RETURNING max_version",
                        &[&model, &now],
                    )
                    .await?
                    .try_get(0)?;
                let id: i64 = tx
                    .query_one(
                        "INSERT INTO model_versions (model, version, creation_timestamp, \
                         last_updated_timestamp, user_id, current_stage, description, source, \
                         storage_location, run_id, run_link, status, model_id) \
                         VALUES ($1, $2, $3, $3, $4, 'None', $5, $6, $7, $8, $9, $10, $11) \
                         RETURNING id",
                        &[
                            &model,
                            &version,
                            &now,
                            &req.user_id,
                            &req.description,
                            &req.source,
                            &req.storage_location,
                            &req.run_id,
                            &req.run_link,
                            &ModelVersionStatus::Ready.as_str(),
                            &req.model_id,
                        ],
                    )
                    .await?
                    .try_get(0)?;
                for t in &req.tags {
                    tx.execute(
                        "INSERT INTO model_version_tags (version, key, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (version, key) DO UPDATE SET value = excluded.value",
                        &[&id, &t.key, &t.value],
                    )
                    .await?;
                }
                load_version(tx, id).await
            })
        })
        .await
    }

    async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        let v = validation::parse_model_version(version)?;
        let name = name.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let (_, id) = require_version(tx, &name, v, false).await?;
                load_version(tx, id).await
            })
        })
        .await
    }

    async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: Option<String>,
    ) -> Result<ModelVersion> {
        let v = validation::parse_model_version(version)?;
        let name = name.to_string();
        self.write(move |tx, _| {
            Box::pin(async move {
                let (_, id) = require_version(tx, &name, v, true).await?;
                tx.execute(
                    "UPDATE model_versions SET description = $2, last_updated_timestamp = $3 \
                     WHERE id = $1",
                    &[&id, &description, &now_ms()],
                )
                .await?;
                load_version(tx, id).await
            })
        })
        .await
    }

    async fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: Stage,
        archive_existing_versions: bool,
    ) -> Result<ModelVersion> {
        if archive_existing_versions && !stage.is_active() {
            return Err(Error::internal(format!(
                "Model version transition cannot archive existing model versions because '{}' \
                 is not an Active stage. Valid stages are ['Staging', 'Production']",
                stage.as_str()
            )));
        }
        let v = validation::parse_model_version(version)?;
        let name = name.to_string();
        self.write(move |tx, _| {
            Box::pin(async move {
                let (model, id) = require_version(tx, &name, v, true).await?;
                let now = now_ms();
                if archive_existing_versions {
                    tx.execute(
                        "UPDATE model_versions SET current_stage = 'Archived', \
                         last_updated_timestamp = $3 \
                         WHERE model = $1 AND current_stage = $2 AND id != $4",
                        &[&model, &stage.as_str(), &now, &id],
                    )
                    .await?;
                }
                tx.execute(
                    "UPDATE model_versions SET current_stage = $2, last_updated_timestamp = $3 \
                     WHERE id = $1",
                    &[&id, &stage.as_str(), &now],
                )
                .await?;
                touch_model(tx, model, now).await?;
                load_version(tx, id).await
            })
        })
        .await
    }

    async fn delete_model_version(&self, name: &str, version: &str) -> Result<()> {
        let v = validation::parse_model_version(version)?;
        let name = name.to_string();
        self.write(move |tx, _| {
            Box::pin(async move {
                let (model, id) = require_version(tx, &name, v, true).await?;
                tx.execute(
                    "DELETE FROM registered_model_aliases WHERE model = $1 AND version = $2",
                    &[&model, &v],
                )
                .await?;
                tx.execute("DELETE FROM model_versions WHERE id = $1", &[&id])
                    .await?;
                touch_model(tx, model, now_ms()).await?;
                Ok(())
            })
        })
        .await
    }

    async fn get_model_version_download_uri(&self, name: &str, version: &str) -> Result<String> {
        let v = validation::parse_model_version(version)?;
        let name = name.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let (_, id) = require_version(tx, &name, v, false).await?;
                Ok(tx
                    .query_one(
                        "SELECT coalesce(nullif(storage_location, ''), source) \
                         FROM model_versions WHERE id = $1",
                        &[&id],
                    )
                    .await?
                    .try_get(0)?)
            })
        })
        .await
    }

    async fn search_model_versions(&self, req: RegistrySearch) -> Result<Page<ModelVersion>> {
        let (sql, n_keys, fp) = search_query(
            Target::ModelVersions,
            &req,
            validation::SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD,
        )?;
        let max = req.max_results;
        self.read(move |tx| {
            Box::pin(async move {
                let (ids, next) = run_page_query(tx, &sql, n_keys, max).await?;
                let mut items = Vec::with_capacity(ids.len());
                for id in ids {
                    items.push(load_version(tx, id).await?);
                }
                Ok(Page {
                    items,
                    next_page_token: next.map(|k| search_sql::encode_token(fp, k)),
                })
            })
        })
        .await
    }

    async fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        tag: RegistryTag,
    ) -> Result<()> {
        validation::validate_registry_tag(&tag.key, &tag.value)?;
        let v = validation::parse_model_version(version)?;
        let name = name.to_string();
        self.write(move |tx, _| {
            Box::pin(async move {
                let (_, id) = require_version(tx, &name, v, true).await?;
                tx.execute(
                    "INSERT INTO model_version_tags (version, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (version, key) DO UPDATE SET value = excluded.value",
                    &[&id, &tag.key, &tag.value],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()> {
        validation::validate_key_name(key, "key")?;
        let v = validation::parse_model_version(version)?;
        let (name, key) = (name.to_string(), key.to_string());
        self.write(move |tx, _| {
            Box::pin(async move {
                let (_, id) = require_version(tx, &name, v, true).await?;
                tx.execute(
                    "DELETE FROM model_version_tags WHERE version = $1 AND key = $2",
                    &[&id, &key],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn set_registered_model_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
    ) -> Result<()> {
        validation::validate_alias(alias)?;
        let v = validation::parse_model_version(version)?;
        let (name, alias) = (name.to_string(), alias.to_string());
        self.write(move |tx, _| {
            Box::pin(async move {
                let (model, _) = require_version(tx, &name, v, true).await?;
                tx.execute(
                    "INSERT INTO registered_model_aliases (model, alias, version) \
                     VALUES ($1, $2, $3) ON CONFLICT (model, alias) DO UPDATE \
                     SET version = excluded.version",
                    &[&model, &alias, &v],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn delete_registered_model_alias(&self, name: &str, alias: &str) -> Result<()> {
        let (name, alias) = (name.to_string(), alias.to_string());
        self.write(move |tx, _| {
            Box::pin(async move {
                let model = require_model(tx, &name, true).await?;
                tx.execute(
                    "DELETE FROM registered_model_aliases WHERE model = $1 AND alias = $2",
                    &[&model, &alias],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        let (name, alias) = (name.to_string(), alias.to_string());
        self.read(move |tx| {
            Box::pin(async move {
                let model = require_model(tx, &name, false).await?;
                let id: i64 = tx
                    .query_opt(
                        "SELECT mv.id FROM registered_model_aliases a JOIN model_versions mv \
                         ON mv.model = a.model AND mv.version = a.version \
                         WHERE a.model = $1 AND a.alias = $2",
                        &[&model, &alias],
                    )
                    .await?
                    .map(|r| r.get(0))
                    .ok_or_else(|| invalid(format!("Registered model alias {alias} not found.")))?;
                load_version(tx, id).await
            })
        })
        .await
    }
}

/// `cairn import`: registered models and versions with the source's numbers and times.
#[cairn_plugin_api::async_trait]
impl RegistryImport for PostgresStore {
    async fn import_registered_model(
        &self,
        model: RegisteredModel,
        max_version: i64,
    ) -> Result<Imported> {
        self.write(move |tx, _| {
            Box::pin(async move {
                // A concurrent import of the same name finds the row or loses on UNIQUE (name).
                let inserted = tx
                    .query_opt(
                        "INSERT INTO registered_models (name, creation_timestamp, \
                         last_updated_timestamp, user_id, description, max_version) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING \
                         RETURNING id",
                        &[
                            &model.name,
                            &model.creation_timestamp,
                            &model
                                .last_updated_timestamp
                                .unwrap_or(model.creation_timestamp),
                            &model.user_id,
                            &model.description,
                            &max_version.max(0),
                        ],
                    )
                    .await?;
                let Some(r) = inserted else {
                    return Ok(Imported::Present);
                };
                let id: i64 = r.try_get(0)?;
                for t in &model.tags {
                    tx.execute(
                        "INSERT INTO registered_model_tags (model, key, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (model, key) DO UPDATE SET value = excluded.value",
                        &[&id, &t.key, &t.value],
                    )
                    .await?;
                }
                for a in &model.aliases {
                    let v = validation::parse_model_version(&a.version)?;
                    tx.execute(
                        "INSERT INTO registered_model_aliases (model, alias, version) \
                         VALUES ($1, $2, $3) ON CONFLICT (model, alias) DO UPDATE \
                         SET version = excluded.version",
                        &[&id, &a.alias, &v],
                    )
                    .await?;
                }
                Ok(Imported::Written)
            })
        })
        .await
    }

    async fn import_model_version(&self, v: ImportModelVersion) -> Result<Imported> {
        let number = validation::parse_model_version(&v.version.version)?;
        self.write(move |tx, _| {
            Box::pin(async move {
                let mv = &v.version;
                // The model's row lock, which version allocation takes too.
                let model = require_model(tx, &mv.name, true).await?;
                let present = tx
                    .query_opt(
                        "SELECT id FROM model_versions WHERE model = $1 AND version = $2",
                        &[&model, &number],
                    )
                    .await?;
                if present.is_some() {
                    return Ok(Imported::Present);
                }
                tx.execute(
                    "UPDATE registered_models SET max_version = greatest(max_version, $2) \
                     WHERE id = $1",
                    &[&model, &number],
                )
                .await?;
                let id: i64 = tx
                    .query_one(
                        "INSERT INTO model_versions (model, version, creation_timestamp, \
                         last_updated_timestamp, user_id, current_stage, description, source, \
                         storage_location, run_id, run_link, status, status_message, model_id) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                         RETURNING id",
                        &[
                            &model,
                            &number,
                            &mv.creation_timestamp,
                            &mv.last_updated_timestamp,
                            &mv.user_id,
                            &mv.current_stage.as_str(),
                            &mv.description,
                            &mv.source,
                            &v.storage_location,
                            &mv.run_id,
                            &mv.run_link,
                            &mv.status.as_str(),
                            &mv.status_message,
                            &mv.model_id,
                        ],
                    )
                    .await?
                    .try_get(0)?;
                for t in &mv.tags {
                    tx.execute(
                        "INSERT INTO model_version_tags (version, key, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (version, key) DO UPDATE SET value = excluded.value",
                        &[&id, &t.key, &t.value],
                    )
                    .await?;
                }
                Ok(Imported::Written)
            })
        })
        .await
    }
}
