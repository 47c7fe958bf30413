//! skiff-net's state files: one JSON file per network, sandbox and endpoint, each replaced
//! atomically (write a temporary file, rename), so a `kill -9` at any point leaves either the old
//! or the new version. Networks outlive a reboot and are also fsynced (file and directory);
//! sandbox, endpoint and address state lives as long as the kernel objects it describes — a
//! reboot ends those too — so it is kept under the run directory without fsync: the page cache
//! survives the death of any process, and an fsync here costs ~8 ms per file on this machine's
//! disk, more than the whole network setup may take.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Context, NetError, Result};

/// Whether a write must survive power loss (fsync) or only the death of processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durable {
    Yes,
    No,
}

/// Writes `bytes` to `path` atomically (and durably when asked).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], durable: Durable) -> Result<()> {
    let dir = path.parent().expect("state files live in a directory");
    std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    let tmp = tmp_path(path);
    let mut f = std::fs::File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| match durable {
            Durable::Yes => f.sync_all(),
            Durable::No => Ok(()),
        })
        .ctx(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("rename {}", tmp.display()))?;
    match durable {
        Durable::Yes => sync_dir(dir),
        Durable::No => Ok(()),
    }
}

/// A temporary name next to `path`, unique to this process and call.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("sync {}", dir.display()))
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T, durable: Durable) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).expect("state serialises");
    write_atomic(path, &bytes, durable)
}

/// Removes a file (and syncs its directory when durable); missing is fine.
pub(crate) fn remove(path: &Path, durable: Durable) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) if durable == Durable::No => Ok(()),
        Ok(()) => sync_dir(path.parent().expect("state files live in a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).ctx(|| format!("remove {}", path.display())),
    }
}

/// Every `*.json` in `dir` (none when it does not exist); temporary files left by a crash are
/// removed on the way.
pub(crate) fn read_all<T: DeserializeOwned>(dir: &Path) -> Result<Vec<T>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(|| format!("read {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.ctx(|| format!("read {}", dir.display()))?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with(".tmp") {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if !name.ends_with(".json") {
            continue;
        }
        let bytes = std::fs::read(&path).ctx(|| format!("read {}", path.display()))?;
        out.push(
            serde_json::from_slice(&bytes).map_err(|source| NetError::State {
                path: path.clone(),
                source,
            })?,
        );
    }
    Ok(out)
}
