//! Registries for the registry client's tests: Debian's real `docker-registry` (anonymous,
//! htpasswd or token auth, with a token server written here) and a fake registry serving
//! whatever bytes a test wants, for what a real registry cannot be made to send.
#![allow(dead_code)] // each test uses a different subset

pub mod fake;
pub mod real;
pub mod token;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use skiff_image::registry::Progress;

/// Collects progress messages.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Progress>>);

impl Recorder {
    pub fn sink(&self) -> impl Fn(Progress) + Send + Sync + '_ {
        move |p| self.0.lock().unwrap().push(p)
    }

    pub fn statuses(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.status.clone())
            .collect()
    }

    pub fn has(&self, status: &str) -> bool {
        self.statuses().iter().any(|s| s == status)
    }

    pub fn all(&self) -> Vec<Progress> {
        self.0.lock().unwrap().clone()
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns true, panicking with `what` after 30 s.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
