//! Docker's detach keys: on an attach (or exec) with a tty and stdin, the client typing the
//! detach sequence (ctrl-p ctrl-q unless it names its own) ends its session while the process
//! keeps running. The sequence is taken out of the input; what came before it is delivered.
//!
//! Unlike moby's escape proxy, which only sees a sequence typed one key per read, the sequence
//! is recognised wherever it falls in the input's chunks, so a client sending it in one write
//! (docker-py on a socket) detaches too.

use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{EngineError, Result};
use crate::Duplex;

/// ctrl-p, ctrl-q.
const DEFAULT_KEYS: [u8; 2] = [16, 17];

/// Parses a detach sequence the way Docker does (moby/term's `ToBytes`): comma-separated keys,
/// each a single character, `ctrl-@` … `ctrl-_` (`ctrl-a` is 1) or `DEL`. Empty = the default.
pub(crate) fn parse_keys(spec: &str) -> Option<Vec<u8>> {
    if spec.is_empty() {
        return Some(DEFAULT_KEYS.to_vec());
    }
    spec.split(',')
        .map(|key| match key.as_bytes() {
            [single] => Some(*single),
            _ if key == "DEL" => Some(127),
            _ => {
                let c = key.strip_prefix("ctrl-")?.as_bytes();
                match c {
                    [c @ b'a'..=b'z'] => Some(c - b'a' + 1),
                    [c @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_')] => Some(c - b'@'),
                    _ => None,
                }
            }
        })
        .collect()
}

/// The detach keys of an attach request (`detachKeys`), with Docker's message when invalid.
pub(crate) fn attach_keys(spec: Option<&str>) -> Result<Vec<u8>> {
    let spec = spec.unwrap_or_default();
    parse_keys(spec)
        .ok_or_else(|| EngineError::invalid(format!("Invalid detach keys ({spec}) provided")))
}

/// The detach keys of an exec (`DetachKeys`), with Docker's message when invalid.
pub(crate) fn exec_keys(spec: Option<&str>) -> Result<Vec<u8>> {
    let spec = spec.unwrap_or_default();
    parse_keys(spec)
        .ok_or_else(|| EngineError::invalid(format!("Invalid escape keys ({spec}) provided")))
}

/// An attached stream that watches its input for the detach sequence. Once it is seen, reads
/// end (the client's session ends), further input is dropped and shutting down does not close
/// the process's stdin.
pub(crate) struct Detachable {
    inner: Box<dyn Duplex>,
    keys: Vec<u8>,
    /// How many keys of the sequence the input ended with so far (held back).
    matched: usize,
    /// Input to forward before taking more.
    pending: Vec<u8>,
    detached: bool,
    /// The reader waiting for output, woken at the detach.
    reader: Option<Waker>,
    on_detach: Option<Box<dyn FnOnce() + Send>>,
}

impl Detachable {
    pub(crate) fn new(
        inner: Box<dyn Duplex>,
        keys: Vec<u8>,
        on_detach: impl FnOnce() + Send + 'static,
    ) -> Detachable {
        Detachable {
            inner,
            keys,
            matched: 0,
            pending: Vec::new(),
            detached: false,
            reader: None,
            on_detach: Some(Box::new(on_detach)),
        }
    }

    /// Moves `data` to `pending`, holding back a possible start of the sequence; true when the
    /// sequence completed (the rest of `data` is dropped).
    fn scan(&mut self, data: &[u8]) -> bool {
        for &b in data {
            // The held-back keys plus this byte: its longest end that could still begin the
            // sequence stays held back, what comes before it was input.
            let mut held = self.keys[..self.matched].to_vec();
            held.push(b);
            let start = (0..held.len())
                .find(|&i| self.keys.starts_with(&held[i..]))
                .unwrap_or(held.len());
            self.pending.extend_from_slice(&held[..start]);
            self.matched = held.len() - start;
            if self.matched == self.keys.len() {
                self.matched = 0;
                return true;
            }
        }
        false
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    fn detach(&mut self) {
        self.detached = true;
        if let Some(waker) = self.reader.take() {
            waker.wake();
        }
        if let Some(on_detach) = self.on_detach.take() {
            on_detach();
        }
    }
}

impl AsyncRead for Detachable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.detached {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Pending => {
                self.reader = Some(cx.waker().clone());
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl AsyncWrite for Detachable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if self.detached {
            return Poll::Ready(Ok(data.len()));
        }
        if self.scan(data) {
            self.detach();
        }
        // Sent now if it can be; else by the next write or flush.
        if let Poll::Ready(Err(e)) = self.poll_pending(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        if self.detached {
            // The session ended, not the process's input.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn keys_parse_like_dockers() {
        assert_eq!(parse_keys(""), Some(vec![16, 17]));
        assert_eq!(parse_keys("ctrl-p,ctrl-q"), Some(vec![16, 17]));
        assert_eq!(parse_keys("ctrl-x,x"), Some(vec![24, b'x']));
        assert_eq!(
            parse_keys("ctrl-@,ctrl-[,ctrl-_,DEL"),
            Some(vec![0, 27, 31, 127])
        );
        assert_eq!(parse_keys("a,,b"), None);
        assert_eq!(parse_keys("ctrl-1"), None);
        assert_eq!(parse_keys("ctrl-A"), None);
        assert_eq!(parse_keys("shift-a"), None);
        assert_eq!(
            attach_keys(Some("bogus")).unwrap_err().to_string(),
            "Invalid detach keys (bogus) provided"
        );
        assert_eq!(
            exec_keys(Some("bogus")).unwrap_err().to_string(),
            "Invalid escape keys (bogus) provided"
        );
    }

    /// A Detachable over one end of a pipe; returns it, the other end and the detach flag.
    fn detachable(keys: &[u8]) -> (Detachable, tokio::io::DuplexStream, Arc<AtomicBool>) {
        let (ours, theirs) = tokio::io::duplex(1024);
        let flag = Arc::new(AtomicBool::new(false));
        let seen = flag.clone();
        let d = Detachable::new(Box::new(ours), keys.to_vec(), move || {
            seen.store(true, Ordering::SeqCst)
        });
        (d, theirs, flag)
    }

    #[tokio::test]
    async fn input_before_the_sequence_is_delivered_the_rest_is_not() {
        let (mut d, mut process, detached) = detachable(&[16, 17]);
        d.write_all(b"ab\x10c\x10").await.unwrap();
        assert!(!detached.load(Ordering::SeqCst));
        d.write_all(b"\x11after").await.unwrap();
        assert!(detached.load(Ordering::SeqCst));
        d.write_all(b"more").await.unwrap();
        d.shutdown().await.unwrap();
        let mut got = vec![0; 16];
        let n = process.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"ab\x10c");
        // The process's stdin stays open: nothing more, but no end of file either.
        process.write_all(b"out").await.unwrap();
        let mut out = Vec::new();
        d.read_to_end(&mut out).await.unwrap();
        assert!(out.is_empty(), "reads end at the detach: {out:?}");
    }

    #[tokio::test]
    async fn a_reader_waiting_for_output_ends_at_the_detach() {
        let (d, _process, _) = detachable(b"x");
        let (mut read, mut write) = tokio::io::split(d);
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            read.read_to_end(&mut out).await.map(|_| out)
        });
        tokio::task::yield_now().await;
        write.write_all(b"x").await.unwrap();
        let out = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
            .await
            .expect("the reader ends")
            .unwrap()
            .unwrap();
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn overlapping_starts_are_found() {
        let (mut d, mut process, detached) = detachable(b"aab");
        d.write_all(b"xaaab").await.unwrap();
        assert!(detached.load(Ordering::SeqCst));
        d.shutdown().await.unwrap();
        let mut got = vec![0; 16];
        let n = process.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"xa");
    }

    #[tokio::test]
    async fn without_the_sequence_everything_passes_and_shutdown_closes_stdin() {
        let (mut d, mut process, detached) = detachable(&[16, 17]);
        d.write_all(b"\x10\x10x\x11").await.unwrap();
        d.shutdown().await.unwrap();
        let mut got = Vec::new();
        process.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"\x10\x10x\x11");
        assert!(!detached.load(Ordering::SeqCst));
    }
}
