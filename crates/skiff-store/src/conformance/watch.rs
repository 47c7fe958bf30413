//! Properties of watches: replay, the replay/live seam, prefix filtering, slow consumers.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{kv, next_event};
use crate::{Event, EventType, Store, WatchStream};

fn put(kv: crate::KeyValue, prev_kv: Option<crate::KeyValue>) -> Event {
    Event {
        event_type: EventType::Put,
        revision: kv.mod_revision,
        kv,
        prev_kv,
    }
}

pub async fn watch_replays_history_then_continues_live(store: Arc<dyn Store>) {
    let r1 = store.create("/w/a", b"1".to_vec()).await.unwrap();
    let r2 = store.update("/w/a", b"2".to_vec(), r1).await.unwrap();
    let r3 = store.create("/w/b", b"b".to_vec()).await.unwrap();
    let (_, r4) = store.delete("/w/a", Some(r2)).await.unwrap();
    let r5 = store.create("/w/a", b"3".to_vec()).await.unwrap();

    let a1 = kv("/w/a", b"1", r1, r1);
    let a2 = kv("/w/a", b"2", r1, r2);
    let b = kv("/w/b", b"b", r3, r3);
    let history = [
        put(a1.clone(), None),
        put(a2.clone(), Some(a1)),
        put(b.clone(), None),
        Event {
            event_type: EventType::Delete,
            revision: r4,
            kv: a2.clone(),
            prev_kv: Some(a2),
        },
        put(kv("/w/a", b"3", r5, r5), None),
    ];

    let mut from_r1 = store.watch("/w/", r1).await.unwrap();
    let mut from_start = store.watch("/w/", r1 - 1).await.unwrap();
    for expected in &history[1..] {
        assert_eq!(
            &next_event(&mut from_r1).await,
            expected,
            "replay after {r1}"
        );
    }
    for expected in &history {
        assert_eq!(
            &next_event(&mut from_start).await,
            expected,
            "replay after {}",
            r1 - 1
        );
    }
    let mut live = store
        .watch("/w/", store.current_revision().await.unwrap())
        .await
        .unwrap();

    let r6 = store.update("/w/b", b"b2".to_vec(), r3).await.unwrap();
    let expected = put(kv("/w/b", b"b2", r3, r6), Some(b));
    for watch in [&mut from_r1, &mut from_start, &mut live] {
        assert_eq!(next_event(watch).await, expected, "live event after replay");
    }
}

pub async fn watch_filters_by_prefix(store: Arc<dyn Store>) {
    let start = store.create("/wp/before", b"x".to_vec()).await.unwrap();
    let mut watch = store.watch("/wp/a/", start).await.unwrap();
    let mut wanted = Vec::new();
    for key in [
        "/wp/ab/x", "/wp/a", "/wp/b/y", "/wp/a/y", "/wp/ab", "/wp/a/z", "/wp/a0",
    ] {
        let rev = store.create(key, b"v".to_vec()).await.unwrap();
        if key.starts_with("/wp/a/") {
            wanted.push(rev);
        }
    }
    store.delete("/wp/ab/x", None).await.unwrap();
    let (_, sentinel) = store.delete("/wp/a/y", None).await.unwrap();
    wanted.push(sentinel);
    for rev in wanted {
        let event = next_event(&mut watch).await;
        assert!(
            event.kv.key.starts_with("/wp/a/"),
            "event for {} leaked in",
            event.kv.key
        );
        assert_eq!(event.revision, rev, "missing or extra event");
    }
}

const SEAM_WRITES: usize = 200;

/// Watches opened from past revisions while writes keep coming see exactly the writes after
/// their revision: none lost or doubled where replay hands over to live events.
pub async fn watch_seam_has_no_gap_under_writes(store: Arc<dyn Store>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..SEAM_WRITES {
                let rev = store
                    .create(&format!("/seam/k{i:04}"), vec![1])
                    .await
                    .unwrap();
                tx.send(rev).unwrap();
            }
        })
    };
    let mut revisions = Vec::new();
    let mut watches: Vec<(i64, WatchStream)> = Vec::new();
    while let Some(rev) = rx.recv().await {
        revisions.push(rev);
        if revisions.len() % 40 == 5 {
            let past = revisions[revisions.len() - 5];
            watches.push((past, store.watch("/seam/", past).await.unwrap()));
            let now = store.current_revision().await.unwrap();
            watches.push((now, store.watch("/seam/", now).await.unwrap()));
        }
    }
    writer.await.expect("writer task panicked");
    let end = store.create("/seam/end", vec![2]).await.unwrap();
    revisions.push(end);
    for (after, watch) in &mut watches {
        for &expected in revisions.iter().filter(|r| **r > *after) {
            let event = next_event(watch).await;
            assert_eq!(
                event.revision, expected,
                "watch after {after}: gap or duplicate"
            );
        }
    }
}

const SLOW_WRITES: usize = 1500;

/// A watcher that reads nothing while many writes happen still gets every event, in order.
pub async fn slow_watcher_misses_nothing(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch("/slow/", start).await.unwrap();
    let mut revisions = Vec::with_capacity(SLOW_WRITES);
    for i in 0..SLOW_WRITES {
        let key = if i % 3 == 0 {
            "/slow-other/k"
        } else {
            "/slow/k"
        };
        let key = format!("{key}{i:05}");
        let rev = store.create(&key, vec![0]).await.unwrap();
        if key.starts_with("/slow/") {
            revisions.push(rev);
        }
    }
    for expected in revisions {
        let event = next_event(&mut watch).await;
        assert_eq!(
            event.revision, expected,
            "slow watcher skipped or reordered events"
        );
    }
}
