//! The CronJob controller (kube-controller-manager's `cronjob` v2): creates a Job from
//! `jobTemplate` at each scheduled time ([`schedule`]: five fields or `@hourly` etc. in
//! `timeZone`), unless `suspend`, or the time is older than `startingDeadlineSeconds`, or
//! `concurrencyPolicy` says `Forbid` while a Job still runs (`Replace` deletes the running
//! ones first); keeps `status.active`, `lastScheduleTime` and `lastSuccessfulTime`; deletes
//! finished Jobs beyond `successfulJobsHistoryLimit` and `failedJobsHistoryLimit`. Time is
//! read from the controller set's clock, so tests move it instead of waiting minutes.

pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::informer::Change;
use crate::job::finished;
use crate::pods::{controller_of, controller_ref};
use crate::runner::{self, Triggers};

/// The annotation carrying the time a Job was scheduled for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// How many missed start times are still reported one by one.
const MISSED_LIMIT: usize = 100;

/// The CronJob controller, running until dropped.
pub fn controller(ctx: Arc<Context>) -> impl std::future::Future<Output = ()> + Send {
    let store = ctx.informers.cron_jobs.store();
    let own = runner::own(ctx.informers.cron_jobs.changes(), store.clone());
    let jobs = job_triggers(&ctx, store.clone());
    runner::run("CronJob", ctx, store, vec![own, jobs], |cj, ctx| {
        Box::pin(reconcile(cj, ctx))
    })
}

/// Every change of a Job a CronJob controls wakes that CronJob.
fn job_triggers(ctx: &Context, cron_jobs: Store<CronJob>) -> Triggers<CronJob> {
    runner::map_changes(ctx.informers.jobs.changes(), move |c| {
        let owner = |j: &Job| {
            let ns = j.namespace().unwrap_or_default();
            controller_of(&j.metadata)
                .filter(|r| r.kind == "CronJob")
                .map(|r| ObjectRef::new(&r.name).within(&ns))
        };
        match c {
            Change::Applied { new, .. } => owner(&new).into_iter().collect(),
            Change::Deleted(old) => owner(&old).into_iter().collect(),
            Change::Relisted => runner::all(&cron_jobs),
        }
    })
}

