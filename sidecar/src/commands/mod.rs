//! Commands: one file per family, each exporting a table of [`Command`]s. A handler reads its
//! arguments, reads or writes the store through [`Ctx`], and writes its reply; errors are
//! returned as [`CmdError`] and rendered with Redis's texts by the dispatcher.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::crdt::keyspace::{Entry, Part};
use crate::crdt::number::{parse_f64, parse_i64};
use crate::crdt::{Blob, Effect, Kind, Op};
use crate::resp::Reply;
use crate::server::client::Client;
use crate::server::store::Store;
use crate::server::Server;

pub mod connection;
pub mod hashes;
pub mod hll;
pub mod keys;
pub mod lists;
pub mod pubsub;
pub mod scripting;
pub mod server_info;
pub mod sets;
pub mod streams;
pub mod strings;
pub mod zsets;

/// Command flags (a subset of Redis's, those that change how the dispatcher treats a command).
pub mod flags {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    /// Refused with `-OOM` past `maxmemory`.
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const FAST: u32 = 1 << 4;
    /// Allowed before `AUTH`.
    pub const NO_AUTH: u32 = 1 << 5;
    /// Runs immediately even inside `MULTI` (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET).
    pub const TX_CONTROL: u32 = 1 << 6;
    /// Not allowed inside `MULTI`.
    pub const NO_MULTI: u32 = 1 << 7;
    pub const PUBSUB: u32 = 1 << 8;
    pub const BLOCKING: u32 = 1 << 9;
    pub const LOADING: u32 = 1 << 10;
    pub const STALE: u32 = 1 << 11;
    /// Allowed in RESP2 subscriber mode.
    pub const SUBSCRIBED_OK: u32 = 1 << 12;
}

pub type Handler = fn(&mut Ctx, &[Bytes]) -> Result<(), CmdError>;

/// A string value read for a reply.
pub enum StringRead {
    /// A large value, shared with the keyspace.
    Shared(Bytes),
    Copied(Vec<u8>),
}

impl std::ops::Deref for StringRead {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            StringRead::Shared(b) => b,
            StringRead::Copied(v) => v,
        }
    }
}

impl StringRead {
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            StringRead::Shared(b) => b.to_vec(),
            StringRead::Copied(v) => v,
        }
    }

    /// Replies with it as a bulk string (a shared value is written without a copy).
    pub fn reply(&self, out: &mut Reply) {
        match self {
            StringRead::Shared(b) => out.bulk_shared(b),
            StringRead::Copied(v) => out.bulk(v),
        }
    }
}

pub struct Command {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: positive = exact argument count (with the name), negative = at least.
    pub arity: i32,
    pub flags: u32,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// `COMMAND DOCS` group, e.g. "string".
    pub group: &'static str,
    pub summary: &'static str,
    pub run: Handler,
}

impl Command {
    pub fn is(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        if self.arity >= 0 {
            argc == self.arity as usize
        } else {
            argc >= (-self.arity) as usize
        }
    }

    /// Flag names for `COMMAND INFO`.
    pub fn flag_names(&self) -> Vec<&'static str> {
        use flags::*;
        let mut v = Vec::new();
        for (f, name) in [
            (WRITE, "write"),
            (READONLY, "readonly"),
            (DENYOOM, "denyoom"),
            (ADMIN, "admin"),
            (PUBSUB, "pubsub"),
            (NO_AUTH, "no_auth"),
            (LOADING, "loading"),
            (STALE, "stale"),
            (FAST, "fast"),
            (BLOCKING, "blocking"),
            (NO_MULTI, "no_multi"),
        ] {
            if self.flags & f != 0 {
                v.push(name);
            }
        }
        v
    }
}

/// Shorthand for the command tables.
#[allow(clippy::too_many_arguments)]
pub const fn cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    group: &'static str,
    summary: &'static str,
    run: Handler,
) -> Command {
    Command { name, arity, flags, first_key: keys.0, last_key: keys.1, step: keys.2, group, summary, run }
}

