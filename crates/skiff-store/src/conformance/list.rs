//! Properties of lists, revisions and compaction.

use std::sync::Arc;

use futures::StreamExt;

use super::{kv, next_event};
use crate::{EventType, KeyValue, ListResult, Store, StoreError};

fn keys(list: &ListResult) -> Vec<&str> {
    list.items.iter().map(|kv| kv.key.as_str()).collect()
}

pub async fn list_orders_keys_and_isolates_prefixes(store: Arc<dyn Store>) {
    // Created out of order, with neighbours that share a textual prefix.
    let inside = [
        "/lo/a/z",
        "/lo/a/b",
        "/lo/a/B",
        "/lo/a/é",
        "/lo/a/b/c",
        "/lo/a/a",
        "/lo/a/0",
    ];
    let outside = ["/lo/ab/x", "/lo/ab", "/lo/b/y", "/lo/a", "/lo0", "/ln/a/x"];
    let mut created = Vec::new();
    for key in inside.iter().chain(&outside) {
        let rev = store.create(key, key.as_bytes().to_vec()).await.unwrap();
        created.push(kv(key, key.as_bytes(), rev, rev));
    }
    let last = created.iter().map(|kv| kv.mod_revision).max().unwrap();

    let list = store.list("/lo/a/", None, 0, None).await.unwrap();
    let mut expected: Vec<KeyValue> = created
        .iter()
        .filter(|kv| kv.key.starts_with("/lo/a/"))
        .cloned()
        .collect();
    expected.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    assert_eq!(
        list.items, expected,
        "list of /lo/a/ is wrong or not in byte order"
    );
    assert!(!list.more);
    assert!(
        list.revision >= last,
        "list revision {} before last write {last}",
        list.revision
    );

    let ab = store.list("/lo/ab/", None, 0, None).await.unwrap();
    assert_eq!(
        keys(&ab),
        ["/lo/ab/x"],
        "/lo/ab/ must not see /lo/ab or /lo/a/…"
    );
    let all = store.list("/lo/", None, 0, None).await.unwrap();
    assert_eq!(
        all.items.len(),
        inside.len() + outside.len() - 2,
        "/lo/ sees /lo0 or /ln/"
    );
    assert!(all.items.windows(2).all(|w| w[0].key < w[1].key));
    let none = store.list("/lo/none/", None, 0, None).await.unwrap();
    assert!(none.items.is_empty() && !none.more);
}

pub async fn list_paginates_with_limit_and_start_after(store: Arc<dyn Store>) {
    let names: Vec<String> = (0..10).map(|i| format!("/pg/k{i:02}")).collect();
    for name in names.iter().rev() {
        store.create(name, name.as_bytes().to_vec()).await.unwrap();
    }
    let first = store.list("/pg/", None, 3, None).await.unwrap();
    let pinned = Some(first.revision);
    // Writes between pages must not show in pages pinned at the first page's revision.
    store.create("/pg/k05a", b"late".to_vec()).await.unwrap();
    store.delete("/pg/k01", None).await.unwrap();

    let mut seen: Vec<String> = Vec::new();
    let mut page = first;
    let mut mores = Vec::new();
    loop {
        assert!(page.items.len() <= 3, "page larger than the limit");
        seen.extend(page.items.iter().map(|kv| kv.key.clone()));
        mores.push(page.more);
        if !page.more {
            break;
        }
        let after = seen.last().unwrap().clone();
        page = store.list("/pg/", Some(&after), 3, pinned).await.unwrap();
        assert_eq!(
            Some(page.revision),
            pinned,
            "a pinned page reports another revision"
        );
    }
    assert_eq!(
        seen, names,
        "pages pinned at one revision must add up to that revision's keys"
    );
    assert_eq!(mores, [true, true, true, false]);

    let now = store.list("/pg/", None, 0, None).await.unwrap();
    assert_eq!(now.items.len(), 10, "one created, one deleted");
    assert!(keys(&now).contains(&"/pg/k05a") && !keys(&now).contains(&"/pg/k01"));
    let exact = store.list("/pg/", None, 10, None).await.unwrap();
    assert!(!exact.more, "limit equal to the count: no more");
    let short = store.list("/pg/", None, 9, None).await.unwrap();
    assert!(short.more && short.items.len() == 9);

    let from_gap = store.list("/pg/", Some("/pg/k045"), 2, None).await.unwrap();
    assert_eq!(
        keys(&from_gap),
        ["/pg/k05", "/pg/k05a"],
        "start_after need not exist"
    );
    let before = store.list("/pg/", Some("/a"), 1, None).await.unwrap();
    assert_eq!(keys(&before), ["/pg/k00"], "start_after before the prefix");
    let beyond = store.list("/pg/k", Some("/pg/z"), 0, None).await.unwrap();
    assert!(
        beyond.items.is_empty() && !beyond.more,
        "start_after beyond the prefix"
    );
}

