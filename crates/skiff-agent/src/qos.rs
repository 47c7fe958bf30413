//! A pod's QoS class and its pod-level cgroup, as kubelet lays them out: Guaranteed pods in
//! `kubepods/pod<uid>`, Burstable ones in `kubepods/burstable/pod<uid>`, BestEffort ones in
//! `kubepods/besteffort/pod<uid>`, under the engine's cgroup parent. The pod cgroup gets
//! cpu shares from the sum of its containers' cpu requests and, when every container has one,
//! a memory limit and cpu quota from the sum of their limits (kubelet's
//! `ResourceConfigForPod`). The class itself is the API server's (`status.qosClass`, set when
//! the pod is created).
//!
//! The limits are written straight into the controllers' files, as kubelet's cgroup manager
//! does, where the host mounts them (`skiff_runtime::cgroups::controller_path`, from the mount
//! table read once per process): a runtime's cgroup manager per pod read the whole mount
//! table, which grows with every pod, a dozen times per pod.

use k8s_openapi::api::core::v1::Pod;

use crate::error::{Context, Result};
use crate::quantity;

/// kubelet's cpu.shares floor and the CFS period it uses.
const MIN_SHARES: u64 = 2;
const CFS_PERIOD_US: u64 = 100_000;

/// The pod's QoS class as the API server recorded it (Burstable when it is missing).
pub fn class(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.qos_class.as_deref())
        .unwrap_or("Burstable")
}

/// The pod's cgroup (`linux.cgroupsPath` of its containers' parent) under `parent`.
pub fn cgroup(parent: &str, class: &str, uid: &str) -> String {
    let parent = parent.trim_matches('/');
    match class {
        "Guaranteed" => format!("{parent}/kubepods/pod{uid}"),
        "BestEffort" => format!("{parent}/kubepods/besteffort/pod{uid}"),
        _ => format!("{parent}/kubepods/burstable/pod{uid}"),
    }
}

/// Every place a pod cgroup of `uid` may be (for its removal when the pod is gone).
pub fn all_cgroups(parent: &str, uid: &str) -> [String; 3] {
    ["Guaranteed", "Burstable", "BestEffort"].map(|c| cgroup(parent, c, uid))
}

/// A pod cgroup's limits (kubelet's `ResourceConfig` for a pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLimits {
    /// v1 `cpu.shares` (v2 `cpu.weight` is derived from it).
    pub cpu_shares: u64,
    /// CFS quota in µs per [`CFS_PERIOD_US`]; None = unlimited.
    pub cpu_quota: Option<i64>,
    /// Bytes; None = unlimited.
    pub memory: Option<i64>,
}

/// The pod cgroup's limits: cpu shares from the summed requests, and memory and cpu quota
/// from the summed limits when every app container sets one (the larger of that and any
/// init container's, which runs alone).
pub fn pod_limits(pod: &Pod) -> PodLimits {
    let spec = pod.spec.clone().unwrap_or_default();
    let get = |c: &k8s_openapi::api::core::v1::Container, limits: bool, what: &str| {
        let r = c.resources.as_ref()?;
        let map = if limits {
            r.limits.as_ref()
        } else {
            r.requests.as_ref().or(r.limits.as_ref())
        }?;
        let q = &map.get(what)?.0;
        if what == "cpu" {
            quantity::millicpu(q)
        } else {
            quantity::bytes(q)
        }
    };
    // Sum over app containers, max with each init container; None once one lacks it.
    let total = |limits: bool, what: &str| -> Option<i64> {
        let mut sum = 0i64;
        for c in &spec.containers {
            sum += get(c, limits, what)?;
        }
        for c in spec.init_containers.iter().flatten() {
            sum = sum.max(get(c, limits, what)?);
        }
        Some(sum)
    };
    let request_millis: i64 = spec
        .containers
        .iter()
        .filter_map(|c| get(c, false, "cpu"))
        .sum();
    PodLimits {
        cpu_shares: ((request_millis as u64) * 1024 / 1000).max(MIN_SHARES),
        cpu_quota: total(true, "cpu")
            .filter(|m| *m > 0)
            .map(|m| m * CFS_PERIOD_US as i64 / 1000),
        memory: total(true, "memory").filter(|b| *b > 0),
    }
}

/// v2's `cpu.weight` for v1 `cpu.shares` (the conversion runc and kubelet use).
fn weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// The files and values that give `controller` (`cpu` or `memory`) `limits`, on v1 or v2.
fn files(controller: &str, limits: &PodLimits, v2: bool) -> Vec<(&'static str, String)> {
    match (controller, v2) {
        ("cpu", false) => {
            let mut files = vec![("cpu.shares", limits.cpu_shares.to_string())];
            if let Some(q) = limits.cpu_quota {
                files.push(("cpu.cfs_period_us", CFS_PERIOD_US.to_string()));
                files.push(("cpu.cfs_quota_us", q.to_string()));
            }
            files
        }
        ("cpu", true) => {
            let max = limits
                .cpu_quota
                .map_or_else(|| "max".to_string(), |q| q.to_string());
            vec![
                ("cpu.weight", weight(limits.cpu_shares).to_string()),
                ("cpu.max", format!("{max} {CFS_PERIOD_US}")),
            ]
        }
        ("memory", false) => limits
            .memory
            .map(|b| ("memory.limit_in_bytes", b.to_string()))
            .into_iter()
            .collect(),
        ("memory", true) => limits
            .memory
            .map(|b| ("memory.max", b.to_string()))
            .into_iter()
            .collect(),
        _ => vec![],
    }
}

