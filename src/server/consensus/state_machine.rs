//! The Raft state machine: the ZooKeeper tree and sessions ([`State`]), plus what Raft needs to
//! know (last applied log id, membership) and the zxid counter of the current term.
//!
//! The tree itself lives once per node, in the node's core: applying an entry here assigns its
//! zxid, drops retried duplicates, and hands it to the core through a channel, which runs the
//! same pure `State::apply` as the standalone server (watches fire there, and the owning
//! connection gets its reply). The state machine keeps only what Raft and reconfig need
//! without the tree: the last applied log id, the membership, the zxid counter and the
//! committed `/zookeeper/config`. A snapshot is asked of the core through the same channel, so
//! the tree it encodes is exactly the state after the last applied entry. Snapshots are the
//! standalone snapshot format plus a JSON header with the Raft metadata, written atomically to
//! `dir/snapshot` so a restart resumes from it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::EntryPayload;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{zxid, ApplyAck, Origin, ZkRaft};
use crate::server::persist::{decode_entry, decode_snapshot};
use crate::server::tree::{config_text, Entry, State, TreeOptions, Txn};

/// A committed ZooKeeper entry, with its zxid, as the core receives it to apply.
#[derive(Debug, Clone)]
pub struct AppliedEntry {
    pub origin: Option<Origin>,
    pub entry: Entry,
}

/// What the state machine tells the node's core, in order.
#[derive(Debug)]
pub enum SmEvent {
    Applied(Box<AppliedEntry>),
    /// A snapshot replaced the whole state (a node catching up): start over from it.
    Installed(Box<State>),
    /// A `sync` (its pending id) may be answered: everything the leader had committed when it
    /// was asked has been applied, and its events precede this one in the channel. `false`:
    /// no leader answered in time; the connection is closed and the client retries elsewhere.
    Synced(u64, bool),
    /// Write the tree as it is after the entries sent before this event into a Raft snapshot
    /// file ([`SnapshotTo::write`]).
    Snapshot(SnapshotTo),
}

/// A snapshot file with its header written, waiting for the tree.
#[derive(Debug)]
pub struct SnapshotTo {
    file: fs::File,
    reply: oneshot::Sender<io::Result<(fs::File, u64)>>,
}

impl SnapshotTo {
    /// Stream `state` into the file (`persist::write_snapshot`, in 64 KiB writes, no copy of
    /// the whole encoding in memory) and hand the file back, unsynced, with the bytes written.
    pub fn write(mut self, state: &State) {
        let written = crate::server::persist::write_snapshot(state, &mut self.file);
        let _ = self.reply.send(written.map(|n| (self.file, n)));
    }

    /// As [`write`](Self::write), letting the runtime's other tasks run every few
    /// milliseconds: a node's tasks share one thread, and a million znodes take seconds to
    /// write, longer than an election timeout without heartbeats.
    pub async fn write_yielding(mut self, state: &State) {
        use std::io::Write;
        let mut chunks = crate::server::persist::SnapshotChunks::new(state);
        let mut written = 0;
        let mut since = std::time::Instant::now();
        let r = loop {
            let Some(b) = chunks.next_chunk() else {
                break Ok(written);
            };
            if let Err(e) = self.file.write_all(b) {
                break Err(e);
            }
            written += b.len() as u64;
            if since.elapsed() >= std::time::Duration::from_millis(2) {
                tokio::task::yield_now().await;
                since = std::time::Instant::now();
            }
        };
        let _ = self.reply.send(r.map(|n| (self.file, n)));
    }
}

