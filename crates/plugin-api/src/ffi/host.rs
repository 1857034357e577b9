//! The host side: loading a plugin library and calling the objects it builds.
//!
//! This is what `cairn-core`'s loader uses; it wraps [`Object`]s in types that implement the
//! ordinary plugin traits. Calls are synchronous and may block for as long as the plugin's
//! method runs, so an async host makes them on a thread that may block.
//!
//! A library is loaded once and never unloaded: objects and function pointers from it stay
//! valid for the life of the process.

use super::abi::{ObjectBox, PluginLibRef};
use super::{ABI_VERSION, LibraryDescription};
use crate::error::ErrorRecord;
use crate::{BuildContext, Error, Result};
use abi_stable::library::{LibraryError, RootModule, abi_header_from_path};
use abi_stable::std_types::{RResult, RSlice, RStr, RString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a file could not be loaded as a plugin library. `Display` is one line that names the
/// cause (and both versions for a mismatch); [`LoadError::detail`] has the long form when
/// there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadError {
    /// No file at the path.
    Missing,
    /// The path is a directory.
    NotAFile,
    /// The dynamic loader refused the file (not a shared library, wrong architecture, a
    /// missing dependency); the loader's message.
    NotALibrary(String),
    /// A shared library that exports no root module: not built with `export_plugins!`.
    NotAPlugin,
    /// An `abi_stable` library, but of another application's root module.
    OtherModule(String),
    /// Built with an `abi_stable` whose own header or C ABI is incompatible with the host's.
    IncompatibleAbiStable(String),
    /// Built against an incompatible `cairn-plugin-api` version.
    ApiVersion {
        /// The plugin's `cairn-plugin-api` version.
        library: String,
        /// The host's.
        host: String,
    },
    /// Built with another [`ABI_VERSION`].
    AbiVersion {
        /// The plugin's ABI version.
        library: u32,
        /// The host's.
        host: u32,
    },
    /// Built with the same ABI version but another wire form: a request or response type
    /// differs (a field renamed, added or retyped), as the schema hashes show.
    Schema {
        /// The plugin's schema hash (empty if it reports none).
        library: String,
        /// The host's.
        host: String,
    },
    /// The root module's layout differs from the host's.
    Layout {
        /// The plugin's `cairn-plugin-api` version.
        library: String,
        /// The host's.
        host: String,
        /// `abi_stable`'s full report of the differences (long).
        detail: String,
    },
    /// The library's root module failed to initialise (returned an error or panicked).
    Init(String),
    /// The library's description could not be read.
    Describe(String),
}

