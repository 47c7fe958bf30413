//! `docker pull`: manifest (or index → the platform's manifest), config and layers into
//! the content store.
//!
//! Nothing is used before it is verified and nothing reaches the store before everything
//! is: blobs are downloaded into a private staging dir under the store's `tmp`, each checked
//! against its descriptor's digest and size; every new layer is unpacked there by the safe
//! unpacker while its uncompressed digest is checked against the config's diff id. Only
//! then, under the store's ingest guard, are blobs adopted, the manifest indexed and the
//! unpacked snapshots moved into place. Any failure drops the staging dir.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use oci_client::manifest::OciDescriptor;
use oci_client::Client;
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::config::{Endpoint, Resolved};
use super::error::{RegistryError, Result};
use super::media::{self, ManifestKind};
use super::progress::{short, Progress, ProgressSink};
use super::{oci_client_for, oci_ref, Credentials, Platform};
use crate::reference::ImageRef;
use crate::store::{RepoDigest, Store, TempDir};
use crate::{snapshot, ImageError};

/// What to pull with.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    pub credentials: Credentials,
    /// `--platform`; the host's when `None`.
    pub platform: Option<Platform>,
}

/// A finished pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// `sha256:` + config digest.
    pub image_id: String,
    /// The digest the reference resolved to (the index's, for multi-platform images).
    pub digest: String,
    /// Whether the image was new to the store.
    pub downloaded: bool,
}

