//! Directory trees that someone else controls, reached only through file descriptors: the one
//! tar extractor ([`extract`]) serving image layers, `docker cp` into containers and build
//! contexts, and the one tar writer ([`pack`]) serving `docker cp` out of containers and
//! `docker export`.
//!
//! Every path is resolved inside a [`Root`] by libpathrs (the library runc's maintainers wrote
//! for this): `openat2(RESOLVE_IN_ROOT)` where the kernel has it, an equivalent
//! descriptor-by-descriptor walk where it does not. A symlink, absolute or full of `..`, never
//! leads out of the root, and nothing is checked by path and then used by path: a container
//! that swaps a directory for a symlink to `/` between two steps (CVE-2018-15664) gains
//! nothing, because the next step starts from a descriptor, not from a path.
//!
//! Why libpathrs: it is maintained by runc's maintainers for exactly this job (container
//! roots), uses the kernel's own in-root resolution with a vetted fallback, and is already
//! linked through libcontainer. `cap-std` confines to a directory too but refuses absolute
//! symlinks rather than resolving them in the root as a container sees them (what `docker
//! cp` must do); `safe-path` only resolves a path to a string, which is check-then-use again.

mod extract;
mod pack;

use std::path::{Component, Path, PathBuf};

pub use extract::{extract, Policy};
pub use pack::{pack, pack_contents};
pub use pathrs::error::Error as ResolveError;
pub use pathrs::flags::OpenFlags;
pub use pathrs::{Handle, Root};

use crate::error::{ImageError, Result};

/// Opens `dir` as a root that paths are resolved in.
pub fn open_root(dir: &Path) -> Result<Root> {
    Root::open(dir).map_err(|source| ImageError::Resolve {
        context: format!("open {}", dir.display()),
        source,
    })
}

/// `path` without `.`, empty and leading `/` components; `None` if it has `..` (which
/// libpathrs would resolve, but no archive entry may use).
pub(crate) fn normal_components(path: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    for comp in path.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// `path` as the container (or layer) sees it, from a host path under the root's own path
/// (what `/proc/self/fd` shows for a descriptor): for messages and link targets only, never
/// to open anything.
pub fn path_in_root(root: &Root, host: &Path) -> Option<PathBuf> {
    let root_path = fd_path(root)?;
    let rest = host.strip_prefix(&root_path).ok()?;
    let mut out = PathBuf::from("/");
    out.extend(
        rest.components()
            .filter(|c| matches!(c, Component::Normal(_))),
    );
    Some(out)
}

/// The path the kernel shows for a descriptor, if it still has one.
pub fn fd_path(fd: &impl std::os::fd::AsFd) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_components_drop_dots_and_refuse_dotdot() {
        assert_eq!(
            normal_components(b"/a/./b//c/").unwrap(),
            vec![&b"a"[..], b"b", b"c"]
        );
        assert!(normal_components(b"./").unwrap().is_empty());
        assert!(normal_components(b"a/../b").is_none());
    }

    #[test]
    fn host_paths_map_back_into_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        let root = open_root(dir.path()).unwrap();
        let handle = root.resolve("/etc").unwrap();
        let host = fd_path(&handle).unwrap();
        assert_eq!(path_in_root(&root, &host).unwrap(), Path::new("/etc"));
        assert_eq!(
            path_in_root(&root, &fd_path(&root).unwrap()).unwrap(),
            Path::new("/")
        );
    }
}
