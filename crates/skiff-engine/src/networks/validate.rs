//! Docker's checks and messages for `network create` (IPAM pools) and for the endpoint
//! settings of `run --network`/`network connect`, before skiff-net is asked for anything.

use std::net::Ipv4Addr;

use bollard_stubs::models::{EndpointSettings, NetworkCreateRequest};
use ipnet::Ipv4Net;
use skiff_net::Network;

use super::{is_predefined, META_USER_SUBNET};
use crate::error::{EngineError, Result};

/// Docker's `multierror.Join`: one error as is, several as a bulleted list.
pub(crate) fn join(errs: &[String]) -> String {
    match errs {
        [one] => one.trim().to_string(),
        many => format!(
            "* {}",
            many.iter()
                .map(|e| e.replace('\n', "\n\t"))
                .collect::<Vec<_>>()
                .join("\n* ")
        ),
    }
}

/// Docker's `ValidateIPAM` for one IPv4 pool: the subnet's form, the range and the gateway
/// inside it.
fn validate_pool(subnet: &str, ip_range: &str, gateway: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let Ok(net) = subnet.parse::<Ipv4Net>() else {
        return vec![format!(
            "invalid subnet {subnet}: invalid CIDR block notation"
        )];
    };
    if net != net.trunc() {
        errs.push(format!(
            "invalid subnet {net}: it should be {}",
            net.trunc()
        ));
    }
    if !ip_range.is_empty() {
        match ip_range.parse::<Ipv4Net>() {
            Err(_) => errs.push(format!(
                "invalid ip-range {ip_range}: invalid CIDR block notation"
            )),
            Ok(range) => {
                if range.prefix_len() < net.prefix_len() {
                    errs.push(format!(
                        "invalid ip-range {ip_range}: CIDR block is bigger than its parent subnet {net}"
                    ));
                }
                if range != range.trunc() {
                    errs.push(format!(
                        "invalid ip-range {range}: it should be {}",
                        range.trunc()
                    ));
                }
                if !net.contains(&range.network()) && !range.contains(&net.network()) {
                    errs.push(format!(
                        "invalid ip-range {ip_range}: parent subnet {net} doesn't contain ip-range"
                    ));
                }
            }
        }
    }
    if !gateway.is_empty() {
        match gateway.parse::<Ipv4Addr>() {
            Err(_) => errs.push(format!("invalid gateway {gateway}: invalid address")),
            Ok(gw) if !net.contains(&gw) => errs.push(format!(
                "invalid gateway {gateway}: parent subnet {net} doesn't contain this address"
            )),
            Ok(_) => {}
        }
    }
    errs
}

/// What `create` asks of the network's address pool (at most one IPv4 pool).
pub(crate) fn pool(
    req: &NetworkCreateRequest,
) -> Result<Option<bollard_stubs::models::IpamConfig>> {
    let Some(ipam) = &req.ipam else {
        return Ok(None);
    };
    if let Some(d) = ipam
        .driver
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "default")
    {
        return Err(EngineError::NotFound(format!(
            "error looking up IPAM driver \"{d}\": plugin \"{d}\" not found"
        )));
    }
    let configs = ipam.config.clone().unwrap_or_default();
    let mut errs = Vec::new();
    let mut v4 = Vec::new();
    for c in configs {
        let subnet = c.subnet.clone().unwrap_or_default();
        if subnet.contains(':') {
            return Err(EngineError::NotImplemented("IPv6 networks"));
        }
        errs.extend(validate_pool(
            &subnet,
            c.ip_range.as_deref().unwrap_or(""),
            c.gateway.as_deref().unwrap_or(""),
        ));
        v4.push(c);
    }
    if !errs.is_empty() {
        return Err(EngineError::invalid(format!(
            "invalid network config:\n{}",
            join(&errs)
        )));
    }
    if v4.len() > 1 {
        return Err(EngineError::NotImplemented(
            "more than one IPv4 subnet in a network",
        ));
    }
    Ok(v4.pop())
}

