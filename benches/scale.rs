//! How cost grows with data, sessions, watches and members, builtin beside Apache ZooKeeper in
//! one run (issue 15):
//!
//! ```sh
//! cargo bench --bench scale
//! #   ZKHERD_SCALE_DIMS=znodes,sessions,watches,watchers,members   which curves
//! #   ZKHERD_SCALE_ZNODES=10000,100000,1000000  ZKHERD_SCALE_SESSIONS=1000,3000,10000
//! #   ZKHERD_SCALE_WATCHES=10000,30000,100000   ZKHERD_SCALE_WATCHERS=100,300,1000
//! #   ZKHERD_SCALE_MEMBERS=3,5,7,3+2            ZKHERD_SCALE_RUNS=3 (runs per point;
//! #   ZKHERD_SCALE_RUNS_<DIMENSION>, e.g. ZKHERD_SCALE_RUNS_ZNODES=1, for one dimension)
//! #   Dimensions not run keep their figures from BENCHMARKS-scale.json; ZKHERD_SCALE_DIMS=none
//! #   only rewrites the block (after editing benches/BENCHMARKS-scale-notes.md).
//! ```
//!
//! Every point is a fresh ensemble per run and backend (backends alternate, so both see the
//! same machine noise), 3 nodes unless the dimension is members, `forceSync = no` except for the
//! members curve (the state is measured, not the disk), Apache with a 3 GiB heap and
//! `snapCount = 10000` on both (so every size snapshots).
//!
//! - **znodes** N of 100 bytes at depth 3 (`/scale/pA/qB/nI`, 100 leaves per parent), loaded
//!   through 4 sessions with 256 creates outstanding: RSS per node once all are in sync, bytes
//!   per znode (loaded − idle RSS, / N), disk per node, the newest snapshot's size and the
//!   longest snapshot write (Apache: `mntr` `max_snapshottime`; builtin: its log line), `zkherd
//!   add` of a fourth voter until it serves every znode (catch-up), and `down` then `up -d` until
//!   the quorum serves a write (restart from disk), with the count checked after it.
//! - **sessions** N sessions (6 s timeout, one ephemeral each) held on node 1 by raw
//!   connections that only ping: node 1's RSS per session, CPU of every node while held (ping
//!   load), p50/p99 of creates at 1 outstanding through node 1 meanwhile, and, once the
//!   connections vanish without closing, the time until every ephemeral is gone (expiry).
//! - **watches** N data watches on distinct znodes, set by one session on node 1: node 1's RSS per
//!   watch and the time to set them.
//! - **watchers** N sessions on node 1 watching one znode: time from the `setData` until every
//!   session got the event.
//! - **members** V voters (+ observers as `3+2`), fsync on: spawn → first acknowledged write,
//!   kill -9 and SIGSTOP of the leader → acknowledged write, and create throughput at 32
//!   outstanding through a follower.
//!
//! Writes the `scale` block of `BENCHMARKS.md` (a table per dimension, the ratios and the
//! targets), `BENCHMARKS-scale.json`, and `BENCHMARKS-scale-<dimension>.svg` (one panel per
//! curve) in the crate root.

#[path = "shared.rs"]
mod shared;
use shared::{follower_addr, load, mean_rss, node_pids, pct, rss_mb, stats, Ensemble};

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zookeeper_client::{Acls, Client, CreateMode};

const LEAVES_PER_PARENT: usize = 100;
const PARENTS_PER_TOP: usize = 100;

/// Figures of one point (dimension, size, backend): metric → one value per run.
type Figures = BTreeMap<String, Vec<f64>>;

