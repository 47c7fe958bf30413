//! Resource usage of the node and of its pods, read from cgroups (v1, v2 and hybrid hosts
//! alike, through skiff-runtime) the way kubelet's resource metrics report it: CPU as a rate
//! over the window between two samples (cumulative usage in, nanocores out) and memory as
//! the working set (usage minus `inactive_file`).
//!
//! A [`Sampler`] samples every `period` and keeps the latest [`Snapshot`], a plain data
//! value that the API server takes in-process for the local node and that the kubelet API
//! serves for remote nodes. Pods and containers appear once they have two samples (a rate
//! needs two points, as metrics-server's first scrape of a new pod reports nothing).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use skiff_engine::{Engine, Filters, ListOptions};
use skiff_runtime::cgroups;

use crate::labels;

/// kubelet's housekeeping interval for resource metrics.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(10);

/// CPU and memory of one cgroup over one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Average CPU use over the window, in billionths of a core.
    pub cpu_nano_cores: u64,
    /// Cumulative CPU time at the end of the window, in nanoseconds.
    pub cpu_usage_core_nano_seconds: u64,
    /// Memory in use minus inactive page cache, in bytes.
    pub memory_working_set_bytes: u64,
}

/// The node's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub name: String,
    /// The end of the window.
    pub timestamp: DateTime<Utc>,
    pub window: Duration,
    #[serde(flatten)]
    pub usage: Usage,
}

/// One running container of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    /// The container's name in the pod spec.
    pub name: String,
    #[serde(flatten)]
    pub usage: Usage,
}

/// One pod: its cgroup as a whole and its running containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub timestamp: DateTime<Utc>,
    pub window: Duration,
    #[serde(flatten)]
    pub usage: Usage,
    pub containers: Vec<ContainerStats>,
}

/// The latest sample of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// None until two samples were taken.
    pub node: Option<NodeStats>,
    pub pods: Vec<PodStats>,
}

impl Usage {
    /// The Summary API's CPU and memory at `at`.
    fn summary(
        &self,
        at: DateTime<Utc>,
    ) -> (
        Option<skiff_core::statsapi::CpuStats>,
        Option<skiff_core::statsapi::MemoryStats>,
    ) {
        let time = at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        (
            Some(skiff_core::statsapi::CpuStats {
                time: time.clone(),
                usage_nano_cores: Some(self.cpu_nano_cores),
                usage_core_nano_seconds: Some(self.cpu_usage_core_nano_seconds),
            }),
            Some(skiff_core::statsapi::MemoryStats {
                time,
                working_set_bytes: Some(self.memory_working_set_bytes),
            }),
        )
    }
}

impl Snapshot {
    /// The kubelet Summary API's view of this snapshot (`GET /stats/summary`) for node
    /// `node_name`; a node or pod not yet sampled twice has no CPU or memory.
    pub fn summary(&self, node_name: &str) -> skiff_core::statsapi::Summary {
        use skiff_core::statsapi as api;
        let (cpu, memory) = match &self.node {
            Some(n) => n.usage.summary(n.timestamp),
            None => (None, None),
        };
        api::Summary {
            node: api::NodeSummary {
                node_name: node_name.to_string(),
                cpu,
                memory,
            },
            pods: self
                .pods
                .iter()
                .map(|p| {
                    let (cpu, memory) = p.usage.summary(p.timestamp);
                    api::PodSummary {
                        pod_ref: api::PodReference {
                            name: p.name.clone(),
                            namespace: p.namespace.clone(),
                            uid: p.uid.clone(),
                        },
                        containers: p
                            .containers
                            .iter()
                            .map(|c| {
                                let (cpu, memory) = c.usage.summary(p.timestamp);
                                api::ContainerSummary {
                                    name: c.name.clone(),
                                    cpu,
                                    memory,
                                }
                            })
                            .collect(),
                        cpu,
                        memory,
                    }
                })
                .collect(),
        }
    }
}

/// A cumulative reading of one cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reading {
    at: DateTime<Utc>,
    cpu_ns: u64,
    working_set: u64,
}

impl Reading {
    /// The usage over the window from `prev` to `self`; None when the window is empty or the
    /// counter went backwards (the cgroup was re-created under the same name).
    fn since(&self, prev: &Reading) -> Option<(Duration, Usage)> {
        let window = (self.at - prev.at).to_std().ok().filter(|w| !w.is_zero())?;
        let used = self.cpu_ns.checked_sub(prev.cpu_ns)?;
        let nano_cores = (used as u128 * 1_000_000_000 / window.as_nanos()) as u64;
        Some((
            window,
            Usage {
                cpu_nano_cores: nano_cores,
                cpu_usage_core_nano_seconds: self.cpu_ns,
                memory_working_set_bytes: self.working_set,
            },
        ))
    }
}

/// Working set as kubelet computes it: usage minus inactive file pages, never below zero.
fn working_set(m: &cgroups::MemoryStats) -> u64 {
    let inactive = m
        .stats
        .get("total_inactive_file")
        .or_else(|| m.stats.get("inactive_file"))
        .copied()
        .unwrap_or(0);
    m.usage.saturating_sub(inactive)
}

