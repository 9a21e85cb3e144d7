//! The Raft log and vote of a voter, on disk in `--data-dir/raft/log`.
//!
//! One append-only file of records, each `[length u32 LE][CRC-32 u32 LE][bincode body]`: a
//! batch of entries, a truncation (entries from an index on are dropped), a purge (entries up to
//! a log id are dropped, they are in a snapshot), the vote, and the committed log id. Every
//! record is fsynced before openraft is told it is done: a vote or an entry a voter acknowledged
//! is never lost by a crash. The file is read back whole at start (the live entries are kept in
//! memory too), and rewritten once purges have left it mostly dead.
//!
//! A torn last record (a crash in the middle of a write) is cut; anything cut is first copied to
//! `raft/log.damaged-<unix time>`, never deleted.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::TypeConfig;
use crate::server::store_lock::off_worker;

type NodeId = u64;

#[derive(Serialize, Deserialize)]
enum Record {
    Entries(Vec<Entry<TypeConfig>>),
    /// Entries from this index on are gone (a new leader overwrote them).
    Truncate(u64),
    /// Entries up to this log id are gone (a snapshot holds them).
    Purge(LogId<NodeId>),
    Vote(Vote<NodeId>),
    Committed(Option<LogId<NodeId>>),
}

/// Rewrite the file once it is this large and more than twice what it still needs.
const REWRITE_AT: u64 = 16 * 1024 * 1024;

struct Inner {
    path: PathBuf,
    file: File,
    /// Bytes in the file.
    file_len: u64,
    entries: BTreeMap<u64, (Entry<TypeConfig>, u64)>,
    /// Bytes the live entries take in the file (roughly: their encoded size).
    live_bytes: u64,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

/// The log storage; clones share it (the reader openraft asks for is a clone).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn frame(record: &Record) -> Vec<u8> {
    let body = bincode::serialize(record).expect("raft records always serialize");
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads the records of a log file; returns them and the length of the part that reads well.
fn read_records(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= 8 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let Some(body) = bytes.get(at + 8..at + 8 + len) else { break };
        if crc32fast::hash(body) != crc {
            break;
        }
        let Ok(record) = bincode::deserialize::<Record>(body) else { break };
        records.push(record);
        at += 8 + len;
    }
    (records, at)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl LogStore {
    /// Opens (or creates) the log in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, good) = read_records(&bytes);
        if good < bytes.len() {
            let aside = dir.join(format!("log.damaged-{}", crate::server::unix_ms() / 1000));
            std::fs::write(&aside, &bytes[good..])?;
            warn!(
                file = %path.display(),
                offset = good,
                bytes = bytes.len() - good,
                copy = %aside.display(),
                "the Raft log ends with a torn or damaged record (a crash during a write): cut there, the cut bytes are kept"
            );
            file.set_len(good as u64)?;
            file.sync_all()?;
        }
        let mut inner = Inner {
            path,
            file,
            file_len: good as u64,
            entries: BTreeMap::new(),
            live_bytes: 0,
            last_purged: None,
            vote: None,
            committed: None,
        };
        for r in records {
            inner.replay(r);
        }
        inner.file.seek(SeekFrom::End(0))?;
        Ok(LogStore { inner: Arc::new(Mutex::new(inner)) })
    }

    /// The vote and the last log id (for INFO).
    pub fn status(&self) -> (Option<Vote<NodeId>>, Option<u64>, usize) {
        let inner = self.inner.lock();
        let last = inner.entries.keys().next_back().copied().or(inner.last_purged.map(|l| l.index));
        (inner.vote, last, inner.entries.len())
    }

    /// Writes a record and fsyncs it, off the async workers.
    fn write(&self, record: &Record) -> std::io::Result<()> {
        let bytes = frame(record);
        let inner = self.inner.clone();
        off_worker(move || {
            let mut inner = inner.lock();
            inner.file.write_all(&bytes)?;
            inner.file.sync_data()?;
            inner.file_len += bytes.len() as u64;
            Ok(())
        })
    }

    /// Rewrites the file with only what it still needs, if purges left it mostly dead.
    fn maybe_rewrite(&self) -> std::io::Result<()> {
        let inner = self.inner.clone();
        off_worker(move || {
            let mut inner = inner.lock();
            if inner.file_len < REWRITE_AT || inner.file_len < 2 * inner.live_bytes {
                return Ok(());
            }
            inner.rewrite()
        })
    }
}

