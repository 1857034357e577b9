//! TLS to a real PostgreSQL with `ssl=on` (scripts/pg-test-server signs its certificate with a
//! throwaway CA): each `sslmode` connects as libpq would, the session is encrypted exactly
//! when it should be, and a certificate the given root did not sign is refused.

mod common;

use cairn_plugin_api::TrackingStore;
use cairn_plugin_api::tracking::CreateExperiment;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests under scripts/pg-test-server"))
}

fn with(uri: &str, query: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{query}")
}

/// Whether a connection made from `uri` is encrypted (PostgreSQL's own view of it).
fn encrypted(uri: &str) -> Result<bool, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = cairn_store_postgres::connect(uri)
            .await
            .map_err(|e| e.message)?;
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    })
}

#[test]
fn sslmodes_as_libpq_reads_them() {
    let uri = common::server_uri();
    let ca = env("CAIRN_TEST_POSTGRES_CA");
    assert!(!encrypted(&with(&uri, "sslmode=disable")).unwrap());
    assert!(
        encrypted(&uri).unwrap(),
        "prefer (the default) uses TLS when offered"
    );
    assert!(encrypted(&with(&uri, "sslmode=require")).unwrap());
    let full = with(&uri, &format!("sslmode=verify-full&sslrootcert={ca}"));
    assert!(encrypted(&full).unwrap());
    let chain = with(&uri, &format!("sslmode=verify-ca&sslrootcert={ca}"));
    assert!(encrypted(&chain).unwrap());
    // The whole store (its pool, its migrations) over verify-full.
    let store_uri = with(
        &common::fresh_uri(),
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let store = cairn_store_postgres::open(&store_uri, Some("file:///tmp/cairn-tls")).unwrap();
    futures_executor::block_on(store.create_experiment(CreateExperiment {
        name: "over-tls".into(),
        ..Default::default()
    }))
    .unwrap();
}

#[test]
fn a_certificate_the_root_did_not_sign_is_refused() {
    let uri = common::server_uri();
    let other = env("CAIRN_TEST_POSTGRES_OTHER_CA");
    for mode in ["verify-full", "verify-ca"] {
        let e = encrypted(&with(&uri, &format!("sslmode={mode}&sslrootcert={other}"))).unwrap_err();
        assert!(e.to_lowercase().contains("certificate"), "{mode}: {e}");
        assert!(!e.contains("secret"), "{e}");
    }
    let e = cairn_store_postgres::open(
        &with(&uri, "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
        None,
    )
    .unwrap_err();
    assert!(e.message.contains("/nonexistent/ca.pem"), "{}", e.message);
}
