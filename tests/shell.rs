//! `zkherd shell` beside zkCli.sh: the same session piped into both gives the same output
//! (zxids and times masked), the same exit codes, on builtin and on Apache; interactive use
//! through a real terminal (tmux); `--json`; and `dump`/`load` round trips.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";

fn zkcli_available(test: &str) -> bool {
    apache_available(test)
        && tool_available(
            test,
            "zkCli.sh",
            Path::new(ZKCLI).is_file(),
            "`apt-get install zookeeper-bin`",
        )
}

/// A session that touches every command whose output shape scripts depend on. It ends with
/// the tree as it began, so it can run twice in a row on one ensemble.
const SESSION: &str = "\
create /sh one
create /sh/c1 x
create -s /sh/s- y
create -e /sh/e1 z
create -c /sh/cont
ls /sh
ls -s /sh
get /sh
get -s /sh
stat /sh
stat /sh/e1
set /sh two
get /sh
set -s /sh three
set -v 99 /sh four
delete /sh/nope
delete -v 7 /sh/c1
create /sh again
create /nope/child v
getAcl /sh
setAcl /sh world:anyone:cdrwa
addauth digest bob:pw
create /sh/acl v digest:bob:ikIaKsbtGweaHnb/jKn7OHqbunM=:cdrwa
getAcl /sh/acl
get /sh/acl
ls -R /sh
getAllChildrenNumber /sh
getEphemerals /sh
whoami
sync /sh
config
printwatches off
printwatches on
bogus command
get
deleteall /sh
ls /
get /sh
";

/// zkCli's output with what differs between two runs or two implementations masked: the
/// JVM's log lines, the banner, zxids, times, session ids, and the usage text (ours lists
/// `dump`/`load` too; the commands both have are compared by other lines).
fn normalise(out: &str) -> Vec<String> {
    let noise = [
        "INFO",
        "log4j",
        "SLF4J",
        "Connecting to",
        "Welcome to",
        "JLine support",
        "WATCHER::",
        "WatchedEvent state:SyncConnected type:None",
        "state:Closed",
    ];
    let mut lines = Vec::new();
    let mut in_usage = false;
    for l in out.lines() {
        let t = l.trim_end();
        if t.is_empty() || t.trim_start().starts_with("at ") || noise.iter().any(|n| t.contains(n))
        {
            continue;
        }
        if t.starts_with("ZooKeeper -server host:port") {
            in_usage = true;
            lines.push("<usage>".into());
            continue;
        }
        if in_usage && t.starts_with('\t') {
            continue;
        }
        in_usage = false;
        if let Some(v) = t.strip_prefix("version=") {
            if v.chars().all(|c| c.is_ascii_hexdigit()) {
                lines.push("version=<zxid>".into());
                continue;
            }
        }
        let masked = match t.split_once(" = ") {
            Some((k, _)) if ["cZxid", "mZxid", "pZxid", "ctime", "mtime"].contains(&k) => {
                format!("{k} = <masked>")
            }
            Some(("ephemeralOwner", v)) if v != "0x0" => "ephemeralOwner = <session>".into(),
            _ => t.to_string(),
        };
        lines.push(masked);
    }
    lines
}

/// Pipe `session` into zkCli.sh and into `zkherd shell` on one cluster (zkCli first) and
/// compare stdout and stderr; `sentinel` is a line zkCli must have printed on stderr.
fn same_as_zkcli(c: &Cluster, backend: &str, session: &str, sentinel: &str) {
    let server = c.connect_to(1);
    let (theirs, theirs_err, their_rc) = run_piped(
        Command::new(ZKCLI).args(["-server", &server]),
        session,
        Duration::from_secs(60),
    );
    let (ours, ours_err, our_rc) = run_piped(
        &mut c.cmd(&["shell", "-server", &server]),
        session,
        Duration::from_secs(60),
    );
    // The comparison means something only if zkCli really ran the session.
    assert!(
        theirs_err.contains(sentinel),
        "zkCli.sh did not run the session:\n{theirs}{theirs_err}"
    );
    assert_same_run(
        backend,
        (&theirs, &theirs_err, their_rc),
        (&ours, &ours_err, our_rc),
    );
}

