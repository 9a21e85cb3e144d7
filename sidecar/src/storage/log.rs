//! Log segments: the append-only log of the state changes this replica applied, one file per
//! segment (`log-<number>.aof`), a new segment at every start and at every snapshot.
//!
//! ```text
//! segment  = header record*
//! header   = "SMESHLOG" format:u32 replica:u64 segment:u64 crc:u32       (32 bytes, LE)
//! record   = see record.rs; its payload is one LogEntry:
//!            0x01 bincode(Update)        a local command/transaction or an update from a peer
//!            0x02 snapshot bytes         a peer's snapshot this replica installed (mesh format)
//!            0x03 bincode(VersionVector) the causal-stability frontier from here on
//! ```
//!
//! Entries are in the order the replica applied them, which is a causal order, so replaying
//! them in order with `Replica::deliver`/`install` rebuilds exactly the state that was logged.
//!
//! `format` is the data directory's format ([`super::FORMAT`]) the segment was written in; a
//! segment of a format this release does not read is refused ([`super::FormatError`]), never
//! taken for damage. Formats 1 and 2 encode entries alike (2 only adds effect variants and a
//! keyspace), so one decoder reads both; a format that changes an encoding decodes by format.

use std::path::{Path, PathBuf};

use bincode::Options;

use super::record::{self, End, Reader};
use super::StorageError;
use crate::crdt::replica::{Snapshot, Update};
use crate::crdt::{ReplicaId, VersionVector};

const MAGIC: &[u8; 8] = b"SMESHLOG";
pub const HEADER_LEN: usize = 32;

const KIND_UPDATE: u8 = 1;
const KIND_INSTALLED: u8 = 2;
const KIND_STABLE: u8 = 3;

/// One logged state change.
#[derive(Debug)]
pub enum LogEntry {
    Update(Update),
    Installed(Snapshot),
    /// The frontier the mesh had computed when this was logged. Replaying with it keeps hot
    /// counters compacted during recovery, exactly as they were when first applied.
    Stable(VersionVector),
}

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_varint_encoding().with_limit(record::MAX_RECORD as u64)
}

pub fn segment_name(number: u64) -> String {
    format!("log-{number:010}.aof")
}

pub fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(segment_name(number))
}

/// The segment number of a file name written by [`segment_path`].
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("log-")?.strip_suffix(".aof")?;
    if digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

pub fn encode_header(replica: ReplicaId, number: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&super::FORMAT.to_le_bytes());
    h[12..20].copy_from_slice(&replica.to_le_bytes());
    h[20..28].copy_from_slice(&number.to_le_bytes());
    let crc = crc32fast::hash(&h[..28]);
    h[28..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Whether `bytes` (fewer than a header's) can be the start of a segment header: what a crash
/// right after a segment was created leaves.
pub fn header_prefix(bytes: &[u8]) -> bool {
    MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())])
}

/// `(replica, segment number)` of a segment header. A header that is whole but names a format
/// this release does not read is [`StorageError::Format`], not damage.
pub fn decode_header(h: &[u8]) -> Result<(ReplicaId, u64), StorageError> {
    if h.len() < HEADER_LEN {
        return Err(StorageError::Corrupt("segment header is cut short".into()));
    }
    if &h[..8] != MAGIC {
        return Err(StorageError::Corrupt("not a SyncMesh log segment".into()));
    }
    if crc32fast::hash(&h[..28]).to_le_bytes() != h[28..32] {
        return Err(StorageError::Corrupt("segment header checksum mismatch".into()));
    }
    let format = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    let replica = u64::from_le_bytes(h[12..20].try_into().expect("8 bytes"));
    let number = u64::from_le_bytes(h[20..28].try_into().expect("8 bytes"));
    super::check_format(&segment_name(number), format)?;
    Ok((replica, number))
}

