//! `docker cp` through the archive endpoints: paths are resolved inside the container's
//! root (and its volumes) without ever following a symlink out of it; extraction refuses
//! entries that would land outside the target.

use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{rootfs, Container};
use crate::error::{EngineError, IoContext, Result};
use crate::store::MountRecord;
use crate::{ByteStream, Engine, PathStat};

const MAX_LINKS: usize = 40;

/// Maps in-container paths to host paths: the rootfs, except below bind/volume mounts.
pub(crate) struct Root {
    rootfs: PathBuf,
    mounts: Vec<(Vec<String>, PathBuf)>,
}

fn components(path: &str) -> VecDeque<String> {
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

impl Root {
    pub(crate) fn new(rootfs: PathBuf, mounts: &[MountRecord]) -> Root {
        let mut mounts: Vec<(Vec<String>, PathBuf)> = mounts
            .iter()
            .filter(|m| m.kind != "tmpfs")
            .map(|m| (components(&m.destination).into(), m.source.clone()))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        Root { rootfs, mounts }
    }

    pub(crate) fn host(&self, parts: &[String]) -> PathBuf {
        for (dst, src) in &self.mounts {
            if parts.starts_with(dst) {
                return parts[dst.len()..]
                    .iter()
                    .fold(src.clone(), |p, c| p.join(c));
            }
        }
        parts.iter().fold(self.rootfs.clone(), |p, c| p.join(c))
    }

    /// Resolves `path` to in-container components, following symlinks as the container
    /// would see them (absolute targets restart at the container's root, `..` stops at
    /// it). The last component is followed only when `follow_last`.
    pub(crate) fn resolve(&self, path: &str, follow_last: bool) -> Result<Vec<String>> {
        let mut todo = components(path);
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = todo.pop_front() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            let mut candidate = done.clone();
            candidate.push(part.clone());
            let host = self.host(&candidate);
            let is_link = std::fs::symlink_metadata(&host)
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(false);
            if is_link && (!todo.is_empty() || follow_last) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(EngineError::invalid(format!(
                        "{path}: too many levels of symbolic links"
                    )));
                }
                let target =
                    std::fs::read_link(&host).ctx(|| format!("readlink {}", host.display()))?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    done.clear();
                }
                for c in components(&target).into_iter().rev() {
                    todo.push_front(c);
                }
            } else {
                done.push(part);
            }
        }
        Ok(done)
    }
}

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

fn in_container(parts: &[String]) -> String {
    format!("/{}", parts.join("/"))
}

/// The stat of `path` (not following a final symlink) and its host path.
fn stat(root: &Root, container: &str, path: &str) -> Result<(PathStat, PathBuf)> {
    let parts = root.resolve(path, false)?;
    let host = root.host(&parts);
    let meta = std::fs::symlink_metadata(&host).map_err(|_| EngineError::NoSuchPath {
        container: container.to_string(),
        path: path.to_string(),
    })?;
    let link_target = if meta.file_type().is_symlink() {
        in_container(&root.resolve(path, true)?)
    } else {
        String::new()
    };
    let name = if path.ends_with("/.") {
        ".".to_string()
    } else {
        parts.last().cloned().unwrap_or_else(|| "/".to_string())
    };
    let mtime = chrono::DateTime::from_timestamp(meta.mtime(), meta.mtime_nsec() as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let stat = PathStat {
        name,
        size: meta.len() as i64,
        mode: go_mode(meta.mode()),
        mtime,
        link_target,
    };
    Ok((stat, host))
}

/// Writes a tar of `host` (named `name`) without following symlinks.
fn write_tar(host: &Path, name: &str, out: impl std::io::Write) -> std::io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let meta = std::fs::symlink_metadata(host)?;
    if meta.is_dir() {
        b.append_dir_all(name, host)?;
    } else {
        b.append_path_with_name(host, name)?;
    }
    b.into_inner()?.flush()
}