pub(crate) async fn pull(
    store: &Arc<Store>,
    resolved: &Resolved,
    r: &ImageRef,
    opts: &PullOptions,
    progress: ProgressSink<'_>,
) -> Result<Pulled> {
    let endpoints = resolved.endpoints(r.domain());
    let mut failure = None;
    for endpoint in &endpoints {
        match pull_from(store, resolved, endpoint, r, opts, progress).await {
            Ok(pulled) => return Ok(pulled),
            Err(error) if endpoint.mirror => {
                tracing::warn!(mirror = %endpoint.host, %error, "mirror failed; trying the next");
                failure = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(failure.unwrap_or_else(|| RegistryError::Invalid(format!("no endpoint for {r}"))))
}

/// A layer to fetch and where it goes.
struct Layer {
    desc: Descriptor,
    diff_id: String,
    /// Staged blob file, when it had to be downloaded.
    staged: Option<PathBuf>,
}

async fn pull_from(
    store: &Arc<Store>,
    resolved: &Resolved,
    endpoint: &Endpoint,
    r: &ImageRef,
    opts: &PullOptions,
    progress: ProgressSink<'_>,
) -> Result<Pulled> {
    let limits = &resolved.config;
    let auth = opts.credentials.to_auth()?;
    let client = oci_client_for(endpoint, limits.max_concurrent_downloads)?;
    let oref = oci_ref(r, endpoint);
    let shown = r.to_string();
    let repository = r.familiar_repository();
    let manifest_error = |e| RegistryError::manifest(&shown, &repository, e);
    let (body, _) = client
        .pull_manifest_raw(&oref, &auth, media::MANIFEST_TYPES)
        .await
        .map_err(manifest_error)?;
    let top_digest = check_manifest(&body, r.digest(), limits.max_manifest_size)?;
    // After the manifest, as dockerd: a pull that fails before its first message is
    // answered as an HTTP error rather than inside the progress stream.
    progress(Progress {
        id: Some(short_or_tag(r)),
        ..Progress::status(format!("Pulling from {}", r.path()))
    });
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);

    let (manifest_bytes, manifest_digest) = match media::manifest_kind(&body)? {
        ManifestKind::Manifest => (body, top_digest.clone()),
        ManifestKind::Index => {
            let index = ImageIndex::from_reader(&body[..]).map_err(|e| {
                RegistryError::BadContent(format!("invalid manifest list {top_digest}: {e}"))
            })?;
            let chosen = platform.choose(index.manifests()).ok_or_else(|| {
                RegistryError::NotFound(format!(
                    "no matching manifest for {platform} in the manifest list entries"
                ))
            })?;
            let digest = chosen.digest().to_string();
            let (bytes, _) = client
                .pull_manifest_raw(
                    &oref.clone_with_digest(digest.clone()),
                    &auth,
                    media::MANIFEST_TYPES,
                )
                .await
                .map_err(manifest_error)?;
            check_manifest(&bytes, Some(&digest), limits.max_manifest_size)?;
            if media::manifest_kind(&bytes)? != ManifestKind::Manifest {
                return Err(RegistryError::BadContent(format!(
                    "manifest list entry {digest} is not an image manifest"
                )));
            }
            (bytes, digest)
        }
    };
    let manifest = ImageManifest::from_reader(&manifest_bytes[..]).map_err(|e| {
        RegistryError::BadContent(format!("invalid manifest {manifest_digest}: {e}"))
    })?;
    media::check_config_type(manifest.config())?;
    for layer in manifest.layers() {
        media::layer_compression(layer)?;
    }

    // The config: small, fetched whole, verified, checked against the manifest.
    let config_desc = manifest.config();
    let config_digest = config_desc.digest().to_string();
    let config_bytes = if store.has_blob(&config_digest) {
        std::fs::read(store.blob_path(&config_digest)?).map_err(|e| {
            RegistryError::Store(ImageError::Io {
                context: format!("read blob {config_digest}"),
                source: e,
            })
        })?
    } else {
        if config_desc.size() > limits.max_config_size {
            return Err(RegistryError::BadContent(format!(
                "image config {config_digest} is {} bytes, over the {} byte limit",
                config_desc.size(),
                limits.max_config_size
            )));
        }
        let mut out = Vec::new();
        client
            .pull_blob(&oref, &oci_descriptor(config_desc), &mut out)
            .await
            .map_err(|e| {
                RegistryError::transport(format!("pull image config {config_digest}"), e)
            })?;
        verify_bytes(&out, config_desc, "image config")?;
        out
    };
    let config = ImageConfiguration::from_reader(&config_bytes[..]).map_err(|e| {
        RegistryError::BadContent(format!("invalid image config {config_digest}: {e}"))
    })?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(RegistryError::BadContent(format!(
            "manifest {manifest_digest} lists {} layers but its config has {} diff ids",
            manifest.layers().len(),
            diff_ids.len()
        )));
    }
    if opts.platform.is_some() && !platform.matches_config(&config) {
        return Err(RegistryError::NotFound(format!(
            "image with reference {r} was found but does not match the specified platform: wanted {platform}, actual: {}/{}",
            config.os(),
            config.architecture()
        )));
    }
    let image_id = config_digest.clone();
    let had_image = store.lock().images.contains_key(&image_id);
    // dockerd's "up to date": the image is here and the name already points at it.
    let up_to_date = had_image
        && r.tagged().is_none_or(|name| {
            store
                .entry(&name.full())
                .is_ok_and(|(id, _)| id == image_id)
        });

    // Layers: those the store has are not downloaded again; the rest concurrently.
    let staging = Arc::new(store.temp_dir("pull")?);
    let mut layers = Vec::new();
    for (i, (desc, diff_id)) in manifest.layers().iter().zip(diff_ids).enumerate() {
        let digest = desc.digest().to_string();
        let id = short(&digest);
        let staged = if store.has_blob(&digest) {
            // dockerd says nothing per layer when the whole image is up to date.
            if !had_image {
                progress(Progress::layer(&id, "Already exists"));
            }
            None
        } else {
            progress(Progress::layer(&id, "Pulling fs layer"));
            Some(staging.path().join(format!("layer-{i}")))
        };
        layers.push(Layer {
            desc: desc.clone(),
            diff_id: diff_id.clone(),
            staged,
        });
    }
    // Owned items: a closure taking references would make this future not provably `Send`
    // (rust-lang/rust#102211), and callers spawn it.
    let downloads = layers
        .iter()
        .filter_map(|l| l.staged.clone().map(|path| (l.desc.clone(), path)))
        .collect::<Vec<_>>();
    for (desc, _) in downloads.iter().skip(limits.max_concurrent_downloads) {
        progress(Progress::layer(&short(desc.digest().as_ref()), "Waiting"));
    }
    let (client, oref) = (&client, &oref);
    futures::stream::iter(downloads)
        .map(
            move |(desc, path)| async move { download(client, oref, &desc, &path, progress).await },
        )
        .buffer_unordered(limits.max_concurrent_downloads.max(1))
        .try_collect::<Vec<()>>()
        .await?;

    // Unpack, check diff ids, then store everything at once (blocking work); its progress
    // comes back over a channel.
    let store2 = Arc::clone(store);
    let staging2 = Arc::clone(&staging);
    let names: Vec<_> = r.tagged().into_iter().collect();
    let repo_digest = RepoDigest::new(r, &top_digest);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let committed = tokio::task::spawn_blocking(move || {
        let sink = move |p: Progress| {
            let _ = tx.send(p);
        };
        finish(
            &store2,
            &staging2,
            &layers,
            &config_bytes,
            &manifest_bytes,
            &names,
            &repo_digest,
            &sink,
        )
    });
    while let Some(p) = rx.recv().await {
        progress(p);
    }
    let image_id_done = committed
        .await
        .map_err(|e| RegistryError::BadContent(format!("pull task failed: {e}")))??;
    debug_assert_eq!(image_id_done, image_id);
    drop(staging);
    progress(Progress::status(format!("Digest: {top_digest}")));
    progress(Progress::status(if up_to_date {
        format!("Status: Image is up to date for {shown}")
    } else {
        format!("Status: Downloaded newer image for {shown}")
    }));
    Ok(Pulled {
        image_id,
        digest: top_digest,
        downloaded: !had_image,
    })
}

fn short_or_tag(r: &ImageRef) -> String {
    match r.digest() {
        Some(d) => d.to_string(),
        None => r.tag().unwrap_or("latest").to_string(),
    }
}

/// Checks a manifest body's size and, when the reference named one, its digest; returns
/// its digest.
fn check_manifest(body: &[u8], expected: Option<&str>, limit: usize) -> Result<String> {
    if body.len() > limit {
        return Err(RegistryError::BadContent(format!(
            "manifest is {} bytes, over the {limit} byte limit",
            body.len()
        )));
    }
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(body)));
    if let Some(expected) = expected {
        if digest != expected {
            return Err(RegistryError::BadContent(format!(
                "manifest verification failed for digest {expected}: the registry sent {digest}"
            )));
        }
    }
    Ok(digest)
}

