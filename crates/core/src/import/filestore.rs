//! Reading MLflow's FileStore: the `mlruns/` directory tree that `mlflow` writes for a
//! `file:` tracking URI or `mlflow server --backend-store-uri ./mlruns` (MLflow 3.18's
//! `mlflow/store/tracking/file_store.py` and `mlflow/store/model_registry/file_store.py`;
//! api.md Appendix A):
//!
//! ```text
//! <root>/<experiment_id>/meta.yaml, tags/<key>            experiments (ids: any integer)
//! <root>/.trash/<experiment_id>/...                       deleted experiments
//! <experiment>/<run_id>/meta.yaml, params/, tags/, metrics/<key> ("<ts> <value> <step>
//!     [<dataset_name> <dataset_digest>]" per line), inputs/<id>/meta.yaml, outputs/<id>/meta.yaml
//! <experiment>/datasets/<dataset_id>/meta.yaml            the datasets inputs point at
//! <experiment>/models/<model_id>/meta.yaml, tags/, params/, metrics/   LoggedModels
//! <root>/models/<name>/meta.yaml, tags/, aliases/<alias>, version-<n>/meta.yaml, version-<n>/tags/
//! ```
//!
//! Keys of tags, params and metrics may hold `/` (subdirectories). Everything is read in a
//! fixed order (ids and keys sorted), one entity at a time; a run's metric history is read line
//! by line into chunks, so memory stays bounded by a chunk whatever the files' sizes. Traces
//! (`<experiment>/traces/`) are not imported, as from the SQL schema.

use super::{Dest, History, METRIC_CHUNK, Report};
use crate::error::{Error, Result};
use cairn_plugin_api::entities::*;
use cairn_plugin_api::import::ImportRun;
use cairn_plugin_api::model_registry::{
    ModelVersion, ModelVersionStatus, RegisteredModel, RegisteredModelAlias, RegistryTag, Stage,
};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use yaml_serde::{Mapping, Value};

/// Folders of an experiment directory that are not runs.
const RESERVED: &[&str] = &["tags", "datasets", "traces", "models"];

fn failed(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Import(format!(
        "reading MLflow's FileStore failed at {}: {e}",
        path.display()
    ))
}

/// The FileStore directory `from` names, if it names one: `file:///abs/path`, `file:rel`, or a
/// plain path to a directory (as MLflow reads a tracking URI without a scheme). `None` for
/// database URIs. A `file:` URI whose directory is missing or is not an MLflow FileStore is
/// an error naming it.
pub(crate) fn root(from: &str) -> Result<Option<PathBuf>> {
    let path = if let Some(rest) = from.strip_prefix("file://") {
        // file:///abs (an empty authority) or file://localhost/abs.
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        PathBuf::from(percent_decode(rest))
    } else if let Some(rest) = from.strip_prefix("file:") {
        PathBuf::from(percent_decode(rest))
    } else if from.contains("://") || from.starts_with("sqlite:") {
        return Ok(None);
    } else if Path::new(from).is_dir() {
        PathBuf::from(from)
    } else {
        return Ok(None);
    };
    if !path.is_dir() {
        return Err(Error::Import(format!(
            "--from '{from}': the MLflow FileStore directory '{}' does not exist",
            path.display()
        )));
    }
    let looks_like_mlruns = path.join("0").join("meta.yaml").is_file()
        || path.join(".trash").is_dir()
        || !experiment_dirs(&path)?.is_empty();
    if !looks_like_mlruns {
        return Err(Error::Import(format!(
            "--from '{from}': '{}' is not an MLflow FileStore (no <experiment_id>/meta.yaml and \
             no .trash directory in it)",
            path.display()
        )));
    }
    Ok(Some(path))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The entries of `dir`; none when it does not exist.
fn dir_entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.map_err(|e| failed(dir, e))).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(failed(dir, e)),
    }
}

