//! Docker's connection hijack for attach and exec: with `Upgrade: tcp` the server answers
//! `101 UPGRADED` and the connection becomes a raw duplex (stdin in, framed output out);
//! without it the output is streamed as an ordinary response body and stdin is not read.

use std::future::Future;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::request::Parts;
use http::{header, HeaderValue, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use skiff_engine::Attached;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::Instrument;

use crate::error::ApiError;
use crate::stream::{MULTIPLEXED, RAW_STREAM};

/// The client's wish to take over the connection, taken from the request before its body is
/// read.
pub struct Hijack(Option<OnUpgrade>);

impl<S: Send + Sync> FromRequestParts<S> for Hijack {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let wants_upgrade = parts
            .headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
        let on_upgrade = if wants_upgrade {
            parts.extensions.remove::<OnUpgrade>()
        } else {
            None
        };
        Ok(Hijack(on_upgrade))
    }
}

impl Hijack {
    /// Answers with the stream of an already attached process: the 101 switch when the client
    /// asked for it, else a streamed 200 body of the output.
    pub fn respond(self, attached: Attached) -> Response {
        let tty = attached.tty;
        self.respond_deferred(tty, async move { Ok(attached) })
    }

    /// Like [`Self::respond`], but `start` (which starts the process and attaches to it) runs
    /// only once the connection has switched, the way dockerd starts an exec. Clients that read
    /// the `101` head through a buffered reader and then take over the raw socket (docker-py,
    /// via http.client) would otherwise lose output that arrived together with the head. An
    /// error after the switch is written to the stream, as Docker does.
    pub fn respond_deferred<F>(self, tty: bool, start: F) -> Response
    where
        F: Future<Output = Result<Attached, ApiError>> + Send + 'static,
    {
        let content_type = HeaderValue::from_static(if tty { RAW_STREAM } else { MULTIPLEXED });
        match self.0 {
            Some(on_upgrade) => {
                tokio::spawn(bridge(on_upgrade, start).instrument(tracing::Span::current()));
                let mut resp = Response::new(Body::empty());
                *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                resp.extensions_mut()
                    .insert(hyper::ext::ReasonPhrase::from_static(b"UPGRADED"));
                let h = resp.headers_mut();
                h.insert(header::CONTENT_TYPE, content_type);
                h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
                h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
                resp
            }
            None => {
                let output =
                    futures::stream::once(start).flat_map(|started| match started {
                        Ok(attached) => futures::stream::unfold(attached.io, |mut io| async move {
                            let mut buf = vec![0u8; 32 * 1024];
                            match io.read(&mut buf).await {
                                Ok(0) | Err(_) => None,
                                Ok(n) => {
                                    buf.truncate(n);
                                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), io))
                                }
                            }
                        })
                        .boxed(),
                        Err(e) => futures::stream::once(async move {
                            Ok(bytes::Bytes::from(format!("{e}\n")))
                        })
                        .boxed(),
                    });
                (
                    [(header::CONTENT_TYPE, content_type)],
                    Body::from_stream(output),
                )
                    .into_response()
            }
        }
    }
}

/// Copies client input to the container's stdin and its output to the client, until the
/// output ends (the process exited); then the client's connection is closed.
async fn bridge<F>(on_upgrade: OnUpgrade, start: F)
where
    F: Future<Output = Result<Attached, ApiError>>,
{
    let upgraded = match on_upgrade.await {
        Ok(u) => TokioIo::new(u),
        Err(e) => {
            tracing::debug!(error = %e, "connection upgrade failed");
            return;
        }
    };
    let (mut client_read, mut client_write) = tokio::io::split(upgraded);
    let attached = match start.await {
        Ok(attached) => attached,
        Err(e) => {
            let _ = client_write.write_all(format!("{e}\n").as_bytes()).await;
            let _ = client_write.shutdown().await;
            return;
        }
    };
    let (mut out_read, mut in_write) = tokio::io::split(attached.io);
    let stdin = tokio::spawn(async move {
        // The client closing its write side closes the container's stdin.
        let _ = tokio::io::copy(&mut client_read, &mut in_write).await;
        let _ = in_write.shutdown().await;
    });
    if let Err(e) = tokio::io::copy(&mut out_read, &mut client_write).await {
        tracing::debug!(error = %e, "attach output ended");
    }
    let _ = client_write.shutdown().await;
    stdin.abort();
}
