//! Reading archives into the store.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::PathBuf;

use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageManifest, ImageManifestBuilder, MediaType,
};

use super::DockerManifestItem;
use crate::error::{ImageError, IoContext, Result};
use crate::reference::Reference;
use crate::store::{
    digest_hex, oci_digest, HashingWriter, Store, TempDir, ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
};
use crate::unpack::decompress;

/// A regular file of the archive, copied into the staging dir.
struct StagedFile {
    path: PathBuf,
    digest: String,
    size: u64,
}

/// The staged archive: files by archive path, plus links between archive paths.
struct Staged {
    _dir: TempDir,
    files: HashMap<String, StagedFile>,
    links: HashMap<String, String>,
}

impl Staged {
    fn get(&self, path: &str) -> Result<&StagedFile> {
        let mut path = normalize(path).ok_or_else(|| {
            ImageError::invalid(format!("archive path {path:?} escapes the archive"))
        })?;
        for _ in 0..16 {
            if let Some(f) = self.files.get(&path) {
                return Ok(f);
            }
            match self.links.get(&path) {
                Some(target) => path = target.clone(),
                None => break,
            }
        }
        Err(ImageError::invalid(format!("archive has no file {path:?}")))
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let f = self.get(path)?;
        fs::read(&f.path).ctx(|| format!("read staged {path}"))
    }

    fn contains(&self, path: &str) -> bool {
        self.files.contains_key(path) || self.links.contains_key(path)
    }

    /// The staged blob `digest`, checked against its content.
    fn blob(&self, digest: &str) -> Result<&StagedFile> {
        let hex = digest_hex(digest)
            .ok_or_else(|| ImageError::invalid(format!("unsupported digest {digest:?}")))?;
        let f = self.get(&format!("blobs/sha256/{hex}"))?;
        if f.digest != digest {
            return Err(ImageError::invalid(format!(
                "blob {digest} in the archive has digest {}",
                f.digest
            )));
        }
        Ok(f)
    }
}

/// Lexically normalises an archive path; `None` if it climbs above the archive root.
fn normalize(path: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

fn stage(store: &Store, archive: impl Read) -> Result<Staged> {
    let dir = store.temp_dir("load")?;
    let mut files = HashMap::new();
    let mut links = HashMap::new();
    let mut tar = tar::Archive::new(decompress(archive)?);
    let bad = |e: io::Error| ImageError::invalid(format!("invalid image archive: {e}"));
    for (n, entry) in tar.entries().map_err(bad)?.enumerate() {
        let mut entry = entry.map_err(bad)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = normalize(&raw).ok_or_else(|| {
            ImageError::invalid(format!("archive entry {raw:?} escapes the archive"))
        })?;
        let link = || -> Result<String> {
            let target = entry.link_name_bytes().ok_or_else(|| {
                ImageError::invalid(format!("archive link {raw:?} has no target"))
            })?;
            Ok(String::from_utf8_lossy(&target).into_owned())
        };
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let staged = dir.path().join(n.to_string());
                let mut file =
                    File::create(&staged).ctx(|| format!("create {}", staged.display()))?;
                let mut hashing = HashingWriter::new(&mut file);
                let size = io::copy(&mut entry, &mut hashing).map_err(bad)?;
                let digest = hashing.digest();
                files.insert(
                    path,
                    StagedFile {
                        path: staged,
                        digest,
                        size,
                    },
                );
            }
            tar::EntryType::Symlink => {
                let target = link()?;
                let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
                let joined = if target.starts_with('/') {
                    target.clone()
                } else {
                    format!("{parent}/{target}")
                };
                let resolved = normalize(&joined).ok_or_else(|| {
                    ImageError::invalid(format!("archive symlink {raw:?} escapes the archive"))
                })?;
                links.insert(path, resolved);
            }
            tar::EntryType::Link => {
                let target = link()?;
                let resolved = normalize(&target).ok_or_else(|| {
                    ImageError::invalid(format!("archive hard link {raw:?} escapes the archive"))
                })?;
                links.insert(path, resolved);
            }
            _ => {}
        }
    }
    Ok(Staged {
        _dir: dir,
        files,
        links,
    })
}

