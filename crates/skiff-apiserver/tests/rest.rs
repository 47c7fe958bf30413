//! The REST surface through the public router, over a real SQLite store (no TLS): what a
//! Kubernetes client sees for each verb.

mod common;

use axum::body::Body;
use common::*;
use http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

#[tokio::test]
async fn unauthenticated_requests_get_401_status() {
    let api = api().await;
    let req = Request::builder()
        .uri("/api/v1/namespaces")
        .body(Body::empty())
        .unwrap();
    let resp = api.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Unauthorized");
}

#[tokio::test]
async fn default_namespaces_and_service_accounts_exist() {
    let api = api().await;
    let (s, list) = api.get("/api/v1/namespaces").await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let (s, sa) = api
        .get("/api/v1/namespaces/kube-system/serviceaccounts/default")
        .await;
    assert_eq!(s, StatusCode::OK, "{sa}");
}

#[tokio::test]
async fn create_get_update_bumps_generation_only_on_spec_change() {
    let api = api().await;
    let (s, created) = api.post(DEPLOYMENTS, deployment("web", 1)).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["metadata"]["uid"].as_str().unwrap().len(), 36);
    let (s, _) = api.post(DEPLOYMENTS, deployment("web", 1)).await;
    assert_eq!(s, StatusCode::CONFLICT);

    let mut status_write = created.clone();
    status_write["status"] = json!({"replicas": 1, "readyReplicas": 1});
    let (s, after_status) = api
        .put(
            "/apis/apps/v1/namespaces/default/deployments/web/status",
            status_write,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{after_status}");
    assert_eq!(after_status["metadata"]["generation"], 1);
    assert_eq!(after_status["status"]["readyReplicas"], 1);

    // A stale resourceVersion is a conflict.
    let mut stale = created.clone();
    stale["spec"]["replicas"] = json!(5);
    let (s, e) = api
        .put("/apis/apps/v1/namespaces/default/deployments/web", stale)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");

    let mut fresh = after_status.clone();
    fresh["spec"]["replicas"] = json!(5);
    fresh["status"] = json!({});
    let (s, updated) = api
        .put("/apis/apps/v1/namespaces/default/deployments/web", fresh)
        .await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(updated["metadata"]["generation"], 2);
    assert_eq!(
        updated["status"]["readyReplicas"], 1,
        "a main-resource PUT keeps status"
    );
}

