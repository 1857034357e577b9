//! The ArtifactRepository conformance suite (`cairn_plugin_api::testkit::artifacts`) against
//! the S3 repository on a real S3-compatible server, plus what only S3 offers: clients
//! uploading multipart parts and downloading through presigned URLs, TLS, and being driven
//! from inside a tokio runtime.
//!
//! # Running
//!
//! These tests need a server: `./scripts/s3-test-server -- cargo test -p cairn-artifacts-s3`
//! starts moto (`moto_server`, pinned in `tests/requirements.txt`) on 127.0.0.1 and sets
//! `CAIRN_TEST_S3_ENDPOINT`, `CAIRN_TEST_S3_TLS_ENDPOINT`, `CAIRN_TEST_S3_BUCKET` and dummy
//! AWS credentials; `./scripts/test` does that for the whole workspace. Any other
//! S3-compatible server works too: point the variables at it (the bucket must exist) and
//! export real credentials.
//!
//! Without `CAIRN_TEST_S3_ENDPOINT` every test here **fails** with a message saying how to
//! run them: in CI a missing server must never pass as a skipped test.
//!
//! **Limit:** moto does not verify request signatures. Against it these tests prove the
//! requests — keys, listing, streaming, multipart, presigned URL shapes — not that SigV4
//! signatures are right (object_store's own test suite checks those against real S3).

use cairn_artifacts_s3::{MIN_PART_SIZE, S3ArtifactRepository, S3Settings};
use cairn_plugin_api::testkit::artifacts::{
    PatternStream, get_bytes, list_of, put_bytes, verify_pattern,
};
use cairn_plugin_api::testkit::unique_name;
use cairn_plugin_api::{ArtifactRepository, artifacts::CompletedPart};
use std::sync::Arc;

fn endpoint() -> String {
    required("CAIRN_TEST_S3_ENDPOINT")
}

fn required(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "set {var}: the S3 tests need an S3-compatible server. Run them with \
             `./scripts/s3-test-server -- cargo test -p cairn-artifacts-s3` (starts moto on \
             127.0.0.1), or `./scripts/test` for everything."
        ),
    }
}

fn bucket() -> String {
    std::env::var("CAIRN_TEST_S3_BUCKET").unwrap_or_else(|_| "cairn-test".into())
}

/// Small parts, so that uploads of a few MiB already become multipart uploads.
fn settings(endpoint: String) -> S3Settings {
    S3Settings {
        endpoint_url: Some(endpoint),
        part_size: MIN_PART_SIZE,
        max_concurrency: 2,
        ..Default::default()
    }
}

/// A repository under a fresh random prefix of the test bucket.
fn fresh_repo() -> Arc<S3ArtifactRepository> {
    let uri = format!("s3://{}/{}", bucket(), unique_name("conformance"));
    Arc::new(S3ArtifactRepository::open(&uri, settings(endpoint())).expect("open the repository"))
}

mod conformance {
    cairn_plugin_api::artifact_repository_conformance!(super::fresh_repo(), skips = []);
}

/// A tokio runtime for the HTTP client the "client side" of these tests uses.
fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What an MLflow client does with `create_multipart_upload`'s credentials: PUT each part to
/// its presigned URL, keep the ETag S3 answers with, then complete with those ETags.
#[test]
fn clients_upload_parts_to_presigned_urls() {
    let repo = fresh_repo();
    let path = "model/weights.bin";
    let parts = [vec![7u8; MIN_PART_SIZE], b"tail of the file".to_vec()];
    let upload = futures_executor::block_on(repo.create_multipart_upload(path, 2)).unwrap();
    assert_eq!(upload.credentials.len(), 2);
    let client = reqwest::Client::new();
    let completed: Vec<CompletedPart> = client_runtime().block_on(async {
        let mut completed = Vec::new();
        for (credential, data) in upload.credentials.iter().zip(&parts) {
            let url = credential.url.as_deref().expect("a presigned part URL");
            assert!(
                url.contains("partNumber=") && url.contains("uploadId="),
                "{url}"
            );
            let response = client.put(url).body(data.clone()).send().await.unwrap();
            assert!(
                response.status().is_success(),
                "PUT part: {}",
                response.status()
            );
            let etag = response.headers()["etag"].to_str().unwrap().to_string();
            completed.push(CompletedPart {
                part_number: credential.part_number,
                etag,
            });
        }
        completed
    });
    futures_executor::block_on(async {
        repo.complete_multipart_upload(path, &upload.upload_id, completed)
            .await
            .unwrap();
        assert_eq!(get_bytes(&*repo, path).await, parts.concat());
    });
}

