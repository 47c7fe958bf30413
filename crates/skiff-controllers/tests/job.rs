//! The Job controller against the real API server. Pods "finish" when the test writes their
//! status as a kubelet would.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{api_only, start, until, Cluster};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::LimitRange;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};
use skiff_controllers::Context;

fn job(name: &str, spec: Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"metadata": {"labels": {"app": name}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}});
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// Writes a terminal phase into a pod's status, as its kubelet would when it exits.
async fn finish(c: &Cluster, pod: &str, phase: &str) {
    let pods: Api<Pod> = c.api();
    let now = Timestamp::now().to_string();
    let code = if phase == "Succeeded" { 0 } else { 1 };
    let status = json!({"status": {"phase": phase, "containerStatuses": [{"name": "c", "image": "busybox",
        "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": code, "startedAt": now, "finishedAt": now}}}]}});
    pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// The job's pods that still run (not finished, not being deleted).
async fn running(c: &Cluster, app: &str) -> Vec<Pod> {
    c.pods(&format!("app={app}"))
        .await
        .into_iter()
        .filter(|p| skiff_controllers::pods::is_active(&p.clone().into()))
        .collect()
}

fn has(j: &Job, type_: &str, reason: &str) -> bool {
    j.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == type_ && c.status == "True" && c.reason.as_deref() == Some(reason)
            })
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_parallelism_pods_until_completions_succeed() {
    let c = start().await;
    let jobs: Api<Job> = c.api();
    jobs.create(
        &PostParams::default(),
        &job("pi", json!({"completions": 3, "parallelism": 2})),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    let mut done = 0;
    let finished = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: {done} pods succeeded"
        );
        let run = running(&c, "pi").await;
        assert!(run.len() <= 2, "more than parallelism pods: {}", run.len());
        let j = jobs.get("pi").await.unwrap();
        if has(&j, "Complete", "CompletionsReached") {
            break j;
        }
        let s = j.status.clone().unwrap_or_default();
        // One at a time, once the controller has counted the previous one.
        if s.succeeded.unwrap_or(0) == done {
            if let Some(p) = run.first() {
                assert!(p.name_any().starts_with("pi-"), "{}", p.name_any());
                finish(&c, &p.name_any(), "Succeeded").await;
                done += 1;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let s = finished.status.unwrap();
    assert_eq!(s.succeeded, Some(3));
    assert_eq!(s.active, None);
    assert!(s.completion_time.is_some() && s.start_time.is_some());
    assert!(has(
        &jobs.get("pi").await.unwrap(),
        "SuccessCriteriaMet",
        "CompletionsReached"
    ));
    let all = c.pods("app=pi").await;
    assert_eq!(
        all.len(),
        3,
        "no pod beyond completions: {:?}",
        all.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_pod_is_replaced_until_the_backoff_limit() {
    let c = start().await;
    let jobs: Api<Job> = c.api();
    jobs.create(
        &PostParams::default(),
        &job("flaky", json!({"backoffLimit": 1})),
    )
    .await
    .unwrap();
    let first = until("a pod runs", || async { running(&c, "flaky").await.pop() }).await;
    finish(&c, &first.name_any(), "Failed").await;
    // Within the limit: replaced (after the back-off).
    let second = until("a replacement runs", || async {
        running(&c, "flaky")
            .await
            .into_iter()
            .find(|p| p.name_any() != first.name_any())
    })
    .await;
    finish(&c, &second.name_any(), "Failed").await;
    let j = until("the job fails", || async {
        let j = jobs.get("flaky").await.unwrap();
        has(&j, "Failed", "BackoffLimitExceeded").then_some(j)
    })
    .await;
    assert!(has(&j, "FailureTarget", "BackoffLimitExceeded"));
    assert_eq!(j.status.unwrap().failed, Some(2));
    assert!(running(&c, "flaky").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn active_deadline_stops_the_job_and_its_pods() {
    let c = start().await;
    let jobs: Api<Job> = c.api();
    jobs.create(
        &PostParams::default(),
        &job(
            "slow",
            json!({"activeDeadlineSeconds": 2, "parallelism": 2, "completions": 4}),
        ),
    )
    .await
    .unwrap();
    until("2 pods run", || async {
        (running(&c, "slow").await.len() == 2).then_some(())
    })
    .await;
    until("the deadline fails the job", || async {
        let j = jobs.get("slow").await.unwrap();
        has(&j, "Failed", "DeadlineExceeded").then_some(())
    })
    .await;
    until("its pods are deleted", || async {
        running(&c, "slow").await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_job_is_deleted_after_its_ttl() {
    let c = start().await;
    let jobs: Api<Job> = c.api();
    jobs.create(
        &PostParams::default(),
        &job("once", json!({"ttlSecondsAfterFinished": 1})),
    )
    .await
    .unwrap();
    let p = until("a pod runs", || async { running(&c, "once").await.pop() }).await;
    finish(&c, &p.name_any(), "Succeeded").await;
    until("the job and its pod are gone", || async {
        let gone = jobs.get_opt("once").await.unwrap().is_none();
        (gone && c.pods("app=once").await.is_empty()).then_some(())
    })
    .await;
}

/// The index a pod of an Indexed Job carries.
fn index(p: &Pod) -> String {
    p.annotations()["batch.kubernetes.io/job-completion-index"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn indexed_job_runs_each_index_until_it_succeeds() {
    let c = start().await;
    let jobs: Api<Job> = c.api();
    jobs.create(
        &PostParams::default(),
        &job(
            "idx",
            json!({"completions": 4, "parallelism": 2, "completionMode": "Indexed"}),
        ),
    )
    .await
    .unwrap();
    let first = until("indexes 0 and 1 run", || async {
        let run = running(&c, "idx").await;
        (run.len() == 2).then_some(run)
    })
    .await;
    let mut indexes: Vec<String> = first.iter().map(index).collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1"], "the lowest indexes first");
    for p in &first {
        let i = index(p);
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(format!("idx-{i}").as_str()));
        assert!(
            p.name_any().starts_with(&format!("idx-{i}-")),
            "{}",
            p.name_any()
        );
        assert_eq!(p.labels()["batch.kubernetes.io/job-completion-index"], i);
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, "JOB_COMPLETION_INDEX");
    }
    // Index 1 fails: it is run again (same index, new pod); index 0 succeeds.
    let by_index = |i: &str| first.iter().find(|p| index(p) == i).unwrap().name_any();
    finish(&c, &by_index("0"), "Succeeded").await;
    finish(&c, &by_index("1"), "Failed").await;
    let j = until("index 0 is recorded", || async {
        let j = jobs.get("idx").await.unwrap();
        let s = j.status.clone().unwrap_or_default();
        (s.completed_indexes.as_deref() == Some("0")).then_some(j)
    })
    .await;
    assert_eq!(j.status.unwrap().succeeded, Some(1));
    // Finish whatever runs, index by index, until all four are done.
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never completed"
        );
        let j = jobs.get("idx").await.unwrap();
        if has(&j, "Complete", "CompletionsReached") {
            let s = j.status.unwrap();
            assert_eq!(s.completed_indexes.as_deref(), Some("0-3"));
            assert_eq!(s.succeeded, Some(4));
            break;
        }
        let run = running(&c, "idx").await;
        assert!(run.len() <= 2, "more than parallelism pods");
        for p in run {
            assert_ne!(index(&p), "0", "a succeeded index is not run again");
            finish(&c, &p.name_any(), "Succeeded").await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Fails a pod as its kubelet would: exit `code`, and the pod `conditions`.
async fn fail_with(c: &Cluster, pod: &str, code: i32, conditions: Value) {
    let pods: Api<Pod> = c.api();
    let now = Timestamp::now().to_string();
    let status = json!({"status": {"phase": "Failed", "conditions": conditions,
        "containerStatuses": [{"name": "c", "image": "busybox", "imageID": "", "ready": false,
        "restartCount": 0, "state": {"terminated": {"exitCode": code, "startedAt": now, "finishedAt": now}}}]}});
    pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_failure_policy_ignores_disruptions_and_fails_on_listed_exit_codes() {
    let c = start().await;
    let jobs: Api<Job> = c.api();
    let spec = json!({"completions": 1, "backoffLimit": 0, "podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    ]}});
    jobs.create(&PostParams::default(), &job("pfp", spec))
        .await
        .unwrap();
    let first = until("a pod runs", || async {
        running(&c, "pfp").await.into_iter().next()
    })
    .await;
    // Evicted: ignored even with backoffLimit 0, the pod is replaced.
    fail_with(
        &c,
        &first.name_any(),
        137,
        json!([{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}]),
    )
    .await;
    let second = until("a replacement runs", || async {
        running(&c, "pfp")
            .await
            .into_iter()
            .find(|p| p.uid() != first.uid())
    })
    .await;
    let j = jobs.get("pfp").await.unwrap();
    assert!(
        !has(&j, "Failed", "BackoffLimitExceeded"),
        "the disruption counted"
    );
    assert_eq!(j.status.unwrap().failed, None);
    // Exit code 42: the Job fails at once, saying why.
    fail_with(&c, &second.name_any(), 42, json!([])).await;
    let j = until("the job fails by its policy", || async {
        let j = jobs.get("pfp").await.unwrap();
        has(&j, "Failed", "PodFailurePolicy").then_some(j)
    })
    .await;
    let failed = j
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(
        failed.message.unwrap(),
        format!(
            "Container c for pod default/{} failed with exit code 42 matching FailJob rule at index 0",
            second.name_any()
        )
    );
}

/// A controller context whose client counts the pod creations it sends, with its caches
/// filled once and then stopped: the controller sees the API as it was, as when its watch
/// lags behind its own writes.
async fn stale_context(c: &Cluster) -> (Arc<Context>, Arc<AtomicUsize>) {
    let creates = Arc::new(AtomicUsize::new(0));
    let counter = creates.clone();
    let router = skiff_apiserver::in_process_router(c.state.clone(), common::admin()).layer(
        axum::middleware::map_request(move |req: axum::extract::Request| {
            let counter = counter.clone();
            async move {
                if req.method() == axum::http::Method::POST && req.uri().path().ends_with("/pods") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                req
            }
        }),
    );
    let ctx = Context::new(kube::Client::new(router, "default"), "job-test");
    let informers = {
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.informers.run().await })
    };
    ctx.informers.synced().await;
    informers.abort();
    let _ = informers.await;
    (ctx, creates)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_before_the_cache_shows_the_last_creates_makes_no_duplicate_pods() {
    let c = api_only().await;
    let jobs: Api<Job> = c.api();
    let created = jobs
        .create(
            &PostParams::default(),
            &job("twice", json!({"completions": 10, "parallelism": 5})),
        )
        .await
        .unwrap();
    let (ctx, creates) = stale_context(&c).await;
    let created = Arc::new(created);
    skiff_controllers::job::reconcile(created.clone(), ctx.clone())
        .await
        .unwrap();
    assert_eq!(c.pods("app=twice").await.len(), 5);
    // The cache still shows no pod: the expectations hold the second sync back.
    skiff_controllers::job::reconcile(created, ctx.clone())
        .await
        .unwrap();
    let pods = c.pods("app=twice").await;
    assert_eq!(
        pods.len(),
        5,
        "parallelism 5, yet {:?}",
        pods.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );
    assert_eq!(creates.load(Ordering::SeqCst), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_creates_are_tried_once_per_sync_not_once_per_pod() {
    let c = api_only().await;
    let limits: Api<LimitRange> = c.api();
    let range: LimitRange = serde_json::from_value(json!({"metadata": {"name": "small"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "100m"}}]}}))
    .unwrap();
    limits.create(&PostParams::default(), &range).await.unwrap();
    let mut big = job("big", json!({"completions": 50, "parallelism": 50}));
    big.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .resources = Some(serde_json::from_value(json!({"limits": {"cpu": "1"}})).unwrap());
    let jobs: Api<Job> = c.api();
    let created = Arc::new(jobs.create(&PostParams::default(), &big).await.unwrap());
    let (ctx, creates) = stale_context(&c).await;
    let err = skiff_controllers::job::reconcile(created, ctx)
        .await
        .expect_err("the limit range refuses every pod");
    assert!(
        skiff_controllers::error::chain(&err).contains("maximum cpu usage per Container is 100m"),
        "{}",
        skiff_controllers::error::chain(&err)
    );
    assert_eq!(
        creates.load(Ordering::SeqCst),
        1,
        "slow start sends one create, sees it refused and stops"
    );
    assert!(c.pods("app=big").await.is_empty());
}

/// Fails a pod with exit `code` as its kubelet would have an hour ago (so any back-off has
/// passed).
async fn fail_long_ago(c: &Cluster, pod: &str, code: i32) {
    let pods: Api<Pod> = c.api();
    let then = (Timestamp::now() - std::time::Duration::from_secs(3600)).to_string();
    let status = json!({"status": {"phase": "Failed", "containerStatuses": [{"name": "c",
        "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": code, "startedAt": then, "finishedAt": then}}}]}});
    pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

fn failure_count(p: &Pod) -> Option<&str> {
    p.annotations()
        .get("batch.kubernetes.io/job-index-failure-count")
        .map(String::as_str)
}

async fn running_index(c: &Cluster, app: &str, i: &str) -> Option<Pod> {
    running(c, app).await.into_iter().find(|p| index(p) == i)
}

#[tokio::test(flavor = "multi_thread")]
async fn backoff_limit_per_index_fails_indexes_not_the_job_until_all_are_done() {
    let c = start().await;
    let jobs: Api<Job> = c.api();
    let spec = json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed",
        "backoffLimitPerIndex": 1, "podFailurePolicy": {"rules": [
            {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}}]}});
    jobs.create(&PostParams::default(), &job("per", spec))
        .await
        .unwrap();
    until("three indexes run", || async {
        (running(&c, "per").await.len() == 3).then_some(())
    })
    .await;
    let first = running_index(&c, "per", "0").await.unwrap();
    assert_eq!(failure_count(&first), Some("0"));
    // Index 0 fails once: retried, its pod carrying the failure.
    fail_long_ago(&c, &first.name_any(), 1).await;
    let retry = until("index 0 is retried", || async {
        running_index(&c, "per", "0")
            .await
            .filter(|p| p.uid() != first.uid())
    })
    .await;
    assert_eq!(failure_count(&retry), Some("1"));
    // A second failure is past the limit of 1: index 0 fails for good; the Job goes on.
    fail_long_ago(&c, &retry.name_any(), 1).await;
    let j = until("index 0 is failed", || async {
        let j = jobs.get("per").await.unwrap();
        (j.status.as_ref()?.failed_indexes.as_deref() == Some("0")).then_some(j)
    })
    .await;
    assert!(!has(&j, "Failed", "FailedIndexes"));
    // Exit code 42 fails index 1 at once (FailIndex), though its limit is not reached.
    let one = running_index(&c, "per", "1").await.unwrap();
    fail_long_ago(&c, &one.name_any(), 42).await;
    until("index 1 is failed", || async {
        let j = jobs.get("per").await.unwrap();
        (j.status?.failed_indexes.as_deref() == Some("0-1")).then_some(())
    })
    .await;
    assert!(
        running_index(&c, "per", "0").await.is_none()
            && running_index(&c, "per", "1").await.is_none(),
        "failed indexes are not retried"
    );
    // The last index succeeds: every index is done, some failed, so the Job fails.
    let two = running_index(&c, "per", "2").await.unwrap();
    finish(&c, &two.name_any(), "Succeeded").await;
    let j = until("the job fails with failed indexes", || async {
        let j = jobs.get("per").await.unwrap();
        has(&j, "Failed", "FailedIndexes").then_some(j)
    })
    .await;
    assert!(has(&j, "FailureTarget", "FailedIndexes"));
    let s = j.status.unwrap();
    assert_eq!(s.completed_indexes.as_deref(), Some("2"));
    assert_eq!(s.failed_indexes.as_deref(), Some("0-1"));
    assert_eq!((s.succeeded, s.failed), (Some(1), Some(3)));
}

#[tokio::test(flavor = "multi_thread")]
async fn more_failed_indexes_than_max_failed_indexes_fail_the_job() {
    let c = start().await;
    let jobs: Api<Job> = c.api();
    let spec = json!({"completions": 4, "parallelism": 4, "completionMode": "Indexed",
        "backoffLimitPerIndex": 0, "maxFailedIndexes": 1});
    jobs.create(&PostParams::default(), &job("capped", spec))
        .await
        .unwrap();
    until("four indexes run", || async {
        (running(&c, "capped").await.len() == 4).then_some(())
    })
    .await;
    let zero = running_index(&c, "capped", "0").await.unwrap();
    fail_long_ago(&c, &zero.name_any(), 1).await;
    let j = until("index 0 is failed", || async {
        let j = jobs.get("capped").await.unwrap();
        (j.status.as_ref()?.failed_indexes.as_deref() == Some("0")).then_some(j)
    })
    .await;
    assert!(
        !has(&j, "Failed", "MaxFailedIndexesExceeded"),
        "one is allowed"
    );
    let one = running_index(&c, "capped", "1").await.unwrap();
    fail_long_ago(&c, &one.name_any(), 1).await;
    let j = until("the job fails", || async {
        let j = jobs.get("capped").await.unwrap();
        has(&j, "Failed", "MaxFailedIndexesExceeded").then_some(j)
    })
    .await;
    assert_eq!(j.status.unwrap().failed_indexes.as_deref(), Some("0-1"));
    until("the other indexes are stopped", || async {
        running(&c, "capped").await.is_empty().then_some(())
    })
    .await;
}
