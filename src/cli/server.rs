//! `skiff server`: opens the datastore and serves the Kubernetes API over HTTPS until SIGTERM
//! or SIGINT. On first start it creates the cluster CA, certificates, an admin token and
//! `<data-dir>/kubeconfig.yaml`. Unless `--disable-agent`, it also runs a local node: an
//! engine (serving its Docker API on `--docker-socket` too) and the node agent on it, which
//! talks to the API in-process as `system:node:<name>`.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use skiff_core::paths::DEFAULT_SERVER_DATA;
use tokio::signal::unix::{signal, SignalKind};

/// Options of `skiff server`.
#[derive(clap::Args)]
pub struct Args {
    /// Control-plane data: certificates, kubeconfig, SQLite database
    #[arg(long, default_value = DEFAULT_SERVER_DATA)]
    data_dir: PathBuf,
    /// Address to serve the Kubernetes API on
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// HTTPS port of the Kubernetes API (0 picks a free one)
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// `sqlite` (embedded, in the data dir) or `etcd://host:2379[,host2:2379]`
    #[arg(long, default_value = "sqlite")]
    datastore: String,
    /// Extra bearer tokens, one `token,user,uid,"group1,group2"` per line
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Run only the control plane, without a local node
    #[arg(long)]
    disable_agent: bool,
    /// Run no pod scheduler here (pods stay unbound unless another server schedules them)
    #[arg(long)]
    disable_scheduler: bool,
    /// Writes per second the scheduler makes to report on pods (Events, the
    /// PodScheduled=False condition) once its burst is spent; bindings are not paced
    /// (kube-scheduler's --kube-api-qps, 50 there)
    #[arg(long, default_value_t = skiff_scheduler::DEFAULT_API_QPS, value_parser = parse_qps)]
    scheduler_kube_api_qps: f64,
    /// Report writes the scheduler makes at once after a quiet spell (kube-scheduler's
    /// --kube-api-burst)
    #[arg(long, default_value_t = skiff_scheduler::DEFAULT_API_BURST,
        value_parser = clap::value_parser!(u32).range(1..))]
    scheduler_kube_api_burst: u32,
    /// Do not run the controllers (ReplicaSet, Deployment, ...)
    #[arg(long)]
    disable_controllers: bool,
    /// IPv4 range Services get ClusterIPs from (its first address is the `kubernetes` Service's)
    #[arg(long, default_value = "10.43.0.0/16", value_parser = skiff_apiserver::services::ServiceNetwork::parse_cidr)]
    service_cidr: ipnet::Ipv4Net,
    /// Port range NodePort Services get their ports from
    #[arg(long, default_value = "30000-32767", value_parser = skiff_apiserver::services::ServiceNetwork::parse_ports)]
    service_node_port_range: std::ops::RangeInclusive<u16>,
    /// Seconds a client has to finish the TLS handshake and to send each request header
    /// (kube-apiserver: 32); tests set short ones
    #[arg(long, default_value_t = 32, hide = true)]
    request_header_deadline: u64,
    /// IPv4 range nodes get their pod CIDRs from
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// Prefix length of each node's pod CIDR
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// Pods may mount hostPath volumes only under this directory (repeatable; without it,
    /// any host path)
    #[arg(long = "allowed-host-path", value_name = "PREFIX")]
    allowed_host_paths: Vec<std::path::PathBuf>,
    /// Seconds pods tolerate a not-ready node (the toleration admission gives every pod
    /// that has none)
    #[arg(long, default_value_t = 300)]
    default_not_ready_toleration_seconds: i64,
    /// Seconds pods tolerate an unreachable node (the toleration admission gives every pod
    /// that has none)
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
    /// The longest lifetime of certificates signed for CertificateSigningRequests (nodes'
    /// client and kubelet serving certificates; agents renew theirs at 70-90 % of it)
    #[arg(long, default_value = "8760h")]
    cluster_signing_duration: humantime::Duration,
    /// Serve lists, gets and watches from an in-memory cache fed by the datastore's watch
    /// (`--watch-cache=false`: every read goes to the datastore)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    watch_cache: bool,
    /// Issuer (`iss`) of the service-account tokens this server signs
    #[arg(long, default_value = skiff_apiserver::serviceaccount::DEFAULT_ISSUER)]
    service_account_issuer: String,
    /// Audiences the API accepts in service-account tokens (default: the issuer)
    #[arg(long, value_delimiter = ',')]
    api_audiences: Vec<String>,
    /// Longest service-account token TokenRequest gives, in seconds (default: no limit
    /// below 2^32)
    #[arg(long)]
    service_account_max_token_expiration: Option<i64>,
    /// PKCS#8 PEM ECDSA P-256 key service-account tokens are signed with (default:
    /// <data-dir>/tls/service-account.key, made at first start)
    #[arg(long)]
    service_account_signing_key_file: Option<std::path::PathBuf>,
    /// PEM public keys, private keys or certificates that service-account tokens are also
    /// verified with, e.g. the signing key before a rotation (repeatable)
    #[arg(long)]
    service_account_key_file: Vec<std::path::PathBuf>,
    #[command(flatten)]
    controllers: super::controllers::ControllerArgs,
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
        let store = skiff_store::open(&args.datastore, &args.data_dir)
            .await
            .context("opening the datastore")?;
        let cluster_network = skiff_apiserver::nodeipam::ClusterNetwork::new(
            &args.cluster_cidr,
            args.node_cidr_mask_size,
        )?;
        let config = skiff_apiserver::Config {
            data_dir: args.data_dir.clone(),
            bind: args.bind,
            port: args.port,
            token_file: args.token_file,
            services: skiff_apiserver::services::ServiceNetwork {
                cidr: args.service_cidr,
                node_ports: args.service_node_port_range,
                apiserver: None,
            },
            connections: deadlines(args.request_header_deadline),
            cluster_network,
            allowed_host_paths: args.allowed_host_paths.clone(),
            default_tolerations: skiff_apiserver::kinds::core::pod::DefaultTolerations {
                not_ready_seconds: args.default_not_ready_toleration_seconds,
                unreachable_seconds: args.default_unreachable_toleration_seconds,
            },
            node_defaults: node_defaults(&args.node),
            cluster_signing_duration: args.cluster_signing_duration.into(),
            watch_cache: args.watch_cache,
            service_accounts: skiff_apiserver::server::ServiceAccountConfig {
                issuer: args.service_account_issuer.clone(),
                api_audiences: args.api_audiences.clone(),
                max_token_expiration: args.service_account_max_token_expiration,
                signing_key_file: args.service_account_signing_key_file.clone(),
                key_files: args.service_account_key_file.clone(),
            },
        };
        let server = skiff_apiserver::Server::bind(config, store)
            .await
            .context("starting the API server")?;
        server
            .state
            .set_components_running(!args.disable_scheduler, !args.disable_controllers);
        let scheduler = (!args.disable_scheduler).then(|| {
            skiff_scheduler::spawn(
                skiff_apiserver::in_process_client(server.state.clone(), scheduler_user()),
                skiff_scheduler::Config {
                    api_qps: args.scheduler_kube_api_qps,
                    api_burst: args.scheduler_kube_api_burst,
                    ..Default::default()
                },
            )
        });
        let local = match args.disable_agent {
            true => None,
            false => Some(
                super::local_node::LocalNode::start(&args.node, &args.data_dir, &server).await?,
            ),
        };
        // Joined nodes report resource usage through their kubelet APIs.
        let scraper = server
            .state
            .scrape_node_metrics(args.node.node_stats_period.into(), std::future::pending());
        tracing::info!(addr = %server.addr, "Kubernetes API listening");
        println!("kubeconfig: {}", server.kubeconfig.display());
        println!(
            "node token: {} (skiff agent --server https://HOST:{} --token-file …)",
            args.data_dir.join("node-token").display(),
            server.addr.port()
        );
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
            }
        };
        // Controllers stop (and release their Lease) first; the API keeps serving until the
        // local node has said it is NotReady.
        let root_ca = server.pki.ca_pem().context("reading the cluster CA")?;
        let shutdown = super::controllers::start(
            &server.state,
            Some(root_ca),
            args.disable_controllers,
            &args.controllers,
            shutdown,
        );
        let (api_stop_tx, api_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(async move {
            let _ = api_stop_rx.await;
        }));
        shutdown.await;
        scraper.abort();
        if let Some(node) = local {
            node.stop().await;
        }
        if let Some(scheduler) = scheduler {
            scheduler.stop().await;
        }
        let _ = api_stop_tx.send(());
        let _ = serving.await;
        Ok(())
    })
}