/// Stream by stream (scripts capture stdout and expect zkCli's split), then the exit code.
fn assert_same_run(backend: &str, theirs: (&str, &str, i32), ours: (&str, &str, i32)) {
    for (what, t, o) in [("stdout", theirs.0, ours.0), ("stderr", theirs.1, ours.1)] {
        assert_eq!(
            normalise(t).join("\n"),
            normalise(o).join("\n"),
            "{backend}: zkherd shell's {what} differs from zkCli.sh's\n--- zkCli.sh:\n{t}\n--- ours:\n{o}"
        );
    }
    assert_eq!(theirs.2, ours.2, "{backend}: piped session exit codes");
}

fn compare_with_zkcli(backend: &str) {
    let c = Cluster::new(3);
    let up = c.up(&["--backend", backend]);
    assert!(up.status.success(), "up: {}", stderr(&up));
    same_as_zkcli(&c, backend, SESSION, "Created /sh/s-0000000001");
    let server = c.connect_to(1);

    // One command after the flags: the exit codes scripts test.
    // Each tool on its own path, so that neither sees what the other created.
    for cmd in [
        vec!["ls", "/"],
        vec!["get", "/nope"],
        vec!["bogus"],
        vec!["get"],
        vec!["create", "/zookeeper", "x"],
        vec!["delete", "/zookeeper"],
        vec!["create", "{P}", "v"],
        vec!["create", "{P}", "v"],
        vec!["get", "{P}"],
    ] {
        let with = |p: &str| -> Vec<String> { cmd.iter().map(|w| w.replace("{P}", p)).collect() };
        let (zk_cmd, our_cmd) = (with("/one-shot-zk"), with("/one-shot-us"));
        let mut z = Command::new(ZKCLI);
        z.args(["-server", &server]).args(&zk_cmd);
        let theirs = run_with_timeout(&mut z, Duration::from_secs(60));
        let mut args = vec!["shell", "-server", server.as_str()];
        args.extend(our_cmd.iter().map(String::as_str));
        let ours = c.run(&args, 30);
        assert_eq!(
            theirs.status.code(),
            ours.status.code(),
            "{backend}: exit code of `{}`: zkCli.sh {}{}, ours {}{}",
            cmd.join(" "),
            stdout(&theirs),
            stderr(&theirs),
            stdout(&ours),
            stderr(&ours)
        );
        if cmd == ["get", "{P}"] {
            assert_eq!(stdout(&ours), "v\n");
        }
    }
}

#[test]
fn shell_matches_zkcli_on_builtin() {
    if !zkcli_available("shell_matches_zkcli_on_builtin") {
        return;
    }
    compare_with_zkcli("builtin");
}

/// setquota/listquota/delquota, their warnings and errors, and enforcement (`enforceQuota`):
/// it ends with no quota and no znode left, so it can run twice.
const QUOTA_SESSION: &str = "\
create /q
create /q/a 12345
setquota -n 3 /q
listquota /q
get /zookeeper/quota/q/zookeeper_stats
create /q/b x
create /q/c y
get /zookeeper/quota/q/zookeeper_stats
setquota -N 4 /q
create /q/d z
setquota -B 20 /q
set /q/a 123456789012345678901234567890
listquota /q
delquota -n /q
listquota /q
create /q/a/child
setquota -n 5 /q/a
setquota -n 5 /
setquota -n abc /q
setquota -n 5 -b 10 /q
setquota
setquota -n 3 /nope
listquota /nope
delquota /nope
delquota -x /q
delquota /q
listquota /q
create /deep
create /deep/er
create /deep/er/est
setquota -n 9 /deep/er/est
setquota -n 9 /deep
ls -R /zookeeper/quota
delquota /deep/er/est
ls -R /zookeeper/quota
deleteall /deep
deleteall /q
ls /
";

