//! A pod as the scheduler uses it: parsed once when it arrives from the watch (requests,
//! host ports, label selectors of its affinity terms and spread constraints), so the
//! per-node filters and scores do no parsing.
//!
//! It is kept for every pod the scheduler knows (10,000 pending pods are 10,000 of them), so
//! it is compact: the strings many pods repeat (namespace, label keys and values, owner uid,
//! scheduler name, the `PodScheduled` message) are shared through an [`Interner`], equal
//! toleration lists are shared, and the constraints most pods do not have live in one box
//! that is absent when they are all empty.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    NodeSelector, Pod, PodAffinityTerm, PreferredSchedulingTerm, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Expression, Selector};

use crate::quantity::{non_zero_requests, pod_requests, Resources};

/// The scheduler name pods get by default.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// `namespace/name`; shared by the queue, the cache and the reports (a clone is a count).
pub type PodKey = Arc<str>;

/// The key of a pod.
pub fn key_of(pod: &Pod) -> PodKey {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
    .into()
}

/// Strings that many pods repeat, held once. Strings no pod holds any more are dropped when
/// the set has doubled since the last look, so it stays within twice what is in use.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Arc<str>>,
    prune_at: usize,
    /// The last toleration list seen: replicas of one template (and pods with only the
    /// default tolerations) share it.
    tolerations: Option<Arc<[Toleration]>>,
}

impl Interner {
    /// The shared copy of `s`.
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(s) {
            return shared.clone();
        }
        if self.strings.len() >= self.prune_at {
            self.strings.retain(|s| Arc::strong_count(s) > 1);
            self.prune_at = (self.strings.len() * 2).max(1024);
        }
        let shared: Arc<str> = s.into();
        self.strings.insert(shared.clone());
        shared
    }

    fn tolerations(&mut self, list: Vec<Toleration>) -> Arc<[Toleration]> {
        match &self.tolerations {
            Some(last) if **last == *list => last.clone(),
            _ => {
                let list: Arc<[Toleration]> = list.into();
                self.tolerations = Some(list.clone());
                list
            }
        }
    }

    /// How many strings it holds (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.strings.len()
    }
}

/// Something with labels: a pod's [`Labels`] or a node's or namespace's map.
pub trait LabelSet {
    fn label(&self, key: &str) -> Option<&str>;
}

impl LabelSet for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A pod's labels, sorted by key, their strings shared through the [`Interner`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Labels(Box<[(Arc<str>, Arc<str>)]>);

impl Labels {
    pub fn new(map: &BTreeMap<String, String>, interner: &mut Interner) -> Labels {
        // A BTreeMap iterates in key order.
        Labels(
            map.iter()
                .map(|(k, v)| (interner.get(k), interner.get(v)))
                .collect(),
        )
    }
}

impl LabelSet for Labels {
    fn label(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }
}

/// A label selector, parsed. A selector that does not parse selects nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelMatch(Option<Box<[Expression]>>);

impl LabelMatch {
    pub fn new(s: Option<&LabelSelector>) -> Self {
        // A missing selector selects nothing; an empty one selects everything.
        LabelMatch(
            s.and_then(|s| Selector::try_from(s.clone()).ok())
                .map(|s| s.into_iter().collect()),
        )
    }

    /// Whether every expression holds, as kube's `SelectorExt::matches` decides it.
    pub fn matches(&self, labels: &impl LabelSet) -> bool {
        let Some(exprs) = &self.0 else {
            return false;
        };
        exprs.iter().all(|e| match e {
            Expression::In(key, values) => labels.label(key).is_some_and(|v| values.contains(v)),
            Expression::NotIn(key, values) => labels.label(key).is_none_or(|v| !values.contains(v)),
            Expression::Exists(key) => labels.label(key).is_some(),
            Expression::DoesNotExist(key) => labels.label(key).is_none(),
            Expression::Equal(key, value) => labels.label(key) == Some(value.as_str()),
            Expression::NotEqual(key, value) => labels.label(key) != Some(value.as_str()),
        })
    }
}

/// Which namespaces an affinity term looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Namespaces {
    /// The listed ones (the pod's own when the term lists none and has no selector).
    Listed(BTreeSet<String>),
    /// The listed ones and those whose labels the selector matches (`{}`: all).
    Selected(BTreeSet<String>, LabelMatch),
}

/// One pod (anti-)affinity term.
#[derive(Debug, Clone, PartialEq)]
pub struct AffinityTerm {
    pub selector: LabelMatch,
    pub namespaces: Namespaces,
    pub topology_key: String,
    /// The weight of a preferred term (1 for required ones).
    pub weight: i64,
}

