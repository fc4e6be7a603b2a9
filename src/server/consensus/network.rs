//! Raft messages between nodes over TCP.
//!
//! Frame: `"ZKH2" | u32 length | u32 crc32(payload) | payload` (payload = an openraft message
//! in [`codec`](super::codec)'s binary form; `"ZKHR"` framed the JSON of zkherd before 0.2).
//! Votes and pre-votes go to the election port, so a large snapshot on the quorum port never
//! delays an election; append-entries and snapshots go to the quorum port. A node's
//! address is written `host:quorumPort:electionPort`, as in zoo.cfg's `server.N` lines. If the
//! first bytes on a port look like an Apache ZooKeeper peer instead, the connection is refused
//! with a log line: mixed ensembles are not supported.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendError,
    StreamAppendResult, TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::state_machine::StateMachine;
use super::{codec, Proposal, ReconfigJob, ZkRaft};

pub type Raft = openraft::Raft<ZkRaft, StateMachine>;

const MAGIC: &[u8; 4] = b"ZKH2";
/// The frame magic of zkherd before 0.2 (JSON payloads).
const OLD_MAGIC: &[u8; 4] = b"ZKHR";
/// Refuse frames above this (a snapshot of a development tree fits well below).
const MAX_FRAME: usize = 512 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
enum Rpc {
    Append(AppendEntriesRequest<ZkRaft>),
    Vote(VoteRequest<ZkRaft>),
    PreVote(VoteRequest<ZkRaft>),
    Snapshot {
        vote: VoteOf<ZkRaft>,
        meta: SnapshotMetaOf<ZkRaft>,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// A follower hands clients' writes to the leader, in order.
    Forward(Vec<Proposal>),
    /// A follower reports sessions that were active on its connections.
    Touch(Vec<i64>),
    /// A follower's `sync`: the leader confirms its leadership with a quorum and answers the
    /// log index the follower must apply before it answers (a Raft read index).
    ReadIndex,
    /// A fresh member asks whether the ensemble already exists (see `ensemble::first_start`).
    Hello,
    /// A client's reconfig, for the leader to check and commit.
    Reconfig(ReconfigJob),
    /// A leader that removed itself hands the leadership over.
    TransferLeader(TransferLeaderRequest<ZkRaft>),
    /// The sender closes this connection on purpose (it is alive): not a sign of its death.
    Bye,
    /// The leader turns this connection into a replication stream: from here on it sends only
    /// `Append`s (and a final `Bye`) without waiting for each answer, and the follower answers
    /// each with a `Reply::Stream`, in order (see `Peer::stream_append`).
    StreamAppend,
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Append(Result<AppendEntriesResponse<ZkRaft>, String>),
    Vote(Result<VoteResponse<ZkRaft>, String>),
    Snapshot(Result<SnapshotResponse<ZkRaft>, String>),
    Done(Result<(), String>),
    ReadIndex(Result<u64, String>),
    Hello {
        initialized: bool,
        leader: Option<u64>,
    },
    TransferLeader(Result<TransferLeaderResponse<ZkRaft>, String>),
    /// The outcome of one `Append` on a replication stream: the last log id now flushed, or a
    /// conflict or higher vote (which ends the stream).
    Stream(Result<StreamAppendResult<ZkRaft>, String>),
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(12 + payload.len());
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    buf.extend_from_slice(payload);
    buf
}

async fn write_frame<W: AsyncWrite + Unpin>(s: &mut W, payload: &[u8]) -> io::Result<()> {
    s.write_all(&frame(payload)).await
}

/// Close a connection this live node no longer needs, saying so first (without waiting: the
/// small frame fits the socket buffer), so the other side does not take it for a crash. A node
/// that is being killed or stopped (`dying`) closes without a word, like a crashed process.
fn close_politely(s: TcpStream, dying: &AtomicBool) {
    if !dying.load(Ordering::Relaxed) {
        let bye = codec::encode(&Rpc::Bye).unwrap_or_default();
        let _ = s.try_write(&frame(&bye));
    }
}

async fn read_frame<R: AsyncRead + Unpin>(s: &mut R) -> io::Result<Vec<u8>> {
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await?;
    if &head[..4] == OLD_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a zkherd peer older than 0.2 (JSON frames): run every node from one zkherd binary",
        ));
    }
    if &head[..4] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a zkherd Raft peer (an Apache ZooKeeper server? mixed ensembles are unsupported)",
        ));
    }
    let len = u32::from_be_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await?;
    if crc32fast::hash(&payload) != crc {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame CRC mismatch",
        ));
    }
    Ok(payload)
}