fn verify_bytes(bytes: &[u8], desc: &Descriptor, what: &str) -> Result<()> {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    if bytes.len() as u64 != desc.size() || digest != desc.digest().as_ref() {
        return Err(RegistryError::BadContent(format!(
            "{what} verification failed for digest {}",
            desc.digest()
        )));
    }
    Ok(())
}

/// The descriptor `oci-client` fetches by. Foreign-layer `urls` are left out: a manifest
/// must not make the daemon fetch from arbitrary hosts (the registry serves every blob).
pub(crate) fn oci_descriptor(desc: &Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: desc.media_type().to_string(),
        digest: desc.digest().to_string(),
        size: desc.size() as i64,
        urls: None,
        ..Default::default()
    }
}

/// Streams one layer blob into `path`, hashing and counting as it goes.
async fn download(
    client: &Client,
    oref: &oci_client::Reference,
    desc: &Descriptor,
    path: &Path,
    progress: ProgressSink<'_>,
) -> Result<()> {
    const EVERY: u64 = 512 * 1024;
    let digest = desc.digest().to_string();
    let total = desc.size();
    let id = short(&digest);
    let mut stream = client
        .pull_blob_stream(oref, &oci_descriptor(desc))
        .await
        .map_err(|e| RegistryError::transport(format!("pull layer {digest}"), e))?;
    let io = |e: std::io::Error| {
        RegistryError::Store(ImageError::Io {
            context: format!("write layer {digest}"),
            source: e,
        })
    };
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut reported = 0u64;
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        received += chunk.len() as u64;
        if received > total {
            return Err(RegistryError::BadContent(format!(
                "layer {digest} is larger than the {total} bytes its descriptor says"
            )));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io)?;
        if received - reported >= EVERY {
            reported = received;
            progress(Progress::bytes(&id, "Downloading", received, total));
        }
    }
    file.flush().await.map_err(io)?;
    if received < total {
        let cause = failure.map(|e| format!(": {e}")).unwrap_or_default();
        return Err(RegistryError::BadContent(format!(
            "layer {digest} is truncated: received {received} of {total} bytes{cause}"
        )));
    }
    progress(Progress::bytes(&id, "Downloading", received, total));
    progress(Progress::layer(&id, "Verifying Checksum"));
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != digest {
        return Err(RegistryError::BadContent(format!(
            "filesystem layer verification failed for digest {digest}"
        )));
    }
    if let Some(e) = failure {
        return Err(RegistryError::BadContent(format!("layer {digest}: {e}")));
    }
    progress(Progress::layer(&id, "Download complete"));
    Ok(())
}

