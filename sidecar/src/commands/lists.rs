//! List commands and the blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP).
//!
//! A list is a sequence CRDT (see `crdt/list.rs`): pushes insert at positions between the
//! current ends, pops and LREM/LTRIM remove the elements they observed.

use bytes::Bytes;

use super::flags::*;
use super::{arg_i64, arg_timeout_secs, cmd, eq_ic, CmdError, CmdResult, Command, Ctx, TimeoutReply};
use crate::crdt::keyspace::Part;
use crate::crdt::list::{position_between, ListPart, Position};
use crate::crdt::{Blob, Dot, Effect};

#[rustfmt::skip]
pub const COMMANDS: &[Command] = &[
    cmd("lpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), "list", "Prepends one or more elements to a list. Creates the key if it doesn't exist.", push),
    cmd("rpush", -3, WRITE | DENYOOM | FAST, (1, 1, 1), "list", "Appends one or more elements to a list. Creates the key if it doesn't exist.", push),
    cmd("lpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), "list", "Prepends one or more elements to a list only when the list exists.", push),
    cmd("rpushx", -3, WRITE | DENYOOM | FAST, (1, 1, 1), "list", "Appends an element to a list only when the list exists.", push),
    cmd("lpop", -2, WRITE | FAST, (1, 1, 1), "list", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.", pop),
    cmd("rpop", -2, WRITE | FAST, (1, 1, 1), "list", "Returns and removes the last elements of a list. Deletes the list if the last element was popped.", pop),
    cmd("llen", 2, READONLY | FAST, (1, 1, 1), "list", "Returns the length of a list.", llen),
    cmd("lrange", 4, READONLY, (1, 1, 1), "list", "Returns a range of elements from a list.", lrange),
    cmd("lindex", 3, READONLY, (1, 1, 1), "list", "Returns an element from a list by its index.", lindex),
    cmd("lset", 4, WRITE | DENYOOM, (1, 1, 1), "list", "Sets the value of an element in a list by its index.", lset),
    cmd("linsert", 5, WRITE | DENYOOM, (1, 1, 1), "list", "Inserts an element before or after another element in a list.", linsert),
    cmd("lrem", 4, WRITE, (1, 1, 1), "list", "Removes elements from a list. Deletes the list if the last element was removed.", lrem),
    cmd("ltrim", 4, WRITE, (1, 1, 1), "list", "Removes elements from both ends a list. Deletes the list if all elements were trimmed.", ltrim),
    cmd("lpos", -3, READONLY, (1, 1, 1), "list", "Returns the index of matching elements in a list.", lpos),
    cmd("lmove", 5, WRITE | DENYOOM, (1, 2, 1), "list", "Returns an element after popping it from one list and pushing it to another.", lmove),
    cmd("rpoplpush", 3, WRITE | DENYOOM, (1, 2, 1), "list", "Returns the last element of a list after removing and pushing it to another list.", lmove),
    cmd("lmpop", -4, WRITE, (0, 0, 0), "list", "Returns multiple elements from a list after removing them.", lmpop),
    cmd("blpop", -3, WRITE | BLOCKING, (1, -2, 1), "list", "Removes and returns the first element in a list. Blocks until an element is available otherwise.", bpop),
    cmd("brpop", -3, WRITE | BLOCKING, (1, -2, 1), "list", "Removes and returns the last element in a list. Blocks until an element is available otherwise.", bpop),
    cmd("blmove", 6, WRITE | DENYOOM | BLOCKING, (1, 2, 1), "list", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise.", lmove),
    cmd("brpoplpush", 4, WRITE | DENYOOM | BLOCKING, (1, 2, 1), "list", "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise.", lmove),
    cmd("blmpop", -5, WRITE | BLOCKING, (0, 0, 0), "list", "Pops the first element from one of multiple lists. Blocks until an element is available otherwise.", lmpop),
];

pub fn list<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c ListPart>, CmdError> {
    match ctx.part(key) {
        None => Ok(None),
        Some(Part::List(l)) => Ok(Some(l)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// Positions for `n` new elements at one end of the list, in list order. Their dot is the
/// placeholder the write fills in.
fn end_positions(l: Option<&ListPart>, n: usize, left: bool) -> Vec<Position> {
    let mut out = Vec::with_capacity(n);
    let mut edge = l.and_then(|l| if left { l.first() } else { l.last() }).cloned();
    for _ in 0..n {
        let p = if left {
            position_between(None, edge.as_ref(), Dot::default())
        } else {
            position_between(edge.as_ref(), None, Dot::default())
        };
        edge = Some(p.clone());
        out.push(p);
    }
    out
}

/// Pushes `values` at one end; LPUSH a b c leaves c first, as Redis does. Returns the length.
fn push_values(ctx: &mut Ctx, key: &[u8], values: &[Bytes], left: bool) -> Result<usize, CmdError> {
    let l = list(ctx, key)?;
    let len = l.map(|l| l.len()).unwrap_or(0);
    let positions = end_positions(l, values.len(), left);
    let items = positions.into_iter().zip(values).map(|(p, v)| (p, Blob::from_slice(v))).collect();
    ctx.write(key, Effect::ListInsert { items });
    Ok(len + values.len())
}

fn push(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let left = name.starts_with('l');
    if name.ends_with('x') && list(ctx, &args[1])?.is_none() {
        ctx.out.int(0);
        return Ok(());
    }
    let len = push_values(ctx, &args[1], &args[2..], left)?;
    ctx.out.int(len as i64);
    Ok(())
}

/// Removes and returns up to `count` elements from one end.
pub fn pop_values(ctx: &mut Ctx, key: &[u8], left: bool, count: usize) -> Result<Vec<Blob>, CmdError> {
    let Some(l) = list(ctx, key)? else { return Ok(vec![]) };
    let taken: Vec<(Position, Blob)> = if left {
        l.items.iter().take(count).map(|(p, r)| (p.clone(), l.value_at(r))).collect()
    } else {
        l.items.iter().rev().take(count).map(|(p, r)| (p.clone(), l.value_at(r))).collect()
    };
    if !taken.is_empty() {
        let positions = taken.iter().map(|(p, _)| p.clone()).collect();
        ctx.write(key, Effect::ListRemove { positions });
    }
    Ok(taken.into_iter().map(|(_, v)| v).collect())
}

fn pop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let left = eq_ic(&args[0], "lpop");
    if args.len() > 3 {
        return Err(super::arity_error(args));
    }
    let count = super::pop_count(args)?;
    let exists = list(ctx, &args[1])?.is_some();
    let values = pop_values(ctx, &args[1], left, count.unwrap_or(1))?;
    match count {
        None => match values.first() {
            Some(v) => ctx.out.bulk(v),
            None => ctx.out.null(),
        },
        Some(_) if !exists => ctx.out.null_array(),
        Some(_) => {
            ctx.out.array(values.len());
            values.iter().for_each(|v| ctx.out.bulk(v));
        }
    }
    Ok(())
}

fn llen(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = list(ctx, &args[1])?.map(|l| l.len()).unwrap_or(0);
    ctx.out.int(n as i64);
    Ok(())
}

fn lrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (start, stop) = (arg_i64(&args[2])?, arg_i64(&args[3])?);
    let values: Vec<Blob> = match list(ctx, &args[1])? {
        None => vec![],
        Some(l) => match super::strings::index_range(start, stop, l.len()) {
            None => vec![],
            Some((s, e)) => l.items.values().skip(s).take(e - s + 1).map(|r| l.value_at(r)).collect(),
        },
    };
    ctx.out.array(values.len());
    values.iter().for_each(|v| ctx.out.bulk(v));
    Ok(())
}

fn lindex(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let index = arg_i64(&args[2])?;
    let v = list(ctx, &args[1])?.and_then(|l| l.get(index).map(|(_, r)| l.value_at(r)));
    match v {
        Some(v) => ctx.out.bulk(&v),
        None => ctx.out.null(),
    }
    Ok(())
}

fn lset(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let index = arg_i64(&args[2])?;
    let position = match list(ctx, &args[1])? {
        None => return Err(CmdError::NoSuchKey),
        Some(l) => l.get(index).map(|(p, _)| p.clone()).ok_or_else(|| CmdError::msg("index out of range"))?,
    };
    ctx.write(&args[1], Effect::ListSet { position, value: Blob::from_slice(&args[3]) });
    ctx.out.ok();
    Ok(())
}

fn linsert(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let before = if eq_ic(&args[2], "before") {
        true
    } else if eq_ic(&args[2], "after") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let Some(l) = list(ctx, &args[1])? else {
        ctx.out.int(0);
        return Ok(());
    };
    let keys: Vec<&Position> = l.items.keys().collect();
    let Some(i) = l.items.iter().position(|(_, r)| l.value_at(r)[..] == args[3][..]) else {
        ctx.out.int(-1);
        return Ok(());
    };
    let (lo, hi) = if before {
        (i.checked_sub(1).map(|j| keys[j]), Some(keys[i]))
    } else {
        (Some(keys[i]), keys.get(i + 1).copied())
    };
    let p = position_between(lo, hi, Dot::default());
    let len = l.len() + 1;
    ctx.write(&args[1], Effect::ListInsert { items: vec![(p, Blob::from_slice(&args[4]))] });
    ctx.out.int(len as i64);
    Ok(())
}

fn lrem(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let count = arg_i64(&args[2])?;
    let positions: Vec<Position> = match list(ctx, &args[1])? {
        None => vec![],
        Some(l) => {
            let matches =
                |(_, r): &(&Position, &crate::crdt::cell::Register<Blob>)| l.value_at(r)[..] == args[3][..];
            let limit = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
            if count >= 0 {
                l.items.iter().filter(matches).take(limit).map(|(p, _)| p.clone()).collect()
            } else {
                l.items.iter().rev().filter(matches).take(limit).map(|(p, _)| p.clone()).collect()
            }
        }
    };
    let n = positions.len();
    if n > 0 {
        ctx.write(&args[1], Effect::ListRemove { positions });
    }
    ctx.out.int(n as i64);
    Ok(())
}

fn ltrim(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (start, stop) = (arg_i64(&args[2])?, arg_i64(&args[3])?);
    let positions: Vec<Position> = match list(ctx, &args[1])? {
        None => vec![],
        Some(l) => {
            let keep = super::strings::index_range(start, stop, l.len());
            l.items
                .keys()
                .enumerate()
                .filter(|(i, _)| keep.is_none_or(|(s, e)| *i < s || *i > e))
                .map(|(_, p)| p.clone())
                .collect()
        }
    };
    if !positions.is_empty() {
        ctx.write(&args[1], Effect::ListRemove { positions });
    }
    ctx.out.ok();
    Ok(())
}

fn lpos(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None::<usize>, 0usize);
    let mut i = 3;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(CmdError::Syntax);
        }
        let v = &args[i + 1];
        if eq_ic(&args[i], "rank") {
            rank = arg_i64(v)?;
            if rank == 0 {
                return Err(CmdError::msg("RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"));
            }
            if rank == i64::MIN {
                return Err(CmdError::msg("value is out of range"));
            }
        } else if eq_ic(&args[i], "count") {
            let c = arg_i64(v).map_err(|_| CmdError::msg("COUNT can't be negative"))?;
            if c < 0 {
                return Err(CmdError::msg("COUNT can't be negative"));
            }
            count = Some(c as usize);
        } else if eq_ic(&args[i], "maxlen") {
            let m = arg_i64(v).map_err(|_| CmdError::msg("MAXLEN can't be negative"))?;
            if m < 0 {
                return Err(CmdError::msg("MAXLEN can't be negative"));
            }
            maxlen = m as usize;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let found: Vec<i64> = match list(ctx, &args[1])? {
        None => vec![],
        Some(l) => {
            let len = l.len();
            let scan = if maxlen == 0 { len } else { maxlen.min(len) };
            let want = match count {
                Some(0) => usize::MAX,
                Some(c) => c,
                None => 1,
            };
            let skip = (rank.unsigned_abs() - 1) as usize;
            let values = l.items.values().map(|r| l.value_at(r));
            let hits: Box<dyn Iterator<Item = (usize, Blob)>> = if rank > 0 {
                Box::new(values.enumerate().take(scan))
            } else {
                let all: Vec<(usize, Blob)> = values.enumerate().collect();
                Box::new(all.into_iter().rev().take(scan))
            };
            hits.filter(|(_, v)| v[..] == args[2][..]).skip(skip).take(want).map(|(i, _)| i as i64).collect()
        }
    };
    match count {
        Some(_) => {
            ctx.out.array(found.len());
            found.iter().for_each(|i| ctx.out.int(*i));
        }
        None => match found.first() {
            Some(i) => ctx.out.int(*i),
            None => ctx.out.null(),
        },
    }
    Ok(())
}

fn parse_side(b: &[u8]) -> Result<bool, CmdError> {
    if eq_ic(b, "left") {
        Ok(true)
    } else if eq_ic(b, "right") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// LMOVE, RPOPLPUSH and their blocking forms.
fn lmove(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let (from_left, to_left, timeout) = match name.as_str() {
        "lmove" => (parse_side(&args[3])?, parse_side(&args[4])?, None),
        "blmove" => (parse_side(&args[3])?, parse_side(&args[4])?, Some(arg_timeout_secs(&args[5])?)),
        "brpoplpush" => (false, true, Some(arg_timeout_secs(&args[3])?)),
        _ => (false, true, None),
    };
    let (src, dst) = (&args[1], &args[2]);
    let has = list(ctx, src)?.is_some();
    if !has {
        match timeout {
            // Inside MULTI the blocking form answers like LMOVE; a timeout answers a null array.
            Some(_) if ctx.blocking == super::Blocking::Never => ctx.out.null(),
            Some(t) => ctx.block_on(std::slice::from_ref(src), t, TimeoutReply::NullArray),
            None => ctx.out.null(),
        }
        return Ok(());
    }
    list(ctx, dst)?;
    let value = pop_values(ctx, src, from_left, 1)?.pop().expect("non-empty list");
    push_values(ctx, dst, &[Bytes::copy_from_slice(&value)], to_left)?;
    ctx.out.bulk(&value);
    Ok(())
}

/// BLPOP key [key ...] timeout / BRPOP.
fn bpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let left = eq_ic(&args[0], "blpop");
    let timeout = arg_timeout_secs(&args[args.len() - 1])?;
    let keys = &args[1..args.len() - 1];
    for key in keys {
        if list(ctx, key)?.is_some() {
            let v = pop_values(ctx, key, left, 1)?;
            ctx.out.array(2);
            ctx.out.bulk(key);
            ctx.out.bulk(&v[0]);
            return Ok(());
        }
    }
    ctx.block_on(keys, timeout, TimeoutReply::NullArray);
    Ok(())
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count] and BLMPOP timeout numkeys ...
fn lmpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let blocking = eq_ic(&args[0], "blmpop");
    let (timeout, rest) =
        if blocking { (Some(arg_timeout_secs(&args[1])?), &args[2..]) } else { (None, &args[1..]) };
    let (keys, after) = super::numkeys_then_rest(rest)?;
    let left = parse_side(&after[0])?;
    let count = super::mpop_count(&after[1..])?;
    for key in keys {
        if list(ctx, key)?.is_some() {
            let values = pop_values(ctx, key, left, count)?;
            ctx.out.array(2);
            ctx.out.bulk(key);
            ctx.out.array(values.len());
            values.iter().for_each(|v| ctx.out.bulk(v));
            return Ok(());
        }
    }
    match timeout {
        Some(t) => ctx.block_on(keys, t, TimeoutReply::NullArray),
        None => ctx.out.null_array(),
    }
    Ok(())
}
