//! The server as the mesh sees it ([`mesh::Host`]): every method takes the store lock for as long
//! as a copy or an apply takes, and waits for durability after giving it back.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, info};

use super::Server;
use crate::crdt::replica::{Snapshot, Update};
use crate::crdt::{ReplicaId, Timestamp, VersionVector};
use crate::mesh::{Host, HostFuture};

impl Server {
    /// Refuses writes under this replica's own id that it never made: only it writes its history.
    fn refuse_forged(&self, own: Timestamp, claimed: Timestamp, what: &str) -> Result<(), String> {
        if claimed > own {
            return Err(format!(
                "sent {what} under this replica's id stamped {claimed} (ms.counter), later than any write it made ({own})"
            ));
        }
        Ok(())
    }
}

impl Host for Server {
    fn durable_version_vector(&self) -> HostFuture<'_, VersionVector> {
        Box::pin(async move {
            let (vv, seq) = {
                let mut store = self.store.lock();
                (store.replica.version_vector().clone(), store.flush_storage())
            };
            if let Some(seq) = seq {
                self.wait_durable(seq).await;
            }
            vv
        })
    }

    fn version_vector(&self) -> VersionVector {
        self.store.lock().replica.version_vector().clone()
    }

    fn check_claim(&self, peer: ReplicaId, theirs: Timestamp) -> Result<(), String> {
        self.check_own_history(peer, theirs)
    }

    fn apply(&self, updates: Vec<Update>) -> Result<(), String> {
        let mut store = self.store.lock();
        let own = store.replica.version_vector().get(self.replica_id);
        if let Some(forged) = updates.iter().find(|u| u.origin == self.replica_id) {
            self.refuse_forged(own, forged.last_dot().ts, "writes")?;
        }
        for u in updates {
            store.deliver(u);
        }
        let now = self.now_ms();
        self.commit(&mut store, now);
        Ok(())
    }

    fn install(&self, snapshot: Snapshot, encoded: &[u8]) -> Result<(), String> {
        let started = Instant::now();
        let keys: usize = snapshot.dbs.iter().map(|(_, e)| e.len()).sum();
        let mut store = self.store.lock();
        let vv = snapshot.vv.clone();
        let own = store.replica.version_vector().get(self.replica_id);
        self.refuse_forged(own, vv.get(self.replica_id), "a snapshot holding writes")?;
        if store.replica.version_vector().dominates(&vv) {
            // Another peer's snapshot (or the log) already brought all of it.
            debug!(keys, "skipped a snapshot this replica already holds");
            return Ok(());
        }
        // Local writes not yet logged go first: the logs keep the order of application.
        store.log_local_writes();
        if let Some(storage) = &mut store.storage {
            storage.append_installed(encoded);
        }
        store.replica.install(snapshot);
        // What came by snapshot cannot be served from this replica's log.
        store.log.truncated.merge(&vv);
        store.touch_db(None);
        let now = self.now_ms();
        self.commit(&mut store, now);
        drop(store);
        info!(keys, ms = started.elapsed().as_millis() as u64, "installed a snapshot from a peer");
        Ok(())
    }

    fn snapshot(&self) -> HostFuture<'_, (Snapshot, u64)> {
        Box::pin(async move {
            // Copied under the lock (the state is shared, values are not duplicated); serialized
            // by the caller outside it.
            let (snapshot, seq, durable) = {
                let mut store = self.store.lock();
                (store.replica.snapshot(), store.log.end_seq(), store.flush_storage())
            };
            if let Some(d) = durable {
                self.wait_durable(d).await;
            }
            (snapshot, seq)
        })
    }

    fn log_start(&self, sent: &VersionVector, max_missing: usize) -> Option<u64> {
        let store = self.store.lock();
        let first = store.log.first_seq();
        let behind = !sent.dominates(&store.log.truncated) || store.log.missing(first, sent) > max_missing;
        (!behind).then_some(first)
    }

    fn read_log(
        &self,
        cursor: u64,
        sent: &VersionVector,
        peer: ReplicaId,
        max: usize,
    ) -> HostFuture<'_, Option<(Vec<Arc<Update>>, u64)>> {
        // The read clones `Arc`s under the lock: the lock is held for a copy of pointers only.
        let (read, durable) = {
            let mut store = self.store.lock();
            let read = store.log.read(cursor, sent, peer, max);
            let durable = match &read {
                Some((updates, _)) if !updates.is_empty() => store.flush_storage(),
                _ => None,
            };
            (read, durable)
        };
        Box::pin(async move {
            // Nothing leaves for a peer before the data directory holds it (storage/sync.rs).
            if let Some(d) = durable {
                self.wait_durable(d).await;
            }
            read
        })
    }

    fn deliver_publish(&self, channel: Bytes, payload: Bytes) {
        self.pubsub.lock().publish(&channel, &payload);
    }

    fn stable(&self, frontier: &VersionVector, cursor: (usize, usize)) -> (usize, usize) {
        let mut store = self.store.lock();
        if let Some(storage) = &mut store.storage {
            storage.log_stable(frontier);
        }
        store.replica.set_stable(frontier.clone());
        store.log.truncate_acked(frontier);
        store.replica.compact_some(cursor, 2_000)
    }

    fn synced(&self) {
        self.ready.store(true, Ordering::Release);
    }

    fn strong_link(&self, link: crate::mesh::peer::StrongLink) {
        if let Some(strong) = &self.strong {
            strong.serve_link(link);
        }
    }
}
