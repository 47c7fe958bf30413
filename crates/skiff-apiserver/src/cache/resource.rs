//! The cache of one resource: its objects by key at one revision and a ring of its recent
//! changes. Filled and changed only by the feed; read by lists, gets and watches.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use skiff_store::{Event, EventType, KeyValue};
use tokio::sync::watch;

use super::entry::{CacheEvent, Entry};
use super::pack::Dictionary;
use crate::error::ApiError;
use crate::registry::Kind;
use crate::resources::ResourceInfo;
use crate::storage::Storage;

/// Changes kept per resource for watches that resume from a resourceVersion.
pub(crate) const EVENTS_KEPT: usize = 2048;
/// The newest changes per resource that keep the `PartialObjectMetadata` JSON written for
/// metadata-only watches (~1 KB a pod; the garbage collector watches every resource so).
/// Watches that keep up send a change soon after it is applied; older changes are sent only
/// to watches resuming from an older resourceVersion or far behind, and each of those
/// writes the JSON for itself (ADR 0050).
pub(crate) const METADATA_KEPT: usize = 256;

/// The watch cache of one resource (all its versions share it: they share the store keys).
pub(crate) struct ResourceCache {
    /// The served version the cache was created for (its fields are the store's anyway).
    pub info: &'static ResourceInfo,
    /// Field-selector fields each entry keeps the value of: `metadata.name`,
    /// `metadata.namespace` and the kind's own.
    pub fields: Vec<&'static str>,
    state: RwLock<State>,
    capacity: usize,
    /// The revision of this resource's last change (or re-list): watches of the resource wake
    /// on it, not on every change of every resource.
    changed: watch::Sender<i64>,
    /// What the objects' JSON is packed against: made from the first object long enough
    /// (None if zstd refused it: objects stay plain).
    dict: OnceLock<Option<Arc<Dictionary>>>,
}

struct State {
    items: BTreeMap<Box<str>, Arc<Entry>>,
    events: VecDeque<Arc<CacheEvent>>,
    /// Watches can resume from any revision at or after this one.
    oldest: i64,
    /// Changes before `oldest` were dropped (the ring wrapped, or the cache was re-listed
    /// after a store error), as opposed to never seen (before the cache existed).
    truncated: bool,
    /// The revision the feed last brought this resource to.
    revision: i64,
    /// The revision of the last change to this resource (or of its last re-list).
    changed: i64,
}

/// Objects chosen by [`ResourceCache::select`].
pub(crate) struct Selected {
    /// The chosen objects, in key order.
    pub items: Vec<Arc<Entry>>,
    /// The revision they are at.
    pub revision: i64,
    /// The limit was reached and the range holds more objects after the last one chosen.
    pub more: bool,
}

/// Where a watch from a resourceVersion can get its changes.
pub(crate) enum Since {
    /// The changes after it, and the revision the watcher is then at.
    Events(Vec<Arc<CacheEvent>>, i64),
    /// Older than the ring: 410 Gone.
    TooOld,
    /// Before the cache existed: only the store has these changes.
    NotCached,
}

impl ResourceCache {
    pub fn new(kind: &'static dyn Kind, capacity: usize) -> ResourceCache {
        ResourceCache {
            info: kind.info(),
            // Values are read from the stored objects: the storage version's fields, whichever
            // version asked first (events.k8s.io's `regarding.kind` is core's
            // `involvedObject.kind`; a field of another version is read from a decoded copy).
            fields: crate::selector::supported_fields(crate::resources::storage_kind(kind.info())),
            state: RwLock::new(State {
                items: BTreeMap::new(),
                events: VecDeque::new(),
                oldest: 0,
                truncated: false,
                revision: 0,
                changed: 0,
            }),
            capacity,
            changed: watch::Sender::new(0),
            dict: OnceLock::new(),
        }
    }

