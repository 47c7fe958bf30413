//! SPDY/3.1 framing, the server's half, as far as Kubernetes' streaming uses it: control frames
//! (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, HEADERS) and data
//! frames, header blocks compressed with zlib and SPDY/3's dictionary (one compression context
//! per direction for the whole connection). No maintained Rust crate serves SPDY (ADR 0018).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;

pub const FLAG_FIN: u8 = 0x01;

/// Larger frames are refused (Kubernetes' streams send at most 32 KiB a frame).
const MAX_FRAME: usize = 1 << 24;

/// Why a SPDY connection cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    #[error("header block cannot be decompressed")]
    Inflate(#[from] flate2::DecompressError),
    #[error("header block cannot be compressed")]
    Deflate(#[from] flate2::CompressError),
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Control {
        kind: u16,
        flags: u8,
        data: Vec<u8>,
    },
    Data {
        stream: u32,
        flags: u8,
        data: Vec<u8>,
    },
}

/// Reads SPDY frames off a byte stream.
pub struct FrameReader<R> {
    reader: R,
    buf: Vec<u8>,
    chunk: Vec<u8>,
}

impl<R: tokio::io::AsyncRead + Unpin> FrameReader<R> {
    pub fn new(reader: R) -> Self {
        FrameReader {
            reader,
            buf: Vec::new(),
            chunk: vec![0u8; 32 * 1024],
        }
    }

    /// The next frame; none once the stream ends or on a malformed frame (logged for
    /// `what`).
    pub async fn next(&mut self, what: &str) -> Option<Frame> {
        use tokio::io::AsyncReadExt;
        loop {
            match parse(&mut self.buf) {
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => match self.reader.read(&mut self.chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&self.chunk[..n]),
                },
                Err(e) => {
                    tracing::debug!(error = %e, "{what}: bad SPDY frame");
                    return None;
                }
            }
        }
    }
}

/// Takes one complete frame off the front of `buf` (none while it is incomplete).
pub fn parse(buf: &mut Vec<u8>) -> Result<Option<Frame>, SpdyError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    if len > MAX_FRAME {
        return Err(SpdyError::Malformed("oversized"));
    }
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let flags = buf[4];
    let data = buf[8..8 + len].to_vec();
    let frame = if buf[0] & 0x80 != 0 {
        let version = u16::from_be_bytes([buf[0] & 0x7f, buf[1]]);
        if version != 3 {
            return Err(SpdyError::Version(version));
        }
        Frame::Control {
            kind: u16::from_be_bytes([buf[2], buf[3]]),
            flags,
            data,
        }
    } else {
        Frame::Data {
            stream: u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) & 0x7fff_ffff,
            flags,
            data,
        }
    };
    buf.drain(..8 + len);
    Ok(Some(frame))
}

fn header(out: &mut Vec<u8>, first: [u8; 4], flags: u8, len: usize) {
    out.extend_from_slice(&first);
    out.push(flags);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
}

/// A data frame.
pub fn data(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    header(
        &mut out,
        (stream & 0x7fff_ffff).to_be_bytes(),
        flags,
        payload.len(),
    );
    out.extend_from_slice(payload);
    out
}

/// A control frame of `kind` carrying `payload`.
pub fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    let k = kind.to_be_bytes();
    header(&mut out, [0x80, 3, k[0], k[1]], flags, payload.len());
    out.extend_from_slice(payload);
    out
}

/// The first 32-bit word of a control frame's payload (the stream id of SYN_STREAM,
/// SYN_REPLY, RST_STREAM; the id of PING).
pub fn first_word(data: &[u8]) -> Option<u32> {
    data.get(..4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]) & 0x7fff_ffff)
}

/// SPDY/3's zlib dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1): each of these words
/// with its 32-bit length, then the rest as it is.
fn dictionary() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const REST: &str = "100101201202205206300302303304305306307402405406407408409410411412413\
        414415416417502504505203 Non-Authoritative Information204 No Content301 Moved \
        Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal \
        Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug \
        Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,\
        image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,\
        text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,\
        utf-,*,enq=0.";
    let mut out = Vec::with_capacity(1423);
    for w in WORDS {
        out.extend_from_slice(&(w.len() as u32).to_be_bytes());
        out.extend_from_slice(w.as_bytes());
    }
    out.extend_from_slice(REST.as_bytes());
    out
}

