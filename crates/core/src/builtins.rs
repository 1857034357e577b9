//! The built-in plugins: which are linked into this binary, and which Cairn knows of at all.
//!
//! Built-in plugins register their [`cairn_plugin_api::PluginFactory`] with
//! `inventory`. A plugin crate that nothing references is not linked, and its registrations
//! silently vanish (in every profile). The `use ... as _` lines below reference each enabled
//! plugin crate from this library, which both the `cairn` binary and the tests link, so the
//! registrations survive. Adding a built-in plugin means: a cargo feature of `cairn-core`, one
//! `use` line here, and one row per registration in [`KNOWN`].

#[cfg(feature = "store-sqlite")]
use cairn_store_sqlite as _;

#[cfg(feature = "store-postgres")]
use cairn_store_postgres as _;

#[cfg(feature = "artifacts-local")]
use cairn_artifacts_local as _;

#[cfg(feature = "artifacts-s3")]
use cairn_artifacts_s3 as _;

#[cfg(feature = "flavor-onnx")]
use cairn_flavor_onnx as _;

#[cfg(feature = "backend-k8s")]
use cairn_backend_k8s as _;

#[cfg(feature = "flavor-pyfunc")]
use cairn_flavor_pyfunc as _;

use cairn_plugin_api::{PluginFactory, PluginKind};

/// Every built-in plugin's factory: those the linked plugin crates registered with
/// `inventory`, then core's own (the run-context providers of [`crate::run_context`] and the
/// `local` project backend).
pub fn factories() -> impl Iterator<Item = &'static PluginFactory> {
    cairn_plugin_api::factory::builtin_factories()
        .chain(crate::run_context::BUILTIN)
        .chain(std::iter::once(&crate::projects::local::BUILTIN))
}

/// A built-in plugin Cairn ships, whether or not this binary was compiled with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownBuiltin {
    /// The plugin's kind.
    pub kind: PluginKind,
    /// The scheme or name it registers.
    pub name: &'static str,
    /// The package that provides it.
    pub package: &'static str,
    /// The cargo feature of `cairn-core` that links it.
    pub feature: &'static str,
    /// Whether that feature is on in this build.
    pub enabled: bool,
}

/// Every registration of every built-in plugin crate, with the feature that links it.
///
/// Used to tell "compiled out of this binary" from "unknown", and (in tests) to prove that
/// every enabled built-in really registered.
pub const KNOWN: &[KnownBuiltin] = &[
    KnownBuiltin {
        kind: PluginKind::TrackingStore,
        name: "sqlite",
        package: "cairn-store-sqlite",
        feature: "store-sqlite",
        enabled: cfg!(feature = "store-sqlite"),
    },
    KnownBuiltin {
        kind: PluginKind::ModelRegistryStore,
        name: "sqlite",
        package: "cairn-store-sqlite",
        feature: "store-sqlite",
        enabled: cfg!(feature = "store-sqlite"),
    },
    KnownBuiltin {
        kind: PluginKind::TrackingStore,
        name: "postgresql",
        package: "cairn-store-postgres",
        feature: "store-postgres",
        enabled: cfg!(feature = "store-postgres"),
    },
    KnownBuiltin {
        kind: PluginKind::ModelRegistryStore,
        name: "postgresql",
        package: "cairn-store-postgres",
        feature: "store-postgres",
        enabled: cfg!(feature = "store-postgres"),
    },
    KnownBuiltin {
        kind: PluginKind::TrackingStore,
        name: "postgres",
        package: "cairn-store-postgres",
        feature: "store-postgres",
        enabled: cfg!(feature = "store-postgres"),
    },
    KnownBuiltin {
        kind: PluginKind::ModelRegistryStore,
        name: "postgres",
        package: "cairn-store-postgres",
        feature: "store-postgres",
        enabled: cfg!(feature = "store-postgres"),
    },
    KnownBuiltin {
        kind: PluginKind::ArtifactRepository,
        name: "file",
        package: "cairn-artifacts-local",
        feature: "artifacts-local",
        enabled: cfg!(feature = "artifacts-local"),
    },
    KnownBuiltin {
        kind: PluginKind::ArtifactRepository,
        name: "s3",
        package: "cairn-artifacts-s3",
        feature: "artifacts-s3",
        enabled: cfg!(feature = "artifacts-s3"),
    },
    KnownBuiltin {
        kind: PluginKind::ModelFlavor,
        name: "onnx",
        package: "cairn-flavor-onnx",
        feature: "flavor-onnx",
        enabled: cfg!(feature = "flavor-onnx"),
    },
    KnownBuiltin {
        kind: PluginKind::ProjectBackend,
        name: "kubernetes",
        package: "cairn-backend-k8s",
        feature: "backend-k8s",
        enabled: cfg!(feature = "backend-k8s"),
    },
    KnownBuiltin {
        kind: PluginKind::ModelFlavor,
        name: "python_function",
        package: "cairn-flavor-pyfunc",
        feature: "flavor-pyfunc",
        enabled: cfg!(feature = "flavor-pyfunc"),
    },
];

/// The known built-in serving `(kind, name)` if this binary was compiled without it.
pub fn compiled_out(kind: PluginKind, name: &str) -> Option<&'static KnownBuiltin> {
    KNOWN
        .iter()
        .find(|k| !k.enabled && k.kind == kind && k.name == name)
}

/// The known built-ins this binary was compiled without.
pub fn all_compiled_out() -> impl Iterator<Item = &'static KnownBuiltin> {
    KNOWN.iter().filter(|k| !k.enabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_are_unique_per_kind() {
        for (i, a) in KNOWN.iter().enumerate() {
            for b in &KNOWN[i + 1..] {
                assert!(
                    (a.kind, a.name) != (b.kind, b.name),
                    "{} {} listed twice",
                    a.kind,
                    a.name
                );
            }
        }
    }

    #[test]
    fn compiled_out_matches_the_feature() {
        assert_eq!(
            compiled_out(PluginKind::TrackingStore, "sqlite").is_some(),
            !cfg!(feature = "store-sqlite")
        );
        assert!(compiled_out(PluginKind::TrackingStore, "nosuch").is_none());
        assert_eq!(
            compiled_out(PluginKind::ArtifactRepository, "file").is_some(),
            !cfg!(feature = "artifacts-local")
        );
        assert_eq!(
            compiled_out(PluginKind::ArtifactRepository, "s3").is_some(),
            !cfg!(feature = "artifacts-s3")
        );
    }
}
