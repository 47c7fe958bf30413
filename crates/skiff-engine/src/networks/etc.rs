//! A container's `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`, rendered by skiff-net's
//! renderers (the one implementation) from the container's settings and its network.
//!
//! The files live in the container's directory and are bind-mounted over their paths inside
//! (see `containers::rootfs`), so they are rewritten in place — same inode — when the
//! container's addresses change (start, `network connect`, `network disconnect`).

use std::net::IpAddr;
use std::path::Path;

use bollard_stubs::models::HostConfig;
use skiff_net::{DnsOverrides, HostsFile, ResolvMode};

use crate::error::{EngineError, IoContext, Result};

/// What the files are made from.
pub(crate) struct EtcInput<'a> {
    pub hostname: &'a str,
    pub domainname: &'a str,
    pub hc: &'a HostConfig,
    pub mode: ResolvMode,
    /// The container's addresses (its line in /etc/hosts).
    pub addresses: Vec<IpAddr>,
    pub host_gateway: Option<IpAddr>,
    /// The host's resolv.conf text.
    pub host_resolv: &'a str,
    /// The daemon's `--dns*` options.
    pub daemon_dns: &'a DnsOverrides,
}

/// The container's `--dns*` settings, or the daemon's where it has none.
pub(crate) fn overrides(hc: &HostConfig, daemon: &DnsOverrides) -> DnsOverrides {
    let pick = |own: &Option<Vec<String>>, daemon: &Vec<String>| match own {
        Some(v) if !v.is_empty() => v.clone(),
        _ => daemon.clone(),
    };
    DnsOverrides {
        servers: pick(&hc.dns, &daemon.servers),
        search: pick(&hc.dns_search, &daemon.search),
        options: pick(&hc.dns_options, &daemon.options),
    }
}

/// Checks `--add-host` entries (at create, so a bad one creates nothing).
pub(crate) fn validate_extra_hosts(hc: &HostConfig, host_gateway: Option<IpAddr>) -> Result<()> {
    // `host-gateway` needs the default bridge only once the file is written.
    let gateway = host_gateway.or(Some(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)));
    skiff_net::hosts(&HostsFile {
        extra_hosts: hc.extra_hosts.as_deref().unwrap_or_default(),
        host_gateway: gateway,
        ..Default::default()
    })
    .map(drop)
    .map_err(EngineError::from)
}

/// Writes the three files into `dir`, in place.
pub(crate) fn write(dir: &Path, input: &EtcInput<'_>) -> Result<()> {
    let host_hosts;
    let base = if input.mode == ResolvMode::Host {
        host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        Some(host_hosts.as_str())
    } else {
        None
    };
    let hosts = skiff_net::hosts(&HostsFile {
        hostname: input.hostname,
        domainname: input.domainname,
        addresses: input.addresses.clone(),
        extra_hosts: input.hc.extra_hosts.as_deref().unwrap_or_default(),
        host_gateway: input.host_gateway,
        base,
    })?;
    let dns = overrides(input.hc, input.daemon_dns);
    let resolv = skiff_net::resolv_conf(input.host_resolv, input.mode, &dns);
    write_in_place(&dir.join("hostname"), &skiff_net::hostname(input.hostname))?;
    write_in_place(&dir.join("hosts"), &hosts)?;
    write_in_place(&dir.join("resolv.conf"), &resolv)
}

/// Truncates and writes `path` (a running container sees the new text through its bind mount).
fn write_in_place(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(path, text).ctx(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_follow_the_network_and_the_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let hc = HostConfig {
            extra_hosts: Some(vec!["db:10.1.2.3".into()]),
            dns_search: Some(vec!["corp.test".into()]),
            ..Default::default()
        };
        let daemon = DnsOverrides {
            servers: vec!["192.0.2.53".into()],
            ..Default::default()
        };
        let input = EtcInput {
            hostname: "web",
            domainname: "",
            hc: &hc,
            mode: ResolvMode::External,
            addresses: vec!["172.18.0.2".parse().unwrap()],
            host_gateway: None,
            host_resolv: "nameserver 127.0.0.53\nsearch host.test\n",
            daemon_dns: &daemon,
        };
        write(dir.path(), &input).unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(read("hostname"), "web\n");
        assert!(read("hosts").contains("10.1.2.3\tdb\n"));
        assert!(read("hosts").ends_with("172.18.0.2\tweb\n"));
        assert_eq!(
            read("resolv.conf"),
            "nameserver 192.0.2.53\nsearch corp.test\n"
        );
        let embedded = EtcInput {
            mode: ResolvMode::Embedded,
            ..input
        };
        write(dir.path(), &embedded).unwrap();
        assert!(read("resolv.conf").starts_with("nameserver 127.0.0.11\n"));
        let bad = HostConfig {
            extra_hosts: Some(vec!["nohost".into()]),
            ..Default::default()
        };
        assert!(validate_extra_hosts(&bad, None).is_err());
        let gw = HostConfig {
            extra_hosts: Some(vec!["gw:host-gateway".into()]),
            ..Default::default()
        };
        assert!(validate_extra_hosts(&gw, None).is_ok());
    }
}
