//! The files a container sees: `/etc/resolv.conf`, `/etc/hosts`, `/etc/hostname`, rendered the
//! way Docker renders them.

use std::net::IpAddr;

/// `--dns`, `--dns-search`, `--dns-option` (empty = not given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsOverrides {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// Which resolver a container uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvMode {
    /// The host's network: the host's file as is (with overrides).
    Host,
    /// Own namespace without the embedded server (default bridge, `none`, pods with an
    /// explicit cluster resolver): the host's servers minus loopback ones (unreachable from a
    /// namespace), Google's when none remain.
    External,
    /// A user-defined network: `nameserver 127.0.0.11`; `--dns` servers become the embedded
    /// server's upstreams instead.
    Embedded,
}

struct Parsed {
    servers: Vec<String>,
    search: Vec<String>,
    options: Vec<String>,
}

fn parse(text: &str) -> Parsed {
    let mut p = Parsed {
        servers: Vec::new(),
        search: Vec::new(),
        options: Vec::new(),
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => p.servers.extend(words.next().map(str::to_string)),
            Some("search") | Some("domain") => p.search = words.map(str::to_string).collect(),
            Some("options") => p.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    p
}

fn is_loopback(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The container's resolv.conf from the host's and the overrides.
pub fn resolv_conf(host: &str, mode: ResolvMode, o: &DnsOverrides) -> String {
    let mut p = parse(host);
    match mode {
        ResolvMode::Host => {}
        ResolvMode::External => {
            p.servers.retain(|s| !is_loopback(s));
            if p.servers.is_empty() {
                p.servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
            }
        }
        ResolvMode::Embedded => p.servers = vec!["127.0.0.11".into()],
    }
    if !o.servers.is_empty() && mode != ResolvMode::Embedded {
        p.servers = o.servers.clone();
    }
    if !o.search.is_empty() {
        p.search = if o.search == ["."] {
            Vec::new()
        } else {
            o.search.clone()
        };
    }
    if !o.options.is_empty() {
        p.options = o.options.clone();
    }
    if mode == ResolvMode::Embedded && !p.options.iter().any(|x| x.starts_with("ndots:")) {
        p.options.insert(0, "ndots:0".into());
    }
    let mut out = String::new();
    for s in &p.servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !p.search.is_empty() {
        out.push_str(&format!("search {}\n", p.search.join(" ")));
    }
    if !p.options.is_empty() {
        out.push_str(&format!("options {}\n", p.options.join(" ")));
    }
    out
}

/// Upstream servers the embedded DNS uses for a container with `--dns` servers.
pub fn upstreams_from_overrides(o: &DnsOverrides) -> Option<Vec<std::net::SocketAddr>> {
    let v: Vec<std::net::SocketAddr> = o
        .servers
        .iter()
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .collect();
    (!v.is_empty()).then_some(v)
}

const HOSTS_HEADER: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// What goes into a container's /etc/hosts.
#[derive(Debug, Clone, Default)]
pub struct HostsFile<'a> {
    pub hostname: &'a str,
    /// `--domainname`: adds `hostname.domain` before the short name.
    pub domainname: &'a str,
    /// The container's own addresses (one line each with its names).
    pub addresses: Vec<IpAddr>,
    /// `--add-host NAME:IP` (or `NAME=IP`) entries; `host-gateway` stands for `host_gateway`.
    pub extra_hosts: &'a [String],
    pub host_gateway: Option<IpAddr>,
    /// The file to start from instead of Docker's localhost lines: the host's own
    /// `/etc/hosts` for a container on the host's network.
    pub base: Option<&'a str>,
}

/// Renders /etc/hosts; an `--add-host` whose address is not an IP is an error in Docker's words.
pub fn hosts(h: &HostsFile<'_>) -> Result<String, crate::NetError> {
    let mut out = match h.base {
        Some(base) if base.is_empty() || base.ends_with('\n') => base.to_string(),
        Some(base) => format!("{base}\n"),
        None => HOSTS_HEADER.to_string(),
    };
    for extra in h.extra_hosts {
        let Some((name, ip)) = extra.split_once(':').or_else(|| extra.split_once('=')) else {
            return Err(crate::NetError::Invalid(format!(
                "bad format for add-host: {extra:?}"
            )));
        };
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        let ip = if ip == "host-gateway" {
            h.host_gateway.map(|g| g.to_string()).ok_or_else(|| {
                crate::NetError::Invalid("unable to derive the IP value for host-gateway".into())
            })?
        } else {
            ip.parse::<IpAddr>()
                .map_err(|_| {
                    crate::NetError::Invalid(format!("invalid IP address in add-host: {ip:?}"))
                })?
                .to_string()
        };
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    if !h.hostname.is_empty() {
        let names = if h.domainname.is_empty() {
            h.hostname.to_string()
        } else {
            format!("{}.{} {}", h.hostname, h.domainname, h.hostname)
        };
        for a in &h.addresses {
            out.push_str(&format!("{a}\t{names}\n"));
        }
    }
    Ok(out)
}

/// /etc/hostname.
pub fn hostname(name: &str) -> String {
    format!("{name}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str =
        "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n";

    #[test]
    fn resolv_conf_like_docker() {
        let none = DnsOverrides::default();
        assert_eq!(
            resolv_conf(HOST, ResolvMode::External, &none),
            "nameserver 10.0.0.2\nsearch corp.example\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf(HOST, ResolvMode::Embedded, &none),
            "nameserver 127.0.0.11\nsearch corp.example\noptions ndots:0 edns0\n"
        );
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n", ResolvMode::External, &none),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let o = DnsOverrides {
            servers: vec!["1.1.1.1".into()],
            search: vec!["a.test".into()],
            options: vec!["ndots:2".into()],
        };
        assert_eq!(
            resolv_conf(HOST, ResolvMode::External, &o),
            "nameserver 1.1.1.1\nsearch a.test\noptions ndots:2\n"
        );
        assert_eq!(
            resolv_conf(HOST, ResolvMode::Embedded, &o),
            "nameserver 127.0.0.11\nsearch a.test\noptions ndots:2\n"
        );
        assert_eq!(
            upstreams_from_overrides(&o).unwrap()[0].to_string(),
            "1.1.1.1:53"
        );
    }

    #[test]
    fn hosts_with_extra_and_own_entries() {
        let extra = vec!["db:10.1.2.3".to_string(), "gw:host-gateway".to_string()];
        let text = hosts(&HostsFile {
            hostname: "web",
            domainname: "example.org",
            addresses: vec!["172.18.0.2".parse().unwrap()],
            extra_hosts: &extra,
            host_gateway: Some("172.17.0.1".parse().unwrap()),
            base: None,
        })
        .unwrap();
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(text.contains("10.1.2.3\tdb\n"));
        assert!(text.contains("172.17.0.1\tgw\n"));
        assert!(text.ends_with("172.18.0.2\tweb.example.org web\n"));
        let bad = vec!["nohost".to_string()];
        assert!(hosts(&HostsFile {
            extra_hosts: &bad,
            ..Default::default()
        })
        .is_err());
        assert_eq!(hostname("abc"), "abc\n");
        let host = hosts(&HostsFile {
            base: Some("127.0.0.1 localhost\n10.0.0.9 buildhost"),
            extra_hosts: &extra[..1],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            host,
            "127.0.0.1 localhost\n10.0.0.9 buildhost\n10.1.2.3\tdb\n"
        );
    }
}
