//! The HorizontalPodAutoscaler controller against the real API server, with pod usage
//! served through `metrics.k8s.io` from a node metrics source the test sets.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{api_only, until, Cluster};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, ResourceExt};
use serde_json::json;
use skiff_apiserver::kinds::metrics::{NodeMetrics, PodMetrics};
use skiff_apiserver::metrics::{self, NodeMetricsSource};
use skiff_controllers::{Config, Controllers};

/// CPU use per pod name, in millicores; pods not listed report nothing.
#[derive(Default, Clone)]
struct Usage(Arc<Mutex<HashMap<String, u64>>>);

impl Usage {
    fn set(&self, pod: &str, milli: u64) {
        self.0.lock().unwrap().insert(pod.to_string(), milli);
    }
}

impl NodeMetricsSource for Usage {
    fn node(&self) -> Option<NodeMetrics> {
        None
    }

    fn pods(&self) -> Vec<PodMetrics> {
        let window = Duration::from_secs(10);
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(pod, milli)| {
                let usage = metrics::usage(milli * 1_000_000, 4 << 20);
                metrics::pod_metrics(
                    "default",
                    pod,
                    chrono::Utc::now(),
                    window,
                    vec![("c".into(), usage)],
                )
            })
            .collect()
    }
}

/// The API server, the controller set with a 200 ms HPA sync period, and the usage source.
async fn start() -> (Cluster, Usage) {
    let mut c = api_only().await;
    let mut config = Config::default();
    config.hpa.sync_period = Duration::from_millis(200);
    let controllers = Controllers::with_config(c.client.clone(), "test", config);
    c.push(tokio::spawn(controllers.run()));
    let usage = Usage::default();
    c.state
        .connect_node_metrics("node-1", Arc::new(usage.clone()));
    (c, usage)
}

fn replica_set(name: &str, replicas: i32, request: Option<&str>) -> ReplicaSet {
    let resources = request.map_or(json!({}), |r| json!({"requests": {"cpu": r}}));
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}]}}}
    }))
    .unwrap()
}

/// Marks every pod of `app` Running and Ready since an hour ago (as its kubelet would);
/// returns their names.
async fn run_pods(c: &Cluster, app: &str) -> Vec<String> {
    let pods: Api<Pod> = c.api();
    let since = (Timestamp::now() - SignedDuration::from_secs(3600)).to_string();
    let mut names = Vec::new();
    for p in c.pods(&format!("app={app}")).await {
        let status = json!({"status": {"phase": "Running", "startTime": since, "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": since}]}});
        pods.patch_status(
            &p.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
        names.push(p.name_any());
    }
    names
}

async fn create_hpa(c: &Cluster, body: serde_json::Value) {
    let gvk = GroupVersionKind::gvk(
        "autoscaling",
        body["apiVersion"]
            .as_str()
            .unwrap()
            .trim_start_matches("autoscaling/"),
        "HorizontalPodAutoscaler",
    );
    let ar = ApiResource::from_gvk_with_plural(&gvk, "horizontalpodautoscalers");
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), "default", &ar);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(body).unwrap(),
    )
    .await
    .unwrap();
}

fn condition(hpa: &HorizontalPodAutoscaler, type_: &str) -> Option<(String, String, String)> {
    let c = hpa
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone()?, c.message.clone()?))
}

