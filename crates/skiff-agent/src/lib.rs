//! skiff's node agent: the node's side of the cluster, what kubelet is to Kubernetes. It
//! registers the node's `Node` (capacity, addresses, system info, a pod CIDR the API server
//! assigns), keeps it Ready and renews its `Lease`; it watches the pods bound to the node,
//! runs each as a sandbox (skiff-net namespaces, addresses, `/etc` files) plus one engine
//! container per pod container, restarts them by the pod's policy, stops them when the pod
//! is deleted, and writes pod status and events back.
//!
//! It is level-triggered: every sync compares what the API asks for with what the engine
//! runs, so an agent killed at any point picks up where it was (pod containers run under
//! their own shims and outlive it). It talks to the API only as a kube-rs client — in
//! `skiff server` through an in-process client, the same code path as a remote node — and to
//! the engine only through its Rust API, never its HTTP socket. It must not schedule pods,
//! change pod specs, or own host network objects itself (skiff-net does).
//!
//! Layout: [`join`] (a remote node's certificates), [`rotation`] (their renewal), [`node`] (Node, Lease), [`routes`]
//! (host-gw routes to other nodes' pods), [`apiservice`] (the `kubernetes` Service's ClusterIP
//! translated to the API server for the node's pods), [`pods`] (the watch loop and housekeeping), `sync` (one
//! pod's step), `status`, [`sandbox`] and `etc` (what a pod's containers share), `spec`
//! (pod container → engine container), `observe` (engine → pod containers), [`labels`],
//! [`logs`] (`pods/log`), [`stats`] (resource usage from cgroups), [`kubelet`] (the kubelet
//! API over HTTPS: logs, exec, attach, port-forward).

#![forbid(unsafe_code)]

pub mod apiservice;
mod backoff;
mod env;
mod error;
mod etc;
mod events;
mod hooks;
mod images;
pub mod join;
pub mod kubelet;
pub mod labels;
pub mod logs;
pub mod machine;
pub mod node;
mod observe;
pub mod pods;
mod probes;
mod projected;
mod qos;
mod quantity;
pub mod rotation;
pub mod routes;
pub mod sandbox;
mod security;
mod spec;
mod starts;
pub mod stats;
mod status;
mod sync;
mod tokens;
mod volumes;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::Ipv4Net;
use skiff_engine::Engine;
use skiff_net::{Net, NetConfig};

pub use error::{chain, AgentError, Result};

/// Resolves once `rx` says stop (or its sender is gone).
pub(crate) async fn until_stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// How a node is set up.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The Node's name (default: the host name).
    pub node_name: String,
    /// The node's InternalIP (default: the source address of the default route).
    pub node_ip: Option<IpAddr>,
    /// Extra Node labels (a server's local node: `node-role.kubernetes.io/control-plane`).
    pub node_labels: Vec<(String, String)>,
    /// Persistent state: the pod network's definition (`<state>/net`).
    pub state_dir: PathBuf,
    /// Runtime state: pod sandboxes (`<run>/pods`), skiff-net's records (`<run>/net`).
    pub run_dir: PathBuf,
    /// A directory holding `run_dir` (by default `run_dir` itself) made a mount of its own
    /// that every container's shim leaves out of its mount namespace except for its own
    /// pod's mounts (ADR 0036); the node's run dir, when the engine's rootfs mounts are in it
    /// too. None: no hub.
    pub mount_hub: Option<PathBuf>,
    /// Host bridge of the pod network.
    pub pod_bridge: String,
    /// nftables table of the pod network (family inet).
    pub nftables_table: String,
    /// Prefix of the host ends of pods' veths (at most 8 characters).
    pub interface_prefix: String,
    /// The cluster CIDR (pods reach it without NAT).
    pub cluster_cidr: Ipv4Net,
    pub cluster_dns: Ipv4Addr,
    pub cluster_domain: String,
    /// How often the node's and its pods' resource usage is sampled.
    pub stats_period: std::time::Duration,
    /// The kubelet API to serve (none: the node reports no kubelet port, and the API server
    /// cannot reach its pods' logs or exec them).
    pub kubelet: Option<Arc<kubelet::KubeletServerConfig>>,
}

