//! Networks and a container's network settings as Docker's API shows them.

use std::collections::HashMap;

use bollard_stubs::models::{
    EndpointResource, EndpointSettings, Ipam, IpamConfig, NetworkInspect, NetworkSettings,
};
use skiff_net::{Endpoint, Network};

use super::{endpoint_id, ports, Predefined, META_ATTACHABLE, META_IPAM_OPTIONS};
use crate::store::ContainerRecord;

fn created(nanos: u64) -> bollard_stubs::models::BollardDate {
    let secs = (nanos / 1_000_000_000) as i64;
    let sub = (nanos % 1_000_000_000) as u32;
    let t = chrono::DateTime::<chrono::Utc>::from_timestamp(secs, sub).unwrap_or_default();
    to_date(t)
}

#[allow(clippy::useless_conversion)]
fn to_date(t: chrono::DateTime<chrono::Utc>) -> bollard_stubs::models::BollardDate {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        .parse()
        .unwrap_or_default()
}

/// A bridge network as `docker network inspect` shows it (without `Containers`).
pub(crate) fn bridge_network(n: &Network) -> NetworkInspect {
    let mut options: HashMap<String, String> = n.options.clone().into_iter().collect();
    if n.name == "bridge" {
        // What Docker shows for its default bridge.
        for (k, v) in [
            ("com.docker.network.bridge.default_bridge", "true"),
            ("com.docker.network.bridge.enable_icc", "true"),
            ("com.docker.network.bridge.enable_ip_masquerade", "true"),
            ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
            ("com.docker.network.bridge.name", n.bridge.as_str()),
            ("com.docker.network.driver.mtu", "1500"),
        ] {
            options
                .entry(k.to_string())
                .or_insert_with(|| v.to_string());
        }
    }
    let ipam_options: HashMap<String, String> = n
        .meta
        .get(META_IPAM_OPTIONS)
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or_default();
    NetworkInspect {
        name: Some(n.name.clone()),
        id: Some(n.id.clone()),
        created: Some(created(n.created)),
        scope: Some("local".into()),
        driver: Some("bridge".into()),
        enable_ipv4: Some(true),
        enable_ipv6: Some(false),
        ipam: Some(Ipam {
            driver: Some("default".into()),
            options: Some(ipam_options),
            config: Some(vec![IpamConfig {
                subnet: Some(n.subnet.to_string()),
                ip_range: n.ip_range.map(|r| r.to_string()),
                gateway: Some(n.gateway.to_string()),
                auxiliary_addresses: None,
            }]),
        }),
        internal: Some(n.internal),
        attachable: Some(n.meta.get(META_ATTACHABLE).is_some_and(|v| v == "true")),
        ingress: Some(false),
        config_from: Some(bollard_stubs::models::ConfigReference {
            network: Some(String::new()),
        }),
        config_only: Some(false),
        options: Some(options),
        labels: Some(n.labels.clone().into_iter().collect()),
        containers: Some(HashMap::new()),
        ..Default::default()
    }
}

/// `host` or `none`, the networks of the drivers of the same names.
pub(crate) fn predefined(name: &str, ids: &Predefined, since: u64) -> NetworkInspect {
    let (id, driver) = match name {
        "host" => (ids.host.clone(), "host"),
        _ => (ids.none.clone(), "null"),
    };
    NetworkInspect {
        name: Some(name.into()),
        id: Some(id),
        created: Some(created(since)),
        scope: Some("local".into()),
        driver: Some(driver.into()),
        enable_ipv4: Some(true),
        enable_ipv6: Some(false),
        ipam: Some(Ipam {
            driver: Some("default".into()),
            options: None,
            config: Some(Vec::new()),
        }),
        internal: Some(false),
        attachable: Some(false),
        ingress: Some(false),
        config_from: Some(bollard_stubs::models::ConfigReference {
            network: Some(String::new()),
        }),
        config_only: Some(false),
        options: Some(HashMap::new()),
        labels: Some(HashMap::new()),
        containers: Some(HashMap::new()),
        ..Default::default()
    }
}

