//! How a plugin makes itself known: a [`PluginFactory`] per plugin, registered with `inventory`
//! by built-ins (and described through the FFI root module by shared libraries).
//!
//! The host collects every factory at start-up into one immutable registry keyed by
//! `(kind, name)`; two factories with the same key are a start-up error naming both.

use crate::artifacts::ArtifactRepository;
use crate::context::RunContextProvider;
use crate::flavor::ModelFlavor;
use crate::model_registry::ModelRegistryStore;
use crate::projects::ProjectBackend;
use crate::tracking::TrackingStore;
use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The kinds of plugin (six today; non-exhaustive, as later versions add kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PluginKind {
    /// [`TrackingStore`], chosen by URI scheme.
    TrackingStore,
    /// [`ArtifactRepository`], chosen by URI scheme.
    ArtifactRepository,
    /// [`RunContextProvider`], chosen by name.
    RunContextProvider,
    /// [`ModelRegistryStore`], chosen by URI scheme.
    ModelRegistryStore,
    /// [`ProjectBackend`], chosen by name.
    ProjectBackend,
    /// [`ModelFlavor`], chosen by flavor name.
    ModelFlavor,
}

impl PluginKind {
    /// Every kind, in display order.
    pub const ALL: [PluginKind; 6] = [
        PluginKind::TrackingStore,
        PluginKind::ArtifactRepository,
        PluginKind::RunContextProvider,
        PluginKind::ModelRegistryStore,
        PluginKind::ProjectBackend,
        PluginKind::ModelFlavor,
    ];

    /// The kebab-case name used in config and listings, e.g. `tracking-store`.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::TrackingStore => "tracking-store",
            PluginKind::ArtifactRepository => "artifact-repository",
            PluginKind::RunContextProvider => "run-context-provider",
            PluginKind::ModelRegistryStore => "model-registry-store",
            PluginKind::ProjectBackend => "project-backend",
            PluginKind::ModelFlavor => "model-flavor",
        }
    }

    /// Whether plugins of this kind are chosen by a URI scheme (else by a name).
    pub fn is_chosen_by_scheme(self) -> bool {
        matches!(
            self,
            PluginKind::TrackingStore
                | PluginKind::ArtifactRepository
                | PluginKind::ModelRegistryStore
        )
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The context key of a settings error naming the offending key within the plugin's table
/// (`root`, `tags.team`); see [`BuildContext::settings`].
pub const SETTINGS_KEY: &str = "settings_key";

/// What a factory receives to build one plugin instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildContext {
    /// The URI that selected the plugin (stores and repositories), e.g. `sqlite:///cairn.db`.
    pub uri: Option<String>,
    /// The plugin's own config section (`[settings.<name>]` in `cairn.toml`, or
    /// `CAIRN_SETTINGS__<NAME>__<KEY>` variables), `{}` if absent. Relative paths in it are
    /// relative to [`config_dir`](Self::config_dir), not the working directory.
    pub settings: serde_json::Value,
    /// For tracking stores: the root under which new experiments store artifacts.
    pub default_artifact_root: Option<String>,
    /// For registry stores: the tracking store's URI.
    pub tracking_uri: Option<String>,
    /// The directory relative paths in the plugin's settings are relative to: the directory
    /// of the configuration file (as for `[[plugins]] path`), or the working directory when
    /// there is none. `None` only outside Cairn (a test building a plugin directly). Resolve
    /// with [`resolve_path`](Self::resolve_path).
    #[serde(default)]
    pub config_dir: Option<std::path::PathBuf>,
}

impl BuildContext {
    /// A context for `uri` with no settings.
    pub fn for_uri(uri: impl Into<String>) -> Self {
        BuildContext {
            uri: Some(uri.into()),
            settings: serde_json::Value::Object(Default::default()),
            ..Default::default()
        }
    }

