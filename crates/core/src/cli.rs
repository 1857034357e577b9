//! The `cairn` command line: its arguments (clap derive) and what each command does.
//!
//! Commands write their report to the writer they are given and return core's [`Error`];
//! `main` prints errors as `error: <message>` with their causes and exits with
//! [`Error::exit_code`] (2 for configuration errors, 1 otherwise; clap's own usage errors
//! also exit with 2).

use crate::assembly::{Assembly, Step};
use crate::builtins;
use crate::config::{Loader, Overrides};
use crate::error::{Error, Result};
use crate::registry::Registry;
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Cairn: an MLflow-compatible ML lifecycle platform, built as a plugin host.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, propagate_version = true)]
pub struct Cli {
    /// Read this configuration file instead of ./cairn.toml (it must exist).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect the plugins this binary can use.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Pre-flight check: build everything `cairn server` would build, without serving.
    Check(CheckArgs),
    /// Run the MLflow-compatible tracking server (accepts `mlflow server`'s options).
    #[command(disable_help_flag = true)]
    Server(ServerArgs),
    /// Run the tracking server with its web UI, as `mlflow ui` (the same server and options
    /// as `cairn server`, with its local defaults: 127.0.0.1:5000).
    #[command(disable_help_flag = true)]
    Ui(ServerArgs),
    /// List, download and upload artifacts by URI (runs:/, mlflow-artifacts:/, s3://, paths);
    /// honours MLFLOW_TRACKING_URI.
    #[command(subcommand)]
    Artifacts(crate::artifacts_cli::ArtifactsCommand),
    /// Run an MLflow project (a directory with an MLproject file), as `mlflow run` does;
    /// honours MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME and MLFLOW_EXPERIMENT_ID.
    // `-v/--version` is the project version, as in `mlflow run`.
    #[command(disable_version_flag = true)]
    Run(crate::projects::cli::RunArgs),
    /// Wait for, print the output of, or cancel a run submitted by `cairn run`.
    #[command(subcommand)]
    Runs(crate::projects::cli::RunsCommand),
    /// Serve MLflow models or predict with them (accepts `mlflow models serve|predict`'s options).
    #[command(subcommand)]
    Models(crate::models::ModelsCommand),
    /// Copy an MLflow deployment's tracking and registry database (MLflow's SQL schema,
    /// SQLite or PostgreSQL) into the configured stores, keeping every id and timestamp;
    /// re-running continues an interrupted import or does nothing.
    Import(crate::import::ImportArgs),
}

/// `cairn server`: MLflow's `mlflow server` options, each the top configuration layer for its
/// key. `-h` is `--host`, as in MLflow; help is `--help`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    /// The store options, as `mlflow server` spells them.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Serve the mlflow-artifacts proxy (store.serve_artifacts = true; the default).
    #[arg(long, conflicts_with = "no_serve_artifacts")]
    pub serve_artifacts: bool,
    /// Do not serve the mlflow-artifacts proxy (store.serve_artifacts = false).
    #[arg(long)]
    pub no_serve_artifacts: bool,
    /// Address to bind (server.host); default 127.0.0.1.
    #[arg(long, short = 'h', value_name = "HOST")]
    pub host: Option<String>,
    /// Port to bind (server.port); default 5000.
    #[arg(long, short = 'p', value_name = "PORT")]
    pub port: Option<u16>,
    /// Comma-separated Host-header allowlist (server.allowed_hosts); `*` allows every host.
    #[arg(long, value_name = "HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Option<Vec<String>>,
    /// Comma-separated origins allowed to make cross-origin API requests besides local ones
    /// (server.cors_allowed_origins); `*` allows every origin.
    #[arg(long, value_name = "ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Option<Vec<String>>,
    /// Prefix for every route, e.g. /mlflow (server.static_prefix).
    #[arg(long, value_name = "PREFIX")]
    pub static_prefix: Option<String>,
    /// The app to serve in front of the API: `basic-auth` (MLflow's HTTP Basic authentication
    /// and permissions; auth.enabled = true).
    #[arg(long, value_name = "NAME", value_parser = ["basic-auth"])]
    pub app_name: Option<String>,
    /// Accepted for compatibility and ignored: Cairn is one multi-threaded process.
    #[arg(long, short = 'w', value_name = "N")]
    pub workers: Option<String>,
    /// Accepted for compatibility and ignored: Cairn does not run gunicorn.
    #[arg(long, value_name = "OPTS", allow_hyphen_values = true)]
    pub gunicorn_opts: Option<String>,
    /// Accepted for compatibility and ignored: Cairn does not run uvicorn.
    #[arg(long, value_name = "OPTS", allow_hyphen_values = true)]
    pub uvicorn_opts: Option<String>,
    /// Accepted for compatibility and ignored: Cairn does not run waitress.
    #[arg(long, value_name = "OPTS", allow_hyphen_values = true)]
    pub waitress_opts: Option<String>,
    /// Accepted for compatibility and ignored (MLflow's auto-reload); use RUST_LOG=debug for
    /// verbose logs.
    #[arg(long)]
    pub dev: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

