//! Running containers: OCI runtime-spec generation with Docker's secure defaults, runtime
//! backends behind one trait (embedded libcontainer, the runc and crun CLIs), the per-container
//! shim process, and cgroup statistics.
//!
//! It knows nothing of images, names or the Docker API: it receives a bundle (rootfs path plus
//! settings) and runs it. The daemon never forks containers itself; only the shim calls a
//! [`backend::Backend`].

pub mod backend;
pub mod cgroups;
pub mod mount;
pub mod shim;
pub mod spec;
