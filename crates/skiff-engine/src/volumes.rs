//! Local volumes: `<root>/volumes/<name>/_data` plus a small metadata file. Named volumes are
//! created on first use (`-v name:/path`), anonymous ones get a random 64-hex name and are
//! removed with their container by `rm -v` and `--rm`.
//!
//! The local driver's options (`type`, `device`, `o`: `docker volume create -o`, compose's
//! `driver_opts`, `--mount …,volume-opt=`) make `_data` a mount point, as in moby: mounted
//! when a container using the volume starts, unmounted when the last one stops, and before
//! the volume is removed (so a bound host directory is never emptied).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bollard_stubs::models::{Volume, VolumeCreateRequest, VolumePruneResponse, VolumeScopeEnum};
use serde::{Deserialize, Serialize};

use crate::containers::Container;
use crate::error::{EngineError, IoContext, Result};
use crate::filters::Filters;
use crate::Engine;

const META: &str = "skiff-volume.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    created_at: String,
    labels: HashMap<String, String>,
    options: HashMap<String, String>,
    anonymous: bool,
}

/// The containers holding a volume's own filesystem mounted (moby's reference count); its
/// lock is held while the filesystem is mounted, unmounted or the volume removed.
type Holders = Arc<Mutex<HashSet<String>>>;

/// The volumes directory of an engine root.
pub(crate) struct Volumes {
    dir: PathBuf,
    /// Per volume whose options name a filesystem: who holds it mounted.
    holders: Mutex<HashMap<String, Holders>>,
}

impl Volumes {
    pub(crate) fn new(root: &Path) -> Volumes {
        Volumes {
            dir: root.join("volumes"),
            holders: Mutex::new(HashMap::new()),
        }
    }

    fn holders(&self, name: &str) -> Holders {
        lock(&self.holders)
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Counts `holder` (a container id) as using the volume, mounting its filesystem for the
    /// first holder. Blocking (a network filesystem may take long): not on an async worker.
    fn acquire(&self, name: &str, holder: &str) -> Result<()> {
        let holders = self.holders(name);
        let mut held = lock(&holders);
        if held.is_empty() {
            self.mount(name)?;
        }
        held.insert(holder.to_string());
        Ok(())
    }

    /// `holder` no longer uses the volume; the last one out unmounts its filesystem.
    fn release(&self, name: &str, holder: &str) {
        let holders = self.holders(name);
        let mut held = lock(&holders);
        if held.remove(holder) && held.is_empty() {
            if let Err(e) = self.unmount(name) {
                tracing::warn!(volume = %name, error = %e, "unmounting a volume");
            }
        }
    }

    pub(crate) fn data_path(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    /// Mounts the volume's filesystem on its `_data` if its options name one and it is not
    /// mounted yet. The caller holds the volume's holders.
    fn mount(&self, name: &str) -> Result<()> {
        let opts = self.meta(name)?.options;
        let data = self.data_path(name);
        if !needs_mount(&opts) || crate::containers::rootfs::is_mounted(&data) {
            return Ok(());
        }
        let device = opts.get("device").map(String::as_str).unwrap_or("");
        let fstype = opts.get("type").map(String::as_str).unwrap_or("");
        let o = opts.get("o").map(String::as_str).unwrap_or("");
        if device.is_empty() {
            return Err(mount_error(&data, "missing device in volume options"));
        }
        let o = match fstype {
            "nfs" | "cifs" => resolve_addr(o).map_err(|e| {
                mount_error(
                    &data,
                    &format!("error resolving passed in network volume address: {e}"),
                )
            })?,
            _ => o.to_string(),
        };
        skiff_runtime::mount::mount(device, &data, fstype, &o)
            .map_err(|e| mount_error(&data, &format!("failed to mount local volume: {e}")))?;
        tracing::debug!(volume = name, "volume mounted");
        Ok(())
    }

    /// Unmounts what [`Volumes::mount`] mounted (idempotent). The caller holds the volume's
    /// holders.
    fn unmount(&self, name: &str) -> Result<()> {
        let data = self.data_path(name);
        if !crate::containers::rootfs::is_mounted(&data) {
            return Ok(());
        }
        nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH)
            .map_err(std::io::Error::from)
            .ctx(|| format!("unmount {}", data.display()))?;
        tracing::debug!(volume = name, "volume unmounted");
        Ok(())
    }

    /// Whether the volume's options make its data a mount of its own.
    fn has_mount(&self, name: &str) -> bool {
        self.meta(name).is_ok_and(|m| needs_mount(&m.options))
    }

    fn meta(&self, name: &str) -> Result<Meta> {
        let bytes = std::fs::read(self.dir.join(name).join(META))
            .map_err(|_| EngineError::NoSuchVolume(name.to_string()))?;
        Ok(serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn exists(&self, name: &str) -> bool {
        self.dir.join(name).join(META).exists()
    }

    /// Creates the volume if needed; returns whether it was created now.
    pub(crate) fn ensure(
        &self,
        name: &str,
        anonymous: bool,
        labels: HashMap<String, String>,
        options: HashMap<String, String>,
    ) -> Result<bool> {
        if self.exists(name) {
            return Ok(false);
        }
        let data = self.data_path(name);
        std::fs::create_dir_all(&data).ctx(|| format!("create {}", data.display()))?;
        let meta = Meta {
            created_at: chrono::Utc::now().to_rfc3339(),
            labels,
            options,
            anonymous,
        };
        let path = self.dir.join(name).join(META);
        std::fs::write(&path, serde_json::to_vec(&meta).unwrap_or_default())
            .ctx(|| format!("write {}", path.display()))?;
        Ok(true)
    }

    /// Removes the volume; its own filesystem is unmounted first, and a `_data` still mounted
    /// is never descended into.
    pub(crate) fn remove(&self, name: &str) -> Result<()> {
        let holders = self.holders(name);
        let held = lock(&holders);
        if !held.is_empty() {
            return Err(EngineError::System(format!(
                "remove {name}: volume has active mounts"
            )));
        }
        self.unmount(name)?;
        let path = self.dir.join(name);
        // Fails closed: a `_data` whose mount state cannot be read is not descended into.
        if !matches!(mount_state(&self.data_path(name)), Ok(false)) {
            return Err(EngineError::System(format!(
                "remove {name}: its data is still mounted"
            )));
        }
        match std::fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).ctx(|| format!("remove {}", path.display()))
            }
            _ => Ok(()),
        }?;
        drop(held);
        lock(&self.holders).remove(name);
        Ok(())
    }

