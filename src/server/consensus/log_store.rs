//! The Raft log on disk: `raft/log` holds records `u32 length | u32 crc32 | JSON entry`; `vote`,
//! `committed` and `purged` are small JSON files replaced atomically (write, fsync, rename,
//! fsync the directory). Entries since the last purge are also kept in memory, which suits the
//! log sizes of a development ensemble; truncation and purge rewrite the file atomically.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::{EntryOf, LogIdOf, VoteOf};
use tokio::sync::Mutex;

use super::ZkRaft;

type Entry = EntryOf<ZkRaft>;

struct Inner {
    dir: PathBuf,
    log: File,
    entries: BTreeMap<u64, Entry>,
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

fn record(e: &Entry) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(e).map_err(other)?;
    let mut rec = Vec::with_capacity(8 + json.len());
    rec.extend_from_slice(&(json.len() as u32).to_be_bytes());
    rec.extend_from_slice(&crc32fast::hash(&json).to_be_bytes());
    rec.extend_from_slice(&json);
    Ok(rec)
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

impl LogStore {
    /// Open the log in `dir` (created if missing); a torn last record is cut off.
    pub fn open(dir: &Path, force_sync: bool) -> io::Result<(LogStore, Vec<String>)> {
        fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let mut warnings = Vec::new();
        let mut bytes = Vec::new();
        if let Ok(mut f) = File::open(&path) {
            f.read_to_end(&mut bytes)?;
        }
        let mut entries = BTreeMap::new();
        let mut off = 0usize;
        while off < bytes.len() {
            let good = (|| {
                if bytes.len() - off < 8 {
                    return None;
                }
                let len = u32::from_be_bytes(bytes[off..off + 4].try_into().ok()?) as usize;
                let crc = u32::from_be_bytes(bytes[off + 4..off + 8].try_into().ok()?);
                let payload = bytes.get(off + 8..off + 8 + len)?;
                if crc32fast::hash(payload) != crc {
                    return None;
                }
                let e: Entry = serde_json::from_slice(payload).ok()?;
                Some((e, 8 + len))
            })();
            match good {
                Some((e, n)) => {
                    entries.insert(e.log_id.index(), e);
                    off += n;
                }
                None => {
                    warnings.push(format!(
                        "{}: torn tail at byte {off}; cut {} bytes",
                        path.display(),
                        bytes.len() - off
                    ));
                    let f = OpenOptions::new().write(true).open(&path)?;
                    f.set_len(off as u64)?;
                    f.sync_all()?;
                    break;
                }
            }
        }
        let log = OpenOptions::new().create(true).append(true).open(&path)?;
        let inner = Inner {
            dir: dir.to_path_buf(),
            log,
            entries,
            purged: read_json(&dir.join("purged"))?,
            vote: read_json(&dir.join("vote"))?,
            committed: read_json(&dir.join("committed"))?,
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

impl Inner {
    /// Rewrite the log file from memory (after truncation or purge).
    fn rewrite(&mut self) -> io::Result<()> {
        let mut bytes = Vec::new();
        for e in self.entries.values() {
            bytes.extend_from_slice(&record(e)?);
        }
        let path = self.dir.join("log");
        write_atomic(&path, &bytes, self.force_sync)?;
        self.log = OpenOptions::new().append(true).open(&path)?;
        Ok(())
    }
}

impl RaftLogReader<ZkRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let inner = self.inner.lock().await;
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<ZkRaft>>, io::Error> {
        Ok(self.inner.lock().await.vote)
    }
}

impl RaftLogStorage<ZkRaft> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<ZkRaft>, io::Error> {
        let inner = self.inner.lock().await;
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.purged);
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: last,
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
        let path = inner.dir.join("committed");
        // The committed index is a hint for faster restart; it need not be fsynced.
        write_atomic(
            &path,
            &serde_json::to_vec(&committed).map_err(other)?,
            false,
        )?;
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
            bytes.extend_from_slice(&record(&e)?);
            added.push(e);
        }
        let r = (|| {
            inner.log.write_all(&bytes)?;
            if inner.force_sync {
                inner.log.sync_data()?;
            }
            Ok::<(), io::Error>(())
        })();
        if r.is_ok() {
            for e in added {
                inner.entries.insert(e.log_id.index(), e);
            }
        }
        let flushed = r.as_ref().map(|_| ()).map_err(other);
        callback.io_completed(flushed);
        r
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<ZkRaft>>,
    ) -> Result<(), io::Error> {
        let mut inner = self.inner.lock().await;
        let from = last_log_id.map_or(0, |l| l.index() + 1);
        let doomed: Vec<u64> = inner.entries.range(from..).map(|(k, _)| *k).collect();
        if doomed.is_empty() {
            return Ok(());
        }
        for k in doomed {
            inner.entries.remove(&k);
        }
        inner.rewrite()
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
        let doomed: Vec<u64> = inner
            .entries
            .range(..=log_id.index())
            .map(|(k, _)| *k)
            .collect();
        for k in doomed {
            inner.entries.remove(&k);
        }
        inner.rewrite()
    }
}
