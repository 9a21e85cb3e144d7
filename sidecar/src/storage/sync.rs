//! When log records reach the disk: the `--appendfsync` policy.
//!
//! Records are handed to the operating system (`write`) under the store lock, before anything
//! that depends on them leaves the replica (a reply, an update or an ack to a peer): that alone
//! makes them survive a crash of the process. Surviving a crash of the host needs `fsync`, which
//! is slow, so it never runs under the store lock: a dedicated thread does it, and whoever must
//! not go on before it has happened waits for [`Durability::synced`] to pass its record.
//!
//! - `always`: the thread syncs as soon as anything was written. Writers that arrive while a
//!   sync runs are covered by the next one together (group commit), so one `fsync` serves many
//!   pipelined commands and many clients.
//! - `everysec`: the thread syncs once a second if anything was written; nobody waits.
//! - `no`: nobody syncs; the operating system writes back when it likes.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tracing::error;

use crate::config::AppendFsync;

struct Pending {
    /// Records handed to the OS so far (a count: the sequence number of the next one).
    written: u64,
    /// The segment being appended to.
    current: Arc<File>,
    /// Earlier segments that may hold records not yet synced (a rotation just happened).
    retired: Vec<Arc<File>>,
    /// A segment file was created: its directory entry must be synced too.
    dir_dirty: bool,
    stop: bool,
}

pub struct Durability {
    pub policy: AppendFsync,
    dir: PathBuf,
    pending: Mutex<Pending>,
    wake: Condvar,
    synced: watch::Sender<u64>,
    /// The last fsync failed (INFO `aof_last_write_status`).
    pub failed: AtomicBool,
}

impl Durability {
    /// Starts the sync thread (except under `no`).
    pub fn start(policy: AppendFsync, dir: PathBuf, current: Arc<File>, written: u64) -> Arc<Durability> {
        let d = Arc::new(Durability {
            policy,
            dir,
            pending: Mutex::new(Pending {
                written,
                current,
                retired: Vec::new(),
                dir_dirty: false,
                stop: false,
            }),
            wake: Condvar::new(),
            synced: watch::channel(written).0,
            failed: AtomicBool::new(false),
        });
        if policy != AppendFsync::No {
            let worker = d.clone();
            std::thread::Builder::new()
                .name("aof-fsync".into())
                .spawn(move || worker.run())
                .expect("start the append-only log's fsync thread");
        }
        d
    }

    /// Records up to `written` are now with the OS.
    pub fn written(&self, written: u64) {
        let mut p = self.pending.lock().expect("fsync state");
        p.written = written;
        if self.policy == AppendFsync::Always {
            self.wake.notify_one();
        }
    }

    /// A new segment replaces `current`; the old one is synced with the next batch.
    pub fn rotated(&self, new: Arc<File>) {
        let mut p = self.pending.lock().expect("fsync state");
        let old = std::mem::replace(&mut p.current, new);
        if self.policy != AppendFsync::No {
            p.retired.push(old);
            p.dir_dirty = true;
        }
    }

    /// How many records are known to be on stable storage.
    pub fn synced(&self) -> u64 {
        *self.synced.borrow()
    }

    /// Waits until record `seq` (exclusive bound) is durable as the policy promises before an
    /// acknowledgement: synced under `always`, written (which the caller already ensured)
    /// otherwise.
    pub async fn wait(&self, seq: u64) {
        if self.policy != AppendFsync::Always {
            return;
        }
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s >= seq).await;
    }

    pub fn stop(&self) {
        self.pending.lock().expect("fsync state").stop = true;
        self.wake.notify_one();
    }

    fn run(&self) {
        loop {
            let (target, files, dir_dirty) = {
                let mut p = self.pending.lock().expect("fsync state");
                loop {
                    if p.stop {
                        return;
                    }
                    if p.written > self.synced() || p.dir_dirty {
                        break;
                    }
                    p = match self.policy {
                        AppendFsync::Always => self.wake.wait(p).expect("fsync state"),
                        _ => self.wake.wait_timeout(p, Duration::from_secs(1)).expect("fsync state").0,
                    };
                }
                let mut files = std::mem::take(&mut p.retired);
                files.push(p.current.clone());
                (p.written, files, std::mem::take(&mut p.dir_dirty))
            };
            let result = files.iter().try_for_each(|f| f.sync_data()).and_then(|_| {
                if dir_dirty {
                    super::sync_dir(&self.dir)
                } else {
                    Ok(())
                }
            });
            match result {
                Ok(()) => {
                    self.failed.store(false, Ordering::Relaxed);
                    self.synced.send_replace(target);
                }
                Err(e) if self.policy == AppendFsync::Always => {
                    // Writes are waiting to be acknowledged as durable and cannot be: stop, as
                    // Redis does, rather than acknowledge what is not on disk.
                    error!(error = %e, "fsync of the append-only log failed under appendfsync always: exiting");
                    std::process::exit(1);
                }
                Err(e) => {
                    error!(error = %e, "fsync of the append-only log failed; retrying in a second");
                    self.failed.store(true, Ordering::Relaxed);
                    let mut p = self.pending.lock().expect("fsync state");
                    let current = p.current.clone();
                    p.retired.extend(files.into_iter().filter(|f| !Arc::ptr_eq(f, &current)));
                    p.dir_dirty |= dir_dirty;
                    drop(p);
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}
