//! The client's connection to the engine socket. bollard's own unix transport opens a new
//! connection for every request (its pool keeps none idle); `skiff run` makes five requests,
//! and the docker CLI keeps its connections alive, so this transport does too: a hyper client
//! whose connector always dials the engine's unix socket.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bollard::Docker;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixStream;

/// Dials the engine socket whatever the request's URI says.
#[derive(Clone)]
struct Dialer(Arc<PathBuf>);

impl tower_service::Service<http::Uri> for Dialer {
    type Response = TokioIo<UnixStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move { Ok(TokioIo::new(UnixStream::connect(&*path).await?)) })
    }
}

/// A client of the engine at `socket` that reuses idle connections.
pub fn unix(socket: &Path, timeout_secs: u64) -> Result<Docker, bollard::errors::Error> {
    let client = Client::builder(TokioExecutor::new()).build(Dialer(Arc::new(socket.into())));
    Docker::connect_with_custom_transport(
        move |request: bollard::BollardRequest| {
            let client = client.clone();
            Box::pin(async move {
                client
                    .request(request)
                    .await
                    .map_err(bollard::errors::Error::from)
            })
        },
        // The URI's authority only keys the connection pool and fills the Host header.
        Some("http://localhost"),
        timeout_secs,
        bollard::API_DEFAULT_VERSION,
    )
}

/// Plain requests to the engine for what bollard does not model: `POST /auth`, and pull and
/// push, whose progress messages bollard's types cut short (no layer ids, no bars).
pub struct Raw {
    client: Client<Dialer, http_body_util::Full<bytes::Bytes>>,
    /// The negotiated API version, as `1.50`.
    version: String,
}

/// A reply whose body is read as it arrives.
pub type RawReply = http::Response<hyper::body::Incoming>;

impl Raw {
    pub fn new(socket: &Path, version: impl std::fmt::Display) -> Raw {
        Raw {
            client: Client::builder(TokioExecutor::new()).build(Dialer(Arc::new(socket.into()))),
            version: version.to_string(),
        }
    }

    /// `POST /vX.Y{path_and_query}` with `headers` and a body.
    pub async fn post(
        &self,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> anyhow::Result<RawReply> {
        let mut request = http::Request::post(format!(
            "http://localhost/v{}{path_and_query}",
            self.version
        ));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request.body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
        Ok(self.client.request(request).await?)
    }
}
