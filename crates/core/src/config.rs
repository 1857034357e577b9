//! Cairn's configuration: its shape, how its layers are merged, and how its defaults resolve.
//!
//! Layers, lowest to highest (each overrides the ones before):
//!
//! 1. built-in defaults ([`Config::default`]);
//! 2. `cairn.toml` in the working directory, or the file given with `--config` (a `--config`
//!    file that does not exist is an error; a missing `cairn.toml` is not);
//! 3. `CAIRN_*` environment variables, `__` separating levels: `CAIRN_SERVER__PORT=8080` sets
//!    `server.port`, `CAIRN_SETTINGS__SQLITE__BUSY_TIMEOUT_MS=500` sets
//!    `settings.sqlite.busy_timeout_ms`;
//! 4. command-line flags ([`Overrides`]).
//!
//! Every struct rejects unknown keys, so a misspelt key (or a `CAIRN_SERVER_PORT` with one
//! underscore) is an error naming it. Every error names the key and where its value came from:
//! the file, the environment variable or the flag. The one exception is a `CAIRN_*` variable
//! that cannot be meant as configuration — no `__`, and its name neither a section nor a
//! section followed by `_` (`CAIRN_BIN`, which scripts export): it is ignored with a debug log
//! line (see [`is_stray_env_var`]).
//!
//! ```toml
//! [server]
//! host = "127.0.0.1"          # address to bind
//! port = 5000                 # port to bind
//! allowed_hosts = []          # Host-header allowlist (empty: the server's default policy)
//! cors_allowed_origins = []   # origins allowed cross-origin besides local ones; ["*"] = any
//! max_body_bytes = 33554432   # largest request body accepted (32 MiB); more is a 413
//! # static_prefix = "/mlflow" # serve every route under this prefix (MLflow's --static-prefix)
//! allowed_artifact_schemes = [] # schemes an experiment's artifact_location may use ([] = plugins')
//! max_connections = 512       # connections open at once; more wait to be accepted
//! idle_timeout_secs = 60      # idle keep-alive or half-sent header: closed after this
//! body_read_timeout_secs = 60 # a request body stalled this long fails
//! shutdown_timeout_secs = 30  # in-flight requests get this long after SIGTERM
//!
//! [store]
//! backend_store_uri = "sqlite:///cairn.db"   # tracking store; its scheme picks the plugin
//! # registry_store_uri = "..."               # model registry store; defaults to backend_store_uri
//! # default_artifact_root = "s3://bucket/x"  # root for new experiments' artifacts
//! # artifacts_destination = "file:///srv/a"  # storage behind the artifact proxy
//! serve_artifacts = true                     # serve the mlflow-artifacts proxy
//!
//! [run_context]
//! providers = ["user", "git"]   # run-context providers applied to new runs, in order
//!
//! [auth]                     # MLflow's basic-auth app (also: cairn server --app-name basic-auth)
//! enabled = false
//! default_permission = "READ" # READ, USE, EDIT, MANAGE or NO_PERMISSIONS where a user has no grant
//! admin_username = "admin"    # created on first start (MLFLOW_AUTH_ADMIN_USERNAME overrides)
//! # admin_password = "..."    # required then (MLFLOW_AUTH_ADMIN_PASSWORD overrides)
//! # database_uri = "sqlite:///auth.db"  # users and grants; defaults to store.backend_store_uri
//! max_failed_logins = 10      # per user and address and minute; then 429 until the minute ends
//!
//! [settings.sqlite]          # a free table handed to the plugin named `sqlite`
//! busy_timeout_ms = 5000
//!
//! [[plugins]]                # a dynamic plugin library (also: CAIRN_PLUGINS_PATH=a.so:b.so)
//! path = "plugins/libcairn_example_jsonl.so"   # relative to this file's directory
//! ```
//!
//! Secrets are redacted wherever configuration is shown (see [`crate::secrets`]).

use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::secrets::{redact_uri, redact_value};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file read from the working directory when no `--config` is given.
pub const DEFAULT_FILE: &str = "cairn.toml";

/// The prefix of Cairn's environment variables.
pub const ENV_PREFIX: &str = "CAIRN_";

/// What separates levels in an environment variable's name (`CAIRN_SERVER__PORT`).
pub const ENV_SEPARATOR: &str = "__";

/// The default tracking store: an SQLite file in the working directory.
pub const DEFAULT_BACKEND_STORE_URI: &str = "sqlite:///cairn.db";

/// MLflow's root for artifacts served through the tracking server's proxy.
pub const MLFLOW_ARTIFACTS_ROOT: &str = "mlflow-artifacts:/";

/// The top-level keys (sections) of [`Config`].
const SECTIONS: [&str; 6] = [
    "server",
    "store",
    "run_context",
    "auth",
    "settings",
    "plugins",
];

/// Whether the `CAIRN_*` variable whose name after the prefix is `key` is no configuration and
/// is ignored: it has no `__`, is no section and does not start with a section and `_` (so
/// `CAIRN_BIN` is ignored while `CAIRN_SERVER_PORT`, a likely typo of `CAIRN_SERVER__PORT`,
/// and `CAIRN_SERVER__PROT` stay errors). `CAIRN_PLUGINS_PATH` is read by the loader.
pub fn is_stray_env_var(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "plugins_path"
        || (!key.contains(ENV_SEPARATOR)
            && !SECTIONS
                .iter()
                .any(|s| key == *s || key.strip_prefix(s).is_some_and(|r| r.starts_with('_'))))
}

/// The figment provider name of the command-line layer.
const FLAGS_PROVIDER: &str = "command-line flags";

