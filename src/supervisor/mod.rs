//! The supervisor: one job per node, a control socket, and the records that let the next `up`
//! find processes a dead supervisor left behind.
//!
//! Files it keeps in the cluster directory:
//! - `supervisor.lock` — flock held while a supervisor runs; holds its pid.
//! - `supervisor.sock` — the control socket ([`control`]).
//! - `supervisor.log` — what the supervisor did (spawns, exits, restarts, verdicts).
//! - `nodes.json` — pid and kernel start time of every node process, rewritten on each change.

pub mod control;
pub mod job;
pub mod netfault;
pub(crate) mod task_node;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use crate::backend::{Backend, BackendError};
use crate::ports::PortPlan;
use crate::render::NodeLayout;
use crate::spec::EnsembleSpec;
use control::{NodeAction, Request, Response, Target};
use job::{JobCommand, JobEvent, JobHandle};

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(
        "a supervisor (pid {pid}) is already running for cluster {dir}; use `zkherd status`, or \
         `zkherd down` to stop it"
    )]
    AlreadyRunning { pid: String, dir: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "control socket path {path} is {len} bytes, over the 107-byte limit of Unix sockets; use a \
         shorter cluster directory (--dir)"
    )]
    SocketPathTooLong { path: PathBuf, len: usize },
    #[error("port preflight failed, nothing was started:\n  {}", .0.join("\n  "))]
    Ports(Vec<String>),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SupervisorError + '_ {
    move |source| SupervisorError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Paths of the supervisor's files in a cluster directory.
#[derive(Debug, Clone)]
pub struct ClusterFiles {
    pub dir: PathBuf,
    pub lock: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub nodes: PathBuf,
}

impl ClusterFiles {
    pub fn new(dir: &Path) -> ClusterFiles {
        ClusterFiles {
            dir: dir.to_path_buf(),
            lock: dir.join("supervisor.lock"),
            socket: dir.join("supervisor.sock"),
            log: dir.join("supervisor.log"),
            nodes: dir.join("nodes.json"),
        }
    }
}

/// The exclusive lock of a cluster directory, held for the supervisor's lifetime.
pub struct ClusterLock {
    _flock: Flock<File>,
}

impl ClusterLock {
    /// Whether a supervisor holds the lock right now; takes nothing and writes nothing.
    pub fn is_held(files: &ClusterFiles) -> bool {
        File::open(&files.lock)
            .is_ok_and(|f| Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err())
    }

    /// Take the lock, or say which supervisor holds it.
    pub fn acquire(files: &ClusterFiles) -> Result<ClusterLock, SupervisorError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&files.lock)
            .map_err(io_err(&files.lock))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut flock) => {
                flock.set_len(0).map_err(io_err(&files.lock))?;
                write!(flock, "{}", std::process::id()).map_err(io_err(&files.lock))?;
                Ok(ClusterLock { _flock: flock })
            }
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                Err(SupervisorError::AlreadyRunning {
                    pid: if pid.trim().is_empty() {
                        "unknown".into()
                    } else {
                        pid.trim().to_string()
                    },
                    dir: files.dir.clone(),
                })
            }
        }
    }
}

/// A node process as recorded in `nodes.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: u32,
    /// Kernel start time (clock ticks since boot, /proc/<pid>/stat field 22): a recycled pid
    /// has another one, so a record never matches a stranger.
    pub start_time: u64,
}

impl ProcessRecord {
    pub fn of(pid: u32) -> Option<ProcessRecord> {
        Some(ProcessRecord {
            pid,
            start_time: proc_start_time(pid)?,
        })
    }

    /// The recorded process still exists (same pid and start time).
    pub fn is_alive(&self) -> bool {
        proc_start_time(self.pid) == Some(self.start_time)
    }
}

