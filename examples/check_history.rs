//! Check a history written by `zkherd chaos --check --history FILE` again, offline, with a
//! larger search budget; if a key is not linearizable, bisect to the earliest operation at
//! which its history stops being linearizable.
//!
//! ```sh
//! cargo run --release --example check_history -- history.jsonl [budget] [sequential]
//! ```
//! `sequential` checks what Apache ZooKeeper promises (see `zkherd chaos --reads`): writes and
//! compare-and-sets linearizable, reads sequentially consistent.

use std::collections::BTreeMap;

use zkherd::chaos::check::{self, Op, Output};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: check_history FILE [budget] [sequential]");
        std::process::exit(2);
    };
    let budget: u64 = args
        .get(2)
        .and_then(|b| b.parse().ok())
        .unwrap_or(1_000_000_000);
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2)
    });
    let mut keys: BTreeMap<u64, Vec<Op>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
            eprintln!("{path}:{}: {e}", i + 1);
            std::process::exit(2)
        });
        let k = v["key"].as_u64().unwrap_or(0);
        let op: Op = serde_json::from_value(v["op"].clone()).unwrap_or_else(|e| {
            eprintln!("{path}:{}: {e}", i + 1);
            std::process::exit(2)
        });
        keys.entry(k).or_default().push(op);
    }
    let reads = if args.iter().skip(2).any(|a| a == "sequential") {
        check::ReadModel::Sequential
    } else {
        check::ReadModel::Linearizable
    };
    for (k, ops) in &keys {
        let t = std::time::Instant::now();
        let c = check::check_key(ops, (0, 0), budget, reads);
        let verdict = c.linearizable;
        println!(
            "key k{k}: {} ops ({} searched, {reads:?} reads): {verdict:?} in {:.1} s; {} read \
             anomalies",
            ops.len(),
            c.searched.len(),
            t.elapsed().as_secs_f64(),
            c.read_anomalies.len()
        );
        for a in c.read_anomalies.iter().take(20) {
            println!("  {a}");
        }
        if reads == check::ReadModel::Sequential {
            // The bisection below searches whole histories, reads included.
            continue;
        }
        if verdict != Some(true) {
            // The earliest call time T such that the operations called before T (those still
            // running at T counted as unknown) are not linearizable.
            let mut calls: Vec<u64> = ops.iter().map(|o| o.call).collect();
            calls.sort_unstable();
            let prefix = |n: usize| -> Vec<Op> {
                let cut = calls[n.min(calls.len() - 1)];
                let p: Vec<Op> = ops
                    .iter()
                    .filter(|o| o.call < cut)
                    .map(|o| match o.ret {
                        Some(r) if r < cut => *o,
                        _ => Op {
                            output: Output::Unknown,
                            ret: None,
                            ..*o
                        },
                    })
                    .collect();
                check::resolve_unknowns(&p)
            };
            let (mut lo, mut hi) = (0usize, calls.len());
            while lo + 1 < hi {
                let mid = (lo + hi) / 2;
                match check::linearizable(&prefix(mid), (0, 0), budget / 20) {
                    Some(true) => lo = mid,
                    _ => hi = mid,
                }
            }
            let cut = calls[hi.min(calls.len() - 1)];
            println!("  first trouble near operation {hi} (call time {cut} ns); around it:");
            let mut near: Vec<&Op> = ops
                .iter()
                .filter(|o| o.call + 50_000_000 >= cut && o.call <= cut + 5_000_000)
                .collect();
            near.sort_by_key(|o| o.call);
            for o in near.iter().take(40) {
                println!("    {o:?}");
            }
        }
    }
}
