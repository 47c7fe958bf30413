//! Streaming response shapes of the Docker API: the 8-byte multiplexed framing of stdout and
//! stderr used when a container has no TTY, and newline-delimited JSON streams (events, stats,
//! image load progress).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde::Serialize;

/// Content type of a multiplexed stdout/stderr stream (no TTY).
pub const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";
/// Content type of a raw stream (TTY).
pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";

/// Which standard stream a chunk belongs to, numbered as in Docker's framing header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdStream {
    Stdout = 1,
    Stderr = 2,
}

/// One frame: `[stream, 0, 0, 0, len as u32 big-endian]` followed by the payload.
pub fn mux_frame(stream: StdStream, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(8 + payload.len());
    buf.put_u8(stream as u8);
    buf.put_bytes(0, 3);
    buf.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    buf.put_slice(payload);
    buf.freeze()
}

/// Encodes a chunk for the wire: framed when multiplexed, verbatim for a TTY.
pub fn encode(multiplexed: bool, stream: StdStream, payload: &[u8]) -> Bytes {
    if multiplexed {
        mux_frame(stream, payload)
    } else {
        Bytes::copy_from_slice(payload)
    }
}

/// A chunked `application/json` response of one JSON document per line. An error in the
/// middle of the stream is sent as `{"error": …, "errorDetail": …}` (as dockerd does) and
/// ends it.
pub fn json_lines<T, E, S>(items: S) -> Response
where
    T: Serialize + Send + 'static,
    E: std::fmt::Display + Send + 'static,
    S: Stream<Item = Result<T, E>> + Send + 'static,
{
    let body = items.scan(false, |done, item| {
        if *done {
            return futures::future::ready(None);
        }
        let mut line = match item {
            Ok(v) => serde_json::to_vec(&v).unwrap_or_default(),
            Err(e) => {
                *done = true;
                let message = e.to_string();
                serde_json::to_vec(
                    &serde_json::json!({ "errorDetail": { "message": message }, "error": message }),
                )
                .unwrap_or_default()
            }
        };
        line.push(b'\n');
        futures::future::ready(Some(Ok::<_, std::convert::Infallible>(Bytes::from(line))))
    });
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_matches_docker() {
        let f = mux_frame(StdStream::Stderr, b"hi\n");
        assert_eq!(&f[..8], &[2, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(&f[8..], b"hi\n");
        assert_eq!(&encode(false, StdStream::Stdout, b"raw")[..], b"raw");
    }
}
