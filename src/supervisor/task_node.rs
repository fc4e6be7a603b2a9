//! A builtin node run in-process (`runtime = "tasks"`, `up --in-process`): the same server a
//! `zkherd node` process runs, on a one-worker tokio runtime of its own inside the supervisor.
//!
//! The faults keep their process meaning:
//! - kill: the node's runtime is shut down; every task of the node (openraft's included) is
//!   dropped at once and its sockets close, as when a process dies. Nothing is flushed beyond
//!   what the node already made durable.
//! - pause: a task that blocks the runtime's only worker thread until resume. Timers, sockets
//!   and Raft all stop, while the kernel keeps accepting connections on the node's ports: what
//!   SIGSTOP does to a process.
//! - stop: the server's own graceful shutdown, then the runtime is shut down.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use crate::backend::ExitInfo;
use crate::server::{self, config::ZooCfg};

/// Blocks a runtime's worker while paused.
#[derive(Default)]
struct Gate {
    paused: Mutex<bool>,
    wake: Condvar,
}

impl Gate {
    fn set(&self, paused: bool) {
        if let Ok(mut p) = self.paused.lock() {
            *p = paused;
        }
        self.wake.notify_all();
    }

    fn block_while_paused(&self) {
        let Ok(mut p) = self.paused.lock() else {
            return;
        };
        while *p {
            p = match self.wake.wait(p) {
                Ok(p) => p,
                Err(_) => return,
            };
        }
    }
}

pub struct TaskNode {
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    /// How the server ended, and why (empty for a clean end).
    done: oneshot::Receiver<(ExitInfo, String)>,
    gate: Arc<Gate>,
    /// Set before a kill: the node's connections then close like a dead process's.
    killed: Arc<AtomicBool>,
}

impl TaskNode {
    /// Start node `id` from its zoo.cfg. A config the server rejects still "starts": the node
    /// exits at once with code 2, as `zkherd node` would, so the job classifies it alike.
    pub fn start(id: u64, zoo_cfg: &Path) -> Result<TaskNode, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("zkherd-node{id}"))
            .enable_all()
            .build()
            .map_err(|e| format!("node {id}: cannot create its runtime: {e}"))?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel();
        let cfg = ZooCfg::load(zoo_cfg);
        let killed = Arc::new(AtomicBool::new(false));
        let k = killed.clone();
        runtime.spawn(async move {
            let exit = match cfg {
                Err(e) => {
                    tracing::error!("node {id}: invalid config, exiting: {e}");
                    (ExitInfo::Code(2), e.to_string())
                }
                Ok(cfg) => match server::run_killable(
                    cfg,
                    async {
                        let _ = stop_rx.await;
                    },
                    k,
                )
                .await
                {
                    Ok(()) => (ExitInfo::Code(0), String::new()),
                    Err(e) => {
                        tracing::error!("node {id}: {e}");
                        (ExitInfo::Code(e.exit_code()), e.to_string())
                    }
                },
            };
            let _ = done_tx.send(exit);
        });
        Ok(TaskNode {
            runtime: Some(runtime),
            stop: Some(stop_tx),
            done: done_rx,
            gate: Arc::default(),
            killed,
        })
    }

    /// Resolves when the node has ended; a killed node reads as SIGKILL.
    pub async fn exited(&mut self) -> ExitInfo {
        match (&mut self.done).await {
            Ok((e, _)) => e,
            Err(_) => ExitInfo::Signal(Signal::SIGKILL as i32),
        }
    }

    /// The exit and its reason, if the node has ended by itself.
    pub fn try_exited(&mut self) -> Option<(ExitInfo, String)> {
        self.done.try_recv().ok()
    }

    pub fn pause(&self) {
        if let Some(rt) = &self.runtime {
            self.gate.set(true);
            let gate = self.gate.clone();
            rt.spawn(async move { gate.block_while_paused() });
        }
    }

    pub fn resume(&self) {
        self.gate.set(false);
    }

    /// Drop every task of the node, as a process dies; returns once the runtime is gone.
    pub async fn kill(&mut self) {
        self.killed.store(true, Ordering::Relaxed);
        if let Some(rt) = self.runtime.take() {
            let shut = tokio::task::spawn_blocking(move || {
                rt.shutdown_timeout(Duration::from_secs(5));
            });
            // A paused worker must be let go to be shut down; the shutdown is already
            // signalled, so it drops the node's tasks instead of running them on.
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.gate.set(false);
            let _ = shut.await;
        }
    }

    /// Graceful stop within `grace`, else a kill (which reads as SIGKILL).
    pub async fn stop(&mut self, grace: Duration) -> ExitInfo {
        self.resume();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let exit = match tokio::time::timeout(grace, &mut self.done).await {
            Ok(Ok((e, _))) => e,
            _ => ExitInfo::Signal(Signal::SIGKILL as i32),
        };
        self.kill().await;
        exit
    }
}

impl Drop for TaskNode {
    fn drop(&mut self) {
        self.gate.set(false);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