pub struct Registry {
    pub commands: Vec<&'static Command>,
    by_name: HashMap<&'static str, usize>,
}

impl Registry {
    pub fn get(&self, name: &[u8]) -> Option<(usize, &'static Command)> {
        if name.len() > 32 {
            return None;
        }
        let mut lower = [0u8; 32];
        for (d, s) in lower.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        let lower = std::str::from_utf8(&lower[..name.len()]).ok()?;
        self.by_name.get(lower).map(|&i| (i, self.commands[i]))
    }
}

pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let tables: &[&'static [Command]] = &[
            connection::COMMANDS,
            server_info::COMMANDS,
            keys::COMMANDS,
            strings::COMMANDS,
            hashes::COMMANDS,
            sets::COMMANDS,
            zsets::COMMANDS,
            hll::COMMANDS,
            lists::COMMANDS,
            streams::COMMANDS,
            pubsub::COMMANDS,
            scripting::COMMANDS,
        ];
        let commands: Vec<&'static Command> = tables.iter().flat_map(|t| t.iter()).collect();
        let by_name = commands.iter().enumerate().map(|(i, c)| (c.name, i)).collect();
        Registry { commands, by_name }
    })
}

/// A command's error, rendered with Redis's text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CmdError {
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR value is not a valid float")]
    NotFloat,
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    #[error("ERR no such key")]
    NoSuchKey,
    #[error("ERR wrong number of arguments for '{0}' command")]
    Arity(String),
    #[error("OOM command not allowed when used memory > 'maxmemory'.")]
    Oom,
    #[error("ERR {0}")]
    Err(String),
    /// A complete message with its own code.
    #[error("{0}")]
    Raw(String),
}

impl CmdError {
    pub fn msg(s: impl Into<String>) -> CmdError {
        CmdError::Err(s.into())
    }
}

pub type CmdResult = Result<(), CmdError>;

/// Everything a handler can touch while it runs: the store (locked for the whole command), the
/// calling client, its reply buffer, the server, and the time the command started.
pub struct Ctx<'a> {
    pub store: &'a mut Store,
    pub client: &'a mut Client,
    pub out: &'a mut Reply,
    pub server: &'a Server,
    pub now: u64,
    /// Whether a blocking command may block now.
    pub blocking: Blocking,
    /// Set by a blocking command that found nothing: the keys to wait on and until when.
    pub block: Option<BlockRequest>,
    /// Seeds the random choices that change state (`SPOP`): the strong keys' state machine sets
    /// it from the log index, so that every voter picks the same (None: random).
    pub seed: Option<u64>,
}

/// How a blocking command behaves when it finds nothing.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Blocking {
    /// Register and wait (a normal client command).
    Allowed,
    /// Reply as the non-blocking form would (inside MULTI/EXEC).
    Never,
    /// The server is retrying a waiting client's command: say "still nothing" without replying.
    Serving,
}

/// What a blocked client waits for.
#[derive(Debug, Clone)]
pub struct BlockRequest {
    pub keys: Vec<Blob>,
    /// Unix ms (replica clock); None waits forever.
    pub deadline: Option<u64>,
    /// The reply on timeout.
    pub on_timeout: TimeoutReply,
    /// The command to retry when a key is ready, if it differs from the one given (XREAD `$`
    /// becomes the id it meant when the client blocked).
    pub retry_args: Option<Vec<Bytes>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutReply {
    NullArray,
    NullBulk,
}

impl<'a> Ctx<'a> {
    /// Runs a command's handler: the one dispatch path, whoever asked (a client directly, a
    /// blocked client being served, `EXEC`'s queued commands, a script's `redis.call`). Each
    /// caller does its own checks first (arity, authentication, queueing, read-only scripts);
    /// here the command runs and is counted in the per-command metrics, as Redis counts commands
    /// run inside transactions and scripts in its command statistics.
    pub fn call(&mut self, index: usize, command: &Command, args: &[Bytes]) -> CmdResult {
        // The TSC-based clock costs a few nanoseconds; the system clock is much dearer on VMs.
        let started = quanta::Instant::now();
        let result = (command.run)(self, args);
        let metrics = &self.server.metrics;
        if result.is_err() {
            metrics.command_errors.inc();
        }
        let (calls, latency) = &metrics.per_command[index];
        calls.inc();
        latency.observe(started.elapsed().as_secs_f64());
        result
    }

