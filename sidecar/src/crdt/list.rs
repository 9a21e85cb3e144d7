//! The list CRDT: a sequence whose elements sit at dense, totally ordered positions.
//!
//! Every element gets a [`Position`] when it is inserted: a path of `(digit, dot)` pairs,
//! compared lexicographically. A new element's position is chosen strictly between its
//! neighbours' (or before the first / after the last), so concurrent inserts on different
//! replicas all stay, in one deterministic order (equal digits are ordered by the inserting
//! write's dot). Removing an element removes its position; nothing else moves, so removals and
//! inserts commute and no tombstones are needed. A pop removes the elements it observed: two
//! replicas popping the same element concurrently both return it (at-least-once).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::cell::Register;
use super::dot::{Dot, VersionVector};
use super::Blob;

/// Distance between consecutive pushes at one end: about 2^31 pushes fit on each side of the
/// first element before positions need a second level.
const STEP: u64 = 1 << 32;
const MIDDLE: u64 = 1 << 63;

/// Where an element sits in a list.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position(
    #[serde(deserialize_with = "crate::crdt::blob::small_vec")] pub SmallVec<[(u64, Dot); 1]>,
);

impl Position {
    /// The write that inserted the element.
    pub fn birth(&self) -> Dot {
        self.0.last().expect("positions are never empty").1
    }
}

/// A position strictly between `lo` and `hi` (None: the list's start or end), ending in `dot`.
///
/// Final digits are kept within `1..=MAX-1`, so there is always room at the ends of a level;
/// when two neighbours leave no room between their digits, the new position follows `lo` one
/// level down (or takes a digit just under `hi`'s and goes down from there).
pub fn position_between(lo: Option<&Position>, hi: Option<&Position>, dot: Dot) -> Position {
    let mut path: SmallVec<[(u64, Dot); 1]> = SmallVec::new();
    let (mut lo_bounds, mut hi_bounds) = (lo.is_some(), hi.is_some());
    for level in 0.. {
        let l = if lo_bounds { lo.and_then(|p| p.0.get(level)).copied() } else { None };
        // `lo` is a prefix of the path so far: anything longer is above it.
        lo_bounds &= l.is_some();
        let h = if hi_bounds { hi.and_then(|p| p.0.get(level)).copied() } else { None };
        let room = match (l.map(|e| e.0), h.map(|e| e.0)) {
            (None, None) => Some(MIDDLE),
            (Some(l), None) => (l <= u64::MAX - 2).then(|| l + STEP.min((u64::MAX - l) / 2)),
            (None, Some(h)) => (h >= 2).then(|| if h > STEP { h - STEP } else { h / 2 }),
            (Some(l), Some(h)) => (h >= l.saturating_add(2)).then(|| l + (h - l) / 2),
        };
        if let Some(d) = room {
            path.push((d, dot));
            return Position(path);
        }
        match (l, h) {
            (Some(l), Some(h)) => {
                path.push(l);
                hi_bounds = l == h;
            }
            (Some(l), None) => path.push(l),
            (None, Some(h)) if h.0 >= 1 => {
                path.push((h.0 - 1, dot));
                hi_bounds = false;
            }
            (None, Some(h)) => path.push(h),
            (None, None) => unreachable!("there is always room between the two ends"),
        }
    }
    unreachable!()
}

/// A list: elements by position; each element's value is a register so that `LSET` is
/// last-writer-wins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ListPart {
    pub items: BTreeMap<Position, Register<Blob>>,
}

impl ListPart {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn value_at(&self, reg: &Register<Blob>) -> Blob {
        reg.value().cloned().unwrap_or_default()
    }

    pub fn insert(&mut self, position: Position, value: Blob) {
        let dot = position.birth();
        self.items.insert(position, Register::new(dot, value));
    }

    pub fn remove(&mut self, position: &Position) {
        self.items.remove(position);
    }

    /// `LSET`: replaces the value the writer observed (an element popped meanwhile stays gone).
    pub fn set(&mut self, position: &Position, dot: Dot, value: Blob, ctx: &VersionVector) {
        if let Some(reg) = self.items.get_mut(position) {
            reg.assign(dot, value, ctx);
        }
    }

