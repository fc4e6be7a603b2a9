//! `zkherd logs [-f] [NODE]`: node logs with a `nodeN |` prefix; `-f` follows them as they grow
//! (file-system notifications, not polling).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use notify::{RecursiveMode, Watcher};

use super::Global;
use crate::ports::PortPlan;
use crate::render::NodeLayout;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only this node (2 or node2); default every node.
    #[arg(value_parser = super::parse_node_id, value_name = "NODE")]
    node: Option<u16>,
    /// Keep printing new lines as they are written (Ctrl-C to stop).
    #[arg(short, long)]
    follow: bool,
    /// Lines to show from the end of each log first.
    #[arg(short = 'n', long, default_value_t = 50)]
    lines: usize,
}

pub async fn run(g: &Global, a: LogsArgs) -> Result<u8> {
    let spec = super::resolve_cluster(g)?;
    let plan = PortPlan::new(&spec);
    let mut files: BTreeMap<PathBuf, (u16, u64)> = BTreeMap::new();
    for n in plan.local_nodes(&spec) {
        if a.node.is_some_and(|id| id != n.id) {
            continue;
        }
        let l = NodeLayout::new(&spec.dir, n);
        files.insert(l.log_file.clone(), (n.id, 0));
    }
    if files.is_empty() {
        if let Some(m) = spec.local_member {
            anyhow::bail!(
                "node {} runs on another host; this cluster directory holds member {m} only",
                a.node.unwrap_or(0)
            );
        }
        anyhow::bail!(
            "there is no node {}; this cluster has nodes 1 to {}",
            a.node.unwrap_or(0),
            plan.nodes.len()
        );
    }
    for (path, (id, offset)) in files.iter_mut() {
        let tail = crate::supervisor::job::log_tail(path, a.lines);
        for line in tail.lines() {
            println!("node{id} | {line}");
        }
        *offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    }
    if !a.follow {
        return Ok(0);
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let _ = tx.send(ev.paths);
        }
    })
    .context("cannot watch the log files")?;
    for path in files.keys() {
        let dir = path.parent().expect("log files live in a logs dir");
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch {}", dir.display()))?;
    }
    loop {
        tokio::select! {
            Some(paths) = rx.recv() => {
                for p in paths {
                    if let Some((id, offset)) = files.get_mut(&p) {
                        *offset = print_new(&p, *id, *offset);
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
    }
}

/// Print what was appended since `offset`; returns the new offset. A truncated file restarts.
fn print_new(path: &PathBuf, id: u16, offset: u64) -> u64 {
    let Ok(mut f) = std::fs::File::open(path) else {
        return offset;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = if len < offset { 0 } else { offset };
    if f.seek(SeekFrom::Start(start)).is_err() {
        return offset;
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    // Print whole lines only; a partial last line waits for its newline.
    let upto = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    for line in String::from_utf8_lossy(&buf[..upto]).lines() {
        println!("node{id} | {line}");
    }
    start + upto as u64
}
