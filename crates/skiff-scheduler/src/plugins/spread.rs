//! PodTopologySpread: `DoNotSchedule` constraints filter (skew = pods matching in the node's
//! domain + the pod itself − the fewest in any domain, at most `maxSkew`; `minDomains`
//! counts missing domains as empty), `ScheduleAnyway` constraints score. Pods without
//! constraints owned by a controller spread by kube-scheduler's system defaults
//! (hostname maxSkew 3, zone maxSkew 5, `ScheduleAnyway`) over the controller's replicas —
//! kube-scheduler's SelectorSpread behaviour.

use std::collections::HashMap;

use super::{node::matches_affinity, node::untolerated_taint, Reason, MAX_SCORE};
use crate::cache::{Cache, NodeInfo};
use crate::podinfo::{LabelMatch, PodInfo, SpreadConstraint};

const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";

/// Pods matching one constraint per value of its topology key.
type Domains = HashMap<String, i64>;

enum Selection<'a> {
    /// The constraint's label selector, in the pod's namespace.
    Labels(&'a LabelMatch),
    /// The replicas of one controller.
    Owner(&'a str),
}

struct Constraint<'a> {
    max_skew: i64,
    key: &'a str,
    selection: Selection<'a>,
}

#[derive(Default)]
pub struct State {
    /// Counts of each hard constraint (by index into the pod's constraints).
    hard: Vec<(usize, Domains)>,
}

fn eligible(pod: &PodInfo, c: &SpreadConstraint, node: &NodeInfo) -> bool {
    (!c.honor_affinity || matches_affinity(pod, node))
        && (!c.honor_taints || untolerated_taint(pod, node).is_none())
}

fn count(pod: &PodInfo, sel: &Selection<'_>, node: &NodeInfo, cache: &Cache) -> i64 {
    match sel {
        Selection::Labels(m) => node
            .pods
            .values()
            .filter(|p| p.namespace == pod.namespace && !p.deleting() && m.matches(&p.labels))
            .count() as i64,
        Selection::Owner(uid) => cache
            .owner_counts(uid)
            .and_then(|c| c.get(&node.name))
            .copied()
            .unwrap_or(0),
    }
}

impl State {
    pub fn new(pod: &PodInfo, cache: &Cache) -> Self {
        let hard: Vec<(usize, &SpreadConstraint)> = pod
            .placement()
            .spread
            .iter()
            .enumerate()
            .filter(|(_, c)| c.hard)
            .collect();
        if hard.is_empty() {
            return State::default();
        }
        let mut out: Vec<(usize, Domains)> =
            hard.iter().map(|(i, _)| (*i, Domains::new())).collect();
        for node in cache.nodes() {
            if !hard
                .iter()
                .all(|(_, c)| node.labels.contains_key(&c.topology_key))
            {
                continue;
            }
            for ((_, c), (_, domains)) in hard.iter().zip(out.iter_mut()) {
                if !eligible(pod, c, node) {
                    continue;
                }
                let value = node.labels[&c.topology_key].clone();
                *domains.entry(value).or_default() +=
                    count(pod, &Selection::Labels(&c.selector), node, cache);
            }
        }
        State { hard: out }
    }

    /// Whether [`State::filter`] can refuse a node: the pod has a hard constraint.
    pub fn filters(&self) -> bool {
        !self.hard.is_empty()
    }

    pub fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Option<Reason> {
        for (i, domains) in &self.hard {
            let c = &pod.placement().spread[*i];
            let Some(value) = node.labels.get(&c.topology_key) else {
                return Some(Reason::SpreadMissingLabel);
            };
            let self_match = c.selector.matches(&pod.labels) as i64;
            let here = domains.get(value).copied().unwrap_or(0);
            let mut min = domains.values().copied().min().unwrap_or(0);
            if c.min_domains.is_some_and(|m| (domains.len() as i64) < m) {
                min = 0;
            }
            if here + self_match - min > c.max_skew {
                return Some(Reason::Spread);
            }
        }
        None
    }

