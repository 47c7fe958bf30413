//! Safe layer unpacking: applies one layer tarball (plain or gzip) to a directory,
//! translating OCI whiteouts into overlayfs ones.
//!
//! Security rules (a layer is untrusted input):
//! - every path is resolved one component at a time with `openat(O_NOFOLLOW)` from a
//!   descriptor of `dest`, so no symlink is ever followed during extraction — an entry whose
//!   parent path goes through a symlink is refused, even one pointing inside the layer;
//! - `..` components are refused anywhere in a path; a leading `/` is stripped (Docker
//!   treats `/a` as `a`), so `/../x` is refused too;
//! - hard links must name an entry inside the layer, reached without symlinks;
//! - block and character devices are refused, except 0/0 character devices (overlay
//!   whiteouts); fifos are allowed;
//! - `trusted.overlay.*` xattrs in the layer are dropped: only whiteout translation sets
//!   them, so a layer cannot forge overlay redirects or opaque markers.
//!
//! `.wh.NAME` becomes a 0/0 character device `NAME`; `.wh..wh..opq` sets
//! `trusted.overlay.opaque=y` on its directory. On error `dest` may hold a partial
//! tree: callers unpack into a temporary directory and drop it on failure.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fstatat, futimens, mkdirat, mknodat, utimensat, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

use crate::error::{ImageError, IoContext, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";

/// Wraps `reader` in a gzip decoder when it starts with the gzip magic.
pub(crate) fn decompress<'a>(reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let head = buffered.fill_buf().ctx(|| "read layer".to_string())?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(buffered)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(ImageError::invalid(
            "zstd-compressed layers are not supported",
        ))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Unpacks one layer (plain or gzip tar) into the existing directory `dest`; returns the
/// number of bytes of regular-file content written.
pub fn unpack_layer(layer: impl Read, dest: &Path) -> Result<u64> {
    let root: OwnedFd = File::open(dest)
        .ctx(|| format!("open {}", dest.display()))?
        .into();
    let mut archive = tar::Archive::new(decompress(layer)?);
    let mut written = 0;
    let mut dir_times = Vec::new();
    let entries = archive.entries().map_err(|e| bad_archive(&e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad_archive(&e))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let comps = components(&entry.path_bytes(), &name)?;
        if let Some((mtime, comps)) =
            apply_entry(&root, dest, &mut entry, &name, comps, &mut written)?
        {
            dir_times.push((comps, mtime));
        }
    }
    // Directory times last: creating children changed them.
    for (comps, mtime) in dir_times {
        if let Ok(fd) = open_dir(&root, &comps, "", false) {
            let t = TimeSpec::new(mtime, 0);
            let _ = futimens(&fd, &t, &t);
        }
    }
    Ok(written)
}

fn bad_archive(e: &std::io::Error) -> ImageError {
    ImageError::invalid(format!("invalid layer archive: {e}"))
}

/// The normal components of an entry path; refuses `..`.
fn components(path: &[u8], name: &str) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for comp in path.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err(ImageError::hostile(name, "escapes the image root")),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn os(c: &[u8]) -> &OsStr {
    OsStr::from_bytes(c)
}

/// Opens the directory `comps` below `root` without following symlinks, creating missing
/// directories (mode 0755) when `create`.
fn open_dir(root: &OwnedFd, comps: &[Vec<u8>], name: &str, create: bool) -> Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut fd = root
        .try_clone()
        .ctx(|| "duplicate directory descriptor".to_string())?;
    for (i, comp) in comps.iter().enumerate() {
        let sofar = || String::from_utf8_lossy(&comps[..=i].join(&b'/')).into_owned();
        let next = match openat(&fd, os(comp), flags, Mode::empty()) {
            Err(Errno::ENOENT) if create => {
                match mkdirat(&fd, os(comp), Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e).ctx(|| format!("create directory {}", sofar())),
                }
                openat(&fd, os(comp), flags, Mode::empty())
            }
            other => other,
        };
        fd = match next {
            Ok(next) => next,
            Err(Errno::ELOOP | Errno::ENOTDIR) if existing(&fd, comp)? == Some(SFlag::S_IFLNK) => {
                return Err(ImageError::hostile(
                    name,
                    format!(
                        "goes through the symlink {:?}; refusing to follow it",
                        sofar()
                    ),
                ))
            }
            Err(Errno::ENOTDIR) => {
                return Err(ImageError::hostile(
                    name,
                    format!("has a parent {:?} that is not a directory", sofar()),
                ))
            }
            Err(Errno::ENOENT) => {
                return Err(ImageError::hostile(
                    name,
                    format!("refers to {:?}, which does not exist in the layer", sofar()),
                ))
            }
            Err(e) => return Err(e).ctx(|| format!("open {}", sofar())),
        };
    }
    Ok(fd)
}

