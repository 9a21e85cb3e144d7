//! `cjson`: JSON encoding and decoding with lua-cjson's rules (the version Redis ships):
//! numbers as `%.14g`, `/` escaped, empty tables as `{}`, sparse arrays refused, `cjson.null`.

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::super::convert::format_g;
use super::super::{PrimResult, Ret};
use super::{check_bytes, check_number};

pub const PRIMS: super::Prims = &[
    ("encode", encode),
    ("decode", decode),
    ("encode_max_depth", encode_max_depth),
    ("decode_max_depth", decode_max_depth),
    ("encode_number_precision", encode_number_precision),
    ("encode_sparse_array", encode_sparse_array),
    ("encode_keep_buffer", encode_keep_buffer),
    ("encode_invalid_numbers", encode_invalid_numbers),
    ("decode_invalid_numbers", decode_invalid_numbers),
];

pub fn values(lua: &Lua, t: &Table) -> mlua::Result<()> {
    t.raw_set("null", Value::LightUserData(LightUserData(std::ptr::null_mut())))?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    lua.set_app_data(Config::default());
    Ok(())
}

/// lua-cjson's settings (one set per Lua state).
#[derive(Clone, Copy)]
struct Config {
    encode_max_depth: usize,
    decode_max_depth: usize,
    precision: usize,
    sparse_convert: bool,
    sparse_ratio: usize,
    sparse_safe: usize,
    encode_invalid_numbers: bool,
    decode_invalid_numbers: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            precision: 14,
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_invalid_numbers: false,
            decode_invalid_numbers: true,
        }
    }
}

fn config(lua: &Lua) -> Config {
    lua.app_data_ref::<Config>().map(|c| *c).unwrap_or_default()
}

fn update(lua: &Lua, f: impl FnOnce(&mut Config)) {
    if let Some(mut c) = lua.app_data_mut::<Config>() {
        f(&mut c);
    }
}

fn err<T>(s: impl Into<String>) -> Result<T, String> {
    Err(s.into())
}

fn lstr(lua: &Lua, s: impl AsRef<[u8]>) -> Result<Value, String> {
    lua.create_string(s).map(Value::String).map_err(|e| e.to_string())
}

// ---- encode ----

fn encode(lua: &Lua, args: MultiValue) -> PrimResult {
    if args.len() != 1 {
        return err("bad argument #1 to 'encode' (expected 1 argument)");
    }
    let cfg = config(lua);
    let mut out = Vec::new();
    encode_value(&args[0], &cfg, 0, &mut out)?;
    Ok(Ret::One(lstr(lua, out)?))
}

fn encode_number(n: f64, cfg: &Config, out: &mut Vec<u8>) -> Result<(), String> {
    if !n.is_finite() {
        if !cfg.encode_invalid_numbers {
            return err("Cannot serialise number: must not be NaN or Inf");
        }
        out.extend_from_slice(if n.is_nan() {
            b"nan"
        } else if n > 0.0 {
            b"inf"
        } else {
            b"-inf"
        });
        return Ok(());
    }
    out.extend_from_slice(format_g(n, cfg.precision).as_bytes());
    Ok(())
}

fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\x0c' => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

