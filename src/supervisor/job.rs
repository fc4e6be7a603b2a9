//! One job per node: the only code that spawns, signals and reaps that node's process.
//!
//! A job is a task driven by [`JobCommand`]s; it publishes its [`JobInfo`] on a watch channel and
//! human-readable [`JobEvent`]s on an event channel. States:
//!
//! ```text
//!   Stopped ──start──► Running ──pause──► Paused ──resume──► Running
//!      ▲                 │  exit (not asked for)
//!      │                 ▼
//!      │   policy says restart? ── yes ──► Backoff ──timer──► Running
//!      │                 │ no / config error / crash loop
//!      └──── stop ───────┴──────────────► Failed (or Stopped after a clean exit)
//! ```
//!
//! A death is noticed when `wait()` on the child returns (SIGCHLD), never by polling. Stop is
//! SIGCONT (a paused JVM cannot act on SIGTERM) → SIGTERM → grace → SIGKILL → reap → wait until
//! the node's ports are free.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot, watch};

use super::task_node::TaskNode;
use crate::backend::{Backend, ExitClass, ExitInfo};
use crate::ports;
use crate::render::NodeLayout;
use crate::spec::{RestartPolicy, RestartSettings};

/// A node that ran at least this long before dying resets its backoff and crash count.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// How long a node may take to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long to wait for a stopped node's ports to be released.
const PORT_RELEASE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Stopped,
    Running,
    Paused,
    Stopping,
    Backoff,
    Failed,
}

/// What the supervisor knows about one node's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    pub id: u16,
    pub state: JobState,
    pub pid: Option<u32>,
    /// Unix time in ms when the current process started.
    pub started_at_ms: Option<u64>,
    /// Restarts done by the supervisor (not counting starts asked for).
    pub restarts: u32,
    /// How the last process ended, e.g. `exit 1` or `SIGKILL`.
    pub last_exit: Option<String>,
    /// Why the node is failed, or why the last exit was not restarted.
    pub reason: Option<String>,
}

/// Something worth telling the user, in order.
#[derive(Debug, Clone)]
pub enum JobEvent {
    Spawned {
        id: u16,
        pid: u32,
        restart: bool,
    },
    Exited {
        id: u16,
        pid: u32,
        exit: ExitInfo,
        next: String,
    },
    Failed {
        id: u16,
        reason: String,
        log_tail: String,
    },
    Stopped {
        id: u16,
    },
}

/// Signals a user can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// SIGKILL: the process dies at once; the restart policy applies.
    Kill,
    /// SIGSTOP: the process hangs with its sockets open.
    Pause,
    /// SIGCONT after a pause.
    Resume,
}

pub type Reply = oneshot::Sender<Result<String, String>>;

#[derive(Debug)]
pub enum JobCommand {
    Start(Reply),
    Stop(Reply),
    Restart(Reply),
    Fault(Fault, Reply),
    /// New restart settings (a reloaded spec); they apply from the next exit on.
    SetRestart(RestartSettings, Reply),
    /// Stop the process and end the job task.
    Shutdown(Reply),
}

/// The supervisor's handle on a job.
#[derive(Clone)]
pub struct JobHandle {
    pub id: u16,
    pub commands: mpsc::Sender<JobCommand>,
    pub info: watch::Receiver<JobInfo>,
}

impl JobHandle {
    /// Send a command and wait for its outcome.
    pub async fn ask(&self, make: impl FnOnce(Reply) -> JobCommand) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| format!("node {}: its job has ended", self.id))?;
        rx.await
            .map_err(|_| format!("node {}: its job ended before answering", self.id))?
    }
}

