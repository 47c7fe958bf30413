//! The tar extractor: every entry's directory is resolved inside the root by libpathrs, the
//! entry itself is created with `*at` calls on that directory's descriptor, never following
//! a symlink at its name.
//!
//! Rules for every policy:
//! - `..` anywhere in an entry's path is refused; a leading `/` is dropped (Docker treats
//!   `/a` as `a`);
//! - an existing entry at the name is replaced (a symlink there is removed, never written
//!   through); an existing directory stays when the entry is a directory too;
//! - hard links name an entry below the destination;
//! - `trusted.overlay.*` xattrs are dropped: only whiteout translation sets them, so an
//!   archive cannot forge overlay redirects or opaque markers.
//!
//! [`Policy::Layer`] adds: no symlink is ever followed (an entry whose directory goes
//! through one is refused, even one pointing inside the layer); `.wh.NAME` becomes a 0/0
//! character device `NAME` and `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its
//! directory; block and character devices other than whiteouts are refused.
//! [`Policy::Copy`] resolves symlinks as the container would (never out of its root) and
//! writes `.wh.` names and devices as they are, like Docker's `docker cp`.
//!
//! On error the destination may hold part of the archive.

use std::ffi::{CString, OsStr};
use std::fs::{File, Permissions};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fstatat, futimens, mkdirat, mknodat, utimensat, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use pathrs::flags::ResolverFlags;
use pathrs::{Handle, Root, RootRef};
use tar::EntryType;

use super::normal_components;
use crate::error::{ImageError, IoContext, Result};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";

/// What the archive is and where it goes; decides how paths resolve and what is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// An image layer, unpacked into its own new snapshot.
    Layer,
    /// `docker cp` into a container (and a build context): paths resolve as the container
    /// sees them. With `no_overwrite_dir_non_dir`, a directory is never replaced by a
    /// non-directory or the reverse (Docker's `noOverwriteDirNonDir`).
    Copy { no_overwrite_dir_non_dir: bool },
}

impl Policy {
    /// How messages name the archive.
    fn noun(self) -> &'static str {
        match self {
            Policy::Layer => "layer",
            Policy::Copy { .. } => "archive",
        }
    }

    fn escapes(self) -> &'static str {
        match self {
            Policy::Layer => "escapes the image root",
            Policy::Copy { .. } => "escapes the destination",
        }
    }
}

/// Extracts the tar `archive` into the directory `dest` of `root` (a path inside the root,
/// resolved there); returns the bytes its entries hold: regular files' content and symlinks'
/// targets (what `du -b` counts, and dockerd as a layer's size).
pub fn extract(archive: impl Read, root: &Root, dest: &Path, policy: Policy) -> Result<u64> {
    let root = match policy {
        Policy::Layer => root
            .as_ref()
            .with_resolver_flags(ResolverFlags::NO_SYMLINKS),
        Policy::Copy { .. } => root.as_ref(),
    };
    let mut ex = Extractor {
        root,
        dest: Path::new("/").join(dest),
        policy,
        written: 0,
        dir_times: Vec::new(),
        last_dir: std::cell::RefCell::new(None),
    };
    let mut archive = tar::Archive::new(archive);
    let entries = archive.entries().map_err(|e| ex.bad_archive(&e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ex.bad_archive(&e))?;
        ex.entry(&mut entry)?;
    }
    // Directory times last: creating their children changed them.
    for (path, mtime) in std::mem::take(&mut ex.dir_times) {
        let dir = ex
            .root
            .resolve(&path)
            .ok()
            .and_then(|h| reopen_dir(&h).ok());
        if let Some(dir) = dir {
            let t = TimeSpec::new(mtime, 0);
            let _ = futimens(&dir, &t, &t);
        }
    }
    Ok(ex.written)
}

struct Extractor<'a> {
    root: RootRef<'a>,
    /// Absolute path of the destination inside the root.
    dest: PathBuf,
    policy: Policy,
    written: u64,
    dir_times: Vec<(PathBuf, i64)>,
    /// The directory the previous entry went to: archives list a directory's entries
    /// together, and resolving it again for each costs a dozen system calls. Dropped whenever
    /// the extraction removes anything (the directory could be gone, or be a symlink now).
    last_dir: std::cell::RefCell<Option<(PathBuf, Handle)>>,
}