/// Appends an update as a framed record.
pub fn encode_update(u: &Update, out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(64);
    payload.push(KIND_UPDATE);
    options().serialize_into(&mut payload, u).expect("updates always serialize");
    record::encode(&payload, out);
}

/// Installed snapshots are logged in parts of this size, so that no record grows with the
/// dataset (a record's length field and [`record::MAX_RECORD`] bound it).
pub const INSTALL_CHUNK: usize = 8 * 1024 * 1024;

/// Appends an installed snapshot (already in the mesh's snapshot encoding) as framed records of
/// [`INSTALL_CHUNK`] bytes, the last one flagged; returns how many records it took.
pub fn encode_installed(snapshot_bytes: &[u8], out: &mut Vec<u8>) -> u64 {
    encode_installed_in(snapshot_bytes, INSTALL_CHUNK, out)
}

fn encode_installed_in(snapshot_bytes: &[u8], chunk: usize, out: &mut Vec<u8>) -> u64 {
    let chunks: Vec<&[u8]> =
        if snapshot_bytes.is_empty() { vec![&[]] } else { snapshot_bytes.chunks(chunk).collect() };
    let n = chunks.len();
    for (i, part) in chunks.into_iter().enumerate() {
        let mut payload = Vec::with_capacity(part.len() + 2);
        payload.push(KIND_INSTALLED);
        payload.push((i + 1 == n) as u8);
        payload.extend_from_slice(part);
        record::encode(&payload, out);
    }
    n as u64
}

/// Appends the causal-stability frontier as a framed record.
pub fn encode_stable(vv: &VersionVector, out: &mut Vec<u8>) {
    let mut payload = vec![KIND_STABLE];
    options().serialize_into(&mut payload, vv).expect("version vectors always serialize");
    record::encode(&payload, out);
}

/// What one record holds: a whole entry, or a part of an installed snapshot.
#[derive(Debug)]
pub enum Decoded<'a> {
    Entry(LogEntry),
    InstalledPart { last: bool, bytes: &'a [u8] },
}

pub fn decode_record(payload: &[u8]) -> Result<Decoded<'_>, StorageError> {
    let undecodable =
        |e: &dyn std::fmt::Display| StorageError::Corrupt(format!("undecodable log entry: {e}"));
    match payload.split_first() {
        Some((&KIND_UPDATE, body)) => options()
            .deserialize(body)
            .map(|u| Decoded::Entry(LogEntry::Update(u)))
            .map_err(|e| undecodable(&e)),
        Some((&KIND_INSTALLED, [flag @ (0 | 1), bytes @ ..])) => {
            Ok(Decoded::InstalledPart { last: *flag == 1, bytes })
        }
        Some((&KIND_STABLE, body)) => options()
            .deserialize(body)
            .map(|v| Decoded::Entry(LogEntry::Stable(v)))
            .map_err(|e| undecodable(&e)),
        Some((kind, _)) => Err(StorageError::Corrupt(format!("unknown log entry kind {kind}"))),
        None => Err(StorageError::Corrupt("empty log entry".into())),
    }
}

/// The readable part of one segment's records (the bytes after its header).
pub struct Scanned {
    pub entries: Vec<LogEntry>,
    /// Where each entry's (first) record starts.
    pub starts: Vec<usize>,
    /// Bytes of records (after the header) that hold whole, decodable entries.
    pub good_len: usize,
    /// Why the good part ends:
    /// - `Clean`: at the end of the input;
    /// - `Torn`: at a record cut short by the end of the input, with nothing readable after it
    ///   (what a crash in the middle of a write leaves);
    /// - `BadTail`: at a complete record that fails its checksum or does not decode, with
    ///   nothing readable after it;
    /// - `BadMiddle`: at a damaged record (or one whose length runs past the end) that readable
    ///   records follow: damage, never a torn write.
    pub end: End,
}

