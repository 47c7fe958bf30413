//! A container's root filesystem (an overlay of its image's snapshots, its init layer and its
//! own upper dir, mounted while it runs or while `docker cp` needs it) and where the
//! `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` generated for it (by
//! `networks::etc`) are mounted.
//!
//! Like Docker, the generated files live in the container's own directory and are
//! bind-mounted (read-write) over their paths in the container; the init layer holds the empty
//! files they are mounted on and the `/proc`, `/sys` and `/dev` directories the runtime mounts
//! on, so that the runtime never creates mount points in the upper dir and they never show in
//! `docker diff` or `docker commit`. Its content is the same for every container, so one init
//! layer under the engine's root serves them all (a read-only lower dir of each overlay).

use std::path::{Path, PathBuf};

use super::Container;
use crate::error::{EngineError, IoContext, Result};
use crate::Engine;

/// Whether something is mounted exactly at `path`: its mount is not its parent's (two
/// `statx` calls; `/proc/self/mountinfo` on kernels without mount ids, before 5.8).
pub(crate) fn is_mounted(path: &Path) -> bool {
    let Some(parent) = path.parent() else {
        return true; // the root
    };
    match (mount_id(path), mount_id(parent)) {
        (Ok(Some(own)), Ok(Some(parents))) => own != parents,
        (Err(_), _) => false,
        _ => listed_in_mountinfo(path),
    }
}

/// The id of the mount `path` (not followed if a symlink) is on; None when the kernel does
/// not report mount ids.
fn mount_id(path: &Path) -> std::io::Result<Option<u64>> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statx is plain data; zeroes are a valid value for every field.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statx buffer we own, for the call's duration.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id))
}

/// Whether `path` is a mount point listed in `/proc/self/mountinfo`.
fn listed_in_mountinfo(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape(mp) == want)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Ok(n) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts the container's rootfs at its bundle's `rootfs` unless it already is.
pub(crate) async fn mount(engine: &Engine, c: &Container) -> Result<PathBuf> {
    let target = c.rootfs();
    if is_mounted(&target) {
        return Ok(target);
    }
    let image_id = c.rec().image_id;
    let images = engine.images.clone();
    let lowers = tokio::task::spawn_blocking(move || images.prepare_rootfs(&image_id))
        .await
        .map_err(std::io::Error::other)
        .ctx(|| "prepare rootfs".into())??;
    let upper = c.upper_dir();
    let work = c.dir.join("fs").join("work");
    for d in [&upper, &work, &target] {
        std::fs::create_dir_all(d).ctx(|| format!("create {}", d.display()))?;
    }
    let lowers: Vec<PathBuf> = std::iter::once(engine.init_layer()).chain(lowers).collect();
    skiff_image::overlay::mount(&lowers, &upper, &work, &target)?;
    tracing::debug!(id = %c.id, target = %target.display(), "rootfs mounted");
    Ok(target)
}

/// Where the init layer shared by all containers lives under the engine's root.
pub(crate) fn init_layer_of(root: &Path) -> PathBuf {
    root.join("init-layer")
}

impl Engine {
    /// The init layer shared by all containers (see [`ensure_init_layer`]), made when the
    /// engine opened.
    pub(crate) fn init_layer(&self) -> PathBuf {
        init_layer_of(&self.cfg.root)
    }
}

/// Unmounts the rootfs (idempotent).
pub(crate) fn unmount(c: &Container) -> Result<()> {
    let target = c.rootfs();
    if is_mounted(&target) {
        skiff_image::overlay::unmount(&target)?;
    }
    Ok(())
}

/// Creates the container's working directory (`-w`, the image's `WORKDIR`) if it is missing,
/// as Docker does before a start (moby's `SetupWorkingDirectory`): mode 0755, owned by root,
/// resolved inside the mounted rootfs (a symlink in the image never leads out of it).
pub(crate) fn ensure_working_dir(rootfs: &Path, dir: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.trim_matches('/').is_empty() {
        return Ok(());
    }
    let root = skiff_image::confined::open_root(rootfs)?;
    if let Ok(handle) = root.resolve(dir) {
        let is_dir = std::fs::File::from(std::os::fd::OwnedFd::from(handle))
            .metadata()
            .is_ok_and(|m| m.is_dir());
        return match is_dir {
            true => Ok(()),
            false => Err(EngineError::invalid(format!(
                "Cannot mkdir: {dir} is not a directory"
            ))),
        };
    }
    root.mkdir_all(dir, &std::fs::Permissions::from_mode(0o755))
        .map(drop)
        .map_err(|e| {
            EngineError::invalid(format!("cannot create the working directory {dir}: {e}"))
        })
}

