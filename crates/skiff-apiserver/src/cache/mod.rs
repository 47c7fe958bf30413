//! The watch cache: lists, gets and watches served from memory, as kube-apiserver's cacher
//! serves them, instead of from the store.
//!
//! One store watch over every key ([`feed`]) keeps, per resource that has been read, the
//! objects at the newest revision the feed has seen and a ring of recent changes
//! ([`resource`]). Objects are held once, as their plain stored JSON plus the labels and
//! field-selector values selectors need ([`entry`]), shared by the map and the ring; the
//! JSON is kept zstd-packed against a dictionary per resource ([`pack`]).
//!
//! Consistency: a read without a resourceVersion asks the store for its current revision
//! (one cheap query) and waits until the feed has got that far, so a client's writes are in
//! its next read (read-your-writes, also across servers on one etcd). `resourceVersion=0`
//! reads whatever the cache holds; `NotOlderThan` waits for that revision. If the feed does
//! not get there in time (the store is failing, or revisions without events under our keys)
//! the read goes to the store, as every read did before.
//!
//! It writes nothing and never decides what a read means: handlers choose the revision, the
//! cache says whether it can serve it.

mod entry;
mod feed;
mod pack;
mod pruned;
mod resource;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

pub(crate) use entry::{CacheEvent, Entry};
pub(crate) use resource::{ResourceCache, Since};

use crate::error::ApiError;
use crate::registry::{Backend, Kind};
use crate::storage::Storage;

/// How long a read waits for the cache to reach the revision it needs before it goes to the
/// store instead (kube-apiserver waits 3 s too).
const WAIT: Duration = Duration::from_secs(3);

/// The revision a read needs the cache to have reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadAt {
    /// The newest: whatever the store holds now (no resourceVersion).
    Consistent,
    /// Anything the cache holds (`resourceVersion=0`).
    Any,
    /// At least this revision.
    NotOlderThan(i64),
}

impl ReadAt {
    /// What a list or get with `resourceVersion=rv` (not Exact) asks for.
    pub fn from_rv(rv: Option<i64>) -> ReadAt {
        match rv {
            None => ReadAt::Consistent,
            Some(0) => ReadAt::Any,
            Some(n) => ReadAt::NotOlderThan(n),
        }
    }
}

/// The watch caches of one API server.
#[derive(Clone)]
pub(crate) struct WatchCache(Arc<Shared>);

pub(crate) struct Shared {
    resources: RwLock<HashMap<String, Arc<ResourceCache>>>,
    /// The revision the feed has applied every change up to.
    fed: watch::Sender<i64>,
    requests: mpsc::UnboundedSender<feed::AddCache>,
    /// The feed's end of `requests` and its store, until the first read starts it.
    unstarted: Mutex<Option<(mpsc::UnboundedReceiver<feed::AddCache>, Storage)>>,
    /// Changes kept per resource.
    capacity: usize,
    /// The feed is watching the store (false while it restarts after an error).
    live: AtomicBool,
    /// False: every read goes to the store (`--watch-cache=false`).
    enabled: bool,
}

impl Shared {
    fn caches(&self) -> Vec<Arc<ResourceCache>> {
        let map = self.resources.read().unwrap_or_else(|p| p.into_inner());
        map.values().cloned().collect()
    }

    fn cache(&self, prefix: &str) -> Option<Arc<ResourceCache>> {
        let map = self.resources.read().unwrap_or_else(|p| p.into_inner());
        map.get(prefix).cloned()
    }

    fn insert(&self, prefix: String, cache: Arc<ResourceCache>) {
        let mut map = self.resources.write().unwrap_or_else(|p| p.into_inner());
        map.insert(prefix, cache);
    }

    fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
    }

    fn publish(&self, revision: i64) {
        self.fed.send_if_modified(|r| {
            let newer = revision > *r;
            *r = (*r).max(revision);
            newer
        });
    }
}

impl WatchCache {
    /// Caches over `storage`, keeping `capacity` changes per resource for watches.
    pub fn new(storage: Storage, capacity: usize) -> WatchCache {
        let (requests, rx) = mpsc::unbounded_channel();
        WatchCache(Arc::new(Shared {
            resources: RwLock::default(),
            fed: watch::Sender::new(0),
            requests,
            unstarted: Mutex::new(Some((rx, storage))),
            capacity,
            live: AtomicBool::new(false),
            enabled: true,
        }))
    }

    /// No cache: every read goes to the store, as kube-apiserver's `--watch-cache=false`.
    pub fn disabled() -> WatchCache {
        let (requests, _) = mpsc::unbounded_channel();
        WatchCache(Arc::new(Shared {
            resources: RwLock::default(),
            fed: watch::Sender::new(0),
            requests,
            unstarted: Mutex::new(None),
            capacity: 0,
            live: AtomicBool::new(false),
            enabled: false,
        }))
    }

    /// Caches keeping the default number of changes per resource.
    pub fn with_default_capacity(storage: Storage) -> WatchCache {
        Self::new(storage, resource::EVENTS_KEPT)
    }

    /// Starts the feed on first use (inside the runtime that serves requests).
    fn start(&self) {
        let mut unstarted = self.0.unstarted.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((rx, storage)) = unstarted.take() {
            tokio::spawn(feed::run(Arc::downgrade(&self.0), storage, rx));
        }
    }

    /// The revision every cache has applied all changes up to.
    pub fn fed(&self) -> i64 {
        *self.0.fed.borrow()
    }

    /// Wakes when the feed gets further.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.0.fed.subscribe()
    }

    /// The cache of `kind`'s resource, created (listed from the store) on first use; None
    /// for resources the store does not hold or when the feed cannot make one in time.
    pub async fn resource(&self, kind: &'static dyn Kind) -> Option<Arc<ResourceCache>> {
        if !self.0.enabled || kind.backend() != Backend::Store {
            return None;
        }
        self.start();
        if let Some(cache) = self.0.cache(&kind.info().prefix()) {
            return Some(cache);
        }
        let (reply, rx) = oneshot::channel();
        self.0.requests.send(feed::AddCache { kind, reply }).ok()?;
        match tokio::time::timeout(WAIT, rx).await {
            Ok(Ok(Ok(cache))) => Some(cache),
            Ok(Ok(Err(e))) => {
                tracing::debug!(error = %e, resource = kind.info().plural, "watch cache not created");
                None
            }
            _ => None,
        }
    }

    /// The cache of `kind`'s resource once it has reached what `at` asks for (see
    /// [`ReadAt`]), with the revision the feed is at; None when the read should go to the
    /// store.
    pub async fn ready(
        &self,
        storage: &Storage,
        kind: &'static dyn Kind,
        at: ReadAt,
    ) -> Result<Option<(Arc<ResourceCache>, i64)>, ApiError> {
        let Some(cache) = self.resource(kind).await else {
            return Ok(None);
        };
        if !self.0.live.load(Ordering::Acquire) {
            return Ok(None);
        }
        let min = match at {
            ReadAt::Any => 0,
            ReadAt::NotOlderThan(n) => n,
            ReadAt::Consistent => storage.store.current_revision().await?,
        };
        if self.fed() >= min {
            return Ok(Some((cache, self.fed())));
        }
        let mut rx = self.subscribe();
        let reached = tokio::time::timeout(WAIT, rx.wait_for(|r| *r >= min))
            .await
            .is_ok_and(|r| r.is_ok());
        match reached {
            true => Ok(Some((cache, self.fed()))),
            false => {
                tracing::debug!(
                    min,
                    fed = self.fed(),
                    "watch cache behind the store, reading the store"
                );
                Ok(None)
            }
        }
    }
}
