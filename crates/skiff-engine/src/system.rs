//! `docker version` and `docker info`.

use std::collections::HashMap;

use bollard_stubs::models::{
    PluginsInfo, Runtime, SystemInfo, SystemInfoCgroupDriverEnum, SystemInfoCgroupVersionEnum,
    SystemVersion, SystemVersionComponents, SystemVersionPlatform,
};

use skiff_runtime::backend;

use crate::store::Status;
use crate::Engine;

/// Newest and oldest Docker Engine API versions served.
pub(crate) const API_VERSION: &str = "1.50";
pub(crate) const MIN_API_VERSION: &str = "1.24";
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn os_name() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total() -> i64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// `2` on a pure cgroup v2 host, `1` otherwise (including hybrid hosts).
fn cgroup_version() -> SystemInfoCgroupVersionEnum {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        SystemInfoCgroupVersionEnum::_2
    } else {
        SystemInfoCgroupVersionEnum::_1
    }
}

/// The architecture as Go (and so Docker) names it.
fn go_arch() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        a => a.into(),
    }
}

fn runtime_path(name: &str) -> String {
    match name {
        "embedded" => "skiff (libcontainer)".into(),
        other => other.into(),
    }
}

impl Engine {
    pub(crate) fn do_version(&self) -> SystemVersion {
        let details = HashMap::from([
            ("ApiVersion".to_string(), API_VERSION.to_string()),
            ("MinAPIVersion".to_string(), MIN_API_VERSION.to_string()),
            ("Os".to_string(), "linux".to_string()),
            ("Arch".to_string(), go_arch()),
        ]);
        SystemVersion {
            platform: Some(SystemVersionPlatform {
                name: "skiff".into(),
            }),
            components: Some(vec![SystemVersionComponents {
                name: "Engine".into(),
                version: VERSION.into(),
                details: Some(details),
            }]),
            version: Some(VERSION.into()),
            api_version: Some(API_VERSION.into()),
            min_api_version: Some(MIN_API_VERSION.into()),
            git_commit: Some(String::new()),
            go_version: Some(String::new()),
            os: Some("linux".into()),
            arch: Some(go_arch()),
            kernel_version: Some(kernel_version()),
            experimental: Some(false),
            build_time: Some(String::new()),
        }
    }

    pub(crate) async fn do_info(&self) -> SystemInfo {
        let statuses: Vec<Status> = self
            .all_containers()
            .iter()
            .map(|c| c.rec().state.status)
            .collect();
        let count = |f: fn(&Status) -> bool| statuses.iter().filter(|s| f(s)).count() as i64;
        let images = self.images.count() as i64;
        let runtimes = backend::NAMES
            .iter()
            .map(|r| {
                (
                    r.to_string(),
                    Runtime {
                        path: Some(runtime_path(r)),
                        ..Default::default()
                    },
                )
            })
            .collect();
        SystemInfo {
            id: Some(self.daemon_id()),
            containers: Some(statuses.len() as i64),
            containers_running: Some(count(|s| *s == Status::Running)),
            containers_paused: Some(count(|s| *s == Status::Paused)),
            containers_stopped: Some(count(|s| !s.is_alive())),
            images: Some(images),
            driver: Some("overlay2".into()),
            driver_status: Some(Vec::new()),
            docker_root_dir: Some(self.cfg.root.to_string_lossy().into_owned()),
            memory_limit: Some(true),
            swap_limit: Some(true),
            cpu_cfs_period: Some(true),
            cpu_cfs_quota: Some(true),
            cpu_shares: Some(true),
            cpu_set: Some(true),
            pids_limit: Some(true),
            oom_kill_disable: Some(false),
            debug: Some(false),
            system_time: Some(
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ),
            logging_driver: Some("json-file".into()),
            cgroup_driver: Some(SystemInfoCgroupDriverEnum::CGROUPFS),
            cgroup_version: Some(cgroup_version()),
            kernel_version: Some(kernel_version()),
            operating_system: Some(os_name()),
            os_type: Some("linux".into()),
            architecture: Some(std::env::consts::ARCH.into()),
            ncpu: Some(
                std::thread::available_parallelism()
                    .map(|n| n.get() as i64)
                    .unwrap_or(1),
            ),
            mem_total: Some(mem_total()),
            name: Some(
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            labels: Some(Vec::new()),
            server_version: Some(VERSION.into()),
            runtimes: Some(runtimes),
            default_runtime: Some(self.cfg.default_runtime.clone()),
            live_restore_enabled: Some(true),
            init_binary: Some("docker-init".into()),
            security_options: Some(vec!["name=seccomp,profile=builtin".into()]),
            // The drivers skiff has, where dockerd lists its built-in plugins.
            plugins: Some(PluginsInfo {
                volume: Some(vec!["local".into()]),
                network: Some(vec!["bridge".into(), "host".into(), "null".into()]),
                authorization: None,
                log: Some(vec!["json-file".into(), "local".into()]),
            }),
            registry_config: Some(self.registry_service_config()),
            warnings: Some(Vec::new()),
            ..Default::default()
        }
    }

    /// A stable id for this engine root, created on first use.
    fn daemon_id(&self) -> String {
        let path = self.cfg.root.join("engine-id");
        if let Ok(id) = std::fs::read_to_string(&path) {
            return id.trim().to_string();
        }
        let id = skiff_core::ids::random_id();
        if let Err(e) = std::fs::write(&path, &id) {
            tracing::warn!(error = %e, "cannot persist the engine id");
        }
        id
    }
}
