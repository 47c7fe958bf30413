//! `skiff shim`.

/// Options of `skiff shim`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("skiff shim is not implemented yet")
}