#[tokio::test]
async fn create_in_missing_namespace_is_404_and_nothing_is_stored() {
    let api = api().await;
    let (s, e) = api
        .post(
            "/apis/apps/v1/namespaces/nope/deployments",
            deployment("web", 1),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (_, list) = api.get("/apis/apps/v1/deployments").await;
    assert!(list["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn rejects_garbage_and_oversized_bodies() {
    let api = api().await;
    let (s, _, _) = api
        .send(
            "POST",
            CONFIGMAPS,
            "application/json",
            "application/json",
            b"{oops".to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let big = vec![b' '; 3 * 1024 * 1024 + 10];
    let (s, _, _) = api
        .send(
            "POST",
            CONFIGMAPS,
            "application/json",
            "application/json",
            big,
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let api = api().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let (s, _) = api
        .post("/api/v1/namespaces/default/configmaps?dryRun=All", cm)
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = api.get("/api/v1/namespaces/default/configmaps/c").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn list_selectors_and_pagination() {
    let api = api().await;
    for (i, tier) in ["front", "back", "front", "db"].iter().enumerate() {
        let cm = json!({"metadata": {"name": format!("c{i}"), "labels": {"tier": tier}}});
        let (s, _) = api.post(CONFIGMAPS, cm).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (_, l) = api
        .get("/api/v1/namespaces/default/configmaps?labelSelector=tier%20in%20(front,db)")
        .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 3);
    let (_, l) = api
        .get("/api/v1/configmaps?fieldSelector=metadata.name%3Dc1")
        .await;
    assert_eq!(l["items"][0]["metadata"]["name"], "c1");

    let (_, p1) = api
        .get("/api/v1/namespaces/default/configmaps?limit=3")
        .await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 3);
    let token = p1["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_string();
    let (_, p2) = api
        .get(&format!(
            "/api/v1/namespaces/default/configmaps?limit=3&continue={token}"
        ))
        .await;
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    assert!(p2["metadata"].get("continue").is_none());
    assert_eq!(
        p1["metadata"]["resourceVersion"],
        p2["metadata"]["resourceVersion"]
    );
}

/// Lists are read from the store a page at a time and written from the stored JSON: an
/// unpaginated list longer than a page must still hold every object, each exactly as a GET
/// returns it, and a limited one must stop at its limit.
#[tokio::test]
async fn list_over_many_store_pages_is_complete_and_matches_get() {
    let api = api().await;
    let n = 1_100;
    for i in 0..n {
        let cm = json!({"metadata": {"name": format!("cm-{i:04}"), "labels": {"i": i.to_string()}}, "data": {"k": "v"}});
        let (s, body) = api.post(CONFIGMAPS, cm).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let (s, all) = api.get(CONFIGMAPS).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (all["kind"].as_str(), all["apiVersion"].as_str()),
        (Some("ConfigMapList"), Some("v1"))
    );
    let items = all["items"].as_array().unwrap();
    let names: Vec<&str> = items
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..n).map(|i| format!("cm-{i:04}")).collect();
    assert_eq!(names, expected, "every object once, in key order");
    assert!(all["metadata"].get("continue").is_none());
    for i in [0, 499, 500, 1_099] {
        let (_, one) = api.get(&format!("{CONFIGMAPS}/cm-{i:04}")).await;
        assert_eq!(items[i], one, "list item and GET of cm-{i:04}");
        assert_eq!(
            (one["kind"].as_str(), one["apiVersion"].as_str()),
            (Some("ConfigMap"), Some("v1"))
        );
        assert!(one["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| !rv.is_empty()));
    }
    let (_, page) = api.get(&format!("{CONFIGMAPS}?limit=700")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 700);
    assert!(page["metadata"]["continue"].is_string());
    let (_, picked) = api
        .get(&format!("{CONFIGMAPS}?labelSelector=i%3D1042"))
        .await;
    assert_eq!(picked["items"][0]["metadata"]["name"], "cm-1042");
    assert_eq!(picked["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn scale_subresource_reads_and_writes_replicas() {
    let api = api().await;
    api.post(DEPLOYMENTS, deployment("web", 2)).await;
    let (s, scale) = api
        .get("/apis/apps/v1/namespaces/default/deployments/web/scale")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=web");
    let (s, _, body) = api
        .merge_patch(
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
            br#"{"spec":{"replicas":4}}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (_, d) = api
        .get("/apis/apps/v1/namespaces/default/deployments/web")
        .await;
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["metadata"]["generation"], 2);
}

#[tokio::test]
async fn finalizers_delay_deletion_until_removed() {
    let api = api().await;
    let cm = json!({"metadata": {"name": "f", "finalizers": ["example.com/hold"]}});
    api.post(CONFIGMAPS, cm).await;
    let (s, d) = api.delete("/api/v1/namespaces/default/configmaps/f").await;
    assert_eq!(s, StatusCode::OK);
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    let (s, _) = api.get("/api/v1/namespaces/default/configmaps/f").await;
    assert_eq!(s, StatusCode::OK, "still there while finalizers remain");
    let (s, _, _) = api
        .merge_patch(
            "/api/v1/namespaces/default/configmaps/f",
            br#"{"metadata":{"finalizers":null}}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api.get("/api/v1/namespaces/default/configmaps/f").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn table_output_has_kubectl_columns() {
    let api = api().await;
    api.post(DEPLOYMENTS, deployment("web", 3)).await;
    let (s, _, body) = api
        .send(
            "GET",
            DEPLOYMENTS,
            "application/json",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            vec![],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let t: Value = serde_json::from_slice(&body).unwrap();
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        vec![
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(t["rows"][0]["cells"][1], "0/3");
}

#[tokio::test]
async fn aggregated_discovery_is_served_when_asked() {
    let api = api().await;
    let accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let (s, h, body) = api.send("GET", "/apis", "", accept, vec![]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .contains("as=APIGroupDiscoveryList"));
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["kind"], "APIGroupDiscoveryList");
    let (_, _, body) = api
        .send("GET", "/apis", "", "application/json", vec![])
        .await;
    let plain: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(plain["kind"], "APIGroupList");
}

#[tokio::test]
async fn field_validation_strict_rejects_and_warn_warns() {
    let api = api().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "v"}, "data": {}, "bogus": 1});
    let body = serde_json::to_vec(&cm).unwrap();
    let (s, _, b) = api
        .send(
            "POST",
            "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
            "application/json",
            "application/json",
            body.clone(),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&b)
    );
    let status: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        status["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"bogus\""
    );
    let (s, h, _) = api
        .send(
            "POST",
            "/api/v1/namespaces/default/configmaps?fieldValidation=Warn",
            "application/json",
            "application/json",
            body,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        h["warning"].to_str().unwrap(),
        r#"299 - "unknown field \"bogus\"""#
    );
}

#[tokio::test]
async fn secrets_are_stored_encrypted() {
    let api = api().await;
    let secret =
        json!({"metadata": {"name": "s"}, "stringData": {"password": "plain-text-password"}});
    let (s, created) = api.post("/api/v1/namespaces/default/secrets", secret).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["data"]["password"], "cGxhaW4tdGV4dC1wYXNzd29yZA==");
    let raw = api
        .store
        .get("/registry/core/secrets/default/s")
        .await
        .unwrap()
        .unwrap();
    assert!(!String::from_utf8_lossy(&raw.value).contains("cGxhaW4tdGV4dC1wYXNzd29yZA"));
    let (_, got) = api.get("/api/v1/namespaces/default/secrets/s").await;
    assert_eq!(got["data"]["password"], "cGxhaW4tdGV4dC1wYXNzd29yZA==");
    assert!(api.dir.path().join("encryption.key").exists());
}

#[tokio::test]
async fn delete_collection_honours_label_selector() {
    let api = api().await;
    for (n, l) in [("x1", "a"), ("x2", "a"), ("y", "b")] {
        api.post(
            CONFIGMAPS,
            json!({"metadata": {"name": n, "labels": {"g": l}}}),
        )
        .await;
    }
    let (s, _) = api
        .delete("/api/v1/namespaces/default/configmaps?labelSelector=g%3Da")
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, l) = api.get(CONFIGMAPS).await;
    let names: Vec<&str> = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["y"]);
}

#[tokio::test]
async fn hpa_served_in_both_versions_from_one_object() {
    let api = api().await;
    let hpa = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 3, "targetCPUUtilizationPercentage": 70}});
    let (s, created) = api
        .post(
            "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers",
            hpa,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["apiVersion"], "autoscaling/v1");
    let (_, v2) = api
        .get("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/h")
        .await;
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        70
    );
}

