//! Registries end to end: `skiff daemon` pulling from and pushing to Debian's real
//! `docker-registry` on 127.0.0.1 (anonymous, htpasswd, token auth with a token server in
//! the test, as a Docker Hub mirror) and from a fake hostile registry, driven by the real
//! clients: the docker CLI (docker_cli), docker-py and the skiff CLI (clients), raw API
//! requests (hostile).
//!
//! The registries are the ones the registry client's own tests use
//! (crates/skiff-image/tests/registry_support), shared rather than copied.

mod common;
#[path = "../../crates/skiff-image/tests/registry_support/mod.rs"]
mod registry_support;

#[path = "registry/clients.rs"]
mod clients;
#[path = "registry/docker_cli.rs"]
mod docker_cli;
#[path = "registry/hostile.rs"]
mod hostile;

use common::{stderr, stdout, Daemon, BUSYBOX};

/// A runtime for the in-process servers (token server, fake registry); they run as long as
/// it lives.
fn servers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Tags busybox as `name` and pushes it with the docker CLI; returns the pushed digest.
fn push_busybox(d: &Daemon, name: &str) -> String {
    d.docker_ok(&["tag", BUSYBOX, name]);
    let out = d.docker(&["push", name]);
    assert!(
        out.status.success(),
        "push {name}: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    let digest_line = text
        .lines()
        .find(|l| l.contains(": digest: sha256:"))
        .unwrap_or_else(|| panic!("no digest line in {text}"));
    digest_line
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .expect("digest")
        .to_owned()
}

/// The docker CLI's config.json of this daemon's clients.
fn docker_config_json(d: &Daemon) -> serde_json::Value {
    let path = d.docker_config().join("config.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|_| b"{}".to_vec()))
        .expect("config.json is JSON")
}

/// `base64(user:password)`, as `auths.<host>.auth` holds it.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}