fn compare_quota_commands(backend: &str) {
    let c = Cluster::new(3);
    std::fs::write(
        c.tmp.path().join("zkherd.toml"),
        "[zookeeper.extra]\nenforceQuota = true\n",
    )
    .unwrap();
    let up = c.up(&["--backend", backend]);
    assert!(up.status.success(), "up: {}", stderr(&up));
    same_as_zkcli(&c, backend, QUOTA_SESSION, "Quota has exceeded : /q/d");
}

#[test]
fn shell_quota_commands_match_zkcli_on_builtin() {
    if !zkcli_available("shell_quota_commands_match_zkcli_on_builtin") {
        return;
    }
    compare_quota_commands("builtin");
}

#[test]
fn shell_quota_commands_match_zkcli_on_apache() {
    if !zkcli_available("shell_quota_commands_match_zkcli_on_apache") {
        return;
    }
    compare_quota_commands("apache");
}

/// zkCli's `reconfig` session for a 3-node ensemble with reconfig on: refused without the
/// super user, then removes a follower (not the leader, whose removal would force an
/// election mid-session), `-s`, a bad version, `-members`, `-file`. `{AUTH}` becomes the super user's `user:password`, `{P3}` node 3's client port.
const RECONFIG_SESSION: &str = "\
reconfig -remove 2
addauth digest {AUTH}
reconfig
reconfig -remove 2
config
reconfig -s -remove 2
reconfig -v 1 -remove 3
reconfig -members server.1=127.0.0.1:1:2:participant;127.0.0.1:{P3}
reconfig -file /nonexistent
reconfig -remove 9
";

/// Each tool on a fresh ensemble of its own, since the session changes the membership.
fn compare_reconfig(backend: &str) {
    let run = |zkcli: bool| {
        let c = Cluster::new(3);
        std::fs::write(
            c.tmp.path().join("zkherd.toml"),
            "[zookeeper.extra]\nreconfigEnabled = true\n",
        )
        .unwrap();
        let up = c.up(&["--backend", backend]);
        assert!(up.status.success(), "up: {}", stderr(&up));
        let secret = std::fs::read_to_string(c.dir().join("super.secret")).unwrap();
        let session = RECONFIG_SESSION
            .replace("{AUTH}", &format!("zkherd:{}", secret.trim()))
            .replace("{P3}", &(c.base + 2).to_string());
        let server = c.connect_to(1);
        let mut cmd = if zkcli {
            let mut z = Command::new(ZKCLI);
            z.args(["-server", &server]);
            z
        } else {
            c.cmd(&["shell", "-server", &server])
        };
        let (out, err, rc) = run_piped(&mut cmd, &session, Duration::from_secs(60));
        // Ports differ between the two ensembles: name them by role.
        let ports = |t: &str| {
            let mut t = t.to_string();
            for (i, kind) in [(0u16, "client"), (700, "quorum"), (1700, "election")] {
                for n in 0..3u16 {
                    t = t.replace(
                        &format!(":{}", c.base + i + n),
                        &format!(":<{kind}{}>", n + 1),
                    );
                }
            }
            t
        };
        (ports(&out), ports(&err), rc)
    };
    let (theirs, theirs_err, their_rc) = run(true);
    let (ours, ours_err, our_rc) = run(false);
    assert!(
        theirs.contains("Committed new configuration:"),
        "zkCli.sh did not reconfigure:\n{theirs}{theirs_err}"
    );
    assert_same_run(
        backend,
        (&theirs, &theirs_err, their_rc),
        (&ours, &ours_err, our_rc),
    );
}

#[test]
fn shell_reconfig_matches_zkcli_on_builtin() {
    if !zkcli_available("shell_reconfig_matches_zkcli_on_builtin") {
        return;
    }
    compare_reconfig("builtin");
}

#[test]
fn shell_reconfig_matches_zkcli_on_apache() {
    if !zkcli_available("shell_reconfig_matches_zkcli_on_apache") {
        return;
    }
    compare_reconfig("apache");
}

#[test]
fn shell_matches_zkcli_on_apache() {
    if !zkcli_available("shell_matches_zkcli_on_apache") {
        return;
    }
    compare_with_zkcli("apache");
}

