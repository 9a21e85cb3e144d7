//! `struct`: packing numbers and strings into binary strings, with the format language of
//! Roberto Ierusalimschy's struct library that Redis ships (`>`, `<`, `!n`, `x`, `b B h H l L
//! T i[n] I[n]`, `f d`, `s`, `c[n]`).

use mlua::{Lua, MultiValue, Value};

use super::super::{bad_argument, PrimResult, Ret};
use super::{check_bytes, check_number};

pub const PRIMS: super::Prims = &[("pack", pack), ("unpack", unpack), ("size", size)];

const MAXINTSIZE: usize = 32;
/// The largest alignment `!` picks without a number (that of a double, on x86-64).
const MAXALIGN: usize = 8;

struct Header {
    little: bool,
    align: usize,
}

struct Format<'a> {
    f: &'a [u8],
    pos: usize,
}

impl Format<'_> {
    fn number(&mut self, default: usize) -> usize {
        if !self.f.get(self.pos).is_some_and(|c| c.is_ascii_digit()) {
            return default;
        }
        let mut n = 0usize;
        while let Some(c) = self.f.get(self.pos).filter(|c| c.is_ascii_digit()) {
            n = n.saturating_mul(10).saturating_add((c - b'0') as usize);
            self.pos += 1;
        }
        n
    }
}

/// One format option and its size.
enum Item {
    Pad,
    Int {
        size: usize,
        signed: bool,
    },
    Float,
    Double,
    /// `c[n]` (0: the length comes from the data or the previous value).
    Chars(usize),
    /// `s`: zero-terminated.
    ZString,
    /// An option that only changes the header (`<`, `>`, `!`, ` `).
    Control,
}

fn next_item(fmt: &mut Format, h: &mut Header, func: &str) -> Result<Option<(Item, usize)>, String> {
    let Some(&opt) = fmt.f.get(fmt.pos) else { return Ok(None) };
    fmt.pos += 1;
    let item = match opt {
        b'x' => (Item::Pad, 1),
        b'b' => (Item::Int { size: 1, signed: true }, 1),
        b'B' => (Item::Int { size: 1, signed: false }, 1),
        b'h' => (Item::Int { size: 2, signed: true }, 2),
        b'H' => (Item::Int { size: 2, signed: false }, 2),
        b'l' => (Item::Int { size: 8, signed: true }, 8),
        b'L' => (Item::Int { size: 8, signed: false }, 8),
        b'T' => (Item::Int { size: 8, signed: false }, 8),
        b'i' | b'I' => {
            let size = fmt.number(4);
            if size > MAXINTSIZE {
                return Err(format!("integral size {size} is larger than limit of {MAXINTSIZE}"));
            }
            (Item::Int { size, signed: opt == b'i' }, size)
        }
        b'f' => (Item::Float, 4),
        b'd' => (Item::Double, 8),
        b'c' => {
            let n = fmt.number(1);
            (Item::Chars(n), n)
        }
        b's' => (Item::ZString, 0),
        b' ' => (Item::Control, 0),
        b'>' => {
            h.little = false;
            (Item::Control, 0)
        }
        b'<' | b'=' => {
            h.little = true;
            (Item::Control, 0)
        }
        b'!' => {
            let a = fmt.number(MAXALIGN);
            if !a.is_power_of_two() {
                return Err(format!("alignment {a} is not a power of 2"));
            }
            h.align = a;
            (Item::Control, 0)
        }
        other => return Err(bad_argument(1, func, &format!("invalid format option '{}'", other as char))),
    };
    Ok(Some(item))
}

fn padding(len: usize, size: usize, h: &Header) -> usize {
    if size <= 1 || h.align <= 1 {
        return 0;
    }
    let align = size.min(h.align);
    (align - (len & (align - 1))) & (align - 1)
}

fn put_int(out: &mut Vec<u8>, n: f64, size: usize, little: bool) {
    let value: u64 = if n < 0.0 { (n as i64) as u64 } else { n as u64 };
    let mut bytes = Vec::with_capacity(size);
    let mut v = value;
    for _ in 0..size {
        bytes.push((v & 0xff) as u8);
        v = v.checked_shr(8).unwrap_or(0);
    }
    if !little {
        bytes.reverse();
    }
    out.extend_from_slice(&bytes);
}

