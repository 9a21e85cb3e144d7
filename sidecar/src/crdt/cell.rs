//! The two building blocks of every value: a multi-value register and a counter.
//!
//! Both are sets of dotted writes with *observed-remove* semantics: a write replaces exactly the
//! writes its replica had observed (those covered by the operation's causal context); writes it
//! did not observe stay. Reads resolve what stays deterministically: a register shows the write
//! with the greatest dot (last writer wins by `(HLC, replica)`), a counter shows the sum of its
//! increments. A [`Cell`] pairs the two so that `SET` and `INCR` on one key (or `HSET` and
//! `HINCRBY` on one field, `ZADD` and `ZINCRBY` on one member) compose as the conflict table says:
//! a write resets the increments it observed; increments it did not observe add on top.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::clock::Timestamp;
use super::dot::{Dot, ReplicaId, VersionVector};
use super::extended::Extended;

/// One write in a [`Register`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Write<V> {
    pub dot: Dot,
    pub value: V,
}

/// A multi-value register: concurrent writes all stay until a later write observes them; the
/// visible value is the one with the greatest dot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct Register<V> {
    #[serde(deserialize_with = "crate::crdt::blob::small_vec")]
    writes: SmallVec<[Write<V>; 1]>,
}

impl<V> Default for Register<V> {
    fn default() -> Self {
        Register { writes: SmallVec::new() }
    }
}

impl<V: Clone + PartialEq> Register<V> {
    pub fn new(dot: Dot, value: V) -> Self {
        let mut writes = SmallVec::new();
        writes.push(Write { dot, value });
        Register { writes }
    }

    /// The write that wins: greatest `(timestamp, replica)`.
    pub fn winner(&self) -> Option<&Write<V>> {
        self.writes.iter().max_by_key(|w| w.dot)
    }

    pub fn value(&self) -> Option<&V> {
        self.winner().map(|w| &w.value)
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn writes(&self) -> &[Write<V>] {
        &self.writes
    }

    pub fn writes_mut(&mut self) -> &mut [Write<V>] {
        &mut self.writes
    }

    pub fn max_dot(&self) -> Option<Dot> {
        self.writes.iter().map(|w| w.dot).max()
    }

    /// Replaces the observed writes with a new one.
    pub fn assign(&mut self, dot: Dot, value: V, ctx: &VersionVector) {
        self.remove_covered(ctx);
        self.writes.push(Write { dot, value });
    }

    /// Removes the writes covered by `ctx`; returns true if anything was removed.
    pub fn remove_covered(&mut self, ctx: &VersionVector) -> bool {
        let before = self.writes.len();
        self.writes.retain(|w| !ctx.covers(w.dot));
        self.writes.len() != before
    }

    /// State-based join: keeps writes both sides have, and writes one side has that the other
    /// has not observed (so it cannot have removed them). `combine` reconciles the two copies of a
    /// write present on both sides (values that only ever move one way, like flags).
    pub fn join_with(
        &mut self,
        other: &Self,
        my_ctx: &VersionVector,
        other_ctx: &VersionVector,
        combine: impl Fn(&mut V, &V),
    ) {
        self.writes.retain(|w| {
            if let Some(o) = other.writes.iter().find(|o| o.dot == w.dot) {
                combine(&mut w.value, &o.value);
                true
            } else {
                !other_ctx.covers(w.dot)
            }
        });
        for o in &other.writes {
            if !my_ctx.covers(o.dot) && !self.writes.iter().any(|w| w.dot == o.dot) {
                self.writes.push(o.clone());
            }
        }
        self.writes.sort_by_key(|w| w.dot);
    }

    pub fn join(&mut self, other: &Self, my_ctx: &VersionVector, other_ctx: &VersionVector) {
        self.join_with(other, my_ctx, other_ctx, |_, _| {});
    }
}

/// One increment, or a run of increments of one replica compacted into one once they are
/// causally stable (`from..=dot.ts`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Increment {
    pub dot: Dot,
    pub from: Timestamp,
    pub int: i64,
    pub float: f64,
    pub is_float: bool,
    /// The float part in x87 extended precision (what string counters show, as Redis does).
    pub ext: Extended,
}

