//! Adapters between async byte streams (what the HTTP layer has) and the blocking
//! `Read`/`Write` that tar and the image store use. Both are used on blocking threads only.

use std::io::{Read, Write};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::ByteStream;

/// Reads a [`ByteStream`] from a blocking thread.
pub(crate) struct StreamReader {
    handle: tokio::runtime::Handle,
    stream: ByteStream,
    buf: Bytes,
}

impl StreamReader {
    /// Must be created on the runtime (it remembers its handle).
    pub(crate) fn new(stream: ByteStream) -> StreamReader {
        StreamReader {
            handle: tokio::runtime::Handle::current(),
            stream,
            buf: Bytes::new(),
        }
    }
}

impl Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => self.buf = b,
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}

/// A blocking writer whose output becomes a [`ByteStream`].
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    pub(crate) fn new() -> (ChannelWriter, ByteStream) {
        let (tx, rx) = mpsc::channel(16);
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        (ChannelWriter { tx }, Box::pin(stream))
    }

    /// Ends the stream with an error the reader sees.
    pub(crate) fn fail(self, e: std::io::Error) {
        let _ = self.tx.blocking_send(Err(e));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK);
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(&data[..n])))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "reader went away"))?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn round_trip_through_blocking_threads() {
        let input: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"hel")),
            Ok(Bytes::from_static(b"lo")),
        ]));
        let reader = StreamReader::new(input);
        let (mut writer, output) = ChannelWriter::new();
        tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            std::io::copy(&mut reader, &mut writer).unwrap();
        });
        let got: Vec<Bytes> = output.map(|r| r.unwrap()).collect().await;
        assert_eq!(got.concat(), b"hello");
    }
}