/// Start a job task for `node`; the process itself starts on the first `Start`.
pub fn spawn_job(
    node: NodeLayout,
    host: std::net::IpAddr,
    backend: Arc<dyn Backend>,
    restart: RestartSettings,
    events: mpsc::UnboundedSender<JobEvent>,
) -> JobHandle {
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let info = JobInfo {
        id: node.id,
        state: JobState::Stopped,
        pid: None,
        started_at_ms: None,
        restarts: 0,
        last_exit: None,
        reason: None,
    };
    let id = node.id;
    let (info_tx, info_rx) = watch::channel(info.clone());
    let job = Job {
        node,
        host,
        backend,
        restart,
        events,
        info,
        info_tx,
        proc: None,
        started: None,
        backoff_until: None,
        quick_deaths: VecDeque::new(),
        consecutive_quick: 0,
        kill_requested: false,
    };
    tokio::spawn(job.run(cmd_rx));
    JobHandle {
        id,
        commands: cmd_tx,
        info: info_rx,
    }
}

/// A running node: a child process, or (runtime "tasks") a task inside the supervisor.
enum Proc {
    Child(Child),
    Task(TaskNode),
}

struct Job {
    node: NodeLayout,
    host: std::net::IpAddr,
    backend: Arc<dyn Backend>,
    restart: RestartSettings,
    events: mpsc::UnboundedSender<JobEvent>,
    /// The published state; every change goes out through `info_tx`.
    info: JobInfo,
    info_tx: watch::Sender<JobInfo>,
    proc: Option<Proc>,
    /// When the current process started, for uptime and crash-loop judgement.
    started: Option<Instant>,
    backoff_until: Option<tokio::time::Instant>,
    /// Times of recent deaths that came soon after a start.
    quick_deaths: VecDeque<Instant>,
    /// Quick deaths in a row, for exponential backoff.
    consecutive_quick: u32,
    /// The current process is being killed on request (`zkherd kill`, chaos): its death is
    /// restarted at once by the policy and never counts toward backoff or a crash loop.
    kill_requested: bool,
}

impl Job {
    async fn run(mut self, mut commands: mpsc::Receiver<JobCommand>) {
        loop {
            let backoff = self.backoff_until;
            tokio::select! {
                exit = wait_proc(&mut self.proc) => {
                    if let Some(Proc::Task(mut t)) = self.proc.take() {
                        t.kill().await; // its runtime may still hold tasks
                    }
                    self.on_unplanned_exit(exit);
                }
                _ = sleep_until(backoff), if backoff.is_some() => {
                    self.backoff_until = None;
                    if let Err(e) = self.spawn(true).await {
                        self.fail(e);
                    }
                }
                cmd = commands.recv() => match cmd {
                    None => { let _ = self.stop().await; return; }
                    Some(JobCommand::Shutdown(reply)) => {
                        let r = self.stop().await;
                        let _ = reply.send(r);
                        return;
                    }
                    Some(cmd) => self.handle(cmd).await,
                }
            }
        }
    }

