//! The one canonicaliser for artifact paths: every artifact path that reaches Cairn — a proxy
//! URL, a `path` query parameter, the relative part of a `runs:/` URI, an argument of an
//! [`ArtifactRepository`](crate::ArtifactRepository) method — goes through
//! [`canonical_artifact_path`] before it touches storage.
//!
//! MLflow's CVE history is mostly path traversal (`../`, `..\`, `%2e%2e%2f`, double encoding,
//! `;` path parameters, absolute paths). The rules here refuse each of those forms with
//! [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) and MLflow's message
//! `Invalid path`, and turn every accepted path into one canonical spelling.
//!
//! # The rules
//!
//! A path is relative, `/`-separated, and refers to something under a root. It is refused when
//! its text, **or the text after any number of rounds of percent-decoding**, contains
//!
//! - a `..` segment (or a segment of dots and spaces only, such as `...` or `.. `, which
//!   Windows treats as `..`);
//! - a backslash (a Windows separator: `..\x`, `\\server\share`);
//! - a leading `/` (an absolute path) or a drive prefix such as `C:`;
//! - a NUL byte or any other ASCII control character;
//! - `;` (a path parameter, as in `..;/`) or `#` (a URL fragment);
//! - after decoding only: a `.` segment (`%2e`) — nobody spells the current directory that way.
//!
//! **Percent-decoding: decode until stable, never store decoded.** The checks run on the text
//! and then on each successive percent-decoding of it until decoding changes nothing (at most
//! [`MAX_DECODE_ROUNDS`] rounds; a path still changing after that is refused). So
//! `%2e%2e%2f`, `%252e%252e%252f` and deeper encodings are all refused. The path that is
//! *accepted*, however, is the text as given: a file may be called `100%.txt` or `a%20b.txt`
//! (MLflow stores such names literally too), and decoding happens only for the checks. A
//! caller that holds a still-encoded URL path decodes it exactly once first, with
//! [`canonical_url_path`].
//!
//! **Canonical form.** Empty segments and `.` segments of the text are dropped, so `a//b/./c/`
//! becomes `a/b/c`. The root itself canonicalises to the empty string (from `""`, `.`, `./`).
//! Canonicalising a canonical path returns it unchanged.
//!
//! A repository must still check that what a canonical path *resolves to* stays under its root
//! (a symlink inside a local root may point elsewhere); the canonicaliser only sees text.

use crate::{Error, Result};
use std::borrow::Cow;

/// How many rounds of percent-decoding the checks follow before refusing a path that keeps
/// changing. Real names never need more than one.
pub const MAX_DECODE_ROUNDS: usize = 8;

/// MLflow's message for a refused artifact path (`validate_path_is_safe`).
pub const INVALID_PATH_MESSAGE: &str = "Invalid path";

/// The scheme that selects a store or repository plugin for `uri`, as MLflow selects it: the
/// URI scheme in lower case, with a `+driver` suffix dropped (`postgresql+psycopg2://` selects
/// `postgresql`). A plain path with no scheme selects `file`, and so does a one-letter
/// "scheme", which is a Windows drive (`C:\runs`).
///
/// ```
/// use cairn_plugin_api::paths::uri_scheme;
/// assert_eq!(uri_scheme("S3://bucket/x"), "s3");
/// assert_eq!(uri_scheme("/srv/runs"), "file");
/// ```
pub fn uri_scheme(uri: &str) -> String {
    let scheme = match uri.split_once(':') {
        Some((scheme, _)) if is_uri_scheme(scheme) && scheme.len() > 1 => scheme,
        _ => return "file".to_owned(),
    };
    let base = scheme.split('+').next().unwrap_or(scheme);
    base.to_ascii_lowercase()
}

/// RFC 3986: a letter, then letters, digits, `+`, `-` or `.`.
fn is_uri_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The authority (`host[:port]`, with any `user@`) of `uri`: what follows `scheme://` up to
/// the next `/`, `?` or `#`; `""` when there is none (`mlflow-artifacts:/x`,
/// `mlflow-artifacts:///x`, a plain path).
pub fn uri_authority(uri: &str) -> &str {
    match uri.split_once(':') {
        Some((scheme, rest)) if is_uri_scheme(scheme) && scheme.len() > 1 => rest
            .strip_prefix("//")
            .map(|r| r.split(['/', '?', '#']).next().unwrap_or_default())
            .unwrap_or_default(),
        _ => "",
    }
}

