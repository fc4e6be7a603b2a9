//! Network faults through the supervisor's link proxies (`[network] faults = true`): a
//! partitioned leader is replaced and refuses writes, the healed minority catches up, a delay
//! slows writes down, bad input is refused.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn faulty_cluster() -> Cluster {
    let c = Cluster::new(3);
    std::fs::write(
        c.tmp.path().join("zkherd.toml"),
        format!(
            "[network]\nfaults = true\nproxy_base = {}\n",
            free_proxy_base()
        ),
    )
    .unwrap();
    let out = c.up(&["--backend", "builtin", "--no-watch"]);
    assert!(out.status.success(), "up: {}{}", stdout(&out), stderr(&out));
    c
}

fn leader(c: &Cluster) -> Option<u64> {
    c.status_json().0["leader"].as_u64()
}

fn srvr(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"srvr");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn create(connect: &str, path: &str) -> Result<(), String> {
    let client = zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(4))
        .with_connection_timeout(Duration::from_secs(2))
        .connect(connect)
        .await
        .map_err(|e| e.to_string())?;
    let opts =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    tokio::time::timeout(Duration::from_secs(4), client.create(path, b"v", &opts))
        .await
        .map_err(|_| "timed out".to_string())?
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn a_partitioned_leader_is_replaced_refuses_writes_and_catches_up_after_heal() {
    let c = faulty_cluster();
    let old = leader(&c).expect("a leader");
    let out = c.run(&["partition", "leader"], 30);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains(&format!("<->{old} cut")), "{text}");
    // The majority elects another leader; the old one stops serving.
    let new = eventually(Duration::from_secs(20), || leader(&c).filter(|l| *l != old))
        .expect("no new leader after partitioning the old one");
    let old_addr = c.connect_to(old as u16);
    assert!(
        eventually(Duration::from_secs(10), || srvr(&old_addr)
            .contains("not currently serving")
            .then_some(()))
        .is_some(),
        "the partitioned leader still serves"
    );
    let rt = rt();
    let new_addr = c.connect_to(new as u16);
    rt.block_on(create(&new_addr, "/during"))
        .expect("a write on the majority");
    assert!(
        rt.block_on(create(&old_addr, "/on-the-minority")).is_err(),
        "the partitioned old leader acknowledged a write"
    );
    let (_, code) = c.status_json();
    assert_eq!(code, 1, "degraded while partitioned");
    let out = c.run(&["status"], 30);
    assert!(stdout(&out).contains("links: "), "{}", stdout(&out));
    // Healed, the old leader catches up with the write it missed.
    let out = c.run(&["heal"], 30);
    assert!(
        stdout(&out).contains("every link is clear"),
        "{}",
        stdout(&out)
    );
    let out = c.run(&["wait", "--timeout", "30"], 60);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    rt.block_on(async {
        let r = zookeeper_client::Client::connect(&old_addr).await.unwrap();
        r.sync("/during").await.unwrap();
        assert!(r.check_stat("/during").await.unwrap().is_some());
        assert!(r.check_stat("/on-the-minority").await.unwrap().is_none());
    });
}

#[test]
fn a_delay_slows_writes_down_by_at_least_the_delay() {
    let c = faulty_cluster();
    let l = leader(&c).unwrap();
    let follower = (1..=3u16).find(|n| u64::from(*n) != l).unwrap();
    let addr = c.connect_to(follower);
    let rt = rt();
    let median = |tag: &str| -> Duration {
        rt.block_on(async {
            let client = zookeeper_client::Client::connect(&addr).await.unwrap();
            let opts = zookeeper_client::CreateMode::Persistent
                .with_acls(zookeeper_client::Acls::anyone_all());
            let mut t = Vec::new();
            for i in 0..9 {
                let s = Instant::now();
                client
                    .create(&format!("/{tag}{i}"), b"v", &opts)
                    .await
                    .unwrap();
                t.push(s.elapsed());
            }
            t.sort();
            t[t.len() / 2]
        })
    };
    let before = median("fast");
    let out = c.run(&["net", "delay", "all", "30ms"], 30);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("delay 30ms"), "{}", stdout(&out));
    let after = median("slow");
    eprintln!("write through a follower: {before:?} -> {after:?} with 30 ms on every link");
    // Forwarded to the leader and committed by a quorum: at least one delayed hop each way.
    assert!(
        after >= before + Duration::from_millis(30),
        "{before:?} -> {after:?}"
    );
    let out = c.run(&["heal"], 30);
    assert!(out.status.success());
}

