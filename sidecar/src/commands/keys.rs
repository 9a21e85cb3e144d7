//! Generic key commands: DEL, UNLINK, EXISTS, TYPE, TOUCH, the EXPIRE family, TTL and friends,
//! PERSIST, KEYS, SCAN, RANDOMKEY, RENAME, RENAMENX, COPY.

use bytes::Bytes;
use rand::Rng;

use super::flags::*;
use super::{arg_i64, cmd, eq_ic, glob_match, CmdError, CmdResult, Command, Ctx};
use crate::crdt::hll::REGISTERS;
use crate::crdt::keyspace::{cell_string, string_shared, string_value, Part};
use crate::crdt::list::{position_between, Position};
use crate::crdt::replica::DATABASES;
use crate::crdt::{Blob, Dot, Effect, Ttl, Value};
use crate::server::lazyfree::LAZYFREE_THRESHOLD;

#[rustfmt::skip]
pub const COMMANDS: &[Command] = &[
    cmd("del", -2, WRITE, (1, -1, 1), "generic", "Deletes one or more keys.", del),
    cmd("unlink", -2, WRITE | FAST, (1, -1, 1), "generic", "Asynchronously deletes one or more keys.", del),
    cmd("exists", -2, READONLY | FAST, (1, -1, 1), "generic", "Determines whether one or more keys exist.", exists),
    cmd("type", 2, READONLY | FAST, (1, 1, 1), "generic", "Determines the type of value stored at a key.", type_),
    cmd("touch", -2, READONLY | FAST, (1, -1, 1), "generic", "Returns the number of existing keys out of those specified after updating the time they were last accessed.", exists),
    cmd("expire", -3, WRITE | FAST, (1, 1, 1), "generic", "Sets the expiration time of a key in seconds.", expire),
    cmd("pexpire", -3, WRITE | FAST, (1, 1, 1), "generic", "Sets the expiration time of a key in milliseconds.", expire),
    cmd("expireat", -3, WRITE | FAST, (1, 1, 1), "generic", "Sets the expiration time of a key to a Unix timestamp.", expire),
    cmd("pexpireat", -3, WRITE | FAST, (1, 1, 1), "generic", "Sets the expiration time of a key to a Unix milliseconds timestamp.", expire),
    cmd("ttl", 2, READONLY | FAST, (1, 1, 1), "generic", "Returns the expiration time in seconds of a key.", ttl),
    cmd("pttl", 2, READONLY | FAST, (1, 1, 1), "generic", "Returns the expiration time in milliseconds of a key.", ttl),
    cmd("expiretime", 2, READONLY | FAST, (1, 1, 1), "generic", "Returns the expiration time of a key as a Unix timestamp.", ttl),
    cmd("pexpiretime", 2, READONLY | FAST, (1, 1, 1), "generic", "Returns the expiration time of a key as a Unix milliseconds timestamp.", ttl),
    cmd("persist", 2, WRITE | FAST, (1, 1, 1), "generic", "Removes the expiration time of a key.", persist),
    cmd("keys", 2, READONLY, (0, 0, 0), "generic", "Returns all key names that match a pattern.", keys),
    cmd("scan", -2, READONLY, (0, 0, 0), "generic", "Iterates over the key names in the database.", scan),
    cmd("randomkey", 1, READONLY, (0, 0, 0), "generic", "Returns a random key name from the database.", randomkey),
    cmd("rename", 3, WRITE, (1, 2, 1), "generic", "Renames a key and overwrites the destination.", rename),
    cmd("renamenx", 3, WRITE | FAST, (1, 2, 1), "generic", "Renames a key only when the target key name doesn't exist.", rename),
    cmd("copy", -3, WRITE | DENYOOM, (1, 2, 1), "generic", "Copies the value of a key to a new key.", copy),
];

/// DEL and UNLINK. UNLINK (and DEL with `lazyfree-lazy-user-del yes`) leaves freeing a large
/// value to a background thread.
fn del(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let lazy = eq_ic(&args[0], "unlink") || ctx.server.settings.read().lazyfree_lazy_user_del;
    let mut n = 0;
    for key in &args[1..] {
        if ctx.lookup(key).is_some() {
            if lazy {
                let db = ctx.db();
                let garbage = ctx.store.replica.db_mut(db).detach_contents(key, LAZYFREE_THRESHOLD);
                ctx.server.lazyfree.free(garbage);
            }
            ctx.write(key, Effect::Delete);
            n += 1;
        }
    }
    ctx.out.int(n);
    Ok(())
}

