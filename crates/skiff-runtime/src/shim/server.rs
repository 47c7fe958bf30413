//! The shim process from start to end: read `shim.json`, daemonize, create the container,
//! report the outcome to the launcher, serve until the container has exited, clean up.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::backend::{self, Backend, BackendError};

use super::event_loop::Shim;
use super::logfile::{ContainerLog, JsonLog};
use super::process::{
    become_subreaper, catch_sigpipe, detach, ensure_single_threaded, redirect_stdio, ChildSignal,
};
use super::protocol::{RemoteError, Reply};
use super::stdio::{ConsoleSocket, ProcessIo};
use super::{error_chain, pid_path, socket_path, ShimConfig, SocketDir, SOCKET_NAME};

/// Why a shim could not run its container.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read shim config {}", .path.display())]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid shim config {}", .path.display())]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// Setting up the shim process, its socket, log or the container's stdio failed.
    #[error("{what}")]
    Setup {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl skiff_core::HasKind for RunError {
    fn kind(&self) -> skiff_core::ErrorKind {
        match self {
            RunError::ReadConfig { .. } | RunError::ParseConfig { .. } => {
                skiff_core::ErrorKind::InvalidArgument
            }
            RunError::Setup { .. } => skiff_core::ErrorKind::Internal,
            RunError::Backend(e) => e.kind(),
        }
    }
}

impl RunError {
    /// The error as the launch report carries it to the engine.
    fn remote(&self) -> RemoteError {
        match self {
            RunError::Backend(e) => super::backend_error(e),
            other => RemoteError::new(skiff_core::HasKind::kind(other), error_chain(other)),
        }
    }
}

fn setup(what: &'static str) -> impl FnOnce(io::Error) -> RunError {
    move |source| RunError::Setup { what, source }
}

/// The shim's main: `skiff shim <config_path>`. Reports success (the init pid) or the error
/// as one [`Reply`] line on the stdout it was started with (the pipe [`super::launch`] reads),
/// then serves the container until it has exited. Must be called single-threaded.
pub fn run(config_path: &Path) -> Result<(), RunError> {
    run_config(config_path, false)
}

/// `skiff shim -`: a spare shim ([`super::Spare`]), started before it is needed. It detaches
/// at once, waits for the path of its configuration as one line on stdin, then goes on as
/// `skiff shim <path>`. The end of stdin (the engine dropped it, or is gone) ends it.
pub fn run_spare() -> Result<(), RunError> {
    ensure_single_threaded().map_err(setup("cannot daemonize"))?;
    detach().map_err(setup("cannot daemonize"))?;
    let mut line = String::new();
    if io::stdin()
        .read_line(&mut line)
        .map_err(setup("cannot read the configuration's path"))?
        == 0
    {
        return Ok(());
    }
    // The engine may start spares at its background priority: the container gets the normal one.
    set_nice(0).map_err(setup("cannot return to normal priority"))?;
    run_config(Path::new(line.trim_end_matches('\n')), true)
}

/// Sets this (single-threaded) process's nice value.
pub(super) fn set_nice(nice: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system call on the calling thread, which is the whole process.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn run_config(config_path: &Path, detached: bool) -> Result<(), RunError> {
    let report = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(setup("cannot keep the report pipe"))?;
    let config = match read_config(config_path) {
        Ok(config) => config,
        Err(e) => {
            send_report(report, &Reply::Error(e.remote()));
            return Err(e);
        }
    };
    let state_dir = config.state_dir.clone();
    match prepare(config, detached) {
        Ok(mut shim) => {
            send_report(report, &Reply::ok(shim.init_pid));
            shim.locate_oom_counter();
            tracing::info!(id = %shim.config.id, pid = shim.init_pid, "container created");
            shim.serve();
            tracing::info!("shim done");
            Ok(())
        }
        Err(e) => {
            send_report(report, &Reply::Error(e.remote()));
            let _ = std::fs::remove_file(pid_path(&state_dir));
            Err(e)
        }
    }
}

fn send_report(pipe: OwnedFd, reply: &Reply) {
    if let Err(e) = File::from(pipe).write_all(&reply.to_line()) {
        tracing::warn!(error = %e, "cannot report to the launcher");
    }
}

fn read_config(path: &Path) -> Result<ShimConfig, RunError> {
    let bytes = std::fs::read(path).map_err(|source| RunError::ReadConfig {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| RunError::ParseConfig {
        path: path.to_path_buf(),
        source,
    })
}

/// Everything up to a created container with its socket listening.
fn prepare(config: ShimConfig, detached: bool) -> Result<Shim, RunError> {
    let state_dir = config.state_dir.clone();
    if !detached {
        ensure_single_threaded().map_err(setup("cannot daemonize"))?;
        detach().map_err(setup("cannot daemonize"))?;
    }
    redirect_stdio(&state_dir.join("shim.log")).map_err(setup("cannot daemonize"))?;
    become_subreaper().map_err(setup("cannot become a child subreaper"))?;
    std::fs::write(pid_path(&state_dir), std::process::id().to_string())
        .map_err(setup("cannot write shim.pid"))?;
    let sigchld = ChildSignal::install().map_err(setup("cannot handle SIGCHLD"))?;
    catch_sigpipe().map_err(setup("cannot handle SIGPIPE"))?;
    let backend = backend::by_name(&config.runtime, &config.runtime_root)?;
    let log = match &config.log_path {
        Some(path) => {
            let log = JsonLog::open(path, config.log_max_size, config.log_max_files)
                .map_err(setup("cannot open the log"))?;
            Some(ContainerLog::new(log))
        }
        None => None,
    };

    if !config.mount_hubs.is_empty() {
        ensure_single_threaded().map_err(setup("cannot leave other containers' mounts out"))?;
        super::hubs::leave_out(&config.mount_hubs, &config.bundle)
            .map_err(setup("cannot leave other containers' mounts out"))?;
    }
    let init = create(&config, backend.as_ref())?;
    let listen = || -> io::Result<UnixListener> {
        match std::fs::remove_file(socket_path(&state_dir)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        // Through the open directory: the state dir's own path may be too long for a socket.
        UnixListener::bind(SocketDir::open(&state_dir)?.path(SOCKET_NAME))
    };
    let listener = match listen() {
        Ok(listener) => listener,
        Err(e) => {
            if let Err(e) = backend.delete(&config.id, true) {
                tracing::warn!(error = %error_chain(&e), "deleting the half-made container failed");
            }
            return Err(RunError::Setup {
                what: "cannot listen on shim.sock",
                source: e,
            });
        }
    };
    Ok(Shim::new(config, backend, listener, sigchld, init, log))
}

/// Creates the container with pipes, or with a pty when `tty`; deletes it again if its stdio
/// cannot be set up.
fn create(config: &ShimConfig, backend: &dyn Backend) -> Result<(i32, ProcessIo), RunError> {
    ensure_single_threaded().map_err(setup("cannot create the container"))?;
    if !config.tty {
        let (stdio, io) = ProcessIo::pipes(config.open_stdin, true, true)
            .map_err(setup("cannot make stdio pipes"))?;
        let pid = backend.create(&config.id, &config.bundle, stdio)?;
        return Ok((pid, io));
    }
    let console = ConsoleSocket::bind().map_err(setup("cannot bind the console socket"))?;
    let pid = backend.create(&config.id, &config.bundle, console.stdio())?;
    match console
        .receive()
        .and_then(|master| ProcessIo::pty(master, config.open_stdin))
    {
        Ok(io) => Ok((pid, io)),
        Err(source) => {
            if let Err(e) = backend.delete(&config.id, true) {
                tracing::warn!(error = %error_chain(&e), "deleting the half-made container failed");
            }
            Err(RunError::Setup {
                what: "cannot receive the container's pty",
                source,
            })
        }
    }
}
