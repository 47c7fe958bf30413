//! The local node of `skiff server`: a [`super::node::Node`] whose agent talks to the API
//! server in-process as `system:node:<name>` and serves the kubelet API over HTTPS with a
//! serving certificate the server mints from the cluster CA (the API server reaches it
//! there, as it reaches every node), valid for `--cluster-signing-duration` and minted again
//! once 70–90 % of that has passed, as joined nodes renew theirs.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;

/// Where the local node keeps runtime state unless `--run-dir` says otherwise.
const DEFAULT_RUN: &str = "/run/skiff/server";

/// The local node.
pub struct LocalNode {
    node: super::node::Node,
    api: std::sync::Arc<skiff_apiserver::ApiState>,
    renewal: tokio::task::JoinHandle<()>,
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
        let seconds = server.signing_seconds();
        let serving = server
            .pki
            .kubelet_serving(&name, &addresses, seconds)
            .context("minting the local node's kubelet serving certificate")?;
        let certificate = std::sync::Arc::new(skiff_agent::kubelet::ServingCertificate::new(
            serving.cert_chain,
            serving.key,
        )?);
        let renewal = tokio::spawn(renew_serving(
            server.pki.clone(),
            name.clone(),
            addresses,
            seconds,
            certificate.clone(),
        ));
        let kubelet = skiff_agent::kubelet::KubeletServerConfig {
            addr: std::net::SocketAddr::new(args.kubelet_address, args.kubelet_port),
            certificate,
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
            renewal,
        })
    }

    /// Stops the node (reported NotReady; pod containers keep running under their shims).
    pub async fn stop(self) {
        self.renewal.abort();
        self.api.disconnect_node_metrics(&self.node.agent.node_name);
        self.node.stop().await;
    }
}

/// Mints the local node's serving certificate again once 70–90 % of its `seconds` have
/// passed, and serves the new one from the next handshake on; forever (aborted at stop).
async fn renew_serving(
    pki: skiff_apiserver::pki::Pki,
    name: String,
    addresses: Vec<IpAddr>,
    seconds: i64,
    certificate: std::sync::Arc<skiff_agent::kubelet::ServingCertificate>,
) {
    let lifetime = std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(1).max(1));
    let mut wait = lifetime.mul_f64(0.7 + 0.2 * rand::random::<f64>());
    loop {
        tokio::time::sleep(wait).await;
        let renewed = pki
            .kubelet_serving(&name, &addresses, seconds)
            .map_err(anyhow::Error::from)
            .and_then(|m| Ok(certificate.set(m.cert_chain, m.key)?));
        match renewed {
            Ok(()) => {
                tracing::info!(node = %name, "local node's serving certificate renewed");
                wait = lifetime.mul_f64(0.7 + 0.2 * rand::random::<f64>());
            }
            Err(e) => {
                tracing::warn!(node = %name, error = %format!("{e:#}"),
                    "cannot renew the local node's serving certificate; retrying");
                wait = std::time::Duration::from_secs(5);
            }
        }
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
