//! `zkherd wait`: block until the ensemble really serves.
//!
//! Ready means: exactly one leader; every voter follows it in the same epoch; every observer
//! observes; the leader's `mntr` counts voters − 1 synced followers; and a write transaction
//! commits. The write is a `multi` holding one version check of `/` with version −1: it goes
//! through the leader's proposal pipeline and a quorum commit and consumes a zxid like any write,
//! but changes no znode.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;

use super::Global;
use crate::spec::EnsembleSpec;
use crate::status::{self, EnsembleStatus, Role};
use crate::supervisor::job::JobState;

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Give up after this many seconds (exit 1).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    timeout: u64,
}

pub async fn run(g: &Global, a: WaitArgs) -> Result<u8> {
    let spec = super::resolve_cluster(g)?;
    let start = Instant::now();
    match wait_ready(&spec, Duration::from_secs(a.timeout), |_| {}).await {
        Ok(s) => {
            println!(
                "ready after {:.2}s: leader node {}, epoch {}; connect: {}",
                start.elapsed().as_secs_f64(),
                s.leader.map_or("- (standalone)".into(), |l| l.to_string()),
                s.epoch.map_or("-".into(), |e| e.to_string()),
                s.connect_string
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("zkherd: {e}");
            Ok(1)
        }
    }
}

/// Why waiting ended without a ready ensemble.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("not ready after {timeout:?}: {reason}\n{table}")]
    Timeout {
        timeout: Duration,
        reason: String,
        table: String,
    },
    #[error("node {id} failed: {reason}")]
    NodeFailed { id: u16, reason: String },
    #[error("the supervisor is gone: {0}")]
    SupervisorGone(String),
}

/// Poll until ready or `timeout`; `progress` sees every intermediate status.
pub async fn wait_ready(
    spec: &EnsembleSpec,
    timeout: Duration,
    mut progress: impl FnMut(&EnsembleStatus),
) -> Result<EnsembleStatus, WaitError> {
    let deadline = Instant::now() + timeout;
    let mut reason = "no status yet".to_string();
    let mut last: Option<EnsembleStatus> = None;
    while Instant::now() < deadline {
        let jobs = super::supervisor_jobs(&spec.dir)
            .await
            .map_err(|e| WaitError::SupervisorGone(format!("{e:#}")))?;
        if let Some((_, jobs)) = &jobs {
            if let Some(j) = jobs.iter().find(|j| j.state == JobState::Failed) {
                return Err(WaitError::NodeFailed {
                    id: j.id,
                    reason: j.reason.clone().unwrap_or_default(),
                });
            }
        }
        let s = status::collect(spec, jobs, Duration::from_secs(1)).await;
        progress(&s);
        if s.fully_synced() {
            let left = deadline.saturating_duration_since(Instant::now());
            let tls = secure_only_identity(spec);
            match write_probe(
                &s.connect_string,
                tls.as_ref(),
                left.min(Duration::from_secs(10)),
            )
            .await
            {
                Ok(()) => return Ok(s),
                Err(e) => reason = format!("quorum looks formed but a write failed: {e}"),
            }
        } else {
            reason = describe_not_ready(&s);
        }
        last = Some(s);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(WaitError::Timeout {
        timeout,
        reason,
        table: last.map(|s| status::render_table(&s)).unwrap_or_default(),
    })
}

fn describe_not_ready(s: &EnsembleStatus) -> String {
    if s.leader.is_none() && s.voters > 1 {
        let starting: Vec<String> = s
            .nodes
            .iter()
            .map(|n| format!("node {} {}", n.id, n.role.as_str()))
            .collect();
        return format!("no leader elected ({})", starting.join(", "));
    }
    let behind: Vec<String> = s
        .nodes
        .iter()
        .filter(|n| {
            !matches!(
                n.role,
                Role::Leader | Role::Follower | Role::Observer | Role::Standalone
            ) || n.epoch > s.epoch
        })
        .map(|n| format!("node {} {}", n.id, n.role.as_str()))
        .collect();
    if !behind.is_empty() {
        return format!(
            "not every node serves in the leader's epoch ({})",
            behind.join(", ")
        );
    }
    let synced = s
        .leader
        .and_then(|l| s.node(l))
        .and_then(|n| n.synced_followers);
    format!(
        "the leader reports {} synced followers of {}",
        synced.map_or("?".into(), |n| n.to_string()),
        s.voters.saturating_sub(1)
    )
}

/// The CA, client certificate and key (PEM text) a TLS-only cluster is reached with: the ones
/// `up --tls` minted.
pub fn secure_only_identity(spec: &crate::spec::EnsembleSpec) -> Option<(String, String, String)> {
    if !spec.security.secure_only {
        return None;
    }
    minted_identity(spec)
}

/// The CA, client certificate and key (PEM text) `up --tls` minted for this cluster.
pub fn minted_identity(spec: &crate::spec::EnsembleSpec) -> Option<(String, String, String)> {
    if !spec.security.tls {
        return None;
    }
    crate::server::tls::Minted::in_dir(&spec.dir.join(crate::render::TLS_DIR))
        .pem_identity()
        .ok()
}

/// Commit one write transaction (a `multi` with a version check of `/`) through a real client;
/// over TLS with `tls` (CA, certificate, key).
pub async fn write_probe(
    connect: &str,
    tls: Option<&(String, String, String)>,
    timeout: Duration,
) -> Result<(), String> {
    let work = async {
        let connector = zookeeper_client::Client::connector()
            .with_session_timeout(Duration::from_secs(6))
            .with_connection_timeout(Duration::from_secs(2));
        let client = match tls {
            None => connector.connect(connect).await,
            Some((ca, cert, key)) => {
                let options = zookeeper_client::TlsOptions::new()
                    .with_pem_ca(ca)
                    .and_then(|o| o.with_pem_identity(cert, key))
                    .map_err(|e| format!("the minted TLS material: {e}"))?;
                connector.with_tls(options).secure_connect(connect).await
            }
        }
        .map_err(|e| format!("connect to {connect}: {e}"))?;
        let mut multi = client.new_multi_writer();
        multi
            .add_check_version("/", -1)
            .map_err(|e| e.to_string())?;
        multi.commit().await.map_err(|e| format!("write: {e}"))?;
        Ok::<_, String>(())
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}
