//! `docker commit`: the upper directory of a container's overlay becomes a layer on top of its
//! image. Overlay whiteouts (0/0 character devices) become OCI `.wh.NAME` entries and opaque
//! directories (`trusted.overlay.opaque=y`) get a `.wh..wh..opq` entry, so the layer means the
//! same thing to any OCI consumer (and to [`crate::unpack`]). The image config is the parent's
//! with the given container config and a history entry; a commit that changed nothing adds a
//! history entry marked `empty_layer` and no layer, as Docker does.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use oci_spec::image::{Config, Descriptor, HistoryBuilder, ImageManifestBuilder, MediaType};

use crate::docker_config::DockerConfig;
use crate::error::{ImageError, IoContext, Result};
use crate::import::apply_change;
use crate::reference::Reference;
use crate::store::{oci_digest, HashingWriter, Store};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// The only xattr carried into the layer, as Docker's archiver does.
const CAPABILITY_XATTR: &str = "security.capability";

/// What `docker commit` asks for.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// The image the container was created from (its id).
    pub parent: String,
    /// The container's overlay upper directory.
    pub upper: PathBuf,
    /// The new image's config before `changes` (the request's config, or the container's).
    pub config: Config,
    /// Fills what `config` (after `changes`) leaves empty: the container's config, merged the
    /// way Docker merges a commit's config with the container's.
    pub defaults: Config,
    /// The new image's Docker config fields OCI's `Config` lacks (`Healthcheck`, `Shell`,
    /// `OnBuild`, …): a build step passes its parent's as the step changed them, `docker
    /// commit` the container's.
    pub docker: DockerConfig,
    /// Dockerfile lines (`CMD ["sh"]`, `ENV A=1`, …) applied to `config`.
    pub changes: Vec<String>,
    /// The history entry's `created_by` (Docker: the container's command).
    pub created_by: String,
    pub author: Option<String>,
    pub comment: Option<String>,
    /// A name for the new image (`repo:tag`).
    pub reference: Option<String>,
}

pub(crate) fn commit(store: &Store, request: &Commit) -> Result<String> {
    // Everything the caller can get wrong is checked before anything is stored.
    let reference = request
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()?;
    let mut config = request.config.clone();
    for change in &request.changes {
        apply_change(&mut config, change)?;
    }
    merge_defaults(&mut config, &request.defaults);
    let (_, parent) = store.entry(&request.parent)?;

    let _ingest = store.ingest_guard();
    let staging = store.temp_dir("commit")?;
    let layer_path = staging.path().join("layer.tar");
    let file = File::create(&layer_path).ctx(|| format!("create {}", layer_path.display()))?;
    let mut counting = CountingWriter::new(HashingWriter::new(file));
    let entries = write_layer(&request.upper, &mut counting)
        .ctx(|| format!("archive {}", request.upper.display()))?;
    let diff_id = counting.inner.digest();
    let size = counting.count;
    let empty = entries == 0;

    let created = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
    let mut history = HistoryBuilder::default()
        .created(created.clone())
        .created_by(request.created_by.clone());
    if let Some(author) = request.author.as_ref().filter(|a| !a.is_empty()) {
        history = history.author(author.clone());
    }
    if let Some(comment) = request.comment.as_ref().filter(|c| !c.is_empty()) {
        history = history.comment(comment.clone());
    }
    if empty {
        history = history.empty_layer(true);
    }
    let history = history
        .build()
        .map_err(|e| ImageError::invalid(format!("build history: {e}")))?;

    let mut image_config = parent.config.clone();
    image_config.set_created(Some(created));
    image_config.set_author(request.author.clone().filter(|a| !a.is_empty()));
    image_config.set_config(Some(config));
    let mut histories = image_config.history().clone().unwrap_or_default();
    histories.push(history);
    image_config.set_history(Some(histories));
    let mut layers = parent.manifest.layers().clone();
    if !empty {
        let mut diff_ids = image_config.rootfs().diff_ids().clone();
        diff_ids.push(diff_id.clone());
        image_config.rootfs_mut().set_diff_ids(diff_ids);
        layers.push(Descriptor::new(
            MediaType::ImageLayer,
            size,
            oci_digest(&diff_id),
        ));
    }
    let mut config_value = serde_json::to_value(&image_config)
        .map_err(|e| ImageError::invalid(format!("encode image config: {e}")))?;
    request.docker.write_into(&mut config_value);
    let config_json = config_value.to_string();
    let config_digest = store.write_blob(config_json.as_bytes())?;
    if !empty {
        store.adopt_file(&layer_path, &diff_id)?;
    }
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_json.len() as u64,
            oci_digest(&config_digest),
        ))
        .layers(layers)
        .build()
        .map_err(internal)?;
    let manifest_digest = store.write_blob(manifest.to_string().map_err(internal)?.as_bytes())?;
    store.commit(&manifest_digest, reference.as_slice())
}

