//! The per-container shim (DESIGN.md "Engine data path", step 3).
//!
//! `skiff shim <state_dir>/shim.json` is the same binary re-executed, one process per
//! container, single-threaded. It daemonizes, becomes a child subreaper, creates the container
//! through a [`crate::backend::Backend`], holds its stdio (pty for `-t`), writes its logs in
//! Docker's json-file format, serves attach/exec/kill/… on `<state_dir>/shim.sock`, reaps the
//! container and records its exit in `<state_dir>/exit.json`. Shims outlive the daemon, which
//! re-adopts them through [`ShimClient`] when it starts again.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

/// Everything a shim needs; [`launch`] writes it to `<state_dir>/shim.json`. Paths must be
/// absolute: the shim runs with `/` as its working directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    pub id: String,
    /// OCI bundle: `config.json` and `rootfs` (already mounted by the engine).
    pub bundle: PathBuf,
    /// Where `shim.sock`, `shim.pid` and `exit.json` live.
    pub state_dir: PathBuf,
    /// `embedded`, `runc` or `crun`.
    pub runtime: String,
    /// The runtime's own state root (e.g. `/run/skiff/runtime/runc`).
    pub runtime_root: PathBuf,
    /// json-file log destination; None when logging is disabled.
    pub log_path: Option<PathBuf>,
    /// Rotate the log when it exceeds this many bytes (`--log-opt max-size`).
    pub log_max_size: Option<u64>,
    /// Keep at most this many log files, including the current one (`--log-opt max-file`).
    pub log_max_files: u32,
    /// Allocate a pseudo-terminal (`-t`).
    pub tty: bool,
    /// Keep stdin open (`-i`).
    pub open_stdin: bool,
    /// Close the container's stdin when the first attached client detaches its stdin.
    pub stdin_once: bool,
    /// The container's cgroup (the bundle's `linux.cgroupsPath`), where the shim reads
    /// whether it was OOM-killed; read from the bundle when absent.
    #[serde(default)]
    pub cgroups_path: Option<String>,
    /// Host directories that are mounts of their own holding other containers' mounts
    /// (a node's pod sandboxes): the shim leaves them out of its mount namespace except
    /// for what its container's spec names (see the shim's `hubs` module).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_hubs: Vec<PathBuf>,
}

/// How a container ended, as recorded in `exit.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    pub exit_code: i32,
    pub oom_killed: bool,
    /// RFC 3339 with nanoseconds.
    pub finished_at: String,
    /// Set when the container could not be started or waited for.
    pub error: Option<String>,
}

/// Lifecycle state reported by a shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

/// Answer to a state request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimState {
    pub status: Status,
    /// Host pid of the container's init (0 before create).
    pub pid: i32,
    pub exit: Option<ExitStatus>,
}

/// A process to run in a running container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRequest {
    pub exec_id: String,
    pub process: oci_spec::runtime::Process,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
}

/// The control socket's file name inside a state dir.
const SOCKET_NAME: &str = "shim.sock";

/// The control socket inside a state dir. Its length is not bounded: bind and connect go
/// through [`SocketDir`] instead.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// A directory held open (`O_PATH`) so that a unix socket in it can be bound or connected to
/// through `/proc/<pid>/fd/<fd>/<name>`: `sun_path` holds only 108 bytes, the directory's
/// own path may be longer. Needs no chdir, so it is safe in a multi-threaded process.
pub(crate) struct SocketDir {
    fd: OwnedFd,
}

impl SocketDir {
    pub(crate) fn open(dir: &Path) -> std::io::Result<SocketDir> {
        let fd = nix::fcntl::open(
            dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        Ok(SocketDir { fd })
    }

    /// `name` in the directory, as this process may name it.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}/{name}", self.fd.as_raw_fd()))
    }

    /// `name` in the directory, as other processes (an OCI runtime) may name it while this
    /// process keeps the directory open.
    pub(crate) fn path_for_others(&self, name: &str) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}/{name}",
            std::process::id(),
            self.fd.as_raw_fd()
        ))
    }
}

/// The exit record inside a state dir.
pub fn exit_path(state_dir: &Path) -> PathBuf {
    state_dir.join("exit.json")
}

/// The shim's pid file inside a state dir.
pub fn pid_path(state_dir: &Path) -> PathBuf {
    state_dir.join("shim.pid")
}

/// The exit record of a container whose shim is gone, if it wrote one.
pub fn read_exit(state_dir: &Path) -> Option<ExitStatus> {
    let bytes = std::fs::read(exit_path(state_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes the exit record atomically (temporary file, then rename), so readers never see
/// half of it. Not synced to disk: the record is runtime state (under `/run`), read by a
/// daemon that restarts on the same boot; the page cache outlives any process crash, and a
/// host crash ends the container anyway.
fn write_exit(state_dir: &Path, exit: &ExitStatus) -> std::io::Result<()> {
    let tmp = state_dir.join("exit.json.tmp");
    let bytes = serde_json::to_vec(exit).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, exit_path(state_dir))
}

/// A runtime backend's error as it crosses the socket: kind, causes and the command's fault.
fn backend_error(e: &crate::backend::BackendError) -> RemoteError {
    RemoteError {
        kind: skiff_core::HasKind::kind(e),
        message: error_chain(e),
        command: e.command(),
    }
}

/// An error and its causes on one line, for messages that cross the socket.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

mod client;
mod conn;
mod event_loop;
mod hubs;
mod logfile;
mod process;
mod protocol;
mod server;
mod spare;
mod stdio;

pub use client::{launch, launch_with, ShimClient, ShimError};
pub use hubs::make_hub as make_mount_hub;
pub use process::{trim_executable_pages, ShimLog};
pub use protocol::RemoteError;
pub use server::{run, run_spare, RunError};
pub use spare::Spare;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_record_round_trips() {
        let dir = tempfile::Builder::new()
            .prefix("skiff-shim")
            .tempdir()
            .unwrap();
        assert_eq!(read_exit(dir.path()), None);
        let exit = ExitStatus {
            exit_code: 137,
            oom_killed: true,
            finished_at: "2026-01-01T00:00:00.000000001Z".into(),
            error: None,
        };
        write_exit(dir.path(), &exit).unwrap();
        assert_eq!(read_exit(dir.path()), Some(exit));
        assert!(!dir.path().join("exit.json.tmp").exists());
    }

    #[test]
    fn socket_dir_names_sockets_in_dirs_longer_than_sun_len() {
        let dir = tempfile::Builder::new()
            .prefix("skiff-shim")
            .tempdir()
            .unwrap();
        let long = dir.path().join("d".repeat(120));
        std::fs::create_dir(&long).unwrap();
        let sockets = SocketDir::open(&long).unwrap();
        let path = sockets.path("a.sock");
        assert!(path.as_os_str().len() < 108, "{path:?}");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(long.join("a.sock").exists(), "bound in the long dir itself");
        std::os::unix::net::UnixStream::connect(sockets.path_for_others("a.sock")).unwrap();
        listener.accept().unwrap();
    }

    #[test]
    fn error_chain_joins_causes() {
        let inner = std::io::Error::other("disk on fire");
        let outer = RunError::Setup {
            what: "cannot open the log",
            source: inner,
        };
        assert_eq!(error_chain(&outer), "cannot open the log: disk on fire");
    }
}