/// An entry's header fields, read once.
struct Meta {
    kind: EntryType,
    mode: Mode,
    uid: Uid,
    gid: Gid,
    times: TimeSpec,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn os(c: &[u8]) -> &OsStr {
    OsStr::from_bytes(c)
}

/// A directory descriptor that can be read and carry xattrs (handles may be `O_PATH`).
fn reopen_dir(dir: &impl AsFd) -> nix::Result<OwnedFd> {
    openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// What is at `name` in `dir`, not following symlinks.
fn existing(dir: &impl AsFd, name: &[u8]) -> Result<Option<SFlag>> {
    match fstatat(dir, os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(SFlag::from_bits_truncate(
            st.st_mode & SFlag::S_IFMT.bits(),
        ))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e).ctx(|| format!("stat {}", String::from_utf8_lossy(name))),
    }
}

impl Extractor<'_> {
    fn bad_archive(&self, e: &std::io::Error) -> ImageError {
        let what = match self.policy {
            Policy::Layer => "layer archive",
            Policy::Copy { .. } => "tar archive",
        };
        ImageError::invalid(format!("invalid {what}: {e}"))
    }

    fn hostile(&self, name: &str, reason: impl Into<String>) -> ImageError {
        ImageError::hostile(self.policy.noun(), name, reason)
    }

    /// The path of `comps` (below the destination) inside the root.
    fn in_root(&self, comps: &[&[u8]]) -> PathBuf {
        comps.iter().fold(self.dest.clone(), |p, c| p.join(os(c)))
    }

    /// The header fields and xattrs of an entry. Numeric fields left empty read as 0, as Go's
    /// archive/tar (Docker's) reads them.
    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> Result<Meta> {
        let header = entry.header();
        let number = |field: std::io::Result<u64>, raw: &[u8]| match field {
            Ok(n) => Ok(n),
            Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
            Err(e) => Err(self.bad_archive(&e)),
        };
        let old = header.as_old();
        let mtime = number(header.mtime(), &old.mtime)? as i64;
        let kind = header.entry_type();
        let mode = number(header.mode().map(u64::from), &old.mode)? as u32;
        let uid = number(header.uid(), &old.uid)?;
        let gid = number(header.gid(), &old.gid)?;
        Ok(Meta {
            kind,
            mode: Mode::from_bits_truncate(mode & 0o7777),
            uid: Uid::from_raw(uid as u32),
            gid: Gid::from_raw(gid as u32),
            times: TimeSpec::new(mtime, 0),
            mtime,
            xattrs: self.xattrs(entry)?,
        })
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let comps =
            normal_components(&raw).ok_or_else(|| self.hostile(&name, self.policy.escapes()))?;
        let meta = self.meta(entry)?;
        let mtime = meta.mtime;

        let Some((last, parents)) = comps.split_last() else {
            // The destination itself (`./`): a layer's root takes the entry's attributes; a
            // copy leaves an existing destination as it is, like Docker.
            return match (self.policy, meta.kind) {
                (Policy::Layer, EntryType::Directory) => {
                    let dir = self.directory(&name, &[], false)?;
                    let dir = reopen_dir(&dir).ctx(|| format!("open {name}"))?;
                    self.set_attrs(&dir, &meta, &name)?;
                    self.dir_times.push((self.dest.clone(), mtime));
                    Ok(())
                }
                (Policy::Copy { .. }, EntryType::Directory) => Ok(()),
                _ => Err(self.hostile(&name, "is not a valid path")),
            };
        };
        if self.policy == Policy::Layer {
            if let Some(hidden) = last.strip_prefix(WHITEOUT_PREFIX) {
                return self.whiteout(&name, parents, last, hidden);
            }
        }
        let dir = self.directory(&name, parents, true)?;
        self.check_overwrite(&dir, &comps, &meta)?;
        match meta.kind {
            EntryType::Directory => {
                if existing(&dir, last)? != Some(SFlag::S_IFDIR) {
                    self.replace(&dir, &comps)?;
                    mkdirat(&dir, os(last), Mode::from_bits_truncate(0o700))
                        .ctx(|| format!("create directory {name}"))?;
                }
                let flags =
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let fd = openat(&dir, os(last), flags, Mode::empty())
                    .ctx(|| format!("open directory {name}"))?;
                self.set_attrs(&fd, &meta, &name)?;
                self.dir_times.push((self.in_root(&comps), mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.replace(&dir, &comps)?;
                let flags = OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC;
                let fd = openat(&dir, os(last), flags, Mode::from_bits_truncate(0o600))
                    .ctx(|| format!("create {name}"))?;
                let mut file = File::from(fd);
                self.written += std::io::copy(entry, &mut file).map_err(|e| {
                    ImageError::invalid(format!("{} entry {name:?}: {e}", self.policy.noun()))
                })?;
                let fd: OwnedFd = file.into();
                self.set_attrs(&fd, &meta, &name)?;
                futimens(&fd, &meta.times, &meta.times).ctx(|| format!("set times of {name}"))?;
            }
            EntryType::Fifo => {
                self.replace(&dir, &comps)?;
                mknodat(
                    &dir,
                    os(last),
                    SFlag::S_IFIFO,
                    Mode::from_bits_truncate(0o600),
                    0,
                )
                .ctx(|| format!("create fifo {name}"))?;
                // A read-only non-blocking open of a fifo returns at once; through the
                // descriptor the mode is set exactly (mknod's is cut by the umask).
                let flags =
                    OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let fd = openat(&dir, os(last), flags, Mode::empty())
                    .ctx(|| format!("open fifo {name}"))?;
                self.set_attrs(&fd, &meta, &name)?;
                futimens(&fd, &meta.times, &meta.times).ctx(|| format!("set times of {name}"))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.hostile(&name, "is a symlink without a target"))?;
                self.replace(&dir, &comps)?;
                symlinkat(os(&target), &dir, os(last)).ctx(|| format!("create symlink {name}"))?;
                self.written += target.len() as u64;
                self.set_link_attrs(&dir, last, &meta, &name)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.hostile(&name, "is a hard link without a target"))?;
                self.hard_link(&name, &dir, &comps, &target)?;
            }
            EntryType::Char | EntryType::Block => {
                let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                self.device(&name, &dir, &comps, &meta, major, minor)?;
            }
            other => {
                tracing::debug!(entry = name, kind = ?other, "skipping unsupported entry type")
            }
        }
        Ok(())
    }

