//! The `jsonl` tracking store: an append-only event log replayed into memory at open.
//!
//! Every write call validates against the in-memory state (MLflow's stateless checks are the
//! host's: it serves the store behind [`cairn_plugin_api::Validated`]), appends **one line** holding its
//! event to `events.jsonl`, and only then applies the event to the state, with the same code
//! that replays the log at open: what a reader sees after a restart is what it saw before. A
//! failed append is rolled back (the file is truncated to its previous length), so a call is
//! all or nothing; a line torn by a crash at the very end of the file is ignored at open.
//!
//! Reads and searches work on the in-memory state with the reference evaluator
//! ([`cairn_plugin_api::search::eval`]); page tokens are offsets into the ordered result.

use cairn_plugin_api::entities::*;
use cairn_plugin_api::search::eval;
use cairn_plugin_api::tracking::*;
use cairn_plugin_api::{Error, ErrorKind, Result, TrackingStore, async_trait, validation};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_plugin_api::validation::RUN_NAME_TAG;
const CONTEXT_TAG: &str = "mlflow.data.context";
const LOG_FILE: &str = "events.jsonl";
const MAX_BULK_RUNS: usize = 100;
const MAX_BULK_RESULTS: usize = 2500;
const MAX_DATASET_SUMMARIES: usize = 1000;

/// `[settings.jsonl]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonlSettings {
    /// `fsync` the log after every write (durable across power loss; slower).
    pub fsync: bool,
}

/// One line of the log: a change to the state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    ExperimentCreated {
        experiment: Experiment,
    },
    ExperimentStage {
        id: i64,
        stage: LifecycleStage,
        time: i64,
    },
    ExperimentRenamed {
        id: i64,
        name: String,
        time: i64,
    },
    ExperimentTagSet {
        id: i64,
        tag: ExperimentTag,
    },
    ExperimentTagDeleted {
        id: i64,
        key: String,
    },
    RunCreated {
        run: Box<Run>,
    },
    RunUpdated {
        id: String,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<String>,
    },
    RunStage {
        id: String,
        stage: LifecycleStage,
    },
    Batch {
        id: String,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<RunTag>,
    },
    RunTagDeleted {
        id: String,
        key: String,
    },
    Inputs {
        id: String,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    },
    Outputs {
        id: String,
        models: Vec<ModelOutput>,
    },
}

/// A run with its full metric history.
#[derive(Debug, Clone)]
struct RunRec {
    run: Run,
    /// Every value per key, ordered by `(timestamp, step, value)`, exact duplicates dropped.
    history: BTreeMap<String, Vec<Metric>>,
}

/// Everything the log says, in memory.
#[derive(Debug, Default)]
struct State {
    experiments: BTreeMap<i64, Experiment>,
    runs: HashMap<String, RunRec>,
    /// Datasets by `(experiment id, name, digest)`: stored once per experiment.
    datasets: BTreeMap<(String, String, String), Dataset>,
}

fn upsert_by<T>(items: &mut Vec<T>, item: T, key: impl Fn(&T) -> &str) {
    match items.binary_search_by(|t| key(t).cmp(key(&item))) {
        Ok(i) => items[i] = item,
        Err(i) => items.insert(i, item),
    }
}

fn set_run_tag(run: &mut Run, tag: RunTag) {
    if tag.key == RUN_NAME_TAG {
        run.info.run_name = tag.value.clone();
    }
    upsert_by(&mut run.data.tags, tag, |t| &t.key);
}

/// The history order: `(timestamp, step, value)` with NaN after the numbers of equal
/// timestamp and step (stored as 0 plus a flag, as the SQL store orders it).
fn history_order(a: &Metric, b: &Metric) -> Ordering {
    let v = |m: &Metric| if m.value.is_nan() { 0.0 } else { m.value };
    (a.timestamp, a.step)
        .cmp(&(b.timestamp, b.step))
        .then_with(|| v(a).total_cmp(&v(b)))
        .then_with(|| a.value.is_nan().cmp(&b.value.is_nan()))
}

/// Whether `a` replaces `b` as the latest value: `(step, timestamp, value)` strictly greater,
/// NaN counting as 0 (MLflow's rule).
fn is_later(a: &Metric, b: &Metric) -> bool {
    let v = |m: &Metric| if m.value.is_nan() { 0.0 } else { m.value };
    (a.step, a.timestamp)
        .cmp(&(b.step, b.timestamp))
        .then_with(|| v(a).partial_cmp(&v(b)).unwrap_or(Ordering::Equal))
        .is_gt()
}