    fn inspect(&self, name: &str) -> Result<(Volume, bool)> {
        let meta = self.meta(name)?;
        let volume = Volume {
            name: name.to_string(),
            driver: "local".to_string(),
            mountpoint: self.data_path(name).to_string_lossy().into_owned(),
            created_at: Some(meta.created_at),
            labels: meta.labels,
            scope: Some(VolumeScopeEnum::LOCAL),
            options: meta.options,
            ..Default::default()
        };
        Ok((volume, meta.anonymous))
    }

    fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        out.retain(|n| self.exists(n));
        out.sort();
        out
    }
}

/// The names of the container's volumes whose data is a mount of its own.
fn mounted_volumes(engine: &Engine, c: &Container) -> Vec<String> {
    c.rec()
        .mounts
        .into_iter()
        .filter(|m| m.kind == "volume" && engine.volumes.has_mount(&m.name))
        .map(|m| m.name)
        .collect()
}

impl Engine {
    /// Mounts the filesystems of the container's volumes that have one, at its start (or its
    /// prepared start), counting the container as a holder of each.
    pub(crate) async fn mount_volumes(&self, c: &Container) -> Result<()> {
        let names = mounted_volumes(self, c);
        if names.is_empty() {
            return Ok(());
        }
        let Some(engine) = self.arc() else {
            return names
                .iter()
                .try_for_each(|n| self.volumes.acquire(n, &c.id));
        };
        let id = c.id.clone();
        tokio::task::spawn_blocking(move || {
            names
                .iter()
                .try_for_each(|n| engine.volumes.acquire(n, &id))
        })
        .await
        .map_err(std::io::Error::other)
        .ctx(|| "mount volumes".into())?
    }

    /// The container no longer uses its volumes (it stopped, or its start failed or was
    /// discarded): a filesystem no other container holds is unmounted. Idempotent.
    pub(crate) fn release_volumes(&self, c: &Container) {
        for name in mounted_volumes(self, c) {
            self.volumes.release(&name, &c.id);
        }
    }

    /// At engine start, before containers are followed again: the containers still running
    /// hold their volumes (mounted since before the restart); a volume's filesystem nothing
    /// holds any more (its users exited while the engine was down) is unmounted.
    pub(crate) fn restore_volume_holders(&self) {
        let mut holders: HashMap<String, HashSet<String>> = HashMap::new();
        for c in self.all_containers() {
            if c.rec().state.status.is_alive() {
                for name in mounted_volumes(self, &c) {
                    holders.entry(name).or_default().insert(c.id.clone());
                }
            }
        }
        for name in self.volumes.names() {
            match holders.remove(&name) {
                Some(ids) => {
                    *lock(&self.volumes.holders(&name)) = ids;
                }
                None if self.volumes.has_mount(&name) => {
                    if let Err(e) = self.volumes.unmount(&name) {
                        tracing::warn!(volume = %name, error = %e, "unmounting an unused volume");
                    }
                }
                None => {}
            }
        }
    }