/// The cluster DNS and domain the server publishes to nodes: its own node's flags, else
/// k3s' defaults.
fn node_defaults(node: &super::node::NodeArgs) -> skiff_apiserver::clusterconfig::NodeDefaults {
    let defaults = skiff_apiserver::clusterconfig::NodeDefaults::default();
    skiff_apiserver::clusterconfig::NodeDefaults {
        cluster_dns: node.cluster_dns.unwrap_or(defaults.cluster_dns),
        cluster_domain: node
            .cluster_domain
            .clone()
            .unwrap_or(defaults.cluster_domain),
    }
}

/// A rate of writes: a number above 0.
fn parse_qps(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(q) if q.is_finite() && q > 0.0 => Ok(q),
        _ => Err(format!(
            "{s:?} is not a number of writes per second above 0"
        )),
    }
}

/// Who the in-process scheduler acts as: kube-scheduler's user.
fn scheduler_user() -> skiff_apiserver::auth::UserInfo {
    skiff_apiserver::auth::component("system:kube-scheduler")
}

/// Connection limits with `seconds` for the TLS handshake and each request header.
pub(super) fn deadlines(seconds: u64) -> skiff_core::serve::Limits {
    let deadline = std::time::Duration::from_secs(seconds.max(1));
    skiff_core::serve::Limits {
        handshake: deadline,
        header: deadline,
        ..Default::default()
    }
}
