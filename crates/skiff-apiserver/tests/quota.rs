//! ResourceQuota and LimitRange admission against the real router on a temporary SQLite
//! store. No controller runs here: tests write the quota status the quota controller would.

mod common;

use common::api;
use http::StatusCode;
use serde_json::{json, Value};

const PODS: &str = "/api/v1/namespaces/default/pods";
const QUOTAS: &str = "/api/v1/namespaces/default/resourcequotas";
const LIMITS: &str = "/api/v1/namespaces/default/limitranges";

/// A quota with `hard`, its status synced as the controller would with `used`.
async fn quota(api: &common::Api, name: &str, hard: Value, used: Value) {
    let (s, created) = api
        .post(
            QUOTAS,
            json!({"metadata": {"name": name}, "spec": {"hard": hard}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let mut synced = created.clone();
    synced["status"] = json!({"hard": hard, "used": used});
    let (s, body) = api.put(&format!("{QUOTAS}/{name}/status"), synced).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

fn pod(name: &str, resources: Value) -> Value {
    json!({"metadata": {"name": name}, "spec": {"containers": [
        {"name": "c", "image": "busybox", "resources": resources}]}})
}

async fn used(api: &common::Api, name: &str) -> Value {
    api.get(&format!("{QUOTAS}/{name}")).await.1["status"]["used"].clone()
}

#[tokio::test]
async fn creates_past_the_quota_are_forbidden_with_kubernetes_message() {
    let api = api().await;
    quota(
        &api,
        "compute",
        json!({"pods": "2", "requests.cpu": "1"}),
        json!({"pods": "0", "requests.cpu": "0"}),
    )
    .await;
    let (s, body) = api
        .post(PODS, pod("a", json!({"requests": {"cpu": "600m"}})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(
        used(&api, "compute").await,
        json!({"pods": "1", "requests.cpu": "600m"})
    );
    let (s, refused) = api
        .post(PODS, pod("b", json!({"requests": {"cpu": "500m"}})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(
        refused["message"],
        "pods \"b\" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=600m, limited: requests.cpu=1"
    );
    let (s, _) = api.get(&format!("{PODS}/b")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing stored");
    // A pod that does not say what CPU it needs cannot be counted against requests.cpu.
    let (s, refused) = api.post(PODS, pod("c", json!({}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(
        refused["message"],
        "pods \"c\" is forbidden: failed quota: compute: must specify requests.cpu for: c"
    );
    // A dry run checks without charging.
    let (s, _) = api
        .post(
            &format!("{PODS}?dryRun=All"),
            pod("d", json!({"requests": {"cpu": "100m"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        used(&api, "compute").await,
        json!({"pods": "1", "requests.cpu": "600m"})
    );
    // An invalid pod is refused by validation before any quota is charged.
    let (s, body) = api
        .post(
            PODS,
            json!({"metadata": {"name": "e"}, "spec": {"containers": []}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        used(&api, "compute").await,
        json!({"pods": "1", "requests.cpu": "600m"})
    );
}

#[tokio::test]
async fn object_counts_cover_configmaps_secrets_and_count_resources() {
    let api = api().await;
    quota(
        &api,
        "objects",
        json!({"configmaps": "1", "count/secrets": "0", "count/deployments.apps": "1"}),
        json!({"configmaps": "0", "count/secrets": "0", "count/deployments.apps": "0"}),
    )
    .await;
    api.configmap("one").await;
    let (s, refused) = api
        .post(common::CONFIGMAPS, json!({"metadata": {"name": "two"}}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        refused["message"],
        "configmaps \"two\" is forbidden: exceeded quota: objects, requested: configmaps=1, used: configmaps=1, limited: configmaps=1"
    );
    let (s, refused) = api
        .post(
            "/api/v1/namespaces/default/secrets",
            json!({"metadata": {"name": "s"}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
    let (s, _) = api
        .post(common::DEPLOYMENTS, common::deployment("web", 1))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, refused) = api
        .post(common::DEPLOYMENTS, common::deployment("api", 1))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .starts_with("deployments.apps \"api\" is forbidden: exceeded quota: objects"));
}

#[tokio::test]
async fn racing_creates_cannot_both_take_the_last_unit() {
    let api = std::sync::Arc::new(api().await);
    quota(&api, "one-pod", json!({"pods": "1"}), json!({"pods": "0"})).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move { api.post(PODS, pod(&format!("p{i}"), json!({}))).await.0 })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        let s = t.await.unwrap();
        assert!(
            matches!(s, StatusCode::CREATED | StatusCode::FORBIDDEN),
            "{s}"
        );
        created += usize::from(s == StatusCode::CREATED);
    }
    assert_eq!(created, 1);
    assert_eq!(used(&api, "one-pod").await, json!({"pods": "1"}));
}

#[tokio::test]
async fn invalid_quota_amounts_are_422_and_nothing_is_stored() {
    let api = api().await;
    let (s, status) = api
        .post(
            QUOTAS,
            json!({"metadata": {"name": "bad"}, "spec": {"hard": {"pods": "many", "requests.memory": "-1Gi"}}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["details"]["causes"][0]["field"], "spec.hard[pods]");
    assert_eq!(
        status["details"]["causes"][1]["message"],
        "Invalid value: \"-1Gi\": must be greater than or equal to 0"
    );
    let (s, _) = api.get(&format!("{QUOTAS}/bad")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn limit_ranges_default_containers_and_enforce_bounds() {
    let api = api().await;
    let (s, lr) = api
        .post(
            LIMITS,
            json!({"metadata": {"name": "limits"}, "spec": {"limits": [
                {"type": "Container", "max": {"cpu": "1"}, "default": {"cpu": "500m", "memory": "64Mi"}, "defaultRequest": {"cpu": "100m"}},
                {"type": "PersistentVolumeClaim", "max": {"storage": "1Gi"}}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{lr}");
    // Defaulting of the LimitRange itself: the default request of memory follows its default.
    assert_eq!(lr["spec"]["limits"][0]["defaultRequest"]["memory"], "64Mi");
    let (s, created) = api.post(PODS, pod("a", json!({}))).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "64Mi"}})
    );
    assert_eq!(
        created["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"
    );
    let (s, refused) = api
        .post(PODS, pod("big", json!({"limits": {"cpu": "2"}})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(
        refused["message"],
        "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
    );
    let claim = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "2Gi"}}}});
    let (s, refused) = api
        .post("/api/v1/namespaces/default/persistentvolumeclaims", claim)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(
        refused["message"],
        "persistentvolumeclaims \"data\" is forbidden: maximum storage usage per PersistentVolumeClaim is 1Gi, but request is 2Gi"
    );
}

#[tokio::test]
async fn reads_of_pod_admission_come_from_the_watch_cache() {
    let counting = std::sync::OnceLock::new();
    let api = common::api_over(|store| {
        let c = common::counting::CountingStore::new(store);
        counting.set(c.clone()).ok();
        c
    })
    .await;
    let store = counting.get().unwrap();
    quota(
        &api,
        "compute",
        json!({"pods": "10", "requests.cpu": "2"}),
        json!({"pods": "0", "requests.cpu": "0"}),
    )
    .await;
    let (s, body) = api
        .post(
            LIMITS,
            json!({"metadata": {"name": "defaults"}, "spec": {"limits": [
                {"type": "Container", "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    // The first pod makes the caches (one list each); the next ones read none.
    let (s, body) = api.post(PODS, pod("first", json!({}))).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let before = store.reads().len();
    for i in 0..4 {
        let (s, body) = api.post(PODS, pod(&format!("p{i}"), json!({}))).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        assert_eq!(
            body["spec"]["containers"][0]["resources"]["requests"]["cpu"], "100m",
            "the LimitRange's default is applied"
        );
    }
    // What is left is the namespace's existence, which the server's own namespace cache
    // answers (it does not run in this harness).
    let reads = store.reads().split_off(before);
    assert!(
        reads
            .iter()
            .all(|k| k == "/registry/core/namespaces/default"),
        "pod creates read ServiceAccount, LimitRanges and quotas from the cache: {reads:?}"
    );
    assert_eq!(
        used(&api, "compute").await,
        json!({"pods": "5", "requests.cpu": "500m"})
    );
    // A quota written a moment ago applies at once (the cached read is consistent).
    let (s, q) = api.get(&format!("{QUOTAS}/compute")).await;
    assert_eq!(s, StatusCode::OK);
    let mut tight = q.clone();
    tight["status"]["hard"]["pods"] = json!("5");
    let (s, body) = api.put(&format!("{QUOTAS}/compute/status"), tight).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, refused) = api.post(PODS, pod("over", json!({}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("exceeded quota: compute, requested: pods=1, used: pods=5, limited: pods=5"),
        "{refused}"
    );
}

#[tokio::test]
async fn scoped_quotas_count_only_the_pods_they_select() {
    let api = api().await;
    let (s, pc) = api
        .post(
            "/apis/scheduling.k8s.io/v1/priorityclasses",
            json!({"metadata": {"name": "high"}, "value": 1000}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{pc}");
    // `kubectl create quota best-effort --hard=pods=1 --scopes=BestEffort`
    let (s, q) = api
        .post(
            QUOTAS,
            json!({"metadata": {"name": "best-effort"}, "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{q}");
    let mut synced = q.clone();
    synced["status"] = json!({"hard": {"pods": "1"}, "used": {"pods": "0"}});
    let (s, body) = api
        .put(&format!("{QUOTAS}/best-effort/status"), synced)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, q) = api
        .post(
            QUOTAS,
            json!({"metadata": {"name": "high"}, "spec": {"hard": {"pods": "1", "requests.cpu": "1"},
                "scopeSelector": {"matchExpressions": [
                    {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{q}");
    let mut synced = q.clone();
    synced["status"] = json!({"hard": {"pods": "1", "requests.cpu": "1"}, "used": {"pods": "0", "requests.cpu": "0"}});
    let (s, body) = api.put(&format!("{QUOTAS}/high/status"), synced).await;
    assert_eq!(s, StatusCode::OK, "{body}");

    let sized = json!({"requests": {"cpu": "100m"}});
    let high = |name: &str| {
        let mut p = pod(name, sized.clone());
        p["spec"]["priorityClassName"] = json!("high");
        p
    };
    // A best-effort pod counts against the BestEffort quota only.
    let (s, body) = api.post(PODS, pod("be-1", json!({}))).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, refused) = api.post(PODS, pod("be-2", json!({}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(
        refused["message"],
        "pods \"be-2\" is forbidden: exceeded quota: best-effort, requested: pods=1, used: pods=1, limited: pods=1"
    );
    // Pods with requests and no class are tracked by neither.
    for name in ["plain-1", "plain-2"] {
        let (s, body) = api.post(PODS, pod(name, sized.clone())).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    // Pods of class `high` count against the selector's quota.
    let (s, body) = api.post(PODS, high("high-1")).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, refused) = api.post(PODS, high("high-2")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("exceeded quota: high, requested: pods=1, used: pods=1, limited: pods=1"),
        "{refused}"
    );
    assert_eq!(used(&api, "best-effort").await, json!({"pods": "1"}));
    assert_eq!(
        used(&api, "high").await,
        json!({"pods": "1", "requests.cpu": "100m"})
    );

    // Conflicting scopes are refused, and nothing is stored.
    let (s, status) = api
        .post(
            QUOTAS,
            json!({"metadata": {"name": "both"}, "spec": {"hard": {"pods": "1"},
                "scopes": ["Terminating", "NotTerminating"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{status}");
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "Invalid value: []core.ResourceQuotaScope{\"Terminating\", \"NotTerminating\"}: conflicting scopes"
    );
    let (s, _) = api.get(&format!("{QUOTAS}/both")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_under_quotas_are_charged_together_without_conflicts() {
    let api = std::sync::Arc::new(api().await);
    quota(&api, "count", json!({"pods": "100"}), json!({"pods": "0"})).await;
    quota(
        &api,
        "compute",
        json!({"requests.cpu": "10"}),
        json!({"requests.cpu": "0"}),
    )
    .await;
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                api.post(
                    PODS,
                    pod(&format!("p{i}"), json!({"requests": {"cpu": "100m"}})),
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        let (s, body) = t.await.unwrap();
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    assert_eq!(used(&api, "count").await, json!({"pods": "24"}));
    assert_eq!(
        used(&api, "compute").await,
        json!({"requests.cpu": "2400m"})
    );
}