/// A cgroup's cumulative reading.
fn read_cgroup(path: &str, at: DateTime<Utc>) -> Option<Reading> {
    let s = cgroups::stats(path).ok()?;
    Some(Reading {
        at,
        cpu_ns: s.cpu.total_usage,
        working_set: working_set(&s.memory),
    })
}

/// `key: N kB` lines of /proc/meminfo, in bytes.
fn meminfo(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let n: u64 = v.split_whitespace().next()?.parse().ok()?;
            Some((k, n * 1024))
        })
        .collect()
}

/// Non-idle CPU time of the host since boot (ns), from `/proc/stat`: user, nice, system,
/// irq, softirq, steal.
fn proc_cpu_ns(text: &str, tick_hz: u64) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|i| f.get(*i))
        .sum::<u64>();
    Some(busy * (1_000_000_000 / tick_hz.max(1)))
}

/// The node's reading: its root cgroup where the host accounts there (v1), else `/proc`
/// (a v2 root has no `memory.current`).
fn read_node(at: DateTime<Utc>) -> Option<Reading> {
    let root = cgroups::stats("/").ok();
    let cpu_ns = match root.as_ref().map(|s| s.cpu.total_usage) {
        Some(n) if n > 0 => n,
        _ => {
            let text = std::fs::read_to_string("/proc/stat").ok()?;
            proc_cpu_ns(&text, clock_ticks())?
        }
    };
    let working_set = match root
        .as_ref()
        .map(|s| (s.memory.usage, working_set(&s.memory)))
    {
        Some((usage, ws)) if usage > 0 => ws,
        _ => {
            let text = std::fs::read_to_string(Path::new("/proc/meminfo")).ok()?;
            let m = meminfo(&text);
            let get = |k: &str| m.get(k).copied().unwrap_or(0);
            get("MemTotal")
                .saturating_sub(get("MemFree"))
                .saturating_sub(get("Inactive(file)"))
        }
    };
    Some(Reading {
        at,
        cpu_ns,
        working_set,
    })
}

/// `/proc/stat` counts in USER_HZ, 100 on every Linux architecture.
fn clock_ticks() -> u64 {
    100
}

/// Who a pod is, from its containers' labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PodKey {
    namespace: String,
    name: String,
    uid: String,
}

/// Samples a node's cgroups and keeps the latest [`Snapshot`].
pub struct Sampler {
    engine: Arc<Engine>,
    node: String,
    /// The engine's cgroup parent; pods live in `<parent>/kubepods[/<qos>]/pod<uid>`.
    cgroup_parent: String,
    latest: Arc<RwLock<Snapshot>>,
    /// The previous reading of each cgroup path.
    previous: HashMap<String, Reading>,
}

/// A cheap handle on a sampler's latest snapshot.
#[derive(Debug, Clone, Default)]
pub struct StatsHandle(Arc<RwLock<Snapshot>>);