/// For the `raft_wire` fuzz target: decode `payload` as a peer message and as a reply. Either
/// is an error or a value, never a panic, and a value survives re-encoding.
#[doc(hidden)]
pub fn fuzz_peer_payload(payload: &[u8]) {
    if let Ok(rpc) = codec::decode::<Rpc>(payload) {
        let again: Rpc = codec::decode(&codec::encode(&rpc).expect("encodes")).expect("decodes");
        assert_eq!(format!("{again:?}"), format!("{rpc:?}"));
    }
    if let Ok(reply) = codec::decode::<Reply>(payload) {
        let again: Reply =
            codec::decode(&codec::encode(&reply).expect("encodes")).expect("decodes");
        assert_eq!(format!("{again:?}"), format!("{reply:?}"));
    }
}

impl Reply {
    fn into_vote(self) -> Option<Result<VoteResponse<ZkRaft>, String>> {
        match self {
            Reply::Vote(r) => Some(r),
            _ => None,
        }
    }
}

/// Where RPCs that are not Raft's own go on the receiving node.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Session touches from followers (the leader tracks session liveness).
    pub touches: Option<tokio::sync::mpsc::UnboundedSender<Vec<i64>>>,
    /// This node's id (staggers elections after the leader's connection drops).
    pub my_id: u64,
    /// When an append (or heartbeat) last arrived from a leader.
    pub contact: Arc<LeaderContact>,
    /// Reconfigs forwarded by followers, with where to say that they were handled.
    pub reconfigs: Option<tokio::sync::mpsc::UnboundedSender<ForwardedReconfig>>,
    /// Set once `/zookeeper/config` is published: the first leader holds clients' writes
    /// back until then (see [`wait_published`]).
    pub published: Arc<AtomicBool>,
}

