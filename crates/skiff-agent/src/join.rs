//! Joining a cluster as a remote node (kubelet's TLS bootstrap, k3s's token flow): the agent
//! pins the server's CA to the hash in the join token — checked on a first TLS handshake
//! before anything is sent — then, presenting the token as a bootstrap identity that may only
//! ask for certificates, creates a CertificateSigningRequest for `system:node:<name>` (O
//! `system:nodes`, signer `kubernetes.io/kube-apiserver-client-kubelet`), waits for the
//! server to sign it and from then on talks as that node with its own key. Once its Node is
//! registered it also asks, as the node, for a kubelet serving certificate (signer
//! `kubernetes.io/kubelet-serving`, SANs the node's name and addresses).
//!
//! Files, under the credentials directory ([`Credentials`]): `ca.crt`, `client.crt`,
//! `client.key`, `serving.crt`, `serving.key` (keys mode 0600). A restart with them present
//! and valid makes no new request; [`crate::rotation`] renews them before they expire.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use skiff_core::jointoken::JoinToken;

pub const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// How long the agent waits for the server to sign a request.
const SIGN_TIMEOUT: Duration = Duration::from_secs(60);
/// The name every skiff serving certificate covers, whatever address the agent dials.
const SERVER_NAME: &str = "kubernetes";

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("invalid join token")]
    Token(#[from] skiff_core::jointoken::TokenError),
    #[error("invalid server URL {0:?}: expected https://HOST:PORT")]
    Url(String),
    #[error("cannot reach the server at {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the server's CA does not match the join token (refusing to send the token): \
         the token was made for another cluster, or something is between this node and the server"
    )]
    CaMismatch,
    #[error("the server refused the join token: {0}")]
    Refused(String),
    #[error("the server denied certificate request {name}: {message}")]
    Denied { name: String, message: String },
    #[error("certificate request {0} was not signed within 60 s")]
    NotSigned(String),
    #[error("the server's cluster settings are unreadable")]
    ClusterConfig(#[from] skiff_core::cluster::ClusterConfigError),
    #[error("kubernetes API request failed")]
    Api(#[from] kube::Error),
    #[error("cannot make a key or certificate request")]
    Key(#[from] rcgen::Error),
    #[error("cannot set up TLS")]
    Tls(#[from] rustls::Error),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> JoinError {
    let context = context.into();
    move |source| JoinError::Io { context, source }
}

/// Where a node keeps its credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub dir: PathBuf,
}

impl Credentials {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Credentials { dir: dir.into() }
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.crt")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }
    /// The kubelet serving certificate (for the kubelet API on :10250).
    pub fn serving_cert(&self) -> PathBuf {
        self.dir.join("serving.crt")
    }
    pub fn serving_key(&self) -> PathBuf {
        self.dir.join("serving.key")
    }

    /// The cluster CA (stored when the node joined).
    pub fn ca_der(&self) -> Result<rustls::pki_types::CertificateDer<'static>, JoinError> {
        let path = self.ca();
        let pem = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
        first_der(&pem)
            .map(rustls::pki_types::CertificateDer::from)
            .ok_or_else(|| bad_pem(&path))
    }

    /// The kubelet serving certificate chain and key, once issued.
    #[allow(clippy::type_complexity)]
    pub fn serving(
        &self,
    ) -> Result<
        Option<(
            Vec<rustls::pki_types::CertificateDer<'static>>,
            rustls::pki_types::PrivateKeyDer<'static>,
        )>,
        JoinError,
    > {
        let (cert, key) = (self.serving_cert(), self.serving_key());
        if !(cert.exists() && key.exists()) {
            return Ok(None);
        }
        let pem = std::fs::read(&cert).map_err(io(format!("reading {}", cert.display())))?;
        let chain = rustls_pemfile::certs(&mut &pem[..])
            .collect::<Result<Vec<_>, _>>()
            .map_err(io(format!("reading {}", cert.display())))?;
        let pem = std::fs::read(&key).map_err(io(format!("reading {}", key.display())))?;
        let key_der = rustls_pemfile::private_key(&mut &pem[..])
            .map_err(io(format!("reading {}", key.display())))?
            .ok_or_else(|| bad_pem(&key))?;
        if chain.is_empty() {
            return Err(bad_pem(&cert));
        }
        Ok(Some((chain, key_der)))
    }
}

fn bad_pem(path: &Path) -> JoinError {
    JoinError::Io {
        context: format!("reading {}", path.display()),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no PEM block"),
    }
}

/// How to join.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// `https://HOST:PORT` of an API server.
    pub server: String,
    pub token: String,
    pub node_name: String,
    /// Addresses the serving certificate covers.
    pub node_ips: Vec<IpAddr>,
    pub credentials: Credentials,
}

