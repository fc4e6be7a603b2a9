//! `kill -9` the builtin server during a write loop, restart it, and find every acknowledged
//! write, every live session and its ephemerals back, with zxids still increasing.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zookeeper_client::{Acls, Client, CreateMode};

struct Node {
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(cfg: &std::path::Path, log: &std::path::Path) -> Node {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(common::BIN)
        .args(["node", "--config"])
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Node { child }
}

async fn connect(addr: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .with_connection_timeout(Duration::from_millis(500))
            .connect(addr)
            .await
        {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {addr}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn every_acknowledged_write_and_live_session_survives_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_base_port(1);
    let cfg = tmp.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nsnapCount=50\n",
            tmp.path().join("data").display()
        ),
    )
    .unwrap();
    let log = tmp.path().join("node.log");
    let addr = format!("127.0.0.1:{port}");
    let mut node = spawn(&cfg, &log);

    // A session that must outlive the crash, with an ephemeral.
    let keeper = Client::connector()
        .with_detached()
        .with_session_timeout(Duration::from_secs(20))
        .connect(&addr)
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", std::fs::read_to_string(&log).unwrap()));
    keeper
        .create(
            "/alive",
            b"",
            &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    let keeper_session = keeper.session().clone();

    // Write until killed; remember what was acknowledged.
    let writer = connect(&addr).await;
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let mut acked: Vec<(u32, i64)> = Vec::new();
    let kill_at = Instant::now() + Duration::from_millis(700);
    let mut killed = false;
    for i in 0..100_000u32 {
        if !killed && Instant::now() >= kill_at {
            // SIGKILL with writes in flight: issue one more write and kill without waiting.
            let path = format!("/k{i}");
            let pending = writer.create(&path, i.to_string().as_bytes(), &opts);
            node.child.kill().unwrap();
            killed = true;
            if let Ok((stat, _)) = tokio::time::timeout(Duration::from_secs(2), pending)
                .await
                .unwrap_or(Err(zookeeper_client::Error::ConnectionLoss))
            {
                acked.push((i, stat.czxid));
            }
            break;
        }
        match writer
            .create(&format!("/k{i}"), i.to_string().as_bytes(), &opts)
            .await
        {
            Ok((stat, _)) => acked.push((i, stat.czxid)),
            Err(e) => panic!("write {i} failed before the kill: {e}"),
        }
    }
    assert!(killed);
    assert!(
        acked.len() > 20,
        "only {} writes before the kill",
        acked.len()
    );
    let _ = node.child.wait();
    drop(writer);
    drop(keeper);

    let _node = spawn(&cfg, &log);
    let reader = connect(&addr).await;
    for (i, czxid) in &acked {
        let (data, stat) = reader
            .get_data(&format!("/k{i}"))
            .await
            .unwrap_or_else(|e| panic!("acknowledged write /k{i} lost: {e}"));
        assert_eq!(data, i.to_string().as_bytes());
        assert_eq!(stat.czxid, *czxid);
    }
    let max_acked = acked.iter().map(|(_, z)| *z).max().unwrap();
    let (stat, _) = reader.create("/after", b"", &opts).await.unwrap();
    assert!(
        stat.czxid > max_acked,
        "zxids keep increasing after a restart"
    );

    // The live session is back: its ephemeral exists, and it can resume.
    assert!(reader.check_stat("/alive").await.unwrap().is_some());
    let resumed = Client::connector()
        .with_session(keeper_session)
        .with_session_timeout(Duration::from_secs(20))
        .connect(&addr)
        .await
        .expect("the session survives the crash");
    assert!(resumed.check_stat("/alive").await.unwrap().is_some());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("recovered zxid"), "{text}");
}
