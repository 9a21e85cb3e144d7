//! Hash commands. Fields form an add-wins observed-remove map; each field is a [`Cell`]: its value
//! is last-writer-wins and HINCRBY/HINCRBYFLOAT add up across replicas.
//!
//! [`Cell`]: crate::crdt::cell::Cell

use bytes::Bytes;
use rand::seq::IndexedRandom;
use rand::Rng;

use super::flags::*;
use super::keys::{parse_cursor, parse_scan_options, scan_slots};
use super::{arg_i64, cmd, eq_ic, glob_match, CmdError, CmdResult, Command, Ctx};
use crate::crdt::extended::Extended;
use crate::crdt::keyspace::{cell_string, HashPart, Part};
use crate::crdt::number::parse_i64;
use crate::crdt::{Blob, Effect};

#[rustfmt::skip]
pub const COMMANDS: &[Command] = &[
    cmd("hset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), "hash", "Creates or modifies the value of a field in a hash.", hset),
    cmd("hmset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), "hash", "Sets the values of multiple fields.", hset),
    cmd("hsetnx", 4, WRITE | DENYOOM | FAST, (1, 1, 1), "hash", "Sets the value of a field in a hash only when the field doesn't exist.", hsetnx),
    cmd("hget", 3, READONLY | FAST, (1, 1, 1), "hash", "Returns the value of a field in a hash.", hget),
    cmd("hmget", -3, READONLY | FAST, (1, 1, 1), "hash", "Returns the values of all fields in a hash.", hmget),
    cmd("hdel", -3, WRITE | FAST, (1, 1, 1), "hash", "Deletes one or more fields and their values from a hash.", hdel),
    cmd("hexists", 3, READONLY | FAST, (1, 1, 1), "hash", "Determines whether a field exists in a hash.", hexists),
    cmd("hlen", 2, READONLY | FAST, (1, 1, 1), "hash", "Returns the number of fields in a hash.", hlen),
    cmd("hkeys", 2, READONLY, (1, 1, 1), "hash", "Returns all fields in a hash.", hgetall),
    cmd("hvals", 2, READONLY, (1, 1, 1), "hash", "Returns all values in a hash.", hgetall),
    cmd("hgetall", 2, READONLY, (1, 1, 1), "hash", "Returns all fields and values in a hash.", hgetall),
    cmd("hincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), "hash", "Increments the integer value of a field in a hash by a number.", hincrby),
    cmd("hincrbyfloat", 4, WRITE | DENYOOM | FAST, (1, 1, 1), "hash", "Increments the floating point value of a field by a number.", hincrbyfloat),
    cmd("hstrlen", 3, READONLY | FAST, (1, 1, 1), "hash", "Returns the length of the value of a field.", hstrlen),
    cmd("hrandfield", -2, READONLY, (1, 1, 1), "hash", "Returns one or more random fields from a hash.", hrandfield),
    cmd("hscan", -3, READONLY, (1, 1, 1), "hash", "Iterates over fields and values of a hash.", hscan),
];

/// The hash at `key`: None when missing, WRONGTYPE for other types.
fn hash<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c HashPart>, CmdError> {
    match ctx.part(key) {
        None => Ok(None),
        Some(Part::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(CmdError::WrongType),
    }
}

fn field(h: &HashPart, f: &[u8]) -> Option<Vec<u8>> {
    h.fields.get(f).map(|c| cell_string(c).into_owned())
}

fn hset(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if !args.len().is_multiple_of(2) {
        return Err(super::arity_error(args));
    }
    let added = {
        let h = hash(ctx, &args[1])?;
        let mut new: Vec<&[u8]> = Vec::new();
        for kv in args[2..].chunks(2) {
            if h.is_none_or(|h| !h.fields.contains_key(&kv[0][..])) && !new.contains(&&kv[0][..]) {
                new.push(&kv[0]);
            }
        }
        new.len()
    };
    let fields = args[2..].chunks(2).map(|kv| (Blob::from_slice(&kv[0]), Blob::from_slice(&kv[1]))).collect();
    ctx.write(&args[1], Effect::HashSet { fields });
    if eq_ic(&args[0], "hmset") {
        ctx.out.ok();
    } else {
        ctx.out.int(added as i64);
    }
    Ok(())
}

fn hsetnx(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let exists = hash(ctx, &args[1])?.is_some_and(|h| h.fields.contains_key(&args[2][..]));
    if !exists {
        let fields = vec![(Blob::from_slice(&args[2]), Blob::from_slice(&args[3]))];
        ctx.write(&args[1], Effect::HashSet { fields });
    }
    ctx.out.int(!exists as i64);
    Ok(())
}

fn hget(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let v = hash(ctx, &args[1])?.and_then(|h| field(h, &args[2]));
    match v {
        Some(v) => ctx.out.bulk(&v),
        None => ctx.out.null(),
    }
    Ok(())
}

fn hmget(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let values: Vec<Option<Vec<u8>>> = match hash(ctx, &args[1])? {
        Some(h) => args[2..].iter().map(|f| field(h, f)).collect(),
        None => vec![None; args.len() - 2],
    };
    ctx.out.array(values.len());
    for v in values {
        match v {
            Some(v) => ctx.out.bulk(&v),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

fn hdel(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let present = match hash(ctx, &args[1])? {
        None => vec![],
        Some(h) => super::present_once(&args[2..], |a| h.fields.contains_key(a)),
    };
    let n = present.len();
    if n > 0 {
        ctx.write(&args[1], Effect::HashDel { fields: present });
    }
    ctx.out.int(n as i64);
    Ok(())
}

fn hexists(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let e = hash(ctx, &args[1])?.is_some_and(|h| h.fields.contains_key(&args[2][..]));
    ctx.out.int(e as i64);
    Ok(())
}

fn hlen(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = hash(ctx, &args[1])?.map(|h| h.fields.len()).unwrap_or(0);
    ctx.out.int(n as i64);
    Ok(())
}

fn hgetall(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let pairs: Vec<(Blob, Vec<u8>)> = hash(ctx, &args[1])?
        .map(|h| h.fields.iter().map(|(f, c)| (f.clone(), cell_string(c).into_owned())).collect())
        .unwrap_or_default();
    let out = &mut *ctx.out;
    match name.as_str() {
        "hkeys" => {
            out.array(pairs.len());
            pairs.iter().for_each(|(f, _)| out.bulk(f));
        }
        "hvals" => {
            out.array(pairs.len());
            pairs.iter().for_each(|(_, v)| out.bulk(v));
        }
        _ => {
            out.map(pairs.len());
            for (f, v) in &pairs {
                out.bulk(f);
                out.bulk(v);
            }
        }
    }
    Ok(())
}

fn hincrby(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let by = arg_i64(&args[3])?;
    let current = match hash(ctx, &args[1])?.and_then(|h| field(h, &args[2])) {
        None => 0,
        Some(v) => parse_i64(&v).ok_or_else(|| CmdError::msg("hash value is not an integer"))?,
    };
    let new = current.checked_add(by).ok_or(CmdError::Overflow)?;
    ctx.write(
        &args[1],
        Effect::HashIncr {
            field: Blob::from_slice(&args[2]),
            int: by,
            float: 0.0,
            is_float: false,
            ext: None,
        },
    );
    ctx.out.int(new);
    Ok(())
}

fn hincrbyfloat(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let by = Extended::parse_redis(&args[3]).ok_or(CmdError::NotFloat)?;
    if !by.is_finite() {
        return Err(CmdError::msg("value is NaN or Infinity"));
    }
    let current = match hash(ctx, &args[1])?.and_then(|h| field(h, &args[2])) {
        None => Extended::ZERO,
        Some(v) => Extended::parse_redis(&v).ok_or_else(|| CmdError::msg("hash value is not a float"))?,
    };
    let new = current + by;
    if !new.is_finite() {
        return Err(CmdError::msg("increment would produce NaN or Infinity"));
    }
    // As Redis: the field holds the printed result, which the next increment parses again.
    let shown = new.format_human().into_bytes();
    let field_name = Blob::from_slice(&args[2]);
    ctx.write(&args[1], Effect::HashIncrFloat { field: field_name, by, value: Blob::from_slice(&shown) });
    ctx.out.bulk(&shown);
    Ok(())
}

fn hstrlen(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = hash(ctx, &args[1])?.and_then(|h| field(h, &args[2])).map(|v| v.len()).unwrap_or(0);
    ctx.out.int(n as i64);
    Ok(())
}

fn hrandfield(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (count, withvalues) = match args.len() {
        2 => (None, false),
        3 => (Some(arg_i64(&args[2])?), false),
        4 if eq_ic(&args[3], "withvalues") => (Some(arg_i64(&args[2])?), true),
        _ => return Err(CmdError::Syntax),
    };
    if let Some(c) = count {
        if c.unsigned_abs() > i64::MAX as u64 / 2 {
            return Err(CmdError::msg("value is out of range"));
        }
    }
    let pairs: Vec<(Blob, Vec<u8>)> = hash(ctx, &args[1])?
        .map(|h| h.fields.iter().map(|(f, c)| (f.clone(), cell_string(c).into_owned())).collect())
        .unwrap_or_default();
    let mut rng = rand::rng();
    let Some(count) = count else {
        match pairs.choose(&mut rng) {
            Some((f, _)) => ctx.out.bulk(f),
            None => ctx.out.null(),
        }
        return Ok(());
    };
    let picked: Vec<&(Blob, Vec<u8>)> = if pairs.is_empty() {
        vec![]
    } else if count >= 0 {
        pairs.choose_multiple(&mut rng, count as usize).collect()
    } else {
        (0..count.unsigned_abs()).map(|_| &pairs[rng.random_range(0..pairs.len())]).collect()
    };
    write_pairs(ctx, &picked, withvalues);
    Ok(())
}

/// Field/value (or member/score) pairs: nested pairs in RESP3, flat in RESP2.
fn write_pairs(ctx: &mut Ctx, pairs: &[&(Blob, Vec<u8>)], withvalues: bool) {
    let out = &mut *ctx.out;
    if !withvalues {
        out.array(pairs.len());
        pairs.iter().for_each(|(f, _)| out.bulk(f));
    } else if out.resp3() {
        out.array(pairs.len());
        for (f, v) in pairs {
            out.array(2);
            out.bulk(f);
            out.bulk(v);
        }
    } else {
        out.array(pairs.len() * 2);
        for (f, v) in pairs {
            out.bulk(f);
            out.bulk(v);
        }
    }
}

fn hscan(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&args[2])?;
    let opts = parse_scan_options(&args[3..], false)?;
    let mut found: Vec<(Blob, Vec<u8>)> = Vec::new();
    let mut next = 0;
    if let Some(h) = hash(ctx, &args[1])? {
        let matches = |f: &[u8]| opts.pattern.as_ref().is_none_or(|p| glob_match(p, f, false));
        if h.fields.len() <= 128 {
            // Small hashes come back whole, as from Redis's compact encoding.
            found = h
                .fields
                .iter()
                .filter(|(f, _)| matches(f))
                .map(|(f, c)| (f.clone(), cell_string(c).into_owned()))
                .collect();
        } else {
            next = scan_slots(h.fields.len(), cursor, opts.count, |i| {
                let (f, c) = h.fields.get_index(i).expect("slot in range");
                if matches(f) {
                    found.push((f.clone(), cell_string(c).into_owned()));
                }
            });
        }
    }
    let out = &mut *ctx.out;
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.array(found.len() * 2);
    for (f, v) in &found {
        out.bulk(f);
        out.bulk(v);
    }
    Ok(())
}
