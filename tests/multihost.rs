//! One spec, several hosts: `up --member N` per host, `status`/`wait` from anywhere, the
//! bundles of `zkherd export`.
//!
//! The real-hosts test builds three network namespaces (the members, 10.77.0.1-3) and a fourth
//! (the "outside", 10.77.0.254) joined by a bridge, so every member has its own address and
//! loopback of its own, as on separate machines. It needs root (`ip netns add`); elsewhere it
//! skips with a reason, and fails under `ZKHERD_REQUIRE_ALL=1`. The other tests use loopback
//! addresses 127.0.0.x only.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{eventually, free_base_port, run_with_timeout, stderr, stdout, BIN};

const SUBNET: &str = "10.77.0";

/// `ip <args>`; panics with the output when it fails.
fn ip(args: &[&str]) {
    let out = run_with_timeout(Command::new("ip").args(args), Duration::from_secs(20));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        stderr(&out)
    );
}

/// Three member namespaces and an outside one on a bridge; deleted, with every process in
/// them killed, on drop.
struct Hosts {
    outside: String,
    members: Vec<String>,
}

/// Every namespace resolves zk1..zk3 to the members' addresses: `ip netns exec` mounts
/// /etc/netns/<name>/hosts over /etc/hosts.
const HOSTS_FILE: &str = "127.0.0.1 localhost\n10.77.0.1 zk1\n10.77.0.2 zk2\n10.77.0.3 zk3\n";

impl Hosts {
    /// Build the namespaces, or `None` (after saying why) where `ip netns` is not permitted.
    fn new(test: &str, tag: &str) -> Option<Hosts> {
        let base = format!("zkh{}{tag}", std::process::id());
        let probe = format!("{base}probe");
        let ok = Command::new("ip")
            .args(["netns", "add", &probe])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            let _ = Command::new("ip").args(["netns", "del", &probe]).output();
        }
        if !common::tool_available(
            test,
            "permission for `ip netns add` (root and iproute2)",
            ok,
            "run the tests as root with iproute2 installed",
        ) {
            return None;
        }
        let hosts = Hosts {
            outside: format!("{base}out"),
            members: (1..=3).map(|i| format!("{base}m{i}")).collect(),
        };
        for ns in hosts.members.iter().chain([&hosts.outside]) {
            let etc = Path::new("/etc/netns").join(ns);
            std::fs::create_dir_all(&etc).unwrap();
            std::fs::write(etc.join("hosts"), HOSTS_FILE).unwrap();
        }
        let out = hosts.outside.as_str();
        ip(&["netns", "add", out]);
        ip(&["-n", out, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", out, "link", "set", "br0", "up"]);
        ip(&["-n", out, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            out,
            "addr",
            "add",
            &format!("{SUBNET}.254/24"),
            "dev",
            "br0",
        ]);
        for (i, m) in hosts.members.iter().enumerate() {
            let veth = format!("vh{}", i + 1);
            ip(&["netns", "add", m]);
            ip(&[
                "-n", out, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", m,
            ]);
            ip(&["-n", out, "link", "set", &veth, "master", "br0", "up"]);
            ip(&[
                "-n",
                m,
                "addr",
                "add",
                &format!("{SUBNET}.{}/24", i + 1),
                "dev",
                "eth0",
            ]);
            ip(&["-n", m, "link", "set", "eth0", "up"]);
            // A host's own addresses are reached through its loopback device.
            ip(&["-n", m, "link", "set", "lo", "up"]);
        }
        Some(hosts)
    }

    /// `zkherd <args>` inside namespace `ns`.
    fn zkherd(&self, ns: &str, cwd: &Path, args: &[&str], timeout_s: u64) -> Output {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, BIN])
            .args(args)
            .current_dir(cwd)
            .env_remove("RUST_LOG")
            .env_remove("ZKHERD_DIR");
        run_with_timeout(&mut c, Duration::from_secs(timeout_s))
    }

    fn pids(&self, ns: &str) -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The local addresses of every listening TCP socket and bound UDP socket in `ns`.
    fn listening(&self, ns: &str) -> Vec<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "ss", "-Hltnu"])
            .output()
            .expect("ss (iproute2)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
            .collect()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in self.members.iter().chain([&self.outside]) {
            for p in self.pids(ns) {
                let _ = Command::new("kill").args(["-9", &p.to_string()]).output();
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
        }
    }
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(out), stderr(out)))
}

