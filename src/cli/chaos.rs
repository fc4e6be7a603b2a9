//! `zkherd chaos`: a bounded schedule of faults against the running cluster, with a live log
//! of each fault and the ensemble's reaction; with `--check`, concurrent clients and a
//! history checker (see `crate::chaos`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use super::Global;
use crate::chaos::check::ReadModel;
use crate::chaos::{self, Workload};
use crate::ports::PortPlan;
use crate::status::{self, Verdict};
use crate::supervisor::control::{NodeAction, Request, Response, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FaultKind {
    /// SIGKILL (in-process: the node's runtime shut down); the supervisor restarts it.
    Kill,
    /// SIGSTOP for half the interval, then SIGCONT.
    Pause,
    /// An orderly stop and start.
    Restart,
    /// `zkherd rolling-restart`: every node in turn, the leader last (the target is ignored).
    RollingRestart,
    /// `zkherd scale`: two more voters, then back (3 -> 5 -> 3), each until healthy (the
    /// target is ignored; needs reconfigEnabled).
    Scale,
    /// The target and a minority of the others cut off from the rest, for half the interval
    /// (needs link proxies: `up --net faults`).
    Partition,
    /// The target cut off from every other node, for half the interval.
    Isolate,
    /// 50 ms ± 20 ms on every link, for half the interval.
    Delay,
}

impl FaultKind {
    /// Faults that last half the interval and are then undone.
    fn lasts(self) -> bool {
        matches!(
            self,
            FaultKind::Pause | FaultKind::Partition | FaultKind::Isolate | FaultKind::Delay
        )
    }

    fn is_network(self) -> bool {
        matches!(
            self,
            FaultKind::Partition | FaultKind::Isolate | FaultKind::Delay
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Victim {
    /// The leader or a random node, half the time each.
    Any,
    /// Always the current leader.
    Leader,
    /// A random node.
    Random,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Faults never overlap: a paused node is resumed before the next fault, and a killed node is
restarted by the supervisor's policy. Each fault is logged with the time since the start,
then the ensemble's reaction (when it was healthy again, with which leader and epoch).

With --check, clients write, compare-and-set and read (sync + getData) a few znodes under
/zkherd-chaos-<time> throughout, and the history is checked: per-key linearizability (a
Wing-Gong/Porcupine search), no acknowledged write lost or applied twice, per-session FIFO,
zxid monotonic per client. Apache ZooKeeper does not promise linearizable reads, even after
sync (its internals guide, \"Consistency Guarantees\"; ZOOKEEPER-1675): check it with
--reads sequential to test what it does promise.

Exit codes: 0 no anomaly; 3 anomalies found (listed); 1 could not run.")]
pub struct ChaosArgs {
    /// Total duration, e.g. 60s, 10m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Time between faults, e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    every: Duration,
    /// Faults to choose from.
    #[arg(long, value_delimiter = ',', default_value = "kill,pause,restart")]
    faults: Vec<FaultKind>,
    /// Which node each fault hits.
    #[arg(long, value_enum, default_value = "any")]
    target: Victim,
    /// Run clients and check their history.
    #[arg(long)]
    check: bool,
    /// Concurrent clients (with --check).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Znodes the clients share (with --check).
    #[arg(long, default_value_t = 3)]
    keys: usize,
    /// Seed for the schedule and the clients (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// With --check: what reads must see. linearizable: every write acknowledged before the
    /// read began (the builtin backend's sync is a Raft read index). sequential: Apache
    /// ZooKeeper's documented guarantee (writes linearizable; reads may be stale, but each
    /// client's view only moves forward).
    #[arg(long, value_enum, default_value = "linearizable")]
    reads: ReadModel,
    /// With --check: also write the history, one JSON object per operation
    /// ({"key":…,"op":…}), to this file.
    #[arg(long, value_name = "FILE")]
    history: Option<std::path::PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 5s, 10m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use ms, s, m or h")),
    };
    if !(0.05..=7.0 * 86400.0).contains(&secs) {
        return Err(format!("{s:?} is out of range (50ms to 7 days)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub async fn run(g: &Global, a: ChaosArgs) -> Result<u8> {
    if a.faults.is_empty() {
        bail!("--faults is empty; choose from kill, pause, restart");
    }
    if a.check && (a.clients == 0 || a.keys == 0) {
        bail!("--check needs at least one client and one key");
    }
    let spec = super::resolve_cluster(g)?;
    super::require_supervisor(&spec).await?;
    if a.faults.iter().any(|f| f.is_network()) && !spec.network.faults {
        bail!(
            "--faults partition, isolate and delay need link proxies: start the cluster with \
             `zkherd up --net faults` (or `[network] faults = true` in the spec)"
        );
    }
    if spec.nodes < 3 {
        bail!(
            "cluster {} has {} voter(s): with fewer than 3 every fault takes the quorum away; \
             use `zkherd up -n 3`",
            spec.name,
            spec.nodes
        );
    }
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let plan = PortPlan::new(&spec);
    let addrs: Vec<SocketAddr> = plan
        .nodes
        .iter()
        .map(|n| SocketAddr::new(n.host, n.client))
        .collect();
    println!(
        "chaos on cluster {} ({} nodes, {} backend): {:?} for {:?}, every {:?}, target {:?}, seed {seed}{}",
        spec.name,
        spec.total_nodes(),
        spec.backend,
        a.faults,
        a.duration,
        a.every,
        a.target,
        if a.check { ", with --check" } else { "" }
    );
    let epoch = Instant::now();
    let stamp = |t: Instant| format!("[{:>7.2}s]", t.duration_since(epoch).as_secs_f64());

    // Clients first, so the faults hit a loaded ensemble.
    let stop = Arc::new(AtomicBool::new(false));
    let workload = if a.check {
        let root = format!(
            "/zkherd-chaos-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        );
        let w = Arc::new(Workload {
            addrs: addrs.clone(),
            root: root.clone(),
            keys: a.keys,
            clients: a.clients,
            seed,
            op_timeout: Duration::from_secs(2),
        });
        w.prepare().await.map_err(anyhow::Error::msg)?;
        println!(
            "{} {} clients on {} keys under {root}",
            stamp(Instant::now()),
            a.clients,
            a.keys
        );
        Some(tokio::spawn(w.run(stop.clone(), epoch)))
    } else {
        None
    };

    let mut rng = seed | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let end = epoch + a.duration;
    let mut faults = 0u32;
    let mut slowest = Duration::ZERO;
    let mut never_recovered = 0u32;
    while Instant::now() + a.every <= end {
        let fault_at = Instant::now();
        let kind = a.faults[(next() % a.faults.len() as u64) as usize];
        let leader = matches!(a.target, Victim::Leader)
            || (matches!(a.target, Victim::Any) && next() % 2 == 0);
        let target = if leader {
            Target::Leader
        } else {
            Target::Node((next() % u64::from(spec.total_nodes())) as u16 + 1)
        };
        let action = match kind {
            FaultKind::Kill => NodeAction::Kill,
            FaultKind::Pause => NodeAction::Pause,
            FaultKind::Restart => NodeAction::Restart,
            // Not node actions: see `network_fault` below.
            FaultKind::Partition | FaultKind::Isolate | FaultKind::Delay => NodeAction::Start,
            FaultKind::RollingRestart | FaultKind::Scale => {
                let done = if kind == FaultKind::Scale {
                    println!(
                        "{} scale {} -> {} -> {} voters",
                        stamp(fault_at),
                        spec.nodes,
                        spec.nodes + 2,
                        spec.nodes
                    );
                    scale_and_back(&spec).await
                } else {
                    println!("{} rolling restart", stamp(fault_at));
                    super::rolling::roll(&spec, Duration::ZERO, Duration::from_secs(120)).await
                };
                if let Err(e) = done {
                    never_recovered += 1;
                    println!("{} {kind:?} failed: {e:#}", stamp(Instant::now()));
                }
                faults += 1;
                slowest = slowest.max(fault_at.elapsed());
                let next_fault = fault_at + a.every;
                if Instant::now() < next_fault {
                    tokio::time::sleep_until(next_fault.into()).await;
                }
                continue;
            }
        };
        let outcome = if kind.is_network() {
            let other = next();
            network_fault(&spec, kind, target, other).await
        } else {
            ask(&spec.dir, action, target).await
        };
        faults += 1;
        let victim = match &outcome {
            Ok(m) => {
                println!("{} {kind:?} {}: {m}", stamp(fault_at), describe(target));
                node_of(m)
            }
            Err(e) => {
                println!(
                    "{} {kind:?} {}: not done: {e}",
                    stamp(fault_at),
                    describe(target)
                );
                None
            }
        };
        // The ensemble's reaction: healthy again (a pause lasts half the interval first).
        let resume_at = fault_at + a.every / 2;
        let next_fault = fault_at + a.every;
        let mut resumed =
            !kind.lasts() || outcome.is_err() || (!kind.is_network() && victim.is_none());
        let mut healthy_at = None;
        while Instant::now() < next_fault {
            if !resumed && Instant::now() >= resume_at && kind.is_network() {
                match heal(&spec).await {
                    Ok(()) => println!("{} healed every link", stamp(Instant::now())),
                    Err(e) => println!("{} heal: {e}", stamp(Instant::now())),
                }
                resumed = true;
            }
            if !resumed && Instant::now() >= resume_at {
                if let Some(id) = victim {
                    match ask(&spec.dir, NodeAction::Resume, Target::Node(id)).await {
                        Ok(m) => println!("{} {m}", stamp(Instant::now())),
                        Err(e) => println!("{} resume node {id}: {e}", stamp(Instant::now())),
                    }
                }
                resumed = true;
            }
            if healthy_at.is_none() {
                let st = status::collect(&spec, None, Duration::from_millis(500)).await;
                if st.verdict == Verdict::Healthy && (resumed || !kind.lasts()) {
                    let took = fault_at.elapsed();
                    slowest = slowest.max(took);
                    println!(
                        "{} healthy: leader node {}, epoch {} ({:.2} s after the fault)",
                        stamp(Instant::now()),
                        st.leader.map(|l| l.to_string()).unwrap_or("?".into()),
                        st.epoch.map(|e| e.to_string()).unwrap_or("?".into()),
                        took.as_secs_f64()
                    );
                    healthy_at = Some(Instant::now());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if healthy_at.is_none() {
            never_recovered += 1;
            println!(
                "{} not healthy before the next fault",
                stamp(Instant::now())
            );
        }
    }
    // Leave the cluster whole: no link cut, nothing paused, everything running and in sync.
    if spec.network.faults {
        let _ = heal(&spec).await;
    }
    for id in 1..=spec.total_nodes() {
        let _ = ask(&spec.dir, NodeAction::Resume, Target::Node(id)).await;
        let _ = ask(&spec.dir, NodeAction::Start, Target::Node(id)).await;
    }
    let settle = Instant::now() + Duration::from_secs(60);
    let mut healthy = false;
    while Instant::now() < settle {
        let st = status::collect(&spec, None, Duration::from_millis(500)).await;
        if st.verdict == Verdict::Healthy {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "{} schedule done: {faults} faults; slowest recovery {:.2} s; {never_recovered} not \
         recovered before the next fault; ensemble {}",
        stamp(Instant::now()),
        slowest.as_secs_f64(),
        if healthy {
            "healthy"
        } else {
            "NOT healthy after 60 s"
        }
    );
    let mut code = if healthy { 0 } else { 3 };
    if let Some(task) = workload {
        stop.store(true, Ordering::Relaxed);
        let history = task.await.context("the client task failed")?;
        if let Some(path) = &a.history {
            let mut text = String::new();
            for (k, ops) in &history.ops {
                for o in ops {
                    let line = serde_json::json!({ "key": k, "op": o });
                    text.push_str(&line.to_string());
                    text.push('\n');
                }
            }
            std::fs::write(path, text)
                .with_context(|| format!("cannot write the history to {}", path.display()))?;
        }
        let checked = Instant::now();
        let v = chaos::verdict(&history, 1_000_000_000, a.reads);
        let ops: usize = history.ops.values().map(Vec::len).sum();
        println!(
            "{} history: {ops} operations checked in {:.1} s",
            stamp(Instant::now()),
            checked.elapsed().as_secs_f64()
        );
        for (what, n) in &history.counts {
            println!("  {what}: {n}");
        }
        for (k, n) in &v.undecided {
            println!("  key k{k}: linearizability undecided ({n} operations; search budget spent)");
        }
        if v.anomalies.is_empty() {
            println!("anomalies: none");
        } else {
            println!("anomalies: {}", v.anomalies.len());
            for an in v.anomalies.iter().take(50) {
                println!("  {an}");
            }
            code = 3;
        }
        if !v.undecided.is_empty() && code == 0 {
            println!("(undecided keys are not counted as anomalies; rerun with more keys)");
        }
    }
    Ok(code)
}

fn describe(t: Target) -> String {
    match t {
        Target::Leader => "the leader".into(),
        Target::Node(id) => format!("node {id}"),
    }
}

/// "node 3 (pid 1) killed ..." → 3.
fn node_of(message: &str) -> Option<u16> {
    message
        .strip_prefix("node ")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

async fn ask(dir: &std::path::Path, action: NodeAction, target: Target) -> Result<String> {
    let req = Request::Node { action, target };
    match super::ask_supervisor(dir, &req, Duration::from_secs(60)).await? {
        Some(Response::Done { message }) => Ok(message),
        Some(Response::Error { message }) => bail!("{message}"),
        Some(other) => bail!("supervisor: unexpected answer {other:?}"),
        None => bail!("the supervisor is gone"),
    }
}

/// A network fault through the link proxies: `target` (with, for a partition, a minority
/// of the others chosen by `pick`) cut off, or every link delayed.
async fn network_fault(
    spec: &crate::spec::EnsembleSpec,
    kind: FaultKind,
    target: Target,
    pick: u64,
) -> Result<String> {
    use crate::supervisor::netfault::{LinkFault, LinkInfo};
    let total = spec.total_nodes();
    let victim = match target {
        Target::Node(id) => id,
        Target::Leader => {
            let st = status::collect(spec, None, Duration::from_millis(500)).await;
            st.leader.context("no leader to cut off")?
        }
    };
    let set: Vec<LinkInfo> = if kind == FaultKind::Delay {
        let fault = LinkFault {
            delay_ms: 50,
            jitter_ms: 20,
            ..Default::default()
        };
        (1..=total)
            .flat_map(|a| (1..=total).map(move |b| (a, b)))
            .filter(|(a, b)| a != b)
            .map(|(from, to)| LinkInfo { from, to, fault })
            .collect()
    } else {
        let mut island: std::collections::BTreeSet<u16> = [victim].into();
        // A partition takes companions along while they stay a minority.
        let others: Vec<u16> = (1..=total).filter(|id| *id != victim).collect();
        if kind == FaultKind::Partition && total >= 5 {
            let minority = (total - 1) / 2;
            for k in 0..minority.saturating_sub(1) {
                island.insert(others[((pick as usize) + k as usize) % others.len()]);
            }
        }
        let cut = LinkFault {
            cut: true,
            ..Default::default()
        };
        super::net::island_cuts(&[island], total)?
            .into_iter()
            .map(|(from, to)| LinkInfo {
                from,
                to,
                fault: cut,
            })
            .collect()
    };
    let links = super::net::ask(spec, set, true).await?;
    Ok(format!("links: {}", super::net::describe(&links)))
}

async fn heal(spec: &crate::spec::EnsembleSpec) -> Result<()> {
    super::net::ask(spec, vec![], true).await.map(|_| ())
}

/// Two more voters, then back to the spec's own size.
async fn scale_and_back(spec: &crate::spec::EnsembleSpec) -> Result<()> {
    let timeout = Duration::from_secs(120);
    super::scale::resize(spec, spec.nodes + 2, spec.observers, timeout, false).await?;
    let grown = crate::supervisor::load_effective_spec(&spec.dir)
        .context("the scaled cluster's spec.json is unreadable")?;
    super::scale::resize(&grown, spec.nodes, spec.observers, timeout, false).await
}
