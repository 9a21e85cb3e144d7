//! Scripting commands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT, FUNCTION, FCALL, FCALL_RO
//! (the engine is in `crate::scripting`), and SHUTDOWN.

use bytes::Bytes;

use super::flags::*;
use super::{
    arg_i64, cmd, eq_ic, glob_match, sub_arity_error, unknown_subcommand, CmdError, CmdResult, Command, Ctx,
};
use crate::crdt::replica::FUNCTIONS_DB;
use crate::crdt::{Effect, Ttl, Value};
use crate::scripting::{self, busy, functions, Call, Running};

#[rustfmt::skip]
pub const COMMANDS: &[Command] = &[
    cmd("eval", -3, STALE, (0, 0, 0), "scripting", "Executes a server-side Lua script.", eval),
    cmd("evalsha", -3, STALE, (0, 0, 0), "scripting", "Executes a server-side Lua script by SHA1 digest.", evalsha),
    cmd("eval_ro", -3, STALE | READONLY, (0, 0, 0), "scripting", "Executes a read-only server-side Lua script.", eval_ro),
    cmd("evalsha_ro", -3, STALE | READONLY, (0, 0, 0), "scripting", "Executes a read-only server-side Lua script by SHA1 digest.", evalsha_ro),
    cmd("script", -2, STALE, (0, 0, 0), "scripting", "A container for Lua scripts management commands.", script),
    cmd("fcall", -3, STALE, (0, 0, 0), "scripting", "Invokes a function.", fcall),
    cmd("fcall_ro", -3, STALE | READONLY, (0, 0, 0), "scripting", "Invokes a read-only function.", fcall_ro),
    cmd("function", -2, STALE, (0, 0, 0), "scripting", "A container for function commands.", function),
    cmd("shutdown", -1, ADMIN | NO_MULTI | LOADING | STALE, (0, 0, 0), "server", "Stops the replica.", shutdown),
];

/// `numkeys key… arg…`: the keys and the arguments.
fn keys_and_args(args: &[Bytes]) -> Result<(&[Bytes], &[Bytes]), CmdError> {
    let numkeys = arg_i64(&args[2])?;
    if numkeys < 0 {
        return Err(CmdError::msg("Number of keys can't be negative"));
    }
    let numkeys = numkeys as usize;
    if numkeys > args.len() - 3 {
        return Err(CmdError::msg("Number of keys can't be greater than number of args"));
    }
    Ok((&args[3..3 + numkeys], &args[3 + numkeys..]))
}

fn run_eval(ctx: &mut Ctx, args: &[Bytes], by_sha: bool, ro: bool) -> CmdResult {
    let (keys, argv) = keys_and_args(args)?;
    let (sha, f, flags) = if by_sha {
        let sha = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        match ctx.store.scripting.cached_script(sha.as_bytes()) {
            Some((f, flags)) => (sha, f, flags),
            None => return Err(CmdError::Raw("NOSCRIPT No matching script. Please use EVAL.".into())),
        }
    } else {
        ctx.store.scripting.compile_script(&args[1])?
    };
    // A script with a shebang declares whether it writes; without one (Redis's compatibility
    // mode) a write is refused only when the script tries it.
    if flags.shebang && !flags.no_writes {
        if ro {
            return Err(CmdError::msg("Can not execute a script with write flag using *_ro command."));
        }
        if !flags.allow_oom && ctx.server.over_maxmemory() {
            return Err(CmdError::Oom);
        }
    }
    let call = Call {
        kind: Running::Script,
        name: sha,
        read_only: ro || flags.no_writes,
        allow_oom: flags.allow_oom,
    };
    scripting::run(ctx, f, keys, argv, call, args)
}

fn eval(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    run_eval(ctx, args, false, false)
}

fn evalsha(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    run_eval(ctx, args, true, false)
}

fn eval_ro(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    run_eval(ctx, args, false, true)
}

fn evalsha_ro(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    run_eval(ctx, args, true, true)
}

