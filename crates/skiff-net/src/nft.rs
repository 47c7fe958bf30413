//! skiff's nftables table: NAT, isolation and published ports, all in one `inet` table of its
//! own, written as `nft` transactions (the approach of Kubernetes' knftables): each change is one
//! atomic `nft -f -` run. Per-network and per-endpoint rules live in chains of their own,
//! reached through verdict maps keyed by interface, source subnet or port, so adding or removing
//! one never needs a rule handle; containers that publish no ports cause no nftables work.
//!
//! ```text
//! forward      iifname vmap @fwd-in  → n-<net>-in   (from a network: same bridge ok, other
//!                                                     skiff bridges dropped, internal dropped)
//!              oifname vmap @fwd-out → n-<net>-out  (into a network: replies, published
//!                                                     ports, routed pods; the rest dropped)
//! prerouting / output (nat): fib daddr type local, l4proto . dport vmap @published → p-<ep>
//! postrouting: localhost → bridge masquerade; ip saddr vmap @masq → n-<net>-masq
//! prerouting / output (nat): jump services → ip daddr . port → numgen vmap → s-<i>-<j> (DNAT
//!              to one endpoint of a Service, as kube-proxy's nftables mode does)
//! ```

use std::fmt::Write;
use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::endpoint::Endpoint;
use crate::error::{NetError, Result};
use crate::netns::NetnsRef;
use crate::network::Network;
use crate::services::ServiceDnat;

/// The nftables side of skiff-net: one table in one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Nft {
    pub table: String,
    pub ns: NetnsRef,
}

/// The chain of endpoint `j` of the `i`th Service port.
fn service_chain(i: usize, j: usize) -> String {
    format!("s-{i}-{j}")
}

fn net_chain(net: &Network, what: &str) -> String {
    format!("n-{}-{what}", &net.id[..12.min(net.id.len())])
}

impl Nft {
    /// Runs one transaction.
    pub(crate) fn apply(&self, script: &str) -> Result<()> {
        let script = script.to_string();
        self.ns.run(move || {
            let mut child = Command::new("nft")
                .args(["-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| NetError::Nft(format!("run nft: {e}")))?;
            child
                .stdin
                .take()
                .expect("piped")
                .write_all(script.as_bytes())
                .map_err(|e| NetError::Nft(format!("write to nft: {e}")))?;
            let out = child
                .wait_with_output()
                .map_err(|e| NetError::Nft(format!("wait for nft: {e}")))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(NetError::Nft(
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ))
            }
        })
    }

    /// The whole table for these networks and endpoints, replacing whatever was there: run at
    /// daemon start (reconcile) and whenever the set of networks changes.
    pub(crate) fn rebuild(
        &self,
        networks: &[&Network],
        endpoints: &[&Endpoint],
        services: &[ServiceDnat],
    ) -> Result<()> {
        self.apply(&self.render(networks, endpoints, services))
    }

    pub(crate) fn render(
        &self,
        networks: &[&Network],
        endpoints: &[&Endpoint],
        services: &[ServiceDnat],
    ) -> String {
        let t = &self.table;
        let mut s = String::new();
        // `add` then `delete` makes the delete succeed whether or not the table existed.
        let _ = writeln!(
            s,
            "add table inet {t}\ndelete table inet {t}\nadd table inet {t}"
        );
        // Chains before the maps that jump to them: nft 1.0.6 fails (ENOENT) to add an
        // interval-map element whose target chain is declared after the map in one batch.
        for n in networks {
            for what in ["in", "out", "masq"] {
                let _ = writeln!(s, "add chain inet {t} {}", net_chain(n, what));
            }
        }
        for e in endpoints.iter().filter(|e| !e.ports.is_empty()) {
            let _ = writeln!(s, "add chain inet {t} {}", e.port_chain());
        }
        let _ = writeln!(s, "add chain inet {t} services");
        for (i, svc) in services.iter().enumerate() {
            for j in 0..svc.endpoints.len() {
                let _ = writeln!(s, "add chain inet {t} {}", service_chain(i, j));
            }
        }
        let _ = writeln!(
            s,
            "add set inet {t} bridges {{ type ifname ; }}
add map inet {t} fwd-in {{ type ifname : verdict ; }}
add map inet {t} fwd-out {{ type ifname : verdict ; }}
add map inet {t} masq {{ type ipv4_addr : verdict ; flags interval ; }}
add map inet {t} published {{ type inet_proto . inet_service : verdict ; }}
add chain inet {t} forward {{ type filter hook forward priority filter ; policy accept ; }}
add rule inet {t} forward iifname vmap @fwd-in
add rule inet {t} forward oifname vmap @fwd-out
add chain inet {t} prerouting {{ type nat hook prerouting priority dstnat ; policy accept ; }}
add rule inet {t} prerouting meta l4proto {{ tcp, udp }} fib daddr type local meta l4proto . th dport vmap @published
add chain inet {t} output {{ type nat hook output priority -100 ; policy accept ; }}
add rule inet {t} output meta l4proto {{ tcp, udp }} fib daddr type local meta l4proto . th dport vmap @published
add rule inet {t} prerouting jump services
add rule inet {t} output jump services
add chain inet {t} postrouting {{ type nat hook postrouting priority srcnat ; policy accept ; }}
add rule inet {t} postrouting ip saddr 127.0.0.0/8 oifname @bridges masquerade
add rule inet {t} postrouting ip saddr vmap @masq"
        );
        for n in networks {
            s.push_str(&self.network_rules(n));
        }
        for e in endpoints {
            s.push_str(&self.ports_add(e));
        }
        for (i, svc) in services.iter().enumerate() {
            s.push_str(&self.service_rules(i, svc));
        }
        s
    }

    /// A Service port's DNAT: one chain per endpoint, picked at random per connection
    /// (nothing when it has no endpoints).
    fn service_rules(&self, i: usize, svc: &ServiceDnat) -> String {
        let t = &self.table;
        let mut s = String::new();
        if svc.endpoints.is_empty() {
            return s;
        }
        let proto = svc.protocol;
        let mut targets = Vec::new();
        for (j, ep) in svc.endpoints.iter().enumerate() {
            let chain = service_chain(i, j);
            let _ = writeln!(
                s,
                "add rule inet {t} {chain} meta l4proto {proto} dnat ip to {ep}"
            );
            targets.push(format!("{j} : goto {chain}"));
        }
        let from = svc
            .source
            .map(|n| format!("ip saddr {n} "))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "add rule inet {t} services {from}ip daddr {ip} meta l4proto {proto} th dport {port} numgen random mod {n} vmap {{ {targets} }}",
            ip = svc.cluster_ip,
            port = svc.port,
            n = svc.endpoints.len(),
            targets = targets.join(", ")
        );
        s
    }

