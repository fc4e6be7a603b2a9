//! Changing a running ensemble's membership: `zkherd scale` / `add` / `remove` on both
//! backends (processes and in-process for builtin), refusals, a removed node that stops
//! serving, and kazoo's reconfig against the builtin server.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::*;

const RECONFIG_ON: &str = "[zookeeper.extra]\nreconfigEnabled = true\n";

/// A 3-voter cluster with reconfig on and room in its port range for 5 nodes.
fn cluster(backend: &[&str]) -> Cluster {
    let mut c = Cluster::new(3);
    c.base = free_base_port(6);
    std::fs::write(c.tmp.path().join("zkherd.toml"), RECONFIG_ON).unwrap();
    let mut args = vec!["--no-watch"];
    args.extend_from_slice(backend);
    let out = c.up(&args);
    assert!(out.status.success(), "up: {}{}", stdout(&out), stderr(&out));
    c
}

fn four(addr: &str, cmd: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.write_all(cmd.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// (role, pid) per node, from `status --json`.
fn roles(c: &Cluster) -> Vec<(String, Option<i64>)> {
    let (s, _) = c.status_json();
    s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["role"].as_str().unwrap_or("").to_string(),
                n["pid"].as_i64(),
            )
        })
        .collect()
}

fn write_and_read(c: &Cluster, node: u16, path: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let w = zookeeper_client::Client::connect(&c.connect_to(1))
            .await
            .unwrap();
        let opts = zookeeper_client::CreateMode::Persistent
            .with_acls(zookeeper_client::Acls::anyone_all());
        w.create(path, b"v", &opts).await.unwrap();
        let r = zookeeper_client::Client::connect(&c.connect_to(node))
            .await
            .unwrap();
        r.sync(path).await.unwrap();
        let (data, _) = r.get_data(path).await.unwrap();
        assert_eq!(data, b"v");
    });
}

fn scale_three_five_three(backend: &[&str]) {
    let c = cluster(backend);
    let in_process = backend.contains(&"--in-process");
    let out = c.run(&["scale", "--voters", "5"], 300);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("scaled to 5 voters + 0 observers in"),
        "{text}"
    );
    let r = roles(&c);
    assert_eq!(r.len(), 5, "{r:?}");
    assert_eq!(r.iter().filter(|(x, _)| x == "leader").count(), 1, "{r:?}");
    assert_eq!(
        r.iter().filter(|(x, _)| x == "follower").count(),
        4,
        "{r:?}"
    );
    // The new members hold the data and report the new membership.
    write_and_read(&c, 5, "/after-scale-up");
    let conf = four(&c.connect_to(5), "conf");
    assert!(conf.contains("server.5="), "{conf}");
    let (status, code) = c.status_json();
    assert_eq!(code, 0, "{status:#}");
    let pids45: Vec<i64> = r[3..].iter().filter_map(|(_, p)| *p).collect();

    let out = c.run(&["scale", "--voters", "3"], 300);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("node 4 stopped and no longer supervised"),
        "{text}"
    );
    let r = roles(&c);
    assert_eq!(r.len(), 3, "{r:?}");
    if !in_process {
        for p in pids45 {
            assert!(
                eventually(Duration::from_secs(10), || (!alive(p as i32)).then_some(())).is_some(),
                "removed node pid {p} still runs"
            );
        }
    }
    let conf = four(&c.connect_to(1), "conf");
    assert!(
        conf.contains("server.3=") && !conf.contains("server.4="),
        "{conf}"
    );
    write_and_read(&c, 3, "/after-scale-down");
    // One observer, added and removed by the single-node commands.
    let out = c.run(&["add", "--observer"], 300);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let r = roles(&c);
    assert_eq!(r[3].0, "observer", "{r:?}");
    let out = c.run(&["remove", "4"], 300);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(roles(&c).len(), 3);
    let (status, code) = c.status_json();
    assert_eq!(code, 0, "{status:#}");
}

#[test]
fn builtin_processes_scale_three_five_three() {
    scale_three_five_three(&["--backend", "builtin"]);
}

#[test]
fn builtin_in_process_scale_three_five_three() {
    scale_three_five_three(&["--backend", "builtin", "--in-process"]);
}

#[test]
fn apache_scale_three_five_three() {
    if !apache_available("apache_scale_three_five_three") {
        return;
    }
    scale_three_five_three(&["--backend", "apache"]);
}

