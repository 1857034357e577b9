//! Dynamic plugins: the stable ABI between Cairn and plugins shipped as shared libraries.
//!
//! This module (feature `ffi`) is the only place in Cairn that defines the FFI; the host's
//! loader (`cairn-core`'s `loader` module) is the only place that loads libraries, and it
//! does so through [`host`]. `abi_stable` is used for the layout and version checks and for
//! loading, and it stays behind this module: no `abi_stable` type appears in its public API.
//!
//! # Writing a dynamic plugin
//!
//! A plugin crate depends on `cairn-plugin-api` with the `ffi` feature, is built as a
//! `cdylib`, and exports its plugins with one [`export_plugins!`](crate::export_plugins):
//!
//! ```ignore
//! // Cargo.toml: [lib] crate-type = ["cdylib", "rlib"]
//! //             cairn-plugin-api = { version = "0.1", features = ["ffi"] }
//! cairn_plugin_api::export_plugins! {
//!     name: env!("CARGO_PKG_NAME"),
//!     version: env!("CARGO_PKG_VERSION"),
//!     factories: [
//!         TrackingStore(build_store) as "jsonl",
//!         RunContextProvider(build_provider) as "vendor",
//!     ],
//! }
//! ```
//!
//! Each entry names a [`Build`](crate::Build) variant (the plugin's kind), the ordinary build
//! function, and the scheme or name the plugin serves. An operator names the library in
//! `cairn.toml` (`[[plugins]] path = "..."`) and Cairn uses its plugins exactly like
//! built-ins; `cairn plugins check FILE` describes a library without starting anything.
//!
//! # What a plugin may do inside its methods
//!
//! Every call from the host arrives on a host thread that may block (the host runs library
//! calls under tokio's `block_in_place` or on its blocking pool). The exported glue drives the plugin's future to completion on
//! that thread with `futures_executor::block_on`. So:
//!
//! * blocking I/O (files, a synchronous database driver) is fine;
//! * futures that are woken by the plugin's own threads or channels are fine (the SQLite store
//!   works that way);
//! * **no tokio handle crosses the boundary.** A plugin's copy of tokio cannot see the host's
//!   runtime: `tokio::time::sleep` or a tokio socket polled directly in a plugin method panics
//!   with "no reactor running". A plugin that needs tokio builds its own `Runtime` in its
//!   factory and runs its work there (`runtime.spawn(...)`, then awaits the `JoinHandle`, or
//!   `runtime.block_on(...)` inside the method).
//!
//! Artifact uploads run on a thread the glue starts per upload, so a repository's `put` sees
//! its chunks as an ordinary stream while the host pushes them one by one.
//!
//! A panic in any plugin method or factory is caught at the boundary and reaches the host as an
//! [`ErrorKind::Internal`](crate::ErrorKind::Internal) error naming the panic message, with the
//! plugin and the method as context (the host adds the library's file); the host keeps
//! running. The library's panic hook prints one line for it (`cairn plugin 'x' panicked in
//! list: <message> at <file:line>`), and the default report with its backtrace only when
//! `RUST_BACKTRACE` is set. Libraries are never unloaded.
//!
//! # The ABI
//!
//! The library exports one `abi_stable` root module: [`ABI_VERSION`], a `describe` function
//! returning a [`LibraryDescription`] as JSON, and a `build` function that builds the
//! plugin at an index of that description from a [`BuildContext`](crate::BuildContext) as JSON.
//! Every plugin instance — and every object a call returns (a submitted run, a loaded model,
//! an artifact stream) — is the same thin vtable: `call(method id, request bytes)` returns
//! response bytes or an error, and `open(method id, request bytes)` returns another object.
//! Requests are the serde JSON of a tuple of the trait method's arguments (except
//! `log_batch` and `predict`, sent in compact binary forms of the same tuple); responses are the
//! JSON of its return value; errors are the JSON of [`ErrorRecord`](crate::error::ErrorRecord).
//! `predict` sends its request and response in a binary form too (tensors as raw elements).
//! Method ids are the enums in this module ([`TrackingMethod`], ...), generated with the
//! library-side dispatch and the host-side wrappers from one declaration per trait
//! (`ffi/methods.rs`). Artifact bytes are
//! never buffered whole: a download is a source object the host pulls chunks from
//! ([`StreamMethod::Pull`]), an upload a sink it pushes chunks into ([`StreamMethod::Push`]).
//!
//! The host refuses a library whose `cairn-plugin-api` version differs from its own in the
//! major version (or, before 1.0, the minor version), whose ABI version differs, whose
//! [`schema_hash`] (the digest of its requests' and responses' wire form) differs, or whose
//! root-module layout differs, with one line naming both versions (or hashes).

#![allow(unsafe_code)] // Exporting and loading a shared library's root module.
#![allow(non_local_definitions)] // `abi_stable`'s derives emit impls the lint flags.

mod abi;
mod batch;
mod golden;
pub mod host;
mod methods;
mod plugin;
mod tensors;

