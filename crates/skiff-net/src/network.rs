//! Network definitions: what `docker network create` asks for, validated with Docker's
//! messages, and the subnet picked from address pools when none is given.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

/// Docker's driver option naming the host bridge.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// Docker's driver option turning outbound masquerade off (`false`).
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
/// Docker's driver option turning container-to-container traffic off (`false`).
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
/// Docker's driver option for the bridge's MTU.
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";

/// A request to create a network.
#[derive(Debug, Clone, Default)]
pub struct NetworkSpec {
    pub name: String,
    /// Chosen by the caller (the engine's ids); random when None.
    pub id: Option<String>,
    /// Host bridge name; None = `<prefix>-<id>` (or the `com.docker.network.bridge.name` option).
    pub bridge: Option<String>,
    /// CIDR; None = the first free subnet of the address pools.
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    /// No outbound route and no traffic to or from outside the bridge.
    pub internal: bool,
    /// Serve the embedded DNS (127.0.0.11) to its sandboxes: Docker does so on user-defined
    /// networks only.
    pub dns: bool,
    pub labels: BTreeMap<String, String>,
    /// Driver options (`-o`); the `com.docker.network.*` ones above are understood.
    pub options: BTreeMap<String, String>,
    /// Destinations reached without masquerade (a node's cluster CIDR: pods see pod addresses).
    pub no_masquerade_to: Vec<Ipv4Net>,
    /// Accept connections routed in from outside the bridge (pod networks: other nodes' pods);
    /// otherwise only replies and published ports get in, as with Docker.
    pub accept_routed: bool,
    /// The caller's own facts about the network, stored with it and never read here (the
    /// engine keeps Docker's `Attachable` and whether the subnet was user-configured).
    pub meta: BTreeMap<String, String>,
}

/// A network as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub ip_range: Option<Ipv4Net>,
    pub internal: bool,
    pub dns: bool,
    pub masquerade: bool,
    pub icc: bool,
    pub mtu: Option<u32>,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub no_masquerade_to: Vec<Ipv4Net>,
    pub accept_routed: bool,
    /// The caller's metadata ([`NetworkSpec::meta`]).
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// Nanoseconds since the Unix epoch.
    pub created: u64,
}

impl Network {
    /// The gateway with the subnet's prefix: the bridge's own address.
    pub fn gateway_cidr(&self) -> Ipv4Net {
        Ipv4Net::new(self.gateway, self.subnet.prefix_len()).expect("prefix from a subnet")
    }
}

/// A pool subnets are carved from, like an entry of Docker's `default-address-pools`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    pub base: Ipv4Net,
    /// Prefix length of each subnet taken from `base`.
    pub size: u8,
}

/// Docker's default pools: 172.17–31.0.0/16, then 192.168.0.0/16 in /20s.
pub fn default_pools() -> Vec<AddressPool> {
    [
        ("172.17.0.0/16", 16),
        ("172.18.0.0/15", 16),
        ("172.20.0.0/14", 16),
        ("172.24.0.0/13", 16),
    ]
    .into_iter()
    .chain([("192.168.0.0/16", 20)])
    .map(|(b, size)| AddressPool {
        base: b.parse().expect("valid pool"),
        size,
    })
    .collect()
}

/// Parses a CIDR the way Docker reports a bad one.
pub fn parse_cidr(s: &str) -> Result<Ipv4Net> {
    s.parse::<Ipv4Net>()
        .map_err(|_| NetError::invalid(format!("invalid CIDR address: {s}")))
}

pub(crate) fn parse_ip(s: &str) -> Result<Ipv4Addr> {
    s.parse::<Ipv4Addr>()
        .map_err(|_| NetError::invalid(format!("invalid IP address: {s}")))
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(NetError::invalid(format!(
            "failed to parse {key} value: invalid syntax"
        ))),
    }
}

/// Interface names the kernel accepts (IFNAMSIZ - 1, no `/`, whitespace or `:`).
pub(crate) fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | ':' | '"' | '\\'))
}

/// The first pool subnet that overlaps none of `taken`.
pub(crate) fn pick_subnet(pools: &[AddressPool], taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    for pool in pools {
        let Ok(subnets) = pool.base.subnets(pool.size) else {
            continue;
        };
        for s in subnets {
            if !taken.iter().any(|t| overlaps(t, &s)) {
                return Some(s);
            }
        }
    }
    None
}

