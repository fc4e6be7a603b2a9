//! The builtin ZooKeeper-compatible server. It depends on nothing else in the crate, so it could
//! become a crate of its own.
//!
//! The write path, one stage per module: [`conn`] decodes a request → [`core`] stamps it into a
//! [`tree::Entry`] (time, session, auth ids, zxid) → [`persist`] makes it durable →
//! [`tree::State::apply`] runs it deterministically → [`watch`] turns its events into
//! notifications → the reply goes out after them, in the connection's arrival order.
//! [`fourlw`] answers four-letter words and `admin` the AdminServer's and Prometheus's HTTP
//! requests (over [`http`]); [`config`] reads zoo.cfg.

mod admin;
pub mod config;
pub mod conn;
pub mod consensus;
pub mod core;
pub mod dynconfig;
pub(crate) mod ensemble;
pub mod fourlw;
pub mod http;
pub mod persist;
pub mod proto;
pub mod sasl;
pub mod tls;
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
    #[error("{path}: {message}")]
    Quorum { path: String, message: String },
    #[error("{path}: TLS: {source}")]
    Tls { path: String, source: tls::TlsError },
    #[error("replication storage in {path}: {source}")]
    Raft {
        path: String,
        source: std::io::Error,
    },
}

impl ServerError {
    /// The exit code a node process ends with, in Apache's meaning: 2 = bad configuration,
    /// 3 = data directory unusable, 14 = a port cannot be bound.
    pub fn exit_code(&self) -> i32 {
        match self {
            ServerError::Config(_) | ServerError::Quorum { .. } | ServerError::Tls { .. } => 2,
            ServerError::Persist(_) | ServerError::Raft { .. } => 3,
            ServerError::Bind { .. } => 14,
        }
    }
}

/// Run a server from `cfg` until `shutdown` resolves: standalone with one `server.N` line (or
/// none), a Raft ensemble member otherwise.
pub async fn run(cfg: ZooCfg, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    run_killable(cfg, shutdown, Arc::default()).await
}

/// [`run`] for a node that may be killed in-process (its future dropped, its runtime shut
/// down): set `killed` first, so its peer connections close as a dead process's would (with
/// no goodbye) and the other members elect a new leader at once.
pub async fn run_killable(
    cfg: ZooCfg,
    shutdown: impl Future<Output = ()>,
    killed: Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), ServerError> {
    for k in &cfg.unknown {
        tracing::warn!("{}: unknown key {k}, ignored", cfg.path.display());
    }
    for k in ["ssl.protocol", "ssl.enabledProtocols", "ssl.ciphersuites"] {
        if cfg.raw.contains_key(k) || cfg.raw.contains_key(&format!("zookeeper.{k}")) {
            tracing::warn!(
                "{}: {k} is not applied; the secure port offers rustls' safe defaults (TLS 1.2 \
                 and 1.3, their AEAD suites)",
                cfg.path.display()
            );
        }
    }
    if cfg.is_standalone() {
        run_standalone(cfg, shutdown).await
    } else {
        ensemble::run(cfg, shutdown, killed).await
    }
}

