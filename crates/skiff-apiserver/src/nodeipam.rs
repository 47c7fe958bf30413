//! Pod CIDRs for Nodes: every Node gets `spec.podCIDR`/`podCIDRs`, one subnet of the cluster
//! CIDR (`--cluster-cidr`, a `/--node-cidr-mask-size` each), unique across the cluster.
//!
//! Kubernetes does this in kube-controller-manager's node-ipam range allocator, after the
//! Node exists; skiff does it at admission, the way Services get ClusterIPs
//! ([`crate::services`], ADR 0009): each allocated subnet is a key in the datastore
//! (`/registry/skiff.io/podcidrs/<a.b.c.d-len>`) naming the Node that holds it, so uniqueness is
//! the store's create-if-absent (also across servers sharing one etcd) and a crash loses
//! nothing. A Node is stored with its subnet, so an agent never waits for a controller before
//! it can set up its pod network. See docs/adr/0016-nodes-pod-cidrs-and-sandboxes.md.
//!
//! Entry points: the Node kind's admission hooks (`kinds/core/node.rs`).

use std::collections::HashSet;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use skiff_store::StoreError;

use crate::error::{ApiError, Cause};
use crate::object;
use crate::router::ApiState;

const KEYS: &str = "/registry/skiff.io/podcidrs/";

/// Where Nodes get their pod CIDRs from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNetwork {
    /// The cluster CIDR (k3s' default 10.42.0.0/16).
    pub cidr: Ipv4Net,
    /// The prefix length of each Node's subnet (kube-controller-manager's
    /// `--node-cidr-mask-size`, 24).
    pub node_mask: u8,
}

impl Default for ClusterNetwork {
    fn default() -> Self {
        ClusterNetwork {
            cidr: "10.42.0.0/16".parse().expect("literal"),
            node_mask: 24,
        }
    }
}

/// Errors in the command line's cluster network.
#[derive(Debug, thiserror::Error)]
pub enum ClusterNetworkError {
    #[error("invalid cluster CIDR {0:?}: expected an IPv4 network such as 10.42.0.0/16")]
    Cidr(String),
    #[error("node CIDR mask size /{mask} does not fit the cluster CIDR {cidr}: it must be at least as long as the cluster's prefix and at most 30")]
    Mask { cidr: Ipv4Net, mask: u8 },
}

impl ClusterNetwork {
    /// `--cluster-cidr` and `--node-cidr-mask-size`, checked against each other.
    pub fn new(cidr: &str, node_mask: u8) -> Result<ClusterNetwork, ClusterNetworkError> {
        let net: Ipv4Net = cidr
            .parse()
            .map_err(|_| ClusterNetworkError::Cidr(cidr.into()))?;
        if net.network() != net.addr() {
            return Err(ClusterNetworkError::Cidr(cidr.into()));
        }
        if node_mask < net.prefix_len() || node_mask > 30 {
            return Err(ClusterNetworkError::Mask {
                cidr: net,
                mask: node_mask,
            });
        }
        Ok(ClusterNetwork {
            cidr: net,
            node_mask,
        })
    }

    fn subnets(&self) -> impl Iterator<Item = Ipv4Net> {
        self.cidr
            .subnets(self.node_mask)
            .expect("mask checked against the cluster CIDR")
    }
}

/// The holder recorded in an allocation key.
#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    name: String,
    uid: String,
    /// When it was reserved (RFC 3339).
    time: String,
}

fn key(net: Ipv4Net) -> String {
    format!("{KEYS}{}-{}", net.network(), net.prefix_len())
}

fn pod_cidr(node: &Value) -> Option<&str> {
    node.pointer("/spec/podCIDR")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn invalid(node: &Value, field: &str, message: String) -> ApiError {
    ApiError::invalid(
        "",
        "Node",
        object::name(node),
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field: field.into(),
        }],
    )
}

fn set(node: &mut Value, net: Ipv4Net) {
    node["spec"]["podCIDR"] = json!(net.to_string());
    node["spec"]["podCIDRs"] = json!([net.to_string()]);
}

