//! `cairn import --artifacts <URI>`: copies the storage behind MLflow's artifact proxy (what
//! `mlflow server --artifacts-destination` names, `./mlartifacts` by default) into Cairn's
//! (`store.artifacts_destination`), path for path, so the `mlflow-artifacts:/` locations the
//! import keeps resolve through Cairn's proxy wherever its storage now is (a local directory
//! moved to S3, say). Artifacts elsewhere (an `s3://` or local default artifact root that
//! clients wrote to directly) stay where they are and keep working without a copy.
//!
//! Through the artifact-repository plugins on both sides, so any pair of schemes works. Each
//! file is streamed (never held whole in memory) and written atomically by the destination's
//! `put`; a file already at the destination with the same size is left alone, so an
//! interrupted copy continues and a finished one copies nothing. A dry run lists and compares
//! only.

use super::{Dest, Report};
use crate::error::{Error, Result};
use cairn_plugin_api::{ArtifactRepository, ErrorKind};
use std::sync::Arc;

/// Files between two progress lines.
const PROGRESS_EVERY: u64 = 200;

fn failed(what: &str, path: &str, e: cairn_plugin_api::Error) -> Error {
    Error::Import(format!("artifacts: {what} '{path}': {}", e.message))
}

/// Copies every file under `source` into `dest_repo`, counting into `report`.
pub(crate) fn copy_tree(
    source: Arc<dyn ArtifactRepository>,
    dest_repo: Arc<dyn ArtifactRepository>,
    dest: &mut Dest<'_>,
    report: &mut Report,
) -> Result<()> {
    dest.progress(&format!(
        "cairn import: copying artifacts from {} to {}",
        crate::secrets::redact_uri(source.root_uri()),
        crate::secrets::redact_uri(dest_repo.root_uri()),
    ));
    let mut pending: Vec<Option<String>> = vec![None];
    while let Some(dir) = pending.pop() {
        let shown = dir.clone().unwrap_or_default();
        let entries = dest
            .rt
            .block_on(source.list(dir.as_deref()))
            .map_err(|e| failed("listing", &shown, e))?;
        // Depth first, in path order (the list is sorted; the stack reverses it).
        for entry in entries.into_iter().rev() {
            if entry.is_dir {
                pending.push(Some(entry.path));
                continue;
            }
            let copied = copy_file(&source, &dest_repo, dest, &entry.path, entry.file_size)?;
            match copied {
                Some(bytes) => {
                    report.artifacts.written += 1;
                    report.artifact_bytes += bytes;
                }
                None => report.artifacts.present += 1,
            }
            let seen = report.artifacts.written + report.artifacts.present;
            if seen.is_multiple_of(PROGRESS_EVERY) {
                dest.progress(&format!(
                    "cairn import: artifacts: {seen} files seen, {} {} ({} bytes)",
                    report.artifacts.written,
                    if dest.dry_run { "to copy" } else { "copied" },
                    report.artifact_bytes
                ));
            }
        }
    }
    Ok(())
}

/// Copies one file unless the destination has it with the same size: the bytes copied (or, in
/// a dry run, that would be), `None` when it is already there.
fn copy_file(
    source: &Arc<dyn ArtifactRepository>,
    dest_repo: &Arc<dyn ArtifactRepository>,
    dest: &mut Dest<'_>,
    path: &str,
    listed_size: Option<i64>,
) -> Result<Option<u64>> {
    let present = match dest.rt.block_on(dest_repo.head(path)) {
        Ok(info) => Some(info.file_size),
        Err(e) if e.kind == ErrorKind::NotFound => None,
        Err(e) => return Err(failed("reading the destination's", path, e)),
    };
    let size = match listed_size {
        Some(size) => Some(size),
        None if present.is_some() => {
            let info = dest
                .rt
                .block_on(source.head(path))
                .map_err(|e| failed("reading", path, e))?;
            info.file_size
        }
        None => None,
    };
    if let Some(there) = present
        && there.is_some()
        && there == size
    {
        return Ok(None);
    }
    if dest.dry_run {
        return Ok(Some(size.map_or(0, |s| s.max(0) as u64)));
    }
    let written = dest
        .rt
        .block_on(async {
            let download = source.get(path).await?;
            dest_repo.put(path, download.body).await
        })
        .map_err(|e| failed("copying", path, e))?;
    Ok(Some(written))
}