fn flush_mode(args: &[Bytes], what: &str) -> Result<(), CmdError> {
    match args.len() {
        2 => Ok(()),
        3 if eq_ic(&args[2], "async") || eq_ic(&args[2], "sync") => Ok(()),
        _ => Err(CmdError::msg(format!("{what} FLUSH only support SYNC|ASYNC option"))),
    }
}

fn script(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match (sub.as_str(), args.len()) {
        ("load", 3) => {
            let (sha, _, _) = ctx.store.scripting.compile_script(&args[2])?;
            ctx.out.bulk(sha.as_bytes());
        }
        ("exists", n) if n >= 3 => {
            ctx.out.array(n - 2);
            for sha in &args[2..] {
                let known = ctx.store.scripting.has_script(sha);
                ctx.out.int(known as i64);
            }
        }
        ("flush", n) if n <= 3 => {
            flush_mode(args, "SCRIPT")?;
            ctx.store.scripting.flush_scripts();
            ctx.out.ok();
        }
        ("kill", 2) => busy::kill(ctx.server, false, ctx.out),
        ("debug", 3) => {
            return Err(CmdError::msg("SCRIPT DEBUG is not supported: SyncMesh has no script debugger"))
        }
        ("help", 2) => super::reply_help(
            ctx,
            &[
                "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
                "HELP",
                "    Print this help.",
            ],
        ),
        ("load" | "exists" | "flush" | "kill" | "debug" | "help", _) => return Err(sub_arity_error(args)),
        _ => return Err(unknown_subcommand(args)),
    }
    Ok(())
}

// ---- functions ----

/// Compiles what the replicated functions keyspace holds, if it changed.
pub(crate) fn sync_functions(ctx: &mut Ctx) {
    let version = ctx.store.functions_version;
    let store = &mut *ctx.store;
    let (replica, engine) = (&store.replica, &mut store.scripting);
    engine.sync_functions(version, || library_sources(replica));
}

/// The libraries the functions keyspace holds: name → code.
fn library_sources(replica: &crate::crdt::Replica) -> Vec<(String, Bytes)> {
    replica
        .db(FUNCTIONS_DB)
        .iter()
        .filter_map(|(k, e)| match e.visible() {
            Some(crate::crdt::keyspace::Part::Str(c)) => Some((
                String::from_utf8_lossy(k).into_owned(),
                Bytes::copy_from_slice(&crate::crdt::keyspace::string_value(c)),
            )),
            _ => None,
        })
        .collect()
}

fn run_fcall(ctx: &mut Ctx, args: &[Bytes], ro: bool) -> CmdResult {
    sync_functions(ctx);
    let (keys, argv) = keys_and_args(args)?;
    let name = String::from_utf8_lossy(&args[1]).into_owned();
    let Some(f) = ctx.store.scripting.functions.function(&name).cloned() else {
        return Err(CmdError::msg("Function not found"));
    };
    if ro && !f.flags.no_writes {
        return Err(CmdError::msg("Can not execute a script with write flag using *_ro command."));
    }
    if !f.flags.no_writes && !f.flags.allow_oom && ctx.server.over_maxmemory() {
        return Err(CmdError::Oom);
    }
    let call =
        Call { kind: Running::Function, name, read_only: f.flags.no_writes, allow_oom: f.flags.allow_oom };
    scripting::run(ctx, f.func, keys, argv, call, args)
}

fn fcall(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    run_fcall(ctx, args, false)
}

fn fcall_ro(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    run_fcall(ctx, args, true)
}