fn job_ref(j: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: j.metadata.name.clone(),
        namespace: j.metadata.namespace.clone(),
        uid: j.metadata.uid.clone(),
        resource_version: j.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn condition_true(j: &Job, type_: &str) -> bool {
    j.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

fn until(at: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or_default()
}

/// The Job for the time `scheduled` (`<cronjob>-<minutes since the epoch>`, so one per
/// scheduled time whatever happens).
fn job_for(cj: &CronJob, scheduled: Timestamp) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), crate::pods::rfc3339(scheduled));
    Job {
        metadata: ObjectMeta {
            name: Some(format!("{}-{}", cj.name_any(), scheduled.as_second() / 60)),
            namespace: cj.namespace(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref("batch/v1", "CronJob", cj.meta())]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// One sync of a CronJob (`syncCronJob`).
pub async fn reconcile(obj: Arc<CronJob>, ctx: Arc<Context>) -> Result<Action> {
    let cj = obj.as_ref();
    if cj.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = cj.namespace().unwrap_or_default();
    let name = cj.name_any();
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let spec = cj.spec.clone().unwrap_or_default();
    let now = (ctx.config.clock)();
    let before = cj.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let regarding = cj.object_ref(&());
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);

    let jobs: Vec<Arc<Job>> = ctx
        .informers
        .jobs
        .store()
        .state()
        .into_iter()
        .filter(|j| j.namespace().as_deref() == Some(ns.as_str()))
        .filter(|j| controller_of(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();

    // Active: the unfinished Jobs we own; finished ones leave with an event.
    let mut active = Vec::new();
    for j in &jobs {
        let done = j.status.as_ref().is_some_and(finished);
        let listed = before
            .active
            .iter()
            .flatten()
            .any(|r| r.uid == j.metadata.uid);
        if !done {
            active.push(job_ref(j));
        } else if listed {
            ctx.events
                .normal(
                    &regarding,
                    "SawCompletedJob",
                    format!(
                        "Saw completed job: {}, status: {}",
                        j.name_any(),
                        if condition_true(j, "Complete") {
                            "Complete"
                        } else {
                            "Failed"
                        }
                    ),
                )
                .await;
        }
        if condition_true(j, "Complete") {
            let done_at = j
                .status
                .as_ref()
                .and_then(|s| s.completion_time.as_ref())
                .map(|t| t.0);
            if let Some(t) = done_at {
                if status.last_successful_time.as_ref().is_none_or(|l| l.0 < t) {
                    status.last_successful_time = Some(Time(t));
                }
            }
        }
    }
    status.active = (!active.is_empty()).then_some(active);

    prune_history(&ctx, &spec, &jobs, &regarding).await?;

    let mut next = None;
    if !spec.suspend.unwrap_or(false) {
        let sched = schedule::Schedule::parse(&spec.schedule, spec.time_zone.as_deref()).map_err(
            |reason| Error::Invalid {
                kind: "CronJob",
                name: name.clone(),
                reason,
            },
        )?;
        let earliest = before
            .last_schedule_time
            .as_ref()
            .or(cj.metadata.creation_timestamp.as_ref())
            .map_or(now, |t| t.0);
        let (latest, missed) = sched.most_recent(earliest, now, MISSED_LIMIT);
        if missed > MISSED_LIMIT {
            ctx.events
                .warning(&regarding, "TooManyMissedTimes", format!(
                    "too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"))
                .await;
        }
        next = sched.next_after(now);
        if let Some(t) = latest {
            let too_late = spec.starting_deadline_seconds.is_some_and(|d| {
                t.checked_add(SignedDuration::from_secs(d))
                    .is_ok_and(|limit| limit < now)
            });
            let running = status.active.as_ref().is_some_and(|a| !a.is_empty());
            let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
            if too_late {
                ctx.events
                    .warning(
                        &regarding,
                        "MissSchedule",
                        format!(
                            "Missed scheduled time to start a job: {}",
                            crate::pods::rfc3339(t)
                        ),
                    )
                    .await;
                status.last_schedule_time = Some(Time(t));
            } else if running && policy == "Forbid" {
                tracing::debug!(cronjob = %name, "a job is still active, not starting another");
                ctx.events
                    .normal(&regarding, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid".into())
                    .await;
            } else {
                if running && policy == "Replace" {
                    for r in status.active.take().into_iter().flatten() {
                        delete_job(&job_api, r.name.as_deref().unwrap_or(""), r.uid.clone())
                            .await?;
                        ctx.events
                            .normal(
                                &regarding,
                                "SuccessfulDelete",
                                format!("Deleted job {}", r.name.unwrap_or_default()),
                            )
                            .await;
                    }
                }
                let job = job_for(cj, t);
                let created = match job_api.create(&PostParams::default(), &job).await {
                    Ok(j) => {
                        ctx.events
                            .normal(
                                &regarding,
                                "SuccessfulCreate",
                                format!("Created job {}", j.name_any()),
                            )
                            .await;
                        Some(j)
                    }
                    // Made already (our status write was lost): it is in the active list
                    // if it is ours and still runs.
                    Err(kube::Error::Api(s)) if s.code == 409 => None,
                    Err(e) => {
                        ctx.events
                            .warning(
                                &regarding,
                                "FailedCreate",
                                format!(
                                    "Error creating job: {}",
                                    crate::podcontrol::api_message(&e)
                                ),
                            )
                            .await;
                        return Err(e.into());
                    }
                };
                if let Some(j) = created {
                    status.active.get_or_insert_with(Vec::new).push(job_ref(&j));
                }
                status.last_schedule_time = Some(Time(t));
            }
        }
    }
    if status != before {
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
        let mut patch = serde_json::to_value(&status)?;
        if patch.get("active").is_none() {
            patch["active"] = serde_json::Value::Null;
        }
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": patch})),
        )
        .await?;
    }
    Ok(match next {
        Some(at) => Action::requeue(until(at, now) + Duration::from_millis(100)),
        None => Action::await_change(),
    })
}

async fn delete_job(api: &Api<Job>, name: &str, uid: Option<String>) -> Result<()> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the oldest finished Jobs beyond the history limits.
async fn prune_history(
    ctx: &Context,
    spec: &k8s_openapi::api::batch::v1::CronJobSpec,
    jobs: &[Arc<Job>],
    regarding: &ObjectReference,
) -> Result<()> {
    for (kind, limit) in [
        ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
        ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut done: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none() && condition_true(j, kind))
            .collect();
        let limit = limit.max(0) as usize;
        if done.len() <= limit {
            continue;
        }
        // Oldest first by start time, ties by name as upstream's byJobStartTime (a job's name
        // carries its scheduled minute, so jobs started in the same second keep their order).
        done.sort_by_key(|j| {
            let started = j
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .or(j.metadata.creation_timestamp.as_ref())
                .map(|t| t.0);
            (started, j.name_any())
        });
        for j in &done[..done.len() - limit] {
            let api: Api<Job> =
                Api::namespaced(ctx.client.clone(), &j.namespace().unwrap_or_default());
            delete_job(&api, &j.name_any(), j.metadata.uid.clone()).await?;
            ctx.events
                .normal(
                    regarding,
                    "SuccessfulDelete",
                    format!("Deleted job {}", j.name_any()),
                )
                .await;
        }
    }
    Ok(())
}