    pub fn new(
        store: &'a mut Store,
        client: &'a mut Client,
        out: &'a mut Reply,
        server: &'a Server,
        now: u64,
    ) -> Self {
        let blocking = if client.multi.is_some() { Blocking::Never } else { Blocking::Allowed };
        Ctx { store, client, out, server, now, blocking, block: None, seed: None }
    }

    /// The random generator for choices that change state: seeded by [`Ctx::seed`] when set.
    pub fn rng(&self) -> rand::rngs::StdRng {
        use rand::SeedableRng;
        match self.seed {
            Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
            None => rand::rngs::StdRng::from_rng(&mut rand::rng()),
        }
    }

    pub fn db(&self) -> usize {
        self.client.db
    }

    /// A blocking command found nothing: wait on `keys` (or reply as the non-blocking form).
    pub fn block_on(&mut self, keys: &[Bytes], timeout_ms: Option<u64>, on_timeout: TimeoutReply) {
        match self.blocking {
            Blocking::Allowed => {
                self.block = Some(BlockRequest {
                    keys: keys.iter().map(|k| Blob::from_slice(k)).collect(),
                    deadline: timeout_ms.map(|t| self.now + t),
                    on_timeout,
                    retry_args: None,
                })
            }
            Blocking::Serving => {
                self.block = Some(BlockRequest { keys: vec![], deadline: None, on_timeout, retry_args: None })
            }
            Blocking::Never => match on_timeout {
                TimeoutReply::NullArray => self.out.null_array(),
                TimeoutReply::NullBulk => self.out.null(),
            },
        }
    }

    /// The key's entry if it exists and has not expired. An expired key is deleted on the spot,
    /// as Redis does on access.
    pub fn lookup(&mut self, key: &[u8]) -> Option<&Entry> {
        let db = self.db();
        self.lookup_in(db, key)
    }

    pub fn lookup_in(&mut self, db: usize, key: &[u8]) -> Option<&Entry> {
        let secs = self.uptime_secs();
        let expired = match self.store.replica.db_mut(db).get_mut(key) {
            None => {
                self.store.stats.keyspace_misses += 1;
                return None;
            }
            Some(e) => {
                e.accessed = secs;
                e.is_expired(self.now)
            }
        };
        if expired {
            self.store.expire_key(db, key, self.now);
            self.store.stats.keyspace_misses += 1;
            return None;
        }
        let e = self.store.replica.db(db).get(key)?;
        if e.is_visible() {
            self.store.stats.keyspace_hits += 1;
            Some(e)
        } else {
            None
        }
    }

    fn uptime_secs(&self) -> u32 {
        self.server.started.elapsed().as_secs() as u32
    }

    /// The visible part of a key, or None.
    pub fn part(&mut self, key: &[u8]) -> Option<&Part> {
        self.lookup(key).and_then(|e| e.visible())
    }

    pub fn kind(&mut self, key: &[u8]) -> Option<Kind> {
        self.part(key).map(|p| p.kind())
    }

    /// Fails with WRONGTYPE unless the key is missing or of `kind`.
    pub fn expect_kind(&mut self, key: &[u8], kind: Kind) -> Result<bool, CmdError> {
        match self.kind(key) {
            None => Ok(false),
            Some(k) if k == kind => Ok(true),
            Some(_) => Err(CmdError::WrongType),
        }
    }

    /// Applies a local write to the current database.
    pub fn write(&mut self, key: &[u8], effect: Effect) {
        let db = self.db();
        self.write_in(db, key, effect);
    }