/// Loads a library and writes its source to the replicated keyspace. `replace` allows an
/// existing library of the same name to go.
fn load_library(ctx: &mut Ctx, code: &[u8], replace: bool) -> Result<String, CmdError> {
    let name = functions::parse_metadata(code)?;
    if !replace && ctx.store.scripting.functions.libs.contains_key(&name) {
        return Err(CmdError::msg(format!("Library '{name}' already exists")));
    }
    let lib = ctx.store.scripting.compile_library(code)?;
    for f in &lib.functions {
        if ctx.store.scripting.functions.owner_of(&f.name, &name).is_some() {
            return Err(CmdError::msg(format!("Function {} already exists", f.name)));
        }
    }
    ctx.write_in(
        FUNCTIONS_DB,
        name.as_bytes(),
        Effect::Assign { value: Value::from_slice(code), ttl: Ttl::Clear },
    );
    let engine = &mut ctx.store.scripting;
    engine.functions.insert(lib);
    Ok(name)
}

/// After a local change to the libraries: the compiled set already reflects it.
fn mark_synced(ctx: &mut Ctx) {
    let version = ctx.store.functions_version;
    let engine = &mut ctx.store.scripting;
    engine.functions.synced = version;
    let counts = (engine.functions.libs.len(), engine.functions.function_count());
    *ctx.server.scripts.counts.lock() = counts;
}

fn delete_library(ctx: &mut Ctx, name: &str) {
    ctx.write_in(FUNCTIONS_DB, name.as_bytes(), Effect::Delete);
    ctx.store.scripting.functions.remove(name);
}

fn flush_libraries(ctx: &mut Ctx) {
    if ctx.store.scripting.functions.libs.is_empty() {
        return;
    }
    ctx.write_in(FUNCTIONS_DB, b"", Effect::Flush);
    ctx.store.scripting.functions = functions::Libraries::default();
}

fn function(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    if sub != "kill" && sub != "stats" && sub != "help" {
        sync_functions(ctx);
    }
    match sub.as_str() {
        "load" => {
            let (replace, code) = match args.len() {
                3 => (false, &args[2]),
                4 if eq_ic(&args[2], "replace") => (true, &args[3]),
                4 => {
                    return Err(CmdError::msg(format!(
                        "Unknown option given: {}",
                        String::from_utf8_lossy(&args[2])
                    )))
                }
                _ => return Err(sub_arity_error(args)),
            };
            let name = load_library(ctx, code, replace)?;
            mark_synced(ctx);
            ctx.out.bulk(name.as_bytes());
        }
        "delete" => {
            if args.len() != 3 {
                return Err(sub_arity_error(args));
            }
            let name = String::from_utf8_lossy(&args[2]).into_owned();
            if !ctx.store.scripting.functions.libs.contains_key(&name) {
                return Err(CmdError::msg("Library not found"));
            }
            delete_library(ctx, &name);
            mark_synced(ctx);
            ctx.out.ok();
        }
        "flush" => {
            if args.len() > 3 {
                return Err(sub_arity_error(args));
            }
            if args.len() == 3 && !eq_ic(&args[2], "async") && !eq_ic(&args[2], "sync") {
                return Err(CmdError::msg("FUNCTION FLUSH only supports SYNC|ASYNC option"));
            }
            flush_libraries(ctx);
            mark_synced(ctx);
            ctx.out.ok();
        }
        "list" => function_list(ctx, args)?,
        "dump" => {
            if args.len() != 2 {
                return Err(sub_arity_error(args));
            }
            let libs = &ctx.store.scripting.functions.libs;
            let codes: Vec<&[u8]> = libs.values().map(|l| &l.code[..]).collect();
            let payload = functions::dump(&codes);
            ctx.out.bulk(&payload);
        }
        "restore" => function_restore(ctx, args)?,
        "stats" => {
            if args.len() != 2 {
                return Err(sub_arity_error(args));
            }
            busy::function_stats(ctx.server, ctx.out);
        }
        "kill" => {
            if args.len() != 2 {
                return Err(sub_arity_error(args));
            }
            busy::kill(ctx.server, true, ctx.out);
        }
        "help" => super::reply_help(ctx, FUNCTION_HELP),
        _ => return Err(unknown_subcommand(args)),
    }
    Ok(())
}

