//! The plugin registry: every plugin this process can build, keyed by `(kind, name)`.
//!
//! It is assembled once at start-up — from the built-ins registered with `inventory` and the
//! plugins of the shared libraries named in config ([`crate::loader::registry`]) — and never
//! changes afterwards.
//! Two plugins claiming one `(kind, name)` make assembly fail with an error naming both.
//!
//! Stores and repositories are chosen by the scheme of a URI, the way MLflow chooses them
//! (see [`scheme_of`]); the other kinds by name. A lookup that finds nothing says which
//! schemes or names exist, or that the plugin was compiled out of this binary.

use crate::builtins;
use crate::error::{Error, Result};
use crate::secrets::redact_uri;
use cairn_plugin_api::{
    ArtifactRepository, Build, BuildContext, ModelFlavor, ModelRegistryStore, PluginFactory,
    PluginKind, ProjectBackend, RunContextProvider, TrackingStore, Validated,
};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Linked into this binary and registered with `inventory`.
    BuiltIn,
    /// Loaded from a shared library at this path.
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::BuiltIn => f.write_str("built-in"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A function that builds one plugin instance of type `T` from its context.
///
/// A closure rather than a plain `fn` so that a plugin loaded from a shared library can carry
/// its library handle along.
pub type BuildFn<T> =
    Arc<dyn Fn(&BuildContext) -> cairn_plugin_api::Result<Arc<T>> + Send + Sync + 'static>;

/// A registered plugin's build function; the variant is the plugin's kind.
#[derive(Clone)]
pub enum Builder {
    /// Builds a tracking store.
    TrackingStore(BuildFn<dyn TrackingStore>),
    /// Builds an artifact repository.
    ArtifactRepository(BuildFn<dyn ArtifactRepository>),
    /// Builds a run-context provider.
    RunContextProvider(BuildFn<dyn RunContextProvider>),
    /// Builds a model-registry store.
    ModelRegistryStore(BuildFn<dyn ModelRegistryStore>),
    /// Builds a project backend.
    ProjectBackend(BuildFn<dyn ProjectBackend>),
    /// Builds a model flavor.
    ModelFlavor(BuildFn<dyn ModelFlavor>),
}

impl Builder {
    /// The kind of plugin this builds.
    pub fn kind(&self) -> PluginKind {
        match self {
            Builder::TrackingStore(_) => PluginKind::TrackingStore,
            Builder::ArtifactRepository(_) => PluginKind::ArtifactRepository,
            Builder::RunContextProvider(_) => PluginKind::RunContextProvider,
            Builder::ModelRegistryStore(_) => PluginKind::ModelRegistryStore,
            Builder::ProjectBackend(_) => PluginKind::ProjectBackend,
            Builder::ModelFlavor(_) => PluginKind::ModelFlavor,
        }
    }
}

impl From<Build> for Builder {
    fn from(build: Build) -> Self {
        match build {
            Build::TrackingStore(f) => Builder::TrackingStore(Arc::new(f)),
            Build::ArtifactRepository(f) => Builder::ArtifactRepository(Arc::new(f)),
            Build::RunContextProvider(f) => Builder::RunContextProvider(Arc::new(f)),
            Build::ModelRegistryStore(f) => Builder::ModelRegistryStore(Arc::new(f)),
            Build::ProjectBackend(f) => Builder::ProjectBackend(Arc::new(f)),
            Build::ModelFlavor(f) => Builder::ModelFlavor(Arc::new(f)),
        }
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Builder::{}", self.kind())
    }
}

/// One registered plugin.
#[derive(Debug, Clone)]
pub struct PluginEntry {
    /// The scheme (stores, repositories; lower case) or name (other kinds) it serves.
    pub name: String,
    /// The package that provides it, e.g. `cairn-store-sqlite`.
    pub package: String,
    /// That package's version.
    pub version: String,
    /// Where it came from.
    pub origin: Origin,
    /// How to build it; its variant is the plugin's kind.
    pub builder: Builder,
}

impl PluginEntry {
    /// An entry for a factory descriptor.
    pub fn from_factory(factory: &PluginFactory, origin: Origin) -> Self {
        PluginEntry {
            name: factory.name.to_owned(),
            package: factory.plugin.to_owned(),
            version: factory.version.to_owned(),
            origin,
            builder: factory.build.into(),
        }
    }

    /// The plugin's kind.
    pub fn kind(&self) -> PluginKind {
        self.builder.kind()
    }

    /// `package version (origin)`, as error messages name a plugin.
    pub fn describe(&self) -> String {
        format!("{} {} ({})", self.package, self.version, self.origin)
    }

    fn build_error(&self, uri: Option<&str>, source: cairn_plugin_api::Error) -> Error {
        Error::Build {
            kind: self.kind(),
            name: self.name.clone(),
            plugin: format!("{} {}, {}", self.package, self.version, self.origin),
            from: uri.map(|u| format!("URI {}", redact_uri(u))),
            source: Box::new(source),
        }
    }
}

/// The scheme that selects a store or repository plugin for `uri`, as MLflow selects it:
/// the URI scheme in lower case, with a `+driver` suffix dropped (`postgresql+psycopg2://`
/// selects `postgresql`). A plain path with no scheme selects `file`, and so does a one-letter
/// "scheme", which is a Windows drive (`C:\runs`).
pub fn scheme_of(uri: &str) -> String {
    cairn_plugin_api::paths::uri_scheme(uri)
}

/// The immutable set of plugins this process can build. Cloning is cheap (builders are
/// shared), so the server can keep a copy for building artifact repositories per request.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    entries: BTreeMap<(PluginKind, String), PluginEntry>,
}

