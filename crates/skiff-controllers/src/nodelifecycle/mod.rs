//! kube-controller-manager's node lifecycle controller: it watches Nodes and their Leases
//! in `kube-node-lease`. A node whose heartbeats (Lease renewals, Ready condition
//! heartbeats) stop for `--node-monitor-grace-period` gets its conditions set to `Unknown`
//! ("Kubelet stopped posting node status.") and its pods marked not Ready. Nodes get the
//! `node.kubernetes.io/unreachable` NoExecute taint while Ready is Unknown and
//! `node.kubernetes.io/not-ready` while it is False, removed when the node is Ready again,
//! and `node.kubernetes.io/unschedulable` (NoSchedule) while cordoned. What those NoExecute
//! taints do to pods is the [`eviction`] controller's job.
//!
//! Silence is measured on this process's monotonic clock from the moment a heartbeat last
//! *changed* (as kube-controller-manager does), never by comparing a node's timestamps with
//! our wall clock, so a node with a skewed clock is judged rightly. A controller that has
//! just started gives every node a full grace period.

pub mod eviction;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::context::Context;
use crate::error::Result;
use crate::informer::Change;
use crate::runner;

/// The NoExecute (and NoSchedule) taint of a node that reports itself not ready.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The NoExecute (and NoSchedule) taint of a node that stopped reporting.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The NoSchedule taint of a cordoned node.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// Where nodes keep their heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The conditions a silent node's kubelet no longer vouches for.
const KUBELET_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Whether `t` tolerates `taint` (Kubernetes' `Toleration.ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    if key.is_empty() {
        return t.operator.as_deref() == Some("Exists");
    }
    if key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// A node's heartbeats as last seen: its Lease's `renewTime` and its Ready condition's
/// `lastHeartbeatTime`.
type Beat = (Option<String>, Option<String>);

/// When each node's heartbeats last changed, on this process's monotonic clock.
#[derive(Default)]
pub struct Health {
    nodes: Mutex<HashMap<String, (Beat, Instant)>>,
}

impl Health {
    /// Records `beat` for `node`; returns how long its heartbeats have not changed.
    fn observe(&self, node: &str, beat: Beat) -> Duration {
        let mut map = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map
            .entry(node.to_string())
            .or_insert_with(|| (beat.clone(), Instant::now()));
        if entry.0 != beat {
            *entry = (beat, Instant::now());
        }
        entry.1.elapsed()
    }

    fn forget(&self, node: &str) {
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node);
    }
}

/// The node lifecycle controller, running until dropped.
pub fn controller(ctx: Arc<Context>) -> impl std::future::Future<Output = ()> + Send {
    let store = ctx.informers.nodes.store();
    let own = {
        let ctx = ctx.clone();
        let store = store.clone();
        runner::map_changes(ctx.informers.nodes.changes(), move |c| match c {
            Change::Applied { new, .. } => vec![ObjectRef::from_obj(new.as_ref())],
            Change::Deleted(old) => {
                ctx.node_health.forget(&old.name_any());
                vec![]
            }
            Change::Relisted => runner::all(&store),
        })
    };
    let leases = {
        let store = store.clone();
        runner::map_changes(ctx.informers.leases.changes(), move |c| match c {
            Change::Applied { new, .. } if new.namespace().as_deref() == Some(LEASE_NAMESPACE) => {
                vec![ObjectRef::new(&new.name_any())]
            }
            Change::Relisted => runner::all(&store),
            _ => vec![],
        })
    };
    runner::run(
        "NodeLifecycle",
        ctx,
        store,
        vec![own, leases],
        |node, ctx| Box::pin(reconcile(node, ctx)),
    )
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The NoExecute taint a node's Ready condition calls for.
fn wanted_taint(node: &Node) -> Option<&'static str> {
    match ready_condition(node).map(|c| c.status.as_str()) {
        Some("False") => Some(NOT_READY),
        Some("Unknown") => Some(UNREACHABLE),
        _ => None,
    }
}

