//! A node: an engine (serving its Docker API on `--docker-socket` as `skiff daemon` does) and
//! the node agent on it, talking to the API server through whatever kube client it is given —
//! in-process for `skiff server`'s local node, over HTTPS with its own certificate for
//! `skiff agent`. Both commands start nodes through here.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The options of a node (the node of `skiff server`, or `skiff agent`).
#[derive(clap::Args)]
pub struct NodeArgs {
    /// Runtime state of the node (engine state, pod sandboxes, the Docker socket)
    /// [default: /run/skiff/server, or /run/skiff/agent for `skiff agent`]
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// The node's name (default: the host name)
    #[arg(long)]
    node_name: Option<String>,
    /// The node's InternalIP (default: the address of the default route)
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// The node's engine: images, container records (default: <data-dir>/engine)
    #[arg(long)]
    engine_root: Option<PathBuf>,
    /// The node's engine runtime state (default: <run-dir>/engine)
    #[arg(long)]
    engine_state: Option<PathBuf>,
    /// The node's Docker API socket (default: <run-dir>/skiff.sock)
    #[arg(long)]
    docker_socket: Option<PathBuf>,
    /// Default OCI runtime of the node's containers
    #[arg(long, default_value = "embedded", value_parser = clap::builder::PossibleValuesParser::new(skiff_runtime::backend::NAMES))]
    runtime: String,
    /// Cgroup the node's containers live under (pods: <parent>/kubepods/pod<uid>)
    #[arg(long, default_value = skiff_core::paths::CGROUP_PARENT)]
    cgroup_parent: String,
    /// Host bridge of the node's pod network
    #[arg(long, default_value = "skiffpods0")]
    pod_bridge: String,
    /// nftables table of the node's pod network
    #[arg(long, default_value = "skiff-pods")]
    pod_nftables_table: String,
    /// Prefix of pods' host veth names (at most 8 letters or digits)
    #[arg(long, default_value = "skiffp")]
    pod_interface_prefix: String,
    /// Cluster DNS address written into pods' resolv.conf [default: 10.43.0.10; for
    /// `skiff agent` the server's]
    #[arg(long)]
    pub cluster_dns: Option<std::net::Ipv4Addr>,
    /// A registry the node pulls from over plain HTTP (`host[:port]` or a CIDR);
    /// repeatable. Loopback registries always are
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    insecure_registries: Vec<String>,
    /// A Docker Hub mirror the node tries first; repeatable
    #[arg(long = "registry-mirror", value_name = "URL")]
    registry_mirrors: Vec<String>,
    /// Cluster domain [default: cluster.local; for `skiff agent` the server's]
    #[arg(long)]
    pub cluster_domain: Option<String>,
    /// How often the node samples its and its pods' resource usage (`kubectl top`, the HPA);
    /// `skiff server` reads other nodes' usage from their kubelet APIs as often
    #[arg(long, default_value = "10s")]
    pub node_stats_period: humantime::Duration,
    /// Host bridge of the default `bridge` network of the node's Docker API (`none`: no
    /// default bridge network there)
    #[arg(long, default_value = "skiffn0")]
    engine_bridge: String,
    /// Prefix of the interfaces the node's Docker API creates for its networks (at most 8
    /// letters or digits; not the pods' prefix)
    #[arg(long, default_value = "skiffn")]
    engine_network_prefix: String,
    /// nftables table of the node's Docker networks (not the pods' table)
    #[arg(long, default_value = "skiff-node")]
    engine_nftables_table: String,
    /// Address the node's kubelet API listens on
    #[arg(long, default_value = "0.0.0.0")]
    pub kubelet_address: std::net::IpAddr,
    /// Port of the node's kubelet API (HTTPS; the API server reaches pod logs, exec, attach
    /// and port-forward there)
    #[arg(long, default_value_t = skiff_agent::node::KUBELET_PORT)]
    pub kubelet_port: u16,
}

impl NodeArgs {
    /// `--run-dir`, else `default`.
    pub fn run_dir(&self, default: &Path) -> PathBuf {
        self.run_dir
            .clone()
            .unwrap_or_else(|| default.to_path_buf())
    }

    /// `--node-name`, else the host name.
    pub fn node_name(&self) -> anyhow::Result<String> {
        match &self.node_name {
            Some(n) => Ok(n.clone()),
            None => Ok(nix::unistd::gethostname()
                .context("reading the host name")?
                .to_string_lossy()
                .to_lowercase()),
        }
    }