impl Registry {
    /// A registry of `entries`; two entries with one `(kind, name)` are an error naming both.
    /// Names of scheme-chosen kinds are compared in lower case, as schemes are.
    pub fn new(entries: impl IntoIterator<Item = PluginEntry>) -> Result<Self> {
        let mut map = BTreeMap::new();
        for mut entry in entries {
            let kind = entry.kind();
            if kind.is_chosen_by_scheme() {
                entry.name = entry.name.to_ascii_lowercase();
            }
            match map.entry((kind, entry.name.clone())) {
                Entry::Vacant(slot) => {
                    slot.insert(entry);
                }
                Entry::Occupied(existing) => {
                    return Err(Error::DuplicatePlugin {
                        kind,
                        name: entry.name.clone(),
                        first: existing.get().describe(),
                        second: entry.describe(),
                    });
                }
            }
        }
        Ok(Registry { entries: map })
    }

    /// The registry of the built-in plugins linked into this binary.
    pub fn builtin() -> Result<Self> {
        Self::new(builtins::factories().map(|f| PluginEntry::from_factory(f, Origin::BuiltIn)))
    }

    /// Every plugin, ordered by kind then name.
    pub fn entries(&self) -> impl Iterator<Item = &PluginEntry> {
        self.entries.values()
    }

    /// The plugin of `kind` called `name`, if any (schemes compared in lower case).
    pub fn get(&self, kind: PluginKind, name: &str) -> Option<&PluginEntry> {
        let name = if kind.is_chosen_by_scheme() {
            name.to_ascii_lowercase()
        } else {
            name.to_owned()
        };
        self.entries.get(&(kind, name))
    }

    /// Whether any plugin of any kind is called `name`.
    pub fn has_name(&self, name: &str) -> bool {
        self.entries.values().any(|e| e.name == name)
    }