impl LoadError {
    /// The long form of the cause, when there is more than the one-line message (the layout
    /// differences `abi_stable` found), for debug logs.
    pub fn detail(&self) -> Option<&str> {
        match self {
            LoadError::Layout { detail, .. } | LoadError::IncompatibleAbiStable(detail) => {
                Some(detail)
            }
            _ => None,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Missing => f.write_str("the file does not exist"),
            LoadError::NotAFile => f.write_str("it is a directory, not a shared library"),
            LoadError::NotALibrary(why) => {
                write!(f, "it is not a loadable shared library ({why})")
            }
            LoadError::NotAPlugin => f.write_str(
                "it is not a Cairn plugin: it exports no plugin root module (plugin libraries \
                 are built with cairn_plugin_api::export_plugins!)",
            ),
            LoadError::OtherModule(name) => write!(
                f,
                "it is not a Cairn plugin: its abi_stable root module is '{name}', not \
                 'cairn_plugin'"
            ),
            LoadError::IncompatibleAbiStable(_) => f.write_str(
                "it was built with a version of abi_stable whose ABI is incompatible with this \
                 Cairn's",
            ),
            LoadError::ApiVersion { library, host } => write!(
                f,
                "version mismatch: the plugin was built against cairn-plugin-api {library}, \
                 this Cairn uses cairn-plugin-api {host}; rebuild the plugin against {host}"
            ),
            LoadError::AbiVersion { library, host } => write!(
                f,
                "ABI version mismatch: the plugin speaks plugin ABI version {library}, this \
                 Cairn speaks version {host} (cairn-plugin-api {}); rebuild the plugin against \
                 it",
                crate::API_VERSION
            ),
            LoadError::Schema { library, host } => write!(
                f,
                "wire-form mismatch: the plugin's requests and responses (schema {}) differ \
                 from this Cairn's (schema {host}, plugin ABI version {ABI_VERSION}, \
                 cairn-plugin-api {}); rebuild the plugin against this Cairn's \
                 cairn-plugin-api",
                if library.is_empty() {
                    "unknown"
                } else {
                    library
                },
                crate::API_VERSION
            ),
            LoadError::Layout { library, host, .. } => write!(
                f,
                "ABI mismatch: the plugin's root module (cairn-plugin-api {library}) does not \
                 have the layout of this Cairn's (cairn-plugin-api {host}); rebuild the plugin \
                 against cairn-plugin-api {host}"
            ),
            LoadError::Init(why) => write!(f, "its root module failed to initialise: {why}"),
            LoadError::Describe(why) => {
                write!(f, "it did not describe itself correctly: {why}")
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// A loaded plugin library.
pub struct Library {
    path: PathBuf,
    root: PluginLibRef,
    description: LibraryDescription,
}

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Library")
            .field("path", &self.path)
            .field("description", &self.description)
            .finish()
    }
}

/// Whether a library built against `cairn-plugin-api` `library` can be used by a host built
/// against `host`: the same major version, and before 1.0 the same minor version.
pub fn api_versions_compatible(library: &str, host: &str) -> bool {
    fn major_minor(v: &str) -> Option<(u64, u64)> {
        let mut parts = v.split(['.', '-', '+']);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    }
    match (major_minor(library), major_minor(host)) {
        (Some((lmaj, lmin)), Some((hmaj, hmin))) => lmaj == hmaj && (hmaj != 0 || lmin == hmin),
        _ => false,
    }
}

impl Library {
    /// Loads the plugin library at `path`, checks it and reads its description. The library
    /// is never unloaded.
    pub fn load(path: &Path) -> Result<Library, LoadError> {
        match std::fs::metadata(path) {
            Err(_) => return Err(LoadError::Missing),
            Ok(m) if m.is_dir() => return Err(LoadError::NotAFile),
            Ok(_) => {}
        }
        // `abi_header_from_path` leaks the library handle: it is never unloaded.
        let header = abi_header_from_path(path).map_err(|e| match e {
            LibraryError::OpenError { err, .. } => LoadError::NotALibrary(err.to_string()),
            LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin,
            other => LoadError::NotALibrary(other.to_string().trim().to_owned()),
        })?;
        let header = header
            .upgrade()
            .map_err(|e| LoadError::IncompatibleAbiStable(e.to_string().trim().to_owned()))?;
        let consts = header.root_mod_consts();
        if consts.base_name().as_str() != PluginLibRef::BASE_NAME {
            return Err(LoadError::OtherModule(consts.base_name().to_string()));
        }
        let v = header.version_strings();
        let library_api = v.version.as_str().to_owned();
        let host_api = crate::API_VERSION.to_owned();
        if !api_versions_compatible(&library_api, &host_api) {
            return Err(LoadError::ApiVersion {
                library: library_api,
                host: host_api,
            });
        }
        let root = header
            .init_root_module::<PluginLibRef>()
            .map_err(|e| match e {
                LibraryError::AbiInstability(detail) => LoadError::Layout {
                    library: library_api.clone(),
                    host: host_api.clone(),
                    detail: detail.to_string(),
                },
                LibraryError::IncompatibleVersionNumber { .. } => LoadError::ApiVersion {
                    library: library_api.clone(),
                    host: host_api.clone(),
                },
                LibraryError::RootModule { err, .. } => LoadError::Init(err.to_string()),
                other => LoadError::Init(other.to_string().trim().to_owned()),
            })?;
        let abi_version = root.abi_version();
        if abi_version != ABI_VERSION {
            return Err(LoadError::AbiVersion {
                library: abi_version,
                host: ABI_VERSION,
            });
        }
        let json = (root.describe())();
        let description: LibraryDescription = serde_json::from_str(json.as_str())
            .map_err(|e| LoadError::Describe(format!("{e} in {:?}", json.as_str())))?;
        if description.abi_version != abi_version {
            return Err(LoadError::Describe(format!(
                "its description says ABI version {} but its root module says {abi_version}",
                description.abi_version
            )));
        }
        if description.schema_hash != super::schema_hash() {
            return Err(LoadError::Schema {
                library: description.schema_hash,
                host: super::schema_hash().to_owned(),
            });
        }
        Ok(Library {
            path: path.to_owned(),
            root,
            description,
        })
    }

    /// The path it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the library provides.
    pub fn description(&self) -> &LibraryDescription {
        &self.description
    }

    /// Builds plugin number `index` of [`Library::description`] with `ctx`; the plugin's own
    /// error if its factory fails (a panic is an `Internal` error).
    pub fn build(&self, index: usize, ctx: &BuildContext) -> Result<Object> {
        let index = u32::try_from(index)
            .ok()
            .filter(|i| (*i as usize) < self.description.plugins.len())
            .ok_or_else(|| Error::internal(format!("the library has no plugin number {index}")))?;
        let json = serde_json::to_string(ctx)
            .map_err(|e| Error::internal("cannot encode the build context").with_source(e))?;
        let library: Arc<Path> = Arc::from(self.path.as_path());
        match (self.root.build())(index, RStr::from_str(&json)) {
            RResult::ROk(object) => Ok(Object {
                inner: Arc::new(object),
                library,
            }),
            RResult::RErr(e) => Err(decode_error(e, &library)),
        }
    }
}

/// One object of a library: a plugin instance, a submitted run, a loaded model or a stream.
/// Cheap to clone; shared by every clone.
#[derive(Clone)]
pub struct Object {
    inner: Arc<ObjectBox>,
    /// The library's file, named in its internal errors (a panic names the plugin and method).
    library: Arc<Path>,
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Object")
    }
}

impl Object {
    /// Calls `method` with raw `request` bytes; blocks until the plugin answers.
    pub fn call(&self, method: u32, request: &[u8]) -> Result<Vec<u8>> {
        match self.inner.call(method, RSlice::from_slice(request)) {
            RResult::ROk(bytes) => Ok(bytes.into_vec()),
            RResult::RErr(e) => Err(decode_error(e, &self.library)),
        }
    }