/// Docker's `validateEndpointSettings` for a container on network `name` (None = it does
/// not exist yet): addresses and aliases only on user-defined networks, static addresses
/// only inside a user-configured subnet.
pub(crate) fn validate_endpoint(
    name: &str,
    network: Option<&Network>,
    eps: &EndpointSettings,
) -> std::result::Result<(), String> {
    let mut errs = Vec::new();
    let ipam = eps.ipam_config.clone().unwrap_or_default();
    let v4 = ipam.ipv4_address.clone().unwrap_or_default();
    let v6 = ipam.ipv6_address.clone().unwrap_or_default();
    let user_defined = !is_predefined(name);
    if !user_defined {
        if !v4.is_empty() || !v6.is_empty() {
            errs.push(
                "user specified IP address is supported on user defined networks only".to_string(),
            );
        }
        if eps.aliases.as_ref().is_some_and(|a| !a.is_empty()) {
            errs.push(
                "network-scoped alias is supported only for containers in user defined networks"
                    .to_string(),
            );
        }
    }
    let parsed = if v4.is_empty() {
        None
    } else {
        match v4.parse::<Ipv4Addr>() {
            Ok(ip) if !ip.is_unspecified() => Some(ip),
            _ => {
                errs.push(format!("invalid IPv4 address: {v4}"));
                None
            }
        }
    };
    if !v6.is_empty() {
        errs.push(format!("invalid IPv6 address: {v6}"));
    }
    if let (Some(ip), Some(n)) = (parsed, network) {
        if user_defined {
            if n.meta.get(META_USER_SUBNET).is_some_and(|v| v == "true") {
                // dockerd checks the subnet (an address outside `--ip-range` is fine).
                if !n.subnet.contains(&ip) {
                    errs.push(format!(
                        "no configured subnet or ip-range contain the IP address {ip}"
                    ));
                }
            } else {
                errs.push("user specified IP address is supported only when connecting to networks with user configured subnets".to_string());
            }
        }
    }
    if let Some(mac) = eps.mac_address.as_deref().filter(|m| !m.is_empty()) {
        let ok = mac.split(':').count() == 6
            && mac
                .split(':')
                .all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok());
        if !ok {
            return Err(format!("invalid MAC address {mac}"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid endpoint settings:\n{}", join(&errs)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn ipam_errors_are_dockers() {
        assert_eq!(
            validate_pool("10.1.0.0/33", "", ""),
            vec!["invalid subnet 10.1.0.0/33: invalid CIDR block notation"]
        );
        assert_eq!(
            validate_pool("10.1.0.5/24", "", ""),
            vec!["invalid subnet 10.1.0.5/24: it should be 10.1.0.0/24"]
        );
        assert_eq!(
            validate_pool("10.1.0.0/24", "", "10.2.0.1"),
            vec![
                "invalid gateway 10.2.0.1: parent subnet 10.1.0.0/24 doesn't contain this address"
            ]
        );
        assert_eq!(
            validate_pool("10.1.0.0/24", "10.1.0.0/16", ""),
            vec!["invalid ip-range 10.1.0.0/16: CIDR block is bigger than its parent subnet 10.1.0.0/24"]
        );
        assert!(validate_pool("10.1.0.0/24", "10.1.0.128/25", "10.1.0.1").is_empty());
        let many = join(&["a".to_string(), "b\nc".to_string()]);
        assert_eq!(many, "* a\n* b\n\tc");
    }

    #[test]
    fn endpoint_settings_follow_dockers_rules() {
        let ip = |a: &str| EndpointSettings {
            ipam_config: Some(bollard_stubs::models::EndpointIpamConfig {
                ipv4_address: Some(a.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            validate_endpoint("bridge", None, &ip("172.17.0.9")).unwrap_err(),
            "invalid endpoint settings:\nuser specified IP address is supported on user defined networks only"
        );
        let aliased = EndpointSettings {
            aliases: Some(vec!["x".into()]),
            ..Default::default()
        };
        assert!(validate_endpoint("bridge", None, &aliased)
            .unwrap_err()
            .contains("network-scoped alias"));
        assert!(validate_endpoint("mynet", None, &aliased).is_ok());
        let mut n = Network {
            id: "n".into(),
            name: "mynet".into(),
            bridge: "b".into(),
            subnet: "10.9.0.0/24".parse().unwrap(),
            gateway: "10.9.0.1".parse().unwrap(),
            ip_range: None,
            internal: false,
            dns: true,
            masquerade: true,
            icc: true,
            mtu: None,
            labels: Default::default(),
            options: Default::default(),
            no_masquerade_to: vec![],
            accept_routed: false,
            meta: BTreeMap::from([(META_USER_SUBNET.to_string(), "true".to_string())]),
            created: 0,
        };
        assert!(validate_endpoint("mynet", Some(&n), &ip("10.9.0.7")).is_ok());
        assert_eq!(
            validate_endpoint("mynet", Some(&n), &ip("10.8.0.7")).unwrap_err(),
            "invalid endpoint settings:\nno configured subnet or ip-range contain the IP address 10.8.0.7"
        );
        assert_eq!(
            validate_endpoint("mynet", Some(&n), &ip("nonsense")).unwrap_err(),
            "invalid endpoint settings:\ninvalid IPv4 address: nonsense"
        );
        n.meta.clear();
        assert!(validate_endpoint("mynet", Some(&n), &ip("10.9.0.7"))
            .unwrap_err()
            .contains("networks with user configured subnets"));
    }
}
