//! The data directory (`--data-dir`): an append-only log of every state change the replica
//! applies, compacted from time to time into a snapshot, so that a replica restarted on the same
//! directory comes back with its identity and its data and only catches up on what it missed.
//!
//! - [`record`]: framing (length + CRC-32) shared by every log record.
//! - [`log`]: log segments and what a record holds (an update, an installed peer snapshot, the
//!   stability frontier).
//! - [`snapshot`]: the snapshot file.
//! - [`sync`]: the `--appendfsync` policy (the fsync thread, group commit).
//! - [`survey`]: reading a directory without changing it: how far each file reads, where damage
//!   starts, the state up to it.
//! - [`recover`]: opening a directory at start: replay; keep aside and cut a torn tail; stop on
//!   damage (or, with `--recover-from-peers`, set the files aside and start as a new member).
//! - [`repair`]: moving damaged files aside, never deleting them (`check-data --fix`,
//!   `--set-aside`).
//!
//! What is logged is exactly what `Replica` applied, in the order it applied it: the `Update`
//! of every local command or transaction and every update delivered from a peer, and every
//! snapshot installed from a peer. Replaying that sequence rebuilds the same state, version
//! vector and clock, so the replica does not issue again a timestamp (dot) it logged, and tells
//! its peers truthfully what it has. Nothing leaves the replica before it is logged (see
//! [`sync`]), so what peers hold of its writes is in the log too, up to what a host crash can
//! take under `everysec`/`no` (which `server::durability` detects). The user-facing guarantees are in `docs/durability.md`.

pub mod log;
pub mod record;
pub mod recover;
pub mod repair;
pub mod snapshot;
pub mod survey;
pub mod sync;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing::{error, info};

use crate::config::AppendFsync;
use crate::crdt::replica::{Snapshot, Update};
use crate::crdt::{Replica, ReplicaId, VersionVector};
use sync::Durability;

/// The data directory's format: the layout of the segment and snapshot headers and the encoding
/// of what they hold (updates, the stability frontier, snapshots), written into every header and
/// checked on every read. Bump it for any change to those bytes, keep reading the formats
/// before it, and add the new format's golden fixtures (`sidecar/tests/formats.rs`).
///
/// - 1: the first releases.
/// - 2: adds the effects `IncrFloat` and `HashIncrFloat` (appended: earlier variants keep their
///   numbers) and the keyspace of function libraries (`FUNCTIONS_DB`, 16). Nothing of format 1
///   changed meaning, so its files read with the same decoder; a release that reads only format
///   1 refuses format 2 rather than misreading it (it would drop the libraries).
pub const FORMAT: u32 = 2;
/// The oldest format this release reads.
pub const OLDEST_FORMAT: u32 = 1;

/// A file written in a format this release does not read. Nothing is wrong with the file, so it
/// is never taken for damage: nothing is cut or set aside, the replica stops and says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{file} was written in data directory format {found}; this replica reads formats \
     {OLDEST_FORMAT}..{FORMAT}{}",
    format_advice(*.found)
)]
pub struct FormatError {
    pub file: String,
    pub found: u32,
}

fn format_advice(found: u32) -> &'static str {
    if found > FORMAT {
        ". A newer release of syncmesh-replica wrote it: run that release (or a later one) on this \
         directory, or start this one on an empty directory so that it rebuilds from its peers. \
         Nothing in the directory was changed"
    } else {
        ". Nothing in the directory was changed"
    }
}

/// Checks that this release reads files of `format`.
pub fn check_format(file: &str, format: u32) -> Result<(), FormatError> {
    if (OLDEST_FORMAT..=FORMAT).contains(&format) {
        Ok(())
    } else {
        Err(FormatError { file: file.to_string(), found: format })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0}")]
    Corrupt(String),
    #[error("{}", recover::damage_advice(.0))]
    Damaged(Box<survey::Damage>),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An exclusive lock on the data directory (`flock` on its `lock` file) for as long as the
/// replica runs: two processes appending to one log would interleave their records and make
/// two replicas with one id.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock, StorageError> {
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock"))?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a file descriptor this function owns; it only sets a lock.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(StorageError::Io(std::io::Error::new(
                    e.kind(),
                    format!("it is in use by another process ({e})"),
                )));
            }
        }
        Ok(DirLock { _file: file })
    }

    /// Whether a process holds the directory's lock (a replica runs on it). Creates nothing.
    pub fn in_use(dir: &Path) -> bool {
        let Ok(file) = File::open(dir.join("lock")) else { return false };
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a file descriptor this function owns; the lock is released
            // when the file is closed at the end of this function.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) != 0 }
        }
        #[cfg(not(unix))]
        {
            drop(file);
            false
        }
    }
}

