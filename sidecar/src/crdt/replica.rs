//! One replica's whole state, and the two ways it changes: local writes and updates delivered
//! from peers.

use serde::{Deserialize, Serialize};

use super::clock::{Clock, Timestamp};
use super::dot::{Dot, ReplicaId, VersionVector};
use super::keyspace::Keyspace;
use super::op::{Effect, Op};

/// Number of logical databases (`SELECT 0`–`15`).
pub const DATABASES: usize = 16;

/// A keyspace past the logical databases that no client selects: function libraries (`FUNCTION
/// LOAD`), one string per library name. Being a keyspace, it replicates, persists and travels in
/// snapshots like the others, with the string register's rule (last writer wins by (HLC,
/// replica id)) for concurrent loads of one name.
pub const FUNCTIONS_DB: usize = DATABASES;

/// The writes of one command or transaction on one replica: the unit a peer applies atomically.
/// `deps` is what the origin had observed before the first write; write `i` has the timestamp
/// `ops[i].0` and observed, in addition, the writes before it in the same update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub origin: ReplicaId,
    pub deps: VersionVector,
    pub ops: Vec<(Timestamp, Op)>,
}

impl Update {
    pub fn last_dot(&self) -> Dot {
        Dot::new(self.origin, self.ops.last().map(|o| o.0).unwrap_or(self.deps.get(self.origin)))
    }
}

/// A replica's whole state, for a new or far-behind peer: every key's CRDT state and the version
/// vector it reflects. Installed with a state-based join, so the receiver keeps its own writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub origin: ReplicaId,
    pub vv: VersionVector,
    pub clock: Timestamp,
    pub dbs: Vec<(u8, Vec<(crate::crdt::Blob, crate::crdt::Entry)>)>,
}

/// What happened to a delivered update.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Applied,
    /// Already applied (a duplicate delivery); nothing changed.
    Duplicate,
    /// Depends on writes not yet delivered here; deliver it again later.
    NotReady,
}

#[derive(Clone, Debug)]
pub struct Replica {
    pub id: ReplicaId,
    pub clock: Clock,
    vv: VersionVector,
    stable: VersionVector,
    /// No peers: every write is stable as soon as it is applied.
    standalone: bool,
    dbs: Vec<Keyspace>,
    /// Local writes since the last `take_update`, when recording is on.
    pending: Option<Update>,
    record: bool,
    /// In a mesh but with no other member known yet: writes are stable at once, as alone.
    solo: bool,
    /// A data directory logs every write: record updates even alone or solo.
    persistent: bool,
    /// The timestamp of the first local write of this process (see `Server::lost_own_writes`).
    first_write: Option<Timestamp>,
}

impl Replica {
    pub fn new(id: ReplicaId, clock: Clock) -> Replica {
        Replica {
            id,
            clock,
            vv: VersionVector::new(),
            stable: VersionVector::new(),
            standalone: true,
            dbs: (0..=FUNCTIONS_DB).map(|_| Keyspace::default()).collect(),
            pending: None,
            record: false,
            solo: false,
            persistent: false,
            first_write: None,
        }
    }

    /// Records local writes as [`Update`]s for peers and the log, and stops treating every write as
    /// stable at once.
    pub fn set_replicated(&mut self, on: bool) {
        self.record = on;
        self.standalone = !on;
    }

    pub fn set_solo(&mut self, solo: bool) {
        self.solo = solo;
    }

    pub fn is_replicated(&self) -> bool {
        self.record
    }

    /// The timestamp of the first write made by this replica object (None before any).
    pub fn first_write(&self) -> Option<Timestamp> {
        self.first_write
    }

    pub fn is_solo(&self) -> bool {
        self.solo
    }

    /// Records every local write as part of an [`Update`] for the data directory's log, whether
    /// or not a peer needs it.
    pub fn set_persistent(&mut self, on: bool) {
        self.persistent = on;
    }

    pub fn db(&self, db: usize) -> &Keyspace {
        &self.dbs[db]
    }

    pub fn db_mut(&mut self, db: usize) -> &mut Keyspace {
        &mut self.dbs[db]
    }

    pub fn version_vector(&self) -> &VersionVector {
        &self.vv
    }

    pub fn stable(&self) -> &VersionVector {
        &self.stable
    }

    /// Advances the causal-stability frontier (computed by the mesh) and compacts what it allows.
    pub fn set_stable(&mut self, stable: VersionVector) {
        self.stable = stable;
    }

    pub fn compact(&mut self) {
        let stable = self.stable.clone();
        for db in &mut self.dbs {
            db.compact(&stable);
        }
    }