/// On create: reserves the subnet the Node names (it must be one of the cluster's) or the
/// first free one, for the Node's uid, and writes it into `spec`; when none is free the Node
/// is admitted without one, as in Kubernetes. A dry run reserves nothing.
pub async fn allocate(state: &ApiState, node: &mut Value, dry_run: bool) -> Result<(), ApiError> {
    let net = &state.cluster_network;
    let holder = serde_json::to_vec(&Holder {
        name: object::name(node).into(),
        uid: object::meta_str(node, "uid").into(),
        time: object::now(),
    })
    .unwrap_or_default();
    let store = state.storage.store.as_ref();
    let take = |k: String| {
        let holder = holder.clone();
        async move {
            if dry_run {
                return Ok(store.get(&k).await?.is_none());
            }
            match store.create(&k, holder).await {
                Ok(_) => Ok(true),
                Err(StoreError::AlreadyExists(_)) => Ok(false),
                Err(e) => Err(ApiError::from(e)),
            }
        }
    };
    if let Some(text) = pod_cidr(node).map(str::to_string) {
        let asked: Ipv4Net = text.parse().map_err(|_| {
            invalid(
                node,
                "spec.podCIDRs[0]",
                format!("Invalid value: {text:?}: must be a valid CIDR"),
            )
        })?;
        if asked.prefix_len() != net.node_mask
            || asked.network() != asked.addr()
            || !net.cidr.contains(&asked)
        {
            return Err(invalid(
                node,
                "spec.podCIDRs[0]",
                format!(
                    "Invalid value: {text:?}: must be a /{} subnet of the cluster CIDR {}",
                    net.node_mask, net.cidr
                ),
            ));
        }
        if !take(key(asked)).await? {
            return Err(invalid(
                node,
                "spec.podCIDRs[0]",
                format!("Invalid value: {text:?}: already allocated to another node"),
            ));
        }
        set(node, asked);
        return Ok(());
    }
    let taken: HashSet<String> = store
        .list(KEYS, None, 0, None)
        .await?
        .items
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    for candidate in net.subnets() {
        if !taken.contains(&key(candidate)) && take(key(candidate)).await? {
            set(node, candidate);
            return Ok(());
        }
    }
    // As kube-controller-manager's range allocator: the Node is admitted all the same, without
    // a pod CIDR (its pods cannot get addresses until one is freed and it registers again).
    tracing::warn!(
        node = object::name(node),
        cidr = %net.cidr,
        "CIDRNotAvailable: the cluster CIDR has no free pod CIDR for this node"
    );
    Ok(())
}

/// On update of the main resource: a Node keeps its pod CIDR when the client leaves it out,
/// may not change it, and may be given one (from none) only through [`allocate`]'s rules.
pub async fn update(
    state: &ApiState,
    old: &Value,
    new: &mut Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    match (pod_cidr(old).map(str::to_string), pod_cidr(new)) {
        (Some(o), None) => {
            new["spec"]["podCIDR"] = json!(o);
            new["spec"]["podCIDRs"] = old["spec"]["podCIDRs"].clone();
            Ok(())
        }
        (Some(o), Some(n)) if o != n => Err(ApiError::invalid(
            "",
            "Node",
            object::name(new),
            vec![Cause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: node updates may not change podCIDR except from \"\" to valid"
                    .into(),
                field: "spec.podCIDRs".into(),
            }],
        )),
        (None, _) => allocate(state, new, dry_run).await,
        _ => Ok(()),
    }
}

/// Frees the pod CIDR `node` names if this Node (by uid) holds it.
pub async fn release(state: &ApiState, node: &Value) {
    let Some(net) = pod_cidr(node).and_then(|t| t.parse::<Ipv4Net>().ok()) else {
        return;
    };
    let uid = object::meta_str(node, "uid");
    let store = state.storage.store.as_ref();
    let k = key(net);
    let Ok(Some(current)) = store.get(&k).await else {
        return;
    };
    let holder = serde_json::from_slice::<Holder>(&current.value);
    if !holder.is_ok_and(|h| h.uid == uid) {
        return;
    }
    if let Err(e) = store.delete(&k, Some(current.mod_revision)).await {
        if !matches!(e, StoreError::NotFound(_) | StoreError::Conflict { .. }) {
            tracing::warn!(key = %k, error = %e, "cannot free a pod CIDR");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_network_checks_its_mask() {
        let n = ClusterNetwork::new("10.42.0.0/16", 24).unwrap();
        assert_eq!(n.subnets().count(), 256);
        assert_eq!(
            n.subnets().nth(1).unwrap(),
            "10.42.1.0/24".parse::<Ipv4Net>().unwrap()
        );
        assert!(ClusterNetwork::new("10.42.0.0/16", 8).is_err());
        assert!(ClusterNetwork::new("10.42.0.0/16", 31).is_err());
        assert!(ClusterNetwork::new("10.42.0.1/16", 24).is_err());
        assert!(ClusterNetwork::new("nonsense", 24).is_err());
        assert_eq!(
            key("10.42.3.0/24".parse().unwrap()),
            format!("{KEYS}10.42.3.0-24")
        );
    }
}
