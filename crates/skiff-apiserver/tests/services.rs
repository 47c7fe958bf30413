//! Service ClusterIP and NodePort allocation through the public router over a real SQLite
//! store: what clients see at create, update and delete, uniqueness under concurrent creates,
//! and the `default/kubernetes` Service; Nodes' pod CIDRs, allocated the same way.

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

fn ip_key(ip: &str) -> String {
    format!("/registry/skiff.io/serviceips/{ip}")
}

fn port_key(port: u16) -> String {
    format!("/registry/skiff.io/servicenodeports/{port}")
}

/// Whether an allocation key is reserved, read from the store.
async fn reserved(api: &Api, key: &str) -> bool {
    api.store.get(key).await.unwrap().is_some()
}

/// A create refused by the allocator, by validation after allocating, or made as a dry run
/// leaves nothing reserved, and never frees what another Service holds.
#[tokio::test]
async fn failed_and_dry_run_creates_keep_nothing_reserved() {
    let api = api().await;
    let (s, np) = api
        .post(
            SERVICES,
            service(
                "np",
                json!({"type": "NodePort", "clusterIP": "10.43.0.60", "ports": [{"port": 80, "nodePort": 30100}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{np}");

    // The address is reserved first, then the NodePort is refused: the address goes back.
    let (s, err) = api
        .post(
            SERVICES,
            service(
                "b",
                json!({"type": "NodePort", "clusterIP": "10.43.0.61", "ports": [{"port": 80, "nodePort": 30100}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(!reserved(&api, &ip_key("10.43.0.61")).await);
    assert!(reserved(&api, &port_key(30100)).await, "np keeps its port");
    // Asking for an address another Service holds frees nothing of that Service's.
    let (s, _) = api
        .post(SERVICES, service("c", json!({"clusterIP": "10.43.0.60"})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reserved(&api, &ip_key("10.43.0.60")).await,
        "np keeps its address"
    );

    // Allocation passes, validation does not (two ports, one unnamed): all of it goes back.
    let (s, err) = api
        .post(
            SERVICES,
            service(
                "d",
                json!({"type": "NodePort", "clusterIP": "10.43.0.62",
                    "ports": [{"name": "a", "port": 80, "nodePort": 30101}, {"port": 81}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("spec.ports[1].name: Required value"));
    assert!(!reserved(&api, &ip_key("10.43.0.62")).await);
    assert!(!reserved(&api, &port_key(30101)).await);
    let held = api
        .store
        .list("/registry/skiff.io/servicenodeports/", None, 0, None)
        .await
        .unwrap()
        .items;
    assert_eq!(held.len(), 1, "only np's port: {held:?}");

    // A dry run shows what would be allocated and reserves none of it.
    let (s, dry) = api
        .post(
            &format!("{SERVICES}?dryRun=All"),
            service(
                "e",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30102}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{dry}");
    let ip = dry["spec"]["clusterIP"].as_str().unwrap();
    assert!(ip.starts_with("10.43."), "{dry}");
    assert!(!reserved(&api, &ip_key(ip)).await);
    assert!(!reserved(&api, &port_key(30102)).await);
    // A dry run that would collide is refused and frees nothing either.
    let (s, _) = api
        .post(
            &format!("{SERVICES}?dryRun=All"),
            service("f", json!({"clusterIP": "10.43.0.60"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reserved(&api, &ip_key("10.43.0.60")).await);

    // Everything given back can be had again.
    let (s, again) = api
        .post(
            SERVICES,
            service(
                "d",
                json!({"type": "NodePort", "clusterIP": "10.43.0.62", "ports": [{"port": 80, "nodePort": 30101}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
}

/// An update that fails frees the NodePorts it reserved and nothing the Service held before;
/// a dry-run update reserves nothing.
#[tokio::test]
async fn failed_updates_free_only_what_they_reserved() {
    let api = api().await;
    let (s, other) = api
        .post(
            SERVICES,
            service(
                "other",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30120}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{other}");
    let (s, np) = api
        .post(
            SERVICES,
            service(
                "np",
                json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30110}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{np}");
    let ip = np["spec"]["clusterIP"].as_str().unwrap().to_string();
    let path = format!("{SERVICES}/np");
    let with_ports = |ports: Value| {
        let mut put = np.clone();
        put["spec"]["ports"] = ports;
        put
    };

    // Port b's NodePort is reserved, then validation refuses the changed address.
    let mut put = with_ports(json!([{"name": "a", "port": 80, "nodePort": 30110},
        {"name": "b", "port": 81, "nodePort": 30111}]));
    put["spec"]["clusterIP"] = json!("10.43.0.99");
    put["spec"]["clusterIPs"] = json!(["10.43.0.99"]);
    let (s, err) = api.put(&path, put).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(!reserved(&api, &port_key(30111)).await);
    assert!(reserved(&api, &port_key(30110)).await, "still np's");
    assert!(reserved(&api, &ip_key(&ip)).await, "still np's");

    // Port b's NodePort is reserved, then port c's is another Service's: b's goes back.
    let put = with_ports(json!([{"name": "a", "port": 80, "nodePort": 30110},
        {"name": "b", "port": 81, "nodePort": 30112}, {"name": "c", "port": 82, "nodePort": 30120}]));
    let (s, err) = api.put(&path, put).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(
        err["message"],
        "Service \"np\" is invalid: spec.ports[2].nodePort: Invalid value: 30120: provided port is already allocated"
    );
    assert!(!reserved(&api, &port_key(30112)).await);
    assert!(reserved(&api, &port_key(30120)).await, "still other's");
    assert!(reserved(&api, &port_key(30110)).await, "still np's");

    // A dry run reserves nothing.
    let put = with_ports(json!([{"name": "a", "port": 80, "nodePort": 30110},
        {"name": "b", "port": 81, "nodePort": 30113}]));
    let (s, dry) = api.put(&format!("{path}?dryRun=All"), put).await;
    assert_eq!(s, StatusCode::OK, "{dry}");
    assert_eq!(dry["spec"]["ports"][1]["nodePort"], 30113);
    assert!(!reserved(&api, &port_key(30113)).await);
    assert!(reserved(&api, &port_key(30110)).await);

    // The stored Service is unchanged and still holds its own.
    let (_, now) = api.get(&path).await;
    assert_eq!(now["spec"]["ports"], np["spec"]["ports"]);
    let (s, _) = api
        .post(
            SERVICES,
            service(
                "thief",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30110}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

/// An update that removes the last finalizer deletes the Service: what it held before the
/// update and what the update gave it are all freed.
#[tokio::test]
async fn update_removing_the_last_finalizer_frees_everything() {
    let api = api().await;
    let mut svc = service(
        "fin",
        json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30130},
            {"name": "b", "port": 81, "nodePort": 30131}]}),
    );
    svc["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let (s, created) = api.post(SERVICES, svc).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let ip = created["spec"]["clusterIP"].as_str().unwrap().to_string();
    let path = format!("{SERVICES}/fin");
    let (s, marked) = api.delete(&path).await;
    assert_eq!(s, StatusCode::OK, "{marked}");
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );

    // Port b is dropped and port c added in the same write that lets the Service go.
    let mut put = marked.clone();
    put["metadata"]["finalizers"] = json!([]);
    put["spec"]["ports"] = json!([{"name": "a", "port": 80, "nodePort": 30130},
        {"name": "c", "port": 82, "nodePort": 30132}]);
    let (s, gone) = api.put(&path, put).await;
    assert_eq!(s, StatusCode::OK, "{gone}");
    assert_eq!(api.get(&path).await.0, StatusCode::NOT_FOUND);
    for key in [
        ip_key(&ip),
        port_key(30130),
        port_key(30131),
        port_key(30132),
    ] {
        assert!(!reserved(&api, &key).await, "{key} still reserved");
    }
}

/// Nodes get distinct /24 pod CIDRs from the cluster CIDR (10.42.0.0/16 by default); when all
/// 256 are taken a Node is still admitted, without one (Kubernetes' CIDRNotAvailable), and a
/// deleted Node's CIDR goes to the next Node.
#[tokio::test]
async fn nodes_get_pod_cidrs_and_are_admitted_when_none_is_left() {
    let api = api().await;
    let node = |name: &str| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    let mut seen = HashSet::new();
    for i in 0..256 {
        let (s, n) = api.post("/api/v1/nodes", node(&format!("n{i}"))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}");
        let cidr = n["spec"]["podCIDR"]
            .as_str()
            .expect("a pod CIDR")
            .to_string();
        assert!(
            cidr.starts_with("10.42.") && cidr.ends_with(".0/24"),
            "{cidr}"
        );
        assert_eq!(n["spec"]["podCIDRs"], json!([cidr]));
        assert!(seen.insert(cidr), "pod CIDRs are distinct");
    }
    let (s, full) = api.post("/api/v1/nodes", node("late")).await;
    assert_eq!(s, StatusCode::CREATED, "{full}");
    assert!(full["spec"].get("podCIDR").is_none(), "{full}");
    let (s, gone) = api.delete("/api/v1/nodes/n7").await;
    assert_eq!(s, StatusCode::OK, "{gone}");
    let (s, next) = api.post("/api/v1/nodes", node("next")).await;
    assert_eq!(s, StatusCode::CREATED, "{next}");
    assert_eq!(next["spec"]["podCIDR"], gone["spec"]["podCIDR"], "{next}");
}
