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

use super::protocol::{RemoteError, Reply, Request, MAX_REQUEST};
use super::{
    exit_path, pid_path, read_exit, socket_path, ExecRequest, ExitStatus, ShimConfig, ShimState,
    SocketDir, SOCKET_NAME,
};

/// How long a shim may take to create its container before [`launch`] gives up.
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);

/// Errors talking to a shim.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// The shim is gone (container exited and shim finished, or it was killed).
    #[error("shim for {0} is not running")]
    NotRunning(String),
    /// The shim answered with an error (e.g. the runtime refused), kind included.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("{op} {}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("garbled reply from the shim in {}", .dir.display())]
    Garbled {
        dir: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("reply from the shim in {} is longer than {MAX_REQUEST} bytes", .dir.display())]
    TooLong { dir: PathBuf },
    #[error("shim for {id} exited before reporting{hint}")]
    ExitedEarly { id: String, hint: String },
    #[error("shim for {id} did not report within {}s", .timeout.as_secs())]
    LaunchTimeout { id: String, timeout: Duration },
    #[error("a shim still runs a container (pid {pid}) in {}", .dir.display())]
    Busy { pid: i32, dir: PathBuf },
    #[error("the previous shim in {} did not finish within {}s", .dir.display(), .timeout.as_secs())]
    ReleaseTimeout { dir: PathBuf, timeout: Duration },
}

impl skiff_core::HasKind for ShimError {
    fn kind(&self) -> skiff_core::ErrorKind {
        use skiff_core::ErrorKind;
        match self {
            ShimError::NotRunning(_) => ErrorKind::WrongState,
            ShimError::Remote(e) => e.kind,
            ShimError::Busy { .. } => ErrorKind::Conflict,
            ShimError::Io { .. }
            | ShimError::Garbled { .. }
            | ShimError::TooLong { .. }
            | ShimError::ExitedEarly { .. }
            | ShimError::LaunchTimeout { .. }
            | ShimError::ReleaseTimeout { .. } => ErrorKind::Internal,
        }
    }
}

/// Attaches the operation and its path to I/O results.
fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ShimError {
    let path = path.to_path_buf();
    move |source| ShimError::Io { op, path, source }
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
    std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    for stale in [socket_path(dir), exit_path(dir), pid_path(dir)] {
        match std::fs::remove_file(&stale) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("remove", &stale)(e));
            }
            _ => {}
        }
    }
    let config_path = dir.join("shim.json");
    let json = serde_json::to_vec_pretty(config).map_err(io::Error::other);
    json.and_then(|json| std::fs::write(&config_path, json))
        .map_err(io_err("write", &config_path))?;

    let handed = spare.map(|s| s.hand(&config_path));
    let mut report = match handed {
        Some(Ok(report)) => report,
        Some(Err(e)) => {
            tracing::debug!(id = %config.id, error = %e, "the spare shim is gone; starting one");
            spawn(exe, &config_path)?
        }
        None => spawn(exe, &config_path)?,
    };
    let line = read_report(&mut report, config, CREATE_TIMEOUT)?;
    if line.is_empty() {
        return Err(ShimError::ExitedEarly {
            id: config.id.clone(),
            hint: last_log_line(&dir.join("shim.log")),
        });
    }
    match serde_json::from_slice::<Reply>(&line) {
        Ok(Reply::Ok(_)) => Ok(()),
        Ok(Reply::Error(e)) => Err(ShimError::Remote(e)),
        Err(source) => Err(ShimError::Garbled {
            dir: dir.clone(),
            source,
        }),
    }
}

/// Runs `exe shim <config_path>`; returns the pipe it reports on.
fn spawn(exe: &Path, config_path: &Path) -> Result<std::io::PipeReader, ShimError> {
    let (report, writer) =
        std::io::pipe().map_err(io_err("create a report pipe for", config_path))?;
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
        command.spawn().map_err(io_err("run", exe))?
    };
    // The launched process forks the real shim and exits at once.
    child.wait().map_err(io_err("wait for", exe))?;
    Ok(report)
}

