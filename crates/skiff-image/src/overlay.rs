//! overlayfs mounts of snapshots.
//!
//! The mount options must fit in one page. When the plain absolute paths do not fit (deep
//! images), every directory is opened as an `O_PATH` descriptor and named
//! `/proc/self/fd/N` in the options: overlayfs resolves each path at mount time, so the
//! descriptors can be closed afterwards. Unlike `chdir` into a common parent (what
//! Docker's re-exec helper does) this is safe in the multi-threaded daemon and creates no
//! files; it allows about 200 layers instead of about 40.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount as mount2, umount2, MntFlags, MsFlags};

use crate::error::{ImageError, IoContext, Result};

/// Mounts an overlay at `target` of `lowers` (top-most first) with `upper` and `work`.
pub fn mount(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    mount_overlay(lowers, Some((upper, work)), target, MsFlags::empty())
}

/// Mounts `lowers` (top-most first) read-only at `target`: an overlay without upper and
/// work dirs, or a read-only bind mount for a single lower dir (overlayfs needs two).
pub fn mount_read_only(lowers: &[PathBuf], target: &Path) -> Result<()> {
    if let [only] = lowers {
        mount2(
            Some(only.as_path()),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("bind mount {} on {}", only.display(), target.display()))?;
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        return mount2(None::<&str>, target, None::<&str>, flags, None::<&str>)
            .ctx(|| format!("make {} read-only", target.display()));
    }
    mount_overlay(lowers, None, target, MsFlags::MS_RDONLY)
}

fn mount_overlay(
    lowers: &[PathBuf],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
    flags: MsFlags,
) -> Result<()> {
    if lowers.is_empty() {
        return Err(ImageError::invalid(
            "an overlay needs at least one lower directory",
        ));
    }
    let mut dirs: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    if let Some((upper, work)) = upper_work {
        dirs.extend([upper, work]);
    }
    for dir in &dirs {
        let s = dir.to_string_lossy();
        if s.contains([':', ',']) || !dir.is_absolute() {
            return Err(ImageError::invalid(format!(
                "overlay directory {s:?} must be absolute without ':' or ','"
            )));
        }
    }
    let plain: Vec<String> = dirs
        .iter()
        .map(|d| d.to_string_lossy().into_owned())
        .collect();
    let data = options(&plain, lowers.len(), upper_work.is_some());
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as usize;
    if data.len() < page {
        return mount_data(target, flags, &data);
    }
    // Keep the descriptors open until the mount call has resolved the paths.
    let files = dirs
        .iter()
        .map(|d| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open(d)
                .ctx(|| format!("open {}", d.display()))
        })
        .collect::<Result<Vec<File>>>()?;
    let short: Vec<String> = files
        .iter()
        .map(|f| format!("/proc/self/fd/{}", f.as_raw_fd()))
        .collect();
    let data = options(&short, lowers.len(), upper_work.is_some());
    if data.len() >= page {
        return Err(ImageError::invalid(format!(
            "too many layers to mount ({})",
            lowers.len()
        )));
    }
    mount_data(target, flags, &data)
}

fn options(dirs: &[String], lowers: usize, upper: bool) -> String {
    let mut data = format!("lowerdir={}", dirs[..lowers].join(":"));
    if upper {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            dirs[lowers],
            dirs[lowers + 1]
        ));
    }
    data
}

fn mount_data(target: &Path, flags: MsFlags, data: &str) -> Result<()> {
    mount2(Some("overlay"), target, Some("overlay"), flags, Some(data))
        .ctx(|| format!("mount overlay on {}", target.display()))
}

/// Unmounts `target`, detaching lazily when it is busy; succeeds when nothing is mounted.
pub fn unmount(target: &Path) -> Result<()> {
    match umount2(target, MntFlags::empty()) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EBUSY) => {
            tracing::debug!(target = %target.display(), "mount busy, detaching lazily");
            umount2(target, MntFlags::MNT_DETACH).ctx(|| format!("detach {}", target.display()))
        }
        Err(e) => Err(e).ctx(|| format!("unmount {}", target.display())),
    }
}