    pub fn write_in(&mut self, db: usize, key: &[u8], effect: Effect) {
        let flush = effect == Effect::Flush;
        let removal = matches!(
            effect,
            Effect::HashDel { .. } | Effect::SetRem { .. } | Effect::ZRem { .. } | Effect::ListRemove { .. }
        );
        let kind_before =
            if removal { self.store.replica.db(db).get(key).and_then(|e| e.kind()) } else { None };
        let dot = self.store.write(Op { db: db as u8, key: Blob::from_slice(key), effect }, self.now);
        self.client.last_write = Some(dot);
        if flush {
            return;
        }
        let secs = self.uptime_secs();
        let Some(e) = self.store.replica.db_mut(db).get_mut(key) else { return };
        e.accessed = secs;
        // A key whose last element went (SREM, HDEL, ZREM, …) is deleted, TTL and all, as in Redis
        // (and with it any value that lost a type conflict, which would otherwise show through).
        let emptied = kind_before.is_some() && e.kind() != kind_before;
        if (!e.is_visible() && e.has_expiry_state()) || (emptied && e.is_visible()) {
            self.store
                .write(Op { db: db as u8, key: Blob::from_slice(key), effect: Effect::Delete }, self.now);
        }
    }

    /// The visible string value of a key for a reply; WRONGTYPE for other types. A large value
    /// comes back shared with the keyspace rather than copied.
    pub fn read_string(&mut self, key: &[u8]) -> Result<Option<StringRead>, CmdError> {
        match self.part(key) {
            None => Ok(None),
            Some(Part::Str(c)) => Ok(Some(match crate::crdt::keyspace::string_shared(c) {
                Some(b) => StringRead::Shared(b),
                None => StringRead::Copied(crate::crdt::keyspace::string_value(c).into_owned()),
            })),
            Some(Part::Hll(h)) => Ok(Some(StringRead::Copied(hll::encode_for_get(h)))),
            Some(_) => Err(CmdError::WrongType),
        }
    }

    /// The visible string value of a key; WRONGTYPE for other types.
    pub fn get_string(&mut self, key: &[u8]) -> Result<Option<Cow<'_, [u8]>>, CmdError> {
        match self.part(key) {
            None => Ok(None),
            Some(Part::Str(c)) => Ok(Some(crate::crdt::keyspace::string_value(c))),
            Some(Part::Hll(h)) => Ok(Some(Cow::Owned(hll::encode_for_get(h)))),
            Some(_) => Err(CmdError::WrongType),
        }
    }
}

// ---- argument helpers shared by the families ----

pub fn arg_i64(b: &[u8]) -> Result<i64, CmdError> {
    parse_i64(b).ok_or(CmdError::NotInteger)
}

pub fn arg_f64(b: &[u8]) -> Result<f64, CmdError> {
    parse_f64(b).ok_or(CmdError::NotFloat)
}

/// A blocking timeout in seconds (fractions allowed; 0 = forever), as BLPOP and friends take it.
pub fn arg_timeout_secs(b: &[u8]) -> Result<Option<u64>, CmdError> {
    let t = parse_f64(b)
        .filter(|t| t.is_finite())
        .ok_or_else(|| CmdError::msg("timeout is not a float or out of range"))?;
    if t < 0.0 {
        return Err(CmdError::msg("timeout is negative"));
    }
    let ms = (t * 1000.0).round() as u64;
    Ok((ms > 0).then_some(ms))
}

/// The distinct arguments for which `present` holds, in order (what HDEL, SREM, ZREM remove).
pub fn present_once(args: &[Bytes], present: impl Fn(&[u8]) -> bool) -> Vec<Blob> {
    let mut out: Vec<Blob> = Vec::new();
    for a in args {
        if present(a) && !out.iter().any(|x| x[..] == a[..]) {
            out.push(Blob::from_slice(a));
        }
    }
    out
}

/// The optional count of LPOP/RPOP/ZPOPMIN/ZPOPMAX/SPOP (`args[2]`, when there are three
/// arguments): a non-negative integer, with Redis's one error text for anything else.
pub fn pop_count(args: &[Bytes]) -> Result<Option<usize>, CmdError> {
    let Some(c) = args.get(2) else { return Ok(None) };
    let err = || CmdError::msg("value is out of range, must be positive");
    let n = arg_i64(c).map_err(|_| err())?;
    usize::try_from(n).map(Some).map_err(|_| err())
}

