//! Sandboxes (a network namespace, no process) and their endpoints on networks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::endpoint::{mac_for, mac_string, AttachRequest, Endpoint};
use crate::error::{NetError, Result};
use crate::link::{self, Netlink};
use crate::manager::{find, Net};
use crate::netns::{self, NetnsRef};
use crate::network::Network;
use crate::ports::{self, PublishedPort, Reservation};
use crate::store::{self, Durable};

/// Per-sandbox settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxOptions {
    /// Upstreams of this sandbox's embedded DNS (`--dns`); None = the host's.
    pub dns_upstreams: Option<Vec<SocketAddr>>,
}

/// A network namespace bind-mounted at `path`; containers join it through their OCI spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    pub id: String,
    pub path: PathBuf,
    pub options: SandboxOptions,
}

impl Net {
    fn sandbox_record(&self, id: &str) -> PathBuf {
        self.inner
            .cfg
            .run_dir
            .join("sandboxes")
            .join(format!("{id}.json"))
    }

    fn endpoint_record(&self, sandbox: &str, network: &str) -> PathBuf {
        self.inner
            .cfg
            .run_dir
            .join("endpoints")
            .join(Endpoint::file_name(sandbox, network))
    }

    /// Where sandbox `id`'s namespace is (or would be) mounted.
    pub fn sandbox_path(&self, id: &str) -> PathBuf {
        self.inner.cfg.run_dir.join("netns").join(id)
    }

    pub fn sandbox(&self, id: &str) -> Option<Sandbox> {
        self.inner.sandboxes.lock().expect("lock").get(id).cloned()
    }

    pub fn sandboxes(&self) -> Vec<Sandbox> {
        self.inner
            .sandboxes
            .lock()
            .expect("lock")
            .values()
            .cloned()
            .collect()
    }

