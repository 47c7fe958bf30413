//! The build context: received as a tar (plain or gzip, as `POST /build` sends it) and
//! extracted in one pass as plain files (no whiteout meaning: `.wh.` names are ordinary
//! names here), each entry checked before it is written; then read for `COPY`/`ADD`.
//!
//! Refused: a context over the size limit; entries with `..` or absolute paths climbing
//! out; symlinks and hard links whose target leaves the context; entries written through a
//! symlink of the context; device nodes, fifos and the like. tar's `unpack_in` refuses
//! anything that would still land outside. Sources of `COPY` that leave the context are
//! refused by [`hash_sources`].

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::{BuildError, IoContext, Result};
use crate::ignore::{clean, IgnoreRules};

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct ContextLimits {
    /// Bytes of the tar as received.
    pub max_bytes: u64,
    /// Entries in the tar.
    pub max_entries: u64,
}

impl Default for ContextLimits {
    fn default() -> Self {
        ContextLimits {
            max_bytes: 8 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// Receives a context tar (plain or gzip) into `dir`, which must exist and be empty, in
/// one pass: every entry is checked before it is written, and written with tar's
/// `unpack_in` (which refuses anything that would land outside `dir`). On an error `dir`
/// holds part of the context: the caller removes it.
pub fn receive(tar: impl Read, dir: &Path, limits: ContextLimits) -> Result<()> {
    receive_spilling(tar, dir, None, limits).map(|_| ())
}

/// Where a context goes once it outgrows the (memory-backed) directory it started in.
#[derive(Debug, Clone, Copy)]
pub struct Spill<'a> {
    /// An empty directory on disk.
    pub dir: &'a Path,
    /// File bytes the first directory takes before everything moves to `dir`.
    pub after_bytes: u64,
}

/// [`receive`] into `dir` while the context's files fit in `spill.after_bytes`; past that,
/// what was received moves to `spill.dir` and the rest follows it there. Returns the
/// directory that holds the context. A small context in a tmpfs costs no disk metadata
/// writes, which dominate a cached rebuild; a large one does not take memory.
pub fn receive_spilling(
    tar: impl Read,
    dir: &Path,
    spill: Option<Spill<'_>>,
    limits: ContextLimits,
) -> Result<PathBuf> {
    let counted = Counted {
        inner: tar,
        count: 0,
        max: limits.max_bytes,
    };
    let mut reader = BufReader::with_capacity(256 * 1024, counted);
    let gzip = reader
        .fill_buf()
        .map_err(|e| receive_error(e, limits))?
        .starts_with(&[0x1f, 0x8b]);
    let stream: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    extract(Padded::new(stream), dir, spill, limits)
}

/// The received bytes so far; an error past `max`.
struct Counted<R> {
    inner: R,
    count: u64,
    max: u64,
}

/// The error `Counted` gives past the limit (recognised by [`receive_error`]).
#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("build context too large")
    }
}

impl std::error::Error for TooLarge {}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.max {
            return Err(io::Error::other(TooLarge));
        }
        Ok(n)
    }
}

fn receive_error(e: io::Error, limits: ContextLimits) -> BuildError {
    // tar wraps the reader's error in its own ("failed to unpack …"): look down the chain.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|i| i as _);
    let mut too_large = false;
    while let Some(c) = cause {
        if c.downcast_ref::<TooLarge>().is_some() {
            too_large = true;
            break;
        }
        cause = match c.downcast_ref::<io::Error>() {
            Some(io) => io.get_ref().map(|i| i as _),
            None => c.source(),
        };
    }
    if too_large {
        BuildError::Context(format!(
            "build context is larger than the {} byte limit",
            limits.max_bytes
        ))
    } else {
        BuildError::Context(format!("invalid build context archive: {e}"))
    }
}

/// The docker CLI sends a `-f -` context whose last entry (the `.dockerignore` it adds)
/// lacks its padding and the end-of-archive blocks, which Docker accepts: at the end of the
/// stream this supplies zeros up to the block boundary and two zero blocks.
struct Padded<R> {
    inner: R,
    total: u64,
    tail: Option<u64>,
}

impl<R> Padded<R> {
    fn new(inner: R) -> Padded<R> {
        Padded {
            inner,
            total: 0,
            tail: None,
        }
    }
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tail.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.total += n as u64;
                return Ok(n);
            }
            self.tail = Some((512 - self.total % 512) % 512 + 1024);
        }
        let left = self.tail.as_mut().expect("set above");
        let n = (*left).min(buf.len() as u64) as usize;
        buf[..n].fill(0);
        *left -= n as u64;
        Ok(n)
    }
}

