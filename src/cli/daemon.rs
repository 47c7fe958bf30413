//! `skiff daemon`: opens the engine on its directories and serves the Docker Engine API on a
//! unix socket until SIGTERM or SIGINT. Containers keep running across a daemon stop.

use std::path::PathBuf;

use anyhow::Context;
use skiff_core::paths::{DEFAULT_ENGINE_ROOT, DEFAULT_ENGINE_SOCKET, DEFAULT_ENGINE_STATE};
use skiff_engine::registry::RegistryConfig;
use skiff_engine::{Engine, EngineConfig};
use tokio::signal::unix::{signal, SignalKind};

/// Options of `skiff daemon`.
#[derive(clap::Args)]
pub struct Args {
    /// Persistent state: images, container records, volumes
    #[arg(long, default_value = DEFAULT_ENGINE_ROOT)]
    root: PathBuf,
    /// Runtime state: shim sockets and container state
    #[arg(long, default_value = DEFAULT_ENGINE_STATE)]
    state: PathBuf,
    /// Unix socket to serve the Docker Engine API on
    #[arg(long, default_value = DEFAULT_ENGINE_SOCKET)]
    socket: PathBuf,
    /// Default OCI runtime of containers that do not ask for one
    #[arg(long, default_value = "embedded", value_parser = clap::builder::PossibleValuesParser::new(skiff_runtime::backend::NAMES))]
    runtime: String,
    /// Cgroup under which containers' cgroups are created, in every hierarchy
    #[arg(long, default_value = skiff_core::paths::CGROUP_PARENT)]
    cgroup_parent: String,
    /// A registry reached over plain HTTP (`host[:port]` or a CIDR); repeatable. Loopback
    /// registries (`localhost`, 127.0.0.0/8, ::1) always are
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    insecure_registries: Vec<String>,
    /// A Docker Hub mirror (`http://host:port` or `https://…`), tried in order before Docker
    /// Hub; repeatable
    #[arg(long = "registry-mirror", value_name = "URL")]
    registry_mirrors: Vec<String>,
    /// Layers downloaded at once per pull
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_downloads: u16,
    /// Layers uploaded at once per push
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_uploads: u16,
    /// Seconds a client has to send each request header; idle connections are closed after
    /// it (tests set short ones)
    #[arg(long, default_value_t = 32, hide = true)]
    request_header_deadline: u64,
    /// Largest build context (`docker build`) accepted, in bytes
    #[arg(long, default_value_t = 8 << 30)]
    max_build_context: u64,
    #[command(flatten)]
    net: NetArgs,
}

/// Docker's daemon options for networking (`dockerd --bridge --bip --default-address-pool
/// --dns --ip …`), plus the names of skiff's own host objects.
#[derive(clap::Args)]
struct NetArgs {
    /// Host interface of the default `bridge` network (default `<network-prefix>0`; `none`:
    /// no default bridge network)
    #[arg(short = 'b', long = "bridge")]
    bridge: Option<String>,
    /// The default bridge's address and subnet, e.g. 10.1.0.1/24 (default: the first free
    /// subnet of the address pools)
    #[arg(long)]
    bip: Option<ipnet::Ipv4Net>,
    /// Where networks without --subnet get theirs, e.g. base=10.10.0.0/16,size=24 (repeat
    /// for several; default Docker's pools)
    #[arg(long = "default-address-pool", value_parser = parse_pool)]
    default_address_pool: Vec<skiff_engine::skiff_net::AddressPool>,
    /// DNS server for containers (repeatable)
    #[arg(long = "dns")]
    dns: Vec<std::net::IpAddr>,
    /// DNS search domain for containers (repeatable)
    #[arg(long = "dns-search")]
    dns_search: Vec<String>,
    /// DNS option for containers (repeatable)
    #[arg(long = "dns-opt")]
    dns_opt: Vec<String>,
    /// Host address ports are published on when a binding names none
    #[arg(long = "ip")]
    ip: Option<std::net::Ipv4Addr>,
    /// Prefix of every network interface the daemon creates (at most 8 characters; daemons
    /// on one host need different ones)
    #[arg(long = "network-prefix", default_value = "skiff", value_parser = parse_prefix)]
    network_prefix: String,
    /// The daemon's nftables table (family inet); daemons on one host need different ones
    #[arg(long = "nftables-table", default_value = "skiff")]
    nftables_table: String,
}

