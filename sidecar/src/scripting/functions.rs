//! Function libraries (`FUNCTION LOAD`, `FCALL`).
//!
//! A library's source is database state: it lives as a string under the library's name in a
//! reserved keyspace (`FUNCTIONS_DB`), so loading, replacing and deleting one replicate through
//! the mesh, persist in the data directory and travel in snapshots like any key (concurrent
//! loads of one name: last writer wins by (HLC, replica id)). Each replica compiles what that
//! keyspace holds into its own Lua state when it changes.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use mlua::chunk::ChunkMode;
use mlua::{Function, Lua, MultiValue, Value};

use super::{Engine, PrimResult, Ret, ScriptFlags};
use crate::commands::CmdError;

/// One registered function.
#[derive(Clone)]
pub struct Registered {
    pub name: String,
    pub func: Function,
    pub description: Option<String>,
    pub flags: ScriptFlags,
}

/// One compiled library.
pub struct Library {
    pub name: String,
    pub code: Bytes,
    pub functions: Vec<Registered>,
}

/// The libraries compiled in this replica's Lua state.
pub struct Libraries {
    pub libs: BTreeMap<String, Library>,
    /// Function name → library name. When two libraries register one name (loaded concurrently
    /// on two replicas), the library whose name sorts first has it.
    by_function: HashMap<String, String>,
    /// The store's functions version these libraries reflect.
    pub synced: u64,
}

impl Default for Libraries {
    fn default() -> Self {
        // Never synced: the first FCALL or FUNCTION compiles what the keyspace holds (after a
        // restart from the data directory, say).
        Libraries { libs: BTreeMap::new(), by_function: HashMap::new(), synced: u64::MAX }
    }
}

impl Libraries {
    pub fn function(&self, name: &str) -> Option<&Registered> {
        let lib = self.by_function.get(name)?;
        self.libs.get(lib)?.functions.iter().find(|f| f.name == name)
    }

    /// Which library (other than `except`) owns a function name.
    pub fn owner_of(&self, function: &str, except: &str) -> Option<&str> {
        self.libs
            .values()
            .filter(|l| l.name != except)
            .find(|l| l.functions.iter().any(|f| f.name == function))
            .map(|l| l.name.as_str())
    }

    pub fn function_count(&self) -> usize {
        self.libs.values().map(|l| l.functions.len()).sum()
    }

    fn reindex(&mut self) {
        self.by_function.clear();
        for lib in self.libs.values() {
            for f in &lib.functions {
                self.by_function.entry(f.name.clone()).or_insert_with(|| lib.name.clone());
            }
        }
    }

    pub fn insert(&mut self, lib: Library) {
        self.libs.insert(lib.name.clone(), lib);
        self.reindex();
    }

    pub fn remove(&mut self, name: &str) -> bool {
        let found = self.libs.remove(name).is_some();
        self.reindex();
        found
    }
}

