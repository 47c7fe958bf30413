//! `skiff cp`: copies between a container and the local filesystem through the engine's
//! archive endpoints, with the docker CLI's rules for file and directory destinations.
//!
//! Archives unpacked on the host never write outside the destination: entries with `..` or
//! absolute paths are refused and no symlink is followed out of it.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use bollard::query_parameters::{
    ContainerArchiveInfoOptions, DownloadFromContainerOptions, UploadToContainerOptions,
};
use bollard::Docker;
use futures::TryStreamExt;

use super::{daemon_error, Outcome};

#[derive(clap::Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// CONTAINER:SRC_PATH, SRC_PATH or - (a tar archive on stdin)
    source: String,
    /// CONTAINER:DEST_PATH, DEST_PATH or - (a tar archive on stdout)
    destination: String,
}

/// One side of a copy.
#[derive(Debug, PartialEq)]
enum Side {
    Local(String),
    Container { name: String, path: String },
}

/// `CONTAINER:PATH` or a local path; like docker, a local path with a colon needs a `/` or `.`
/// before it (`./a:b`).
fn side(raw: &str) -> Side {
    if raw.starts_with('/') || raw.starts_with('.') {
        return Side::Local(raw.to_owned());
    }
    match raw.split_once(':') {
        Some((name, path)) if !name.is_empty() => Side::Container {
            name: name.to_owned(),
            path: path.to_owned(),
        },
        _ => Side::Local(raw.to_owned()),
    }
}

/// Go's `os.ModeDir`, as the archive stat header reports it.
const GO_MODE_DIR: u32 = 1 << 31;
/// Go's `os.ModeSymlink`.
const GO_MODE_SYMLINK: u32 = 1 << 27;

pub async fn cp(docker: &Docker, args: CpArgs) -> Outcome {
    match (side(&args.source), side(&args.destination)) {
        (Side::Container { name, path }, Side::Local(dest)) => {
            from_container(docker, &name, &path, &dest, args.follow_link).await?
        }
        (Side::Local(src), Side::Container { name, path }) => {
            to_container(docker, &src, &name, &path, &args).await?
        }
        (Side::Container { .. }, Side::Container { .. }) => {
            bail!("copying between containers is not supported")
        }
        (Side::Local(_), Side::Local(_)) => {
            bail!("must specify at least one container source")
        }
    }
    Ok(0)
}

/// Whether `path` asks for a directory's contents (`dir/.`) rather than the directory.
fn contents_only(path: &str) -> bool {
    path == "." || path.ends_with("/.")
}

/// The last normal component of a path (`/a/b/` → `b`).
fn base_name(path: &str) -> Option<String> {
    Path::new(path).components().rev().find_map(|c| match c {
        Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
        _ => None,
    })
}

async fn stat(
    docker: &Docker,
    name: &str,
    path: &str,
) -> Result<bollard::container::PathStatResponse, bollard::errors::Error> {
    let opts = ContainerArchiveInfoOptions { path: path.into() };
    docker.get_container_archive_info(name, Some(opts)).await
}

/// Whether a stat failed for a missing path or container.
fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// A missing container's error (a HEAD reply has no message to tell it from a missing path).
async fn check_container(docker: &Docker, name: &str) -> anyhow::Result<()> {
    let opts = None::<bollard::query_parameters::InspectContainerOptions>;
    docker
        .inspect_container(name, opts)
        .await
        .map(drop)
        .map_err(daemon_error)
}

