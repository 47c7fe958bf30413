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

/// Logs to stderr, filtered by `SKIFF_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
