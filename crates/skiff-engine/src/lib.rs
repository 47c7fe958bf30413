//! The container engine: what dockerd does, minus HTTP. Containers (create, start, stop, logs,
//! exec, attach, cp, stats, top), their records on disk, restart policies, re-adoption of
//! running containers after a daemon restart, volumes, images (delegated to
//! [`skiff_image::ImageStore`]), Docker's networks (on [`skiff_net`], which owns every host
//! network object; see `docs/adr/0015-docker-networks-in-the-engine.md`) and the event
//! stream.
//!
//! Inputs and outputs are Docker's own wire models from `bollard-stubs`, so the HTTP layer
//! (skiff-docker-api) only (de)serialises. This crate must not speak HTTP, and it never forks
//! containers itself: every container runs under a `skiff shim` process
//! ([`skiff_runtime::shim`]).

mod background;
mod build;
mod containers;
mod disk_usage;
mod distribution;
mod error;
mod events;
mod filters;
mod images;
mod names;
mod networks;
mod options;
mod restart;
mod store;
mod system;
mod volumes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::watch;

use crate::containers::{Container, Registry};
use crate::error::IoContext;
use crate::events::EventBus;
use crate::store::ContainerRecord;

pub use bollard_stubs::models;
pub use build::{BuildMessage, BuildRequest};
pub use disk_usage::DiskUsage;
pub use error::{EngineError, Result};
pub use filters::Filters;
pub use networks::{DefaultBridge, NetworkConfig};
pub use options::*;
/// The registry client's types the engine's pull, push and login take and return.
pub use skiff_image::registry;
pub use skiff_image::ImageRef;
pub use skiff_net;

use models::*;

/// Where and how the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Persistent state: images, container records, volumes (`/var/lib/skiff`).
    pub root: PathBuf,
    /// Runtime state: shim sockets, runtime state, mounts (`/run/skiff`).
    pub state: PathBuf,
    /// `embedded`, `runc` or `crun`: used when a container does not ask for `--runtime`.
    pub default_runtime: String,
    /// The skiff binary, re-executed as `skiff shim` for every container.
    pub exe: PathBuf,
    /// The cgroup every container's cgroup is created under (`skiff`, like dockerd's
    /// `/docker`) unless the container names its own (`--cgroup-parent`). Left in place
    /// when containers are removed: removing it would race with containers being created.
    pub cgroup_parent: String,
    /// Networking: skiff-net's state, table and names, the default bridge, DNS defaults.
    pub network: NetworkConfig,
    /// Registries: insecure ones, mirrors, concurrency and size limits of pulls and pushes.
    pub registry: registry::RegistryConfig,
}

/// A body coming in (load, import, archive put) or going out (save, archive get).
pub type ByteStream = Pin<Box<dyn futures::Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A [`ByteStream`] read from a blocking thread (tar and the image store read `std::io`).
/// Must be created on the runtime.
type BlockingReader = tokio_util::io::SyncIoBridge<tokio_util::io::StreamReader<ByteStream, Bytes>>;

fn blocking_reader(stream: ByteStream) -> BlockingReader {
    tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream))
}

/// Hands the heap memory that a large request body churned through back to the kernel, in
/// the background. glibc keeps freed memory in its arenas up to a trim threshold that grows
/// with the largest buffers it has seen, so an idle daemon kept an image import's body chunks
/// resident (~0.35 MiB of its ~1.4 MiB of anonymous memory after the busybox import of
/// `bench/engine.sh`).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::task::spawn_blocking(|| {
        // SAFETY: malloc_trim only walks the allocator's own arenas under their locks and
        // returns their free pages to the kernel; no pointer is passed.
        unsafe { libc::malloc_trim(0) };
    });
}

/// Runs `produce` on a blocking thread and streams what it writes. An error it returns ends
/// the stream with that error, so the reader sees a failed body rather than a short one.
/// Must be called on the runtime.
fn blocking_writer<F>(produce: F) -> ByteStream
where
    F: FnOnce(&mut (dyn std::io::Write + Send)) -> std::io::Result<()> + Send + 'static,
{
    use futures::StreamExt;
    // A duplex, not a simplex: dropping either end closes it, so the producer's writes fail
    // once the reader is gone (a client that hung up) instead of blocking forever.
    let (reader, writer) = tokio::io::duplex(64 * 1024);
    let (failed, failure) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let mut writer = tokio_util::io::SyncIoBridge::new(writer);
        if let Err(e) = produce(&mut writer) {
            // Sent before the writer is dropped: the reader sees it right after the data.
            let _ = failed.send(e);
        }
    });
    let failure =
        futures::stream::once(failure).filter_map(|r| std::future::ready(r.ok().map(Err)));
    Box::pin(tokio_util::io::ReaderStream::new(reader).chain(failure))
}

