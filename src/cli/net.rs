//! `zkherd partition`, `isolate`, `heal`, `net delay|loss|show`: network faults between the
//! nodes of a cluster started with link proxies (`[network] faults = true` or `up --net
//! faults`; see `crate::supervisor::netfault`).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use super::Global;
use crate::spec::EnsembleSpec;
use crate::supervisor::control::{Request, Response};
pub use crate::supervisor::netfault::describe;
use crate::supervisor::netfault::{parse_delay, LinkFault, LinkInfo};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  zkherd partition 1,2 3        nodes 1 and 2 on one side, 3 on the other
  zkherd partition leader       the leader alone against the rest
  zkherd partition --from 1 --to 3
                                one way: traffic from 1 to 3 is held, 3 to 1 flows
A partition replaces the cuts in force (delays and loss stay); nodes not named form one more
island. A cut holds traffic as a lossy network would (TCP retransmits it after `zkherd heal`).")]
pub struct PartitionArgs {
    /// Islands: node ids separated by commas (`leader` names the current leader).
    #[arg(value_name = "ISLAND")]
    islands: Vec<String>,
    /// One-way cut: the node whose traffic is held…
    #[arg(long, requires = "to", conflicts_with = "islands", value_name = "NODE")]
    from: Option<String>,
    /// …and the node it is held from.
    #[arg(long, requires = "from", value_name = "NODE")]
    to: Option<String>,
}

#[derive(Debug, Args)]
pub struct IsolateArgs {
    /// The node cut off from every other (`leader` for the current leader).
    #[arg(value_name = "NODE")]
    node: String,
}

#[derive(Debug, Args)]
pub struct NetArgs {
    #[command(subcommand)]
    what: NetCommand,
}

#[derive(Debug, Subcommand)]
enum NetCommand {
    /// Delay every link to and from NODE (or `all` links): `50ms`, `1s`, `50ms±10ms`.
    Delay {
        #[arg(value_name = "NODE|all")]
        node: String,
        #[arg(value_name = "DELAY")]
        delay: String,
    },
    /// Delay that share of the traffic on NODE's links (or `all`) by a retransmission timeout
    /// (200 ms), as TCP does with lost packets: `10%`.
    Loss {
        #[arg(value_name = "NODE|all")]
        node: String,
        #[arg(value_name = "PERCENT")]
        percent: String,
    },
    /// The link faults in force.
    Show,
}

/// Ask the supervisor to change the link faults (see `Request::Net`); the faults in force.
pub(super) async fn ask(
    spec: &EnsembleSpec,
    set: Vec<LinkInfo>,
    heal: bool,
) -> Result<Vec<LinkInfo>> {
    match super::ask_supervisor(
        &spec.dir,
        &Request::Net { set, heal },
        Duration::from_secs(10),
    )
    .await?
    {
        Some(Response::Links { links }) => Ok(links),
        Some(Response::Error { message }) => bail!("{message}"),
        Some(other) => bail!("supervisor: unexpected answer {other:?}"),
        None => {
            super::require_supervisor(spec).await?;
            bail!("the supervisor did not answer")
        }
    }
}

/// A node named on the command line: its id, or `leader`.
async fn node_of(spec: &EnsembleSpec, token: &str) -> Result<u16> {
    let t = token.trim();
    if t.eq_ignore_ascii_case("leader") {
        let s = crate::status::collect(spec, None, Duration::from_secs(2)).await;
        return s
            .leader
            .ok_or_else(|| anyhow::anyhow!("no node reports itself leader right now"));
    }
    let id = super::parse_node_id(t).map_err(|e| anyhow::anyhow!("{e}"))?;
    if id == 0 || id > spec.total_nodes() {
        bail!(
            "there is no node {id}; cluster {} has nodes 1 to {}",
            spec.name,
            spec.total_nodes()
        );
    }
    Ok(id)
}

/// The fault in force on the link from `from` to `to`.
fn fault_of(current: &[LinkInfo], from: u16, to: u16) -> LinkFault {
    current
        .iter()
        .find(|l| l.from == from && l.to == to)
        .map(|l| l.fault)
        .unwrap_or_default()
}

/// The link with its cut set to `on`, its other faults as they are.
fn cut(on: bool, from: u16, to: u16, current: &[LinkInfo]) -> LinkInfo {
    let mut fault = fault_of(current, from, to);
    fault.cut = on;
    LinkInfo { from, to, fault }
}

/// The cuts that split `total` nodes into `islands` (the unnamed ones form one more).
pub(super) fn island_cuts(islands: &[BTreeSet<u16>], total: u16) -> Result<Vec<(u16, u16)>> {
    let mut seen = BTreeSet::new();
    for island in islands {
        for id in island {
            if !seen.insert(*id) {
                bail!("node {id} is in two islands; each node belongs to one");
            }
        }
    }
    let rest: BTreeSet<u16> = (1..=total).filter(|id| !seen.contains(id)).collect();
    let mut all: Vec<&BTreeSet<u16>> = islands.iter().collect();
    if !rest.is_empty() {
        all.push(&rest);
    }
    if all.len() < 2 {
        bail!("one island holds every node: nothing to cut (name the islands, e.g. `1,2 3`)");
    }
    let island_of = |id: u16| all.iter().position(|i| i.contains(&id));
    let mut cuts = Vec::new();
    for a in 1..=total {
        for b in 1..=total {
            if a != b && island_of(a) != island_of(b) {
                cuts.push((a, b));
            }
        }
    }
    Ok(cuts)
}

