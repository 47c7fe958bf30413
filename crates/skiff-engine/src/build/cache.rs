//! The build cache index, persisted at `<root>/build/cache.json`: cache key → the image a
//! step made (and its parent). (`ONBUILD` triggers live in the image config's `OnBuild`.)
//!
//! An entry is only a hint: the image it names may have been removed since (`docker rmi`,
//! prune), so lookups check the store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    image: String,
    parent: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    #[serde(default)]
    steps: BTreeMap<String, Entry>,
    /// Images that are parents of build steps (hidden from `docker images` unless tagged).
    #[serde(skip)]
    parents: BTreeSet<String>,
}

pub(crate) struct BuildCache {
    path: PathBuf,
    index: Mutex<Index>,
}

impl BuildCache {
    /// Opens the index under `root` (an unreadable index is started afresh: it is a cache).
    pub(crate) fn open(root: &Path) -> BuildCache {
        let path = root.join("build").join("cache.json");
        let mut index: Index = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        index.parents = index.steps.values().map(|e| e.parent.clone()).collect();
        BuildCache {
            path,
            index: Mutex::new(index),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The image recorded under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        self.lock().steps.get(key).map(|e| e.image.clone())
    }

    /// Records that the step `key` on `parent` made `image`, and persists the index.
    pub(crate) fn put(&self, key: &str, image: &str, parent: &str) -> Result<()> {
        let mut index = self.lock();
        index.steps.insert(
            key.to_string(),
            Entry {
                image: image.to_string(),
                parent: parent.to_string(),
            },
        );
        index.parents.insert(parent.to_string());
        self.persist(&index)
    }

    /// Whether `image` is the parent of a recorded step (an intermediate image).
    pub(crate) fn is_parent(&self, image: &str) -> bool {
        self.lock().parents.contains(image)
    }

    /// The image a recorded step ran on to make `image`.
    pub(crate) fn parent_of(&self, image: &str) -> Option<String> {
        let index = self.lock();
        let parent = index.steps.values().find(|e| e.image == image)?;
        Some(parent.parent.clone())
    }

    /// The images recorded steps made on `parent`.
    pub(crate) fn children_of(&self, parent: &str) -> Vec<String> {
        let index = self.lock();
        let children = index.steps.values().filter(|e| e.parent == parent);
        children.map(|e| e.image.clone()).collect()
    }

    /// Marks `image` as an intermediate image without a step (the `FROM scratch` image).
    pub(crate) fn hide(&self, image: &str) {
        self.lock().parents.insert(image.to_string());
    }

    /// Forgets every step (`docker builder prune`); returns how many there were.
    pub(crate) fn clear(&self) -> Result<usize> {
        let mut index = self.lock();
        let n = index.steps.len();
        index.steps.clear();
        index.parents.clear();
        self.persist(&index)?;
        Ok(n)
    }

    fn persist(&self, index: &Index) -> Result<()> {
        let dir = self.path.parent().expect("cache path has a parent");
        std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        let bytes = serde_json::to_vec(index)
            .map_err(std::io::Error::other)
            .ctx(|| "encode the build cache".into())?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path).ctx(|| format!("write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_reopen_and_mark_parents() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BuildCache::open(dir.path());
        assert_eq!(cache.get("k"), None);
        cache.put("k", "sha256:child", "sha256:parent").unwrap();
        let again = BuildCache::open(dir.path());
        assert_eq!(again.get("k").as_deref(), Some("sha256:child"));
        assert!(again.is_parent("sha256:parent"));
        assert!(!again.is_parent("sha256:child"));
        assert_eq!(again.clear().unwrap(), 1);
        assert_eq!(BuildCache::open(dir.path()).get("k"), None);
    }
}
