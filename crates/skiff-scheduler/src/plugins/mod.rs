//! The filter and score plugins of kube-scheduler's default profile, in its order and with
//! its weights and messages: NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts,
//! NodeResourcesFit, PodTopologySpread and InterPodAffinity filter; TaintToleration (3),
//! NodeAffinity (2), PodTopologySpread (2), InterPodAffinity (2), NodeResourcesFit
//! (least allocated, 1) and NodeResourcesBalancedAllocation (1) score.
//!
//! What a plugin needs from every node for one pod (pods matching a spread constraint or an
//! affinity term per topology domain) is computed once per pod in [`CycleState::new`]
//! (kube-scheduler's PreFilter), so each node's filter is a few lookups. As there, a
//! plugin with nothing to check for the pod (no node selector or affinity, no host port,
//! no hard spread constraint, no affinity term of its own or of a placed pod against it)
//! is skipped for every node (PreFilter's `Skip`).

mod fit;
mod interpod;
mod node;
mod spread;

use crate::cache::{Cache, NodeInfo};
use crate::podinfo::PodInfo;

/// Highest score a plugin gives a node.
pub const MAX_SCORE: i64 = 100;

/// Why a node does not fit a pod, worded as kube-scheduler words it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Unschedulable,
    UntoleratedTaint { key: String, value: String },
    NodeAffinity,
    Ports,
    Insufficient(&'static str),
    TooManyPods,
    SpreadMissingLabel,
    Spread,
    PodAffinity,
    PodAntiAffinity,
    ExistingAntiAffinity,
}

impl Reason {
    pub fn message(&self) -> String {
        match self {
            Reason::Unschedulable => "node(s) were unschedulable".into(),
            Reason::UntoleratedTaint { key, value } => {
                format!("node(s) had untolerated taint {{{key}: {value}}}")
            }
            Reason::NodeAffinity => "node(s) didn't match Pod's node affinity/selector".into(),
            Reason::Ports => "node(s) didn't have free ports for the requested pod ports".into(),
            Reason::Insufficient(r) => format!("Insufficient {r}"),
            Reason::TooManyPods => "Too many pods".into(),
            Reason::SpreadMissingLabel => {
                "node(s) didn't match pod topology spread constraints (missing required label)"
                    .into()
            }
            Reason::Spread => "node(s) didn't match pod topology spread constraints".into(),
            Reason::PodAffinity => "node(s) didn't match pod affinity rules".into(),
            Reason::PodAntiAffinity => "node(s) didn't match pod anti-affinity rules".into(),
            Reason::ExistingAntiAffinity => {
                "node(s) didn't satisfy existing pods anti-affinity rules".into()
            }
        }
    }

    /// Whether evicting pods could make the node fit (kube-scheduler's `Unschedulable`
    /// rather than `UnschedulableAndUnresolvable`).
    pub fn resolvable(&self) -> bool {
        matches!(
            self,
            Reason::Ports
                | Reason::Insufficient(_)
                | Reason::TooManyPods
                | Reason::Spread
                | Reason::PodAntiAffinity
                | Reason::ExistingAntiAffinity
        )
    }
}

/// What the plugins computed for one pod before looking at nodes.
pub struct CycleState {
    spread: spread::State,
    interpod: interpod::State,
    /// The filters that can refuse a node for this pod (the others are skipped).
    node_affinity: bool,
    ports: bool,
    hard_spread: bool,
    pod_affinity: bool,
}

impl CycleState {
    pub fn new(pod: &PodInfo, cache: &Cache) -> Self {
        let placement = pod.placement();
        let spread = spread::State::new(pod, cache);
        let interpod = interpod::State::new(pod, cache);
        CycleState {
            node_affinity: !placement.node_selector.is_empty()
                || placement.required_node_affinity.is_some(),
            ports: !placement.host_ports.is_empty(),
            hard_spread: spread.filters(),
            pod_affinity: interpod.filters(),
            spread,
            interpod,
        }
    }
}

/// Runs the filters on one node, stopping at the first plugin that refuses it.
pub fn filter(pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Vec<Reason>> {
    if let Some(r) = node::unschedulable(pod, node) {
        return Err(vec![r]);
    }
    if let Some(r) = node::untolerated_taint(pod, node) {
        return Err(vec![r]);
    }
    if state.node_affinity && !node::matches_affinity(pod, node) {
        return Err(vec![Reason::NodeAffinity]);
    }
    if state.ports && node.port_conflict(pod) {
        return Err(vec![Reason::Ports]);
    }
    let short = fit::insufficient(pod, node);
    if !short.is_empty() {
        return Err(short);
    }
    if state.hard_spread {
        if let Some(r) = state.spread.filter(pod, node) {
            return Err(vec![r]);
        }
    }
    if state.pod_affinity {
        if let Some(r) = state.interpod.filter(node) {
            return Err(vec![r]);
        }
    }
    Ok(())
}

/// The weighted total score of each of `nodes` for `pod` (all of them passed the filters).
pub fn score(pod: &PodInfo, nodes: &[&NodeInfo], state: &CycleState, cache: &Cache) -> Vec<i64> {
    let mut total = vec![0i64; nodes.len()];
    let mut add = |scores: Vec<i64>, weight: i64| {
        for (t, s) in total.iter_mut().zip(scores) {
            *t += s * weight;
        }
    };
    add(
        normalize_reverse(
            nodes
                .iter()
                .map(|n| node::prefer_no_schedule(pod, n))
                .collect(),
        ),
        3,
    );
    if !pod.placement().preferred_node_affinity.is_empty() {
        add(
            normalize(
                nodes
                    .iter()
                    .map(|n| node::preferred_affinity(pod, n))
                    .collect(),
            ),
            2,
        );
    }
    add(state.spread.score(pod, nodes, cache), 2);
    add(state.interpod.score(pod, nodes, cache), 2);
    add(
        nodes.iter().map(|n| fit::least_allocated(pod, n)).collect(),
        1,
    );
    add(nodes.iter().map(|n| fit::balanced(pod, n)).collect(), 1);
    total
}

/// Scales scores to 0..=100 by the highest (kube-scheduler's `DefaultNormalizeScore`).
fn normalize(scores: Vec<i64>) -> Vec<i64> {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return scores;
    }
    scores.into_iter().map(|s| s * MAX_SCORE / max).collect()
}

/// Like [`normalize`] with the order reversed: the lowest count gets 100.
fn normalize_reverse(scores: Vec<i64>) -> Vec<i64> {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return vec![MAX_SCORE; scores.len()];
    }
    scores
        .into_iter()
        .map(|s| MAX_SCORE - s * MAX_SCORE / max)
        .collect()
}
