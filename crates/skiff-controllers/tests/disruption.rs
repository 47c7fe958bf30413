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
