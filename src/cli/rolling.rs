//! `zkherd rolling-restart`: restart every node one at a time, as an operator would after a
//! config change: observers and followers first, the leader last, each only once the ensemble
//! is healthy again (one leader, every voter following, a committed write).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;

use super::wait::wait_ready;
use super::Global;
use crate::ports::Membership;
use crate::spec::EnsembleSpec;
use crate::status::{EnsembleStatus, Role};
use crate::supervisor::control::{NodeAction, Request, Response, Target};

#[derive(Debug, Args)]
pub struct RollingArgs {
    /// Seconds to pause after a node is back and the ensemble healthy, before the next one.
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    wait_between: u64,
    /// Seconds each node may take to come back (the ensemble healthy again) before the
    /// rolling restart is aborted.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    timeout: u64,
}

/// The next node to restart: an observer, then a follower, by myid; the leader last.
fn next_node(s: &EnsembleStatus, left: &[u16]) -> Option<u16> {
    let rank = |id: u16| match s.node(id) {
        Some(n) if n.role == Role::Leader => 2,
        Some(n) if n.membership == Membership::Observer => 0,
        _ => 1,
    };
    left.iter().copied().min_by_key(|id| (rank(*id), *id))
}

pub async fn run(g: &Global, a: RollingArgs) -> Result<u8> {
    let spec = super::resolve_cluster(g)?;
    roll(
        &spec,
        Duration::from_secs(a.wait_between),
        Duration::from_secs(a.timeout),
    )
    .await?;
    Ok(0)
}

/// Restart every node of `spec`'s running ensemble in turn; see the module comment.
pub async fn roll(spec: &EnsembleSpec, wait_between: Duration, timeout: Duration) -> Result<()> {
    if let Some(m) = spec.local_member {
        bail!(
            "this supervisor runs member {m} only; on an ensemble spread over several hosts, run \
             `zkherd restart {m}` on each host in turn, with `zkherd wait` between"
        );
    }
    super::require_supervisor(spec).await?;
    let t0 = Instant::now();
    let mut status = match wait_ready(spec, Duration::from_secs(10), |_| {}).await {
        Ok(s) => s,
        Err(e) => bail!(
            "the ensemble is not healthy, so a rolling restart could cost the quorum; nothing \
             was restarted. {e}"
        ),
    };
    let mut left: Vec<u16> = status.nodes.iter().map(|n| n.id).collect();
    let total = left.len();
    while let Some(id) = next_node(&status, &left) {
        let role = status.node(id).map_or("?", |n| n.role.as_str());
        println!("restarting node {id} ({role})");
        let step = Instant::now();
        let req = Request::Node {
            action: NodeAction::Restart,
            target: Target::Node(id),
        };
        match super::ask_supervisor(&spec.dir, &req, timeout).await? {
            Some(Response::Done { .. }) => {}
            Some(Response::Error { message }) => {
                bail!("node {id} could not be restarted: {message}; rolling restart aborted")
            }
            Some(other) => bail!("supervisor: unexpected answer {other:?}"),
            None => bail!("the supervisor is gone; rolling restart aborted at node {id}"),
        }
        left.retain(|n| *n != id);
        status = match wait_ready(spec, timeout, |_| {}).await {
            Ok(s) => s,
            Err(e) => {
                let rest = left
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                bail!(
                    "node {id} did not come back within {timeout:?}: {e}\nrolling restart \
                     aborted; not restarted: {}",
                    if rest.is_empty() { "none" } else { &rest }
                );
            }
        };
        println!(
            "node {id} back in {:.2}s; healthy, leader node {}",
            step.elapsed().as_secs_f64(),
            status.leader.map_or("-".into(), |l| l.to_string())
        );
        if !left.is_empty() && !wait_between.is_zero() {
            tokio::time::sleep(wait_between).await;
        }
    }
    println!(
        "rolling restart of {total} nodes done in {:.2}s; leader node {}",
        t0.elapsed().as_secs_f64(),
        status.leader.map_or("-".into(), |l| l.to_string())
    );
    Ok(())
}
