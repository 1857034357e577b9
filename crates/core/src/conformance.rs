//! `cairn plugins check --conformance <library>`: the conformance suites of
//! [`cairn_plugin_api::testkit`] run against the plugins of a built shared library, through the
//! same loader and ABI `cairn server` uses — how a vendor proves the library it ships.
//!
//! Every plugin of a kind with a suite (tracking store, artifact repository, model-registry
//! store) is built from a URI of its scheme: the `--uri` given for that scheme, else
//! `<scheme>://<a fresh temporary directory>/<kind>`; a project backend is built by its name
//! and runs the backend cases' `sh` commands in a fresh project directory on this machine. Tracking and registry cases use fresh
//! names, so one store serves every case; each artifact case gets a fresh, empty root below
//! the URI (`<uri>/<case>-<random>`), as the suite requires. A plugin's settings come from
//! `[settings.<name>]` of the configuration, as in `cairn server`.

use crate::assembly::Contexts;
use crate::config::LoadedConfig;
use crate::error::{Error, Result};
use crate::registry::{Registry, scheme_of};
use cairn_plugin_api::projects::{ProjectEnvironment, ProjectRun, ProjectSource};
use cairn_plugin_api::testkit::run::{self, CaseFuture, Outcome};
use cairn_plugin_api::testkit::support::random_hex;
use cairn_plugin_api::{BuildContext, PluginKind};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to run the suites against.
pub struct Options<'a> {
    /// The library's path.
    pub library: &'a Path,
    /// `--uri` values: the URI to build the plugin of each one's scheme from.
    pub uris: &'a [String],
    /// `--case` values: run only the cases whose names contain one of them (all if empty).
    pub cases: &'a [String],
}

/// The cases of `table` that `filters` select (every case if there are none).
fn pick<'t, F>(
    table: &'t [(&'static str, F)],
    filters: &'t [String],
) -> impl Iterator<Item = &'t (&'static str, F)> {
    table.iter().filter(move |(case, _)| {
        filters.is_empty() || filters.iter().any(|f| case.contains(f.as_str()))
    })
}

/// Cases of one run, by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases skipped for a capability the plugin does not claim.
    pub skipped: usize,
}