/// What `INFO persistence` and `LASTSAVE` report; shared with the rewrite job.
pub struct Status {
    pub rewrite_in_progress: AtomicBool,
    pub rewrites: AtomicU64,
    pub last_rewrite_ok: AtomicBool,
    /// Duration of the last rewrite in seconds, -1 before the first.
    pub last_rewrite_secs: AtomicI64,
    /// Unix seconds of the last successful snapshot (or of the start, before the first).
    pub last_save_unix: AtomicU64,
    /// Size of the snapshot file the log builds on.
    pub base_size: AtomicU64,
    /// Bytes in log segments the last snapshot does not cover (current and rotated ones).
    pub log_size: AtomicU64,
    /// The last write of log records failed.
    pub write_failed: AtomicBool,
    /// Writes applied since the last snapshot was taken.
    pub changes_since_save: AtomicU64,
}

/// Where a directory's log goes on after recovery: its owner, the next segment, and the sizes
/// of the snapshot and of the segments kept (for the compaction trigger).
pub struct Continue {
    pub replica: ReplicaId,
    pub segment: u64,
    pub base_size: u64,
    pub log_size: u64,
}

/// The append side of the data directory. It lives in the store and is used under the store
/// lock: records are encoded into a buffer as the replica applies changes and handed to the
/// operating system by [`Storage::flush`], which callers run before anything that depends on
/// those changes leaves the replica.
pub struct Storage {
    dir: PathBuf,
    _lock: DirLock,
    replica: ReplicaId,
    file: Arc<File>,
    segment: u64,
    buf: Vec<u8>,
    /// Records appended so far: the sequence number of the next one.
    appended: u64,
    /// Bytes of the current segment that reached the file.
    segment_bytes: u64,
    /// `--aof-rewrite-min-size`: the log never triggers a rewrite below this.
    rewrite_min: u64,
    /// The stability frontier last logged.
    stable: VersionVector,
    pub durability: Arc<Durability>,
    pub status: Arc<Status>,
}

impl Storage {
    /// Starts segment `at.segment` in `dir` and the fsync policy around it.
    fn create(
        dir: &Path,
        lock: DirLock,
        at: Continue,
        policy: AppendFsync,
        rewrite_min: u64,
    ) -> std::io::Result<Storage> {
        let Continue { replica, segment: number, base_size, log_size } = at;
        let file = Arc::new(create_segment(dir, replica, number)?);
        file.sync_all()?;
        sync_dir(dir)?;
        let now = crate::server::unix_ms() / 1000;
        let status = Status {
            rewrite_in_progress: AtomicBool::new(false),
            rewrites: AtomicU64::new(0),
            last_rewrite_ok: AtomicBool::new(true),
            last_rewrite_secs: AtomicI64::new(-1),
            last_save_unix: AtomicU64::new(now),
            base_size: AtomicU64::new(base_size),
            log_size: AtomicU64::new(log_size + log::HEADER_LEN as u64),
            write_failed: AtomicBool::new(false),
            changes_since_save: AtomicU64::new(0),
        };
        Ok(Storage {
            dir: dir.to_path_buf(),
            _lock: lock,
            replica,
            durability: Durability::start(policy, dir.to_path_buf(), file.clone(), 0),
            file,
            segment: number,
            buf: Vec::with_capacity(64 * 1024),
            appended: 0,
            segment_bytes: log::HEADER_LEN as u64,
            rewrite_min,
            stable: VersionVector::new(),
            status: Arc::new(status),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn policy(&self) -> AppendFsync {
        self.durability.policy
    }

    /// Records appended so far (a sequence number to wait for with [`Durability::wait`]).
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// Bytes appended but not yet handed to the operating system.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn append_update(&mut self, u: &Update) {
        log::encode_update(u, &mut self.buf);
        self.appended += 1;
        self.status.changes_since_save.fetch_add(u.ops.len() as u64, Ordering::Relaxed);
    }

    /// A snapshot from a peer was installed; `bytes` is its mesh encoding as received.
    pub fn append_installed(&mut self, bytes: &[u8]) {
        self.appended += log::encode_installed(bytes, &mut self.buf);
    }

    fn append_stable(&mut self, vv: &VersionVector) {
        log::encode_stable(vv, &mut self.buf);
        self.appended += 1;
        self.stable = vv.clone();
    }

    /// Logs the mesh's stability frontier when it moved (every half second at most).
    pub fn log_stable(&mut self, vv: &VersionVector) {
        if *vv != self.stable {
            self.append_stable(vv);
        }
    }

    /// Hands buffered records to the operating system; returns the sequence number a caller
    /// must wait for before acknowledging what it did. After a failed write the file is cut
    /// back to its last whole record and the records stay buffered for the next attempt.
    pub fn flush(&mut self) -> u64 {
        if self.buf.is_empty() {
            return self.appended;
        }
        match (&*self.file).write_all(&self.buf) {
            Ok(()) => {
                let n = self.buf.len() as u64;
                self.segment_bytes += n;
                self.status.log_size.fetch_add(n, Ordering::Relaxed);
                self.buf.clear();
                if self.buf.capacity() > 1 << 20 {
                    self.buf.shrink_to(64 * 1024);
                }
                self.status.write_failed.store(false, Ordering::Relaxed);
                self.durability.written(self.appended);
            }
            Err(e) => {
                if self.policy() == AppendFsync::Always {
                    error!(error = %e, "writing the append-only log failed under appendfsync always: exiting");
                    std::process::exit(1);
                }
                if !self.status.write_failed.swap(true, Ordering::Relaxed) {
                    error!(error = %e, "writing the append-only log failed; writes are kept in memory and retried");
                }
                let _ = self.file.set_len(self.segment_bytes);
            }
        }
        self.appended
    }

    /// True when the log has grown past the snapshot it builds on (and the minimum size), as
    /// Redis's `auto-aof-rewrite-percentage 100`.
    pub fn wants_rewrite(&self) -> bool {
        let log = self.status.log_size.load(Ordering::Relaxed);
        !self.status.rewrite_in_progress.load(Ordering::Relaxed)
            && log > self.rewrite_min.max(self.status.base_size.load(Ordering::Relaxed))
    }

    /// Takes what a rewrite needs under the store lock, quickly: a copy of the state (the same
    /// clone the mesh sends new peers) and a fresh segment for the writes that follow it. The
    /// returned job writes the snapshot and drops the old segments without the lock. None if a
    /// rewrite is already running.
    pub fn begin_rewrite(&mut self, replica: &Replica) -> std::io::Result<Option<RewriteJob>> {
        if self.status.rewrite_in_progress.swap(true, Ordering::AcqRel) {
            return Ok(None);
        }
        self.flush();
        let snapshot = replica.snapshot();
        let next = self.segment + 1;
        let file = match create_segment(&self.dir, self.replica, next) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                self.status.rewrite_in_progress.store(false, Ordering::Release);
                self.status.last_rewrite_ok.store(false, Ordering::Relaxed);
                return Err(e);
            }
        };
        self.durability.rotated(file.clone());
        self.file = file;
        self.segment = next;
        self.segment_bytes = log::HEADER_LEN as u64;
        let covered = self.status.log_size.swap(log::HEADER_LEN as u64, Ordering::Relaxed);
        self.status.changes_since_save.store(0, Ordering::Relaxed);
        // The new segment starts with the frontier, so its replay compacts as the original did.
        self.append_stable(replica.stable());
        Ok(Some(RewriteJob {
            dir: self.dir.clone(),
            replica: self.replica,
            next_segment: next,
            snapshot,
            covered,
            status: self.status.clone(),
        }))
    }