/// Without Java: the one-shot exit codes, piped mode's, and the default connect string
/// (the cluster's, from ZKHERD_DIR).
#[test]
fn shell_exit_codes_and_default_server() {
    let c = Cluster::new(3);
    assert!(c.up(&["--backend", "builtin"]).status.success());
    let code = |args: &[&str]| {
        let mut a = vec!["shell"];
        a.extend(args);
        let o = c.run(&a, 30);
        (o.status.code(), stdout(&o), stderr(&o))
    };
    assert_eq!(code(&["create", "/d", "v"]).0, Some(0));
    let (rc, out, _) = code(&["get", "/d"]);
    assert_eq!((rc, out.as_str()), (Some(0), "v\n"));
    let (rc, _, err) = code(&["get", "/nope"]);
    assert_eq!(rc, Some(1));
    assert!(err.contains("Node does not exist: /nope"), "{err}");
    let (rc, _, err) = code(&["frobnicate", "/d"]);
    assert_eq!(rc, Some(127));
    assert!(err.contains("Command not found"), "{err}");
    assert_eq!(code(&["set"]).0, Some(1));
    assert_eq!(code(&["delete", "-v", "5", "/d"]).0, Some(1));
    assert_eq!(code(&["delete", "-v", "0", "/d"]).0, Some(0));

    // Piped: every line runs; the code is the last command's, as zkCli's.
    let (out, rc) = run_with_stdin(
        &mut c.cmd(&["shell"]),
        "create /p 1\nget /missing\ncreate /p/q 2\nls /p\n",
        Duration::from_secs(30),
    );
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("Created /p/q") && out.contains("[q]"), "{out}");
    let (out, rc) = run_with_stdin(
        &mut c.cmd(&["shell"]),
        "ls /p\nget /missing\n\nquit\n",
        Duration::from_secs(30),
    );
    assert_eq!(
        rc, 1,
        "a failing last command (then a blank line and quit): {out}"
    );
    let (out, rc) = run_with_stdin(
        &mut c.cmd(&["shell"]),
        "deleteall /p\nls /\n",
        Duration::from_secs(30),
    );
    assert_eq!((rc, out.trim()), (0, "[zookeeper]"), "{out}");

    // Nothing listens: a clear error naming the connect string, not a hang.
    let dead = format!("127.0.0.1:{}", free_base_port(1));
    let started = Instant::now();
    let o = c.run(&["shell", "-server", &dead, "ls", "/"], 60);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(&dead), "{}", stderr(&o));
    assert!(started.elapsed() < Duration::from_secs(40));
}

#[test]
fn shell_json_output() {
    let c = Cluster::new(1);
    assert!(c.up(&["--backend", "builtin"]).status.success());
    let json = |args: &[&str]| -> (serde_json::Value, i32, String) {
        let mut a = vec!["shell", "--json"];
        a.extend(args);
        let o = c.run(&a, 30);
        let out = stdout(&o);
        let v = if out.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
        };
        (v, o.status.code().unwrap_or(-1), stderr(&o))
    };
    let (v, rc, _) = json(&["create", "/j", "hello"]);
    assert_eq!(rc, 0);
    assert_eq!(v["created"], "/j", "{v}");
    let (v, _, _) = json(&["get", "-s", "/j"]);
    assert_eq!(v["data"], "hello", "{v}");
    assert_eq!(v["stat"]["dataLength"], 5, "{v}");
    assert_eq!(v["stat"]["version"], 0, "{v}");
    assert!(v["stat"]["czxid"].as_i64().unwrap() > 0, "{v}");
    let (v, _, _) = json(&["ls", "/"]);
    assert_eq!(v["children"], serde_json::json!(["j", "zookeeper"]), "{v}");
    let (v, rc, err) = json(&["get", "/nope"]);
    assert_eq!((rc, v), (1, serde_json::Value::Null));
    let e: serde_json::Value =
        serde_json::from_str(err.trim()).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(e["kind"], "NoNode", "{e}");
    assert_eq!(e["error"], "Node does not exist: /nope", "{e}");
    assert_eq!(e["path"], "/nope", "{e}");
}