    async fn handle(&mut self, cmd: JobCommand) {
        let id = self.node.id;
        match cmd {
            JobCommand::Start(reply) => {
                let r = match self.info.state {
                    JobState::Running | JobState::Paused => {
                        Ok(format!("node {id} is already running"))
                    }
                    _ => {
                        self.backoff_until = None;
                        self.quick_deaths.clear();
                        self.consecutive_quick = 0;
                        self.spawn(false)
                            .await
                            .map(|pid| format!("node {id} started (pid {pid})"))
                    }
                };
                if let Err(e) = &r {
                    self.fail(e.clone());
                }
                let _ = reply.send(r);
            }
            JobCommand::Stop(reply) => {
                let _ = reply.send(self.stop().await);
            }
            JobCommand::Restart(reply) => {
                let r = match self.stop().await {
                    Ok(_) => self
                        .spawn(false)
                        .await
                        .map(|pid| format!("node {id} restarted (pid {pid})")),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            JobCommand::Fault(fault, reply) => {
                let _ = reply.send(self.fault(fault).await);
            }
            JobCommand::SetRestart(settings, reply) => {
                self.restart = settings;
                let _ = reply.send(Ok(format!(
                    "node {id}: restart policy {:?}, backoff {}-{} ms",
                    self.restart.policy,
                    self.restart.initial_backoff_ms,
                    self.restart.max_backoff_ms
                )));
            }
            JobCommand::Shutdown(_) => unreachable!("handled in run"),
        }
    }

    fn publish(&mut self) {
        self.info_tx.send_replace(self.info.clone());
    }

    fn fail(&mut self, reason: String) {
        let log_tail = log_tail(&self.node.log_file, 20);
        self.info.state = JobState::Failed;
        self.info.pid = None;
        self.info.reason = Some(reason.clone());
        self.publish();
        let _ = self.events.send(JobEvent::Failed {
            id: self.node.id,
            reason,
            log_tail,
        });
    }

    /// Spawn the node's process in its own process group, output appended to its log file.
    async fn spawn(&mut self, is_restart: bool) -> Result<u32, String> {
        let id = self.node.id;
        // A node's ports must be free before it starts; after a crash the kernel frees them at
        // once, but give a stopping process a moment.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            // A stray process of the previous run holds the port at this address or at the
            // wildcard, where a bind fails (see `ports::busy`).
            let busy = ports::busy(self.host, &self.node.ports.all());
            if busy.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                let (kind, port) = busy[0];
                let holder = ports::find_listener_at(self.host, port)
                    .map(|h| format!(" (held by pid {}: {})", h.pid, h.command))
                    .unwrap_or_default();
                return Err(format!(
                    "node {id}: {kind} port {port} is in use{holder}; free it or change the base ports"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.node.log_file)
            .map_err(|e| {
                format!(
                    "node {id}: cannot open {}: {e}",
                    self.node.log_file.display()
                )
            })?;
        if self.backend.in_process() {
            let _ = writeln!(
                log,
                "=== zkherd: starting node {id}{} in-process at {} (supervisor pid {}); its log \
                 lines go to the supervisor's output ===",
                if is_restart { " (restart)" } else { "" },
                utc_timestamp(unix_ms()),
                std::process::id()
            );
            let task = TaskNode::start(u64::from(id), &self.node.zoo_cfg)?;
            return Ok(self.started(Proc::Task(task), std::process::id(), is_restart));
        }
        let mut cmd = self
            .backend
            .command(&self.node)
            .map_err(|e| e.to_string())?;
        let _ = writeln!(
            log,
            "=== zkherd: starting node {id}{} at {} ===",
            if is_restart { " (restart)" } else { "" },
            utc_timestamp(unix_ms())
        );
        let err_log = log
            .try_clone()
            .map_err(|e| format!("node {id}: cannot open its log: {e}"))?;
        cmd.stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .process_group(0);
        let child = tokio::process::Command::from(cmd)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| {
                format!(
                    "node {id}: cannot start the {} backend: {e}",
                    self.backend.kind()
                )
            })?;
        let pid = child.id().unwrap_or(0);
        Ok(self.started(Proc::Child(child), pid, is_restart))
    }

    /// Record a node that just started.
    fn started(&mut self, proc: Proc, pid: u32, is_restart: bool) -> u32 {
        self.proc = Some(proc);
        self.started = Some(Instant::now());
        if is_restart {
            self.info.restarts += 1;
        }
        self.info.state = JobState::Running;
        self.info.pid = Some(pid);
        self.info.started_at_ms = Some(unix_ms());
        self.info.reason = None;
        self.publish();
        let _ = self.events.send(JobEvent::Spawned {
            id: self.node.id,
            pid,
            restart: is_restart,
        });
        pid
    }

    fn on_unplanned_exit(&mut self, exit: ExitInfo) {
        let id = self.node.id;
        let pid = self.info.pid.unwrap_or(0);
        self.proc = None;
        let requested = std::mem::take(&mut self.kill_requested);
        let uptime = self.started.take().map(|s| s.elapsed()).unwrap_or_default();
        self.info.pid = None;
        self.info.started_at_ms = None;
        self.info.last_exit = Some(exit.to_string());
        let tail = log_tail(&self.node.log_file, 40);
        let class = self.backend.classify_exit(exit, &tail);
        let restart = !matches!(
            (&class, self.restart.policy),
            (ExitClass::Config(_), _)
                | (_, RestartPolicy::Never)
                | (ExitClass::Clean, RestartPolicy::OnFailure)
        );
        if requested {
            // An injected crash says nothing about the node's health.
        } else if uptime >= STABLE_AFTER {
            self.consecutive_quick = 0;
        } else {
            self.consecutive_quick += 1;
            self.quick_deaths.push_back(Instant::now());
        }
        let window = Duration::from_secs(self.restart.crash_loop_window_s);
        while self
            .quick_deaths
            .front()
            .is_some_and(|t| t.elapsed() > window)
        {
            self.quick_deaths.pop_front();
        }
        if let ExitClass::Config(reason) = class {
            let _ = self.events.send(JobEvent::Exited {
                id,
                pid,
                exit,
                next: "not restarting: configuration error".into(),
            });
            self.fail(format!("{exit}: {reason}"));
            return;
        }
        if restart && self.quick_deaths.len() as u32 >= self.restart.crash_loop_limit {
            let _ = self.events.send(JobEvent::Exited {
                id,
                pid,
                exit,
                next: "not restarting: crash loop".into(),
            });
            self.fail(format!(
                "crash loop: {} deaths within {}s, each less than {}s after starting (last: {exit})",
                self.quick_deaths.len(),
                self.restart.crash_loop_window_s,
                STABLE_AFTER.as_secs()
            ));
            return;
        }
        if restart {
            let delay = if requested {
                Duration::ZERO
            } else {
                self.backoff_delay()
            };
            self.backoff_until = Some(tokio::time::Instant::now() + delay);
            self.info.state = JobState::Backoff;
            self.info.reason = None;
            self.publish();
            let _ = self.events.send(JobEvent::Exited {
                id,
                pid,
                exit,
                next: format!("restarting in {} ms", delay.as_millis()),
            });
        } else {
            self.info.state = JobState::Stopped;
            self.info.reason = Some(format!("{exit}; restart policy {:?}", self.restart.policy));
            self.publish();
            let _ = self.events.send(JobEvent::Exited {
                id,
                pid,
                exit,
                next: "not restarting (restart policy)".into(),
            });
        }
    }

    /// None after a stable run (the node is restarted at once, so a one-off crash costs only
    /// the restart), then exponential: initial × 2^(quick deaths in a row − 1), capped.
    fn backoff_delay(&self) -> Duration {
        if self.consecutive_quick == 0 {
            return Duration::ZERO;
        }
        let n = (self.consecutive_quick - 1).min(20);
        let ms = self
            .restart
            .initial_backoff_ms
            .saturating_mul(1u64 << n)
            .min(self.restart.max_backoff_ms);
        Duration::from_millis(ms)
    }

    async fn fault(&mut self, fault: Fault) -> Result<String, String> {
        let id = self.node.id;
        let (Some(pid), Some(proc)) = (self.info.pid, self.proc.as_mut()) else {
            return Err(format!(
                "node {id} has no running process (state: {:?})",
                self.info.state
            ));
        };
        // A death we cause is restarted at once and never counts as a crash (see
        // on_unplanned_exit).
        self.kill_requested = fault == Fault::Kill;
        let message = match proc {
            Proc::Task(task) => match fault {
                Fault::Kill => {
                    // The job's wait sees the node end and applies the restart policy.
                    task.kill().await;
                    format!("node {id} (in-process) killed: its runtime is shut down")
                }
                Fault::Pause => {
                    task.pause();
                    format!("node {id} (in-process) paused: its runtime's worker is blocked")
                }
                Fault::Resume => {
                    task.resume();
                    format!("node {id} (in-process) resumed")
                }
            },
            Proc::Child(_) => {
                let pgid = Pid::from_raw(pid as i32);
                let (signal, verb) = match fault {
                    Fault::Kill => (Signal::SIGKILL, "killed with SIGKILL"),
                    Fault::Pause => (Signal::SIGSTOP, "paused with SIGSTOP"),
                    Fault::Resume => (Signal::SIGCONT, "resumed with SIGCONT"),
                };
                killpg(pgid, signal).map_err(|e| format!("node {id}: {signal}: {e}"))?;
                format!("node {id} (pid {pid}) {verb}")
            }
        };
        match fault {
            Fault::Kill => {}
            Fault::Pause => self.info.state = JobState::Paused,
            Fault::Resume => self.info.state = JobState::Running,
        }
        self.publish();
        Ok(message)
    }

    /// Stop the process if any: SIGCONT, SIGTERM, grace, SIGKILL, reap, ports free.
    async fn stop(&mut self) -> Result<String, String> {
        let id = self.node.id;
        self.backoff_until = None;
        let Some(proc) = self.proc.take() else {
            if self.info.state != JobState::Failed {
                self.info.state = JobState::Stopped;
            }
            self.publish();
            return Ok(format!("node {id} is not running"));
        };
        let pid = self.info.pid.unwrap_or(0);
        self.info.state = JobState::Stopping;
        self.publish();
        let exit = match proc {
            Proc::Task(mut task) => Some(task.stop(STOP_GRACE).await),
            Proc::Child(mut child) => {
                let pgid = Pid::from_raw(pid as i32);
                let _ = killpg(pgid, Signal::SIGCONT);
                let _ = killpg(pgid, Signal::SIGTERM);
                let status = match tokio::time::timeout(STOP_GRACE, child.wait()).await {
                    Ok(s) => s.ok(),
                    Err(_) => {
                        let _ = killpg(pgid, Signal::SIGKILL);
                        child.wait().await.ok()
                    }
                };
                // Anything else left in the group (the backend's children) goes too.
                let _ = killpg(pgid, Signal::SIGKILL);
                status.map(ExitInfo::from)
            }
        };
        self.started = None;
        self.info.pid = None;
        self.info.started_at_ms = None;
        self.info.last_exit = exit.map(|e| e.to_string());
        self.info.state = JobState::Stopped;
        self.info.reason = None;
        self.publish();
        let deadline = Instant::now() + PORT_RELEASE;
        while Instant::now() < deadline && {
            let listening = ports::listening_ports_at(self.host);
            self.node
                .ports
                .all()
                .iter()
                .any(|(_, p)| listening.contains(p))
        } {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.events.send(JobEvent::Stopped { id });
        Ok(format!("node {id} stopped (pid {pid})"))
    }
}

/// Resolves when the node ends; pending forever when there is none.
async fn wait_proc(proc: &mut Option<Proc>) -> ExitInfo {
    match proc {
        Some(Proc::Child(c)) => match c.wait().await {
            Ok(s) => ExitInfo::from(s),
            Err(_) => std::future::pending().await,
        },
        Some(Proc::Task(t)) => t.exited().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Howard Hinnant's days-to-civil: days since 1970-01-01 to (year, month 1-12, day 1-31).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD HH:MM:SS.mmm UTC` for log lines (civil-from-days, no time-zone database needed).
pub fn utc_timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// The last `n` lines of a log file (reads at most the last 64 KiB).
pub fn log_tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let _ = f.seek(SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendError;
    use crate::ports::{Membership, NodePorts};
    use crate::spec::BackendKind;
    use std::process::Command;

    /// Runs a shell script as the "node"; exits are classified like Apache's (code 2 = config).
    struct ShellBackend(&'static str);

    impl Backend for ShellBackend {
        fn kind(&self) -> BackendKind {
            BackendKind::Apache
        }

        fn command(&self, _node: &NodeLayout) -> Result<Command, BackendError> {
            let mut c = Command::new("sh");
            c.arg("-c").arg(self.0);
            Ok(c)
        }
        fn classify_exit(&self, exit: ExitInfo, _tail: &str) -> ExitClass {
            match exit {
                ExitInfo::Code(0) => ExitClass::Clean,
                ExitInfo::Code(2) => ExitClass::Config("bad config".into()),
                _ => ExitClass::Crash,
            }
        }
    }

    fn layout(dir: &Path) -> NodeLayout {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let ports = NodePorts {
            id: 1,
            membership: Membership::Voter,
            host: "127.0.0.1".parse().unwrap(),
            client: free(),
            quorum: free(),
            election: free(),
            admin: None,
            metrics: None,
            secure: None,
        };
        let l = NodeLayout::new(dir, &ports);
        std::fs::create_dir_all(&l.logs_dir).unwrap();
        l
    }

    fn restart(policy: RestartPolicy, limit: u32) -> RestartSettings {
        RestartSettings {
            policy,
            initial_backoff_ms: 10,
            max_backoff_ms: 40,
            crash_loop_limit: limit,
            crash_loop_window_s: 60,
        }
    }

    async fn wait_for(h: &JobHandle, f: impl Fn(&JobInfo) -> bool) -> JobInfo {
        let mut rx = h.info.clone();
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let info = rx.borrow_and_update().clone();
                if f(&info) {
                    return info;
                }
                rx.changed().await.unwrap();
            }
        })
        .await
        .expect("state reached in time")
    }

    fn start(
        script: &'static str,
        settings: RestartSettings,
    ) -> (
        tempfile::TempDir,
        JobHandle,
        mpsc::UnboundedReceiver<JobEvent>,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let h = spawn_job(
            layout(tmp.path()),
            "127.0.0.1".parse().unwrap(),
            Arc::new(ShellBackend(script)),
            settings,
            tx,
        );
        (tmp, h, rx)
    }

    #[tokio::test]
    async fn a_node_that_keeps_crashing_is_marked_failed_with_its_last_log_lines() {
        let (_tmp, h, mut events) =
            start("echo boom; exit 1", restart(RestartPolicy::OnFailure, 3));
        h.ask(JobCommand::Start).await.unwrap();
        let info = wait_for(&h, |i| i.state == JobState::Failed).await;
        assert_eq!(
            info.restarts, 2,
            "two restarts, then the third quick death is the verdict"
        );
        assert!(info.reason.unwrap().contains("crash loop"));
        let mut tail = None;
        while let Ok(ev) = events.try_recv() {
            if let JobEvent::Failed { log_tail, .. } = ev {
                tail = Some(log_tail);
            }
        }
        assert!(tail.expect("a Failed event").contains("boom"));
    }

    #[tokio::test]
    async fn a_configuration_error_is_never_restarted() {
        let (_tmp, h, _ev) = start("exit 2", restart(RestartPolicy::Always, 5));
        h.ask(JobCommand::Start).await.unwrap();
        let info = wait_for(&h, |i| i.state == JobState::Failed).await;
        assert_eq!(info.restarts, 0);
        assert_eq!(info.last_exit.as_deref(), Some("exit 2"));
        assert!(info.reason.unwrap().contains("bad config"));
    }

    #[tokio::test]
    async fn a_clean_exit_is_restarted_only_under_policy_always() {
        let (_tmp, h, _ev) = start("exit 0", restart(RestartPolicy::OnFailure, 5));
        h.ask(JobCommand::Start).await.unwrap();
        let info = wait_for(&h, |i| {
            i.state == JobState::Stopped && i.last_exit.is_some()
        })
        .await;
        assert_eq!(info.restarts, 0);
        let (_tmp, h, _ev) = start("exit 0", restart(RestartPolicy::Always, 3));
        h.ask(JobCommand::Start).await.unwrap();
        let info = wait_for(&h, |i| i.state == JobState::Failed).await;
        assert_eq!(info.restarts, 2);
    }

    #[tokio::test]
    async fn kill_is_a_crash_that_the_policy_restarts() {
        let (_tmp, h, _ev) = start("exec sleep 600", restart(RestartPolicy::OnFailure, 5));
        h.ask(JobCommand::Start).await.unwrap();
        let first = wait_for(&h, |i| i.state == JobState::Running)
            .await
            .pid
            .unwrap();
        h.ask(|r| JobCommand::Fault(Fault::Kill, r)).await.unwrap();
        let info = wait_for(&h, |i| i.state == JobState::Running && i.pid != Some(first)).await;
        assert_eq!(info.restarts, 1);
        assert_eq!(info.last_exit.as_deref(), Some("SIGKILL"));
        h.ask(JobCommand::Shutdown).await.unwrap();
    }

    #[tokio::test]
    async fn requested_kills_never_make_a_crash_loop_or_grow_the_backoff() {
        // Limit 3 quick deaths: six kills in a row on a fresh process would be a crash loop
        // if they counted.
        let (_tmp, h, mut events) = start("exec sleep 600", restart(RestartPolicy::OnFailure, 3));
        h.ask(JobCommand::Start).await.unwrap();
        for _ in 0..6 {
            let pid = wait_for(&h, |i| i.state == JobState::Running).await.pid;
            h.ask(|r| JobCommand::Fault(Fault::Kill, r)).await.unwrap();
            wait_for(&h, |i| i.state == JobState::Running && i.pid != pid).await;
        }
        let info = h.info.borrow().clone();
        assert_eq!(info.restarts, 6);
        assert_eq!(info.state, JobState::Running);
        let mut delays = Vec::new();
        while let Ok(ev) = events.try_recv() {
            if let JobEvent::Exited { next, .. } = ev {
                delays.push(next);
            }
        }
        assert!(
            delays.len() == 6 && delays.iter().all(|d| d == "restarting in 0 ms"),
            "{delays:?}"
        );
        h.ask(JobCommand::Shutdown).await.unwrap();
    }

    #[tokio::test]
    async fn a_paused_node_still_stops_and_a_stopped_node_stays_down() {
        // The script ignores nothing; SIGTERM ends it once SIGCONT lets it run.
        let (_tmp, h, _ev) = start("exec sleep 600", restart(RestartPolicy::Always, 5));
        h.ask(JobCommand::Start).await.unwrap();
        let pid = wait_for(&h, |i| i.state == JobState::Running)
            .await
            .pid
            .unwrap();
        h.ask(|r| JobCommand::Fault(Fault::Pause, r)).await.unwrap();
        assert_eq!(h.info.borrow().state, JobState::Paused);
        let t = Instant::now();
        h.ask(JobCommand::Stop).await.unwrap();
        assert!(
            t.elapsed() < STOP_GRACE,
            "SIGCONT + SIGTERM, not the SIGKILL fallback"
        );
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let info = h.info.borrow().clone();
        assert_eq!(
            info.state,
            JobState::Stopped,
            "no restart after an asked-for stop"
        );
        assert!(h.ask(|r| JobCommand::Fault(Fault::Kill, r)).await.is_err());
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(
            utc_timestamp(951_782_400_123),
            "2000-02-29 00:00:00.123 UTC"
        );
        assert_eq!(
            utc_timestamp(1_795_323_809_397),
            "2026-11-22 05:03:29.397 UTC"
        );
    }

    #[tokio::test]
    async fn backoff_grows_exponentially_and_is_capped() {
        let tmp = tempfile::tempdir().unwrap();
        let (tx, _rx) = mpsc::unbounded_channel();
        let (info_tx, _info_rx) = watch::channel(JobInfo {
            id: 1,
            state: JobState::Stopped,
            pid: None,
            started_at_ms: None,
            restarts: 0,
            last_exit: None,
            reason: None,
        });
        let mut job = Job {
            node: layout(tmp.path()),
            host: "127.0.0.1".parse().unwrap(),
            backend: Arc::new(ShellBackend("true")),
            restart: RestartSettings {
                policy: RestartPolicy::Always,
                initial_backoff_ms: 500,
                max_backoff_ms: 3000,
                crash_loop_limit: 100,
                crash_loop_window_s: 60,
            },
            events: tx,
            info: _info_rx.borrow().clone(),
            info_tx,
            proc: None,
            started: None,
            backoff_until: None,
            quick_deaths: VecDeque::new(),
            consecutive_quick: 0,
            kill_requested: false,
        };
        let mut delays = vec![];
        for n in 0..=5 {
            job.consecutive_quick = n;
            delays.push(job.backoff_delay().as_millis());
        }
        assert_eq!(delays, vec![0, 500, 1000, 2000, 3000, 3000]);
    }
}
