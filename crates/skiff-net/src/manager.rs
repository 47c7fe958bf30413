//! [`Net`]: the handle callers hold; configuration, loading state, and networks.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ipnet::Ipv4Net;

use crate::dns::server::{nameservers, Dns};
use crate::endpoint::Endpoint;
use crate::error::{NetError, Result};
use crate::ipam::Ipam;
use crate::link::{Netlink, Route};
use crate::netns::{self, NetnsRef};
use crate::network::{self, AddressPool, Network, NetworkSpec};
use crate::nft::Nft;
use crate::ports::Reservation;
use crate::reaper::Reaper;
use crate::sandbox::Sandbox;
use crate::services::ServiceDnat;
use crate::store::{self, Durable};

/// Where skiff-net keeps its state and which host namespace it works in.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// State that outlives a reboot: networks (`/var/lib/skiff/net`).
    pub state_dir: PathBuf,
    /// State that lives as long as the kernel objects: sandboxes' namespace files, sandbox and
    /// endpoint records, address claims (`/run/skiff/net`, a tmpfs).
    pub run_dir: PathBuf,
    /// The namespace bridges, NAT and published ports live in.
    pub host: NetnsRef,
    /// nftables table (family inet).
    pub table: String,
    /// Prefix of every interface skiff creates (bridges `<prefix>0`, `<prefix>-<id>`; host veth
    /// ends `<prefix>v<hash>`).
    pub prefix: String,
    /// Where default subnets come from.
    pub pools: Vec<AddressPool>,
    /// The host's resolver configuration (upstreams of the embedded DNS).
    pub resolv_conf: PathBuf,
    /// Upstreams that replace the resolv.conf ones (tests use a fake one on loopback).
    pub dns_upstreams: Option<Vec<SocketAddr>>,
}

impl NetConfig {
    pub fn new(state_dir: impl Into<PathBuf>, run_dir: impl Into<PathBuf>) -> NetConfig {
        NetConfig {
            state_dir: state_dir.into(),
            run_dir: run_dir.into(),
            host: NetnsRef::current(),
            table: "skiff".into(),
            prefix: "skiff".into(),
            pools: network::default_pools(),
            resolv_conf: "/etc/resolv.conf".into(),
            dns_upstreams: None,
        }
    }
}

pub(crate) struct Inner {
    pub cfg: NetConfig,
    pub host: Netlink,
    pub nft: Nft,
    pub ipam: Ipam,
    pub reaper: Reaper,
    pub dns: Arc<Dns>,
    /// Held for reading by endpoint operations, for writing by network create/remove.
    pub networks: tokio::sync::RwLock<BTreeMap<String, Network>>,
    pub endpoints: Mutex<BTreeMap<(String, String), Endpoint>>,
    pub sandboxes: Mutex<BTreeMap<String, Sandbox>>,
    /// The connection [`Net::create_sandbox`] opened inside a new sandbox, kept for its first
    /// attach (which would otherwise enter the namespace again, on a thread of its own);
    /// dropped by that attach or by the sandbox's removal.
    pub inside: Mutex<HashMap<String, Netlink>>,
    pub reservations: Mutex<HashMap<(String, String), Vec<Reservation>>>,
    /// Serialises nftables changes with the state they are computed from. Taken before a
    /// change is handed to a background task, so changes apply in the order they were made.
    pub nft_lock: Arc<tokio::sync::Mutex<()>>,
    /// Service ports translated to their endpoints ([`Net::set_services`]); not persisted:
    /// their owner sets them again after a restart.
    pub services: Mutex<Vec<ServiceDnat>>,
}

