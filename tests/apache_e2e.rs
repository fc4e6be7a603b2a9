//! The supervisor end to end, with real Apache ZooKeeper child processes and with builtin
//! nodes (the same scenario for both backends).

mod common;

use std::time::Duration;

use common::*;

fn roles(v: &serde_json::Value) -> Vec<(u64, String)> {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_u64().unwrap(),
                n["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn count(v: &serde_json::Value, role: &str) -> usize {
    roles(v).iter().filter(|(_, r)| r == role).count()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(addr: &str) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_secs(5))
        .connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

#[test]
fn a_supervised_ensemble_survives_faults_and_down_leaves_nothing() {
    if !apache_available("a_supervised_ensemble_survives_faults_and_down_leaves_nothing") {
        return;
    }
    ensemble_scenario("apache", &[]);
}

#[test]
fn a_builtin_ensemble_survives_the_same_faults() {
    ensemble_scenario("builtin", &[]);
}

#[test]
fn an_in_process_builtin_ensemble_survives_the_same_faults() {
    // The nodes are tasks of the supervisor: kill shuts a node's runtime down, pause blocks
    // its worker; down must still leave no process and no port behind.
    ensemble_scenario("builtin", &["--in-process"]);
}

fn ensemble_scenario(backend: &str, extra: &[&str]) {
    let c = Cluster::new(3);

    // up -d returns once the quorum serves.
    let mut args = vec!["--backend", backend];
    args.extend_from_slice(extra);
    let out = c.up(&args);
    assert!(
        out.status.success(),
        "up failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("ready in"), "{}", stdout(&out));

    // A second up while one runs is refused and names the running supervisor.
    let second = c.up(&[]);
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("already running"),
        "{}",
        stderr(&second)
    );

    let out = c.run(&["wait", "--timeout", "60"], 90);
    assert!(
        out.status.success(),
        "wait: {}{}",
        stdout(&out),
        stderr(&out)
    );

    let (v, code) = c.status_json();
    assert_eq!(code, 0, "healthy exits 0: {v}");
    assert_eq!(v["schema"], 1);
    assert_eq!(v["verdict"], "healthy");
    assert_eq!(count(&v, "leader"), 1, "{v}");
    assert_eq!(count(&v, "follower"), 2, "{v}");
    assert_eq!(v["supervisor"]["running"], true);
    let first_leader = v["leader"].as_u64().unwrap();
    let first_epoch = v["epoch"].as_u64().unwrap();
    let node_pids: Vec<i32> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["pid"].as_i64().expect("every running node has a pid") as i32)
        .collect();
    let supervisor_pid = v["supervisor"]["pid"].as_i64().unwrap() as i32;

    // Write through a real client on node 1, read on node 3.
    let rt = rt();
    rt.block_on(async {
        let c1 = connect(&c.connect_to(1)).await;
        c1.create(
            "/zkherd-e2e",
            b"hello",
            &zookeeper_client::CreateMode::Persistent
                .with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await
        .unwrap();
        let c3 = connect(&c.connect_to(3)).await;
        c3.sync("/zkherd-e2e").await.unwrap();
        let (data, _) = c3.get_data("/zkherd-e2e").await.unwrap();
        assert_eq!(data, b"hello");
    });

    // Kill the leader: a different leader takes over, the data is intact, the node is restarted.
    let out = c.run(&["kill", "--leader"], 30);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("node {first_leader}")),
        "{}",
        stdout(&out)
    );
    let out = c.run(&["wait", "--timeout", "60"], 90);
    assert!(
        out.status.success(),
        "wait after kill: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let (v, code) = c.status_json();
    assert_eq!(code, 0, "{v}");
    let new_leader = v["leader"].as_u64().unwrap();
    // A new election happened: the leader writes in a newer epoch. The killed node may win
    // it on either backend: it is restarted at once, its log is complete and its myid the
    // highest. (Apache's JVM usually restarts too late to take part, but a CI run on this
    // machine saw it join the election in time and win it, in epoch 2.)
    assert!(
        v["epoch"].as_u64().unwrap() > first_epoch,
        "a new election after the leader's death: {v}"
    );
    let killed = &v["nodes"][(first_leader - 1) as usize];
    assert_eq!(killed["restarts"], 1, "the killed node was restarted: {v}");
    assert_eq!(killed["last_exit"], "SIGKILL", "{v}");
    rt.block_on(async {
        let client = connect(&c.connect_to(new_leader as u16)).await;
        let (data, _) = client.get_data("/zkherd-e2e").await.unwrap();
        assert_eq!(data, b"hello", "data survived the leader's death");
    });

    // Pause a follower: degraded (exit 1), role paused. Resume: healthy again.
    // Choose from a fresh status: leadership may have moved since the one above.
    let out = c.run(&["wait", "--timeout", "60"], 90);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (v, _) = c.status_json();
    let follower = roles(&v)
        .into_iter()
        .find(|(_, r)| r == "follower")
        .unwrap()
        .0
        .to_string();
    let out = c.run(&["pause", &follower], 30);
    assert!(out.status.success(), "{}", stderr(&out));
    let (v, code) = c.status_json();
    assert_eq!(code, 1, "degraded exits 1: {v}");
    assert_eq!(v["verdict"], "degraded");
    assert_eq!(count(&v, "paused"), 1, "{v}");
    let out = c.run(&["resume", &follower], 30);
    assert!(out.status.success(), "{}", stderr(&out));
    let healthy = eventually(Duration::from_secs(30), || {
        let (v, code) = c.status_json();
        (code == 0).then_some(v)
    });
    assert!(healthy.is_some(), "healthy again after resume");

    // logs: node-prefixed lines from the node's own log.
    let out = c.run(&["logs", "-n", "5", "2"], 30);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.is_empty() && text.lines().all(|l| l.starts_with("node2 | ")),
        "{text}"
    );

    // `zkherd env` gives the connect string clients (and examples/kafka_style_client.rs) use.
    let env = stdout(&c.run(&["env"], 30));
    assert!(
        env.contains(&format!("ZK_CONNECT={}", c.connect_to(1))),
        "{env}"
    );

    // down: no process of the cluster left, every port free.
    let mut all_pids = node_pids;
    all_pids.extend(c.recorded_pids());
    all_pids.push(supervisor_pid);
    let out = c.run(&["down"], 90);
    assert!(out.status.success(), "{}", stderr(&out));
    for p in &all_pids {
        assert!(
            !alive(*p),
            "pid {p} is still alive after down: {:?}",
            std::fs::read_to_string(format!("/proc/{p}/cmdline")).map(|c| c.replace('\0', " "))
        );
    }
    for port in c.all_ports() {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is still taken after down"
        );
    }
    let (v, code) = c.status_json();
    assert_eq!(code, 3, "down exits 3: {v}");
    assert_eq!(v["supervisor"]["running"], false);

    // --purge removes the directory.
    let out = c.run(&["down", "--purge"], 30);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!c.dir().exists());
}

