//! A plugin library with this Cairn's ABI version but another wire-form schema hash: what a
//! library built against a `cairn-plugin-api` release whose request or response types changed
//! (without an ABI version bump) looks like to this one. The loader must refuse it with one line
//! naming both schema hashes.

use cairn_plugin_api::context::RunContext;
use cairn_plugin_api::{BuildContext, Result, RunContextProvider};
use std::collections::BTreeMap;
use std::sync::Arc;

struct Changed;

impl RunContextProvider for Changed {
    fn in_context(&self, _: &RunContext) -> bool {
        true
    }
    fn tags(&self, _: &RunContext) -> Result<BTreeMap<String, String>> {
        Ok(BTreeMap::new())
    }
}

fn build(_: &BuildContext) -> Result<Arc<dyn RunContextProvider>> {
    Ok(Arc::new(Changed))
}

cairn_plugin_api::export_plugins! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    schema_hash: "00c0ffee00c0ffee",
    factories: [RunContextProvider(build) as "changed-wire"],
}
