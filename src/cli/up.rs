//! `zkherd up`: render, preflight, start, supervise. Foreground by default (Ctrl-C = orderly
//! down); `-d` runs the supervisor detached and returns once the quorum serves.

use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::wait::wait_ready;
use super::Global;
use crate::backend;
use crate::ports::PortPlan;
use crate::render;
use crate::spec::{BackendKind, EnsembleSpec, Overrides};
use crate::status::{self, EnsembleStatus};
use crate::supervisor::control::Request;
use crate::supervisor::{self, ClusterFiles, ClusterLock, Ended};

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Detach: run the supervisor in the background and return once the quorum serves.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Seconds to wait for the quorum before giving up.
    #[arg(long = "wait", default_value_t = 90, value_name = "SECS")]
    wait: u64,
    /// Number of voting nodes.
    #[arg(short = 'n', long, value_name = "N")]
    nodes: Option<i64>,
    /// Number of observers (numbered after the voters).
    #[arg(long, value_name = "N")]
    observers: Option<i64>,
    /// Which program runs the nodes: apache or builtin.
    #[arg(long, value_parser = super::parse_backend, value_name = "NAME")]
    backend: Option<BackendKind>,
    /// Run the (builtin) nodes as tokio tasks inside the supervisor instead of one process
    /// each: faster to start, one process to watch. Same as `runtime = "tasks"` in the spec.
    #[arg(long)]
    in_process: bool,
    /// Client base port; quorum and election bases follow at +700 and +1700 (2181 → 2881, 3881).
    #[arg(long, value_name = "PORT")]
    base_port: Option<i64>,
    /// Cluster name (the default directory is .zkherd/<name>).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Run and supervise only member N of the spec (its myid), on this host: for ensembles
    /// spread over several machines, run `zkherd up -d --member N` on each. `-d` then returns
    /// once member N has started; `zkherd wait` tells when a quorum of members serves.
    #[arg(long, value_name = "N", value_parser = super::parse_node_id)]
    member: Option<u16>,
    /// Do not watch the spec file: edits then take effect only through `zkherd apply`.
    #[arg(long)]
    no_watch: bool,
    /// Serve the dashboard (status, timeline, logs, znodes, faults) from the supervisor on
    /// 127.0.0.1:PORT (default 8181; 0 picks a free port). The URL is printed and kept in
    /// `<cluster dir>/ui.url`.
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "8181")]
    ui: Option<u16>,
    /// `faults`: route every link between nodes through the supervisor's proxies, so
    /// `zkherd partition|isolate|heal|net` can break them (same as `[network] faults = true`).
    #[arg(long, value_name = "MODE", value_parser = ["faults", "direct"])]
    net: Option<String>,
    /// Give every node a TLS client port too (base 2281, `[ports] secure`), with a CA, a server
    /// and a client certificate minted into `<cluster dir>/tls/` (same as `[security] tls =
    /// true`). `zkherd env` prints what clients need.
    #[arg(long)]
    tls: bool,
}

pub async fn run(g: &Global, a: UpArgs) -> Result<u8> {
    let spec = super::resolve_spec(
        g,
        Overrides {
            name: a.name.clone(),
            dir: None,
            backend: a.backend,
            in_process: a.in_process,
            nodes: a.nodes,
            observers: a.observers,
            base_port: a.base_port,
            member: a.member,
            net_faults: a.net.as_deref().map(|m| m == "faults"),
            tls: a.tls,
        },
    )?;
    let spec = EnsembleSpec {
        no_watch: a.no_watch,
        ui: a.ui,
        ..spec
    };
    if spec.network.faults && render::uses_dynamic_file(&spec) {
        anyhow::bail!(
            "link proxies (`[network] faults`) with Apache's dynamic config file \
             (`reconfigEnabled = true`) are not supported: one Apache node failed to bind \
             its ports in that setup and it is not understood yet; turn one of them off"
        );
    }
    let files = ClusterFiles::new(&spec.dir);
    let backend: Arc<dyn backend::Backend> = Arc::from(backend::for_spec(&spec)?);
    let existed = render::is_zkherd_dir(&spec.dir);
    // Hold the cluster lock from here on: refuse when a supervisor runs (before re-rendering
    // its configs), and clean what a dead one left behind before checking ports.
    let early_lock = if existed {
        Some(ClusterLock::acquire(&files)?)
    } else {
        None
    };
    let changes = render::render(&spec)?;
    let lock = match early_lock {
        Some(l) => l,
        None => ClusterLock::acquire(&files)?,
    };
    for line in supervisor::clean_orphans(&files).await {
        println!("{line}");
    }
    report_render(&spec, existed, &changes);
    if a.detach {
        preflight(&spec)?;
        // The detached supervisor takes the lock itself.
        drop(lock);
        up_detached(&spec, &files, Duration::from_secs(a.wait)).await
    } else {
        up_foreground(spec, backend, lock, Duration::from_secs(a.wait)).await
    }
}

