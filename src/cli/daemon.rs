//! `skiff daemon`: opens the engine on its directories and serves the Docker Engine API on a
//! unix socket until SIGTERM or SIGINT. Containers keep running across a daemon stop.

use std::path::PathBuf;

use anyhow::Context;
use skiff_core::paths::{DEFAULT_ENGINE_ROOT, DEFAULT_ENGINE_SOCKET, DEFAULT_ENGINE_STATE};
use skiff_engine::registry::RegistryConfig;
use skiff_engine::{Engine, EngineConfig};
use tokio::signal::unix::{signal, SignalKind};

/// Options of `skiff daemon`.
#[derive(clap::Args)]
pub struct Args {
    /// Persistent state: images, container records, volumes
    #[arg(long, default_value = DEFAULT_ENGINE_ROOT)]
    root: PathBuf,
    /// Runtime state: shim sockets and container state
    #[arg(long, default_value = DEFAULT_ENGINE_STATE)]
    state: PathBuf,
    /// Unix socket to serve the Docker Engine API on
    #[arg(long, default_value = DEFAULT_ENGINE_SOCKET)]
    socket: PathBuf,
    /// Default OCI runtime of containers that do not ask for one
    #[arg(long, default_value = "embedded", value_parser = clap::builder::PossibleValuesParser::new(skiff_runtime::backend::NAMES))]
    runtime: String,
    /// Cgroup under which containers' cgroups are created, in every hierarchy
    #[arg(long, default_value = skiff_core::paths::CGROUP_PARENT)]
    cgroup_parent: String,
    /// A registry reached over plain HTTP (`host[:port]` or a CIDR); repeatable. Loopback
    /// registries (`localhost`, 127.0.0.0/8, ::1) always are
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    insecure_registries: Vec<String>,
    /// A Docker Hub mirror (`http://host:port` or `https://…`), tried in order before Docker
    /// Hub; repeatable
    #[arg(long = "registry-mirror", value_name = "URL")]
    registry_mirrors: Vec<String>,
    /// Layers downloaded at once per pull
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_downloads: u16,
    /// Layers uploaded at once per push
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_uploads: u16,
    /// Seconds a client has to send each request header; idle connections are closed after
    /// it (tests set short ones)
    #[arg(long, default_value_t = 32, hide = true)]
    request_header_deadline: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the skiff binary")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(async move {
        let config = EngineConfig {
            root: args.root,
            state: args.state,
            default_runtime: args.runtime,
            exe,
            cgroup_parent: args.cgroup_parent,
            registry: RegistryConfig {
                insecure_registries: args.insecure_registries,
                mirrors: args.registry_mirrors,
                max_concurrent_downloads: args.max_concurrent_downloads.into(),
                max_concurrent_uploads: args.max_concurrent_uploads.into(),
                ..RegistryConfig::default()
            },
        };
        let engine = Engine::open(config).await.context("opening the engine")?;
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
            }
        };
        let limits = super::server::deadlines(args.request_header_deadline);
        skiff_docker_api::serve_with(engine.clone(), &args.socket, limits, shutdown).await?;
        engine.shutdown().await;
        let _ = std::fs::remove_file(&args.socket);
        tracing::info!("stopped; containers keep running");
        Ok(())
    })
}