/// Reads every whole entry of a segment body. A record whose checksum holds but whose payload
/// does not decode counts as damage at its offset, like a checksum failure. An installed
/// snapshot whose last part is missing at the end of the body is a torn tail starting at its
/// first part (its parts are always written together, by one append).
pub fn scan(body: &[u8]) -> Scanned {
    let mut reader = Reader::new(body);
    let mut entries = Vec::new();
    let mut starts = Vec::new();
    // Start offset and bytes of an installed snapshot whose parts are being collected.
    let mut install: Option<(usize, Vec<u8>)> = None;
    let mut at = 0;
    // The good part ends at `from`; the input is searched for readable records from `after` on.
    let ended = |entries: Vec<LogEntry>, starts: Vec<usize>, from: usize, after: usize, torn: bool| {
        let end = match (next_readable(body, after).is_some(), torn) {
            (true, _) => End::BadMiddle { at: from },
            (false, true) => End::Torn { at: from },
            (false, false) => End::BadTail { at: from },
        };
        Scanned { entries, starts, good_len: from, end }
    };
    while let Some(payload) = reader.next() {
        let next = reader.position();
        match (decode_record(payload), &mut install) {
            (Ok(Decoded::Entry(e)), None) => {
                entries.push(e);
                starts.push(at);
            }
            (Ok(Decoded::InstalledPart { last, bytes }), _) => {
                let (start, buf) = install.get_or_insert_with(|| (at, Vec::new()));
                let start = *start;
                buf.extend_from_slice(bytes);
                if last {
                    let (_, buf) = install.take().expect("collecting");
                    match crate::mesh::wire::decode_snapshot(&buf) {
                        Ok(snapshot) => {
                            entries.push(LogEntry::Installed(snapshot));
                            starts.push(start);
                        }
                        Err(_) => return ended(entries, starts, start, next, false),
                    }
                }
            }
            (Ok(Decoded::Entry(_)), Some((start, _))) => {
                let start = *start;
                return ended(entries, starts, start, next, false);
            }
            (Err(_), _) => {
                let from = install.as_ref().map(|(start, _)| *start).unwrap_or(at);
                return ended(entries, starts, from, next, false);
            }
        }
        at = next;
    }
    let from = |stop: usize| install.as_ref().map(|(start, _)| *start).unwrap_or(stop);
    match reader.end().expect("reader finished") {
        End::Clean if install.is_none() => Scanned { entries, starts, good_len: body.len(), end: End::Clean },
        // Every part read, the last one missing: the append was cut at a record boundary.
        End::Clean => {
            let start = from(body.len());
            Scanned { entries, starts, good_len: start, end: End::Torn { at: start } }
        }
        End::Torn { at: stop } => ended(entries, starts, from(stop), stop + 1, true),
        End::BadTail { at: stop } | End::BadMiddle { at: stop } => {
            ended(entries, starts, from(stop), stop + 1, false)
        }
    }
}

