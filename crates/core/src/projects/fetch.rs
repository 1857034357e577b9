//! Where a project's files come from: a local directory, a `.zip` archive, or a Git repository
//! (`https://`, `http://`, `file://`, `ssh://`, `git@host:path`) at a version, with
//! `#subdirectory`.
//!
//! Git goes through the `git` executable (see ARCHITECTURE.md): a fresh clone per run into the
//! storage directory, then a checkout of `--version` (a commit, branch or tag) or the default
//! branch, as MLflow's `_fetch_git_repo` does.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A project fetched to a local directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The project directory (the subdirectory of a checkout).
    pub dir: PathBuf,
    /// The Git facts, for a Git project.
    pub git: Option<GitSource>,
}

/// Where a Git project came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// The repository URL (without `#subdirectory`).
    pub url: String,
    /// The checked-out commit (full hash).
    pub commit: String,
    /// `--version`, when it names a branch.
    pub branch: Option<String>,
    /// The subdirectory (`""` for the root).
    pub subdirectory: String,
}

/// Whether `uri` names a `.zip` archive (a local path, `file:`, or any URI Cairn downloads),
/// as MLflow decides: by the name.
pub fn is_zip_uri(uri: &str) -> bool {
    let base = uri.split('#').next().unwrap_or(uri);
    base.to_ascii_lowercase().ends_with(".zip")
}

/// The local path of a `.zip` URI, or `None` when it must be downloaded first.
pub fn local_zip(uri: &str) -> Option<&str> {
    let base = uri.split('#').next().unwrap_or(uri);
    if let Some(path) = base.strip_prefix("file://") {
        return path.starts_with('/').then_some(path);
    }
    if let Some(path) = base.strip_prefix("file:") {
        return Some(path);
    }
    let scheme = base.split_once(':').map(|(s, _)| s);
    let has_scheme = scheme.is_some_and(|s| {
        s.len() > 1
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    (!has_scheme).then_some(base)
}

/// Whether `uri` names a Git repository rather than a local path or an archive.
pub fn is_git_uri(uri: &str) -> bool {
    if is_zip_uri(uri) {
        return false;
    }
    let base = uri.split('#').next().unwrap_or(uri);
    ["https://", "http://", "file://", "ssh://", "git://"]
        .iter()
        .any(|p| base.starts_with(p))
        || (base.starts_with("git@") && base.contains(':'))
}

/// `uri` split at `#` into the location and the subdirectory; `.` is not allowed in the
/// subdirectory (as MLflow).
pub fn split_subdirectory(uri: &str) -> Result<(&str, &str)> {
    let (base, sub) = uri.split_once('#').unwrap_or((uri, ""));
    if sub.contains('.') {
        return Err(Error::Project(
            "'.' is not allowed in project subdirectory paths.".into(),
        ));
    }
    Ok((base, sub.trim_matches('/')))
}

/// Fetches the project `uri` at `version`: a local directory as is (relative to `cwd`), a
/// local `.zip` archive extracted under `storage_dir` (a remote one is downloaded by the caller
/// first: `archive` is then its local copy), a Git repository cloned under `storage_dir`.
pub fn fetch(
    uri: &str,
    archive: Option<&Path>,
    version: Option<&str>,
    cwd: &Path,
    storage_dir: &Path,
) -> Result<Fetched> {
    let (base, sub) = split_subdirectory(uri)?;
    if version.is_some() && !is_git_uri(uri) {
        return Err(Error::Project(
            "Setting a version is only supported for Git project URIs".into(),
        ));
    }
    if is_zip_uri(uri) {
        let zip = match (archive, local_zip(base)) {
            (Some(downloaded), _) => downloaded.to_path_buf(),
            (None, Some(local)) => cwd.join(local),
            (None, None) => {
                return Err(Error::Project(format!("{base} must be downloaded first")));
            }
        };
        let root = storage_dir
            .join("projects")
            .join(uuid::Uuid::new_v4().simple().to_string());
        unzip(&zip, &root)?;
        let dir = if sub.is_empty() { root } else { root.join(sub) };
        if !dir.is_dir() {
            return Err(Error::Project(format!(
                "the subdirectory {sub} does not exist in {base}"
            )));
        }
        return Ok(Fetched {
            dir: std::path::absolute(&dir).unwrap_or(dir),
            git: None,
        });
    }
    if !is_git_uri(uri) {
        let mut dir = cwd.join(base);
        if !sub.is_empty() {
            dir.push(sub);
        }
        if !dir.is_dir() {
            return Err(Error::Project(format!(
                "{uri} is not a directory or a Git URI"
            )));
        }
        return Ok(Fetched {
            dir: std::path::absolute(&dir).unwrap_or(dir),
            git: None,
        });
    }
    let clones = storage_dir.join("projects");
    std::fs::create_dir_all(&clones)
        .map_err(|e| Error::Project(format!("cannot create {}: {e}", clones.display())))?;
    let checkout = clones.join(uuid::Uuid::new_v4().simple().to_string());
    git(
        None,
        &["clone", "--quiet", "--", base, &checkout.to_string_lossy()],
    )?;
    let branch = match version {
        Some(v) => {
            let remote_branch = format!("origin/{v}");
            let is_branch = Command::new("git")
                .current_dir(&checkout)
                .args([
                    "show-ref",
                    "--verify",
                    "--quiet",
                    &format!("refs/remotes/{remote_branch}"),
                ])
                .status()
                .is_ok_and(|s| s.success());
            let target = if is_branch { remote_branch.as_str() } else { v };
            git(
                Some(&checkout),
                &["checkout", "--quiet", "--detach", target, "--"],
            )?;
            is_branch.then(|| v.to_owned())
        }
        None => None,
    };
    let commit = git(Some(&checkout), &["rev-parse", "HEAD"])?;
    let dir = if sub.is_empty() {
        checkout.clone()
    } else {
        checkout.join(sub)
    };
    if !dir.is_dir() {
        return Err(Error::Project(format!(
            "the subdirectory {sub} does not exist in {base}"
        )));
    }
    Ok(Fetched {
        dir,
        git: Some(GitSource {
            url: base.to_owned(),
            commit,
            branch,
            subdirectory: sub.to_owned(),
        }),
    })
}

/// Extracts the archive `zip` into `dst` as MLflow does (Python's `ZipFile.extractall`: every
/// entry, paths kept), refusing entries that would land outside `dst`; Unix modes are kept.
fn unzip(zip: &Path, dst: &Path) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| {
        Error::Project(format!(
            "cannot extract the project archive {}: {e}",
            zip.display()
        ))
    };
    let file = std::fs::File::open(zip).map_err(|e| fail(&e))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| fail(&e))?;
    std::fs::create_dir_all(dst).map_err(|e| fail(&e))?;
    archive.extract(dst).map_err(|e| fail(&e))
}

