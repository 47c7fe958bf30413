//! Registries for the registry client's tests: Debian's real `docker-registry` (anonymous,
//! htpasswd or token auth, with a token server written here) and a fake registry serving
//! whatever bytes a test wants, for what a real registry cannot be made to send.
#![allow(dead_code)] // each test uses a different subset

pub mod fake;
pub mod real;
pub mod token;

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use skiff_image::registry::{Progress, Registries, RegistryConfig};
use skiff_image::{ImageRef, ImageStore};

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

pub use skiff_core::testing::free_port;

/// Polls `f` until it returns true, panicking with `what` after 30 s.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn temp_store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::Builder::new()
        .prefix("skiff-registry-test-")
        .tempdir()
        .unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    (dir, store)
}

pub fn registries() -> Registries {
    Registries::new(RegistryConfig::default()).unwrap()
}

pub fn r(s: &str) -> ImageRef {
    ImageRef::parse(s).unwrap()
}

/// A store holding busybox under `name`.
pub fn store_with_busybox(name: &str) -> (tempfile::TempDir, ImageStore) {
    let (dir, store) = temp_store();
    store
        .load(&skiff_image::testutil::busybox_docker_archive(name)[..])
        .unwrap();
    (dir, store)
}

pub fn no_progress() -> impl Fn(skiff_image::registry::Progress) + Send + Sync {
    |_| {}
}

/// Nothing was stored: no image, no blob, no snapshot, nothing left in tmp.
pub fn assert_store_empty(root: &Path, store: &ImageStore) {
    assert!(store.list().unwrap().is_empty(), "an image was stored");
    for dir in ["blobs/sha256", "snapshots", "tmp"] {
        let left: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{dir} holds {left:?}");
    }
}
