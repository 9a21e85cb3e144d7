//! String commands, counters and bit operations.
//!
//! Writes become `Assign` (the SET family: last writer wins) or `Incr` (counters that add up
//! across replicas). Commands that compute a new string from the old one (APPEND, SETRANGE,
//! SETBIT, BITOP) assign the result, keeping the TTL where Redis keeps it.

use std::borrow::Cow;

use bytes::Bytes;

use super::flags::*;
use super::{arg_i64, cmd, eq_ic, CmdError, CmdResult, Command, Ctx, StringRead};
use crate::crdt::extended::Extended;
use crate::crdt::number::parse_i64;
use crate::crdt::{Blob, Effect, Ttl, Value};

/// Redis's `proto-max-bulk-len`: the largest string a command may build.
pub const MAX_STRING: usize = 512 * 1024 * 1024;

#[rustfmt::skip]
pub const COMMANDS: &[Command] = &[
    cmd("get", 2, READONLY | FAST, (1, 1, 1), "string", "Returns the string value of a key.", get),
    cmd("set", -3, WRITE | DENYOOM, (1, 1, 1), "string", "Sets the string value of a key, ignoring its type.", set),
    cmd("setnx", 3, WRITE | DENYOOM | FAST, (1, 1, 1), "string", "Set the string value of a key only when the key doesn't exist.", setnx),
    cmd("setex", 4, WRITE | DENYOOM, (1, 1, 1), "string", "Sets the string value and expiration time of a key.", setex),
    cmd("psetex", 4, WRITE | DENYOOM, (1, 1, 1), "string", "Sets the string value and expiration time in milliseconds of a key.", setex),
    cmd("getset", 3, WRITE | DENYOOM | FAST, (1, 1, 1), "string", "Returns the previous string value of a key after setting it to a new value.", getset),
    cmd("getdel", 2, WRITE | FAST, (1, 1, 1), "string", "Returns the string value of a key after deleting the key.", getdel),
    cmd("getex", -2, WRITE | FAST, (1, 1, 1), "string", "Returns the string value of a key after setting its expiration time.", getex),
    cmd("mget", -2, READONLY | FAST, (1, -1, 1), "string", "Atomically returns the string values of one or more keys.", mget),
    cmd("mset", -3, WRITE | DENYOOM, (1, -1, 2), "string", "Atomically creates or modifies the string values of one or more keys.", mset),
    cmd("msetnx", -3, WRITE | DENYOOM, (1, -1, 2), "string", "Atomically modifies the string values of one or more keys only when all keys don't exist.", mset),
    cmd("append", 3, WRITE | DENYOOM | FAST, (1, 1, 1), "string", "Appends a string to the value of a key. Creates the key if it doesn't exist.", append),
    cmd("strlen", 2, READONLY | FAST, (1, 1, 1), "string", "Returns the length of a string value.", strlen),
    cmd("getrange", 4, READONLY, (1, 1, 1), "string", "Returns a substring of the string stored at a key.", getrange),
    cmd("substr", 4, READONLY, (1, 1, 1), "string", "Returns a substring from a string value.", getrange),
    cmd("setrange", 4, WRITE | DENYOOM, (1, 1, 1), "string", "Overwrites a part of a string value with another by an offset.", setrange),
    cmd("incr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), "string", "Increments the integer value of a key by one.", incr),
    cmd("decr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), "string", "Decrements the integer value of a key by one.", incr),
    cmd("incrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), "string", "Increments the integer value of a key by a number.", incr),
    cmd("decrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1), "string", "Decrements a number from the integer value of a key.", incr),
    cmd("incrbyfloat", 3, WRITE | DENYOOM | FAST, (1, 1, 1), "string", "Increment the floating point value of a key by a number.", incrbyfloat),
    cmd("setbit", 4, WRITE | DENYOOM, (1, 1, 1), "bitmap", "Sets or clears the bit at offset of the string value.", setbit),
    cmd("getbit", 3, READONLY | FAST, (1, 1, 1), "bitmap", "Returns a bit value by offset.", getbit),
    cmd("bitcount", -2, READONLY, (1, 1, 1), "bitmap", "Counts the number of set bits (population counting) in a string.", bitcount),
    cmd("bitpos", -3, READONLY, (1, 1, 1), "bitmap", "Finds the first set (1) or clear (0) bit in a string.", bitpos),
    cmd("bitop", -4, WRITE | DENYOOM, (2, -1, 1), "bitmap", "Performs bitwise operations on multiple strings, and stores the result.", bitop),
];

fn reply_opt(ctx: &mut Ctx, v: Option<StringRead>) {
    match v {
        Some(v) => v.reply(ctx.out),
        None => ctx.out.null(),
    }
}

fn get(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let v = ctx.read_string(&args[1])?;
    reply_opt(ctx, v);
    Ok(())
}

/// The string at `key` as owned bytes (None when missing).
fn ctx_get(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Vec<u8>>, CmdError> {
    Ok(ctx.get_string(key)?.map(Cow::into_owned))
}

/// Expiry options of SET and GETEX.
#[derive(PartialEq)]
enum Expiry {
    None,
    Keep,
    Persist,
    At(u64),
}

fn parse_expiry(ctx: &Ctx, unit: &str, v: &[u8], cmd: &str) -> Result<Expiry, CmdError> {
    let n = arg_i64(v)?;
    let invalid = || CmdError::msg(format!("invalid expire time in '{cmd}' command"));
    if n <= 0 {
        return Err(invalid());
    }
    let now = ctx.now as i64;
    let at = match unit {
        "ex" => n.checked_mul(1000).and_then(|ms| ms.checked_add(now)),
        "px" => n.checked_add(now),
        "exat" => n.checked_mul(1000),
        _ => Some(n),
    }
    .ok_or_else(invalid)?;
    Ok(Expiry::At(at as u64))
}

fn set(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut get) = (false, false, false);
    let mut expiry = Expiry::None;
    let mut unit: Option<String> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = String::from_utf8_lossy(&args[i]).to_ascii_lowercase();
        match opt.as_str() {
            "nx" if !xx => nx = true,
            "xx" if !nx => xx = true,
            "get" => get = true,
            "keepttl" if expiry == Expiry::None && unit.is_none() => expiry = Expiry::Keep,
            "ex" | "px" | "exat" | "pxat"
                if (unit.is_none() || unit.as_deref() == Some(opt.as_str()))
                    && expiry != Expiry::Keep
                    && i + 1 < args.len() =>
            {
                // Redis accepts the same unit twice (the last wins), not two different ones.
                expiry = parse_expiry(ctx, &opt, &args[i + 1], "set")?;
                unit = Some(opt.clone());
                i += 1;
            }
            _ => return Err(CmdError::Syntax),
        }
        i += 1;
    }
    let key = &args[1];
    let old = if get { Some(ctx.read_string(key)?) } else { None };
    let exists = match &old {
        Some(v) => v.is_some(),
        None => ctx.lookup(key).is_some(),
    };
    if (nx && exists) || (xx && !exists) {
        match old {
            Some(v) => reply_opt(ctx, v),
            None => ctx.out.null(),
        }
        return Ok(());
    }
    let ttl = match expiry {
        Expiry::None | Expiry::Persist => Ttl::Clear,
        Expiry::Keep => Ttl::Keep,
        Expiry::At(at) => Ttl::At(at),
    };
    ctx.write(key, Effect::Assign { value: Value::from_bytes(&args[2]), ttl });
    match old {
        Some(v) => reply_opt(ctx, v),
        None => ctx.out.ok(),
    }
    Ok(())
}

fn setnx(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if ctx.lookup(&args[1]).is_some() {
        ctx.out.int(0);
    } else {
        ctx.write(&args[1], Effect::Assign { value: Value::from_bytes(&args[2]), ttl: Ttl::Clear });
        ctx.out.int(1);
    }
    Ok(())
}

fn setex(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let unit = if name == "setex" { "ex" } else { "px" };
    let Expiry::At(at) = parse_expiry(ctx, unit, &args[2], &name)? else { unreachable!() };
    ctx.write(&args[1], Effect::Assign { value: Value::from_bytes(&args[3]), ttl: Ttl::At(at) });
    ctx.out.ok();
    Ok(())
}

fn getset(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let old = ctx.read_string(&args[1])?;
    ctx.write(&args[1], Effect::Assign { value: Value::from_bytes(&args[2]), ttl: Ttl::Clear });
    reply_opt(ctx, old);
    Ok(())
}

fn getdel(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let old = ctx.read_string(&args[1])?;
    if old.is_some() {
        ctx.write(&args[1], Effect::Delete);
    }
    reply_opt(ctx, old);
    Ok(())
}

fn getex(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut expiry = Expiry::None;
    let mut i = 2;
    while i < args.len() {
        let opt = String::from_utf8_lossy(&args[i]).to_ascii_lowercase();
        match opt.as_str() {
            "persist" if expiry == Expiry::None => expiry = Expiry::Persist,
            "ex" | "px" | "exat" | "pxat" if expiry == Expiry::None && i + 1 < args.len() => {
                expiry = parse_expiry(ctx, &opt, &args[i + 1], "getex")?;
                i += 1;
            }
            _ => return Err(CmdError::Syntax),
        }
        i += 1;
    }
    let v = ctx.read_string(&args[1])?;
    if v.is_some() {
        match expiry {
            Expiry::At(at) if at <= ctx.now => ctx.write(&args[1], Effect::Delete),
            Expiry::At(at) => ctx.write(&args[1], Effect::Expire { deadline: Some(at) }),
            Expiry::Persist if ctx.lookup(&args[1]).and_then(|e| e.deadline()).is_some() => {
                ctx.write(&args[1], Effect::Expire { deadline: None })
            }
            _ => {}
        }
    }
    reply_opt(ctx, v);
    Ok(())
}

fn mget(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut values = Vec::with_capacity(args.len() - 1);
    for key in &args[1..] {
        // MGET answers nil for keys of other types.
        values.push(ctx.read_string(key).unwrap_or(None));
    }
    ctx.out.array(values.len());
    for v in values {
        reply_opt(ctx, v);
    }
    Ok(())
}

fn mset(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(super::arity_error(args));
    }
    let nx = eq_ic(&args[0], "msetnx");
    if nx && args[1..].chunks(2).any(|kv| ctx.lookup(&kv[0]).is_some()) {
        ctx.out.int(0);
        return Ok(());
    }
    for kv in args[1..].chunks(2) {
        ctx.write(&kv[0], Effect::Assign { value: Value::from_bytes(&kv[1]), ttl: Ttl::Clear });
    }
    if nx {
        ctx.out.int(1);
    } else {
        ctx.out.ok();
    }
    Ok(())
}

fn check_size(len: usize) -> Result<(), CmdError> {
    if len > MAX_STRING {
        Err(CmdError::msg("string exceeds maximum allowed size (proto-max-bulk-len)"))
    } else {
        Ok(())
    }
}

fn append(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let old = ctx_get(ctx, &args[1])?;
    let existed = old.is_some();
    let mut v = old.unwrap_or_default();
    check_size(v.len() + args[2].len())?;
    v.extend_from_slice(&args[2]);
    let ttl = if existed { Ttl::Keep } else { Ttl::Clear };
    let len = v.len();
    ctx.write(&args[1], Effect::Assign { value: Value::from_vec(v), ttl });
    ctx.out.int(len as i64);
    Ok(())
}

fn strlen(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = ctx.get_string(&args[1])?.map(|v| v.len()).unwrap_or(0);
    ctx.out.int(n as i64);
    Ok(())
}

/// Resolves an inclusive index range the way LRANGE, LTRIM and ZRANGE do (negatives count from
/// the end; an end before the start of the list selects nothing). None when empty.
pub fn index_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let s = if start < 0 { (len + start).max(0) } else { start };
    let e = if end < 0 { len + end } else { end.min(len - 1) };
    if s > e || s >= len {
        return None;
    }
    Some((s as usize, e as usize))
}

/// Resolves Redis's inclusive `start`/`end` for strings (GETRANGE, BITCOUNT): negatives count
/// from the end and both ends are clamped into the string. None when the range is empty.
pub fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 { len + start } else { start };
    let mut e = if end < 0 { len + end } else { end };
    s = s.max(0);
    e = e.max(0);
    if e >= len {
        e = len - 1;
    }
    if s > e || len == 0 {
        return None;
    }
    Some((s as usize, e as usize))
}

