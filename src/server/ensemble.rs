//! Running as a member of a Raft ensemble: storage, the Raft node, its listeners on the quorum
//! and election ports, the proposer (which keeps writes in order and forwards them to the
//! leader), session touches, and the core loop.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use openraft::{BasicNode, ChangeMembers};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::config::ZooCfg;
use super::consensus::log_store::LogStore;
use super::consensus::network::{self, ForwardedReconfig, Hooks, Network, Peer, Raft, Reversions};
use super::consensus::state_machine::{SmData, SmEvent, StateMachine};
use super::consensus::{Proposal, ReconfigJob};
use super::core::{Backing, Core, Ensemble};
use super::dynconfig::{DynConfig, Member};
use super::persist;
use super::proto::ErrorCode;
use super::tree::{AuthId, Entry, Txn};
use super::{handle_batch, listen, reap_interval, tick_interval, ServerError};

/// Raft timing from zoo.cfg: the election timeout is a thirtieth of ZooKeeper's
/// `syncLimit × tickTime` (333 ms at the defaults, clamped to 300 ms - 5 s), so a hung leader is
/// replaced long before Apache would notice (it waits the whole syncLimit × tickTime), yet a
/// loaded 2-core machine does not see spurious elections; heartbeats go four times per
/// election timeout.
fn raft_config(cfg: &ZooCfg) -> openraft::Config {
    let min = (u64::from(cfg.tick_time) * u64::from(cfg.sync_limit) / 30).clamp(300, 5000);
    openraft::Config {
        cluster_name: "zkherd".into(),
        heartbeat_interval: min / 4,
        election_timeout_min: min,
        election_timeout_max: min * 2,
        // zoo.cfg's snapCount: a snapshot every snapCount entries, and log entries the
        // snapshot covers are purged (keeping up to snapCount for lagging followers), so the
        // log held in memory stays bounded. A follower further behind catches up by snapshot.
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snap_count),
        max_in_snapshot_log_to_keep: cfg.snap_count.min(1000),
        // A member whose data dir was wiped comes back with an empty log. openraft's replication
        // progress never moves backwards (allow_log_reversion stays off): the leader's network
        // layer catches the wiped member (`Reversions`), and the reconciler removes it and
        // adds it back as a new member, caught up by snapshot. Until then it refuses votes, so
        // it never votes twice in a term.
        // A member that was paused or cut off asks first whether it could win, so it does
        // not bump the term and depose a healthy leader when it comes back.
        enable_pre_vote: Some(true),
        ..Default::default()
    }
}

