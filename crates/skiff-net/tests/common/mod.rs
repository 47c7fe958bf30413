//! Test hosts: every test runs in network namespaces it creates (`skiff-t…`), removed on drop
//! even when the test panics. Connectivity is checked with real sockets made by threads that
//! enter a namespace.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use skiff_net::{netns, Net, NetConfig, NetnsRef};

/// A namespace file under a temporary directory, removed on drop.
pub struct Ns {
    pub path: PathBuf,
}

impl Ns {
    pub fn new(dir: &Path, name: &str) -> Ns {
        let path = dir.join(name);
        netns::create(&path, || Ok(())).expect("create test namespace");
        let ns = Ns { path };
        ns.sh(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn ns(&self) -> NetnsRef {
        NetnsRef::path(&self.path)
    }

    /// Runs a test tool (iproute2, nft) inside the namespace; panics on failure.
    pub fn sh(&self, args: &[&str]) -> String {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.path.display()))
            .args(args)
            .output()
            .expect("run nsenter");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn try_sh(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.path.display()))
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = netns::remove(&self.path);
    }
}

/// A "host" namespace with a skiff-net of its own, plus an optional "client host" joined to it.
pub struct TestHost {
    // Fields drop in order: the host namespace is unmounted before its
    // directory is removed (a mounted namespace file made the removal fail
    // and left /tmp/skiff-net-test-* behind).
    pub host: Ns,
    pub table: String,
    pub dir: tempfile::TempDir,
}

impl TestHost {
    pub fn new() -> TestHost {
        let dir = tempfile::Builder::new()
            .prefix("skiff-net-test-")
            .tempdir()
            .expect("tempdir");
        let host = Ns::new(dir.path(), "skiff-t-host");
        let table = format!("skiff-test-{}", std::process::id());
        TestHost { host, table, dir }
    }

    pub fn config(&self) -> NetConfig {
        config_at(self.dir.path(), &self.table)
    }

    pub async fn net(&self) -> Net {
        Net::open(self.config()).await.expect("open net")
    }

    /// A second namespace ("another machine") linked to the host by a veth pair:
    /// host 10.99.0.1/24, client 10.99.0.2/24 with a default route through the host.
    pub fn client(&self) -> Ns {
        let client = Ns::new(self.dir.path(), "skiff-t-client");
        self.host.sh(&[
            "ip",
            "link",
            "add",
            "skiff-t-up",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            client.path.to_str().unwrap(),
        ]);
        self.host
            .sh(&["ip", "addr", "add", "10.99.0.1/24", "dev", "skiff-t-up"]);
        self.host.sh(&["ip", "link", "set", "skiff-t-up", "up"]);
        client.sh(&["ip", "addr", "add", "10.99.0.2/24", "dev", "eth0"]);
        client.sh(&["ip", "link", "set", "eth0", "up"]);
        client.sh(&["ip", "route", "add", "default", "via", "10.99.0.1"]);
        client
    }

    /// nftables table as `nft list` prints it ("" when absent).
    pub fn ruleset(&self) -> String {
        self.host
            .try_sh(&["nft", "list", "table", "inet", &self.table])
            .unwrap_or_default()
    }

    pub fn links(&self) -> String {
        self.host.sh(&["ip", "-br", "link"])
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Sandboxes are namespaces of their own: unmount whatever is left.
        if let Ok(d) = std::fs::read_dir(self.dir.path().join("run/netns")) {
            for e in d.flatten() {
                let _ = netns::remove(&e.path());
            }
        }
    }
}

/// The configuration of the test host whose directory is `dir` (also for re-executed children).
pub fn config_at(dir: &Path, table: &str) -> NetConfig {
    let mut cfg = NetConfig::new(dir.join("state"), dir.join("run"));
    cfg.host = NetnsRef::path(dir.join("skiff-t-host"));
    cfg.table = table.to_string();
    cfg.dns_upstreams = Some(Vec::new());
    cfg
}

/// Runs `f` on a thread inside the namespace at `path`.
pub fn in_ns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> T {
    NetnsRef::path(path)
        .run(|| Ok(f()))
        .expect("enter namespace")
}

/// A TCP server inside a namespace that answers every connection with `reply` and the peer's
/// address, on a thread of its own.
pub fn serve_tcp(ns: &Path, addr: &str, reply: &str) -> SocketAddr {
    let addr: SocketAddr = addr.parse().unwrap();
    let listener = in_ns(ns, || TcpListener::bind(addr)).expect("bind test server");
    let local = listener.local_addr().unwrap();
    let reply = reply.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let peer = c
                .peer_addr()
                .map(|p| p.ip().to_string())
                .unwrap_or_default();
            let _ = c.write_all(format!("{reply} {peer}").as_bytes());
        }
    });
    local
}

/// Connects from inside `ns` (None = this process's namespace) and returns what the server
/// said, or the error.
pub fn fetch(ns: Option<&Path>, addr: &str) -> Result<String, String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let go = move || -> Result<String, String> {
        let mut s =
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    };
    match ns {
        Some(p) => in_ns(p, go),
        None => go(),
    }
}
