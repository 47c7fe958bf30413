//! Service addresses translated to their endpoints (DNAT in skiff's nftables table), what
//! kube-proxy does for a Service: a connection to `cluster_ip:port` from a container on this
//! host, or from the host itself, goes to one of the endpoints, picked at random. The
//! callers decide which Services are handled here; skiff-net only keeps the rules.

use std::net::{Ipv4Addr, SocketAddrV4};

use ipnet::Ipv4Net;

use crate::ports::Protocol;

/// One Service port and the endpoints its connections go to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceDnat {
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
    /// Where connections go (none: the Service address is left untranslated).
    pub endpoints: Vec<SocketAddrV4>,
    /// Only connections from this network are translated (None: all, the host's own too).
    /// Several nodes sharing one network namespace (tests, benches) each translate only their
    /// own pods' connections, so one node's rules cannot take another's.
    pub source: Option<Ipv4Net>,
}
