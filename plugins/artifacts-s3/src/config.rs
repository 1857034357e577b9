//! The repository's settings (the `[settings.s3]` section of `cairn.toml`) and how they combine
//! with the environment.
//!
//! Precedence, highest first: a key in `[settings.s3]`; for the endpoint, MLflow's
//! `MLFLOW_S3_ENDPOINT_URL`, then `AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`; the other
//! `AWS_*` variables as `object_store` reads them (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
//! `AWS_ALLOW_HTTP`, web identity and container/instance credentials, ...); then defaults.

use serde::Deserialize;
use std::fmt;

/// A secret setting: usable, but never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Settings of the S3 artifact repository. Unknown keys are refused. Every key is optional.
///
/// Precedence, highest first: a key here; for the endpoint, MLflow's `MLFLOW_S3_ENDPOINT_URL`,
/// then `AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`; the other `AWS_*` variables as
/// `object_store` reads them (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ALLOW_HTTP`, web identity and
/// container/instance credentials, ...); then the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// The S3 endpoint, for S3-compatible servers (MinIO, Ceph, R2, moto, ...), e.g.
    /// `http://127.0.0.1:9000`. Unset: the environment's endpoint (see the module docs), else
    /// AWS.
    pub endpoint_url: Option<String>,
    /// The region requests are signed for. Unset: `AWS_REGION`/`AWS_DEFAULT_REGION`, else
    /// `us-east-1`.
    pub region: Option<String>,
    /// Whether plain-HTTP endpoints are allowed. Unset: allowed exactly when the configured
    /// endpoint itself is an `http://` URL (or `AWS_ALLOW_HTTP` says so).
    pub allow_http: Option<bool>,
    /// Path-style addressing (`https://endpoint/bucket/key`, the default, which every
    /// S3-compatible server supports); `false` uses virtual-hosted style
    /// (`https://bucket.endpoint/key`).
    pub force_path_style: bool,
    /// Static credentials; unset, the usual AWS environment and instance credentials are used.
    pub access_key_id: Option<String>,
    /// The secret for [`access_key_id`](Self::access_key_id).
    pub secret_access_key: Option<Secret>,
    /// A session token for temporary credentials.
    pub session_token: Option<Secret>,
    /// Send unsigned requests (a public bucket). Presigned URLs are then unavailable.
    pub skip_signature: bool,
    /// Skip TLS certificate verification (also set by MLflow's `MLFLOW_S3_IGNORE_TLS=true`).
    pub allow_invalid_certificates: bool,
    /// Bytes per part of the multipart uploads a large `put` becomes (at least 5 MiB, S3's
    /// minimum). A `put` smaller than this is one plain `PUT`.
    pub part_size: usize,
    /// Parts of one `put` uploaded concurrently. An upload holds at most
    /// `part_size × (max_concurrency + 1)` bytes in memory.
    pub max_concurrency: usize,
    /// The largest part accepted through [`upload_part`] (the part is held in memory while it
    /// is sent; clients normally upload parts straight to S3 with the presigned URLs).
    ///
    /// [`upload_part`]: cairn_plugin_api::ArtifactRepository::upload_part
    pub max_proxied_part_size: usize,
    /// How long the presigned part URLs of a multipart upload stay valid, in seconds.
    pub multipart_url_expiry_secs: u64,
    /// Seconds to wait for a connection.
    pub connect_timeout_secs: u64,
    /// Seconds a request may wait for the next bytes before it fails (there is no limit on a
    /// whole transfer, which may take long for large files).
    pub read_timeout_secs: u64,
}

/// S3's smallest part (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            endpoint_url: None,
            region: None,
            allow_http: None,
            force_path_style: true,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            skip_signature: false,
            allow_invalid_certificates: false,
            part_size: 8 * 1024 * 1024,
            max_concurrency: 3,
            max_proxied_part_size: 64 * 1024 * 1024,
            multipart_url_expiry_secs: 3600,
            connect_timeout_secs: 5,
            read_timeout_secs: 60,
        }
    }
}

