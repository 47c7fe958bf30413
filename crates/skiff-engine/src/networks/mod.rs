//! Docker's networks on top of [`skiff_net`]: the daemon's network options, the predefined
//! `bridge`, `host` and `none` networks, user-defined networks as Docker's API shows them
//! (`api`), a container's network at start and stop (`attach`), published ports (`ports`)
//! and the generated `/etc` files (`etc`).
//!
//! skiff-net owns every host object (bridges, veths, addresses, nftables, the embedded DNS);
//! this module owns what Docker adds: names and ids of the predefined networks, which
//! containers ask for which networks with which aliases and addresses, the validation and
//! the messages Docker clients expect.

pub(crate) mod api;
pub(crate) mod attach;
pub(crate) mod etc;
pub(crate) mod ports;
pub(crate) mod validate;
pub(crate) mod view;

use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use skiff_net::{DnsOverrides, Net, NetConfig, NetworkSpec};

use crate::error::{EngineError, IoContext, Result};

/// Network metadata key: Docker's `Attachable`.
pub(crate) const META_ATTACHABLE: &str = "docker.attachable";
/// Network metadata key: the subnet came from the request (static addresses are allowed).
pub(crate) const META_USER_SUBNET: &str = "docker.user-subnet";
/// Network metadata key: the IPAM options of the request.
pub(crate) const META_IPAM_OPTIONS: &str = "docker.ipam-options";

/// The default `bridge` network, as `--bridge` and `--bip` configure it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultBridge {
    /// Host interface name.
    pub interface: String,
    /// The bridge's own address with the subnet's prefix length (`--bip 10.1.0.1/24`); None =
    /// the first free subnet of the address pools.
    pub bip: Option<Ipv4Net>,
}

/// How the engine's networking is set up: `skiff daemon`'s network options.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// skiff-net's directories, nftables table, interface name prefix and address pools
    /// (`--default-address-pool`).
    pub net: NetConfig,
    /// The default `bridge` network; None = none at all (`--bridge none`).
    pub default_bridge: Option<DefaultBridge>,
    /// Daemon-wide `--dns`, `--dns-search`, `--dns-opt` (a container's own win).
    pub dns: DnsOverrides,
    /// `--ip`: the host address ports are published on when a binding names none.
    pub default_bind_ip: Option<Ipv4Addr>,
}

impl NetworkConfig {
    /// Production defaults for an engine on `root` and `state`: skiff-net's state under
    /// `<root>/network` and `<state>/net`, the nftables table and interface prefix `skiff`,
    /// the default bridge `skiff0` with a subnet from Docker's pools.
    pub fn new(root: &Path, state: &Path) -> NetworkConfig {
        let net = NetConfig::new(root.join("network"), state.join("net"));
        NetworkConfig {
            default_bridge: Some(DefaultBridge {
                interface: format!("{}0", net.prefix),
                bip: None,
            }),
            net,
            dns: DnsOverrides::default(),
            default_bind_ip: None,
        }
    }
}

/// Ids of the networks every daemon has besides `bridge` (persisted, as Docker's are).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Predefined {
    pub host: String,
    pub none: String,
}

impl Predefined {
    fn load(dir: &Path) -> Result<Predefined> {
        let path = dir.join("predefined.json");
        if let Ok(bytes) = std::fs::read(&path) {
            if let Ok(p) = serde_json::from_slice(&bytes) {
                return Ok(p);
            }
        }
        let p = Predefined {
            host: skiff_core::ids::random_id(),
            none: skiff_core::ids::random_id(),
        };
        std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        let tmp = dir.join(".predefined.json.tmp");
        let bytes = serde_json::to_vec(&p).expect("ids serialise");
        std::fs::write(&tmp, bytes).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).ctx(|| format!("write {}", path.display()))?;
        Ok(p)
    }
}

/// The engine's networking: skiff-net plus Docker's view of it.
pub(crate) struct Networking {
    pub net: Net,
    pub cfg: NetworkConfig,
    pub predefined: Predefined,
}

/// The names Docker reserves.
pub(crate) fn is_predefined(name: &str) -> bool {
    matches!(name, "bridge" | "host" | "none" | "default")
}

impl Networking {
    /// Opens skiff-net, removes every sandbox, endpoint, address, rule and DNS entry of
    /// containers not in `live` (the ones recorded as running), and sets up the default
    /// bridge as configured.
    pub(crate) async fn open(cfg: NetworkConfig, live: &[String]) -> Result<Networking> {
        let predefined = Predefined::load(&cfg.net.state_dir)?;
        let net = Net::open(cfg.net.clone()).await?;
        let report = net.reconcile(live).await?;
        if report != skiff_net::ReconcileReport::default() {
            tracing::info!(
                ?report,
                "removed the network state of containers that are gone"
            );
        }
        let n = Networking {
            net,
            cfg,
            predefined,
        };
        n.default_bridge().await?;
        Ok(n)
    }

    /// Creates, replaces or removes the `bridge` network to match the configuration. A
    /// `bridge` in use by running containers is kept as it is until they are gone.
    async fn default_bridge(&self) -> Result<()> {
        let existing = self.net.network("bridge").await.ok();
        let in_use = existing
            .as_ref()
            .is_some_and(|n| !self.net.network_endpoints(&n.id).is_empty());
        let Some(want) = &self.cfg.default_bridge else {
            if existing.is_some() && !in_use {
                self.net.remove_network("bridge").await?;
            }
            return Ok(());
        };
        if let Some(have) = &existing {
            let same_bridge = have.bridge == want.interface;
            let same_subnet = want
                .bip
                .is_none_or(|b| b.trunc() == have.subnet && b.addr() == have.gateway);
            if same_bridge && same_subnet {
                return Ok(());
            }
            if in_use {
                tracing::warn!(
                    bridge = %have.bridge,
                    subnet = %have.subnet,
                    "the default bridge's configuration changed, but running containers use it: kept as it is"
                );
                return Ok(());
            }
            self.net.remove_network("bridge").await?;
        }
        let spec = NetworkSpec {
            name: "bridge".into(),
            bridge: Some(want.interface.clone()),
            subnet: want.bip.map(|b| b.trunc().to_string()),
            gateway: want.bip.map(|b| b.addr().to_string()),
            ..Default::default()
        };
        let created = self.net.create_network(spec).await?;
        tracing::info!(bridge = %created.bridge, subnet = %created.subnet, "default bridge network created");
        Ok(())
    }

    /// The default bridge's gateway (`host-gateway` in `--add-host`).
    pub(crate) async fn host_gateway(&self) -> Option<std::net::IpAddr> {
        self.net
            .network("bridge")
            .await
            .ok()
            .map(|n| std::net::IpAddr::V4(n.gateway))
    }

    /// The host's resolver configuration.
    pub(crate) fn host_resolv_conf(&self) -> String {
        std::fs::read_to_string(&self.cfg.net.resolv_conf).unwrap_or_default()
    }
}

/// Docker's `EndpointID`: stable for a container on a network.
pub(crate) fn endpoint_id(container: &str, network_id: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(format!("{container}/{network_id}")))
}

/// The engine error for an unknown network, as Docker words it.
pub(crate) fn not_found(name: &str) -> EngineError {
    EngineError::NoSuchNetwork(name.to_string())
}