    /// The directory `parents` below the destination (created when `create`), or the error
    /// that explains why an entry cannot have it.
    fn directory(&self, name: &str, parents: &[&[u8]], create: bool) -> Result<Handle> {
        let path = self.in_root(parents);
        if let Some((last, handle)) = self.last_dir.borrow().as_ref() {
            if *last == path {
                return handle.try_clone().map_err(|source| ImageError::Resolve {
                    context: format!("duplicate the descriptor of {}", path.display()),
                    source,
                });
            }
        }
        let resolved = if create {
            self.root.mkdir_all(&path, &Permissions::from_mode(0o755))
        } else {
            self.root.resolve(&path)
        };
        let handle = resolved.map_err(|source| self.unresolvable(name, parents, source))?;
        if create {
            if let Ok(copy) = handle.try_clone() {
                *self.last_dir.borrow_mut() = Some((path, copy));
            }
        }
        Ok(handle)
    }

    /// Why `parents` (below the destination) cannot be an entry's directory. For layers the
    /// offending component is named by walking the (private, unchanging) tree again.
    fn unresolvable(
        &self,
        name: &str,
        parents: &[&[u8]],
        source: pathrs::error::Error,
    ) -> ImageError {
        let errno = match source.kind() {
            pathrs::error::ErrorKind::OsError(Some(errno)) => errno,
            _ => 0,
        };
        let culprit = match self.policy {
            Policy::Layer => self.first_non_directory(parents),
            Policy::Copy { .. } => None,
        };
        match (errno, culprit) {
            (libc::ELOOP, Some((sofar, Some(SFlag::S_IFLNK)))) => self.hostile(
                name,
                format!("goes through the symlink {sofar:?}; refusing to follow it"),
            ),
            (libc::ELOOP, _) => self.hostile(name, "goes through too many symbolic links"),
            (libc::ENOTDIR, Some((sofar, _))) => self.hostile(
                name,
                format!("has a parent {sofar:?} that is not a directory"),
            ),
            (libc::ENOTDIR, None) => self.hostile(name, "has a parent that is not a directory"),
            (libc::ENOENT, Some((sofar, None))) => self.hostile(
                name,
                format!(
                    "refers to {sofar:?}, which does not exist in the {}",
                    self.policy.noun()
                ),
            ),
            _ => ImageError::Resolve {
                context: format!(
                    "resolve the directory of {} entry {name:?}",
                    self.policy.noun()
                ),
                source,
            },
        }
    }

