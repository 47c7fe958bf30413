//! Routes between nodes' pod CIDRs (host-gw): every node keeps, in its own network
//! namespace, one route to each other node's `spec.podCIDR` via that node's InternalIP, and
//! none for itself; a Node that goes away loses its route. Only skiff's routes inside the
//! cluster CIDR are touched (skiff-net marks them), so other routes on the host stay.

use std::net::{IpAddr, Ipv4Addr};

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use skiff_net::{Net, Route};

/// The routes `me` needs to reach the pods of `nodes`.
pub fn routes_for(me: &str, cluster: Ipv4Net, nodes: &[impl AsRef<Node>]) -> Vec<Route> {
    let mut out: Vec<Route> = nodes
        .iter()
        .map(AsRef::as_ref)
        .filter(|n| n.metadata.name.as_deref() != Some(me))
        .filter_map(|n| {
            let cidr: Ipv4Net = n.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok()?;
            let via = internal_ip(n)?;
            cluster.contains(&cidr).then_some(Route {
                destination: cidr,
                via,
            })
        })
        .collect();
    out.sort_by_key(|r| (r.destination, r.via));
    out.dedup();
    out
}

fn internal_ip(n: &Node) -> Option<Ipv4Addr> {
    n.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| match a.address.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => Some(ip),
            _ => None,
        })
}

/// Keeps the routes of node `me` in step with the cluster's Nodes until `stop` turns true.
pub async fn run(
    client: kube::Client,
    net: Net,
    me: String,
    cluster: Ipv4Net,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (reader, writer) = reflector::store::<Node>();
    let api: Api<Node> = Api::all(client);
    // The raw events: the store takes a (re)list's objects in only at its InitDone, so routes
    // computed between Init and InitDone would come from an empty (first list) or stale store.
    let events = reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    tokio::pin!(events);
    let mut current: Option<Vec<Route>> = None;
    let mut listed = false;
    loop {
        tokio::select! {
            _ = crate::until_stopped(&mut stop) => return,
            ev = events.next() => match ev {
                None => return,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "node watch for routes failed");
                    continue;
                }
                Some(Ok(ev)) => {
                    if !settle(&mut listed, &ev) {
                        continue;
                    }
                }
            },
        }
        let want = routes_for(&me, cluster, &reader.state());
        if current.as_ref() == Some(&want) {
            continue;
        }
        match net.set_routes_within(cluster, &want).await {
            Ok(()) => {
                tracing::info!(node = %me, routes = want.len(), "routes to other nodes' pods set");
                current = Some(want);
            }
            Err(e) => {
                tracing::warn!(error = %crate::chain(&e), "cannot set routes to other nodes' pods")
            }
        }
    }
}

/// Whether the store holds a complete list after `ev` (tracked in `listed`), i.e. whether
/// routes may be computed from it now.
fn settle<K>(listed: &mut bool, ev: &watcher::Event<K>) -> bool {
    if let Some(l) = crate::apiservice::listed(ev) {
        *listed = l;
    }
    *listed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidr: &str, ip: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]}}))
        .unwrap()
    }

    #[test]
    fn one_route_per_other_node_inside_the_cluster_cidr() {
        let cluster: Ipv4Net = "10.42.0.0/16".parse().unwrap();
        let nodes = vec![
            std::sync::Arc::new(node("a", "10.42.0.0/24", "192.168.1.1")),
            std::sync::Arc::new(node("b", "10.42.1.0/24", "192.168.1.2")),
            std::sync::Arc::new(node("c", "10.99.0.0/24", "192.168.1.3")),
        ];
        let r = routes_for("a", cluster, &nodes);
        assert_eq!(
            r,
            vec![Route {
                destination: "10.42.1.0/24".parse().unwrap(),
                via: "192.168.1.2".parse().unwrap()
            }]
        );
    }

    #[test]
    fn routes_wait_for_the_whole_list() {
        let mut listed = false;
        let n = || node("b", "10.42.1.0/24", "192.168.1.2");
        // The first list: its objects are not in the store until InitDone.
        assert!(!settle(&mut listed, &watcher::Event::<Node>::Init));
        assert!(!settle(&mut listed, &watcher::Event::InitApply(n())));
        assert!(settle(&mut listed, &watcher::Event::<Node>::InitDone));
        assert!(settle(&mut listed, &watcher::Event::Apply(n())));
        assert!(settle(&mut listed, &watcher::Event::Delete(n())));
        // A relist (the watch fell behind) holds off until it is whole again.
        assert!(!settle(&mut listed, &watcher::Event::<Node>::Init));
        assert!(!settle(&mut listed, &watcher::Event::InitApply(n())));
        assert!(settle(&mut listed, &watcher::Event::<Node>::InitDone));
    }
}
