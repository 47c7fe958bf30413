//! `docker attach` (and the attach of `docker run`, which comes before start): streams
//! from the shim, connected at start for containers not running yet, optionally preceded by
//! a replay of the log; and tty resizing.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::detach::Detachable;
use super::PendingAttach;
use crate::error::{EngineError, IoContext, Result};
use crate::{AttachOptions, Attached, Duplex, Engine, LogOptions, LogStream};

/// Reads `prefix` first, then `inner`; writes go to `inner`.
struct Prefixed {
    prefix: Bytes,
    inner: Box<dyn Duplex>,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Docker's multiplexed framing of one chunk: `[stream, 0, 0, 0, len u32 BE]` + payload.
pub(crate) fn frame(stream: LogStream, data: &[u8], out: &mut Vec<u8>) {
    out.push(match stream {
        LogStream::Stdout => 1,
        LogStream::Stderr => 2,
    });
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

impl Engine {
    pub(crate) async fn do_attach(&self, key: &str, opts: AttachOptions) -> Result<Attached> {
        let c = self.find(key)?;
        let keys = super::detach::attach_keys(opts.detach_keys.as_deref())?;
        let tty = c.rec().config.tty.unwrap_or(false);
        let mut prefix = Vec::new();
        if opts.logs {
            let log_opts = LogOptions {
                stdout: opts.stdout,
                stderr: opts.stderr,
                ..Default::default()
            };
            let mut replay = self.do_logs(&c.id, log_opts).await?.stream;
            while let Some(chunk) = replay.next().await {
                if tty {
                    prefix.extend_from_slice(&chunk.data);
                } else {
                    frame(chunk.stream, &chunk.data, &mut prefix);
                }
            }
        }
        let inner: Box<dyn Duplex> = if !opts.stream {
            // Nothing live: reads end after the replay.
            Box::new(tokio::io::duplex(1).0)
        } else {
            let _op = c.op.lock().await;
            if c.rec().state.status.is_alive() {
                let stream = c
                    .shim()
                    .attach(opts.stdin, opts.stdout, opts.stderr)
                    .await
                    .ctx(|| format!("attach {}", c.id))?;
                Box::new(stream)
            } else {
                let (ours, theirs) = tokio::io::duplex(64 * 1024);
                c.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(PendingAttach {
                        stdin: opts.stdin,
                        stdout: opts.stdout,
                        stderr: opts.stderr,
                        io: theirs,
                    });
                Box::new(ours)
            }
        };
        self.emit_container("attach", &c, std::collections::HashMap::new());
        let io: Box<dyn Duplex> = if prefix.is_empty() {
            inner
        } else {
            Box::new(Prefixed {
                prefix: Bytes::from(prefix),
                inner,
            })
        };
        // Like Docker, the detach keys work on a tty: the session ends, the container runs on.
        let io: Box<dyn Duplex> = if tty && opts.stdin && opts.stream {
            let engine = self.arc();
            let container = c.clone();
            Box::new(Detachable::new(io, keys, move || {
                tracing::debug!(id = %container.id, "client detached");
                if let Some(engine) = engine {
                    engine.emit_container("detach", &container, Default::default());
                }
            }))
        } else {
            io
        };
        Ok(Attached { tty, io })
    }

    pub(crate) async fn do_resize(&self, key: &str, height: u16, width: u16) -> Result<()> {
        let c = self.find(key)?;
        if !c.rec().state.status.is_alive() {
            return Err(EngineError::NotRunning(c.id.clone()));
        }
        c.shim()
            .resize(height, width)
            .await
            .ctx(|| format!("resize {}", c.id))?;
        let size =
            [("height", height), ("width", width)].map(|(k, v)| (k.to_string(), v.to_string()));
        self.emit_container("resize", &c, size.into());
        Ok(())
    }
}

/// Copies both ways between an early attach and the shim's stream; closing our write half
/// when the client stops sending closes the container's stdin (with `StdinOnce`).
pub(crate) async fn splice(mut client: tokio::io::DuplexStream, mut shim: tokio::net::UnixStream) {
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut shim).await {
        tracing::debug!(error = %e, "attach stream ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn frames_carry_stream_and_length() {
        let mut out = Vec::new();
        frame(LogStream::Stderr, b"oops\n", &mut out);
        assert_eq!(out, [2, 0, 0, 0, 0, 0, 0, 5, b'o', b'o', b'p', b's', b'\n']);
    }

    #[tokio::test]
    async fn prefix_is_read_before_the_live_stream() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut theirs, b"live")
            .await
            .unwrap();
        drop(theirs);
        let mut p = Prefixed {
            prefix: Bytes::from_static(b"old-"),
            inner: Box::new(ours),
        };
        let mut got = String::new();
        p.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "old-live");
    }
}