impl State {
    /// Applies one event. Events are validated before they are written, so applying one
    /// cannot fail; an event naming something unknown (a damaged log) changes nothing.
    fn apply(&mut self, event: Event) {
        match event {
            Event::ExperimentCreated { experiment } => {
                if let Ok(id) = experiment.experiment_id.parse() {
                    self.experiments.insert(id, experiment);
                }
            }
            Event::ExperimentStage { id, stage, time } => {
                if let Some(e) = self.experiments.get_mut(&id) {
                    e.lifecycle_stage = stage;
                    e.last_update_time = Some(time);
                    let id = id.to_string();
                    for rec in self.runs.values_mut() {
                        if rec.run.info.experiment_id == id {
                            rec.run.info.lifecycle_stage = stage;
                        }
                    }
                }
            }
            Event::ExperimentRenamed { id, name, time } => {
                if let Some(e) = self.experiments.get_mut(&id) {
                    e.name = name;
                    e.last_update_time = Some(time);
                }
            }
            Event::ExperimentTagSet { id, tag } => {
                if let Some(e) = self.experiments.get_mut(&id) {
                    upsert_by(&mut e.tags, tag, |t| &t.key);
                }
            }
            Event::ExperimentTagDeleted { id, key } => {
                if let Some(e) = self.experiments.get_mut(&id) {
                    e.tags.retain(|t| t.key != key);
                }
            }
            Event::RunCreated { run } => {
                self.runs.insert(
                    run.info.run_id.clone(),
                    RunRec {
                        run: *run,
                        history: BTreeMap::new(),
                    },
                );
            }
            Event::RunUpdated {
                id,
                status,
                end_time,
                run_name,
            } => {
                if let Some(rec) = self.runs.get_mut(&id) {
                    if let Some(status) = status {
                        rec.run.info.status = status;
                    }
                    if let Some(end) = end_time {
                        rec.run.info.end_time = Some(end);
                    }
                    if let Some(name) = run_name {
                        set_run_tag(&mut rec.run, RunTag::new(RUN_NAME_TAG, name));
                    }
                }
            }
            Event::RunStage { id, stage } => {
                if let Some(rec) = self.runs.get_mut(&id) {
                    rec.run.info.lifecycle_stage = stage;
                }
            }
            Event::Batch {
                id,
                metrics,
                params,
                tags,
            } => {
                let Some(rec) = self.runs.get_mut(&id) else {
                    return;
                };
                for p in params {
                    if rec.run.param(&p.key).is_none() {
                        upsert_by(&mut rec.run.data.params, p, |p| &p.key);
                    }
                }
                for m in metrics {
                    let latest = Metric::new(m.key.clone(), m.value, m.timestamp, m.step);
                    match rec.run.data.metrics.binary_search_by(|x| x.key.cmp(&m.key)) {
                        Ok(i) if is_later(&latest, &rec.run.data.metrics[i]) => {
                            rec.run.data.metrics[i] = latest
                        }
                        Ok(_) => {}
                        Err(i) => rec.run.data.metrics.insert(i, latest),
                    }
                    let history = rec.history.entry(m.key.clone()).or_default();
                    if let Err(i) = history.binary_search_by(|x| history_order(x, &m)) {
                        history.insert(i, m);
                    }
                }
                for t in tags {
                    set_run_tag(&mut rec.run, t);
                }
            }
            Event::RunTagDeleted { id, key } => {
                if let Some(rec) = self.runs.get_mut(&id) {
                    rec.run.data.tags.retain(|t| t.key != key);
                }
            }
            Event::Inputs {
                id,
                datasets,
                models,
            } => {
                let Some(rec) = self.runs.get_mut(&id) else {
                    return;
                };
                let experiment = rec.run.info.experiment_id.clone();
                for input in datasets {
                    let d = input.dataset;
                    let key = (experiment.clone(), d.name.clone(), d.digest.clone());
                    // The first logging of a dataset in an experiment defines it.
                    let stored = self.datasets.entry(key).or_insert(d).clone();
                    let inputs = &mut rec.run.inputs.dataset_inputs;
                    if !inputs
                        .iter()
                        .any(|i| i.dataset.name == stored.name && i.dataset.digest == stored.digest)
                    {
                        inputs.push(DatasetInput {
                            tags: input.tags,
                            dataset: stored,
                        });
                    }
                }
                for m in models {
                    if !rec.run.inputs.model_inputs.contains(&m) {
                        rec.run.inputs.model_inputs.push(m);
                    }
                }
            }
            Event::Outputs { id, models } => {
                if let Some(rec) = self.runs.get_mut(&id) {
                    for m in models {
                        if !rec.run.outputs.model_outputs.contains(&m) {
                            rec.run.outputs.model_outputs.push(m);
                        }
                    }
                }
            }
        }
    }

