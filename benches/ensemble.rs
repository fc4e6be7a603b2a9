//! The builtin backend beside Apache ZooKeeper, 3-node ensembles, in one run:
//!
//! ```sh
//! cargo bench --bench ensemble            # ZKHERD_BENCH_RUNS=5 ZKHERD_BENCH_SECS=2 by default
//! ```
//!
//! Per run and backend (runs alternate backends, so both see the same machine noise):
//! spawn → first acknowledged write; `kill -9` of the leader → acknowledged write; SIGSTOP of
//! the leader → acknowledged write; kill → the killed node back in sync (`zkherd wait`); idle
//! RSS per node, and RSS after the load; then throughput and p50/p99 of create, setData and
//! getData (100-byte values) at 1, 8 and 32 outstanding requests through one follower, with
//! `forceSync` on and off. Every figure is the median of the runs with min and max.
//!
//! Writes `BENCHMARKS.md` (table, ratios, the command, then `benches/BENCHMARKS-notes.md`),
//! `BENCHMARKS.json` and
//! `BENCHMARKS-latency.svg` (latency distributions at 32 outstanding) in the crate root.
//! Apache is measured when `zkherd up --backend apache` works (Java and ZooKeeper installed).

#[path = "shared.rs"]
mod shared;
use shared::{first_write, follower_addr, load, mean_rss, node_pids, pct, stats, Ensemble};

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const OPS: [&str; 3] = ["create", "set", "get"];
const DEPTHS: [usize; 3] = [1, 8, 32];

/// `backend` is "builtin", "apache", or "in-process" (builtin, runtime = "tasks").
fn spec(backend: &str, base: u16, force_sync: bool) -> String {
    let (backend, runtime) = match backend {
        "in-process" => ("builtin", "tasks"),
        b => (b, "processes"),
    };
    format!(
        "[cluster]\nbackend = \"{backend}\"\nruntime = \"{runtime}\"\nnodes = 3\n[ports]\n\
         client = {base}\nquorum = {}\nelection = {}\n[zookeeper.extra]\nforceSync = \"{}\"\n",
        base + 700,
        base + 1700,
        if force_sync { "yes" } else { "no" }
    )
}

/// Figures of one run of one backend, by row name.
type Figures = BTreeMap<String, f64>;