/// State-machine data; the reconfigurer reads the committed config under the same lock.
pub struct SmData {
    /// `/zookeeper/config` as the last committed reconfig wrote it: text and version (mzxid).
    /// None before the first one.
    pub config: Option<(String, i64)>,
    pub last_applied: Option<LogIdOf<ZkRaft>>,
    pub membership: StoredMembershipOf<ZkRaft>,
    /// Term of the last ZooKeeper entry applied, and how many entries of that term were applied.
    pub term: u64,
    pub counter: u32,
    /// The highest proposal id applied per (node, incarnation). A proposal is retried when its
    /// forwarding fails, and it may have been committed anyway: a retry at or below this id is
    /// a duplicate and is skipped, so every write takes effect once.
    pub seen: BTreeMap<(u64, u64), u64>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    meta: SnapshotMetaOf<ZkRaft>,
    term: u64,
    counter: u32,
    /// `SmData::seen` as (node, incarnation, id).
    #[serde(default)]
    seen: Vec<(u64, u64, u64)>,
}

fn seen_list(seen: &BTreeMap<(u64, u64), u64>) -> Vec<(u64, u64, u64)> {
    seen.iter().map(|((n, i), id)| (*n, *i, *id)).collect()
}

fn seen_map(list: &[(u64, u64, u64)]) -> BTreeMap<(u64, u64), u64> {
    list.iter().map(|(n, i, id)| ((*n, *i), *id)).collect()
}

#[derive(Clone)]
pub struct StateMachine {
    pub data: Arc<Mutex<SmData>>,
    dir: PathBuf,
    applied: mpsc::UnboundedSender<SmEvent>,
    opts: TreeOptions,
    /// The snapshot file as `open` read it, for openraft's first `get_current_snapshot` (made
    /// at startup, for the meta only), so a restart reads the file once.
    read_at_open: Option<Vec<u8>>,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// The committed config a tree holds (None while `/zookeeper/config` is still empty).
fn config_of(state: &State) -> Option<(String, i64)> {
    let n = state.get("/zookeeper/config")?;
    let data = n.data.as_deref().unwrap_or_default();
    (!data.is_empty()).then(|| (String::from_utf8_lossy(data).into_owned(), n.stat.mzxid))
}

/// A snapshot file is a 4-byte length, the JSON header, then the tree as
/// `persist::write_snapshot` wrote it. This reads the header and where the tree starts;
/// reading Raft's metadata needs nothing more.
fn decode_header(b: &[u8]) -> io::Result<(SnapshotHeader, usize)> {
    if b.len() < 4 {
        return Err(other("snapshot too short"));
    }
    let n = u32::from_be_bytes(b[..4].try_into().expect("4 bytes")) as usize;
    let h = b
        .get(4..4 + n)
        .ok_or_else(|| other("snapshot header cut short"))?;
    Ok((serde_json::from_slice(h).map_err(other)?, 4 + n))
}

fn decode(b: &[u8], opts: TreeOptions) -> io::Result<(SnapshotHeader, State)> {
    let (header, tree) = decode_header(b)?;
    let state = decode_snapshot(&b[tree..], opts).map_err(|e| other(e.0))?;
    Ok((header, state))
}

impl StateMachine {
    /// Open the state machine in `dir`, resuming from its snapshot if there is one; also the
    /// tree the snapshot holds (fresh without one), which the core takes over.
    pub fn open(
        dir: &Path,
        opts: TreeOptions,
        applied: mpsc::UnboundedSender<SmEvent>,
    ) -> io::Result<(StateMachine, State)> {
        fs::create_dir_all(dir)?;
        let mut read_at_open = None;
        let (data, state) = match fs::read(dir.join("snapshot")) {
            Ok(b) => {
                let started = std::time::Instant::now();
                let (h, state) = decode(&b, opts.clone())?;
                tracing::info!(
                    "snapshot at log index {}: {} znodes from {} bytes, decoded in {} ms",
                    h.meta.last_log_id.map_or(0, |l| l.index()),
                    state.nodes.len(),
                    b.len(),
                    started.elapsed().as_millis()
                );
                let data = SmData {
                    config: config_of(&state),
                    last_applied: h.meta.last_log_id,
                    membership: h.meta.last_membership.clone(),
                    term: h.term,
                    counter: h.counter,
                    seen: seen_map(&h.seen),
                };
                read_at_open = Some(b);
                (data, state)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let data = SmData {
                    config: None,
                    last_applied: None,
                    membership: Default::default(),
                    term: 0,
                    counter: 0,
                    seen: BTreeMap::new(),
                };
                (data, State::new(opts.clone()))
            }
            Err(e) => return Err(e),
        };
        let sm = StateMachine {
            data: Arc::new(Mutex::new(data)),
            dir: dir.to_path_buf(),
            applied,
            opts,
            read_at_open,
        };
        Ok((sm, state))
    }
}

impl RaftSnapshotBuilder<ZkRaft> for StateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<ZkRaft, Vec<u8>>, io::Error> {
        use std::io::Write;
        let started = std::time::Instant::now();
        self.read_at_open = None;
        let tmp = self.dir.join("snapshot.tmp");
        let (meta, written) = {
            let d = self.data.lock().expect("state machine lock");
            let header = SnapshotHeader {
                meta: SnapshotMetaOf::<ZkRaft> {
                    last_log_id: d.last_applied,
                    last_membership: d.membership.clone(),
                },
                term: d.term,
                counter: d.counter,
                seen: seen_list(&d.seen),
            };
            let h = serde_json::to_vec(&header).map_err(other)?;
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&(h.len() as u32).to_be_bytes())?;
            file.write_all(&h)?;
            // Asked under the lock, so no applied entry slips between the header and the tree.
            let (reply, written) = oneshot::channel();
            self.applied
                .send(SmEvent::Snapshot(SnapshotTo { file, reply }))
                .map_err(|_| other("the node's core is gone; no snapshot taken"))?;
            (header.meta, written)
        };
        let (file, bytes) = written
            .await
            .map_err(|_| other("the node's core stopped before writing the snapshot"))??;
        // The fsync of a large file takes long: off the runtime's thread (see install_snapshot).
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || commit_snapshot(&dir, file))
            .await
            .map_err(other)??;
        tracing::info!(
            "snapshot at log index {}: {} bytes, taken in {} ms",
            meta.last_log_id.map_or(0, |l| l.index()),
            bytes,
            started.elapsed().as_millis()
        );
        // openraft keeps only the meta of a snapshot it built; a follower that needs the data
        // gets it from the file (get_current_snapshot).
        Ok(SnapshotOf::<ZkRaft, Vec<u8>> {
            meta,
            snapshot: Vec::new(),
        })
    }
}

