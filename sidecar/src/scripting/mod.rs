//! Scripts: Lua 5.1 with Redis's semantics (`EVAL`, `FCALL` and their families).
//!
//! One Lua state per replica, reused for every call; it lives in the [`Store`](crate::server::store::Store),
//! so a script runs under the store lock like any command and its writes become one update that
//! peers apply atomically. A script calls commands through the command registry with the
//! calling connection's [`Ctx`]; while it runs, the Rust primitives find that context in the
//! state's [`CallState`].
//!
//! - `sandbox.lua`: the environment scripts see (read-only globals, `redis`, Redis 7's `pcall`).
//! - [`convert`]: replies to Lua values and back.
//! - [`libs`]: `bit`, `struct`, `cjson`, `cmsgpack`, written here in Rust.
//! - [`functions`]: `FUNCTION LOAD` libraries, `register_function`, `FUNCTION DUMP`'s format.
//! - [`status`]: what other connections see of a running script (busy, kill).

pub mod busy;
pub mod convert;
pub mod functions;
pub mod libs;
pub mod status;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use mlua::chunk::ChunkMode;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

use crate::commands::{flags, registry, Blocking, CmdError, Ctx};
use crate::resp::{Protocol, Reply};
pub use status::{Running, Status};

/// The Lua state's memory cap when none is configured: a script that allocates past it gets an
/// error, and the replica keeps running.
pub const DEFAULT_MEMORY_LIMIT: usize = 256 * 1024 * 1024;

/// How often (in Lua instructions) a running script checks for `SCRIPT KILL` and time limits.
const HOOK_EVERY: u32 = 100_000;

/// How long a library's top-level code may run in `FUNCTION LOAD`, as Redis allows.
const LOAD_TIMEOUT_MS: u64 = 500;

/// Commands a script may not call (Redis's `noscript` flag).
const NOT_IN_SCRIPTS: &[&str] = &[
    "auth",
    "bgrewriteaof",
    "bgsave",
    "blmove",
    "blpop",
    "brpop",
    "brpoplpush",
    "bzpopmax",
    "bzpopmin",
    "debug",
    "discard",
    "eval",
    "eval_ro",
    "evalsha",
    "evalsha_ro",
    "exec",
    "failover",
    "fcall",
    "fcall_ro",
    "function",
    "hello",
    "monitor",
    "multi",
    "psubscribe",
    "psync",
    "punsubscribe",
    "quit",
    "replconf",
    "replicaof",
    "reset",
    "role",
    "save",
    "script",
    "shutdown",
    "slaveof",
    "ssubscribe",
    "subscribe",
    "sunsubscribe",
    "sync",
    "unsubscribe",
    "unwatch",
    "wait",
    "watch",
];

fn not_in_scripts(index: usize) -> bool {
    static TABLE: OnceLock<Vec<bool>> = OnceLock::new();
    TABLE.get_or_init(|| registry().commands.iter().map(|c| NOT_IN_SCRIPTS.contains(&c.name)).collect())
        [index]
}

/// How a script was started: what it may do and how its errors name it.
#[derive(Clone, Debug)]
pub struct Call {
    pub kind: Running,
    /// The script's SHA1 or the function's name (`script: <name>` in errors).
    pub name: String,
    /// `EVAL_RO`, `FCALL_RO`, `no-writes`: write commands are refused.
    pub read_only: bool,
    /// `allow-oom`: write commands run past `maxmemory`.
    pub allow_oom: bool,
}

/// The per-call state the Rust primitives reach through the Lua state.
struct CallState {
    /// The running command's context while a script runs; null otherwise.
    ctx: *mut (),
    read_only: bool,
    allow_oom: bool,
    resp3: bool,
    /// Reused reply buffer for the commands a script calls.
    scratch: Reply,
    /// The state of `math.random` (Redis's own 48-bit generator).
    rand48: u64,
    /// Functions registered by the library being loaded.
    registering: Option<Vec<functions::Registered>>,
}

// SAFETY: `ctx` is only dereferenced on the thread that set it, during the call that set it
// (it is cleared before that call returns); the rest is plain data.
unsafe impl Send for CallState {}

