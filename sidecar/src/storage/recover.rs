//! Opening the data directory at start.
//!
//! 1. Load `snapshot.bin` if there is one; it names the first segment it does not hold.
//! 2. Replay the segments from there, in order, into a replica with the directory's id:
//!    updates with `Replica::deliver`, installed peer snapshots with `Replica::install`.
//! 3. A torn or damaged **last record of the last segment** is what a crash in the middle of a
//!    write leaves: it is dropped with a warning and the file cut back to the last good record.
//! 4. Damage anywhere else in the log (a missing segment, a damaged header, a damaged record
//!    followed by good ones) ends the readable history there: what comes before it is
//!    recovered, the rest is deleted, with an error in the log. If peers hold writes of this
//!    replica from the dropped part, the handshake notices (`Server::check_own_history`).
//! 5. A snapshot that does not read back, or files of another replica, leave no history to
//!    build on: the directory is emptied and the replica starts as a new member that
//!    bootstraps from its peers, with an error in the log.
//! 6. Write to a new segment from now on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::{error, info, warn};

use super::log::{self, LogEntry};
use super::record::End;
use super::{snapshot, Continue, Storage, StorageError};
use crate::config::AppendFsync;
use crate::crdt::replica::{Delivery, Update};
use crate::crdt::{Clock, Replica, ReplicaId, VersionVector};

/// A replica rebuilt from the data directory, and the storage that continues its log.
pub struct Recovered {
    pub replica: Replica,
    pub storage: Storage,
    /// The directory held a previous life of this replica (false: new member).
    pub resumed: bool,
    /// In a mesh: the updates replayed from the log, in order, to seed the replication log, so
    /// that a peer that lacks some of them gets them streamed rather than a whole snapshot.
    pub updates: Vec<Update>,
    /// What the state holds that no replayed update carries (the snapshot file and installed
    /// peer snapshots): a peer that lacks any of it needs a snapshot.
    pub snapshotted: VersionVector,
}

/// How a replica replays: alone (every write stable at once) or in a mesh (stability as logged).
pub struct Options {
    /// `--database`: a directory written for one database is never opened for another.
    pub database: String,
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
    updates: Vec<Update>,
    snapshotted: VersionVector,
}

/// The file that names the database a directory belongs to.
const DATABASE_FILE: &str = "database";

pub fn open(dir: &Path, opts: &Options) -> Result<Recovered, StorageError> {
    std::fs::create_dir_all(dir)?;
    let lock = super::DirLock::acquire(dir)?;
    check_database(dir, &opts.database)?;
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
    let at = Continue {
        replica: id,
        segment: loaded.last_segment + 1,
        base_size: loaded.base_size,
        log_size: loaded.log_size,
    };
    let storage = Storage::create(dir, lock, at, opts.policy, opts.rewrite_min)?;
    if resumed {
        let keys: usize = (0..crate::crdt::replica::DATABASES).map(|d| loaded.replica.db(d).len()).sum();
        info!(
            replica = format!("{id:016x}"),
            keys,
            ms = started.elapsed().as_millis() as u64,
            "recovered from the data directory"
        );
    }
    Ok(Recovered {
        replica: loaded.replica,
        storage,
        resumed,
        updates: loaded.updates,
        snapshotted: loaded.snapshotted,
    })
}

/// Refuses a directory written for another database: its data would leak into this database's
/// mesh. A configuration mistake, not damage, so it stops the replica instead of discarding.
fn check_database(dir: &Path, database: &str) -> Result<(), StorageError> {
    let path = dir.join(DATABASE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(found) if found.trim_end() == database => Ok(()),
        Ok(found) => Err(StorageError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it belongs to database '{}', not '{database}'", found.trim_end()),
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&path, format!("{database}\n"))?;
            std::fs::File::open(&path)?.sync_all()?;
            super::sync_dir(dir).map_err(StorageError::Io)
        }
        Err(e) => Err(StorageError::Io(e)),
    }
}

