//! The one assembly of the configured plugins.
//!
//! [`Assembly`] is built once from the loaded configuration (its registry: the built-ins and
//! the libraries the configuration names) and is the only code that turns configuration into
//! plugins: it picks the plugin for each configured URI or name, gives it its
//! [`BuildContext`] ([`Contexts`]) and builds it, naming the key that asked for it in every
//! error. Every command uses it: `cairn server` ([`Assembly::server`]), `cairn check` (the
//! same call, reporting each step), `cairn artifacts` (the pieces a URI needs), and the
//! per-request artifact repositories ([`Assembly::repositories`]). So `check` passes exactly
//! when `server` would start, and fails with the same message.
//!
//! What is built, and when a missing plugin is an error:
//!
//! | what | key | no plugin serves it |
//! |---|---|---|
//! | tracking store | `store.backend_store_uri` | error |
//! | model-registry store | `store.registry_store_uri` (default: the backend URI) | error when the key is set, else a note (the registry endpoints answer 501) |
//! | proxy destination (when `store.serve_artifacts`) | `store.artifacts_destination` | error |
//! | default artifact root (unless proxied) | `store.default_artifact_root` | error when the key is set, else a note |
//! | run-context providers | `run_context.providers` | error |
//!
//! Every plugin gets the same facts: its `[settings.<name>]` table, its URI, the resolved
//! default artifact root and the tracking store's URI. Project backends and model flavors
//! (later issues) are added here the same way: a key, a lookup by name, a build.

use crate::config::{LoadedConfig, MLFLOW_ARTIFACTS_ROOT, Settings};
use crate::error::{Error, Result, kind_noun};
use crate::registry::{PluginEntry, Registry, scheme_of};
use crate::run_context::RunContextProviders;
use crate::secrets::redact_uri;
use crate::server::{artifacts::Artifacts, registry::RegistryAccess};
use crate::uri::Repositories;
use cairn_plugin_api::{
    ArtifactRepository, AuthStore, BuildContext, ModelRegistryStore, PluginKind, TrackingStore,
};
use std::sync::Arc;

/// How each plugin's [`BuildContext`] is made: the same facts for every plugin, plus its own
/// settings table and URI.
#[derive(Debug, Clone, Default)]
pub struct Contexts {
    settings: Settings,
    default_artifact_root: Option<String>,
    tracking_uri: Option<String>,
    config_dir: Option<std::path::PathBuf>,
}

impl Contexts {
    /// The contexts of `loaded`: its `[settings.*]` tables, the resolved default artifact
    /// root, the tracking store's URI and the directory relative settings paths are relative
    /// to ([`LoadedConfig::config_dir`]).
    pub fn of(loaded: &LoadedConfig) -> Self {
        Contexts {
            settings: loaded.config().settings.clone(),
            default_artifact_root: Some(loaded.default_artifact_root()),
            tracking_uri: Some(loaded.config().store.backend_store_uri.clone()),
            config_dir: Some(loaded.config_dir().to_owned()),
        }
    }

    /// The context for plugin `name` (its `[settings.<name>]` table), built for `uri`.
    pub fn for_plugin(&self, name: &str, uri: Option<&str>) -> BuildContext {
        BuildContext {
            uri: uri.map(str::to_owned),
            settings: self.settings.for_plugin(name),
            default_artifact_root: self.default_artifact_root.clone(),
            tracking_uri: self.tracking_uri.clone(),
            config_dir: self.config_dir.clone(),
        }
    }
}

impl From<Settings> for Contexts {
    fn from(settings: Settings) -> Self {
        Contexts {
            settings,
            ..Contexts::default()
        }
    }
}

/// A built plugin, with the registry entry it came from and what asked for it.
pub struct Built<T: ?Sized> {
    /// The plugin.
    pub plugin: Arc<T>,
    /// Its registry entry.
    pub entry: PluginEntry,
    /// What asked for it: `--backend-store-uri sqlite:///x.db`, ...
    pub from: String,
}

