//! The keyspace: keys, their typed CRDT values, expiry.
//!
//! A key holds one [`Part`] per data type. Normally there is exactly one; two parts of different
//! types exist only after concurrent writes of different types on different replicas, and then
//! the part whose newest write has the greatest dot is the one clients see (the conflict table's
//! "the write with the greater (HLC, replica id) decides the type").

use serde::{Deserialize, Serialize};
use std::any::Any;
use std::borrow::Cow;
use std::collections::BTreeSet;

use indexmap::{IndexMap, IndexSet};
use smallvec::SmallVec;

use super::cell::{Cell, Delta, Register, Sum};
use super::dot::{Dot, VersionVector};
use super::extended::Extended;
use super::hll::{self, Registers};
use super::list::ListPart;
use super::number::{format_float_value, parse_f64, parse_i64};
use super::op::{Effect, Ttl};
use super::stream::{GroupPosition, StreamPart};
use super::{Blob, Value};

pub type Hasher = ahash::RandomState;
pub type Map<V> = IndexMap<Blob, V, Hasher>;

/// The type of a value as clients see it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    String,
    Hash,
    Set,
    ZSet,
    /// A HyperLogLog; Redis reports it as a string.
    Hll,
    List,
    Stream,
}

impl Kind {
    /// The name `TYPE` replies with.
    pub fn name(self) -> &'static str {
        match self {
            Kind::String | Kind::Hll => "string",
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::ZSet => "zset",
            Kind::List => "list",
            Kind::Stream => "stream",
        }
    }
}

/// A string write. `clears_ttl` marks a plain `SET`: as long as the write stays, a concurrent
/// `EXPIRE` it did not observe does not apply (the write set "no TTL", and no TTL is the longest).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrValue {
    pub bytes: Value,
    pub clears_ttl: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HashPart {
    pub fields: Map<Cell<Blob>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SetPart {
    pub members: Map<Register<()>>,
}

/// A sorted-set member: its CRDT state and the score it currently shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZMember {
    pub cell: Cell<f64>,
    pub score: f64,
}

/// A score that orders totally (scores are never NaN).
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score(pub f64);

impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ZSetPart {
    pub members: Map<ZMember>,
    /// Members ordered by (score, member), as Redis orders them.
    pub order: BTreeSet<(Score, Blob)>,
}

/// A HyperLogLog. A delete that observed the HyperLogLog wins over the adds it did not observe
/// ("DEL wins"): `dels` are such deletes not yet known to be stable, and an add that did not
/// observe one of them is discarded. `first_adds` holds each replica's first add, to tell whether
/// a delete observed the HyperLogLog at all.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HllPart {
    #[serde(with = "registers_serde")]
    pub regs: Option<Box<Registers>>,
    #[serde(deserialize_with = "crate::crdt::blob::small_vec")]
    pub dels: SmallVec<[Dot; 1]>,
    #[serde(deserialize_with = "crate::crdt::blob::small_vec")]
    pub first_adds: SmallVec<[Dot; 2]>,
    pub last_add: Option<Dot>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Part {
    Str(Cell<StrValue>),
    Hash(Box<HashPart>),
    Set(Box<SetPart>),
    ZSet(Box<ZSetPart>),
    Hll(Box<HllPart>),
    List(Box<ListPart>),
    Stream(Box<StreamPart>),
}

impl Part {
    fn empty(kind: Kind) -> Part {
        match kind {
            Kind::String => Part::Str(Cell::default()),
            Kind::Hash => Part::Hash(Box::default()),
            Kind::Set => Part::Set(Box::default()),
            Kind::ZSet => Part::ZSet(Box::default()),
            Kind::Hll => Part::Hll(Box::default()),
            Kind::List => Part::List(Box::default()),
            Kind::Stream => Part::Stream(Box::default()),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Part::Str(_) => Kind::String,
            Part::Hash(_) => Kind::Hash,
            Part::Set(_) => Kind::Set,
            Part::ZSet(_) => Kind::ZSet,
            Part::Hll(_) => Kind::Hll,
            Part::List(_) => Kind::List,
            Part::Stream(_) => Kind::Stream,
        }
    }

    /// True when clients would see nothing here.
    pub fn is_empty(&self) -> bool {
        match self {
            Part::Str(c) => c.is_empty(),
            Part::Hash(h) => h.fields.is_empty(),
            Part::Set(s) => s.members.is_empty(),
            Part::ZSet(z) => z.members.is_empty(),
            Part::Hll(h) => h.regs.is_none(),
            Part::List(l) => l.is_empty(),
            Part::Stream(s) => s.is_empty(),
        }
    }

    /// True when the part holds no metadata either and can be dropped.
    fn is_void(&self) -> bool {
        match self {
            Part::Hll(h) => h.regs.is_none() && h.dels.is_empty(),
            Part::Stream(s) => s.is_empty() && s.group_deletes.is_empty(),
            other => other.is_empty(),
        }
    }

