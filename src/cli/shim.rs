//! `skiff shim <state_dir>/shim.json`: the per-container shim, started by the engine through
//! `skiff_runtime::shim::launch`. It must stay single-threaded (no tokio here): logging goes
//! to `<state_dir>/shim.log` once it has daemonized (stderr before), never to a descriptor the
//! container's processes inherit as theirs.

use std::path::PathBuf;

/// Options of `skiff shim`.
#[derive(clap::Args)]
pub struct Args {
    /// The shim's configuration, written by the engine; `-`: a spare shim that reads the
    /// configuration's path from stdin
    config: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // libcgroups warns at every create and delete about each v1 controller the host does not
    // mount (hugetlb, perf_event, net_cls, net_prio here): noise, not news.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libcgroups::v1=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(|| skiff_runtime::shim::ShimLog)
        .init();
    if args.config.as_os_str() == "-" {
        skiff_runtime::shim::run_spare()?;
    } else {
        skiff_runtime::shim::run(&args.config)?;
    }
    Ok(())
}