impl ServerArgs {
    /// Adds the flags that were given to `overrides`.
    pub fn apply(&self, overrides: &mut Overrides) {
        self.store.apply(overrides);
        if self.serve_artifacts {
            overrides.set("store.serve_artifacts", "--serve-artifacts", true);
        }
        if self.no_serve_artifacts {
            overrides.set("store.serve_artifacts", "--no-serve-artifacts", false);
        }
        if let Some(host) = &self.host {
            overrides.set("server.host", "--host", host.as_str());
        }
        if let Some(port) = self.port {
            overrides.set("server.port", "--port", port);
        }
        if let Some(hosts) = &self.allowed_hosts {
            let hosts: Vec<String> = hosts.iter().map(|h| h.trim().to_owned()).collect();
            overrides.set("server.allowed_hosts", "--allowed-hosts", hosts);
        }
        if let Some(origins) = &self.cors_allowed_origins {
            let origins: Vec<String> = origins.iter().map(|o| o.trim().to_owned()).collect();
            overrides.set(
                "server.cors_allowed_origins",
                "--cors-allowed-origins",
                origins,
            );
        }
        if let Some(prefix) = &self.static_prefix {
            overrides.set("server.static_prefix", "--static-prefix", prefix.as_str());
        }
        if self.app_name.is_some() {
            overrides.set("auth.enabled", "--app-name", true);
        }
    }

    /// One note per given option that does not apply to Cairn.
    pub fn ignored_options(&self) -> Vec<String> {
        let http = "Cairn has its own HTTP server";
        ignored_notes(&[
            (self.workers.is_some(), "--workers", ONE_PROCESS),
            (self.gunicorn_opts.is_some(), "--gunicorn-opts", http),
            (self.uvicorn_opts.is_some(), "--uvicorn-opts", http),
            (self.waitress_opts.is_some(), "--waitress-opts", http),
            (
                self.dev,
                "--dev",
                "there is no auto-reload; set RUST_LOG=debug for verbose logs",
            ),
        ])
    }
}

/// Why `--workers` does not apply (`cairn server`, `cairn models serve`).
pub(crate) const ONE_PROCESS: &str = "Cairn serves every request from one multi-threaded process";

/// One note per option that was given and does not apply to Cairn: `(given, flag, why)`.
pub(crate) fn ignored_notes(options: &[(bool, &str, &str)]) -> Vec<String> {
    options
        .iter()
        .filter(|(given, ..)| *given)
        .map(|(_, flag, why)| format!("{flag} does not apply to Cairn and is ignored: {why}"))
        .collect()
}

/// The multi-threaded tokio runtime a command runs on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

/// `cairn plugins ...`.
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List every plugin: kind, scheme or name, package, version and origin (built-in, or the
    /// file of a dynamic plugin named by `[[plugins]]` or CAIRN_PLUGINS_PATH).
    List,
    /// Load a plugin library and describe it, without building or starting anything; with
    /// --conformance, also run the conformance suites against its plugins.
    Check {
        /// The shared library (e.g. target/release/libcairn_example_jsonl.so).
        file: PathBuf,
        /// Build each tracking store, artifact repository and registry store of the library
        /// and run its kind's conformance suite through the ABI, one line per case (passed,
        /// FAILED, skipped); exit 1 if a case failed.
        #[arg(long)]
        conformance: bool,
        /// With --conformance: the URI to build the plugin of this URI's scheme from
        /// (repeatable; default SCHEME://TMP, TMP a fresh temporary directory). Artifact cases each
        /// get a fresh root below it.
        #[arg(long, value_name = "URI", requires = "conformance")]
        uri: Vec<String>,
        /// With --conformance: run only the cases whose names contain this text (repeatable).
        #[arg(long, value_name = "TEXT", requires = "conformance")]
        case: Vec<String>,
    },
}

/// `cairn config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration as TOML, secrets redacted.
    Show(StoreArgs),
}

