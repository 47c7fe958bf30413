//! Reading and removing a container's cgroups, on cgroup v1, v2 and hybrid hosts alike:
//! resource statistics (`docker stats`), the processes (`docker top`), the OOM-kill counter
//! (`OOMKilled`), the freezer state, and removal of the directories runtimes leave behind.
//!
//! A `cgroups_path` is the spec's `linux.cgroupsPath` (e.g. `/skiff/<id>`), relative to each
//! hierarchy's root. Each controller is looked up where the host mounts it: a v1 hierarchy
//! that names it, else the v2 hierarchy whose `cgroup.controllers` lists it. This module
//! never creates cgroups or moves processes: runtimes do that. Changing the limits of a
//! running container (`docker update`) goes through libcgroups, as runtimes' `update` does.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::Serialize;

mod migration;
pub use migration::{prime_migration, MigrationPrimer};

/// Errors of cgroup access.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {0} not found")]
    NotFound(String),
    #[error("cannot access {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup {} still has processes", .0.display())]
    Busy(PathBuf),
    #[error("cannot update the cgroup {path}: {message}")]
    Update { path: String, message: String },
}

impl skiff_core::HasKind for CgroupError {
    fn kind(&self) -> skiff_core::ErrorKind {
        match self {
            CgroupError::NotFound(_) => skiff_core::ErrorKind::NotFound,
            CgroupError::Busy(_) => skiff_core::ErrorKind::WrongState,
            CgroupError::Io { .. } => skiff_core::ErrorKind::Internal,
            CgroupError::Update { .. } => skiff_core::ErrorKind::InvalidArgument,
        }
    }
}

pub type Result<T, E = CgroupError> = std::result::Result<T, E>;

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hierarchy {
    mountpoint: PathBuf,
    /// The hierarchy path mounted there (`/` unless inside a cgroup namespace).
    root: String,
    v2: bool,
    /// v1: the controllers named in the mount options; v2: `cgroup.controllers`.
    controllers: Vec<String>,
    device: String,
}

impl Hierarchy {
    fn dir(&self, cgroups_path: &str) -> PathBuf {
        let rel = cgroups_path
            .strip_prefix(self.root.trim_end_matches('/'))
            .filter(|r| r.starts_with('/'))
            .unwrap_or(cgroups_path);
        self.mountpoint.join(rel.trim_start_matches('/'))
    }
}

fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 {
            continue;
        }
        let v2 = match r[0] {
            "cgroup" => false,
            "cgroup2" => true,
            _ => continue,
        };
        let mountpoint = PathBuf::from(l[4].replace("\\040", " "));
        let controllers = if v2 {
            std::fs::read_to_string(mountpoint.join("cgroup.controllers"))
                .map(|c| c.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        } else {
            r[2].split(',')
                .filter(|o| !matches!(*o, "rw" | "ro" | "xattr" | "noprefix"))
                .map(str::to_string)
                .collect()
        };
        // The same hierarchy can be mounted more than once; the first mount is enough.
        if out.iter().any(|h| h.device == l[2]) {
            continue;
        }
        out.push(Hierarchy {
            mountpoint,
            root: l[3].to_string(),
            v2,
            controllers,
            device: l[2].to_string(),
        });
    }
    out
}

/// The host's cgroup hierarchies, read from `/proc/self/mountinfo` once per process: cgroup
/// filesystems are mounted at boot and stay, while the rest of the mount table grows by
/// several mounts per container (rootfs, a pod's namespaces and `/dev/shm`), so reading it on
/// every stats, start or removal made each of them cost more the more containers ran.
fn hierarchies() -> Result<Vec<Hierarchy>> {
    static CACHED: std::sync::OnceLock<Vec<Hierarchy>> = std::sync::OnceLock::new();
    if let Some(hs) = CACHED.get() {
        return Ok(hs.clone());
    }
    let path = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(path).map_err(|source| CgroupError::Io {
        path: path.into(),
        source,
    })?;
    let hs = parse_mountinfo(&text);
    if !hs.is_empty() {
        let _ = CACHED.set(hs.clone());
    }
    Ok(hs)
}