/// A temporary directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs every suite the library's plugins' kinds have, writing one line per case to `out`;
/// an error if a case failed (or a plugin could not be built).
pub fn run(loaded: &LoadedConfig, options: &Options<'_>, out: &mut dyn Write) -> Result<Tally> {
    let entries = crate::loader::load_entries(options.library, "`cairn plugins check`")?;
    // Only the library's plugins: a library may claim a built-in's scheme (the example SQLite
    // library does); what is tested is its plugin.
    let registry = Registry::new(entries)?;
    let targets: Vec<_> = registry
        .entries()
        .filter(|e| e.kind().is_chosen_by_scheme() || e.kind() == PluginKind::ProjectBackend)
        .map(|e| (e.kind(), e.name.clone()))
        .collect();
    for uri in options.uris {
        let scheme = scheme_of(uri);
        if !targets.iter().any(|(_, name)| *name == scheme) {
            return Err(Error::config(format!(
                "--uri {uri}: no plugin of {} serves scheme '{scheme}'",
                options.library.display()
            )));
        }
    }
    let runtime = crate::cli::runtime()?;
    let scratch =
        Scratch(std::env::temp_dir().join(format!("cairn-conformance-{}", random_hex(12))));
    std::fs::create_dir_all(&scratch.0).map_err(Error::Output)?;
    let mut say = |line: String| {
        out.write_all(line.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .map_err(Error::Output)
    };
    let mut tally = Tally::default();
    if targets.is_empty() {
        say("conformance: no plugin of this library has a conformance suite".into())?;
    }
    for (kind, scheme) in &targets {
        let backend = *kind == PluginKind::ProjectBackend;
        let uri = match options.uris.iter().find(|u| scheme_of(u) == *scheme) {
            Some(uri) if !backend => uri.clone(),
            // A backend runs its cases' commands in a fresh project directory.
            _ if backend => {
                let dir = scratch.0.join(format!("{scheme}-{kind}"));
                std::fs::create_dir_all(&dir).map_err(Error::Output)?;
                dir.display().to_string()
            }
            _ => format!(
                "{scheme}://{}",
                scratch.0.join(format!("{scheme}-{kind}")).display()
            ),
        };
        let ctx = BuildContext {
            default_artifact_root: Some(scratch.0.join("artifacts").display().to_string()),
            ..Contexts::of(loaded).for_plugin(scheme, (!backend).then_some(uri.as_str()))
        };
        say(format!("conformance: {kind} '{scheme}' at {uri}"))?;
        let drive = |fut: CaseFuture<'_>| runtime.block_on(run::run_case(fut));
        let mut record = |case: &str, outcome: Outcome| {
            match &outcome {
                Outcome::Passed => tally.passed += 1,
                Outcome::Failed(_) => tally.failed += 1,
                Outcome::Skipped(_) => tally.skipped += 1,
            }
            say(format!("  {case} ... {outcome}"))
        };
        // A plugin that cannot be built fails a `build` line (an artifact case, that case),
        // and the run goes on.
        let failed = |e: Error| Outcome::Failed(with_causes(&e));
        match kind {
            PluginKind::TrackingStore => match registry.tracking_store(&uri, ctx) {
                Ok(store) => {
                    for (case, start) in pick(run::TRACKING, options.cases) {
                        record(case, drive(start(&*store)))?;
                    }
                }
                Err(e) => record("build", failed(e))?,
            },
            PluginKind::ModelRegistryStore => match registry.model_registry_store(&uri, ctx) {
                Ok(store) => {
                    for (case, start) in pick(run::REGISTRY, options.cases) {
                        record(case, drive(start(&*store)))?;
                    }
                }
                Err(e) => record("build", failed(e))?,
            },
            PluginKind::ArtifactRepository => {
                for (case, start) in pick(run::ARTIFACTS, options.cases) {
                    let fresh = format!("{case}-{}", random_hex(8));
                    let root = cairn_plugin_api::paths::append_uri_path(&uri, &[&fresh]);
                    match registry.artifact_repository(&root, ctx.clone()) {
                        Ok(repo) => record(case, drive(start(&*repo)))?,
                        Err(e) => record(case, failed(e))?,
                    }
                }
            }
            PluginKind::ProjectBackend => match registry.project_backend(scheme, ctx) {
                Ok(backend) => {
                    let fixture = (backend, backend_template(&uri));
                    for (case, start) in pick(run::BACKEND, options.cases) {
                        record(case, drive(start(&fixture)))?;
                    }
                }
                Err(e) => record("build", failed(e))?,
            },
            _ => {}
        }
    }
    let Tally {
        passed,
        failed,
        skipped,
    } = tally;
    say(format!(
        "conformance: {} cases: {passed} passed, {failed} failed, {skipped} skipped",
        passed + failed + skipped
    ))?;
    if failed > 0 {
        return Err(Error::ConformanceFailed {
            path: options.library.to_owned(),
            failed,
        });
    }
    Ok(tally)
}

/// The run the backend cases start from: the project in `dir`, this machine's environment
/// (the cases set the run id, the command and the variables).
fn backend_template(dir: &str) -> ProjectRun {
    ProjectRun {
        run_id: String::new(),
        experiment_id: "0".into(),
        source: ProjectSource::Local { path: dir.into() },
        entry_point: "main".into(),
        command: Vec::new(),
        parameters: Default::default(),
        environment: ProjectEnvironment::Local,
        env: Default::default(),
        backend_config: serde_json::Value::Null,
    }
}

/// `e` and its causes, `: `-separated (a factory's panic message is a cause).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
