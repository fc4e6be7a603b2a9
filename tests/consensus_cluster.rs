//! Three Raft nodes on loopback with zkherd's log store, state machine and TCP network:
//! election, replication of ZooKeeper entries, leader loss, and catch-up after a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::async_runtime::watch::WatchReceiver;
use openraft::BasicNode;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use zkherd::server::consensus::log_store::LogStore;
use zkherd::server::consensus::network::{self, Network, Raft};
use zkherd::server::consensus::state_machine::{mirror, StateMachine};
use zkherd::server::consensus::Proposal;
use zkherd::server::persist::encode_entry;
use zkherd::server::proto::{op, Acl, WriteOp};
use zkherd::server::tree::{Entry, State, Txn};

struct Node {
    raft: Raft,
    tree: Arc<Mutex<State>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.raft.shutdown().await;
    }

    fn state(&self) -> State {
        self.tree.lock().unwrap().clone()
    }
}

fn config() -> Arc<openraft::Config> {
    Arc::new(
        openraft::Config {
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    )
}

async fn start(id: u64, dir: &std::path::Path, quorum: TcpListener, election: TcpListener) -> Node {
    let (log, _) = LogStore::open(&dir.join("raft"), true).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (sm, state) = StateMachine::open(&dir.join("sm"), Default::default(), tx).unwrap();
    let tree = Arc::new(Mutex::new(state));
    let raft = Raft::new(id, config(), Network::default(), log, sm)
        .await
        .unwrap();
    let tasks = vec![
        tokio::spawn(network::serve(quorum, raft.clone(), Default::default())),
        tokio::spawn(network::serve(election, raft.clone(), Default::default())),
        tokio::spawn(mirror(tree.clone(), rx)),
    ];
    Node { raft, tree, tasks }
}

fn proposal(txn: Txn) -> Proposal {
    Proposal {
        origin: None,
        entry: encode_entry(&Entry {
            zxid: 0,
            time_ms: 1_700_000_000_000,
            session_id: 0x100,
            auth: vec![],
            txn,
        }),
    }
}

fn create(path: &str) -> Txn {
    Txn::Write(WriteOp::Create {
        opcode: op::CREATE,
        path: path.into(),
        data: Some(path.as_bytes().to_vec()),
        acl: vec![Acl::world_all()],
        flags: 0,
        ttl: -1,
    })
}

async fn leader_of(nodes: &BTreeMap<u64, Node>, not: Option<u64>) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for n in nodes.values() {
            if let Some(l) = n.raft.metrics().borrow_watched().current_leader {
                if Some(l) != not && nodes.contains_key(&l) {
                    return l;
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader within 15 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Write through whichever node leads, retrying (bounded) as a client would when leadership
/// moves under it.
async fn write(nodes: &BTreeMap<u64, Node>, txn: Txn) -> zkherd::server::consensus::ApplyAck {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let leader = leader_of(nodes, None).await;
        match nodes[&leader]
            .raft
            .client_write(proposal(txn.clone()))
            .await
        {
            Ok(r) => return r.data,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no leader accepted the write: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn all_have(nodes: &BTreeMap<u64, Node>, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !nodes.values().all(|n| n.state().get(path).is_some()) {
        assert!(
            Instant::now() < deadline,
            "{path} not replicated to every node"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn listeners() -> (TcpListener, TcpListener, String) {
    let q = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!(
        "127.0.0.1:{}:{}",
        q.local_addr().unwrap().port(),
        e.local_addr().unwrap().port()
    );
    (q, e, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_fail_over_and_catch_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = BTreeMap::new();
    let mut members = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for id in 1..=3u64 {
        let (q, e, addr) = listeners().await;
        members.insert(id, BasicNode { addr: addr.clone() });
        addrs.insert(id, addr);
        nodes.insert(
            id,
            start(id, &tmp.path().join(format!("n{id}")), q, e).await,
        );
    }
    nodes[&1].raft.initialize(members).await.unwrap();
    write(
        &nodes,
        Txn::CreateSession {
            timeout_ms: 30000,
            passwd: [1; 16],
        },
    )
    .await;
    let ack = write(&nodes, create("/a")).await;
    let leader = leader_of(&nodes, None).await;
    let term = nodes[&leader].raft.metrics().borrow_watched().current_term;
    assert_eq!(ack.zxid >> 32, term as i64, "zxid epoch = Raft term");
    assert!(ack.zxid & 0xffff_ffff >= 1, "counted within the term");
    all_have(&nodes, "/a").await;
    let s1 = nodes[&1].state();
    assert!(
        nodes.values().all(|n| n.state() == s1),
        "replicas identical"
    );

    // The leader dies: the others elect a new one and keep accepting writes.
    let old = nodes.remove(&leader).unwrap();
    old.stop().await;
    let t0 = Instant::now();
    let new_leader = leader_of(&nodes, Some(leader)).await;
    eprintln!("new leader {new_leader} after {:?}", t0.elapsed());
    let ack2 = write(&nodes, create("/b")).await;
    assert!(ack2.zxid > ack.zxid, "zxids keep increasing across terms");
    all_have(&nodes, "/b").await;

    // The old leader comes back from its data dir and catches up.
    let addr = &addrs[&leader];
    let (qa, ea) = network::split_addr(addr).unwrap();
    let q = TcpListener::bind(qa).await.unwrap();
    let e = TcpListener::bind(ea).await.unwrap();
    nodes.insert(
        leader,
        start(leader, &tmp.path().join(format!("n{leader}")), q, e).await,
    );
    all_have(&nodes, "/b").await;
    let reference = nodes[&new_leader].state();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !nodes.values().all(|n| n.state() == reference) {
        assert!(Instant::now() < deadline, "replicas differ after catch-up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (_, n) in nodes {
        n.stop().await;
    }
}
