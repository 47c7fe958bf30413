//! `skiff server`.

/// Options of `skiff server`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("skiff server is not implemented yet")
}
