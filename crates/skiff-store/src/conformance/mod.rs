//! The properties every [`Store`] implementation must have, as one suite both engines run
//! (`tests/sqlite.rs`, `tests/etcd.rs`): compare-on-revision writes with the right errors,
//! ordered and paginated lists at past revisions, watches that replay history and continue
//! live without gaps, no lost update under contention, and compaction.
//!
//! Compiled only with the `conformance` cargo feature; it is test code (it panics on the first
//! violated property) and must stay out of release builds. Each property gets a fresh store
//! and uses keys under its own prefix, and assumes nothing about absolute revisions: an
//! engine may share its revision counter with other writers (etcd does).

mod list;
mod watch;
mod write;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use crate::{Event, KeyValue, Store, WatchStream};

/// How long a property waits for an expected watch event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

type Property = fn(Arc<dyn Store>) -> BoxFuture<'static, ()>;

/// Every property, by name.
pub const PROPERTIES: &[(&str, Property)] = &[
    ("create_get_update_delete", |s| {
        Box::pin(write::create_get_update_delete(s))
    }),
    ("values_are_opaque_bytes", |s| {
        Box::pin(write::values_are_opaque_bytes(s))
    }),
    ("concurrent_cas_loses_no_update", |s| {
        Box::pin(write::concurrent_cas_loses_no_update(s))
    }),
    ("concurrent_creates_get_distinct_revisions", |s| {
        Box::pin(write::concurrent_creates_get_distinct_revisions(s))
    }),
    ("list_orders_keys_and_isolates_prefixes", |s| {
        Box::pin(list::list_orders_keys_and_isolates_prefixes(s))
    }),
    ("list_paginates_with_limit_and_start_after", |s| {
        Box::pin(list::list_paginates_with_limit_and_start_after(s))
    }),
    ("list_at_past_revision_sees_old_values", |s| {
        Box::pin(list::list_at_past_revision_sees_old_values(s))
    }),
    ("list_larger_than_grpc_message_limit", |s| {
        Box::pin(list::list_larger_than_grpc_message_limit(s))
    }),
    ("future_revision_is_refused", |s| {
        Box::pin(list::future_revision_is_refused(s))
    }),
    (
        "watch_from_zero_after_compaction_failed_only_in_stream",
        |s| Box::pin(list::watch_from_zero_after_compaction_failed_only_in_stream(s)),
    ),
    ("watch_replays_history_then_continues_live", |s| {
        Box::pin(watch::watch_replays_history_then_continues_live(s))
    }),
    ("watch_filters_by_prefix", |s| {
        Box::pin(watch::watch_filters_by_prefix(s))
    }),
    ("watch_seam_has_no_gap_under_writes", |s| {
        Box::pin(watch::watch_seam_has_no_gap_under_writes(s))
    }),
    ("slow_watcher_misses_nothing", |s| {
        Box::pin(watch::slow_watcher_misses_nothing(s))
    }),
    ("compaction_forgets_history_keeps_data", |s| {
        Box::pin(list::compaction_forgets_history_keeps_data(s))
    }),
];

/// Runs every property in turn, each on a fresh store from `make`; panics naming the first
/// property that fails.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    for (name, property) in PROPERTIES {
        let store = make().await;
        if let Err(panic) = AssertUnwindSafe(property(store)).catch_unwind().await {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic)");
            panic!("store conformance property `{name}` failed: {why}");
        }
    }
}

/// The next event of `watch`, which must come within [`EVENT_TIMEOUT`] and not be an error.
pub(crate) async fn next_event(watch: &mut WatchStream) -> Event {
    match tokio::time::timeout(EVENT_TIMEOUT, watch.next()).await {
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
        Ok(None) => panic!("watch ended unexpectedly"),
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(Some(Ok(event))) => event,
    }
}

pub(crate) fn kv(key: &str, value: &[u8], create_revision: i64, mod_revision: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: value.to_vec(),
        create_revision,
        mod_revision,
    }
}
