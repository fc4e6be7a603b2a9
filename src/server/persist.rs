//! Durability: an append-only log of entries (`dataLogDir/zkherd/log.<first zxid>`) and
//! snapshots of the state (`dataDir/zkherd/snapshot.<zxid>`).
//!
//! Log record: `u32 length | u32 crc32(payload) | payload`, payload = the entry in jute (the
//! write's original request bytes included), so replay runs the same pure apply. Recovery loads
//! the newest snapshot whose CRC holds, replays later entries, and truncates a torn tail of the
//! last segment (a crash mid-write) with a warning.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::proto::{self, DecodeError, Reader, Writer};
use super::tree::{AuthId, Entry, SessionEntry, State, Txn, Znode};

/// Log fsyncs that took longer than Apache's `fsync.warningthresholdms` default (1 s): the
/// admin `stats` `fsync_threshold_exceed_count`. Counted per process (in `tasks` mode the nodes
/// of one supervisor share it).
pub static SLOW_FSYNCS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `f.sync_data()`, counted in [`SLOW_FSYNCS`] when slow, with a warning naming the file.
pub fn sync_log(f: &File, path: &Path) -> io::Result<()> {
    let started = std::time::Instant::now();
    let r = f.sync_data();
    let took = started.elapsed();
    if took >= std::time::Duration::from_secs(1) {
        SLOW_FSYNCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            "fsync of {} took {} ms (over 1000 ms); the disk is slow or busy",
            path.display(),
            took.as_millis()
        );
    }
    r
}

const SNAP_MAGIC: &[u8; 4] = b"ZKHS";
const SNAP_VERSION: i32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: corrupt record at byte {offset} (not at the end of the newest log segment): {reason}; move the file away to start from the last snapshot")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn encode_entry(e: &Entry) -> Vec<u8> {
    let mut w = Writer::new();
    w.long(e.zxid).long(e.time_ms).long(e.session_id);
    w.int(e.auth.len() as i32);
    for a in &e.auth {
        w.string(&a.scheme).string(&a.id);
    }
    match &e.txn {
        Txn::CreateSession { timeout_ms, passwd } => {
            w.int(1).int(*timeout_ms).buffer(Some(passwd));
        }
        Txn::CloseSession => {
            w.int(2);
        }
        Txn::Write(op) => {
            w.int(3).int(proto::write_opcode(op));
            proto::encode_write(&mut w, op);
        }
        Txn::Multi(ops) => {
            w.int(4);
            proto::encode_multi(&mut w, ops);
        }
        Txn::Reap { path } => {
            w.int(5).string(path);
        }
        Txn::Error(code) => {
            w.int(6).int(*code);
        }
        Txn::Reconfig {
            servers,
            static_config,
        } => {
            w.int(7).string(servers).boolean(*static_config);
        }
    }
    w.buf
}

pub fn decode_entry(b: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader::new(b);
    let zxid = r.long()?;
    let time_ms = r.long()?;
    let session_id = r.long()?;
    let auth = r.vector(8, |r| {
        Ok(AuthId {
            scheme: r.string()?,
            id: r.string()?,
        })
    })?;
    let txn = match r.int()? {
        1 => {
            let timeout_ms = r.int()?;
            let p = r.buffer()?.unwrap_or_default();
            let passwd: [u8; 16] = p
                .try_into()
                .map_err(|_| DecodeError("session password is not 16 bytes".into()))?;
            Txn::CreateSession { timeout_ms, passwd }
        }
        2 => Txn::CloseSession,
        3 => {
            let opcode = r.int()?;
            match proto::decode_request(opcode, r.rest())? {
                proto::Request::Write(op) => Txn::Write(op),
                other => return Err(DecodeError(format!("not a write: {other:?}"))),
            }
        }
        4 => match proto::decode_request(proto::op::MULTI, r.rest())? {
            proto::Request::Multi(ops) => Txn::Multi(ops),
            other => return Err(DecodeError(format!("not a multi: {other:?}"))),
        },
        5 => Txn::Reap { path: r.string()? },
        6 => Txn::Error(r.int()?),
        7 => Txn::Reconfig {
            servers: r.string()?,
            static_config: r.boolean()?,
        },
        t => return Err(DecodeError(format!("unknown txn tag {t}"))),
    };
    Ok(Entry {
        zxid,
        time_ms,
        session_id,
        auth,
        txn,
    })
}

