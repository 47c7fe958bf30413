//! The `pods/eviction` subresource against the real router on a temporary SQLite store:
//! budgets allow, refuse (429 with Kubernetes' message) and count evictions; pods that are
//! not running go without a budget check; several budgets are a 500.

mod common;

use common::api;
use http::StatusCode;
use serde_json::{json, Value};

const PODS: &str = "/api/v1/namespaces/default/pods";
const PDBS: &str = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";

/// A pod labelled `app=web`, bound to `node` (so its deletion is graceful), in `phase`.
async fn pod(api: &common::Api, name: &str, phase: &str, ready: bool) -> Value {
    let body = json!({"metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}});
    let (s, created) = api.post(PODS, body).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let mut with_status = created.clone();
    with_status["status"] = json!({"phase": phase, "conditions": [
        {"type": "Ready", "status": if ready { "True" } else { "False" }}]});
    let (s, updated) = api.put(&format!("{PODS}/{name}/status"), with_status).await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    updated
}

/// A budget over `app=web` whose status says `allowed` disruptions (as the disruption
/// controller would write it for `healthy` of `desired`).
async fn budget(api: &common::Api, name: &str, allowed: i64, healthy: i64, desired: i64) {
    let body = json!({"metadata": {"name": name}, "spec": {"minAvailable": desired,
        "selector": {"matchLabels": {"app": "web"}}}});
    let (s, created) = api.post(PDBS, body).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let mut with_status = created.clone();
    with_status["status"] = json!({"observedGeneration": 1, "disruptionsAllowed": allowed,
        "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": healthy});
    let (s, updated) = api.put(&format!("{PDBS}/{name}/status"), with_status).await;
    assert_eq!(s, StatusCode::OK, "{updated}");
}

async fn evict(api: &common::Api, name: &str, extra: Value) -> (StatusCode, Value) {
    let mut body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": "default"}});
    if let Some(m) = extra.as_object() {
        for (k, v) in m {
            body[k] = v.clone();
        }
    }
    api.post(&format!("{PODS}/{name}/eviction"), body).await
}

fn is_terminating(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

#[tokio::test]
async fn discovery_names_the_policy_v1_eviction_subresource() {
    let api = api().await;
    let (s, list) = api.get("/api/v1").await;
    assert_eq!(s, StatusCode::OK);
    let entry = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods/eviction")
        .cloned()
        .expect("pods/eviction listed");
    // kubectl drain evicts only when discovery names the group and version.
    assert_eq!(
        (&entry["group"], &entry["version"], &entry["kind"]),
        (&json!("policy"), &json!("v1"), &json!("Eviction"))
    );
    assert_eq!(entry["verbs"], json!(["create"]));
}

#[tokio::test]
async fn a_budget_with_room_allows_one_eviction_then_refuses_with_429() {
    let api = api().await;
    pod(&api, "a", "Running", true).await;
    pod(&api, "b", "Running", true).await;
    budget(&api, "web", 1, 2, 1).await;

    let (s, status) = evict(&api, "a", json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{status}");
    assert_eq!(status["status"], "Success");
    let (_, a) = api.get(&format!("{PODS}/a")).await;
    assert!(is_terminating(&a), "evicted pod is terminating: {a}");
    let target = a["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DisruptionTarget")
        .cloned()
        .expect("DisruptionTarget condition");
    assert_eq!(target["reason"], "EvictionByEvictionAPI");
    let (_, pdb) = api.get(&format!("{PDBS}/web")).await;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    assert!(pdb["status"]["disruptedPods"]["a"].is_string(), "{pdb}");

    let (s, refused) = evict(&api, "b", json!({})).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{refused}");
    assert_eq!(refused["reason"], "TooManyRequests");
    assert_eq!(
        refused["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(
        refused["details"]["causes"][0]["reason"],
        "DisruptionBudget"
    );
    assert_eq!(
        refused["details"]["causes"][0]["message"],
        "The disruption budget web needs 1 healthy pods and has 2 currently"
    );
    let (_, b) = api.get(&format!("{PODS}/b")).await;
    assert!(!is_terminating(&b), "refused pod stays: {b}");
}

#[tokio::test]
async fn a_budget_not_yet_observed_asks_the_client_to_retry() {
    let api = api().await;
    pod(&api, "a", "Running", true).await;
    budget(&api, "web", 1, 1, 0).await;
    // A spec change the controller has not seen yet (generation 2, observed 1).
    let (s, _, body) = api
        .merge_patch(&format!("{PDBS}/web"), br#"{"spec":{"minAvailable":1}}"#)
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (s, refused) = evict(&api, "a", json!({})).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{refused}");
    assert_eq!(
        refused["details"]["causes"][0]["message"],
        "The disruption budget web is still being processed by the server."
    );
    assert_eq!(refused["details"]["retryAfterSeconds"], 10);
}

#[tokio::test]
async fn pods_that_do_not_run_are_evicted_whatever_the_budget() {
    let api = api().await;
    pod(&api, "done", "Succeeded", false).await;
    pod(&api, "waiting", "Pending", false).await;
    budget(&api, "web", 0, 0, 2).await;
    for name in ["done", "waiting"] {
        let (s, status) = evict(&api, name, json!({})).await;
        assert_eq!(s, StatusCode::CREATED, "{name}: {status}");
    }
    // A finished pod is deleted at once; a pending bound one is marked.
    let (s, _) = api.get(&format!("{PODS}/done")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, waiting) = api.get(&format!("{PODS}/waiting")).await;
    assert!(is_terminating(&waiting));
    let (_, pdb) = api.get(&format!("{PDBS}/web")).await;
    assert!(pdb["status"]["disruptedPods"].is_null(), "{pdb}");
}

#[tokio::test]
async fn an_unready_pod_goes_while_the_budget_is_met_without_using_it_up() {
    let api = api().await;
    pod(&api, "sick", "Running", false).await;
    budget(&api, "web", 0, 2, 2).await;
    let (s, status) = evict(&api, "sick", json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{status}");
    let (_, pdb) = api.get(&format!("{PDBS}/web")).await;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    assert!(pdb["status"]["disruptedPods"].is_null(), "{pdb}");
}

#[tokio::test]
async fn two_budgets_over_one_pod_are_a_server_error() {
    let api = api().await;
    pod(&api, "a", "Running", true).await;
    budget(&api, "one", 1, 1, 0).await;
    budget(&api, "two", 1, 1, 0).await;
    let (s, refused) = evict(&api, "a", json!({})).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{refused}");
    assert_eq!(
        refused["message"],
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
}

#[tokio::test]
async fn delete_options_and_dry_run_are_honoured() {
    let api = api().await;
    let a = pod(&api, "a", "Running", true).await;
    budget(&api, "web", 1, 1, 0).await;
    // A uid precondition that does not match: nothing happens.
    let wrong = json!({"deleteOptions": {"preconditions": {"uid": "not-the-uid"}}});
    let (s, refused) = evict(&api, "a", wrong).await;
    assert_eq!(s, StatusCode::CONFLICT, "{refused}");
    // A dry run checks the budget but changes nothing.
    let dry = json!({"deleteOptions": {"dryRun": ["All"]}});
    let (s, status) = api
        .post(
            &format!("{PODS}/a/eviction?dryRun=All"),
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "a"}, "deleteOptions": dry["deleteOptions"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{status}");
    let (_, pod_now) = api.get(&format!("{PODS}/a")).await;
    assert!(!is_terminating(&pod_now));
    let (_, pdb) = api.get(&format!("{PDBS}/web")).await;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 1);
    // The grace period asked for is the one the pod gets.
    let uid = a["metadata"]["uid"].clone();
    let opts = json!({"deleteOptions": {"gracePeriodSeconds": 7, "preconditions": {"uid": uid}}});
    let (s, status) = evict(&api, "a", opts).await;
    assert_eq!(s, StatusCode::CREATED, "{status}");
    let (_, pod_now) = api.get(&format!("{PODS}/a")).await;
    assert_eq!(pod_now["metadata"]["deletionGracePeriodSeconds"], 7);
}

#[tokio::test]
async fn v1beta1_evictions_are_accepted_and_bad_bodies_refused() {
    let api = api().await;
    pod(&api, "a", "Running", true).await;
    let (s, status) = api
        .post(
            &format!("{PODS}/a/eviction"),
            json!({"apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": "a"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{status}");
    let (s, bad) = api
        .post(
            &format!("{PODS}/a/eviction"),
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad["message"],
        "name in URL does not match name in Eviction object"
    );
    let (s, missing) = evict(&api, "nope", json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{missing}");
    let (s, _) = api.get(&format!("{PODS}/a/eviction")).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}