/// The key arguments of a command line: from the command's key positions, or for commands that
/// take `numkeys` (or `STREAMS`), from that. Used by `COMMAND GETKEYS` and by the routing of
/// strong keys (`strong/route.rs`).
pub fn key_args<'a>(c: &Command, args: &'a [Bytes]) -> Result<Vec<&'a Bytes>, CmdError> {
    let invalid = || CmdError::msg("Invalid arguments specified for command");
    let numkeys_at = match c.name {
        "zunionstore" | "zinterstore" | "zdiffstore" => Some((2, vec![&args[1]])),
        "zunion" | "zinter" | "zdiff" | "sintercard" | "zintercard" | "lmpop" | "zmpop" => Some((1, vec![])),
        "blmpop" | "bzmpop" | "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => {
            Some((2, vec![]))
        }
        "xread" | "xreadgroup" => return stream_keys(args).ok_or_else(invalid),
        _ => None,
    };
    if let Some((at, mut keys)) = numkeys_at {
        let n = args.get(at).and_then(|a| arg_i64(a).ok()).ok_or_else(invalid)?;
        let n = n.max(0) as usize;
        if at + n >= args.len() {
            return Err(invalid());
        }
        keys.extend(&args[at + 1..=at + n]);
        return Ok(keys);
    }
    if c.first_key == 0 {
        return Ok(vec![]);
    }
    let last = if c.last_key < 0 { args.len() as i32 + c.last_key } else { c.last_key };
    Ok((c.first_key..=last).step_by(c.step.max(1) as usize).filter_map(|i| args.get(i as usize)).collect())
}

/// The keys of `XREAD`/`XREADGROUP`: the first half of what follows `STREAMS`.
fn stream_keys(args: &[Bytes]) -> Option<Vec<&Bytes>> {
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if eq_ic(a, "streams") {
            let rest = &args[i + 1..];
            if rest.is_empty() || !rest.len().is_multiple_of(2) {
                return None;
            }
            return Some(rest[..rest.len() / 2].iter().collect());
        }
        i += if eq_ic(a, "group") {
            3
        } else if eq_ic(a, "count") || eq_ic(a, "block") {
            2
        } else {
            1
        };
    }
    None
}

/// A HELP reply: one simple string per line.
pub fn reply_help(ctx: &mut Ctx, lines: &[&str]) {
    ctx.out.array(lines.len());
    for l in lines {
        ctx.out.simple(l);
    }
}

/// `numkeys key [key ...] <rest>` of LMPOP/ZMPOP/BLMPOP/BZMPOP: the keys and what follows them.
pub fn numkeys_then_rest(args: &[Bytes]) -> Result<(&[Bytes], &[Bytes]), CmdError> {
    let numkeys = arg_i64(&args[0]).map_err(|_| CmdError::msg("numkeys should be greater than 0"))?;
    if numkeys <= 0 {
        return Err(CmdError::msg("numkeys should be greater than 0"));
    }
    let numkeys = numkeys as usize;
    if numkeys + 1 >= args.len() {
        return Err(CmdError::Syntax);
    }
    Ok((&args[1..=numkeys], &args[numkeys + 1..]))
}

/// The optional `COUNT count` of LMPOP/ZMPOP (1 when absent).
pub fn mpop_count(opts: &[Bytes]) -> Result<usize, CmdError> {
    match opts.len() {
        0 => Ok(1),
        2 if eq_ic(&opts[0], "count") => {
            let c = arg_i64(&opts[1]).map_err(|_| CmdError::msg("count should be greater than 0"))?;
            if c <= 0 {
                return Err(CmdError::msg("count should be greater than 0"));
            }
            Ok(c as usize)
        }
        _ => Err(CmdError::Syntax),
    }
}

