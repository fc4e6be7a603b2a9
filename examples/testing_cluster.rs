//! `zkherd::testing`: a 3-node builtin ensemble inside a test process, a write, the leader's
//! death, and the data still there under the new leader.
//!
//! ```sh
//! cargo run --example testing_cluster
//! ```

use std::time::Duration;

use zookeeper_client::{Acls, Client, CreateMode};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cluster = zkherd::testing::TestingCluster::start(3).await?;
    println!("ensemble up: {}", cluster.connect_string());
    let client = Client::connect(&cluster.connect_string()).await?;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create("/hello", b"world", &opts).await?;
    let leader = cluster.leader().await.expect("a leader");
    println!("node {leader} leads; killing it");
    cluster.kill(leader).await;
    let new_leader = cluster.wait_for_quorum(Duration::from_secs(10)).await?;
    println!("node {new_leader} leads now");
    let other = cluster
        .client_addr(new_leader)
        .expect("address")
        .to_string();
    let reader = Client::connect(&other).await?;
    let (data, _) = reader.get_data("/hello").await?;
    println!("/hello = {}", String::from_utf8_lossy(&data));
    Ok(())
}