/// One look at one node (`monitorNodeHealth` and `doNoExecuteTaintingPass` for it).
pub async fn reconcile(obj: Arc<Node>, ctx: Arc<Context>) -> Result<Action> {
    let name = obj.name_any();
    let lease = ctx
        .informers
        .leases
        .store()
        .get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
    let renewed = lease
        .as_ref()
        .and_then(|l| l.spec.as_ref()?.renew_time.as_ref())
        .map(|t| t.0.to_string());
    let heartbeat = ready_condition(&obj)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0.to_string());
    let silent = ctx.node_health.observe(&name, (renewed, heartbeat));
    let grace = ctx.config.node_monitor_grace_period;
    let now = (ctx.config.clock)();
    let mut node = obj.as_ref().clone();
    let nodes: Api<Node> = Api::all(ctx.client.clone());

    let already_unknown = ready_condition(&node).is_some_and(|c| c.status == "Unknown");
    if silent >= grace && !already_unknown {
        node = mark_unknown(&nodes, &node, now).await?;
        tracing::info!(node = %name, silent = ?silent, "node stopped posting status");
        ctx.events
            .normal(
                &node.object_ref(&()),
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            )
            .await;
    }
    if ready_condition(&node).is_some_and(|c| c.status != "True") {
        mark_pods_not_ready(&ctx, &name, now).await?;
    }
    sync_taints(&nodes, &node, now).await?;
    Ok(
        if ready_condition(&node).is_some_and(|c| c.status == "Unknown") {
            Action::requeue(grace)
        } else {
            Action::requeue(grace.saturating_sub(silent) + Duration::from_millis(50))
        },
    )
}

/// Sets the kubelet's conditions to Unknown (adding Ready if the node never reported).
async fn mark_unknown(nodes: &Api<Node>, node: &Node, now: Timestamp) -> Result<Node> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let never = !conditions.iter().any(|c| c.type_ == "Ready");
    if never {
        conditions.push(NodeCondition {
            type_: "Ready".into(),
            ..Default::default()
        });
    }
    for c in conditions
        .iter_mut()
        .filter(|c| KUBELET_CONDITIONS.contains(&c.type_.as_str()))
    {
        if c.status != "Unknown" {
            c.last_transition_time = Some(Time(now));
        }
        c.status = "Unknown".into();
        if never {
            c.reason = Some("NodeStatusNeverUpdated".into());
            c.message = Some("Kubelet never posted node status.".into());
        } else {
            c.reason = Some("NodeStatusUnknown".into());
            c.message = Some("Kubelet stopped posting node status.".into());
        }
    }
    // Pinned: a status the kubelet writes meanwhile wins, and the next look judges again.
    let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version},
        "status": {"conditions": conditions}});
    Ok(nodes
        .patch_status(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?)
}