    fn experiment(&self, id: i64) -> Result<&Experiment> {
        self.experiments.get(&id).ok_or_else(|| no_experiment(id))
    }

    fn active_experiment(&self, id: i64) -> Result<&Experiment> {
        let e = self.experiment(id)?;
        if e.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "The experiment {id} must be in the 'active' state. Current state is deleted."
            )));
        }
        Ok(e)
    }

    fn run(&self, id: &str) -> Result<&RunRec> {
        self.runs
            .get(id)
            .ok_or_else(|| Error::not_found(format!("Run with id={id} not found")))
    }

    fn active_run(&self, id: &str) -> Result<&RunRec> {
        let rec = self.run(id)?;
        if rec.run.info.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "The run {id} must be in the 'active' state. Current state is deleted."
            )));
        }
        Ok(rec)
    }
}

fn no_experiment(id: impl std::fmt::Display) -> Error {
    Error::not_found(format!("No Experiment with id={id} exists"))
}

/// An experiment id of this store (decimal); the empty string is the Default experiment.
fn experiment_id(id: &str) -> Result<i64> {
    if id.is_empty() {
        return Ok(0);
    }
    validation::parse_integer_experiment_id(id)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One page of `items` from the offset in `token`.
fn page<T>(items: Vec<T>, max_results: usize, token: Option<&str>) -> Result<Page<T>> {
    let offset = match token {
        None | Some("") => 0,
        Some(t) => t
            .strip_prefix('o')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| Error::invalid(format!("Invalid page token '{t}'")))?,
    };
    let total = items.len();
    let items: Vec<T> = items.into_iter().skip(offset).take(max_results).collect();
    let end = offset.saturating_add(items.len());
    Ok(Page {
        next_page_token: (end < total).then(|| format!("o{end}")),
        items,
    })
}

/// The directory a `jsonl:` URI names.
fn directory_of(uri: &str) -> Result<PathBuf> {
    let rest = match uri.split_once(':') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(crate::SCHEME) => rest,
        _ => {
            return Err(Error::invalid(format!(
                "'{uri}' is not a jsonl URI; expected jsonl:///path/to/dir"
            )));
        }
    };
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.is_empty() {
        return Err(Error::invalid(format!(
            "'{uri}' names no directory; expected jsonl:///path/to/dir"
        )));
    }
    Ok(PathBuf::from(path))
}

fn io_error(what: String, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Unavailable, what).with_source(e)
}

/// The tracking store on an append-only JSON-lines log.
pub struct JsonlStore {
    inner: Mutex<Inner>,
    fsync: bool,
    path: PathBuf,
    /// Where new experiments' artifacts go: `<root>/<experiment id>`.
    root: String,
}

struct Inner {
    state: State,
    log: File,
    len: u64,
}

