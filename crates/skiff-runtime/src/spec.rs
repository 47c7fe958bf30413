//! Generating the OCI runtime spec (`config.json`) from what a container asks for, with
//! Docker's secure defaults: its default capability set, masked and read-only `/proc` paths,
//! `noNewPrivileges`, a default seccomp profile ([`seccomp`]), a `cgroupsPath` under a `skiff`
//! parent.
//!
//! Owns the translation [`ContainerSpec`] → [`oci_spec::runtime::Spec`] and nothing else: it
//! reads the rootfs's `/etc/passwd` and `/etc/group` but never mounts, creates or runs anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBuilder, PosixRlimitBuilder, PosixRlimitType, Process, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};
use serde::{Deserialize, Serialize};

mod caps;
mod linux;
mod seccomp;
#[cfg(test)]
mod tests;
mod user;

pub use linux::{CPU_PERIOD, INIT_PATH_IN_CONTAINER, MASKED_PATHS, READONLY_PATHS};

/// Errors of spec generation.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The request names an impossible setting (unknown user or capability, bad option …).
    #[error("{0}")]
    Invalid(String),
    #[error("cannot access {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid runtime spec")]
    Oci(#[from] oci_spec::OciSpecError),
}

impl skiff_core::HasKind for SpecError {
    fn kind(&self) -> skiff_core::ErrorKind {
        match self {
            SpecError::Invalid(_) => skiff_core::ErrorKind::InvalidArgument,
            _ => skiff_core::ErrorKind::Internal,
        }
    }
}

pub type Result<T, E = SpecError> = std::result::Result<T, E>;

/// A bind mount, tmpfs or named volume already resolved to a host path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSpec {
    /// `-v /host:/ctr[:ro]`
    Bind {
        source: PathBuf,
        destination: String,
        read_only: bool,
    },
    /// `--tmpfs /path[:opts]`; options as `mount -t tmpfs` takes them (e.g. `size=64m,noexec`).
    Tmpfs {
        destination: String,
        options: Vec<String>,
    },
}

/// Which network namespace the container gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// A new namespace with only loopback (`--network none`, and the default until bridge
    /// networking lands).
    #[default]
    Isolated,
    /// The host's namespace (`--network host`).
    Host,
    /// Join an existing namespace (a pod's, or `--network container:X`).
    Path(PathBuf),
}

/// Everything that decides a container's runtime spec. `Default` is Docker's defaults for
/// everything but `id`, `rootfs` and `args`, which every caller sets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub id: String,
    /// Absolute path of the mounted root filesystem.
    pub rootfs: PathBuf,
    /// argv: entrypoint + cmd, already resolved. Must not be empty.
    pub args: Vec<String>,
    /// `KEY=value`, image env merged with the request's. A bare `KEY` (Docker keeps those in
    /// the container's config) sets nothing and keeps the default of that name (`PATH`,
    /// `HOSTNAME`, …) out, as Docker's runtime environment does.
    pub env: Vec<String>,
    /// Working directory inside the container ("" = `/`).
    pub cwd: String,
    /// `user`, `uid`, `user:group` or `uid:gid`; resolved against the rootfs's /etc/passwd and
    /// /etc/group. Empty = root.
    pub user: String,
    /// `--group-add`: supplementary groups by name (the rootfs's /etc/group) or number.
    pub group_add: Vec<String>,
    pub hostname: String,
    pub tty: bool,
    pub mounts: Vec<MountSpec>,
    pub network: NetworkMode,
    /// Share the host's pid / ipc / uts namespaces (`--pid host` …).
    pub host_pid: bool,
    pub host_ipc: bool,
    pub host_uts: bool,
    /// Join the IPC / UTS namespace bind-mounted at this path (a pod's) instead of getting a
    /// new one; ignored when the host's is shared.
    pub ipc_path: Option<PathBuf>,
    pub uts_path: Option<PathBuf>,
    /// Share the host's cgroup namespace (`--cgroupns host`, Docker's default on cgroup v1
    /// hosts) instead of getting a private one.
    pub host_cgroupns: bool,
    pub privileged: bool,
    /// Capabilities like `NET_ADMIN` or `CAP_NET_ADMIN`; `ALL` allowed.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub read_only_rootfs: bool,
    /// `--security-opt`: `no-new-privileges[:true|false]`, `seccomp=unconfined`,
    /// `seccomp=<profile.json path>`, `apparmor=…` (ignored), `label=…` (ignored).
    pub security_opt: Vec<String>,
    /// Bytes; None = unlimited.
    pub memory_limit: Option<i64>,
    /// `--memory-swap` (memory + swap); None or 0 = twice the memory limit, like Docker;
    /// -1 = unlimited.
    pub memory_swap: Option<i64>,
    /// `--memory-swappiness` (0-100; cgroup v1 only); None = the kernel's default.
    pub memory_swappiness: Option<u64>,
    /// `--cpus` in billionths of a CPU (Docker's NanoCpus); becomes a CFS quota over a
    /// [`CPU_PERIOD`] period.
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    /// `--cpu-period` and `--cpu-quota` in microseconds (the CFS knobs `--cpus` sets too).
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    /// `--cpuset-cpus` and `--cpuset-mems` (`0-2,4`).
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// `--memory-reservation` in bytes: the soft memory limit.
    pub memory_reservation: Option<i64>,
    /// `--pids-limit`; 0 or negative = unlimited.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight` (10–1000), where the host supports it.
    pub blkio_weight: Option<u16>,
    /// cgroup path relative to the hierarchy root, e.g. `/skiff/<id>`; empty = `/skiff/<id>`.
    pub cgroups_path: String,
    /// Extra /etc files (host path, path in the container) bound into the container (hosts,
    /// resolv.conf, hostname): writable like Docker's, read-only with a read-only rootfs. A
    /// mount of `mounts` at the same path wins, as in Docker.
    pub etc_files: Vec<(PathBuf, String)>,
    /// Host path of a minimal init (`--init`, e.g. tini): it is bind-mounted read-only at
    /// [`INIT_PATH_IN_CONTAINER`] and argv becomes `[INIT_PATH_IN_CONTAINER, "--", args…]`.
    pub init_path: Option<PathBuf>,
    /// `--sysctl` key → value (`net.ipv4.ip_forward` or `net/ipv4/ip_forward`); only
    /// namespaced sysctls are accepted.
    pub sysctls: Vec<(String, String)>,
    /// OCI annotations (labels are not passed here).
    pub annotations: Vec<(String, String)>,
    /// `--ulimit`: replace the default of their kind (Docker's `nofile`) or add to it.
    pub ulimits: Vec<Ulimit>,
    /// `--shm-size` in bytes for the container's own `/dev/shm`; None = Docker's 64 MiB.
    pub shm_size: Option<u64>,
    /// `--device`: host device nodes made in the container and allowed by its device cgroup.
    pub devices: Vec<DeviceMapping>,
}