fn getrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let start = arg_i64(&args[2])?;
    let end = arg_i64(&args[3])?;
    let v = ctx.read_string(&args[1])?;
    let v: &[u8] = v.as_deref().unwrap_or_default();
    if start < 0 && end < 0 && start > end {
        ctx.out.bulk(b"");
        return Ok(());
    }
    match clamp_range(start, end, v.len()) {
        Some((s, e)) => ctx.out.bulk(&v[s..=e]),
        None => ctx.out.bulk(b""),
    }
    Ok(())
}

fn setrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let offset = arg_i64(&args[2])?;
    if offset < 0 {
        return Err(CmdError::msg("offset is out of range"));
    }
    let offset = offset as usize;
    let old = ctx_get(ctx, &args[1])?;
    let value = &args[3];
    if value.is_empty() {
        let len = old.map(|v| v.len()).unwrap_or(0);
        ctx.out.int(len as i64);
        return Ok(());
    }
    check_size(offset + value.len())?;
    let existed = old.is_some();
    let mut v = old.unwrap_or_default();
    if v.len() < offset + value.len() {
        v.resize(offset + value.len(), 0);
    }
    v[offset..offset + value.len()].copy_from_slice(value);
    let len = v.len();
    let ttl = if existed { Ttl::Keep } else { Ttl::Clear };
    ctx.write(&args[1], Effect::Assign { value: Value::from_vec(v), ttl });
    ctx.out.int(len as i64);
    Ok(())
}