    /// The first of `parents` (from the destination) that is not a directory, with what it
    /// is (`None`: missing). Only for messages; resolution never uses it.
    fn first_non_directory(&self, parents: &[&[u8]]) -> Option<(String, Option<SFlag>)> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut dir = self.root.resolve(&self.dest).ok().map(OwnedFd::from)?;
        for (i, comp) in parents.iter().enumerate() {
            let sofar = || String::from_utf8_lossy(&parents[..=i].join(&b'/')).into_owned();
            match existing(&dir, comp).ok()? {
                Some(SFlag::S_IFDIR) => {}
                other => return Some((sofar(), other)),
            }
            dir = openat(&dir, os(comp), flags, Mode::empty()).ok()?;
        }
        None
    }

    /// Refuses replacing a directory by a non-directory or the reverse, when asked.
    fn check_overwrite(&self, dir: &Handle, comps: &[&[u8]], meta: &Meta) -> Result<()> {
        if self.policy
            != (Policy::Copy {
                no_overwrite_dir_non_dir: true,
            })
        {
            return Ok(());
        }
        let Some(was) = existing(dir, comps[comps.len() - 1])? else {
            return Ok(());
        };
        let (was_dir, is_dir) = (was == SFlag::S_IFDIR, meta.kind == EntryType::Directory);
        let path = self.in_root(comps);
        let dest = &self.dest;
        if was_dir && !is_dir {
            return Err(ImageError::invalid(format!(
                "cannot overwrite directory {path:?} with non-directory {dest:?}"
            )));
        }
        if !was_dir && is_dir {
            return Err(ImageError::invalid(format!(
                "cannot overwrite non-directory {path:?} with directory {dest:?}"
            )));
        }
        Ok(())
    }

    /// Removes whatever is at `comps` (in `dir`, its directory), recursively for directories.
    fn replace(&self, dir: &Handle, comps: &[&[u8]]) -> Result<()> {
        let last = comps[comps.len() - 1];
        let found = existing(dir, last)?;
        if found.is_some() {
            self.last_dir.borrow_mut().take();
        }
        match found {
            None => Ok(()),
            Some(SFlag::S_IFDIR) => {
                let path = self.in_root(comps);
                self.root
                    .remove_all(&path)
                    .map_err(|source| ImageError::Resolve {
                        context: format!("remove {}", path.display()),
                        source,
                    })
            }
            Some(_) => unlinkat(dir, os(last), UnlinkatFlags::NoRemoveDir)
                .ctx(|| format!("remove {}", String::from_utf8_lossy(last))),
        }
    }

    /// A layer's `.wh.NAME` (hides NAME of lower layers) or `.wh..wh..opq` (hides the whole
    /// directory of lower layers).
    fn whiteout(&self, name: &str, parents: &[&[u8]], last: &[u8], hidden: &[u8]) -> Result<()> {
        let dir = self.directory(name, parents, true)?;
        if last == OPAQUE_WHITEOUT {
            let dir = reopen_dir(&dir).ctx(|| format!("open the directory of {name}"))?;
            return set_xattr(&dir, "trusted.overlay.opaque", b"y")
                .ctx(|| format!("mark {name} opaque"));
        }
        if hidden.starts_with(WHITEOUT_PREFIX) {
            tracing::debug!(entry = name, "skipping whiteout metadata entry");
            return Ok(());
        }
        if matches!(hidden, b"" | b"." | b"..") {
            return Err(self.hostile(name, "is an invalid whiteout"));
        }
        let mut target = parents.to_vec();
        target.push(hidden);
        self.replace(&dir, &target)?;
        mknodat(&dir, os(hidden), SFlag::S_IFCHR, Mode::empty(), 0)
            .ctx(|| format!("create whiteout for {name}"))
    }

    fn hard_link(&self, name: &str, dir: &Handle, comps: &[&[u8]], target: &[u8]) -> Result<()> {
        let noun = self.policy.noun();
        let target_name = String::from_utf8_lossy(target).into_owned();
        let tcomps = normal_components(target).ok_or_else(|| {
            self.hostile(
                name,
                format!(
                    "is a hard link to {target_name:?}, which {}",
                    self.policy.escapes()
                ),
            )
        })?;
        let Some((tlast, tparents)) = tcomps.split_last() else {
            return Err(self.hostile(name, "is a hard link to the destination itself"));
        };
        let tdir = self.directory(name, tparents, false)?;
        match existing(&tdir, tlast)? {
            None => {
                return Err(self.hostile(
                    name,
                    format!("is a hard link to {target_name:?}, which is not in the {noun}"),
                ))
            }
            Some(SFlag::S_IFDIR) => return Err(self.hostile(name, "is a hard link to a directory")),
            Some(_) => {}
        }
        if tcomps == comps {
            return Ok(());
        }
        self.replace(dir, comps)?;
        let last = comps[comps.len() - 1];
        linkat(&tdir, os(tlast), dir, os(last), AtFlags::empty())
            .ctx(|| format!("create hard link {name}"))
    }

    fn device(
        &self,
        name: &str,
        dir: &Handle,
        comps: &[&[u8]],
        meta: &Meta,
        major: u32,
        minor: u32,
    ) -> Result<()> {
        let last = comps[comps.len() - 1];
        let whiteout = meta.kind == EntryType::Char && major == 0 && minor == 0;
        let kind = if meta.kind == EntryType::Char {
            SFlag::S_IFCHR
        } else {
            SFlag::S_IFBLK
        };
        if self.policy == Policy::Layer && !whiteout {
            return Err(self.hostile(name, "is a device node; layers may not create devices"));
        }
        self.replace(dir, comps)?;
        if self.policy == Policy::Layer {
            return mknodat(dir, os(last), SFlag::S_IFCHR, Mode::empty(), 0)
                .ctx(|| format!("create whiteout {name}"));
        }
        let dev = libc::makedev(major, minor);
        mknodat(dir, os(last), kind, meta.mode, dev).ctx(|| format!("create device {name}"))?;
        // Opening a device could act on it: owner, mode and times go through its name,
        // never following a symlink swapped in there.
        self.set_link_attrs(dir, last, meta, name)?;
        let node = openat(
            dir,
            os(last),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open device {name}"))?;
        let is_link = nix::sys::stat::fstat(&node)
            .is_ok_and(|st| st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits());
        if !is_link {
            // chmod through the descriptor's /proc link acts on the node itself.
            let proc = format!("/proc/self/fd/{}", node.as_raw_fd());
            std::fs::set_permissions(&proc, Permissions::from_mode(meta.mode.bits()))
                .ctx(|| format!("chmod {name}"))?;
        }
        Ok(())
    }

    /// The entry's `SCHILY.xattr.*` PAX records, without `trusted.overlay.*`.
    fn xattrs<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> Result<Vec<(String, Vec<u8>)>> {
        let Some(exts) = entry.pax_extensions().map_err(|e| self.bad_archive(&e))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for ext in exts {
            let ext = ext.map_err(|e| self.bad_archive(&e))?;
            let Ok(key) = ext.key() else { continue };
            if let Some(xattr) = key.strip_prefix("SCHILY.xattr.") {
                if xattr.starts_with(OVERLAY_XATTR_PREFIX) {
                    tracing::warn!(xattr, "dropping overlay xattr from an archive");
                    continue;
                }
                out.push((xattr.to_string(), ext.value_bytes().to_vec()));
            }
        }
        Ok(out)
    }

    /// Owner, then mode (chown clears set-id bits), then xattrs where the filesystem allows.
    fn set_attrs(&self, fd: &impl AsFd, meta: &Meta, name: &str) -> Result<()> {
        fchown(fd, Some(meta.uid), Some(meta.gid)).ctx(|| format!("chown {name}"))?;
        fchmod(fd, meta.mode).ctx(|| format!("chmod {name}"))?;
        for (key, value) in &meta.xattrs {
            if let Err(e) = set_xattr(fd, key, value) {
                tracing::debug!(entry = name, xattr = %key, error = %e, "cannot set xattr");
            }
        }
        Ok(())
    }

    /// Owner and times of `last` in `dir` itself, never following it (symlinks, devices).
    fn set_link_attrs(&self, dir: &Handle, last: &[u8], meta: &Meta, name: &str) -> Result<()> {
        fchownat(
            dir,
            os(last),
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ctx(|| format!("chown {name}"))?;
        utimensat(
            dir,
            os(last),
            &meta.times,
            &meta.times,
            UtimensatFlags::NoFollowSymlink,
        )
        .ctx(|| format!("set times of {name}"))
    }
}

fn set_xattr(fd: &impl AsFd, key: &str, value: &[u8]) -> std::io::Result<()> {
    let fd: BorrowedFd<'_> = fd.as_fd();
    let key =
        CString::new(key).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: fsetxattr reads `key` (NUL-terminated) and `value.len()` bytes of `value`, both
    // valid for the call; `fd` is an open descriptor borrowed for its duration.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
