//! The store's settings: `[settings.postgres]`, one table for `postgresql://`, `postgres://`
//! and `postgresql+psycopg2://` URIs (the host hands the plugin serving `postgresql` the
//! `postgres` table and refuses a `[settings.postgresql]` table, naming it).

use serde::Deserialize;

/// Settings of the PostgreSQL store. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSettings {
    /// Most connections the store's pool opens (per store instance, per process).
    pub pool_size: usize,
    /// How long a call waits for a free pooled connection, in ms.
    pub wait_timeout_ms: u64,
    /// How long opening a new connection may take, in ms.
    pub connect_timeout_ms: u64,
    /// PostgreSQL's `statement_timeout` for every statement of the store, in ms (0: none).
    pub statement_timeout_ms: u64,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        PostgresSettings {
            pool_size: 16,
            wait_timeout_ms: 30_000,
            connect_timeout_ms: 10_000,
            statement_timeout_ms: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_api::BuildContext;

    #[test]
    fn settings_default_and_reject_unknown_keys() {
        let mut ctx = BuildContext::for_uri("postgresql://h/db");
        assert_eq!(
            ctx.settings::<PostgresSettings>().unwrap(),
            PostgresSettings::default()
        );
        ctx.settings = serde_json::json!({"pool_size": 4});
        assert_eq!(ctx.settings::<PostgresSettings>().unwrap().pool_size, 4);
        ctx.settings = serde_json::json!({"pool": 4});
        let e = ctx.settings::<PostgresSettings>().unwrap_err();
        assert!(e.message.contains("pool"), "{}", e.message);
    }
}
