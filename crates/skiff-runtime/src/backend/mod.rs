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

/// Why a container's command could not be run: the user's mistake, which Docker answers with
/// 400 and records as exit code 127 or 126.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandError {
    /// Not found in the container (`executable file not found in $PATH`, or a path that does
    /// not exist): exit code 127.
    NotFound,
    /// Found but not executable (`permission denied`): exit code 126.
    NotExecutable,
}

impl CommandError {
    /// What an OCI runtime's message says about the container's command. runc, crun and
    /// libcontainer's container init (which reports over a pipe of its own) tell a failed
    /// `execve` of the command only in words, so this reads the words, once, where they enter
    /// skiff (dockerd reads containerd's the same way); from here on the answer travels as a
    /// value, across the shim protocol too.
    fn from_runtime_message(message: &str) -> Option<CommandError> {
        let m = message.to_ascii_lowercase();
        if m.contains("permission denied") {
            Some(CommandError::NotExecutable)
        } else if m.contains("executable file not found") || m.contains("no such file or directory")
        {
            Some(CommandError::NotFound)
        } else {
            None
        }
    }

    /// The exit code Docker records for a container whose command could not run.
    pub fn exit_code(self) -> i32 {
        match self {
            CommandError::NotFound => 127,
            CommandError::NotExecutable => 126,
        }
    }
}

/// Errors of the runtime backends.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("container {0} not found in runtime")]
    NotFound(String),
    #[error("runtime {0} is not available on this host: {1}")]
    Unavailable(String, String),
    /// The runtime refused; `command` says whether the container's command was the reason.
    #[error("{runtime} {op} failed: {message}")]
    Failed {
        runtime: String,
        op: String,
        message: String,
        command: Option<CommandError>,
    },
    #[error("unknown runtime {0:?} (expected embedded, runc or crun)")]
    UnknownRuntime(String),
    #[error("{op} {}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BackendError {
    /// The runtime's refusal of `op`, with what its message says about the command.
    pub(crate) fn failed(runtime: &str, op: &str, message: String) -> BackendError {
        let command = matches!(op, "create" | "start" | "exec")
            .then(|| CommandError::from_runtime_message(&message))
            .flatten();
        BackendError::Failed {
            runtime: runtime.into(),
            op: op.into(),
            message,
            command,
        }
    }

    /// Whether the container's command was why the runtime refused.
    pub fn command(&self) -> Option<CommandError> {
        match self {
            BackendError::Failed { command, .. } => *command,
            _ => None,
        }
    }
}

/// Attaches the operation and its path to I/O results.
pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackendError {
    let path = path.to_path_buf();
    move |source| BackendError::Io { op, path, source }
}

impl skiff_core::HasKind for BackendError {
    fn kind(&self) -> skiff_core::ErrorKind {
        match self {
            BackendError::NotFound(_) => skiff_core::ErrorKind::NotFound,
            BackendError::Unavailable(..) | BackendError::UnknownRuntime(_) => {
                skiff_core::ErrorKind::InvalidArgument
            }
            BackendError::Failed {
                command: Some(_), ..
            } => skiff_core::ErrorKind::InvalidArgument,
            BackendError::Failed { .. } | BackendError::Io { .. } => {
                skiff_core::ErrorKind::Internal
            }
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
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
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
    let json = serde_json::to_vec(process)
        .map_err(|e| BackendError::failed("skiff", "encode the exec's process", e.to_string()))?;
    std::fs::write(&path, json).map_err(io("write", &path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::{ErrorKind, HasKind};

    #[test]
    fn the_commands_fault_is_read_once_from_the_runtimes_words() {
        let missing = BackendError::failed(
            "runc",
            "create",
            "exec: \"nope\": executable file not found in $PATH".into(),
        );
        assert_eq!(missing.command(), Some(CommandError::NotFound));
        assert_eq!(missing.kind(), ErrorKind::InvalidArgument);
        let denied =
            BackendError::failed("crun", "exec", "exec: \"/etc\": Permission denied".into());
        assert_eq!(denied.command().map(CommandError::exit_code), Some(126));
        let other = BackendError::failed("runc", "create", "cgroup busy".into());
        assert_eq!((other.command(), other.kind()), (None, ErrorKind::Internal));
        // Only the ops that run the command can fail because of it.
        let delete = BackendError::failed("runc", "delete", "no such file or directory".into());
        assert_eq!(delete.command(), None);
    }
}
