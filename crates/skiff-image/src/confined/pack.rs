//! The tar writer: walks a tree below a [`Root`] from descriptor to descriptor
//! (`openat(O_NOFOLLOW)` on the parent's descriptor), so a directory swapped for a symlink
//! while the walk runs is archived as the symlink it now is, never followed.
//!
//! Entries: directories, regular files, symlinks, fifos and device nodes, with mode, owner
//! and mtime; sockets are skipped (tar has no type for them, Docker skips them too). A file
//! that shrinks while it is read is padded with zeros to the size its header announced, one
//! that grows is cut there: the archive stays well-formed.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::dir::Dir;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;
use pathrs::Root;

use crate::error::{ImageError, IoContext, Result};

/// Writes a tar of `path` in `root` to `out`, its top entry named `name` (children are
/// `name/child`, so `.` gives `./child`). A symlink at `path` itself is archived as the
/// link, not followed, unless `path` ends with `/` (as in a shell, and in Docker).
pub fn pack(root: &Root, path: &Path, name: &Path, out: impl Write) -> Result<()> {
    let follow = path.as_os_str().as_bytes().ends_with(b"/");
    let top = if follow {
        root.resolve(path)
    } else {
        root.resolve_nofollow(path)
    };
    let top = top.map_err(|source| ImageError::Resolve {
        context: format!("resolve {}", path.display()),
        source,
    })?;
    let mut builder = tar::Builder::new(out);
    let top: OwnedFd = top.into();
    let meta = File::from(top.try_clone().ctx(|| "duplicate a descriptor".into())?)
        .metadata()
        .ctx(|| format!("stat {}", path.display()))?;
    let mut walk = Walk {
        builder: &mut builder,
    };
    if meta.is_dir() {
        let dir = reopen_dir(&top).ctx(|| format!("open {}", path.display()))?;
        walk.dir(dir, &meta, name)?;
    } else if meta.file_type().is_symlink() {
        // The handle is the link itself; its parent and name give its target.
        let target =
            nix::fcntl::readlinkat(&top, "").ctx(|| format!("readlink {}", path.display()))?;
        walk.link(&meta, name, Path::new(&target))?;
    } else {
        walk.other(top, &meta, name)?;
    }
    builder
        .into_inner()
        .and_then(|mut out| out.flush())
        .ctx(|| "write the archive".into())
}

/// Writes a tar of what the directory at `path` in `root` holds, without an entry for the
/// directory itself (children are `child`, `child/grandchild`): `docker export`'s layout.
pub fn pack_contents(root: &Root, path: &Path, out: impl Write) -> Result<()> {
    let top = root.resolve(path).map_err(|source| ImageError::Resolve {
        context: format!("resolve {}", path.display()),
        source,
    })?;
    let top: OwnedFd = top.into();
    let meta = File::from(top.try_clone().ctx(|| "duplicate a descriptor".into())?)
        .metadata()
        .ctx(|| format!("stat {}", path.display()))?;
    let dir = reopen_dir(&top).ctx(|| format!("open {}", path.display()))?;
    let mut builder = tar::Builder::new(out);
    Walk {
        builder: &mut builder,
    }
    .dir(dir, &meta, Path::new(""))?;
    builder
        .into_inner()
        .and_then(|mut out| out.flush())
        .ctx(|| "write the archive".into())
}

fn reopen_dir(fd: &impl AsFd) -> nix::Result<OwnedFd> {
    openat(
        fd,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

struct Walk<'a, W: Write> {
    builder: &'a mut tar::Builder<W>,
}

fn header(meta: &std::fs::Metadata) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    header
}

impl<W: Write> Walk<'_, W> {
    /// A directory (open for reading) and everything below it; an empty `name` leaves the
    /// directory's own entry out.
    fn dir(&mut self, dir: OwnedFd, meta: &std::fs::Metadata, name: &Path) -> Result<()> {
        if !name.as_os_str().is_empty() {
            let mut h = header(meta);
            // Directory names end with `/`, as Docker's (Go's) tar writer writes them.
            let mut dir_name = name.as_os_str().to_owned();
            if !dir_name.as_bytes().ends_with(b"/") {
                dir_name.push("/");
            }
            self.builder
                .append_data(&mut h, Path::new(&dir_name), std::io::empty())
                .ctx(|| format!("write {}", name.display()))?;
        }
        let mut children: Vec<Vec<u8>> = {
            let mut listing = Dir::from_fd(
                dir.try_clone()
                    .ctx(|| format!("duplicate the descriptor of {}", name.display()))?,
            )
            .ctx(|| format!("list {}", name.display()))?;
            listing
                .iter()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_bytes().to_vec())
                .filter(|n| n != b"." && n != b"..")
                .collect()
        };
        children.sort();
        for child in children {
            let child_name = name.join(OsStr::from_bytes(&child));
            self.child(&dir, &child, &child_name)?;
        }
        Ok(())
    }

    /// One entry of a directory: opened without following it, then archived as what the
    /// descriptor shows. An entry that vanished meanwhile is left out.
    fn child(&mut self, dir: &OwnedFd, child: &[u8], name: &Path) -> Result<()> {
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(dir, OsStr::from_bytes(child), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(e).ctx(|| format!("open {}", name.display())),
        };
        let meta = File::from(fd.try_clone().ctx(|| "duplicate a descriptor".into())?)
            .metadata()
            .ctx(|| format!("stat {}", name.display()))?;
        if meta.is_dir() {
            let sub = reopen_dir(&fd).ctx(|| format!("open {}", name.display()))?;
            self.dir(sub, &meta, name)
        } else if meta.file_type().is_symlink() {
            let target =
                nix::fcntl::readlinkat(&fd, "").ctx(|| format!("readlink {}", name.display()))?;
            self.link(&meta, name, Path::new(&target))
        } else {
            self.other(fd, &meta, name)
        }
    }

    fn link(&mut self, meta: &std::fs::Metadata, name: &Path, target: &Path) -> Result<()> {
        let mut h = header(meta);
        self.builder
            .append_link(&mut h, name, target)
            .ctx(|| format!("write {}", name.display()))
    }

    /// A regular file, fifo or device; `fd` is an `O_PATH` descriptor of it.
    fn other(&mut self, fd: OwnedFd, meta: &std::fs::Metadata, name: &Path) -> Result<()> {
        use std::os::unix::fs::FileTypeExt;
        let kind = meta.file_type();
        if kind.is_socket() {
            tracing::debug!(entry = %name.display(), "sockets are not archived");
            return Ok(());
        }
        let mut h = header(meta);
        if !kind.is_file() {
            return self
                .builder
                .append_data(&mut h, name, std::io::empty())
                .ctx(|| format!("write {}", name.display()));
        }
        // Re-opened through the descriptor (libpathrs goes through a verified /proc), not
        // the name: it is the file that was stat'ed.
        let file = pathrs::Handle::from_fd(fd)
            .reopen(pathrs::flags::OpenFlags::O_RDONLY)
            .map_err(|source| ImageError::Resolve {
                context: format!("open {}", name.display()),
                source,
            })?;
        let size = h.size().unwrap_or(0);
        let data = Exact {
            inner: file.take(size),
            left: size,
        };
        self.builder
            .append_data(&mut h, name, data)
            .ctx(|| format!("write {}", name.display()))
    }
}

/// Exactly `left` bytes: the reader's, then zeros if it ends early.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let mut n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            buf[..want].fill(0);
            n = want;
        }
        self.left -= n as u64;
        Ok(n)
    }
}
