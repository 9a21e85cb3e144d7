//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT, and transactions
//! (MULTI, EXEC, DISCARD, WATCH, UNWATCH).

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::flags::*;
use super::{
    arg_i64, cmd, eq_ic, registry, sub_arity_error, unknown_subcommand, CmdError, CmdResult, Command, Ctx,
};
use crate::crdt::replica::DATABASES;
use crate::crdt::Blob;
use crate::resp::Protocol;

#[rustfmt::skip]
pub const COMMANDS: &[Command] = &[
    cmd("ping", -1, FAST | STALE | LOADING, (0, 0, 0), "connection", "Returns the server's liveliness response.", ping),
    cmd("echo", 2, FAST | STALE | LOADING, (0, 0, 0), "connection", "Returns the given string.", echo),
    cmd("hello", -1, FAST | NO_AUTH | STALE | LOADING | TX_CONTROL, (0, 0, 0), "connection", "Handshakes with the server.", hello),
    cmd("auth", -2, FAST | NO_AUTH | STALE | LOADING | TX_CONTROL, (0, 0, 0), "connection", "Authenticates the connection.", auth),
    cmd("select", 2, FAST | LOADING | STALE, (0, 0, 0), "connection", "Changes the selected database.", select),
    cmd("quit", -1, FAST | NO_AUTH | STALE | LOADING | TX_CONTROL | SUBSCRIBED_OK, (0, 0, 0), "connection", "Closes the connection.", quit),
    cmd("reset", 1, FAST | NO_AUTH | STALE | LOADING | TX_CONTROL | SUBSCRIBED_OK, (0, 0, 0), "connection", "Resets the connection.", reset),
    cmd("client", -2, ADMIN | STALE | LOADING, (0, 0, 0), "connection", "A container for client connection commands.", client),
    cmd("multi", 1, FAST | LOADING | STALE | TX_CONTROL, (0, 0, 0), "transactions", "Starts a transaction.", multi),
    cmd("exec", 1, LOADING | STALE | TX_CONTROL, (0, 0, 0), "transactions", "Executes all commands in a transaction.", exec),
    cmd("discard", 1, FAST | LOADING | STALE | TX_CONTROL, (0, 0, 0), "transactions", "Discards a transaction.", discard),
    cmd("watch", -2, FAST | LOADING | STALE | TX_CONTROL, (1, -1, 1), "transactions", "Monitors changes to keys to determine the execution of a transaction.", watch),
    cmd("unwatch", 1, FAST | LOADING | STALE, (0, 0, 0), "transactions", "Forgets about watched keys of a transaction.", unwatch),
];

fn ping(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    match args.len() {
        1 => ctx.out.simple("PONG"),
        2 => ctx.out.bulk(&args[1]),
        _ => return Err(CmdError::Arity("ping".into())),
    }
    Ok(())
}

fn echo(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    ctx.out.bulk(&args[1]);
    Ok(())
}

fn check_password(ctx: &Ctx, user: &[u8], pass: &[u8]) -> Result<(), CmdError> {
    let required = ctx.server.settings.read().requirepass.clone();
    let ok = user == b"default" && required.as_deref().is_none_or(|p| same_password(p.as_bytes(), pass));
    if ok {
        Ok(())
    } else {
        Err(CmdError::Raw("WRONGPASS invalid username-password pair or user is disabled.".into()))
    }
}

/// Compares passwords in time that depends on neither of them: their SHA-256 digests (fixed
/// length, so the length of the password does not show either) compared in constant time, as
/// Redis compares hashed passwords.
pub fn same_password(expected: &[u8], given: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let a = ring::digest::digest(&ring::digest::SHA256, expected);
    let b = ring::digest::digest(&ring::digest::SHA256, given);
    a.as_ref().ct_eq(b.as_ref()).into()
}

