//! The `kubernetes` Service on this node: connections from the node's pods to its ClusterIP
//! (`10.43.0.1:443` by default) are translated to the API server's endpoints (the
//! `default/kubernetes` Endpoints) by a DNAT rule in the pod network's nftables table, as
//! kube-proxy does for every Service. Only this one Service is handled here, so that pods'
//! in-cluster clients (`KUBERNETES_SERVICE_HOST`, `kubernetes.default.svc`) reach the API
//! wherever the server runs; a general Service proxy is not this module's job.

use std::net::{Ipv4Addr, SocketAddrV4};

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::Api;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use skiff_net::{Net, Protocol, ServiceDnat};

/// The Service's namespace and name.
pub const NAMESPACE: &str = "default";
pub const NAME: &str = "kubernetes";

/// The DNAT rules for `svc` and its `endpoints`, for connections from `source`: one per
/// Service port, to every ready address of the subsets that serve a port of that name.
pub fn rules_for(
    svc: &Service,
    endpoints: Option<&Endpoints>,
    source: Ipv4Net,
) -> Vec<ServiceDnat> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let Some(cluster_ip) = spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        return Vec::new();
    };
    let subsets = endpoints
        .and_then(|e| e.subsets.as_deref())
        .unwrap_or_default();
    let mut out = Vec::new();
    for port in spec.ports.iter().flatten() {
        let (Ok(number), Some(protocol)) = (
            u16::try_from(port.port),
            match port.protocol.as_deref().unwrap_or("TCP") {
                "TCP" => Some(Protocol::Tcp),
                "UDP" => Some(Protocol::Udp),
                _ => None,
            },
        ) else {
            continue;
        };
        let mut targets: Vec<SocketAddrV4> = Vec::new();
        for subset in subsets {
            let Some(target) = subset
                .ports
                .iter()
                .flatten()
                .find(|p| p.name == port.name)
                .and_then(|p| u16::try_from(p.port).ok())
            else {
                continue;
            };
            for a in subset.addresses.iter().flatten() {
                if let Ok(ip) = a.ip.parse::<Ipv4Addr>() {
                    targets.push(SocketAddrV4::new(ip, target));
                }
            }
        }
        targets.sort();
        targets.dedup();
        out.push(ServiceDnat {
            cluster_ip,
            port: number,
            protocol,
            endpoints: targets,
            source: Some(source),
        });
    }
    out
}

/// Reads the Service and its Endpoints once and sets the rules; what [`run`] then keeps.
pub async fn sync_once(client: &kube::Client, net: &Net, source: Ipv4Net) -> kube::Result<()> {
    let svc = Api::<Service>::namespaced(client.clone(), NAMESPACE)
        .get_opt(NAME)
        .await?;
    let eps = Api::<Endpoints>::namespaced(client.clone(), NAMESPACE)
        .get_opt(NAME)
        .await?;
    let want = svc
        .map(|s| rules_for(&s, eps.as_ref(), source))
        .unwrap_or_default();
    if let Err(e) = net.set_services(want).await {
        tracing::warn!(error = %crate::chain(&e), "cannot set the kubernetes Service's rules");
    }
    Ok(())
}

/// Keeps the `kubernetes` Service's DNAT for the pods of `source` (the node's pod CIDR) in
/// step with the Service and its Endpoints until `stop` turns true.
pub async fn run(
    client: kube::Client,
    net: Net,
    source: Ipv4Net,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let only = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    let (services, svc_writer) = reflector::store::<Service>();
    let (endpoints, ep_writer) = reflector::store::<Endpoints>();
    // The raw events: a reflector's store takes the objects of a (re)list in at its InitDone,
    // after the objects themselves went by.
    let svc_events = reflector(
        svc_writer,
        watcher(
            Api::<Service>::namespaced(client.clone(), NAMESPACE),
            only.clone(),
        ),
    )
    .default_backoff()
    .map(|r| r.map(|ev| (Which::Service, listed(&ev))));
    let ep_events = reflector(
        ep_writer,
        watcher(Api::<Endpoints>::namespaced(client, NAMESPACE), only),
    )
    .default_backoff()
    .map(|r| r.map(|ev| (Which::Endpoints, listed(&ev))));
    let events = futures::stream::select(svc_events, ep_events);
    tokio::pin!(events);
    // Rules are computed once both stores hold a complete list (sync_once set them before).
    let (mut svc_listed, mut ep_listed) = (false, false);
    let mut current: Option<Vec<ServiceDnat>> = None;
    loop {
        tokio::select! {
            _ = crate::until_stopped(&mut stop) => return,
            ev = events.next() => match ev {
                None => return,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "watch of the kubernetes Service failed");
                    continue;
                }
                Some(Ok((which, now_listed))) => match (which, now_listed) {
                    (Which::Service, Some(l)) => svc_listed = l,
                    (Which::Endpoints, Some(l)) => ep_listed = l,
                    (_, None) => {}
                },
            },
        }
        if !(svc_listed && ep_listed) {
            continue;
        }
        let svc = services.state().into_iter().next();
        let eps = endpoints.state().into_iter().next();
        let want = svc
            .map(|s| rules_for(&s, eps.as_deref(), source))
            .unwrap_or_default();
        if current.as_ref() == Some(&want) {
            continue;
        }
        match net.set_services(want.clone()).await {
            Ok(()) => {
                tracing::info!(rules = ?want, "kubernetes Service rules set");
                current = Some(want);
            }
            Err(e) => {
                tracing::warn!(error = %crate::chain(&e), "cannot set the kubernetes Service's rules")
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Service,
    Endpoints,
}

/// Whether a watch event leaves its store holding a complete list (Some(true)), starts a new
/// list (Some(false)) or changes nothing of that (None).
pub(crate) fn listed<K>(ev: &watcher::Event<K>) -> Option<bool> {
    match ev {
        watcher::Event::Init | watcher::Event::InitApply(_) => Some(false),
        watcher::Event::InitDone => Some(true),
        watcher::Event::Apply(_) | watcher::Event::Delete(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inpod_service_port_goes_to_the_endpoints_port_of_its_name() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.1",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}
        }))
        .unwrap();
        let eps: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "subsets": [
                {"addresses": [{"ip": "192.0.2.1"}, {"ip": "192.0.2.2"}],
                 "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]},
                {"addresses": [{"ip": "192.0.2.9"}],
                 "ports": [{"name": "other", "port": 1, "protocol": "TCP"}]}
            ]
        }))
        .unwrap();
        let source: Ipv4Net = "10.42.3.0/24".parse().unwrap();
        let rules = rules_for(&svc, Some(&eps), source);
        assert_eq!(
            rules,
            vec![ServiceDnat {
                cluster_ip: "10.43.0.1".parse().unwrap(),
                port: 443,
                protocol: Protocol::Tcp,
                endpoints: vec![
                    "192.0.2.1:6443".parse().unwrap(),
                    "192.0.2.2:6443".parse().unwrap()
                ],
                source: Some(source),
            }]
        );
        // No Endpoints yet: the port is known, with nowhere to go.
        assert!(rules_for(&svc, None, source)[0].endpoints.is_empty());
    }
}
