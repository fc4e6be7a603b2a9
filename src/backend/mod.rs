//! How one node is launched and how its exits are judged.
//!
//! A [`Backend`] turns a rendered instance directory (`conf/zoo.cfg`, `data/myid`) into a
//! command that runs the node in the foreground. The supervisor spawns that command in its own
//! process group and owns signals and reaping, so every backend gets the same stop, kill and
//! pause behaviour. Backends differ in what they need installed and in what their exit codes mean.

use std::fmt;
use std::process::Command;

use crate::render::NodeLayout;
use crate::spec::{BackendKind, EnsembleSpec};

pub mod apache;
pub mod builtin;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    NotInstalled(String),
}

/// What an exit means for the restart policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitClass {
    /// Exit code 0: the node finished on its own.
    Clean,
    /// A crash or a signal: worth restarting.
    Crash,
    /// The node cannot start as configured (bad config, data dir, port in use): restarting would
    /// only fail again. The string says why and what to do.
    Config(String),
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExitInfo {
    Code(i32),
    Signal(i32),
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitInfo::Code(c) => write!(f, "exit {c}"),
            ExitInfo::Signal(s) => {
                let name = nix::sys::signal::Signal::try_from(*s)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|_| format!("signal {s}"));
                write!(f, "{name}")
            }
        }
    }
}

impl From<std::process::ExitStatus> for ExitInfo {
    fn from(s: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (s.code(), s.signal()) {
            (Some(c), _) => ExitInfo::Code(c),
            (None, Some(sig)) => ExitInfo::Signal(sig),
            (None, None) => ExitInfo::Code(-1),
        }
    }
}

/// A way of running ZooKeeper nodes.
pub trait Backend: Send + Sync {
    fn kind(&self) -> BackendKind;

    /// The command that runs `node` in the foreground. Its stdout and stderr go to the node's log.
    fn command(&self, node: &NodeLayout) -> Result<Command, BackendError>;
    /// Judge an exit, given the last lines the node wrote.
    fn classify_exit(&self, exit: ExitInfo, log_tail: &str) -> ExitClass;
    /// Nodes run as tasks inside the supervisor rather than as processes.
    fn in_process(&self) -> bool {
        false
    }
}

/// The backend a spec asks for.
pub fn for_spec(spec: &EnsembleSpec) -> Result<Box<dyn Backend>, BackendError> {
    match spec.backend {
        BackendKind::Apache => Ok(Box::new(apache::Apache::locate(&spec.apache)?)),
        BackendKind::Builtin => Ok(Box::new(
            builtin::Builtin::locate()?.in_process(spec.runtime == crate::spec::NodeRuntime::Tasks),
        )),
    }
}