pub use methods::{
    ArtifactMethod, BackendMethod, ContextMethod, FlavorMethod, ModelMethod, RegistryMethod,
    SubmittedRunMethod, TrackingMethod,
};

use crate::factory::PluginKind;
use serde::{Deserialize, Serialize};

/// The version of the call protocol (method ids, request and response shapes) on top of the
/// `abi_stable` layout. A host and a library must agree on it exactly. Version 2: the host
/// sends `log_batch` in a compact binary form (see [`TrackingMethod::LogBatch`]). Version 3:
/// `ArtifactRepository::head` crosses the boundary ([`ArtifactMethod::Head`]) and libraries
/// report their [`schema_hash`]; `ModelFlavor::load` takes the parsed `MLmodel`, and
/// `LoadedModel::predict` (with params) sends tensors in a binary form
/// ([`ModelMethod::Predict`]). Version 4: tensor and column elements may be JSON values
/// ([`TensorData::Json`](crate::flavor::TensorData::Json), dtype `json`), which a library built
/// before could not read.
///
/// The wire form of every request and response is recorded in golden files
/// (`crates/plugin-api/abi/`); a test fails when it changes until this version is bumped and
/// the files are written again (`CAIRN_BLESS_ABI=1`).
pub const ABI_VERSION: u32 = 4;

/// The digest of this build's wire form: of the sample request and response of every method
/// and of the boundary's records, as the golden files hold them. A library reports its own
/// in its [`LibraryDescription`]; the host refuses a library whose digest differs from its own
/// (a field renamed, added or retyped on one side), even under the same [`ABI_VERSION`].
pub fn schema_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(golden::schema_hash)
}

/// What a library says about itself: returned by its `describe` function as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryDescription {
    /// The library's package name, e.g. `cairn-example-jsonl`.
    pub name: String,
    /// The library's own version.
    pub version: String,
    /// The `cairn-plugin-api` version it was built against.
    pub api_version: String,
    /// The [`ABI_VERSION`] it was built with.
    pub abi_version: u32,
    /// The [`schema_hash`] of the `cairn-plugin-api` it was built with (empty from a library
    /// too old to report one).
    #[serde(default)]
    pub schema_hash: String,
    /// The plugins it provides, in export order; the index is what `build` takes.
    pub plugins: Vec<PluginDescription>,
}

/// One plugin of a library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginDescription {
    /// The plugin's kind.
    pub kind: PluginKind,
    /// The scheme (stores, repositories) or name (other kinds) it serves.
    pub name: String,
}

/// One plugin a library exports: its scheme or name and its build function.
#[derive(Debug, Clone, Copy)]
pub struct ExportedFactory {
    /// The scheme or name the plugin serves.
    pub name: &'static str,
    /// The build function; its variant is the kind.
    pub build: crate::Build,
}

/// Everything a library exports; built by [`export_plugins!`](crate::export_plugins).
#[derive(Debug)]
pub struct Exports {
    /// The library's package name.
    pub name: &'static str,
    /// The library's version.
    pub version: &'static str,
    /// The ABI version it reports (always [`ABI_VERSION`] outside Cairn's own tests).
    pub abi_version: u32,
    /// The schema hash it reports instead of its own [`schema_hash`] (only Cairn's own tests
    /// set it, to stand for a library with another wire form).
    pub schema_hash: Option<&'static str>,
    /// The plugins, in order.
    pub factories: &'static [ExportedFactory],
}

impl Exports {
    /// The description the library's `describe` function returns.
    pub fn description(&self) -> LibraryDescription {
        LibraryDescription {
            name: self.name.to_owned(),
            version: self.version.to_owned(),
            api_version: crate::API_VERSION.to_owned(),
            abi_version: self.abi_version,
            schema_hash: self.schema_hash.unwrap_or_else(schema_hash).to_owned(),
            plugins: self
                .factories
                .iter()
                .map(|f| PluginDescription {
                    kind: f.build.kind(),
                    name: f.name.to_owned(),
                })
                .collect(),
        }
    }
}

