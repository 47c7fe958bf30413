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
use std::path::{Path, PathBuf};

use nix::sys::stat::{fstat, SFlag};
use skiff_build::context::{self, Match};
use skiff_build::ignore::IgnoreRules;
use skiff_image::confined::{self, OpenFlags, Root};

use super::write::Writer;
use crate::error::{EngineError, IoContext, Result};

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

pub(super) fn invalid(m: impl Into<String>) -> EngineError {
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

pub(super) fn open_maybe_gzip(path: &Path) -> Result<Box<dyn Read>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::os::unix::fs::MetadataExt;

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