    /// The schemes or names registered for `kind`, sorted.
    pub fn names(&self, kind: PluginKind) -> Vec<String> {
        self.entries
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// The plugin of `kind` that serves `uri`'s scheme, or an error that says it was compiled
    /// out or lists the schemes available.
    pub fn for_uri(&self, kind: PluginKind, uri: &str) -> Result<&PluginEntry> {
        let scheme = scheme_of(uri);
        self.get(kind, &scheme).ok_or_else(|| {
            let from = format!("URI {}", redact_uri(uri));
            match builtins::compiled_out(kind, &scheme) {
                Some(known) => Error::CompiledOut {
                    kind,
                    name: scheme.clone(),
                    feature: known.feature,
                    from: Some(from),
                },
                None => Error::UnknownScheme {
                    kind,
                    scheme: scheme.clone(),
                    from,
                    available: self.names(kind),
                },
            }
        })
    }

    /// The plugin of `kind` called `name`, or an error that says it was compiled out or lists
    /// the names available.
    pub fn for_name(&self, kind: PluginKind, name: &str) -> Result<&PluginEntry> {
        self.get(kind, name)
            .ok_or_else(|| match builtins::compiled_out(kind, name) {
                Some(known) => Error::CompiledOut {
                    kind,
                    name: name.to_owned(),
                    feature: known.feature,
                    from: None,
                },
                None => Error::UnknownName {
                    kind,
                    name: name.to_owned(),
                    from: None,
                    available: self.names(kind),
                },
            })
    }

    /// Builds the tracking store for `uri` (e.g. `sqlite:///cairn.db`); `ctx.uri` is set to it.
    pub fn tracking_store(&self, uri: &str, ctx: BuildContext) -> Result<Arc<dyn TrackingStore>> {
        let entry = self.for_uri(PluginKind::TrackingStore, uri)?;
        match &entry.builder {
            Builder::TrackingStore(build) => build_with_uri(entry, build, uri, ctx)
                .map(|store| Arc::new(Validated::new(store)) as Arc<dyn TrackingStore>),
            other => unreachable_kind(other),
        }
    }

    /// Builds the model-registry store for `uri`; `ctx.uri` is set to it.
    pub fn model_registry_store(
        &self,
        uri: &str,
        ctx: BuildContext,
    ) -> Result<Arc<dyn ModelRegistryStore>> {
        let entry = self.for_uri(PluginKind::ModelRegistryStore, uri)?;
        match &entry.builder {
            Builder::ModelRegistryStore(build) => build_with_uri(entry, build, uri, ctx),
            other => unreachable_kind(other),
        }
    }

    /// Builds the artifact repository rooted at `uri`; `ctx.uri` is set to it.
    pub fn artifact_repository(
        &self,
        uri: &str,
        ctx: BuildContext,
    ) -> Result<Arc<dyn ArtifactRepository>> {
        let entry = self.for_uri(PluginKind::ArtifactRepository, uri)?;
        match &entry.builder {
            Builder::ArtifactRepository(build) => build_with_uri(entry, build, uri, ctx),
            other => unreachable_kind(other),
        }
    }

    /// Builds the run-context provider called `name`.
    pub fn run_context_provider(
        &self,
        name: &str,
        ctx: BuildContext,
    ) -> Result<Arc<dyn RunContextProvider>> {
        let entry = self.for_name(PluginKind::RunContextProvider, name)?;
        match &entry.builder {
            Builder::RunContextProvider(build) => {
                build(&ctx).map_err(|e| entry.build_error(None, e))
            }
            other => unreachable_kind(other),
        }
    }

    /// Builds the project backend called `name` (`local`, `kubernetes`, ...).
    pub fn project_backend(
        &self,
        name: &str,
        ctx: BuildContext,
    ) -> Result<Arc<dyn ProjectBackend>> {
        let entry = self.for_name(PluginKind::ProjectBackend, name)?;
        match &entry.builder {
            Builder::ProjectBackend(build) => build(&ctx).map_err(|e| entry.build_error(None, e)),
            other => unreachable_kind(other),
        }
    }

    /// Builds the model flavor called `name` (the flavor key in an `MLmodel` file).
    pub fn model_flavor(&self, name: &str, ctx: BuildContext) -> Result<Arc<dyn ModelFlavor>> {
        let entry = self.for_name(PluginKind::ModelFlavor, name)?;
        match &entry.builder {
            Builder::ModelFlavor(build) => build(&ctx).map_err(|e| entry.build_error(None, e)),
            other => unreachable_kind(other),
        }
    }
}

fn build_with_uri<T: ?Sized>(
    entry: &PluginEntry,
    build: &BuildFn<T>,
    uri: &str,
    mut ctx: BuildContext,
) -> Result<Arc<T>> {
    ctx.uri = Some(uri.to_owned());
    build(&ctx).map_err(|e| entry.build_error(Some(uri), e))
}

/// Entries are keyed by their builder's kind, so a lookup by kind finds that variant.
fn unreachable_kind<T>(builder: &Builder) -> T {
    unreachable!("registry entry keyed by the wrong kind: {builder:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_api::Error as PluginError;

    fn failing_tracking_store(
        ctx: &BuildContext,
    ) -> cairn_plugin_api::Result<Arc<dyn TrackingStore>> {
        Err(PluginError::invalid(format!(
            "cannot open {}",
            ctx.uri.as_deref().unwrap_or("nothing")
        )))
    }

    fn failing_backend(_: &BuildContext) -> cairn_plugin_api::Result<Arc<dyn ProjectBackend>> {
        Err(PluginError::internal("no cluster"))
    }

    fn tracking(name: &str, package: &str, origin: Origin) -> PluginEntry {
        PluginEntry {
            name: name.into(),
            package: package.into(),
            version: "1.2.3".into(),
            origin,
            builder: Build::TrackingStore(failing_tracking_store).into(),
        }
    }

    #[test]
    fn scheme_is_taken_as_mlflow_takes_it() {
        for (uri, scheme) in [
            ("sqlite:///x.db", "sqlite"),
            ("sqlite:////abs/x.db", "sqlite"),
            ("postgresql+psycopg2://u:p@h/db", "postgresql"),
            ("mysql+pymysql://h/db", "mysql"),
            ("PostgreSQL://h/db", "postgresql"),
            ("s3://bucket/key", "s3"),
            ("mlflow-artifacts:/", "mlflow-artifacts"),
            ("file:///tmp/mlruns", "file"),
            ("./mlruns", "file"),
            ("/var/lib/cairn/mlruns", "file"),
            ("mlruns", "file"),
            ("C:\\runs", "file"),
            ("", "file"),
            ("1abc://x", "file"),
            ("nosuch://x", "nosuch"),
        ] {
            assert_eq!(scheme_of(uri), scheme, "{uri}");
        }
    }

    #[test]
    fn duplicate_registration_names_both_plugins() {
        let err = Registry::new([
            tracking("sqlite", "cairn-store-sqlite", Origin::BuiltIn),
            tracking(
                "SQLite",
                "acme-sqlite",
                Origin::File("/opt/plugins/libacme.so".into()),
            ),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "two plugins claim the tracking-store scheme 'sqlite': cairn-store-sqlite 1.2.3 \
             (built-in) and acme-sqlite 1.2.3 (/opt/plugins/libacme.so)"
        );
    }

    #[test]
    fn one_name_in_two_kinds_is_not_a_conflict() {
        let backend = PluginEntry {
            name: "sqlite".into(),
            package: "p".into(),
            version: "1".into(),
            origin: Origin::BuiltIn,
            builder: Build::ProjectBackend(failing_backend).into(),
        };
        let registry = Registry::new([tracking("sqlite", "p", Origin::BuiltIn), backend]).unwrap();
        assert_eq!(registry.entries().count(), 2);
        assert_eq!(registry.names(PluginKind::TrackingStore), ["sqlite"]);
        assert_eq!(registry.names(PluginKind::ProjectBackend), ["sqlite"]);
    }

    #[test]
    fn unknown_scheme_lists_the_available_schemes() {
        let registry = Registry::new([
            tracking("sqlite", "a", Origin::BuiltIn),
            tracking("postgresql", "b", Origin::BuiltIn),
        ])
        .unwrap();
        let err = registry
            .tracking_store("nosuch://x", BuildContext::default())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "no tracking-store plugin serves scheme 'nosuch' (from URI nosuch://x); \
             available schemes: postgresql, sqlite"
        );
        let err = err.requested_by("--backend-store-uri nosuch://x");
        assert!(
            err.to_string()
                .contains("(from --backend-store-uri nosuch://x)"),
            "{err}"
        );
    }

    #[test]
    fn unknown_scheme_message_redacts_the_password() {
        let registry = Registry::default();
        let err = registry
            .tracking_store("nosuch://u:hunter2@h/db", BuildContext::default())
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("nosuch://u:***@h/db"), "{msg}");
        assert!(msg.ends_with("available schemes: none"), "{msg}");
    }

    #[test]
    fn driver_suffix_finds_the_base_scheme_plugin() {
        let registry = Registry::new([tracking("postgresql", "pg", Origin::BuiltIn)]).unwrap();
        let entry = registry
            .for_uri(PluginKind::TrackingStore, "postgresql+psycopg2://h/db")
            .unwrap();
        assert_eq!(entry.package, "pg");
    }

    #[test]
    fn build_failure_names_the_plugin_and_keeps_the_cause() {
        let registry =
            Registry::new([tracking("sqlite", "cairn-store-sqlite", Origin::BuiltIn)]).unwrap();
        let err = registry
            .tracking_store("sqlite:///x.db", BuildContext::default())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "tracking-store plugin 'sqlite' (cairn-store-sqlite 1.2.3, built-in) failed to start \
             for URI sqlite:///x.db"
        );
        let cause = std::error::Error::source(&err).unwrap().to_string();
        // The factory saw the URI it was built for.
        assert!(cause.contains("cannot open sqlite:///x.db"), "{cause}");
    }

