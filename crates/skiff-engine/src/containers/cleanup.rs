//! What is left of a removed container on the host: its rootfs mount, cgroups, container
//! and state directories. `rm` drops the record first and answers; this runs after, off the
//! request's path. Whatever a daemon stop or crash interrupted is swept at the next start:
//! a directory without a record belongs to no container.

use std::collections::HashSet;
use std::path::Path;

use super::{rootfs, Container};
use crate::EngineConfig;

/// Removes the container's host resources. Blocking: run it on a blocking thread.
pub(crate) fn release(c: &Container) {
    if let Err(e) = rootfs::unmount(c) {
        tracing::warn!(id = %c.id, error = %e, "unmounting rootfs at removal");
    }
    super::stats::remove_cgroups(&c.cgroups_path());
    for dir in [&c.state_dir, &c.dir] {
        remove_dir(dir);
    }
}

/// At engine start: removes container and state directories that no record claims (a
/// removal that was cut short). A container directory whose record exists but cannot be
/// read is left alone.
pub(crate) fn sweep(cfg: &EngineConfig, ids: &HashSet<String>) {
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let containers = cfg.root.join("containers");
    for name in names(&containers) {
        let dir = containers.join(&name);
        if !ids.contains(&name) && !dir.join(crate::store::RECORD).exists() {
            tracing::info!(dir = %dir.display(), "removing what a cut-short removal left");
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                super::stats::remove_cgroups(&format!("/{}/{name}", cfg.cgroup_parent));
            }
            remove_dir(&dir);
        }
    }
    let states = cfg.state.join("c");
    for name in names(&states) {
        if ids.iter().any(|id| id.starts_with(&name)) {
            continue;
        }
        let dir = states.join(&name);
        let rootfs = dir.join("bundle").join("rootfs");
        if rootfs::is_mounted(&rootfs) {
            if let Err(e) = skiff_image::overlay::unmount(&rootfs) {
                tracing::warn!(dir = %rootfs.display(), error = %e, "unmounting a removed rootfs");
                continue;
            }
        }
        tracing::info!(dir = %dir.display(), "removing the state of a removed container");
        remove_dir(&dir);
    }
}

fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "removing container directory");
        }
    }
}