async fn from_container(
    docker: &Docker,
    name: &str,
    src: &str,
    dest: &str,
    follow_link: bool,
) -> anyhow::Result<()> {
    let mut src_path = src.to_owned();
    let mut info = match stat(docker, name, &src_path).await {
        Ok(info) => info,
        Err(e) if not_found(&e) => {
            check_container(docker, name).await?;
            bail!("Error response from daemon: Could not find the file {src} in container {name}")
        }
        Err(e) => return Err(daemon_error(e)),
    };
    if follow_link && info.file_mode & GO_MODE_SYMLINK != 0 && !info.link_target.is_empty() {
        src_path = info.link_target.clone();
        info = stat(docker, name, &src_path).await.map_err(daemon_error)?;
    }
    let opts = DownloadFromContainerOptions {
        path: src_path.clone(),
    };
    let archive: Vec<u8> = docker
        .download_from_container(name, Some(opts))
        .try_fold(Vec::new(), |mut all, chunk| async move {
            all.extend_from_slice(&chunk);
            Ok(all)
        })
        .await
        .map_err(daemon_error)?;
    if dest == "-" {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&archive)?;
        out.flush()?;
        return Ok(());
    }
    let src_is_dir = info.file_mode & GO_MODE_DIR != 0;
    let dest_path = PathBuf::from(dest);
    let (base, root) = match std::fs::metadata(&dest_path) {
        Ok(meta) if meta.is_dir() => {
            if src_is_dir && contents_only(src) {
                (dest_path, Rename::Drop)
            } else {
                (dest_path, Rename::Keep)
            }
        }
        Ok(_) if src_is_dir => bail!("cannot copy a directory to a file: {dest}"),
        Ok(_) => (parent(&dest_path), Rename::To(file_name(&dest_path)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !src_is_dir && (dest.ends_with('/') || dest.ends_with("/.")) {
                bail!("destination directory {dest} does not exist");
            }
            let parent = parent(&dest_path);
            if !parent.is_dir() {
                bail!("destination directory {} does not exist", parent.display());
            }
            (parent, Rename::To(file_name(&dest_path)?))
        }
        Err(e) => return Err(e).with_context(|| format!("reading {dest}")),
    };
    let dot_root = info.name == ".";
    tokio::task::spawn_blocking(move || unpack(&archive[..], &base, &root, dot_root))
        .await
        .context("unpacking the archive")?
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> anyhow::Result<std::ffi::OsString> {
    path.file_name()
        .map(ToOwned::to_owned)
        .with_context(|| format!("invalid destination {}", path.display()))
}

/// What becomes of an archive's root on the host.
enum Rename {
    /// Kept as it is.
    Keep,
    /// Replaced by this name.
    To(std::ffi::OsString),
    /// Dropped: its contents land in the base directory itself.
    Drop,
}

/// Where an archive entry lands below `base`, or `None` for the root of a [`Rename::Drop`].
/// The root is the entry's first component, or `.` for archives of a directory's contents
/// (`dot_root`, from `dir/.`), whose entries are `./`, `a`, `sub/b`. Entries with `..`,
/// absolute paths or prefixes are refused.
fn target(
    base: &Path,
    entry: &Path,
    root: &Rename,
    dot_root: bool,
) -> anyhow::Result<Option<PathBuf>> {
    let refuse = || anyhow::anyhow!("refusing archive entry {}", entry.display());
    let mut components = entry.components().peekable();
    let first = match components.peek() {
        _ if dot_root => None,
        Some(Component::Normal(n)) => Some(n.to_owned()),
        Some(Component::CurDir) => None,
        _ => return Err(refuse()),
    };
    if !dot_root {
        components.next();
    }
    let mut rest = Vec::new();
    for c in components {
        match c {
            Component::Normal(n) => rest.push(n),
            Component::CurDir => {}
            _ => return Err(refuse()),
        }
    }
    let mut out = base.to_owned();
    match root {
        Rename::Keep => out.extend(first),
        Rename::To(name) => out.push(name),
        Rename::Drop if rest.is_empty() => return Ok(None),
        Rename::Drop => {}
    }
    out.extend(rest);
    Ok(Some(out))
}

/// Fails if `dir` (which exists) resolves outside `base`, e.g. through a symlink.
fn check_inside(base_real: &Path, dir: &Path) -> anyhow::Result<()> {
    let real = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    if !real.starts_with(base_real) {
        bail!(
            "refusing to write through {}: it leads outside the destination",
            dir.display()
        );
    }
    Ok(())
}

/// Creates `dir` below `base_real` one component at a time, refusing to go through a symlink
/// that leads outside `base_real` (so nothing is created out there either).
fn make_dirs(base_real: &Path, dir: &Path) -> anyhow::Result<()> {
    let rest = dir.strip_prefix(base_real).unwrap_or(dir);
    let mut current = base_real.to_owned();
    for part in rest.components() {
        current.push(part);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => check_inside(base_real, &current)?,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&current)
                .with_context(|| format!("creating {}", current.display()))?,
            Err(e) => return Err(e).with_context(|| format!("reading {}", current.display())),
        }
    }
    check_inside(base_real, dir)
}

