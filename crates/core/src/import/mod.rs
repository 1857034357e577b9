//! `cairn import --from <mlflow-store-uri>`: copies an MLflow deployment's tracking and
//! registry database (MLflow's own SQL schema, SQLite or PostgreSQL, any alembic revision up
//! to MLflow 3.18's head), or its FileStore `mlruns/` directory (`filestore`), into the
//! stores Cairn is configured with, keeping every id, number,
//! timestamp, metric history, tag, param, input, LoggedModel, registered model, version, stage
//! and alias, so every `runs:/`, `models:/` URI and every artifact location keeps working.
//!
//! How (see [`cairn_plugin_api::import`] for the store side):
//! - The source is read in one snapshot (read-only), page by page with keyset pagination:
//!   experiments, LoggedModels, runs (a run's metric history streamed in chunks of
//!   `METRIC_CHUNK` into the store while it is read), registered models and their versions.
//!   Memory stays bounded by a page, whatever the size of the source.
//! - Every entity is one transaction in the destination: a failure leaves whole entities
//!   only. An entity whose id is already in the destination is left untouched ("present"),
//!   so re-running an interrupted import continues where it stopped and re-running a
//!   finished one writes nothing; an id that is there with another identity (experiment 3
//!   named differently) stops the import with an error naming both.
//! - Artifact locations are kept verbatim, so the destination serves artifacts from where
//!   MLflow put them: point `--artifacts-destination` at MLflow's `--artifacts-destination`
//!   for `mlflow-artifacts:/` locations, or give `--artifacts <MLflow's destination>` to copy
//!   them into Cairn's artifacts destination (`artifacts`).
//! - Not imported: traces, workspaces other than `default`,
//!   and MLflow's GenAI tables (scorers, evaluation datasets, prompts optimisation jobs, ...).

mod artifacts;
mod filestore;
mod source;

use crate::assembly::Assembly;
use crate::error::{Error, Result};
use cairn_plugin_api::entities::*;
use cairn_plugin_api::import::{Chunks, ImportModelVersion, ImportRun, Imported};
use cairn_plugin_api::model_registry::{
    ModelVersion, ModelVersionStatus, RegisteredModel, RegisteredModelAlias, RegistryTag, Stage,
};
use cairn_plugin_api::{ErrorKind, ModelRegistryStore, TrackingStore};
use source::{Db, Schema, Val};
use std::io::Write;
use std::sync::Arc;

/// Metric history rows per chunk handed to the store.
pub(crate) const METRIC_CHUNK: usize = 5000;
/// Rows per page of the entity lists.
const PAGE: i64 = 200;

/// `cairn import` options.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ImportArgs {
    /// The MLflow tracking store to copy from, as `mlflow server --backend-store-uri` names
    /// it: MLflow's SQL database (sqlite:///mlflow.db, postgresql://user:pw@host/db) or its
    /// FileStore directory (./mlruns, file:///path/to/mlruns).
    #[arg(long, value_name = "URI")]
    pub from: String,
    /// Report what would be copied (and what is already present) without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not print progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// MLflow's artifacts destination (`mlflow server --artifacts-destination`, ./mlartifacts
    /// by default): copy every file under it into Cairn's artifacts destination
    /// (--artifacts-destination / store.artifacts_destination), so proxied
    /// `mlflow-artifacts:/` locations resolve through Cairn. Files already there with the same
    /// size are skipped.
    #[arg(long, value_name = "URI")]
    pub artifacts: Option<String>,
    /// The destination store options, as `cairn check` and `mlflow server` spell them.
    #[command(flatten)]
    pub store: crate::cli::StoreArgs,
}

/// Per-entity counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Written by this run.
    pub written: u64,
    /// Already there.
    pub present: u64,
}

impl Count {
    pub(crate) fn add(&mut self, outcome: Imported) {
        match outcome {
            Imported::Written => self.written += 1,
            Imported::Present => self.present += 1,
        }
    }
}

/// The final report.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) experiments: Count,
    pub(crate) logged_models: Count,
    pub(crate) runs: Count,
    pub(crate) metric_values: u64,
    pub(crate) registered_models: Count,
    pub(crate) model_versions: Count,
    /// Files under `--artifacts`.
    pub(crate) artifacts: Count,
    pub(crate) artifact_bytes: u64,
}

/// The destination stores and how to write into them (shared by both sources).
pub(crate) struct Dest<'a> {
    pub(crate) tracking: Arc<dyn TrackingStore>,
    pub(crate) registry: Option<Arc<dyn ModelRegistryStore>>,
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) dry_run: bool,
    quiet: bool,
    err: &'a mut dyn Write,
}