    /// Creates a sandbox: a new network namespace with `lo` up (what `--network none` gets, and
    /// what every other mode starts from).
    pub async fn create_sandbox(&self, id: &str, options: SandboxOptions) -> Result<Sandbox> {
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            return Err(NetError::invalid(format!("invalid sandbox id {id:?}")));
        }
        let path = self.sandbox_path(id);
        let sock = netns::create(&path, link::socket)?;
        let sb = Sandbox {
            id: id.to_string(),
            path: path.clone(),
            options,
        };
        let inside = Netlink::from_socket(sock);
        let made = async {
            inside.loopback_up().await?;
            store::write_json(&self.sandbox_record(id), &sb, Durable::No)
        }
        .await;
        if let Err(e) = made {
            let _ = netns::remove(&path);
            return Err(e);
        }
        self.inner
            .inside
            .lock()
            .expect("lock")
            .insert(id.to_string(), inside);
        self.inner
            .sandboxes
            .lock()
            .expect("lock")
            .insert(id.to_string(), sb.clone());
        Ok(sb)
    }

    /// Detaches every endpoint of the sandbox and removes its namespace. Missing is fine.
    ///
    /// Deleting a veth waits for the kernel's RCU grace periods (~30 ms here), so the veths
    /// and their addresses are let go in the background: everything a user can observe
    /// (published ports, DNS names, the endpoint, the namespace) is gone when this returns, and
    /// an address is only reused once its old interface is gone. A crash in between leaves a
    /// claim and a veth that [`Net::reconcile`] removes.
    pub async fn remove_sandbox(&self, id: &str) -> Result<()> {
        self.remove_sandbox_inner(id, false).await
    }

    /// [`Self::remove_sandbox`], returning only once the sandbox's addresses are free again
    /// (for a caller that hands one of them to another sandbox next).
    pub async fn remove_sandbox_freeing_addresses(&self, id: &str) -> Result<()> {
        self.remove_sandbox_inner(id, true).await
    }

    async fn remove_sandbox_inner(&self, id: &str, wait: bool) -> Result<()> {
        let eps = self.endpoints(id);
        {
            let nets = self.inner.networks.read().await;
            for ep in &eps {
                self.release_endpoint(ep, &nets, false).await?;
            }
        }
        self.inner.dns.remove_sandbox(id);
        self.inner.inside.lock().expect("lock").remove(id);
        netns::remove(&self.sandbox_path(id))?;
        store::remove(&self.sandbox_record(id), Durable::No)?;
        self.inner.sandboxes.lock().expect("lock").remove(id);
        let released: Vec<_> = eps.iter().map(|ep| self.release_interface(ep)).collect();
        if wait {
            for r in released {
                if let Ok(Err(e)) = r.await {
                    tracing::warn!(sandbox = id, error = %e, "releasing an interface");
                }
            }
        }
        // Otherwise not awaited: the reaper frees the address once the veth is gone.
        Ok(())
    }

    /// Deletes an endpoint's veth on the reaper thread, then frees its address.
    fn release_interface(&self, ep: &Endpoint) -> tokio::sync::oneshot::Receiver<Result<()>> {
        self.inner.reaper.delete(
            &ep.host_veth,
            Some((ep.network_id.clone(), ep.address.addr(), ep.sandbox.clone())),
        )
    }

    /// The sandbox's endpoints, by interface name.
    pub fn endpoints(&self, sandbox: &str) -> Vec<Endpoint> {
        let mut v: Vec<Endpoint> = self
            .inner
            .endpoints
            .lock()
            .expect("lock")
            .values()
            .filter(|e| e.sandbox == sandbox)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.interface.cmp(&b.interface));
        v
    }

    /// Every endpoint on a network.
    pub fn network_endpoints(&self, network_id: &str) -> Vec<Endpoint> {
        self.inner
            .endpoints
            .lock()
            .expect("lock")
            .values()
            .filter(|e| e.network_id == network_id)
            .cloned()
            .collect()
    }

    /// Attaches a sandbox to a network: host ports reserved first (so a taken port fails
    /// before anything exists), an address claimed, a veth pair made (host end in the bridge,
    /// other end in the sandbox as `ethN` with Docker's MAC), address and default route set,
    /// published ports added to nftables, names registered with the DNS. Works on a sandbox
    /// that containers already run in. Nothing stays behind when it fails.
    pub async fn attach(&self, req: AttachRequest) -> Result<Endpoint> {
        let nets = self.inner.networks.read().await;
        let net = find(&nets, &req.network)?.clone();
        let sb = self
            .sandbox(&req.sandbox)
            .ok_or_else(|| NetError::NotFound(format!("sandbox {} not found", req.sandbox)))?;
        let key = (req.sandbox.clone(), net.id.clone());
        // Ports first: a clash must leave nothing behind.
        let mappings = req.ports.clone();
        let reserved: Vec<(PublishedPort, Reservation)> = self
            .inner
            .cfg
            .host
            .run(move || mappings.iter().map(ports::reserve).collect())?;
        let ip = self.inner.ipam.allocate(&net, &req.sandbox, req.ip)?;
        let ep = {
            let mut eps = self.inner.endpoints.lock().expect("lock");
            if eps.contains_key(&key) {
                drop(eps);
                self.inner.ipam.release(&net.id, ip, &req.sandbox)?;
                return Err(NetError::forbidden(format!(
                    "endpoint with name {} already exists in network {}",
                    req.dns_names.first().unwrap_or(&req.sandbox),
                    net.name
                )));
            }
            let used: Vec<&str> = eps
                .values()
                .filter(|e| e.sandbox == req.sandbox)
                .map(|e| e.interface.as_str())
                .collect();
            let interface = (0..)
                .map(|i| format!("eth{i}"))
                .find(|n| !used.contains(&n.as_str()))
                .expect("a free name");
            let ep = Endpoint {
                sandbox: req.sandbox.clone(),
                network_id: net.id.clone(),
                network_name: net.name.clone(),
                interface,
                host_veth: Endpoint::veth_name(
                    &self.inner.cfg.prefix,
                    &req.sandbox,
                    &net.id,
                    |n| eps.values().any(|e| e.host_veth == n),
                ),
                address: Ipv4Net::new(ip, net.subnet.prefix_len()).expect("prefix of a subnet"),
                gateway: (!net.internal).then_some(net.gateway),
                mac: mac_string(mac_for(ip)),
                dns_names: req.dns_names.clone(),
                ports: reserved.iter().map(|(p, _)| *p).collect(),
            };
            eps.insert(key.clone(), ep.clone());
            ep
        };
        match self.plumb(&net, &sb, &ep).await {
            Ok(()) => {
                let held = reserved.into_iter().map(|(_, r)| r).collect();
                self.inner
                    .reservations
                    .lock()
                    .expect("lock")
                    .insert(key, held);
                Ok(ep)
            }
            Err(e) => {
                tracing::warn!(sandbox = %ep.sandbox, network = %net.name, error = %e, "attach failed, rolling back");
                if !ep.ports.is_empty() {
                    let _g = self.inner.nft_lock.lock().await;
                    // Absent when adding them was what failed: nothing to undo then.
                    let _ = self.inner.nft.apply(&self.inner.nft.ports_del(&ep));
                }
                let _ = self.inner.reaper.delete(&ep.host_veth, None).await;
                let _ = store::remove(&self.endpoint_record(&ep.sandbox, &net.id), Durable::No);
                self.inner.endpoints.lock().expect("lock").remove(&key);
                let _ = self.inner.ipam.release(&net.id, ip, &ep.sandbox);
                if net.dns {
                    self.inner.dns.remove(&net.id, &ep.sandbox);
                }
                Err(e)
            }
        }
    }

    /// The kernel side of an attach, after the record is in memory.
    async fn plumb(&self, net: &Network, sb: &Sandbox, ep: &Endpoint) -> Result<()> {
        // Recorded before any kernel object exists, so a crash leaves something reconcile finds.
        store::write_json(&self.endpoint_record(&ep.sandbox, &net.id), ep, Durable::No)?;
        // Published ports go into nftables while the veth is made: the rules need only the
        // address, and an nft run costs as much as the rest of the plumbing.
        let ports = if ep.ports.is_empty() {
            None
        } else {
            let guard = self.inner.nft_lock.clone().lock_owned().await;
            let (nft, script) = (self.inner.nft.clone(), self.inner.nft.ports_add(ep));
            Some(tokio::task::spawn_blocking(move || {
                let done = nft.apply(&script);
                drop(guard);
                done
            }))
        };
        let plumbed = self.plumb_links(net, sb, ep).await;
        if let Some(ports) = ports {
            ports
                .await
                .map_err(|e| NetError::Nft(format!("nft task: {e}")))??;
        }
        plumbed?;
        if net.dns {
            self.inner
                .dns
                .add(&net.id, &ep.sandbox, ep.address.addr(), &ep.dns_names);
            self.inner.dns.serve(
                &ep.sandbox,
                &NetnsRef::path(&sb.path),
                sb.options.dns_upstreams.clone(),
            )?;
        }
        Ok(())
    }

    /// The endpoint's veth pair, its address and routes.
    async fn plumb_links(&self, net: &Network, sb: &Sandbox, ep: &Endpoint) -> Result<()> {
        let bridge =
            match self.inner.host.index(&net.bridge).await? {
                Some(i) => i,
                None => {
                    self.bridge_up(net).await?;
                    self.inner.host.index(&net.bridge).await?.ok_or_else(|| {
                        NetError::NotFound(format!("bridge {} missing", net.bridge))
                    })?
                }
            };
        let sandbox_ns = std::fs::File::open(&sb.path).map_err(|e| NetError::Io {
            context: format!("open sandbox {}", sb.path.display()),
            source: e,
        })?;
        let add = || {
            self.inner.host.add_veth(
                &ep.host_veth,
                bridge,
                &ep.interface,
                mac_for(ep.address.addr()),
                &sandbox_ns,
                net.mtu,
            )
        };
        match add().await {
            // A veth of a released endpoint, still waiting on the reaper, has this name (names
            // are random, so this is rare): the reaper works in order, so once a deletion
            // queued now is done, the old one is gone too.
            Err(NetError::Conflict(_)) => {
                let flushed = self.inner.reaper.delete(&ep.host_veth, None).await;
                flushed.map_err(|_| NetError::Nft("reaper thread is gone".into()))??;
                add().await?;
            }
            other => other?,
        }
        let fresh = self.inner.inside.lock().expect("lock").remove(&sb.id);
        let inside = match fresh {
            Some(inside) => inside,
            None => Netlink::from_socket(NetnsRef::path(&sb.path).run(link::socket)?),
        };
        inside
            .configure_interface(&ep.interface, ep.address, ep.gateway)
            .await
    }

    /// Detaches a sandbox from a network (also while containers run in it): ports, veth,
    /// address and DNS names go. A missing endpoint is Docker's error.
    pub async fn detach(&self, sandbox: &str, network: &str) -> Result<()> {
        let nets = self.inner.networks.read().await;
        let net = find(&nets, network)?.clone();
        let key = (sandbox.to_string(), net.id.clone());
        let ep = self
            .inner
            .endpoints
            .lock()
            .expect("lock")
            .get(&key)
            .cloned()
            .ok_or_else(|| {
                NetError::NotFound(format!(
                    "container {sandbox} is not connected to network {}",
                    net.name
                ))
            })?;
        self.release_endpoint(&ep, &nets, true).await
    }

    /// Undoes everything of one endpoint; the veth and the address too when `interface`
    /// (otherwise the caller does it with [`Net::release_interface`]).
    pub(crate) async fn release_endpoint(
        &self,
        ep: &Endpoint,
        nets: &BTreeMap<String, Network>,
        interface: bool,
    ) -> Result<()> {
        let dns = nets.get(&ep.network_id).is_some_and(|n| n.dns);
        let key = (ep.sandbox.clone(), ep.network_id.clone());
        let held = self.inner.reservations.lock().expect("lock").remove(&key);
        if !ep.ports.is_empty() {
            // Deleting costs an nft run whose exit waits out the kernel's RCU grace period for
            // the freed rules (~10 ms on top): it runs in the background. The lock is taken
            // here, so every later nftables change (a new port on the same host port included)
            // applies after this one; `Net::settle` waits for it.
            let guard = self.inner.nft_lock.clone().lock_owned().await;
            let (nft, script) = (self.inner.nft.clone(), self.inner.nft.ports_del(ep));
            tokio::task::spawn_blocking(move || {
                if let Err(e) = nft.apply(&script) {
                    // Already gone (a rebuilt table): fine; anything else is reported.
                    tracing::debug!(error = %e, "removing published ports");
                }
                drop(guard);
            });
        }
        // The host ports are free for host programs at once.
        drop(held);
        if dns {
            self.inner.dns.remove(&ep.network_id, &ep.sandbox);
        }
        if interface {
            self.release_interface(ep)
                .await
                .unwrap_or_else(|_| Err(NetError::Nft("reaper thread is gone".into())))?;
        }
        store::remove(
            &self.endpoint_record(&ep.sandbox, &ep.network_id),
            Durable::No,
        )?;
        self.inner.endpoints.lock().expect("lock").remove(&key);
        let still_dns = self
            .endpoints(&ep.sandbox)
            .iter()
            .any(|e| nets.get(&e.network_id).is_some_and(|n| n.dns));
        if dns && !still_dns {
            self.inner.dns.remove_sandbox(&ep.sandbox);
        }
        Ok(())
    }
}