/// Unpacks a tar archive below `base`, renaming its root as `root` says (see [`target`] for
/// `dot_root`).
fn unpack(archive: impl Read, base: &Path, root: &Rename, dot_root: bool) -> anyhow::Result<()> {
    let base_real = base
        .canonicalize()
        .with_context(|| format!("resolving {}", base.display()))?;
    let mut archive = tar::Archive::new(archive);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    for entry in archive.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        let path = entry.path().context("reading the archive")?.into_owned();
        let Some(dst) = target(&base_real, &path, root, dot_root)? else {
            continue;
        };
        make_dirs(&base_real, &parent(&dst))?;
        let kind = entry.header().entry_type();
        if let Ok(existing) = std::fs::symlink_metadata(&dst) {
            if kind.is_dir() && existing.is_dir() {
                check_inside(&base_real, &dst)?;
            } else if existing.is_dir() {
                bail!(
                    "cannot overwrite directory {} with a non-directory",
                    dst.display()
                );
            } else {
                // Never write through an existing symlink (or hard-link onto a file).
                std::fs::remove_file(&dst)
                    .with_context(|| format!("replacing {}", dst.display()))?;
            }
        }
        if kind.is_hard_link() {
            let link = entry
                .link_name()
                .context("reading the archive")?
                .context("hard link without a target")?
                .into_owned();
            let Some(original) = target(&base_real, &link, root, dot_root)? else {
                bail!("refusing hard link {}", path.display());
            };
            check_inside(&base_real, &parent(&original))?;
            std::fs::hard_link(&original, &dst)
                .with_context(|| format!("linking {}", dst.display()))?;
            continue;
        }
        entry
            .unpack(&dst)
            .with_context(|| format!("writing {}", dst.display()))?;
    }
    Ok(())
}

async fn to_container(
    docker: &Docker,
    src: &str,
    name: &str,
    dest: &str,
    args: &CpArgs,
) -> anyhow::Result<()> {
    let upload = |path: String, archive: Vec<u8>| {
        let opts = UploadToContainerOptions {
            path,
            copy_uidgid: args.archive.then(|| "1".to_owned()),
            no_overwrite_dir_non_dir: Some("1".to_owned()),
        };
        async move {
            docker
                .upload_to_container(name, Some(opts), bollard::body_full(archive.into()))
                .await
                .map_err(daemon_error)
        }
    };
    if src == "-" {
        let mut archive = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut archive)
            .context("reading the archive from stdin")?;
        return upload(dest.to_owned(), archive).await;
    }
    let src_meta = if args.follow_link {
        std::fs::metadata(src)
    } else {
        std::fs::symlink_metadata(src)
    }
    .with_context(|| format!("could not find the file {src}"))?;
    let src_is_dir = src_meta.is_dir();
    let (dir, root_name) = match stat(docker, name, dest).await {
        Ok(info) if info.file_mode & GO_MODE_DIR != 0 => {
            if src_is_dir && contents_only(src) {
                (dest.to_owned(), None)
            } else {
                let base = base_name(src).with_context(|| format!("invalid source {src}"))?;
                (dest.to_owned(), Some(base))
            }
        }
        Ok(_) if src_is_dir => bail!("cannot copy a directory to a file: {dest}"),
        Ok(_) => (container_parent(dest), base_name(dest)),
        Err(e) if not_found(&e) => {
            check_container(docker, name).await?;
            if !src_is_dir && dest.ends_with('/') {
                bail!("destination directory {name}:{dest} does not exist");
            }
            (container_parent(dest), base_name(dest))
        }
        Err(e) => return Err(daemon_error(e)),
    };
    let src = PathBuf::from(src);
    let follow = args.follow_link;
    let archive = tokio::task::spawn_blocking(move || pack(&src, root_name.as_deref(), follow))
        .await
        .context("packing the archive")??;
    upload(dir, archive).await
}

/// The directory holding `path` inside the container.
fn container_parent(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) => "/".into(),
        Some((parent, _)) => parent.into(),
        None => ".".into(),
    }
}

