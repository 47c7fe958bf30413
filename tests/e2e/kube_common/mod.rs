//! Harness of the Kubernetes end-to-end tests: starts `skiff server` (the freshly built
//! binary) on a temporary data directory and a free loopback port, on SQLite or on a private
//! etcd, and runs real clients against it. Every process started here is killed by PID when
//! its guard drops, also when a test fails.

#![allow(dead_code)] // each test target uses a different part of the harness

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The datastore a cluster runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datastore {
    Sqlite,
    Etcd,
}

pub use skiff_core::testing::free_port;

/// Polls `f` until it returns Some or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed (by its PID) and reaped on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private etcd 3.4 (Debian's) on random loopback ports in a temporary directory.
pub struct Etcd {
    _proc: Guard,
    pub dir: tempfile::TempDir,
    pub endpoint: String,
}

impl Etcd {
    /// Starts etcd; a start that dies (a port picked by `free_port` taken by another test in the
    /// meantime) is retried on new ports.
    pub fn start() -> Etcd {
        let mut last_log = String::new();
        for _ in 0..3 {
            match Etcd::try_start() {
                Ok(etcd) => return etcd,
                Err(log) => last_log = log,
            }
        }
        panic!("etcd did not become ready; its log:\n{last_log}");
    }

    fn try_start() -> Result<Etcd, String> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-etcd")
            .tempdir()
            .unwrap();
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log_path = dir.path().join("etcd.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new("/usr/bin/etcd")
            .arg("--name=skiff")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=skiff={peer_url}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start /usr/bin/etcd");
        let mut guard = Guard(child);
        // Ready, or exited (then retried); a slow start on a loaded machine gets a minute.
        let outcome = poll(Duration::from_secs(60), || {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if log.contains("ready to serve client requests") {
                Some(true)
            } else {
                matches!(guard.0.try_wait(), Ok(Some(_))).then_some(false)
            }
        });
        if outcome != Some(true) {
            return Err(std::fs::read_to_string(&log_path).unwrap_or_default());
        }
        Ok(Etcd {
            _proc: guard,
            dir,
            endpoint: format!("127.0.0.1:{client}"),
        })
    }
}

/// A running `skiff server` and what a client needs to reach it.
pub struct Cluster {
    server: Option<Guard>,
    pub datastore: Datastore,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub etcd: Option<Etcd>,
    /// Extra `skiff server` arguments this cluster was started with.
    pub server_args: Vec<String>,
    /// Whether `skiff server` runs its local node (otherwise `--disable-agent`).
    pub local_node: bool,
}

impl Cluster {
    pub fn start(datastore: Datastore) -> Cluster {
        Cluster::start_with(datastore, &[])
    }

    /// Starts a cluster whose `skiff server` gets `server_args` too.
    pub fn start_with(datastore: Datastore, server_args: &[&str]) -> Cluster {
        Cluster::start_full(datastore, server_args, false)
    }

    /// Starts a cluster whose `skiff server` runs its local node (agent and engine) with
    /// `server_args`; the caller cleans up what the node leaves on the host.
    pub fn start_with_node(server_args: &[&str]) -> Cluster {
        Cluster::start_full(Datastore::Sqlite, server_args, true)
    }

    fn start_full(datastore: Datastore, server_args: &[&str], local_node: bool) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("skiff-kube")
            .tempdir()
            .unwrap();
        let etcd = (datastore == Datastore::Etcd).then(Etcd::start);
        let mut c = Cluster {
            server: None,
            datastore,
            dir,
            port: free_port(),
            etcd,
            server_args: server_args.iter().map(|a| a.to_string()).collect(),
            local_node,
        };
        c.boot();
        c
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("server")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("kubeconfig.yaml")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn datastore_arg(&self) -> String {
        match &self.etcd {
            Some(e) => format!("etcd://{}", e.endpoint),
            None => "sqlite".into(),
        }
    }

    /// `skiff server` on this cluster's data directory and `port` (not waited for).
    pub fn server_command(&self, port: u16) -> Command {
        self.server_command_in(&self.data_dir(), port)
    }