#[test]
fn what_would_lose_the_quorum_or_cannot_work_is_refused() {
    let c = cluster(&["--backend", "builtin"]);
    let before = roles(&c);
    for (args, expect) in [
        (vec!["scale", "--voters", "1"], "at least two voters"),
        (vec!["remove", "2"], "cannot be removed alone"),
        (vec!["remove", "9"], "there is no node 9"),
    ] {
        let out = c.run(&args, 60);
        assert!(!out.status.success(), "{args:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(err.contains("nothing was changed") || expect != "at least two voters");
    }
    assert_eq!(roles(&c), before);
    // 5 -> 2 drops three of five voters at once.
    let out = c.run(&["scale", "--voters", "5"], 300);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = c.run(&["scale", "--voters", "2"], 60);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("drops 3 at once"), "{}", stderr(&out));
    assert_eq!(roles(&c).len(), 5);
    // Without reconfigEnabled the ensemble says how to turn it on.
    let plain = Cluster::new(3);
    let out = plain.up(&["--backend", "builtin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = plain.run(&["scale", "--voters", "5"], 60);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("reconfigEnabled = true"),
        "{}",
        stderr(&out)
    );
}

/// A reconfig from a client (not zkherd) that removes a node: it stops serving, says why in
/// its log, and comes back when a reconfig joins it again.
#[test]
fn a_node_removed_by_a_client_reconfig_stops_serving_and_can_rejoin() {
    let c = cluster(&["--backend", "builtin"]);
    let secret = std::fs::read_to_string(c.dir().join("super.secret")).unwrap();
    let auth = format!("zkherd:{}", secret.trim());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let joining = rt.block_on(async {
        let client = zookeeper_client::Client::connector()
            .with_auth("digest", auth.as_bytes())
            .connect(&c.connect_to(1))
            .await
            .unwrap();
        // The first leader publishes the config right after its election; a client can be
        // a few milliseconds earlier.
        let mut tries = 0;
        let (before, stat) = loop {
            client.sync("/zookeeper/config").await.unwrap();
            let (data, stat) = client.get_config().await.unwrap();
            tries += 1;
            if !data.is_empty() || tries > 50 {
                break (data, stat);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let before = String::from_utf8(before).unwrap();
        let line3 = before
            .lines()
            .find(|l| l.starts_with("server.3="))
            .unwrap_or_else(|| {
                let logs: String = (1..=3)
                    .map(|n| {
                        std::fs::read_to_string(c.dir().join(format!("node{n}/logs/node.log")))
                            .unwrap_or_default()
                    })
                    .collect();
                panic!("no server.3 in {before:?}\n{logs}")
            })
            .to_string();
        // BadVersion for a stale version, then the removal at the right one.
        let stale = client
            .update_ensemble(
                zookeeper_client::EnsembleUpdate::Incremental {
                    joinings: Vec::<&str>::new().into_iter(),
                    leavings: vec!["3"].into_iter(),
                },
                Some(stat.mzxid - 1),
            )
            .await;
        assert!(
            matches!(stale, Err(zookeeper_client::Error::BadVersion)),
            "{stale:?}"
        );
        let (after, _) = client
            .update_ensemble(
                zookeeper_client::EnsembleUpdate::Incremental {
                    joinings: Vec::<&str>::new().into_iter(),
                    leavings: vec!["3"].into_iter(),
                },
                Some(stat.mzxid),
            )
            .await
            .unwrap();
        let after = String::from_utf8(after).unwrap();
        assert!(!after.contains("server.3="), "{after}");
        line3
    });
    let srvr = eventually(Duration::from_secs(20), || {
        let s = four(&c.connect_to(3), "srvr");
        s.contains("not currently serving").then_some(s)
    });
    assert!(srvr.is_some(), "node 3 still serves after its removal");
    let said = eventually(Duration::from_secs(10), || {
        let log = std::fs::read_to_string(c.dir().join("node3/logs/node.log")).unwrap();
        log.contains("was removed from the ensemble by a reconfig")
            .then_some(())
    });
    assert!(said.is_some(), "node 3's log does not say it was removed");
    // The two left elect and serve; node 3 comes back as a voter when joined again.
    rt.block_on(async {
        let client = zookeeper_client::Client::connector()
            .with_auth("digest", auth.as_bytes())
            .connect(&c.connect_to(1))
            .await
            .unwrap();
        let spec = joining.split_once('=').unwrap().1.to_string();
        let line = format!("server.3={spec}");
        client
            .update_ensemble(
                zookeeper_client::EnsembleUpdate::Incremental {
                    joinings: vec![line.as_str()].into_iter(),
                    leavings: Vec::<&str>::new().into_iter(),
                },
                None,
            )
            .await
            .unwrap();
    });
    let back = eventually(Duration::from_secs(20), || {
        let s = four(&c.connect_to(3), "srvr");
        (s.contains("Mode: follower") || s.contains("Mode: leader")).then_some(())
    });
    assert!(back.is_some(), "node 3 did not come back as a voter");
    let (status, code) = c.status_json();
    assert_eq!(code, 0, "{status:#}");
}

#[test]
fn kazoo_reconfig_works_against_the_builtin_ensemble() {
    if !kazoo_available("kazoo_reconfig_works_against_the_builtin_ensemble") {
        return;
    }
    let c = cluster(&["--backend", "builtin"]);
    let secret = std::fs::read_to_string(c.dir().join("super.secret")).unwrap();
    let script = r#"
import sys, threading
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, BadArgumentsError, NoAuthError, NewConfigNoQuorumError
hosts, secret, spare = sys.argv[1], sys.argv[2], sys.argv[3]
plain = KazooClient(hosts=hosts); plain.start()
zk = KazooClient(hosts=hosts, auth_data=[("digest", "zkherd:" + secret)]); zk.start()
data, stat = zk.get("/zookeeper/config")
text = data.decode()
assert text.count("server.") == 3 and "version=" in text, text
fired = threading.Event()
zk.get("/zookeeper/config", watch=lambda e: fired.set())
try:
    plain.reconfig(joining=None, leaving="3", new_members=None); sys.exit("no NoAuth")
except NoAuthError: pass
try:
    zk.reconfig(joining=None, leaving="3", new_members=None, from_config=stat.mzxid + 7); sys.exit("no BadVersion")
except BadVersionError: pass
try:
    zk.reconfig(joining=None, leaving="2,3", new_members=None); sys.exit("no BadArguments")
except BadArgumentsError: pass
try:
    zk.reconfig(joining=None, leaving=None, new_members="server.8=127.0.0.1:%s:%s;%s,server.9=127.0.0.1:%s:%s;%s" % (spare, int(spare)+1, int(spare)+2, int(spare)+3, int(spare)+4, int(spare)+5)); sys.exit("no NewConfigNoQuorum")
except NewConfigNoQuorumError: pass
obs = "server.4=127.0.0.1:%s:%s:observer;127.0.0.1:%s" % (spare, int(spare)+1, int(spare)+2)
data, stat2 = zk.reconfig(joining=obs, leaving=None, new_members=None)
assert "server.4=" in data.decode() and ":observer;" in data.decode(), data
assert stat2.mzxid > stat.mzxid
assert fired.wait(10), "the watch on /zookeeper/config did not fire"
data, _ = zk.reconfig(joining=None, leaving="4", new_members=None)
assert "server.4=" not in data.decode(), data
plain.sync("/zookeeper/config")
current, _ = plain.get("/zookeeper/config")
assert current == data, (current, data)
print("kazoo reconfig ok")
"#;
    let spare = free_base_port(6).to_string();
    let hosts = format!("{},{}", c.connect_to(1), c.connect_to(2));
    let out = run_with_timeout(
        Command::new("python3").args(["-c", script, &hosts, secret.trim(), &spare]),
        Duration::from_secs(120),
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success() && text.contains("kazoo reconfig ok"),
        "{text}"
    );
}

#[test]
fn apply_scales_when_the_spec_file_changes_the_node_count() {
    // Started without -n, so the file's node count is the one in force.
    let mut c = Cluster::new(3);
    c.base = free_base_port(6);
    std::fs::write(c.tmp.path().join("zkherd.toml"), RECONFIG_ON).unwrap();
    let base = c.base.to_string();
    let out = c.run(
        &[
            "up",
            "-d",
            "--base-port",
            &base,
            "--wait",
            "90",
            "--no-watch",
        ],
        120,
    );
    assert!(out.status.success(), "up: {}{}", stdout(&out), stderr(&out));
    std::fs::write(
        c.tmp.path().join("zkherd.toml"),
        format!("[cluster]\nnodes = 5\n{RECONFIG_ON}"),
    )
    .unwrap();
    let out = c.run(&["apply"], 300);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("cluster.nodes: 3 -> 5 (by scale (reconfig))"),
        "{text}"
    );
    assert_eq!(roles(&c).len(), 5);
    std::fs::write(c.tmp.path().join("zkherd.toml"), RECONFIG_ON).unwrap();
    let out = c.run(&["apply"], 300);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(roles(&c).len(), 3);
    let (status, code) = c.status_json();
    assert_eq!(code, 0, "{status:#}");
}

/// Checked clients (the chaos workload) through scale 3 -> 5 -> 3 and a rolling restart of
/// the five: no acknowledged write lost, no anomaly.
#[test]
fn clients_lose_no_acknowledged_write_across_scale_and_a_rolling_restart() {
    let c = cluster(&["--backend", "builtin"]);
    let addrs: Vec<std::net::SocketAddr> =
        (1..=3).map(|i| c.connect_to(i).parse().unwrap()).collect();
    let mut outs = Vec::new();
    let (acked, counts) = checked_clients_during(addrs, "/scaling", 11, || {
        for args in [
            vec!["scale", "--voters", "5"],
            vec!["rolling-restart", "--timeout", "90"],
            vec!["scale", "--voters", "3"],
        ] {
            let out = c.run(&args, 400);
            outs.push((args, out));
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    for (args, out) in &outs {
        assert!(
            out.status.success(),
            "{args:?}: {}\n{}",
            stdout(out),
            stderr(out)
        );
    }
    assert!(stdout(&outs[1].1).contains("rolling restart of 5 nodes done"));
    eprintln!(
        "scale 3 -> 5 -> 3 and a rolling restart under load: {acked} acknowledged writes, \
         counts {counts:?}"
    );
}
