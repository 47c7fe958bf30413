//! Debian's `docker-registry` (distribution 2.8) on 127.0.0.1, killed by PID on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{free_port, wait_for};

pub const BINARY: &str = "/usr/bin/docker-registry";

pub enum Auth {
    Anonymous,
    /// Users and passwords for an htpasswd file (bcrypt).
    Htpasswd(Vec<(String, String)>),
    /// Token auth: realm URL, service, issuer and the PEM of the token signing cert.
    Token {
        realm: String,
        service: String,
        issuer: String,
        cert_pem: String,
    },
}

pub struct RealRegistry {
    child: Child,
    /// `IP:PORT` (`127.0.0.1:PORT` unless started on another address).
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl RealRegistry {
    pub fn start(auth: Auth) -> RealRegistry {
        Self::start_on("127.0.0.1", auth)
    }

    /// A registry listening on `ip` (an address of this host) instead of loopback.
    pub fn start_on(ip: &str, auth: Auth) -> RealRegistry {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: run scripts/install-deps.sh (Debian package docker-registry)"
        );
        let dir = tempfile::Builder::new()
            .prefix("skiff-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let addr = format!("{ip}:{port}");
        let auth_yaml = match auth {
            Auth::Anonymous => String::new(),
            Auth::Htpasswd(users) => {
                let path = dir.path().join("htpasswd");
                let mut lines = String::new();
                for (user, password) in users {
                    let hash = bcrypt::hash(password, 5).unwrap();
                    lines.push_str(&format!("{user}:{hash}\n"));
                }
                std::fs::write(&path, lines).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                    path.display()
                )
            }
            Auth::Token {
                realm,
                service,
                issuer,
                cert_pem,
            } => {
                let path = dir.path().join("token.pem");
                std::fs::write(&path, cert_pem).unwrap();
                format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                    path.display()
                )
            }
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: skiff-test-secret\n{auth_yaml}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut registry = RealRegistry {
            child,
            addr,
            _dir: dir,
        };
        let addr = registry.addr.clone();
        let log_path = registry._dir.path().join("registry.log");
        wait_for("the registry to answer /v2/", || {
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!(
                    "docker-registry exited with {status}: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            probe(&addr)
        });
        registry
    }
}

/// Whether `GET /v2/` gets an HTTP answer.
fn probe(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let req = format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1")
}

impl Drop for RealRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