/// One replica's Lua state and what it has compiled.
pub struct Engine {
    lua: Lua,
    globals: Table,
    env: Table,
    run: Function,
    run_fn: Function,
    library_env: Table,
    load_library: Function,
    set_loading: Function,
    /// Compiled scripts by SHA1 (lower-case hex), with their shebang flags (EVALSHA runs a
    /// script under the flags its body declared).
    scripts: HashMap<String, (Function, ScriptFlags)>,
    /// The scripts' bodies, by SHA1: an `EVALSHA` on strong keys is forwarded as the `EVAL` of
    /// its body (the group's state machine has its own script cache).
    bodies: HashMap<String, bytes::Bytes>,
    /// Compiled function libraries (the replicated source lives in the keyspace).
    pub functions: functions::Libraries,
    status: Arc<Status>,
    /// Deadline (Unix ms) of a library's load-time code; 0 when none loads.
    load_deadline: Arc<AtomicU64>,
}

/// The text of Redis's `REDIS_VERSION` and its number (`0x00MMmmpp`).
fn version_num() -> i64 {
    let v = crate::commands::server_info::REDIS_VERSION;
    let mut parts = v.split('.').map(|p| p.parse::<i64>().unwrap_or(0));
    let (a, b, c) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a << 16) | (b << 8) | c
}

/// What a Rust primitive gives back to its Lua wrapper (see `wrap` in sandbox.lua).
pub enum Ret {
    One(Value),
    Many(Vec<Value>),
}

pub type PrimResult = Result<Ret, String>;

