//! Harness of the engine tests: temporary engine directories cleaned up even when a test
//! fails, a busybox test image, and small helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use skiff_engine::models::ContainerCreateBody;
use skiff_engine::{ByteStream, Engine, EngineConfig, LogOptions};

pub const IMAGE: &str = "skiff-test/busybox:latest";

/// Temporary engine directories; on drop kills what the test left running, unmounts and
/// removes cgroups, even when the test failed.
pub struct Dirs {
    pub root: tempfile::TempDir,
    pub state: tempfile::TempDir,
    /// This engine's own cgroup parent, removed with the directories.
    pub cgroup_parent: String,
    /// This engine's bridges, table and subnets; removed after everything else.
    pub slot: crate::netslot::NetSlot,
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Dirs {
    /// Fresh directories; panics with the reason when this host cannot run containers.
    pub fn new() -> Dirs {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "engine tests run containers and need root"
        );
        assert!(
            Path::new("/bin/busybox").exists(),
            "engine tests build their image from /bin/busybox: install busybox-static"
        );
        let tmp = |p: &str| tempfile::Builder::new().prefix(p).tempdir().unwrap();
        Dirs {
            root: tmp("skiff-eng-root"),
            state: tmp("skiff-eng-st"),
            cgroup_parent: format!(
                "skiff-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
            slot: crate::netslot::NetSlot::claim(),
        }
    }

    pub fn config(&self) -> EngineConfig {
        EngineConfig {
            root: self.root.path().to_path_buf(),
            state: self.state.path().to_path_buf(),
            default_runtime: "runc".into(),
            exe: PathBuf::from(env!("CARGO_BIN_EXE_skiff")),
            cgroup_parent: self.cgroup_parent.clone(),
            network: self
                .slot
                .network_config(self.root.path(), self.state.path()),
            registry: Default::default(),
        }
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let containers = self.root.path().join("containers");
        let ids: Vec<String> = std::fs::read_dir(&containers)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        for id in &ids {
            // The shim first: a shim that outlives the test would run the runtime's delete
            // after the directories are gone and recreate its root (`runtime/runc`) in /tmp.
            let state_dir = self.state.path().join("c").join(&id[..id.len().min(16)]);
            let shim = std::fs::read_to_string(skiff_runtime::shim::pid_path(&state_dir))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
                .filter(|pid| *pid > 0 && is_our_shim(*pid));
            if let Some(pid) = shim {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
            }
            let record = std::fs::read(containers.join(id).join("config.json")).unwrap_or_default();
            let pid = serde_json::from_slice::<serde_json::Value>(&record)
                .ok()
                .and_then(|v| v["state"]["pid"].as_i64())
                .unwrap_or(0);
            if pid > 0 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::SIGKILL,
                );
            }
            let rootfs = self
                .state
                .path()
                .join("c")
                .join(&id[..16])
                .join("bundle/rootfs");
            let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
        }
        for id in &ids {
            let deadline = Instant::now() + Duration::from_secs(10);
            while skiff_runtime::cgroups::remove(&format!("/{}/{id}", self.cgroup_parent)).is_err()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = skiff_runtime::cgroups::remove(&format!("/{}", self.cgroup_parent));
        // Sandboxes' network namespaces are bind mounts under the state dir.
        let netns = self.state.path().join("net").join("netns");
        for e in std::fs::read_dir(&netns).into_iter().flatten().flatten() {
            let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Whether `pid` is a shim of this test binary's skiff (a pid file left by a shim that was
/// killed could name a reused pid).
fn is_our_shim(pid: i32) -> bool {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let second_arg = cmdline.split(|b| *b == 0).nth(1);
    exe.as_deref() == Some(Path::new(env!("CARGO_BIN_EXE_skiff"))) && second_arg == Some(b"shim")
}

pub fn body_stream(bytes: Vec<u8>) -> ByteStream {
    Box::pin(futures::stream::once(async move {
        Ok::<_, std::io::Error>(Bytes::from(bytes))
    }))
}

pub async fn engine_with_image(dirs: &Dirs) -> Arc<Engine> {
    let engine = Engine::open(dirs.config()).await.unwrap();
    let archive = skiff_image::testutil::busybox_docker_archive(IMAGE);
    engine.image_load(body_stream(archive)).await.unwrap();
    engine
}

pub fn sh(script: &str) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(IMAGE.into()),
        cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
        ..Default::default()
    }
}

pub async fn poll<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Splits Docker's multiplexed stream into (stream, text) frames.
pub fn frames(mut data: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let len = u32::from_be_bytes([data[4], data[5], data[6], data[7]]) as usize;
        let end = (8 + len).min(data.len());
        out.push((data[0], String::from_utf8_lossy(&data[8..end]).into_owned()));
        data = &data[end..];
    }
    out
}

pub async fn logs(engine: &Engine, id: &str, stdout: bool, stderr: bool) -> String {
    let opts = LogOptions {
        stdout,
        stderr,
        ..Default::default()
    };
    let logs = engine.container_logs(id, opts).await.unwrap();
    let chunks: Vec<_> = logs.stream.collect().await;
    chunks
        .iter()
        .map(|c| String::from_utf8_lossy(&c.data).into_owned())
        .collect()
}