fn exists(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = args[1..].iter().filter(|k| ctx.lookup(k).is_some()).count();
    ctx.out.int(n as i64);
    Ok(())
}

fn type_(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let name = ctx.kind(&args[1]).map(|k| k.name()).unwrap_or("none");
    ctx.out.simple(name);
    Ok(())
}

fn expire(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        match String::from_utf8_lossy(opt).to_ascii_lowercase().as_str() {
            "nx" => nx = true,
            "xx" => xx = true,
            "gt" => gt = true,
            "lt" => lt = true,
            _ => return Err(CmdError::msg(format!("Unsupported option {}", String::from_utf8_lossy(opt)))),
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::msg("NX and XX, GT or LT options at the same time are not compatible"));
    }
    if gt && lt {
        return Err(CmdError::msg("GT and LT options at the same time are not compatible"));
    }
    let n = arg_i64(&args[2])?;
    let invalid = || CmdError::msg(format!("invalid expire time in '{name}' command"));
    let ms = match name.as_str() {
        "expire" | "expireat" => n.checked_mul(1000).ok_or_else(invalid)?,
        _ => n,
    };
    let deadline =
        if name.ends_with("at") { ms } else { ms.checked_add(ctx.now as i64).ok_or_else(invalid)? };
    let key = &args[1];
    let Some(entry) = ctx.lookup(key) else {
        ctx.out.int(0);
        return Ok(());
    };
    let current = entry.deadline();
    let allowed = match current {
        None => !xx && !gt,
        Some(cur) => !nx && (!gt || deadline > cur as i64) && (!lt || deadline < cur as i64),
    };
    if !allowed {
        ctx.out.int(0);
        return Ok(());
    }
    if deadline <= ctx.now as i64 {
        ctx.write(key, Effect::Delete);
    } else {
        ctx.write(key, Effect::Expire { deadline: Some(deadline as u64) });
    }
    ctx.out.int(1);
    Ok(())
}

fn ttl(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let now = ctx.now;
    let Some(entry) = ctx.lookup(&args[1]) else {
        ctx.out.int(-2);
        return Ok(());
    };
    let Some(deadline) = entry.deadline() else {
        ctx.out.int(-1);
        return Ok(());
    };
    let left = deadline.saturating_sub(now) as i64;
    let reply = match name.as_str() {
        "ttl" => (left + 500) / 1000,
        "pttl" => left,
        "expiretime" => (deadline / 1000) as i64,
        _ => deadline as i64,
    };
    ctx.out.int(reply);
    Ok(())
}

fn persist(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let has_ttl = ctx.lookup(&args[1]).and_then(|e| e.deadline()).is_some();
    if has_ttl {
        ctx.write(&args[1], Effect::Expire { deadline: None });
    }
    ctx.out.int(has_ttl as i64);
    Ok(())
}

fn keys(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let ks = ctx.store.replica.db(ctx.client.db);
    let found: Vec<&Blob> = ks
        .iter()
        .filter(|(k, e)| {
            e.is_visible() && !e.is_expired(now) && (&args[1][..] == b"*" || glob_match(&args[1], k, false))
        })
        .map(|(k, _)| k)
        .collect();
    let out = &mut *ctx.out;
    out.array(found.len());
    for k in found {
        out.bulk(k);
    }
    Ok(())
}

/// Options shared by SCAN, SSCAN, HSCAN, ZSCAN.
pub struct ScanOptions {
    pub pattern: Option<Bytes>,
    pub count: usize,
    pub kind: Option<String>,
}

pub fn parse_cursor(b: &[u8]) -> Result<usize, CmdError> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|c| c as usize)
        .ok_or_else(|| CmdError::msg("invalid cursor"))
}

