//! `docker cp` through the archive endpoints, `docker export`, and filling new volumes.
//!
//! Everything reads and writes through [`skiff_image::confined`]: paths are resolved inside
//! the container's tree by descriptor (symlinks followed as the container would follow them,
//! never out of its root) and extraction creates each entry relative to its directory's
//! descriptor, so a container that swaps a directory for a symlink to `/` while a copy runs
//! (CVE-2018-15664) only ever redirects the copy inside itself. `cp` works on the container's
//! [`view`](super::view) (rootfs plus volumes), export on the rootfs alone.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use skiff_image::confined::{self, Policy, Root};

use super::view::{mount_of, with_view, ViewMount};
use super::{rootfs, Container};
use crate::error::{EngineError, IoContext, Result};
use crate::{ByteStream, Engine, PathStat};

/// Go's `os.FileMode` bits for a `st_mode`.
pub(crate) fn go_mode(mode: u32) -> u32 {
    let mut out = mode & 0o777;
    match mode & libc::S_IFMT {
        libc::S_IFDIR => out |= 1 << 31,
        libc::S_IFLNK => out |= 1 << 27,
        libc::S_IFIFO => out |= 1 << 25,
        libc::S_IFSOCK => out |= 1 << 24,
        libc::S_IFBLK => out |= 1 << 26,
        libc::S_IFCHR => out |= (1 << 26) | (1 << 21),
        _ => {}
    }
    if mode & libc::S_ISUID != 0 {
        out |= 1 << 23;
    }
    if mode & libc::S_ISGID != 0 {
        out |= 1 << 22;
    }
    if mode & libc::S_ISVTX != 0 {
        out |= 1 << 20;
    }
    out
}

/// `path` made absolute and cleaned lexically (`.` dropped, `..` stops at `/`), as Docker
/// names paths in the container.
fn clean(path: &str) -> PathBuf {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    Path::new("/").join(parts.join("/"))
}