    fn network_rules(&self, n: &Network) -> String {
        let t = &self.table;
        let br = &n.bridge;
        let (cin, cout, cmasq) = (
            net_chain(n, "in"),
            net_chain(n, "out"),
            net_chain(n, "masq"),
        );
        let mut s = String::new();
        let _ = writeln!(
            s,
            "add chain inet {t} {cin}\nadd chain inet {t} {cout}\nadd chain inet {t} {cmasq}"
        );
        // Leaving the network's bridge.
        let icc = if n.icc { "accept" } else { "drop" };
        let _ = writeln!(s, "add rule inet {t} {cin} oifname \"{br}\" {icc}");
        if n.internal {
            let _ = writeln!(s, "add rule inet {t} {cin} drop");
        }
        // Published ports are reachable from every network, through the host's addresses.
        let _ = writeln!(s, "add rule inet {t} {cin} ct status dnat accept");
        let _ = writeln!(s, "add rule inet {t} {cin} oifname @bridges drop");
        let _ = writeln!(s, "add rule inet {t} {cin} accept");
        // Entering it from elsewhere.
        if n.internal {
            let _ = writeln!(s, "add rule inet {t} {cout} drop");
        }
        let _ = writeln!(
            s,
            "add rule inet {t} {cout} ct state established,related accept"
        );
        let _ = writeln!(s, "add rule inet {t} {cout} ct status dnat accept");
        if n.accept_routed {
            let _ = writeln!(s, "add rule inet {t} {cout} iifname != @bridges accept");
        }
        let _ = writeln!(s, "add rule inet {t} {cout} drop");
        // Source NAT for traffic from the subnet: hairpin (a container reaching a published
        // port through the host comes back from the host), then outbound masquerade.
        let _ = writeln!(
            s,
            "add rule inet {t} {cmasq} oifname \"{br}\" ct status dnat masquerade"
        );
        if n.masquerade && !n.internal {
            let mut rule = format!("add rule inet {t} {cmasq} oifname != \"{br}\"");
            if !n.no_masquerade_to.is_empty() {
                let list: Vec<String> = n.no_masquerade_to.iter().map(|c| c.to_string()).collect();
                let _ = write!(rule, " ip daddr != {{ {} }}", list.join(", "));
            }
            let _ = writeln!(s, "{rule} masquerade");
        }
        let _ = writeln!(
            s,
            "add element inet {t} bridges {{ \"{br}\" }}
add element inet {t} fwd-in {{ \"{br}\" : jump {cin} }}
add element inet {t} fwd-out {{ \"{br}\" : jump {cout} }}
add element inet {t} masq {{ {} : jump {cmasq} }}",
            n.subnet
        );
        s
    }

    /// Adds an endpoint's published ports (nothing when it has none).
    pub(crate) fn ports_add(&self, e: &Endpoint) -> String {
        if e.ports.is_empty() {
            return String::new();
        }
        let t = &self.table;
        let chain = e.port_chain();
        let mut s = format!("add chain inet {t} {chain}\n");
        let ip = e.address.addr();
        let mut keys = Vec::new();
        for p in &e.ports {
            let dst = if p.host_ip.is_unspecified() {
                String::new()
            } else {
                format!("ip daddr {} ", p.host_ip)
            };
            let _ = writeln!(
                s,
                "add rule inet {t} {chain} {dst}meta l4proto {proto} th dport {hp} dnat ip to {ip}:{cp}",
                proto = p.protocol,
                hp = p.host_port,
                cp = p.container_port
            );
            let key = format!("{} . {}", p.protocol, p.host_port);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let elems: Vec<String> = keys.iter().map(|k| format!("{k} : jump {chain}")).collect();
        let _ = writeln!(
            s,
            "add element inet {t} published {{ {} }}",
            elems.join(", ")
        );
        s
    }

    /// Removes an endpoint's published ports.
    pub(crate) fn ports_del(&self, e: &Endpoint) -> String {
        if e.ports.is_empty() {
            return String::new();
        }
        let t = &self.table;
        let chain = e.port_chain();
        let mut keys: Vec<String> = e
            .ports
            .iter()
            .map(|p| format!("{} . {}", p.protocol, p.host_port))
            .collect();
        keys.sort();
        keys.dedup();
        format!(
            "delete element inet {t} published {{ {} }}\nflush chain inet {t} {chain}\ndelete chain inet {t} {chain}\n",
            keys.join(", ")
        )
    }

    /// Removes the table (everything skiff set up in nftables); a missing table is fine.
    pub(crate) fn delete_table(&self) -> Result<()> {
        let t = &self.table;
        self.apply(&format!("add table inet {t}\ndelete table inet {t}\n"))
    }
}