/// The `#!lua name=<library>` first line: the library's name.
pub fn parse_metadata(code: &[u8]) -> Result<String, CmdError> {
    let Some(rest) = code.strip_prefix(b"#!") else {
        return Err(CmdError::msg("Missing library metadata"));
    };
    let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
    let mut words = rest[..end].split(|&c| c == b' ').filter(|w| !w.is_empty());
    let engine = words.next().unwrap_or(b"");
    if engine != b"lua" {
        return Err(CmdError::msg(format!("Engine '{}' not found", String::from_utf8_lossy(engine))));
    }
    let mut name = None;
    for w in words {
        match w.strip_prefix(b"name=") {
            Some(n) => name = Some(n),
            None => {
                return Err(CmdError::msg(format!(
                    "Invalid metadata value given: {}",
                    String::from_utf8_lossy(w)
                )))
            }
        }
    }
    let Some(name) = name else { return Err(CmdError::msg("Library name was not given")) };
    if !valid_name(name) {
        return Err(CmdError::msg(
            "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
        ));
    }
    Ok(String::from_utf8_lossy(name).into_owned())
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

impl Engine {
    /// Compiles a library and runs its top-level code (which registers its functions).
    pub fn compile_library(&mut self, code: &[u8]) -> Result<Library, CmdError> {
        let name = parse_metadata(code)?;
        let end = code.iter().position(|&c| c == b'\n').unwrap_or(code.len());
        let mut source = code.to_vec();
        for c in &mut source[..end] {
            *c = b' ';
        }
        let chunk = self
            .lua
            .load(&source[..])
            .set_name("@user_function")
            .set_mode(ChunkMode::Text)
            .set_environment(self.library_env.clone())
            .into_function()
            .map_err(|e| CmdError::msg(format!("Error compiling function: {}", super::lua_message(&e))))?;
        self.lua.app_data_mut::<super::CallState>().expect("call state").registering = Some(Vec::new());
        let _ = self.set_loading.call::<()>(true);
        self.load_deadline
            .store(crate::server::unix_ms() + super::LOAD_TIMEOUT_MS, std::sync::atomic::Ordering::Relaxed);
        let result = self.load_library.call::<(bool, Value)>(chunk);
        self.load_deadline.store(0, std::sync::atomic::Ordering::Relaxed);
        let _ = self.set_loading.call::<()>(false);
        let functions = self
            .lua
            .app_data_mut::<super::CallState>()
            .expect("call state")
            .registering
            .take()
            .unwrap_or_default();
        match result {
            Ok((true, _)) => {}
            Ok((false, Value::Table(e))) => {
                let msg =
                    e.raw_get::<mlua::LuaString>("err").map(|s| s.to_string_lossy()).unwrap_or_default();
                return Err(CmdError::msg(format!("Error registering functions: {msg}")));
            }
            Ok((false, other)) => {
                let msg = match other {
                    Value::String(s) => s.to_string_lossy(),
                    _ => "unknown error".into(),
                };
                return Err(CmdError::msg(format!("Error registering functions: {msg}")));
            }
            Err(e) => {
                return Err(CmdError::msg(format!("Error registering functions: {}", super::lua_message(&e))))
            }
        }
        if functions.is_empty() {
            return Err(CmdError::msg("No functions registered"));
        }
        Ok(Library { name, code: Bytes::copy_from_slice(code), functions })
    }

    /// Brings the compiled libraries in line with the replicated sources (`sources`: library
    /// name → code, as the functions keyspace holds them now).
    pub fn sync_functions(&mut self, version: u64, sources: impl FnOnce() -> Vec<(String, Bytes)>) {
        if self.functions.synced == version {
            return;
        }
        let sources = sources();
        let wanted: BTreeMap<String, Bytes> = sources.into_iter().collect();
        let stale: Vec<String> = self
            .functions
            .libs
            .iter()
            .filter(|(name, lib)| wanted.get(*name).is_none_or(|code| *code != lib.code))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            self.functions.libs.remove(&name);
        }
        for (name, code) in wanted {
            if self.functions.libs.contains_key(&name) {
                continue;
            }
            match self.compile_library(&code) {
                Ok(lib) if lib.name == name => {
                    self.functions.libs.insert(name, lib);
                }
                Ok(_) => {
                    tracing::warn!(library = %name, "a replicated library names another library; skipped")
                }
                Err(e) => {
                    tracing::warn!(library = %name, error = %e, "a replicated library does not load here")
                }
            }
        }
        self.functions.reindex();
        self.functions.synced = version;
        *self.status.counts.lock() = (self.functions.libs.len(), self.functions.function_count());
    }
}

