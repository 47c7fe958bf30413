//! Published ports: `HostConfig.PortBindings` and `PublishAllPorts` (what the docker CLI
//! makes of `-p` and `-P`) into skiff-net's mappings, checked the way dockerd checks them, and
//! the published ports back as `NetworkSettings.Ports` and `docker ps`'s `Ports`.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use bollard_stubs::models::{
    ContainerConfig, HostConfig, PortBinding, PortMap, PortSummary, PortSummaryTypeEnum,
};
use skiff_net::{PortMapping, Protocol, PublishedPort};

use crate::error::{EngineError, Result};

/// A container port key (`80/tcp`, `53/udp`, `80` meaning tcp).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PortKey {
    pub port: u16,
    pub proto: Protocol,
}

impl std::fmt::Display for PortKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.port, self.proto)
    }
}

fn bad_spec(s: &str) -> EngineError {
    EngineError::invalid(format!("invalid port specification: {s:?}"))
}

/// A port or range, `1-65535` (Docker's `nat.ParsePortRange`).
fn parse_range(s: &str) -> Result<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().map_err(|_| bad_spec(s))?;
    let b: u16 = b.parse().map_err(|_| bad_spec(s))?;
    if b < a {
        return Err(bad_spec(s));
    }
    Ok((a, b))
}

/// Parses a `PortBindings`/`ExposedPorts` key.
pub(crate) fn parse_key(key: &str) -> Result<PortKey> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let port: u16 = port.parse().map_err(|_| bad_spec(port))?;
    let proto = match proto.to_ascii_lowercase().as_str() {
        "" | "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => return Err(EngineError::NotImplemented("publishing sctp ports")),
        _ => return Err(bad_spec(key)),
    };
    Ok(PortKey { port, proto })
}

/// Checks `PortBindings` the way dockerd's `validatePortBindings` does.
pub(crate) fn validate(hc: &HostConfig) -> Result<()> {
    for (key, bindings) in hc.port_bindings.iter().flatten() {
        parse_key(key)?;
        for b in bindings.iter().flatten() {
            let hp = b.host_port.as_deref().unwrap_or("");
            if !hp.is_empty() {
                parse_range(hp)?;
            }
            host_ip(b.host_ip.as_deref().unwrap_or(""))?;
        }
    }
    Ok(())
}

/// With `-P`, every exposed port is published: one skiff cannot publish (SCTP) is refused
/// at create, as an explicit `-p` of it is.
pub(crate) fn validate_publish_all(config: &ContainerConfig, hc: &HostConfig) -> Result<()> {
    if hc.publish_all_ports.unwrap_or(false) {
        for key in config.exposed_ports.iter().flatten() {
            parse_key(key)?;
        }
    }
    Ok(())
}

/// A binding's host address: None = every address. IPv6 ones are refused (skiff publishes
/// on IPv4 only).
fn host_ip(s: &str) -> Result<Option<Ipv4Addr>> {
    match s.trim_start_matches('[').trim_end_matches(']') {
        "" | "0.0.0.0" => Ok(None),
        "::" => Ok(None),
        ip => match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v4)) => Ok(Some(v4)),
            Ok(std::net::IpAddr::V6(_)) => Err(EngineError::NotImplemented(
                "publishing ports on IPv6 host addresses",
            )),
            Err(_) => Err(EngineError::invalid(format!("invalid IP address: {ip}"))),
        },
    }
}

/// Every container port the container shows: exposed ones and those with bindings.
pub(crate) fn exposed(config: &ContainerConfig, hc: &HostConfig) -> BTreeSet<PortKey> {
    let mut out = BTreeSet::new();
    for key in config.exposed_ports.iter().flatten() {
        if let Ok(k) = parse_key(key) {
            out.insert(k);
        }
    }
    for key in hc.port_bindings.iter().flatten().map(|(k, _)| k) {
        if let Ok(k) = parse_key(key) {
            out.insert(k);
        }
    }
    out
}

/// The mappings to publish: every binding (a range takes the first free port of it, an empty
/// host port an ephemeral one), and with `PublishAllPorts` an ephemeral port for every exposed
/// port without a binding. A binding without a host address uses `default_ip` (`--ip`).
pub(crate) fn mappings(
    config: &ContainerConfig,
    hc: &HostConfig,
    default_ip: Option<Ipv4Addr>,
) -> Result<Vec<PortMapping>> {
    let mut out = Vec::new();
    let mut bound = BTreeSet::new();
    let mut keys: Vec<(&String, &Option<Vec<PortBinding>>)> =
        hc.port_bindings.iter().flatten().collect();
    keys.sort_by_key(|(k, _)| parse_key(k).ok());
    for (key, bindings) in keys {
        let k = parse_key(key)?;
        let bindings = bindings.as_deref().unwrap_or_default();
        if bindings.is_empty() && !hc.publish_all_ports.unwrap_or(false) {
            continue;
        }
        bound.insert(k);
        let default_binding = [PortBinding::default()];
        let list = if bindings.is_empty() {
            &default_binding[..]
        } else {
            bindings
        };
        for b in list {
            if matches!(b.host_ip.as_deref(), Some(ip) if ip.contains(':')) {
                // An IPv6 binding next to the IPv4 one (`-p [::]:80:80`): IPv4 only here.
                continue;
            }
            let (h0, h1) = match b.host_port.as_deref().unwrap_or("") {
                "" => (0, 0),
                hp => parse_range(hp)?,
            };
            out.push(PortMapping {
                host_ip: host_ip(b.host_ip.as_deref().unwrap_or(""))?.or(default_ip),
                host_port: h0,
                host_port_end: h1,
                container_port: k.port,
                protocol: k.proto,
            });
        }
    }
    if hc.publish_all_ports.unwrap_or(false) {
        for k in exposed(config, hc) {
            if bound.insert(k) {
                out.push(PortMapping {
                    host_ip: default_ip,
                    host_port: 0,
                    host_port_end: 0,
                    container_port: k.port,
                    protocol: k.proto,
                });
            }
        }
    }
    Ok(out)
}