    /// Calls `method`, which returns another object; blocks until the plugin answers.
    pub fn open(&self, method: u32, request: &[u8]) -> Result<Object> {
        match self.inner.open(method, RSlice::from_slice(request)) {
            RResult::ROk(object) => Ok(Object {
                inner: Arc::new(object),
                library: self.library.clone(),
            }),
            RResult::RErr(e) => Err(decode_error(e, &self.library)),
        }
    }

    /// Calls `method` with `args` as JSON and decodes the JSON response.
    pub fn call_json<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: u32,
        args: &A,
    ) -> Result<R> {
        decode_response(&self.call(method, &encode_request(args)?)?)
    }

    /// Opens `method` with `args` as JSON.
    pub fn open_json<A: Serialize + ?Sized>(&self, method: u32, args: &A) -> Result<Object> {
        self.open(method, &encode_request(args)?)
    }
}

/// The JSON request for `args` (a tuple of the method's arguments).
pub fn encode_request<A: Serialize + ?Sized>(args: &A) -> Result<Vec<u8>> {
    serde_json::to_vec(args)
        .map_err(|e| Error::internal("cannot encode a plugin request").with_source(e))
}

/// The request of [`TrackingMethod::LogBatch`](super::TrackingMethod::LogBatch): the compact
/// binary form of `(run_id, metrics, params, tags)` (JSON costs more than the rest of the
/// call for a large batch). The response is JSON as usual.
pub fn log_batch_request(
    run_id: &str,
    metrics: &[crate::entities::Metric],
    params: &[crate::entities::Param],
    tags: &[crate::entities::RunTag],
) -> Vec<u8> {
    super::batch::encode(run_id, metrics, params, tags)
}

/// The request of [`ModelMethod::Predict`](super::ModelMethod::Predict): the binary form of
/// `(input, params)` (tensors as raw elements).
pub fn predict_request(
    input: &crate::flavor::ModelData,
    params: &crate::flavor::Params,
) -> Vec<u8> {
    super::tensors::encode(input, Some(params))
}

/// Decodes the binary response of [`ModelMethod::Predict`](super::ModelMethod::Predict).
pub fn decode_predict_response(bytes: &[u8]) -> Result<crate::flavor::ModelData> {
    super::tensors::decode(bytes).map(|(data, _)| data)
}