impl JsonlStore {
    /// Opens (creating if needed) the store at the `jsonl:` `uri`; new experiments store their
    /// artifacts under `default_artifact_root` (default: `artifacts/` in the store's
    /// directory, as a `file:` URI).
    pub fn open(
        uri: &str,
        default_artifact_root: Option<&str>,
        settings: &JsonlSettings,
    ) -> Result<Self> {
        let dir = directory_of(uri)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| io_error(format!("cannot create {}", dir.display()), e))?;
        let path = dir.join(LOG_FILE);
        let mut log = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_error(format!("cannot open {}", path.display()), e))?;
        let (state, len) = replay(&mut log, &path)?;
        let root = match default_artifact_root {
            Some(root) => root.to_owned(),
            None => {
                let abs = std::path::absolute(dir.join("artifacts")).unwrap_or(dir);
                format!("file://{}", abs.display())
            }
        };
        let store = JsonlStore {
            inner: Mutex::new(Inner { state, log, len }),
            fsync: settings.fsync,
            path,
            root,
        };
        store.write(|state| {
            Ok(if state.experiments.contains_key(&0) {
                vec![]
            } else {
                let now = now_ms();
                vec![Event::ExperimentCreated {
                    experiment: Experiment {
                        experiment_id: "0".into(),
                        name: "Default".into(),
                        artifact_location: cairn_plugin_api::paths::append_uri_path(
                            &store.root,
                            &["0"],
                        ),
                        lifecycle_stage: LifecycleStage::Active,
                        last_update_time: Some(now),
                        creation_time: Some(now),
                        tags: vec![],
                    },
                }]
            })
        })?;
        Ok(store)
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic cannot leave the state half-applied in a way the log disagrees with: events
        // are applied only after they are written, one whole event at a time.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> Result<T>) -> Result<T> {
        f(&self.lock().state)
    }

    /// Plans events against the state, appends them as lines, applies them.
    fn write(&self, plan: impl FnOnce(&State) -> Result<Vec<Event>>) -> Result<()> {
        self.write_then(plan, |_| Ok(()))
    }

    /// [`JsonlStore::write`], then `then` reads the result from the new state.
    fn write_then<T>(
        &self,
        plan: impl FnOnce(&State) -> Result<Vec<Event>>,
        then: impl FnOnce(&State) -> Result<T>,
    ) -> Result<T> {
        let mut inner = self.lock();
        let events = plan(&inner.state)?;
        if !events.is_empty() {
            let mut buf = Vec::new();
            for e in &events {
                serde_json::to_writer(&mut buf, e)
                    .map_err(|e| Error::internal("cannot encode an event").with_source(e))?;
                buf.push(b'\n');
            }
            let written = inner.log.write_all(&buf).and_then(|()| {
                if self.fsync {
                    inner.log.sync_data()
                } else {
                    Ok(())
                }
            });
            if let Err(e) = written {
                // Take back a partial line so the log stays a sequence of whole events.
                let _ = inner.log.set_len(inner.len);
                return Err(io_error(
                    format!("cannot append to {}", self.path.display()),
                    e,
                ));
            }
            inner.len += buf.len() as u64;
            for e in events {
                inner.state.apply(e);
            }
        }
        then(&inner.state)
    }
}