/// skiff's host networking. Cheap to clone; must be used on a tokio runtime.
#[derive(Clone)]
pub struct Net {
    pub(crate) inner: Arc<Inner>,
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Net {
    /// Loads the state; touches no kernel object (see [`Net::reconcile`]).
    pub async fn open(cfg: NetConfig) -> Result<Net> {
        let host = Netlink::open(&cfg.host)?;
        let networks: Vec<Network> = store::read_all(&cfg.state_dir.join("networks"))?;
        let run = &cfg.run_dir;
        let endpoints: Vec<Endpoint> = store::read_all(&run.join("endpoints"))?;
        let sandboxes: Vec<Sandbox> = store::read_all(&run.join("sandboxes"))?;
        let dns = Arc::new(Dns::default());
        let upstreams = match &cfg.dns_upstreams {
            Some(u) => u.clone(),
            None => nameservers(&std::fs::read_to_string(&cfg.resolv_conf).unwrap_or_default()),
        };
        dns.set_upstreams(upstreams);
        for e in &endpoints {
            if networks.iter().any(|n| n.id == e.network_id && n.dns) {
                dns.add(&e.network_id, &e.sandbox, e.address.addr(), &e.dns_names);
            }
        }
        let inner = Inner {
            nft: Nft {
                table: cfg.table.clone(),
                ns: cfg.host.clone(),
            },
            ipam: Ipam::new(run.join("ipam")),
            reaper: Reaper::start(cfg.host.clone(), Ipam::new(run.join("ipam"))),
            host,
            dns,
            networks: tokio::sync::RwLock::new(
                networks.into_iter().map(|n| (n.id.clone(), n)).collect(),
            ),
            endpoints: Mutex::new(
                endpoints
                    .into_iter()
                    .map(|e| ((e.sandbox.clone(), e.network_id.clone()), e))
                    .collect(),
            ),
            sandboxes: Mutex::new(sandboxes.into_iter().map(|s| (s.id.clone(), s)).collect()),
            inside: Mutex::new(HashMap::new()),
            reservations: Mutex::new(HashMap::new()),
            nft_lock: Arc::new(tokio::sync::Mutex::new(())),
            services: Mutex::new(Vec::new()),
            cfg,
        };
        Ok(Net {
            inner: Arc::new(inner),
        })
    }

    pub fn config(&self) -> &NetConfig {
        &self.inner.cfg
    }

    pub(crate) fn network_path(&self, id: &str) -> PathBuf {
        self.inner
            .cfg
            .state_dir
            .join("networks")
            .join(format!("{id}.json"))
    }

    /// Every network, by creation time.
    pub async fn networks(&self) -> Vec<Network> {
        let mut v: Vec<Network> = self.inner.networks.read().await.values().cloned().collect();
        v.sort_by_key(|n| n.created);
        v
    }

    /// Finds a network as Docker does: full id, exact name, then a unique id prefix.
    pub async fn network(&self, name_or_id: &str) -> Result<Network> {
        find(&*self.inner.networks.read().await, name_or_id).cloned()
    }

    /// Creates a network: validates it (Docker's messages), picks a subnet from the pools when
    /// none is given (skipping subnets of other networks and of the host's routes), creates its
    /// bridge and its nftables rules. Nothing stays behind when it fails.
    pub async fn create_network(&self, spec: NetworkSpec) -> Result<Network> {
        let mut nets = self.inner.networks.write().await;
        if spec.name.is_empty() {
            return Err(NetError::invalid("network name must not be empty"));
        }
        if nets.values().any(|n| n.name == spec.name) {
            return Err(NetError::conflict(format!(
                "network with name {} already exists",
                spec.name
            )));
        }
        let taken: Vec<Ipv4Net> = nets.values().map(|n| n.subnet).collect();
        let subnet = match spec.subnet.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => {
                let s = network::parse_cidr(s)?;
                if taken.iter().any(|t| network::overlaps(t, &s)) {
                    return Err(NetError::forbidden(
                        "invalid pool request: Pool overlaps with other one on this address space",
                    ));
                }
                s
            }
            None => {
                let mut avoid = taken.clone();
                avoid.extend(self.inner.host.host_prefixes().await?);
                network::pick_subnet(&self.inner.cfg.pools, &avoid).ok_or_else(|| {
                    NetError::conflict(
                        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
                    )
                })?
            }
        };
        let id = spec.id.clone().unwrap_or_else(skiff_core::ids::random_id);
        if nets.contains_key(&id) {
            return Err(NetError::conflict(format!(
                "network with id {id} already exists"
            )));
        }
        let net = network::build(&spec, id, &self.inner.cfg.prefix, subnet, now_nanos())?;
        if nets.values().any(|n| n.bridge == net.bridge) {
            return Err(NetError::conflict(format!(
                "bridge name {} is already used by another network",
                net.bridge
            )));
        }
        if let Err(e) = self.setup_network(&net, &nets).await {
            let _ = self.inner.host.delete_link(&net.bridge).await;
            let _ = store::remove(&self.network_path(&net.id), Durable::Yes);
            return Err(e);
        }
        nets.insert(net.id.clone(), net.clone());
        Ok(net)
    }

    /// Creates (or re-creates) `net`'s bridge, sysctls and nftables rules.
    async fn setup_network(&self, net: &Network, others: &BTreeMap<String, Network>) -> Result<()> {
        self.bridge_up(net).await?;
        store::write_json(&self.network_path(&net.id), net, Durable::Yes)?;
        let mut all: Vec<&Network> = others.values().filter(|n| n.id != net.id).collect();
        all.push(net);
        self.rebuild_nft(&all).await
    }

    pub(crate) async fn bridge_up(&self, net: &Network) -> Result<()> {
        self.inner
            .host
            .ensure_bridge(&net.bridge, net.gateway_cidr(), net.mtu)
            .await?;
        let br = net.bridge.clone();
        self.inner.cfg.host.run(move || {
            netns::sysctl(&["net", "ipv4", "ip_forward"], "1")?;
            // Lets DNAT send traffic from the host's 127.0.0.1 to a container.
            netns::sysctl(&["net", "ipv4", "conf", &br, "route_localnet"], "1")
        })
    }

