//! The shim's single-threaded poll(2) loop: serves requests on `shim.sock`, moves the
//! container's output to its log and to attached clients, feeds stdin, runs execs, reaps
//! children and records the container's exit.
//!
//! It never blocks on a client or on the log: output is always read as soon as it is there.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::backend::Backend;
use crate::cgroups;

use super::conn::{Conn, Input, Role, Target};
use super::logfile::ContainerLog;
use super::process::{ensure_single_threaded, set_window_size, trim_code_pages, ChildSignal};
use super::protocol::{RemoteError, Reply, Request};
use super::stdio::{ConsoleSocket, Output, ProcessIo, Source};
use super::{
    backend_error, error_chain, pid_path, socket_path, ExecRequest, ExitStatus, ShimConfig,
    ShimState, Status,
};
use skiff_core::ErrorKind;

/// How long the shim stays after the container exited, to finish sending output and replies.
const LINGER: Duration = Duration::from_secs(5);

/// How long (ms) the shim waits without any event before it trims its code pages.
const TRIM_AFTER_MS: u8 = 100;

struct Exec {
    pid: i32,
    io: ProcessIo,
    exit_code: Option<i32>,
}

#[derive(Debug, Clone)]
enum Token {
    Output(Target, Source),
    Stdin(Target),
    Signal,
    Listener,
    Conn(u64),
}

/// A created container and everything the shim holds for it.
pub(super) struct Shim {
    pub(super) config: ShimConfig,
    backend: Box<dyn Backend>,
    listener: UnixListener,
    sigchld: ChildSignal,
    pub(super) init_pid: i32,
    init_io: ProcessIo,
    log: Option<ContainerLog>,
    /// Where the kernel counts the container's OOM kills (read at its exit, before its cgroup
    /// is deleted); see [`Shim::locate_oom_counter`].
    oom_counter: Option<PathBuf>,
    status: Status,
    exit: Option<ExitStatus>,
    exited_at: Option<Instant>,
    execs: HashMap<String, Exec>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    scratch: Vec<u8>,
    /// A request (start, an exec, …) ran since the last trim: drop the code pages it touched
    /// from the resident set once the shim is idle.
    trim_due: bool,
}

impl Shim {
    /// `init` is the created container's init pid and its stdio.
    pub(super) fn new(
        config: ShimConfig,
        backend: Box<dyn Backend>,
        listener: UnixListener,
        sigchld: ChildSignal,
        (init_pid, init_io): (i32, ProcessIo),
        log: Option<ContainerLog>,
    ) -> Shim {
        Shim {
            config,
            backend,
            listener,
            sigchld,
            init_pid,
            init_io,
            log,
            oom_counter: None,
            status: Status::Created,
            exit: None,
            exited_at: None,
            execs: HashMap::new(),
            conns: BTreeMap::new(),
            next_conn: 0,
            scratch: vec![0; 64 * 1024],
            trim_due: true,
        }
    }

    /// Finds the file that counts the container's OOM kills. It reads the mount table (and,
    /// for configurations without `cgroups_path`, the bundle): done once the launcher has
    /// its report, not before.
    pub(super) fn locate_oom_counter(&mut self) {
        let path = match &self.config.cgroups_path {
            Some(path) => Ok(path.clone()),
            None => cgroups::path_from_bundle(&self.config.bundle),
        };
        match path {
            Ok(path) => self.oom_counter = cgroups::oom_counter(&path),
            Err(e) => tracing::warn!(error = %error_chain(&e), "no cgroup to read OOM kills from"),
        }
    }