fn proc_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after the last ')' are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn read_records(files: &ClusterFiles) -> BTreeMap<u16, ProcessRecord> {
    std::fs::read_to_string(&files.nodes)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn write_records(files: &ClusterFiles, records: &BTreeMap<u16, ProcessRecord>) {
    let tmp = files.nodes.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(records).expect("records serialize");
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, &files.nodes);
    }
}

/// Kill node processes recorded by a supervisor that died without stopping them.
/// Returns one line per process cleaned. Call only while holding the cluster lock.
pub async fn clean_orphans(files: &ClusterFiles) -> Vec<String> {
    let mut cleaned = Vec::new();
    for (id, rec) in read_records(files) {
        if !rec.is_alive() {
            continue;
        }
        let pgid = Pid::from_raw(rec.pid as i32);
        let _ = killpg(pgid, Signal::SIGKILL);
        for _ in 0..100 {
            if !rec.is_alive() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cleaned.push(format!(
            "node {id}: killed stale process {} left running by a supervisor that died",
            rec.pid
        ));
    }
    let _ = std::fs::remove_file(&files.nodes);
    cleaned
}

/// Append a timestamped line to supervisor.log (and to tracing).
fn log_line(files: &ClusterFiles, line: &str) {
    tracing::info!("{line}");
    if let Ok(mut f) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.log)
    {
        let _ = writeln!(f, "{} {line}", job::utc_timestamp(job::unix_ms()));
    }
}

/// A running supervisor's parts, as the control loop sees them.
struct Running {
    spec: EnsembleSpec,
    files: ClusterFiles,
    jobs: BTreeMap<u16, JobHandle>,
    records: BTreeMap<u16, ProcessRecord>,
    backend: Arc<dyn Backend>,
    job_events: mpsc::UnboundedSender<JobEvent>,
    /// Link faults, with `[network] faults` (the proxies run as long as the supervisor).
    links: Option<Arc<netfault::Links>>,
}