/// `base=CIDR,size=N`, as dockerd's `--default-address-pool`.
fn parse_pool(s: &str) -> Result<skiff_engine::skiff_net::AddressPool, String> {
    let mut base = None;
    let mut size = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("base", v)) => {
                base = Some(
                    v.parse::<ipnet::Ipv4Net>()
                        .map_err(|_| format!("invalid base pool {v:?}: an IPv4 CIDR"))?,
                )
            }
            Some(("size", v)) => {
                size = Some(
                    v.parse::<u8>()
                        .ok()
                        .filter(|n| *n <= 30)
                        .ok_or_else(|| format!("invalid size {v:?}: a prefix length up to 30"))?,
                )
            }
            _ => return Err(format!("unexpected {part:?}: want base=CIDR,size=N")),
        }
    }
    let (Some(base), Some(size)) = (base, size) else {
        return Err("want base=CIDR,size=N".into());
    };
    if size < base.prefix_len() {
        return Err(format!("size /{size} is larger than the base pool {base}"));
    }
    Ok(skiff_engine::skiff_net::AddressPool {
        base: base.trunc(),
        size,
    })
}

/// Interface names are at most 15 bytes: the prefix leaves room for a veth's hash.
fn parse_prefix(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 8 || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("1 to 8 letters or digits".into());
    }
    Ok(s.to_string())
}

impl NetArgs {
    fn config(
        self,
        root: &std::path::Path,
        state: &std::path::Path,
    ) -> anyhow::Result<skiff_engine::NetworkConfig> {
        let mut cfg = skiff_engine::NetworkConfig::new(root, state);
        cfg.net.prefix = self.network_prefix;
        cfg.net.table = self.nftables_table;
        if !self.default_address_pool.is_empty() {
            cfg.net.pools = self.default_address_pool;
        }
        let bridge = self
            .bridge
            .unwrap_or_else(|| format!("{}0", cfg.net.prefix));
        cfg.default_bridge = match bridge.as_str() {
            "none" => None,
            name => {
                if name.len() > 15 || name.contains(['/', ':', ' ']) {
                    anyhow::bail!("--bridge {name:?}: not a valid interface name");
                }
                if let Some(bip) = self.bip {
                    if bip.addr() == bip.network() || bip.addr() == bip.broadcast() {
                        anyhow::bail!("--bip {bip}: the bridge's own address, not the subnet's");
                    }
                }
                Some(skiff_engine::DefaultBridge {
                    interface: name.to_string(),
                    bip: self.bip,
                })
            }
        };
        cfg.dns = skiff_engine::skiff_net::DnsOverrides {
            servers: self.dns.iter().map(|d| d.to_string()).collect(),
            search: self.dns_search,
            options: self.dns_opt,
        };
        cfg.default_bind_ip = self.ip;
        Ok(cfg)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the skiff binary")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(async move {
        let network = args.net.config(&args.root, &args.state)?;
        let config = EngineConfig {
            root: args.root,
            state: args.state,
            default_runtime: args.runtime,
            exe,
            cgroup_parent: args.cgroup_parent,
            network,
            registry: RegistryConfig {
                insecure_registries: args.insecure_registries,
                mirrors: args.registry_mirrors,
                max_concurrent_downloads: args.max_concurrent_downloads.into(),
                max_concurrent_uploads: args.max_concurrent_uploads.into(),
                ..RegistryConfig::default()
            },
        };
        let engine = Engine::open(config).await.context("opening the engine")?;
        engine.set_build_context_limit(args.max_build_context);
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
            }
        };
        let limits = super::server::deadlines(args.request_header_deadline);
        // The start ran megabytes of code it never runs again (argument parsing, loading
        // state, the network reconcile): its pages leave the daemon's resident set before it
        // serves (they stay in the page cache; what requests need faults back in).
        if let Err(e) = skiff_runtime::shim::trim_executable_pages() {
            tracing::debug!(error = %e, "cannot drop the start's code pages");
        }
        skiff_docker_api::serve_with(engine.clone(), &args.socket, limits, shutdown).await?;
        engine.shutdown().await;
        let _ = std::fs::remove_file(&args.socket);
        tracing::info!("stopped; containers keep running");
        Ok(())
    })
}
