//! kube-controller-manager's taint eviction controller (NoExecuteTaintManager): a pod on a
//! node with a NoExecute taint it does not tolerate is deleted at once; one that tolerates
//! every such taint, the shortest of the matching `tolerationSeconds` after the taint was
//! added (never, if none of them sets a limit). The pods' own controllers replace them.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::tolerates;
use crate::cachedpod::CachedPod;
use crate::context::Context;
use crate::error::Result;
use crate::informer::Change;
use crate::podcontrol;
use crate::pods::node_of;
use crate::runner::{self, Triggers};

/// The taint eviction controller, running until dropped.
pub fn controller(ctx: Arc<Context>) -> impl std::future::Future<Output = ()> + Send {
    let store = ctx.informers.pods.store();
    let own = runner::map_changes(ctx.informers.pods.changes(), {
        let store = store.clone();
        move |c| match c {
            Change::Applied { new, .. } if node_of(&new).is_some() => {
                vec![ObjectRef::from_obj(new.as_ref())]
            }
            Change::Relisted => runner::all(&store),
            _ => vec![],
        }
    });
    let nodes = node_triggers(&ctx, store.clone());
    runner::run("TaintEviction", ctx, store, vec![own, nodes], |pod, ctx| {
        Box::pin(reconcile(pod, ctx))
    })
}

fn no_execute(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.effect == "NoExecute")
        .collect()
}

/// A node whose NoExecute taints changed wakes every pod bound to it (found in the pod
/// index by node, not by a walk over every cached pod).
fn node_triggers(ctx: &Context, pods: Store<CachedPod>) -> Triggers<CachedPod> {
    let index = ctx.informers.pods.shared_index();
    runner::map_changes(ctx.informers.nodes.changes(), move |c| {
        let node = match c {
            Change::Applied { old, new } => {
                let before = old.as_deref().map(no_execute).unwrap_or_default();
                if before == no_execute(&new) {
                    return vec![];
                }
                new.name_any()
            }
            Change::Relisted => {
                return runner::all(&pods);
            }
            Change::Deleted(_) => return vec![],
        };
        index
            .on_node(&node)
            .iter()
            .map(|p| ObjectRef::from_obj(p.as_ref()))
            .collect()
    })
}

/// When the pod must go because of `taints`: `Some(None)` at once, `Some(Some(t))` at `t`,
/// `None` never (`getMinTolerationTime` over the tolerations in use).
pub fn eviction_time(
    pod: &CachedPod,
    taints: &[Taint],
    now: Timestamp,
) -> Option<Option<Timestamp>> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut at: Option<Timestamp> = None;
    for taint in taints {
        let used: Vec<_> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if used.is_empty() {
            return Some(None);
        }
        let Some(secs) = used.iter().filter_map(|t| t.toleration_seconds).min() else {
            continue;
        };
        let since = taint.time_added.as_ref().map_or(now, |t| t.0);
        let when = since
            .checked_add(SignedDuration::from_secs(secs.max(0)))
            .unwrap_or(since);
        at = Some(at.map_or(when, |a| a.min(when)));
    }
    at.map(Some)
}

/// One look at one pod.
pub async fn reconcile(pod: Arc<CachedPod>, ctx: Arc<Context>) -> Result<Action> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(node) =
        node_of(&pod).and_then(|n| ctx.informers.nodes.store().get(&ObjectRef::new(n)))
    else {
        return Ok(Action::await_change());
    };
    let taints = no_execute(&node);
    if taints.is_empty() {
        return Ok(Action::await_change());
    }
    let now = (ctx.config.clock)();
    match eviction_time(&pod, &taints, now) {
        None => Ok(Action::await_change()),
        Some(Some(at)) if at > now => {
            let wait = Duration::try_from(at.duration_since(now)).unwrap_or_default();
            Ok(Action::requeue(wait + Duration::from_millis(50)))
        }
        Some(_) => {
            let regarding = pod.object_ref(&());
            tracing::info!(pod = %ObjectRef::from_obj(pod.as_ref()), node = %node.name_any(), "evicting pod from a tainted node");
            ctx.events
                .record(
                    "taint-eviction-controller",
                    &regarding,
                    crate::events::EventType::Normal,
                    "TaintManagerEviction",
                    format!(
                        "Marking for deletion Pod {}/{}",
                        pod.namespace().unwrap_or_default(),
                        pod.name_any()
                    ),
                )
                .await;
            podcontrol::first_failure(podcontrol::delete(&ctx, None, &[&pod], None).await)?;
            Ok(Action::await_change())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(tolerations: serde_json::Value) -> CachedPod {
        serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [], "tolerations": tolerations}}))
        .unwrap()
    }

    #[test]
    fn eviction_waits_for_the_shortest_toleration() {
        let added = Timestamp::from_second(1000).unwrap();
        let now = Timestamp::from_second(1002).unwrap();
        let taints: Vec<Taint> = serde_json::from_value(json!([
            {"key": super::super::UNREACHABLE, "effect": "NoExecute", "timeAdded": added.to_string()}
        ]))
        .unwrap();
        assert_eq!(eviction_time(&pod(json!([])), &taints, now), Some(None));
        let tol = |secs: Option<i64>| {
            json!({"key": super::super::UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": secs})
        };
        assert_eq!(eviction_time(&pod(json!([tol(None)])), &taints, now), None);
        assert_eq!(
            eviction_time(&pod(json!([tol(Some(30)), tol(Some(5))])), &taints, now),
            Some(Some(Timestamp::from_second(1005).unwrap()))
        );
        // Another NoExecute taint it does not tolerate: out at once.
        let mut two = taints.clone();
        two.push(Taint {
            key: "maintenance".into(),
            effect: "NoExecute".into(),
            ..Default::default()
        });
        assert_eq!(
            eviction_time(&pod(json!([tol(Some(30))])), &two, now),
            Some(None)
        );
    }
}