/// The whole configuration.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: where and how `cairn server` listens.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[store]`: which stores and artifact locations to use, MLflow's store options.
    #[serde(default)]
    pub store: StoreConfig,
    /// `[run_context]`: the run-context providers applied to the runs Cairn creates.
    #[serde(default)]
    pub run_context: RunContextConfig,
    /// `[auth]`: MLflow's basic-auth app (`cairn server --app-name basic-auth`).
    #[serde(default)]
    pub auth: AuthConfig,
    /// `[settings.<plugin name>]`: one free table per plugin, handed to that plugin's factory
    /// as [`cairn_plugin_api::BuildContext::settings`]; the plugin parses it and rejects unknown keys itself.
    #[serde(default, skip_serializing_if = "Settings::is_empty")]
    pub settings: Settings,
    /// `[[plugins]]`: shared libraries to load as dynamic plugins (see [`crate::loader`]); a
    /// relative `path` is relative to the config file's directory. The environment variable
    /// `CAIRN_PLUGINS_PATH` (`:`-separated) names more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<DynamicPlugin>,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `server.host`: the address to bind (MLflow's `--host`). Default `127.0.0.1`.
    pub host: String,
    /// `server.port`: the port to bind (MLflow's `--port`). Default `5000`.
    pub port: u16,
    /// `server.allowed_hosts`: values accepted in the `Host` header (MLflow's
    /// `--allowed-hosts`). Empty means the server's default policy: localhost names and
    /// loopback IPs on a loopback bind, plus private-range IPs and the bind address otherwise
    /// (see `cairn_core::server::security`).
    pub allowed_hosts: Vec<String>,
    /// `server.cors_allowed_origins`: browser origins allowed to make state-changing API
    /// requests (MLflow's `--cors-allowed-origins`), besides the local ones (`localhost`,
    /// `127.0.0.1`, `[::1]`, any port), which are always allowed. An entry is an exact origin
    /// (`https://app.example.com`) or, with `*`, a pattern; `["*"]` allows every origin. See
    /// `cairn_core::server::security`.
    pub cors_allowed_origins: Vec<String>,
    /// `server.max_body_bytes`: the largest request body accepted, in bytes; a larger one is
    /// answered 413. Default 32 MiB.
    pub max_body_bytes: usize,
    /// `server.static_prefix`: a path prefix for every route (MLflow's `--static-prefix`),
    /// e.g. `/mlflow`. It must start with `/`, must not end with `/` and has no braces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_prefix: Option<String>,
    /// `server.allowed_artifact_schemes`: the URI schemes an experiment's `artifact_location`
    /// may use (`file` covers plain paths). Empty (the default) means the schemes of the
    /// artifact-repository plugins and of `store.default_artifact_root` and
    /// `store.artifacts_destination`. `mlflow-artifacts:` is always allowed without a host
    /// and never with one.
    pub allowed_artifact_schemes: Vec<String>,
    /// `server.max_connections`: connections open at once; more wait to be accepted.
    /// Default 512.
    pub max_connections: usize,
    /// `server.idle_timeout_secs`: the longest a connection may wait for a complete request
    /// head — an idle keep-alive connection or a half-sent header is closed after it.
    /// Default 60.
    pub idle_timeout_secs: u64,
    /// `server.body_read_timeout_secs`: the longest a request body may stall between two
    /// pieces before the request fails. Default 60.
    pub body_read_timeout_secs: u64,
    /// `server.shutdown_timeout_secs`: how long in-flight requests may run after Ctrl-C or
    /// SIGTERM before their connections are dropped. Default 30.
    pub shutdown_timeout_secs: u64,
}

/// The default of `server.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// The default of `server.idle_timeout_secs`.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// The default of `server.body_read_timeout_secs`.
pub const DEFAULT_BODY_READ_TIMEOUT_SECS: u64 = 60;
/// The default of `server.shutdown_timeout_secs`.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 30;

/// The default of `server.max_body_bytes`: 32 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".to_owned(),
            port: 5000,
            allowed_hosts: Vec::new(),
            cors_allowed_origins: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            static_prefix: None,
            allowed_artifact_schemes: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
            body_read_timeout_secs: DEFAULT_BODY_READ_TIMEOUT_SECS,
            shutdown_timeout_secs: DEFAULT_SHUTDOWN_TIMEOUT_SECS,
        }
    }
}

/// `[store]`: MLflow's store and artifact options.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `store.backend_store_uri`: the tracking store (MLflow's `--backend-store-uri`); its
    /// scheme picks the plugin. Default `sqlite:///cairn.db`.
    pub backend_store_uri: String,
    /// `store.registry_store_uri`: the model-registry store (`--registry-store-uri`).
    /// Defaults to `backend_store_uri`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_store_uri: Option<String>,
    /// `store.default_artifact_root`: where new experiments store artifacts
    /// (`--default-artifact-root`). Defaults as in MLflow: `mlflow-artifacts:/` when serving
    /// artifacts, else `./mlruns` as an absolute `file:` URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_artifact_root: Option<String>,
    /// `store.artifacts_destination`: the storage behind the artifact proxy
    /// (`--artifacts-destination`). Defaults to `./mlartifacts` as an absolute `file:` URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts_destination: Option<String>,
    /// `store.serve_artifacts`: serve the `mlflow-artifacts` proxy (`--serve-artifacts`).
    /// Default `true`.
    pub serve_artifacts: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend_store_uri: DEFAULT_BACKEND_STORE_URI.to_owned(),
            registry_store_uri: None,
            default_artifact_root: None,
            artifacts_destination: None,
            serve_artifacts: true,
        }
    }
}

/// `[auth]`: MLflow's basic-auth app. `MLFLOW_AUTH_ADMIN_USERNAME` and
/// `MLFLOW_AUTH_ADMIN_PASSWORD` override the admin's name and password, as in MLflow.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `auth.enabled`: require HTTP Basic credentials and check permissions on every route
    /// (`--app-name basic-auth`). Default `false`.
    pub enabled: bool,
    /// `auth.default_permission`: what users may do where they have no grant: `READ` (the
    /// default), `USE`, `EDIT`, `MANAGE` or `NO_PERMISSIONS`.
    pub default_permission: String,
    /// `auth.admin_username`: the admin created on first start. Default `admin`.
    pub admin_username: String,
    /// `auth.admin_password`: the first admin's password (at least 12 characters, not
    /// `password1234`); required while the auth store has no user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
    /// `auth.database_uri`: where users and grants live. Defaults to `store.backend_store_uri`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_uri: Option<String>,
    /// `auth.max_failed_logins`: failed logins per user and address within a minute before
    /// further attempts answer 429 until the minute is over. Default 10.
    pub max_failed_logins: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: false,
            default_permission: "READ".to_owned(),
            admin_username: "admin".to_owned(),
            admin_password: None,
            database_uri: None,
            max_failed_logins: 10,
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(self, "AuthConfig", f)
    }
}

impl AuthConfig {
    /// This configuration with MLflow's `MLFLOW_AUTH_ADMIN_USERNAME` and
    /// `MLFLOW_AUTH_ADMIN_PASSWORD` applied (when set and not empty).
    pub fn with_mlflow_env(&self) -> AuthConfig {
        let mut c = self.clone();
        if let Some(name) = std::env::var("MLFLOW_AUTH_ADMIN_USERNAME")
            .ok()
            .filter(|v| !v.is_empty())
        {
            c.admin_username = name;
        }
        if let Some(pw) = std::env::var("MLFLOW_AUTH_ADMIN_PASSWORD")
            .ok()
            .filter(|v| !v.is_empty())
        {
            c.admin_password = Some(pw);
        }
        c
    }
}

/// `[run_context]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunContextConfig {
    /// `run_context.providers`: the names of the run-context providers whose tags are added
    /// to every run Cairn creates (the server's `runs/create`), in order: a later provider
    /// overrides an earlier one's keys, and tags given by the user win. Built in: `user`,
    /// `source`, `git` (see [`crate::run_context`]); plugins add more by name. Default: none.
    pub providers: Vec<String>,
}