/// `redis.register_function(name, callback)` or `redis.register_function{function_name=…,
/// callback=…, flags={…}, description=…}` while a library loads.
pub fn prim_register_function(lua: &Lua, args: MultiValue) -> PrimResult {
    let (name, callback, flags, description) = match args.len() {
        1 => {
            let Value::Table(t) = &args[0] else {
                return Err("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).".into());
            };
            let (mut name, mut callback, mut flags, mut description) =
                (None, None, ScriptFlags::default(), None);
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair.map_err(|e| e.to_string())?;
                let key = match &k {
                    Value::String(s) => s.to_string_lossy(),
                    _ => {
                        return Err(
                            "named argument key given to redis.register_function is not a string".into()
                        )
                    }
                };
                match key.as_str() {
                    "function_name" => {
                        name = Some(super::lua_bytes(&v).ok_or(
                            "function_name argument given to redis.register_function must be a string",
                        )?)
                    }
                    "callback" => match v {
                        Value::Function(f) => callback = Some(f),
                        _ => {
                            return Err(
                                "callback argument given to redis.register_function must be a function"
                                    .into(),
                            )
                        }
                    },
                    "description" => match v {
                        Value::String(s) => description = Some(s.to_string_lossy()),
                        _ => {
                            return Err(
                                "description argument given to redis.register_function must be a string"
                                    .into(),
                            )
                        }
                    },
                    "flags" => {
                        let Value::Table(ft) = v else {
                            return Err(
                                "flags argument to redis.register_function must be a table representing function flags"
                                    .into(),
                            );
                        };
                        for f in ft.sequence_values::<Value>() {
                            let ok = match f.map_err(|e| e.to_string())? {
                                Value::String(s) => flags.set(&s.as_bytes()),
                                _ => false,
                            };
                            if !ok {
                                return Err("unknown flag given".into());
                            }
                        }
                    }
                    _ => return Err("unknown argument given to redis.register_function".into()),
                }
            }
            let name = name.ok_or("redis.register_function must get a function name argument")?;
            let callback = callback.ok_or("redis.register_function must get a callback argument")?;
            (name, callback, flags, description)
        }
        2 => {
            let name = super::lua_bytes(&args[0])
                .ok_or("first argument to redis.register_function must be a string")?;
            let Value::Function(f) = &args[1] else {
                return Err("second argument to redis.register_function must be a function".into());
            };
            (name, f.clone(), ScriptFlags::default(), None)
        }
        _ => return Err("wrong number of arguments to redis.register_function".into()),
    };
    if !valid_name(&name) {
        return Err("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    let name = String::from_utf8_lossy(&name).into_owned();
    let mut st = lua.app_data_mut::<super::CallState>().expect("call state");
    let Some(registering) = st.registering.as_mut() else {
        return Err("redis.register_function can only be called on FUNCTION LOAD command".into());
    };
    if registering.iter().any(|f| f.name == name) {
        return Err("Function already exists in the library".into());
    }
    registering.push(Registered { name, func: callback, description, flags });
    Ok(Ret::One(Value::Nil))
}

// ---- FUNCTION DUMP / RESTORE: Redis's payload format ----

/// `RDB_OPCODE_FUNCTION2`: one library's code follows.
const OPCODE_FUNCTION: u8 = 245;
/// The RDB version of Redis 7.0, which the payload carries.
const RDB_VERSION: u16 = 10;

/// Redis's CRC-64 (Jones polynomial, reflected, as `crc64.c` computes it).
pub fn crc64(data: &[u8]) -> u64 {
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5;
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u64; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            }
            *slot = c;
        }
        t
    });
    let mut crc = 0u64;
    for &b in data {
        crc = table[((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

fn put_length(out: &mut Vec<u8>, n: usize) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u32::MAX as usize {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
}

/// The `FUNCTION DUMP` payload of these library sources.
pub fn dump(codes: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for code in codes {
        out.push(OPCODE_FUNCTION);
        put_length(&mut out, code.len());
        out.extend_from_slice(code);
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }

    /// An RDB length; `Err(kind)` for the special string encodings (0xC0 | kind).
    fn length(&mut self) -> Option<Result<usize, u8>> {
        let first = self.byte()?;
        Some(match first >> 6 {
            0 => Ok((first & 0x3f) as usize),
            1 => Ok((((first & 0x3f) as usize) << 8) | self.byte()? as usize),
            2 => match first {
                0x80 => Ok(u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize),
                0x81 => Ok(usize::try_from(u64::from_be_bytes(self.take(8)?.try_into().ok()?)).ok()?),
                _ => return None,
            },
            _ => Err(first & 0x3f),
        })
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        match self.length()? {
            Ok(n) => self.take(n).map(|s| s.to_vec()),
            Err(0) => Some((self.byte()? as i8).to_string().into_bytes()),
            Err(1) => Some(i16::from_le_bytes(self.take(2)?.try_into().ok()?).to_string().into_bytes()),
            Err(2) => Some(i32::from_le_bytes(self.take(4)?.try_into().ok()?).to_string().into_bytes()),
            Err(3) => {
                let clen = self.length()?.ok()?;
                let len = self.length()?.ok()?;
                lzf_decompress(self.take(clen)?, len)
            }
            Err(_) => None,
        }
    }
}

/// LZF decompression, for payloads Redis compressed.
fn lzf_decompress(input: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(len.min(64 << 20));
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            out.extend_from_slice(input.get(i..i + n)?);
            i += n;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += *input.get(i)? as usize;
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + *input.get(i)? as usize + 1;
            i += 1;
            let start = out.len().checked_sub(back)?;
            for k in 0..n + 2 {
                let c = out[start + k];
                out.push(c);
            }
        }
        if out.len() > len {
            return None;
        }
    }
    (out.len() == len).then_some(out)
}

/// The library sources in a `FUNCTION DUMP` payload.
pub fn parse_dump(payload: &[u8]) -> Result<Vec<Vec<u8>>, CmdError> {
    let bad = || CmdError::msg("DUMP payload version or checksum are wrong");
    if payload.len() < 10 {
        return Err(bad());
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(footer[2..].try_into().expect("8 bytes"));
    if version > RDB_VERSION || crc64(&payload[..payload.len() - 8]) != crc {
        return Err(bad());
    }
    let mut c = Cursor { b: body, pos: 0 };
    let mut codes = Vec::new();
    while c.pos < body.len() {
        if c.byte() != Some(OPCODE_FUNCTION) {
            return Err(CmdError::msg("given type is not a function"));
        }
        codes.push(c.string().ok_or_else(|| CmdError::msg("payload is damaged: cannot read a library"))?);
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_check_value() {
        // The check value of Redis's crc64 test ("123456789").
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn dump_round_trips() {
        let a = b"#!lua name=a\nredis.register_function('f', function() return 1 end)".as_slice();
        let long = vec![b'x'; 20000];
        let payload = dump(&[a, &long]);
        assert_eq!(parse_dump(&payload).unwrap(), vec![a.to_vec(), long]);
        let mut damaged = payload.clone();
        damaged[3] ^= 1;
        assert!(parse_dump(&damaged).is_err());
    }

    #[test]
    fn metadata() {
        assert_eq!(parse_metadata(b"#!lua name=lib1\nx").unwrap(), "lib1");
        assert!(parse_metadata(b"return 1").is_err());
        assert!(parse_metadata(b"#!lua\n").is_err());
        assert!(parse_metadata(b"#!js name=x\n").is_err());
        assert!(parse_metadata(b"#!lua name=a-b\n").is_err());
    }
}
