//! The `zkherd` command line: one file per subcommand, this one for the shared parts
//! (flags, finding the cluster, logging setup).

mod apply;
mod chaos;
mod down;
mod env;
mod export;
mod init;
mod logs;
mod net;
mod node;
mod node_server;
mod rolling;
mod scale;
mod shell;
mod status;
mod ui;
mod up;
mod wait;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::spec::{BackendKind, EnsembleSpec, Overrides};
use crate::supervisor::control::{self, Request, Response};
use crate::supervisor::job::JobInfo;
use crate::supervisor::ClusterFiles;

const ABOUT: &str = "Run a real ZooKeeper ensemble on this machine with one command, keep it alive, and tell you its state.";

const AFTER_HELP: &str = "\
Quick start:
  zkherd up -d        start a 3-node ensemble in the background, return when the quorum serves
  zkherd status       who leads, zxids, connections, restarts
  zkherd env          the connect string, for shells and Kafka
  zkherd down         stop every node, leave no process behind

The cluster lives in .zkherd/<name> beside zkherd.toml (or the current directory); set --dir or
ZKHERD_DIR to use another. `zkherd init` writes a commented zkherd.toml.";

#[derive(Debug, Parser)]
#[command(name = "zkherd", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Spec file (default: ./zkherd.toml when it exists, else built-in defaults). Goes before
    /// the subcommand, as in `docker compose -f`: `zkherd -f ci.toml up -d`.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    file: Option<PathBuf>,
    /// Cluster directory (overrides the spec's cluster.dir).
    #[arg(long, global = true, env = "ZKHERD_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,
    /// More log output (-v info, -vv debug); RUST_LOG takes precedence.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render the instance directories, start every node, and supervise them.
    Up(up::UpArgs),
    /// Stop every node and the supervisor; --purge also deletes the cluster's data.
    Down(down::DownArgs),
    /// Show each node's role, zxid, connections and restarts, and a verdict.
    #[command(after_help = status::STATUS_HELP)]
    Status(status::StatusArgs),
    /// Wait until one leader is elected, every voter follows it, and a write succeeds.
    Wait(wait::WaitArgs),
    /// Print the connect string for a shell, for Kafka, or as JSON.
    Env(env::EnvArgs),
    /// Print node logs, prefixed with the node; -f follows them.
    Logs(logs::LogsArgs),
    /// Start a stopped node.
    Start(node::NodeArgs),
    /// Stop a node (SIGTERM, then SIGKILL); it stays down until `start`.
    Stop(node::NodeArgs),
    /// Stop and start a node.
    Restart(node::NodeArgs),
    /// Reload the spec file into the running ensemble: zoo.cfg changes by rolling restart,
    /// restart-policy changes at once (the supervisor also does this when the file changes).
    Apply(apply::ApplyArgs),
    /// Restart every node one at a time, followers and observers first, the leader last, each
    /// once the ensemble is healthy again; aborts, naming the node, if one does not come back.
    RollingRestart(rolling::RollingArgs),
    /// Change the number of voters (and observers) of the running ensemble through
    /// ZooKeeper's reconfig: new nodes are started first, leaving ones stopped after.
    Scale(scale::ScaleArgs),
    /// Add one voter (or, with --observer, one observer) to the running ensemble.
    Add(scale::AddArgs),
    /// Remove the last voter or observer from the running ensemble (reconfig, then stop it).
    Remove(scale::RemoveArgs),
    /// Cut the links between islands of nodes (needs link proxies: `up --net faults`).
    Partition(net::PartitionArgs),
    /// Cut one node off from every other.
    Isolate(net::IsolateArgs),
    /// Clear every link fault.
    Heal,
    /// Delay or slow down links (`net delay NODE|all 50ms±10ms`, `net loss NODE 10%`, `net show`).
    Net(net::NetArgs),
    /// Kill a node with SIGKILL (a real crash; the restart policy applies).
    Kill(node::NodeArgs),
    /// Pause a node with SIGSTOP (it hangs with its sockets open).
    Pause(node::NodeArgs),
    /// Resume a paused node with SIGCONT.
    Resume(node::NodeArgs),
    /// Inject faults on a schedule (kill, pause, restart); with --check, verify clients'
    /// histories (linearizability, no lost writes, FIFO, zxid order).
    Chaos(chaos::ChaosArgs),
    /// Write a commented zkherd.toml with the defaults.
    Init(init::InitArgs),
    /// Write per-host bundles (zoo.cfg, myid, systemd unit, init script, README) for servers
    /// that run a member without zkherd's supervisor.
    Export(export::ExportArgs),
    /// A ZooKeeper shell with zkCli.sh's commands and output (no Java needed): interactive,
    /// or one command (`zkherd shell ls -R /`); `dump`/`load` a subtree as JSON.
    #[command(after_help = shell::SHELL_HELP)]
    Shell(shell::ShellArgs),
    /// The dashboard on 127.0.0.1: live status, the leader/epoch timeline, node logs, a znode
    /// browser and the fault buttons (`up --ui` serves it from the supervisor instead).
    Ui(ui::UiArgs),
    /// Run one builtin ZooKeeper-compatible server from a zoo.cfg, in the foreground.
    Node(node_server::NodeServerArgs),
    /// Run the supervisor of an already rendered cluster (used by `up -d`).
    #[command(hide = true)]
    Supervise,
}