/// A primitive: its Lua name and its function.
pub type Prim = (&'static str, fn(&Lua, MultiValue) -> PrimResult);

/// An error of a command a script called: raised as Redis's error table `{err=…}`, with no
/// position prefix.
#[derive(Debug)]
pub struct RedisError(pub String);

impl std::fmt::Display for RedisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedisError {}

fn into_values(lua: &Lua, ret: Ret) -> mlua::Result<MultiValue> {
    Ok(match ret {
        Ret::One(v) => MultiValue::from_iter([v]),
        Ret::Many(vs) => {
            let _ = lua;
            MultiValue::from_iter(vs)
        }
    })
}

/// Registers Rust primitives in `table`. Their errors are raised as a C library's `luaL_error`
/// would raise them (the error handler adds the caller's position).
/// With `redis_style`, errors are Redis's error tables (`ERR …`, no position), as the `redis`
/// table's own functions raise them.
pub fn add_prims(lua: &Lua, table: &Table, prims: &[Prim], redis_style: bool) -> mlua::Result<()> {
    for &(name, f) in prims {
        let func = lua.create_function(move |lua, args: MultiValue| match f(lua, args) {
            Ok(ret) => into_values(lua, ret),
            Err(msg) if redis_style => Err(mlua::Error::external(RedisError(format!("ERR {msg}")))),
            Err(msg) => Err(mlua::Error::RuntimeError(msg)),
        })?;
        table.raw_set(name, func)?;
    }
    Ok(())
}

/// `bad argument #n to 'f' (number expected, got x)`, as luaL_argerror words it.
pub fn bad_argument(n: usize, func: &str, what: &str) -> String {
    format!("bad argument #{n} to '{func}' ({what})")
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "no value",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

impl Engine {
    pub fn new(status: Arc<Status>, memory_limit: usize) -> Engine {
        Engine::build(status, memory_limit).expect("the Lua sandbox starts")
    }

    fn build(status: Arc<Status>, memory_limit: usize) -> mlua::Result<Engine> {
        let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH, LuaOptions::default())?;
        lua.set_app_data(CallState {
            ctx: std::ptr::null_mut(),
            read_only: false,
            allow_oom: false,
            resp3: false,
            scratch: Reply::new(Protocol::Resp2),
            rand48: 0,
            registering: None,
        });
        let rt = lua.create_table()?;
        rt.set("version", crate::commands::server_info::REDIS_VERSION)?;
        rt.set("version_num", version_num())?;
        rt.set(
            "call",
            lua.create_function(|lua, args: MultiValue| match call(lua, args)? {
                Ok(v) => Ok(v),
                Err(msg) => Err(mlua::Error::external(RedisError(msg))),
            })?,
        )?;
        rt.set(
            "pcall",
            lua.create_function(|lua, args: MultiValue| match call(lua, args)? {
                Ok(v) => Ok(v),
                Err(msg) => {
                    let t = lua.create_table_with_capacity(0, 1)?;
                    t.raw_set("err", msg)?;
                    Ok(Value::Table(t))
                }
            })?,
        )?;
        rt.set("error_value", lua.create_function(error_value)?)?;
        rt.set(
            "register_function",
            lua.create_function(|lua, args: MultiValue| {
                match functions::prim_register_function(lua, args) {
                    Ok(ret) => into_values(lua, ret),
                    Err(msg) => Err(mlua::Error::external(RedisError(format!("ERR {msg}")))),
                }
            })?,
        )?;
        rt.set(
            "error_text",
            lua.create_function(|lua, msg: mlua::LuaString| lua.create_string(error_text(&msg.as_bytes())))?,
        )?;
        add_prims(&lua, &rt, REDIS_PRIMS, true)?;
        add_prims(&lua, &rt, MATH_PRIMS, false)?;
        for (name, prims, values) in libs::LIBRARIES {
            let t = lua.create_table()?;
            add_prims(&lua, &t, prims, false)?;
            rt.set(*name, t)?;
            let v = lua.create_table()?;
            values(&lua, &v)?;
            rt.set(format!("{name}_values"), v)?;
        }
        let readonly = lua.create_table()?;
        readonly.set_metatable(Some(lua.create_table_from([("__mode", "k")])?))?;
        lua.set_named_registry_value("syncmesh.readonly", readonly.clone())?;
        rt.set("readonly_set", readonly)?;
        let sandbox = lua.load(include_str!("sandbox.lua")).set_name("=syncmesh").into_function()?;
        sandbox.call::<()>(rt.clone())?;
        let engine = Engine {
            globals: rt.get("globals")?,
            env: rt.get("env")?,
            run: rt.get("run")?,
            run_fn: rt.get("run_fn")?,
            library_env: rt.get("library_env")?,
            load_library: rt.get("load_library")?,
            set_loading: rt.get("set_loading")?,
            scripts: HashMap::new(),
            bodies: HashMap::new(),
            functions: functions::Libraries::default(),
            status,
            load_deadline: Arc::new(AtomicU64::new(0)),
            lua,
        };
        let (status, deadline) = (engine.status.clone(), engine.load_deadline.clone());
        engine.lua.set_global_hook(HookTriggers::new().every_nth_instruction(HOOK_EVERY), move |_, _| {
            let now = crate::server::unix_ms();
            status.step_aside(now);
            if status.over_time_limit(now) {
                return Err(mlua::Error::runtime("Script exceeded --script-time-limit-ms"));
            }
            if status.kill_requested() {
                return Err(mlua::Error::runtime("Script killed by user with SCRIPT KILL..."));
            }
            let d = deadline.load(Ordering::Relaxed);
            if d != 0 && crate::server::unix_ms() > d {
                return Err(mlua::Error::runtime("FUNCTION LOAD timeout"));
            }
            Ok(VmState::Continue)
        })?;
        if memory_limit > 0 {
            engine.lua.set_memory_limit(engine.lua.used_memory() + memory_limit)?;
        }
        Ok(engine)
    }

    /// Bytes the Lua state holds (`used_memory_lua`).
    pub fn used_memory(&self) -> usize {
        self.lua.used_memory()
    }

    pub fn scripts_cached(&self) -> usize {
        self.scripts.len()
    }

    pub fn has_script(&self, sha: &[u8]) -> bool {
        std::str::from_utf8(sha).is_ok_and(|s| self.scripts.contains_key(&s.to_ascii_lowercase()))
    }

    pub fn flush_scripts(&mut self) {
        self.scripts.clear();
        self.bodies.clear();
        let _ = self.lua.gc_collect();
    }

    /// Compiles a script body (cached by its SHA1); returns the SHA1 and the function.
    pub fn compile_script(&mut self, body: &[u8]) -> Result<(String, Function, ScriptFlags), CmdError> {
        let sha = sha1_hex(body);
        if let Some((f, flags)) = self.scripts.get(&sha) {
            return Ok((sha, f.clone(), *flags));
        }
        let (flags, source) = ScriptFlags::from_shebang(body)?;
        let f = self
            .lua
            .load(&source[..])
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                CmdError::msg(format!("Error compiling script (new function): {}", lua_message(&e)))
            })?;
        self.scripts.insert(sha.clone(), (f.clone(), flags));
        self.bodies.insert(sha.clone(), bytes::Bytes::copy_from_slice(body));
        Ok((sha, f, flags))
    }

    /// The body of a cached script.
    pub fn script_body(&self, sha: &[u8]) -> Option<bytes::Bytes> {
        let sha = std::str::from_utf8(sha).ok()?.to_ascii_lowercase();
        self.bodies.get(&sha).cloned()
    }

    pub fn cached_script(&self, sha: &[u8]) -> Option<(Function, ScriptFlags)> {
        let sha = std::str::from_utf8(sha).ok()?.to_ascii_lowercase();
        self.scripts.get(&sha).cloned()
    }
}

/// The message of a Lua error without mlua's decorations.
pub fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::MemoryError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        other => other.to_string(),
    }
}

