//! The cluster settings nodes must share with the server (cluster and service CIDRs, cluster
//! DNS and domain), published as the ConfigMap `kube-system/skiff-cluster`
//! ([`skiff_core::cluster`]) so that a joining agent learns them instead of being told on its
//! command line. The server creates it at bootstrap and puts its `data` back when a client
//! changed it, as it does for the `kubernetes` Service.

use serde_json::{json, Value};
use skiff_core::cluster::{ClusterConfig, NAME, NAMESPACE};

use crate::error::ApiError;
use crate::handlers::{create_object, write_update, UpdateKind};
use crate::kinds::core::configmap::ConfigMaps;
use crate::registry::Kind;
use crate::router::ApiState;

/// The node settings the server publishes besides the CIDRs it allocates from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDefaults {
    pub cluster_dns: std::net::Ipv4Addr,
    pub cluster_domain: String,
}

impl Default for NodeDefaults {
    fn default() -> Self {
        NodeDefaults {
            cluster_dns: std::net::Ipv4Addr::new(10, 43, 0, 10),
            cluster_domain: "cluster.local".into(),
        }
    }
}

/// The settings this server publishes.
pub fn published(state: &ApiState) -> ClusterConfig {
    ClusterConfig {
        cluster_cidr: state.cluster_network.cidr,
        service_cidr: state.services.cidr,
        cluster_dns: state.node_defaults.cluster_dns,
        cluster_domain: state.node_defaults.cluster_domain.clone(),
    }
}

/// Creates the ConfigMap, or sets its `data` back to the server's settings; idempotent.
pub async fn ensure(state: &ApiState) -> Result<(), ApiError> {
    let data = json!(published(state).data());
    let kind = &ConfigMaps;
    match state
        .storage
        .get(kind.info(), Some(NAMESPACE), NAME)
        .await?
    {
        None => {
            let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": NAME, "namespace": NAMESPACE,
                    "labels": {"app.kubernetes.io/managed-by": "skiff-server"}},
                "data": data});
            match create_object(state, kind, obj, None, false).await {
                Ok(_) => Ok(()),
                Err(e) if e.reason == "AlreadyExists" => Ok(()),
                Err(e) => Err(e),
            }
        }
        Some(current) if current.get("data") != Some(&data) => {
            let mut new: Value = current.clone();
            new["data"] = data;
            write_update(state, kind, &current, new, UpdateKind::Main, false).await?;
            Ok(())
        }
        Some(_) => Ok(()),
    }
}
