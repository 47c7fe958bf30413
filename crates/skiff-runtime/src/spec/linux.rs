//! The Linux parts of the spec that do not depend on the process: filesystem mounts, devices
//! and their cgroup rules, namespaces, masked and read-only `/proc` paths, sysctls and
//! resource limits. Values follow Docker's (moby `oci/defaults.go`, `daemon/oci_linux.go`).

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder, Mount, MountBuilder,
};

use super::{ContainerSpec, DeviceMapping, MountSpec, NetworkMode, SpecError};

/// Where `--init`'s binary is bind-mounted read-only, as Docker does with `docker-init`, so
/// scripts that look for it keep working.
pub const INIT_PATH_IN_CONTAINER: &str = "/sbin/docker-init";

/// `/proc` and `/sys` entries hidden behind `/dev/null` (files) or an empty read-only tmpfs
/// (directories): they leak host information or give access to host hardware. Docker 28's
/// list, including `/proc/interrupts` (per-CPU interrupt counts of the host, a side channel).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// `/proc` entries remounted read-only: writing them would reconfigure the host kernel.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's `/dev/shm` size.
const SHM_SIZE: u64 = 64 * 1024 * 1024;

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, SpecError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// A recursive bind mount; `read_only` makes it read-only together with every mount below
/// `source` (`rro`, as Docker 25+ does): plain `ro` would leave submounts writable.
fn bind(source: &Path, dest: &str, read_only: bool) -> Result<Mount, SpecError> {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    if read_only {
        options.extend(["ro".to_string(), "rro".to_string()]);
    }
    Ok(MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(options)
        .build()?)
}

/// All mounts of the container, defaults first, then the user's sorted so that parents are
/// mounted before their children. A user mount on a default destination replaces it.
pub fn mounts(c: &ContainerSpec) -> Result<Vec<Mount>, SpecError> {
    let sys_opts: &[&str] = if c.privileged {
        &["nosuid", "noexec", "nodev"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let cgroup_opts: &[&str] = if c.privileged {
        &["nosuid", "noexec", "nodev", "relatime"]
    } else {
        &["nosuid", "noexec", "nodev", "relatime", "ro"]
    };
    let shm_size = format!("size={}", c.shm_size.unwrap_or(SHM_SIZE));
    let mut out = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount("/sys", "sysfs", "sysfs", sys_opts)?,
        mount("/sys/fs/cgroup", "cgroup", "cgroup", cgroup_opts)?,
    ];
    // An mqueue mount shows the queues of the IPC namespace the container is in: the
    // host's with `--ipc host` too (as Docker does; the host may have no /dev/mqueue to bind).
    out.push(mount(
        "/dev/mqueue",
        "mqueue",
        "mqueue",
        &["nosuid", "noexec", "nodev"],
    )?);
    if c.host_ipc {
        out.push(bind(Path::new("/dev/shm"), "/dev/shm", false)?);
    } else {
        out.push(mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        )?);
    }

    let mut user: Vec<Mount> = Vec::new();
    for m in &c.mounts {
        user.push(match m {
            MountSpec::Bind {
                source,
                destination,
                read_only,
            } => bind(source, destination, *read_only)?,
            MountSpec::Tmpfs {
                destination,
                options,
            } => MountBuilder::default()
                .destination(destination)
                .typ("tmpfs")
                .source("tmpfs")
                .options(crate::mount::tmpfs_options(options).map_err(SpecError::Invalid)?)
                .build()?,
        });
    }
    for (source, dest) in &c.etc_files {
        if !user.iter().any(|m| m.destination() == Path::new(dest)) {
            user.push(bind(source, dest, c.read_only_rootfs)?);
        }
    }
    if let Some(init) = &c.init_path {
        user.push(bind(init, INIT_PATH_IN_CONTAINER, true)?);
    }
    for m in &user {
        if !m.destination().is_absolute() {
            return Err(SpecError::Invalid(format!(
                "mount destination {} is not an absolute path",
                m.destination().display()
            )));
        }
    }
    user.sort_by_key(|m| m.destination().components().count());
    out.retain(|d| !user.iter().any(|u| u.destination() == d.destination()));
    out.extend(user);
    Ok(out)
}

/// The namespaces to create or join.
pub fn namespaces(c: &ContainerSpec) -> Result<Vec<LinuxNamespace>, SpecError> {
    let ns =
        |typ: LinuxNamespaceType, path: Option<&PathBuf>| -> Result<LinuxNamespace, SpecError> {
            let mut b = LinuxNamespaceBuilder::default().typ(typ);
            if let Some(p) = path {
                b = b.path(p.clone());
            }
            Ok(b.build()?)
        };
    let mut out = vec![ns(LinuxNamespaceType::Mount, None)?];
    if !c.host_pid {
        out.push(ns(LinuxNamespaceType::Pid, None)?);
    }
    if !c.host_ipc {
        out.push(ns(LinuxNamespaceType::Ipc, c.ipc_path.as_ref())?);
    }
    if !c.host_uts {
        out.push(ns(LinuxNamespaceType::Uts, c.uts_path.as_ref())?);
    }
    match &c.network {
        NetworkMode::Isolated => out.push(ns(LinuxNamespaceType::Network, None)?),
        NetworkMode::Host => {}
        NetworkMode::Path(p) => out.push(ns(LinuxNamespaceType::Network, Some(p))?),
    }
    if !c.host_cgroupns && Path::new("/proc/self/ns/cgroup").exists() {
        out.push(ns(LinuxNamespaceType::Cgroup, None)?);
    }
    Ok(out)
}

