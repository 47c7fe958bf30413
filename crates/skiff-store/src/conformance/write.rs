//! Properties of writes: compare-on-revision semantics and contention.

use std::collections::HashSet;
use std::sync::Arc;

use super::{kv, next_event};
use crate::{EventType, Store, StoreError};

pub async fn create_get_update_delete(store: Arc<dyn Store>) {
    let key = "/crud/a";
    assert_eq!(store.get(key).await.unwrap(), None, "fresh store has {key}");

    let r1 = store.create(key, b"one".to_vec()).await.unwrap();
    assert!(r1 > 0, "revisions are positive, got {r1}");
    let v1 = kv(key, b"one", r1, r1);
    assert_eq!(store.get(key).await.unwrap(), Some(v1.clone()));

    match store.create(key, b"other".to_vec()).await {
        Err(StoreError::AlreadyExists(k)) => assert_eq!(k, key),
        other => panic!("second create of {key}: expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store.get(key).await.unwrap(),
        Some(v1.clone()),
        "failed create changed the key"
    );

    match store.update(key, b"stale".to_vec(), r1 + 1000).await {
        Err(StoreError::Conflict { key: k, current }) => {
            assert_eq!(k, key);
            assert_eq!(
                current.as_deref(),
                Some(&v1),
                "conflict must carry the current value"
            );
        }
        other => panic!("update at wrong revision: expected Conflict, got {other:?}"),
    }
    let r2 = store.update(key, b"two".to_vec(), r1).await.unwrap();
    assert!(r2 > r1, "update revision {r2} not after create {r1}");
    let v2 = kv(key, b"two", r1, r2);
    assert_eq!(store.get(key).await.unwrap(), Some(v2.clone()));

    match store.update(key, b"lost".to_vec(), r1).await {
        Err(StoreError::Conflict { current, .. }) => assert_eq!(current.as_deref(), Some(&v2)),
        other => panic!("update at superseded revision: expected Conflict, got {other:?}"),
    }
    match store.update("/crud/missing", b"x".to_vec(), r1).await {
        Err(StoreError::NotFound(k)) => assert_eq!(k, "/crud/missing"),
        other => panic!("update of absent key: expected NotFound, got {other:?}"),
    }
    match store.delete(key, Some(r1)).await {
        Err(StoreError::Conflict { current, .. }) => assert_eq!(current.as_deref(), Some(&v2)),
        other => panic!("delete at superseded revision: expected Conflict, got {other:?}"),
    }
    assert_eq!(
        store.get(key).await.unwrap(),
        Some(v2.clone()),
        "failed delete removed the key"
    );

    let (deleted, r3) = store.delete(key, Some(r2)).await.unwrap();
    assert_eq!(deleted, v2, "delete returns the deleted key-value");
    assert!(r3 > r2);
    assert_eq!(store.get(key).await.unwrap(), None);
    for result in [
        store.delete(key, None).await.map(|_| ()),
        store.delete(key, Some(r2)).await.map(|_| ()),
        store.update(key, b"x".to_vec(), r2).await.map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(StoreError::NotFound(_))),
            "write to deleted key: expected NotFound, got {result:?}"
        );
    }

    let r4 = store.create(key, b"again".to_vec()).await.unwrap();
    assert!(r4 > r3);
    assert_eq!(
        store.get(key).await.unwrap(),
        Some(kv(key, b"again", r4, r4)),
        "a re-created key starts a new incarnation"
    );
    let (deleted, r5) = store.delete(key, None).await.unwrap();
    assert_eq!(deleted, kv(key, b"again", r4, r4));
    assert!(r5 > r4);
    assert!(store.current_revision().await.unwrap() >= r5);
}

