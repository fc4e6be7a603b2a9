//! Unmodified real clients against the builtin server: kazoo (Python), zkCli.sh (Java) and
//! cli_mt (C). Each skips with a reason when its client is not installed, and fails instead
//! under ZKHERD_REQUIRE_ALL=1 (as in CI).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// A builtin standalone node started through the CLI (no Java needed).
fn builtin_node() -> Cluster {
    let c = Cluster::new(1);
    let out = c.up(&["--backend", "builtin"]);
    assert!(out.status.success(), "up: {}{}", stdout(&out), stderr(&out));
    c
}

#[test]
fn kazoo_scenarios_pass() {
    if !kazoo_available("kazoo_scenarios_pass") {
        return;
    }
    let c = builtin_node();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/kazoo_scenarios.py");
    let out = run_with_timeout(
        Command::new("python3").arg(&script).arg(c.connect_to(1)),
        Duration::from_secs(120),
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "kazoo scenarios failed:\n{text}");
    assert!(text.contains("kazoo: 8 scenarios passed"), "{text}");
}

#[test]
fn a_scripted_zkcli_session_works() {
    let zkcli = Path::new(ZKCLI);
    if !zkcli_available("a_scripted_zkcli_session_works") {
        return;
    }
    let c = builtin_node();
    let (text, _) = run_with_stdin(
        Command::new(zkcli).args(["-server", &c.connect_to(1)]),
        "create /zc \"x\"\nls /\nget -s /zc\nset -v 0 /zc y\nget -w /zc\nset /zc z\ncreate -e -s /zc/e- \"\"\nls /zc\ndelete /zc\nquit\n",
        Duration::from_secs(60),
    );
    for expected in [
        "Created /zc",
        "[zc, zookeeper]",
        "dataVersion = 0",
        "ephemeralOwner = 0x0",
        "WatchedEvent state:SyncConnected type:NodeDataChanged path:/zc",
        "Created /zc/e-0000000000",
        "[e-0000000000]",
        "Node not empty: /zc",
    ] {
        assert!(
            text.contains(expected),
            "zkCli output lacks {expected:?}:\n{text}"
        );
    }
}

#[test]
fn a_scripted_cli_mt_session_works() {
    let cli = Path::new("/usr/lib/zookeeper/bin/cli_mt");
    if !tool_available(
        "a_scripted_cli_mt_session_works",
        "cli_mt (C client)",
        cli.is_file(),
        "`apt-get install zookeeper-bin`",
    ) {
        return;
    }
    let c = builtin_node();
    // cli_mt reads commands from stdin and quits at once on `quit`, even with requests in
    // flight: send it only after the replies had time to arrive.
    let (text, _) = run_with_stdin(
        Command::new("sh").arg("-c").arg(format!(
            "(cat; sleep 2; echo quit) | {} {}",
            cli.display(),
            c.connect_to(1)
        )),
        "create /cm\nget /cm\nset /cm world\nget /cm\ncreate +e /cm/eph\ncreate +s /cm/seq-\nls /cm\n",
        Duration::from_secs(30),
    );
    for expected in [
        "[/cm]: rc = 0",
        "Watcher CHANGED_EVENT state = CONNECTED_STATE for path /cm",
        "world",
        "version=1",
        "name = /cm/seq-0000000001",
        "\teph",
    ] {
        assert!(
            text.contains(expected),
            "cli_mt output lacks {expected:?}:\n{text}"
        );
    }
}
