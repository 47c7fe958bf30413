//! `skiff network …` and `skiff port`: docker's network verbs and the published ports of a
//! container, as API calls.

use std::collections::HashMap;

use anyhow::bail;
use bollard::models::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkConnectRequest,
    NetworkCreateRequest, NetworkDisconnectRequest,
};
use bollard::query_parameters::{ListNetworksOptions, PruneNetworksOptions};
use bollard::Docker;

use super::{daemon_error, each, print_table, Outcome, With};

/// `skiff network` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network
    Create(With<CreateArgs>),
    /// List networks
    #[command(alias = "list")]
    Ls(With<LsArgs>),
    /// Display detailed information on one or more networks
    Inspect(With<Names>),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(With<Names>),
    /// Remove all unused networks
    Prune(With<PruneArgs>),
    /// Connect a container to a network
    Connect(With<ConnectArgs>),
    /// Disconnect a container from a network
    Disconnect(With<DisconnectArgs>),
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    subnet: Option<String>,
    /// IPv4 Gateway for the master subnet
    #[arg(long)]
    gateway: Option<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    ip_range: Option<String>,
    /// Restrict external access to the network
    #[arg(long)]
    internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    attachable: bool,
    /// Set metadata on a network (key=value)
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options (key=value)
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    name: String,
}

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
}

#[derive(clap::Args, Debug)]
pub struct Names {
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation (skiff never prompts)
    #[arg(short = 'f', long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// IPv4 address (e.g. "172.30.100.104")
    #[arg(long)]
    ip: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long)]
    alias: Vec<String>,
    network: String,
    container: String,
}

#[derive(clap::Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    force: bool,
    network: String,
    container: String,
}

#[derive(clap::Args, Debug)]
pub struct PortArgs {
    container: String,
    /// PRIVATE_PORT[/PROTO]
    port: Option<String>,
}

/// `key=value` pairs into a map (`key` alone maps to an empty value).
fn pairs(list: &[String]) -> HashMap<String, String> {
    list.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

/// `key=value` filters into Docker's filter map.
fn filters(list: &[String]) -> anyhow::Result<Option<HashMap<String, Vec<String>>>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for f in list {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value)")
        };
        map.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    Ok((!map.is_empty()).then_some(map))
}

pub async fn command(cmd: NetworkCommand) -> Outcome {
    macro_rules! go {
        ($w:expr, $f:ident) => {{
            let w = $w;
            let docker = super::connect(&w.conn).await?;
            $f(&docker, w.args).await
        }};
    }
    match cmd {
        NetworkCommand::Create(w) => go!(w, create),
        NetworkCommand::Ls(w) => go!(w, ls),
        NetworkCommand::Inspect(w) => go!(w, inspect),
        NetworkCommand::Rm(w) => go!(w, rm),
        NetworkCommand::Prune(w) => go!(w, prune),
        NetworkCommand::Connect(w) => go!(w, connect),
        NetworkCommand::Disconnect(w) => go!(w, disconnect),
    }
}

async fn create(docker: &Docker, args: CreateArgs) -> Outcome {
    if args.subnet.is_none() && (args.gateway.is_some() || args.ip_range.is_some()) {
        bail!("every ip-range or gateway must have a corresponding subnet");
    }
    let config = args.subnet.as_ref().map(|s| IpamConfig {
        subnet: Some(s.clone()),
        ip_range: args.ip_range.clone(),
        gateway: args.gateway.clone(),
        auxiliary_addresses: None,
    });
    let req = NetworkCreateRequest {
        name: args.name.clone(),
        driver: Some(args.driver.clone()),
        internal: Some(args.internal),
        attachable: Some(args.attachable),
        ipam: Some(Ipam {
            driver: Some("default".into()),
            config: Some(config.into_iter().collect()),
            options: Some(HashMap::new()),
        }),
        options: Some(pairs(&args.opt)),
        labels: Some(pairs(&args.label)),
        ..Default::default()
    };
    let created = docker.create_network(req).await.map_err(daemon_error)?;
    println!("{}", created.id);
    Ok(0)
}

