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
    /// Whether this (folded) increment strictly contains `other` (the test reference's rule).
    #[cfg(test)]
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

    /// A float increment known exactly (INCRBYFLOAT, HINCRBYFLOAT).
    pub fn extended(by: Extended) -> Delta {
        Delta { float: by.to_f64(), is_float: true, ext: Some(by), ..Delta::default() }
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
///
/// Increments are kept as one run per replica, in timestamp order (causal delivery brings each
/// replica's increments in that order). A causal context covers a *prefix* of every run, so a
/// write removes its observed increments by cutting prefixes, and the causally stable prefix of a
/// run folds into its first increment. With a running total of the integer parts, an `INCR`, a
/// read, a `DEL` and a compaction cost the same whatever the number of increments awaiting
/// stability (amortised: each increment is cut or folded once).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "CounterRepr", into = "CounterRepr")]
pub struct Counter {
    /// Sorted by replica.
    runs: SmallVec<[Run; 1]>,
    /// Sum of the integer parts of every increment.
    int_total: i64,
    /// How many increments have a float part (then reads sum the floats in dot order).
    floats: u32,
}

/// One replica's increments, oldest first.
#[derive(Clone, Debug, PartialEq)]
struct Run {
    replica: ReplicaId,
    incs: SmallVec<[Increment; 1]>,
}

/// How a counter is written in snapshots and the data directory: the flat list of increments
/// (the layout of the first releases, kept so that their files and snapshots still read).
#[derive(Serialize, Deserialize)]
struct CounterRepr {
    #[serde(deserialize_with = "crate::crdt::blob::small_vec")]
    increments: SmallVec<[Increment; 1]>,
    int_total: i64,
    floats: u32,
}

impl From<CounterRepr> for Counter {
    fn from(r: CounterRepr) -> Counter {
        Counter::from_increments(r.increments.into_vec())
    }
}

impl From<Counter> for CounterRepr {
    fn from(c: Counter) -> CounterRepr {
        let (int_total, floats) = (c.int_total, c.floats);
        CounterRepr { increments: c.runs.into_iter().flat_map(|r| r.incs).collect(), int_total, floats }
    }
}

impl Counter {
    fn from_increments(mut all: Vec<Increment>) -> Counter {
        all.sort_by_key(|i| (i.dot.replica, i.dot.ts, i.from));
        let mut c = Counter::default();
        for i in all {
            c.count(&i, 1);
            match c.runs.last_mut() {
                Some(run) if run.replica == i.dot.replica => run.incs.push(i),
                _ => c.runs.push(Run { replica: i.dot.replica, incs: smallvec::smallvec![i] }),
            }
        }
        c
    }

    fn count(&mut self, i: &Increment, sign: i64) {
        self.int_total = self.int_total.wrapping_add(i.int.wrapping_mul(sign));
        if i.is_float {
            self.floats = (self.floats as i64 + sign) as u32;
        }
    }

    /// The value, without the increment of dot `skip` (the winning write's own increment, see
    /// [`Cell::sum`]). Floats are summed in dot order, so that replicas holding the same
    /// increments show the same value whatever order they received them in.
    pub fn sum_without(&self, skip: Option<Dot>) -> Sum {
        if self.floats == 0 {
            let skipped = skip.and_then(|d| self.get(d)).map(|i| i.int).unwrap_or(0);
            return Sum { int: self.int_total.wrapping_sub(skipped), ..Sum::default() };
        }
        let mut ordered: Vec<&Increment> =
            self.runs.iter().flat_map(|r| r.incs.iter()).filter(|i| Some(i.dot) != skip).collect();
        ordered.sort_by_key(|i| (i.dot, i.from));
        let mut s = Sum::default();
        for i in ordered {
            s.int = s.int.wrapping_add(i.int);
            s.float += i.float;
            s.is_float |= i.is_float;
            s.ext = s.ext + i.ext;
        }
        s
    }

    pub fn sum(&self) -> Sum {
        self.sum_without(None)
    }

    fn get(&self, dot: Dot) -> Option<&Increment> {
        let run = self.runs.iter().find(|r| r.replica == dot.replica)?;
        run.incs.iter().rev().find(|i| i.dot == dot)
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Whether the only increment left is the one of `dot`.
    pub fn only(&self, dot: Dot) -> bool {
        self.runs.len() == 1 && self.runs[0].incs.len() == 1 && self.runs[0].incs[0].dot == dot
    }

    pub fn max_dot(&self) -> Option<Dot> {
        self.runs.iter().filter_map(|r| r.incs.last()).map(|i| i.dot).max()
    }

    /// Every increment, by replica then time.
    pub fn increments(&self) -> impl Iterator<Item = &Increment> {
        self.runs.iter().flat_map(|r| r.incs.iter())
    }

    /// Adds an increment; `keep` is not folded into a run (see [`Counter::compact`]).
    pub fn add(&mut self, dot: Dot, delta: Delta, stable: &VersionVector, keep: Option<Dot>) {
        let Delta { int, float, is_float, ext } = delta;
        let ext = ext.unwrap_or_else(|| Extended::from_f64(float));
        let inc = Increment { dot, from: dot.ts, int, float, is_float, ext };
        self.count(&inc, 1);
        let at = match self.runs.binary_search_by_key(&dot.replica, |r| r.replica) {
            Ok(at) => at,
            Err(at) => {
                self.runs.insert(at, Run { replica: dot.replica, incs: SmallVec::new() });
                at
            }
        };
        let incs = &mut self.runs[at].incs;
        // Causal delivery brings a replica's increments in order; keep the order regardless.
        let pos = incs.iter().rposition(|i| i.dot.ts < dot.ts).map_or(0, |p| p + 1);
        incs.insert(pos, inc);
        self.compact_run(at, stable, keep);
    }

    /// Removes the increments `ctx` covers (a prefix of each run).
    pub fn remove_covered(&mut self, ctx: &VersionVector) -> bool {
        let mut changed = false;
        let mut i = 0;
        while i < self.runs.len() {
            let seen = ctx.get(self.runs[i].replica);
            let cut = self.runs[i].incs.iter().take_while(|inc| inc.dot.ts <= seen).count();
            if cut > 0 {
                changed = true;
                let removed: SmallVec<[Increment; 4]> = self.runs[i].incs.drain(..cut).collect();
                for inc in &removed {
                    self.count(inc, -1);
                }
            }
            if self.runs[i].incs.is_empty() {
                self.runs.remove(i);
            } else {
                i += 1;
            }
        }
        changed
    }

    /// Folds the causally stable increments of each replica into one. No operation delivered in
    /// the future can observe a stable increment without observing all earlier ones of its
    /// replica, so the run can never be split again. `keep` is left on its own (the winning
    /// write's own increment, which reads leave out).
    pub fn compact(&mut self, stable: &VersionVector, keep: Option<Dot>) {
        for at in 0..self.runs.len() {
            self.compact_run(at, stable, keep);
        }
    }

    fn compact_run(&mut self, at: usize, stable: &VersionVector, keep: Option<Dot>) {
        let run = &mut self.runs[at];
        let upto = stable.get(run.replica);
        // Runs are short once compacted: only the front can be stable.
        if run.incs.len() < 2 || run.incs[1].dot.ts > upto {
            return;
        }
        let n = run.incs.iter().take_while(|i| i.dot.ts <= upto && Some(i.dot) != keep).count();
        if n < 2 {
            return;
        }
        let floats_before = run.incs[..n].iter().filter(|i| i.is_float).count() as u32;
        let mut folded = run.incs[0].clone();
        for other in run.incs.drain(1..n) {
            folded.int = folded.int.wrapping_add(other.int);
            folded.float += other.float;
            folded.ext = folded.ext + other.ext;
            folded.is_float |= other.is_float;
            folded.from = folded.from.min(other.from);
            folded.dot = folded.dot.max(other.dot);
        }
        let floats_after = folded.is_float as u32;
        run.incs[0] = folded;
        self.floats = self.floats - floats_before + floats_after;
    }

    /// State-based join; compacted runs on one side subsume the increments they contain.
    ///
    /// An increment is kept unless another one (on either side) contains it, or only one side
    /// has it while the other side observed it and kept no part of it (that side removed it).
    /// Each replica's runs are joined on their own, in O(n log n) for n increments: a snapshot
    /// of a hot counter with a million increments awaiting stability joins in moments.
    pub fn join(&mut self, other: &Counter, my_ctx: &VersionVector, other_ctx: &VersionVector) {
        let mut merged = Vec::with_capacity(self.increments().count() + other.increments().count());
        let (mut mine, mut theirs) = (self.runs.iter().peekable(), other.runs.iter().peekable());
        loop {
            let (m, t) = match (mine.peek(), theirs.peek()) {
                (None, None) => break,
                (Some(m), Some(t)) if m.replica == t.replica => (mine.next(), theirs.next()),
                (Some(m), Some(t)) if m.replica < t.replica => (mine.next(), None),
                (Some(_), None) => (mine.next(), None),
                _ => (None, theirs.next()),
            };
            let (m, t) = (m.map_or(&[][..], |r| &r.incs[..]), t.map_or(&[][..], |r| &r.incs[..]));
            join_run(m, t, my_ctx, other_ctx, &mut merged);
        }
        *self = Counter::from_increments(merged);
    }
}

/// Joins one replica's increments as two sides hold them (see [`Counter::join`]).
fn join_run(
    mine: &[Increment],
    theirs: &[Increment],
    my_ctx: &VersionVector,
    other_ctx: &VersionVector,
    out: &mut Vec<Increment>,
) {
    // Both sides' increments as ranges [from, to], sorted by start, longest first: an increment
    // is contained in another exactly when an earlier one in this order reaches at least as far.
    let range = |i: &Increment| (i.from, std::cmp::Reverse(i.dot.ts));
    let mut all: Vec<(&Increment, bool, bool)> =
        mine.iter().map(|i| (i, true, false)).chain(theirs.iter().map(|i| (i, false, true))).collect();
    all.sort_by_key(|(i, _, _)| range(i));
    all.dedup_by(|later, kept| {
        let same = (later.0.from, later.0.dot.ts) == (kept.0.from, kept.0.dot.ts);
        if same {
            kept.1 |= later.1;
            kept.2 |= later.2;
        }
        same
    });
    let by_start = |side: &[Increment]| {
        let mut v: Vec<(Timestamp, Timestamp)> = side.iter().map(|i| (i.from, i.dot.ts)).collect();
        v.sort_unstable();
        v
    };
    let (mine_ranges, their_ranges) = (by_start(mine), by_start(theirs));
    // Whether `side` holds an increment that `inc` strictly contains.
    let has_part = |side: &[(Timestamp, Timestamp)], inc: &Increment| {
        let first = side.partition_point(|&(from, _)| from < inc.from);
        side[first..]
            .iter()
            .take_while(|&&(from, _)| from <= inc.dot.ts)
            .any(|&(from, to)| to <= inc.dot.ts && (from, to) != (inc.from, inc.dot.ts))
    };
    let mut reach: Option<Timestamp> = None;
    for (inc, in_mine, in_theirs) in all {
        let contained = reach.is_some_and(|r| r >= inc.dot.ts);
        reach = reach.max(Some(inc.dot.ts));
        if contained {
            continue;
        }
        let keep = if in_mine && in_theirs {
            true
        } else if in_mine {
            !other_ctx.covers(inc.dot) || has_part(&their_ranges, inc)
        } else {
            !my_ctx.covers(inc.dot) || has_part(&mine_ranges, inc)
        };
        if keep {
            out.push(inc.clone());
        }
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
        let keep = self.reg.winner().map(|w| w.dot);
        self.counter.get_or_insert_with(Default::default).add(dot, delta, stable, keep);
    }

    /// `INCRBYFLOAT`, `HINCRBYFLOAT`: the replica that ran it computed the new value as Redis
    /// does (`value`, which it shows); the write replaces what it observed with that value, and
    /// its increment stays in the counter for the replicas whose state did not include what it
    /// observed. A read leaves the winning write's own increment out (it is in its value), so
    /// one replica shows Redis's digits exactly, and concurrent increments still add up.
    pub fn assign_increment(
        &mut self,
        dot: Dot,
        value: V,
        delta: Delta,
        ctx: &VersionVector,
        stable: &VersionVector,
    ) {
        self.assign(dot, value, ctx);
        self.increment(dot, delta, stable);
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

    /// What the increments add to the winning write's value: every increment but the winning
    /// write's own (see [`Cell::assign_increment`]).
    pub fn sum(&self) -> Sum {
        self.counter.as_ref().map(|c| c.sum_without(self.reg.winner().map(|w| w.dot))).unwrap_or_default()
    }

    /// Whether increments change what the winning write shows.
    pub fn has_increments(&self) -> bool {
        match (&self.counter, self.reg.winner()) {
            (None, _) => false,
            (Some(c), Some(w)) => !c.only(w.dot),
            (Some(_), None) => true,
        }
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
            c.compact(stable, self.reg.winner().map(|w| w.dot));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The first join, quadratic but plainly the rule: the reference for [`Counter::join`].
    fn join_reference(
        me: &Counter,
        other: &Counter,
        my_ctx: &VersionVector,
        other_ctx: &VersionVector,
    ) -> Counter {
        let mut all: Vec<(Increment, bool, bool)> = Vec::new();
        for i in me.increments() {
            all.push((i.clone(), true, false));
        }
        for o in other.increments() {
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
        Counter::from_increments(
            all.into_iter().zip(keep).filter(|(_, k)| *k).map(|((i, _, _), _)| i).collect(),
        )
    }

    /// Half of what `ctx` covers, per replica.
    fn half(ctx: &VersionVector) -> VersionVector {
        ctx.iter().map(|(r, t)| (r, Timestamp(t.0 / 2))).collect()
    }

    /// Applies `ops` (replica, delta, then a removal of what half the context covers, then a
    /// compaction of that half) to a counter and the context it has observed.
    fn grow(c: &mut Counter, ctx: &mut VersionVector, ops: &[(u64, i64, bool, bool)], clock: &mut u64) {
        for &(r, delta, remove, compact) in ops {
            *clock += 1;
            let d = dot(r, *clock);
            c.add(d, Delta::int(delta), &VersionVector::new(), None);
            ctx.observe(d);
            if remove {
                c.remove_covered(&half(ctx));
            }
            if compact {
                c.compact(&half(ctx), None);
            }
        }
    }

    fn ops() -> impl Strategy<Value = Vec<(u64, i64, bool, bool)>> {
        proptest::collection::vec((1u64..4, -5i64..6, proptest::bool::weighted(0.2), any::<bool>()), 0..40)
    }

    proptest! {
        #[test]
        fn join_matches_the_reference_rule(shared in ops(), left in ops(), right in ops()) {
            let mut clock = 0;
            let (mut base, mut base_ctx) = (Counter::default(), VersionVector::new());
            grow(&mut base, &mut base_ctx, &shared, &mut clock);
            let (mut a, mut a_ctx) = (base.clone(), base_ctx.clone());
            let (mut b, mut b_ctx) = (base, base_ctx);
            grow(&mut a, &mut a_ctx, &left, &mut clock);
            grow(&mut b, &mut b_ctx, &right, &mut clock);
            let mut joined = a.clone();
            joined.join(&b, &a_ctx, &b_ctx);
            prop_assert_eq!(&joined, &join_reference(&a, &b, &a_ctx, &b_ctx));
            let mut other_way = b.clone();
            other_way.join(&a, &b_ctx, &a_ctx);
            prop_assert_eq!(&other_way, &join_reference(&b, &a, &b_ctx, &a_ctx));
        }
    }

    #[test]
    fn a_snapshot_of_a_hot_counter_joins_in_moments() {
        let mut a = Counter::default();
        let mut ctx = VersionVector::new();
        for t in 1..=200_000 {
            a.add(dot(1, t), Delta::int(1), &VersionVector::new(), None);
            ctx.observe(dot(1, t));
        }
        let mut b = a.clone();
        b.add(dot(2, 200_001), Delta::int(1), &VersionVector::new(), None);
        let mut b_ctx = ctx.clone();
        b_ctx.observe(dot(2, 200_001));
        let started = std::time::Instant::now();
        a.join(&b, &ctx, &b_ctx);
        assert_eq!(a.sum().int, 200_001);
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }

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
        c.add(dot(1, 1), Delta::int(1), &none, None);
        c.add(dot(1, 2), Delta::int(2), &none, None);
        c.add(dot(1, 3), Delta::int(3), &none, None);
        assert_eq!(c.increments().count(), 3);
        c.compact(&vv(&[(1, 2)]), None);
        assert_eq!(c.increments().count(), 2);
        assert_eq!(c.sum().int, 6);
        // a state that did not compact joins with one that did without double counting
        let mut uncompacted = Counter::default();
        uncompacted.add(dot(1, 1), Delta::int(1), &none, None);
        uncompacted.add(dot(1, 2), Delta::int(2), &none, None);
        uncompacted.add(dot(1, 3), Delta::int(3), &none, None);
        let ctx = vv(&[(1, 3)]);
        let mut j = uncompacted.clone();
        j.join(&c, &ctx, &ctx);
        assert_eq!(j.sum().int, 6);
        let mut k = c.clone();
        k.join(&uncompacted, &ctx, &ctx);
        assert_eq!(k.sum().int, 6);
    }

    /// The counter's observable behaviour against the plain model it replaced: a flat list of
    /// dotted increments, a write removing those its context covers, a read summing the rest.
    mod against_the_flat_model {
        use super::*;

        #[derive(Debug, Clone)]
        enum Step {
            /// An increment by replica `r` (1..=3) of `n`.
            Add(u64, i64),
            /// A write that observed, of each replica, this share of its increments so far.
            Remove([u8; 3]),
            /// Everything up to this share of each replica's increments became stable.
            Stabilise([u8; 3]),
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                4 => (1u64..=3, -5i64..10).prop_map(|(r, n)| Step::Add(r, n)),
                1 => any::<[u8; 3]>().prop_map(Step::Remove),
                1 => any::<[u8; 3]>().prop_map(Step::Stabilise),
            ]
        }

        proptest! {
            #[test]
            fn sums_match(steps in proptest::collection::vec(step(), 1..120)) {
                let mut c = Counter::default();
                let mut model: Vec<(Dot, i64)> = Vec::new();
                let mut clock = [0u64; 4];
                let mut stable = VersionVector::new();
                for s in steps {
                    match s {
                        Step::Add(r, n) => {
                            clock[r as usize] += 1;
                            let d = dot(r, clock[r as usize]);
                            c.add(d, Delta::int(n), &stable, None);
                            model.push((d, n));
                        }
                        Step::Remove(share) | Step::Stabilise(share) => {
                            // Contexts never go below what is stable: a later write has seen it.
                            let mut ctx = VersionVector::new();
                            for r in 1..=3u64 {
                                let upto = clock[r as usize] * share[r as usize - 1] as u64 / 255;
                                let upto = upto.max(stable.get(r).0);
                                if upto > 0 {
                                    ctx.set(r, Timestamp(upto));
                                }
                            }
                            if matches!(s, Step::Remove(_)) {
                                c.remove_covered(&ctx);
                                model.retain(|(d, _)| !ctx.covers(*d));
                            } else {
                                stable = ctx;
                                c.compact(&stable, None);
                            }
                        }
                    }
                    let expected: i64 = model.iter().map(|(_, n)| n).sum();
                    prop_assert_eq!(c.sum().int, expected);
                    prop_assert_eq!(c.is_empty(), model.is_empty());
                    // What is written to disk and to peers reads back the same.
                    let bytes = bincode::serialize(&c).unwrap();
                    let back: Counter = bincode::deserialize(&bytes).unwrap();
                    prop_assert_eq!(back.sum().int, expected);
                }
            }
        }
    }
}