impl Running {
    async fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Status => Response::Status {
                pid: std::process::id(),
                jobs: self.job_infos(),
            },
            Request::Node { action, target } => {
                let id = match target {
                    Target::Node(id) => id,
                    Target::Leader => match self.find_leader().await {
                        Some(id) => id,
                        None => return Response::Error {
                            message:
                                "no node reports itself leader right now; try `zkherd wait` first"
                                    .into(),
                        },
                    },
                };
                let Some(job) = self.jobs.get(&id) else {
                    let message = match self.spec.local_member {
                        Some(m) if id >= 1 && id <= self.spec.total_nodes() => format!(
                            "node {id} runs on another host; this supervisor runs member {m} only"
                        ),
                        _ => format!(
                            "there is no node {id}; this cluster has nodes 1 to {}",
                            self.spec.total_nodes()
                        ),
                    };
                    return Response::Error { message };
                };
                let r = match action {
                    NodeAction::Start => job.ask(JobCommand::Start).await,
                    NodeAction::Stop => job.ask(JobCommand::Stop).await,
                    NodeAction::Restart => job.ask(JobCommand::Restart).await,
                    a => {
                        let fault = a.fault().expect("remaining actions are faults");
                        job.ask(|r| JobCommand::Fault(fault, r)).await
                    }
                };
                match r {
                    Ok(message) => {
                        log_line(&self.files, &message);
                        Response::Done { message }
                    }
                    Err(message) => Response::Error { message },
                }
            }
            Request::SetRestart { restart } => {
                for job in self.jobs.values() {
                    let settings = restart.clone();
                    if let Err(message) = job.ask(|r| JobCommand::SetRestart(settings, r)).await {
                        return Response::Error { message };
                    }
                }
                self.spec.restart = restart.clone();
                let message = format!(
                    "restart policy {:?}, backoff {}-{} ms, crash loop {} in {} s, for every node",
                    restart.policy,
                    restart.initial_backoff_ms,
                    restart.max_backoff_ms,
                    restart.crash_loop_limit,
                    restart.crash_loop_window_s
                );
                log_line(&self.files, &message);
                Response::Done { message }
            }
            Request::Resize { spec } => {
                let plan = PortPlan::new(&spec);
                let wanted: BTreeMap<u16, crate::ports::NodePorts> = plan
                    .local_nodes(&spec)
                    .into_iter()
                    .map(|p| (p.id, p.clone()))
                    .collect();
                let mut lines = Vec::new();
                let gone: Vec<u16> = self
                    .jobs
                    .keys()
                    .copied()
                    .filter(|id| !wanted.contains_key(id))
                    .collect();
                for id in gone {
                    if let Some(job) = self.jobs.remove(&id) {
                        if let Err(message) = job.ask(JobCommand::Stop).await {
                            self.jobs.insert(id, job);
                            return Response::Error { message };
                        }
                        lines.push(format!("node {id} stopped and no longer supervised"));
                    }
                    self.records.remove(&id);
                }
                write_records(&self.files, &self.records);
                for (id, ports) in &wanted {
                    if self.jobs.contains_key(id) {
                        continue;
                    }
                    let job = job::spawn_job(
                        NodeLayout::new(&spec.dir, ports),
                        ports.host,
                        self.backend.clone(),
                        spec.restart.clone(),
                        self.job_events.clone(),
                    );
                    let started = job.ask(JobCommand::Start).await;
                    self.jobs.insert(*id, job);
                    match started {
                        Ok(m) => lines.push(m),
                        Err(message) => return Response::Error { message },
                    }
                }
                self.spec = *spec;
                let message = if lines.is_empty() {
                    "no node to start or stop".to_string()
                } else {
                    lines.join("; ")
                };
                log_line(&self.files, &message);
                Response::Done { message }
            }
            Request::Net { set, heal } => {
                let Some(links) = &self.links else {
                    return Response::Error {
                        message: format!(
                            "cluster {} runs without link proxies; start it with `[network] \
                             faults = true` in the spec (or `zkherd up --net faults`) to inject \
                             network faults",
                            self.spec.name
                        ),
                    };
                };
                if heal {
                    links.heal();
                }
                links.set(&set);
                let now = links.list();
                if heal || !set.is_empty() {
                    let message = if now.is_empty() {
                        "every link is clear".to_string()
                    } else {
                        now.iter()
                            .map(|l| format!("{}->{} {}", l.from, l.to, l.fault))
                            .collect::<Vec<_>>()
                            .join("; ")
                    };
                    log_line(&self.files, &format!("links: {message}"));
                }
                Response::Links { links: now }
            }
            Request::Down => Response::Error {
                message: "down is handled by the control loop".into(),
            },
        }
    }

    /// What each node's job knows of it (pid, state, restarts), as `status` reports it.
    fn job_infos(&self) -> Vec<job::JobInfo> {
        self.jobs
            .values()
            .map(|j| j.info.borrow().clone())
            .collect()
    }

    async fn find_leader(&self) -> Option<u16> {
        // With the jobs' own infos: without them, `collect` looks for each node's pid by
        // scanning every process's open files, which took ~20 ms of `kill --leader`.
        let supervisor = Some((std::process::id(), self.job_infos()));
        let status = crate::status::collect(&self.spec, supervisor, Duration::from_secs(2)).await;
        status.leader
    }

    fn on_event(&mut self, ev: &JobEvent) {
        // Keep nodes.json current, so a next `up` can find processes a dead supervisor left.
        match ev {
            // In-process nodes (the supervisor's own pid) die with the supervisor.
            JobEvent::Spawned { id, pid, .. } if *pid != std::process::id() => {
                if let Some(rec) = ProcessRecord::of(*pid) {
                    self.records.insert(*id, rec);
                    write_records(&self.files, &self.records);
                }
            }
            JobEvent::Exited { id, .. } | JobEvent::Stopped { id } => {
                self.records.remove(id);
                write_records(&self.files, &self.records);
            }
            JobEvent::Spawned { .. } | JobEvent::Failed { .. } => {}
        }
        log_line(&self.files, &event_line(ev));
    }

    async fn shutdown(&mut self) {
        let mut set = tokio::task::JoinSet::new();
        for job in self.jobs.values() {
            let job = job.clone();
            set.spawn(async move { job.ask(JobCommand::Shutdown).await });
        }
        while let Some(r) = set.join_next().await {
            if let Ok(Ok(msg)) = r {
                log_line(&self.files, &msg);
            }
        }
        self.records.clear();
        let _ = std::fs::remove_file(&self.files.nodes);
        let _ = std::fs::remove_file(&self.files.socket);
    }
}

