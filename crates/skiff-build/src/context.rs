//! The build context: received as a tar (plain or gzip, as `POST /build` sends it),
//! checked, and unpacked by skiff-image's safe extractor; then read for `COPY`/`ADD`.
//!
//! Refused: a context over the size limit; entries with `..` or absolute paths climbing
//! out; symlinks and hard links whose target leaves the context; device nodes (the
//! extractor refuses those); `.wh.`-prefixed names, because the layer extractor this uses
//! today translates them into overlay whiteouts (lift when the shared extractor gains a
//! plain mode). Sources of `COPY` that leave the context are refused by [`hash_sources`].

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
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

/// Receives a context tar into `dir` (which must exist and be empty); `dir`'s sibling
/// `<dir>.tar` holds the received bytes while it is checked, and is removed.
pub fn receive(tar: impl Read, dir: &Path, limits: ContextLimits) -> Result<()> {
    let spool = dir.with_extension("tar");
    let result = (|| {
        let mut file = File::create(&spool).ctx(|| format!("create {}", spool.display()))?;
        let copied = io::copy(&mut tar.take(limits.max_bytes + 1), &mut file)
            .ctx(|| "receive the build context".to_string())?;
        if copied > limits.max_bytes {
            return Err(BuildError::Context(format!(
                "build context is larger than the {} byte limit",
                limits.max_bytes
            )));
        }
        // The docker CLI sends a context whose last entry (the `.dockerignore` it adds for
        // `-f -`) lacks its padding and the end-of-archive blocks; Docker accepts that.
        if copied % 512 != 0 && !is_gzip(&spool)? {
            let pad = 512 - (copied % 512) as usize;
            file.write_all(&vec![0u8; pad + 1024])
                .ctx(|| "receive the build context".to_string())?;
        }
        file.flush()
            .ctx(|| "receive the build context".to_string())?;
        check(open_tar(&spool)?, limits)?;
        skiff_image::unpack::unpack_layer(
            File::open(&spool).ctx(|| format!("open {}", spool.display()))?,
            dir,
        )?;
        Ok(())
    })();
    let _ = fs::remove_file(&spool);
    result
}

fn is_gzip(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 2];
    let mut f = File::open(path).ctx(|| format!("open {}", path.display()))?;
    let n = f.read(&mut magic).ctx(|| "read the build context".to_string())?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

fn open_tar(path: &Path) -> Result<Box<dyn Read>> {
    let mut reader = BufReader::new(File::open(path).ctx(|| format!("open {}", path.display()))?);
    let gzip = reader
        .fill_buf()
        .ctx(|| "read the build context".to_string())?
        .starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    })
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

fn check(reader: impl Read, limits: ContextLimits) -> Result<()> {
    let bad = |e: io::Error| BuildError::Context(format!("invalid build context archive: {e}"));
    let mut archive = tar::Archive::new(reader);
    let mut entries = 0u64;
    for entry in archive.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        entries += 1;
        if entries > limits.max_entries {
            return Err(BuildError::Context(format!(
                "build context has more than {} entries",
                limits.max_entries
            )));
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = resolve_inside("", name.trim_start_matches('/')).ok_or_else(|| {
            BuildError::Context(format!(
                "build context entry {name:?} is outside the context"
            ))
        })?;
        if path
            .rsplit('/')
            .next()
            .is_some_and(|base| base.starts_with(".wh."))
        {
            return Err(BuildError::Context(format!(
                "build context entry {name:?} uses the reserved .wh. prefix"
            )));
        }
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
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
        }
    }
    Ok(())
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
