//! The Deployment controller against the real API server: rollouts, revisions, conditions.

mod common;

use std::collections::BTreeMap;

use common::{start, until, Cluster};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};
use skiff_controllers::deployment::util::REVISION;

fn deployment(name: &str, replicas: i32, strategy: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}
    }))
    .unwrap()
}

fn rolling(surge: i32, unavailable: i32) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

async fn set_image(c: &Cluster, name: &str, image: &str) {
    let api: Api<Deployment> = c.api();
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
    api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
}

/// Replica sets of `app`, by revision.
async fn replica_sets(c: &Cluster, app: &str) -> BTreeMap<i64, ReplicaSet> {
    let api: Api<ReplicaSet> = c.api();
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|rs| (skiff_controllers::deployment::util::revision(&rs), rs))
        .collect()
}

fn image_of(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .unwrap()
        .template
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

fn condition(d: &Deployment, type_: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

/// Waits until the Deployment reports a finished rollout the way `kubectl rollout status`
/// judges it, marking pods ready as they appear.
async fn until_rolled_out(c: &Cluster, name: &str) -> Deployment {
    let api: Api<Deployment> = c.api();
    until("the rollout completes", || async {
        c.mark_all_ready(&format!("app={name}")).await;
        let d = api.get(name).await.unwrap();
        let want = d.spec.as_ref()?.replicas?;
        let s = d.status.clone()?;
        let done = s.observed_generation >= d.metadata.generation
            && s.updated_replicas == Some(want)
            && s.replicas == Some(want)
            && s.available_replicas == Some(want);
        done.then_some(d)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn creates_a_revision_1_replica_set_and_reports_conditions() {
    let c = start().await;
    let api: Api<Deployment> = c.api();
    api.create(&PostParams::default(), &deployment("web", 3, rolling(1, 0)))
        .await
        .unwrap();
    let d = until_rolled_out(&c, "web").await;
    let rss = replica_sets(&c, "web").await;
    assert_eq!(rss.keys().copied().collect::<Vec<_>>(), [1]);
    let rs = &rss[&1];
    let hash = rs.labels()["pod-template-hash"].clone();
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    assert_eq!(d.annotations().get(REVISION).map(String::as_str), Some("1"));
    assert_eq!(
        condition(&d, "Available"),
        Some(("True".into(), "MinimumReplicasAvailable".into()))
    );
    assert_eq!(
        condition(&d, "Progressing"),
        Some(("True".into(), "NewReplicaSetAvailable".into()))
    );
    for p in c.pods("app=web").await {
        assert_eq!(p.labels()["pod-template-hash"], hash);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_update_keeps_availability_and_surge_and_records_revisions() {
    let c = start().await;
    let api: Api<Deployment> = c.api();
    api.create(&PostParams::default(), &deployment("web", 4, rolling(1, 1)))
        .await
        .unwrap();
    until_rolled_out(&c, "web").await;
    set_image(&c, "web", "busybox:2").await;
    // Step the rollout by hand, marking one pod ready at a time, and sample the bounds.
    until("the rollout completes one pod at a time", || async {
        let pods = c.pods("app=web").await;
        assert!(
            pods.len() <= 5,
            "more than replicas + maxSurge pods: {}",
            pods.len()
        );
        let ready = pods
            .iter()
            .filter(|p| skiff_controllers::pods::is_ready(&(*p).clone().into()))
            .count();
        if ready < 3 {
            let rss: Vec<String> = replica_sets(&c, "web")
                .await
                .values()
                .map(|rs| {
                    format!(
                        "{} spec={:?} status={:?}",
                        rs.name_any(),
                        rs.spec.as_ref().unwrap().replicas,
                        rs.status
                    )
                })
                .collect();
            let ps: Vec<String> = pods
                .iter()
                .map(|p| {
                    format!(
                        "{} {} ready={}",
                        p.name_any(),
                        p.labels()["pod-template-hash"],
                        skiff_controllers::pods::is_ready(&(*p).clone().into())
                    )
                })
                .collect();
            panic!("fewer than replicas - maxUnavailable ready: {ready}\n{ps:#?}\n{rss:#?}");
        }
        if let Some(p) = pods
            .iter()
            .find(|p| !skiff_controllers::pods::is_ready(&(*p).clone().into()))
        {
            c.mark_ready(&p.name_any()).await;
        }
        let d = api.get("web").await.unwrap();
        let s = d.status.clone()?;
        let done = s.observed_generation >= d.metadata.generation
            && s.updated_replicas == Some(4)
            && s.replicas == Some(4)
            && s.available_replicas == Some(4);
        done.then_some(())
    })
    .await;
    let rss = replica_sets(&c, "web").await;
    assert_eq!(rss.keys().copied().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(image_of(&rss[&2]), "busybox:2");
    assert_eq!(rss[&2].spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(rss[&1].spec.as_ref().unwrap().replicas, Some(0));
    let d = api.get("web").await.unwrap();
    assert_eq!(d.annotations().get(REVISION).map(String::as_str), Some("2"));
    let images: Vec<String> = c
        .pods("app=web")
        .await
        .iter()
        .map(|p| {
            p.spec.as_ref().unwrap().containers[0]
                .image
                .clone()
                .unwrap()
        })
        .collect();
    assert_eq!(images, vec!["busybox:2".to_string(); 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_to_an_old_template_reuses_its_replica_set_with_a_new_revision() {
    let c = start().await;
    let api: Api<Deployment> = c.api();
    api.create(&PostParams::default(), &deployment("web", 2, rolling(1, 0)))
        .await
        .unwrap();
    until_rolled_out(&c, "web").await;
    set_image(&c, "web", "busybox:2").await;
    until_rolled_out(&c, "web").await;
    // What `kubectl rollout undo` does: write revision 1's template back.
    let rss = replica_sets(&c, "web").await;
    let mut template =
        serde_json::to_value(rss[&1].spec.as_ref().unwrap().template.as_ref().unwrap()).unwrap();
    template["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("pod-template-hash");
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(
                json!([{"op": "replace", "path": "/spec/template", "value": template}]),
            )
            .unwrap(),
        ),
    )
    .await
    .unwrap();
    let d = until_rolled_out(&c, "web").await;
    let rss = replica_sets(&c, "web").await;
    assert_eq!(
        rss.keys().copied().collect::<Vec<_>>(),
        [2, 3],
        "revision 1 became 3"
    );
    assert_eq!(image_of(&rss[&3]), "busybox:1");
    assert_eq!(
        rss[&3].annotations()["deployment.kubernetes.io/revision-history"],
        "1"
    );
    assert_eq!(d.annotations().get(REVISION).map(String::as_str), Some("3"));
}

#[tokio::test(flavor = "multi_thread")]
async fn revision_history_limit_deletes_the_oldest_replica_sets() {
    let c = start().await;
    let api: Api<Deployment> = c.api();
    let mut d = deployment("web", 1, rolling(1, 0));
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    api.create(&PostParams::default(), &d).await.unwrap();
    until_rolled_out(&c, "web").await;
    for image in ["busybox:2", "busybox:3"] {
        set_image(&c, "web", image).await;
        until_rolled_out(&c, "web").await;
    }
    until("only the newest old ReplicaSet is kept", || async {
        let revs: Vec<i64> = replica_sets(&c, "web").await.keys().copied().collect();
        (revs == [2, 3]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recreate_removes_every_old_pod_before_creating_new_ones() {
    let c = start().await;
    let api: Api<Deployment> = c.api();
    api.create(
        &PostParams::default(),
        &deployment("web", 2, json!({"type": "Recreate"})),
    )
    .await
    .unwrap();
    until_rolled_out(&c, "web").await;
    set_image(&c, "web", "busybox:2").await;
    until(
        "the rollout completes without old and new pods side by side",
        || async {
            let pods = c.pods("app=web").await;
            let images: std::collections::BTreeSet<String> = pods
                .iter()
                .map(|p| {
                    p.spec.as_ref().unwrap().containers[0]
                        .image
                        .clone()
                        .unwrap()
                })
                .collect();
            assert!(images.len() <= 1, "old and new pods at once: {images:?}");
            c.mark_all_ready("app=web").await;
            let d = api.get("web").await.unwrap();
            let s = d.status.clone()?;
            (s.updated_replicas == Some(2)
                && s.available_replicas == Some(2)
                && images.contains("busybox:2"))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn paused_deployment_scales_but_does_not_roll_until_resumed() {
    let c = start().await;
    let api: Api<Deployment> = c.api();
    api.create(&PostParams::default(), &deployment("web", 2, rolling(1, 0)))
        .await
        .unwrap();
    until_rolled_out(&c, "web").await;
    let pp = PatchParams::default();
    api.patch("web", &pp, &Patch::Merge(json!({"spec": {"paused": true}})))
        .await
        .unwrap();
    until("Progressing says paused", || async {
        let d = api.get("web").await.unwrap();
        (condition(&d, "Progressing") == Some(("Unknown".into(), "DeploymentPaused".into())))
            .then_some(())
    })
    .await;
    set_image(&c, "web", "busybox:2").await;
    api.patch("web", &pp, &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .unwrap();
    until("the paused Deployment scaled to 3", || async {
        let d = api.get("web").await.unwrap();
        let s = d.status.clone()?;
        (s.observed_generation == d.metadata.generation && s.replicas == Some(3)).then_some(())
    })
    .await;
    assert_eq!(
        replica_sets(&c, "web").await.len(),
        1,
        "no new ReplicaSet while paused"
    );
    api.patch(
        "web",
        &pp,
        &Patch::Merge(json!({"spec": {"paused": false}})),
    )
    .await
    .unwrap();
    until_rolled_out(&c, "web").await;
    let rss = replica_sets(&c, "web").await;
    assert_eq!(image_of(&rss[&2]), "busybox:2");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_that_never_becomes_ready_exceeds_its_progress_deadline() {
    let c = start().await;
    let api: Api<Deployment> = c.api();
    let mut d = deployment("web", 1, rolling(1, 0));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(2);
    api.create(&PostParams::default(), &d).await.unwrap();
    let d = until("Progressing turns False", || async {
        let d = api.get("web").await.unwrap();
        (condition(&d, "Progressing").is_some_and(|(s, _)| s == "False")).then_some(d)
    })
    .await;
    assert_eq!(
        condition(&d, "Progressing").unwrap().1,
        "ProgressDeadlineExceeded"
    );
    let c2 = d.status.unwrap().conditions.unwrap();
    let msg = c2
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap()
        .message
        .clone()
        .unwrap();
    assert!(msg.contains("has timed out progressing"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn min_ready_seconds_delays_availability() {
    let c = start().await;
    let api: Api<Deployment> = c.api();
    let mut d = deployment("web", 1, rolling(1, 0));
    d.spec.as_mut().unwrap().min_ready_seconds = Some(3);
    api.create(&PostParams::default(), &d).await.unwrap();
    until("the pod exists", || async {
        (c.pods("app=web").await.len() == 1).then_some(())
    })
    .await;
    c.mark_all_ready("app=web").await;
    until("ready is counted", || async {
        let s = api.get("web").await.unwrap().status?;
        (s.ready_replicas == Some(1)).then_some(())
    })
    .await;
    let s = api.get("web").await.unwrap().status.unwrap();
    assert_eq!(
        s.available_replicas, None,
        "available only after minReadySeconds"
    );
    until("available after minReadySeconds", || async {
        let s = api.get("web").await.unwrap().status?;
        (s.available_replicas == Some(1)).then_some(())
    })
    .await;
}

/// The events `kubectl describe` shows, as kube-controller-manager records them: from
/// `deployment-controller` / `replicaset-controller`, one per distinct message (a scale to 3
/// after a scale to 2 is its own event; each created pod is named in its own).
#[tokio::test(flavor = "multi_thread")]
async fn events_name_their_controller_and_keep_each_message() {
    use k8s_openapi::api::core::v1::Event;
    let c = start().await;
    let api: Api<Deployment> = c.api();
    api.create(&PostParams::default(), &deployment("ev", 2, rolling(1, 0)))
        .await
        .unwrap();
    until_rolled_out(&c, "ev").await;
    let scale = json!({"spec": {"replicas": 3}});
    api.patch("ev", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .unwrap();
    until_rolled_out(&c, "ev").await;
    let events: Api<Event> = c.api();
    let seen = until("both scaling events and three pod creations", || async {
        let all = events.list(&ListParams::default()).await.unwrap().items;
        let of = |kind: &str, reason: &str| -> Vec<(String, String, i32)> {
            let mut v: Vec<_> = all
                .iter()
                .filter(|e| e.involved_object.kind.as_deref() == Some(kind))
                .filter(|e| e.reason.as_deref() == Some(reason))
                .map(|e| {
                    let from = e.source.as_ref().and_then(|s| s.component.clone());
                    (
                        from.unwrap_or_default(),
                        e.message.clone().unwrap_or_default(),
                        e.count.unwrap_or(0),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let scaled = of("Deployment", "ScalingReplicaSet");
        let created = of("ReplicaSet", "SuccessfulCreate");
        (scaled.len() == 2 && created.len() == 3).then_some((scaled, created))
    })
    .await;
    let (scaled, created) = seen;
    let rs = replica_sets(&c, "ev").await[&1].name_any();
    assert_eq!(
        scaled,
        [
            (
                "deployment-controller".into(),
                format!("Scaled up replica set {rs} from 0 to 2"),
                1
            ),
            (
                "deployment-controller".into(),
                format!("Scaled up replica set {rs} from 2 to 3"),
                1
            ),
        ]
    );
    let mut pods: Vec<String> = c
        .pods("app=ev")
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    pods.sort();
    let expected: Vec<(String, String, i32)> = pods
        .iter()
        .map(|p| {
            (
                "replicaset-controller".into(),
                format!("Created pod: {p}"),
                1,
            )
        })
        .collect();
    assert_eq!(created, expected);
}
