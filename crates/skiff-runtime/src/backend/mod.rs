//! The OCI runtime seam: one trait, [`Backend`], implemented by the embedded libcontainer
//! runtime and by the `runc`/`crun` command-line runtimes. Every implementation runs the same
//! conformance suite (`tests/backend_conformance.rs`).
//!
//! Callers must be single-threaded when calling [`Backend::create`] or [`Backend::exec`]
//! (libcontainer clones), and must be a child subreaper (`PR_SET_CHILD_SUBREAPER`) so that the
//! container's processes are re-parented to them and can be reaped.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// How a container process's standard streams are connected.
pub enum Stdio {
    /// The process gets these descriptors as its fds 0, 1 and 2.
    Fds { stdin: OwnedFd, stdout: OwnedFd, stderr: OwnedFd },
    /// The runtime allocates a pseudo-terminal and sends its master fd (SCM_RIGHTS) over
    /// the unix socket at this path, like runc's `--console-socket`.
    Console { socket: PathBuf },
}

/// Errors of the runtime backends.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("container {0} not found in runtime")]
    NotFound(String),
    #[error("runtime {0} is not available on this host: {1}")]
    Unavailable(String, String),
    #[error("{runtime} {op} failed: {message}")]
    Failed { runtime: String, op: String, message: String },
    #[error("i/o error")]
    Io(#[from] std::io::Error),
}

impl skiff_core::HasKind for BackendError {
    fn kind(&self) -> skiff_core::ErrorKind {
        match self {
            BackendError::NotFound(_) => skiff_core::ErrorKind::NotFound,
            BackendError::Unavailable(..) => skiff_core::ErrorKind::InvalidArgument,
            _ => skiff_core::ErrorKind::Internal,
        }
    }
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// An OCI runtime.
pub trait Backend: Send + Sync {
    /// `embedded`, `runc` or `crun`.
    fn name(&self) -> &'static str;
    /// Creates the container described by `bundle/config.json` without starting its user
    /// process; returns the pid of its init.
    fn create(&self, id: &str, bundle: &Path, stdio: Stdio) -> Result<i32>;
    /// Starts the user process of a created container.
    fn start(&self, id: &str) -> Result<()>;
    /// Sends `signal` to the init process (or every process when `all`).
    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()>;
    /// Freezes every process of the container.
    fn pause(&self, id: &str) -> Result<()>;
    /// Thaws a paused container.
    fn resume(&self, id: &str) -> Result<()>;
    /// Runs one more process inside the running container; returns its pid.
    fn exec(&self, id: &str, process: &oci_spec::runtime::Process, stdio: Stdio) -> Result<i32>;
    /// Removes the runtime's state of the container (killing it first when `force`) and its
    /// cgroup, including parent directories the runtime left behind.
    fn delete(&self, id: &str, force: bool) -> Result<()>;
}