impl Inner {
    fn replay(&mut self, r: Record) {
        match r {
            Record::Entries(es) => {
                for e in es {
                    let size = bincode::serialized_size(&e).unwrap_or(0) + 8;
                    self.live_bytes += size;
                    if let Some((_, old)) = self.entries.insert(e.log_id.index, (e, size)) {
                        self.live_bytes -= old;
                    }
                }
            }
            Record::Truncate(index) => {
                for (_, (_, size)) in self.entries.split_off(&index) {
                    self.live_bytes -= size;
                }
            }
            Record::Purge(log_id) => {
                let keep = self.entries.split_off(&(log_id.index + 1));
                for (_, (_, size)) in std::mem::replace(&mut self.entries, keep) {
                    self.live_bytes -= size;
                }
                self.last_purged = Some(log_id);
            }
            Record::Vote(v) => self.vote = Some(v),
            Record::Committed(c) => self.committed = c,
        }
    }

    /// Writes the live state to a new file and puts it in place of the old one.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let tmp = self.path.with_extension("rewrite");
        let mut out = File::create(&tmp)?;
        let mut len = 0u64;
        let mut put = |r: &Record, out: &mut File| -> std::io::Result<()> {
            let b = frame(r);
            len += b.len() as u64;
            out.write_all(&b)
        };
        if let Some(v) = self.vote {
            put(&Record::Vote(v), &mut out)?;
        }
        if let Some(p) = self.last_purged {
            put(&Record::Purge(p), &mut out)?;
        }
        put(&Record::Committed(self.committed), &mut out)?;
        let entries: Vec<Entry<TypeConfig>> = self.entries.values().map(|(e, _)| e.clone()).collect();
        for chunk in entries.chunks(1024) {
            put(&Record::Entries(chunk.to_vec()), &mut out)?;
        }
        out.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.file_len = len;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        Ok(inner.entries.range(range).map(|(_, (e, _))| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        let last = inner.entries.values().next_back().map(|(e, _)| e.log_id).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(&Record::Vote(*vote)).map_err(|e| StorageIOError::write_vote(&e))?;
        self.inner.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        // Not needed for safety (openraft learns it again from the leader): no fsync wait.
        let bytes = frame(&Record::Committed(committed));
        let mut inner = self.inner.lock();
        inner.file.write_all(&bytes).map_err(|e| StorageIOError::write(&e))?;
        inner.file_len += bytes.len() as u64;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let record = Record::Entries(entries);
        let result = self.write(&record);
        if let Err(e) = &result {
            callback.log_io_completed(Err(io_err(e)));
            return Err(StorageIOError::write_logs(e).into());
        }
        self.inner.lock().replay(record);
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let record = Record::Truncate(log_id.index);
        self.write(&record).map_err(|e| StorageIOError::write_logs(&e))?;
        self.inner.lock().replay(record);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let record = Record::Purge(log_id);
        self.write(&record).map_err(|e| StorageIOError::write_logs(&e))?;
        self.inner.lock().replay(record);
        self.maybe_rewrite().map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_up_to_a_torn_tail() {
        let mut bytes = Vec::new();
        bytes.extend(frame(&Record::Truncate(3)));
        bytes.extend(frame(&Record::Committed(None)));
        let whole = bytes.len();
        bytes.extend(&frame(&Record::Truncate(9))[..5]);
        let (records, good) = read_records(&bytes);
        assert_eq!(records.len(), 2);
        assert_eq!(good, whole);
        let mut flipped = frame(&Record::Truncate(3));
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(read_records(&flipped).1, 0, "a bad checksum stops the read");
    }

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn the_log_and_vote_survive_a_reopen() {
        use openraft::{CommittedLeaderId, EntryPayload};
        let dir = std::env::temp_dir().join(format!("syncmesh-raft-reopen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let _guard = Dir(dir.clone());
        let entry = |i: u64| Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
            payload: EntryPayload::Blank,
        };
        {
            let mut log = LogStore::open(&dir).unwrap();
            log.save_vote(&Vote::new(3, 2)).await.unwrap();
            for i in 1..=5 {
                let inner = log.inner.clone();
                // What `append` does, without openraft's callback (which only openraft makes).
                log.write(&Record::Entries(vec![entry(i)])).unwrap();
                inner.lock().replay(Record::Entries(vec![entry(i)]));
            }
            log.truncate(LogId::new(CommittedLeaderId::new(1, 1), 4)).await.unwrap();
            log.purge(LogId::new(CommittedLeaderId::new(1, 1), 1)).await.unwrap();
        }
        // A torn record at the end, as a crash in the middle of a write leaves it.
        {
            use std::io::Write;
            let mut f = OpenOptions::new().append(true).open(dir.join("log")).unwrap();
            f.write_all(&frame(&Record::Truncate(2))[..6]).unwrap();
        }
        let mut log = LogStore::open(&dir).unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(1));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(3));
        let kept: Vec<u64> =
            log.try_get_log_entries(0..100).await.unwrap().iter().map(|e| e.log_id.index).collect();
        assert_eq!(kept, vec![2, 3]);
        let aside = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("log.damaged-"))
            .count();
        assert_eq!(aside, 1, "the cut bytes are kept beside the log");
    }
}