/// One `--device /dev/host[:/dev/in-container[:rwm]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMapping {
    pub host: PathBuf,
    /// Where the node appears in the container (the host path when empty).
    pub container: String,
    /// Device cgroup access, `rwm` when empty.
    pub permissions: String,
}

/// One `--ulimit name=soft[:hard]`, `name` as Docker spells it (`nofile`, `nproc`, `core` …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

impl Ulimit {
    /// The OCI rlimit; an unknown name or a soft limit above the hard one is refused with
    /// the messages of Docker's ulimit parser.
    pub fn to_oci(&self) -> Result<oci_spec::runtime::PosixRlimit> {
        let typ: PosixRlimitType = format!("RLIMIT_{}", self.name.to_ascii_uppercase())
            .parse()
            .map_err(|_| SpecError::Invalid(format!("invalid ulimit type: {}", self.name)))?;
        if self.soft > self.hard {
            return Err(SpecError::Invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                self.soft, self.hard
            )));
        }
        Ok(PosixRlimitBuilder::default()
            .typ(typ)
            .soft(self.soft)
            .hard(self.hard)
            .build()?)
    }
}

/// The OCI user of a resolved user. As in moby's `getUser`, the primary group comes first
/// among the supplementary groups (`id` shows it under `groups=`), then the user's other
/// groups and `--group-add`'s.
fn oci_user(u: &user::ExecUser) -> Result<oci_spec::runtime::User> {
    let mut gids = vec![u.gid];
    gids.extend(u.additional_gids.iter().filter(|g| **g != u.gid));
    Ok(UserBuilder::default()
        .uid(u.uid)
        .gid(u.gid)
        .additional_gids(gids)
        .build()?)
}

/// The process's rlimits: Docker's `nofile` default (capped at this process's hard limit),
/// then each `--ulimit`, which replaces the default of its kind.
fn rlimits(ulimits: &[Ulimit]) -> Result<Vec<oci_spec::runtime::PosixRlimit>> {
    let nofile = nofile_limit();
    let mut out = vec![PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(nofile)
        .hard(nofile)
        .build()?];
    for u in ulimits {
        let limit = u.to_oci()?;
        out.retain(|r| r.typ() != limit.typ());
        out.push(limit);
    }
    Ok(out)
}

/// The `PATH` a container or a build stage gets when its image sets none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Docker's `nofile` default, capped at this process's hard limit (raising it needs
/// CAP_SYS_RESOURCE).
const NOFILE: u64 = 1_048_576;