    /// Compacts up to `n` entries starting at `cursor` (database, slot); returns the next cursor.
    /// Run a slice at a time so that no client waits for a whole-keyspace sweep.
    pub fn compact_some(&mut self, cursor: (usize, usize), n: usize) -> (usize, usize) {
        let (mut db, mut slot) = cursor;
        let mut budget = n;
        while budget > 0 {
            if db >= self.dbs.len() {
                return (0, 0);
            }
            let done = self.dbs[db].compact_slots(slot, budget, &self.stable);
            budget -= done.min(budget);
            slot += done;
            if slot >= self.dbs[db].slots() {
                db += 1;
                slot = 0;
            }
        }
        (db, slot)
    }

    /// Applies a local write and returns its dot.
    pub fn write(&mut self, mut op: Op, wall_ms: u64) -> Dot {
        let ts = self.clock.tick(wall_ms);
        self.first_write.get_or_insert(ts);
        let dot = Dot::new(self.id, ts);
        // Positions of new list elements are chosen before the write has its dot: their
        // placeholder `Dot::default()` means "this write".
        if let Effect::ListInsert { items } = &mut op.effect {
            for (position, _) in items.iter_mut() {
                for entry in position.0.iter_mut() {
                    if entry.1 == Dot::default() {
                        entry.1 = dot;
                    }
                }
            }
        }
        if self.standalone || self.solo {
            self.stable.observe(dot);
        }
        // Alone in a mesh nobody needs the update: a member that turns up gets a snapshot. The
        // data directory needs it all the same.
        if (self.record && !self.solo) || self.persistent {
            let pending = self.pending.get_or_insert_with(|| Update {
                origin: self.id,
                deps: self.vv.clone(),
                ops: Vec::new(),
            });
            pending.ops.push((ts, op.clone()));
        }
        self.dbs[op.db as usize].apply(&op.key, &op.effect, dot, &self.vv, &self.stable);
        self.vv.observe(dot);
        dot
    }

    /// The local writes since the last call, as one update.
    pub fn take_update(&mut self) -> Option<Update> {
        self.pending.take()
    }

    /// Applies an update from a peer if it is causally ready.
    pub fn deliver(&mut self, update: &Update) -> Delivery {
        let origin = update.origin;
        let seen = self.vv.get(origin);
        let last = update.last_dot().ts;
        if update.ops.is_empty() || last <= seen {
            return Delivery::Duplicate;
        }
        if seen != update.deps.get(origin)
            || !update.deps.iter().all(|(r, t)| r == origin || self.vv.get(r) >= t)
        {
            return Delivery::NotReady;
        }
        let mut ctx = update.deps.clone();
        for (ts, op) in &update.ops {
            let dot = Dot::new(origin, *ts);
            self.clock.observe(*ts);
            self.dbs[op.db as usize].apply(&op.key, &op.effect, dot, &ctx, &self.stable);
            ctx.observe(dot);
            self.vv.observe(dot);
        }
        Delivery::Applied
    }

    /// State-based join with another replica's full state (snapshots, tests).
    pub fn join(&mut self, other: &Replica) {
        for (mine, theirs) in self.dbs.iter_mut().zip(&other.dbs) {
            mine.join(theirs, &self.vv, &other.vv);
        }
        self.vv.merge(&other.vv);
        self.clock.observe(other.clock.last());
    }

    pub fn snapshot(&self) -> Snapshot {
        let dbs = self
            .dbs
            .iter()
            .enumerate()
            .filter(|(_, db)| db.slots() > 0)
            .map(|(i, db)| (i as u8, db.iter().map(|(k, e)| (k.clone(), e.clone())).collect()))
            .collect();
        Snapshot { origin: self.id, vv: self.vv.clone(), clock: self.clock.last(), dbs }
    }

    /// Joins a peer's snapshot into this replica.
    pub fn install(&mut self, snapshot: Snapshot) {
        if self.vv.is_empty() && self.dbs.iter().all(|db| db.slots() == 0) {
            // A fresh replica adopts the state as it is: no join needed.
            self.vv = snapshot.vv;
            self.clock.observe(snapshot.clock);
            for (db, entries) in snapshot.dbs {
                if let Some(ks) = self.dbs.get_mut(db as usize) {
                    *ks = Keyspace::from_entries(entries);
                }
            }
            return;
        }
        let mut other = Replica::new(snapshot.origin, Clock::resume(snapshot.clock, 0));
        other.vv = snapshot.vv;
        for (db, entries) in snapshot.dbs {
            if let Some(ks) = other.dbs.get_mut(db as usize) {
                *ks = Keyspace::from_entries(entries);
            }
        }
        self.join(&other);
    }

    /// Digest of everything clients can see (see `SYNCMESH.DIGEST`).
    pub fn digest(&self, now_ms: u64) -> u128 {
        self.dbs
            .iter()
            .enumerate()
            .map(|(i, db)| {
                let d = db.digest(now_ms);
                if d == 0 {
                    0
                } else {
                    let mut buf = [0u8; 17];
                    buf[0] = i as u8;
                    buf[1..].copy_from_slice(&d.to_le_bytes());
                    xxhash_rust::xxh3::xxh3_128(&buf)
                }
            })
            .fold(0u128, |a, b| a.wrapping_add(b))
    }
}