/// The canonical form of the relative artifact path `raw`, or `InvalidArgument`
/// ("Invalid path") if it is unsafe in any spelling; see the [module docs](self) for the rules.
///
/// Returns `""` for the root. `raw` is taken as already URL-decoded once (a value from a query
/// string, a JSON body or a trait argument); for a raw URL path use [`canonical_url_path`].
///
/// ```
/// use cairn_plugin_api::paths::canonical_artifact_path;
/// assert_eq!(canonical_artifact_path("a//b/./c/").unwrap(), "a/b/c");
/// assert_eq!(canonical_artifact_path("./").unwrap(), "");
/// assert_eq!(canonical_artifact_path("100%.txt").unwrap(), "100%.txt");
/// assert!(canonical_artifact_path("a/../../etc/passwd").is_err());
/// assert!(canonical_artifact_path("%252e%252e%252fetc").is_err());
/// ```
pub fn canonical_artifact_path(raw: &str) -> Result<String> {
    check(raw, Stage::Text).map_err(|why| refuse(raw, why))?;
    let mut current: Cow<'_, str> = Cow::Borrowed(raw);
    let mut stable = false;
    for _ in 0..MAX_DECODE_ROUNDS {
        let decoded = percent_decode_lossy(&current);
        if decoded == current {
            stable = true;
            break;
        }
        check(&decoded, Stage::Decoded).map_err(|why| refuse(raw, why))?;
        current = Cow::Owned(decoded);
    }
    if !stable {
        return Err(refuse(
            raw,
            "still percent-encoded after the last decoding round",
        ));
    }
    Ok(normalise(raw))
}

/// [`canonical_artifact_path`] of an optional directory argument: `None` and every spelling of
/// the root give `None`, anything else its canonical form.
pub fn canonical_artifact_dir(raw: Option<&str>) -> Result<Option<String>> {
    match raw {
        None => Ok(None),
        Some(raw) => {
            let path = canonical_artifact_path(raw)?;
            Ok((!path.is_empty()).then_some(path))
        }
    }
}

/// The canonical artifact path of a still percent-encoded URL path (the `<path>` of
/// `/api/2.0/mlflow-artifacts/artifacts/<path>` as it appears on the request line).
///
/// Decodes it exactly once, as an HTTP server does (invalid UTF-8 after decoding is refused),
/// then applies [`canonical_artifact_path`] — whose checks decode further, so a
/// double-encoded `%252e%252e%252f` is refused here too.
///
/// ```
/// use cairn_plugin_api::paths::canonical_url_path;
/// assert_eq!(canonical_url_path("dir/a%20b.txt").unwrap(), "dir/a b.txt");
/// assert!(canonical_url_path("%2e%2e%2fsecret").is_err());
/// ```
pub fn canonical_url_path(encoded: &str) -> Result<String> {
    canonical_artifact_path(&percent_decode_utf8(encoded)?)
}

/// One round of percent-decoding of `encoded` (a URL path or a `file:` URI's path), refusing
/// a result that is not UTF-8 with `InvalidArgument` ("Invalid path"). A `%` not followed by
/// two hex digits stays as it is. This only decodes: it checks nothing else.
pub fn percent_decode_utf8(encoded: &str) -> Result<String> {
    match percent_decode(encoded) {
        Cow::Borrowed(_) => Ok(encoded.to_owned()),
        Cow::Owned(bytes) => String::from_utf8(bytes)
            .map_err(|_| refuse(encoded, "not UTF-8 after percent-decoding")),
    }
}

/// `base` and `rel`, both canonicalised, joined with one `/` (either may be the root `""`).
///
/// ```
/// use cairn_plugin_api::paths::join_artifact_path;
/// assert_eq!(join_artifact_path("1/abc/artifacts", "model/MLmodel").unwrap(),
///            "1/abc/artifacts/model/MLmodel");
/// assert!(join_artifact_path("1/abc", "../other").is_err());
/// ```
pub fn join_artifact_path(base: &str, rel: &str) -> Result<String> {
    let base = canonical_artifact_path(base)?;
    let rel = canonical_artifact_path(rel)?;
    Ok(match (base.is_empty(), rel.is_empty()) {
        (true, _) => rel,
        (_, true) => base,
        _ => format!("{base}/{rel}"),
    })
}

/// `base` with `parts` appended as path segments, one `/` between each (MLflow's
/// `append_to_uri_path`): how stores derive experiment, run and model artifact locations.
pub fn append_uri_path(base: &str, parts: &[&str]) -> String {
    let mut out = base.to_string();
    for p in parts {
        if !out.ends_with('/') {
            out.push('/');
        }
        out.push_str(p.trim_start_matches('/'));
    }
    out
}

/// The last segment of a canonical path (`""` for the root).
pub fn file_name(canonical: &str) -> &str {
    canonical.rsplit('/').next().unwrap_or("")
}

