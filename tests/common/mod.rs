//! Shared test harness: run the real `zkherd` binary with bounded waits, on free loopback port
//! ranges, and clean up every process of a cluster even when a test fails.
#![allow(dead_code)]

pub mod raw;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_zkherd");

/// Is Apache ZooKeeper usable here? When it is not: skip with a reason, or fail when
/// `ZKHERD_REQUIRE_ALL=1`.
pub fn apache_available(test: &str) -> bool {
    let java = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("java").is_file()))
        .unwrap_or(false);
    let zk = Path::new("/usr/share/java/zookeeper.jar").is_file()
        || std::env::var_os("ZOOKEEPER_HOME").is_some();
    if java && zk {
        return true;
    }
    let reason = format!(
        "{test}: skipped: Apache ZooKeeper not installed (java on PATH: {java}, zookeeper jar: {zk}); \
         `apt-get install zookeeper` to run it"
    );
    if std::env::var("ZKHERD_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{reason} — but ZKHERD_REQUIRE_ALL=1 requires it");
    }
    eprintln!("{reason}");
    false
}

/// Is a tool usable? When it is not: skip with a one-line reason, or fail when
/// `ZKHERD_REQUIRE_ALL=1`.
pub fn tool_available(test: &str, what: &str, ok: bool, how: &str) -> bool {
    if ok {
        return true;
    }
    let reason = format!("{test}: skipped: {what} not installed; {how} to run it");
    if std::env::var("ZKHERD_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{reason} — but ZKHERD_REQUIRE_ALL=1 requires it");
    }
    eprintln!("{reason}");
    false
}

/// A client base port B such that B.., B+100.., B+700.. and B+1700.. are free for `n` nodes.
/// Each test process starts from a different spot and each call moves on, so parallel tests
/// (threads and processes) do not collide.
pub fn free_base_port(n: u16) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Bases in 11000..30000: +1700 stays below 32768, where the kernel's ephemeral range (the
    // local ports of outgoing connections) starts, so no connection can take one meanwhile.
    let span = 19000u16;
    let seed = (std::process::id() as u16).wrapping_mul(7919) % span;
    for _ in 0..500 {
        let step = NEXT.fetch_add(16, Ordering::SeqCst);
        let base = 11000 + (seed.wrapping_add(step) % span);
        let all_free = (0..n).all(|i| {
            // +100: the secure client ports of `--tls` clusters.
            [base + i, base + 100 + i, base + 700 + i, base + 1700 + i]
                .iter()
                .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        });
        if all_free {
            return base;
        }
    }
    panic!("no free port range found");
}

/// A proxy base with the ports of three nodes' proxies free (base .. base + 132), below the
/// range `free_base_port` hands out.
pub fn free_proxy_base() -> u16 {
    // Each call moves on, so the tests of this process (run in parallel) never pick the same.
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_mul(31) % 40;
    for _ in 0..40u16 {
        let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let base = 5000 + ((seed + i) % 40) * 150;
        if (base..base + 132).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no free proxy port range");
}

/// Run a command to completion, killing it after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{cmd:?} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run with `input` on stdin, killing it after `timeout`: stdout, stderr and the exit code
/// (-1 when killed).
pub fn run_piped(cmd: &mut Command, input: &str, timeout: Duration) -> (String, String, i32) {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Fed from a thread, so a child that writes much before reading cannot block us.
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let _ = feeder.join();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// As `run_piped`: stdout then stderr in one string, and the exit code.
pub fn run_with_stdin(cmd: &mut Command, input: &str, timeout: Duration) -> (String, i32) {
    let (out, err, rc) = run_piped(cmd, input, timeout);
    (format!("{out}{err}"), rc)
}

/// A cluster in a temporary directory, torn down (processes killed) on drop.
pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub base: u16,
    pub nodes: u16,
}

impl Cluster {
    pub fn new(nodes: u16) -> Cluster {
        let tmp = tempfile::Builder::new()
            .prefix("zkherd-it")
            .tempdir()
            .unwrap();
        Cluster {
            base: free_base_port(nodes + 1),
            tmp,
            nodes,
        }
    }

    /// `nodes` nodes of `backend`, up, on a port range with room for `room`, with `spec` as
    /// zkherd.toml.
    pub fn with_spec(nodes: u16, room: u16, backend: &str, spec: &str) -> Cluster {
        let mut c = Cluster::new(nodes);
        c.base = free_base_port(room);
        std::fs::write(c.tmp.path().join("zkherd.toml"), spec).unwrap();
        let out = c.up(&["--backend", backend]);
        assert!(
            out.status.success(),
            "{backend}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        c
    }

    /// [`Cluster::with_spec`] with `--tls` (secure client ports at base + 100).
    pub fn with_tls(nodes: u16, backend: &str, spec: &str) -> Cluster {
        let mut c = Cluster::new(nodes);
        c.base = free_base_port(nodes);
        std::fs::write(c.tmp.path().join("zkherd.toml"), spec).unwrap();
        let out = c.up(&["--backend", backend, "--tls"]);
        assert!(
            out.status.success(),
            "{backend}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        c
    }

    /// Node `node`'s secure client port address (a `--tls` cluster).
    pub fn secure_addr(&self, node: u16) -> String {
        format!("127.0.0.1:{}", self.base + 100 + node - 1)
    }

    /// zkCli.sh against `server` in an environment made by `eval "$(zkherd env)"` and then
    /// the shell lines `extra`, with `input` piped in; its output.
    pub fn zkcli_with_env(&self, server: &str, extra: &str, input: &str) -> String {
        let env = self.run(&["env"], 30);
        assert!(env.status.success(), "{}", stderr(&env));
        let script = format!(
            "{}\n{extra}\nexec {ZKCLI} -timeout 5000 -server {server} 2>&1",
            stdout(&env)
        );
        let (out, err, _) = run_piped(
            Command::new("sh").arg("-c").arg(script),
            input,
            Duration::from_secs(90),
        );
        format!("{out}{err}")
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("cluster")
    }

    /// `zkherd <args>` in this cluster's directory, with its ports.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.tmp.path())
            .env("ZKHERD_DIR", self.dir())
            .env_remove("RUST_LOG")
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str], timeout_s: u64) -> Output {
        run_with_timeout(&mut self.cmd(args), Duration::from_secs(timeout_s))
    }

    /// `up -d` with this cluster's base port and node count.
    pub fn up(&self, extra: &[&str]) -> Output {
        let base = self.base.to_string();
        let n = self.nodes.to_string();
        let mut args = vec!["up", "-d", "--base-port", &base, "-n", &n, "--wait", "90"];
        args.extend_from_slice(extra);
        self.run(&args, 120)
    }

    pub fn status_json(&self) -> (serde_json::Value, i32) {
        let out = self.run(&["status", "--json"], 30);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json is not JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (v, out.status.code().unwrap_or(-1))
    }

    pub fn connect_to(&self, node: u16) -> String {
        format!("127.0.0.1:{}", self.base + node - 1)
    }

    /// Every pid zkherd recorded for this cluster: the supervisor and the nodes.
    pub fn recorded_pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        if let Ok(s) = std::fs::read_to_string(self.dir().join("supervisor.lock")) {
            if let Ok(p) = s.trim().parse() {
                pids.push(p);
            }
        }
        if let Ok(s) = std::fs::read_to_string(self.dir().join("nodes.json")) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&s) {
                if let Some(m) = v.as_object() {
                    for r in m.values() {
                        if let Some(p) = r["pid"].as_i64() {
                            pids.push(p as i32);
                        }
                    }
                }
            }
        }
        pids
    }

    /// Every port of every node (and one spare), for "all ports free" checks.
    pub fn all_ports(&self) -> Vec<u16> {
        (0..self.nodes)
            .flat_map(|i| [self.base + i, self.base + 700 + i, self.base + 1700 + i])
            .collect()
    }
}