pub async fn run(
    cfg: ZooCfg,
    shutdown: impl Future<Output = ()>,
    killed: Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), ServerError> {
    let path = cfg.path.display().to_string();
    let quorum_err = |message: String| ServerError::Quorum {
        path: path.clone(),
        message,
    };
    let me = cfg
        .myid
        .ok_or_else(|| quorum_err("myid is missing for a quorum member".into()))?;
    let mine = cfg
        .servers
        .iter()
        .find(|s| s.id == me)
        .cloned()
        .ok_or_else(|| quorum_err(format!("myid is {me} but there is no server.{me} line")))?;
    let addr_of =
        |s: &super::config::ServerLine| format!("{}:{}:{}", s.host, s.quorum_port, s.election_port);
    let voters: BTreeMap<u64, BasicNode> = cfg
        .servers
        .iter()
        .filter(|s| !s.observer)
        .map(|s| (s.id, BasicNode { addr: addr_of(s) }))
        .collect();
    if voters.is_empty() {
        return Err(quorum_err(
            "every server line is an observer; at least one must be a voter".into(),
        ));
    }
    let dir = cfg.data_dir.join("zkherd-raft");
    let raft_err = |source| ServerError::Raft {
        path: dir.display().to_string(),
        source,
    };
    let opening = std::time::Instant::now();
    let (log, warnings) = LogStore::open(&dir.join("raft"), cfg.force_sync).map_err(raft_err)?;
    tracing::info!("Raft log opened in {} ms", opening.elapsed().as_millis());
    for w in warnings {
        tracing::warn!("{w}");
    }
    let (sm_tx, mut sm_rx) = mpsc::unbounded_channel();
    let (sm, initial) =
        StateMachine::open(&dir.join("sm"), cfg.tree_options(), sm_tx.clone()).map_err(raft_err)?;
    let sm_data = sm.data.clone();
    let config = Arc::new(
        raft_config(&cfg)
            .validate()
            .map_err(|e| quorum_err(format!("Raft timing: {e}")))?,
    );
    let network = Network {
        dying: killed,
        reversions: Arc::default(),
        overrides: Arc::new(cfg.proxies.clone()),
    };
    let (lost_tx, lost_rx) = mpsc::unbounded_channel();
    network.reversions.notify_to(lost_tx);
    let (forward_tx, forward_rx) = mpsc::unbounded_channel();
    let published = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Dropping this node's future (an in-process kill) or stopping it marks it dying, so its
    // connections close as a crashed process's would.
    let _dying = SetOnDrop(network.dying.clone());
    let raft: Raft = Raft::new(me, config.clone(), network.clone(), log, sm)
        .await
        .map_err(|e| quorum_err(format!("Raft failed to start: {e}")))?;
    tracing::info!(
        "Raft started {} ms after opening the log",
        opening.elapsed().as_millis()
    );

    let peer_addr = |port: u16| -> Result<std::net::SocketAddr, ServerError> {
        let addr: std::net::SocketAddr = format!("{}:{port}", mine.host).parse().map_err(|_| {
            quorum_err(format!("server.{me}: {:?} is not an IP address", mine.host))
        })?;
        Ok(if cfg.quorum_listen_on_all_ips {
            let any = match addr {
                std::net::SocketAddr::V4(_) => std::net::IpAddr::from([0u8; 4]),
                std::net::SocketAddr::V6(_) => std::net::IpAddr::from([0u16; 8]),
            };
            std::net::SocketAddr::new(any, port)
        } else {
            addr
        })
    };
    let (qaddr, eaddr) = (peer_addr(mine.quorum_port)?, peer_addr(mine.election_port)?);
    let bind = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })
    };
    let quorum = bind(qaddr).await?;
    let election = bind(eaddr).await?;
    tracing::info!("node {me}: quorum port {qaddr}, election port {eaddr}");
    let (touch_tx, mut touch_rx) = mpsc::unbounded_channel();
    let contact = Arc::new(network::LeaderContact::new(Duration::from_millis(
        config.election_timeout_min,
    )));
    // Every task of this node belongs to this set: when the node stops, or its future is
    // dropped (an in-process kill), all of them stop and every Raft handle is released.
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(network::serve(
        quorum,
        raft.clone(),
        Hooks {
            touches: Some(touch_tx),
            my_id: me,
            contact: contact.clone(),
            reconfigs: Some(forward_tx),
            published: published.clone(),
        },
    ));
    tasks.spawn(network::serve(
        election,
        raft.clone(),
        Hooks {
            touches: None,
            my_id: me,
            contact: contact.clone(),
            reconfigs: None,
            published: published.clone(),
        },
    ));

    let peers = Peers {
        addrs: cfg.servers.iter().map(|s| (s.id, addr_of(s))).collect(),
        proxies: cfg.proxies.clone(),
    };
    if !mine.observer && !raft.is_initialized().await.unwrap_or(true) {
        let wait = Duration::from_millis(config.election_timeout_max * 2);
        tasks.spawn(first_start(raft.clone(), me, voters, peers.clone(), wait));
    }
    let (prop_tx, prop_rx) = mpsc::unbounded_channel();
    tasks.spawn(propose(
        raft.clone(),
        me,
        peers.clone(),
        prop_rx,
        published.clone(),
    ));
    let (touch_out_tx, touch_out_rx) = mpsc::unbounded_channel();
    tasks.spawn(send_touches(raft.clone(), me, peers.clone(), touch_out_rx));
    let (sync_tx, sync_rx) = mpsc::unbounded_channel();
    tasks.spawn(serve_syncs(raft.clone(), me, peers.clone(), sync_rx, sm_tx));
    let (reconfig_tx, reconfig_rx) = mpsc::unbounded_channel();
    tasks.spawn(
        Reconfigurer {
            raft: raft.clone(),
            me,
            peers: peers.clone(),
            data: sm_data,
            initial: initial_config(&cfg),
            reversions: network.reversions.clone(),
            published,
            reconfig_enabled: cfg.reconfig_enabled,
        }
        .run(reconfig_rx, forward_rx, lost_rx),
    );
    if !mine.observer {
        tasks.spawn(watch_leader(
            raft.clone(),
            me,
            contact.clone(),
            Duration::from_millis(config.election_timeout_max),
            Duration::from_millis(config.heartbeat_interval),
        ));
    }

    let cfg = Arc::new(cfg);
    let (tx, mut rx) = mpsc::channel(4096);
    let accept = listen(&cfg, tx).await?;
    let _abort_accept = AbortOnDrop(accept);
    let incarnation = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.finish()
    };
    let mut core = Core::new(
        cfg.clone(),
        initial,
        Backing::Ensemble(Box::new(Ensemble {
            me,
            incarnation,
            raft: raft.clone(),
            proposals: prop_tx,
            syncs: sync_tx,
            reconfigs: reconfig_tx,
            config_seen: false,
            in_config: true,
            contact,
            // Twice the longest election timeout: a leader that is still there has sent
            // several heartbeats by then, even on a loaded machine.
            leader_silence: Duration::from_millis(config.election_timeout_max * 2),
            next_pending: 0,
            dir: dir.clone(),
            leaderless_since: None,
        })),
    );
    core.refresh_in_config();
    if matches!(&core.backing, Backing::Ensemble(e) if !e.in_config) {
        tracing::warn!(
            "node {me} is not in the committed config (/zookeeper/config): it was removed by a \
             reconfig, and serves no clients until a reconfig joins it again"
        );
    }
    let mut tick = tokio::time::interval(tick_interval(&cfg));
    let mut reaper = tokio::time::interval(reap_interval(&cfg));
    let mut was_leader = false;
    let (step_down_tx, mut step_down_rx) = mpsc::unbounded_channel();
    tasks.spawn(watch_step_down(raft.clone(), me, step_down_tx));
    tracing::info!("serving on {} (ensemble member {me})", cfg.client_addr());
    tokio::pin!(shutdown);
    let result = loop {
        let step = tokio::select! {
            msg = rx.recv() => match msg {
                Some(m) => handle_batch(&mut core, m, &mut rx),
                None => break Ok(()),
            },
            Some(ev) = sm_rx.recv() => {
                let mut next = Some(ev);
                let mut r = Ok(());
                while let Some(ev) = next.take() {
                    if let SmEvent::Snapshot(to) = ev {
                        // Written in chunks with pauses: Raft's heartbeats run on this thread.
                        to.write_yielding(&core.state).await;
                    } else if let Err(e) = core.on_sm_event(ev) {
                        r = Err(e);
                        break;
                    }
                    next = sm_rx.try_recv().ok();
                }
                r.and_then(|_| core.flush())
            }
            Some(sessions) = touch_rx.recv() => {
                core.touched(&sessions);
                Ok(())
            }
            Some(()) = step_down_rx.recv() => {
                core.stepped_down();
                core.flush()
            }
            _ = tick.tick() => {
                let leader = core.is_leader();
                core.ensemble_tick(leader && !was_leader);
                was_leader = leader;
                let active = core.take_active_sessions();
                if !leader {
                    let _ = touch_out_tx.send(active);
                }
                core.expire_sessions().and_then(|_| core.flush())
            }
            _ = reaper.tick() => core.reap().and_then(|_| core.flush()),
            _ = &mut shutdown => break Ok(()),
        };
        if let Err(e) = step {
            tracing::error!("stopping: {e}");
            break Err(ServerError::Persist(e));
        }
    };
    network
        .dying
        .store(true, std::sync::atomic::Ordering::Relaxed);
    // A snapshot being built waits on the core: dropping the core's end of the channel ends
    // that wait with an error instead of holding Raft's shutdown.
    drop(sm_rx);
    drop(core);
    tasks.shutdown().await;
    let _ = raft.shutdown().await;
    result
}

