//! Core's own error type: what can go wrong while reading the configuration, assembling the
//! plugin registry and building plugins.
//!
//! Plugin failures keep the plugin's [`cairn_plugin_api::Error`] as their source. Every message
//! names what the operator has to change: the config key and where its value came from, the
//! plugin and its origin, the schemes that are available.

use cairn_plugin_api::PluginKind;
use std::fmt;
use std::path::PathBuf;

/// Shorthand for results in `cairn-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything `cairn-core` reports before a request is served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file given with `--config` does not exist (a missing default `cairn.toml` is fine).
    #[error("config file {} does not exist (given with --config)", path.display())]
    ConfigFileMissing {
        /// The path as given.
        path: PathBuf,
    },

    /// One or more configuration values are invalid; each problem names its key and source.
    #[error("invalid configuration:{}", list_problems(problems))]
    Config {
        /// One message per problem, e.g. "unknown key `server.prot` in /etc/cairn.toml".
        problems: Vec<String>,
    },

    /// Two plugins claim the same `(kind, name)`.
    #[error(
        "two plugins claim the {kind} {what} '{name}': {first} and {second}",
        what = noun_for_name(*kind)
    )]
    DuplicatePlugin {
        /// The kind both plugins are.
        kind: PluginKind,
        /// The scheme or name both claim.
        name: String,
        /// The plugin registered first: package, version and origin.
        first: String,
        /// The plugin that collided with it.
        second: String,
    },

    /// No plugin of `kind` serves the URI's scheme.
    #[error(
        "no {kind} plugin serves scheme '{scheme}' (from {from}); available schemes: {}",
        list_or_none(available)
    )]
    UnknownScheme {
        /// The kind that was asked for.
        kind: PluginKind,
        /// The scheme taken from the URI.
        scheme: String,
        /// What asked: `URI <uri>`, or after [`Error::requested_by`] e.g.
        /// `--backend-store-uri <uri>` (passwords redacted).
        from: String,
        /// The schemes registered for `kind`, sorted.
        available: Vec<String>,
    },

    /// No plugin of `kind` has this name.
    #[error(
        "no {kind} plugin named '{name}'{}; available: {}",
        from.as_ref().map(|f| format!(" (from {f})")).unwrap_or_default(),
        list_or_none(available)
    )]
    UnknownName {
        /// The kind that was asked for.
        kind: PluginKind,
        /// The name asked for.
        name: String,
        /// What asked for it (a config key, a flag), if known.
        from: Option<String>,
        /// The names registered for `kind`, sorted.
        available: Vec<String>,
    },

    /// The plugin exists among Cairn's built-ins but this binary was compiled without it.
    #[error(
        "the `{name}` {noun} is compiled out of this binary (cargo feature `{feature}` of cairn-core){}",
        from.as_ref().map(|f| format!(", but {f} needs it")).unwrap_or_default(),
        noun = kind_noun(*kind)
    )]
    CompiledOut {
        /// The plugin's kind.
        kind: PluginKind,
        /// Its scheme or name.
        name: String,
        /// The cargo feature of `cairn-core` that links it.
        feature: &'static str,
        /// What asked for it, if known.
        from: Option<String>,
    },

    /// A plugin's factory refused to build (bad settings, unreachable database, ...).
    #[error(
        "{kind} plugin '{name}' ({plugin}) failed to start{}",
        from.as_ref().map(|f| format!(" for {f}")).unwrap_or_default()
    )]
    Build {
        /// The plugin's kind.
        kind: PluginKind,
        /// Its scheme or name.
        name: String,
        /// The package that provides it, its version and origin: `cairn-store-sqlite 0.1.0, built-in`.
        plugin: String,
        /// What it was built for, if known.
        from: Option<String>,
        /// The plugin's own error (boxed: it is large, and this variant is rare).
        #[source]
        source: Box<cairn_plugin_api::Error>,
    },

    /// A plugin library named in config (or `CAIRN_PLUGINS_PATH`, or on the command line)
    /// could not be loaded: missing, not a Cairn plugin, or built for another ABI or version.
    #[error("cannot load plugin library {} (named by {from}): {cause}", path.display())]
    PluginLoad {
        /// The library's path.
        path: PathBuf,
        /// Where it was named: `[[plugins]] in /etc/cairn.toml`, `CAIRN_PLUGINS_PATH`, ...
        from: String,
        /// Why, in one line (both versions for a mismatch).
        cause: String,
    },

    /// Writing a command's output failed (for example, a closed pipe).
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),

    /// `cairn server` could not listen on its address (in use, not local, no permission).
    #[error("cannot listen on {address} (server.host, server.port)")]
    Bind {
        /// `host:port` as configured.
        address: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// `cairn server` failed while serving.
    #[error("the server failed")]
    Serve(#[source] std::io::Error),

    /// A command could not start its async runtime.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),

    /// `cairn plugins check --conformance`: cases failed (each is listed in the report).
    #[error("{failed} conformance case(s) failed against {}", path.display())]
    ConformanceFailed {
        /// The library tested.
        path: PathBuf,
        /// How many cases failed.
        failed: usize,
    },

    /// `cairn import` failed: reading the MLflow database, or a store refused an entity.
    #[error("cairn import: {0}")]
    Import(String),

    /// `cairn artifacts ...` failed: resolving its URI, a listing or a transfer.
    #[error("{action} failed: {message}")]
    Artifacts {
        /// What was being done: `list`, `download`, `upload`.
        action: String,
        /// Why, in the words of the repository, the server or the file system.
        message: String,
    },

    /// `cairn run` or `cairn runs ...` failed: the project, its parameters, the backend, or
    /// the run itself (FAILED or KILLED).
    #[error("{0}")]
    Project(String),
    /// `cairn models ...` could not load its model: resolving or downloading its URI, reading
    /// `MLmodel`, or no flavor of this build serving it.
    #[error("cannot load the model {uri}: {message}")]
    Model {
        /// The model URI as given.
        uri: String,
        /// Why, in one line.
        message: String,
    },
}

impl Error {
    /// The process exit code for this error: 2 for configuration mistakes the operator must
    /// fix in `cairn.toml`, the environment or the flags; 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::ConfigFileMissing { .. } | Error::Config { .. } => 2,
            _ => 1,
        }
    }

    /// Says what asked for the plugin behind a lookup error, replacing the bare `URI <uri>`:
    /// e.g. `--backend-store-uri nosuch://x` or `CAIRN_STORE__BACKEND_STORE_URI=nosuch://x`
    /// (see [`crate::config::LoadedConfig::describe`]). Other errors are returned unchanged.
    pub fn requested_by(mut self, what: impl fmt::Display) -> Self {
        let what = what.to_string();
        match &mut self {
            Error::UnknownScheme { from, .. } => *from = what,
            Error::UnknownName { from, .. }
            | Error::CompiledOut { from, .. }
            | Error::Build { from, .. } => *from = Some(what),
            _ => {}
        }
        self
    }

    /// A configuration error with a single problem.
    pub fn config(problem: impl Into<String>) -> Self {
        Error::Config {
            problems: vec![problem.into()],
        }
    }
}

