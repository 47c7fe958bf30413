//! Snapshots: each layer unpacked once into `snapshots/<chain-id hex>/fs`, the lower dirs
//! of container overlays. A snapshot is unpacked into a temp dir and renamed into place,
//! under a per-chain lock, so nobody sees a half-unpacked one and no chain is unpacked
//! twice.

use std::fs;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use crate::error::{ImageError, IoContext, Result};
use crate::store::{digest_hex, Store};
use crate::unpack;

/// Chain ids of a layer stack (bottom-most first): `chain[0] = diff[0]`,
/// `chain[n] = sha256(chain[n-1] + " " + diff[n])`.
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chains: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match chains.last() {
            None => diff.clone(),
            Some(parent) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{parent} {diff}")))
            ),
        };
        chains.push(next);
    }
    chains
}

fn snapshot_dir(store: &Store, chain: &str) -> Result<PathBuf> {
    let hex = digest_hex(chain)
        .ok_or_else(|| ImageError::invalid(format!("invalid chain id {chain:?}")))?;
    Ok(store.root().join("snapshots").join(hex))
}

/// Deletes the snapshot of `chain` if there is one.
pub(crate) fn remove(store: &Store, chain: &str) -> Result<()> {
    let dir = snapshot_dir(store, chain)?;
    let lock = store.unpack_lock(chain);
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).ctx(|| format!("remove snapshot {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Whether the snapshot of `chain` is unpacked.
pub(crate) fn exists(store: &Store, chain: &str) -> bool {
    snapshot_dir(store, chain).is_ok_and(|d| d.exists())
}

/// Moves a layer unpacked elsewhere (`staged/fs`, under the store's tmp dir) into place as
/// the snapshot of `chain`, unless that snapshot exists already.
pub(crate) fn install(store: &Store, chain: &str, staged: &std::path::Path) -> Result<()> {
    let dir = snapshot_dir(store, chain)?;
    let lock = store.unpack_lock(chain);
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    if dir.exists() {
        return Ok(());
    }
    fs::rename(staged, &dir).ctx(|| format!("move snapshot into {}", dir.display()))
}

pub(crate) fn prepare_rootfs(store: &Store, image: &str) -> Result<Vec<PathBuf>> {
    let (_, entry) = store.entry(image)?;
    let diff_ids = entry.config.rootfs().diff_ids();
    if diff_ids.is_empty() {
        let empty = store.root().join("snapshots/empty/fs");
        fs::create_dir_all(&empty).ctx(|| format!("create {}", empty.display()))?;
        return Ok(vec![empty]);
    }
    let mut lowers = Vec::with_capacity(diff_ids.len());
    let layers = chain_ids(diff_ids)
        .into_iter()
        .zip(diff_ids)
        .zip(entry.manifest.layers());
    for ((chain, diff_id), layer) in layers {
        let chain = &chain;
        let dir = snapshot_dir(store, chain)?;
        let lock = store.unpack_lock(chain);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        if !dir.exists() {
            let tmp = store.temp_dir("unpack")?;
            let fs_dir = tmp.path().join("fs");
            fs::create_dir(&fs_dir).ctx(|| format!("create {}", fs_dir.display()))?;
            let blob = store.open_blob(layer.digest().as_ref())?;
            let bytes = unpack::unpack_layer(blob, &fs_dir)?;
            crate::sizes::record(store, diff_id, bytes);
            fs::rename(tmp.path(), &dir).ctx(|| format!("move snapshot into {}", dir.display()))?;
            tracing::debug!(chain = %chain, bytes, "unpacked layer");
        }
        lowers.push(dir.join("fs"));
    }
    lowers.reverse();
    Ok(lowers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_formula() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let chains = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chains[0], a);
        let expected = format!("sha256:{}", hex::encode(Sha256::digest(format!("{a} {b}"))));
        assert_eq!(chains[1], expected);
    }
}
