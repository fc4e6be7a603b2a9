//! `zkherd export`: per-host bundles (zoo.cfg, myid, systemd unit, init script, README) for
//! servers that will not run zkherd's supervisor.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::Global;
use crate::export::{self, Target};
use crate::spec::{BackendKind, Overrides};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Directory to write the bundles into (must be new or empty): one folder per member.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Install prefix on the hosts: member N's instance dir is PREFIX/nodeN
    /// [default: /var/lib/zkherd/<name>].
    #[arg(long, value_name = "PATH")]
    prefix: Option<PathBuf>,
    /// Where the zkherd executable lives on the hosts (builtin backend).
    #[arg(long, value_name = "PATH", default_value = "/usr/local/bin/zkherd")]
    zkherd_bin: PathBuf,
    /// Which program the bundles run: apache or builtin (default: the spec's backend).
    #[arg(long, value_parser = super::parse_backend, value_name = "NAME")]
    backend: Option<BackendKind>,
}

pub async fn run(g: &Global, a: ExportArgs) -> Result<u8> {
    let spec = super::resolve_spec(
        g,
        Overrides {
            backend: a.backend,
            ..Overrides::default()
        },
    )?;
    let prefix = a
        .prefix
        .unwrap_or_else(|| PathBuf::from("/var/lib/zkherd").join(&spec.name));
    anyhow::ensure!(
        prefix.is_absolute(),
        "--prefix {} must be an absolute path: zoo.cfg's dataDir is read on the target host",
        prefix.display()
    );
    let target = Target {
        prefix,
        zkherd_bin: a.zkherd_bin,
        spec_text: super::spec_file(g).and_then(|p| std::fs::read_to_string(p).ok()),
    };
    let bundles = export::export(&spec, &target, &a.out)?;
    println!(
        "wrote {} bundles of ensemble {} ({} backend) to {}:",
        bundles.len(),
        spec.name,
        spec.backend,
        a.out.display()
    );
    for b in &bundles {
        println!("  member {} on {}: {}", b.id, b.host, b.dir.display());
    }
    println!("next: copy each folder to its host and follow its README.md");
    Ok(0)
}
