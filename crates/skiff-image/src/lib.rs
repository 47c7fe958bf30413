//! The engine's local image store: an OCI-layout content store (`blobs/sha256/…` plus an
//! `index.json` of names → manifests), `docker load`/`save`/`import`, tag/rmi/prune, safe
//! layer unpacking into per-chain-id snapshots and overlayfs mounting of those snapshots, and
//! the one confined tar extractor and writer ([`confined`]) that everything writing into or
//! reading from a tree someone else controls (layers, `docker cp`, build contexts) goes through.
//!
//! It owns everything under the root directory it is opened on (`<engine-root>/image`) and
//! nothing else: it does not know about containers (callers pass an `in_use` predicate), and
//! it does not build images. [`registry`] pulls images from and pushes them to registries
//! (through `oci-client`) into and out of this same store.

mod archive;
mod commit;
pub mod confined;
mod docker_config;
mod error;
mod import;
pub mod overlay;
mod reference;
pub mod registry;
mod scratch;
mod sizes;
mod snapshot;
mod store;
pub mod testutil;
pub mod unpack;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use commit::Commit;
pub use docker_config::{DockerConfig, HealthConfig};
pub use error::{ImageError, Result};
pub use reference::{ImageRef, Reference};

/// One item of `docker rmi`/`docker image prune` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A name was removed (`Untagged: busybox:latest`).
    Untagged(String),
    /// An image was deleted (`Deleted: sha256:…`).
    Deleted(String),
}

/// A container that uses an image, as `docker rmi` names it in a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUser {
    /// The container's id (its short form is shown).
    pub container: String,
    pub running: bool,
}

/// An image as `docker image inspect` needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `sha256:<digest of the config blob>`.
    pub id: String,
    /// Familiar names, e.g. `busybox:latest`, `localhost:5000/x/y:1`.
    pub repo_tags: Vec<String>,
    /// `name@sha256:…` of pulled manifests (empty for loaded or imported images).
    pub repo_digests: Vec<String>,
    pub config: oci_spec::image::ImageConfiguration,
    /// Docker's fields of the same config that OCI's type lacks (`Healthcheck`, `Shell`,
    /// `OnBuild`, …).
    pub docker: DockerConfig,
    /// `sha256:…` of the manifest blob in the content store.
    pub manifest_digest: String,
    /// Bytes of its layers unpacked (files and symlink targets), as dockerd sizes images, from
    /// [`ImageStore::list`] and [`ImageStore::get_sized`]; elsewhere the layer blobs' sum.
    pub size: u64,
    /// The config's `created` timestamp (RFC 3339).
    pub created: Option<String>,
    /// The layers' uncompressed digests, bottom-most first.
    pub diff_ids: Vec<String>,
}

/// The image store rooted at one directory. Send + Sync; all methods may be called
/// concurrently.
pub struct ImageStore {
    inner: Arc<store::Store>,
}

impl ImageStore {
    /// Opens (creating if needed) the store under `root`.
    pub fn open(root: &Path) -> Result<ImageStore> {
        Ok(ImageStore {
            inner: Arc::new(store::Store::open(root)?),
        })
    }

    /// `docker load`: a docker-archive (`manifest.json`, also the docker 25+ variant with an
    /// OCI layout inside) or an OCI image-layout archive (`index.json`; names from the
    /// `io.containerd.image.name` or `org.opencontainers.image.ref.name` annotations).
    /// Layers may be plain tar or gzip. Returns the loaded names (`busybox:latest`), or the
    /// id for untagged images.
    pub fn load(&self, archive: impl Read) -> Result<Vec<String>> {
        archive::load(&self.inner, archive)
    }

    /// `docker save`: writes a docker-archive that both `docker load` and [`ImageStore::load`]
    /// accept (`manifest.json` + `repositories` + `index.json`/`oci-layout`).
    pub fn save(&self, names: &[String], out: impl Write) -> Result<()> {
        archive::save(&self.inner, names, out)
    }

    /// `docker import`: a rootfs tarball (plain or gzip) becomes a one-layer image. `changes`
    /// are Dockerfile lines (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, STOPSIGNAL,
    /// VOLUME). Returns the image id.
    pub fn import(
        &self,
        rootfs_tar: impl Read,
        reference: Option<&str>,
        changes: &[String],
        message: Option<&str>,
    ) -> Result<String> {
        import::import(&self.inner, rootfs_tar, reference, changes, message)
    }

    /// `docker commit`: a new image of the parent's layers plus one made of the container's
    /// upper directory (none when it is empty), with the request's config and a history
    /// entry. Returns the image id.
    pub fn commit(&self, request: &Commit) -> Result<String> {
        commit::commit(&self.inner, request)
    }

    /// The empty image `FROM scratch` builds on (no layers, no history; always the same id).
    pub fn scratch(&self) -> Result<String> {
        scratch::scratch(&self.inner)
    }

    /// All images, newest first.
    pub fn list(&self) -> Result<Vec<Image>> {
        self.inner.list()
    }

    /// [`ImageStore::list`] without the unpacked sizes (`size` is the blobs' sum), unsorted:
    /// for callers that select images rather than show them.
    pub fn list_unsized(&self) -> Vec<Image> {
        self.inner.list_unsized()
    }

    /// How many images the store holds.
    pub fn count(&self) -> usize {
        self.inner.count()
    }

    /// Looks an image up by name, full id, `sha256:`+hex or unique hex-id prefix.
    pub fn get(&self, name_or_id: &str) -> Result<Image> {
        self.inner.get(name_or_id)
    }

    /// [`ImageStore::get`] with the image's unpacked size (counted from a layer's blob once,
    /// if it was never unpacked).
    pub fn get_sized(&self, name_or_id: &str) -> Result<Image> {
        self.inner.get_sized(name_or_id)
    }

    /// The unpacked size of each layer of the image, bottom first (`docker system df`).
    pub fn layer_sizes(&self, name_or_id: &str) -> Result<Vec<u64>> {
        self.inner.layer_sizes_of(name_or_id)
    }

    /// `docker tag`: adds `target` as a name of the image `source` resolves to.
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        self.inner.tag(source, target)
    }

    /// `docker rmi` with moby's rules: a name that is not the image's last one is only
    /// untagged; the last name, or the id, deletes the image (an id whose names span several
    /// repositories needs `force`). `user(image_id)` names a container using the image (a
    /// running one first): a stopped one makes the deletion a Conflict unless `force`, a
    /// running one even with `force` (its last name is then only untagged). Blobs and
    /// snapshots no other image needs are deleted, except the snapshots of an image forced
    /// away while a stopped container uses it.
    pub fn remove(
        &self,
        name_or_id: &str,
        force: bool,
        user: &dyn Fn(&str) -> Option<ImageUser>,
    ) -> Result<Vec<Removed>> {
        self.inner.remove(name_or_id, force, user)
    }

    /// `docker image prune` (dangling images only) or `-a` (all images no container uses).
    /// Returns what was removed and the bytes reclaimed.
    pub fn prune(&self, all: bool, in_use: &dyn Fn(&str) -> bool) -> Result<(Vec<Removed>, u64)> {
        self.inner.prune(all, in_use)
    }

    /// Unpacks each layer once per chain id into `snapshots/<chainid>/fs` and returns the
    /// overlay lower dirs, top-most first. An image without layers gets one empty dir.
    pub fn prepare_rootfs(&self, image_id: &str) -> Result<Vec<PathBuf>> {
        snapshot::prepare_rootfs(&self.inner, image_id)
    }
}

// The engine shares one store between request handlers.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ImageStore>();
};
