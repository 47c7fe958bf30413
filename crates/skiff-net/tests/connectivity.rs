//! Sandboxes on bridge networks, against real kernel objects in namespaces the tests create:
//! who can reach whom, NAT, internal networks, pods across two nodes.

mod common;

use common::{fetch, in_ns, serve_tcp, TestHost};
use skiff_net::{AttachRequest, NetworkSpec, Route, SandboxOptions};

fn attach(sandbox: &str, network: &str) -> AttachRequest {
    AttachRequest {
        sandbox: sandbox.into(),
        network: network.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn loopback_is_up_in_every_sandbox() {
    let t = TestHost::new();
    let net = t.net().await;
    let sb = net
        .create_sandbox("none1", SandboxOptions::default())
        .await
        .unwrap();
    let addr = serve_tcp(&sb.path, "127.0.0.1:0", "self");
    assert!(fetch(Some(&sb.path), &addr.to_string())
        .unwrap()
        .starts_with("self 127.0.0.1"));
    net.remove_sandbox("none1").await.unwrap();
    assert!(!sb.path.exists(), "namespace file removed");
}

#[tokio::test]
async fn sandboxes_on_one_network_talk_and_reach_out_masqueraded() {
    let t = TestHost::new();
    let client = t.client();
    let net = t.net().await;
    let bridge = net.ensure_default_bridge().await.unwrap();
    assert_eq!(bridge.bridge, "skiff0");
    assert_eq!(bridge.subnet.to_string(), "172.17.0.0/16");
    for id in ["a", "b"] {
        net.create_sandbox(id, SandboxOptions::default())
            .await
            .unwrap();
    }
    let a = net.attach(attach("a", "bridge")).await.unwrap();
    let b = net.attach(attach("b", "bridge")).await.unwrap();
    assert_eq!(a.address.to_string(), "172.17.0.2/16");
    assert_eq!(b.address.to_string(), "172.17.0.3/16");
    assert_eq!(a.mac, "02:42:ac:11:00:02");
    assert_eq!(a.interface, "eth0");
    let inside = common::Ns {
        path: net.sandbox_path("a"),
    };
    let shown = inside.sh(&["ip", "-br", "addr", "show", "eth0"]);
    std::mem::forget(inside);
    assert!(shown.contains("172.17.0.2/16"), "{shown}");

    let srv = serve_tcp(&net.sandbox_path("b"), "0.0.0.0:80", "b");
    let got = fetch(
        Some(&net.sandbox_path("a")),
        &format!("{}:{}", b.address.addr(), srv.port()),
    )
    .unwrap();
    assert_eq!(got, "b 172.17.0.2", "a reaches b directly");

    // Outbound through the host: the other machine sees the host's address.
    serve_tcp(&client.path, "10.99.0.2:9000", "outside");
    let got = fetch(Some(&net.sandbox_path("a")), "10.99.0.2:9000").unwrap();
    assert_eq!(got, "outside 10.99.0.1", "masqueraded");

    net.detach("a", "bridge").await.unwrap();
    assert!(!t.links().contains(&a.host_veth), "veth removed on detach");
    assert!(fetch(Some(&net.sandbox_path("a")), "10.99.0.2:9000").is_err());
}

/// A container started again the moment it exits: its old veth goes away in the background
/// (with the old namespace, and on the reaper) while the new one is made. The new one must
/// survive that (it vanished by name before: "veth … vanished", ENODEV on hairpin).
#[tokio::test]
async fn a_sandbox_made_again_at_once_keeps_its_new_veth() {
    let t = TestHost::new();
    let net = t.net().await;
    net.ensure_default_bridge().await.unwrap();
    net.create_sandbox("peer", SandboxOptions::default())
        .await
        .unwrap();
    let peer = net.attach(attach("peer", "bridge")).await.unwrap();
    let srv = serve_tcp(&net.sandbox_path("peer"), "0.0.0.0:80", "peer");
    let mut old = Vec::new();
    for _ in 0..10 {
        net.create_sandbox("again", SandboxOptions::default())
            .await
            .unwrap();
        let ep = net.attach(attach("again", "bridge")).await.unwrap();
        assert!(!old.contains(&ep.host_veth), "{} reused", ep.host_veth);
        old.push(ep.host_veth.clone());
        net.remove_sandbox("again").await.unwrap();
    }
    net.create_sandbox("again", SandboxOptions::default())
        .await
        .unwrap();
    let last = net.attach(attach("again", "bridge")).await.unwrap();
    // The reaper works in order: once this removal has freed its addresses, every deletion
    // queued before it is done.
    net.create_sandbox("flush", SandboxOptions::default())
        .await
        .unwrap();
    net.attach(attach("flush", "bridge")).await.unwrap();
    net.remove_sandbox_freeing_addresses("flush").await.unwrap();
    let links = t.links();
    assert!(links.contains(&last.host_veth), "{links}");
    for gone in &old {
        assert!(!links.contains(gone.as_str()), "{gone} left: {links}");
    }
    let got = fetch(
        Some(&net.sandbox_path("again")),
        &format!("{}:{}", peer.address.addr(), srv.port()),
    )
    .unwrap();
    assert_eq!(got, format!("peer {}", last.address.addr()));
}

#[tokio::test]
async fn networks_are_isolated_and_internal_has_no_way_out() {
    let t = TestHost::new();
    let _client = t.client();
    serve_tcp(&_client.path, "10.99.0.2:9000", "outside");
    let net = t.net().await;
    let n1 = net
        .create_network(NetworkSpec {
            name: "n1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let n2 = net
        .create_network(NetworkSpec {
            name: "n2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_ne!(n1.subnet, n2.subnet);
    assert!(
        n1.bridge.starts_with("skiff-") && n1.bridge.len() <= 15,
        "{}",
        n1.bridge
    );
    let internal = net
        .create_network(NetworkSpec {
            name: "private".into(),
            subnet: Some("10.77.0.0/24".into()),
            internal: true,
            ..Default::default()
        })
        .await
        .unwrap();
    for id in ["x", "y", "i1", "i2"] {
        net.create_sandbox(id, SandboxOptions::default())
            .await
            .unwrap();
    }
    net.attach(attach("x", "n1")).await.unwrap();
    let y = net.attach(attach("y", "n2")).await.unwrap();
    let i1 = net.attach(attach("i1", "private")).await.unwrap();
    net.attach(attach("i2", "private")).await.unwrap();
    assert_eq!(i1.gateway, None);
    assert_eq!(i1.address.to_string(), "10.77.0.2/24");

    let srv = serve_tcp(&net.sandbox_path("y"), "0.0.0.0:80", "y");
    let across = fetch(
        Some(&net.sandbox_path("x")),
        &format!("{}:{}", y.address.addr(), srv.port()),
    );
    assert!(
        across.is_err(),
        "different networks must not reach each other: {across:?}"
    );
    // y itself still reachable from its own network's host side.
    assert!(fetch(
        Some(&t.host.path),
        &format!("{}:{}", y.address.addr(), srv.port())
    )
    .is_ok());

    let srv = serve_tcp(&net.sandbox_path("i1"), "0.0.0.0:80", "i1");
    let got = fetch(
        Some(&net.sandbox_path("i2")),
        &format!("10.77.0.2:{}", srv.port()),
    )
    .unwrap();
    assert_eq!(got, "i1 10.77.0.3", "internal members reach each other");
    let out = fetch(Some(&net.sandbox_path("i1")), "10.99.0.2:9000");
    assert!(out.is_err(), "internal network has no route out: {out:?}");
    assert!(fetch(Some(&net.sandbox_path("x")), "10.99.0.2:9000").is_ok());
    drop(internal);
}

#[tokio::test]
async fn containers_join_a_running_sandbox_and_detach_works_while_running() {
    let t = TestHost::new();
    let net = t.net().await;
    net.create_network(NetworkSpec {
        name: "n1".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    net.create_network(NetworkSpec {
        name: "n2".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    net.create_sandbox("s", SandboxOptions::default())
        .await
        .unwrap();
    // A process that stays in the sandbox for the whole test, like a container.
    let path = net.sandbox_path("s");
    let listener = in_ns(&path, || std::net::TcpListener::bind("0.0.0.0:0")).unwrap();
    let e0 = net.attach(attach("s", "n1")).await.unwrap();
    let e1 = net.attach(attach("s", "n2")).await.unwrap();
    assert_eq!(
        (e0.interface.as_str(), e1.interface.as_str()),
        ("eth0", "eth1")
    );
    net.detach("s", "n1").await.unwrap();
    let inside = common::Ns { path: path.clone() };
    let links = inside.sh(&["ip", "-br", "link"]);
    std::mem::forget(inside);
    assert!(!links.contains("eth0") && links.contains("eth1"), "{links}");
    let again = net.attach(attach("s", "n1")).await.unwrap();
    assert_eq!(again.interface, "eth0", "the freed name is reused");
    let err = net.detach("s", "nope").await.unwrap_err();
    assert_eq!(err.to_string(), "network nope not found");
    drop(listener);
}

/// Two nodes, each a namespace with its own skiff-net and pod CIDR, linked like two machines;
/// host-gw routes let pods reach each other by pod IP without NAT.
#[tokio::test]
async fn pods_on_two_nodes_reach_each_other_by_pod_ip() {
    let a = TestHost::new();
    let b = TestHost::new();
    a.host.sh(&[
        "ip",
        "link",
        "add",
        "skiff-t-lan",
        "type",
        "veth",
        "peer",
        "name",
        "skiff-t-lan",
        "netns",
        b.host.path.to_str().unwrap(),
    ]);
    for (h, ip) in [(&a, "10.98.0.1/24"), (&b, "10.98.0.2/24")] {
        h.host.sh(&["ip", "addr", "add", ip, "dev", "skiff-t-lan"]);
        h.host.sh(&["ip", "link", "set", "skiff-t-lan", "up"]);
    }
    let pods = |cidr: &str| NetworkSpec {
        name: "pods".into(),
        bridge: Some("skiff-pods".into()),
        subnet: Some(cidr.into()),
        no_masquerade_to: vec!["10.42.0.0/16".parse().unwrap()],
        accept_routed: true,
        ..Default::default()
    };
    let na = a.net().await;
    let nb = b.net().await;
    na.create_network(pods("10.42.0.0/24")).await.unwrap();
    nb.create_network(pods("10.42.1.0/24")).await.unwrap();
    na.set_routes(&[Route {
        destination: "10.42.1.0/24".parse().unwrap(),
        via: "10.98.0.2".parse().unwrap(),
    }])
    .await
    .unwrap();
    nb.set_routes(&[Route {
        destination: "10.42.0.0/24".parse().unwrap(),
        via: "10.98.0.1".parse().unwrap(),
    }])
    .await
    .unwrap();
    assert_eq!(na.routes().await.unwrap().len(), 1);
    na.create_sandbox("pod-a", SandboxOptions::default())
        .await
        .unwrap();
    nb.create_sandbox("pod-b", SandboxOptions::default())
        .await
        .unwrap();
    let pa = na.attach(attach("pod-a", "pods")).await.unwrap();
    let pb = nb.attach(attach("pod-b", "pods")).await.unwrap();
    let srv = serve_tcp(&nb.sandbox_path("pod-b"), "0.0.0.0:0", "pod-b");
    let got = fetch(
        Some(&na.sandbox_path("pod-a")),
        &format!("{}:{}", pb.address.addr(), srv.port()),
    )
    .unwrap();
    assert_eq!(
        got,
        format!("pod-b {}", pa.address.addr()),
        "pod to pod without NAT"
    );
    // A second cluster's routes in the same namespace are left alone by the first one's.
    let other = Route {
        destination: "10.77.5.0/24".parse().unwrap(),
        via: "10.98.0.2".parse().unwrap(),
    };
    na.set_routes_within(
        "10.77.0.0/16".parse().unwrap(),
        std::slice::from_ref(&other),
    )
    .await
    .unwrap();
    na.set_routes_within("10.42.0.0/16".parse().unwrap(), &[])
        .await
        .unwrap();
    assert_eq!(na.routes().await.unwrap(), vec![other]);
    // Routes are replaced, not accumulated.
    na.set_routes(&[]).await.unwrap();
    assert!(na.routes().await.unwrap().is_empty());
}
