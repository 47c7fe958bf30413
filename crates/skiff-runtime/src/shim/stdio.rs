//! The standard streams of a process the shim runs (the container's init or an exec): pipes,
//! or a pty master received over a console socket, prepared before the backend call and used
//! without blocking afterwards. Knows nothing about clients or logs.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::backend::Stdio;

use super::process::{receive_pty_master, set_nonblocking};
use super::SocketDir;

/// Stdin bytes buffered for a process that reads slowly; past this the shim stops reading
/// from the attached clients (their own data, so backpressure is fair).
const STDIN_BUFFER: usize = 1 << 20;

/// How long the runtime may take to hand over the pty master after `create`/`exec` returned.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One output stream of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// stdout, or the pty (tty output is logged and framed as stdout).
    Stdout,
    Stderr,
}

impl Source {
    pub(crate) fn log_name(self) -> &'static str {
        match self {
            Source::Stdout => "stdout",
            Source::Stderr => "stderr",
        }
    }
}

/// The shim's ends of a process's standard streams (all closed by default).
#[derive(Default)]
pub(crate) struct ProcessIo {
    /// Whether output is a pty (raw bytes, no stderr).
    pub(crate) tty: Option<File>,
    pub(crate) stdout: Option<File>,
    pub(crate) stderr: Option<File>,
    pub(crate) stdin: Option<StdinSink>,
}

/// What happened when reading an output stream.
pub(crate) enum Output {
    Data(usize),
    /// Nothing to read right now.
    Idle,
    /// The stream ended (EOF, or EIO on a pty whose slave side is closed).
    Closed,
}

impl ProcessIo {
    /// Pipes for the streams asked for, /dev/null for the others. Returns what the backend
    /// gives the process and the shim's (non-blocking) ends.
    pub(crate) fn pipes(stdin: bool, stdout: bool, stderr: bool) -> io::Result<(Stdio, ProcessIo)> {
        let null = || -> io::Result<OwnedFd> {
            Ok(File::options()
                .read(true)
                .write(true)
                .open("/dev/null")?
                .into())
        };
        let (child_in, sink) = if stdin {
            let (read, write) = std::io::pipe()?;
            (
                OwnedFd::from(read),
                Some(StdinSink::new(File::from(OwnedFd::from(write)))?),
            )
        } else {
            (null()?, None)
        };
        let output = |wanted: bool| -> io::Result<(OwnedFd, Option<File>)> {
            if !wanted {
                return Ok((null()?, None));
            }
            let (read, write) = std::io::pipe()?;
            let read = File::from(OwnedFd::from(read));
            set_nonblocking(&read)?;
            Ok((OwnedFd::from(write), Some(read)))
        };
        let (child_out, stdout) = output(stdout)?;
        let (child_err, stderr) = output(stderr)?;
        let stdio = Stdio::Fds {
            stdin: child_in,
            stdout: child_out,
            stderr: child_err,
        };
        Ok((
            stdio,
            ProcessIo {
                tty: None,
                stdout,
                stderr,
                stdin: sink,
            },
        ))
    }

    /// Wraps a pty master; input goes to it only when `stdin`.
    pub(crate) fn pty(master: OwnedFd, stdin: bool) -> io::Result<ProcessIo> {
        let master = File::from(master);
        set_nonblocking(&master)?;
        let sink = if stdin {
            Some(StdinSink::new(master.try_clone()?)?)
        } else {
            None
        };
        Ok(ProcessIo {
            tty: Some(master),
            stdout: None,
            stderr: None,
            stdin: sink,
        })
    }

    /// The open output streams.
    pub(crate) fn outputs(&self) -> impl Iterator<Item = (Source, &File)> {
        let out = self
            .tty
            .as_ref()
            .or(self.stdout.as_ref())
            .map(|f| (Source::Stdout, f));
        out.into_iter()
            .chain(self.stderr.as_ref().map(|f| (Source::Stderr, f)))
    }

