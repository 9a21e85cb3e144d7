//! Conversions between Lua values and the Redis protocol, as Redis does them: a command's reply
//! becomes a Lua value for the script (RESP2 or, after `redis.setresp(3)`, RESP3 types), and the
//! script's result becomes the client's reply.

use bytes::{BufMut, Bytes};
use mlua::{Lua, Table, Value};

use crate::resp::Reply;

/// Deeper results than this are cut with an error (a script can return a table that contains
/// itself).
pub const MAX_DEPTH: usize = 1000;

/// 2^63: the first double past `i64`.
pub const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// C's `printf("%.<prec>g", x)`, which Lua (`%.14g`) and Redis (`%.17g`) format numbers with.
pub fn format_g(x: f64, prec: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan".into() } else { "nan".into() };
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let prec = prec.max(1);
    if x == 0.0 {
        return if x.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{:.*e}", prec - 1, x);
    let (mantissa, exp) = sci.split_once('e').expect("scientific notation");
    let exp: i32 = exp.parse().expect("exponent");
    if exp < -4 || exp >= prec as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim_zeros(mantissa), exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A Lua number as the integer a reply carries: truncated toward zero, and, as C's conversion
/// does on x86, `i64::MIN` for what no integer holds (NaN, ±huge).
pub fn number_to_i64(n: f64) -> i64 {
    if n.is_nan() || !(-TWO_63..TWO_63).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// A `redis.call` argument: strings as they are, numbers as Redis prints them (`%.17g`);
/// anything else is refused (None).
pub fn to_argument(v: &Value) -> Option<Bytes> {
    match v {
        Value::String(s) => Some(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Integer(i) => {
            if i.unsigned_abs() < 100_000_000_000_000_000 {
                Some(Bytes::from(itoa::Buffer::new().format(*i).as_bytes().to_vec()))
            } else {
                Some(Bytes::from(format_g(*i as f64, 17)))
            }
        }
        Value::Number(n) => Some(Bytes::from(format_g(*n, 17))),
        _ => None,
    }
}

/// A Lua number of any representation as f64.
pub fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

// ---- a command's reply -> Lua ----

/// Parses one reply (as the command handlers wrote it) into a Lua value. `resp3` selects the
/// RESP3 conversions of `redis.setresp(3)`.
pub fn reply_to_lua(lua: &Lua, buf: &[u8]) -> mlua::Result<Value> {
    let mut pos = 0;
    parse(lua, buf, &mut pos)
}

fn line<'a>(buf: &'a [u8], pos: &mut usize) -> &'a [u8] {
    let start = *pos;
    let end = buf[start..].windows(2).position(|w| w == b"\r\n").map(|i| start + i).unwrap_or(buf.len());
    *pos = (end + 2).min(buf.len());
    &buf[start..end]
}

fn int(b: &[u8]) -> i64 {
    crate::crdt::number::parse_i64(b).unwrap_or(0)
}

fn single(lua: &Lua, key: &str, value: impl mlua::IntoLua) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set(key, value)?;
    Ok(Value::Table(t))
}

fn parse(lua: &Lua, buf: &[u8], pos: &mut usize) -> mlua::Result<Value> {
    if *pos >= buf.len() {
        return Ok(Value::Nil);
    }
    let kind = buf[*pos];
    *pos += 1;
    let head = line(buf, pos);
    match kind {
        b'+' => single(lua, "ok", lua.create_string(head)?),
        b'-' => single(lua, "err", lua.create_string(head)?),
        b':' => Ok(Value::Number(int(head) as f64)),
        b'$' | b'=' => {
            let n = int(head);
            if n < 0 {
                return Ok(Value::Boolean(false));
            }
            let n = n as usize;
            let body = &buf[*pos..(*pos + n).min(buf.len())];
            *pos = (*pos + n + 2).min(buf.len());
            if kind == b'$' {
                return Ok(Value::String(lua.create_string(body)?));
            }
            let (format, text) = if body.len() >= 4 { body.split_at(3) } else { (body, &b""[..]) };
            let v = lua.create_table_with_capacity(0, 2)?;
            v.raw_set("format", lua.create_string(format)?)?;
            v.raw_set("string", lua.create_string(text.get(1..).unwrap_or(b""))?)?;
            single(lua, "verbatim_string", v)
        }
        b'*' | b'>' => {
            let n = int(head);
            if n < 0 {
                return Ok(Value::Boolean(false));
            }
            let t = lua.create_table_with_capacity(n.min(1024) as usize, 0)?;
            for i in 1..=n {
                let v = parse(lua, buf, pos)?;
                t.raw_set(i, v)?;
            }
            Ok(Value::Table(t))
        }
        b'%' => {
            let n = int(head).max(0);
            let m = lua.create_table()?;
            for _ in 0..n {
                let k = parse(lua, buf, pos)?;
                let v = parse(lua, buf, pos)?;
                if !k.is_nil() {
                    m.raw_set(k, v)?;
                }
            }
            single(lua, "map", m)
        }
        b'~' => {
            let n = int(head).max(0);
            let s = lua.create_table()?;
            for _ in 0..n {
                let k = parse(lua, buf, pos)?;
                if !k.is_nil() {
                    s.raw_set(k, true)?;
                }
            }
            single(lua, "set", s)
        }
        b',' => {
            let d = match head {
                b"inf" => f64::INFINITY,
                b"-inf" => f64::NEG_INFINITY,
                b"nan" => f64::NAN,
                _ => std::str::from_utf8(head).ok().and_then(|s| s.parse().ok()).unwrap_or(0.0),
            };
            single(lua, "double", d)
        }
        b'#' => Ok(Value::Boolean(head == b"t")),
        b'_' => Ok(Value::Nil),
        b'(' => single(lua, "big_number", lua.create_string(head)?),
        _ => Ok(Value::Nil),
    }
}

// ---- the script's result -> the client's reply ----

/// Writes a script's result as Redis does (`luaReplyToRedisReply`).
/// `resp3`: the script chose RESP3 with `redis.setresp(3)` (booleans are then booleans).
pub fn lua_to_reply(v: &Value, out: &mut Reply, resp3: bool) {
    write_value(v, out, 0, resp3)
}

fn status(out: &mut Reply, s: &[u8]) {
    out.buf.put_u8(b'+');
    for &c in s {
        out.buf.put_u8(if c == b'\r' || c == b'\n' { b' ' } else { c });
    }
    out.buf.extend_from_slice(b"\r\n");
}

fn error(out: &mut Reply, s: &[u8]) {
    out.error(&String::from_utf8_lossy(s));
}

fn raw_field(t: &Table, name: &str) -> Value {
    t.raw_get::<Value>(name).unwrap_or(Value::Nil)
}

fn write_value(v: &Value, out: &mut Reply, depth: usize, resp3: bool) {
    if depth > MAX_DEPTH {
        out.error("ERR reached lua stack limit");
        return;
    }
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(b) => {
            if resp3 {
                if out.resp3() {
                    out.boolean(*b);
                } else {
                    out.int(*b as i64);
                }
            } else if *b {
                out.int(1);
            } else {
                out.null();
            }
        }
        Value::Integer(i) => out.int(*i),
        Value::Number(n) => out.int(number_to_i64(*n)),
        Value::Table(t) => write_table(t, out, depth, resp3),
        _ => out.null(),
    }
}

