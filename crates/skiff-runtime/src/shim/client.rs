//! The daemon's side of the shim: launching one and talking to it over its socket.
//! INTERFACE SKELETON — the shim engineer replaces these bodies; signatures are the contract.

use std::path::{Path, PathBuf};

use tokio::net::UnixStream;

use super::{ExecRequest, ExitStatus, ShimConfig, ShimState};

/// Errors talking to a shim.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// The shim is gone (container exited and shim finished, or it was killed).
    #[error("shim for {0} is not running")]
    NotRunning(String),
    /// The shim answered with an error (e.g. the runtime refused).
    #[error("{0}")]
    Remote(String),
    #[error("shim i/o error")]
    Io(#[from] std::io::Error),
}

/// Starts a shim for `config` by running `exe shim <state_dir>/shim.json` (the shim
/// daemonizes). Returns once the container is *created* (not started) and the socket answers,
/// or with the creation error. Blocking: call it from `spawn_blocking`.
pub fn launch(exe: &Path, config: &ShimConfig) -> Result<(), ShimError> {
    let _ = (exe, config);
    unimplemented!("shim launch")
}

/// A handle on one container's shim.
#[derive(Debug, Clone)]
pub struct ShimClient {
    state_dir: PathBuf,
}

impl ShimClient {
    pub fn new(state_dir: &Path) -> Self {
        ShimClient { state_dir: state_dir.to_path_buf() }
    }
    /// Current state; `NotRunning` if the shim is gone (then see [`super::read_exit`]).
    pub async fn state(&self) -> Result<ShimState, ShimError> {
        unimplemented!("{:?}", self.state_dir)
    }
    /// Starts the created container's process; returns its host pid.
    pub async fn start(&self) -> Result<i32, ShimError> {
        unimplemented!()
    }
    pub async fn kill(&self, signal: i32, all: bool) -> Result<(), ShimError> {
        let _ = (signal, all);
        unimplemented!()
    }
    pub async fn pause(&self) -> Result<(), ShimError> {
        unimplemented!()
    }
    pub async fn resume(&self) -> Result<(), ShimError> {
        unimplemented!()
    }
    /// Resolves when the container exits (at once if it already has).
    pub async fn wait(&self) -> Result<ExitStatus, ShimError> {
        unimplemented!()
    }
    /// After the handshake the stream is raw: reads are the output (Docker's 8-byte
    /// multiplexed frames without a tty, raw bytes with one), writes go to stdin, and shutting
    /// down the write half closes stdin when `stdin_once`.
    pub async fn attach(&self, stdin: bool, stdout: bool, stderr: bool) -> Result<UnixStream, ShimError> {
        let _ = (stdin, stdout, stderr);
        unimplemented!()
    }
    /// Resizes the container's pty.
    pub async fn resize(&self, height: u16, width: u16) -> Result<(), ShimError> {
        let _ = (height, width);
        unimplemented!()
    }
    /// Starts an exec; the returned stream carries its stdio like [`Self::attach`].
    pub async fn exec(&self, request: &ExecRequest) -> Result<UnixStream, ShimError> {
        let _ = request;
        unimplemented!()
    }
    /// Resolves with the exec's exit code when it ends.
    pub async fn exec_wait(&self, exec_id: &str) -> Result<i32, ShimError> {
        let _ = exec_id;
        unimplemented!()
    }
    /// Host pid of a running exec.
    pub async fn exec_pid(&self, exec_id: &str) -> Result<i32, ShimError> {
        let _ = exec_id;
        unimplemented!()
    }
    pub async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<(), ShimError> {
        let _ = (exec_id, height, width);
        unimplemented!()
    }
}