/// `NetworkSettings.Ports`: every exposed port, with the host ports it is published on (null
/// when none).
pub(crate) fn port_map(exposed: &BTreeSet<PortKey>, published: &[PublishedPort]) -> PortMap {
    let mut map: PortMap = HashMap::new();
    for k in exposed {
        map.insert(k.to_string(), None);
    }
    for p in published {
        let key = PortKey {
            port: p.container_port,
            proto: p.protocol,
        };
        let entry = map.entry(key.to_string()).or_insert(None);
        entry.get_or_insert_with(Vec::new).push(PortBinding {
            host_ip: Some(p.host_ip.to_string()),
            host_port: Some(p.host_port.to_string()),
        });
    }
    map
}

/// `docker ps`'s `Ports`: published ports, then exposed ones without a host port.
pub(crate) fn summary(
    exposed: &BTreeSet<PortKey>,
    published: &[PublishedPort],
) -> Vec<PortSummary> {
    let typ = |p: Protocol| match p {
        Protocol::Tcp => PortSummaryTypeEnum::TCP,
        Protocol::Udp => PortSummaryTypeEnum::UDP,
    };
    let mut out: Vec<PortSummary> = published
        .iter()
        .map(|p| PortSummary {
            ip: Some(p.host_ip.to_string()),
            private_port: p.container_port,
            public_port: Some(p.host_port),
            typ: Some(typ(p.protocol)),
        })
        .collect();
    for k in exposed {
        if !published
            .iter()
            .any(|p| p.container_port == k.port && p.protocol == k.proto)
        {
            out.push(PortSummary {
                ip: None,
                private_port: k.port,
                public_port: None,
                typ: Some(typ(k.proto)),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(bindings: &[(&str, &[(&str, &str)])], all: bool) -> HostConfig {
        HostConfig {
            port_bindings: Some(
                bindings
                    .iter()
                    .map(|(k, bs)| {
                        (
                            k.to_string(),
                            Some(
                                bs.iter()
                                    .map(|(ip, port)| PortBinding {
                                        host_ip: Some(ip.to_string()),
                                        host_port: Some(port.to_string()),
                                    })
                                    .collect(),
                            ),
                        )
                    })
                    .collect(),
            ),
            publish_all_ports: Some(all),
            ..Default::default()
        }
    }

    #[test]
    fn bindings_become_mappings_like_dockerd_reads_them() {
        let h = hc(
            &[
                ("80/tcp", &[("", "8080"), ("127.0.0.1", "9090")]),
                ("53/udp", &[("", "")]),
                ("81", &[("", "8000-8010")]),
            ],
            false,
        );
        let m = mappings(&ContainerConfig::default(), &h, None).unwrap();
        let got: Vec<_> = m
            .iter()
            .map(|m| {
                (
                    m.container_port,
                    m.protocol,
                    m.host_ip,
                    m.host_port,
                    m.host_port_end,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (53, Protocol::Udp, None, 0, 0),
                (80, Protocol::Tcp, None, 8080, 8080),
                (80, Protocol::Tcp, Some(Ipv4Addr::LOCALHOST), 9090, 9090),
                (81, Protocol::Tcp, None, 8000, 8010),
            ]
        );
        let config = ContainerConfig {
            exposed_ports: Some(vec!["443/tcp".into(), "80/tcp".into()]),
            ..Default::default()
        };
        let all = hc(&[("80/tcp", &[("", "8080")])], true);
        let m = mappings(&config, &all, Some(Ipv4Addr::new(10, 0, 0, 1))).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[1].container_port, m[1].host_port), (443, 0));
        assert_eq!(m[1].host_ip, Some(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn bad_bindings_get_dockers_message() {
        for (key, port, want) in [
            ("abc/tcp", "80", "invalid port specification: \"abc\""),
            ("80/tcp", "x", "invalid port specification: \"x\""),
            ("80/tcp", "9-2", "invalid port specification: \"9-2\""),
            ("99999", "1", "invalid port specification: \"99999\""),
        ] {
            let err = validate(&hc(&[(key, &[("", port)])], false)).unwrap_err();
            assert_eq!(err.to_string(), want);
        }
        assert!(validate(&hc(&[("80/tcp", &[("nonsense", "1")])], false)).is_err());
    }

    #[test]
    fn port_map_and_summary_show_published_and_exposed() {
        let exposed: BTreeSet<PortKey> = [parse_key("80/tcp").unwrap(), parse_key("22").unwrap()]
            .into_iter()
            .collect();
        let published = [PublishedPort {
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        }];
        let map = port_map(&exposed, &published);
        assert_eq!(map["22/tcp"], None);
        let b = map["80/tcp"].as_ref().unwrap();
        assert_eq!(
            (b[0].host_ip.as_deref(), b[0].host_port.as_deref()),
            (Some("0.0.0.0"), Some("8080"))
        );
        let s = summary(&exposed, &published);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].private_port, s[0].public_port), (80, Some(8080)));
        assert_eq!((s[1].private_port, s[1].public_port), (22, None));
    }
}