/// With `--ui`: where the supervisor serves the dashboard (it writes the URL when it binds).
fn dashboard_line(spec: &EnsembleSpec) {
    if spec.ui.is_none() {
        return;
    }
    let file = spec.dir.join(crate::ui::URL_FILE);
    match std::fs::read_to_string(&file) {
        Ok(url) => println!("dashboard: {}", url.trim()),
        Err(e) => println!(
            "dashboard: not running ({}: {e}); see supervisor.log",
            file.display()
        ),
    }
}

/// Bind every planned port; name the holders of those that are taken.
fn preflight(spec: &EnsembleSpec) -> Result<()> {
    let plan = PortPlan::new(spec);
    let ids: Vec<u16> = plan.local_nodes(spec).iter().map(|n| n.id).collect();
    let conflicts = plan.preflight(&ids);
    if !conflicts.is_empty() {
        let lines: Vec<String> = conflicts.iter().map(|c| c.to_string()).collect();
        bail!(
            "port preflight failed, nothing was started:\n  {}",
            lines.join("\n  ")
        );
    }
    Ok(())
}

fn report_render(spec: &EnsembleSpec, existed: bool, changes: &[render::Change]) {
    if !existed {
        let (what, all) = match spec.local_member {
            Some(m) => (format!("member {m} of cluster"), " in all"),
            None => ("cluster".to_string(), ""),
        };
        println!(
            "created {what} {} in {} ({} voters, {} observers{all}, {} backend)",
            spec.name,
            spec.dir.display(),
            spec.nodes,
            spec.observers,
            spec.backend
        );
        return;
    }
    let updates: Vec<_> = changes
        .iter()
        .filter(|c| matches!(c, render::Change::Updated { .. }))
        .collect();
    if updates.is_empty() {
        println!("reusing cluster {} in {}", spec.name, spec.dir.display());
    } else {
        println!("the spec changed; re-rendered:");
        for c in updates {
            println!("  {c}");
        }
    }
}

async fn up_foreground(
    spec: EnsembleSpec,
    backend: Arc<dyn backend::Backend>,
    lock: ClusterLock,
    wait: Duration,
) -> Result<u8> {
    let mut started = supervisor::start(spec.clone(), backend, lock).await?;
    for line in &started.cleaned {
        println!("{line}");
    }
    let tty = std::io::stdout().is_terminal();
    let bar = tty.then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(120));
        b.set_message("starting nodes");
        b
    });
    let say = |line: &str| match &bar {
        Some(b) => b.println(line),
        None => println!("{line}"),
    };
    let t0 = Instant::now();
    let mut last_roles = String::new();
    let ready = {
        let progress = |s: &EnsembleStatus| {
            let roles = roles_line(s);
            if roles != last_roles {
                match &bar {
                    Some(b) => b.set_message(format!("waiting for quorum: {roles}")),
                    None => println!("waiting for quorum: {roles}"),
                }
                last_roles = roles;
            }
        };
        let waiting = wait_ready(&spec, wait, progress);
        tokio::pin!(waiting);
        loop {
            tokio::select! {
                r = &mut waiting => break Some(r),
                Some(line) = started.events.recv() => say(&line),
                _ = &mut started.ended => break None,
            }
        }
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    match ready {
        Some(Ok(s)) => {
            println!(
                "ready in {:.1}s: leader node {}, connect string {}",
                t0.elapsed().as_secs_f64(),
                s.leader.map_or("- (standalone)".into(), |l| l.to_string()),
                s.connect_string
            );
            dashboard_line(&spec);
            println!("supervising; press Ctrl-C to stop every node");
        }
        Some(Err(e)) => {
            println!("zkherd: {e}");
            println!("still supervising; press Ctrl-C to stop every node");
        }
        None => {}
    }
    while let Some(line) = started.events.recv().await {
        println!("{line}");
    }
    let ended = started.ended.await.unwrap_or(Ended::Signal);
    println!("cluster {} is down ({ended:?})", spec.name);
    Ok(0)
}

