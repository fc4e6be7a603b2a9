//! The builtin ZooKeeper-compatible server. It depends on nothing else in the crate, so it could
//! become a crate of its own.
//!
//! The write path, one stage per module: [`conn`] decodes a request → [`core`] stamps it into a
//! [`tree::Entry`] (time, session, auth ids, zxid) → [`persist`] makes it durable →
//! [`tree::State::apply`] runs it deterministically → [`watch`] turns its events into
//! notifications → the reply goes out after them, in the connection's arrival order.
//! [`fourlw`] answers four-letter words; [`config`] reads zoo.cfg.

pub mod config;
pub mod conn;
pub mod consensus;
pub mod core;
pub mod fourlw;
pub mod persist;
pub mod proto;
pub mod tree;
pub mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use config::ZooCfg;
use persist::{Log, PersistError};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}: a quorum of builtin servers is not available yet; run one node (standalone)")]
    QuorumUnsupported(String),
}

/// Run a standalone server from `cfg` until `shutdown` resolves.
pub async fn run(cfg: ZooCfg, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    if !cfg.is_standalone() {
        return Err(ServerError::QuorumUnsupported(
            cfg.path.display().to_string(),
        ));
    }
    for k in &cfg.unknown {
        tracing::warn!("{}: unknown key {k}, ignored", cfg.path.display());
    }
    let ext = cfg.extended_types;
    let sup = cfg.super_digest.clone();
    let sup2 = sup.clone();
    let (log, recovered) = Log::open(
        &cfg.data_dir.join("zkherd"),
        &cfg.data_log_dir.join("zkherd"),
        cfg.force_sync,
        move || tree::State::new(ext, sup.clone()),
        move |b| persist::decode_snapshot(b, ext, sup2.clone()),
    )?;
    for w in &recovered.warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(
        "recovered zxid {:#x} ({} log entries replayed, {} sessions)",
        recovered.state.last_zxid,
        recovered.replayed,
        recovered.state.sessions.len()
    );
    let addr = cfg.client_addr();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let cfg = Arc::new(cfg);
    let (tx, mut rx) = mpsc::channel(4096);
    let accept = tokio::spawn(conn::accept_loop(
        listener,
        tx.clone(),
        conn::ConnLimits::new(cfg.max_client_cnxns),
        cfg.max_buffer,
    ));
    drop(tx);
    let mut core = core::Core::new(cfg.clone(), recovered.state, log);
    let mut expiry =
        tokio::time::interval(Duration::from_millis(u64::from(cfg.tick_time / 2).max(10)));
    let reap_ms = cfg
        .raw
        .get("znode.container.checkIntervalMs")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(60_000)
        .max(10);
    let mut reaper = tokio::time::interval(Duration::from_millis(reap_ms));
    let purge_every = Duration::from_secs(cfg.purge_interval_h.max(1) * 3600);
    let mut purge =
        tokio::time::interval_at(tokio::time::Instant::now() + purge_every, purge_every);
    tracing::info!("serving on {addr} (standalone)");
    tokio::pin!(shutdown);
    let result = loop {
        let step = tokio::select! {
            msg = rx.recv() => match msg {
                Some(m) => (|| {
                    core.handle(m)?;
                    // Group commit: take what is already queued, then sync once.
                    for _ in 0..1024 {
                        match rx.try_recv() {
                            Ok(m) => core.handle(m)?,
                            Err(_) => break,
                        }
                    }
                    core.flush()
                })(),
                None => break Ok(()),
            },
            _ = expiry.tick() => core.expire_sessions().and_then(|_| core.flush()),
            _ = reaper.tick() => core.reap().and_then(|_| core.flush()),
            _ = purge.tick(), if cfg.purge_interval_h > 0 => {
                let n = core.log.purge(cfg.snap_retain_count);
                tracing::info!("autopurge removed {n} files");
                Ok(())
            }
            _ = &mut shutdown => break Ok(()),
        };
        if let Err(e) = step {
            tracing::error!("stopping: {e}");
            break Err(ServerError::Persist(e));
        }
    };
    accept.abort();
    let _ = core.log.sync();
    result
}