fn fresh() -> Loaded {
    let id: ReplicaId = rand::random::<u64>() | 1;
    Loaded {
        replica: Replica::new(id, Clock::new(0)),
        last_segment: 0,
        base_size: 0,
        log_size: 0,
        updates: Vec::new(),
        snapshotted: VersionVector::new(),
    }
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
    let segs = segments(dir)?;
    if base.is_none() && segs.is_empty() {
        return Ok(None);
    }
    let first = base.as_ref().map(|b| b.next_segment).unwrap_or(1);
    // Segments a finished rewrite had not deleted yet.
    for (_, path) in segs.range(..first) {
        std::fs::remove_file(path)?;
    }
    let mut id = base.as_ref().map(|b| b.replica);
    let mut base_size = 0;
    let mut replay = Replay::new(standalone);
    if let Some(b) = base {
        base_size = std::fs::metadata(snapshot::path(dir))?.len();
        replay.replica = Replica::new(b.replica, Clock::new(0));
        replay.snapshotted.merge(&b.snapshot.vv);
        replay.replica.install(b.snapshot);
    }
    let mut log_size = 0;
    let mut last_kept = first.saturating_sub(1);
    let mut expected = first;
    // Once the history has a hole, nothing after it can be replayed: it is dropped.
    let mut damage: Option<String> = None;
    let later: Vec<(u64, PathBuf)> = segs.range(first..).map(|(n, p)| (*n, p.clone())).collect();
    for (i, (number, path)) in later.iter().enumerate() {
        let is_last = i + 1 == later.len();
        if damage.is_some() {
            std::fs::remove_file(path)?;
            continue;
        }
        if *number != expected {
            damage = Some(format!("log segment {expected} is missing"));
            std::fs::remove_file(path)?;
            continue;
        }
        expected += 1;
        let bytes = std::fs::read(path)?;
        if bytes.len() < log::HEADER_LEN && is_last {
            // Created but its header never reached the disk: nothing was logged in it.
            warn!(file = %path.display(), "dropping an empty log segment with a torn header");
            std::fs::remove_file(path)?;
            continue;
        }
        let owner = match log::decode_header(&bytes) {
            Ok((owner, n)) if n == *number => owner,
            Ok(_) | Err(_) => {
                damage = Some(format!("{} has a damaged header", path.display()));
                std::fs::remove_file(path)?;
                continue;
            }
        };
        if *id.get_or_insert(owner) != owner {
            return Err(StorageError::Corrupt(format!("{} belongs to another replica", path.display())));
        }
        if replay.replica.id != owner {
            replay.replica = Replica::new(owner, Clock::new(0));
        }
        last_kept = *number;
        let body = &bytes[log::HEADER_LEN..];
        let scanned = log::scan(body);
        for entry in scanned.entries {
            replay.apply(entry);
        }
        let keep = (log::HEADER_LEN + scanned.good_len) as u64;
        log_size += keep;
        match scanned.end {
            End::Clean => continue,
            End::Torn { .. } | End::BadTail { .. } if is_last => warn!(
                file = %path.display(),
                kept_bytes = keep,
                dropped_bytes = bytes.len() as u64 - keep,
                "the last record of the log is torn or damaged (a write cut short by a crash): dropped it"
            ),
            other => damage = Some(format!("{} is damaged at byte {keep} ({other:?})", path.display())),
        }
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(keep)?;
        f.sync_all()?;
    }
    if id.is_none() {
        return Ok(None); // only a segment whose header never reached the disk: nothing was logged
    }
    if let Some(why) = damage {
        error!(
            dir = %dir.display(),
            reason = %why,
            "the log is damaged before its end: recovered the history up to the damage and dropped the rest"
        );
    }
    replay.finish();
    super::sync_dir(dir)?;
    Ok(Some(Loaded {
        replica: replay.replica,
        last_segment: last_kept,
        base_size,
        log_size,
        updates: replay.applied,
        snapshotted: replay.snapshotted,
    }))
}

/// Replays log entries into a replica, in order.
struct Replay {
    replica: Replica,
    standalone: bool,
    /// Updates that arrived before something they depend on (never expected: the log is in
    /// application order), retried after every applied one.
    pending: Vec<Update>,
    /// The updates applied, in order (kept in a mesh only).
    applied: Vec<Update>,
    snapshotted: VersionVector,
}