/// `redis.error_reply`'s text: a leading `-` goes, and a message without an error code gets
/// `ERR`, as Redis does.
fn error_text(msg: &[u8]) -> Vec<u8> {
    let mut m = msg.strip_prefix(b"-").unwrap_or(msg).to_vec();
    while m.last().is_some_and(|c| *c == b'\r' || *c == b'\n') {
        m.pop();
    }
    if m.contains(&b' ') {
        m
    } else {
        [b"ERR ".as_slice(), &m].concat()
    }
}

pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

/// The flags of a `#!lua flags=…` first line (scripts and registered functions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScriptFlags {
    pub shebang: bool,
    pub no_writes: bool,
    pub allow_oom: bool,
    pub allow_stale: bool,
    pub no_cluster: bool,
    pub allow_cross_slot: bool,
}

impl ScriptFlags {
    /// Parses one flag name; false if unknown.
    pub fn set(&mut self, name: &[u8]) -> bool {
        match name {
            b"no-writes" => self.no_writes = true,
            b"allow-oom" => self.allow_oom = true,
            b"allow-stale" => self.allow_stale = true,
            b"no-cluster" => self.no_cluster = true,
            b"allow-cross-slot-keys" => self.allow_cross_slot = true,
            _ => return false,
        }
        true
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (on, name) in [
            (self.no_writes, "no-writes"),
            (self.allow_oom, "allow-oom"),
            (self.allow_stale, "allow-stale"),
            (self.no_cluster, "no-cluster"),
            (self.allow_cross_slot, "allow-cross-slot-keys"),
        ] {
            if on {
                v.push(name);
            }
        }
        v
    }

    /// An `EVAL` body's shebang flags, and the source to compile (the shebang line blanked, so
    /// that line numbers stay).
    fn from_shebang(body: &[u8]) -> Result<(ScriptFlags, std::borrow::Cow<'_, [u8]>), CmdError> {
        if !body.starts_with(b"#!") {
            return Ok((ScriptFlags::default(), std::borrow::Cow::Borrowed(body)));
        }
        let end = body.iter().position(|&c| c == b'\n').unwrap_or(body.len());
        let line = &body[2..end];
        let mut words = line.split(|&c| c == b' ').filter(|w| !w.is_empty());
        let engine = words.next().unwrap_or(b"");
        if engine != b"lua" {
            return Err(CmdError::msg(format!(
                "Unexpected engine in script shebang: #!{}",
                String::from_utf8_lossy(engine)
            )));
        }
        let mut flags = ScriptFlags { shebang: true, ..Default::default() };
        for w in words {
            let Some(list) = w.strip_prefix(b"flags=") else {
                return Err(CmdError::msg(format!(
                    "Unknown lua shebang option: {}",
                    String::from_utf8_lossy(w)
                )));
            };
            for f in list.split(|&c| c == b',').filter(|f| !f.is_empty()) {
                if !flags.set(f) {
                    return Err(CmdError::msg(format!(
                        "Unexpected flag in script shebang: {}",
                        String::from_utf8_lossy(f)
                    )));
                }
            }
        }
        let mut source = body.to_vec();
        for c in &mut source[..end] {
            *c = b' ';
        }
        Ok((flags, std::borrow::Cow::Owned(source)))
    }
}

// ---- running a script ----

