//! The disruption controller (kube-controller-manager's `disruption`): keeps each
//! PodDisruptionBudget's status — `expectedPods`, `currentHealthy`, `desiredHealthy`,
//! `disruptionsAllowed` and the `DisruptionAllowed` condition — from the pods its selector
//! matches and the replica counts of their controllers. Evictions are judged against that
//! status by the API server.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::informer::Change;
use crate::pods::{self, controller_of};
use crate::runner::{self, Triggers};

/// The disruption controller, running until dropped.
pub fn controller(ctx: Arc<Context>) -> impl std::future::Future<Output = ()> + Send {
    let store = ctx.informers.disruption_budgets.store();
    let own = runner::own(ctx.informers.disruption_budgets.changes(), store.clone());
    let pods = pod_triggers(&ctx, store.clone());
    runner::run("Disruption", ctx, store, vec![own, pods], |pdb, ctx| {
        Box::pin(reconcile(pdb, ctx))
    })
}

/// A pod change wakes every budget of its namespace.
fn pod_triggers(
    ctx: &Context,
    budgets: Store<PodDisruptionBudget>,
) -> Triggers<PodDisruptionBudget> {
    runner::map_changes(ctx.informers.pods.changes(), move |c| {
        let ns = match c {
            Change::Applied { new, .. } => new.namespace(),
            Change::Deleted(old) => old.namespace(),
            Change::Relisted => return runner::all(&budgets),
        };
        budgets
            .state()
            .iter()
            .filter(|b| b.namespace() == ns)
            .map(|b| ObjectRef::from_obj(b.as_ref()))
            .collect()
    })
}

/// `value` of `total`: an integer, or a percentage rounded up.
fn scaled(value: &IntOrString, total: i32) -> Option<i32> {
    match value {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            Some(((pct * i64::from(total) + 99) / 100) as i32)
        }
    }
}

/// How many pods the budget's pods' controllers want (`getExpectedScale`); pods without a
/// controller count as one each.
fn expected_scale(ctx: &Context, pods: &[Arc<Pod>]) -> i32 {
    let inf = &ctx.informers;
    let mut controllers: HashMap<String, i32> = HashMap::new();
    let mut orphans = 0;
    for p in pods {
        let ns = p.namespace().unwrap_or_default();
        let Some(r) = controller_of(&p.metadata) else {
            orphans += 1;
            continue;
        };
        let replicas = match r.kind.as_str() {
            "ReplicaSet" => inf
                .replica_sets
                .store()
                .get(&ObjectRef::new(&r.name).within(&ns))
                .and_then(|o| o.spec.as_ref()?.replicas),
            "ReplicationController" => inf
                .replication_controllers
                .store()
                .get(&ObjectRef::new(&r.name).within(&ns))
                .and_then(|o| o.spec.as_ref()?.replicas),
            "StatefulSet" => inf
                .stateful_sets
                .store()
                .get(&ObjectRef::new(&r.name).within(&ns))
                .and_then(|o| o.spec.as_ref()?.replicas),
            _ => None,
        };
        match replicas {
            Some(n) => {
                controllers.insert(r.uid.clone(), n);
            }
            None => orphans += 1,
        }
    }
    controllers.values().sum::<i32>() + orphans
}

/// One sync of a budget (`trySync`).
pub async fn reconcile(obj: Arc<PodDisruptionBudget>, ctx: Arc<Context>) -> Result<Action> {
    let pdb = obj.as_ref();
    if pdb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = pdb.namespace().unwrap_or_default();
    let name = pdb.name_any();
    let spec = pdb.spec.clone().unwrap_or_default();
    // A budget without a selector selects nothing; an empty one selects every pod.
    let selected: Vec<Arc<Pod>> = match &spec.selector {
        None => vec![],
        Some(sel) => {
            let selector = Selector::try_from(sel.clone()).map_err(|e| Error::Invalid {
                kind: "PodDisruptionBudget",
                name: name.clone(),
                reason: e.to_string(),
            })?;
            ctx.informers
                .pods
                .store()
                .state()
                .into_iter()
                .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| selector.matches(p.labels()))
                .collect()
        }
    };
    let healthy = selected
        .iter()
        .filter(|p| pods::is_active(p) && pods::is_ready(p))
        .count() as i32;
    let (expected, desired) = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(n)), _) => (selected.len() as i32, *n),
        (Some(min), _) => {
            let expected = expected_scale(&ctx, &selected);
            (expected, scaled(min, expected).unwrap_or(expected))
        }
        (None, Some(max)) => {
            let expected = expected_scale(&ctx, &selected);
            let max = scaled(max, expected).unwrap_or(0);
            (expected, (expected - max).max(0))
        }
        (None, None) => (selected.len() as i32, 0),
    };
    let allowed = (healthy - desired).max(0);
    let before = pdb.status.clone().unwrap_or_default();
    let now = (ctx.config.clock)();
    let (status_s, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let old_cond = before
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed");
    let condition = Condition {
        type_: "DisruptionAllowed".into(),
        status: status_s.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: pdb.metadata.generation,
        last_transition_time: match old_cond {
            Some(c) if c.status == status_s => c.last_transition_time.clone(),
            _ => Time(now),
        },
    };
    let status = PodDisruptionBudgetStatus {
        expected_pods: expected,
        current_healthy: healthy,
        desired_healthy: desired,
        disruptions_allowed: allowed,
        observed_generation: pdb.metadata.generation,
        disrupted_pods: before.disrupted_pods.clone(),
        conditions: Some(vec![condition]),
    };
    if status != before {
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&IntOrString::String("50%".into()), 3), Some(2));
        assert_eq!(scaled(&IntOrString::String("100%".into()), 3), Some(3));
        assert_eq!(scaled(&IntOrString::Int(2), 3), Some(2));
        assert_eq!(scaled(&IntOrString::String("half".into()), 3), None);
    }
}
