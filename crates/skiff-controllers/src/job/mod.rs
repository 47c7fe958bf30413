//! The Job controller (kube-controller-manager's `job` and `ttlafterfinished` controllers,
//! NonIndexed and [`indexed`] completion modes): runs pods from the template until `completions` of them
//! succeed, at most `parallelism` at a time; recreates failed ones after an exponential
//! back-off until `backoffLimit` failures (as its [`failure`] policy counts them), or with
//! `backoffLimitPerIndex` until an index fails for good ([`per_index`]: `failedIndexes`,
//! `maxFailedIndexes`, the `FailIndex` action); stops everything past `activeDeadlineSeconds`;
//! writes `status` and the `SuccessCriteriaMet`/`Complete` or `FailureTarget`/`Failed`
//! conditions as Kubernetes does; deletes a finished Job `ttlSecondsAfterFinished` later.
//! Pods are created in slow-start batches and, as for ReplicaSets, nothing more is created
//! or deleted while the cache has not shown the last sync's creations and deletions
//! ([`expectations`](crate::expectations)).

pub mod failure;
pub mod indexed;
pub mod per_index;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::core::Selector;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::claim::Claimer;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::expectations;
use crate::informer::Change;
use crate::podcontrol;
use crate::pods;
use crate::runner::{self, Triggers};

/// The first delay before a failed pod is replaced (kube-controller-manager's
/// `DefaultJobPodFailureBackOff`); it doubles with each failure.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// The longest such delay (`MaxJobPodFailureBackOff`).
const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// The Job controller, running until dropped.
pub fn controller(ctx: Arc<Context>) -> impl std::future::Future<Output = ()> + Send {
    let store = ctx.informers.jobs.store();
    let own = {
        let ctx = ctx.clone();
        let store = store.clone();
        runner::map_changes(ctx.informers.jobs.changes(), move |c| match c {
            Change::Applied { new, .. } => vec![ObjectRef::from_obj(new.as_ref())],
            Change::Deleted(old) => {
                ctx.expectations
                    .forget(&key(&old.namespace().unwrap_or_default(), &old.name_any()));
                vec![]
            }
            Change::Relisted => runner::all(&store),
        })
    };
    let pods = pod_triggers(&ctx, store.clone());
    runner::run("Job", ctx, store, vec![own, pods], |job, ctx| {
        Box::pin(reconcile(job, ctx))
    })
}

/// The expectations key of the Job `namespace/name`.
pub fn key(namespace: &str, name: &str) -> String {
    expectations::key("Job", namespace, name)
}

/// Every change of a pod a Job controls wakes that Job; a re-list of pods wakes them all.
fn pod_triggers(ctx: &Arc<Context>, jobs: kube::runtime::reflector::Store<Job>) -> Triggers<Job> {
    runner::controlled_pod_triggers(ctx, jobs, "Job")
}

use crate::cachedpod::CachedPod;
use crate::pods::phase;

