//! `zkherd status`: a row per node and a verdict; `--json` for machines; exit code = verdict.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::Global;
use crate::status;

pub const STATUS_HELP: &str = "\
Roles: leader, follower, observer, standalone (from the node's `srvr`); starting (running, not yet
serving); unresponsive (port open, no answer in 1 s); paused (SIGSTOP by zkherd); down (no
process); failed (the supervisor gave up: configuration error or crash loop).

Verdicts: healthy (one leader, every voter follows it in the same epoch, every observer observes);
degraded (a quorum serves, some node does not); no quorum (nodes run, no quorum serves); down.

Exit status: 0 healthy, 1 degraded, 2 no quorum, 3 down, 4 error (e.g. an unreadable spec).
Without a running supervisor, status probes the ports and finds pids by their listening sockets.
The --json schema is documented in src/status.rs and in README.md.";

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (stable schema, see --help) instead of a table.
    #[arg(long)]
    json: bool,
    /// Refresh every second until interrupted.
    #[arg(long)]
    watch: bool,
}

pub async fn run(g: &Global, a: StatusArgs) -> Result<u8> {
    let spec = super::resolve_cluster(g)?;
    loop {
        let jobs = super::supervisor_jobs(&spec.dir).await?;
        let s = status::collect(&spec, jobs, Duration::from_secs(1)).await;
        if a.watch && std::io::stdout().is_terminal() {
            print!("\x1b[2J\x1b[H");
        }
        if a.json {
            println!("{}", serde_json::to_string_pretty(&s)?);
        } else {
            print!("{}", status::render_table(&s));
            // The file outlives a supervisor killed with SIGKILL: trust it only while one runs.
            let url = std::fs::read_to_string(spec.dir.join(crate::ui::URL_FILE));
            if let (true, Ok(url)) = (s.supervisor.running, url) {
                println!("dashboard: {}", url.trim());
            }
            if spec.network.faults {
                let req = crate::supervisor::control::Request::Net {
                    set: vec![],
                    heal: false,
                };
                if let Ok(Some(crate::supervisor::control::Response::Links { links })) =
                    super::ask_supervisor(&spec.dir, &req, Duration::from_secs(2)).await
                {
                    println!("links: {}", super::net::describe(&links));
                }
            }
        }
        if !a.watch {
            return Ok(s.verdict.exit_code() as u8);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(s.verdict.exit_code() as u8),
        }
    }
}