/// Runs `git args` (in `dir`); its trimmed stdout, or an error with its stderr.
fn git(dir: Option<&Path>, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("git");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    // Never prompt for credentials on a terminal: fail instead.
    cmd.env("GIT_TERMINAL_PROMPT", "0");
    let out = cmd.args(args).output().map_err(|e| {
        Error::Project(format!(
            "Git projects need the `git` executable on the PATH: {e}"
        ))
    })?;
    if !out.status.success() {
        return Err(Error::Project(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_uris_and_subdirectories() {
        assert!(is_git_uri("https://github.com/mlflow/mlflow-example"));
        assert!(is_git_uri("file:///srv/repo#sub/dir"));
        assert!(is_git_uri("git@github.com:org/repo.git"));
        assert!(!is_git_uri("examples/projects/shell"));
        assert!(!is_git_uri("/abs/path#sub"));
        assert!(!is_git_uri("https://example.com/project.zip#sub"));
        assert!(is_zip_uri("https://example.com/project.ZIP#sub"));
        assert!(is_zip_uri("runs:/abc/project.zip"));
        assert!(!is_zip_uri("file:///r#a.zip"));
        assert_eq!(local_zip("file:///tmp/p.zip#sub"), Some("/tmp/p.zip"));
        assert_eq!(local_zip("dir/p.zip"), Some("dir/p.zip"));
        assert_eq!(local_zip("runs:/abc/p.zip"), None);
        assert_eq!(local_zip("https://h/p.zip"), None);
        assert_eq!(
            split_subdirectory("file:///r#a/b/").unwrap(),
            ("file:///r", "a/b")
        );
        assert_eq!(split_subdirectory("dir").unwrap(), ("dir", ""));
        assert!(split_subdirectory("file:///r#../x").is_err());
    }

    #[test]
    fn archive_entries_outside_the_target_are_refused() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("evil.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("proj/MLproject", options).unwrap();
        zip.write_all(b"name: x\n").unwrap();
        zip.start_file("../escaped.txt", options).unwrap();
        zip.write_all(b"outside").unwrap();
        zip.finish().unwrap();
        let target = dir.path().join("a/b");
        let err = unzip(&archive, &target).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot extract the project archive"),
            "{err}"
        );
        assert!(!dir.path().join("a/escaped.txt").exists());
    }
}
