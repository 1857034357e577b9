//! # cairn-artifacts-local — Cairn's artifact repository on the local file system
//!
//! The default artifact store of `cairn server`: artifacts are files under one root directory.
//! It implements [`cairn_plugin_api::ArtifactRepository`] and registers itself for the URI
//! scheme [`SCHEME`] (`file`), which the host also picks for plain paths (`./mlartifacts`,
//! `/var/lib/cairn/artifacts`), as MLflow does. Settings come from `[settings.file]`
//! ([`LocalSettings`]).
//!
//! Design:
//! - **Confined to the root.** Every path goes through the one canonicaliser,
//!   [`cairn_plugin_api::paths::canonical_artifact_path`], and what it resolves to on disk —
//!   symlinks followed — must stay under the resolved root: a symlink leading out of the root
//!   is refused with `InvalidArgument` and left out of listings. Deleting a symlink removes the
//!   link only.
//! - **Threads, not a runtime.** File system calls run as short jobs (one chunk, one listing)
//!   on a small process-wide [`BlockingPool`](cairn_plugin_api::blocking::BlockingPool) and
//!   come back through oneshots, so no async executor thread ever blocks and no tokio is
//!   needed — the repository also works inside a shared library.
//! - **Streaming.** Downloads are read a chunk at a time, one chunk ahead of the consumer;
//!   uploads write one batch while the next arrives. A transfer of any size holds about two
//!   chunks ([`LocalSettings::chunk_size`], 1 MiB by default) in memory.
//! - **Atomic uploads.** An upload is written to a hidden temporary file
//!   (`.cairn-tmp-<uuid>`, see [`TEMP_PREFIX`]) in the target's directory and renamed over the
//!   target when complete: readers see the old file or the new one, never a part. A failed or
//!   abandoned upload removes its temporary file; one whose process died (it holds no lock any
//!   more) is removed by the sweep when a repository on the root is first built.
//! - **Honest capabilities.** No multipart uploads and no presigned URLs (a local disk has no
//!   URL a client could use directly); those methods answer `Unsupported`.

mod config;
mod error;
mod io;
mod repo;

pub use config::LocalSettings;
pub use repo::{LocalArtifactRepository, TEMP_PREFIX, root_dir_of};

use cairn_plugin_api::{ArtifactRepository, Build, BuildContext, PluginFactory, Result};
use std::sync::Arc;

/// The URI scheme this repository serves; plain paths select it too.
pub const SCHEME: &str = "file";

/// Builds the repository rooted at the context's URI with the `[settings.file]` settings.
pub fn build_artifact_repository(ctx: &BuildContext) -> Result<Arc<dyn ArtifactRepository>> {
    let settings: LocalSettings = ctx.settings()?;
    Ok(Arc::new(LocalArtifactRepository::open(
        ctx.require_uri()?,
        settings,
    )?))
}

cairn_plugin_api::inventory::submit! {
    PluginFactory {
        name: SCHEME,
        plugin: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        build: Build::ArtifactRepository(build_artifact_repository),
    }
}