/// "tracking store", "artifact repository", ...: the kind as words for sentences.
pub fn kind_noun(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::TrackingStore => "tracking store",
        PluginKind::ArtifactRepository => "artifact repository",
        PluginKind::RunContextProvider => "run-context provider",
        PluginKind::ModelRegistryStore => "model-registry store",
        PluginKind::ProjectBackend => "project backend",
        PluginKind::ModelFlavor => "model flavor",
        _ => "plugin",
    }
}

fn noun_for_name(kind: PluginKind) -> &'static str {
    if kind.is_chosen_by_scheme() {
        "scheme"
    } else {
        "name"
    }
}

/// One problem inline; several one per line, so each stays readable.
fn list_problems(problems: &[String]) -> String {
    match problems {
        [one] => format!(" {one}"),
        many => many
            .iter()
            .map(|p| format!("\n  - {p}"))
            .collect::<String>(),
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_scheme_names_source_uri_and_alternatives() {
        let e = Error::UnknownScheme {
            kind: PluginKind::TrackingStore,
            scheme: "nosuch".into(),
            from: "URI nosuch://x".into(),
            available: vec!["sqlite".into()],
        }
        .requested_by("--backend-store-uri nosuch://x");
        assert_eq!(
            e.to_string(),
            "no tracking-store plugin serves scheme 'nosuch' (from --backend-store-uri nosuch://x); \
             available schemes: sqlite"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn empty_alternatives_say_none() {
        let e = Error::UnknownName {
            kind: PluginKind::ProjectBackend,
            name: "k8s".into(),
            from: None,
            available: vec![],
        };
        assert_eq!(
            e.to_string(),
            "no project-backend plugin named 'k8s'; available: none"
        );
    }

    #[test]
    fn several_config_problems_are_listed_one_per_line() {
        let e = Error::Config {
            problems: vec!["a is bad".into(), "b is bad".into()],
        };
        assert_eq!(
            e.to_string(),
            "invalid configuration:\n  - a is bad\n  - b is bad"
        );
        assert_eq!(
            Error::config("a is bad").to_string(),
            "invalid configuration: a is bad"
        );
    }

    #[test]
    fn config_errors_exit_with_two() {
        assert_eq!(Error::config("bad").exit_code(), 2);
        assert_eq!(
            Error::ConfigFileMissing {
                path: "x.toml".into()
            }
            .exit_code(),
            2
        );
    }
}