/// When a finished pod finished: its last container's end, else its creation.
fn finished_at(p: &CachedPod) -> Option<Timestamp> {
    let ended = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    ended.or_else(|| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn has_condition(s: &JobStatus, type_: &str) -> bool {
    s.conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

fn add_condition(s: &mut JobStatus, c: JobCondition) {
    if !has_condition(s, &c.type_) {
        s.conditions.get_or_insert_with(Vec::new).push(c);
    }
}

/// The Job has finished, one way or the other.
pub fn finished(s: &JobStatus) -> bool {
    has_condition(s, "Complete") || has_condition(s, "Failed")
}

/// One sync of a Job (kube-controller-manager's `syncJob`).
pub async fn reconcile(obj: Arc<Job>, ctx: Arc<Context>) -> Result<Action> {
    let job = obj.as_ref();
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let spec = job.spec.clone().unwrap_or_default();
    let now = Timestamp::now();
    let before = job.status.clone().unwrap_or_default();
    let mut status = before.clone();
    if job.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if finished(&status) {
        return ttl_after_finished(job, &status, now, &ctx).await;
    }
    let selector = Selector::try_from(spec.selector.clone().unwrap_or_default()).map_err(|e| {
        Error::Invalid {
            kind: "Job",
            name: name.clone(),
            reason: e.to_string(),
        }
    })?;
    let candidates = ctx.informers.pods_in(&ns);
    // Whether the cache shows what the last sync created and deleted: only then may this one
    // create or delete again.
    let key = key(&ns, &name);
    let needs_sync = {
        let pod_store = ctx.informers.pods.store();
        let alive: HashSet<&str> = candidates
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        ctx.expectations.satisfied(
            &key,
            |pod| pod_store.get(&ObjectRef::new(pod).within(&ns)).is_some(),
            |uid| alive.contains(uid),
        )
    };
    let owned = Claimer::new(&ctx.client, job, "batch/v1", "Job", &selector)
        .claim(candidates)
        .await?;
    let active: Vec<&CachedPod> = owned
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| pods::is_active(p))
        .collect();
    let indexed = indexed::is_indexed(&spec);
    let indexes = spec.completions.unwrap_or(0);
    // Indexed: the indexes that have succeeded, as recorded and as the pods show.
    let completed: BTreeSet<i32> = if indexed {
        let mut done =
            indexed::parse_ranges(before.completed_indexes.as_deref().unwrap_or(""), indexes);
        done.extend(
            owned
                .iter()
                .filter(|p| phase(p) == "Succeeded")
                .filter_map(|p| indexed::index_of(p, indexes)),
        );
        done
    } else {
        BTreeSet::new()
    };
    let succeeded = if indexed {
        completed.len()
    } else {
        owned.iter().filter(|p| phase(p) == "Succeeded").count()
    } as i32;
    let failed_pods: Vec<&CachedPod> = owned
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| phase(p) == "Failed")
        .collect();
    // Finished pods may be deleted (by hand, by pod GC): counts never go back.
    let succeeded = succeeded.max(before.succeeded.unwrap_or(0));
    // The podFailurePolicy decides what each failure means.
    let policy = spec.pod_failure_policy.as_ref();
    let verdicts: Vec<failure::Verdict> = failed_pods
        .iter()
        .map(|p| failure::judge(policy, p))
        .collect();
    let fail_job = verdicts.iter().find_map(|v| match v {
        failure::Verdict::FailJob(message) => Some(message.clone()),
        _ => None,
    });
    let counted = verdicts
        .iter()
        .filter(|v| matches!(v, failure::Verdict::Count | failure::Verdict::FailIndex))
        .count() as i32;
    // With backoffLimitPerIndex: each index's failures, and the indexes failed for good.
    let index_failures = spec
        .backoff_limit_per_index
        .filter(|_| indexed)
        .map(|limit| {
            let judged: Vec<_> = failed_pods
                .iter()
                .zip(&verdicts)
                .map(|(p, v)| (*p, v, finished_at(p)))
                .collect();
            let recorded = before.failed_indexes.as_deref().unwrap_or("");
            per_index::assess(&judged, limit, indexes, recorded)
        });
    let failed_indexes: BTreeSet<i32> = index_failures
        .as_ref()
        .map(|f| f.failed.difference(&completed).copied().collect())
        .unwrap_or_default();
    let failed = counted.max(before.failed.unwrap_or(0));
    let start = status.start_time.as_ref().map(|t| t.0).unwrap_or(now);
    status.start_time = Some(Time(start));

    let suspended = spec.suspend.unwrap_or(false);
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let completions = spec.completions;
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let deadline = spec
        .active_deadline_seconds
        .and_then(|s| start.checked_add(SignedDuration::from_secs(s)).ok());

    let failure: Option<(&str, String)> = if let Some(message) = fail_job {
        Some(("PodFailurePolicy", message))
    } else if failed > backoff_limit {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".into(),
        ))
    } else if deadline.is_some_and(|d| d <= now) {
        Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline".into(),
        ))
    } else if spec
        .max_failed_indexes
        .is_some_and(|m| failed_indexes.len() as i32 > m)
    {
        Some((
            "MaxFailedIndexesExceeded",
            "Job has exceeded the specified maximal number of failed indexes".into(),
        ))
    } else if !failed_indexes.is_empty()
        && completions.is_some_and(|c| succeeded + failed_indexes.len() as i32 >= c)
    {
        // Every index has either succeeded or failed for good.
        Some(("FailedIndexes", "Job has failed indexes".into()))
    } else {
        None
    };
    let complete = match completions {
        Some(c) => succeeded >= c,
        // A work queue: done once one pod succeeded and none is left running.
        None => succeeded > 0 && active.is_empty(),
    };
    let mut next = None;
    let regarding = job.object_ref(&());
    let mut remaining: Vec<&CachedPod> = active.clone();
    if let Some((reason, message)) = failure {
        add_condition(
            &mut status,
            condition("FailureTarget", reason, &message, now),
        );
        delete_pods(&ctx, &active, &regarding).await?;
        remaining.clear();
        add_condition(&mut status, condition("Failed", reason, &message, now));
        ctx.events.warning(&regarding, reason, message).await;
    } else if complete {
        add_condition(
            &mut status,
            condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            ),
        );
        delete_pods(&ctx, &active, &regarding).await?;
        remaining.clear();
        add_condition(
            &mut status,
            condition(
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            ),
        );
        status.completion_time = Some(Time(now));
        ctx.events
            .normal(&regarding, "Completed", "Job completed".into())
            .await;
    } else {
        let want = if suspended {
            0
        } else {
            match completions {
                Some(c) => parallelism.min(c - succeeded - failed_indexes.len() as i32),
                None if succeeded > 0 => 0,
                None => parallelism,
            }
            .max(0)
        };
        let have = active.len() as i32;
        if !needs_sync {
            tracing::debug!(
                outstanding = ?ctx.expectations.outstanding(&key),
                "waiting for the cache to show earlier creations and deletions"
            );
        } else if have > want {
            let excess = ((have - want) as usize).min(podcontrol::BURST);
            let victims = pods::pick_victims(&active, excess);
            let refs: Vec<&CachedPod> = victims.iter().collect();
            podcontrol::delete_expected(&ctx, &regarding, &key, &refs).await?;
            remaining.retain(|p| !victims.iter().any(|v| v.metadata.uid == p.metadata.uid));
        } else if have < want {
            // Failed pods are replaced after a back-off that doubles with each failure (of
            // their index, with backoffLimitPerIndex).
            let last_failure = failed_pods.iter().filter_map(|p| finished_at(p)).max();
            let wait = if failed > 0 && index_failures.is_none() {
                BACKOFF_BASE
                    .saturating_mul(2u32.saturating_pow((failed - 1) as u32))
                    .min(BACKOFF_MAX)
            } else {
                Duration::ZERO
            };
            let ready_at =
                last_failure.and_then(|t| t.checked_add(SignedDuration::try_from(wait).ok()?).ok());
            let until =
                |at: Timestamp| Duration::try_from(at.duration_since(now)).unwrap_or_default();
            match ready_at.filter(|at| *at > now) {
                Some(at) => next = Some(until(at)),
                None => {
                    let template = spec.template.clone();
                    let pod = pods::from_template(
                        &template,
                        &ns,
                        &name,
                        pods::controller_ref("batch/v1", "Job", job.meta()),
                    );
                    let need = ((want - have) as usize).min(podcontrol::BURST);
                    let mut new_pods: Vec<Pod> = Vec::new();
                    if indexed {
                        // The lowest indexes neither done, nor running, nor failed for good,
                        // nor backing off.
                        let running: BTreeSet<i32> = active
                            .iter()
                            .filter_map(|p| indexed::index_of(p, indexes))
                            .collect();
                        let free = (0..indexes).filter(|i| {
                            !completed.contains(i)
                                && !running.contains(i)
                                && !failed_indexes.contains(i)
                        });
                        for i in free {
                            if new_pods.len() >= need {
                                break;
                            }
                            let retry = index_failures
                                .as_ref()
                                .and_then(|f| f.retry_at(i, BACKOFF_BASE, BACKOFF_MAX))
                                .filter(|at| *at > now);
                            if let Some(at) = retry {
                                next = Some(next.map_or(until(at), |n: Duration| n.min(until(at))));
                                continue;
                            }
                            let mut p = indexed::for_index(pod.clone(), &name, i);
                            if let Some(f) = &index_failures {
                                f.annotate(&mut p, i);
                            }
                            new_pods.push(p);
                        }
                    } else {
                        new_pods = vec![pod; need];
                    }
                    podcontrol::create_expected(&ctx, &regarding, &key, &new_pods).await?;
                }
            }
        }
        if let Some(d) = deadline {
            let left = Duration::try_from(d.duration_since(now)).unwrap_or_default();
            next = Some(next.map_or(left, |n: Duration| n.min(left)));
        }
    }
    let nonzero = |n: i32| (n > 0).then_some(n);
    status.active = nonzero(remaining.len() as i32);
    status.ready = Some(remaining.iter().filter(|p| pods::is_ready(p)).count() as i32);
    status.succeeded = nonzero(succeeded);
    status.failed = nonzero(failed);
    status.terminating = None;
    status.completed_indexes = indexed.then(|| indexed::format_ranges(&completed));
    status.failed_indexes = index_failures
        .is_some()
        .then(|| indexed::format_ranges(&failed_indexes));
    if status != before {
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        let mut patch = serde_json::to_value(&status)?;
        // Counts that dropped to nothing are removed, not left behind.
        for k in ["active", "succeeded", "failed"] {
            if patch.get(k).is_none() {
                patch[k] = serde_json::Value::Null;
            }
        }
        // Pinned to the version this sync read, as upstream's UpdateStatus: a status computed
        // from a cache that had not seen the latest write (a Job finished by someone else, its
        // own earlier startTime) must not overwrite it. The newer version wakes this Job again.
        let pinned = json!({"metadata": {"resourceVersion": job.metadata.resource_version},
            "status": patch});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(pinned))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    if finished(&status) {
        return ttl_after_finished(job, &status, now, &ctx).await;
    }
    Ok(match next {
        Some(d) => Action::requeue(d + Duration::from_millis(100)),
        None => Action::await_change(),
    })
}