fn write_table(t: &Table, out: &mut Reply, depth: usize, resp3: bool) {
    if let Value::String(e) = raw_field(t, "err") {
        return error(out, &e.as_bytes());
    }
    if let Value::String(s) = raw_field(t, "ok") {
        return status(out, &s.as_bytes());
    }
    if let Some(d) = as_number(&raw_field(t, "double")) {
        return out.double(d);
    }
    if let Value::String(s) = raw_field(t, "big_number") {
        let s = s.as_bytes();
        if out.resp3() {
            out.buf.put_u8(b'(');
            out.buf.extend_from_slice(&s);
            out.buf.extend_from_slice(b"\r\n");
        } else {
            out.bulk(&s);
        }
        return;
    }
    if let Value::Table(v) = raw_field(t, "verbatim_string") {
        if let (Value::String(format), Value::String(text)) =
            (raw_field(&v, "format"), raw_field(&v, "string"))
        {
            let (format, text) = (format.as_bytes(), text.as_bytes());
            if out.resp3() && format.len() == 3 {
                let mut body = Vec::with_capacity(text.len() + 4);
                body.extend_from_slice(&format);
                body.push(b':');
                body.extend_from_slice(&text);
                out.buf.put_u8(b'=');
                out.buf.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
                out.buf.extend_from_slice(b"\r\n");
                out.buf.extend_from_slice(&body);
                out.buf.extend_from_slice(b"\r\n");
            } else {
                out.bulk(&text);
            }
            return;
        }
    }
    if let Value::Table(m) = raw_field(t, "map") {
        let pairs: Vec<(Value, Value)> = m.pairs::<Value, Value>().filter_map(Result::ok).collect();
        out.map(pairs.len());
        for (k, v) in &pairs {
            write_value(k, out, depth + 1, resp3);
            write_value(v, out, depth + 1, resp3);
        }
        return;
    }
    if let Value::Table(s) = raw_field(t, "set") {
        let members: Vec<Value> = s.pairs::<Value, Value>().filter_map(|p| p.ok().map(|p| p.0)).collect();
        out.set(members.len());
        for m in &members {
            write_value(m, out, depth + 1, resp3);
        }
        return;
    }
    let mut items = Vec::new();
    loop {
        let v: Value = t.raw_get(items.len() + 1).unwrap_or(Value::Nil);
        if v.is_nil() {
            break;
        }
        items.push(v);
    }
    out.array(items.len());
    for v in &items {
        write_value(v, out, depth + 1, resp3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_format_matches_c() {
        assert_eq!(format_g(0.1, 17), "0.10000000000000001");
        assert_eq!(format_g(1e20, 17), "1e+20");
        assert_eq!(format_g(2f64.powi(62), 17), "4.6116860184273879e+18");
        assert_eq!(format_g(1.23456789012345, 17), "1.23456789012345");
        assert_eq!(format_g(1.23456789012345, 14), "1.2345678901235");
        assert_eq!(format_g(1e15, 14), "1e+15");
        assert_eq!(format_g(123456789012.0, 14), "123456789012");
        assert_eq!(format_g(-0.5, 17), "-0.5");
        assert_eq!(format_g(0.0001, 14), "0.0001");
        assert_eq!(format_g(0.00001, 14), "1e-05");
        assert_eq!(format_g(f64::INFINITY, 14), "inf");
    }

    #[test]
    fn out_of_range_numbers_become_the_minimum_integer() {
        assert_eq!(number_to_i64(1e100), i64::MIN);
        assert_eq!(number_to_i64(-1e100), i64::MIN);
        assert_eq!(number_to_i64(3.99), 3);
        assert_eq!(number_to_i64(-2.9), -2);
    }
}