/// Rebuilds the state from the log; returns it and the length of the whole lines read.
fn replay(log: &mut File, path: &Path) -> Result<(State, u64)> {
    let mut state = State::default();
    let mut reader = BufReader::new(&*log);
    let mut line = String::new();
    let mut len = 0u64;
    let mut number = 0usize;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| io_error(format!("cannot read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        number += 1;
        if !line.ends_with('\n') {
            // A write torn by a crash: the call it belonged to never returned success.
            let _ = log.set_len(len);
            break;
        }
        if !line.trim().is_empty() {
            let event: Event = serde_json::from_str(&line).map_err(|e| {
                Error::internal(format!(
                    "{} line {number} is not a jsonl store event: {e}",
                    path.display()
                ))
            })?;
            state.apply(event);
        }
        len += n as u64;
    }
    Ok((state, len))
}

fn sorted_tags(tags: Vec<RunTag>) -> Vec<RunTag> {
    let mut out = Vec::new();
    for t in tags {
        upsert_by(&mut out, t, |t| &t.key);
    }
    out
}

#[async_trait]
impl TrackingStore for JsonlStore {
    fn capabilities(&self) -> TrackingCapabilities {
        TrackingCapabilities {
            logged_models: false,
            datasets: true,
        }
    }

    async fn create_experiment(&self, req: CreateExperiment) -> Result<String> {
        self.write_then(
            |state| {
                if state.experiments.values().any(|e| e.name == req.name) {
                    return Err(Error::already_exists(format!(
                        "Experiment(name={}) already exists.",
                        req.name
                    )));
                }
                let new_id = state.experiments.keys().next_back().map_or(0, |m| m + 1);
                let location = match req.artifact_location.as_deref() {
                    Some(l) if !l.is_empty() => l.to_owned(),
                    _ => {
                        cairn_plugin_api::paths::append_uri_path(&self.root, &[&new_id.to_string()])
                    }
                };
                let now = now_ms();
                let mut tags = Vec::new();
                for t in req.tags.clone() {
                    upsert_by(&mut tags, t, |t| &t.key);
                }
                Ok(vec![Event::ExperimentCreated {
                    experiment: Experiment {
                        experiment_id: new_id.to_string(),
                        name: req.name.clone(),
                        artifact_location: location,
                        lifecycle_stage: LifecycleStage::Active,
                        last_update_time: Some(now),
                        creation_time: Some(now),
                        tags,
                    },
                }])
            },
            // The new experiment has the greatest id.
            |state| {
                Ok(state
                    .experiments
                    .keys()
                    .next_back()
                    .copied()
                    .unwrap_or(0)
                    .to_string())
            },
        )
    }

    async fn get_experiment(&self, experiment_id_text: &str) -> Result<Experiment> {
        let id = experiment_id(experiment_id_text)?;
        self.read(|s| s.experiment(id).cloned())
    }

    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        self.read(|s| {
            let mut found: Vec<&Experiment> =
                s.experiments.values().filter(|e| e.name == name).collect();
            found.sort_by_key(|e| e.lifecycle_stage != LifecycleStage::Active);
            Ok(found.first().map(|e| (*e).clone()))
        })
    }

    async fn delete_experiment(&self, experiment_id_text: &str) -> Result<()> {
        let id = experiment_id(experiment_id_text)?;
        self.write(|s| {
            match s.experiments.get(&id) {
                Some(e) if e.lifecycle_stage == LifecycleStage::Active => {}
                _ => return Err(no_experiment(id)),
            }
            Ok(vec![Event::ExperimentStage {
                id,
                stage: LifecycleStage::Deleted,
                time: now_ms(),
            }])
        })
    }

    async fn restore_experiment(&self, experiment_id_text: &str) -> Result<()> {
        let id = experiment_id(experiment_id_text)?;
        self.write(|s| {
            match s.experiments.get(&id) {
                Some(e) if e.lifecycle_stage == LifecycleStage::Deleted => {}
                _ => return Err(no_experiment(id)),
            }
            Ok(vec![Event::ExperimentStage {
                id,
                stage: LifecycleStage::Active,
                time: now_ms(),
            }])
        })
    }

    async fn rename_experiment(&self, experiment_id_text: &str, new_name: &str) -> Result<()> {
        let id = experiment_id(experiment_id_text)?;
        self.write(|s| {
            let e = s.experiment(id)?;
            if e.lifecycle_stage != LifecycleStage::Active {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "Cannot rename a non-active experiment.",
                ));
            }
            if e.name == new_name {
                return Ok(vec![]);
            }
            if s.experiments.values().any(|e| e.name == new_name) {
                return Err(Error::already_exists(format!(
                    "Experiment(name={new_name}) already exists."
                )));
            }
            Ok(vec![Event::ExperimentRenamed {
                id,
                name: new_name.to_owned(),
                time: now_ms(),
            }])
        })
    }

    async fn set_experiment_tag(&self, experiment_id_text: &str, tag: ExperimentTag) -> Result<()> {
        let id = experiment_id(experiment_id_text)?;
        self.write(|s| {
            s.active_experiment(id)?;
            Ok(vec![Event::ExperimentTagSet { id, tag }])
        })
    }

    async fn delete_experiment_tag(&self, experiment_id_text: &str, key: &str) -> Result<()> {
        let id = experiment_id(experiment_id_text)?;
        self.write(|s| {
            if !s.active_experiment(id)?.tags.iter().any(|t| t.key == key) {
                return Err(Error::not_found(format!(
                    "No tag with name: {key} in experiment with id {id}"
                )));
            }
            Ok(vec![Event::ExperimentTagDeleted {
                id,
                key: key.to_owned(),
            }])
        })
    }

    async fn search_experiments(&self, req: SearchExperiments) -> Result<Page<Experiment>> {
        let mut found: Vec<Experiment> = self.read(|s| {
            Ok(s.experiments
                .values()
                .filter(|e| req.view_type.includes(e.lifecycle_stage))
                .filter(|e| {
                    req.filter
                        .as_ref()
                        .is_none_or(|f| eval::matches_experiment(f, e))
                })
                .cloned()
                .collect())
        })?;
        found.sort_by(|a, b| eval::compare_experiments(&req.order_by, a, b));
        page(found, req.max_results, req.page_token.as_deref())
    }

    async fn create_run(&self, req: CreateRun) -> Result<Run> {
        let exp_id = experiment_id(&req.experiment_id)?;
        let tags = req.tags;
        let run_name = validation::resolve_run_name(req.run_name, &tags)?;
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let mut tags = sorted_tags(tags);
        upsert_by(
            &mut tags,
            RunTag::new(RUN_NAME_TAG, run_name.clone()),
            |t| &t.key,
        );
        self.write_then(
            |s| {
                let exp = s.active_experiment(exp_id)?;
                Ok(vec![Event::RunCreated {
                    run: Box::new(Run {
                        info: RunInfo {
                            run_id: run_id.clone(),
                            run_name,
                            experiment_id: exp_id.to_string(),
                            user_id: req.user_id,
                            status: RunStatus::Running,
                            start_time: req.start_time,
                            end_time: None,
                            artifact_uri: cairn_plugin_api::paths::append_uri_path(
                                &exp.artifact_location,
                                &[&run_id, "artifacts"],
                            ),
                            lifecycle_stage: LifecycleStage::Active,
                        },
                        data: RunData {
                            metrics: vec![],
                            params: vec![],
                            tags,
                        },
                        inputs: RunInputs::default(),
                        outputs: RunOutputs::default(),
                    }),
                }])
            },
            |s| Ok(s.run(&run_id)?.run.clone()),
        )
    }

    async fn get_run(&self, run_id: &str) -> Result<Run> {
        self.read(|s| Ok(s.run(run_id)?.run.clone()))
    }

    async fn update_run_info(&self, run_id: &str, update: UpdateRun) -> Result<RunInfo> {
        self.write_then(
            |s| {
                s.active_run(run_id)?;
                Ok(vec![Event::RunUpdated {
                    id: run_id.to_owned(),
                    status: update.status,
                    end_time: update.end_time,
                    run_name: update.run_name.clone(),
                }])
            },
            |s| Ok(s.run(run_id)?.run.info.clone()),
        )
    }

    async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.write(|s| {
            s.run(run_id)?;
            Ok(vec![Event::RunStage {
                id: run_id.to_owned(),
                stage: LifecycleStage::Deleted,
            }])
        })
    }

    async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.write(|s| {
            s.run(run_id)?;
            Ok(vec![Event::RunStage {
                id: run_id.to_owned(),
                stage: LifecycleStage::Active,
            }])
        })
    }

    async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<RunTag>,
    ) -> Result<()> {
        self.write(|s| {
            let rec = s.active_run(run_id)?;
            if metrics.is_empty() && params.is_empty() && tags.is_empty() {
                return Ok(vec![]);
            }
            let mut new_params = Vec::new();
            for p in params {
                match rec.run.param(&p.key) {
                    Some(old) if old == p.value => {}
                    Some(old) => {
                        return Err(Error::invalid(format!(
                            "Changing param values is not allowed. Param with key='{}' was \
                             already logged with value='{}' for run ID='{}'. Attempted logging \
                             new value '{}'.",
                            p.key, old, run_id, p.value
                        )));
                    }
                    None => new_params.push(p),
                }
            }
            Ok(vec![Event::Batch {
                id: run_id.to_owned(),
                metrics,
                params: new_params,
                tags,
            }])
        })
    }

    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.write(|s| {
            if s.active_run(run_id)?.run.tag(key).is_none() {
                return Err(Error::not_found(format!(
                    "No tag with name: {key} in run with id {run_id}"
                )));
            }
            Ok(vec![Event::RunTagDeleted {
                id: run_id.to_owned(),
                key: key.to_owned(),
            }])
        })
    }

    async fn get_metric_history(
        &self,
        run_id: &str,
        metric_key: &str,
        max_results: usize,
        page_token: Option<String>,
    ) -> Result<Page<Metric>> {
        if max_results == 0 {
            return Err(Error::invalid(
                "Invalid value 0 for parameter 'max_results' supplied. It must be a positive \
                 integer",
            ));
        }
        let history = self.read(|s| {
            Ok(s.run(run_id)?
                .history
                .get(metric_key)
                .cloned()
                .unwrap_or_default())
        })?;
        page(history, max_results, page_token.as_deref())
    }

    async fn get_metric_history_bulk_interval(
        &self,
        req: BulkIntervalRequest,
    ) -> Result<Vec<MetricWithRunId>> {
        if req.run_ids.len() > MAX_BULK_RUNS {
            return Err(Error::invalid(format!(
                "GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} \
                 run_ids. Received {} run_ids.",
                req.run_ids.len()
            )));
        }
        if req.max_results == 0 || req.max_results > MAX_BULK_RESULTS {
            return Err(Error::invalid(format!(
                "max_results must be between 1 and {MAX_BULK_RESULTS}."
            )));
        }
        let (start, end) = match (req.start_step, req.end_step) {
            (None, None) => (i64::MIN, i64::MAX),
            (Some(s), Some(e)) if s <= e => (s, e),
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "end_step must be greater than or equal to start_step.",
                ));
            }
            _ => {
                return Err(Error::invalid(
                    "If either start step or end step are specified, both must be specified.",
                ));
            }
        };
        let mut run_ids: Vec<&str> = Vec::new();
        for id in &req.run_ids {
            if !run_ids.contains(&id.as_str()) {
                run_ids.push(id);
            }
        }
        // Each known run's values of the key in range, in the order the runs were given.
        let per_run: Vec<(&str, Vec<Metric>)> = self.read(|s| {
            Ok(run_ids
                .iter()
                .filter_map(|id| {
                    let rec = s.runs.get(*id)?;
                    let values: Vec<Metric> = rec
                        .history
                        .get(&req.metric_key)?
                        .iter()
                        .filter(|m| (start..=end).contains(&m.step))
                        .cloned()
                        .collect();
                    Some((*id, values))
                })
                .collect())
        })?;
        let steps: BTreeSet<i64> = per_run
            .iter()
            .flat_map(|(_, v)| v.iter().map(|m| m.step))
            .collect();
        let steps: Vec<i64> = steps.into_iter().collect();
        let total = steps.len();
        let mut chosen: BTreeSet<i64> = if total <= req.max_results {
            steps.iter().copied().collect()
        } else {
            (0..req.max_results)
                .map(|i| steps[i * total / req.max_results])
                .chain(steps.last().copied())
                .collect()
        };
        for (_, values) in &per_run {
            chosen.extend(values.iter().map(|m| m.step).min());
            chosen.extend(values.iter().map(|m| m.step).max());
        }
        let mut out = Vec::new();
        for (id, mut values) in per_run {
            values.retain(|m| chosen.contains(&m.step));
            values.sort_by(|a, b| {
                (a.step, a.timestamp)
                    .cmp(&(b.step, b.timestamp))
                    .then_with(|| a.value.total_cmp(&b.value))
            });
            out.extend(values.into_iter().map(|m| MetricWithRunId {
                key: m.key,
                value: m.value,
                timestamp: m.timestamp,
                step: m.step,
                run_id: id.to_owned(),
            }));
        }
        Ok(out)
    }

    async fn search_runs(&self, req: SearchRuns) -> Result<Page<Run>> {
        let experiments = req
            .experiment_ids
            .iter()
            .map(|id| experiment_id(id).map(|n| n.to_string()))
            .collect::<Result<BTreeSet<String>>>()?;
        if experiments.is_empty() {
            return Ok(Page::last(vec![]));
        }
        let mut found: Vec<Run> = self.read(|s| {
            Ok(s.runs
                .values()
                .map(|rec| &rec.run)
                .filter(|r| experiments.contains(&r.info.experiment_id))
                .filter(|r| req.view_type.includes(r.info.lifecycle_stage))
                .filter(|r| req.filter.as_ref().is_none_or(|f| eval::matches_run(f, r)))
                .cloned()
                .collect())
        })?;
        found.sort_by(|a, b| eval::compare_runs(&req.order_by, a, b));
        page(found, req.max_results, req.page_token.as_deref())
    }

    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        self.write(|s| {
            s.active_run(run_id)?;
            if datasets.is_empty() && models.is_empty() {
                return Ok(vec![]);
            }
            Ok(vec![Event::Inputs {
                id: run_id.to_owned(),
                datasets,
                models,
            }])
        })
    }

    async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()> {
        self.write(|s| {
            s.active_run(run_id)?;
            if models.is_empty() {
                return Ok(vec![]);
            }
            Ok(vec![Event::Outputs {
                id: run_id.to_owned(),
                models,
            }])
        })
    }

    async fn search_datasets(&self, experiment_ids: &[String]) -> Result<Vec<DatasetSummary>> {
        let experiments = experiment_ids
            .iter()
            .map(|id| experiment_id(id).map(|n| n.to_string()))
            .collect::<Result<BTreeSet<String>>>()?;
        self.read(|s| {
            let mut found = BTreeSet::new();
            for rec in s.runs.values() {
                if !experiments.contains(&rec.run.info.experiment_id) {
                    continue;
                }
                for input in &rec.run.inputs.dataset_inputs {
                    let context = input
                        .tags
                        .iter()
                        .find(|t| t.key == CONTEXT_TAG)
                        .map(|t| t.value.clone());
                    found.insert((
                        rec.run
                            .info
                            .experiment_id
                            .parse::<i64>()
                            .unwrap_or_default(),
                        input.dataset.name.clone(),
                        input.dataset.digest.clone(),
                        context,
                    ));
                }
            }
            Ok(found
                .into_iter()
                .take(MAX_DATASET_SUMMARIES)
                .map(|(experiment, name, digest, context)| DatasetSummary {
                    experiment_id: experiment.to_string(),
                    name,
                    digest,
                    context,
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_executor::block_on;

    fn open(dir: &Path) -> JsonlStore {
        let uri = format!("jsonl://{}", dir.display());
        JsonlStore::open(&uri, None, &JsonlSettings::default()).unwrap()
    }

    #[test]
    fn uris_name_a_directory() {
        assert_eq!(directory_of("jsonl:///tmp/x").unwrap(), Path::new("/tmp/x"));
        assert_eq!(directory_of("jsonl://rel/d").unwrap(), Path::new("rel/d"));
        assert_eq!(directory_of("JSONL:rel").unwrap(), Path::new("rel"));
        assert!(directory_of("jsonl://").is_err());
        assert!(directory_of("sqlite:///x").is_err());
    }

    #[test]
    fn state_survives_a_restart_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let run_id = {
            let store = open(dir.path());
            let exp = block_on(store.create_experiment(CreateExperiment {
                name: "e".into(),
                ..Default::default()
            }))
            .unwrap();
            let run = block_on(store.create_run(CreateRun {
                experiment_id: exp,
                start_time: 1,
                ..Default::default()
            }))
            .unwrap();
            let id = run.info.run_id;
            block_on(store.log_batch(
                &id,
                vec![Metric::new("m", 1.5, 10, 0), Metric::new("m", 2.5, 11, 1)],
                vec![Param {
                    key: "p".into(),
                    value: "v".into(),
                }],
                vec![RunTag::new("t", "x")],
            ))
            .unwrap();
            id
        };
        // A crash in the middle of an append leaves a line without its newline.
        let log = dir.path().join(LOG_FILE);
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"{\"event\":\"run_stage\",\"id\":\"").unwrap();
        drop(f);

        let store = open(dir.path());
        let run = block_on(store.get_run(&run_id)).unwrap();
        assert_eq!(run.info.lifecycle_stage, LifecycleStage::Active);
        assert_eq!(run.metric("m").unwrap().value, 2.5);
        assert_eq!(run.param("p"), Some("v"));
        assert_eq!(run.tag("t"), Some("x"));
        let history = block_on(store.get_metric_history(&run_id, "m", 10, None)).unwrap();
        assert_eq!(history.items.len(), 2);
        // The torn line is gone, so the next write starts on a line of its own.
        block_on(store.delete_run(&run_id)).unwrap();
        let store = open(dir.path());
        let run = block_on(store.get_run(&run_id)).unwrap();
        assert_eq!(run.info.lifecycle_stage, LifecycleStage::Deleted);
    }

    #[test]
    fn a_refused_write_appends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let before = std::fs::metadata(store.log_path()).unwrap().len();
        let err = block_on(store.create_experiment(CreateExperiment {
            name: "Default".into(),
            ..Default::default()
        }))
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::AlreadyExists);
        assert_eq!(std::fs::metadata(store.log_path()).unwrap().len(), before);
    }
}
