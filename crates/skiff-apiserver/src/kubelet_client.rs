//! The API server's client of kubelet APIs: HTTPS to a Node's InternalIP and
//! `status.daemonEndpoints.kubeletEndpoint.Port` with the API server's kubelet-client
//! certificate, the kubelet's serving certificate verified against the cluster CA. Upgrade
//! requests (WebSocket and SPDY, for exec, attach and port-forward) are proxied as raw
//! upgraded byte streams, as kube-apiserver's UpgradeAwareHandler does, so the kubelet speaks
//! the client's protocol.
//!
//! It decides nothing about pods; [`crate::nodes`] checks requests before they come here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;

use crate::error::ApiError;
use crate::pki::ServingMaterial;

/// How long connecting to a kubelet (TCP and TLS) may take before the request fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn connector(material: ServingMaterial) -> Result<tokio_rustls::TlsConnector, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(material.ca)?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(material.cert_chain, material.key)?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Request headers that stay with the API server (credentials, hop-by-hop names other than
/// the upgrade's).
const DROPPED: &[&str] = &[
    "authorization",
    "host",
    "proxy-authorization",
    "content-length",
];

/// Connects to kubelets as the API server.
pub struct KubeletClient {
    /// Replaced when the kubelet-client certificate is renewed; connections made before keep
    /// the identity they were made with.
    tls: std::sync::RwLock<tokio_rustls::TlsConnector>,
}

impl KubeletClient {
    /// A client presenting `material.cert_chain`/`key` and trusting kubelets whose serving
    /// certificates `material.ca` signed.
    pub fn new(material: ServingMaterial) -> Result<KubeletClient, rustls::Error> {
        Ok(KubeletClient {
            tls: std::sync::RwLock::new(connector(material)?),
        })
    }

    /// Presents `material` (a renewed certificate) from the next connection on.
    pub fn set_identity(&self, material: ServingMaterial) -> Result<(), rustls::Error> {
        let fresh = connector(material)?;
        *self.tls.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    fn connector(&self) -> tokio_rustls::TlsConnector {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends `req` (path and query only in its URI) to `node`'s kubelet and returns its
    /// response; the connection is driven with upgrades enabled.
    pub async fn request(
        &self,
        node: &Value,
        mut req: http::Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, ApiError> {
        let (name, addr) = endpoint(node)?;
        let dial_error = |cause: String| {
            ApiError::internal(format!(
                "error dialing backend: node {name:?} at {addr}: {cause}"
            ))
        };
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| dial_error(e.to_string()))?;
            let server_name = ServerName::IpAddress(addr.ip().into());
            self.connector()
                .connect(server_name, tcp)
                .await
                .map_err(|e| dial_error(e.to_string()))
        };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| {
                dial_error(format!(
                    "no answer within {}s (is the node NotReady?)",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })??;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| dial_error(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "kubelet connection ended with an error");
            }
        });
        let host = http::HeaderValue::from_str(&addr.to_string()).expect("an address is a header");
        req.headers_mut().insert(http::header::HOST, host);
        sender
            .send_request(req)
            .await
            .map_err(|e| dial_error(e.to_string()))
    }

    /// Proxies `req` to `path` on `node`'s kubelet: a `101 Switching Protocols` joins the
    /// client's connection to the kubelet's; other answers go back as they are, or with
    /// `errors_as_status` a failure becomes a `Status` carrying the kubelet's text (what
    /// kubectl shows for a refused exec or attach).
    pub async fn proxy(
        &self,
        node: &Value,
        path: &str,
        mut req: axum::extract::Request,
        errors_as_status: bool,
    ) -> Result<Response, ApiError> {
        let client_upgrade = hyper::upgrade::on(&mut req);
        let (parts, body) = req.into_parts();
        let mut out = http::Request::builder().method(parts.method).uri(path);
        for (k, v) in &parts.headers {
            if !DROPPED.contains(&k.as_str()) && !k.as_str().starts_with("impersonate-") {
                out = out.header(k, v);
            }
        }
        let upgrading = parts.headers.contains_key(http::header::UPGRADE);
        let out = out
            .body(if upgrading { Body::empty() } else { body })
            .map_err(|e| ApiError::bad_request(format!("invalid request: {e}")))?;
        let mut response = self.request(node, out).await?;
        if errors_as_status
            && !response.status().is_success()
            && response.status() != http::StatusCode::SWITCHING_PROTOCOLS
        {
            return Err(crate::nodes::kubelet_error(response).await);
        }
        if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            let (parts, body) = response.into_parts();
            return Ok(Response::from_parts(parts, Body::new(body)));
        }
        let kubelet_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let (client, kubelet) = match tokio::join!(client_upgrade, kubelet_upgrade) {
                (Ok(c), Ok(k)) => (c, k),
                (c, k) => {
                    tracing::debug!(client = ?c.err(), kubelet = ?k.err(), "upgrade failed");
                    return;
                }
            };
            let (mut client, mut kubelet) = (TokioIo::new(client), TokioIo::new(kubelet));
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
                tracing::debug!(error = %e, "upgraded stream ended with an error");
            }
        });
        let (parts, _) = response.into_parts();
        Ok(Response::from_parts(parts, Body::empty()))
    }
}

/// The node's name and kubelet address (InternalIP, else any address; the reported port).
fn endpoint(node: &Value) -> Result<(String, SocketAddr), ApiError> {
    let name = node
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ip = ["InternalIP", "ExternalIP"]
        .iter()
        .find_map(|kind| {
            addresses
                .iter()
                .filter(|a| a["type"] == *kind)
                .find_map(|a| a["address"].as_str()?.parse::<IpAddr>().ok())
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "node {name:?} reports no address to reach its kubelet at"
            ))
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| (1..=65535).contains(p))
        .ok_or_else(|| ApiError::bad_request(format!("node {name:?} reports no kubelet port")))?;
    Ok((name, SocketAddr::new(ip, port as u16)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_endpoint_is_the_internal_ip_and_reported_port() {
        let node = json!({"metadata": {"name": "n"}, "status": {
            "addresses": [{"type": "Hostname", "address": "n"},
                          {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        let (name, addr) = endpoint(&node).unwrap();
        assert_eq!(name, "n");
        assert_eq!(addr, "10.0.0.5:10250".parse().unwrap());
        let no_port = json!({"metadata": {"name": "n"}, "status": {
            "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]}});
        assert_eq!(endpoint(&no_port).unwrap_err().code, 400);
    }
}
