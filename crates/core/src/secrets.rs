//! Redaction of secrets in configuration values, URIs and messages.
//!
//! Two rules, applied wherever configuration is shown (`cairn config show`, `Debug`, logs,
//! error messages):
//! - any value under a key whose name looks secret (see [`is_secret_key`]) becomes `***`,
//!   whole tables included;
//! - in any string that is a URI, the password of the user-info part and the values of
//!   secret-looking query parameters become `***` (`postgresql://u:***@h/db`).

use serde_json::Value;
use std::borrow::Cow;

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "***";

/// Fragments that make a key name secret, compared case-insensitively against the whole name,
/// so `db_password`, `api_token` and `aws_secret_access_key` are all secret.
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "access_key",
    "api_key",
    "private_key",
    "credential",
];

/// Whether a config key (or query parameter) named `key` holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEY_PARTS.iter().any(|part| key.contains(part))
}

/// `uri` with the password of its user-info and secret query parameters replaced by
/// [`REDACTED`]; strings that are not URIs with such parts are returned unchanged.
pub fn redact_uri(uri: &str) -> Cow<'_, str> {
    let Some(scheme_end) = uri.find("://") else {
        return Cow::Borrowed(uri);
    };
    let authority_start = scheme_end + 3;
    let rest = &uri[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let mut out = String::with_capacity(uri.len());
    out.push_str(&uri[..authority_start]);
    let mut changed = false;
    match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => {
                out.push_str(&authority[..=colon]);
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
                changed = true;
            }
            None => out.push_str(authority),
        },
        None => out.push_str(authority),
    }
    let tail = &rest[authority_len..];
    let (before_fragment, fragment) = match tail.find('#') {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((key, _)) if is_secret_key(key) => {
                        out.push_str(key);
                        out.push('=');
                        out.push_str(REDACTED);
                        changed = true;
                    }
                    _ => out.push_str(pair),
                }
            }
        }
        None => out.push_str(before_fragment),
    }
    out.push_str(fragment);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(uri)
    }
}

/// Redacts `value` in place: secret-named keys at any depth, and passwords inside URIs in
/// every string.
pub fn redact_value(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret_key(key) {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    redact_value(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::String(s) => {
            if let Cow::Owned(redacted) = redact_uri(s) {
                *s = redacted;
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uri_password_is_redacted_and_user_kept() {
        assert_eq!(
            redact_uri("postgresql://alice:s3cr:et@db.example:5432/mlflow"),
            "postgresql://alice:***@db.example:5432/mlflow"
        );
        assert_eq!(
            redact_uri("postgresql+psycopg2://u:p%40ss@h/db?sslmode=require"),
            "postgresql+psycopg2://u:***@h/db?sslmode=require"
        );
    }

    #[test]
    fn uris_without_password_are_unchanged() {
        for uri in [
            "sqlite:///cairn.db",
            "postgresql://alice@h/db",
            "s3://bucket/path",
            "mlflow-artifacts:/",
            "./mlruns",
            "not a uri: at all",
            "http://h/p@x:y",
        ] {
            assert!(matches!(redact_uri(uri), Cow::Borrowed(_)), "{uri}");
        }
    }

    #[test]
    fn secret_query_parameters_are_redacted() {
        assert_eq!(
            redact_uri("postgresql://h/db?user=u&password=pw&sslmode=require#f"),
            "postgresql://h/db?user=u&password=***&sslmode=require#f"
        );
    }

    #[test]
    fn secret_keys_are_recognised_case_insensitively() {
        for key in [
            "password",
            "DB_PASSWORD",
            "api_token",
            "secret_key",
            "aws_secret_access_key",
            "access_key",
            "client_secret",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["user", "host", "busy_timeout_ms", "bucket"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn values_are_redacted_at_any_depth() {
        let mut v = json!({
            "store": {"backend_store_uri": "postgresql://u:pw@h/db"},
            "settings": {
                "s3": {"access_key": "AKIA", "secret_key": "shh", "bucket": "b",
                       "endpoints": ["https://x:y@h/"]},
                "vault": {"token": {"nested": "table"}}
            }
        });
        redact_value(&mut v);
        assert_eq!(
            v,
            json!({
                "store": {"backend_store_uri": "postgresql://u:***@h/db"},
                "settings": {
                    "s3": {"access_key": "***", "secret_key": "***", "bucket": "b",
                           "endpoints": ["https://x:***@h/"]},
                    "vault": {"token": "***"}
                }
            })
        );
    }
}
