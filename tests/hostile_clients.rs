//! Hostile and broken clients against a builtin node: garbage, truncated frames, oversize and
//! negative lengths, thousands of idle connections, a slow-drip sender. After each, the node is
//! up, a well-behaved client is served, and memory stays bounded.
//!
//! The node runs in this test process (`zkherd::testing`), so the process's RSS bounds the
//! node's memory.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zkherd::probe;
use zkherd::testing::TestingCluster;
use zookeeper_client::{Acls, Client, CreateMode};

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// A well-behaved client still gets a session, a write and a read, promptly.
async fn healthy(c: &TestingCluster, label: &str) {
    let t0 = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        let client = Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(&c.connect_string())
            .await?;
        let path = format!("/ok-{}", label.replace(' ', "-"));
        client
            .create(
                &path,
                b"fine",
                &CreateMode::Persistent.with_acls(Acls::anyone_all()),
            )
            .await?;
        let (data, _) = client.get_data(&path).await?;
        Ok::<_, zookeeper_client::Error>(data)
    })
    .await;
    match r {
        Ok(Ok(data)) => assert_eq!(data, b"fine"),
        Ok(Err(e)) => panic!("after {label}: a normal client failed: {e}"),
        Err(_) => panic!("after {label}: a normal client got no answer in 10 s"),
    }
    let addr = c.client_addr(1).unwrap();
    let ruok = probe::four_letter_word(addr, "ruok", Duration::from_secs(2)).await;
    assert_eq!(ruok.ok().as_deref(), Some("imok"), "after {label}");
    eprintln!("{label}: normal client served in {:?}", t0.elapsed());
}

/// Whether the server closed `s` (EOF or reset) within 5 s.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
        if Instant::now() > deadline {
            return false;
        }
    }
}

/// A valid handshake for a new session, framed.
fn hello() -> Vec<u8> {
    zkherd::server::proto::ConnectRequest::new_session(30_000, 0).framed()
}

/// Deterministic garbage (xorshift), so a failure can be replayed.
fn garbage(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_truncated_and_impossible_frames_close_only_their_connection() {
    let c = TestingCluster::start_with(1, "maxClientCnxns=0")
        .await
        .unwrap();
    let addr = c.client_addr(1).unwrap();
    let before = rss_mb();

    // Garbage in place of a handshake: dropped; garbage after a valid one: dropped too.
    for seed in 1..=20u64 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut g = garbage(4096, seed);
        g[..4].copy_from_slice(&1000i32.to_be_bytes()); // a plausible length, then noise
        let _ = s.write_all(&g).await;
        assert!(
            closed_by_server(&mut s).await,
            "garbage seed {seed} left open"
        );
    }
    healthy(&c, "garbage").await;

    // Oversize and negative lengths, before and after the handshake: closed at once, nothing
    // allocated for them.
    for len in [i32::MAX, 0x7fff_0000, 1 << 24, -1, -2_000_000_000] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(&len.to_be_bytes()).await;
        assert!(closed_by_server(&mut s).await, "length {len} left open");
    }
    healthy(&c, "impossible lengths").await;

    // Truncated frames: a length, part of the body, then the client goes away (or stalls).
    let mut stalled = Vec::new();
    for cut in [0usize, 1, 10, 40] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut frame = 48i32.to_be_bytes().to_vec();
        frame.extend_from_slice(&vec![0u8; cut]);
        s.write_all(&frame).await.unwrap();
        stalled.push(s); // half a frame, held open
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&frame).await.unwrap();
        drop(s); // half a frame, then gone
    }
    healthy(&c, "truncated frames").await;
    drop(stalled);

    // A client that announces the largest allowed frame (jute.maxbuffer) and sends 1 byte
    // holds about that byte, not the megabyte: 500 of them stay well under 100 MB.
    let mut big = Vec::new();
    for _ in 0..500 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut f = 0xfffffi32.to_be_bytes().to_vec();
        f.push(0);
        s.write_all(&f).await.unwrap();
        big.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = rss_mb() - before;
    eprintln!("500 announced 1 MB frames: RSS grew {grown:.1} MB");
    assert!(grown < 100.0, "memory grew {grown:.1} MB");
    healthy(&c, "announced but unsent frames").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_leave_others_unaffected() {
    // Both ends of 3000 connections live in this process: raise the soft fd limit to the hard.
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < 8000 {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(65536), hard);
        }
    }
    let c = TestingCluster::start_with(1, "maxClientCnxns=0")
        .await
        .unwrap();
    let addr = c.client_addr(1).unwrap();
    let before = rss_mb();
    let mut idle = Vec::new();
    for _ in 0..3000 {
        match TcpStream::connect(addr).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {} refused: {e}", idle.len() + 1),
        }
    }
    // Half of them also complete a handshake and then say nothing (a live, idle session).
    for s in idle.iter_mut().take(500) {
        s.write_all(&hello()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss_mb() - before;
    eprintln!("3000 idle connections (500 with sessions): RSS grew {grown:.1} MB");
    assert!(
        grown < 150.0,
        "memory grew {grown:.1} MB for 3000 idle connections"
    );
    healthy(&c, "3000 idle connections").await;
    let cons = probe::four_letter_word(addr, "srvr", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(cons.contains("Connections:"), "{cons}");
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    healthy(&c, "idle connections gone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_drip_sender_does_not_hold_up_anyone_else() {
    let c = TestingCluster::start_with(1, "maxClientCnxns=0")
        .await
        .unwrap();
    let addr = c.client_addr(1).unwrap();
    // A valid handshake, one byte every 20 ms (about a second in all); meanwhile normal
    // clients are served, and in the end the drip's own handshake is answered too.
    let frame = hello();
    let drip = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        for b in frame {
            s.write_all(&[b]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut len = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut len))
            .await
            .expect("the drip's handshake is answered")
            .unwrap();
        i32::from_be_bytes(len)
    });
    for i in 0..5 {
        healthy(&c, &format!("slow drip {i}")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let len = drip.await.unwrap();
    assert!(len > 0, "handshake reply length {len}");
}