fn internal(e: oci_spec::OciSpecError) -> ImageError {
    ImageError::invalid(format!("build image config: {e}"))
}

/// Fills what `config` leaves empty from `defaults`, as moby's `merge` does for a commit.
fn merge_defaults(config: &mut Config, defaults: &Config) {
    let empty = |v: &Option<Vec<String>>| v.as_ref().is_none_or(Vec::is_empty);
    if config.user().as_ref().is_none_or(String::is_empty) {
        config.set_user(defaults.user().clone());
    }
    let union = |own: &Option<Vec<String>>, other: &Option<Vec<String>>| {
        let mut out = own.clone().unwrap_or_default();
        for x in other.iter().flatten() {
            if !out.contains(x) {
                out.push(x.clone());
            }
        }
        (!out.is_empty()).then_some(out)
    };
    config.set_exposed_ports(union(config.exposed_ports(), defaults.exposed_ports()));
    config.set_volumes(union(config.volumes(), defaults.volumes()));
    if empty(config.env()) {
        config.set_env(defaults.env().clone());
    } else {
        let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
        let mut env = config.env().clone().unwrap_or_default();
        let named: Vec<String> = env.iter().map(|e| key(e)).collect();
        env.extend(
            defaults
                .env()
                .iter()
                .flatten()
                .filter(|e| !named.contains(&key(e)))
                .cloned(),
        );
        config.set_env(Some(env));
    }
    let mut labels: HashMap<String, String> = defaults.labels().clone().unwrap_or_default();
    labels.extend(config.labels().clone().unwrap_or_default());
    config.set_labels((!labels.is_empty()).then_some(labels));
    if empty(config.entrypoint()) {
        if empty(config.cmd()) {
            config.set_cmd(defaults.cmd().clone());
        }
        if config.entrypoint().is_none() {
            config.set_entrypoint(defaults.entrypoint().clone());
        }
    }
    if config.working_dir().as_ref().is_none_or(String::is_empty) {
        config.set_working_dir(defaults.working_dir().clone());
    }
    if config.stop_signal().as_ref().is_none_or(String::is_empty) {
        config.set_stop_signal(defaults.stop_signal().clone());
    }
}

/// Counts the bytes written through it.
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W> CountingWriter<W> {
    fn new(inner: W) -> Self {
        CountingWriter { inner, count: 0 }
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the layer tar of the overlay upper directory `upper` to `out`; returns how many
/// entries it holds (0: the container changed nothing, or never ran and has no upper dir).
pub(crate) fn write_layer(upper: &Path, out: impl Write) -> io::Result<usize> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut walk = Walk {
        builder: &mut builder,
        links: HashMap::new(),
        entries: 0,
    };
    match walk.dir(upper, Path::new("")) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && !upper.exists() => {}
        other => other?,
    }
    let entries = walk.entries;
    builder.into_inner()?.flush()?;
    Ok(entries)
}

