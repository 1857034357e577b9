//! The repository's settings: the `[settings.file]` section of `cairn.toml`.

use serde::Deserialize;

/// Settings of the local artifact repository. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalSettings {
    /// `fsync` each uploaded file and its directory before the upload counts as done, so a
    /// completed upload survives a power cut (slower; off by default, as in MLflow).
    pub fsync: bool,
    /// Bytes read or written per file system call while streaming (default 1 MiB). A transfer
    /// holds about two of these in memory.
    pub chunk_size: usize,
}

impl Default for LocalSettings {
    fn default() -> Self {
        LocalSettings {
            fsync: false,
            chunk_size: 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_api::BuildContext;

    #[test]
    fn settings_default_and_reject_unknown_keys() {
        let mut ctx = BuildContext::for_uri("/tmp/x");
        assert_eq!(
            ctx.settings::<LocalSettings>().unwrap(),
            LocalSettings::default()
        );
        ctx.settings = serde_json::json!({"fsync": true});
        assert!(ctx.settings::<LocalSettings>().unwrap().fsync);
        ctx.settings = serde_json::json!({"fsnyc": true});
        let e = ctx.settings::<LocalSettings>().unwrap_err();
        assert!(e.message.contains("fsnyc"), "{}", e.message);
    }
}