/// An import from MLflow's SQL schema.
struct Ctx<'a> {
    db: Box<dyn Db>,
    schema: Schema,
    dest: Dest<'a>,
}

fn store_failed(what: String, e: cairn_plugin_api::Error) -> Error {
    Error::Import(format!("{what}: {}", e.message))
}

/// The tracking store (and, when `with_registry`, the registry store) as import destinations.
fn destination<'a>(
    args: &ImportArgs,
    assembly: &Assembly<'_>,
    with_registry: bool,
    err: &'a mut dyn Write,
) -> Result<Dest<'a>> {
    let tracking = assembly.tracking_store()?;
    if tracking.plugin.importer().is_none() {
        return Err(Error::Import(format!(
            "the tracking store '{}' ({}) cannot be an import destination (NOT_IMPLEMENTED: \
             only the built-in sqlite and postgresql stores take entities with given ids)",
            tracking.entry.name, tracking.from
        )));
    }
    let registry = if with_registry {
        let built = assembly.registry_store()?;
        if built.plugin.registry_importer().is_none() {
            return Err(Error::Import(format!(
                "the model-registry store '{}' ({}) cannot be an import destination \
                 (NOT_IMPLEMENTED)",
                built.entry.name, built.from
            )));
        }
        Some(built.plugin)
    } else {
        None
    };
    Ok(Dest {
        tracking: tracking.plugin,
        registry,
        rt: crate::cli::runtime()?,
        dry_run: args.dry_run,
        quiet: args.quiet,
        err,
    })
}

/// Runs `cairn import`: progress on `err`, the final counts on `out`.
pub fn run(
    args: &ImportArgs,
    assembly: &Assembly<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let mut report = Report::default();
    // Both artifact repositories are built first: a wrong --artifacts stops before anything
    // is written.
    let artifact_repos = match &args.artifacts {
        Some(uri) => Some(artifact_repositories(uri, assembly)?),
        None => None,
    };
    let (mut dest, result) = if let Some(root) = filestore::root(&args.from)? {
        let with_registry = root.join("models").is_dir();
        let mut dest = destination(args, assembly, with_registry, err)?;
        dest.progress(&format!(
            "cairn import: reading MLflow's FileStore {}{}",
            root.display(),
            if args.dry_run { ", dry run" } else { "" }
        ));
        let result =
            filestore::copy_all(&root, &mut dest, &mut report).and_then(|()| dest.finish());
        (dest, result)
    } else {
        let mut db = source::open(&args.from)?;
        let schema = Schema::inspect(&mut *db)?;
        let with_registry = schema.has_table("registered_models");
        let dest = destination(args, assembly, with_registry, err)?;
        let mut ctx = Ctx { db, schema, dest };
        let from = crate::secrets::redact_uri(&args.from).into_owned();
        ctx.dest.progress(&format!(
            "cairn import: reading {from} (MLflow schema revision {}){}",
            ctx.schema.revision,
            if args.dry_run { ", dry run" } else { "" }
        ));
        let result = copy_all(&mut ctx, &mut report).and_then(|()| ctx.dest.finish());
        (ctx.dest, result)
    };
    let result = match (result, artifact_repos) {
        (Ok(()), Some((source, to))) => artifacts::copy_tree(source, to, &mut dest, &mut report),
        (result, _) => result,
    };
    let verb = if args.dry_run {
        "would write"
    } else {
        "written"
    };
    let line = |name: &str, c: Count| {
        format!(
            "{name:<18} {verb} {:>8}, already present {:>8}\n",
            c.written, c.present
        )
    };
    let mut text = String::new();
    text.push_str(&line("experiments", report.experiments));
    text.push_str(&line("logged models", report.logged_models));
    text.push_str(&line("runs", report.runs));
    text.push_str(&format!(
        "{:<18} {verb} {:>8} (in the runs written)\n",
        "metric values", report.metric_values
    ));
    text.push_str(&line("registered models", report.registered_models));
    text.push_str(&line("model versions", report.model_versions));
    if args.artifacts.is_some() {
        text.push_str(&line("artifact files", report.artifacts));
        text.push_str(&format!(
            "{:<18} {verb} {:>8} (in the files written)\n",
            "artifact bytes", report.artifact_bytes
        ));
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::Output)?;
    result
}

