//! Watching running containers: one task per container awaits its shim's exit, records it,
//! emits `die`/`oom`, then applies the restart policy or `--rm`. At engine start the same
//! code re-adopts containers whose shims survived, and records exits that happened while the
//! daemon was down.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use skiff_runtime::shim::{self, ExitStatus, ShimError};

use super::{rootfs, Container};
use crate::restart::{self, Policy};
use crate::store::Status;
use crate::Engine;

/// The exit of a container whose shim is gone without telling us.
fn vanished() -> ExitStatus {
    ExitStatus {
        exit_code: 255,
        oom_killed: false,
        finished_at: super::create::now_rfc3339(),
        error: Some("the container's shim exited without recording its exit".into()),
    }
}

/// Waits for the container's exit through its shim, falling back to `exit.json`.
async fn await_exit(c: &Container) -> ExitStatus {
    let client = c.shim();
    loop {
        match client.wait().await {
            Ok(status) => return status,
            Err(ShimError::NotRunning(_)) => {
                return shim::read_exit(&c.state_dir).unwrap_or_else(vanished)
            }
            Err(e) => {
                tracing::warn!(id = %c.id, error = %e, "waiting on shim failed; retrying");
                if let Some(status) = shim::read_exit(&c.state_dir) {
                    return status;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
}

impl Engine {
    /// Starts the task that awaits `c`'s exit. It stops (without recording anything) when
    /// the engine shuts down, leaving the container running. With `started`, the task
    /// connects to the shim at once but handles the exit only once the start has been
    /// recorded (`true`); a failed start (`false`, or dropped) is its caller's to record.
    /// Connecting before the start matters for containers that end at once: their exit
    /// reaches the engine without another round trip.
    pub(crate) fn spawn_monitor(
        &self,
        c: Arc<Container>,
        started: Option<tokio::sync::oneshot::Receiver<bool>>,
    ) {
        let Some(engine) = self.arc() else { return };
        let mut shutdown = self.shutdown.subscribe();
        let began = Instant::now();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = await_exit(&c) => status,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            if let Some(started) = started {
                if started.await != Ok(true) {
                    return;
                }
            }
            engine.handle_exit(&c, status, began.elapsed()).await;
        });
    }

    /// Records an exit, then restarts or removes the container as its settings say.
    pub(crate) async fn handle_exit(
        self: &Arc<Self>,
        c: &Arc<Container>,
        status: ExitStatus,
        ran: std::time::Duration,
    ) {
        // Like dockerd, its addresses, ports and names are released before anyone hears of
        // the exit: whoever waited for it may reuse them at once.
        let began = Instant::now();
        self.network_down(&c.id).await;
        let network_down = began.elapsed();
        self.record_exit(c, &status);
        tracing::debug!(
            id = %c.id,
            network_down_us = network_down.as_micros() as u64,
            total_us = began.elapsed().as_micros() as u64,
            "exit recorded"
        );
        let engine = self.clone();
        let c = c.clone();
        tokio::spawn(async move { engine.after_exit(&c, ran).await });
    }

    /// Unmounts the rootfs (unless `--rm` is about to remove it all) and writes the exit
    /// into the record; wakes waiters.
    pub(crate) fn record_exit(&self, c: &Arc<Container>, status: &ExitStatus) {
        if !c.rec().host_config.auto_remove.unwrap_or(false) {
            if let Err(e) = rootfs::unmount(c) {
                tracing::warn!(id = %c.id, error = %e, "unmounting rootfs at exit");
            }
        }
        self.release_volumes(c);
        let code = status.exit_code as i64;
        let finished = if status.finished_at.is_empty() {
            super::create::now_rfc3339()
        } else {
            status.finished_at.clone()
        };
        let error = status.error.clone().unwrap_or_default();
        let exited = |r: &mut crate::store::ContainerRecord| {
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.exit_code = code;
            r.state.oom_killed = status.oom_killed;
            r.state.finished_at = finished.clone();
            r.state.error = error.clone();
        };
        if c.rec().host_config.auto_remove.unwrap_or(false) {
            // Its record is deleted right after (`after_exit`).
            c.update_unsaved(exited);
        } else if let Err(e) = c.update(exited) {
            tracing::error!(id = %c.id, error = %e, "recording the exit failed");
        }
        if status.oom_killed {
            self.emit_container("oom", c, HashMap::new());
        }
        self.emit_container(
            "die",
            c,
            HashMap::from([("exitCode".to_string(), code.to_string())]),
        );
        c.life.send_modify(|l| {
            l.running = false;
            l.exits += 1;
            l.exit_code = code;
            l.error = status.error.clone();
        });
        tracing::info!(id = %c.id, code, oom = status.oom_killed, "container exited");
    }

    async fn after_exit(self: &Arc<Self>, c: &Arc<Container>, ran: std::time::Duration) {
        let rec = c.rec();
        if rec.host_config.auto_remove.unwrap_or(false) {
            let _op = c.op.lock().await;
            if self.find(&c.id).is_ok() && !c.rec().state.status.is_alive() {
                self.finish_remove(c, true);
            }
            return;
        }
        let policy = match Policy::from_wire(rec.host_config.restart_policy.as_ref(), false) {
            Ok(p) => p,
            Err(_) => return,
        };
        if !policy.restart_after_exit(rec.state.exit_code, rec.restart_count, rec.manually_stopped)
        {
            return;
        }
        let quick = &c.quick_restarts;
        let attempt = if ran >= restart::RAN_LONG_ENOUGH {
            0
        } else {
            quick.fetch_add(1, Ordering::Relaxed)
        };
        if ran >= restart::RAN_LONG_ENOUGH {
            quick.store(1, Ordering::Relaxed);
        }
        let _ = c.update(|r| {
            if r.state.status == Status::Exited {
                r.state.status = Status::Restarting;
            }
        });
        let mut shutdown = self.shutdown.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(restart::backoff(attempt)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let _op = c.op.lock().await;
        let now = c.rec();
        if self.find(&c.id).is_err()
            || now.manually_stopped
            || now.state.status != Status::Restarting
        {
            return;
        }
        let _ = c.update(|r| {
            r.restart_count += 1;
            r.state.status = Status::Exited;
        });
        if let Err(e) = self.start_locked(c).await {
            tracing::warn!(id = %c.id, error = %crate::error::message_chain(&e), "restart by policy failed");
        }
    }

    /// At engine start: follows containers recorded running (re-adopting their shims or
    /// recording the exits that happened meanwhile) and starts those the restart policy
    /// says a daemon start should start.
    pub(crate) async fn adopt(self: &Arc<Self>) {
        for c in self.all_containers() {
            let rec = c.rec();
            match rec.state.status {
                Status::Running | Status::Paused => match c.shim().state().await {
                    Ok(state) if state.exit.is_none() => {
                        let paused = state.status == shim::Status::Paused;
                        let _ = c.update(|r| {
                            r.state.status = if paused {
                                Status::Paused
                            } else {
                                Status::Running
                            };
                            r.state.pid = state.pid as i64;
                        });
                        tracing::info!(id = %c.id, pid = state.pid, "re-adopted running container");
                        self.spawn_monitor(c.clone(), None);
                        self.spawn_health(c.clone());
                    }
                    Ok(state) => {
                        let status = state.exit.unwrap_or_else(vanished);
                        self.handle_exit(&c, status, restart::RAN_LONG_ENOUGH).await;
                    }
                    Err(_) => {
                        let status = shim::read_exit(&c.state_dir).unwrap_or_else(vanished);
                        self.handle_exit(&c, status, restart::RAN_LONG_ENOUGH).await;
                    }
                },
                Status::Restarting | Status::Removing => {
                    let _ = c.update(|r| r.state.status = Status::Exited);
                    self.start_if_policy(&c);
                }
                Status::Created => {
                    // A start prepared before a crash: its process waits in its shim.
                    let client = c.shim();
                    if client.state().await.is_ok_and(|s| s.exit.is_none()) {
                        tracing::info!(id = %c.id, "killing the prepared start of a created container");
                        let _ = client.kill(9, true).await;
                    }
                    if let Err(e) = rootfs::unmount(&c) {
                        tracing::warn!(id = %c.id, error = %e, "unmounting a prepared rootfs");
                    }
                }
                _ => self.start_if_policy(&c),
            }
        }
    }

    fn start_if_policy(self: &Arc<Self>, c: &Arc<Container>) {
        let rec = c.rec();
        let Ok(policy) = Policy::from_wire(rec.host_config.restart_policy.as_ref(), false) else {
            return;
        };
        if rec.state.started_at.is_empty() || !policy.start_with_daemon(rec.manually_stopped) {
            return;
        }
        let engine = self.clone();
        let c = c.clone();
        tokio::spawn(async move {
            let _op = c.op.lock().await;
            if let Err(e) = engine.start_locked(&c).await {
                tracing::warn!(id = %c.id, error = %crate::error::message_chain(&e), "starting container with the daemon failed");
            }
        });
    }
}