/// Extracts `tar` into `dest` (a host directory), refusing escapes.
fn extract(
    tar_stream: impl std::io::Read,
    dest: &Path,
    no_overwrite_dir_non_dir: bool,
) -> Result<()> {
    let mut archive = tar::Archive::new(tar_stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_overwrite(true);
    let bad = |e: std::io::Error| {
        let mut message = format!("error extracting tar: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        EngineError::invalid(message)
    };
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let rel = entry.path().map_err(bad)?.into_owned();
        if rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(EngineError::invalid(format!(
                "error extracting tar: path {} escapes the target",
                rel.display()
            )));
        }
        if no_overwrite_dir_non_dir {
            let target = dest.join(&rel);
            if let Ok(existing) = std::fs::symlink_metadata(&target) {
                let new_is_dir = entry.header().entry_type().is_dir();
                if existing.is_dir() && !new_is_dir {
                    return Err(EngineError::invalid(format!(
                        "cannot overwrite directory \"{}\" with non-directory \"{}\"",
                        target.display(),
                        rel.display()
                    )));
                }
                if !existing.is_dir() && new_is_dir {
                    return Err(EngineError::invalid(format!(
                        "cannot overwrite non-directory \"{}\" with directory \"{}\"",
                        target.display(),
                        rel.display()
                    )));
                }
            }
        }
        // unpack_in refuses entries whose resolved parent lies outside `dest`.
        match entry.unpack_in(dest) {
            Ok(true) => {}
            Ok(false) => {
                return Err(EngineError::invalid(format!(
                    "error extracting tar: {} would be written outside the target",
                    rel.display()
                )))
            }
            Err(e) => return Err(bad(e)),
        }
    }
    Ok(())
}

/// Copies the image's content at `path` into an empty new volume, like Docker does the
/// first time a volume is mounted over existing content. Symlinks are copied, never followed.
pub(crate) fn populate_volume(rootfs: &Path, path: &str, volume: &Path) -> Result<()> {
    let empty = std::fs::read_dir(volume)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !empty {
        return Ok(());
    }
    let root = Root::new(rootfs.to_path_buf(), &[]);
    let src = root.host(&root.resolve(path, true)?);
    if !std::fs::symlink_metadata(&src)
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        return Ok(());
    }
    let (reader, writer) = std::io::pipe().ctx(|| "pipe".into())?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || write_tar(&src, ".", writer));
        let result = extract(reader, volume, false);
        match producer.join() {
            Ok(Err(e)) if result.is_ok() => Err(EngineError::Io {
                context: format!("copy {path} into volume"),
                source: e,
            }),
            _ => result,
        }
    })
}

impl Engine {
    /// Runs `f` with the container's rootfs mounted (mounting it for a stopped container and
    /// unmounting it again afterwards unless the container runs by then).
    async fn with_rootfs<T>(
        &self,
        c: &Arc<Container>,
        f: impl FnOnce(Root) -> Result<T>,
    ) -> Result<T> {
        let _op = c.op.lock().await;
        let rootfs_path = rootfs::mount(self, c).await?;
        let root = Root::new(rootfs_path, &c.rec().mounts);
        let result = f(root);
        if !c.rec().state.status.is_alive() {
            rootfs::unmount(c)?;
        }
        result
    }

    pub(crate) async fn do_archive_stat(&self, key: &str, path: &str) -> Result<PathStat> {
        let c = self.find(key)?;
        let id = c.id.clone();
        self.with_rootfs(&c, |root| Ok(stat(&root, &id, path)?.0))
            .await
    }

    pub(crate) async fn do_archive_get(
        &self,
        key: &str,
        path: &str,
    ) -> Result<(PathStat, ByteStream)> {
        let c = self.find(key)?;
        let id = c.id.clone();
        // The tar is produced while the rootfs is mounted, into a bounded channel; the lock
        // is held until the tar is complete.
        let _op = c.op.clone().lock_owned().await;
        let rootfs_path = rootfs::mount(self, &c).await?;
        let root = Root::new(rootfs_path, &c.rec().mounts);
        let (stat, host) = match stat(&root, &id, path) {
            Ok(s) => s,
            Err(e) => {
                if !c.rec().state.status.is_alive() {
                    rootfs::unmount(&c)?;
                }
                return Err(e);
            }
        };
        let name = stat.name.clone();
        let c2 = c.clone();
        let stream = crate::blocking_writer(move |writer| {
            let _op = _op;
            let result = write_tar(&host, &name, writer);
            if let Err(e) = &result {
                tracing::warn!(id = %c2.id, error = %e, "archive failed");
            }
            if !c2.rec().state.status.is_alive() {
                if let Err(e) = rootfs::unmount(&c2) {
                    tracing::warn!(id = %c2.id, error = %e, "unmounting rootfs after archive");
                }
            }
            result
        });
        Ok((stat, stream))
    }