/// Parse arguments, run, and turn the outcome into an exit code.
pub fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse_from(shell::rewrite_zkcli_flags(std::env::args().collect()));
    // A server node logs what it does at info level: its output is the node's log file.
    let verbosity = match cli.command {
        Command::Node(_) => cli.global.verbose.max(1),
        _ => cli.global.verbose,
    };
    init_tracing(verbosity);
    // A node runs on one thread: its tasks hand work to each other (connection, core, Raft,
    // replication) many times per write, and on one thread that costs a queue push instead of
    // waking a second worker (2 cores, 3 node processes, create at 32 outstanding with fsync:
    // 10.4k/s and p99 4.6 ms, against 7.6k/s and 13.8 ms on two workers). Long work yields
    // (snapshot writes) or runs on the
    // blocking pool (snapshot installs); fsyncs are on the log's own thread.
    let mut builder = if matches!(cli.command, Command::Node(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zkherd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let is_status = matches!(cli.command, Command::Status(_));
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("zkherd: {e:#}");
            // status reserves 1-3 for verdicts.
            ExitCode::from(if is_status { 4 } else { 1 })
        }
    }
}

async fn run(cli: Cli) -> Result<u8> {
    let g = cli.global;
    match cli.command {
        Command::Up(a) => up::run(&g, a).await,
        Command::Supervise => up::supervise(&g).await,
        Command::Down(a) => down::run(&g, a).await,
        Command::Status(a) => status::run(&g, a).await,
        Command::Wait(a) => wait::run(&g, a).await,
        Command::Env(a) => env::run(&g, a).await,
        Command::Logs(a) => logs::run(&g, a).await,
        Command::Start(a) => node::run(&g, control::NodeAction::Start, a).await,
        Command::Stop(a) => node::run(&g, control::NodeAction::Stop, a).await,
        Command::Restart(a) => node::run(&g, control::NodeAction::Restart, a).await,
        Command::RollingRestart(a) => rolling::run(&g, a).await,
        Command::Scale(a) => scale::scale(&g, a).await,
        Command::Partition(a) => net::partition(&g, a).await,
        Command::Isolate(a) => net::isolate(&g, a).await,
        Command::Heal => net::heal(&g).await,
        Command::Net(a) => net::net(&g, a).await,
        Command::Add(a) => scale::add(&g, a).await,
        Command::Remove(a) => scale::remove(&g, a).await,
        Command::Apply(a) => apply::run(&g, a).await,
        Command::Kill(a) => node::run(&g, control::NodeAction::Kill, a).await,
        Command::Pause(a) => node::run(&g, control::NodeAction::Pause, a).await,
        Command::Resume(a) => node::run(&g, control::NodeAction::Resume, a).await,
        Command::Chaos(a) => chaos::run(&g, a).await,
        Command::Init(a) => init::run(&g, a),
        Command::Export(a) => export::run(&g, a).await,
        Command::Node(a) => node_server::run(a).await,
        Command::Shell(a) => shell::run(&g, a).await,
        Command::Ui(a) => ui::run(&g, a).await,
    }
}