/// Sets a flag when dropped.
struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A voter with an empty Raft log: a fresh ensemble, or a member whose data dir was wiped.
///
/// The highest myid goes first, as ZooKeeper's own election would pick it: it asks the other
/// voters whether an ensemble already exists and, if none does and a quorum of them answers (or
/// `wait` has passed), initializes the membership from zoo.cfg and campaigns at once; waiting
/// for a quorum to listen spares the first election a retry round when the nodes start in any
/// order. The other voters wait to be replicated to; only if that has not happened after `wait`
/// (the highest myid is down) do they do the same. A member that finds an existing ensemble (a
/// wiped node) never initializes: the leader brings it back, by snapshot.
async fn first_start(
    raft: Raft,
    me: u64,
    voters: BTreeMap<u64, BasicNode>,
    peers: Peers,
    wait: Duration,
) {
    let highest = voters.keys().next_back() == Some(&me);
    if !highest {
        tokio::time::sleep(wait).await;
    }
    let quorum = voters.len() / 2 + 1;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if raft.is_initialized().await.unwrap_or(true) {
            return;
        }
        let mut exists = false;
        let mut answered = 1; // this node
        for id in voters.keys().filter(|id| **id != me) {
            if let Some(addr) = peers.get(id) {
                if let Ok((initialized, leader)) = Peer::to(*id, addr).hello().await {
                    exists |= initialized || leader.is_some();
                    answered += 1;
                }
            }
        }
        if !exists && answered < quorum && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        if !exists {
            // initialize() also starts this node's first election.
            match raft.initialize(voters.clone()).await {
                Ok(()) => tracing::info!("fresh ensemble: membership initialized from zoo.cfg"),
                Err(e) => tracing::info!("initialize: {e}"),
            }
            return;
        }
        // An ensemble exists: its leader will replicate to this node. Check again later, in
        // case that ensemble was itself only starting.
        tokio::time::sleep(wait).await;
    }
}

