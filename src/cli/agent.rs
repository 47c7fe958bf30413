//! `skiff agent`: a worker node. It joins the cluster with the server's node token (CA
//! pinned to the token, a node certificate through a CertificateSigningRequest — see
//! `skiff_agent::join`), then runs a [`super::node::Node`] talking to the API server over
//! HTTPS as `system:node:<name>`, until SIGTERM or SIGINT (the Node is then reported
//! NotReady; pod containers keep running).

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

/// Where the agent keeps runtime state unless `--run-dir` says otherwise.
const DEFAULT_RUN: &str = "/run/skiff/agent";

/// Options of `skiff agent`.
#[derive(clap::Args)]
pub struct Args {
    /// The API server to join, `https://HOST:PORT`
    #[arg(long, env = "SKIFF_URL")]
    server: String,
    /// The server's node token (`<server data dir>/node-token`)
    #[arg(
        long,
        env = "SKIFF_TOKEN",
        hide_env_values = true,
        required_unless_present = "token_file"
    )]
    token: Option<String>,
    /// A file holding the node token
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// The node's persistent data: credentials (`<data-dir>/pki`), engine, pod network
    #[arg(long, default_value = "/var/lib/skiff/agent")]
    data_dir: PathBuf,
    /// The cluster CIDR: learnt from the server (its `kube-system/skiff-cluster`
    /// ConfigMap); when given, it must be the server's (and is used with a server that
    /// publishes none)
    #[arg(long)]
    cluster_cidr: Option<ipnet::Ipv4Net>,
    #[command(flatten)]
    node: super::node::NodeArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(async move {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
        let token = match (&args.token, &args.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .with_context(|| format!("reading the token file {}", f.display()))?,
            (None, None) => anyhow::bail!("--token or --token-file is required"),
        };
        let name = args.node.node_name()?;
        let node_ip = args
            .node
            .node_ip
            .unwrap_or_else(skiff_agent::machine::default_ip);
        let join = skiff_agent::join::JoinConfig {
            server: args.server.clone(),
            token,
            node_name: name.clone(),
            node_ips: vec![node_ip],
            credentials: skiff_agent::join::Credentials::new(args.data_dir.join("pki")),
        };
        let node_client = skiff_agent::join::join(&join)
            .await
            .map_err(|e| anyhow::anyhow!("joining {}: {}", args.server, skiff_agent::chain(&e)))?;
        let client = node_client.client.clone();
        let cluster = cluster_settings(&client, args.cluster_cidr).await?;
        // The kubelet API listens from the start; its serving certificate is the stored one,
        // or (first join) the one the server signs once the Node is registered.
        let creds = &join.credentials;
        let tls_error =
            |e: skiff_agent::join::JoinError| anyhow::anyhow!("{}", skiff_agent::chain(&e));
        let certificate = std::sync::Arc::new(skiff_agent::kubelet::ServingCertificate::default());
        if let Some((chain, key)) = creds.serving().map_err(tls_error)? {
            certificate.set(chain, key)?;
        }
        let kubelet = skiff_agent::kubelet::KubeletServerConfig {
            addr: std::net::SocketAddr::new(args.node.kubelet_address, args.node.kubelet_port),
            certificate: certificate.clone(),
            client_ca: creds.ca_der().map_err(tls_error)?,
            allowed_clients: vec![skiff_agent::kubelet::APISERVER_CLIENT_CN.into()],
        };
        let node = super::node::Node::start(
            &args.node,
            &args.data_dir,
            Path::new(DEFAULT_RUN),
            &cluster,
            client.clone(),
            Vec::new(),
            kubelet,
        )
        .await?;
        match skiff_agent::join::ensure_serving_certificate(&client, &join).await {
            Ok(()) => {
                if let Some((chain, key)) = creds.serving().map_err(tls_error)? {
                    certificate.set(chain, key)?;
                }
            }
            Err(e) => {
                tracing::error!(error = %skiff_agent::chain(&e), "no kubelet serving certificate")
            }
        }
        // Both certificates are renewed before they expire, for as long as the node runs.
        let (rotation_stop, rotation_stopped) = tokio::sync::watch::channel(false);
        let rotation = tokio::spawn(skiff_agent::rotation::run(
            std::sync::Arc::new(node_client),
            join.clone(),
            certificate.clone(),
            rotation_stopped,
        ));
        tracing::info!(node = %name, server = %args.server, "node joined and running");
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
        }
        rotation_stop.send_replace(true);
        let _ = rotation.await;
        node.stop().await;
        Ok(())
    })
}

/// The cluster settings the server publishes, checked against `--cluster-cidr`; a server
/// that publishes none (older than this agent) is taken to have the flag's CIDR and k3s'
/// service network and DNS.
async fn cluster_settings(
    client: &kube::Client,
    flag: Option<ipnet::Ipv4Net>,
) -> anyhow::Result<skiff_core::cluster::ClusterConfig> {
    let published = skiff_agent::join::cluster_config(client)
        .await
        .map_err(|e| anyhow::anyhow!("{}", skiff_agent::chain(&e)))?;
    match (published, flag) {
        (Some(c), Some(f)) if c.cluster_cidr != f => anyhow::bail!(
            "--cluster-cidr {f} does not match the server's cluster CIDR {}: leave the flag out \
             (the agent learns it from the server)",
            c.cluster_cidr
        ),
        (Some(c), _) => Ok(c),
        (None, Some(f)) => {
            tracing::warn!(
                cluster_cidr = %f,
                "the server publishes no cluster settings; using --cluster-cidr and k3s' defaults"
            );
            Ok(skiff_core::cluster::ClusterConfig {
                cluster_cidr: f,
                service_cidr: skiff_core::cluster::DEFAULT_SERVICE_CIDR,
                cluster_dns: skiff_core::cluster::DEFAULT_CLUSTER_DNS,
                cluster_domain: skiff_core::cluster::DEFAULT_CLUSTER_DOMAIN.into(),
            })
        }
        (None, None) => anyhow::bail!(
            "the server publishes no cluster settings ({}/{}): pass --cluster-cidr with the \
             server's cluster CIDR",
            skiff_core::cluster::NAMESPACE,
            skiff_core::cluster::NAME
        ),
    }
}