/// A client of the server in `base` that presents `token` as a bootstrapper.
pub(crate) fn bootstrap_client(
    base: &kube::Config,
    token: &str,
    server: &str,
) -> Result<kube::Client, JoinError> {
    let mut bootstrap = base.clone();
    let bearer = format!("Bearer {token}");
    bootstrap.headers.push((
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&bearer).map_err(|_| JoinError::Url(server.to_string()))?,
    ));
    Ok(kube::Client::try_from(bootstrap)?)
}

/// Asks for a client certificate of node `node` through `client` (a bootstrapper, or the
/// node itself); returns the certificate and its new key (PEM).
pub(crate) async fn request_client_certificate(
    client: &kube::Client,
    node: &str,
) -> Result<(String, String), JoinError> {
    request_certificate(
        client,
        node,
        KUBELET_CLIENT,
        &[],
        &["digital signature", "client auth"],
    )
    .await
}

/// Stores a client certificate and its key (the key first: the certificate names it).
pub(crate) fn store_client_certificate(
    creds: &Credentials,
    (cert, key): &(String, String),
) -> Result<(), JoinError> {
    write(&creds.client_key(), key.as_bytes(), 0o600)?;
    write(&creds.client_cert(), cert.as_bytes(), 0o644)
}

/// Joins (or, with stored credentials, rejoins) and returns a client acting as the node.
pub async fn join(cfg: &JoinConfig) -> Result<crate::rotation::NodeClient, JoinError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let token = JoinToken::parse(&cfg.token)?;
    let uri: http::Uri = cfg
        .server
        .parse()
        .map_err(|_| JoinError::Url(cfg.server.clone()))?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() {
        return Err(JoinError::Url(cfg.server.clone()));
    }
    let creds = &cfg.credentials;
    std::fs::create_dir_all(&creds.dir).map_err(io(format!("creating {}", creds.dir.display())))?;
    let stored_ca = std::fs::read(creds.ca())
        .ok()
        .and_then(|pem| first_der(&pem));
    let ca = match stored_ca.filter(|der| token.trusts(der)) {
        Some(der) => der,
        None => {
            let der = pinned_ca(&uri, &token).await?;
            // Credentials of another cluster (or none): start over.
            for f in [
                creds.client_cert(),
                creds.client_key(),
                creds.serving_cert(),
                creds.serving_key(),
            ] {
                let _ = std::fs::remove_file(f);
            }
            write(&creds.ca(), pem("CERTIFICATE", &der).as_bytes(), 0o644)?;
            der
        }
    };
    let base = || {
        let mut c = kube::Config::new(uri.clone());
        c.root_cert = Some(vec![ca.clone()]);
        c.tls_server_name = Some(SERVER_NAME.into());
        c
    };
    // A certificate that expired while the node was down is asked for again, as at the
    // first join.
    if !creds.client_key().exists() || crate::rotation::expired(&creds.client_cert()) {
        let client = bootstrap_client(&base(), &token.to_string(), &cfg.server)?;
        let got = request_client_certificate(&client, &cfg.node_name)
            .await
            .map_err(|e| match e {
                JoinError::Api(kube::Error::Api(s)) if s.code == 401 || s.code == 403 => {
                    JoinError::Refused(format!("{} ({})", s.message, s.code))
                }
                other => other,
            })?;
        store_client_certificate(creds, &got)?;
        tracing::info!(node = %cfg.node_name, "joined: node client certificate issued");
    }
    crate::rotation::NodeClient::new(base(), creds.clone())
}

/// The cluster settings the server publishes (`kube-system/skiff-cluster`), read as the
/// node; None from a server that publishes none.
pub async fn cluster_config(
    client: &kube::Client,
) -> Result<Option<skiff_core::cluster::ClusterConfig>, JoinError> {
    use skiff_core::cluster::{ClusterConfig, NAME, NAMESPACE};
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), NAMESPACE);
    let Some(cm) = api.get_opt(NAME).await? else {
        return Ok(None);
    };
    Ok(Some(ClusterConfig::from_data(
        &cm.data.unwrap_or_default(),
    )?))
}