pub fn arg_usize(b: &[u8]) -> Result<usize, CmdError> {
    let n = arg_i64(b)?;
    usize::try_from(n).map_err(|_| CmdError::NotInteger)
}

pub fn eq_ic(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

pub fn arity_error(args: &[Bytes]) -> CmdError {
    CmdError::Arity(String::from_utf8_lossy(&args[0]).to_lowercase())
}

/// `ERR unknown subcommand 'x'. Try CLIENT HELP.`
pub fn unknown_subcommand(args: &[Bytes]) -> CmdError {
    CmdError::msg(format!(
        "unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(args.get(1).map(|b| &b[..]).unwrap_or(b"")),
        String::from_utf8_lossy(&args[0]).to_uppercase()
    ))
}

/// `ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP.` (the
/// text of containers that parse their own subcommands).
pub fn sub_syntax_error(args: &[Bytes]) -> CmdError {
    CmdError::msg(format!(
        "unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        String::from_utf8_lossy(args.get(1).map(|b| &b[..]).unwrap_or(b"")),
        String::from_utf8_lossy(&args[0]).to_uppercase()
    ))
}

pub fn sub_arity_error(args: &[Bytes]) -> CmdError {
    CmdError::Arity(format!(
        "{}|{}",
        String::from_utf8_lossy(&args[0]).to_lowercase(),
        String::from_utf8_lossy(&args[1]).to_lowercase()
    ))
}

/// Redis glob-style pattern matching (`*`, `?`, `[a-z]`, `[^a]`, `\x`), as `KEYS`, `SCAN MATCH`
/// and `PSUBSCRIBE` use it.
pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    fn eq(a: u8, b: u8, nocase: bool) -> bool {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    }
    // Redis's matcher never matches an empty string with a non-empty pattern (not even "*").
    if s.is_empty() {
        return pattern.is_empty();
    }
    let (mut p, mut i) = (0usize, 0usize);
    let (mut star_p, mut star_i) = (usize::MAX, 0usize);
    while i < s.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star_p = p;
                    star_i = i;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    let mut q = p + 1;
                    let negate = q < pattern.len() && pattern[q] == b'^';
                    if negate {
                        q += 1;
                    }
                    let mut matched = false;
                    while q < pattern.len() && pattern[q] != b']' {
                        if pattern[q] == b'\\' && q + 1 < pattern.len() {
                            q += 1;
                            if eq(pattern[q], s[i], nocase) {
                                matched = true;
                            }
                        } else if q + 2 < pattern.len() && pattern[q + 1] == b'-' && pattern[q + 2] != b']' {
                            let (mut lo, mut hi) = (pattern[q], pattern[q + 2]);
                            if lo > hi {
                                std::mem::swap(&mut lo, &mut hi);
                            }
                            let c = if nocase { s[i].to_ascii_lowercase() } else { s[i] };
                            let (lo2, hi2) = if nocase {
                                (lo.to_ascii_lowercase(), hi.to_ascii_lowercase())
                            } else {
                                (lo, hi)
                            };
                            if c >= lo2 && c <= hi2 {
                                matched = true;
                            }
                            q += 2;
                        } else if eq(pattern[q], s[i], nocase) {
                            matched = true;
                        }
                        q += 1;
                    }
                    if matched != negate {
                        p = if q < pattern.len() { q + 1 } else { q };
                        i += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if eq(pattern[p + 1], s[i], nocase) {
                        p += 2;
                        i += 1;
                        continue;
                    }
                }
                c => {
                    if eq(c, s[i], nocase) {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
            }
        }
        if star_p != usize::MAX {
            star_i += 1;
            i = star_i;
            p = star_p;
            continue;
        }
        return false;
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h*llo", b"heeeello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        // Redis never matches an empty string with a non-empty pattern, not even "*".
        assert!(!glob_match(b"*", b"", false));
        assert!(glob_match(b"user:*:name", b"user:42:name", false));
        assert!(!glob_match(b"user:*:name", b"user:42:names", false));
        assert!(glob_match(b"a\\*b", b"a*b", false));
    }
}