fn incr(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let by = match name.as_str() {
        "incr" => 1,
        "decr" => -1,
        "incrby" => arg_i64(&args[2])?,
        _ => {
            let n = arg_i64(&args[2])?;
            if n == i64::MIN {
                return Err(CmdError::msg("decrement would overflow"));
            }
            -n
        }
    };
    let current = match ctx.get_string(&args[1])? {
        None => 0,
        Some(v) => parse_i64(&v).ok_or(CmdError::NotInteger)?,
    };
    let new = current.checked_add(by).ok_or(CmdError::Overflow)?;
    ctx.write(&args[1], Effect::Incr { int: by, float: 0.0, is_float: false, ext: None });
    ctx.out.int(new);
    Ok(())
}

fn incrbyfloat(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    // Redis computes in x87 long double; so does this, to give the same digits.
    let by = Extended::parse_redis(&args[2]).ok_or(CmdError::NotFloat)?;
    let current = match ctx.get_string(&args[1])? {
        None => Extended::ZERO,
        Some(v) => Extended::parse_redis(&v).ok_or(CmdError::NotFloat)?,
    };
    let new = current + by;
    if !new.is_finite() {
        return Err(CmdError::msg("increment would produce NaN or Infinity"));
    }
    // As Redis: the key holds the printed result, which the next increment parses again.
    let shown = new.format_human().into_bytes();
    ctx.write(&args[1], Effect::IncrFloat { by, value: Blob::from_slice(&shown) });
    ctx.out.bulk(&shown);
    Ok(())
}

