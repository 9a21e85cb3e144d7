//! Sorted-set commands. Membership is add-wins; a member's score is last-writer-wins for ZADD
//! and adds up for ZINCRBY (a ZADD resets the increments it observed).

use std::collections::HashMap;
use std::ops::Bound;

use bytes::Bytes;
use rand::seq::IndexedRandom;
use rand::Rng;

use super::flags::*;
use super::keys::{parse_cursor, parse_scan_options, scan_slots};
use super::{arg_f64, arg_i64, cmd, eq_ic, glob_match, CmdError, CmdResult, Command, Ctx};
use crate::crdt::keyspace::{Part, Score, ZSetPart};
use crate::crdt::number::{format_double, parse_f64};
use crate::crdt::{Blob, Effect};

#[rustfmt::skip]
pub const COMMANDS: &[Command] = &[
    cmd("zadd", -4, WRITE | DENYOOM | FAST, (1, 1, 1), "sorted-set", "Adds one or more members to a sorted set, or updates their scores.", zadd),
    cmd("zincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), "sorted-set", "Increments the score of a member in a sorted set.", zincrby),
    cmd("zrem", -3, WRITE | FAST, (1, 1, 1), "sorted-set", "Removes one or more members from a sorted set.", zrem),
    cmd("zscore", 3, READONLY | FAST, (1, 1, 1), "sorted-set", "Returns the score of a member in a sorted set.", zscore),
    cmd("zmscore", -3, READONLY | FAST, (1, 1, 1), "sorted-set", "Returns the score of one or more members in a sorted set.", zmscore),
    cmd("zcard", 2, READONLY | FAST, (1, 1, 1), "sorted-set", "Returns the number of members in a sorted set.", zcard),
    cmd("zcount", 4, READONLY | FAST, (1, 1, 1), "sorted-set", "Returns the count of members in a sorted set that have scores within a range.", zcount),
    cmd("zlexcount", 4, READONLY | FAST, (1, 1, 1), "sorted-set", "Returns the number of members in a sorted set within a lexicographical range.", zcount),
    cmd("zrange", -4, READONLY, (1, 1, 1), "sorted-set", "Returns members in a sorted set within a range of indexes.", zrange),
    cmd("zrangestore", -5, WRITE | DENYOOM, (1, 2, 1), "sorted-set", "Stores a range of members from sorted set in a key.", zrange),
    cmd("zrangebyscore", -4, READONLY, (1, 1, 1), "sorted-set", "Returns members in a sorted set within a range of scores.", zrange),
    cmd("zrevrangebyscore", -4, READONLY, (1, 1, 1), "sorted-set", "Returns members in a sorted set within a range of scores in reverse order.", zrange),
    cmd("zrangebylex", -4, READONLY, (1, 1, 1), "sorted-set", "Returns members in a sorted set within a lexicographical range.", zrange),
    cmd("zrevrangebylex", -4, READONLY, (1, 1, 1), "sorted-set", "Returns members in a sorted set within a lexicographical range in reverse order.", zrange),
    cmd("zrevrange", -4, READONLY, (1, 1, 1), "sorted-set", "Returns members in a sorted set within a range of indexes in reverse order.", zrange),
    cmd("zrank", 3, READONLY | FAST, (1, 1, 1), "sorted-set", "Returns the index of a member in a sorted set ordered by ascending scores.", zrank),
    cmd("zrevrank", 3, READONLY | FAST, (1, 1, 1), "sorted-set", "Returns the index of a member in a sorted set ordered by descending scores.", zrank),
    cmd("zpopmin", -2, WRITE | FAST, (1, 1, 1), "sorted-set", "Returns the lowest-scoring members from a sorted set after removing them.", zpop),
    cmd("zpopmax", -2, WRITE | FAST, (1, 1, 1), "sorted-set", "Returns the highest-scoring members from a sorted set after removing them.", zpop),
    cmd("zremrangebyscore", 4, WRITE, (1, 1, 1), "sorted-set", "Removes members in a sorted set within a range of scores.", zremrange),
    cmd("zremrangebyrank", 4, WRITE, (1, 1, 1), "sorted-set", "Removes members in a sorted set within a range of indexes.", zremrange),
    cmd("zremrangebylex", 4, WRITE, (1, 1, 1), "sorted-set", "Removes members in a sorted set within a lexicographical range.", zremrange),
    cmd("zunionstore", -4, WRITE | DENYOOM, (1, 1, 1), "sorted-set", "Stores the union of multiple sorted sets in a key.", zsetop),
    cmd("zinterstore", -4, WRITE | DENYOOM, (1, 1, 1), "sorted-set", "Stores the intersect of multiple sorted sets in a key.", zsetop),
    cmd("zdiffstore", -4, WRITE | DENYOOM, (1, 1, 1), "sorted-set", "Stores the difference of multiple sorted sets in a key.", zsetop),
    cmd("zunion", -3, READONLY, (0, 0, 0), "sorted-set", "Returns the union of multiple sorted sets.", zsetop),
    cmd("zinter", -3, READONLY, (0, 0, 0), "sorted-set", "Returns the intersect of multiple sorted sets.", zsetop),
    cmd("zintercard", -3, READONLY, (0, 0, 0), "sorted-set", "Returns the number of members of the intersect of multiple sorted sets.", zintercard),
    cmd("zdiff", -3, READONLY, (0, 0, 0), "sorted-set", "Returns the difference between multiple sorted sets.", zsetop),
    cmd("zmpop", -4, WRITE, (0, 0, 0), "sorted-set", "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.", zmpop),
    cmd("bzpopmin", -3, WRITE | FAST | BLOCKING, (1, -2, 1), "sorted-set", "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise.", bzpop),
    cmd("bzpopmax", -3, WRITE | FAST | BLOCKING, (1, -2, 1), "sorted-set", "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.", bzpop),
    cmd("bzmpop", -5, WRITE | BLOCKING, (0, 0, 0), "sorted-set", "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise.", zmpop),
    cmd("zrandmember", -2, READONLY, (1, 1, 1), "sorted-set", "Returns one or more random members from a sorted set.", zrandmember),
    cmd("zscan", -3, READONLY, (1, 1, 1), "sorted-set", "Iterates over members and scores of a sorted set.", zscan),
];

pub fn zset<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c ZSetPart>, CmdError> {
    match ctx.part(key) {
        None => Ok(None),
        Some(Part::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(CmdError::WrongType),
    }
}

fn zadd(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) = (false, false, false, false, false, false);
    let mut i = 2;
    while i < args.len() {
        match String::from_utf8_lossy(&args[i]).to_ascii_lowercase().as_str() {
            "nx" => nx = true,
            "xx" => xx = true,
            "gt" => gt = true,
            "lt" => lt = true,
            "ch" => ch = true,
            "incr" => incr = true,
            _ => break,
        }
        i += 1;
    }
    let rest = &args[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if nx && xx {
        return Err(CmdError::msg("XX and NX options at the same time are not compatible"));
    }
    if nx && (gt || lt) || (gt && lt) {
        return Err(CmdError::msg("GT, LT, and/or NX options at the same time are not compatible"));
    }
    if incr && rest.len() > 2 {
        return Err(CmdError::msg("INCR option supports a single increment-element pair"));
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks(2) {
        pairs.push((arg_f64(&p[0])?, &p[1]));
    }
    let current: Vec<Option<f64>> = match zset(ctx, &args[1])? {
        Some(z) => pairs.iter().map(|(_, m)| z.score(m)).collect(),
        None => vec![None; pairs.len()],
    };
    let (mut added, mut changed) = (0, 0);
    let mut writes: Vec<(Blob, f64)> = Vec::new();
    let mut seen: HashMap<&[u8], f64> = HashMap::new();
    let mut incr_result = None;
    for ((score, member), cur) in pairs.iter().zip(current) {
        let cur = seen.get(&member[..]).copied().or(cur);
        if (nx && cur.is_some()) || (xx && cur.is_none()) {
            continue;
        }
        let new = if incr { cur.unwrap_or(0.0) + score } else { *score };
        if new.is_nan() {
            return Err(CmdError::msg("resulting score is not a number (NaN)"));
        }
        if let Some(c) = cur {
            if (gt && new <= c) || (lt && new >= c) {
                continue;
            }
            if new == c {
                // Nothing changes (and, as in Redis, nothing is signalled to WATCH).
                if incr {
                    incr_result = Some(new);
                }
                continue;
            }
            changed += 1;
        } else {
            added += 1;
        }
        seen.insert(member, new);
        if incr {
            incr_result = Some(new);
            ctx.write(&args[1], Effect::ZIncr { member: Blob::from_slice(member), delta: *score });
        } else {
            writes.retain(|(m, _)| m[..] != member[..]);
            writes.push((Blob::from_slice(member), new));
        }
    }
    if !writes.is_empty() {
        ctx.write(&args[1], Effect::ZAdd { members: writes });
    }
    if incr {
        match incr_result {
            Some(s) => ctx.out.double(s),
            None => ctx.out.null(),
        }
    } else {
        ctx.out.int(if ch { added + changed } else { added });
    }
    Ok(())
}

fn zincrby(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let by = arg_f64(&args[2])?;
    let cur = zset(ctx, &args[1])?.and_then(|z| z.score(&args[3])).unwrap_or(0.0);
    let new = cur + by;
    if new.is_nan() {
        return Err(CmdError::msg("resulting score is not a number (NaN)"));
    }
    ctx.write(&args[1], Effect::ZIncr { member: Blob::from_slice(&args[3]), delta: by });
    ctx.out.double(new);
    Ok(())
}

fn zrem(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let present = match zset(ctx, &args[1])? {
        None => vec![],
        Some(z) => super::present_once(&args[2..], |a| z.members.contains_key(a)),
    };
    let n = present.len();
    if n > 0 {
        ctx.write(&args[1], Effect::ZRem { members: present });
    }
    ctx.out.int(n as i64);
    Ok(())
}

fn zscore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    match zset(ctx, &args[1])?.and_then(|z| z.score(&args[2])) {
        Some(s) => ctx.out.double(s),
        None => ctx.out.null(),
    }
    Ok(())
}

fn zmscore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let scores: Vec<Option<f64>> = match zset(ctx, &args[1])? {
        Some(z) => args[2..].iter().map(|m| z.score(m)).collect(),
        None => vec![None; args.len() - 2],
    };
    ctx.out.array(scores.len());
    for s in scores {
        match s {
            Some(s) => ctx.out.double(s),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

fn zcard(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = zset(ctx, &args[1])?.map(|z| z.len()).unwrap_or(0);
    ctx.out.int(n as i64);
    Ok(())
}

/// One end of a score range: `1.5`, `(1.5` (exclusive), `-inf`, `+inf`.
#[derive(Clone, Copy, Debug)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

pub fn parse_score_bound(b: &[u8]) -> Result<ScoreBound, CmdError> {
    let err = || CmdError::msg("min or max is not a float");
    let (exclusive, rest) = if b.first() == Some(&b'(') { (true, &b[1..]) } else { (false, b) };
    let value = parse_f64(rest).ok_or_else(err)?;
    Ok(ScoreBound { value, exclusive })
}

/// One end of a lexicographical range: `-`, `+`, `[a` (inclusive), `(a` (exclusive).
#[derive(Clone, Debug)]
pub enum LexBound {
    Min,
    Max,
    Inclusive(Vec<u8>),
    Exclusive(Vec<u8>),
}

pub fn parse_lex_bound(b: &[u8]) -> Result<LexBound, CmdError> {
    match b.first() {
        Some(b'-') if b.len() == 1 => Ok(LexBound::Min),
        Some(b'+') if b.len() == 1 => Ok(LexBound::Max),
        Some(b'[') => Ok(LexBound::Inclusive(b[1..].to_vec())),
        Some(b'(') => Ok(LexBound::Exclusive(b[1..].to_vec())),
        _ => Err(CmdError::msg("min or max not valid string range item")),
    }
}

fn above_min(score: f64, min: ScoreBound) -> bool {
    if min.exclusive {
        score > min.value
    } else {
        score >= min.value
    }
}

fn below_max(score: f64, max: ScoreBound) -> bool {
    if max.exclusive {
        score < max.value
    } else {
        score <= max.value
    }
}

fn lex_above(m: &[u8], min: &LexBound) -> bool {
    match min {
        LexBound::Min => true,
        LexBound::Max => false,
        LexBound::Inclusive(v) => m >= &v[..],
        LexBound::Exclusive(v) => m > &v[..],
    }
}

fn lex_below(m: &[u8], max: &LexBound) -> bool {
    match max {
        LexBound::Min => false,
        LexBound::Max => true,
        LexBound::Inclusive(v) => m <= &v[..],
        LexBound::Exclusive(v) => m < &v[..],
    }
}

pub enum Range {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

/// Members in `range` (bounds given low to high), in ascending or descending order, after
/// `LIMIT offset count` (a negative count means all).
pub fn select(z: &ZSetPart, range: &Range, rev: bool, offset: usize, count: i64) -> Vec<(Blob, f64)> {
    let take = if count < 0 { usize::MAX } else { count as usize };
    match range {
        Range::Rank(start, stop) => {
            let len = z.len() as i64;
            let mut s = if *start < 0 { len + start } else { *start };
            let mut e = if *stop < 0 { len + stop } else { *stop };
            s = s.max(0);
            if e >= len {
                e = len - 1;
            }
            if s > e || s >= len {
                return vec![];
            }
            let n = (e - s + 1) as usize;
            let pick = |(sc, m): &(Score, Blob)| (m.clone(), sc.0);
            if rev {
                z.order.iter().rev().skip(s as usize).take(n).map(pick).collect()
            } else {
                z.order.iter().skip(s as usize).take(n).map(pick).collect()
            }
        }
        Range::Score(min, max) => {
            let lo = Bound::Included((Score(min.value), Blob::new()));
            let it = z.order.range((lo, Bound::Unbounded)).filter(|(s, _)| above_min(s.0, *min));
            let items: Vec<(Blob, f64)> =
                it.take_while(|(s, _)| below_max(s.0, *max)).map(|(s, m)| (m.clone(), s.0)).collect();
            let iter: Box<dyn Iterator<Item = (Blob, f64)>> =
                if rev { Box::new(items.into_iter().rev()) } else { Box::new(items.into_iter()) };
            iter.skip(offset).take(take).collect()
        }
        Range::Lex(min, max) => {
            let items: Vec<(Blob, f64)> = z
                .order
                .iter()
                .filter(|(_, m)| lex_above(m, min) && lex_below(m, max))
                .map(|(s, m)| (m.clone(), s.0))
                .collect();
            let iter: Box<dyn Iterator<Item = (Blob, f64)>> =
                if rev { Box::new(items.into_iter().rev()) } else { Box::new(items.into_iter()) };
            iter.skip(offset).take(take).collect()
        }
    }
}

fn zcount(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let range = if eq_ic(&args[0], "zlexcount") {
        Range::Lex(parse_lex_bound(&args[2])?, parse_lex_bound(&args[3])?)
    } else {
        Range::Score(parse_score_bound(&args[2])?, parse_score_bound(&args[3])?)
    };
    let n = zset(ctx, &args[1])?.map(|z| select(z, &range, false, 0, -1).len()).unwrap_or(0);
    ctx.out.int(n as i64);
    Ok(())
}

/// Member/score pairs: nested `[member, score]` pairs in RESP3, flat in RESP2.
pub fn write_scored(ctx: &mut Ctx, items: &[(Blob, f64)], withscores: bool) {
    let out = &mut *ctx.out;
    if !withscores {
        out.array(items.len());
        items.iter().for_each(|(m, _)| out.bulk(m));
    } else if out.resp3() {
        out.array(items.len());
        for (m, s) in items {
            out.array(2);
            out.bulk(m);
            out.double(*s);
        }
    } else {
        out.array(items.len() * 2);
        for (m, s) in items {
            out.bulk(m);
            out.double(*s);
        }
    }
}

/// ZRANGE and all its older forms (ZRANGEBYSCORE, ZREVRANGE, …) and ZRANGESTORE.
fn zrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let store = name == "zrangestore";
    let (key, a, b, opts) = if store {
        (&args[2], &args[3], &args[4], &args[5..])
    } else {
        (&args[1], &args[2], &args[3], &args[4..])
    };
    let (mut by_score, mut by_lex, mut rev) = (false, false, false);
    match name.as_str() {
        "zrangebyscore" => by_score = true,
        "zrevrangebyscore" => (by_score, rev) = (true, true),
        "zrangebylex" => by_lex = true,
        "zrevrangebylex" => (by_lex, rev) = (true, true),
        "zrevrange" => rev = true,
        _ => {}
    }
    let modern = name == "zrange" || store;
    let (mut withscores, mut limit): (bool, Option<(i64, i64)>) = (false, None);
    let mut i = 0;
    while i < opts.len() {
        let o = String::from_utf8_lossy(&opts[i]).to_ascii_lowercase();
        match o.as_str() {
            "withscores" if !store => withscores = true,
            "limit" if i + 2 < opts.len() && (modern || by_score || by_lex) => {
                limit = Some((arg_i64(&opts[i + 1])?, arg_i64(&opts[i + 2])?));
                i += 2;
            }
            "byscore" if modern && !by_lex => by_score = true,
            "bylex" if modern && !by_score => by_lex = true,
            "rev" if modern => rev = true,
            _ => return Err(CmdError::Syntax),
        }
        i += 1;
    }
    if name == "zrevrange" || name == "zrange" && !by_score && !by_lex {
        // plain index ranges take no LIMIT
        if limit.is_some() {
            return Err(CmdError::msg(
                "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
            ));
        }
    }
    if by_lex && withscores {
        return Err(CmdError::msg("syntax error, WITHSCORES not supported in combination with BYLEX"));
    }
    // With REV (or the ZREV* forms), score and lex bounds are given high first.
    let (lo, hi) = if rev && (by_score || by_lex) { (b, a) } else { (a, b) };
    let range = if by_score {
        Range::Score(parse_score_bound(lo)?, parse_score_bound(hi)?)
    } else if by_lex {
        Range::Lex(parse_lex_bound(lo)?, parse_lex_bound(hi)?)
    } else {
        Range::Rank(arg_i64(a)?, arg_i64(b)?)
    };
    let (offset, count) = limit.unwrap_or((0, -1));
    let items = if offset < 0 {
        vec![]
    } else {
        zset(ctx, key)?.map(|z| select(z, &range, rev, offset as usize, count)).unwrap_or_default()
    };
    if store {
        let dest = &args[1];
        if ctx.lookup(dest).is_some() {
            ctx.write(dest, Effect::Delete);
        }
        let n = items.len();
        if n > 0 {
            ctx.write(dest, Effect::ZAdd { members: items });
        }
        ctx.out.int(n as i64);
    } else {
        write_scored(ctx, &items, withscores);
    }
    Ok(())
}

fn zrank(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let rev = eq_ic(&args[0], "zrevrank");
    let rank = zset(ctx, &args[1])?.and_then(|z| {
        let score = z.score(&args[2])?;
        let below = z.order.range(..(Score(score), Blob::from_slice(&args[2]))).count();
        Some(if rev { z.len() - 1 - below } else { below })
    });
    match rank {
        Some(r) => ctx.out.int(r as i64),
        None => ctx.out.null(),
    }
    Ok(())
}

fn zpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let max = eq_ic(&args[0], "zpopmax");
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = super::pop_count(args)?;
    let items = pop(ctx, &args[1], max, count.unwrap_or(1))?;
    if count.is_some() {
        write_scored(ctx, &items, true);
    } else {
        ctx.out.array(items.len() * 2);
        for (m, s) in &items {
            ctx.out.bulk(m);
            ctx.out.double(*s);
        }
    }
    Ok(())
}

/// Removes and returns up to `count` lowest (or highest) members.
pub fn pop(ctx: &mut Ctx, key: &[u8], max: bool, count: usize) -> Result<Vec<(Blob, f64)>, CmdError> {
    let items = zset(ctx, key)?.map(|z| select(z, &Range::Rank(0, -1), max, 0, -1)).unwrap_or_default();
    let items: Vec<(Blob, f64)> = items.into_iter().take(count).collect();
    if !items.is_empty() {
        ctx.write(key, Effect::ZRem { members: items.iter().map(|(m, _)| m.clone()).collect() });
    }
    Ok(items)
}

fn zremrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let range = match name.as_str() {
        "zremrangebyscore" => Range::Score(parse_score_bound(&args[2])?, parse_score_bound(&args[3])?),
        "zremrangebylex" => Range::Lex(parse_lex_bound(&args[2])?, parse_lex_bound(&args[3])?),
        _ => Range::Rank(arg_i64(&args[2])?, arg_i64(&args[3])?),
    };
    let items = zset(ctx, &args[1])?.map(|z| select(z, &range, false, 0, -1)).unwrap_or_default();
    if !items.is_empty() {
        ctx.write(&args[1], Effect::ZRem { members: items.iter().map(|(m, _)| m.clone()).collect() });
    }
    ctx.out.int(items.len() as i64);
    Ok(())
}

/// The scored members of a sorted set or (with score 1) a plain set, for ZUNION and friends.
fn scored_input(ctx: &mut Ctx, key: &[u8]) -> Result<Vec<(Blob, f64)>, CmdError> {
    match ctx.part(key) {
        None => Ok(vec![]),
        Some(Part::ZSet(z)) => Ok(z.members.iter().map(|(m, zm)| (m.clone(), zm.score)).collect()),
        Some(Part::Set(s)) => Ok(s.members.keys().map(|m| (m.clone(), 1.0)).collect()),
        Some(_) => Err(CmdError::WrongType),
    }
}

fn zsetop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let store = name.ends_with("store");
    let op = name.trim_start_matches('z').trim_end_matches("store").to_string();
    let base = if store { 2 } else { 1 };
    let numkeys = arg_i64(&args[base])?;
    if numkeys < 1 {
        return Err(CmdError::msg(format!("at least 1 input key is needed for '{name}' command")));
    }
    let numkeys = numkeys as usize;
    if numkeys > args.len() - base - 1 {
        return Err(CmdError::Syntax);
    }
    let keys = &args[base + 1..base + 1 + numkeys];
    let mut weights = vec![1.0; numkeys];
    let mut aggregate = "sum".to_string();
    let mut withscores = false;
    let mut i = base + 1 + numkeys;
    while i < args.len() {
        let o = String::from_utf8_lossy(&args[i]).to_ascii_lowercase();
        match o.as_str() {
            "weights" if op != "diff" && i + numkeys < args.len() => {
                for (w, a) in weights.iter_mut().zip(&args[i + 1..=i + numkeys]) {
                    *w = parse_f64(a).ok_or_else(|| CmdError::msg("weight value is not a float"))?;
                }
                i += numkeys;
            }
            "aggregate" if op != "diff" && i + 1 < args.len() => {
                aggregate = String::from_utf8_lossy(&args[i + 1]).to_ascii_lowercase();
                if !["sum", "min", "max"].contains(&aggregate.as_str()) {
                    return Err(CmdError::Syntax);
                }
                i += 1;
            }
            "withscores" if !store => withscores = true,
            _ => return Err(CmdError::Syntax),
        }
        i += 1;
    }
    let mut inputs = Vec::with_capacity(numkeys);
    for k in keys {
        inputs.push(scored_input(ctx, k)?);
    }
    let combine = |a: f64, b: f64| -> f64 {
        let r = match aggregate.as_str() {
            "min" => a.min(b),
            "max" => a.max(b),
            _ => a + b,
        };
        if r.is_nan() {
            0.0
        } else {
            r
        }
    };
    let weighted = |s: f64, w: f64| -> f64 {
        let r = s * w;
        if r.is_nan() {
            0.0
        } else {
            r
        }
    };
    let mut result: Vec<(Blob, f64)> = match op.as_str() {
        "union" => {
            let mut acc: indexmap::IndexMap<Blob, f64> = indexmap::IndexMap::new();
            for (input, w) in inputs.iter().zip(&weights) {
                for (m, s) in input {
                    let v = weighted(*s, *w);
                    acc.entry(m.clone()).and_modify(|x| *x = combine(*x, v)).or_insert(v);
                }
            }
            acc.into_iter().collect()
        }
        "inter" => {
            let maps: Vec<HashMap<&Blob, f64>> =
                inputs[1..].iter().map(|i| i.iter().map(|(m, s)| (m, *s)).collect()).collect();
            inputs[0]
                .iter()
                .filter_map(|(m, s)| {
                    let mut v = weighted(*s, weights[0]);
                    for (map, w) in maps.iter().zip(&weights[1..]) {
                        v = combine(v, weighted(*map.get(m)?, *w));
                    }
                    Some((m.clone(), v))
                })
                .collect()
        }
        _ => {
            let others: std::collections::HashSet<&Blob> =
                inputs[1..].iter().flatten().map(|(m, _)| m).collect();
            inputs[0].iter().filter(|(m, _)| !others.contains(m)).cloned().collect()
        }
    };
    result.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    if store {
        let dest = &args[1];
        if ctx.lookup(dest).is_some() {
            ctx.write(dest, Effect::Delete);
        }
        let n = result.len();
        if n > 0 {
            ctx.write(dest, Effect::ZAdd { members: result });
        }
        ctx.out.int(n as i64);
    } else {
        write_scored(ctx, &result, withscores);
    }
    Ok(())
}

fn zrandmember(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (count, withscores) = match args.len() {
        2 => (None, false),
        3 => (Some(arg_i64(&args[2])?), false),
        4 if eq_ic(&args[3], "withscores") => (Some(arg_i64(&args[2])?), true),
        _ => return Err(CmdError::Syntax),
    };
    if count.is_some_and(|c| c.unsigned_abs() > i64::MAX as u64 / 2) {
        return Err(CmdError::msg("value is out of range"));
    }
    let all: Vec<(Blob, f64)> = zset(ctx, &args[1])?
        .map(|z| z.members.iter().map(|(m, zm)| (m.clone(), zm.score)).collect())
        .unwrap_or_default();
    let mut rng = rand::rng();
    let Some(count) = count else {
        match all.choose(&mut rng) {
            Some((m, _)) => ctx.out.bulk(m),
            None => ctx.out.null(),
        }
        return Ok(());
    };
    let picked: Vec<(Blob, f64)> = if all.is_empty() {
        vec![]
    } else if count >= 0 {
        all.choose_multiple(&mut rng, count as usize).cloned().collect()
    } else {
        (0..count.unsigned_abs()).map(|_| all[rng.random_range(0..all.len())].clone()).collect()
    };
    write_scored(ctx, &picked, withscores);
    Ok(())
}

fn zscan(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&args[2])?;
    let opts = parse_scan_options(&args[3..], false)?;
    let mut found: Vec<(Blob, f64)> = Vec::new();
    let mut next = 0;
    if let Some(z) = zset(ctx, &args[1])? {
        let matches = |m: &[u8]| opts.pattern.as_ref().is_none_or(|p| glob_match(p, m, false));
        if z.len() <= 128 {
            found = z.order.iter().filter(|(_, m)| matches(m)).map(|(s, m)| (m.clone(), s.0)).collect();
        } else {
            next = scan_slots(z.len(), cursor, opts.count, |i| {
                let (m, zm) = z.members.get_index(i).expect("slot in range");
                if matches(m) {
                    found.push((m.clone(), zm.score));
                }
            });
        }
    }
    let out = &mut *ctx.out;
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.array(found.len() * 2);
    for (m, s) in &found {
        out.bulk(m);
        out.bulk(format_double(*s).as_bytes());
    }
    Ok(())
}