impl Increment {
    fn contains(&self, other: &Increment) -> bool {
        self.dot.replica == other.dot.replica
            && self.from <= other.from
            && other.dot.ts <= self.dot.ts
            && (self.from, self.dot.ts) != (other.from, other.dot.ts)
    }
}

/// One increment as a write carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Delta {
    pub int: i64,
    pub float: f64,
    pub is_float: bool,
    /// The exact float increment, when known (INCRBYFLOAT); else `float` is used.
    pub ext: Option<Extended>,
}

impl Delta {
    pub fn int(n: i64) -> Delta {
        Delta { int: n, ..Delta::default() }
    }

    pub fn float(f: f64) -> Delta {
        Delta { float: f, is_float: true, ..Delta::default() }
    }
}

/// The numeric value of a counter: integer increments are summed exactly, float increments
/// (`INCRBYFLOAT`) separately; a counter that saw a float increment reads as a float.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sum {
    pub int: i64,
    pub float: f64,
    pub is_float: bool,
    pub ext: Extended,
}

impl Default for Sum {
    fn default() -> Sum {
        Sum { int: 0, float: 0.0, is_float: false, ext: Extended::ZERO }
    }
}

impl Sum {
    pub fn as_f64(&self) -> f64 {
        self.int as f64 + self.float
    }
}

/// A PN-counter whose increments are dotted, so that a write can remove exactly the increments
/// it observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counter {
    #[serde(deserialize_with = "crate::crdt::blob::small_vec")]
    increments: SmallVec<[Increment; 1]>,
    /// Running sum of the integer increments, and how many increments are floats: a counter
    /// that only ever saw INCR reads in O(1), however many increments await compaction.
    #[serde(default)]
    int_total: i64,
    #[serde(default)]
    floats: u32,
}