    /// Serves until the container has exited and its clients are done (or [`LINGER`] passed).
    /// `shim.sock` and `shim.pid` are gone from the exit on.
    pub(super) fn serve(mut self) {
        if let Err(e) = self.listener.set_nonblocking(true) {
            tracing::error!(error = %e, "cannot make the shim socket non-blocking");
        }
        loop {
            self.conns.retain(|_, conn| !conn.done());
            let timeout = match self.exited_at {
                Some(at) if self.conns.is_empty() || at.elapsed() >= LINGER => break,
                Some(at) => PollTimeout::try_from(LINGER.saturating_sub(at.elapsed()))
                    .unwrap_or(PollTimeout::MAX),
                None => PollTimeout::NONE,
            };
            // Trimming reads /proc/self/smaps (a millisecond): only once the shim has been idle
            // for TRIM_AFTER_MS, never between a request and what the client waits for next.
            let trim_wait = (timeout == PollTimeout::NONE && self.trim_due)
                .then(|| PollTimeout::from(TRIM_AFTER_MS));
            let polled = Instant::now();
            let events = self.poll_events(trim_wait.unwrap_or(timeout));
            // No event for the whole wait, not a poll that a signal (SIGCHLD) cut short.
            let idled = events.is_empty()
                && polled.elapsed() >= Duration::from_millis(TRIM_AFTER_MS.into());
            if trim_wait.is_some() && idled {
                self.trim_due = false;
                if let Err(e) = trim_code_pages() {
                    tracing::warn!(error = %e, "cannot trim the shim's code pages");
                }
            }
            for (token, events) in events {
                self.handle(token, events);
            }
        }
        for conn in self.conns.values_mut() {
            if let Role::WaitExec(_) = conn.role {
                conn.reply(&Reply::Error(RemoteError::new(
                    ErrorKind::WrongState,
                    "exec ended with its container",
                )));
            }
        }
    }