/// The seed recipe on three "machines": the same spec on each, `up -d --member N`, then the
/// ensemble is judged from a fourth machine; a member is killed and comes back.
///
/// With `all_ips`, the spec sets `listen_on_all_ips`: every member binds the wildcard address
/// of its own host (its namespace) instead.
///
/// With `names`, the spec names the hosts zk1..zk3 instead of giving their addresses.
fn three_hosts(test: &str, tag: &str, backend: &str, all_ips: bool, names: bool) {
    let Some(hosts) = Hosts::new(test, tag) else {
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("zkherd-netns")
        .tempdir()
        .unwrap();
    let spec = tmp.path().join("zkherd.toml");
    std::fs::write(
        &spec,
        format!(
            "[cluster]\nname = \"seed\"\nbackend = \"{backend}\"\n\
             hosts = {hosts}\n\
             listen_on_all_ips = {all_ips}\n\
             [restart]\ninitial_backoff_ms = 100\n",
            hosts = if names {
                r#"["zk1", "zk2", "zk3"]"#.to_string()
            } else {
                format!(r#"["{SUBNET}.1", "{SUBNET}.2", "{SUBNET}.3"]"#)
            }
        ),
    )
    .unwrap();
    let spec_s = spec.to_str().unwrap();
    let member_dir = |i: usize| -> PathBuf { tmp.path().join(format!("host{i}")) };
    let on_member = |i: usize, args: &[&str], t: u64| {
        let dir = member_dir(i);
        let mut full = vec!["-f", spec_s, "--dir", dir.to_str().unwrap()];
        full.extend_from_slice(args);
        hosts.zkherd(&hosts.members[i - 1], tmp.path(), &full, t)
    };
    let outside = |args: &[&str], t: u64| {
        let mut full = vec!["-f", spec_s, "--dir"];
        let d = tmp.path().join("outside");
        full.push(d.to_str().unwrap());
        full.extend_from_slice(args);
        hosts.zkherd(&hosts.outside, tmp.path(), &full, t)
    };

    for i in 1..=3 {
        let n = i.to_string();
        let out = on_member(i, &["up", "-d", "--member", &n, "--wait", "90"], 120);
        assert!(
            out.status.success(),
            "up --member {i}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        let started = stdout(&out);
        eprintln!(
            "{backend}: {}",
            started
                .lines()
                .find(|l| l.contains("started in"))
                .unwrap_or_default()
        );
        assert!(
            stdout(&out).contains(&format!("member {i} started")),
            "{}",
            stdout(&out)
        );
        // Only this member's instance dir is laid out on its host.
        assert!(member_dir(i)
            .join(format!("node{i}/conf/zoo.cfg"))
            .is_file());
        for other in (1..=3).filter(|o| *o != i) {
            assert!(!member_dir(i).join(format!("node{other}")).exists());
        }
    }

    // From outside: `wait` (a committed write) and the status table of the whole ensemble.
    let out = outside(&["wait", "--timeout", "90"], 120);
    eprintln!("{backend}: {}", stdout(&out).trim());
    assert!(
        out.status.success(),
        "wait: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let out = outside(&["status", "--json"], 30);
    let s = json(&out);
    assert_eq!(s["verdict"], "healthy", "{s:#}");
    assert_eq!(out.status.code(), Some(0));
    let nodes = s["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["host"], format!("{SUBNET}.{}", i + 1), "{s:#}");
        assert_eq!(
            n["client_port"], 2181,
            "Apache's conventional port on every host"
        );
        assert!(
            n["pid"].is_null(),
            "no pid is known for a remote member: {n}"
        );
    }
    let table = stdout(&outside(&["status"], 30));
    assert!(table.contains(&format!("{SUBNET}.2:2181")), "{table}");

    // Nothing listens outside each member's own address: not 0.0.0.0, not 127.0.0.1 (unless
    // the spec asks for the wildcard).
    for (i, ns) in hosts.members.iter().enumerate() {
        let own = if all_ips {
            "0.0.0.0:".to_string()
        } else {
            format!("{SUBNET}.{}:", i + 1)
        };
        let listening = hosts.listening(ns);
        eprintln!("member {} listens on {listening:?}", i + 1);
        assert!(!listening.is_empty(), "member {} listens on nothing", i + 1);
        for addr in &listening {
            assert!(
                addr.starts_with(&own),
                "member {} listens on {addr}; everything must bind {own}*: {listening:?}",
                i + 1
            );
        }
    }

    if all_ips {
        for i in 1..=3 {
            let out = on_member(i, &["down"], 120);
            assert!(out.status.success(), "down {i}: {}", stderr(&out));
        }
        return;
    }

    // A member's own status names its pid; kill -9 it and its supervisor brings it back.
    let leader = s["leader"].as_u64().unwrap() as usize;
    let victim = if leader == 2 { 3 } else { 2 };
    let mine = json(&on_member(victim, &["status", "--json"], 30));
    let node = &mine["nodes"][victim - 1];
    assert!(node["pid"].as_u64().is_some(), "{mine:#}");
    assert_eq!(node["restarts"], 0);
    let vs = victim.to_string();
    let out = on_member(victim, &["kill", &vs], 30);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    let back = eventually(Duration::from_secs(90), || {
        let mine = json(&on_member(victim, &["status", "--json"], 30));
        let n = &mine["nodes"][victim - 1];
        (n["restarts"].as_u64() >= Some(1)
            && matches!(n["role"].as_str(), Some("follower" | "leader")))
        .then_some(())
    });
    assert!(
        back.is_some(),
        "member {victim} did not come back after kill -9"
    );
    let out = outside(&["wait", "--timeout", "90"], 120);
    assert!(
        out.status.success(),
        "wait after the restart: {}\n{}",
        stdout(&out),
        stderr(&out)
    );

    // `down` on each host leaves no process in its namespace.
    for i in 1..=3 {
        let out = on_member(i, &["down"], 120);
        assert!(out.status.success(), "down {i}: {}", stderr(&out));
    }
    for ns in &hosts.members {
        let left = eventually(Duration::from_secs(20), || {
            hosts.pids(ns).is_empty().then_some(())
        });
        assert!(
            left.is_some(),
            "processes left in {ns}: {:?}",
            hosts.pids(ns)
        );
    }
    let out = outside(&["status", "--json"], 30);
    assert_eq!(json(&out)["verdict"], "down");
}

#[test]
fn builtin_members_on_three_network_namespaces_form_one_ensemble() {
    // The hosts by name (zk1..zk3 in each namespace's /etc/hosts); the Apache test uses
    // addresses.
    three_hosts(
        "builtin_members_on_three_network_namespaces_form_one_ensemble",
        "b",
        "builtin",
        false,
        true,
    );
}

#[test]
fn members_listen_on_all_ips_of_their_host_only_when_the_spec_says_so() {
    let test = "members_listen_on_all_ips_of_their_host_only_when_the_spec_says_so";
    three_hosts(test, "w", "builtin", true, false);
    if common::apache_available(test) {
        three_hosts(test, "v", "apache", true, true);
    }
}

#[test]
fn apache_members_on_three_network_namespaces_form_one_ensemble() {
    let test = "apache_members_on_three_network_namespaces_form_one_ensemble";
    if !common::apache_available(test) {
        return;
    }
    three_hosts(test, "a", "apache", false, false);
}

/// Loopback addresses stand in for hosts: 127.0.0.21-23, one port triple.
fn loopback_spec(dir: &Path, base: u16, backend: &str) -> PathBuf {
    let spec = dir.join("zkherd.toml");
    std::fs::write(
        &spec,
        format!(
            "[cluster]\nname = \"lo\"\nbackend = \"{backend}\"\n\
             hosts = [\"127.0.0.21\", \"127.0.0.22\", \"127.0.0.23\"]\n\
             [ports]\nclient = {base}\nquorum = {}\nelection = {}\n",
            base + 700,
            base + 1700
        ),
    )
    .unwrap();
    spec
}

fn zkherd(cwd: &Path, args: &[&str], timeout_s: u64) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("ZKHERD_DIR");
    run_with_timeout(&mut c, Duration::from_secs(timeout_s))
}

/// Stops the members' supervisors on drop, so a failing test leaves nothing running.
struct Members<'a> {
    spec: &'a Path,
    dirs: Vec<PathBuf>,
}

impl Drop for Members<'_> {
    fn drop(&mut self) {
        for d in &self.dirs {
            let _ = zkherd(
                Path::new("/"),
                &[
                    "-f",
                    self.spec.to_str().unwrap(),
                    "--dir",
                    d.to_str().unwrap(),
                    "down",
                ],
                60,
            );
        }
    }
}

#[test]
fn one_supervisor_per_member_forms_an_ensemble_on_loopback_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base_port(1);
    let spec = loopback_spec(tmp.path(), base, "builtin");
    let s = spec.to_str().unwrap();
    let members = Members {
        spec: &spec,
        dirs: (1..=3)
            .map(|i| tmp.path().join(format!("host{i}")))
            .collect(),
    };
    for (i, d) in members.dirs.iter().enumerate() {
        let n = (i + 1).to_string();
        let out = zkherd(
            tmp.path(),
            &[
                "-f",
                s,
                "--dir",
                d.to_str().unwrap(),
                "up",
                "-d",
                "--member",
                &n,
            ],
            60,
        );
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    }
    let out = zkherd(tmp.path(), &["-f", s, "wait", "--timeout", "60"], 90);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    // Each member's status shows its own pid and no other; logs are for the local member.
    let d2 = members.dirs[1].to_str().unwrap();
    let st = json(&zkherd(
        tmp.path(),
        &["-f", s, "--dir", d2, "status", "--json"],
        30,
    ));
    assert_eq!(st["verdict"], "healthy", "{st:#}");
    assert!(st["nodes"][1]["pid"].as_u64().is_some(), "{st:#}");
    assert!(st["nodes"][0]["pid"].is_null(), "{st:#}");
    // Member 2 killed: its supervisor restarts it, though members 1 and 3 listen on the same
    // ports at other addresses of this machine.
    let out = zkherd(tmp.path(), &["-f", s, "--dir", d2, "kill", "2"], 30);
    assert!(out.status.success(), "{}", stderr(&out));
    let back = eventually(Duration::from_secs(60), || {
        let st = json(&zkherd(
            tmp.path(),
            &["-f", s, "--dir", d2, "status", "--json"],
            30,
        ));
        let n = &st["nodes"][1];
        (n["restarts"].as_u64() >= Some(1) && st["verdict"] == "healthy").then_some(())
    });
    assert!(back.is_some(), "member 2 did not come back after kill -9");
    let out = zkherd(tmp.path(), &["-f", s, "--dir", d2, "logs", "1"], 30);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("runs on another host"),
        "{}",
        stderr(&out)
    );
    // A member the spec does not have is refused before anything starts.
    let out = zkherd(tmp.path(), &["-f", s, "up", "-d", "--member", "4"], 30);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the spec has no member 4; its members are 1, 2, 3"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exported_builtin_bundles_start_an_ensemble_with_their_init_scripts() {
    bundles_start_an_ensemble("builtin");
}