/// Reads the shim's report line (empty if it exits without one), waiting at most `timeout`.
fn read_report(
    pipe: &mut std::io::PipeReader,
    config: &ShimConfig,
    timeout: Duration,
) -> Result<Vec<u8>, ShimError> {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    let pipe_err = |e: io::Error| ShimError::Io {
        op: "read the launch report of the shim in",
        path: config.state_dir.clone(),
        source: e,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ShimError::LaunchTimeout {
                id: config.id.clone(),
                timeout,
            });
        }
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(pipe_err(e.into())),
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
            Err(e) => return Err(pipe_err(e)),
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

    /// Maps the errors of a vanished shim to [`ShimError::NotRunning`]; others keep `op` and
    /// the socket's path.
    fn io_error(&self, op: &'static str, e: io::Error) -> ShimError {
        match e.kind() {
            io::ErrorKind::NotFound
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => self.not_running(),
            _ => io_err(op, &socket_path(&self.state_dir))(e),
        }
    }

    fn garbled(&self, source: serde_json::Error) -> ShimError {
        ShimError::Garbled {
            dir: self.state_dir.clone(),
            source,
        }
    }

    /// Sends one request and reads its reply line; the connection stays usable for streams.
    async fn call(&self, request: &Request) -> Result<(UnixStream, serde_json::Value), ShimError> {
        let mut stream = self.send(request).await?;
        // Byte by byte: whatever follows the reply line belongs to the caller's stream.
        let mut reply = Vec::new();
        loop {
            let byte = stream
                .read_u8()
                .await
                .map_err(|e| self.io_error("read the reply on", e))?;
            if byte == b'\n' {
                break;
            }
            if reply.len() > MAX_REQUEST {
                return Err(ShimError::TooLong {
                    dir: self.state_dir.clone(),
                });
            }
            reply.push(byte);
        }
        Ok((stream, self.parse(&reply)?))
    }

    /// Connects and sends one request line.
    async fn send(&self, request: &Request) -> Result<UnixStream, ShimError> {
        // Through the open directory: the state dir's own path may be too long for a socket.
        let dir = SocketDir::open(&self.state_dir).map_err(|e| self.io_error("open", e))?;
        let mut stream = UnixStream::connect(dir.path(SOCKET_NAME))
            .await
            .map_err(|e| self.io_error("connect to", e))?;
        drop(dir);
        let mut line = serde_json::to_vec(request).map_err(|e| self.garbled(e))?;
        line.push(b'\n');
        stream
            .write_all(&line)
            .await
            .map_err(|e| self.io_error("send a request on", e))?;
        Ok(stream)
    }

    fn parse(&self, reply: &[u8]) -> Result<serde_json::Value, ShimError> {
        match serde_json::from_slice::<Reply>(reply) {
            Ok(Reply::Ok(value)) => Ok(value),
            Ok(Reply::Error(e)) => Err(ShimError::Remote(e)),
            Err(e) => Err(self.garbled(e)),
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
                .map_err(|e| self.io_error("read the reply on", e))?
                == 0
            {
                return Err(self.not_running());
            }
            if let Some(i) = reply[from..].iter().position(|&b| b == b'\n') {
                break from + i;
            }
            if reply.len() > MAX_REQUEST {
                return Err(ShimError::TooLong {
                    dir: self.state_dir.clone(),
                });
            }
        };
        serde_json::from_value(self.parse(&reply[..end])?).map_err(|e| self.garbled(e))
    }

    /// Returns once no earlier shim holds the state dir, so that a new one can be launched
    /// there. A shim answers its container's exit first and deletes the container from the
    /// runtime after (same id, same runtime root: a new create must wait), then removes its
    /// socket; a request it serves after the exit is served after that delete. So: no socket
    /// means released, and so does any answer, or the connection closing, after the exit.
    pub async fn wait_released(&self, timeout: Duration) -> Result<(), ShimError> {
        match tokio::time::timeout(timeout, self.state()).await {
            Ok(Ok(state)) if state.exit.is_none() => Err(ShimError::Busy {
                pid: state.pid,
                dir: self.state_dir.clone(),
            }),
            Ok(_) => Ok(()),
            Err(_) => Err(ShimError::ReleaseTimeout {
                dir: self.state_dir.clone(),
                timeout,
            }),
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
        let pid = serde_json::from_value(pid).map_err(|e| self.garbled(e))?;
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
            mount_hubs: Vec::new(),
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
        assert!(matches!(err, ShimError::ExitedEarly { .. }), "{err:?}");
        assert_eq!(err.to_string(), "shim for c1 exited before reporting");
        assert!(
            dir.path().join("shim.json").exists(),
            "the config is written for the shim"
        );
    }
}