/// Decodes a JSON response of a plugin.
pub fn decode_response<R: DeserializeOwned>(bytes: &[u8]) -> Result<R> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::internal(format!(
            "the plugin's response could not be decoded (is the plugin's cairn-plugin-api \
             compatible with {}?): {e}",
            crate::API_VERSION
        ))
    })
}

/// A library's error; an internal one (a panic, a protocol failure) also names the library's
/// file, for the log.
fn decode_error(e: RString, library: &Path) -> Error {
    let error: Error = match serde_json::from_str::<ErrorRecord>(e.as_str()) {
        Ok(record) => record.into(),
        Err(_) => Error::internal(format!("the plugin returned an unreadable error: {e}")),
    };
    if error.kind == crate::ErrorKind::Internal {
        error.with_context("library", library.display())
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_are_compatible_within_a_minor_before_one_point_oh() {
        assert!(api_versions_compatible("0.1.0", "0.1.7"));
        assert!(!api_versions_compatible("0.2.0", "0.1.0"));
        assert!(!api_versions_compatible("0.1.0", "0.2.0"));
        assert!(api_versions_compatible("1.4.0", "1.2.0"));
        assert!(!api_versions_compatible("2.0.0", "1.0.0"));
        assert!(!api_versions_compatible("x", "0.1.0"));
    }

    #[test]
    fn load_errors_are_one_line_naming_both_versions() {
        let e = LoadError::ApiVersion {
            library: "0.2.0".into(),
            host: "0.1.0".into(),
        };
        let text = e.to_string();
        assert!(text.contains("0.2.0") && text.contains("0.1.0"), "{text}");
        let e = LoadError::Layout {
            library: "0.1.0".into(),
            host: "0.1.0".into(),
            detail: "line one\nline two".into(),
        };
        assert!(!e.to_string().contains('\n'));
        assert_eq!(e.detail(), Some("line one\nline two"));
        let e = LoadError::AbiVersion {
            library: 999,
            host: ABI_VERSION,
        };
        assert!(e.to_string().contains("999"), "{e}");
        assert!(e.to_string().contains(&ABI_VERSION.to_string()), "{e}");
        let e = LoadError::Schema {
            library: "0123456789abcdef".into(),
            host: super::super::schema_hash().into(),
        };
        let text = e.to_string();
        assert!(text.contains("0123456789abcdef"), "{text}");
        assert!(text.contains(super::super::schema_hash()), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    /// What the host reads from a plugin built before a capability existed: the capabilities
    /// answer without the new field. It loads, and the missing capability reads as `false`.
    #[test]
    fn capabilities_of_a_plugin_built_before_a_capability_existed_still_decode() {
        use crate::artifacts::ArtifactCapabilities;
        use crate::model_registry::RegistryCapabilities;
        use crate::projects::ProjectCapabilities;
        use crate::tracking::TrackingCapabilities;
        let older: ArtifactCapabilities = decode_response(br#"{"multipart_upload":true}"#).unwrap();
        assert_eq!(
            older,
            ArtifactCapabilities {
                multipart_upload: true,
                ..Default::default()
            }
        );
        assert!(!older.presigned_urls);
        let older: TrackingCapabilities = decode_response(br#"{"logged_models":true}"#).unwrap();
        assert!(older.logged_models && !older.datasets);
        let none: RegistryCapabilities = decode_response(b"{}").unwrap();
        assert_eq!(none, RegistryCapabilities::default());
        let none: ProjectCapabilities = decode_response(b"{}").unwrap();
        assert_eq!(none, ProjectCapabilities::default());
        // A newer plugin's unknown capability is ignored, not an error.
        let newer: ArtifactCapabilities =
            decode_response(br#"{"multipart_upload":false,"streaming_list":true}"#).unwrap();
        assert_eq!(newer, ArtifactCapabilities::default());
    }

    #[test]
    fn missing_and_junk_files_are_refused_clearly() {
        let dir = std::env::temp_dir().join(format!("cairn-ffi-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(
            Library::load(&dir.join("nope.so")).unwrap_err(),
            LoadError::Missing
        );
        assert_eq!(Library::load(&dir).unwrap_err(), LoadError::NotAFile);
        let junk = dir.join("junk.so");
        std::fs::write(&junk, b"this is not an ELF file").unwrap();
        let err = Library::load(&junk).unwrap_err();
        assert!(matches!(err, LoadError::NotALibrary(_)), "{err:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