fn char_dev(path: &str, major: i64, minor: i64) -> Result<LinuxDevice, SpecError> {
    Ok(LinuxDeviceBuilder::default()
        .path(path)
        .typ(LinuxDeviceType::C)
        .major(major)
        .minor(minor)
        .file_mode(0o666u32)
        .uid(0u32)
        .gid(0u32)
        .build()?)
}

fn dev_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<LinuxDeviceCgroup, SpecError> {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    Ok(b.build()?)
}

/// Device nodes to create and the device cgroup rules: Docker's default set (null, zero,
/// full, random, urandom, tty; console and ptmx come with the pty), or every host device when
/// privileged.
pub fn devices(c: &ContainerSpec) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>), SpecError> {
    use LinuxDeviceType::{A, B, C};
    if c.privileged {
        return Ok((host_devices()?, vec![dev_rule(true, A, None, None, "rwm")?]));
    }
    let mut nodes = vec![
        char_dev("/dev/null", 1, 3)?,
        char_dev("/dev/zero", 1, 5)?,
        char_dev("/dev/full", 1, 7)?,
        char_dev("/dev/random", 1, 8)?,
        char_dev("/dev/urandom", 1, 9)?,
        char_dev("/dev/tty", 5, 0)?,
    ];
    let mut rules = vec![
        dev_rule(false, A, None, None, "rwm")?,
        dev_rule(true, C, None, None, "m")?,
        dev_rule(true, B, None, None, "m")?,
    ];
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        rules.push(dev_rule(true, C, Some(major), Some(minor), "rwm")?);
    }
    rules.push(dev_rule(true, C, Some(136), None, "rwm")?); // pty slaves
    rules.push(dev_rule(true, C, Some(10), Some(200), "rwm")?); // /dev/net/tun
    for d in &c.devices {
        let (node, rule) = mapped_device(d)?;
        nodes.retain(|n| n.path() != node.path());
        nodes.push(node);
        rules.push(rule);
    }
    Ok((nodes, rules))
}

/// The node and cgroup rule of one `--device`, from the host node's type and numbers (moby's
/// `DeviceFromPath`, with its message for a path that is missing or no device).
fn mapped_device(d: &DeviceMapping) -> Result<(LinuxDevice, LinuxDeviceCgroup), SpecError> {
    let gathering = |why: String| {
        SpecError::Invalid(format!(
            "error gathering device information while adding custom device {:?}: {why}",
            d.host.display().to_string()
        ))
    };
    let meta = std::fs::metadata(&d.host).map_err(|e| {
        gathering(match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".into(),
            _ => e.to_string(),
        })
    })?;
    let ft = meta.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(gathering("not a device node".into()));
    };
    let permissions = if d.permissions.is_empty() {
        "rwm"
    } else {
        d.permissions.as_str()
    };
    if permissions.is_empty() || !permissions.chars().all(|p| matches!(p, 'r' | 'w' | 'm')) {
        return Err(SpecError::Invalid(format!(
            "invalid device permissions {permissions:?}"
        )));
    }
    let (major, minor) = (
        libc::major(meta.rdev()) as i64,
        libc::minor(meta.rdev()) as i64,
    );
    let path = if d.container.is_empty() {
        d.host.clone()
    } else {
        PathBuf::from(&d.container)
    };
    let node = LinuxDeviceBuilder::default()
        .path(path)
        .typ(typ)
        .major(major)
        .minor(minor)
        .file_mode(meta.mode() & 0o7777)
        .uid(meta.uid())
        .gid(meta.gid())
        .build()?;
    let rule = dev_rule(true, typ, Some(major), Some(minor), permissions)?;
    Ok((node, rule))
}

