//! The garbage collector at the scale goal (issue 13): ReplicaSets owning N pods in total (100
//! each, created by the ReplicaSet controller; no scheduler and no node, so no container
//! starts and a deleted pod goes at once), in the real API server on a SQLite store in a
//! temporary directory, with the whole controller set on the in-process kube client
//! `skiff server` gives it. For each size it measures:
//! - the collector's graph build when a fresh controller set starts on the existing objects
//!   (as after a restart or a leader change): start → "gc graph synced";
//! - background cascading deletion of half the owners → their pods all gone, then foreground
//!   deletion of the other half → their pods and the owners all gone;
//! - CPU time of this process (API server + SQLite + controllers) and its peak RSS meanwhile;
//! - whether the other controllers keep up: during each deletion a small Deployment in another
//!   namespace is scaled up and timed until its status shows the new replicas.
//!
//! `cargo bench -p skiff-controllers --bench gc` (env SIZES, default `3000,30000`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::Api;
use serde_json::json;
use skiff_controllers::Controllers;
use tracing_subscriber::layer::SubscriberExt;

/// Pods per ReplicaSet.
const PER_OWNER: usize = 100;
/// Replicas the probe Deployment is scaled to during each deletion.
const PROBE_REPLICAS: i32 = 10;
/// The longest any phase may take before the bench gives up.
const PHASE_LIMIT: Duration = Duration::from_secs(900);

/// When the collector logged that its graph is synced (and with how many objects).
#[derive(Default)]
struct Synced {
    at: Mutex<Option<(Instant, u64)>>,
}

/// The tracing layer that fills a [`Synced`].
struct SyncedLayer(Arc<Synced>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SyncedLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Visit(bool, u64);
        impl tracing::field::Visit for Visit {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" && format!("{v:?}") == "gc graph synced" {
                    self.0 = true;
                }
            }
            fn record_u64(&mut self, f: &tracing::field::Field, v: u64) {
                if f.name() == "objects" {
                    self.1 = v;
                }
            }
            fn record_i64(&mut self, f: &tracing::field::Field, v: i64) {
                self.record_u64(f, v as u64);
            }
        }
        let mut v = Visit(false, 0);
        event.record(&mut v);
        if v.0 {
            *self.0.at.lock().unwrap() = Some((Instant::now(), v.1));
        }
    }
}

/// CPU time this process (API server, store and controllers together) has used so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name: utime is field 14, stime 15 (in USER_HZ = 100).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// This process's resident memory in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The highest RSS sampled (every 100 ms) since the last `reset`.
struct RssPeak {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssPeak {
    fn start() -> Self {
        let peak = Arc::new(AtomicU64::new(rss_kib()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        RssPeak { peak, stop }
    }

    fn reset(&self) {
        self.peak.store(rss_kib(), Ordering::Relaxed);
    }

    fn mib(&self) -> f64 {
        self.peak.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn sizes() -> Vec<usize> {
    std::env::var("SIZES")
        .unwrap_or_else(|_| "3000,30000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks for names only
    }
    let synced = Arc::new(Synced::default());
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,skiff_controllers=info"));
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(SyncedLayer(synced.clone()))
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "gc bench: {} cpus, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    for n in sizes() {
        runtime.block_on(run(n, synced.clone()));
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn replica_set(name: &str, replicas: usize) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"rs": name}},
            "template": {
                "metadata": {"labels": {"rs": name}},
                "spec": {"containers": [{"name": "c", "image": "bench/none:1"}]},
            },
        },
    }))
    .unwrap()
}

fn probe() -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "probe"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "probe"}},
            "template": {
                "metadata": {"labels": {"app": "probe"}},
                "spec": {"containers": [{"name": "c", "image": "bench/none:1"}]},
            },
        },
    }))
    .unwrap()
}

