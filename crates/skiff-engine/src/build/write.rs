//! The writing half of `COPY`/`ADD`: entries created in a build container's root through
//! libpathrs ([`skiff_image::confined`]): every directory resolved inside the root, every
//! entry made with `*at` calls on its directory's descriptor, never through a symlink at its
//! name; `ADD` archives through the confined extractor.

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use skiff_image::confined::{self, Handle, Policy, ResolveError, Root};

use super::copy::{invalid, open_maybe_gzip};
use crate::error::{EngineError, IoContext, Result};

pub(super) struct Writer<'a> {
    pub dest: &'a Root,
    pub owner: Option<(u32, u32)>,
    pub chmod: Option<u32>,
    /// Keep the source's owner when no `--chown` (copies from images); else root.
    pub keep_owner: bool,
}

fn resolve_error(path: &str, source: ResolveError) -> EngineError {
    skiff_image::ImageError::Resolve {
        context: format!("resolve {path} in the build container"),
        source,
    }
    .into()
}

/// Symlinks followed to create one destination, at most (as the kernel's limit).
const MAX_LINKS: usize = 40;

/// `path` with `.` and `..` applied lexically (`..` stops at the root).
fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// The in-container path's normal components; `..` (never in a cleaned destination) and
/// names with NUL are refused.
fn split(path: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.iter().any(|c| *c == ".." || c.contains('\0')) {
        return Err(invalid(format!("invalid destination path {path:?}")));
    }
    Ok(parts)
}

fn sys<T>(r: nix::Result<T>, what: impl FnOnce() -> String) -> Result<T> {
    r.map_err(std::io::Error::from).ctx(what)
}

/// A descriptor of the directory a resolved handle names (handles are `O_PATH`).
fn open_dir(handle: &Handle, path: &str) -> Result<OwnedFd> {
    match openat(
        handle,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Err(Errno::ENOTDIR) => Err(invalid(format!(
            "cannot copy to {path}: it is not a directory"
        ))),
        r => sys(r, || format!("open {path}")),
    }
}

/// What is at `name` in `dir`, not following a symlink there.
fn kind_at(dir: &OwnedFd, name: &str) -> Result<Option<SFlag>> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(SFlag::from_bits_truncate(
            st.st_mode & SFlag::S_IFMT.bits(),
        ))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => sys(Err(e), || format!("stat {name}")),
    }
}