/// `zkherd status | head -1` closes stdout early; `println!` then panics with EPIPE. Exit
/// quietly as a C tool killed by SIGPIPE would (status 141), without making SIGPIPE fatal for the
/// sockets the supervisor and the probe write to.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    // Only zkherd's own messages by default; libraries speak from -vv on.
    let default = match verbose {
        0 => "off,zkherd=warn",
        1 => "off,zkherd=info,openraft=warn",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Node logs are files: colour codes only for a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// The spec file in use: -f, else ./zkherd.toml when it exists.
fn spec_file(g: &Global) -> Option<PathBuf> {
    match &g.file {
        Some(f) => Some(f.clone()),
        None => std::env::current_dir()
            .ok()
            .map(|d| d.join("zkherd.toml"))
            .filter(|p| p.is_file()),
    }
}

/// The spec as the user wrote it (file, or defaults), with overrides applied.
fn resolve_spec(g: &Global, mut overrides: Overrides) -> Result<EnsembleSpec> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut spec = match spec_file(g) {
        Some(f) => {
            let mut s = EnsembleSpec::load(&f)?;
            s.source = Some(cwd.join(&f));
            s
        }
        None => EnsembleSpec::defaults(&cwd),
    };
    if overrides.dir.is_none() {
        overrides.dir = g.dir.clone();
    }
    // Recorded in the effective spec (`zkherd apply` applies them again): absolute, so they
    // mean the same from any directory.
    overrides.dir = overrides.dir.map(|d| cwd.join(d));
    spec.apply(&overrides, &cwd)?;
    Ok(spec)
}

/// The cluster a command other than `up` acts on: the effective spec saved by the last `up`
/// in the cluster directory, else the spec as written.
fn resolve_cluster(g: &Global) -> Result<EnsembleSpec> {
    // With --dir, the running cluster's own record, so that a spec file with a bad edit in
    // it does not keep `status` or `down` from working.
    if let Some(s) = g
        .dir
        .as_deref()
        .and_then(crate::supervisor::load_effective_spec)
    {
        return Ok(s);
    }
    let spec = resolve_spec(g, Overrides::default())?;
    Ok(crate::supervisor::load_effective_spec(&spec.dir).unwrap_or(spec))
}

/// Fail, saying how to start one, unless a supervisor runs for `spec`'s cluster.
async fn require_supervisor(spec: &EnsembleSpec) -> Result<()> {
    if supervisor_jobs(&spec.dir).await?.is_none() {
        anyhow::bail!(
            "no supervisor is running for cluster {} ({}); start it with `zkherd up -d`",
            spec.name,
            spec.dir.display()
        );
    }
    Ok(())
}

/// Ask the cluster's supervisor; `Ok(None)` when none runs.
async fn ask_supervisor(dir: &Path, req: &Request, timeout: Duration) -> Result<Option<Response>> {
    let files = ClusterFiles::new(dir);
    if !files.socket.exists() {
        return Ok(None);
    }
    match control::request(&files.socket, req, timeout).await {
        Ok(r) => Ok(Some(r)),
        Err(control::ControlError::NotRunning { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The supervisor's pid and job infos, if a supervisor answers.
async fn supervisor_jobs(dir: &Path) -> Result<Option<(u32, Vec<JobInfo>)>> {
    match ask_supervisor(dir, &Request::Status, Duration::from_secs(5)).await? {
        Some(Response::Status { pid, jobs }) => Ok(Some((pid, jobs))),
        Some(Response::Error { message }) => anyhow::bail!("supervisor: {message}"),
        Some(other) => anyhow::bail!("supervisor: unexpected answer {other:?}"),
        None => Ok(None),
    }
}

/// Parse a node argument: `2` or `node2`.
fn parse_node_id(s: &str) -> Result<u16, String> {
    s.trim_start_matches("node")
        .parse::<u16>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("{s:?} is not a node; give its myid, e.g. 2 or node2"))
}

/// Parse `--backend`.
fn parse_backend(s: &str) -> Result<BackendKind, String> {
    match s {
        "apache" => Ok(BackendKind::Apache),
        "builtin" => Ok(BackendKind::Builtin),
        other => Err(format!(
            "unknown backend {other:?}; expected apache or builtin"
        )),
    }
}
