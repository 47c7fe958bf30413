//! One scheduling decision (kube-scheduler's `schedulePod`): run the filters over the nodes
//! — a share of them on large clusters (`percentageOfNodesToScore`), starting where the last
//! search stopped — score the feasible ones and pick the best, ties broken at random. When
//! nothing fits, the [`FitError`] says why per node, in kube-scheduler's words.

use std::collections::BTreeMap;

use rand::Rng;

use crate::cache::{Cache, NodeInfo};
use crate::plugins::{self, CycleState, Reason};
use crate::podinfo::PodInfo;

/// Fewest nodes to find feasible before scoring (kube-scheduler's `minFeasibleNodesToFind`).
const MIN_FEASIBLE: usize = 100;
/// Smallest adaptive percentage (`minFeasibleNodesPercentageToFind`).
const MIN_PERCENTAGE: usize = 5;

/// Why no node fits, per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub nodes: usize,
    /// Nodes refused for each reason (a node may count under several).
    pub reasons: BTreeMap<Reason, usize>,
    /// Nodes where evicting pods could help, and where it could not.
    pub resolvable: usize,
    pub unresolvable: usize,
    /// The pod may not preempt (`preemptionPolicy: Never`).
    pub preempt_never: bool,
}

impl std::fmt::Display for FitError {
    /// `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node
    /// affinity/selector. preemption: 0/3 nodes are available: 1 No preemption victims found
    /// for incoming pod, 2 Preemption is not helpful for scheduling.`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.nodes == 0 {
            return write!(f, "no nodes available to schedule pods");
        }
        let mut reasons: Vec<String> = self
            .reasons
            .iter()
            .map(|(r, n)| format!("{n} {}", r.message()))
            .collect();
        reasons.sort();
        write!(
            f,
            "0/{} nodes are available: {}.",
            self.nodes,
            reasons.join(", ")
        )?;
        if self.preempt_never {
            return write!(
                f,
                " preemption: not eligible due to preemptionPolicy=Never."
            );
        }
        // No preemption: nodes where it could help report that no victims were found.
        let mut post = Vec::new();
        if self.resolvable > 0 {
            post.push(format!(
                "{} No preemption victims found for incoming pod",
                self.resolvable
            ));
        }
        if self.unresolvable > 0 {
            post.push(format!(
                "{} Preemption is not helpful for scheduling",
                self.unresolvable
            ));
        }
        post.sort();
        write!(
            f,
            " preemption: 0/{} nodes are available: {}.",
            self.nodes,
            post.join(", ")
        )
    }
}

/// How many feasible nodes to look for among `all` (kube-scheduler's adaptive
/// `numFeasibleNodesToFind`: 50% minus 1% per 125 nodes, at least 5%, at least 100 nodes).
pub fn feasible_to_find(all: usize) -> usize {
    if all < MIN_FEASIBLE {
        return all;
    }
    let pct = 50usize.saturating_sub(all / 125).max(MIN_PERCENTAGE);
    (all * pct / 100).max(MIN_FEASIBLE)
}

/// Picks a node for `pod`. The search starts after `last`, the node the previous search
/// stopped at, and records where this one stopped.
pub fn schedule(
    pod: &PodInfo,
    cache: &Cache,
    last: &mut Option<String>,
    rng: &mut impl Rng,
) -> Result<String, FitError> {
    let all = cache.node_count();
    let state = CycleState::new(pod, cache);
    let want = feasible_to_find(all);
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(all));
    let mut reasons: BTreeMap<Reason, usize> = BTreeMap::new();
    let (mut resolvable, mut unresolvable) = (0, 0);
    let mut stopped_at = None;
    for node in cache.nodes_after(last.as_deref()) {
        if feasible.len() >= want {
            break;
        }
        stopped_at = Some(node);
        match plugins::filter(pod, node, &state) {
            Ok(()) => feasible.push(node),
            Err(rs) => {
                if rs.iter().any(|r| !r.resolvable()) {
                    unresolvable += 1;
                } else {
                    resolvable += 1;
                }
                for r in rs {
                    *reasons.entry(r).or_default() += 1;
                }
            }
        }
    }
    if let Some(node) = stopped_at {
        *last = Some(node.name.clone());
    }
    match feasible.len() {
        0 => Err(FitError {
            nodes: all,
            reasons,
            resolvable,
            unresolvable,
            preempt_never: pod.preempt_never,
        }),
        1 => Ok(feasible[0].name.clone()),
        _ => {
            let scores = plugins::score(pod, &feasible, &state, cache);
            Ok(feasible[select(&scores, rng)].name.clone())
        }
    }
}