pub(crate) fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Validates `spec` into a [`Network`] (without a subnet when the pool must choose one).
pub(crate) fn build(
    spec: &NetworkSpec,
    id: String,
    bridge_prefix: &str,
    subnet: Ipv4Net,
    created: u64,
) -> Result<Network> {
    let subnet = subnet.trunc();
    if subnet.prefix_len() > 30 {
        return Err(NetError::invalid(format!(
            "invalid subnet {subnet}: a bridge network needs at least a /30"
        )));
    }
    let gateway = match spec.gateway.as_deref().filter(|g| !g.is_empty()) {
        Some(g) => {
            let ip = parse_ip(g)?;
            if !subnet.contains(&ip) || ip == subnet.network() || ip == subnet.broadcast() {
                return Err(NetError::invalid(format!(
                    "no matching subnet for gateway {g}"
                )));
            }
            ip
        }
        None => subnet.hosts().next().expect("a /30 has hosts"),
    };
    let ip_range = match spec.ip_range.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => {
            let range = parse_cidr(r)?.trunc();
            if !subnet.contains(&range) {
                return Err(NetError::invalid(format!(
                    "no matching subnet for range {r}"
                )));
            }
            Some(range)
        }
        None => None,
    };
    let opt = |k: &str| spec.options.get(k).map(String::as_str);
    let masquerade = opt(OPT_MASQUERADE).map_or(Ok(true), |v| parse_bool(OPT_MASQUERADE, v))?;
    let icc = opt(OPT_ICC).map_or(Ok(true), |v| parse_bool(OPT_ICC, v))?;
    let mtu = match opt(OPT_MTU) {
        None | Some("") | Some("0") => None,
        Some(v) => Some(
            v.parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| NetError::invalid(format!("invalid MTU number: {v}")))?,
        ),
    };
    let bridge = match spec.bridge.as_deref().or(opt(OPT_BRIDGE_NAME)) {
        Some(b) => b.to_string(),
        None => {
            let keep = 15usize.saturating_sub(bridge_prefix.len() + 1);
            format!("{bridge_prefix}-{}", &id[..keep.min(id.len())])
        }
    };
    if !valid_ifname(&bridge) {
        return Err(NetError::invalid(format!("invalid bridge name: {bridge}")));
    }
    Ok(Network {
        id,
        name: spec.name.clone(),
        bridge,
        subnet,
        gateway,
        ip_range,
        internal: spec.internal,
        dns: spec.dns,
        masquerade,
        icc,
        mtu,
        labels: spec.labels.clone(),
        options: spec.options.clone(),
        no_masquerade_to: spec.no_masquerade_to.clone(),
        accept_routed: spec.accept_routed,
        meta: spec.meta.clone(),
        created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(subnet: &str) -> NetworkSpec {
        NetworkSpec {
            name: "n".into(),
            subnet: Some(subnet.into()),
            ..Default::default()
        }
    }

    #[test]
    fn pool_skips_taken_subnets_like_docker() {
        let pools = default_pools();
        assert_eq!(
            pick_subnet(&pools, &[]).unwrap().to_string(),
            "172.17.0.0/16"
        );
        let docker0: Ipv4Net = "172.17.0.0/16".parse().unwrap();
        assert_eq!(
            pick_subnet(&pools, &[docker0]).unwrap().to_string(),
            "172.18.0.0/16"
        );
        let all172: Ipv4Net = "172.16.0.0/12".parse().unwrap();
        assert_eq!(
            pick_subnet(&pools, &[all172]).unwrap().to_string(),
            "192.168.0.0/20"
        );
        let small: Ipv4Net = "172.19.3.0/24".parse().unwrap();
        assert_eq!(
            pick_subnet(&pools, &[docker0, "172.18.0.0/16".parse().unwrap(), small])
                .unwrap()
                .to_string(),
            "172.20.0.0/16"
        );
    }

    #[test]
    fn gateway_defaults_to_first_host_and_must_be_inside() {
        let s: Ipv4Net = "10.5.0.0/24".parse().unwrap();
        let n = build(&spec("10.5.0.0/24"), "a".repeat(64), "skiff", s, 0).unwrap();
        assert_eq!(n.gateway.to_string(), "10.5.0.1");
        assert_eq!(n.bridge, "skiff-aaaaaaaaa");
        let mut bad = spec("10.5.0.0/24");
        bad.gateway = Some("10.6.0.1".into());
        assert_eq!(
            build(&bad, "b".into(), "skiff", s, 0)
                .unwrap_err()
                .to_string(),
            "no matching subnet for gateway 10.6.0.1"
        );
        let mut range = spec("10.5.0.0/24");
        range.ip_range = Some("10.7.0.0/28".into());
        assert_eq!(
            build(&range, "b".into(), "skiff", s, 0)
                .unwrap_err()
                .to_string(),
            "no matching subnet for range 10.7.0.0/28"
        );
        assert_eq!(
            parse_cidr("10.0.0.0/33").unwrap_err().to_string(),
            "invalid CIDR address: 10.0.0.0/33"
        );
        let mut opts = spec("10.5.0.0/24");
        opts.options
            .insert(OPT_BRIDGE_NAME.into(), "bad name/x".into());
        assert!(build(&opts, "b".into(), "skiff", s, 0).is_err());
    }
}
