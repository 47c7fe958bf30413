//! Service addresses translated to endpoints: a container reaches `10.43.0.1:443` at a server
//! on the host's 127.0.0.1 and at one on another machine; only connections from the named
//! network are translated; taking the Service away leaves the address untranslated.

mod common;

use common::{fetch, serve_tcp, TestHost};
use skiff_net::{AttachRequest, Protocol, SandboxOptions, ServiceDnat};

#[tokio::test]
async fn service_address_reaches_endpoints_on_the_host_and_elsewhere() {
    let t = TestHost::new();
    let client = t.client();
    let net = t.net().await;
    let bridge = net.ensure_default_bridge().await.unwrap();
    net.create_sandbox("pod", SandboxOptions::default())
        .await
        .unwrap();
    let pod = net
        .attach(AttachRequest {
            sandbox: "pod".into(),
            network: "bridge".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let on_host = serve_tcp(&t.host.path, "127.0.0.1:0", "api");
    let elsewhere = serve_tcp(&client.path, "10.99.0.2:0", "remote");
    let service = |endpoint: std::net::SocketAddr, source| ServiceDnat {
        cluster_ip: "10.43.0.1".parse().unwrap(),
        port: 443,
        protocol: Protocol::Tcp,
        endpoints: vec![match endpoint {
            std::net::SocketAddr::V4(a) => a,
            std::net::SocketAddr::V6(_) => unreachable!("IPv4 test servers"),
        }],
        source,
    };

    // The API server on the host's loopback, as a server bound to 127.0.0.1 is.
    net.set_services(vec![service(on_host, Some(bridge.subnet))])
        .await
        .unwrap();
    let got = fetch(Some(&net.sandbox_path("pod")), "10.43.0.1:443").unwrap();
    assert_eq!(got, format!("api {}", pod.address.addr()));
    assert!(t.ruleset().contains("10.43.0.1"), "{}", t.ruleset());

    // Another machine.
    net.set_services(vec![service(elsewhere, Some(bridge.subnet))])
        .await
        .unwrap();
    let got = fetch(Some(&net.sandbox_path("pod")), "10.43.0.1:443").unwrap();
    assert!(got.starts_with("remote "), "{got}");

    // Connections from elsewhere are not this node's to translate.
    net.set_services(vec![service(
        on_host,
        Some("10.250.0.0/24".parse().unwrap()),
    )])
    .await
    .unwrap();
    assert!(fetch(Some(&net.sandbox_path("pod")), "10.43.0.1:443").is_err());

    // Gone: nothing answers there.
    net.set_services(Vec::new()).await.unwrap();
    assert!(fetch(Some(&net.sandbox_path("pod")), "10.43.0.1:443").is_err());
    assert!(!t.ruleset().contains("10.43.0.1"), "{}", t.ruleset());
    net.remove_sandbox("pod").await.unwrap();
    net.delete_table().await.unwrap();
}
