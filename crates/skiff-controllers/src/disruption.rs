//! The disruption controller (kube-controller-manager's `disruption`): keeps each
//! PodDisruptionBudget's status — `expectedPods`, `currentHealthy`, `desiredHealthy`,
//! `disruptionsAllowed` and the `DisruptionAllowed` condition — from the pods its selector
//! matches and the replica counts of their controllers. Evictions are judged against that
//! status by the API server.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::deployment::util::scaled_value;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use crate::cachedpod::CachedPod;
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

/// How many pods the budget's pods' controllers want (`getExpectedScale`); pods without a
/// controller count as one each.
fn expected_scale(ctx: &Context, pods: &[Arc<CachedPod>]) -> i32 {
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
    let selected: Vec<Arc<CachedPod>> = match &spec.selector {
        None => vec![],
        Some(sel) => {
            let selector = Selector::try_from(sel.clone()).map_err(|e| Error::Invalid {
                kind: "PodDisruptionBudget",
                name: name.clone(),
                reason: e.to_string(),
            })?;
            ctx.informers
                .pods_in(&ns)
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| selector.matches(p.labels()))
                .collect()
        }
    };
    let before = pdb.status.clone().unwrap_or_default();
    let now = (ctx.config.clock)();
    let (disrupted, recheck) = disrupted_pods(
        before.disrupted_pods.as_ref(),
        &selected,
        now,
        ctx.config.pdb_deletion_timeout,
    );
    // Pods an eviction was granted for no longer count as healthy, even before they go.
    let healthy = selected
        .iter()
        .filter(|p| pods::is_active(p) && pods::is_ready(p))
        .filter(|p| !disrupted.contains_key(&p.name_any()))
        .count() as i32;
    let (expected, desired) = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(n)), _) => (selected.len() as i32, *n),
        (Some(min), _) => {
            let expected = expected_scale(&ctx, &selected);
            (
                expected,
                scaled_value(min, expected, true).unwrap_or(expected),
            )
        }
        (None, Some(max)) => {
            let expected = expected_scale(&ctx, &selected);
            let max = scaled_value(max, expected, true).unwrap_or(0);
            (expected, (expected - max).max(0))
        }
        (None, None) => (selected.len() as i32, 0),
    };
    let allowed = (healthy - desired).max(0);
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
        disrupted_pods: (!disrupted.is_empty()).then(|| disrupted.clone()),
        conditions: Some(vec![condition]),
    };
    let unchanged = PodDisruptionBudgetStatus {
        disrupted_pods: before.disrupted_pods.clone().filter(|m| !m.is_empty()),
        ..before
    };
    if status != unchanged {
        // A replace at the cached resourceVersion: an eviction that used up a disruption
        // since the cache was filled makes this a conflict (retried), never a lost write.
        let mut new = pdb.clone();
        new.status = Some(status);
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
        api.replace_status(&name, &PostParams::default(), &new)
            .await?;
    }
    let stale_recheck = clear_stale_targets(&ctx, &selected, &disrupted, now).await?;
    let recheck = match (recheck, stale_recheck) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(match recheck {
        Some(at) => Action::requeue(
            Duration::try_from(at.duration_since(now)).unwrap_or(Duration::from_secs(1)),
        ),
        None => Action::await_change(),
    })
}

/// Kubernetes' stale pod disruption handling: a pod that still runs `pdb_deletion_timeout`
/// after it got the `DisruptionTarget` condition (an eviction whose delete never happened)
/// has the condition set back to False. Returns when the next such condition goes stale.
async fn clear_stale_targets(
    ctx: &Context,
    selected: &[Arc<CachedPod>],
    disrupted: &BTreeMap<String, Time>,
    now: k8s_openapi::jiff::Timestamp,
) -> Result<Option<k8s_openapi::jiff::Timestamp>> {
    let mut recheck: Option<k8s_openapi::jiff::Timestamp> = None;
    for p in selected {
        if disrupted.contains_key(&p.name_any()) {
            continue;
        }
        let target = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionTarget"))
            .filter(|c| c.status == "True");
        let Some(since) = target.and_then(|c| c.last_transition_time.as_ref()) else {
            continue;
        };
        let Ok(stale_at) = since.0.checked_add(ctx.config.pdb_deletion_timeout) else {
            continue;
        };
        if stale_at > now {
            recheck = Some(recheck.map_or(stale_at, |r| r.min(stale_at)));
            continue;
        }
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &p.namespace().unwrap_or_default());
        let patch = serde_json::json!({"status": {"conditions": [{"type": "DisruptionTarget",
            "status": "False", "lastTransitionTime": Time(now)}]}});
        api.patch_status(
            &p.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await?;
    }
    Ok(recheck)
}

/// The `disruptedPods` entries still pending (Kubernetes' `buildDisruptedPodMap`): an entry
/// goes once its pod is gone or being deleted, or when `timeout` has passed since the
/// eviction without the pod being deleted. Also returns when the next entry expires.
fn disrupted_pods(
    recorded: Option<&BTreeMap<String, Time>>,
    selected: &[Arc<CachedPod>],
    now: k8s_openapi::jiff::Timestamp,
    timeout: Duration,
) -> (BTreeMap<String, Time>, Option<k8s_openapi::jiff::Timestamp>) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<k8s_openapi::jiff::Timestamp> = None;
    let Some(recorded) = recorded else {
        return (kept, None);
    };
    for p in selected {
        let name = p.name_any();
        let Some(at) = recorded.get(&name) else {
            continue;
        };
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Ok(expires) = at.0.checked_add(timeout) else {
            continue;
        };
        if expires <= now {
            tracing::info!(pod = %name, "pod was expected to be deleted after its eviction but it was not");
            continue;
        }
        recheck = Some(recheck.map_or(expires, |r| r.min(expires)));
        kept.insert(name, at.clone());
    }
    (kept, recheck)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up() {
        assert_eq!(
            scaled_value(&IntOrString::String("50%".into()), 3, true).ok(),
            Some(2)
        );
        assert_eq!(
            scaled_value(&IntOrString::String("100%".into()), 3, true).ok(),
            Some(3)
        );
        assert_eq!(scaled_value(&IntOrString::Int(2), 3, true).ok(), Some(2));
        assert_eq!(
            scaled_value(&IntOrString::String("half".into()), 3, true).ok(),
            None
        );
    }
}
