//! The cluster-wide network settings every node must share with the server, and how the
//! server publishes them to nodes: the ConfigMap `kube-system/skiff-cluster` (kubeadm keeps
//! its `kubeadm-config` and `kubelet-config` there for the same reason). Nodes may read
//! ConfigMaps (ADR 0019), so a joining agent learns them with the credentials it has; only the
//! server writes it, and puts it back when a client changes it.
//!
//! The keys and their parsing live here once: the API server writes with [`ClusterConfig::data`]
//! and agents read with [`ClusterConfig::from_data`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Namespace of the published settings.
pub const NAMESPACE: &str = "kube-system";
/// Name of the ConfigMap holding them.
pub const NAME: &str = "skiff-cluster";

const CLUSTER_CIDR: &str = "clusterCIDR";
const SERVICE_CIDR: &str = "serviceCIDR";
const CLUSTER_DNS: &str = "clusterDNS";
const CLUSTER_DOMAIN: &str = "clusterDomain";

/// k3s' defaults, which skiff's flags share: the service range, the cluster DNS address in it,
/// and the cluster domain.
pub const DEFAULT_SERVICE_CIDR: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 43, 0, 0), 16);
pub const DEFAULT_CLUSTER_DNS: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 10);
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// What every node of a cluster must agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The range nodes' pod CIDRs come from (`skiff server --cluster-cidr`).
    pub cluster_cidr: Ipv4Net,
    /// The range Services' ClusterIPs come from (`--service-cidr`).
    pub service_cidr: Ipv4Net,
    /// The cluster DNS address pods' resolv.conf names.
    pub cluster_dns: Ipv4Addr,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
}

/// A published ConfigMap that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterConfigError {
    #[error("the ConfigMap {NAMESPACE}/{NAME} has no {0:?} key")]
    Missing(&'static str),
    #[error("the ConfigMap {NAMESPACE}/{NAME} has an invalid {key:?}: {value:?}")]
    Invalid { key: &'static str, value: String },
}

impl ClusterConfig {
    /// The ConfigMap's `data`.
    pub fn data(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (CLUSTER_CIDR.to_string(), self.cluster_cidr.to_string()),
            (SERVICE_CIDR.to_string(), self.service_cidr.to_string()),
            (CLUSTER_DNS.to_string(), self.cluster_dns.to_string()),
            (CLUSTER_DOMAIN.to_string(), self.cluster_domain.clone()),
        ])
    }

    /// The settings in a ConfigMap's `data`.
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<ClusterConfig, ClusterConfigError> {
        fn get<'a>(
            data: &'a BTreeMap<String, String>,
            key: &'static str,
        ) -> Result<&'a str, ClusterConfigError> {
            data.get(key)
                .map(String::as_str)
                .ok_or(ClusterConfigError::Missing(key))
        }
        fn parse<T: std::str::FromStr>(
            data: &BTreeMap<String, String>,
            key: &'static str,
        ) -> Result<T, ClusterConfigError> {
            let value = get(data, key)?;
            value
                .trim()
                .parse()
                .map_err(|_| ClusterConfigError::Invalid {
                    key,
                    value: value.to_string(),
                })
        }
        let domain = get(data, CLUSTER_DOMAIN)?.trim();
        if domain.is_empty() || domain.contains(char::is_whitespace) {
            return Err(ClusterConfigError::Invalid {
                key: CLUSTER_DOMAIN,
                value: domain.to_string(),
            });
        }
        Ok(ClusterConfig {
            cluster_cidr: parse(data, CLUSTER_CIDR)?,
            service_cidr: parse(data, SERVICE_CIDR)?,
            cluster_dns: parse(data, CLUSTER_DNS)?,
            cluster_domain: domain.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClusterConfig {
        ClusterConfig {
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            service_cidr: "10.43.0.0/16".parse().unwrap(),
            cluster_dns: Ipv4Addr::new(10, 43, 0, 10),
            cluster_domain: "cluster.local".into(),
        }
    }

    #[test]
    fn published_settings_read_back() {
        let data = config().data();
        assert_eq!(data["clusterCIDR"], "10.42.0.0/16");
        assert_eq!(ClusterConfig::from_data(&data), Ok(config()));
    }

    #[test]
    fn a_missing_or_broken_key_is_named() {
        let mut data = config().data();
        data.remove("serviceCIDR");
        assert_eq!(
            ClusterConfig::from_data(&data),
            Err(ClusterConfigError::Missing("serviceCIDR"))
        );
        let mut data = config().data();
        data.insert("clusterCIDR".into(), "10.42.0.0/99".into());
        let err = ClusterConfig::from_data(&data).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the ConfigMap kube-system/skiff-cluster has an invalid \"clusterCIDR\": \"10.42.0.0/99\""
        );
        let mut data = config().data();
        data.insert("clusterDomain".into(), "a b".into());
        assert!(ClusterConfig::from_data(&data).is_err());
    }
}
