//! Scheduler throughput (issue 13): N simulated Node objects (no agents) and M pending pods
//! in the real API server on a SQLite store in a temporary directory, reached through the
//! in-process kube client `skiff server` gives its scheduler. The scheduler starts once every
//! pod exists; the run ends when the API shows every pod bound. Printed: pods bound per
//! second (first watch event to last binding confirmed, and including the initial list),
//! per-pod latency percentiles, and where the time went.
//!
//! `cargo bench -p skiff-scheduler --bench throughput` (env NODES, PODS to change the sizes;
//! COLD_CACHE=1 to start the scheduler on a cold watch cache, see `run`).
//!
//! The process allocates as `skiff server` does (jemalloc with the binary's settings, from
//! `skiff-alloc`): with glibc's malloc the same run spent ~35–40 % more CPU per pod, an
//! allocator the binary does not use.

#[path = "../tests/common/mod.rs"]
mod common;

use skiff_alloc as _;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::Api;
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// CPU time this process (API server, store and scheduler together) has used so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name: state is field 3, utime 14, stime 15 (in USER_HZ = 100).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks for names only
    }
    let nodes = env("NODES", 1000);
    let pods = env("PODS", 10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(nodes, pods));
}

async fn run(nodes: usize, pods: usize) {
    let c = common::cluster().await;
    let setup = Instant::now();
    stream::iter(0..nodes)
        .for_each_concurrent(32, |i| {
            let client = c.client.clone();
            async move {
                let zone = format!("zone-{}", i % 3);
                let spec = common::NodeSpec::new(&format!("node-{i:04}"))
                    .labels(json!({"topology.kubernetes.io/zone": zone}));
                common::add_node(&client, spec).await;
            }
        })
        .await;
    let nodes_took = setup.elapsed();
    // In `skiff server` the controllers' informers list pods when the server starts, so the
    // API server's watch cache of pods exists (and is fed by every create) long before a
    // burst of pending pods reaches the scheduler. One list before the creates does the
    // same here; COLD_CACHE=1 leaves it out (the scheduler's first list then builds the
    // cache from the store: what this bench measured before).
    let cold = std::env::var("COLD_CACHE").is_ok_and(|v| v == "1");
    if !cold {
        let one = ListParams::default().limit(1);
        Api::<Pod>::all(c.client.clone()).list(&one).await.unwrap();
        Api::<Node>::all(c.client.clone()).list(&one).await.unwrap();
    }
    let setup = Instant::now();
    stream::iter(0..pods)
        .for_each_concurrent(64, |i| {
            let client = c.client.clone();
            async move {
                let p = common::pod(&format!("pod-{i:05}"), "100m", json!({}));
                common::create_pod(&client, p).await;
            }
        })
        .await;
    println!(
        "setup: {nodes} nodes in {:.1} s, {pods} pending pods in {:.1} s; the API server's watch cache of pods and nodes {}",
        nodes_took.as_secs_f64(),
        setup.elapsed().as_secs_f64(),
        if cold {
            "cold (COLD_CACHE=1: the scheduler's first list builds it from the store)"
        } else {
            "filled before the creates, as skiff server's informers fill it (COLD_CACHE=1 to leave it cold)"
        }
    );

    let scheduler = skiff_scheduler::Scheduler::new(c.client.clone(), Default::default());
    let metrics = scheduler.metrics();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let cpu_before = cpu_time();
    let started = Instant::now();
    let task = tokio::spawn(scheduler.run(async {
        let _ = stop_rx.await;
    }));
    let mut first = None;
    loop {
        let bound = metrics.bound.load(Ordering::Relaxed) as usize;
        if bound > 0 && first.is_none() {
            first = Some(started.elapsed());
        }
        if bound >= pods {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {bound} of {pods} bound after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let total = started.elapsed();
    let cpu = cpu_time() - cpu_before;
    let first = first.unwrap_or_default();
    let _ = stop_tx.send(());
    let _ = task.await;

    // What the API says, not the scheduler: every pod bound, no node over its pod count.
    let listed = Api::<Pod>::all(c.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let bound_in_api = listed
        .items
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
        .count();
    assert_eq!(bound_in_api, pods, "pods bound according to the API");

    let events = Api::<k8s_openapi::api::core::v1::Event>::all(c.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Scheduled"))
        .count();
    let mut attempt = metrics.attempt_latency.lock().unwrap().clone();
    let mut e2e = metrics.e2e_latency.lock().unwrap().clone();
    attempt.sort();
    e2e.sort();
    let algo = Duration::from_nanos(metrics.algorithm_nanos.load(Ordering::Relaxed));
    let steady = total - first;
    println!(
        "scheduler: {pods} pods on {nodes} nodes bound in {:.2} s = {:.0} pods/s \
         (after the first binding: {:.0} pods/s; initial list + first binding {})",
        total.as_secs_f64(),
        pods as f64 / total.as_secs_f64(),
        (pods - 1) as f64 / steady.as_secs_f64().max(1e-9),
        ms(first)
    );
    println!(
        "per-pod attempt latency (pop from queue → binding confirmed): p50 {} p99 {} max {}",
        ms(pct(&attempt, 0.5)),
        ms(pct(&attempt, 0.99)),
        ms(pct(&attempt, 1.0))
    );
    println!(
        "per-pod latency incl. queueing (pod seen → binding confirmed; all {pods} queued at once): p50 {} p99 {}",
        ms(pct(&e2e, 0.5)),
        ms(pct(&e2e, 0.99))
    );
    println!(
        "filter+score time: {} total, {:.1} µs per pod; bind errors {}; Scheduled events in the API {events} \
         (the reporter drops events when its queue is full)",
        ms(algo),
        algo.as_secs_f64() * 1e6 / pods as f64,
        metrics.bind_errors.load(Ordering::Relaxed)
    );
    println!(
        "cpu while scheduling (API server + SQLite + scheduler, one process): {:.2} s = {:.0} µs per pod \
         = {:.0} pods per cpu-second; {} cpus, load average {}",
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / pods as f64,
        pods as f64 / cpu.as_secs_f64().max(1e-9),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