impl StatsHandle {
    /// The latest snapshot (empty before two samples were taken).
    pub fn snapshot(&self) -> Snapshot {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Sampler {
    pub fn new(engine: Arc<Engine>, node: String, cgroup_parent: String) -> Sampler {
        Sampler {
            engine,
            node,
            cgroup_parent: cgroup_parent.trim_matches('/').to_string(),
            latest: Default::default(),
            previous: HashMap::new(),
        }
    }

    pub fn handle(&self) -> StatsHandle {
        StatsHandle(self.latest.clone())
    }

    /// The rate of the cgroup at `path` since its previous reading, remembering this one.
    fn rate(
        &mut self,
        path: &str,
        now: Reading,
        seen: &mut Vec<String>,
    ) -> Option<(Duration, Usage)> {
        seen.push(path.to_string());
        let out = self.previous.get(path).and_then(|p| now.since(p));
        self.previous.insert(path.to_string(), now);
        out
    }

    /// Takes one sample of the node and its running pod containers.
    pub async fn sample(&mut self) {
        let now = Utc::now();
        let mut seen = Vec::new();
        let node = read_node(now).and_then(|r| self.rate("node", r, &mut seen));
        let opts = ListOptions {
            all: false,
            filters: Filters::from_pairs([("label", labels::POD_UID)]),
            ..Default::default()
        };
        let containers = match self.engine.container_list(&opts).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "listing pod containers for stats");
                Vec::new()
            }
        };
        // Each pod's containers: (name, id).
        let mut members: HashMap<PodKey, Vec<(String, String)>> = HashMap::new();
        for c in containers {
            let l = c.labels.unwrap_or_default();
            let get = |k: &str| l.get(k).cloned().unwrap_or_default();
            if l.get(labels::CONTAINER_KIND).is_some_and(|k| k == "init") {
                continue;
            }
            let key = PodKey {
                namespace: get(labels::POD_NAMESPACE),
                name: get(labels::POD_NAME),
                uid: get(labels::POD_UID),
            };
            members
                .entry(key)
                .or_default()
                .push((get(labels::CONTAINER_NAME), c.id.unwrap_or_default()));
        }
        let mut out = Vec::new();
        for (key, ids) in members {
            // The pod's cgroup sits under its QoS class's (kubelet's layout).
            let Some((path, reading)) = crate::qos::all_cgroups(&self.cgroup_parent, &key.uid)
                .into_iter()
                .map(|p| format!("/{p}"))
                .find_map(|p| read_cgroup(&p, now).map(|r| (p, r)))
            else {
                continue;
            };
            let mut containers = Vec::new();
            for (name, id) in ids {
                let c_path = format!("{path}/{id}");
                if let Some((_, usage)) =
                    read_cgroup(&c_path, now).and_then(|r| self.rate(&c_path, r, &mut seen))
                {
                    containers.push(ContainerStats { name, usage });
                }
            }
            let Some((window, usage)) = self.rate(&path, reading, &mut seen) else {
                continue;
            };
            if containers.is_empty() {
                continue;
            }
            containers.sort_by(|a, b| a.name.cmp(&b.name));
            out.push(PodStats {
                namespace: key.namespace,
                name: key.name,
                uid: key.uid,
                timestamp: now,
                window,
                usage,
                containers,
            });
        }
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        // Forget cgroups that are gone, so a re-created one starts afresh.
        self.previous.retain(|k, _| seen.contains(k));
        let snapshot = Snapshot {
            node: node.map(|(window, usage)| NodeStats {
                name: self.node.clone(),
                timestamp: now,
                window,
                usage,
            }),
            pods: out,
        };
        *self.latest.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }

    /// Samples every `period` until `stop` says so.
    pub async fn run(mut self, period: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sample().await,
                _ = crate::until_stopped(&mut stop) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(secs: i64, cpu_ns: u64) -> Reading {
        Reading {
            at: DateTime::from_timestamp(secs, 0).unwrap(),
            cpu_ns,
            working_set: 7,
        }
    }

    #[test]
    fn cpu_rate_is_usage_over_the_window_in_nanocores() {
        // Half a core for ten seconds.
        let (window, u) = reading(110, 5_000_000_000 + 100)
            .since(&reading(100, 100))
            .unwrap();
        assert_eq!(window, Duration::from_secs(10));
        assert_eq!(u.cpu_nano_cores, 500_000_000);
        assert_eq!(u.memory_working_set_bytes, 7);
    }

    #[test]
    fn a_counter_that_went_back_or_an_empty_window_gives_no_rate() {
        assert!(reading(110, 1).since(&reading(100, 2)).is_none());
        assert!(reading(100, 5).since(&reading(100, 2)).is_none());
    }

    #[test]
    fn working_set_is_usage_minus_inactive_file() {
        let mut m = cgroups::MemoryStats {
            usage: 1000,
            ..Default::default()
        };
        m.stats.insert("total_inactive_file".into(), 300);
        assert_eq!(working_set(&m), 700);
        m.stats.clear();
        m.stats.insert("inactive_file".into(), 1200);
        assert_eq!(working_set(&m), 0);
    }

    #[test]
    fn proc_figures_are_parsed() {
        let stat = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(proc_cpu_ns(stat, 100), Some(161 * 10_000_000));
        let m = meminfo("MemTotal:  2048 kB\nMemFree: 1024 kB\nInactive(file): 10 kB\n");
        assert_eq!(m["MemTotal"], 2048 * 1024);
        assert_eq!(m["Inactive(file)"], 10 * 1024);
    }

    /// The host's own figures: this machine is busy and has memory in use.
    #[test]
    fn the_node_reading_comes_from_this_host() {
        let r = read_node(Utc::now()).expect("node reading");
        assert!(r.cpu_ns > 0);
        assert!(r.working_set > 1 << 20, "{}", r.working_set);
    }

    #[test]
    fn the_summary_api_carries_node_pod_and_container_usage() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let usage = Usage {
            cpu_nano_cores: 250_000_000,
            cpu_usage_core_nano_seconds: 9,
            memory_working_set_bytes: 4096,
        };
        let snap = Snapshot {
            node: None,
            pods: vec![PodStats {
                namespace: "default".into(),
                name: "web".into(),
                uid: "u1".into(),
                timestamp: at,
                window: Duration::from_secs(10),
                usage,
                containers: vec![ContainerStats {
                    name: "main".into(),
                    usage,
                }],
            }],
        };
        let s = snap.summary("n1");
        // Not sampled twice yet: the node has a name and no figures.
        assert_eq!(s.node.node_name, "n1");
        assert!(s.node.cpu.is_none());
        let json = serde_json::to_value(&s).unwrap();
        let c = &json["pods"][0]["containers"][0];
        assert_eq!(c["cpu"]["usageNanoCores"], 250_000_000);
        assert_eq!(c["memory"]["workingSetBytes"], 4096);
        assert_eq!(c["cpu"]["time"], "2023-11-14T22:13:20.000000000Z");
        assert_eq!(json["pods"][0]["podRef"]["uid"], "u1");
    }
}