/// The repository of `--artifacts` (MLflow's artifacts destination) and Cairn's artifacts
/// destination, refused when they are the same storage.
fn artifact_repositories(
    uri: &str,
    assembly: &Assembly<'_>,
) -> Result<(
    Arc<dyn cairn_plugin_api::ArtifactRepository>,
    Arc<dyn cairn_plugin_api::ArtifactRepository>,
)> {
    let source = assembly
        .repositories()
        .repository(uri)
        .map_err(|e| e.requested_by(format!("--artifacts {}", crate::secrets::redact_uri(uri))))?;
    let dest = assembly.artifacts_destination()?.plugin;
    if source.root_uri().trim_end_matches('/') == dest.root_uri().trim_end_matches('/') {
        return Err(Error::Import(format!(
            "--artifacts {} is Cairn's artifacts destination itself: nothing to copy (serve it \
             as it is, or name another --artifacts-destination)",
            crate::secrets::redact_uri(uri)
        )));
    }
    Ok((source, dest))
}

fn copy_all(ctx: &mut Ctx<'_>, report: &mut Report) -> Result<()> {
    if ctx.schema.has("experiments", "workspace") {
        let others = ctx.db.rows(
            "SELECT count(*) FROM experiments WHERE workspace <> 'default'",
            &[],
        )?;
        let n = others.first().and_then(|r| r[0].int()).unwrap_or(0);
        if n > 0 {
            return Err(Error::Import(format!(
                "the MLflow database has {n} experiment(s) in workspaces other than 'default'; \
                 Cairn has no workspaces, and imports only databases that use the default one"
            )));
        }
    }
    experiments(ctx, report)?;
    if ctx.schema.has_table("logged_models") {
        logged_models(ctx, report)?;
    }
    runs(ctx, report)?;
    if ctx.dest.registry.is_some() {
        registered_models(ctx, report)?;
    }
    Ok(())
}

