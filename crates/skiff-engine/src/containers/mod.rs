//! Containers: the in-memory registry (ids, names), each container's record and lifecycle
//! signal, and the operations split by concern (create, lifecycle, monitor, query, logs,
//! archive, changes, commit, stats, exec, attach and detach, update).

pub(crate) mod archive;
pub(crate) mod attach;
pub(crate) mod changes;
pub(crate) mod cleanup;
pub(crate) mod commit;
pub(crate) mod config;
pub(crate) mod create;
pub(crate) mod detach;
pub(crate) mod exec;
pub(crate) mod health;
pub(crate) mod lifecycle;
pub(crate) mod logs;
pub(crate) mod monitor;
pub(crate) mod mounts;
pub(crate) mod prepare;
pub(crate) mod query;
pub(crate) mod rootfs;
pub(crate) mod stats;
pub(crate) mod update;
pub(crate) mod view;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::error::{EngineError, Result};
use crate::store::ContainerRecord;

/// What waiters watch: bumped at every start, exit and at removal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Life {
    pub running: bool,
    /// How many exits have been recorded since the engine loaded the container.
    pub exits: u64,
    pub exit_code: i64,
    pub error: Option<String>,
    pub removed: bool,
}

/// The state of the engine's cgroup-migration primer (`Engine::prime_cgroup_migration`).
#[derive(Default)]
pub(crate) struct Priming {
    /// Its thread runs.
    pub running: bool,
    /// It stops once this has passed.
    pub until: Option<std::time::Instant>,
}

/// An attach requested before the container started: connected at start, before the
/// process runs, so no output is lost.
pub(crate) struct PendingAttach {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub io: tokio::io::DuplexStream,
}

/// One container in memory.
pub(crate) struct Container {
    pub id: String,
    /// `<root>/containers/<id>`: record, log, upper/work dirs, /etc files.
    pub dir: PathBuf,
    /// `<state>/c/<id[..16]>`: the shim's state and the bundle (short, so that the shim's
    /// socket path stays under the 108-byte limit of unix socket addresses).
    pub state_dir: PathBuf,
    rec: Mutex<ContainerRecord>,
    /// Serialises lifecycle operations (start, stop, restart, remove, rename of state).
    pub op: Arc<tokio::sync::Mutex<()>>,
    pub life: watch::Sender<Life>,
    pub pending: Mutex<Vec<PendingAttach>>,
    /// Consecutive restarts of a container that ran only briefly (restart backoff).
    pub quick_restarts: AtomicU32,
    /// `State.Health` while a health check runs (reset at every start).
    pub health: Mutex<Option<bollard_stubs::models::Health>>,
    /// A start prepared at create (see [`prepare`]); locked while the preparation runs.
    pub prepared: Arc<tokio::sync::Mutex<Option<prepare::Prepared>>>,
}

impl Container {
    pub(crate) fn new(rec: ContainerRecord, root: &Path, state: &Path) -> Container {
        let running = rec.state.status.is_alive();
        let life = Life {
            running,
            exit_code: rec.state.exit_code,
            ..Life::default()
        };
        Container {
            id: rec.id.clone(),
            dir: root.join("containers").join(&rec.id),
            state_dir: state.join("c").join(&rec.id[..rec.id.len().min(16)]),
            rec: Mutex::new(rec),
            op: Arc::new(tokio::sync::Mutex::new(())),
            life: watch::channel(life).0,
            pending: Mutex::new(Vec::new()),
            quick_restarts: AtomicU32::new(0),
            health: Mutex::new(None),
            prepared: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ContainerRecord> {
        self.rec.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A snapshot of the record.
    pub(crate) fn rec(&self) -> ContainerRecord {
        self.lock().clone()
    }

    /// Changes the record and persists it.
    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut ContainerRecord) -> T) -> Result<T> {
        let mut rec = self.lock();
        let out = f(&mut rec);
        rec.save(&self.dir)?;
        Ok(out)
    }

    /// Changes the record in memory only: for a change the next moment makes moot (the exit
    /// of a `--rm` container, whose record is deleted next). A crash in between leaves the
    /// previous record, from which a daemon start recovers the same way.
    pub(crate) fn update_unsaved<T>(&self, f: impl FnOnce(&mut ContainerRecord) -> T) -> T {
        f(&mut self.lock())
    }

    /// The health state while the container runs (None without a health check).
    pub(crate) fn health_now(&self) -> Option<bollard_stubs::models::Health> {
        if !self.lock().state.status.is_alive() {
            return None;
        }
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn bundle(&self) -> PathBuf {
        self.state_dir.join("bundle")
    }

    pub(crate) fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }

    /// The overlay's upper dir: everything the container changed in its filesystem.
    pub(crate) fn upper_dir(&self) -> PathBuf {
        self.dir.join("fs").join("upper")
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}-json.log", self.id))
    }