async fn rescale_events(c: &Cluster) -> Vec<String> {
    let events: Api<Event> = c.api();
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SuccessfulRescale"))
        .filter_map(|e| e.message)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn scales_up_on_cpu_above_target_and_down_when_idle() {
    let (c, usage) = start().await;
    let rss: Api<ReplicaSet> = c.api();
    rss.create(&PostParams::default(), &replica_set("web", 2, Some("100m")))
        .await
        .unwrap();
    let pods = until("2 pods", || async {
        let p = c.pods("app=web").await;
        (p.len() == 2).then_some(())
    });
    pods.await;
    for p in run_pods(&c, "web").await {
        usage.set(&p, 90);
    }
    create_hpa(
        &c,
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web"},
            "minReplicas": 1, "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}}),
    )
    .await;
    let hpas: Api<HorizontalPodAutoscaler> = c.api();
    // 90% of the request against 50%: ceil(2 × 1.8) = 4.
    until("the ReplicaSet is scaled to 4", || async {
        (rss.get("web").await.ok()?.spec?.replicas == Some(4)).then_some(())
    })
    .await;
    let hpa = until("the HPA reports 4 desired", || async {
        let h = hpas.get("web").await.ok()?;
        (h.status.as_ref()?.desired_replicas == 4).then_some(h)
    })
    .await;
    let status = hpa.status.clone().unwrap();
    assert!(status.last_scale_time.is_some());
    let cpu = status.current_metrics.unwrap()[0].resource.clone().unwrap();
    assert_eq!(
        (cpu.name.as_str(), cpu.current.average_utilization),
        ("cpu", Some(90))
    );
    assert_eq!(cpu.current.average_value.unwrap().0, "90m");
    let active = condition(&hpa, "ScalingActive").unwrap();
    assert_eq!(
        (active.0.as_str(), active.1.as_str()),
        ("True", "ValidMetricFound")
    );
    let up = "New size: 4; reason: cpu resource utilization (percentage of request) above target";
    until("the scale-up event", || async {
        rescale_events(&c)
            .await
            .iter()
            .any(|e| e == up)
            .then_some(())
    })
    .await;

    // The load goes: every pod idle, down to minReplicas.
    until("4 pods", || async {
        (c.pods("app=web").await.len() == 4).then_some(())
    })
    .await;
    for p in run_pods(&c, "web").await {
        usage.set(&p, 1);
    }
    until("the ReplicaSet is scaled to 1", || async {
        (rss.get("web").await.ok()?.spec?.replicas == Some(1)).then_some(())
    })
    .await;
    let down = "New size: 1; reason: All metrics below target";
    until("the scale-down event", || async {
        rescale_events(&c)
            .await
            .iter()
            .any(|e| e == down)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_v1_hpa_reads_back_its_cpu_utilization() {
    let (c, usage) = start().await;
    let rss: Api<ReplicaSet> = c.api();
    rss.create(&PostParams::default(), &replica_set("api", 1, Some("200m")))
        .await
        .unwrap();
    until("1 pod", || async {
        (c.pods("app=api").await.len() == 1).then_some(())
    })
    .await;
    for p in run_pods(&c, "api").await {
        usage.set(&p, 60);
    }
    create_hpa(
        &c,
        json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "api"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api"},
            "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}}),
    )
    .await;
    let gvk = GroupVersionKind::gvk("autoscaling", "v1", "HorizontalPodAutoscaler");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "horizontalpodautoscalers");
    let v1: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), "default", &ar);
    // 60m of 200m is 30% against 50%: one replica stays one.
    let status = until("the v1 status has the utilization", || async {
        let o = v1.get("api").await.ok()?;
        let s = o.data.get("status")?.clone();
        s.get("currentCPUUtilizationPercentage")?;
        Some(s)
    })
    .await;
    assert_eq!(status["currentCPUUtilizationPercentage"], 30);
    assert_eq!(status["currentReplicas"], 1);
    assert_eq!(status["desiredReplicas"], 1);
    assert_eq!(
        rss.get("api").await.unwrap().spec.unwrap().replicas,
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_requests_and_targets_are_reported_in_conditions() {
    let (c, usage) = start().await;
    let rss: Api<ReplicaSet> = c.api();
    rss.create(&PostParams::default(), &replica_set("norequest", 1, None))
        .await
        .unwrap();
    until("1 pod", || async {
        (c.pods("app=norequest").await.len() == 1).then_some(())
    })
    .await;
    for p in run_pods(&c, "norequest").await {
        usage.set(&p, 500);
    }
    for (name, target) in [("norequest", "norequest"), ("gone", "nothing-here")] {
        create_hpa(&c, json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": target},
                "maxReplicas": 3}}))
        .await;
    }
    let hpas: Api<HorizontalPodAutoscaler> = c.api();
    let active = until("ScalingActive is False", || async {
        let c = condition(&hpas.get("norequest").await.ok()?, "ScalingActive")?;
        (c.0 == "False").then_some(c)
    })
    .await;
    assert_eq!(active.1, "FailedGetResourceMetric");
    assert!(active.2.contains("missing request for cpu"), "{}", active.2);
    let able = until("AbleToScale is False", || async {
        let c = condition(&hpas.get("gone").await.ok()?, "AbleToScale")?;
        (c.0 == "False").then_some(c)
    })
    .await;
    assert_eq!(able.1, "FailedGetScale");
    assert_eq!(
        rss.get("norequest").await.unwrap().spec.unwrap().replicas,
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_average_value_targets_scale_by_the_mean_per_pod() {
    let (c, usage) = start().await;
    let rss: Api<ReplicaSet> = c.api();
    rss.create(&PostParams::default(), &replica_set("mem", 1, Some("10m")))
        .await
        .unwrap();
    until("1 pod", || async {
        (c.pods("app=mem").await.len() == 1).then_some(())
    })
    .await;
    for p in run_pods(&c, "mem").await {
        usage.set(&p, 1);
    }
    // Every pod uses 4Mi (the source's figure) against 2Mi each: twice the pods.
    create_hpa(
        &c,
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "mem"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "mem"},
            "minReplicas": 1, "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "memory",
                "target": {"type": "AverageValue", "averageValue": "2Mi"}}}]}}),
    )
    .await;
    until("the ReplicaSet is scaled to 2", || async {
        (rss.get("mem").await.ok()?.spec?.replicas == Some(2)).then_some(())
    })
    .await;
    let hpas: Api<HorizontalPodAutoscaler> = c.api();
    let current = until("the HPA reports the memory average", || async {
        let h = hpas.get("mem").await.ok()?;
        h.status?.current_metrics?[0].resource.clone()
    })
    .await;
    assert_eq!(current.name, "memory");
    assert_eq!(current.current.average_utilization, None);
    assert_eq!(
        current.current.average_value.unwrap().0,
        (4u64 << 20).to_string()
    );
    let up = "New size: 2; reason: memory resource above target";
    until("the rescale event", || async {
        rescale_events(&c)
            .await
            .iter()
            .any(|e| e == up)
            .then_some(())
    })
    .await;
}