/// `cairn check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The store options, as `mlflow server` spells them.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// MLflow's store options (`mlflow server --backend-store-uri ...`), the top configuration
/// layer. Shared by every command that opens stores.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// Tracking store URI (store.backend_store_uri), e.g. sqlite:///cairn.db.
    #[arg(long, value_name = "URI")]
    pub backend_store_uri: Option<String>,
    /// Model-registry store URI (store.registry_store_uri); defaults to the backend store URI.
    #[arg(long, value_name = "URI")]
    pub registry_store_uri: Option<String>,
    /// Root for new experiments' artifacts (store.default_artifact_root).
    #[arg(long, value_name = "URI")]
    pub default_artifact_root: Option<String>,
    /// Storage behind the artifact proxy (store.artifacts_destination).
    #[arg(long, value_name = "URI")]
    pub artifacts_destination: Option<String>,
}

impl StoreArgs {
    /// Adds the flags that were given to `overrides`.
    pub fn apply(&self, overrides: &mut Overrides) {
        let flags = [
            (
                "store.backend_store_uri",
                "--backend-store-uri",
                &self.backend_store_uri,
            ),
            (
                "store.registry_store_uri",
                "--registry-store-uri",
                &self.registry_store_uri,
            ),
            (
                "store.default_artifact_root",
                "--default-artifact-root",
                &self.default_artifact_root,
            ),
            (
                "store.artifacts_destination",
                "--artifacts-destination",
                &self.artifacts_destination,
            ),
        ];
        for (key, flag, value) in flags {
            if let Some(value) = value {
                overrides.set(key, flag, value.as_str());
            }
        }
    }
}

/// Runs `cli` in the working directory `dir`, writing its report to `out`.
pub fn run(cli: &Cli, dir: &Path, out: &mut dyn Write) -> Result<()> {
    let load = |store: &StoreArgs| {
        let mut overrides = Overrides::default();
        store.apply(&mut overrides);
        let loaded = Loader::new(dir)
            .config_file(cli.config.clone())
            .overrides(overrides)
            .load()?;
        tracing::debug!(config = ?loaded.config(), file = ?loaded.file(), "configuration loaded");
        Ok::<_, Error>(loaded)
    };
    match &cli.command {
        Command::Plugins(PluginsCommand::List) => {
            let loaded = load(&StoreArgs::default())?;
            let registry = crate::loader::registry(&loaded)?;
            write_out(out, &plugins_table(&registry))
        }
        Command::Plugins(PluginsCommand::Check {
            file,
            conformance,
            uri,
            case,
        }) => {
            let path = dir.join(file);
            let description = crate::loader::describe(&path, "`cairn plugins check`")?;
            write_out(out, &describe_library(&path, &description))?;
            if *conformance {
                let loaded = load(&StoreArgs::default())?;
                let options = crate::conformance::Options {
                    library: &path,
                    uris: uri,
                    cases: case,
                };
                crate::conformance::run(&loaded, &options, out)?;
            }
            Ok(())
        }
        Command::Config(ConfigCommand::Show(store)) => {
            let loaded = load(store)?;
            write_out(out, &loaded.to_toml()?)
        }
        Command::Check(args) => {
            let loaded = load(&args.store)?;
            check(&Assembly::new(&loaded)?, out)
        }
        Command::Artifacts(command) => {
            let loaded = Loader::new(dir)
                .config_file(cli.config.clone())
                .overrides(command.overrides())
                .load()?;
            crate::artifacts_cli::run(command, &loaded, dir, out)
        }
        Command::Run(args) => {
            let loaded = Loader::new(dir)
                .config_file(cli.config.clone())
                .overrides(args.tracking.overrides())
                .load()?;
            crate::projects::cli::run(args, &loaded, dir, out)
        }
        Command::Runs(command) => {
            let loaded = Loader::new(dir)
                .config_file(cli.config.clone())
                .overrides(command.tracking().overrides())
                .load()?;
            crate::projects::cli::runs(command, &loaded, out)
        }
        Command::Models(command) => {
            let loaded = Loader::new(dir)
                .config_file(cli.config.clone())
                .overrides(command.overrides())
                .load()?;
            crate::models::run(command, &loaded, dir, out)
        }
        Command::Import(args) => {
            let loaded = load(&args.store)?;
            let assembly = Assembly::new(&loaded)?;
            crate::import::run(args, &assembly, out, &mut std::io::stderr())
        }
        Command::Server(args) | Command::Ui(args) => {
            for note in args.ignored_options() {
                tracing::warn!("{note}");
            }
            let mut overrides = Overrides::default();
            args.apply(&mut overrides);
            let loaded = Loader::new(dir)
                .config_file(cli.config.clone())
                .overrides(overrides)
                .load()?;
            tracing::debug!(config = ?loaded.config(), file = ?loaded.file(), "configuration loaded");
            let assembly = Assembly::new(&loaded)?;
            runtime()?.block_on(crate::server::run(&assembly, out))
        }
    }
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}

