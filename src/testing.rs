//! Rust's answer to Curator's `TestingCluster`: an N-node builtin ensemble inside your test
//! process, on free loopback ports, with its data in a temporary directory.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut cluster = zkherd::testing::TestingCluster::start(3).await?;
//! let client = zookeeper_client::Client::connect(&cluster.connect_string()).await?;
//! let leader = cluster.leader().await.expect("a leader");
//! cluster.kill(leader).await;               // the process-equivalent of kill -9
//! cluster.wait_for_quorum(std::time::Duration::from_secs(10)).await?;
//! cluster.restart(leader).await?;          // comes back from its data dir and catches up
//! # drop(client);
//! # Ok(()) }
//! ```
//!
//! Each node runs on a small tokio runtime of its own inside your process, so [`kill`] is like
//! `kill -9`: the runtime is shut down and every task of that node (openraft's included) stops
//! at once. Each node has its own `zoo.cfg` and data dir, as `zkherd up` would render them.
//!
//! [`kill`]: TestingCluster::kill

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::probe;
use crate::supervisor::task_node::TaskNode;

#[derive(Debug, thiserror::Error)]
pub enum TestingError {
    #[error("cannot prepare the cluster: {0}")]
    Setup(String),
    #[error("no quorum within {0:?}")]
    NoQuorum(Duration),
    #[error("replicas still differ (myid → (zxid, digest)): {0}")]
    Diverged(String),
}

/// A builtin ensemble in this process. Dropping it stops every node and deletes its data.
pub struct TestingCluster {
    dir: tempfile::TempDir,
    /// myid → client address.
    clients: BTreeMap<u64, SocketAddr>,
    /// myids of the observers (numbered after the voters).
    observers: std::collections::BTreeSet<u64>,
    /// Each node on a runtime of its own: the same in-process node the supervisor runs for
    /// `runtime = "tasks"`.
    running: BTreeMap<u64, TaskNode>,
}

/// `n` distinct free loopback ports below the kernel's ephemeral range, so that no outgoing
/// connection (whose local port comes from that range) can take one between this check and the
/// node's bind. Several test processes pick from different places (seeded by pid and time).
fn free_ports(n: usize) -> Result<Vec<u16>, TestingError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (lo, hi) = (10_000u32, ephemeral_low.clamp(12_000, 65_535));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed = std::process::id().wrapping_mul(7919).wrapping_add(nanos);
    let mut held = Vec::new();
    for _ in 0..5000 {
        if held.len() == n {
            break;
        }
        let step = NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(37);
        let port = (lo + seed.wrapping_add(step) % (hi - lo)) as u16;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    if held.len() < n {
        return Err(TestingError::Setup(format!(
            "fewer than {n} free loopback ports in {lo}..{hi}"
        )));
    }
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| TestingError::Setup(format!("no free port: {e}")))
}

impl TestingCluster {
    /// Start `n` voters and wait (up to 30 s) until a leader serves with every voter in sync.
    pub async fn start(n: u64) -> Result<TestingCluster, TestingError> {
        Self::start_with(n, "").await
    }

    /// Like [`TestingCluster::start`], with extra zoo.cfg lines (e.g. `snapCount=50`).
    pub async fn start_with(n: u64, extra_cfg: &str) -> Result<TestingCluster, TestingError> {
        Self::start_with_observers(n, 0, extra_cfg).await
    }

    /// `voters` voting members plus `observers` observers (myids `voters+1..`), which
    /// replicate and serve clients but never vote; extra zoo.cfg lines as in
    /// [`TestingCluster::start_with`].
    pub async fn start_with_observers(
        voters: u64,
        observers: u64,
        extra_cfg: &str,
    ) -> Result<TestingCluster, TestingError> {
        let n = voters + observers;
        let dir = tempfile::Builder::new()
            .prefix("zkherd-testing")
            .tempdir()
            .map_err(|e| TestingError::Setup(e.to_string()))?;
        let free = free_ports(3 * n as usize)?;
        let ports: BTreeMap<u64, (u16, u16, u16)> = (1..=n)
            .zip(free.chunks(3))
            .map(|(id, p)| (id, (p[0], p[1], p[2])))
            .collect();
        let servers: String = if n > 1 {
            ports
                .iter()
                .map(|(id, (c, q, e))| {
                    let role = if *id > voters { ":observer" } else { "" };
                    format!("server.{id}=127.0.0.1:{q}:{e}{role};127.0.0.1:{c}\n")
                })
                .collect()
        } else {
            String::new()
        };
        let mut clients = BTreeMap::new();
        for (id, (client, _, _)) in &ports {
            let data = dir.path().join(format!("node{id}"));
            std::fs::create_dir_all(&data).map_err(|e| TestingError::Setup(e.to_string()))?;
            std::fs::write(data.join("myid"), format!("{id}\n"))
                .map_err(|e| TestingError::Setup(e.to_string()))?;
            let cfg = format!(
                "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\n\
                 clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n{servers}{extra_cfg}\n",
                data.display()
            );
            std::fs::write(data.join("zoo.cfg"), cfg)
                .map_err(|e| TestingError::Setup(e.to_string()))?;
            clients.insert(*id, SocketAddr::from(([127, 0, 0, 1], *client)));
        }
        let mut cluster = TestingCluster {
            dir,
            clients,
            observers: (voters + 1..=n).collect(),
            running: BTreeMap::new(),
        };
        for id in 1..=n {
            cluster.restart(id).await?;
        }
        cluster.wait_for_quorum(Duration::from_secs(30)).await?;
        // A fresh cluster is handed over with every node serving, not just a majority.
        let deadline = Instant::now() + Duration::from_secs(30);
        for addr in cluster.clients.values() {
            loop {
                let ok = match probe::four_letter_word(*addr, "srvr", Duration::from_secs(1)).await
                {
                    Ok(t) => probe::parse_srvr(&t).is_ok(),
                    Err(_) => false,
                };
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(TestingError::NoQuorum(Duration::from_secs(30)));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(cluster)
    }

    fn cfg_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}")).join("zoo.cfg")
    }

