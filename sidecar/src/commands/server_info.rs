//! Server commands: INFO, DBSIZE, TIME, COMMAND, CONFIG, MEMORY, OBJECT, FLUSHDB, FLUSHALL,
//! LASTSAVE, SAVE, BGSAVE, BGREWRITEAOF, and SyncMesh's own SYNCMESH.DIGEST and SYNCMESH.PEERS.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::flags::*;
use super::{
    arg_i64, cmd, eq_ic, glob_match, registry, sub_arity_error, unknown_subcommand, CmdError, CmdResult,
    Command, Ctx,
};
use crate::config::parse_memory;
use crate::crdt::keyspace::{cell_string, string_value, Part};
use crate::crdt::replica::DATABASES;
use crate::crdt::Effect;
use crate::server::{allocated_bytes, resident_bytes, unix_ms};

/// The Redis version SyncMesh reports to clients (the command set it implements).
pub const REDIS_VERSION: &str = "7.0.0";

#[rustfmt::skip]
pub const COMMANDS: &[Command] = &[
    cmd("info", -1, LOADING | STALE, (0, 0, 0), "server", "Returns information and statistics about the server.", info),
    cmd("dbsize", 1, READONLY | FAST, (0, 0, 0), "server", "Returns the number of keys in the database.", dbsize),
    cmd("time", 1, LOADING | STALE | FAST, (0, 0, 0), "server", "Returns the server time.", time),
    cmd("lastsave", 1, LOADING | STALE | FAST, (0, 0, 0), "server", "Returns the Unix timestamp of the last successful save to disk.", lastsave),
    cmd("save", 1, ADMIN | NO_MULTI, (0, 0, 0), "server", "Synchronously saves the dataset to disk (a snapshot of the data directory).", save),
    cmd("bgsave", -1, ADMIN | NO_MULTI, (0, 0, 0), "server", "Asynchronously saves the dataset to disk (a snapshot of the data directory).", bgsave),
    cmd("bgrewriteaof", 1, ADMIN | NO_MULTI, (0, 0, 0), "server", "Asynchronously compacts the append-only log into a snapshot.", bgrewriteaof),
    cmd("command", -1, LOADING | STALE, (0, 0, 0), "server", "Returns detailed information about all commands.", command),
    cmd("config", -2, ADMIN | LOADING | STALE, (0, 0, 0), "server", "A container for server configuration commands.", config),
    cmd("memory", -2, READONLY, (0, 0, 0), "server", "A container for memory diagnostics commands.", memory),
    cmd("object", -2, READONLY, (2, 2, 1), "generic", "A container for object introspection commands.", object),
    cmd("flushdb", -1, WRITE, (0, 0, 0), "server", "Removes all keys from the current database.", flushdb),
    cmd("flushall", -1, WRITE, (0, 0, 0), "server", "Removes all keys from all databases.", flushall),
    cmd("syncmesh.digest", 1, READONLY, (0, 0, 0), "syncmesh", "Returns a digest of the visible keyspace; equal on converged replicas.", digest),
    cmd("syncmesh.strong", -2, READONLY, (0, 0, 0), "syncmesh", "Strong keys: DIGEST returns a voter's applied index and a fingerprint of its strong keys' state.", strong),
    cmd("wait", 3, 0, (0, 0, 0), "generic", "Blocks until the mesh peers have applied this connection's writes, or the timeout.", wait),
    cmd("syncmesh.peers", 1, READONLY, (0, 0, 0), "syncmesh", "Returns the mesh peers with their state and lag.", peers),
    cmd("syncmesh.unquarantine", 2, ADMIN, (0, 0, 0), "syncmesh", "Lets quarantined mesh members connect again.", unquarantine),
];

fn dbsize(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let n = ctx.store.replica.db(ctx.db()).len();
    ctx.out.int(n as i64);
    Ok(())
}

fn time(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk_int(now.as_secs() as i64);
    ctx.out.bulk_int(now.subsec_micros() as i64);
    Ok(())
}

/// The last successful snapshot of the data directory (the start of the replica before the
/// first, and always without a data directory), as Redis reports its last save.
fn lastsave(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let t = match &ctx.server.storage_status {
        Some(st) => st.last_save_unix.load(Ordering::Relaxed),
        None => (unix_ms() - ctx.server.started.elapsed().as_millis() as u64) / 1000,
    };
    ctx.out.int(t as i64);
    Ok(())
}