pub fn parse_scan_options(args: &[Bytes], allow_type: bool) -> Result<ScanOptions, CmdError> {
    let mut opts = ScanOptions { pattern: None, count: 10, kind: None };
    let mut i = 0;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(CmdError::Syntax);
        }
        if eq_ic(&args[i], "match") {
            opts.pattern = Some(args[i + 1].clone());
        } else if eq_ic(&args[i], "count") {
            let n = arg_i64(&args[i + 1])?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            opts.count = n as usize;
        } else if allow_type && eq_ic(&args[i], "type") {
            opts.kind = Some(String::from_utf8_lossy(&args[i + 1]).to_ascii_lowercase());
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    Ok(opts)
}

/// Walks slot indices downward from the cursor. Tables remove by moving their last element into
/// the hole, so a walk from the top down never misses an element that stays for the whole scan;
/// it may return one twice, which SCAN allows. Returns the next cursor (0 = done).
pub fn scan_slots(slots: usize, cursor: usize, count: usize, mut visit: impl FnMut(usize)) -> usize {
    let mut next = if cursor == 0 || cursor > slots { slots } else { cursor };
    let mut examined = 0;
    while next > 0 && examined < count {
        next -= 1;
        visit(next);
        examined += 1;
    }
    next
}

fn scan(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&args[1])?;
    let opts = parse_scan_options(&args[2..], true)?;
    let now = ctx.now;
    let ks = ctx.store.replica.db(ctx.client.db);
    let mut found: Vec<Blob> = Vec::new();
    let next = scan_slots(ks.slots(), cursor, opts.count, |i| {
        if let Some((k, e)) = ks.get_index(i) {
            let Some(kind) = e.kind() else { return };
            if e.is_expired(now) {
                return;
            }
            if opts.pattern.as_ref().is_some_and(|p| &p[..] != b"*" && !glob_match(p, k, false)) {
                return;
            }
            if opts.kind.as_deref().is_some_and(|t| t != kind.name()) {
                return;
            }
            found.push(k.clone());
        }
    });
    let out = &mut *ctx.out;
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.array(found.len());
    for k in found {
        out.bulk(&k);
    }
    Ok(())
}

fn randomkey(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let ks = ctx.store.replica.db(ctx.client.db);
    let n = ks.slots();
    let mut rng = rand::rng();
    let mut pick = None;
    for _ in 0..64.min(n * 2) {
        let (k, e) = ks.get_index(rng.random_range(0..n)).expect("index in range");
        if e.is_visible() && !e.is_expired(now) {
            pick = Some(k.clone());
            break;
        }
    }
    if pick.is_none() {
        pick = ks.iter().find(|(_, e)| e.is_visible() && !e.is_expired(now)).map(|(k, _)| k.clone());
    }
    match pick {
        Some(k) => ctx.out.bulk(&k),
        None => ctx.out.null(),
    }
    Ok(())
}

/// A string's value for another key: a large one is shared, not copied (values never change in
/// place).
fn value_of(c: &crate::crdt::cell::Cell<crate::crdt::keyspace::StrValue>) -> Value {
    match string_shared(c) {
        Some(b) => Value::from_bytes(&b),
        None => Value::from_slice(&string_value(c)),
    }
}

/// The writes that recreate a key's visible value elsewhere (RENAME, COPY, the *STORE commands).
pub fn recreate(part: &Part, deadline: Option<u64>) -> Vec<Effect> {
    let mut effects = Vec::new();
    match part {
        Part::Str(c) => {
            let ttl = deadline.map(Ttl::At).unwrap_or(Ttl::Clear);
            effects.push(Effect::Assign { value: value_of(c), ttl });
            return effects;
        }
        Part::Hash(h) => effects.push(Effect::HashSet {
            fields: h.fields.iter().map(|(f, c)| (f.clone(), Blob::from_slice(&cell_string(c)))).collect(),
        }),
        Part::Set(s) => effects.push(Effect::SetAdd { members: s.members.keys().cloned().collect() }),
        Part::ZSet(z) => effects
            .push(Effect::ZAdd { members: z.members.iter().map(|(m, zm)| (m.clone(), zm.score)).collect() }),
        Part::Hll(h) => {
            if let Some(regs) = &h.regs {
                let updates =
                    (0..REGISTERS).filter(|&i| regs[i] > 0).map(|i| (i as u16, regs[i])).collect::<Vec<_>>();
                effects.push(Effect::HllAdd { updates });
            }
        }
        Part::List(l) => {
            // Fresh positions for the copy, in order; their dot is filled in by the write.
            let mut items = Vec::with_capacity(l.len());
            let mut prev: Option<Position> = None;
            for reg in l.items.values() {
                let p = position_between(prev.as_ref(), None, Dot::default());
                items.push((p.clone(), l.value_at(reg)));
                prev = Some(p);
            }
            effects.push(Effect::ListInsert { items });
        }
        Part::Stream(s) => {
            for (id, e) in &s.entries {
                effects.push(Effect::StreamAdd { id: *id, fields: e.fields.clone() });
            }
            effects.push(Effect::StreamSetId {
                last: s.last_id(),
                entries_added: Some(s.entries_added()),
                max_deleted: Some(s.max_deleted_id()),
            });
            for (name, g) in &s.groups {
                let p = g.position.value();
                effects.push(Effect::GroupCreate {
                    group: name.clone(),
                    last: g.last_delivered(),
                    entries_read: p.and_then(|p| p.entries_read),
                });
            }
        }
    }
    if let Some(d) = deadline {
        effects.push(Effect::Expire { deadline: Some(d) });
    }
    effects
}

