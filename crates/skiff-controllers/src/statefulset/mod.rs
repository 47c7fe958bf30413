//! The StatefulSet controller (kube-controller-manager's `statefulset`): pods with stable
//! names `NAME-0 … NAME-(N-1)` and identities (hostname, subdomain = `serviceName`), their
//! PersistentVolumeClaims from `volumeClaimTemplates` (`TEMPLATE-NAME-i`, kept when the set
//! scales down), created in order and each only after the previous one is Running and Ready
//! (`OrderedReady`) or all at once (`Parallel`), removed highest ordinal first. Templates are
//! kept as ControllerRevisions; `RollingUpdate` replaces pods from the highest ordinal down
//! to `partition`, one at a time (up to `maxUnavailable` at a time when set, upstream's
//! `MaxUnavailableStatefulSet` behaviour), `OnDelete` only recreates pods the user deleted.
//! Claims follow `persistentVolumeClaimRetentionPolicy` ([`retention`]). Status
//! carries the replica counts and `currentRevision`/`updateRevision` as `kubectl rollout
//! status` reads them.

mod identity;
mod retention;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{ObjectReference, PodTemplateSpec};
use kube::api::{Patch, PatchParams};
use kube::core::Selector;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::claim::Claimer;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::history::{self, revision_hash};
use crate::pods;
use crate::runner::{self, Triggers};
use crate::{podcontrol, template};

pub use identity::ordinal;

/// The StatefulSet controller, running until dropped.
pub fn controller(ctx: Arc<Context>) -> impl std::future::Future<Output = ()> + Send {
    let store = ctx.informers.stateful_sets.store();
    let own = runner::own(ctx.informers.stateful_sets.changes(), store.clone());
    let pods = pod_triggers(&ctx, store.clone());
    runner::run("StatefulSet", ctx, store, vec![own, pods], |set, ctx| {
        Box::pin(reconcile(set, ctx))
    })
}

/// Every change of a pod a StatefulSet controls wakes that set.
fn pod_triggers(ctx: &Arc<Context>, sets: Store<StatefulSet>) -> Triggers<StatefulSet> {
    runner::controlled_pod_triggers(ctx, sets, "StatefulSet")
}

use crate::cachedpod::CachedPod;
use crate::pods::phase;

/// Running and Ready, not terminating (`isRunningAndReady`).
fn running_and_ready(p: &CachedPod) -> bool {
    phase(p) == "Running" && pods::is_ready(p) && p.metadata.deletion_timestamp.is_none()
}

