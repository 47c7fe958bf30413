//! Endpoints: a sandbox's interface on a network, as stored.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ports::{PortMapping, PublishedPort};

/// A request to attach a sandbox to a network.
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    pub sandbox: String,
    /// Network name, id or unique id prefix.
    pub network: String,
    /// Static address (`--ip`); None = the next free one.
    pub ip: Option<Ipv4Addr>,
    /// Names the embedded DNS answers with this address on that network: container name,
    /// network aliases, short id (Docker's `DNSNames`).
    pub dns_names: Vec<String>,
    pub ports: Vec<PortMapping>,
}

/// A sandbox's interface on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub sandbox: String,
    pub network_id: String,
    pub network_name: String,
    /// Interface name inside the sandbox (`eth0`, `eth1`, …).
    pub interface: String,
    /// The veth end on the host, a port of the network's bridge.
    pub host_veth: String,
    /// Address with the subnet's prefix length.
    pub address: Ipv4Net,
    /// None on internal networks (no default route).
    pub gateway: Option<Ipv4Addr>,
    /// Docker's form: `02:42:` then the four bytes of the IPv4 address.
    pub mac: String,
    pub dns_names: Vec<String>,
    pub ports: Vec<PublishedPort>,
}

impl Endpoint {
    /// A stable key for (sandbox, network), usable in interface and chain names.
    pub(crate) fn key(sandbox: &str, network_id: &str) -> String {
        let digest = Sha256::digest(format!("{sandbox}/{network_id}"));
        hex::encode(&digest[..8])
    }

    /// The host veth's name for a new attach of `sandbox` to `network_id`, one `taken` does not
    /// name. Every attach gets a new one (like Docker's random `veth…` names): the previous
    /// attach's veth of a sandbox started again at once may still be on its way out (the
    /// kernel deletes it with the old namespace, the reaper by name), and a deletion by name
    /// must never hit its successor.
    pub(crate) fn veth_name(
        prefix: &str,
        sandbox: &str,
        network_id: &str,
        taken: impl Fn(&str) -> bool,
    ) -> String {
        static ATTACHES: AtomicU64 = AtomicU64::new(0);
        let keep = 15usize.saturating_sub(prefix.len() + 1);
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        loop {
            let n = ATTACHES.fetch_add(1, Ordering::Relaxed);
            let digest = Sha256::digest(format!(
                "{sandbox}/{network_id}/{}/{since_epoch}/{n}",
                std::process::id()
            ));
            let name = format!("{prefix}v{}", &hex::encode(&digest[..8])[..keep]);
            if !taken(&name) {
                return name;
            }
        }
    }

    pub(crate) fn port_chain(&self) -> String {
        format!("p-{}", Self::key(&self.sandbox, &self.network_id))
    }

    pub(crate) fn file_name(sandbox: &str, network_id: &str) -> String {
        format!("{sandbox}.{network_id}.json")
    }
}

/// Docker's MAC for an IPv4 address: `02:42:ac:11:00:02` for 172.17.0.2.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub(crate) fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_and_names_follow_docker_and_ifnamsiz() {
        assert_eq!(
            mac_string(mac_for(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
        let v = Endpoint::veth_name("skiff", "c1", "n1", |_| false);
        assert_eq!(v.len(), 15);
        assert!(v.starts_with("skiffv"));
        assert_ne!(v, Endpoint::veth_name("skiff", "c2", "n1", |_| false));
        // The same pair attached again gets a new name, and never one already taken.
        assert_ne!(v, Endpoint::veth_name("skiff", "c1", "n1", |_| false));
        let again = Endpoint::veth_name("skiff", "c1", "n1", |n| n == v);
        assert_ne!(again, v);
    }
}
