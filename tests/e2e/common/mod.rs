//! Harness of the Docker-API end-to-end tests: an isolated `skiff daemon` per test (temporary
//! root, state and socket), the real `docker` CLI and raw HTTP against it, and a cleanup that
//! runs even when the test panics: containers force-removed through the API, the daemon and
//! any leftover shim or container process killed by PID, mounts under the temporary root
//! (containers' root filesystems, sandboxes' network namespaces) detached, the containers'
//! cgroups removed, and the daemon's bridges, veths and nftables table deleted (each daemon
//! has its own, see `netslot`).
//!
//! `SKIFF_E2E_REFERENCE=dockerd` points the same tests at a Docker daemon already listening on
//! `SKIFF_E2E_DOCKER_SOCKET` (default `/tmp/skiff-refdockerd.sock`), to validate the tests
//! themselves; tests that restart the daemon skip there.

#![allow(dead_code)] // each test target uses a different part of the harness

pub mod dockerd;
pub mod hostclean;
pub mod netslot;
pub mod otherhost;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The docker CLI the tests drive.
pub const DOCKER: &str = "/usr/local/bin/docker";
/// The test image every daemon gets loaded.
pub const BUSYBOX: &str = "busybox:latest";

/// Whether the tests target a reference dockerd instead of skiff.
pub fn reference() -> bool {
    std::env::var("SKIFF_E2E_REFERENCE").is_ok_and(|v| v == "dockerd")
}

/// Polls `f` until it returns `Some`, panicking with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An engine under test and everything needed to clean up after it.
pub struct Daemon {
    dir: tempfile::TempDir,
    socket: PathBuf,
    runtime: String,
    child: Option<Child>,
    /// This daemon's `--cgroup-parent`; removed with everything under it at cleanup.
    cgroup_parent: String,
    started: std::time::SystemTime,
    /// This daemon's host network objects (none against a reference dockerd); dropped after
    /// the daemon is gone, which removes what it left.
    slot: Option<netslot::NetSlot>,
    /// More `skiff daemon` flags (`--registry-mirror …`).
    extra_args: Vec<String>,
}

impl Daemon {
    /// A fresh daemon with the default (embedded) runtime and busybox loaded.
    pub fn start() -> Self {
        Self::with_runtime("embedded")
    }

    /// A fresh daemon started with more flags (`--registry-mirror URL`), busybox loaded.
    pub fn with_args(args: &[&str]) -> Self {
        Self::build("embedded", args)
    }

    /// A fresh daemon whose default runtime is `runtime`, with busybox loaded.
    pub fn with_runtime(runtime: &str) -> Self {
        Self::build(runtime, &[])
    }

    fn build(runtime: &str, extra_args: &[&str]) -> Self {
        // Short paths: shim sockets live at <state>/containers/<64 hex>/shim.sock and unix
        // socket paths must stay under 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("skiff-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let socket = if reference() {
            PathBuf::from(
                std::env::var("SKIFF_E2E_DOCKER_SOCKET")
                    .unwrap_or("/tmp/skiff-refdockerd.sock".into()),
            )
        } else {
            dir.path().join("s/skiff.sock")
        };
        std::fs::create_dir_all(dir.path().join("docker-config")).expect("docker config dir");
        let cgroup_parent = format!(
            "skiff-e2e-{}",
            dir.path()
                .file_name()
                .expect("temp dir name")
                .to_string_lossy()
        );
        let mut d = Daemon {
            dir,
            socket,
            runtime: runtime.to_owned(),
            child: None,
            cgroup_parent,
            started: std::time::SystemTime::now(),
            slot: (!reference()).then(netslot::NetSlot::claim),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        d.spawn();
        d.load_busybox();
        d
    }

    /// `DOCKER_CONFIG` of the clients this harness runs (where `docker login` stores
    /// credentials).
    pub fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker-config")
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The daemon's temporary directory (everything mounted under it is detached at cleanup).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's runtime state dir (`--state`).
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("s")
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// This daemon's network slot (its bridge, table, address pool).
    pub fn slot(&self) -> &netslot::NetSlot {
        self.slot
            .as_ref()
            .expect("a skiff daemon started by this harness (not a reference dockerd)")
    }

