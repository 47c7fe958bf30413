//! The daemon's side of the shim: launching one and talking to it over its socket (one
//! connection per call, see [`super::protocol`]). Works from a multi-threaded tokio daemon;
//! it never forks a container itself.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::protocol::{Reply, Request, MAX_REQUEST};
use super::{
    exit_path, pid_path, read_exit, socket_path, ExecRequest, ExitStatus, ShimConfig, ShimState,
    SocketDir, SOCKET_NAME,
};

/// How long a shim may take to create its container before [`launch`] gives up.
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);

fn too_long() -> ShimError {
    ShimError::Io(io::Error::new(
        io::ErrorKind::InvalidData,
        "shim reply too long",
    ))
}

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

impl skiff_core::HasKind for ShimError {
    fn kind(&self) -> skiff_core::ErrorKind {
        match self {
            ShimError::NotRunning(_) => skiff_core::ErrorKind::WrongState,
            ShimError::Remote(_) | ShimError::Io(_) => skiff_core::ErrorKind::Internal,
        }
    }
}

/// Starts a shim for `config` by running `exe shim <state_dir>/shim.json` (the shim
/// daemonizes). Returns once the container is *created* (not started) and the socket answers,
/// or with the creation error. Blocking: call it from `spawn_blocking`.
pub fn launch(exe: &Path, config: &ShimConfig) -> Result<(), ShimError> {
    launch_with(exe, config, None)
}

/// [`launch`], handing the container to `spare` if one is given and still waiting.
pub fn launch_with(
    exe: &Path,
    config: &ShimConfig,
    spare: Option<super::Spare>,
) -> Result<(), ShimError> {
    let dir = &config.state_dir;
    std::fs::create_dir_all(dir)?;
    for stale in [socket_path(dir), exit_path(dir), pid_path(dir)] {
        match std::fs::remove_file(stale) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    let config_path = dir.join("shim.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec_pretty(config).map_err(io::Error::other)?,
    )?;

    let handed = spare.map(|s| s.hand(&config_path));
    let mut report = match handed {
        Some(Ok(report)) => report,
        Some(Err(e)) => {
            tracing::debug!(id = %config.id, error = %e, "the spare shim is gone; starting one");
            spawn(exe, &config_path)?
        }
        None => spawn(exe, &config_path)?,
    };
    let line = read_report(&mut report, CREATE_TIMEOUT)?;
    if line.is_empty() {
        let hint = last_log_line(&dir.join("shim.log"));
        return Err(ShimError::Remote(format!(
            "shim for {} exited before reporting{hint}",
            config.id
        )));
    }
    match serde_json::from_slice::<Reply>(&line) {
        Ok(Reply::Ok(_)) => Ok(()),
        Ok(Reply::Error(message)) => Err(ShimError::Remote(message)),
        Err(e) => Err(ShimError::Remote(format!(
            "shim for {} sent a garbled report: {e}",
            config.id
        ))),
    }
}

/// Runs `exe shim <config_path>`; returns the pipe it reports on.
fn spawn(exe: &Path, config_path: &Path) -> Result<std::io::PipeReader, ShimError> {
    let (report, writer) = std::io::pipe()?;
    let mut child = {
        // The command holds our copy of the pipe's write end: drop it once spawned, so the
        // report read ends when the shim closes its copy.
        let mut command = Command::new(exe);
        command
            .arg("shim")
            .arg(config_path)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::null());
        command.spawn()?
    };
    // The launched process forks the real shim and exits at once.
    child.wait()?;
    Ok(report)
}