impl Dest<'_> {
    pub(crate) fn progress(&mut self, line: &str) {
        if !self.quiet {
            let _ = writeln!(self.err, "{line}");
        }
    }

    /// Tells the tracking store the import is complete (it may refresh its statistics).
    fn finish(&mut self) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        self.progress("cairn import: updating the destination's statistics");
        let store = self.tracking.clone();
        self.rt
            .block_on(async move { importer(&store)?.import_finished().await })
            .map_err(|e| store_failed("finishing the import".into(), e))
    }

    /// Whether the destination already has the entity `probe` looks up.
    fn present<F, T>(&self, probe: F) -> Result<bool>
    where
        F: Future<Output = cairn_plugin_api::Result<T>>,
    {
        match self.rt.block_on(probe) {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(store_failed("reading the destination".into(), e)),
        }
    }

    /// Writes one experiment (or, in a dry run, reports whether it would be written).
    pub(crate) fn experiment(&mut self, exp: Experiment) -> Result<Imported> {
        let store = self.tracking.clone();
        if self.dry_run {
            let key = exp.experiment_id.clone();
            return Ok(dry(
                self.present(async move { store.get_experiment(&key).await })?
            ));
        }
        let what = format!("experiment {} ('{}')", exp.experiment_id, exp.name);
        self.rt
            .block_on(async move { importer(&store)?.import_experiment(exp).await })
            .map_err(|e| store_failed(what, e))
    }

    /// Writes one LoggedModel in lifecycle `stage`.
    pub(crate) fn logged_model(
        &mut self,
        model: LoggedModel,
        stage: LifecycleStage,
    ) -> Result<Imported> {
        let store = self.tracking.clone();
        let model_id = model.info.model_id.clone();
        if self.dry_run {
            return Ok(dry(self.present(async move {
                store.get_logged_model(&model_id, true).await
            })?));
        }
        self.rt
            .block_on(async move { importer(&store)?.import_logged_model(model, stage).await })
            .map_err(|e| store_failed(format!("logged model {model_id}"), e))
    }

    /// Writes one run with its whole metric history: the store consumes the chunks (inside
    /// its transaction) while `history` reads them; at most two chunks are in flight. Returns
    /// what happened and how many metric values were (or, in a dry run, would be) written.
    pub(crate) fn run(
        &mut self,
        run: ImportRun,
        history: &mut dyn History,
    ) -> Result<(Imported, u64)> {
        let run_id = run.info.run_id.clone();
        let store = self.tracking.clone();
        if self.dry_run {
            let key = run_id.clone();
            let outcome = dry(self.present(async move { store.get_run(&key).await })?);
            let values = if outcome == Imported::Written {
                history.count()?
            } else {
                0
            };
            return Ok((outcome, values));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let chunks: Chunks<Metric> = Box::pin(Receiver(rx));
        let job = self
            .rt
            .spawn(async move { importer(&store)?.import_run(run, chunks).await });
        let mut values = 0u64;
        let mut read_error = None;
        loop {
            match history.next_chunk() {
                Ok(Some(chunk)) => {
                    values += chunk.len() as u64;
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        // The store stopped reading: the run is present, or it failed
                        // (reported below).
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.blocking_send(Err(cairn_plugin_api::Error::internal(format!(
                        "reading the source failed: {e}"
                    ))));
                    read_error = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let outcome = self
            .rt
            .block_on(job)
            .map_err(|e| Error::Import(format!("run {run_id}: the import task failed: {e}")))?
            .map_err(|e| store_failed(format!("run {run_id}"), e));
        if let Some(e) = read_error {
            return Err(e);
        }
        let outcome = outcome?;
        Ok((
            outcome,
            if outcome == Imported::Written {
                values
            } else {
                0
            },
        ))
    }

    /// Writes one registered model (versions up to `max_version` count as allocated).
    pub(crate) fn registered_model(
        &mut self,
        model: RegisteredModel,
        max_version: i64,
    ) -> Result<Imported> {
        let Some(store) = self.registry.clone() else {
            return Err(Error::Import(
                "no model-registry store to import into".into(),
            ));
        };
        let name = model.name.clone();
        if self.dry_run {
            return Ok(dry(self.present(async move {
                store.get_registered_model(&name).await
            })?));
        }
        self.rt
            .block_on(async move {
                registry_importer(&store)?
                    .import_registered_model(model, max_version)
                    .await
            })
            .map_err(|e| store_failed(format!("registered model '{name}'"), e))
    }

    /// Writes one model version of a registered model already imported.
    pub(crate) fn model_version(&mut self, import: ImportModelVersion) -> Result<Imported> {
        let Some(store) = self.registry.clone() else {
            return Err(Error::Import(
                "no model-registry store to import into".into(),
            ));
        };
        let (name, number) = (import.version.name.clone(), import.version.version.clone());
        if self.dry_run {
            return Ok(dry(self.present(async move {
                store.get_model_version(&name, &number).await
            })?));
        }
        self.rt
            .block_on(async move {
                registry_importer(&store)?
                    .import_model_version(import)
                    .await
            })
            .map_err(|e| store_failed(format!("model version '{name}' {number}"), e))
    }
}

/// A run's metric history, read in chunks of at most `METRIC_CHUNK` values.
pub(crate) trait History {
    /// The next chunk; `None` once the history is over.
    fn next_chunk(&mut self) -> Result<Option<Vec<Metric>>>;
    /// How many values the history has (for a dry run).
    fn count(&mut self) -> Result<u64>;
}

fn experiments(ctx: &mut Ctx<'_>, report: &mut Report) -> Result<()> {
    let s = &ctx.schema;
    let sql = format!(
        "SELECT experiment_id, name, artifact_location, lifecycle_stage, {}, {} FROM experiments \
         WHERE experiment_id > ?{} ORDER BY experiment_id LIMIT {PAGE}",
        s.col("experiments", "", "creation_time"),
        s.col("experiments", "", "last_update_time"),
        s.default_workspace("experiments", ""),
    );
    let mut after = -1i64;
    loop {
        let rows = ctx.db.rows(&sql, &[Val::Int(after)])?;
        let Some(last) = rows.last() else { break };
        after = last[0].int().unwrap_or(after);
        for r in rows {
            let id = r[0].int().unwrap_or(0);
            let tags = ctx
                .db
                .rows(
                    "SELECT key, value FROM experiment_tags WHERE experiment_id = ? ORDER BY key",
                    &[Val::Int(id)],
                )?
                .into_iter()
                .map(|t| ExperimentTag::new(t[0].text_or_empty(), t[1].text_or_empty()))
                .collect();
            let exp = Experiment {
                experiment_id: id.to_string(),
                name: r[1].text_or_empty(),
                artifact_location: r[2].text_or_empty(),
                lifecycle_stage: lifecycle(&r[3]),
                creation_time: r[4].int(),
                last_update_time: r[5].int(),
                tags,
            };
            report.experiments.add(ctx.dest.experiment(exp)?);
        }
    }
    ctx.dest.progress(&format!(
        "experiments: {} written, {} already present",
        report.experiments.written, report.experiments.present
    ));
    Ok(())
}

fn dry(present: bool) -> Imported {
    if present {
        Imported::Present
    } else {
        Imported::Written
    }
}

fn importer(
    store: &Arc<dyn TrackingStore>,
) -> cairn_plugin_api::Result<&dyn cairn_plugin_api::import::TrackingImport> {
    store
        .importer()
        .ok_or_else(|| cairn_plugin_api::Error::unsupported("import"))
}

fn registry_importer(
    store: &Arc<dyn ModelRegistryStore>,
) -> cairn_plugin_api::Result<&dyn cairn_plugin_api::import::RegistryImport> {
    store
        .registry_importer()
        .ok_or_else(|| cairn_plugin_api::Error::unsupported("import"))
}

fn lifecycle(v: &Val) -> LifecycleStage {
    if v.text().as_deref() == Some("deleted") {
        LifecycleStage::Deleted
    } else {
        LifecycleStage::Active
    }
}

/// MLflow's stored metric value: NaN is stored as 0 with `is_nan`, and a NULL (LoggedModel
/// metrics) is NaN.
fn metric_value(v: &Val, is_nan: &Val) -> f64 {
    if is_nan.truthy() {
        f64::NAN
    } else {
        v.real().unwrap_or(f64::NAN)
    }
}

fn logged_models(ctx: &mut Ctx<'_>, report: &mut Report) -> Result<()> {
    let sql = format!(
        "SELECT model_id, experiment_id, name, artifact_location, creation_timestamp_ms, \
         last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, \
         status_message FROM logged_models WHERE model_id > ? ORDER BY model_id LIMIT {PAGE}"
    );
    let mut after = String::new();
    loop {
        let rows = ctx.db.rows(&sql, &[Val::Text(after.clone())])?;
        let Some(last) = rows.last() else { break };
        after = last[0].text_or_empty();
        for r in rows {
            let model_id = r[0].text_or_empty();
            let id = Val::Text(model_id.clone());
            let tags = ctx
                .db
                .rows(
                    "SELECT tag_key, tag_value FROM logged_model_tags WHERE model_id = ? \
                     ORDER BY tag_key",
                    std::slice::from_ref(&id),
                )?
                .into_iter()
                .map(|t| LoggedModelTag {
                    key: t[0].text_or_empty(),
                    value: t[1].text_or_empty(),
                })
                .collect();
            let params = ctx
                .db
                .rows(
                    "SELECT param_key, param_value FROM logged_model_params WHERE model_id = ? \
                     ORDER BY param_key",
                    std::slice::from_ref(&id),
                )?
                .into_iter()
                .map(|t| LoggedModelParameter {
                    key: t[0].text_or_empty(),
                    value: t[1].text_or_empty(),
                })
                .collect();
            let metrics = ctx
                .db
                .rows(
                    "SELECT metric_name, metric_value, metric_timestamp_ms, metric_step, run_id, \
                     dataset_name, dataset_digest FROM logged_model_metrics WHERE model_id = ? \
                     ORDER BY metric_name, metric_timestamp_ms, metric_step",
                    std::slice::from_ref(&id),
                )?
                .into_iter()
                .map(|m| {
                    let mut metric = Metric::new(
                        m[0].text_or_empty(),
                        metric_value(&m[1], &Val::Null),
                        m[2].int().unwrap_or(0),
                        m[3].int().unwrap_or(0),
                    );
                    metric.run_id = m[4].text();
                    metric.dataset_name = m[5].text();
                    metric.dataset_digest = m[6].text();
                    metric.model_id = Some(model_id.clone());
                    metric
                })
                .collect();
            let status = r[6]
                .int()
                .and_then(LoggedModelStatus::from_number)
                .unwrap_or(LoggedModelStatus::Unspecified);
            let model = LoggedModel {
                info: LoggedModelInfo {
                    model_id: model_id.clone(),
                    experiment_id: r[1].int().unwrap_or(0).to_string(),
                    name: r[2].text_or_empty(),
                    creation_timestamp_ms: r[4].int().unwrap_or(0),
                    last_updated_timestamp_ms: r[5].int().unwrap_or(0),
                    artifact_uri: r[3].text_or_empty(),
                    status,
                    creator_id: None,
                    model_type: r[8].text(),
                    source_run_id: r[9].text(),
                    status_message: r[10].text(),
                    tags,
                    registrations: Vec::new(),
                },
                data: LoggedModelData { params, metrics },
            };
            let stage = lifecycle(&r[7]);
            report
                .logged_models
                .add(ctx.dest.logged_model(model, stage)?);
        }
    }
    ctx.dest.progress(&format!(
        "logged models: {} written, {} already present",
        report.logged_models.written, report.logged_models.present
    ));
    Ok(())
}

/// A tokio receiver as the store's chunk stream.
struct Receiver(tokio::sync::mpsc::Receiver<cairn_plugin_api::Result<Vec<Metric>>>);

impl futures_core::Stream for Receiver {
    type Item = cairn_plugin_api::Result<Vec<Metric>>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn runs(ctx: &mut Ctx<'_>, report: &mut Report) -> Result<()> {
    let s = &ctx.schema;
    let total = ctx
        .db
        .rows("SELECT count(*) FROM runs", &[])?
        .first()
        .and_then(|r| r[0].int())
        .unwrap_or(0);
    let sql = format!(
        "SELECT run_uuid, {}, experiment_id, user_id, status, start_time, end_time, \
         artifact_uri, lifecycle_stage, {} FROM runs WHERE run_uuid > ? ORDER BY run_uuid \
         LIMIT {PAGE}",
        s.col("runs", "", "name"),
        s.col("runs", "", "deleted_time"),
    );
    let datasets = s.has_table("datasets") && s.has_table("inputs");
    let step = s.col("inputs", "", "step");
    let mut after = String::new();
    let mut done = 0i64;
    loop {
        let rows = ctx.db.rows(&sql, &[Val::Text(after.clone())])?;
        let Some(last) = rows.last() else { break };
        after = last[0].text_or_empty();
        for r in rows {
            let run_id = r[0].text_or_empty();
            let id = Val::Text(run_id.clone());
            let status = r[4]
                .text()
                .and_then(|s| RunStatus::from_name(&s))
                .unwrap_or(RunStatus::Running);
            let mut run = ImportRun::new(RunInfo {
                run_id: run_id.clone(),
                run_name: r[1].text_or_empty(),
                experiment_id: r[2].int().unwrap_or(0).to_string(),
                user_id: r[3].text_or_empty(),
                status,
                start_time: r[5].int().unwrap_or(0),
                end_time: r[6].int(),
                artifact_uri: r[7].text_or_empty(),
                lifecycle_stage: lifecycle(&r[8]),
            });
            run.deleted_time = r[9].int();
            run.params = ctx
                .db
                .rows(
                    "SELECT key, value FROM params WHERE run_uuid = ? ORDER BY key",
                    std::slice::from_ref(&id),
                )?
                .into_iter()
                .map(|t| Param::new(t[0].text_or_empty(), t[1].text_or_empty()))
                .collect();
            run.tags = ctx
                .db
                .rows(
                    "SELECT key, value FROM tags WHERE run_uuid = ? ORDER BY key",
                    std::slice::from_ref(&id),
                )?
                .into_iter()
                .map(|t| RunTag::new(t[0].text_or_empty(), t[1].text_or_empty()))
                .collect();
            if run.info.run_name.is_empty()
                && let Some(name) = run.tags.iter().find(|t| t.key == "mlflow.runName")
            {
                run.info.run_name = name.value.clone();
            }
            if datasets {
                let inputs = ctx.db.rows(
                    "SELECT i.input_uuid, d.name, d.digest, d.dataset_source_type, \
                     d.dataset_source, d.dataset_schema, d.dataset_profile FROM inputs i \
                     JOIN datasets d ON d.dataset_uuid = i.source_id \
                     WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' \
                     AND i.destination_id = ? ORDER BY i.input_uuid",
                    std::slice::from_ref(&id),
                )?;
                for i in inputs {
                    let tags = ctx
                        .db
                        .rows(
                            "SELECT name, value FROM input_tags WHERE input_uuid = ? ORDER BY name",
                            &[i[0].clone()],
                        )?
                        .into_iter()
                        .map(|t| InputTag {
                            key: t[0].text_or_empty(),
                            value: t[1].text_or_empty(),
                        })
                        .collect();
                    run.inputs.dataset_inputs.push(DatasetInput {
                        tags,
                        dataset: Dataset {
                            name: i[1].text_or_empty(),
                            digest: i[2].text_or_empty(),
                            source_type: i[3].text_or_empty(),
                            source: i[4].text_or_empty(),
                            schema: i[5].text(),
                            profile: i[6].text(),
                        },
                    });
                }
                for m in ctx.db.rows(
                    "SELECT destination_id FROM inputs WHERE source_type = 'RUN_INPUT' \
                     AND source_id = ? AND destination_type = 'MODEL_INPUT' \
                     ORDER BY destination_id",
                    std::slice::from_ref(&id),
                )? {
                    run.inputs.model_inputs.push(ModelInput {
                        model_id: m[0].text_or_empty(),
                    });
                }
                for m in ctx.db.rows(
                    &format!(
                        "SELECT destination_id, {step} FROM inputs WHERE source_type = \
                         'RUN_OUTPUT' AND source_id = ? AND destination_type = 'MODEL_OUTPUT' \
                         ORDER BY destination_id"
                    ),
                    std::slice::from_ref(&id),
                )? {
                    run.outputs.model_outputs.push(ModelOutput {
                        model_id: m[0].text_or_empty(),
                        step: m[1].int().unwrap_or(0),
                    });
                }
            }
            let mut history = SqlHistory {
                db: &mut *ctx.db,
                run_id,
                cursor: None,
                done: false,
            };
            let (outcome, values) = ctx.dest.run(run, &mut history)?;
            report.metric_values += values;
            report.runs.add(outcome);
            done += 1;
            if done % 100 == 0 || done == total {
                ctx.dest.progress(&format!("runs: {done}/{total}"));
            }
        }
    }
    ctx.dest.progress(&format!(
        "runs: {} written, {} already present",
        report.runs.written, report.runs.present
    ));
    Ok(())
}

/// A run's metric history read from MLflow's `metrics` table in keyset pages of
/// `METRIC_CHUNK` rows, in primary-key order (MLflow's metric_pk holds these five columns).
struct SqlHistory<'c> {
    db: &'c mut dyn Db,
    run_id: String,
    cursor: Option<(String, i64, i64, f64, bool)>,
    done: bool,
}

impl History for SqlHistory<'_> {
    fn next_chunk(&mut self) -> Result<Option<Vec<Metric>>> {
        if self.done {
            return Ok(None);
        }
        let rows = match self.cursor.clone() {
            // The first page starts before every key (the empty key itself included).
            None => self.db.rows(
                "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ? \
                 ORDER BY key, timestamp, step, value, is_nan LIMIT ?",
                &[
                    Val::Text(self.run_id.clone()),
                    Val::Int(METRIC_CHUNK as i64),
                ],
            )?,
            Some((k, t, s, v, nan)) => self.db.rows(
                "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ? \
                 AND (key > ? OR (key = ? AND (timestamp > ? OR (timestamp = ? AND (step > ? \
                 OR (step = ? AND (value > ? OR (value = ? AND is_nan > ?)))))))) \
                 ORDER BY key, timestamp, step, value, is_nan LIMIT ?",
                &[
                    Val::Text(self.run_id.clone()),
                    Val::Text(k.clone()),
                    Val::Text(k),
                    Val::Int(t),
                    Val::Int(t),
                    Val::Int(s),
                    Val::Int(s),
                    Val::Real(v),
                    Val::Real(v),
                    Val::Int(nan.into()),
                    Val::Int(METRIC_CHUNK as i64),
                ],
            )?,
        };
        let Some(last) = rows.last() else {
            self.done = true;
            return Ok(None);
        };
        self.cursor = Some((
            last[0].text_or_empty(),
            last[2].int().unwrap_or(0),
            last[3].int().unwrap_or(0),
            last[1].real().unwrap_or(0.0),
            last[4].truthy(),
        ));
        self.done = rows.len() < METRIC_CHUNK;
        Ok(Some(
            rows.into_iter()
                .map(|m| {
                    Metric::new(
                        m[0].text_or_empty(),
                        metric_value(&m[1], &m[4]),
                        m[2].int().unwrap_or(0),
                        m[3].int().unwrap_or(0),
                    )
                })
                .collect(),
        ))
    }

    fn count(&mut self) -> Result<u64> {
        Ok(self
            .db
            .rows(
                "SELECT count(*) FROM metrics WHERE run_uuid = ?",
                &[Val::Text(self.run_id.clone())],
            )?
            .first()
            .and_then(|r| r[0].int())
            .unwrap_or(0) as u64)
    }
}

fn registered_models(ctx: &mut Ctx<'_>, report: &mut Report) -> Result<()> {
    if ctx.dest.registry.is_none() {
        return Ok(());
    }
    let s = &ctx.schema;
    let ws = s.default_workspace("registered_models", "");
    let sql = format!(
        "SELECT name, creation_time, last_updated_time, description FROM registered_models \
         WHERE name > ?{ws} ORDER BY name LIMIT {PAGE}"
    );
    let tag_ws = s.default_workspace("registered_model_tags", "");
    let alias_ws = s.default_workspace("registered_model_aliases", "");
    let mv_ws = s.default_workspace("model_versions", "");
    let mvt_ws = s.default_workspace("model_version_tags", "");
    let aliases = s.has_table("registered_model_aliases");
    let versions_sql = format!(
        "SELECT version, creation_time, last_updated_time, description, user_id, \
         current_stage, source, run_id, status, status_message, run_link, {} \
         FROM model_versions WHERE name = ? AND version > ?{mv_ws} ORDER BY version LIMIT {PAGE}",
        s.col("model_versions", "", "storage_location"),
    );
    let mut after = String::new();
    loop {
        let rows = ctx.db.rows(&sql, &[Val::Text(after.clone())])?;
        let Some(last) = rows.last() else { break };
        after = last[0].text_or_empty();
        for r in rows {
            let name = r[0].text_or_empty();
            let key = Val::Text(name.clone());
            let tags = ctx
                .db
                .rows(
                    &format!(
                        "SELECT key, value FROM registered_model_tags WHERE name = ?{tag_ws} \
                         ORDER BY key"
                    ),
                    std::slice::from_ref(&key),
                )?
                .into_iter()
                .map(|t| RegistryTag {
                    key: t[0].text_or_empty(),
                    value: t[1].text_or_empty(),
                })
                .collect();
            let model_aliases = if aliases {
                ctx.db
                    .rows(
                        &format!(
                            "SELECT alias, version FROM registered_model_aliases WHERE name = ?\
                             {alias_ws} ORDER BY alias"
                        ),
                        std::slice::from_ref(&key),
                    )?
                    .into_iter()
                    .map(|a| RegisteredModelAlias {
                        alias: a[0].text_or_empty(),
                        version: a[1].int().unwrap_or(0).to_string(),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let max_version = ctx
                .db
                .rows(
                    &format!("SELECT max(version) FROM model_versions WHERE name = ?{mv_ws}"),
                    std::slice::from_ref(&key),
                )?
                .first()
                .and_then(|r| r[0].int())
                .unwrap_or(0);
            let created = r[1].int().unwrap_or(0);
            let model = RegisteredModel {
                name: name.clone(),
                creation_timestamp: created,
                last_updated_timestamp: r[2].int().or(Some(created)),
                user_id: None,
                description: r[3].text(),
                latest_versions: Vec::new(),
                tags,
                aliases: model_aliases,
            };
            report
                .registered_models
                .add(ctx.dest.registered_model(model, max_version)?);
            // Its versions, hidden (deleted) ones left out: their numbers stay allocated
            // through max_version.
            let mut after_version = 0i64;
            loop {
                let vs = ctx
                    .db
                    .rows(&versions_sql, &[key.clone(), Val::Int(after_version)])?;
                let Some(last) = vs.last() else { break };
                after_version = last[0].int().unwrap_or(after_version);
                for v in vs {
                    let stage_text = v[5].text().unwrap_or_else(|| "None".into());
                    if stage_text == "Deleted_Internal" {
                        continue;
                    }
                    let number = v[0].int().unwrap_or(0);
                    let tags = ctx
                        .db
                        .rows(
                            &format!(
                                "SELECT key, value FROM model_version_tags WHERE name = ? \
                                 AND version = ?{mvt_ws} ORDER BY key"
                            ),
                            &[key.clone(), Val::Int(number)],
                        )?
                        .into_iter()
                        .map(|t| RegistryTag {
                            key: t[0].text_or_empty(),
                            value: t[1].text_or_empty(),
                        })
                        .collect();
                    let created = v[1].int().unwrap_or(0);
                    let version = ModelVersion {
                        name: name.clone(),
                        version: number.to_string(),
                        creation_timestamp: created,
                        last_updated_timestamp: v[2].int().unwrap_or(created),
                        user_id: v[4].text(),
                        current_stage: Stage::parse(&stage_text).unwrap_or(Stage::None),
                        description: v[3].text(),
                        source: v[6].text_or_empty(),
                        run_id: v[7].text(),
                        status: v[8]
                            .text()
                            .and_then(|s| ModelVersionStatus::from_name(&s))
                            .unwrap_or(ModelVersionStatus::Ready),
                        status_message: v[9].text(),
                        tags,
                        run_link: v[10].text(),
                        aliases: Vec::new(),
                        model_id: None,
                        model_params: Vec::new(),
                        model_metrics: Vec::new(),
                    };
                    let mut import = ImportModelVersion::new(version);
                    import.storage_location = v[11].text();
                    report.model_versions.add(ctx.dest.model_version(import)?);
                }
            }
        }
    }
    ctx.dest.progress(&format!(
        "registered models: {} written, {} already present; model versions: {} written, {} \
         already present",
        report.registered_models.written,
        report.registered_models.present,
        report.model_versions.written,
        report.model_versions.present
    ));
    Ok(())
}
