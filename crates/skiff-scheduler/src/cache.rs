//! The scheduler's cache (kube-scheduler's `internal/cache`): every node with the pods bound
//! or assumed on it and what they request. A pod is **assumed** on its node the moment the
//! scheduler picks it, before the API confirms the binding, so the next pod already sees the
//! node's capacity taken; the binding's watch event confirms it, a failed binding forgets it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};

use crate::podinfo::{PodInfo, PodKey};
use crate::quantity::{node_allocatable, Resources};

/// Taint a node gets while its Ready condition is False (the node lifecycle controller's).
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint a node gets while its Ready condition is Unknown.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint of a cordoned node (`spec.unschedulable`).
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// One node and what runs (or is assumed to run) on it.
#[derive(Debug)]
pub struct NodeInfo {
    pub name: String,
    pub node: Arc<Node>,
    pub labels: BTreeMap<String, String>,
    pub allocatable: Resources,
    pub requested: Resources,
    /// CPU and memory of the pods with the scoring defaults (see `non_zero_requests`).
    pub non_zero: (i64, i64),
    pub pods: HashMap<PodKey, Arc<PodInfo>>,
    /// Its taints, plus the not-ready/unreachable NoSchedule taint its Ready condition implies.
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    /// Pods on the node with pod (anti-)affinity terms.
    pub with_affinity: usize,
}

impl NodeInfo {
    fn new(node: Arc<Node>) -> Self {
        let mut info = NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            node: node.clone(),
            labels: BTreeMap::new(),
            allocatable: Resources::default(),
            requested: Resources::default(),
            non_zero: (0, 0),
            pods: HashMap::new(),
            taints: Vec::new(),
            unschedulable: false,
            with_affinity: 0,
        };
        info.set_node(node);
        info
    }

    /// Replaces the node; returns whether anything scheduling looks at changed.
    fn set_node(&mut self, node: Arc<Node>) -> bool {
        let before = (
            self.labels.clone(),
            self.allocatable,
            self.unschedulable,
            self.taints.clone(),
        );
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        self.allocatable = node_allocatable(&node);
        let spec = node.spec.clone().unwrap_or_default();
        self.unschedulable = spec.unschedulable.unwrap_or(false);
        let mut taints = spec.taints.unwrap_or_default();
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        // A node without a Ready condition has not reported yet: kubelets register with
        // the not-ready taint for that reason.
        let implied = match ready {
            Some("True") => None,
            Some("Unknown") => Some(UNREACHABLE),
            _ => Some(NOT_READY),
        };
        if let Some(key) = implied {
            if !taints
                .iter()
                .any(|t| t.key == key && t.effect == "NoSchedule")
            {
                taints.push(Taint {
                    key: key.into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                });
            }
        }
        self.taints = taints;
        self.node = node;
        before
            != (
                self.labels.clone(),
                self.allocatable,
                self.unschedulable,
                self.taints.clone(),
            )
    }

    fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero.0 += pod.non_zero.0;
        self.non_zero.1 += pod.non_zero.1;
        if pod.has_affinity() {
            self.with_affinity += 1;
        }
        if let Some(old) = self.pods.insert(pod.key.clone(), pod) {
            self.forget_usage(&old);
        }
    }

    fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let old = self.pods.remove(key)?;
        self.forget_usage(&old);
        Some(old)
    }

    fn forget_usage(&mut self, pod: &PodInfo) {
        self.requested.sub(&pod.requests);
        self.non_zero.0 -= pod.non_zero.0;
        self.non_zero.1 -= pod.non_zero.1;
        if pod.has_affinity() {
            self.with_affinity -= 1;
        }
    }

    /// Whether a host port of the pod is taken on this node (same protocol and port, and the
    /// same host IP or either one unspecified).
    pub fn port_conflict(&self, pod: &PodInfo) -> bool {
        let wanted = &pod.placement().host_ports;
        if wanted.is_empty() {
            return false;
        }
        let wildcard = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.pods.values().any(|other| {
            other
                .placement()
                .host_ports
                .iter()
                .any(|(proto, ip, port)| {
                    wanted.iter().any(|(p2, ip2, port2)| {
                        proto == p2 && port == port2 && (ip == ip2 || wildcard(ip) || wildcard(ip2))
                    })
                })
        })
    }
}

/// Where a pod is in the cache.
#[derive(Debug, Clone)]
struct PodState {
    node: String,
    /// Picked by this scheduler, binding not yet seen in the API.
    assumed: bool,
}

