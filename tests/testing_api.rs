//! `zkherd::testing` and the builtin ensemble's quorum behaviour: a killed leader is replaced
//! with no acknowledged write lost; with 2 of 3 voters gone the survivor stops serving; one
//! back restores the quorum; a restarted node catches up.

use std::time::Duration;

use zkherd::probe;
use zkherd::testing::TestingCluster;
use zookeeper_client::{Acls, Client, CreateMode};

async fn connect(addr: &str) -> Client {
    Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_secs(5))
        .connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

async fn serving(addr: std::net::SocketAddr) -> bool {
    match probe::four_letter_word(addr, "srvr", Duration::from_secs(1)).await {
        Ok(t) => probe::parse_srvr(&t).is_ok(),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_testing_cluster_survives_the_loss_of_a_minority_and_only_a_minority() {
    let mut c = TestingCluster::start(3).await.unwrap();
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let client = connect(&c.connect_string()).await;
    for i in 0..20 {
        client.create(&format!("/k{i}"), b"v", &opts).await.unwrap();
    }
    drop(client);

    // Kill the leader: another node leads, every acknowledged write is there.
    let leader = c.leader().await.unwrap();
    c.kill(leader).await;
    let new_leader = c.wait_for_quorum(Duration::from_secs(15)).await.unwrap();
    assert_ne!(new_leader, leader);
    let reader = connect(&c.client_addr(new_leader).unwrap().to_string()).await;
    for i in 0..20 {
        reader.get_data(&format!("/k{i}")).await.unwrap();
    }
    reader.create("/after-failover", b"", &opts).await.unwrap();
    drop(reader);

    // Stop a second voter: the survivor must stop serving (no quorum).
    let survivor = (1..=3)
        .find(|id| *id != leader && *id != new_leader)
        .unwrap();
    c.kill(new_leader).await;
    let addr = c.client_addr(survivor).unwrap();
    let mut stopped = false;
    for _ in 0..100 {
        if !serving(addr).await {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped, "node {survivor} still serves without a quorum");

    // Bring one back: quorum again, and the restarted node has caught up.
    c.restart(leader).await.unwrap();
    c.wait_for_quorum(Duration::from_secs(15)).await.unwrap();
    let back = connect(&c.client_addr(leader).unwrap().to_string()).await;
    back.sync("/after-failover").await.unwrap();
    assert!(back.check_stat("/after-failover").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_recovers_by_snapshot() {
    // snapCount=20: snapshots every 20 entries, and the log behind them is purged, so a node
    // that lost everything cannot be fed from the log alone.
    let mut c = TestingCluster::start_with(3, "snapCount=20").await.unwrap();
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let client = connect(&c.connect_string()).await;
    for i in 0..150 {
        client
            .create(&format!("/s{i}"), i.to_string().as_bytes(), &opts)
            .await
            .unwrap();
    }
    drop(client);
    // Wipe a follower that is not the highest myid (that one campaigns on a first start).
    let leader = c.leader().await.unwrap();
    let victim = (1..=2).find(|id| *id != leader).unwrap();
    c.kill(victim).await;
    let dir = c.data_dir(victim);
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name();
        if name != "zoo.cfg" && name != "myid" {
            let p = entry.path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
    }
    c.restart(victim).await.unwrap();
    // Its own replica has every znode, with the data written.
    let addr = c.client_addr(victim).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if serving(addr).await {
            let r = connect(&addr.to_string()).await;
            if let Ok((data, _)) = r.get_data("/s149").await {
                assert_eq!(data, b"149");
                for i in 0..150 {
                    let (d, _) = r.get_data(&format!("/s{i}")).await.unwrap();
                    assert_eq!(d, i.to_string().as_bytes());
                }
                // It came back by snapshot: its own Raft log starts after the purged range.
                let log = std::fs::read(dir.join("zkherd-raft/raft/log")).unwrap_or_default();
                if log.len() > 8 {
                    let len = u32::from_be_bytes(log[..4].try_into().unwrap()) as usize;
                    let first: serde_json::Value =
                        serde_json::from_slice(&log[8..8 + len]).unwrap();
                    let index = first["log_id"]["index"].as_u64().unwrap();
                    eprintln!("wiped node: first Raft log index after recovery = {index}");
                    assert!(index > 20, "the wiped node replayed the log from {index}");
                }
                assert!(
                    dir.join("zkherd-raft/sm/snapshot").is_file(),
                    "a snapshot was installed"
                );
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "wiped node {victim} did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