/// How a supervisor run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `zkherd down` asked.
    Down,
    /// SIGINT or SIGTERM.
    Signal,
}

/// What a caller can watch while the supervisor runs.
pub struct Started {
    /// Human-readable events, as they happen.
    pub events: mpsc::UnboundedReceiver<String>,
    /// Resolves when the supervisor has stopped every node.
    pub ended: oneshot::Receiver<Ended>,
    /// Lines about stale processes found and cleaned before starting.
    pub cleaned: Vec<String>,
}

/// Watch the spec file (its folder, since editors replace files by renaming) and run
/// `zkherd apply` on each change, its output going to supervisor.log. Changes are debounced,
/// and applied one at a time.
async fn watch_spec(
    source: PathBuf,
    files: ClusterFiles,
    events: mpsc::WeakUnboundedSender<String>,
) {
    // What a foreground `up` prints too; the details stay in supervisor.log.
    let say = |line: &str| {
        log_line(&files, line);
        if let Some(events) = events.upgrade() {
            let _ = events.send(line.to_string());
        }
    };
    use notify::Watcher;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watched = source.file_name().map(|n| n.to_os_string());
    let handler = move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let ours = ev
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == watched);
            if ours && !matches!(ev.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(());
            }
        }
    };
    let folder = source
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            log_line(
                &files,
                &format!(
                    "cannot watch {}: {e}; run `zkherd apply` after editing it",
                    source.display()
                ),
            );
            return;
        }
    };
    if let Err(e) = watcher.watch(&folder, notify::RecursiveMode::NonRecursive) {
        log_line(
            &files,
            &format!(
                "cannot watch {}: {e}; run `zkherd apply` after editing it",
                folder.display()
            ),
        );
        return;
    }
    log_line(
        &files,
        &format!(
            "watching {} for changes (`zkherd up --no-watch` turns this off)",
            source.display()
        ),
    );
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    while rx.recv().await.is_some() {
        // An editor writes in several steps; let them settle.
        tokio::time::sleep(Duration::from_millis(300)).await;
        while rx.try_recv().is_ok() {}
        say(&format!("{} changed; applying it", source.display()));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&files.log);
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("-f")
            .arg(&source)
            .arg("--dir")
            .arg(&files.dir)
            .arg("apply")
            .stdin(std::process::Stdio::null());
        if let Ok(log) = log {
            if let Ok(err) = log.try_clone() {
                cmd.stdout(log).stderr(err);
            }
        }
        let outcome = match cmd.status().await {
            Ok(s) if s.success() => "applied".to_string(),
            Ok(s) => format!("not applied ({s}); see {}", files.log.display()),
            Err(e) => format!("could not run `zkherd apply`: {e}"),
        };
        say(&format!("{}: {outcome}", source.display()));
    }
}

