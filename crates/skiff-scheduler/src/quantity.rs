//! Resource amounts of pods and nodes, from Kubernetes quantities (parsed by `kube_quantity`):
//! what a pod requests (its containers' sum, its init containers' maximum, its overhead) and
//! what a node offers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube_quantity::ParsedQuantity;

/// CPU a container without a request counts as when scoring (kube-scheduler's 100m).
pub const DEFAULT_MILLI_CPU: i64 = 100;
/// Memory a container without a request counts as when scoring (200 MiB).
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// The resources the scheduler accounts for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Pods (only meaningful for a node's allocatable).
    pub pods: i64,
}

impl Resources {
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
    }

    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
    }

    fn max(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
    }

    fn of(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list.into_iter().flatten() {
            match name.as_str() {
                "cpu" => r.milli_cpu = milli_value(q),
                "memory" => r.memory = value(q),
                "ephemeral-storage" => r.ephemeral_storage = value(q),
                "pods" => r.pods = value(q),
                _ => {}
            }
        }
        r
    }
}

/// `q` in thousandths, rounded up as Kubernetes' `MilliValue` rounds (0 when unparsable:
/// the API server validated it).
pub fn milli_value(q: &Quantity) -> i64 {
    scaled(q, 1000.0)
}

/// `q` as an integer, rounded up as Kubernetes' `Value` rounds.
pub fn value(q: &Quantity) -> i64 {
    scaled(q, 1.0)
}

fn scaled(q: &Quantity, factor: f64) -> i64 {
    let Some(v) = ParsedQuantity::try_from(q)
        .ok()
        .and_then(|p| p.to_bytes_f64())
    else {
        return 0;
    };
    let x = v * factor;
    // The binary fraction of a decimal such as 0.1 lands a hair above or below it: take the
    // nearest integer when within rounding error of it, else round up as Kubernetes does.
    let nearest = x.round();
    let out = if (x - nearest).abs() <= 1e-9 * nearest.abs().max(1.0) {
        nearest
    } else {
        x.ceil()
    };
    out.clamp(i64::MIN as f64, i64::MAX as f64) as i64
}

fn container_requests(c: &Container) -> Resources {
    Resources::of(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

/// What a pod requests: its containers' sum, at least any init container's (restartable
/// init containers, "sidecars", run beside the others and add up), plus its overhead.
pub fn pod_requests(spec: &PodSpec) -> Resources {
    let mut sum = Resources::default();
    for c in &spec.containers {
        sum.add(&container_requests(c));
    }
    let mut init_max = Resources::default();
    let mut sidecars = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            init_max.max(&sidecars);
        } else {
            let mut with_sidecars = sidecars;
            with_sidecars.add(&r);
            init_max.max(&with_sidecars);
        }
    }
    sum.add(&sidecars);
    sum.max(&init_max);
    sum.add(&Resources::of(spec.overhead.as_ref()));
    sum.pods = 1;
    sum
}

/// CPU and memory a pod counts as when scoring: containers without a request count as
/// [`DEFAULT_MILLI_CPU`] and [`DEFAULT_MEMORY`], so best-effort pods still spread.
pub fn non_zero_requests(spec: &PodSpec) -> (i64, i64) {
    let (mut cpu, mut mem) = (0, 0);
    for c in &spec.containers {
        let r = container_requests(c);
        let has = |name: &str| {
            c.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .is_some_and(|m| m.contains_key(name))
        };
        cpu += if has("cpu") {
            r.milli_cpu
        } else {
            DEFAULT_MILLI_CPU
        };
        mem += if has("memory") {
            r.memory
        } else {
            DEFAULT_MEMORY
        };
    }
    let overhead = Resources::of(spec.overhead.as_ref());
    (cpu + overhead.milli_cpu, mem + overhead.memory)
}

/// What a node offers pods: its allocatable, or its capacity when it reports none.
pub fn node_allocatable(node: &Node) -> Resources {
    let status = node.status.as_ref();
    let list = status
        .and_then(|s| s.allocatable.as_ref())
        .filter(|a| !a.is_empty())
        .or_else(|| status.and_then(|s| s.capacity.as_ref()));
    Resources::of(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity(s.into())
    }

    #[test]
    fn quantities_round_like_kubernetes() {
        assert_eq!(milli_value(&q("100m")), 100);
        assert_eq!(milli_value(&q("0.1")), 100);
        assert_eq!(milli_value(&q("2")), 2000);
        assert_eq!(milli_value(&q("1.5")), 1500);
        assert_eq!(value(&q("1Gi")), 1 << 30);
        assert_eq!(value(&q("1.5Gi")), 3 << 29);
        assert_eq!(value(&q("128M")), 128_000_000);
        assert_eq!(value(&q("110")), 110);
        assert_eq!(value(&q("500m")), 1, "fractions round up");
        assert_eq!(milli_value(&q("0.0001")), 1);
    }

    #[test]
    fn init_containers_count_by_their_maximum_and_overhead_adds() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1", "memory": "32Mi"}}}],
            "overhead": {"cpu": "10m"},
        }))
        .unwrap();
        let r = pod_requests(&spec);
        assert_eq!(r.milli_cpu, 1010);
        assert_eq!(r.memory, 64 << 20);
        assert_eq!(r.pods, 1);
        assert_eq!(non_zero_requests(&spec), (310, (64 << 20) + DEFAULT_MEMORY));
    }
}
