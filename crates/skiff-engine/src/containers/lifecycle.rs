//! Start, stop, kill, restart, pause, unpause, remove, rename and wait.
//! Every state change holds the container's `op` lock; the exit monitor records exits
//! without it, so a stop can wait for the exit while holding it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard_stubs::models::{ContainerWaitExitError, ContainerWaitResponse};
use futures::future::BoxFuture;
use futures::FutureExt;
use skiff_runtime::shim::{self, ShimConfig};
use skiff_runtime::spec::{self, ContainerSpec, MountSpec};

use super::config;
use super::{rootfs, Container, Life, PendingAttach};
use crate::error::{message_chain, EngineError, IoContext, Result};
use crate::store::{ContainerRecord, Status};
use crate::{Engine, WaitCondition};

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;
/// How long to wait for a SIGKILLed container to be reaped.
const KILL_GRACE: Duration = Duration::from_secs(30);
/// How long a start waits for the container's previous shim to delete it from the runtime.
const PREVIOUS_SHIM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the cgroup-migration lock is kept cheap after the last sign of a coming start.
const PRIME_HOLD: Duration = Duration::from_millis(60);
/// How often it is re-primed meanwhile: well inside the ~10 ms it stays cheap after a
/// migration (measured on this 2-vCPU VM; ADR 0035).
const PRIME_EVERY: Duration = Duration::from_millis(4);

