//! Daemon start: make the kernel match the state of the sandboxes that still live, and remove
//! everything of those that are gone.

use std::collections::BTreeSet;

use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::manager::Net;
use crate::netns::{self, NetnsRef};
use crate::network::Network;
use crate::ports;
use crate::store::{self, Durable};

/// What [`Net::reconcile`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub sandboxes_removed: Vec<String>,
    pub endpoints_removed: usize,
    pub addresses_released: usize,
    pub links_removed: Vec<String>,
    /// Published ports of live endpoints that could not be held again (another program took
    /// the port while the daemon was down).
    pub ports_lost: Vec<String>,
}

impl Net {
    /// Keeps the sandboxes named in `live` and removes every other sandbox's namespace,
    /// endpoints, veths, addresses, published ports and DNS names, stray skiff interfaces and
    /// temporary files; then re-creates bridges, rewrites the nftables table, holds the live
    /// endpoints' host ports again and serves their DNS. Idempotent.
    pub async fn reconcile(&self, live: &[String]) -> Result<ReconcileReport> {
        let live: BTreeSet<&str> = live.iter().map(String::as_str).collect();
        let mut report = ReconcileReport::default();
        let nets = self.inner.networks.read().await;

        // Endpoints and sandboxes of the dead.
        let dead_eps: Vec<Endpoint> = self
            .inner
            .endpoints
            .lock()
            .expect("lock")
            .values()
            .filter(|e| !live.contains(e.sandbox.as_str()) || !nets.contains_key(&e.network_id))
            .cloned()
            .collect();
        for ep in &dead_eps {
            self.release_endpoint(ep, &nets, true).await?;
            report.endpoints_removed += 1;
        }
        let mut dead_sandboxes: BTreeSet<String> = self
            .sandboxes()
            .into_iter()
            .map(|s| s.id)
            .filter(|id| !live.contains(id.as_str()))
            .collect();
        if let Ok(dir) = std::fs::read_dir(self.inner.cfg.run_dir.join("netns")) {
            for e in dir.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if !live.contains(id.as_str()) {
                    dead_sandboxes.insert(id);
                }
            }
        }
        for id in dead_sandboxes {
            self.inner.dns.remove_sandbox(&id);
            self.inner.inside.lock().expect("lock").remove(&id);
            netns::remove(&self.sandbox_path(&id))?;
            store::remove(
                &self
                    .inner
                    .cfg
                    .run_dir
                    .join("sandboxes")
                    .join(format!("{id}.json")),
                Durable::No,
            )?;
            self.inner.sandboxes.lock().expect("lock").remove(&id);
            report.sandboxes_removed.push(id);
        }

        // Address claims without a live endpoint (a crash between claim and record).
        let eps: Vec<Endpoint> = self
            .inner
            .endpoints
            .lock()
            .expect("lock")
            .values()
            .cloned()
            .collect();
        for net_id in self.inner.ipam.networks() {
            if !nets.contains_key(&net_id) {
                self.inner.ipam.remove_network(&net_id)?;
                continue;
            }
            report.addresses_released += self.inner.ipam.retain(&net_id, |owner| {
                eps.iter()
                    .any(|e| e.network_id == net_id && e.sandbox == owner)
            })?;
        }

        // Stray interfaces: veths of no endpoint, bridges of no network.
        let prefix = &self.inner.cfg.prefix;
        for (name, kind) in self.inner.host.links_with_prefix(prefix).await? {
            // Only names skiff makes: `<prefix>v…` veths, `<prefix>0` / `<prefix>-…` bridges.
            let rest = &name[prefix.len()..];
            let known = match kind.as_str() {
                "veth" if rest.starts_with('v') => eps.iter().any(|e| e.host_veth == name),
                "bridge" if rest == "0" || rest.starts_with('-') => {
                    nets.values().any(|n| n.bridge == name)
                }
                _ => true,
            };
            if !known {
                self.inner
                    .reaper
                    .delete(&name, None)
                    .await
                    .unwrap_or_else(|_| {
                        Err(crate::NetError::Nft("reaper thread is gone".into()))
                    })?;
                report.links_removed.push(name);
            }
        }

        // What the living need.
        for n in nets.values() {
            self.bridge_up(n).await?;
        }
        let all: Vec<&Network> = nets.values().collect();
        self.rebuild_nft(&all).await?;
        for e in &eps {
            let key = (e.sandbox.clone(), e.network_id.clone());
            if e.ports.is_empty()
                || self
                    .inner
                    .reservations
                    .lock()
                    .expect("lock")
                    .contains_key(&key)
            {
                continue;
            }
            let mut held = Vec::new();
            for p in &e.ports {
                let m = crate::PortMapping {
                    host_ip: (!p.host_ip.is_unspecified()).then_some(p.host_ip),
                    host_port: p.host_port,
                    host_port_end: p.host_port,
                    container_port: p.container_port,
                    protocol: p.protocol,
                };
                match self.inner.cfg.host.run(move || ports::reserve(&m)) {
                    Ok((_, r)) => held.push(r),
                    Err(err) => {
                        tracing::warn!(sandbox = %e.sandbox, error = %err, "published port lost");
                        report
                            .ports_lost
                            .push(format!("{}:{}/{}", p.host_ip, p.host_port, p.protocol));
                    }
                }
            }
            self.inner
                .reservations
                .lock()
                .expect("lock")
                .insert(key, held);
        }
        for e in &eps {
            if nets.get(&e.network_id).is_some_and(|n| n.dns)
                && !self.inner.dns.has_server(&e.sandbox)
            {
                let sb = self.sandbox(&e.sandbox);
                let upstreams = sb.and_then(|s| s.options.dns_upstreams);
                self.inner.dns.serve(
                    &e.sandbox,
                    &NetnsRef::path(self.sandbox_path(&e.sandbox)),
                    upstreams,
                )?;
            }
        }
        Ok(report)
    }
}
