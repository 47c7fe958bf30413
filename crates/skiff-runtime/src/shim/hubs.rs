//! Mount hubs: host directories that hold many mounts of which one container needs only a
//! few — a node's pod sandboxes (namespace files, `/dev/shm`s, memory-backed volumes, six
//! or so mounts per pod). Every host mount is in every shim's mount table, and the runtime
//! reads that table again and again for each container (libcgroups' v1 manager reads
//! `/proc/self/mountinfo` once per controller, in full for each controller the host does not
//! mount; the container's init copies the table with its mount namespace and reads it
//! again), so a container's start cost grew with the number of pods on the node.
//!
//! A shim given hubs moves into a mount namespace of its own — a slave of the host's, so
//! mounts made on the host later still reach it — detaches each hub there and puts back, at
//! their own paths, only the mounts under it that its container's spec names (its
//! namespace files, `/dev/shm`, volumes). The container is created from that namespace.
//! Nothing changes on the host, and a hub must be a mount of its own (the node agent
//! bind-mounts its directory onto itself) so that one detach leaves all of it out; the
//! files under it stay where they are, only the mounts on top of them go.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// Leaves the mounts under `hubs` that the spec in `bundle` does not name out of this
/// process's mount namespace (a new one). Hubs that are not mount points are skipped; with
/// none left the namespace stays the host's. An error means the container would miss one
/// of its mounts. Must run single-threaded.
pub(super) fn leave_out(hubs: &[PathBuf], bundle: &Path) -> io::Result<()> {
    let hubs: Vec<&PathBuf> = hubs.iter().filter(|h| is_mount_point(h)).collect();
    if hubs.is_empty() {
        return Ok(());
    }
    let wanted = spec_paths(bundle)?;
    // To go back to should a hub turn out not to be a bind of its own directory.
    let host_ns = std::fs::File::open("/proc/self/ns/mnt")?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(io::Error::from)?;
    for hub in hubs {
        // Copies of the wanted mounts (with what is mounted below them), taken before the
        // hub goes, put back once it has. Until the hub is detached the namespace is a
        // full copy of the host's: a failure up to there only leaves the hub in.
        let trees = match mounts_to_keep(hub, &wanted).and_then(|keep| {
            keep.into_iter()
                .map(|path| clone_tree(&path).map(|fd| (path, fd)))
                .collect::<io::Result<Vec<_>>>()
        }) {
            Ok(trees) => trees,
            Err(e) => {
                tracing::warn!(hub = %hub.display(), error = %e, "mount hub kept whole");
                continue;
            }
        };
        let before = identity(hub)?;
        if let Err(e) = umount2(hub.as_path(), MntFlags::MNT_DETACH) {
            tracing::warn!(hub = %hub.display(), error = %e, "mount hub kept whole");
            continue;
        }
        // A hub hides nothing but mounts: with it gone, its path is the same directory. If
        // it is not (something else was mounted there), the files under it are gone from
        // this namespace: back to the host's, with its whole table.
        if identity(hub).ok() != Some(before) {
            tracing::warn!(hub = %hub.display(), "not a bind mount of its own directory; the host's mount table is kept");
            return nix::sched::setns(&host_ns, CloneFlags::CLONE_NEWNS).map_err(io::Error::from);
        }
        for (path, tree) in trees {
            attach(tree, &path)?;
        }
        tracing::debug!(hub = %hub.display(), "mounts of other containers left out");
    }
    Ok(())
}

fn identity(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// Whether the mount on top at `dir` is a bind of the directory it covers: a mount of the
/// same directory right below it (a hub made over a file system mounted there), or the only
/// mount there, of the file system `dir`'s parent is on (a hub made over a plain directory).
fn is_hub(dir: &Path) -> io::Result<bool> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let want = dir.to_string_lossy();
    // (device, root) of each mount at `dir`, oldest first.
    let at: Vec<(&str, &str)> = info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 4 && f[4].replace("\\040", " ") == want).then(|| (f[2], f[3]))
        })
        .collect();
    Ok(match at.as_slice() {
        [] => false,
        [_] => {
            let parent = dir.parent().unwrap_or(Path::new("/"));
            identity(dir)?.0 == identity(parent)?.0
        }
        [.., below, top] => below == top,
    })
}

