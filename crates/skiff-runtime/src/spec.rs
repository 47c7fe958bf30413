//! Generating the OCI runtime spec (`config.json`) from what a container asks for, with
//! Docker's secure defaults. INTERFACE — the runtime engineer fills in [`generate`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A bind mount, tmpfs or named volume already resolved to a host path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSpec {
    /// `-v /host:/ctr[:ro]`
    Bind { source: PathBuf, destination: String, read_only: bool },
    /// `--tmpfs /path[:opts]`; options as `mount -t tmpfs` takes them (e.g. `size=64m,noexec`).
    Tmpfs { destination: String, options: Vec<String> },
}

/// Which network namespace the container gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// A new namespace with only loopback (`--network none`, and the default until bridge
    /// networking lands).
    Isolated,
    /// The host's namespace (`--network host`).
    Host,
    /// Join an existing namespace (a pod's, or `--network container:X`).
    Path(PathBuf),
}

/// Everything that decides a container's runtime spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub id: String,
    /// Absolute path of the mounted root filesystem.
    pub rootfs: PathBuf,
    /// argv: entrypoint + cmd, already resolved. Must not be empty.
    pub args: Vec<String>,
    /// `KEY=value`, image env merged with the request's.
    pub env: Vec<String>,
    /// Working directory inside the container ("" = `/`).
    pub cwd: String,
    /// `user`, `uid`, `user:group` or `uid:gid`; resolved against the rootfs's /etc/passwd and
    /// /etc/group. Empty = root.
    pub user: String,
    pub hostname: String,
    pub tty: bool,
    pub mounts: Vec<MountSpec>,
    pub network: NetworkMode,
    /// Share the host's pid / ipc / uts namespaces (`--pid host` …).
    pub host_pid: bool,
    pub host_ipc: bool,
    pub host_uts: bool,
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
    /// `--memory-swap`; None = twice the memory limit, like Docker; -1 = unlimited.
    pub memory_swap: Option<i64>,
    /// `--cpus` in billionths of a CPU (Docker's NanoCpus).
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
    /// cgroup path relative to the hierarchy root, e.g. `/skiff/<id>`.
    pub cgroups_path: String,
    /// Extra /etc files to bind read-only into the container (hosts, resolv.conf, hostname).
    pub etc_files: Vec<(PathBuf, String)>,
    /// Run `args` under a minimal init (`--init`): the spec's argv becomes `[init_path, "--", args…]`.
    pub init_path: Option<PathBuf>,
    /// Path inside the container of a sysctl → value list (`--sysctl`).
    pub sysctls: Vec<(String, String)>,
    /// OCI annotations (labels are not passed here).
    pub annotations: Vec<(String, String)>,
}