fn encode_value(v: &Value, cfg: &Config, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(u) if u.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => encode_number(*i as f64, cfg, out)?,
        Value::Number(n) => encode_number(*n, cfg, out)?,
        Value::String(s) => encode_string(&s.as_bytes(), out),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > cfg.encode_max_depth {
                return err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            match array_length(t, cfg)? {
                Some(n) if n > 0 => {
                    out.push(b'[');
                    for i in 1..=n {
                        if i > 1 {
                            out.push(b',');
                        }
                        let item: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                        encode_value(&item, cfg, depth, out)?;
                    }
                    out.push(b']');
                }
                _ => {
                    out.push(b'{');
                    let mut first = true;
                    for pair in t.pairs::<Value, Value>() {
                        let (k, item) = pair.map_err(|e| e.to_string())?;
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        match &k {
                            Value::String(s) => encode_string(&s.as_bytes(), out),
                            Value::Integer(_) | Value::Number(_) => {
                                out.push(b'"');
                                encode_number(super::super::convert::as_number(&k).unwrap_or(0.0), cfg, out)?;
                                out.push(b'"');
                            }
                            other => {
                                return err(format!(
                                    "Cannot serialise {}: table key must be a number or string",
                                    super::super::type_name(other)
                                ))
                            }
                        }
                        out.push(b':');
                        encode_value(&item, cfg, depth, out)?;
                    }
                    out.push(b'}');
                }
            }
        }
        other => {
            return err(format!("Cannot serialise {}: type not supported", super::super::type_name(other)))
        }
    }
    Ok(())
}

/// The array length of a table whose keys are all positive integers (None: an object);
/// excessively sparse arrays are refused (or encoded as objects with `encode_sparse_array`).
fn array_length(t: &Table, cfg: &Config) -> Result<Option<usize>, String> {
    let (mut max, mut items) = (0usize, 0usize);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        let n = match k {
            Value::Integer(i) if i >= 1 => i as f64,
            Value::Number(n) if n >= 1.0 && n.floor() == n => n,
            _ => return Ok(None),
        };
        max = max.max(n as usize);
        items += 1;
    }
    if cfg.sparse_ratio > 0 && max > items * cfg.sparse_ratio && max > cfg.sparse_safe {
        if !cfg.sparse_convert {
            return err("Cannot serialise table: excessively sparse array");
        }
        return Ok(None);
    }
    Ok(Some(max))
}