/// What `--security-opt` asked for.
#[derive(Debug)]
struct SecurityOpts {
    no_new_privileges: bool,
    seccomp: Option<Seccomp>,
    unmask_paths: bool,
}

#[derive(Debug)]
enum Seccomp {
    Unconfined,
    Custom(oci_spec::runtime::LinuxSeccomp),
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(SpecError::Invalid(format!(
            "invalid --security-opt {key} value: {v:?}"
        ))),
    }
}

fn security_opts(opts: &[String]) -> Result<SecurityOpts> {
    let mut out = SecurityOpts {
        no_new_privileges: true,
        seccomp: None,
        unmask_paths: false,
    };
    for opt in opts {
        // `key=value`, and the older `key:value` Docker still accepts.
        let (key, value) = match opt.find(['=', ':']) {
            Some(i) => (&opt[..i], &opt[i + 1..]),
            None => (opt.as_str(), ""),
        };
        match key {
            "no-new-privileges" => out.no_new_privileges = parse_bool(key, value)?,
            "seccomp" if value == "unconfined" => out.seccomp = Some(Seccomp::Unconfined),
            "seccomp" => out.seccomp = Some(Seccomp::Custom(seccomp::custom_profile(value)?)),
            "systempaths" if value == "unconfined" => out.unmask_paths = true,
            "apparmor" | "label" => {
                tracing::debug!(option = %opt, "security option ignored: not supported on this host")
            }
            _ => {
                return Err(SpecError::Invalid(format!(
                    "invalid --security-opt: {opt:?}"
                )))
            }
        }
    }
    Ok(out)
}

/// The `KEY=value` entries of `env`, plus `extra` for each key `env` does not name. Like
/// Docker's runtime environment (moby's `ReplaceOrAppendEnvValues`), a bare `KEY` sets nothing
/// and removes that default.
fn with_defaults(env: Vec<String>, extra: &[(&str, String)]) -> Vec<String> {
    let named = |key: &str| {
        env.iter()
            .any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    };
    let defaults: Vec<String> = extra
        .iter()
        .filter(|(key, _)| !named(key))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    env.into_iter()
        .filter(|e| e.contains('='))
        .chain(defaults)
        .collect()
}

fn nofile_limit() -> u64 {
    match nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
        Ok((_, hard)) => hard.min(NOFILE),
        Err(_) => 1024,
    }
}

/// The memory, CPU and pids limits of `c` — what `docker update` changes on a running
/// container — without device rules. An unset pids limit is "max".
pub fn limits(c: &ContainerSpec) -> Result<oci_spec::runtime::LinuxResources> {
    let mut r = linux::resources(c, Vec::new())?;
    r.set_devices(None);
    if r.pids().is_none() {
        r.set_pids(Some(
            oci_spec::runtime::LinuxPidsBuilder::default()
                .limit(0)
                .build()?,
        ));
    }
    Ok(r)
}

/// Generates the OCI runtime spec for `c` with Docker's secure defaults.
pub fn generate(c: &ContainerSpec) -> Result<Spec> {
    if c.args.is_empty() {
        return Err(SpecError::Invalid("no command specified".into()));
    }
    if !c.rootfs.is_absolute() {
        return Err(SpecError::Invalid(format!(
            "rootfs {} is not an absolute path",
            c.rootfs.display()
        )));
    }
    let sec = security_opts(&c.security_opt)?;
    let user = user::resolve(&c.rootfs, &c.user, &c.group_add)?;
    let capabilities = caps::limit_to_host(caps::resolve(c.privileged, &c.cap_add, &c.cap_drop)?);
    let hostname = (!c.host_uts).then(|| {
        if c.hostname.is_empty() {
            c.id.chars().take(12).collect::<String>()
        } else {
            c.hostname.clone()
        }
    });

    let mut args = c.args.clone();
    if c.init_path.is_some() {
        args.splice(0..0, [INIT_PATH_IN_CONTAINER.to_string(), "--".to_string()]);
    }
    let mut defaults = vec![
        ("PATH", DEFAULT_PATH.to_string()),
        ("HOME", user.home.clone()),
    ];
    if let Some(h) = &hostname {
        defaults.push(("HOSTNAME", h.clone()));
    }
    if c.tty {
        defaults.push(("TERM", "xterm".to_string()));
    }
    let process = ProcessBuilder::default()
        .terminal(c.tty)
        .user(oci_user(&user)?)
        .args(args)
        .env(with_defaults(c.env.clone(), &defaults))
        .cwd(if c.cwd.is_empty() {
            "/"
        } else {
            c.cwd.as_str()
        })
        .capabilities(caps::to_oci(capabilities.clone())?)
        .rlimits(rlimits(&c.ulimits)?)
        .no_new_privileges(sec.no_new_privileges)
        .build()?;

    let (devices, device_rules) = linux::devices(c)?;
    let cgroups_path = if c.cgroups_path.is_empty() {
        format!("/skiff/{}", c.id)
    } else {
        c.cgroups_path.clone()
    };
    let mut lb = LinuxBuilder::default()
        .namespaces(linux::namespaces(c)?)
        .devices(devices)
        .resources(linux::resources(c, device_rules)?)
        .cgroups_path(PathBuf::from(cgroups_path))
        .sysctl(linux::sysctls(c)?);
    if !c.privileged && !sec.unmask_paths {
        lb = lb
            .masked_paths(
                MASKED_PATHS
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>(),
            )
            .readonly_paths(
                READONLY_PATHS
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>(),
            );
    }
    // oci-spec's builders start from its own defaults (masked paths, hostname "youki", …):
    // everything not set above is cleared explicitly.
    let mut linux_section = lb.build()?;
    if c.privileged || sec.unmask_paths {
        linux_section
            .set_masked_paths(None)
            .set_readonly_paths(None);
    }
    linux_section.set_seccomp(match sec.seccomp {
        Some(Seccomp::Unconfined) => None,
        Some(Seccomp::Custom(profile)) => Some(profile),
        None if c.privileged => None,
        None => Some(seccomp::default_profile(&capabilities)?),
    });

    let mut spec = SpecBuilder::default()
        .version(oci_spec::runtime::VERSION)
        .root(
            RootBuilder::default()
                .path(&c.rootfs)
                .readonly(c.read_only_rootfs)
                .build()?,
        )
        .process(process)
        .mounts(linux::mounts(c)?)
        .linux(linux_section)
        .annotations(c.annotations.iter().cloned().collect::<HashMap<_, _>>())
        .build()?;
    spec.set_hostname(hostname);
    Ok(spec)
}

