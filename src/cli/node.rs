//! `zkherd start|stop|restart|kill|pause|resume <NODE|--leader>`: one node, through the supervisor.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use super::Global;
use crate::supervisor::control::{NodeAction, Request, Response, Target};

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["node", "leader"])))]
pub struct NodeArgs {
    /// The node's myid (2 or node2).
    #[arg(value_parser = super::parse_node_id, value_name = "NODE")]
    node: Option<u16>,
    /// Whichever node leads right now.
    #[arg(long)]
    leader: bool,
}

pub async fn run(g: &Global, action: NodeAction, a: NodeArgs) -> Result<u8> {
    let spec = super::resolve_cluster(g)?;
    let target = match a.node {
        Some(id) => Target::Node(id),
        None => Target::Leader,
    };
    let req = Request::Node { action, target };
    match super::ask_supervisor(&spec.dir, &req, Duration::from_secs(60)).await? {
        Some(Response::Done { message }) => {
            println!("{message}");
            Ok(0)
        }
        Some(Response::Error { message }) => bail!("{message}"),
        Some(other) => bail!("supervisor: unexpected answer {other:?}"),
        None => bail!(
            "no supervisor is running for cluster {} ({}); start it with `zkherd up -d`",
            spec.name,
            spec.dir.display()
        ),
    }
}