/// The engine. Shared as `Arc<Engine>`; every method may be called concurrently.
pub struct Engine {
    cfg: EngineConfig,
    me: Weak<Engine>,
    images: Arc<skiff_image::ImageStore>,
    /// The daemon's registry configuration, shared by every pull, push and login.
    registries: registry::Registries,
    volumes: volumes::Volumes,
    registry: Mutex<Registry>,
    execs: Mutex<HashMap<String, Arc<containers::exec::Exec>>>,
    events: EventBus,
    /// Set to true at shutdown: background tasks stop, containers keep running.
    shutdown: watch::Sender<bool>,
    /// A shim started ahead of the next container start (see `skiff_runtime::shim::Spare`).
    spare: Mutex<Option<skiff_runtime::shim::Spare>>,
    /// Keeps the kernel's cgroup-migration lock cheap while starts are coming (see
    /// `Engine::prime_cgroup_migration`).
    priming: Mutex<containers::Priming>,
    /// Cleanup and spare shims, at low priority.
    background: background::Background,
    /// skiff-net and Docker's view of it.
    networking: networks::Networking,
    /// `docker build`: the step cache and the context limit.
    build: build::BuildState,
    /// Host directories holding other containers' mounts that shims leave out of their mount
    /// namespace (see [`Engine::set_mount_hubs`]).
    mount_hubs: std::sync::RwLock<Vec<std::path::PathBuf>>,
}

impl Engine {
    /// Opens the engine on its directories: re-reads every container record, re-adopts the
    /// shims of running containers, records exits that happened while the daemon was down and
    /// applies restart policies.
    #[tracing::instrument(skip_all, fields(root = %cfg.root.display()))]
    pub async fn open(cfg: EngineConfig) -> Result<Arc<Engine>> {
        if !skiff_runtime::backend::NAMES.contains(&cfg.default_runtime.as_str()) {
            return Err(EngineError::invalid(format!(
                "Unknown runtime specified {}",
                cfg.default_runtime
            )));
        }
        for dir in [cfg.root.join("containers"), cfg.state.join("c")] {
            std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        }
        containers::rootfs::ensure_init_layer(&containers::rootfs::init_layer_of(&cfg.root))?;
        let images = Arc::new(skiff_image::ImageStore::open(&cfg.root.join("image"))?);
        let registries = registry::Registries::new(cfg.registry.clone())?;
        let mut registry = Registry::default();
        let records = ContainerRecord::load_all(&cfg.root.join("containers"))?;
        containers::cleanup::sweep(&cfg, &records.iter().map(|r| r.id.clone()).collect());
        for rec in records {
            let c = Arc::new(Container::new(rec, &cfg.root, &cfg.state));
            let name = c.rec().name;
            if let Err(e) = registry.reserve(&name, &c.id) {
                tracing::warn!(id = %c.id, error = %e, "container record with a duplicate name");
            }
            registry.insert(c);
        }
        // Containers recorded running keep their network; everything of the others goes.
        let live: Vec<String> = registry
            .all()
            .iter()
            .filter(|c| c.rec().state.status.is_alive())
            .map(|c| c.id.clone())
            .collect();
        let networking = networks::Networking::open(cfg.network.clone(), &live).await?;
        let background =
            background::Background::start().ctx(|| "start the background thread".into())?;
        let cfg_root = cfg.root.clone();
        let engine = Arc::new_cyclic(|me| Engine {
            volumes: volumes::Volumes::new(&cfg.root),
            cfg,
            me: me.clone(),
            images,
            registries,
            registry: Mutex::new(registry),
            execs: Mutex::new(HashMap::new()),
            events: EventBus::new(),
            shutdown: watch::channel(false).0,
            spare: Mutex::new(None),
            priming: Mutex::new(containers::Priming::default()),
            background,
            networking,
            build: build::BuildState::open(&cfg_root),
            mount_hubs: Default::default(),
        });
        engine.restore_volume_holders();
        engine.adopt().await;
        engine.refill_spare();
        Ok(engine)
    }

