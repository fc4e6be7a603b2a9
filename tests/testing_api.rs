//! `zkherd::testing` and the builtin ensemble's quorum behaviour: a killed leader is replaced
//! with no acknowledged write lost; with 2 of 3 voters gone the survivor stops serving; one
//! back restores the quorum; a restarted node catches up.

use std::time::Duration;

use zkherd::probe;
use zkherd::server::consensus::log_store::log_index_range;
use zkherd::testing::TestingCluster;
use zookeeper_client::{Acls, Client, CreateMode};

/// With RUST_LOG set, the nodes' logs go to the test's output (shown for failing tests).
fn init_log() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

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

/// Node `id` stops serving within 10 s (it lost the quorum).
async fn stops_serving(c: &TestingCluster, id: u64) {
    let addr = c.client_addr(id).unwrap();
    for _ in 0..100 {
        if !serving(addr).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let srvr = probe::four_letter_word(addr, "srvr", Duration::from_secs(1)).await;
    panic!("node {id} still serves without a quorum: {srvr:?}");
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
    stops_serving(&c, survivor).await;

    // Bring one back: quorum again, and the restarted node has caught up.
    c.restart(leader).await.unwrap();
    c.wait_for_quorum(Duration::from_secs(15)).await.unwrap();
    let back = connect(&c.client_addr(leader).unwrap().to_string()).await;
    back.sync("/after-failover").await.unwrap();
    assert!(back.check_stat("/after-failover").await.unwrap().is_some());
    // The two running replicas hold the same tree.
    c.wait_for_identical_replicas(Duration::from_secs(15))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_recovers_by_snapshot() {
    // snapCount=20: snapshots every 20 entries, and the log behind them is purged, so a node
    // that lost everything cannot be fed from the log alone.
    init_log();
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
                let range = log_index_range(&dir.join("zkherd-raft/raft")).unwrap();
                if let Some((index, _)) = range {
                    eprintln!("wiped node: first Raft log index after recovery = {index}");
                    assert!(index > 20, "the wiped node replayed the log from {index}");
                }
                assert!(
                    dir.join("zkherd-raft/sm/snapshot").is_file(),
                    "a snapshot was installed"
                );
                // All three replicas hold the same tree.
                c.wait_for_identical_replicas(Duration::from_secs(15))
                    .await
                    .unwrap();
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

async fn mode_of(addr: std::net::SocketAddr) -> Option<probe::Mode> {
    let t = probe::four_letter_word(addr, "srvr", Duration::from_secs(1))
        .await
        .ok()?;
    probe::parse_srvr(&t).ok().map(|s| s.mode)
}

/// Wait (bounded) until `path` is readable on every running node, after a `sync` on each.
async fn visible_everywhere(c: &TestingCluster, ids: &[u64], path: &str) {
    for id in ids {
        let addr = c.client_addr(*id).unwrap().to_string();
        let r = connect(&addr).await;
        tokio::time::timeout(Duration::from_secs(10), r.sync(path))
            .await
            .unwrap_or_else(|_| panic!("sync on node {id} hung"))
            .unwrap_or_else(|e| panic!("sync on node {id}: {e}"));
        assert!(
            r.check_stat(path).await.unwrap().is_some(),
            "{path} written elsewhere is missing on node {id} after sync"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_and_an_observer_replicate_fail_over_and_recover() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let mut c = TestingCluster::start_with_observers(3, 1, "snapCount=40")
        .await
        .unwrap();
    let all = [1u64, 2, 3, 4];
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    assert_eq!(
        mode_of(c.client_addr(4).unwrap()).await,
        Some(probe::Mode::Observer)
    );

    // A write on any node (the observer included) is visible on all.
    for id in all {
        let w = connect(&c.client_addr(id).unwrap().to_string()).await;
        w.create(&format!("/from{id}"), b"x", &opts).await.unwrap();
    }
    for id in all {
        visible_everywhere(&c, &all, &format!("/from{id}")).await;
    }
    c.wait_for_identical_replicas(Duration::from_secs(10))
        .await
        .unwrap();

    // A session on the observer, with an ephemeral, and a write load through it.
    let leader = c.leader().await.unwrap();
    let obs = connect(&c.client_addr(4).unwrap().to_string()).await;
    let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    obs.create("/observer-session", b"", &eph).await.unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let addr = c.client_addr(4).unwrap().to_string();
        tokio::spawn(async move {
            let w = connect(&addr).await;
            let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
            for i in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let p = format!("/load{i}");
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(5), w.create(&p, b"v", &opts)).await
                {
                    acked.lock().unwrap().push(p);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Kill the leader under the load: a new leader, no acknowledged write lost.
    c.kill(leader).await;
    let new_leader = c.wait_for_quorum(Duration::from_secs(15)).await.unwrap();
    assert_ne!(new_leader, leader);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(15), load)
        .await
        .expect("the load stops")
        .unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 10, "only {} writes acknowledged", acked.len());
    let survivors: Vec<u64> = all.iter().copied().filter(|id| *id != leader).collect();
    for id in &survivors {
        let r = connect(&c.client_addr(*id).unwrap().to_string()).await;
        r.sync("/").await.unwrap();
        for p in &acked {
            assert!(
                r.check_stat(p).await.unwrap().is_some(),
                "acknowledged {p} lost on node {id}"
            );
        }
    }
    // The observer's session survived the failover, ephemeral included.
    assert!(obs.check_stat("/observer-session").await.unwrap().is_some());
    obs.create("/observer-after", b"", &opts).await.unwrap();
    c.wait_for_identical_replicas(Duration::from_secs(10))
        .await
        .unwrap();

    // The killed node rejoins and catches up.
    c.restart(leader).await.unwrap();
    visible_everywhere(&c, &all, "/observer-after").await;
    let (zxid, _) = c
        .wait_for_identical_replicas(Duration::from_secs(15))
        .await
        .unwrap();
    assert!(zxid >> 32 >= 2, "a new epoch after the failover: {zxid:#x}");

    // Stop 2 of 3 voters: the surviving voter and the observer stop serving.
    let leader = c.leader().await.unwrap();
    let other = (1..=3).find(|id| *id != leader).unwrap();
    let survivor = (1..=3).find(|id| *id != leader && *id != other).unwrap();
    c.kill(leader).await;
    c.kill(other).await;
    for id in [survivor, 4] {
        stops_serving(&c, id).await;
    }
    // One back: quorum again.
    c.restart(other).await.unwrap();
    c.wait_for_quorum(Duration::from_secs(15)).await.unwrap();
    let w = connect(&c.client_addr(4).unwrap().to_string()).await;
    w.create("/quorum-again", b"", &opts).await.unwrap();
    c.restart(leader).await.unwrap();
    visible_everywhere(&c, &all, "/quorum-again").await;
    c.wait_for_identical_replicas(Duration::from_secs(15))
        .await
        .unwrap();

    // Wipe a follower's data dir: it recovers by snapshot, identical to the others.
    for i in 0..100 {
        w.create(&format!("/more{i}"), b"m", &opts).await.unwrap();
    }
    let leader = c.leader().await.unwrap();
    let victim = (1..=3).find(|id| *id != leader).unwrap();
    c.kill(victim).await;
    let dir = c.data_dir(victim);
    std::fs::remove_dir_all(dir.join("zkherd-raft")).unwrap();
    c.restart(victim).await.unwrap();
    visible_everywhere(&c, &all, "/more99").await;
    c.wait_for_identical_replicas(Duration::from_secs(20))
        .await
        .unwrap();
    assert!(dir.join("zkherd-raft/sm/snapshot").is_file());
}
