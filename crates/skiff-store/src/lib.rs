//! The control plane's datastore: a revisioned key-value store with watch.
//!
//! One narrow trait, [`Store`], with two implementations — embedded SQLite (the default, in
//! the manner of k3s's kine) and etcd 3.x — and one conformance suite that both must pass.
//! Every successful write bumps one global revision; lists can be served at a past revision and
//! watches resume from one until it is compacted. This crate knows nothing of Kubernetes
//! objects: keys are strings, values are opaque bytes.
//!
//! Pick an engine with [`open`] (`sqlite`, `sqlite:///path/to.db`, `etcd://h1:2379,h2:2379`).
//! The `conformance` module (cargo feature `conformance`) holds the properties every engine
//! is tested against; `tests/sqlite.rs` and `tests/etcd.rs` run them.

#![forbid(unsafe_code)]

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod etcd;
pub mod sqlite;

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;

/// A stored key with its value and the revisions that created and last modified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created this key (its current incarnation).
    pub create_revision: i64,
    /// Revision of the last write to this key.
    pub mod_revision: i64,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created or updated.
    Put,
    /// Deleted.
    Delete,
}

/// One change seen by a watch, in global revision order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_type: EventType,
    /// The revision of this change.
    pub revision: i64,
    /// For `Put`: the new key-value (`mod_revision == revision`). For `Delete`: the last value
    /// the key had before deletion, with that value's own `mod_revision` (the deletion's
    /// revision is `revision`).
    pub kv: KeyValue,
    /// The value before this change, if there was one.
    pub prev_kv: Option<KeyValue>,
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// Keys in ascending byte order.
    pub items: Vec<KeyValue>,
    /// The revision the list was served at.
    pub revision: i64,
    /// True when more keys matched than `limit` allowed.
    pub more: bool,
}

