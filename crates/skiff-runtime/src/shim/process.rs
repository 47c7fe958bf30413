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
/// reaped immediately and the shim is re-parented away from it) and starts a new session in
/// `/`. Must be called single-threaded.
pub(crate) fn detach() -> io::Result<()> {
    // SAFETY: the shim is single-threaded here (checked by the caller), so the child may run
    // arbitrary code after fork.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    setsid()?;
    std::env::set_current_dir("/")?;
    Ok(())
}

/// Points stdin and stdout at /dev/null and stderr at `log`, and keeps `log` for
/// [`ShimLog`].
pub(crate) fn redirect_stdio(log: &Path) -> io::Result<()> {
    let null = File::options().read(true).write(true).open("/dev/null")?;
    let log = OpenOptions::new().create(true).append(true).open(log)?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&log)?;
    let _ = LOG.set(log);
    Ok(())
}

/// The shim's log file once it has daemonized (opened close-on-exec).
static LOG: std::sync::OnceLock<File> = std::sync::OnceLock::new();

/// Where the shim's own log lines go: its log file once it has daemonized, stderr before.
///
/// Not simply stderr: the embedded runtime forks the container's processes from the shim, and
/// in them descriptor 2 becomes the container's stderr. libcontainer's errors in such a
/// process (a command that cannot be executed) would otherwise land in `docker logs` as log
/// lines; runc writes one line there, which [`crate::backend`] writes too.
pub struct ShimLog;

