//! `docker diff`: what a container changed in its filesystem, read from its overlay upper
//! directory against the image's layers — added (A), changed (C), deleted (D, an overlay
//! whiteout). The generated /etc files the runtime binds over have their mount points in the
//! init layer, not in the upper dir, as with Docker (containers created before the init layer
//! existed have them in their upper dir: they are left out too); volume and bind destinations
//! created in the container show as added, as they do with Docker.

use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use bollard_stubs::models::{ChangeType, FilesystemChange};

use crate::error::{EngineError, IoContext, Result};
use crate::Engine;

/// Walks `upper` (recursively, in name order) and classifies each entry against `lowers`.
fn changes(upper: &Path, lowers: &[PathBuf], hidden: &HashSet<String>) -> Vec<FilesystemChange> {
    let mut out = Vec::new();
    walk(upper, Path::new("/"), lowers, hidden, &mut out);
    out
}

fn walk(
    dir: &Path,
    rel: &Path,
    lowers: &[PathBuf],
    hidden: &HashSet<String>,
    out: &mut Vec<FilesystemChange>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = rel.join(entry.file_name());
        let name = path.to_string_lossy().into_owned();
        if hidden.contains(&name) {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
        let inner = path.strip_prefix("/").unwrap_or(&path);
        let kind = if whiteout {
            ChangeType::_2
        } else if lowers
            .iter()
            .any(|l| l.join(inner).symlink_metadata().is_ok())
        {
            ChangeType::_0
        } else {
            ChangeType::_1
        };
        out.push(FilesystemChange { path: name, kind });
        if meta.is_dir() && !whiteout {
            walk(&entry.path(), &path, lowers, hidden, out);
        }
    }
}

impl Engine {
    pub(crate) async fn do_changes(&self, key: &str) -> Result<Vec<FilesystemChange>> {
        let c = self.find(key)?;
        let rec = c.rec();
        let upper = c.upper_dir();
        let init = self.init_layer();
        let hidden: HashSet<String> = super::rootfs::etc_paths().collect();
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || {
            // Compared with what the container started from: its init layer over its image.
            let lowers: Vec<PathBuf> = std::iter::once(init)
                .chain(images.prepare_rootfs(&rec.image_id)?)
                .collect();
            Ok::<_, EngineError>(changes(&upper, &lowers, &hidden))
        })
        .await
        .map_err(std::io::Error::other)
        .ctx(|| "read the container's changes".into())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_entries_are_added_changed_or_deleted() {
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(lower.path().join("etc")).unwrap();
        std::fs::write(lower.path().join("etc/motd"), "hi").unwrap();
        std::fs::write(lower.path().join("etc/gone"), "x").unwrap();
        std::fs::create_dir_all(upper.path().join("etc")).unwrap();
        std::fs::write(upper.path().join("etc/motd"), "changed").unwrap();
        std::fs::write(upper.path().join("etc/hosts"), "").unwrap();
        std::fs::create_dir_all(upper.path().join("new/dir")).unwrap();
        nix::sys::stat::mknod(
            &upper.path().join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let hidden = HashSet::from(["/etc/hosts".to_string()]);
        let got: Vec<(String, ChangeType)> =
            changes(upper.path(), &[lower.path().to_path_buf()], &hidden)
                .into_iter()
                .map(|c| (c.path, c.kind))
                .collect();
        let want = [
            ("/etc", ChangeType::_0),
            ("/etc/gone", ChangeType::_2),
            ("/etc/motd", ChangeType::_0),
            ("/new", ChangeType::_1),
            ("/new/dir", ChangeType::_1),
        ];
        assert_eq!(
            got,
            want.map(|(p, k)| (p.to_string(), k)).to_vec(),
            "hosts is a mount point, not a change"
        );
    }
}
