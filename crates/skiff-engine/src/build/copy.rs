//! `COPY`/`ADD` into a build container's root: sources from the context or from another
//! image's root (`--from`), written where the container would see the destination, with
//! `--chown`/`--chmod`; `ADD` of a local tar archive (plain or gzip) extracts it. Runs on a
//! blocking thread.
//!
//! Every path in the destination (and in a `--from` image) is resolved inside its root by
//! libpathrs ([`skiff_image::confined`], the resolver of layers and `docker cp`), and entries
//! are created with `*at` calls on their directory's descriptor: a symlink in the stage's
//! root, to `/` or full of `..`, leads somewhere inside the root, never out of it.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use skiff_build::context::{self, Match};
use skiff_build::ignore::IgnoreRules;

use crate::error::{EngineError, IoContext, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use skiff_image::confined::{self, Handle, OpenFlags, Policy, ResolveError, Root};
use std::os::fd::OwnedFd;

/// Where the sources are read.
pub(crate) enum SourceRoot<'a> {
    /// The build context (`.dockerignore` applies; owners become root unless `--chown`).
    Context(&'a Path, &'a IgnoreRules),
    /// Another image's root filesystem (`--from`; owners are kept unless `--chown`).
    Image(&'a Path),
}

pub(crate) struct CopyJob<'a> {
    pub from: SourceRoot<'a>,
    pub sources: &'a [String],
    /// Bodies of `COPY <<EOF /dest` here-documents.
    pub heredocs: &'a [String],
    /// Absolute in-container destination (the working dir already applied); a trailing `/`
    /// means a directory.
    pub dest: String,
    pub chown: Option<&'a str>,
    pub chmod: Option<u32>,
    pub add: bool,
}

fn invalid(m: impl Into<String>) -> EngineError {
    EngineError::invalid(m)
}

/// Copies what `job` names into the root `dest`.
pub(crate) fn copy(job: &CopyJob<'_>, dest: &Root) -> Result<()> {
    let owner = job.chown.map(|c| resolve_owner(dest, c)).transpose()?;
    let mut matches: Vec<(PathBuf, Match)> = Vec::new();
    let mut wildcard = false;
    for pattern in job.sources {
        wildcard |= pattern.contains(['*', '?', '[']);
        match &job.from {
            SourceRoot::Context(root, ignore) => {
                for m in context::matches(root, pattern, ignore)? {
                    matches.push((root.to_path_buf(), m));
                }
            }
            SourceRoot::Image(root) => {
                if pattern.contains(['*', '?', '[']) {
                    for m in context::matches(root, pattern, &IgnoreRules::default())? {
                        matches.push((root.to_path_buf(), m));
                    }
                } else {
                    // Symlinks on the way are followed inside the source image.
                    let src = confined::open_root(root)?;
                    let not_found = || {
                        invalid(format!(
                            "failed to compute cache key: \"{pattern}\" not found"
                        ))
                    };
                    let handle = src.resolve(pattern).map_err(|_| not_found())?;
                    let host = confined::fd_path(&handle).ok_or_else(not_found)?;
                    let base = confined::fd_path(&src).ok_or_else(not_found)?;
                    let rel = host.strip_prefix(&base).map_err(|_| not_found())?;
                    let meta = fs::symlink_metadata(&host).map_err(|_| not_found())?;
                    matches.push((
                        root.to_path_buf(),
                        Match {
                            rel: if rel.as_os_str().is_empty() {
                                ".".into()
                            } else {
                                rel.to_string_lossy().into_owned()
                            },
                            is_dir: meta.is_dir(),
                        },
                    ));
                }
            }
        }
    }
    let several = job.sources.len() + job.heredocs.len() > 1 || wildcard;
    let dest_is_dir =
        job.dest.ends_with('/') || job.dest.ends_with("/.") || dest_dir_exists(dest, &job.dest)?;
    if several && !dest_is_dir {
        return Err(invalid(
            "When using COPY with more than one source file, the destination must be a directory and end with a /",
        ));
    }
    let ctx_copy = matches!(job.from, SourceRoot::Context(..));
    let w = Writer {
        dest,
        owner,
        chmod: job.chmod,
        keep_owner: !ctx_copy,
    };
    let dest_path = job.dest.trim_end_matches('/').to_string();
    let dest_path = if dest_path.is_empty() {
        "/".to_string()
    } else {
        dest_path
    };
    let join = |base: &str, rel: &str| {
        if base == "/" {
            format!("/{rel}")
        } else {
            format!("{base}/{rel}")
        }
    };
    for (root, m) in &matches {
        let host = if m.rel == "." {
            root.clone()
        } else {
            root.join(&m.rel)
        };
        if m.is_dir {
            w.dir(&dest_path, None)?;
            let entries = match &job.from {
                SourceRoot::Context(_, ignore) => context::dir_entries(root, &m.rel, ignore)?,
                SourceRoot::Image(_) => {
                    context::dir_entries(root, &m.rel, &IgnoreRules::default())?
                }
            };
            let prefix = if m.rel == "." {
                String::new()
            } else {
                format!("{}/", m.rel)
            };
            for e in entries {
                let rel = e.strip_prefix(&prefix).unwrap_or(&e);
                w.entry(&root.join(&e), &join(&dest_path, rel))?;
            }
            continue;
        }
        let base = m.rel.rsplit('/').next().unwrap_or(&m.rel);
        if job.add && is_tar(&host)? {
            w.dir(&dest_path, None)?;
            w.extract(&host, &dest_path)?;
            continue;
        }
        let target = if dest_is_dir {
            join(&dest_path, base)
        } else {
            dest_path.clone()
        };
        w.entry(&host, &target)?;
    }
    for body in job.heredocs {
        if dest_is_dir {
            return Err(invalid(
                "a here-document copied by COPY needs a file destination",
            ));
        }
        w.file_from(&mut body.as_bytes(), 0o644, &dest_path)?;
    }
    Ok(())
}

