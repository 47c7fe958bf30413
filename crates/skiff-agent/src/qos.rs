//! A pod's QoS class and its pod-level cgroup, as kubelet lays them out: Guaranteed pods in
//! `kubepods/pod<uid>`, Burstable ones in `kubepods/burstable/pod<uid>`, BestEffort ones in
//! `kubepods/besteffort/pod<uid>`, under the engine's cgroup parent. The pod cgroup gets
//! cpu shares from the sum of its containers' cpu requests and, when every container has one,
//! a memory limit and cpu quota from the sum of their limits (kubelet's
//! `ResourceConfigForPod`). The class itself is the API server's (`status.qosClass`, set when
//! the pod is created).

use k8s_openapi::api::core::v1::Pod;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResources, LinuxResourcesBuilder,
};

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

/// The pod cgroup's limits: cpu shares from the summed requests, and memory and cpu quota
/// from the summed limits when every app container sets one (the larger of that and any
/// init container's, which runs alone).
pub fn pod_resources(pod: &Pod) -> LinuxResources {
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
    let shares = ((request_millis as u64) * 1024 / 1000).max(MIN_SHARES);
    let mut cpu = LinuxCpuBuilder::default().shares(shares);
    if let Some(m) = total(true, "cpu").filter(|m| *m > 0) {
        cpu = cpu
            .quota(m * CFS_PERIOD_US as i64 / 1000)
            .period(CFS_PERIOD_US);
    }
    let mut r = LinuxResourcesBuilder::default().cpu(cpu.build().expect("cpu limits"));
    if let Some(b) = total(true, "memory").filter(|b| *b > 0) {
        r = r.memory(
            LinuxMemoryBuilder::default()
                .limit(b)
                .build()
                .expect("memory limit"),
        );
    }
    r.build().expect("pod resources")
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
        let r = pod_resources(&p);
        assert_eq!(r.cpu().as_ref().unwrap().shares(), Some(2));
        assert!(r.memory().is_none());
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
        let r = pod_resources(&p);
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!(cpu.shares(), Some((750 * 1024 / 1000) as u64));
        assert_eq!(cpu.quota(), Some(150_000));
        assert_eq!(cpu.period(), Some(100_000));
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(96 << 20));
        let p = pod(
            json!([
                {"name": "a", "resources": {"limits": {"memory": "64Mi"}}},
                {"name": "b"},
            ]),
            "Burstable",
        );
        let r = pod_resources(&p);
        assert!(r.memory().is_none(), "one container without a limit: none");
        assert_eq!(r.cpu().as_ref().unwrap().quota(), None);
    }
}