/// Runs a compiled script or function for the command in `ctx`, writing its reply.
pub fn run(
    ctx: &mut Ctx,
    f: Function,
    keys: &[Bytes],
    argv: &[Bytes],
    call: Call,
    command: &[Bytes],
) -> Result<(), CmdError> {
    let engine = &ctx.store.scripting;
    let (lua, status) = (engine.lua.clone(), engine.status.clone());
    let (globals, runner) = match call.kind {
        Running::Script => (Some(engine.globals.clone()), engine.run.clone()),
        Running::Function => (None, engine.run_fn.clone()),
    };
    let strings = |items: &[Bytes]| -> mlua::Result<Table> {
        let t = lua.create_table_with_capacity(items.len(), 0)?;
        for (i, k) in items.iter().enumerate() {
            t.raw_set(i + 1, lua.create_string(k)?)?;
        }
        Ok(t)
    };
    let (kt, at) = match (strings(keys), strings(argv)) {
        (Ok(k), Ok(a)) => (k, a),
        _ => return Err(CmdError::msg("not enough memory to pass the arguments to the script")),
    };
    if let Some(g) = &globals {
        let _ = g.raw_set("KEYS", kt.clone());
        let _ = g.raw_set("ARGV", at.clone());
    }
    {
        let mut st = lua.app_data_mut::<CallState>().expect("call state");
        st.ctx = ctx as *mut Ctx as *mut ();
        st.read_only = call.read_only;
        st.allow_oom = call.allow_oom;
        st.resp3 = false;
    }
    let saved_db = ctx.client.db;
    let saved_blocking = ctx.blocking;
    ctx.blocking = Blocking::Never;
    status.start(ctx.now, call.kind, &call.name, command);
    let result = match call.kind {
        Running::Script => runner.call::<(bool, Value)>(f),
        Running::Function => runner.call::<(bool, Value)>((f, kt, at)),
    };
    let killed = status.kill_requested();
    let over_limit = status.over_time_limit(crate::server::unix_ms());
    status.finish();
    lua.app_data_mut::<CallState>().expect("call state").ctx = std::ptr::null_mut();
    ctx.blocking = saved_blocking;
    if ctx.client.db != saved_db {
        ctx.client.select(saved_db);
    }
    let where_ = |e: &Table| -> String {
        let mut s = format!(" script: {}", call.name);
        if let (Ok(Value::String(src)), Ok(line)) = (e.raw_get::<Value>("source"), e.raw_get::<i64>("line")) {
            s.push_str(&format!(", on {}:{line}.", src.to_string_lossy()));
        }
        s
    };
    let outcome = match result {
        Ok((true, v)) => {
            let resp3 = lua.app_data_ref::<CallState>().is_some_and(|st| st.resp3);
            convert::lua_to_reply(&v, ctx.out, resp3);
            Ok(())
        }
        Ok((false, Value::Table(e))) => {
            let msg = if killed {
                "ERR Script killed by user with SCRIPT KILL...".to_string()
            } else if over_limit {
                "ERR Script stopped: it ran longer than --script-time-limit-ms".to_string()
            } else {
                e.raw_get::<mlua::LuaString>("err")
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_else(|_| "ERR unknown error".into())
            };
            Err(CmdError::Raw(format!("{msg}{}", where_(&e))))
        }
        Ok((false, other)) => {
            // A memory error skips the handler: the message comes as it is.
            let msg = match &other {
                Value::String(s) => s.to_string_lossy(),
                _ => "unknown error".into(),
            };
            Err(CmdError::Raw(format!("ERR {msg} script: {}", call.name)))
        }
        Err(e) => Err(CmdError::Raw(format!("ERR {} script: {}", lua_message(&e), call.name))),
    };
    if let Some(g) = &globals {
        let _ = g.raw_set("KEYS", Value::Nil);
        let _ = g.raw_set("ARGV", Value::Nil);
    }
    if outcome.is_err() {
        // Whatever the failed script left behind (a memory error, say) goes now.
        let _ = lua.gc_collect();
    }
    outcome
}

/// `redis.call` / `redis.pcall`: the reply, or the error reply's text.
fn call(lua: &Lua, args: MultiValue) -> mlua::Result<Result<Value, String>> {
    let err_table =
        |_lua: &Lua, msg: &str| -> mlua::Result<Result<Value, String>> { Ok(Err(msg.to_string())) };
    if args.is_empty() {
        return err_table(lua, "ERR Please specify at least one argument for this redis lib call");
    }
    let mut argv = Vec::with_capacity(args.len());
    for a in args.iter() {
        match convert::to_argument(a) {
            Some(b) => argv.push(b),
            None => return err_table(lua, "ERR Lua redis lib command arguments must be strings or integers"),
        }
    }
    let mut st = lua.app_data_mut::<CallState>().expect("call state");
    if st.ctx.is_null() {
        drop(st);
        return err_table(lua, "ERR redis.call is not available here");
    }
    let Some((index, cmd)) = registry().get(&argv[0]) else {
        drop(st);
        return err_table(lua, "ERR Unknown Redis command called from script");
    };
    if !cmd.arity_ok(argv.len()) {
        drop(st);
        return err_table(lua, "ERR Wrong number of args calling Redis command from script");
    }
    if not_in_scripts(index) {
        drop(st);
        return err_table(lua, "ERR This Redis command is not allowed from script");
    }
    if matches!(cmd.name, "xread" | "xreadgroup") && argv.iter().any(|a| a.eq_ignore_ascii_case(b"block")) {
        drop(st);
        return err_table(
            lua,
            &format!("ERR {} command is not allowed with BLOCK option from scripts", cmd.name),
        );
    }
    if cmd.is(flags::WRITE) && st.read_only {
        drop(st);
        return err_table(lua, "ERR Write commands are not allowed from read-only scripts.");
    }
    // SAFETY: set by `run` to the context of the command running this script, on this thread,
    // and cleared before `run` returns; no other reference to it is used meanwhile.
    let ctx: &mut Ctx = unsafe { &mut *(st.ctx as *mut Ctx) };
    if cmd.is(flags::DENYOOM) && !st.allow_oom && ctx.server.over_maxmemory() {
        drop(st);
        return err_table(lua, &CmdError::Oom.to_string());
    }
    let proto = if st.resp3 { Protocol::Resp3 } else { Protocol::Resp2 };
    // The scratch buffer is lent out (an empty one, which allocates nothing, stands in).
    let mut out = std::mem::replace(&mut st.scratch, Reply::empty(proto));
    drop(st);
    out.buf.clear();
    out.proto = proto;
    std::mem::swap(ctx.out, &mut out);
    let writes = ctx.store.stats.writes;
    let result = ctx.call(index, cmd, &argv);
    if let Err(e) = result {
        ctx.out.error(&e.to_string());
    }
    std::mem::swap(ctx.out, &mut out);
    if ctx.store.stats.writes != writes {
        ctx.store.scripting.status.mark_wrote();
    }
    let result = if out.buf.first() == Some(&b'-') {
        let end = out.buf.len().saturating_sub(2).max(1);
        Err(String::from_utf8_lossy(&out.buf[1..end]).into_owned())
    } else {
        Ok(convert::reply_to_lua(lua, &out.buf))
    };
    out.buf.clear();
    lua.app_data_mut::<CallState>().expect("call state").scratch = out;
    match result {
        Ok(v) => Ok(Ok(v?)),
        Err(e) => Ok(Err(e)),
    }
}

