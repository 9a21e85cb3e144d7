//! Opening the data directory at start.
//!
//! 1. Load `snapshot.bin` if there is one; it names the first segment it does not hold.
//! 2. Replay the segments from there, in order, into a replica with the directory's id:
//!    updates with `Replica::deliver`, installed peer snapshots with `Replica::install`.
//! 3. A torn or damaged **last record of the last segment** is what a crash in the middle of a
//!    write leaves: it is dropped with a warning and the file cut back to the last good record.
//! 4. Anything else that does not read back (a damaged snapshot, a gap between segments, a
//!    damaged record with good records after it, another replica's files) means the history on
//!    disk is incomplete. Continuing under the same id could then reissue timestamps that peers
//!    already hold, so the directory is emptied and the replica starts as a new member that
//!    bootstraps from its peers, with an error in the log.
//! 5. Write to a new segment from now on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::{error, info, warn};

use super::log::{self, LogEntry};
use super::record::End;
use super::{snapshot, Storage, StorageError};
use crate::config::AppendFsync;
use crate::crdt::replica::Delivery;
use crate::crdt::{Clock, Replica, ReplicaId};

/// A replica rebuilt from the data directory, and the storage that continues its log.
pub struct Recovered {
    pub replica: Replica,
    pub storage: Storage,
    /// The directory held a previous life of this replica (false: new member).
    pub resumed: bool,
}

/// How a replica replays: alone (every write stable at once) or in a mesh (stability as logged).
pub struct Options {
    pub policy: AppendFsync,
    pub rewrite_min: u64,
    pub standalone: bool,
}

/// The replayable content of a directory, or why it is not replayable.
struct Loaded {
    replica: Replica,
    last_segment: u64,
    base_size: u64,
    log_size: u64,
}

pub fn open(dir: &Path, opts: &Options) -> Result<Recovered, StorageError> {
    std::fs::create_dir_all(dir)?;
    let _ = std::fs::remove_file(dir.join(snapshot::TEMP_NAME));
    let started = Instant::now();
    let (loaded, resumed) = match load(dir, opts.standalone) {
        Ok(Some(l)) => (l, true),
        Ok(None) => (fresh(), false),
        Err(StorageError::Corrupt(why)) => {
            error!(dir = %dir.display(), reason = %why,
                "the data directory is damaged: discarding it and starting as a new member (bootstrap from peers)");
            discard(dir)?;
            (fresh(), false)
        }
        Err(e) => return Err(e),
    };
    let id = loaded.replica.id;
    let storage = Storage::create(
        dir,
        id,
        loaded.last_segment + 1,
        opts.policy,
        opts.rewrite_min,
        loaded.base_size,
        loaded.log_size,
    )?;
    if resumed {
        let keys: usize = (0..crate::crdt::replica::DATABASES).map(|d| loaded.replica.db(d).len()).sum();
        info!(
            replica = format!("{id:016x}"),
            keys,
            ms = started.elapsed().as_millis() as u64,
            "recovered from the data directory"
        );
    }
    Ok(Recovered { replica: loaded.replica, storage, resumed })
}

fn fresh() -> Loaded {
    let id: ReplicaId = rand::random::<u64>() | 1;
    Loaded { replica: Replica::new(id, Clock::new(0)), last_segment: 0, base_size: 0, log_size: 0 }
}

/// Removes every file this module writes (and nothing else).
pub fn discard(dir: &Path) -> std::io::Result<()> {
    for (_, path) in segments(dir)? {
        std::fs::remove_file(path)?;
    }
    for name in [snapshot::FILE_NAME, snapshot::TEMP_NAME] {
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    super::sync_dir(dir)
}

fn segments(dir: &Path) -> std::io::Result<BTreeMap<u64, PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(n) = log::parse_segment_name(&entry.file_name().to_string_lossy()) {
            out.insert(n, entry.path());
        }
    }
    Ok(out)
}

