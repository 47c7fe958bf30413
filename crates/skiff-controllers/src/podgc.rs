//! kube-controller-manager's pod garbage collector: every `pod_gc_period` it deletes
//! terminated pods beyond `--terminated-pod-gc-threshold` (oldest first), pods bound to
//! Nodes that no longer exist (after a quarantine, and only once an uncached read confirms
//! the Node is gone), and unscheduled pods that are being deleted (no kubelet will finish
//! them). Such pods have no node to stop them, so they are deleted at once (grace 0).
//! Finished Jobs' `ttlSecondsAfterFinished` is the Job controller's.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use crate::context::Context;
use crate::error::Result;
use crate::podcontrol;

/// Runs pod GC until dropped.
pub async fn run(ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(ctx.config.pod_gc_period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut orphans = HashMap::new();
    loop {
        tick.tick().await;
        if let Err(e) = collect(&ctx, &mut orphans).await {
            tracing::warn!(error = %crate::error::chain(&e), "pod GC pass failed");
        }
    }
}

use crate::cachedpod::CachedPod;
use crate::pods::{node_of, phase};

/// The terminated pods to delete: the oldest beyond `threshold` (0: none).
pub fn terminated_over_threshold(pods: &[Arc<CachedPod>], threshold: usize) -> Vec<Arc<CachedPod>> {
    if threshold == 0 {
        return vec![];
    }
    let mut done: Vec<Arc<CachedPod>> = pods
        .iter()
        .filter(|p| matches!(phase(p), "Succeeded" | "Failed"))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    if done.len() <= threshold {
        return vec![];
    }
    done.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let excess = done.len() - threshold;
    done.truncate(excess);
    done
}

/// One pass. `orphans` remembers since when each orphaned pod (by UID) was first seen.
pub async fn collect(ctx: &Context, orphans: &mut HashMap<String, Instant>) -> Result<()> {
    let pods = ctx.informers.pods.store().state();
    let mut doomed = terminated_over_threshold(&pods, ctx.config.terminated_pod_gc_threshold);

    let nodes = ctx.informers.nodes.store();
    let mut seen = HashSet::new();
    let mut confirm = Vec::new();
    for p in &pods {
        let uid = p.metadata.uid.clone().unwrap_or_default();
        match node_of(p) {
            Some(n) if nodes.get(&ObjectRef::<Node>::new(n)).is_none() => {
                seen.insert(uid.clone());
                let since = *orphans.entry(uid).or_insert_with(Instant::now);
                if since.elapsed() >= ctx.config.orphan_quarantine {
                    confirm.push(p.clone());
                }
            }
            Some(_) => {}
            None if p.metadata.deletion_timestamp.is_some() => doomed.push(p.clone()),
            None => {}
        }
    }
    orphans.retain(|uid, _| seen.contains(uid));
    let node_api: Api<Node> = Api::all(ctx.client.clone());
    let mut gone = HashMap::new();
    for p in confirm {
        let n = node_of(&p).unwrap_or_default().to_string();
        if !gone.contains_key(&n) {
            gone.insert(n.clone(), node_api.get_opt(&n).await?.is_none());
        }
        if gone[&n] {
            tracing::info!(pod = %ObjectRef::from_obj(p.as_ref()), node = %n, "deleting pod bound to a node that does not exist");
            doomed.push(p);
        }
    }
    if doomed.is_empty() {
        return Ok(());
    }
    tracing::debug!(count = doomed.len(), "pod GC deleting pods");
    let refs: Vec<&CachedPod> = doomed.iter().map(|p| p.as_ref()).collect();
    podcontrol::first_failure(podcontrol::delete(ctx, None, &refs, Some(0)).await)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, phase: &str, born: i64) -> Arc<CachedPod> {
        let t = k8s_openapi::jiff::Timestamp::from_second(born).unwrap();
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "creationTimestamp": t.to_string()},
                "spec": {"containers": []}, "status": {"phase": phase}}),
            )
            .unwrap(),
        )
    }

    #[test]
    fn the_oldest_terminated_pods_over_the_threshold_go() {
        let pods = vec![
            pod("new-done", "Succeeded", 30),
            pod("running", "Running", 1),
            pod("old-failed", "Failed", 10),
            pod("mid-done", "Succeeded", 20),
        ];
        let names = |v: Vec<Arc<CachedPod>>| {
            v.iter()
                .map(|p| p.metadata.name.clone().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(terminated_over_threshold(&pods, 1)),
            ["old-failed", "mid-done"]
        );
        assert!(terminated_over_threshold(&pods, 3).is_empty());
        assert!(terminated_over_threshold(&pods, 0).is_empty());
    }
}