pub async fn list_at_past_revision_sees_old_values(store: Arc<dyn Store>) {
    let ra = store.create("/past/a", b"a1".to_vec()).await.unwrap();
    let rb = store.create("/past/b", b"b1".to_vec()).await.unwrap();
    let ra2 = store.update("/past/a", b"a2".to_vec(), ra).await.unwrap();
    let (_, rdel) = store.delete("/past/b", Some(rb)).await.unwrap();
    let rc = store.create("/past/c", b"c1".to_vec()).await.unwrap();

    let at_b = store.list("/past/", None, 0, Some(rb)).await.unwrap();
    assert_eq!(at_b.revision, rb);
    assert_eq!(
        at_b.items,
        [kv("/past/a", b"a1", ra, ra), kv("/past/b", b"b1", rb, rb)],
        "list at a past revision must show the values of then"
    );
    let at_update = store.list("/past/", None, 0, Some(ra2)).await.unwrap();
    assert_eq!(
        at_update.items,
        [kv("/past/a", b"a2", ra, ra2), kv("/past/b", b"b1", rb, rb)]
    );
    let at_delete = store.list("/past/", None, 0, Some(rdel)).await.unwrap();
    assert_eq!(
        at_delete.items,
        [kv("/past/a", b"a2", ra, ra2)],
        "deleted key still listed"
    );
    let now = store.list("/past/", None, 0, None).await.unwrap();
    assert_eq!(
        now.items,
        [kv("/past/a", b"a2", ra, ra2), kv("/past/c", b"c1", rc, rc)]
    );

    let page = store.list("/past/", None, 1, Some(rb)).await.unwrap();
    assert_eq!(
        (keys(&page), page.more, page.revision),
        (vec!["/past/a"], true, rb)
    );
    let page = store
        .list("/past/", Some("/past/a"), 1, Some(rb))
        .await
        .unwrap();
    assert_eq!((keys(&page), page.more), (vec!["/past/b"], false));
}

pub async fn future_revision_is_refused(store: Arc<dyn Store>) {
    store.create("/fut/a", b"1".to_vec()).await.unwrap();
    let current = store.current_revision().await.unwrap();
    let future = current + 1000;
    let is_future = |e: &StoreError| {
        matches!(e, StoreError::FutureRevision { requested, current: c }
            if *requested == future && *c >= current)
    };
    let err = store
        .list("/fut/", None, 0, Some(future))
        .await
        .unwrap_err();
    assert!(is_future(&err), "list at a future revision: {err:?}");
    let err = store
        .watch("/fut/", future)
        .await
        .err()
        .expect("watch at a future revision");
    assert!(is_future(&err), "watch at a future revision: {err:?}");
    let err = store.compact(future).await.unwrap_err();
    assert!(is_future(&err), "compact at a future revision: {err:?}");
    let at_current = store.list("/fut/", None, 0, Some(current)).await.unwrap();
    assert_eq!(keys(&at_current), ["/fut/a"]);
}