    pub(crate) fn volumes_in_use(&self) -> Vec<String> {
        self.all_containers()
            .iter()
            .flat_map(|c| {
                c.rec()
                    .mounts
                    .into_iter()
                    .filter(|m| m.kind == "volume")
                    .map(|m| m.name)
            })
            .collect()
    }

    pub(crate) async fn do_volume_list(&self, filters: &Filters) -> Result<Vec<Volume>> {
        filters.validate(&["name", "label", "dangling", "driver"])?;
        let names = crate::containers::query::name_patterns(filters.get("name"))?;
        let dangling_filter = filters
            .get("dangling")
            .first()
            .map(|_| filters.bool_or("dangling", false))
            .transpose()?;
        let used = self.volumes_in_use();
        let mut out = Vec::new();
        for name in self.volumes.names() {
            let Ok((v, _)) = self.volumes.inspect(&name) else {
                continue;
            };
            let dangling = !used.contains(&name);
            if (names.is_empty() || names.iter().any(|n| n.is_match(&name)))
                && filters.labels_match("label", &v.labels)
                && dangling_filter.is_none_or(|d| d == dangling)
                && filters.any("driver", |d| d == "local")
            {
                out.push(v);
            }
        }
        Ok(out)
    }

    pub(crate) async fn do_volume_create(&self, body: VolumeCreateRequest) -> Result<Volume> {
        let name = body
            .name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(skiff_core::ids::random_id);
        if !skiff_core::ids::valid_container_name(&name) {
            return Err(EngineError::invalid(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            )));
        }
        check_driver(body.driver.as_deref())?;
        let options = body.driver_opts.unwrap_or_default();
        validate_options(&options)?;
        if self
            .volumes
            .ensure(&name, false, body.labels.unwrap_or_default(), options)?
        {
            self.emit_volume("create", &name);
        }
        Ok(self.volumes.inspect(&name)?.0)
    }

    pub(crate) async fn do_volume_inspect(&self, name: &str) -> Result<Volume> {
        Ok(self.volumes.inspect(name)?.0)
    }

    /// `docker volume rm [-f]`. As in moby, `force` only makes a missing volume no error; a
    /// volume some container uses is never removed.
    pub(crate) async fn do_volume_remove(&self, name: &str, force: bool) -> Result<()> {
        match self.volumes.inspect(name) {
            Err(EngineError::NoSuchVolume(_)) if force => return Ok(()),
            other => other?,
        };
        if let Some(c) = self
            .all_containers()
            .iter()
            .find(|c| c.rec().mounts.iter().any(|m| m.name == name))
        {
            return Err(EngineError::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                c.id
            )));
        }
        self.volumes.remove(name)?;
        self.emit_volume("destroy", name);
        Ok(())
    }

    /// Removes the container-owned anonymous volumes no other container uses.
    pub(crate) fn remove_anonymous_volumes(&self, names: &[String]) {
        let used = self.volumes_in_use();
        for name in names.iter().filter(|n| !used.contains(n)) {
            match self.volumes.remove(name) {
                Ok(()) => self.emit_volume("destroy", name),
                Err(e) => {
                    tracing::warn!(volume = %name, error = %e, "removing anonymous volume failed")
                }
            }
        }
    }

    pub(crate) async fn do_volume_prune(&self, filters: &Filters) -> Result<VolumePruneResponse> {
        filters.validate(&["label", "label!", "all"])?;
        let all = filters.bool_or("all", false)?;
        let used = self.volumes_in_use();
        let mut deleted = Vec::new();
        let mut reclaimed = 0i64;
        for name in self.volumes.names() {
            let Ok((v, anonymous)) = self.volumes.inspect(&name) else {
                continue;
            };
            if used.contains(&name) || !(anonymous || all) || !filters.prune_labels_match(&v.labels)
            {
                continue;
            }
            reclaimed += dir_size(&self.volumes.data_path(&name)) as i64;
            if self.volumes.remove(&name).is_ok() {
                self.emit_volume("destroy", &name);
                deleted.push(name);
            }
        }
        Ok(VolumePruneResponse {
            volumes_deleted: Some(deleted),
            space_reclaimed: Some(reclaimed),
        })
    }

    fn emit_volume(&self, action: &str, name: &str) {
        let attrs = HashMap::from([("driver".to_string(), "local".to_string())]);
        self.events.emit(
            bollard_stubs::models::EventMessageTypeEnum::VOLUME,
            action,
            name,
            attrs,
        );
    }
}

