//! How cost grows with the number of znodes, builtin beside Apache ZooKeeper, 3-node
//! ensembles, in one run (issue 15's first dimension):
//!
//! ```sh
//! cargo bench --bench scale   # ZKHERD_SCALE_ZNODES=10000,100000,1000000 ZKHERD_SCALE_RUNS=1
//! ```
//!
//! Per size, run and backend (backends alternate): a fresh ensemble, its idle RSS per node;
//! N znodes of 100 bytes at depth 3 (`/scale/pA/qB/nI`, 100 leaves per parent) loaded
//! through 4 sessions with 256 creates outstanding; RSS per node once every member is in
//! sync, and from it bytes per znode; the data on disk per node (data + datalog dirs);
//! `zkherd down` then `zkherd up -d` (which returns once the quorum serves a write) as the
//! restart-to-serving time from disk, with the znode count checked after it. Loading runs with
//! `forceSync = no` (what is measured is the state, not the load); Apache gets a 3 GiB heap.
//!
//! Writes `BENCHMARKS-scale.md` and `BENCHMARKS-scale.json` in the crate root.

#[path = "shared.rs"]
mod shared;
use shared::{mean_rss, node_pids, stats, Ensemble};

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use zookeeper_client::{Acls, Client, CreateMode};

const LEAVES_PER_PARENT: usize = 100;
const PARENTS_PER_TOP: usize = 100;

/// Bytes under every node's data and datalog dirs, per node.
fn disk_mb_per_node(e: &Ensemble) -> f64 {
    fn size(p: &Path) -> u64 {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => std::fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| size(&e.path())).sum())
                .unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    let total: u64 = (1..=3)
        .map(|i| {
            let n = e.dir.join(format!("cluster/node{i}"));
            size(&n.join("data")) + size(&n.join("datalog"))
        })
        .sum();
    total as f64 / 3.0 / (1024.0 * 1024.0)
}