/// Writes `limits` into the existing pod cgroup at `cgroups_path`; a controller the host
/// does not have is left out.
pub fn apply(cgroups_path: &str, limits: &PodLimits) -> Result<()> {
    for controller in ["cpu", "memory"] {
        let found = skiff_runtime::cgroups::controller_path(controller, cgroups_path)
            .map_err(std::io::Error::other)
            .ctx(|| "find the host's cgroup controllers".into())?;
        let Some((dir, v2)) = found else { continue };
        for (file, value) in files(controller, limits, v2) {
            let path = dir.join(file);
            std::fs::write(&path, value).ctx(|| format!("write {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: serde_json::Value, qos: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {"containers": containers},
            "status": {"qosClass": qos},
        }))
        .unwrap()
    }

    #[test]
    fn cgroups_follow_the_class_as_kubelet_lays_them_out() {
        let p = pod(json!([{"name": "a"}]), "BestEffort");
        assert_eq!(
            cgroup("/skiff", class(&p), "u"),
            "skiff/kubepods/besteffort/podu"
        );
        assert_eq!(cgroup("skiff", "Guaranteed", "u"), "skiff/kubepods/podu");
        assert_eq!(
            cgroup("skiff", "Burstable", "u"),
            "skiff/kubepods/burstable/podu"
        );
        assert_eq!(
            pod_limits(&p),
            PodLimits {
                cpu_shares: 2,
                cpu_quota: None,
                memory: None
            }
        );
    }

    #[test]
    fn pod_limits_are_the_sums_when_every_container_has_one() {
        let p = pod(
            json!([
                {"name": "a", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "250m"},
                                            "limits": {"cpu": "1", "memory": "32Mi"}}},
            ]),
            "Burstable",
        );
        assert_eq!(
            pod_limits(&p),
            PodLimits {
                cpu_shares: 750 * 1024 / 1000,
                cpu_quota: Some(150_000),
                memory: Some(96 << 20)
            }
        );
        let p = pod(
            json!([
                {"name": "a", "resources": {"limits": {"memory": "64Mi"}}},
                {"name": "b"},
            ]),
            "Burstable",
        );
        let l = pod_limits(&p);
        assert_eq!(l.memory, None, "one container without a limit: none");
        assert_eq!(l.cpu_quota, None);
    }

    #[test]
    fn limits_are_written_as_v1_and_v2_files() {
        let l = PodLimits {
            cpu_shares: 1024,
            cpu_quota: Some(50_000),
            memory: Some(1 << 30),
        };
        assert_eq!(
            files("cpu", &l, false),
            vec![
                ("cpu.shares", "1024".to_string()),
                ("cpu.cfs_period_us", "100000".to_string()),
                ("cpu.cfs_quota_us", "50000".to_string())
            ]
        );
        assert_eq!(
            files("cpu", &l, true),
            vec![
                ("cpu.weight", "39".to_string()),
                ("cpu.max", "50000 100000".to_string())
            ]
        );
        assert_eq!(
            files("memory", &l, false),
            vec![("memory.limit_in_bytes", "1073741824".to_string())]
        );
        assert_eq!(
            files("memory", &l, true),
            vec![("memory.max", "1073741824".to_string())]
        );
        let none = PodLimits {
            cpu_shares: 2,
            cpu_quota: None,
            memory: None,
        };
        assert_eq!(files("cpu", &none, false), vec![("cpu.shares", "2".into())]);
        assert_eq!(
            files("cpu", &none, true),
            vec![("cpu.weight", "1".into()), ("cpu.max", "max 100000".into())]
        );
        assert!(files("memory", &none, true).is_empty());
    }

    #[test]
    fn limits_reach_a_real_pod_cgroup() {
        let path = format!("skiff-test-qos-{}/kubepods/podu", std::process::id());
        let Ok(Some((cpu, v2))) = skiff_runtime::cgroups::controller_path("cpu", &path) else {
            panic!("no cpu controller on this host");
        };
        let Ok(Some((mem, _))) = skiff_runtime::cgroups::controller_path("memory", &path) else {
            panic!("no memory controller on this host");
        };
        for d in [&cpu, &mem] {
            std::fs::create_dir_all(d).unwrap();
        }
        let limits = PodLimits {
            cpu_shares: 512,
            cpu_quota: Some(25_000),
            memory: Some(64 << 20),
        };
        let applied = apply(&path, &limits);
        let read = |d: &std::path::Path, f: &str| {
            std::fs::read_to_string(d.join(f))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let got = if v2 {
            (read(&cpu, "cpu.max"), read(&mem, "memory.max"))
        } else {
            (
                read(&cpu, "cpu.cfs_quota_us"),
                read(&mem, "memory.limit_in_bytes"),
            )
        };
        let root = format!("skiff-test-qos-{}", std::process::id());
        for d in [&cpu, &mem] {
            let mut dir = d.clone();
            while dir.ends_with("podu") || dir.ends_with("kubepods") || dir.ends_with(&root) {
                let _ = std::fs::remove_dir(&dir);
                dir.pop();
            }
        }
        applied.unwrap();
        let want = if v2 {
            ("25000 100000".to_string(), (64u64 << 20).to_string())
        } else {
            ("25000".to_string(), (64u64 << 20).to_string())
        };
        assert_eq!(got, want);
    }
}
