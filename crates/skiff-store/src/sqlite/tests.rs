//! Read-slot fairness: callers that stop polling a read while it waits for a slot must not
//! keep the slots they are granted. The tests hold every slot themselves while they park the
//! callers, so that each parked caller is known to be waiting (with free slots a read could
//! finish on its first poll, and the scenario would depend on thread timing).

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::OwnedSemaphorePermit;

use super::{SqliteStore, MAX_READERS};
use crate::Store;

async fn store_with_keys(dir: &tempfile::TempDir) -> (SqliteStore, Vec<String>) {
    let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
    let keys: Vec<String> = (0..600).map(|i| format!("/k/{i:04}")).collect();
    let creates = keys.iter().map(|k| store.create(k, vec![b'x'; 256]));
    for r in futures::future::join_all(creates).await {
        r.unwrap();
    }
    (store, keys)
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("skiff-store-test-")
        .tempdir()
        .unwrap()
}

/// Takes every read slot, as running reads would.
async fn hold_all_slots(store: &SqliteStore) -> OwnedSemaphorePermit {
    let slots = u32::try_from(MAX_READERS).unwrap();
    store
        .inner
        .read_slots
        .clone()
        .acquire_many_owned(slots)
        .await
        .unwrap()
}

/// Watches parked mid-replay (as the API server's watch task is while it waits on a slow
/// client; in the 100-replica Deployment bench, in-process controllers' request futures): before
/// the fix every later get and list hung.
#[tokio::test]
async fn watches_parked_mid_replay_do_not_starve_reads() {
    let dir = temp_dir();
    let (store, keys) = store_with_keys(&dir).await;
    // More events than one replay page (500), so that every watch has another page to read.
    let mut watches = Vec::new();
    for _ in 0..16 {
        let mut w = store.watch("/k/", 0).await.unwrap();
        for _ in 0..500 {
            w.next().await.unwrap().unwrap();
        }
        watches.push(w);
    }
    // One poll each while no slot is free: every watch waits for one. Then nobody polls the
    // watches again until the gets below are answered.
    let held = hold_all_slots(&store).await;
    for w in &mut watches {
        assert!(
            w.next().now_or_never().is_none(),
            "a read ran without a slot"
        );
    }
    drop(held);
    for key in keys.iter().take(20) {
        let got = tokio::time::timeout(Duration::from_secs(20), store.get(key))
            .await
            .unwrap_or_else(|_| panic!("get {key} hung behind parked watches"))
            .unwrap();
        assert_eq!(got.map(|kv| kv.key).as_ref(), Some(key));
        let list = tokio::time::timeout(Duration::from_secs(20), store.list("/k/", None, 0, None))
            .await
            .expect("list hung behind parked watches")
            .unwrap();
        assert_eq!(list.items.len(), 600);
    }
    // The watches go on where they stopped.
    for w in &mut watches {
        let ev = tokio::time::timeout(Duration::from_secs(20), w.next())
            .await
            .expect("watch stalled")
            .unwrap()
            .unwrap();
        assert_eq!(ev.kv.key, "/k/0500");
    }
}

/// The same with plain reads: lists polled once and then left alone while they wait.
#[tokio::test]
async fn lists_parked_while_waiting_do_not_starve_reads() {
    let dir = temp_dir();
    let (store, keys) = store_with_keys(&dir).await;
    let held = hold_all_slots(&store).await;
    let mut parked: Vec<_> = (0..16)
        .map(|_| Box::pin(store.list("/k/", None, 0, None)))
        .collect();
    for list in &mut parked {
        assert!(list.now_or_never().is_none(), "a read ran without a slot");
    }
    drop(held);
    for key in keys.iter().take(20) {
        let got = tokio::time::timeout(Duration::from_secs(20), store.get(key))
            .await
            .unwrap_or_else(|_| panic!("get {key} hung behind parked lists"))
            .unwrap();
        assert_eq!(got.map(|kv| kv.key).as_ref(), Some(key));
    }
    for list in parked {
        let list = tokio::time::timeout(Duration::from_secs(20), list)
            .await
            .expect("parked list never finished")
            .unwrap();
        assert_eq!(list.items.len(), 600);
    }
}
