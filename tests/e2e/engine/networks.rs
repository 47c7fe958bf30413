//! The engine's networks through its Rust API (what the node agent will call): the default
//! bridge avoids subnets the host already routes, and a user network's container gets its
//! address, DNS names and a clean release.

use std::process::Command;

use crate::common::*;
use skiff_engine::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
};
use skiff_engine::{Engine, Filters};

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_bridge_skips_a_subnet_the_host_already_routes() {
    let dirs = Dirs::new();
    let mut config = dirs.config();
    let bridge = config.network.default_bridge.as_mut().unwrap();
    bridge.bip = None;
    // The pool's first /24 is already routed on the host (as docker0's 172.17.0.0/16 would be, also a bridge).
    let octet = 100 + dirs.slot.n;
    let squatter = format!("{}x", dirs.slot.prefix());
    ip(&["link", "add", &squatter, "type", "bridge"]);
    ip(&[
        "addr",
        "add",
        &format!("10.{octet}.0.1/24"),
        "dev",
        &squatter,
    ]);
    ip(&["link", "set", &squatter, "up"]);
    let engine = Engine::open(config).await.unwrap();
    let net = engine.network_inspect("bridge").await.unwrap();
    let subnet = net.ipam.unwrap().config.unwrap()[0].subnet.clone().unwrap();
    assert_eq!(subnet, format!("10.{octet}.1.0/24"));
    let names: Vec<String> = engine
        .network_list(&Filters::default())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|n| n.name)
        .collect();
    assert_eq!(names, ["bridge", "host", "none"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_network_container_gets_an_address_names_and_a_clean_release() {
    let dirs = Dirs::new();
    let engine = engine_with_image(&dirs).await;
    let subnet = dirs.slot.subnet(1);
    engine
        .network_create(NetworkCreateRequest {
            name: "agentnet".into(),
            ipam: Some(skiff_engine::models::Ipam {
                config: Some(vec![skiff_engine::models::IpamConfig {
                    subnet: Some(subnet.clone()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let fixed = format!("{}.20", subnet.trim_end_matches(".0/24"));
    let body = ContainerCreateBody {
        host_config: Some(HostConfig {
            network_mode: Some("agentnet".into()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(
                [(
                    "agentnet".to_string(),
                    EndpointSettings {
                        aliases: Some(vec!["svc".into()]),
                        ipam_config: Some(skiff_engine::models::EndpointIpamConfig {
                            ipv4_address: Some(fixed.clone()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )]
                .into(),
            ),
        }),
        ..sh("ip -o -4 addr show eth0; nslookup svc; sleep 300")
    };
    let id = engine
        .container_create(Some("agent"), body, None)
        .await
        .unwrap()
        .id;
    engine.container_start(&id).await.unwrap();
    let out = poll("the container's address and its alias", async || {
        let out = logs(&engine, &id, true, false).await;
        out.contains("Address: ").then_some(out)
    })
    .await;
    assert!(out.contains(&format!("inet {fixed}/24")), "{out}");
    assert!(out.contains(&format!("Address: {fixed}")), "{out}");
    let inspected = engine.container_inspect(&id, false).await.unwrap();
    let eps = inspected.network_settings.unwrap().networks.unwrap();
    assert_eq!(eps["agentnet"].ip_address.as_deref(), Some(fixed.as_str()));
    let members = engine
        .network_inspect("agentnet")
        .await
        .unwrap()
        .containers
        .unwrap();
    assert!(members.contains_key(&id));
    engine.container_remove(&id, true, false).await.unwrap();
    let members = engine
        .network_inspect("agentnet")
        .await
        .unwrap()
        .containers
        .unwrap();
    assert!(members.is_empty(), "{members:?}");
    engine.network_remove("agentnet").await.unwrap();
}
