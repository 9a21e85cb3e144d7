//! `bit`: LuaBitOp's operations on 32-bit integers.

use mlua::{Lua, MultiValue, Value};

use super::super::{PrimResult, Ret};
use super::check_number;

pub const PRIMS: super::Prims = &[
    ("tobit", tobit),
    ("bnot", bnot),
    ("band", band),
    ("bor", bor),
    ("bxor", bxor),
    ("lshift", lshift),
    ("rshift", rshift),
    ("arshift", arshift),
    ("rol", rol),
    ("ror", ror),
    ("bswap", bswap),
    ("tohex", tohex),
];

/// A number as LuaBitOp normalises it: modulo 2^32, as a signed 32-bit integer.
pub fn to_i32(n: f64) -> i32 {
    // Adding 2^52 + 2^51 puts the integer part in the low bits of the mantissa (round to
    // nearest, as LuaBitOp does).
    let b = (n + 6_755_399_441_055_744.0).to_bits();
    b as u32 as i32
}

fn arg(args: &MultiValue, i: usize, f: &str) -> Result<i32, String> {
    check_number(args, i, f).map(to_i32)
}

fn num(v: i32) -> PrimResult {
    Ok(Ret::One(Value::Number(v as f64)))
}

fn tobit(_: &Lua, a: MultiValue) -> PrimResult {
    num(arg(&a, 0, "tobit")?)
}

fn bnot(_: &Lua, a: MultiValue) -> PrimResult {
    num(!arg(&a, 0, "bnot")?)
}

fn fold(a: &MultiValue, f: &str, op: fn(i32, i32) -> i32) -> PrimResult {
    let mut acc = arg(a, 0, f)?;
    for i in 1..a.len() {
        acc = op(acc, arg(a, i, f)?);
    }
    num(acc)
}

fn band(_: &Lua, a: MultiValue) -> PrimResult {
    fold(&a, "band", |x, y| x & y)
}

fn bor(_: &Lua, a: MultiValue) -> PrimResult {
    fold(&a, "bor", |x, y| x | y)
}

fn bxor(_: &Lua, a: MultiValue) -> PrimResult {
    fold(&a, "bxor", |x, y| x ^ y)
}

fn shift(a: &MultiValue, f: &str, op: fn(u32, u32) -> u32) -> PrimResult {
    let x = arg(a, 0, f)? as u32;
    let n = (arg(a, 1, f)? & 31) as u32;
    num(op(x, n) as i32)
}

fn lshift(_: &Lua, a: MultiValue) -> PrimResult {
    shift(&a, "lshift", |x, n| x << n)
}

fn rshift(_: &Lua, a: MultiValue) -> PrimResult {
    shift(&a, "rshift", |x, n| x >> n)
}

fn arshift(_: &Lua, a: MultiValue) -> PrimResult {
    shift(&a, "arshift", |x, n| ((x as i32) >> n) as u32)
}

fn rol(_: &Lua, a: MultiValue) -> PrimResult {
    shift(&a, "rol", |x, n| x.rotate_left(n))
}

fn ror(_: &Lua, a: MultiValue) -> PrimResult {
    shift(&a, "ror", |x, n| x.rotate_right(n))
}

fn bswap(_: &Lua, a: MultiValue) -> PrimResult {
    num((arg(&a, 0, "bswap")? as u32).swap_bytes() as i32)
}

fn tohex(lua: &Lua, a: MultiValue) -> PrimResult {
    let x = arg(&a, 0, "tohex")? as u32;
    let n = if a.len() > 1 && !a[1].is_nil() { arg(&a, 1, "tohex")? } else { 8 };
    let upper = n < 0;
    let n = n.unsigned_abs().min(8) as usize;
    let s = if upper { format!("{x:08X}") } else { format!("{x:08x}") };
    let s = &s[8 - n..];
    Ok(Ret::One(Value::String(lua.create_string(s).map_err(|e| e.to_string())?)))
}

#[cfg(test)]
mod tests {
    use super::to_i32;

    #[test]
    fn normalises_like_luabitop() {
        assert_eq!(to_i32(4294967295.0), -1);
        assert_eq!(to_i32(2147483648.0), i32::MIN);
        assert_eq!(to_i32(-1.0), -1);
        assert_eq!(to_i32(1.5), 2);
        assert_eq!(to_i32(2.5), 2);
    }
}
