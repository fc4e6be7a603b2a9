//! The supervisor with the builtin backend: no Java needed, so this runs everywhere.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_builtin_standalone_node_is_supervised_like_an_apache_one() {
    let c = Cluster::new(1);
    let out = c.up(&["--backend", "builtin"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (v, code) = c.status_json();
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["backend"], "builtin");
    assert_eq!(v["nodes"][0]["role"], "standalone");
    let pid = v["nodes"][0]["pid"].as_i64().unwrap() as i32;

    // kill = SIGKILL; the supervisor restarts it and the data survives (it is durable).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = zookeeper_client::Client::connect(&c.connect_to(1))
            .await
            .unwrap();
        client
            .create(
                "/survives",
                b"yes",
                &zookeeper_client::CreateMode::Persistent
                    .with_acls(zookeeper_client::Acls::anyone_all()),
            )
            .await
            .unwrap();
    });
    let out = c.run(&["kill", "1"], 30);
    assert!(out.status.success(), "{}", stderr(&out));
    let restarted = eventually(Duration::from_secs(20), || {
        let (v, code) = c.status_json();
        (code == 0 && v["nodes"][0]["restarts"] == 1).then_some(v)
    })
    .expect("restarted and serving again");
    assert_ne!(restarted["nodes"][0]["pid"].as_i64().unwrap() as i32, pid);
    assert!(!alive(pid));
    let out = c.run(&["wait", "--timeout", "30"], 60);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    rt.block_on(async {
        let client = zookeeper_client::Client::connect(&c.connect_to(1))
            .await
            .unwrap();
        assert_eq!(client.get_data("/survives").await.unwrap().0, b"yes");
    });

    // pause: the only voter hangs, so nothing serves.
    let out = c.run(&["pause", "1"], 30);
    assert!(out.status.success());
    let (v, code) = c.status_json();
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["nodes"][0]["role"], "paused");
    let out = c.run(&["resume", "1"], 30);
    assert!(out.status.success());

    down_leaves_nothing(&c);
}

#[test]
fn builtin_observers_are_raft_learners_and_status_sees_them() {
    let c = Cluster::new(3);
    let out = c.up(&["--backend", "builtin", "--observers", "1"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = c.run(&["wait", "--timeout", "30"], 60);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (v, code) = c.status_json();
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["verdict"], "healthy", "{v}");
    let roles: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.len(), 4, "{v}");
    assert_eq!(roles[3], "observer", "{v}");
    assert_eq!(v["nodes"][3]["membership"], "observer", "{v}");
    assert_eq!(roles.iter().filter(|r| **r == "leader").count(), 1, "{v}");
    assert_eq!(roles.iter().filter(|r| **r == "follower").count(), 2, "{v}");

    // The observer never leads: killing the leader elects one of the two other voters.
    let out = c.run(&["kill", "--leader"], 30);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = c.run(&["wait", "--timeout", "30"], 60);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (v, _) = c.status_json();
    assert_eq!(v["nodes"][3]["role"], "observer", "{v}");

    down_leaves_nothing(&c);
}

#[test]
fn chaos_check_runs_a_fault_schedule_and_finds_no_anomaly() {
    let c = Cluster::new(3);
    let out = c.up(&["--backend", "builtin"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = c.run(
        &[
            "chaos",
            "--check",
            "--duration",
            "9s",
            "--every",
            "2s",
            "--seed",
            "42",
        ],
        120,
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("anomalies: none"), "{text}");
    // Faults every 2 s for 9 s: 4 on an idle machine, fewer when a loaded one is slow to set up.
    let faults: u32 = text
        .split("schedule done: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!((2..=4).contains(&faults), "{text}");
    assert!(text.contains("write: acknowledged"), "{text}");
    // Bad input is refused with a reason.
    let out = c.run(&["chaos", "--every", "soon"], 30);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a duration"), "{}", stderr(&out));
    down_leaves_nothing(&c);
}

/// `down` succeeds and no node process it recorded is left.
fn down_leaves_nothing(c: &Cluster) {
    let pids = c.recorded_pids();
    let out = c.run(&["down"], 60);
    assert!(out.status.success(), "{}", stderr(&out));
    for p in pids {
        assert!(!alive(p), "pid {p} left behind");
    }
}
