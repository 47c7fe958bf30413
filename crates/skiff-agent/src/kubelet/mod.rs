//! The kubelet API a node serves over HTTPS (kubelet's `:10250`): `/healthz`,
//! `/containerLogs/NS/POD/CONTAINER`, `/exec/NS/POD/CONTAINER`, `/attach/NS/POD/CONTAINER`
//! (WebSocket `v5`/`v4.channel.k8s.io`, see [`channels`]), `/portForward/NS/POD` and
//! `/stats/summary` (the node's and its pods' CPU and memory, which the API server reads for
//! `metrics.k8s.io`).
//!
//! Only client certificates signed by the cluster CA whose common name is one of
//! [`KubeletServerConfig::allowed_clients`] (the API server's kubelet-client certificate)
//! get in: no certificate is 401, another name 403, another CA fails the TLS handshake. The
//! serving certificate, key and client CA are plain inputs ([`KubeletServerConfig`]): a
//! server's local node gets them minted by the server, a joining agent through its CSR.
//!
//! It reads pods from the engine (by their containers' Kubernetes labels) and the API (for
//! logs); it must not change pods or their containers beyond running the commands asked.

mod channels;
mod portforward;
mod remotecommand;
mod spdy;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use skiff_engine::{Engine, Filters, ListOptions};

use crate::labels;
use crate::logs::{LogRequest, LogsError, PodLogs};

/// The common name of the API server's client certificate for kubelets.
pub const APISERVER_CLIENT_CN: &str = "kube-apiserver-kubelet-client";

/// How a node's kubelet API is served.
#[derive(Debug, Clone)]
pub struct KubeletServerConfig {
    /// Where to listen (kubelet's default: `0.0.0.0:10250`; port 0 picks a free one).
    pub addr: SocketAddr,
    /// The serving certificate (signed by the cluster CA, the node's addresses as SANs).
    pub certificate: Arc<ServingCertificate>,
    /// The CA client certificates must be signed by.
    pub client_ca: CertificateDer<'static>,
    /// Common names of the clients let in (default: [`APISERVER_CLIENT_CN`]).
    pub allowed_clients: Vec<String>,
}

/// The kubelet's serving certificate and key. It may be empty at first and set later while
/// the server runs: a joining node gets its certificate only once its Node is registered,
/// and until then TLS handshakes fail.
#[derive(Debug, Default)]
pub struct ServingCertificate(std::sync::RwLock<Option<Arc<rustls::sign::CertifiedKey>>>);

impl ServingCertificate {
    /// A certificate `chain` (leaf first) with its `key`.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, KubeletError> {
        let cert = Self::default();
        cert.set(chain, key)?;
        Ok(cert)
    }

    /// Serves `chain` with `key` from the next handshake on.
    pub fn set(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), KubeletError> {
        let key = rustls::crypto::ring::sign::any_supported_type(&key)?;
        let certified = Arc::new(rustls::sign::CertifiedKey::new(chain, key));
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(certified);
        Ok(())
    }
}

impl rustls::server::ResolvesServerCert for ServingCertificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Why the kubelet API cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid TLS material for the kubelet API")]
    Tls(#[from] rustls::Error),
    #[error("invalid client CA for the kubelet API")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
}

/// What the kubelet API serves from.
#[derive(Clone)]
pub struct Kubelet {
    pub(crate) engine: Arc<Engine>,
    pub(crate) client: kube::Client,
    /// Pod sandboxes (their network namespaces, for port-forward).
    pub(crate) sandboxes_dir: std::path::PathBuf,
    /// The node's name and its latest resource usage (`/stats/summary`).
    pub(crate) node_name: String,
    pub(crate) stats: crate::stats::StatsHandle,
}

/// A running kubelet API listener.
pub struct KubeletServer {
    /// The address actually listened on.
    pub addr: SocketAddr,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Binds `cfg.addr` and serves the kubelet API from `kubelet` until `stop` says so.
pub async fn serve(
    cfg: KubeletServerConfig,
    kubelet: Kubelet,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<KubeletServer, KubeletError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cfg.client_ca)?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cfg.certificate);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .map_err(|source| KubeletError::Bind {
            addr: cfg.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| KubeletError::Bind {
        addr: cfg.addr,
        source,
    })?;
    let allowed: Arc<[String]> = if cfg.allowed_clients.is_empty() {
        Arc::new([APISERVER_CLIENT_CN.to_string()])
    } else {
        cfg.allowed_clients.into()
    };
    let task = tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = crate::until_stopped(&mut stop) => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "kubelet API: accept failed");
                        continue;
                    }
                },
            };
            let (acceptor, kubelet, allowed) = (acceptor.clone(), kubelet.clone(), allowed.clone());
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    acceptor.accept(tcp),
                )
                .await
                {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "kubelet API: TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let client = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| common_name(c).unwrap_or_default());
                let access = match client {
                    None => Access::Anonymous,
                    Some(cn) if allowed.contains(&cn) => Access::Allowed,
                    Some(cn) => Access::Denied(cn),
                };
                let svc = hyper::service::service_fn(move |req| {
                    let (kubelet, access) = (kubelet.clone(), access.clone());
                    async move { Ok::<_, Infallible>(kubelet.handle(req, &access).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "kubelet API connection ended with an error");
                }
            });
        }
    });
    tracing::info!(%addr, "kubelet API listening");
    Ok(KubeletServer { addr, task })
}

