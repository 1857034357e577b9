//! The [`ModelRegistryStore`] on the same SQLite database as the tracking store.
//!
//! Registered models, versions, tags and aliases live in the tables of schema version 2 (see
//! [`crate::schema`]). Writes run on the writer thread in one `BEGIN IMMEDIATE` transaction
//! each, reads in one snapshot on a reader thread, exactly as the tracking methods do.
//!
//! Searches translate filters and orderings to SQL ([`crate::search_sql`], targets
//! `RegisteredModels` and `ModelVersions`) with keyset page tokens, as the tracking searches
//! do; prompts are excluded in SQL unless the filter names the prompt tag (api.md §5.4).

use crate::error::{StoreError, StoreResult, invalid, not_found};
use crate::search_sql::{self, Target};
use crate::store::run_page_query;
use crate::store::{SqliteStore, now_ms};
use cairn_plugin_api::import::{ImportModelVersion, Imported, RegistryImport};
use cairn_plugin_api::model_registry::*;
use cairn_plugin_api::search::eval::PROMPT_TAG;
use cairn_plugin_api::search::{Entity, Expr, Key, OrderBy};
use cairn_plugin_api::tracking::Page;
use cairn_plugin_api::{Error, Result, validation};
use rusqlite::{Connection, OptionalExtension, params};

/// The columns [`version_row`] reads, from `model_versions mv JOIN registered_models rm`.
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