/// Starts a rewrite of the data directory (snapshot + new log segment). The state is copied
/// here, under the store lock; the snapshot is written on a blocking thread.
fn begin_rewrite(ctx: &mut Ctx) -> Result<Option<crate::storage::RewriteJob>, CmdError> {
    ctx.store.begin_rewrite().map_err(CmdError::msg)
}

fn bgrewriteaof(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    match begin_rewrite(ctx)? {
        Some(job) => {
            tokio::task::spawn_blocking(move || job.run());
            ctx.out.simple("Background append only file rewriting started");
        }
        None => return Err(CmdError::msg("Background append only file rewriting already in progress")),
    }
    Ok(())
}

fn bgsave(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() > 2 || (args.len() == 2 && !eq_ic(&args[1], "schedule")) {
        return Err(CmdError::Syntax);
    }
    match begin_rewrite(ctx)? {
        Some(job) => {
            tokio::task::spawn_blocking(move || job.run());
            ctx.out.simple("Background saving started");
        }
        None if args.len() == 2 => ctx.out.simple("Background saving scheduled"),
        None => return Err(CmdError::msg("Background save already in progress")),
    }
    Ok(())
}

/// Writes the snapshot before replying, holding the store lock as Redis's SAVE blocks the
/// server: meant for tests and maintenance, not for traffic.
fn save(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    match begin_rewrite(ctx)? {
        Some(job) => job.run().map_err(|e| CmdError::msg(format!("{e}")))?,
        None => return Err(CmdError::msg("Background save already in progress")),
    }
    ctx.out.ok();
    Ok(())
}

fn flush_args(args: &[Bytes]) -> Result<(), CmdError> {
    match args.len() {
        1 => Ok(()),
        2 if eq_ic(&args[1], "async") || eq_ic(&args[1], "sync") => Ok(()),
        _ => Err(CmdError::Syntax),
    }
}

fn flushdb(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    flush_args(args)?;
    let db = ctx.db();
    if !ctx.store.replica.db(db).is_empty() {
        ctx.write_in(db, b"", Effect::Flush);
    }
    ctx.store.touch_db(Some(db));
    ctx.out.ok();
    Ok(())
}

fn flushall(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    flush_args(args)?;
    for db in 0..DATABASES {
        if ctx.store.replica.db(db).slots() > 0 {
            ctx.write_in(db, b"", Effect::Flush);
        }
    }
    ctx.store.touch_db(None);
    ctx.out.ok();
    Ok(())
}

fn digest(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let d = ctx.store.replica.digest(ctx.now);
    ctx.out.bulk(format!("{d:032x}").as_bytes());
    Ok(())
}

/// `SYNCMESH.STRONG DIGEST`: `<applied index>:<fingerprint>` of this voter's strong keys; two
/// voters that applied the same entries answer the same.
fn strong(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(strong) = &ctx.server.strong else {
        return Err(CmdError::msg("strong keys are off on this replica (--strong-keys)"));
    };
    if !eq_ic(&args[1], "digest") || args.len() != 2 {
        return Err(super::unknown_subcommand(args));
    }
    let Some(group) = strong.group() else {
        return Err(CmdError::msg("this replica is not a strong-keys voter: it holds no strong keys"));
    };
    // try_lock: inside a strong transaction the machine is this command's own caller.
    let Some(st) = group.shared.state.try_lock() else {
        return Err(CmdError::msg("the strong keys' state machine is busy"));
    };
    let applied = st.last_applied.map(|l| l.index).unwrap_or(0);
    let text = format!("{applied}:{}", st.machine.fingerprint());
    drop(st);
    ctx.out.bulk(text.as_bytes());
    Ok(())
}

