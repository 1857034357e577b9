//! # cairn-example-jsonl — a third-party Cairn plugin shipped as a shared library
//!
//! What a vendor writes to ship Cairn plugins without forking Cairn: a crate that depends on
//! `cairn-plugin-api` (feature `ffi`) alone, is built as a `cdylib`, and exports its plugins
//! with one [`cairn_plugin_api::export_plugins!`]. It provides two:
//!
//! - **tracking store, scheme [`SCHEME`]** ([`JsonlStore`]): an append-only JSON-lines event
//!   log. `jsonl:///var/lib/cairn/runs` keeps `events.jsonl` in that directory; every write
//!   appends one event line (so a write is all or nothing), and the state is rebuilt in memory
//!   by replaying the log when the store opens. Searches use the reference evaluator
//!   [`cairn_plugin_api::search::eval`]. It supports datasets, not LoggedModels.
//! - **run-context provider, name [`PROVIDER`]** ([`VendorContext`]): named in
//!   `[run_context] providers`, it tags every run Cairn creates (the server's `runs/create`)
//!   with `vendor.host` (the machine's host name), `vendor.user` (the user, when known) and
//!   any fixed tags from its settings; tags the user gives win.
//!
//! Plugin methods here do blocking file I/O inside their futures, which the FFI glue drives
//! with a plain executor on a host thread that may block; they need no async runtime.
//! See `README.md` for building it, naming it in `cairn.toml` and running `cairn server`.

mod context;
mod store;

pub use context::{VendorContext, VendorSettings};
pub use store::{JsonlSettings, JsonlStore};

use cairn_plugin_api::{BuildContext, Result, RunContextProvider, TrackingStore};
use std::sync::Arc;

/// The URI scheme of the tracking store.
pub const SCHEME: &str = "jsonl";

/// The name of the run-context provider.
pub const PROVIDER: &str = "vendor";

/// Builds the tracking store for `ctx.uri` (`jsonl:///dir` or `jsonl:relative/dir`).
pub fn build_store(ctx: &BuildContext) -> Result<Arc<dyn TrackingStore>> {
    let settings: JsonlSettings = ctx.settings()?;
    let store = JsonlStore::open(
        ctx.require_uri()?,
        ctx.default_artifact_root.as_deref(),
        &settings,
    )?;
    Ok(Arc::new(store))
}

/// Builds the run-context provider from its `[settings.vendor]` table.
pub fn build_provider(ctx: &BuildContext) -> Result<Arc<dyn RunContextProvider>> {
    Ok(Arc::new(VendorContext::new(ctx.settings()?)))
}

cairn_plugin_api::export_plugins! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    factories: [
        TrackingStore(build_store) as "jsonl",
        RunContextProvider(build_provider) as "vendor",
    ],
}
