//! The Endpoints and EndpointSlice controllers against the real API server. Pods get their
//! addresses and readiness from status writes, as a kubelet would give them.

mod common;

use common::{start, until, Cluster};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::{json, Value};

async fn pod(c: &Cluster, name: &str, ip: Option<&str>, ready: bool) {
    let pods: Api<Pod> = c.api();
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "ports": [{"name": "web", "containerPort": 8080}]}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    if let Some(ip) = ip {
        let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }
}

async fn service(c: &Cluster, name: &str, selector: Option<Value>) {
    let svcs: Api<Service> = c.api();
    let mut spec = json!({"ports": [{"name": "http", "port": 80, "targetPort": "web"}]});
    if let Some(s) = selector {
        spec["selector"] = s;
    }
    let svc: Service =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    svcs.create(&PostParams::default(), &svc).await.unwrap();
}

fn ips(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["ip"].as_str().unwrap().to_string())
        .collect()
}

async fn slice_of(c: &Cluster, svc: &str) -> Option<EndpointSlice> {
    let slices: Api<EndpointSlice> = c.api();
    let mut l = slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
        .await
        .unwrap()
        .items;
    assert!(l.len() <= 1, "one slice per port set: {l:?}");
    l.pop()
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_and_not_ready_pods_become_endpoints_with_resolved_ports() {
    let c = start().await;
    pod(&c, "a", Some("10.42.0.5"), true).await;
    pod(&c, "b", Some("10.42.0.6"), false).await;
    pod(&c, "no-ip", None, false).await;
    service(&c, "web", Some(json!({"app": "web"}))).await;
    let eps: Api<Endpoints> = c.api();
    let subset = until("Endpoints list both pods with an address", || async {
        let ep = eps.get_opt("web").await.unwrap()?;
        let s = serde_json::to_value(ep.subsets?.first()?).unwrap();
        (ips(&s, "addresses") == ["10.42.0.5"] && ips(&s, "notReadyAddresses") == ["10.42.0.6"])
            .then_some(s)
    })
    .await;
    assert_eq!(
        subset["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(subset["addresses"][0]["targetRef"]["name"], "a");

    let slice = until("the EndpointSlice lists both pods", || async {
        let s = slice_of(&c, "web").await?;
        (s.endpoints.len() == 2).then_some(s)
    })
    .await;
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(
        slice.metadata.labels.as_ref().unwrap()["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    let ready: Vec<(String, Option<bool>)> = slice
        .endpoints
        .iter()
        .map(|e| (e.addresses[0].clone(), e.conditions.as_ref().unwrap().ready))
        .collect();
    assert_eq!(
        ready,
        [
            ("10.42.0.5".into(), Some(true)),
            ("10.42.0.6".into(), Some(false))
        ]
    );
    assert_eq!(slice.ports.as_ref().unwrap()[0].port, Some(8080));
    assert_eq!(
        slice.ports.as_ref().unwrap()[0].name.as_deref(),
        Some("http")
    );

    // An unnamed Service port: the slice names it "" (kubectl describe reads the name), the
    // v1 Endpoints leave the name out, both as upstream's controllers write them.
    let svcs: Api<Service> = c.api();
    let unnamed: Service = serde_json::from_value(json!({"metadata": {"name": "plain"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 81, "targetPort": 8080}]}}))
    .unwrap();
    svcs.create(&PostParams::default(), &unnamed).await.unwrap();
    let plain = until("the unnamed port's slice", || async {
        let s = slice_of(&c, "plain").await?;
        (s.endpoints.len() == 2).then_some(s)
    })
    .await;
    let port = &plain.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some(""), Some(8080)));
    let plain_eps = until("the unnamed port's Endpoints", || async {
        let ep = eps.get_opt("plain").await.unwrap()?;
        Some(serde_json::to_value(ep.subsets?.first()?).unwrap())
    })
    .await;
    assert_eq!(
        plain_eps["ports"],
        json!([{"port": 8080, "protocol": "TCP"}])
    );

    // The ready pod goes away: only the other remains.
    let pods: Api<Pod> = c.api();
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    until(
        "the deleted pod leaves the Endpoints and the slice",
        || async {
            let ep = eps.get("web").await.unwrap();
            let s = serde_json::to_value(ep.subsets?.first()?).unwrap();
            let slice = slice_of(&c, "web").await?;
            (ips(&s, "addresses").is_empty()
                && ips(&s, "notReadyAddresses") == ["10.42.0.6"]
                && slice.endpoints.len() == 1)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn services_without_selector_are_left_alone_and_deleted_services_take_theirs_along() {
    let c = start().await;
    pod(&c, "a", Some("10.42.0.5"), true).await;
    service(&c, "manual", None).await;
    service(&c, "web", Some(json!({"app": "web"}))).await;
    let eps: Api<Endpoints> = c.api();
    until("the selected service has its endpoints", || async {
        let s = slice_of(&c, "web").await?;
        (eps.get_opt("web").await.unwrap().is_some() && !s.endpoints.is_empty()).then_some(())
    })
    .await;
    assert!(
        eps.get_opt("manual").await.unwrap().is_none(),
        "no Endpoints for a Service without selector"
    );
    assert!(slice_of(&c, "manual").await.is_none());
    let svcs: Api<Service> = c.api();
    svcs.delete("web", &DeleteParams::default()).await.unwrap();
    until("its Endpoints and slice are collected", || async {
        (eps.get_opt("web").await.unwrap().is_none() && slice_of(&c, "web").await.is_none())
            .then_some(())
    })
    .await;
}