/// The snapshot encoding of `st` in memory (tests, digests of small states); the server writes
/// snapshots with [`write_snapshot`], which never holds the whole encoding.
pub fn encode_snapshot(st: &State) -> Vec<u8> {
    let mut v = Vec::new();
    write_snapshot(st, &mut v).expect("a Vec takes every write");
    v
}

/// What [`write_snapshot`] buffers before handing bytes to the writer.
const SNAPSHOT_CHUNK: usize = 64 * 1024;

/// Stream the snapshot encoding of `st` to `out`, znode by znode through a 64 KiB buffer, the
/// CRC computed on the way: memory stays flat whatever the tree's size (a whole encoding in memory
/// was the size of the snapshot again, twice, while it was written). Returns the bytes written.
pub fn write_snapshot<W: Write>(st: &State, out: &mut W) -> io::Result<u64> {
    let mut chunks = SnapshotChunks::new(st);
    let mut written = 0;
    while let Some(b) = chunks.next_chunk() {
        out.write_all(b)?;
        written += b.len() as u64;
    }
    Ok(written)
}

/// The snapshot encoding of a state, a chunk of about [`SNAPSHOT_CHUNK`] bytes at a time, so a
/// writer can pause between chunks (a node's core lets its other tasks run while it writes a
/// large snapshot). The last chunk ends with the CRC of everything before it.
pub struct SnapshotChunks<'a> {
    nodes: std::collections::btree_map::Iter<'a, String, super::tree::Znode>,
    sessions: std::collections::btree_map::Iter<'a, i64, super::tree::SessionEntry>,
    sessions_count: usize,
    stage: ChunkStage,
    w: Writer,
    crc: crc32fast::Hasher,
    /// The buffer holds a chunk already handed out.
    handed: bool,
}

#[derive(PartialEq)]
enum ChunkStage {
    Nodes,
    Sessions,
    Done,
}

impl<'a> SnapshotChunks<'a> {
    pub fn new(st: &'a State) -> Self {
        let mut w = Writer::new();
        w.buf.reserve(SNAPSHOT_CHUNK + 4096);
        w.buf.extend_from_slice(SNAP_MAGIC);
        w.int(SNAP_VERSION).long(st.last_zxid);
        w.int(st.nodes.len() as i32);
        SnapshotChunks {
            nodes: st.nodes.iter(),
            sessions: st.sessions.iter(),
            sessions_count: st.sessions.len(),
            stage: ChunkStage::Nodes,
            w,
            crc: crc32fast::Hasher::new(),
            handed: false,
        }
    }

    /// The next chunk, or None once the whole encoding was handed out.
    pub fn next_chunk(&mut self) -> Option<&[u8]> {
        if self.stage == ChunkStage::Done {
            return None;
        }
        if std::mem::take(&mut self.handed) {
            self.w.buf.clear();
        }
        while self.w.buf.len() < SNAPSHOT_CHUNK {
            match self.stage {
                ChunkStage::Nodes => match self.nodes.next() {
                    Some((path, n)) => {
                        self.w
                            .string(path)
                            .buffer(n.data.as_deref())
                            .acls(&n.acl)
                            .stat(&n.stat);
                    }
                    None => {
                        self.w.int(self.sessions_count as i32);
                        self.stage = ChunkStage::Sessions;
                    }
                },
                ChunkStage::Sessions => match self.sessions.next() {
                    Some((id, s)) => {
                        self.w.long(*id).int(s.timeout_ms).buffer(Some(&s.passwd));
                    }
                    None => {
                        self.crc.update(&self.w.buf);
                        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new());
                        self.w.buf.extend_from_slice(&crc.finalize().to_be_bytes());
                        self.stage = ChunkStage::Done;
                        return Some(self.take());
                    }
                },
                ChunkStage::Done => unreachable!("returned above"),
            }
        }
        self.crc.update(&self.w.buf);
        Some(self.take())
    }

    /// The buffered chunk; the buffer is cleared when the next one starts.
    fn take(&mut self) -> &[u8] {
        self.handed = true;
        self.w.buf.as_slice()
    }
}

