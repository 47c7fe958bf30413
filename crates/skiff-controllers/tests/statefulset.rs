//! The StatefulSet controller against the real API server. Pods "run" when the test marks
//! them Running and Ready as a kubelet would.

mod common;

use common::{start, until, Cluster};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

fn set(name: &str, replicas: i32, extra: serde_json::Value) -> StatefulSet {
    let mut spec = json!({"replicas": replicas, "serviceName": name,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

async fn names(c: &Cluster, app: &str) -> Vec<String> {
    let mut n: Vec<String> = c
        .pods(&format!("app={app}"))
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    n.sort();
    n
}

fn image(p: &Pod) -> String {
    p.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

/// Waits for pod `name` to exist, checks that no later ordinal exists while it is not
/// ready (`expect` pods in all), and marks it ready.
async fn bring_up(c: &Cluster, app: &str, name: &str, expect: usize) -> Pod {
    let pods: Api<Pod> = c.api();
    let p = until(&format!("{name} is created"), || async {
        pods.get_opt(name)
            .await
            .unwrap()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
    })
    .await;
    assert_eq!(names(c, app).await.len(), expect, "{name} was not alone");
    c.mark_ready(name).await;
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn ordered_ready_creates_in_order_with_stable_identity_and_scales_down_in_reverse() {
    let c = start().await;
    let sets: Api<StatefulSet> = c.api();
    let claims = json!({"volumeClaimTemplates": [{"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]});
    sets.create(&PostParams::default(), &set("web", 3, claims))
        .await
        .unwrap();
    for i in 0..3 {
        let name = format!("web-{i}");
        // Nothing after it exists before it is Running and Ready.
        let p = bring_up(&c, "web", &name, i + 1).await;
        let spec = p.spec.clone().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(name.as_str()));
        assert_eq!(spec.subdomain.as_deref(), Some("web"));
        let vol = spec
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "data")
            .unwrap();
        assert_eq!(
            vol.persistent_volume_claim.unwrap().claim_name,
            format!("data-web-{i}")
        );
        assert_eq!(
            p.labels().get("statefulset.kubernetes.io/pod-name"),
            Some(&name)
        );
    }
    let pvcs: Api<PersistentVolumeClaim> = c.api();
    for i in 0..3 {
        assert!(pvcs
            .get_opt(&format!("data-web-{i}"))
            .await
            .unwrap()
            .is_some());
    }
    let s = until("the status counts 3 ready replicas", || async {
        let s = sets.get("web").await.unwrap().status?;
        (s.ready_replicas == Some(3) && s.updated_replicas == Some(3)).then_some(s)
    })
    .await;
    assert_eq!(s.replicas, 3);
    assert_eq!(s.current_revision, s.update_revision);
    assert!(s.update_revision.unwrap().starts_with("web-"));

    // A deleted pod comes back under its name.
    let pods: Api<Pod> = c.api();
    let old_uid = pods.get("web-1").await.unwrap().metadata.uid;
    pods.delete("web-1", &Default::default()).await.unwrap();
    let back = until("web-1 is made again", || async {
        pods.get_opt("web-1")
            .await
            .unwrap()
            .filter(|p| p.metadata.uid != old_uid)
    })
    .await;
    assert_eq!(back.spec.unwrap().hostname.as_deref(), Some("web-1"));
    c.mark_ready("web-1").await;

    // Scale down to 1: web-2 goes first, then web-1; the claims stay.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    let mut seen: Vec<Vec<String>> = Vec::new();
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    loop {
        let n = names(&c, "web").await;
        if seen.last() != Some(&n) {
            seen.push(n.clone());
        }
        if n == ["web-0"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not scaled down: {seen:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        !seen
            .iter()
            .any(|n| n.contains(&"web-2".to_string()) && !n.contains(&"web-1".to_string())),
        "web-1 went before web-2: {seen:?}"
    );
    for i in 0..3 {
        assert!(
            pvcs.get_opt(&format!("data-web-{i}"))
                .await
                .unwrap()
                .is_some(),
            "claim {i} was deleted"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_creates_all_at_once() {
    let c = start().await;
    let sets: Api<StatefulSet> = c.api();
    sets.create(
        &PostParams::default(),
        &set("db", 3, json!({"podManagementPolicy": "Parallel"})),
    )
    .await
    .unwrap();
    // No pod is ever marked ready, yet all three appear.
    until("all three pods exist", || async {
        (names(&c, "db").await == ["db-0", "db-1", "db-2"]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
    let c = start().await;
    let sets: Api<StatefulSet> = c.api();
    sets.create(&PostParams::default(), &set("kv", 3, json!({})))
        .await
        .unwrap();
    for i in 0..3 {
        bring_up(&c, "kv", &format!("kv-{i}"), i + 1).await;
    }
    let before = until("kv is ready", || async {
        let s = sets.get("kv").await.unwrap().status?;
        (s.ready_replicas == Some(3)).then_some(s)
    })
    .await;
    let patch = json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
        "template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    sets.patch("kv", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let pods: Api<Pod> = c.api();
    for i in [2, 1] {
        let name = format!("kv-{i}");
        until(&format!("{name} runs the new image"), || async {
            pods.get_opt(&name)
                .await
                .unwrap()
                .filter(|p| image(p) == "busybox:2" && p.metadata.deletion_timestamp.is_none())
        })
        .await;
        // One at a time: the lower ordinal has not been touched yet.
        if i == 2 {
            assert_eq!(image(&pods.get("kv-1").await.unwrap()), "busybox:1");
        }
        c.mark_ready(&name).await;
    }
    let s = until("the partitioned update is counted", || async {
        let s = sets.get("kv").await.unwrap().status?;
        (s.updated_replicas == Some(2) && s.ready_replicas == Some(3)).then_some(s)
    })
    .await;
    assert_eq!(
        image(&pods.get("kv-0").await.unwrap()),
        "busybox:1",
        "below the partition"
    );
    assert_eq!(s.current_revision, before.current_revision);
    assert_ne!(s.update_revision, s.current_revision);

    sets.patch(
        "kv",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})),
    )
    .await
    .unwrap();
    until("kv-0 runs the new image", || async {
        pods.get_opt("kv-0")
            .await
            .unwrap()
            .filter(|p| image(p) == "busybox:2" && p.metadata.deletion_timestamp.is_none())
    })
    .await;
    c.mark_ready("kv-0").await;
    until("the update revision became the current one", || async {
        let s = sets.get("kv").await.unwrap().status?;
        (s.current_revision == s.update_revision && s.current_replicas == Some(3)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn claim_retention_policy_deletes_claims_with_scaled_pods_and_the_set() {
    let c = start().await;
    let sets: Api<StatefulSet> = c.api();
    let extra = json!({"podManagementPolicy": "Parallel",
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"},
        "volumeClaimTemplates": [{"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]});
    let created = sets
        .create(&PostParams::default(), &set("pg", 2, extra))
        .await
        .unwrap();
    let pvcs: Api<PersistentVolumeClaim> = c.api();
    let claim = until("both claims exist", || async {
        let one = pvcs.get_opt("data-pg-1").await.unwrap()?;
        pvcs.get_opt("data-pg-0").await.unwrap()?;
        Some(one)
    })
    .await;
    let owner = &claim.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.clone()),
        ("StatefulSet", created.uid().unwrap())
    );
    until("both pods exist", || async {
        (names(&c, "pg").await == ["pg-0", "pg-1"]).then_some(())
    })
    .await;
    c.mark_all_ready("app=pg").await;
    // Scaled down: pg-1's claim goes with pg-1; pg-0's stays.
    sets.patch(
        "pg",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    until("pg-1's claim is collected", || async {
        pvcs.get_opt("data-pg-1")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(pvcs.get_opt("data-pg-0").await.unwrap().is_some());
    // Deleted: the remaining claim goes with the set.
    sets.delete("pg", &Default::default()).await.unwrap();
    until("pg-0's claim is collected", || async {
        pvcs.get_opt("data-pg-0")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retained_claims_outlive_the_set() {
    let c = start().await;
    let sets: Api<StatefulSet> = c.api();
    let extra = json!({"podManagementPolicy": "Parallel",
        "volumeClaimTemplates": [{"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]});
    sets.create(&PostParams::default(), &set("keep", 1, extra))
        .await
        .unwrap();
    let pvcs: Api<PersistentVolumeClaim> = c.api();
    let claim = until("the claim exists", || async {
        pvcs.get_opt("data-keep-0").await.unwrap()
    })
    .await;
    assert!(claim.owner_references().is_empty(), "Retain: no owner");
    sets.delete("keep", &Default::default()).await.unwrap();
    until("the pod is collected", || async {
        names(&c, "keep").await.is_empty().then_some(())
    })
    .await;
    assert!(pvcs.get_opt("data-keep-0").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn max_unavailable_replaces_several_pods_at_once() {
    let c = start().await;
    let sets: Api<StatefulSet> = c.api();
    sets.create(
        &PostParams::default(),
        &set(
            "mu",
            4,
            json!({"podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}}),
        ),
    )
    .await
    .unwrap();
    until("four pods exist", || async {
        (names(&c, "mu").await.len() == 4).then_some(())
    })
    .await;
    c.mark_all_ready("app=mu").await;
    until("mu is ready", || async {
        let s = sets.get("mu").await.unwrap().status?;
        (s.ready_replicas == Some(4)).then_some(())
    })
    .await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    sets.patch("mu", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    // The two highest ordinals are replaced together; the others wait for them.
    let pods: Api<Pod> = c.api();
    for name in ["mu-3", "mu-2"] {
        until(&format!("{name} runs the new image"), || async {
            pods.get_opt(name)
                .await
                .unwrap()
                .filter(|p| image(p) == "busybox:2" && p.metadata.deletion_timestamp.is_none())
        })
        .await;
    }
    for name in ["mu-0", "mu-1"] {
        assert_eq!(image(&pods.get(name).await.unwrap()), "busybox:1", "{name}");
    }
    c.mark_all_ready("app=mu").await;
    for name in ["mu-1", "mu-0"] {
        until(&format!("{name} runs the new image"), || async {
            pods.get_opt(name)
                .await
                .unwrap()
                .filter(|p| image(p) == "busybox:2" && p.metadata.deletion_timestamp.is_none())
        })
        .await;
    }
}