impl Replay {
    fn new(standalone: bool) -> Replay {
        Replay {
            replica: Replica::new(0, Clock::new(0)),
            standalone,
            pending: Vec::new(),
            applied: Vec::new(),
            snapshotted: VersionVector::new(),
        }
    }

    fn applied(&mut self, u: Update) {
        if !self.standalone {
            self.applied.push(u);
        }
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
                    Delivery::Applied => {
                        self.applied(u);
                        self.retry_pending();
                    }
                    Delivery::NotReady => self.pending.push(u),
                    Delivery::Duplicate => {}
                }
            }
            LogEntry::Installed(s) => {
                self.snapshotted.merge(&s.vv);
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
            for u in std::mem::take(&mut self.pending) {
                if self.replica.deliver(&u) == Delivery::NotReady {
                    self.pending.push(u);
                } else {
                    self.applied(u);
                }
            }
            if self.pending.len() == before {
                return;
            }
        }
    }

    /// An update that never became ready depends on something the log does not hold; it cannot
    /// be applied and is dropped (never expected: the log is in application order).
    fn finish(&mut self) {
        if !self.pending.is_empty() {
            error!(
                updates = self.pending.len(),
                "logged updates depend on writes the log does not hold: dropped them"
            );
            for u in std::mem::take(&mut self.pending) {
                // Their timestamps were issued (or seen): never issue them again.
                for (ts, _) in &u.ops {
                    self.replica.clock.observe(*ts);
                }
            }
        }
        if self.standalone {
            let vv = self.replica.version_vector().clone();
            self.replica.set_stable(vv);
            self.replica.compact();
        }
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
        Options {
            database: "default".into(),
            policy: AppendFsync::No,
            rewrite_min: 1 << 20,
            standalone: true,
        }
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
    fn damage_before_the_end_keeps_the_history_up_to_it() {
        let dir = temp_dir("middle");
        let mut r = reopen(&dir);
        incr(&mut r, b"a", 1_000);
        let after_one = r.replica.digest(5_000);
        incr(&mut r, b"a", 1_001);
        incr(&mut r, b"a", 1_002);
        let first = log::segment_path(&dir, 1);
        drop(r);
        // A second life writes a second segment.
        let mut r = reopen(&dir);
        incr(&mut r, b"b", 2_000);
        drop(r);
        let second = log::segment_path(&dir, 2);
        assert!(second.exists());
        // Damage the second record of the first segment: the third is still good.
        let mut bytes = std::fs::read(&first).unwrap();
        let ends = {
            let mut ends = vec![log::HEADER_LEN];
            let mut at = log::HEADER_LEN;
            while at + 8 <= bytes.len() {
                at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
                ends.push(at);
            }
            ends
        };
        bytes[ends[1] + 9] ^= 0xff;
        std::fs::write(&first, bytes).unwrap();
        let back = reopen(&dir);
        assert!(back.resumed);
        assert_eq!(back.replica.digest(5_000), after_one, "history up to the damage");
        // Segment 2 of the second life was deleted; the one there now is this start's, empty.
        assert_eq!(std::fs::metadata(&second).unwrap().len(), log::HEADER_LEN as u64);
        assert_eq!(std::fs::metadata(&first).unwrap().len(), ends[1] as u64);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_directory_in_use_is_refused() {
        let dir = temp_dir("lock");
        let r = reopen(&dir);
        let err = open(&dir, &opts()).err().expect("refused while in use");
        assert!(err.to_string().contains("in use by another process"), "{err}");
        drop(r);
        assert!(open(&dir, &opts()).is_ok(), "free again once the first one is gone");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_directory_of_another_database_is_refused() {
        let dir = temp_dir("database");
        let mut r = reopen(&dir);
        incr(&mut r, b"a", 1_000);
        drop(r);
        let other = Options { database: "other".into(), ..opts() };
        let err = open(&dir, &other).err().expect("refused");
        assert!(err.to_string().contains("belongs to database 'default'"), "{err}");
        assert!(reopen(&dir).resumed, "the data is untouched");
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