/// Reads the shim's report line (empty if it exits without one), waiting at most `timeout`.
fn read_report(pipe: &mut std::io::PipeReader, timeout: Duration) -> Result<Vec<u8>, ShimError> {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ShimError::Remote(format!(
                "shim did not report within {}s",
                timeout.as_secs()
            )));
        }
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(io::Error::from(e).into()),
        }
        match pipe.read(&mut buf) {
            Ok(0) => return Ok(line),
            Ok(n) => {
                line.extend_from_slice(&buf[..n]);
                if let Some(end) = line.iter().position(|&b| b == b'\n') {
                    line.truncate(end);
                    return Ok(line);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The last line of the shim's own log, as `: <line>`, to explain a failed launch.
fn last_log_line(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => format!(": {}", line.trim()),
        None => String::new(),
    }
}

/// A handle on one container's shim.
#[derive(Debug, Clone)]
pub struct ShimClient {
    state_dir: PathBuf,
}

impl ShimClient {
    pub fn new(state_dir: &Path) -> Self {
        ShimClient {
            state_dir: state_dir.to_path_buf(),
        }
    }

    fn not_running(&self) -> ShimError {
        let name = self
            .state_dir
            .file_name()
            .unwrap_or(self.state_dir.as_os_str());
        ShimError::NotRunning(name.to_string_lossy().into_owned())
    }

    /// Maps the errors of a vanished shim to [`ShimError::NotRunning`].
    fn io_error(&self, e: io::Error) -> ShimError {
        match e.kind() {
            io::ErrorKind::NotFound
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => self.not_running(),
            _ => ShimError::Io(e),
        }
    }

    /// Sends one request and reads its reply line; the connection stays usable for streams.
    async fn call(&self, request: &Request) -> Result<(UnixStream, serde_json::Value), ShimError> {
        let mut stream = self.send(request).await?;
        // Byte by byte: whatever follows the reply line belongs to the caller's stream.
        let mut reply = Vec::new();
        loop {
            let byte = stream.read_u8().await.map_err(|e| self.io_error(e))?;
            if byte == b'\n' {
                break;
            }
            if reply.len() > MAX_REQUEST {
                return Err(too_long());
            }
            reply.push(byte);
        }
        Ok((stream, self.parse(&reply)?))
    }

    /// Connects and sends one request line.
    async fn send(&self, request: &Request) -> Result<UnixStream, ShimError> {
        // Through the open directory: the state dir's own path may be too long for a socket.
        let dir = SocketDir::open(&self.state_dir).map_err(|e| self.io_error(e))?;
        let mut stream = UnixStream::connect(dir.path(SOCKET_NAME))
            .await
            .map_err(|e| self.io_error(e))?;
        drop(dir);
        let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
        line.push(b'\n');
        stream
            .write_all(&line)
            .await
            .map_err(|e| self.io_error(e))?;
        Ok(stream)
    }

    fn parse(&self, reply: &[u8]) -> Result<serde_json::Value, ShimError> {
        match serde_json::from_slice::<Reply>(reply) {
            Ok(Reply::Ok(value)) => Ok(value),
            Ok(Reply::Error(message)) => Err(ShimError::Remote(message)),
            Err(e) => Err(ShimError::Io(io::Error::new(io::ErrorKind::InvalidData, e))),
        }
    }

    /// A request whose reply is the last thing on its connection: read in chunks, up to the
    /// end of the line (not to the end of the connection, which the shim may close later).
    async fn value<T: DeserializeOwned>(&self, request: &Request) -> Result<T, ShimError> {
        let mut stream = self.send(request).await?;
        let mut reply = Vec::with_capacity(256);
        let end = loop {
            let from = reply.len();
            if stream
                .read_buf(&mut reply)
                .await
                .map_err(|e| self.io_error(e))?
                == 0
            {
                return Err(self.io_error(io::ErrorKind::UnexpectedEof.into()));
            }
            if let Some(i) = reply[from..].iter().position(|&b| b == b'\n') {
                break from + i;
            }
            if reply.len() > MAX_REQUEST {
                return Err(too_long());
            }
        };
        serde_json::from_value(self.parse(&reply[..end])?)
            .map_err(|e| ShimError::Io(io::Error::new(io::ErrorKind::InvalidData, e)))
    }

    /// Returns once no earlier shim holds the state dir, so that a new one can be launched
    /// there. A shim answers its container's exit first and deletes the container from the
    /// runtime after (same id, same runtime root: a new create must wait), then removes its
    /// socket; a request it serves after the exit is served after that delete. So: no socket
    /// means released, and so does any answer, or the connection closing, after the exit.
    pub async fn wait_released(&self, timeout: Duration) -> Result<(), ShimError> {
        match tokio::time::timeout(timeout, self.state()).await {
            Ok(Ok(state)) if state.exit.is_none() => Err(ShimError::Remote(format!(
                "a shim still runs a container (pid {}) in {}",
                state.pid,
                self.state_dir.display()
            ))),
            Ok(_) => Ok(()),
            Err(_) => Err(ShimError::Remote(format!(
                "the previous shim in {} did not finish within {}s",
                self.state_dir.display(),
                timeout.as_secs()
            ))),
        }
    }

    /// Current state; `NotRunning` if the shim is gone (then see [`super::read_exit`]).
    pub async fn state(&self) -> Result<ShimState, ShimError> {
        self.value(&Request::State).await
    }

    /// Starts the created container's process; returns its host pid.
    pub async fn start(&self) -> Result<i32, ShimError> {
        self.value(&Request::Start).await
    }

    pub async fn kill(&self, signal: i32, all: bool) -> Result<(), ShimError> {
        self.value(&Request::Kill { signal, all }).await
    }

    pub async fn pause(&self) -> Result<(), ShimError> {
        self.value(&Request::Pause).await
    }

    pub async fn resume(&self) -> Result<(), ShimError> {
        self.value(&Request::Resume).await
    }

    /// Resolves when the container exits (at once if it already has). A shim that is gone
    /// answers from its `exit.json`.
    pub async fn wait(&self) -> Result<ExitStatus, ShimError> {
        match self.value(&Request::Wait).await {
            Err(ShimError::NotRunning(id)) => {
                read_exit(&self.state_dir).ok_or(ShimError::NotRunning(id))
            }
            other => other,
        }
    }

    /// After the handshake the stream is raw: reads are the output (Docker's 8-byte
    /// multiplexed frames without a tty, raw bytes with one), writes go to stdin, and shutting
    /// down the write half closes stdin when `stdin_once`.
    pub async fn attach(
        &self,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<UnixStream, ShimError> {
        Ok(self
            .call(&Request::Attach {
                stdin,
                stdout,
                stderr,
                start: false,
            })
            .await?
            .0)
    }

    /// [`Self::attach`], then [`Self::start`] in the same round trip: the stream is attached
    /// before the process starts. Returns the stream and the process's host pid.
    pub async fn attach_and_start(
        &self,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<(UnixStream, i32), ShimError> {
        let (stream, pid) = self
            .call(&Request::Attach {
                stdin,
                stdout,
                stderr,
                start: true,
            })
            .await?;
        let pid = serde_json::from_value(pid)
            .map_err(|e| ShimError::Io(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        Ok((stream, pid))
    }

    /// Resizes the container's pty.
    pub async fn resize(&self, height: u16, width: u16) -> Result<(), ShimError> {
        self.value(&Request::Resize { height, width }).await
    }

    /// Starts an exec; the returned stream carries its stdio like [`Self::attach`] (shutting
    /// down the write half always closes the exec's stdin).
    pub async fn exec(&self, request: &ExecRequest) -> Result<UnixStream, ShimError> {
        Ok(self
            .call(&Request::Exec(Box::new(request.clone())))
            .await?
            .0)
    }

    /// Resolves with the exec's exit code when it ends.
    pub async fn exec_wait(&self, exec_id: &str) -> Result<i32, ShimError> {
        self.value(&Request::ExecWait {
            exec_id: exec_id.to_string(),
        })
        .await
    }

    /// Host pid of a running exec.
    pub async fn exec_pid(&self, exec_id: &str) -> Result<i32, ShimError> {
        self.value(&Request::ExecPid {
            exec_id: exec_id.to_string(),
        })
        .await
    }

    pub async fn exec_resize(
        &self,
        exec_id: &str,
        height: u16,
        width: u16,
    ) -> Result<(), ShimError> {
        self.value(&Request::ExecResize {
            exec_id: exec_id.to_string(),
            height,
            width,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(state_dir: &Path) -> ShimConfig {
        ShimConfig {
            id: "c1".into(),
            bundle: state_dir.join("bundle"),
            state_dir: state_dir.to_path_buf(),
            runtime: "runc".into(),
            runtime_root: state_dir.join("runtime"),
            log_path: None,
            log_max_size: None,
            log_max_files: 1,
            tty: false,
            open_stdin: false,
            stdin_once: false,
            cgroups_path: None,
        }
    }

    #[tokio::test]
    async fn missing_or_dead_socket_means_not_running() {
        let dir = tempfile::Builder::new()
            .prefix("skiff-client")
            .tempdir()
            .unwrap();
        let client = ShimClient::new(dir.path());
        assert!(matches!(
            client.state().await,
            Err(ShimError::NotRunning(_))
        ));
        // A shim that was SIGKILLed leaves its socket file behind.
        drop(std::os::unix::net::UnixListener::bind(socket_path(dir.path())).unwrap());
        assert!(matches!(
            client.kill(9, false).await,
            Err(ShimError::NotRunning(_))
        ));
    }

    #[tokio::test]
    async fn wait_on_a_finished_shim_reads_exit_json() {
        let dir = tempfile::Builder::new()
            .prefix("skiff-client")
            .tempdir()
            .unwrap();
        let exit = ExitStatus {
            exit_code: 3,
            oom_killed: false,
            finished_at: "2026-01-01T00:00:00Z".into(),
            error: None,
        };
        super::super::write_exit(dir.path(), &exit).unwrap();
        assert_eq!(ShimClient::new(dir.path()).wait().await.unwrap(), exit);
    }

    #[test]
    fn client_futures_can_be_spawned() {
        fn spawnable<T: Send + 'static>(_: &T) {}
        let client = ShimClient::new(Path::new("/nonexistent"));
        spawnable(&async move { client.wait().await });
    }

    #[test]
    fn launch_of_a_shim_that_never_reports_fails_clearly() {
        let dir = tempfile::Builder::new()
            .prefix("skiff-client")
            .tempdir()
            .unwrap();
        let err = launch(Path::new("/bin/true"), &config(dir.path())).unwrap_err();
        let ShimError::Remote(message) = err else {
            panic!("{err:?}")
        };
        assert!(message.contains("exited before reporting"), "{message}");
        assert!(
            dir.path().join("shim.json").exists(),
            "the config is written for the shim"
        );
    }
}