/// The `plugins check` report: the library, its versions, and one line per plugin it exports.
pub fn describe_library(
    path: &Path,
    description: &cairn_plugin_api::ffi::LibraryDescription,
) -> String {
    let mut text = format!(
        "ok: {} is a Cairn plugin library\n  package: {} {}\n  built against: \
         cairn-plugin-api {} (plugin ABI version {})\n  plugins:\n",
        path.display(),
        description.name,
        description.version,
        description.api_version,
        description.abi_version
    );
    for plugin in &description.plugins {
        let what = if plugin.kind.is_chosen_by_scheme() {
            "scheme"
        } else {
            "name"
        };
        text.push_str(&format!("    {} {what} '{}'\n", plugin.kind, plugin.name));
    }
    if description.plugins.is_empty() {
        text.push_str("    (none)\n");
    }
    // A library claiming a built-in's scheme or name cannot be loaded beside it.
    for plugin in &description.plugins {
        let clash = builtins::KNOWN
            .iter()
            .find(|k| k.kind == plugin.kind && k.name == plugin.name);
        if let Some(builtin) = clash {
            let state = if builtin.enabled {
                "linked into this binary: loading this library beside it is a start-up error \
                 (two plugins for one scheme); rename the library's plugin or build cairn \
                 without"
            } else {
                "compiled out of this binary, but part of a default build: rename the \
                 library's plugin, or keep building cairn without"
            };
            text.push_str(&format!(
                "warning: {} '{}' is also the built-in plugin of {}, {state} cargo feature `{}`\n",
                plugin.kind, plugin.name, builtin.package, builtin.feature
            ));
        }
    }
    text
}

