//! Address allocation kept in files, the design of CNI's `host-local` plugin: one file per
//! allocated address, named after it and holding its owner. A claim is a `link()` of a fully
//! written temporary file onto that name, which fails if the name exists — atomic across threads
//! and processes. A `kill -9` at any point leaves either no claim or a complete one (whose owner
//! [`crate::Net::reconcile`] can judge), so an address is never handed out twice. Claims live in
//! the run directory without fsync, like the sandboxes they belong to (see `store`).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::error::{Context, NetError, Result};
use crate::network::Network;

/// The refusal of an address another endpoint holds (Docker's words).
pub const ADDRESS_IN_USE: &str = "Address already in use";
use crate::store::{self, Durable};

pub(crate) struct Ipam {
    dir: PathBuf,
}

impl Ipam {
    pub(crate) fn new(dir: PathBuf) -> Ipam {
        Ipam { dir }
    }

    fn net_dir(&self, network: &str) -> PathBuf {
        self.dir.join(network)
    }

    /// Every claimed address of `network` and its owner.
    pub(crate) fn allocations(&self, network: &str) -> Result<BTreeMap<Ipv4Addr, String>> {
        let dir = self.net_dir(network);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(e).ctx(|| format!("read {}", dir.display())),
        };
        let mut out = BTreeMap::new();
        for entry in entries {
            let path = entry.ctx(|| format!("read {}", dir.display()))?.path();
            let Some(ip) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let owner = std::fs::read_to_string(&path).unwrap_or_default();
            out.insert(ip, owner);
        }
        Ok(out)
    }

    /// Claims `want` (Docker's errors when it is outside the subnet or taken), or the lowest
    /// free address of the network's range.
    pub(crate) fn allocate(
        &self,
        net: &Network,
        owner: &str,
        want: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr> {
        let dir = self.net_dir(&net.id);
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        if let Some(ip) = want {
            if !net.subnet.contains(&ip)
                || ip == net.subnet.network()
                || ip == net.subnet.broadcast()
            {
                return Err(NetError::invalid(format!(
                    "Invalid address {ip}: It does not belong to any of this network's subnets"
                )));
            }
            if ip == net.gateway || !self.claim(&dir, ip, owner)? {
                return Err(NetError::forbidden(ADDRESS_IN_USE));
            }
            return Ok(ip);
        }
        let range = net.ip_range.unwrap_or(net.subnet);
        let used = self.allocations(&net.id)?;
        for ip in range.hosts() {
            if ip == net.gateway
                || ip == net.subnet.network()
                || ip == net.subnet.broadcast()
                || used.contains_key(&ip)
            {
                continue;
            }
            // Another thread or process may have taken it since the listing: try the next.
            if self.claim(&dir, ip, owner)? {
                return Ok(ip);
            }
        }
        Err(NetError::conflict(format!(
            "no available IPv4 addresses on this network's address pools: {} ({})",
            net.name, net.id
        )))
    }

    /// Creates the claim file for `ip` atomically; false if it is already claimed.
    fn claim(&self, dir: &Path, ip: Ipv4Addr, owner: &str) -> Result<bool> {
        let path = dir.join(ip.to_string());
        let tmp = store::tmp_path(&path);
        let mut f = std::fs::File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        f.write_all(owner.as_bytes())
            .ctx(|| format!("write {}", tmp.display()))?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e).ctx(|| format!("claim {}", path.display())),
        }
    }

    /// Releases `ip` if `owner` holds it.
    pub(crate) fn release(&self, network: &str, ip: Ipv4Addr, owner: &str) -> Result<()> {
        let path = self.net_dir(network).join(ip.to_string());
        match std::fs::read_to_string(&path) {
            Ok(o) if o == owner => store::remove(&path, Durable::No),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx(|| format!("read {}", path.display())),
        }
    }

    /// Releases every claim of `network` whose owner `keep` rejects, and temporary files.
    pub(crate) fn retain(&self, network: &str, keep: impl Fn(&str) -> bool) -> Result<usize> {
        let dir = self.net_dir(network);
        let mut released = 0;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".tmp") {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                if !keep(&owner) {
                    store::remove(&path, Durable::No)?;
                    released += 1;
                }
            }
        }
        Ok(released)
    }

    /// Forgets a removed network's claims.
    pub(crate) fn remove_network(&self, network: &str) -> Result<()> {
        let dir = self.net_dir(network);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx(|| format!("remove {}", dir.display())),
        }
    }

    /// Network ids that have a claim directory.
    pub(crate) fn networks(&self) -> Vec<String> {
        std::fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}