impl Counter {
    /// Floats are summed in dot order, so that replicas holding the same increments show the
    /// same value whatever order they received them in.
    pub fn sum(&self) -> Sum {
        if self.floats == 0 {
            return Sum { int: self.int_total, ..Sum::default() };
        }
        let mut s = Sum::default();
        let mut ordered: SmallVec<[&Increment; 4]> = self.increments.iter().collect();
        ordered.sort_by_key(|i| (i.dot, i.from));
        for i in ordered {
            s.int = s.int.wrapping_add(i.int);
            s.float += i.float;
            s.is_float |= i.is_float;
            s.ext = s.ext + i.ext;
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.increments.is_empty()
    }

    pub fn max_dot(&self) -> Option<Dot> {
        self.increments.iter().map(|i| i.dot).max()
    }

    pub fn increments(&self) -> &[Increment] {
        &self.increments
    }

    pub fn add(&mut self, dot: Dot, delta: Delta, stable: &VersionVector) {
        let Delta { int, float, is_float, ext } = delta;
        let ext = ext.unwrap_or_else(|| Extended::from_f64(float));
        self.int_total = self.int_total.wrapping_add(int);
        self.floats += is_float as u32;
        self.increments.push(Increment { dot, from: dot.ts, int, float, is_float, ext });
        self.compact(stable);
    }

    pub fn remove_covered(&mut self, ctx: &VersionVector) -> bool {
        let before = self.increments.len();
        self.increments.retain(|i| !ctx.covers(i.dot));
        let changed = self.increments.len() != before;
        if changed {
            self.recount();
        }
        changed
    }

    fn recount(&mut self) {
        self.int_total = self.increments.iter().fold(0i64, |a, i| a.wrapping_add(i.int));
        self.floats = self.increments.iter().filter(|i| i.is_float).count() as u32;
    }

    /// Merges the causally stable increments of each replica into one. No operation delivered in
    /// the future can observe a stable increment without observing all earlier ones of its
    /// replica, so the run can never be split again.
    pub fn compact(&mut self, stable: &VersionVector) {
        // Increments arrive roughly oldest first: if the oldest are not stable, nothing is.
        if self.increments.len() < 2 || !self.increments.iter().take(2).any(|i| stable.covers(i.dot)) {
            return;
        }
        let mut i = 0;
        while i < self.increments.len() {
            if stable.covers(self.increments[i].dot) {
                let replica: ReplicaId = self.increments[i].dot.replica;
                let mut j = i + 1;
                while j < self.increments.len() {
                    let other = &self.increments[j];
                    if other.dot.replica == replica && stable.covers(other.dot) {
                        let other = self.increments.remove(j);
                        let into = &mut self.increments[i];
                        into.int = into.int.wrapping_add(other.int);
                        into.float += other.float;
                        into.ext = into.ext + other.ext;
                        into.is_float |= other.is_float;
                        into.from = into.from.min(other.from);
                        into.dot = into.dot.max(other.dot);
                    } else {
                        j += 1;
                    }
                }
            }
            i += 1;
        }
        self.recount();
    }

    /// State-based join; compacted runs on one side subsume the increments they contain.
    pub fn join(&mut self, other: &Counter, my_ctx: &VersionVector, other_ctx: &VersionVector) {
        let mut all: Vec<(Increment, bool, bool)> = Vec::new(); // (increment, mine, theirs)
        for i in &self.increments {
            all.push((i.clone(), true, false));
        }
        for o in &other.increments {
            match all.iter_mut().find(|(i, _, _)| i.dot == o.dot && i.from == o.from) {
                Some(entry) => entry.2 = true,
                None => all.push((o.clone(), false, true)),
            }
        }
        let keep: Vec<bool> = all
            .iter()
            .map(|(inc, mine, theirs)| {
                if all.iter().any(|(other, _, _)| other.contains(inc)) {
                    return false;
                }
                if *mine && *theirs {
                    return true;
                }
                let (seen_by_other, other_side_has_part) = if *mine {
                    (other_ctx.covers(inc.dot), all.iter().any(|(p, _, t)| *t && inc.contains(p)))
                } else {
                    (my_ctx.covers(inc.dot), all.iter().any(|(p, m, _)| *m && inc.contains(p)))
                };
                !seen_by_other || other_side_has_part
            })
            .collect();
        let mut merged: SmallVec<[Increment; 1]> =
            all.into_iter().zip(keep).filter(|(_, k)| *k).map(|((i, _, _), _)| i).collect();
        merged.sort_by_key(|i| (i.dot, i.from));
        self.increments = merged;
        self.recount();
    }
}

/// A register and a counter on one value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct Cell<V> {
    pub reg: Register<V>,
    pub counter: Option<Box<Counter>>,
}

impl<V> Default for Cell<V> {
    fn default() -> Self {
        Cell { reg: Register::default(), counter: None }
    }
}

impl<V: Clone + PartialEq> Cell<V> {
    pub fn is_empty(&self) -> bool {
        self.reg.is_empty() && self.counter.as_ref().is_none_or(|c| c.is_empty())
    }

    pub fn max_dot(&self) -> Option<Dot> {
        let c = self.counter.as_ref().and_then(|c| c.max_dot());
        self.reg.max_dot().max(c)
    }

    /// A write: replaces the observed writes and resets the observed increments.
    pub fn assign(&mut self, dot: Dot, value: V, ctx: &VersionVector) {
        self.reg.assign(dot, value, ctx);
        self.remove_covered_increments(ctx);
    }

    pub fn increment(&mut self, dot: Dot, delta: Delta, stable: &VersionVector) {
        self.counter.get_or_insert_with(Default::default).add(dot, delta, stable);
    }

