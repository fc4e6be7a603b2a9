//! The core: the single owner of the state, the watch tables, the session liveness table and
//! the log. It takes requests from every connection in arrival order and, for each one:
//! reads → answer from the applied state; writes → stamp an [`Entry`], append it to the log,
//! apply it, queue the notifications, then the reply. Replies are held until the batch's log
//! records are fsynced (group commit), so nothing is acknowledged before it is durable.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use sha1::{Digest, Sha1};
use tokio::sync::mpsc;

use super::config::ZooCfg;
use super::conn::{CoreMsg, Out};
use super::sasl;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::Instant as _;

use super::consensus::network::{LeaderContact, Raft};
use super::consensus::state_machine::SmEvent;
use super::consensus::{Origin, Proposal, ReconfigJob};
use super::dynconfig::ReconfigRequest;
use super::persist::{self, Log, PersistError};
use super::proto::{
    self, encode_connect_response, op, perms, xid, Acl, ConnectRequest, ErrorCode, ReadOp, Request,
    SetWatches, Writer,
};
use super::tree::{Applied, AuthId, Entry, EventType, OpResult, State, Txn, TxnResult};
use super::watch::{ConnId, WatchManager};

pub const VERSION: &str = concat!(
    "3.8.4-zkherd-",
    env!("CARGO_PKG_VERSION"),
    ", built on 2026-01-01 00:00 UTC"
);

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A client connection as the core sees it.
pub(super) struct Conn {
    pub tx: mpsc::UnboundedSender<Out>,
    pub remote: SocketAddr,
    pub session: Option<i64>,
    /// A read-only session (`readonlymode.enabled`, the node cut off from the quorum): local
    /// to this node, never replicated; writes are refused with NotReadOnly.
    pub read_only: bool,
    pub auth: Vec<AuthId>,
    pub established_ms: i64,
    pub timeout_ms: i32,
    pub received: u64,
    pub sent: u64,
    pub last_op: &'static str,
    pub last_cxid: i32,
    pub last_zxid: i64,
    pub last_resp_ms: i64,
    pub lat_min: u64,
    pub lat_max: u64,
    pub lat_total: u64,
    pub lat_count: u64,
    /// Requests of this connection proposed and not yet answered. Plain writes (and multis)
    /// are pipelined: several may be in flight, answered in order as they apply. Anything
    /// else waits until none is in flight (reads see this session's own writes).
    pub in_flight: u32,
    /// Of those, the ones nothing may overtake (session creation and close, sync, a refused
    /// reconfig or check): while one is in flight every request queues.
    pub barriers: u32,
    /// Requests waiting for the write in flight (per-session FIFO).
    pub queue: VecDeque<Queued>,
    /// This connection's SASL exchange, from its first SASL packet on.
    pub sasl: Option<sasl::DigestMd5>,
}

impl Conn {
    /// Per-session FIFO: whether `req` may run now, or must queue. A request from the queue
    /// is its front; a new one may not overtake queued ones.
    fn may_run(&self, req: Option<&Result<Request, proto::DecodeError>>, from_queue: bool) -> bool {
        let Some(req) = req else {
            return false;
        };
        if !from_queue && !self.queue.is_empty() {
            return false;
        }
        let pipelined = matches!(req, Ok(Request::Write(_)) | Ok(Request::Multi(_)));
        if pipelined {
            self.barriers == 0
        } else {
            self.in_flight == 0
        }
    }
}

/// A request that arrived while a write of its connection was in flight.
pub(super) struct Queued {
    xid: i32,
    opcode: i32,
    req: Result<Request, proto::DecodeError>,
    received: Instant,
}

/// What to answer when a write is applied.
pub(super) enum Pending {
    /// Leader-internal writes (expiry, reaping): nobody waits.
    Internal,
    Reply {
        conn: ConnId,
        xid: i32,
        kind: WriteKind,
        received: Instant,
    },
    /// A `sync`: answered once this node applied what the leader had committed.
    Sync {
        conn: ConnId,
        xid: i32,
        path: String,
        received: Instant,
    },
    /// A new session: the handshake answer waits for its createSession.
    Connect {
        conn: ConnId,
        session: i64,
        passwd: [u8; 16],
        timeout: i32,
        read_only: Option<bool>,
    },
}

impl Pending {
    /// A request that later ones, writes included, must not overtake.
    fn is_barrier(&self) -> bool {
        !matches!(
            self,
            Pending::Internal
                | Pending::Reply {
                    kind: WriteKind::Single | WriteKind::Multi(_),
                    ..
                }
        )
    }

    fn conn(&self) -> Option<ConnId> {
        match self {
            Pending::Internal => None,
            Pending::Reply { conn, .. }
            | Pending::Connect { conn, .. }
            | Pending::Sync { conn, .. } => Some(*conn),
        }
    }
}

pub(super) enum WriteKind {
    Single,
    Multi(usize),
    Close,
    /// Answer with this error code (a refused reconfig).
    Error(i32),
    /// A reconfig: the new config (GetDataResponse), or the error the leader found.
    Reconfig,
    /// Close the connection without answering (a top-level check).
    CloseConnection,
}

/// Where writes go.
pub(super) enum Backing {
    /// This node's own log (one server).
    Standalone(Log),
    /// Raft (an ensemble).
    Ensemble(Box<Ensemble>),
}

pub(super) struct Ensemble {
    pub me: u64,
    /// Random per start: answers for a previous run of this node are never matched.
    pub incarnation: u64,
    pub raft: Raft,
    /// To the proposer task, which submits in order (leader) or forwards to the leader.
    pub proposals: mpsc::UnboundedSender<Proposal>,
    /// To the task that answers `sync` through a read index (pending ids).
    pub syncs: mpsc::UnboundedSender<u64>,
    /// To the task that runs reconfigs (on the leader, or forwarded to it).
    pub reconfigs: mpsc::UnboundedSender<ReconfigJob>,
    /// Whether the config was read once already (the first read, at start, is no removal).
    pub config_seen: bool,
    /// Whether the committed `/zookeeper/config` lists this node (true until one is
    /// published): a node a reconfig removed knows it from the config txn, which it still
    /// receives, even though the leader stops replicating to it afterwards.
    pub in_config: bool,
    /// When the leader was last heard from, and how long a silence means it is gone.
    pub contact: Arc<LeaderContact>,
    pub leader_silence: Duration,
    pub next_pending: u64,
    /// Where Raft keeps its log and snapshots (for `conf` and `dirs`).
    pub dir: std::path::PathBuf,
    /// Since when no leader is known.
    pub leaderless_since: Option<Instant>,
}

/// Session liveness (local to the node that tracks it; never replicated).
pub(super) struct Live {
    pub deadline: Instant,
    pub timeout_ms: i32,
    pub conn: Option<ConnId>,
}

/// Server-wide counters for srvr/mntr.
#[derive(Default)]
pub(super) struct Stats {
    pub received: u64,
    pub sent: u64,
    pub lat_min: u64,
    pub lat_max: u64,
    pub lat_total: u64,
    pub lat_count: u64,
    /// Authentication packets refused (an unknown scheme), Apache's `auth_failed_count`.
    pub auth_failed: u64,
    /// Sizes of the responses sent, in bytes with the length prefix (Apache's BufferStats:
    /// -1 until the first).
    pub resp_last: i64,
    pub resp_min: i64,
    pub resp_max: i64,
}