fn peers(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let list = match &ctx.server.mesh {
        Some(mesh) => mesh.status(|ack| ctx.store.log.lag(ack), ctx.now),
        None => vec![],
    };
    ctx.out.array(list.len());
    for p in list {
        ctx.out.map(6 + p.reason.is_some() as usize);
        ctx.out.bulk(b"id");
        ctx.out.bulk(p.id.as_bytes());
        ctx.out.bulk(b"state");
        ctx.out.bulk(p.state.as_bytes());
        ctx.out.bulk(b"addr");
        match &p.addr {
            Some(a) => ctx.out.bulk(a.as_bytes()),
            None => ctx.out.null(),
        }
        ctx.out.bulk(b"ops_lag");
        ctx.out.int(p.ops_lag as i64);
        ctx.out.bulk(b"time_lag_ms");
        ctx.out.int(p.time_lag_ms as i64);
        ctx.out.bulk(b"connected_secs");
        ctx.out.int(p.connected_secs.map(|s| s as i64).unwrap_or(-1));
        if let Some(reason) = &p.reason {
            ctx.out.bulk(b"reason");
            ctx.out.bulk(reason.as_bytes());
        }
    }
    Ok(())
}

/// SYNCMESH.UNQUARANTINE id|ALL: lets quarantined members connect again (after a person found
/// out why they were refused, see docs/durability.md); replies how many were released.
fn unquarantine(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(mesh) = &ctx.server.mesh else {
        ctx.out.int(0);
        return Ok(());
    };
    let which = if args[1].eq_ignore_ascii_case(b"all") {
        None
    } else {
        let id = std::str::from_utf8(&args[1])
            .ok()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .ok_or_else(|| {
                CmdError::msg("the member id is 16 hexadecimal digits, as SYNCMESH.PEERS shows it, or ALL")
            })?;
        Some(id)
    };
    ctx.out.int(mesh.release(which) as i64);
    Ok(())
}

/// WAIT numreplicas timeout: counts mesh peers that have applied this connection's last write.
fn wait(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = arg_i64(&args[1])?;
    let timeout =
        arg_i64(&args[2]).map_err(|_| CmdError::msg("timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return Err(CmdError::msg("timeout is negative"));
    }
    let Some(mesh) = &ctx.server.mesh else {
        ctx.out.int(0);
        return Ok(());
    };
    let count = match ctx.client.last_write {
        Some(dot) => mesh.acked_count(dot),
        None => mesh.member_count(),
    };
    if count as i64 >= n || ctx.client.multi.is_some() || ctx.client.last_write.is_none() {
        ctx.out.int(count as i64);
        return Ok(());
    }
    let deadline = (timeout > 0).then(|| ctx.now + timeout as u64);
    ctx.client.wait_for = Some((ctx.client.last_write.expect("checked"), n.max(0) as usize, deadline));
    Ok(())
}

/// Entries that hold only metadata (deleted keys whose tombstones await causal stability).
pub fn tombstones(ctx: &Ctx) -> usize {
    (0..DATABASES).map(|db| ctx.store.replica.db(db).slots() - ctx.store.replica.db(db).len()).sum()
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2}G", b / 1024.0 / 1024.0 / 1024.0)
    }
}

