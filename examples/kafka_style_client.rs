//! Use a zkherd ensemble the way a Kafka test setup does: read the connect string zkherd prints
//! (`eval "$(zkherd env)"` sets ZK_CONNECT), create a znode on one node, read it on another.
//!
//! ```sh
//! zkherd up -d
//! eval "$(zkherd env)"
//! cargo run --example kafka_style_client
//! zkherd down
//! ```

use std::time::Duration;

use zookeeper_client::{Acls, Client, CreateMode};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let connect = std::env::var("ZK_CONNECT")
        .map_err(|_| "ZK_CONNECT is not set; run `eval \"$(zkherd env)\"` first")?;
    let servers: Vec<&str> = connect.split(',').collect();
    let first = servers[0];
    let last = servers[servers.len() - 1];

    let writer = Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(first)
        .await?;
    let path = "/zkherd-example";
    let options = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let (stat, _) = writer.create(path, b"hello from zkherd", &options).await?;
    println!("created {path} on {first} at zxid {:#x}", stat.czxid);

    let reader = Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(last)
        .await?;
    reader.sync(path).await?;
    let (data, _) = reader.get_data(path).await?;
    println!("read it back on {last}: {}", String::from_utf8_lossy(&data));
    Ok(())
}
