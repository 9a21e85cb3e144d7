//! The stream CRDT.
//!
//! Entries are keyed by their id (`ms-seq`); a replica in a mesh generates ids in its own residue
//! class of `seq`, so ids generated on different replicas never collide, and reads on any
//! replica merge all entries by id. Consumer groups replicate their creation (and deletion, which
//! wins over a concurrent creation), their `SETID`, and acknowledgements; pending entries and
//! consumers stay on the replica that delivered them (at-least-once across replicas).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::cell::{Cell, Register};
use super::dot::{Dot, VersionVector};
use super::Blob;

/// A stream entry id.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next id after this one.
    pub fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    pub fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamEntry {
    pub fields: Vec<(Blob, Blob)>,
    pub dot: Dot,
}

/// A pending entry of a consumer group (local to this replica).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub consumer: Blob,
    pub delivered_ms: u64,
    pub deliveries: u64,
}

/// A consumer (local to this replica).
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Consumer {
    pub seen_ms: u64,
    pub active_ms: Option<u64>,
}

/// The replicated part of a group's position: set by CREATE and SETID (last writer wins).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupPosition {
    pub last_id: StreamId,
    pub entries_read: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub position: Register<GroupPosition>,
    /// Acknowledged ids, on any replica (grow-only; ids below the first entry are pruned).
    pub acked: BTreeMap<StreamId, ()>,
    /// Local: how far XREADGROUP `>` delivered on this replica.
    #[serde(skip)]
    pub delivered: StreamId,
    #[serde(skip)]
    pub entries_read: Option<i64>,
    #[serde(skip)]
    pub pending: BTreeMap<StreamId, Pending>,
    #[serde(skip)]
    pub consumers: BTreeMap<Blob, Consumer>,
}

impl Group {
    fn new(dot: Dot, position: GroupPosition) -> Group {
        Group {
            delivered: position.last_id,
            entries_read: position.entries_read,
            position: Register::new(dot, position),
            acked: BTreeMap::new(),
            pending: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// The id after which `>` delivers: the furthest of the replicated position and what this
    /// replica already delivered.
    pub fn last_delivered(&self) -> StreamId {
        let replicated = self.position.value().map(|p| p.last_id).unwrap_or_default();
        replicated.max(self.delivered)
    }
}

#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct StreamPart {
    /// Writes asserting the stream exists (an empty stream is still a key).
    pub alive: Register<()>,
    pub entries: BTreeMap<StreamId, StreamEntry>,
    /// The greatest id ever added (or set by XSETID); its writes merge by maximum.
    pub last_id: Register<StreamId>,
    pub max_deleted: Register<StreamId>,
    pub entries_added: Cell<i64>,
    pub groups: BTreeMap<Blob, Group>,
    /// Group deletions not yet known to be stable: a creation that did not observe one is
    /// discarded (deletion wins).
    pub group_deletes: BTreeMap<Blob, Vec<Dot>>,
}

fn max_of(reg: &Register<StreamId>) -> StreamId {
    reg.writes().iter().map(|w| w.value).max().unwrap_or_default()
}

impl StreamPart {
    pub fn last_id(&self) -> StreamId {
        max_of(&self.last_id).max(self.entries.keys().next_back().copied().unwrap_or_default())
    }

    pub fn max_deleted_id(&self) -> StreamId {
        max_of(&self.max_deleted)
    }

    pub fn entries_added(&self) -> i64 {
        self.entries_added.reg.value().copied().unwrap_or(0) + self.entries_added.sum().int
    }

    pub fn is_empty(&self) -> bool {
        self.alive.is_empty() && self.entries.is_empty()
    }

    pub fn max_dot(&self) -> Option<Dot> {
        let e = self.entries.values().map(|e| e.dot).max();
        self.alive.max_dot().max(e)
    }

    pub fn add(
        &mut self,
        id: StreamId,
        fields: Vec<(Blob, Blob)>,
        dot: Dot,
        ctx: &VersionVector,
        stable: &VersionVector,
    ) {
        self.alive.assign(dot, (), ctx);
        // The same explicit id added concurrently on two replicas: the greater dot wins.
        match self.entries.get(&id) {
            Some(existing) if existing.dot > dot => {}
            _ => {
                self.entries.insert(id, StreamEntry { fields, dot });
            }
        }
        let top = max_of(&self.last_id).max(id);
        self.last_id.assign(dot, top, ctx);
        self.entries_added.increment(dot, super::cell::Delta::int(1), stable);
    }

    pub fn delete(&mut self, ids: &[StreamId], dot: Dot, ctx: &VersionVector) {
        let mut max_deleted = max_of(&self.max_deleted);
        for id in ids {
            if self.entries.remove(id).is_some() {
                max_deleted = max_deleted.max(*id);
            }
        }
        if max_deleted > max_of(&self.max_deleted) {
            self.max_deleted.assign(dot, max_deleted, ctx);
        }
    }

    pub fn set_id(
        &mut self,
        last: StreamId,
        entries_added: Option<i64>,
        max_deleted: Option<StreamId>,
        dot: Dot,
        ctx: &VersionVector,
    ) {
        self.alive.assign(dot, (), ctx);
        self.last_id.assign(dot, last, ctx);
        if let Some(n) = entries_added {
            self.entries_added.assign(dot, n, ctx);
        }
        if let Some(m) = max_deleted {
            self.max_deleted.assign(dot, m, ctx);
        }
    }

