//! Opening the data directory at start.
//!
//! 1. Read the directory ([`survey`]): load `snapshot.bin` if there is one (it names the first
//!    segment it does not hold), replay the segments from there in order into a replica with
//!    the directory's id: updates with `Replica::deliver`, installed peer snapshots with
//!    `Replica::install`.
//! 2. A **torn last record** (cut short by the end of the last segment that holds records, with
//!    nothing readable after it) is what a crash in the middle of a write leaves, as Redis's
//!    `aof-load-truncated yes` accepts: the bytes are copied into `DIR/damaged-<time>/`, the
//!    file is cut back to the last good record and a warning is logged.
//! 3. **Damage** (a snapshot that does not read back, a missing segment, a damaged header, a
//!    record that is complete but fails its checksum or does not decode, a record cut short that
//!    readable records follow, files of another replica) stops the replica with an error that
//!    names the file, the offset and the keys recoverable up to there; no file is changed.
//!    `syncmesh-replica check-data DIR [--fix]` reports and repairs. With
//!    `--recover-from-peers` (and peers), the files of the history are moved into
//!    `DIR/damaged-<time>/` instead and the replica starts as a new member that bootstraps from
//!    its peers.
//! 4. Write to a new segment from now on.
//!
//! Nothing here deletes a byte because of damage; the only files removed are a `snapshot.tmp`
//! that a compaction did not finish (the log still holds all of it) and segments a valid
//! snapshot holds (a compaction that stopped before deleting them).

use std::path::Path;
use std::time::Instant;

use tracing::{error, info, warn};

use super::repair::{self, DAMAGED};
use super::survey::{self, Damage};
use super::{snapshot, Continue, Storage, StorageError};
use crate::config::AppendFsync;
use crate::crdt::replica::Update;
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
    /// The directory was damaged and its files were set aside here (`--recover-from-peers`):
    /// the replica is a new member that must rebuild from its peers.
    pub set_aside: Option<std::path::PathBuf>,
}

/// What a start does about a damaged directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDamage {
    /// Refuse to start ([`StorageError::Damaged`]); nothing is changed.
    Stop,
    /// Set the files aside in `DIR/damaged-<time>/` and start as a new member
    /// (`--recover-from-peers` with peers to rebuild from).
    SetAsideAndRebuild,
}

/// How a replica replays: alone (every write stable at once) or in a mesh (stability as logged).
pub struct Options {
    /// `--database`: a directory written for one database is never opened for another.
    pub database: String,
    pub policy: AppendFsync,
    pub rewrite_min: u64,
    pub standalone: bool,
    pub on_damage: OnDamage,
}

/// The file that names the database a directory belongs to.
const DATABASE_FILE: &str = "database";

