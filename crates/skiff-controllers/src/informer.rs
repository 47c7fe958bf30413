//! Shared informers: one watch per kind for the whole controller set, a reflector cache
//! fed by it, and a fan-out of its changes (deletions included) to every controller that
//! subscribed. kube-runtime's own shared streams drop deletions, which the replica
//! controllers must see, so the fan-out is ours; the watch and the cache are kube-runtime's.
//! An informer may slim each object before it is cached; a change hands
//! out the cache's own copy, not a second one.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::index::{ControllerIndex, NodeOf};

/// How many changes a slow subscriber may fall behind before it is told to re-read the
/// whole cache instead ([`Change::Relisted`]).
const FAN_OUT_BUFFER: usize = 4096;

/// One change the cache went through.
#[derive(Debug)]
pub enum Change<K> {
    /// Added or modified; `old` is what the cache held before, if anything.
    Applied { old: Option<Arc<K>>, new: Arc<K> },
    /// Deleted (the last state the cache saw).
    Deleted(Arc<K>),
    /// The cache was re-listed (a new watch, or this subscriber fell behind): anything
    /// may have changed.
    Relisted,
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Applied { old, new } => Change::Applied {
                old: old.clone(),
                new: new.clone(),
            },
            Change::Deleted(k) => Change::Deleted(k.clone()),
            Change::Relisted => Change::Relisted,
        }
    }
}

/// A watched kind: its cache and its change feed.
pub struct Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    api: Api<K>,
    config: watcher::Config,
    /// Applied to every object before it is cached (upstream's informer transform).
    slim: fn(&mut K),
    writer: Mutex<Option<reflector::store::Writer<K>>>,
    store: Store<K>,
    changes: broadcast::Sender<Change<K>>,
    hold: watch::Sender<bool>,
    /// The cache by namespace and controller, kept from the same events ([`crate::index`]).
    index: Arc<ControllerIndex<K>>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// An informer over every namespace; nothing is watched until [`Informer::run`].
    pub fn new(client: Client) -> Self {
        Self::with_config(client, watcher::Config::default())
    }

    /// An informer of the objects `config` selects (label or field selectors).
    pub fn with_config(client: Client, config: watcher::Config) -> Self {
        Self::slimmed(client, config, |_| {})
    }

    /// An informer that caches each object as `slim` leaves it: the cache, and every
    /// change it hands out, lack what `slim` drops.
    pub fn slimmed(client: Client, config: watcher::Config, slim: fn(&mut K)) -> Self {
        let writer = reflector::store::Writer::default();
        let store = writer.as_reader();
        Informer {
            api: Api::all(client),
            config,
            slim,
            writer: Mutex::new(Some(writer)),
            store,
            changes: broadcast::channel(FAN_OUT_BUFFER).0,
            hold: watch::channel(false).0,
            index: Arc::default(),
        }
    }

    /// The same informer with its index also by node ([`ControllerIndex::on_node`]).
    pub fn indexed_by_node(mut self, node_of: NodeOf<K>) -> Self {
        self.index = Arc::new(ControllerIndex::by_node(node_of));
        self
    }

    /// The cache (a read handle; cheap to clone).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// The cache by namespace and controller (up to date before a change is handed out).
    pub fn index(&self) -> &ControllerIndex<K> {
        &self.index
    }

    /// The index, to keep (a trigger that outlives this borrow).
    pub fn shared_index(&self) -> Arc<ControllerIndex<K>> {
        self.index.clone()
    }

    /// The changes from now on. A subscriber that falls too far behind gets
    /// [`Change::Relisted`] and re-reads the cache.
    pub fn changes(&self) -> impl Stream<Item = Change<K>> + Send + 'static {
        BroadcastStream::new(self.changes.subscribe()).map(|c| match c {
            Ok(c) => c,
            Err(BroadcastStreamRecvError::Lagged(_)) => Change::Relisted,
        })
    }

    /// Holds back (true) or releases (false) the watch: while held, the cache and the
    /// change feed stay where they are, as with a slow or stalled watch.
    pub fn hold(&self, held: bool) {
        self.hold.send_replace(held);
    }

    /// Waits until the first list has filled the cache.
    pub async fn synced(&self) {
        // Only fails if the writer is dropped, which happens when `run` ends.
        let _ = self.store.wait_until_ready().await;
    }

    /// Watches until dropped (the watch restarts itself with back-off on errors). Only
    /// the first call does anything.
    pub async fn run(&self) {
        let Some(mut writer) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let mut hold = self.hold.subscribe();
        let events = watcher(self.api.clone(), self.config.clone())
            .modify(self.slim)
            .default_backoff();
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            // A held informer keeps the event until released.
            let _ = hold.wait_for(|held| !*held).await;
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(kind = %K::kind(&()), error = %e, "watch failed, retrying");
                    continue;
                }
            };
            let applied = match &event {
                Event::Apply(obj) | Event::Delete(obj) => {
                    let key = reflector::ObjectRef::from_obj(obj);
                    Some((self.store.get(&key), key))
                }
                _ => None,
            };
            writer.apply_watcher_event(&event);
            match (&event, &applied) {
                (Event::Apply(obj), Some((old, key))) => self.index.applied(
                    old.as_deref(),
                    self.store.get(key).unwrap_or_else(|| Arc::new(obj.clone())),
                ),
                (Event::Delete(obj), Some((old, _))) => {
                    self.index.deleted(old.as_deref().unwrap_or(obj))
                }
                (Event::InitDone, _) => self.index.rebuild(self.store.state()),
                _ => {}
            }
            let change = match (event, applied) {
                // The cache's own copy: subscribers and the cache share one object.
                (Event::Apply(obj), Some((old, key))) => Some(Change::Applied {
                    old,
                    new: self.store.get(&key).unwrap_or_else(|| Arc::new(obj)),
                }),
                (Event::Delete(obj), _) => Some(Change::Deleted(Arc::new(obj))),
                (Event::InitDone, _) => Some(Change::Relisted),
                _ => None,
            };
            if let Some(change) = change {
                // No subscriber is not an error.
                let _ = self.changes.send(change);
            }
        }
    }
}