/// Defines a `#[repr(u32)]` method-id enum with conversions from and to `u32`.
macro_rules! method_ids {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $id:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $id,)*
        }

        impl $name {
            /// Every method, in id order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The method with `id`, if this version knows it.
            pub fn from_id(id: u32) -> Option<Self> {
                match id {
                    $($id => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// The id that crosses the boundary.
            pub fn id(self) -> u32 {
                self as u32
            }
        }
    };
}

method_ids! {
    /// Methods of stream objects: sources (downloads, log lines) and sinks (uploads). Their
    /// requests and responses are raw bytes, not JSON, except where noted.
    StreamMethod {
        /// Source: the next item. An empty response is the end of the stream; otherwise the
        /// first byte is `1` and the rest is the item (a chunk of bytes, or a UTF-8 line).
        Pull = 1,
        /// Source: `()` → the size in bytes if known up front (`Option<u64>` as JSON).
        Size = 2,
        /// Sink: the request is the next chunk; the response is empty. An error means the
        /// plugin stopped reading; the host then calls `Finish` to learn why.
        Push = 3,
        /// Sink: no more chunks; waits for the plugin's call to end and returns its result as
        /// JSON (bytes written for a `put`, the ETag for an `upload_part`).
        Finish = 4,
        /// Sink: the host's stream failed; the request is the `ErrorRecord` JSON. The plugin's
        /// call sees an `Err` item (and so discards the upload); the response is empty.
        Abort = 5,
    }
}

/// Exports plugins from a `cdylib`: the one thing a dynamic plugin library writes.
///
/// ```ignore
/// cairn_plugin_api::export_plugins! {
///     name: env!("CARGO_PKG_NAME"),
///     version: env!("CARGO_PKG_VERSION"),
///     factories: [
///         TrackingStore(my_crate::build_store) as "jsonl",
///         RunContextProvider(my_crate::build_provider) as "vendor",
///     ],
/// }
/// ```
///
/// Each factory is `<Kind>(<build function path>) as "<scheme or name>"`, where `<Kind>` is a
/// [`Build`](crate::Build) variant and the function has that variant's signature (the same
/// function a built-in registers). Use it once per library, at the crate root or in any
/// module. See [`ffi`](crate::ffi) for what plugin methods may do.
#[macro_export]
macro_rules! export_plugins {
    (
        name: $name:expr,
        version: $version:expr,
        $(abi_version: $abi:expr,)?
        $(schema_hash: $hash:expr,)?
        factories: [ $( $kind:ident ( $build:path ) as $pname:literal ),* $(,)? ] $(,)?
    ) => {
        const _: () = {
            static __CAIRN_EXPORTS: $crate::ffi::Exports = $crate::ffi::Exports {
                name: $name,
                version: $version,
                abi_version: $crate::__cairn_abi_version!($($abi)?),
                schema_hash: $crate::__cairn_schema_hash!($($hash)?),
                factories: &[
                    $(
                        $crate::ffi::ExportedFactory {
                            name: $pname,
                            build: $crate::Build::$kind($build),
                        },
                    )*
                ],
            };

            struct __CairnExports;

            impl $crate::ffi::__private::ExportsSource for __CairnExports {
                fn exports() -> &'static $crate::ffi::Exports {
                    &__CAIRN_EXPORTS
                }
            }

            // The symbol `abi_stable` looks up (`ROOT_MODULE_LOADER_NAME`); a test in
            // `cairn_plugin_api::ffi` keeps this literal equal to it.
            #[allow(unsafe_code)]
            #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
            static __CAIRN_ROOT_MODULE: $crate::ffi::__private::LibHeader =
                $crate::ffi::__private::lib_header::<__CairnExports>();
        };
    };
}

/// The ABI version an export reports: [`ffi::ABI_VERSION`](crate::ffi::ABI_VERSION) unless a
/// test overrides it.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_abi_version {
    () => {
        $crate::ffi::ABI_VERSION
    };
    ($abi:expr) => {
        $abi
    };
}

/// The schema hash an export reports: its own unless a test overrides it.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_schema_hash {
    () => {
        None
    };
    ($hash:expr) => {
        Some($hash)
    };
}

/// What [`export_plugins!`](crate::export_plugins) expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use super::abi::LibHeader;
    pub use super::methods::AsArg;
    pub use super::plugin::{ExportsSource, lib_header};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_ids_round_trip_and_are_unique() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(
            all: &[T],
            id: fn(T) -> u32,
            from: fn(u32) -> Option<T>,
        ) {
            let mut seen = std::collections::BTreeSet::new();
            for m in all {
                assert!(seen.insert(id(*m)), "{m:?} reuses an id");
                assert_eq!(from(id(*m)), Some(*m));
            }
            assert_eq!(from(0), None);
        }
        check(
            TrackingMethod::ALL,
            TrackingMethod::id,
            TrackingMethod::from_id,
        );
        check(
            ArtifactMethod::ALL,
            ArtifactMethod::id,
            ArtifactMethod::from_id,
        );
        check(
            ContextMethod::ALL,
            ContextMethod::id,
            ContextMethod::from_id,
        );
        check(
            RegistryMethod::ALL,
            RegistryMethod::id,
            RegistryMethod::from_id,
        );
        check(
            BackendMethod::ALL,
            BackendMethod::id,
            BackendMethod::from_id,
        );
        check(
            SubmittedRunMethod::ALL,
            SubmittedRunMethod::id,
            SubmittedRunMethod::from_id,
        );
        check(FlavorMethod::ALL, FlavorMethod::id, FlavorMethod::from_id);
        check(ModelMethod::ALL, ModelMethod::id, ModelMethod::from_id);
        check(StreamMethod::ALL, StreamMethod::id, StreamMethod::from_id);
    }

    #[test]
    fn exported_symbol_is_the_one_abi_stable_looks_up() {
        assert_eq!(
            abi::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
