//! The store's settings: the `[plugins.sqlite]` section of `cairn.toml`.

use serde::Deserialize;

/// Settings of the SQLite tracking store. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteSettings {
    /// How long a connection waits for a lock held by another process before failing, in ms.
    pub busy_timeout_ms: u64,
    /// Reader connections (each on its own thread) that serve reads concurrently with the one
    /// writer. Ignored for in-memory databases, which use a single connection.
    pub readers: usize,
    /// Prepared statements cached per connection.
    pub statement_cache_capacity: usize,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        SqliteSettings {
            busy_timeout_ms: 5000,
            readers: 4,
            statement_cache_capacity: 128,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_api::BuildContext;

    #[test]
    fn settings_default_and_reject_unknown_keys() {
        let ctx = BuildContext::for_uri("sqlite://");
        assert_eq!(
            ctx.settings::<SqliteSettings>().unwrap(),
            SqliteSettings::default()
        );
        let mut ctx = BuildContext::for_uri("sqlite://");
        ctx.settings = serde_json::json!({"readers": 2});
        assert_eq!(ctx.settings::<SqliteSettings>().unwrap().readers, 2);
        ctx.settings = serde_json::json!({"reader": 2});
        let e = ctx.settings::<SqliteSettings>().unwrap_err();
        assert!(e.message.contains("reader"), "{}", e.message);
    }
}
