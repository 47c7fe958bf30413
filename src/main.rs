//! `skiff`: one binary that is a Docker-compatible engine (`skiff daemon`), a
//! Kubernetes-compatible control plane (`skiff server`), a worker node (`skiff agent`), the per-container shim (`skiff shim`,
//! internal) and a docker-like client of the engine (`skiff run`, `skiff ps`, …).
//!
//! This file only parses the command line and dispatches; the work lives in the library crates.

mod cli;

// Every mode allocates through jemalloc, with the settings `skiff-alloc` holds (docs/adr/0043).
use skiff_alloc as _;

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