/// The text of `INFO`, for the sections asked (empty = default).
pub fn info_text(ctx: &mut Ctx, sections: &[String]) -> String {
    let all =
        sections.is_empty() || sections.iter().any(|s| s == "all" || s == "default" || s == "everything");
    let want = |name: &str| all || sections.iter().any(|s| s == name);
    let server = ctx.server;
    let mut s = String::new();
    if want("server") {
        let _ = write!(
            s,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nsyncmesh_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nrun_id:{:016x}{:024x}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nexecutable:{}\r\nconfig_file:\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            server.replica_id,
            0,
            server.config.port,
            unix_ms() * 1000,
            server.started.elapsed().as_secs(),
            server.started.elapsed().as_secs() / 86400,
            std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
        );
    }
    if want("clients") {
        let _ = write!(
            s,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\ntracking_clients:0\r\n\r\n",
            server.client_count(),
            server.settings.read().maxclients,
            ctx.store.blocked_clients()
        );
    }
    if want("memory") {
        let used = allocated_bytes();
        let rss = resident_bytes();
        let max = server.settings.read().maxmemory;
        let _ = write!(
            s,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nmaxmemory:{max}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nmem_allocator:jemalloc\r\nlazyfree_pending_objects:{}\r\n",
            human(used),
            human(rss),
            human(max),
            server.settings.read().maxmemory_policy,
            server.lazyfree.pending(),
        );
        // One Lua state runs both scripts and function libraries.
        super::scripting::sync_functions(ctx);
        let engine = &ctx.store.scripting;
        let lua = engine.used_memory();
        let _ = write!(
            s,
            "used_memory_lua:{lua}\r\nused_memory_lua_human:{}\r\nused_memory_vm_eval:{lua}\r\nused_memory_vm_total:{lua}\r\nnumber_of_cached_scripts:{}\r\nnumber_of_functions:{}\r\nnumber_of_libraries:{}\r\n\r\n",
            human(lua as u64),
            engine.scripts_cached(),
            engine.functions.function_count(),
            engine.functions.libs.len(),
        );
    }
    if want("persistence") {
        persistence_info(ctx, &mut s);
    }
    if want("stats") {
        let st = &server.stats;
        let (pubsub_channels, pubsub_patterns) = {
            let hub = server.pubsub.lock();
            (hub.channels(None).len(), hub.numpat())
        };
        let _ = write!(
            s,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\nlazyfreed_objects:{}\r\n\r\n",
            st.connections.load(Ordering::Relaxed),
            st.commands.load(Ordering::Relaxed),
            st.net_input.load(Ordering::Relaxed),
            st.net_output.load(Ordering::Relaxed),
            st.rejected.load(Ordering::Relaxed),
            ctx.store.stats.expired_keys,
            ctx.store.stats.keyspace_hits,
            ctx.store.stats.keyspace_misses,
            pubsub_channels,
            pubsub_patterns,
            server.lazyfree.freed(),
        );
    }
    if want("replication") {
        // Every replica is a primary of its own data; mesh peers are not Redis replicas (INFO
        // mesh lists them). Dapr refuses locks with connected_slaves > 0 and sends
        // WAIT <connected_slaves>: see docs/scripting.md.
        let _ = write!(
            s,
            "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:{:016x}{:024x}\r\nmaster_replid2:{}\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:0\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n\r\n",
            server.replica_id,
            0,
            "0".repeat(40),
        );
    }
    if want("mesh") {
        let vv: Vec<String> =
            ctx.store.replica.version_vector().iter().map(|(r, t)| format!("{r:016x}={}", t.0)).collect();
        let peers =
            server.mesh.as_ref().map(|m| m.status(|ack| ctx.store.log.lag(ack), ctx.now)).unwrap_or_default();
        let connected = peers.iter().filter(|p| p.state == "connected").count();
        let _ = write!(
            s,
            "# Mesh\r\nreplica_id:{:016x}\r\ndatabase:{}\r\nmesh_enabled:{}\r\nmesh_port:{}\r\nmesh_peers:{}\r\nmesh_peers_connected:{}\r\ntombstones_pending_gc:{}\r\nreplication_log_entries:{}\r\nreplication_log_bytes:{}\r\nmesh_pubsub_dropped:{}\r\nmesh_quarantined_peers:{}\r\nversion_vector:{}\r\n",
            server.replica_id,
            server.config.database,
            server.mesh.is_some() as u8,
            server.config.mesh_port,
            peers.iter().filter(|p| p.state != "retired" && p.state != "quarantined").count(),
            connected,
            tombstones(ctx),
            ctx.store.log.len(),
            ctx.store.log.bytes(),
            server.mesh.as_ref().map(|m| m.control_dropped.load(Ordering::Relaxed)).unwrap_or(0),
            server.mesh.as_ref().map(|m| m.quarantined_count()).unwrap_or(0),
            vv.join(","),
        );
        for (i, p) in peers.iter().enumerate() {
            let _ = write!(
                s,
                "peer{i}:id={},state={},addr={},ops_lag={},time_lag_ms={}\r\n",
                p.id,
                p.state,
                p.addr.as_deref().unwrap_or(""),
                p.ops_lag,
                p.time_lag_ms
            );
        }
        s.push_str("\r\n");
    }
    if let Some(strong) = server.strong.as_ref().filter(|_| want("strong")) {
        s.push_str(&strong.info());
        s.push_str("\r\n");
    }
    if want("keyspace") {
        s.push_str("# Keyspace\r\n");
        for db in 0..DATABASES {
            let ks = ctx.store.replica.db(db);
            if !ks.is_empty() {
                let _ = write!(s, "db{db}:keys={},expires={},avg_ttl=0\r\n", ks.len(), ks.expiring_len());
            }
        }
        s.push_str("\r\n");
    }
    if s.ends_with("\r\n\r\n") {
        s.truncate(s.len() - 2);
    }
    s
}

