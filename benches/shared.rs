//! Pieces both benches use (included with `#[path]`; benches are separate crates).

use std::path::Path;
use std::process::Command;

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
