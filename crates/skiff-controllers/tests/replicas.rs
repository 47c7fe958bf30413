//! The replica controllers (ReplicaSet, ReplicationController) against the real API server.

mod common;

use common::{start, until};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap()
}

fn owner_uid(p: &Pod) -> Option<String> {
    skiff_controllers::pods::controller_of(&p.metadata).map(|r| r.uid.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn replica_set_creates_pods_and_reports_ready_and_available() {
    let c = start().await;
    let rss: Api<ReplicaSet> = c.api();
    let rs = rss
        .create(&PostParams::default(), &replica_set("web", 3))
        .await
        .unwrap();
    let uid = rs.metadata.uid.clone();
    let pods = until("3 pods exist", || async {
        let p = c.pods("app=web").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    for p in &pods {
        assert_eq!(
            owner_uid(p),
            uid,
            "pod {} is controlled by the ReplicaSet",
            p.name_any()
        );
        assert!(p.name_any().starts_with("web-"), "{}", p.name_any());
    }
    c.mark_ready(&pods[0].name_any()).await;
    c.mark_ready(&pods[1].name_any()).await;
    let status = until("status counts 2 ready of 3", || async {
        let s = rss.get("web").await.unwrap().status?;
        (s.ready_replicas == Some(2)).then_some(s)
    })
    .await;
    assert_eq!(status.replicas, 3);
    assert_eq!(status.available_replicas, Some(2));
    assert_eq!(status.fully_labeled_replicas, Some(3));
    assert_eq!(status.observed_generation, rs.metadata.generation);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_pod_is_replaced_and_scaling_down_deletes_not_ready_pods_first() {
    let c = start().await;
    let rss: Api<ReplicaSet> = c.api();
    rss.create(&PostParams::default(), &replica_set("web", 3))
        .await
        .unwrap();
    let pods = until("3 pods exist", || async {
        let p = c.pods("app=web").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    let pod_api: Api<Pod> = c.api();
    pod_api
        .delete(&pods[2].name_any(), &DeleteParams::default())
        .await
        .unwrap();
    let gone = pods[2].name_any();
    let pods = until("the deleted pod is replaced", || async {
        let p = c.pods("app=web").await;
        (p.len() == 3 && p.iter().all(|p| p.name_any() != gone)).then_some(p)
    })
    .await;
    // Two ready, one not: scaling to 2 removes the one that is not ready.
    c.mark_ready(&pods[0].name_any()).await;
    c.mark_ready(&pods[2].name_any()).await;
    until("the ReplicaSet saw both ready", || async {
        let s = rss.get("web").await.unwrap().status?;
        (s.ready_replicas == Some(2)).then_some(())
    })
    .await;
    rss.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    let left = until("2 pods are left", || async {
        let p = c.pods("app=web").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    let mut names: Vec<String> = left.iter().map(|p| p.name_any()).collect();
    names.sort();
    let mut want = vec![pods[0].name_any(), pods[2].name_any()];
    want.sort();
    assert_eq!(
        names,
        want,
        "the not-ready pod {} went first",
        pods[1].name_any()
    );
    let status = until("status says 2 replicas", || async {
        let s = rss.get("web").await.unwrap().status?;
        (s.replicas == 2).then_some(s)
    })
    .await;
    assert_eq!(status.ready_replicas, Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn adopts_matching_orphans_and_releases_pods_that_stop_matching() {
    let c = start().await;
    let pod_api: Api<Pod> = c.api();
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pod_api
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    let rss: Api<ReplicaSet> = c.api();
    let rs = rss
        .create(&PostParams::default(), &replica_set("web", 2))
        .await
        .unwrap();
    let pods = until("2 pods, the orphan among them", || async {
        let p = c.pods("app=web").await;
        (p.len() == 2 && p.iter().all(|p| owner_uid(p) == rs.metadata.uid)).then_some(p)
    })
    .await;
    assert!(
        pods.iter().any(|p| p.name_any() == "orphan"),
        "the orphan was adopted, not replaced"
    );
    // Relabelled out of the selector: released, and a new pod takes its place.
    pod_api
        .patch(
            "orphan",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})),
        )
        .await
        .unwrap();
    until("the relabelled pod is released and replaced", || async {
        let p = c.pods("app=web").await;
        let released = pod_api.get("orphan").await.ok()?;
        (p.len() == 2 && owner_uid(&released).is_none()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replication_controller_keeps_its_replicas() {
    let c = start().await;
    let rcs: Api<ReplicationController> = c.api();
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": "old"},
        "spec": {"replicas": 2, "selector": {"app": "old"},
            "template": {"metadata": {"labels": {"app": "old"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let rc = rcs.create(&PostParams::default(), &rc).await.unwrap();
    let pods = until("2 pods exist", || async {
        let p = c.pods("app=old").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    let owner = skiff_controllers::pods::controller_of(&pods[0].metadata).unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.api_version.as_str()),
        ("ReplicationController", "v1")
    );
    assert_eq!(Some(&owner.uid), rc.metadata.uid.as_ref());
    c.mark_all_ready("app=old").await;
    let status = until("status counts 2 ready", || async {
        let s = rcs.get("old").await.unwrap().status?;
        (s.ready_replicas == Some(2)).then_some(s)
    })
    .await;
    assert_eq!(status.replicas, 2);
    assert_eq!(status.available_replicas, Some(2));
    assert_eq!(status.observed_generation, rc.metadata.generation);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_replica_set_deletes_its_pods() {
    let c = start().await;
    let rss: Api<ReplicaSet> = c.api();
    rss.create(&PostParams::default(), &replica_set("web", 2))
        .await
        .unwrap();
    until("2 pods exist", || async {
        (c.pods("app=web").await.len() == 2).then_some(())
    })
    .await;
    rss.delete("web", &DeleteParams::foreground())
        .await
        .unwrap();
    until("the ReplicaSet and its pods are gone", || async {
        let rs_gone = rss.get_opt("web").await.unwrap().is_none();
        (rs_gone && c.pods("app=web").await.is_empty()).then_some(())
    })
    .await;
}