/// Asks, as the node, for a kubelet serving certificate (SANs: the node's name and
/// addresses) unless a valid one is stored. Call it once the Node is registered: the server
/// only signs names and addresses the Node has.
pub async fn ensure_serving_certificate(
    client: &kube::Client,
    cfg: &JoinConfig,
) -> Result<(), JoinError> {
    let creds = &cfg.credentials;
    if !creds.serving_key().exists() || crate::rotation::expired(&creds.serving_cert()) {
        request_serving_certificate(client, cfg).await?;
    }
    Ok(())
}

/// Asks, as the node, for a new kubelet serving certificate and stores it.
pub(crate) async fn request_serving_certificate(
    client: &kube::Client,
    cfg: &JoinConfig,
) -> Result<(), JoinError> {
    let creds = &cfg.credentials;
    let mut sans = vec![cfg.node_name.clone()];
    sans.extend(cfg.node_ips.iter().map(IpAddr::to_string));
    let (cert, key) = request_certificate(
        client,
        &cfg.node_name,
        KUBELET_SERVING,
        &sans,
        &["digital signature", "server auth"],
    )
    .await?;
    write(&creds.serving_key(), key.as_bytes(), 0o600)?;
    write(&creds.serving_cert(), cert.as_bytes(), 0o644)?;
    tracing::info!(node = %cfg.node_name, "kubelet serving certificate issued");
    Ok(())
}

/// Creates a CSR for `system:node:<node>` and waits for its certificate; returns the
/// certificate and the new key (PEM).
async fn request_certificate(
    client: &kube::Client,
    node: &str,
    signer: &str,
    sans: &[String],
    usages: &[&str],
) -> Result<(String, String), JoinError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(sans.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:node:{node}"));
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    let request = params.serialize_request(&key)?.pem()?;
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let kind = if signer == KUBELET_SERVING {
        "serving"
    } else {
        "client"
    };
    let name = format!(
        "node-{kind}-{node}-{}",
        hex::encode(rand::random::<[u8; 4]>())
    );
    let csr = CertificateSigningRequest {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: signer.into(),
            usages: Some(usages.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        status: None,
    };
    api.create(&PostParams::default(), &csr).await?;
    let deadline = tokio::time::Instant::now() + SIGN_TIMEOUT;
    loop {
        let got = api.get(&name).await?;
        let status = got.status.unwrap_or_default();
        if let Some(c) = status.certificate.filter(|c| !c.0.is_empty()) {
            let cert = String::from_utf8_lossy(&c.0).into_owned();
            return Ok((cert, key.serialize_pem()));
        }
        let bad = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True");
        if let Some(c) = bad {
            return Err(JoinError::Denied {
                name,
                message: c.message.unwrap_or(c.type_),
            });
        }
        if tokio::time::Instant::now() > deadline {
            return Err(JoinError::NotSigned(name));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The CA certificate (DER) the server at `uri` presents in its chain, if it is the one
/// `token` names; the handshake sends nothing but the TLS hello.
async fn pinned_ca(uri: &http::Uri, token: &JoinToken) -> Result<Vec<u8>, JoinError> {
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    let addr = format!("{host}:{}", uri.port_u16().unwrap_or(6443));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyServer(provider.clone()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|source| JoinError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(SERVER_NAME).expect("a valid DNS name");
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|source| JoinError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let chain = tls.get_ref().1.peer_certificates().unwrap_or_default();
    chain
        .iter()
        .find(|c| token.trusts(c.as_ref()))
        .map(|c| c.as_ref().to_vec())
        .ok_or(JoinError::CaMismatch)
}

/// Accepts any certificate (the chain is checked against the token's hash afterwards, and
/// nothing is sent before), still checking the handshake signatures.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn first_der(pem: &[u8]) -> Option<Vec<u8>> {
    rustls_pemfile::certs(&mut &pem[..])
        .next()
        .and_then(Result::ok)
        .map(|c| c.as_ref().to_vec())
}

fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), JoinError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(format!("writing {}", tmp.display())))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("writing {}", path.display())))
}
