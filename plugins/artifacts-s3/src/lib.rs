//! # cairn-artifacts-s3 — Cairn's artifact repository on S3 and S3-compatible storage
//!
//! Artifacts under an `s3://bucket/prefix` root, on AWS S3 or any S3-compatible server
//! (MinIO, Ceph, Cloudflare R2, ...). It implements [`cairn_plugin_api::ArtifactRepository`]
//! on the [`object_store`] crate and registers itself for the URI scheme [`SCHEME`].
//!
//! **Configuration** — `[settings.s3]` ([`S3Settings`]) and the environment, as MLflow and the
//! AWS SDKs read it: credentials from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
//! `AWS_SESSION_TOKEN`, web identity, or the container/instance metadata service; the region
//! from `AWS_REGION`/`AWS_DEFAULT_REGION`; a custom endpoint from `endpoint_url`,
//! `MLFLOW_S3_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (in that order); TLS
//! verification off with `MLFLOW_S3_IGNORE_TLS=true`. Requests use path-style addressing
//! unless `force_path_style = false`. Shared config files (`~/.aws/config` profiles) are not
//! read — `object_store` does not support them; export the profile's values instead.
//!
//! Design:
//! - **Its own runtime.** `object_store` needs tokio; the plugin owns one multi-thread runtime
//!   (built on first use, shared by every repository) and bridges to the caller with
//!   `futures-channel` oneshots and bounded channels. No tokio handle crosses the API, so the
//!   repository works under any executor and inside a shared library.
//! - **Streaming both ways.** A download forwards the object's body chunk by chunk through a
//!   bounded channel. An upload is read from the caller's body on the caller's executor and fed
//!   through a bounded channel to the upload task: a body smaller than `part_size` is one
//!   `PUT`; a larger one becomes a multipart upload with at most `max_concurrency` parts in
//!   flight. Memory per transfer is bounded by `part_size × (max_concurrency + 1)`, whatever
//!   the file's size. An upload whose body fails, or whose caller goes away, is aborted; S3
//!   shows the object only when complete, so a `put` is atomic.
//! - **Multipart and presigned URLs.** [`ArtifactRepository::create_multipart_upload`] starts
//!   an S3 multipart upload and presigns an `UploadPart` URL per part, so MLflow clients
//!   upload parts straight to S3; parts can also go through [`upload_part`]. Presigned GET/PUT
//!   URLs are SigV4 query-signed. Capabilities: `multipart_upload` always; `presigned_urls`
//!   unless `skip_signature` is set.
//! - **Keys as named.** An artifact path (after the one canonicaliser) is the key under the
//!   prefix, byte for byte, so clients writing to the bucket directly and Cairn agree.
//!
//! [`upload_part`]: cairn_plugin_api::ArtifactRepository::upload_part

mod config;
mod error;
mod repo;
mod runtime;

pub use config::{MAX_EXPIRY_SECS, MIN_PART_SIZE, S3Settings, Secret, resolve_endpoint};
pub use repo::{MAX_PARTS, S3ArtifactRepository, parse_s3_uri};

use cairn_plugin_api::{ArtifactRepository, Build, BuildContext, PluginFactory, Result};
use std::sync::Arc;

/// The URI scheme this repository serves.
pub const SCHEME: &str = "s3";

/// Builds the repository rooted at the context's `s3://` URI with the `[settings.s3]`
/// settings and the process environment.
pub fn build_artifact_repository(ctx: &BuildContext) -> Result<Arc<dyn ArtifactRepository>> {
    let settings: S3Settings = ctx.settings()?;
    Ok(Arc::new(S3ArtifactRepository::open(
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
