//! `skiff daemon`.

/// Options of `skiff daemon`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("skiff daemon is not implemented yet")
}