fn load(dir: &Path, standalone: bool) -> Result<Option<Loaded>, StorageError> {
    let base = snapshot::read(dir)?;
    let mut segs = segments(dir)?;
    if base.is_none() && segs.is_empty() {
        return Ok(None);
    }
    let first = base.as_ref().map(|b| b.next_segment).unwrap_or(0);
    // Segments a finished rewrite had not deleted yet.
    for (_, path) in segs.iter().filter(|(n, _)| **n < first) {
        std::fs::remove_file(path)?;
    }
    segs.retain(|n, _| *n >= first);
    let numbers: Vec<u64> = segs.keys().copied().collect();
    if let (Some(b), Some(&lowest)) = (&base, numbers.first()) {
        if lowest != b.next_segment {
            return Err(StorageError::Corrupt(format!(
                "log segment {} is missing (the snapshot continues there)",
                b.next_segment
            )));
        }
    }
    if numbers.windows(2).any(|w| w[1] != w[0] + 1) {
        return Err(StorageError::Corrupt("a log segment between two others is missing".into()));
    }
    let mut id = base.as_ref().map(|b| b.replica);
    let mut base_size = 0;
    let mut replay = Replay::new(standalone);
    if let Some(b) = base {
        base_size = std::fs::metadata(snapshot::path(dir))?.len();
        replay.replica = Replica::new(b.replica, Clock::new(0));
        replay.replica.install(b.snapshot);
    }
    let mut log_size = 0;
    let last = numbers.last().copied();
    let mut last_kept = first.saturating_sub(1);
    for (number, path) in &segs {
        let is_last = Some(*number) == last;
        let bytes = std::fs::read(path)?;
        if bytes.len() < log::HEADER_LEN && is_last {
            // Created but its header never reached the disk: nothing was logged in it.
            warn!(file = %path.display(), "dropping an empty log segment with a torn header");
            std::fs::remove_file(path)?;
            continue;
        }
        last_kept = *number;
        let (owner, n) = log::decode_header(&bytes)?;
        if n != *number {
            return Err(StorageError::Corrupt(format!("{} says it is segment {n}", path.display())));
        }
        if *id.get_or_insert(owner) != owner {
            return Err(StorageError::Corrupt(format!("{} belongs to another replica", path.display())));
        }
        if replay.replica.id != owner {
            replay.replica = Replica::new(owner, Clock::new(0));
        }
        let body = &bytes[log::HEADER_LEN..];
        let scanned = log::scan(body);
        for entry in scanned.entries {
            replay.apply(entry);
        }
        match scanned.end {
            End::Clean => {}
            End::Torn { .. } | End::BadTail { .. } if is_last => {
                let keep = (log::HEADER_LEN + scanned.good_len) as u64;
                warn!(
                    file = %path.display(),
                    kept_bytes = keep,
                    dropped_bytes = bytes.len() as u64 - keep,
                    "the last record of the log is torn or damaged (a write cut short by a crash): dropped it"
                );
                let f = std::fs::OpenOptions::new().write(true).open(path)?;
                f.set_len(keep)?;
                f.sync_all()?;
            }
            other => {
                return Err(StorageError::Corrupt(format!(
                    "{} is damaged at byte {} ({other:?})",
                    path.display(),
                    log::HEADER_LEN + other.good_len(body.len())
                )))
            }
        }
        log_size += (log::HEADER_LEN + scanned.good_len) as u64;
    }
    if id.is_none() {
        return Ok(None); // only a segment whose header never reached the disk: nothing was logged
    }
    replay.finish()?;
    Ok(Some(Loaded { replica: replay.replica, last_segment: last_kept, base_size, log_size }))
}

/// Replays log entries into a replica, in order.
struct Replay {
    replica: Replica,
    standalone: bool,
    /// Updates that arrived before something they depend on (never expected: the log is in
    /// application order), retried after every applied one.
    pending: Vec<crate::crdt::replica::Update>,
}

impl Replay {
    fn new(standalone: bool) -> Replay {
        Replay { replica: Replica::new(0, Clock::new(0)), standalone, pending: Vec::new() }
    }

    fn apply(&mut self, entry: LogEntry) {
        match entry {
            LogEntry::Update(u) => {
                if self.standalone {
                    // Alone, every earlier write is stable, as it was when this one was made.
                    let vv = self.replica.version_vector().clone();
                    self.replica.set_stable(vv);
                }
                match self.replica.deliver(&u) {
                    Delivery::Applied => self.retry_pending(),
                    Delivery::NotReady => self.pending.push(u),
                    Delivery::Duplicate => {}
                }
            }
            LogEntry::Installed(s) => {
                self.replica.install(s);
                self.retry_pending();
            }
            LogEntry::Stable(vv) => {
                if !self.standalone {
                    self.replica.set_stable(vv);
                }
            }
        }
    }