/// `[settings]`: plugin name → that plugin's table.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Settings(pub BTreeMap<String, serde_json::Map<String, serde_json::Value>>);

impl Settings {
    /// Whether no plugin has settings.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The table for plugin `name` as JSON, `{}` if there is none.
    pub fn for_plugin(&self, name: &str) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .get(Self::table_of(name))
                .cloned()
                .unwrap_or_default(),
        )
    }

    /// The `[settings.<table>]` of plugin `name`: its name, except for plugins serving one
    /// store under several schemes, which share one table ([`SHARED_TABLES`]).
    pub fn table_of(name: &str) -> &str {
        SHARED_TABLES
            .iter()
            .find(|(scheme, _)| *scheme == name)
            .map_or(name, |(_, table)| table)
    }
}

/// Schemes whose plugin reads another scheme's settings table: the PostgreSQL store serves
/// `postgresql://` (and MLflow's `postgresql+psycopg2://`) and `postgres://`, with one table,
/// `[settings.postgres]`. A `[settings.postgresql]` table is a configuration error naming it.
pub const SHARED_TABLES: &[(&str, &str)] = &[("postgresql", "postgres")];

/// `[[plugins]]`: one shared library to load (see [`Config::plugins`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicPlugin {
    /// Path of the shared library.
    pub path: PathBuf,
}

/// Renders `value` as JSON with secrets redacted: the one way configuration reaches `Debug`.
fn redacted_debug(value: &impl Serialize, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match serde_json::to_value(value) {
        Ok(mut v) => {
            redact_value(&mut v);
            write!(f, "{name} {v}")
        }
        Err(_) => write!(f, "{name} {{..}}"),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(self, "Config", f)
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(self, "StoreConfig", f)
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        redacted_debug(self, "Settings", f)
    }
}

impl Config {
    /// The configuration as JSON with every secret redacted.
    pub fn redacted(&self) -> serde_json::Value {
        // Plain structs of strings, numbers and JSON maps always serialise.
        let mut value = serde_json::to_value(self).unwrap_or_default();
        redact_value(&mut value);
        value
    }
}

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// Cairn's built-in default (or the key is unset).
    Default,
    /// A configuration file.
    File(PathBuf),
    /// An environment variable, e.g. `CAIRN_SERVER__PORT`.
    Env(String),
    /// A command-line flag, e.g. `--backend-store-uri`.
    Flag(String),
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueSource::Default => f.write_str("built-in default"),
            ValueSource::File(path) => write!(f, "in {}", path.display()),
            ValueSource::Env(var) => write!(f, "from environment variable {var}"),
            ValueSource::Flag(flag) => write!(f, "from command-line flag {flag}"),
        }
    }
}

/// The environment variable that sets the key at `path`: `["server", "port"]` →
/// `CAIRN_SERVER__PORT`.
pub fn env_var_for(path: &[&str]) -> String {
    let parts: Vec<String> = path.iter().map(|p| p.to_ascii_uppercase()).collect();
    format!("{ENV_PREFIX}{}", parts.join(ENV_SEPARATOR))
}

/// The command-line layer: values given as flags, each remembered with its flag's name so
/// errors and `check` can say `--backend-store-uri` rather than a key.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    values: Vec<Override>,
}

#[derive(Debug, Clone)]
struct Override {
    key: &'static str,
    flag: &'static str,
    value: Value,
}

impl Overrides {
    /// Sets the dotted `key` (e.g. `store.backend_store_uri`) to `value`, given by `flag`.
    pub fn set(&mut self, key: &'static str, flag: &'static str, value: impl Into<Value>) {
        self.values.push(Override {
            key,
            flag,
            value: value.into(),
        });
    }

    /// Whether no flag was given.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl Provider for Overrides {
    fn metadata(&self) -> Metadata {
        let flags: Arc<BTreeMap<String, String>> = Arc::new(
            self.values
                .iter()
                .map(|o| (o.key.to_owned(), o.flag.to_owned()))
                .collect(),
        );
        Metadata::named(FLAGS_PROVIDER).interpolater(move |_: &Profile, keys: &[&str]| {
            let key = keys.join(".");
            flags.get(&key).cloned().unwrap_or(key)
        })
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        let mut dict = Dict::new();
        for o in &self.values {
            let path: Vec<&str> = o.key.split('.').collect();
            insert_path(&mut dict, &path, o.value.clone());
        }
        Ok(Profile::Default.collect(dict))
    }
}

fn insert_path(dict: &mut Dict, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let child = dict
                .entry((*first).to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(child, Value::Dict(..)) {
                *child = Value::from(Dict::new());
            }
            if let Value::Dict(_, child) = child {
                insert_path(child, rest, value);
            }
        }
    }
}

/// Reads the configuration from its layers.
#[derive(Debug, Clone)]
pub struct Loader {
    dir: PathBuf,
    file: Option<PathBuf>,
    overrides: Overrides,
}

impl Loader {
    /// A loader for the working directory `dir`: where `cairn.toml` is looked for, against
    /// which a relative `--config` path and relative default paths are resolved.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Loader {
            dir: dir.into(),
            file: None,
            overrides: Overrides::default(),
        }
    }

    /// Reads `file` (from `--config`) instead of `cairn.toml`; it must exist.
    pub fn config_file(mut self, file: Option<PathBuf>) -> Self {
        self.file = file;
        self
    }

    /// Puts `overrides` (the command-line flags) on top.
    pub fn overrides(mut self, overrides: Overrides) -> Self {
        self.overrides = overrides;
        self
    }

    /// The config file that will be read, if any.
    fn file_to_read(&self) -> Result<Option<PathBuf>> {
        match &self.file {
            Some(file) => {
                let path = self.dir.join(file);
                if path.is_file() {
                    Ok(Some(path))
                } else {
                    Err(Error::ConfigFileMissing { path: file.clone() })
                }
            }
            None => {
                let path = self.dir.join(DEFAULT_FILE);
                Ok(path.is_file().then_some(path))
            }
        }
    }

    /// The merged layers, not yet checked.
    pub fn figment(&self) -> Result<Figment> {
        Ok(self.figment_with(self.file_to_read()?.as_deref()))
    }

    fn figment_with(&self, file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            // `file_exact`: plain `file` would search parent directories too.
            figment = figment.merge(Toml::file_exact(path));
        }
        figment
            .merge(
                Env::prefixed(ENV_PREFIX)
                    .filter(|key| {
                        let stray = is_stray_env_var(key.as_str());
                        if stray {
                            tracing::debug!(
                                variable = %format!("{ENV_PREFIX}{key}"),
                                "ignoring an environment variable that is no configuration key"
                            );
                        }
                        !stray
                    })
                    .split(ENV_SEPARATOR),
            )
            .merge(self.overrides.clone())
    }

    /// Reads, merges and checks the configuration.
    pub fn load(&self) -> Result<LoadedConfig> {
        let file = self.file_to_read()?;
        let figment = self.figment_with(file.as_deref());
        let config: Config = figment.extract().map_err(|e| config_error(&figment, e))?;
        let loaded = LoadedConfig {
            config,
            figment,
            dir: self.dir.clone(),
            file,
        };
        loaded.validate()?;
        Ok(loaded)
    }
}