async fn ls(docker: &Docker, args: LsArgs) -> Outcome {
    let opts = ListNetworksOptions {
        filters: filters(&args.filter)?,
    };
    let mut nets = docker
        .list_networks(Some(opts))
        .await
        .map_err(daemon_error)?;
    nets.sort_by(|a, b| a.name.cmp(&b.name));
    let id = |n: &bollard::models::Network| {
        let id = n.id.clone().unwrap_or_default();
        if args.no_trunc {
            id
        } else {
            skiff_core::ids::short_id(&id).to_owned()
        }
    };
    if args.quiet {
        for n in &nets {
            println!("{}", id(n));
        }
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = nets
        .iter()
        .map(|n| {
            vec![
                id(n),
                n.name.clone().unwrap_or_default(),
                n.driver.clone().unwrap_or_default(),
                n.scope.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows);
    Ok(0)
}

async fn inspect(docker: &Docker, args: Names) -> Outcome {
    let mut out = Vec::new();
    let mut failed = false;
    for name in &args.names {
        match docker.inspect_network(name, None).await {
            Ok(n) => out.push(serde_json::to_value(n)?),
            Err(e) => {
                eprintln!("{:#}", daemon_error(e));
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(u8::from(failed))
}

async fn rm(docker: &Docker, args: Names) -> Outcome {
    each(&args.names, |name| async move {
        docker.remove_network(&name).await
    })
    .await
}

async fn prune(docker: &Docker, args: PruneArgs) -> Outcome {
    let _ = args.force;
    let opts = PruneNetworksOptions {
        filters: filters(&args.filter)?,
    };
    let report = docker
        .prune_networks(Some(opts))
        .await
        .map_err(daemon_error)?;
    let deleted = report.networks_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Networks:");
        for n in deleted {
            println!("{n}");
        }
    }
    Ok(0)
}

async fn connect(docker: &Docker, args: ConnectArgs) -> Outcome {
    let req = NetworkConnectRequest {
        container: args.container.clone(),
        endpoint_config: Some(EndpointSettings {
            ipam_config: args.ip.clone().map(|ip| EndpointIpamConfig {
                ipv4_address: Some(ip),
                ..Default::default()
            }),
            aliases: (!args.alias.is_empty()).then(|| args.alias.clone()),
            ..Default::default()
        }),
    };
    docker
        .connect_network(&args.network, req)
        .await
        .map_err(daemon_error)?;
    Ok(0)
}

async fn disconnect(docker: &Docker, args: DisconnectArgs) -> Outcome {
    let req = NetworkDisconnectRequest {
        container: args.container.clone(),
        force: Some(args.force),
    };
    docker
        .disconnect_network(&args.network, req)
        .await
        .map_err(daemon_error)?;
    Ok(0)
}

/// `docker port`: `80/tcp -> 0.0.0.0:8080` lines, or the host addresses of one port.
pub async fn port(docker: &Docker, args: PortArgs) -> Outcome {
    let c = docker
        .inspect_container(&args.container, None)
        .await
        .map_err(daemon_error)?;
    let ports = c.network_settings.and_then(|n| n.ports).unwrap_or_default();
    let mut keys: Vec<&String> = ports.keys().collect();
    keys.sort_by_key(|k| {
        let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        (p.parse::<u16>().unwrap_or(0), proto.to_owned())
    });
    let want = args.port.as_deref().map(|p| {
        if p.contains('/') {
            p.to_owned()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut found = false;
    for key in keys {
        if want.as_deref().is_some_and(|w| w != key.as_str()) {
            continue;
        }
        for b in ports[key].iter().flatten() {
            let addr = format!(
                "{}:{}",
                b.host_ip.as_deref().unwrap_or(""),
                b.host_port.as_deref().unwrap_or("")
            );
            found = true;
            if want.is_some() {
                println!("{addr}");
            } else {
                println!("{key} -> {addr}");
            }
        }
    }
    if let (Some(w), false) = (want, found) {
        bail!(
            "Error: No public port '{w}' published for {}",
            args.container
        );
    }
    Ok(0)
}

/// The PORTS column of `ps`: `0.0.0.0:8080->80/tcp, 22/tcp`.
pub fn ports_column(ports: &[bollard::models::PortSummary]) -> String {
    let mut items: Vec<((u16, u16), String)> = ports
        .iter()
        .map(|p| {
            let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
            match p.public_port {
                Some(public) => (
                    (p.private_port, public),
                    format!(
                        "{}:{public}->{}/{proto}",
                        p.ip.as_deref().unwrap_or("0.0.0.0"),
                        p.private_port
                    ),
                ),
                None => ((p.private_port, 0), format!("{}/{proto}", p.private_port)),
            }
        })
        .collect();
    items.sort();
    items.dedup_by(|a, b| a.1 == b.1);
    items
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{PortSummary, PortSummaryTypeEnum};

    #[test]
    fn ports_column_reads_like_docker_ps() {
        let ports = [
            PortSummary {
                ip: None,
                private_port: 22,
                public_port: None,
                typ: Some(PortSummaryTypeEnum::TCP),
            },
            PortSummary {
                ip: Some("0.0.0.0".into()),
                private_port: 80,
                public_port: Some(8080),
                typ: Some(PortSummaryTypeEnum::TCP),
            },
        ];
        assert_eq!(ports_column(&ports), "22/tcp, 0.0.0.0:8080->80/tcp");
        assert_eq!(ports_column(&[]), "");
    }
}
