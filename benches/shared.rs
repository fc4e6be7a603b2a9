//! Pieces the benches share (included with `#[path]`; benches are separate crates; not
//! every bench uses every piece).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::process::{Command, Stdio};
use zookeeper_client::{Acls, Client, CreateMode};

const BIN: &str = env!("CARGO_BIN_EXE_zkherd");

/// The backends to measure: builtin processes, builtin in-process, and Apache when Java and
/// Debian's ZooKeeper are installed.
pub fn backends() -> Vec<&'static str> {
    let mut backends = vec!["builtin", "in-process"];
    let java = Command::new("java").arg("-version").output().is_ok();
    if java && Path::new("/usr/share/java/zookeeper.jar").is_file() {
        backends.push("apache");
    } else {
        eprintln!("apache: not measured (java or /usr/share/java/zookeeper.jar missing)");
    }
    backends
}

/// (median, min, max).
pub fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

/// Node pids from `status --json`.
pub fn node_pids(v: &serde_json::Value) -> Vec<u32> {
    v["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["pid"].as_u64())
                .map(|p| p as u32)
                .collect()
        })
        .unwrap_or_default()
}

pub fn rss_mb(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// RSS per node; in-process nodes share one process (the supervisor's): its RSS is divided
/// among them.
pub fn mean_rss(pids: &[u32]) -> Option<f64> {
    let mut distinct = pids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let total: f64 = distinct.iter().filter_map(|p| rss_mb(*p)).sum();
    (!pids.is_empty() && total > 0.0).then(|| total / pids.len() as f64)
}

/// A 3-node ensemble driven through the zkherd CLI; `down` and removed on drop.
pub struct Ensemble {
    pub dir: PathBuf,
    pub base: u16,
}

impl Ensemble {
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("-f")
            .arg(self.dir.join("zkherd.toml"))
            .args(args)
            .env("ZKHERD_DIR", self.dir.join("cluster"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> (bool, String) {
        match self.cmd(args).output() {
            Ok(o) => (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (false, e.to_string()),
        }
    }

    pub fn connect_string(&self) -> String {
        (0..3)
            .map(|i| format!("127.0.0.1:{}", self.base + i))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn status(&self) -> serde_json::Value {
        let out = self.cmd(&["status", "--json"]).output();
        out.ok()
            .and_then(|o| serde_json::from_slice(&o.stdout).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    pub fn wait(&self) -> bool {
        self.run(&["wait", "--timeout", "60"]).0
    }

    pub fn down(&self) {
        let _ = self.run(&["down"]);
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Time until one write is acknowledged: a fresh attempt (new session, one create) `every`
/// ([`PROBE`] or [`FAULT_PROBE`]), each allowed 2 s, so a client stuck on a dead or hung node
/// does not count.
pub async fn first_write(connect: String, every: Duration, give_up: Duration) -> Option<f64> {
    let t0 = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut every = tokio::time::interval(every);
    let deadline = tokio::time::sleep(give_up);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = every.tick() => {
                let (tx, connect) = (tx.clone(), connect.clone());
                tokio::spawn(async move {
                    let attempt = async {
                        let c = Client::connector()
                            .with_session_timeout(Duration::from_secs(6))
                            .with_connection_timeout(Duration::from_millis(200))
                            .connect(&connect)
                            .await
                            .ok()?;
                        let opts = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
                        c.create("/bench-probe-", b"", &opts).await.ok()
                    };
                    if let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
                        let _ = tx.send(());
                    }
                });
            }
            Some(()) = rx.recv() => return Some(t0.elapsed().as_secs_f64()),
            _ = &mut deadline => return None,
        }
    }
}

/// The client port of a follower, from `status --json`.
pub fn follower_addr(e: &Ensemble) -> String {
    let v = e.status();
    let id = v["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["role"] == "follower"))
        .and_then(|n| n["id"].as_u64())
        .unwrap_or(1);
    format!("127.0.0.1:{}", e.base + id as u16 - 1)
}

/// Keep `depth` requests outstanding on one session for `secs`: (ops/s, latencies in µs).
pub async fn load(addr: &str, op: &str, depth: usize, secs: f64) -> Option<(f64, Vec<u64>)> {
    let client = Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .connect(addr)
        .await
        .ok()?;
    static RUN: AtomicU64 = AtomicU64::new(0);
    let root = format!(
        "/bench-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    );
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create(&root, b"", &opts).await.ok()?;
    let value = vec![b'v'; 100];
    let target = format!("{root}/target");
    client.create(&target, &value, &opts).await.ok()?;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let t0 = Instant::now();
    for w in 0..depth {
        let (client, root, target, value, op) = (
            client.clone(),
            root.clone(),
            target.clone(),
            value.clone(),
            op.to_string(),
        );
        let failed = failed.clone();
        tasks.push(tokio::spawn(async move {
            let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
            let mut lat = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = match op.as_str() {
                    "create" => client
                        .create(&format!("{root}/n-{w}-{i}"), &value, &opts)
                        .await
                        .map(|_| ()),
                    "set" => client.set_data(&target, &value, None).await.map(|_| ()),
                    _ => client.get_data(&target).await.map(|_| ()),
                };
                if r.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                lat.push(t.elapsed().as_micros() as u64);
                i += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.ok()?);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    if failed.load(Ordering::Relaxed) > 0 || all.is_empty() {
        return None;
    }
    all.sort_unstable();
    Some((all.len() as f64 / elapsed, all))
}

pub fn pct(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)] as f64 / 1000.0
}

/// `<!-- name -->` and `<!-- /name -->`: the markers of a bench's block in `BENCHMARKS.md`.
fn markers(name: &str) -> (String, String) {
    (format!("<!-- {name} -->"), format!("<!-- /{name} -->"))
}

/// The block `name` of `text`, markers included, if it has one.
pub fn block<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let (start, end) = markers(name);
    let (s, e) = (text.find(&start)?, text.find(&end)?);
    (e > s).then(|| &text[s..e + end.len()])
}

/// Put `body` into `BENCHMARKS.md` as the block `name` (replacing the old one, or at the end),
/// leaving the rest of the file as it is.
pub fn write_block(name: &str, body: &str) {
    let (start, end) = markers(name);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let new_block = format!("{start}\n{}\n{end}", body.trim_end());
    let new = match block(&old, name) {
        Some(b) => old.replacen(b, &new_block, 1),
        None => format!("{}\n\n{new_block}\n", old.trim_end()),
    };
    let _ = std::fs::write(&path, new);
}

/// How often a new write attempt starts: the resolution of the spawn and restart figures (at
/// 10 ms, a write possible at 12 ms counted as 20).
pub const PROBE: Duration = Duration::from_millis(2);
/// The same after a fault: attempts stuck on a paused node (each allowed 2 s) pile up, so
/// fewer start.
pub const FAULT_PROBE: Duration = Duration::from_millis(10);

/// `zkherd kill|pause --leader`, then the time until a write is acknowledged; a paused leader
/// is resumed after. The caller checks the ensemble's health.
pub async fn leader_fault(e: &Ensemble, verb: &str) -> Result<f64, String> {
    let (ok, out) = e.run(&[verb, "--leader"]);
    if !ok {
        return Err(format!("{verb} --leader: {out}"));
    }
    let w = first_write(e.connect_string(), FAULT_PROBE, Duration::from_secs(60))
        .await
        .ok_or_else(|| format!("no write after {verb} --leader"))?;
    if verb == "pause" {
        let id = out.split_whitespace().nth(1).unwrap_or("1");
        let _ = e.run(&["resume", id]);
    }
    Ok(w)
}
