//! A small load generator: keeps N requests outstanding on one connection (the client pipelines
//! them) and reports ops/s and latency percentiles.
//!
//! ```sh
//! cargo run --release --example loadgen -- 127.0.0.1:2181 create 32 5
//! cargo run --release --example loadgen -- 127.0.0.1:2181 get 32 5
//! ```
//! Arguments: address, op (create | set | get), outstanding requests, seconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use zookeeper_client::{Acls, Client, CreateMode};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:2181".into());
    let op = args.get(2).cloned().unwrap_or_else(|| "create".into());
    let outstanding: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(32);
    let secs: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(5);
    let client = Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .connect(&addr)
        .await?;
    let root = format!("/loadgen-{}", std::process::id());
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.create(&root, b"", &opts).await?;
    let value = vec![b'v'; 100];
    let target = format!("{root}/target");
    client.create(&target, &value, &opts).await?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..outstanding {
        let client = client.clone();
        let (op, root, target, value) = (op.clone(), root.clone(), target.clone(), value.clone());
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
            let mut lat = Vec::with_capacity(100_000);
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
                r.expect("request failed");
                lat.push(t.elapsed().as_micros() as u64);
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                i += 1;
            }
            lat
        }));
    }
    let t0 = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "{op} outstanding={outstanding}: {:.0} ops/s, p50 {} us, p99 {} us ({} ops in {:.1}s)",
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        all.len(),
        elapsed
    );
    Ok(())
}