/// Bytes under a directory tree.
fn size(p: &Path) -> u64 {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn node_dir(e: &Ensemble, i: usize) -> std::path::PathBuf {
    e.dir.join(format!("cluster/node{i}"))
}

/// Bytes under every node's data and datalog dirs, per node (MB).
fn disk_mb_per_node(e: &Ensemble) -> f64 {
    let total: u64 = (1..=3)
        .map(|i| size(&node_dir(e, i).join("data")) + size(&node_dir(e, i).join("datalog")))
        .sum();
    total as f64 / 3.0 / (1024.0 * 1024.0)
}

/// The newest snapshot file's size on node 1 (MB): Apache's `version-2/snapshot.*`, the
/// builtin server's `zkherd-raft/sm/snapshot`.
fn snapshot_mb(e: &Ensemble) -> Option<f64> {
    let data = node_dir(e, 1).join("data");
    let builtin = data.join("zkherd-raft/sm/snapshot");
    let newest = match std::fs::metadata(&builtin) {
        Ok(m) => m,
        Err(_) => std::fs::read_dir(data.join("version-2"))
            .ok()?
            .flatten()
            .filter(|f| f.file_name().to_string_lossy().starts_with("snapshot."))
            .filter_map(|f| f.metadata().ok())
            .max_by_key(|m| m.modified().ok())?,
    };
    Some(newest.len() as f64 / (1024.0 * 1024.0))
}

/// A four-letter word's answer from `127.0.0.1:port`.
async fn four(port: u16, word: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(word.as_bytes()).await.ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .ok()?
        .ok()?;
    Some(out)
}

/// The longest snapshot write on any node (ms): Apache's `mntr` `zk_max_snapshottime`, the
/// builtin server's "snapshot … taken in N ms" log lines.
async fn snapshot_ms(e: &Ensemble) -> Option<f64> {
    let mut best: Option<f64> = None;
    for i in 1..=3 {
        let log = std::fs::read_to_string(node_dir(e, i).join("logs/node.log")).unwrap_or_default();
        let mut found: Vec<f64> = log
            .lines()
            .filter(|l| l.contains("snapshot at log index"))
            .filter_map(|l| {
                l.rsplit("taken in ")
                    .next()?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        if let Some(m) = four(e.base + i as u16 - 1, "mntr").await {
            found.extend(
                m.lines()
                    .filter(|l| l.starts_with("zk_max_snapshottime"))
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()),
            );
        }
        for v in found {
            best = Some(best.map_or(v, |b: f64| b.max(v)));
        }
    }
    best
}

fn free_base() -> u16 {
    for base in (21000u16..30000).step_by(37) {
        let ok = (0..8).all(|i| {
            [base + i, base + 700 + i, base + 1700 + i]
                .iter()
                .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        });
        if ok {
            return base;
        }
    }
    panic!("no free port range");
}

/// A fresh ensemble of `voters` (+ `observers`), up and serving.
fn start(backend: &str, voters: usize, observers: usize, fsync: bool) -> Result<Ensemble, String> {
    let base = free_base();
    let dir = std::env::temp_dir().join(format!("zkherd-scale-{backend}-{base}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let spec = format!(
        "[cluster]\nbackend = \"{backend}\"\nnodes = {voters}\nobservers = {observers}\n\
         [ports]\nclient = {base}\nquorum = {}\nelection = {}\n[apache]\nheap_mb = 3072\n\
         [zookeeper.extra]\nforceSync = \"{}\"\nsnapCount = 10000\nmaxClientCnxns = 0\n\
         reconfigEnabled = true\n",
        base + 700,
        base + 1700,
        if fsync { "yes" } else { "no" }
    );
    std::fs::write(dir.join("zkherd.toml"), spec).map_err(|e| e.to_string())?;
    let e = Ensemble { dir, base };
    let (ok, out) = e.run(&["up", "-d", "--wait", "120"]);
    if !ok {
        return Err(format!("up failed: {out}"));
    }
    Ok(e)
}

fn leaf(i: usize) -> String {
    format!(
        "/scale/p{}/q{}/n{i}",
        i / (LEAVES_PER_PARENT * PARENTS_PER_TOP),
        (i / LEAVES_PER_PARENT) % PARENTS_PER_TOP
    )
}

/// The parents `n` leaves need, shallow first.
fn parents(n: usize) -> Vec<String> {
    let mut v = vec!["/scale".to_string()];
    let parents = n.div_ceil(LEAVES_PER_PARENT);
    let tops = parents.div_ceil(PARENTS_PER_TOP);
    v.extend((0..tops).map(|a| format!("/scale/p{a}")));
    v.extend(
        (0..parents).map(|p| format!("/scale/p{}/q{}", p / PARENTS_PER_TOP, p % PARENTS_PER_TOP)),
    );
    v
}

/// Create `paths` with `depth` outstanding, spread over `clients`.
async fn create_all(
    clients: &[Client],
    paths: Vec<String>,
    value: &[u8],
    depth: usize,
) -> Result<(), String> {
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let results = stream::iter(paths.into_iter().enumerate())
        .map(|(i, p)| {
            let c = &clients[i % clients.len()];
            let opts = &opts;
            async move {
                c.create(&p, value, opts)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{p}: {e}"))
            }
        })
        .buffer_unordered(depth)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().collect()
}

async fn client(connect: &str) -> Result<Client, String> {
    Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .connect(connect)
        .await
        .map_err(|e| format!("{connect}: {e}"))
}

/// Load `n` znodes under `/scale`; seconds taken.
async fn load_tree(connect: &str, n: usize) -> Result<f64, String> {
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(client(connect).await?);
    }
    let t0 = Instant::now();
    let ps = parents(n);
    // Level by level: a parent before its children.
    for level in [1usize, 2, 3] {
        let here: Vec<String> = ps
            .iter()
            .filter(|p| p.matches('/').count() == level)
            .cloned()
            .collect();
        create_all(&clients, here, b"", 64).await?;
    }
    let value = [b'v'; 100];
    create_all(&clients, (0..n).map(leaf).collect(), &value, 256).await?;
    Ok(t0.elapsed().as_secs_f64())
}

async fn count(connect: &str) -> Option<usize> {
    client(connect)
        .await
        .ok()?
        .count_descendants_number("/scale")
        .await
        .ok()
}

fn pid_of(e: &Ensemble, id: u64) -> Option<u32> {
    e.status()["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["id"].as_u64() == Some(id))?["pid"]
        .as_u64()
        .map(|p| p as u32)
}

async fn znodes(backend: &str, n: usize, f: &mut Figures) -> Result<(), String> {
    let e = start(backend, 3, 0, false)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = mean_rss(&node_pids(&e.status())).ok_or("no RSS")?;
    let load_s = load_tree(&e.connect_string(), n).await?;
    let (ok, out) = e.run(&["wait", "--timeout", "120"]);
    if !ok {
        return Err(format!("not in sync after the load: {out}"));
    }
    let loaded = mean_rss(&node_pids(&e.status())).ok_or("no RSS")?;
    let disk = disk_mb_per_node(&e);
    let snap_mb = snapshot_mb(&e);
    let snap_ms = snapshot_ms(&e).await;
    let expected = n + parents(n).len() - 1;
    // A fourth voter joins and catches up: until it serves every znode itself.
    let t0 = Instant::now();
    let (ok, out) = e.run(&["add"]);
    if !ok {
        return Err(format!("add: {out}"));
    }
    let fourth = format!("127.0.0.1:{}", e.base + 3);
    let deadline = Instant::now() + Duration::from_secs(300);
    while count(&fourth).await != Some(expected) {
        if Instant::now() > deadline {
            return Err("the fourth voter did not catch up within 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let catchup = t0.elapsed().as_secs_f64();
    let (ok, out) = e.run(&["down"]);
    if !ok {
        return Err(format!("down: {out}"));
    }
    let t0 = Instant::now();
    let (ok, out) = e.run(&["up", "-d", "--wait", "300"]);
    let restart = t0.elapsed().as_secs_f64();
    if !ok {
        return Err(format!("restart: {out}"));
    }
    let got = count(&e.connect_string()).await;
    if got != Some(expected) {
        return Err(format!(
            "after the restart /scale has {got:?} descendants, not {expected}"
        ));
    }
    let mut put = |k: &str, v: f64| f.entry(k.to_string()).or_default().push(v);
    put("load (s)", load_s);
    put("RSS idle (MB)", idle);
    put("RSS loaded (MB)", loaded);
    put("bytes/znode", (loaded - idle) * 1024.0 * 1024.0 / n as f64);
    put("disk/node (MB)", disk);
    if let Some(s) = snap_mb {
        put("snapshot (MB)", s);
    }
    if let Some(s) = snap_ms {
        put("snapshot write (ms)", s);
    }
    put("new voter caught up (s)", catchup);
    put("restart → serving (s)", restart);
    Ok(())
}

/// A raw session that only pings (a client that holds a session and does nothing else); dropping
/// it closes the socket without closing the session, as a vanished client does.
struct RawSession {
    task: tokio::task::JoinHandle<()>,
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn zk_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

async fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let mut b = vec![0; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut b).await?;
    Ok(b)
}

impl RawSession {
    /// Connect to `addr` with a `timeout_ms` session and create the ephemeral `path`.
    async fn open(addr: &str, timeout_ms: i32, path: &str) -> Result<RawSession, String> {
        let err = |e: std::io::Error| format!("{addr}: {e}");
        let mut s = TcpStream::connect(addr).await.map_err(err)?;
        let mut c = Vec::new();
        c.extend_from_slice(&0i32.to_be_bytes()); // protocol version
        c.extend_from_slice(&0i64.to_be_bytes()); // last zxid seen
        c.extend_from_slice(&timeout_ms.to_be_bytes());
        c.extend_from_slice(&0i64.to_be_bytes()); // session id
        c.extend_from_slice(&16i32.to_be_bytes());
        c.extend_from_slice(&[0; 16]); // password
        c.push(0); // read-only
        s.write_all(&frame(&c)).await.map_err(err)?;
        read_frame(&mut s).await.map_err(err)?;
        let mut r = Vec::new();
        r.extend_from_slice(&1i32.to_be_bytes()); // xid
        r.extend_from_slice(&1i32.to_be_bytes()); // create
        zk_string(&mut r, path);
        r.extend_from_slice(&0i32.to_be_bytes()); // empty data
        r.extend_from_slice(&1i32.to_be_bytes()); // one ACL: world:anyone, all perms
        r.extend_from_slice(&31i32.to_be_bytes());
        zk_string(&mut r, "world");
        zk_string(&mut r, "anyone");
        r.extend_from_slice(&1i32.to_be_bytes()); // ephemeral
        s.write_all(&frame(&r)).await.map_err(err)?;
        let reply = read_frame(&mut s).await.map_err(err)?;
        let code = i32::from_be_bytes(reply.get(12..16).ok_or("short reply")?.try_into().unwrap());
        if code != 0 {
            return Err(format!("create {path}: error {code}"));
        }
        let every = Duration::from_millis(timeout_ms as u64 / 3);
        let task = tokio::spawn(async move {
            let (mut rd, mut wr) = s.into_split();
            let drain = tokio::spawn(async move {
                let mut buf = [0u8; 256];
                while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
            });
            let ping = frame(&[0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11]);
            loop {
                tokio::time::sleep(every).await;
                if wr.write_all(&ping).await.is_err() {
                    break;
                }
            }
            drain.abort();
        });
        Ok(RawSession { task })
    }
}

impl Drop for RawSession {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// CPU seconds (user + system) of a process so far.
fn cpu_s(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

async fn sessions(backend: &str, n: usize, f: &mut Figures) -> Result<(), String> {
    let e = start(backend, 3, 0, false)?;
    let node1 = format!("127.0.0.1:{}", e.base);
    let c = client(&node1).await?;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    c.create("/sess", b"", &opts)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid1 = pid_of(&e, 1).ok_or("no pid for node 1")?;
    let before = rss_mb(pid1).ok_or("no RSS")?;
    let t0 = Instant::now();
    let held: Vec<Result<RawSession, String>> = stream::iter(0..n)
        .map(|i| {
            let node1 = node1.clone();
            async move { RawSession::open(&node1, 6000, &format!("/sess/e{i}")).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let held: Vec<RawSession> = held.into_iter().collect::<Result<_, _>>()?;
    let opened = t0.elapsed().as_secs_f64();
    // Held: the CPU the pings (n every 2 s) cost over 4 s, then a write's latency for 6 s.
    let pids = node_pids(&e.status());
    let cpu0: f64 = pids.iter().filter_map(|p| cpu_s(*p)).sum();
    let t1 = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let cpu = (pids.iter().filter_map(|p| cpu_s(*p)).sum::<f64>() - cpu0)
        / t1.elapsed().as_secs_f64()
        * 100.0
        / pids.len() as f64;
    let (_, lat) = load(&node1, "create", 1, 6.0)
        .await
        .ok_or("the concurrent writes failed")?;
    let after = rss_mb(pid1).ok_or("no RSS")?;
    let left = c
        .get_children("/sess")
        .await
        .map_err(|e| e.to_string())?
        .0
        .len();
    if left != n {
        return Err(format!(
            "{left} of {n} ephemerals while the sessions are held"
        ));
    }
    // The clients vanish: every ephemeral must go once the sessions expire.
    let t2 = Instant::now();
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (left, _) = c.get_children("/sess").await.map_err(|e| e.to_string())?;
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} ephemerals left 120 s after the clients vanished",
                left.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let expiry = t2.elapsed().as_secs_f64();
    let mut put = |k: &str, v: f64| f.entry(k.to_string()).or_default().push(v);
    put("open + ephemeral (s)", opened);
    put(
        "node 1 bytes/session",
        (after - before) * 1024.0 * 1024.0 / n as f64,
    );
    put("CPU per node held (%)", cpu);
    put("concurrent create p50 (ms)", pct(&lat, 0.5));
    put("concurrent create p99 (ms)", pct(&lat, 0.99));
    put("all expired after vanishing (s)", expiry);
    Ok(())
}

async fn watches(backend: &str, n: usize, f: &mut Figures) -> Result<(), String> {
    let e = start(backend, 3, 0, false)?;
    let node1 = format!("127.0.0.1:{}", e.base);
    load_tree(&node1, n).await?;
    let (ok, out) = e.run(&["wait", "--timeout", "120"]);
    if !ok {
        return Err(format!("not in sync after the load: {out}"));
    }
    let c = client(&node1).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid1 = pid_of(&e, 1).ok_or("no pid for node 1")?;
    let before = rss_mb(pid1).ok_or("no RSS")?;
    let t0 = Instant::now();
    let watchers: Vec<_> = stream::iter(0..n)
        .map(|i| {
            let c = &c;
            async move { c.get_and_watch_data(&leaf(i)).await.map(|(_, _, w)| w) }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    let set = t0.elapsed().as_secs_f64();
    let watchers: Vec<_> = watchers
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_mb(pid1).ok_or("no RSS")?;
    let wchs = four(e.base, "wchs").await.unwrap_or_default();
    let total: usize = wchs
        .rsplit("Total watches:")
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if total < n {
        return Err(format!("node 1 reports {total} watches, not {n}: {wchs}"));
    }
    drop(watchers);
    let mut put = |k: &str, v: f64| f.entry(k.to_string()).or_default().push(v);
    put("set all (s)", set);
    put(
        "node 1 bytes/watch",
        (after - before) * 1024.0 * 1024.0 / n as f64,
    );
    Ok(())
}

async fn watchers(backend: &str, n: usize, f: &mut Figures) -> Result<(), String> {
    let e = start(backend, 3, 0, false)?;
    let node1 = format!("127.0.0.1:{}", e.base);
    let writer = client(&node1).await?;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    writer
        .create("/one", b"v0", &opts)
        .await
        .map_err(|e| e.to_string())?;
    let clients: Vec<Client> = stream::iter(0..n)
        .map(|_| client(&node1))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let mut ws = Vec::new();
    for c in &clients {
        let (_, _, w) = c
            .get_and_watch_data("/one")
            .await
            .map_err(|e| e.to_string())?;
        ws.push(w);
    }
    let t0 = Instant::now();
    writer
        .set_data("/one", b"v1", None)
        .await
        .map_err(|e| e.to_string())?;
    let all = futures_util::future::join_all(ws.into_iter().map(|w| w.changed()));
    let events = tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .map_err(|_| "not every watcher was told within 60 s")?;
    let took = t0.elapsed().as_secs_f64() * 1000.0;
    if events.len() != n {
        return Err(format!("{} of {n} events", events.len()));
    }
    f.entry("setData → all told (ms)".into())
        .or_default()
        .push(took);
    Ok(())
}

/// `3` or `3+2` (voters + observers).
fn members_of(label: &str) -> (usize, usize) {
    let mut it = label.split('+').map(|s| s.trim().parse().unwrap_or(0));
    (it.next().unwrap_or(3), it.next().unwrap_or(0))
}

async fn members(backend: &str, label: &str, f: &mut Figures) -> Result<(), String> {
    let (voters, observers) = members_of(label);
    let t0 = Instant::now();
    let e = start(backend, voters, observers, true)?;
    let spawn = t0.elapsed().as_secs_f64();
    let kill = shared::leader_fault(&e, "kill").await?;
    if !e.wait() {
        return Err("not healthy after kill".into());
    }
    let pause = shared::leader_fault(&e, "pause").await?;
    if !e.wait() {
        return Err("not healthy after resume".into());
    }
    let (ops, _) = load(&follower_addr(&e), "create", 32, 3.0)
        .await
        .ok_or("create ×32 failed")?;
    let mut put = |k: &str, v: f64| f.entry(k.to_string()).or_default().push(v);
    put("up -d until serving (s)", spawn);
    put("kill -9 leader → write (s)", kill);
    put("SIGSTOP leader → write (s)", pause);
    put("create ×32 via a follower (ops/s)", ops);
    Ok(())
}

fn fmt(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn cell(v: Option<&Vec<f64>>) -> String {
    match v {
        Some(v) if !v.is_empty() => {
            let (m, lo, hi) = stats(v);
            if v.len() == 1 {
                fmt(m)
            } else {
                format!("{} ({}–{})", fmt(m), fmt(lo), fmt(hi))
            }
        }
        _ => "-".into(),
    }
}

/// One dimension's results: size label → backend → figures.
type Curve = BTreeMap<(usize, String), BTreeMap<String, Figures>>;

/// A panel per metric: the medians against size (log x), a line per backend.
fn svg(dim: &str, curve: &Curve, metrics: &[String]) -> String {
    let (pw, ph, cols) = (360.0, 220.0, 2usize);
    let rows = metrics.len().div_ceil(cols);
    let (w, h) = (pw * cols as f64, ph * rows as f64 + 30.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/>\n<text x=\"10\" y=\"18\" font-size=\"14\">scale: {dim} \
         (median per point; <tspan fill=\"#1f77b4\">builtin</tspan>, \
         <tspan fill=\"#d62728\">apache</tspan>)</text>\n"
    );
    let xs: Vec<(usize, String)> = curve.keys().cloned().collect();
    for (k, metric) in metrics.iter().enumerate() {
        let (ox, oy) = ((k % cols) as f64 * pw + 50.0, (k / cols) as f64 * ph + 50.0);
        let (iw, ih) = (pw - 70.0, ph - 70.0);
        let point = |b: &str, x: &(usize, String)| -> Option<f64> {
            let v = curve.get(x)?.get(b)?.get(metric)?;
            (!v.is_empty()).then(|| stats(v).0)
        };
        let ymax = xs
            .iter()
            .flat_map(|x| ["builtin", "apache"].map(|b| point(b, x)))
            .flatten()
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.1;
        let xpos = |i: usize| {
            if xs.len() < 2 {
                ox + iw / 2.0
            } else {
                let (lo, hi) = ((xs[0].0 as f64).ln(), (xs[xs.len() - 1].0 as f64).ln());
                let t = if hi > lo {
                    ((xs[i].0 as f64).ln() - lo) / (hi - lo)
                } else {
                    i as f64 / (xs.len() - 1) as f64
                };
                ox + t * iw
            }
        };
        let ypos = |y: f64| oy + ih - y / ymax * ih;
        out += &format!(
            "<text x=\"{ox}\" y=\"{}\" font-weight=\"bold\">{metric}</text>\n\
             <line x1=\"{ox}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>\n\
             <line x1=\"{ox}\" y1=\"{oy}\" x2=\"{ox}\" y2=\"{}\" stroke=\"#888\"/>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\n",
            oy - 8.0,
            oy + ih,
            ox + iw,
            oy + ih,
            oy + ih,
            ox - 4.0,
            oy + 4.0,
            fmt(ymax),
            ox - 4.0,
            oy + ih
        );
        for (i, x) in xs.iter().enumerate() {
            out += &format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                xpos(i),
                oy + ih + 14.0,
                x.1
            );
        }
        for (b, colour) in [("builtin", "#1f77b4"), ("apache", "#d62728")] {
            let pts: Vec<(f64, f64)> = xs
                .iter()
                .enumerate()
                .filter_map(|(i, x)| Some((xpos(i), ypos(point(b, x)?))))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let line: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            out += &format!(
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n",
                line.join(" ")
            );
            for (x, y) in pts {
                out +=
                    &format!("<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{colour}\"/>\n");
            }
        }
    }
    out + "</svg>\n"
}

fn sizes(var: &str, default: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Ratio builtin ÷ Apache of the medians of `metric` at `x`.
fn ratio(curve: &Curve, x: &(usize, String), metric: &str) -> Option<f64> {
    let m = |b: &str| -> Option<f64> {
        let v = curve.get(x)?.get(b)?.get(metric)?;
        (!v.is_empty()).then(|| stats(v).0)
    };
    Some(m("builtin")? / m("apache")?)
}

/// One dimension as measured by one invocation: its command line, time and points.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Dimension {
    command: String,
    secs: f64,
    /// size label → backend → figures
    points: BTreeMap<String, BTreeMap<String, Figures>>,
}

/// Where a size label sits on the x axis; `3+2` sorts after 3, 5 and 7 voters.
fn x_of(dim: &str, label: &str) -> usize {
    if dim == "members" {
        let (v, o) = members_of(label);
        if o > 0 {
            100 + v * 10 + o
        } else {
            v * 10
        }
    } else {
        label.parse().unwrap_or(0)
    }
}

/// Rewrites the `scale` block of BENCHMARKS.md, `BENCHMARKS-scale.json` and the SVGs from
/// every dimension on record (so one dimension can be re-run alone, and an interrupted run keeps
/// what it measured).
fn publish(all: &BTreeMap<String, Dimension>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut md = "## Scale: how cost grows with data, sessions, watches and members\n\n\
         Builtin beside Apache ZooKeeper 3.8.0 (Debian) in one run on one 2-core machine, runs \
         alternating backends; each cell the median (min–max) of the runs, each run a fresh \
         ensemble. What each figure is: the doc comment of `benches/scale.rs`. Plots: \
         `BENCHMARKS-scale-<dimension>.svg`; raw values: `BENCHMARKS-scale.json`.\n"
        .to_string();
    for (dim, d) in all {
        let curve: Curve = d
            .points
            .iter()
            .map(|(label, per)| ((x_of(dim, label), label.clone()), per.clone()))
            .collect();
        let mut metrics: Vec<String> = Vec::new();
        for f in curve.values().flat_map(|b| b.values()) {
            for k in f.keys() {
                if !metrics.contains(k) {
                    metrics.push(k.clone());
                }
            }
        }
        md += &format!(
            "\n### {dim}\n\nCommand: `{}` ({:.0} s).\n\n| {dim} | backend | {} |\n|---|---|{}\n",
            d.command,
            d.secs,
            metrics.join(" | "),
            "---|".repeat(metrics.len())
        );
        for ((_, label), per) in &curve {
            for (b, f) in per {
                let cells: Vec<String> = metrics.iter().map(|m| cell(f.get(m))).collect();
                md += &format!("| {label} | {b} | {} |\n", cells.join(" | "));
            }
        }
        md += &format!(
            "\n| {dim} | {} |\n|---|{}\n",
            metrics
                .iter()
                .map(|m| format!("{m}: builtin ÷ Apache"))
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(metrics.len())
        );
        for x in curve.keys() {
            let cells: Vec<String> = metrics
                .iter()
                .map(|m| ratio(&curve, x, m).map_or("-".into(), |r| format!("{r:.2}")))
                .collect();
            md += &format!("| {} | {} |\n", x.1, cells.join(" | "));
        }
        let _ = std::fs::write(
            root.join(format!("BENCHMARKS-scale-{dim}.svg")),
            svg(dim, &curve, &metrics),
        );
    }
    let notes =
        std::fs::read_to_string(root.join("benches/BENCHMARKS-scale-notes.md")).unwrap_or_default();
    if !notes.is_empty() {
        md += &format!("\n{notes}");
    }
    shared::write_block("scale", &md);
    let _ = std::fs::write(
        root.join("BENCHMARKS-scale.json"),
        serde_json::to_string_pretty(all).unwrap_or_default(),
    );
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let started = Instant::now();
    let dims = sizes(
        "ZKHERD_SCALE_DIMS",
        "znodes,sessions,watches,watchers,members",
    );
    let runs: usize = std::env::var("ZKHERD_SCALE_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let backends: Vec<&str> = shared::backends()
        .into_iter()
        .filter(|b| *b != "in-process")
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Dimensions measured by earlier invocations stay; the ones run now are replaced.
    let mut all: BTreeMap<String, Dimension> =
        std::fs::read_to_string(root.join("BENCHMARKS-scale.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
    // `none`: measure nothing, rewrite the block from the JSON and the notes.
    for dim in dims.iter().filter(|d| *d != "none") {
        let (var, default) = match dim.as_str() {
            "znodes" => ("ZKHERD_SCALE_ZNODES", "10000,100000,1000000"),
            "sessions" => ("ZKHERD_SCALE_SESSIONS", "1000,3000,10000"),
            "watches" => ("ZKHERD_SCALE_WATCHES", "10000,30000,100000"),
            "watchers" => ("ZKHERD_SCALE_WATCHERS", "100,300,1000"),
            "members" => ("ZKHERD_SCALE_MEMBERS", "3,5,7,3+2"),
            other => {
                eprintln!("unknown dimension {other:?}: skipped");
                continue;
            }
        };
        let points = sizes(var, default);
        let runs_var = format!("ZKHERD_SCALE_RUNS_{}", dim.to_uppercase());
        let runs: usize = std::env::var(&runs_var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(runs);
        let dim_started = Instant::now();
        all.insert(
            dim.clone(),
            Dimension {
                command: format!(
                    "ZKHERD_SCALE_DIMS={dim} {var}={} ZKHERD_SCALE_RUNS={runs} cargo bench --bench scale",
                    points.join(",")
                ),
                ..Dimension::default()
            },
        );
        for label in &points {
            let x = x_of(dim, label);
            for run in 1..=runs {
                for b in &backends {
                    eprintln!(
                        "[{:.0} s] {dim} {label}, run {run}/{runs}, {b}",
                        started.elapsed().as_secs_f64()
                    );
                    let d = all.get_mut(dim).expect("inserted above");
                    let f = d
                        .points
                        .entry(label.clone())
                        .or_default()
                        .entry(b.to_string())
                        .or_default();
                    let r = match dim.as_str() {
                        "znodes" => znodes(b, x, f).await,
                        "sessions" => sessions(b, x, f).await,
                        "watches" => watches(b, x, f).await,
                        "watchers" => watchers(b, x, f).await,
                        _ => members(b, label, f).await,
                    };
                    if let Err(e) = r {
                        eprintln!("  {b}: {e}");
                    }
                    d.secs = dim_started.elapsed().as_secs_f64();
                    publish(&all);
                }
            }
        }
    }
    publish(&all);
    eprintln!("scale: done in {:.0} s", started.elapsed().as_secs_f64());
}
