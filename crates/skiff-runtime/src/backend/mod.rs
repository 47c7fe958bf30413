//! The OCI runtime seam: one trait, [`Backend`], implemented by the embedded libcontainer
//! runtime ([`embedded`]) and by the `runc`/`crun` command-line runtimes ([`cli`]), chosen by
//! name with [`by_name`]. Every implementation runs the same conformance suite
//! (`tests/backend_conformance.rs`).
//!
//! Backends run containers from bundles someone else wrote (see [`crate::spec`]); they never
//! reap processes (the caller does) and keep no state beyond the runtime's own `runtime_root`.
//!
//! Callers must be single-threaded when calling [`Backend::create`] or [`Backend::exec`]
//! (libcontainer clones), and must be a child subreaper (`PR_SET_CHILD_SUBREAPER`) so that the
//! container's processes are re-parented to them and can be reaped.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

mod cli;
mod embedded;

pub use cli::CliRuntime;
pub use embedded::Embedded;

/// How a container process's standard streams are connected.
pub enum Stdio {
    /// The process gets these descriptors as its fds 0, 1 and 2.
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
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
    Failed {
        runtime: String,
        op: String,
        message: String,
    },
    #[error("unknown runtime {0:?} (expected embedded, runc or crun)")]
    UnknownRuntime(String),
    #[error("i/o error")]
    Io(#[from] std::io::Error),
}

impl skiff_core::HasKind for BackendError {
    fn kind(&self) -> skiff_core::ErrorKind {
        match self {
            BackendError::NotFound(_) => skiff_core::ErrorKind::NotFound,
            BackendError::Unavailable(..) | BackendError::UnknownRuntime(_) => {
                skiff_core::ErrorKind::InvalidArgument
            }
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
    /// Whether this runtime can run containers on this host at all; the error says why not
    /// (binary missing, unsupported cgroup layout …). `create` fails the same way.
    fn check_host(&self) -> Result<()> {
        Ok(())
    }
}

/// The names [`by_name`] accepts; `embedded` is the default.
pub const NAMES: &[&str] = &["embedded", "runc", "crun"];

/// The backend called `name`, keeping its state under `runtime_root` (created on first use).
/// Constructing never fails for a known name, even when the runtime cannot run here: ask
/// [`Backend::check_host`].
pub fn by_name(name: &str, runtime_root: &Path) -> Result<Box<dyn Backend>> {
    match name {
        "" | "embedded" => Ok(Box::new(Embedded::new(runtime_root))),
        "runc" => Ok(Box::new(CliRuntime::runc(runtime_root))),
        "crun" => Ok(Box::new(CliRuntime::crun(runtime_root))),
        other => Err(BackendError::UnknownRuntime(other.to_string())),
    }
}

/// A private directory for one operation's files (an exec's `process.json`, a runtime's
/// log and pid file), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(runtime_root: &Path) -> Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = runtime_root.join(format!(".skiff-op-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(dir = %self.0.display(), error = %e, "cannot remove scratch dir");
        }
    }
}

/// Writes an exec's process to `scratch/process.json`.
fn write_process(scratch: &Scratch, process: &oci_spec::runtime::Process) -> Result<PathBuf> {
    let path = scratch.path("process.json");
    let json = serde_json::to_vec(process).map_err(|e| BackendError::Failed {
        runtime: "skiff".into(),
        op: "exec".into(),
        message: format!("cannot encode process: {e}"),
    })?;
    std::fs::write(&path, json)?;
    Ok(path)
}