#[test]
fn a_killed_supervisor_leaves_no_orphans_the_next_up_cannot_clean() {
    if !apache_available("a_killed_supervisor_leaves_no_orphans_the_next_up_cannot_clean") {
        return;
    }
    let c = Cluster::new(3);
    let out = c.up(&["--backend", "apache"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (v, _) = c.status_json();
    let supervisor = v["supervisor"]["pid"].as_i64().unwrap() as i32;
    let nodes: Vec<i32> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["pid"].as_i64().unwrap() as i32)
        .collect();
    unsafe { kill(supervisor, 9) };
    assert!(eventually(Duration::from_secs(5), || (!alive(supervisor))
        .then_some(()))
    .is_some());
    assert!(
        nodes.iter().all(|p| alive(*p)),
        "nodes outlive a killed supervisor"
    );

    // Status still works without a supervisor, by probing the ports.
    let (v, code) = c.status_json();
    assert_eq!(v["supervisor"]["running"], false);
    assert_eq!(code, 0, "{v}");

    // The next up cleans the stale nodes and starts fresh ones.
    let out = c.up(&[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("killed stale process"),
        "{}",
        stdout(&out)
    );
    for p in &nodes {
        assert!(!alive(*p), "stale node {p} was cleaned");
    }
    let out = c.run(&["down"], 90);
    assert!(out.status.success());
}

#[test]
fn a_configuration_error_is_not_restarted_and_up_fails_with_the_reason() {
    if !apache_available("a_configuration_error_is_not_restarted_and_up_fails_with_the_reason") {
        return;
    }
    let c = Cluster::new(3);
    std::fs::write(
        c.tmp.path().join("zkherd.toml"),
        "[zookeeper.extra]\nsecureClientPort = \"not-a-port\"\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = c.up(&["--backend", "apache"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("failed"), "{err}");
    assert!(err.contains("configuration"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "a config error fails fast, not after the wait timeout"
    );
    // Nothing is left running.
    assert!(c.recorded_pids().iter().skip(1).all(|p| !alive(*p)));
    let (v, code) = c.status_json();
    assert_eq!(code, 3, "{v}");
}

#[test]
fn a_taken_port_is_reported_with_its_node_and_holder_and_nothing_starts() {
    if !apache_available("a_taken_port_is_reported_with_its_node_and_holder_and_nothing_starts") {
        return;
    }
    let c = Cluster::new(3);
    // Node 2's election port is held by this test.
    let port = c.base + 1700 + 1;
    let _holder = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = c.up(&["--backend", "apache"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("port {port} (election port of node 2)")),
        "{err}"
    );
    assert!(
        err.contains(&format!("held by pid {}", std::process::id())),
        "{err}"
    );
    assert!(err.contains("nothing was started"), "{err}");
    assert!(!c.dir().join("nodes.json").exists());
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
