//! A plugin library whose root module reports plugin ABI version 999: what a library built
//! against a future, incompatible Cairn looks like to this one. The loader must refuse it with
//! one line naming both ABI versions.

use cairn_plugin_api::context::RunContext;
use cairn_plugin_api::{BuildContext, Result, RunContextProvider};
use std::collections::BTreeMap;
use std::sync::Arc;

struct Future;

impl RunContextProvider for Future {
    fn in_context(&self, _: &RunContext) -> bool {
        true
    }
    fn tags(&self, _: &RunContext) -> Result<BTreeMap<String, String>> {
        Ok(BTreeMap::new())
    }
}

fn build(_: &BuildContext) -> Result<Arc<dyn RunContextProvider>> {
    Ok(Arc::new(Future))
}

cairn_plugin_api::export_plugins! {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    abi_version: 999,
    factories: [RunContextProvider(build) as "from-the-future"],
}
