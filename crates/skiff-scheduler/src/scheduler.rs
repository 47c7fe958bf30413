//! The scheduling loop: one task owns the cache and the queue. It applies watch events
//! (nodes, pods, namespaces) as they arrive, pops the next pod, decides its node, assumes it
//! there and hands the binding to a task of its own, so the next decision does not wait for
//! the API. Binding results come back on the same channel as the watch events.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::PostParams;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};

use crate::algorithm;
use crate::cache::Cache;
use crate::podinfo::{key_of, Interner, PodInfo, PodKey};
use crate::queue::{Queue, QueuedPod};
use crate::report::{Report, Reporter};

/// Settings of one scheduler.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pods naming this scheduler (or none) are scheduled.
    pub name: String,
    /// Bindings in flight at once; scheduling pauses while all are taken.
    pub bind_concurrency: usize,
    /// Who writes the events (`reportingInstance`) and holds the Lease.
    pub identity: String,
    /// The Lease several schedulers elect their leader on.
    pub lease: crate::LeaseConfig,
    /// Report writes (Events, `PodScheduled=False`) per second once `api_burst` is spent
    /// (kube-scheduler's `--kube-api-qps`); bindings are not paced.
    pub api_qps: f64,
    /// Report writes that go at once after a quiet spell (`--kube-api-burst`).
    pub api_burst: u32,
}

/// kube-scheduler's Lease (`kube-system/kube-scheduler`).
pub const LEASE_NAME: &str = "kube-scheduler";

impl Default for Config {
    fn default() -> Self {
        // Unique across servers: the host name, then random bits (client-go adds a uuid).
        let identity = skiff_leader::default_identity();
        Config {
            name: crate::podinfo::DEFAULT_SCHEDULER.into(),
            bind_concurrency: 256,
            lease: crate::LeaseConfig::new(LEASE_NAME, &identity),
            identity,
            api_qps: crate::report::WRITES_PER_SECOND,
            api_burst: crate::report::BURST,
        }
    }
}

/// Counters and latencies, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Pods bound.
    pub bound: AtomicU64,
    /// Scheduling attempts that found no node.
    pub unschedulable: AtomicU64,
    /// Bindings the API refused or failed.
    pub bind_errors: AtomicU64,
    /// Per bound pod: from the start of its successful attempt to the API's confirmation.
    pub attempt_latency: Mutex<Vec<Duration>>,
    /// Per bound pod: from entering the queue to the API's confirmation.
    pub e2e_latency: Mutex<Vec<Duration>>,
    /// Time spent deciding (filters and scores), summed.
    pub algorithm_nanos: AtomicU64,
}

enum Input {
    Nodes(Box<watcher::Event<Node>>),
    /// Pods arrive as [`PodInfo`]s, made in the watch's own task: the typed Pod is dropped
    /// there, so neither the channel nor the cache holds one.
    Pods(PodEvent),
    Namespaces(Box<watcher::Event<Namespace>>),
    WatchError(watcher::Error),
    Bound {
        pod: Arc<PodInfo>,
        node: String,
        started: Instant,
        first_seen: Instant,
        result: Result<(), kube::Error>,
    },
}

/// A watch event of a pod, as the loop uses it.
enum PodEvent {
    /// A (re-)list begins.
    Init,
    /// Listed, added or modified.
    Applied(Arc<PodInfo>),
    /// Deleted.
    Deleted(PodKey),
    /// The (re-)list is complete.
    InitDone,
}

impl PodEvent {
    fn new(ev: watcher::Event<Pod>, interner: &mut Interner) -> PodEvent {
        match ev {
            watcher::Event::Init => PodEvent::Init,
            watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                PodEvent::Applied(PodInfo::new(pod, interner))
            }
            watcher::Event::Delete(pod) => PodEvent::Deleted(key_of(&pod)),
            watcher::Event::InitDone => PodEvent::InitDone,
        }
    }
}

/// Which watches have delivered their initial list.
#[derive(Default)]
struct Synced {
    nodes: bool,
    pods: bool,
}

/// A scheduler over one API client.
pub struct Scheduler {
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
}