/// A tar of `src` named `root` (or of its contents when `root` is `None`). Symlinks are stored
/// as links unless `follow` asks for the top one to be followed.
fn pack(src: &Path, root: Option<&str>, follow: bool) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let read = |p: &Path| format!("reading {}", p.display());
    match root {
        Some(root) => {
            let meta = if follow {
                std::fs::metadata(src)
            } else {
                std::fs::symlink_metadata(src)
            }
            .with_context(|| read(src))?;
            if meta.is_dir() {
                builder
                    .append_dir_all(root, src)
                    .with_context(|| read(src))?;
            } else if meta.is_file() {
                let mut file = std::fs::File::open(src).with_context(|| read(src))?;
                builder
                    .append_file(root, &mut file)
                    .with_context(|| read(src))?;
            } else {
                builder
                    .append_path_with_name(src, root)
                    .with_context(|| read(src))?;
            }
        }
        None => {
            for child in std::fs::read_dir(src).with_context(|| read(src))? {
                let child = child.with_context(|| read(src))?;
                let path = child.path();
                let name = child.file_name();
                if child.file_type().with_context(|| read(&path))?.is_dir() {
                    builder
                        .append_dir_all(&name, &path)
                        .with_context(|| read(&path))?;
                } else {
                    builder
                        .append_path_with_name(&path, &name)
                        .with_context(|| read(&path))?;
                }
            }
        }
    }
    builder.into_inner().context("finishing the archive")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_parse_like_docker() {
        assert_eq!(
            side("web:/etc/hosts"),
            Side::Container {
                name: "web".into(),
                path: "/etc/hosts".into()
            }
        );
        assert_eq!(side("./a:b"), Side::Local("./a:b".into()));
        assert_eq!(side("/tmp/x"), Side::Local("/tmp/x".into()));
        assert_eq!(side("-"), Side::Local("-".into()));
        assert_eq!(container_parent("/etc/hosts"), "/etc");
        assert_eq!(container_parent("/hosts"), "/");
        assert_eq!(container_parent("/etc/dir/"), "/etc");
    }

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // Write the name bytes directly: `set_path` itself refuses `..`.
        let field = &mut h.as_old_mut().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    #[test]
    fn unpack_refuses_entries_escaping_with_dotdot() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        let tar = archive(|b| file(b, "root/../../evil", b"x"));
        assert!(unpack(&tar[..], &dest, &Rename::Keep, false).is_err());
        assert!(!dir.path().join("evil").exists());
    }

    #[test]
    fn unpack_does_not_follow_symlinks_out_of_dest() {
        let dir = tempfile::tempdir().unwrap();
        let (dest, outside) = (dir.path().join("dest"), dir.path().join("outside"));
        std::fs::create_dir(&dest).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, dest.join("link")).unwrap();
        let tar = archive(|b| file(b, "link/sub/evil", b"x"));
        assert!(unpack(&tar[..], &dest, &Rename::Keep, false).is_err());
        assert!(!outside.join("sub").exists());
        // A file entry over an existing symlink replaces the link, not its target.
        std::os::unix::fs::symlink(outside.join("f"), dest.join("f")).unwrap();
        let tar = archive(|b| file(b, "f", b"data"));
        unpack(&tar[..], &dest, &Rename::Keep, false).unwrap();
        assert!(!outside.join("f").exists());
        assert_eq!(std::fs::read(dest.join("f")).unwrap(), b"data");
    }

    #[test]
    fn unpack_renames_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let tar = archive(|b| {
            file(b, "src/a", b"1");
            file(b, "src/sub/b", b"2");
        });
        unpack(&tar[..], dir.path(), &Rename::To("copy".into()), false).unwrap();
        assert_eq!(std::fs::read(dir.path().join("copy/sub/b")).unwrap(), b"2");
        unpack(&tar[..], dir.path(), &Rename::Drop, false).unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"1");
        let contents = archive(|b| file(b, "c", b"3"));
        unpack(&contents[..], dir.path(), &Rename::To("dot".into()), true).unwrap();
        assert_eq!(std::fs::read(dir.path().join("dot/c")).unwrap(), b"3");
        unpack(&contents[..], dir.path(), &Rename::Drop, true).unwrap();
        assert_eq!(std::fs::read(dir.path().join("c")).unwrap(), b"3");
    }
}