    /// Wakes on every change (and re-list) of this resource.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.changed.subscribe()
    }

    fn notify(&self, revision: i64) {
        self.changed.send_replace(revision);
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn entry(&self, storage: &Storage, kv: &KeyValue) -> Entry {
        Entry::new(storage, self.info, &self.fields, kv, &self.dict)
    }

    /// Replaces everything with `items`, listed at `revision`. After a store error
    /// (`truncated`) watches from before `revision` get 410 Gone.
    pub fn replace(&self, items: Vec<Entry>, revision: i64, truncated: bool) {
        let mut s = self.write();
        s.items = items
            .into_iter()
            .map(|e| (e.key.clone(), Arc::new(e)))
            .collect();
        s.events.clear();
        s.oldest = revision;
        s.truncated = truncated;
        s.revision = revision;
        s.changed = revision;
        drop(s);
        self.notify(revision);
    }

    /// Applies one store event of this resource.
    pub fn apply(&self, storage: &Storage, ev: &Event) {
        let mut s = self.write();
        let event = match ev.event_type {
            EventType::Put => {
                let entry = Arc::new(self.entry(storage, &ev.kv));
                let prev = s.items.insert(entry.key.clone(), entry.clone());
                CacheEvent::new(ev.revision, entry, prev, false)
            }
            EventType::Delete => {
                let last = match s.items.remove(ev.kv.key.as_str()) {
                    Some(e) => e,
                    None => Arc::new(self.entry(storage, &ev.kv)),
                };
                CacheEvent::new(ev.revision, last, None, true)
            }
        };
        s.events.push_back(Arc::new(event));
        if let Some(aged) = s
            .events
            .len()
            .checked_sub(METADATA_KEPT + 1)
            .and_then(|i| s.events.get(i))
        {
            aged.age();
        }
        while s.events.len() > self.capacity {
            if let Some(dropped) = s.events.pop_front() {
                s.oldest = dropped.revision;
                s.truncated = true;
            }
        }
        s.revision = ev.revision;
        s.changed = ev.revision;
        drop(s);
        self.notify(ev.revision);
    }

    /// The revision of the state read under the lock: `fed` is how far the feed has got
    /// over all resources (every change of this one up to it is applied).
    fn at(s: &State, fed: i64) -> i64 {
        s.revision.max(fed)
    }

    /// The objects whose key starts with `prefix`, after `start_after`, in key order, and
    /// the revision they are at. With `exact`, only if they are the state at that revision
    /// (nothing changed since), else None.
    pub fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        fed: i64,
        exact: Option<i64>,
    ) -> Option<(Vec<Arc<Entry>>, i64)> {
        match self.select(prefix, start_after, fed, exact, None, |_| Ok(true)) {
            Ok(Some(s)) => Some((s.items, s.revision)),
            _ => None,
        }
    }

    /// Like [`ResourceCache::range`], but only the objects `keep` accepts and at most `limit`
    /// of them, chosen under one read of the cache: objects not chosen are not copied out
    /// (a page or a selected list of 500 out of 10,000 takes 500 references, not 10,000).
    /// Errors of `keep` end the selection.
    pub fn select(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        fed: i64,
        exact: Option<i64>,
        limit: Option<usize>,
        mut keep: impl FnMut(&Entry) -> Result<bool, ApiError>,
    ) -> Result<Option<Selected>, ApiError> {
        let s = self.read();
        let at = Self::at(&s, fed);
        if let Some(rev) = exact {
            if rev < s.changed || rev > at {
                return Ok(None);
            }
        }
        let from = match start_after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Included(prefix),
        };
        let mut range = s
            .items
            .range::<str, _>((from, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix));
        let mut items = Vec::new();
        let mut more = false;
        for (_, e) in range.by_ref() {
            if keep(e)? {
                items.push(e.clone());
            }
            if limit.is_some_and(|l| items.len() >= l) {
                more = range.next().is_some();
                break;
            }
        }
        Ok(Some(Selected {
            items,
            revision: exact.unwrap_or(at),
            more,
        }))
    }
    /// The object with `key` and the revision the cache is at.
    pub fn get(&self, key: &str, fed: i64) -> (Option<Arc<Entry>>, i64) {
        let s = self.read();
        (s.items.get(key).cloned(), Self::at(&s, fed))
    }

    /// The changes after `after`.
    pub fn since(&self, after: i64, fed: i64) -> Since {
        let s = self.read();
        if after < s.oldest {
            return if s.truncated {
                Since::TooOld
            } else {
                Since::NotCached
            };
        }
        let first = s.events.partition_point(|e| e.revision <= after);
        Since::Events(
            s.events.range(first..).cloned().collect(),
            Self::at(&s, fed),
        )
    }

    /// Objects held (tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.read().items.len()
    }

    /// How many changes in the ring hold their metadata JSON (tests).
    #[cfg(test)]
    pub fn metadata_held(&self) -> usize {
        self.read()
            .events
            .iter()
            .filter(|e| e.holds_metadata())
            .count()
    }

    /// Heap bytes of the objects held (tests).
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.read().items.values().map(|e| e.heap_bytes()).sum()
    }
}
