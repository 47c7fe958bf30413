//! A container's network from start to exit: a sandbox (its own network namespace, `lo`
//! up) with an endpoint on each network it is connected to — published ports on the first,
//! DNS names on user-defined ones — and its `/etc` files; all of it released at its exit.
//! `--network host` and `container:` containers get no sandbox of their own.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use bollard_stubs::models::EndpointSettings;
use skiff_net::{AttachRequest, ResolvMode, SandboxOptions};
use skiff_runtime::spec::NetworkMode;

use super::etc::{self, EtcInput};
use super::{not_found, ports};
use crate::containers::config::{self, Network};
use crate::containers::Container;
use crate::error::{EngineError, Result};
use crate::store::ContainerRecord;
use crate::Engine;

/// The networks a container asks for, the one of its `NetworkMode` first (it gets the
/// published ports and the default route), then the others by name.
pub(crate) fn ordered(rec: &ContainerRecord) -> Vec<(String, EndpointSettings)> {
    let Ok(Network::Named(primary)) = config::network(rec.host_config.network_mode.as_deref())
    else {
        return Vec::new();
    };
    let mut nets: BTreeMap<String, EndpointSettings> = rec.networks.clone();
    if nets.is_empty() && !rec.networks_cleared {
        // Records written before containers had networks.
        nets.insert(primary.clone(), EndpointSettings::default());
    }
    let mut out = Vec::new();
    if let Some(first) = nets.remove(&primary) {
        out.push((primary, first));
    }
    out.extend(nets);
    out
}

/// The names the embedded DNS answers for the container on a user-defined network: its
/// name, its aliases, its short id and its hostname (Docker's `DNSNames`).
pub(crate) fn dns_names(rec: &ContainerRecord, aliases: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |n: &str| {
        if !n.is_empty() && !out.iter().any(|o| o == n) {
            out.push(n.to_string());
        }
    };
    push(rec.short_name());
    for a in aliases {
        push(a);
    }
    push(&rec.id[..12.min(rec.id.len())]);
    push(rec.config.hostname.as_deref().unwrap_or(""));
    out
}

/// The static IPv4 address an endpoint asks for (checked at create and connect).
pub(crate) fn static_ip(eps: &EndpointSettings) -> Option<Ipv4Addr> {
    eps.ipam_config
        .as_ref()
        .and_then(|c| c.ipv4_address.as_deref())
        .filter(|a| !a.is_empty())
        .and_then(|a| a.parse().ok())
}

impl Engine {
    /// At start: the network namespace the container's spec joins and the directory of the
    /// `/etc` files it mounts, with those files written. Returns the record as it stands
    /// (a `container:` container takes its peer's hostname). Nothing stays behind when it
    /// fails.
    pub(crate) async fn network_up(
        &self,
        c: &Arc<Container>,
        rec: ContainerRecord,
    ) -> Result<(NetworkMode, PathBuf, ContainerRecord)> {
        match config::network(rec.host_config.network_mode.as_deref())? {
            Network::Host => {
                self.write_etc(c, &rec, ResolvMode::Host, Vec::new())
                    .await?;
                Ok((NetworkMode::Host, c.dir.clone(), rec))
            }
            Network::Container(other) => {
                // Like Docker, it joins the other's namespace and takes its name and its
                // /etc/hostname, /etc/hosts and /etc/resolv.conf.
                let other = self.find(&other)?;
                let o = other.rec();
                if !o.state.status.is_alive() {
                    return Err(EngineError::Conflict(format!(
                        "cannot join network namespace of a non running container: container {} is {}",
                        o.short_name(),
                        o.state.status.as_str()
                    )));
                }
                let rec = c.update(|r| {
                    r.config.hostname = o.config.hostname.clone();
                    r.clone()
                })?;
                let net = &self.networking.net;
                let path = match net.sandbox(&other.id) {
                    Some(sb) => sb.path,
                    None => PathBuf::from(format!("/proc/{}/ns/net", o.state.pid)),
                };
                Ok((NetworkMode::Path(path), other.dir.clone(), rec))
            }
            // A pod's sandbox: its owner made it and gives the container its /etc files.
            Network::Path(path) => Ok((NetworkMode::Path(path), c.dir.clone(), rec)),
            Network::None | Network::Named(_) => {
                let path = self.sandbox_up(c, &rec).await?;
                Ok((NetworkMode::Path(path), c.dir.clone(), rec))
            }
        }
    }

