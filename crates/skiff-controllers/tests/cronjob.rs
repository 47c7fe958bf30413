//! The CronJob controller against the real API server, on a clock the test moves: a
//! schedule's minutes pass at once instead of in real time.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use common::{start_with, until, Cluster};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use skiff_controllers::Config;

/// A clock running `offset` seconds ahead of the real one.
struct Clock {
    offset: Arc<AtomicI64>,
}

impl Clock {
    /// Moves the clock to the first second of the next multiple of `minutes` (plus 5 s).
    fn jump_past_next(&self, minutes: i64) {
        let now = self.now();
        let period = minutes * 60;
        let target = (now.as_second() / period + 1) * period + 5;
        self.offset
            .fetch_add(target - now.as_second(), Ordering::SeqCst);
    }

    fn now(&self) -> Timestamp {
        Timestamp::now()
            .checked_add(SignedDuration::from_secs(
                self.offset.load(Ordering::SeqCst),
            ))
            .unwrap()
    }
}

async fn cluster() -> (Cluster, Clock) {
    let offset = Arc::new(AtomicI64::new(0));
    let o = offset.clone();
    let config = Config {
        clock: Arc::new(move || {
            Timestamp::now()
                .checked_add(SignedDuration::from_secs(o.load(Ordering::SeqCst)))
                .unwrap()
        }),
        ..Default::default()
    };
    (
        start_with(config, Default::default()).await,
        Clock { offset },
    )
}