/// A process with this pid exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.dir().exists() {
            return;
        }
        let pids = self.recorded_pids();
        let _ = run_down(self);
        // Whatever survived `down` (or if down itself failed) is killed by pid.
        for p in pids.into_iter().chain(self.recorded_pids()) {
            if alive(p) {
                unsafe {
                    libc_kill(-p, 9);
                    libc_kill(p, 9);
                }
            }
        }
    }
}

fn run_down(c: &Cluster) -> Option<Output> {
    let mut cmd = c.cmd(&["down"]);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if child.try_wait().ok()?.is_some() {
            return child.wait_with_output().ok();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Poll `f` until it returns Some, for at most `timeout`.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether python3 can import kazoo: else skip with a reason, or fail under
/// `ZKHERD_REQUIRE_ALL=1`.
/// `python3 tests/clients/<script> <args>`, which must exit 0; its stdout.
pub fn client_script(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let (out, err, rc) = run_piped(
        Command::new("python3").arg(&path).args(args),
        "",
        Duration::from_secs(120),
    );
    assert_eq!(rc, 0, "{script} {args:?}:\n{out}\n{err}");
    out
}

/// Debian's zkCli.sh.
pub const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";

pub fn zkcli_available(test: &str) -> bool {
    tool_available(
        test,
        "zkCli.sh",
        Path::new(ZKCLI).is_file(),
        "`apt-get install zookeeper`",
    )
}

pub fn kazoo_available(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import kazoo"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    tool_available(test, "python3 with kazoo", ok, "`pip install kazoo`")
}

/// Run the chaos workload's checked clients (6 clients, 3 keys under `root`: writes,
/// compare-and-sets, sync+reads) against `addrs` while `during` runs, then check the history:
/// panics on any anomaly or undecided key. Returns the number of acknowledged writes and the
/// outcome counts.
pub fn checked_clients_during(
    addrs: Vec<std::net::SocketAddr>,
    root: &str,
    seed: u64,
    during: impl FnOnce(),
) -> (usize, std::collections::BTreeMap<String, u64>) {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let workload = Arc::new(zkherd::chaos::Workload {
        addrs,
        root: root.into(),
        keys: 3,
        clients: 6,
        seed,
        op_timeout: Duration::from_secs(2),
    });
    rt.block_on(workload.prepare()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = rt.spawn(workload.clone().run(stop.clone(), Instant::now()));
    std::thread::sleep(Duration::from_millis(500));
    during();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let history = rt.block_on(clients).unwrap();
    let acked = history
        .ops
        .values()
        .flatten()
        .filter(|o| matches!(o.output, zkherd::chaos::check::Output::Version(_)))
        .count();
    assert!(
        acked > 20,
        "only {acked} acknowledged writes: the clients did not run"
    );
    let v = zkherd::chaos::verdict(
        &history,
        100_000_000,
        zkherd::chaos::check::ReadModel::Linearizable,
    );
    assert!(v.anomalies.is_empty(), "{:#?}", v.anomalies);
    assert!(v.undecided.is_empty(), "undecided keys: {:?}", v.undecided);
    let counts = history
        .counts
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    (acked, counts)
}
