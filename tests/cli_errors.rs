//! Bad input gets a clear error naming the file, line, port or install problem, and starts nothing.

mod common;

use common::*;

#[test]
fn malformed_toml_names_the_file_and_line() {
    let c = Cluster::new(3);
    std::fs::write(c.tmp.path().join("zkherd.toml"), "[cluster]\nnodes = = 3\n").unwrap();
    let out = c.run(&["up", "-d"], 30);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("zkherd.toml:2:"), "{err}");
    assert!(!c.dir().exists(), "nothing is rendered");
}

#[test]
fn an_unknown_key_is_refused_with_the_valid_ones() {
    let c = Cluster::new(3);
    std::fs::write(c.tmp.path().join("zkherd.toml"), "[ports]\nclinet = 2181\n").unwrap();
    let out = c.run(&["up", "-d"], 30);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("zkherd.toml:2:1"), "{err}");
    assert!(err.contains("unknown field `clinet`"), "{err}");
    assert!(err.contains("`client`"), "{err}");
}

#[test]
fn a_bad_flag_value_names_the_flag() {
    let c = Cluster::new(3);
    let out = c.run(&["up", "-d", "-n", "0"], 30);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("flag --nodes"), "{}", stderr(&out));
    let out = c.run(&["up", "-d", "--backend", "docker"], 30);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("apache or builtin"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_zookeeper_install_says_what_was_searched_and_how_to_install() {
    let c = Cluster::new(3);
    let empty = tempfile::tempdir().unwrap();
    let out = common::run_with_timeout(
        c.cmd(&["up", "-d", "--backend", "apache"])
            .env("ZOOKEEPER_HOME", empty.path()),
        std::time::Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    // Either Java or ZooKeeper is reported missing, with a way to install it.
    assert!(
        err.contains(&empty.path().display().to_string()) || err.contains("Java not found"),
        "{err}"
    );
    assert!(err.contains("apt-get install"), "{err}");
    assert!(!c.dir().exists(), "nothing is rendered");
}

#[test]
fn commands_without_a_supervisor_say_how_to_start_one() {
    let c = Cluster::new(3);
    let out = c.run(&["kill", "--leader"], 30);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("zkherd up -d"), "{}", stderr(&out));
    let out = c.run(&["kill"], 30);
    assert!(!out.status.success(), "a target is required");
    let out = c.run(&["stop", "nodeX"], 30);
    assert!(stderr(&out).contains("is not a node"), "{}", stderr(&out));
}

#[test]
fn status_of_a_cluster_that_never_ran_is_down_with_exit_3() {
    let c = Cluster::new(3);
    let (v, code) = c.status_json();
    assert_eq!(code, 3);
    assert_eq!(v["verdict"], "down");
    assert_eq!(v["nodes"].as_array().unwrap().len(), 3);
}

#[test]
fn down_purge_refuses_a_directory_zkherd_did_not_create() {
    let c = Cluster::new(3);
    std::fs::create_dir_all(c.dir()).unwrap();
    std::fs::write(c.dir().join("precious.txt"), "keep").unwrap();
    let out = c.run(&["down", "--purge"], 30);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("was not created by zkherd"),
        "{}",
        stderr(&out)
    );
    assert!(c.dir().join("precious.txt").exists());
}

#[test]
fn init_writes_a_spec_that_up_accepts_and_env_prints_the_connect_string() {
    let c = Cluster::new(3);
    let out = c.run(&["init"], 30);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(c.tmp.path().join("zkherd.toml").is_file());
    let again = c.run(&["init"], 30);
    assert!(stderr(&again).contains("already exists"));
    let out = c.run(&["env", "--format", "kafka"], 30);
    assert_eq!(
        stdout(&out).trim(),
        "zookeeper.connect=127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183"
    );
    let out = c.run(&["env"], 30);
    assert!(
        stdout(&out).contains("export ZK_CONNECT=127.0.0.1:2181,"),
        "{}",
        stdout(&out)
    );
    let out = c.run(&["env", "--format", "json"], 30);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["nodes"][2]["election_port"], 3883);
}

#[test]
fn an_unwritable_cluster_dir_is_named_with_what_to_do() {
    let c = Cluster::new(3);
    // A regular file where a directory should be: fails even for root.
    let file = c.tmp.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let dir = file.join("cluster");
    let out = common::run_with_timeout(
        c.cmd(&["up", "-d", "--backend", "apache"])
            .env("ZKHERD_DIR", &dir)
            .env("ZOOKEEPER_HOME", "/usr/share/zookeeper"),
        std::time::Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    if err.contains("not found") {
        // No Java/ZooKeeper here: that check comes first, and is tested elsewhere.
        return;
    }
    assert!(err.contains(&dir.display().to_string()), "{err}");
    assert!(err.contains("--dir"), "{err}");
}

#[test]
fn every_subcommand_has_a_valid_help() {
    // clap checks its definitions (e.g. duplicate short flags) when a command is built.
    for sub in [
        "up", "down", "status", "wait", "env", "logs", "start", "stop", "restart", "kill", "pause",
        "resume", "init",
    ] {
        let out = common::run_with_timeout(
            std::process::Command::new(BIN).args([sub, "--help"]),
            std::time::Duration::from_secs(10),
        );
        assert!(out.status.success(), "{sub} --help: {}", stderr(&out));
    }
    let out = common::run_with_timeout(
        std::process::Command::new(BIN).args(["status", "--help"]),
        std::time::Duration::from_secs(10),
    );
    assert!(
        stdout(&out).contains("3 down"),
        "status --help documents exit codes"
    );
}

#[test]
fn a_spec_file_given_with_dash_f_is_used() {
    let c = Cluster::new(3);
    std::fs::write(c.tmp.path().join("other.toml"), "[cluster]\nnodes = 5\n").unwrap();
    let out = c.run(&["-f", "other.toml", "env", "--format", "kafka"], 30);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim().split(',').count(),
        5,
        "{}",
        stdout(&out)
    );
}