/// Whether the front of `rest` may be the start of a record holding a log entry: its length is
/// within bounds and its payload, as far as it is there, starts with an entry kind. Cheap: it
/// spares the checksum of most offsets when searching damaged bytes for records.
fn plausible_start(rest: &[u8]) -> bool {
    if rest.len() < record::FRAME_HEADER {
        return true;
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    if len == 0 || len > record::MAX_RECORD {
        return false;
    }
    match rest.get(record::FRAME_HEADER) {
        None => true,
        Some(kind) => matches!(*kind, KIND_UPDATE | KIND_INSTALLED | KIND_STABLE),
    }
}

/// The offset of the first readable record at or after `from`: a whole record whose checksum
/// holds, followed by the end of the input or by something that may be a record. Used to tell
/// damage followed by readable records (never a torn write) from a torn or damaged tail.
pub fn next_readable(body: &[u8], from: usize) -> Option<usize> {
    let last_start = body.len().checked_sub(record::FRAME_HEADER + 1)?;
    (from..=last_start).find(|&p| {
        let rest = &body[p..];
        if !plausible_start(rest) {
            return false;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let next = record::FRAME_HEADER + len;
        next <= rest.len() && plausible_start(&rest[next..]) && record::whole_frame(rest).is_some()
    })
}

/// Readable records from `from` on, skipping over damage (for reports: what a cut would leave
/// behind).
pub fn count_readable(body: &[u8], from: usize) -> u64 {
    let mut count = 0;
    let mut at = from;
    while let Some(p) = next_readable(body, at) {
        let mut reader = Reader::new(&body[p..]);
        count += reader.by_ref().count() as u64;
        at = p + reader.position() + 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Blob, Effect, Op, Timestamp};

    fn update(ts: u64) -> Update {
        let op = Op { db: 0, key: Blob::from_slice(b"k"), effect: Effect::Delete };
        Update { origin: 7, deps: VersionVector::new(), ops: vec![(Timestamp(ts), op)] }
    }

    #[test]
    fn header_round_trip_and_damage() {
        let h = encode_header(0xabcdef, 42);
        assert_eq!(decode_header(&h).unwrap(), (0xabcdef, 42));
        for i in 0..HEADER_LEN {
            let mut bad = h;
            bad[i] ^= 0x10;
            assert!(decode_header(&bad).is_err(), "flip at {i}");
        }
        assert!(decode_header(&h[..20]).is_err());
    }

    /// A whole header of another format is not damage: it says which formats this release reads.
    fn header_of_format(format: u32) -> [u8; HEADER_LEN] {
        let mut h = encode_header(7, 3);
        h[8..12].copy_from_slice(&format.to_le_bytes());
        let crc = crc32fast::hash(&h[..28]);
        h[28..].copy_from_slice(&crc.to_le_bytes());
        h
    }

    #[test]
    fn a_header_of_a_format_this_release_does_not_read_is_a_format_error() {
        use crate::storage::{FormatError, FORMAT, OLDEST_FORMAT};
        assert_eq!(u32::from_le_bytes(encode_header(7, 3)[8..12].try_into().unwrap()), FORMAT);
        for format in OLDEST_FORMAT..=FORMAT {
            assert_eq!(decode_header(&header_of_format(format)).unwrap(), (7, 3));
        }
        for format in [0, FORMAT + 1, u32::MAX] {
            match decode_header(&header_of_format(format)) {
                Err(StorageError::Format(e)) => {
                    assert_eq!(e, FormatError { file: "log-0000000003.aof".into(), found: format });
                    let text = e.to_string();
                    let reads =
                        format!("format {format}; this replica reads formats {OLDEST_FORMAT}..{FORMAT}");
                    assert!(text.contains(&reads), "{text}");
                }
                other => panic!("format {format}: {other:?}"),
            }
        }
        let newer = decode_header(&header_of_format(FORMAT + 1)).unwrap_err().to_string();
        assert!(newer.contains("A newer release of syncmesh-replica wrote it"), "{newer}");
    }

    #[test]
    fn segment_names() {
        let p = segment_path(Path::new("/d"), 12);
        assert_eq!(p.file_name().unwrap(), "log-0000000012.aof");
        assert_eq!(parse_segment_name("log-0000000012.aof"), Some(12));
        assert_eq!(parse_segment_name("log-12.aof"), None);
        assert_eq!(parse_segment_name("snapshot.bin"), None);
    }

    #[test]
    fn entries_round_trip_and_tail_damage_keeps_the_prefix() {
        let mut body = Vec::new();
        for ts in 1..=3 {
            encode_update(&update(ts), &mut body);
        }
        let s = scan(&body);
        assert_eq!(s.entries.len(), 3);
        assert_eq!((s.good_len, s.end), (body.len(), End::Clean));

        let cut = &body[..body.len() - 3];
        let s = scan(cut);
        assert_eq!(s.entries.len(), 2);
        assert!(matches!(s.end, End::Torn { .. }));

        let mut flipped = body.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 0xff;
        let s = scan(&flipped);
        assert_eq!(s.entries.len(), 2);
        assert!(matches!(s.end, End::BadTail { .. }));
        assert_eq!(s.good_len, s.end.good_len(flipped.len()));
    }

    #[test]
    fn a_good_frame_with_an_undecodable_payload_is_damage() {
        let mut body = Vec::new();
        encode_update(&update(1), &mut body);
        let good = body.len();
        record::encode(&[9, 9, 9], &mut body);
        let s = scan(&body);
        assert_eq!(s.entries.len(), 1);
        assert_eq!(s.end, End::BadTail { at: good });
        encode_update(&update(2), &mut body);
        assert_eq!(scan(&body).end, End::BadMiddle { at: good });
    }

    #[test]
    fn a_damaged_length_that_runs_past_the_end_is_damage_when_records_follow() {
        let mut body = Vec::new();
        for ts in 1..=50 {
            encode_update(&update(ts), &mut body);
        }
        let first = scan(&body).entries.len();
        assert_eq!(first, 50);
        let one = body.len() / 50;
        for bit in [12u32, 20, 24, 27] {
            let mut damaged = body.clone();
            // The length of the fifth record now runs past the end of the input.
            let at = 4 * one;
            let len = u32::from_le_bytes(damaged[at..at + 4].try_into().unwrap()) | (1 << bit);
            damaged[at..at + 4].copy_from_slice(&len.to_le_bytes());
            let s = scan(&damaged);
            assert_eq!((s.entries.len(), s.end), (4, End::BadMiddle { at }), "bit {bit}");
            assert_eq!(count_readable(&damaged, at + 1), 45, "bit {bit}");
        }
        // Cut short instead: a torn tail, nothing readable after it.
        let s = scan(&body[..body.len() - 5]);
        assert_eq!(s.end, End::Torn { at: 49 * one });
        // A zeroed stretch with records after it.
        let mut zeroed = body.clone();
        zeroed[10 * one + 3..20 * one].fill(0);
        let s = scan(&zeroed);
        assert_eq!((s.entries.len(), s.end), (10, End::BadMiddle { at: 10 * one }));
        assert_eq!(count_readable(&zeroed, 10 * one + 1), 30);
    }

    fn snapshot_bytes() -> Vec<u8> {
        let mut r = crate::crdt::Replica::new(3, crate::crdt::Clock::new(0));
        for i in 0..50u64 {
            let key = Blob::from_slice(format!("key{i}").as_bytes());
            let effect = Effect::Assign {
                value: crate::crdt::Value::from_slice(b"value"),
                ttl: crate::crdt::Ttl::Clear,
            };
            r.write(Op { db: 0, key, effect }, 1_000 + i);
        }
        crate::mesh::wire::encode_snapshot(&r.snapshot())
    }

    #[test]
    fn an_installed_snapshot_in_parts_round_trips() {
        let snap = snapshot_bytes();
        let mut body = Vec::new();
        encode_update(&update(1), &mut body);
        let parts = encode_installed_in(&snap, 7, &mut body);
        assert!(parts > 2);
        encode_update(&update(2), &mut body);
        let s = scan(&body);
        assert_eq!(s.end, End::Clean);
        assert!(matches!(
            &s.entries[..],
            [LogEntry::Update(_), LogEntry::Installed(i), LogEntry::Update(_)] if i.origin == 3
        ));
    }

    #[test]
    fn an_installed_snapshot_missing_its_last_part_is_a_torn_tail() {
        let snap = snapshot_bytes();
        let mut body = Vec::new();
        encode_update(&update(1), &mut body);
        let start = body.len();
        encode_installed_in(&snap, 7, &mut body);
        for cut in start + 1..body.len() {
            let s = scan(&body[..cut]);
            assert_eq!(s.entries.len(), 1, "cut at {cut}");
            assert_eq!((s.good_len, s.end), (start, End::Torn { at: start }), "cut at {cut}");
        }
    }
}
