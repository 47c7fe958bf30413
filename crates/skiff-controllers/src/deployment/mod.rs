//! The Deployment controller (kube-controller-manager's `DeploymentController`): claims
//! ReplicaSets by selector, finds or creates the ReplicaSet of the current template
//! (`<name>-<pod-template-hash>`), and moves replicas from the old ReplicaSets to the new
//! one — RollingUpdate within `maxSurge`/`maxUnavailable`, or Recreate — keeping revision
//! history, proportional scaling during a rollout, and the `Progressing` and `Available`
//! conditions as Kubernetes writes them. Rollback is client-side (`kubectl rollout undo`
//! writes an old template back), pause and restart are spec changes.

mod rollout;
mod status;
pub mod util;

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value};

use crate::cachedpod::CachedPod;
use crate::claim::Claimer;
use crate::context::Context;
use crate::error::Result;
use crate::informer::Change;
use crate::pods::controller_of;
use crate::runner::{self, Triggers};

/// The Deployment controller, running until dropped.
pub fn controller(ctx: Arc<Context>) -> impl std::future::Future<Output = ()> + Send {
    let store = ctx.informers.deployments.store();
    let own = runner::own(ctx.informers.deployments.changes(), store.clone());
    let rss = rs_triggers(&ctx, store.clone());
    let pods = pod_triggers(&ctx, store.clone());
    runner::run("Deployment", ctx, store, vec![own, rss, pods], |d, ctx| {
        Box::pin(reconcile(d, ctx))
    })
}

fn selector_of(d: &Deployment) -> Option<Selector> {
    let sel = d.spec.as_ref()?.selector.clone();
    if sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty())
    {
        return None;
    }
    Selector::try_from(sel).ok()
}

/// The Deployment controlling `meta`, or (for an orphan) every Deployment whose selector
/// matches its labels.
fn owners_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    deployments: &Store<Deployment>,
) -> Vec<ObjectRef<Deployment>> {
    let ns = meta.namespace.clone().unwrap_or_default();
    match controller_of(meta) {
        Some(r) if r.kind == "Deployment" => vec![ObjectRef::new(&r.name).within(&ns)],
        Some(_) => vec![],
        None => {
            let labels = meta.labels.clone().unwrap_or_default();
            deployments
                .state()
                .into_iter()
                .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
                .filter(|d| selector_of(d).is_some_and(|s| s.matches(&labels)))
                .map(|d| ObjectRef::from_obj(d.as_ref()))
                .collect()
        }
    }
}

fn rs_triggers(ctx: &Context, deployments: Store<Deployment>) -> Triggers<Deployment> {
    runner::map_changes(ctx.informers.replica_sets.changes(), move |c| match c {
        Change::Applied { old, new } => {
            let mut out = owners_of(&new.metadata, &deployments);
            if let Some(old) = old {
                if controller_of(&old.metadata).map(|r| &r.uid)
                    != controller_of(&new.metadata).map(|r| &r.uid)
                {
                    out.extend(owners_of(&old.metadata, &deployments));
                }
            }
            out
        }
        Change::Deleted(old) => owners_of(&old.metadata, &deployments),
        Change::Relisted => runner::all(&deployments),
    })
}

/// A Recreate rollout waits for the old pods to be gone: their deletion wakes the
/// Deployment (through the ReplicaSet that controlled them).
fn pod_triggers(ctx: &Context, deployments: Store<Deployment>) -> Triggers<Deployment> {
    let rss = ctx.informers.replica_sets.store();
    runner::map_changes(ctx.informers.pods.changes(), move |c| {
        let Change::Deleted(pod) = c else {
            return vec![];
        };
        let ns = pod.namespace().unwrap_or_default();
        let Some(r) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
            return vec![];
        };
        match rss.get(&ObjectRef::new(&r.name).within(&ns)) {
            Some(rs) => owners_of(&rs.metadata, &deployments)
                .into_iter()
                .filter(|d| deployments.get(d).is_some_and(|d| util::is_recreate(&d)))
                .collect(),
            None => vec![],
        }
    })
}

/// One sync of a Deployment (kube-controller-manager's `syncDeployment`).
pub async fn reconcile(obj: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action> {
    let d = (*obj).clone();
    let ns = d.namespace().unwrap_or_default();
    let mut s = Sync::new(&ctx, d);
    let Some(selector) = selector_of(&s.d) else {
        s.ctx
            .events
            .warning(
                &s.regarding,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            )
            .await;
        return Ok(Action::await_change());
    };
    let candidates: Vec<Arc<ReplicaSet>> = ctx
        .informers
        .replica_sets
        .store()
        .state()
        .into_iter()
        .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
        .collect();
    let claimer = Claimer::new(
        &ctx.client,
        obj.as_ref(),
        "apps/v1",
        "Deployment",
        &selector,
    );
    let rs_list: Vec<ReplicaSet> = claimer
        .claim(candidates)
        .await?
        .iter()
        .map(|rs| (**rs).clone())
        .collect();

    if s.d.metadata.deletion_timestamp.is_some() {
        let (new_rs, old) = s.split(&rs_list);
        s.sync_status(&old, new_rs.as_ref()).await?;
        return Ok(Action::await_change());
    }
    s.check_paused_conditions().await?;
    if util::paused(&s.d) || s.is_scaling_event(&rs_list) {
        s.sync(rs_list).await?;
        return Ok(Action::await_change());
    }
    if util::is_recreate(&s.d) {
        let uids: HashSet<String> = rs_list
            .iter()
            .filter_map(|rs| rs.metadata.uid.clone())
            .collect();
        let pods: Vec<Arc<CachedPod>> = ctx
            .informers
            .pods_in(&ns)
            .into_iter()
            .filter(|p| controller_of(&p.metadata).is_some_and(|r| uids.contains(&r.uid)))
            .collect();
        s.rollout_recreate(rs_list, &pods).await
    } else {
        s.rollout_rolling(rs_list).await
    }
}

/// One sync in progress: the Deployment as last written, and how to write.
pub(crate) struct Sync<'a> {
    ctx: &'a Context,
    d: Deployment,
    deployments: Api<Deployment>,
    replica_sets: Api<ReplicaSet>,
    regarding: ObjectReference,
}