    /// Stops the fsync thread (a clean shutdown syncs first).
    pub fn close(&mut self) {
        self.flush();
        let _ = self.file.sync_data();
        self.durability.stop();
    }
}

fn create_segment(dir: &Path, replica: ReplicaId, number: u64) -> std::io::Result<File> {
    let path = log::segment_path(dir, number);
    let mut f = OpenOptions::new().create_new(true).append(true).open(&path)?;
    f.write_all(&log::encode_header(replica, number))?;
    Ok(f)
}

/// Writes a snapshot and deletes the segments it covers; runs on a blocking thread.
pub struct RewriteJob {
    dir: PathBuf,
    replica: ReplicaId,
    next_segment: u64,
    snapshot: Snapshot,
    /// Log bytes the snapshot makes obsolete (given back to the size count if it fails).
    covered: u64,
    status: Arc<Status>,
}

impl RewriteJob {
    pub fn run(self) -> Result<(), StorageError> {
        let started = Instant::now();
        let keys: usize = self.snapshot.dbs.iter().map(|(_, e)| e.len()).sum();
        let bytes = snapshot::encode(self.replica, self.next_segment, &self.snapshot);
        drop(self.snapshot);
        let result = snapshot::write(&self.dir, &bytes)
            .and_then(|_| remove_segments_before(&self.dir, self.next_segment));
        let status = &self.status;
        let secs = started.elapsed().as_secs() as i64;
        status.last_rewrite_secs.store(secs, Ordering::Relaxed);
        status.rewrites.fetch_add(1, Ordering::Relaxed);
        match &result {
            Ok(()) => {
                status.base_size.store(bytes.len() as u64, Ordering::Relaxed);
                status.last_save_unix.store(crate::server::unix_ms() / 1000, Ordering::Relaxed);
                status.last_rewrite_ok.store(true, Ordering::Relaxed);
                info!(
                    keys,
                    bytes = bytes.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "wrote a snapshot of the data directory and dropped the log it covers"
                );
            }
            Err(e) => {
                status.log_size.fetch_add(self.covered, Ordering::Relaxed);
                status.last_rewrite_ok.store(false, Ordering::Relaxed);
                error!(error = %e, "writing a snapshot failed; the log is kept");
            }
        }
        status.rewrite_in_progress.store(false, Ordering::Release);
        result.map_err(StorageError::Io)
    }
}

/// Deletes the log segments numbered below `next` (a snapshot holds them).
fn remove_segments_before(dir: &Path, next: u64) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if log::parse_segment_name(&name.to_string_lossy()).is_some_and(|n| n < next) {
            std::fs::remove_file(entry.path())?;
        }
    }
    sync_dir(dir)
}