struct Walk<'a, W: Write> {
    builder: &'a mut tar::Builder<W>,
    /// (device, inode) of files with several links → the first path archived.
    links: HashMap<(u64, u64), PathBuf>,
    entries: usize,
}

impl<W: Write> Walk<'_, W> {
    /// Archives the entries of `dir` (named `rel` in the layer), in name order.
    fn dir(&mut self, dir: &Path, rel: &Path) -> io::Result<()> {
        let mut children: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let path = child.path();
            let name = rel.join(child.file_name());
            let meta = fs::symlink_metadata(&path)?;
            self.entry(&path, &name, &meta)?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, name: &Path, meta: &fs::Metadata) -> io::Result<()> {
        let kind = meta.file_type();
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        self.entries += 1;
        if kind.is_char_device() && meta.rdev() == 0 {
            // An overlay whiteout: the path was deleted.
            let whiteout = name.with_file_name(format!(
                "{WHITEOUT_PREFIX}{}",
                name.file_name().unwrap_or_default().to_string_lossy()
            ));
            return self.empty_file(&mut header, &whiteout);
        }
        if kind.is_socket() {
            // Docker's archiver leaves sockets out too.
            self.entries -= 1;
            return Ok(());
        }
        self.capability_xattr(path)?;
        if kind.is_dir() {
            header.set_size(0);
            self.builder.append_data(&mut header, name, io::empty())?;
            if overlay_opaque(path) {
                let mut opaque = header.clone();
                self.empty_file(&mut opaque, &name.join(OPAQUE_WHITEOUT))?;
            }
            return self.dir(path, name);
        }
        if kind.is_symlink() {
            let target = fs::read_link(path)?;
            header.set_size(0);
            return self.builder.append_link(&mut header, name, target);
        }
        if kind.is_file() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                header.set_entry_type(tar::EntryType::Link);
                header.set_size(0);
                return self.builder.append_link(&mut header, name, first);
            }
            self.links.insert(key, name.to_path_buf());
        }
        if kind.is_file() {
            let file = File::open(path)?;
            return self.builder.append_data(&mut header, name, file);
        }
        // Fifos and device nodes: the header says it all.
        header.set_size(0);
        self.builder.append_data(&mut header, name, io::empty())
    }

    fn empty_file(&mut self, header: &mut tar::Header, name: &Path) -> io::Result<()> {
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(0);
        header.set_mode(0o600);
        header.set_device_major(0)?;
        header.set_device_minor(0)?;
        self.builder.append_data(header, name, io::empty())
    }

    /// Adds the file's `security.capability` (file capabilities) as a PAX record of the entry
    /// that follows.
    fn capability_xattr(&mut self, path: &Path) -> io::Result<()> {
        if let Some(value) = get_xattr(path, CAPABILITY_XATTR)? {
            let key = format!("SCHILY.xattr.{CAPABILITY_XATTR}");
            self.builder
                .append_pax_extensions([(key.as_str(), value.as_slice())])?;
        }
        Ok(())
    }
}

/// Whether overlayfs marked the directory opaque (it replaced a lower directory).
fn overlay_opaque(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|key| matches!(get_xattr(dir, key), Ok(Some(v)) if v == b"y"))
}

