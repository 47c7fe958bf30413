//! The content store (`blobs/sha256/<hex>`), the name index (`index.json`, an OCI image
//! index whose descriptors carry `io.containerd.image.name`) and Docker's rules for
//! lookup, tag, rmi and prune.
//!
//! `docker rmi` follows moby's `ImageDelete`: removing a name only untags unless it was
//! the last one; removing by id untags every name when they all belong to one repository
//! (several repositories need `force`); an image a container uses is refused without
//! `force`. Blobs and snapshots no remaining image references are deleted afterwards,
//! except the snapshots of an image deleted by force while in use: its containers still
//! mount them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageIndexBuilder, ImageManifest, MediaType,
};
use sha2::{Digest as _, Sha256};

use crate::docker_config::DockerConfig;
use crate::error::{ImageError, IoContext, Result};
use crate::reference::{ImageRef, Reference};
use crate::snapshot;
use crate::{Image, Removed};

/// Annotation holding an image's full name in an OCI index (containerd's convention).
pub(crate) const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// Annotation holding the tag (or a full name) in an OCI index.
pub(crate) const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One stored image, keyed by its id in [`State`].
#[derive(Clone)]
pub(crate) struct Entry {
    pub manifest_digest: String,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// Docker's config fields OCI's type lacks, from the same blob.
    pub docker: DockerConfig,
    pub names: BTreeSet<Reference>,
    /// Digest references of pulled or pushed manifests (`RepoDigests`), one per repository.
    pub digests: BTreeSet<RepoDigest>,
}

/// A repository plus the digest of the manifest it serves (`busybox@sha256:…`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RepoDigest {
    /// Fully qualified: `docker.io/library/busybox@sha256:…`.
    pub full: String,
    /// Familiar: `busybox@sha256:…`.
    pub familiar: String,
}

impl RepoDigest {
    pub fn new(r: &ImageRef, digest: &str) -> RepoDigest {
        let r = r.with_digest(digest);
        RepoDigest {
            full: format!("{}/{}@{digest}", r.domain(), r.path()),
            familiar: r.to_string(),
        }
    }
}

impl Entry {
    fn to_image(&self, id: &str) -> Image {
        Image {
            id: id.to_string(),
            repo_tags: self.names.iter().map(Reference::to_string).collect(),
            repo_digests: self.digests.iter().map(|d| d.familiar.clone()).collect(),
            config: self.config.clone(),
            docker: self.docker.clone(),
            manifest_digest: self.manifest_digest.clone(),
            size: self.manifest.layers().iter().map(Descriptor::size).sum(),
            created: self.config.created().clone(),
            diff_ids: self.config.rootfs().diff_ids().clone(),
        }
    }

    /// The manifest, config and layer digests of the image.
    pub fn blob_digests(&self) -> impl Iterator<Item = String> + '_ {
        let config = self.manifest.config().digest().to_string();
        let layers = self
            .manifest
            .layers()
            .iter()
            .map(|l| l.digest().to_string());
        [self.manifest_digest.clone(), config]
            .into_iter()
            .chain(layers)
    }
}

#[derive(Default)]
pub(crate) struct State {
    /// Image id (`sha256:` + config digest) → image.
    pub images: BTreeMap<String, Entry>,
}

pub(crate) struct Store {
    root: PathBuf,
    state: Mutex<State>,
    /// Held shared while blobs are written but not yet indexed, exclusively by garbage
    /// collection, so GC never deletes a blob a load is about to reference.
    gc: RwLock<()>,
    /// One lock per chain id being unpacked.
    unpacking: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    layer_sizes: crate::sizes::LayerSizes,
}