    fn retry_pending(&mut self) {
        while !self.pending.is_empty() {
            let before = self.pending.len();
            let pending = std::mem::take(&mut self.pending);
            for u in pending {
                if self.replica.deliver(&u) == Delivery::NotReady {
                    self.pending.push(u);
                }
            }
            if self.pending.len() == before {
                return;
            }
        }
    }

    /// An update that never became ready means a hole in the history: the same damage as a
    /// missing segment.
    fn finish(&mut self) -> Result<(), StorageError> {
        if !self.pending.is_empty() {
            return Err(StorageError::Corrupt(format!(
                "{} logged updates depend on writes the log does not hold",
                self.pending.len()
            )));
        }
        if self.standalone {
            let vv = self.replica.version_vector().clone();
            self.replica.set_stable(vv);
            self.replica.compact();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Blob, Effect, Op};

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("syncmesh-recover-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn opts() -> Options {
        Options { policy: AppendFsync::No, rewrite_min: 1 << 20, standalone: true }
    }

    fn incr(r: &mut Recovered, key: &[u8], now: u64) {
        let op = Op {
            db: 0,
            key: Blob::from_slice(key),
            effect: Effect::Incr { int: 1, float: 1.0, is_float: false, ext: None },
        };
        r.replica.write(op, now);
        let u = r.replica.take_update().expect("recording");
        r.storage.append_update(&u);
        r.storage.flush();
    }

    fn reopen(dir: &Path) -> Recovered {
        let mut r = open(dir, &opts()).unwrap();
        r.replica.set_persistent(true);
        r
    }

    #[test]
    fn replays_updates_and_keeps_the_identity() {
        let dir = temp_dir("replay");
        let mut r = reopen(&dir);
        assert!(!r.resumed);
        for i in 0..10 {
            incr(&mut r, b"counter", 1_000 + i);
        }
        let (id, digest, vv) = (r.replica.id, r.replica.digest(5_000), r.replica.version_vector().clone());
        drop(r);
        let back = reopen(&dir);
        assert!(back.resumed);
        assert_eq!(back.replica.id, id);
        assert_eq!(back.replica.digest(5_000), digest);
        assert_eq!(back.replica.version_vector(), &vv);
        assert!(back.replica.clock.last() >= vv.get(id));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_rewrite_then_more_writes_recover_the_same_state() {
        let dir = temp_dir("rewrite");
        let mut r = reopen(&dir);
        for i in 0..5 {
            incr(&mut r, b"a", 1_000 + i);
        }
        let job = r.storage.begin_rewrite(&r.replica).unwrap().unwrap();
        job.run().unwrap();
        for i in 0..5 {
            incr(&mut r, b"b", 2_000 + i);
        }
        let digest = r.replica.digest(5_000);
        drop(r);
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        assert!(names.contains(&"snapshot.bin".to_string()), "{names:?}");
        assert!(!names.contains(&"log-0000000001.aof".to_string()), "covered segment deleted: {names:?}");
        assert_eq!(reopen(&dir).replica.digest(5_000), digest);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_tail_is_cut_and_earlier_records_kept() {
        let dir = temp_dir("torn");
        let mut r = reopen(&dir);
        incr(&mut r, b"a", 1_000);
        let after_one = r.replica.digest(5_000);
        incr(&mut r, b"a", 1_001);
        let seg = log::segment_path(&dir, 1);
        drop(r);
        let len = std::fs::metadata(&seg).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 3).unwrap();
        let back = reopen(&dir);
        assert_eq!(back.replica.digest(5_000), after_one);
        assert!(std::fs::metadata(&seg).unwrap().len() < len - 3, "file cut at the last good record");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_damaged_snapshot_empties_the_directory_and_starts_a_new_member() {
        let dir = temp_dir("badsnap");
        let mut r = reopen(&dir);
        incr(&mut r, b"a", 1_000);
        r.storage.begin_rewrite(&r.replica).unwrap().unwrap().run().unwrap();
        let id = r.replica.id;
        drop(r);
        let path = snapshot::path(&dir);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let back = reopen(&dir);
        assert!(!back.resumed);
        assert_ne!(back.replica.id, id);
        assert!(back.replica.version_vector().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