/// Start supervising `spec`: clean orphans, preflight, bind the control socket, start every
/// node. The supervisor then runs in a task until `down` or SIGINT/SIGTERM.
/// `lock` must be the lock of `spec.dir`; it is released when the supervisor ends.
pub async fn start(
    spec: EnsembleSpec,
    backend: Arc<dyn Backend>,
    lock: ClusterLock,
) -> Result<Started, SupervisorError> {
    let files = ClusterFiles::new(&spec.dir);
    let cleaned = clean_orphans(&files).await;
    for line in &cleaned {
        log_line(&files, line);
    }
    let plan = PortPlan::new(&spec);
    let ids: Vec<u16> = plan.local_nodes(&spec).iter().map(|n| n.id).collect();
    let conflicts = plan.preflight(&ids);
    if !conflicts.is_empty() {
        return Err(SupervisorError::Ports(
            conflicts.iter().map(|c| c.to_string()).collect(),
        ));
    }
    let sock_len = files.socket.as_os_str().len();
    if sock_len > 107 {
        return Err(SupervisorError::SocketPathTooLong {
            path: files.socket.clone(),
            len: sock_len,
        });
    }
    // We hold the lock, so an existing socket file is a leftover of a dead supervisor.
    let _ = std::fs::remove_file(&files.socket);
    let listener = UnixListener::bind(&files.socket).map_err(io_err(&files.socket))?;
    let _ = std::fs::remove_file(spec.dir.join(crate::ui::URL_FILE));
    let dashboard = match spec.ui {
        Some(port) => {
            Some(crate::ui::bind(port).map_err(|e| SupervisorError::Ports(vec![e.to_string()]))?)
        }
        None => None,
    };

    let (job_events_tx, mut job_events) = mpsc::unbounded_channel();
    let mut jobs = BTreeMap::new();
    for ports in plan.local_nodes(&spec) {
        let layout = NodeLayout::new(&spec.dir, ports);
        let handle = job::spawn_job(
            layout,
            ports.host,
            backend.clone(),
            spec.restart.clone(),
            job_events_tx.clone(),
        );
        jobs.insert(ports.id, handle);
    }
    log_line(
        &files,
        &format!(
            "supervisor {} starting {} nodes of cluster {} ({} backend)",
            std::process::id(),
            jobs.len(),
            spec.name,
            spec.backend
        ),
    );
    // Link proxies first, so the nodes find them when they start dialling.
    let (links, proxies) = if spec.network.faults {
        let links = Arc::new(netfault::Links::default());
        match netfault::start(&spec, links.clone()).await {
            Ok(tasks) => (Some(links), Some(tasks)),
            Err((port, e)) => {
                return Err(SupervisorError::Ports(vec![format!(
                    "link proxy port {port} on 127.0.0.1: {e}; choose another range with \
                     `[network] proxy_base`"
                )]))
            }
        }
    } else {
        (None, None)
    };
    let mut running = Running {
        spec,
        files: files.clone(),
        jobs,
        records: BTreeMap::new(),
        backend: backend.clone(),
        job_events: job_events_tx.clone(),
        links,
    };

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (ended_tx, ended_rx) = oneshot::channel();
    let (req_tx, mut req_rx) = mpsc::channel::<(Request, oneshot::Sender<Response>)>(32);
    // Signalled once the reply to `down` is written, so the process does not exit before.
    let down_written = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(serve_control(listener, req_tx, down_written.clone()));
    let dashboard = dashboard.map(|l| {
        let url = l.local_addr().map(crate::ui::url).unwrap_or_default();
        log_line(&files, &format!("dashboard on {url}"));
        tokio::spawn(crate::ui::serve(l, running.spec.clone()))
    });
    if let (Some(source), false) = (running.spec.source.clone(), running.spec.no_watch) {
        // A weak sender: the watcher must not keep the event stream open after the
        // supervisor ends (`up` reads events until every sender is gone).
        tokio::spawn(watch_spec(source, files.clone(), events_tx.downgrade()));
    }

    let starts: Vec<JobHandle> = running.jobs.values().cloned().collect();
    let signal = |kind| tokio::signal::unix::signal(kind).map_err(io_err(&files.dir));
    let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::spawn(async move {
        let _lock = lock;
        let _proxies = proxies;
        // Start every node at once; their events arrive through the loop below.
        let start_all = tokio::spawn(async move {
            let asks = starts.iter().map(|j| j.ask(JobCommand::Start));
            futures_util::future::join_all(asks).await;
        });
        let mut down_reply = None;
        let ended = loop {
            tokio::select! {
                Some(ev) = job_events.recv() => {
                    running.on_event(&ev);
                    let _ = events_tx.send(event_line(&ev));
                }
                Some((req, reply)) = req_rx.recv() => {
                    if req == Request::Down {
                        down_reply = Some(reply);
                        break Ended::Down;
                    }
                    let resp = running.handle(req).await;
                    let _ = reply.send(resp);
                }
                _ = sigterm.recv() => break Ended::Signal,
                _ = sigint.recv() => break Ended::Signal,
            }
        };
        start_all.abort();
        log_line(&running.files, &format!("stopping every node ({ended:?})"));
        if let Some(d) = dashboard {
            d.abort();
            let _ = std::fs::remove_file(running.spec.dir.join(crate::ui::URL_FILE));
        }
        running.shutdown().await;
        while let Ok(ev) = job_events.try_recv() {
            running.on_event(&ev);
            let _ = events_tx.send(event_line(&ev));
        }
        log_line(&running.files, "supervisor exiting; no node process left");
        if let Some(reply) = down_reply {
            let sent = reply.send(Response::Done {
                message: format!("cluster {} is down", running.spec.name),
            });
            if sent.is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(2), down_written.notified()).await;
            }
        }
        let _ = ended_tx.send(ended);
    });
    Ok(Started {
        events: events_rx,
        ended: ended_rx,
        cleaned,
    })
}

