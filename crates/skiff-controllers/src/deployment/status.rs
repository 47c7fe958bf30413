//! A Deployment's `status` as kube-controller-manager writes it: counts summed over its
//! ReplicaSets, the `Available` condition, and — during a rollout — the `Progressing`
//! condition with its progress deadline (`progress.go`).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::controller::Action;
use kube::ResourceExt;

use super::rollout::status_complete;
use super::util::{self, rs_available, rs_ready, rs_replicas, rs_status_replicas};
use super::Sync;
use crate::error::Result;

/// Kubernetes' `calculateStatus`.
pub(crate) fn calculate(
    d: &Deployment,
    old: &[ReplicaSet],
    new: Option<&ReplicaSet>,
) -> DeploymentStatus {
    let all: Vec<&ReplicaSet> = old.iter().chain(new).collect();
    let available: i32 = all.iter().map(|rs| rs_available(rs)).sum();
    let total: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let nonzero = |n: i32| (n != 0).then_some(n);
    let current = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nonzero(all.iter().map(|rs| rs_status_replicas(rs)).sum()),
        updated_replicas: nonzero(new.map_or(0, rs_status_replicas)),
        ready_replicas: nonzero(all.iter().map(|rs| rs_ready(rs)).sum()),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero((total - available).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
        terminating_replicas: None,
    };
    let cond = if available >= util::replicas(d) - util::max_unavailable(d) {
        util::condition(
            "Available",
            "True",
            util::MIN_AVAILABLE,
            "Deployment has minimum availability.".into(),
        )
    } else {
        util::condition(
            "Available",
            "False",
            util::MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
        )
    };
    util::set_condition(&mut status, cond);
    status
}

/// Compares statuses the way the API stores them (absent and zero counts alike).
fn same(a: &DeploymentStatus, b: &DeploymentStatus) -> bool {
    let norm = |s: &DeploymentStatus| {
        let mut s = s.clone();
        for n in [
            &mut s.replicas,
            &mut s.updated_replicas,
            &mut s.ready_replicas,
            &mut s.available_replicas,
            &mut s.unavailable_replicas,
        ] {
            if *n == Some(0) {
                *n = None;
            }
        }
        s
    };
    norm(a) == norm(b)
}

impl Sync<'_> {
    /// Kubernetes' `syncDeploymentStatus`: counts and `Available`, no progress estimate.
    pub(super) async fn sync_status(
        &mut self,
        old: &[ReplicaSet],
        new: Option<&ReplicaSet>,
    ) -> Result<()> {
        let status = calculate(&self.d, old, new);
        if same(&status, &self.d.status.clone().unwrap_or_default()) {
            return Ok(());
        }
        self.write_status(status).await
    }

    /// Kubernetes' `syncRolloutStatus`: the status plus the `Progressing` condition; a
    /// rollout in progress is looked at again when its deadline would pass.
    pub(super) async fn sync_rollout_status(
        &mut self,
        old: &[ReplicaSet],
        new: Option<&ReplicaSet>,
    ) -> Result<Action> {
        let d = self.d.clone();
        let mut status = calculate(&d, old, new);
        let deadline = util::progress_deadline(&d);
        if deadline.is_none() {
            util::remove_condition(&mut status, "Progressing");
        }
        let current = d.status.clone().unwrap_or_default();
        let cur_cond = util::get_condition(&current, "Progressing").cloned();
        let complete_rollout = status.replicas == status.updated_replicas
            && cur_cond.as_ref().and_then(|c| c.reason.as_deref()) == Some(util::NEW_RS_AVAILABLE);
        if deadline.is_some() && !complete_rollout {
            let subject = |what: &str| match new {
                Some(rs) => format!("ReplicaSet {:?} {what}.", rs.name_any()),
                None => format!("Deployment {:?} {what}.", d.name_any()),
            };
            if status_complete(&d, &status) {
                let c = util::condition(
                    "Progressing",
                    "True",
                    util::NEW_RS_AVAILABLE,
                    subject("has successfully progressed"),
                );
                util::set_condition(&mut status, c);
            } else if progressing(&current, &status) {
                let mut c = util::condition(
                    "Progressing",
                    "True",
                    util::RS_UPDATED,
                    subject("is progressing"),
                );
                if let Some(cur) = &cur_cond {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    util::remove_condition(&mut status, "Progressing");
                }
                util::set_condition(&mut status, c);
            } else if timed_out(&d, &status) {
                let c = util::condition(
                    "Progressing",
                    "False",
                    util::TIMED_OUT,
                    subject("has timed out progressing"),
                );
                util::set_condition(&mut status, c);
            }
        }
        // The ReplicaFailure of a ReplicaSet becomes the Deployment's.
        let failure = new
            .into_iter()
            .chain(old.iter())
            .filter_map(|rs| {
                rs.status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .find(|c| c.type_ == "ReplicaFailure")
                    .cloned()
            })
            .next();
        match failure {
            Some(f) => util::set_condition(
                &mut status,
                k8s_openapi::api::apps::v1::DeploymentCondition {
                    type_: f.type_,
                    status: f.status,
                    reason: f.reason,
                    message: f.message,
                    last_transition_time: f.last_transition_time.clone(),
                    last_update_time: f.last_transition_time,
                },
            ),
            None => util::remove_condition(&mut status, "ReplicaFailure"),
        }
        if !same(&status, &current) {
            self.write_status(status.clone()).await?;
        }
        Ok(requeue_stuck(&d, &status))
    }
}

/// Kubernetes' `DeploymentProgressing`: more updated, fewer old, more ready or more
/// available replicas than last time.
fn progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let v = |n: Option<i32>| n.unwrap_or(0);
    let old_old = v(old.replicas) - v(old.updated_replicas);
    let new_old = v(new.replicas) - v(new.updated_replicas);
    v(new.updated_replicas) > v(old.updated_replicas)
        || new_old < old_old
        || v(new.ready_replicas) > v(old.ready_replicas)
        || v(new.available_replicas) > v(old.available_replicas)
}

/// When the Progressing condition was last updated plus the deadline, if it applies.
fn deadline_at(d: &Deployment, s: &DeploymentStatus) -> Option<Timestamp> {
    let secs = util::progress_deadline(d)?;
    let c = util::get_condition(s, "Progressing")?;
    if matches!(
        c.reason.as_deref(),
        Some(util::NEW_RS_AVAILABLE | util::TIMED_OUT)
    ) {
        return None;
    }
    let from = c.last_update_time.as_ref()?.0;
    from.checked_add(SignedDuration::from_secs(secs.into()))
        .ok()
}

/// Kubernetes' `DeploymentTimedOut`.
fn timed_out(d: &Deployment, s: &DeploymentStatus) -> bool {
    if util::progress_deadline(d).is_none() {
        return false;
    }
    match util::get_condition(s, "Progressing").and_then(|c| c.reason.as_deref()) {
        Some(util::TIMED_OUT) => true,
        Some(util::NEW_RS_AVAILABLE) | None => false,
        _ => deadline_at(d, s).is_some_and(|at| at < Timestamp::now()),
    }
}

/// Kubernetes' `requeueStuckDeployment`: look again when the deadline passes.
fn requeue_stuck(d: &Deployment, s: &DeploymentStatus) -> Action {
    if status_complete(d, s) {
        return Action::await_change();
    }
    match deadline_at(d, s) {
        Some(at) => {
            let left = Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or_default();
            Action::requeue(left.max(Duration::from_secs(1)))
        }
        None => Action::await_change(),
    }
}