/// Writes `spec` as `bundle_dir/config.json` (creating the directory), atomically.
pub fn write_bundle(spec: &Spec, bundle_dir: &Path) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SpecError::Io { path, source }
    };
    std::fs::create_dir_all(bundle_dir).map_err(io(bundle_dir))?;
    let tmp = bundle_dir.join(".config.json.tmp");
    let json = serde_json::to_vec_pretty(spec)
        .map_err(|e| SpecError::Invalid(format!("cannot encode spec: {e}")))?;
    std::fs::write(&tmp, json).map_err(io(&tmp))?;
    let dest = bundle_dir.join("config.json");
    std::fs::rename(&tmp, &dest).map_err(io(&dest))
}

/// What `docker exec` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    pub args: Vec<String>,
    /// `KEY=value`, overriding the container's variables of the same name.
    pub env: Vec<String>,
    /// Empty = the container's working directory.
    pub cwd: String,
    /// Empty = the container's user; otherwise resolved like [`ContainerSpec::user`].
    pub user: String,
    pub tty: bool,
    /// `docker exec --privileged`: every capability the host can grant.
    pub privileged: bool,
    /// The container's `--group-add`, added to the groups of an exec run as another `user`
    /// (an exec as the container's user inherits them with the rest of its user).
    pub group_add: Vec<String>,
}

/// The process for `docker exec` in a container created from `container`: it inherits the
/// container process's capabilities, rlimits, `noNewPrivileges` and env, with `exec`'s
/// overrides. Pass the result to [`crate::backend::Backend::exec`].
pub fn exec_process(container: &Spec, exec: &ExecSpec) -> Result<Process> {
    if exec.args.is_empty() {
        return Err(SpecError::Invalid("no command specified".into()));
    }
    let base = container
        .process()
        .as_ref()
        .ok_or_else(|| SpecError::Invalid("container spec has no process".into()))?;
    let mut p = base.clone();
    p.set_args(Some(exec.args.clone()))
        .set_terminal(Some(exec.tty))
        .set_console_size(None);
    let mut env = base.env().clone().unwrap_or_default();
    for var in &exec.env {
        // A bare `KEY` unsets it, as with Docker.
        let key = var.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        if var.contains('=') {
            env.push(var.clone());
        }
    }
    if exec.tty {
        env = with_defaults(env, &[("TERM", "xterm".to_string())]);
    }
    p.set_env(Some(env));
    if !exec.cwd.is_empty() {
        p.set_cwd(PathBuf::from(&exec.cwd));
    }
    if !exec.user.is_empty() {
        let rootfs = container
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .ok_or_else(|| SpecError::Invalid("container spec has no root".into()))?;
        let u = user::resolve(&rootfs, &exec.user, &exec.group_add)?;
        p.set_user(oci_user(&u)?);
    }
    if exec.privileged {
        p.set_capabilities(Some(caps::to_oci(caps::limit_to_host(caps::resolve(
            true,
            &[],
            &[],
        )?))?));
    }
    Ok(p)
}