/// A digest of the whole replicated state (every znode with its data, ACL and stat, every
/// session, the last zxid): 64 bits of SHA-1 over the snapshot encoding, which walks ordered
/// maps only. Replicas that applied the same entries have the same digest.
pub fn digest(st: &State) -> u64 {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    write_snapshot(st, &mut h).expect("hashing takes every write");
    let h = h.finalize();
    u64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
}

pub fn decode_snapshot(b: &[u8], opts: super::tree::TreeOptions) -> Result<State, DecodeError> {
    if b.len() < 8 || &b[..4] != SNAP_MAGIC {
        return Err(DecodeError("not a zkherd snapshot".into()));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body) != u32::from_be_bytes(crc.try_into().expect("4 bytes")) {
        return Err(DecodeError("snapshot CRC mismatch".into()));
    }
    let mut r = Reader::new(&body[4..]);
    if r.int()? != SNAP_VERSION {
        return Err(DecodeError("unknown snapshot version".into()));
    }
    let mut st = State::new(opts);
    st.last_zxid = r.long()?;
    let n = r.int()?;
    // The paths come sorted (the encoder walks a BTreeMap): check that, collect, and build the
    // map in one bulk pass rather than a million searches from its root.
    let mut nodes: Vec<(String, Znode)> = Vec::with_capacity((n.max(0) as usize).min(b.len() / 16));
    let mut last_acl: Option<(&[u8], std::sync::Arc<[proto::Acl]>)> = None;
    for _ in 0..n.max(0) {
        let path = r.string()?;
        if nodes.last().is_some_and(|(p, _)| *p >= path) {
            return Err(DecodeError(format!(
                "snapshot paths out of order at {path:?}"
            )));
        }
        let data = r.buffer()?;
        let raw = r.acls_raw()?;
        let acl = match &last_acl {
            Some((prev, shared)) if *prev == raw => shared.clone(),
            _ => {
                let shared = super::tree::intern_acl(Reader::new(raw).acls()?);
                last_acl = Some((raw, shared.clone()));
                shared
            }
        };
        let stat = r.stat()?;
        nodes.push((
            path,
            Znode {
                data,
                acl,
                stat,
                children: Default::default(),
            },
        ));
    }
    // Children and the ephemeral index follow from the paths and owners. A parent sorts before
    // its children, and one parent's children come in name order, so each set is built from a
    // sorted list; consecutive znodes mostly share a parent, so the parent is looked up once per
    // run of siblings.
    let mut names: Vec<Vec<String>> = vec![Vec::new(); nodes.len()];
    let mut last: Option<(&str, usize)> = None;
    for (path, node) in &nodes {
        if let Some(s) = node.ephemeral_session() {
            st.ephemerals.entry(s).or_default().insert(path.clone());
        }
        if path == "/" {
            continue;
        }
        let i = path
            .rfind('/')
            .ok_or_else(|| DecodeError(format!("relative path {path:?}")))?;
        let parent = if i == 0 { "/" } else { &path[..i] };
        let at = match last {
            Some((p, at)) if p == parent => Some(at),
            _ => nodes.binary_search_by(|(p, _)| p.as_str().cmp(parent)).ok(),
        };
        if let Some(at) = at {
            names[at].push(path[i + 1..].to_string());
            last = Some((parent, at));
        }
    }
    for ((_, node), kids) in nodes.iter_mut().zip(names) {
        node.children = kids.into_iter().collect();
    }
    st.nodes = nodes.into_iter().collect();
    let n = r.int()?;
    for _ in 0..n.max(0) {
        let id = r.long()?;
        let timeout_ms = r.int()?;
        let passwd: [u8; 16] = r
            .buffer()?
            .unwrap_or_default()
            .try_into()
            .map_err(|_| DecodeError("session password is not 16 bytes".into()))?;
        st.sessions.insert(id, SessionEntry { timeout_ms, passwd });
    }
    Ok(st)
}

