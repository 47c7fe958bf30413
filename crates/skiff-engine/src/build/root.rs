//! In-container paths of a build container's root mapped to host paths, for COPY/ADD.
//!
//! Builds write into a container that is not running (no process can swap a directory for
//! a symlink while a copy runs), so resolving a path once and then writing to it is safe
//! here; `docker cp` into running containers goes through [`skiff_image::confined`].

use std::collections::VecDeque;
use std::path::PathBuf;

use crate::error::{EngineError, IoContext, Result};
use crate::store::MountRecord;

const MAX_LINKS: usize = 40;

/// Maps in-container paths to host paths: the rootfs, except below bind/volume mounts.
pub(crate) struct Root {
    rootfs: PathBuf,
    mounts: Vec<(Vec<String>, PathBuf)>,
}

fn components(path: &str) -> VecDeque<String> {
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

impl Root {
    pub(crate) fn new(rootfs: PathBuf, mounts: &[MountRecord]) -> Root {
        let mut mounts: Vec<(Vec<String>, PathBuf)> = mounts
            .iter()
            .filter(|m| m.kind != "tmpfs")
            .map(|m| (components(&m.destination).into(), m.source.clone()))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        Root { rootfs, mounts }
    }

    pub(crate) fn host(&self, parts: &[String]) -> PathBuf {
        for (dst, src) in &self.mounts {
            if parts.starts_with(dst) {
                return parts[dst.len()..]
                    .iter()
                    .fold(src.clone(), |p, c| p.join(c));
            }
        }
        parts.iter().fold(self.rootfs.clone(), |p, c| p.join(c))
    }

    /// Resolves `path` to in-container components, following symlinks as the container
    /// would see them (absolute targets restart at the container's root, `..` stops at
    /// it). The last component is followed only when `follow_last`.
    pub(crate) fn resolve(&self, path: &str, follow_last: bool) -> Result<Vec<String>> {
        let mut todo = components(path);
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = todo.pop_front() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            let mut candidate = done.clone();
            candidate.push(part.clone());
            let host = self.host(&candidate);
            let is_link = std::fs::symlink_metadata(&host)
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(false);
            if is_link && (!todo.is_empty() || follow_last) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(EngineError::invalid(format!(
                        "{path}: too many levels of symbolic links"
                    )));
                }
                let target =
                    std::fs::read_link(&host).ctx(|| format!("readlink {}", host.display()))?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    done.clear();
                }
                for c in components(&target).into_iter().rev() {
                    todo.push_front(c);
                }
            } else {
                done.push(part);
            }
        }
        Ok(done)
    }
}
