//! The embedded DNS server: one UDP and one TCP socket at 127.0.0.11:53 inside each sandbox
//! that is on a DNS-enabled network, created by a thread that entered the sandbox, served by
//! the daemon's tokio runtime. It answers the names of endpoints that share a network with the
//! asking sandbox (and their reverse lookups), and forwards every other query unchanged to the
//! upstream resolvers from the daemon's namespace, as Docker's embedded server does.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::AbortHandle;

use crate::error::{Context, Result};
use crate::netns::NetnsRef;

/// Where the embedded server listens inside a sandbox.
pub const DNS_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const TTL: u32 = 600;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(4);

#[derive(Debug, Clone)]
struct Entry {
    network: String,
    sandbox: String,
    ip: Ipv4Addr,
    names: Vec<String>,
}

struct Server {
    upstreams: Option<Vec<SocketAddr>>,
    tasks: Vec<AbortHandle>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Names and servers; shared by every sandbox's listener tasks.
#[derive(Default)]
pub(crate) struct Dns {
    entries: RwLock<Vec<Entry>>,
    servers: Mutex<HashMap<String, Server>>,
    upstreams: RwLock<Vec<SocketAddr>>,
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Dns {
    pub(crate) fn set_upstreams(&self, upstreams: Vec<SocketAddr>) {
        *self.upstreams.write().expect("dns lock") = upstreams;
    }

    /// Records (or replaces) the names of `sandbox` on `network`.
    pub(crate) fn add(&self, network: &str, sandbox: &str, ip: Ipv4Addr, names: &[String]) {
        let mut e = self.entries.write().expect("dns lock");
        e.retain(|x| !(x.network == network && x.sandbox == sandbox));
        e.push(Entry {
            network: network.into(),
            sandbox: sandbox.into(),
            ip,
            names: names
                .iter()
                .map(|n| normalise(n))
                .filter(|n| !n.is_empty())
                .collect(),
        });
    }

    pub(crate) fn remove(&self, network: &str, sandbox: &str) {
        self.entries
            .write()
            .expect("dns lock")
            .retain(|x| !(x.network == network && x.sandbox == sandbox));
    }

    pub(crate) fn remove_sandbox(&self, sandbox: &str) {
        self.entries
            .write()
            .expect("dns lock")
            .retain(|x| x.sandbox != sandbox);
        self.servers.lock().expect("dns lock").remove(sandbox);
    }

    pub(crate) fn has_server(&self, sandbox: &str) -> bool {
        self.servers.lock().expect("dns lock").contains_key(sandbox)
    }

    /// Opens 127.0.0.11:53 (UDP and TCP) inside the sandbox and serves it. Must run on the
    /// tokio runtime that will serve it.
    pub(crate) fn serve(
        self: &Arc<Self>,
        sandbox: &str,
        ns: &NetnsRef,
        upstreams: Option<Vec<SocketAddr>>,
    ) -> Result<()> {
        if self.has_server(sandbox) {
            return Ok(());
        }
        let addr = SocketAddr::from((DNS_ADDRESS, 53));
        let (udp, tcp) = ns.run(|| {
            let udp = std::net::UdpSocket::bind(addr).ctx(|| format!("bind udp {addr}"))?;
            let tcp = std::net::TcpListener::bind(addr).ctx(|| format!("bind tcp {addr}"))?;
            udp.set_nonblocking(true).ctx(|| "nonblocking".into())?;
            tcp.set_nonblocking(true).ctx(|| "nonblocking".into())?;
            Ok((udp, tcp))
        })?;
        let udp = Arc::new(UdpSocket::from_std(udp).ctx(|| "register dns socket".into())?);
        let tcp = TcpListener::from_std(tcp).ctx(|| "register dns socket".into())?;
        let sb = sandbox.to_string();
        let me = self.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                let query = buf[..n].to_vec();
                let (me, udp, sb) = (me.clone(), udp.clone(), sb.clone());
                tokio::spawn(async move {
                    if let Some(reply) = me.handle(&sb, &query, false).await {
                        let _ = udp.send_to(&reply, peer).await;
                    }
                });
            }
        });
        let sb = sandbox.to_string();
        let me = self.clone();
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = tcp.accept().await else {
                    continue;
                };
                let (me, sb) = (me.clone(), sb.clone());
                tokio::spawn(async move {
                    let _ = me.serve_tcp(&sb, conn).await;
                });
            }
        });
        self.servers.lock().expect("dns lock").insert(
            sandbox.to_string(),
            Server {
                upstreams,
                tasks: vec![udp_task.abort_handle(), tcp_task.abort_handle()],
            },
        );
        Ok(())
    }

    async fn serve_tcp(&self, sandbox: &str, mut conn: TcpStream) -> std::io::Result<()> {
        loop {
            let len = match conn.read_u16().await {
                Ok(l) => l as usize,
                Err(_) => return Ok(()),
            };
            let mut query = vec![0u8; len];
            conn.read_exact(&mut query).await?;
            if let Some(reply) = self.handle(sandbox, &query, true).await {
                conn.write_u16(reply.len() as u16).await?;
                conn.write_all(&reply).await?;
            }
        }
    }

    /// The answer to one query from `sandbox`, or None to stay silent (unparseable input).
    async fn handle(&self, sandbox: &str, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let msg = Message::from_vec(query).ok()?;
        if msg.metadata.message_type != MessageType::Query {
            return None;
        }
        if let Some(answer) = self.answer_locally(sandbox, &msg) {
            return answer.to_vec().ok();
        }
        match self.forward(sandbox, query, tcp).await {
            Some(reply) => Some(reply),
            None => {
                let mut m = Message::error_msg(
                    msg.metadata.id,
                    msg.metadata.op_code,
                    ResponseCode::ServFail,
                );
                m.add_queries(msg.queries.iter().cloned());
                m.to_vec().ok()
            }
        }
    }

    /// Answers from the names of endpoints sharing a network with `sandbox`; None when the
    /// name is not one of them.
    fn answer_locally(&self, sandbox: &str, msg: &Message) -> Option<Message> {
        let q = msg.queries.first()?;
        if msg.metadata.op_code != OpCode::Query || msg.queries.len() != 1 {
            return None;
        }
        let qname = normalise(&q.name().to_ascii());
        let entries = self.entries.read().expect("dns lock");
        let nets: Vec<&str> = entries
            .iter()
            .filter(|e| e.sandbox == sandbox)
            .map(|e| e.network.as_str())
            .collect();
        let visible = entries
            .iter()
            .filter(|e| nets.contains(&e.network.as_str()));
        let mut reply = Message::response(msg.metadata.id, msg.metadata.op_code);
        reply.metadata.recursion_desired = msg.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        reply.metadata.authoritative = true;
        reply.add_query(q.clone());
        if let Some(ip) = reverse_ipv4(&qname) {
            let e = visible.clone().find(|e| e.ip == ip)?;
            if q.query_type() == RecordType::PTR {
                let target = Name::from_ascii(format!("{}.", e.names.first()?)).ok()?;
                reply.add_answer(Record::from_rdata(
                    q.name().clone(),
                    TTL,
                    RData::PTR(PTR(target)),
                ));
            }
            return Some(reply);
        }
        let mut ips: Vec<Ipv4Addr> = visible
            .filter(|e| e.names.contains(&qname))
            .map(|e| e.ip)
            .collect();
        if ips.is_empty() {
            return None;
        }
        ips.dedup();
        if q.query_type() == RecordType::A {
            for ip in ips {
                reply.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
            }
        }
        Some(reply)
    }

    /// Sends the query unchanged to each upstream in turn; the first reply wins.
    async fn forward(&self, sandbox: &str, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let upstreams = self
            .servers
            .lock()
            .expect("dns lock")
            .get(sandbox)
            .and_then(|s| s.upstreams.clone())
            .unwrap_or_else(|| self.upstreams.read().expect("dns lock").clone());
        for up in upstreams {
            let attempt = async {
                if tcp {
                    let mut s = TcpStream::connect(up).await?;
                    s.write_u16(query.len() as u16).await?;
                    s.write_all(query).await?;
                    let len = s.read_u16().await? as usize;
                    let mut buf = vec![0u8; len];
                    s.read_exact(&mut buf).await?;
                    Ok::<_, std::io::Error>(buf)
                } else {
                    let local: SocketAddr = match up {
                        SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("addr"),
                        SocketAddr::V6(_) => "[::]:0".parse().expect("addr"),
                    };
                    let s = UdpSocket::bind(local).await?;
                    s.connect(up).await?;
                    s.send(query).await?;
                    let mut buf = vec![0u8; 65535];
                    let n = s.recv(&mut buf).await?;
                    buf.truncate(n);
                    Ok(buf)
                }
            };
            match tokio::time::timeout(UPSTREAM_TIMEOUT, attempt).await {
                Ok(Ok(reply)) => return Some(reply),
                Ok(Err(e)) => tracing::debug!(upstream = %up, error = %e, "dns forward failed"),
                Err(_) => tracing::debug!(upstream = %up, "dns forward timed out"),
            }
        }
        None
    }
}

/// `2.0.17.172.in-addr.arpa` → 172.17.0.2.
fn reverse_ipv4(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let mut o: Vec<u8> = rest
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if o.len() != 4 {
        return None;
    }
    o.reverse();
    Some(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
}

/// Name servers of a resolv.conf as socket addresses (port 53).
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_and_nameservers() {
        assert_eq!(
            reverse_ipv4("2.0.17.172.in-addr.arpa"),
            Some(Ipv4Addr::new(172, 17, 0, 2))
        );
        assert_eq!(reverse_ipv4("example.com"), None);
        assert_eq!(
            nameservers("# c\nnameserver 10.0.0.1\nsearch x\nnameserver ::1\n"),
            vec!["10.0.0.1:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
    }
}