// ---- decode ----

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
    cfg: Config,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn fail<T>(&self, expected: &str, found: &str, at: usize) -> Result<T, String> {
        err(format!("Expected {expected} but found {found} at character {}", at + 1))
    }

    /// The name of the token at the cursor, for error messages.
    fn token_name(&self) -> &'static str {
        match self.s.get(self.pos) {
            None => "T_END",
            Some(b'{') => "T_OBJ_BEGIN",
            Some(b'}') => "T_OBJ_END",
            Some(b'[') => "T_ARR_BEGIN",
            Some(b']') => "T_ARR_END",
            Some(b':') => "T_COLON",
            Some(b',') => "T_COMMA",
            Some(b'"') => "T_STRING",
            Some(b'-' | b'0'..=b'9') => "T_NUMBER",
            Some(b't' | b'f') => "T_BOOLEAN",
            Some(b'n') => "T_NULL",
            _ => "invalid token",
        }
    }

    fn value(&mut self, lua: &Lua) -> Result<Value, String> {
        self.skip_ws();
        let start = self.pos;
        match self.s.get(self.pos) {
            Some(b'{') => self.object(lua),
            Some(b'[') => self.array(lua),
            Some(b'"') => Ok(lstr(lua, self.string()?)?),
            Some(b't') if self.s[self.pos..].starts_with(b"true") => {
                self.pos += 4;
                Ok(Value::Boolean(true))
            }
            Some(b'f') if self.s[self.pos..].starts_with(b"false") => {
                self.pos += 5;
                Ok(Value::Boolean(false))
            }
            Some(b'n') if self.s[self.pos..].starts_with(b"null") => {
                self.pos += 4;
                Ok(Value::LightUserData(LightUserData(std::ptr::null_mut())))
            }
            Some(b'-' | b'0'..=b'9' | b'I' | b'N' | b'i' | b'n') => match self.number() {
                Some(n) => Ok(Value::Number(n)),
                None => self.fail("value", "invalid number", start),
            },
            None => self.fail("value", "T_END", start),
            Some(b']' | b'}' | b':' | b',') => {
                let name = self.token_name();
                self.fail("value", name, start)
            }
            _ => self.fail("value", "invalid token", start),
        }
    }

    fn number(&mut self) -> Option<f64> {
        let start = self.pos;
        let rest = &self.s[start..];
        let len = rest
            .iter()
            .position(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.')))
            .unwrap_or(rest.len());
        let text = std::str::from_utf8(&rest[..len]).ok()?;
        let lower = text.to_ascii_lowercase();
        let n = match lower.trim_start_matches('-') {
            "inf" | "infinity" if self.cfg.decode_invalid_numbers => {
                if lower.starts_with('-') {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }
            }
            "nan" if self.cfg.decode_invalid_numbers => f64::NAN,
            _ => {
                if let Some(h) = lower.strip_prefix("0x").or_else(|| lower.strip_prefix("-0x")) {
                    let v = i64::from_str_radix(h, 16).ok()? as f64;
                    if lower.starts_with('-') {
                        -v
                    } else {
                        v
                    }
                } else {
                    if !text
                        .bytes()
                        .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
                    {
                        return None;
                    }
                    text.parse::<f64>().ok()?
                }
            }
        };
        self.pos += len;
        Some(n)
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                return self.fail("value", "unexpected end of string", self.pos);
            };
            self.pos += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let escape = self.pos - 1;
                    let Some(&e) = self.s.get(self.pos) else {
                        return self.fail("value", "unexpected end of string", self.pos);
                    };
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let Some(mut cp) = self.hex4() else {
                                return self.fail("value", "invalid unicode escape code", escape);
                            };
                            if (0xd800..0xdc00).contains(&cp) {
                                if self.s.get(self.pos) == Some(&b'\\')
                                    && self.s.get(self.pos + 1) == Some(&b'u')
                                {
                                    self.pos += 2;
                                    match self.hex4() {
                                        Some(lo) if (0xdc00..0xe000).contains(&lo) => {
                                            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                                        }
                                        _ => {
                                            return self.fail("value", "invalid unicode escape code", escape)
                                        }
                                    }
                                } else {
                                    return self.fail("value", "invalid unicode escape code", escape);
                                }
                            } else if (0xdc00..0xe000).contains(&cp) {
                                return self.fail("value", "invalid unicode escape code", escape);
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return self.fail("value", "invalid escape code", escape),
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.pos..self.pos + 4)?;
        let v = u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
        self.pos += 4;
        Some(v)
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > self.cfg.decode_max_depth {
            return err(format!(
                "Found too many nested data structures ({}) at character {}",
                self.depth,
                self.pos + 1
            ));
        }
        Ok(())
    }

    fn array(&mut self, lua: &Lua) -> Result<Value, String> {
        self.enter()?;
        self.pos += 1;
        let t = lua.create_table().map_err(|e| e.to_string())?;
        self.skip_ws();
        if self.s.get(self.pos) == Some(&b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Table(t));
        }
        let mut i = 1;
        loop {
            let v = self.value(lua)?;
            t.raw_set(i, v).map_err(|e| e.to_string())?;
            i += 1;
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                _ => {
                    let name = self.token_name();
                    return self.fail("comma or array end", name, self.pos);
                }
            }
        }
    }

    fn object(&mut self, lua: &Lua) -> Result<Value, String> {
        self.enter()?;
        self.pos += 1;
        let t = lua.create_table().map_err(|e| e.to_string())?;
        self.skip_ws();
        if self.s.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Table(t));
        }
        loop {
            self.skip_ws();
            if self.s.get(self.pos) != Some(&b'"') {
                let name = self.token_name();
                return self.fail("object key string", name, self.pos);
            }
            let key = self.string()?;
            self.skip_ws();
            if self.s.get(self.pos) != Some(&b':') {
                let name = self.token_name();
                return self.fail("colon", name, self.pos);
            }
            self.pos += 1;
            let v = self.value(lua)?;
            t.raw_set(lstr(lua, key)?, v).map_err(|e| e.to_string())?;
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                _ => {
                    let name = self.token_name();
                    return self.fail("comma or object end", name, self.pos);
                }
            }
        }
    }
}

