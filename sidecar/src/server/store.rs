//! The store: the replica's CRDT state plus what the server tracks about keys around it —
//! clients watching keys for `WATCH`, and counters for `INFO`. Every local write goes through
//! [`Store::write`], so nothing that changes a key can forget to wake a watcher.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::client::ClientInfo;
use crate::crdt::replica::{Delivery, Update};
use crate::crdt::{Blob, Effect, Op, Replica};
use crate::mesh::log::ReplicationLog;
use crate::resp::Protocol;

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
    /// `(db, key)` → clients blocked on it, first come first served.
    waiters: HashMap<(usize, Blob), VecDeque<Arc<Waiter>>>,
    /// Keys with waiters that were written since the waiters were last served.
    pub ready: Vec<(usize, Blob)>,
    next_waiter: u64,
    /// Updates applied here, for peers (only when in a mesh).
    pub log: ReplicationLog,
    /// Updates from peers that arrived before something they depend on.
    pending: Vec<Update>,
    /// The data directory's log, when there is one: every applied change is appended to it.
    pub storage: Option<crate::storage::Storage>,
    /// The Lua state scripts run in (used only under the store lock, like the rest).
    pub scripting: crate::scripting::Engine,
    /// Bumped whenever the function libraries' keyspace changes (the engine recompiles).
    pub functions_version: u64,
}

/// A client blocked in BLPOP, XREAD BLOCK, …: the command to retry when one of its keys changes.
pub struct Waiter {
    pub id: u64,
    pub client: Arc<ClientInfo>,
    pub db: usize,
    pub proto: Protocol,
    pub args: Vec<Bytes>,
    pub keys: Vec<Blob>,
    pub reply: Mutex<Option<oneshot::Sender<BytesMut>>>,
}

impl Store {
    pub fn new(replica: Replica) -> Store {
        Store::with_scripting(replica, crate::scripting::Engine::new(Default::default(), 0))
    }

    pub fn with_scripting(replica: Replica, scripting: crate::scripting::Engine) -> Store {
        Store {
            replica,
            stats: StoreStats::default(),
            watchers: HashMap::new(),
            waiters: HashMap::new(),
            ready: Vec::new(),
            next_waiter: 1,
            log: ReplicationLog::new(64 * 1024 * 1024),
            pending: Vec::new(),
            storage: None,
            scripting,
            functions_version: 0,
        }
    }

    /// Applies a local write; returns its dot.
    pub fn write(&mut self, op: Op, now: u64) -> crate::crdt::Dot {
        if op.effect == Effect::Flush {
            self.touch_db(Some(op.db as usize));
        } else {
            self.touch(op.db as usize, &op.key);
        }
        self.stats.writes += 1;
        self.replica.write(op, now)
    }

    /// Moves the writes of the command that just ran into the data directory's log and the
    /// replication log; true if the replication log grew.
    pub fn log_local_writes(&mut self) -> bool {
        if self.replica.is_solo() {
            // Alone, writes are not recorded for peers: a member that turns up later gets a
            // snapshot, since the log does not reach back to them.
            let id = self.replica.id;
            let mine = crate::crdt::Dot::new(id, self.replica.version_vector().get(id));
            self.log.truncated.observe(mine);
        }
        let Some(u) = self.replica.take_update() else { return false };
        if let Some(storage) = &mut self.storage {
            storage.append_update(&u);
        }
        if !self.replica.is_replicated() || self.replica.is_solo() {
            // No member to stream to (the update was recorded for the disk only): a member that
            // turns up later gets a snapshot, since the log does not reach back to it.
            self.log.truncated.observe(u.last_dot());
            return false;
        }
        self.log.append(Arc::new(u));
        true
    }

    /// An update from a peer was applied: it joins both logs.
    fn log_remote(&mut self, u: Update) {
        if let Some(storage) = &mut self.storage {
            storage.append_update(&u);
        }
        self.log.append(Arc::new(u));
    }

    /// Hands the data directory's buffered records to the operating system; returns the
    /// sequence number to wait for (`Durability::wait`) before acknowledging anything applied
    /// so far. None without a data directory.
    pub fn flush_storage(&mut self) -> Option<u64> {
        self.storage.as_mut().map(|s| s.flush())
    }