impl<'a> Sync<'a> {
    fn new(ctx: &'a Context, d: Deployment) -> Self {
        let ns = d.namespace().unwrap_or_default();
        Sync {
            regarding: d.object_ref(&()),
            deployments: Api::namespaced(ctx.client.clone(), &ns),
            replica_sets: Api::namespaced(ctx.client.clone(), &ns),
            ctx,
            d,
        }
    }

    fn name(&self) -> String {
        self.d.name_any()
    }

    /// The new ReplicaSet (the oldest whose template equals the Deployment's) and the others.
    fn split(&self, rs_list: &[ReplicaSet]) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
        let template = self
            .d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let mut sorted = rs_list.to_vec();
        sort_by_creation(&mut sorted);
        let idx = sorted.iter().position(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| util::equal_ignore_hash(t, &template))
        });
        match idx {
            Some(i) => {
                let new = sorted.remove(i);
                (Some(new), sorted)
            }
            None => (None, sorted),
        }
    }

    /// Kubernetes' `isScalingEvent`: an active ReplicaSet was sized for another
    /// `replicas`.
    fn is_scaling_event(&self, rs_list: &[ReplicaSet]) -> bool {
        rs_list
            .iter()
            .filter(|rs| util::rs_replicas(rs) > 0)
            .any(|rs| {
                util::desired_annotation(rs).is_some_and(|want| want != util::replicas(&self.d))
            })
    }

    /// Writes `status` through `/status` and keeps the answer.
    async fn write_status(
        &mut self,
        status: k8s_openapi::api::apps::v1::DeploymentStatus,
    ) -> Result<()> {
        let have = serde_json::to_value(&self.d.status)?;
        let mut want = serde_json::to_value(&status)?
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (k, _) in have.as_object().into_iter().flatten() {
            want.entry(k.clone()).or_insert(Value::Null);
        }
        self.d = self
            .deployments
            .patch_status(
                &self.name(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": want})),
            )
            .await?;
        Ok(())
    }

    /// Sets the Deployment's revision annotation (Kubernetes' `SetDeploymentRevision`).
    async fn set_revision(&mut self, revision: &str) -> Result<()> {
        let current = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(util::REVISION))
            .map(String::as_str);
        if current == Some(revision) {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {util::REVISION: revision}}});
        self.d = self
            .deployments
            .patch(&self.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Kubernetes' `checkPausedConditions`.
    async fn check_paused_conditions(&mut self) -> Result<()> {
        if util::progress_deadline(&self.d).is_none() {
            return Ok(());
        }
        let mut status = self.d.status.clone().unwrap_or_default();
        let reason = util::get_condition(&status, "Progressing").and_then(|c| c.reason.clone());
        let paused = util::paused(&self.d);
        let cond = if paused && reason.as_deref() != Some(util::PAUSED) {
            util::condition(
                "Progressing",
                "Unknown",
                util::PAUSED,
                "Deployment is paused".into(),
            )
        } else if !paused && reason.as_deref() == Some(util::PAUSED) {
            util::condition(
                "Progressing",
                "Unknown",
                util::RESUMED,
                "Deployment is resumed".into(),
            )
        } else {
            return Ok(());
        };
        util::set_condition(&mut status, cond);
        self.write_status(status).await
    }

    /// Writes a ReplicaSet's new size and replica annotations; records the scaling event.
    /// Returns the ReplicaSet as written and whether its size changed.
    async fn scale_rs(&self, rs: &ReplicaSet, to: i32) -> Result<(ReplicaSet, bool)> {
        let from = util::rs_replicas(rs);
        let resize = from != to;
        if !resize && !util::replica_annotations_stale(rs, &self.d) {
            return Ok((rs.clone(), false));
        }
        let d = &self.d;
        let patch = json!({
            "metadata": {
                "resourceVersion": rs.metadata.resource_version,
                "annotations": {
                    util::DESIRED_REPLICAS: util::replicas(d).to_string(),
                    util::MAX_REPLICAS: (util::replicas(d) + util::max_surge(d)).to_string(),
                },
            },
            "spec": {"replicas": to},
        });
        let written = self
            .replica_sets
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        if resize {
            let op = if to > from { "up" } else { "down" };
            self.ctx
                .events
                .normal(
                    &self.regarding,
                    "ScalingReplicaSet",
                    format!(
                        "Scaled {op} replica set {} from {from} to {to}",
                        rs.name_any()
                    ),
                )
                .await;
        }
        Ok((written, resize))
    }
}

/// Oldest first, then by name (Kubernetes' `ReplicaSetsByCreationTimestamp`).
fn sort_by_creation(rss: &mut [ReplicaSet]) {
    rss.sort_by(|a, b| {
        let t = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(a).cmp(&t(b))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
}
