//! Password hashes: argon2id (PHC strings, what Cairn writes) and werkzeug's
//! `pbkdf2:sha256:<iterations>$<salt>$<hex>` (what MLflow's auth database holds), verified in
//! constant time.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use subtle::ConstantTimeEq;

/// MLflow's minimum password length.
pub const MIN_PASSWORD_LENGTH: usize = 12;

/// The legacy default admin password MLflow shipped, refused at start-up.
pub const LEGACY_DEFAULT_PASSWORD: &str = "password1234";

/// The argon2id PHC string of `password`, with a fresh random salt.
pub fn hash(password: &str) -> String {
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
        .expect("16 bytes always encode as a salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any password")
        .to_string()
}

/// Whether `password` matches `stored` (an argon2 PHC string or a werkzeug PBKDF2 hash); an
/// unknown format never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    if let Some(rest) = stored.strip_prefix("pbkdf2:sha256") {
        return verify_werkzeug(password, rest);
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// `rest` is `:<iterations>$<salt>$<hex>` (or `$<salt>$<hex>`: werkzeug's default 260000).
fn verify_werkzeug(password: &str, rest: &str) -> bool {
    let mut parts = rest.splitn(3, '$');
    let (Some(method), Some(salt), Some(expected)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let iterations = match method.strip_prefix(':') {
        Some(n) => match n.parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => return false,
        },
        None if method.is_empty() => 260_000,
        None => return false,
    };
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut out);
    let actual: String = out.iter().map(|b| format!("{b:02x}")).collect();
    actual.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Why `password` may not be set, if it may not (MLflow's minimum length).
pub fn check_strength(password: &str) -> Option<String> {
    (password.chars().count() < MIN_PASSWORD_LENGTH)
        .then(|| format!("Password must be at least {MIN_PASSWORD_LENGTH} characters long."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify_and_are_salted() {
        let a = hash("correct horse battery");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batterx", &a));
        assert_ne!(a, hash("correct horse battery"));
    }

    #[test]
    fn werkzeug_pbkdf2_hashes_verify() {
        // Made by werkzeug: generate_password_hash("password1234", "pbkdf2:sha256:1000", 8).
        let stored = "pbkdf2:sha256:1000$JJNcTMIM$7bd7db0d3cb97348e3a38c6b825dbed90e9fd8fdf89982a18e1e300fbfd4fcc6";
        assert!(verify("password1234", stored));
        assert!(!verify("password1235", stored));
        assert!(!verify("password1234", &stored.replace(":1000$", ":1001$")));
        assert!(!verify("x", "pbkdf2:sha256:abc$s$00"));
        assert!(!verify("x", "plain"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(check_strength("elevenchars").is_some());
        assert!(check_strength("twelve chars").is_none());
    }
}