/// The row id of the model named `name`.
fn require_model(conn: &Connection, name: &str) -> StoreResult<i64> {
    conn.prepare_cached("SELECT id FROM registered_models WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?
        .ok_or_else(|| no_registered_model(name))
}

/// The row ids of the model named `name` and of its version `version`.
fn require_version(conn: &Connection, name: &str, version: i64) -> StoreResult<(i64, i64)> {
    let model = require_model(conn, name)?;
    let id = conn
        .prepare_cached("SELECT id FROM model_versions WHERE model = ?1 AND version = ?2")?
        .query_row(params![model, version], |r| r.get(0))
        .optional()?
        .ok_or_else(|| no_version(name, version))?;
    Ok((model, id))
}

fn tags_of(conn: &Connection, sql: &str, id: i64) -> StoreResult<Vec<RegistryTag>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([id], |r| {
        Ok(RegistryTag {
            key: r.get(0)?,
            value: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn status(s: &str) -> StoreResult<ModelVersionStatus> {
    ModelVersionStatus::from_name(s).ok_or_else(|| StoreError::Corrupt(format!("status {s}")))
}

/// Reads one row of [`VERSION_COLUMNS`] and completes it with its tags and aliases.
fn version_row(conn: &Connection, r: &rusqlite::Row<'_>) -> StoreResult<ModelVersion> {
    let id: i64 = r.get(0)?;
    let stage: String = r.get(6)?;
    let status_text: String = r.get(11)?;
    let version: i64 = r.get(2)?;
    let mut mv = ModelVersion {
        name: r.get(1)?,
        version: version.to_string(),
        creation_timestamp: r.get(3)?,
        last_updated_timestamp: r.get(4)?,
        user_id: r.get(5)?,
        current_stage: Stage::parse(&stage).map_err(StoreError::Api)?,
        description: r.get(7)?,
        source: r.get(8)?,
        run_id: r.get(9)?,
        status: status(&status_text)?,
        status_message: r.get(12)?,
        tags: Vec::new(),
        run_link: r.get(10)?,
        aliases: Vec::new(),
        model_id: r.get(13)?,
        model_params: Vec::new(),
        model_metrics: Vec::new(),
    };
    mv.tags = tags_of(
        conn,
        "SELECT key, value FROM model_version_tags WHERE version = ?1 ORDER BY key",
        id,
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT a.alias FROM registered_model_aliases a JOIN model_versions mv \
         ON mv.model = a.model AND mv.version = a.version WHERE mv.id = ?1 ORDER BY a.alias",
    )?;
    mv.aliases = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(mv)
}

/// Versions selected by `where_sql` (over `mv` and `rm`) with `args`.
fn load_versions(
    conn: &Connection,
    where_sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> StoreResult<Vec<ModelVersion>> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM model_versions mv JOIN registered_models rm \
         ON rm.id = mv.model WHERE {where_sql}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(args)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(version_row(conn, r)?);
    }
    Ok(out)
}

fn load_version(conn: &Connection, id: i64) -> StoreResult<ModelVersion> {
    load_versions(conn, "mv.id = ?1", &[&id])?
        .pop()
        .ok_or_else(|| StoreError::Corrupt(format!("model version row {id} vanished")))
}

/// The highest version of `model` in each of `stages`, in that order.
fn latest_versions(
    conn: &Connection,
    model: i64,
    stages: &[Stage],
) -> StoreResult<Vec<ModelVersion>> {
    let mut out = Vec::new();
    for stage in stages {
        let found = load_versions(
            conn,
            "mv.model = ?1 AND mv.current_stage = ?2 ORDER BY mv.version DESC LIMIT 1",
            &[&model, &stage.as_str()],
        )?;
        out.extend(found);
    }
    Ok(out)
}

fn load_registered_model(conn: &Connection, id: i64) -> StoreResult<RegisteredModel> {
    let mut rm = conn
        .prepare_cached(
            "SELECT name, creation_timestamp, last_updated_timestamp, user_id, description \
             FROM registered_models WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(RegisteredModel {
                name: r.get(0)?,
                creation_timestamp: r.get(1)?,
                last_updated_timestamp: Some(r.get(2)?),
                user_id: r.get(3)?,
                description: r.get(4)?,
                latest_versions: Vec::new(),
                tags: Vec::new(),
                aliases: Vec::new(),
            })
        })?;
    rm.latest_versions = latest_versions(conn, id, &Stage::ALL)?;
    rm.tags = tags_of(
        conn,
        "SELECT key, value FROM registered_model_tags WHERE model = ?1 ORDER BY key",
        id,
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT alias, version FROM registered_model_aliases WHERE model = ?1 ORDER BY alias",
    )?;
    rm.aliases = stmt
        .query_map([id], |r| {
            Ok(RegisteredModelAlias {
                alias: r.get(0)?,
                version: r.get::<_, i64>(1)?.to_string(),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rm)
}

fn touch_model(tx: &Connection, model: i64, now: i64) -> StoreResult<()> {
    tx.prepare_cached("UPDATE registered_models SET last_updated_timestamp = ?2 WHERE id = ?1")?
        .execute(params![model, now])?;
    Ok(())
}

fn validate_tags(tags: &[RegistryTag]) -> Result<()> {
    tags.iter()
        .try_for_each(|t| validation::validate_registry_tag(&t.key, &t.value))
}

/// Whether `expr` names the prompt tag; if not, prompts are hidden from a search.
fn mentions_prompt_tag(expr: &Expr) -> bool {
    match expr {
        Expr::And(xs) | Expr::Or(xs) => xs.iter().any(mentions_prompt_tag),
        Expr::Compare(c) => c.key.entity == Entity::Tag && c.key.name == PROMPT_TAG,
    }
}

/// The row ids of one page of a registry search, and the token of the next page.
fn search_sync(
    conn: &Connection,
    target: Target,
    req: &RegistrySearch,
    threshold: usize,
) -> StoreResult<(Vec<i64>, Option<String>)> {
    validation::validate_max_results(req.max_results, threshold)?;
    let fp = search_sql::fingerprint(&(
        matches!(target, Target::ModelVersions),
        &req.filter,
        &req.order_by,
    ));
    let mut sql = search_sql::sql();
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
    let (ids, next) = run_page_query(conn, &sql, keys.len(), req.max_results)?;
    Ok((ids, next.map(|k| search_sql::encode_token(fp, k))))
}

#[cairn_plugin_api::async_trait]
impl ModelRegistryStore for SqliteStore {
    fn registry_importer(&self) -> Option<&dyn RegistryImport> {
        Some(self)
    }

    fn capabilities(&self) -> RegistryCapabilities {
        RegistryCapabilities { aliases: true }
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
            let taken = tx
                .prepare_cached("SELECT 1 FROM registered_models WHERE name = ?1")?
                .exists([&name])?;
            if taken {
                return Err(StoreError::Api(Error::already_exists(format!(
                    "Registered Model (name={name}) already exists."
                ))));
            }
            let now = now_ms();
            tx.prepare_cached(
                "INSERT INTO registered_models (name, creation_timestamp, \
                 last_updated_timestamp, description) VALUES (?1, ?2, ?2, ?3)",
            )?
            .execute(params![name, now, description])?;
            let id = tx.last_insert_rowid();
            for t in &tags {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO registered_model_tags (model, key, value) \
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, t.key, t.value])?;
            }
            load_registered_model(tx, id)
        })
        .await
    }

    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let name = name.to_string();
        self.read(move |tx| {
            let id = require_model(tx, &name)?;
            load_registered_model(tx, id)
        })
        .await
    }

    async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel> {
        validation::validate_model_name(new_name)?;
        let (name, new_name) = (name.to_string(), new_name.to_string());
        self.write(move |tx, _| {
            let id = require_model(tx, &name)?;
            if new_name != name {
                let taken = tx
                    .prepare_cached("SELECT 1 FROM registered_models WHERE name = ?1")?
                    .exists([&new_name])?;
                if taken {
                    return Err(StoreError::Api(Error::already_exists(format!(
                        "Registered Model (name={new_name}) already exists."
                    ))));
                }
            }
            let now = now_ms();
            tx.prepare_cached(
                "UPDATE registered_models SET name = ?2, last_updated_timestamp = ?3 \
                 WHERE id = ?1",
            )?
            .execute(params![id, new_name, now])?;
            tx.prepare_cached(
                "UPDATE model_versions SET last_updated_timestamp = ?2 WHERE model = ?1",
            )?
            .execute(params![id, now])?;
            load_registered_model(tx, id)
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
            let id = require_model(tx, &name)?;
            tx.prepare_cached(
                "UPDATE registered_models SET description = ?2, last_updated_timestamp = ?3 \
                 WHERE id = ?1",
            )?
            .execute(params![id, description, now_ms()])?;
            load_registered_model(tx, id)
        })
        .await
    }

    async fn delete_registered_model(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.write(move |tx, _| {
            let id = require_model(tx, &name)?;
            // Explicit deletes, so the result does not depend on `foreign_keys` being on.
            tx.execute(
                "DELETE FROM model_version_tags WHERE version IN \
                 (SELECT id FROM model_versions WHERE model = ?1)",
                [id],
            )?;
            tx.execute("DELETE FROM model_versions WHERE model = ?1", [id])?;
            tx.execute("DELETE FROM registered_model_tags WHERE model = ?1", [id])?;
            tx.execute(
                "DELETE FROM registered_model_aliases WHERE model = ?1",
                [id],
            )?;
            tx.execute("DELETE FROM registered_models WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    async fn search_registered_models(&self, req: RegistrySearch) -> Result<Page<RegisteredModel>> {
        self.read(move |tx| {
            let (ids, next_page_token) = search_sync(
                tx,
                Target::RegisteredModels,
                &req,
                validation::SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD,
            )?;
            let items = ids
                .into_iter()
                .map(|id| load_registered_model(tx, id))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Page {
                items,
                next_page_token,
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
            let id = require_model(tx, &name)?;
            latest_versions(tx, id, &wanted)
        })
        .await
    }

    async fn set_registered_model_tag(&self, name: &str, tag: RegistryTag) -> Result<()> {
        validation::validate_registry_tag(&tag.key, &tag.value)?;
        let name = name.to_string();
        self.write(move |tx, _| {
            let id = require_model(tx, &name)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO registered_model_tags (model, key, value) \
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id, tag.key, tag.value])?;
            Ok(())
        })
        .await
    }

    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        validation::validate_key_name(key, "key")?;
        let (name, key) = (name.to_string(), key.to_string());
        self.write(move |tx, _| {
            let id = require_model(tx, &name)?;
            tx.prepare_cached("DELETE FROM registered_model_tags WHERE model = ?1 AND key = ?2")?
                .execute(params![id, key])?;
            Ok(())
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
            let model = require_model(tx, &req.name)?;
            let version: i64 = tx
                .prepare_cached(
                    "UPDATE registered_models SET max_version = max_version + 1, \
                     last_updated_timestamp = ?2 WHERE id = ?1 RETURNING max_version",
                )?
                .query_row(params![model, now_ms()], |r| r.get(0))?;
            let now = now_ms();
            tx.prepare_cached(
                "INSERT INTO model_versions (model, version, creation_timestamp, \
                 last_updated_timestamp, user_id, current_stage, description, source, \
                 storage_location, run_id, run_link, status, model_id) \
                 VALUES (?1, ?2, ?3, ?3, ?4, 'None', ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                model,
                version,
                now,
                req.user_id,
                req.description,
                req.source,
                req.storage_location,
                req.run_id,
                req.run_link,
                ModelVersionStatus::Ready.as_str(),
                req.model_id,
            ])?;
            let id = tx.last_insert_rowid();
            for t in &req.tags {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO model_version_tags (version, key, value) \
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, t.key, t.value])?;
            }
            load_version(tx, id)
        })
        .await
    }

    async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        let v = validation::parse_model_version(version)?;
        let name = name.to_string();
        self.read(move |tx| {
            let (_, id) = require_version(tx, &name, v)?;
            load_version(tx, id)
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
            let (_, id) = require_version(tx, &name, v)?;
            tx.prepare_cached(
                "UPDATE model_versions SET description = ?2, last_updated_timestamp = ?3 \
                 WHERE id = ?1",
            )?
            .execute(params![id, description, now_ms()])?;
            load_version(tx, id)
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
            let (model, id) = require_version(tx, &name, v)?;
            let now = now_ms();
            if archive_existing_versions {
                tx.prepare_cached(
                    "UPDATE model_versions SET current_stage = 'Archived', \
                     last_updated_timestamp = ?3 \
                     WHERE model = ?1 AND current_stage = ?2 AND id != ?4",
                )?
                .execute(params![model, stage.as_str(), now, id])?;
            }
            tx.prepare_cached(
                "UPDATE model_versions SET current_stage = ?2, last_updated_timestamp = ?3 \
                 WHERE id = ?1",
            )?
            .execute(params![id, stage.as_str(), now])?;
            touch_model(tx, model, now)?;
            load_version(tx, id)
        })
        .await
    }

    async fn delete_model_version(&self, name: &str, version: &str) -> Result<()> {
        let v = validation::parse_model_version(version)?;
        let name = name.to_string();
        self.write(move |tx, _| {
            let (model, id) = require_version(tx, &name, v)?;
            tx.execute("DELETE FROM model_version_tags WHERE version = ?1", [id])?;
            tx.execute(
                "DELETE FROM registered_model_aliases WHERE model = ?1 AND version = ?2",
                params![model, v],
            )?;
            tx.execute("DELETE FROM model_versions WHERE id = ?1", [id])?;
            touch_model(tx, model, now_ms())?;
            Ok(())
        })
        .await
    }

    async fn get_model_version_download_uri(&self, name: &str, version: &str) -> Result<String> {
        let v = validation::parse_model_version(version)?;
        let name = name.to_string();
        self.read(move |tx| {
            let (_, id) = require_version(tx, &name, v)?;
            Ok(tx
                .prepare_cached(
                    "SELECT coalesce(nullif(storage_location, ''), source) \
                     FROM model_versions WHERE id = ?1",
                )?
                .query_row([id], |r| r.get(0))?)
        })
        .await
    }

    async fn search_model_versions(&self, req: RegistrySearch) -> Result<Page<ModelVersion>> {
        self.read(move |tx| {
            let (ids, next_page_token) = search_sync(
                tx,
                Target::ModelVersions,
                &req,
                validation::SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD,
            )?;
            let items = ids
                .into_iter()
                .map(|id| load_version(tx, id))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Page {
                items,
                next_page_token,
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
            let (_, id) = require_version(tx, &name, v)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO model_version_tags (version, key, value) \
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id, tag.key, tag.value])?;
            Ok(())
        })
        .await
    }

    async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()> {
        validation::validate_key_name(key, "key")?;
        let v = validation::parse_model_version(version)?;
        let (name, key) = (name.to_string(), key.to_string());
        self.write(move |tx, _| {
            let (_, id) = require_version(tx, &name, v)?;
            tx.prepare_cached("DELETE FROM model_version_tags WHERE version = ?1 AND key = ?2")?
                .execute(params![id, key])?;
            Ok(())
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
            let (model, _) = require_version(tx, &name, v)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO registered_model_aliases (model, alias, version) \
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(params![model, alias, v])?;
            Ok(())
        })
        .await
    }

    async fn delete_registered_model_alias(&self, name: &str, alias: &str) -> Result<()> {
        let (name, alias) = (name.to_string(), alias.to_string());
        self.write(move |tx, _| {
            let model = require_model(tx, &name)?;
            tx.prepare_cached(
                "DELETE FROM registered_model_aliases WHERE model = ?1 AND alias = ?2",
            )?
            .execute(params![model, alias])?;
            Ok(())
        })
        .await
    }

    async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        let (name, alias) = (name.to_string(), alias.to_string());
        self.read(move |tx| {
            let model = require_model(tx, &name)?;
            let id: i64 = tx
                .prepare_cached(
                    "SELECT mv.id FROM registered_model_aliases a JOIN model_versions mv \
                     ON mv.model = a.model AND mv.version = a.version \
                     WHERE a.model = ?1 AND a.alias = ?2",
                )?
                .query_row(params![model, alias], |r| r.get(0))
                .optional()?
                .ok_or_else(|| invalid(format!("Registered model alias {alias} not found.")))?;
            load_version(tx, id)
        })
        .await
    }
}

