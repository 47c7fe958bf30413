//! A start prepared ahead: when `create` is answered, the expensive half of a start — the
//! rootfs mount, the network sandbox, the bundle and the runtime's create (the container's
//! process waiting at its exec barrier, as after `runc create`) — runs in the background,
//! so that the requests a client sends between create and start (the docker CLI's attach and
//! wait) overlap it and `start` only releases the process.
//!
//! The preparation is a cache of work a start would do, never state a user sees: the
//! container stays `created` (inspect and `ps` show no address, ports or sandbox until it
//! runs), and anything that would make the prepared container differ from what a start
//! would make now discards it first (remove, rename, update, network connect/disconnect and
//! removal, archive and export, daemon shutdown), as does a start that does not come within
//! [`PREPARED_TTL`]. A preparation that fails is undone and forgotten: the start does all
//! the work again and fails with the error a start without preparation gives.

use std::sync::Arc;
use std::time::Duration;

use super::config::Network;
use super::{rootfs, Container};
use crate::store::{ContainerRecord, Status};
use crate::Engine;

/// How long a prepared start is kept for a start that does not come (`docker create`
/// without a start soon after): its process, shim, address and mount are released after.
pub(crate) const PREPARED_TTL: Duration = Duration::from_secs(10);
/// How long a discard waits for the prepared container's shim to delete it from the
/// runtime (a new launch in the same state dir must wait for that).
const DISCARD_TIMEOUT: Duration = Duration::from_secs(10);
const SIGKILL: i32 = 9;

/// A start prepared up to the runtime's create: the container's process waits in its shim.
pub(crate) struct Prepared {
    /// The exit monitor's go-ahead (see `Engine::spawn_monitor`): `true` once started.
    pub started: tokio::sync::oneshot::Sender<bool>,
}

/// Whether a start of `rec` can be prepared at create: not when what the start joins is
/// decided only then (another container's namespaces) or belongs to someone else (a pod's
/// sandbox, whose owner starts the container right after creating it).
fn preparable(rec: &ContainerRecord) -> bool {
    let hc = &rec.host_config;
    let own_network = matches!(
        super::config::network(hc.network_mode.as_deref()),
        Ok(Network::None | Network::Host | Network::Named(_))
    );
    let own_namespaces = [&hc.ipc_mode, &hc.uts_mode, &hc.pid_mode]
        .into_iter()
        .flatten()
        .all(|m| !m.starts_with("ns:") && !m.starts_with("container:"));
    own_network && own_namespaces
}

impl Engine {
    /// Prepares the start of a container just created, in the background (see the module
    /// doc). A start waits for the preparation to finish and uses it.
    pub(crate) fn spawn_prepare(&self, c: &Arc<Container>) {
        if !preparable(&c.rec()) || *self.shutdown.borrow() {
            return;
        }
        let Some(engine) = self.arc() else { return };
        // Taken now, before the create is answered: a start can only come after it.
        let Ok(mut slot) = c.prepared.clone().try_lock_owned() else {
            return;
        };
        let c = c.clone();
        tokio::spawn(async move {
            if engine.find(&c.id).is_err() || c.rec().state.status != Status::Created {
                return;
            }
            match engine.prepare_start(&c).await {
                Ok(started) => {
                    *slot = Some(Prepared { started });
                    drop(slot);
                    tracing::debug!(id = %c.id, "start prepared");
                    engine.expire_prepared(c);
                }
                Err(e) => {
                    tracing::debug!(
                        id = %c.id,
                        error = %crate::error::message_chain(&e),
                        "preparing the start failed; the start will do it again"
                    );
                    // Undone before the slot is free: a start waiting for it would otherwise
                    // make the sandbox again while this removes it (same id), and fail with
                    // "interface eth0 missing in sandbox".
                    engine.undo_preparation(&c).await;
                    drop(slot);
                }
            }
        });
    }

