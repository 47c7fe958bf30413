//! Default locations. Every one is overridable on the command line so tests can run many
//! isolated instances side by side.

use std::path::PathBuf;

/// Engine state that must survive reboots: images, containers' records, volumes.
pub const DEFAULT_ENGINE_ROOT: &str = "/var/lib/skiff";
/// Engine runtime state (sockets, shim state): gone after a reboot.
pub const DEFAULT_ENGINE_STATE: &str = "/run/skiff";
/// The Docker Engine API socket.
pub const DEFAULT_ENGINE_SOCKET: &str = "/run/skiff/skiff.sock";
/// Control-plane data: certificates, kubeconfig, SQLite database.
pub const DEFAULT_SERVER_DATA: &str = "/var/lib/skiff/server";
/// Name of the cgroup parent every container's cgroup lives under.
pub const CGROUP_PARENT: &str = "skiff";

/// The engine socket path as a `unix://` URL, for clients such as `DOCKER_HOST`.
pub fn socket_url(path: &std::path::Path) -> String {
    format!("unix://{}", path.display())
}

/// Default engine root as a path.
pub fn engine_root() -> PathBuf {
    PathBuf::from(DEFAULT_ENGINE_ROOT)
}