/// `mkdir -p` of the in-container `path` (a `WORKDIR`, or the working dir of a `RUN`).
pub(crate) fn mkdir_all(dest: &Root, path: &str) -> Result<()> {
    let w = Writer {
        dest,
        owner: None,
        chmod: None,
        keep_owner: false,
    };
    w.dir(path, None)
}

fn dest_dir_exists(dest: &Root, path: &str) -> Result<bool> {
    Ok(match dest.resolve(path) {
        Ok(h) => fstat(&h).is_ok_and(|st| {
            SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
        }),
        Err(_) => false,
    })
}

/// A file of the destination root, read through the root (symlinks stay inside it).
fn read_in(dest: &Root, path: &str) -> Option<String> {
    let handle = dest.resolve(path).ok()?;
    let mut f = handle.reopen(OpenFlags::O_RDONLY).ok()?;
    let mut text = String::new();
    f.read_to_string(&mut text).ok()?;
    Some(text)
}

/// `user[:group]`, names looked up in the destination's `/etc/passwd` and `/etc/group`;
/// without a group, the group of the same name or number (as Docker does).
fn resolve_owner(dest: &Root, spec: &str) -> Result<(u32, u32)> {
    let (user, group) = spec.split_once(':').unwrap_or((spec, spec));
    let lookup = |file: &str, name: &str, what: &str| -> Result<u32> {
        if let Ok(n) = name.parse::<u32>() {
            return Ok(n);
        }
        let text = read_in(dest, file).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut f = l.split(':');
                Some((f.next()?, f.nth(1)?))
            })
            .find(|(n, _)| *n == name)
            .and_then(|(_, id)| id.parse().ok())
            .ok_or_else(|| {
                invalid(format!(
                    "unable to convert uid/gid chown string to host mapping: can't find {what} for {name}: no such {what}"
                ))
            })
    };
    let uid = lookup("/etc/passwd", user, "uid")?;
    let gid = if group == user && user.parse::<u32>().is_err() {
        // A user name without a group: its group of the same name, else its primary group.
        match lookup("/etc/group", group, "gid") {
            Ok(g) => g,
            Err(_) => primary_gid(dest, user).unwrap_or(uid),
        }
    } else {
        lookup("/etc/group", group, "gid")?
    };
    Ok((uid, gid))
}