/// The directory of `cgroups_path` for `controller`, and whether it is v2.
fn controller_dir(
    hs: &[Hierarchy],
    controller: &str,
    cgroups_path: &str,
) -> Option<(PathBuf, bool)> {
    hs.iter()
        .find(|h| !h.v2 && h.controllers.iter().any(|c| c == controller))
        .or_else(|| {
            hs.iter()
                .find(|h| h.v2 && h.controllers.iter().any(|c| c == controller))
        })
        .map(|h| (h.dir(cgroups_path), h.v2))
}

/// The directory of `cgroups_path` for `controller` (`cpu`, `memory`, …) on this host and
/// whether it is on the v2 hierarchy; None when no hierarchy has the controller. For writers
/// of a few known files that need no runtime's cgroup manager (a pod cgroup's limits): the
/// mount table is not read again.
pub fn controller_path(controller: &str, cgroups_path: &str) -> Result<Option<(PathBuf, bool)>> {
    Ok(controller_dir(&hierarchies()?, controller, cgroups_path))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Io {
        path: path.into(),
        source,
    })
}

fn read_opt(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A number, or None for `max` / absent / v1's "unlimited" (a value near `i64::MAX`).
fn number(path: &Path) -> Option<u64> {
    let text = read_opt(path)?;
    let n: u64 = text.trim().parse().ok()?;
    (n < (i64::MAX as u64) & !0xfff).then_some(n)
}

/// `key value` lines (memory.stat, cpu.stat, memory.events, …).
fn flat_keyed(path: &Path) -> BTreeMap<String, u64> {
    read_opt(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Whether containers can be given a block-I/O weight here (Docker's `sysInfo.BlkioWeight`):
/// v1's `blkio.weight` at the blkio hierarchy's root, which needs a proportional I/O
/// scheduler, or v2's `io` controller.
pub fn blkio_weight_supported() -> bool {
    let Ok(hs) = hierarchies() else {
        return false;
    };
    match controller_dir(&hs, "blkio", "/") {
        Some((dir, _)) => dir.join("blkio.weight").exists(),
        None => controller_dir(&hs, "io", "/").is_some_and(|(_, v2)| v2),
    }
}

/// Whether the host runs cgroup v2 alone (`/sys/fs/cgroup` is a cgroup2 mount: Docker's
/// "unified" mode), rather than v1 or hybrid.
pub fn unified_only() -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    statfs("/sys/fs/cgroup").is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// Memory statistics, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    pub usage: u64,
    pub max_usage: u64,
    /// None = unlimited.
    pub limit: Option<u64>,
    /// Page cache (v1 `cache`, v2 `file`).
    pub cache: u64,
    pub failcnt: u64,
    /// The raw `memory.stat`.
    pub stats: BTreeMap<String, u64>,
}

/// CPU statistics, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    pub total_usage: u64,
    /// Per CPU (v1 only; empty on v2, like Docker).
    pub percpu_usage: Vec<u64>,
    pub usage_in_usermode: u64,
    pub usage_in_kernelmode: u64,
    /// The whole host's CPU time since boot, from `/proc/stat`.
    pub system_cpu_usage: u64,
    pub online_cpus: u32,
    pub throttling_periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

/// Process-count statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    pub current: u64,
    /// None = unlimited.
    pub limit: Option<u64>,
}

/// Everything `docker stats` shows of a container's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub memory: MemoryStats,
    pub cpu: CpuStats,
    pub pids: PidsStats,
}

/// The host's total CPU time (ns) and number of online CPUs, from `/proc/stat`.
fn system_cpu() -> Result<(u64, u32)> {
    let text = read(Path::new("/proc/stat"))?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut total = 0;
    let mut cpus = 0;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            // user nice system idle iowait irq softirq steal (guest time is already in user).
            Some("cpu") => {
                total = fields
                    .take(8)
                    .filter_map(|f| f.parse::<u64>().ok())
                    .sum::<u64>()
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    Ok((total * (1_000_000_000 / tick), cpus))
}

/// Resource statistics of the cgroup at `cgroups_path`.
pub fn stats(cgroups_path: &str) -> Result<Stats> {
    let mut s = stats_in(&hierarchies()?, cgroups_path)?;
    let (system, cpus) = system_cpu()?;
    s.cpu.system_cpu_usage = system;
    s.cpu.online_cpus = cpus;
    Ok(s)
}

fn stats_in(hs: &[Hierarchy], cgroups_path: &str) -> Result<Stats> {
    let (mem_dir, v2) = controller_dir(hs, "memory", cgroups_path)
        .filter(|(d, _)| d.is_dir())
        .ok_or_else(|| CgroupError::NotFound(cgroups_path.to_string()))?;
    let mut s = Stats::default();

    let stat = flat_keyed(&mem_dir.join("memory.stat"));
    s.memory = if v2 {
        MemoryStats {
            usage: number(&mem_dir.join("memory.current")).unwrap_or(0),
            max_usage: number(&mem_dir.join("memory.peak")).unwrap_or(0),
            limit: number(&mem_dir.join("memory.max")),
            cache: stat.get("file").copied().unwrap_or(0),
            failcnt: flat_keyed(&mem_dir.join("memory.events"))
                .get("max")
                .copied()
                .unwrap_or(0),
            stats: stat,
        }
    } else {
        MemoryStats {
            usage: number(&mem_dir.join("memory.usage_in_bytes")).unwrap_or(0),
            max_usage: number(&mem_dir.join("memory.max_usage_in_bytes")).unwrap_or(0),
            limit: number(&mem_dir.join("memory.limit_in_bytes")),
            cache: stat.get("cache").copied().unwrap_or(0),
            failcnt: number(&mem_dir.join("memory.failcnt")).unwrap_or(0),
            stats: stat,
        }
    };

    if let Some((dir, true)) = controller_dir(hs, "cpu", cgroups_path) {
        let st = flat_keyed(&dir.join("cpu.stat"));
        let us = |k: &str| st.get(k).copied().unwrap_or(0) * 1000;
        s.cpu.total_usage = us("usage_usec");
        s.cpu.usage_in_usermode = us("user_usec");
        s.cpu.usage_in_kernelmode = us("system_usec");
        s.cpu.throttled_time = us("throttled_usec");
        s.cpu.throttling_periods = st.get("nr_periods").copied().unwrap_or(0);
        s.cpu.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
    } else {
        if let Some((dir, false)) = controller_dir(hs, "cpuacct", cgroups_path) {
            s.cpu.total_usage = number(&dir.join("cpuacct.usage")).unwrap_or(0);
            s.cpu.percpu_usage = read_opt(&dir.join("cpuacct.usage_percpu"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            let ticks = flat_keyed(&dir.join("cpuacct.stat"));
            // SAFETY: sysconf has no memory-safety preconditions.
            let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            s.cpu.usage_in_usermode =
                ticks.get("user").copied().unwrap_or(0) * (1_000_000_000 / tick);
            s.cpu.usage_in_kernelmode =
                ticks.get("system").copied().unwrap_or(0) * (1_000_000_000 / tick);
        }
        if let Some((dir, false)) = controller_dir(hs, "cpu", cgroups_path) {
            let st = flat_keyed(&dir.join("cpu.stat"));
            s.cpu.throttling_periods = st.get("nr_periods").copied().unwrap_or(0);
            s.cpu.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
            s.cpu.throttled_time = st.get("throttled_time").copied().unwrap_or(0);
        }
    }

    if let Some((dir, _)) = controller_dir(hs, "pids", cgroups_path) {
        s.pids = PidsStats {
            current: number(&dir.join("pids.current")).unwrap_or(0),
            limit: number(&dir.join("pids.max")),
        };
    }
    Ok(s)
}

/// Every process in the cgroup and its descendants (for `docker top`), sorted.
pub fn pids(cgroups_path: &str) -> Result<Vec<i32>> {
    let hs = hierarchies()?;
    let dir = ["pids", "memory", "freezer", "devices"]
        .iter()
        .filter_map(|c| controller_dir(&hs, c, cgroups_path))
        .map(|(d, _)| d)
        .find(|d| d.is_dir())
        .ok_or_else(|| CgroupError::NotFound(cgroups_path.to_string()))?;
    let mut out = Vec::new();
    collect_pids(&dir, &mut out)?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    out.extend(
        read(&dir.join("cgroup.procs"))?
            .lines()
            .filter_map(|l| l.trim().parse::<i32>().ok()),
    );
    for entry in std::fs::read_dir(dir)
        .map_err(|source| CgroupError::Io {
            path: dir.into(),
            source,
        })?
        .flatten()
    {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&entry.path(), out)?;
        }
    }
    Ok(())
}

/// Whether the kernel OOM-killed a process of the cgroup (v1 `memory.oom_control`'s
/// `oom_kill`, v2 `memory.events`' `oom_kill`). False when the cgroup is gone.
pub fn oom_killed(cgroups_path: &str) -> bool {
    oom_counter(cgroups_path).is_some_and(|file| oom_killed_at(&file))
}

/// The file that counts the cgroup's OOM kills (v1 `memory.oom_control`, v2
/// `memory.events`); None without a memory controller. Finding it reads the mount table:
/// look it up once, read it with [`oom_killed_at`] when the answer is needed.
pub fn oom_counter(cgroups_path: &str) -> Option<PathBuf> {
    hierarchies()
        .ok()
        .and_then(|hs| oom_counter_in(&hs, cgroups_path))
}

fn oom_counter_in(hs: &[Hierarchy], cgroups_path: &str) -> Option<PathBuf> {
    let (dir, v2) = controller_dir(hs, "memory", cgroups_path)?;
    Some(dir.join(if v2 {
        "memory.events"
    } else {
        "memory.oom_control"
    }))
}

/// Whether the [`oom_counter`] file counts an OOM kill. False when the cgroup is gone.
pub fn oom_killed_at(counter: &Path) -> bool {
    flat_keyed(counter).get("oom_kill").is_some_and(|n| *n > 0)
}

/// Whether the cgroup is frozen (paused): v1 `freezer.state`, v2 `cgroup.events`.
pub fn frozen(cgroups_path: &str) -> Result<bool> {
    frozen_in(&hierarchies()?, cgroups_path)
}

fn frozen_in(hs: &[Hierarchy], cgroups_path: &str) -> Result<bool> {
    if let Some((dir, false)) = controller_dir(hs, "freezer", cgroups_path) {
        return Ok(read(&dir.join("freezer.state"))?.trim() == "FROZEN");
    }
    let unified = hs
        .iter()
        .find(|h| h.v2)
        .ok_or_else(|| CgroupError::NotFound(cgroups_path.to_string()))?;
    Ok(flat_keyed(&unified.dir(cgroups_path).join("cgroup.events")).get("frozen") == Some(&1))
}

/// Applies `resources` to an existing cgroup (a running container); what they leave unset
/// stays as it is (see [`crate::spec::limits`]).
pub fn update(cgroups_path: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
    use libcgroups::common::{create_cgroup_manager, CgroupConfig, CgroupManager, ControllerOpt};
    let failed = |message: String| CgroupError::Update {
        path: cgroups_path.to_string(),
        message,
    };
    let manager = create_cgroup_manager(CgroupConfig {
        cgroup_path: PathBuf::from(cgroups_path),
        systemd_cgroup: false,
        container_name: String::new(),
    })
    .map_err(|e| failed(e.to_string()))?;
    manager
        .apply(&ControllerOpt {
            resources,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        })
        .map_err(|e| failed(e.to_string()))
}

/// Every directory of `cgroups_path` on this host, one per hierarchy (v1 and v2).
pub fn dirs(cgroups_path: &str) -> Result<Vec<PathBuf>> {
    Ok(hierarchies()?.iter().map(|h| h.dir(cgroups_path)).collect())
}

/// Removes the cgroup in every hierarchy, child cgroups first; its parents stay. Fails with
/// [`CgroupError::Busy`] while processes remain; a cgroup that does not exist is not an error.
pub fn remove(cgroups_path: &str) -> Result<()> {
    let rel = cgroups_path.trim_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == "..") {
        return Err(CgroupError::NotFound(cgroups_path.to_string()));
    }
    // Parents stay: another container may be creating its cgroup under the same parent
    // right now, and removing the parent under it would make that create fail.
    for h in hierarchies()? {
        remove_tree(&h.dir(cgroups_path))?;
    }
    Ok(())
}

fn remove_tree(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Io {
                path: dir.into(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    // The kernel answers EBUSY for a short while after the last process exited (it is
    // still being torn down); retry with a bounded backoff like runc does.
    let mut delay = std::time::Duration::from_millis(5);
    for _ in 0..8 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(source) => {
                return Err(CgroupError::Io {
                    path: dir.into(),
                    source,
                })
            }
        }
    }
    Err(CgroupError::Busy(dir.into()))
}

/// The `linux.cgroupsPath` of the bundle's `config.json`.
pub fn path_from_bundle(bundle: &Path) -> Result<String> {
    let path = bundle.join("config.json");
    let spec = oci_spec::runtime::Spec::load(&path).map_err(|e| CgroupError::Io {
        path: path.clone(),
        source: std::io::Error::new(ErrorKind::InvalidData, e.to_string()),
    })?;
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.display().to_string())
        .ok_or_else(|| CgroupError::NotFound(format!("{} (no cgroupsPath)", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
99 31 0:32 / /mnt/again rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn parses_v1_and_v2_hierarchies_once_each() {
        let hs = parse_mountinfo(HYBRID);
        assert_eq!(hs.len(), 4);
        assert_eq!(hs[0].controllers, vec!["cpu"]);
        assert_eq!(hs[2].controllers, vec!["name=systemd"]);
        assert!(hs[3].v2);
        let (dir, v2) = controller_dir(&hs, "memory", "/skiff/abc").unwrap();
        assert_eq!(
            (dir, v2),
            (PathBuf::from("/sys/fs/cgroup/memory/skiff/abc"), false)
        );
    }

    #[test]
    fn unified_only_is_false_on_v1_and_hybrid_hosts() {
        // A v2-only host has cgroup.controllers at the top; a hybrid one (this project's
        // machines, DESIGN.md) mounts cgroup2 at /sys/fs/cgroup/unified instead.
        let hybrid = std::path::Path::new("/sys/fs/cgroup/unified").exists();
        assert_eq!(
            unified_only(),
            !hybrid && std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        );
    }

    #[test]
    fn pure_v2_controllers_come_from_the_unified_hierarchy() {
        let hs = vec![Hierarchy {
            mountpoint: "/sys/fs/cgroup".into(),
            root: "/".into(),
            v2: true,
            controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
            device: "0:1".into(),
        }];
        assert_eq!(
            controller_dir(&hs, "memory", "/skiff/x"),
            Some(("/sys/fs/cgroup/skiff/x".into(), true))
        );
        assert_eq!(controller_dir(&hs, "freezer", "/skiff/x"), None);
    }

    #[test]
    fn paths_inside_a_cgroup_namespace_root_are_relative_to_it() {
        let h = Hierarchy {
            mountpoint: "/sys/fs/cgroup".into(),
            root: "/outer".into(),
            v2: true,
            controllers: vec![],
            device: "0:1".into(),
        };
        assert_eq!(
            h.dir("/outer/skiff/x"),
            PathBuf::from("/sys/fs/cgroup/skiff/x")
        );
        assert_eq!(h.dir("/skiff/x"), PathBuf::from("/sys/fs/cgroup/skiff/x"));
    }

    #[test]
    fn missing_cgroup_is_not_found_and_not_oom_killed() {
        assert!(matches!(
            stats("/skiff/skiff-does-not-exist"),
            Err(CgroupError::NotFound(_))
        ));
        assert!(!oom_killed("/skiff/skiff-does-not-exist"));
        assert!(remove("/skiff/skiff-does-not-exist").is_ok());
    }

    #[test]
    fn remove_refuses_escapes() {
        assert!(remove("/").is_err());
        assert!(remove("/skiff/../..").is_err());
    }

    fn fake(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join("skiff/c1").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    fn hierarchy(dir: &Path, v2: bool, controllers: &[&str]) -> Hierarchy {
        Hierarchy {
            mountpoint: dir.to_path_buf(),
            root: "/".into(),
            v2,
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            device: dir.display().to_string(),
        }
    }

    #[test]
    fn v2_stats_oom_and_freezer() {
        let d = fake(&[
            ("memory.current", "1048576\n"),
            ("memory.max", "max\n"),
            ("memory.peak", "2097152\n"),
            ("memory.stat", "anon 4096\nfile 8192\n"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            ("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 2\nthrottled_usec 70\n"),
            ("pids.current", "3\n"),
            ("pids.max", "10\n"),
            ("cgroup.events", "populated 1\nfrozen 1\n"),
        ]);
        let hs = vec![hierarchy(d.path(), true, &["cpu", "memory", "pids"])];
        let s = stats_in(&hs, "/skiff/c1").unwrap();
        assert_eq!(
            (
                s.memory.usage,
                s.memory.max_usage,
                s.memory.limit,
                s.memory.cache
            ),
            (1 << 20, 2 << 20, None, 8192)
        );
        assert_eq!(s.memory.failcnt, 3);
        assert_eq!(
            (
                s.cpu.total_usage,
                s.cpu.usage_in_usermode,
                s.cpu.usage_in_kernelmode
            ),
            (1_500_000, 1_000_000, 500_000)
        );
        assert_eq!(
            (
                s.cpu.throttling_periods,
                s.cpu.throttled_periods,
                s.cpu.throttled_time
            ),
            (4, 2, 70_000)
        );
        assert_eq!(
            s.pids,
            PidsStats {
                current: 3,
                limit: Some(10)
            }
        );
        assert!(oom_killed_at(&oom_counter_in(&hs, "/skiff/c1").unwrap()));
        assert!(frozen_in(&hs, "/skiff/c1").unwrap());
    }

    #[test]
    fn v1_stats_and_oom_control() {
        let mem = fake(&[
            ("memory.usage_in_bytes", "4096\n"),
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.max_usage_in_bytes", "8192\n"),
            ("memory.stat", "cache 100\nrss 200\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            ),
        ]);
        let acct = fake(&[
            ("cpuacct.usage", "999\n"),
            ("cpuacct.usage_percpu", "400 599 \n"),
            ("cpuacct.stat", "user 1\nsystem 2\n"),
        ]);
        let freezer = fake(&[("freezer.state", "THAWED\n")]);
        let hs = vec![
            hierarchy(mem.path(), false, &["memory"]),
            hierarchy(acct.path(), false, &["cpuacct"]),
            hierarchy(freezer.path(), false, &["freezer"]),
        ];
        let s = stats_in(&hs, "/skiff/c1").unwrap();
        assert_eq!(
            (
                s.memory.usage,
                s.memory.limit,
                s.memory.max_usage,
                s.memory.cache
            ),
            (4096, None, 8192, 100)
        );
        assert_eq!(
            (s.cpu.total_usage, s.cpu.percpu_usage.clone()),
            (999, vec![400, 599])
        );
        assert!(s.cpu.usage_in_kernelmode > s.cpu.usage_in_usermode);
        assert!(!oom_killed_at(&oom_counter_in(&hs, "/skiff/c1").unwrap()));
        assert!(!frozen_in(&hs, "/skiff/c1").unwrap());
    }

    #[test]
    fn host_cpu_time_is_counted() {
        let (total, cpus) = system_cpu().unwrap();
        assert!(total > 0 && cpus > 0);
    }
}
