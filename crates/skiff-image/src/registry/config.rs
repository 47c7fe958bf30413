//! Which registries are reached how: plain HTTP only for insecure registries (configured,
//! or loopback as Docker allows by default), mirrors for Docker Hub, and the limits a
//! hostile registry runs into.

use std::net::IpAddr;

use super::error::{RegistryError, Result};

/// Docker Hub's canonical domain in references.
pub(crate) const DOCKER_HUB: &str = "docker.io";

/// The daemon's registry settings (`insecure-registries`, `registry-mirrors`,
/// `max-concurrent-downloads`, `max-concurrent-uploads` in Docker's `daemon.json`).
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Registries reached over plain HTTP: `host[:port]` entries or CIDRs
    /// (`10.0.0.0/8`). Loopback addresses and `localhost` are always insecure.
    pub insecure_registries: Vec<String>,
    /// Mirrors of Docker Hub, tried in order before it: `http://host:port` or `https://…`.
    pub mirrors: Vec<String>,
    /// Layers downloaded at once per pull (Docker's default is 3).
    pub max_concurrent_downloads: usize,
    /// Layers uploaded at once per push (Docker's default is 5).
    pub max_concurrent_uploads: usize,
    /// The largest manifest or index accepted (Docker's limit is 4 MiB).
    pub max_manifest_size: usize,
    /// The largest image config accepted.
    pub max_config_size: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure_registries: Vec::new(),
            mirrors: Vec::new(),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            max_manifest_size: 4 << 20,
            max_config_size: 8 << 20,
        }
    }
}

/// One place to fetch a repository from: the registry itself or a mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `host[:port]` as used in URLs.
    pub host: String,
    pub plain_http: bool,
    pub mirror: bool,
}

impl Endpoint {
    /// `http://host` or `https://host`.
    pub fn base_url(&self) -> String {
        let scheme = if self.plain_http { "http" } else { "https" };
        format!("{scheme}://{}", self.host)
    }
}

/// A checked [`RegistryConfig`].
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub config: RegistryConfig,
    insecure_hosts: Vec<String>,
    insecure_nets: Vec<(IpAddr, u8)>,
    mirrors: Vec<Endpoint>,
}

impl Resolved {
    pub fn new(config: RegistryConfig) -> Result<Resolved> {
        let mut insecure_hosts = Vec::new();
        let mut insecure_nets = Vec::new();
        for entry in &config.insecure_registries {
            let entry = entry
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/');
            match entry.split_once('/') {
                Some((ip, bits)) => {
                    let ip: IpAddr = ip.parse().map_err(|_| invalid_insecure(entry))?;
                    let bits: u8 = bits.parse().map_err(|_| invalid_insecure(entry))?;
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    if bits > max {
                        return Err(invalid_insecure(entry));
                    }
                    insecure_nets.push((ip, bits));
                }
                None if !entry.is_empty() => insecure_hosts.push(entry.to_string()),
                None => return Err(invalid_insecure(entry)),
            }
        }
        let mut mirrors = Vec::new();
        for m in &config.mirrors {
            let (plain_http, rest) = if let Some(rest) = m.strip_prefix("http://") {
                (true, rest)
            } else if let Some(rest) = m.strip_prefix("https://") {
                (false, rest)
            } else {
                return Err(RegistryError::Invalid(format!(
                    "invalid mirror {m:?}: it must start with http:// or https://"
                )));
            };
            let host = rest.trim_end_matches('/');
            if host.is_empty() || host.contains('/') {
                return Err(RegistryError::Invalid(format!(
                    "invalid mirror {m:?}: a mirror is a scheme and a host, without a path"
                )));
            }
            mirrors.push(Endpoint {
                host: host.to_string(),
                plain_http,
                mirror: true,
            });
        }
        Ok(Resolved {
            config,
            insecure_hosts,
            insecure_nets,
            mirrors,
        })
    }