/// One step of an assembly, as `check` prints it and `server` logs it.
#[derive(Debug)]
pub enum Step<'a> {
    /// A plugin was built for `from`.
    Built {
        /// The plugin's entry.
        entry: &'a PluginEntry,
        /// What asked for it.
        from: &'a str,
    },
    /// Something fine worth saying (`check` prints it as `ok: ...`).
    Info(String),
    /// Something that is not an error but leaves a feature unavailable (`note: ...`).
    Note(String),
}

/// Everything `cairn server` serves, as [`Assembly::server`] builds it.
pub struct ServerPlugins {
    /// The tracking store.
    pub tracking: Arc<dyn TrackingStore>,
    /// The proxy's destination and the repositories of run roots.
    pub artifacts: Artifacts,
    /// The model-registry store (if any) and the artifact roots sources may lie under.
    pub registry: RegistryAccess,
    /// The run-context providers applied in `runs/create`.
    pub run_context: RunContextProviders,
    /// With the basic-auth app on (`auth.enabled`): its users and grants.
    pub auth: Option<Arc<dyn AuthStore>>,
}

/// The configured plugins of one process: see the module documentation.
pub struct Assembly<'c> {
    loaded: &'c LoadedConfig,
    registry: Arc<Registry>,
    repositories: Repositories,
}

impl<'c> Assembly<'c> {
    /// The assembly of `loaded`: its registry (built-ins and the plugin libraries it names),
    /// with every `[settings.<name>]` table checked against it.
    pub fn new(loaded: &'c LoadedConfig) -> Result<Self> {
        Self::with_registry(loaded, crate::loader::registry(loaded)?)
    }

    /// The assembly of `loaded` over `registry`.
    pub fn with_registry(loaded: &'c LoadedConfig, registry: Registry) -> Result<Self> {
        loaded.check_settings_against(&registry)?;
        let registry = Arc::new(registry);
        let repositories = Repositories::new(registry.clone(), Contexts::of(loaded));
        Ok(Assembly {
            loaded,
            registry,
            repositories,
        })
    }

    /// The plugin registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The loaded configuration.
    pub fn config(&self) -> &LoadedConfig {
        self.loaded
    }

    /// The builder of artifact repositories by root URI (shared: it keeps what it built).
    pub fn repositories(&self) -> &Repositories {
        &self.repositories
    }

    /// The tracking store of `store.backend_store_uri`.
    pub fn tracking_store(&self) -> Result<Built<dyn TrackingStore>> {
        let uri = &self.loaded.config().store.backend_store_uri;
        let from = self.loaded.describe("store.backend_store_uri", uri);
        let entry = self.lookup(PluginKind::TrackingStore, uri, &from)?;
        let plugin = self
            .registry
            .tracking_store(uri, self.context(&entry.name, uri))
            .map_err(|e| self.build_failed(&entry.name, &from, e))?;
        Ok(Built {
            plugin,
            entry,
            from,
        })
    }

    /// The model-registry store of `store.registry_store_uri` (default: the backend store
    /// URI).
    pub fn registry_store(&self) -> Result<Built<dyn ModelRegistryStore>> {
        let (uri, from) = self.registry_store_uri();
        let entry = self.lookup(PluginKind::ModelRegistryStore, uri, &from)?;
        let plugin = self
            .registry
            .model_registry_store(uri, self.context(&entry.name, uri))
            .map_err(|e| self.build_failed(&entry.name, &from, e))?;
        Ok(Built {
            plugin,
            entry,
            from,
        })
    }

