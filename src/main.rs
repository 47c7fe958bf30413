//! `skiff`: one binary that is a Docker-compatible engine (`skiff daemon`), a
//! Kubernetes-compatible control plane (`skiff server`), a worker node (`skiff agent`), the per-container shim (`skiff shim`,
//! internal) and a docker-like client of the engine (`skiff run`, `skiff ps`, …).
//!
//! This file only parses the command line and dispatches; the work lives in the library crates.

mod cli;

/// Every mode allocates through jemalloc rather than glibc's malloc (docs/adr/0043): a
/// `skiff server` holding 10,000 pods keeps millions of small objects, and glibc's per-chunk
/// header, size rounding and partly used pages held ~9 MiB more of them (API bench). C code
/// linked in (SQLite, zstd) still uses glibc's malloc.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its first allocation (`_RJEM_MALLOC_CONF` in the environment
/// overrides them): two arenas, as glibc is capped for servers (a shim or a CLI uses one);
/// freed pages go back to the kernel after one second (default ten), and at once rather than
/// through `MADV_FREE`, whose pages count as resident until the kernel needs them.
/// The symbol is C's `const char *malloc_conf`, hence a thin pointer to the first byte.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &u8 = &b"narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "skiff",
    version,
    about = "A Docker-compatible engine and Kubernetes-compatible cluster in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the container engine, serving the Docker Engine API on a unix socket
    Daemon(cli::daemon::Args),
    /// Run the control plane, serving the Kubernetes API over HTTPS
    Server(Box<cli::server::Args>),
    /// Run a worker node that joins a `skiff server` with its node token
    Agent(Box<cli::agent::Args>),
    /// Internal: the per-container shim, started by the daemon
    #[command(hide = true)]
    Shim(cli::shim::Args),
    #[command(flatten)]
    Client(cli::client::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        // The shim must stay single-threaded: it sets up its own logging and never starts tokio.
        Command::Shim(args) => cli::shim::run(args),
        Command::Daemon(args) => {
            cli::tune_allocator();
            cli::init_logging();
            cli::daemon::run(args)
        }
        Command::Server(args) => {
            cli::tune_allocator();
            cli::init_logging();
            cli::server::run(*args)
        }
        Command::Agent(args) => {
            cli::init_logging();
            cli::agent::run(*args)
        }
        Command::Client(command) => return cli::client::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skiff: {e:#}");
            ExitCode::FAILURE
        }
    }
}
