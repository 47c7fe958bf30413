//! The garbage collector (kube-controller-manager's `garbagecollector`): objects whose
//! owners (by `ownerReferences[].uid`) are all gone are deleted; owners deleted in the
//! foreground (`foregroundDeletion` finalizer) wait until their blocking dependents are gone;
//! owners deleted with `orphan` first release their dependents.
//!
//! It works from an owner [`graph`] fed by a metadata-only watch of every listable,
//! watchable, deletable resource the API serves ([`mapper`]): a change costs one graph update
//! and queues only the uids it concerns, so nothing is re-listed per burst of writes. An
//! owner the graph has not seen is verified with a live GET before any dependent is deleted
//! (upstream's virtual-node check), and every delete or patch is pinned to the uid or
//! resourceVersion it was decided on. The API server only records a DELETE's
//! `propagationPolicy` as finalizers; everything else happens here.

pub mod graph;
pub mod mapper;
mod work;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use tokio::sync::mpsc;

use crate::context::Context;
use graph::{Graph, Identity, Work};
use mapper::{Mapper, Served};

/// Items worked on at once (kube-controller-manager's `--concurrent-gc-syncs`: 20).
const WORKERS: usize = 20;
/// How often the served resources are discovered again (new kinds get a watch).
const REDISCOVERY: Duration = Duration::from_secs(30);
/// Retry delays of an item whose processing failed.
const BACKOFF_BASE: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Owner uids known to be gone, remembered so that the dependents of one deleted owner cost
/// one GET between them; forgotten wholesale past this many.
const ABSENT_CACHE: usize = 10_000;
/// How long the collector waits for every watch's first list before it acts anyway (a kind
/// whose list keeps failing must not stop collection of the others).
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// A de-duplicating work queue: an item queued twice before it is taken runs once.
struct Queue {
    pending: Mutex<HashSet<Work>>,
    tx: mpsc::UnboundedSender<Work>,
}

impl Queue {
    fn add(&self, w: Work) {
        if self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(w.clone())
        {
            let _ = self.tx.send(w);
        }
    }

    fn take(&self, w: &Work) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(w);
    }
}

/// One watch's news for the graph builder.
enum Change {
    Apply(usize, Identity, Box<PartialObjectMeta<DynamicObject>>),
    Delete(String),
    /// Watch `usize` listed again and saw these uids.
    Relisted(usize, HashSet<String>),
    /// This many monitors run: the graph is synced once each has listed.
    Monitors(usize),
    /// Some monitor has not listed in [`SYNC_TIMEOUT`]: act without it.
    SyncTimeout,
}

/// The collector's shared state.
pub struct Collector {
    ctx: Arc<Context>,
    graph: Mutex<Graph>,
    mapper: RwLock<Arc<Mapper>>,
    queue: Queue,
    absent: Mutex<HashSet<String>>,
    failures: Mutex<HashMap<Work, u32>>,
}

impl Collector {
    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mapper(&self) -> Arc<Mapper> {
        self.mapper
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn enqueue(&self, work: Vec<Work>) {
        for w in work {
            self.queue.add(w);
        }
    }

    /// Queues `w` again after its back-off.
    fn retry(self: &Arc<Self>, w: Work) {
        let n = {
            let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let n = f.entry(w.clone()).or_default();
            *n = n.saturating_add(1);
            *n
        };
        let delay = BACKOFF_BASE
            .saturating_mul(2u32.saturating_pow(n))
            .min(BACKOFF_MAX);
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            me.queue.add(w);
        });
    }

    fn succeeded(&self, w: &Work) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(w);
    }
}

/// Watches one resource's metadata and hands its changes to the graph builder.
async fn monitor(
    ctx: Arc<Context>,
    index: usize,
    served: Arc<Served>,
    tx: mpsc::UnboundedSender<Change>,
) {
    let api: Api<PartialObjectMeta<DynamicObject>> =
        Api::all_with(ctx.client.clone(), &served.resource);
    // The graph reads identity, owners, finalizers and the deletion mark; the rest of the
    // metadata (managedFields above all) is dropped before the channel holds it.
    let events = watcher(api, watcher::Config::default())
        .modify(|m| {
            m.metadata.managed_fields = None;
            m.metadata.annotations = None;
            m.metadata.labels = None;
        })
        .default_backoff();
    futures::pin_mut!(events);
    let mut listing: Option<HashSet<String>> = None;
    // Every node of this resource shares one copy of its api version and kind.
    let api_version: Arc<str> = served.resource.api_version.as_str().into();
    let kind: Arc<str> = served.resource.kind.as_str().into();
    let identity = |m: &PartialObjectMeta<DynamicObject>| -> Option<Identity> {
        Some(Identity {
            api_version: api_version.clone(),
            kind: kind.clone(),
            namespace: m.metadata.namespace.as_deref().map(Arc::from),
            name: m.metadata.name.as_deref()?.into(),
            uid: m.metadata.uid.as_deref()?.into(),
        })
    };
    while let Some(event) = events.next().await {
        let change = match event {
            Err(e) => {
                tracing::debug!(kind = %served.resource.kind, error = %e, "gc watch failed, retrying");
                continue;
            }
            Ok(Event::Init) => {
                listing = Some(HashSet::new());
                None
            }
            Ok(Event::InitApply(m)) | Ok(Event::Apply(m)) => identity(&m).map(|id| {
                if let Some(seen) = listing.as_mut() {
                    seen.insert(id.uid.to_string());
                }
                Change::Apply(index, id, Box::new(m))
            }),
            Ok(Event::Delete(m)) => m.metadata.uid.clone().map(Change::Delete),
            Ok(Event::InitDone) => {
                Some(Change::Relisted(index, listing.take().unwrap_or_default()))
            }
        };
        if let Some(c) = change {
            if tx.send(c).is_err() {
                return;
            }
        }
    }
}

