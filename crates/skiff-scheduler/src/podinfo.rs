//! A pod as the scheduler uses it: parsed once when it arrives from the watch (requests,
//! host ports, label selectors of its affinity terms and spread constraints), so the
//! per-node filters and scores do no parsing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    NodeSelector, Pod, PodAffinityTerm, PreferredSchedulingTerm, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use crate::quantity::{non_zero_requests, pod_requests, Resources};

/// The scheduler name pods get by default.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// `namespace/name`.
pub type PodKey = String;

/// The key of a pod.
pub fn key_of(pod: &Pod) -> PodKey {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A label selector, parsed. A selector that does not parse selects nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelMatch(Option<Selector>);

impl LabelMatch {
    pub fn new(s: Option<&LabelSelector>) -> Self {
        // A missing selector selects nothing; an empty one selects everything.
        LabelMatch(s.and_then(|s| Selector::try_from(s.clone()).ok()))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.as_ref().is_some_and(|s| s.matches(labels))
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
        let in_ns = match &self.namespaces {
            Namespaces::Listed(l) => l.contains(&pod.namespace),
            Namespaces::Selected(l, _) if l.contains(&pod.namespace) => true,
            Namespaces::Selected(_, sel) => match namespaces.get(&pod.namespace) {
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

/// The scheduler's view of a pod: what its filters, scores, queue and reports read, taken
/// out of the Pod when it arrives. The Pod itself is not kept (a typed Pod as the API
/// serves it costs ~18 KB of heap; 10,000 pending pods held ~180 MB).
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub key: PodKey,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub priority: i32,
    pub requests: Resources,
    /// CPU and memory counted when scoring (defaults for containers without requests).
    pub non_zero: (i64, i64),
    /// (protocol, hostIP, hostPort) of every container port with a host port.
    pub host_ports: Vec<(String, String, i32)>,
    pub node_selector: BTreeMap<String, String>,
    pub required_node_affinity: Option<NodeSelector>,
    pub preferred_node_affinity: Vec<PreferredSchedulingTerm>,
    pub tolerations: Vec<Toleration>,
    pub affinity: Vec<AffinityTerm>,
    pub anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<AffinityTerm>,
    pub preferred_anti_affinity: Vec<AffinityTerm>,
    pub spread: Vec<SpreadConstraint>,
    /// The uid of the controller owning the pod (its replicas spread by default).
    pub owner: Option<String>,
    pub scheduler_name: String,
    pub node_name: String,
    pub preempt_never: bool,
    /// `metadata.resourceVersion` of the version seen (events name it).
    pub resource_version: Option<String>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub being_deleted: bool,
    /// `status.phase`.
    pub phase: Option<String>,
    /// The status and message of the pod's `PodScheduled` condition, if it has one.
    pub scheduled_condition: Option<(String, Option<String>)>,
}

impl PodInfo {
    pub fn new(pod: Pod) -> Arc<PodInfo> {
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
        let owner = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone());
        Arc::new(PodInfo {
            key: format!("{namespace}/{}", meta.name.as_deref().unwrap_or_default()),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            labels,
            priority: spec.priority.unwrap_or(0),
            requests: pod_requests(&spec),
            non_zero: non_zero_requests(&spec),
            host_ports,
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_affinity: node_affinity
                .required_during_scheduling_ignored_during_execution,
            preferred_node_affinity: node_affinity
                .preferred_during_scheduling_ignored_during_execution
                .unwrap_or_default(),
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            affinity: required(pod_affinity.required_during_scheduling_ignored_during_execution),
            anti_affinity: required(pod_anti.required_during_scheduling_ignored_during_execution),
            preferred_affinity: preferred(
                pod_affinity.preferred_during_scheduling_ignored_during_execution,
            ),
            preferred_anti_affinity: preferred(
                pod_anti.preferred_during_scheduling_ignored_during_execution,
            ),
            spread,
            owner,
            scheduler_name: spec
                .scheduler_name
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_SCHEDULER.into()),
            node_name: spec.node_name.clone().unwrap_or_default(),
            preempt_never: spec.preemption_policy.as_deref() == Some("Never"),
            namespace,
            being_deleted: meta.deletion_timestamp.is_some(),
            resource_version: meta.resource_version,
            scheduled_condition: status
                .conditions
                .into_iter()
                .flatten()
                .find(|c| c.type_ == "PodScheduled")
                .map(|c| (c.status, c.message)),
            phase: status.phase,
        })
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
            name,
            uid,
            labels,
            priority,
            requests,
            non_zero,
            host_ports,
            node_selector,
            required_node_affinity,
            preferred_node_affinity,
            tolerations,
            affinity,
            anti_affinity,
            preferred_affinity,
            preferred_anti_affinity,
            spread,
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
            name,
            uid,
            labels,
            priority,
            requests,
            non_zero,
            host_ports,
            node_selector,
            required_node_affinity,
            preferred_node_affinity,
        ) != (
            &newer.key,
            &newer.namespace,
            &newer.name,
            &newer.uid,
            &newer.labels,
            &newer.priority,
            &newer.requests,
            &newer.non_zero,
            &newer.host_ports,
            &newer.node_selector,
            &newer.required_node_affinity,
            &newer.preferred_node_affinity,
        ) || (
            tolerations,
            affinity,
            anti_affinity,
            preferred_affinity,
            preferred_anti_affinity,
            spread,
            owner,
            scheduler_name,
            node_name,
            preempt_never,
            being_deleted,
            phase,
        ) != (
            &newer.tolerations,
            &newer.affinity,
            &newer.anti_affinity,
            &newer.preferred_affinity,
            &newer.preferred_anti_affinity,
            &newer.spread,
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
        !(self.affinity.is_empty()
            && self.anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
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
        info.node_name = node.to_string();
        Arc::new(info)
    }
}
