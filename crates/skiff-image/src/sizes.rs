//! What each layer holds unpacked: the bytes of its regular files and symlink targets, which
//! is how dockerd sizes a layer (its snapshot's content, as `du -b` counts it) and so an image (`docker images` SIZE, `Size` in inspect).
//! Recorded when a layer is unpacked, counted from its blob otherwise (an image loaded but
//! never run is not unpacked), and kept under `<root>/layer-sizes/<diff id hex>` so a count is
//! made once per layer.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::error::{IoContext, Result};
use crate::store::{digest_hex, write_atomic, Entry, Store};

/// The known sizes, by diff id.
#[derive(Default)]
pub(crate) struct LayerSizes(Mutex<HashMap<String, u64>>);

impl LayerSizes {
    fn get(&self, diff_id: &str) -> Option<u64> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(diff_id)
            .copied()
    }

    fn put(&self, diff_id: &str, size: u64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(diff_id.to_string(), size);
    }
}

fn path(store: &Store, diff_id: &str) -> Option<PathBuf> {
    Some(store.root().join("layer-sizes").join(digest_hex(diff_id)?))
}

/// Records the size of a layer just unpacked (best effort: a size not recorded is counted
/// again from the blob when asked for).
pub(crate) fn record(store: &Store, diff_id: &str, size: u64) {
    store.layer_sizes().put(diff_id, size);
    let Some(path) = path(store, diff_id) else {
        return;
    };
    let written = path
        .parent()
        .map_or(Ok(()), |dir| {
            std::fs::create_dir_all(dir).ctx(|| "layer sizes".into())
        })
        .and_then(|()| write_atomic(store.root(), &path, size.to_string().as_bytes()));
    if let Err(e) = written {
        tracing::debug!(diff_id, error = %e, "recording a layer's size");
    }
}

/// The unpacked size of one layer of `entry`: known, recorded, or counted from its blob.
fn layer(store: &Store, diff_id: &str, blob: &str) -> Result<u64> {
    if let Some(n) = store.layer_sizes().get(diff_id) {
        return Ok(n);
    }
    let recorded = path(store, diff_id)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| s.trim().parse().ok());
    if let Some(n) = recorded {
        store.layer_sizes().put(diff_id, n);
        return Ok(n);
    }
    match store.open_blob(blob).and_then(content_size) {
        Ok(n) => {
            record(store, diff_id, n);
            Ok(n)
        }
        Err(e) => {
            // A layer this store cannot read through is shown at its blob's size, once warned.
            let n = std::fs::metadata(store.blob_path(blob)?).map_or(0, |m| m.len());
            tracing::warn!(diff_id, error = %e, "counting a layer's content; its blob's size stands in");
            store.layer_sizes().put(diff_id, n);
            Ok(n)
        }
    }
}

/// The unpacked size of each layer of `entry`, bottom first.
pub(crate) fn layers(store: &Store, entry: &Entry) -> Result<Vec<u64>> {
    entry
        .config
        .rootfs()
        .diff_ids()
        .iter()
        .zip(entry.manifest.layers())
        .map(|(diff_id, blob)| layer(store, diff_id, blob.digest().as_ref()))
        .collect()
}

/// Bytes a layer tarball (plain or gzip) holds as [`crate::unpack::unpack_layer`] counts
/// them: regular files' content and symlinks' targets; hard links count once.
pub(crate) fn content_size(layer: impl Read) -> Result<u64> {
    let mut archive = tar::Archive::new(crate::unpack::decompress(layer)?);
    let mut total = 0u64;
    for entry in archive.entries().ctx(|| "read layer".into())? {
        let entry = entry.ctx(|| "read layer".into())?;
        let header = entry.header();
        let kind = header.entry_type();
        if kind.is_file() {
            total += header.size().ctx(|| "read layer".into())?;
        } else if kind.is_symlink() {
            total += entry.link_name_bytes().map_or(0, |t| t.len() as u64);
        }
    }
    Ok(total)
}