fn bit_offset(b: &[u8]) -> Result<usize, CmdError> {
    let err = || CmdError::msg("bit offset is not an integer or out of range");
    let n = parse_i64(b).ok_or_else(err)?;
    if !(0..(MAX_STRING as i64 * 8)).contains(&n) {
        return Err(err());
    }
    Ok(n as usize)
}

fn setbit(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(&args[2])?;
    let bit = match &args[3][..] {
        b"0" => 0u8,
        b"1" => 1u8,
        _ => return Err(CmdError::msg("bit is not an integer or out of range")),
    };
    let old = ctx_get(ctx, &args[1])?;
    let existed = old.is_some();
    let mut v = old.unwrap_or_default();
    let byte = offset / 8;
    if v.len() <= byte {
        v.resize(byte + 1, 0);
    }
    let mask = 0x80u8 >> (offset % 8);
    let previous = (v[byte] & mask != 0) as i64;
    if bit == 1 {
        v[byte] |= mask;
    } else {
        v[byte] &= !mask;
    }
    let ttl = if existed { Ttl::Keep } else { Ttl::Clear };
    ctx.write(&args[1], Effect::Assign { value: Value::from_vec(v), ttl });
    ctx.out.int(previous);
    Ok(())
}

fn getbit(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(&args[2])?;
    let v = ctx.get_string(&args[1])?;
    let bit =
        v.and_then(|v| v.get(offset / 8).map(|b| (b & (0x80u8 >> (offset % 8)) != 0) as i64)).unwrap_or(0);
    ctx.out.int(bit);
    Ok(())
}