pub fn open(dir: &Path, opts: &Options) -> Result<Recovered, StorageError> {
    std::fs::create_dir_all(dir)?;
    let lock = super::DirLock::acquire(dir)?;
    check_database(dir, &opts.database)?;
    // A compaction that did not finish: the log still holds everything it had.
    let _ = std::fs::remove_file(dir.join(snapshot::TEMP_NAME));
    let started = Instant::now();
    let mut survey = survey::survey(dir, opts.standalone)?;
    let mut set_aside = None;
    if let Some(damage) = survey.damage.take() {
        match opts.on_damage {
            OnDamage::Stop => return Err(StorageError::Damaged(Box::new(damage))),
            OnDamage::SetAsideAndRebuild => {
                let why = format!("{damage}; started with --recover-from-peers: rebuilt from the peers");
                let aside = repair::set_aside(dir, DAMAGED, &why)?;
                error!(
                    dir = %dir.display(),
                    file = %damage.file,
                    offset = damage.offset,
                    reason = %damage.why,
                    keys_recoverable = damage.keys_recoverable,
                    set_aside = %aside.as_deref().unwrap_or(dir).display(),
                    "the data directory is damaged: its files were moved aside (kept), starting as a new member that rebuilds from its peers (--recover-from-peers)"
                );
                set_aside = aside;
                survey = survey::survey(dir, opts.standalone)?;
                if let Some(d) = survey.damage.take() {
                    return Err(StorageError::Damaged(Box::new(d)));
                }
            }
        }
    }
    if let Some(torn) = survey.torn.take() {
        let kept = repair::keep_torn_tail(dir, &torn)?;
        warn!(
            file = %super::log::segment_path(dir, torn.number).display(),
            kept_bytes = torn.at,
            cut_bytes = torn.len,
            copied_to = %kept.display(),
            "the last record of the log is torn (a write cut short by a crash): the replica starts with the records before it; the torn bytes are kept"
        );
    }
    for path in &survey.covered {
        // Segments the snapshot holds: a compaction stopped before deleting them.
        std::fs::remove_file(path)?;
    }
    for f in &survey.files {
        // Kept segments are made durable before anything builds on them (after a crash under
        // everysec/no, the previous life's last records may not have been synced yet).
        if let Some(n) = super::log::parse_segment_name(&f.name) {
            if let Ok(file) = std::fs::File::open(super::log::segment_path(dir, n)) {
                file.sync_all()?;
            }
        }
    }
    super::sync_dir(dir)?;
    let resumed = survey.replica_id.is_some();
    let survey::Survey { replay, base_size, log_size, last_segment, .. } = survey;
    let (replica, updates, snapshotted) = if resumed {
        (replay.replica, replay.applied, replay.snapshotted)
    } else {
        let id: ReplicaId = rand::random::<u64>() | 1;
        (Replica::new(id, Clock::new(0)), Vec::new(), VersionVector::new())
    };
    let at = Continue { replica: replica.id, segment: last_segment + 1, base_size, log_size };
    let storage = Storage::create(dir, lock, at, opts.policy, opts.rewrite_min)?;
    if resumed {
        let keys: usize = (0..crate::crdt::replica::DATABASES).map(|d| replica.db(d).len()).sum();
        info!(
            replica = format!("{:016x}", replica.id),
            keys,
            ms = started.elapsed().as_millis() as u64,
            "recovered from the data directory"
        );
    }
    Ok(Recovered { replica, storage, resumed, updates, snapshotted, set_aside })
}

/// Refuses a directory written for another database: its data would leak into this database's
/// mesh. A configuration mistake, not damage: the replica stops and nothing is changed.
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

/// The database a directory was created for, if it says.
pub fn database_of(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(DATABASE_FILE)).ok().map(|s| s.trim_end().to_string())
}

