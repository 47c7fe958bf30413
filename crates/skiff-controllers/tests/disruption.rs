//! PodDisruptionBudget status against the real API server, over a ReplicaSet's pods.

mod common;

use common::{start, until};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn budget_status_follows_ready_pods() {
    let c = start().await;
    let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
        "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap();
    c.api::<ReplicaSet>()
        .create(&PostParams::default(), &rs)
        .await
        .unwrap();
    let budgets: Api<PodDisruptionBudget> = c.api();
    for (name, spec) in [
        ("min2", json!({"minAvailable": 2})),
        ("max-third", json!({"maxUnavailable": "34%"})),
    ] {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "web"}});
        let pdb: PodDisruptionBudget =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        budgets.create(&PostParams::default(), &pdb).await.unwrap();
    }
    let pods = until("3 pods", || async {
        let p = c.pods("app=web").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    // Nothing is ready: no disruption allowed.
    let status = |name: &'static str| {
        let budgets = budgets.clone();
        async move {
            let s = budgets.get(name).await.unwrap().status.unwrap_or_default();
            (
                s.expected_pods,
                s.current_healthy,
                s.desired_healthy,
                s.disruptions_allowed,
            )
        }
    };
    until("min2 counts 3 pods, none healthy", || async {
        (status("min2").await == (3, 0, 2, 0)).then_some(())
    })
    .await;
    for p in &pods {
        c.mark_ready(&p.name_any()).await;
    }
    until("min2 allows one disruption", || async {
        (status("min2").await == (3, 3, 2, 1)).then_some(())
    })
    .await;
    // 34 % of 3 rounds up to 2 unavailable: one must stay.
    until("max-third allows two disruptions", || async {
        (status("max-third").await == (3, 3, 1, 2)).then_some(())
    })
    .await;
    let pdb = budgets.get("min2").await.unwrap();
    let cond = &pdb.status.unwrap().conditions.unwrap()[0];
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("True", "SufficientPods")
    );
}

/// Evictions through the API use up the budget; the controller keeps an evicted pod out of
/// `currentHealthy` while its `disruptedPods` entry stands, and drops the entry once the pod
/// is being deleted or the deletion timeout passed without it.
#[tokio::test(flavor = "multi_thread")]
async fn evictions_use_up_the_budget_until_their_pods_go_or_time_out() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{EvictParams, Patch, PatchParams};
    let config = skiff_controllers::Config {
        pdb_deletion_timeout: std::time::Duration::from_secs(3),
        ..Default::default()
    };
    let c = common::start_with(config, Default::default()).await;
    let pods: Api<Pod> = c.api();
    for name in ["a", "b", "c"] {
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "db"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}))
            .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        c.mark_ready(name).await;
    }
    let budgets: Api<PodDisruptionBudget> = c.api();
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({"metadata": {"name": "db"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}}))
    .unwrap();
    budgets.create(&PostParams::default(), &pdb).await.unwrap();
    let state = || {
        let budgets = budgets.clone();
        async move {
            let s = budgets.get("db").await.unwrap().status.unwrap_or_default();
            let disrupted: Vec<String> = s.disrupted_pods.unwrap_or_default().into_keys().collect();
            (s.current_healthy, s.disruptions_allowed, disrupted)
        }
    };
    until("two disruptions allowed", || async {
        (state().await == (3, 2, vec![])).then_some(())
    })
    .await;

    pods.evict("a", &EvictParams::default()).await.unwrap();
    // `a` is terminating: no longer healthy, and its entry is done with.
    until("a evicted and counted", || async {
        (state().await == (2, 1, vec![])).then_some(())
    })
    .await;

    // An eviction whose pod was never deleted: `b` is out of the count until the timeout.
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    budgets
        .patch_status(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"disruptedPods": {"b": now}}})),
        )
        .await
        .unwrap();
    until("b counted as disrupted", || async {
        (state().await == (1, 0, vec!["b".to_string()])).then_some(())
    })
    .await;
    let refused = pods.evict("c", &EvictParams::default()).await.unwrap_err();
    match refused {
        kube::Error::Api(s) => assert_eq!(s.code, 429, "{s:?}"),
        other => panic!("expected 429, got {other:?}"),
    }
    until("b's entry timed out", || async {
        (state().await == (2, 1, vec![])).then_some(())
    })
    .await;
    pods.evict("c", &EvictParams::default()).await.unwrap();

    // A pod marked as a disruption target whose deletion never came: the condition goes
    // back to False once the timeout passed.
    let long_ago = "2020-01-01T00:00:00Z";
    pods.patch_status(
        "b",
        &PatchParams::default(),
        &Patch::Strategic(json!({"status": {"conditions": [{"type": "DisruptionTarget",
            "status": "True", "reason": "EvictionByEvictionAPI", "lastTransitionTime": long_ago}]}})),
    )
    .await
    .unwrap();
    until("stale DisruptionTarget reset", || async {
        let pod = pods.get("b").await.unwrap();
        let conditions = pod.status.unwrap().conditions.unwrap_or_default();
        let target = conditions.iter().find(|c| c.type_ == "DisruptionTarget")?;
        let ready = conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        (target.status == "False" && ready).then_some(())
    })
    .await;
}