    /// Stops background work; running containers keep running under their shims.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        // Dropped: its pipe closes and it exits.
        self.take_spare();
        self.discard_all_prepared().await;
    }

    /// The configuration the engine was opened with.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Directories that are mounts of their own holding many mounts of which one container
    /// needs a few (a node agent's pod sandboxes): shims started from now on leave them out
    /// of their mount namespace except for what their container's spec names, so that the
    /// runtime's reads of the mount table do not grow with every pod on the node.
    pub fn set_mount_hubs(&self, hubs: Vec<std::path::PathBuf>) {
        *self.mount_hubs.write().unwrap_or_else(|e| e.into_inner()) = hubs;
    }

    fn mount_hubs(&self) -> Vec<std::path::PathBuf> {
        self.mount_hubs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    // ---- system ----

    /// `/_ping`, which every docker CLI command sends first: a `run` follows in a few
    /// milliseconds, so the kernel's wait that the runtime's first cgroup join after an idle
    /// spell pays (an RCU grace period, 7-36 ms measured on a loaded 2-vCPU VM; joins within
    /// ~10 ms of the last one are free) begins now, off the request path.
    pub fn ping(&self) {
        self.prime_cgroup_migration();
    }

    /// `GET /version`.
    pub fn version(&self) -> SystemVersion {
        self.do_version()
    }

    /// `GET /info`.
    pub async fn info(&self) -> SystemInfo {
        self.do_info().await
    }

    /// `GET /system/df`.
    pub async fn system_df(&self) -> Result<DiskUsage> {
        self.do_disk_usage().await
    }

    /// `GET /events`: remembered events since `since`, then live ones until `until`.
    pub fn events(&self, opts: EventsOptions) -> BoxStream<'static, EventMessage> {
        self.events.subscribe(opts)
    }

    // ---- images ----

    /// `GET /images/json`. Filters: `dangling`, `label`, `reference`, `before`, `since`.
    pub async fn image_list(&self, all: bool, filters: &Filters) -> Result<Vec<ImageSummary>> {
        self.do_image_list(all, filters).await
    }

    /// `GET /images/{name}/json`.
    #[tracing::instrument(level = "debug", skip_all, fields(image = %name))]
    pub async fn image_inspect(&self, name: &str) -> Result<ImageInspect> {
        self.do_image_inspect(name).await
    }

    /// `GET /images/{name}/history`.
    #[tracing::instrument(level = "debug", skip_all, fields(image = %name))]
    pub async fn image_history(&self, name: &str) -> Result<Vec<ImageHistoryResponseItem>> {
        self.do_image_history(name).await
    }

    /// `POST /images/load`: returns the loaded names (or ids of untagged images).
    pub async fn image_load(&self, archive: ByteStream) -> Result<Vec<String>> {
        self.do_image_load(archive).await
    }

    /// `GET /images/get`: the archive as a stream. Unknown names fail before streaming.
    pub async fn image_save(&self, names: &[String]) -> Result<ByteStream> {
        self.do_image_save(names).await
    }

    /// `POST /images/create?fromSrc=-`: returns the new image id.
    pub async fn image_import(
        &self,
        rootfs_tar: ByteStream,
        reference: Option<&str>,
        changes: &[String],
        message: Option<&str>,
    ) -> Result<String> {
        self.do_image_import(rootfs_tar, reference, changes, message)
            .await
    }

    /// `POST /images/{name}/tag?repo=&tag=` (tag defaults to `latest`).
    #[tracing::instrument(level = "debug", skip_all, fields(image = %source))]
    pub async fn image_tag(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        self.do_image_tag(source, repo, tag).await
    }

    /// `DELETE /images/{name}`.
    #[tracing::instrument(level = "debug", skip_all, fields(image = %name))]
    pub async fn image_remove(
        &self,
        name: &str,
        force: bool,
        no_prune: bool,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        self.do_image_remove(name, force, no_prune).await
    }

    /// `POST /images/prune`; filter `dangling=false` prunes every unused image.
    pub async fn image_prune(&self, filters: &Filters) -> Result<ImagePruneResponse> {
        self.do_image_prune(filters).await
    }

    // ---- build ----

    /// `POST /build`: builds the context tar's Dockerfile; the stream reports progress and
    /// ends with the image id (or an error). Bad tags fail before anything is read.
    pub fn build(
        &self,
        request: BuildRequest,
        context: ByteStream,
    ) -> Result<BoxStream<'static, Result<BuildMessage>>> {
        self.do_build(request, context)
    }

    /// `POST /build/prune`: forgets the build cache; returns how many steps it held.
    pub fn build_prune(&self) -> Result<usize> {
        self.do_build_prune()
    }

    // ---- containers ----

    /// `POST /containers/create?name=`. `platform` is accepted and ignored (one platform).
    pub async fn container_create(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
        platform: Option<&str>,
    ) -> Result<ContainerCreateResponse> {
        let _ = platform;
        self.do_create(name, body).await
    }

    /// `POST /containers/{id}/start`. `Ok(false)` = it was already running (HTTP 304).
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_start(&self, id: &str) -> Result<bool> {
        self.do_start(id).await
    }

    /// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after `timeout` seconds
    /// (default: the container's StopTimeout or 10; -1 = wait forever). `Ok(false)` = it
    /// was not running (HTTP 304).
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_stop(
        &self,
        id: &str,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<bool> {
        self.do_stop(id, signal, timeout).await
    }

    /// `POST /containers/{id}/kill?signal=` (default SIGKILL; names with or without SIG, or
    /// numbers).
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_kill(&self, id: &str, signal: Option<&str>) -> Result<()> {
        self.do_kill(id, signal).await
    }

    /// `POST /containers/{id}/restart`.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_restart(
        &self,
        id: &str,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<()> {
        self.do_restart(id, signal, timeout).await
    }

    /// `POST /containers/{id}/pause`.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_pause(&self, id: &str) -> Result<()> {
        self.do_pause(id, true).await
    }

    /// `POST /containers/{id}/unpause`.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_unpause(&self, id: &str) -> Result<()> {
        self.do_pause(id, false).await
    }

    /// `DELETE /containers/{id}?force=&v=`.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_remove(
        &self,
        id: &str,
        force: bool,
        remove_volumes: bool,
    ) -> Result<()> {
        self.do_remove(id, force, remove_volumes).await
    }

    /// `GET /containers/{id}/changes` (`docker diff`).
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_changes(&self, id: &str) -> Result<Vec<FilesystemChange>> {
        self.do_changes(id).await
    }

    /// `POST /containers/{id}/update`: new limits (applied at once while it runs) and
    /// restart policy.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_update(
        &self,
        id: &str,
        body: &ContainerUpdateBody,
    ) -> Result<ContainerUpdateResponse> {
        self.do_update(id, body).await
    }

    /// `POST /containers/{id}/rename?name=`.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_rename(&self, id: &str, new_name: &str) -> Result<()> {
        self.do_rename(id, new_name).await
    }

    /// `POST /containers/{id}/wait?condition=`. Errors (unknown container) come back at once;
    /// the returned future resolves when the condition is met, so the API can send its 200
    /// headers first and the body later.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_wait(
        &self,
        id: &str,
        condition: WaitCondition,
    ) -> Result<BoxFuture<'static, ContainerWaitResponse>> {
        self.do_wait(id, condition).await
    }

    /// `GET /containers/{id}/json?size=`.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_inspect(
        &self,
        id: &str,
        size: bool,
    ) -> Result<ContainerInspectResponse> {
        self.do_inspect(id, size).await
    }

    /// `GET /containers/json`. Filters: `id`, `name`, `label`, `status`, `exited`,
    /// `ancestor`, `before`, `since`, `volume`, `network`, `health`, `is-task`.
    pub async fn container_list(&self, opts: &ListOptions) -> Result<Vec<ContainerSummary>> {
        self.do_list(opts).await
    }

    /// `GET /containers/{id}/top?ps_args=`.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_top(
        &self,
        id: &str,
        ps_args: Option<&str>,
    ) -> Result<ContainerTopResponse> {
        self.do_top(id, ps_args).await
    }

    /// `GET /containers/{id}/stats?stream=&one-shot=`: with `stream` one sample a second
    /// until the container stops; without, one sample (with precpu filled unless `one_shot`).
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_stats(
        &self,
        id: &str,
        stream: bool,
        one_shot: bool,
    ) -> Result<BoxStream<'static, ContainerStatsResponse>> {
        self.do_stats(id, stream, one_shot).await
    }

    /// `GET /containers/{id}/logs`.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_logs(&self, id: &str, opts: LogOptions) -> Result<Logs> {
        self.do_logs(id, opts).await
    }

    /// `POST /containers/{id}/attach`. Works before start (the CLI attaches, then starts):
    /// the stream connects when the container starts, before its process runs.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_attach(&self, id: &str, opts: AttachOptions) -> Result<Attached> {
        self.do_attach(id, opts).await
    }

    /// `POST /containers/{id}/resize?h=&w=`.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        self.do_resize(id, height, width).await
    }

    /// `POST /containers/prune`. Filters: `until`, `label`.
    pub async fn container_prune(&self, filters: &Filters) -> Result<ContainerPruneResponse> {
        self.do_container_prune(filters).await
    }

    /// `HEAD /containers/{id}/archive?path=`.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_archive_stat(&self, id: &str, path: &str) -> Result<PathStat> {
        self.do_archive_stat(id, path).await
    }

    /// `GET /containers/{id}/archive?path=`: the stat and a tar of the path.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_archive_get(
        &self,
        id: &str,
        path: &str,
    ) -> Result<(PathStat, ByteStream)> {
        self.do_archive_get(id, path).await
    }

    /// `PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=`: extracts a tar into the
    /// directory `path`; entries escaping the container's root are refused.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_archive_put(
        &self,
        id: &str,
        path: &str,
        tar: ByteStream,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<()> {
        self.do_archive_put(id, path, tar, no_overwrite_dir_non_dir)
            .await
    }

    /// `POST /commit?container=`: a new image from the container's changes; returns its id.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_commit(&self, id: &str, opts: CommitOptions) -> Result<String> {
        self.do_commit(id, opts).await
    }

    /// `GET /containers/{id}/export`: a tar of the container's filesystem.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn container_export(&self, id: &str) -> Result<ByteStream> {
        self.do_export(id).await
    }

    // ---- exec ----

    /// `POST /containers/{id}/exec`: returns the exec id.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %id))]
    pub async fn exec_create(&self, id: &str, config: ExecConfig) -> Result<String> {
        self.do_exec_create(id, config).await
    }

    /// `POST /exec/{id}/start`: `None` when detached. The stream ends only once the exit
    /// code is recorded, so `exec_inspect` right after sees it.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %exec_id))]
    pub async fn exec_start(
        &self,
        exec_id: &str,
        start: &ExecStartConfig,
    ) -> Result<Option<Attached>> {
        self.do_exec_start(exec_id, start).await
    }

    /// `GET /exec/{id}/json`.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %exec_id))]
    pub async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspectResponse> {
        self.do_exec_inspect(exec_id).await
    }

    /// `POST /exec/{id}/resize?h=&w=`.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %exec_id))]
    pub async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        self.do_exec_resize(exec_id, height, width).await
    }

    // ---- networks ----

    /// `GET /networks`. Filters: `dangling`, `driver`, `id`, `label`, `name`, `scope`,
    /// `type`.
    pub async fn network_list(&self, filters: &Filters) -> Result<Vec<NetworkInspect>> {
        self.do_network_list(filters).await
    }

    /// `GET /networks/{id}`.
    #[tracing::instrument(level = "debug", skip_all, fields(network = %id))]
    pub async fn network_inspect(&self, id: &str) -> Result<NetworkInspect> {
        self.do_network_inspect(id).await
    }

    /// `POST /networks/create`.
    #[tracing::instrument(level = "debug", skip_all, fields(network = %req.name))]
    pub async fn network_create(&self, req: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        self.do_network_create(req).await
    }

    /// `DELETE /networks/{id}`.
    #[tracing::instrument(level = "debug", skip_all, fields(network = %id))]
    pub async fn network_remove(&self, id: &str) -> Result<()> {
        self.do_network_remove(id).await
    }

    /// `POST /networks/prune`. Filters: `until`, `label`, `label!`.
    pub async fn network_prune(&self, filters: &Filters) -> Result<NetworkPruneResponse> {
        self.do_network_prune(filters).await
    }

    /// `POST /networks/{id}/connect`: also while the container runs.
    #[tracing::instrument(level = "debug", skip_all, fields(network = %id))]
    pub async fn network_connect(&self, id: &str, req: NetworkConnectRequest) -> Result<()> {
        self.do_network_connect(id, req).await
    }

    /// `POST /networks/{id}/disconnect`: also while the container runs.
    #[tracing::instrument(level = "debug", skip_all, fields(network = %id))]
    pub async fn network_disconnect(&self, id: &str, req: NetworkDisconnectRequest) -> Result<()> {
        self.do_network_disconnect(id, req).await
    }

    // ---- volumes ----

    /// `GET /volumes`. Filters: `name`, `label`, `dangling`.
    pub async fn volume_list(&self, filters: &Filters) -> Result<Vec<Volume>> {
        self.do_volume_list(filters).await
    }

    /// `POST /volumes/create` (a random name when none is given).
    pub async fn volume_create(&self, body: VolumeCreateRequest) -> Result<Volume> {
        self.do_volume_create(body).await
    }

    /// `GET /volumes/{name}`.
    #[tracing::instrument(level = "debug", skip_all, fields(volume = %name))]
    pub async fn volume_inspect(&self, name: &str) -> Result<Volume> {
        self.do_volume_inspect(name).await
    }

    /// `DELETE /volumes/{name}?force=`.
    #[tracing::instrument(level = "debug", skip_all, fields(volume = %name))]
    pub async fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        self.do_volume_remove(name, force).await
    }

    /// `POST /volumes/prune`: unused anonymous volumes (all unused with `all=true`).
    pub async fn volume_prune(&self, filters: &Filters) -> Result<VolumePruneResponse> {
        self.do_volume_prune(filters).await
    }

    // ---- internal helpers ----

    fn arc(&self) -> Option<Arc<Engine>> {
        self.me.upgrade()
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn find(&self, key: &str) -> Result<Arc<Container>> {
        self.registry().find(key)
    }

    fn all_containers(&self) -> Vec<Arc<Container>> {
        self.registry().all()
    }

    fn emit_container(&self, action: &str, c: &Container, extra: HashMap<String, String>) {
        self.emit_container_rec(action, &c.rec(), extra);
    }

    fn emit_container_rec(
        &self,
        action: &str,
        rec: &ContainerRecord,
        extra: HashMap<String, String>,
    ) {
        let mut attrs: HashMap<String, String> = rec.config.labels.clone().unwrap_or_default();
        attrs.insert("name".into(), rec.short_name().to_string());
        attrs.insert("image".into(), rec.image_name.clone());
        attrs.extend(extra);
        self.events
            .emit(EventMessageTypeEnum::CONTAINER, action, &rec.id, attrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_round_trip_through_blocking_threads() {
        let input: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"hel")),
            Ok(Bytes::from_static(b"lo")),
        ]));
        let mut reader = blocking_reader(input);
        let output = blocking_writer(move |writer| std::io::copy(&mut reader, writer).map(drop));
        let got: Vec<Bytes> = output.map(|r| r.unwrap()).collect().await;
        assert_eq!(got.concat(), b"hello");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_producer_fails_the_stream_after_its_data() {
        let output = blocking_writer(|writer| {
            std::io::Write::write_all(writer, b"partial")?;
            Err(std::io::Error::other("disk on fire"))
        });
        let got: Vec<std::io::Result<Bytes>> = output.collect().await;
        let (last, data) = got.split_last().unwrap();
        let data: Vec<u8> = data
            .iter()
            .flat_map(|b| b.as_ref().unwrap().to_vec())
            .collect();
        assert_eq!(data, b"partial");
        assert_eq!(last.as_ref().unwrap_err().to_string(), "disk on fire");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_producer_stops_when_the_reader_goes_away() {
        let (done, finished) = tokio::sync::oneshot::channel();
        let output = blocking_writer(move |writer| {
            let chunk = [0u8; 4096];
            let result = loop {
                if let Err(e) = std::io::Write::write_all(writer, &chunk) {
                    break e;
                }
            };
            let _ = done.send(result.kind());
            Ok(())
        });
        drop(output);
        assert_eq!(finished.await.unwrap(), std::io::ErrorKind::BrokenPipe);
    }
}