/// A leader holds writes back (for at most half a second) until the ensemble's config is
/// published, so the publication is the first entry of its term and takes the epoch's zxid
/// 0 as Apache's initial config does (version=100000000).
pub async fn wait_published(published: &AtomicBool) {
    for _ in 0..500 {
        if published.load(Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A reconfig a follower forwarded, and the answer it waits for.
pub type ForwardedReconfig = (
    ReconfigJob,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

/// When this node last heard from a leader. Followers notice a lost leader through Raft's
/// election timer; observers (learners) have none, so they check this instead.
pub struct LeaderContact {
    base: std::time::Instant,
    /// Milliseconds after `base` of the last append; 0 = never.
    last_ms: AtomicU64,
    /// Milliseconds after `base` when a leader's connection broke without a goodbye; 0 = never.
    lost_ms: AtomicU64,
    /// Milliseconds after `base` of the last election this node started for that reason.
    campaign_ms: AtomicU64,
    /// A leader silent this long is presumed gone (Raft's minimum election timeout).
    silence: Duration,
}

impl Default for LeaderContact {
    /// Never presumes a silent leader gone (only a broken connection counts).
    fn default() -> Self {
        Self::new(Duration::MAX)
    }
}

impl LeaderContact {
    pub fn new(silence: Duration) -> Self {
        LeaderContact {
            silence,
            base: std::time::Instant::now(),
            last_ms: AtomicU64::new(0),
            lost_ms: AtomicU64::new(0),
            campaign_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        (self.base.elapsed().as_millis() as u64).max(1)
    }

    fn heard(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn lost(&self) {
        self.lost_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Whether to start an election now: not if one started in the last second.
    fn campaign(&self) -> bool {
        let now = self.now_ms();
        let last = self.campaign_ms.load(Ordering::Relaxed);
        (last == 0 || now - last > 1000)
            && self
                .campaign_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Whether this node may vote for a candidate although it followed a leader whose lease
    /// has not run out: yes if that leader's connection broke (its process died) and no leader
    /// appended since, or if no leader appended for the minimum election timeout (it hangs).
    /// This is the Raft dissertation's rule (§4.2.3) in place of openraft's longer lease
    /// (election_timeout_max), which would make a hung leader's successor wait one more round.
    fn leader_gone(&self) -> bool {
        let now = self.now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        let lost = self.lost_ms.load(Ordering::Relaxed);
        let broken = lost != 0 && lost >= last && now - lost < 10_000;
        let silent = last == 0 || Duration::from_millis(now - last) >= self.silence;
        broken || silent
    }

    /// Time since the last append from a leader (`None`: never heard from one).
    pub fn since(&self) -> Option<Duration> {
        match self.last_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(
                self.base
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms)),
            ),
        }
    }
}

/// The current leader is gone: its connection broke (its process died), or it has been silent
/// too long (it hangs). Start an election now instead of sitting out openraft's timer (its
/// lease plus an election timeout). The highest surviving myid goes first, as in ZooKeeper's
/// own election; the next one only if no leader shows up meanwhile, so the members rarely
/// split the vote.
pub fn campaign_against(raft: &Raft, leader: u64, me: u64, contact: Arc<LeaderContact>) {
    use openraft::async_runtime::watch::WatchReceiver;
    let m = raft.metrics().borrow_watched().clone();
    if m.current_leader != Some(leader) || leader == me {
        return;
    }
    let mut others: Vec<u64> = m
        .membership_config
        .membership()
        .voter_ids()
        .filter(|id| *id != leader)
        .collect();
    others.sort_unstable_by(|a, b| b.cmp(a));
    let Some(rank) = others.iter().position(|id| *id == me) else {
        return; // an observer: it never campaigns
    };
    let raft = raft.clone();
    tokio::spawn(async move {
        let delay = Duration::from_millis(10 + 150 * rank as u64);
        tokio::time::sleep(delay).await;
        // Several connections from the dead leader break at once: one election, not one each.
        if raft.metrics().borrow_watched().current_leader == Some(leader) && contact.campaign() {
            tracing::info!("leader {leader} is gone: starting an election");
            let _ = raft.trigger().elect(false).await;
        }
    });
}

/// Serve Raft RPCs arriving on `listener` until it fails.
pub async fn serve(listener: TcpListener, raft: Raft, hooks: Hooks) {
    // Connection tasks belong to this loop, so stopping it releases every Raft handle.
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let Ok((mut stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let raft = raft.clone();
        let hooks = hooks.clone();
        tasks.spawn(async move {
            // The leader whose appends arrive on this connection, if any.
            let mut sender: Option<u64> = None;
            loop {
                let frame = match read_frame(&mut stream).await {
                    Ok(f) => f,
                    Err(e) => {
                        connection_failed(&e, peer, sender, &raft, &hooks);
                        return;
                    }
                };
                let rpc: Rpc = match codec::decode(&frame) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!("Raft peer {peer}: undecodable message: {e}");
                        return;
                    }
                };
                if matches!(rpc, Rpc::StreamAppend) {
                    serve_stream(stream, &raft, &hooks, peer).await;
                    return;
                }
                let reply = match rpc {
                    Rpc::Append(r) => {
                        sender = Some(r.vote.leader_id.node_id);
                        hooks.contact.heard();
                        Reply::Append(raft.append_entries(r).await.map_err(|e| e.to_string()))
                    }
                    // A node with an empty log asked by a candidate of an existing ensemble
                    // (its log goes beyond the initial membership) is a member whose data was
                    // wiped: it has forgotten how it voted, so it votes again only after the
                    // leader has re-added it and replicated to it.
                    Rpc::Vote(r) | Rpc::PreVote(r)
                        if r.last_log_id.is_some_and(|l| l.index() > 0)
                            && !raft.is_initialized().await.unwrap_or(true) =>
                    {
                        Reply::Vote(Err(
                            "this node's log is empty (its data was wiped?): it votes once the \
                             leader has re-added it"
                                .into(),
                        ))
                    }
                    Rpc::Vote(mut r) => {
                        // This node saw its leader die: the leader's lease protects nothing
                        // any more, so the vote may be granted at once (as for a leadership
                        // transfer) instead of after the lease runs out.
                        r.leadership_transfer |= hooks.contact.leader_gone();
                        Reply::Vote(raft.vote(r).await.map_err(|e| e.to_string()))
                    }
                    Rpc::PreVote(mut r) => {
                        r.leadership_transfer |= hooks.contact.leader_gone();
                        Reply::Vote(raft.pre_vote(r).await.map_err(|e| e.to_string()))
                    }
                    Rpc::Hello => {
                        use openraft::async_runtime::watch::WatchReceiver;
                        Reply::Hello {
                            initialized: raft.is_initialized().await.unwrap_or(true),
                            leader: raft.metrics().borrow_watched().current_leader,
                        }
                    }
                    Rpc::Bye => return,
                    Rpc::StreamAppend => unreachable!("handled above"),
                    Rpc::Snapshot { vote, meta, data } => {
                        let snap = SnapshotOf::<ZkRaft, Vec<u8>> {
                            meta,
                            snapshot: data,
                        };
                        Reply::Snapshot(
                            raft.install_full_snapshot(vote, snap)
                                .await
                                .map_err(|e| e.to_string()),
                        )
                    }
                    Rpc::Forward(batch) => {
                        wait_published(&hooks.published).await;
                        let mut r = Ok(());
                        for p in batch {
                            r = raft
                                .client_write_ff(p, None)
                                .await
                                .map_err(|e| e.to_string());
                            if r.is_err() {
                                break;
                            }
                        }
                        Reply::Done(r)
                    }
                    Rpc::ReadIndex => Reply::ReadIndex(read_index(&raft).await),
                    Rpc::TransferLeader(r) => Reply::TransferLeader(
                        raft.handle_transfer_leader(r)
                            .await
                            .map_err(|e| e.to_string()),
                    ),
                    Rpc::Reconfig(job) => match &hooks.reconfigs {
                        Some(tx) => {
                            let (done, wait) = tokio::sync::oneshot::channel();
                            let _ = tx.send((job, done));
                            Reply::Done(wait.await.unwrap_or_else(|_| Err("stopping".into())))
                        }
                        None => Reply::Done(Err("this port takes no reconfigs".into())),
                    },
                    Rpc::Touch(sessions) => {
                        if let Some(t) = &hooks.touches {
                            let _ = t.send(sessions);
                        }
                        Reply::Done(Ok(()))
                    }
                };
                let bytes = codec::encode(&reply).expect("replies serialize");
                if write_frame(&mut stream, &bytes).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// A peer's connection failed: a garbled one is logged; one that closed without a goodbye
/// from the leader whose appends it carried (`sender`) means that leader's process is gone.
fn connection_failed(
    e: &io::Error,
    peer: std::net::SocketAddr,
    sender: Option<u64>,
    raft: &Raft,
    hooks: &Hooks,
) {
    if e.kind() == io::ErrorKind::InvalidData {
        tracing::warn!("Raft peer {peer}: {e}");
    } else if let Some(l) = sender {
        hooks.contact.lost();
        campaign_against(raft, l, hooks.my_id, hooks.contact.clone());
    }
}

/// A replication stream from the leader (`Rpc::StreamAppend`): its appends go to
/// `Raft::stream_append` as they arrive, and its answers go back in order as each is flushed.
async fn serve_stream(
    mut stream: TcpStream,
    raft: &Raft,
    hooks: &Hooks,
    peer: std::net::SocketAddr,
) {
    use futures_util::StreamExt;
    let (mut rd, mut wr) = stream.split();
    let (tx, rx) = tokio::sync::mpsc::channel::<AppendEntriesRequest<ZkRaft>>(64);
    let input =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let answers = raft.stream_append(input);
    let reading = async move {
        // The leader whose appends arrive here, once one has.
        let mut sender: Option<u64> = None;
        loop {
            let frame = match read_frame(&mut rd).await {
                Ok(f) => f,
                Err(e) => {
                    connection_failed(&e, peer, sender, raft, hooks);
                    return;
                }
            };
            match codec::decode::<Rpc>(&frame) {
                Ok(Rpc::Append(r)) => {
                    sender = Some(r.vote.leader_id.node_id);
                    hooks.contact.heard();
                    // Fails once Raft has ended the stream (after a conflict or a higher
                    // vote): the leader starts a new one.
                    if tx.send(r).await.is_err() {
                        return;
                    }
                }
                Ok(Rpc::Bye) => return,
                Ok(_) => {
                    tracing::warn!(
                        "Raft peer {peer}: a replication stream carried another message"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!("Raft peer {peer}: undecodable message: {e}");
                    return;
                }
            }
        }
    };
    let writing = async move {
        use futures_util::FutureExt;
        let mut answers = std::pin::pin!(answers);
        let mut out = Vec::new();
        let mut ended = false;
        while let Some(first) = answers.next().await {
            // Every answer already there goes back in one write.
            let mut next = Some(first);
            while let Some(r) = next.take() {
                let reply = Reply::Stream(r.map_err(|e| e.to_string()));
                let Ok(bytes) = codec::encode(&reply) else {
                    return;
                };
                out.extend_from_slice(&frame(&bytes));
                match answers.next().now_or_never() {
                    Some(Some(r)) => next = Some(r),
                    // Ended: write what there is, and never poll the stream again.
                    Some(None) => ended = true,
                    None => {}
                }
            }
            if wr.write_all(&out).await.is_err() || ended {
                return;
            }
            out.clear();
        }
    };
    tokio::join!(reading, writing);
}

/// On the leader: confirm leadership with a quorum (a heartbeat round) and answer the index
/// of the last committed entry, which a `sync` must see applied.
pub async fn read_index(raft: &Raft) -> Result<u64, String> {
    match raft.get_read_log_id(openraft::ReadPolicy::ReadIndex).await {
        Ok((read, _)) => Ok(read.log_id().index()),
        Err(e) => Err(e.to_string()),
    }
}

/// `host:quorumPort:electionPort` → (quorum address, election address).
pub fn split_addr(addr: &str) -> Option<(String, String)> {
    let mut parts = addr.rsplitn(3, ':');
    let election = parts.next()?;
    let quorum = parts.next()?;
    let host = parts.next()?;
    Some((format!("{host}:{quorum}"), format!("{host}:{election}")))
}

/// Makes one [`Peer`] per replication target.
#[derive(Clone, Default)]
pub struct Network {
    /// Set when this node is being stopped or killed: its connections then close without a
    /// goodbye, so the others elect a new leader at once.
    pub dying: Arc<AtomicBool>,
    pub reversions: Arc<Reversions>,
    /// Addresses to dial instead of the membership's (zkherd's link proxies), by node id.
    pub overrides: Arc<std::collections::BTreeMap<u64, String>>,
}

/// On the leader: which log entries each target acknowledged, to catch a target that lost
/// them (its data dir was wiped and it restarted empty). openraft must never see such a
/// target's conflict (it would move its replication progress backwards, which it refuses);
/// instead the target counts as unreachable and the ensemble's reconciler removes it from the
/// membership and adds it back, so it starts over from a snapshot as a new member.
#[derive(Default)]
pub struct Reversions {
    state: std::sync::Mutex<ReversionState>,
}

#[derive(Default)]
struct ReversionState {
    /// Per target: (leader term, highest log index it acknowledged to this leader).
    acked: std::collections::BTreeMap<u64, (u64, u64)>,
    /// Targets found to have lost acknowledged entries.
    lost: std::collections::BTreeSet<u64>,
    notify: Option<tokio::sync::mpsc::UnboundedSender<u64>>,
}

impl Reversions {
    /// The state; a panic elsewhere while it was held leaves plain data, still usable.
    fn state(&self) -> std::sync::MutexGuard<'_, ReversionState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where to report a target that lost its log.
    pub fn notify_to(&self, tx: tokio::sync::mpsc::UnboundedSender<u64>) {
        self.state().notify = Some(tx);
    }

    pub fn is_lost(&self, target: u64) -> bool {
        self.state().lost.contains(&target)
    }

    /// Targets currently known to have lost their log.
    pub fn lost(&self) -> Vec<u64> {
        self.state().lost.iter().copied().collect()
    }

    fn acked(&self, target: u64, term: u64, index: Option<u64>) {
        let Some(index) = index else { return };
        let mut st = self.state();
        let e = st.acked.entry(target).or_insert((term, index));
        if e.0 != term {
            *e = (term, index);
        } else {
            e.1 = e.1.max(index);
        }
    }

    /// A conflict at `prev`: whether the target lost an entry it had acknowledged this term.
    fn reverted(&self, target: u64, term: u64, prev: Option<u64>) -> bool {
        let mut st = self.state();
        let lost = st
            .acked
            .get(&target)
            .is_some_and(|(t, i)| *t == term && prev.is_some_and(|p| p <= *i));
        if lost && st.lost.insert(target) {
            tracing::warn!(
                "node {target} lost log entries it had acknowledged (its data dir was wiped?): \
                 it is removed from the membership and added back, to catch up from a snapshot"
            );
            if let Some(tx) = &st.notify {
                let _ = tx.send(target);
            }
        }
        lost
    }

    /// The target left the membership: it starts over when it is added again.
    pub fn clear(&self, target: u64) {
        let mut st = self.state();
        st.acked.remove(&target);
        st.lost.remove(&target);
    }
}

/// What the leader sent on a replication stream, for matching its answer.
struct Sent {
    term: u64,
    prev: Option<u64>,
}

/// The writing half of a replication stream: each append openraft produces goes out at once.
/// When openraft ends the stream (input exhausted, or the stream dropped) the follower is told
/// with a `Bye`, so it does not take the closed connection for the leader's death.
async fn send_appends<S>(
    mut input: S,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    sent: tokio::sync::mpsc::UnboundedSender<io::Result<Sent>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    ttl: Duration,
    dying: Arc<AtomicBool>,
) where
    S: futures_util::Stream<Item = AppendEntriesRequest<ZkRaft>> + Unpin,
{
    use futures_util::{FutureExt, StreamExt};
    let mut out = Vec::new();
    let mut metas = Vec::new();
    let mut ended = false;
    let mut stopped = false;
    loop {
        let first = tokio::select! {
            r = input.next() => match r {
                Some(r) => r,
                None => break,
            },
            _ = &mut stop => {
                stopped = true;
                break;
            }
        };
        // Every append already produced goes out in one write.
        let mut next = Some(first);
        while let Some(req) = next.take() {
            metas.push(Sent {
                term: req.vote.leader_id.term,
                prev: req.prev_log_id.map(|l| l.index()),
            });
            match codec::encode(&Rpc::Append(req)) {
                Ok(bytes) => out.extend_from_slice(&frame(&bytes)),
                Err(e) => {
                    let _ = sent.send(Err(e));
                    return;
                }
            }
            if metas.len() < 64 {
                match input.next().now_or_never() {
                    Some(Some(r)) => next = Some(r),
                    // Ended: send what there is, and never poll the stream again.
                    Some(None) => ended = true,
                    None => {}
                }
            }
        }
        // A paused follower stops reading: give up after the ttl, as a request would.
        let r = match tokio::time::timeout(ttl, wr.write_all(&out)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no progress in time",
            )),
        };
        out.clear();
        if let Err(e) = r {
            let _ = sent.send(Err(e));
            return;
        }
        for m in metas.drain(..) {
            if sent.send(Ok(m)).is_err() {
                return;
            }
        }
        if ended {
            break;
        }
    }
    if !dying.load(Ordering::Relaxed) {
        if let Ok(bye) = codec::encode(&Rpc::Bye) {
            let _ = tokio::time::timeout(ttl, write_frame(&mut wr, &bye)).await;
        }
    }
    // The write half stays open until the stream is dropped: closing it sends a FIN, and a
    // relaying proxy (`zkherd --net faults`) ends the whole connection on it, before the last
    // answers come back (openraft's heartbeats are one-append streams).
    // Every answer is accounted for: the reader ends the stream after the last.
    drop(sent);
    if !stopped {
        let _ = stop.await;
    }
    drop(wr);
}

/// The reading half of a replication stream: the follower's answers, in the order sent.
struct Answers {
    rd: tokio::net::tcp::OwnedReadHalf,
    sent: tokio::sync::mpsc::UnboundedReceiver<io::Result<Sent>>,
    ttl: Duration,
    target: u64,
    reversions: Option<Arc<Reversions>>,
    /// Dropped with the stream: the writer then says goodbye and stops.
    _stop: tokio::sync::oneshot::Sender<()>,
    done: bool,
}

impl Answers {
    fn unreachable(&self, e: impl std::fmt::Display) -> RPCError<ZkRaft> {
        RPCError::Unreachable(Unreachable::from_string(format!(
            "node {}: {e}",
            self.target
        )))
    }

    async fn next(&mut self) -> Option<Result<StreamAppendResult<ZkRaft>, RPCError<ZkRaft>>> {
        if self.done {
            return None;
        }
        let r = self.answer().await;
        if !matches!(r, Some(Ok(Ok(_)))) {
            self.done = true;
        }
        r
    }

    async fn answer(&mut self) -> Option<Result<StreamAppendResult<ZkRaft>, RPCError<ZkRaft>>> {
        let sent = match self.sent.recv().await? {
            Ok(s) => s,
            Err(e) => return Some(Err(self.unreachable(e))),
        };
        let reply = match tokio::time::timeout(self.ttl, read_frame(&mut self.rd)).await {
            Ok(Ok(f)) => codec::decode::<Reply>(&f),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")),
        };
        let res = match reply {
            Ok(Reply::Stream(Ok(r))) => r,
            Ok(Reply::Stream(Err(e))) => return Some(Err(self.unreachable(e))),
            Ok(_) => return Some(Err(self.unreachable("unexpected reply"))),
            Err(e) => return Some(Err(self.unreachable(e))),
        };
        if let Some(g) = &self.reversions {
            match &res {
                Ok(l) => g.acked(self.target, sent.term, l.map(|l| l.index())),
                Err(StreamAppendError::Conflict(_))
                    if g.reverted(self.target, sent.term, sent.prev) =>
                {
                    return Some(Err(
                        self.unreachable("it lost log entries it had acknowledged")
                    ));
                }
                Err(_) => {}
            }
        }
        Some(Ok(res))
    }
}

impl RaftNetworkFactory<ZkRaft> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &openraft::BasicNode) -> Peer {
        let addr = self.overrides.get(&target).unwrap_or(&node.addr);
        let (quorum, election) = split_addr(addr).unwrap_or_else(|| (addr.clone(), addr.clone()));
        Peer {
            target,
            quorum,
            election,
            quorum_conn: None,
            election_conn: None,
            dying: self.dying.clone(),
            reversions: Some(self.reversions.clone()),
        }
    }
}

/// A client for one peer; connects lazily and reconnects after any error.
pub struct Peer {
    target: u64,
    quorum: String,
    election: String,
    quorum_conn: Option<TcpStream>,
    election_conn: Option<TcpStream>,
    dying: Arc<AtomicBool>,
    /// The leader's replication targets only.
    reversions: Option<Arc<Reversions>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        for s in [self.quorum_conn.take(), self.election_conn.take()]
            .into_iter()
            .flatten()
        {
            close_politely(s, &self.dying);
        }
    }
}

impl Peer {
    async fn call(&mut self, election: bool, rpc: &Rpc, timeout: Duration) -> io::Result<Reply> {
        let (addr, slot) = if election {
            (&self.election, &mut self.election_conn)
        } else {
            (&self.quorum, &mut self.quorum_conn)
        };
        let work = async {
            if slot.is_none() {
                let s = TcpStream::connect(addr.as_str()).await?;
                s.set_nodelay(true)?;
                *slot = Some(s);
            }
            let s = slot.as_mut().expect("connected");
            let bytes = codec::encode(rpc)?;
            write_frame(s, &bytes).await?;
            let frame = read_frame(s).await?;
            codec::decode::<Reply>(&frame)
        };
        let r = match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")),
        };
        if r.is_err() {
            // The connection may hold half a frame: start over next time.
            if let Some(s) = slot.take() {
                close_politely(s, &self.dying);
            }
        }
        r
    }

    /// Hand clients' writes to this peer (the leader), in order.
    pub async fn forward(&mut self, p: Vec<Proposal>) -> io::Result<()> {
        match self
            // The leader only has to enqueue it: a slow answer means a hung leader (SIGSTOP
            // leaves its socket accepting); give up quickly and try the next leader.
            .call(false, &Rpc::Forward(p), Duration::from_secs(1))
            .await?
        {
            Reply::Done(Ok(())) => Ok(()),
            Reply::Done(Err(e)) => Err(io::Error::other(e)),
            _ => Err(io::Error::other("unexpected reply")),
        }
    }

    /// Ask this peer (the leader) for a read index.
    pub async fn read_index(&mut self) -> io::Result<u64> {
        match self
            .call(false, &Rpc::ReadIndex, Duration::from_secs(2))
            .await?
        {
            Reply::ReadIndex(Ok(i)) => Ok(i),
            Reply::ReadIndex(Err(e)) => Err(io::Error::other(e)),
            _ => Err(io::Error::other("unexpected reply")),
        }
    }

    /// Hand a reconfig to this peer (the leader); it answers once it has proposed the outcome
    /// (which then reaches the origin as an applied entry).
    pub async fn reconfig(&mut self, job: ReconfigJob) -> io::Result<()> {
        match self
            .call(false, &Rpc::Reconfig(job), Duration::from_secs(30))
            .await?
        {
            Reply::Done(Ok(())) => Ok(()),
            Reply::Done(Err(e)) => Err(io::Error::other(e)),
            _ => Err(io::Error::other("unexpected reply")),
        }
    }

    /// Report active sessions to this peer (the leader).
    pub async fn touch(&mut self, sessions: Vec<i64>) -> io::Result<()> {
        match self
            .call(false, &Rpc::Touch(sessions), Duration::from_secs(2))
            .await?
        {
            Reply::Done(_) => Ok(()),
            _ => Err(io::Error::other("unexpected reply")),
        }
    }

    /// A client for `addr` (`host:quorumPort:electionPort`).
    pub fn to(target: u64, addr: &str) -> Peer {
        let (quorum, election) = split_addr(addr).unwrap_or_else(|| (addr.into(), addr.into()));
        Peer {
            target,
            quorum,
            election,
            quorum_conn: None,
            election_conn: None,
            dying: Arc::default(),
            reversions: None,
        }
    }

    /// Ask this peer whether it belongs to an initialized ensemble, and whom it follows.
    pub async fn hello(&mut self) -> io::Result<(bool, Option<u64>)> {
        match self
            .call(true, &Rpc::Hello, Duration::from_millis(500))
            .await?
        {
            Reply::Hello {
                initialized,
                leader,
            } => Ok((initialized, leader)),
            _ => Err(io::Error::other("unexpected reply")),
        }
    }

    /// Turn a transport result and the expected reply kind into openraft's RPC result.
    fn answer<T>(
        &self,
        r: io::Result<Reply>,
        pick: impl FnOnce(Reply) -> Option<Result<T, String>>,
    ) -> Result<T, RPCError<ZkRaft>> {
        match r.map(pick) {
            Ok(Some(Ok(v))) => Ok(v),
            Ok(Some(Err(e))) => Err(RPCError::Unreachable(self.unreachable(e))),
            Ok(None) => Err(RPCError::Unreachable(self.unreachable("unexpected reply"))),
            Err(e) => Err(RPCError::Unreachable(self.unreachable(e))),
        }
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> Unreachable<ZkRaft> {
        Unreachable::from_string(format!("node {}: {e}", self.target))
    }
}

impl RaftNetworkV2<ZkRaft> for Peer {
    type SnapshotData = Vec<u8>;

    /// Retry an unreachable peer every 5 ms for its first 200 ms away, then every 100 ms, not
    /// on a growing schedule: on loopback a peer that does not answer is stopped, paused or
    /// restarting, and should be caught up the moment it is back. A crashed node is restarted
    /// and listening again within about 20-30 ms, and a 100 ms retry from the start left it
    /// waiting up to 100 ms more; a growing backoff left a resumed follower unsynced for
    /// seconds. A refused connection on loopback costs a few microseconds.
    fn backoff(&self) -> Option<openraft::network::Backoff> {
        let soon = std::iter::repeat_n(Duration::from_millis(5), 40);
        Some(openraft::network::Backoff::new(
            soon.chain(std::iter::repeat(Duration::from_millis(100))),
        ))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<ZkRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<ZkRaft>, RPCError<ZkRaft>> {
        let Some(guard) = self.reversions.clone() else {
            let r = self.call(false, &Rpc::Append(rpc), option.soft_ttl()).await;
            return self.answer(r, |reply| match reply {
                Reply::Append(r) => Some(r),
                _ => None,
            });
        };
        if guard.is_lost(self.target) {
            return Err(RPCError::Unreachable(self.unreachable(
                "it lost its log and is being removed, to be added back",
            )));
        }
        let term = rpc.vote.leader_id.term;
        let prev = rpc.prev_log_id.map(|l| l.index());
        let last = rpc.entries.last().map(|e| e.log_id.index()).or(prev);
        // openraft allots a heartbeat interval (83 ms at the defaults) to a batch of entries;
        // a slow link (zkherd's `net delay`) would then fail every append. A stream's appends
        // may take longer (openraft does not cut them short); a paused follower only holds up
        // its own stream.
        let ttl = option.soft_ttl().max(Duration::from_secs(1));
        let r = self.call(false, &Rpc::Append(rpc), ttl).await;
        let res = self.answer(r, |reply| match reply {
            Reply::Append(r) => Some(r),
            _ => None,
        });
        match &res {
            Ok(AppendEntriesResponse::Success) => guard.acked(self.target, term, last),
            Ok(AppendEntriesResponse::PartialSuccess(l)) => {
                guard.acked(self.target, term, l.map(|l| l.index()))
            }
            Ok(AppendEntriesResponse::Conflict) if guard.reverted(self.target, term, prev) => {
                return Err(RPCError::Unreachable(
                    self.unreachable("it lost log entries it had acknowledged"),
                ));
            }
            _ => {}
        }
        res
    }

    /// Pipelined replication: appends go out on a connection of the stream's own as openraft
    /// produces them, without waiting for the answer to the one before (the sequential default
    /// left the follower's disk idle for a round trip after every fsync). The follower feeds
    /// them to `Raft::stream_append` and answers each in order (`serve_stream`).
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> openraft::base::BoxFuture<
        's,
        Result<
            openraft::base::BoxStream<'s, Result<StreamAppendResult<ZkRaft>, RPCError<ZkRaft>>>,
            RPCError<ZkRaft>,
        >,
    >
    where
        S: futures_util::Stream<Item = AppendEntriesRequest<ZkRaft>> + Send + Unpin + 'static,
    {
        Box::pin(async move {
            if let Some(g) = &self.reversions {
                if g.is_lost(self.target) {
                    return Err(RPCError::Unreachable(self.unreachable(
                        "it lost its log and is being removed, to be added back",
                    )));
                }
            }
            // As in `append_entries`: a slow link must not fail every batch.
            let ttl = option.soft_ttl().max(Duration::from_secs(1));
            let open = async {
                let s = TcpStream::connect(self.quorum.as_str()).await?;
                s.set_nodelay(true)?;
                let mut s = s;
                write_frame(&mut s, &codec::encode(&Rpc::StreamAppend)?).await?;
                io::Result::Ok(s)
            };
            let conn = match tokio::time::timeout(ttl, open).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(RPCError::Unreachable(self.unreachable(e))),
                Err(_) => return Err(RPCError::Unreachable(self.unreachable("no answer in time"))),
            };
            let (rd, wr) = conn.into_split();
            let (sent_tx, sent_rx) = tokio::sync::mpsc::unbounded_channel();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
            tokio::spawn(send_appends(
                input,
                wr,
                sent_tx,
                stop_rx,
                ttl,
                self.dying.clone(),
            ));
            let answers = Answers {
                rd,
                sent: sent_rx,
                ttl,
                target: self.target,
                reversions: self.reversions.clone(),
                _stop: stop_tx,
                done: false,
            };
            let strm = futures_util::stream::unfold(answers, |mut a| async move {
                let item = a.next().await?;
                Some((item, a))
            });
            Ok(Box::pin(strm) as openraft::base::BoxStream<'s, _>)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<ZkRaft>,
        option: RPCOption,
    ) -> Result<VoteResponse<ZkRaft>, RPCError<ZkRaft>> {
        let r = self.call(true, &Rpc::Vote(rpc), option.soft_ttl()).await;
        self.answer(r, Reply::into_vote)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<ZkRaft>,
        option: RPCOption,
    ) -> Result<VoteResponse<ZkRaft>, RPCError<ZkRaft>> {
        let r = self.call(true, &Rpc::PreVote(rpc), option.soft_ttl()).await;
        self.answer(r, Reply::into_vote)
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<ZkRaft>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<ZkRaft>, RPCError<ZkRaft>> {
        let r = self
            .call(true, &Rpc::TransferLeader(req), option.soft_ttl())
            .await;
        self.answer(r, |reply| match reply {
            Reply::TransferLeader(r) => Some(r),
            _ => None,
        })
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<ZkRaft>,
        snapshot: SnapshotOf<ZkRaft, Vec<u8>>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<ZkRaft>, StreamingError<ZkRaft>> {
        let term = vote.leader_id.term;
        let last = snapshot.meta.last_log_id.map(|l| l.index());
        let rpc = Rpc::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        // A snapshot may be large: allow well beyond the usual RPC deadline.
        let timeout = option.hard_ttl().max(Duration::from_secs(60));
        tokio::select! {
            r = self.call(false, &rpc, timeout) => match r {
                Ok(Reply::Snapshot(Ok(r))) => {
                    if let Some(g) = &self.reversions {
                        g.acked(self.target, term, last);
                    }
                    Ok(r)
                }
                Ok(Reply::Snapshot(Err(e))) => Err(StreamingError::Unreachable(self.unreachable(e))),
                Ok(_) => Err(StreamingError::Unreachable(self.unreachable("unexpected reply"))),
                Err(e) => Err(StreamingError::Unreachable(self.unreachable(e))),
            },
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_like_zoo_cfg_server_lines() {
        assert_eq!(
            split_addr("127.0.0.1:2881:3881"),
            Some(("127.0.0.1:2881".into(), "127.0.0.1:3881".into()))
        );
        assert_eq!(split_addr("nohost"), None);
    }
}