    pub fn create_group(&mut self, name: &[u8], position: GroupPosition, dot: Dot, ctx: &VersionVector) {
        if let Some(dels) = self.group_deletes.get(name) {
            if dels.iter().any(|d| !ctx.covers(*d)) {
                return; // a deletion this creation did not observe wins
            }
        }
        self.alive.assign(dot, (), ctx);
        match self.groups.get_mut(name) {
            Some(g) => g.position.assign(dot, position, ctx),
            None => {
                self.groups.insert(Blob::from_slice(name), Group::new(dot, position));
            }
        }
    }

    pub fn destroy_group(&mut self, name: &[u8], dot: Dot, ctx: &VersionVector) {
        self.groups.remove(name);
        let dels = self.group_deletes.entry(Blob::from_slice(name)).or_default();
        dels.retain(|d| !ctx.covers(*d));
        dels.push(dot);
    }

    pub fn set_group_id(&mut self, name: &[u8], position: GroupPosition, dot: Dot, ctx: &VersionVector) {
        if let Some(g) = self.groups.get_mut(name) {
            g.delivered = position.last_id;
            g.entries_read = position.entries_read;
            g.position.assign(dot, position, ctx);
        }
    }

    pub fn ack(&mut self, name: &[u8], ids: &[StreamId]) {
        let first = self.entries.keys().next().copied();
        if let Some(g) = self.groups.get_mut(name) {
            for id in ids {
                g.pending.remove(id);
                if first.is_some_and(|f| *id >= f) {
                    g.acked.insert(*id, ());
                }
            }
        }
    }

    /// DEL and overwrites: what the writer observed goes.
    pub fn remove_covered(&mut self, ctx: &VersionVector) {
        self.alive.remove_covered(ctx);
        self.entries.retain(|_, e| !ctx.covers(e.dot));
        self.last_id.remove_covered(ctx);
        self.max_deleted.remove_covered(ctx);
        self.entries_added.remove_covered(ctx);
        self.groups.retain(|_, g| {
            g.position.remove_covered(ctx);
            !g.position.is_empty()
        });
    }

    pub fn compact(&mut self, stable: &VersionVector) {
        self.entries_added.compact(stable);
        self.group_deletes.retain(|_, dels| {
            dels.retain(|d| !stable.covers(*d));
            !dels.is_empty()
        });
        let first = self.entries.keys().next().copied().unwrap_or(StreamId::MAX);
        for g in self.groups.values_mut() {
            g.acked.retain(|id, _| *id >= first);
        }
    }

    pub fn join(&mut self, other: &StreamPart, my_ctx: &VersionVector, other_ctx: &VersionVector) {
        self.alive.join(&other.alive, my_ctx, other_ctx);
        self.entries.retain(|id, e| match other.entries.get(id) {
            Some(o) => {
                if o.dot > e.dot {
                    *e = o.clone();
                }
                true
            }
            None => !other_ctx.covers(e.dot),
        });
        for (id, e) in &other.entries {
            if !self.entries.contains_key(id) && !my_ctx.covers(e.dot) {
                self.entries.insert(*id, e.clone());
            }
        }
        self.last_id.join(&other.last_id, my_ctx, other_ctx);
        self.max_deleted.join(&other.max_deleted, my_ctx, other_ctx);
        self.entries_added.join_with(&other.entries_added, my_ctx, other_ctx, |_, _| {});
        for (name, dels) in &other.group_deletes {
            let mine = self.group_deletes.entry(name.clone()).or_default();
            for d in dels {
                if !mine.contains(d) {
                    mine.push(*d);
                }
            }
            mine.sort();
        }
        let names: Vec<Blob> = self.groups.keys().chain(other.groups.keys()).cloned().collect();
        for name in names {
            let deleted_unseen = |ctx: &VersionVector| {
                self.group_deletes.get(&name).is_some_and(|d| d.iter().any(|d| !ctx.covers(*d)))
            };
            let (mine_lost, theirs_lost) = (deleted_unseen(my_ctx), deleted_unseen(other_ctx));
            let theirs = other.groups.get(&name).filter(|_| !theirs_lost);
            let mine_present = self.groups.contains_key(&name) && !mine_lost;
            if !mine_present {
                self.groups.remove(&name);
            }
            match (self.groups.get_mut(&name), theirs) {
                (Some(g), Some(t)) => {
                    g.position.join(&t.position, my_ctx, other_ctx);
                    g.acked.extend(t.acked.iter().map(|(k, v)| (*k, *v)));
                }
                (None, Some(t)) => {
                    let mut g = t.clone();
                    g.pending.clear();
                    g.consumers.clear();
                    self.groups.insert(name.clone(), g);
                }
                _ => {}
            }
            if self.groups.get(&name).is_some_and(|g| g.position.is_empty()) {
                self.groups.remove(&name);
            }
        }
    }

    /// The replicated state in canonical bytes (for the digest).
    pub fn digest_into(&self, put: &mut dyn FnMut(&[u8])) {
        put(self.last_id().to_string().as_bytes());
        for (id, e) in &self.entries {
            put(id.to_string().as_bytes());
            for (f, v) in &e.fields {
                put(f);
                put(v);
            }
        }
        for (name, g) in &self.groups {
            put(name);
            if let Some(p) = g.position.winner() {
                put(p.value.last_id.to_string().as_bytes());
            }
            for id in g.acked.keys() {
                put(id.to_string().as_bytes());
            }
        }
    }
}