/// Replaces `dst` in database `db` with a copy of `src`'s visible value.
fn copy_value(ctx: &mut Ctx, src_db: usize, src: &[u8], db: usize, dst: &[u8]) -> bool {
    let Some(entry) = ctx.lookup_in(src_db, src) else { return false };
    let deadline = entry.deadline();
    let Some(part) = entry.visible() else { return false };
    let effects = recreate(part, deadline);
    if ctx.lookup_in(db, dst).is_some() {
        ctx.write_in(db, dst, Effect::Delete);
    }
    for e in effects {
        ctx.write_in(db, dst, e);
    }
    copy_local_stream_state(ctx, src_db, src, db, dst);
    true
}

/// Consumer groups' pending entries and consumers are not replicated (they belong to this
/// replica), so RENAME and COPY carry them over by hand.
fn copy_local_stream_state(ctx: &mut Ctx, src_db: usize, src: &[u8], db: usize, dst: &[u8]) {
    let groups = match ctx.store.replica.db(src_db).get(src).and_then(|e| e.visible()) {
        Some(Part::Stream(s)) => s.groups.clone(),
        _ => return,
    };
    if let Some(Part::Stream(d)) = ctx.store.replica.db_mut(db).get_mut(dst).and_then(|e| e.visible_mut()) {
        for (name, g) in groups {
            if let Some(target) = d.groups.get_mut(&name) {
                target.pending = g.pending;
                target.consumers = g.consumers;
                target.delivered = g.delivered;
                target.entries_read = g.entries_read;
            }
        }
    }
}

fn rename(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let nx = eq_ic(&args[0], "renamenx");
    let (src, dst) = (&args[1], &args[2]);
    if ctx.lookup(src).is_none() {
        return Err(CmdError::NoSuchKey);
    }
    if src == dst {
        if nx {
            ctx.out.int(0);
        } else {
            ctx.out.ok();
        }
        return Ok(());
    }
    if nx && ctx.lookup(dst).is_some() {
        ctx.out.int(0);
        return Ok(());
    }
    let db = ctx.db();
    copy_value(ctx, db, src, db, dst);
    ctx.write(src, Effect::Delete);
    if nx {
        ctx.out.int(1);
    } else {
        ctx.out.ok();
    }
    Ok(())
}

fn copy(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let src_db = ctx.db();
    let mut db = src_db;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if eq_ic(&args[i], "replace") {
            replace = true;
            i += 1;
        } else if eq_ic(&args[i], "db") && i + 1 < args.len() {
            let n = arg_i64(&args[i + 1])?;
            if !(0..DATABASES as i64).contains(&n) {
                return Err(CmdError::msg("DB index is out of range"));
            }
            db = n as usize;
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if db == src_db && args[1] == args[2] {
        return Err(CmdError::msg("source and destination objects are the same"));
    }
    if ctx.lookup_in(src_db, &args[1]).is_none() || (!replace && ctx.lookup_in(db, &args[2]).is_some()) {
        ctx.out.int(0);
        return Ok(());
    }
    copy_value(ctx, src_db, &args[1], db, &args[2]);
    ctx.out.int(1);
    Ok(())
}