    /// Polls every descriptor the shim cares about; returns the ready ones.
    fn poll_events(&self, timeout: PollTimeout) -> Vec<(Token, PollFlags)> {
        let set = self.interests();
        let mut fds: Vec<PollFd<'_>> = set
            .iter()
            .map(|(_, fd, flags)| PollFd::new(*fd, *flags))
            .collect();
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Vec::new(),
            Err(e) => {
                tracing::error!(error = %e, "poll failed");
                return Vec::new();
            }
        }
        let ready: Vec<PollFlags> = fds
            .iter()
            .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
            .collect();
        set.into_iter()
            .zip(ready)
            .filter(|(_, events)| !events.is_empty())
            .map(|((token, _, _), events)| (token, events))
            .collect()
    }

    /// What to poll for on which descriptor.
    fn interests(&self) -> Vec<(Token, BorrowedFd<'_>, PollFlags)> {
        let mut set = Vec::new();
        let processes = std::iter::once((Target::Init, &self.init_io)).chain(
            self.execs
                .iter()
                .map(|(id, exec)| (Target::Exec(id.clone()), &exec.io)),
        );
        for (target, io) in processes {
            for (source, file) in io.outputs() {
                set.push((
                    Token::Output(target.clone(), source),
                    file.as_fd(),
                    PollFlags::POLLIN,
                ));
            }
            if let Some(sink) = io.stdin.as_ref().filter(|s| s.wants_write()) {
                set.push((Token::Stdin(target), sink.file.as_fd(), PollFlags::POLLOUT));
            }
        }
        set.push((Token::Signal, self.sigchld.as_fd(), PollFlags::POLLIN));
        set.push((Token::Listener, self.listener.as_fd(), PollFlags::POLLIN));
        for (id, conn) in &self.conns {
            let mut flags = PollFlags::empty();
            if self.wants_read(conn) {
                flags |= PollFlags::POLLIN;
            }
            if conn.wants_write() {
                flags |= PollFlags::POLLOUT;
            }
            set.push((Token::Conn(*id), conn.stream.as_fd(), flags));
        }
        set
    }

    fn wants_read(&self, conn: &Conn) -> bool {
        match &conn.role {
            _ if conn.read_closed => false,
            Role::Closing => false,
            Role::Stream {
                target,
                stdin: true,
                ..
            } => self
                .io(target)
                .and_then(|io| io.stdin.as_ref())
                .is_none_or(|sink| sink.has_room()),
            _ => true,
        }
    }

    fn handle(&mut self, token: Token, events: PollFlags) {
        match token {
            Token::Output(target, source) => {
                self.pump(&target, source);
            }
            Token::Stdin(target) => {
                if let Some(io) = self.io_mut(&target) {
                    io.flush_stdin();
                }
            }
            Token::Signal => {
                self.sigchld.drain();
                self.reap();
            }
            Token::Listener => self.accept(),
            Token::Conn(id) => self.serve_conn(id, events),
        }
    }

    fn io(&self, target: &Target) -> Option<&ProcessIo> {
        match target {
            Target::Init => Some(&self.init_io),
            Target::Exec(id) => self.execs.get(id).map(|e| &e.io),
        }
    }

    fn io_mut(&mut self, target: &Target) -> Option<&mut ProcessIo> {
        match target {
            Target::Init => Some(&mut self.init_io),
            Target::Exec(id) => self.execs.get_mut(id).map(|e| &mut e.io),
        }
    }

    /// Reads one chunk of a process's output and hands it on; returns false when nothing
    /// more is there right now.
    fn pump(&mut self, target: &Target, source: Source) -> bool {
        let mut buf = std::mem::take(&mut self.scratch);
        let outcome = match self.io_mut(target) {
            Some(io) => io.read(source, &mut buf),
            None => Output::Closed,
        };
        let more = match outcome {
            Output::Data(n) => {
                self.dispatch(target, source, &buf[..n]);
                true
            }
            Output::Idle | Output::Closed => false,
        };
        self.scratch = buf;
        more
    }

    /// Reads everything a process left in its output (it has exited).
    fn drain(&mut self, target: &Target) {
        for source in [Source::Stdout, Source::Stderr] {
            while self.pump(target, source) {}
        }
    }

    fn dispatch(&mut self, target: &Target, source: Source, data: &[u8]) {
        if *target == Target::Init {
            if let Some(log) = &mut self.log {
                log.write(source.log_name(), data);
            }
        }
        for conn in self.conns.values_mut() {
            conn.deliver(target, source, data);
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => match Conn::new(stream) {
                    Ok(conn) => {
                        self.conns.insert(self.next_conn, conn);
                        self.next_conn += 1;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot set up a client connection"),
                },
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::WouldBlock {
                        tracing::warn!(error = %e, "accept on the shim socket failed");
                    }
                    return;
                }
            }
        }
    }

    fn serve_conn(&mut self, id: u64, events: PollFlags) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if events.contains(PollFlags::POLLOUT) {
            conn.flush();
        }
        if events.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            && !conn.read_closed
        {
            match conn.read() {
                Input::Request(line, rest) => self.request(id, &line, &rest),
                Input::Data(data) => self.stdin_data(id, &data),
                Input::Nothing => {}
            }
            if self.conns.get(&id).is_some_and(|c| c.read_closed) {
                self.stdin_ended(id);
            }
        }
        if events.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
            if let Some(conn) = self.conns.get_mut(&id) {
                // Both directions are shut: the client is gone.
                conn.broken = true;
            }
        }
    }

    fn stdin_data(&mut self, id: u64, data: &[u8]) {
        let Some(Role::Stream {
            target,
            stdin: true,
            ..
        }) = self.conns.get(&id).map(|c| &c.role)
        else {
            return;
        };
        let target = target.clone();
        if let Some(sink) = self.io_mut(&target).and_then(|io| io.stdin.as_mut()) {
            sink.push(data);
        }
    }

    /// The client shut down its write half: the end of its stdin.
    fn stdin_ended(&mut self, id: u64) {
        let Some(Role::Stream {
            target,
            stdin: true,
            ..
        }) = self.conns.get(&id).map(|c| &c.role)
        else {
            return;
        };
        let target = target.clone();
        // As with Docker, a session on a tty never closes the container's input when it ends
        // (the client may have detached and attach again); without one, `stdin_once` does.
        let close = match target {
            Target::Init => self.config.stdin_once && !self.config.tty,
            Target::Exec(_) => true,
        };
        if let Some(io) = self.io_mut(&target).filter(|_| close) {
            io.close_stdin();
        }
    }

    fn request(&mut self, id: u64, line: &[u8], rest: &[u8]) {
        let request = match serde_json::from_slice::<Request>(line) {
            Ok(request) => request,
            Err(e) => {
                let e =
                    RemoteError::new(ErrorKind::InvalidArgument, format!("invalid request: {e}"));
                return self.reply(id, Reply::Error(e));
            }
        };
        tracing::debug!(?request, "request");
        self.trim_due = true;
        let reply = match request {
            Request::State => Ok(Reply::ok(ShimState {
                status: self.status,
                pid: self.init_pid,
                exit: self.exit.clone(),
            })),
            Request::Start => self.start().map(Reply::ok),
            Request::Kill { signal, all } => self.running().and_then(|()| {
                self.backend
                    .kill(&self.config.id, signal, all)
                    .map_err(|e| backend_error(&e))
                    .map(Reply::ok)
            }),
            Request::Pause => self.pause(true).map(Reply::ok),
            Request::Resume => self.pause(false).map(Reply::ok),
            Request::Wait => match &self.exit {
                Some(exit) => Ok(Reply::ok(exit)),
                None => return self.set_role(id, Role::WaitExit),
            },
            Request::Attach {
                stdin,
                stdout,
                stderr,
                start,
            } => {
                let stdin = stdin && self.config.open_stdin;
                let tty = self.config.tty;
                self.set_role(
                    id,
                    Role::Stream {
                        target: Target::Init,
                        stdin,
                        stdout,
                        stderr,
                        tty,
                    },
                );
                // Attached first: the stream sees all the output of the process it starts.
                let outcome = if start {
                    self.start().map(Reply::ok)
                } else {
                    Ok(Reply::Ok(serde_json::Value::Null))
                };
                let reply = match outcome {
                    Ok(reply) => reply,
                    Err(e) => {
                        self.set_role(id, Role::Request);
                        return self.reply(id, Reply::Error(e));
                    }
                };
                self.reply(id, reply);
                if self.exit.is_some() {
                    self.set_role(id, Role::Closing);
                }
                return self.stdin_data(id, rest);
            }
            Request::Resize { height, width } => {
                self.resize(&Target::Init, height, width).map(Reply::ok)
            }
            Request::Exec(request) => {
                let (exec_id, stdin, stdout, stderr, tty) = (
                    request.exec_id.clone(),
                    request.attach_stdin,
                    request.attach_stdout,
                    request.attach_stderr,
                    request.tty,
                );
                match self.exec(*request) {
                    Ok(pid) => {
                        let target = Target::Exec(exec_id);
                        self.set_role(
                            id,
                            Role::Stream {
                                target,
                                stdin,
                                stdout,
                                stderr,
                                tty,
                            },
                        );
                        self.reply(id, Reply::ok(pid));
                        return self.stdin_data(id, rest);
                    }
                    Err(e) => Err(e),
                }
            }
            Request::ExecWait { exec_id } => match self.execs.get(&exec_id).map(|e| e.exit_code) {
                None => Err(no_such_exec(&exec_id)),
                Some(Some(code)) => Ok(Reply::ok(code)),
                Some(None) => return self.set_role(id, Role::WaitExec(exec_id)),
            },
            Request::ExecPid { exec_id } => match self.execs.get(&exec_id) {
                None => Err(no_such_exec(&exec_id)),
                Some(exec) => Ok(Reply::ok(exec.pid)),
            },
            Request::ExecResize {
                exec_id,
                height,
                width,
            } => self
                .resize(&Target::Exec(exec_id), height, width)
                .map(Reply::ok),
        };
        self.reply(id, reply.unwrap_or_else(Reply::Error));
    }

    fn reply(&mut self, id: u64, reply: Reply) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.reply(&reply);
        }
    }

    fn set_role(&mut self, id: u64, role: Role) {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.role = role;
        }
    }

    fn running(&self) -> Result<(), RemoteError> {
        match self.status {
            Status::Stopped => Err(self.not_running()),
            _ => Ok(()),
        }
    }

    fn not_running(&self) -> RemoteError {
        RemoteError::new(
            ErrorKind::WrongState,
            format!("container {} is not running", self.config.id),
        )
    }

    fn start(&mut self) -> Result<i32, RemoteError> {
        if self.status != Status::Created {
            return Err(RemoteError::new(
                ErrorKind::WrongState,
                format!(
                    "container {} cannot be started: it is {}",
                    self.config.id,
                    status_name(self.status)
                ),
            ));
        }
        self.backend
            .start(&self.config.id)
            .map_err(|e| backend_error(&e))?;
        self.status = Status::Running;
        Ok(self.init_pid)
    }

    fn pause(&mut self, pause: bool) -> Result<(), RemoteError> {
        let (from, to) = if pause {
            (Status::Running, Status::Paused)
        } else {
            (Status::Paused, Status::Running)
        };
        if self.status != from {
            return Err(RemoteError::new(
                ErrorKind::WrongState,
                format!(
                    "container {} is {}, not {}",
                    self.config.id,
                    status_name(self.status),
                    status_name(from)
                ),
            ));
        }
        let result = if pause {
            self.backend.pause(&self.config.id)
        } else {
            self.backend.resume(&self.config.id)
        };
        result.map_err(|e| backend_error(&e))?;
        self.status = to;
        Ok(())
    }

    fn resize(&self, target: &Target, height: u16, width: u16) -> Result<(), RemoteError> {
        let io = self.io(target).ok_or_else(|| match target {
            Target::Exec(id) => no_such_exec(id),
            Target::Init => self.not_running(),
        })?;
        let tty = io.tty.as_ref().ok_or_else(|| {
            RemoteError::new(ErrorKind::InvalidArgument, "the process has no tty")
        })?;
        set_window_size(tty, height, width).map_err(|e| {
            RemoteError::new(ErrorKind::Internal, format!("resizing the tty failed: {e}"))
        })
    }

    fn exec(&mut self, request: ExecRequest) -> Result<i32, RemoteError> {
        if self.status != Status::Running {
            return Err(self.not_running());
        }
        if self.execs.contains_key(&request.exec_id) {
            return Err(RemoteError::new(
                ErrorKind::Conflict,
                format!("exec {} exists already", request.exec_id),
            ));
        }
        ensure_single_threaded()
            .map_err(|e| RemoteError::new(ErrorKind::Internal, e.to_string()))?;
        let mut process = request.process;
        process.set_terminal(Some(request.tty));
        let id = &self.config.id;
        let failed = |e: std::io::Error| {
            RemoteError::new(
                ErrorKind::Internal,
                format!("setting up the exec's stdio failed: {e}"),
            )
        };
        let (pid, io) = if request.tty {
            let console = ConsoleSocket::bind().map_err(failed)?;
            let pid = self
                .backend
                .exec(id, &process, console.stdio())
                .map_err(|e| backend_error(&e))?;
            let master = console.receive().map_err(failed)?;
            (
                pid,
                ProcessIo::pty(master, request.attach_stdin).map_err(failed)?,
            )
        } else {
            let (stdio, io) = ProcessIo::pipes(
                request.attach_stdin,
                request.attach_stdout,
                request.attach_stderr,
            )
            .map_err(failed)?;
            (
                self.backend
                    .exec(id, &process, stdio)
                    .map_err(|e| backend_error(&e))?,
                io,
            )
        };
        tracing::info!(exec_id = %request.exec_id, pid, "exec started");
        self.execs.insert(
            request.exec_id,
            Exec {
                pid,
                io,
                exit_code: None,
            },
        );
        Ok(pid)
    }

    /// Reaps every child that ended: the container's init, execs, and orphans re-parented
    /// to the shim.
    fn reap(&mut self) {
        loop {
            let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, signal, _)) => (pid.as_raw(), 128 + signal as i32),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "waitpid failed");
                    return;
                }
            };
            if pid == self.init_pid && self.exit.is_none() {
                self.container_exited(code);
            } else if let Some(exec_id) = self
                .execs
                .iter()
                .find(|(_, e)| e.pid == pid)
                .map(|(id, _)| id.clone())
            {
                self.exec_exited(&exec_id, code);
            } else {
                tracing::debug!(pid, code, "reaped an orphan");
            }
        }
    }

    fn exec_exited(&mut self, exec_id: &str, code: i32) {
        tracing::info!(exec_id, code, "exec exited");
        let target = Target::Exec(exec_id.to_string());
        self.drain(&target);
        if let Some(exec) = self.execs.get_mut(exec_id) {
            exec.exit_code = Some(code);
            exec.io = ProcessIo::default();
        }
        for conn in self.conns.values_mut() {
            match &conn.role {
                Role::Stream { target: t, .. } if *t == target => conn.role = Role::Closing,
                Role::WaitExec(id) if id == exec_id => conn.reply(&Reply::ok(code)),
                _ => {}
            }
        }
    }

    fn container_exited(&mut self, code: i32) {
        tracing::info!(code, "container exited");
        // Now, not after the runtime's delete below: that takes a while and is not the
        // container's run time.
        let finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        self.drain(&Target::Init);
        self.init_io = ProcessIo::default();
        if let Some(log) = &mut self.log {
            log.finish();
        }
        let oom_killed = self
            .oom_counter
            .as_deref()
            .is_some_and(cgroups::oom_killed_at);
        let exit = ExitStatus {
            exit_code: code,
            oom_killed,
            finished_at,
            error: None,
        };
        if let Err(e) = super::write_exit(&self.config.state_dir, &exit) {
            tracing::error!(error = %e, "recording the exit status failed");
        }
        for conn in self.conns.values_mut() {
            match conn.role {
                Role::WaitExit => conn.reply(&Reply::ok(&exit)),
                Role::Stream {
                    target: Target::Init,
                    ..
                } => conn.role = Role::Closing,
                _ => {}
            }
        }
        self.status = Status::Stopped;
        self.exit = Some(exit);
        self.exited_at = Some(Instant::now());
        // Closed now, not after the delete: an attached client sees the end of the output
        // with the exit (what has not been flushed yet stays until it is).
        self.conns.retain(|_, conn| !conn.done());
        // After the waiters have their answer: the runtime's delete takes a while and is not
        // the container's business. Requests are served only after it, and the socket goes
        // with it, so a new shim for this container (a restart) starts after the delete
        // (see `ShimClient::wait_released`). At the lowest priority: no client waits for it,
        // and on a busy host the next container's start should not wait for it either.
        if let Err(e) = super::server::set_nice(19) {
            tracing::debug!(error = %e, "cannot lower the shim's priority");
        }
        if let Err(e) = self.backend.delete(&self.config.id, true) {
            tracing::warn!(error = %error_chain(&e), "deleting the container from the runtime failed");
        }
        self.release_state_dir();
    }

    /// Removes `shim.sock` and `shim.pid`: from now on the state dir belongs to whoever
    /// launches the next shim there; connections already open are still served.
    fn release_state_dir(&self) {
        for path in [
            socket_path(&self.config.state_dir),
            pid_path(&self.config.state_dir),
        ] {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn no_such_exec(exec_id: &str) -> RemoteError {
    RemoteError::new(ErrorKind::NotFound, format!("no such exec: {exec_id}"))
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Created => "created",
        Status::Running => "running",
        Status::Paused => "paused",
        Status::Stopped => "stopped",
    }
}