pub(crate) fn load(store: &Store, archive: impl Read) -> Result<Vec<String>> {
    let _ingest = store.ingest_guard();
    let staged = stage(store, archive)?;
    if staged.contains("manifest.json") {
        load_docker(store, &staged)
    } else if staged.contains("index.json") {
        load_oci(store, &staged)
    } else {
        Err(ImageError::invalid(
            "invalid image archive: it has neither manifest.json nor index.json",
        ))
    }
}

fn load_docker(store: &Store, staged: &Staged) -> Result<Vec<String>> {
    let items: Vec<DockerManifestItem> = serde_json::from_slice(&staged.read("manifest.json")?)
        .map_err(|e| ImageError::invalid(format!("invalid manifest.json: {e}")))?;
    let mut loaded = Vec::new();
    for item in items {
        let config_bytes = staged.read(&item.config)?;
        let config = parse_config(&config_bytes)?;
        let config_digest = skiff_core::ids::sha256_digest(&config_bytes);
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != item.layers.len() {
            return Err(ImageError::invalid(format!(
                "image {config_digest} lists {} layers but its config has {} diff ids",
                item.layers.len(),
                diff_ids.len()
            )));
        }
        let mut files = Vec::new();
        let mut layers = Vec::new();
        for (path, diff_id) in item.layers.iter().zip(diff_ids) {
            let file = staged.get(path)?;
            layers.push(check_layer(file, diff_id, None)?);
            files.push(file);
        }
        for file in files {
            adopt(store, file)?;
        }
        store.write_blob(&config_bytes)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config_bytes.len() as u64,
                oci_digest(&config_digest),
            ))
            .layers(layers)
            .build()
            .map_err(|e| ImageError::invalid(format!("build manifest: {e}")))?;
        let manifest_json = manifest
            .to_string()
            .map_err(|e| ImageError::invalid(format!("encode manifest: {e}")))?;
        let manifest_digest = store.write_blob(manifest_json.as_bytes())?;
        let names = item
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| Reference::parse(t))
            .collect::<Result<Vec<_>>>()?;
        let id = store.commit(&manifest_digest, &names)?;
        report(&mut loaded, id, &names);
    }
    Ok(loaded)
}

fn load_oci(store: &Store, staged: &Staged) -> Result<Vec<String>> {
    let index = ImageIndex::from_reader(
        File::open(&staged.get("index.json")?.path).ctx(|| "open index.json".into())?,
    )
    .map_err(|e| ImageError::invalid(format!("invalid index.json: {e}")))?;
    let mut loaded = Vec::new();
    for desc in index.manifests() {
        let names = descriptor_names(desc)?;
        let manifest_digest = pick_manifest(staged, desc)?;
        let manifest_file = staged.blob(&manifest_digest)?;
        let manifest = ImageManifest::from_file(&manifest_file.path)
            .map_err(|e| ImageError::invalid(format!("invalid manifest {manifest_digest}: {e}")))?;
        let config_digest = manifest.config().digest().to_string();
        let config_bytes =
            fs::read(&staged.blob(&config_digest)?.path).ctx(|| format!("read {config_digest}"))?;
        let config = parse_config(&config_bytes)?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::invalid(format!(
                "manifest {manifest_digest} lists {} layers but its config has {} diff ids",
                manifest.layers().len(),
                diff_ids.len()
            )));
        }
        let mut files = Vec::new();
        for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
            let file = staged.blob(layer.digest().as_ref())?;
            check_layer(file, diff_id, Some(layer.media_type()))?;
            files.push(file);
        }
        for file in files {
            adopt(store, file)?;
        }
        store.write_blob(&config_bytes)?;
        adopt(store, manifest_file)?;
        let id = store.commit(&manifest_digest, &names)?;
        report(&mut loaded, id, &names);
    }
    Ok(loaded)
}