fn cron_job(name: &str, schedule: &str, extra: serde_json::Value) -> CronJob {
    let mut spec = json!({"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// Wakes the controller after the clock moved (a real clock needs no nudge: the
/// controller requeues itself for the next scheduled time).
async fn nudge(c: &Cluster, name: &str) {
    let api: Api<CronJob> = c.api();
    let patch = json!({"metadata": {"annotations": {"test/nudge": Timestamp::now().to_string()}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn owned_jobs(c: &Cluster, cj: &str) -> Vec<Job> {
    let api: Api<Job> = c.api();
    let mut jobs: Vec<Job> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .filter(|j| {
            j.owner_references()
                .iter()
                .any(|r| r.kind == "CronJob" && r.name == cj)
        })
        .collect();
    jobs.sort_by_key(|j| j.name_any());
    jobs
}

/// Marks a Job complete as the Job controller would once its pod succeeded.
async fn complete(c: &Cluster, job: &str) {
    let api: Api<Job> = c.api();
    let now = Timestamp::now().to_string();
    let status = json!({"status": {"startTime": now, "completionTime": now, "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
            {"type": "Complete", "status": "True", "lastTransitionTime": now}]}});
    api.patch_status(job, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_a_job_per_scheduled_time_and_keeps_the_history_limit() {
    let (c, clock) = cluster().await;
    let api: Api<CronJob> = c.api();
    api.create(
        &PostParams::default(),
        &cron_job(
            "tick",
            "*/5 * * * *",
            json!({"successfulJobsHistoryLimit": 1}),
        ),
    )
    .await
    .unwrap();
    // Nothing before the first scheduled time.
    assert!(owned_jobs(&c, "tick").await.is_empty());

    let mut names = Vec::new();
    for round in 0..3 {
        clock.jump_past_next(5);
        nudge(&c, "tick").await;
        let jobs = until("the scheduled job is created", || async {
            let jobs = owned_jobs(&c, "tick").await;
            jobs.iter()
                .find(|j| !names.contains(&j.name_any()))
                .cloned()
        })
        .await;
        let name = jobs.name_any();
        let scheduled = (clock.now().as_second() - 5) / 60;
        assert_eq!(name, format!("tick-{scheduled}"), "round {round}");
        let cj = until("the job is active in the status", || async {
            let cj = api.get("tick").await.unwrap();
            let s = cj.status.clone()?;
            s.active
                .iter()
                .flatten()
                .any(|r| r.name.as_deref() == Some(name.as_str()))
                .then_some(cj)
        })
        .await;
        let last = cj.status.unwrap().last_schedule_time.unwrap().0;
        assert_eq!(last.as_second(), scheduled * 60);
        complete(&c, &name).await;
        until("the finished job leaves the active list", || async {
            let s = api.get("tick").await.unwrap().status?;
            (s.active.is_none() && s.last_successful_time.is_some()).then_some(())
        })
        .await;
        names.push(name);
    }
    // successfulJobsHistoryLimit 1: only the newest finished job is kept.
    let kept = until("old finished jobs are deleted", || async {
        let jobs = owned_jobs(&c, "tick").await;
        (jobs.len() == 1).then_some(jobs)
    })
    .await;
    assert_eq!(kept[0].name_any(), names[2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn forbid_skips_while_a_job_runs_and_replace_replaces_it() {
    let (c, clock) = cluster().await;
    let api: Api<CronJob> = c.api();
    api.create(
        &PostParams::default(),
        &cron_job("solo", "@hourly", json!({"concurrencyPolicy": "Forbid"})),
    )
    .await
    .unwrap();
    clock.jump_past_next(60);
    nudge(&c, "solo").await;
    let first = until("the first job", || async {
        owned_jobs(&c, "solo").await.into_iter().next()
    })
    .await;
    until("it is active", || async {
        let s = api.get("solo").await.unwrap().status?;
        s.active.is_some().then_some(())
    })
    .await;
    // An hour later it still runs: Forbid starts nothing.
    clock.jump_past_next(60);
    nudge(&c, "solo").await;
    until(
        "the controller saw the new time (JobAlreadyActive)",
        || async {
            let events: Api<k8s_openapi::api::events::v1::Event> = c.api();
            let list = events.list(&Default::default()).await.unwrap();
            list.items
                .iter()
                .any(|e| e.reason.as_deref() == Some("JobAlreadyActive"))
                .then_some(())
        },
    )
    .await;
    assert_eq!(owned_jobs(&c, "solo").await.len(), 1);

    // Replace: the running job is deleted and a new one made.
    api.patch(
        "solo",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"concurrencyPolicy": "Replace"}})),
    )
    .await
    .unwrap();
    let second = until("a new job replaced the running one", || async {
        let jobs = owned_jobs(&c, "solo").await;
        (jobs.len() == 1 && jobs[0].metadata.uid != first.metadata.uid).then(|| jobs[0].clone())
    })
    .await;
    assert_ne!(second.name_any(), first.name_any());
}

#[tokio::test(flavor = "multi_thread")]
async fn suspended_or_past_the_starting_deadline_starts_nothing() {
    let (c, clock) = cluster().await;
    let api: Api<CronJob> = c.api();
    api.create(
        &PostParams::default(),
        &cron_job(
            "late",
            "*/5 * * * *",
            json!({"startingDeadlineSeconds": 60, "suspend": true}),
        ),
    )
    .await
    .unwrap();
    clock.jump_past_next(5);
    nudge(&c, "late").await;
    // Suspended: the nudge is seen (the annotation) but no job is made.
    until("the controller saw the cron job", || async {
        let s = api.get("late").await.unwrap();
        s.metadata.annotations.is_some().then_some(())
    })
    .await;
    // Resumed 3 minutes after the scheduled time: past the 60 s deadline, nothing runs and
    // the miss is reported.
    clock.offset.fetch_add(180, Ordering::SeqCst);
    api.patch(
        "late",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .unwrap();
    until("the missed schedule is reported", || async {
        let events: Api<k8s_openapi::api::events::v1::Event> = c.api();
        let list = events.list(&Default::default()).await.unwrap();
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("MissSchedule"))
            .then_some(())
    })
    .await;
    assert!(owned_jobs(&c, "late").await.is_empty());
    // The next time is on time again.
    clock.jump_past_next(5);
    nudge(&c, "late").await;
    until("the next scheduled job runs", || async {
        (!owned_jobs(&c, "late").await.is_empty()).then_some(())
    })
    .await;
}
