//! `zkherd down`: stop every node and the supervisor; `--purge` deletes the cluster directory.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use super::Global;
use crate::ports::PortPlan;
use crate::render;
use crate::spec::EnsembleSpec;
use crate::supervisor::control::{Request, Response};
use crate::supervisor::{self, ClusterFiles, ClusterLock};

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also delete the cluster directory (data, logs, configs). Refuses directories zkherd did
    /// not create.
    #[arg(long)]
    purge: bool,
}

pub async fn run(g: &Global, a: DownArgs) -> Result<u8> {
    let spec = super::resolve_cluster(g)?;
    let files = ClusterFiles::new(&spec.dir);
    match ask_down(&spec).await? {
        Some(message) => {
            println!("{message}");
            // The supervisor answers before it exits: wait (bounded) until it has let go of
            // its lock, so no process of the cluster is left when `down` returns.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while ClusterLock::is_held(&files) && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        None => {
            // No supervisor answers. Take its lock (so none starts meanwhile) and clean up
            // whatever a dead supervisor left running.
            if spec.dir.exists() {
                let _lock = ClusterLock::acquire(&files)?;
                let cleaned = supervisor::clean_orphans(&files).await;
                for line in &cleaned {
                    println!("{line}");
                }
                let _ = std::fs::remove_file(&files.socket);
                if cleaned.is_empty() {
                    println!("cluster {} was not running", spec.name);
                }
            } else {
                println!(
                    "cluster {} does not exist ({})",
                    spec.name,
                    spec.dir.display()
                );
            }
        }
    }
    // Anything still answering on our client ports is not ours to kill: say so.
    let plan = PortPlan::new(&spec);
    let mut foreign = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        foreign.clear();
        for n in plan.local_nodes(&spec) {
            if crate::ports::is_local(n.host) && crate::ports::is_listening_at(n.host, n.client) {
                let who = crate::ports::find_listener_at(n.host, n.client)
                    .map(|h| format!("pid {} ({})", h.pid, h.command))
                    .unwrap_or_else(|| "an unknown process".into());
                foreign.push(format!(
                    "port {} (node {}) is still held by {who}",
                    n.client, n.id
                ));
            }
        }
        if foreign.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for f in &foreign {
        eprintln!("warning: {f}; it was not started by this cluster's supervisor");
    }
    if a.purge {
        render::purge(&spec.dir)?;
        println!("purged {}", spec.dir.display());
    }
    Ok(0)
}

/// `down` when the supervisor answered: ask it to stop everything.
pub async fn ask_down(spec: &EnsembleSpec) -> Result<Option<String>> {
    match super::ask_supervisor(&spec.dir, &Request::Down, Duration::from_secs(120)).await? {
        Some(Response::Done { message }) => Ok(Some(message)),
        Some(Response::Error { message }) => bail!("supervisor: {message}"),
        Some(other) => bail!("supervisor: unexpected answer {other:?}"),
        None => Ok(None),
    }
}