fn zintercard(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let numkeys = arg_i64(&args[1])?;
    if numkeys <= 0 {
        return Err(CmdError::msg("at least 1 input key is needed for 'zintercard' command"));
    }
    let numkeys = numkeys as usize;
    if numkeys > args.len() - 2 {
        return Err(CmdError::Syntax);
    }
    let rest = &args[2 + numkeys..];
    let mut limit = 0usize;
    if !rest.is_empty() {
        if rest.len() != 2 || !eq_ic(&rest[0], "limit") {
            return Err(CmdError::Syntax);
        }
        let l = arg_i64(&rest[1]).map_err(|_| CmdError::msg("LIMIT can't be negative"))?;
        if l < 0 {
            return Err(CmdError::msg("LIMIT can't be negative"));
        }
        limit = l as usize;
    }
    let mut inputs = Vec::with_capacity(numkeys);
    for k in &args[2..2 + numkeys] {
        inputs.push(scored_input(ctx, k)?);
    }
    let others: Vec<std::collections::HashSet<&Blob>> =
        inputs[1..].iter().map(|i| i.iter().map(|(m, _)| m).collect()).collect();
    let n = inputs[0].iter().filter(|(m, _)| others.iter().all(|o| o.contains(m))).count();
    ctx.out.int(if limit > 0 { n.min(limit) } else { n } as i64);
    Ok(())
}

