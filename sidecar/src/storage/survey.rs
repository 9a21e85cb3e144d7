//! What a data directory holds, read without changing a byte: per file, how far it reads and
//! where damage starts, and the state replayed from its start up to the first damage. Recovery
//! ([`super::recover`]) decides from a survey whether the replica may start; the `check-data`
//! tool prints one.
//!
//! The history is the snapshot (if any) followed by the segments from the one it names, in
//! order. The first problem in that order ends what can be replayed:
//! - a **torn tail**: the last record of the history is cut short by the end of its file and
//!   nothing readable follows it (in that file or in a later one). A crash in the middle of a
//!   write leaves exactly this; a start accepts it (see `recover`).
//! - **damage**: anything else: a snapshot that does not read back, a missing segment, a
//!   segment whose header is damaged or names another replica, a record that is complete but
//!   fails its checksum or does not decode, a record cut short that readable records follow.
//!   A start refuses it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::log::{self, LogEntry};
use super::record::End;
use super::{snapshot, StorageError};
use crate::crdt::replica::{Delivery, Update};
use crate::crdt::{Clock, Replica, ReplicaId, VersionVector};

/// One file of the history, as read.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub name: String,
    pub size: u64,
    /// Log entries read before the end or the damage (for the snapshot: its keys).
    pub records: u64,
    /// Offset just past the last good record (the whole file when it reads to its end).
    pub good_end: u64,
    pub state: FileState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// Reads to its end.
    Good,
    /// Ends in a record cut short that nothing readable follows: a write cut short by a crash.
    TornTail { at: u64 },
    /// Damaged from `at`; `readable_after` records can still be read behind the damage, but
    /// not replayed (the history has a hole).
    Damaged { at: u64, why: String, readable_after: u64 },
    /// Comes after damage in an earlier file: not replayed. `records` counts what it holds.
    AfterDamage,
    /// A segment the snapshot already holds (a compaction stopped before deleting it).
    Covered,
}

/// The first damage of a directory, with what a start could recover up to it.
#[derive(Debug, Clone)]
pub struct Damage {
    pub dir: PathBuf,
    /// The damaged (or missing) file.
    pub file: String,
    pub offset: u64,
    pub why: String,
    /// Keys of the state replayed from the start of the history up to the damage.
    pub keys_recoverable: usize,
    /// Readable records behind the damage (in that file and later ones) that cannot be
    /// replayed.
    pub records_after: u64,
    /// How `check-data --fix` gets the directory to start with what is recoverable.
    pub repair: Repair,
}

/// The cut that removes the damage and everything after it (what is cut is kept aside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Cut segment `number` at byte `at` and set aside the segments after it.
    CutSegment { number: u64, at: u64 },
    /// Set aside segment `number` and every later one.
    SegmentsFrom(u64),
    /// Nothing is recoverable (the snapshot is damaged): set aside every file.
    Everything,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the data directory {} is damaged: {} at byte {}: {}; {} keys are recoverable up to there",
            self.dir.display(),
            self.file,
            self.offset,
            self.why,
            self.keys_recoverable
        )?;
        if self.records_after > 0 {
            write!(f, " ({} readable records follow the damage)", self.records_after)?;
        }
        Ok(())
    }
}

/// A torn tail a start may cut: segment `number` from byte `at` (its whole file when its
/// header is cut short).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub number: u64,
    pub at: u64,
    pub len: u64,
}

/// A data directory, read.
pub struct Survey {
    pub dir: PathBuf,
    /// The replica the files belong to (None: no history).
    pub replica_id: Option<ReplicaId>,
    /// The snapshot first (if any), then the segments in order.
    pub files: Vec<FileReport>,
    pub damage: Option<Damage>,
    pub torn: Option<TornTail>,
    /// Segments the snapshot holds (left by a compaction that stopped before deleting them).
    pub covered: Vec<PathBuf>,
    /// The highest segment number in the directory (0: none).
    pub last_segment: u64,
    /// Bytes of the snapshot, and of the segments replayed (up to a torn tail).
    pub base_size: u64,
    pub log_size: u64,
    pub(super) replay: Replay,
}