#[test]
fn shell_dump_and_load_round_trip() {
    let c = Cluster::new(3);
    assert!(c.up(&["--backend", "builtin"]).status.success());
    let sh = |input: &str| run_with_stdin(&mut c.cmd(&["shell"]), input, Duration::from_secs(30));
    let (out, rc) = sh("create /app root\n\
                        create /app/cfg '{\"a\":1}'\n\
                        create /app/cfg/deep x\n\
                        create /app/empty\n\
                        addauth digest alice:pw\n\
                        create /app/secret s world:anyone:r,digest:alice:V55/p2T0OpjQ+low3NVAH4aLvm0=:cdrwa\n");
    assert_eq!(rc, 0, "{out}");

    // Without alice's auth the server redacts her digest: the dump refuses, naming the node.
    let o = c.run(&["shell", "dump", "/app"], 30);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("/app/secret") && stderr(&o).contains("addauth"),
        "{}",
        stderr(&o)
    );

    let (dump1, rc) = sh("addauth digest alice:pw\ndump /app\n");
    assert_eq!(rc, 0, "{dump1}");
    let d: serde_json::Value =
        serde_json::from_str(&dump1).unwrap_or_else(|e| panic!("{e}: {dump1}"));
    assert_eq!(d["format"], "zkherd-dump/1");
    let paths: Vec<&str> = d["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/app",
            "/app/cfg",
            "/app/cfg/deep",
            "/app/empty",
            "/app/secret"
        ],
        "{d}"
    );
    let file = c.tmp.path().join("app.json");
    std::fs::write(&file, &dump1).unwrap();

    let (out, rc) = sh("deleteall /app\n");
    assert_eq!(rc, 0, "{out}");
    let load = c.run(&["shell", "load", file.to_str().unwrap()], 30);
    assert!(load.status.success(), "{}{}", stdout(&load), stderr(&load));

    let (out, _) = sh("addauth digest alice:pw\nget /app/cfg\ngetAcl /app/secret\nls -R /app\n");
    assert!(out.contains("{\"a\":1}"), "{out}");
    assert!(
        out.contains("'digest,'alice:V55/p2T0OpjQ+low3NVAH4aLvm0="),
        "{out}"
    );
    assert!(out.contains("'world,'anyone\n: r"), "{out}");
    assert!(out.contains("/app/cfg/deep"), "{out}");

    // A second load without -o refuses to overwrite; with -o it sets the data.
    let again = c.run(&["shell", "load", file.to_str().unwrap()], 30);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("/app"), "{}", stderr(&again));
    let (out, _) = sh("set /app/cfg changed\n");
    assert!(!out.contains("rror"), "{out}");
    // Overwriting /app/secret needs alice's WRITE.
    let (out, rc) = sh(&format!(
        "addauth digest alice:pw\nload -o {}\n",
        file.display()
    ));
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("Loaded 0 znodes, 5 set, 0 skipped"), "{out}");
    let o = c.run(&["shell", "get", "/app/cfg"], 30);
    assert_eq!(stdout(&o), "{\"a\":1}\n");

    // A file that is not a dump is refused with its name.
    let bad = c.tmp.path().join("bad.json");
    std::fs::write(&bad, "{\"format\": \"other\"}").unwrap();
    let o = c.run(&["shell", "load", bad.to_str().unwrap()], 30);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad.json"), "{}", stderr(&o));
}