    pub fn remove_covered(&mut self, ctx: &VersionVector) -> bool {
        let a = self.reg.remove_covered(ctx);
        let b = self.remove_covered_increments(ctx);
        a || b
    }

    fn remove_covered_increments(&mut self, ctx: &VersionVector) -> bool {
        let Some(c) = self.counter.as_mut() else {
            return false;
        };
        let changed = c.remove_covered(ctx);
        if c.is_empty() {
            self.counter = None;
        }
        changed
    }

    pub fn sum(&self) -> Sum {
        self.counter.as_ref().map(|c| c.sum()).unwrap_or_default()
    }

    pub fn join_with(
        &mut self,
        other: &Self,
        my_ctx: &VersionVector,
        other_ctx: &VersionVector,
        combine: impl Fn(&mut V, &V),
    ) {
        self.reg.join_with(&other.reg, my_ctx, other_ctx, combine);
        let empty = Counter::default();
        let theirs = other.counter.as_deref().unwrap_or(&empty);
        let mine = self.counter.get_or_insert_with(Default::default);
        mine.join(theirs, my_ctx, other_ctx);
        if mine.is_empty() {
            self.counter = None;
        }
    }

    pub fn compact(&mut self, stable: &VersionVector) {
        if let Some(c) = self.counter.as_mut() {
            c.compact(stable);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(r: u64, t: u64) -> Dot {
        Dot::new(r, Timestamp(t))
    }

    fn vv(entries: &[(u64, u64)]) -> VersionVector {
        entries.iter().map(|&(r, t)| (r, Timestamp(t))).collect()
    }

    #[test]
    fn register_keeps_concurrent_writes_and_shows_the_greatest() {
        let mut reg = Register::new(dot(1, 5), "a");
        reg.assign(dot(2, 4), "b", &vv(&[])); // did not observe (1,5)
        assert_eq!(reg.writes().len(), 2);
        assert_eq!(reg.value(), Some(&"a"));
        reg.assign(dot(2, 9), "c", &vv(&[(1, 5), (2, 4)]));
        assert_eq!(reg.writes().len(), 1);
        assert_eq!(reg.value(), Some(&"c"));
    }

    #[test]
    fn a_write_resets_observed_increments_only() {
        let stable = vv(&[]);
        let mut cell: Cell<i64> = Cell::default();
        cell.increment(dot(1, 1), Delta::int(10), &stable);
        cell.increment(dot(2, 2), Delta::int(5), &stable);
        // replica 3 set the value having seen only replica 1's increment
        cell.assign(dot(3, 3), 100, &vv(&[(1, 1)]));
        assert_eq!(cell.reg.value(), Some(&100));
        assert_eq!(cell.sum().int, 5);
    }

    #[test]
    fn stable_increments_compact_into_one_run() {
        let mut c = Counter::default();
        let none = vv(&[]);
        c.add(dot(1, 1), Delta::int(1), &none);
        c.add(dot(1, 2), Delta::int(2), &none);
        c.add(dot(1, 3), Delta::int(3), &none);
        assert_eq!(c.increments().len(), 3);
        c.compact(&vv(&[(1, 2)]));
        assert_eq!(c.increments().len(), 2);
        assert_eq!(c.sum().int, 6);
        // a state that did not compact joins with one that did without double counting
        let mut uncompacted = Counter::default();
        uncompacted.add(dot(1, 1), Delta::int(1), &none);
        uncompacted.add(dot(1, 2), Delta::int(2), &none);
        uncompacted.add(dot(1, 3), Delta::int(3), &none);
        let ctx = vv(&[(1, 3)]);
        let mut j = uncompacted.clone();
        j.join(&c, &ctx, &ctx);
        assert_eq!(j.sum().int, 6);
        let mut k = c.clone();
        k.join(&uncompacted, &ctx, &ctx);
        assert_eq!(k.sum().int, 6);
    }
}
