//! The control plane's datastore: a revisioned key-value store with watch.
//!
//! One narrow trait, [`Store`], with two implementations — embedded SQLite (the default, in
//! the manner of k3s's kine) and etcd 3.x — and one conformance suite that both must pass.
//! Every successful write bumps one global revision; lists can be served at a past revision and
//! watches resume from one until it is compacted. This crate knows nothing of Kubernetes
//! objects: keys are strings, values are opaque bytes.

use std::pin::Pin;

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
    /// the key had before deletion.
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
    Conflict { key: String, current: Option<Box<KeyValue>> },
    /// The requested revision was compacted away.
    #[error("required revision {requested} has been compacted (oldest available {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    /// The requested revision is newer than the store's current one.
    #[error("required revision {requested} is in the future (current {current})")]
    FutureRevision { requested: i64, current: i64 },
    /// Another process holds the store (e.g. a second server on the same SQLite file).
    #[error("datastore is locked by another process: {0}")]
    Locked(String),
    #[error("datastore backend error: {0}")]
    Backend(String),
}

impl skiff_core::HasKind for StoreError {
    fn kind(&self) -> skiff_core::ErrorKind {
        use skiff_core::ErrorKind;
        match self {
            StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::AlreadyExists(_) | StoreError::Conflict { .. } => ErrorKind::Conflict,
            StoreError::Compacted { .. } => ErrorKind::Gone,
            StoreError::FutureRevision { .. } => ErrorKind::InvalidArgument,
            StoreError::Locked(_) | StoreError::Backend(_) => ErrorKind::Internal,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stream of watch events; ends (or yields an error) when the store shuts down or the
/// watcher falls behind compaction.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

/// The datastore seam. All implementations must pass `conformance::run_all`.
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
    /// `after_revision`, in order, then live. `Compacted` if `after_revision` is too old.
    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream>;

    /// The newest revision (0 for an empty store).
    async fn current_revision(&self) -> Result<i64>;

    /// Forgets history at and before `revision`; the latest value of each key stays.
    async fn compact(&self, revision: i64) -> Result<()>;
}
