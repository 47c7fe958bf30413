//! Docker's connection hijack for attach and exec: with `Upgrade: tcp` the server answers
//! `101 UPGRADED` and the connection becomes a raw duplex (stdin in, framed output out);
//! without it the output is streamed as an ordinary response body and stdin is not read.
//!
//! Output is sent only once the client has read the `101` head: clients that read the head
//! through a buffered reader and then take over the raw socket (docker-py, through
//! http.client) lose whatever arrived together with it.

use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
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
use crate::stream::{StdStream, MULTIPLEXED, RAW_STREAM};

/// How long output waits for the client to read the `101` head before it is sent anyway.
const HEAD_READ_WAIT: Duration = Duration::from_secs(5);

/// The descriptor of a client's connection, recorded when it is accepted: a hijacked
/// connection uses it to see whether the client has read the `101` head. It is only used
/// while the upgraded connection, which keeps the descriptor open, is held.
#[derive(Debug, Clone, Copy)]
pub struct ClientSocket(RawFd);

impl ClientSocket {
    /// The socket of an accepted connection.
    pub(crate) fn of(stream: &tokio::net::UnixStream) -> Self {
        ClientSocket(stream.as_raw_fd())
    }
}

/// How many bytes sent on the unix socket `fd` its peer has not read yet (`SIOCOUTQ`).
fn unread_by_peer(fd: RawFd) -> std::io::Result<usize> {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) stores one int through the pointer, which is valid for the
    // call; `fd` is an open socket held by the caller (see `ClientSocket`).
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(usize::try_from(queued).unwrap_or(0))
}

/// Waits (polling, at most [`HEAD_READ_WAIT`]) until the client has read everything sent on
/// its connection so far: the `101` head.
async fn head_read(socket: ClientSocket) {
    let deadline = Instant::now() + HEAD_READ_WAIT;
    loop {
        match unread_by_peer(socket.0) {
            Ok(0) => return,
            Ok(unread) if Instant::now() >= deadline => {
                tracing::debug!(
                    unread,
                    "client has not read the upgrade head; streaming anyway"
                );
                return;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(e) => {
                tracing::debug!(error = %e, "cannot tell whether the client read the head");
                return;
            }
        }
    }
}

/// The client's wish to take over the connection, taken from the request before its body is
/// read, with its connection's socket when known.
pub struct Hijack(Option<OnUpgrade>, Option<ClientSocket>);

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
        let socket = parts
            .extensions
            .get::<ConnectInfo<ClientSocket>>()
            .map(|c| c.0);
        Ok(Hijack(on_upgrade, socket))
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
    /// only once the connection has switched and the client has read the `101` head, the way
    /// dockerd starts an exec after the switch. An error after the switch is written to the
    /// stream as dockerd does: one line on stdout (a frame of it without a TTY), which the
    /// docker CLI prints before it asks for the exec's exit code.
    pub fn respond_deferred<F>(self, tty: bool, start: F) -> Response
    where
        F: Future<Output = Result<Attached, ApiError>> + Send + 'static,
    {
        let content_type = HeaderValue::from_static(if tty { RAW_STREAM } else { MULTIPLEXED });
        match self.0 {
            Some(on_upgrade) => {
                let socket = self.1;
                tokio::spawn(
                    bridge(on_upgrade, socket, tty, start).instrument(tracing::Span::current()),
                );
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
                let output = futures::stream::once(start).flat_map(move |started| match started {
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
                    Err(e) => {
                        futures::stream::once(async move { Ok(start_failure(tty, &e)) }).boxed()
                    }
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

/// A start that failed after the switch, as dockerd writes it: the error and `\r\n` on stdout.
fn start_failure(tty: bool, e: &ApiError) -> bytes::Bytes {
    crate::stream::encode(!tty, StdStream::Stdout, format!("{e}\r\n").as_bytes())
}

/// Copies client input to the container's stdin and its output to the client, until the
/// output ends (the process exited, or the client detached); then the client's connection is
/// closed.
async fn bridge<F>(on_upgrade: OnUpgrade, socket: Option<ClientSocket>, tty: bool, start: F)
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
    // `upgraded` holds the connection, so its descriptor is still this client's.
    if let Some(socket) = socket {
        head_read(socket).await;
    }
    let (mut client_read, mut client_write) = tokio::io::split(upgraded);
    let attached = match start.await {
        Ok(attached) => attached,
        Err(e) => {
            let _ = client_write.write_all(&start_failure(tty, &e)).await;
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
