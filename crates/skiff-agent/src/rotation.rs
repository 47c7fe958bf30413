//! Certificate rotation of a joined node (kubelet's certificate manager): the node's client
//! certificate and its kubelet serving certificate are each renewed through a new
//! CertificateSigningRequest, made as the node, once 70–90 % (jittered) of their lifetime
//! has passed since they were issued. A renewed client certificate is presented from the next
//! connection on (every clone of the node's [`NodeClient::client`] sends through the current
//! identity; open watches keep their connection), a renewed serving certificate from the
//! next TLS handshake of the kubelet API. A client certificate that expired anyway (the node
//! was down) is replaced with the join token, as at the first join.

use std::future::Future;
use std::path::Path;
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

/// When a certificate issued at `issued` (its notBefore, or when the node stored it if
/// later: signers backdate notBefore) and valid until `not_after` is renewed: after
/// `fraction` (0.7–0.9) of that span.
pub fn renew_at(issued: SystemTime, not_after: SystemTime, fraction: f64) -> SystemTime {
    let span = not_after.duration_since(issued).unwrap_or(Duration::ZERO);
    issued + span.mul_f64(fraction.clamp(0.0, 1.0))
}

/// The validity of the PEM certificate at `path`: (issued, notAfter), issued being the later
/// of notBefore and the file's modification time.
pub fn validity(path: &Path) -> Option<(SystemTime, SystemTime)> {
    let pem = std::fs::read(path).ok()?;
    let der = rustls_pemfile::certs(&mut &pem[..]).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let at = |t: x509_parser::time::ASN1Time| {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).ok()?))
    };
    let not_before = at(cert.validity().not_before)?;
    let not_after = at(cert.validity().not_after)?;
    let stored = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Some((stored.map_or(not_before, |s| s.max(not_before)), not_after))
}

/// Whether the certificate at `path` is missing, unreadable or no longer valid.
pub fn expired(path: &Path) -> bool {
    validity(path).is_none_or(|(_, not_after)| not_after <= SystemTime::now())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_falls_between_70_and_90_percent_of_the_lifetime_since_issue() {
        let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let not_after = issued + Duration::from_secs(100);
        assert_eq!(
            renew_at(issued, not_after, 0.7),
            issued + Duration::from_secs(70)
        );
        assert_eq!(
            renew_at(issued, not_after, 0.9),
            issued + Duration::from_secs(90)
        );
        // Already past its end: renew now.
        assert_eq!(renew_at(not_after, issued, 0.8), not_after);
    }

    #[test]
    fn a_certificate_is_read_back_with_its_validity() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["n".to_string()]).unwrap();
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(600)).into();
        params.not_after = (now + Duration::from_secs(60)).into();
        let cert = params.self_signed(&key).unwrap();
        let path = dir.path().join("c.crt");
        std::fs::write(&path, cert.pem()).unwrap();
        let (issued, not_after) = validity(&path).unwrap();
        // Backdated ten minutes, stored now: issued is when it was stored.
        let age = SystemTime::now().duration_since(issued).unwrap();
        assert!(age < Duration::from_secs(30), "{age:?}");
        let left = not_after.duration_since(SystemTime::now()).unwrap();
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(30));
        assert!(!expired(&path));
        assert!(expired(&dir.path().join("missing.crt")));
    }
}