/// Submit proposals in arrival order: to the local Raft when this node leads, else to the
/// leader over one connection (so the leader sees them in order too).
async fn propose(
    raft: Raft,
    me: u64,
    peers: Peers,
    mut rx: mpsc::UnboundedReceiver<Proposal>,
    published: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut to_leader: Option<(u64, Peer)> = None;
    while let Some(first) = rx.recv().await {
        // Everything queued meanwhile goes in one batch (one round trip to the leader), in
        // arrival order. A batch is retried whole; duplicates of proposals that did commit
        // are skipped by the state machine (by origin id), so each write takes effect once.
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        // A few tries, each with the current leader and a fresh connection after a failure
        // (the old one may lead to a process that died). A batch that still fails is dropped;
        // its clients time out and reconnect, as with ZooKeeper during an election.
        let mut done = false;
        for attempt in 0..100 {
            let Some(l) = raft.metrics().borrow_watched().current_leader else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            if l == me {
                network::wait_published(&published).await;
                done = true;
                for p in &batch {
                    if let Err(e) = raft.client_write_ff(p.clone(), None).await {
                        // No longer the leader: forward the batch to the next one.
                        tracing::debug!("proposal failed (try {attempt}): {e}");
                        done = false;
                        break;
                    }
                }
                if done {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            if to_leader.as_ref().map(|(id, _)| *id) != Some(l) {
                to_leader = member_addr(&raft, &peers, l).map(|a| (l, Peer::to(l, &a)));
            }
            let Some((_, peer)) = to_leader.as_mut() else {
                break;
            };
            // Stop waiting on a leader that this node stopped following (it hangs, and an
            // election is under way): the writes go to the next leader instead.
            let waiter = raft.wait(Some(Duration::from_secs(3600)));
            let deposed = waiter.metrics(|m| m.current_leader != Some(l), "leader change");
            let sent = tokio::select! {
                r = peer.forward(batch.clone()) => r,
                _ = deposed => Err(std::io::Error::other(format!("leader {l} deposed"))),
            };
            match sent {
                Ok(()) => {
                    done = true;
                    break;
                }
                Err(e) => {
                    tracing::debug!("forwarding to leader {l} failed (try {attempt}): {e}");
                    to_leader = None;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        if !done {
            tracing::warn!("no leader accepted {} writes; dropping them", batch.len());
        }
    }
}

/// Answer `sync`s through a Raft read index: the leader confirms it still leads (a heartbeat
/// round with a quorum) and names its commit index; once this node has applied that far, the
/// syncs waiting meanwhile are answered together.
async fn serve_syncs(
    raft: Raft,
    me: u64,
    peers: Peers,
    mut rx: mpsc::UnboundedReceiver<u64>,
    done: mpsc::UnboundedSender<SmEvent>,
) {
    let mut to_leader: Option<(u64, Peer)> = None;
    while let Some(first) = rx.recv().await {
        let mut ids = vec![first];
        while let Ok(id) = rx.try_recv() {
            ids.push(id);
        }
        let mut index = None;
        for _ in 0..50 {
            let Some(l) = raft.metrics().borrow_watched().current_leader else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let r = if l == me {
                network::read_index(&raft)
                    .await
                    .map_err(std::io::Error::other)
            } else {
                if to_leader.as_ref().map(|(id, _)| *id) != Some(l) {
                    to_leader = member_addr(&raft, &peers, l).map(|a| (l, Peer::to(l, &a)));
                }
                match to_leader.as_mut() {
                    Some((_, peer)) => peer.read_index().await,
                    None => break,
                }
            };
            match r {
                Ok(i) => {
                    index = Some(i);
                    break;
                }
                Err(e) => {
                    tracing::debug!("read index from leader {l}: {e}");
                    to_leader = None;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        let ok = match index {
            Some(i) => raft
                .wait(Some(Duration::from_secs(10)))
                .applied_index_at_least(Some(i), "sync")
                .await
                .is_ok(),
            None => false,
        };
        if !ok {
            tracing::warn!("sync: no read index from a leader; closing the waiting connections");
        }
        for id in ids {
            let _ = done.send(SmEvent::Synced(id, ok));
        }
    }
}

/// Voters: a leader silent for `silence` (no append or heartbeat) hangs; campaign against it.
/// openraft's own timer would wait its lease plus an election timeout (about 1-1.3 s at the
/// defaults); this replaces a SIGSTOPped leader in about `silence`.
async fn watch_leader(
    raft: Raft,
    me: u64,
    contact: Arc<network::LeaderContact>,
    silence: Duration,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        // A tick far too late means this node itself was frozen (SIGSTOP, a starved
        // machine): the leader's silence is then its own. Give the heartbeats a chance first.
        let late = last.elapsed() > every * 3;
        last = tokio::time::Instant::now();
        if late {
            continue;
        }
        let leader = raft.metrics().borrow_watched().current_leader;
        if let Some(l) = leader.filter(|l| *l != me) {
            if contact.since().is_some_and(|d| d > silence) {
                network::campaign_against(&raft, l, me, contact.clone());
            }
        }
    }
}

/// Tell the core each time this node stops leading (see `Core::stepped_down`).
async fn watch_step_down(raft: Raft, me: u64, tx: mpsc::UnboundedSender<()>) {
    let mut metrics = raft.metrics();
    let mut leading = false;
    loop {
        let now = metrics.borrow_watched().current_leader == Some(me);
        if leading && !now && tx.send(()).is_err() {
            return;
        }
        leading = now;
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Report this follower's active sessions to the leader.
async fn send_touches(
    raft: Raft,
    me: u64,
    peers: Peers,
    mut rx: mpsc::UnboundedReceiver<Vec<i64>>,
) {
    let mut to_leader: Option<(u64, Peer)> = None;
    while let Some(sessions) = rx.recv().await {
        let Some(l) = raft.metrics().borrow_watched().current_leader else {
            continue;
        };
        if l == me || sessions.is_empty() {
            continue;
        }
        if to_leader.as_ref().map(|(id, _)| *id) != Some(l) {
            to_leader = member_addr(&raft, &peers, l).map(|a| (l, Peer::to(l, &a)));
        }
        if let Some((_, peer)) = to_leader.as_mut() {
            let _ = peer.touch(sessions).await;
        }
    }
}

/// Aborts a task when dropped (the client listener of a node that is stopped or dropped).
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where member `id` listens: its address in the Raft membership (members added by reconfig
/// are there only), else its zoo.cfg line.
fn member_addr(raft: &Raft, peers: &Peers, id: u64) -> Option<String> {
    if let Some(a) = peers.proxies.get(&id) {
        return Some(a.clone());
    }
    raft.metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .get_node(&id)
        .map(|n| n.addr.clone())
        .or_else(|| peers.get(&id).cloned())
}

/// The members' addresses in this node's zoo.cfg.
#[derive(Clone)]
struct Peers {
    addrs: BTreeMap<u64, String>,
    /// `zkherd.proxy.N`: where this node dials member N instead (zkherd's link proxies).
    proxies: BTreeMap<u64, String>,
}

impl Peers {
    fn get(&self, id: &u64) -> Option<&String> {
        self.addrs.get(id)
    }
}

/// The config zoo.cfg's server lines describe: what `/zookeeper/config` starts as, before any
/// reconfig (Apache's static config, version 0x<epoch>00000000).
fn initial_config(cfg: &ZooCfg) -> DynConfig {
    let mut c = DynConfig::default();
    for s in &cfg.servers {
        let client = s
            .client
            .map(|a| (a.ip().to_string(), a.port()))
            .or_else(|| {
                (Some(s.id) == cfg.myid).then(|| {
                    let a = cfg.client_addr();
                    (a.ip().to_string(), a.port())
                })
            });
        c.members.insert(
            s.id,
            Member {
                id: s.id,
                host: s.host.clone(),
                quorum: s.quorum_port,
                election: s.election_port,
                observer: s.observer,
                client,
            },
        );
    }
    c
}

/// The committed config in `/zookeeper/config` (None before the first leader published it)
/// and its version (the znode's mzxid).
fn committed_config(data: &std::sync::Mutex<SmData>) -> Result<(Option<DynConfig>, i64), String> {
    let d = data.lock().expect("state machine lock");
    let Some((text, version)) = &d.config else {
        return Ok((None, 0));
    };
    let version = *version;
    if DynConfig::parse(text).is_ok_and(|c| c.members.is_empty()) {
        return Ok((None, version));
    }
    DynConfig::parse(text)
        .map(|c| (Some(c), version))
        .map_err(|e| format!("/zookeeper/config does not parse: {e}"))
}

/// Runs reconfigs and keeps openraft's membership equal to the committed config.
///
/// On the leader, a reconfig is checked in Apache's order against the committed config —
/// version (BadVersion), the new member list (BadArguments / MarshallingError, fewer than two
/// voters), a reachable quorum of the new voters (NewConfigNoQuorum), WRITE on the config
/// znode (NoAuth) — and its outcome is proposed as the origin's entry: the new config text
/// (`Txn::Reconfig`), or an error txn. Other members forward reconfigs to the leader.
///
/// The committed text is the desired membership; every quarter second (and after each
/// reconfig) the leader moves Raft toward it one step at a time: new members join as learners,
/// the voter set is replaced (openraft's joint consensus), and members no longer listed are
/// removed. A leader crash half way leaves nothing inconsistent: the next leader resumes from
/// the same committed text. A leader that removes itself steps down once the new voters
/// commit, and its successor finishes.
struct Reconfigurer {
    raft: Raft,
    me: u64,
    peers: Peers,
    data: Arc<std::sync::Mutex<SmData>>,
    initial: DynConfig,
    reversions: Arc<Reversions>,
    /// See [`network::wait_published`].
    published: Arc<std::sync::atomic::AtomicBool>,
    /// zoo.cfg's reconfigEnabled: off, the initial config is published as Apache's static one.
    reconfig_enabled: bool,
}

const MEMBERSHIP_STEP_TIMEOUT: Duration = Duration::from_secs(30);

impl Reconfigurer {
    /// Leading as a voter: a leader that removed itself keeps leading until the new voters
    /// commit, but must not change the membership again (openraft forbids it).
    fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        m.current_leader == Some(self.me)
            && m.state == openraft::ServerState::Leader
            && m.membership_config
                .membership()
                .voter_ids()
                .any(|v| v == self.me)
    }

    async fn run(
        self,
        mut local: mpsc::UnboundedReceiver<ReconfigJob>,
        mut forwarded: mpsc::UnboundedReceiver<ForwardedReconfig>,
        mut lost: mpsc::UnboundedReceiver<u64>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut metrics = self.raft.metrics();
        let mut was_leader = false;
        loop {
            tokio::select! {
                // A new leader publishes the initial config before clients' writes reach it.
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Until the config is published, every change counts (the first may come
                    // before this leader's membership shows in the metrics), not only the change
                    // to leader: waiting for the tick held a fresh ensemble's first write ~250 ms.
                    let leader = self.is_leader();
                    let unpublished = !self.published.load(std::sync::atomic::Ordering::Relaxed);
                    if leader && (!was_leader || unpublished) {
                        self.reconcile().await;
                    }
                    was_leader = leader;
                }
                Some(job) = local.recv() => self.submit(job).await,
                Some((job, done)) = forwarded.recv() => {
                    let r = if self.is_leader() {
                        self.execute(job).await;
                        Ok(())
                    } else {
                        Err(format!("node {} is not the leader", self.me))
                    };
                    let _ = done.send(r);
                }
                Some(_) = lost.recv() => self.reconcile().await,
                _ = tick.tick() => self.reconcile().await,
            }
        }
    }

    /// A reconfig from this node's client: run it here when leading, else hand it to the
    /// leader. Handing it over again after a failure is safe: the outcome is proposed under the
    /// job's origin id, and the state machine applies an origin id once.
    async fn submit(&self, job: ReconfigJob) {
        let mut to_leader: Option<(u64, Peer)> = None;
        for _ in 0..50 {
            let Some(l) = self.raft.metrics().borrow_watched().current_leader else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if l == self.me {
                if self.is_leader() {
                    self.execute(job).await;
                    return;
                }
                // Stepping down after removing itself: wait for the next leader.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            if to_leader.as_ref().map(|(id, _)| *id) != Some(l) {
                to_leader = member_addr(&self.raft, &self.peers, l).map(|a| (l, Peer::to(l, &a)));
            }
            let Some((_, peer)) = to_leader.as_mut() else {
                break;
            };
            match peer.reconfig(job.clone()).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!("reconfig: leader {l}: {e}");
                    to_leader = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tracing::warn!("reconfig: no leader took it; its client times out and retries");
    }

    /// Leader: check a reconfig, propose its outcome, and start moving the membership.
    async fn execute(&self, job: ReconfigJob) {
        let (current, version) = match committed_config(&self.data) {
            Ok((c, v)) => (c.unwrap_or_else(|| self.initial.clone()), v),
            Err(e) => {
                tracing::error!("reconfig refused: {e}");
                (DynConfig::default(), -1)
            }
        };
        let r = &job.request;
        let mut outcome = if r.from_config != -1 && r.from_config != version {
            Err(ErrorCode::BadVersion)
        } else {
            current.plan(r)
        };
        if let Ok(next) = &outcome {
            if !self.quorum_reachable(next).await {
                outcome = Err(ErrorCode::NewConfigNoQuorum);
            }
        }
        if outcome.is_ok() && !job.allowed {
            outcome = Err(ErrorCode::NoAuth);
        }
        let txn = match &outcome {
            Ok(next) => {
                tracing::info!("reconfig: new config\n{}", next.lines());
                Txn::Reconfig {
                    servers: next.lines(),
                    static_config: false,
                }
            }
            Err(code) => {
                tracing::info!("reconfig refused: {code:?}");
                Txn::Error(code.code())
            }
        };
        let entry = Entry {
            zxid: 0,
            time_ms: job.time_ms,
            session_id: job.session,
            auth: job
                .auth
                .iter()
                .map(|(scheme, id)| AuthId {
                    scheme: scheme.clone(),
                    id: id.clone(),
                })
                .collect(),
            txn,
        };
        let p = Proposal {
            origin: Some(job.origin),
            entry: persist::encode_entry(&entry),
        };
        match self.raft.client_write(p).await {
            Ok(_) if outcome.is_ok() => self.reconcile().await,
            Ok(_) => {}
            Err(e) => tracing::warn!("reconfig: proposing its outcome failed: {e}"),
        }
    }

    /// Whether a majority of `next`'s voters answers (this node counts if it stays a voter at
    /// the same address), as Apache requires a connected quorum of the new config.
    async fn quorum_reachable(&self, next: &DynConfig) -> bool {
        let mine = member_addr(&self.raft, &self.peers, self.me);
        let checks = next.voters().map(|m| {
            let addr = m.raft_addr();
            let me = m.id == self.me && mine.as_deref() == Some(addr.as_str());
            async move { me || Peer::to(m.id, &addr).hello().await.is_ok() }
        });
        let up = futures_util::future::join_all(checks)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count();
        up >= next.quorum()
    }

    async fn change(&self, what: &str, change: ChangeMembers<u64, BasicNode>, retain: bool) {
        match tokio::time::timeout(
            MEMBERSHIP_STEP_TIMEOUT,
            self.raft.change_membership(change, retain),
        )
        .await
        {
            Ok(Ok(_)) => tracing::info!("membership: {what}"),
            Ok(Err(e)) => tracing::debug!("membership: {what}: {e}"),
            Err(_) => tracing::warn!(
                "membership: {what} not committed after {MEMBERSHIP_STEP_TIMEOUT:?}; retrying"
            ),
        }
    }

    /// A leader that removed itself from the voters: the voter that replicated the most,
    /// to hand the leadership to.
    fn successor(&self) -> Option<u64> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        if m.current_leader != Some(self.me) || membership.voter_ids().any(|v| v == self.me) {
            return None;
        }
        let matched = |id: &u64| {
            m.replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten())
                .map(|l| l.index())
        };
        membership.voter_ids().max_by_key(|id| (matched(id), *id))
    }

    /// Leader: one step of moving openraft's membership toward the committed config.
    async fn reconcile(&self) {
        if let Some(to) = self.successor() {
            tracing::info!("no longer a voter: handing the leadership to node {to}");
            let _ = self.raft.trigger().transfer_leader(to).await;
            return;
        }
        if !self.is_leader() {
            return;
        }
        let desired = match committed_config(&self.data) {
            Ok((Some(c), _)) => {
                self.published
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                c
            }
            Ok((None, _)) => {
                // A new leader takes writes once a quorum has acknowledged it (openraft's
                // leader lease); until then a write fails at once, and retrying on every metrics
                // change spun a core for the ~10 ms of the first round. The acknowledgement
                // changes the metrics, which calls this again.
                if self
                    .raft
                    .metrics()
                    .borrow_watched()
                    .last_quorum_acked
                    .is_none()
                {
                    return;
                }
                // The first leader of the ensemble publishes zoo.cfg's servers.
                let entry = Entry {
                    zxid: 0,
                    time_ms: super::core::now_ms(),
                    session_id: 0,
                    auth: vec![],
                    txn: Txn::Reconfig {
                        servers: self.initial.lines(),
                        static_config: !self.reconfig_enabled,
                    },
                };
                let p = Proposal {
                    origin: None,
                    entry: persist::encode_entry(&entry),
                };
                // Once the Raft core has it queued, clients' writes may follow: they queue
                // behind it, so it still takes the term's first zxid, and they commit in the
                // same round instead of one round later.
                let (responder, outcome) = openraft::impls::ProgressResponder::complete_only();
                if self.raft.client_write_ff(p, Some(responder)).await.is_err() {
                    return; // Raft stopped
                }
                self.published
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                let failed = match outcome.await {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(e) = failed {
                    // Not leading any more: whoever leads next publishes it.
                    tracing::debug!("publishing the initial config: {e}");
                    self.published
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                return;
            }
            Err(e) => {
                tracing::error!("membership left as it is: {e}");
                return;
            }
        };
        let membership = self
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .clone();
        let nodes: BTreeMap<u64, BasicNode> =
            membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        // A member that lost its log leaves first; it is added back below, next round.
        for id in self.reversions.lost() {
            if !nodes.contains_key(&id) {
                self.reversions.clear(id);
                continue;
            }
            if voters.contains(&id) {
                let rest: std::collections::BTreeSet<u64> =
                    voters.iter().copied().filter(|v| *v != id).collect();
                if !rest.is_empty() {
                    self.change(
                        &format!("node {id} removed, to be added back"),
                        ChangeMembers::ReplaceAllVoters(rest),
                        false,
                    )
                    .await;
                }
            } else {
                self.change(
                    &format!("node {id} removed, to be added back"),
                    ChangeMembers::RemoveNodes([id].into()),
                    false,
                )
                .await;
            }
            return;
        }
        let mut added = false;
        for m in desired.members.values() {
            let node = BasicNode {
                addr: m.raft_addr(),
            };
            match nodes.get(&m.id) {
                None => {
                    added = true;
                    match tokio::time::timeout(
                        MEMBERSHIP_STEP_TIMEOUT,
                        self.raft.add_learner(m.id, node, false),
                    )
                    .await
                    {
                        Ok(Ok(_)) => tracing::info!("membership: node {} added as a learner", m.id),
                        Ok(Err(e)) => tracing::debug!("adding node {}: {e}", m.id),
                        Err(_) => tracing::warn!("adding node {}: timed out", m.id),
                    }
                }
                Some(n) if n.addr != node.addr => {
                    added = true;
                    self.change(
                        &format!("node {} now at {}", m.id, node.addr),
                        ChangeMembers::SetNodes([(m.id, node)].into()),
                        false,
                    )
                    .await;
                }
                Some(_) => {}
            }
        }
        if added {
            return;
        }
        let want: std::collections::BTreeSet<u64> = desired.voters().map(|m| m.id).collect();
        if want != voters {
            // Voters that leave the config entirely go at once (a leader among them then
            // steps down by itself); those that become observers stay as learners.
            let retain = voters
                .iter()
                .any(|v| !want.contains(v) && desired.members.contains_key(v));
            self.change(
                &format!("voters {want:?}"),
                ChangeMembers::ReplaceAllVoters(want),
                retain,
            )
            .await;
            return;
        }
        let extra: std::collections::BTreeSet<u64> = nodes
            .keys()
            .copied()
            .filter(|id| !desired.members.contains_key(id))
            .collect();
        if !extra.is_empty() {
            self.change(
                &format!("nodes {extra:?} removed"),
                ChangeMembers::RemoveNodes(extra),
                false,
            )
            .await;
        }
    }
}
