//! `zkherd env`: the connect string in the form a shell, Kafka or a program wants.

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::Global;
use crate::ports::PortPlan;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// `export ZK_CONNECT=…` lines for `eval "$(zkherd env)"`.
    Shell,
    /// A `zookeeper.connect=` line for Kafka's server.properties.
    Kafka,
    /// An object with the connect string and every node's address.
    Json,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    #[arg(long, value_enum, default_value_t = Format::Shell)]
    format: Format,
}

pub async fn run(g: &Global, a: EnvArgs) -> Result<u8> {
    let spec = super::resolve_cluster(g)?;
    let plan = PortPlan::new(&spec);
    let connect = plan.connect_string();
    match a.format {
        Format::Shell => {
            println!("export ZK_CONNECT={connect}");
            println!("export ZOOKEEPER_CONNECT={connect}");
        }
        Format::Kafka => println!("zookeeper.connect={connect}"),
        Format::Json => {
            let nodes: Vec<_> = plan
                .nodes
                .iter()
                .map(|n| {
                    serde_json::json!({
                        "id": n.id,
                        "membership": n.membership,
                        "host": n.host.to_string(),
                        "host_name": spec.host_name(n.id),
                        "client_port": n.client,
                        "quorum_port": n.quorum,
                        "election_port": n.election,
                    })
                })
                .collect();
            let v = serde_json::json!({
                "cluster": spec.name,
                "connect_string": connect,
                "nodes": nodes,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    Ok(0)
}
