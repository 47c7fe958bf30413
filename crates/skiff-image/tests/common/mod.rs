//! Helpers shared by the public-API tests: in-memory layers and temp dirs.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

/// A layer tarball built entry by entry; paths are written raw (no sanitising), so
/// hostile layers can be built too.
pub struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    pub fn new() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn raw(
        mut self,
        kind: tar::EntryType,
        path: &str,
        link: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> Self {
        let mut h = tar::Header::new_gnu();
        let old = h.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    pub fn dir(self, path: &str) -> Self {
        self.raw(tar::EntryType::Directory, path, "", b"", 0o755, 0, 0)
    }

    pub fn file(self, path: &str, data: &str) -> Self {
        self.raw(
            tar::EntryType::Regular,
            path,
            "",
            data.as_bytes(),
            0o644,
            0,
            0,
        )
    }

    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.raw(tar::EntryType::Symlink, path, target, b"", 0o777, 0, 0)
    }

    pub fn hardlink(self, path: &str, target: &str) -> Self {
        self.raw(tar::EntryType::Link, path, target, b"", 0o644, 0, 0)
    }

    pub fn device(mut self, kind: tar::EntryType, path: &str, major: u32, minor: u32) -> Self {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(0o666);
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.0.append(&h, &b""[..]).unwrap();
        self
    }

    pub fn build(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("skiff-image-test-")
        .tempdir()
        .unwrap()
}

/// A temp dir holding the `dest` dir a layer is unpacked into and an `outside` dir that a
/// hostile layer must not touch.
pub struct Sandbox {
    pub _tmp: tempfile::TempDir,
    pub dest: PathBuf,
    pub outside: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        let tmp = temp_dir();
        let dest = tmp.path().join("dest");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&dest).unwrap();
        std::fs::create_dir(&outside).unwrap();
        Sandbox {
            _tmp: tmp,
            dest,
            outside,
        }
    }

    /// Names in `outside` (must stay empty).
    pub fn outside_entries(&self) -> Vec<String> {
        entries(&self.outside)
    }
}

pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Unmounts on drop, so a failing test leaves no mount behind.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        skiff_image::overlay::unmount(&self.0).unwrap();
    }
}
