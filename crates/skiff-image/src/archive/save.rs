//! Writing docker-archives: `manifest.json` + `repositories` for `docker load` of any
//! version, and `index.json` + `oci-layout` + `blobs/` like docker 25+ writes.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use oci_spec::image::{Descriptor, ImageIndexBuilder, MediaType};

use super::DockerManifestItem;
use crate::error::{ImageError, IoContext, Result};
use crate::reference::Reference;
use crate::store::{digest_hex, name_annotations, oci_digest, Entry, Store};

pub(crate) fn save(store: &Store, names: &[String], out: impl Write) -> Result<()> {
    // Blobs stay put while they are written out.
    let _ingest = store.ingest_guard();
    // Image id → (entry, names asked for); ids keep their first-seen order.
    let mut images: Vec<(String, Entry, Vec<Reference>)> = Vec::new();
    {
        let state = store.lock();
        for name in names {
            let (id, reference) = store.resolve(&state, name)?;
            let pos = match images.iter().position(|(i, _, _)| *i == id) {
                Some(pos) => pos,
                None => {
                    images.push((id.clone(), state.images[&id].clone(), Vec::new()));
                    images.len() - 1
                }
            };
            if let Some(r) = reference.filter(|r| !images[pos].2.contains(r)) {
                images[pos].2.push(r);
            }
        }
    }

    let mut tar = tar::Builder::new(out);
    let io = |what: &str| {
        let what = what.to_string();
        move || format!("write {what} to the archive")
    };
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        tar.append_data(&mut header, dir, std::io::empty())
            .ctx(io(dir))?;
    }
    let mut written = HashSet::new();
    let mut items = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut index_manifests = Vec::new();
    for (_, entry, refs) in &images {
        for digest in entry.blob_digests() {
            if written.insert(digest.clone()) {
                let path = blob_name(&digest)?;
                tar.append_file(&path, &mut store.open_blob(&digest)?)
                    .ctx(io(&path))?;
            }
        }
        let layers: Vec<String> = entry
            .manifest
            .layers()
            .iter()
            .map(|l| blob_name(l.digest().as_ref()))
            .collect::<Result<_>>()?;
        items.push(DockerManifestItem {
            config: blob_name(entry.manifest.config().digest().as_ref())?,
            repo_tags: (!refs.is_empty()).then(|| refs.iter().map(Reference::to_string).collect()),
            layers,
        });
        if let Some(top) = entry.manifest.layers().last() {
            for r in refs {
                let hex = digest_hex(top.digest().as_ref())
                    .unwrap_or_default()
                    .to_string();
                repositories
                    .entry(r.familiar_repository())
                    .or_default()
                    .insert(r.tag().to_string(), hex);
            }
        }
        let media_type = entry
            .manifest
            .media_type()
            .clone()
            .unwrap_or(MediaType::ImageManifest);
        let size = store
            .open_blob(&entry.manifest_digest)?
            .metadata()
            .ctx(io("manifest"))?
            .len();
        let desc = Descriptor::new(media_type, size, oci_digest(&entry.manifest_digest));
        if refs.is_empty() {
            index_manifests.push(desc.clone());
        }
        for r in refs {
            let mut d = desc.clone();
            d.set_annotations(Some(name_annotations(r)));
            index_manifests.push(d);
        }
    }
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(index_manifests)
        .build()
        .map_err(|e| ImageError::invalid(format!("build index: {e}")))?;
    let files: [(&str, Vec<u8>); 4] = [
        (
            "index.json",
            index
                .to_string()
                .map_err(|e| ImageError::invalid(format!("encode index: {e}")))?
                .into_bytes(),
        ),
        ("manifest.json", to_json(&items)?),
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("repositories", to_json(&repositories)?),
    ];
    for (name, bytes) in files {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, bytes.as_slice())
            .ctx(io(name))?;
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .ctx(io("the end"))?;
    Ok(())
}

fn blob_name(digest: &str) -> Result<String> {
    let hex = digest_hex(digest)
        .ok_or_else(|| ImageError::invalid(format!("unsupported digest {digest:?}")))?;
    Ok(format!("blobs/sha256/{hex}"))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| ImageError::invalid(format!("encode archive metadata: {e}")))
}