fn hello(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut proto = None;
    let mut i = 1;
    if args.len() > 1 {
        let v = arg_i64(&args[1])
            .map_err(|_| CmdError::msg("Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&v) {
            return Err(CmdError::Raw("NOPROTO unsupported protocol version".into()));
        }
        proto = Some(v);
        i = 2;
    }
    let mut name: Option<&Bytes> = None;
    let mut auth: Option<(&Bytes, &Bytes)> = None;
    while i < args.len() {
        if eq_ic(&args[i], "auth") && i + 2 < args.len() {
            auth = Some((&args[i + 1], &args[i + 2]));
            i += 3;
        } else if eq_ic(&args[i], "setname") && i + 1 < args.len() {
            name = Some(&args[i + 1]);
            i += 2;
        } else {
            return Err(CmdError::msg(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            )));
        }
    }
    if let Some((user, pass)) = auth {
        check_password(ctx, user, pass)?;
        ctx.client.authenticated = true;
    }
    if !ctx.client.authenticated {
        return Err(CmdError::Raw("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into()));
    }
    if let Some(n) = name {
        validate_client_name(n)?;
        *ctx.client.info.name.lock() = (!n.is_empty()).then(|| String::from_utf8_lossy(n).into_owned());
    }
    if let Some(v) = proto {
        ctx.out.proto = if v == 3 { Protocol::Resp3 } else { Protocol::Resp2 };
        ctx.client.info.resp.store(v as u8, Ordering::Relaxed);
    }
    let out = &mut *ctx.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(crate::commands::server_info::REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(if out.resp3() { 3 } else { 2 });
    out.bulk(b"id");
    out.int(ctx.client.id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
    Ok(())
}

fn auth(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (user, pass): (&[u8], &[u8]) = match args.len() {
        2 => (b"default", &args[1]),
        3 => (&args[1], &args[2]),
        _ => return Err(CmdError::Syntax),
    };
    if ctx.server.settings.read().requirepass.is_none() && args.len() == 2 {
        return Err(CmdError::msg("AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"));
    }
    check_password(ctx, user, pass)?;
    ctx.client.authenticated = true;
    ctx.out.ok();
    Ok(())
}

fn select(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let db = arg_i64(&args[1])?;
    if !(0..DATABASES as i64).contains(&db) {
        return Err(CmdError::msg("DB index is out of range"));
    }
    ctx.client.select(db as usize);
    ctx.out.ok();
    Ok(())
}

fn quit(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    ctx.client.close = true;
    ctx.out.ok();
    Ok(())
}

fn reset(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    ctx.client.multi = None;
    ctx.client.multi_error = false;
    ctx.client.info.in_multi.store(false, Ordering::Relaxed);
    unwatch_all(ctx);
    {
        let mut hub = ctx.server.pubsub.lock();
        hub.remove_client(ctx.client.id);
    }
    ctx.client.channels.clear();
    ctx.client.patterns.clear();
    ctx.client.info.subscriptions.store(0, Ordering::Relaxed);
    ctx.client.select(0);
    ctx.out.proto = Protocol::Resp2;
    ctx.client.info.resp.store(2, Ordering::Relaxed);
    *ctx.client.info.name.lock() = None;
    ctx.client.authenticated = ctx.server.settings.read().requirepass.is_none();
    ctx.out.simple("RESET");
    Ok(())
}

fn validate_client_name(name: &[u8]) -> Result<(), CmdError> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::msg("Client names cannot contain spaces, newlines or special characters."));
    }
    Ok(())
}

fn client(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match (sub.as_str(), args.len()) {
        ("id", 2) => ctx.out.int(ctx.client.id as i64),
        ("getname", 2) => match ctx.client.info.name.lock().clone() {
            Some(n) => ctx.out.bulk(n.as_bytes()),
            None => ctx.out.null(),
        },
        ("setname", 3) => {
            validate_client_name(&args[2])?;
            *ctx.client.info.name.lock() =
                (!args[2].is_empty()).then(|| String::from_utf8_lossy(&args[2]).into_owned());
            ctx.out.ok();
        }
        ("info", 2) => {
            let line = format!("{}\n", ctx.client.info.describe());
            ctx.out.verbatim(&line);
        }
        ("list", _) => {
            let mut ids: Option<Vec<u64>> = None;
            let mut i = 2;
            while i < args.len() {
                if eq_ic(&args[i], "type") && i + 1 < args.len() {
                    let t = String::from_utf8_lossy(&args[i + 1]).to_ascii_lowercase();
                    if !["normal", "master", "replica", "pubsub"].contains(&t.as_str()) {
                        return Err(CmdError::msg(format!("Unknown client type '{t}'")));
                    }
                    if t != "normal" {
                        ids = Some(vec![]);
                    }
                    i += 2;
                } else if eq_ic(&args[i], "id") && i + 1 < args.len() {
                    let mut v = Vec::new();
                    for a in &args[i + 1..] {
                        let id = arg_i64(a).map_err(|_| CmdError::msg("Invalid client ID"))?;
                        v.push(id as u64);
                    }
                    ids = Some(v);
                    i = args.len();
                } else {
                    return Err(CmdError::Syntax);
                }
            }
            let clients = ctx.server.clients.lock();
            let mut text = String::new();
            for (id, c) in clients.iter() {
                if ids.as_ref().is_none_or(|v| v.contains(id)) {
                    text.push_str(&c.describe());
                    text.push('\n');
                }
            }
            drop(clients);
            ctx.out.verbatim(&text);
        }
        ("kill", n) if n >= 3 => client_kill(ctx, args)?,
        ("setinfo", 4) => {
            let value = String::from_utf8_lossy(&args[3]).into_owned();
            if value.contains(' ') || value.contains('\n') {
                return Err(CmdError::msg(format!(
                    "{} cannot contain spaces, newlines or special characters.",
                    String::from_utf8_lossy(&args[2]).to_ascii_lowercase()
                )));
            }
            if eq_ic(&args[2], "lib-name") {
                *ctx.client.info.lib_name.lock() = Some(value);
            } else if eq_ic(&args[2], "lib-ver") {
                *ctx.client.info.lib_ver.lock() = Some(value);
            } else {
                return Err(CmdError::msg(format!(
                    "Unrecognized option '{}'",
                    String::from_utf8_lossy(&args[2])
                )));
            }
            ctx.out.ok();
        }
        ("no-evict", 3) | ("no-touch", 3) => {
            if eq_ic(&args[2], "on") || eq_ic(&args[2], "off") {
                ctx.out.ok();
            } else {
                return Err(CmdError::Syntax);
            }
        }
        ("reply", 3) => ctx.out.ok(),
        ("help", 2) => {
            let lines = [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ID",
                "    Return the ID of the current connection.",
                "GETNAME",
                "    Return the name of the current connection.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "LIST [TYPE normal|master|replica|pubsub] [ID <id> ...]",
                "    Return information about client connections.",
                "KILL <ip:port> | KILL <option> <value> [...]",
                "    Kill connections (ID, ADDR, LADDR, SKIPME).",
                "SETINFO <LIB-NAME|LIB-VER> <value>",
                "    Set client library name or version.",
                "NO-EVICT (ON|OFF)",
                "    Accepted for compatibility; SyncMesh never evicts.",
                "HELP",
                "    Print this help.",
            ];
            super::reply_help(ctx, &lines);
        }
        (
            "id" | "getname" | "setname" | "info" | "setinfo" | "no-evict" | "no-touch" | "reply" | "help"
            | "kill",
            _,
        ) => return Err(sub_arity_error(args)),
        _ => return Err(unknown_subcommand(args)),
    }
    Ok(())
}

fn client_kill(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let clients: Vec<_> = ctx.server.clients.lock().values().cloned().collect();
    if args.len() == 3 {
        // Old form: CLIENT KILL addr:port
        let addr = String::from_utf8_lossy(&args[2]).into_owned();
        let Some(c) = clients.iter().find(|c| c.addr.to_string() == addr) else {
            return Err(CmdError::msg("No such client"));
        };
        c.kill();
        if c.id == ctx.client.id {
            ctx.client.close = true;
        }
        ctx.out.ok();
        return Ok(());
    }
    let mut skipme = true;
    let mut filters: Vec<(String, String)> = Vec::new();
    let mut i = 2;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(CmdError::Syntax);
        }
        let k = String::from_utf8_lossy(&args[i]).to_ascii_lowercase();
        let v = String::from_utf8_lossy(&args[i + 1]).into_owned();
        match k.as_str() {
            "id" => {
                arg_i64(&args[i + 1]).map_err(|_| CmdError::msg("client-id should be greater than 0"))?;
                filters.push((k, v));
            }
            "addr" | "laddr" | "user" | "type" | "maxage" => filters.push((k, v)),
            "skipme" => {
                skipme = match v.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(CmdError::Syntax),
                }
            }
            _ => return Err(CmdError::Syntax),
        }
        i += 2;
    }
    let mut killed = 0;
    for c in &clients {
        if skipme && c.id == ctx.client.id {
            continue;
        }
        let matches = filters.iter().all(|(k, v)| match k.as_str() {
            "id" => c.id.to_string() == *v,
            "addr" => c.addr.to_string() == *v,
            "laddr" => c.laddr.to_string() == *v,
            "user" => v == "default",
            "type" => v.eq_ignore_ascii_case("normal"),
            "maxage" => v.parse::<u64>().is_ok_and(|age| c.created.elapsed().as_secs() >= age),
            _ => false,
        });
        if matches {
            c.kill();
            if c.id == ctx.client.id {
                ctx.client.close = true;
            }
            killed += 1;
        }
    }
    ctx.out.int(killed);
    Ok(())
}