async fn apply_cuts(spec: &EnsembleSpec, cuts: Vec<(u16, u16)>) -> Result<()> {
    let current = ask(spec, vec![], false).await?;
    let total = spec.total_nodes();
    // A partition replaces the cuts in force; delays and loss stay.
    let mut set = Vec::new();
    for a in 1..=total {
        for b in 1..=total {
            if a != b {
                set.push(cut(cuts.contains(&(a, b)), a, b, &current));
            }
        }
    }
    let now = ask(spec, set, false).await?;
    println!("links: {}", describe(&now));
    Ok(())
}

pub async fn partition(g: &Global, a: PartitionArgs) -> Result<u8> {
    let spec = super::resolve_cluster(g)?;
    if let (Some(from), Some(to)) = (&a.from, &a.to) {
        let (from, to) = (node_of(&spec, from).await?, node_of(&spec, to).await?);
        if from == to {
            bail!("--from and --to name the same node {from}");
        }
        let current = ask(&spec, vec![], false).await?;
        let now = ask(&spec, vec![cut(true, from, to, &current)], false).await?;
        println!("links: {}", describe(&now));
        return Ok(0);
    }
    if a.islands.is_empty() {
        bail!("name the islands (e.g. `zkherd partition 1,2 3`), or --from A --to B");
    }
    let mut islands = Vec::new();
    for island in &a.islands {
        let mut ids = BTreeSet::new();
        for t in island.split(',').filter(|t| !t.trim().is_empty()) {
            ids.insert(node_of(&spec, t).await?);
        }
        islands.push(ids);
    }
    let cuts = island_cuts(&islands, spec.total_nodes())?;
    apply_cuts(&spec, cuts).await?;
    Ok(0)
}

pub async fn isolate(g: &Global, a: IsolateArgs) -> Result<u8> {
    let spec = super::resolve_cluster(g)?;
    let id = node_of(&spec, &a.node).await?;
    let cuts = island_cuts(&[[id].into()], spec.total_nodes())?;
    apply_cuts(&spec, cuts).await?;
    Ok(0)
}

pub async fn heal(g: &Global) -> Result<u8> {
    let spec = super::resolve_cluster(g)?;
    let now = ask(&spec, vec![], true).await?;
    println!("links: {}", describe(&now));
    Ok(0)
}

/// How `net delay|loss` changes a link's fault.
type FaultChange = Box<dyn Fn(&mut LinkFault)>;

pub async fn net(g: &Global, a: NetArgs) -> Result<u8> {
    let spec = super::resolve_cluster(g)?;
    let (node, change): (&str, FaultChange) = match &a.what {
        NetCommand::Show => {
            println!("links: {}", describe(&ask(&spec, vec![], false).await?));
            return Ok(0);
        }
        NetCommand::Delay { node, delay } => {
            let (d, j) = parse_delay(delay).map_err(anyhow::Error::msg)?;
            (
                node,
                Box::new(move |f: &mut LinkFault| {
                    f.delay_ms = d;
                    f.jitter_ms = j;
                }),
            )
        }
        NetCommand::Loss { node, percent } => {
            let p: u8 = percent
                .trim()
                .trim_end_matches('%')
                .parse()
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| anyhow::anyhow!("{percent:?} is not a percentage like 10%"))?;
            (node, Box::new(move |f: &mut LinkFault| f.loss_pct = p))
        }
    };
    let only = if node.eq_ignore_ascii_case("all") {
        None
    } else {
        Some(node_of(&spec, node).await?)
    };
    let current = ask(&spec, vec![], false).await?;
    let total = spec.total_nodes();
    let mut set = Vec::new();
    for a in 1..=total {
        for b in 1..=total {
            if a == b || only.is_some_and(|n| n != a && n != b) {
                continue;
            }
            let mut fault = fault_of(&current, a, b);
            change(&mut fault);
            set.push(LinkInfo {
                from: a,
                to: b,
                fault,
            });
        }
    }
    let now = ask(&spec, set, false).await?;
    println!("links: {}", describe(&now));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn islands_cut_every_pair_across_them() {
        let cuts = island_cuts(&[[1, 2].into(), [3].into()], 3).unwrap();
        assert_eq!(cuts, vec![(1, 3), (2, 3), (3, 1), (3, 2)]);
        // Unnamed nodes form one more island.
        let cuts = island_cuts(&[[3].into()], 3).unwrap();
        assert_eq!(cuts, vec![(1, 3), (2, 3), (3, 1), (3, 2)]);
        assert!(island_cuts(&[[1, 2].into(), [2, 3].into()], 3)
            .unwrap_err()
            .to_string()
            .contains("node 2 is in two islands"));
        assert!(island_cuts(&[[1, 2, 3].into()], 3).is_err());
    }

    #[test]
    fn symmetric_faults_are_described_once() {
        let c = LinkFault {
            cut: true,
            ..Default::default()
        };
        let links = vec![
            LinkInfo {
                from: 1,
                to: 3,
                fault: c,
            },
            LinkInfo {
                from: 3,
                to: 1,
                fault: c,
            },
            LinkInfo {
                from: 2,
                to: 1,
                fault: c,
            },
        ];
        assert_eq!(describe(&links), "1<->3 cut; 2->1 cut");
    }
}