    /// The newest write the part holds: decides which type wins a type conflict.
    pub fn max_dot(&self) -> Option<Dot> {
        match self {
            Part::Str(c) => c.max_dot(),
            Part::Hash(h) => h.fields.values().filter_map(|c| c.max_dot()).max(),
            Part::Set(s) => s.members.values().filter_map(|r| r.max_dot()).max(),
            Part::ZSet(z) => z.members.values().filter_map(|m| m.cell.max_dot()).max(),
            Part::Hll(h) => h.last_add,
            Part::List(l) => l.max_dot(),
            Part::Stream(s) => s.max_dot(),
        }
    }

    /// Removes everything `ctx` covers (a delete or an overwrite by the write `dot`).
    fn remove_covered(&mut self, dot: Dot, ctx: &VersionVector) {
        match self {
            Part::Str(c) => {
                c.remove_covered(ctx);
            }
            Part::Hash(h) => h.fields.retain(|_, c| {
                c.remove_covered(ctx);
                !c.is_empty()
            }),
            Part::Set(s) => s.members.retain(|_, r| {
                r.remove_covered(ctx);
                !r.is_empty()
            }),
            Part::ZSet(z) => {
                let ZSetPart { members, order } = &mut **z;
                members.retain(|m, zm| {
                    zm.cell.remove_covered(ctx);
                    let keep = !zm.cell.is_empty();
                    order.remove(&(Score(zm.score), m.clone()));
                    if keep {
                        zm.score = visible_score(&zm.cell);
                        order.insert((Score(zm.score), m.clone()));
                    }
                    keep
                });
            }
            Part::Hll(h) => h.delete(dot, ctx),
            Part::List(l) => l.remove_covered(ctx),
            Part::Stream(s) => s.remove_covered(ctx),
        }
    }

    fn compact(&mut self, stable: &VersionVector) {
        match self {
            Part::Str(c) => c.compact(stable),
            Part::Hash(h) => h.fields.values_mut().for_each(|c| c.compact(stable)),
            Part::ZSet(z) => z.members.values_mut().for_each(|m| m.cell.compact(stable)),
            Part::Set(_) => {}
            Part::Hll(h) => h.dels.retain(|d| !stable.covers(*d)),
            Part::List(_) => {}
            Part::Stream(s) => s.compact(stable),
        }
    }

    fn join(&mut self, other: &Part, my_ctx: &VersionVector, other_ctx: &VersionVector) {
        match (self, other) {
            (Part::Str(a), Part::Str(b)) => {
                a.join_with(b, my_ctx, other_ctx, |x, y| x.clears_ttl &= y.clears_ttl)
            }
            (Part::Hash(a), Part::Hash(b)) => {
                join_maps(&mut a.fields, &b.fields, |x, y| x.join_with(y, my_ctx, other_ctx, |_, _| {}))
            }
            (Part::Set(a), Part::Set(b)) => {
                join_maps(&mut a.members, &b.members, |x, y| x.join(y, my_ctx, other_ctx))
            }
            (Part::ZSet(a), Part::ZSet(b)) => {
                let empty = ZMember { cell: Cell::default(), score: 0.0 };
                let keys: Vec<Blob> = a.members.keys().chain(b.members.keys()).cloned().collect();
                for k in keys {
                    let theirs = b.members.get(&k).unwrap_or(&empty).cell.clone();
                    let mut cell = a.members.get(&k).map(|m| m.cell.clone()).unwrap_or_default();
                    cell.join_with(&theirs, my_ctx, other_ctx, |_, _| {});
                    a.set_member(&k, if cell.is_empty() { None } else { Some(cell) });
                }
            }
            (Part::Hll(a), Part::Hll(b)) => a.join(b, my_ctx, other_ctx),
            (Part::List(a), Part::List(b)) => a.join(b, my_ctx, other_ctx),
            (Part::Stream(a), Part::Stream(b)) => a.join(b, my_ctx, other_ctx),
            _ => unreachable!("parts are joined by kind"),
        }
    }
}

fn join_maps<V>(mine: &mut Map<V>, theirs: &Map<V>, join: impl Fn(&mut V, &V))
where
    V: Default + Clone + PartialEq + EmptyCheck,
{
    let empty = V::default();
    for (k, v) in mine.iter_mut() {
        join(v, theirs.get(k).unwrap_or(&empty));
    }
    for (k, v) in theirs {
        if !mine.contains_key(k) {
            let mut fresh = V::default();
            join(&mut fresh, v);
            mine.insert(k.clone(), fresh);
        }
    }
    mine.retain(|_, v| !v.check_empty());
}