    /// `docker export`: a tar of the container's whole filesystem (its volumes excluded).
    pub(crate) async fn do_export(&self, key: &str) -> Result<ByteStream> {
        let c = self.find(key)?;
        let op = c.op.clone().lock_owned().await;
        let rootfs_path = rootfs::mount(self, &c).await?;
        Ok(crate::blocking_writer(move |writer| {
            let _op = op;
            let result = write_tar(&rootfs_path, ".", writer);
            if let Err(e) = &result {
                tracing::warn!(id = %c.id, error = %e, "export failed");
            }
            if !c.rec().state.status.is_alive() {
                if let Err(e) = rootfs::unmount(&c) {
                    tracing::warn!(id = %c.id, error = %e, "unmounting rootfs after export");
                }
            }
            result
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
        if c.rec().host_config.readonly_rootfs.unwrap_or(false) {
            return Err(EngineError::Conflict(
                "container rootfs is marked read-only".into(),
            ));
        }
        let _op = c.op.lock().await;
        let root = Root::new(rootfs::mount(self, &c).await?, &c.rec().mounts);
        let (id, path) = (c.id.clone(), path.to_string());
        let reader = crate::blocking_reader(tar_stream);
        let result = tokio::task::spawn_blocking(move || {
            let parts = root.resolve(&path, true)?;
            let dest = root.host(&parts);
            let meta = std::fs::metadata(&dest).map_err(|_| EngineError::NoSuchPath {
                container: id,
                path,
            })?;
            if !meta.is_dir() {
                return Err(EngineError::invalid("extraction point is not a directory"));
            }
            extract(reader, &dest, no_overwrite_dir_non_dir)
        })
        .await
        .map_err(std::io::Error::other)
        .ctx(|| "extract archive".into())?;
        if !c.rec().state.status.is_alive() {
            rootfs::unmount(&c)?;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root(dir: &Path) -> Root {
        Root::new(dir.to_path_buf(), &[])
    }

    #[test]
    fn resolution_never_leaves_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/passwd"), "root").unwrap();
        symlink("/", r.join("escape")).unwrap();
        symlink("../../../../etc", r.join("etc/up")).unwrap();
        symlink("/etc/passwd", r.join("abs")).unwrap();
        let root = root(r);
        assert_eq!(
            root.resolve("/escape/etc/passwd", true).unwrap(),
            vec!["etc", "passwd"]
        );
        assert_eq!(
            root.resolve("/etc/up/passwd", true).unwrap(),
            vec!["etc", "passwd"]
        );
        assert_eq!(root.resolve("/../../etc", true).unwrap(), vec!["etc"]);
        assert_eq!(root.resolve("/abs", false).unwrap(), vec!["abs"]);
        assert_eq!(root.resolve("/abs", true).unwrap(), vec!["etc", "passwd"]);
        symlink("loop", r.join("loop")).unwrap();
        assert!(root.resolve("/loop", true).is_err());
    }

    #[test]
    fn stat_reports_go_modes_and_link_targets() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir(r.join("d")).unwrap();
        std::fs::write(r.join("d/f"), "12345").unwrap();
        symlink("/d/f", r.join("l")).unwrap();
        let root = root(r);
        let (s, _) = stat(&root, "c", "/d/f").unwrap();
        assert_eq!((s.name.as_str(), s.size), ("f", 5));
        let (s, _) = stat(&root, "c", "/d").unwrap();
        assert_eq!(s.mode & (1 << 31), 1 << 31);
        let (s, _) = stat(&root, "c", "/l").unwrap();
        assert_eq!(s.link_target, "/d/f");
        assert_ne!(s.mode & (1 << 27), 0);
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
    fn volumes_map_to_their_host_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let vol = tempfile::tempdir().unwrap();
        let m = MountRecord {
            kind: "volume".into(),
            name: "v".into(),
            source: vol.path().to_path_buf(),
            destination: "/data".into(),
            read_only: false,
            options: vec![],
            anonymous: false,
        };
        let root = Root::new(dir.path().to_path_buf(), &[m]);
        assert_eq!(
            root.host(&["data".into(), "x".into()]),
            vol.path().join("x")
        );
        assert_eq!(root.host(&["datax".into()]), dir.path().join("datax"));
    }

    #[test]
    fn extraction_refuses_escapes_and_round_trips() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("d")).unwrap();
        std::fs::write(src.path().join("d/f"), "hi").unwrap();
        let mut tar_bytes = Vec::new();
        write_tar(&src.path().join("d"), "d", &mut tar_bytes).unwrap();
        let dst = tempfile::tempdir().unwrap();
        extract(&tar_bytes[..], dst.path(), false).unwrap();
        assert_eq!(
            std::fs::read_to_string(dst.path().join("d/f")).unwrap(),
            "hi"
        );
        // A tar whose entry goes through a symlink pointing out of the target.
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), dst.path().join("out")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "out/pwned", &b"xx"[..]).unwrap();
        let evil = b.into_inner().unwrap();
        assert!(extract(&evil[..], dst.path(), false).is_err());
        assert!(!outside.path().join("pwned").exists());
        // Replacing a directory by a file is refused when asked.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "d", &b"x"[..]).unwrap();
        let clash = b.into_inner().unwrap();
        assert!(extract(&clash[..], dst.path(), true)
            .unwrap_err()
            .to_string()
            .contains("cannot overwrite directory"));
    }
}