impl KubeletServer {
    /// Waits for the listener to end (after the stop signal given to [`serve`]).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

#[derive(Clone)]
enum Access {
    Anonymous,
    Allowed,
    Denied(String),
}

/// The subject's common name of a DER certificate.
fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// A plain-text answer, as kubelet gives its errors.
pub(crate) fn text(code: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(message.into())).boxed_unsync());
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A query's decoded pairs.
pub(crate) fn query_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Whether a boolean query parameter (any of `names`) is set.
pub(crate) fn flag(pairs: &[(String, String)], names: &[&str]) -> bool {
    pairs
        .iter()
        .any(|(k, v)| names.contains(&k.as_str()) && matches!(v.as_str(), "1" | "true" | "True"))
}

fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl Kubelet {
    async fn handle(&self, req: Request<Incoming>, access: &Access) -> Response<Body> {
        match access {
            Access::Allowed => {}
            Access::Anonymous => return text(StatusCode::UNAUTHORIZED, "Unauthorized"),
            Access::Denied(cn) => {
                return text(
                    StatusCode::FORBIDDEN,
                    format!("Forbidden (user={cn}): only the API server may use the kubelet API"),
                )
            }
        }
        let path = req.uri().path().to_string();
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let span = tracing::debug_span!("kubelet", method = %req.method(), %path);
        let _enter = span.enter();
        match (req.method(), segs.as_slice()) {
            (&Method::GET, ["healthz"]) => text(StatusCode::OK, "ok"),
            (&Method::GET, ["containerLogs", ns, pod, container]) => {
                let pairs = query_pairs(&req);
                self.container_logs(ns, pod, container, &pairs).await
            }
            (&Method::GET | &Method::POST, ["exec" | "attach", ns, pod, container]) => {
                let exec = segs[0] == "exec";
                channels::serve(self, req, ns, pod, container, exec).await
            }
            (&Method::GET | &Method::POST, ["portForward", ns, pod]) => {
                portforward::serve(self, req, ns, pod).await
            }
            (&Method::GET, ["stats", "summary"]) => {
                let summary = self.stats.snapshot().summary(&self.node_name);
                let body = serde_json::to_vec(&summary).unwrap_or_default();
                let mut r = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                r
            }
            _ => text(StatusCode::NOT_FOUND, "404 page not found"),
        }
    }

    /// The engine id of the current (running, else latest) attempt of `container` of pod
    /// `ns/pod`.
    pub(crate) async fn container_id(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> Result<String, Response<Body>> {
        let ns_label = format!("{}={ns}", labels::POD_NAMESPACE);
        let pod_label = format!("{}={pod}", labels::POD_NAME);
        let name_label = format!("{}={container}", labels::CONTAINER_NAME);
        let opts = ListOptions {
            all: false,
            filters: Filters::from_pairs([
                ("label", ns_label.as_str()),
                ("label", pod_label.as_str()),
                ("label", name_label.as_str()),
            ]),
            ..Default::default()
        };
        let list = self
            .engine
            .container_list(&opts)
            .await
            .map_err(|e| text(StatusCode::INTERNAL_SERVER_ERROR, crate::error::chain(&e)))?;
        list.into_iter()
            .max_by_key(|c| {
                c.labels
                    .as_ref()
                    .and_then(|l| l.get(labels::RESTART_COUNT))
                    .and_then(|a| a.parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .and_then(|c| c.id)
            .ok_or_else(|| {
                text(
                    StatusCode::NOT_FOUND,
                    format!(
                        "container not found ({container:?}) in pod {ns}/{pod}: it is not running"
                    ),
                )
            })
    }

    async fn container_logs(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        pairs: &[(String, String)],
    ) -> Response<Body> {
        let api: kube::Api<Pod> = kube::Api::namespaced(self.client.clone(), ns);
        let object = match api.get_opt(pod).await {
            Ok(Some(p)) => p,
            Ok(None) => return text(StatusCode::NOT_FOUND, format!("pod {ns}/{pod} not found")),
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        let number = |name: &str| value(pairs, name).and_then(|v| v.parse::<i64>().ok());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let since = number("sinceSeconds").map(|s| now - s as f64).or_else(|| {
            value(pairs, "sinceTime")
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp() as f64)
        });
        let req = LogRequest {
            container: container.to_string(),
            follow: flag(pairs, &["follow"]),
            previous: flag(pairs, &["previous"]),
            tail_lines: number("tailLines"),
            since,
            timestamps: flag(pairs, &["timestamps"]),
            limit_bytes: number("limitBytes"),
        };
        let pod_json = serde_json::to_value(object).unwrap_or_default();
        match PodLogs::new(self.engine.clone()).logs(pod_json, req).await {
            Ok(stream) => {
                use futures::StreamExt;
                let body = StreamBody::new(stream.map(|b| Ok::<_, Infallible>(Frame::data(b))));
                let mut r = Response::new(BodyExt::boxed_unsync(body));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain"),
                );
                r
            }
            Err(e @ (LogsError::Waiting { .. } | LogsError::NoPrevious { .. })) => {
                text(StatusCode::BAD_REQUEST, e.to_string())
            }
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, crate::error::chain(&e)),
        }
    }
}