pub(super) struct Core {
    pub cfg: Arc<ZooCfg>,
    pub state: State,
    pub backing: Backing,
    /// Ensemble: writes proposed by this node and not yet applied, by proposal id.
    pending: BTreeMap<u64, Pending>,
    /// Sessions that sent anything since the last report to the leader (followers).
    active: std::collections::BTreeSet<i64>,
    pub watches: WatchManager,
    pub conns: BTreeMap<ConnId, Conn>,
    pub live: BTreeMap<i64, Live>,
    session_base: i64,
    session_counter: i64,
    secret: [u8; 16],
    /// Frames queued during a batch, released after the log sync.
    outbox: Vec<(ConnId, Out)>,
    pub stats: Stats,
    pub started: Instant,
    pub server_id: u64,
}

fn opname(opcode: i32) -> &'static str {
    match opcode {
        op::PING => "PING",
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => "CREA",
        op::DELETE => "DELE",
        op::SET_DATA => "SETD",
        op::GET_DATA => "GETD",
        op::EXISTS => "EXIS",
        op::GET_CHILDREN | op::GET_CHILDREN2 => "GETC",
        op::GET_ACL => "GETA",
        op::SET_ACL => "SETA",
        op::SYNC => "SYNC",
        op::MULTI => "MULT",
        op::MULTI_READ => "MLTR",
        op::SET_WATCHES => "SETW",
        op::SET_WATCHES2 => "STW2",
        op::ADD_WATCH => "ADDW",
        op::CHECK_WATCHES => "CHKW",
        op::REMOVE_WATCHES => "REMW",
        op::CLOSE_SESSION => "CLOS",
        op::GET_EPHEMERALS => "GETE",
        op::GET_ALL_CHILDREN_NUMBER => "GETACN",
        op::WHO_AM_I => "HOMI",
        _ => "NA",
    }
}

