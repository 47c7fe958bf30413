//! Connection limits shared by the Kubernetes API (TCP + TLS) and the Docker API (unix
//! socket): a bound on open connections, a deadline for the TLS handshake, and a deadline for
//! each request's header (which also closes keep-alive connections that stay idle). A
//! request whose head has arrived is not timed: watches, `logs -f`, exec and attach run as
//! long as they need, and upgraded (hijacked) connections leave HTTP altogether.
//!
//! The defaults follow kube-apiserver (32 s to send a request header); tests set short ones.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Deadlines and bounds of a listener's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From accepting a connection to a finished TLS handshake.
    pub handshake: Duration,
    /// From waiting for a request (the first, or the next on a kept-alive connection) to
    /// having its whole header.
    pub header: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake: Duration::from_secs(32),
            header: Duration::from_secs(32),
            max_connections: 4096,
        }
    }
}

/// Applies [`Limits`] to one listener's connections.
#[derive(Debug, Clone)]
pub struct Gate {
    limits: Limits,
    slots: Arc<Semaphore>,
}

/// A connection slot, held while the connection is served.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Gate {
    pub fn new(limits: Limits) -> Self {
        Gate {
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Waits for a free connection slot; call before accepting, so connections beyond the
    /// bound stay in the kernel's backlog instead of holding descriptors here.
    pub async fn admit(&self) -> Slot {
        Slot(
            self.slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed"),
        )
    }

    /// Resolves once every admitted connection has ended (for graceful shutdown).
    pub async fn drained(&self) {
        let all = u32::try_from(self.limits.max_connections.max(1)).unwrap_or(u32::MAX);
        let _ = self.slots.acquire_many(all).await;
    }

    /// Runs a handshake (TLS) under the handshake deadline.
    pub async fn handshake<T, E>(
        &self,
        handshake: impl Future<Output = Result<T, E>>,
    ) -> Result<T, HandshakeError<E>> {
        tokio::time::timeout(self.limits.handshake, handshake)
            .await
            .map_err(|_| HandshakeError::TimedOut(self.limits.handshake))?
            .map_err(HandshakeError::Failed)
    }

    /// `io` ready for [`Gate::http`]: its first bytes must arrive within the header deadline
    /// (the HTTP/1-or-2 detection waits for them before any header timer runs).
    pub fn io<T: AsyncRead + AsyncWrite + Unpin>(&self, io: T) -> TokioIo<FirstRead<T>> {
        TokioIo::new(FirstRead {
            inner: io,
            deadline: Some(Box::pin(tokio::time::sleep(self.limits.header))),
        })
    }

    /// An HTTP/1 + HTTP/2 connection builder that enforces the header deadline.
    pub fn http(&self) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header);
        builder
            .http2()
            .timer(TokioTimer::new())
            // A peer that stops answering pings is gone; idle but live peers stay.
            .keep_alive_interval(self.limits.header)
            .keep_alive_timeout(self.limits.header);
        builder
    }
}

/// A connection whose first read fails with `TimedOut` when nothing arrived in time; later
/// reads are not timed (hyper's header deadline takes over).
#[derive(Debug)]
pub struct FirstRead<T> {
    inner: T,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for FirstRead<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.deadline = None;
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no request before the header deadline",
                ))),
                _ => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FirstRead<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A handshake that did not finish.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError<E> {
    #[error("handshake not finished within {0:?}")]
    TimedOut(Duration),
    #[error("handshake failed")]
    Failed(#[source] E),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_bound_connections_and_come_back() {
        let gate = Gate::new(Limits {
            max_connections: 2,
            ..Limits::default()
        });
        let a = gate.admit().await;
        let _b = gate.admit().await;
        let third = tokio::time::timeout(Duration::from_millis(50), gate.admit()).await;
        assert!(third.is_err(), "a third connection waits");
        drop(a);
        let third = tokio::time::timeout(Duration::from_secs(5), gate.admit()).await;
        assert!(third.is_ok(), "a freed slot is reused");
    }

    #[tokio::test]
    async fn a_silent_connection_fails_its_first_read() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let gate = Gate::new(Limits {
            header: Duration::from_millis(20),
            ..Limits::default()
        });
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = gate.io(a).into_inner();
        let mut buf = [0u8; 8];
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        // Once bytes arrived, reads wait as long as they need.
        let (a, mut b2) = tokio::io::duplex(64);
        let mut io = gate.io(a).into_inner();
        b2.write_all(b"GET").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 3);
        let late = tokio::time::timeout(Duration::from_millis(100), io.read(&mut buf)).await;
        assert!(late.is_err(), "later reads are not timed");
        b.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn handshakes_time_out() {
        let gate = Gate::new(Limits {
            handshake: Duration::from_millis(20),
            ..Limits::default()
        });
        let never = std::future::pending::<Result<(), std::io::Error>>();
        assert!(matches!(
            gate.handshake(never).await,
            Err(HandshakeError::TimedOut(_))
        ));
        let ok = async { Ok::<_, std::io::Error>(7) };
        assert_eq!(gate.handshake(ok).await.unwrap(), 7);
    }
}