/// A presigned GET URL serves the file; a presigned PUT URL stores one.
#[test]
fn presigned_urls_work_for_plain_http_clients() {
    let repo = fresh_repo();
    futures_executor::block_on(put_bytes(&*repo, "a b/ü.txt", b"presigned bytes"));
    let get = futures_executor::block_on(repo.presigned_download_url("a b/ü.txt", 60)).unwrap();
    let put = futures_executor::block_on(repo.presigned_upload_url("up/new.txt", 60)).unwrap();
    let client = reqwest::Client::new();
    client_runtime().block_on(async {
        let response = client.get(&get.url).send().await.unwrap();
        assert!(response.status().is_success(), "GET: {}", response.status());
        assert_eq!(&response.bytes().await.unwrap()[..], b"presigned bytes");
        let response = client.put(&put.url).body("uploaded").send().await.unwrap();
        assert!(response.status().is_success(), "PUT: {}", response.status());
    });
    assert_eq!(
        futures_executor::block_on(get_bytes(&*repo, "up/new.txt")),
        b"uploaded"
    );
}

/// The host drives repositories from tokio worker threads: nothing may block or nest a
/// runtime there, on a current-thread runtime (the strictest) as on a multi-thread one.
#[test]
fn works_when_driven_from_inside_tokio() {
    let repo = fresh_repo();
    for runtime in [
        client_runtime(),
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap(),
    ] {
        let repo = Arc::clone(&repo);
        runtime.block_on(async move {
            let seed = 99;
            let len = 3 * MIN_PART_SIZE as u64 + 12345;
            let n = repo
                .put("big.bin", Box::pin(PatternStream::new(seed, len)))
                .await
                .unwrap();
            assert_eq!(n, len);
            let download = repo.get("big.bin").await.unwrap();
            verify_pattern(download, seed, len, "get inside tokio").await;
        });
    }
}

/// Over HTTPS (moto's self-signed certificate, so verification is turned off): the TLS
/// client starts — rustls with its crypto provider — and transfers work.
#[test]
fn https_endpoints_work() {
    let uri = format!("s3://{}/{}", bucket(), unique_name("tls"));
    let settings = S3Settings {
        allow_invalid_certificates: true,
        ..settings(required("CAIRN_TEST_S3_TLS_ENDPOINT"))
    };
    let repo = S3ArtifactRepository::open(&uri, settings).unwrap();
    futures_executor::block_on(async {
        put_bytes(&repo, "secure/x.txt", b"over tls").await;
        assert_eq!(get_bytes(&repo, "secure/x.txt").await, b"over tls");
        assert_eq!(list_of(&repo, Some("secure")).await.len(), 1);
    });
}

/// Without `allow_invalid_certificates` an unverifiable certificate is refused, with an
/// error rather than a panic.
#[test]
fn unverifiable_certificates_are_refused() {
    let uri = format!("s3://{}/{}", bucket(), unique_name("tls"));
    let repo =
        S3ArtifactRepository::open(&uri, settings(required("CAIRN_TEST_S3_TLS_ENDPOINT"))).unwrap();
    let e = futures_executor::block_on(repo.list(None)).unwrap_err();
    assert_eq!(e.kind, cairn_plugin_api::ErrorKind::Internal, "{e}");
    let cause = format!("{:?}", e.source);
    assert!(
        cause.to_ascii_lowercase().contains("certificate"),
        "not a certificate error: {cause}"
    );
}

/// Keys are the artifact paths byte for byte: what a client writing straight to the bucket
/// sees is what Cairn wrote.
#[test]
fn keys_are_the_artifact_paths() {
    let prefix = unique_name("keys");
    let uri = format!("s3://{}/{prefix}", bucket());
    let repo = S3ArtifactRepository::open(&uri, settings(endpoint())).unwrap();
    futures_executor::block_on(put_bytes(&repo, "dir/100% ü.txt", b"k"));
    let listing = client_runtime().block_on(async {
        let url = format!("{}/{}?list-type=2&prefix={prefix}/", endpoint(), bucket());
        reqwest::get(url).await.unwrap().text().await.unwrap()
    });
    assert!(
        listing.contains(&format!("<Key>{prefix}/dir/100% ü.txt</Key>")),
        "{listing}"
    );
}

#[test]
fn the_plugin_is_registered_for_s3() {
    let factory = cairn_plugin_api::factory::builtin_factories()
        .find(|f| f.name == cairn_artifacts_s3::SCHEME)
        .expect("cairn-artifacts-s3 registers the `s3` scheme");
    assert_eq!(factory.plugin, "cairn-artifacts-s3");
    let cairn_plugin_api::Build::ArtifactRepository(build) = factory.build else {
        panic!("registered as {:?}", factory.kind());
    };
    let uri = format!("s3://{}/{}", bucket(), unique_name("registered"));
    let mut ctx = cairn_plugin_api::BuildContext::for_uri(&uri);
    ctx.settings = serde_json::json!({ "endpoint_url": endpoint() });
    let repo = build(&ctx).unwrap();
    assert_eq!(repo.root_uri(), uri);
    futures_executor::block_on(async {
        put_bytes(repo.as_ref(), "r.txt", b"r").await;
        assert_eq!(get_bytes(repo.as_ref(), "r.txt").await, b"r");
    });
    ctx.settings = serde_json::json!({ "endpoint": endpoint() });
    assert!(build(&ctx).is_err(), "unknown settings are refused");
}