impl AffinityTerm {
    fn new(term: &PodAffinityTerm, own_ns: &str, weight: i32) -> Self {
        let listed: BTreeSet<String> = term.namespaces.iter().flatten().cloned().collect();
        let namespaces = match &term.namespace_selector {
            Some(sel) => Namespaces::Selected(listed, LabelMatch::new(Some(sel))),
            None if listed.is_empty() => Namespaces::Listed([own_ns.to_string()].into()),
            None => Namespaces::Listed(listed),
        };
        AffinityTerm {
            selector: LabelMatch::new(term.label_selector.as_ref()),
            namespaces,
            topology_key: term.topology_key.clone(),
            weight: weight as i64,
        }
    }

    /// Whether this term selects `pod`; `namespaces` holds the labels of each namespace.
    pub fn matches(
        &self,
        pod: &PodInfo,
        namespaces: &HashMap<String, BTreeMap<String, String>>,
    ) -> bool {
        let ns: &str = &pod.namespace;
        let in_ns = match &self.namespaces {
            Namespaces::Listed(l) => l.contains(ns),
            Namespaces::Selected(l, _) if l.contains(ns) => true,
            Namespaces::Selected(_, sel) => match namespaces.get(ns) {
                Some(labels) => sel.matches(labels),
                None => sel.matches(&BTreeMap::new()),
            },
        };
        in_ns && self.selector.matches(&pod.labels)
    }
}

/// A topology spread constraint.
#[derive(Debug, Clone, PartialEq)]
pub struct SpreadConstraint {
    pub max_skew: i64,
    pub topology_key: String,
    /// `DoNotSchedule` (a filter) rather than `ScheduleAnyway` (a score).
    pub hard: bool,
    pub selector: LabelMatch,
    pub min_domains: Option<i64>,
    /// Whether nodes the pod's node affinity/selector excludes are left out of the counts
    /// (`nodeAffinityPolicy: Honor`, the default).
    pub honor_affinity: bool,
    /// Whether tainted nodes the pod does not tolerate are left out (`nodeTaintsPolicy`).
    pub honor_taints: bool,
}

/// What restricts where a pod may go besides its requests and tolerations. Most pods have
/// none of it, and then [`PodInfo`] holds no box for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    /// (protocol, hostIP, hostPort) of every container port with a host port.
    pub host_ports: Vec<(String, String, i32)>,
    pub node_selector: BTreeMap<String, String>,
    pub required_node_affinity: Option<NodeSelector>,
    pub preferred_node_affinity: Vec<PreferredSchedulingTerm>,
    pub affinity: Vec<AffinityTerm>,
    pub anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<AffinityTerm>,
    pub preferred_anti_affinity: Vec<AffinityTerm>,
    pub spread: Vec<SpreadConstraint>,
}

/// The placement of pods that have none.
static NO_PLACEMENT: Placement = Placement {
    host_ports: Vec::new(),
    node_selector: BTreeMap::new(),
    required_node_affinity: None,
    preferred_node_affinity: Vec::new(),
    affinity: Vec::new(),
    anti_affinity: Vec::new(),
    preferred_affinity: Vec::new(),
    preferred_anti_affinity: Vec::new(),
    spread: Vec::new(),
};

/// The scheduler's view of a pod: what its filters, scores, queue and reports read, taken
/// out of the Pod when it arrives. The Pod itself is not kept (a typed Pod as the API
/// serves it costs ~18 KB of heap; 10,000 pending pods held ~180 MB).
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// `namespace/name`.
    pub key: PodKey,
    pub namespace: Arc<str>,
    pub uid: Arc<str>,
    pub labels: Labels,
    pub priority: i32,
    pub requests: Resources,
    /// CPU and memory counted when scoring (defaults for containers without requests).
    pub non_zero: (i64, i64),
    pub tolerations: Arc<[Toleration]>,
    /// `None` when the pod has no [`Placement`] constraint at all.
    placement: Option<Box<Placement>>,
    /// The uid of the controller owning the pod (its replicas spread by default).
    pub owner: Option<Arc<str>>,
    pub scheduler_name: Arc<str>,
    /// Empty while unbound.
    pub node_name: Arc<str>,
    pub preempt_never: bool,
    /// `metadata.resourceVersion` of the version seen (events name it).
    pub resource_version: Option<Box<str>>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub being_deleted: bool,
    /// `status.phase`.
    pub phase: Option<Arc<str>>,
    /// The status and message of the pod's `PodScheduled` condition, if it has one.
    pub scheduled_condition: Option<(Arc<str>, Option<Arc<str>>)>,
}