#[test]
fn exported_apache_bundles_start_an_ensemble_with_their_init_scripts() {
    if common::apache_available("exported_apache_bundles_start_an_ensemble_with_their_init_scripts")
    {
        bundles_start_an_ensemble("apache");
    }
}

/// The export bundles run an ensemble with nothing but their init scripts, and their zoo.cfg
/// is the text `up --member` renders.
fn bundles_start_an_ensemble(backend: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base_port(1);
    let spec = loopback_spec(tmp.path(), base, backend);
    let s = spec.to_str().unwrap();
    let prefix = tmp.path().join("installed");
    let out_dir = tmp.path().join("bundles");
    let out = zkherd(
        tmp.path(),
        &[
            "-f",
            s,
            "export",
            "--out",
            out_dir.to_str().unwrap(),
            "--prefix",
            prefix.to_str().unwrap(),
            "--zkherd-bin",
            BIN,
        ],
        30,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Exporting into a non-empty directory is refused.
    let again = zkherd(
        tmp.path(),
        &["-f", s, "export", "--out", out_dir.to_str().unwrap()],
        30,
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("is not empty"),
        "{}",
        stderr(&again)
    );

    struct Scripts(Vec<PathBuf>);
    impl Drop for Scripts {
        fn drop(&mut self) {
            for s in &self.0 {
                let _ = Command::new(s).arg("stop").output();
            }
        }
    }
    let mut scripts = Scripts(Vec::new());
    for i in 1..=3u16 {
        let bundle = out_dir.join(format!("lo-node{i}-127.0.0.2{i}"));
        for f in [
            "README.md",
            "zkherd.toml",
            &format!("zkherd-lo-{i}.service"),
        ] {
            assert!(bundle.join(f).is_file(), "{} lacks {f}", bundle.display());
        }
        assert_eq!(
            std::fs::read_to_string(bundle.join(format!("node{i}/data/myid"))).unwrap(),
            format!("{i}\n")
        );
        // The same rendering as `up --member N` with the cluster dir at the prefix.
        let mut member = zkherd::spec::EnsembleSpec::load(&spec).unwrap();
        member
            .apply(
                &zkherd::spec::Overrides {
                    dir: Some(prefix.clone()),
                    member: Some(i),
                    ..Default::default()
                },
                tmp.path(),
            )
            .unwrap();
        zkherd::render::render(&member).unwrap();
        let up_cfg = std::fs::read_to_string(prefix.join(format!("node{i}/conf/zoo.cfg"))).unwrap();
        let bundle_cfg =
            std::fs::read_to_string(bundle.join(format!("node{i}/conf/zoo.cfg"))).unwrap();
        assert_eq!(
            up_cfg, bundle_cfg,
            "member {i}: export and up render differently"
        );
        assert!(bundle_cfg.contains(&format!("clientPortAddress=127.0.0.2{i}")));
        scripts.0.push(bundle.join(format!("zkherd-lo-{i}")));
    }
    // Install as the bundle README says: copy each node folder under the prefix.
    std::fs::remove_dir_all(&prefix).unwrap();
    std::fs::create_dir_all(&prefix).unwrap();
    for i in 1..=3 {
        let bundle = out_dir.join(format!("lo-node{i}-127.0.0.2{i}"));
        let cp = Command::new("cp")
            .arg("-r")
            .arg(bundle.join(format!("node{i}")))
            .arg(&prefix)
            .status()
            .unwrap();
        assert!(cp.success());
    }
    for script in &scripts.0 {
        let out = run_with_timeout(Command::new(script).arg("start"), Duration::from_secs(30));
        assert!(
            out.status.success(),
            "{}: {}{}",
            script.display(),
            stdout(&out),
            stderr(&out)
        );
    }
    let out = zkherd(tmp.path(), &["-f", s, "wait", "--timeout", "60"], 90);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let mut modes = Vec::new();
    for script in &scripts.0 {
        let out = run_with_timeout(Command::new(script).arg("status"), Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        modes.push(stdout(&out));
    }
    assert_eq!(
        modes.iter().filter(|m| m.contains("Mode: leader")).count(),
        1,
        "{modes:?}"
    );
    let st = json(&zkherd(tmp.path(), &["-f", s, "status", "--json"], 30));
    assert_eq!(st["verdict"], "healthy", "{st:#}");
    // Without a supervisor, status finds each member's pid by its own address and port.
    let pids: Vec<u64> = (0..3)
        .map(|i| st["nodes"][i]["pid"].as_u64().expect("pid"))
        .collect();
    assert!(pids[0] != pids[1] && pids[1] != pids[2], "{pids:?}");
    for script in &scripts.0 {
        let out = run_with_timeout(Command::new(script).arg("stop"), Duration::from_secs(40));
        assert!(out.status.success(), "{}", stdout(&out));
        let out = run_with_timeout(Command::new(script).arg("status"), Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    }
}