/// Turns figment's errors into one [`Error::Config`] whose problems each name the key and the
/// file, environment variable or flag its value came from.
fn config_error(figment: &Figment, error: figment::Error) -> Error {
    let problems = error
        .into_iter()
        .map(|e| {
            let mut path: Vec<&str> = e.path.iter().map(String::as_str).collect();
            if let figment::error::Kind::UnknownField(field, _) = &e.kind
                && path.last() != Some(&field.as_str())
            {
                path.push(field);
            }
            let key = path.join(".");
            let source = figment
                .find_metadata(&key)
                .filter(|_| !key.is_empty())
                .or(e.metadata.as_ref())
                .map(|md| source_from_metadata(md, &path))
                .unwrap_or(ValueSource::Default);
            use figment::error::Kind;
            match &e.kind {
                Kind::UnknownField(_, expected) => format!(
                    "unknown key `{key}` ({source}); expected one of: {}",
                    expected.join(", ")
                ),
                kind if key.is_empty() => format!("{kind} ({source})"),
                kind => format!("`{key}`: {kind} ({source})"),
            }
        })
        .collect();
    Error::Config { problems }
}

fn source_from_metadata(md: &Metadata, path: &[&str]) -> ValueSource {
    if let Some(file) = md.source.as_ref().and_then(|s| s.file_path()) {
        ValueSource::File(file.to_owned())
    } else if md.name == FLAGS_PROVIDER {
        ValueSource::Flag(md.interpolate(&Profile::Default, path))
    } else if md.name.contains("environment variable") {
        ValueSource::Env(env_var_for(path))
    } else {
        ValueSource::Default
    }
}

/// The configuration as loaded, with what is needed to say where each value came from and to
/// resolve defaults that depend on the working directory.
pub struct LoadedConfig {
    config: Config,
    figment: Figment,
    dir: PathBuf,
    file: Option<PathBuf>,
}

impl fmt::Debug for LoadedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the figment: its values are not redacted.
        f.debug_struct("LoadedConfig")
            .field("config", &self.config)
            .field("dir", &self.dir)
            .field("file", &self.file)
            .finish()
    }
}

impl LoadedConfig {
    /// The merged configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The configuration file that was read, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The working directory relative paths are resolved against.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the value of the dotted `key` came from ([`ValueSource::Default`] if unset).
    pub fn source_of(&self, key: &str) -> ValueSource {
        let path: Vec<&str> = key.split('.').collect();
        self.figment
            .find_metadata(key)
            .map(|md| source_from_metadata(md, &path))
            .unwrap_or(ValueSource::Default)
    }

    /// A phrase naming `key`'s source and its `value` (password redacted), for messages:
    /// `--backend-store-uri nosuch://x`, `CAIRN_STORE__BACKEND_STORE_URI=nosuch://x`,
    /// `store.backend_store_uri = "nosuch://x" in /etc/cairn.toml`, or
    /// `the default store.backend_store_uri sqlite:///cairn.db`.
    pub fn describe(&self, key: &str, value: &str) -> String {
        let value = redact_uri(value);
        match self.source_of(key) {
            ValueSource::Flag(flag) => format!("{flag} {value}"),
            ValueSource::Env(var) => format!("{var}={value}"),
            ValueSource::File(path) => format!("{key} = \"{value}\" in {}", path.display()),
            ValueSource::Default => format!("the default {key} {value}"),
        }
    }

    /// The model-registry store URI: `store.registry_store_uri`, else the backend store URI.
    pub fn registry_store_uri(&self) -> &str {
        self.config
            .store
            .registry_store_uri
            .as_deref()
            .unwrap_or(&self.config.store.backend_store_uri)
    }

    /// The root for new experiments' artifacts, resolved as MLflow's server resolves it:
    /// `store.default_artifact_root` if set (a relative local path made absolute, as MLflow's
    /// `resolve_uri_if_local` does); else `mlflow-artifacts:/` when serving artifacts; else,
    /// without serving, the backend store itself if it is a local file store, or `./mlruns` as
    /// an absolute `file:` URI.
    pub fn default_artifact_root(&self) -> String {
        let store = &self.config.store;
        if let Some(root) = &store.default_artifact_root {
            return self.absolute_if_local(root);
        }
        if store.serve_artifacts {
            return MLFLOW_ARTIFACTS_ROOT.to_owned();
        }
        let backend = &store.backend_store_uri;
        if crate::registry::scheme_of(backend) == "file" {
            if backend.starts_with("file:") {
                return backend.clone();
            }
            return file_uri(&self.dir.join(backend));
        }
        file_uri(&self.dir.join("mlruns"))
    }

    /// The storage behind the artifact proxy: `store.artifacts_destination` (a relative local
    /// path made absolute), else `./mlartifacts` as an absolute `file:` URI (MLflow's default).
    pub fn artifacts_destination(&self) -> String {
        match &self.config.store.artifacts_destination {
            Some(dest) => self.absolute_if_local(dest),
            None => file_uri(&self.dir.join("mlartifacts")),
        }
    }

    /// `uri` with a relative plain path made absolute against the working directory (kept a
    /// plain path); URIs with a scheme and absolute paths are returned unchanged.
    fn absolute_if_local(&self, uri: &str) -> String {
        let path = Path::new(uri);
        if crate::registry::scheme_of(uri) != "file"
            || uri.starts_with("file:")
            || path.is_absolute()
        {
            return uri.to_owned();
        }
        let joined: PathBuf = self.dir.join(path).components().collect();
        joined.to_string_lossy().into_owned()
    }

    /// What relative paths in `[settings.<name>]` are relative to
    /// ([`cairn_plugin_api::BuildContext::config_dir`]): the configuration file's directory, else the working
    /// directory.
    pub fn config_dir(&self) -> &Path {
        self.file
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(&self.dir)
    }