impl Core {
    pub fn new(cfg: Arc<ZooCfg>, state: State, backing: Backing) -> Core {
        let server_id = if cfg.is_standalone() {
            1
        } else {
            cfg.myid.unwrap_or(1)
        };
        let start = now_ms();
        let session_base = ((server_id as i64) << 56) | ((start & 0xFF_FFFF_FFFF) << 16);
        let mut h = Sha1::new();
        h.update(start.to_be_bytes());
        h.update(std::process::id().to_be_bytes());
        if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
            use std::io::Read;
            let mut b = [0u8; 16];
            let _ = f.read_exact(&mut b);
            h.update(b);
        }
        let secret: [u8; 16] = h.finalize()[..16].try_into().expect("16 bytes");
        // Sessions recovered from disk get a fresh timeout, as ZooKeeper does after a restart.
        let live = state
            .sessions
            .iter()
            .map(|(id, s)| {
                (
                    *id,
                    Live {
                        deadline: renewed(s.timeout_ms),
                        timeout_ms: s.timeout_ms,
                        conn: None,
                    },
                )
            })
            .collect();
        Core {
            cfg,
            state,
            backing,
            pending: BTreeMap::new(),
            active: Default::default(),
            watches: WatchManager::default(),
            conns: BTreeMap::new(),
            live,
            session_base,
            session_counter: 0,
            secret,
            outbox: Vec::new(),
            stats: Stats {
                lat_min: u64::MAX,
                resp_last: -1,
                resp_min: -1,
                resp_max: -1,
                ..Default::default()
            },
            started: Instant::now(),
            server_id,
        }
    }

    /// Process one message; frames it produces wait in the outbox until [`Core::flush`].
    pub fn handle(&mut self, msg: CoreMsg) -> Result<(), PersistError> {
        match msg {
            CoreMsg::Connect {
                conn,
                req,
                remote,
                auth,
                tx,
            } => self.connect(conn, req, remote, auth, tx),
            CoreMsg::Request {
                conn,
                xid,
                opcode,
                req,
                received,
                bytes: _,
            } => self.request(conn, xid, opcode, req, received, false),
            CoreMsg::Closed { conn } => {
                self.watches.drop_conn(conn);
                if let Some(c) = self.conns.remove(&conn) {
                    if let Some(s) = c.session {
                        if let Some(l) = self.live.get_mut(&s) {
                            if l.conn == Some(conn) {
                                l.conn = None;
                            }
                        }
                    }
                }
                Ok(())
            }
            CoreMsg::FourLetter { cmd, remote, reply } => {
                let _ = reply.send(super::fourlw::answer(self, &cmd, remote));
                Ok(())
            }
            CoreMsg::Admin { cmd, reply } => {
                let _ = reply.send(super::admin::answer(self, &cmd));
                Ok(())
            }
        }
    }

    /// Make the batch durable, then release its frames in order.
    pub fn flush(&mut self) -> Result<(), PersistError> {
        // Ensemble replies are sent only for applied, hence committed, entries.
        if let Backing::Standalone(log) = &mut self.backing {
            log.sync()?;
        }
        for (conn, out) in self.outbox.drain(..) {
            if let Some(c) = self.conns.get(&conn) {
                let _ = c.tx.send(out);
            }
        }
        if let Backing::Standalone(log) = &mut self.backing {
            if log.since_snapshot >= self.cfg.snap_count {
                let path = log.snapshot(&self.state)?;
                tracing::info!("snapshot {}", path.display());
            }
        }
        Ok(())
    }

    /// Directories shown by `conf` and `dirs`: (snapshots, log).
    pub fn dirs(&self) -> (std::path::PathBuf, std::path::PathBuf) {
        match &self.backing {
            Backing::Standalone(log) => (log.snap_dir().to_path_buf(), log.log_dir().to_path_buf()),
            Backing::Ensemble(e) => (e.dir.join("sm"), e.dir.join("raft")),
        }
    }

    /// `Mode:` as `srvr` says it.
    pub fn mode(&self) -> &'static str {
        if self.read_only_mode() {
            return "read-only";
        }
        match &self.backing {
            Backing::Standalone(_) => "standalone",
            Backing::Ensemble(e) => {
                let m = e.raft.metrics().borrow_watched().clone();
                if m.current_leader == Some(e.me) {
                    "leader"
                } else if m
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|v| v == e.me)
                {
                    "follower"
                } else {
                    "observer"
                }
            }
        }
    }

    /// The leader this member knows of (none standalone, or while an election runs).
    pub fn leader_id(&self) -> Option<u64> {
        match &self.backing {
            Backing::Standalone(_) => None,
            Backing::Ensemble(e) => e.raft.metrics().borrow_watched().current_leader,
        }
    }

    /// The zxid the four-letter words and the AdminServer report: the last applied one, or,
    /// in an ensemble whose leader's term has not committed a transaction yet, that term's
    /// epoch with counter 0 — as Apache's servers show `epoch << 32` right after an election.
    pub fn visible_zxid(&self) -> i64 {
        let last = self.state.last_zxid;
        let Backing::Ensemble(e) = &self.backing else {
            return last;
        };
        let m = e.raft.metrics();
        let m = m.borrow_watched();
        if m.current_leader.is_none() {
            return last;
        }
        last.max(super::consensus::zxid(m.current_term, 0))
    }

    /// Ensemble: how many voters the current membership has (Apache's `quorum_size`).
    pub fn voter_count(&self) -> Option<usize> {
        let Backing::Ensemble(e) = &self.backing else {
            return None;
        };
        let m = e.raft.metrics();
        let count = m
            .borrow_watched()
            .membership_config
            .membership()
            .voter_ids()
            .count();
        Some(count)
    }

    /// Leader only: (learners connected, voters in sync, observers in sync) for `mntr`.
    pub fn followers(&self) -> Option<(u64, u64, u64)> {
        let Backing::Ensemble(e) = &self.backing else {
            return None;
        };
        let m = e.raft.metrics().borrow_watched().clone();
        if m.current_leader != Some(e.me) {
            return None;
        }
        let last = m.last_log_index.unwrap_or(0);
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let (mut learners, mut synced, mut synced_obs) = (0, 0, 0);
        if let Some(rep) = &m.replication {
            for (id, matched) in rep {
                if *id == e.me {
                    continue;
                }
                learners += 1;
                // In sync: acknowledged everything but what is still in flight.
                let ok = matched.as_ref().is_some_and(|l| l.index() + 64 >= last);
                if ok && voters.contains(id) {
                    synced += 1;
                } else if ok {
                    synced_obs += 1;
                }
            }
        }
        Some((learners, synced, synced_obs))
    }

    /// Whether clients are served: always standalone. In an ensemble: a leader while a quorum
    /// acknowledges it; any other member while it hears from a leader.
    pub fn serving(&self) -> bool {
        match &self.backing {
            Backing::Standalone(_) => true,
            Backing::Ensemble(e) => {
                // Called every tick and for every 4lw: read the metrics in place, no clone.
                let metrics = e.raft.metrics();
                let m = metrics.borrow_watched();
                // A node outside the membership (removed by a reconfig, or not added yet)
                // serves nobody.
                if !e.in_config || m.membership_config.membership().get_node(&e.me).is_none() {
                    return false;
                }
                match m.current_leader {
                    None => false,
                    Some(l) if l == e.me => m
                        .last_quorum_acked
                        .as_ref()
                        .is_none_or(|t| t.elapsed() <= e.leader_silence),
                    Some(_) => e.contact.since().is_some_and(|d| d <= e.leader_silence),
                }
            }
        }
    }

    /// Ensemble housekeeping every tick: the leader renews touched sessions; a node without a
    /// leader for longer than the minimum session timeout closes its client connections.
    pub fn ensemble_tick(&mut self, leader_changed_to_me: bool) {
        let serving = self.serving();
        let min_timeout = Duration::from_millis(self.cfg.min_session_timeout.max(0) as u64);
        let mut close_all = false;
        if let Backing::Ensemble(e) = &mut self.backing {
            if serving {
                e.leaderless_since = None;
            } else {
                let since = *e.leaderless_since.get_or_insert_with(Instant::now);
                close_all |= since.elapsed() > min_timeout;
            }
        }
        if close_all && self.conns.values().any(|c| !c.read_only) {
            tracing::warn!("no leader for {min_timeout:?}: closing client connections");
            let conns: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(_, c)| !c.read_only)
                .map(|(id, _)| *id)
                .collect();
            for c in conns {
                self.close(c);
            }
        }
        if serving && self.conns.values().any(|c| c.read_only) {
            // The quorum is back: read-only clients reconnect and find a read-write server,
            // as Apache's do when it leaves read-only mode.
            let ro: Vec<(ConnId, Option<i64>)> = self
                .conns
                .iter()
                .filter(|(_, c)| c.read_only)
                .map(|(id, c)| (*id, c.session))
                .collect();
            tracing::info!("quorum back: closing {} read-only connection(s)", ro.len());
            for (c, session) in ro {
                if let Some(s) = session {
                    self.live.remove(&s);
                }
                self.close(c);
            }
        }
        if leader_changed_to_me {
            // A new leader gives every session a fresh timeout, as ZooKeeper does.
            for (id, s) in &self.state.sessions {
                let l = self.live.entry(*id).or_insert(Live {
                    deadline: Instant::now(),
                    timeout_ms: s.timeout_ms,
                    conn: None,
                });
                l.deadline = renewed(s.timeout_ms);
            }
        }
    }

    /// This node stopped leading. Writes it took as leader may be lost with its term
    /// (openraft drops them without an answer), so the connections waiting on one of this
    /// node's writes are closed, as ZooKeeper closes its clients' connections when its leader
    /// goes: the clients reconnect at once (and learn the outcome) instead of waiting out
    /// their own timeouts. A restarted leader that briefly led its old term again before a
    /// new leader was elected held a client's session ~1 s this way.
    pub fn stepped_down(&mut self) {
        let waiting: std::collections::BTreeSet<ConnId> = self
            .pending
            .values()
            .filter_map(Pending::conn)
            .filter(|c| self.conns.contains_key(c))
            .collect();
        if !waiting.is_empty() {
            tracing::info!(
                "no longer the leader: closing {} client connection(s) with writes in doubt",
                waiting.len()
            );
        }
        for c in waiting {
            self.close(c);
        }
    }

    /// Renew sessions a follower reports active (leader side).
    pub fn touched(&mut self, sessions: &[i64]) {
        for s in sessions {
            if !self.live.contains_key(s) {
                if let Some(st) = self.state.sessions.get(s) {
                    self.live.insert(
                        *s,
                        Live {
                            deadline: Instant::now(),
                            timeout_ms: st.timeout_ms,
                            conn: None,
                        },
                    );
                }
            }
            self.touch(*s);
        }
    }

    /// Sessions that were active on this node since the last call (a follower reports them
    /// to the leader, which expires the silent ones).
    pub fn take_active_sessions(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.active).into_iter().collect()
    }

    fn push(&mut self, conn: ConnId, frame: Vec<u8>) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.sent += 1;
        }
        self.stats.sent += 1;
        self.outbox.push((conn, Out::Frame(frame)));
    }

    fn close(&mut self, conn: ConnId) {
        self.outbox.push((conn, Out::Close));
    }

    fn password(&self, session: i64) -> [u8; 16] {
        let mut h = Sha1::new();
        h.update(self.secret);
        h.update(session.to_be_bytes());
        h.finalize()[..16].try_into().expect("16 bytes")
    }

    /// Renew a session. Expiry is checked every half tick, so a session expires between
    /// timeout and timeout + tick/2 after the last packet the leader heard of (ZooKeeper: between
    /// timeout and timeout + tick); a follower reports its sessions every half tick.
    fn touch(&mut self, session: i64) {
        if matches!(self.backing, Backing::Ensemble(_)) {
            self.active.insert(session);
        }
        if let Some(l) = self.live.get_mut(&session) {
            l.deadline = renewed(l.timeout_ms);
        }
    }

    /// Send a write down the write path. Standalone: stamp, log and apply it now. Ensemble:
    /// propose it; [`Core::on_sm_event`] finishes it when this node applies it. Either way
    /// `pending` says what to answer, and the connection takes no other request meanwhile.
    fn submit(
        &mut self,
        session: i64,
        auth: Vec<AuthId>,
        txn: Txn,
        pending: Pending,
    ) -> Result<(), PersistError> {
        if let Some(conn) = pending.conn() {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.in_flight += 1;
                c.barriers += u32::from(pending.is_barrier());
            }
        }
        match &mut self.backing {
            Backing::Standalone(log) => {
                let e = Entry {
                    zxid: self.state.last_zxid + 1,
                    time_ms: now_ms(),
                    session_id: session,
                    auth,
                    txn,
                };
                log.append(&e)?;
                let applied = self.state.apply(&e);
                self.fire(&applied);
                self.finish(pending, &applied);
            }
            Backing::Ensemble(ens) => {
                ens.next_pending += 1;
                let id = ens.next_pending;
                let origin = Origin {
                    node: ens.me,
                    incarnation: ens.incarnation,
                    conn: id,
                    xid: 0,
                };
                let e = Entry {
                    zxid: 0,
                    time_ms: now_ms(),
                    session_id: session,
                    auth,
                    txn,
                };
                let _ = ens.proposals.send(Proposal {
                    origin: Some(origin),
                    entry: persist::encode_entry(&e),
                });
                self.pending.insert(id, pending);
            }
        }
        Ok(())
    }

    /// Hand a reconfig to the reconfig task; its outcome arrives as this node's applied entry.
    fn submit_reconfig(
        &mut self,
        session: i64,
        auth: Vec<AuthId>,
        request: ReconfigRequest,
        allowed: bool,
        pending: Pending,
    ) {
        let Backing::Ensemble(ens) = &mut self.backing else {
            return;
        };
        if let Some(c) = pending.conn().and_then(|conn| self.conns.get_mut(&conn)) {
            c.in_flight += 1;
            c.barriers += u32::from(pending.is_barrier());
        }
        ens.next_pending += 1;
        let id = ens.next_pending;
        let _ = ens.reconfigs.send(ReconfigJob {
            // Reconfigs reach the log by another path than writes, so possibly after later
            // writes of this node: their ids are deduplicated in a sequence of their own.
            origin: Origin {
                node: ens.me,
                incarnation: ens.incarnation.wrapping_add(1),
                conn: id,
                xid: 0,
            },
            session,
            auth: auth.into_iter().map(|a| (a.scheme, a.id)).collect(),
            time_ms: now_ms(),
            request,
            allowed,
        });
        self.pending.insert(id, pending);
    }

    /// Queue the notifications of an applied entry.
    fn fire(&mut self, applied: &Applied) {
        for ev in &applied.events {
            for conn in self.watches.trigger(ev) {
                let frame = notification(ev.kind, &ev.path);
                self.push(conn, frame);
            }
        }
    }

    /// Answer what waited for an applied entry.
    fn finish(&mut self, pending: Pending, a: &Applied) {
        if let Some(c) = pending.conn().and_then(|conn| self.conns.get_mut(&conn)) {
            c.barriers = c.barriers.saturating_sub(u32::from(pending.is_barrier()));
        }
        match pending {
            // A sync is never proposed; it is answered by `SmEvent::Synced`.
            Pending::Internal | Pending::Sync { .. } => {}
            Pending::Reply {
                conn,
                xid,
                kind,
                received,
            } => {
                match kind {
                    WriteKind::Single | WriteKind::Reconfig => {
                        let (err, body) = match &a.result {
                            TxnResult::Single(Ok(r)) => (0, encode_op_result(r)),
                            TxnResult::Single(Err(code)) => (code.code(), vec![]),
                            _ => (ErrorCode::SystemError.code(), vec![]),
                        };
                        self.reply(conn, xid, a.zxid, err, &body, received);
                    }
                    WriteKind::Multi(n) => {
                        let body = match &a.result {
                            TxnResult::Multi(r) => encode_multi_result(r, n),
                            _ => vec![],
                        };
                        self.reply(conn, xid, a.zxid, 0, &body, received);
                    }
                    WriteKind::Error(code) => self.reply(conn, xid, a.zxid, code, &[], received),
                    WriteKind::Close => {
                        if let Some(s) = self.conns.get_mut(&conn).and_then(|c| c.session.take()) {
                            self.live.remove(&s);
                        }
                        self.reply(conn, xid, a.zxid, 0, &[], received);
                        self.close(conn);
                    }
                    WriteKind::CloseConnection => self.close(conn),
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.in_flight = c.in_flight.saturating_sub(1);
                }
            }
            Pending::Connect {
                conn,
                session,
                passwd,
                timeout,
                read_only,
            } => {
                self.attach(conn, session, timeout);
                let frame =
                    encode_connect_response(timeout, session, &passwd, read_only.map(|_| false));
                self.push(conn, frame);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.in_flight = c.in_flight.saturating_sub(1);
                }
            }
        }
    }

    /// Bind a session to a connection and start (or renew) its liveness.
    fn attach(&mut self, conn: ConnId, session: i64, timeout: i32) {
        self.live.insert(
            session,
            Live {
                deadline: Instant::now(),
                timeout_ms: timeout,
                conn: Some(conn),
            },
        );
        self.touch(session);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(session);
            c.timeout_ms = timeout;
        }
    }

    /// Ensemble: an entry this node's state machine applied (or a snapshot it installed).
    pub fn on_sm_event(&mut self, ev: SmEvent) -> Result<(), PersistError> {
        let a = match ev {
            SmEvent::Installed(state) => {
                self.state = *state;
                self.refresh_in_config();
                return Ok(());
            }
            SmEvent::Synced(id, ok) => {
                if let Some(Pending::Sync {
                    conn,
                    xid,
                    path,
                    received,
                }) = self.pending.remove(&id)
                {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.in_flight = c.in_flight.saturating_sub(1);
                        c.barriers = c.barriers.saturating_sub(1);
                    }
                    if ok {
                        let mut w = Writer::new();
                        w.string(&path);
                        let z = self.state.last_zxid;
                        self.reply(conn, xid, z, 0, &w.buf, received);
                        self.drain(conn)?;
                    } else {
                        self.close(conn);
                    }
                }
                return Ok(());
            }
            SmEvent::Snapshot(to) => {
                to.write(&self.state);
                return Ok(());
            }
            SmEvent::Applied(a) => a,
        };
        if a.entry.zxid <= self.state.last_zxid {
            return Ok(()); // already in the state this node started from
        }
        let applied = self.state.apply(&a.entry);
        self.fire(&applied);
        if matches!(a.entry.txn, Txn::Reconfig { .. }) {
            self.refresh_in_config();
        }
        let session = a.entry.session_id;
        match &a.entry.txn {
            Txn::CreateSession { timeout_ms, .. } if self.is_leader() => {
                // The leader tracks every session's liveness, wherever its connection is.
                self.live.entry(session).or_insert(Live {
                    deadline: renewed(*timeout_ms),
                    timeout_ms: *timeout_ms,
                    conn: None,
                });
            }
            Txn::CloseSession => {
                // Expired by the leader, or closed elsewhere: drop a local connection bound to it.
                if let Some(l) = self.live.remove(&session) {
                    if let Some(c) = l.conn {
                        let mine = a.origin.is_some_and(|o| self.is_mine(&o));
                        if !mine {
                            if let Some(conn) = self.conns.get_mut(&c) {
                                conn.session = None;
                            }
                            self.close(c);
                        }
                    }
                }
            }
            _ => {}
        }
        if let Some(o) = a.origin.filter(|o| self.is_mine(o)) {
            if let Some(p) = self.pending.remove(&o.conn) {
                let conn = p.conn();
                self.finish(p, &applied);
                if let Some(conn) = conn {
                    self.drain(conn)?;
                }
            }
        }
        Ok(())
    }

    /// Recompute whether the committed config lists this node.
    pub fn refresh_in_config(&mut self) {
        let Backing::Ensemble(e) = &mut self.backing else {
            return;
        };
        let text = self
            .state
            .get("/zookeeper/config")
            .and_then(|n| n.data.as_deref())
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let before = e.in_config;
        e.in_config = match super::dynconfig::DynConfig::parse(&text) {
            Ok(c) if !c.members.is_empty() => c.members.contains_key(&e.me),
            _ => true,
        };
        if before && !e.in_config && e.config_seen {
            tracing::warn!(
                "node {} was removed from the ensemble by a reconfig: it serves no clients \
                 and takes no part in elections; a reconfig joining it (or `zkherd add`) \
                 brings it back",
                e.me
            );
            let conns: Vec<ConnId> = self.conns.keys().copied().collect();
            for c in conns {
                self.close(c);
            }
        }
        if let Backing::Ensemble(e) = &mut self.backing {
            e.config_seen = true;
        }
    }

    fn is_mine(&self, o: &Origin) -> bool {
        match &self.backing {
            Backing::Ensemble(e) => {
                o.node == e.me
                    && (o.incarnation == e.incarnation
                        || o.incarnation == e.incarnation.wrapping_add(1))
            }
            Backing::Standalone(_) => false,
        }
    }

    /// Whether this node leads (always, for a standalone server).
    pub fn is_leader(&self) -> bool {
        match &self.backing {
            Backing::Standalone(_) => true,
            Backing::Ensemble(e) => e.raft.metrics().borrow_watched().current_leader == Some(e.me),
        }
    }

    /// Run requests that waited behind a write, until the next write.
    fn drain(&mut self, conn: ConnId) -> Result<(), PersistError> {
        loop {
            let next = match self.conns.get_mut(&conn) {
                Some(c) if c.may_run(c.queue.front().map(|q| &q.req), true) => c.queue.pop_front(),
                _ => None,
            };
            let Some(q) = next else {
                return Ok(());
            };
            self.request(conn, q.xid, q.opcode, q.req, q.received, true)?;
        }
    }

    fn connect(
        &mut self,
        conn: ConnId,
        req: ConnectRequest,
        remote: SocketAddr,
        transport_auth: Vec<AuthId>,
        tx: mpsc::UnboundedSender<Out>,
    ) -> Result<(), PersistError> {
        let mut auth = transport_auth;
        auth.push(AuthId {
            scheme: "ip".into(),
            id: remote.ip().to_string(),
        });
        self.conns.insert(
            conn,
            Conn {
                tx,
                remote,
                session: None,
                read_only: false,
                auth,
                established_ms: now_ms(),
                timeout_ms: 0,
                received: 1,
                sent: 0,
                last_op: "SESS",
                last_cxid: -1,
                last_zxid: -1,
                last_resp_ms: now_ms(),
                lat_min: u64::MAX,
                lat_max: 0,
                lat_total: 0,
                lat_count: 0,
                in_flight: 0,
                barriers: 0,
                queue: VecDeque::new(),
                sasl: None,
            },
        );
        self.stats.received += 1;
        if !self.serving() {
            if self.read_only_mode() && req.read_only == Some(true) {
                return self.connect_read_only(conn, req);
            }
            // No quorum: ZooKeeper closes connections while it is LOOKING.
            self.close(conn);
            return Ok(());
        }
        if req.last_zxid_seen > self.state.last_zxid {
            tracing::info!(
                "refusing {remote}: it has seen zxid {:#x}, this server is at {:#x}",
                req.last_zxid_seen,
                self.state.last_zxid
            );
            self.close(conn);
            return Ok(());
        }
        let timeout = req
            .timeout
            .clamp(self.cfg.min_session_timeout, self.cfg.max_session_timeout);
        if req.session_id == 0 {
            self.session_counter += 1;
            let mut id = self.session_base + self.session_counter;
            if id == i64::MIN {
                id += 1;
            }
            let passwd = self.password(id);
            let ip = self.conns[&conn].auth.clone();
            return self.submit(
                id,
                ip,
                Txn::CreateSession {
                    timeout_ms: timeout,
                    passwd,
                },
                Pending::Connect {
                    conn,
                    session: id,
                    passwd,
                    timeout,
                    read_only: req.read_only,
                },
            );
        }
        let id = req.session_id;
        match self.state.sessions.get(&id).map(|s| s.passwd) {
            Some(stored) if stored.as_slice() == req.passwd.as_slice() => {
                // A reconnect with the same id takes the session from any other connection.
                if let Some(other) = self.live.get(&id).and_then(|l| l.conn) {
                    if other != conn {
                        if let Some(c) = self.conns.get_mut(&other) {
                            c.session = None;
                        }
                        self.watches.drop_conn(other);
                        self.close(other);
                    }
                }
                self.attach(conn, id, timeout);
                let frame =
                    encode_connect_response(timeout, id, &stored, req.read_only.map(|_| false));
                self.push(conn, frame);
            }
            _ => {
                let frame = encode_connect_response(0, 0, &[0; 16], req.read_only.map(|_| false));
                self.push(conn, frame);
                self.close(conn);
            }
        }
        Ok(())
    }

    /// Whether this node serves read-only sessions now: `readonlymode.enabled`, an ensemble
    /// member still in the config, and no quorum to serve writes.
    pub fn read_only_mode(&self) -> bool {
        self.cfg.read_only
            && matches!(&self.backing, Backing::Ensemble(e) if e.in_config)
            && !self.serving()
    }

    /// A read-only session, as Apache's ReadOnlyZooKeeperServer gives one: a local session
    /// (nothing to replicate without a quorum), answered with readOnly = true. A client that
    /// asks to resume a session gets a new one here, as a local one.
    fn connect_read_only(&mut self, conn: ConnId, req: ConnectRequest) -> Result<(), PersistError> {
        let timeout = req
            .timeout
            .clamp(self.cfg.min_session_timeout, self.cfg.max_session_timeout);
        self.session_counter += 1;
        let id = self.session_base + self.session_counter;
        let passwd = self.password(id);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.read_only = true;
        }
        self.attach(conn, id, timeout);
        let frame = encode_connect_response(timeout, id, &passwd, Some(true));
        self.push(conn, frame);
        tracing::info!("read-only session {id:#x} (no quorum; readonlymode.enabled)");
        Ok(())
    }

    /// A request on a read-only session that cannot take the usual path: writes (and
    /// `sync`, reconfig, a top-level check) are refused with NotReadOnly, as Apache's
    /// ReadOnlyRequestProcessor does, and a close is answered here. Returns whether it
    /// answered; reads, pings, watches and auth go the usual way.
    fn read_only_request(
        &mut self,
        conn: ConnId,
        xid: i32,
        session: i64,
        req: &Request,
        received: Instant,
    ) -> bool {
        let last = self.state.last_zxid;
        match req {
            Request::Write(_)
            | Request::Multi(_)
            | Request::Sync { .. }
            | Request::Reconfig(_)
            | Request::Unimplemented(op::CHECK) => {
                let code = ErrorCode::NotReadOnly.code();
                self.reply(conn, xid, last, code, &[], received);
                true
            }
            Request::CloseSession => {
                self.live.remove(&session);
                self.reply(conn, xid, last, 0, &[], received);
                self.close(conn);
                true
            }
            _ => false,
        }
    }

    fn request(
        &mut self,
        conn: ConnId,
        xid: i32,
        opcode: i32,
        req: Result<Request, proto::DecodeError>,
        received: Instant,
        from_queue: bool,
    ) -> Result<(), PersistError> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        if !c.may_run(Some(&req), from_queue) {
            // Per-session FIFO: wait for the write (or the session creation) in flight.
            c.queue.push_back(Queued {
                xid,
                opcode,
                req,
                received,
            });
            return Ok(());
        }
        let Some(session) = c.session else {
            return Ok(());
        };
        c.received += 1;
        c.last_op = opname(opcode);
        if xid > 0 {
            c.last_cxid = xid;
        }
        self.stats.received += 1;
        self.touch(session);
        let req = match req {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("conn {conn}: opcode {opcode} does not decode: {e}");
                let z = self.state.last_zxid;
                self.reply(
                    conn,
                    xid,
                    z,
                    ErrorCode::MarshallingError.code(),
                    &[],
                    received,
                );
                return Ok(());
            }
        };
        if self.conns.get(&conn).is_some_and(|c| c.read_only)
            && self.read_only_request(conn, xid, session, &req, received)
        {
            return Ok(());
        }
        let auth = self.conns[&conn].auth.clone();
        let last = self.state.last_zxid;
        let reply_to = |kind| Pending::Reply {
            conn,
            xid,
            kind,
            received,
        };
        match req {
            Request::Ping => {
                let mut w = Writer::frame();
                w.reply_header(xid::PING, last, 0);
                self.push(conn, w.into_frame());
            }
            Request::Write(op) => {
                self.submit(session, auth, Txn::Write(op), reply_to(WriteKind::Single))?;
            }
            Request::Multi(ops) => {
                let n = ops.len();
                self.submit(
                    session,
                    auth,
                    Txn::Multi(ops),
                    reply_to(WriteKind::Multi(n)),
                )?;
            }
            Request::CloseSession => {
                self.submit(session, auth, Txn::CloseSession, reply_to(WriteKind::Close))?;
            }
            Request::Unimplemented(op::CHECK) => {
                // Apache makes a top-level check an error txn (it takes a zxid), then closes
                // the connection without answering. Measured against 3.8.0 by
                // tests/differential.rs.
                self.submit(
                    session,
                    auth,
                    Txn::Error(ErrorCode::Unimplemented.code()),
                    reply_to(WriteKind::CloseConnection),
                )?;
            }
            Request::Sasl { token } => self.sasl(conn, xid, &token, received),
            Request::Unimplemented(_) => {
                self.reply(
                    conn,
                    xid,
                    -1,
                    ErrorCode::Unimplemented.code(),
                    &[],
                    received,
                );
                self.close(conn);
            }
            Request::Reconfig(r) => {
                // Apache turns a refused reconfig into an error txn: it takes a zxid.
                // Disabled is checked first, then standalone; the rest on the leader.
                let refused = if !self.cfg.reconfig_enabled {
                    Some(ErrorCode::ReconfigDisabled)
                } else if matches!(self.backing, Backing::Standalone(_)) {
                    Some(ErrorCode::Unimplemented)
                } else {
                    None
                };
                if let Some(code) = refused {
                    let code = code.code();
                    self.submit(
                        session,
                        auth,
                        Txn::Error(code),
                        reply_to(WriteKind::Error(code)),
                    )?;
                } else {
                    let allowed = self
                        .state
                        .get("/zookeeper/config")
                        .is_some_and(|n| State::check_acl(&n.acl, &auth, perms::WRITE));
                    self.submit_reconfig(session, auth, r, allowed, reply_to(WriteKind::Reconfig));
                }
            }
            Request::Auth { scheme, auth: data } => match scheme.as_str() {
                "digest" => {
                    let id = digest_id(&data);
                    let is_super = self.state.super_digest.as_deref() == Some(id.as_str());
                    let c = self.conns.get_mut(&conn).expect("conn exists");
                    let new = AuthId {
                        scheme: "digest".into(),
                        id,
                    };
                    if !c.auth.contains(&new) {
                        c.auth.push(new);
                    }
                    if is_super {
                        let s = AuthId {
                            scheme: "super".into(),
                            id: String::new(),
                        };
                        if !c.auth.contains(&s) {
                            c.auth.push(s);
                        }
                    }
                    self.reply(conn, xid, 0, 0, &[], received);
                }
                "ip" => self.reply(conn, xid, 0, 0, &[], received),
                _ => {
                    self.stats.auth_failed += 1;
                    self.reply(conn, xid, 0, ErrorCode::AuthFailed.code(), &[], received);
                    self.close(conn);
                }
            },
            Request::SetWatches(sw) => {
                self.set_watches(conn, &sw);
                self.reply(conn, xid, last, 0, &[], received);
            }
            Request::Sync { path } if matches!(self.backing, Backing::Ensemble(_)) => {
                if let Backing::Ensemble(ens) = &mut self.backing {
                    ens.next_pending += 1;
                    let id = ens.next_pending;
                    let _ = ens.syncs.send(id);
                    self.pending.insert(
                        id,
                        Pending::Sync {
                            conn,
                            xid,
                            path,
                            received,
                        },
                    );
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.in_flight += 1;
                        c.barriers += 1;
                    }
                }
            }
            read => {
                let (err, body) = match self.read(conn, session, &auth, read) {
                    Ok(b) => (0, b),
                    Err(code) => (code.code(), vec![]),
                };
                self.reply(conn, xid, last, err, &body, received);
            }
        }
        Ok(())
    }

    /// One SASL packet: the next step of the connection's DIGEST-MD5 exchange. A failure is
    /// answered as Apache does (AuthFailed, a null token, the connection closed) unless
    /// `allowSaslFailedClients` keeps it.
    fn sasl(&mut self, conn: ConnId, xid: i32, token: &[u8], received: Instant) {
        let Some(cfg) = self.cfg.sasl.as_ref() else {
            tracing::warn!(
                "connection {conn}: a SASL packet, but SASL is not configured (no JAAS file with \
                 a {} section: zoo.cfg java.security.auth.login.config); refused",
                self.cfg.sasl_section
            );
            self.stats.auth_failed += 1;
            self.sasl_reply(conn, xid, ErrorCode::AuthFailed.code(), None, received);
            self.close(conn);
            return;
        };
        let users = cfg.users.clone();
        let super_user = self.cfg.sasl_super_user.clone();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let remote = c.remote;
        let exchange = c
            .sasl
            .get_or_insert_with(|| sasl::DigestMd5::new(users, sasl::new_nonce()));
        match exchange.step(token) {
            Ok(sasl::SaslStep::Continue(t)) => {
                self.sasl_reply(conn, xid, 0, Some(&t), received);
            }
            Ok(sasl::SaslStep::Done { id, token: t }) => {
                tracing::info!("client {remote}: SASL authorization id {id}");
                // whoami lists super first, then the sasl id (measured against 3.8.0).
                let mut ids = Vec::new();
                if super_user.as_deref() == Some(id.as_str()) {
                    ids.push(AuthId {
                        scheme: "super".into(),
                        id: String::new(),
                    });
                }
                ids.push(AuthId {
                    scheme: "sasl".into(),
                    id: id.clone(),
                });
                for a in ids {
                    if !c.auth.contains(&a) {
                        c.auth.push(a);
                    }
                }
                self.sasl_reply(conn, xid, 0, Some(&t), received);
            }
            Err(e) => {
                tracing::warn!("client {remote} failed to SASL authenticate: {e}");
                self.stats.auth_failed += 1;
                if self.cfg.allow_sasl_failed {
                    self.sasl_reply(conn, xid, 0, None, received);
                } else {
                    self.sasl_reply(conn, xid, ErrorCode::AuthFailed.code(), None, received);
                    self.close(conn);
                }
            }
        }
    }

    /// A SetSASLResponse: zxid 0 and the token (null on failure) even with an error code, as
    /// Apache writes it.
    fn sasl_reply(
        &mut self,
        conn: ConnId,
        xid: i32,
        err: i32,
        token: Option<&[u8]>,
        received: Instant,
    ) {
        let mut body = Writer::new();
        body.buffer(token);
        self.reply_keeping_body(conn, xid, 0, err, &body.buf, received);
    }

    /// A reply; an error reply carries no body.
    fn reply(
        &mut self,
        conn: ConnId,
        xid: i32,
        zxid: i64,
        err: i32,
        body: &[u8],
        received: Instant,
    ) {
        let body = if err == 0 { body } else { &[] };
        self.reply_keeping_body(conn, xid, zxid, err, body, received);
    }

    fn reply_keeping_body(
        &mut self,
        conn: ConnId,
        xid: i32,
        zxid: i64,
        err: i32,
        body: &[u8],
        received: Instant,
    ) {
        let mut w = Writer::frame();
        w.reply_header(xid, zxid, err);
        w.buf.extend_from_slice(body);
        let lat = received.elapsed().as_millis() as u64;
        self.stats.lat_min = self.stats.lat_min.min(lat);
        self.stats.lat_max = self.stats.lat_max.max(lat);
        self.stats.lat_total += lat;
        self.stats.lat_count += 1;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.last_zxid = zxid;
            c.last_resp_ms = now_ms();
            c.lat_min = c.lat_min.min(lat);
            c.lat_max = c.lat_max.max(lat);
            c.lat_total += lat;
            c.lat_count += 1;
        }
        let frame = w.into_frame();
        let size = frame.len() as i64;
        let st = &mut self.stats;
        st.resp_last = size;
        st.resp_min = if st.resp_min < 0 {
            size
        } else {
            st.resp_min.min(size)
        };
        st.resp_max = st.resp_max.max(size);
        self.push(conn, frame);
    }

    /// Reads and the watch ops: answered from the applied state.
    fn read(
        &mut self,
        conn: ConnId,
        session: i64,
        auth: &[AuthId],
        req: Request,
    ) -> Result<Vec<u8>, ErrorCode> {
        let mut w = Writer::new();
        match req {
            Request::Exists { path, watch } => {
                if path.contains('\0') {
                    return Err(ErrorCode::BadArguments);
                }
                if watch {
                    self.watches.add_data(&path, conn);
                }
                // Apache 3.8.0 (the release this server is compared with) checks no ACL on
                // exists; later 3.8/3.9 releases require READ.
                let n = self.state.get(&path).ok_or(ErrorCode::NoNode)?;
                w.stat(&n.visible_stat());
            }
            Request::GetData { path, watch } => {
                let n = self.state.get(&path).ok_or(ErrorCode::NoNode)?;
                if !State::check_acl(&n.acl, auth, perms::READ) {
                    return Err(ErrorCode::NoAuth);
                }
                w.buffer(n.data.as_deref()).stat(&n.visible_stat());
                if watch {
                    self.watches.add_data(&path, conn);
                }
            }
            Request::GetChildren {
                path,
                watch,
                with_stat,
            } => {
                let n = self.state.get(&path).ok_or(ErrorCode::NoNode)?;
                if !State::check_acl(&n.acl, auth, perms::READ) {
                    return Err(ErrorCode::NoAuth);
                }
                let children: Vec<&String> = n.children.iter().collect();
                w.strings(&children);
                if with_stat {
                    w.stat(&n.visible_stat());
                }
                if watch {
                    self.watches.add_child(&path, conn);
                }
            }
            Request::GetAcl { path } => {
                let n = self.state.get(&path).ok_or(ErrorCode::NoNode)?;
                if !State::check_acl(&n.acl, auth, perms::READ | perms::ADMIN) {
                    return Err(ErrorCode::NoAuth);
                }
                let admin = State::check_acl(&n.acl, auth, perms::ADMIN);
                let acl: Vec<Acl> = n
                    .acl
                    .iter()
                    .map(|a| {
                        if !admin && a.scheme == "digest" {
                            let user = a.id.split(':').next().unwrap_or("");
                            Acl {
                                perms: a.perms,
                                scheme: a.scheme.clone(),
                                id: format!("{user}:x"),
                            }
                        } else {
                            a.clone()
                        }
                    })
                    .collect();
                w.acls(&acl).stat(&n.visible_stat());
            }
            Request::Sync { path } => {
                w.string(&path);
            }
            Request::MultiRead(ops) => {
                for o in ops {
                    let r = match &o {
                        ReadOp::GetData { path } => {
                            self.state.get(path).ok_or(ErrorCode::NoNode).and_then(|n| {
                                if State::check_acl(&n.acl, auth, perms::READ) {
                                    let mut b = Writer::new();
                                    b.buffer(n.data.as_deref()).stat(&n.visible_stat());
                                    Ok((op::GET_DATA, b.buf))
                                } else {
                                    Err(ErrorCode::NoAuth)
                                }
                            })
                        }
                        ReadOp::GetChildren { path } => {
                            self.state.get(path).ok_or(ErrorCode::NoNode).and_then(|n| {
                                if State::check_acl(&n.acl, auth, perms::READ) {
                                    let mut b = Writer::new();
                                    let c: Vec<&String> = n.children.iter().collect();
                                    b.strings(&c);
                                    Ok((op::GET_CHILDREN, b.buf))
                                } else {
                                    Err(ErrorCode::NoAuth)
                                }
                            })
                        }
                    };
                    match r {
                        Ok((t, body)) => {
                            w.int(t).boolean(false).int(0);
                            w.buf.extend_from_slice(&body);
                        }
                        Err(code) => {
                            w.int(op::ERROR)
                                .boolean(false)
                                .int(code.code())
                                .int(code.code());
                        }
                    }
                }
                w.int(-1).boolean(true).int(-1);
            }
            Request::CheckWatches { path, kind } => {
                if !self.watches.check(&path, conn, kind) {
                    return Err(ErrorCode::NoWatcher);
                }
            }
            Request::RemoveWatches { path, kind } => {
                if !self.watches.remove(&path, conn, kind) {
                    return Err(ErrorCode::NoWatcher);
                }
            }
            Request::GetEphemerals { prefix } => {
                let all = prefix.is_empty() || prefix == "/";
                let paths: Vec<&String> = self
                    .state
                    .ephemerals
                    .get(&session)
                    .map(|s| s.iter().filter(|p| all || p.starts_with(&prefix)).collect())
                    .unwrap_or_default();
                w.strings(&paths);
            }
            Request::GetAllChildrenNumber { path } => {
                let n = self.state.get(&path).ok_or(ErrorCode::NoNode)?;
                if !State::check_acl(&n.acl, auth, perms::READ) {
                    return Err(ErrorCode::NoAuth);
                }
                let key = if path.is_empty() { "/" } else { path.as_str() };
                w.int(self.state.descendants(key) as i32);
            }
            Request::AddWatch { path, mode } => {
                match mode {
                    0 => self.watches.add_persistent(&path, conn, false),
                    1 => self.watches.add_persistent(&path, conn, true),
                    _ => return Err(ErrorCode::BadArguments),
                }
                w.int(0);
            }
            Request::WhoAmI => {
                // Apache lists the authenticated ids before the connection's ip id.
                let ordered = auth
                    .iter()
                    .filter(|a| a.scheme != "ip")
                    .chain(auth.iter().filter(|a| a.scheme == "ip"));
                let ids: Vec<(String, String)> = ordered
                    .map(|a| match a.scheme.as_str() {
                        "digest" => (
                            a.scheme.clone(),
                            a.id.split(':').next().unwrap_or("").to_string(),
                        ),
                        "super" => (a.scheme.clone(), String::new()),
                        _ => (a.scheme.clone(), a.id.clone()),
                    })
                    .collect();
                w.int(ids.len() as i32);
                for (s, u) in ids {
                    w.string(&s).string(&u);
                }
            }
            other => {
                tracing::warn!("unexpected request on the read path: {other:?}");
                return Err(ErrorCode::Unimplemented);
            }
        }
        Ok(w.buf)
    }

    /// SetWatches/SetWatches2: catch-up events for what changed since `relative_zxid`, then
    /// re-register the rest (section 7.4).
    fn set_watches(&mut self, conn: ConnId, sw: &SetWatches) {
        let rel = sw.relative_zxid;
        for p in &sw.data {
            match self.state.get(p).map(|n| n.stat.mzxid) {
                None => self.push(conn, notification(EventType::NodeDeleted, p)),
                Some(m) if m > rel => self.push(conn, notification(EventType::NodeDataChanged, p)),
                Some(_) => self.watches.add_data(p, conn),
            }
        }
        for p in &sw.exist {
            if self.state.get(p).is_some() {
                self.push(conn, notification(EventType::NodeCreated, p));
            } else {
                self.watches.add_data(p, conn);
            }
        }
        for p in &sw.child {
            match self.state.get(p).map(|n| n.stat.pzxid) {
                None => self.push(conn, notification(EventType::NodeDeleted, p)),
                Some(z) if z > rel => {
                    self.push(conn, notification(EventType::NodeChildrenChanged, p))
                }
                Some(_) => self.watches.add_child(p, conn),
            }
        }
        for p in &sw.persistent {
            self.watches.add_persistent(p, conn, false);
        }
        for p in &sw.persistent_recursive {
            self.watches.add_persistent(p, conn, true);
        }
    }

    /// Expire sessions whose deadline passed: one closeSession each, connection closed silently.
    pub fn expire_sessions(&mut self) -> Result<(), PersistError> {
        if !self.is_leader() {
            return Ok(());
        }
        let now = Instant::now();
        let due: Vec<i64> = self
            .live
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let l = self.live.remove(&id).expect("listed");
            tracing::info!("session {id:#x} expired");
            if self.state.sessions.contains_key(&id) {
                self.submit(id, vec![], Txn::CloseSession, Pending::Internal)?;
            }
            if let Some(c) = l.conn {
                if let Some(conn) = self.conns.get_mut(&c) {
                    conn.session = None;
                }
                self.close(c);
            }
        }
        Ok(())
    }

    /// Delete empty containers and expired TTL nodes.
    pub fn reap(&mut self) -> Result<(), PersistError> {
        if !self.is_leader() {
            return Ok(());
        }
        for path in self.state.reapable(now_ms()) {
            self.submit(0, vec![], Txn::Reap { path }, Pending::Internal)?;
        }
        Ok(())
    }
}