impl Scheduler {
    pub fn new(client: Client, config: Config) -> Self {
        Scheduler {
            client,
            config,
            metrics: Arc::default(),
        }
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Schedules until `stop` completes.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let watches = [
            forward(
                watcher(Api::<Node>::all(self.client.clone()), Default::default()),
                tx.clone(),
                |e| Input::Nodes(Box::new(e)),
            ),
            forward(
                watcher(Api::<Pod>::all(self.client.clone()), Default::default()),
                tx.clone(),
                {
                    let mut interner = Interner::default();
                    move |e| Input::Pods(PodEvent::new(e, &mut interner))
                },
            ),
            forward(
                watcher(
                    Api::<Namespace>::all(self.client.clone()),
                    Default::default(),
                ),
                tx.clone(),
                |e| Input::Namespaces(Box::new(e)),
            ),
        ];
        let reporter = Reporter::spawn(
            self.client.clone(),
            self.config.identity.clone(),
            self.config.api_qps,
            self.config.api_burst,
        );
        let binds = Arc::new(Semaphore::new(self.config.bind_concurrency.max(1)));
        let mut state = Loop {
            cache: Cache::default(),
            queue: Queue::default(),
            last: None,
            rng: StdRng::from_entropy(),
            synced: Synced::default(),
            messages: Interner::default(),
            seen_pods: None,
            seen_nodes: None,
            client: self.client.clone(),
            name: self.config.name.clone(),
            tx,
            binds,
            reporter,
            metrics: self.metrics.clone(),
        };
        tokio::pin!(stop);
        state.run(rx, &mut stop).await;
        for w in watches {
            w.abort();
        }
    }
}

/// Sends each event of a watch to the loop, restarting the watch with backoff on errors.
fn forward<K, S>(
    stream: S,
    tx: mpsc::UnboundedSender<Input>,
    mut wrap: impl FnMut(watcher::Event<K>) -> Input + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    K: Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let stream = stream.default_backoff();
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            let input = match ev {
                Ok(ev) => wrap(ev),
                Err(e) => Input::WatchError(e),
            };
            if tx.send(input).is_err() {
                return;
            }
        }
    })
}

struct Loop {
    cache: Cache,
    queue: Queue,
    /// The node the last search stopped at (the next starts after it).
    last: Option<String>,
    rng: StdRng,
    synced: Synced,
    /// The unschedulable messages, shared by the pods waiting with them.
    messages: Interner,
    /// Keys listed since the pods watch (re)started its list.
    seen_pods: Option<HashSet<PodKey>>,
    seen_nodes: Option<HashSet<String>>,
    client: Client,
    name: String,
    tx: mpsc::UnboundedSender<Input>,
    binds: Arc<Semaphore>,
    reporter: Reporter,
    metrics: Arc<Metrics>,
}

/// Decisions between two looks at the channel (keeps watch events flowing under load).
const BATCH: usize = 64;

impl Loop {
    async fn run(
        &mut self,
        mut rx: mpsc::UnboundedReceiver<Input>,
        stop: &mut (impl Future<Output = ()> + Unpin),
    ) {
        loop {
            while let Ok(input) = rx.try_recv() {
                self.handle(input);
            }
            let next_flush = self.queue.flush(Instant::now());
            let mut worked = false;
            if self.synced.nodes && self.synced.pods {
                for _ in 0..BATCH {
                    if self.binds.available_permits() == 0 || !self.schedule_one() {
                        break;
                    }
                    worked = true;
                }
            }
            if worked {
                tokio::task::yield_now().await;
                continue;
            }
            let wake = next_flush
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::select! {
                _ = &mut *stop => return,
                input = rx.recv() => match input {
                    Some(input) => self.handle(input),
                    None => return,
                },
                _ = tokio::time::sleep(wake) => {}
            }
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Nodes(ev) => self.node_event(*ev),
            Input::Pods(ev) => self.pod_event(ev),
            Input::Namespaces(ev) => match *ev {
                watcher::Event::Apply(ns) | watcher::Event::InitApply(ns) => {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    let labels = ns.metadata.labels.clone().unwrap_or_default();
                    self.cache.namespaces.insert(name, labels);
                }
                watcher::Event::Delete(ns) => {
                    self.cache
                        .namespaces
                        .remove(ns.metadata.name.as_deref().unwrap_or_default());
                }
                watcher::Event::Init | watcher::Event::InitDone => {}
            },
            Input::WatchError(e) => tracing::warn!(error = %e, "scheduler watch failed, retrying"),
            Input::Bound {
                pod,
                node,
                started,
                first_seen,
                result,
            } => self.bound(pod, node, started, first_seen, result),
        }
    }

    fn node_event(&mut self, ev: watcher::Event<Node>) {
        match ev {
            watcher::Event::Init => self.seen_nodes = Some(HashSet::new()),
            watcher::Event::InitApply(node) | watcher::Event::Apply(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                if let Some(seen) = &mut self.seen_nodes {
                    seen.insert(name.clone());
                }
                if self.cache.set_node(node) {
                    self.queue.move_all();
                }
            }
            watcher::Event::Delete(node) => {
                self.cache
                    .remove_node(node.metadata.name.as_deref().unwrap_or_default());
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.seen_nodes.take() {
                    for name in self.cache.node_names() {
                        if !seen.contains(&name) {
                            self.cache.remove_node(&name);
                        }
                    }
                }
                self.synced.nodes = true;
                self.queue.move_all();
            }
        }
    }

