//! Command-line front ends of each mode. Each module turns its arguments into a call into a
//! library crate and nothing more.

pub mod agent;
pub mod client;
mod controllers;
pub mod daemon;
pub mod local_node;
pub mod node;
pub mod server;
pub mod shim;

/// Arenas glibc's allocator may use in a long-running server process.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: nix::libc::c_int = 2;

/// Sets up glibc's allocator for a long-running multi-threaded server, before its runtime
/// starts any thread. glibc gives every thread that meets contention an arena of its own (up
/// to eight per core) and each arena keeps the pages it once held: a list of thousands of
/// objects built on one runtime thread, or a burst of requests spread over the blocking
/// pool, left its peak behind in every arena. A few arenas cap that: in an idle `skiff daemon`
/// after an image import the arenas of its short-lived blocking threads held ~0.8 MiB of its
/// ~2.9 MiB of anonymous memory. An operator's own setting (`MALLOC_ARENA_MAX`,
/// `GLIBC_TUNABLES`) wins.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some()
            || std::env::var_os("GLIBC_TUNABLES").is_some()
        {
            return;
        }
        // SAFETY: mallopt only changes the allocator's parameters (it takes the arena locks
        // itself); no pointer is passed.
        unsafe { nix::libc::mallopt(nix::libc::M_ARENA_MAX, ARENAS) };
    }
}

/// Logs to stderr, filtered by `SKIFF_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