    /// The server's model-registry store: [`Assembly::registry_store`], except that when no
    /// plugin serves a defaulted URI this is a note through `report` and `None` (the registry
    /// endpoints answer 501).
    fn server_registry_store(
        &self,
        report: &mut dyn FnMut(Step<'_>),
    ) -> Result<Option<Built<dyn ModelRegistryStore>>> {
        let (uri, from) = self.registry_store_uri();
        let explicit = self.loaded.config().store.registry_store_uri.is_some();
        match self.registry.for_uri(PluginKind::ModelRegistryStore, uri) {
            Err(e) if !explicit => {
                report(Step::Note(format!(
                    "{}; `store.registry_store_uri` is not set, so this is not an error, but \
                     the model registry will be unavailable (its endpoints answer 501)",
                    e.requested_by(&from)
                )));
                Ok(None)
            }
            _ => {
                let built = self.registry_store()?;
                report(Step::Built {
                    entry: &built.entry,
                    from: &built.from,
                });
                Ok(Some(built))
            }
        }
    }

    /// The registry store's URI and what names it.
    fn registry_store_uri(&self) -> (&str, String) {
        let uri = self.loaded.registry_store_uri();
        let from = if self.loaded.config().store.registry_store_uri.is_some() {
            self.loaded.describe("store.registry_store_uri", uri)
        } else {
            format!(
                "store.registry_store_uri {} (defaulted from store.backend_store_uri)",
                redact_uri(uri)
            )
        };
        (uri, from)
    }

    /// The repository of `store.artifacts_destination`, the storage behind the artifact proxy.
    pub fn artifacts_destination(&self) -> Result<Built<dyn ArtifactRepository>> {
        let uri = self.loaded.artifacts_destination();
        let from = if self.loaded.config().store.artifacts_destination.is_some() {
            self.loaded.describe("store.artifacts_destination", &uri)
        } else {
            format!(
                "the default store.artifacts_destination {}",
                redact_uri(&uri)
            )
        };
        self.repository(&uri, from)
    }

    /// Builds the repository of the default artifact root when clients write there directly
    /// (not through the proxy), so a root no plugin serves or that cannot be reached stops
    /// start-up; a defaulted root no plugin serves is only a note.
    fn default_artifact_root(&self, report: &mut dyn FnMut(Step<'_>)) -> Result<()> {
        let store = &self.loaded.config().store;
        let root = self.loaded.default_artifact_root();
        if scheme_of(&root) == scheme_of(MLFLOW_ARTIFACTS_ROOT) {
            report(if store.serve_artifacts {
                Step::Info(format!(
                    "default artifact root {root} is served by this server's artifact proxy"
                ))
            } else {
                Step::Note(format!(
                    "default artifact root {root} needs the artifact proxy, but \
                     store.serve_artifacts is false: clients will not reach new experiments' \
                     artifacts"
                ))
            });
            return Ok(());
        }
        let explicit = store.default_artifact_root.is_some();
        let from = if explicit {
            self.loaded.describe("store.default_artifact_root", &root)
        } else {
            format!(
                "the default store.default_artifact_root {}",
                redact_uri(&root)
            )
        };
        match self.registry.for_uri(PluginKind::ArtifactRepository, &root) {
            Err(e) if !explicit => {
                report(Step::Note(format!(
                    "{}; `store.default_artifact_root` is not set, so this is not an error, but \
                     the {} will be unavailable",
                    e.requested_by(&from),
                    kind_noun(PluginKind::ArtifactRepository)
                )));
                Ok(())
            }
            _ => {
                let built = self.repository(&root, from)?;
                report(Step::Built {
                    entry: &built.entry,
                    from: &built.from,
                });
                Ok(())
            }
        }
    }

    /// The artifact roots model-version sources may lie under: the default artifact root and,
    /// when serving artifacts, the proxy's destination.
    pub fn artifact_roots(&self) -> Vec<String> {
        let mut roots = vec![self.loaded.default_artifact_root()];
        if self.loaded.config().store.serve_artifacts {
            roots.push(self.loaded.artifacts_destination());
        }
        roots
    }

    /// The providers of `run_context.providers`, built in order.
    pub fn run_context(&self, report: &mut dyn FnMut(Step<'_>)) -> Result<RunContextProviders> {
        let key = "run_context.providers";
        let source = self.loaded.source_of(key);
        let mut built = Vec::new();
        for name in &self.loaded.config().run_context.providers {
            let from = format!("`{key}` ({source})");
            let entry = self
                .registry
                .for_name(PluginKind::RunContextProvider, name)
                .map_err(|e| e.requested_by(&from))?;
            let provider = self
                .registry
                .run_context_provider(name, self.contexts().for_plugin(name, None))
                .map_err(|e| self.build_failed(name, &from, e))?;
            report(Step::Built { entry, from: &from });
            built.push((entry, provider));
        }
        Ok(RunContextProviders::new(built))
    }

    /// Everything `cairn server` serves, built in order — tracking store, model-registry
    /// store, proxy destination (when serving), default artifact root, run-context providers —
    /// each step reported through `report`. `cairn check` is this call.
    pub fn server(&self, report: &mut dyn FnMut(Step<'_>)) -> Result<ServerPlugins> {
        let tracking = self.tracking_store()?;
        report(Step::Built {
            entry: &tracking.entry,
            from: &tracking.from,
        });
        let registry_store = self.server_registry_store(report)?;
        let destination = if self.loaded.config().store.serve_artifacts {
            let built = self.artifacts_destination()?;
            report(Step::Built {
                entry: &built.entry,
                from: &built.from,
            });
            Some(built.plugin)
        } else {
            None
        };
        self.default_artifact_root(report)?;
        let run_context = self.run_context(report)?;
        let auth = self.auth_store(report)?;
        Ok(ServerPlugins {
            tracking: tracking.plugin,
            artifacts: Artifacts::new(self.repositories.clone(), destination),
            registry: RegistryAccess::new(registry_store.map(|b| b.plugin), self.artifact_roots()),
            run_context,
            auth,
        })
    }

    /// The basic-auth app's store, when `auth.enabled`: on `auth.database_uri` (default: the
    /// backend store's URI). The SQLite store serves it (the same file, its own tables); the
    /// contract is [`AuthStore`], not yet a plugin kind of its own, so the scheme is matched here.
    fn auth_store(&self, report: &mut dyn FnMut(Step<'_>)) -> Result<Option<Arc<dyn AuthStore>>> {
        let c = &self.loaded.config();
        if !c.auth.enabled {
            return Ok(None);
        }
        let (key, uri) = match &c.auth.database_uri {
            Some(uri) => ("auth.database_uri", uri.as_str()),
            None => (
                "store.backend_store_uri",
                c.store.backend_store_uri.as_str(),
            ),
        };
        let from = self.loaded.describe(key, &redact_uri(uri));
        let store: Arc<dyn AuthStore> = match scheme_of(uri).as_str() {
            #[cfg(feature = "store-sqlite")]
            "sqlite" => cairn_store_sqlite::build_auth_store(&self.context("sqlite", uri))
                .map_err(|e| Error::Config {
                    problems: vec![format!("{from}: cannot open the auth store: {}", e.message)],
                })?,
            other => {
                return Err(Error::Config {
                    problems: vec![format!(
                        "{from}: the basic-auth app cannot keep users and grants in a \
                         '{other}' store; use a sqlite:// URI"
                    )],
                });
            }
        };
        report(Step::Info(format!(
            "basic-auth: users and grants in {}",
            redact_uri(uri)
        )));
        Ok(Some(store))
    }

    /// The project backend `name` (`cairn run -b <name>`), built with its `[settings.<name>]`.
    pub fn project_backend(&self, name: &str) -> Result<Arc<dyn cairn_plugin_api::ProjectBackend>> {
        self.registry
            .project_backend(name, self.contexts().for_plugin(name, None))
    }

    fn contexts(&self) -> &Contexts {
        self.repositories.contexts()
    }

    fn context(&self, name: &str, uri: &str) -> BuildContext {
        self.contexts().for_plugin(name, Some(uri))
    }

    fn lookup(&self, kind: PluginKind, uri: &str, from: &str) -> Result<PluginEntry> {
        self.registry
            .for_uri(kind, uri)
            .cloned()
            .map_err(|e| e.requested_by(from))
    }

    /// The repository rooted at `uri` (asked for by `from`), built through
    /// [`Repositories`] so requests reuse it.
    fn repository(&self, uri: &str, from: String) -> Result<Built<dyn ArtifactRepository>> {
        let entry = self.lookup(PluginKind::ArtifactRepository, uri, &from)?;
        let plugin = self
            .repositories
            .repository(uri)
            .map_err(|e| self.build_failed(&entry.name, &from, e))?;
        Ok(Built {
            plugin,
            entry,
            from,
        })
    }

    /// `error` (plugin `name`'s build failure, asked for by `from`) with `from` and, when the
    /// plugin has settings, the key they came from ([`LoadedConfig::with_settings`]).
    fn build_failed(&self, name: &str, from: &str, error: Error) -> Error {
        let what = self.loaded.with_settings(name, from, &error);
        error.requested_by(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Loader, Overrides};
    use crate::registry::{Builder, Origin};
    use std::sync::Mutex;

    /// The contexts the factories below were called with, by plugin name.
    static SEEN: Mutex<Vec<(String, BuildContext)>> = Mutex::new(Vec::new());

    fn seen(name: &str, ctx: &BuildContext) -> cairn_plugin_api::Error {
        SEEN.lock().unwrap().push((name.to_owned(), ctx.clone()));
        cairn_plugin_api::Error::invalid(format!("{name} recorded its context"))
    }

    fn entry(name: &str, builder: Builder) -> PluginEntry {
        PluginEntry {
            name: name.into(),
            package: "recorder".into(),
            version: "1".into(),
            origin: Origin::BuiltIn,
            builder,
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // `Jail`'s closure returns `figment::Error`.
    fn every_plugin_gets_the_same_facts_and_its_own_settings_and_uri() {
        let registry = Registry::new([
            entry(
                "track",
                Builder::TrackingStore(Arc::new(|ctx| Err(seen("track", ctx)))),
            ),
            entry(
                "reg",
                Builder::ModelRegistryStore(Arc::new(|ctx| Err(seen("reg", ctx)))),
            ),
            entry(
                "dest",
                Builder::ArtifactRepository(Arc::new(|ctx| Err(seen("dest", ctx)))),
            ),
        ])
        .unwrap();
        figment::Jail::expect_with(|j| {
            j.clear_env();
            j.create_file("cairn.toml", "[settings.reg]\nk = 1\n")?;
            let mut overrides = Overrides::default();
            overrides.set(
                "store.backend_store_uri",
                "--backend-store-uri",
                "track://t",
            );
            overrides.set(
                "store.registry_store_uri",
                "--registry-store-uri",
                "reg://r",
            );
            overrides.set(
                "store.artifacts_destination",
                "--artifacts-destination",
                "dest://d",
            );
            let loaded = Loader::new(j.directory())
                .overrides(overrides)
                .load()
                .unwrap();
            let assembly = Assembly::with_registry(&loaded, registry.clone()).unwrap();
            let errors = [
                assembly.tracking_store().err().unwrap().to_string(),
                assembly.registry_store().err().unwrap().to_string(),
                assembly.artifacts_destination().err().unwrap().to_string(),
            ];
            assert!(
                errors[1].contains("for --registry-store-uri reg://r, with `settings.reg` (in "),
                "{errors:?}"
            );
            let seen = std::mem::take(&mut *SEEN.lock().unwrap());
            let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["track", "reg", "dest"]);
            for ((name, ctx), uri) in seen.iter().zip(["track://t", "reg://r", "dest://d"]) {
                assert_eq!(ctx.uri.as_deref(), Some(uri), "{name}");
                assert_eq!(ctx.tracking_uri.as_deref(), Some("track://t"), "{name}");
                assert_eq!(
                    ctx.default_artifact_root.as_deref(),
                    Some(MLFLOW_ARTIFACTS_ROOT),
                    "{name}"
                );
                let settings = if name == "reg" {
                    serde_json::json!({"k": 1})
                } else {
                    serde_json::json!({})
                };
                assert_eq!(ctx.settings, settings, "{name}");
            }
            Ok(())
        });
    }
}