/// A damage report as the error a start stops with: what is wrong, and what to do.
pub fn damage_advice(damage: &Damage) -> String {
    format!(
        "{damage}. Nothing in the directory was changed. `syncmesh-replica check-data {dir}` \
         shows what is readable; `syncmesh-replica check-data {dir} --fix` sets the damaged part \
         aside (kept in {dir}/damaged-<time>/) so that the replica starts with the {keys} \
         recoverable keys; or start with --recover-from-peers to set the files aside and rebuild \
         from the mesh",
        dir = damage.dir.display(),
        keys = damage.keys_recoverable,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Blob, Effect, Op};
    use crate::storage::log;
    use std::path::PathBuf;

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
            on_damage: OnDamage::Stop,
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

    /// Every file under `dir` (recursively) with its bytes, for before/after comparisons; the
    /// lock file's (empty) content is included too.
    fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    /// The directories of `dir` whose names start with `prefix`.
    fn asides(dir: &Path, prefix: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect();
        out.sort();
        out
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
    fn a_torn_tail_is_kept_aside_then_cut_and_earlier_records_kept() {
        let dir = temp_dir("torn");
        let mut r = reopen(&dir);
        incr(&mut r, b"a", 1_000);
        let after_one = r.replica.digest(5_000);
        incr(&mut r, b"a", 1_001);
        let seg = log::segment_path(&dir, 1);
        drop(r);
        let whole = std::fs::read(&seg).unwrap();
        let torn = &whole[..whole.len() - 3];
        std::fs::write(&seg, torn).unwrap();
        let back = reopen(&dir);
        assert_eq!(back.replica.digest(5_000), after_one);
        let cut = std::fs::metadata(&seg).unwrap().len() as usize;
        assert!(cut < torn.len(), "file cut at the last good record");
        let kept = asides(&dir, "damaged-");
        assert_eq!(kept.len(), 1, "{kept:?}");
        let copy = std::fs::read(kept[0].join(format!("log-0000000001.aof.from-{cut}"))).unwrap();
        assert_eq!([&torn[..cut], &copy[..]].concat(), torn, "the cut bytes are kept, every one");
        assert!(std::fs::read_to_string(kept[0].join("README")).unwrap().contains("cut short"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Three lives, one segment each: the first with three records.
    fn three_segments(dir: &Path) -> (u128, usize) {
        let mut r = reopen(dir);
        incr(&mut r, b"a", 1_000);
        let after_one = r.replica.digest(5_000);
        incr(&mut r, b"a", 1_001);
        incr(&mut r, b"a", 1_002);
        drop(r);
        let mut r = reopen(dir);
        incr(&mut r, b"b", 2_000);
        drop(r);
        let first = std::fs::read(log::segment_path(dir, 1)).unwrap();
        let mut ends = vec![log::HEADER_LEN];
        let mut at = log::HEADER_LEN;
        while at + 8 <= first.len() {
            at += 8 + u32::from_le_bytes(first[at..at + 4].try_into().unwrap()) as usize;
            ends.push(at);
        }
        (after_one, ends[1])
    }

    fn flip(path: &Path, at: usize) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at] ^= 0x04;
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn damage_before_the_end_stops_the_start_and_changes_nothing() {
        let dir = temp_dir("middle");
        let (_, second_record) = three_segments(&dir);
        flip(&log::segment_path(&dir, 1), second_record + 9);
        let before = contents(&dir);
        let err = open(&dir, &opts()).err().expect("refused");
        let StorageError::Damaged(d) = &err else { panic!("{err}") };
        assert_eq!((d.file.as_str(), d.offset), ("log-0000000001.aof", second_record as u64));
        assert_eq!(d.keys_recoverable, 1);
        assert!(d.records_after >= 2, "the third record and the second life's: {d:?}");
        let text = err.to_string();
        for part in
            ["log-0000000001.aof at byte", "1 keys are recoverable", "check-data", "--recover-from-peers"]
        {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert_eq!(contents(&dir), before, "not a byte changed");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_complete_last_record_that_fails_its_checksum_is_damage_not_a_torn_tail() {
        let dir = temp_dir("badtail");
        let mut r = reopen(&dir);
        incr(&mut r, b"a", 1_000);
        incr(&mut r, b"a", 1_001);
        drop(r);
        let seg = log::segment_path(&dir, 1);
        let len = std::fs::metadata(&seg).unwrap().len() as usize;
        flip(&seg, len - 2);
        let before = contents(&dir);
        let err = open(&dir, &opts()).err().expect("refused");
        assert!(matches!(err, StorageError::Damaged(_)), "{err}");
        assert!(err.to_string().contains("checksum"), "{err}");
        assert_eq!(contents(&dir), before);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_segment_that_later_segments_follow_is_damage() {
        let dir = temp_dir("hole");
        three_segments(&dir);
        let seg = log::segment_path(&dir, 1);
        let len = std::fs::metadata(&seg).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 3).unwrap();
        let before = contents(&dir);
        let err = open(&dir, &opts()).err().expect("refused");
        assert!(err.to_string().contains("hole in the history"), "{err}");
        assert_eq!(contents(&dir), before);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_segment_cut_at_a_record_boundary_before_a_later_one_is_damage() {
        let dir = temp_dir("boundary");
        let (_, second_record) = three_segments(&dir);
        let seg = log::segment_path(&dir, 1);
        std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(second_record as u64).unwrap();
        let before = contents(&dir);
        let err = open(&dir, &opts()).err().expect("refused");
        let StorageError::Damaged(d) = &err else { panic!("{err}") };
        assert_eq!((d.file.as_str(), d.offset), ("log-0000000002.aof", log::HEADER_LEN as u64), "{err}");
        assert!(err.to_string().contains("depends on writes the log does not hold"), "{err}");
        assert_eq!(contents(&dir), before);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_damaged_snapshot_stops_the_start_and_changes_nothing() {
        let dir = temp_dir("badsnap");
        let mut r = reopen(&dir);
        incr(&mut r, b"a", 1_000);
        r.storage.begin_rewrite(&r.replica).unwrap().unwrap().run().unwrap();
        incr(&mut r, b"a", 1_001);
        drop(r);
        flip(&snapshot::path(&dir), 50);
        let before = contents(&dir);
        let err = open(&dir, &opts()).err().expect("refused");
        let StorageError::Damaged(d) = &err else { panic!("{err}") };
        assert_eq!((d.file.as_str(), d.keys_recoverable), ("snapshot.bin", 0));
        assert_eq!(contents(&dir), before);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn with_rebuild_a_damaged_directory_is_set_aside_and_a_new_member_starts() {
        let dir = temp_dir("rebuild");
        let (_, second_record) = three_segments(&dir);
        let id = reopen(&dir).replica.id;
        flip(&log::segment_path(&dir, 1), second_record + 9);
        let before = contents(&dir);
        let rebuild = Options { on_damage: OnDamage::SetAsideAndRebuild, standalone: false, ..opts() };
        let r = open(&dir, &rebuild).unwrap();
        assert!(!r.resumed);
        assert_ne!(r.replica.id, id);
        let aside = r.set_aside.clone().expect("set aside");
        assert!(aside.file_name().unwrap().to_string_lossy().starts_with("damaged-"));
        drop(r);
        // Every file of the history is in the aside directory, byte for byte.
        for (path, bytes) in &before {
            let name = path.to_string_lossy();
            if name.starts_with("log-") || name == "snapshot.bin" {
                assert_eq!(&std::fs::read(aside.join(path)).unwrap(), bytes, "{name}");
            }
        }
        assert!(reopen(&dir).resumed, "the new member's own directory opens");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Rewrites the format of a segment's or the snapshot's header (checksum kept valid), as a
    /// newer release would have written it.
    fn set_format(path: &Path, format: u32, header_len: usize) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[8..12].copy_from_slice(&format.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..header_len - 4]);
        bytes[header_len - 4..header_len].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_newer_format_stops_the_start_and_is_never_set_aside_as_damage() {
        let newer = crate::storage::FORMAT + 1;
        for file in ["log-0000000002.aof", "snapshot.bin"] {
            let dir = temp_dir("newer");
            let mut r = reopen(&dir);
            incr(&mut r, b"a", 1_000);
            r.storage.begin_rewrite(&r.replica).unwrap().unwrap().run().unwrap();
            incr(&mut r, b"a", 1_001);
            drop(r);
            let header_len = if file == "snapshot.bin" { 44 } else { log::HEADER_LEN };
            set_format(&dir.join(file), newer, header_len);
            let before = contents(&dir);
            let rebuild = Options { on_damage: OnDamage::SetAsideAndRebuild, standalone: false, ..opts() };
            for options in [opts(), rebuild] {
                let err = open(&dir, &options).err().expect("refused");
                let StorageError::Format(e) = &err else { panic!("{file}: {err}") };
                assert_eq!((e.file.as_str(), e.found), (file, newer));
                assert!(err.to_string().contains("A newer release"), "{err}");
                assert_eq!(contents(&dir), before, "{file}: not a byte changed, nothing set aside");
            }
            let survey = crate::storage::survey::survey(&dir, true);
            assert!(matches!(survey, Err(StorageError::Format(_))), "check-data --fix has nothing to cut");
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn fix_cuts_at_the_damage_keeps_every_byte_and_the_next_start_recovers_up_to_it() {
        let dir = temp_dir("fix");
        let (after_one, second_record) = three_segments(&dir);
        let id = reopen(&dir).replica.id;
        let seg1 = log::segment_path(&dir, 1);
        flip(&seg1, second_record + 9);
        let before = contents(&dir);
        let s = survey::survey(&dir, true).unwrap();
        let fixed = repair::fix(&s).unwrap().expect("something to fix");
        let back = reopen(&dir);
        assert_eq!((back.replica.id, back.replica.digest(5_000)), (id, after_one));
        drop(back);
        // Every byte of before is in the directory or in the aside copy.
        let cut = std::fs::read(&seg1).unwrap();
        assert_eq!(cut.len(), second_record);
        let tail =
            std::fs::read(fixed.aside.join(format!("log-0000000001.aof.from-{second_record}"))).unwrap();
        let original = &before.iter().find(|(p, _)| p == Path::new("log-0000000001.aof")).unwrap().1;
        assert_eq!(&[cut, tail].concat(), original);
        for n in [2u64, 3] {
            let name = format!("log-{n:010}.aof");
            let was = &before.iter().find(|(p, _)| p == Path::new(&name)).unwrap().1;
            assert_eq!(&std::fs::read(fixed.aside.join(&name)).unwrap(), was, "{name} moved whole");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn set_aside_moves_the_history_and_the_next_start_is_a_new_member() {
        let dir = temp_dir("aside");
        let (_, _) = three_segments(&dir);
        let id = reopen(&dir).replica.id;
        let aside = repair::set_aside(&dir, repair::SET_ASIDE, "test").unwrap().expect("moved");
        assert!(aside.join("log-0000000001.aof").exists());
        assert!(dir.join("database").exists(), "the database file stays");
        let back = reopen(&dir);
        assert!(!back.resumed);
        assert_ne!(back.replica.id, id);
        drop(back);
        // Set aside twice in the same second: two directories, nothing overwritten.
        let again = repair::set_aside(&dir, repair::SET_ASIDE, "test").unwrap().expect("moved");
        assert_ne!(again, aside);
        assert_eq!(asides(&dir, "set-aside-").len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_directory_in_use_is_refused() {
        let dir = temp_dir("lock");
        let r = reopen(&dir);
        let err = open(&dir, &opts()).err().expect("refused while in use");
        assert!(err.to_string().contains("in use by another process"), "{err}");
        assert!(crate::storage::DirLock::in_use(&dir));
        drop(r);
        assert!(!crate::storage::DirLock::in_use(&dir));
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

    /// Packs a directory's history as an input of the `data_dir` fuzz target (see
    /// `sidecar/fuzz/fuzz_targets/data_dir.rs`): `kind:u8 len:u16 bytes` per file.
    fn pack(dir: &Path, how: u8, mutate: impl Fn(&str, &mut Vec<u8>)) -> Vec<u8> {
        let mut out = vec![how];
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let kind = match (name.as_str(), log::parse_segment_name(&name)) {
                ("snapshot.bin", _) => 0u8,
                (_, Some(n)) if n < 255 => n as u8 + 1,
                _ => continue,
            };
            let mut bytes = std::fs::read(dir.join(&name)).unwrap();
            mutate(&name, &mut bytes);
            bytes.truncate(u16::MAX as usize);
            out.push(kind);
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Writes the seed corpus of the `data_dir` fuzz target: real directories (log only, with a
    /// snapshot, several lives), whole and damaged (flipped bits, zeroed stretches, cuts).
    /// `SYNCMESH_FUZZ_CORPUS=sidecar/fuzz/corpus/data_dir cargo test -p syncmesh-replica --lib
    /// write_data_dir_fuzz_corpus -- --ignored`
    #[test]
    #[ignore]
    fn write_data_dir_fuzz_corpus() {
        let out = PathBuf::from(std::env::var("SYNCMESH_FUZZ_CORPUS").expect("SYNCMESH_FUZZ_CORPUS"));
        std::fs::create_dir_all(&out).unwrap();
        let log_only = temp_dir("corpus-log");
        three_segments(&log_only);
        let with_snapshot = temp_dir("corpus-snap");
        let mut r = reopen(&with_snapshot);
        for i in 0..4 {
            incr(&mut r, format!("k{i}").as_bytes(), 1_000 + i);
        }
        r.storage.begin_rewrite(&r.replica).unwrap().unwrap().run().unwrap();
        incr(&mut r, b"after", 2_000);
        drop(r);
        let mut n = 0;
        let mut write = |bytes: Vec<u8>| {
            n += 1;
            std::fs::write(out.join(format!("seed-{n:02}")), bytes).unwrap();
        };
        for dir in [&log_only, &with_snapshot] {
            for how in [0u8, 1, 2, 6] {
                write(pack(dir, how, |_, _| {}));
                write(pack(dir, how, |name, b| {
                    if name.starts_with("log-0000000001") || name == "snapshot.bin" {
                        let at = b.len() / 2;
                        b[at] ^= 0x08;
                    }
                }));
                write(pack(dir, how, |name, b| {
                    if name.starts_with("log-") {
                        let cut = b.len().saturating_sub(3).max(20);
                        b.truncate(cut);
                    }
                }));
                write(pack(dir, how, |name, b| {
                    if name.starts_with("log-0000000001") {
                        let from = b.len() / 3;
                        let to = (from + 40).min(b.len());
                        b[from..to].fill(0);
                    }
                }));
            }
        }
        std::fs::remove_dir_all(log_only).unwrap();
        std::fs::remove_dir_all(with_snapshot).unwrap();
    }
}