/// `o` with a host name in `addr=` replaced by its address: the kernel's NFS and CIFS
/// clients take addresses only (moby resolves it the same way).
fn resolve_addr(o: &str) -> std::io::Result<String> {
    use std::net::ToSocketAddrs;
    let Some(addr) = o.split(',').find_map(|opt| opt.strip_prefix("addr=")) else {
        return Ok(o.to_string());
    };
    if addr.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(o.to_string());
    }
    let ip = (addr, 0)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("no address for {addr}")))?
        .ip();
    Ok(o.replacen(&format!("addr={addr}"), &format!("addr={ip}"), 1))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether something is mounted at `path`; an error when that cannot be told.
fn mount_state(path: &Path) -> std::io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
        Ok(_) => Ok(crate::containers::rootfs::is_mounted(path)),
    }
}

/// Whether the local driver's options name a filesystem to mount (moby's `needsMount`).
fn needs_mount(opts: &HashMap<String, String>) -> bool {
    ["type", "device"]
        .iter()
        .any(|k| opts.get(*k).is_some_and(|v| !v.is_empty()))
}

fn mount_error(data: &Path, cause: &str) -> EngineError {
    EngineError::System(format!(
        "error while mounting volume '{}': {cause}",
        data.display()
    ))
}

/// Refuses a volume driver other than `local` (empty means `local`) with moby's words.
pub(crate) fn check_driver(driver: Option<&str>) -> Result<()> {
    match driver.filter(|d| !d.is_empty() && *d != "local") {
        Some(d) => Err(EngineError::invalid(format!(
            "error looking up volume plugin {d}: plugin \"{d}\" not found"
        ))),
        None => Ok(()),
    }
}

/// The local driver's options as moby checks them at `volume create`: `type`, `device` and
/// `o` (each needing the others as moby's `mandatoryOpts` says), and `size`, which needs a
/// filesystem quota skiff does not set up.
pub(crate) fn validate_options(opts: &HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<&String> = opts.keys().collect();
    keys.sort();
    if let Some(k) = keys
        .iter()
        .find(|k| !matches!(k.as_str(), "type" | "o" | "device" | "size"))
    {
        return Err(EngineError::invalid(format!("invalid option: {k:?}")));
    }
    if let Some(size) = opts.get("size") {
        let bytes = skiff_core::units::ram_in_bytes(size)
            .map_err(|e| EngineError::invalid(e.to_string()))?;
        if bytes > 0 {
            return Err(EngineError::invalid(
                "quota size requested but no quota support",
            ));
        }
    }
    for (opt, required) in [
        ("device", &["type"][..]),
        ("type", &["device"][..]),
        ("o", &["device", "type"][..]),
    ] {
        if opts.contains_key(opt) {
            if let Some(r) = required.iter().find(|r| !opts.contains_key(**r)) {
                return Err(EngineError::invalid(format!(
                    "missing required option: {r:?}"
                )));
            }
        }
    }
    Ok(())
}

/// Bytes used by the regular files under `path` (not following symlinks).
pub(crate) fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_volume_address_is_resolved_and_others_kept() {
        let local = resolve_addr("addr=localhost,rw").unwrap();
        assert!(
            ["addr=127.0.0.1,rw", "addr=::1,rw"].contains(&local.as_str()),
            "{local}"
        );
        assert_eq!(
            resolve_addr("addr=10.0.0.2,rw").unwrap(),
            "addr=10.0.0.2,rw"
        );
        assert_eq!(resolve_addr("vers=4").unwrap(), "vers=4");
    }

    #[test]
    fn ensure_is_idempotent_and_remove_cleans_up() {
        let root = tempfile::tempdir().unwrap();
        let v = Volumes::new(root.path());
        assert!(v
            .ensure("data", false, HashMap::new(), HashMap::new())
            .unwrap());
        std::fs::write(v.data_path("data").join("f"), b"12345").unwrap();
        assert!(!v
            .ensure("data", false, HashMap::new(), HashMap::new())
            .unwrap());
        assert_eq!(v.names(), vec!["data"]);
        assert_eq!(dir_size(&v.data_path("data")), 5);
        v.remove("data").unwrap();
        assert!(v.names().is_empty());
        assert!(matches!(
            v.inspect("data"),
            Err(EngineError::NoSuchVolume(_))
        ));
    }
}