fn pack(lua: &Lua, args: MultiValue) -> PrimResult {
    const FUNC: &str = "pack";
    let fmt_bytes = check_bytes(&args, 0, "pack")?;
    let mut fmt = Format { f: &fmt_bytes, pos: 0 };
    let mut h = Header { little: true, align: 1 };
    let mut out = Vec::new();
    let mut arg = 1;
    while let Some((item, size)) = next_item(&mut fmt, &mut h, FUNC)? {
        let pad = padding(out.len(), size, &h);
        out.resize(out.len() + pad, 0);
        match item {
            Item::Control => {}
            Item::Pad => out.push(0),
            Item::Int { size, .. } => {
                put_int(&mut out, check_number(&args, arg, "pack")?, size, h.little);
                arg += 1;
            }
            Item::Float => {
                let f = check_number(&args, arg, "pack")? as f32;
                out.extend_from_slice(&if h.little { f.to_le_bytes() } else { f.to_be_bytes() });
                arg += 1;
            }
            Item::Double => {
                let d = check_number(&args, arg, "pack")?;
                out.extend_from_slice(&if h.little { d.to_le_bytes() } else { d.to_be_bytes() });
                arg += 1;
            }
            Item::Chars(n) => {
                let s = check_bytes(&args, arg, "pack")?;
                let n = if n == 0 { s.len() } else { n };
                if s.len() < n {
                    return Err(bad_argument(arg + 1, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..n]);
                arg += 1;
            }
            Item::ZString => {
                let s = check_bytes(&args, arg, "pack")?;
                if s.contains(&0) {
                    return Err(bad_argument(arg + 1, "pack", "string contains zeros"));
                }
                out.extend_from_slice(&s);
                out.push(0);
                arg += 1;
            }
        }
    }
    Ok(Ret::One(Value::String(lua.create_string(out).map_err(|e| e.to_string())?)))
}

fn get_int(data: &[u8], signed: bool, little: bool) -> f64 {
    let size = data.len();
    let mut v: u64 = 0;
    if little {
        for &b in data.iter().rev() {
            v = (v << 8) | b as u64;
        }
    } else {
        for &b in data {
            v = (v << 8) | b as u64;
        }
    }
    if signed && size > 0 && size <= 8 {
        let mask: u64 = u64::MAX << (size * 8 - 1);
        if v & mask != 0 {
            v |= mask;
        }
        return v as i64 as f64;
    }
    v as f64
}

fn unpack(lua: &Lua, args: MultiValue) -> PrimResult {
    const FUNC: &str = "unpack";
    let fmt_bytes = check_bytes(&args, 0, "unpack")?;
    let data = check_bytes(&args, 1, "unpack")?;
    let init = match args.get(2) {
        None | Some(Value::Nil) => 1.0,
        Some(_) => check_number(&args, 2, "unpack")?,
    };
    if init < 1.0 {
        return Err(bad_argument(3, "unpack", "offset must be 1 or greater"));
    }
    let mut pos = init as usize - 1;
    let mut fmt = Format { f: &fmt_bytes, pos: 0 };
    let mut h = Header { little: true, align: 1 };
    let mut values: Vec<Value> = Vec::new();
    let short = || bad_argument(2, "unpack", "data string too short");
    let string = |lua: &Lua, b: &[u8]| lua.create_string(b).map(Value::String).map_err(|e| e.to_string());
    while let Some((item, size)) = next_item(&mut fmt, &mut h, FUNC)? {
        pos += padding(pos, size, &h);
        if pos.checked_add(size).is_none_or(|end| end > data.len()) {
            return Err(short());
        }
        match item {
            Item::Control | Item::Pad => {}
            Item::Int { size, signed } => {
                values.push(Value::Number(get_int(&data[pos..pos + size], signed, h.little)))
            }
            Item::Float => {
                let b: [u8; 4] = data[pos..pos + 4].try_into().expect("4 bytes");
                let f = if h.little { f32::from_le_bytes(b) } else { f32::from_be_bytes(b) };
                values.push(Value::Number(f as f64));
            }
            Item::Double => {
                let b: [u8; 8] = data[pos..pos + 8].try_into().expect("8 bytes");
                values.push(Value::Number(if h.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                }));
            }
            Item::Chars(n) => {
                let n = if n == 0 {
                    // `c0`: the length is the previous value read.
                    let Some(prev) = values.pop().and_then(|v| super::super::convert::as_number(&v)) else {
                        return Err("format 'c0' needs a previous size".into());
                    };
                    let n = prev as usize;
                    if pos + n > data.len() {
                        return Err(short());
                    }
                    n
                } else {
                    n
                };
                values.push(string(lua, &data[pos..pos + n])?);
                pos += n;
                continue;
            }
            Item::ZString => {
                let Some(end) = data[pos..].iter().position(|&c| c == 0) else {
                    return Err("unfinished string in data".into());
                };
                values.push(string(lua, &data[pos..pos + end])?);
                pos += end + 1;
                continue;
            }
        }
        pos += size;
    }
    values.push(Value::Number((pos + 1) as f64));
    Ok(Ret::Many(values))
}

fn size(_lua: &Lua, args: MultiValue) -> PrimResult {
    const FUNC: &str = "size";
    let fmt_bytes = check_bytes(&args, 0, "size")?;
    let mut fmt = Format { f: &fmt_bytes, pos: 0 };
    let mut h = Header { little: true, align: 1 };
    let mut total = 0usize;
    while let Some((item, size)) = next_item(&mut fmt, &mut h, FUNC)? {
        if matches!(item, Item::ZString) {
            return Err(bad_argument(1, "size", "option 's' has no fixed size"));
        }
        if matches!(item, Item::Chars(0)) {
            return Err(bad_argument(1, "size", "option 'c0' has no fixed size"));
        }
        total += padding(total, size, &h) + size;
    }
    Ok(Ret::One(Value::Number(total as f64)))
}