/// Parses `[start end [BYTE|BIT]]` of BITCOUNT/BITPOS; returns the inclusive range in bits.
fn bit_range(
    args: &[Bytes],
    len: usize,
    allow_end_missing: bool,
) -> Result<Option<(usize, usize)>, CmdError> {
    let bits = len * 8;
    if args.is_empty() {
        return Ok(if len == 0 { None } else { Some((0, bits - 1)) });
    }
    let start = arg_i64(&args[0])?;
    let (end, explicit_end) = match args.get(1) {
        Some(e) => (arg_i64(e)?, true),
        None if allow_end_missing => (-1, false),
        None => return Err(CmdError::Syntax),
    };
    let unit_bit = match args.get(2) {
        None => false,
        Some(u) if eq_ic(u, "byte") => false,
        Some(u) if eq_ic(u, "bit") => true,
        Some(_) => return Err(CmdError::Syntax),
    };
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let _ = explicit_end;
    if unit_bit {
        Ok(clamp_range(start, end, bits))
    } else {
        Ok(clamp_range(start, end, len).map(|(s, e)| (s * 8, e * 8 + 7)))
    }
}

fn bitcount(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let v = ctx.read_string(&args[1])?;
    let v: &[u8] = v.as_deref().unwrap_or_default();
    if args.len() == 3 {
        return Err(CmdError::Syntax);
    }
    let range = bit_range(&args[2..], v.len(), false)?;
    let count = match range {
        None => 0,
        Some((s, e)) => (s..=e).filter(|&i| v[i / 8] & (0x80 >> (i % 8)) != 0).count(),
    };
    ctx.out.int(count as i64);
    Ok(())
}

fn bitpos(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let bit = match arg_i64(&args[2])? {
        0 => false,
        1 => true,
        _ => return Err(CmdError::msg("The bit argument must be 1 or 0.")),
    };
    let v = ctx.read_string(&args[1])?;
    let Some(v) = v else {
        ctx.out.int(if bit { -1 } else { 0 });
        return Ok(());
    };
    let end_given = args.len() >= 5;
    let range = bit_range(&args[3..], v.len(), true)?;
    let Some((s, e)) = range else {
        ctx.out.int(-1);
        return Ok(());
    };
    let found = (s..=e).find(|&i| (v[i / 8] & (0x80 >> (i % 8)) != 0) == bit);
    let reply = match found {
        Some(i) => i as i64,
        // Looking for a clear bit past the end of the string: the string is padded with zeros.
        None if !bit && !end_given => (e + 1) as i64,
        None => -1,
    };
    ctx.out.int(reply);
    Ok(())
}

fn bitop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let op = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    if !["and", "or", "xor", "not"].contains(&op.as_str()) {
        return Err(CmdError::Syntax);
    }
    if op == "not" && args.len() != 4 {
        return Err(CmdError::msg("BITOP NOT must be called with a single source key."));
    }
    let mut sources = Vec::new();
    for key in &args[3..] {
        sources.push(ctx_get(ctx, key)?.unwrap_or_default());
    }
    let len = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut result = vec![0u8; len];
    for (i, r) in result.iter_mut().enumerate() {
        let byte = |s: &Vec<u8>| s.get(i).copied().unwrap_or(0);
        *r = match op.as_str() {
            "not" => !byte(&sources[0]),
            "and" => sources.iter().fold(0xff, |acc, s| acc & byte(s)),
            "or" => sources.iter().fold(0, |acc, s| acc | byte(s)),
            _ => sources.iter().fold(0, |acc, s| acc ^ byte(s)),
        };
    }
    let dest = &args[2];
    if len == 0 {
        if ctx.lookup(dest).is_some() {
            ctx.write(dest, Effect::Delete);
        }
    } else {
        ctx.write(dest, Effect::Assign { value: Value::from_vec(result), ttl: Ttl::Clear });
    }
    ctx.out.int(len as i64);
    Ok(())
}