    /// `from`, plus where the plugin `name`'s settings came from, for the message of `error`
    /// (its factory's failure), so a complaint about the settings points at them: the full key
    /// and its source when the plugin names the key (`settings.vendorfs.root` in a file, or
    /// `CAIRN_SETTINGS__VENDORFS__ROOT`), else the `[settings.<name>]` table and its source.
    /// `cairn check` and `cairn server` both describe build failures with it.
    pub fn with_settings(&self, name: &str, from: &str, error: &Error) -> String {
        let name = Settings::table_of(name);
        if !self.config.settings.0.contains_key(name) {
            return from.to_owned();
        }
        let inner = match error {
            Error::Build { source, .. } => source
                .context
                .iter()
                .find(|(k, _)| k == cairn_plugin_api::factory::SETTINGS_KEY)
                .map(|(_, key)| key.as_str()),
            _ => None,
        };
        let key = match inner {
            Some(inner) => format!("settings.{name}.{inner}"),
            None => format!("settings.{name}"),
        };
        format!("{from}, with `{key}` ({})", self.source_of(&key))
    }

    /// Checks that each `[settings.<name>]` table names a plugin `registry` knows (or a
    /// built-in compiled out of this binary), so a misspelt plugin name is an error.
    pub fn check_settings_against(&self, registry: &Registry) -> Result<()> {
        let mut problems: Vec<String> = SHARED_TABLES
            .iter()
            .filter(|(scheme, _)| self.config.settings.0.contains_key(*scheme))
            .map(|(scheme, table)| {
                let key = format!("settings.{scheme}");
                format!(
                    "`{key}` ({}): the settings of the plugin serving '{scheme}' are read from \
                     `[settings.{table}]` (one table for all its schemes); rename the table",
                    self.source_of(&key)
                )
            })
            .collect();
        problems.extend(
            self.config
                .settings
                .0
                .keys()
                .filter(|name| {
                    !SHARED_TABLES.iter().any(|(scheme, _)| scheme == name)
                        && !registry.has_name(name)
                        && !crate::builtins::KNOWN
                            .iter()
                            .any(|k| k.name == name.as_str())
                })
                .map(|name| {
                    let key = format!("settings.{name}");
                    let names: Vec<&str> = registry
                        .entries()
                        .map(|e| e.name.as_str())
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    format!(
                        "`{key}` ({}): no plugin is named '{name}'; plugins: {}",
                        self.source_of(&key),
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    )
                }),
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Config { problems })
        }
    }

    /// The effective configuration as TOML with secrets redacted, followed by the values
    /// resolved from defaults as comments.
    pub fn to_toml(&self) -> Result<String> {
        let body = toml::to_string_pretty(&self.config.redacted())
            .map_err(|e| Error::config(format!("cannot render the configuration: {e}")))?;
        let mut out = String::from("# Effective configuration (secrets redacted).\n");
        out.push_str(&format!(
            "# Layers: built-in defaults < {} < {}* environment variables < flags.\n\n",
            self.file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| format!("{DEFAULT_FILE} (not present)")),
            ENV_PREFIX
        ));
        out.push_str(&body);
        out.push_str("\n# Resolved at start-up:\n");
        if self.config.store.registry_store_uri.is_none() {
            out.push_str(&format!(
                "#   store.registry_store_uri = \"{}\" (defaults to store.backend_store_uri)\n",
                redact_uri(self.registry_store_uri())
            ));
        }
        if self.config.store.default_artifact_root.is_none() {
            out.push_str(&format!(
                "#   store.default_artifact_root = \"{}\"\n",
                self.default_artifact_root()
            ));
        }
        if self.config.store.artifacts_destination.is_none() {
            out.push_str(&format!(
                "#   store.artifacts_destination = \"{}\"\n",
                self.artifacts_destination()
            ));
        }
        Ok(out)
    }

    /// Checks what serde cannot: values that must not be empty.
    fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        let c = &self.config;
        let mut non_empty = |key: &str, value: Option<&str>| {
            if value.is_some_and(|v| v.trim().is_empty()) {
                problems.push(format!(
                    "`{key}` must not be empty ({})",
                    self.source_of(key)
                ));
            }
        };
        non_empty("server.host", Some(&c.server.host));
        non_empty("store.backend_store_uri", Some(&c.store.backend_store_uri));
        non_empty(
            "store.registry_store_uri",
            c.store.registry_store_uri.as_deref(),
        );
        non_empty(
            "store.default_artifact_root",
            c.store.default_artifact_root.as_deref(),
        );
        non_empty(
            "store.artifacts_destination",
            c.store.artifacts_destination.as_deref(),
        );
        non_empty("auth.database_uri", c.auth.database_uri.as_deref());
        for (key, value) in [
            ("server.max_connections", c.server.max_connections as u64),
            ("server.idle_timeout_secs", c.server.idle_timeout_secs),
            (
                "server.body_read_timeout_secs",
                c.server.body_read_timeout_secs,
            ),
        ] {
            if value == 0 {
                problems.push(format!(
                    "`{key}` must be at least 1 ({})",
                    self.source_of(key)
                ));
            }
        }
        if c.server.max_body_bytes == 0 {
            problems.push(format!(
                "`server.max_body_bytes` must be at least 1 ({})",
                self.source_of("server.max_body_bytes")
            ));
        }
        if let Some(prefix) = &c.server.static_prefix
            && (!prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains(['{', '}']))
        {
            problems.push(format!(
                "`server.static_prefix` ({}): '{prefix}' must start with '/', must not end \
                 with '/' and must not contain braces",
                self.source_of("server.static_prefix")
            ));
        }
        for (i, name) in c.run_context.providers.iter().enumerate() {
            if name.trim().is_empty() || c.run_context.providers[..i].contains(name) {
                problems.push(format!(
                    "`run_context.providers` ({}): '{name}' is {}",
                    self.source_of("run_context.providers"),
                    if name.trim().is_empty() {
                        "empty"
                    } else {
                        "listed twice"
                    }
                ));
            }
        }
        for scheme in &c.server.allowed_artifact_schemes {
            if scheme.is_empty()
                || cairn_plugin_api::paths::uri_scheme(&format!("{scheme}:x"))
                    != scheme.to_ascii_lowercase()
            {
                problems.push(format!(
                    "`server.allowed_artifact_schemes` ({}): '{scheme}' is not a URI scheme",
                    self.source_of("server.allowed_artifact_schemes")
                ));
            }
        }
        if !matches!(
            c.auth.default_permission.as_str(),
            "READ" | "USE" | "EDIT" | "MANAGE" | "NO_PERMISSIONS"
        ) {
            problems.push(format!(
                "`auth.default_permission` ({}): '{}' is not one of READ, USE, EDIT, MANAGE, \
                 NO_PERMISSIONS",
                self.source_of("auth.default_permission"),
                c.auth.default_permission
            ));
        }
        if c.auth.max_failed_logins == 0 {
            problems.push(format!(
                "`auth.max_failed_logins` must be at least 1 ({})",
                self.source_of("auth.max_failed_logins")
            ));
        }
        if c.auth.admin_username.trim().is_empty() || c.auth.admin_username.contains(':') {
            problems.push(format!(
                "`auth.admin_username` ({}) must not be empty or contain ':'",
                self.source_of("auth.admin_username")
            ));
        }
        for (i, plugin) in c.plugins.iter().enumerate() {
            if plugin.path.as_os_str().is_empty() {
                problems.push(format!(
                    "`plugins[{i}].path` must not be empty ({})",
                    self.source_of("plugins")
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Config { problems })
        }
    }
}

