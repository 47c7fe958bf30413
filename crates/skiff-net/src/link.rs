//! Links, addresses and routes over rtnetlink, on a socket opened inside a chosen namespace.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope,
};
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder,
};

use crate::error::{Context, NetError, Result};
use crate::netns::NetnsRef;

/// The routing protocol number skiff marks its routes with (so it can find and replace them
/// without touching anyone else's). Unassigned in `/etc/iproute2/rt_protos`.
pub const ROUTE_PROTOCOL: u8 = 0x5b;

const EEXIST: i32 = libc::EEXIST;
const ENODEV: i32 = libc::ENODEV;
const ENOENT: i32 = libc::ENOENT;
const ESRCH: i32 = libc::ESRCH;
const EADDRNOTAVAIL: i32 = libc::EADDRNOTAVAIL;

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

/// A new rtnetlink socket in the calling thread's namespace.
pub fn socket() -> Result<Socket> {
    Socket::new(NETLINK_ROUTE).ctx(|| "open netlink socket".into())
}

/// A route skiff manages in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    pub destination: Ipv4Net,
    pub via: Ipv4Addr,
}

/// An rtnetlink connection bound to one network namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens a connection inside `ns`; must be called on a tokio runtime (it spawns the
    /// connection task there).
    pub fn open(ns: &NetnsRef) -> Result<Netlink> {
        Ok(Netlink::from_socket(ns.run(socket)?))
    }

    /// Wraps a socket made by [`socket`] (in whatever namespace); must be called on a tokio
    /// runtime.
    pub fn from_socket(socket: Socket) -> Netlink {
        // SAFETY: the fd comes from a netlink socket we own; TokioSocket takes it over.
        let socket = unsafe { TokioSocket::from_raw_fd(socket.into_raw_fd()) };
        let (conn, handle, _) = rtnetlink::from_socket(socket);
        tokio::spawn(conn);
        Netlink { handle }
    }

    /// The index of the link named `name`, if it exists.
    pub async fn index(&self, name: &str) -> Result<Option<u32>> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(l)) => Ok(Some(l.header.index)),
            Ok(None) => Ok(None),
            Err(e) if matches!(errno(&e), Some(ENODEV)) => Ok(None),
            Err(e) => Err(e).ctx(|| format!("look up link {name}")),
        }
    }

    /// Names of links whose name starts with `prefix`, and their kinds ("bridge", "veth", …).
    pub async fn links_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let all: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .ctx(|| "list links".into())?;
        let mut out = Vec::new();
        for l in all {
            let mut name = None;
            let mut kind = String::new();
            for a in &l.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = Some(n.clone()),
                    LinkAttribute::LinkInfo(infos) => {
                        for i in infos {
                            if let rtnetlink::packet_route::link::LinkInfo::Kind(k) = i {
                                kind = k.to_string();
                            }
                        }
                    }
                    _ => {}
                }
            }
            if let Some(n) = name.filter(|n| n.starts_with(prefix)) {
                out.push((n, kind));
            }
        }
        Ok(out)
    }

    /// Creates (or finds) a bridge with `address` as its own address, up. Returns its index.
    pub async fn ensure_bridge(
        &self,
        name: &str,
        address: Ipv4Net,
        mtu: Option<u32>,
    ) -> Result<u32> {
        if self.index(name).await?.is_none() {
            let mut b = LinkBridge::new(name).up();
            if let Some(mtu) = mtu {
                b = b.mtu(mtu);
            }
            match self.handle.link().add(b.build()).execute().await {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(EEXIST) => {}
                Err(e) => return Err(e).ctx(|| format!("create bridge {name}")),
            }
        }
        let index = self
            .index(name)
            .await?
            .ok_or_else(|| NetError::NotFound(format!("bridge {name} vanished")))?;
        match self
            .handle
            .address()
            .add(index, address.addr().into(), address.prefix_len())
            .execute()
            .await
        {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("add {address} to {name}")),
        }
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .ctx(|| format!("set {name} up"))?;
        Ok(index)
    }

    /// Deletes a link by name; a missing link is not an error.
    pub async fn delete_link(&self, name: &str) -> Result<()> {
        let Some(index) = self.index(name).await? else {
            return Ok(());
        };
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if matches!(errno(&e), Some(ENODEV) | Some(ENOENT)) => Ok(()),
            Err(e) => Err(e).ctx(|| format!("delete link {name}")),
        }
    }

    /// Creates a veth pair in one request: `host` enslaved to bridge `bridge` with hairpin
    /// mode, up; its peer created directly in the namespace `peer_ns` as `peer` with MAC
    /// `mac` (down: the kernel refuses ENOTCONN to set a peer in another namespace up here;
    /// [`Netlink::configure_interface`] does it from inside).
    pub async fn add_veth(
        &self,
        host: &str,
        bridge: u32,
        peer: &str,
        mac: [u8; 6],
        peer_ns: &impl AsRawFd,
        mtu: Option<u32>,
    ) -> Result<()> {
        let mut p = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .address(mac.to_vec())
            .setns_by_fd(peer_ns.as_raw_fd());
        if let Some(mtu) = mtu {
            p = p.mtu(mtu);
        }
        let mut v = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(host.to_string())
            .controller(bridge)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(p.build())));
        if let Some(mtu) = mtu {
            v = v.mtu(mtu);
        }
        self.handle
            .link()
            .add(v.build())
            .execute()
            .await
            .map_err(|e| match errno(&e) {
                Some(EEXIST) => NetError::conflict(format!("interface {host} or {peer} exists")),
                _ => NetError::Netlink {
                    context: format!("create veth {host}"),
                    source: e,
                },
            })?;
        let index = self
            .index(host)
            .await?
            .ok_or_else(|| NetError::NotFound(format!("veth {host} vanished")))?;
        // Hairpin: a container reaching its own published port through the host comes back in
        // on the port it left from.
        self.handle
            .link()
            .set_port(LinkBridgePort::new(index).hairpin(true).build())
            .execute()
            .await
            .ctx(|| format!("hairpin on {host}"))
    }

    /// Sets `lo` up.
    pub async fn loopback_up(&self) -> Result<()> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_name("lo").up().build())
            .execute()
            .await
            .ctx(|| "set lo up".into())
    }

    /// Inside a sandbox: gives `ifname` its address and, when `gateway` is set, a default
    /// route through it.
    pub async fn configure_interface(
        &self,
        ifname: &str,
        address: Ipv4Net,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()> {
        let index = self
            .index(ifname)
            .await?
            .ok_or_else(|| NetError::NotFound(format!("interface {ifname} missing in sandbox")))?;
        self.handle
            .address()
            .add(index, address.addr().into(), address.prefix_len())
            .execute()
            .await
            .ctx(|| format!("add {address} to {ifname}"))?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .ctx(|| format!("set {ifname} up"))?;
        if let Some(gw) = gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gw)
                .output_interface(index)
                .build();
            match self.handle.route().add(route).execute().await {
                Ok(()) => {}
                // A second network's gateway: the first one's default route stays (Docker's
                // behaviour: one default gateway per sandbox).
                Err(e) if errno(&e) == Some(EEXIST) => {}
                Err(e) => return Err(e).ctx(|| format!("default route via {gw}")),
            }
        }
        Ok(())
    }

    /// skiff's routes in the main table (those marked with [`ROUTE_PROTOCOL`]).
    pub async fn routes(&self) -> Result<Vec<Route>> {
        let filter = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let all: Vec<RouteMessage> = self
            .handle
            .route()
            .get(filter)
            .execute()
            .try_collect()
            .await
            .ctx(|| "list routes".into())?;
        let mut out = Vec::new();
        for r in all {
            if r.header.protocol != RouteProtocol::Other(ROUTE_PROTOCOL) {
                continue;
            }
            let mut dst = None;
            let mut via = None;
            for a in &r.attributes {
                match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = Some(*ip),
                    RouteAttribute::Gateway(RouteAddress::Inet(ip)) => via = Some(*ip),
                    _ => {}
                }
            }
            if let (Some(d), Some(v)) = (dst, via) {
                if let Ok(net) = Ipv4Net::new(d, r.header.destination_prefix_length) {
                    out.push(Route {
                        destination: net,
                        via: v,
                    });
                }
            }
        }
        Ok(out)
    }

    fn route_message(route: &Route) -> RouteMessage {
        RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(route.destination.network(), route.destination.prefix_len())
            .gateway(route.via)
            .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
            .scope(RouteScope::Universe)
            .build()
    }

    pub async fn add_route(&self, route: &Route) -> Result<()> {
        match self
            .handle
            .route()
            .add(Self::route_message(route))
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(e) => Err(e).ctx(|| format!("route {} via {}", route.destination, route.via)),
        }
    }

    pub async fn delete_route(&self, route: &Route) -> Result<()> {
        match self
            .handle
            .route()
            .del(Self::route_message(route))
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if matches!(errno(&e), Some(ESRCH) | Some(ENOENT) | Some(EADDRNOTAVAIL)) => {
                Ok(())
            }
            Err(e) => Err(e).ctx(|| format!("delete route {}", route.destination)),
        }
    }

    /// Routes in the main table (any protocol) as destination prefixes, to avoid picking a
    /// subnet the host already reaches through another interface.
    pub async fn host_prefixes(&self) -> Result<Vec<Ipv4Net>> {
        let filter = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let all: Vec<RouteMessage> = self
            .handle
            .route()
            .get(filter)
            .execute()
            .try_collect()
            .await
            .ctx(|| "list routes".into())?;
        let mut out = Vec::new();
        for r in all {
            if r.header.destination_prefix_length == 0 || r.header.table != 254 {
                continue;
            }
            for a in &r.attributes {
                if let RouteAttribute::Destination(RouteAddress::Inet(ip)) = a {
                    if let Ok(n) = Ipv4Net::new(*ip, r.header.destination_prefix_length) {
                        out.push(n.trunc());
                    }
                }
            }
        }
        Ok(out)
    }
}