/// `# Persistence`, with Redis's field names where the meaning carries over: the snapshot of
/// the data directory stands for the RDB file and the log segments for the AOF.
fn persistence_info(ctx: &mut Ctx, s: &mut String) {
    let (Some(st), Some(storage)) = (&ctx.server.storage_status, ctx.store.storage.as_ref()) else {
        let _ = write!(
            s,
            "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:0\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\n\r\n",
            ctx.store.stats.writes
        );
        return;
    };
    let ok = |b: bool| if b { "ok" } else { "err" };
    let in_progress = st.rewrite_in_progress.load(Ordering::Relaxed) as u8;
    let durability = &storage.durability;
    let _ = write!(
        s,
        "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{in_progress}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\naof_enabled:1\r\naof_rewrite_in_progress:{in_progress}\r\naof_rewrite_scheduled:0\r\naof_last_rewrite_time_sec:{}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\naof_last_write_status:{}\r\naof_current_size:{}\r\naof_base_size:{}\r\naof_buffer_length:{}\r\naof_fsync_policy:{}\r\naof_records_written:{}\r\naof_records_fsynced:{}\r\naof_dir:{}\r\n\r\n",
        st.changes_since_save.load(Ordering::Relaxed),
        st.last_save_unix.load(Ordering::Relaxed),
        ok(st.last_rewrite_ok.load(Ordering::Relaxed)),
        st.last_rewrite_secs.load(Ordering::Relaxed),
        ok(st.last_rewrite_ok.load(Ordering::Relaxed)),
        st.rewrites.load(Ordering::Relaxed),
        ok(!st.write_failed.load(Ordering::Relaxed) && !durability.failed.load(Ordering::Relaxed)),
        st.log_size.load(Ordering::Relaxed) + st.base_size.load(Ordering::Relaxed),
        st.base_size.load(Ordering::Relaxed),
        storage.buffered(),
        storage.policy().as_str(),
        storage.appended(),
        durability.synced(),
        storage.dir().display(),
    );
}

fn info(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sections: Vec<String> =
        args[1..].iter().map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).collect();
    let text = info_text(ctx, &sections);
    ctx.out.verbatim(&text);
    Ok(())
}

fn command_info(ctx: &mut Ctx, c: &Command) {
    let out = &mut *ctx.out;
    out.array(10);
    out.bulk(c.name.as_bytes());
    out.int(c.arity as i64);
    let flags = c.flag_names();
    out.set(flags.len());
    for f in flags {
        out.simple(f);
    }
    out.int(c.first_key as i64);
    out.int(c.last_key as i64);
    out.int(c.step as i64);
    out.set(1);
    out.simple(&format!("@{}", c.group));
    out.set(0);
    out.array(0);
    out.array(0);
}

