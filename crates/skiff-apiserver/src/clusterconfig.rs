//! The cluster settings nodes must share with the server (cluster and service CIDRs, cluster
//! DNS and domain), published as the ConfigMap `kube-system/skiff-cluster`
//! ([`skiff_core::cluster`]) so that a joining agent learns them instead of being told on its
//! command line. The server creates it at bootstrap and puts its `data` back when a client
//! changed it, as it does for the `kubernetes` Service.

use serde_json::json;
use skiff_core::cluster::{ClusterConfig, NAME, NAMESPACE};

use crate::error::ApiError;
use crate::kinds::core::configmap::ConfigMaps;
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
            cluster_dns: skiff_core::cluster::DEFAULT_CLUSTER_DNS,
            cluster_domain: skiff_core::cluster::DEFAULT_CLUSTER_DOMAIN.into(),
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
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/managed-by": "skiff-server"}},
        "data": published(state).data()});
    crate::services::kubernetes::reconcile(state, &ConfigMaps, obj, &["data"]).await
}
