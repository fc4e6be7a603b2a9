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
    let sequential = args.iter().skip(2).any(|a| a == "sequential");
    for (k, ops) in &keys {
        if sequential {
            let resolved = check::resolve_unknowns(ops);
            let reads = check::sequential_read_anomalies(&resolved, (0, 0));
            let writes: Vec<Op> = resolved
                .into_iter()
                .filter(|o| o.input != check::Input::Read)
                .collect();
            let t = std::time::Instant::now();
            let verdict = check::linearizable(&writes, (0, 0), budget);
            println!(
                "key k{k}: {} writes and compare-and-sets linearizable: {verdict:?} in {:.1} s; \
                 {} read anomalies",
                writes.len(),
                t.elapsed().as_secs_f64(),
                reads.len()
            );
            for a in reads.iter().take(20) {
                println!("  {a}");
            }
            continue;
        }
        let resolved = check::resolve_unknowns(ops);
        let t = std::time::Instant::now();
        let verdict = check::linearizable(&resolved, (0, 0), budget);
        println!(
            "key k{k}: {} ops ({} after resolving unknowns): {verdict:?} in {:.1} s",
            ops.len(),
            resolved.len(),
            t.elapsed().as_secs_f64()
        );
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
