//! The server's side of the data directory (`--data-dir`, see `storage/`): waiting until what a
//! reply or a peer message acknowledges is durable, compaction, refusing writes while the log
//! cannot be written, and the check at a handshake that no peer holds writes of ours that the
//! data directory lost.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use super::Server;
use crate::config::Config;
use crate::crdt::replica::Update;
use crate::crdt::{Clock, Replica, ReplicaId, Timestamp, VersionVector};
use crate::storage::Storage;

/// The error for writes while the data directory's log cannot be written (Redis's wording).
pub const MISCONF: &str =
    "MISCONF Errors writing to the AOF file (the append-only log in --data-dir): writes are refused until it works again, see the replica's log";

/// What a server starts from: the replica recovered from `--data-dir`, or a new one.
pub struct Start {
    pub replica: Replica,
    pub storage: Option<Storage>,
    /// This replica's own newest write the data directory gave back (None: a new member).
    pub recovered_own: Option<Timestamp>,
    /// Updates replayed from the log, in order, and what came by snapshot instead (to seed the
    /// replication log).
    pub replayed: Vec<Update>,
    pub snapshotted: VersionVector,
}

impl Start {
    pub fn open(config: &Config) -> std::io::Result<Start> {
        let Some(dir) = &config.data_dir else {
            // The clock reads the skewed time itself (`now_ms` adds the offset): no second skew.
            return Ok(Start {
                replica: Replica::new(rand::random::<u64>() | 1, Clock::new(0)),
                storage: None,
                recovered_own: None,
                replayed: Vec::new(),
                snapshotted: VersionVector::new(),
            });
        };
        let opts = crate::storage::recover::Options {
            database: config.database.clone(),
            policy: config.appendfsync,
            rewrite_min: config.aof_rewrite_min_size,
            standalone: !crate::mesh::Mesh::wanted(config),
        };
        let r = crate::storage::recover::open(dir, &opts).map_err(|e| {
            std::io::Error::other(format!("cannot open the data directory {}: {e}", dir.display()))
        })?;
        let recovered_own = r.resumed.then(|| r.replica.version_vector().get(r.replica.id));
        Ok(Start {
            replica: r.replica,
            storage: Some(r.storage),
            recovered_own,
            replayed: r.updates,
            snapshotted: r.snapshotted,
        })
    }
}

impl Server {
    /// Writing or fsyncing the data directory's log fails (under everysec/no; always exits):
    /// writes are refused, as Redis refuses them, until the log works again, rather than
    /// acknowledged while piling up in memory.
    pub fn log_failing(&self) -> bool {
        self.storage_status.as_ref().is_some_and(|s| s.write_failed.load(Ordering::Relaxed))
            || self.durability.as_ref().is_some_and(|d| d.failed.load(Ordering::Relaxed))
    }

    /// Waits until the data directory holds record `seq` as `--appendfsync` promises before an
    /// acknowledgement (immediately without a data directory or under everysec/no).
    pub async fn wait_durable(&self, seq: u64) {
        if let Some(d) = &self.durability {
            d.wait(seq).await;
        }
    }

    /// Makes everything applied so far as durable as an acknowledgement needs (for replies
    /// that another connection's command produced, such as a served BLPOP).
    pub async fn durable_barrier(&self) {
        let seq = self.store.lock().flush_storage();
        if let Some(seq) = seq {
            self.wait_durable(seq).await;
        }
    }

    /// Starts compacting the data directory's log into a snapshot: the state is copied under
    /// the store lock (as for a peer's snapshot), written on a blocking thread. False if a
    /// rewrite is already running; an error without a data directory.
    pub fn start_rewrite(&self) -> Result<bool, String> {
        let job = self.store.lock().begin_rewrite()?;
        match job {
            Some(job) => {
                tokio::task::spawn_blocking(move || job.run());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Checks, at a handshake, what a peer claims to hold of this replica's own writes (`theirs`,
    /// its version vector's entry for our id). A claim this replica cannot account for is
    /// refused, never acted on: no peer can make a replica delete, truncate or roll back its
    /// data directory (docs/durability.md, "What a peer can and cannot do").
    ///
    /// Two claims conflict with this replica's history:
    /// - writes stamped later than anything it holds: it never made them;
    /// - writes stamped after what its data directory gave back (`recovered_own`) and before
    ///   this process's first write: the previous life made them and the directory lost them (a
    ///   volume restored from an older copy, or a host crash under `appendfsync everysec`/`no`).
    ///   Writing on would start a second history under this id, which no peer could apply.
    ///
    /// Either way the caller quarantines the member. If the directory really is behind, a
    /// person sets it aside (`syncmesh-replica check-data DIR --set-aside`) and the replica
    /// rejoins as a new member, which gets everything back from its peers.
    pub fn check_own_history(&self, peer: ReplicaId, theirs: Timestamp) -> Result<(), String> {
        let store = self.store.lock();
        if let Some(recovered) = self.recovered_own {
            let first_new = store.replica.first_write().unwrap_or(Timestamp(u64::MAX));
            if theirs > recovered && theirs < first_new {
                return Err(format!(
                    "member {peer:016x} holds writes of this replica up to {theirs} (ms.counter) that its data directory does not hold (it gave back writes up to {recovered}): the directory was restored from an older copy, lost its last writes, or the member lies"
                ));
            }
        }
        let holds = store.replica.version_vector().get(store.replica.id);
        if theirs > holds {
            return Err(format!(
                "member {peer:016x} claims writes of this replica up to {theirs} (ms.counter), but this replica made writes up to {holds} only"
            ));
        }
        Ok(())
    }
}

/// Every second: hand buffered log records to the OS (records nobody waited for, such as the
/// stability frontier) and start a rewrite when the log has outgrown its snapshot.
pub async fn storage_loop(server: Arc<Server>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut shutdown = server.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let wants = {
            let mut store = server.store.lock();
            store.flush_storage();
            store.storage.as_ref().is_some_and(|s| s.wants_rewrite())
        };
        if wants {
            if let Err(e) = server.start_rewrite() {
                warn!(error = %e, "could not start compacting the append-only log");
            }
        }
    }
}