    /// Rewrites the whole nftables table for `networks` and the current endpoints; without
    /// networks there is no table at all (a daemon that never made one leaves no trace).
    pub(crate) async fn rebuild_nft(&self, networks: &[&Network]) -> Result<()> {
        let _g = self.inner.nft_lock.lock().await;
        if networks.is_empty() {
            return self.inner.nft.delete_table();
        }
        let eps: Vec<Endpoint> = self
            .inner
            .endpoints
            .lock()
            .expect("lock")
            .values()
            .cloned()
            .collect();
        let eps: Vec<&Endpoint> = eps.iter().filter(|e| !e.ports.is_empty()).collect();
        let services = self.inner.services.lock().expect("lock").clone();
        self.inner.nft.rebuild(networks, &eps, &services)
    }

    /// Translates connections to each Service port in `services` to its endpoints, replacing
    /// the Services set before; the rules live in the table of the networks, so they apply once
    /// a network exists (and are kept when networks come and go).
    pub async fn set_services(&self, services: Vec<ServiceDnat>) -> Result<()> {
        *self.inner.services.lock().expect("lock") = services;
        let nets = self.inner.networks.read().await;
        let all: Vec<&Network> = nets.values().collect();
        if all.is_empty() {
            return Ok(());
        }
        self.rebuild_nft(&all).await
    }

    /// Removes a network that has no endpoints (Docker's error otherwise).
    pub async fn remove_network(&self, name_or_id: &str) -> Result<()> {
        let mut nets = self.inner.networks.write().await;
        let net = find(&nets, name_or_id)?.clone();
        // Docker's list: `name:"web" id:"0123456789ab"` per endpoint.
        let busy: Vec<String> = self
            .inner
            .endpoints
            .lock()
            .expect("lock")
            .values()
            .filter(|e| e.network_id == net.id)
            .map(|e| {
                let name = e.dns_names.first().unwrap_or(&e.sandbox);
                let id = &e.sandbox[..e.sandbox.len().min(12)];
                format!("name:{name:?} id:{id:?}")
            })
            .collect();
        if !busy.is_empty() {
            return Err(NetError::forbidden(format!(
                "error while removing network: network {} has active endpoints ({})",
                net.name,
                busy.join(", ")
            )));
        }
        store::remove(&self.network_path(&net.id), Durable::Yes)?;
        nets.remove(&net.id);
        let rest: Vec<&Network> = nets.values().collect();
        self.rebuild_nft(&rest).await?;
        self.inner.host.delete_link(&net.bridge).await?;
        self.inner.ipam.remove_network(&net.id)
    }

    /// The default `bridge` network (`<prefix>0`, subnet from the pools), created on first use.
    pub async fn ensure_default_bridge(&self) -> Result<Network> {
        if let Ok(n) = self.network("bridge").await {
            return Ok(n);
        }
        self.create_network(NetworkSpec {
            name: "bridge".into(),
            bridge: Some(format!("{}0", self.inner.cfg.prefix)),
            ..Default::default()
        })
        .await
    }

    /// Makes skiff's routes in the host namespace exactly `routes` (pod CIDRs of other nodes via
    /// their node addresses, host-gw); routes of other owners are never touched.
    pub async fn set_routes(&self, routes: &[Route]) -> Result<()> {
        self.set_routes_within(Ipv4Net::default(), routes).await
    }

    /// Like [`Net::set_routes`], touching only skiff's routes to destinations inside `scope`
    /// (a node's cluster CIDR), so several skiff nodes or clusters sharing one host namespace
    /// keep each other's routes.
    pub async fn set_routes_within(&self, scope: Ipv4Net, routes: &[Route]) -> Result<()> {
        let have: Vec<Route> = self
            .inner
            .host
            .routes()
            .await?
            .into_iter()
            .filter(|r| scope.contains(&r.destination))
            .collect();
        for r in have.iter().filter(|r| !routes.contains(r)) {
            self.inner.host.delete_route(r).await?;
        }
        for r in routes.iter().filter(|r| !have.contains(r)) {
            self.inner.host.add_route(r).await?;
        }
        Ok(())
    }

    /// skiff's routes in the host namespace.
    pub async fn routes(&self) -> Result<Vec<Route>> {
        self.inner.host.routes().await
    }

    /// Waits until the nftables changes still running in the background (the removal of a
    /// released endpoint's published ports) are applied.
    pub async fn settle(&self) {
        drop(self.inner.nft_lock.lock().await);
    }

    /// Removes skiff's nftables table: every rule skiff made, at once.
    pub async fn delete_table(&self) -> Result<()> {
        let _g = self.inner.nft_lock.lock().await;
        self.inner.nft.delete_table()
    }
}

pub(crate) fn find<'a>(nets: &'a BTreeMap<String, Network>, key: &str) -> Result<&'a Network> {
    if let Some(n) = nets.get(key) {
        return Ok(n);
    }
    if let Some(n) = nets.values().find(|n| n.name == key) {
        return Ok(n);
    }
    let mut by_prefix = nets
        .values()
        .filter(|n| !key.is_empty() && n.id.starts_with(key));
    match (by_prefix.next(), by_prefix.next()) {
        (Some(n), None) => Ok(n),
        (Some(_), Some(_)) => Err(NetError::invalid(format!("network {key} is ambiguous"))),
        _ => Err(NetError::NotFound(format!("network {key} not found"))),
    }
}
