//! The properties every [`Store`](crate::Store) implementation must have, as one suite both
//! engines run (`tests/sqlite.rs`, `tests/etcd.rs`): compare-on-revision writes with the right errors,
//! ordered and paginated lists at past revisions, watches that replay history and continue
//! live without gaps, no lost update under contention, and compaction.
//!
//! Compiled only with the `conformance` cargo feature; it is test code (a property panics on
//! its first violated assertion) and must stay out of release builds. An engine's test file
//! invokes [`store_conformance_tests!`](crate::store_conformance_tests), which expands to one
//! test per property, so the runner reports each property on its own and one failure hides no
//! other. Each property gets a fresh store (or, on a shared server, its own key prefix) and
//! uses keys under its own prefix, and assumes nothing about absolute revisions: an engine
//! may share its revision counter with other writers (etcd does).

#[doc(hidden)]
pub mod list;
#[doc(hidden)]
pub mod watch;
#[doc(hidden)]
pub mod write;

use std::time::Duration;

use futures::StreamExt;

use crate::{Event, KeyValue, WatchStream};

/// How long a property waits for an expected watch event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// What a store factory learns about the property it makes a store for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Property {
    /// The property's name, unique in the suite: usable as a key prefix or a file name.
    pub name: &'static str,
    /// Whether the property compacts the store. A compaction forgets the history of every key,
    /// so stores that share one server's history (prefixes on one etcd) must not run any other
    /// property meanwhile.
    pub compacts: bool,
}

/// Expands to one `#[tokio::test]` per conformance property. `$make` names an
/// `async fn(Property) -> (Arc<dyn Store>, G)`: a fresh store for that property and a guard
/// `G` held until the property ends (a temporary directory, a lock on a shared server).
/// Invoke it inside a module to group the tests under its name:
///
/// ```text
/// mod conformance {
///     skiff_store::store_conformance_tests!(super::fresh_store);
/// }
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:path) => {
        $crate::__store_conformance_tests! { $make;
            keeps_history: [
                write::create_get_update_delete,
                write::values_are_opaque_bytes,
                write::concurrent_cas_loses_no_update,
                write::concurrent_creates_get_distinct_revisions,
                list::list_orders_keys_and_isolates_prefixes,
                list::list_paginates_with_limit_and_start_after,
                list::list_at_past_revision_sees_old_values,
                list::list_larger_than_grpc_message_limit,
                list::future_revision_is_refused,
                watch::watch_replays_history_then_continues_live,
                watch::watch_filters_by_prefix,
                watch::watch_seam_has_no_gap_under_writes,
                watch::slow_watcher_misses_nothing,
            ],
            compacts: [
                list::watch_from_zero_after_compaction_failed_only_in_stream,
                list::compaction_forgets_history_keeps_data,
            ],
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_tests {
    ($make:path;
     keeps_history: [$($module:ident::$name:ident),* $(,)?],
     compacts: [$($cmodule:ident::$cname:ident),* $(,)?] $(,)?) => {
        $($crate::__store_conformance_test!($make, $module, $name, false);)*
        $($crate::__store_conformance_test!($make, $cmodule, $cname, true);)*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_test {
    ($make:path, $module:ident, $name:ident, $compacts:expr) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let property = $crate::conformance::Property {
                name: stringify!($name),
                compacts: $compacts,
            };
            let (store, _guard) = $make(property).await;
            $crate::conformance::$module::$name(store).await;
        }
    };
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
