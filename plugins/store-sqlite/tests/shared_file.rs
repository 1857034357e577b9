//! Several stores of one process on one file (the server opens the tracking, registry and auth
//! stores, usually all on the same file) share its connections. Each opening its own used to
//! drop the process's POSIX locks on the file, after which another process that opened and
//! closed the database (a `sqlite3` shell, a backup script, MLflow's own SQLAlchemy) took
//! itself for the last connection and deleted the write-ahead log under the running server:
//! later commits went to an unlinked file, invisible to other processes and lost on restart,
//! and the server's reads failed.
//!
//! The other process is `python3` with its `sqlite3` module, which uses the system's SQLite as
//! the `sqlite3` shell does (3.40 on Debian 12). The SQLite bundled into this crate is newer
//! and does not delete the log in that situation, so it cannot stand in for them.

use cairn_plugin_api::TrackingStore;
use cairn_plugin_api::tracking::CreateExperiment;
use futures_executor::block_on;
use std::process::Command;

/// Opens the database from another process, checks it holds `expect` experiments, closes it.
fn read_from_another_process(path: &std::path::Path, expect: usize) {
    let script = format!(
        "import sqlite3\n\
         c = sqlite3.connect({path:?})\n\
         n = c.execute('SELECT count(*) FROM experiments').fetchone()[0]\n\
         c.close()\n\
         assert n == {expect}, f'another process sees {{n}} experiments, not {expect}'\n",
        path = path.display().to_string()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 (with its sqlite3 module) runs the other process");
    assert!(
        out.status.success(),
        "the other process failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn create(store: &dyn TrackingStore, name: &str) {
    block_on(store.create_experiment(CreateExperiment {
        name: name.into(),
        ..Default::default()
    }))
    .unwrap();
}

#[test]
fn another_process_opening_the_file_leaves_the_log_of_the_open_stores_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let uri = format!("sqlite:///{}", path.display());
    let tracking = cairn_store_sqlite::open(&uri, Some("file:///tmp/a")).unwrap();
    // What the server does next: the registry's store on the same file.
    let registry = cairn_store_sqlite::open(&uri, Some("file:///tmp/a")).unwrap();
    create(&tracking, "a");
    // Default and a.
    read_from_another_process(&path, 2);
    let wal = dir.path().join("db.sqlite-wal");
    assert!(wal.exists(), "another process deleted {}", wal.display());
    create(&registry, "b");
    read_from_another_process(&path, 3);
    create(&tracking, "c");
    read_from_another_process(&path, 4);
    block_on(registry.get_experiment("3")).unwrap();
}

#[test]
fn a_store_opened_again_after_the_last_one_closed_sees_everything() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite:///{}", dir.path().join("db.sqlite").display());
    let first = cairn_store_sqlite::open(&uri, Some("file:///tmp/a")).unwrap();
    create(&first, "a");
    drop(first);
    let again = cairn_store_sqlite::open(&uri, Some("file:///tmp/b")).unwrap();
    let exp = block_on(again.get_experiment_by_name("a"))
        .unwrap()
        .unwrap();
    assert_eq!(exp.name, "a");
}