trait EmptyCheck {
    fn check_empty(&self) -> bool;
}
impl EmptyCheck for Cell<Blob> {
    fn check_empty(&self) -> bool {
        self.is_empty()
    }
}
impl EmptyCheck for Register<()> {
    fn check_empty(&self) -> bool {
        self.is_empty()
    }
}

/// Removes a field or member. Small collections keep insertion order (clients see the order
/// Redis's compact encodings give); large ones swap the last element in, in O(1).
fn remove_keeping_order<V>(map: &mut Map<V>, key: &[u8]) {
    if map.len() <= 128 {
        map.shift_remove(key);
    } else {
        map.swap_remove(key);
    }
}

/// The score a sorted-set member shows: its winning `ZADD` plus the `ZINCRBY`s no `ZADD` observed.
pub fn visible_score(cell: &Cell<f64>) -> f64 {
    let base = cell.reg.value().copied().unwrap_or(0.0);
    let sum = cell.sum();
    if sum.int == 0 && sum.float == 0.0 {
        base
    } else {
        base + sum.as_f64()
    }
}

impl ZSetPart {
    /// Replaces a member's state (None removes it) and keeps the order index in step.
    pub fn set_member(&mut self, member: &[u8], cell: Option<Cell<f64>>) {
        if let Some(old) = self.members.get(member) {
            self.order.remove(&(Score(old.score), Blob::from_slice(member)));
        }
        match cell {
            Some(cell) => {
                let score = visible_score(&cell);
                self.order.insert((Score(score), Blob::from_slice(member)));
                self.members.insert(Blob::from_slice(member), ZMember { cell, score });
            }
            None => {
                self.members.swap_remove(member);
            }
        }
    }