fn primary_gid(dest: &Root, user: &str) -> Option<u32> {
    let text = read_in(dest, "/etc/passwd")?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&user))
        .and_then(|f| f.get(3)?.parse().ok())
}

/// Whether `path` is a tar archive (plain or gzip), which `ADD` extracts.
fn is_tar(path: &Path) -> Result<bool> {
    let mut header = [0u8; 512];
    let mut r = open_maybe_gzip(path)?;
    let mut n = 0;
    while n < header.len() {
        match r.read(&mut header[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return Ok(false),
        }
    }
    Ok(n == 512 && &header[257..262] == b"ustar")
}

fn open_maybe_gzip(path: &Path) -> Result<Box<dyn Read>> {
    let mut reader = BufReader::new(File::open(path).ctx(|| format!("open {}", path.display()))?);
    let gzip = reader
        .fill_buf()
        .ctx(|| format!("read {}", path.display()))?
        .starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    })
}

struct Writer<'a> {
    dest: &'a Root,
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
    /// Keep the source's owner when no `--chown` (copies from images); else root.
    keep_owner: bool,
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
    fn dir(&self, path: &str, meta: Option<&fs::Metadata>) -> Result<()> {
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
    fn entry(&self, src: &Path, target: &str) -> Result<()> {
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

    fn file_from(&self, content: &mut dyn Read, mode: u32, target: &str) -> Result<()> {
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
    fn extract(&self, archive: &Path, dir: &str) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn job<'a>(from: SourceRoot<'a>, sources: &'a [String], dest: &str) -> CopyJob<'a> {
        CopyJob {
            from,
            sources,
            heredocs: &[],
            dest: dest.into(),
            chown: None,
            chmod: None,
            add: false,
        }
    }

    #[test]
    fn copies_files_dirs_and_wildcards_with_chown_and_chmod() {
        let ctx = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(ctx.path().join("src/sub")).unwrap();
        fs::write(ctx.path().join("src/a.rs"), "a").unwrap();
        fs::write(ctx.path().join("src/sub/b.rs"), "b").unwrap();
        fs::write(ctx.path().join("top.txt"), "top").unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(
            root.path().join("etc/passwd"),
            "app:x:1000:1001::/:/bin/sh\n",
        )
        .unwrap();
        fs::write(root.path().join("etc/group"), "app:x:1001:\n").unwrap();
        let ignore = IgnoreRules::default();
        let dest = confined::open_root(root.path()).unwrap();

        let sources = vec!["src".to_string()];
        copy(
            &job(SourceRoot::Context(ctx.path(), &ignore), &sources, "/app"),
            &dest,
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(root.path().join("app/a.rs")).unwrap(),
            "a"
        );
        assert_eq!(
            fs::read_to_string(root.path().join("app/sub/b.rs")).unwrap(),
            "b"
        );

        let sources = vec!["src/*.rs".to_string(), "top.txt".to_string()];
        let mut j = job(SourceRoot::Context(ctx.path(), &ignore), &sources, "/w/");
        j.chown = Some("app");
        j.chmod = Some(0o600);
        copy(&j, &dest).unwrap();
        let m = fs::metadata(root.path().join("w/top.txt")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (1000, 1001, 0o600));
        assert!(root.path().join("w/a.rs").exists());

        let sources = vec!["top.txt".to_string(), "src/a.rs".to_string()];
        let err = copy(
            &job(SourceRoot::Context(ctx.path(), &ignore), &sources, "/file"),
            &dest,
        )
        .unwrap_err();
        assert!(err.to_string().contains("must be a directory"), "{err}");
        let sources = vec!["../etc/passwd".to_string()];
        let err = copy(
            &job(SourceRoot::Context(ctx.path(), &ignore), &sources, "/x"),
            &dest,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("outside the build context"),
            "{err}"
        );
    }

    #[test]
    fn destination_symlinks_stay_inside_the_root() {
        let ctx = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(ctx.path().join("f"), "x").unwrap();
        // /link -> an absolute host path: inside the container it means <root>/<that path>.
        symlink(outside.path(), root.path().join("link")).unwrap();
        let ignore = IgnoreRules::default();
        let dest = confined::open_root(root.path()).unwrap();
        let sources = vec!["f".to_string()];
        copy(
            &job(SourceRoot::Context(ctx.path(), &ignore), &sources, "/link/"),
            &dest,
        )
        .unwrap();
        assert!(!outside.path().join("f").exists(), "wrote outside the root");
        let inside = root
            .path()
            .join(outside.path().strip_prefix("/").unwrap())
            .join("f");
        assert_eq!(fs::read_to_string(inside).unwrap(), "x");
    }

    #[test]
    fn rejects_copy_through_symlinks_out_of_the_root() {
        let ctx = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        fs::write(ctx.path().join("f"), "x").unwrap();
        // The host's /tmp is what these links would reach if followed on the host.
        let host = tempfile::Builder::new()
            .prefix("skiff-copy-escape")
            .tempdir_in("/tmp")
            .unwrap();
        let name = host
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        symlink("/", root.path().join("escape")).unwrap();
        symlink("../../../../..", root.path().join("up")).unwrap();
        fs::create_dir(root.path().join("tmp")).unwrap();
        let ignore = IgnoreRules::default();
        let dest = confined::open_root(root.path()).unwrap();
        let sources = vec!["f".to_string()];
        for (link, file) in [("escape", "a"), ("up", "b")] {
            let target = format!("/{link}/tmp/{name}/{file}");
            copy(
                &job(SourceRoot::Context(ctx.path(), &ignore), &sources, &target),
                &dest,
            )
            .unwrap();
            assert_eq!(
                fs::read_to_string(root.path().join("tmp").join(&name).join(file)).unwrap(),
                "x"
            );
        }
        assert_eq!(
            fs::read_dir(host.path()).unwrap().count(),
            0,
            "wrote outside the root"
        );

        // ADD of an archive whose directory goes through such a link stays inside too.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "c", &b"hi"[..]).unwrap();
        fs::write(ctx.path().join("a.tar"), b.into_inner().unwrap()).unwrap();
        let sources = vec!["a.tar".to_string()];
        let target = format!("/up/tmp/{name}/");
        let mut j = job(SourceRoot::Context(ctx.path(), &ignore), &sources, &target);
        j.add = true;
        copy(&j, &dest).unwrap();
        assert!(root.path().join("tmp").join(&name).join("c").is_file());
        assert_eq!(
            fs::read_dir(host.path()).unwrap().count(),
            0,
            "wrote outside the root"
        );
    }

    #[test]
    fn add_extracts_local_archives_and_refuses_escapes() {
        let ctx = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append_data(&mut h.clone(), "in/x.txt", &b"hi"[..])
            .unwrap();
        fs::write(ctx.path().join("a.tar"), b.into_inner().unwrap()).unwrap();
        let ignore = IgnoreRules::default();
        let dest = confined::open_root(root.path()).unwrap();
        let sources = vec!["a.tar".to_string()];
        let mut j = job(SourceRoot::Context(ctx.path(), &ignore), &sources, "/opt/");
        j.add = true;
        copy(&j, &dest).unwrap();
        assert_eq!(
            fs::read_to_string(root.path().join("opt/in/x.txt")).unwrap(),
            "hi"
        );
        // COPY does not extract.
        let j = job(SourceRoot::Context(ctx.path(), &ignore), &sources, "/c/");
        copy(&j, &dest).unwrap();
        assert!(root.path().join("c/a.tar").is_file());
    }
}