    /// Creates the container's sandbox and its endpoints, then its /etc files.
    async fn sandbox_up(&self, c: &Arc<Container>, rec: &ContainerRecord) -> Result<PathBuf> {
        let net = &self.networking.net;
        if net.sandbox(&c.id).is_some() {
            // Left by an exit the engine did not see through (a crash in between).
            net.remove_sandbox(&c.id).await?;
        }
        let mut resolved = Vec::new();
        for (name, eps) in ordered(rec) {
            let key = eps
                .network_id
                .as_deref()
                .filter(|id| !id.is_empty())
                .unwrap_or(&name);
            let n = match net.network(key).await {
                Ok(n) => n,
                Err(_) => match net.network(&name).await {
                    Ok(n) => n,
                    // As moby: with the default bridge disabled (`--bridge none`), a
                    // container on `bridge` (the default) runs with its network disabled.
                    Err(_) if name == "bridge" && self.networking.cfg.default_bridge.is_none() => {
                        continue
                    }
                    Err(_) => return Err(not_found(&name)),
                },
            };
            resolved.push((n, eps));
        }
        let embedded = resolved.iter().any(|(n, _)| n.dns);
        let dns = etc::overrides(&rec.host_config, &self.networking.cfg.dns);
        let options = SandboxOptions {
            dns_upstreams: if embedded {
                skiff_net::upstreams_from_overrides(&dns)
            } else {
                None
            },
        };
        let sb = net.create_sandbox(&c.id, options).await?;
        let done = async {
            let mappings = ports::mappings(
                &rec.config,
                &rec.host_config,
                self.networking.cfg.default_bind_ip,
            )?;
            let mut addresses: Vec<IpAddr> = Vec::new();
            for (i, (n, eps)) in resolved.iter().enumerate() {
                let aliases = eps.aliases.clone().unwrap_or_default();
                let ep = net
                    .attach(AttachRequest {
                        sandbox: c.id.clone(),
                        network: n.id.clone(),
                        ip: static_ip(eps),
                        dns_names: if n.dns {
                            dns_names(rec, &aliases)
                        } else {
                            Vec::new()
                        },
                        ports: if i == 0 && !n.internal {
                            mappings.clone()
                        } else {
                            Vec::new()
                        },
                    })
                    .await
                    .map_err(|e| {
                        // A taken host port is the one conflict an attach reports.
                        let e = if e.kind() == skiff_net::ErrorKind::Conflict {
                            EngineError::Conflict(format!(
                                "driver failed programming external connectivity on endpoint {} ({}): {e}",
                                rec.short_name(),
                                super::endpoint_id(&c.id, &n.id)
                            ))
                        } else {
                            e.into()
                        };
                        EngineError::NetworkSetup(Box::new(e))
                    })?;
                addresses.push(IpAddr::V4(ep.address.addr()));
            }
            let mode = if embedded {
                ResolvMode::Embedded
            } else {
                ResolvMode::External
            };
            self.write_etc(c, rec, mode, addresses).await
        }
        .await;
        if let Err(e) = done {
            if let Err(r) = net.remove_sandbox(&c.id).await {
                tracing::warn!(id = %c.id, error = %r, "removing the sandbox of a failed start");
            }
            return Err(e);
        }
        Ok(sb.path)
    }

    /// Writes the container's /etc files for its network.
    pub(crate) async fn write_etc(
        &self,
        c: &Container,
        rec: &ContainerRecord,
        mode: ResolvMode,
        addresses: Vec<IpAddr>,
    ) -> Result<()> {
        let host_resolv = self.networking.host_resolv_conf();
        let input = EtcInput {
            hostname: rec.config.hostname.as_deref().unwrap_or(""),
            domainname: rec.config.domainname.as_deref().unwrap_or(""),
            hc: &rec.host_config,
            mode,
            addresses,
            host_gateway: self.networking.host_gateway().await,
            host_resolv: &host_resolv,
            daemon_dns: &self.networking.cfg.dns,
        };
        etc::write(&c.dir, &input)
    }

    /// Rewrites a running container's /etc files from its endpoints (after connect and
    /// disconnect): its addresses in /etc/hosts, the embedded resolver once it is on a
    /// user-defined network.
    pub(crate) async fn refresh_etc(&self, c: &Container) -> Result<()> {
        let rec = c.rec();
        let net = &self.networking.net;
        let eps = net.endpoints(&c.id);
        let mut embedded = false;
        for ep in &eps {
            embedded |= net.network(&ep.network_id).await.is_ok_and(|n| n.dns);
        }
        let mode = if embedded {
            ResolvMode::Embedded
        } else {
            ResolvMode::External
        };
        let addresses = eps.iter().map(|e| IpAddr::V4(e.address.addr())).collect();
        self.write_etc(c, &rec, mode, addresses).await
    }

    /// Releases the container's sandbox and everything on it (ports, addresses, DNS names,
    /// veths); nothing to do when it has none. Failures are logged: the next daemon start
    /// removes what is left.
    pub(crate) async fn network_down(&self, id: &str) {
        let net = &self.networking.net;
        if net.sandbox(id).is_none() {
            return;
        }
        if let Err(e) = net.remove_sandbox(id).await {
            tracing::warn!(id, error = %e, "releasing the container's network");
        }
    }

    /// [`Self::network_down`], returning once the container's addresses are free again.
    pub(crate) async fn network_down_freeing_addresses(&self, id: &str) {
        let net = &self.networking.net;
        if net.sandbox(id).is_none() {
            return;
        }
        if let Err(e) = net.remove_sandbox_freeing_addresses(id).await {
            tracing::warn!(id, error = %e, "releasing the container's network");
        }
    }
}
