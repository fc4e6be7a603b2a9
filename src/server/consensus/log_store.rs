//! The Raft log on disk.
//!
//! - `raft/log` starts with the 8 bytes `ZKHLOG2\n`, then records `u32 length | u32 crc32 |
//!   bincode entry`. A log without that header holds the JSON records of zkherd before 0.2; it
//!   is read and rewritten in the binary form on open.
//! - `vote` and `purged` are small JSON files replaced atomically (write, fsync, rename, fsync
//!   the directory).
//! - `committed` is a hint for a faster restart, written in place on every commit advance
//!   without fsync: `u32 length | u32 crc32 | bincode`, zero-padded. A torn or unreadable hint
//!   is dropped with a warning (the leader tells the node its commit index again).
//!
//! The file is preallocated with zeros past its last record (in steps that double from 64 KB
//! up to [`PREALLOC`]), as ZooKeeper pads its logs: an fdatasync then flushes only the new
//! data, not the file's size and block map as well (on ext4 here, 97 µs p50 for overwriting
//! zeros against 208 µs for an append that grows the file). A zero length field ends the
//! records.
//!
//! Appends are written and fsynced by one writer thread per log, in order; the thread takes every
//! append that is waiting into one write and one fsync (group commit) and tells openraft when
//! each is durable, so the Raft core replicates while the disk works. Only the newest entries
//! (at least [`KEEP_IN_MEMORY`], and every one the thread has not written yet) are also kept in
//! memory; older ones are read back from the file by the offset recorded for each index, so a
//! log of a hundred thousand entries costs a few megabytes of memory, not the entries' size.
//! Truncation and purge rewrite the file atomically through the same thread.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::{EntryOf, LogIdOf, VoteOf};
use tokio::sync::{oneshot, Mutex};

use super::{codec, ZkRaft};

type Entry = EntryOf<ZkRaft>;

const LOG_MAGIC: &[u8; 8] = b"ZKHLOG2\n";
/// Room for the committed hint: header and a bincode `Option<LogId>` (at most ~30 bytes).
const COMMITTED_LEN: usize = 64;
/// How many of the newest entries stay in memory once written: what replication to a follower
/// that is a little behind reads.
pub const KEEP_IN_MEMORY: usize = 1024;

/// How far ahead of its last record the log file is filled with zeros, at most.
pub const PREALLOC: u64 = 4 << 20;
/// The first preallocation of a fresh log; each next one doubles, up to [`PREALLOC`].
const FIRST_PREALLOC: u64 = 64 << 10;

/// Where an entry's framed record lies in the log file.
#[derive(Debug, Clone, Copy)]
struct Span {
    off: u64,
    len: u32,
}

impl Span {
    fn end(&self) -> u64 {
        self.off + 8 + self.len as u64
    }
}

/// Work for the writer thread, done in the order sent.
enum Job {
    /// Records to append; `done` is told once they are durable (or written, with fsync off).
    Append {
        bytes: Vec<u8>,
        done: IOFlushed<ZkRaft>,
    },
    /// Replace the whole log file with these bytes (after a truncation or purge).
    Replace {
        bytes: Vec<u8>,
        done: oneshot::Sender<io::Result<()>>,
    },
}