/// Nodes and the pods on them.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: BTreeMap<String, NodeInfo>,
    /// Pods bound to nodes the cache has not seen yet (kept until the node arrives).
    orphans: HashMap<String, HashMap<PodKey, Arc<PodInfo>>>,
    pods: HashMap<PodKey, PodState>,
    /// Pods per node of each controller (owner uid), for spreading replicas.
    by_owner: HashMap<Arc<str>, HashMap<String, i64>>,
    /// Pods with (anti-)affinity terms on the cached nodes: the sum of their
    /// `with_affinity`, kept so that [`Cache::any_affinity`] does not visit every node.
    with_affinity: usize,
    /// Namespace labels, for affinity terms with a namespace selector.
    pub namespaces: HashMap<String, BTreeMap<String, String>>,
}

impl Cache {
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.values()
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    /// Replicas of `owner` per node.
    pub fn owner_counts(&self, owner: &str) -> Option<&HashMap<String, i64>> {
        self.by_owner.get(owner)
    }

    /// Adds or replaces a node; returns whether it is new or changed in what scheduling
    /// looks at (labels, allocatable, taints, cordon, readiness), not merely heartbeats.
    pub fn set_node(&mut self, node: Node) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        let node = Arc::new(node);
        match self.nodes.get_mut(&name) {
            Some(info) => info.set_node(node),
            None => {
                let mut info = NodeInfo::new(node);
                for (_, pod) in self.orphans.remove(&name).unwrap_or_default() {
                    info.add_pod(pod);
                }
                self.with_affinity += info.with_affinity;
                self.nodes.insert(name, info);
                true
            }
        }
    }

    /// Removes a node; its pods stay accounted for should it come back.
    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.remove(name) {
            self.with_affinity -= info.with_affinity;
            if !info.pods.is_empty() {
                self.orphans.insert(name.to_string(), info.pods);
            }
        }
    }

    /// Every node once, in name order, starting after `last` and wrapping around (the
    /// search order: consecutive pods look at different nodes first).
    pub fn nodes_after<'a>(
        &'a self,
        last: Option<&str>,
    ) -> impl Iterator<Item = &'a NodeInfo> + use<'a> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let (tail, head) = match last {
            Some(l) => (
                self.nodes.range::<str, _>((Excluded(l), Unbounded)),
                Some(self.nodes.range::<str, _>((Unbounded, Included(l)))),
            ),
            None => (self.nodes.range::<str, _>(..), None),
        };
        tail.chain(head.into_iter().flatten()).map(|(_, n)| n)
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Names of the cached nodes.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// Whether the pod is bound or assumed somewhere.
    pub fn contains(&self, key: &str) -> bool {
        self.pods.contains_key(key)
    }

    /// Whether the pod is assumed and not yet confirmed.
    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|p| p.assumed)
    }

    /// Counts `pod` on `node` before its binding is confirmed.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.place(pod, node, true);
    }

    /// Undoes [`Cache::assume`] after a failed binding.
    pub fn forget(&mut self, key: &str) {
        if self.pods.get(key).is_some_and(|p| p.assumed) {
            self.remove_pod(key);
        }
    }

    /// A pod the API says is bound to a node (confirms an assumed one, moves a pod bound
    /// elsewhere than assumed).
    pub fn add_bound(&mut self, pod: Arc<PodInfo>) {
        let node = pod.node_name.clone();
        self.place(pod, &node, false);
    }

    fn place(&mut self, pod: Arc<PodInfo>, node: &str, assumed: bool) {
        let key = pod.key.clone();
        if self.pods.get(&key).is_some_and(|p| p.node != node) {
            self.remove_pod(&key);
        }
        if let Some(owner) = &pod.owner {
            if !self.pods.contains_key(&key) {
                *self
                    .by_owner
                    .entry(owner.clone())
                    .or_default()
                    .entry(node.to_string())
                    .or_default() += 1;
            }
        }
        self.pods.insert(
            key,
            PodState {
                node: node.to_string(),
                assumed,
            },
        );
        match self.nodes.get_mut(node) {
            Some(info) => {
                let before = info.with_affinity;
                info.add_pod(pod);
                self.with_affinity = self.with_affinity + info.with_affinity - before;
            }
            None => {
                self.orphans
                    .entry(node.to_string())
                    .or_default()
                    .insert(pod.key.clone(), pod);
            }
        }
    }

    /// Removes a pod (deleted, finished, or a forgotten assumption).
    pub fn remove_pod(&mut self, key: &str) {
        let Some(state) = self.pods.remove(key) else {
            return;
        };
        let removed = match self.nodes.get_mut(&state.node) {
            Some(info) => {
                let before = info.with_affinity;
                let removed = info.remove_pod(key);
                self.with_affinity = self.with_affinity + info.with_affinity - before;
                removed
            }
            None => self
                .orphans
                .get_mut(&state.node)
                .and_then(|o| o.remove(key)),
        };
        if let Some(owner) = removed.as_ref().and_then(|p| p.owner.as_ref()) {
            if let Some(per_node) = self.by_owner.get_mut(owner) {
                if let Some(n) = per_node.get_mut(&state.node) {
                    *n -= 1;
                    if *n <= 0 {
                        per_node.remove(&state.node);
                    }
                }
                if per_node.is_empty() {
                    self.by_owner.remove(owner);
                }
            }
        }
    }

    /// Keys of every cached pod (to drop those a re-list no longer shows).
    pub fn pod_keys(&self) -> Vec<PodKey> {
        self.pods.keys().cloned().collect()
    }

    /// Pods with (anti-)affinity terms exist on some node (asked twice for every pod).
    pub fn any_affinity(&self) -> bool {
        self.with_affinity > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name},
            "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "10"},
                "conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap()
    }

    fn pod(name: &str, cpu: &str) -> Arc<PodInfo> {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}))
        .unwrap();
        PodInfo::new(p, &mut Default::default())
    }

    #[test]
    fn assumed_pods_count_until_forgotten_and_confirmation_does_not_double_count() {
        let mut c = Cache::default();
        c.set_node(node("n1"));
        let p = pod("a", "500m");
        c.assume(p.assumed_on("n1"), "n1");
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 500);
        c.add_bound(p.assumed_on("n1"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 500);
        assert!(!c.is_assumed("d/a"));
        c.remove_pod("d/a");
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 0);
        c.assume(p.assumed_on("n1"), "n1");
        c.forget("d/a");
        assert_eq!(c.node("n1").unwrap().requested, Resources::default());
    }

    #[test]
    fn pods_of_unknown_nodes_are_counted_when_the_node_arrives() {
        let mut c = Cache::default();
        c.add_bound(pod("a", "1").assumed_on("n2"));
        c.set_node(node("n2"));
        assert_eq!(c.node("n2").unwrap().requested.milli_cpu, 1000);
        assert_eq!(c.node("n2").unwrap().requested.pods, 1);
    }

    #[test]
    fn pods_with_affinity_are_counted_through_assume_bind_remove_and_node_churn() {
        let with_affinity = |name: &str| -> Arc<PodInfo> {
            let p: Pod = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "d", "labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c"}], "affinity": {"podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [{
                        "labelSelector": {"matchLabels": {"app": "a"}},
                        "topologyKey": "kubernetes.io/hostname"}]}}}}))
            .unwrap();
            PodInfo::new(p, &mut Default::default())
        };
        // What `any_affinity` answered before it kept a count: a look at every node.
        let walk = |c: &Cache| c.nodes().any(|n| n.with_affinity > 0);
        let mut c = Cache::default();
        c.set_node(node("n1"));
        c.set_node(node("n2"));
        c.assume(pod("plain", "1"), "n1");
        assert!(!c.any_affinity());
        let a = with_affinity("a");
        c.assume(a.clone(), "n1");
        assert!(c.any_affinity() && walk(&c));
        c.add_bound(a.assumed_on("n1")); // confirmed: still one
        c.add_bound(a.assumed_on("n2")); // bound elsewhere than assumed: moved
        assert_eq!(c.node("n1").unwrap().with_affinity, 0);
        assert!(c.any_affinity() && walk(&c));
        c.remove_node("n2"); // its pods wait as orphans, not on a cached node
        assert!(!c.any_affinity() && !walk(&c));
        c.set_node(node("n2")); // and count again when it returns
        assert!(c.any_affinity() && walk(&c));
        c.remove_pod("d/a");
        assert!(!c.any_affinity() && !walk(&c));
        c.assume(with_affinity("b"), "n1");
        c.forget("d/b");
        assert!(!c.any_affinity() && !walk(&c));
    }

    #[test]
    fn nodes_without_ready_condition_carry_the_not_ready_taint() {
        let mut c = Cache::default();
        c.set_node(serde_json::from_value(json!({"metadata": {"name": "n"}})).unwrap());
        assert_eq!(c.node("n").unwrap().taints[0].key, NOT_READY);
    }
}