    /// Starts compacting the data directory's log: copies the state and starts a new segment
    /// (under the store lock, which the caller holds); the returned job writes the snapshot.
    /// None if a compaction is already running.
    pub fn begin_rewrite(&mut self) -> Result<Option<crate::storage::RewriteJob>, String> {
        let Some(storage) = self.storage.as_mut() else {
            return Err("no --data-dir: this replica keeps its data in memory only".into());
        };
        storage.begin_rewrite(&self.replica).map_err(|e| format!("cannot start a log segment: {e}"))
    }

    /// Applies an update from a peer (and any buffered ones it unblocks); watchers and blocked
    /// clients of the keys touched are told, and applied updates join the replication log.
    pub fn deliver(&mut self, update: Update) -> Delivery {
        // Local writes made since the last command (expiry, served waiters) go first: a local
        // update's context must not include remote writes applied after it started.
        self.log_local_writes();
        let result = self.replica.deliver(&update);
        match result {
            Delivery::Applied => {
                self.after_remote(&update);
                self.log_remote(update);
                self.drain_pending();
            }
            Delivery::NotReady => {
                if !self.pending.contains(&update) {
                    self.pending.push(update);
                }
            }
            Delivery::Duplicate => {}
        }
        result
    }

    fn drain_pending(&mut self) {
        loop {
            let mut progressed = false;
            for u in std::mem::take(&mut self.pending) {
                match self.replica.deliver(&u) {
                    Delivery::Applied => {
                        self.after_remote(&u);
                        self.log_remote(u);
                        progressed = true;
                    }
                    Delivery::NotReady => self.pending.push(u),
                    Delivery::Duplicate => {}
                }
            }
            if !progressed {
                return;
            }
        }
    }

    fn after_remote(&mut self, update: &Update) {
        for (_, op) in &update.ops {
            if op.effect == Effect::Flush {
                self.touch_db(Some(op.db as usize));
            } else {
                self.touch(op.db as usize, &op.key);
            }
            self.stats.writes += 1;
        }
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
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

    /// Registers a blocked client on its keys; returns the waiter's id.
    pub fn block(
        &mut self,
        client: Arc<ClientInfo>,
        db: usize,
        proto: Protocol,
        args: Vec<Bytes>,
        keys: Vec<Blob>,
    ) -> (u64, oneshot::Receiver<BytesMut>) {
        let id = self.next_waiter;
        self.next_waiter += 1;
        let (tx, rx) = oneshot::channel();
        let waiter =
            Arc::new(Waiter { id, client, db, proto, args, keys: keys.clone(), reply: Mutex::new(Some(tx)) });
        for k in keys {
            self.waiters.entry((db, k)).or_default().push_back(waiter.clone());
        }
        (id, rx)
    }

    /// Removes a waiter; false if it was no longer registered (it has been served).
    pub fn unblock(&mut self, id: u64) -> bool {
        let mut found = false;
        self.waiters.retain(|_, q| {
            let before = q.len();
            q.retain(|w| w.id != id);
            found |= q.len() != before;
            !q.is_empty()
        });
        found
    }

    /// The clients waiting on a key, in the order they blocked.
    pub fn waiters_on(&self, db: usize, key: &[u8]) -> Vec<Arc<Waiter>> {
        self.waiters
            .get(&(db, Blob::from_slice(key)))
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn blocked_clients(&self) -> usize {
        let mut ids: Vec<u64> = self.waiters.values().flatten().map(|w| w.id).collect();
        ids.sort();
        ids.dedup();
        ids.len()
    }

    /// Marks the transactions watching a key as dirty, and its blocked clients as worth retrying.
    pub fn touch(&mut self, db: usize, key: &[u8]) {
        if db == crate::crdt::replica::FUNCTIONS_DB {
            self.functions_version += 1;
        }
        if !self.waiters.is_empty() {
            let k = (db, Blob::from_slice(key));
            if self.waiters.contains_key(&k) && !self.ready.contains(&k) {
                self.ready.push(k);
            }
        }
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
        if db.is_none_or(|d| d == crate::crdt::replica::FUNCTIONS_DB) {
            self.functions_version += 1;
        }
        let keys: Vec<(usize, Blob)> =
            self.waiters.keys().filter(|(d, _)| db.is_none_or(|x| x == *d)).cloned().collect();
        for k in keys {
            if !self.ready.contains(&k) {
                self.ready.push(k);
            }
        }
        for ((d, _), list) in &self.watchers {
            if db.is_none_or(|x| x == *d) {
                for f in list {
                    f.store(true, Ordering::Release);
                }
            }
        }
    }
}
