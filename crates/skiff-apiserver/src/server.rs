//! The HTTPS listener: TLS with optional client certificates (rustls, ring), HTTP/1.1 and
//! HTTP/2 (hyper), first-start bootstrap (PKI, token, kubeconfig, default namespaces).
//!
//! Connection handling only; requests go to [`crate::router`].

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use rustls::server::WebPkiClientVerifier;
use skiff_store::Store;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::{self, PeerIdentity, TokenAuthenticator, UserInfo};
use crate::encryption::Encryptor;
use crate::error::ApiError;
use crate::pki::{self, Pki, PkiError};
use crate::router::{router, ApiState};

/// Settings of `skiff server`'s API.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    /// Extra bearer tokens (`token,user,uid,"groups"` lines).
    pub token_file: Option<PathBuf>,
    /// ClusterIP and NodePort ranges of Services (its `apiserver` is filled in by
    /// [`Server::bind`]).
    pub services: crate::services::ServiceNetwork,
    /// Handshake and header deadlines, and the bound on open connections.
    pub connections: skiff_core::serve::Limits,
    /// Where Nodes get their pod CIDRs from.
    pub cluster_network: crate::nodeipam::ClusterNetwork,
    /// Host paths pods may mount (`--allowed-host-path`); empty: any.
    pub allowed_host_paths: Vec<PathBuf>,
    /// How long pods tolerate unready and unreachable nodes unless they say.
    pub default_tolerations: crate::kinds::core::pod::DefaultTolerations,
    /// The cluster DNS and domain published to nodes.
    pub node_defaults: crate::clusterconfig::NodeDefaults,
    /// The longest lifetime of a certificate signed for a CSR (node client and serving
    /// certificates; nodes renew theirs before they expire).
    pub cluster_signing_duration: std::time::Duration,
    /// Serve lists, gets and watches from the watch cache (`--watch-cache`, default true).
    pub watch_cache: bool,
    /// Service-account tokens: issuer, API audiences, longest TokenRequest.
    pub service_accounts: ServiceAccountConfig,
}

/// `--service-account-issuer`, `--api-audiences`, `--service-account-max-token-expiration`.
#[derive(Debug, Clone)]
pub struct ServiceAccountConfig {
    pub issuer: String,
    /// Empty: the issuer.
    pub api_audiences: Vec<String>,
    /// Seconds; None: only TokenRequest's own bound (2^32).
    pub max_token_expiration: Option<i64>,
    /// `--service-account-signing-key-file` (None: `<data-dir>/tls/service-account.key`,
    /// created when missing).
    pub signing_key_file: Option<PathBuf>,
    /// `--service-account-key-file`s: more keys tokens verify against (a rotated-out key).
    pub key_files: Vec<PathBuf>,
}

