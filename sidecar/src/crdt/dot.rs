//! Dots and version vectors: the causal metadata every value carries.
//!
//! A [`Dot`] names one write: the replica that made it and the HLC timestamp it got there.
//! A [`VersionVector`] summarises a set of dots: for each replica, the newest timestamp seen from
//! it. The mesh delivers each replica's writes in order and only after the writes they depend on
//! (causal delivery), so "seen `(r, t)`" implies "seen every earlier write of `r`", and a version
//! vector describes exactly what a replica has observed.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::clock::Timestamp;

/// Identifies one incarnation of a replica. Random 64-bit; a replica restarted without its data
/// directory gets a new one.
pub type ReplicaId = u64;

/// One write: `(timestamp, replica)`. Ordered by timestamp first, replica id as tie-break: this
/// is the "last writer wins" order of the conflict table.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Dot {
    pub ts: Timestamp,
    pub replica: ReplicaId,
}

impl Dot {
    pub fn new(replica: ReplicaId, ts: Timestamp) -> Dot {
        Dot { ts, replica }
    }
}

impl Ord for Dot {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.ts, self.replica).cmp(&(other.ts, other.replica))
    }
}

impl PartialOrd for Dot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}@{}.{}", self.replica & 0xffff, self.ts.millis(), self.ts.logical())
    }
}

/// For each replica, the newest timestamp observed from it. Kept sorted by replica id; meshes are
/// small (tens of members), so a vector beats a map.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VersionVector {
    entries: Vec<(ReplicaId, Timestamp)>,
}

impl VersionVector {
    pub fn new() -> VersionVector {
        VersionVector::default()
    }

    pub fn get(&self, replica: ReplicaId) -> Timestamp {
        match self.entries.binary_search_by_key(&replica, |e| e.0) {
            Ok(i) => self.entries[i].1,
            Err(_) => Timestamp::ZERO,
        }
    }

    /// True when the write `dot` is part of what this vector has observed.
    pub fn covers(&self, dot: Dot) -> bool {
        dot.ts <= self.get(dot.replica)
    }

    /// Records that `dot` (and so every earlier write of its replica) has been observed.
    pub fn observe(&mut self, dot: Dot) {
        match self.entries.binary_search_by_key(&dot.replica, |e| e.0) {
            Ok(i) => {
                if self.entries[i].1 < dot.ts {
                    self.entries[i].1 = dot.ts;
                }
            }
            Err(i) => self.entries.insert(i, (dot.replica, dot.ts)),
        }
    }

    /// Sets a replica's entry to exactly `ts` (used to rebuild vectors sent as deltas).
    pub fn set(&mut self, replica: ReplicaId, ts: Timestamp) {
        match self.entries.binary_search_by_key(&replica, |e| e.0) {
            Ok(i) => self.entries[i].1 = ts,
            Err(i) => self.entries.insert(i, (replica, ts)),
        }
    }

    /// Pointwise maximum.
    pub fn merge(&mut self, other: &VersionVector) {
        for &(replica, ts) in &other.entries {
            self.observe(Dot::new(replica, ts));
        }
    }

    /// Pointwise minimum over the replicas present in both (a replica missing from either counts
    /// as zero and is dropped).
    pub fn meet(&self, other: &VersionVector) -> VersionVector {
        let entries = self
            .entries
            .iter()
            .filter_map(|&(r, t)| {
                let o = other.get(r);
                (o > Timestamp::ZERO).then_some((r, t.min(o)))
            })
            .collect();
        VersionVector { entries }
    }

    /// True when every write observed by `other` is observed by `self`.
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.entries.iter().all(|&(r, t)| self.get(r) >= t)
    }

    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, Timestamp)> + '_ {
        self.entries.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets a replica entirely (used when a member is retired).
    pub fn remove(&mut self, replica: ReplicaId) {
        self.entries.retain(|e| e.0 != replica);
    }
}

impl fmt::Debug for VersionVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries.iter().map(|(r, t)| (r & 0xffff, t.0))).finish()
    }
}

impl FromIterator<(ReplicaId, Timestamp)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (ReplicaId, Timestamp)>>(iter: I) -> Self {
        let mut vv = VersionVector::new();
        for (r, t) in iter {
            vv.observe(Dot::new(r, t));
        }
        vv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(r: u64, t: u64) -> Dot {
        Dot::new(r, Timestamp(t))
    }

    #[test]
    fn covers_every_earlier_write_of_a_replica() {
        let mut vv = VersionVector::new();
        vv.observe(dot(1, 10));
        assert!(vv.covers(dot(1, 3)));
        assert!(vv.covers(dot(1, 10)));
        assert!(!vv.covers(dot(1, 11)));
        assert!(!vv.covers(dot(2, 1)));
    }

    #[test]
    fn merge_and_meet_are_pointwise() {
        let a: VersionVector = [(1, Timestamp(5)), (2, Timestamp(9))].into_iter().collect();
        let b: VersionVector = [(1, Timestamp(7)), (3, Timestamp(1))].into_iter().collect();
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(m.get(1), Timestamp(7));
        assert_eq!(m.get(2), Timestamp(9));
        assert_eq!(m.get(3), Timestamp(1));
        let low = a.meet(&b);
        assert_eq!(low.get(1), Timestamp(5));
        assert_eq!(low.get(2), Timestamp::ZERO);
        assert!(m.dominates(&a) && m.dominates(&b) && !a.dominates(&b));
    }
}
