//! Set commands. A set is an add-wins observed-remove set: a member removed on one replica while
//! another concurrently adds it stays.

use std::collections::HashSet;

use bytes::Bytes;
use rand::seq::IndexedRandom;
use rand::Rng;

use super::flags::*;
use super::keys::{parse_cursor, parse_scan_options, scan_slots};
use super::{arg_i64, cmd, eq_ic, glob_match, CmdError, CmdResult, Command, Ctx};
use crate::crdt::keyspace::{Part, SetPart};
use crate::crdt::number::parse_i64;
use crate::crdt::{Blob, Effect};

#[rustfmt::skip]
pub const COMMANDS: &[Command] = &[
    cmd("sadd", -3, WRITE | DENYOOM | FAST, (1, 1, 1), "set", "Adds one or more members to a set.", sadd),
    cmd("srem", -3, WRITE | FAST, (1, 1, 1), "set", "Removes one or more members from a set.", srem),
    cmd("smembers", 2, READONLY, (1, 1, 1), "set", "Returns all members of a set.", smembers),
    cmd("sismember", 3, READONLY | FAST, (1, 1, 1), "set", "Determines whether a member belongs to a set.", sismember),
    cmd("smismember", -3, READONLY | FAST, (1, 1, 1), "set", "Determines whether multiple members belong to a set.", smismember),
    cmd("scard", 2, READONLY | FAST, (1, 1, 1), "set", "Returns the number of members in a set.", scard),
    cmd("spop", -2, WRITE | FAST, (1, 1, 1), "set", "Returns one or more random members from a set after removing them.", spop),
    cmd("srandmember", -2, READONLY, (1, 1, 1), "set", "Get one or multiple random members from a set.", srandmember),
    cmd("smove", 4, WRITE | FAST, (1, 2, 1), "set", "Moves a member from one set to another.", smove),
    cmd("sinter", -2, READONLY, (1, -1, 1), "set", "Returns the intersect of multiple sets.", combine),
    cmd("sintercard", -3, READONLY, (0, 0, 0), "set", "Returns the number of members of the intersect of multiple sets.", sintercard),
    cmd("sinterstore", -3, WRITE | DENYOOM, (1, -1, 1), "set", "Stores the intersect of multiple sets in a key.", combine),
    cmd("sunion", -2, READONLY, (1, -1, 1), "set", "Returns the union of multiple sets.", combine),
    cmd("sunionstore", -3, WRITE | DENYOOM, (1, -1, 1), "set", "Stores the union of multiple sets in a key.", combine),
    cmd("sdiff", -2, READONLY, (1, -1, 1), "set", "Returns the difference of multiple sets.", combine),
    cmd("sdiffstore", -3, WRITE | DENYOOM, (1, -1, 1), "set", "Stores the difference of multiple sets in a key.", combine),
    cmd("sscan", -3, READONLY, (1, 1, 1), "set", "Iterates over members of a set.", sscan),
];