async fn one_run(
    backend: &str,
    base: u16,
    secs: f64,
    latencies: &mut BTreeMap<String, Vec<u64>>,
) -> Result<Figures, String> {
    let mut f = Figures::new();
    // In-process nodes: start, failover and memory only (the load is the builtin server's).
    let syncs: &[bool] = if backend == "in-process" {
        &[true]
    } else {
        &[true, false]
    };
    for &force_sync in syncs {
        let dir =
            std::env::temp_dir().join(format!("zkherd-bench-{}-{backend}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("zkherd.toml"), spec(backend, base, force_sync))
            .map_err(|e| e.to_string())?;
        let e = Ensemble { dir, base };
        // Spawn → first acknowledged write, measured from before `up` runs.
        let t0 = Instant::now();
        let mut up: Child = e
            .cmd(&["up", "-d", "--wait", "90"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let first = first_write(e.connect_string(), shared::PROBE, Duration::from_secs(60)).await;
        let first = first.map(|_| t0.elapsed().as_secs_f64());
        let status = up.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            let mut err = String::new();
            if let Some(mut s) = up.stderr.take() {
                use std::io::Read;
                let _ = s.read_to_string(&mut err);
            }
            return Err(format!("{backend}: up failed: {err}"));
        }
        if !e.wait() {
            return Err(format!("{backend}: not healthy after up"));
        }
        let sync = if force_sync {
            "forceSync on"
        } else {
            "forceSync off"
        };
        if force_sync {
            f.insert(
                "spawn → first acknowledged write (s)".into(),
                first.ok_or("no first write")?,
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
            f.insert(
                "idle RSS per node (MB)".into(),
                mean_rss(&node_pids(&e.status())).ok_or("no RSS")?,
            );
            // kill -9 of the leader → acknowledged write; → the killed node back in sync.
            let t = Instant::now();
            let (ok, out) = e.run(&["kill", "--leader"]);
            if !ok {
                return Err(format!("{backend}: kill --leader: {out}"));
            }
            let killed: u16 = out
                .split_whitespace()
                .nth(1)
                .and_then(|id| id.parse().ok())
                .ok_or_else(|| format!("{backend}: kill --leader named no node: {out}"))?;
            let w = first_write(
                e.connect_string(),
                shared::FAULT_PROBE,
                Duration::from_secs(60),
            )
            .await
            .ok_or("no write after kill")?;
            f.insert("kill -9 leader → acknowledged write (s)".into(), w);
            // Rejoined: the restarted node itself acknowledges a write (it is back in the
            // quorum and has applied the log up to that write).
            let own = format!("127.0.0.1:{}", e.base + killed - 1);
            first_write(own, shared::PROBE, Duration::from_secs(60))
                .await
                .ok_or("the killed node never acknowledged a write")?;
            f.insert(
                "kill -9 leader → killed node rejoined (s)".into(),
                t.elapsed().as_secs_f64(),
            );
            if !e.wait() {
                return Err(format!("{backend}: not healthy after kill"));
            }
            // SIGSTOP of the leader → acknowledged write.
            let w = shared::leader_fault(&e, "pause")
                .await
                .map_err(|err| format!("{backend}: {err}"))?;
            f.insert("SIGSTOP leader → acknowledged write (s)".into(), w);
            if !e.wait() {
                return Err(format!("{backend}: not healthy after resume"));
            }
        }
        if backend == "in-process" {
            f.insert(
                "RSS per node after the load (MB)".into(),
                mean_rss(&node_pids(&e.status())).ok_or("no RSS")?,
            );
            continue;
        }
        let addr = follower_addr(&e);
        for op in OPS {
            for depth in DEPTHS {
                let (ops, lat) = load(&addr, op, depth, secs)
                    .await
                    .ok_or_else(|| format!("{backend}: {op} x{depth} failed"))?;
                let row = format!("{op} ×{depth}, {sync}");
                f.insert(format!("{row}: ops/s"), ops);
                f.insert(format!("{row}: p50 (ms)"), pct(&lat, 0.5));
                f.insert(format!("{row}: p99 (ms)"), pct(&lat, 0.99));
                if depth == 32 && force_sync {
                    latencies.insert(format!("{backend} {op}"), lat);
                }
            }
        }
        if force_sync {
            f.insert(
                "RSS per node after the load (MB)".into(),
                mean_rss(&node_pids(&e.status())).ok_or("no RSS")?,
            );
        }
    }
    Ok(f)
}

fn fmt(x: f64) -> String {
    if x >= 1000.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// Latency CDFs at 32 outstanding, log-scaled milliseconds, as SVG.
fn svg(latencies: &BTreeMap<String, Vec<u64>>) -> String {
    let (w, h, m) = (760.0, 420.0, 60.0);
    let (lo, hi) = (0.01f64.log10(), 1000f64.log10());
    let x = |ms: f64| m + (ms.max(0.01).log10() - lo) / (hi - lo) * (w - 2.0 * m);
    let y = |q: f64| h - m - q * (h - 2.0 * m);
    let colors = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    ];
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{m}\" y=\"24\" font-size=\"15\">Latency CDF, 3 nodes, client on a follower, 32 outstanding, forceSync on (last run)</text>\n"
    );
    for decade in [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0] {
        let xx = x(decade);
        out += &format!(
            "<line x1=\"{xx:.1}\" y1=\"{:.1}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{decade} ms</text>\n",
            y(0.0),
            y(1.0),
            y(0.0) + 18.0
        );
    }
    for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
        let yy = y(q);
        out += &format!(
            "<line x1=\"{m}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{yy:.1}\" text-anchor=\"end\">{q}</text>\n",
            w - m,
            m - 6.0
        );
    }
    for (i, (name, lat)) in latencies.iter().enumerate() {
        let n = lat.len();
        if n == 0 {
            continue;
        }
        let step = (n / 400).max(1);
        let pts: Vec<String> = (0..n)
            .step_by(step)
            .chain(std::iter::once(n - 1))
            .map(|k| {
                format!(
                    "{:.1},{:.1}",
                    x(lat[k] as f64 / 1000.0),
                    y((k + 1) as f64 / n as f64)
                )
            })
            .collect();
        let c = colors[i % colors.len()];
        let dash = if name.starts_with("apache") {
            " stroke-dasharray=\"6,3\""
        } else {
            ""
        };
        out += &format!(
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"{dash} points=\"{}\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{c}\">{name}</text>\n",
            pts.join(" "),
            w - m - 150.0,
            m + 16.0 * i as f64 + 20.0
        );
    }
    out + "</svg>\n"
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; nothing else is expected.
    let runs: usize = std::env::var("ZKHERD_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let secs: f64 = std::env::var("ZKHERD_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let base: u16 = 24181;
    let backends = shared::backends();
    let mut results: BTreeMap<&str, Vec<Figures>> = BTreeMap::new();
    let mut latencies = BTreeMap::new();
    let started = Instant::now();
    for run in 1..=runs {
        for backend in &backends {
            let t = Instant::now();
            match one_run(backend, base, secs, &mut latencies).await {
                Ok(f) => {
                    eprintln!(
                        "run {run}/{runs} {backend}: {:.0} s; first write {:.3} s, kill {:.3} s, pause {:.3} s",
                        t.elapsed().as_secs_f64(),
                        f["spawn → first acknowledged write (s)"],
                        f["kill -9 leader → acknowledged write (s)"],
                        f["SIGSTOP leader → acknowledged write (s)"]
                    );
                    results.entry(backend).or_default().push(f);
                }
                Err(e) => {
                    eprintln!("run {run}/{runs} {backend}: FAILED: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    // Rows in the order of the first run's figures, grouped sensibly.
    let rows: Vec<String> = results["builtin"][0].keys().cloned().collect();
    let order = |r: &String| -> (usize, String) {
        let rank = if r.contains("spawn") {
            0
        } else if r.contains("kill -9 leader → ack") {
            1
        } else if r.contains("SIGSTOP") {
            2
        } else if r.contains("rejoined") {
            3
        } else if r.contains("idle RSS") {
            4
        } else if r.contains("after the load") {
            5
        } else {
            6
        };
        (rank, r.clone())
    };
    let mut rows = rows;
    rows.sort_by_key(order);
    let mut md = String::new();
    md += "# Benchmarks: builtin backend beside Apache ZooKeeper\n\n";
    md += &format!(
        "Command: `cargo bench --bench ensemble` (ZKHERD_BENCH_RUNS={runs}, ZKHERD_BENCH_SECS={secs}). \
         3-node ensembles on 127.0.0.1, each started by `zkherd up -d`; runs alternate backends. \
         Each cell: median of {runs} runs (min–max). Load: one session on a follower, N requests \
         outstanding, 100-byte values. Ratio: builtin/apache for times and memory (lower is better \
         for builtin), builtin/apache for ops/s (higher is better). Machine: {} CPUs, {}. \
         Total time: {:.0} s.\n\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        std::fs::read_to_string("/proc/version")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        started.elapsed().as_secs_f64()
    );
    md += "| figure | builtin | apache | ratio builtin/apache | builtin in-process | ratio in-process/apache |\n|---|---|---|---|---|---|\n";
    let mut json_rows = Vec::new();
    for row in &rows {
        let cell = |b: &str| -> Option<(f64, f64, f64)> {
            let v: Vec<f64> = results
                .get(b)?
                .iter()
                .filter_map(|f| f.get(row).copied())
                .collect();
            (!v.is_empty()).then(|| stats(&v))
        };
        let b = cell("builtin");
        let a = cell("apache");
        let t = cell("in-process");
        let show = |c: Option<(f64, f64, f64)>| {
            c.map(|(m, lo, hi)| format!("{} ({}–{})", fmt(m), fmt(lo), fmt(hi)))
                .unwrap_or_else(|| "–".into())
        };
        let ratio = |x: Option<(f64, f64, f64)>| match (x, a) {
            (Some((xm, _, _)), Some((am, _, _))) if am > 0.0 && xm > 0.0 => {
                let r = xm / am;
                if row.contains("ops/s") {
                    format!("{r:.2}× the ops")
                } else {
                    format!("{r:.3} ({:.1}× less)", 1.0 / r)
                }
            }
            _ => "–".into(),
        };
        md += &format!(
            "| {row} | {} | {} | {} | {} | {} |\n",
            show(b),
            show(a),
            ratio(b),
            show(t),
            ratio(t)
        );
        json_rows.push(serde_json::json!({
            "figure": row,
            "builtin": b.map(|(m, lo, hi)| serde_json::json!({"median": m, "min": lo, "max": hi})),
            "apache": a.map(|(m, lo, hi)| serde_json::json!({"median": m, "min": lo, "max": hi})),
            "builtin_in_process": t.map(|(m, lo, hi)| serde_json::json!({"median": m, "min": lo, "max": hi})),
        }));
    }
    md += "\nLatency distributions (32 outstanding, forceSync on, last run): `BENCHMARKS-latency.svg`.\n";
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The hand-written analysis (targets met or not, and why) follows the generated table.
    let notes =
        std::fs::read_to_string(root.join("benches/BENCHMARKS-notes.md")).unwrap_or_default();
    // The blocks of the membership and scale benches are kept as they are.
    let old = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap_or_default();
    let block: String = ["membership", "scale"]
        .iter()
        .filter_map(|b| shared::block(&old, b))
        .map(|b| format!("\n{b}\n"))
        .collect();
    let _ = std::fs::write(root.join("BENCHMARKS.md"), format!("{md}\n{notes}{block}"));
    let json = serde_json::json!({
        "command": "cargo bench --bench ensemble",
        "runs": runs,
        "seconds_per_load": secs,
        "rows": json_rows,
        "raw": results,
    });
    let _ = std::fs::write(
        root.join("BENCHMARKS.json"),
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    );
    let _ = std::fs::write(root.join("BENCHMARKS-latency.svg"), svg(&latencies));
    println!("{md}");
}