/// When a session heard from now expires.
fn renewed(timeout_ms: i32) -> Instant {
    Instant::now() + Duration::from_millis(timeout_ms.max(0) as u64)
}

/// `user:` + base64(SHA-1(`user:password`)).
pub fn digest_id(auth: &[u8]) -> String {
    let text = String::from_utf8_lossy(auth);
    let user = text.split(':').next().unwrap_or("");
    let hash = Sha1::digest(auth);
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

fn notification(kind: EventType, path: &str) -> Vec<u8> {
    let mut w = Writer::frame();
    // ZooKeeper up to 3.8 sends −1 as the notification zxid.
    w.reply_header(xid::NOTIFICATION, -1, 0)
        .int(kind as i32)
        .int(3)
        .string(path);
    w.into_frame()
}

fn encode_op_result(r: &OpResult) -> Vec<u8> {
    let mut w = Writer::new();
    match r {
        OpResult::Create { opcode, path, stat } => {
            w.string(path);
            if *opcode != op::CREATE {
                w.stat(stat);
            }
        }
        OpResult::Delete | OpResult::Check => {}
        OpResult::Config { data, stat } => {
            w.buffer(Some(data)).stat(stat);
        }
        OpResult::SetData { stat } | OpResult::SetAcl { stat } => {
            w.stat(stat);
        }
    }
    w.buf
}

fn encode_multi_result(r: &Result<Vec<OpResult>, (usize, ErrorCode)>, n: usize) -> Vec<u8> {
    let mut w = Writer::new();
    match r {
        Ok(results) => {
            for res in results {
                let (t, body): (i32, Vec<u8>) = match res {
                    // Apache 3.8 answers every create inside a multi as type 1 (path only),
                    // create2/createTTL/createContainer included.
                    OpResult::Create { path, .. } => {
                        let mut b = Writer::new();
                        b.string(path);
                        (op::CREATE, b.buf)
                    }
                    OpResult::Delete => (op::DELETE, vec![]),
                    OpResult::SetData { .. } => (op::SET_DATA, encode_op_result(res)),
                    OpResult::SetAcl { .. } => (op::SET_ACL, encode_op_result(res)),
                    OpResult::Check => (op::CHECK, vec![]),
                    OpResult::Config { .. } => (op::RECONFIG, encode_op_result(res)),
                };
                w.int(t).boolean(false).int(0);
                w.buf.extend_from_slice(&body);
            }
        }
        Err((idx, code)) => {
            for i in 0..n {
                let c = match i.cmp(idx) {
                    std::cmp::Ordering::Less => 0,
                    std::cmp::Ordering::Equal => code.code(),
                    std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency.code(),
                };
                w.int(op::ERROR).boolean(false).int(c).int(c);
            }
        }
    }
    w.int(-1).boolean(true).int(-1);
    w.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ids_match_zookeepers_test_vector() {
        assert_eq!(
            digest_id(b"super:admin"),
            "super:xQJmxLMiHGwaqBvst5y6rkB6HQs="
        );
    }
}