/// The root of a Rust error raised into Lua: Redis's error text (no position) or a library's
/// message.
fn root_error(e: &mlua::Error) -> Result<String, String> {
    match e {
        mlua::Error::CallbackError { cause, .. } => root_error(cause),
        mlua::Error::WithContext { cause, .. } => root_error(cause),
        mlua::Error::ExternalError(x) => match x.downcast_ref::<RedisError>() {
            Some(r) => Ok(r.0.clone()),
            None => Err(x.to_string()),
        },
        mlua::Error::RuntimeError(m) => Err(m.clone()),
        mlua::Error::MemoryError(_) => Err("not enough memory".into()),
        other => Err(other.to_string()),
    }
}

/// Called by the error handlers (level 1) for the error raised at level 2: the error as
/// Redis's table `{err=…, source=…, line=…}`, or, for `pcall`, the message it gives.
fn error_value(lua: &Lua, (err, for_pcall): (Value, bool)) -> mlua::Result<Value> {
    const INTERNAL: &str = "=syncmesh";
    // luaL_error's position: the caller of the C function that raised, if it is Lua code.
    let position = || -> String {
        lua.inspect_stack(3, |d| {
            let s = d.source();
            match (s.what, d.current_line(), s.short_src) {
                (w, Some(line), Some(src)) if w != "C" && s.source.as_deref() != Some(INTERNAL) => {
                    format!("{src}:{line}: ")
                }
                _ => String::new(),
            }
        })
        .unwrap_or_default()
    };
    // (message, whether it is already Redis's error text with its code)
    let (msg, coded): (Vec<u8>, bool) = match &err {
        Value::Error(e) => match root_error(e) {
            Ok(redis) => (redis.into_bytes(), true),
            Err(m) => (format!("{}{m}", position()).into_bytes(), false),
        },
        Value::String(s) => (s.as_bytes().to_vec(), false),
        Value::Table(t) => match t.raw_get::<Value>("err")? {
            Value::String(s) => (s.as_bytes().to_vec(), true),
            _ => (b"unknown error".to_vec(), false),
        },
        Value::Nil => (b"nil".to_vec(), false),
        Value::Boolean(b) => (b.to_string().into_bytes(), false),
        Value::Integer(_) | Value::Number(_) => (lua_bytes(&err).unwrap_or_default(), false),
        other => (format!("{}: {:p}", type_name(other), other.to_pointer()).into_bytes(), false),
    };
    if for_pcall {
        return match &err {
            Value::Error(_) | Value::Table(_) => Ok(Value::String(lua.create_string(&msg)?)),
            _ => Ok(err),
        };
    }
    let text = if coded { msg } else { [b"ERR ".as_slice(), &msg].concat() };
    let t = lua.create_table_with_capacity(0, 3)?;
    t.raw_set("err", lua.create_string(&text)?)?;
    for level in 2.. {
        let Some(found) = lua.inspect_stack(level, |d| {
            let s = d.source();
            if s.what == "C" || s.source.as_deref() == Some(INTERNAL) {
                return None;
            }
            Some((s.source.map(|x| x.into_owned()), d.current_line()))
        }) else {
            break;
        };
        if let Some((source, line)) = found {
            t.raw_set("source", source)?;
            t.raw_set("line", line.map(|l| l as i64))?;
            break;
        }
    }
    Ok(Value::Table(t))
}