impl PodInfo {
    /// The scheduler's view of `pod`, its repeated strings shared through `interner`.
    pub fn new(pod: Pod, interner: &mut Interner) -> Arc<PodInfo> {
        let Pod {
            metadata: meta,
            spec,
            status,
        } = pod;
        let spec = spec.unwrap_or_default();
        let status = status.unwrap_or_default();
        let namespace = meta.namespace.clone().unwrap_or_default();
        let labels = meta.labels.clone().unwrap_or_default();
        let host_ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter(|p| p.host_port.is_some_and(|h| h > 0))
            .map(|p| {
                (
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    p.host_ip.clone().unwrap_or_default(),
                    p.host_port.unwrap_or_default(),
                )
            })
            .collect();
        let affinity = spec.affinity.clone().unwrap_or_default();
        let node_affinity = affinity.node_affinity.unwrap_or_default();
        let pod_affinity = affinity.pod_affinity.unwrap_or_default();
        let pod_anti = affinity.pod_anti_affinity.unwrap_or_default();
        let required = |terms: Option<Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(&t, &namespace, 1))
                .collect()
        };
        let preferred =
            |terms: Option<Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
                terms
                    .into_iter()
                    .flatten()
                    .map(|t| AffinityTerm::new(&t.pod_affinity_term, &namespace, t.weight))
                    .collect::<Vec<_>>()
            };
        let spread = spec
            .topology_spread_constraints
            .iter()
            .flatten()
            .map(|c| {
                // matchLabelKeys narrow the selector to the pod's own values of those keys.
                let mut selector = c.label_selector.clone();
                if let Some(keys) = &c.match_label_keys {
                    let sel = selector.get_or_insert_with(Default::default);
                    let ml = sel.match_labels.get_or_insert_with(Default::default);
                    for k in keys {
                        if let Some(v) = labels.get(k) {
                            ml.insert(k.clone(), v.clone());
                        }
                    }
                }
                SpreadConstraint {
                    max_skew: c.max_skew as i64,
                    topology_key: c.topology_key.clone(),
                    hard: c.when_unsatisfiable == "DoNotSchedule",
                    selector: LabelMatch::new(selector.as_ref()),
                    min_domains: c.min_domains.map(i64::from),
                    honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                    honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
                }
            })
            .collect();
        let placement = Placement {
            host_ports,
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_affinity: node_affinity
                .required_during_scheduling_ignored_during_execution,
            preferred_node_affinity: node_affinity
                .preferred_during_scheduling_ignored_during_execution
                .unwrap_or_default(),
            affinity: required(pod_affinity.required_during_scheduling_ignored_during_execution),
            anti_affinity: required(pod_anti.required_during_scheduling_ignored_during_execution),
            preferred_affinity: preferred(
                pod_affinity.preferred_during_scheduling_ignored_during_execution,
            ),
            preferred_anti_affinity: preferred(
                pod_anti.preferred_during_scheduling_ignored_during_execution,
            ),
            spread,
        };
        let owner = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| interner.get(&o.uid));
        let scheduler_name = spec
            .scheduler_name
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_SCHEDULER);
        Arc::new(PodInfo {
            key: format!("{namespace}/{}", meta.name.as_deref().unwrap_or_default()).into(),
            uid: meta.uid.as_deref().unwrap_or_default().into(),
            labels: Labels::new(&labels, interner),
            priority: spec.priority.unwrap_or(0),
            requests: pod_requests(&spec),
            non_zero: non_zero_requests(&spec),
            tolerations: interner.tolerations(spec.tolerations.clone().unwrap_or_default()),
            placement: (placement != NO_PLACEMENT).then(|| Box::new(placement)),
            owner,
            scheduler_name: interner.get(scheduler_name),
            node_name: interner.get(spec.node_name.as_deref().unwrap_or_default()),
            preempt_never: spec.preemption_policy.as_deref() == Some("Never"),
            namespace: interner.get(&namespace),
            being_deleted: meta.deletion_timestamp.is_some(),
            resource_version: meta.resource_version.map(String::into_boxed_str),
            scheduled_condition: status
                .conditions
                .into_iter()
                .flatten()
                .find(|c| c.type_ == "PodScheduled")
                .map(|c| (interner.get(&c.status), c.message.map(|m| interner.get(&m)))),
            phase: status.phase.map(|p| interner.get(&p)),
        })
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.key[self.namespace.len() + 1..]
    }

    /// Node selector and affinity, pod (anti-)affinity, spread constraints and host ports.
    pub fn placement(&self) -> &Placement {
        self.placement.as_deref().unwrap_or(&NO_PLACEMENT)
    }

    /// Whether `newer`, a later version of this pod, differs in anything scheduling looks
    /// at. The pod's status as the scheduler writes it (the `PodScheduled` condition) and its
    /// resourceVersion do not count: kube-scheduler's `isPodUpdated` ignores the status too, so
    /// an unschedulable pod is not tried again because its own condition was written.
    pub fn changed_for_scheduling(&self, newer: &PodInfo) -> bool {
        // Destructured so that a field added to PodInfo must be placed on one side or the other.
        let PodInfo {
            key,
            namespace,
            uid,
            labels,
            priority,
            requests,
            non_zero,
            tolerations,
            placement,
            owner,
            scheduler_name,
            node_name,
            preempt_never,
            being_deleted,
            phase,
            resource_version: _,
            scheduled_condition: _,
        } = self;
        (
            key,
            namespace,
            uid,
            labels,
            priority,
            requests,
            non_zero,
            tolerations,
            placement,
        ) != (
            &newer.key,
            &newer.namespace,
            &newer.uid,
            &newer.labels,
            &newer.priority,
            &newer.requests,
            &newer.non_zero,
            &newer.tolerations,
            &newer.placement,
        ) || (
            owner,
            scheduler_name,
            node_name,
            preempt_never,
            being_deleted,
            phase,
        ) != (
            &newer.owner,
            &newer.scheduler_name,
            &newer.node_name,
            &newer.preempt_never,
            &newer.being_deleted,
            &newer.phase,
        )
    }

    /// Whether the pod carries any pod (anti-)affinity term.
    pub fn has_affinity(&self) -> bool {
        let p = self.placement();
        !(p.affinity.is_empty()
            && p.anti_affinity.is_empty()
            && p.preferred_affinity.is_empty()
            && p.preferred_anti_affinity.is_empty())
    }

    /// Whether the pod is being deleted.
    pub fn deleting(&self) -> bool {
        self.being_deleted
    }

    /// Whether the pod finished (its resources are free again).
    pub fn terminal(&self) -> bool {
        matches!(self.phase.as_deref(), Some("Succeeded" | "Failed"))
    }

    /// A copy bound to `node`, as its watch event after the binding shows it.
    #[cfg(test)]
    pub fn assumed_on(&self, node: &str) -> Arc<PodInfo> {
        let mut info = self.clone();
        info.node_name = node.into();
        Arc::new(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(pod: serde_json::Value, interner: &mut Interner) -> Arc<PodInfo> {
        PodInfo::new(serde_json::from_value(pod).unwrap(), interner)
    }

    #[test]
    fn pods_share_repeated_strings_and_tolerations_and_box_no_empty_placement() {
        let mut interner = Interner::default();
        let tolerations = json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 300}]);
        let pod = |name: &str, interner: &mut Interner| {
            info(
                json!({"metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}"),
                    "labels": {"app": "web", "tier": "front"}},
                    "spec": {"containers": [], "tolerations": tolerations}}),
                interner,
            )
        };
        let (a, b) = (pod("a", &mut interner), pod("b", &mut interner));
        assert_eq!((a.name(), &*a.namespace, &*a.key), ("a", "ns", "ns/a"));
        assert!(Arc::ptr_eq(&a.namespace, &b.namespace));
        assert!(Arc::ptr_eq(&a.tolerations, &b.tolerations));
        assert!(Arc::ptr_eq(&a.labels.0[0].1, &b.labels.0[0].1));
        assert_eq!(a.labels.label("tier"), Some("front"));
        assert_eq!(a.labels.label("zone"), None);
        assert!(a.placement.is_none() && !a.has_affinity());
        assert!(!a.changed_for_scheduling(&pod("a", &mut interner)));
    }

    #[test]
    fn strings_no_pod_holds_are_dropped_once_the_set_doubles() {
        let mut interner = Interner::default();
        let kept = interner.get("kept");
        for i in 0..5000 {
            interner.get(&format!("gone-{i}"));
        }
        assert!(interner.len() < 2100, "{}", interner.len());
        assert!(Arc::ptr_eq(&kept, &interner.get("kept")));
    }

    #[test]
    fn selectors_match_labels_as_kube_does() {
        use kube::core::SelectorExt;
        let mut interner = Interner::default();
        let map: BTreeMap<String, String> = [
            ("app".into(), "web".into()),
            ("tier".into(), "front".into()),
        ]
        .into();
        let labels = Labels::new(&map, &mut interner);
        for sel in [
            json!({}),
            json!({"matchLabels": {"app": "web"}}),
            json!({"matchLabels": {"app": "db"}}),
            json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "x"]}]}),
            json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}),
            json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}),
            json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}),
            json!({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}),
            json!({"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "Exists"}]}),
        ] {
            let sel: LabelSelector = serde_json::from_value(sel).unwrap();
            let kube = Selector::try_from(sel.clone()).unwrap().matches(&map);
            assert_eq!(
                LabelMatch::new(Some(&sel)).matches(&labels),
                kube,
                "{sel:?}"
            );
            assert_eq!(LabelMatch::new(Some(&sel)).matches(&map), kube, "{sel:?}");
        }
        assert!(!LabelMatch::new(None).matches(&labels));
    }
}