fn roles_line(s: &EnsembleStatus) -> String {
    s.nodes
        .iter()
        .map(|n| format!("node{} {}", n.id, n.role.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn up_detached(spec: &EnsembleSpec, files: &ClusterFiles, wait: Duration) -> Result<u8> {
    let plan = PortPlan::new(spec);
    let exe = std::env::current_exe().context("cannot find the zkherd executable")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.log)
        .with_context(|| format!("cannot open {}", files.log.display()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--dir")
        .arg(&spec.dir)
        .arg("supervise")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // A session of its own: the supervisor outlives this shell and its Ctrl-C.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the supervisor")?;
    let t0 = Instant::now();
    // Wait for the control socket to answer, watching for an early death.
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the supervisor exited ({status}) before starting the nodes:\n{}",
                supervisor::job::log_tail(&files.log, 20)
            );
        }
        if super::supervisor_jobs(&spec.dir)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            break;
        }
        if t0.elapsed() > wait {
            bail!(
                "the supervisor did not open {} within {wait:?}",
                files.socket.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = wait.saturating_sub(t0.elapsed());
    if let Some(member) = spec.local_member {
        return wait_member_started(spec, member, left, child.id()).await;
    }
    match wait_ready(spec, left, |_| {}).await {
        Ok(s) => {
            println!(
                "ready in {:.1}s: leader node {}, supervisor pid {}",
                t0.elapsed().as_secs_f64(),
                s.leader.map_or("- (standalone)".into(), |l| l.to_string()),
                child.id()
            );
            println!("connect: {}", s.connect_string);
            dashboard_line(spec);
            println!("next: `zkherd status`, `zkherd env`, `zkherd down`");
            Ok(0)
        }
        Err(e) => {
            // Leave nothing half-started behind: stop what runs, then report.
            let status = status::collect(
                spec,
                super::supervisor_jobs(&spec.dir).await.ok().flatten(),
                Duration::from_secs(1),
            )
            .await;
            let _ = super::ask_supervisor(&spec.dir, &Request::Down, Duration::from_secs(60)).await;
            let _ = child.wait();
            let mut tails = String::new();
            for n in &status.nodes {
                if !matches!(
                    n.role,
                    status::Role::Leader | status::Role::Follower | status::Role::Observer
                ) {
                    let l = render::NodeLayout::new(&spec.dir, plan.node(n.id).expect("planned"));
                    tails.push_str(&format!(
                        "\n--- node {} ({}): last lines of {} ---\n{}",
                        n.id,
                        n.role.as_str(),
                        l.log_file.display(),
                        supervisor::job::log_tail(&l.log_file, 15)
                    ));
                }
            }
            bail!("{e}\nstopped every node again.{tails}");
        }
    }
}

/// `up -d --member N`: the quorum needs the other hosts, so return once member N's process
/// runs and its client port answers (a node with no quorum yet answers "not serving").
async fn wait_member_started(
    spec: &EnsembleSpec,
    member: u16,
    wait: Duration,
    supervisor_pid: u32,
) -> Result<u8> {
    let plan = PortPlan::new(spec);
    let node = plan
        .node(member)
        .with_context(|| format!("the spec has no member {member}"))?;
    let addr = std::net::SocketAddr::new(node.host, node.client);
    let t0 = Instant::now();
    loop {
        let jobs = super::supervisor_jobs(&spec.dir).await?;
        let job = jobs
            .as_ref()
            .and_then(|(_, j)| j.iter().find(|j| j.id == member).cloned());
        if let Some(j) = &job {
            if j.state == supervisor::job::JobState::Failed {
                let _ =
                    super::ask_supervisor(&spec.dir, &Request::Down, Duration::from_secs(60)).await;
                bail!(
                    "member {member} failed: {}",
                    j.reason.clone().unwrap_or_default()
                );
            }
        }
        let probe = crate::probe::probe_node(addr, Duration::from_secs(1)).await;
        if probe.reachable {
            // The member's own answer: other members may not run yet, so no ensemble status.
            let role = if probe.srvr.is_some() {
                "serving"
            } else {
                "waiting for a quorum"
            };
            println!(
                "member {member} started in {:.2}s on {addr} ({role}), supervisor pid {supervisor_pid}",
                t0.elapsed().as_secs_f64()
            );
            println!("connect: {}", plan.connect_string());
            println!(
                "next: start the other members on their hosts; `zkherd wait` returns once a \
                 quorum serves"
            );
            return Ok(0);
        }
        if t0.elapsed() > wait {
            let _ = super::ask_supervisor(&spec.dir, &Request::Down, Duration::from_secs(60)).await;
            let l = render::NodeLayout::new(&spec.dir, node);
            bail!(
                "member {member} did not open {addr} within {wait:?}; stopped it again. Last \
                 lines of {}:\n{}",
                l.log_file.display(),
                supervisor::job::log_tail(&l.log_file, 15)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The hidden `supervise` command run by `up -d`: supervise a rendered cluster until `down`.
pub async fn supervise(g: &Global) -> Result<u8> {
    let dir = g
        .dir
        .clone()
        .context("supervise needs --dir <cluster dir>")?;
    let spec = supervisor::load_effective_spec(&dir).with_context(|| {
        format!(
            "{} holds no spec.json; run `zkherd up` to render it",
            dir.display()
        )
    })?;
    let files = ClusterFiles::new(&spec.dir);
    let lock = ClusterLock::acquire(&files)?;
    let backend: Arc<dyn backend::Backend> = Arc::from(backend::for_spec(&spec)?);
    let mut started = supervisor::start(spec, backend, lock).await?;
    // Events are already in supervisor.log; drain them so the channel does not grow.
    while started.events.recv().await.is_some() {}
    let _ = (&mut started.ended).await;
    Ok(0)
}
