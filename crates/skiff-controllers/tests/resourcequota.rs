//! The resource quota controller against the real API server: `status.hard` follows the
//! spec, `status.used` counts the namespace's pods, and finished or deleted pods stop
//! counting.

mod common;

use common::{start, until};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn used_follows_the_pods_of_the_namespace() {
    let c = start().await;
    let quotas: Api<ResourceQuota> = c.api();
    let quota: ResourceQuota = serde_json::from_value(json!({"metadata": {"name": "compute"},
        "spec": {"hard": {"pods": "3", "requests.cpu": "2", "count/configmaps": "5"}}}))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    let used = || {
        let quotas = quotas.clone();
        async move {
            let s = quotas
                .get("compute")
                .await
                .unwrap()
                .status
                .unwrap_or_default();
            let show = |l: Option<
                std::collections::BTreeMap<
                    String,
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity,
                >,
            >| {
                l.unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| format!("{k}={}", v.0))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            (show(s.hard), show(s.used))
        }
    };
    let hard = "count/configmaps=5,pods=3,requests.cpu=2".to_string();
    until("status synced", || async {
        (used().await
            == (
                hard.clone(),
                "count/configmaps=0,pods=0,requests.cpu=0".into(),
            ))
            .then_some(())
    })
    .await;
    let pods: Api<Pod> = c.api();
    for (name, cpu) in [("a", "500m"), ("b", "1")] {
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"containers": [
            {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]}}))
            .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    until("two pods counted", || async {
        (used().await.1 == "count/configmaps=0,pods=2,requests.cpu=1500m").then_some(())
    })
    .await;
    // A finished pod uses nothing; a deleted one is gone from the count.
    pods.patch_status(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
    )
    .await
    .unwrap();
    until("finished pod released", || async {
        (used().await.1 == "count/configmaps=0,pods=1,requests.cpu=1").then_some(())
    })
    .await;
    pods.delete("b", &DeleteParams::default()).await.unwrap();
    until("deleted pod released", || async {
        (used().await.1 == "count/configmaps=0,pods=0,requests.cpu=0").then_some(())
    })
    .await;
    // A ConfigMap is charged by admission and returned at once when deleted (the periodic
    // recount is 5 minutes away).
    let maps: Api<ConfigMap> = c.api();
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "settings"}})).unwrap();
    maps.create(&PostParams::default(), &cm).await.unwrap();
    until("configmap charged", || async {
        (used().await.1 == "count/configmaps=1,pods=0,requests.cpu=0").then_some(())
    })
    .await;
    maps.delete("settings", &DeleteParams::default())
        .await
        .unwrap();
    until("deleted configmap released", || async {
        (used().await.1 == "count/configmaps=0,pods=0,requests.cpu=0").then_some(())
    })
    .await;
}