    /// `DEL` and overwrites: the elements whose insertion was observed go.
    pub fn remove_covered(&mut self, ctx: &VersionVector) {
        self.items.retain(|p, _| !ctx.covers(p.birth()));
    }

    pub fn max_dot(&self) -> Option<Dot> {
        self.items.iter().filter_map(|(p, r)| r.max_dot().max(Some(p.birth()))).max()
    }

    pub fn join(&mut self, other: &ListPart, my_ctx: &VersionVector, other_ctx: &VersionVector) {
        self.items.retain(|p, reg| match other.items.get(p) {
            Some(theirs) => {
                reg.join(theirs, my_ctx, other_ctx);
                if reg.is_empty() {
                    // Both sides replaced the value concurrently with each other's view:
                    // keep the greatest of the writes either side had.
                    *reg = Register::new(p.birth(), Blob::new());
                }
                true
            }
            None => !other_ctx.covers(p.birth()),
        });
        for (p, reg) in &other.items {
            if !self.items.contains_key(p) && !my_ctx.covers(p.birth()) {
                self.items.insert(p.clone(), reg.clone());
            }
        }
    }

    /// The element at `index` (negative counts from the end).
    pub fn get(&self, index: i64) -> Option<(&Position, &Register<Blob>)> {
        let len = self.len() as i64;
        let i = if index < 0 { len + index } else { index };
        if i < 0 || i >= len {
            return None;
        }
        if i <= len / 2 {
            self.items.iter().nth(i as usize)
        } else {
            self.items.iter().rev().nth((len - 1 - i) as usize)
        }
    }

    pub fn first(&self) -> Option<&Position> {
        self.items.keys().next()
    }

    pub fn last(&self) -> Option<&Position> {
        self.items.keys().next_back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::Timestamp;

    fn dot(r: u64, t: u64) -> Dot {
        Dot::new(r, Timestamp(t))
    }

    #[test]
    fn pushes_at_both_ends_keep_order() {
        let mut list = ListPart::default();
        let mut t = 0;
        let mut next = || {
            t += 1;
            dot(1, t)
        };
        for i in 0..5000u32 {
            let d = next();
            let p = if i % 2 == 0 {
                position_between(list.last(), None, d)
            } else {
                position_between(None, list.first(), d)
            };
            list.insert(p, Blob::from_slice(&i.to_be_bytes()));
        }
        assert_eq!(list.len(), 5000);
        let values: Vec<u32> = list
            .items
            .values()
            .map(|r| u32::from_be_bytes(r.value().unwrap()[..].try_into().unwrap()))
            .collect();
        let mut expected: Vec<u32> = (0..5000).filter(|i| i % 2 == 1).rev().collect();
        expected.extend((0..5000).filter(|i| i % 2 == 0));
        assert_eq!(values, expected);
        assert!(list.items.keys().all(|p| p.0.len() == 1), "end pushes stay one level deep");
    }

    #[test]
    fn inserts_between_neighbours_always_find_room() {
        let mut list = ListPart::default();
        let a = position_between(None, None, dot(1, 1));
        let b = position_between(Some(&a), None, dot(1, 2));
        list.insert(a.clone(), Blob::from_slice(b"a"));
        list.insert(b.clone(), Blob::from_slice(b"b"));
        // Keep inserting right after `a`: positions get deeper but stay strictly ordered.
        let mut hi = b.clone();
        for t in 3..200 {
            let p = position_between(Some(&a), Some(&hi), dot(2, t));
            assert!(a < p && p < hi, "{a:?} < {p:?} < {hi:?}");
            hi = p;
        }
        // Concurrent inserts at the same spot from two replicas both stay, ordered by dot.
        let x = position_between(Some(&a), Some(&b), dot(3, 500));
        let y = position_between(Some(&a), Some(&b), dot(4, 500));
        assert!(x != y && x < b && y < b && a < x && a < y);
        // Between two elements with equal digits and different dots.
        let p = position_between(Some(&x), Some(&y), dot(5, 600));
        let (lo, hi) = if x < y { (&x, &y) } else { (&y, &x) };
        let p2 = position_between(Some(lo), Some(hi), dot(5, 601));
        assert!(lo < &p2 && &p2 < hi, "{lo:?} < {p2:?} < {hi:?}");
        let _ = p;
    }
}