/// Errors of every store implementation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key not found: {0}")]
    NotFound(String),
    #[error("key already exists: {0}")]
    AlreadyExists(String),
    /// A compare-on-revision failed; `current` is what the key holds now (None if absent).
    #[error("revision mismatch on {key}")]
    Conflict {
        key: String,
        current: Option<Box<KeyValue>>,
    },
    /// The requested revision was compacted away.
    #[error("required revision {requested} has been compacted (oldest available {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    /// The requested revision is newer than the store's current one.
    #[error("required revision {requested} is in the future (current {current})")]
    FutureRevision { requested: i64, current: i64 },
    /// Another process holds the store (e.g. a second server on the same SQLite file).
    #[error("datastore is locked by another process: {0}")]
    Locked(String),
    /// SQLite failed at `op` (shared: a failed group commit fails every write in it).
    #[error("sqlite: {op}")]
    Sqlite {
        op: &'static str,
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// etcd failed at `op`.
    #[error("etcd: {op}")]
    Etcd {
        op: &'static str,
        #[source]
        source: etcd_client::Error,
    },
    /// etcd cannot be reached at all.
    #[error("etcd at {endpoints} is unreachable")]
    Unreachable {
        endpoints: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file of the datastore (its lock file, its directory) or a thread serving it.
    #[error("{op} {}", .path.display())]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A thread of the datastore could not be started.
    #[error("cannot start {what}")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A blocking task of the datastore failed.
    #[error("datastore task failed: {op}")]
    Task {
        op: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// The datastore is shutting down, or a part of it stopped.
    #[error("datastore unavailable: {0}")]
    Unavailable(String),
    /// What the datastore holds or answered makes no sense to skiff.
    #[error("datastore corrupt: {0}")]
    Corrupt(String),
    #[error("invalid datastore {datastore:?}: {why}")]
    InvalidDatastore { datastore: String, why: String },
}

impl skiff_core::HasKind for StoreError {
    fn kind(&self) -> skiff_core::ErrorKind {
        use skiff_core::ErrorKind;
        match self {
            StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::AlreadyExists(_) | StoreError::Conflict { .. } => ErrorKind::Conflict,
            StoreError::Compacted { .. } => ErrorKind::Gone,
            StoreError::FutureRevision { .. } | StoreError::InvalidDatastore { .. } => {
                ErrorKind::InvalidArgument
            }
            StoreError::Locked(_)
            | StoreError::Sqlite { .. }
            | StoreError::Etcd { .. }
            | StoreError::Unreachable { .. }
            | StoreError::Io { .. }
            | StoreError::Task { .. }
            | StoreError::Thread { .. }
            | StoreError::Unavailable(_)
            | StoreError::Corrupt(_) => ErrorKind::Internal,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stream of watch events; ends (or yields an error) when the store shuts down or the
/// watcher falls behind compaction.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

/// The datastore seam. All implementations must pass the conformance suite
/// (`store_conformance_tests!`, cargo feature `conformance`).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value of `key`, or None.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys starting with `prefix`, strictly after `start_after` if given, at most `limit`
    /// (0 = no limit), as of `revision` (None = now). A revision older than the compaction
    /// point gives `Compacted`; a future one gives `FutureRevision`.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> Result<ListResult>;

    /// Creates `key`; `AlreadyExists` if present. Returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64>;

    /// Replaces `key` only if its `mod_revision` equals `expected_revision`; otherwise
    /// `Conflict` (or `NotFound` if absent). Returns the new revision.
    async fn update(&self, key: &str, value: Vec<u8>, expected_revision: i64) -> Result<i64>;

    /// Deletes `key`, only if its `mod_revision` equals `expected_revision` when given.
    /// Returns the deleted key-value and the revision of the deletion.
    async fn delete(&self, key: &str, expected_revision: Option<i64>) -> Result<(KeyValue, i64)>;

    /// Events for keys starting with `prefix` with revision strictly greater than
    /// `after_revision`, in order, then live. `Compacted` if `after_revision` is older than the
    /// compaction point, `FutureRevision` if it is newer than the current revision.
    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream>;

    /// The newest revision (0 for an empty store).
    async fn current_revision(&self) -> Result<i64>;

    /// Forgets history before `revision`: reads at older revisions fail with `Compacted`, the
    /// value of each key as of `revision` and everything after stay. Compacting at or below
    /// the current compaction point does nothing; a future revision gives `FutureRevision`.
    async fn compact(&self, revision: i64) -> Result<()>;
}

/// Opens the datastore named by `datastore`: `sqlite` (or empty) for `<data_dir>/state.db`,
/// `sqlite:///path/to.db`, or `etcd://h1:2379,h2:2379[/key-prefix]`.
pub async fn open(datastore: &str, data_dir: &Path) -> Result<Arc<dyn Store>> {
    match Datastore::parse(datastore, data_dir)? {
        Datastore::Sqlite(path) => {
            let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(path))
                .await
                .map_err(|source| StoreError::Task {
                    op: "open sqlite",
                    source,
                })??;
            Ok(Arc::new(store))
        }
        Datastore::Etcd { endpoints, prefix } => Ok(Arc::new(
            etcd::EtcdStore::connect(&endpoints, &prefix).await?,
        )),
    }
}

/// A parsed `--datastore` value.
#[derive(Debug, PartialEq, Eq)]
enum Datastore {
    Sqlite(std::path::PathBuf),
    Etcd {
        endpoints: Vec<String>,
        prefix: String,
    },
}

impl Datastore {
    fn parse(datastore: &str, data_dir: &Path) -> Result<Datastore> {
        let invalid = |why: &str| StoreError::InvalidDatastore {
            datastore: datastore.to_string(),
            why: why.to_string(),
        };
        if datastore.is_empty() || datastore == "sqlite" {
            return Ok(Datastore::Sqlite(data_dir.join("state.db")));
        }
        if let Some(path) = datastore.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(invalid("no database path after sqlite://"));
            }
            return Ok(Datastore::Sqlite(path.into()));
        }
        if let Some(rest) = datastore.strip_prefix("etcd://") {
            let (hosts, prefix) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let endpoints: Vec<String> = hosts
                .split(',')
                .filter(|h| !h.is_empty())
                .map(|h| format!("http://{h}"))
                .collect();
            if endpoints.is_empty() {
                return Err(invalid("no etcd endpoints after etcd://"));
            }
            return Ok(Datastore::Etcd {
                endpoints,
                prefix: prefix.to_owned(),
            });
        }
        Err(invalid(
            "expected sqlite, sqlite:///path or etcd://host:port[,host:port]",
        ))
    }
}

/// The smallest byte string greater than every string starting with `prefix`, or None when
/// there is none (empty prefix, or only 0xff bytes).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{prefix_end, Datastore};

    #[test]
    fn prefix_end_carries_over_0xff() {
        assert_eq!(prefix_end(b"/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn datastore_urls_parse() {
        let dir = Path::new("/var/lib/skiff");
        assert_eq!(
            Datastore::parse("sqlite", dir).unwrap(),
            Datastore::Sqlite(dir.join("state.db"))
        );
        assert_eq!(
            Datastore::parse("", dir).unwrap(),
            Datastore::Sqlite(dir.join("state.db"))
        );
        assert_eq!(
            Datastore::parse("sqlite:///tmp/x.db", dir).unwrap(),
            Datastore::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            Datastore::parse("etcd://h1:2379,h2:2379", dir).unwrap(),
            Datastore::Etcd {
                endpoints: vec!["http://h1:2379".into(), "http://h2:2379".into()],
                prefix: String::new()
            }
        );
        assert_eq!(
            Datastore::parse("etcd://h1:2379/skiff", dir).unwrap(),
            Datastore::Etcd {
                endpoints: vec!["http://h1:2379".into()],
                prefix: "/skiff".into()
            }
        );
    }

    #[test]
    fn bad_datastore_urls_are_refused() {
        let dir = Path::new("/var/lib/skiff");
        for bad in ["mysql://x", "sqlite://", "etcd://", "etcd:///p", "postgres"] {
            let err = Datastore::parse(bad, dir).unwrap_err().to_string();
            assert!(err.contains("invalid datastore"), "{bad}: {err}");
        }
    }
}
