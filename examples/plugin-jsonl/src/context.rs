//! The `vendor` run-context provider: tags that say where a run was created.

use cairn_plugin_api::context::RunContext;
use cairn_plugin_api::{Result, RunContextProvider};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[settings.vendor]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VendorSettings {
    /// Fixed tags added to every run, e.g. `{ "vendor.team" = "vision" }`.
    pub tags: BTreeMap<String, String>,
    /// Overrides the host name reported as `vendor.host` (tests, containers with random names).
    pub host: Option<String>,
}

/// Adds `vendor.host`, `vendor.user` (when the user is known) and the configured tags.
#[derive(Debug, Clone)]
pub struct VendorContext {
    host: String,
    tags: BTreeMap<String, String>,
}

impl VendorContext {
    /// A provider with `settings`; the host name is read once, here.
    pub fn new(settings: VendorSettings) -> Self {
        VendorContext {
            host: settings.host.unwrap_or_else(host_name),
            tags: settings.tags,
        }
    }
}

/// The machine's host name: `$HOSTNAME`, else `/etc/hostname`, else `unknown`.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

impl RunContextProvider for VendorContext {
    fn in_context(&self, _ctx: &RunContext) -> bool {
        true
    }

    fn tags(&self, ctx: &RunContext) -> Result<BTreeMap<String, String>> {
        let mut tags = self.tags.clone();
        tags.insert("vendor.host".into(), self.host.clone());
        if let Some(user) = &ctx.user {
            tags.insert("vendor.user".into(), user.clone());
        }
        Ok(tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_the_host_the_user_and_the_configured_tags() {
        let provider = VendorContext::new(VendorSettings {
            tags: [("vendor.team".to_owned(), "vision".to_owned())].into(),
            host: Some("build-7".into()),
        });
        let ctx = RunContext {
            user: Some("ada".into()),
            ..RunContext::default()
        };
        assert!(provider.in_context(&ctx));
        let tags = provider.tags(&ctx).unwrap();
        assert_eq!(tags["vendor.host"], "build-7");
        assert_eq!(tags["vendor.user"], "ada");
        assert_eq!(tags["vendor.team"], "vision");
        let anonymous = provider.tags(&RunContext::default()).unwrap();
        assert!(!anonymous.contains_key("vendor.user"));
    }
}