/// The header compression contexts of one connection.
pub struct Headers {
    inflate: Decompress,
    deflate: Compress,
    deflate_started: bool,
}

impl Default for Headers {
    fn default() -> Self {
        Headers {
            inflate: Decompress::new(true),
            deflate: Compress::new(Compression::default(), true),
            deflate_started: false,
        }
    }
}

impl Headers {
    /// The name/value pairs of a received header block.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        loop {
            let before_in = self.inflate.total_in();
            out.reserve(4096);
            let status = match self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(s) => s,
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate.set_dictionary(&dictionary())?;
                    Status::Ok
                }
                Err(e) => return Err(e.into()),
            };
            let used = (self.inflate.total_in() - before_in) as usize;
            input = &input[used..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            if status == Status::StreamEnd {
                break;
            }
        }
        pairs(&out)
    }

    /// A header block of `pairs`, compressed.
    pub fn encode(&mut self, pairs: &[(&str, &str)]) -> Result<Vec<u8>, SpdyError> {
        if !self.deflate_started {
            self.deflate.set_dictionary(&dictionary())?;
            self.deflate_started = true;
        }
        let mut raw = (pairs.len() as u32).to_be_bytes().to_vec();
        for (k, v) in pairs {
            raw.extend_from_slice(&(k.len() as u32).to_be_bytes());
            raw.extend_from_slice(k.as_bytes());
            raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = raw.as_slice();
        loop {
            out.reserve(256);
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)?;
            input = &input[(self.deflate.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// Parses an uncompressed header block (values with NULs are several values).
fn pairs(raw: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
    let mut at = 0;
    let count = word_len(raw, &mut at)?;
    let mut out = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let k = word(raw, &mut at)?.to_ascii_lowercase();
        let v = word(raw, &mut at)?;
        for part in v.split('\0') {
            out.push((k.clone(), part.to_string()));
        }
    }
    Ok(out)
}

fn word_len(raw: &[u8], at: &mut usize) -> Result<usize, SpdyError> {
    let w = raw
        .get(*at..*at + 4)
        .ok_or(SpdyError::Malformed("header block"))?;
    *at += 4;
    Ok(u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as usize)
}

fn word(raw: &[u8], at: &mut usize) -> Result<String, SpdyError> {
    let len = word_len(raw, at)?;
    let w = raw
        .get(*at..*at + len)
        .ok_or(SpdyError::Malformed("header block"))?;
    *at += len;
    Ok(String::from_utf8_lossy(w).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // The dictionary id a SPDY/3 peer's zlib header names.
        let mut c = Compress::new(Compression::default(), true);
        assert_eq!(c.set_dictionary(&d).unwrap(), 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_round_trip_across_one_context() {
        let (mut sender, mut rx) = (Headers::default(), Headers::default());
        for n in 0..3 {
            let port = format!("80{n}");
            let block = sender
                .encode(&[("streamtype", "data"), ("port", &port)])
                .unwrap();
            let got = rx.decode(&block).unwrap();
            assert_eq!(
                got,
                vec![
                    ("streamtype".to_string(), "data".to_string()),
                    ("port".to_string(), port)
                ]
            );
        }
        assert!(!sender.encode(&[]).unwrap().is_empty());
    }

    #[test]
    fn frames_parse_only_when_complete() {
        let mut buf = control(PING, 0, &7u32.to_be_bytes());
        buf.extend_from_slice(&data(3, FLAG_FIN, b"hi")[..5]);
        assert_eq!(
            parse(&mut buf).unwrap(),
            Some(Frame::Control {
                kind: PING,
                flags: 0,
                data: 7u32.to_be_bytes().to_vec()
            })
        );
        assert_eq!(parse(&mut buf).unwrap(), None);
        buf.extend_from_slice(&data(3, FLAG_FIN, b"hi")[5..]);
        assert_eq!(
            parse(&mut buf).unwrap(),
            Some(Frame::Data {
                stream: 3,
                flags: FLAG_FIN,
                data: b"hi".to_vec()
            })
        );
    }
}