/// The writer thread's queue and handle. Dropping it waits for the thread to finish what was
/// queued, so once a node's stores are gone (an in-process node killed, then restarted at
/// once) no write of the old node can land in the new node's log.
struct Writer {
    jobs: Option<std_mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn send(&self, job: Job) -> io::Result<()> {
        self.jobs
            .as_ref()
            .and_then(|j| j.send(job).ok())
            .ok_or_else(|| other("the log writer thread is gone"))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Inner {
    dir: PathBuf,
    writer: Writer,
    committed_file: File,
    /// Every entry in the file, by index.
    spans: BTreeMap<u64, Span>,
    /// The newest entries, and all not yet written (see the module docs).
    recent: BTreeMap<u64, Entry>,
    last: Option<LogIdOf<ZkRaft>>,
    /// The file's length once every queued append is written.
    end: u64,
    /// How much of the file the writer thread has written (its length on disk).
    written: Arc<AtomicU64>,
    /// The log file, for reading entries no longer in memory; reopened after a rewrite.
    reader: File,
    path: PathBuf,
    purged: Option<LogIdOf<ZkRaft>>,
    vote: Option<VoteOf<ZkRaft>>,
    committed: Option<LogIdOf<ZkRaft>>,
    force_sync: bool,
}

/// A cloneable handle; clones share one log (openraft reads through a clone).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// `u32 length | u32 crc32 | payload`.
fn framed(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

fn record(e: &Entry, out: &mut Vec<u8>) -> io::Result<()> {
    framed(&codec::encode(e)?, out);
    Ok(())
}

/// The payload of the framed record at `off`, if it is whole and its CRC matches.
fn unframe(bytes: &[u8], off: usize) -> Option<&[u8]> {
    let head = bytes.get(off..off + 8)?;
    let len = u32::from_be_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(head[4..].try_into().ok()?);
    let payload = bytes.get(off + 8..(off + 8).checked_add(len)?)?;
    (crc32fast::hash(payload) == crc).then_some(payload)
}

/// Replace `path` with `bytes` so that a crash leaves the old or the new file, never half.
fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    if sync {
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The committed hint: binary, or the JSON of zkherd before 0.2; `None` with a warning when it
/// is unreadable.
fn read_committed_hint(path: &Path, warnings: &mut Vec<String>) -> Option<LogIdOf<ZkRaft>> {
    let bytes = fs::read(path).ok()?;
    let decoded = match bytes.first() {
        Some(b'{') | Some(b'n') => serde_json::from_slice(&bytes).ok(),
        _ => unframe(&bytes, 0).and_then(|p| codec::decode(p).ok()),
    };
    if decoded.is_none() && !bytes.is_empty() {
        warnings.push(format!(
            "{}: unreadable commit hint ignored; the leader will resend the commit index",
            path.display()
        ));
    }
    decoded.flatten()
}

/// Scan the records of a log file, calling `each` with every entry and its span; returns where
/// the good part ends and whether the file is the legacy JSON form.
fn scan_log(bytes: &[u8], mut each: impl FnMut(Entry, Span)) -> (usize, bool) {
    let legacy = !bytes.is_empty() && !bytes.starts_with(LOG_MAGIC);
    let mut off = if legacy {
        0
    } else {
        bytes.len().min(LOG_MAGIC.len())
    };
    while off < bytes.len() {
        let Some(payload) = unframe(bytes, off) else {
            break;
        };
        let e: Option<Entry> = if legacy {
            serde_json::from_slice(payload).ok()
        } else {
            codec::decode(payload).ok()
        };
        let Some(e) = e else {
            break;
        };
        let span = Span {
            off: off as u64,
            len: payload.len() as u32,
        };
        each(e, span);
        off += 8 + payload.len();
    }
    (off, legacy)
}

/// Parse the records of a log file: entries, where the good part ends, and whether the file is
/// the legacy JSON form.
fn parse_log(bytes: &[u8]) -> (BTreeMap<u64, Entry>, usize, bool) {
    let mut entries = BTreeMap::new();
    let (good, legacy) = scan_log(bytes, |e, _| {
        entries.insert(e.log_id.index(), e);
    });
    (entries, good, legacy)
}

/// What the store keeps of a log file: every entry's span, the newest entries, the last id.
type LogIndex = (
    BTreeMap<u64, Span>,
    BTreeMap<u64, Entry>,
    Option<LogIdOf<ZkRaft>>,
);

/// Index a log file; also where its good part ends and whether it is the legacy JSON form.
fn index_log(bytes: &[u8]) -> (LogIndex, usize, bool) {
    let mut spans = BTreeMap::new();
    let mut recent = BTreeMap::new();
    let mut last = None;
    let (good, legacy) = scan_log(bytes, |e, span| {
        spans.insert(e.log_id.index(), span);
        last = Some(e.log_id);
        recent.insert(e.log_id.index(), e);
        if recent.len() > KEEP_IN_MEMORY {
            recent.pop_first();
        }
    });
    ((spans, recent, last), good, legacy)
}

/// The whole log file for these entries.
fn log_file_bytes(entries: &BTreeMap<u64, Entry>) -> io::Result<Vec<u8>> {
    let mut bytes = LOG_MAGIC.to_vec();
    for e in entries.values() {
        record(e, &mut bytes)?;
    }
    Ok(bytes)
}

/// Make sure the file extends with zeros to `end`, adding room beyond it when it does not:
/// as much again as the file holds, between [`FIRST_PREALLOC`] and [`PREALLOC`]. The zeros are
/// not synced on their own: the next record's fdatasync covers them. A fresh log starts small:
/// the first append of a new ensemble waited for the fdatasync of 4 MB of zeros (~6 ms here),
/// on the leader and then on each follower, a third of the time to the first write.
fn preallocate(log: &File, allocated: &mut u64, end: u64) -> io::Result<()> {
    if end <= *allocated {
        return Ok(());
    }
    let target = end + (*allocated).clamp(FIRST_PREALLOC, PREALLOC);
    let zeros = vec![0u8; 256 << 10];
    while *allocated < target {
        let n = (target - *allocated).min(zeros.len() as u64) as usize;
        log.write_all_at(&zeros[..n], *allocated)?;
        *allocated += n as u64;
    }
    Ok(())
}

/// The writer thread: appends in order, one write and one fsync for all the appends waiting.
fn write_loop(
    path: PathBuf,
    mut log: File,
    force_sync: bool,
    written: Arc<AtomicU64>,
    jobs: std_mpsc::Receiver<Job>,
) {
    // Where the next record goes, and how much of the file exists (zeros past `pos`).
    let mut pos = written.load(Ordering::Acquire);
    let mut allocated = log.metadata().map(|m| m.len()).unwrap_or(pos).max(pos);
    let mut next = jobs.recv().ok();
    while let Some(job) = next.take() {
        match job {
            Job::Append { mut bytes, done } => {
                let mut waiting = vec![done];
                // Take every append already queued; stop at anything else.
                loop {
                    match jobs.try_recv() {
                        Ok(Job::Append { bytes: b, done }) => {
                            bytes.extend_from_slice(&b);
                            waiting.push(done);
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let end = pos + bytes.len() as u64;
                let r = preallocate(&log, &mut allocated, end)
                    .and_then(|_| log.write_all_at(&bytes, pos))
                    .and_then(|_| {
                        pos = end;
                        written.store(end, Ordering::Release);
                        if force_sync {
                            crate::server::persist::sync_log(&log, &path)
                        } else {
                            Ok(())
                        }
                    });
                if let Err(e) = &r {
                    tracing::error!("{}: append failed: {e}", path.display());
                }
                for done in waiting {
                    done.io_completed(r.as_ref().map(|_| ()).map_err(other));
                }
            }
            Job::Replace { bytes, done } => {
                let r = write_atomic(&path, &bytes, force_sync).and_then(|_| {
                    log = OpenOptions::new().write(true).open(&path)?;
                    pos = bytes.len() as u64;
                    allocated = pos;
                    written.store(pos, Ordering::Release);
                    Ok(())
                });
                let _ = done.send(r);
            }
        }
        if next.is_none() {
            next = jobs.recv().ok();
        }
    }
}

impl LogStore {
    /// Open the log in `dir` (created if missing); a torn last record is cut off, a legacy JSON
    /// log is rewritten in the binary form.
    pub fn open(dir: &Path, force_sync: bool) -> io::Result<(LogStore, Vec<String>)> {
        fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let mut warnings = Vec::new();
        let mut bytes = Vec::new();
        if let Ok(mut f) = File::open(&path) {
            f.read_to_end(&mut bytes)?;
        }
        let (mut index, mut good, legacy) = index_log(&bytes);
        // Past the last record: the preallocated zeros, or a torn record.
        let torn = bytes[good..].iter().any(|b| *b != 0);
        if torn {
            warnings.push(format!(
                "{}: torn tail at byte {good}; cut {} bytes",
                path.display(),
                bytes.len() - good
            ));
        }
        if legacy || torn || bytes.is_empty() {
            let (entries, _, _) = parse_log(&bytes);
            if legacy {
                warnings.push(format!(
                    "{}: JSON log of an older zkherd rewritten in the binary form ({} entries)",
                    path.display(),
                    entries.len()
                ));
            }
            // A fresh log holds nothing a crash could lose: it is not fsynced (two fsyncs
            // per node on a first start, with three nodes on one disk).
            let fresh = bytes.is_empty();
            bytes = log_file_bytes(&entries)?;
            write_atomic(&path, &bytes, !fresh)?;
            (index, good, _) = index_log(&bytes);
        }
        let (spans, recent, last) = index;
        drop(bytes);
        let log = OpenOptions::new().write(true).open(&path)?;
        let committed_path = dir.join("committed");
        let committed = read_committed_hint(&committed_path, &mut warnings);
        let committed_file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&committed_path)?;
        let reader = File::open(&path)?;
        let written = Arc::new(AtomicU64::new(good as u64));
        let (sender, jobs) = std_mpsc::channel();
        let thread = {
            let (path, written) = (path.clone(), written.clone());
            std::thread::Builder::new()
                .name("raft-log-writer".into())
                .spawn(move || write_loop(path, log, force_sync, written, jobs))?
        };
        let writer = Writer {
            jobs: Some(sender),
            thread: Some(thread),
        };
        let inner = Inner {
            dir: dir.to_path_buf(),
            writer,
            committed_file,
            spans,
            recent,
            last,
            end: good as u64,
            written,
            reader,
            path,
            purged: read_json(&dir.join("purged"))?,
            vote: read_json(&dir.join("vote"))?,
            committed,
            force_sync,
        };
        Ok((
            LogStore {
                inner: Arc::new(Mutex::new(inner)),
            },
            warnings,
        ))
    }
}

/// The first and last index in the Raft log file under `dir` (a node's `zkherd-raft/raft`),
/// read without opening the store; `None` for an empty log. For tests and diagnostics.
pub fn log_index_range(dir: &Path) -> io::Result<Option<(u64, u64)>> {
    let bytes = fs::read(dir.join("log"))?;
    let (entries, _, _) = parse_log(&bytes);
    Ok(entries
        .keys()
        .next()
        .zip(entries.keys().next_back())
        .map(|(a, b)| (*a, *b)))
}

/// For the `raft_wire` fuzz target: parse `bytes` as a log file; whatever parses is rewritten
/// and parses back to the same entries.
#[doc(hidden)]
pub fn fuzz_log_file(bytes: &[u8]) {
    let (entries, good, _) = parse_log(bytes);
    assert!(good <= bytes.len());
    let again = log_file_bytes(&entries).expect("entries encode");
    let (back, end, legacy) = parse_log(&again);
    assert!(!legacy && end == again.len());
    assert_eq!(back, entries);
}

impl Inner {
    /// The entry at `index`: from memory, or read back from the file.
    fn entry(&self, index: u64) -> io::Result<Option<Entry>> {
        if let Some(e) = self.recent.get(&index) {
            return Ok(Some(e.clone()));
        }
        let Some(span) = self.spans.get(&index) else {
            return Ok(None);
        };
        let rec = self.record_bytes(span)?;
        let payload = unframe(&rec, 0).ok_or_else(|| {
            other(format!(
                "{}: record of entry {index} at byte {} fails its checksum",
                self.path.display(),
                span.off
            ))
        })?;
        codec::decode(payload).map(Some)
    }

    /// The framed record at `span`, as the file holds it (it is written: see `evict`).
    fn record_bytes(&self, span: &Span) -> io::Result<Vec<u8>> {
        let mut rec = vec![0; 8 + span.len as usize];
        self.reader.read_exact_at(&mut rec, span.off)?;
        Ok(rec)
    }

    /// Drop the oldest entries from memory beyond [`KEEP_IN_MEMORY`], once they are written.
    fn evict(&mut self) {
        let written = self.written.load(Ordering::Acquire);
        while self.recent.len() > KEEP_IN_MEMORY {
            let Some((&index, _)) = self.recent.first_key_value() else {
                break;
            };
            if self.spans.get(&index).is_some_and(|s| s.end() > written) {
                break;
            }
            self.recent.pop_first();
        }
    }

    /// Keep only the entries in `keep` and rewrite the log file from them (after a truncation
    /// or purge), after every append sent before.
    async fn rewrite(&mut self, keep: impl RangeBounds<u64> + Clone) -> io::Result<()> {
        let mut bytes = LOG_MAGIC.to_vec();
        let mut spans = BTreeMap::new();
        for (&index, span) in self.spans.range(keep.clone()) {
            let off = bytes.len() as u64;
            match self.recent.get(&index) {
                Some(e) => record(e, &mut bytes)?,
                None => bytes.extend_from_slice(&self.record_bytes(span)?),
            }
            let len = (bytes.len() as u64 - off - 8) as u32;
            spans.insert(index, Span { off, len });
        }
        self.recent.retain(|i, _| keep.contains(i));
        self.spans = spans;
        self.end = bytes.len() as u64;
        let (done, rx) = oneshot::channel();
        self.writer.send(Job::Replace { bytes, done })?;
        rx.await
            .map_err(|_| other("the log writer thread is gone"))??;
        self.reader = File::open(&self.path)?;
        self.evict();
        Ok(())
    }
}

impl RaftLogReader<ZkRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let inner = self.inner.lock().await;
        let mut out = Vec::new();
        for &index in inner.spans.range(range).map(|(i, _)| i) {
            out.extend(inner.entry(index)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<ZkRaft>>, io::Error> {
        Ok(self.inner.lock().await.vote)
    }
}

impl RaftLogStorage<ZkRaft> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<ZkRaft>, io::Error> {
        let inner = self.inner.lock().await;
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: inner.last.or(inner.purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<ZkRaft>) -> Result<(), io::Error> {
        let mut inner = self.inner.lock().await;
        let path = inner.dir.join("vote");
        write_atomic(
            &path,
            &serde_json::to_vec(vote).map_err(other)?,
            inner.force_sync,
        )?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogIdOf<ZkRaft>>,
    ) -> Result<(), io::Error> {
        let mut inner = self.inner.lock().await;
        // A hint for a faster restart: written in place, not fsynced (see the module docs).
        let mut hint = Vec::with_capacity(COMMITTED_LEN);
        framed(&codec::encode(&committed)?, &mut hint);
        hint.resize(COMMITTED_LEN.max(hint.len()), 0);
        inner.committed_file.write_all_at(&hint, 0)?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<ZkRaft>>, io::Error> {
        Ok(self.inner.lock().await.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<ZkRaft>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.inner.lock().await;
        let mut bytes = Vec::new();
        let mut added = Vec::new();
        for e in entries {
            let off = inner.end + bytes.len() as u64;
            record(&e, &mut bytes)?;
            let len = (inner.end + bytes.len() as u64 - off - 8) as u32;
            added.push((e, Span { off, len }));
        }
        inner.end += bytes.len() as u64;
        // Readers see the entries at once (a leader may replicate what it has not yet
        // flushed); openraft counts them durable only once the writer calls back.
        for (e, span) in added {
            let index = e.log_id.index();
            inner.last = Some(e.log_id);
            inner.spans.insert(index, span);
            inner.recent.insert(index, e);
        }
        inner.evict();
        inner.writer.send(Job::Append {
            bytes,
            done: callback,
        })
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<ZkRaft>>,
    ) -> Result<(), io::Error> {
        let mut inner = self.inner.lock().await;
        let from = last_log_id.map_or(0, |l| l.index() + 1);
        if inner.spans.range(from..).next().is_none() {
            return Ok(());
        }
        inner.rewrite(..from).await?;
        let last = inner.spans.keys().next_back().copied();
        inner.last = match last {
            Some(i) => inner.entry(i)?.map(|e| e.log_id),
            None => None,
        };
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<ZkRaft>) -> Result<(), io::Error> {
        let mut inner = self.inner.lock().await;
        let path = inner.dir.join("purged");
        write_atomic(
            &path,
            &serde_json::to_vec(&log_id).map_err(other)?,
            inner.force_sync,
        )?;
        inner.purged = Some(log_id);
        if inner.last.is_some_and(|l| l.index() <= log_id.index()) {
            inner.last = None;
        }
        inner.rewrite(log_id.index() + 1..).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::entry::RaftEntry;

    /// A log written by zkherd before 0.2 (JSON records) opens, and is rewritten in the binary
    /// form with the same entries.
    #[test]
    fn a_legacy_json_log_is_read_and_rewritten() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let entries: Vec<Entry> = (1..=3)
            .map(|i| {
                let log_id = openraft::LogId::new(
                    openraft::impls::leader_id_adv::LeaderId {
                        term: 1,
                        node_id: 3,
                    },
                    i,
                );
                Entry::new_blank(log_id)
            })
            .collect();
        let mut legacy = Vec::new();
        for e in &entries {
            framed(&serde_json::to_vec(e).expect("json"), &mut legacy);
        }
        legacy.extend_from_slice(b"\0\0\0\x09torn");
        fs::write(dir.join("log"), &legacy).expect("write");
        fs::write(dir.join("committed"), b"null").expect("write");
        let (_store, warnings) = LogStore::open(dir, false).expect("open");
        assert!(
            warnings.iter().any(|w| w.contains("rewritten")),
            "{warnings:?}"
        );
        assert!(
            warnings.iter().any(|w| w.contains("torn tail")),
            "{warnings:?}"
        );
        let bytes = fs::read(dir.join("log")).expect("read");
        assert!(bytes.starts_with(LOG_MAGIC));
        let (back, good, legacy) = parse_log(&bytes);
        assert!(!legacy);
        assert_eq!(good, bytes.len());
        assert_eq!(back.into_values().collect::<Vec<_>>(), entries);
    }

    /// Once the last handle is dropped, every append it queued is in the file: a store opened
    /// right after (an in-process node killed and restarted) sees them, and nothing of the old
    /// store's is written later.
    #[tokio::test]
    async fn dropping_the_store_finishes_its_queued_appends() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let (mut store, _) = LogStore::open(dir, false).expect("open");
        for i in 1..=200u64 {
            let log_id = openraft::LogId::new(
                openraft::impls::leader_id_adv::LeaderId {
                    term: 1,
                    node_id: 1,
                },
                i,
            );
            store
                .append([Entry::new_blank(log_id)], IOFlushed::noop())
                .await
                .expect("append");
        }
        drop(store);
        let before = fs::read(dir.join("log")).expect("read");
        assert_eq!(log_index_range(dir).expect("range"), Some((1, 200)));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(fs::read(dir.join("log")).expect("read"), before);
    }

    fn blank(i: u64) -> Entry {
        Entry::new_blank(openraft::LogId::new(
            openraft::impls::leader_id_adv::LeaderId {
                term: 1 + i / 1000,
                node_id: 1,
            },
            i,
        ))
    }

    /// Entries beyond what memory keeps are read back from the file, before and after a
    /// truncation, a purge and a reopen; memory holds no more than `KEEP_IN_MEMORY` once the
    /// writer is done.
    #[tokio::test]
    async fn old_entries_are_read_back_from_the_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let n = 3 * KEEP_IN_MEMORY as u64;
        let (mut store, _) = LogStore::open(dir, false).expect("open");
        for chunk in (1..=n).collect::<Vec<_>>().chunks(100) {
            store
                .append(chunk.iter().map(|i| blank(*i)), IOFlushed::noop())
                .await
                .expect("append");
        }
        let all: Vec<Entry> = (1..=n).map(blank).collect();
        assert_eq!(store.try_get_log_entries(..).await.expect("read"), all);
        store
            .truncate_after(Some(blank(n - 10).log_id))
            .await
            .expect("truncate");
        // The rewrite waits for the writer: everything older than the newest are on disk now.
        assert!(store.inner.lock().await.recent.len() <= KEEP_IN_MEMORY);
        store.purge(blank(100).log_id).await.expect("purge");
        let kept: Vec<Entry> = (101..=n - 10).map(blank).collect();
        assert_eq!(store.try_get_log_entries(..).await.expect("read"), kept);
        assert_eq!(
            store.get_log_state().await.expect("state").last_log_id,
            Some(blank(n - 10).log_id)
        );
        store
            .append([blank(n - 9)], IOFlushed::noop())
            .await
            .expect("append");
        drop(store);
        let (mut store, _) = LogStore::open(dir, false).expect("reopen");
        let kept: Vec<Entry> = (101..=n - 9).map(blank).collect();
        assert_eq!(store.try_get_log_entries(..).await.expect("read"), kept);
        assert_eq!(
            store.try_get_log_entries(200..203).await.expect("read"),
            (200..203).map(blank).collect::<Vec<_>>()
        );
        assert!(store.inner.lock().await.recent.len() <= KEEP_IN_MEMORY);
    }

    /// A torn or foreign commit hint is dropped with a warning, never trusted.
    #[test]
    fn a_garbled_commit_hint_is_ignored() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join("committed"), [7u8; 64]).expect("write");
        let mut warnings = Vec::new();
        assert_eq!(
            read_committed_hint(&tmp.path().join("committed"), &mut warnings),
            None
        );
        assert_eq!(warnings.len(), 1);
    }
}