/// What recovery found.
pub struct Recovered {
    pub state: State,
    pub replayed: usize,
    pub warnings: Vec<String>,
}

/// The open log: appends go to the newest segment.
pub struct Log {
    log_dir: PathBuf,
    snap_dir: PathBuf,
    out: File,
    out_path: PathBuf,
    /// Where the next record goes in `out`.
    pos: u64,
    /// Bytes preallocated in `out` (zeros past `pos`).
    allocated: u64,
    /// Records appended since the last sync.
    pending: Vec<u8>,
    force_sync: bool,
    pub since_snapshot: u64,
}

/// Segments are preallocated in steps of this size, as ZooKeeper does (`preAllocSize`): an
/// fdatasync then never has to commit a file-size change, which makes it several times cheaper.
const PREALLOC: u64 = 64 * 1024 * 1024;

fn segment_name(first_zxid: i64) -> String {
    format!("log.{first_zxid:016x}")
}

fn list(dir: &Path, prefix: &str) -> Vec<(i64, PathBuf)> {
    let mut v: Vec<(i64, PathBuf)> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let hex = name.strip_prefix(prefix)?;
                    if hex.contains('.') {
                        return None;
                    }
                    Some((i64::from_str_radix(hex, 16).ok()?, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What one log segment holds.
struct Scan {
    entries: Vec<Entry>,
    /// Offset just past the last good record.
    end: u64,
    /// Why reading stopped before the zero-filled end, if it did.
    torn: Option<String>,
}

/// Read records until the preallocated zeros (or EOF); never reads the zeros themselves.
fn scan_segment(path: &Path) -> Result<Scan, PersistError> {
    let f = File::open(path).map_err(io_err(path))?;
    let mut r = io::BufReader::with_capacity(256 * 1024, f);
    let mut scan = Scan {
        entries: Vec::new(),
        end: 0,
        torn: None,
    };
    loop {
        let mut head = [0u8; 8];
        let n = read_full(&mut r, &mut head).map_err(io_err(path))?;
        if n == 0 || (n == 8 && head == [0; 8]) {
            break;
        }
        if n < 8 {
            if head[..n].iter().all(|b| *b == 0) {
                break;
            }
            scan.torn = Some("truncated record header".into());
            break;
        }
        let len = u32::from_be_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(head[4..].try_into().expect("4 bytes"));
        if len > 64 * 1024 * 1024 {
            scan.torn = Some(format!("record length {len} is implausible"));
            break;
        }
        let mut payload = vec![0u8; len];
        if read_full(&mut r, &mut payload).map_err(io_err(path))? < len {
            scan.torn = Some(format!("record of {len} bytes is cut short"));
            break;
        }
        if crc32fast::hash(&payload) != crc {
            scan.torn = Some("CRC mismatch".into());
            break;
        }
        match decode_entry(&payload) {
            Ok(e) => scan.entries.push(e),
            Err(e) => {
                scan.torn = Some(e.0);
                break;
            }
        }
        scan.end += 8 + len as u64;
    }
    Ok(scan)
}

/// Like read_exact, but returns how many bytes were read before EOF.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Open (or create) a segment and make sure it is preallocated.
fn open_segment(path: &Path) -> Result<(File, u64), PersistError> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    let allocated = len.max(PREALLOC);
    if len < allocated {
        f.set_len(allocated).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
    }
    Ok((f, allocated))
}

impl Log {
    /// Recover the state from `snap_dir`/`log_dir` and open the log for appending.
    pub fn open(
        snap_dir: &Path,
        log_dir: &Path,
        force_sync: bool,
        fresh: impl Fn() -> State,
        decode_snap: impl Fn(&[u8]) -> Result<State, DecodeError>,
    ) -> Result<(Log, Recovered), PersistError> {
        fs::create_dir_all(snap_dir).map_err(io_err(snap_dir))?;
        fs::create_dir_all(log_dir).map_err(io_err(log_dir))?;
        let mut warnings = Vec::new();
        let mut state = None;
        for (_, path) in list(snap_dir, "snapshot.").into_iter().rev() {
            let bytes = fs::read(&path).map_err(io_err(&path))?;
            match decode_snap(&bytes) {
                Ok(s) => {
                    state = Some(s);
                    break;
                }
                Err(e) => warnings.push(format!("{}: skipped: {e}", path.display())),
            }
        }
        let mut state = state.unwrap_or_else(fresh);
        let segments = list(log_dir, "log.");
        let mut replayed = 0;
        let mut end_of_last = 0u64;
        for (i, (_, path)) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            let scan = scan_segment(path)?;
            for entry in scan.entries {
                if entry.zxid > state.last_zxid {
                    state.apply(&entry);
                    replayed += 1;
                }
            }
            match scan.torn {
                None => {}
                Some(reason) if last => {
                    warnings.push(format!(
                        "{}: torn tail at byte {} ({reason}); cut it off",
                        path.display(),
                        scan.end
                    ));
                    let f = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(io_err(path))?;
                    // Cut the torn record and what follows; preallocation refills with zeros.
                    f.set_len(scan.end).map_err(io_err(path))?;
                    f.sync_all().map_err(io_err(path))?;
                }
                Some(reason) => {
                    return Err(PersistError::Corrupt {
                        path: path.clone(),
                        offset: scan.end,
                        reason,
                    })
                }
            }
            if last {
                end_of_last = scan.end;
            }
        }
        let (out_path, pos) = match segments.last() {
            Some((_, p)) => (p.clone(), end_of_last),
            None => (log_dir.join(segment_name(state.last_zxid + 1)), 0),
        };
        let (out, allocated) = open_segment(&out_path)?;
        let log = Log {
            log_dir: log_dir.to_path_buf(),
            snap_dir: snap_dir.to_path_buf(),
            out,
            out_path,
            pos,
            allocated,
            pending: Vec::with_capacity(256 * 1024),
            force_sync,
            since_snapshot: replayed as u64,
        };
        Ok((
            log,
            Recovered {
                state,
                replayed,
                warnings,
            },
        ))
    }

    /// Buffer one entry; durable after [`Log::sync`].
    pub fn append(&mut self, e: &Entry) -> Result<(), PersistError> {
        let payload = encode_entry(e);
        let mut rec = Vec::with_capacity(8 + payload.len());
        rec.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        rec.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        rec.extend_from_slice(&payload);
        self.pending.extend_from_slice(&rec);
        self.since_snapshot += 1;
        Ok(())
    }

    /// Flush buffered entries and (unless `forceSync=no`) fsync them.
    pub fn sync(&mut self) -> Result<(), PersistError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        use std::os::unix::fs::FileExt;
        let end = self.pos + self.pending.len() as u64;
        if end > self.allocated {
            let size = end.div_ceil(PREALLOC) * PREALLOC;
            self.out.set_len(size).map_err(io_err(&self.out_path))?;
            self.allocated = size;
        }
        self.out
            .write_all_at(&self.pending, self.pos)
            .map_err(io_err(&self.out_path))?;
        if self.force_sync {
            sync_log(&self.out, &self.out_path).map_err(io_err(&self.out_path))?;
        }
        self.pos = end;
        self.pending.clear();
        Ok(())
    }

    /// Write a snapshot of `st` (atomically) and start a new log segment after it.
    pub fn snapshot(&mut self, st: &State) -> Result<PathBuf, PersistError> {
        self.sync()?;
        let path = self
            .snap_dir
            .join(format!("snapshot.{:016x}", st.last_zxid));
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            write_snapshot(st, &mut f).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        let next = self.log_dir.join(segment_name(st.last_zxid + 1));
        if next != self.out_path {
            let (out, allocated) = open_segment(&next)?;
            self.out = out;
            self.allocated = allocated;
            self.pos = 0;
            self.out_path = next;
        }
        self.since_snapshot = 0;
        Ok(path)
    }

    /// Keep the newest `retain` snapshots and the log segments needed after the oldest of them.
    pub fn purge(&mut self, retain: usize) -> usize {
        let snaps = list(&self.snap_dir, "snapshot.");
        if snaps.len() <= retain {
            return 0;
        }
        let mut removed = 0;
        let cut = snaps.len() - retain;
        let oldest_kept = snaps[cut].0;
        for (_, p) in &snaps[..cut] {
            if fs::remove_file(p).is_ok() {
                removed += 1;
            }
        }
        let segs = list(&self.log_dir, "log.");
        for w in segs.windows(2) {
            // A segment is needed only if it may hold entries after the oldest kept snapshot.
            if w[1].0 <= oldest_kept + 1
                && w[0].1 != self.out_path
                && fs::remove_file(&w[0].1).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    pub fn snap_dir(&self) -> &Path {
        &self.snap_dir
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::proto::{op, Acl, WriteOp};

    fn entry(zxid: i64, txn: Txn) -> Entry {
        Entry {
            zxid,
            time_ms: 1_700_000_000_000 + zxid,
            session_id: 0x100,
            auth: vec![AuthId {
                scheme: "ip".into(),
                id: "127.0.0.1".into(),
            }],
            txn,
        }
    }

    fn create(path: &str, flags: i32) -> Txn {
        Txn::Write(WriteOp::Create {
            opcode: op::CREATE,
            path: path.into(),
            data: Some(path.as_bytes().to_vec()),
            acl: vec![Acl::world_all()],
            flags,
            ttl: -1,
        })
    }

    fn open(dir: &Path) -> (Log, Recovered) {
        Log::open(
            &dir.join("snap"),
            &dir.join("log"),
            true,
            || State::new(Default::default()),
            |b| decode_snapshot(b, Default::default()),
        )
        .unwrap()
    }

    #[test]
    fn entries_round_trip() {
        for txn in [
            Txn::CreateSession {
                timeout_ms: 30000,
                passwd: [7; 16],
            },
            Txn::CloseSession,
            create("/a", 1),
            Txn::Multi(vec![WriteOp::Check {
                path: "/".into(),
                version: -1,
            }]),
            Txn::Reap { path: "/c".into() },
            Txn::Error(-123),
        ] {
            let e = entry(5, txn);
            assert_eq!(decode_entry(&encode_entry(&e)).unwrap(), e);
        }
    }

    #[test]
    fn a_restart_replays_the_log_and_a_torn_tail_is_truncated() {
        let tmp = tempfile::tempdir().unwrap();
        let mut expected = State::new(Default::default());
        {
            let (mut log, rec) = open(tmp.path());
            assert_eq!(rec.replayed, 0);
            let mut z = 0;
            let mut push = |log: &mut Log, txn| {
                z += 1;
                let e = entry(z, txn);
                expected.apply(&e);
                log.append(&e).unwrap();
            };
            push(
                &mut log,
                Txn::CreateSession {
                    timeout_ms: 1,
                    passwd: [1; 16],
                },
            );
            push(&mut log, create("/a", 0));
            push(&mut log, create("/a/e", 1));
            log.sync().unwrap();
        }
        // A crash mid-write leaves half a record.
        let seg = list(&tmp.path().join("log"), "log.")[0].1.clone();
        let bytes = std::fs::read(&seg).unwrap();
        let mut end = 0;
        while end + 8 <= bytes.len() && bytes[end..end + 4] != [0, 0, 0, 0] {
            end += 8 + u32::from_be_bytes(bytes[end..end + 4].try_into().unwrap()) as usize;
        }
        use std::os::unix::fs::FileExt;
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(&[0, 0, 0, 50, 1, 2, 3], end as u64).unwrap();
        drop(f);
        let (_, rec) = open(tmp.path());
        assert_eq!(rec.replayed, 3);
        assert_eq!(rec.state, expected);
        assert!(rec.warnings[0].contains("torn tail"), "{:?}", rec.warnings);
        // The truncation is durable: the next open has nothing to warn about.
        let (_, rec) = open(tmp.path());
        assert!(rec.warnings.is_empty());
    }

    #[test]
    fn a_decoded_snapshot_is_the_state_it_was_taken_of() {
        // Names that sort around '/' ('-' and '.' before it, '0' after) put a parent's children
        // apart from it in path order; ephemerals rebuild the session index; two ACL lists.
        let mut st = State::new(Default::default());
        let mut z = 1;
        st.apply(&entry(
            z,
            Txn::CreateSession {
                timeout_ms: 6000,
                passwd: [3; 16],
            },
        ));
        let digest_acl = Acl {
            perms: 31,
            scheme: "digest".into(),
            id: "bob:x".into(),
        };
        for (path, flags) in [
            ("/a", 0),
            ("/a-b", 0),
            ("/a.c", 0),
            ("/a/c", 0),
            ("/a/c/d", 1),
            ("/a/b", 0),
            ("/a0", 0),
            ("/a/c/e", 1),
        ] {
            z += 1;
            let mut txn = create(path, flags);
            if path == "/a/b" {
                if let Txn::Write(WriteOp::Create { acl, .. }) = &mut txn {
                    *acl = vec![digest_acl.clone()];
                }
            }
            st.apply(&entry(z, txn));
        }
        assert_eq!(st.nodes["/a"].children.len(), 2);
        let back = decode_snapshot(&encode_snapshot(&st), Default::default()).unwrap();
        assert_eq!(back, st);
        assert_eq!(back.ephemerals[&0x100].len(), 2);
        assert_eq!(*back.nodes["/a/b"].acl, [digest_acl]);
        let mut streamed = Vec::new();
        assert_eq!(
            write_snapshot(&st, &mut streamed).unwrap(),
            streamed.len() as u64
        );
        let mut out_of_order = encode_snapshot(&st);
        let (a, b) = (
            find(&out_of_order, b"/a-b").unwrap(),
            find(&out_of_order, b"/a.c").unwrap(),
        );
        out_of_order[a + 2] = b'.';
        out_of_order[b + 2] = b'-';
        let crc_at = out_of_order.len() - 4;
        let crc = crc32fast::hash(&out_of_order[..crc_at]);
        out_of_order[crc_at..].copy_from_slice(&crc.to_be_bytes());
        let e = decode_snapshot(&out_of_order, Default::default()).unwrap_err();
        assert!(e.0.contains("out of order"), "{e:?}");
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn snapshots_restore_the_state_and_purge_keeps_what_recovery_needs() {
        let tmp = tempfile::tempdir().unwrap();
        let mut st = State::new(Default::default());
        let (mut log, _) = open(tmp.path());
        let mut z = 0;
        for round in 0..5 {
            for i in 0..3 {
                z += 1;
                let e = if z == 1 {
                    entry(
                        z,
                        Txn::CreateSession {
                            timeout_ms: 1,
                            passwd: [1; 16],
                        },
                    )
                } else {
                    entry(z, create(&format!("/n{round}-{i}"), 1))
                };
                st.apply(&e);
                log.append(&e).unwrap();
            }
            log.snapshot(&st).unwrap();
        }
        z += 1;
        let e = entry(z, create("/after", 0));
        st.apply(&e);
        log.append(&e).unwrap();
        log.sync().unwrap();
        assert!(log.purge(3) > 0);
        assert_eq!(list(&tmp.path().join("snap"), "snapshot.").len(), 3);
        drop(log);
        let (_, rec) = open(tmp.path());
        assert_eq!(
            rec.state, st,
            "ephemeral index and children rebuilt from the snapshot"
        );
        assert_eq!(rec.replayed, 1);
    }
}
