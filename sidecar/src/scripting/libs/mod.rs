//! The libraries Redis gives scripts, written here in Rust: `bit` (LuaBitOp), `struct`
//! (binary packing), `cjson` (JSON) and `cmsgpack` (MessagePack). Each exposes primitives that
//! sandbox.lua wraps so that their errors read as a C library's would.

pub mod bit;
pub mod cjson;
pub mod cmsgpack;
pub mod struct_lib;

use mlua::{Lua, MultiValue, Table};

pub type Prims = &'static [super::Prim];
type Values = fn(&Lua, &Table) -> mlua::Result<()>;

/// (global name, functions, other fields).
pub const LIBRARIES: &[(&str, Prims, Values)] = &[
    ("bit", bit::PRIMS, no_values),
    ("struct", struct_lib::PRIMS, no_values),
    ("cjson", cjson::PRIMS, cjson::values),
    ("cmsgpack", cmsgpack::PRIMS, cmsgpack::values),
];

fn no_values(_: &Lua, _: &Table) -> mlua::Result<()> {
    Ok(())
}

/// Argument `i` (0-based) as a number, or luaL_checknumber's error.
pub fn check_number(args: &MultiValue, i: usize, func: &str) -> Result<f64, String> {
    let v = args.get(i).cloned().unwrap_or(mlua::Value::Nil);
    match &v {
        mlua::Value::String(s) => {
            // Lua converts numeric strings.
            let text = s.to_string_lossy();
            parse_lua_number(text.trim())
                .ok_or_else(|| super::bad_argument(i + 1, func, "number expected, got string"))
        }
        _ => super::convert::as_number(&v).ok_or_else(|| {
            super::bad_argument(i + 1, func, &format!("number expected, got {}", super::type_name(&v)))
        }),
    }
}

/// Lua 5.1's string-to-number conversion (decimal, or hexadecimal with 0x).
pub fn parse_lua_number(s: &str) -> Option<f64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    if s.is_empty()
        || s.contains(|c: char| {
            c.is_ascii_alphabetic() && !matches!(c, 'e' | 'E' | 'i' | 'n' | 'f' | 'a' | 'I' | 'N' | 'F' | 'A')
        })
    {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    if lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Argument `i` as a string (numbers convert), or luaL_checklstring's error.
pub fn check_bytes(args: &MultiValue, i: usize, func: &str) -> Result<Vec<u8>, String> {
    let v = args.get(i).cloned().unwrap_or(mlua::Value::Nil);
    super::lua_bytes(&v).ok_or_else(|| {
        super::bad_argument(i + 1, func, &format!("string expected, got {}", super::type_name(&v)))
    })
}