/// One sync of a StatefulSet (`syncStatefulSet` / `updateStatefulSet`).
pub async fn reconcile(obj: Arc<StatefulSet>, ctx: Arc<Context>) -> Result<Action> {
    let set = obj.as_ref();
    if set.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let spec = set.spec.clone().unwrap_or_default();
    let invalid = |reason: String| Error::Invalid {
        kind: "StatefulSet",
        name: name.clone(),
        reason,
    };
    let selector = Selector::try_from(spec.selector.clone()).map_err(|e| invalid(e.to_string()))?;
    let before = set.status.clone().unwrap_or_default();

    // Revisions: the template now is the update revision; the current one is what the
    // status says the set ran before (the update revision for a new set).
    let collision = before.collision_count;
    let hash = template::template_hash(&spec.template, collision);
    let update_revision = format!("{name}-{hash}");
    history::sync(
        &set.metadata,
        "StatefulSet",
        &spec.template,
        &update_revision,
        &update_revision,
        spec.revision_history_limit.unwrap_or(10),
        &ctx,
    )
    .await?;
    let current_revision = before
        .current_revision
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| update_revision.clone());
    let current_template =
        revision_template(&ctx, &ns, &current_revision).unwrap_or_else(|| spec.template.clone());

    let candidates: Vec<Arc<CachedPod>> = ctx
        .informers
        .pods_in(&ns)
        .into_iter()
        .filter(|p| identity::ordinal(&name, &p.name_any()).is_some())
        .collect();
    let owned = Claimer::new(&ctx.client, set, "apps/v1", "StatefulSet", &selector)
        .claim(candidates)
        .await?;

    let replicas = spec.replicas.unwrap_or(1).max(0) as usize;
    let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let on_delete = strategy.type_.as_deref() == Some("OnDelete");
    let partition = strategy
        .rolling_update
        .as_ref()
        .and_then(|r| r.partition)
        .unwrap_or(0)
        .max(0) as usize;
    let mut slots: Vec<Option<Arc<CachedPod>>> = vec![None; replicas];
    let mut condemned: Vec<(usize, Arc<CachedPod>)> = Vec::new();
    for p in &owned {
        let Some(i) = identity::ordinal(&name, &p.name_any()) else {
            continue;
        };
        if i < replicas {
            slots[i] = Some(p.clone());
        } else {
            condemned.push((i, p.clone()));
        }
    }
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    let regarding = set.object_ref(&());

    let acted = manage(
        &ctx,
        set,
        &regarding,
        &slots,
        &condemned,
        Plan {
            parallel,
            max_unavailable: max_unavailable(&strategy, replicas),
            on_delete,
            partition,
            current: (&current_revision, &current_template),
            update: (&update_revision, &spec.template),
        },
    )
    .await?;

    // Status over the pods as they are now (what this sync did shows up next time).
    let now = (ctx.config.clock)();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        collision_count: collision,
        current_revision: Some(current_revision.clone()),
        update_revision: Some(update_revision.clone()),
        ..Default::default()
    };
    let live: Vec<&Arc<CachedPod>> = owned
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let count = |f: &dyn Fn(&CachedPod) -> bool| live.iter().filter(|p| f(p)).count() as i32;
    status.replicas = live.len() as i32;
    status.ready_replicas = Some(count(&|p| running_and_ready(p)));
    status.available_replicas = Some(count(&|p| {
        running_and_ready(p) && pods::is_available(p, min_ready, now)
    }));
    status.current_replicas = Some(count(&|p| revision_hash(p) == Some(&current_revision)));
    status.updated_replicas = Some(count(&|p| revision_hash(p) == Some(&update_revision)));
    // Every pod runs the update revision and is ready: it becomes the current one.
    if status.updated_replicas == Some(replicas as i32)
        && status.ready_replicas == Some(replicas as i32)
        && status.replicas == replicas as i32
    {
        status.current_revision = Some(update_revision.clone());
        status.current_replicas = status.updated_replicas;
    }
    if status != before {
        let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
    }
    let next = owned
        .iter()
        .filter_map(|p| pods::until_available(p, min_ready, now))
        .min();
    Ok(match (acted, next) {
        (_, Some(d)) => Action::requeue(d + Duration::from_millis(100)),
        _ => Action::await_change(),
    })
}

/// `rollingUpdate.maxUnavailable` (a number or a percentage of `replicas`, rounded down,
/// at least 1); 1 when unset.
fn max_unavailable(
    strategy: &k8s_openapi::api::apps::v1::StatefulSetUpdateStrategy,
    replicas: usize,
) -> usize {
    strategy
        .rolling_update
        .as_ref()
        .and_then(|r| r.max_unavailable.as_ref())
        .map_or(1, |v| {
            crate::deployment::util::scaled_value(v, replicas as i32, false).unwrap_or(1)
        })
        .max(1) as usize
}

/// What the set wants of its pods.
struct Plan<'a> {
    parallel: bool,
    /// Pods that may be unavailable during a rolling update (1 without maxUnavailable).
    max_unavailable: usize,
    on_delete: bool,
    partition: usize,
    current: (&'a str, &'a PodTemplateSpec),
    update: (&'a str, &'a PodTemplateSpec),
}