/// The index of the highest score, a uniformly random one among equals.
fn select(scores: &[i64], rng: &mut impl Rng) -> usize {
    let mut best = 0;
    let mut ties = 0u32;
    for (i, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            best = i;
            ties = 1;
        } else if *s == scores[best] {
            ties += 1;
            if rng.gen_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{json, Value};
    use std::sync::Arc;

    fn node(name: &str, cpu: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap()
    }

    fn pod(name: &str, cpu: &str, labels: Value, spec: Value) -> Arc<PodInfo> {
        let mut p = json!({"metadata": {"name": name, "namespace": "d", "labels": labels},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}});
        if let (Some(s), Some(extra)) = (p["spec"].as_object_mut(), spec.as_object()) {
            s.extend(extra.clone());
        }
        PodInfo::new(
            serde_json::from_value::<Pod>(p).unwrap(),
            &mut Default::default(),
        )
    }

    #[test]
    fn a_pod_lands_on_the_one_node_that_fits_when_it_comes_last_in_the_search() {
        // 300 nodes: the search stops after 144 feasible ones, so it must walk past the 299
        // full ones to the last.
        let mut cache = Cache::default();
        for i in 0..300 {
            cache.set_node(node(&format!("n{i:03}"), "1"));
        }
        for i in 0..299 {
            cache.assume(
                pod(&format!("full{i}"), "1", json!({}), json!({})),
                &format!("n{i:03}"),
            );
        }
        let (mut last, mut rng) = (None, rand::thread_rng());
        let p = pod("p", "500m", json!({}), json!({}));
        assert_eq!(schedule(&p, &cache, &mut last, &mut rng).unwrap(), "n299");
        assert_eq!(last.as_deref(), Some("n299"));
        // Where nothing fits, every node is counted under its reason.
        cache.assume(p, "n299");
        let e = schedule(
            &pod("q", "600m", json!({}), json!({})),
            &cache,
            &mut last,
            &mut rng,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "0/300 nodes are available: 300 Insufficient cpu. preemption: 0/300 nodes are \
             available: 300 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn placed_pods_anti_affinity_refuses_a_pod_without_terms_of_its_own() {
        let mut cache = Cache::default();
        cache.set_node(node("n1", "4"));
        cache.set_node(node("n2", "4"));
        let anti = json!({"affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"app": "web"}},
                "topologyKey": "kubernetes.io/hostname"}]}}});
        cache.assume(pod("guard", "100m", json!({}), anti), "n1");
        let (mut last, mut rng) = (None, rand::thread_rng());
        let web = pod("web", "100m", json!({"app": "web"}), json!({}));
        for _ in 0..20 {
            assert_eq!(schedule(&web, &cache, &mut last, &mut rng).unwrap(), "n2");
        }
        cache.remove_node("n2");
        let e = schedule(&web, &cache, &mut last, &mut rng).unwrap_err();
        assert_eq!(
            e.reasons,
            BTreeMap::from([(Reason::ExistingAntiAffinity, 1)])
        );
    }

    #[test]
    fn fit_error_reads_like_kube_scheduler() {
        let e = FitError {
            nodes: 3,
            reasons: BTreeMap::from([(Reason::NodeAffinity, 2), (Reason::Insufficient("cpu"), 1)]),
            resolvable: 1,
            unresolvable: 2,
            preempt_never: false,
        };
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector. \
             preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, \
             2 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn large_clusters_score_a_share_of_their_nodes() {
        assert_eq!(feasible_to_find(50), 50);
        assert_eq!(feasible_to_find(1000), 420);
        assert_eq!(feasible_to_find(5000), 500);
        assert_eq!(feasible_to_find(150), 100);
    }

    #[test]
    fn ties_are_broken_among_the_best_only() {
        let mut rng = rand::thread_rng();
        for _ in 0..50 {
            let i = select(&[3, 7, 1, 7], &mut rng);
            assert!(i == 1 || i == 3);
        }
    }
}