/// The parent of a canonical path (`""` for a top-level entry and for the root).
pub fn parent(canonical: &str) -> &str {
    canonical.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The text as given.
    Text,
    /// The text after one or more rounds of percent-decoding.
    Decoded,
}

/// Why `s` is unsafe at `stage`, or `Ok`.
fn check(s: &str, stage: Stage) -> std::result::Result<(), &'static str> {
    for c in s.chars() {
        match c {
            '\0' => return Err("contains a NUL byte"),
            '\\' => return Err("contains a backslash"),
            ';' => return Err("contains a `;` path parameter"),
            '#' => return Err("contains a `#`"),
            c if c.is_ascii_control() => return Err("contains a control character"),
            _ => {}
        }
    }
    if s.starts_with('/') {
        return Err("is absolute");
    }
    // The first segment that stays after normalising (`./C:` is `C:`).
    let first = s
        .split('/')
        .find(|segment| !segment.is_empty() && *segment != ".")
        .unwrap_or("");
    let b = first.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err("starts with a drive prefix");
    }
    for segment in s.split('/') {
        if segment == ".." {
            return Err("has a `..` segment");
        }
        if segment == "." {
            if stage == Stage::Decoded {
                return Err("has an encoded `.` segment");
            }
            continue;
        }
        // `...`, `.. `, `. .`: Windows strips trailing dots and spaces, which can make `..`.
        if segment.contains('.') && segment.chars().all(|c| c == '.' || c == ' ') {
            return Err("has a segment of dots and spaces only");
        }
    }
    Ok(())
}

fn refuse(raw: &str, why: &str) -> Error {
    Error::invalid(INVALID_PATH_MESSAGE)
        .with_context("path", format!("{raw:?}"))
        .with_context("reason", why)
}

