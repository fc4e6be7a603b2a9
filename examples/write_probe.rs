//! Retry one write until it is acknowledged; print how long that took. For failover timing:
//!
//! ```sh
//! zkherd kill --leader && cargo run --example write_probe -- "$(zkherd env --format kafka | cut -d= -f2)"
//! ```
//! Arguments: connect string, give-up seconds (default 30).
//!
//! A fresh attempt (new session, one create) starts every 50 ms, each allowed 2 s, so the
//! figure measures the ensemble rather than one client's reconnect back-off: an attempt stuck
//! on a hung (SIGSTOPped) node does not delay the ones after it.

use std::time::{Duration, Instant};

use zookeeper_client::{Acls, Client, CreateMode};

async fn attempt(connect: String) -> Option<()> {
    let opts = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
    let c = Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .with_connection_timeout(Duration::from_millis(200))
        .connect(&connect)
        .await
        .ok()?;
    c.create("/write-probe-", b"", &opts).await.ok().map(|_| ())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let connect = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:2181".into());
    let give_up: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
    let t0 = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut every = tokio::time::interval(Duration::from_millis(50));
    let deadline = tokio::time::sleep(Duration::from_secs(give_up));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = every.tick() => {
                let (tx, connect) = (tx.clone(), connect.clone());
                tokio::spawn(async move {
                    if let Ok(Some(())) =
                        tokio::time::timeout(Duration::from_secs(2), attempt(connect)).await
                    {
                        let _ = tx.send(());
                    }
                });
            }
            Some(()) = rx.recv() => {
                println!("{:.3}", t0.elapsed().as_secs_f64());
                return;
            }
            _ = &mut deadline => {
                println!("timeout");
                std::process::exit(1);
            }
        }
    }
}
