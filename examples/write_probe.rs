//! Retry one write until it is acknowledged; print how long that took. For failover timing:
//!
//! ```sh
//! zkherd kill --leader && cargo run --example write_probe -- "$(zkherd env --format kafka | cut -d= -f2)"
//! ```
//! Arguments: connect string, give-up seconds (default 30).

use std::time::{Duration, Instant};

use zookeeper_client::{Acls, Client, CreateMode};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let connect = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:2181".into());
    let give_up: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(give_up);
    let opts = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
    while Instant::now() < deadline {
        let attempt = async {
            let c = Client::connector()
                .with_session_timeout(Duration::from_secs(6))
                .with_connection_timeout(Duration::from_millis(300))
                .connect(&connect)
                .await
                .ok()?;
            c.create("/write-probe-", b"", &opts).await.ok()
        };
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
            println!("{:.3}", t0.elapsed().as_secs_f64());
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("timeout");
    std::process::exit(1);
}
