//! `zkherd rolling-restart`: one node at a time, followers first, the leader last, each after
//! the ensemble is healthy again; aborts naming the node that does not come back; and clients
//! running through it lose no acknowledged write.

mod common;

use std::net::SocketAddr;

use common::{stderr, stdout, Cluster};

/// The pid and role of every node, by myid.
fn pids_and_leader(c: &Cluster) -> (Vec<Option<u64>>, u64) {
    let (s, code) = c.status_json();
    assert_eq!(code, 0, "{s:#}");
    let pids = s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["pid"].as_u64())
        .collect();
    (pids, s["leader"].as_u64().expect("a leader"))
}

/// Restart order from the command's output: `restarting node N (role)`.
fn order(out: &str) -> Vec<(u64, String)> {
    out.lines()
        .filter_map(|l| l.strip_prefix("restarting node "))
        .map(|rest| {
            let (id, role) = rest.split_once(' ').unwrap();
            (
                id.parse().unwrap(),
                role.trim_matches(['(', ')']).to_string(),
            )
        })
        .collect()
}

fn restarts_every_node_leader_last(up: &[&str], processes: bool) {
    let c = Cluster::new(3);
    let out = c.up(up);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let (before, leader) = pids_and_leader(&c);
    let out = c.run(&["rolling-restart", "--timeout", "90"], 400);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let steps = order(&text);
    assert_eq!(steps.len(), 3, "{text}");
    assert_eq!(steps[2], (leader, "leader".to_string()), "{text}");
    for (id, role) in &steps[..2] {
        assert_ne!(*id, leader, "{text}");
        assert_eq!(role, "follower", "{text}");
    }
    assert!(text.contains("rolling restart of 3 nodes done"), "{text}");
    let (after, _) = pids_and_leader(&c);
    if processes {
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            assert!(
                b.is_some() && a.is_some() && b != a,
                "node {}: pid {b:?} -> {a:?}",
                i + 1
            );
        }
    }
}

#[test]
fn rolling_restart_restarts_followers_first_and_the_leader_last() {
    restarts_every_node_leader_last(&[], true);
}

#[test]
fn rolling_restart_works_for_in_process_nodes() {
    restarts_every_node_leader_last(&["--in-process"], false);
}

#[test]
fn rolling_restart_works_on_apache() {
    if common::apache_available("rolling_restart_works_on_apache") {
        restarts_every_node_leader_last(&["--backend", "apache"], true);
    }
}

#[test]
fn rolling_restart_aborts_naming_the_node_that_does_not_come_back() {
    let c = Cluster::new(3);
    let out = c.up(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, leader) = pids_and_leader(&c);
    // The first follower to be restarted gets a zoo.cfg it cannot start from.
    let victim = (1..=3u64).find(|i| *i != leader).unwrap();
    let cfg = c.dir().join(format!("node{victim}/conf/zoo.cfg"));
    let text = std::fs::read_to_string(&cfg).unwrap();
    let broken: String = text
        .lines()
        .map(|l| {
            if l.starts_with("clientPort=") {
                "clientPort=not-a-port".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&cfg, broken + "\n").unwrap();
    let out = c.run(&["rolling-restart", "--timeout", "30"], 120);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("node {victim}")), "{err}");
    assert!(err.contains("rolling restart aborted"), "{err}");
    // Only the victim was touched; the others still run with their first pids.
    assert_eq!(order(&stdout(&out)).len(), 1, "{}", stdout(&out));
}

#[test]
fn rolling_restart_refuses_an_ensemble_that_is_not_healthy() {
    let c = Cluster::new(3);
    let out = c.up(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, leader) = pids_and_leader(&c);
    let down = (1..=3u64).find(|i| *i != leader).unwrap().to_string();
    let out = c.run(&["stop", &down], 60);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = c.run(&["rolling-restart"], 60);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("not healthy") && err.contains("nothing was restarted"),
        "{err}"
    );
    assert!(order(&stdout(&out)).is_empty());
}

/// Checked clients (the chaos workload: writes, compare-and-sets, sync+reads on a few keys)
/// run through a whole rolling restart: no acknowledged write lost, no anomaly.
#[test]
fn clients_lose_no_acknowledged_write_during_a_rolling_restart() {
    let c = Cluster::new(3);
    let out = c.up(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let addrs: Vec<SocketAddr> = (1..=3).map(|i| c.connect_to(i).parse().unwrap()).collect();
    let mut out = None;
    let (acked, counts) = common::checked_clients_during(addrs, "/rolling", 7, || {
        out = Some(c.run(&["rolling-restart", "--timeout", "90"], 400));
    });
    let out = out.unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(order(&stdout(&out)).len(), 3);
    eprintln!("rolling restart under load: {acked} acknowledged writes, counts {counts:?}");
}

/// The same check from the command line: `zkherd chaos --check --faults rolling-restart`.
#[test]
fn chaos_check_with_rolling_restarts_finds_no_anomaly() {
    let c = Cluster::new(3);
    let out = c.up(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = c.run(
        &[
            "chaos",
            "--check",
            "--faults",
            "rolling-restart",
            "--duration",
            "8s",
            "--every",
            "4s",
            "--seed",
            "5",
        ],
        300,
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(
        text.matches("rolling restart of 3 nodes done").count() >= 1,
        "{text}"
    );
    assert!(text.contains("anomalies: none"), "{text}");
}
