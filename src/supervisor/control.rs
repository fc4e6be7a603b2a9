//! The control socket: one JSON request line in, one JSON response line out.
//!
//! The supervisor listens on `<cluster dir>/supervisor.sock`; `zkherd status|stop|kill|down|…`
//! connect, ask, and print. Requests are small and answered in order by the supervisor's loop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::job::{Fault, JobInfo};

/// Which node a command is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Node(u16),
    /// Whichever node leads when the command arrives.
    Leader,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeAction {
    Start,
    Stop,
    Restart,
    Kill,
    Pause,
    Resume,
}

impl NodeAction {
    pub fn fault(self) -> Option<Fault> {
        match self {
            NodeAction::Kill => Some(Fault::Kill),
            NodeAction::Pause => Some(Fault::Pause),
            NodeAction::Resume => Some(Fault::Resume),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "lowercase")]
pub enum Request {
    /// The supervisor's pid and every job's info.
    Status,
    Node {
        action: NodeAction,
        target: Target,
    },
    /// Stop every node, then exit. The reply comes after everything is stopped.
    Down,
    /// New restart settings for every node, from a reloaded spec (`zkherd apply`).
    SetRestart {
        restart: crate::spec::RestartSettings,
    },
    /// Supervise the nodes of this (resized) spec: start new ones, stop and drop those it no
    /// longer has (`zkherd scale`, after or before the reconfig that moves the membership).
    Resize {
        spec: Box<crate::spec::EnsembleSpec>,
    },
    /// Link faults (`[network] faults`): clear all first when `heal`, then set each of `set`
    /// (a clear fault removes one); answers the faults now in force. Empty and false: ask.
    Net {
        #[serde(default)]
        set: Vec<super::netfault::LinkInfo>,
        #[serde(default)]
        heal: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "lowercase")]
pub enum Response {
    Status {
        pid: u32,
        jobs: Vec<JobInfo>,
    },
    Links {
        links: Vec<super::netfault::LinkInfo>,
    },
    Done {
        message: String,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no supervisor is running for this cluster (no answer on {path}: {source})")]
    NotRunning {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("supervisor at {path}: {message}")]
    Protocol { path: PathBuf, message: String },
    #[error("supervisor at {path} did not answer within {timeout:?}")]
    Timeout { path: PathBuf, timeout: Duration },
}

/// Send one request and read the response.
pub async fn request(
    socket: &Path,
    req: &Request,
    timeout: Duration,
) -> Result<Response, ControlError> {
    let work = async {
        let stream =
            UnixStream::connect(socket)
                .await
                .map_err(|source| ControlError::NotRunning {
                    path: socket.to_path_buf(),
                    source,
                })?;
        let proto = |message: String| ControlError::Protocol {
            path: socket.to_path_buf(),
            message,
        };
        // A reset before any answer: the listening socket closed with this connection still
        // queued (the supervisor died just now), which is as good as no supervisor.
        let io_err = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                ControlError::NotRunning {
                    path: socket.to_path_buf(),
                    source: e,
                }
            }
            _ => proto(e.to_string()),
        };
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_string(req).expect("request serializes");
        line.push('\n');
        write.write_all(line.as_bytes()).await.map_err(io_err)?;
        let mut reader = BufReader::new(read);
        let mut answer = String::new();
        reader.read_line(&mut answer).await.map_err(io_err)?;
        if answer.is_empty() {
            return Err(proto("closed the connection without answering".into()));
        }
        serde_json::from_str(&answer).map_err(|e| proto(format!("bad response: {e}")))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ControlError::Timeout {
            path: socket.to_path_buf(),
            timeout,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_readable_wire_form() {
        let r = Request::Node {
            action: NodeAction::Kill,
            target: Target::Leader,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"request":"node","action":"kill","target":"leader"}"#);
        let r = Request::Node {
            action: NodeAction::Pause,
            target: Target::Node(2),
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"request":"node","action":"pause","target":{"node":2}}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
    }
}