    /// `skiff server` on this cluster's datastore with its own `data_dir` (a second server).
    pub fn server_command_in(&self, data_dir: &Path, port: u16) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
        cmd.arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--datastore")
            .arg(self.datastore_arg())
            .args(&self.server_args);
        if !self.local_node {
            cmd.arg("--disable-agent");
        }
        cmd
    }

    fn boot(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let child = self
            .server_command(self.port)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start skiff server");
        self.server = Some(Guard(child));
        let ready = poll(Duration::from_secs(30), || {
            if let Some(Ok(Some(status))) = self.server.as_mut().map(|g| g.0.try_wait()) {
                panic!("skiff server exited with {status}: {}", self.log());
            }
            let out = self.kubectl(&["get", "--raw", "/readyz"]);
            (out.status.success() && String::from_utf8_lossy(&out.stdout) == "ok").then_some(())
        });
        assert!(
            ready.is_some(),
            "skiff server did not become ready: {}",
            self.log()
        );
    }

    /// The server's process id, while it runs.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(|g| g.0.id())
    }

    /// Stops the server with SIGKILL (not started again).
    pub fn kill_server(&mut self) {
        self.server = None;
    }

    /// Starts the server again after [`Cluster::kill_server`] or after it exited.
    pub fn start_server(&mut self) {
        self.server = None;
        self.boot();
    }

    /// Waits (at most `timeout`) for the server to exit on its own, e.g. after SIGTERM.
    pub fn wait_server_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let guard = self.server.as_mut()?;
        let status = poll(timeout, || guard.0.try_wait().ok().flatten());
        if status.is_some() {
            self.server = None;
        }
        status
    }

    /// Stops the server (SIGKILL) and starts it again on the same data.
    pub fn restart(&mut self) {
        self.server = None;
        self.boot();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env_remove("KUBE_EDITOR")
            .current_dir(self.dir.path());
        cmd
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_command(args).output().expect("run kubectl")
    }

    /// Runs kubectl and returns its stdout, failing the test when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs kubectl, expects it to succeed and to print `want`; returns its stdout.
    pub fn kubectl_says(&self, args: &[&str], want: &str) -> String {
        let out = self.kubectl_ok(args);
        assert!(
            out.contains(want),
            "kubectl {args:?}: missing {want:?} in {out}"
        );
        out
    }

    /// Runs kubectl (success or not) and returns its stderr.
    pub fn kubectl_stderr(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.kubectl(args).stderr).into_owned()
    }

    /// One field of one object: `kubectl -n NS get RESOURCE NAME -o jsonpath=PATH`.
    pub fn jsonpath(&self, ns: &str, resource: &str, name: &str, path: &str) -> String {
        let output = format!("jsonpath={path}");
        self.kubectl_ok(&["-n", ns, "get", resource, name, "-o", &output])
    }

    /// Writes `content` to a file in the cluster's temp dir and returns its path.
    pub fn write_file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Directory holding the datastore's files (SQLite database or etcd data dir).
    pub fn datastore_files(&self) -> PathBuf {
        match &self.etcd {
            Some(e) => e.dir.path().join("data"),
            None => self.data_dir(),
        }
    }
}

/// Whether any file under `dir` contains `needle`.
pub fn any_file_contains(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            return any_file_contains(&p, needle);
        }
        let mut data = Vec::new();
        std::fs::File::open(&p)
            .and_then(|mut f| f.read_to_end(&mut data))
            .is_ok()
            && data.windows(needle.len()).any(|w| w == needle)
    })
}

/// Runs the named suite function once on SQLite and once on etcd.
#[macro_export]
macro_rules! on_both_datastores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;
                #[test]
                fn sqlite() {
                    super::$name(&mut Cluster::start(Datastore::Sqlite));
                }
                #[test]
                fn etcd() {
                    super::$name(&mut Cluster::start(Datastore::Etcd));
                }
            }
        )*
    };
}