/// The `plugins list` table: every registered plugin, then the known built-ins this binary
/// was compiled without.
pub fn plugins_table(registry: &Registry) -> String {
    let mut rows: Vec<[String; 5]> = vec![[
        "KIND".into(),
        "SCHEME/NAME".into(),
        "PACKAGE".into(),
        "VERSION".into(),
        "ORIGIN".into(),
    ]];
    rows.extend(registry.entries().map(|e| {
        [
            e.kind().to_string(),
            e.name.clone(),
            e.package.clone(),
            e.version.clone(),
            e.origin.to_string(),
        ]
    }));
    rows.extend(builtins::all_compiled_out().map(|k| {
        [
            k.kind.to_string(),
            k.name.to_owned(),
            k.package.to_owned(),
            "-".into(),
            format!("compiled out (cargo feature `{}`)", k.feature),
        ]
    }));
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `cairn check`: builds exactly what `cairn server` builds ([`Assembly::server`]) and reports
/// one line per step as it goes, so the lines before a failure still show what worked.
fn check(assembly: &Assembly<'_>, out: &mut dyn Write) -> Result<()> {
    let mut built = 0usize;
    let mut written = Ok(());
    let mut report = |step: Step<'_>| {
        let line = match step {
            Step::Built { entry, from } => {
                built += 1;
                format!(
                    "ok: {} '{}' ({} {}, {}) for {from}",
                    entry.kind(),
                    entry.name,
                    entry.package,
                    entry.version,
                    entry.origin
                )
            }
            Step::Info(text) => format!("ok: {text}"),
            Step::Note(text) => format!("note: {text}"),
        };
        if written.is_ok() {
            written = write_out(out, &format!("{line}\n"));
        }
    };
    let result = assembly.server(&mut report).map(drop);
    written?;
    result?;
    write_out(
        out,
        &format!(
            "check passed: {built} plugin{} built\n",
            if built == 1 { "" } else { "s" }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn store_flags_parse_into_overrides() {
        let cli = Cli::try_parse_from([
            "cairn",
            "check",
            "--backend-store-uri",
            "nosuch://x",
            "--config",
            "c.toml",
        ])
        .unwrap();
        assert_eq!(cli.config.as_deref(), Some(Path::new("c.toml")));
        let Command::Check(args) = &cli.command else {
            panic!("expected check: {cli:?}");
        };
        assert_eq!(args.store.backend_store_uri.as_deref(), Some("nosuch://x"));
        let mut overrides = Overrides::default();
        args.store.apply(&mut overrides);
        assert!(!overrides.is_empty());
        assert!(StoreArgs::default().backend_store_uri.is_none());
    }

    #[test]
    #[allow(clippy::result_large_err)] // `Jail`'s closure returns `figment::Error`.
    fn server_accepts_mlflow_server_flags() {
        let cli = Cli::try_parse_from([
            "cairn",
            "server",
            "-h",
            "0.0.0.0",
            "-p",
            "8080",
            "--backend-store-uri",
            "sqlite:///x.db",
            "--no-serve-artifacts",
            "--allowed-hosts",
            "a.example, b.example",
            "--cors-allowed-origins",
            "https://app.example, https://*.corp.test",
            "--static-prefix",
            "/mlflow",
            "-w",
            "4",
            "--gunicorn-opts",
            "--timeout 60",
            "--dev",
        ])
        .unwrap();
        let Command::Server(args) = &cli.command else {
            panic!("expected server: {cli:?}");
        };
        let notes = args.ignored_options();
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(
            notes[0].starts_with("--workers does not apply"),
            "{notes:?}"
        );
        let mut overrides = Overrides::default();
        args.apply(&mut overrides);
        figment::Jail::expect_with(|j| {
            j.clear_env();
            let loaded = Loader::new(j.directory())
                .overrides(overrides.clone())
                .load()
                .unwrap();
            let c = loaded.config();
            assert_eq!(c.server.host, "0.0.0.0");
            assert_eq!(c.server.port, 8080);
            assert_eq!(c.server.allowed_hosts, ["a.example", "b.example"]);
            assert_eq!(
                c.server.cors_allowed_origins,
                ["https://app.example", "https://*.corp.test"]
            );
            assert_eq!(c.server.static_prefix.as_deref(), Some("/mlflow"));
            assert!(!c.store.serve_artifacts);
            assert_eq!(c.store.backend_store_uri, "sqlite:///x.db");
            assert_eq!(
                loaded.source_of("server.port"),
                crate::config::ValueSource::Flag("--port".into())
            );
            Ok(())
        });
        // `cairn ui` takes the same options (it is `mlflow ui`: the same server).
        let cli =
            Cli::try_parse_from(["cairn", "ui", "-p", "5001", "--static-prefix", "/x"]).unwrap();
        let Command::Ui(args) = &cli.command else {
            panic!("expected ui: {cli:?}");
        };
        assert_eq!(args.port, Some(5001));
        assert_eq!(args.static_prefix.as_deref(), Some("/x"));
        // --app-name basic-auth turns the auth app on; no other app exists.
        let cli = Cli::try_parse_from(["cairn", "server", "--app-name", "basic-auth"]).unwrap();
        let Command::Server(args) = &cli.command else {
            panic!("expected server: {cli:?}");
        };
        let mut overrides = Overrides::default();
        args.apply(&mut overrides);
        figment::Jail::expect_with(|j| {
            j.clear_env();
            let loaded = Loader::new(j.directory())
                .overrides(overrides.clone())
                .load()
                .unwrap();
            assert!(loaded.config().auth.enabled);
            Ok(())
        });
        let e = Cli::try_parse_from(["cairn", "server", "--app-name", "other"]).unwrap_err();
        assert!(e.to_string().contains("basic-auth"), "{e}");
        // Help is --help, since -h is the host as in MLflow.
        let e = Cli::try_parse_from(["cairn", "server", "--help"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(
            Cli::try_parse_from([
                "cairn",
                "server",
                "--serve-artifacts",
                "--no-serve-artifacts"
            ])
            .is_err()
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // `Jail`'s closure returns `figment::Error`.
    fn bad_static_prefix_is_a_config_error_naming_the_flag() {
        figment::Jail::expect_with(|j| {
            j.clear_env();
            let mut overrides = Overrides::default();
            overrides.set("server.static_prefix", "--static-prefix", "mlflow/");
            let err = Loader::new(j.directory())
                .overrides(overrides)
                .load()
                .unwrap_err();
            let text = err.to_string();
            assert!(text.contains("`server.static_prefix`"), "{text}");
            assert!(text.contains("--static-prefix"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn plugins_table_aligns_columns() {
        let table = plugins_table(&Registry::default());
        let header = table.lines().next().unwrap();
        assert!(header.starts_with("KIND"), "{table}");
        assert!(header.contains("SCHEME/NAME"), "{table}");
        assert!(header.ends_with("ORIGIN"), "{table}");
        // One line per compiled-out built-in, none for an empty registry otherwise.
        assert_eq!(
            table.lines().count(),
            1 + builtins::all_compiled_out().count()
        );
    }
}