fn decode(lua: &Lua, args: MultiValue) -> PrimResult {
    if args.len() != 1 {
        return err("bad argument #1 to 'decode' (expected 1 argument)");
    }
    let s = check_bytes(&args, 0, "decode")?;
    let mut p = Parser { s: &s, pos: 0, depth: 0, cfg: config(lua) };
    let v = p.value(lua)?;
    p.skip_ws();
    if p.pos < s.len() {
        let name = p.token_name();
        return p.fail("the end", name, p.pos);
    }
    Ok(Ret::One(v))
}

// ---- settings ----

fn setting(
    lua: &Lua,
    args: &MultiValue,
    func: &str,
    get: fn(&Config) -> f64,
    set: fn(&mut Config, f64),
) -> PrimResult {
    if let Some(v) = args.front().filter(|v| !v.is_nil()) {
        let n = check_number(&MultiValue::from_iter([v.clone()]), 0, func)?;
        if n < 1.0 {
            return err(super::super::bad_argument(1, func, "expected integer between 1 and 2147483647"));
        }
        update(lua, |c| set(c, n));
    }
    Ok(Ret::One(Value::Number(get(&config(lua)))))
}

fn encode_max_depth(lua: &Lua, a: MultiValue) -> PrimResult {
    setting(
        lua,
        &a,
        "encode_max_depth",
        |c| c.encode_max_depth as f64,
        |c, n| c.encode_max_depth = n as usize,
    )
}

fn decode_max_depth(lua: &Lua, a: MultiValue) -> PrimResult {
    setting(
        lua,
        &a,
        "decode_max_depth",
        |c| c.decode_max_depth as f64,
        |c, n| c.decode_max_depth = n as usize,
    )
}

fn encode_number_precision(lua: &Lua, a: MultiValue) -> PrimResult {
    if let Some(n) = a.front().and_then(super::super::convert::as_number) {
        if !(1.0..=14.0).contains(&n) {
            return err(super::super::bad_argument(
                1,
                "encode_number_precision",
                "expected integer between 1 and 14",
            ));
        }
    }
    setting(lua, &a, "encode_number_precision", |c| c.precision as f64, |c, n| c.precision = n as usize)
}

fn flag(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Boolean(b) => Some(*b),
        Value::String(s) => Some(&*s.as_bytes() == b"on" || &*s.as_bytes() == b"true"),
        _ => None,
    }
}

fn encode_sparse_array(lua: &Lua, a: MultiValue) -> PrimResult {
    if let Some(on) = flag(a.front()) {
        update(lua, |c| c.sparse_convert = on);
    }
    if let Some(r) = a.get(1).and_then(super::super::convert::as_number) {
        update(lua, |c| c.sparse_ratio = r as usize);
    }
    if let Some(s) = a.get(2).and_then(super::super::convert::as_number) {
        update(lua, |c| c.sparse_safe = s as usize);
    }
    let c = config(lua);
    Ok(Ret::Many(vec![
        Value::Boolean(c.sparse_convert),
        Value::Number(c.sparse_ratio as f64),
        Value::Number(c.sparse_safe as f64),
    ]))
}

fn encode_keep_buffer(_lua: &Lua, a: MultiValue) -> PrimResult {
    Ok(Ret::One(Value::Boolean(flag(a.front()).unwrap_or(true))))
}

fn encode_invalid_numbers(lua: &Lua, a: MultiValue) -> PrimResult {
    if let Some(on) = flag(a.front()) {
        update(lua, |c| c.encode_invalid_numbers = on);
    }
    Ok(Ret::One(Value::Boolean(config(lua).encode_invalid_numbers)))
}

fn decode_invalid_numbers(lua: &Lua, a: MultiValue) -> PrimResult {
    if let Some(on) = flag(a.front()) {
        update(lua, |c| c.decode_invalid_numbers = on);
    }
    Ok(Ret::One(Value::Boolean(config(lua).decode_invalid_numbers)))
}
