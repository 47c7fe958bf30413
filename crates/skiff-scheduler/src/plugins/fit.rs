//! NodeResourcesFit (requests against allocatable, least-allocated score) and
//! NodeResourcesBalancedAllocation.

use super::{Reason, MAX_SCORE};
use crate::cache::NodeInfo;
use crate::podinfo::PodInfo;

/// The resources the node lacks for the pod (all of them, as kube-scheduler lists them).
pub fn insufficient(pod: &PodInfo, node: &NodeInfo) -> Vec<Reason> {
    let (want, have, used) = (&pod.requests, &node.allocatable, &node.requested);
    let mut out = Vec::new();
    if used.pods + 1 > have.pods {
        out.push(Reason::TooManyPods);
    }
    if want.milli_cpu > 0 && want.milli_cpu > have.milli_cpu - used.milli_cpu {
        out.push(Reason::Insufficient("cpu"));
    }
    if want.memory > 0 && want.memory > have.memory - used.memory {
        out.push(Reason::Insufficient("memory"));
    }
    if want.ephemeral_storage > 0
        && want.ephemeral_storage > have.ephemeral_storage - used.ephemeral_storage
    {
        out.push(Reason::Insufficient("ephemeral-storage"));
    }
    out
}

/// (cpu, memory) requested on the node with the pod, and the node's allocatable.
fn with_pod(pod: &PodInfo, node: &NodeInfo) -> [(i64, i64); 2] {
    [
        (node.non_zero.0 + pod.non_zero.0, node.allocatable.milli_cpu),
        (node.non_zero.1 + pod.non_zero.1, node.allocatable.memory),
    ]
}

/// LeastAllocated: the free share of cpu and memory once the pod is on the node, averaged.
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let parts = with_pod(pod, node);
    let sum: i64 = parts
        .iter()
        .map(|&(req, cap)| {
            if cap == 0 || req > cap {
                0
            } else {
                (cap - req) * MAX_SCORE / cap
            }
        })
        .sum();
    sum / parts.len() as i64
}

/// BalancedAllocation: nodes whose cpu and memory fill evenly score higher.
pub fn balanced(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let [cpu, mem] = with_pod(pod, node).map(|(req, cap)| {
        if cap == 0 {
            1.0
        } else {
            (req as f64 / cap as f64).min(1.0)
        }
    });
    let std = (cpu - mem).abs() / 2.0;
    ((1.0 - std) * MAX_SCORE as f64) as i64
}