    fn pod_event(&mut self, ev: PodEvent) {
        match ev {
            PodEvent::Init => self.seen_pods = Some(HashSet::new()),
            PodEvent::Applied(info) => {
                if let Some(seen) = &mut self.seen_pods {
                    seen.insert(info.key.clone());
                }
                self.pod_changed(info);
            }
            PodEvent::Deleted(key) => {
                self.queue.remove(&key);
                self.reporter.cancel(&key);
                if self.cache.contains(&key) {
                    self.cache.remove_pod(&key);
                    self.queue.move_all();
                }
            }
            PodEvent::InitDone => {
                if let Some(seen) = self.seen_pods.take() {
                    for key in self.cache.pod_keys() {
                        if !seen.contains(&key) && !self.cache.is_assumed(&key) {
                            self.cache.remove_pod(&key);
                        }
                    }
                }
                self.synced.pods = true;
            }
        }
    }

    fn pod_changed(&mut self, info: Arc<PodInfo>) {
        let key = info.key.clone();
        if !info.node_name.is_empty() {
            self.queue.remove(&key);
            self.reporter.cancel(&key);
            if info.terminal() {
                if self.cache.contains(&key) {
                    self.cache.remove_pod(&key);
                    self.queue.move_all();
                }
            } else {
                self.cache.add_bound(info);
            }
            return;
        }
        // Unbound. An assumed pod's binding is under way: its own watch event will come.
        if self.cache.contains(&key) {
            return;
        }
        if *info.scheduler_name == *self.name && !info.deleting() && !info.terminal() {
            self.queue.add_or_update(info);
        } else {
            self.queue.remove(&key);
            self.reporter.cancel(&key);
        }
    }

    /// Schedules the next active pod; false when there is none.
    fn schedule_one(&mut self) -> bool {
        let Some(QueuedPod {
            info, first_seen, ..
        }) = self.queue.pop()
        else {
            return false;
        };
        if self.cache.contains(&info.key) {
            self.queue.remove(&info.key);
            return true;
        }
        let started = Instant::now();
        let decided = algorithm::schedule(&info, &self.cache, &mut self.last, &mut self.rng);
        self.metrics
            .algorithm_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match decided {
            Ok(node) => {
                // A `PodScheduled=False` of an earlier attempt still waiting is moot now.
                self.reporter.cancel(&info.key);
                self.cache.assume(info.clone(), &node);
                self.spawn_bind(info, node, started, first_seen);
            }
            Err(fit) => {
                self.metrics.unschedulable.fetch_add(1, Ordering::Relaxed);
                let message = self.messages.get(&fit.to_string());
                tracing::debug!(pod = %info.key, %message, "unschedulable");
                self.queue.unschedulable(&info.key);
                self.reporter
                    .send(Report::Unschedulable { pod: info, message });
            }
        }
        true
    }

    fn spawn_bind(&self, pod: Arc<PodInfo>, node: String, started: Instant, first_seen: Instant) {
        let Ok(permit) = self.binds.clone().try_acquire_owned() else {
            unreachable!("schedule_one runs only with a free binding slot")
        };
        let (client, tx) = (self.client.clone(), self.tx.clone());
        tokio::spawn(async move {
            let result = bind(client, &pod, &node).await;
            drop(permit);
            let _ = tx.send(Input::Bound {
                pod,
                node,
                started,
                first_seen,
                result,
            });
        });
    }

    fn bound(
        &mut self,
        pod: Arc<PodInfo>,
        node: String,
        started: Instant,
        first_seen: Instant,
        result: Result<(), kube::Error>,
    ) {
        match result {
            Ok(()) => {
                self.queue.remove(&pod.key);
                let m = &self.metrics;
                m.bound.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                lock(&m.attempt_latency).push(now - started);
                lock(&m.e2e_latency).push(now - first_seen);
                self.reporter.send(Report::Scheduled { pod, node });
            }
            Err(e) => {
                self.metrics.bind_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(pod = %pod.key, %node, error = %e, "binding failed");
                self.cache.forget(&pod.key);
                let gone = matches!(&e, kube::Error::Api(s) if s.code == 404);
                if gone {
                    self.queue.remove(&pod.key);
                } else {
                    // Bound elsewhere (409) shows in the pod's next watch event, which takes
                    // it out of the queue; anything else is tried again after a backoff.
                    self.queue.retry(&pod.key);
                }
                self.queue.move_all();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// POSTs the pod's binding to `node`.
async fn bind(client: Client, pod: &PodInfo, node: &str) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace);
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": pod.name(), "uid": &*pod.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        pod.name(),
        &PostParams::default(),
        &binding,
    )
    .await
    .map(drop)
}