impl io::Write for ShimLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match LOG.get() {
            Some(mut f) => io::Write::write(&mut f, buf),
            None => io::Write::write(&mut io::stderr(), buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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

/// Drops this process's page-table entries for its clean read-only file mappings (the skiff
/// binary's and its libraries' code and constants), so that the shim's resident set is what
/// it keeps running, not all it ran once: the shim is the whole skiff binary, and creating a
/// container runs megabytes of code (libcontainer, clap, the config parser) the event loop
/// never needs again. The pages stay in the page cache, shared with the daemon and the other
/// shims; any the shim touches again fault back in at once. Only private mappings that are
/// not writable and hold no page of their own (no `Anonymous` or `Swap` memory, so not the
/// relocated RELRO data) are dropped: their contents are exactly the file's.
pub(crate) fn trim_code_pages() -> io::Result<()> {
    trim_clean_mappings(None)
}

/// [`trim_code_pages`] for the mappings of this process's own executable only: safe in a
/// multi-threaded process, whose other threads may map and unmap other files meanwhile (the
/// executable stays mapped, in place, for the process's life). The daemon drops what its
/// start ran once (argument parsing, state loading, network reconcile) before it serves.
pub fn trim_executable_pages() -> io::Result<()> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    trim_clean_mappings(Some(&exe.to_string_lossy()))
}

fn trim_clean_mappings(only: Option<&str>) -> io::Result<()> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    for (start, len) in clean_file_mappings(&smaps, only) {
        // SAFETY: the range is one of this process's own private, read-only file mappings
        // without a modified page, as the kernel listed it just now (single-threaded: nothing
        // changed it since); dropping its pages loses nothing, they are read back from the
        // file on the next access. The memory itself stays mapped.
        if unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The mappings (start, length) of a `/proc/self/smaps` text that are private, read-only
/// views of a file (`r--p`, `r-xp`, with a path; `only` that path if given) and report zero
/// `Anonymous` and `Swap`.
fn clean_file_mappings(smaps: &str, only: Option<&str>) -> Vec<(usize, usize)> {
    struct Candidate {
        start: usize,
        len: usize,
        anonymous: Option<bool>,
        swap: Option<bool>,
    }
    let mut clean = Vec::new();
    let mut current: Option<Candidate> = None;
    let mut flush = |c: Option<Candidate>| {
        if let Some(c) = c.filter(|c| c.anonymous == Some(false) && c.swap == Some(false)) {
            clean.push((c.start, c.len));
        }
    };
    for line in smaps.lines() {
        if let Some(mapping) = mapping_header(line, only) {
            flush(current.take());
            current = mapping.map(|(start, len)| Candidate {
                start,
                len,
                anonymous: None,
                swap: None,
            });
        } else if let Some(c) = current.as_mut() {
            let (key, value) = line.split_once(':').unwrap_or((line, ""));
            let used = value.trim() != "0 kB";
            match key {
                "Anonymous" => c.anonymous = Some(used),
                "Swap" => c.swap = Some(used),
                _ => {}
            }
        }
    }
    flush(current);
    clean
}

/// For a mapping's header line of `/proc/self/{maps,smaps}`: `Some(Some((start, len)))` if it
/// is a private read-only file mapping (of `only`, if given), `Some(None)` for any other
/// mapping; `None` for lines that are not headers.
fn mapping_header(line: &str, only: Option<&str>) -> Option<Option<(usize, usize)>> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let path = fields.nth(3);
    let readonly_file = matches!(perms, "r--p" | "r-xp")
        && path.is_some_and(|p| p.starts_with('/') && only.is_none_or(|o| p == o));
    Some(
        readonly_file
            .then(|| end.checked_sub(start))
            .flatten()
            .map(|len| (start, len)),
    )
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
    fn only_clean_read_only_file_mappings_are_trimmed() {
        let smaps = "\
5584b43fc000-5584b48b6000 r--p 00000000 fe:00 1199294  /usr/bin/skiff
Rss:                 784 kB
Anonymous:             0 kB
Swap:                  0 kB
5584b48b6000-5584b5bbe000 r-xp 004b9000 fe:00 1199294  /usr/bin/skiff
Anonymous:             0 kB
Swap:                  0 kB
5584b5bbe000-5584b5c7f000 r--p 017c0000 fe:00 1199294  /usr/bin/skiff
Anonymous:           772 kB
Swap:                  0 kB
5584b5c7f000-5584b5c8a000 r--p 01880000 fe:00 1199294  /usr/bin/skiff
Anonymous:             0 kB
Swap:                  8 kB
5584b5c8a000-5584b5c9a000 r--p 01890000 fe:00 1199294  /usr/bin/skiff
Rss:                   4 kB
5584b5c7f000-5584b5c8a000 rw-p 01880000 fe:00 1199294  /usr/bin/skiff
Anonymous:             0 kB
Swap:                  0 kB
7fff32049000-7fff3206a000 r-xp 00000000 00:00 0  [vdso]
Anonymous:             0 kB
Swap:                  0 kB
7fff32049000-7fff3206a000 r-xs 00000000 fe:00 12  /dev/shm/x
Anonymous:             0 kB
Swap:                  0 kB
7fff3206a000-7fff32049000 r-xp 00000000 fe:00 12  /lib/reversed.so
Anonymous:             0 kB
Swap:                  0 kB
7fb5049c8000-7fb504b1e000 r-xp 00026000 fe:00 326279  /usr/lib/libc.so.6
Anonymous:             0 kB
Swap:                  0 kB
";
        assert_eq!(
            clean_file_mappings(smaps, None),
            vec![
                (0x5584b43fc000, 0x5584b48b6000 - 0x5584b43fc000),
                (0x5584b48b6000, 0x5584b5bbe000 - 0x5584b48b6000),
                (0x7fb5049c8000, 0x7fb504b1e000 - 0x7fb5049c8000),
            ],
            "relocated, swapped, unreported, writable, special and shared mappings stay"
        );
        assert_eq!(
            clean_file_mappings(smaps, Some("/usr/bin/skiff")),
            vec![
                (0x5584b43fc000, 0x5584b48b6000 - 0x5584b43fc000),
                (0x5584b48b6000, 0x5584b5bbe000 - 0x5584b48b6000),
            ],
            "only the executable's own mappings"
        );
    }

    fn resident_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn trimming_code_pages_shrinks_the_resident_set_and_keeps_running() {
        let before = resident_file_kib();
        trim_code_pages().unwrap();
        let after = resident_file_kib();
        assert!(after < before, "RssFile {before} kB -> {after} kB");
        // Code runs on after the trim: the pages fault back in from the file.
        assert_eq!(format!("{:x}", 0xfeed_u32), "feed");
    }

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
