//! The `abi_stable` types of the boundary: the root module and the object vtable. Nothing
//! outside [`crate::ffi`] sees them.

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, RResult, RSlice, RStr, RString, RVec};
use abi_stable::{StableAbi, declare_root_module_statics, package_version_strings, sabi_trait};

pub use abi_stable::library::LibHeader;
#[cfg(test)]
pub use abi_stable::library::ROOT_MODULE_LOADER_NAME;

/// The root module a plugin library exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginLibRef, prefix_fields = PluginLibPrefix)))]
#[sabi(missing_field(panic))]
pub struct PluginLib {
    /// The library's [`ABI_VERSION`](super::ABI_VERSION).
    pub abi_version: u32,
    /// The library's [`LibraryDescription`](super::LibraryDescription) as JSON.
    pub describe: extern "C" fn() -> RString,
    /// Builds plugin number `index` of the description from a `BuildContext` as JSON; an error
    /// is an `ErrorRecord` as JSON.
    #[sabi(last_prefix_field)]
    pub build: extern "C" fn(index: u32, context: RStr<'_>) -> RResult<ObjectBox, RString>,
}

impl RootModule for PluginLibRef {
    declare_root_module_statics! {PluginLibRef}
    const BASE_NAME: &'static str = "cairn_plugin";
    const NAME: &'static str = "cairn_plugin";
    // `cairn-plugin-api`'s own version: the interface crate a library was built against.
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// Every object across the boundary: a plugin instance, a submitted run, a loaded model, a
/// stream. Errors are `ErrorRecord` JSON.
#[sabi_trait]
pub trait FfiObject: Send + Sync {
    /// Calls method `method` with `request`; returns the response bytes.
    fn call(&self, method: u32, request: RSlice<'_, u8>) -> RResult<RVec<u8>, RString>;

    /// Calls method `method`, which returns another object.
    #[sabi(last_prefix_field)]
    fn open(&self, method: u32, request: RSlice<'_, u8>) -> RResult<ObjectBox, RString>;
}

/// An owned object: the `abi_stable` trait object of [`FfiObject`].
pub type ObjectBox = FfiObject_TO<'static, RBox<()>>;