/// Creates, deletes and replaces pods one step of the set's policy; returns whether it
/// did anything.
async fn manage(
    ctx: &Context,
    set: &StatefulSet,
    regarding: &ObjectReference,
    slots: &[Option<Arc<CachedPod>>],
    condemned: &[(usize, Arc<CachedPod>)],
    plan: Plan<'_>,
) -> Result<bool> {
    let name = set.name_any();
    let mut acted = false;
    // Scale up and repair, lowest ordinal first.
    for (i, slot) in slots.iter().enumerate() {
        match slot {
            None => {
                let (revision, template) = if !plan.on_delete && i < plan.partition {
                    plan.current
                } else {
                    plan.update
                };
                identity::create_claims(ctx, set, i).await?;
                let pod = identity::pod(set, template, revision, i);
                tracing::debug!(set = %name, ordinal = i, "creating stateful pod");
                match podcontrol::create(ctx, regarding, &pod).await {
                    Ok(_) => {}
                    // Its predecessor of the same name is still being deleted.
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
                acted = true;
                if !plan.parallel {
                    return Ok(true);
                }
            }
            Some(p) if phase(p) == "Failed" && p.metadata.deletion_timestamp.is_none() => {
                // A failed pod is deleted and made again under its name.
                podcontrol::first_failure(
                    podcontrol::delete(ctx, Some(regarding), &[p.as_ref()], None).await,
                )?;
                acted = true;
                if !plan.parallel {
                    return Ok(true);
                }
            }
            Some(p) if !plan.parallel && !running_and_ready(p) => return Ok(acted),
            Some(_) => {}
        }
    }
    // Scale down, highest ordinal first; OrderedReady one at a time, only once every
    // other pod is Running and Ready.
    if !condemned.is_empty() {
        let terminating = condemned
            .iter()
            .any(|(_, p)| p.metadata.deletion_timestamp.is_some());
        if !plan.parallel && terminating {
            return Ok(acted);
        }
        let all_ready = slots.iter().flatten().all(|p| running_and_ready(p));
        for (i, p) in condemned {
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if !plan.parallel && !all_ready {
                return Ok(acted);
            }
            // whenScaled: Delete — the claims go with the pod (the garbage collector).
            identity::sync_claims(ctx, set, *i, Some(p.as_ref()), true).await?;
            podcontrol::first_failure(
                podcontrol::delete(ctx, Some(regarding), &[p.as_ref()], None).await,
            )?;
            acted = true;
            if !plan.parallel {
                return Ok(true);
            }
        }
    }
    if plan.on_delete || acted {
        return Ok(acted);
    }
    // Rolling update: from the highest ordinal down to the partition, one pod at a time
    // and only while every pod is Running and Ready (or up to maxUnavailable at a time).
    // With maxUnavailable, up to that many pods are replaced at once (counting those
    // already unavailable).
    let unavailable = slots
        .iter()
        .filter(|s| {
            s.as_ref()
                .is_none_or(|p| !running_and_ready(p) || p.metadata.deletion_timestamp.is_some())
        })
        .count();
    let budget = plan.max_unavailable.saturating_sub(unavailable);
    let mut replaced = 0;
    for p in slots.iter().skip(plan.partition).rev().flatten() {
        if replaced >= budget {
            break;
        }
        if revision_hash(p) != Some(plan.update.0) && p.metadata.deletion_timestamp.is_none() {
            tracing::debug!(pod = %p.name_any(), "replacing stateful pod with the update revision");
            podcontrol::first_failure(
                podcontrol::delete(ctx, Some(regarding), &[p.as_ref()], None).await,
            )?;
            replaced += 1;
        }
    }
    Ok(acted || replaced > 0)
}

/// The template a ControllerRevision of the set holds.
fn revision_template(ctx: &Context, ns: &str, revision: &str) -> Option<PodTemplateSpec> {
    let cr = ctx
        .informers
        .controller_revisions
        .store()
        .get(&ObjectRef::new(revision).within(ns))?;
    history::template_of(&cr)
}