impl Default for ServiceAccountConfig {
    fn default() -> Self {
        ServiceAccountConfig {
            issuer: crate::serviceaccount::DEFAULT_ISSUER.into(),
            api_audiences: Vec::new(),
            max_token_expiration: None,
            signing_key_file: None,
            key_files: Vec::new(),
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot set up the cluster certificates")]
    Pki(#[from] PkiError),
    #[error("cannot load tokens")]
    Auth(#[from] auth::AuthError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid TLS configuration")]
    Tls(#[from] rustls::Error),
    #[error("invalid client CA")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    #[error("cannot set up the service-account signing key")]
    ServiceAccountKey(#[from] crate::serviceaccount::signer::SignerError),
    #[error("cannot initialise the cluster state: {0}")]
    Bootstrap(ApiError),
}

impl skiff_core::HasKind for ServerError {
    fn kind(&self) -> skiff_core::ErrorKind {
        match self {
            ServerError::Auth(_) => skiff_core::ErrorKind::InvalidArgument,
            _ => skiff_core::ErrorKind::Internal,
        }
    }
}

/// A bound, bootstrapped API server, ready to serve.
pub struct Server {
    listener: TcpListener,
    tls: TlsAcceptor,
    gate: skiff_core::serve::Gate,
    app: axum::Router,
    store: Arc<dyn Store>,
    /// The address actually listened on.
    pub addr: SocketAddr,
    /// The admin kubeconfig written for this server.
    pub kubeconfig: PathBuf,
    /// The shared state, for in-process clients.
    pub state: Arc<ApiState>,
    /// The cluster's certificates (the local node's kubelet serving certificate comes from
    /// here).
    pub pki: Pki,
    /// The longest lifetime of certificates signed for CSRs, in seconds.
    signing_seconds: i64,
}

impl Server {
    /// Sets up certificates and credentials, binds the port and creates the default namespaces.
    pub async fn bind(config: Config, store: Arc<dyn Store>) -> Result<Server, ServerError> {
        let pki = Pki::new(&config.data_dir);
        let advertised = advertised_ip(config.bind);
        let material = pki.ensure(&pki::serving_sans(
            config.bind,
            advertised,
            config.services.kubernetes_ip().into(),
            &config.node_defaults.cluster_domain,
        ))?;
        let admin_token = pki.ensure_admin_token(&config.data_dir)?;
        let node_token = pki.ensure_node_token(&config.data_dir)?;
        let mut tokens = TokenAuthenticator::default();
        tokens.insert(
            &admin_token,
            UserInfo {
                name: "admin".into(),
                uid: "admin".into(),
                groups: vec!["system:masters".into()],
            },
        );
        // The join token: a bootstrap identity that may only ask for a node certificate.
        tokens.insert(
            &node_token.to_string(),
            UserInfo {
                name: "system:bootstrap:node".into(),
                uid: String::new(),
                groups: vec![
                    crate::nodeauth::BOOTSTRAPPERS.into(),
                    "system:authenticated".into(),
                ],
            },
        );
        if let Some(f) = &config.token_file {
            tokens.load_file(f)?;
        }

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(material.ca.clone())?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(material.cert_chain, material.key)?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let addr = SocketAddr::new(config.bind, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let client_ip = if config.bind.is_unspecified() {
            "127.0.0.1".parse().expect("literal")
        } else {
            config.bind
        };
        let url = format!("https://{}", SocketAddr::new(client_ip, addr.port()));
        let kubeconfig = pki.write_kubeconfig(&config.data_dir, &url)?;

        let encryptor =
            Arc::new(Encryptor::load_or_create(&config.data_dir).map_err(ServerError::Bootstrap)?);
        let mut services = config.services.clone();
        services.apiserver = Some(SocketAddr::new(advertised, addr.port()));
        let sa = &config.service_accounts;
        let signer = crate::serviceaccount::TokenSigner::load(
            &config.data_dir,
            sa.signing_key_file.as_deref(),
            &sa.key_files,
            &sa.issuer,
            sa.api_audiences.clone(),
        )?;
        let state = Arc::new(
            ApiState::new(store.clone(), tokens, encryptor.clone())
                .with_service_account_tokens(Arc::new(signer), sa.max_token_expiration)
                .with_service_network(services)
                .with_cluster_network(config.cluster_network.clone())
                .with_allowed_host_paths(config.allowed_host_paths.clone())
                .with_default_tolerations(config.default_tolerations)
                .with_node_defaults(config.node_defaults.clone())
                .with_watch_cache(config.watch_cache),
        );
        state.set_kubelet_client(crate::kubelet_client::KubeletClient::new(
            pki.kubelet_client()?,
        )?);
        state.bootstrap().await.map_err(ServerError::Bootstrap)?;
        crate::rbac::bootstrap::reconcile(&state)
            .await
            .map_err(ServerError::Bootstrap)?;
        Ok(Server {
            listener,
            tls: TlsAcceptor::from(Arc::new(tls)),
            gate: skiff_core::serve::Gate::new(config.connections),
            app: router(state.clone()),
            store,
            pki,
            addr,
            kubeconfig,
            state,
            signing_seconds: i64::try_from(config.cluster_signing_duration.as_secs())
                .unwrap_or(i64::MAX)
                .max(1),
        })
    }

    /// The longest lifetime of certificates the cluster CA signs for nodes (the local
    /// node's serving certificate lives this long too).
    pub fn signing_seconds(&self) -> i64 {
        self.signing_seconds
    }

    /// Serves until `shutdown` completes, with the history compactor running alongside (the
    /// garbage collector and the namespace controller are in the controller set).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
        let stopped = |mut rx: tokio::sync::watch::Receiver<()>| async move {
            let _ = rx.changed().await;
        };
        tokio::spawn(
            self.state
                .namespaces
                .clone()
                .follow(self.store.clone(), stopped(stop_rx.clone())),
        );
        tokio::spawn(compactor(self.store.clone(), stopped(stop_rx.clone())));
        tokio::spawn(crate::csrsigning::run(
            self.state.clone(),
            self.pki.clone(),
            self.signing_seconds,
            stopped(stop_rx.clone()),
        ));
        tokio::spawn(crate::kubelet_identity::run(
            self.state.clone(),
            self.pki.clone(),
            self.signing_seconds,
            stopped(stop_rx.clone()),
        ));
        tokio::spawn(crate::rbac::aggregation::run(
            self.state.clone(),
            stopped(stop_rx.clone()),
        ));
        tokio::spawn(keep_system_objects(self.state.clone(), stopped(stop_rx)));
        tokio::pin!(shutdown);
        loop {
            // A slot first: connections beyond the bound wait in the backlog.
            let accepted = tokio::select! {
                _ = &mut shutdown => {
                    let _ = stop_tx.send(());
                    return;
                }
                accepted = async {
                    let slot = self.gate.admit().await;
                    (slot, self.listener.accept().await)
                } => accepted,
            };
            let (slot, (tcp, peer_addr)) = match accepted {
                (slot, Ok(a)) => (slot, a),
                (_, Err(e)) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let acceptor = self.tls.clone();
            let app = self.app.clone();
            let gate = self.gate.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let tls = match gate.handshake(acceptor.accept(tcp)).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::debug!(%peer_addr, error = %e, "TLS handshake failed");
                        return;
                    }
                };
                let user = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(|c| auth::user_from_certificate(c));
                let identity = PeerIdentity(user);
                let svc = hyper::service::service_fn(
                    move |mut req: http::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(identity.clone());
                        app.clone().oneshot(req.map(Body::new))
                    },
                );
                if let Err(e) = gate
                    .http()
                    .serve_connection_with_upgrades(gate.io(tls), svc)
                    .await
                {
                    tracing::debug!(%peer_addr, error = %e, "connection ended with an error");
                }
            });
        }
    }
}

/// The address pods reach the API server at (the `default/kubernetes` endpoints): the bound
/// address, or when bound to every address the one the host routes from.
fn advertised_ip(bind: IpAddr) -> IpAddr {
    if !bind.is_unspecified() {
        return bind;
    }
    // Connecting a UDP socket sends nothing; it only asks the kernel for the source address.
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").and_then(|()| s.local_addr()))
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// How often the objects every cluster has are checked and created again when missing.
const SYSTEM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// How often Service allocations nobody holds are looked for (kube-apiserver's repair
/// controllers: every 3 minutes).
const REPAIR_EVERY: u32 = 18;

/// Creates again, every [`SYSTEM_EVERY`], the objects every cluster has when a client deleted
/// them (kube-apiserver's system namespaces controller does this for `kube-node-lease`), and
/// every [`REPAIR_EVERY`] rounds frees leaked Service allocations.
async fn keep_system_objects(state: Arc<ApiState>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    for round in 1u32.. {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(SYSTEM_EVERY) => {}
        }
        if let Err(e) = state.bootstrap().await {
            tracing::warn!(error = %e, "cannot restore the cluster's own objects");
        }
        if round % REPAIR_EVERY == 0 {
            if let Err(e) = crate::services::repair(&state).await {
                tracing::warn!(error = %e, "cannot repair service allocations");
            }
        }
    }
}

/// How often the store's history is compacted (as kube-apiserver's default).
const COMPACT_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Compacts the store every [`COMPACT_EVERY`] up to the revision seen one interval earlier,
/// so watches and lists may lag by up to one interval before they get 410 Gone.
async fn compactor(store: Arc<dyn Store>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut previous: Option<i64> = None;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(COMPACT_EVERY) => {}
        }
        if let Some(rev) = previous.filter(|r| *r > 0) {
            match store.compact(rev).await {
                Ok(()) => tracing::debug!(rev, "compacted"),
                Err(e) => tracing::warn!(error = %e, "compaction failed"),
            }
        }
        previous = store.current_revision().await.ok();
    }
}