/// The files generated for each container, in its directory and at `/etc/<name>` inside.
const ETC_FILES: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

/// Host copies of the generated /etc files and where they go in the container.
pub(crate) fn etc_files(dir: &Path) -> Vec<(PathBuf, String)> {
    ETC_FILES
        .iter()
        .map(|f| (dir.join(f), format!("/etc/{f}")))
        .collect()
}

/// Paths in the container of the generated /etc files.
pub(crate) fn etc_paths() -> impl Iterator<Item = String> {
    ETC_FILES.iter().map(|f| format!("/etc/{f}"))
}

/// The directories every container's runtime mounts something on (`/proc`, `/sys`, `/dev`):
/// in the init layer, as in Docker's, so that an image without them does not get them in
/// its upper dir (`A /proc` in `docker diff`, carried into `docker commit`).
const MOUNT_POINT_DIRS: [&str; 3] = ["proc", "sys", "dev"];

/// Creates (if missing) the init layer shared by all containers: the lower dir right under
/// each container's upper dir, holding an empty file at each generated /etc file's path,
/// where the runtime bind-mounts the container's own, and the mount points' directories
/// (Docker's `-init` layer, which Docker makes per container with the same content). The
/// engine makes it once when it opens; a container's start then creates no file of its own
/// for it. Never written through an overlay: lower dirs are read-only.
pub(crate) fn ensure_init_layer(init: &Path) -> Result<()> {
    let etc = init.join("etc");
    std::fs::create_dir_all(&etc).ctx(|| format!("create {}", etc.display()))?;
    for name in ETC_FILES {
        let path = etc.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .ctx(|| format!("create {}", path.display()))?;
    }
    for dir in MOUNT_POINT_DIRS {
        let path = init.join(dir);
        std::fs::create_dir_all(&path).ctx(|| format!("create {}", path.display()))?;
    }
    // Docker's init layer has an empty `/.dockerenv` (mode 0755); programs test for it to
    // know they run in a container.
    let dockerenv = init.join(".dockerenv");
    if !dockerenv.exists() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&dockerenv, b"").ctx(|| format!("create {}", dockerenv.display()))?;
        std::fs::set_permissions(&dockerenv, std::fs::Permissions::from_mode(0o755))
            .ctx(|| format!("chmod {}", dockerenv.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_layer_holds_empty_mount_points_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let init = dir.path().join("init");
        ensure_init_layer(&init).unwrap();
        std::fs::write(init.join("etc/hosts"), "kept").unwrap();
        ensure_init_layer(&init).unwrap();
        for path in etc_paths() {
            let file = init.join(path.trim_start_matches('/'));
            assert!(file.is_file(), "{}", file.display());
        }
        assert!(init.join(".dockerenv").is_file());
        for dir in ["proc", "sys", "dev"] {
            assert!(init.join(dir).is_dir(), "{dir}");
        }
        assert_eq!(
            std::fs::read_to_string(init.join("etc/hosts")).unwrap(),
            "kept"
        );
        assert_eq!(
            std::fs::metadata(init.join("etc/hostname")).unwrap().len(),
            0
        );
    }

    #[test]
    fn mountinfo_unescaping_and_root_is_mounted() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert!(is_mounted(Path::new("/")));
        assert!(listed_in_mountinfo(Path::new("/")));
        assert!(!is_mounted(Path::new("/definitely/not/mounted")));
        assert!(!listed_in_mountinfo(Path::new("/definitely/not/mounted")));
    }

    #[test]
    fn a_mount_point_is_told_from_a_plain_directory() {
        let dir = tempfile::Builder::new()
            .prefix("skiff-is-mounted")
            .tempdir()
            .unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        assert!(!is_mounted(&target));
        nix::mount::mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let mounted = (is_mounted(&target), listed_in_mountinfo(&target));
        nix::mount::umount(&target).unwrap();
        assert_eq!(mounted, (true, true));
        assert!(!is_mounted(&target));
    }
}