/// Polls `f` every 50 ms until it holds; the seconds it took.
async fn until<F, Fut>(what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < PHASE_LIMIT, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pods of every namespace as a metadata watch of the bench's own shows them: the
/// bench's own load is one watch (as any controller's), not a list of every pod each poll
/// (at 30,000 pods those lists were a good part of what the process spent).
#[derive(Clone, Default)]
struct PodCounts {
    /// namespace → uids, and whether the first list is in.
    seen: Arc<Mutex<(UidsByNamespace, bool)>>,
}

type UidsByNamespace = HashMap<String, HashSet<String>>;

impl PodCounts {
    /// Starts the watch (it runs as long as the runtime).
    fn start(client: &kube::Client) -> Self {
        let counts = PodCounts::default();
        let seen = counts.seen.clone();
        let api: Api<PartialObjectMeta<Pod>> = Api::all(client.clone());
        tokio::spawn(async move {
            let events = watcher(api, watcher::Config::default()).default_backoff();
            futures::pin_mut!(events);
            let mut listing: Option<UidsByNamespace> = None;
            while let Some(e) = events.next().await {
                let Ok(e) = e else { continue };
                let key = |m: &kube::core::ObjectMeta| Some((m.namespace.clone()?, m.uid.clone()?));
                let mut s = seen.lock().unwrap();
                match e {
                    watcher::Event::Init => listing = Some(HashMap::new()),
                    watcher::Event::InitApply(m) => {
                        if let (Some(l), Some((ns, uid))) = (listing.as_mut(), key(&m.metadata)) {
                            l.entry(ns).or_default().insert(uid);
                        }
                    }
                    watcher::Event::InitDone => *s = (listing.take().unwrap_or_default(), true),
                    watcher::Event::Apply(m) => {
                        if let Some((ns, uid)) = key(&m.metadata) {
                            s.0.entry(ns).or_default().insert(uid);
                        }
                    }
                    watcher::Event::Delete(m) => {
                        if let Some((ns, uid)) = key(&m.metadata) {
                            s.0.entry(ns).or_default().remove(&uid);
                        }
                    }
                }
            }
        });
        counts
    }

    /// How many pods `ns` holds (None until the first list is in).
    fn count(&self, ns: &str) -> Option<usize> {
        let s = self.seen.lock().unwrap();
        s.1.then(|| s.0.get(ns).map_or(0, HashSet::len))
    }
}

/// Waits until the watch shows `want` pods in `ns`, then checks it with one list.
async fn wait_pods(
    client: &kube::Client,
    counts: &PodCounts,
    ns: &str,
    want: usize,
    what: &str,
) -> Duration {
    let took = until(what, || async { counts.count(ns) == Some(want) }).await;
    let listed = Api::<Pod>::namespaced(client.clone(), ns)
        .list_metadata(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(listed, want, "the watch and a list disagree on {ns}'s pods");
    took
}

/// Scales the probe Deployment to `replicas` and times its status reaching them.
async fn probe_scale(client: &kube::Client, replicas: i32) -> Duration {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "gc-probe");
    api.patch_scale(
        "probe",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .unwrap();
    until("the probe deployment to scale", || async {
        api.get_status("probe")
            .await
            .ok()
            .and_then(|d| d.status?.replicas)
            == Some(replicas)
    })
    .await
}

struct Phase {
    took: Duration,
    cpu: Duration,
    rss_mib: f64,
    probe: Duration,
}

/// Deletes every ReplicaSet of `ns` with `dp` (one DELETE each, as `kubectl delete rs --all`
/// sends them) and waits for their pods (and the owners) to be gone, scaling the probe
/// meanwhile.
async fn delete_all(
    client: &kube::Client,
    ns: &str,
    dp: DeleteParams,
    counts: &PodCounts,
    rss: &RssPeak,
    probe_to: i32,
) -> Phase {
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let names: Vec<String> = rs_api
        .list_metadata(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|m| m.metadata.name)
        .collect();
    rss.reset();
    let cpu0 = cpu_time();
    let start = Instant::now();
    stream::iter(names)
        .for_each_concurrent(16, |name| {
            let api = rs_api.clone();
            let dp = dp.clone();
            async move {
                api.delete(&name, &dp).await.unwrap();
            }
        })
        .await;
    let probe = probe_scale(client, probe_to).await;
    wait_pods(client, counts, ns, 0, "the pods to be collected").await;
    until("the owners to be gone", || async {
        rs_api
            .list_metadata(&ListParams::default())
            .await
            .is_ok_and(|l| l.items.is_empty())
    })
    .await;
    Phase {
        took: start.elapsed(),
        cpu: cpu_time() - cpu0,
        rss_mib: rss.mib(),
        probe,
    }
}

async fn run(n: usize, synced: Arc<Synced>) {
    let owners = n.div_ceil(PER_OWNER);
    let mut c = common::api_only().await;
    let client = c.client.clone();
    let rss = RssPeak::start();
    let counts = PodCounts::start(&client);
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in ["gc-bg", "gc-fg", "gc-probe"] {
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        ns_api.create(&PostParams::default(), &obj).await.unwrap();
    }

    // Setup: the owners, their pods made by the ReplicaSet controller.
    let first = Controllers::new(client.clone(), "gc-bench-setup");
    let setup_task = tokio::spawn(first.run());
    let setup = Instant::now();
    stream::iter(0..owners)
        .for_each_concurrent(16, |i| {
            let ns = if i % 2 == 0 { "gc-bg" } else { "gc-fg" };
            let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
            let left = n - i * PER_OWNER;
            async move {
                let rs = replica_set(&format!("rs-{i:04}"), left.min(PER_OWNER));
                api.create(&PostParams::default(), &rs).await.unwrap();
            }
        })
        .await;
    let probe_api: Api<Deployment> = Api::namespaced(client.clone(), "gc-probe");
    probe_api
        .create(&PostParams::default(), &probe())
        .await
        .unwrap();
    let bg_pods = (0..owners)
        .step_by(2)
        .map(|i| (n - i * PER_OWNER).min(PER_OWNER))
        .sum::<usize>();
    wait_pods(&client, &counts, "gc-bg", bg_pods, "the pods to be created").await;
    wait_pods(
        &client,
        &counts,
        "gc-fg",
        n - bg_pods,
        "the pods to be created",
    )
    .await;
    let created = setup.elapsed();
    setup_task.abort();
    let _ = setup_task.await;
    println!(
        "--- {n} pods in {owners} ReplicaSets ({PER_OWNER} each): created by the ReplicaSet controller in {:.1} s",
        created.as_secs_f64()
    );

    // A fresh controller set on the existing objects: how long the collector takes to build
    // its graph.
    *synced.at.lock().unwrap() = None;
    rss.reset();
    let rss_before = rss_kib() as f64 / 1024.0;
    let cpu0 = cpu_time();
    let start = Instant::now();
    c.spawn(Controllers::new(client.clone(), "gc-bench").run());
    let build = until("the gc graph to sync", || async {
        synced.at.lock().unwrap().is_some()
    })
    .await;
    let (at, objects) = synced.at.lock().unwrap().unwrap();
    let build = at.duration_since(start).min(build);
    println!(
        "graph build at controller start: {:.2} s for {objects} objects (cpu {:.2} s, peak rss {:.0} MiB; \
         rss {rss_before:.0} MiB before the controller set, {:.0} MiB once synced)",
        build.as_secs_f64(),
        (cpu_time() - cpu0).as_secs_f64(),
        rss.mib(),
        rss_kib() as f64 / 1024.0
    );
    // The probe must work before the deletions start.
    let ready = probe_scale(&client, 2).await;
    println!(
        "probe deployment 1 → 2 replicas before the deletions: {:.2} s",
        ready.as_secs_f64()
    );

    let bg = delete_all(
        &client,
        "gc-bg",
        DeleteParams::background(),
        &counts,
        &rss,
        2 + PROBE_REPLICAS,
    )
    .await;
    report("background", bg_pods, owners.div_ceil(2), &bg);
    let fg = delete_all(
        &client,
        "gc-fg",
        DeleteParams::foreground(),
        &counts,
        &rss,
        2,
    )
    .await;
    report("foreground", n - bg_pods, owners / 2, &fg);
    println!("load average {}", loadavg());
}

fn report(policy: &str, pods: usize, owners: usize, p: &Phase) {
    println!(
        "{policy} delete of {owners} owners: {pods} pods gone in {:.2} s = {:.0} pods/s; cpu {:.2} s \
         ({:.0} µs per pod, API server + SQLite + controllers); peak rss {:.0} MiB; probe deployment scaled in {:.2} s",
        p.took.as_secs_f64(),
        pods as f64 / p.took.as_secs_f64().max(1e-9),
        p.cpu.as_secs_f64(),
        p.cpu.as_secs_f64() * 1e6 / pods as f64,
        p.rss_mib,
        p.probe.as_secs_f64()
    );
}
