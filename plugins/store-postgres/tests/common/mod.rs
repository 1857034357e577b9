//! What every test of this crate needs: a fresh, empty PostgreSQL schema on the server that
//! `scripts/pg-test-server` started. Without `CAIRN_TEST_POSTGRES_URI` the tests fail (they
//! never skip): run them as `scripts/pg-test-server -- cargo test -p cairn-store-postgres`.

#![allow(dead_code)]

/// The test server's database URI.
pub fn server_uri() -> String {
    std::env::var("CAIRN_TEST_POSTGRES_URI").unwrap_or_else(|_| {
        panic!(
            "CAIRN_TEST_POSTGRES_URI is not set: the PostgreSQL store's tests need a server; \
             run them as `scripts/pg-test-server -- cargo test -p cairn-store-postgres`"
        )
    })
}

/// Runs `f` with a client of the test database (a connection of its own, closed when `f`'s
/// future drops the client).
fn with_client<T, F: std::future::Future<Output = T>>(
    f: impl FnOnce(tokio_postgres::Client) -> F,
) -> T {
    let uri = server_uri();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&uri, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {uri}: {e}"));
        let task = tokio::spawn(conn);
        let out = f(client).await;
        let _ = task.await;
        out
    })
}

/// Runs `sql` on the test database.
pub fn execute(sql: &str) {
    with_client(|client| async move {
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    })
}

/// A URI whose connections work in a new, empty schema of the test database (its
/// `search_path`), so every test starts from an empty database of its own.
pub fn fresh_uri() -> String {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    execute(&format!("CREATE SCHEMA {schema}"));
    let uri = server_uri();
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}options=-csearch_path%3D{schema}")
}

/// The first column of the first row of `sql` on the test database, as text (`NULL`: None).
pub fn query_text(sql: &str) -> Option<String> {
    with_client(|client| async move {
        client
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    })
}
