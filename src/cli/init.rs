//! `zkherd init`: write a commented zkherd.toml holding the defaults.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::Global;
use crate::spec::DEFAULT_SPEC_TOML;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

pub fn run(g: &Global, a: InitArgs) -> Result<u8> {
    let path = g
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from("zkherd.toml"));
    if path.exists() && !a.force {
        bail!(
            "{} already exists; use --force to overwrite it",
            path.display()
        );
    }
    std::fs::write(&path, DEFAULT_SPEC_TOML)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}; edit it, then run `zkherd up`", path.display());
    Ok(0)
}