fn event_line(ev: &JobEvent) -> String {
    match ev {
        JobEvent::Spawned { id, pid, restart } => format!(
            "node {id}: {} (pid {pid})",
            if *restart { "restarted" } else { "started" }
        ),
        JobEvent::Exited {
            id,
            pid,
            exit,
            next,
        } => {
            format!("node {id}: process {pid} ended ({exit}); {next}")
        }
        JobEvent::Failed {
            id,
            reason,
            log_tail,
        } => {
            let mut s = format!("node {id}: FAILED: {reason}");
            if !log_tail.is_empty() {
                s.push_str(&format!(
                    "\n--- last lines of node{id}/logs/node.log ---\n{log_tail}\n---"
                ));
            }
            s
        }
        JobEvent::Stopped { id } => format!("node {id}: stopped"),
    }
}

async fn serve_control(
    listener: UnixListener,
    requests: mpsc::Sender<(Request, oneshot::Sender<Response>)>,
    down_written: Arc<tokio::sync::Notify>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let requests = requests.clone();
        let down_written = down_written.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let Ok(Some(line)) = lines.next_line().await else {
                return;
            };
            let mut is_down = false;
            let resp = match serde_json::from_str::<Request>(&line) {
                Ok(req) => {
                    is_down = req == Request::Down;
                    let (tx, rx) = oneshot::channel();
                    if requests.send((req, tx)).await.is_err() {
                        return;
                    }
                    match rx.await {
                        Ok(r) => r,
                        Err(_) => return,
                    }
                }
                Err(e) => Response::Error {
                    message: format!("bad request: {e}"),
                },
            };
            let mut text = serde_json::to_string(&resp).expect("response serializes");
            text.push('\n');
            let _ = write.write_all(text.as_bytes()).await;
            let _ = write.flush().await;
            if is_down {
                down_written.notify_one();
            }
        });
    }
}

/// The effective spec of a rendered cluster (`spec.json`), if there is one.
pub fn load_effective_spec(dir: &Path) -> Option<EnsembleSpec> {
    let text = std::fs::read_to_string(dir.join("spec.json")).ok()?;
    serde_json::from_str(&text).ok()
}