/// Copies the tree `src` into the existing, empty `dst`: files (hard links become copies),
/// directories and symlinks, with their permissions.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    for entry in fs::read_dir(src).ctx(|| format!("read {}", src.display()))? {
        let entry = entry.ctx(|| format!("read {}", src.display()))?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let meta = fs::symlink_metadata(&from).ctx(|| format!("stat {}", from.display()))?;
        if meta.is_dir() {
            fs::create_dir(&to).ctx(|| format!("create {}", to.display()))?;
            copy_tree(&from, &to)?;
            // After the content: a directory may be read-only.
            fs::set_permissions(&to, meta.permissions())
                .ctx(|| format!("chmod {}", to.display()))?;
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&from).ctx(|| format!("readlink {}", from.display()))?;
            std::os::unix::fs::symlink(&target, &to).ctx(|| format!("symlink {}", to.display()))?;
        } else {
            fs::copy(&from, &to).ctx(|| format!("copy {}", from.display()))?;
        }
    }
    Ok(())
}

fn extract(
    reader: impl Read,
    first_dir: &Path,
    spill: Option<Spill<'_>>,
    limits: ContextLimits,
) -> Result<PathBuf> {
    let bad = |e: io::Error| receive_error(e, limits);
    let mut dir = first_dir.to_path_buf();
    let mut file_bytes = 0u64;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let mut entries = 0u64;
    let mut links: Vec<String> = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        entries += 1;
        if entries > limits.max_entries {
            return Err(BuildError::Context(format!(
                "build context has more than {} entries",
                limits.max_entries
            )));
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let outside = || {
            BuildError::Context(format!(
                "build context entry {name:?} is outside the context"
            ))
        };
        if name.split('/').any(|c| c == "..") {
            return Err(outside());
        }
        let path = resolve_inside("", name.trim_start_matches('/')).ok_or_else(outside)?;
        if links
            .iter()
            .any(|l| path.starts_with(l.as_str()) && path[l.len()..].starts_with('/'))
        {
            return Err(BuildError::Context(format!(
                "build context entry {name:?} is written through a symbolic link"
            )));
        }
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular
            | tar::EntryType::Continuous
            | tar::EntryType::Directory
            | tar::EntryType::GNUSparse => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let base = if kind == tar::EntryType::Symlink {
                    path.rsplit_once('/').map_or("", |(dir, _)| dir).to_string()
                } else {
                    String::new()
                };
                if resolve_inside(&base, &target).is_none() {
                    return Err(BuildError::Context(format!(
                        "build context entry {name:?} links to {target:?}, outside the context"
                    )));
                }
                if kind == tar::EntryType::Symlink {
                    links.push(path.clone());
                }
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            other => {
                return Err(BuildError::Context(format!(
                    "build context entry {name:?} is a {other:?}: only files, directories and links are allowed"
                )))
            }
        }
        if path == "." {
            continue;
        }
        file_bytes += entry.header().size().unwrap_or(0);
        if let Some(spill) = spill.filter(|s| file_bytes > s.after_bytes && dir.as_path() != s.dir)
        {
            copy_tree(&dir, spill.dir)?;
            for old in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
                let old = old.ctx(|| format!("read {}", dir.display()))?.path();
                let removed = match fs::symlink_metadata(&old) {
                    Ok(m) if m.is_dir() => fs::remove_dir_all(&old),
                    _ => fs::remove_file(&old),
                };
                removed.ctx(|| format!("remove {}", old.display()))?;
            }
            dir = spill.dir.to_path_buf();
        }
        match entry.unpack_in(&dir) {
            Ok(true) => {}
            Ok(false) => return Err(outside()),
            Err(e) => return Err(bad(e)),
        }
    }
    Ok(dir)
}

/// Lexically resolves `target` relative to `base` (a context-relative dir); `None` when
/// it leaves the context.
fn resolve_inside(base: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let joined = if base.is_empty() {
        target.to_string()
    } else {
        format!("{base}/{target}")
    };
    let cleaned = clean(&joined);
    (cleaned != ".." && !cleaned.starts_with("../")).then_some(cleaned)
}

/// The files a `COPY`/`ADD` takes from the context and a digest of their content, names,
/// modes and link targets — the part of a step's cache key that changes when a source does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// Context-relative paths of every file, directory and link copied, sorted.
    pub files: Vec<String>,
    pub digest: String,
}