impl Writer<'_> {
    /// The directory that holds the in-container `path` (every missing parent created,
    /// owned like the copy) as a descriptor, and the last name (`None` for `/`). Every
    /// step is resolved inside the root by libpathrs: a symlink on the way, absolute or
    /// full of `..`, leads somewhere in the root, never out of it.
    fn parent<'p>(&self, path: &'p str) -> Result<(OwnedFd, Option<&'p str>)> {
        self.parent_at_depth(path, 0)
    }

    fn parent_at_depth<'p>(
        &self,
        path: &'p str,
        depth: usize,
    ) -> Result<(OwnedFd, Option<&'p str>)> {
        let parts = split(path)?;
        let Some((name, dirs)) = parts.split_last() else {
            return Ok((self.dir_fd("/")?, None));
        };
        let mut dir = self.dir_fd("/")?;
        let mut at = String::new();
        for d in dirs {
            at.push('/');
            at.push_str(d);
            if kind_at(&dir, d)?.is_none() {
                sys(mkdirat(&dir, *d, Mode::from_bits_truncate(0o755)), || {
                    format!("create {at}")
                })?;
                let (uid, gid) = self.owner.unwrap_or((0, 0));
                self.chown_at(&dir, d, uid, gid)?;
            }
            // Resolved again from the root: `d` may be a symlink, followed inside the root.
            dir = match self.dest.resolve(&at) {
                Ok(handle) => open_dir(&handle, &at)?,
                Err(e) => {
                    // A dangling symlink: its target is created in the root first, as
                    // Docker's MkdirAll through FollowSymlinkInScope does.
                    let Ok(link) = readlinkat(&dir, *d) else {
                        return Err(resolve_error(&at, e));
                    };
                    if depth >= MAX_LINKS {
                        return Err(invalid(format!(
                            "{path}: too many levels of symbolic links"
                        )));
                    }
                    let link = link.to_string_lossy();
                    let base = at.rsplit_once('/').map_or("", |(b, _)| b);
                    let target = clean(&if link.starts_with('/') {
                        link.into_owned()
                    } else {
                        format!("{base}/{link}")
                    });
                    let (parent, name) = self.parent_at_depth(&target, depth + 1)?;
                    if let Some(name) = name {
                        if kind_at(&parent, name)?.is_none() {
                            self.mkdir_in(&parent, name, &target)?;
                            let (uid, gid) = self.owner.unwrap_or((0, 0));
                            self.chown_at(&parent, name, uid, gid)?;
                        }
                    }
                    self.dir_fd(&at)?
                }
            };
        }
        Ok((dir, Some(*name)))
    }

    /// The directory at the in-container `path`, symlinks followed inside the root.
    fn dir_fd(&self, path: &str) -> Result<OwnedFd> {
        let handle = self
            .dest
            .resolve(path)
            .map_err(|e| resolve_error(path, e))?;
        open_dir(&handle, path)
    }

    fn chown_at(&self, dir: &OwnedFd, name: &str, uid: u32, gid: u32) -> Result<()> {
        sys(
            fchownat(
                dir,
                name,
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ),
            || format!("chown {name}"),
        )
    }

    fn owner_of(&self, meta: &fs::Metadata) -> (u32, u32) {
        match self.owner {
            Some(o) => o,
            None if self.keep_owner => (meta.uid(), meta.gid()),
            None => (0, 0),
        }
    }

    /// Makes sure the in-container directory `path` exists (`meta`: the source directory
    /// whose mode and owner it takes when created or copied over).
    pub(super) fn dir(&self, path: &str, meta: Option<&fs::Metadata>) -> Result<()> {
        let existing = self
            .dest
            .resolve(path)
            .ok()
            .and_then(|h| open_dir(&h, path).ok());
        let (fd, fresh) = match existing {
            Some(fd) => (fd, false),
            None => {
                let (parent, name) = self.parent(path)?;
                let Some(name) = name else {
                    return Err(invalid("the build container has no root directory"));
                };
                if kind_at(&parent, name)?.is_some() {
                    // Not a directory (or a dangling symlink): replaced by one.
                    sys(unlinkat(&parent, name, UnlinkatFlags::NoRemoveDir), || {
                        format!("replace {path}")
                    })?;
                }
                self.mkdir_in(&parent, name, path)?
            }
        };
        if !fresh && meta.is_none() {
            return Ok(());
        }
        let mode = self
            .chmod
            .or(meta.map(|m| m.mode() & 0o7777))
            .unwrap_or(0o755);
        sys(fchmod(&fd, Mode::from_bits_truncate(mode)), || {
            format!("chmod {path}")
        })?;
        let (uid, gid) = match meta {
            Some(m) => self.owner_of(m),
            None => self.owner.unwrap_or((0, 0)),
        };
        sys(
            fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))),
            || format!("chown {path}"),
        )
    }

    /// Creates the directory `name` in `parent` and opens it (never through a symlink).
    fn mkdir_in(&self, parent: &OwnedFd, name: &str, path: &str) -> Result<(OwnedFd, bool)> {
        sys(
            mkdirat(parent, name, Mode::from_bits_truncate(0o755)),
            || format!("create {path}"),
        )?;
        let fd = sys(
            openat(
                parent,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            ),
            || format!("open {path}"),
        )?;
        Ok((fd, true))
    }

    /// The parent of a file-like `target` and its name, anything but a directory at the
    /// name removed first (a symlink there is replaced, never written through).
    fn replace(&self, target: &str) -> Result<(OwnedFd, String)> {
        let (parent, name) = self.parent(target)?;
        let Some(name) = name else {
            return Err(invalid(format!(
                "cannot copy to {target}: it is a directory"
            )));
        };
        match kind_at(&parent, name)? {
            Some(SFlag::S_IFDIR) => {
                return Err(invalid(format!(
                    "cannot copy to {target}: it is a directory"
                )))
            }
            Some(_) => sys(unlinkat(&parent, name, UnlinkatFlags::NoRemoveDir), || {
                format!("replace {target}")
            })?,
            None => {}
        }
        Ok((parent, name.to_string()))
    }

    /// Copies one source entry (file, directory, symlink) to the in-container `target`.
    pub(super) fn entry(&self, src: &Path, target: &str) -> Result<()> {
        let meta = fs::symlink_metadata(src).ctx(|| format!("stat {}", src.display()))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            return self.dir(target, Some(&meta));
        }
        if !ft.is_file() && !ft.is_symlink() {
            return Err(invalid(format!(
                "cannot copy {}: not a regular file, directory or symlink",
                src.display()
            )));
        }
        let (parent, name) = self.replace(target)?;
        let (uid, gid) = self.owner_of(&meta);
        if ft.is_symlink() {
            let link = fs::read_link(src).ctx(|| format!("read link {}", src.display()))?;
            sys(symlinkat(link.as_path(), &parent, name.as_str()), || {
                format!("create {target}")
            })?;
            return self.chown_at(&parent, &name, uid, gid);
        }
        let mut f = File::open(src).ctx(|| format!("open {}", src.display()))?;
        let file = NewFile {
            parent: &parent,
            name: &name,
            target,
        };
        self.write_new(&mut f, &file, meta.mode() & 0o7777, (uid, gid))
    }

    pub(super) fn file_from(&self, content: &mut dyn Read, mode: u32, target: &str) -> Result<()> {
        let (parent, name) = self.replace(target)?;
        let owner = self.owner.unwrap_or((0, 0));
        let file = NewFile {
            parent: &parent,
            name: &name,
            target,
        };
        self.write_new(content, &file, mode, owner)
    }

    fn write_new(
        &self,
        content: &mut dyn Read,
        file: &NewFile<'_>,
        mode: u32,
        (uid, gid): (u32, u32),
    ) -> Result<()> {
        let target = file.target;
        let fd = sys(
            openat(
                file.parent,
                file.name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            ),
            || format!("create {target}"),
        )?;
        let mut out = File::from(fd);
        std::io::copy(content, &mut out).ctx(|| format!("write {target}"))?;
        sys(
            fchown(&out, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))),
            || format!("chown {target}"),
        )?;
        let mode = self.chmod.unwrap_or(mode);
        sys(fchmod(&out, Mode::from_bits_truncate(mode)), || {
            format!("chmod {target}")
        })
    }

    /// `ADD archive.tar /dir/`: the archive's entries under `dir` through the confined
    /// extractor (`docker cp`'s), none of them outside the root.
    pub(super) fn extract(&self, archive: &Path, dir: &str) -> Result<()> {
        self.dir(dir, None)?;
        let bad = |e: skiff_image::ImageError| {
            invalid(format!("error extracting {}: {e}", archive.display()))
        };
        confined::extract(
            open_maybe_gzip(archive)?,
            self.dest,
            Path::new(dir),
            Policy::Copy {
                no_overwrite_dir_non_dir: false,
            },
        )
        .map_err(bad)?;
        let Some((uid, gid)) = self.owner else {
            return Ok(());
        };
        // --chown: every extracted entry (a second pass over the archive for the names).
        let mut tar = tar::Archive::new(open_maybe_gzip(archive)?);
        let entries = tar
            .entries()
            .ctx(|| format!("read {}", archive.display()))?;
        for entry in entries {
            let entry = entry.ctx(|| format!("read {}", archive.display()))?;
            let rel = entry.path().ctx(|| format!("read {}", archive.display()))?;
            let path = Path::new(dir).join(rel);
            let shown = path.to_string_lossy().into_owned();
            let handle = self
                .dest
                .resolve_nofollow(&path)
                .map_err(|e| resolve_error(&shown, e))?;
            sys(
                fchownat(
                    &handle,
                    "",
                    Some(Uid::from_raw(uid)),
                    Some(Gid::from_raw(gid)),
                    AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
                ),
                || format!("chown {shown}"),
            )?;
        }
        Ok(())
    }
}

/// A regular file about to be created: its directory, its name there, and the
/// in-container path for messages.
struct NewFile<'a> {
    parent: &'a OwnedFd,
    name: &'a str,
    target: &'a str,
}