/// Listen on the client port, the secure client port (TLS), and the AdminServer and metrics
/// ports, as configured, and start accepting connections. Aborting the task stops all of them.
async fn listen(
    cfg: &Arc<ZooCfg>,
    tx: mpsc::Sender<conn::CoreMsg>,
) -> Result<tokio::task::JoinHandle<()>, ServerError> {
    let bind = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })
    };
    let plain = match cfg.has_client_port() {
        true => Some(bind(cfg.client_addr()).await?),
        false => None,
    };
    let secure = match &cfg.tls {
        None => None,
        Some(t) => {
            let config = tls::server_config(&t.key_store, t.trust_store.as_ref(), t.client_auth)
                .map_err(|e| ServerError::Tls {
                    path: cfg.path.display().to_string(),
                    source: e,
                })?;
            let accept = conn::TlsAccept {
                acceptor: tokio_rustls::TlsAcceptor::from(config),
                asks_certificates: t.client_auth != tls::ClientAuth::None,
                x509: cfg.auth_schemes.contains(&t.auth_provider),
                super_user: t.x509_super_user.clone(),
            };
            let addr = std::net::SocketAddr::new(t.address, t.port);
            Some((bind(addr).await?, accept))
        }
    };
    let http: Vec<_> = admin::listen(cfg, tx.clone())
        .await?
        .into_iter()
        .map(ensemble::AbortOnDrop)
        .collect();
    let limits = conn::ConnLimits::new(cfg.max_client_cnxns);
    let max_buffer = cfg.max_buffer;
    // Connection ids are unique across both ports.
    let next = Arc::new(std::sync::atomic::AtomicU64::new(1));
    Ok(tokio::spawn(async move {
        let _http = http;
        let mut loops = tokio::task::JoinSet::new();
        if let Some(l) = plain {
            loops.spawn(conn::accept_loop(
                l,
                tx.clone(),
                limits.clone(),
                max_buffer,
                None,
                next.clone(),
            ));
        }
        if let Some((l, accept)) = secure {
            loops.spawn(conn::accept_loop(
                l,
                tx,
                limits,
                max_buffer,
                Some(accept),
                next,
            ));
        }
        while loops.join_next().await.is_some() {}
    }))
}

async fn run_standalone(
    cfg: ZooCfg,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let opts = cfg.tree_options();
    let opts2 = opts.clone();
    let (log, recovered) = Log::open(
        &cfg.data_dir.join("zkherd"),
        &cfg.data_log_dir.join("zkherd"),
        cfg.force_sync,
        move || tree::State::new(opts.clone()),
        move |b| persist::decode_snapshot(b, opts2.clone()),
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
    let cfg = Arc::new(cfg);
    let (tx, mut rx) = mpsc::channel(4096);
    let accept = listen(&cfg, tx).await?;
    let _abort_accept = ensemble::AbortOnDrop(accept);
    let mut core = core::Core::new(cfg.clone(), recovered.state, core::Backing::Standalone(log));
    let mut expiry = tokio::time::interval(tick_interval(&cfg));
    let mut reaper = tokio::time::interval(reap_interval(&cfg));
    let purge_every = Duration::from_secs(cfg.purge_interval_h.max(1) * 3600);
    let mut purge =
        tokio::time::interval_at(tokio::time::Instant::now() + purge_every, purge_every);
    tracing::info!("serving on {} (standalone)", cfg.client_addr());
    tokio::pin!(shutdown);
    let result = loop {
        let step = tokio::select! {
            msg = rx.recv() => match msg {
                Some(m) => handle_batch(&mut core, m, &mut rx),
                None => break Ok(()),
            },
            _ = expiry.tick() => core.expire_sessions().and_then(|_| core.flush()),
            _ = reaper.tick() => core.reap().and_then(|_| core.flush()),
            _ = purge.tick(), if cfg.purge_interval_h > 0 => {
                if let core::Backing::Standalone(log) = &mut core.backing {
                    let n = log.purge(cfg.snap_retain_count);
                    tracing::info!("autopurge removed {n} files");
                }
                Ok(())
            }
            _ = &mut shutdown => break Ok(()),
        };
        if let Err(e) = step {
            tracing::error!("stopping: {e}");
            break Err(ServerError::Persist(e));
        }
    };
    if let core::Backing::Standalone(log) = &mut core.backing {
        let _ = log.sync();
    }
    result
}

/// How often sessions are checked for expiry (and, in an ensemble, touches sent): half a tick.
fn tick_interval(cfg: &ZooCfg) -> Duration {
    Duration::from_millis(u64::from(cfg.tick_time / 2).max(10))
}

fn reap_interval(cfg: &ZooCfg) -> Duration {
    let ms = cfg
        .raw
        .get("znode.container.checkIntervalMs")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(60_000)
        .max(10);
    Duration::from_millis(ms)
}

/// Handle one client message and whatever else is already queued, then sync once.
fn handle_batch(
    core: &mut core::Core,
    first: conn::CoreMsg,
    rx: &mut mpsc::Receiver<conn::CoreMsg>,
) -> Result<(), PersistError> {
    core.handle(first)?;
    for _ in 0..1024 {
        match rx.try_recv() {
            Ok(m) => core.handle(m)?,
            Err(_) => break,
        }
    }
    core.flush()
}