// ---- the other primitives of the redis table ----

const REDIS_PRIMS: &[Prim] = &[
    ("sha1hex", prim_sha1hex),
    ("log", prim_log),
    ("setresp", prim_setresp),
    ("set_repl", prim_set_repl),
    ("acl_check_cmd", prim_acl_check_cmd),
    ("guard_rawset", prim_guard_rawset),
    ("guard_setmetatable", prim_guard_setmetatable),
];

const MATH_PRIMS: &[Prim] = &[("random", prim_random), ("randomseed", prim_randomseed)];

/// Whether `t` is one of the sandbox's read-only tables.
fn is_readonly(lua: &Lua, t: &Value) -> bool {
    let Ok(real_of) = lua.named_registry_value::<Table>("syncmesh.readonly") else { return false };
    matches!(t, Value::Table(_)) && real_of.raw_get::<Value>(t.clone()).is_ok_and(|v| !v.is_nil())
}

/// `rawset` that refuses the read-only tables.
fn prim_guard_rawset(lua: &Lua, args: MultiValue) -> PrimResult {
    let t = args.front().cloned().unwrap_or(Value::Nil);
    if is_readonly(lua, &t) {
        return Err("Attempt to modify a readonly table".into());
    }
    let Value::Table(table) = &t else {
        return Err(bad_argument(1, "rawset", &format!("table expected, got {}", type_name(&t))));
    };
    let (k, v) = (args.get(1).cloned().unwrap_or(Value::Nil), args.get(2).cloned().unwrap_or(Value::Nil));
    table.raw_set(k, v).map_err(|e| lua_message(&e))?;
    Ok(Ret::One(t))
}

/// `setmetatable` that refuses the read-only tables.
fn prim_guard_setmetatable(lua: &Lua, args: MultiValue) -> PrimResult {
    let t = args.front().cloned().unwrap_or(Value::Nil);
    if is_readonly(lua, &t) {
        return Err("Attempt to modify a readonly table".into());
    }
    let Value::Table(table) = &t else {
        return Err(bad_argument(1, "setmetatable", &format!("table expected, got {}", type_name(&t))));
    };
    if table.metatable().is_some_and(|m| m.raw_get::<Value>("__metatable").is_ok_and(|v| !v.is_nil())) {
        return Err("cannot change a protected metatable".into());
    }
    match args.get(1) {
        Some(Value::Table(mt)) => table.set_metatable(Some(mt.clone())).map_err(|e| lua_message(&e))?,
        Some(Value::Nil) => table.set_metatable(None).map_err(|e| lua_message(&e))?,
        _ => return Err(bad_argument(2, "setmetatable", "nil or table expected")),
    }
    Ok(Ret::One(t))
}

fn lua_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(_) | Value::Number(_) => convert::to_argument(v).map(|b| {
            // Lua's own number-to-string conversion (`%.14g`).
            match v {
                Value::Integer(i) if i.unsigned_abs() < 100_000_000_000_000 => b.to_vec(),
                _ => convert::format_g(convert::as_number(v).unwrap_or(0.0), 14).into_bytes(),
            }
        }),
        _ => None,
    }
}

fn prim_sha1hex(lua: &Lua, args: MultiValue) -> PrimResult {
    if args.len() != 1 {
        return Err("wrong number of arguments".into());
    }
    let body = lua_bytes(&args[0]).unwrap_or_default();
    Ok(Ret::One(Value::String(lua.create_string(sha1_hex(&body)).map_err(|e| e.to_string())?)))
}

fn prim_log(_lua: &Lua, args: MultiValue) -> PrimResult {
    if args.len() < 2 {
        return Err("redis.log() requires two arguments or more.".into());
    }
    let Some(level) = convert::as_number(&args[0]) else {
        return Err("First argument must be a number".into());
    };
    if !(0.0..=3.0).contains(&level) {
        return Err("Invalid debug level.".into());
    }
    let text: Vec<String> = args
        .iter()
        .skip(1)
        .filter_map(|v| lua_bytes(v).map(|b| String::from_utf8_lossy(&b).into_owned()))
        .collect();
    let text = text.join(" ");
    match level as i64 {
        0 => tracing::debug!(target: "script", "{text}"),
        1 | 2 => tracing::info!(target: "script", "{text}"),
        _ => tracing::warn!(target: "script", "{text}"),
    }
    Ok(Ret::One(Value::Nil))
}

