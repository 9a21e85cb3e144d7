//! The stream CRDT.
//!
//! Entries are keyed by their id (`ms-seq`); reads on any replica merge all entries by id. The
//! same explicit id added concurrently on two replicas keeps the version with the greater dot
//! (the other stays hidden until a delete observes it). `*` ids come from each replica's clock,
//! so two replicas adding in the same millisecond can pick the same id (documented). Consumer
//! groups replicate their creation (and deletion, which
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
    /// Versions of the same explicit id added concurrently on other replicas (they lost to
    /// `dot` but stay until a delete observes them, so every replica ends the same).
    #[serde(default)]
    pub shadowed: Vec<(Dot, Vec<(Blob, Blob)>)>,
}

impl StreamEntry {
    /// Drops the versions `ctx` covers; false when none is left.
    fn remove_covered(&mut self, ctx: &VersionVector) -> bool {
        self.shadowed.retain(|(d, _)| !ctx.covers(*d));
        if ctx.covers(self.dot) {
            match self.shadowed.iter().enumerate().max_by_key(|(_, (d, _))| *d).map(|(i, _)| i) {
                None => return false,
                Some(i) => {
                    let (d, f) = self.shadowed.swap_remove(i);
                    self.dot = d;
                    self.fields = f;
                }
            }
        }
        true
    }
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

/// A group as snapshots and the log hold it: the replicated part. Read back, the local part
/// starts where the replicated position is, as for a group just created (see [`Group::new`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "GroupRepr")]
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

#[derive(Deserialize)]
struct GroupRepr {
    position: Register<GroupPosition>,
    acked: BTreeMap<StreamId, ()>,
}

impl From<GroupRepr> for Group {
    fn from(r: GroupRepr) -> Group {
        let (delivered, entries_read) =
            r.position.value().map(|p| (p.last_id, p.entries_read)).unwrap_or_default();
        Group {
            position: r.position,
            acked: r.acked,
            delivered,
            entries_read,
            pending: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }
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
        match self.entries.get_mut(&id) {
            None => {
                self.entries.insert(id, StreamEntry { fields, dot, shadowed: vec![] });
            }
            Some(existing) => {
                if !existing.remove_covered(ctx) {
                    *existing = StreamEntry { fields, dot, shadowed: vec![] };
                } else if existing.dot > dot {
                    existing.shadowed.push((dot, fields));
                } else {
                    let old = std::mem::replace(existing, StreamEntry { fields, dot, shadowed: vec![] });
                    existing.shadowed = old.shadowed;
                    existing.shadowed.push((old.dot, old.fields));
                }
            }
        }
        // The write's own id only: what a replica applies must not depend on its state. (IDs
        // only grow, so the greatest value among the concurrent writes kept is the top.)
        self.last_id.assign(dot, id, ctx);
        self.entries_added.increment(dot, super::cell::Delta::int(1), stable);
    }

    /// XDEL/XTRIM. `max_deleted` is the writer's new maximum deleted id (computed where the
    /// command ran, so that every replica applies the same thing).
    pub fn delete(&mut self, ids: &[StreamId], max_deleted: StreamId, dot: Dot, ctx: &VersionVector) {
        // What the deleting replica saw of each id goes; a concurrent re-add of the id stays.
        for id in ids {
            if let Some(e) = self.entries.get_mut(id) {
                if !e.remove_covered(ctx) {
                    self.entries.remove(id);
                }
            }
        }
        self.max_deleted.assign(dot, max_deleted, ctx);
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
        // The stream exists either way (XGROUP CREATE MKSTREAM), even if the group loses.
        self.alive.assign(dot, (), ctx);
        if let Some(dels) = self.group_deletes.get(name) {
            if dels.iter().any(|d| !ctx.covers(*d)) {
                return; // a deletion this creation did not observe wins
            }
        }
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

    /// XACK: applies to the group the acknowledging replica saw (not to a group of the same
    /// name created again since).
    pub fn ack(&mut self, name: &[u8], ids: &[StreamId], ctx: &VersionVector) {
        if let Some(g) =
            self.groups.get_mut(name).filter(|g| g.position.writes().iter().any(|w| ctx.covers(w.dot)))
        {
            for id in ids {
                g.pending.remove(id);
                g.acked.insert(*id, ());
            }
        }
    }

    /// DEL and overwrites: what the writer observed goes.
    pub fn remove_covered(&mut self, ctx: &VersionVector) {
        self.alive.remove_covered(ctx);
        self.entries.retain(|_, e| e.remove_covered(ctx));
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
        // Acks are kept with their group (an id can come back: a concurrent XADD of the same
        // explicit id on another replica), and go when the group or the stream does.
    }

    pub fn join(&mut self, other: &StreamPart, my_ctx: &VersionVector, other_ctx: &VersionVector) {
        self.alive.join(&other.alive, my_ctx, other_ctx);
        // Per id, the versions either side keeps that the other has not seen removed.
        let ids: Vec<StreamId> = self.entries.keys().chain(other.entries.keys()).copied().collect();
        for id in ids {
            let versions = |e: Option<&StreamEntry>| -> Vec<(Dot, Vec<(Blob, Blob)>)> {
                e.map(|e| {
                    std::iter::once((e.dot, e.fields.clone())).chain(e.shadowed.iter().cloned()).collect()
                })
                .unwrap_or_default()
            };
            let mine = versions(self.entries.get(&id));
            let theirs = versions(other.entries.get(&id));
            let mut kept: Vec<(Dot, Vec<(Blob, Blob)>)> = mine
                .iter()
                .filter(|(d, _)| theirs.iter().any(|(t, _)| t == d) || !other_ctx.covers(*d))
                .cloned()
                .collect();
            for (d, f) in &theirs {
                if !kept.iter().any(|(k, _)| k == d) && !my_ctx.covers(*d) {
                    kept.push((*d, f.clone()));
                }
            }
            kept.sort_by_key(|(d, _)| *d);
            match kept.pop() {
                None => {
                    self.entries.remove(&id);
                }
                Some((dot, fields)) => {
                    self.entries.insert(id, StreamEntry { fields, dot, shadowed: kept });
                }
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
            // Acks of entries that are gone make no difference to anyone.
            for id in g.acked.keys().filter(|id| self.entries.contains_key(id)) {
                put(id.to_string().as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_read_back_starts_at_its_replicated_position() {
        let dot = Dot::new(1, crate::crdt::Timestamp(10));
        let position = GroupPosition { last_id: StreamId::new(5, 1), entries_read: Some(3) };
        let mut g = Group::new(dot, position);
        g.pending.insert(
            StreamId::new(5, 1),
            Pending { consumer: Blob::from_slice(b"c"), delivered_ms: 1, deliveries: 1 },
        );
        let back: Group = bincode::deserialize(&bincode::serialize(&g).unwrap()).unwrap();
        assert_eq!((back.delivered, back.entries_read), (StreamId::new(5, 1), Some(3)));
        assert!(back.pending.is_empty() && back.consumers.is_empty(), "local to the replica: not kept");
        assert_eq!(back.position, g.position);
    }
}