/// Makes `dir` a mount hub: a bind mount of itself, private (mounts made under it later
/// reach no other mount namespace, shims' included). Kept as it is when it is one already,
/// e.g. from an earlier run whose pods still run; mounts already under it (pods of a version
/// without hubs) are carried into the new hub. A file system mounted at `dir` (a tmpfs run
/// dir) gets the bind on top of it.
pub fn make_hub(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if !is_hub(dir)? {
        mount(
            Some(dir),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(io::Error::from)?;
    }
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// The paths the spec refers to on the host: its root, namespace files and mount sources.
fn spec_paths(bundle: &Path) -> io::Result<Vec<PathBuf>> {
    let spec = oci_spec::runtime::Spec::load(bundle.join("config.json"))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let mut paths = Vec::new();
    if let Some(root) = spec.root() {
        paths.push(bundle.join(root.path()));
    }
    if let Some(namespaces) = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()) {
        paths.extend(namespaces.iter().filter_map(|n| n.path().clone()));
    }
    if let Some(mounts) = spec.mounts() {
        paths.extend(mounts.iter().filter_map(|m| m.source().clone()));
    }
    paths.retain(|p| p.is_absolute());
    Ok(paths)
}

/// For each wanted path under `hub` that lies on a mount below it, the outermost such
/// mount's path (nested ones come along with it); ancestors only once.
fn mounts_to_keep(hub: &Path, wanted: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let hub_id = mount_id(hub)?;
    let mut keep: Vec<PathBuf> = Vec::new();
    for path in wanted
        .iter()
        .filter(|p| p.starts_with(hub) && p.as_path() != hub)
    {
        let Some(top) = outermost_mount(hub, hub_id, path) else {
            continue;
        };
        if keep.iter().any(|k| top.starts_with(k)) {
            continue;
        }
        keep.retain(|k| !k.starts_with(&top));
        keep.push(top);
    }
    Ok(keep)
}

/// The first directory (or file) from `hub` down to `path` that is not on the hub's own
/// mount; None when `path` is (a plain file under the hub) or does not exist.
fn outermost_mount(hub: &Path, hub_id: u64, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(hub).ok()?;
    let mut at = hub.to_path_buf();
    for component in rel.components() {
        at.push(component);
        match mount_id(&at) {
            Ok(id) if id != hub_id => return Some(at),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

fn is_mount_point(path: &Path) -> bool {
    let Some(parent) = path.parent() else {
        return false;
    };
    matches!((mount_id(path), mount_id(parent)), (Ok(own), Ok(up)) if own != up)
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The id of the mount `path` (not followed if a symlink) is on.
fn mount_id(path: &Path) -> io::Result<u64> {
    let c = c_path(path)?;
    // SAFETY: statx is plain data; zeroes are a valid value for every field.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statx buffer we own, for the call's duration.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel reports no mount ids",
        ));
    }
    Ok(stx.stx_mnt_id)
}

/// A detached copy of the mount at `path` and everything mounted below it.
fn clone_tree(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_RECURSIVE as u32;
    // SAFETY: open_tree with a NUL-terminated path we own; it returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: open_tree returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Mounts the detached tree `tree` at `path`.
fn attach(tree: OwnedFd, path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let c = c_path(path)?;
    // SAFETY: move_mount from an fd we own (empty path) onto a NUL-terminated path we own.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outermost_mount_of_a_plain_path_under_the_hub_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let hub = dir.path();
        std::fs::create_dir_all(hub.join("pod/volumes")).unwrap();
        let id = mount_id(hub).unwrap();
        assert_eq!(outermost_mount(hub, id, &hub.join("pod/volumes")), None);
        assert_eq!(outermost_mount(hub, id, &hub.join("pod/missing")), None);
        assert!(!is_mount_point(hub));
    }

    #[test]
    fn the_outer_of_two_nested_mounts_is_kept_once() {
        let hub = Path::new("/");
        // /proc and /sys are mounts of their own on every Linux host.
        let wanted = vec![
            PathBuf::from("/proc/self"),
            PathBuf::from("/proc"),
            PathBuf::from("/sys/kernel"),
        ];
        let keep = mounts_to_keep(hub, &wanted).unwrap();
        assert!(keep.contains(&PathBuf::from("/proc")), "{keep:?}");
        assert!(keep.contains(&PathBuf::from("/sys")), "{keep:?}");
        assert_eq!(keep.len(), 2, "{keep:?}");
    }
}