/// A network's entry for a container in `Containers`.
pub(crate) fn endpoint_resource(rec: &ContainerRecord, ep: &Endpoint) -> EndpointResource {
    EndpointResource {
        name: Some(rec.short_name().to_string()),
        endpoint_id: Some(endpoint_id(&rec.id, &ep.network_id)),
        mac_address: Some(ep.mac.clone()),
        ipv4_address: Some(ep.address.to_string()),
        ipv6_address: Some(String::new()),
    }
}

/// A container's settings on one network: what it asked for, plus its address while it
/// runs.
pub(crate) fn endpoint_settings(
    rec: &ContainerRecord,
    asked: &EndpointSettings,
    network: Option<&Network>,
    live: Option<&Endpoint>,
) -> EndpointSettings {
    let mut out = EndpointSettings {
        ipam_config: asked.ipam_config.clone(),
        links: asked.links.clone(),
        aliases: asked.aliases.clone(),
        driver_opts: asked.driver_opts.clone(),
        gw_priority: Some(asked.gw_priority.unwrap_or(0)),
        mac_address: Some(String::new()),
        network_id: Some(
            network
                .map(|n| n.id.clone())
                .or_else(|| asked.network_id.clone())
                .unwrap_or_default(),
        ),
        endpoint_id: Some(String::new()),
        gateway: Some(String::new()),
        ip_address: Some(String::new()),
        ip_prefix_len: Some(0),
        ipv6_gateway: Some(String::new()),
        global_ipv6_address: Some(String::new()),
        global_ipv6_prefix_len: Some(0),
        dns_names: network
            .filter(|n| n.dns)
            .map(|_| super::attach::dns_names(rec, asked.aliases.as_deref().unwrap_or_default())),
    };
    if let Some(ep) = live {
        out.mac_address = Some(ep.mac.clone());
        out.endpoint_id = Some(endpoint_id(&rec.id, &ep.network_id));
        out.gateway = Some(ep.gateway.map(|g| g.to_string()).unwrap_or_default());
        out.ip_address = Some(ep.address.addr().to_string());
        out.ip_prefix_len = Some(ep.address.prefix_len() as i64);
    }
    out
}

/// What the container shows of its networks.
pub(crate) struct ContainerNet {
    pub settings: NetworkSettings,
    /// Every network by name (inspect and `ps`).
    pub networks: HashMap<String, EndpointSettings>,
    pub ports: Vec<bollard_stubs::models::PortSummary>,
}

/// Builds [`ContainerNet`] from the record, its networks and its live endpoints (none when
/// it is not running).
pub(crate) fn container_net(
    rec: &ContainerRecord,
    networks: &[(String, EndpointSettings, Option<Network>)],
    live: &[Endpoint],
    sandbox_key: Option<String>,
    mode: Option<(&str, &str)>,
) -> ContainerNet {
    let mut by_name: HashMap<String, EndpointSettings> = HashMap::new();
    let mut published = Vec::new();
    for (name, asked, network) in networks {
        let ep = network
            .as_ref()
            .and_then(|n| live.iter().find(|e| e.network_id == n.id));
        if let Some(ep) = ep {
            published.extend(ep.ports.iter().copied());
        }
        by_name.insert(
            name.clone(),
            endpoint_settings(rec, asked, network.as_ref(), ep),
        );
    }
    if let Some((name, id)) = mode {
        // `host` and `none` show as networks of their own, as in Docker, without addresses.
        let mut none = endpoint_settings(rec, &EndpointSettings::default(), None, None);
        none.network_id = Some(id.to_string());
        by_name.insert(name.to_string(), none);
    }
    let exposed = ports::exposed(&rec.config, &rec.host_config);
    let running = rec.state.status.is_alive();
    let settings = NetworkSettings {
        sandbox_id: Some(if running && sandbox_key.is_some() {
            rec.id.clone()
        } else {
            String::new()
        }),
        sandbox_key: Some(sandbox_key.filter(|_| running).unwrap_or_default()),
        ports: Some(if running {
            ports::port_map(&exposed, &published)
        } else {
            HashMap::new()
        }),
        networks: Some(by_name.clone()),
    };
    ContainerNet {
        settings,
        networks: by_name,
        ports: if running {
            ports::summary(&exposed, &published)
        } else {
            Vec::new()
        },
    }
}