fn function_list(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (mut pattern, mut with_code) = (None, false);
    let mut i = 2;
    while i < args.len() {
        if eq_ic(&args[i], "withcode") && !with_code {
            with_code = true;
            i += 1;
        } else if eq_ic(&args[i], "libraryname") && pattern.is_none() {
            let Some(p) = args.get(i + 1) else {
                return Err(CmdError::msg("library name argument was not given"));
            };
            pattern = Some(p.clone());
            i += 2;
        } else {
            return Err(CmdError::msg(format!("Unknown argument {}", String::from_utf8_lossy(&args[i]))));
        }
    }
    let libs: Vec<&functions::Library> = ctx
        .store
        .scripting
        .functions
        .libs
        .values()
        .filter(|l| pattern.as_ref().is_none_or(|p| glob_match(p, l.name.as_bytes(), false)))
        .collect();
    let out = &mut *ctx.out;
    out.array(libs.len());
    for lib in libs {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(lib.name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(lib.functions.len());
        for f in &lib.functions {
            out.map(3);
            out.bulk(b"name");
            out.bulk(f.name.as_bytes());
            out.bulk(b"description");
            match &f.description {
                Some(d) => out.bulk(d.as_bytes()),
                None => out.null(),
            }
            out.bulk(b"flags");
            let names = f.flags.names();
            out.set(names.len());
            for n in names {
                out.bulk(n.as_bytes());
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&lib.code);
        }
    }
    Ok(())
}

fn function_restore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    #[derive(PartialEq)]
    enum Policy {
        Append,
        Replace,
        Flush,
    }
    let policy = match args.len() {
        3 => Policy::Append,
        4 if eq_ic(&args[3], "append") => Policy::Append,
        4 if eq_ic(&args[3], "replace") => Policy::Replace,
        4 if eq_ic(&args[3], "flush") => Policy::Flush,
        4 => {
            return Err(CmdError::msg(
                "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ))
        }
        _ => return Err(sub_arity_error(args)),
    };
    let codes = functions::parse_dump(&args[2])?;
    // Compile everything first: a payload that does not load changes nothing.
    let mut libs = Vec::new();
    for code in &codes {
        libs.push(ctx.store.scripting.compile_library(code)?);
    }
    let existing = &ctx.store.scripting.functions;
    for lib in &libs {
        if policy == Policy::Append && existing.libs.contains_key(&lib.name) {
            return Err(CmdError::msg(format!("Library {} already exists", lib.name)));
        }
        if policy != Policy::Flush {
            for f in &lib.functions {
                if let Some(owner) = existing.owner_of(&f.name, &lib.name) {
                    if !libs.iter().any(|l| l.name == owner) || policy == Policy::Append {
                        return Err(CmdError::msg(format!("Function {} already exists", f.name)));
                    }
                }
            }
        }
    }
    if policy == Policy::Flush {
        flush_libraries(ctx);
    }
    for lib in libs {
        ctx.write_in(
            FUNCTIONS_DB,
            lib.name.as_bytes(),
            Effect::Assign { value: Value::from_slice(&lib.code), ttl: Ttl::Clear },
        );
        ctx.store.scripting.functions.insert(lib);
    }
    mark_synced(ctx);
    ctx.out.ok();
    Ok(())
}

const FUNCTION_HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]: stops the replica (the data directory's log is closed
/// as on SIGTERM). Like Redis, it does not reply when it succeeds.
fn shutdown(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    for a in &args[1..] {
        let ok = ["nosave", "save", "now", "force", "abort"].iter().any(|o| eq_ic(a, o));
        if !ok {
            return Err(CmdError::Syntax);
        }
    }
    if args[1..].iter().any(|a| eq_ic(a, "abort")) {
        return Err(CmdError::msg("No shutdown in progress."));
    }
    tracing::info!(client = ctx.client.id, "SHUTDOWN requested by a client");
    let _ = ctx.server.shutdown.send(true);
    ctx.client.close = true;
    Ok(())
}
