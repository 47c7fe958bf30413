//! The embedded DNS answers names, aliases and short ids of containers on the same network (not
//! across networks), reverse lookups, over UDP and TCP, and forwards everything else upstream.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use common::{in_ns, TestHost};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use skiff_net::{AttachRequest, NetworkSpec, SandboxOptions};

fn query(name: &str, kind: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
    m.to_vec().unwrap()
}

fn ask_udp(sandbox: &Path, name: &str, kind: RecordType) -> Message {
    let reply = in_ns(sandbox, || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        s.send_to(&query(name, kind), "127.0.0.11:53").unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.recv(&mut buf).expect("dns reply");
        buf.truncate(n);
        buf
    });
    Message::from_vec(&reply).unwrap()
}

fn ask_tcp(sandbox: &Path, name: &str) -> Message {
    let reply = in_ns(sandbox, || {
        let mut s = std::net::TcpStream::connect("127.0.0.11:53").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        let q = query(name, RecordType::A);
        s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
        s.write_all(&q).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).unwrap();
        buf
    });
    Message::from_vec(&reply).unwrap()
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// A fake upstream resolver on this process's loopback: `example.test` is 192.0.2.99,
/// everything else NXDOMAIN.
fn fake_upstream() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = s.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, OpCode::Query);
            r.metadata.message_type = MessageType::Response;
            r.add_queries(q.queries.iter().cloned());
            let name = q.queries[0].name().clone();
            if name.to_ascii().trim_end_matches('.') == "example.test" {
                r.add_answer(Record::from_rdata(
                    name,
                    60,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 99))),
                ));
            } else {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
            let _ = s.send_to(&r.to_vec().unwrap(), peer);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_dns_answers_same_network_names_and_forwards_the_rest() {
    let t = TestHost::new();
    let mut cfg = t.config();
    cfg.dns_upstreams = Some(vec![fake_upstream()]);
    let net = skiff_net::Net::open(cfg).await.unwrap();
    let user = |name: &str| NetworkSpec {
        name: name.into(),
        dns: true,
        ..Default::default()
    };
    net.create_network(user("app")).await.unwrap();
    net.create_network(user("elsewhere")).await.unwrap();
    for id in ["0123456789abcdef", "client", "stranger"] {
        net.create_sandbox(id, SandboxOptions::default())
            .await
            .unwrap();
    }
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let web = net
        .attach(AttachRequest {
            sandbox: "0123456789abcdef".into(),
            network: "app".into(),
            dns_names: names(&["web", "frontend", "0123456789ab"]),
            ..Default::default()
        })
        .await
        .unwrap();
    net.attach(AttachRequest {
        sandbox: "client".into(),
        network: "app".into(),
        dns_names: names(&["client"]),
        ..Default::default()
    })
    .await
    .unwrap();
    net.attach(AttachRequest {
        sandbox: "stranger".into(),
        network: "elsewhere".into(),
        dns_names: names(&["stranger"]),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = net.sandbox_path("client");
    let web_ip = web.address.addr();
    for name in ["web", "frontend", "0123456789ab", "WEB."] {
        let m = ask_udp(&client, name, RecordType::A);
        assert_eq!(a_records(&m), vec![web_ip], "{name}");
    }
    assert_eq!(
        a_records(&ask_tcp(&client, "frontend")),
        vec![web_ip],
        "over TCP"
    );
    let aaaa = ask_udp(&client, "web", RecordType::AAAA);
    assert_eq!(
        (aaaa.metadata.response_code, aaaa.answers.len()),
        (ResponseCode::NoError, 0)
    );
    let o = web_ip.octets();
    let ptr = ask_udp(
        &client,
        &format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]),
        RecordType::PTR,
    );
    assert_eq!(ptr.answers.len(), 1, "reverse lookup of a container");

    // Not across networks: the name goes upstream, which does not know it.
    let m = ask_udp(&client, "stranger", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask_udp(&net.sandbox_path("stranger"), "web", RecordType::A);
    assert!(a_records(&m).is_empty());
    // Forwarded to the host's resolver.
    let m = ask_udp(&client, "example.test", RecordType::A);
    assert_eq!(a_records(&m), vec![Ipv4Addr::new(192, 0, 2, 99)]);

    // Detached: the name is gone.
    net.detach("0123456789abcdef", "app").await.unwrap();
    let m = ask_udp(&client, "web", RecordType::A);
    assert!(a_records(&m).is_empty(), "{m:?}");
}
