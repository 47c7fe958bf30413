//! The local node of `skiff server`: a [`super::node::Node`] whose agent talks to the API
//! server in-process as `system:node:<name>` and serves the kubelet API over HTTPS with a
//! serving certificate the server mints from the cluster CA (the API server reaches it
//! there, as it reaches every node).

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;

/// Where the local node keeps runtime state unless `--run-dir` says otherwise.
const DEFAULT_RUN: &str = "/run/skiff/server";

/// The local node.
pub struct LocalNode {
    node: super::node::Node,
    api: std::sync::Arc<skiff_apiserver::ApiState>,
}

impl LocalNode {
    /// Starts the local node, its agent talking to `server`'s API in-process as
    /// `system:node:<name>`.
    pub async fn start(
        args: &super::node::NodeArgs,
        data_dir: &Path,
        server: &skiff_apiserver::Server,
    ) -> anyhow::Result<LocalNode> {
        let name = args.node_name()?;
        let user = skiff_apiserver::auth::UserInfo {
            name: format!("system:node:{name}"),
            uid: String::new(),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
        };
        let client = skiff_apiserver::in_process_client(server.state.clone(), user);
        let labels = vec![
            (
                "node-role.kubernetes.io/control-plane".into(),
                "true".into(),
            ),
            ("node-role.kubernetes.io/master".into(), "true".into()),
        ];
        let node_ip = args
            .node_ip
            .unwrap_or_else(skiff_agent::machine::default_ip);
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
            certificate: std::sync::Arc::new(skiff_agent::kubelet::ServingCertificate::new(
                serving.cert_chain,
                serving.key,
            )?),
            client_ca: serving.ca,
            allowed_clients: vec![skiff_agent::kubelet::APISERVER_CLIENT_CN.into()],
        };
        let node = super::node::Node::start(
            args,
            data_dir,
            Path::new(DEFAULT_RUN),
            &skiff_apiserver::clusterconfig::published(&server.state),
            client,
            labels,
            kubelet,
        )
        .await?;
        server.state.connect_node_metrics(
            &node.agent.node_name,
            std::sync::Arc::new(LocalMetrics(node.agent.stats())),
        );
        Ok(LocalNode {
            node,
            api: server.state.clone(),
        })
    }

    /// Stops the node (reported NotReady; pod containers keep running under their shims).
    pub async fn stop(self) {
        self.api.disconnect_node_metrics(&self.node.agent.node_name);
        self.node.stop().await;
    }
}

/// The local node's resource usage, handed to the API server in-process (remote nodes will
/// be read through the kubelet API).
struct LocalMetrics(skiff_agent::stats::StatsHandle);

impl skiff_apiserver::metrics::NodeMetricsSource for LocalMetrics {
    fn node(&self) -> Option<skiff_apiserver::kinds::metrics::NodeMetrics> {
        use skiff_apiserver::metrics as m;
        let n = self.0.snapshot().node?;
        let u = m::usage(n.usage.cpu_nano_cores, n.usage.memory_working_set_bytes);
        Some(m::node_metrics(&n.name, n.timestamp, n.window, u))
    }

    fn pods(&self) -> Vec<skiff_apiserver::kinds::metrics::PodMetrics> {
        use skiff_apiserver::metrics as m;
        self.0
            .snapshot()
            .pods
            .into_iter()
            .map(|p| {
                let containers = p
                    .containers
                    .into_iter()
                    .map(|c| {
                        let u = m::usage(c.usage.cpu_nano_cores, c.usage.memory_working_set_bytes);
                        (c.name, u)
                    })
                    .collect();
                m::pod_metrics(&p.namespace, &p.name, p.timestamp, p.window, containers)
            })
            .collect()
    }
}
