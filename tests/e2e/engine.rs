//! skiff-engine through its Rust API (what the Docker API handlers and the node agent call): an
//! `Engine` on temporary directories running busybox containers through the runc backend and real
//! `skiff shim` processes — the binary cargo builds for this test run (ADR 0001), whatever the
//! target dir. They need root and Debian's busybox-static, as every e2e test does; without them
//! they fail with the reason rather than pass without running.

#[path = "engine/archive.rs"]
mod archive;
#[path = "engine/common.rs"]
mod common;
#[path = "engine/containers.rs"]
mod containers;
#[path = "engine/daemon_restart.rs"]
mod daemon_restart;