fn command(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let reg = registry();
    if args.len() == 1 {
        ctx.out.array(reg.commands.len());
        for c in &reg.commands {
            command_info(ctx, c);
        }
        return Ok(());
    }
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match sub.as_str() {
        "count" if args.len() == 2 => ctx.out.int(reg.commands.len() as i64),
        "list" => {
            let mut names: Vec<&str> = reg.commands.iter().map(|c| c.name).collect();
            if args.len() == 5 && eq_ic(&args[2], "filterby") {
                let v = &args[4];
                if eq_ic(&args[3], "pattern") {
                    names.retain(|n| glob_match(v, n.as_bytes(), true));
                } else if eq_ic(&args[3], "aclcat") {
                    let cat = String::from_utf8_lossy(v).to_ascii_lowercase();
                    names.retain(|n| reg.get(n.as_bytes()).is_some_and(|(_, c)| c.group == cat));
                } else if !eq_ic(&args[3], "module") {
                    return Err(CmdError::Syntax);
                } else {
                    names.clear();
                }
            } else if args.len() != 2 {
                return Err(CmdError::Syntax);
            }
            ctx.out.array(names.len());
            for n in names {
                ctx.out.bulk(n.as_bytes());
            }
        }
        "info" => {
            if args.len() == 2 {
                ctx.out.array(reg.commands.len());
                for c in &reg.commands {
                    command_info(ctx, c);
                }
            } else {
                ctx.out.array(args.len() - 2);
                for name in &args[2..] {
                    match reg.get(name) {
                        Some((_, c)) => command_info(ctx, c),
                        None => ctx.out.null_array(),
                    }
                }
            }
        }
        "docs" => {
            let list: Vec<&Command> = if args.len() == 2 {
                reg.commands.to_vec()
            } else {
                args[2..].iter().filter_map(|n| reg.get(n).map(|(_, c)| c)).collect()
            };
            ctx.out.map(list.len());
            for c in list {
                ctx.out.bulk(c.name.as_bytes());
                ctx.out.map(3);
                ctx.out.bulk(b"summary");
                ctx.out.bulk(c.summary.as_bytes());
                ctx.out.bulk(b"since");
                ctx.out.bulk(b"1.0.0");
                ctx.out.bulk(b"group");
                ctx.out.bulk(c.group.as_bytes());
            }
        }
        "getkeys" if args.len() >= 4 => {
            let Some((_, c)) = reg.get(&args[2]) else {
                return Err(CmdError::msg("Invalid command specified"));
            };
            let cargs = &args[2..];
            if !c.arity_ok(cargs.len()) {
                return Err(CmdError::msg("Invalid number of arguments specified for command"));
            }
            let keys = super::key_args(c, cargs)?;
            if keys.is_empty() {
                return Err(CmdError::msg("The command has no key arguments"));
            }
            ctx.out.array(keys.len());
            for k in keys {
                ctx.out.bulk(k);
            }
        }
        "help" => {
            super::reply_help(ctx, &["COMMAND [COUNT|DOCS|GETKEYS|INFO|LIST|HELP]"]);
        }
        "count" | "getkeys" => return Err(sub_arity_error(args)),
        _ => return Err(unknown_subcommand(args)),
    }
    Ok(())
}

/// The parameters `CONFIG GET` knows, with their current values.
fn config_params(ctx: &Ctx) -> Vec<(&'static str, String)> {
    let st = ctx.server.settings.read();
    let cfg = &ctx.server.config;
    vec![
        ("maxmemory", st.maxmemory.to_string()),
        ("maxclients", st.maxclients.to_string()),
        ("requirepass", st.requirepass.clone().unwrap_or_default()),
        ("timeout", st.timeout.to_string()),
        ("appendonly", if cfg.data_dir.is_some() { "yes" } else { "no" }.to_string()),
        ("appendfsync", st.appendfsync.clone()),
        ("save", String::new()),
        ("databases", DATABASES.to_string()),
        ("port", cfg.port.to_string()),
        ("bind", cfg.bind.join(" ")),
        ("maxmemory-policy", st.maxmemory_policy.clone()),
        ("notify-keyspace-events", st.notify_keyspace_events.clone()),
        ("proto-max-bulk-len", ctx.server.limits.proto_max_bulk_len().to_string()),
        ("client-query-buffer-limit", ctx.server.limits.query_buffer().to_string()),
        ("protected-mode", yes_no(st.protected_mode)),
        ("lazyfree-lazy-user-del", yes_no(st.lazyfree_lazy_user_del)),
        ("hz", "10".to_string()),
        (
            "dir",
            cfg.data_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| {
                std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default()
            }),
        ),
        ("dbfilename", "dump.rdb".to_string()),
        ("slowlog-log-slower-than", "10000".to_string()),
        ("slowlog-max-len", "128".to_string()),
        ("lua-time-limit", ctx.server.scripts.threshold_ms().to_string()),
        ("busy-reply-threshold", ctx.server.scripts.threshold_ms().to_string()),
        ("cluster-enabled", "no".to_string()),
        ("client-output-buffer-limit", ctx.server.limits.output_config()),
    ]
}

fn yes_no(on: bool) -> String {
    if on { "yes" } else { "no" }.to_string()
}

/// A boolean setting as Redis parses it.
fn parse_yes_no(value: &str) -> Result<bool, &'static str> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'"),
    }
}