/// The stat of `path` in `root`, not following a final symlink (whose target, resolved in
/// the root, is reported instead).
fn stat(root: &Root, container: &str, path: &str) -> Result<PathStat> {
    let no_such = || EngineError::NoSuchPath {
        container: container.to_string(),
        path: path.to_string(),
    };
    // A trailing `/` follows a final symlink, as in a shell (and in Docker).
    let handle = if path.ends_with('/') {
        root.resolve(path)
    } else {
        root.resolve_nofollow(path)
    };
    let handle = handle.map_err(|_| no_such())?;
    let meta = std::fs::File::from(OwnedFd::from(handle))
        .metadata()
        .ctx(|| format!("stat {path}"))?;
    let link_target = if meta.file_type().is_symlink() {
        link_target(root, path)
    } else {
        String::new()
    };
    let name = if path.ends_with("/.") {
        ".".to_string()
    } else {
        clean(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".to_string())
    };
    let mtime = chrono::DateTime::from_timestamp(meta.mtime(), meta.mtime_nsec() as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    Ok(PathStat {
        name,
        size: meta.len() as i64,
        mode: go_mode(meta.mode()),
        mtime,
        link_target,
    })
}

/// Where the symlink at `path` leads in the container: resolved in the root when it
/// resolves, else its target joined lexically (a dangling link, as Docker reports it).
fn link_target(root: &Root, path: &str) -> String {
    let resolved = root
        .resolve(path)
        .ok()
        .and_then(|h| confined::fd_path(&h))
        .and_then(|host| confined::path_in_root(root, &host));
    if let Some(resolved) = resolved {
        return resolved.to_string_lossy().into_owned();
    }
    let target = root.readlink(path).unwrap_or_default();
    let parent = clean(path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    clean(&parent.join(target).to_string_lossy())
        .to_string_lossy()
        .into_owned()
}

/// Copies the image's content at `path` into an empty new volume, like Docker does the
/// first time a volume is mounted over existing content. Symlinks are copied, never followed
/// (a mount point that is a symlink leads where it leads in the container).
pub(crate) fn populate_volume(rootfs: &Path, path: &str, volume: &Path) -> Result<()> {
    let empty = std::fs::read_dir(volume)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !empty {
        return Ok(());
    }
    let image = confined::open_root(rootfs)?;
    let Ok(source) = image.resolve(path) else {
        return Ok(());
    };
    let is_dir =
        nix::sys::stat::fstat(&source).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
    let resolved = confined::fd_path(&source).and_then(|h| confined::path_in_root(&image, &h));
    let (true, Some(resolved)) = (is_dir, resolved) else {
        return Ok(());
    };
    let target = confined::open_root(volume)?;
    let (reader, writer) = std::io::pipe().ctx(|| "pipe".into())?;
    std::thread::scope(|s| {
        let producer = s.spawn(|| confined::pack(&image, &resolved, Path::new("."), writer));
        let copy = Policy::Copy {
            no_overwrite_dir_non_dir: false,
        };
        let result = confined::extract(reader, &target, Path::new("/"), copy).map(drop);
        match producer.join() {
            Ok(Err(e)) if result.is_ok() => Err(e.into()),
            _ => result.map_err(EngineError::from),
        }
    })
}

impl Engine {
    /// For a copy out of or into a stopped container whose rootfs is mounted: mounts its
    /// volumes that have a filesystem of their own, as dockerd does (a running container holds
    /// them already). Returns whether it did, so the caller releases them after the copy; on
    /// failure nothing stays mounted.
    async fn hold_volumes_of_stopped(&self, c: &Container) -> Result<bool> {
        if c.rec().state.status.is_alive() {
            return Ok(false);
        }
        if let Err(e) = self.mount_volumes(c).await {
            self.release_volumes(c);
            let _ = rootfs::unmount(c);
            return Err(e);
        }
        Ok(true)
    }

    /// Runs `f` with the container's rootfs mounted (mounting it for a stopped container and
    /// unmounting it again afterwards unless the container runs by then), on its view.
    async fn on_view<T: Send + 'static>(
        &self,
        c: &Arc<Container>,
        f: impl FnOnce(&Root) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _op = c.op.lock().await;
        // Unmounted after: not under a prepared container.
        self.discard_prepared(c).await;
        let rootfs_path = rootfs::mount(self, c).await?;
        let stopped = self.hold_volumes_of_stopped(c).await?;
        let mounts = ViewMount::of(&c.rec().mounts);
        let result = tokio::task::spawn_blocking(move || with_view(&rootfs_path, &mounts, f))
            .await
            .map_err(std::io::Error::other)
            .ctx(|| "container view task".into())
            .and_then(|r| r);
        if stopped {
            self.release_volumes(c);
        }
        if !c.rec().state.status.is_alive() {
            rootfs::unmount(c)?;
        }
        result
    }

    pub(crate) async fn do_archive_stat(&self, key: &str, path: &str) -> Result<PathStat> {
        let c = self.find(key)?;
        // Docker names the container as the client did (`… in container web`).
        let (id, path) = (key.to_string(), path.to_string());
        self.on_view(&c, move |root| stat(root, &id, &path)).await
    }

    pub(crate) async fn do_archive_get(
        &self,
        key: &str,
        path: &str,
    ) -> Result<(PathStat, ByteStream)> {
        let c = self.find(key)?;
        let (id, owned) = (key.to_string(), path.to_string());
        let stat = self
            .on_view(&c, move |root| stat(root, &id, &owned))
            .await?;
        // The tar is produced on a view of its own while the rootfs stays mounted; the lock
        // is held until the tar is complete.
        let op = c.op.clone().lock_owned().await;
        self.discard_prepared(&c).await;
        let rootfs_path = rootfs::mount(self, &c).await?;
        let stopped = self.hold_volumes_of_stopped(&c).await?;
        let mounts = ViewMount::of(&c.rec().mounts);
        let (name, path) = (PathBuf::from(&stat.name), path.to_string());
        let engine = self.arc();
        let stream = crate::blocking_writer(move |writer| {
            let _op = op;
            let result = with_view(&rootfs_path, &mounts, |root| {
                Ok(confined::pack(root, Path::new(&path), &name, writer)?)
            });
            if let Err(e) = &result {
                tracing::warn!(id = %c.id, error = %e, "archive failed");
            }
            if let Some(engine) = engine.filter(|_| stopped) {
                engine.release_volumes(&c);
            }
            if !c.rec().state.status.is_alive() {
                if let Err(e) = rootfs::unmount(&c) {
                    tracing::warn!(id = %c.id, error = %e, "unmounting rootfs after archive");
                }
            }
            result.map_err(std::io::Error::other)
        });
        Ok((stat, stream))
    }

    /// `docker export`: a tar of the container's whole filesystem (its volumes excluded).
    pub(crate) async fn do_export(&self, key: &str) -> Result<ByteStream> {
        let c = self.find(key)?;
        let op = c.op.clone().lock_owned().await;
        self.discard_prepared(&c).await;
        let rootfs_path = rootfs::mount(self, &c).await?;
        Ok(crate::blocking_writer(move |writer| {
            let _op = op;
            let result = confined::open_root(&rootfs_path)
                .and_then(|root| confined::pack_contents(&root, Path::new("/"), writer));
            if let Err(e) = &result {
                tracing::warn!(id = %c.id, error = %e, "export failed");
            }
            if !c.rec().state.status.is_alive() {
                if let Err(e) = rootfs::unmount(&c) {
                    tracing::warn!(id = %c.id, error = %e, "unmounting rootfs after export");
                }
            }
            result.map_err(std::io::Error::other)
        }))
    }

    pub(crate) async fn do_archive_put(
        &self,
        key: &str,
        path: &str,
        tar_stream: ByteStream,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<()> {
        let c = self.find(key)?;
        let rec = c.rec();
        // Docker's rule: a path in a volume needs a writable volume; any other path a
        // writable rootfs.
        match mount_of(&ViewMount::of(&rec.mounts), path) {
            Some(m) if m.read_only => {
                return Err(EngineError::Conflict(
                    "mounted volume is marked read-only".into(),
                ))
            }
            None if rec.host_config.readonly_rootfs.unwrap_or(false) => {
                return Err(EngineError::Conflict(
                    "container rootfs is marked read-only".into(),
                ))
            }
            _ => {}
        }
        let (id, path) = (key.to_string(), path.to_string());
        let mut reader = crate::blocking_reader(tar_stream);
        self.on_view(&c, move |root| {
            let dest = root.resolve(&path).map_err(|_| EngineError::NoSuchPath {
                container: id,
                path: path.clone(),
            })?;
            let is_dir = std::fs::File::from(OwnedFd::from(dest))
                .metadata()
                .is_ok_and(|m| m.is_dir());
            if !is_dir {
                return Err(EngineError::invalid("extraction point is not a directory"));
            }
            let policy = Policy::Copy {
                no_overwrite_dir_non_dir,
            };
            confined::extract(&mut reader, root, Path::new(&path), policy)?;
            // The client may still be sending the archive's padding after its end marker:
            // read it all before answering, or the client's write fails (broken pipe).
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn stat_reports_go_modes_and_link_targets() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir(r.join("d")).unwrap();
        std::fs::write(r.join("d/f"), "12345").unwrap();
        symlink("/d/f", r.join("l")).unwrap();
        symlink("../../../d", r.join("up")).unwrap();
        symlink("/nowhere/x", r.join("dangling")).unwrap();
        let root = confined::open_root(r).unwrap();
        let s = stat(&root, "c", "/d/f").unwrap();
        assert_eq!((s.name.as_str(), s.size), ("f", 5));
        let s = stat(&root, "c", "/d").unwrap();
        assert_eq!(s.mode & (1 << 31), 1 << 31);
        let s = stat(&root, "c", "/l").unwrap();
        assert_eq!(s.link_target, "/d/f");
        assert_ne!(s.mode & (1 << 27), 0);
        assert_eq!(stat(&root, "c", "/up").unwrap().link_target, "/d");
        assert_eq!(
            stat(&root, "c", "/dangling").unwrap().link_target,
            "/nowhere/x"
        );
        assert_eq!(stat(&root, "c", "/up/f").unwrap().name, "f");
        assert_eq!(stat(&root, "c", "/d/.").unwrap().name, ".");
        let s = stat(&root, "c", "/up/").unwrap();
        assert_eq!((s.name.as_str(), s.mode & (1 << 31)), ("up", 1 << 31));
        assert!(matches!(
            stat(&root, "c", "/nope"),
            Err(EngineError::NoSuchPath { .. })
        ));
        assert_eq!(go_mode(libc::S_IFREG | 0o4755), (1 << 23) | 0o755);
    }

    #[test]
    fn new_volumes_get_the_image_content_without_following_links() {
        let rootfs = tempfile::tempdir().unwrap();
        let r = rootfs.path();
        std::fs::create_dir_all(r.join("data/sub")).unwrap();
        std::fs::write(r.join("data/sub/x"), "x").unwrap();
        symlink("/etc/passwd", r.join("data/link")).unwrap();
        symlink("/", r.join("root-link")).unwrap();
        let vol = tempfile::tempdir().unwrap();
        populate_volume(r, "/data", vol.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(vol.path().join("sub/x")).unwrap(),
            "x"
        );
        assert_eq!(
            std::fs::read_link(vol.path().join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        // A volume with content is left alone.
        std::fs::write(r.join("data/new"), "n").unwrap();
        populate_volume(r, "/data", vol.path()).unwrap();
        assert!(!vol.path().join("new").exists());
        // A mount point that is a symlink to / copies the container's root, not the host's.
        let vol2 = tempfile::tempdir().unwrap();
        populate_volume(r, "/root-link", vol2.path()).unwrap();
        assert!(vol2.path().join("data/sub/x").exists());
        assert!(!vol2.path().join("etc").exists());
    }

    #[test]
    fn paths_are_cleaned_like_docker() {
        assert_eq!(clean("tmp/./a/"), Path::new("/tmp/a"));
        assert_eq!(clean("/../../etc"), Path::new("/etc"));
        assert_eq!(clean(""), Path::new("/"));
    }
}
