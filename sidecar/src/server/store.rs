//! The store: the replica's CRDT state plus what the server tracks about keys around it —
//! clients watching keys for `WATCH`, and counters for `INFO`. Every local write goes through
//! [`Store::write`], so nothing that changes a key can forget to wake a watcher.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::crdt::replica::{Delivery, Update};
use crate::crdt::{Blob, Effect, Op, Replica};

#[derive(Debug, Default, Clone)]
pub struct StoreStats {
    pub expired_keys: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    /// Writes applied since start (local and remote).
    pub writes: u64,
}

pub struct Store {
    pub replica: Replica,
    pub stats: StoreStats,
    /// `(db, key)` → dirty flags of the transactions watching it.
    watchers: HashMap<(usize, Blob), Vec<Arc<AtomicBool>>>,
}

impl Store {
    pub fn new(replica: Replica) -> Store {
        Store { replica, stats: StoreStats::default(), watchers: HashMap::new() }
    }

    /// Applies a local write.
    pub fn write(&mut self, op: Op, now: u64) {
        self.touch(op.db as usize, &op.key);
        self.stats.writes += 1;
        self.replica.write(op, now);
    }

    /// Applies an update from a peer; watchers of the keys it touches are told.
    pub fn deliver(&mut self, update: &Update) -> Delivery {
        let result = self.replica.deliver(update);
        if result == Delivery::Applied {
            for (_, op) in &update.ops {
                self.touch(op.db as usize, &op.key);
                self.stats.writes += 1;
            }
        }
        result
    }

    /// Deletes a key whose deadline has passed.
    pub fn expire_key(&mut self, db: usize, key: &[u8], now: u64) {
        self.write(Op { db: db as u8, key: Blob::from_slice(key), effect: Effect::Delete }, now);
        self.stats.expired_keys += 1;
    }

    pub fn watch(&mut self, db: usize, key: &[u8], flag: &Arc<AtomicBool>) {
        self.watchers.entry((db, Blob::from_slice(key))).or_default().push(flag.clone());
    }

    pub fn unwatch(&mut self, keys: &[(usize, Blob)], flag: &Arc<AtomicBool>) {
        for k in keys {
            if let Some(list) = self.watchers.get_mut(k) {
                list.retain(|f| !Arc::ptr_eq(f, flag));
                if list.is_empty() {
                    self.watchers.remove(k);
                }
            }
        }
    }

    /// Marks the transactions watching a key as dirty.
    pub fn touch(&mut self, db: usize, key: &[u8]) {
        if self.watchers.is_empty() {
            return;
        }
        if let Some(list) = self.watchers.get(&(db, Blob::from_slice(key))) {
            for f in list {
                f.store(true, Ordering::Release);
            }
        }
    }

    /// Marks every watcher of a database (or all databases) dirty: `FLUSHDB`, `FLUSHALL`, `SWAPDB`.
    pub fn touch_db(&mut self, db: Option<usize>) {
        for ((d, _), list) in &self.watchers {
            if db.is_none_or(|x| x == *d) {
                for f in list {
                    f.store(true, Ordering::Release);
                }
            }
        }
    }
}