/// Every character and block device under the host's `/dev`, for `--privileged`.
fn host_devices() -> Result<Vec<LinuxDevice>, SpecError> {
    fn walk(dir: &Path, out: &mut Vec<LinuxDevice>) -> Result<(), SpecError> {
        let entries = std::fs::read_dir(dir).map_err(|source| SpecError::Io {
            path: dir.into(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            let name = entry.file_name();
            if ft.is_dir() {
                if !matches!(
                    name.to_str(),
                    Some("pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".udev")
                ) {
                    walk(&path, out)?;
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else {
                continue;
            };
            if name == "console" {
                continue;
            }
            let rdev = meta.rdev();
            out.push(
                LinuxDeviceBuilder::default()
                    .path(&path)
                    .typ(typ)
                    .major(libc::major(rdev) as i64)
                    .minor(libc::minor(rdev) as i64)
                    .file_mode(meta.mode() & 0o7777)
                    .uid(meta.uid())
                    .gid(meta.gid())
                    .build()?,
            );
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out)?;
    Ok(out)
}

/// Validates `--sysctl`s the way Docker does: only namespaced ones, and not for a namespace
/// shared with the host.
pub fn sysctls(c: &ContainerSpec) -> Result<HashMap<String, String>, SpecError> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let mut out = HashMap::new();
    for (key, value) in &c.sysctls {
        let key = key.replace('/', ".");
        let namespace_shared = if IPC.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
            c.host_ipc
        } else if key.starts_with("net.") {
            c.network == NetworkMode::Host
        } else if key == "kernel.domainname" || key == "kernel.hostname" {
            c.host_uts
        } else {
            return Err(SpecError::Invalid(format!(
                "sysctl {key:?} is not namespaced and cannot be set in a container"
            )));
        };
        if namespace_shared {
            return Err(SpecError::Invalid(format!(
                "sysctl {key:?} cannot be set: the container shares that namespace with the host"
            )));
        }
        out.insert(key, value.clone());
    }
    Ok(out)
}

/// CFS period Docker uses for `--cpus`.
pub const CPU_PERIOD: u64 = 100_000;

/// Memory (swap defaulting to twice the memory limit), CPU and pids limits plus `devices`.
pub fn resources(
    c: &ContainerSpec,
    device_rules: Vec<LinuxDeviceCgroup>,
) -> Result<LinuxResources, SpecError> {
    let mut r = LinuxResourcesBuilder::default().devices(device_rules);
    let mut memory = LinuxMemoryBuilder::default();
    let mut memory_set = false;
    match (c.memory_limit, c.memory_swap) {
        (None, Some(s)) if s != 0 => {
            return Err(SpecError::Invalid(
                "you should always set the memory limit when using the memory swap limit".into(),
            ))
        }
        (Some(limit), swap) if limit > 0 => {
            let swap = match swap {
                None | Some(0) => limit.saturating_mul(2),
                Some(-1) => -1,
                Some(s) if s < limit => {
                    return Err(SpecError::Invalid(
                        "minimum memoryswap limit should be larger than memory limit".into(),
                    ))
                }
                Some(s) => s,
            };
            memory = memory.limit(limit).swap(swap);
            memory_set = true;
        }
        (Some(limit), _) if limit < 0 => {
            return Err(SpecError::Invalid(format!("invalid memory limit {limit}")))
        }
        _ => {}
    }
    if let Some(swappiness) = c.memory_swappiness {
        if swappiness > 100 {
            return Err(SpecError::Invalid(format!(
                "invalid memory swappiness {swappiness}: the range is 0-100"
            )));
        }
        memory = memory.swappiness(swappiness);
        memory_set = true;
    }
    if let Some(reservation) = c.memory_reservation.filter(|r| *r > 0) {
        memory = memory.reservation(reservation);
        memory_set = true;
    }
    if memory_set {
        r = r.memory(memory.build()?);
    }
    let cfs_or_cpuset = c.cpu_period.is_some()
        || c.cpu_quota.is_some()
        || c.cpuset_cpus.is_some()
        || c.cpuset_mems.is_some();
    if c.nano_cpus.is_some() || c.cpu_shares.is_some() || cfs_or_cpuset {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(period) = c.cpu_period.filter(|p| *p > 0) {
            cpu = cpu.period(period);
        }
        if let Some(quota) = c.cpu_quota.filter(|q| *q > 0) {
            cpu = cpu.quota(quota);
        }
        if let Some(cpus) = c.cpuset_cpus.as_ref().filter(|s| !s.is_empty()) {
            cpu = cpu.cpus(cpus.clone());
        }
        if let Some(mems) = c.cpuset_mems.as_ref().filter(|s| !s.is_empty()) {
            cpu = cpu.mems(mems.clone());
        }
        if let Some(nano) = c.nano_cpus {
            if nano < 0 {
                return Err(SpecError::Invalid(format!("invalid nano cpus {nano}")));
            }
            if nano > 0 {
                let quota = (nano as i128 * CPU_PERIOD as i128 / 1_000_000_000) as i64;
                cpu = cpu.period(CPU_PERIOD).quota(quota.max(1000));
            }
        }
        if let Some(shares) = c.cpu_shares.filter(|s| *s > 0) {
            cpu = cpu.shares(shares);
        }
        r = r.cpu(cpu.build()?);
    }
    if let Some(limit) = c.pids_limit.filter(|l| *l > 0) {
        r = r.pids(LinuxPidsBuilder::default().limit(limit).build()?);
    }
    if let Some(weight) = c.blkio_weight.filter(|w| *w > 0) {
        r = r.block_io(
            oci_spec::runtime::LinuxBlockIoBuilder::default()
                .weight(weight)
                .build()?,
        );
    }
    Ok(r.build()?)
}
