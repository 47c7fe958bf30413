//! The kinds added for the workload, storage, scheduling and metrics issues, through the
//! public router over a real SQLite store: what a client sees of their defaults, required
//! fields, subresources, shared storage and read-only APIs.

mod common;

use common::*;
use http::StatusCode;
use serde_json::{json, Value};

const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";

fn job(name: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})
}

#[tokio::test]
async fn job_gets_a_selector_from_its_uid_and_status_is_a_subresource() {
    let api = api().await;
    let (s, created) = api.post(JOBS, job("pi")).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let uid = created["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        created["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(created.get("status").is_none());

    // The main resource ignores status; /status takes only status.
    let mut with_status = created.clone();
    with_status["status"] = json!({"succeeded": 1});
    let (s, put) = api.put(&format!("{JOBS}/pi"), with_status.clone()).await;
    assert_eq!(s, StatusCode::OK, "{put}");
    assert!(put.get("status").is_none());
    with_status["metadata"]["resourceVersion"] = put["metadata"]["resourceVersion"].clone();
    with_status["spec"]["parallelism"] = json!(5);
    let (s, status) = api.put(&format!("{JOBS}/pi/status"), with_status).await;
    assert_eq!(s, StatusCode::OK, "{status}");
    assert_eq!(status["status"]["succeeded"], 1);
    assert_eq!(status["spec"]["parallelism"], 1, "spec is not /status's");
}

#[tokio::test]
async fn replication_controller_scales_through_its_map_selector() {
    let api = api().await;
    let rcs = "/api/v1/namespaces/default/replicationcontrollers";
    let rc = json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web"},
        "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let (s, created) = api.post(rcs, rc).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["spec"]["selector"], json!({"app": "web"}));
    let (s, _, body) = api
        .merge_patch(&format!("{rcs}/web/scale"), br#"{"spec":{"replicas":3}}"#)
        .await;
    assert_eq!(s, StatusCode::OK);
    let scale: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "app=web");
}

#[tokio::test]
async fn an_event_outside_default_needs_its_involved_object() {
    let api = api().await;
    api.post("/api/v1/namespaces", json!({"metadata": {"name": "shop"}}))
        .await;
    let events = "/api/v1/namespaces/shop/events";
    let (s, status) = api
        .post(
            events,
            json!({"metadata": {"name": "x.1"}, "reason": "Started", "message": "hi"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(
        status["message"],
        "Event \"x.1\" is invalid: involvedObject.namespace: Invalid value: \"\": does not match event.namespace"
    );
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "involvedObject.namespace"
    );
    let (s, list) = api.get(events).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"], json!([]), "nothing stored");
}

#[tokio::test]
async fn events_k8s_io_events_are_core_events() {
    let api = api().await;
    let event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "web.1"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "skiff.io/scheduler",
        "reportingInstance": "node-1", "action": "Binding", "reason": "Scheduled", "type": "Normal",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default"}, "note": "assigned to node-1"});
    let (s, created) = api
        .post("/apis/events.k8s.io/v1/namespaces/default/events", event)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["note"], "assigned to node-1");
    let (s, core) = api.get("/api/v1/namespaces/default/events/web.1").await;
    assert_eq!(s, StatusCode::OK, "{core}");
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "assigned to node-1");
    assert_eq!(core["involvedObject"]["name"], "web");
    assert_eq!(core["reportingComponent"], "skiff.io/scheduler");
    // Each version selects by its own field names, from the watch cache and from the store.
    for source in ["", "&resourceVersion=0"] {
        let select = |path: &str, selector: &str| {
            format!(
                "{path}?fieldSelector={}{source}",
                selector.replace('=', "%3D")
            )
        };
        let v1 = "/apis/events.k8s.io/v1/namespaces/default/events";
        let (s, pods) = api
            .get(&select(
                v1,
                "regarding.kind=Pod,reportingController=skiff.io/scheduler",
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "{pods}");
        assert_eq!(pods["items"][0]["note"], "assigned to node-1", "{pods}");
        let (_, none) = api.get(&select(v1, "regarding.kind=Node")).await;
        assert_eq!(none["items"], json!([]), "{none}");
        let (s, core) = api
            .get(&select(
                "/api/v1/namespaces/default/events",
                "involvedObject.kind=Pod",
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "{core}");
        assert_eq!(core["items"][0]["message"], "assigned to node-1", "{core}");
        let (s, bad) = api.get(&select(v1, "involvedObject.kind=Pod")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            bad["message"],
            "field label not supported: involvedObject.kind"
        );
    }
    let (s, bad) = api
        .post(
            "/apis/events.k8s.io/v1/namespaces/default/events",
            json!({"metadata": {"name": "web.2"}, "reason": "x", "type": "Normal", "regarding": {"kind": "Pod"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(bad["details"]["causes"][0]["field"], "eventTime");
}

#[tokio::test]
async fn system_priority_classes_exist_and_cannot_be_deleted() {
    let api = api().await;
    let pcs = "/apis/scheduling.k8s.io/v1/priorityclasses";
    let (s, pc) = api.get(&format!("{pcs}/system-node-critical")).await;
    assert_eq!(s, StatusCode::OK, "{pc}");
    assert_eq!(pc["value"], 2_000_001_000);
    assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
    let (s, status) = api.delete(&format!("{pcs}/system-cluster-critical")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{status}");
    assert_eq!(
        status["message"],
        "priorityclasses.scheduling.k8s.io \"system-cluster-critical\" is forbidden: this is a system priority class and cannot be deleted"
    );
    let default = |name: &str| {
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": 1000, "globalDefault": true})
    };
    let (s, _) = api.post(pcs, default("high")).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, status) = api.post(pcs, default("higher")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{status}");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .ends_with("PriorityClass high is already marked as default. Only one default can exist"));
}

#[tokio::test]
async fn csr_records_the_requester_and_only_approval_approves() {
    let api = api().await;
    let request = csr_request("jane");
    let csrs = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    let csr = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "jane"},
        "spec": {"request": request, "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"],
            "username": "someone-else"}});
    let (s, created) = api.post(csrs, csr).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["spec"]["username"], "admin");
    // Every authenticated user is in system:authenticated, and the request records it.
    assert_eq!(
        created["spec"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );

    // What `kubectl certificate approve jane` sends.
    let mut approve = created.clone();
    approve["status"]["conditions"] = json!([{"type": "Approved", "status": "True", "reason": "KubectlApprove",
        "message": "This CSR was approved by kubectl certificate approve."}]);
    let (s, via_status) = api
        .put(&format!("{csrs}/jane/status"), approve.clone())
        .await;
    assert_eq!(s, StatusCode::OK, "{via_status}");
    assert!(via_status["status"].get("conditions").is_none());
    approve["metadata"]["resourceVersion"] = via_status["metadata"]["resourceVersion"].clone();
    let (s, approved) = api.put(&format!("{csrs}/jane/approval"), approve).await;
    assert_eq!(s, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"]["conditions"][0]["type"], "Approved");
    assert!(approved["status"]["conditions"][0]["lastUpdateTime"].is_string());
}

#[tokio::test]
async fn metrics_group_is_served_with_no_data_yet() {
    let api = api().await;
    let (s, list) = api.get("/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["kind"], "NodeMetricsList");
    assert_eq!(list["items"], json!([]));
    let (s, list) = api
        .get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods")
        .await;
    assert_eq!(
        (s, list["kind"].as_str()),
        (StatusCode::OK, Some("PodMetricsList"))
    );
    let (s, status) = api.get("/apis/metrics.k8s.io/v1beta1/nodes/node-1").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        status["message"],
        "nodes.metrics.k8s.io \"node-1\" not found"
    );
    let (s, _) = api
        .post(
            "/apis/metrics.k8s.io/v1beta1/nodes",
            json!({"metadata": {"name": "n"}}),
        )
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, group) = api.get("/apis/metrics.k8s.io/v1beta1").await;
    assert_eq!(s, StatusCode::OK);
    let verbs: Vec<&Value> = group["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["verbs"])
        .collect();
    assert_eq!(verbs, [&json!(["get", "list"]), &json!(["get", "list"])]);
}

/// A provider fed by a node shows up in the API.
#[tokio::test]
async fn metrics_come_from_the_provider() {
    use skiff_apiserver::kinds::metrics::{NodeMetrics, PodMetrics};
    use skiff_apiserver::metrics::MetricsProvider;
    struct OneNode;
    impl MetricsProvider for OneNode {
        fn node_metrics(&self) -> Vec<NodeMetrics> {
            vec![
                serde_json::from_value(json!({"metadata": {"name": "node-1"}, "window": "10s",
                "timestamp": "2026-01-01T00:00:00Z", "usage": {"cpu": "250m", "memory": "512Mi"}}))
                .unwrap(),
            ]
        }
        fn pod_metrics(&self, _namespace: Option<&str>) -> Vec<PodMetrics> {
            Vec::new()
        }
    }
    let api = api().await;
    api.state.set_metrics_provider(std::sync::Arc::new(OneNode));
    let (s, node) = api.get("/apis/metrics.k8s.io/v1beta1/nodes/node-1").await;
    assert_eq!(s, StatusCode::OK, "{node}");
    assert_eq!(node["kind"], "NodeMetrics");
    assert_eq!(node["usage"]["cpu"], "250m");
}

#[tokio::test]
async fn pod_priority_comes_from_its_priority_class() {
    let api = api().await;
    let pods = "/api/v1/namespaces/default/pods";
    let pod = |name: &str, class: Option<&str>| {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        if let Some(c) = class {
            p["spec"]["priorityClassName"] = json!(c);
        }
        p
    };
    let (s, plain) = api.post(pods, pod("plain", None)).await;
    assert_eq!(s, StatusCode::CREATED, "{plain}");
    assert_eq!(plain["spec"]["priority"], 0);
    assert_eq!(plain["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    let (s, critical) = api
        .post(pods, pod("critical", Some("system-node-critical")))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{critical}");
    assert_eq!(critical["spec"]["priority"], 2_000_001_000);
    let (s, status) = api.post(pods, pod("lost", Some("nope"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{status}");
    assert_eq!(
        status["message"],
        "pods \"lost\" is forbidden: no PriorityClass with name nope was found"
    );
    let mut forced = pod("forced", Some("system-cluster-critical"));
    forced["spec"]["priority"] = json!(5);
    let (s, status) = api.post(pods, forced).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{status}");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("the integer value of priority (5) must not be provided in pod spec"));
}
