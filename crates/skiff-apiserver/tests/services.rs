//! Service ClusterIP and NodePort allocation through the public router over a real SQLite
//! store: what clients see at create, update and delete, uniqueness under concurrent creates,
//! and the `default/kubernetes` Service.

mod common;

use std::collections::HashSet;

use common::*;
use http::StatusCode;
use serde_json::{json, Value};

const SERVICES: &str = "/api/v1/namespaces/default/services";

fn service(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    if spec.get("ports").is_none() {
        spec["ports"] = json!([{"port": 80}]);
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

#[tokio::test]
async fn created_services_get_cluster_ips_and_status() {
    let api = api().await;
    let (s, svc) = api.post(SERVICES, service("web", json!({}))).await;
    assert_eq!(s, StatusCode::CREATED, "{svc}");
    let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.43."), "{ip}");
    assert_ne!(ip, "10.43.0.1");
    assert_eq!(svc["spec"]["clusterIPs"], json!([ip]));
    assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(svc["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(svc["status"], json!({"loadBalancer": {}}));

    // A requested address is honoured, and then refused to anyone else.
    let (s, fixed) = api
        .post(
            SERVICES,
            service("fixed", json!({"clusterIP": "10.43.0.50"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{fixed}");
    assert_eq!(fixed["spec"]["clusterIPs"], json!(["10.43.0.50"]));
    let (s, err) = api
        .post(
            SERVICES,
            service("again", json!({"clusterIP": "10.43.0.50"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(
        err["message"],
        "Service \"again\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.43.0.50\"}: failed to allocate IP 10.43.0.50: provided IP is already allocated"
    );
    let (s, err) = api
        .post(SERVICES, service("far", json!({"clusterIP": "10.99.0.1"})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(err["message"].as_str().unwrap().ends_with(
        "provided IP (10.99.0.1) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
    ));
    assert_eq!(
        api.get(&format!("{SERVICES}/again")).await.0,
        StatusCode::NOT_FOUND
    );

    // Deleting frees the address.
    let (s, _) = api.delete(&format!("{SERVICES}/fixed")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, reused) = api
        .post(
            SERVICES,
            service("again", json!({"clusterIP": "10.43.0.50"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{reused}");

    // Headless and ExternalName Services get no address.
    let (_, headless) = api
        .post(SERVICES, service("db", json!({"clusterIP": "None"})))
        .await;
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    let (s, ext) = api
        .post(
            SERVICES,
            service(
                "ext",
                json!({"type": "ExternalName", "externalName": "example.com"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ext}");
    assert!(ext["spec"].get("clusterIP").is_none(), "{ext}");
}

#[tokio::test]
async fn node_ports_are_allocated_kept_and_freed() {
    let api = api().await;
    let (s, svc) = api
        .post(
            SERVICES,
            service(
                "np",
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30080}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{svc}");
    let first = svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&first), "{first}");
    assert_eq!(svc["spec"]["ports"][1]["nodePort"], 30080);

    let (s, err) = api
        .post(
            SERVICES,
            service(
                "np2",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(
        err["message"],
        "Service \"np2\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    let (s, err) = api
        .post(
            SERVICES,
            service(
                "np3",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(err["message"].as_str().unwrap().ends_with(
        "provided port is not in the valid range. The range of valid ports is 30000-32767"
    ));

    // An update that leaves out the allocated values keeps them.
    let mut put = svc.clone();
    put["spec"].as_object_mut().unwrap().remove("clusterIP");
    put["spec"].as_object_mut().unwrap().remove("clusterIPs");
    put["spec"]["ports"] = json!([{"name": "a", "port": 80}]);
    let (s, updated) = api.put(&format!("{SERVICES}/np"), put).await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(updated["spec"]["clusterIP"], svc["spec"]["clusterIP"]);
    assert_eq!(updated["spec"]["ports"][0]["nodePort"], first);
    // Port b went away, so 30080 is free again.
    let (s, np2) = api
        .post(
            SERVICES,
            service(
                "np2",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{np2}");
}

#[tokio::test]
async fn concurrent_creates_get_distinct_addresses() {
    let api = api().await;
    let creates = (0..40).map(|i| {
        api.post(
            SERVICES,
            service(&format!("s{i}"), json!({"type": "NodePort"})),
        )
    });
    let results = futures::future::join_all(creates).await;
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for (s, svc) in results {
        assert_eq!(s, StatusCode::CREATED, "{svc}");
        assert!(ips.insert(svc["spec"]["clusterIP"].as_str().unwrap().to_string()));
        assert!(ports.insert(svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap()));
    }
}

#[tokio::test]
async fn default_kubernetes_service_exists() {
    let api = api().await;
    let (s, svc) = api.get(&format!("{SERVICES}/kubernetes")).await;
    assert_eq!(s, StatusCode::OK, "{svc}");
    assert_eq!(svc["spec"]["clusterIP"], "10.43.0.1");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
    );
    // Nobody else gets its address.
    let (s, _) = api
        .post(
            SERVICES,
            service("thief", json!({"clusterIP": "10.43.0.1"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

/// A Service removed behind the allocator's back (as the namespace cleaner removes through
/// the store) leaves its address reserved until repair frees it.
#[tokio::test]
async fn repair_frees_addresses_nobody_holds() {
    let api = api().await;
    let (_, svc) = api
        .post(
            SERVICES,
            service("lost", json!({"clusterIP": "10.43.0.77"})),
        )
        .await;
    assert_eq!(svc["spec"]["clusterIP"], "10.43.0.77");
    api.store
        .delete("/registry/core/services/default/lost", None)
        .await
        .unwrap();
    // Young allocations are left alone: a create may be between reserving and storing.
    assert_eq!(
        skiff_apiserver::services::repair(&api.state).await.unwrap(),
        0
    );
    // Age the reservation past the grace period.
    let key = "/registry/skiff.io/serviceips/10.43.0.77";
    let kv = api.store.get(key).await.unwrap().unwrap();
    let mut holder: Value = serde_json::from_slice(&kv.value).unwrap();
    holder["time"] = json!("2020-01-01T00:00:00Z");
    api.store
        .update(key, serde_json::to_vec(&holder).unwrap(), kv.mod_revision)
        .await
        .unwrap();
    assert_eq!(
        skiff_apiserver::services::repair(&api.state).await.unwrap(),
        1
    );
    let (s, _) = api
        .post(
            SERVICES,
            service("found", json!({"clusterIP": "10.43.0.77"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
}