fn free_base() -> u16 {
    for base in (21000u16..30000).step_by(37) {
        let ok = (0..3).all(|i| {
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

fn start(backend: &str) -> Option<Ensemble> {
    let base = free_base();
    let dir = std::env::temp_dir().join(format!("zkherd-scale-{backend}-{base}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    let spec = format!(
        "[cluster]\nbackend = \"{backend}\"\nnodes = 3\n[ports]\nclient = {base}\nquorum = {}\n\
         election = {}\n[apache]\nheap_mb = 3072\n[zookeeper.extra]\nforceSync = \"no\"\n",
        base + 700,
        base + 1700
    );
    std::fs::write(dir.join("zkherd.toml"), spec).ok()?;
    let c = Ensemble { dir, base };
    let (ok, out) = c.run(&["up", "-d", "--wait", "120"]);
    if !ok {
        eprintln!("{backend}: up failed: {out}");
        return None;
    }
    Some(c)
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

/// Load `n` znodes; seconds taken.
async fn load(connect: &str, n: usize) -> Result<f64, String> {
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(
            Client::connector()
                .with_session_timeout(Duration::from_secs(30))
                .connect(connect)
                .await
                .map_err(|e| e.to_string())?,
        );
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
    let c = Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .connect(connect)
        .await
        .ok()?;
    c.count_descendants_number("/scale").await.ok()
}

#[derive(Debug, Default, Clone, serde::Serialize)]
struct Figures {
    load_s: Vec<f64>,
    rss_idle_mb: Vec<f64>,
    rss_loaded_mb: Vec<f64>,
    bytes_per_znode: Vec<f64>,
    disk_mb: Vec<f64>,
    restart_s: Vec<f64>,
}

async fn one(backend: &str, n: usize, f: &mut Figures) -> Result<(), String> {
    let c = start(backend).ok_or("the ensemble did not start")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = mean_rss(&node_pids(&c.status())).ok_or("no RSS")?;
    let load_s = load(&c.connect_string(), n).await?;
    let (ok, out) = c.run(&["wait", "--timeout", "120"]);
    if !ok {
        return Err(format!("not in sync after the load: {out}"));
    }
    let loaded = mean_rss(&node_pids(&c.status())).ok_or("no RSS")?;
    let disk = disk_mb_per_node(&c);
    let (ok, out) = c.run(&["down"]);
    if !ok {
        return Err(format!("down: {out}"));
    }
    let t0 = Instant::now();
    let (ok, out) = c.run(&["up", "-d", "--wait", "300"]);
    let restart = t0.elapsed().as_secs_f64();
    if !ok {
        return Err(format!("restart: {out}"));
    }
    let expected = n + parents(n).len() - 1;
    let got = count(&c.connect_string()).await;
    if got != Some(expected) {
        return Err(format!(
            "after the restart /scale has {got:?} descendants, not {expected}"
        ));
    }
    f.load_s.push(load_s);
    f.rss_idle_mb.push(idle);
    f.rss_loaded_mb.push(loaded);
    f.bytes_per_znode
        .push((loaded - idle) * 1024.0 * 1024.0 / n as f64);
    f.disk_mb.push(disk);
    f.restart_s.push(restart);
    Ok(())
}

fn median(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let (m, lo, hi) = stats(v);
    let f = |x: f64| {
        if x >= 100.0 {
            format!("{x:.0}")
        } else if x >= 10.0 {
            format!("{x:.1}")
        } else {
            format!("{x:.2}")
        }
    };
    if v.len() == 1 {
        f(m)
    } else {
        format!("{} ({}–{})", f(m), f(lo), f(hi))
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sizes: Vec<usize> = std::env::var("ZKHERD_SCALE_ZNODES")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runs: usize = std::env::var("ZKHERD_SCALE_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let backends: Vec<&str> = shared::backends()
        .into_iter()
        .filter(|b| *b != "in-process")
        .collect();
    let mut all: BTreeMap<(usize, String), Figures> = BTreeMap::new();
    for &n in &sizes {
        for run in 0..runs {
            for b in &backends {
                eprintln!("{n} znodes, run {}, {b}", run + 1);
                let f = all.entry((n, b.to_string())).or_default();
                if let Err(e) = one(b, n, f).await {
                    eprintln!("  {b}: {e}");
                }
            }
        }
    }
    let mut md = String::from(
        "# Scale: znodes\n\nBuiltin beside Apache ZooKeeper 3.8.0 (Debian), 3-node ensembles on \
         one 2-core machine, in one run; each cell the median (min–max) of the runs. \
         `bytes/znode` = (RSS per node loaded − idle) / N.\n\n",
    );
    md.push_str(&format!(
        "Command: `ZKHERD_SCALE_ZNODES={} ZKHERD_SCALE_RUNS={runs} cargo bench --bench scale`\n\n",
        sizes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    md.push_str("| znodes | backend | load (s) | RSS idle (MB) | RSS loaded (MB) | bytes/znode | disk/node (MB) | restart → serving (s) |\n|---|---|---|---|---|---|---|---|\n");
    for ((n, b), f) in &all {
        md.push_str(&format!(
            "| {n} | {b} | {} | {} | {} | {} | {} | {} |\n",
            median(&f.load_s),
            median(&f.rss_idle_mb),
            median(&f.rss_loaded_mb),
            median(&f.bytes_per_znode),
            median(&f.disk_mb),
            median(&f.restart_s)
        ));
    }
    let ratio = |n: usize, pick: fn(&Figures) -> &Vec<f64>| -> Option<f64> {
        let b = all.get(&(n, "builtin".to_string()))?;
        let a = all.get(&(n, "apache".to_string()))?;
        let (bv, av) = (pick(b), pick(a));
        (!bv.is_empty() && !av.is_empty()).then(|| stats(bv).0 / stats(av).0)
    };
    md.push_str(
        "\n| znodes | bytes/znode builtin ÷ Apache | restart builtin ÷ Apache |\n|---|---|---|\n",
    );
    for &n in &sizes {
        let r = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.2}"));
        md.push_str(&format!(
            "| {n} | {} | {} |\n",
            r(ratio(n, |f| &f.bytes_per_znode)),
            r(ratio(n, |f| &f.restart_s))
        ));
    }
    print!("{md}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let _ = std::fs::write(root.join("BENCHMARKS-scale.md"), &md);
    let json: BTreeMap<String, &Figures> = all
        .iter()
        .map(|((n, b), f)| (format!("{n}/{b}"), f))
        .collect();
    let _ = std::fs::write(
        root.join("BENCHMARKS-scale.json"),
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    );
}
