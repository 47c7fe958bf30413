//! The SQLite engine: the conformance suite plus what only an embedded file can do
//! (locking, reopening, `open` by datastore name).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use skiff_store::conformance::Property;
use skiff_store::sqlite::SqliteStore;
use skiff_store::{Store, StoreError};
use tempfile::TempDir;

fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("skiff-store-test-")
        .tempdir()
        .unwrap()
}

/// A store on a database file of its own for one conformance property; the directory holding
/// it is removed when the returned guard drops.
async fn fresh_store(property: Property) -> (Arc<dyn Store>, TempDir) {
    let dir = temp_dir();
    let store = SqliteStore::open(dir.path().join(format!("{}.db", property.name))).unwrap();
    (Arc::new(store), dir)
}

mod conformance {
    skiff_store::store_conformance_tests!(super::fresh_store);
}

#[tokio::test]
async fn second_open_of_same_database_is_locked() {
    let dir = temp_dir();
    let path = dir.path().join("state.db");
    let first = SqliteStore::open(&path).unwrap();
    match SqliteStore::open(&path) {
        Err(StoreError::Locked(p)) => assert!(p.contains("state.db"), "{p}"),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second open of a held database succeeded"),
    }
    // Through the datastore name too, as `skiff server` opens it.
    let err = skiff_store::open("sqlite", dir.path()).await.err().unwrap();
    assert!(matches!(err, StoreError::Locked(_)), "{err:?}");
    drop(first);
    SqliteStore::open(&path).expect("the lock goes with the store");
}

#[tokio::test]
async fn data_and_revisions_survive_reopen() {
    let dir = temp_dir();
    let path = dir.path().join("nested/dir/state.db");
    let (r1, r3) = {
        let store = SqliteStore::open(&path).unwrap();
        store.create("/k/b", b"b".to_vec()).await.unwrap();
        let r1 = store.create("/k/a", b"1".to_vec()).await.unwrap();
        let r2 = store.update("/k/a", b"2".to_vec(), r1).await.unwrap();
        let (_, r3) = store.delete("/k/a", Some(r2)).await.unwrap();
        // Compaction removes every row of /k/a, including the newest row of the log.
        store.compact(r3).await.unwrap();
        (r1, r3)
    };
    let store = SqliteStore::open(&path).unwrap();
    let current = store.current_revision().await.unwrap();
    assert_eq!(current, r3, "revision after reopen must not go back");
    let list = store.list("/k/", None, 0, None).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].value, b"b");
    // The compaction point is remembered.
    let err = store.list("/k/", None, 0, Some(r1)).await.unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");
    let r = store.create("/k/a", b"3".to_vec()).await.unwrap();
    assert_eq!(r, current + 1);
}

#[tokio::test]
async fn open_by_datastore_name() {
    let dir = temp_dir();
    let default = skiff_store::open("sqlite", dir.path()).await.unwrap();
    default.create("/x", b"1".to_vec()).await.unwrap();
    drop(default);
    assert!(dir.path().join("state.db").exists());

    let other = dir.path().join("other.db");
    let url = format!("sqlite://{}", other.display());
    let store = skiff_store::open(&url, dir.path()).await.unwrap();
    assert_eq!(store.get("/x").await.unwrap(), None, "a different file");
    assert!(other.exists());

    let err = skiff_store::open("mysql://db", dir.path())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("invalid datastore"), "{err}");
}

#[tokio::test]
async fn watch_ends_when_store_is_dropped() {
    let dir = temp_dir();
    let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
    let mut watch = store.watch("/", 0).await.unwrap();
    store.create("/a", vec![]).await.unwrap();
    assert!(watch.next().await.unwrap().is_ok());
    drop(store);
    let end = tokio::time::timeout(Duration::from_secs(10), watch.next()).await;
    assert!(matches!(end, Ok(None)), "watch outlived its store: {end:?}");
    // And the database can be opened again while the old stream object still exists.
    SqliteStore::open(dir.path().join("state.db")).unwrap();
}

#[tokio::test]
async fn database_written_by_newer_schema_is_refused() {
    let dir = temp_dir();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).err().expect("newer schema opened");
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[tokio::test]
async fn failures_keep_the_operation_the_path_and_the_cause() {
    let dir = temp_dir();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let err = skiff_store::open(&format!("sqlite://{}/state.db", file.display()), dir.path())
        .await
        .err()
        .expect("a database under a regular file");
    assert!(
        matches!(err, StoreError::Io { op: "create", .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), format!("create {}", file.display()));
    let cause = std::error::Error::source(&err).expect("the cause is kept");
    assert!(cause.to_string().contains("exists"), "{cause}");
    let err = skiff_store::open("mysql://db", dir.path())
        .await
        .err()
        .unwrap();
    assert_eq!(
        skiff_core::HasKind::kind(&err),
        skiff_core::ErrorKind::InvalidArgument,
        "{err}"
    );
}
