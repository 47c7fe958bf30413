//! Bad input gets Docker's messages with nothing created; IPAM never hands out an address twice
//! (concurrently, across handles); reconcile removes what dead sandboxes left.

mod common;

use std::collections::BTreeSet;

use common::{fetch, serve_tcp, TestHost};
use skiff_net::{parse_port_spec, AttachRequest, ErrorKind, NetworkSpec, SandboxOptions};

fn spec(name: &str, subnet: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        subnet: Some(subnet.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn bad_input_gets_dockers_messages_and_creates_nothing() {
    let t = TestHost::new();
    let net = t.net().await;
    net.create_network(spec("n1", "10.10.0.0/16"))
        .await
        .unwrap();
    let links = t.links();
    let cases: Vec<(NetworkSpec, &str, ErrorKind)> = vec![
        (
            spec("bad", "10.0.0.0/33"),
            "invalid CIDR address: 10.0.0.0/33",
            ErrorKind::Invalid,
        ),
        (
            spec("bad", "nonsense"),
            "invalid CIDR address: nonsense",
            ErrorKind::Invalid,
        ),
        (
            NetworkSpec {
                gateway: Some("10.20.1.1".into()),
                ..spec("bad", "10.30.0.0/24")
            },
            "no matching subnet for gateway 10.20.1.1",
            ErrorKind::Invalid,
        ),
        (
            spec("bad", "10.10.5.0/24"),
            "invalid pool request: Pool overlaps with other one on this address space",
            ErrorKind::Forbidden,
        ),
        (
            spec("n1", "10.40.0.0/24"),
            "network with name n1 already exists",
            ErrorKind::Conflict,
        ),
    ];
    for (s, msg, kind) in cases {
        let err = net.create_network(s).await.unwrap_err();
        assert_eq!((err.to_string().as_str(), err.kind()), (msg, kind));
    }
    assert_eq!(net.networks().await.len(), 1);
    assert_eq!(t.links(), links, "no bridge created by a refused network");
    let e = net.network("nope").await.unwrap_err();
    assert_eq!(
        (e.to_string().as_str(), e.kind()),
        ("network nope not found", ErrorKind::NotFound)
    );

    net.create_sandbox("a", SandboxOptions::default())
        .await
        .unwrap();
    net.create_sandbox("b", SandboxOptions::default())
        .await
        .unwrap();
    let at = |sb: &str, ip: &str| AttachRequest {
        sandbox: sb.into(),
        network: "n1".into(),
        ip: Some(ip.parse().unwrap()),
        ..Default::default()
    };
    let err = net.attach(at("a", "10.99.0.5")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid address 10.99.0.5: It does not belong to any of this network's subnets"
    );
    assert_eq!(
        net.attach(at("a", "10.10.0.1"))
            .await
            .unwrap_err()
            .to_string(),
        "Address already in use"
    );
    net.attach(at("a", "10.10.3.3")).await.unwrap();
    let err = net.attach(at("b", "10.10.3.3")).await.unwrap_err();
    assert_eq!(
        (err.to_string().as_str(), err.kind()),
        ("Address already in use", ErrorKind::Forbidden)
    );
    assert!(net.endpoints("b").is_empty());

    let err = net.remove_network("n1").await.unwrap_err();
    assert!(err.to_string().contains("has active endpoints"), "{err}");
    net.remove_sandbox("a").await.unwrap();
    net.remove_network("n1").await.unwrap();
    assert!(
        !t.links().contains("skiff-"),
        "bridge removed with its network"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_attaches_from_two_handles_never_share_an_address() {
    let t = TestHost::new();
    let n1 = t.net().await;
    n1.create_network(spec("small", "10.50.0.0/26"))
        .await
        .unwrap();
    // A second handle on the same state, like a second process.
    let n2 = t.net().await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let net = if i % 2 == 0 { n1.clone() } else { n2.clone() };
        tasks.push(tokio::spawn(async move {
            let id = format!("c{i}");
            net.create_sandbox(&id, SandboxOptions::default())
                .await
                .unwrap();
            net.attach(AttachRequest {
                sandbox: id,
                network: "small".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .address
            .addr()
        }));
    }
    let mut seen = BTreeSet::new();
    for task in tasks {
        let ip = task.await.unwrap();
        assert!(seen.insert(ip), "{ip} handed out twice");
    }
    assert_eq!(seen.len(), 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_removes_everything_of_dead_sandboxes_and_restores_the_living() {
    let t = TestHost::new();
    let client = t.client();
    {
        let net = t.net().await;
        net.ensure_default_bridge().await.unwrap();
        for (id, port) in [("alive", "8080:80"), ("dead", "8081:80")] {
            net.create_sandbox(id, SandboxOptions::default())
                .await
                .unwrap();
            net.attach(AttachRequest {
                sandbox: id.into(),
                network: "bridge".into(),
                ports: parse_port_spec(port).unwrap(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        // The daemon dies (its held ports and tasks go with it).
    }
    // Leftovers of a crash that no state file knows: a stray veth.
    t.host.sh(&[
        "ip",
        "link",
        "add",
        "skiffvstray0",
        "type",
        "veth",
        "peer",
        "name",
        "skiffvstray1",
    ]);
    serve_tcp(&t.dir.path().join("run/netns/alive"), "0.0.0.0:80", "alive");

    let net = t.net().await;
    let dead_veth = net.endpoints("dead")[0].host_veth.clone();
    let report = net.reconcile(&["alive".to_string()]).await.unwrap();
    assert_eq!(report.sandboxes_removed, vec!["dead".to_string()]);
    assert_eq!(report.endpoints_removed, 1);
    let links = t.links();
    assert!(!links.contains(&dead_veth), "dead veth removed: {links}");
    assert!(
        !links.contains("skiffvstray"),
        "stray veth removed: {links}"
    );
    assert!(
        !net.sandbox_path("dead").exists(),
        "dead namespace unmounted"
    );
    let rules = t.ruleset();
    assert!(!rules.contains("8081") && rules.contains("8080"), "{rules}");
    assert!(fetch(Some(&client.path), "10.99.0.1:8080")
        .unwrap()
        .starts_with("alive"));
    let taken = common::in_ns(&t.host.path, || std::net::TcpListener::bind("0.0.0.0:8080"));
    assert!(taken.is_err(), "the living's port is held again");
    // The dead one's address is free again; the living one's is not.
    net.create_sandbox("new", SandboxOptions::default())
        .await
        .unwrap();
    let ep = net
        .attach(AttachRequest {
            sandbox: "new".into(),
            network: "bridge".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ep.address.addr().to_string(), "172.17.0.3");
    // Idempotent.
    let again = net
        .reconcile(&["alive".to_string(), "new".to_string()])
        .await
        .unwrap();
    assert_eq!(again, Default::default());

    // Removing the table removes every rule skiff made.
    net.delete_table().await.unwrap();
    assert_eq!(t.ruleset(), "");
}
