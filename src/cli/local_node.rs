//! The local node of `skiff server`: an engine (serving its Docker API on `--docker-socket`
//! as `skiff daemon` does) and the node agent on it, which talks to the API server
//! in-process as `system:node:<name>`, and serves the kubelet API over HTTPS with a serving
//! certificate the server mints from the cluster CA (the API server reaches it there, as it
//! reaches every node).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The local node's options.
#[derive(clap::Args)]
pub struct NodeArgs {
    /// Runtime state of the local node (engine state, pod sandboxes, the Docker socket)
    #[arg(long, default_value = "/run/skiff/server")]
    run_dir: PathBuf,
    /// The local node's name (default: the host name)
    #[arg(long)]
    node_name: Option<String>,
    /// The local node's InternalIP (default: the address of the default route)
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// The local node's engine: images, container records (default: <data-dir>/engine)
    #[arg(long)]
    engine_root: Option<PathBuf>,
    /// The local node's engine runtime state (default: <run-dir>/engine)
    #[arg(long)]
    engine_state: Option<PathBuf>,
    /// The local node's Docker API socket (default: <run-dir>/skiff.sock)
    #[arg(long)]
    docker_socket: Option<PathBuf>,
    /// Default OCI runtime of the local node's containers
    #[arg(long, default_value = "embedded", value_parser = clap::builder::PossibleValuesParser::new(skiff_runtime::backend::NAMES))]
    runtime: String,
    /// Cgroup the local node's containers live under (pods: <parent>/kubepods/pod<uid>)
    #[arg(long, default_value = skiff_core::paths::CGROUP_PARENT)]
    cgroup_parent: String,
    /// Host bridge of the local node's pod network
    #[arg(long, default_value = "skiffpods0")]
    pod_bridge: String,
    /// nftables table of the local node's pod network
    #[arg(long, default_value = "skiff-pods")]
    pod_nftables_table: String,
    /// Prefix of pods' host veth names (at most 8 letters or digits)
    #[arg(long, default_value = "skiffp")]
    pod_interface_prefix: String,
    /// Cluster DNS address written into pods' resolv.conf
    #[arg(long, default_value = "10.43.0.10")]
    cluster_dns: std::net::Ipv4Addr,
    /// A registry the local node pulls from over plain HTTP (`host[:port]` or a CIDR);
    /// repeatable. Loopback registries always are
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    insecure_registries: Vec<String>,
    /// A Docker Hub mirror the local node tries first; repeatable
    #[arg(long = "registry-mirror", value_name = "URL")]
    registry_mirrors: Vec<String>,
    /// Cluster domain
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Host bridge of the default `bridge` network of the local node's Docker API (`none`: no
    /// default bridge network there)
    #[arg(long, default_value = "skiffn0")]
    engine_bridge: String,
    /// Prefix of the interfaces the local node's Docker API creates for its networks (at most 8
    /// letters or digits; not the pods' prefix)
    #[arg(long, default_value = "skiffn")]
    engine_network_prefix: String,
    /// nftables table of the local node's Docker networks (not the pods' table)
    #[arg(long, default_value = "skiff-node")]
    engine_nftables_table: String,
    /// Address the local node's kubelet API listens on
    #[arg(long, default_value = "0.0.0.0")]
    kubelet_address: IpAddr,
    /// Port of the local node's kubelet API (HTTPS; the API server reaches pod logs, exec and
    /// attach there)
    #[arg(long, default_value_t = skiff_agent::node::KUBELET_PORT)]
    kubelet_port: u16,
}

impl NodeArgs {
    /// The network options of the local node's engine: its own prefix, table and default
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

/// The local node: its engine, the engine's Docker API, and the agent.
pub struct LocalNode {
    engine: std::sync::Arc<skiff_engine::Engine>,
    agent: skiff_agent::Agent,
    docker_api: tokio::task::JoinHandle<()>,
    socket: PathBuf,
    stop: tokio::sync::watch::Sender<bool>,
}

impl LocalNode {
    /// Opens the local node's engine, serves its Docker API and starts its agent, which talks to
    /// `server`'s API in-process as `system:node:<name>`.
    pub async fn start(
        args: &NodeArgs,
        data_dir: &Path,
        cluster: &skiff_apiserver::nodeipam::ClusterNetwork,
        server: &skiff_apiserver::Server,
    ) -> anyhow::Result<LocalNode> {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let exe = std::env::current_exe().context("locating the skiff binary")?;
        let engine_root = args
            .engine_root
            .clone()
            .unwrap_or_else(|| data_dir.join("engine"));
        let engine_state = args
            .engine_state
            .clone()
            .unwrap_or_else(|| args.run_dir.join("engine"));
        let socket = args
            .docker_socket
            .clone()
            .unwrap_or_else(|| args.run_dir.join("skiff.sock"));
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
        .context("opening the local node's engine")?;
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
                tracing::error!(error = %e, "the local node's Docker API stopped");
            }
        });
        tracing::info!(socket = %socket.display(), "local node's Docker API listening");
        let name = match &args.node_name {
            Some(n) => n.clone(),
            None => nix::unistd::gethostname()
                .context("reading the host name")?
                .to_string_lossy()
                .to_lowercase(),
        };
        let user = skiff_apiserver::auth::UserInfo {
            name: format!("system:node:{name}"),
            uid: String::new(),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
        };
        let client = skiff_apiserver::in_process_client(server.state.clone(), user);
        let node_ip = args
            .node_ip
            .unwrap_or_else(skiff_agent::machine::default_ip);
        // The local node's kubelet serving certificate comes straight from the cluster CA.
        let mut addresses = vec![node_ip];
        if args.kubelet_address.is_loopback() || args.kubelet_address.is_unspecified() {
            addresses.push(IpAddr::from([127, 0, 0, 1]));
        }
        let serving = server
            .pki
            .kubelet_serving(&name, &addresses)
            .context("minting the local node's kubelet serving certificate")?;
        let kubelet = skiff_agent::kubelet::KubeletServerConfig {
            addr: std::net::SocketAddr::new(args.kubelet_address, args.kubelet_port),
            cert_chain: serving.cert_chain,
            key: serving.key,
            client_ca: serving.ca,
            allowed_clients: vec![skiff_agent::kubelet::APISERVER_CLIENT_CN.into()],
        };
        let mut cfg =
            skiff_agent::AgentConfig::new(name, data_dir.join("agent"), args.run_dir.join("agent"));
        cfg.node_ip = Some(node_ip);
        cfg.kubelet = Some(std::sync::Arc::new(kubelet));
        cfg.node_labels = vec![
            (
                "node-role.kubernetes.io/control-plane".into(),
                "true".into(),
            ),
            ("node-role.kubernetes.io/master".into(), "true".into()),
        ];
        cfg.pod_bridge = args.pod_bridge.clone();
        cfg.nftables_table = args.pod_nftables_table.clone();
        cfg.interface_prefix = args.pod_interface_prefix.clone();
        cfg.cluster_cidr = cluster.cidr;
        cfg.cluster_dns = args.cluster_dns;
        cfg.cluster_domain = args.cluster_domain.clone();
        let agent = skiff_agent::Agent::start(client, engine.clone(), cfg)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "starting the local node's agent: {}",
                    skiff_agent::chain(&e)
                )
            })?;
        Ok(LocalNode {
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
        tracing::info!("local node stopped; pod containers keep running");
    }
}
