//! Certificate rotation of a joined node (kubelet's certificate manager): the node's client
//! certificate and its kubelet serving certificate are each renewed through a new
//! CertificateSigningRequest, made as the node, once 70–90 % (jittered) of their lifetime
//! has passed since they were issued. A renewed client certificate is presented from the next
//! connection on (every clone of the node's [`NodeClient::client`] sends through the current
//! identity; open watches keep their connection), a renewed serving certificate from the
//! next TLS handshake of the kubelet API. A client certificate that expired anyway (the node
//! was down) is replaced with the join token, as at the first join.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use crate::join::{self, Credentials, JoinConfig, JoinError};
use crate::kubelet::ServingCertificate;

/// The node's API client, whose identity can change while clones of it are in use.
pub struct NodeClient {
    /// The client every part of the node uses.
    pub client: kube::Client,
    current: Arc<RwLock<kube::Client>>,
    /// The server's address and CA, without an identity.
    base: kube::Config,
    creds: Credentials,
}

/// Sends each request through the client of the current identity.
#[derive(Clone)]
struct Current(Arc<RwLock<kube::Client>>);

type Reply = Result<http::Response<kube::client::Body>, kube::Error>;

impl tower_service::Service<http::Request<kube::client::Body>> for Current {
    type Response = http::Response<kube::client::Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = Reply> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        let client = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        Box::pin(async move { client.send(req).await })
    }
}

impl NodeClient {
    /// A client of the server in `base` presenting the stored client certificate.
    pub(crate) fn new(base: kube::Config, creds: Credentials) -> Result<NodeClient, JoinError> {
        let current = Arc::new(RwLock::new(identified(&base, &creds)?));
        Ok(NodeClient {
            client: kube::Client::new(Current(current.clone()), "default"),
            current,
            base,
            creds,
        })
    }

    /// Presents the stored client certificate from the next request on.
    fn reload(&self) -> Result<(), JoinError> {
        let fresh = identified(&self.base, &self.creds)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}

fn identified(base: &kube::Config, creds: &Credentials) -> Result<kube::Client, JoinError> {
    let mut c = base.clone();
    c.auth_info.client_certificate = Some(creds.client_cert().display().to_string());
    c.auth_info.client_key = Some(creds.client_key().display().to_string());
    Ok(kube::Client::try_from(c)?)
}

pub use skiff_core::certs::{expired, renew_at, validity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Which {
    Client,
    Serving,
}

/// How long to wait after a failed renewal before trying again.
const RETRY: Duration = Duration::from_secs(5);

/// Renews the node's certificates before they expire until `stop` turns true.
pub async fn run(
    node: Arc<NodeClient>,
    cfg: JoinConfig,
    serving: Arc<ServingCertificate>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let creds = cfg.credentials.clone();
    loop {
        let fraction = 0.7 + 0.2 * rand::random::<f64>();
        let due = [
            (Which::Client, creds.client_cert()),
            (Which::Serving, creds.serving_cert()),
        ]
        .into_iter()
        .filter_map(|(which, path)| {
            let (issued, not_after) = validity(&path)?;
            Some((renew_at(issued, not_after, fraction), which))
        })
        .min();
        let Some((at, which)) = due else {
            // Nothing stored yet (the serving certificate comes once the Node exists).
            tokio::select! {
                _ = crate::until_stopped(&mut stop) => return,
                _ = tokio::time::sleep(RETRY) => continue,
            }
        };
        let wait = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        tracing::debug!(
            ?which,
            in_seconds = wait.as_secs(),
            "next certificate renewal"
        );
        tokio::select! {
            _ = crate::until_stopped(&mut stop) => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let renewed = match which {
            Which::Client => renew_client(&node, &cfg).await,
            Which::Serving => renew_serving(&node, &cfg, &serving).await,
        };
        match renewed {
            Ok(()) => tracing::info!(node = %cfg.node_name, ?which, "certificate renewed"),
            Err(e) => {
                tracing::warn!(node = %cfg.node_name, ?which, error = %crate::chain(&e),
                    "cannot renew the certificate; retrying");
                tokio::select! {
                    _ = crate::until_stopped(&mut stop) => return,
                    _ = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
}

async fn renew_client(node: &NodeClient, cfg: &JoinConfig) -> Result<(), JoinError> {
    let creds = &cfg.credentials;
    let got = if expired(&creds.client_cert()) {
        // The node's own identity is gone: ask again as a bootstrapper.
        let token = skiff_core::jointoken::JoinToken::parse(&cfg.token)?;
        let bootstrap = join::bootstrap_client(&node.base, &token.to_string(), &cfg.server)?;
        join::request_client_certificate(&bootstrap, &cfg.node_name).await?
    } else {
        join::request_client_certificate(&node.client, &cfg.node_name).await?
    };
    join::store_client_certificate(creds, &got)?;
    node.reload()
}

async fn renew_serving(
    node: &NodeClient,
    cfg: &JoinConfig,
    serving: &ServingCertificate,
) -> Result<(), JoinError> {
    join::request_serving_certificate(&node.client, cfg).await?;
    if let Some((chain, key)) = cfg.credentials.serving()? {
        serving.set(chain, key).map_err(|e| JoinError::Io {
            context: "loading the renewed serving certificate".into(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        })?;
    }
    Ok(())
}
