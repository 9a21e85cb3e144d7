//! The replication log: every update this replica applied (its own and relayed ones), in the
//! order it applied them, which is a causal order. Peers are streamed the entries they lack;
//! entries every member has acknowledged are dropped, and so are the oldest when the log passes
//! its size cap (a peer that needed them gets a snapshot instead).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::crdt::replica::Update;
use crate::crdt::{Effect, ReplicaId, VersionVector};

pub struct ReplicationLog {
    entries: VecDeque<(Arc<Update>, usize)>,
    /// Sequence number of `entries[0]`.
    first_seq: u64,
    bytes: usize,
    cap_bytes: usize,
    /// Everything dropped from the front: a peer whose version vector does not cover this needs
    /// a snapshot.
    pub truncated: VersionVector,
}

fn size_of(u: &Update) -> usize {
    64 + u
        .ops
        .iter()
        .map(|(_, op)| {
            op.key.len()
                + match &op.effect {
                    Effect::Assign { value, .. } => value.len(),
                    Effect::HashSet { fields } => fields.iter().map(|(f, v)| f.len() + v.len()).sum(),
                    Effect::SetAdd { members } | Effect::SetRem { members } => {
                        members.iter().map(|m| m.len()).sum()
                    }
                    Effect::ListInsert { items } => items.iter().map(|(_, v)| v.len() + 32).sum(),
                    Effect::StreamAdd { fields, .. } => fields.iter().map(|(f, v)| f.len() + v.len()).sum(),
                    _ => 32,
                }
        })
        .sum::<usize>()
}

impl ReplicationLog {
    pub fn new(cap_bytes: usize) -> ReplicationLog {
        ReplicationLog {
            entries: VecDeque::new(),
            first_seq: 0,
            bytes: 0,
            cap_bytes,
            truncated: VersionVector::new(),
        }
    }

    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn append(&mut self, u: Arc<Update>) {
        let size = size_of(&u);
        self.bytes += size;
        self.entries.push_back((u, size));
        while self.bytes > self.cap_bytes && self.entries.len() > 1 {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((u, size)) = self.entries.pop_front() {
            self.truncated.observe(u.last_dot());
            self.bytes -= size;
            self.first_seq += 1;
        }
    }

    /// Drops the entries from the front that `acked` (what every member has) covers.
    pub fn truncate_acked(&mut self, acked: &VersionVector) {
        while let Some((u, _)) = self.entries.front() {
            if acked.covers(u.last_dot()) {
                self.pop_front();
            } else {
                break;
            }
        }
    }

    /// Up to `max` entries from `seq` on that `have` does not cover; returns them and the
    /// sequence number to continue from. None if `seq` was already dropped.
    pub fn read(
        &self,
        seq: u64,
        have: &VersionVector,
        skip_origin: ReplicaId,
        max: usize,
    ) -> Option<(Vec<Arc<Update>>, u64)> {
        // Entries before the cursor were dropped. If the peer holds everything dropped (entries
        // every member acknowledged, such as its own writes relayed here), it lacks nothing:
        // it goes on from the first entry left. Only a peer that lacks dropped writes (cut by
        // the size cap) needs a snapshot.
        let seq = if seq >= self.first_seq {
            seq
        } else if have.dominates(&self.truncated) {
            self.first_seq
        } else {
            return None;
        };
        let mut out = Vec::new();
        let mut next = seq;
        for (u, _) in self.entries.iter().skip((seq - self.first_seq) as usize) {
            next += 1;
            // Never echo a peer's own writes back to it.
            if u.origin != skip_origin && !have.covers(u.last_dot()) {
                out.push(u.clone());
                if out.len() >= max {
                    break;
                }
            }
        }
        Some((out, next))
    }

    /// How many entries `have` lacks, and the HLC milliseconds of the oldest of them.
    pub fn lag(&self, have: &VersionVector) -> (usize, Option<u64>) {
        let mut n = 0;
        let mut oldest = None;
        for (u, _) in &self.entries {
            if !have.covers(u.last_dot()) {
                n += 1;
                if oldest.is_none() {
                    oldest = Some(u.ops.first().map(|o| o.0.millis()).unwrap_or(0));
                }
            }
        }
        (n, oldest)
    }

    /// How many entries from `seq` on `have` lacks (for lag and the snapshot decision).
    pub fn missing(&self, seq: u64, have: &VersionVector) -> usize {
        let from = seq.max(self.first_seq);
        self.entries
            .iter()
            .skip((from - self.first_seq) as usize)
            .filter(|(u, _)| !have.covers(u.last_dot()))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Dot, Op, Timestamp};

    fn update(origin: ReplicaId, ts: u64) -> Arc<Update> {
        let mut deps = VersionVector::new();
        deps.observe(Dot::new(origin, Timestamp(ts - 1)));
        let op = Op { db: 0, key: crate::crdt::Blob::from_slice(b"k"), effect: Effect::Delete };
        Arc::new(Update { origin, deps, ops: vec![(Timestamp(ts), op)] })
    }

    fn vv(entries: &[(ReplicaId, u64)]) -> VersionVector {
        entries.iter().map(|&(r, t)| (r, Timestamp(t))).collect()
    }

    /// A replica relays a writer's updates; the writer acknowledges them (it wrote them), so they
    /// are dropped before the relay's sender to the writer read past them: the writer lacks
    /// nothing and must not be sent a snapshot (it was, over and over, under a write load).
    #[test]
    fn a_peer_that_holds_what_was_dropped_goes_on_without_a_snapshot() {
        let mut log = ReplicationLog::new(1 << 20);
        for ts in 1..=10 {
            log.append(update(7, ts));
        }
        let cursor = log.first_seq();
        log.truncate_acked(&vv(&[(7, 10)]));
        assert_eq!(log.read(cursor, &vv(&[(7, 10)]), 7, 100).map(|(u, next)| (u.len(), next)), Some((0, 10)));
        // A peer that lacks the dropped writes needs a snapshot.
        assert!(log.read(cursor, &vv(&[(7, 4)]), 9, 100).is_none());
    }

    #[test]
    fn entries_cut_by_the_cap_send_a_lagging_peer_to_a_snapshot() {
        let mut log = ReplicationLog::new(400);
        for ts in 1..=20 {
            log.append(update(7, ts));
        }
        assert!(log.first_seq() > 0);
        assert!(log.read(0, &vv(&[]), 9, 100).is_none());
        let (u, _) = log.read(0, &vv(&[(7, 20)]), 9, 100).unwrap();
        assert!(u.is_empty());
    }
}