pub async fn values_are_opaque_bytes(store: Arc<dyn Store>) {
    let binary = vec![0u8, 255, 1, 0xc3, 0x28, 0, 10, 13];
    let r = store.create("/bytes/bin", binary.clone()).await.unwrap();
    assert_eq!(
        store.get("/bytes/bin").await.unwrap(),
        Some(kv("/bytes/bin", &binary, r, r))
    );
    let r = store.create("/bytes/empty", Vec::new()).await.unwrap();
    assert_eq!(
        store.get("/bytes/empty").await.unwrap(),
        Some(kv("/bytes/empty", b"", r, r))
    );
    let big = (0..1_000_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>();
    let r = store.create("/bytes/big", big.clone()).await.unwrap();
    assert_eq!(
        store.get("/bytes/big").await.unwrap(),
        Some(kv("/bytes/big", &big, r, r))
    );
    let key = "/bytes/ünïcødé key with spaces";
    let r = store.create(key, b"u".to_vec()).await.unwrap();
    assert_eq!(store.get(key).await.unwrap(), Some(kv(key, b"u", r, r)));
}

const TASKS: usize = 20;
const INCREMENTS: usize = 20;

/// 20 tasks × 20 compare-and-swap increments of one counter: the counter ends at 400, and a
/// watch sees 400 updates with values 1..=400 at strictly increasing revisions.
pub async fn concurrent_cas_loses_no_update(store: Arc<dyn Store>) {
    let key = "/cas/counter";
    let start = store.create(key, b"0".to_vec()).await.unwrap();
    let mut watch = store.watch("/cas/", start).await.unwrap();
    let tasks = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                let mut current = store.get(key).await.unwrap().expect("counter exists");
                while revisions.len() < INCREMENTS {
                    let n: u64 = std::str::from_utf8(&current.value)
                        .unwrap()
                        .parse()
                        .unwrap();
                    let next = (n + 1).to_string().into_bytes();
                    match store.update(key, next.clone(), current.mod_revision).await {
                        Ok(rev) => {
                            revisions.push(rev);
                            current.value = next;
                            current.mod_revision = rev;
                        }
                        Err(StoreError::Conflict { current: now, .. }) => {
                            let now = now.expect("counter still exists");
                            assert!(
                                now.mod_revision > current.mod_revision,
                                "conflict went back"
                            );
                            current = *now;
                        }
                        Err(e) => panic!("update failed: {e}"),
                    }
                }
                revisions
            })
        })
        .collect::<Vec<_>>();
    let mut all = Vec::new();
    for task in tasks {
        let revisions = task.await.expect("writer task panicked");
        assert!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "one task's revisions went back: {revisions:?}"
        );
        all.extend(revisions);
    }
    let total = TASKS * INCREMENTS;
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), total, "two updates got the same revision");
    let counter = store.get(key).await.unwrap().unwrap();
    assert_eq!(
        counter.value,
        total.to_string().into_bytes(),
        "an update was lost"
    );
    all.sort_unstable();
    assert_eq!(counter.mod_revision, *all.last().unwrap());

    for (i, revision) in all.iter().enumerate() {
        let event = next_event(&mut watch).await;
        assert_eq!(event.event_type, EventType::Put);
        assert_eq!(event.revision, *revision, "watch event {i} out of order");
        assert_eq!(event.kv.value, (i + 1).to_string().into_bytes());
        let prev = event.prev_kv.expect("an update has a previous value");
        assert_eq!(prev.value, i.to_string().into_bytes());
    }
}

/// Concurrent creates of distinct keys get distinct revisions; of one key, exactly one wins.
pub async fn concurrent_creates_get_distinct_revisions(store: Arc<dyn Store>) {
    let tasks = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let own = store.create(&format!("/cc/k{i:02}"), vec![i as u8]).await;
                let shared = store.create("/cc/shared", vec![i as u8]).await;
                (own.unwrap(), shared)
            })
        })
        .collect::<Vec<_>>();
    let mut revisions = HashSet::new();
    let mut winners = 0;
    for task in tasks {
        let (own, shared) = task.await.expect("writer task panicked");
        assert!(revisions.insert(own), "revision {own} given twice");
        match shared {
            Ok(rev) => {
                winners += 1;
                assert!(revisions.insert(rev), "revision {rev} given twice");
            }
            Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => panic!("racing create failed oddly: {e}"),
        }
    }
    assert_eq!(
        winners, 1,
        "exactly one racing create of the same key must win"
    );
    let list = store.list("/cc/", None, 0, None).await.unwrap();
    assert_eq!(list.items.len(), TASKS + 1);
}
