//! The service network's two ranges: ClusterIPs from an IPv4 CIDR, NodePorts from a port
//! range, with Kubernetes' rules for which members are handed out.

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;

use ipnet::Ipv4Net;

/// Where Services get their addresses and ports from, and where the API server is reached
/// (for the `default/kubernetes` Service's endpoints).
#[derive(Debug, Clone)]
pub struct ServiceNetwork {
    /// ClusterIPs: the network and broadcast addresses are never handed out, the first host
    /// address belongs to `default/kubernetes`.
    pub cidr: Ipv4Net,
    /// NodePorts.
    pub node_ports: RangeInclusive<u16>,
    /// The API server's address as pods reach it (None: no endpoints are published).
    pub apiserver: Option<SocketAddr>,
}

impl Default for ServiceNetwork {
    /// k3s' service CIDR (DESIGN.md) and Kubernetes' NodePort range.
    fn default() -> Self {
        ServiceNetwork {
            cidr: skiff_core::cluster::DEFAULT_SERVICE_CIDR,
            node_ports: 30000..=32767,
            apiserver: None,
        }
    }
}

/// Errors parsing the ranges given on the command line.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    #[error("invalid service CIDR {0:?}: expected an IPv4 network such as 10.43.0.0/16 with at least 8 addresses")]
    Cidr(String),
    #[error("invalid NodePort range {0:?}: expected FIRST-LAST such as 30000-32767")]
    Ports(String),
}

impl ServiceNetwork {
    /// Parses `--service-cidr`.
    pub fn parse_cidr(s: &str) -> Result<Ipv4Net, RangeError> {
        let net: Ipv4Net = s.parse().map_err(|_| RangeError::Cidr(s.into()))?;
        if net.prefix_len() > 29 || net.network() != net.addr() {
            return Err(RangeError::Cidr(s.into()));
        }
        Ok(net)
    }

    /// Parses `--service-node-port-range` (`FIRST-LAST`, as kube-apiserver takes it).
    pub fn parse_ports(s: &str) -> Result<RangeInclusive<u16>, RangeError> {
        let bad = || RangeError::Ports(s.into());
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (a, b): (u16, u16) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if a == 0 || a > b {
            return Err(bad());
        }
        Ok(a..=b)
    }

    /// The ClusterIP of `default/kubernetes`: the first host address.
    pub fn kubernetes_ip(&self) -> Ipv4Addr {
        offset(self.cidr, 1)
    }

    /// How many host addresses the CIDR has (network and broadcast excluded).
    pub(super) fn hosts(&self) -> u32 {
        (1u32 << (32 - self.cidr.prefix_len())).saturating_sub(2)
    }

    /// Whether `ip` may be requested: a host address of the CIDR.
    pub fn ip_in_range(&self, ip: Ipv4Addr) -> bool {
        self.cidr.contains(&ip) && ip != self.cidr.network() && ip != self.cidr.broadcast()
    }

    /// Host addresses dynamic allocation hands out, in preference order starting at
    /// `start`: the upper band first, then the lower band that Kubernetes keeps for
    /// requested addresses (ServiceIPStaticSubrange), never `default/kubernetes`' address.
    pub(super) fn dynamic_ips(&self, start: u32) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let hosts = self.hosts();
        let band = (hosts / 16).clamp(16, 256).min(hosts);
        let upper = hosts - band;
        let rotate = move |lo: u32, len: u32| {
            (0..len).map(move |i| lo + (start % len.max(1) + i) % len.max(1))
        };
        rotate(band + 1, upper)
            .chain(rotate(1, band))
            .filter(move |&n| n != 1)
            .map(move |n| offset(self.cidr, n))
    }

    /// Ports dynamic allocation hands out, starting at `start`.
    pub(super) fn dynamic_ports(&self, start: u32) -> impl Iterator<Item = u16> + '_ {
        let lo = u32::from(*self.node_ports.start());
        let len = u32::from(*self.node_ports.end()) - lo + 1;
        (0..len).map(move |i| (lo + (start % len + i) % len) as u16)
    }

    /// `FIRST-LAST`, as messages show the range.
    pub fn ports_text(&self) -> String {
        format!("{}-{}", self.node_ports.start(), self.node_ports.end())
    }
}

fn offset(net: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_like_kube_apiserver() {
        assert_eq!(
            ServiceNetwork::parse_cidr("10.96.0.0/12")
                .unwrap()
                .to_string(),
            "10.96.0.0/12"
        );
        for bad in ["10.96.0.1/12", "10.0.0.0/30", "fd00::/64", "nope"] {
            assert!(ServiceNetwork::parse_cidr(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ServiceNetwork::parse_ports("30000-32767").unwrap(),
            30000..=32767
        );
        for bad in ["30000", "2-1", "0-5", "a-b"] {
            assert!(ServiceNetwork::parse_ports(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dynamic_addresses_skip_reserved_ones() {
        let net = ServiceNetwork {
            cidr: "10.43.0.0/28".parse().unwrap(),
            ..Default::default()
        };
        assert_eq!(net.kubernetes_ip(), Ipv4Addr::new(10, 43, 0, 1));
        let all: Vec<Ipv4Addr> = net.dynamic_ips(7).collect();
        assert_eq!(
            all.len(),
            13,
            "14 hosts less the kubernetes address: {all:?}"
        );
        assert!(!all.contains(&Ipv4Addr::new(10, 43, 0, 0)));
        assert!(!all.contains(&Ipv4Addr::new(10, 43, 0, 1)));
        assert!(!all.contains(&Ipv4Addr::new(10, 43, 0, 15)));
        let default = ServiceNetwork::default();
        let first = default.dynamic_ips(0).next().unwrap();
        assert_eq!(
            first,
            Ipv4Addr::new(10, 43, 1, 1),
            "the upper band comes first"
        );
        assert!(default.ip_in_range(Ipv4Addr::new(10, 43, 255, 254)));
        assert!(!default.ip_in_range(Ipv4Addr::new(10, 43, 255, 255)));
        let ports: Vec<u16> = default.dynamic_ports(2767).take(2).collect();
        assert_eq!(ports, [32767, 30000]);
    }
}
