//! A container's filesystem as its processes see it — its rootfs with its volumes and bind
//! mounts at their destinations — for `docker cp`, built the way Docker builds it: in a
//! private mount namespace of a thread of its own. Paths are then resolved in that one tree
//! by [`skiff_image::confined`], so a symlink crosses into a volume exactly as it would in
//! the container, and never out of it.
//!
//! The namespace belongs to the thread alone (`unshare(CLONE_NEWNS)` unshares the thread's
//! filesystem context, not the daemon's) and is a slave of the host's: nothing mounted in it
//! reaches the host, and it vanishes with the thread, also when the work fails or panics.

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use skiff_image::confined::{self, Root};

use crate::error::{EngineError, IoContext, Result};
use crate::store::MountRecord;

/// A mount of the view: a host path shown at `destination` in the container.
#[derive(Debug, Clone)]
pub(crate) struct ViewMount {
    pub destination: String,
    pub source: PathBuf,
    pub read_only: bool,
}

impl ViewMount {
    /// The container's volumes and bind mounts (tmpfs mounts exist only inside the container,
    /// as in Docker's view), outermost first.
    pub(crate) fn of(mounts: &[MountRecord]) -> Vec<ViewMount> {
        let mut out: Vec<ViewMount> = mounts
            .iter()
            .filter(|m| m.kind != "tmpfs")
            .map(|m| ViewMount {
                destination: m.destination.clone(),
                source: m.source.clone(),
                read_only: m.read_only,
            })
            .collect();
        out.sort_by_key(|m| depth(&m.destination));
        out
    }
}

fn depth(path: &str) -> usize {
    path.split('/').filter(|c| !c.is_empty()).count()
}

/// The mount of `mounts` that `path` (in the container, before symlinks) lies in, if any.
pub(crate) fn mount_of<'a>(mounts: &'a [ViewMount], path: &str) -> Option<&'a ViewMount> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    mounts
        .iter()
        .filter(|m| {
            let dest: Vec<&str> = m.destination.split('/').filter(|c| !c.is_empty()).collect();
            parts.starts_with(&dest)
        })
        .max_by_key(|m| depth(&m.destination))
}

/// Runs `work` on the container's tree (its rootfs, mounted at `rootfs` on the host, with
/// `mounts` over it), on a thread of its own in a private mount namespace. Blocking.
pub(crate) fn with_view<T: Send>(
    rootfs: &Path,
    mounts: &[ViewMount],
    work: impl FnOnce(&Root) -> Result<T> + Send,
) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_private_namespace()?;
            let root = confined::open_root(rootfs)?;
            for m in mounts {
                bind(&root, m)?;
            }
            work(&root)
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Gives this thread a mount namespace of its own, slave to the host's.
fn enter_private_namespace() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .ctx(|| "unshare the mount namespace for the container's view".into())?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .ctx(|| "make the view's mounts private".into())
}

/// Mounts `m.source` at its destination in `root`, creating the mount point (a directory, or
/// a file for a file) inside the root when it is missing, as Docker does.
fn bind(root: &Root, m: &ViewMount) -> Result<()> {
    let source_is_dir = std::fs::metadata(&m.source)
        .ctx(|| format!("stat {}", m.source.display()))?
        .is_dir();
    let resolve_err = |source| {
        EngineError::Image(skiff_image::ImageError::Resolve {
            context: format!("resolve the mount point {} in the container", m.destination),
            source,
        })
    };
    let target = match root.resolve(&m.destination) {
        Ok(handle) => handle,
        Err(_) if source_is_dir => root
            .mkdir_all(
                &m.destination,
                &std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .map_err(resolve_err)?,
        Err(_) => {
            let parent = Path::new(&m.destination).parent().unwrap_or(Path::new("/"));
            root.mkdir_all(parent, &std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(resolve_err)?;
            root.create_file(
                &m.destination,
                pathrs_flags_create(),
                &std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )
            .map_err(resolve_err)?;
            root.resolve(&m.destination).map_err(resolve_err)?
        }
    };
    // The mount point is named through its descriptor: a symlink swapped in after the
    // resolution cannot redirect the mount.
    nix::mount::mount(
        Some(&m.source),
        &proc_path(&target),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| {
        format!(
            "bind {} at {} in the view",
            m.source.display(),
            m.destination
        )
    })?;
    if m.read_only {
        // The new mount's root, resolved again (the old descriptor is under it).
        let mounted = root.resolve(&m.destination).map_err(resolve_err)?;
        nix::mount::mount(
            None::<&str>,
            &proc_path(&mounted),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .ctx(|| format!("make {} read-only in the view", m.destination))?;
    }
    Ok(())
}

fn pathrs_flags_create() -> skiff_image::confined::OpenFlags {
    skiff_image::confined::OpenFlags::O_WRONLY | skiff_image::confined::OpenFlags::O_NOFOLLOW
}

fn proc_path(fd: &impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/thread-self/fd/{}", fd.as_fd().as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts() -> Vec<ViewMount> {
        let m = |d: &str| ViewMount {
            destination: d.into(),
            source: PathBuf::from("/srv").join(d.trim_start_matches('/')),
            read_only: false,
        };
        ViewMount::of(&[])
            .into_iter()
            .chain([m("/data/inner"), m("/data")])
            .collect()
    }

    #[test]
    fn paths_belong_to_their_innermost_mount() {
        let mounts = mounts();
        assert_eq!(mount_of(&mounts, "/data/x").unwrap().destination, "/data");
        assert_eq!(
            mount_of(&mounts, "/data/inner/y").unwrap().destination,
            "/data/inner"
        );
        assert!(mount_of(&mounts, "/datax").is_none());
        assert!(mount_of(&mounts, "/").is_none());
    }

    #[test]
    fn the_view_shows_volumes_and_leaves_the_host_alone() {
        let rootfs = tempfile::tempdir().unwrap();
        let volume = tempfile::tempdir().unwrap();
        std::fs::create_dir(rootfs.path().join("data")).unwrap();
        std::fs::write(volume.path().join("v"), "in the volume").unwrap();
        let mounts = vec![ViewMount {
            destination: "/data".into(),
            source: volume.path().to_path_buf(),
            read_only: true,
        }];
        let seen = with_view(rootfs.path(), &mounts, |root| {
            let file = root
                .resolve("/data/v")
                .map_err(|e| EngineError::invalid(e.to_string()))?;
            let text = std::fs::read_to_string(proc_path(&file)).unwrap();
            let refused =
                std::fs::write(proc_path(&root.resolve("/data").unwrap()).join("new"), "x");
            Ok((text, refused.is_err()))
        })
        .unwrap();
        assert_eq!(seen, ("in the volume".to_string(), true));
        // Nothing of the view is mounted on the host.
        assert!(std::fs::read_dir(rootfs.path().join("data"))
            .unwrap()
            .next()
            .is_none());
    }
}