fn set<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c SetPart>, CmdError> {
    match ctx.part(key) {
        None => Ok(None),
        Some(Part::Set(s)) => Ok(Some(s)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// Members in the order Redis would list them: integer sets (Redis's intset) in numeric order,
/// others in insertion order.
fn members(s: &SetPart) -> Vec<Blob> {
    let mut v: Vec<Blob> = s.members.keys().cloned().collect();
    if v.len() <= 512 {
        let ints: Option<Vec<i64>> = v.iter().map(|m| parse_i64(m)).collect();
        if let Some(mut ints) = ints {
            ints.sort();
            v = ints.into_iter().map(|i| Blob::from_slice(i.to_string().as_bytes())).collect();
        }
    }
    v
}

fn members_of(ctx: &mut Ctx, key: &[u8]) -> Result<Vec<Blob>, CmdError> {
    Ok(set(ctx, key)?.map(members).unwrap_or_default())
}

fn sadd(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut unique: Vec<Blob> = Vec::with_capacity(args.len() - 2);
    let mut seen = HashSet::new();
    for m in &args[2..] {
        if seen.insert(&m[..]) {
            unique.push(Blob::from_slice(m));
        }
    }
    if let Some(s) = set(ctx, &args[1])? {
        unique.retain(|m| !s.members.contains_key(m.as_slice()));
    }
    let added = unique.len();
    if added > 0 {
        ctx.write(&args[1], Effect::SetAdd { members: unique });
    }
    ctx.out.int(added as i64);
    Ok(())
}

fn srem(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let present = match set(ctx, &args[1])? {
        None => vec![],
        Some(s) => super::present_once(&args[2..], |a| s.members.contains_key(a)),
    };
    let n = present.len();
    if n > 0 {
        ctx.write(&args[1], Effect::SetRem { members: present });
    }
    ctx.out.int(n as i64);
    Ok(())
}

fn write_set(ctx: &mut Ctx, members: &[Blob]) {
    ctx.out.set(members.len());
    for m in members {
        ctx.out.bulk(m);
    }
}

fn smembers(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let m = members_of(ctx, &args[1])?;
    write_set(ctx, &m);
    Ok(())
}

fn sismember(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let is = set(ctx, &args[1])?.is_some_and(|s| s.members.contains_key(&args[2][..]));
    ctx.out.int(is as i64);
    Ok(())
}

fn smismember(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let flags: Vec<bool> = match set(ctx, &args[1])? {
        Some(s) => args[2..].iter().map(|m| s.members.contains_key(&m[..])).collect(),
        None => vec![false; args.len() - 2],
    };
    ctx.out.array(flags.len());
    for f in flags {
        ctx.out.int(f as i64);
    }
    Ok(())
}

fn scard(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = set(ctx, &args[1])?.map(|s| s.members.len()).unwrap_or(0);
    ctx.out.int(n as i64);
    Ok(())
}

fn parse_count(args: &[Bytes]) -> Result<Option<i64>, CmdError> {
    match args.len() {
        2 => Ok(None),
        3 => Ok(Some(arg_i64(&args[2])?)),
        _ => Err(CmdError::Syntax),
    }
}

fn spop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = super::pop_count(args)?;
    let all = members_of(ctx, &args[1])?;
    // What is popped changes state: seeded on strong keys, so that every voter pops the same.
    let mut rng = ctx.rng();
    let picked: Vec<Blob> = all.choose_multiple(&mut rng, count.unwrap_or(1)).cloned().collect();
    if !picked.is_empty() {
        ctx.write(&args[1], Effect::SetRem { members: picked.clone() });
    }
    match count {
        None => match picked.first() {
            Some(m) => ctx.out.bulk(m),
            None => ctx.out.null(),
        },
        Some(_) => write_set(ctx, &picked),
    }
    Ok(())
}

fn srandmember(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let count = parse_count(args)?;
    if count == Some(i64::MIN) {
        return Err(CmdError::msg(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let all = members_of(ctx, &args[1])?;
    let mut rng = rand::rng();
    match count {
        None => match all.choose(&mut rng) {
            Some(m) => ctx.out.bulk(m),
            None => ctx.out.null(),
        },
        Some(c) if c >= 0 => {
            let picked: Vec<Blob> = all.choose_multiple(&mut rng, c as usize).cloned().collect();
            ctx.out.array(picked.len());
            picked.iter().for_each(|m| ctx.out.bulk(m));
        }
        Some(c) => {
            let n = if all.is_empty() { 0 } else { c.unsigned_abs() as usize };
            ctx.out.array(n);
            for _ in 0..n {
                let m = &all[rng.random_range(0..all.len())];
                ctx.out.bulk(m);
            }
        }
    }
    Ok(())
}

fn smove(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    let present = set(ctx, src)?.is_some_and(|s| s.members.contains_key(&member[..]));
    set(ctx, dst)?;
    if !present {
        ctx.out.int(0);
        return Ok(());
    }
    if src != dst {
        ctx.write(src, Effect::SetRem { members: vec![Blob::from_slice(member)] });
        ctx.write(dst, Effect::SetAdd { members: vec![Blob::from_slice(member)] });
    }
    ctx.out.int(1);
    Ok(())
}

/// Intersection, union or difference of the sets at `keys` (missing keys are empty sets).
fn compute(ctx: &mut Ctx, op: &str, keys: &[Bytes]) -> Result<Vec<Blob>, CmdError> {
    let mut sets = Vec::with_capacity(keys.len());
    for k in keys {
        sets.push(members_of(ctx, k)?);
    }
    let first = sets.first().cloned().unwrap_or_default();
    let result = match op {
        "inter" => {
            let others: Vec<HashSet<&Blob>> = sets[1..].iter().map(|s| s.iter().collect()).collect();
            first.into_iter().filter(|m| others.iter().all(|o| o.contains(m))).collect()
        }
        "union" => {
            let mut seen = HashSet::new();
            sets.into_iter().flatten().filter(|m| seen.insert(m.clone())).collect()
        }
        _ => {
            let others: HashSet<&Blob> = sets[1..].iter().flatten().collect();
            first.into_iter().filter(|m| !others.contains(m)).collect()
        }
    };
    Ok(result)
}

/// Replaces `dest` with a set of `members` (deleting it when empty); replies with the size.
pub fn store_set(ctx: &mut Ctx, dest: &[u8], members: Vec<Blob>) {
    if ctx.lookup(dest).is_some() {
        ctx.write(dest, Effect::Delete);
    }
    let n = members.len();
    if n > 0 {
        ctx.write(dest, Effect::SetAdd { members });
    }
    ctx.out.int(n as i64);
}

fn combine(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let store = name.ends_with("store");
    let op = name.trim_start_matches('s').trim_end_matches("store").to_string();
    let keys = if store { &args[2..] } else { &args[1..] };
    let result = compute(ctx, &op, keys)?;
    if store {
        store_set(ctx, &args[1], result);
    } else {
        let mut result = result;
        if result.len() <= 512 {
            let ints: Option<Vec<i64>> = result.iter().map(|m| parse_i64(m)).collect();
            if let Some(mut ints) = ints {
                ints.sort();
                result = ints.into_iter().map(|i| Blob::from_slice(i.to_string().as_bytes())).collect();
            }
        }
        write_set(ctx, &result);
    }
    Ok(())
}

fn sintercard(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let numkeys = arg_i64(&args[1]).map_err(|_| CmdError::msg("numkeys should be greater than 0"))?;
    if numkeys <= 0 {
        return Err(CmdError::msg("numkeys should be greater than 0"));
    }
    let numkeys = numkeys as usize;
    if numkeys > args.len() - 2 {
        return Err(CmdError::msg("Number of keys can't be greater than number of args"));
    }
    let mut limit = 0usize;
    let rest = &args[2 + numkeys..];
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
    let result = compute(ctx, "inter", &args[2..2 + numkeys])?;
    let n = if limit > 0 { result.len().min(limit) } else { result.len() };
    ctx.out.int(n as i64);
    Ok(())
}

fn sscan(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&args[2])?;
    let opts = parse_scan_options(&args[3..], false)?;
    let mut found: Vec<Blob> = Vec::new();
    let mut next = 0;
    if let Some(s) = set(ctx, &args[1])? {
        let matches = |m: &[u8]| opts.pattern.as_ref().is_none_or(|p| glob_match(p, m, false));
        if s.members.len() <= 128 {
            found = members(s).into_iter().filter(|m| matches(m)).collect();
        } else {
            next = scan_slots(s.members.len(), cursor, opts.count, |i| {
                let (m, _) = s.members.get_index(i).expect("slot in range");
                if matches(m) {
                    found.push(m.clone());
                }
            });
        }
    }
    let out = &mut *ctx.out;
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.array(found.len());
    found.iter().for_each(|m| out.bulk(m));
    Ok(())
}
