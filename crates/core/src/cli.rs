//! The `cairn` command line: its arguments (clap derive) and what each command does.
//!
//! Commands write their report to the writer they are given and return core's [`Error`];
//! `main` prints errors as `error: <message>` with their causes and exits with
//! [`Error::exit_code`] (2 for configuration errors, 1 otherwise; clap's own usage errors
//! also exit with 2).

use crate::builtins;
use crate::config::{LoadedConfig, Loader, MLFLOW_ARTIFACTS_ROOT, Overrides};
use crate::error::{Error, Result, kind_noun};
use crate::registry::{PluginEntry, Registry, scheme_of};
use crate::secrets::redact_uri;
use cairn_plugin_api::PluginKind;
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
    /// Pre-flight check: build every plugin the configuration names, without serving.
    Check(CheckArgs),
}

/// `cairn plugins ...`.
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List every plugin: kind, scheme or name, package, version and origin.
    List,
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
        // Dynamic plugins named in config will join this list; until then it needs no config.
        Command::Plugins(PluginsCommand::List) => {
            let registry = Registry::builtin()?;
            write_out(out, &plugins_table(&registry))
        }
        Command::Config(ConfigCommand::Show(store)) => {
            let loaded = load(store)?;
            write_out(out, &loaded.to_toml()?)
        }
        Command::Check(args) => {
            let loaded = load(&args.store)?;
            let registry = Registry::builtin()?;
            check(&loaded, &registry, out)
        }
    }
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::Output)
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

/// One store or repository that `check` builds: which key names it, and whether an absent
/// plugin is an error (the operator set the key) or only a note (the value is a default).
struct Target<'a> {
    kind: PluginKind,
    key: &'static str,
    uri: &'a str,
    explicit: bool,
}

/// `cairn check`: builds each plugin the configuration names and reports one line per plugin
/// as it goes, so the lines before a failure still show what worked.
fn check(loaded: &LoadedConfig, registry: &Registry, out: &mut dyn Write) -> Result<()> {
    loaded.check_settings_against(registry)?;
    let store = &loaded.config().store;
    let backend = store.backend_store_uri.as_str();
    let mut say = |line: String| write_out(out, &format!("{line}\n"));
    let mut built = 0usize;

    // The tracking store is always required.
    let from = loaded.describe("store.backend_store_uri", backend);
    let entry = registry
        .for_uri(PluginKind::TrackingStore, backend)
        .map_err(|e| e.requested_by(&from))?;
    let root = loaded.default_artifact_root();
    let mut ctx = loaded.build_context(&entry.name);
    ctx.default_artifact_root = Some(root.clone());
    registry
        .tracking_store(backend, ctx)
        .map_err(|e| e.requested_by(with_settings(loaded, &entry.name, &from)))?;
    say(ok_line(entry, &from))?;
    built += 1;

    let mut targets = vec![Target {
        kind: PluginKind::ModelRegistryStore,
        key: "store.registry_store_uri",
        uri: loaded.registry_store_uri(),
        explicit: store.registry_store_uri.is_some(),
    }];
    if scheme_of(&root) != scheme_of(MLFLOW_ARTIFACTS_ROOT) {
        targets.push(Target {
            kind: PluginKind::ArtifactRepository,
            key: "store.default_artifact_root",
            uri: &root,
            explicit: store.default_artifact_root.is_some(),
        });
    } else if store.serve_artifacts {
        say(format!(
            "ok: default artifact root {root} is served by this server's artifact proxy"
        ))?;
    } else {
        say(format!(
            "note: default artifact root {root} needs the artifact proxy, but \
             store.serve_artifacts is false: clients will not reach new experiments' artifacts"
        ))?;
    }
    let destination = loaded.artifacts_destination();
    if store.serve_artifacts {
        targets.push(Target {
            kind: PluginKind::ArtifactRepository,
            key: "store.artifacts_destination",
            uri: &destination,
            explicit: store.artifacts_destination.is_some(),
        });
    }

    for target in targets {
        let from = if target.explicit {
            loaded.describe(target.key, target.uri)
        } else if target.key == "store.registry_store_uri" {
            format!(
                "{} {} (defaulted from store.backend_store_uri)",
                target.key,
                redact_uri(target.uri)
            )
        } else {
            format!("the default {} {}", target.key, redact_uri(target.uri))
        };
        let entry = match registry.for_uri(target.kind, target.uri) {
            Ok(entry) => entry,
            Err(e) if target.explicit => return Err(e.requested_by(&from)),
            Err(e) => {
                say(format!(
                    "note: {}; `{}` is not set, so this is not an error, but the {} will be \
                     unavailable",
                    e.requested_by(&from),
                    target.key,
                    kind_noun(target.kind)
                ))?;
                continue;
            }
        };
        let mut ctx = loaded.build_context(&entry.name);
        let result = match target.kind {
            PluginKind::ModelRegistryStore => {
                ctx.tracking_uri = Some(backend.to_owned());
                registry.model_registry_store(target.uri, ctx).map(drop)
            }
            _ => registry.artifact_repository(target.uri, ctx).map(drop),
        };
        result.map_err(|e| e.requested_by(with_settings(loaded, &entry.name, &from)))?;
        say(ok_line(entry, &from))?;
        built += 1;
    }

    say(format!(
        "check passed: {built} plugin{} built",
        if built == 1 { "" } else { "s" }
    ))
}

fn ok_line(entry: &PluginEntry, from: &str) -> String {
    format!(
        "ok: {} '{}' ({} {}, {}) for {from}",
        entry.kind(),
        entry.name,
        entry.package,
        entry.version,
        entry.origin
    )
}

/// `from`, plus the plugin's `[settings.<name>]` table and its source when it has one, so a
/// factory's complaint about its settings points at the table.
fn with_settings(loaded: &LoadedConfig, name: &str, from: &str) -> String {
    if loaded.config().settings.0.contains_key(name) {
        let key = format!("settings.{name}");
        format!("{from}, with `{key}` ({})", loaded.source_of(&key))
    } else {
        from.to_owned()
    }
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