fn config(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match sub.as_str() {
        "get" => {
            if args.len() < 3 {
                return Err(sub_arity_error(args));
            }
            let params = config_params(ctx);
            let mut matched: Vec<&(&str, String)> = Vec::new();
            for pattern in &args[2..] {
                for p in &params {
                    if glob_match(pattern, p.0.as_bytes(), true) && !matched.iter().any(|m| m.0 == p.0) {
                        matched.push(p);
                    }
                }
            }
            ctx.out.map(matched.len());
            for (k, v) in matched {
                ctx.out.bulk(k.as_bytes());
                ctx.out.bulk(v.as_bytes());
            }
        }
        "set" => {
            if args.len() < 4 || !args.len().is_multiple_of(2) {
                return Err(sub_arity_error(args));
            }
            for pair in args[2..].chunks(2) {
                config_set(ctx, &pair[0], &pair[1])?;
            }
            ctx.out.ok();
        }
        "resetstat" if args.len() == 2 => ctx.out.ok(),
        "rewrite" if args.len() == 2 => {
            return Err(CmdError::msg("The server is running without a config file"))
        }
        "help" => {
            super::reply_help(ctx, &["CONFIG <GET|SET|RESETSTAT|REWRITE|HELP>"]);
        }
        "resetstat" | "rewrite" => return Err(sub_arity_error(args)),
        _ => return Err(unknown_subcommand(args)),
    }
    Ok(())
}

fn config_set(ctx: &mut Ctx, name: &[u8], value: &[u8]) -> CmdResult {
    let name_s = String::from_utf8_lossy(name).to_ascii_lowercase();
    let value_s = String::from_utf8_lossy(value).into_owned();
    let invalid = |reason: &str| {
        CmdError::msg(format!("CONFIG SET failed (possibly related to argument '{name_s}') - {reason}"))
    };
    let mut st = ctx.server.settings.write();
    match name_s.as_str() {
        "maxmemory" => st.maxmemory = parse_memory(&value_s).map_err(|e| invalid(&e))?,
        "maxclients" => {
            st.maxclients =
                value_s.parse().map_err(|_| invalid("argument couldn't be parsed into an integer"))?
        }
        "timeout" => {
            st.timeout =
                value_s.parse().map_err(|_| invalid("argument couldn't be parsed into an integer"))?
        }
        "requirepass" => st.requirepass = (!value_s.is_empty()).then_some(value_s),
        "appendfsync" => {
            if !["always", "everysec", "no"].contains(&value_s.as_str()) {
                return Err(invalid("argument(s) must be one of the following: always, everysec, no"));
            }
            if value_s != st.appendfsync {
                // The fsync thread and the log's waiters are set up for the policy at start.
                return Err(invalid("appendfsync is fixed at start (--appendfsync)"));
            }
        }
        "maxmemory-policy" => {
            let ok = [
                "noeviction",
                "allkeys-lru",
                "allkeys-lfu",
                "allkeys-random",
                "volatile-lru",
                "volatile-lfu",
                "volatile-random",
                "volatile-ttl",
            ];
            if !ok.contains(&value_s.as_str()) {
                return Err(invalid("argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"));
            }
            st.maxmemory_policy = value_s;
        }
        "notify-keyspace-events" => st.notify_keyspace_events = value_s,
        "client-output-buffer-limit" => ctx.server.limits.set_output(&value_s).map_err(invalid)?,
        "client-query-buffer-limit" => ctx.server.limits.set_query_buffer(&value_s).map_err(invalid)?,
        "proto-max-bulk-len" => ctx.server.limits.set_proto_max_bulk_len(&value_s).map_err(invalid)?,
        "protected-mode" => st.protected_mode = parse_yes_no(&value_s).map_err(invalid)?,
        "lazyfree-lazy-user-del" => st.lazyfree_lazy_user_del = parse_yes_no(&value_s).map_err(invalid)?,
        "save" | "appendonly" | "hz" | "slowlog-log-slower-than" | "slowlog-max-len" => {}
        "lua-time-limit" | "busy-reply-threshold" => ctx.server.scripts.set_threshold_ms(
            value_s.parse().map_err(|_| invalid("argument couldn't be parsed into an integer"))?,
        ),
        _ => {
            return Err(CmdError::msg(format!(
                "Unknown option or number of arguments for CONFIG SET - '{}'",
                String::from_utf8_lossy(name)
            )))
        }
    }
    Ok(())
}

