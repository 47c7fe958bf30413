//! Process plumbing of the shim: daemonizing, the child-subreaper role, SIGCHLD as a pollable
//! descriptor, SIGPIPE caught rather than ignored, the single-thread check, pty masters
//! received over a console socket, and terminal resizing. Nothing here knows about containers
//! or the protocol.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::unistd::{fork, setsid, ForkResult};

/// Detaches from the launcher: forks (the parent exits at once, so the launcher's child is
/// reaped immediately and the shim is re-parented away from it), starts a new session and
/// points stdin/stdout at /dev/null and stderr at `log`. Must be called single-threaded.
pub(crate) fn daemonize(log: &Path) -> io::Result<()> {
    // SAFETY: the shim is single-threaded here (checked by the caller), so the child may run
    // arbitrary code after fork.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    setsid()?;
    let null = File::options().read(true).write(true).open("/dev/null")?;
    let log = OpenOptions::new().create(true).append(true).open(log)?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&log)?;
    std::env::set_current_dir("/")?;
    Ok(())
}

/// Makes orphaned descendants (the container's init once `runc` exits, its re-parented
/// children) our children, so we can reap them.
pub(crate) fn become_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)?;
    Ok(())
}

/// Fails unless this process has exactly one thread: libcontainer clones, which is unsafe in
/// a multi-threaded process.
pub(crate) fn ensure_single_threaded() -> io::Result<()> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads == 1 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "shim must be single-threaded, it has {threads} threads"
        )))
    }
}

/// Write end of the SIGCHLD self-pipe, used by the signal handler.
static SIGCHLD_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigchld(_: libc::c_int) {
    let saved = Errno::last_raw();
    let fd = SIGCHLD_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is a valid one-byte local. A full
        // pipe (EAGAIN) is fine: a wake-up is already pending.
        unsafe { libc::write(fd, [0u8].as_ptr().cast(), 1) };
    }
    Errno::set_raw(saved);
}

/// SIGCHLD turned into a readable descriptor (a self-pipe: signals stay unblocked, so the
/// container inherits no blocked signal mask).
pub(crate) struct ChildSignal {
    read: File,
    _write: OwnedFd,
}

impl ChildSignal {
    pub(crate) fn install() -> io::Result<ChildSignal> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        SIGCHLD_PIPE.store(write.as_raw_fd(), Ordering::Relaxed);
        let action = SigAction::new(
            SigHandler::Handler(on_sigchld),
            SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
            SigSet::empty(),
        );
        // SAFETY: the handler only calls async-signal-safe functions (write, errno access).
        unsafe { sigaction(Signal::SIGCHLD, &action) }?;
        Ok(ChildSignal {
            read: File::from(read),
            _write: write,
        })
    }

    /// Empties the pipe after a wake-up.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!(nix::unistd::read(&self.read, &mut buf), Ok(n) if n > 0) {}
    }
}

impl AsFd for ChildSignal {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.read.as_fd()
    }
}

extern "C" fn on_sigpipe(_: libc::c_int) {}

/// Catches SIGPIPE with a handler that does nothing, instead of ignoring it as Rust's runtime
/// set up: the shim's writes to a closed pipe or socket still just fail with EPIPE, but a
/// caught signal is reset to its default by exec while an ignored one stays ignored, so the
/// container's processes (cloned from the shim by the embedded backend) start with SIGPIPE at
/// its default, as in Docker. Never leaves a window in which the shim itself could die of it.
pub(crate) fn catch_sigpipe() -> io::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_sigpipe),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler does nothing at all, which is async-signal-safe.
    unsafe { sigaction(Signal::SIGPIPE, &action) }?;
    Ok(())
}

/// Puts a descriptor in non-blocking mode.
pub(crate) fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Waits up to `timeout` for the runtime to connect to the console socket and send the pty
/// master (SCM_RIGHTS), and returns it.
pub(crate) fn receive_pty_master(
    listener: &UnixListener,
    timeout: Duration,
) -> io::Result<OwnedFd> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "runtime sent no pty master",
                    ));
                }
                let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                match poll(
                    &mut fds,
                    PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
                ) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut name = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let message = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut received: Vec<OwnedFd> = Vec::new();
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            // SAFETY: SCM_RIGHTS installed these descriptors in our table; we own them now.
            received.extend(
                fds.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let mut received = received.into_iter();
    received.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "console socket message carried no descriptor",
        )
    })
}

nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);

/// Sets a terminal's window size (delivers SIGWINCH to its foreground process group).
pub(crate) fn set_window_size(tty: &impl AsFd, height: u16, width: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the valid pointer; the fd is borrowed and open.
    unsafe { tiocswinsz(tty.as_fd().as_raw_fd(), &size) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_size_reaches_the_terminal() {
        let pty = nix::pty::openpty(None, None).unwrap();
        set_window_size(&pty.master, 33, 101).unwrap();
        let mut size = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize into the valid pointer.
        let rc = unsafe { libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
        assert_eq!(rc, 0);
        assert_eq!((size.ws_row, size.ws_col), (33, 101));
    }

    #[test]
    fn pty_master_is_received_over_a_console_socket() {
        let dir = tempfile::Builder::new()
            .prefix("skiff-console")
            .tempdir()
            .unwrap();
        let path = dir.path().join("c.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let pty = nix::pty::openpty(None, None).unwrap();
        let sender = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let fds = [pty.master.as_raw_fd()];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        let iov = [io::IoSlice::new(b"/dev/pts/x")];
        nix::sys::socket::sendmsg::<()>(sender.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
            .unwrap();
        let master = receive_pty_master(&listener, Duration::from_secs(5)).unwrap();
        nix::unistd::write(&pty.slave, b"ping\n").unwrap();
        let mut buf = [0u8; 16];
        let n = nix::unistd::read(&master, &mut buf).unwrap();
        assert!(buf[..n].starts_with(b"ping"), "{:?}", &buf[..n]);
    }

    #[test]
    fn console_socket_without_sender_times_out() {
        let dir = tempfile::Builder::new()
            .prefix("skiff-console")
            .tempdir()
            .unwrap();
        let listener = UnixListener::bind(dir.path().join("c.sock")).unwrap();
        let err = receive_pty_master(&listener, Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