    /// `path` from the plugin's settings, resolved: an absolute path as it is, a relative one
    /// joined to [`config_dir`](Self::config_dir) (left relative, so relative to the working
    /// directory, when there is none).
    pub fn resolve_path(&self, path: impl AsRef<std::path::Path>) -> std::path::PathBuf {
        let path = path.as_ref();
        match &self.config_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// The URI, or `InvalidArgument` if the plugin needs one and none was given.
    pub fn require_uri(&self) -> Result<&str> {
        self.uri
            .as_deref()
            .ok_or_else(|| Error::invalid("this plugin needs a URI"))
    }

    /// Parses the plugin's settings into `T`. Declare `T` with `#[serde(deny_unknown_fields)]`
    /// so a misspelt key is an error; the message names the key. A value of the wrong type
    /// (`root = 42` for a string) names its key in the message (`` `root`: invalid type ... ``)
    /// and in the error's context under [`SETTINGS_KEY`], from which the host names the full
    /// key and its source (`settings.vendorfs.root` in `cairn.toml`, or
    /// `CAIRN_SETTINGS__VENDORFS__ROOT`).
    pub fn settings<T: DeserializeOwned + Default>(&self) -> Result<T> {
        match &self.settings {
            serde_json::Value::Null => Ok(T::default()),
            v => serde_path_to_error::deserialize(v.clone()).map_err(|e| {
                let key = e.path().to_string();
                let cause = e.into_inner();
                if key == "." {
                    Error::invalid(format!("invalid plugin settings: {cause}"))
                } else {
                    Error::invalid(format!("invalid plugin settings: `{key}`: {cause}"))
                        .with_context(SETTINGS_KEY, key)
                }
            }),
        }
    }
}

/// Builds a [`TrackingStore`].
pub type BuildTrackingStore = fn(&BuildContext) -> Result<Arc<dyn TrackingStore>>;
/// Builds an [`ArtifactRepository`] rooted at the context's URI.
///
/// Called whenever the host needs a repository for a root it has not built yet (it keeps the
/// ones it built): at start-up for `store.artifacts_destination` (`cairn server`, `cairn
/// check`), then with each experiment's, run's or LoggedModel's artifact location a request
/// resolves (`s3://bucket/prefix/1/<run_id>/artifacts`), and with the URI given to `cairn
/// artifacts` (`cairn artifacts list vendorfs://b/p/d` builds a repository rooted at
/// `vendorfs://b/p/d`). So the URI may be any sub-URI of a configured root: build cheaply
/// (share clients and connection pools between instances, e.g. in a static) and do not
/// require the root to exist.
pub type BuildArtifactRepository = fn(&BuildContext) -> Result<Arc<dyn ArtifactRepository>>;
/// Builds a [`RunContextProvider`].
pub type BuildRunContextProvider = fn(&BuildContext) -> Result<Arc<dyn RunContextProvider>>;
/// Builds a [`ModelRegistryStore`].
pub type BuildModelRegistryStore = fn(&BuildContext) -> Result<Arc<dyn ModelRegistryStore>>;
/// Builds a [`ProjectBackend`].
pub type BuildProjectBackend = fn(&BuildContext) -> Result<Arc<dyn ProjectBackend>>;
/// Builds a [`ModelFlavor`].
pub type BuildModelFlavor = fn(&BuildContext) -> Result<Arc<dyn ModelFlavor>>;

/// A plugin's build function; the variant is the plugin's kind. (Plugins construct it and
/// the host matches it, always against the same version, so it needs no `#[non_exhaustive]`.)
#[derive(Clone, Copy)]
pub enum Build {
    /// A tracking store.
    TrackingStore(BuildTrackingStore),
    /// An artifact repository.
    ArtifactRepository(BuildArtifactRepository),
    /// A run-context provider.
    RunContextProvider(BuildRunContextProvider),
    /// A model-registry store.
    ModelRegistryStore(BuildModelRegistryStore),
    /// A project backend.
    ProjectBackend(BuildProjectBackend),
    /// A model flavor.
    ModelFlavor(BuildModelFlavor),
}

impl Build {
    /// The kind of plugin this builds.
    pub fn kind(&self) -> PluginKind {
        match self {
            Build::TrackingStore(_) => PluginKind::TrackingStore,
            Build::ArtifactRepository(_) => PluginKind::ArtifactRepository,
            Build::RunContextProvider(_) => PluginKind::RunContextProvider,
            Build::ModelRegistryStore(_) => PluginKind::ModelRegistryStore,
            Build::ProjectBackend(_) => PluginKind::ProjectBackend,
            Build::ModelFlavor(_) => PluginKind::ModelFlavor,
        }
    }
}

impl fmt::Debug for Build {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Build::{}", self.kind())
    }
}

/// One plugin's descriptor: what it is, who made it, how to build it.
#[derive(Debug, Clone, Copy)]
pub struct PluginFactory {
    /// The URI scheme (stores, repositories) or name (providers, backends, flavors) it serves.
    pub name: &'static str,
    /// The package that provides it, e.g. `cairn-store-sqlite`.
    pub plugin: &'static str,
    /// That package's version.
    pub version: &'static str,
    /// The build function; its variant is the kind.
    pub build: Build,
}

impl PluginFactory {
    /// The plugin's kind.
    pub fn kind(&self) -> PluginKind {
        self.build.kind()
    }
}

inventory::collect!(PluginFactory);

/// Every factory registered by the built-in plugins linked into this binary.
pub fn builtin_factories() -> impl Iterator<Item = &'static PluginFactory> {
    inventory::iter::<PluginFactory>.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Vendor {
        #[serde(default)]
        root: String,
        #[serde(default)]
        tags: std::collections::BTreeMap<String, String>,
    }

    fn parse(settings: serde_json::Value) -> Result<Vendor> {
        BuildContext {
            settings,
            ..BuildContext::default()
        }
        .settings()
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key() {
        let e = parse(serde_json::json!({"root": 42})).unwrap_err();
        assert!(
            e.message
                .starts_with("invalid plugin settings: `root`: invalid type"),
            "{e}"
        );
        assert!(
            e.context.contains(&(SETTINGS_KEY.into(), "root".into())),
            "{e:?}"
        );
        let e = parse(serde_json::json!({"tags": {"team": 1}})).unwrap_err();
        assert!(
            e.context
                .contains(&(SETTINGS_KEY.into(), "tags.team".into())),
            "{e:?}"
        );
    }

    #[test]
    fn relative_settings_paths_resolve_against_the_config_dir() {
        let ctx = BuildContext {
            config_dir: Some("/etc/cairn".into()),
            ..BuildContext::default()
        };
        assert_eq!(
            ctx.resolve_path("data/x"),
            std::path::Path::new("/etc/cairn/data/x")
        );
        assert_eq!(ctx.resolve_path("/abs"), std::path::Path::new("/abs"));
        assert_eq!(
            BuildContext::default().resolve_path("rel"),
            std::path::Path::new("rel")
        );
    }

    #[test]
    fn an_unknown_key_is_named_by_serde_and_good_settings_parse() {
        let e = parse(serde_json::json!({"rot": "/x"})).unwrap_err();
        assert!(e.message.contains("unknown field `rot`"), "{e}");
        let good = parse(serde_json::json!({"root": "/x", "tags": {"team": "a"}})).unwrap();
        assert_eq!(
            (good.root.as_str(), good.tags["team"].as_str()),
            ("/x", "a")
        );
        assert_eq!(parse(serde_json::Value::Null).unwrap().root, "");
    }
}