impl S3Settings {
    /// The settings' own problems, as a message naming the key.
    pub fn check(&self) -> Result<(), String> {
        if self.part_size < MIN_PART_SIZE {
            return Err(format!(
                "part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum part size)"
            ));
        }
        if self.max_concurrency == 0 {
            return Err("max_concurrency must be at least 1".into());
        }
        if self.max_proxied_part_size == 0 {
            return Err("max_proxied_part_size must be at least 1".into());
        }
        if self.multipart_url_expiry_secs == 0 || self.multipart_url_expiry_secs > MAX_EXPIRY_SECS {
            return Err(format!(
                "multipart_url_expiry_secs must be between 1 and {MAX_EXPIRY_SECS} (7 days)"
            ));
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err("access_key_id and secret_access_key must be set together".into());
        }
        Ok(())
    }
}

/// The longest validity SigV4 allows for a presigned URL: 7 days.
pub const MAX_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// The endpoint to use: the setting, else MLflow's and the AWS SDKs' environment variables in
/// that order. `env` looks a variable up (empty values count as unset).
pub fn resolve_endpoint(
    settings: &S3Settings,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let set = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    set(settings.endpoint_url.clone())
        .or_else(|| set(env("MLFLOW_S3_ENDPOINT_URL")))
        .or_else(|| set(env("AWS_ENDPOINT_URL_S3")))
        .or_else(|| set(env("AWS_ENDPOINT_URL")))
}

/// Whether TLS verification is off: the setting, or MLflow's `MLFLOW_S3_IGNORE_TLS=true`.
pub fn ignore_tls(settings: &S3Settings, env: impl Fn(&str) -> Option<String>) -> bool {
    settings.allow_invalid_certificates
        || env("MLFLOW_S3_IGNORE_TLS").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_api::BuildContext;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn settings_default_reject_unknown_keys_and_hide_secrets() {
        let mut ctx = BuildContext::for_uri("s3://b");
        assert_eq!(ctx.settings::<S3Settings>().unwrap(), S3Settings::default());
        ctx.settings = serde_json::json!({
            "endpoint_url": "http://127.0.0.1:9000",
            "force_path_style": false,
            "access_key_id": "AKIA",
            "secret_access_key": "hunter2",
        });
        let s = ctx.settings::<S3Settings>().unwrap();
        assert_eq!(s.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(!s.force_path_style);
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(s.check().is_ok());
        ctx.settings = serde_json::json!({"endpoint": "http://x"});
        let e = ctx.settings::<S3Settings>().unwrap_err();
        assert!(e.message.contains("endpoint"), "{}", e.message);
    }

    #[test]
    fn checks_name_the_key() {
        let bad = |s: S3Settings| s.check().unwrap_err();
        assert!(
            bad(S3Settings {
                part_size: 1024,
                ..Default::default()
            })
            .contains("part_size")
        );
        assert!(
            bad(S3Settings {
                max_concurrency: 0,
                ..Default::default()
            })
            .contains("max_concurrency")
        );
        assert!(
            bad(S3Settings {
                access_key_id: Some("a".into()),
                ..Default::default()
            })
            .contains("secret_access_key")
        );
    }

    #[test]
    fn endpoint_precedence_is_setting_then_mlflow_then_aws() {
        let all = [
            ("MLFLOW_S3_ENDPOINT_URL", "http://mlflow"),
            ("AWS_ENDPOINT_URL_S3", "http://aws-s3"),
            ("AWS_ENDPOINT_URL", "http://aws"),
        ];
        let with = S3Settings {
            endpoint_url: Some("http://setting".into()),
            ..Default::default()
        };
        let none = S3Settings::default();
        assert_eq!(
            resolve_endpoint(&with, env(&all)).as_deref(),
            Some("http://setting")
        );
        assert_eq!(
            resolve_endpoint(&none, env(&all)).as_deref(),
            Some("http://mlflow")
        );
        assert_eq!(
            resolve_endpoint(&none, env(&all[1..])).as_deref(),
            Some("http://aws-s3")
        );
        assert_eq!(
            resolve_endpoint(&none, env(&all[2..])).as_deref(),
            Some("http://aws")
        );
        assert_eq!(
            resolve_endpoint(&none, env(&[("MLFLOW_S3_ENDPOINT_URL", " ")])),
            None
        );
        assert_eq!(resolve_endpoint(&none, env(&[])), None);
        assert!(ignore_tls(&none, env(&[("MLFLOW_S3_IGNORE_TLS", "True")])));
        assert!(!ignore_tls(
            &none,
            env(&[("MLFLOW_S3_IGNORE_TLS", "false")])
        ));
    }
}
