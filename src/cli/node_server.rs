//! `zkherd node --config <zoo.cfg>`: run the builtin ZooKeeper-compatible server in the
//! foreground. Exit codes follow Apache's meaning, so the supervisor classifies both alike:
//! 2 = bad configuration, 3 = data directory unusable, 14 = a port cannot be bound.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::server::{self, config::ZooCfg};

#[derive(Debug, Args)]
pub struct NodeServerArgs {
    /// The node's zoo.cfg (the same file Apache ZooKeeper would read).
    #[arg(long, value_name = "ZOO_CFG")]
    config: PathBuf,
}

pub async fn run(a: NodeServerArgs) -> Result<u8> {
    let cfg = match ZooCfg::load(&a.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zkherd node: invalid config, exiting: {e}");
            return Ok(2);
        }
    };
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("zkherd node: cannot handle SIGTERM ({e}); not starting");
            return Ok(1);
        }
    };
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down");
    };
    match server::run(cfg, shutdown).await {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("zkherd node: {e}");
            Ok(e.exit_code() as u8)
        }
    }
}