fn write_snapshot(dir: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = fs::File::create(dir.join("snapshot.tmp"))?;
    f.write_all(bytes)?;
    commit_snapshot(dir, f)
}

/// Make `dir/snapshot.tmp` (written through `file`) the snapshot, durably.
fn commit_snapshot(dir: &Path, file: fs::File) -> io::Result<()> {
    file.sync_all()?;
    drop(file);
    fs::rename(dir.join("snapshot.tmp"), dir.join("snapshot"))?;
    fs::File::open(dir)?.sync_all()
}

impl RaftStateMachine<ZkRaft> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<ZkRaft>>, StoredMembershipOf<ZkRaft>), io::Error> {
        let d = self.data.lock().expect("state machine lock");
        Ok((d.last_applied, d.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures_util::Stream<Item = Result<EntryResponder<ZkRaft>, io::Error>> + Unpin + Send,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let ack = {
                let mut d = self.data.lock().expect("state machine lock");
                d.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => ApplyAck::default(),
                    EntryPayload::Membership(m) => {
                        d.membership = StoredMembershipOf::<ZkRaft>::new(Some(entry.log_id), m);
                        ApplyAck::default()
                    }
                    EntryPayload::Normal(p)
                        if p.origin.is_some_and(|o| {
                            d.seen
                                .get(&(o.node, o.incarnation))
                                .is_some_and(|last| *last >= o.conn)
                        }) =>
                    {
                        ApplyAck::default() // a retried duplicate: already applied once
                    }
                    EntryPayload::Normal(p) => {
                        if let Some(o) = p.origin {
                            d.seen.insert((o.node, o.incarnation), o.conn);
                        }
                        let term = entry.log_id.committed_leader_id().term;
                        let mut e = decode_entry(&p.entry).map_err(|e| other(e.0))?;
                        let first_of_term = term != d.term;
                        if first_of_term {
                            d.term = term;
                            d.counter = 0;
                        }
                        // A leader's own config publication, first of its term, takes the
                        // epoch's zxid 0, as Apache's initial config (version=100000000).
                        let epoch_mark = first_of_term
                            && p.origin.is_none()
                            && matches!(e.txn, Txn::Reconfig { .. });
                        if !epoch_mark {
                            d.counter += 1;
                        }
                        e.zxid = zxid(term, d.counter);
                        if let Txn::Reconfig {
                            servers,
                            static_config,
                        } = &e.txn
                        {
                            d.config = Some(config_text(servers, *static_config, e.zxid));
                        }
                        let ack = ApplyAck { zxid: e.zxid };
                        // Sent while holding the lock, so a snapshot request (sent under it
                        // too) comes after every entry its header counts.
                        let _ = self.applied.send(SmEvent::Applied(Box::new(AppliedEntry {
                            origin: p.origin,
                            entry: e,
                        })));
                        ack
                    }
                }
            };
            if let Some(r) = responder {
                r.send(ack);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<ZkRaft>,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        self.read_at_open = None;
        // Off the runtime's thread: a large snapshot takes seconds to decode and write, and
        // this node's heartbeats and connections share that thread.
        let (opts, dir) = (self.opts.clone(), self.dir.clone());
        let (header, state) = tokio::task::spawn_blocking(move || {
            let decoded = decode(&snapshot, opts)?;
            write_snapshot(&dir, &snapshot)?;
            io::Result::Ok(decoded)
        })
        .await
        .map_err(other)??;
        let mut d = self.data.lock().expect("state machine lock");
        d.config = config_of(&state);
        d.last_applied = meta.last_log_id;
        d.membership = meta.last_membership.clone();
        d.term = header.term;
        d.counter = header.counter;
        d.seen = seen_map(&header.seen);
        let _ = self.applied.send(SmEvent::Installed(Box::new(state)));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<ZkRaft, Vec<u8>>>, io::Error> {
        let read = match self.read_at_open.take() {
            Some(bytes) => Ok(bytes),
            None => fs::read(self.dir.join("snapshot")),
        };
        match read {
            Ok(bytes) => {
                let (h, _) = decode_header(&bytes)?;
                Ok(Some(SnapshotOf::<ZkRaft, Vec<u8>> {
                    meta: h.meta,
                    snapshot: bytes,
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The core's side of the channel without a core: apply every entry to `state`, take installed
/// snapshots and answer snapshot requests, until the state machine is gone. For tests and tools
/// that run Raft with this state machine but serve no clients.
pub async fn mirror(state: Arc<Mutex<State>>, mut events: mpsc::UnboundedReceiver<SmEvent>) {
    while let Some(ev) = events.recv().await {
        let mut st = state.lock().expect("mirror lock");
        match ev {
            SmEvent::Applied(a) if a.entry.zxid > st.last_zxid => {
                st.apply(&a.entry);
            }
            SmEvent::Applied(_) | SmEvent::Synced(..) => {}
            SmEvent::Installed(s) => *st = *s,
            SmEvent::Snapshot(to) => to.write(&st),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::consensus::log_store::LogStore;
    use openraft::testing::log::{StoreBuilder, Suite};

    struct Builder;

    impl StoreBuilder<ZkRaft, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachine), openraft::StorageError<ZkRaft>>
        {
            let tmp = tempfile::tempdir().expect("tempdir");
            let (log, _) = LogStore::open(&tmp.path().join("raft"), false).expect("log store");
            let (tx, rx) = mpsc::unbounded_channel();
            let (sm, state) =
                StateMachine::open(&tmp.path().join("sm"), TreeOptions::default(), tx).expect("sm");
            tokio::spawn(mirror(Arc::new(Mutex::new(state)), rx));
            Ok((tmp, log, sm))
        }
    }

    #[tokio::test]
    async fn passes_openrafts_storage_suite() {
        Suite::test_all(Builder).await.expect("storage suite");
    }
}