/// Runs the collector until dropped.
pub async fn run(ctx: Arc<Context>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let gc = Arc::new(Collector {
        ctx: ctx.clone(),
        graph: Mutex::new(Graph::default()),
        mapper: RwLock::new(Arc::new(Mapper::default())),
        queue: Queue {
            pending: Mutex::default(),
            tx,
        },
        absent: Mutex::default(),
        failures: Mutex::default(),
    });
    let (changes_tx, changes_rx) = mpsc::unbounded_channel();
    let timeout = changes_tx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(SYNC_TIMEOUT).await;
        let _ = timeout.send(Change::SyncTimeout);
    });
    tokio::join!(
        monitors(gc.clone(), changes_tx),
        build(gc.clone(), changes_rx),
        workers(gc.clone(), rx),
    );
}

/// Discovers the served resources now and every [`REDISCOVERY`], starting a monitor for each
/// new one; reports once every first monitor has listed.
async fn monitors(gc: Arc<Collector>, tx: mpsc::UnboundedSender<Change>) {
    let mut watching: HashSet<(String, String)> = HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        match Mapper::discover(&gc.ctx.client).await {
            Ok(m) => {
                for s in &m.watched {
                    let key = (s.resource.group.clone(), s.resource.kind.clone());
                    if watching.insert(key) {
                        let index = watching.len() - 1;
                        tasks.spawn(monitor(gc.ctx.clone(), index, s.clone(), tx.clone()));
                    }
                }
                let count = watching.len();
                let m = Arc::new(m);
                gc.ctx.set_served(m.clone());
                *gc.mapper.write().unwrap_or_else(|e| e.into_inner()) = m;
                // The builder learns how many monitors must list before the graph is synced.
                let _ = tx.send(Change::Monitors(count));
            }
            Err(e) => tracing::warn!(error = %e, "gc discovery failed"),
        }
        tokio::time::sleep(REDISCOVERY).await;
    }
}

/// The graph builder: applies the monitors' changes one at a time and queues the work they
/// give.
async fn build(gc: Arc<Collector>, mut rx: mpsc::UnboundedReceiver<Change>) {
    let mut expected: Option<usize> = None;
    let mut listed: HashSet<usize> = HashSet::new();
    let mut synced = false;
    let mut timed_out = false;
    while let Some(change) = rx.recv().await {
        let work = {
            let mut g = gc.graph();
            match change {
                Change::Apply(source, id, m) => g.apply(id, &m.metadata, source),
                Change::Delete(uid) => g.delete(&uid),
                Change::Monitors(n) => {
                    expected.get_or_insert(n);
                    Vec::new()
                }
                Change::SyncTimeout => {
                    timed_out = true;
                    Vec::new()
                }
                Change::Relisted(source, seen) => {
                    listed.insert(source);
                    g.relisted(source, &seen)
                }
            }
        };
        gc.enqueue(work);
        if !synced && (timed_out || expected.is_some_and(|n| listed.len() >= n)) {
            if timed_out {
                tracing::warn!("gc: not every watch listed in time, collecting anyway");
            }
            synced = true;
            let work = gc.graph().synced();
            tracing::info!(objects = gc.graph().len(), "gc graph synced");
            gc.enqueue(work);
        }
    }
}

/// Takes queued items, [`WORKERS`] at a time.
async fn workers(gc: Arc<Collector>, rx: mpsc::UnboundedReceiver<Work>) {
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
        .for_each_concurrent(WORKERS, |w| {
            let gc = gc.clone();
            async move {
                gc.queue.take(&w);
                let span = tracing::debug_span!("gc", work = ?w);
                let result = tracing::Instrument::instrument(work::process(&gc, &w), span).await;
                match result {
                    Ok(()) => gc.succeeded(&w),
                    Err(e) => {
                        if e.is_conflict() {
                            tracing::debug!(work = ?w, "gc conflict, retrying");
                        } else {
                            tracing::warn!(work = ?w, error = %crate::error::chain(&e), "gc item failed");
                        }
                        gc.retry(w);
                    }
                }
            }
        })
        .await
}
