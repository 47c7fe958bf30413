//! Published ports: Docker's `[ip:]hostPort:containerPort[/proto]` specs, and host ports held
//! by a bound socket for as long as they are published (what recent Docker does), so another
//! program cannot take them and a clash is found before anything is set up.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl std::str::FromStr for Protocol {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "" | "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(NetError::invalid(format!("Invalid proto: {s}"))),
        }
    }
}

/// One container port to publish. `host_port == 0` asks for an ephemeral port (`-P`, or `-p 80`);
/// a range `host_port..=host_port_end` takes the first free port in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// None = every host address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub host_port_end: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// A published port as set up: the host port is concrete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublishedPort {
    /// 0.0.0.0 = every host address.
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

fn parse_range(s: &str, what: &str) -> Result<(u16, u16)> {
    let bad = || NetError::invalid(format!("Invalid {what}: {s}"));
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if b < a {
        return Err(bad());
    }
    Ok((a, b))
}

/// Parses one `-p` value as Docker does (`8080:80`, `127.0.0.1:8080:80/udp`, `80`,
/// `8000-8002:80-82`, `8000-8010:80`, `127.0.0.1::80`), giving one mapping per container port.
pub fn parse_port_spec(spec: &str) -> Result<Vec<PortMapping>> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.parse::<Protocol>()?),
        None => (spec, Protocol::Tcp),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [ip, h, c] => (*ip, *h, *c),
        _ => {
            return Err(NetError::invalid(format!(
                "Invalid hostPort: {}",
                parts[..parts.len() - 1].join(":")
            )))
        }
    };
    if container.is_empty() {
        return Err(NetError::invalid(format!(
            "No port specified: {spec}<empty>"
        )));
    }
    let host_ip = match ip.trim_start_matches('[').trim_end_matches(']') {
        "" => None,
        ip => Some(
            ip.parse::<Ipv4Addr>()
                .map_err(|_| NetError::invalid(format!("Invalid ip address: {ip}")))?,
        ),
    };
    let (c0, c1) = parse_range(container, "containerPort")?;
    if c0 == 0 {
        return Err(NetError::invalid(format!(
            "Invalid containerPort: {container}"
        )));
    }
    let (h0, h1) = if host.is_empty() {
        (0, 0)
    } else {
        parse_range(host, "hostPort")?
    };
    let n = c1 - c0;
    if h0 != 0 && n != 0 && h1 - h0 != n {
        return Err(NetError::invalid(format!(
            "Invalid ranges specified for container and host Ports: {container} and {host}"
        )));
    }
    Ok((0..=n)
        .map(|i| {
            let (hp, hp_end) = match (h0, n) {
                (0, _) => (0, 0),
                (_, 0) => (h0, h1),
                _ => (h0 + i, h0 + i),
            };
            PortMapping {
                host_ip,
                host_port: hp,
                host_port_end: hp_end,
                container_port: c0 + i,
                protocol: proto,
            }
        })
        .collect())
}

/// A host port held by a bound (not listening) socket. Dropping it frees the port.
#[derive(Debug)]
pub(crate) struct Reservation {
    _socket: OwnedFd,
}

/// Binds a socket for the mapping in the calling thread's namespace: port 0 takes an ephemeral
/// port from the kernel's `ip_local_port_range`, as Docker's `-P` does.
pub(crate) fn reserve(m: &PortMapping) -> Result<(PublishedPort, Reservation)> {
    let ip = m.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let kind = match m.protocol {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    let ports: Vec<u16> = if m.host_port == 0 {
        vec![0]
    } else {
        (m.host_port..=m.host_port_end.max(m.host_port)).collect()
    };
    let mut last = None;
    for port in ports {
        let fd = socket(AddressFamily::Inet, kind, SockFlag::SOCK_CLOEXEC, None).map_err(|e| {
            NetError::Io {
                context: "open port socket".into(),
                source: e.into(),
            }
        })?;
        match bind(
            fd.as_raw_fd(),
            &SockaddrIn::from(SocketAddrV4::new(ip, port)),
        ) {
            Ok(()) => {
                let bound: SockaddrIn = getsockname(fd.as_raw_fd()).map_err(|e| NetError::Io {
                    context: "read bound port".into(),
                    source: e.into(),
                })?;
                return Ok((
                    PublishedPort {
                        host_ip: ip,
                        host_port: bound.port(),
                        container_port: m.container_port,
                        protocol: m.protocol,
                    },
                    Reservation { _socket: fd },
                ));
            }
            Err(e) => last = Some((port, e)),
        }
    }
    let (port, e) = last.expect("at least one port tried");
    match e {
        nix::Error::EADDRINUSE => Err(NetError::conflict(format!(
            "Bind for {ip}:{port} failed: port is already allocated"
        ))),
        nix::Error::EADDRNOTAVAIL => Err(NetError::invalid(format!(
            "Bind for {ip}:{port} failed: cannot assign requested address"
        ))),
        e => Err(NetError::Io {
            context: format!("bind {ip}:{port}"),
            source: e.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> PortMapping {
        let v = parse_port_spec(spec).unwrap();
        assert_eq!(v.len(), 1, "{spec}");
        v[0]
    }

    #[test]
    fn parses_docker_port_specs() {
        let m = one("127.0.0.1:8080:80/udp");
        assert_eq!(m.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(
            (m.host_port, m.container_port, m.protocol),
            (8080, 80, Protocol::Udp)
        );
        let m = one("80");
        assert_eq!((m.host_port, m.container_port), (0, 80));
        let m = one("127.0.0.1::80");
        assert_eq!((m.host_ip, m.host_port), (Some(Ipv4Addr::LOCALHOST), 0));
        let m = one("8000-8010:80");
        assert_eq!((m.host_port, m.host_port_end), (8000, 8010));
        let v = parse_port_spec("8000-8002:80-82/tcp").unwrap();
        assert_eq!(
            v.iter()
                .map(|m| (m.host_port, m.container_port))
                .collect::<Vec<_>>(),
            vec![(8000, 80), (8001, 81), (8002, 82)]
        );
    }

    #[test]
    fn rejects_bad_port_specs_with_dockers_messages() {
        let err = |s: &str| parse_port_spec(s).unwrap_err().to_string();
        assert_eq!(err("8080:80/sctpx"), "Invalid proto: sctpx");
        assert_eq!(err("8080:abc"), "Invalid containerPort: abc");
        assert_eq!(err("x:80"), "Invalid hostPort: x");
        assert_eq!(err("999999:80"), "Invalid hostPort: 999999");
        assert_eq!(err("1.2.3:80:80"), "Invalid ip address: 1.2.3");
        assert_eq!(
            err("8000-8001:80-82"),
            "Invalid ranges specified for container and host Ports: 80-82 and 8000-8001"
        );
        assert_eq!(err("8080:"), "No port specified: 8080:<empty>");
    }
}