    /// The host's tracking stores check MLflow's stateless rules in `Validated`: the sqlite
    /// store alone no longer refuses these requests.
    #[cfg(feature = "store-sqlite")]
    #[test]
    fn tracking_stores_are_built_behind_validation() {
        use cairn_plugin_api::ErrorKind;
        use cairn_plugin_api::tracking::CreateExperiment;
        let dir = tempfile::tempdir().unwrap();
        let ctx = BuildContext {
            default_artifact_root: Some(dir.path().to_str().unwrap().to_owned()),
            ..BuildContext::default()
        };
        let store = Registry::builtin()
            .unwrap()
            .tracking_store("sqlite://", ctx)
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let blank = CreateExperiment {
            name: " ".into(),
            ..CreateExperiment::default()
        };
        let err = runtime
            .block_on(store.create_experiment(blank))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err}");
        let err = runtime
            .block_on(store.log_batch("../x", vec![], vec![], vec![]))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err}");
        assert!(err.message.contains("Invalid run ID"), "{err}");
    }

    #[test]
    fn unknown_name_lists_the_names() {
        let backend = PluginEntry {
            name: "local".into(),
            package: "p".into(),
            version: "1".into(),
            origin: Origin::BuiltIn,
            builder: Build::ProjectBackend(failing_backend).into(),
        };
        let registry = Registry::new([backend]).unwrap();
        let err = registry
            .project_backend("k8s", BuildContext::default())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "no project-backend plugin named 'k8s'; available: local"
        );
        let err = registry
            .project_backend("local", BuildContext::default())
            .err()
            .unwrap();
        assert!(matches!(err, Error::Build { .. }), "{err}");
    }

    #[test]
    fn every_enabled_builtin_is_registered() {
        let registry = Registry::builtin().unwrap();
        for known in builtins::KNOWN.iter().filter(|k| k.enabled) {
            let entry = registry.get(known.kind, known.name).unwrap_or_else(|| {
                panic!(
                    "built-in {} '{}' of {} is enabled but did not register (is it linked?)",
                    known.kind, known.name, known.package
                )
            });
            assert_eq!(entry.package, known.package);
            assert_eq!(entry.origin, Origin::BuiltIn);
        }
    }

    #[test]
    fn compiled_out_builtin_says_so() {
        // Exercise the message with an empty registry, whatever this build's features are.
        if let Some(known) = builtins::KNOWN.iter().find(|k| !k.enabled) {
            let err = Registry::default()
                .for_uri(known.kind, &format!("{}:///x", known.name))
                .unwrap_err();
            assert!(matches!(err, Error::CompiledOut { .. }), "{err}");
        }
        let err = Error::CompiledOut {
            kind: PluginKind::TrackingStore,
            name: "sqlite".into(),
            feature: "store-sqlite",
            from: None,
        }
        .requested_by("--backend-store-uri sqlite:///x.db");
        assert_eq!(
            err.to_string(),
            "the `sqlite` tracking store is compiled out of this binary (cargo feature \
             `store-sqlite` of cairn-core), but --backend-store-uri sqlite:///x.db needs it"
        );
    }
}
