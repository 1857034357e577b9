//! The store's settings: the `[settings.sqlite]` section of `cairn.toml`.

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
    /// SQLite's `synchronous` for a file database (always in WAL mode): `"normal"` (the
    /// default) or `"full"`.
    pub synchronous: Synchronous,
}

/// When a commit reaches the disk (`PRAGMA synchronous`). Either way the database stays
/// consistent and no acknowledged write is lost when the process crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Commits are not fsynced; the WAL is synced at checkpoints. A power loss or OS crash
    /// may lose the last commits. Fastest.
    #[default]
    Normal,
    /// Every commit is fsynced before it is acknowledged, as MLflow's rollback journal does:
    /// durable across power loss, at the cost of one fsync per write call.
    Full,
}

impl Synchronous {
    /// The `PRAGMA synchronous` value.
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

impl Default for SqliteSettings {
    fn default() -> Self {
        SqliteSettings {
            busy_timeout_ms: 5000,
            readers: 4,
            statement_cache_capacity: 128,
            synchronous: Synchronous::Normal,
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
        ctx.settings = serde_json::json!({"synchronous": "full"});
        assert_eq!(
            ctx.settings::<SqliteSettings>().unwrap().synchronous,
            Synchronous::Full
        );
        ctx.settings = serde_json::json!({"synchronous": "off"});
        let e = ctx.settings::<SqliteSettings>().unwrap_err();
        assert!(
            e.message.contains("synchronous") || e.message.contains("off"),
            "{}",
            e.message
        );
        ctx.settings = serde_json::json!({"reader": 2});
        let e = ctx.settings::<SqliteSettings>().unwrap_err();
        assert!(e.message.contains("reader"), "{}", e.message);
    }
}