/// Unpacks new layers into staged snapshots (checking diff ids), then stores the blobs,
/// indexes the image and installs the snapshots. Returns the image id.
#[allow(clippy::too_many_arguments)]
fn finish(
    store: &Store,
    staging: &TempDir,
    layers: &[Layer],
    config: &[u8],
    manifest: &[u8],
    names: &[crate::Reference],
    repo_digest: &RepoDigest,
    progress: ProgressSink<'_>,
) -> Result<String> {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let chains = snapshot::chain_ids(&diff_ids);
    let mut snapshots = Vec::new();
    for (i, (layer, chain)) in layers.iter().zip(&chains).enumerate() {
        let Some(blob) = &layer.staged else {
            continue;
        };
        let id = short(layer.desc.digest().as_ref());
        let staged_snapshot = staging.path().join(format!("snapshot-{i}"));
        let fs_dir = staged_snapshot.join("fs");
        std::fs::create_dir_all(&fs_dir).map_err(|e| io_err(&fs_dir, e))?;
        let file = File::open(blob).map_err(|e| io_err(blob, e))?;
        let total = layer.desc.size();
        let counted = CountingReader {
            inner: file,
            read: 0,
            reported: 0,
            report: &|n| progress(Progress::bytes(&id, "Extracting", n, total)),
        };
        let compression = media::layer_compression(&layer.desc)?;
        let mut hashing = HashingReader::new(media::decompress(counted, compression)?);
        let bytes = crate::unpack::unpack_layer(&mut hashing, &fs_dir)?;
        // Trailing bytes after the tar's end-of-archive blocks count towards the diff id.
        std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| {
            RegistryError::BadContent(format!("layer {}: {e}", layer.desc.digest()))
        })?;
        if hashing.digest() != layer.diff_id {
            return Err(RegistryError::BadContent(format!(
                "layer {} has content digest {} but the image config says {}",
                layer.desc.digest(),
                hashing.digest(),
                layer.diff_id
            )));
        }
        crate::sizes::record(store, &layer.diff_id, bytes);
        snapshots.push((chain.clone(), staged_snapshot));
        progress(Progress::layer(&id, "Pull complete"));
    }

    let _ingest = store.ingest_guard();
    for layer in layers {
        if let Some(blob) = &layer.staged {
            let digest = layer.desc.digest().to_string();
            if !store.has_blob(&digest) {
                store.adopt_file(blob, &digest)?;
            }
        }
    }
    store.write_blob(config)?;
    let manifest_digest = store.write_blob(manifest)?;
    let id =
        store.commit_with_digests(&manifest_digest, names, std::slice::from_ref(repo_digest))?;
    for (chain, dir) in snapshots {
        if !snapshot::exists(store, &chain) {
            snapshot::install(store, &chain, &dir)?;
        }
    }
    Ok(id)
}

fn io_err(path: &Path, source: std::io::Error) -> RegistryError {
    RegistryError::Store(ImageError::Io {
        context: format!("staging {}", path.display()),
        source,
    })
}

/// A reader that reports how many bytes passed through it, every 512 KiB and at the end.
struct CountingReader<'a, R> {
    inner: R,
    read: u64,
    reported: u64,
    report: &'a (dyn Fn(u64) + Send + Sync),
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if (n == 0 && self.read != self.reported) || self.read - self.reported >= 512 * 1024 {
            self.reported = self.read;
            (self.report)(self.read);
        }
        Ok(n)
    }
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_over_the_limit_or_with_another_digest_are_refused() {
        let body = br#"{"schemaVersion":2}"#;
        let digest = check_manifest(body, None, 1024).unwrap();
        assert_eq!(check_manifest(body, Some(&digest), 1024).unwrap(), digest);
        let other = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(
            check_manifest(body, Some(&other), 1024),
            Err(RegistryError::BadContent(m)) if m.contains("verification failed")
        ));
        assert!(matches!(
            check_manifest(body, None, 4),
            Err(RegistryError::BadContent(m)) if m.contains("over the 4 byte limit")
        ));
    }
}