    /// Reads one chunk of `source` into `buf`; closes the stream when it ends.
    pub(crate) fn read(&mut self, source: Source, buf: &mut [u8]) -> Output {
        let slot = match source {
            Source::Stdout if self.tty.is_some() => &mut self.tty,
            Source::Stdout => &mut self.stdout,
            Source::Stderr => &mut self.stderr,
        };
        let Some(file) = slot else {
            return Output::Closed;
        };
        let result = loop {
            match file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match result {
            Ok(0) => {
                *slot = None;
                Output::Closed
            }
            Ok(n) => Output::Data(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Output::Idle,
            Err(e) => {
                // EIO is how a pty master reports that the slave side is gone.
                if e.raw_os_error() != Some(libc::EIO) {
                    tracing::warn!(error = %e, "reading process output failed");
                }
                *slot = None;
                Output::Closed
            }
        }
    }

    /// Stops accepting input for the process; its stdin closes once buffered bytes are written.
    pub(crate) fn close_stdin(&mut self) {
        if let Some(sink) = &mut self.stdin {
            sink.close_requested = true;
        }
        self.drop_finished_stdin();
    }

    /// Writes buffered stdin; drops the sink once it is finished or broken.
    pub(crate) fn flush_stdin(&mut self) {
        if let Some(sink) = &mut self.stdin {
            sink.flush();
        }
        self.drop_finished_stdin();
    }

    fn drop_finished_stdin(&mut self) {
        if self
            .stdin
            .as_ref()
            .is_some_and(|s| s.broken || (s.close_requested && s.pending.is_empty()))
        {
            self.stdin = None;
        }
    }
}

/// A process's stdin as the shim writes it: non-blocking, with a bounded buffer.
pub(crate) struct StdinSink {
    pub(crate) file: File,
    pending: VecDeque<u8>,
    close_requested: bool,
    broken: bool,
}

impl StdinSink {
    fn new(file: File) -> io::Result<StdinSink> {
        set_nonblocking(&file)?;
        Ok(StdinSink {
            file,
            pending: VecDeque::new(),
            close_requested: false,
            broken: false,
        })
    }

    /// Whether more input may be accepted now.
    pub(crate) fn has_room(&self) -> bool {
        !self.close_requested && self.pending.len() < STDIN_BUFFER
    }

    /// Whether buffered bytes wait for the process to read.
    pub(crate) fn wants_write(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Queues input and writes what the process can take now.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.broken || self.close_requested {
            return;
        }
        self.pending.extend(data);
        self.flush();
    }

    fn flush(&mut self) {
        while !self.pending.is_empty() {
            let (front, _) = self.pending.as_slices();
            match self.file.write(front) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // The process closed its stdin (EPIPE): nothing will read the rest.
                    tracing::debug!(error = %e, "process stdin closed");
                    self.pending.clear();
                    self.broken = true;
                    return;
                }
            }
        }
    }
}

/// A unix socket the runtime connects to, to hand over the pty master it allocated. Lives in
/// the temporary directory, named through [`SocketDir`] (so a long `TMPDIR` does not exceed
/// `sun_path`), and is removed on drop.
pub(crate) struct ConsoleSocket {
    listener: UnixListener,
    dir: SocketDir,
    name: String,
}

impl ConsoleSocket {
    pub(crate) fn bind() -> io::Result<ConsoleSocket> {
        ConsoleSocket::bind_in(&std::env::temp_dir())
    }

    fn bind_in(dir: &Path) -> io::Result<ConsoleSocket> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("skiff-console-{}-{n}.sock", std::process::id());
        let dir = SocketDir::open(dir)?;
        match std::fs::remove_file(dir.path(&name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(dir.path(&name))?;
        Ok(ConsoleSocket {
            listener,
            dir,
            name,
        })
    }

    /// What the backend should be given: a path the runtime's own process can connect to.
    pub(crate) fn stdio(&self) -> Stdio {
        Stdio::Console {
            socket: self.dir.path_for_others(&self.name),
        }
    }

    /// The pty master the runtime sent (call after `create`/`exec` returned).
    pub(crate) fn receive(self) -> io::Result<OwnedFd> {
        receive_pty_master(&self.listener, CONSOLE_TIMEOUT)
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.path(&self.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_carry_stdin_and_output_and_report_eof() {
        let (stdio, mut io) = ProcessIo::pipes(true, true, false).unwrap();
        let Stdio::Fds {
            stdin,
            stdout,
            stderr,
        } = stdio
        else {
            panic!("pipes gave a console")
        };
        let mut child_out = File::from(stdout);
        child_out.write_all(b"out").unwrap();
        drop(child_out);
        let mut buf = [0u8; 16];
        assert!(matches!(io.read(Source::Stdout, &mut buf), Output::Data(3)));
        assert!(matches!(io.read(Source::Stdout, &mut buf), Output::Closed));
        assert!(
            io.outputs().next().is_none(),
            "stderr was not asked for, so only stdout was open"
        );

        io.stdin.as_mut().unwrap().push(b"in");
        io.close_stdin();
        assert!(
            io.stdin.is_none(),
            "stdin closes once its buffer is written"
        );
        let mut got = String::new();
        File::from(stdin).read_to_string(&mut got).unwrap();
        assert_eq!(got, "in");
        // stderr not asked for: /dev/null, writable.
        File::from(stderr).write_all(b"dropped").unwrap();
    }

    #[test]
    fn console_socket_in_a_dir_longer_than_sun_len_is_reachable_and_removed() {
        let dir = tempfile::Builder::new()
            .prefix("skiff-stdio")
            .tempdir()
            .unwrap();
        let long = dir.path().join("t".repeat(120));
        std::fs::create_dir(&long).unwrap();
        let console = ConsoleSocket::bind_in(&long).unwrap();
        let Stdio::Console { socket } = console.stdio() else {
            panic!("not a console")
        };
        assert!(socket.as_os_str().len() < 108, "{socket:?}");
        std::os::unix::net::UnixStream::connect(&socket).unwrap();
        assert_eq!(std::fs::read_dir(&long).unwrap().count(), 1);
        drop(console);
        assert_eq!(
            std::fs::read_dir(&long).unwrap().count(),
            0,
            "the socket is removed on drop"
        );
    }

    #[test]
    fn stdin_buffer_is_bounded_when_the_process_does_not_read() {
        let (_stdio, mut io) = ProcessIo::pipes(true, false, false).unwrap();
        let sink = io.stdin.as_mut().unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        while sink.has_room() {
            sink.push(&chunk);
        }
        assert!(sink.wants_write());
        assert!(sink.pending.len() < STDIN_BUFFER + chunk.len());
    }
}