impl AgentConfig {
    /// k3s' defaults for a node named `node_name` keeping its state under `state_dir` and
    /// `run_dir`.
    pub fn new(node_name: String, state_dir: PathBuf, run_dir: PathBuf) -> AgentConfig {
        AgentConfig {
            node_name,
            node_ip: None,
            node_labels: Vec::new(),
            state_dir,
            mount_hub: Some(run_dir.clone()),
            run_dir,
            pod_bridge: "skiffpods0".into(),
            nftables_table: "skiff-pods".into(),
            interface_prefix: "skiffp".into(),
            cluster_cidr: "10.42.0.0/16".parse().expect("literal"),
            cluster_dns: skiff_core::cluster::DEFAULT_CLUSTER_DNS,
            cluster_domain: skiff_core::cluster::DEFAULT_CLUSTER_DOMAIN.into(),
            stats_period: stats::DEFAULT_PERIOD,
            kubelet: None,
        }
    }
}

/// A running node agent.
pub struct Agent {
    stop: tokio::sync::watch::Sender<bool>,
    engine: Arc<Engine>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stats: stats::StatsHandle,
    pub node_name: String,
    pub pod_cidr: Ipv4Net,
    /// Where the kubelet API listens (when served).
    pub kubelet_addr: Option<std::net::SocketAddr>,
}

impl Agent {
    /// Registers the node, sets up its pod network (adopting the sandboxes and containers
    /// of pods that still run) and starts the heartbeats and the pod loop.
    pub async fn start(
        client: kube::Client,
        engine: Arc<Engine>,
        cfg: AgentConfig,
    ) -> Result<Agent> {
        let version = client.apiserver_version().await?.git_version;
        let node_ip = cfg.node_ip.unwrap_or_else(machine::default_ip);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let sampler = stats::Sampler::new(
            engine.clone(),
            cfg.node_name.clone(),
            engine.config().cgroup_parent.clone(),
        );
        let stats = sampler.handle();
        let kubelet_server = match &cfg.kubelet {
            Some(k) => {
                let served = kubelet::Kubelet {
                    engine: engine.clone(),
                    client: client.clone(),
                    sandboxes_dir: cfg.run_dir.join("pods"),
                    node_name: cfg.node_name.clone(),
                    stats: stats.clone(),
                };
                let own = k.as_ref().clone();
                Some(kubelet::serve(own, served, stopped.clone()).await?)
            }
            None => None,
        };
        let identity = node::NodeIdentity {
            name: cfg.node_name.clone(),
            ip: node_ip,
            hostname: cfg.node_name.clone(),
            labels: cfg.node_labels.clone(),
            resources: machine::Resources::of_host(&engine.config().root),
            kubelet_version: version,
            kubelet_port: kubelet_server
                .as_ref()
                .map_or(0, |k| i32::from(k.addr.port())),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
        };
        let registration = node::NodeRegistration::new(client.clone(), identity);
        let registered = registration.register().await?;
        let bad = |message: String| AgentError::Node {
            node: cfg.node_name.clone(),
            message,
        };
        let pod_cidr: Ipv4Net = registered
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.clone())
            .ok_or_else(|| bad("the API server gave it no pod CIDR".into()))?
            .parse()
            .map_err(|_| bad("its pod CIDR is not an IPv4 network".into()))?;
        registration.renew_lease().await?;