/// What is at `name` in `dir`, not following symlinks.
fn existing(dir: &OwnedFd, name: &[u8]) -> Result<Option<SFlag>> {
    match fstatat(dir, os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(SFlag::from_bits_truncate(
            st.st_mode & SFlag::S_IFMT.bits(),
        ))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e).ctx(|| format!("stat {}", String::from_utf8_lossy(name))),
    }
}

/// Removes whatever is at `comps` (whose parent is `dir`), recursively for directories.
fn remove_existing(dir: &OwnedFd, dest: &Path, comps: &[Vec<u8>]) -> Result<()> {
    let last = comps.last().expect("non-empty path");
    match existing(dir, last)? {
        None => Ok(()),
        Some(SFlag::S_IFDIR) => {
            // The parents were just opened with O_NOFOLLOW and the tree is private to this
            // unpack, so this path names the same directory; remove_dir_all does not
            // follow symlinks inside it.
            let path: PathBuf = comps.iter().fold(dest.to_path_buf(), |p, c| p.join(os(c)));
            std::fs::remove_dir_all(&path).ctx(|| format!("remove {}", path.display()))
        }
        Some(_) => unlinkat(dir, os(last), UnlinkatFlags::NoRemoveDir)
            .ctx(|| format!("remove {}", String::from_utf8_lossy(last))),
    }
}

/// Applies one entry. Returns the directory's mtime and path when it was a directory.
fn apply_entry<R: Read>(
    root: &OwnedFd,
    dest: &Path,
    entry: &mut tar::Entry<'_, R>,
    name: &str,
    comps: Vec<Vec<u8>>,
    written: &mut u64,
) -> Result<Option<(i64, Vec<Vec<u8>>)>> {
    let header = entry.header().clone();
    let kind = header.entry_type();
    let mode = Mode::from_bits_truncate(header.mode().map_err(|e| bad_archive(&e))? & 0o7777);
    let uid = Uid::from_raw(header.uid().map_err(|e| bad_archive(&e))? as u32);
    let gid = Gid::from_raw(header.gid().map_err(|e| bad_archive(&e))? as u32);
    let mtime = header.mtime().map_err(|e| bad_archive(&e))? as i64;
    let times = TimeSpec::new(mtime, 0);
    let xattrs = xattrs(entry)?;

    let Some((last, parents)) = comps.split_last() else {
        // The layer root itself (`./`): only its attributes apply.
        if kind == EntryType::Directory {
            set_attrs(root, uid, gid, mode, &xattrs, name)?;
            return Ok(Some((mtime, comps)));
        }
        return Err(ImageError::hostile(name, "is not a valid path"));
    };
    if let Some(hidden) = last.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        let dir = open_dir(root, parents, name, true)?;
        if last.as_slice() == OPAQUE_WHITEOUT.as_bytes() {
            return set_xattr(&dir, "trusted.overlay.opaque", b"y")
                .map(|()| None)
                .ctx(|| format!("mark {name} opaque"));
        }
        if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            tracing::debug!(entry = name, "skipping whiteout metadata entry");
            return Ok(None);
        }
        if matches!(hidden, b"" | b"." | b"..") {
            return Err(ImageError::hostile(name, "is an invalid whiteout"));
        }
        let mut target = parents.to_vec();
        target.push(hidden.to_vec());
        remove_existing(&dir, dest, &target)?;
        mknodat(&dir, os(hidden), SFlag::S_IFCHR, Mode::empty(), 0)
            .ctx(|| format!("create whiteout for {name}"))?;
        return Ok(None);
    }

    let dir = open_dir(root, parents, name, true)?;
    match kind {
        EntryType::Directory => {
            if existing(&dir, last)? != Some(SFlag::S_IFDIR) {
                remove_existing(&dir, dest, &comps)?;
                mkdirat(&dir, os(last), Mode::from_bits_truncate(0o700))
                    .ctx(|| format!("create directory {name}"))?;
            }
            let fd = open_dir(&dir, std::slice::from_ref(last), name, false)?;
            set_attrs(&fd, uid, gid, mode, &xattrs, name)?;
            return Ok(Some((mtime, comps)));
        }
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            remove_existing(&dir, dest, &comps)?;
            let flags = OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            let fd = openat(&dir, os(last), flags, Mode::from_bits_truncate(0o600))
                .ctx(|| format!("create {name}"))?;
            let mut file = File::from(fd);
            *written += std::io::copy(entry, &mut file)
                .map_err(|e| ImageError::invalid(format!("layer entry {name:?}: {e}")))?;
            let fd: OwnedFd = file.into();
            set_attrs(&fd, uid, gid, mode, &xattrs, name)?;
            futimens(&fd, &times, &times).ctx(|| format!("set times of {name}"))?;
        }
        EntryType::Fifo => {
            remove_existing(&dir, dest, &comps)?;
            mknodat(
                &dir,
                os(last),
                SFlag::S_IFIFO,
                Mode::from_bits_truncate(0o600),
                0,
            )
            .ctx(|| format!("create fifo {name}"))?;
            // A read-only non-blocking open of a fifo returns at once; through the descriptor
            // the mode is set exactly (mknod's is cut by the umask) with owner, xattrs, times.
            let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let fd =
                openat(&dir, os(last), flags, Mode::empty()).ctx(|| format!("open fifo {name}"))?;
            set_attrs(&fd, uid, gid, mode, &xattrs, name)?;
            futimens(&fd, &times, &times).ctx(|| format!("set times of {name}"))?;
        }
        EntryType::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| ImageError::hostile(name, "is a symlink without a target"))?;
            remove_existing(&dir, dest, &comps)?;
            symlinkat(os(&target), &dir, os(last)).ctx(|| format!("create symlink {name}"))?;
            fchownat(
                &dir,
                os(last),
                Some(uid),
                Some(gid),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .ctx(|| format!("chown {name}"))?;
            utimensat(
                &dir,
                os(last),
                &times,
                &times,
                UtimensatFlags::NoFollowSymlink,
            )
            .ctx(|| format!("set times of {name}"))?;
        }
        EntryType::Link => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| ImageError::hostile(name, "is a hard link without a target"))?;
            let target_name = String::from_utf8_lossy(&target).into_owned();
            let tcomps = components(&target, name).map_err(|_| {
                ImageError::hostile(
                    name,
                    format!("is a hard link to {target_name:?}, which escapes the image root"),
                )
            })?;
            let Some((tlast, tparents)) = tcomps.split_last() else {
                return Err(ImageError::hostile(
                    name,
                    "is a hard link to the image root",
                ));
            };
            let tdir = open_dir(root, tparents, name, false)?;
            match existing(&tdir, tlast)? {
                None => {
                    return Err(ImageError::hostile(
                        name,
                        format!("is a hard link to {target_name:?}, which is not in the layer"),
                    ))
                }
                Some(SFlag::S_IFDIR) => {
                    return Err(ImageError::hostile(name, "is a hard link to a directory"))
                }
                Some(_) => {}
            }
            if tcomps == comps {
                return Ok(None);
            }
            remove_existing(&dir, dest, &comps)?;
            linkat(&tdir, os(tlast), &dir, os(last), AtFlags::empty())
                .ctx(|| format!("create hard link {name}"))?;
        }
        EntryType::Char | EntryType::Block => {
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            if kind != EntryType::Char || major != 0 || minor != 0 {
                return Err(ImageError::hostile(
                    name,
                    "is a device node; layers may not create devices",
                ));
            }
            remove_existing(&dir, dest, &comps)?;
            mknodat(&dir, os(last), SFlag::S_IFCHR, Mode::empty(), 0)
                .ctx(|| format!("create whiteout {name}"))?;
        }
        other => {
            tracing::debug!(entry = name, kind = ?other, "skipping unsupported layer entry type")
        }
    }
    Ok(None)
}