/// BZPOPMIN / BZPOPMAX key [key ...] timeout.
fn bzpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let max = eq_ic(&args[0], "bzpopmax");
    let timeout = super::arg_timeout_secs(&args[args.len() - 1])?;
    let keys = &args[1..args.len() - 1];
    for key in keys {
        if zset(ctx, key)?.is_some() {
            let items = pop(ctx, key, max, 1)?;
            let (m, s) = &items[0];
            ctx.out.array(3);
            ctx.out.bulk(key);
            ctx.out.bulk(m);
            ctx.out.double(*s);
            return Ok(());
        }
    }
    ctx.block_on(keys, timeout, super::TimeoutReply::NullArray);
    Ok(())
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count] and BZMPOP timeout numkeys ...
fn zmpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let blocking = eq_ic(&args[0], "bzmpop");
    let (timeout, rest) =
        if blocking { (Some(super::arg_timeout_secs(&args[1])?), &args[2..]) } else { (None, &args[1..]) };
    let (keys, after) = super::numkeys_then_rest(rest)?;
    let max = if eq_ic(&after[0], "max") {
        true
    } else if eq_ic(&after[0], "min") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let count = super::mpop_count(&after[1..])?;
    for key in keys {
        if zset(ctx, key)?.is_some() {
            let items = pop(ctx, key, max, count)?;
            ctx.out.array(2);
            ctx.out.bulk(key);
            ctx.out.array(items.len());
            for (m, s) in &items {
                ctx.out.array(2);
                ctx.out.bulk(m);
                ctx.out.double(*s);
            }
            return Ok(());
        }
    }
    match timeout {
        Some(t) => ctx.block_on(keys, t, super::TimeoutReply::NullArray),
        None => ctx.out.null_array(),
    }
    Ok(())
}
