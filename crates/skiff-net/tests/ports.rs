//! Published ports: reachable from another machine, from the host's own 127.0.0.1 and from a
//! container through the host (hairpin); a taken port fails with nothing left behind.

mod common;

use common::{fetch, serve_tcp, TestHost};
use skiff_net::{parse_port_spec, AttachRequest, ErrorKind, SandboxOptions};

#[tokio::test]
async fn published_port_reachable_from_outside_localhost_and_hairpin() {
    let t = TestHost::new();
    let client = t.client();
    let net = t.net().await;
    net.ensure_default_bridge().await.unwrap();
    for id in ["web", "other"] {
        net.create_sandbox(id, SandboxOptions::default())
            .await
            .unwrap();
    }
    let mut ports = parse_port_spec("8080:80").unwrap();
    ports.extend(parse_port_spec("127.0.0.1::81").unwrap());
    let web = net
        .attach(AttachRequest {
            sandbox: "web".into(),
            network: "bridge".into(),
            ports,
            ..Default::default()
        })
        .await
        .unwrap();
    let other = net
        .attach(AttachRequest {
            sandbox: "other".into(),
            network: "bridge".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    serve_tcp(&net.sandbox_path("web"), "0.0.0.0:80", "web");
    serve_tcp(&net.sandbox_path("web"), "0.0.0.0:81", "web81");

    assert_eq!(web.ports[0].host_port, 8080);
    let ephemeral = web.ports[1].host_port;
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let (lo, hi): (u16, u16) = {
        let v: Vec<u16> = range
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        (v[0], v[1])
    };
    assert!(
        (lo..=hi).contains(&ephemeral),
        "ephemeral port {ephemeral} in {lo}-{hi}"
    );

    let from_outside = fetch(Some(&client.path), "10.99.0.1:8080").unwrap();
    assert_eq!(
        from_outside, "web 10.99.0.2",
        "another machine reaches it, unmasked"
    );
    let from_localhost = fetch(Some(&t.host.path), "127.0.0.1:8080").unwrap();
    assert!(from_localhost.starts_with("web "), "{from_localhost}");
    let local_only = fetch(Some(&t.host.path), &format!("127.0.0.1:{ephemeral}")).unwrap();
    assert!(local_only.starts_with("web81 "), "{local_only}");
    assert!(
        fetch(Some(&client.path), &format!("10.99.0.1:{ephemeral}")).is_err(),
        "a port bound to 127.0.0.1 is not published on other addresses"
    );
    let hairpin = fetch(Some(&net.sandbox_path("other")), "10.99.0.1:8080").unwrap();
    assert!(
        hairpin.starts_with("web "),
        "hairpin through the host address: {hairpin}"
    );
    let own = fetch(Some(&net.sandbox_path("web")), "10.99.0.1:8080").unwrap();
    assert!(
        own.starts_with("web "),
        "a container reaches its own published port: {own}"
    );
    assert!(other.address.addr() != web.address.addr());

    // The host port is held: nobody else can bind it.
    let taken = common::in_ns(&t.host.path, || std::net::TcpListener::bind("0.0.0.0:8080"));
    assert!(taken.is_err(), "published port must be held by skiff");

    net.remove_sandbox("web").await.unwrap();
    net.settle().await;
    assert!(fetch(Some(&client.path), "10.99.0.1:8080").is_err());
    assert!(
        !t.ruleset().contains("dport 8080"),
        "rules removed:\n{}",
        t.ruleset()
    );
    let free = common::in_ns(&t.host.path, || std::net::TcpListener::bind("0.0.0.0:8080"));
    assert!(free.is_ok(), "port released on remove");
}

#[tokio::test]
async fn taken_host_port_fails_with_nothing_left_behind() {
    let t = TestHost::new();
    let net = t.net().await;
    let bridge = net.ensure_default_bridge().await.unwrap();
    net.create_sandbox("c", SandboxOptions::default())
        .await
        .unwrap();
    let _squatter =
        common::in_ns(&t.host.path, || std::net::TcpListener::bind("0.0.0.0:8081")).unwrap();
    let before_rules = t.ruleset();
    let before_links = t.links();
    let mut ports = parse_port_spec("9090:90").unwrap();
    ports.extend(parse_port_spec("8081:80").unwrap());
    let err = net
        .attach(AttachRequest {
            sandbox: "c".into(),
            network: "bridge".into(),
            ports,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Bind for 0.0.0.0:8081 failed: port is already allocated"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(net.endpoints("c").is_empty());
    assert_eq!(t.ruleset(), before_rules, "no rule added");
    assert_eq!(t.links(), before_links, "no interface added");
    assert!(
        common::in_ns(&t.host.path, || std::net::TcpListener::bind("0.0.0.0:9090")).is_ok(),
        "the port reserved before the failure is released"
    );
    // The address was not consumed: the next attach gets the first one.
    let ep = net
        .attach(AttachRequest {
            sandbox: "c".into(),
            network: "bridge".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ep.address.addr(), bridge.subnet.hosts().nth(1).unwrap());
}

#[tokio::test]
async fn udp_port_is_published() {
    let t = TestHost::new();
    let client = t.client();
    let net = t.net().await;
    net.ensure_default_bridge().await.unwrap();
    net.create_sandbox("u", SandboxOptions::default())
        .await
        .unwrap();
    net.attach(AttachRequest {
        sandbox: "u".into(),
        network: "bridge".into(),
        ports: parse_port_spec("5353:53/udp").unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let server = common::in_ns(&net.sandbox_path("u"), || {
        std::net::UdpSocket::bind("0.0.0.0:53")
    })
    .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, peer)) = server.recv_from(&mut buf) {
            let _ = server.send_to(&buf[..n], peer);
        }
    });
    let echoed = common::in_ns(&client.path, || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .unwrap();
        s.send_to(b"ping", "10.99.0.1:5353").unwrap();
        let mut buf = [0u8; 64];
        s.recv(&mut buf).map(|n| buf[..n].to_vec())
    });
    assert_eq!(echoed.unwrap(), b"ping");
}