#[tokio::test]
async fn in_process_router_needs_no_credentials() {
    let api = api().await;
    let state = api.state.clone();
    // The identity in-process components run as (RBAC applies to it like to anyone).
    let user = skiff_apiserver::auth::component("system:kube-scheduler");
    let app = skiff_apiserver::in_process_router(state, user);
    let req = Request::builder()
        .uri("/api/v1/namespaces/default")
        .body(Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn verbs_on_the_wrong_path_are_405() {
    let api = api().await;
    let cm = json!({"metadata": {"name": "c"}});
    let (s, e) = api
        .post("/api/v1/namespaces/default/configmaps/c", cm)
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{e}");
    let (s, _) = api.put(CONFIGMAPS, json!({})).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, _) = api.get("/api/v1/namespaces/default/widgets").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn system_namespaces_may_not_be_deleted() {
    let api = api().await;
    for ns in ["default", "kube-system", "kube-public"] {
        let (s, status) = api.delete(&format!("/api/v1/namespaces/{ns}")).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{status}");
        assert_eq!(
            status["message"],
            format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted")
        );
        assert_eq!(status["details"], json!({"name": ns, "kind": "namespaces"}));
        let (s, got) = api.get(&format!("/api/v1/namespaces/{ns}")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(got["metadata"].get("deletionTimestamp").is_none(), "{got}");
    }
}

#[tokio::test]
async fn terminating_namespace_refuses_new_objects() {
    let api = api().await;
    let (s, _) = api
        .post(
            "/api/v1/namespaces",
            json!({"metadata": {"name": "doomed"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // No namespace controller runs here, so the namespace stays Terminating.
    let (s, ns) = api.delete("/api/v1/namespaces/doomed").await;
    assert_eq!(s, StatusCode::OK, "{ns}");
    assert_eq!(ns["status"]["phase"], "Terminating");
    let (s, status) = api
        .post(
            "/api/v1/namespaces/doomed/configmaps",
            json!({"metadata": {"name": "late"}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{status}");
    assert_eq!(
        status["message"],
        "configmaps \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "NamespaceTerminating", "message": "namespace doomed is being terminated",
            "field": "metadata.namespace"}])
    );
}

/// Kubernetes' protobuf envelope around `msg`.
fn protobuf(api_version: &str, kind: &str, msg: &impl prost::Message) -> Vec<u8> {
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(msg.encode_to_vec()),
        content_encoding: None,
        content_type: None,
    };
    [&b"k8s\0"[..], &prost::Message::encode_to_vec(&unknown)].concat()
}

#[tokio::test]
async fn protobuf_scale_and_delete_options_bodies() {
    use k8s_pb::api::autoscaling::v1::{Scale, ScaleSpec};
    use k8s_pb::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta, Preconditions};
    const PB: &str = "application/vnd.kubernetes.protobuf";
    let api = api().await;
    api.post(DEPLOYMENTS, deployment("web", 1)).await;
    let scale = Scale {
        metadata: Some(ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        }),
        spec: Some(ScaleSpec { replicas: Some(4) }),
        status: None,
    };
    let path = format!("{DEPLOYMENTS}/web");
    let (s, _, body) = api
        .send(
            "PUT",
            &format!("{path}/scale"),
            PB,
            "application/json",
            protobuf("autoscaling/v1", "Scale", &scale),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(api.get(&path).await.1["spec"]["replicas"], 4);

    // A precondition that does not hold is honoured, so the options were read.
    let stale = DeleteOptions {
        preconditions: Some(Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let (s, _, _) = api
        .send(
            "DELETE",
            &path,
            PB,
            "application/json",
            protobuf("meta.k8s.io/v1", "DeleteOptions", &stale),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let opts = DeleteOptions {
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    let (s, _, body) = api
        .send(
            "DELETE",
            &path,
            PB,
            "application/json",
            protobuf("apps/v1", "DeleteOptions", &opts),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(api.get(&path).await.0, StatusCode::NOT_FOUND);

    // A kind without a protobuf form here is 415, not 400.
    let (s, _, _) = api
        .send(
            "POST",
            CONFIGMAPS,
            PB,
            "application/json",
            protobuf("example.com/v1", "Widget", &opts),
        )
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