    /// Whether `host[:port]` is reached over plain HTTP.
    pub fn is_insecure(&self, host: &str) -> bool {
        let name = strip_port(host);
        if name == "localhost" {
            return true;
        }
        if self.insecure_hosts.iter().any(|h| h == host || h == name) {
            return true;
        }
        let Ok(ip) = name.trim_matches(['[', ']']).parse::<IpAddr>() else {
            return false;
        };
        ip.is_loopback()
            || self
                .insecure_nets
                .iter()
                .any(|(net, bits)| in_net(ip, *net, *bits))
    }

    /// Where to fetch from, in order: Docker Hub's mirrors, then the registry itself.
    pub fn endpoints(&self, domain: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if domain == DOCKER_HUB {
            out.extend(self.mirrors.iter().cloned());
        }
        out.push(self.endpoint(domain));
        out
    }

    /// The registry itself (pushes never go to mirrors).
    pub fn endpoint(&self, domain: &str) -> Endpoint {
        Endpoint {
            host: domain.to_string(),
            plain_http: self.is_insecure(domain),
            mirror: false,
        }
    }
}

fn invalid_insecure(entry: &str) -> RegistryError {
    RegistryError::Invalid(format!(
        "invalid insecure registry {entry:?}: want host[:port] or a CIDR"
    ))
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.contains(':') => {
            name
        }
        _ => host,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(insecure: &[&str], mirrors: &[&str]) -> Resolved {
        Resolved::new(RegistryConfig {
            insecure_registries: insecure.iter().map(|s| s.to_string()).collect(),
            mirrors: mirrors.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn loopback_is_insecure_by_default_and_nothing_else() {
        let r = resolved(&[], &[]);
        for host in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.4.5",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(r.is_insecure(host), "{host}");
        }
        for host in [
            "docker.io",
            "10.0.0.1:5000",
            "registry.example:5000",
            "localhost.example",
        ] {
            assert!(!r.is_insecure(host), "{host}");
        }
    }

    #[test]
    fn configured_hosts_and_cidrs_are_insecure() {
        let r = resolved(
            &["registry.lan:5000", "10.1.0.0/16", "http://plain.example"],
            &[],
        );
        assert!(r.is_insecure("registry.lan:5000"));
        assert!(!r.is_insecure("registry.lan:5001"));
        assert!(r.is_insecure("10.1.200.3:443"));
        assert!(!r.is_insecure("10.2.0.1"));
        assert!(r.is_insecure("plain.example"));
        assert_eq!(
            r.endpoint("10.1.0.9:5000").base_url(),
            "http://10.1.0.9:5000"
        );
        assert_eq!(r.endpoint("quay.io").base_url(), "https://quay.io");
    }

    #[test]
    fn mirrors_serve_docker_hub_only_and_come_first() {
        let r = resolved(&[], &["http://127.0.0.1:5001", "https://mirror.example/"]);
        let hub = r.endpoints("docker.io");
        assert_eq!(
            hub.iter().map(Endpoint::base_url).collect::<Vec<_>>(),
            [
                "http://127.0.0.1:5001",
                "https://mirror.example",
                "https://docker.io"
            ]
        );
        assert!(hub[0].mirror && !hub[2].mirror);
        assert_eq!(r.endpoints("quay.io").len(), 1);
    }

    #[test]
    fn rejects_malformed_settings() {
        for (insecure, mirror) in [
            (vec!["10.0.0.0/33"], vec![]),
            (vec!["x/y"], vec![]),
            (vec![""], vec![]),
            (vec![], vec!["mirror.example"]),
            (vec![], vec!["https://mirror.example/path"]),
        ] {
            let config = RegistryConfig {
                insecure_registries: insecure.iter().map(|s| s.to_string()).collect(),
                mirrors: mirror.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            assert!(
                matches!(Resolved::new(config), Err(RegistryError::Invalid(_))),
                "{insecure:?} {mirror:?}"
            );
        }
    }
}