#[test]
fn bad_network_commands_are_refused_with_the_reason() {
    let c = faulty_cluster();
    for (args, expect) in [
        (vec!["partition", "1,2", "2"], "node 2 is in two islands"),
        (vec!["partition", "1,2,3"], "nothing to cut"),
        (vec!["isolate", "9"], "there is no node 9"),
        (vec!["net", "delay", "2", "fast"], "not a duration"),
        (vec!["net", "loss", "all", "140%"], "not a percentage"),
        (
            vec!["partition", "--from", "2", "--to", "2"],
            "the same node",
        ),
    ] {
        let out = c.run(&args, 30);
        assert!(!out.status.success(), "{args:?}: {}", stdout(&out));
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
    }
    // A one-way cut, then heal.
    let out = c.run(&["partition", "--from", "1", "--to", "3"], 30);
    assert!(stdout(&out).contains("1->3 cut"), "{}", stdout(&out));
    let out = c.run(&["net", "show"], 30);
    assert!(stdout(&out).contains("1->3 cut"), "{}", stdout(&out));
    assert!(c.run(&["heal"], 30).status.success());
    // Not with Apache's dynamic config file.
    let apache = Cluster::new(3);
    std::fs::write(
        apache.tmp.path().join("zkherd.toml"),
        "[cluster]\nbackend = \"apache\"\n[network]\nfaults = true\n[zookeeper.extra]\n\
         reconfigEnabled = true\n",
    )
    .unwrap();
    let out = apache.up(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("are not supported"),
        "{}",
        stderr(&out)
    );
    // Without link proxies the commands say how to get them.
    let plain = Cluster::new(3);
    let out = plain.up(&["--backend", "builtin"]);
    assert!(out.status.success());
    let out = plain.run(&["isolate", "1"], 30);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("runs without link proxies"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn chaos_with_partitions_isolations_and_delays_finds_no_anomaly() {
    let c = faulty_cluster();
    let out = c.run(
        &[
            "chaos",
            "--check",
            "--faults",
            "partition,isolate,delay",
            "--target",
            "leader",
            "--duration",
            "25s",
            "--every",
            "6s",
            "--seed",
            "5",
        ],
        240,
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("anomalies: none"), "{text}");
    assert!(text.contains("healed every link"), "{text}");
    assert!(text.contains("ensemble healthy"), "{text}");
    assert!(text.contains(" cut"), "{text}");
}

/// `readonlymode.enabled`: a node cut off from the quorum serves read-only sessions (reads
/// answered, writes refused with NotReadOnly, `isro` = ro); healed, the client is moved back
/// to a read-write server. kazoo's read-only client is the model.
fn read_only_sessions_work_on_a_minority_node(backend: &str) {
    // Apache 3.8.0 answers a read-only connect with a bare NotReadOnly reply header (16
    // bytes, which kazoo cannot parse) unless local sessions are on.
    let extra = if backend == "apache" {
        "\"localSessionsEnabled\" = true\n"
    } else {
        ""
    };
    let c = Cluster::new(3);
    std::fs::write(
        c.tmp.path().join("zkherd.toml"),
        format!(
            "[network]\nfaults = true\nproxy_base = {}\n[zookeeper.extra]\n\
             \"readonlymode.enabled\" = true\n{extra}",
            free_proxy_base()
        ),
    )
    .unwrap();
    let out = c.up(&["--backend", backend, "--no-watch"]);
    assert!(out.status.success(), "up: {}{}", stdout(&out), stderr(&out));
    let l = leader(&c).unwrap();
    let minority = (1..=3u16).find(|n| u64::from(*n) != l).unwrap();
    let rt = rt();
    rt.block_on(create(&c.connect_to(l as u16), "/before"))
        .expect("a write before the partition");
    // Every node has it before the cut.
    assert!(c.run(&["wait", "--timeout", "30"], 60).status.success());
    let out = c.run(&["isolate", &minority.to_string()], 30);
    assert!(out.status.success(), "{}", stderr(&out));
    let addr = c.connect_to(minority);
    // Apache notices the lost leader after syncLimit × tickTime (10 s), then waits a tick.
    let ro = eventually(Duration::from_secs(90), || {
        let mut s = std::net::TcpStream::connect(&addr).ok()?;
        use std::io::{Read, Write};
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"isro").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        (out.trim() == "ro").then_some(())
    });
    assert!(
        ro.is_some(),
        "node {minority} never went read-only; its log ends:\n{}",
        stdout(&c.run(&["logs", "-n", "60", &minority.to_string()], 30))
    );
    // The zookeeper-client crate's read-only session: reads answered, writes refused.
    rt.block_on(async {
        let client = zookeeper_client::Client::connector()
            .with_readonly(true)
            .with_session_timeout(Duration::from_secs(10))
            .connect(&addr)
            .await
            .expect("a read-only session");
        let (data, _) = client.get_data("/before").await.expect("a read");
        assert_eq!(data, b"v");
        let opts = zookeeper_client::CreateMode::Persistent
            .with_acls(zookeeper_client::Acls::anyone_all());
        let w = client.create("/during", b"x", &opts).await;
        assert!(
            matches!(w, Err(zookeeper_client::Error::NotReadOnly)),
            "{w:?}"
        );
    });
    let script = r#"
import sys, time
from kazoo.client import KazooClient, KazooState
from kazoo.protocol.states import KeeperState
from kazoo.exceptions import NotReadOnlyCallError
zk = KazooClient(hosts=sys.argv[1], read_only=True, timeout=10)
zk.start(timeout=20)
assert zk.client_state == KeeperState.CONNECTED_RO, zk.client_state
data, _ = zk.get("/before")
try:
    zk.create("/during", b"x"); sys.exit("a write was accepted in read-only mode")
except NotReadOnlyCallError:
    pass
print("read-only ok", flush=True)
sys.stdin.readline()   # the test heals the network
deadline = time.time() + 60
while zk.client_state != KeeperState.CONNECTED and time.time() < deadline:
    time.sleep(0.2)
assert zk.client_state == KeeperState.CONNECTED, zk.client_state
zk.create("/after", b"x")
print("read-write again", flush=True)
"#;
    use std::io::{BufRead, Write};
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, &addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
    let heal = c.run(&["heal"], 30);
    assert!(heal.status.success());
    let mut stdin = child.stdin.take().unwrap();
    let _ = writeln!(stdin, "go");
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(first, "read-only ok", "{first}\n{rest:?}\n{err}");
    assert!(
        rest.iter().any(|l| l == "read-write again"),
        "{rest:?}\n{err}"
    );
}

#[test]
fn read_only_sessions_work_on_a_builtin_minority_node() {
    if !kazoo_available("read_only_sessions_work_on_a_builtin_minority_node") {
        return;
    }
    read_only_sessions_work_on_a_minority_node("builtin");
}

#[test]
fn read_only_sessions_work_on_an_apache_minority_node() {
    let name = "read_only_sessions_work_on_an_apache_minority_node";
    if !apache_available(name) || !kazoo_available(name) {
        return;
    }
    read_only_sessions_work_on_a_minority_node("apache");
}