    /// Scores of `nodes` from the pod's `ScheduleAnyway` constraints (or the system
    /// defaults for a controller's replicas), normalised so the emptiest domains get 100.
    pub fn score(&self, pod: &PodInfo, nodes: &[&NodeInfo], cache: &Cache) -> Vec<i64> {
        let spread = &pod.placement().spread;
        let system_default = spread.is_empty();
        let constraints: Vec<Constraint<'_>> = if system_default {
            match &pod.owner {
                Some(uid) => [(HOSTNAME, 3), (ZONE, 5)]
                    .into_iter()
                    .map(|(key, max_skew)| Constraint {
                        max_skew,
                        key,
                        selection: Selection::Owner(uid),
                    })
                    .collect(),
                None => Vec::new(),
            }
        } else {
            spread
                .iter()
                .filter(|c| !c.hard)
                .map(|c| Constraint {
                    max_skew: c.max_skew,
                    key: &c.topology_key,
                    selection: Selection::Labels(&c.selector),
                })
                .collect()
        };
        if constraints.is_empty() {
            return vec![0; nodes.len()];
        }
        // User constraints ignore nodes missing any of their keys; the defaults only skip
        // the constraint whose key is missing.
        let ignored: Vec<bool> = nodes
            .iter()
            .map(|n| !system_default && !constraints.iter().all(|c| n.labels.contains_key(c.key)))
            .collect();
        let mut raw = vec![0f64; nodes.len()];
        for c in &constraints {
            let domains = self.domains(pod, c, nodes, cache);
            let weight = ((domains.len() + 2) as f64).ln();
            for (i, n) in nodes.iter().enumerate() {
                if ignored[i] {
                    continue;
                }
                if let Some(v) = n.labels.get(c.key) {
                    let cnt = domains.get(v).copied().unwrap_or(0);
                    raw[i] += cnt as f64 * weight + (c.max_skew - 1) as f64;
                }
            }
        }
        let raw: Vec<i64> = raw.into_iter().map(|s| s.round() as i64).collect();
        let scored = raw.iter().zip(&ignored).filter(|(_, ig)| !**ig);
        let min = scored.clone().map(|(s, _)| *s).min().unwrap_or(0);
        let max = scored.map(|(s, _)| *s).max().unwrap_or(0);
        raw.iter()
            .zip(&ignored)
            .map(|(s, ig)| match (*ig, max) {
                (true, _) => 0,
                (false, 0) => MAX_SCORE,
                (false, max) => MAX_SCORE * (max + min - s) / max,
            })
            .collect()
    }

    /// Pods matching `c` per domain of its key: over the candidate nodes for the hostname
    /// key, over every eligible node otherwise.
    fn domains(
        &self,
        pod: &PodInfo,
        c: &Constraint<'_>,
        nodes: &[&NodeInfo],
        cache: &Cache,
    ) -> Domains {
        let mut domains = Domains::new();
        let mut add = |node: &NodeInfo| {
            if let Some(v) = node.labels.get(c.key) {
                *domains.entry(v.clone()).or_default() += count(pod, &c.selection, node, cache);
            }
        };
        if c.key == HOSTNAME {
            nodes.iter().for_each(|n| add(n));
        } else if let Selection::Owner(uid) = c.selection {
            // Only the controller's nodes hold replicas; domains without any stay at 0.
            for n in nodes {
                if let Some(v) = n.labels.get(c.key) {
                    domains.entry(v.clone()).or_default();
                }
            }
            for (name, n) in cache.owner_counts(uid).into_iter().flatten() {
                if let Some(v) = cache.node(name).and_then(|node| node.labels.get(c.key)) {
                    *domains.entry(v.clone()).or_default() += n;
                }
            }
        } else {
            for n in cache.nodes() {
                if matches_affinity(pod, n) {
                    add(n);
                }
            }
        }
        domains
    }
}
