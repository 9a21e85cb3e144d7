//! `cmsgpack`: MessagePack with lua-cmsgpack's rules (the version Redis ships): integers in
//! the smallest encoding, floats as float32 when exact, tables as arrays when their keys are
//! exactly 1..n, nesting past 16 levels encoded as nil.

use mlua::{Lua, MultiValue, Table, Value};

use super::super::{PrimResult, Ret};

pub const PRIMS: super::Prims =
    &[("pack", pack), ("unpack", unpack), ("unpack_one", unpack_one), ("unpack_limit", unpack_limit)];

pub fn values(_lua: &Lua, t: &Table) -> mlua::Result<()> {
    t.raw_set("_NAME", "lua-cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(())
}

const MAX_NESTING: usize = 16;

fn pack(lua: &Lua, args: MultiValue) -> PrimResult {
    if args.is_empty() {
        return Err(super::super::bad_argument(0, "pack", "MessagePack pack needs input."));
    }
    let mut out = Vec::new();
    for v in args.iter() {
        encode(v, 0, &mut out)?;
    }
    Ok(Ret::One(Value::String(lua.create_string(out).map_err(|e| e.to_string())?)))
}

fn encode_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_number(n: f64, out: &mut Vec<u8>) {
    if n.is_finite()
        && (-super::super::convert::TWO_63..super::super::convert::TWO_63).contains(&n)
        && (n as i64) as f64 == n
    {
        return encode_int(n as i64, out);
    }
    let f = n as f32;
    if f as f64 == n || n.is_nan() {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn header(out: &mut Vec<u8>, n: usize, fix: u8, fix_max: usize, b16: u8, b32: u8) {
    if n <= fix_max {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn encode_bytes(s: &[u8], out: &mut Vec<u8>) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// lua-cmsgpack's test: every key a positive integer and as many keys as the largest one.
fn is_array(t: &Table) -> Result<bool, String> {
    let (mut count, mut max) = (0usize, 0usize);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        let n = match super::super::convert::as_number(&k) {
            Some(n) if n >= 1.0 && n.floor() == n => n as usize,
            _ => return Ok(false),
        };
        count += 1;
        max = max.max(n);
    }
    Ok(max == count)
}

fn encode(v: &Value, level: usize, out: &mut Vec<u8>) -> Result<(), String> {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_number(*i as f64, out),
        Value::Number(n) => encode_number(*n, out),
        Value::String(s) => encode_bytes(&s.as_bytes(), out),
        Value::Table(t) if level < MAX_NESTING => {
            if is_array(t)? {
                let n = t.raw_len();
                header(out, n, 0x90, 15, 0xdc, 0xdd);
                for i in 1..=n {
                    let item: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                    encode(&item, level + 1, out)?;
                }
            } else {
                let pairs: Vec<(Value, Value)> =
                    t.pairs::<Value, Value>().collect::<Result<_, _>>().map_err(|e| e.to_string())?;
                header(out, pairs.len(), 0x80, 15, 0xde, 0xdf);
                for (k, item) in &pairs {
                    encode(k, level + 1, out)?;
                    encode(item, level + 1, out)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

// ---- decoding ----

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

const MISSING: &str = "Missing bytes in input.";
const BAD: &str = "Bad data format in input.";

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or(MISSING)?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, String> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    fn value(&mut self, lua: &Lua, depth: usize) -> Result<Value, String> {
        if depth > 1000 {
            return Err(BAD.into());
        }
        let t = self.take(1)?[0];
        let s = |lua: &Lua, b: &[u8]| lua.create_string(b).map(Value::String).map_err(|e| e.to_string());
        Ok(match t {
            0x00..=0x7f => Value::Number(t as f64),
            0x80..=0x8f => self.map(lua, (t & 0x0f) as usize, depth)?,
            0x90..=0x9f => self.array(lua, (t & 0x0f) as usize, depth)?,
            0xa0..=0xbf => {
                let b = self.take((t & 0x1f) as usize)?;
                s(lua, b)?
            }
            0xc0 => Value::Nil,
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xd9 => {
                let n = self.be(1)? as usize;
                let b = self.take(n)?;
                s(lua, b)?
            }
            0xda => {
                let n = self.be(2)? as usize;
                let b = self.take(n)?;
                s(lua, b)?
            }
            0xdb => {
                let n = self.be(4)? as usize;
                let b = self.take(n)?;
                s(lua, b)?
            }
            0xca => Value::Number(f32::from_bits(self.be(4)? as u32) as f64),
            0xcb => Value::Number(f64::from_bits(self.be(8)?)),
            0xcc => Value::Number(self.be(1)? as f64),
            0xcd => Value::Number(self.be(2)? as f64),
            0xce => Value::Number(self.be(4)? as f64),
            0xcf => Value::Number(self.be(8)? as f64),
            0xd0 => Value::Number(self.be(1)? as u8 as i8 as f64),
            0xd1 => Value::Number(self.be(2)? as u16 as i16 as f64),
            0xd2 => Value::Number(self.be(4)? as u32 as i32 as f64),
            0xd3 => Value::Number(self.be(8)? as i64 as f64),
            0xdc => {
                let n = self.be(2)? as usize;
                self.array(lua, n, depth)?
            }
            0xdd => {
                let n = self.be(4)? as usize;
                self.array(lua, n, depth)?
            }
            0xde => {
                let n = self.be(2)? as usize;
                self.map(lua, n, depth)?
            }
            0xdf => {
                let n = self.be(4)? as usize;
                self.map(lua, n, depth)?
            }
            0xe0..=0xff => Value::Number(t as i8 as f64),
            _ => return Err(BAD.into()),
        })
    }

    fn array(&mut self, lua: &Lua, n: usize, depth: usize) -> Result<Value, String> {
        // Every element takes at least a byte: a count past the input is damage, not a reason
        // to allocate.
        if n > self.b.len() - self.pos {
            return Err(MISSING.into());
        }
        let t = lua.create_table_with_capacity(n, 0).map_err(|e| e.to_string())?;
        for i in 1..=n {
            let v = self.value(lua, depth + 1)?;
            t.raw_set(i, v).map_err(|e| e.to_string())?;
        }
        Ok(Value::Table(t))
    }

    fn map(&mut self, lua: &Lua, n: usize, depth: usize) -> Result<Value, String> {
        if n > (self.b.len() - self.pos) / 2 + 1 {
            return Err(MISSING.into());
        }
        let t = lua.create_table().map_err(|e| e.to_string())?;
        for _ in 0..n {
            let k = self.value(lua, depth + 1)?;
            let v = self.value(lua, depth + 1)?;
            if !k.is_nil() && !matches!(k, Value::Number(n) if n.is_nan()) {
                t.raw_set(k, v).map_err(|e| e.to_string())?;
            }
        }
        Ok(Value::Table(t))
    }
}

/// Decodes up to `limit` objects (0: all) from `offset`; returns them and the offset of the
/// next one (-1 at the end).
fn decode(lua: &Lua, data: &[u8], limit: usize, offset: usize) -> Result<(Vec<Value>, i64), String> {
    let mut r = Reader { b: data, pos: offset };
    let mut values = Vec::new();
    while r.pos < data.len() && (limit == 0 || values.len() < limit) {
        values.push(r.value(lua, 0)?);
    }
    let next = if r.pos < data.len() { r.pos as i64 } else { -1 };
    Ok((values, next))
}

fn data_arg(args: &MultiValue, func: &str) -> Result<Vec<u8>, String> {
    super::check_bytes(args, 0, func)
}

fn offset_arg(args: &MultiValue, i: usize, func: &str) -> Result<usize, String> {
    match args.get(i) {
        None | Some(Value::Nil) => Ok(0),
        Some(_) => {
            let n = super::check_number(args, i, func)?;
            if n < 0.0 {
                return Err(super::super::bad_argument(i + 1, func, "offset must be 0 or greater"));
            }
            Ok(n as usize)
        }
    }
}

fn unpack(lua: &Lua, args: MultiValue) -> PrimResult {
    let data = data_arg(&args, "unpack")?;
    let (values, _) = decode(lua, &data, 0, 0)?;
    Ok(Ret::Many(values))
}

fn unpack_limited(lua: &Lua, args: &MultiValue, limit: usize, offset: usize, func: &str) -> PrimResult {
    let data = data_arg(args, func)?;
    if offset > data.len() {
        return Err("Start offset greater than input length.".into());
    }
    let (mut values, next) = decode(lua, &data, limit, offset)?;
    values.insert(0, Value::Number(next as f64));
    Ok(Ret::Many(values))
}

fn unpack_one(lua: &Lua, args: MultiValue) -> PrimResult {
    let offset = offset_arg(&args, 1, "unpack_one")?;
    unpack_limited(lua, &args, 1, offset, "unpack_one")
}

fn unpack_limit(lua: &Lua, args: MultiValue) -> PrimResult {
    let limit = super::check_number(&args, 1, "unpack_limit")?;
    let offset = offset_arg(&args, 2, "unpack_limit")?;
    unpack_limited(lua, &args, limit.max(0.0) as usize, offset, "unpack_limit")
}
