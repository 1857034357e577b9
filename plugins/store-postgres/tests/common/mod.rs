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

/// The schema of a [`fresh_uri`].
pub fn schema_of(uri: &str) -> String {
    uri.rsplit("search_path%3D").next().unwrap().to_string()
}

/// A new experiment `name` of `n` runs (start times 0, 1, ...), run `i` logged with `batch(i)`
/// in one `log_batch`; its id and the runs' ids in order.
pub fn experiment_of_runs(
    store: &cairn_store_postgres::PostgresStore,
    name: &str,
    n: usize,
    batch: impl Fn(
        usize,
    ) -> (
        Vec<cairn_plugin_api::entities::Metric>,
        Vec<cairn_plugin_api::entities::Param>,
        Vec<cairn_plugin_api::entities::RunTag>,
    ),
) -> (String, Vec<String>) {
    use cairn_plugin_api::TrackingStore;
    use cairn_plugin_api::tracking::{CreateExperiment, CreateRun};
    use futures_executor::block_on;
    let exp = block_on(store.create_experiment(CreateExperiment {
        name: name.into(),
        ..Default::default()
    }))
    .unwrap();
    let mut runs = Vec::with_capacity(n);
    for i in 0..n {
        let run = block_on(store.create_run(CreateRun {
            experiment_id: exp.clone(),
            user_id: "u".into(),
            start_time: i as i64,
            ..Default::default()
        }))
        .unwrap();
        let (metrics, params, tags) = batch(i);
        block_on(store.log_batch(&run.info.run_id, metrics, params, tags)).unwrap();
        runs.push(run.info.run_id);
    }
    (exp, runs)
}