    /// Releases a prepared start that no start took within [`PREPARED_TTL`].
    fn expire_prepared(self: &Arc<Self>, c: Arc<Container>) {
        let engine = self.clone();
        let mut shutdown = self.shutdown.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(PREPARED_TTL) => {}
                // The shutdown discards every preparation itself.
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let _op = c.op.lock().await;
            if engine.discard_prepared(&c).await {
                tracing::debug!(id = %c.id, "prepared start expired");
            }
        });
    }

    /// Takes the prepared start, waiting for a preparation under way. The `op` lock is held.
    pub(crate) async fn take_prepared(&self, c: &Container) -> Option<Prepared> {
        c.prepared.lock().await.take()
    }

    /// Discards the prepared start, if any: kills the created process (its shim then deletes
    /// it from the runtime and exits), releases the network and unmounts the rootfs. Returns
    /// whether there was one. Waits for a preparation under way.
    pub(crate) async fn discard_prepared(&self, c: &Container) -> bool {
        self.discard(c, false).await
    }

    /// [`Self::discard_prepared`], returning once the addresses it held are free again.
    async fn discard_prepared_freeing_addresses(&self, c: &Container) -> bool {
        self.discard(c, true).await
    }

    async fn discard(&self, c: &Container, free_addresses: bool) -> bool {
        let Some(prepared) = self.take_prepared(c).await else {
            return false;
        };
        // The monitor then records nothing.
        drop(prepared.started);
        let client = c.shim();
        if let Err(e) = client.kill(SIGKILL, true).await {
            tracing::debug!(id = %c.id, error = %e, "killing a prepared container");
        }
        let _ = tokio::time::timeout(DISCARD_TIMEOUT, client.wait()).await;
        if let Err(e) = client.wait_released(DISCARD_TIMEOUT).await {
            tracing::warn!(id = %c.id, error = %e, "a discarded prepared container's shim");
        }
        if free_addresses {
            self.network_down_freeing_addresses(&c.id).await;
        }
        self.undo_preparation(c).await;
        true
    }

    /// Releases what a preparation made besides the process: network and rootfs mount.
    async fn undo_preparation(&self, c: &Container) {
        self.network_down(&c.id).await;
        if let Err(e) = rootfs::unmount(c) {
            tracing::warn!(id = %c.id, error = %e, "unmounting a prepared rootfs");
        }
        self.release_volumes(c);
    }

    /// Discards the prepared starts of every container that has an endpoint on the network
    /// (before the network is removed: a created container holds none in Docker).
    pub(crate) async fn discard_prepared_on(&self, network_id: &str) {
        for ep in self.networking.net.network_endpoints(network_id) {
            if let Ok(c) = self.find(&ep.sandbox) {
                if c.rec().state.status == Status::Created {
                    let _op = c.op.lock().await;
                    self.discard_prepared(&c).await;
                }
            }
        }
    }

    /// Discards the prepared starts of other created containers on every network, so that an
    /// address one of them holds is free again: Docker assigns a created container's address
    /// only when it starts, so `--ip` of a container started first must get it. Containers
    /// busy with an operation of their own are skipped (their lock is not waited for: the
    /// caller holds `c`'s). Returns whether any preparation was discarded.
    pub(crate) async fn discard_prepared_holding_addresses(&self, c: &Container) -> bool {
        let mut discarded = false;
        for n in self.networking.net.networks().await {
            for ep in self.networking.net.network_endpoints(&n.id) {
                let Ok(other) = self.find(&ep.sandbox) else {
                    continue;
                };
                if other.id == c.id || other.rec().state.status != Status::Created {
                    continue;
                }
                let Ok(op) = other.op.try_lock() else {
                    continue;
                };
                discarded |= self.discard_prepared_freeing_addresses(&other).await;
                drop(op);
            }
        }
        discarded
    }

    /// At shutdown: prepared containers do not outlive the daemon (their record says
    /// `created`, so no daemon start would adopt them).
    pub(crate) async fn discard_all_prepared(&self) {
        for c in self.all_containers() {
            if c.rec().state.status == Status::Created {
                self.discard_prepared(&c).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(host_config: serde_json::Value) -> ContainerRecord {
        serde_json::from_value(serde_json::json!({
            "id": "abc", "name": "/x", "created": "", "image_name": "", "image_id": "", "path": "",
            "args": [], "config": {}, "host_config": host_config,
            "state": {"status": "created", "pid": 0, "exit_code": 0, "error": "",
                "oom_killed": false, "started_at": "", "finished_at": ""},
            "runtime": "runc", "mounts": [], "restart_count": 0, "manually_stopped": false
        }))
        .unwrap()
    }

    #[test]
    fn prepares_only_containers_whose_namespaces_are_their_own() {
        use serde_json::json;
        for hc in [
            json!({}),
            json!({"NetworkMode": "bridge"}),
            json!({"NetworkMode": "none"}),
            json!({"NetworkMode": "host", "IpcMode": "host"}),
            json!({"NetworkMode": "mynet", "PidMode": "host"}),
        ] {
            assert!(preparable(&record(hc.clone())), "{hc}");
        }
        for hc in [
            json!({"NetworkMode": "container:web"}),
            json!({"NetworkMode": "ns:/run/skiff/net/sb"}),
            json!({"IpcMode": "container:web"}),
            json!({"PidMode": "container:web"}),
            json!({"UTSMode": "ns:/proc/1/ns/uts"}),
        ] {
            assert!(!preparable(&record(hc.clone())), "{hc}");
        }
    }
}