    fn update(&mut self, member: &[u8], f: impl FnOnce(&mut Cell<f64>)) {
        let mut cell = self.members.get(member).map(|m| m.cell.clone()).unwrap_or_default();
        f(&mut cell);
        self.set_member(member, if cell.is_empty() { None } else { Some(cell) });
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.members.get(member).map(|m| m.score)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// Registers travel as a byte vector (serde has no impl for arrays this long).
mod registers_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Registers;
    use crate::crdt::hll::REGISTERS;

    pub fn serialize<S: Serializer>(regs: &Option<Box<Registers>>, s: S) -> Result<S::Ok, S::Error> {
        regs.as_ref().map(|r| r.to_vec()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<Registers>>, D::Error> {
        let v: Option<Vec<u8>> = Option::deserialize(d)?;
        match v {
            None => Ok(None),
            Some(v) if v.len() == REGISTERS => {
                let mut regs = Box::new([0u8; REGISTERS]);
                regs.copy_from_slice(&v);
                Ok(Some(regs))
            }
            Some(_) => Err(serde::de::Error::custom("a HyperLogLog has 16384 registers")),
        }
    }
}

impl HllPart {
    fn delete(&mut self, dot: Dot, ctx: &VersionVector) {
        if !self.first_adds.iter().any(|d| ctx.covers(*d)) {
            return; // the deleting replica never saw this HyperLogLog
        }
        self.regs = None;
        self.last_add = None;
        self.dels.retain(|d| !ctx.covers(*d));
        self.dels.push(dot);
    }

    fn add(&mut self, dot: Dot, ctx: &VersionVector, updates: &[(u16, u8)]) {
        // Even a discarded add counts as seen: a later delete that observed it must still win.
        if !self.first_adds.iter().any(|d| d.replica == dot.replica) {
            self.first_adds.push(dot);
            self.first_adds.sort();
        }
        if self.dels.iter().any(|d| !ctx.covers(*d)) {
            return; // a delete this add did not observe wins
        }
        let regs = self.regs.get_or_insert_with(|| Box::new([0u8; hll::REGISTERS]));
        for &(i, r) in updates {
            let slot = &mut regs[i as usize % hll::REGISTERS];
            *slot = (*slot).max(r);
        }
        self.last_add = self.last_add.max(Some(dot));
    }

    fn join(&mut self, other: &HllPart, my_ctx: &VersionVector, other_ctx: &VersionVector) {
        // Registers on a side that has not seen a delete of the other side hold only adds that
        // the delete wins over; registers of a side that saw all deletes hold only later adds.
        let mine_lost = other.dels.iter().any(|d| !my_ctx.covers(*d));
        let theirs_lost = self.dels.iter().any(|d| !other_ctx.covers(*d));
        let mut regs: Option<Box<Registers>> = if mine_lost { None } else { self.regs.take() };
        let mut last = if mine_lost { None } else { self.last_add };
        if !theirs_lost {
            if let Some(theirs) = &other.regs {
                let r = regs.get_or_insert_with(|| Box::new([0u8; hll::REGISTERS]));
                for (a, b) in r.iter_mut().zip(theirs.iter()) {
                    *a = (*a).max(*b);
                }
                last = last.max(other.last_add);
            }
        }
        self.regs = regs;
        self.last_add = if self.regs.is_some() { last } else { None };
        let mut dels: SmallVec<[Dot; 1]> = self.dels.clone();
        for d in &other.dels {
            if !dels.contains(d) {
                dels.push(*d);
            }
        }
        dels.sort();
        self.dels = dels;
        for d in &other.first_adds {
            match self.first_adds.iter_mut().find(|m| m.replica == d.replica) {
                Some(m) => *m = (*m).min(*d),
                None => self.first_adds.push(*d),
            }
        }
        self.first_adds.sort();
    }

    pub fn count(&self) -> u64 {
        self.regs.as_ref().map(|r| hll::count(r)).unwrap_or(0)
    }
}

/// One key's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(deserialize_with = "crate::crdt::blob::small_vec")]
    parts: SmallVec<[Part; 1]>,
    expiry: Option<Box<Register<Option<u64>>>>,
    /// Seconds (replica clock) of the last access, for `OBJECT IDLETIME`.
    pub accessed: u32,
}

impl Entry {
    /// The part clients see, if any.
    pub fn visible(&self) -> Option<&Part> {
        if self.parts.len() == 1 {
            let p = &self.parts[0];
            return (!p.is_empty()).then_some(p);
        }
        self.parts.iter().filter(|p| !p.is_empty()).max_by_key(|p| p.max_dot())
    }

    fn visible_index(&self) -> Option<usize> {
        self.parts
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .max_by_key(|(_, p)| p.max_dot())
            .map(|(i, _)| i)
    }

    pub fn visible_mut(&mut self) -> Option<&mut Part> {
        let i = self.visible_index()?;
        Some(&mut self.parts[i])
    }

    pub fn kind(&self) -> Option<Kind> {
        self.visible().map(|p| p.kind())
    }

    pub fn is_visible(&self) -> bool {
        self.parts.iter().any(|p| !p.is_empty())
    }

    fn is_void(&self) -> bool {
        self.parts.iter().all(|p| p.is_void()) && self.expiry.is_none()
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The absolute expiry deadline (Unix ms), if the key has one. Concurrent `EXPIRE`s resolve
    /// to the longest TTL; a concurrent `PERSIST` or plain `SET` wins over them.
    pub fn deadline(&self) -> Option<u64> {
        let reg = self.expiry.as_ref()?;
        if reg.writes().iter().any(|w| w.value.is_none()) {
            return None;
        }
        // Only a string that is what clients see can cancel the TTL (not one that lost a type
        // conflict).
        if let Some(Part::Str(c)) = self.visible() {
            if c.reg.writes().iter().any(|w| w.value.clears_ttl) {
                return None;
            }
        }
        reg.writes().iter().filter_map(|w| w.value).max()
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expiry.is_some() && self.deadline().is_some_and(|d| d <= now_ms)
    }

    pub fn has_expiry_state(&self) -> bool {
        self.expiry.is_some()
    }

    fn part_mut(&mut self, kind: Kind) -> &mut Part {
        let i = match self.parts.iter().position(|p| p.kind() == kind) {
            Some(i) => i,
            None => {
                self.parts.push(Part::empty(kind));
                self.parts.len() - 1
            }
        };
        &mut self.parts[i]
    }

    fn remove_covered(&mut self, dot: Dot, ctx: &VersionVector) {
        for p in self.parts.iter_mut() {
            p.remove_covered(dot, ctx);
        }
    }

    fn remove_covered_expiry(&mut self, ctx: &VersionVector) {
        if let Some(reg) = self.expiry.as_mut() {
            reg.remove_covered(ctx);
            if reg.is_empty() {
                self.expiry = None;
            }
        }
    }

    /// Applies one operation. `ctx` is what the writing replica had observed when it issued the
    /// write `dot`; `stable` is what every replica is known to have observed.
    pub fn apply(&mut self, effect: &Effect, dot: Dot, ctx: &VersionVector, stable: &VersionVector) {
        match effect {
            Effect::Assign { value, ttl } => {
                self.remove_covered(dot, ctx);
                let clears_ttl = *ttl == Ttl::Clear;
                if let Part::Str(c) = self.part_mut(Kind::String) {
                    c.assign(dot, StrValue { bytes: value.clone(), clears_ttl }, ctx);
                }
                match ttl {
                    Ttl::Keep => {}
                    Ttl::Clear => self.remove_covered_expiry(ctx),
                    Ttl::At(deadline) => {
                        self.remove_covered_expiry(ctx);
                        self.expiry.get_or_insert_with(Default::default).assign(dot, Some(*deadline), ctx);
                    }
                }
            }
            Effect::Incr { int, float, is_float, ext } => {
                if let Part::Str(c) = self.part_mut(Kind::String) {
                    c.increment(
                        dot,
                        Delta { int: *int, float: *float, is_float: *is_float, ext: *ext },
                        stable,
                    );
                }
            }
            Effect::Delete => {
                self.remove_covered(dot, ctx);
                self.remove_covered_expiry(ctx);
            }
            Effect::IncrFloat { by, value } => {
                self.remove_covered(dot, ctx);
                if let Part::Str(c) = self.part_mut(Kind::String) {
                    let value = StrValue { bytes: Value::from_slice(value.as_slice()), clears_ttl: false };
                    c.assign_increment(dot, value, Delta::extended(*by), ctx, stable);
                }
            }
            Effect::HashIncrFloat { field, by, value } => {
                if let Part::Hash(h) = self.part_mut(Kind::Hash) {
                    let cell = h.fields.entry(field.clone()).or_default();
                    cell.assign_increment(dot, value.clone(), Delta::extended(*by), ctx, stable);
                }
            }
            Effect::Expire { deadline } => {
                self.expiry.get_or_insert_with(Default::default).assign(dot, *deadline, ctx);
                if let Some(Part::Str(c)) = self.parts.iter_mut().find(|p| p.kind() == Kind::String) {
                    for w in c.reg.writes_mut() {
                        if ctx.covers(w.dot) {
                            w.value.clears_ttl = false;
                        }
                    }
                }
            }
            Effect::HashSet { fields } => {
                if let Part::Hash(h) = self.part_mut(Kind::Hash) {
                    for (f, v) in fields {
                        h.fields.entry(f.clone()).or_default().assign(dot, v.clone(), ctx);
                    }
                }
            }
            Effect::HashIncr { field, int, float, is_float, ext } => {
                if let Part::Hash(h) = self.part_mut(Kind::Hash) {
                    h.fields.entry(field.clone()).or_default().increment(
                        dot,
                        Delta { int: *int, float: *float, is_float: *is_float, ext: *ext },
                        stable,
                    );
                }
            }
            Effect::HashDel { fields } => {
                if let Part::Hash(h) = self.part_mut(Kind::Hash) {
                    for f in fields {
                        if let Some(c) = h.fields.get_mut(f.as_slice()) {
                            c.remove_covered(ctx);
                            if c.is_empty() {
                                remove_keeping_order(&mut h.fields, f);
                            }
                        }
                    }
                }
            }
            Effect::SetAdd { members } => {
                if let Part::Set(s) = self.part_mut(Kind::Set) {
                    for m in members {
                        s.members.entry(m.clone()).or_default().assign(dot, (), ctx);
                    }
                }
            }
            Effect::SetRem { members } => {
                if let Part::Set(s) = self.part_mut(Kind::Set) {
                    for m in members {
                        if let Some(r) = s.members.get_mut(m.as_slice()) {
                            r.remove_covered(ctx);
                            if r.is_empty() {
                                remove_keeping_order(&mut s.members, m);
                            }
                        }
                    }
                }
            }
            Effect::ZAdd { members } => {
                if let Part::ZSet(z) = self.part_mut(Kind::ZSet) {
                    for (m, score) in members {
                        z.update(m, |c| c.assign(dot, *score, ctx));
                    }
                }
            }
            Effect::ZIncr { member, delta } => {
                if let Part::ZSet(z) = self.part_mut(Kind::ZSet) {
                    z.update(member, |c| c.increment(dot, Delta::float(*delta), stable));
                }
            }
            Effect::ZRem { members } => {
                if let Part::ZSet(z) = self.part_mut(Kind::ZSet) {
                    for m in members {
                        if z.members.contains_key(m.as_slice()) {
                            z.update(m, |c| {
                                c.remove_covered(ctx);
                            });
                        }
                    }
                }
            }
            Effect::HllAdd { updates } => {
                if let Part::Hll(h) = self.part_mut(Kind::Hll) {
                    h.add(dot, ctx, updates);
                }
            }
            Effect::Flush => unreachable!("flush applies to a whole keyspace"),
            Effect::ListInsert { items } => {
                if let Part::List(l) = self.part_mut(Kind::List) {
                    for (p, v) in items {
                        l.insert(p.clone(), v.clone());
                    }
                }
            }
            Effect::ListRemove { positions } => {
                if let Part::List(l) = self.part_mut(Kind::List) {
                    for p in positions {
                        l.remove(p);
                    }
                }
            }
            Effect::ListSet { position, value } => {
                if let Part::List(l) = self.part_mut(Kind::List) {
                    l.set(position, dot, value.clone(), ctx);
                }
            }
            Effect::StreamAdd { id, fields } => {
                if let Part::Stream(s) = self.part_mut(Kind::Stream) {
                    s.add(*id, fields.clone(), dot, ctx, stable);
                }
            }
            Effect::StreamDel { ids, max_deleted } => {
                if let Part::Stream(s) = self.part_mut(Kind::Stream) {
                    s.delete(ids, *max_deleted, dot, ctx);
                }
            }
            Effect::StreamSetId { last, entries_added, max_deleted } => {
                if let Part::Stream(s) = self.part_mut(Kind::Stream) {
                    s.set_id(*last, *entries_added, *max_deleted, dot, ctx);
                }
            }
            Effect::GroupCreate { group, last, entries_read } => {
                if let Part::Stream(s) = self.part_mut(Kind::Stream) {
                    let position = GroupPosition { last_id: *last, entries_read: *entries_read };
                    s.create_group(group, position, dot, ctx);
                }
            }
            Effect::GroupDestroy { group } => {
                if let Part::Stream(s) = self.part_mut(Kind::Stream) {
                    s.destroy_group(group, dot, ctx);
                }
            }
            Effect::GroupSetId { group, last, entries_read } => {
                if let Part::Stream(s) = self.part_mut(Kind::Stream) {
                    let position = GroupPosition { last_id: *last, entries_read: *entries_read };
                    s.set_group_id(group, position, dot, ctx);
                }
            }
            Effect::GroupAck { group, ids } => {
                if let Part::Stream(s) = self.part_mut(Kind::Stream) {
                    s.ack(group, ids, ctx);
                }
            }
        }
        self.parts.retain(|p| !p.is_void());
    }

    /// Drops metadata every replica is known to have observed.
    pub fn compact(&mut self, stable: &VersionVector) {
        for p in self.parts.iter_mut() {
            p.compact(stable);
        }
        self.parts.retain(|p| !p.is_void());
    }

    /// State-based join of two replicas' views of one key.
    pub fn join(&mut self, other: &Entry, my_ctx: &VersionVector, other_ctx: &VersionVector) {
        for theirs in &other.parts {
            let kind = theirs.kind();
            self.part_mut(kind).join(theirs, my_ctx, other_ctx);
        }
        for mine in self.parts.iter_mut() {
            if !other.parts.iter().any(|p| p.kind() == mine.kind()) {
                let empty = Part::empty(mine.kind());
                mine.join(&empty, my_ctx, other_ctx);
            }
        }
        self.parts.retain(|p| !p.is_void());
        self.parts.sort_by_key(|p| p.kind());
        let empty = Register::default();
        let mut reg = self.expiry.take().map(|b| *b).unwrap_or_default();
        reg.join(other.expiry.as_deref().unwrap_or(&empty), my_ctx, other_ctx);
        self.expiry = (!reg.is_empty()).then(|| Box::new(reg));
    }

    /// A hash of what clients see of this key, for `SYNCMESH.DIGEST`.
    pub fn digest(&self, key: &[u8]) -> Option<u128> {
        let part = self.visible()?;
        let mut buf: Vec<u8> = Vec::with_capacity(64);
        let mut put = |b: &[u8]| {
            buf.extend_from_slice(&(b.len() as u64).to_le_bytes());
            buf.extend_from_slice(b);
        };
        put(key);
        put(part.kind().name().as_bytes());
        put(&self.deadline().unwrap_or(0).to_le_bytes());
        match part {
            Part::Str(c) => put(&string_value(c)),
            Part::Hash(h) => {
                let mut fields: Vec<(&Blob, Cow<[u8]>)> =
                    h.fields.iter().map(|(f, c)| (f, cell_string(c))).collect();
                fields.sort();
                for (f, v) in fields {
                    put(f);
                    put(&v);
                }
            }
            Part::Set(s) => {
                let mut members: Vec<&Blob> = s.members.keys().collect();
                members.sort();
                for m in members {
                    put(m);
                }
            }
            Part::ZSet(z) => {
                for (score, m) in &z.order {
                    put(m);
                    put(&score.0.to_bits().to_le_bytes());
                }
            }
            Part::Hll(h) => {
                if let Some(r) = &h.regs {
                    put(&r[..]);
                }
            }
            Part::List(l) => {
                for reg in l.items.values() {
                    put(&l.value_at(reg));
                }
            }
            Part::Stream(s) => s.digest_into(&mut put),
        }
        Some(xxhash_rust::xxh3::xxh3_128(&buf))
    }
}

/// The bytes a string key shows: its winning write, plus any increments no write observed.
/// The bytes of a large string value, shared (None when the value is short or counters add to
/// it): a reply can be written from them without a copy.
pub fn string_shared(cell: &Cell<StrValue>) -> Option<bytes::Bytes> {
    if cell.counter.is_some() {
        return None;
    }
    cell.reg.value().and_then(|v| v.bytes.shared())
}

pub fn string_value(cell: &Cell<StrValue>) -> Cow<'_, [u8]> {
    let base: &[u8] = cell.reg.value().map(|v| v.bytes.as_slice()).unwrap_or(b"");
    with_increments(base, cell.has_increments(), cell.sum())
}

/// The bytes a hash field shows.
pub fn cell_string(cell: &Cell<Blob>) -> Cow<'_, [u8]> {
    let base: &[u8] = cell.reg.value().map(|v| v.as_slice()).unwrap_or(b"");
    with_increments(base, cell.has_increments(), cell.sum())
}

fn with_increments(base: &[u8], has_increments: bool, sum: Sum) -> Cow<'_, [u8]> {
    if !has_increments {
        return Cow::Borrowed(base);
    }
    let base = if base.is_empty() { b"0".as_slice() } else { base };
    if !sum.is_float {
        if let Some(b) = parse_i64(base) {
            return Cow::Owned(b.wrapping_add(sum.int).to_string().into_bytes());
        }
    }
    // As Redis: parse in x87 extended precision, add, print with 17 decimals.
    match Extended::parse_redis(base) {
        Some(b) => {
            let total = b + Extended::from_i64(sum.int) + sum.ext;
            if total.is_finite() {
                Cow::Owned(total.format_human().into_bytes())
            } else {
                Cow::Owned(format_float_value(parse_f64(base).unwrap_or(0.0) + sum.as_f64()).into_bytes())
            }
        }
        // A concurrent non-numeric SET: the string shows as written (documented).
        None => Cow::Borrowed(base),
    }
}

