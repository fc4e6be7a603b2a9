//! Pieces the benches share (included with `#[path]`; benches are separate crates; not
//! every bench uses every piece).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_zkherd");

/// The backends to measure: builtin processes, builtin in-process, and Apache when Java and
/// Debian's ZooKeeper are installed.
pub fn backends() -> Vec<&'static str> {
    let mut backends = vec!["builtin", "in-process"];
    let java = Command::new("java").arg("-version").output().is_ok();
    if java && Path::new("/usr/share/java/zookeeper.jar").is_file() {
        backends.push("apache");
    } else {
        eprintln!("apache: not measured (java or /usr/share/java/zookeeper.jar missing)");
    }
    backends
}

/// (median, min, max).
pub fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

/// Node pids from `status --json`.
pub fn node_pids(v: &serde_json::Value) -> Vec<u32> {
    v["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["pid"].as_u64())
                .map(|p| p as u32)
                .collect()
        })
        .unwrap_or_default()
}

pub fn rss_mb(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// RSS per node; in-process nodes share one process (the supervisor's): its RSS is divided
/// among them.
pub fn mean_rss(pids: &[u32]) -> Option<f64> {
    let mut distinct = pids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let total: f64 = distinct.iter().filter_map(|p| rss_mb(*p)).sum();
    (!pids.is_empty() && total > 0.0).then(|| total / pids.len() as f64)
}

/// A 3-node ensemble driven through the zkherd CLI; `down` and removed on drop.
pub struct Ensemble {
    pub dir: PathBuf,
    pub base: u16,
}

impl Ensemble {
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("-f")
            .arg(self.dir.join("zkherd.toml"))
            .args(args)
            .env("ZKHERD_DIR", self.dir.join("cluster"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> (bool, String) {
        match self.cmd(args).output() {
            Ok(o) => (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (false, e.to_string()),
        }
    }

    pub fn connect_string(&self) -> String {
        (0..3)
            .map(|i| format!("127.0.0.1:{}", self.base + i))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn status(&self) -> serde_json::Value {
        let out = self.cmd(&["status", "--json"]).output();
        out.ok()
            .and_then(|o| serde_json::from_slice(&o.stdout).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    pub fn wait(&self) -> bool {
        self.run(&["wait", "--timeout", "60"]).0
    }

    pub fn down(&self) {
        let _ = self.run(&["down"]);
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