    pub(crate) fn shim(&self) -> skiff_runtime::shim::ShimClient {
        skiff_runtime::shim::ShimClient::new(&self.state_dir)
    }

    /// The cgroup path relative to each hierarchy's root.
    pub(crate) fn cgroups_path(&self) -> String {
        let path = &self.lock().cgroups_path;
        if path.is_empty() {
            // Records written before the path was stored.
            format!("/{}/{}", skiff_core::paths::CGROUP_PARENT, self.id)
        } else {
            path.clone()
        }
    }
}

/// Ids and names of every container.
#[derive(Default)]
pub(crate) struct Registry {
    by_id: HashMap<String, Arc<Container>>,
    /// `/name` → id. Holds reservations of containers being created, too.
    names: HashMap<String, String>,
}

impl Registry {
    /// Finds a container by full id, name (with or without `/`) or unique id prefix.
    pub(crate) fn find(&self, key: &str) -> Result<Arc<Container>> {
        if let Some(c) = self.by_id.get(key) {
            return Ok(c.clone());
        }
        let name = format!("/{}", key.trim_start_matches('/'));
        if let Some(c) = self.names.get(&name).and_then(|id| self.by_id.get(id)) {
            return Ok(c.clone());
        }
        if !key.is_empty() && key.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut found = self.by_id.values().filter(|c| c.id.starts_with(key));
            if let Some(first) = found.next() {
                if found.next().is_some() {
                    return Err(EngineError::invalid(format!(
                        "Multiple IDs found with provided prefix: {key}"
                    )));
                }
                return Ok(first.clone());
            }
        }
        Err(EngineError::NoSuchContainer(key.to_string()))
    }

    /// Reserves `name` for `id`, failing if another container holds it.
    pub(crate) fn reserve(&mut self, name: &str, id: &str) -> Result<()> {
        match self.names.get(name) {
            Some(holder) if holder != id => Err(EngineError::NameConflict {
                name: name.to_string(),
                id: holder.clone(),
            }),
            _ => {
                self.names.insert(name.to_string(), id.to_string());
                Ok(())
            }
        }
    }

    pub(crate) fn release(&mut self, name: &str) {
        self.names.remove(name);
    }

    pub(crate) fn name_taken(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    pub(crate) fn insert(&mut self, c: Arc<Container>) {
        self.by_id.insert(c.id.clone(), c);
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Arc<Container>> {
        self.by_id.remove(id)
    }

    pub(crate) fn all(&self) -> Vec<Arc<Container>> {
        self.by_id.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ContainerRecord;

    fn container(id: &str, name: &str) -> Arc<Container> {
        let rec: ContainerRecord = serde_json::from_value(serde_json::json!({
            "id": id, "name": name, "created": "", "image_name": "", "image_id": "", "path": "", "args": [],
            "config": {}, "host_config": {}, "state": {"status": "created", "pid": 0, "exit_code": 0,
            "error": "", "oom_killed": false, "started_at": "", "finished_at": ""},
            "runtime": "runc", "mounts": [], "restart_count": 0, "manually_stopped": false
        }))
        .unwrap();
        Arc::new(Container::new(
            rec,
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
        ))
    }

    #[test]
    fn finds_by_id_name_and_unique_prefix() {
        let mut reg = Registry::default();
        for (id, name) in [("abc123", "/web"), ("abd456", "/db")] {
            reg.reserve(name, id).unwrap();
            reg.insert(container(id, name));
        }
        assert_eq!(reg.find("web").unwrap().id, "abc123");
        assert_eq!(reg.find("/db").unwrap().id, "abd456");
        assert_eq!(reg.find("abc").unwrap().id, "abc123");
        assert!(matches!(
            reg.find("ab").err(),
            Some(EngineError::InvalidArgument(_))
        ));
        assert_eq!(
            reg.find("nope").err().unwrap().to_string(),
            "No such container: nope"
        );
        let err = reg.reserve("/web", "other").unwrap_err().to_string();
        assert!(err.starts_with(
            "Conflict. The container name \"/web\" is already in use by container \"abc123\""
        ));
    }
}
