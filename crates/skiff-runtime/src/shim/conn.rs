//! One client connection on `shim.sock`, as the shim's event loop sees it: the request line
//! being read, what the connection has become (a pending wait, an attach/exec stream), and its
//! bounded output buffer. Never blocks: a client that reads too slowly loses output rather
//! than stalling the container.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use super::protocol::{frame_header, RemoteError, Reply, MAX_REQUEST};
use super::stdio::Source;

/// Output buffered for one client; chunks that do not fit are dropped for that client.
const OUTPUT_BUFFER: usize = 1 << 20;

/// Whose stdio a stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Init,
    Exec(String),
}

/// What a connection is for, once its request has been read.
#[derive(Debug)]
pub(crate) enum Role {
    /// Reading the request line.
    Request,
    /// Waiting for the container to exit.
    WaitExit,
    /// Waiting for an exec to end.
    WaitExec(String),
    /// Raw stdio of a process.
    Stream {
        target: Target,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        tty: bool,
    },
    /// Everything is queued; close once the buffer is written.
    Closing,
}

pub(crate) struct Conn {
    pub(crate) stream: UnixStream,
    pub(crate) role: Role,
    request: Vec<u8>,
    out: VecDeque<u8>,
    /// The client shut down its write half.
    pub(crate) read_closed: bool,
    /// Writing failed: the client is gone.
    pub(crate) broken: bool,
}

/// What reading from a connection produced.
pub(crate) enum Input {
    /// A complete request line, and any bytes the client sent after it.
    Request(Vec<u8>, Vec<u8>),
    /// Stream data (stdin).
    Data(Vec<u8>),
    Nothing,
}

impl Conn {
    pub(crate) fn new(stream: UnixStream) -> io::Result<Conn> {
        stream.set_nonblocking(true)?;
        Ok(Conn {
            stream,
            role: Role::Request,
            request: Vec::new(),
            out: VecDeque::new(),
            read_closed: false,
            broken: false,
        })
    }

    /// Reads what is available. A request line longer than [`MAX_REQUEST`] breaks the
    /// connection after an error reply.
    pub(crate) fn read(&mut self) -> Input {
        let mut buf = [0u8; 64 * 1024];
        let n = match self.stream.read(&mut buf) {
            Ok(0) => {
                self.read_closed = true;
                return Input::Nothing;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return Input::Nothing
            }
            Err(_) => {
                self.broken = true;
                return Input::Nothing;
            }
        };
        if !matches!(self.role, Role::Request) {
            return Input::Data(buf[..n].to_vec());
        }
        self.request.extend_from_slice(&buf[..n]);
        if let Some(end) = self.request.iter().position(|&b| b == b'\n') {
            let rest = self.request.split_off(end + 1);
            let mut line = std::mem::take(&mut self.request);
            line.pop();
            return Input::Request(line, rest);
        }
        if self.request.len() > MAX_REQUEST {
            self.request.clear();
            self.reply(&Reply::Error(RemoteError::new(
                skiff_core::ErrorKind::TooLarge,
                format!("request longer than {MAX_REQUEST} bytes"),
            )));
        }
        Input::Nothing
    }

    /// Queues the reply line; unless the connection streams after it, it closes once sent.
    pub(crate) fn reply(&mut self, reply: &Reply) {
        self.out.extend(reply.to_line());
        if !matches!(self.role, Role::Stream { .. }) {
            self.role = Role::Closing;
        }
        self.flush();
    }

    /// Queues process output for a stream connection, framed as the stream wants it; drops it
    /// when the client is too far behind.
    pub(crate) fn deliver(&mut self, target: &Target, source: Source, data: &[u8]) {
        let Role::Stream {
            target: mine,
            stdout,
            stderr,
            tty,
            ..
        } = &self.role
        else {
            return;
        };
        let wanted = match source {
            Source::Stdout => *stdout,
            Source::Stderr => *stderr,
        };
        if mine != target || !wanted {
            return;
        }
        let framed = !*tty;
        let size = data.len() + if framed { 8 } else { 0 };
        if self.out.len() + size > OUTPUT_BUFFER {
            tracing::debug!(
                dropped = data.len(),
                "attached client too slow, output dropped for it"
            );
            return;
        }
        if framed {
            let stream = match source {
                Source::Stdout => super::protocol::STDOUT,
                Source::Stderr => super::protocol::STDERR,
            };
            self.out.extend(frame_header(stream, data.len()));
        }
        self.out.extend(data);
        self.flush();
    }

    /// Writes as much buffered output as the socket takes.
    pub(crate) fn flush(&mut self) {
        while !self.out.is_empty() && !self.broken {
            let (front, _) = self.out.as_slices();
            match self.stream.write(front) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => self.broken = true,
            }
        }
    }

    pub(crate) fn wants_write(&self) -> bool {
        !self.out.is_empty() && !self.broken
    }

    /// Whether the connection is finished and can be dropped.
    pub(crate) fn done(&self) -> bool {
        self.broken
            || (matches!(self.role, Role::Closing) && self.out.is_empty())
            || (matches!(
                self.role,
                Role::Request | Role::WaitExit | Role::WaitExec(_)
            ) && self.read_closed)
    }
}