/// What `docker load` prints: each name, or the id of an untagged image.
fn report(loaded: &mut Vec<String>, id: String, names: &[Reference]) {
    if names.is_empty() {
        loaded.push(id);
    } else {
        loaded.extend(names.iter().map(Reference::to_string));
    }
}

fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration> {
    ImageConfiguration::from_reader(bytes)
        .map_err(|e| ImageError::invalid(format!("invalid image config: {e}")))
}

/// Names of an OCI index entry: `io.containerd.image.name`, else a `ref.name` that is a
/// whole reference (a bare tag such as `latest` names nothing on its own).
fn descriptor_names(desc: &Descriptor) -> Result<Vec<Reference>> {
    let Some(annotations) = desc.annotations() else {
        return Ok(Vec::new());
    };
    if let Some(name) = annotations.get(ANNOTATION_IMAGE_NAME) {
        return Ok(vec![Reference::parse(name)?]);
    }
    match annotations.get(ANNOTATION_REF_NAME) {
        Some(name) if name.contains(':') || name.contains('/') => Ok(vec![Reference::parse(name)?]),
        _ => Ok(Vec::new()),
    }
}

/// The manifest an index entry designates: itself, or for a nested index the entry for
/// this host's platform (else the first one).
fn pick_manifest(staged: &Staged, desc: &Descriptor) -> Result<String> {
    let digest = desc.digest().to_string();
    let is_index = matches!(desc.media_type(), MediaType::ImageIndex)
        || desc.media_type().to_string()
            == "application/vnd.docker.distribution.manifest.list.v2+json";
    if !is_index {
        return Ok(digest);
    }
    let nested = ImageIndex::from_file(&staged.blob(&digest)?.path)
        .map_err(|e| ImageError::invalid(format!("invalid index {digest}: {e}")))?;
    let host = oci_spec::image::Arch::default();
    let chosen = nested
        .manifests()
        .iter()
        .filter(|m| staged.blob(m.digest().as_ref()).is_ok())
        .find(|m| {
            m.platform()
                .as_ref()
                .is_none_or(|p| *p.architecture() == host)
        })
        .ok_or_else(|| {
            ImageError::invalid(format!(
                "index {digest} has no manifest for this platform in the archive"
            ))
        })?;
    Ok(chosen.digest().to_string())
}

/// Checks a staged layer against its diff id and returns its descriptor.
fn check_layer(
    file: &StagedFile,
    diff_id: &str,
    media_type: Option<&MediaType>,
) -> Result<Descriptor> {
    let reader = File::open(&file.path).ctx(|| format!("open {}", file.path.display()))?;
    let mut head = [0u8; 2];
    let gzip = File::open(&file.path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == [0x1f, 0x8b];
    let mut hashing = HashingWriter::new(io::sink());
    io::copy(&mut decompress(reader)?, &mut hashing)
        .map_err(|e| ImageError::invalid(format!("invalid layer {}: {e}", file.digest)))?;
    if hashing.digest() != diff_id {
        return Err(ImageError::invalid(format!(
            "layer {} has content digest {} but the image config says {diff_id}",
            file.digest,
            hashing.digest()
        )));
    }
    let media_type = match media_type {
        Some(m) => m.clone(),
        None if gzip => MediaType::ImageLayerGzip,
        None => MediaType::ImageLayer,
    };
    Ok(Descriptor::new(
        media_type,
        file.size,
        oci_digest(&file.digest),
    ))
}

/// Moves a staged file into the blob store unless the blob is there already (a file
/// may be adopted twice when images share it: the second time it is gone from staging).
fn adopt(store: &Store, file: &StagedFile) -> Result<()> {
    if store.has_blob(&file.digest) {
        return Ok(());
    }
    store.adopt_file(&file.path, &file.digest)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn archive_paths_cannot_climb_out() {
        assert_eq!(normalize("./a/../b//c").as_deref(), Some("b/c"));
        assert_eq!(normalize("/abs/x").as_deref(), Some("abs/x"));
        assert_eq!(normalize("a/../../etc"), None);
    }
}