/// `path` (absolute) as a `file:` URI, percent-encoding what a URI path cannot hold, as
/// Python's `Path.as_uri()` does.
pub fn file_uri(path: &Path) -> String {
    let path: PathBuf = path.components().collect();
    let mut out = String::from("file://");
    let text = path.to_string_lossy();
    let text = text.replace('\\', "/");
    if !text.starts_with('/') {
        out.push('/');
    }
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Jail;

    fn flags(pairs: &[(&'static str, &'static str, &str)]) -> Overrides {
        let mut o = Overrides::default();
        for (key, flag, value) in pairs {
            o.set(key, flag, *value);
        }
        o
    }

    /// Runs `f` in a fresh directory with its own environment (figment's `Jail` serialises
    /// the tests that touch the environment).
    #[allow(clippy::result_large_err)] // `Jail`'s closure returns `figment::Error`.
    fn jail(f: impl FnOnce(&mut Jail)) {
        Jail::expect_with(|j| {
            j.clear_env();
            f(j);
            Ok(())
        });
    }

    fn problems(err: Error) -> String {
        match err {
            Error::Config { problems } => problems.join("\n"),
            other => panic!("expected a config error, got {other}"),
        }
    }

    #[test]
    fn defaults_without_any_file() {
        jail(|j| {
            let loaded = Loader::new(j.directory()).load().unwrap();
            let c = loaded.config();
            assert_eq!(c.server.host, "127.0.0.1");
            assert_eq!(c.server.port, 5000);
            assert_eq!(c.store.backend_store_uri, "sqlite:///cairn.db");
            assert!(c.store.serve_artifacts);
            assert_eq!(loaded.registry_store_uri(), "sqlite:///cairn.db");
            assert_eq!(loaded.source_of("server.port"), ValueSource::Default);
            assert_eq!(loaded.file(), None);
        });
    }

    #[test]
    fn layers_override_in_order_defaults_file_env_flags() {
        jail(|j| {
            j.create_file(
                "cairn.toml",
                r#"
                [server]
                host = "0.0.0.0"
                port = 6000
                [store]
                backend_store_uri = "sqlite:///file.db"
                registry_store_uri = "sqlite:///file-registry.db"
                "#,
            )
            .unwrap();
            j.set_env("CAIRN_SERVER__PORT", "7000");
            j.set_env("CAIRN_STORE__BACKEND_STORE_URI", "sqlite:///env.db");
            let loaded = Loader::new(j.directory())
                .overrides(flags(&[(
                    "store.backend_store_uri",
                    "--backend-store-uri",
                    "sqlite:///flag.db",
                )]))
                .load()
                .unwrap();
            let c = loaded.config();
            let file = j.directory().join("cairn.toml");
            // default (nothing overrides it)
            assert!(c.store.serve_artifacts);
            assert_eq!(
                loaded.source_of("store.serve_artifacts"),
                ValueSource::Default
            );
            // file over default
            assert_eq!(c.server.host, "0.0.0.0");
            assert_eq!(
                loaded.source_of("server.host"),
                ValueSource::File(file.clone())
            );
            assert_eq!(
                c.store.registry_store_uri.as_deref(),
                Some("sqlite:///file-registry.db")
            );
            // env over file
            assert_eq!(c.server.port, 7000);
            assert_eq!(
                loaded.source_of("server.port"),
                ValueSource::Env("CAIRN_SERVER__PORT".into())
            );
            // flag over env
            assert_eq!(c.store.backend_store_uri, "sqlite:///flag.db");
            assert_eq!(
                loaded.source_of("store.backend_store_uri"),
                ValueSource::Flag("--backend-store-uri".into())
            );
            assert_eq!(loaded.file(), Some(file.as_path()));
        });
    }

    #[test]
    fn explicit_config_file_replaces_cairn_toml() {
        jail(|j| {
            j.create_file("cairn.toml", "[server]\nport = 1111\n")
                .unwrap();
            j.create_file("other.toml", "[server]\nport = 2222\n")
                .unwrap();
            let loaded = Loader::new(j.directory())
                .config_file(Some("other.toml".into()))
                .load()
                .unwrap();
            assert_eq!(loaded.config().server.port, 2222);
        });
    }

    #[test]
    fn missing_explicit_config_file_is_an_error() {
        jail(|j| {
            let err = Loader::new(j.directory())
                .config_file(Some("nope.toml".into()))
                .load()
                .unwrap_err();
            assert!(matches!(err, Error::ConfigFileMissing { .. }), "{err}");
            assert!(err.to_string().contains("nope.toml"), "{err}");
        });
    }

    #[test]
    fn config_file_is_not_searched_for_in_parent_directories() {
        jail(|j| {
            j.create_file("cairn.toml", "[server]\nport = 1111\n")
                .unwrap();
            std::fs::create_dir(j.directory().join("sub")).unwrap();
            let loaded = Loader::new(j.directory().join("sub")).load().unwrap();
            assert_eq!(loaded.config().server.port, 5000);
        });
    }

    #[test]
    fn unknown_key_in_file_is_named_with_the_file() {
        jail(|j| {
            j.create_file("cairn.toml", "[server]\nprot = 6000\n")
                .unwrap();
            let err = problems(Loader::new(j.directory()).load().unwrap_err());
            let file = j.directory().join("cairn.toml");
            assert!(err.contains("unknown key `server.prot`"), "{err}");
            assert!(err.contains(&file.display().to_string()), "{err}");
        });
    }

    #[test]
    fn unknown_top_level_table_is_named() {
        jail(|j| {
            j.create_file("cairn.toml", "[stores]\nbackend_store_uri = \"x\"\n")
                .unwrap();
            let err = problems(Loader::new(j.directory()).load().unwrap_err());
            assert!(err.contains("unknown key `stores`"), "{err}");
        });
    }

    #[test]
    fn single_underscore_env_var_is_an_unknown_key_naming_the_variable() {
        jail(|j| {
            j.set_env("CAIRN_SERVER_PORT", "8080");
            let err = problems(Loader::new(j.directory()).load().unwrap_err());
            assert!(err.contains("unknown key `server_port`"), "{err}");
            assert!(
                err.contains("from environment variable CAIRN_SERVER_PORT"),
                "{err}"
            );
        });
    }

    #[test]
    fn stray_top_level_env_var_is_ignored_but_typos_in_sections_stay_errors() {
        jail(|j| {
            // Scripts export such variables (scripts/compat exports CAIRN_BIN).
            j.set_env("CAIRN_BIN", "/usr/local/bin/cairn");
            j.set_env("CAIRN_TEST_DIR", "/tmp/x");
            let loaded = Loader::new(j.directory()).load().unwrap();
            assert_eq!(loaded.config().server.port, 5000);

            j.set_env("CAIRN_SERVER__PROT", "6000");
            let err = problems(Loader::new(j.directory()).load().unwrap_err());
            assert!(err.contains("unknown key `server.prot`"), "{err}");
            assert!(
                err.contains("from environment variable CAIRN_SERVER__PROT"),
                "{err}"
            );
            assert!(!err.contains("bin"), "{err}");
        });
    }

    #[test]
    fn server_limits_and_artifact_schemes_are_checked_naming_the_key() {
        jail(|j| {
            j.create_file(
                "cairn.toml",
                "[server]\nmax_connections = 0\nidle_timeout_secs = 0\n\
                 allowed_artifact_schemes = [\"s3\", \"s3://bucket\"]\n",
            )
            .unwrap();
            let err = problems(Loader::new(j.directory()).load().unwrap_err());
            assert!(
                err.contains("`server.max_connections` must be at least 1"),
                "{err}"
            );
            assert!(
                err.contains("`server.idle_timeout_secs` must be at least 1"),
                "{err}"
            );
            assert!(
                err.contains("'s3://bucket' is not a URI scheme") && !err.contains("'s3' is"),
                "{err}"
            );
            assert!(err.contains("cairn.toml"), "{err}");
        });
    }

    #[test]
    fn sections_are_the_fields_of_config() {
        let err = toml::from_str::<Config>("zzz = 1").unwrap_err().to_string();
        let expected = SECTIONS
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(err.contains(&expected), "{err}");
    }

    #[test]
    fn bad_env_value_names_key_and_variable() {
        jail(|j| {
            j.set_env("CAIRN_SERVER__PORT", "abc");
            let err = problems(Loader::new(j.directory()).load().unwrap_err());
            assert!(err.contains("`server.port`"), "{err}");
            assert!(
                err.contains("from environment variable CAIRN_SERVER__PORT"),
                "{err}"
            );
        });
    }

    #[test]
    fn bad_flag_value_names_the_flag() {
        jail(|j| {
            let mut o = Overrides::default();
            o.set("server.port", "--port", "high");
            let err = problems(Loader::new(j.directory()).overrides(o).load().unwrap_err());
            assert!(err.contains("from command-line flag --port"), "{err}");
        });
    }

    #[test]
    fn toml_syntax_error_names_the_file() {
        jail(|j| {
            j.create_file("cairn.toml", "[server\nport = 1\n").unwrap();
            let err = problems(Loader::new(j.directory()).load().unwrap_err());
            assert!(
                err.contains(&j.directory().join("cairn.toml").display().to_string()),
                "{err}"
            );
        });
    }

    #[test]
    fn empty_backend_uri_is_rejected_naming_the_source() {
        jail(|j| {
            j.set_env("CAIRN_STORE__BACKEND_STORE_URI", " ");
            let err = problems(Loader::new(j.directory()).load().unwrap_err());
            assert!(
                err.contains("`store.backend_store_uri` must not be empty"),
                "{err}"
            );
            assert!(err.contains("CAIRN_STORE__BACKEND_STORE_URI"), "{err}");
        });
    }

    #[test]
    fn plugins_are_read_from_the_file_and_the_path_variable_is_not_a_key() {
        jail(|j| {
            j.create_file(
                "cairn.toml",
                "[[plugins]]\npath = \"/opt/libx.so\"\n[[plugins]]\npath = \"rel/liby.so\"\n",
            )
            .unwrap();
            j.set_env("CAIRN_PLUGINS_PATH", "/a.so:/b.so");
            let loaded = Loader::new(j.directory()).load().unwrap();
            let paths: Vec<&Path> = loaded
                .config()
                .plugins
                .iter()
                .map(|p| p.path.as_path())
                .collect();
            assert_eq!(paths, [Path::new("/opt/libx.so"), Path::new("rel/liby.so")]);
        });
    }

    #[test]
    fn empty_plugin_path_is_rejected() {
        jail(|j| {
            j.create_file("cairn.toml", "[[plugins]]\npath = \"\"\n")
                .unwrap();
            let err = problems(Loader::new(j.directory()).load().unwrap_err());
            assert!(err.contains("`plugins[0].path` must not be empty"), "{err}");
        });
    }

    #[test]
    fn the_config_dir_is_the_config_files_directory_else_the_working_directory() {
        jail(|j| {
            let loaded = Loader::new(j.directory()).load().unwrap();
            assert_eq!(loaded.config_dir(), j.directory());
            std::fs::create_dir(j.directory().join("etc")).unwrap();
            j.create_file("etc/cairn.toml", "").unwrap();
            let loaded = Loader::new(j.directory())
                .config_file(Some(j.directory().join("etc/cairn.toml")))
                .load()
                .unwrap();
            assert_eq!(loaded.config_dir(), j.directory().join("etc"));
        });
    }

    #[test]
    fn plugin_settings_come_from_file_and_env() {
        jail(|j| {
            j.create_file(
                "cairn.toml",
                "[settings.sqlite]\nbusy_timeout_ms = 100\njournal = \"wal\"\n",
            )
            .unwrap();
            j.set_env("CAIRN_SETTINGS__SQLITE__BUSY_TIMEOUT_MS", "500");
            let loaded = Loader::new(j.directory()).load().unwrap();
            let settings = &loaded.config().settings;
            assert_eq!(
                settings.for_plugin("sqlite"),
                serde_json::json!({"busy_timeout_ms": 500, "journal": "wal"})
            );
            assert_eq!(settings.for_plugin("other"), serde_json::json!({}));
        });
    }

    #[test]
    fn run_context_providers_are_read_in_order_and_checked() {
        jail(|j| {
            j.create_file(
                "cairn.toml",
                "[run_context]\nproviders = [\"git\", \"user\", \"vendor\"]\n",
            )
            .unwrap();
            let loaded = Loader::new(j.directory()).load().unwrap();
            assert_eq!(
                loaded.config().run_context.providers,
                ["git", "user", "vendor"]
            );
            j.create_file(
                "cairn.toml",
                "[run_context]\nproviders = [\"git\", \"\", \"git\"]\n",
            )
            .unwrap();
            let err = problems(Loader::new(j.directory()).load().unwrap_err());
            assert!(err.contains("`run_context.providers` (in "), "{err}");
            assert!(err.contains("'' is empty"), "{err}");
            assert!(err.contains("'git' is listed twice"), "{err}");
        });
    }

    #[test]
    fn settings_for_a_plugin_must_be_a_table() {
        jail(|j| {
            j.create_file("cairn.toml", "[settings]\nsqlite = 5\n")
                .unwrap();
            let err = problems(Loader::new(j.directory()).load().unwrap_err());
            assert!(err.contains("`settings.sqlite`"), "{err}");
        });
    }

    #[test]
    fn describe_names_the_source_of_a_uri() {
        jail(|j| {
            j.create_file(
                "cairn.toml",
                "[store]\nregistry_store_uri = \"postgresql://u:pw@h/db\"\n",
            )
            .unwrap();
            j.set_env("CAIRN_STORE__DEFAULT_ARTIFACT_ROOT", "s3://b/p");
            let loaded = Loader::new(j.directory())
                .overrides(flags(&[(
                    "store.backend_store_uri",
                    "--backend-store-uri",
                    "nosuch://x",
                )]))
                .load()
                .unwrap();
            assert_eq!(
                loaded.describe("store.backend_store_uri", "nosuch://x"),
                "--backend-store-uri nosuch://x"
            );
            assert_eq!(
                loaded.describe("store.default_artifact_root", "s3://b/p"),
                "CAIRN_STORE__DEFAULT_ARTIFACT_ROOT=s3://b/p"
            );
            assert_eq!(
                loaded.describe("store.registry_store_uri", "postgresql://u:pw@h/db"),
                format!(
                    "store.registry_store_uri = \"postgresql://u:***@h/db\" in {}",
                    j.directory().join("cairn.toml").display()
                )
            );
            assert_eq!(
                loaded.describe("store.artifacts_destination", "file:///a"),
                "the default store.artifacts_destination file:///a"
            );
        });
    }

    #[test]
    fn secrets_are_redacted_in_toml_and_debug() {
        jail(|j| {
            j.create_file(
                "cairn.toml",
                r#"
                [store]
                backend_store_uri = "postgresql://alice:hunter2@db/mlflow"
                [settings.s3]
                secret_access_key = "shh-its-secret"
                bucket = "models"
                "#,
            )
            .unwrap();
            let loaded = Loader::new(j.directory()).load().unwrap();
            let shown = loaded.to_toml().unwrap();
            let debug = format!("{loaded:?} {:?}", loaded.config().store);
            for text in [&shown, &debug] {
                assert!(!text.contains("hunter2"), "{text}");
                assert!(!text.contains("shh-its-secret"), "{text}");
                assert!(text.contains("postgresql://alice:***@db/mlflow"), "{text}");
                assert!(text.contains("models"), "{text}");
            }
            // The redacted password is also absent from the resolved registry URI comment.
            assert!(shown.contains("registry_store_uri = \"postgresql://alice:***@db/mlflow\""));
            // What `config show` prints is valid TOML that reads back as a config.
            let reparsed: Config = toml::from_str(&shown).unwrap();
            assert_eq!(
                reparsed.store.backend_store_uri,
                "postgresql://alice:***@db/mlflow"
            );
        });
    }

    #[test]
    fn default_artifact_root_resolves_as_mlflow() {
        jail(|j| {
            let dir = j.directory().to_owned();
            let serving = Loader::new(&dir).load().unwrap();
            assert_eq!(serving.default_artifact_root(), "mlflow-artifacts:/");

            let mut no_serve = Overrides::default();
            no_serve.set("store.serve_artifacts", "--no-serve-artifacts", false);
            let loaded = Loader::new(&dir)
                .overrides(no_serve.clone())
                .load()
                .unwrap();
            assert_eq!(
                loaded.default_artifact_root(),
                file_uri(&dir.join("mlruns"))
            );
            assert!(loaded.default_artifact_root().starts_with("file:///"));

            // A local file store is its own artifact root when not serving.
            let mut file_backend = no_serve.clone();
            file_backend.set("store.backend_store_uri", "--backend-store-uri", "./runs");
            let loaded = Loader::new(&dir).overrides(file_backend).load().unwrap();
            assert_eq!(loaded.default_artifact_root(), file_uri(&dir.join("runs")));

            let mut relative = no_serve.clone();
            relative.set(
                "store.default_artifact_root",
                "--default-artifact-root",
                "./arts/../artifacts",
            );
            relative.set(
                "store.artifacts_destination",
                "--artifacts-destination",
                "dest",
            );
            let loaded = Loader::new(&dir).overrides(relative).load().unwrap();
            let artifacts = dir
                .join("arts/../artifacts")
                .components()
                .collect::<PathBuf>();
            assert_eq!(loaded.default_artifact_root(), artifacts.to_string_lossy());
            assert_eq!(
                loaded.artifacts_destination(),
                dir.join("dest").to_string_lossy()
            );

            let mut explicit = no_serve;
            explicit.set(
                "store.default_artifact_root",
                "--default-artifact-root",
                "s3://b",
            );
            let loaded = Loader::new(&dir).overrides(explicit).load().unwrap();
            assert_eq!(loaded.default_artifact_root(), "s3://b");
            assert_eq!(
                loaded.artifacts_destination(),
                file_uri(&dir.join("mlartifacts"))
            );
        });
    }

    #[test]
    fn file_uris_are_absolute_and_encoded() {
        assert_eq!(
            file_uri(Path::new("/srv/./my runs/a#b")),
            "file:///srv/my%20runs/a%23b"
        );
    }

    #[test]
    fn unknown_settings_name_is_an_error_naming_the_key() {
        jail(|j| {
            j.create_file("cairn.toml", "[settings.sqlit]\nx = 1\n")
                .unwrap();
            let loaded = Loader::new(j.directory()).load().unwrap();
            let err = problems(
                loaded
                    .check_settings_against(&Registry::default())
                    .unwrap_err(),
            );
            assert!(err.contains("`settings.sqlit`"), "{err}");
            assert!(err.contains("cairn.toml"), "{err}");
        });
    }

    #[test]
    fn postgres_settings_are_one_table_for_every_scheme() {
        jail(|j| {
            j.create_file("cairn.toml", "[settings.postgres]\npool_size = 3\n")
                .unwrap();
            let loaded = Loader::new(j.directory()).load().unwrap();
            for name in ["postgres", "postgresql"] {
                assert_eq!(
                    loaded.config().settings.for_plugin(name)["pool_size"],
                    3,
                    "{name}"
                );
            }
            j.create_file("cairn.toml", "[settings.postgresql]\npool_size = 3\n")
                .unwrap();
            let loaded = Loader::new(j.directory()).load().unwrap();
            let err = problems(
                loaded
                    .check_settings_against(&Registry::builtin().unwrap())
                    .unwrap_err(),
            );
            assert!(err.contains("`settings.postgresql`"), "{err}");
            assert!(err.contains("`[settings.postgres]`"), "{err}");
        });
    }
}
