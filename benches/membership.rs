//! Changing a running 3-node ensemble, builtin beside Apache ZooKeeper, in one run:
//!
//! ```sh
//! cargo bench --bench membership          # ZKHERD_BENCH_RUNS=5 by default
//! ```
//!
//! Per run and backend (runs alternate backends): `zkherd up -d`, then the wall time of
//! `zkherd scale --voters 5` (it returns once the five are healthy and a write went through),
//! of `zkherd scale --voters 3`, and of `zkherd rolling-restart` of the three; then the cost of
//! the link proxies (`[network] faults = true`, no fault injected): create at 1 outstanding
//! through a follower for 2 s, p50 and ops/s, on a fresh ensemble without and with them.
//! Medians with min and max. Writes the table into `BENCHMARKS.md` between the `membership` markers (the
//! ensemble bench keeps that block when it rewrites the file).

#[path = "shared.rs"]
mod shared;
use shared::stats;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_zkherd");
const ROWS: [&str; 7] = [
    "scale 3 → 5 voters, until healthy (s)",
    "scale 5 → 3 voters, until healthy (s)",
    "rolling restart of 3 nodes (s)",
    "create ×1 via a follower, no proxies: p50 (ms)",
    "create ×1 via a follower, link proxies on: p50 (ms)",
    "create ×1 via a follower, no proxies: ops/s",
    "create ×1 via a follower, link proxies on: ops/s",
];

struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn new(backend: &str, base: u16) -> Cluster {
        Self::with(backend, base, "[zookeeper.extra]\nreconfigEnabled = true\n")
    }

    fn with(backend: &str, base: u16, more: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "zkherd-bench-membership-{}-{backend}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench dir");
        let (backend, runtime) = match backend {
            "in-process" => ("builtin", "tasks"),
            b => (b, "processes"),
        };
        std::fs::write(
            dir.join("zkherd.toml"),
            format!(
                "[cluster]\nbackend = \"{backend}\"\nruntime = \"{runtime}\"\n[ports]\n\
                 client = {base}\nquorum = {}\nelection = {}\n{more}",
                base + 700,
                base + 1700
            ),
        )
        .expect("spec");
        Cluster { dir }
    }

    /// Run a command; its wall time in seconds, or its output on failure.
    fn timed(&self, args: &[&str]) -> Result<f64, String> {
        let t = Instant::now();
        let out = Command::new(BIN)
            .arg("-f")
            .arg(self.dir.join("zkherd.toml"))
            .args(args)
            .env("ZKHERD_DIR", self.dir.join("cluster"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        let secs = t.elapsed().as_secs_f64();
        if out.status.success() {
            Ok(secs)
        } else {
            Err(format!(
                "zkherd {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.timed(&["down"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn one_run(backend: &str, base: u16) -> Result<Vec<f64>, String> {
    let c = Cluster::new(backend, base);
    c.timed(&["up", "-d", "--no-watch", "--wait", "120"])?;
    let up = c.timed(&["scale", "--voters", "5"])?;
    let down = c.timed(&["scale", "--voters", "3"])?;
    let roll = c.timed(&["rolling-restart"])?;
    let (p50_direct, ops_direct) = creates_via_follower(&c, base)?;
    drop(c);
    let proxied = Cluster::with(
        backend,
        base,
        &format!("[network]\nfaults = true\nproxy_base = {}\n", base + 3000),
    );
    proxied.timed(&["up", "-d", "--no-watch", "--wait", "120"])?;
    let (p50_proxied, ops_proxied) = creates_via_follower(&proxied, base)?;
    Ok(vec![
        up,
        down,
        roll,
        p50_direct,
        p50_proxied,
        ops_direct,
        ops_proxied,
    ])
}

/// Creates, one at a time for 2 s, through the first follower `status` lists: (p50 in ms,
/// ops/s).
fn creates_via_follower(c: &Cluster, base: u16) -> Result<(f64, f64), String> {
    let out = Command::new(BIN)
        .arg("-f")
        .arg(c.dir.join("zkherd.toml"))
        .args(["status", "--json"])
        .env("ZKHERD_DIR", c.dir.join("cluster"))
        .output()
        .map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let id = v["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["role"] == "follower"))
        .and_then(|n| n["id"].as_u64())
        .ok_or("no follower")?;
    let addr = format!("127.0.0.1:{}", base + id as u16 - 1);
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = zookeeper_client::Client::connect(&addr)
            .await
            .map_err(|e| e.to_string())?;
        let opts = zookeeper_client::CreateMode::Persistent
            .with_acls(zookeeper_client::Acls::anyone_all());
        let mut lat = Vec::new();
        let t0 = Instant::now();
        while t0.elapsed().as_secs_f64() < 2.0 {
            let t = Instant::now();
            client
                .create(&format!("/p{}", lat.len()), &[0u8; 100], &opts)
                .await
                .map_err(|e| e.to_string())?;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let ops = lat.len() as f64 / t0.elapsed().as_secs_f64();
        Ok((stats(&lat).0, ops))
    })
}

fn main() {
    let runs: usize = std::env::var("ZKHERD_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let backends = shared::backends();
    let mut results: Vec<(&str, Vec<Vec<f64>>)> =
        backends.iter().map(|b| (*b, Vec::new())).collect();
    let started = Instant::now();
    for run in 1..=runs {
        for (backend, r) in results.iter_mut() {
            match one_run(backend, 26181) {
                Ok(f) => {
                    eprintln!("run {run}/{runs} {backend}: {f:.3?}");
                    r.push(f);
                }
                Err(e) => {
                    eprintln!("run {run}/{runs} {backend}: FAILED: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    let cell = |backend: &str, row: usize| -> Option<(f64, f64, f64)> {
        let (_, r) = results.iter().find(|(b, _)| *b == backend)?;
        let v: Vec<f64> = r.iter().map(|f| f[row]).collect();
        (!v.is_empty()).then(|| stats(&v))
    };
    let show = |c: Option<(f64, f64, f64)>| {
        c.map(|(m, lo, hi)| {
            if m >= 100.0 {
                format!("{m:.0} ({lo:.0}–{hi:.0})")
            } else {
                format!("{m:.2} ({lo:.2}–{hi:.2})")
            }
        })
        .unwrap_or_else(|| "–".into())
    };
    let ratio = |row: &str, x: Option<(f64, f64, f64)>, a: Option<(f64, f64, f64)>| match (x, a) {
        (Some((xm, _, _)), Some((am, _, _))) if xm > 0.0 && row.contains("ops/s") => {
            format!("{:.2}× the ops", xm / am)
        }
        (Some((xm, _, _)), Some((am, _, _))) if xm > 0.0 => {
            format!("{:.3} ({:.1}× less)", xm / am, am / xm)
        }
        _ => "–".into(),
    };
    let mut md = format!(
        "## Changing a running ensemble\n\nCommand: `cargo bench --bench membership` \
         (ZKHERD_BENCH_RUNS={runs}). Wall time of each `zkherd` command on a 3-node ensemble \
         with `reconfigEnabled = true`, started by `zkherd up -d`; `scale` returns once every \
         member follows the new config and a write succeeded, `rolling-restart` once the last \
         node is back and the ensemble healthy. The create rows: 100-byte creates at 1 \
         outstanding through a follower for 2 s (fsync on), on a fresh ensemble without and \
         with link proxies (`[network] faults = true`, no fault injected), to show what the \
         proxies cost. Median of {runs} runs (min–max), runs \
         alternating backends. Total time: {:.0} s.\n\n\
         | figure | builtin | apache | ratio builtin/apache | builtin in-process | ratio \
         in-process/apache |\n|---|---|---|---|---|---|\n",
        started.elapsed().as_secs_f64()
    );
    for (i, row) in ROWS.iter().enumerate() {
        let (b, a, t) = (cell("builtin", i), cell("apache", i), cell("in-process", i));
        md += &format!(
            "| {row} | {} | {} | {} | {} | {} |\n",
            show(b),
            show(a),
            ratio(row, b, a),
            show(t),
            ratio(row, t, a)
        );
    }
    shared::write_block("membership", &md);
    println!("{md}");
}