/// A tmux session on its own server socket, killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(cmd: &str, cwd: &Path, env: &[(&str, String)]) -> Tmux {
        let socket = format!("zkherd-test-{}-{}", std::process::id(), free_base_port(1));
        let mut c = Command::new("tmux");
        c.args([
            "-L",
            &socket,
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "50",
            "-s",
            "t",
        ])
        .current_dir(cwd);
        for (k, v) in env {
            c.env(k, v);
        }
        c.arg(cmd);
        let o = run_with_timeout(&mut c, Duration::from_secs(10));
        assert!(o.status.success(), "tmux: {}", stderr(&o));
        Tmux { socket }
    }

    fn keys(&self, keys: &[&str]) {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "send-keys", "-t", "t"])
            .args(keys);
        assert!(run_with_timeout(&mut c, Duration::from_secs(10))
            .status
            .success());
    }

    fn screen(&self) -> String {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "capture-pane", "-p", "-t", "t"]);
        stdout(&run_with_timeout(&mut c, Duration::from_secs(10)))
    }

    /// Wait (bounded) until the screen shows `what`.
    fn wait_for(&self, what: &str) -> String {
        eventually(Duration::from_secs(20), || {
            let s = self.screen();
            s.contains(what).then_some(s)
        })
        .unwrap_or_else(|| panic!("the terminal never showed {what:?}:\n{}", self.screen()))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn shell_interactive_in_a_terminal() {
    let tmux_ok = Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !tool_available(
        "shell_interactive_in_a_terminal",
        "tmux",
        tmux_ok,
        "`apt-get install tmux`",
    ) {
        return;
    }
    let c = Cluster::new(3);
    assert!(c.up(&["--backend", "builtin"]).status.success());
    let home = c.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let t = Tmux::start(
        &format!("{BIN} shell"),
        c.tmp.path(),
        &[
            ("ZKHERD_DIR", c.dir().display().to_string()),
            ("HOME", home.display().to_string()),
            ("TERM", "xterm".into()),
        ],
    );
    // zkCli's prompt, with the state and the command number.
    t.wait_for("[zk: ");
    t.wait_for("(CONNECTED) 0]");

    // Tab completes a command name and a znode path.
    // (capture-pane drops trailing blanks: the completed `create ` shows as `create`.)
    t.keys(&["cre", "Tab"]);
    t.wait_for("0] create");
    t.keys(&["/term hi", "Enter"]);
    t.wait_for("Created /term");
    t.keys(&["get /te", "Tab"]);
    t.wait_for("get /term");
    t.keys(&["Enter"]);
    let s = t.wait_for("(CONNECTED) 2]");
    assert!(s.lines().any(|l| l.trim() == "hi"), "{s}");
    t.keys(&["ls /zoo", "Tab"]);
    t.wait_for("ls /zookeeper");
    t.keys(&["Enter"]);
    t.wait_for("[config, quota]");

    // History: Up recalls the last line; `history` lists them.
    t.keys(&["Up"]);
    t.wait_for("(CONNECTED) 3] ls /zookeeper");
    t.keys(&["C-u", "history", "Enter"]);
    let s = t.wait_for("1 - get /term");
    assert!(s.contains("0 - create /term hi"), "{s}");

    // Watches: `get -w` here, a change from another client, zkCli's event lines here.
    t.keys(&["get -w /term", "Enter"]);
    t.wait_for("(CONNECTED) 5]");
    let o = c.run(&["shell", "set", "/term", "changed"], 30);
    assert!(o.status.success(), "{}", stderr(&o));
    t.wait_for("WatchedEvent state:SyncConnected type:NodeDataChanged path:/term");
    t.keys(&["addWatch -m PERSISTENT_RECURSIVE /term", "Enter"]);
    t.wait_for("(CONNECTED) 6]");
    let o = c.run(&["shell", "create", "/term/child", "x"], 30);
    assert!(o.status.success(), "{}", stderr(&o));
    t.wait_for("WatchedEvent state:SyncConnected type:NodeCreated path:/term/child");

    // An error does not end the session; quit does, and saves the history file.
    t.keys(&["get /nope", "Enter"]);
    t.wait_for("Node does not exist: /nope");
    t.keys(&["quit", "Enter"]);
    let hist = home.join(".zkherd_shell_history");
    let saved = eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&hist)
            .ok()
            .filter(|h| h.contains("get /nope"))
    });
    assert!(saved.is_some(), "history not saved to {}", hist.display());
    let o = c.run(&["shell", "get", "/term"], 30);
    assert_eq!(stdout(&o), "changed\n");
}