/// `cairn import`: registered models and versions with the source's numbers and times.
#[cairn_plugin_api::async_trait]
impl RegistryImport for SqliteStore {
    async fn import_registered_model(
        &self,
        model: RegisteredModel,
        max_version: i64,
    ) -> Result<Imported> {
        self.write(move |tx, _| {
            let present: Option<i64> = tx
                .prepare_cached("SELECT id FROM registered_models WHERE name = ?1")?
                .query_row([&model.name], |r| r.get(0))
                .optional()?;
            if present.is_some() {
                return Ok(Imported::Present);
            }
            tx.execute(
                "INSERT INTO registered_models (name, creation_timestamp, \
                 last_updated_timestamp, user_id, description, max_version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    model.name,
                    model.creation_timestamp,
                    model
                        .last_updated_timestamp
                        .unwrap_or(model.creation_timestamp),
                    model.user_id,
                    model.description,
                    max_version.max(0)
                ],
            )?;
            let id = tx.last_insert_rowid();
            for t in &model.tags {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO registered_model_tags (model, key, value) \
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, t.key, t.value])?;
            }
            for a in &model.aliases {
                let v = validation::parse_model_version(&a.version)?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO registered_model_aliases (model, alias, version) \
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, a.alias, v])?;
            }
            Ok(Imported::Written)
        })
        .await
    }

    async fn import_model_version(&self, v: ImportModelVersion) -> Result<Imported> {
        let number = validation::parse_model_version(&v.version.version)?;
        self.write(move |tx, _| {
            let mv = &v.version;
            let model = require_model(tx, &mv.name)?;
            let present: Option<i64> = tx
                .prepare_cached("SELECT id FROM model_versions WHERE model = ?1 AND version = ?2")?
                .query_row(params![model, number], |r| r.get(0))
                .optional()?;
            if present.is_some() {
                return Ok(Imported::Present);
            }
            tx.prepare_cached(
                "UPDATE registered_models SET max_version = max(max_version, ?2) WHERE id = ?1",
            )?
            .execute(params![model, number])?;
            tx.prepare_cached(
                "INSERT INTO model_versions (model, version, creation_timestamp, \
                 last_updated_timestamp, user_id, current_stage, description, source, \
                 storage_location, run_id, run_link, status, status_message, model_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                model,
                number,
                mv.creation_timestamp,
                mv.last_updated_timestamp,
                mv.user_id,
                mv.current_stage.as_str(),
                mv.description,
                mv.source,
                v.storage_location,
                mv.run_id,
                mv.run_link,
                mv.status.as_str(),
                mv.status_message,
                mv.model_id,
            ])?;
            let id = tx.last_insert_rowid();
            for t in &mv.tags {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO model_version_tags (version, key, value) \
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, t.key, t.value])?;
            }
            Ok(Imported::Written)
        })
        .await
    }
}