impl Store {
    pub fn open(root: &Path) -> Result<Store> {
        for dir in ["blobs/sha256", "snapshots", "tmp"] {
            let p = root.join(dir);
            fs::create_dir_all(&p).ctx(|| format!("create {}", p.display()))?;
        }
        // Leftovers of interrupted loads and unpacks.
        clear_dir(&root.join("tmp"))?;
        let layout = root.join("oci-layout");
        if !layout.exists() {
            write_atomic(root, &layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let store = Store {
            root: root.to_path_buf(),
            state: Mutex::new(State::default()),
            gc: RwLock::new(()),
            unpacking: Mutex::new(HashMap::new()),
            layer_sizes: Default::default(),
        };
        let index_path = root.join("index.json");
        if index_path.exists() {
            let index = ImageIndex::from_file(&index_path).map_err(|e| {
                ImageError::invalid(format!("corrupt {}: {e}", index_path.display()))
            })?;
            let mut state = store.lock();
            for desc in index.manifests() {
                let digest = desc.digest().to_string();
                // One damaged image must not make the whole store unusable.
                let (id, entry) = match store.read_entry(&digest) {
                    Ok(found) => found,
                    Err(error) => {
                        tracing::warn!(manifest = %digest, %error, "skipping unreadable image");
                        continue;
                    }
                };
                let entry = state.images.entry(id).or_insert(entry);
                let name = desc
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_IMAGE_NAME));
                if let Some(name) = name.and_then(|n| ImageRef::parse(n).ok()) {
                    match (name.tagged(), name.digest()) {
                        (Some(tagged), _) => {
                            entry.names.insert(tagged);
                        }
                        (None, Some(digest)) => {
                            entry.digests.insert(RepoDigest::new(&name, digest));
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shared guard to hold while writing blobs that are not indexed yet.
    pub fn ingest_guard(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gc.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The per-chain-id unpack lock.
    pub fn unpack_lock(&self, chain_id: &str) -> Arc<Mutex<()>> {
        let mut map = self.unpacking.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(chain_id.to_string()).or_default().clone()
    }

    /// The unpacked layer sizes known so far (see [`crate::sizes`]).
    pub(crate) fn layer_sizes(&self) -> &crate::sizes::LayerSizes {
        &self.layer_sizes
    }

    /// The image with its unpacked size (see [`crate::sizes`]): counted outside the state
    /// lock, as a layer never unpacked is read from its blob.
    fn sized(&self, id: &str, entry: &Entry) -> Image {
        let mut image = entry.to_image(id);
        match crate::sizes::layers(self, entry) {
            Ok(sizes) => image.size = sizes.iter().sum(),
            Err(e) => tracing::warn!(image = id, error = %e, "sizing an image's layers"),
        }
        image
    }

    /// The unpacked size of each layer of the image, bottom first.
    pub fn layer_sizes_of(&self, s: &str) -> Result<Vec<u64>> {
        let (_, entry) = self.entry(s)?;
        crate::sizes::layers(self, &entry)
    }

    /// A fresh private directory under `<root>/tmp`.
    pub fn temp_dir(&self, prefix: &str) -> Result<TempDir> {
        let path = self
            .root
            .join("tmp")
            .join(format!("{prefix}-{}", skiff_core::ids::random_id()));
        fs::create_dir(&path).ctx(|| format!("create {}", path.display()))?;
        Ok(TempDir(path))
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest_hex(digest)
            .ok_or_else(|| ImageError::invalid(format!("invalid digest {digest:?}")))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    pub fn open_blob(&self, digest: &str) -> Result<fs::File> {
        let path = self.blob_path(digest)?;
        fs::File::open(&path).ctx(|| format!("open blob {digest}"))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.exists())
    }

    /// Stores `bytes` as a blob and returns its digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<String> {
        let digest = skiff_core::ids::sha256_digest(bytes);
        if !self.has_blob(&digest) {
            write_atomic(&self.root, &self.blob_path(&digest)?, bytes)?;
        }
        Ok(digest)
    }

    /// Moves an already hashed file (under `<root>/tmp`) into the blob store as `digest`.
    pub fn adopt_file(&self, file: &Path, digest: &str) -> Result<()> {
        let dest = self.blob_path(digest)?;
        fs::rename(file, &dest).ctx(|| format!("store blob {digest}"))
    }

    /// Reads a manifest and its config from the blob store.
    pub fn read_entry(&self, manifest_digest: &str) -> Result<(String, Entry)> {
        let manifest = ImageManifest::from_reader(self.open_blob(manifest_digest)?)
            .map_err(|e| ImageError::invalid(format!("invalid manifest {manifest_digest}: {e}")))?;
        let config_digest = manifest.config().digest().to_string();
        let bytes = fs::read(self.blob_path(&config_digest)?)
            .ctx(|| format!("read blob {config_digest}"))?;
        let config = ImageConfiguration::from_reader(&bytes[..]).map_err(|e| {
            ImageError::invalid(format!("invalid image config {config_digest}: {e}"))
        })?;
        let entry = Entry {
            manifest_digest: manifest_digest.to_string(),
            manifest,
            config,
            docker: DockerConfig::from_blob(&bytes),
            names: BTreeSet::new(),
            digests: BTreeSet::new(),
        };
        Ok((config_digest, entry))
    }

    /// Indexes the image whose manifest blob (and everything it references) is stored,
    /// moving `names` to it. Returns the image id.
    pub fn commit(&self, manifest_digest: &str, names: &[Reference]) -> Result<String> {
        self.commit_with_digests(manifest_digest, names, &[])
    }

    /// [`Store::commit`] that also records repository digests (after a pull or push).
    pub fn commit_with_digests(
        &self,
        manifest_digest: &str,
        names: &[Reference],
        digests: &[RepoDigest],
    ) -> Result<String> {
        let (id, entry) = self.read_entry(manifest_digest)?;
        for layer in entry.manifest.layers() {
            if !self.has_blob(layer.digest().as_ref()) {
                return Err(ImageError::invalid(format!(
                    "layer blob {} is missing",
                    layer.digest()
                )));
            }
        }
        if entry.manifest.layers().len() != entry.config.rootfs().diff_ids().len() {
            return Err(ImageError::invalid(format!(
                "image {id} has {} layers but its config lists {} diff ids",
                entry.manifest.layers().len(),
                entry.config.rootfs().diff_ids().len()
            )));
        }
        let mut state = self.lock();
        state.images.entry(id.clone()).or_insert(entry);
        for name in names {
            move_name(&mut state, &id, name.clone());
        }
        for digest in digests {
            // A repository digest names one manifest, so it belongs to one image.
            for other in state.images.values_mut() {
                other.digests.remove(digest);
            }
            if let Some(entry) = state.images.get_mut(&id) {
                entry.digests.insert(digest.clone());
            }
        }
        self.save_index(&state)?;
        Ok(id)
    }

    fn save_index(&self, state: &State) -> Result<()> {
        let mut manifests = Vec::new();
        for entry in state.images.values() {
            let desc = || {
                Descriptor::new(
                    MediaType::ImageManifest,
                    fs::metadata(self.blob_path(&entry.manifest_digest).unwrap_or_default())
                        .map_or(0, |m| m.len()),
                    oci_digest(&entry.manifest_digest),
                )
            };
            if entry.names.is_empty() && entry.digests.is_empty() {
                manifests.push(desc());
            }
            for name in &entry.names {
                let mut d = desc();
                d.set_annotations(Some(name_annotations(name)));
                manifests.push(d);
            }
            for digest in &entry.digests {
                let mut d = desc();
                d.set_annotations(Some(HashMap::from([(
                    ANNOTATION_IMAGE_NAME.to_string(),
                    digest.full.clone(),
                )])));
                manifests.push(d);
            }
        }
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(|e| ImageError::invalid(format!("build index: {e}")))?;
        let json = index
            .to_string()
            .map_err(|e| ImageError::invalid(format!("encode index: {e}")))?;
        write_atomic(&self.root, &self.root.join("index.json"), json.as_bytes())
    }

    /// Finds the image `s` names: a name, a full id, `sha256:`+hex or a unique hex prefix.
    /// Also returns the name when `s` was one.
    pub fn resolve(&self, state: &State, s: &str) -> Result<(String, Option<Reference>)> {
        // Named as moby names it: a name with its tag (`nosuch:latest`), anything else as given.
        let not_found = || {
            ImageError::NotFound(
                Reference::parse(s).map_or_else(|_| s.to_string(), |r| r.to_string()),
            )
        };
        if let Some(hex) = s.strip_prefix("sha256:") {
            return find_by_prefix(state, hex, s)?
                .map(|id| (id, None))
                .ok_or_else(not_found);
        }
        if let Ok(r) = Reference::parse(s) {
            if let Some((id, _)) = state.images.iter().find(|(_, e)| e.names.contains(&r)) {
                return Ok((id.clone(), Some(r)));
            }
        }
        if let Ok(r) = ImageRef::parse(s) {
            if let Some(digest) = r.digest() {
                let wanted = RepoDigest::new(&r, digest);
                if let Some((id, _)) = state
                    .images
                    .iter()
                    .find(|(_, e)| e.digests.contains(&wanted))
                {
                    return Ok((id.clone(), None));
                }
            }
        }
        find_by_prefix(state, s, s)?
            .map(|id| (id, None))
            .ok_or_else(not_found)
    }

    /// The images, each `size` the blobs' (cheap: for callers that do not show sizes).
    pub fn list_unsized(&self) -> Vec<Image> {
        let state = self.lock();
        state.images.iter().map(|(id, e)| e.to_image(id)).collect()
    }

    pub fn list(&self) -> Result<Vec<Image>> {
        let entries: Vec<(String, Entry)> = self
            .lock()
            .images
            .iter()
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect();
        let mut images: Vec<Image> = entries.iter().map(|(id, e)| self.sized(id, e)).collect();
        images.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(images)
    }

    pub fn count(&self) -> usize {
        self.lock().images.len()
    }

    /// The image, its `size` the blobs' (cheap: for callers that need its config).
    pub fn get(&self, s: &str) -> Result<Image> {
        let state = self.lock();
        let (id, _) = self.resolve(&state, s)?;
        Ok(state.images[&id].to_image(&id))
    }

    /// The image with its unpacked size, as `docker image inspect` shows it.
    pub fn get_sized(&self, s: &str) -> Result<Image> {
        let (id, entry) = self.entry(s)?;
        Ok(self.sized(&id, &entry))
    }

    /// The image `s` resolves to (see [`Store::resolve`]) and its id.
    pub fn entry(&self, s: &str) -> Result<(String, Entry)> {
        let state = self.lock();
        let (id, _) = self.resolve(&state, s)?;
        Ok((id.clone(), state.images[&id].clone()))
    }

    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let target = Reference::parse(target)?;
        let mut state = self.lock();
        let (id, _) = self.resolve(&state, source)?;
        move_name(&mut state, &id, target);
        self.save_index(&state)
    }

    pub fn remove(
        &self,
        s: &str,
        force: bool,
        user: &dyn Fn(&str) -> Option<crate::ImageUser>,
    ) -> Result<Vec<Removed>> {
        let _gc = self.gc.write().unwrap_or_else(|e| e.into_inner());
        let mut state = self.lock();
        let (id, name) = self.resolve(&state, s)?;
        let short = skiff_core::ids::short_id(&id).to_string();
        let names = state.images[&id].names.clone();
        let user = user(&id);
        let container = |u: &crate::ImageUser| skiff_core::ids::short_id(&u.container).to_string();
        let mut removed = Vec::new();
        if let Some(name) = name {
            if let Some(u) = user.as_ref().filter(|_| names.len() == 1 && !force) {
                return Err(ImageError::Conflict(format!(
                    "unable to remove repository reference {s:?} (must force) - container {} is using its referenced image {short}",
                    container(u)
                )));
            }
            state
                .images
                .get_mut(&id)
                .expect("resolved")
                .names
                .remove(&name);
            removed.push(Removed::Untagged(name.to_string()));
            // An image a running container uses stays, nameless, after its last name goes.
            if names.len() > 1 || user.as_ref().is_some_and(|u| u.running) {
                self.save_index(&state)?;
                return Ok(removed);
            }
        } else {
            if let Some(u) = user.as_ref().filter(|u| u.running) {
                return Err(ImageError::Conflict(format!(
                    "unable to delete {short} (cannot be forced) - image is being used by running container {}",
                    container(u)
                )));
            }
            let repositories: HashSet<String> =
                names.iter().map(Reference::familiar_repository).collect();
            if repositories.len() > 1 && !force {
                return Err(ImageError::Conflict(format!(
                    "unable to delete {short} (must be forced) - image is referenced in multiple repositories"
                )));
            }
            if let Some(u) = user.as_ref().filter(|_| !force) {
                return Err(ImageError::Conflict(format!(
                    "unable to delete {short} (must be forced) - image is being used by stopped container {}",
                    container(u)
                )));
            }
            removed.extend(names.iter().map(|n| Removed::Untagged(n.to_string())));
        }
        let digests = &state.images[&id].digests;
        removed.extend(
            digests
                .iter()
                .map(|d| Removed::Untagged(d.familiar.clone())),
        );
        let entry = state.images.remove(&id).expect("resolved");
        removed.push(Removed::Deleted(id.clone()));
        self.save_index(&state)?;
        let keep_snapshots = user.is_some();
        self.collect_garbage(&state, &[(entry, keep_snapshots)])?;
        Ok(removed)
    }

    pub fn prune(&self, all: bool, in_use: &dyn Fn(&str) -> bool) -> Result<(Vec<Removed>, u64)> {
        let _gc = self.gc.write().unwrap_or_else(|e| e.into_inner());
        let mut state = self.lock();
        let victims: Vec<String> = state
            .images
            .iter()
            .filter(|(id, e)| (all || (e.names.is_empty() && e.digests.is_empty())) && !in_use(id))
            .map(|(id, _)| id.clone())
            .collect();
        let mut removed = Vec::new();
        let mut deleted = Vec::new();
        for id in victims {
            let entry = state.images.remove(&id).expect("listed");
            removed.extend(entry.names.iter().map(|n| Removed::Untagged(n.to_string())));
            removed.extend(
                entry
                    .digests
                    .iter()
                    .map(|d| Removed::Untagged(d.familiar.clone())),
            );
            removed.push(Removed::Deleted(id));
            deleted.push((entry, false));
        }
        if deleted.is_empty() {
            return Ok((removed, 0));
        }
        self.save_index(&state)?;
        let reclaimed = self.collect_garbage(&state, &deleted)?;
        Ok((removed, reclaimed))
    }

    /// Deletes the blobs and snapshots of `deleted` images that no image in `state`
    /// references; returns the bytes freed. Caller holds the GC lock.
    fn collect_garbage(&self, state: &State, deleted: &[(Entry, bool)]) -> Result<u64> {
        let live_blobs: HashSet<String> = state
            .images
            .values()
            .flat_map(|e| e.blob_digests().collect::<Vec<_>>())
            .collect();
        let live_chains: HashSet<String> = state
            .images
            .values()
            .flat_map(|e| snapshot::chain_ids(e.config.rootfs().diff_ids()))
            .collect();
        let mut freed = 0;
        for (entry, keep_snapshots) in deleted {
            for digest in entry.blob_digests() {
                if live_blobs.contains(&digest) {
                    continue;
                }
                let path = self.blob_path(&digest)?;
                if let Ok(meta) = fs::symlink_metadata(&path) {
                    fs::remove_file(&path).ctx(|| format!("delete blob {digest}"))?;
                    freed += meta.len();
                }
            }
            if *keep_snapshots {
                continue;
            }
            for chain in snapshot::chain_ids(entry.config.rootfs().diff_ids()) {
                if !live_chains.contains(&chain) {
                    snapshot::remove(self, &chain)?;
                }
            }
        }
        Ok(freed)
    }
}

fn find_by_prefix(state: &State, hex: &str, original: &str) -> Result<Option<String>> {
    if hex.is_empty()
        || hex.len() > 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Ok(None);
    }
    let mut matches = state
        .images
        .keys()
        .filter(|id| id["sha256:".len()..].starts_with(hex));
    match (matches.next(), matches.next()) {
        (Some(id), None) => Ok(Some(id.clone())),
        (Some(_), Some(_)) => Err(ImageError::Ambiguous(original.to_string())),
        _ => Ok(None),
    }
}

/// Gives `name` to image `id`, taking it from whichever image had it.
fn move_name(state: &mut State, id: &str, name: Reference) {
    for entry in state.images.values_mut() {
        entry.names.remove(&name);
    }
    if let Some(entry) = state.images.get_mut(id) {
        entry.names.insert(name);
    }
}

/// The annotations naming an image in an OCI index.
pub(crate) fn name_annotations(name: &Reference) -> HashMap<String, String> {
    HashMap::from([
        (ANNOTATION_IMAGE_NAME.to_string(), name.full()),
        (ANNOTATION_REF_NAME.to_string(), name.tag().to_string()),
    ])
}

/// The hex part of a `sha256:<64 hex>` digest, if it is one.
pub(crate) fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

pub(crate) fn oci_digest(digest: &str) -> oci_spec::image::Digest {
    digest
        .parse()
        .expect("digests in the store are valid sha256 digests")
}

/// Writes `path` by writing a temp file under `<root>/tmp` and renaming it into place.
pub(crate) fn write_atomic(root: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = root
        .join("tmp")
        .join(format!("write-{}", skiff_core::ids::random_id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.ctx(|| format!("write {}", path.display()))
}

fn clear_dir(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).ctx(|| format!("read {}", dir.display()))? {
        let path = entry.ctx(|| format!("read {}", dir.display()))?.path();
        let result = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        result.ctx(|| format!("remove {}", path.display()))?;
    }
    Ok(())
}

/// A directory removed (recursively) on drop; rename it away to keep its content.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.0.exists() {
            if let Err(e) = fs::remove_dir_all(&self.0) {
                tracing::warn!(path = %self.0.display(), error = %e, "cannot remove temporary directory");
            }
        }
    }
}

/// A writer that hashes what passes through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// `sha256:<hex>` of everything written so far.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