/// The value of xattr `key` of `path` (not following a symlink), None when it has none.
fn get_xattr(path: &Path, key: &str) -> io::Result<Option<Vec<u8>>> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let c_key = std::ffi::CString::new(key)?;
    let mut value = vec![0u8; 256];
    loop {
        // SAFETY: both strings are NUL-terminated and live for the call; the kernel writes at
        // most `value.len()` bytes into `value`, which we own.
        let n = unsafe {
            libc::lgetxattr(
                c_path.as_ptr(),
                c_key.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if n >= 0 {
            value.truncate(n as usize);
            return Ok(Some(value));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => return Ok(None),
            Some(libc::ERANGE) if value.len() < 1 << 16 => value.resize(value.len() * 4, 0),
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let kind = e.header().entry_type();
                let mut data = Vec::new();
                io::Read::read_to_end(&mut e, &mut data).unwrap();
                (path, kind, data)
            })
            .collect()
    }

    #[test]
    fn whiteouts_and_opaque_dirs_become_oci_entries() {
        let upper = tempfile::tempdir().unwrap();
        let u = upper.path();
        fs::create_dir_all(u.join("etc")).unwrap();
        fs::write(u.join("etc/motd"), "hello").unwrap();
        nix::sys::stat::mknod(
            &u.join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        fs::create_dir(u.join("opaque")).unwrap();
        let c_path = std::ffi::CString::new(u.join("opaque").as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated path and key, a one-byte value we own.
        let rc = unsafe {
            libc::setxattr(
                c_path.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        fs::write(u.join("opaque/new"), "n").unwrap();
        fs::hard_link(u.join("etc/motd"), u.join("motd-link")).unwrap();
        std::os::unix::fs::symlink("/etc/motd", u.join("link")).unwrap();

        let mut out = Vec::new();
        assert_eq!(write_layer(u, &mut out).unwrap(), 7);
        let got: Vec<(String, tar::EntryType)> =
            entries(&out).into_iter().map(|(p, k, _)| (p, k)).collect();
        use tar::EntryType as T;
        let want = [
            ("etc", T::Directory),
            ("etc/.wh.gone", T::Regular),
            ("etc/motd", T::Regular),
            ("link", T::Symlink),
            ("motd-link", T::Link),
            ("opaque", T::Directory),
            ("opaque/.wh..wh..opq", T::Regular),
            ("opaque/new", T::Regular),
        ];
        assert_eq!(
            got,
            want.map(|(p, k)| (p.to_string(), k)).to_vec(),
            "{got:?}"
        );

        // The layer unpacks back into the same overlay tree.
        let back = tempfile::tempdir().unwrap();
        crate::unpack::unpack_layer(out.as_slice(), back.path()).unwrap();
        let gone = fs::symlink_metadata(back.path().join("etc/gone")).unwrap();
        assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
        assert_eq!(
            fs::read_to_string(back.path().join("etc/motd")).unwrap(),
            "hello"
        );
        assert!(overlay_opaque(&back.path().join("opaque")));
    }

    #[test]
    fn an_unchanged_container_gives_an_empty_layer() {
        let upper = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        assert_eq!(write_layer(upper.path(), &mut out).unwrap(), 0);
        let mut out = Vec::new();
        let never_mounted = upper.path().join("upper");
        assert_eq!(write_layer(&never_mounted, &mut out).unwrap(), 0);
        assert!(tar::Archive::new(out.as_slice())
            .entries()
            .unwrap()
            .next()
            .is_none());
    }

    #[test]
    fn commit_config_is_filled_from_the_containers() {
        let v = |x: &[&str]| Some(x.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let mut defaults = Config::default();
        defaults
            .set_env(v(&["PATH=/bin", "A=1"]))
            .set_cmd(v(&["sh"]))
            .set_working_dir(Some("/srv".into()))
            .set_user(Some("nobody".into()))
            .set_labels(Some(HashMap::from([("a".into(), "1".into())])));
        let mut config = Config::default();
        config
            .set_env(v(&["A=2"]))
            .set_labels(Some(HashMap::from([("b".into(), "2".into())])));
        apply_change(&mut config, "CMD [\"echo\", \"hi\"]").unwrap();
        merge_defaults(&mut config, &defaults);
        assert_eq!(config.env(), &v(&["A=2", "PATH=/bin"]));
        assert_eq!(config.cmd(), &v(&["echo", "hi"]));
        assert_eq!(config.working_dir().as_deref(), Some("/srv"));
        assert_eq!(config.user().as_deref(), Some("nobody"));
        assert_eq!(config.labels().as_ref().unwrap().len(), 2);
    }
}