/// One logical database (`SELECT 0`–`15`).
#[derive(Clone, Debug, Default)]
pub struct Keyspace {
    entries: Map<Entry>,
    /// Keys that have expiry state, for the active expiry sweep.
    expiring: IndexSet<Blob, Hasher>,
    /// Entries that hold only metadata (nothing visible).
    hidden: usize,
}

impl Keyspace {
    pub fn from_entries(entries: Vec<(Blob, Entry)>) -> Keyspace {
        let mut ks = Keyspace::default();
        for (k, e) in entries {
            if !e.is_visible() {
                ks.hidden += 1;
            }
            if e.has_expiry_state() {
                ks.expiring.insert(k.clone());
            }
            ks.entries.insert(k, e);
        }
        ks
    }

    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.entries.get_mut(key)
    }

    pub fn get_index(&self, i: usize) -> Option<(&Blob, &Entry)> {
        self.entries.get_index(i)
    }

    /// Number of visible keys (including expired keys not yet removed, as Redis counts them).
    pub fn len(&self) -> usize {
        self.entries.len() - self.hidden
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots in the underlying table (visible or not), for cursors and sampling.
    pub fn slots(&self) -> usize {
        self.entries.len()
    }

    pub fn expiring_len(&self) -> usize {
        self.expiring.len()
    }

    pub fn expiring_key(&self, i: usize) -> Option<&Blob> {
        self.expiring.get_index(i)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Blob, &Entry)> {
        self.entries.iter()
    }

    pub fn apply(
        &mut self,
        key: &[u8],
        effect: &Effect,
        dot: Dot,
        ctx: &VersionVector,
        stable: &VersionVector,
    ) {
        if *effect == Effect::Flush {
            return self.flush(dot, ctx, stable);
        }
        let (index, entry) = match self.entries.get_full_mut(key) {
            Some((i, _, e)) => (i, e),
            None => {
                self.entries.insert(Blob::from_slice(key), Entry::default());
                self.hidden += 1;
                let i = self.entries.len() - 1;
                (i, &mut self.entries[i])
            }
        };
        let was_visible = entry.is_visible();
        entry.apply(effect, dot, ctx, stable);
        let visible = entry.is_visible();
        if !visible {
            // Drop what no replica can still need (all of it, on a replica without peers).
            entry.compact(stable);
        }
        let void = entry.is_void();
        let has_expiry = entry.has_expiry_state();
        match (was_visible, visible) {
            (false, true) => self.hidden -= 1,
            (true, false) => self.hidden += 1,
            _ => {}
        }
        if void {
            self.hidden -= 1;
            self.entries.swap_remove_index(index);
            if self.entries.len() * 8 < self.entries.capacity() {
                self.shrink();
            }
        }
        if has_expiry && !void {
            self.expiring.insert(Blob::from_slice(key));
        } else if self.expiring.contains(key) {
            self.expiring.swap_remove(key);
        }
    }

    /// Moves the bulky contents of `key` out of the keyspace, for a local delete about to remove
    /// the key: a delete issued on this replica observes everything the replica holds, so it would
    /// remove all of it anyway, and the caller can free what comes back elsewhere (lazy free, as
    /// Redis's `UNLINK`) instead of on the command path. Moves collections of more than
    /// `threshold` elements and references to large string values; empty when nothing is worth
    /// moving. The delete must follow at once.
    pub fn detach_contents(&mut self, key: &[u8], threshold: usize) -> Vec<Box<dyn Any + Send>> {
        let mut detached: Vec<Box<dyn Any + Send>> = Vec::new();
        let Some(entry) = self.entries.get_mut(key) else { return detached };
        let was_visible = entry.is_visible();
        for part in entry.parts.iter_mut() {
            match part {
                Part::Str(c) => {
                    for w in c.reg.writes() {
                        if let Value::Large(b) = &w.value.bytes {
                            // The delete drops the keyspace's reference; this one frees the bytes.
                            detached.push(Box::new(b.clone()));
                        }
                    }
                }
                Part::Hash(h) if h.fields.len() > threshold => {
                    detached.push(Box::new(std::mem::take(&mut **h)))
                }
                Part::Set(s) if s.members.len() > threshold => {
                    detached.push(Box::new(std::mem::take(&mut **s)))
                }
                Part::ZSet(z) if z.members.len() > threshold => {
                    detached.push(Box::new(std::mem::take(&mut **z)))
                }
                Part::List(l) if l.len() > threshold => detached.push(Box::new(std::mem::take(&mut **l))),
                Part::Stream(st) if st.entries.len() > threshold => {
                    detached.push(Box::new(std::mem::take(&mut st.entries)))
                }
                _ => {}
            }
        }
        if was_visible && !entry.is_visible() {
            self.hidden += 1;
        }
        detached
    }

    /// Removes everything `ctx` covers from every key.
    fn flush(&mut self, dot: Dot, ctx: &VersionVector, stable: &VersionVector) {
        self.entries.retain(|_, e| {
            e.apply(&Effect::Delete, dot, ctx, stable);
            if !e.is_visible() {
                e.compact(stable);
            }
            !e.is_void()
        });
        self.hidden = self.entries.values().filter(|e| !e.is_visible()).count();
        let entries = &self.entries;
        self.expiring.retain(|k| entries.get(k).is_some_and(|e| e.has_expiry_state()));
        self.shrink();
    }

    /// Gives memory back once the table is mostly empty (as Redis resizes its dictionaries).
    fn shrink(&mut self) {
        if self.entries.capacity() > 64 && self.entries.len() * 8 < self.entries.capacity() {
            self.entries.shrink_to(self.entries.len() * 2);
        }
        if self.expiring.capacity() > 64 && self.expiring.len() * 8 < self.expiring.capacity() {
            self.expiring.shrink_to(self.expiring.len() * 2);
        }
    }

    /// Compacts the entries in slots `from..from + n`; returns how many slots it looked at.
    pub fn compact_slots(&mut self, from: usize, n: usize, stable: &VersionVector) -> usize {
        let end = (from + n).min(self.entries.len());
        let mut i = from;
        while i < end.min(self.entries.len()) {
            let (_, e) = self.entries.get_index_mut(i).expect("slot in range");
            let was_visible = e.is_visible();
            e.compact(stable);
            if e.is_void() {
                if !was_visible {
                    self.hidden -= 1;
                }
                let (k, _) = self.entries.swap_remove_index(i).expect("slot in range");
                self.expiring.swap_remove(&k);
                continue;
            }
            i += 1;
        }
        end.saturating_sub(from)
    }

    pub fn compact(&mut self, stable: &VersionVector) {
        let mut hidden = 0;
        self.entries.retain(|_, e| {
            e.compact(stable);
            if e.is_void() {
                return false;
            }
            if !e.is_visible() {
                hidden += 1;
            }
            true
        });
        self.hidden = hidden;
        let entries = &self.entries;
        self.expiring.retain(|k| entries.get(k).is_some_and(|e| e.has_expiry_state()));
    }

    pub fn join(&mut self, other: &Keyspace, my_ctx: &VersionVector, other_ctx: &VersionVector) {
        let empty = Entry::default();
        let keys: Vec<Blob> = self.entries.keys().chain(other.entries.keys()).cloned().collect();
        for k in keys {
            let theirs = other.entries.get(&k).unwrap_or(&empty);
            let mine = self.entries.entry(k).or_default();
            mine.join(theirs, my_ctx, other_ctx);
        }
        self.entries.retain(|_, e| !e.is_void());
        self.hidden = self.entries.values().filter(|e| !e.is_visible()).count();
        self.expiring =
            self.entries.iter().filter(|(_, e)| e.has_expiry_state()).map(|(k, _)| k.clone()).collect();
    }

    /// Order-independent digest of the visible, unexpired keys.
    pub fn digest(&self, now_ms: u64) -> u128 {
        self.entries
            .iter()
            .filter(|(_, e)| !e.is_expired(now_ms))
            .filter_map(|(k, e)| e.digest(k))
            .fold(0u128, |acc, h| acc.wrapping_add(h))
    }
}