// ---- transactions ----

fn multi(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::msg("MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(Vec::new());
    ctx.client.multi_error = false;
    ctx.client.multi_keys = (false, false);
    ctx.client.info.in_multi.store(true, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

fn end_multi(ctx: &mut Ctx) -> Option<Vec<Vec<Bytes>>> {
    ctx.client.info.in_multi.store(false, Ordering::Relaxed);
    let queued = ctx.client.multi.take();
    unwatch_all(ctx);
    queued
}

fn exec(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(CmdError::msg("EXEC without MULTI"));
    }
    let failed_to_queue = std::mem::take(&mut ctx.client.multi_error);
    let dirty = ctx.client.watch_dirty.load(Ordering::Acquire);
    let queued = end_multi(ctx).unwrap_or_default();
    if failed_to_queue {
        return Err(CmdError::Raw("EXECABORT Transaction discarded because of previous errors.".into()));
    }
    if dirty {
        ctx.out.null_array();
        return Ok(());
    }
    // The whole transaction runs under the store lock this command already holds: no other
    // client sees a partial state, and its writes reach peers as one update.
    ctx.out.array(queued.len());
    for args in &queued {
        let Some((index, command)) = registry().get(&args[0]) else {
            ctx.out.error(&super::super::server::unknown_command(args));
            continue;
        };
        if let Err(e) = ctx.call(index, command, args) {
            ctx.out.error(&e.to_string());
        }
    }
    Ok(())
}

fn discard(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(CmdError::msg("DISCARD without MULTI"));
    }
    ctx.client.multi_error = false;
    end_multi(ctx);
    ctx.out.ok();
    Ok(())
}

fn watch(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::msg("WATCH inside MULTI is not allowed"));
    }
    let db = ctx.db();
    for key in &args[1..] {
        let k = (db, Blob::from_slice(key));
        if !ctx.client.watched.contains(&k) {
            ctx.store.watch(db, key, &ctx.client.watch_dirty);
            ctx.client.watched.push(k);
        }
    }
    ctx.out.ok();
    Ok(())
}

fn unwatch(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    unwatch_all(ctx);
    ctx.out.ok();
    Ok(())
}

fn unwatch_all(ctx: &mut Ctx) {
    if !ctx.client.watched.is_empty() {
        let keys = std::mem::take(&mut ctx.client.watched);
        ctx.store.unwatch(&keys, &ctx.client.watch_dirty);
    }
    ctx.client.watch_dirty.store(false, Ordering::Release);
}