fn has_wildcard(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// One context path a `COPY`/`ADD` source selects: `rel` is context-relative (`.` for the
/// whole context); a directory's (non-excluded) content is copied, not the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub rel: String,
    pub is_dir: bool,
}

/// What one `COPY` source (a path or a wildcard) selects in the context at `root`, skipping
/// what `ignore` excludes. A path that selects nothing is an error; a wildcard may select
/// nothing. Refuses sources outside the context; never follows a symlink.
pub fn matches(root: &Path, pattern: &str, ignore: &IgnoreRules) -> Result<Vec<Match>> {
    let rel = clean(pattern.trim_start_matches('/'));
    if rel == ".." || rel.starts_with("../") {
        return Err(BuildError::Context(format!(
            "forbidden path outside the build context: {pattern}"
        )));
    }
    let is_dir = |p: &str| {
        fs::symlink_metadata(root.join(p))
            .map(|m| m.is_dir())
            .unwrap_or(false)
    };
    let mut out = Vec::new();
    if has_wildcard(&rel) {
        let glob = crate::ignore::glob(&rel)
            .ok_or_else(|| BuildError::Context(format!("invalid wildcard {pattern:?}")))?;
        let mut all = Vec::new();
        walk(root, "", &mut all)?;
        all.sort();
        for p in all {
            // A wildcard selects the entries whose whole path matches it.
            if glob.is_match(&p) && !ignore.is_excluded(&p) {
                out.push(Match {
                    is_dir: is_dir(&p),
                    rel: p,
                });
            }
        }
    } else if rel == "." {
        out.push(Match {
            rel: ".".into(),
            is_dir: true,
        });
    } else if fs::symlink_metadata(root.join(&rel)).is_ok() && !ignore.is_excluded(&rel) {
        out.push(Match {
            is_dir: is_dir(&rel),
            rel,
        });
    } else {
        return Err(BuildError::Context(format!(
            "file not found in build context or excluded by .dockerignore: stat {pattern}: file does not exist"
        )));
    }
    Ok(out)
}

/// The non-excluded entries under the context directory `rel` (`.` for the root),
/// context-relative, sorted (parents before children).
pub fn dir_entries(root: &Path, rel: &str, ignore: &IgnoreRules) -> Result<Vec<String>> {
    let mut all = Vec::new();
    walk(root, if rel == "." { "" } else { rel }, &mut all)?;
    all.retain(|p| !ignore.is_excluded(p));
    all.sort();
    Ok(all)
}

/// Resolves `patterns` (expanded `COPY` sources: paths or wildcards) in the context at
/// `root`, skipping what `ignore` excludes, and hashes what they select. Never follows a
/// symlink; refuses sources outside the context.
pub fn hash_sources(root: &Path, patterns: &[String], ignore: &IgnoreRules) -> Result<Sources> {
    let mut selected = Vec::new();
    for pattern in patterns {
        for m in matches(root, pattern, ignore)? {
            if m.rel != "." {
                selected.push(m.rel.clone());
            }
            if m.is_dir {
                selected.extend(dir_entries(root, &m.rel, ignore)?);
            }
        }
    }
    selected.sort();
    selected.dedup();
    let mut hasher = Sha256::new();
    for rel in &selected {
        let path = root.join(rel);
        let meta = fs::symlink_metadata(&path).ctx(|| format!("stat {rel}"))?;
        hasher.update(rel.as_bytes());
        hasher.update(format!("\0{:o}\0{}:{}\0", meta.mode(), meta.uid(), meta.gid()).as_bytes());
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).ctx(|| format!("read link {rel}"))?;
            hasher.update(target.as_os_str().as_encoded_bytes());
        } else if meta.is_file() {
            let mut f = File::open(&path).ctx(|| format!("open {rel}"))?;
            let mut h = Sha256::new();
            io::copy(&mut f, &mut h).ctx(|| format!("read {rel}"))?;
            hasher.update(h.finalize());
        }
        hasher.update(b"\n");
    }
    Ok(Sources {
        files: selected,
        digest: format!("sha256:{}", hex::encode(hasher.finalize())),
    })
}

fn walk(root: &Path, rel: &str, out: &mut Vec<String>) -> Result<()> {
    let dir: PathBuf = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    for entry in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
        let entry = entry.ctx(|| format!("read {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let is_dir = entry.file_type().ctx(|| format!("stat {child}"))?.is_dir();
        out.push(child.clone());
        if is_dir {
            walk(root, &child, out)?;
        }
    }
    Ok(())
}