/// Sets the Ready condition of the node's pods to False (`MarkPodsNotReady`); the pods come
/// from the pod index by node.
async fn mark_pods_not_ready(ctx: &Context, node: &str, now: Timestamp) -> Result<()> {
    for pod in ctx.informers.pods.index().on_node(node) {
        if !crate::pods::is_ready(&pod) {
            continue;
        }
        let mut conditions: Vec<PodCondition> = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        for c in conditions.iter_mut().filter(|c| c.type_ == "Ready") {
            c.status = "False".into();
            c.last_transition_time = Some(Time(now));
        }
        let patch = json!({"metadata": {"resourceVersion": pod.metadata.resource_version},
            "status": {"conditions": conditions}});
        let api: Api<Pod> =
            Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            // Gone, or written meanwhile: the pod's next change brings it back here.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The node's taints as its conditions and cordon call for; others are left alone.
fn desired_taints(node: &Node, now: Timestamp) -> Vec<Taint> {
    let spec = node.spec.clone().unwrap_or_default();
    let mut taints = spec.taints.unwrap_or_default();
    let want = wanted_taint(node);
    taints.retain(|t| {
        !(t.effect == "NoExecute"
            && (t.key == NOT_READY || t.key == UNREACHABLE)
            && Some(t.key.as_str()) != want)
    });
    if let Some(key) = want {
        if !taints
            .iter()
            .any(|t| t.key == key && t.effect == "NoExecute")
        {
            taints.push(Taint {
                key: key.into(),
                effect: "NoExecute".into(),
                time_added: Some(Time(now)),
                value: None,
            });
        }
    }
    let cordoned = spec.unschedulable.unwrap_or(false);
    let has = taints
        .iter()
        .any(|t| t.key == UNSCHEDULABLE && t.effect == "NoSchedule");
    if cordoned && !has {
        taints.push(Taint {
            key: UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            time_added: Some(Time(now)),
            value: None,
        });
    } else if !cordoned && has {
        taints.retain(|t| !(t.key == UNSCHEDULABLE && t.effect == "NoSchedule"));
    }
    taints
}

async fn sync_taints(nodes: &Api<Node>, node: &Node, now: Timestamp) -> Result<()> {
    let before = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let after = desired_taints(node, now);
    if after == before {
        return Ok(());
    }
    tracing::info!(node = %node.name_any(), taints = ?after.iter().map(|t| &t.key).collect::<Vec<_>>(), "node taints");
    let taints = if after.is_empty() {
        json!(null)
    } else {
        json!(after)
    };
    let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version},
        "spec": {"taints": taints}});
    nodes
        .patch(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: Option<&str>, unschedulable: bool, taints: serde_json::Value) -> Node {
        let conditions = ready.map(|s| json!([{"type": "Ready", "status": s}]));
        serde_json::from_value(json!({"metadata": {"name": "n"},
            "spec": {"unschedulable": unschedulable, "taints": taints},
            "status": {"conditions": conditions}}))
        .unwrap()
    }

    fn keys(t: &[Taint]) -> Vec<(&str, &str)> {
        t.iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect()
    }

    #[test]
    fn taints_follow_the_ready_condition_and_cordon() {
        let now = Timestamp::now();
        let other = json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]);
        let n = node(Some("Unknown"), false, other.clone());
        assert_eq!(
            keys(&desired_taints(&n, now)),
            [("dedicated", "NoSchedule"), (UNREACHABLE, "NoExecute")]
        );
        let n = node(
            Some("False"),
            true,
            json!([{"key": UNREACHABLE, "effect": "NoExecute"}]),
        );
        assert_eq!(
            keys(&desired_taints(&n, now)),
            [(NOT_READY, "NoExecute"), (UNSCHEDULABLE, "NoSchedule")]
        );
        let n = node(
            Some("True"),
            false,
            json!([{"key": NOT_READY, "effect": "NoExecute"}, {"key": UNSCHEDULABLE, "effect": "NoSchedule"}]),
        );
        assert!(desired_taints(&n, now).is_empty());
        // A taint someone else put there with the same key but another effect stays.
        let n = node(
            Some("True"),
            false,
            json!([{"key": NOT_READY, "effect": "NoSchedule"}]),
        );
        assert_eq!(keys(&desired_taints(&n, now)), [(NOT_READY, "NoSchedule")]);
    }

    #[test]
    fn tolerations_match_as_in_kubernetes() {
        let taint = Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            ..Default::default()
        };
        let tol = |v: serde_json::Value| -> Toleration { serde_json::from_value(v).unwrap() };
        assert!(tolerates(&tol(json!({"operator": "Exists"})), &taint));
        assert!(tolerates(
            &tol(json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"})),
            &taint
        ));
        assert!(!tolerates(
            &tol(json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"})),
            &taint
        ));
        assert!(!tolerates(
            &tol(json!({"key": NOT_READY, "operator": "Exists"})),
            &taint
        ));
        assert!(!tolerates(&tol(json!({"operator": "Equal"})), &taint));
        assert!(tolerates(&tol(json!({"key": UNREACHABLE})), &taint));
    }
}