    /// `DOCKER_HOST` for this daemon.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn spawn(&mut self) {
        if !reference() {
            let state = self.state();
            let log =
                std::fs::File::create(self.dir.path().join("daemon.log")).expect("daemon log");
            let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
                .arg("daemon")
                .arg("--root")
                .arg(self.root())
                .arg("--state")
                .arg(&state)
                .arg("--socket")
                .arg(&self.socket)
                .arg("--runtime")
                .arg(&self.runtime)
                .arg("--cgroup-parent")
                .arg(&self.cgroup_parent)
                .args(self.slot().daemon_args())
                .args(&self.extra_args)
                .env("SKIFF_LOG", "info,skiff_docker_api=debug")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log fd"))
                .stderr(log)
                .spawn()
                .expect("start skiff daemon");
            self.child = Some(child);
        }
        eventually(
            Duration::from_secs(20),
            "the daemon to answer /_ping",
            || {
                if let Some(child) = self.child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "skiff daemon exited early ({status}):\n{}",
                            self.daemon_log()
                        );
                    }
                }
                self.http("GET", "/_ping", None)
                    .ok()
                    .filter(|r| r.status == 200)
            },
        );
    }

    /// The daemon's own log (for failure messages).
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Kills the daemon with SIGKILL (containers keep running under their shims).
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM to the daemon and waits for it to exit on its own.
    pub fn terminate_daemon(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("a daemon started by this harness");
        sigterm(child.id() as i32);
        eventually(
            Duration::from_secs(30),
            "the daemon to exit after SIGTERM",
            || child.try_wait().ok().flatten(),
        )
    }

    /// Starts the daemon again on the same directories.
    pub fn restart_daemon(&mut self) {
        self.spawn();
    }

    fn load_busybox(&self) {
        let archive = self.dir.path().join("busybox.tar");
        std::fs::write(
            &archive,
            skiff_image::testutil::busybox_docker_archive(BUSYBOX),
        )
        .expect("write busybox tar");
        let out = self.docker(&["load", "-i", archive.to_str().expect("utf-8 path")]);
        assert!(out.status.success(), "docker load failed: {}", stderr(&out));
    }

    /// A `docker` command against this daemon, not yet run.
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(DOCKER);
        cmd.args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `docker args…` to completion (at most two minutes).
    pub fn docker(&self, args: &[&str]) -> Output {
        run_with_timeout(self.docker_cmd(args), Duration::from_secs(120))
    }

    /// Runs `docker args…`, asserts success and returns trimmed stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndaemon log tail:\n{}",
            out.status,
            stdout(&out),
            stderr(&out),
            tail(&self.daemon_log(), 40)
        );
        let id = stdout(&out).trim().to_owned();
        id
    }

    /// `docker inspect -f FORMAT name`.
    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.docker_ok(&["inspect", "-f", format, name])
    }

    /// One HTTP/1.0 request on the socket (the server closes after answering).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> std::io::Result<HttpReply> {
        self.http_until(method, path, body, |_| false)
    }

    /// Like [`Daemon::http`], but stops reading a streamed body as soon as `done` accepts
    /// what has arrived (the reply is then cut there).
    pub fn http_until(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        done: impl Fn(&[u8]) -> bool,
    ) -> std::io::Result<HttpReply> {
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut head = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n");
        if let Some((content_type, bytes)) = body {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                bytes.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        if let Some((_, bytes)) = body {
            // The server may answer (413) and close before reading it all.
            let _ = stream.write_all(bytes);
        }
        let mut raw = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
            if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                if done(&raw[split + 4..]) {
                    break;
                }
            }
        }
        HttpReply::parse(&raw)
    }

    /// Ids of every container the daemon knows.
    fn all_container_ids(&self) -> Vec<String> {
        let Ok(reply) = self.http("GET", "/containers/json?all=1", None) else {
            return vec![];
        };
        let Ok(list) = serde_json::from_slice::<Vec<serde_json::Value>>(&reply.body) else {
            return vec![];
        };
        let started = self
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        list.into_iter()
            // Against a shared reference daemon only what this test created is ours.
            .filter(|c| !reference() || c["Created"].as_i64().unwrap_or(0) >= started)
            .filter_map(|c| c["Id"].as_str().map(str::to_owned))
            .collect()
    }

    fn cleanup(&mut self) {
        let ids = self.all_container_ids();
        for id in &ids {
            let _ = self.http("DELETE", &format!("/containers/{id}?force=1&v=1"), None);
        }
        if reference() {
            // The test's networks too (the reference daemon is the test run's own).
            let _ = self.http("POST", "/networks/prune", None);
            return;
        }
        self.kill_daemon();
        let tmp = self.dir.path().to_path_buf();
        hostclean::kill_processes_mentioning(&tmp);
        hostclean::unmount_under(&tmp);
        hostclean::remove_cgroups(&self.cgroup_parent);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// A parsed HTTP reply.
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    fn parse(raw: &[u8]) -> std::io::Result<Self> {
        let bad = || std::io::Error::other("malformed HTTP reply");
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(bad)?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let headers = lines
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            })
            .collect();
        Ok(Self {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `message` of a Docker error body.
    pub fn message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| {
                panic!(
                    "not a Docker error body: {}",
                    String::from_utf8_lossy(&self.body)
                )
            })
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs a command, killing it (by its PID) if it outlives `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn command");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait for command"),
        Err(_) => {
            // Not reaped yet (the waiting thread holds it), so the PID is still this child's.
            sigkill(pid as i32);
            panic!("command {cmd:?} did not finish within {timeout:?}");
        }
    }
}

/// A running command whose stdout lines arrive on a channel (`logs -f`, `events`).
pub struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Streaming {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn streaming command");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Waits for a line satisfying `pred`.
    pub fn expect_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("no matching line within {timeout:?}"),
            }
        }
    }

    /// Waits for the command to end on its own.
    pub fn wait(mut self, timeout: Duration) -> std::process::ExitStatus {
        eventually(timeout, "the streaming command to end", || {
            self.child.try_wait().ok().flatten()
        })
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sigterm(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
}

fn sigkill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}