        // Every pod's mounts (namespace files, /dev/shm, memory-backed volumes, network
        // namespaces) are under the run dir, in a mount of its own: each container's shim
        // leaves the other pods' mounts out of its mount namespace, so that the runtime's
        // reads of the mount table do not grow with the number of pods (ADR 0036).
        if let Some(hub) = &cfg.mount_hub {
            match skiff_runtime::shim::make_mount_hub(hub) {
                Ok(()) => engine.set_mount_hubs(vec![hub.clone()]),
                Err(e) => tracing::warn!(
                    dir = %hub.display(),
                    error = %e,
                    "cannot make the pods' directory a mount of its own; every shim sees every pod's mounts"
                ),
            }
        }
        let mut net_cfg = NetConfig::new(cfg.state_dir.join("net"), cfg.run_dir.join("net"));
        net_cfg.table = cfg.nftables_table.clone();
        net_cfg.prefix = cfg.interface_prefix.clone();
        let net = Net::open(net_cfg).await?;
        let sandboxes = sandbox::Sandboxes {
            net,
            dir: cfg.run_dir.join("pods"),
            config: sandbox::PodNetworkConfig {
                bridge: cfg.pod_bridge.clone(),
                cluster_cidr: cfg.cluster_cidr,
                cluster_dns: cfg.cluster_dns,
                cluster_domain: cfg.cluster_domain.clone(),
                host_resolv_conf: "/etc/resolv.conf".into(),
            },
        };
        // Sandboxes recorded complete keep their network; housekeeping removes those whose
        // pods are gone once the pod list is known.
        let live: Vec<String> = sandboxes
            .uids()
            .into_iter()
            .filter(|u| sandboxes.get(u).is_some())
            .collect();
        sandboxes.net.reconcile(&live).await?;
        sandboxes.setup_network(pod_cidr).await?;
        // Before any pod starts: its in-cluster clients find the API at the Service address.
        if let Err(e) = apiservice::sync_once(&client, &sandboxes.net, pod_cidr).await {
            tracing::warn!(error = %e, "cannot read the kubernetes Service; watching for it");
        }
        tracing::info!(node = %cfg.node_name, %pod_cidr, adopted = live.len(), "node agent started");

        let routes_net = sandboxes.net.clone();
        let routes_client = client.clone();
        let service_task = tokio::spawn(apiservice::run(
            client.clone(),
            sandboxes.net.clone(),
            pod_cidr,
            stopped.clone(),
        ));
        let ctx = Arc::new(pods::Ctx {
            cgroup_parent: engine.config().cgroup_parent.clone(),
            engine: engine.clone(),
            events: events::Recorder::new(client.clone(), cfg.node_name.clone()),
            tokens: tokens::TokenManager::new(client.clone()),
            client,
            sandboxes,
            node: cfg.node_name.clone(),
            node_ip,
            backoff: Default::default(),
            pull_failures: Default::default(),
            probes: Default::default(),
            limited: Default::default(),
            starts: starts::Starts::new(starts::default_parallelism()),
        });
        let heartbeat_stop = stopped.clone();
        let stats_stop = stopped.clone();
        let mut tasks = vec![
            tokio::spawn(routes::run(
                routes_client,
                routes_net,
                cfg.node_name.clone(),
                cfg.cluster_cidr,
                stopped.clone(),
            )),
            tokio::spawn(sampler.run(cfg.stats_period, stats_stop)),
            tokio::spawn(async move { registration.heartbeat(heartbeat_stop).await }),
            tokio::spawn(pods::run(ctx, stopped)),
            service_task,
        ];
        let kubelet_addr = kubelet_server.as_ref().map(|k| k.addr);
        tasks.extend(kubelet_server.map(|k| k.task));
        Ok(Agent {
            stop,
            engine,
            tasks,
            stats,
            node_name: cfg.node_name,
            pod_cidr,
            kubelet_addr,
        })
    }

    /// Reads the logs of this node's pods.
    pub fn logs(&self) -> logs::PodLogs {
        logs::PodLogs::new(self.engine.clone())
    }

    /// The latest resource usage of the node and its pods.
    pub fn stats(&self) -> stats::StatsHandle {
        self.stats.clone()
    }

    /// Stops the agent: the pod loop ends (pod containers keep running) and the node is
    /// reported NotReady.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