/// Deletes pods, waiting for nothing (their deletions wake the Job again).
async fn delete_pods(
    ctx: &Context,
    victims: &[&CachedPod],
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
) -> Result<()> {
    podcontrol::first_failure(podcontrol::delete(ctx, Some(regarding), victims, None).await)?;
    Ok(())
}

/// The TTL-after-finished controller: a finished Job with `ttlSecondsAfterFinished` is
/// deleted (its pods with it, in the background) that long after it finished.
async fn ttl_after_finished(
    job: &Job,
    status: &JobStatus,
    now: Timestamp,
    ctx: &Context,
) -> Result<Action> {
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return Ok(Action::await_change());
    };
    let finished_at = status
        .conditions
        .iter()
        .flatten()
        .filter(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
        .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
        .max()
        .unwrap_or(now);
    let expires = finished_at
        .checked_add(SignedDuration::from_secs(ttl.into()))
        .unwrap_or(finished_at);
    if expires > now {
        let left = Duration::try_from(expires.duration_since(now)).unwrap_or_default();
        return Ok(Action::requeue(left + Duration::from_millis(100)));
    }
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: job.metadata.uid.clone(),
            resource_version: job.metadata.resource_version.clone(),
        }),
        ..DeleteParams::background()
    };
    tracing::debug!(job = %job.name_any(), "deleting finished job past its ttl");
    match api.delete(&job.name_any(), &params).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}