    /// `127.0.0.1:p1,127.0.0.1:p2,…`
    pub fn connect_string(&self) -> String {
        self.clients
            .values()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `id`'s data directory (its `zoo.cfg` and `data/myid`-equivalent live there too).
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}"))
    }

    /// The client address of node `id`.
    pub fn client_addr(&self, id: u64) -> Option<SocketAddr> {
        self.clients.get(&id).copied()
    }

    /// Stop node `id` abruptly: its connections drop, nothing is flushed beyond what it already
    /// made durable.
    pub async fn kill(&mut self, id: u64) {
        if let Some(mut n) = self.running.remove(&id) {
            // Returns once every task of the node is gone, so its files are quiet.
            n.kill().await;
        }
    }

    /// Start node `id` (again) from its data dir.
    pub async fn restart(&mut self, id: u64) -> Result<(), TestingError> {
        self.kill(id).await;
        let mut node = TaskNode::start(id, &self.cfg_path(id)).map_err(TestingError::Setup)?;
        // Wait (bounded) until its client port answers; a node that stops first (a port
        // taken, a bad config or data dir) is an error, not a silent hang.
        let addr = self.clients[&id];
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Some((exit, why)) = node.try_exited() {
                return Err(TestingError::Setup(format!(
                    "node {id} did not start ({exit}): {why}"
                )));
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.running.insert(id, node);
        Ok(())
    }

    /// The node that reports `Mode: leader` (or the standalone node).
    pub async fn leader(&self) -> Option<u64> {
        for id in self.running.keys() {
            if let Ok(t) =
                probe::four_letter_word(self.clients[id], "srvr", Duration::from_secs(1)).await
            {
                if let Ok(s) = probe::parse_srvr(&t) {
                    if matches!(s.mode, probe::Mode::Leader | probe::Mode::Standalone) {
                        return Some(*id);
                    }
                }
            }
        }
        None
    }

    /// Each running node's `(zxid, digest of its tree)`, from the `hash` four-letter word; nodes
    /// that do not answer are left out.
    pub async fn digests(&self) -> BTreeMap<u64, (i64, u64)> {
        let mut out = BTreeMap::new();
        for id in self.running.keys() {
            if let Ok(t) =
                probe::four_letter_word(self.clients[id], "hash", Duration::from_secs(1)).await
            {
                let parsed = t.trim().split_once(": ").and_then(|(z, d)| {
                    Some((i64::from_str_radix(z, 16).ok()?, d.parse::<u64>().ok()?))
                });
                if let Some(p) = parsed {
                    out.insert(*id, p);
                }
            }
        }
        out
    }

    /// Wait until every running node answers with the same zxid and the same tree digest
    /// (replicas identical); on timeout, the last digests seen are in the error.
    pub async fn wait_for_identical_replicas(
        &self,
        timeout: Duration,
    ) -> Result<(i64, u64), TestingError> {
        let deadline = Instant::now() + timeout;
        loop {
            let d = self.digests().await;
            let first = d.values().next().copied();
            if let Some(f) = first {
                if d.len() == self.running.len() && d.values().all(|v| *v == f) {
                    return Ok(f);
                }
            }
            if Instant::now() > deadline {
                return Err(TestingError::Diverged(format!("{d:x?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until a leader serves and a majority of voters follow it.
    pub async fn wait_for_quorum(&self, timeout: Duration) -> Result<u64, TestingError> {
        let deadline = Instant::now() + timeout;
        let majority = (self.clients.len() - self.observers.len()) / 2 + 1;
        loop {
            if let Some(l) = self.leader().await {
                let mut serving = 0;
                for id in self
                    .running
                    .keys()
                    .filter(|id| !self.observers.contains(id))
                {
                    if let Ok(t) =
                        probe::four_letter_word(self.clients[id], "srvr", Duration::from_secs(1))
                            .await
                    {
                        if probe::parse_srvr(&t).is_ok() {
                            serving += 1;
                        }
                    }
                }
                if serving >= majority {
                    return Ok(l);
                }
            }
            if Instant::now() > deadline {
                return Err(TestingError::NoQuorum(timeout));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestingCluster {
    fn drop(&mut self) {
        // Each node's own Drop shuts its runtime down.
        self.running.clear();
    }
}
