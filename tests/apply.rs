//! `zkherd apply` and the supervisor's watch on zkherd.toml: zoo.cfg changes by rolling
//! restart, restart-policy changes at once, bad edits and shape changes refused with nothing
//! applied.

mod common;

use std::time::Duration;

use common::{eventually, stderr, stdout, Cluster};

fn write_spec(c: &Cluster, body: &str) {
    std::fs::write(c.tmp.path().join("zkherd.toml"), body).unwrap();
}

fn zoo_cfg(c: &Cluster, node: u16) -> String {
    std::fs::read_to_string(c.dir().join(format!("node{node}/conf/zoo.cfg"))).unwrap()
}

fn pids(c: &Cluster) -> Vec<Option<u64>> {
    let (s, _) = c.status_json();
    s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["pid"].as_u64())
        .collect()
}

fn zoo_cfg_change_rolls_through_every_node(backend: &[&str]) {
    let c = Cluster::new(3);
    write_spec(&c, "[zookeeper]\ntickTime = 2000\n");
    let mut args = vec!["--no-watch"];
    args.extend_from_slice(backend);
    let out = c.up(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = pids(&c);
    write_spec(&c, "[zookeeper]\ntickTime = 1000\n");
    let out = c.run(&["apply"], 300);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("zookeeper.tickTime: 2000 -> 1000 (by rolling restart)"),
        "{text}"
    );
    assert!(text.contains("rolling restart of 3 nodes done"), "{text}");
    for n in 1..=3 {
        assert!(zoo_cfg(&c, n).contains("tickTime=1000\n"));
    }
    let after = pids(&c);
    // In-process nodes all carry the supervisor's pid.
    if !backend.contains(&"--in-process") {
        for (b, a) in before.iter().zip(&after) {
            assert!(b.is_some() && b != a, "{before:?} -> {after:?}");
        }
    }
    let (s, code) = c.status_json();
    assert_eq!(code, 0, "{s:#}");
    // Applied once, the same file has nothing left to apply.
    let out = c.run(&["apply"], 60);
    assert!(
        stdout(&out).contains("nothing to apply"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn apply_changes_zoo_cfg_by_rolling_restart() {
    zoo_cfg_change_rolls_through_every_node(&[]);
}

#[test]
fn apply_changes_zoo_cfg_by_rolling_restart_in_process() {
    zoo_cfg_change_rolls_through_every_node(&["--in-process"]);
}

#[test]
fn apply_changes_zoo_cfg_by_rolling_restart_on_apache() {
    if common::apache_available("apply_changes_zoo_cfg_by_rolling_restart_on_apache") {
        zoo_cfg_change_rolls_through_every_node(&["--backend", "apache"]);
    }
}

#[test]
fn the_supervisor_applies_an_edited_spec_file_by_itself() {
    let c = Cluster::new(3);
    write_spec(&c, "[zookeeper]\ntickTime = 2000\n");
    let out = c.up(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    write_spec(&c, "[zookeeper]\ntickTime = 1500\n");
    let done = eventually(Duration::from_secs(60), || {
        let log = std::fs::read_to_string(c.dir().join("supervisor.log")).unwrap_or_default();
        log.contains("zkherd.toml: applied").then_some(log)
    })
    .expect("the supervisor did not apply the edited spec");
    assert!(done.contains("zookeeper.tickTime: 2000 -> 1500"), "{done}");
    assert!(done.contains("rolling restart of 3 nodes done"), "{done}");
    assert!(zoo_cfg(&c, 2).contains("tickTime=1500\n"));
    // A bad edit is reported in the log with its position, and nothing changes.
    write_spec(&c, "[zookeeper]\ntickTime = \"fast\"\n");
    let log = eventually(Duration::from_secs(30), || {
        let log = std::fs::read_to_string(c.dir().join("supervisor.log")).unwrap_or_default();
        log.contains("not applied").then_some(log)
    })
    .expect("the bad edit was not reported");
    assert!(log.contains("zkherd.toml:2:12"), "{log}");
    assert!(zoo_cfg(&c, 2).contains("tickTime=1500\n"));
    // The watcher does not keep the supervisor alive: after `down` every process is gone.
    let pids = c.recorded_pids();
    assert!(!pids.is_empty());
    let out = c.run(&["down"], 60);
    assert!(out.status.success(), "{}", stderr(&out));
    let gone = eventually(Duration::from_secs(10), || {
        pids.iter().all(|p| !common::alive(*p)).then_some(())
    });
    assert!(gone.is_some(), "still running after down: {pids:?}");
}

#[test]
fn a_restart_policy_change_applies_at_once_without_restarting() {
    let c = Cluster::new(3);
    write_spec(&c, "[restart]\npolicy = \"on-failure\"\n");
    let out = c.up(&["--no-watch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = pids(&c);
    write_spec(&c, "[restart]\npolicy = \"never\"\n");
    let out = c.run(&["apply"], 60);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("restart.policy: \"on-failure\" -> \"never\" (at once)"),
        "{text}"
    );
    assert!(!text.contains("rolling restart"), "{text}");
    assert_eq!(pids(&c), before);
    // Under "never", a killed node stays down.
    let out = c.run(&["kill", "1"], 30);
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(Duration::from_secs(2));
    let (s, _) = c.status_json();
    assert_eq!(s["nodes"][0]["role"], "down", "{s:#}");
    assert_eq!(s["nodes"][0]["restarts"], 0, "{s:#}");
}

#[test]
fn bad_edits_and_shape_changes_are_refused_and_nothing_is_applied() {
    let c = Cluster::new(3);
    write_spec(&c, "[zookeeper]\ntickTime = 2000\n");
    let out = c.up(&["--no-watch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = zoo_cfg(&c, 1);
    write_spec(&c, "[zookeeper]\ntickTime = \"fast\"\n");
    let out = c.run(&["apply"], 60);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("zkherd.toml:2:12"), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");
    write_spec(
        &c,
        "[cluster]\nobservers = 1\n[zookeeper]\ntickTime = 1000\n",
    );
    let out = c.run(&["apply"], 60);
    assert!(!out.status.success());
    let err = stderr(&out);
    // A new size goes by scale, which needs reconfig: refused here, and it says why.
    assert!(
        err.contains("cluster.observers: 0 -> 1 (by scale (reconfig))")
            || stdout(&out).contains("cluster.observers: 0 -> 1 (by scale (reconfig))"),
        "{err}"
    );
    assert!(
        err.contains("has reconfig off") && err.contains("nothing was applied"),
        "{err}"
    );
    write_spec(&c, "[cluster]\nname = \"other\"\n");
    let out = c.run(&["apply"], 60);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cluster.name cannot change while the ensemble runs; nothing was applied"),
        "{err}"
    );
    assert_eq!(zoo_cfg(&c, 1), cfg);
    let (_, code) = c.status_json();
    assert_eq!(code, 0);
}
