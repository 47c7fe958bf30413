//! skiff-net owns every host network object skiff creates: network namespaces for sandboxes,
//! bridges, veth pairs, addresses and routes (rtnetlink), IPAM persisted on disk, skiff's own
//! nftables table (NAT, isolation, published ports, DNAT of Service addresses a caller names)
//! and the embedded DNS server. The engine's
//! Docker networks and the node agent's pod network are two users of the same [`Net`].
//!
//! It works on a given "host" namespace ([`NetConfig::host`]), not necessarily the process's
//! own, so tests and several agents on one machine each get a namespace of their own. It never
//! shells out to `ip` or `iptables`; nftables transactions go through the `nft` binary (see
//! `docs/adr/0008-skiff-net-nftables-netlink-and-runtime-state.md`). It knows nothing of containers: callers
//! name sandboxes by their own ids and say which names the DNS should answer.
//!
//! A container's life, as the engine drives it:
//! ```no_run
//! # async fn f(net: &skiff_net::Net) -> skiff_net::Result<()> {
//! use skiff_net::{AttachRequest, SandboxOptions};
//! // create: a namespace (lo up), then an interface on each network
//! let sb = net.create_sandbox("c0ffee", SandboxOptions::default()).await?;
//! let ep = net
//!     .attach(AttachRequest {
//!         sandbox: "c0ffee".into(),
//!         network: "bridge".into(),
//!         ports: skiff_net::parse_port_spec("8080:80")?,
//!         ..Default::default()
//!     })
//!     .await?;
//! // the OCI spec joins `sb.path`; inspect shows `ep.address`, `ep.mac`, `ep.ports`
//! # let _ = (sb, ep);
//! // remove
//! net.remove_sandbox("c0ffee").await?;
//! // daemon start: everything of sandboxes that are gone is removed
//! net.reconcile(&["still-running-id".to_string()]).await?;
//! # Ok(()) }
//! ```

pub mod dns;
mod endpoint;
mod error;
mod ipam;
mod link;
mod manager;
pub mod netns;
mod network;
mod nft;
mod ports;
mod reaper;
mod reconcile;
mod sandbox;
mod services;
mod store;

pub use dns::files::{
    hostname, hosts, resolv_conf, upstreams_from_overrides, DnsOverrides, HostsFile, ResolvMode,
};
pub use endpoint::{mac_for, AttachRequest, Endpoint};
pub use error::{ErrorKind, NetError, Result};
pub use ipam::ADDRESS_IN_USE;
pub use link::Route;
pub use manager::{Net, NetConfig};
pub use netns::NetnsRef;
pub use network::{default_pools, parse_cidr, AddressPool, Network, NetworkSpec};
pub use ports::{parse_port_spec, PortMapping, Protocol, PublishedPort};
pub use reconcile::ReconcileReport;
pub use sandbox::{Sandbox, SandboxOptions};
pub use services::ServiceDnat;
