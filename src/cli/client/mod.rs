//! The docker-like client verbs (`skiff run`, `skiff ps`, …): a client of the Docker Engine
//! API served by `skiff daemon`, through bollard.

use std::process::ExitCode;

/// Client verbs.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Show the engine's version
    Version,
}

pub fn run(_command: Command) -> ExitCode {
    eprintln!("skiff: client commands are not implemented yet");
    ExitCode::FAILURE
}