fn prim_setresp(lua: &Lua, args: MultiValue) -> PrimResult {
    if args.len() != 1 {
        return Err("redis.setresp() requires one argument.".into());
    }
    let v = convert::as_number(&args[0]).unwrap_or(0.0);
    if v != 2.0 && v != 3.0 {
        return Err("RESP version must be 2 or 3.".into());
    }
    lua.app_data_mut::<CallState>().expect("call state").resp3 = v == 3.0;
    Ok(Ret::One(Value::Nil))
}

fn prim_set_repl(_lua: &Lua, args: MultiValue) -> PrimResult {
    if args.len() != 1 {
        return Err("redis.set_repl() requires one argument.".into());
    }
    match convert::as_number(&args[0]) {
        Some(3.0) => Ok(Ret::One(Value::Nil)),
        _ => Err("redis.set_repl is not supported: SyncMesh always replicates a script's effects to every peer (only redis.REPL_ALL is accepted)".into()),
    }
}

fn prim_acl_check_cmd(_lua: &Lua, args: MultiValue) -> PrimResult {
    let name = args
        .front()
        .and_then(lua_bytes)
        .ok_or("Please specify at least one argument for this redis lib call")?;
    if registry().get(&name).is_none() {
        return Err("Invalid command passed to redis.acl_check_cmd()".into());
    }
    Ok(Ret::One(Value::Boolean(true)))
}

/// Redis's `redisLrand48`: the 48-bit linear congruential generator of `drand48`.
fn lrand48(state: &mut u64) -> i32 {
    *state = (state.wrapping_mul(0x5DEE_CE66D).wrapping_add(0xB)) & ((1 << 48) - 1);
    (*state >> 17) as i32
}

fn prim_random(lua: &Lua, args: MultiValue) -> PrimResult {
    let r = {
        let mut st = lua.app_data_mut::<CallState>().expect("call state");
        let x = lrand48(&mut st.rand48) as i64 % i32::MAX as i64;
        x as f64 / i32::MAX as f64
    };
    let arg = |i: usize, name: &str| -> Result<i64, String> {
        convert::as_number(&args[i]).map(|n| n as i64).ok_or_else(|| {
            bad_argument(i + 1, name, &format!("number expected, got {}", type_name(&args[i])))
        })
    };
    let v = match args.len() {
        0 => r,
        1 => {
            let u = arg(0, "random")?;
            if u < 1 {
                return Err(bad_argument(1, "random", "interval is empty"));
            }
            (r * u as f64).floor() + 1.0
        }
        2 => {
            let (l, u) = (arg(0, "random")?, arg(1, "random")?);
            if l > u {
                return Err(bad_argument(2, "random", "interval is empty"));
            }
            (r * (u - l + 1) as f64).floor() + l as f64
        }
        _ => return Err("wrong number of arguments".into()),
    };
    Ok(Ret::One(Value::Number(v)))
}

fn prim_randomseed(lua: &Lua, args: MultiValue) -> PrimResult {
    let seed = args
        .front()
        .and_then(convert::as_number)
        .ok_or_else(|| bad_argument(1, "randomseed", "number expected, got no value"))?;
    let seed = seed as i64 as i32 as u32 as u64;
    lua.app_data_mut::<CallState>().expect("call state").rand48 = (seed << 16) | 0x330E;
    Ok(Ret::One(Value::Nil))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reply_texts() {
        assert_eq!(error_text(b"noprefix"), b"ERR noprefix");
        assert_eq!(error_text(b"-noprefix"), b"ERR noprefix");
        assert_eq!(error_text(b"-X y"), b"X y");
        assert_eq!(error_text(b"X y"), b"X y");
        assert_eq!(error_text(b""), b"ERR ");
    }

    #[test]
    fn shebang_flags() {
        let (f, src) = ScriptFlags::from_shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
        assert!(f.shebang && f.no_writes && f.allow_oom && !f.allow_stale);
        assert!(src.ends_with(b"\nreturn 1"));
        assert!(ScriptFlags::from_shebang(b"#!js\nreturn 1").is_err());
        assert!(ScriptFlags::from_shebang(b"#!lua flags=bogus\n").is_err());
    }
}