pub async fn compaction_forgets_history_keeps_data(store: Arc<dyn Store>) {
    let r1 = store.create("/cmp/a", b"1".to_vec()).await.unwrap();
    let r2 = store.update("/cmp/a", b"2".to_vec(), r1).await.unwrap();
    let r3 = store.create("/cmp/b", b"b".to_vec()).await.unwrap();
    let (_, r4) = store.delete("/cmp/b", None).await.unwrap();
    let r5 = store.update("/cmp/a", b"3".to_vec(), r2).await.unwrap();
    let r6 = store.create("/cmp/c", b"c".to_vec()).await.unwrap();
    store.compact(r5).await.unwrap();

    for old in [r1, r4] {
        match store.list("/cmp/", None, 0, Some(old)).await {
            Err(StoreError::Compacted {
                requested,
                compacted,
            }) => {
                assert_eq!(requested, old);
                assert!(compacted >= r5, "compaction point {compacted} before {r5}");
            }
            other => panic!("list at compacted revision {old}: {other:?}"),
        }
    }
    match store.watch("/cmp/", r3).await {
        Err(StoreError::Compacted { .. }) => {}
        Err(e) => panic!("watch from a compacted revision: expected Compacted, got {e:?}"),
        Ok(_) => panic!("watch from a compacted revision: expected Compacted, got a stream"),
    }

    let at_compaction = store.list("/cmp/", None, 0, Some(r5)).await.unwrap();
    assert_eq!(
        at_compaction.items,
        [kv("/cmp/a", b"3", r1, r5)],
        "state at the compaction point"
    );
    let now = store.list("/cmp/", None, 0, None).await.unwrap();
    assert_eq!(
        now.items,
        [kv("/cmp/a", b"3", r1, r5), kv("/cmp/c", b"c", r6, r6)]
    );
    let mut watch = store.watch("/cmp/", r5).await.unwrap();
    let event = next_event(&mut watch).await;
    assert_eq!((event.event_type, event.revision), (EventType::Put, r6));

    // Writes go on with revisions after everything before.
    let r7 = store.update("/cmp/a", b"4".to_vec(), r5).await.unwrap();
    assert!(r7 > r6);
    assert_eq!(
        next_event(&mut watch).await.prev_kv,
        Some(kv("/cmp/a", b"3", r1, r5))
    );

    // Compacting again at or below the compaction point changes nothing.
    store.compact(r5).await.unwrap();
    store.compact(r2).await.unwrap();
    assert_eq!(
        store
            .list("/cmp/", None, 0, Some(r5))
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // A key deleted at the compaction point is gone for good and can be created again.
    let (_, r8) = store.delete("/cmp/c", Some(r6)).await.unwrap();
    store.compact(r8).await.unwrap();
    let at = store.list("/cmp/", None, 0, Some(r8)).await.unwrap();
    assert_eq!(at.items, [kv("/cmp/a", b"4", r1, r7)]);
    assert_eq!(store.get("/cmp/c").await.unwrap(), None);
    let r9 = store.create("/cmp/c", b"c2".to_vec()).await.unwrap();
    assert!(r9 > r8);
    assert_eq!(
        store.get("/cmp/c").await.unwrap(),
        Some(kv("/cmp/c", b"c2", r9, r9))
    );
}

/// A watch from revision 0 ("the whole history") once history is compacted fails in the
/// call, as one from any other compacted revision does (etcd used to fail only in-stream).
pub async fn watch_from_zero_after_compaction_failed_only_in_stream(store: Arc<dyn Store>) {
    let r1 = store.create("/cmp0/a", b"1".to_vec()).await.unwrap();
    let r2 = store.update("/cmp0/a", b"2".to_vec(), r1).await.unwrap();
    store.compact(r2).await.unwrap();
    match store.watch("/cmp0/", 0).await {
        Err(StoreError::Compacted { requested, .. }) => assert_eq!(requested, 0),
        Err(e) => panic!("watch from 0 after compaction: expected Compacted, got {e:?}"),
        Ok(_) => panic!("watch from 0 after compaction: expected Compacted, got a stream"),
    }
}

/// A list whose values add up to more than gRPC's default 4 MiB message limit (etcd failed
/// it with "decoded message length too large"), unpaginated and paginated, now and at a past
/// revision. The count is above the etcd engine's internal page size too.
pub async fn list_larger_than_grpc_message_limit(store: Arc<dyn Store>) {
    const COUNT: usize = 640;
    const SIZE: usize = 8 * 1024;
    const _: () = assert!(COUNT * SIZE > 4 * 1024 * 1024);
    let value = |i: usize| {
        let mut v = format!("value {i:04} ").into_bytes();
        v.resize(SIZE, b'a' + (i % 26) as u8);
        v
    };
    let created: Vec<KeyValue> = futures::stream::iter(0..COUNT)
        .map(|i| {
            let store = store.clone();
            async move {
                let key = format!("/big/k{i:04}");
                let rev = store.create(&key, value(i)).await.unwrap();
                kv(&key, &value(i), rev, rev)
            }
        })
        .buffered(32)
        .collect()
        .await;
    let past = store.current_revision().await.unwrap();

    // Change some keys so that the past revision differs from now.
    for old in &created[..10] {
        store
            .update(&old.key, b"small".to_vec(), old.mod_revision)
            .await
            .unwrap();
    }
    for old in &created[10..20] {
        store.delete(&old.key, None).await.unwrap();
    }

    let all = store.list("/big/", None, 0, Some(past)).await.unwrap();
    assert_eq!(all.revision, past);
    assert!(!all.more);
    assert!(
        all.items == created,
        "unpaginated list at a past revision: {} items, expected the {COUNT} created",
        all.items.len()
    );

    let now = store.list("/big/", None, 0, None).await.unwrap();
    assert_eq!(now.items.len(), COUNT - 10);
    assert!(now.items[..10].iter().all(|kv| kv.value == b"small"));
    assert!(
        now.items[10..] == created[20..],
        "unpaginated list now: unchanged keys differ"
    );

    let limit = COUNT - 40;
    let first = store.list("/big/", None, limit, Some(past)).await.unwrap();
    assert_eq!((first.items.len(), first.more), (limit, true));
    assert!(
        first.items == created[..limit],
        "first page at a past revision"
    );
    let last_key = first.items.last().unwrap().key.clone();
    let rest = store
        .list("/big/", Some(&last_key), 0, Some(past))
        .await
        .unwrap();
    assert!(!rest.more);
    assert!(
        rest.items == created[limit..],
        "second page at a past revision"
    );
}
