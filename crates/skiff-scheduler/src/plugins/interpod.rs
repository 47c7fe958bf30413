//! InterPodAffinity: required pod affinity and anti-affinity (the incoming pod's, and the
//! anti-affinity of pods already placed) as a filter, preferred terms (both ways) and the
//! required affinity of placed pods as a score, all per topology domain (`topologyKey`).

use std::collections::HashMap;

use super::MAX_SCORE;
use crate::cache::{Cache, NodeInfo};
use crate::podinfo::{AffinityTerm, PodInfo};

/// Pods matching per (topology key, value).
type Counts = HashMap<(String, String), i64>;

/// What the filter and score need, counted over every placed pod once per incoming pod.
#[derive(Default)]
pub struct State {
    /// Domains holding a pod whose required anti-affinity refuses the incoming pod.
    existing_anti: Counts,
    /// Domains holding pods matching all of the incoming pod's required affinity terms.
    affinity: Counts,
    /// Domains holding pods matching one of its required anti-affinity terms.
    anti: Counts,
    /// Whether the incoming pod matches its own affinity terms (it may then start a domain).
    self_affinity: bool,
    affinity_terms: Vec<AffinityTerm>,
    anti_terms: Vec<AffinityTerm>,
}

fn domain(term: &AffinityTerm, node: &NodeInfo) -> Option<(String, String)> {
    node.labels
        .get(&term.topology_key)
        .map(|v| (term.topology_key.clone(), v.clone()))
}

impl State {
    pub fn new(pod: &PodInfo, cache: &Cache) -> Self {
        let mut s = State {
            affinity_terms: pod.placement().affinity.clone(),
            anti_terms: pod.placement().anti_affinity.clone(),
            ..Default::default()
        };
        let own = pod.has_affinity();
        if !own && !cache.any_affinity() {
            return s;
        }
        let ns = &cache.namespaces;
        let terms = pod.placement();
        s.self_affinity = terms.affinity.iter().all(|t| t.matches(pod, ns));
        for node in cache.nodes() {
            if !own && node.with_affinity == 0 {
                continue;
            }
            for other in node.pods.values() {
                for t in &other.placement().anti_affinity {
                    if t.matches(pod, ns) {
                        if let Some(d) = domain(t, node) {
                            *s.existing_anti.entry(d).or_default() += 1;
                        }
                    }
                }
                if !terms.affinity.is_empty() && terms.affinity.iter().all(|t| t.matches(other, ns))
                {
                    for t in &terms.affinity {
                        if let Some(d) = domain(t, node) {
                            *s.affinity.entry(d).or_default() += 1;
                        }
                    }
                }
                for t in &terms.anti_affinity {
                    if t.matches(other, ns) {
                        if let Some(d) = domain(t, node) {
                            *s.anti.entry(d).or_default() += 1;
                        }
                    }
                }
            }
        }
        s
    }

    /// Whether [`State::filter`] can refuse a node: the pod has required terms, or a
    /// placed pod's required anti-affinity selects it.
    pub fn filters(&self) -> bool {
        !(self.affinity_terms.is_empty()
            && self.anti_terms.is_empty()
            && self.existing_anti.is_empty())
    }

    pub fn filter(&self, node: &NodeInfo) -> Option<super::Reason> {
        use super::Reason;
        if !self.affinity_terms.is_empty() {
            let all_domains = self.affinity_terms.iter().all(|t| {
                domain(t, node).is_some_and(|d| self.affinity.get(&d).copied().unwrap_or(0) > 0)
            });
            // The first pod of a group with affinity to itself may go anywhere that has the
            // topology labels.
            let first_of_group = self.affinity.is_empty()
                && self.self_affinity
                && self
                    .affinity_terms
                    .iter()
                    .all(|t| domain(t, node).is_some());
            if !all_domains && !first_of_group {
                return Some(Reason::PodAffinity);
            }
        }
        if self
            .anti_terms
            .iter()
            .any(|t| domain(t, node).is_some_and(|d| self.anti.get(&d).copied().unwrap_or(0) > 0))
        {
            return Some(Reason::PodAntiAffinity);
        }
        if self
            .existing_anti
            .iter()
            .any(|((k, v), n)| *n > 0 && node.labels.get(k) == Some(v))
        {
            return Some(Reason::ExistingAntiAffinity);
        }
        None
    }

    /// Scores from preferred terms both ways and from placed pods' required affinity to
    /// the incoming pod, normalised to 0..=100.
    pub fn score(&self, pod: &PodInfo, nodes: &[&NodeInfo], cache: &Cache) -> Vec<i64> {
        let terms = pod.placement();
        let own = !terms.preferred_affinity.is_empty() || !terms.preferred_anti_affinity.is_empty();
        if !own && !cache.any_affinity() {
            return vec![0; nodes.len()];
        }
        let ns = &cache.namespaces;
        let mut by_domain: Counts = HashMap::new();
        let mut add = |t: &AffinityTerm, node: &NodeInfo, w: i64| {
            if let Some(d) = domain(t, node) {
                *by_domain.entry(d).or_default() += w;
            }
        };
        for node in cache.nodes() {
            if !own && node.with_affinity == 0 {
                continue;
            }
            for other in node.pods.values() {
                let theirs = other.placement();
                for t in terms
                    .preferred_affinity
                    .iter()
                    .filter(|t| t.matches(other, ns))
                {
                    add(t, node, t.weight);
                }
                for t in terms
                    .preferred_anti_affinity
                    .iter()
                    .filter(|t| t.matches(other, ns))
                {
                    add(t, node, -t.weight);
                }
                // Placed pods' required affinity counts with kube-scheduler's default
                // hardPodAffinityWeight of 1.
                for t in theirs.affinity.iter().filter(|t| t.matches(pod, ns)) {
                    add(t, node, 1);
                }
                for t in theirs
                    .preferred_affinity
                    .iter()
                    .filter(|t| t.matches(pod, ns))
                {
                    add(t, node, t.weight);
                }
                for t in theirs
                    .preferred_anti_affinity
                    .iter()
                    .filter(|t| t.matches(pod, ns))
                {
                    add(t, node, -t.weight);
                }
            }
        }
        if by_domain.is_empty() {
            return vec![0; nodes.len()];
        }
        let raw: Vec<i64> = nodes
            .iter()
            .map(|n| {
                by_domain
                    .iter()
                    .filter(|((k, v), _)| n.labels.get(k) == Some(v))
                    .map(|(_, w)| *w)
                    .sum()
            })
            .collect();
        let (min, max) = (
            raw.iter().copied().min().unwrap_or(0),
            raw.iter().copied().max().unwrap_or(0),
        );
        if max == min {
            return vec![0; nodes.len()];
        }
        raw.into_iter()
            .map(|s| MAX_SCORE * (s - min) / (max - min))
            .collect()
    }
}