/// The static init binary bound in for `--init` (Docker's `docker-init`, i.e. tini).
pub(crate) fn init_binary() -> Result<PathBuf> {
    [
        "/usr/bin/docker-init",
        "/usr/libexec/docker/docker-init",
        "/usr/bin/tini-static",
        "/usr/sbin/tini-static",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .and_then(|p| p.canonicalize().ok())
    .ok_or_else(|| EngineError::invalid("--init: no init binary found (install the tini package)"))
}

/// Waits until `life` reports an exit after `exits` (or removal), at most `timeout`.
async fn wait_exit(c: &Container, exits: u64, timeout: Option<Duration>) -> bool {
    let mut rx = c.life.subscribe();
    let done = rx.wait_for(|l| l.exits > exits || l.removed || !l.running);
    match timeout {
        Some(t) => tokio::time::timeout(t, done).await.is_ok(),
        None => done.await.is_ok(),
    }
}

impl Engine {
    pub(crate) async fn do_start(&self, key: &str) -> Result<bool> {
        let c = self.find(key)?;
        let _op = c.op.lock().await;
        match c.rec().state.status {
            Status::Running => return Ok(false),
            Status::Paused => {
                return Err(EngineError::Conflict(
                    "cannot start a paused container, try unpause instead".into(),
                ))
            }
            Status::Removing => {
                return Err(EngineError::Conflict(
                    "container is marked for removal and cannot be started".into(),
                ))
            }
            _ => {}
        }
        match self.start_locked(&c).await {
            Ok(()) => Ok(true),
            Err(e) => {
                if c.rec().host_config.auto_remove.unwrap_or(false) {
                    self.finish_remove(&c, true);
                }
                Err(e)
            }
        }
    }

    /// Prepares the start (unless a preparation at create did: see `prepare`), then
    /// connects early attaches and starts. The `op` lock is held.
    pub(crate) async fn start_locked(&self, c: &Arc<Container>) -> Result<()> {
        let began = Instant::now();
        let prepared = match self.take_prepared(c).await {
            Some(p) => Ok(p.started),
            None => {
                self.prime_cgroup_migration();
                match self.prepare_start(c).await {
                    Err(e)
                        if is_address_taken(&e)
                            && self.discard_prepared_holding_addresses(c).await =>
                    {
                        // A created container's prepared start held the address.
                        self.network_down(&c.id).await;
                        if let Err(u) = rootfs::unmount(c) {
                            tracing::warn!(id = %c.id, error = %u, "unmounting rootfs before a retried start");
                        }
                        self.prepare_start(c).await
                    }
                    prepared => prepared,
                }
            }
        };
        let prepared_after = began.elapsed();
        let launched = match prepared {
            Ok(started) => self.release_start(c).await.map(|pid| (pid, started)),
            Err(e) => Err(e),
        };
        let released_after = began.elapsed();
        match launched {
            Ok((pid, started)) => {
                c.update(|r| {
                    r.state.status = Status::Running;
                    r.state.pid = pid as i64;
                    r.state.exit_code = 0;
                    r.state.error.clear();
                    r.state.oom_killed = false;
                    r.state.started_at = super::create::now_rfc3339();
                    r.manually_stopped = false;
                })?;
                c.life.send_modify(|l| l.running = true);
                // The monitor (watching since the create) may record the exit from now on.
                let _ = started.send(true);
                self.emit_container("start", c, HashMap::new());
                self.spawn_health(c.clone());
                tracing::debug!(
                    id = %c.id,
                    prepared_us = prepared_after.as_micros() as u64,
                    released_us = released_after.as_micros() as u64,
                    total_us = began.elapsed().as_micros() as u64,
                    "start timeline"
                );
                tracing::info!(id = %c.id, pid, "container started");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(id = %c.id, error = %message_chain(&e), "container start failed");
                self.network_down(&c.id).await;
                if let Err(u) = rootfs::unmount(c) {
                    tracing::warn!(id = %c.id, error = %u, "unmounting rootfs after failed start");
                }
                self.release_volumes(c);
                let message = message_chain(&e);
                let _ = c.update(|r| {
                    r.state.error = message.clone();
                    if let Some(code) = e.start_exit_code() {
                        r.state.exit_code = code;
                    }
                });
                Err(e)
            }
        }
    }

    /// Everything of a start up to the released process: mounts the rootfs, fills volumes,
    /// sets up the network, writes the bundle and launches the shim, which creates the
    /// container in the runtime; starts the exit monitor. Returns the monitor's go-ahead
    /// (see `spawn_monitor`). On failure the caller releases the network and the mount.
    pub(crate) async fn prepare_start(
        &self,
        c: &Arc<Container>,
    ) -> Result<tokio::sync::oneshot::Sender<bool>> {
        let began = Instant::now();
        // The network (a namespace made on a thread of its own, its links and /etc files)
        // and the rootfs (an overlay mount, volume copy-up) need nothing of each other:
        // made side by side. A failure is reported as a start made one after the other
        // would (the rootfs's first); the caller releases whatever was made.
        let network = match self.arc() {
            Some(engine) => {
                let c = c.clone();
                let task = tokio::spawn(async move { engine.network_up(&c, c.rec()).await });
                NetworkTask::Spawned(task)
            }
            None => NetworkTask::Here,
        };
        let rootfs = async {
            let path = rootfs::mount(self, c).await?;
            self.mount_volumes(c).await?;
            self.populate_volumes(c, &path).await?;
            let working_dir = c.rec().config.working_dir.unwrap_or_default();
            rootfs::ensure_working_dir(&path, &working_dir)?;
            Ok::<_, EngineError>(path)
        }
        .await;
        let mounted = began.elapsed();
        let network = match network {
            NetworkTask::Spawned(task) => task
                .await
                .map_err(std::io::Error::other)
                .ctx(|| "set up the network".into())
                .and_then(|r| r),
            NetworkTask::Here => self.network_up(c, c.rec()).await,
        };
        let rootfs_path = rootfs?;
        let (network, etc_dir, rec) = network?;
        let ready = began.elapsed();
        let (started, started_rx) = tokio::sync::oneshot::channel();
        self.launch(c, rootfs_path, (network, etc_dir, rec), started_rx)
            .await?;
        tracing::debug!(
            id = %c.id,
            rootfs_us = mounted.as_micros() as u64,
            rootfs_and_network_us = ready.as_micros() as u64,
            total_us = began.elapsed().as_micros() as u64,
            "start prepared up to the runtime's create"
        );
        Ok(started)
    }

    /// Fills empty volumes with what the image has at their mount points.
    async fn populate_volumes(&self, c: &Container, rootfs_path: &std::path::Path) -> Result<()> {
        let volumes: Vec<_> = c
            .rec()
            .mounts
            .into_iter()
            .filter(|m| m.kind == "volume" && !m.options.iter().any(|o| o == "nocopy"))
            .collect();
        if volumes.is_empty() {
            return Ok(());
        }
        let rootfs_path = rootfs_path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            volumes.iter().try_for_each(|m| {
                super::archive::populate_volume(&rootfs_path, &m.destination, &m.source)
            })
        })
        .await
        .map_err(std::io::Error::other)
        .ctx(|| "populate volumes".into())?
    }

    /// Writes the bundle for the network made, launches the shim (container created) and
    /// starts the exit monitor (which waits for `started`).
    async fn launch(
        &self,
        c: &Arc<Container>,
        rootfs_path: PathBuf,
        (network, etc_dir, rec): (skiff_runtime::spec::NetworkMode, PathBuf, ContainerRecord),
        started: tokio::sync::oneshot::Receiver<bool>,
    ) -> Result<()> {
        let hc = &rec.host_config;
        let mounts = rec
            .mounts
            .iter()
            .map(|m| match m.kind.as_str() {
                "tmpfs" => MountSpec::Tmpfs {
                    destination: m.destination.clone(),
                    options: m.options.clone(),
                },
                _ => MountSpec::Bind {
                    source: m.source.clone(),
                    destination: m.destination.clone(),
                    read_only: m.read_only,
                },
            })
            .collect();
        let positive = |v: Option<i64>| v.filter(|v| *v > 0);
        let mut args = vec![rec.path.clone()];
        args.extend(rec.args.iter().cloned());
        let mut annotations: Vec<(String, String)> = hc
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        annotations.sort();
        let mut sysctls: Vec<(String, String)> =
            hc.sysctls.clone().unwrap_or_default().into_iter().collect();
        sysctls.sort();
        let cs = ContainerSpec {
            id: c.id.clone(),
            rootfs: rootfs_path,
            args,
            env: rec.config.env.clone().unwrap_or_default(),
            cwd: rec.config.working_dir.clone().unwrap_or_default(),
            user: rec.config.user.clone().unwrap_or_default(),
            group_add: hc.group_add.clone().unwrap_or_default(),
            hostname: rec.config.hostname.clone().unwrap_or_default(),
            tty: rec.config.tty.unwrap_or(false),
            mounts,
            network,
            host_pid: hc.pid_mode.as_deref() == Some("host"),
            host_ipc: hc.ipc_mode.as_deref() == Some("host"),
            host_uts: hc.uts_mode.as_deref() == Some("host"),
            ipc_path: config::namespace_path(hc.ipc_mode.as_deref().unwrap_or(""))?,
            uts_path: config::namespace_path(hc.uts_mode.as_deref().unwrap_or(""))?,
            host_cgroupns: config::host_cgroupns(hc),
            privileged: hc.privileged.unwrap_or(false),
            cap_add: hc.cap_add.clone().unwrap_or_default(),
            cap_drop: hc.cap_drop.clone().unwrap_or_default(),
            read_only_rootfs: hc.readonly_rootfs.unwrap_or(false),
            security_opt: hc.security_opt.clone().unwrap_or_default(),
            memory_limit: positive(hc.memory),
            memory_swap: hc.memory_swap.filter(|v| *v != 0),
            memory_swappiness: hc.memory_swappiness.and_then(|v| u64::try_from(v).ok()),
            nano_cpus: positive(hc.nano_cpus),
            cpu_shares: positive(hc.cpu_shares).map(|v| v as u64),
            cpu_period: positive(hc.cpu_period).map(|v| v as u64),
            cpu_quota: positive(hc.cpu_quota),
            cpuset_cpus: hc.cpuset_cpus.clone().filter(|s| !s.is_empty()),
            cpuset_mems: hc.cpuset_mems.clone().filter(|s| !s.is_empty()),
            memory_reservation: positive(hc.memory_reservation),
            pids_limit: positive(hc.pids_limit),
            blkio_weight: hc.blkio_weight.filter(|w| *w > 0),
            cgroups_path: c.cgroups_path(),
            etc_files: rootfs::etc_files(&etc_dir),
            init_path: if hc.init.unwrap_or(false) {
                Some(init_binary()?)
            } else {
                None
            },
            sysctls,
            annotations,
            ulimits: config::ulimits(hc),
            devices: config::devices(hc),
            shm_size: positive(hc.shm_size).map(|v| v as u64),
        };
        let oci = spec::generate(&cs)?;
        spec::write_bundle(&oci, &c.bundle())?;
        let logging = config::logging(hc)?;
        let shim_config = ShimConfig {
            id: c.id.clone(),
            bundle: c.bundle(),
            state_dir: c.state_dir.clone(),
            runtime: rec.runtime.clone(),
            runtime_root: self.cfg.state.join("runtime").join(&rec.runtime),
            log_path: logging.enabled.then(|| c.log_path()),
            log_max_size: logging.max_size,
            log_max_files: logging.max_files,
            tty: cs.tty,
            open_stdin: rec.config.open_stdin.unwrap_or(false),
            stdin_once: rec.config.stdin_once.unwrap_or(false),
            cgroups_path: Some(cs.cgroups_path.clone()),
            mount_hubs: self.mount_hubs(),
        };
        c.shim()
            .wait_released(PREVIOUS_SHIM_TIMEOUT)
            .await
            .map_err(EngineError::StartFailed)?;
        // The runtime joins the container's cgroups a moment from now.
        self.prime_cgroup_migration();
        let exe = self.cfg.exe.clone();
        let spare = self.take_spare();
        self.refill_spare();
        tokio::task::spawn_blocking(move || shim::launch_with(&exe, &shim_config, spare))
            .await
            .map_err(std::io::Error::other)
            .ctx(|| "launch shim".into())?
            .map_err(EngineError::StartFailed)?;
        self.spawn_monitor(c.clone(), Some(started));
        Ok(())
    }

    /// Connects pending attaches and starts the created process; returns its pid. A process
    /// that cannot be started is killed.
    async fn release_start(&self, c: &Arc<Container>) -> Result<i32> {
        let client = c.shim();
        let mut pending: Vec<PendingAttach> =
            std::mem::take(&mut *c.pending.lock().unwrap_or_else(|e| e.into_inner()));
        // The last early attach also starts the container (one round trip less); without
        // one, a plain start.
        let last = pending.pop();
        for p in pending {
            match client.attach(p.stdin, p.stdout, p.stderr).await {
                Ok(stream) => {
                    tokio::spawn(super::attach::splice(p.io, stream));
                }
                Err(e) => {
                    tracing::warn!(id = %c.id, error = %e, "connecting an early attach failed")
                }
            }
        }
        let outcome = match last {
            Some(p) => client
                .attach_and_start(p.stdin, p.stdout, p.stderr)
                .await
                .map(|(stream, pid)| {
                    tokio::spawn(super::attach::splice(p.io, stream));
                    pid
                }),
            None => client.start().await,
        };
        match outcome {
            Ok(pid) => Ok(pid),
            Err(e) => {
                let _ = client.kill(SIGKILL, true).await;
                Err(EngineError::StartFailed(e))
            }
        }
    }

    pub(crate) async fn do_stop(
        &self,
        key: &str,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<bool> {
        let c = self.find(key)?;
        let _op = c.op.lock().await;
        self.stop_locked(&c, signal, timeout).await
    }

    /// The stop signal, then SIGKILL after the timeout. The `op` lock is held.
    pub(crate) async fn stop_locked(
        &self,
        c: &Arc<Container>,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<bool> {
        let rec = c.rec();
        if !rec.state.status.is_alive() {
            if rec.state.status == Status::Restarting {
                c.update(|r| {
                    r.manually_stopped = true;
                    r.state.status = Status::Exited;
                })?;
                return Ok(true);
            }
            return Ok(false);
        }
        let sig = match signal
            .filter(|s| !s.is_empty())
            .or(rec.config.stop_signal.as_deref())
        {
            Some(s) => config::parse_signal(s)?,
            None => SIGTERM,
        };
        let timeout = timeout
            .or(rec.config.stop_timeout)
            .unwrap_or(config::DEFAULT_STOP_TIMEOUT);
        c.update(|r| r.manually_stopped = true)?;
        let exits = c.life.borrow().exits;
        let client = c.shim();
        if rec.state.status == Status::Paused {
            let _ = client.resume().await;
        }
        self.emit_container(
            "kill",
            c,
            HashMap::from([("signal".to_string(), sig.to_string())]),
        );
        if let Err(e) = client.kill(sig, false).await {
            tracing::debug!(id = %c.id, error = %e, "stop signal not delivered");
        }
        let limit = (timeout >= 0).then(|| Duration::from_secs(timeout as u64));
        if !wait_exit(c, exits, limit).await {
            tracing::info!(id = %c.id, timeout, "container ignored its stop signal, killing it");
            self.emit_container(
                "kill",
                c,
                HashMap::from([("signal".to_string(), SIGKILL.to_string())]),
            );
            let _ = client.kill(SIGKILL, true).await;
            if !wait_exit(c, exits, Some(KILL_GRACE)).await {
                return Err(EngineError::Conflict(format!(
                    "container {} did not exit after SIGKILL",
                    c.id
                )));
            }
        }
        self.emit_container("stop", c, HashMap::new());
        Ok(true)
    }

    pub(crate) async fn do_kill(&self, key: &str, signal: Option<&str>) -> Result<()> {
        // As moby: a bad signal is refused before the container is looked up.
        let sig = signal
            .filter(|s| !s.is_empty())
            .map_or(Ok(SIGKILL), config::parse_signal)?;
        let c = self.find(key)?;
        let _op = c.op.lock().await;
        let rec = c.rec();
        if !rec.state.status.is_alive() {
            return Err(EngineError::Conflict(format!(
                "Cannot kill container: {key}: Container {} is not running",
                c.id
            )));
        }
        let exits = c.life.borrow().exits;
        self.emit_container(
            "kill",
            &c,
            HashMap::from([("signal".to_string(), sig.to_string())]),
        );
        c.shim()
            .kill(sig, false)
            .await
            .ctx(|| format!("kill {}", c.id))?;
        if sig == SIGKILL {
            wait_exit(&c, exits, Some(KILL_GRACE)).await;
        }
        Ok(())
    }

    pub(crate) async fn do_restart(
        &self,
        key: &str,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<()> {
        let c = self.find(key)?;
        let _op = c.op.lock().await;
        self.stop_locked(&c, signal, timeout).await?;
        self.start_locked(&c).await?;
        self.emit_container("restart", &c, HashMap::new());
        Ok(())
    }

    pub(crate) async fn do_pause(&self, key: &str, pause: bool) -> Result<()> {
        let c = self.find(key)?;
        let _op = c.op.lock().await;
        let status = c.rec().state.status;
        match (pause, status) {
            (true, Status::Running) => {
                c.shim().pause().await.ctx(|| format!("pause {}", c.id))?;
                c.update(|r| r.state.status = Status::Paused)?;
                self.emit_container("pause", &c, HashMap::new());
                Ok(())
            }
            (false, Status::Paused) => {
                c.shim()
                    .resume()
                    .await
                    .ctx(|| format!("unpause {}", c.id))?;
                c.update(|r| r.state.status = Status::Running)?;
                self.emit_container("unpause", &c, HashMap::new());
                Ok(())
            }
            (true, Status::Paused) => Err(EngineError::Conflict(format!(
                "Container {} is already paused",
                c.id
            ))),
            (false, Status::Running) => Err(EngineError::Conflict(format!(
                "Container {} is not paused",
                c.id
            ))),
            _ => Err(EngineError::NotRunning(c.id.clone())),
        }
    }

    pub(crate) async fn do_remove(
        &self,
        key: &str,
        force: bool,
        remove_volumes: bool,
    ) -> Result<()> {
        let c = self.find(key)?;
        let _op = c.op.lock().await;
        let rec = c.rec();
        if rec.state.status.is_alive() {
            if !force {
                if rec.state.status == Status::Paused {
                    return Err(EngineError::Conflict(format!(
                        "cannot remove container \"{}\": container is paused and must be unpaused first",
                        rec.name
                    )));
                }
                return Err(EngineError::RemoveRunning(c.id.clone()));
            }
            let exits = c.life.borrow().exits;
            c.update(|r| r.manually_stopped = true)?;
            self.emit_container(
                "kill",
                &c,
                HashMap::from([("signal".to_string(), SIGKILL.to_string())]),
            );
            let client = c.shim();
            if rec.state.status == Status::Paused {
                let _ = client.resume().await;
            }
            let _ = client.kill(SIGKILL, true).await;
            if !wait_exit(&c, exits, Some(KILL_GRACE)).await {
                return Err(EngineError::Conflict(format!(
                    "could not kill running container {}, cannot remove",
                    c.id
                )));
            }
        }
        self.discard_prepared(&c).await;
        self.finish_remove(&c, remove_volumes);
        Ok(())
    }

    /// Keeps the kernel's cgroup-migration lock cheap until a start that is coming has
    /// joined its cgroups (see `cgroups::prime_migration`): the first migration after an
    /// idle spell waits out an RCU grace period, and the lock stays cheap for only about a
    /// grace period after each one, so a single priming at `/_ping` had often expired by the
    /// time the runtime joined the container's cgroups (the CLI's own time, the create, the
    /// rootfs and the network lie in between: 5-13 ms). One blocking thread re-primes every
    /// [`PRIME_EVERY`] until [`PRIME_HOLD`] after the last call. Called when a start is
    /// coming: `/_ping`, create, start, and right before the runtime's create.
    pub(crate) fn prime_cgroup_migration(&self) {
        let Some(engine) = self.arc() else { return };
        {
            let mut p = engine.priming.lock().unwrap_or_else(|e| e.into_inner());
            p.until = Some(Instant::now() + PRIME_HOLD);
            if p.running {
                return;
            }
            p.running = true;
        }
        tokio::task::spawn_blocking(move || {
            let primed = skiff_runtime::cgroups::MigrationPrimer::new().and_then(|primer| loop {
                primer.prime()?;
                if !engine.keep_priming() {
                    return Ok(());
                }
            });
            if let Err(e) = primed {
                tracing::debug!(error = %e, "cannot prime cgroup migrations");
                engine
                    .priming
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .running = false;
            }
        });
    }

    /// The primer's pause: sleeps until its next priming and returns true, or returns false
    /// (the primer stops) once [`PRIME_HOLD`] has passed since the last call for one.
    fn keep_priming(&self) -> bool {
        let mut p = self.priming.lock().unwrap_or_else(|e| e.into_inner());
        let left = p.until.map_or(Duration::ZERO, |u| {
            u.saturating_duration_since(Instant::now())
        });
        if left.is_zero() || *self.shutdown.borrow() {
            p.running = false;
            return false;
        }
        drop(p);
        std::thread::sleep(PRIME_EVERY.min(left));
        true
    }

    /// The spare shim, if one is waiting.
    pub(crate) fn take_spare(&self) -> Option<shim::Spare> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Starts a spare shim in the background unless one waits already or the engine stops.
    /// It starts at the background's low priority and returns to normal when handed a
    /// container, where the daemon may raise priorities; elsewhere it starts at normal
    /// priority.
    pub(crate) fn refill_spare(&self) {
        if *self.shutdown.borrow() {
            return;
        }
        let Some(engine) = self.arc() else { return };
        let refill = move || {
            if engine
                .spare
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
            {
                return;
            }
            match shim::Spare::start(&engine.cfg.exe) {
                Ok(spare) if !*engine.shutdown.borrow() => {
                    let mut slot = engine.spare.lock().unwrap_or_else(|e| e.into_inner());
                    if slot.is_none() {
                        *slot = Some(spare);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot start a spare shim"),
            }
        };
        if self.background.children_can_renice() {
            self.background.run(refill);
        } else {
            tokio::task::spawn_blocking(refill);
        }
    }

    /// Forgets a stopped container: registry, record, volumes; then mounts, cgroups and
    /// directories in the background.
    pub(crate) fn finish_remove(&self, c: &Arc<Container>, remove_volumes: bool) {
        let rec = c.rec();
        {
            let mut reg = self.registry();
            reg.remove(&c.id);
            reg.release(&rec.name);
        }
        self.forget_execs(&c.id);
        c.pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
        // The record goes now; mounts, cgroups and directories right after, off this path
        // (`run --rm` waits for the removal). A daemon stop in between leaves directories
        // without a record, which the next start sweeps.
        if let Err(e) = crate::store::ContainerRecord::delete(&c.dir) {
            tracing::warn!(id = %c.id, error = %e, "removing the container record");
        }
        let gone = c.clone();
        self.background.run(move || super::cleanup::release(&gone));
        if self.networking.net.sandbox(&c.id).is_some() {
            // Normally released at its exit already.
            if let Some(engine) = self.arc() {
                let id = c.id.clone();
                tokio::spawn(async move { engine.network_down(&id).await });
            }
        }
        if remove_volumes {
            let anonymous: Vec<String> = rec
                .mounts
                .iter()
                .filter(|m| m.anonymous)
                .map(|m| m.name.clone())
                .collect();
            self.remove_anonymous_volumes(&anonymous);
        }
        self.emit_container_rec("destroy", &rec, HashMap::new());
        c.life.send_modify(|l| {
            l.removed = true;
            l.running = false;
        });
        tracing::info!(id = %c.id, "container removed");
    }

    pub(crate) async fn do_rename(&self, key: &str, new_name: &str) -> Result<()> {
        let c = self.find(key)?;
        let new = crate::names::normalize(new_name)?;
        let old = c.rec().name;
        if old == new {
            return Err(EngineError::invalid(
                "Renaming a container with the same name as its current name",
            ));
        }
        {
            let mut reg = self.registry();
            reg.reserve(&new, &c.id)?;
            reg.release(&old);
        }
        c.update(|r| r.name = new.clone())?;
        // A prepared network carries the old name in DNS.
        self.discard_prepared(&c).await;
        self.emit_container("rename", &c, HashMap::from([("oldName".to_string(), old)]));
        Ok(())
    }

    pub(crate) async fn do_wait(
        &self,
        key: &str,
        condition: WaitCondition,
    ) -> Result<BoxFuture<'static, ContainerWaitResponse>> {
        let c = self.find(key)?;
        let mut rx = c.life.subscribe();
        let now: Life = rx.borrow().clone();
        Ok(async move {
            let response = |l: &Life| ContainerWaitResponse {
                status_code: l.exit_code,
                error: l
                    .error
                    .clone()
                    .filter(|e| !e.is_empty())
                    .map(|m| ContainerWaitExitError { message: Some(m) }),
            };
            if condition == WaitCondition::NotRunning && !now.running {
                return response(&now);
            }
            let result = rx
                .wait_for(|l| match condition {
                    WaitCondition::Removed => l.removed,
                    _ => l.exits > now.exits || l.removed,
                })
                .await
                .map(|l| l.clone());
            match result {
                Ok(l) => response(&l),
                Err(_) => response(&now),
            }
        }
        .boxed())
    }
}

/// Where a preparation's network is being made.
enum NetworkTask {
    /// On a task of its own, beside the rootfs.
    Spawned(tokio::task::JoinHandle<Result<(spec::NetworkMode, PathBuf, ContainerRecord)>>),
    /// Here, after the rootfs (the engine is being dropped).
    Here,
}

/// Whether a start failed because an address it asked for (`--ip`) is taken.
fn is_address_taken(e: &EngineError) -> bool {
    match e {
        EngineError::NetworkSetup(inner) => is_address_taken(inner),
        EngineError::Net(skiff_net::NetError::Forbidden(m)) => m == skiff_net::ADDRESS_IN_USE,
        _ => false,
    }
}