/// Drops empty and `.` segments.
fn normalise(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for segment in raw.split('/').filter(|s| !s.is_empty() && *s != ".") {
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(segment);
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One round of percent-decoding; a `%` not followed by two hex digits stays as it is (as
/// Python's `urllib.parse.unquote` leaves it).
fn percent_decode(s: &str) -> Cow<'_, [u8]> {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// One round of percent-decoding, invalid UTF-8 replaced by U+FFFD (for the checks only).
fn percent_decode_lossy(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode(s)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use proptest::prelude::*;

    #[track_caller]
    fn refused(raw: &str) {
        match canonical_artifact_path(raw) {
            Ok(p) => panic!("{raw:?} was accepted as {p:?}"),
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::InvalidArgument, "{raw:?}");
                assert_eq!(e.message, "Invalid path", "{raw:?}");
            }
        }
    }

    #[track_caller]
    fn accepted(raw: &str, canonical: &str) {
        match canonical_artifact_path(raw) {
            Ok(p) => assert_eq!(p, canonical, "{raw:?}"),
            Err(e) => panic!("{raw:?} was refused: {e} {:?}", e.context),
        }
    }

    #[test]
    fn dot_dot_segments_are_refused() {
        for raw in [
            "..",
            "../x",
            "a/..",
            "a/../b",
            "a/b/../../..",
            "./../x",
            "a//..//b",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn backslash_forms_are_refused() {
        for raw in [
            "..\\x",
            "a\\..\\..\\x",
            "a\\b",
            "\\\\server\\share\\x",
            "\\x",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn percent_encoded_traversal_is_refused() {
        for raw in [
            "%2e%2e%2fetc",
            "%2E%2E%2Fetc",
            "%2e%2e/etc",
            "..%2fetc",
            ".%2e/etc",
            "a/%2e%2e",
            "%2e%2e%5cetc",
            "..%5cetc",
            "%2fetc%2fpasswd",
            "a/%2e/b",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn double_and_deeper_encodings_are_refused() {
        for raw in [
            "%252e%252e%252fetc",
            "%252E%252E%252F",
            "a/%252e%252e/b",
            "%25252e%25252e%25252fetc",
            "%255c",
            "%2500",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn an_encoding_deeper_than_the_rounds_is_refused() {
        // `%` encoded MAX_DECODE_ROUNDS + 1 times over `x`: harmless, but never stable.
        let mut s = "%78".to_string();
        for _ in 0..MAX_DECODE_ROUNDS {
            s = s.replace('%', "%25");
        }
        refused(&s);
        let mut ok = "%78".to_string();
        for _ in 0..MAX_DECODE_ROUNDS - 2 {
            ok = ok.replace('%', "%25");
        }
        accepted(&ok, &ok);
    }

    #[test]
    fn path_parameters_and_fragments_are_refused() {
        for raw in [
            "..;/x",
            "a;jsessionid=1/b",
            "a/b;",
            "%3b",
            "a#b",
            "a%23b",
            "%253b",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn absolute_paths_are_refused() {
        for raw in [
            "/",
            "/x",
            "/etc/passwd",
            "//server/share",
            "C:\\x",
            "C:/x",
            "c:x",
            "./a:",
            ".//./C:/x",
            "%2fx",
            "C%3a/x",
            "a:b",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn nul_and_control_characters_are_refused() {
        for raw in [
            "a\0b", "a%00b", "a%2500b", "a\nb", "a%0ab", "a\rb", "\u{7f}",
        ] {
            refused(raw);
        }
    }

    #[test]
    fn dot_and_space_only_segments_are_refused() {
        for raw in ["...", "a/.../b", ".. ", ". .", "a/.. /b"] {
            refused(raw);
        }
    }

    #[test]
    fn separators_and_dots_are_collapsed() {
        accepted("a//b", "a/b");
        accepted("a/./b", "a/b");
        accepted("./a/b/", "a/b");
        accepted("a/b//", "a/b");
        accepted(".", "");
        accepted("./", "");
        accepted("", "");
        accepted(".//./", "");
    }

    #[test]
    fn ordinary_names_are_kept_as_given() {
        accepted("model/MLmodel", "model/MLmodel");
        accepted("a b/c d.txt", "a b/c d.txt");
        accepted("ünï cødé/日本語.txt", "ünï cødé/日本語.txt");
        accepted("100%.txt", "100%.txt");
        accepted("a%20b.txt", "a%20b.txt");
        accepted("a%zz", "a%zz");
        accepted(".hidden/..data", ".hidden/..data");
        accepted("a..b/x..", "a..b/x..");
        accepted("ab:c/d:e", "ab:c/d:e");
        accepted("1/abc/artifacts", "1/abc/artifacts");
    }

    #[test]
    fn url_paths_are_decoded_once() {
        assert_eq!(canonical_url_path("a%20b/c%2Fd").unwrap(), "a b/c/d");
        assert_eq!(canonical_url_path("100%25.txt").unwrap(), "100%.txt");
        // Decoded once to `%2e%2e%2f`, which the checks decode further and refuse.
        for raw in [
            "%2e%2e%2f",
            "%252e%252e%252f",
            "..%2f",
            "%5c",
            "%00",
            "%3b",
            "%ff",
        ] {
            let e = canonical_url_path(raw).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{raw}");
        }
    }

    #[test]
    fn dirs_join_and_split() {
        assert_eq!(canonical_artifact_dir(None).unwrap(), None);
        assert_eq!(canonical_artifact_dir(Some("./")).unwrap(), None);
        assert_eq!(
            canonical_artifact_dir(Some("a/")).unwrap().as_deref(),
            Some("a")
        );
        assert!(canonical_artifact_dir(Some("../a")).is_err());
        assert_eq!(join_artifact_path("", "a").unwrap(), "a");
        assert_eq!(join_artifact_path("a/", "").unwrap(), "a");
        assert_eq!(join_artifact_path("a", "b/c").unwrap(), "a/b/c");
        assert!(join_artifact_path("/a", "b").is_err());
        assert_eq!(file_name("a/b/c.txt"), "c.txt");
        assert_eq!(file_name("c.txt"), "c.txt");
        assert_eq!(parent("a/b/c.txt"), "a/b");
        assert_eq!(parent("c.txt"), "");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Whatever is accepted is canonical: relative, no empty, `.` or `..` segment, no
        /// backslash, and canonicalising it again changes nothing.
        #[test]
        fn accepted_paths_are_canonical_and_stable(
            raw in r"[a-c./\\%2eE5fF;#: \x00]{0,16}"
        ) {
            if let Ok(p) = canonical_artifact_path(&raw) {
                prop_assert!(!p.starts_with('/'));
                prop_assert!(!p.contains('\\'));
                prop_assert!(!p.contains('\0'));
                for segment in p.split('/') {
                    prop_assert!(p.is_empty() || !segment.is_empty(), "{p:?}");
                    prop_assert!(segment != "." && segment != "..", "{p:?}");
                }
                prop_assert_eq!(canonical_artifact_path(&p).unwrap(), p.clone());
                let mut decoded = p.clone();
                for _ in 0..MAX_DECODE_ROUNDS {
                    decoded = percent_decode_lossy(&decoded);
                    prop_assert!(decoded.split('/').all(|s| s != ".."), "{p:?} decodes to {decoded:?}");
                }
            }
        }
    }
}