/// An estimate of the bytes a key uses, for `MEMORY USAGE`.
fn memory_estimate(key: &[u8], part: &Part) -> usize {
    const ENTRY: usize = 96;
    key.len()
        + ENTRY
        + match part {
            Part::Str(c) => string_value(c).len(),
            Part::Hash(h) => h.fields.iter().map(|(f, c)| f.len() + cell_string(c).len() + 64).sum(),
            Part::Set(s) => s.members.keys().map(|m| m.len() + 48).sum(),
            Part::ZSet(z) => z.members.keys().map(|m| 2 * m.len() + 96).sum(),
            Part::Hll(_) => crate::crdt::hll::REGISTERS,
            Part::List(l) => l.items.values().map(|r| l.value_at(r).len() + 64).sum(),
            Part::Stream(s) => s
                .entries
                .values()
                .map(|e| 48 + e.fields.iter().map(|(f, v)| f.len() + v.len() + 16).sum::<usize>())
                .sum(),
        }
}

fn memory(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match sub.as_str() {
        "usage" if args.len() < 3 => return Err(sub_arity_error(args)),
        "usage" => {
            if args.len() != 3 && !(args.len() == 5 && eq_ic(&args[3], "samples")) {
                return Err(CmdError::Syntax);
            }
            if args.len() == 5 {
                arg_i64(&args[4])?;
            }
            match ctx.part(&args[2]) {
                Some(p) => {
                    let n = memory_estimate(&args[2], p);
                    ctx.out.int(n as i64);
                }
                None => ctx.out.null(),
            }
        }
        "help" => {
            super::reply_help(ctx, &["MEMORY USAGE <key> [SAMPLES <count>]"]);
        }
        _ => return Err(unknown_subcommand(args)),
    }
    Ok(())
}

/// The encoding Redis would report for this value (clients and tools sometimes look).
fn encoding(part: &Part) -> &'static str {
    match part {
        Part::Str(c) => {
            let v = string_value(c);
            if v.len() <= 20 && crate::crdt::number::parse_i64(&v).is_some() {
                "int"
            } else if v.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        Part::Hll(_) => "raw",
        Part::Hash(h) => {
            if h.fields.len() <= 128
                && h.fields.iter().all(|(f, c)| f.len() <= 64 && cell_string(c).len() <= 64)
            {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Part::Set(s) => {
            if s.members.len() <= 512 && s.members.keys().all(|m| crate::crdt::number::parse_i64(m).is_some())
            {
                "intset"
            } else if s.members.len() <= 128 && s.members.keys().all(|m| m.len() <= 64) {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Part::ZSet(z) => {
            if z.members.len() <= 128 && z.members.keys().all(|m| m.len() <= 64) {
                "listpack"
            } else {
                "skiplist"
            }
        }
        Part::List(_) => "quicklist",
        Part::Stream(_) => "stream",
    }
}

fn object(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    if sub == "help" {
        let lines = [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "FREQ <key>",
            "IDLETIME <key>",
            "REFCOUNT <key>",
            "HELP",
        ];
        super::reply_help(ctx, &lines);
        return Ok(());
    }
    if !["encoding", "freq", "idletime", "refcount"].contains(&sub.as_str()) {
        return Err(unknown_subcommand(args));
    }
    if args.len() != 3 {
        return Err(sub_arity_error(args));
    }
    let started = ctx.server.started;
    let db = ctx.db();
    let now = ctx.now;
    let Some(entry) = ctx.store.replica.db(db).get(&args[2]).filter(|e| e.is_visible() && !e.is_expired(now))
    else {
        ctx.out.null();
        return Ok(());
    };
    match sub.as_str() {
        "encoding" => {
            let enc = entry.visible().map(encoding).unwrap_or("raw");
            ctx.out.bulk(enc.as_bytes());
        }
        "refcount" => ctx.out.int(1),
        "idletime" => {
            let secs = started.elapsed().as_secs() as u32;
            ctx.out.int(secs.saturating_sub(entry.accessed) as i64);
        }
        "freq" => {
            let policy = ctx.server.settings.read().maxmemory_policy.clone();
            if !policy.contains("lfu") {
                return Err(CmdError::msg("An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."));
            }
            ctx.out.int(0);
        }
        _ => unreachable!(),
    }
    Ok(())
}
