//! The snapshot file: the replica's whole state at one point of its log, so that older log
//! segments can be deleted (compaction, `BGREWRITEAOF`).
//!
//! ```text
//! snapshot.bin = header body
//! header       = "SMESHSNP" format:u32 replica:u64 next_segment:u64 body_len:u64
//!                body_crc:u32 header_crc:u32                              (44 bytes, LE)
//! body         = the state, in the mesh's snapshot encoding (Replica::snapshot)
//! ```
//!
//! `next_segment` is the first log segment that is *not* in the snapshot: recovery loads the
//! snapshot and replays the segments from there. The file is written as `snapshot.tmp`,
//! fsynced, renamed over `snapshot.bin` and the directory fsynced, so a crash leaves either the
//! old snapshot or the new one, never half of one.
//!
//! `format` is the data directory's format ([`super::FORMAT`]); the body's encoding is the mesh's
//! snapshot encoding of that format. A snapshot of a format this release does not read is
//! refused ([`super::FormatError`]), never taken for damage.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::StorageError;
use crate::crdt::replica::Snapshot;
use crate::crdt::ReplicaId;

const MAGIC: &[u8; 8] = b"SMESHSNP";
const HEADER_LEN: usize = 44;

pub const FILE_NAME: &str = "snapshot.bin";
pub const TEMP_NAME: &str = "snapshot.tmp";

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// A decoded snapshot file.
#[derive(Debug)]
pub struct SnapshotFile {
    pub replica: ReplicaId,
    pub next_segment: u64,
    pub snapshot: Snapshot,
}

/// Encodes the file's bytes. CPU-heavy for large states: call it off the async threads.
pub fn encode(replica: ReplicaId, next_segment: u64, snapshot: &Snapshot) -> Vec<u8> {
    let body = crate::mesh::wire::encode_snapshot(snapshot);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&super::FORMAT.to_le_bytes());
    out.extend_from_slice(&replica.to_le_bytes());
    out.extend_from_slice(&next_segment.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    let header_crc = crc32fast::hash(&out);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes and verifies a snapshot file; any damage is an error, never a panic. A whole header
/// that names a format this release does not read is [`StorageError::Format`].
pub fn decode(bytes: &[u8]) -> Result<SnapshotFile, StorageError> {
    let corrupt = |why: &str| StorageError::Corrupt(format!("snapshot: {why}"));
    if bytes.len() < HEADER_LEN {
        return Err(corrupt("file is shorter than its header"));
    }
    let (h, body) = bytes.split_at(HEADER_LEN);
    if &h[..8] != MAGIC {
        return Err(corrupt("not a SyncMesh snapshot"));
    }
    if crc32fast::hash(&h[..40]).to_le_bytes() != h[40..44] {
        return Err(corrupt("header checksum mismatch"));
    }
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().expect("8 bytes"));
    super::check_format(FILE_NAME, u32_at(8))?;
    let replica = u64_at(12);
    let next_segment = u64_at(20);
    if u64_at(28) != body.len() as u64 {
        return Err(corrupt(&format!("body is {} bytes, header says {}", body.len(), u64_at(28))));
    }
    if crc32fast::hash(body) != u32_at(36) {
        return Err(corrupt("body checksum mismatch"));
    }
    let snapshot = crate::mesh::wire::decode_snapshot(body).map_err(|e| corrupt(&e.to_string()))?;
    if snapshot.origin != replica {
        return Err(corrupt("body belongs to another replica"));
    }
    Ok(SnapshotFile { replica, next_segment, snapshot })
}

/// Reads `snapshot.bin`, if there is one.
pub fn read(dir: &Path) -> Result<Option<SnapshotFile>, StorageError> {
    match std::fs::read(path(dir)) {
        Ok(bytes) => decode(&bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::Io(e)),
    }
}

/// Writes the file durably and atomically (temporary file, fsync, rename, directory fsync).
pub fn write(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(TEMP_NAME);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path(dir))?;
    super::sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Blob, Clock, Effect, Op, Replica, Ttl};

    fn state() -> Replica {
        let mut r = Replica::new(5, Clock::new(0));
        let op = Op {
            db: 3,
            key: Blob::from_slice(b"key"),
            effect: Effect::Assign { value: crate::crdt::Value::from_slice(b"value"), ttl: Ttl::Clear },
        };
        r.write(op, 1_000);
        r
    }

    #[test]
    fn round_trip() {
        let r = state();
        let bytes = encode(5, 9, &r.snapshot());
        let f = decode(&bytes).unwrap();
        assert_eq!((f.replica, f.next_segment), (5, 9));
        let mut back = Replica::new(5, Clock::new(0));
        back.install(f.snapshot);
        assert_eq!(back.digest(2_000), r.digest(2_000));
        assert_eq!(back.version_vector(), r.version_vector());
    }

    #[test]
    fn a_snapshot_of_a_format_this_release_does_not_read_is_a_format_error() {
        let mut bytes = encode(5, 9, &state().snapshot());
        assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), crate::storage::FORMAT);
        bytes[8..12].copy_from_slice(&(crate::storage::FORMAT + 1).to_le_bytes());
        let crc = crc32fast::hash(&bytes[..40]);
        bytes[40..44].copy_from_slice(&crc.to_le_bytes());
        match decode(&bytes) {
            Err(StorageError::Format(e)) => {
                assert_eq!((e.file.as_str(), e.found), (FILE_NAME, crate::storage::FORMAT + 1))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn any_flipped_byte_or_truncation_is_an_error() {
        let bytes = encode(5, 9, &state().snapshot());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad).is_err(), "flip at {i}");
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