impl Survey {
    /// Whether the directory holds any history at all.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Keys of the state replayed up to the damage (all of them without damage).
    pub fn keys(&self) -> usize {
        (0..crate::crdt::replica::DATABASES).map(|d| self.replay.replica.db(d).len()).sum()
    }
}

/// The segment files of `dir` by number.
pub fn segments(dir: &Path) -> std::io::Result<BTreeMap<u64, PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(n) = log::parse_segment_name(&entry.file_name().to_string_lossy()) {
            out.insert(n, entry.path());
        }
    }
    Ok(out)
}

fn name_of(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Reads `dir` (changing nothing) and replays its history up to the first damage. `standalone`
/// replays as a replica without peers does (every write stable at once). Errors are I/O errors
/// and [`StorageError::Format`] (a file of a format this release does not read, which is not
/// damage: a start stops on it whatever `--recover-from-peers` says, and `check-data --fix`
/// changes nothing); damage is described in the survey.
pub fn survey(dir: &Path, standalone: bool) -> Result<Survey, StorageError> {
    let mut s = Survey {
        dir: dir.to_path_buf(),
        replica_id: None,
        files: Vec::new(),
        damage: None,
        torn: None,
        covered: Vec::new(),
        last_segment: 0,
        base_size: 0,
        log_size: 0,
        replay: Replay::new(standalone),
    };
    let segs = segments(dir)?;
    s.last_segment = segs.keys().next_back().copied().unwrap_or(0);
    let mut first = 1;
    match std::fs::read(snapshot::path(dir)) {
        Ok(bytes) => {
            let size = bytes.len() as u64;
            match snapshot::decode(&bytes) {
                Ok(b) => {
                    first = b.next_segment;
                    s.replica_id = Some(b.replica);
                    s.base_size = size;
                    s.replay.replica = Replica::new(b.replica, Clock::new(0));
                    s.replay.snapshotted.merge(&b.snapshot.vv);
                    s.replay.replica.install(b.snapshot);
                    let keys = s.keys() as u64;
                    s.files.push(FileReport {
                        name: snapshot::FILE_NAME.into(),
                        size,
                        records: keys,
                        good_end: size,
                        state: FileState::Good,
                    });
                }
                Err(StorageError::Format(e)) => return Err(StorageError::Format(e)),
                Err(e) => {
                    let why = e.to_string();
                    let why = why.strip_prefix("snapshot: ").unwrap_or(&why).to_string();
                    s.files.push(FileReport {
                        name: snapshot::FILE_NAME.into(),
                        size,
                        records: 0,
                        good_end: 0,
                        state: FileState::Damaged { at: 0, why: why.clone(), readable_after: 0 },
                    });
                    // The segments build on the snapshot: none of them can be replayed.
                    first = segs.keys().next().copied().unwrap_or(1);
                    s.damage = Some(Damage {
                        dir: dir.to_path_buf(),
                        file: snapshot::FILE_NAME.into(),
                        offset: 0,
                        why: format!("the snapshot does not read back ({why})"),
                        keys_recoverable: 0,
                        records_after: 0,
                        repair: Repair::Everything,
                    });
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StorageError::Io(e)),
    }
    for (_, path) in segs.range(..first) {
        s.covered.push(path.clone());
        let size = std::fs::metadata(path)?.len();
        s.files.push(FileReport {
            name: name_of(path),
            size,
            records: 0,
            good_end: size,
            state: FileState::Covered,
        });
    }
    let mut expected = first;
    for (&number, path) in segs.range(first..) {
        let bytes = std::fs::read(path)?;
        let size = bytes.len() as u64;
        let name = name_of(path);
        let body = bytes.get(log::HEADER_LEN..).unwrap_or(&[]);
        if s.torn.is_some() && log::next_readable(body, 0).is_some() {
            // Records after a torn tail: it was not the end of the history but a hole in it.
            s.torn_is_a_hole();
        }
        if s.damage.is_some() {
            let records = log::count_readable(body, 0);
            if let Some(d) = s.damage.as_mut() {
                d.records_after += records;
            }
            s.files.push(FileReport { name, size, records, good_end: 0, state: FileState::AfterDamage });
            continue;
        }
        let mut report = FileReport { name, size, records: 0, good_end: 0, state: FileState::Good };
        if number != expected {
            let missing = name_of(&log::segment_path(dir, expected));
            report.records = log::count_readable(body, 0);
            report.state = FileState::AfterDamage;
            s.damage = Some(Damage {
                dir: dir.to_path_buf(),
                why: format!("{missing} is missing (the log goes on at {})", report.name),
                file: missing,
                offset: 0,
                keys_recoverable: 0,
                records_after: report.records,
                repair: Repair::SegmentsFrom(number),
            });
            s.files.push(report);
            continue;
        }
        expected += 1;
        if bytes.len() < log::HEADER_LEN && log::header_prefix(&bytes) {
            // Created, but its header never reached the disk whole: nothing was logged in it.
            report.state = FileState::TornTail { at: 0 };
            s.note_torn(TornTail { number, at: 0, len: size });
            s.files.push(report);
            continue;
        }
        let header_damage = match log::decode_header(&bytes) {
            Ok((owner, n)) if n == number => match s.replica_id {
                Some(id) if id != owner => Some(format!(
                    "it belongs to replica {owner:016x}, the rest of the directory to {id:016x}"
                )),
                _ => {
                    s.replica_id = Some(owner);
                    None
                }
            },
            Ok((_, n)) => Some(format!("its header names segment {n}")),
            Err(StorageError::Format(e)) => return Err(StorageError::Format(e)),
            Err(e) => Some(format!("damaged header: {e}")),
        };
        if let Some(why) = header_damage {
            let after = log::count_readable(body, 0);
            s.set_damage(&mut report, 0, why, after, Repair::SegmentsFrom(number));
            s.files.push(report);
            continue;
        }
        if s.replay.replica.id != s.replica_id.unwrap_or_default() {
            s.replay.replica = Replica::new(s.replica_id.unwrap_or_default(), Clock::new(0));
        }
        let scanned = log::scan(body);
        let total = scanned.entries.len();
        for (i, (entry, start)) in scanned.entries.into_iter().zip(scanned.starts).enumerate() {
            if !s.replay.apply(entry) {
                // Never expected of a log in application order: something before it is missing.
                let at = (log::HEADER_LEN + start) as u64;
                let after = (total - i - 1) as u64;
                report.records = i as u64;
                report.good_end = at;
                s.log_size += at;
                let why = "a record depends on writes the log does not hold (a hole in the history \
                           before it, such as a segment cut short at a record boundary)"
                    .to_string();
                s.set_damage(&mut report, at, why, after, Repair::CutSegment { number, at });
                break;
            }
        }
        if s.damage.is_some() {
            s.files.push(report);
            continue;
        }
        report.records = total as u64;
        let good_end = (log::HEADER_LEN + scanned.good_len) as u64;
        report.good_end = good_end;
        s.log_size += good_end;
        match scanned.end {
            End::Clean => {}
            End::Torn { .. } => {
                report.state = FileState::TornTail { at: good_end };
                s.note_torn(TornTail { number, at: good_end, len: size - good_end });
            }
            End::BadTail { at } | End::BadMiddle { at } => {
                let why = if matches!(scanned.end, End::BadMiddle { .. }) && !record_is_complete(&body[at..])
                {
                    "a record's length runs past the end of the file, and readable records follow it \
                     (a damaged length)"
                        .into()
                } else {
                    damage_kind(&body[at..])
                };
                let after = log::count_readable(body, at + 1);
                s.set_damage(&mut report, good_end, why, after, Repair::CutSegment { number, at: good_end });
            }
        }
        s.files.push(report);
    }
    if let Some(d) = s.damage.as_mut() {
        let keys = (0..crate::crdt::replica::DATABASES).map(|i| s.replay.replica.db(i).len()).sum();
        d.keys_recoverable = keys;
        if d.repair == Repair::Everything {
            d.keys_recoverable = 0;
        }
    } else {
        s.replay.finish();
    }
    Ok(s)
}

/// Whether `rest` holds the whole record its length claims.
fn record_is_complete(rest: &[u8]) -> bool {
    rest.len() >= super::record::FRAME_HEADER
        && u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize
            <= rest.len() - super::record::FRAME_HEADER
}

/// What is wrong with the (complete) record at the front of `rest`.
fn damage_kind(rest: &[u8]) -> String {
    if rest.len() >= super::record::FRAME_HEADER {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > super::record::MAX_RECORD {
            return format!("a record claims an impossible length ({len} bytes)");
        }
    }
    match super::record::whole_frame(rest) {
        Some(len) => match log::decode_record(&rest[super::record::FRAME_HEADER..][..len]) {
            Err(e) => format!("a record does not decode ({e})"),
            Ok(_) => "an installed snapshot does not decode".into(),
        },
        None => "record checksum mismatch".into(),
    }
}

impl Survey {
    fn set_damage(&mut self, report: &mut FileReport, at: u64, why: String, after: u64, repair: Repair) {
        report.state = FileState::Damaged { at, why: why.clone(), readable_after: after };
        self.damage = Some(Damage {
            dir: self.dir.clone(),
            file: report.name.clone(),
            offset: at,
            why,
            keys_recoverable: 0,
            records_after: after,
            repair,
        });
    }

    fn note_torn(&mut self, torn: TornTail) {
        if self.torn.is_some() {
            // Two segments cut short: the first one is a hole in the history.
            self.torn_is_a_hole();
            if self.damage.is_some() {
                return;
            }
        }
        self.torn = Some(torn);
    }

    /// Something readable follows a segment cut short: the history has a hole there, which no
    /// crash in the middle of a write explains.
    fn torn_is_a_hole(&mut self) {
        let Some(torn) = self.torn.take() else { return };
        let name = name_of(&log::segment_path(&self.dir, torn.number));
        let why = "a record is cut short, and a later segment holds more of the log (a hole in the history)";
        if let Some(f) = self.files.iter_mut().find(|f| f.name == name) {
            f.state = FileState::Damaged { at: torn.at, why: why.into(), readable_after: 0 };
        }
        self.damage = Some(Damage {
            dir: self.dir.clone(),
            file: name,
            offset: torn.at,
            why: why.into(),
            keys_recoverable: 0,
            records_after: 0,
            repair: if torn.at == 0 {
                Repair::SegmentsFrom(torn.number)
            } else {
                Repair::CutSegment { number: torn.number, at: torn.at }
            },
        });
    }
}

/// Replays log entries into a replica, in order.
pub(super) struct Replay {
    pub(super) replica: Replica,
    standalone: bool,
    /// The updates applied, in order (kept in a mesh only).
    pub(super) applied: Vec<Update>,
    pub(super) snapshotted: VersionVector,
}

impl Replay {
    fn new(standalone: bool) -> Replay {
        Replay {
            replica: Replica::new(0, Clock::new(0)),
            standalone,
            applied: Vec::new(),
            snapshotted: VersionVector::new(),
        }
    }

    /// Applies one entry; false if it is an update whose dependencies the replica lacks (the
    /// log is in application order, so something before it is missing).
    fn apply(&mut self, entry: LogEntry) -> bool {
        match entry {
            LogEntry::Update(u) => {
                if self.standalone {
                    // Alone, every earlier write is stable, as it was when this one was made.
                    let vv = self.replica.version_vector().clone();
                    self.replica.set_stable(vv);
                }
                match self.replica.deliver(&u) {
                    Delivery::Applied => {
                        if !self.standalone {
                            self.applied.push(u);
                        }
                    }
                    Delivery::NotReady => return false,
                    Delivery::Duplicate => {}
                }
            }
            LogEntry::Installed(s) => {
                self.snapshotted.merge(&s.vv);
                self.replica.install(s);
            }
            LogEntry::Stable(vv) => {
                if !self.standalone {
                    self.replica.set_stable(vv);
                }
            }
        }
        true
    }

    /// After the whole history: alone, everything is stable and compacted.
    fn finish(&mut self) {
        if self.standalone {
            let vv = self.replica.version_vector().clone();
            self.replica.set_stable(vv);
            self.replica.compact();
        }
    }
}