/// The entry's `SCHILY.xattr.*` PAX records, without `trusted.overlay.*`.
fn xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Vec<(String, Vec<u8>)>> {
    let Some(exts) = entry.pax_extensions().map_err(|e| bad_archive(&e))? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for ext in exts {
        let ext = ext.map_err(|e| bad_archive(&e))?;
        let Ok(key) = ext.key() else { continue };
        if let Some(xattr) = key.strip_prefix("SCHILY.xattr.") {
            if xattr.starts_with(OVERLAY_XATTR_PREFIX) {
                tracing::warn!(xattr, "dropping overlay xattr from layer");
                continue;
            }
            out.push((xattr.to_string(), ext.value_bytes().to_vec()));
        }
    }
    Ok(out)
}

/// Owner, then mode (chown clears set-id bits), then xattrs where the filesystem allows.
fn set_attrs(
    fd: &OwnedFd,
    uid: Uid,
    gid: Gid,
    mode: Mode,
    xattrs: &[(String, Vec<u8>)],
    name: &str,
) -> Result<()> {
    fchown(fd, Some(uid), Some(gid)).ctx(|| format!("chown {name}"))?;
    fchmod(fd, mode).ctx(|| format!("chmod {name}"))?;
    for (key, value) in xattrs {
        if let Err(e) = set_xattr(fd, key, value) {
            tracing::debug!(entry = name, xattr = %key, error = %e, "cannot set xattr");
        }
    }
    Ok(())
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