/// `<dir>/<digits>/meta.yaml` directories, unsorted.
fn experiment_dirs(dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in dir_entries(dir)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let path = entry.path();
        if path.join("meta.yaml").is_file()
            && let Ok(id) = name.parse::<i64>()
        {
            out.push((id, path));
        }
    }
    Ok(out)
}

/// Sorted subdirectory names of `dir` (none when it does not exist).
fn subdirs(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in dir_entries(dir)? {
        if entry.file_type().map_err(|e| failed(dir, e))?.is_dir() {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Every file under `dir` as (key, path), the key its relative path with `/` (keys may hold
/// `/`), sorted by key; none when `dir` does not exist.
fn keyed_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut todo = vec![(String::new(), dir.to_path_buf())];
    while let Some((prefix, d)) = todo.pop() {
        for entry in dir_entries(&d)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if entry.file_type().map_err(|e| failed(&d, e))?.is_dir() {
                todo.push((key, entry.path()));
            } else {
                out.push((key, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// (key, file content) of every file under `dir`: tags, params, aliases.
fn key_values(dir: &Path) -> Result<Vec<(String, String)>> {
    keyed_files(dir)?
        .into_iter()
        .map(|(k, p)| {
            let bytes = std::fs::read(&p).map_err(|e| failed(&p, e))?;
            Ok((k, String::from_utf8_lossy(&bytes).into_owned()))
        })
        .collect()
}

fn meta(dir: &Path) -> Result<Mapping> {
    let path = dir.join("meta.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| failed(&path, e))?;
    match yaml_serde::from_str::<Value>(&text).map_err(|e| failed(&path, e))? {
        Value::Mapping(m) => Ok(m),
        _ => Err(failed(&path, "not a YAML mapping")),
    }
}

/// A scalar of `m` as text (strings verbatim, numbers and booleans printed); `None` when
/// missing or null.
fn text(m: &Mapping, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn int(m: &Mapping, key: &str) -> Option<i64> {
    match m.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn stage_of(m: &Mapping) -> LifecycleStage {
    if text(m, "lifecycle_stage").as_deref() == Some("deleted") {
        LifecycleStage::Deleted
    } else {
        LifecycleStage::Active
    }
}

/// Copies everything under `root` into `dest`, counting into `report`.
pub(crate) fn copy_all(root: &Path, dest: &mut Dest<'_>, report: &mut Report) -> Result<()> {
    let mut experiments = experiment_dirs(root)?;
    experiments.extend(experiment_dirs(&root.join(".trash"))?);
    experiments.sort();
    for (id, dir) in &experiments {
        experiment(*id, dir, dest, report)?;
    }
    dest.progress(&format!(
        "experiments: {} written, {} already present",
        report.experiments.written, report.experiments.present
    ));
    for (_, dir) in &experiments {
        for model_id in subdirs(&dir.join("models"))? {
            logged_model(&dir.join("models").join(&model_id), dest, report)?;
        }
    }
    dest.progress(&format!(
        "logged models: {} written, {} already present",
        report.logged_models.written, report.logged_models.present
    ));
    let mut done = 0u64;
    for (_, dir) in &experiments {
        for name in subdirs(dir)? {
            if RESERVED.contains(&name.as_str()) || !dir.join(&name).join("meta.yaml").is_file() {
                continue;
            }
            run(dir, &name, dest, report)?;
            done += 1;
            if done.is_multiple_of(100) {
                dest.progress(&format!("runs: {done}"));
            }
        }
    }
    dest.progress(&format!(
        "runs: {} written, {} already present",
        report.runs.written, report.runs.present
    ));
    if dest.registry.is_some() {
        let models = root.join("models");
        for name in subdirs(&models)? {
            if models.join(&name).join("meta.yaml").is_file() {
                registered_model(&models.join(&name), dest, report)?;
            }
        }
        dest.progress(&format!(
            "registered models: {} written, {} already present; model versions: {} written, \
             {} already present",
            report.registered_models.written,
            report.registered_models.present,
            report.model_versions.written,
            report.model_versions.present
        ));
    }
    Ok(())
}

fn experiment(id: i64, dir: &Path, dest: &mut Dest<'_>, report: &mut Report) -> Result<()> {
    let m = meta(dir)?;
    let tags = key_values(&dir.join("tags"))?
        .into_iter()
        .map(|(k, v)| ExperimentTag::new(k, v))
        .collect();
    let exp = Experiment {
        experiment_id: id.to_string(),
        name: text(&m, "name").unwrap_or_default(),
        artifact_location: text(&m, "artifact_location").unwrap_or_default(),
        lifecycle_stage: stage_of(&m),
        creation_time: int(&m, "creation_time"),
        last_update_time: int(&m, "last_update_time"),
        tags,
    };
    report.experiments.add(dest.experiment(exp)?);
    Ok(())
}

fn logged_model(dir: &Path, dest: &mut Dest<'_>, report: &mut Report) -> Result<()> {
    let m = meta(dir)?;
    let model_id = text(&m, "model_id").unwrap_or_else(|| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let tags = key_values(&dir.join("tags"))?
        .into_iter()
        .map(|(key, value)| LoggedModelTag { key, value })
        .collect();
    let params = key_values(&dir.join("params"))?
        .into_iter()
        .map(|(key, value)| LoggedModelParameter { key, value })
        .collect();
    // "<ts> <value> <step> <run_id> [<dataset_name> <dataset_digest>]" per line.
    let mut metrics = Vec::new();
    for (key, path) in keyed_files(&dir.join("metrics"))? {
        let file = std::fs::File::open(&path).map_err(|e| failed(&path, e))?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| failed(&path, e))?;
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.is_empty() {
                continue;
            }
            if f.len() != 4 && f.len() != 6 {
                return Err(failed(
                    &path,
                    format!("a LoggedModel metric line has {} fields: '{line}'", f.len()),
                ));
            }
            let mut metric = Metric::new(
                key.clone(),
                number(f[1], &path)?,
                integer(f[0], &path)?,
                integer(f[2], &path)?,
            );
            metric.run_id = Some(f[3].to_string());
            if f.len() == 6 {
                metric.dataset_name = Some(f[4].to_string());
                metric.dataset_digest = Some(f[5].to_string());
            }
            metric.model_id = Some(model_id.clone());
            metrics.push(metric);
        }
    }
    let status = int(&m, "status")
        .and_then(LoggedModelStatus::from_number)
        .unwrap_or(LoggedModelStatus::Unspecified);
    let model = LoggedModel {
        info: LoggedModelInfo {
            model_id,
            experiment_id: text(&m, "experiment_id").unwrap_or_default(),
            name: text(&m, "name").unwrap_or_default(),
            creation_timestamp_ms: int(&m, "creation_timestamp").unwrap_or(0),
            last_updated_timestamp_ms: int(&m, "last_updated_timestamp").unwrap_or(0),
            artifact_uri: text(&m, "artifact_location").unwrap_or_default(),
            status,
            creator_id: None,
            model_type: text(&m, "model_type"),
            source_run_id: text(&m, "source_run_id"),
            status_message: text(&m, "status_message"),
            tags,
            registrations: Vec::new(),
        },
        data: LoggedModelData { params, metrics },
    };
    report
        .logged_models
        .add(dest.logged_model(model, stage_of(&m))?);
    Ok(())
}

fn number(s: &str, path: &Path) -> Result<f64> {
    s.parse::<f64>()
        .map_err(|_| failed(path, format!("'{s}' is not a metric value")))
}

fn integer(s: &str, path: &Path) -> Result<i64> {
    s.parse::<i64>()
        .map_err(|_| failed(path, format!("'{s}' is not an integer")))
}

fn run(exp_dir: &Path, name: &str, dest: &mut Dest<'_>, report: &mut Report) -> Result<()> {
    let dir = exp_dir.join(name);
    let m = meta(&dir)?;
    let run_id = text(&m, "run_id")
        .or_else(|| text(&m, "run_uuid"))
        .unwrap_or_else(|| name.to_string());
    if run_id != name {
        return Err(failed(
            &dir,
            format!("meta.yaml names run '{run_id}', the directory is '{name}'"),
        ));
    }
    let status = int(&m, "status")
        .and_then(RunStatus::from_number)
        .unwrap_or(RunStatus::Running);
    let mut run = ImportRun::new(RunInfo {
        run_id: run_id.clone(),
        run_name: text(&m, "run_name").unwrap_or_default(),
        experiment_id: text(&m, "experiment_id").unwrap_or_default(),
        user_id: text(&m, "user_id").unwrap_or_default(),
        status,
        start_time: int(&m, "start_time").unwrap_or(0),
        end_time: int(&m, "end_time"),
        artifact_uri: text(&m, "artifact_uri").unwrap_or_default(),
        lifecycle_stage: stage_of(&m),
    });
    run.deleted_time = int(&m, "deleted_time");
    run.params = key_values(&dir.join("params"))?
        .into_iter()
        .map(|(k, v)| Param::new(k, v))
        .collect();
    run.tags = key_values(&dir.join("tags"))?
        .into_iter()
        .map(|(k, v)| RunTag::new(k, v))
        .collect();
    if run.info.run_name.is_empty()
        && let Some(tag) = run.tags.iter().find(|t| t.key == "mlflow.runName")
    {
        run.info.run_name = tag.value.clone();
    }
    // Inputs: a dataset (in the experiment's datasets/) or a LoggedModel, each in a directory of
    // its own; outputs: a LoggedModel and a step.
    for input in subdirs(&dir.join("inputs"))? {
        let im = meta(&dir.join("inputs").join(&input))?;
        let source = text(&im, "source_id").unwrap_or_default();
        match text(&im, "source_type").as_deref() {
            Some("DATASET") => {
                let dm = meta(&exp_dir.join("datasets").join(&source))?;
                let tags = match im.get("tags") {
                    Some(Value::Mapping(t)) => t
                        .iter()
                        .filter_map(|(k, v)| {
                            Some(InputTag {
                                key: k.as_str()?.to_string(),
                                value: match v {
                                    Value::String(s) => s.clone(),
                                    Value::Number(n) => n.to_string(),
                                    Value::Bool(b) => b.to_string(),
                                    _ => String::new(),
                                },
                            })
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                run.inputs.dataset_inputs.push(DatasetInput {
                    tags,
                    dataset: Dataset {
                        name: text(&dm, "name").unwrap_or_default(),
                        digest: text(&dm, "digest").unwrap_or_default(),
                        source_type: text(&dm, "source_type").unwrap_or_default(),
                        source: text(&dm, "source").unwrap_or_default(),
                        schema: text(&dm, "schema"),
                        profile: text(&dm, "profile"),
                    },
                });
            }
            Some("MODEL") => run
                .inputs
                .model_inputs
                .push(ModelInput { model_id: source }),
            _ => {}
        }
    }
    run.inputs
        .model_inputs
        .sort_by(|a, b| a.model_id.cmp(&b.model_id));
    for output in subdirs(&dir.join("outputs"))? {
        let om = meta(&dir.join("outputs").join(&output))?;
        if text(&om, "destination_type").as_deref() == Some("MODEL_OUTPUT") {
            run.outputs.model_outputs.push(ModelOutput {
                // MLflow writes the model id into both ids (and names the directory after it).
                model_id: text(&om, "destination_id").unwrap_or(output),
                step: int(&om, "step").unwrap_or(0),
            });
        }
    }
    let mut history = FileHistory {
        files: keyed_files(&dir.join("metrics"))?,
        next: 0,
        open: None,
    };
    let (outcome, values) = dest.run(run, &mut history)?;
    report.metric_values += values;
    report.runs.add(outcome);
    Ok(())
}

/// A run's `metrics/<key>` files, read line by line: "<ts> <value> <step>" (MLflow's legacy
/// "<ts> <value>" means step 0; "<ts> <value> <step> <dataset_name> <dataset_digest>" carries
/// the dataset).
struct FileHistory {
    files: Vec<(String, PathBuf)>,
    next: usize,
    open: Option<(
        String,
        PathBuf,
        std::io::Lines<std::io::BufReader<std::fs::File>>,
    )>,
}

impl FileHistory {
    fn parse(key: &str, path: &Path, line: &str) -> Result<Option<Metric>> {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            return Ok(None);
        }
        if !matches!(f.len(), 2 | 3 | 5) {
            return Err(failed(
                path,
                format!("a metric line has {} fields: '{line}'", f.len()),
            ));
        }
        let step = if f.len() >= 3 {
            integer(f[2], path)?
        } else {
            0
        };
        let mut metric = Metric::new(
            key.to_string(),
            number(f[1], path)?,
            integer(f[0], path)?,
            step,
        );
        if f.len() == 5 {
            metric.dataset_name = Some(f[3].to_string());
            metric.dataset_digest = Some(f[4].to_string());
        }
        Ok(Some(metric))
    }
}

impl History for FileHistory {
    fn next_chunk(&mut self) -> Result<Option<Vec<Metric>>> {
        let mut chunk = Vec::new();
        while chunk.len() < METRIC_CHUNK {
            if self.open.is_none() {
                let Some((key, path)) = self.files.get(self.next).cloned() else {
                    break;
                };
                self.next += 1;
                let file = std::fs::File::open(&path).map_err(|e| failed(&path, e))?;
                self.open = Some((key, path, std::io::BufReader::new(file).lines()));
            }
            let Some((key, path, lines)) = self.open.as_mut() else {
                break;
            };
            match lines.next() {
                Some(line) => {
                    let line = line.map_err(|e| failed(path, e))?;
                    if let Some(metric) = Self::parse(key, path, &line)? {
                        chunk.push(metric);
                    }
                }
                None => self.open = None,
            }
        }
        Ok(if chunk.is_empty() { None } else { Some(chunk) })
    }

    fn count(&mut self) -> Result<u64> {
        let mut n = 0u64;
        for (_, path) in &self.files {
            let file = std::fs::File::open(path).map_err(|e| failed(path, e))?;
            for line in std::io::BufReader::new(file).lines() {
                if !line.map_err(|e| failed(path, e))?.trim().is_empty() {
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}

fn registry_tags(dir: &Path) -> Result<Vec<RegistryTag>> {
    Ok(key_values(&dir.join("tags"))?
        .into_iter()
        .map(|(key, value)| RegistryTag { key, value })
        .collect())
}

fn registered_model(dir: &Path, dest: &mut Dest<'_>, report: &mut Report) -> Result<()> {
    let m = meta(dir)?;
    let name = text(&m, "name").unwrap_or_else(|| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    // Versions: every version-<n> directory; numbers of deleted ones stay allocated.
    let mut versions: Vec<(i64, PathBuf)> = subdirs(dir)?
        .into_iter()
        .filter_map(|d| {
            let n = d.strip_prefix("version-")?.parse::<i64>().ok()?;
            Some((n, dir.join(d)))
        })
        .filter(|(_, p)| p.join("meta.yaml").is_file())
        .collect();
    versions.sort();
    let max_version = versions.last().map_or(0, |(n, _)| *n);
    // The aliases/ files are what MLflow's FileStore reads (meta.yaml's copy may lag).
    let aliases = key_values(&dir.join("aliases"))?
        .into_iter()
        .map(|(alias, version)| RegisteredModelAlias {
            alias,
            version: version.trim().to_string(),
        })
        .collect();
    let created = int(&m, "creation_timestamp").unwrap_or(0);
    let model = RegisteredModel {
        name: name.clone(),
        creation_timestamp: created,
        last_updated_timestamp: int(&m, "last_updated_timestamp").or(Some(created)),
        user_id: None,
        description: text(&m, "description"),
        latest_versions: Vec::new(),
        tags: registry_tags(dir)?,
        aliases,
    };
    report
        .registered_models
        .add(dest.registered_model(model, max_version)?);
    for (number, vdir) in versions {
        let v = meta(&vdir)?;
        let stage_text = text(&v, "current_stage").unwrap_or_else(|| "None".into());
        if stage_text == "Deleted_Internal" {
            continue;
        }
        let created = int(&v, "creation_timestamp").unwrap_or(0);
        let version = ModelVersion {
            name: name.clone(),
            version: number.to_string(),
            creation_timestamp: created,
            last_updated_timestamp: int(&v, "last_updated_timestamp").unwrap_or(created),
            user_id: text(&v, "user_id"),
            current_stage: Stage::parse(&stage_text).unwrap_or(Stage::None),
            description: text(&v, "description"),
            source: text(&v, "source").unwrap_or_default(),
            run_id: text(&v, "run_id"),
            status: text(&v, "status")
                .and_then(|s| ModelVersionStatus::from_name(&s))
                .unwrap_or(ModelVersionStatus::Ready),
            status_message: text(&v, "status_message"),
            tags: registry_tags(&vdir)?,
            run_link: text(&v, "run_link"),
            aliases: Vec::new(),
            model_id: text(&v, "model_id"),
            model_params: Vec::new(),
            model_metrics: Vec::new(),
        };
        let mut import = cairn_plugin_api::import::ImportModelVersion::new(version);
        import.storage_location = text(&v, "storage_location");
        report.model_versions.add(dest.model_version(import)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_lines_of_every_shape() {
        let p = Path::new("m");
        let m = FileHistory::parse("k", p, "10 nan 0").unwrap().unwrap();
        assert!(m.value.is_nan() && m.timestamp == 10 && m.step == 0);
        let m = FileHistory::parse("k", p, "11 -inf 2").unwrap().unwrap();
        assert_eq!((m.value, m.step), (f64::NEG_INFINITY, 2));
        let m = FileHistory::parse("k", p, "12 0.5").unwrap().unwrap();
        assert_eq!((m.value, m.step), (0.5, 0));
        let m = FileHistory::parse("k", p, "500 0.91 4 eval-set d1")
            .unwrap()
            .unwrap();
        assert_eq!(m.dataset_name.as_deref(), Some("eval-set"));
        assert_eq!(m.dataset_digest.as_deref(), Some("d1"));
        assert!(FileHistory::parse("k", p, "").unwrap().is_none());
        assert!(FileHistory::parse("k", p, "1 2 3 4").is_err());
        assert!(FileHistory::parse("k", p, "x 2 3").is_err());
    }

    #[test]
    fn file_uris_and_paths() {
        assert_eq!(percent_decode("/a%20b/c"), "/a b/c");
        assert!(root("sqlite:///x.db").unwrap().is_none());
        assert!(root("postgresql://h/db").unwrap().is_none());
        let missing = root("file:///definitely/not/here").unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("file://{}", dir.path().display());
        let empty = root(&uri).unwrap_err();
        assert!(
            empty.to_string().contains("not an MLflow FileStore"),
            "{empty}"
        );
        std::fs::create_dir(dir.path().join("0")).unwrap();
        std::fs::write(dir.path().join("0/meta.yaml"), "name: Default\n").unwrap();
        assert_eq!(root(&uri).unwrap().unwrap(), dir.path());
        assert_eq!(
            root(dir.path().to_str().unwrap()).unwrap().unwrap(),
            dir.path()
        );
    }
}