    /// The network options of the node's engine: its own prefix, table and default
    /// bridge, apart from the pods' (which the agent sets up through skiff-net itself).
    fn engine_network(
        &self,
        root: &Path,
        state: &Path,
    ) -> anyhow::Result<skiff_engine::NetworkConfig> {
        let p = &self.engine_network_prefix;
        if p.is_empty() || p.len() > 8 || !p.chars().all(|c| c.is_ascii_alphanumeric()) {
            anyhow::bail!("--engine-network-prefix {p:?}: 1 to 8 letters or digits");
        }
        if *p == self.pod_interface_prefix || self.engine_nftables_table == self.pod_nftables_table
        {
            anyhow::bail!("the node's Docker networks need their own prefix and table");
        }
        let mut cfg = skiff_engine::NetworkConfig::new(root, state);
        cfg.net.prefix = p.clone();
        cfg.net.table = self.engine_nftables_table.clone();
        cfg.default_bridge = match self.engine_bridge.as_str() {
            "none" => None,
            name if name.len() > 15 || name.contains(['/', ':', ' ']) => {
                anyhow::bail!("--engine-bridge {name:?}: not a valid interface name")
            }
            name => Some(skiff_engine::DefaultBridge {
                interface: name.to_string(),
                bip: None,
            }),
        };
        Ok(cfg)
    }
}

/// A running node: its engine, the engine's Docker API, and the agent.
pub struct Node {
    engine: std::sync::Arc<skiff_engine::Engine>,
    pub agent: skiff_agent::Agent,
    docker_api: tokio::task::JoinHandle<()>,
    socket: PathBuf,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Node {
    /// Opens the node's engine under `data_dir` (and `--run-dir`, default `default_run`),
    /// serves its Docker API and starts its agent on `client` with `labels` on its Node, in
    /// the cluster `cluster` (its CIDR, and the DNS settings unless the node's flags differ).
    pub async fn start(
        args: &NodeArgs,
        data_dir: &Path,
        default_run: &Path,
        cluster: &skiff_core::cluster::ClusterConfig,
        client: kube::Client,
        labels: Vec<(String, String)>,
        kubelet: skiff_agent::kubelet::KubeletServerConfig,
    ) -> anyhow::Result<Node> {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let exe = std::env::current_exe().context("locating the skiff binary")?;
        let run_dir = args.run_dir(default_run);
        let engine_root = args
            .engine_root
            .clone()
            .unwrap_or_else(|| data_dir.join("engine"));
        let engine_state = args
            .engine_state
            .clone()
            .unwrap_or_else(|| run_dir.join("engine"));
        let socket = args
            .docker_socket
            .clone()
            .unwrap_or_else(|| run_dir.join("skiff.sock"));
        let network = args.engine_network(&engine_root, &engine_state)?;
        let engine = skiff_engine::Engine::open(skiff_engine::EngineConfig {
            root: engine_root,
            state: engine_state,
            default_runtime: args.runtime.clone(),
            exe,
            cgroup_parent: args.cgroup_parent.clone(),
            registry: skiff_engine::registry::RegistryConfig {
                insecure_registries: args.insecure_registries.clone(),
                mirrors: args.registry_mirrors.clone(),
                ..Default::default()
            },
            network,
        })
        .await
        .context("opening the node's engine")?;
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut api_stop = stop.clone();
        let docker_engine = engine.clone();
        let docker_socket = socket.clone();
        let docker_api = tokio::spawn(async move {
            let shutdown = async move {
                let _ = api_stop.wait_for(|s| *s).await;
            };
            if let Err(e) = skiff_docker_api::serve_with(
                docker_engine,
                &docker_socket,
                super::server::deadlines(32),
                shutdown,
            )
            .await
            {
                tracing::error!(error = %e, "the node's Docker API stopped");
            }
        });
        tracing::info!(socket = %socket.display(), "node's Docker API listening");
        let mut cfg = skiff_agent::AgentConfig::new(
            args.node_name()?,
            data_dir.join("agent"),
            run_dir.join("agent"),
        );
        // The engine's rootfs mounts are under its state dir: with that in the node's run
        // dir, one mount hub covers them and the pods' sandboxes alike (ADR 0036).
        if engine.config().state.starts_with(&run_dir) {
            cfg.mount_hub = Some(run_dir.clone());
        }
        cfg.node_ip = args.node_ip;
        cfg.node_labels = labels;
        cfg.pod_bridge = args.pod_bridge.clone();
        cfg.nftables_table = args.pod_nftables_table.clone();
        cfg.interface_prefix = args.pod_interface_prefix.clone();
        cfg.cluster_cidr = cluster.cluster_cidr;
        cfg.cluster_dns = args.cluster_dns.unwrap_or(cluster.cluster_dns);
        cfg.cluster_domain = args
            .cluster_domain
            .clone()
            .unwrap_or_else(|| cluster.cluster_domain.clone());
        cfg.stats_period = args.node_stats_period.into();
        cfg.kubelet = Some(std::sync::Arc::new(kubelet));
        let agent = skiff_agent::Agent::start(client, engine.clone(), cfg)
            .await
            .map_err(|e| anyhow::anyhow!("starting the node agent: {}", skiff_agent::chain(&e)))?;
        Ok(Node {
            engine,
            agent,
            docker_api,
            socket,
            stop: stop_tx,
        })
    }

    /// Stops the agent (the node is reported NotReady; pod containers keep running under their
    /// shims), the Docker API and the engine.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        self.agent.stop().await;
        let _ = self.docker_api.await;
        self.engine.shutdown().await;
        let _ = std::fs::remove_file(&self.socket);
        tracing::info!("node stopped; pod containers keep running");
    }
}
