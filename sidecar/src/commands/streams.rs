//! Stream commands: XADD, XLEN, XRANGE, XREVRANGE, XREAD, XDEL, XTRIM, XSETID, XGROUP,
//! XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM, XINFO.
//!
//! Entries, group creation/deletion/SETID and acknowledgements replicate; pending entries and
//! consumers live on the replica where they were delivered (see `crdt/stream.rs`).

use bytes::Bytes;

use super::flags::*;
use super::{arg_i64, cmd, eq_ic, unknown_subcommand, CmdError, CmdResult, Command, Ctx, TimeoutReply};
use crate::crdt::keyspace::Part;
use crate::crdt::stream::{Consumer, Pending, StreamId, StreamPart};
use crate::crdt::{Blob, Effect};

#[rustfmt::skip]
pub const COMMANDS: &[Command] = &[
    cmd("xadd", -5, WRITE | DENYOOM | FAST, (1, 1, 1), "stream", "Appends a new message to a stream. Creates the key if it doesn't exist.", xadd),
    cmd("xlen", 2, READONLY | FAST, (1, 1, 1), "stream", "Return the number of messages in a stream.", xlen),
    cmd("xrange", -4, READONLY, (1, 1, 1), "stream", "Returns the messages from a stream within a range of IDs.", xrange),
    cmd("xrevrange", -4, READONLY, (1, 1, 1), "stream", "Returns the messages from a stream within a range of IDs in reverse order.", xrange),
    cmd("xread", -4, READONLY | BLOCKING, (0, 0, 0), "stream", "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.", xread),
    cmd("xreadgroup", -7, WRITE | BLOCKING, (0, 0, 0), "stream", "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.", xread),
    cmd("xdel", -3, WRITE | FAST, (1, 1, 1), "stream", "Returns the number of messages after removing them from a stream.", xdel),
    cmd("xtrim", -4, WRITE, (1, 1, 1), "stream", "Deletes messages from the beginning of a stream.", xtrim),
    cmd("xsetid", -3, WRITE | DENYOOM | FAST, (1, 1, 1), "stream", "An internal command for replicating stream values.", xsetid),
    cmd("xgroup", -2, WRITE, (2, 2, 1), "stream", "A container for consumer groups commands.", xgroup),
    cmd("xack", -4, WRITE | FAST, (1, 1, 1), "stream", "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.", xack),
    cmd("xpending", -3, READONLY, (1, 1, 1), "stream", "Returns the information and entries from a stream consumer group's pending entries list.", xpending),
    cmd("xclaim", -6, WRITE | FAST, (1, 1, 1), "stream", "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.", xclaim),
    cmd("xautoclaim", -6, WRITE | FAST, (1, 1, 1), "stream", "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.", xautoclaim),
    cmd("xinfo", -2, READONLY, (2, 2, 1), "stream", "A container for stream introspection commands.", xinfo),
];

fn invalid_id() -> CmdError {
    CmdError::msg("Invalid stream ID specified as stream command argument")
}

/// Parses `ms-seq` or `ms` (then `seq` is `missing_seq`).
pub fn parse_id(b: &[u8], missing_seq: u64) -> Result<StreamId, CmdError> {
    let s = std::str::from_utf8(b).map_err(|_| invalid_id())?;
    let (ms, seq) = match s.split_once('-') {
        Some((ms, seq)) => (ms, Some(seq)),
        None => (s, None),
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
    if !digits(ms) || seq.is_some_and(|q| !digits(q)) {
        return Err(invalid_id());
    }
    let ms: u64 = ms.parse().map_err(|_| invalid_id())?;
    let seq = match seq {
        Some(q) => q.parse().map_err(|_| invalid_id())?,
        None => missing_seq,
    };
    Ok(StreamId::new(ms, seq))
}

/// A range bound: `-`, `+`, an id, or `(id` (exclusive).
fn parse_bound(b: &[u8], start: bool) -> Result<StreamId, CmdError> {
    match b {
        b"-" => return Ok(StreamId::MIN),
        b"+" => return Ok(StreamId::MAX),
        _ => {}
    }
    if let Some(rest) = b.strip_prefix(b"(") {
        let id = parse_id(rest, if start { 0 } else { u64::MAX })?;
        return if start {
            id.next().ok_or_else(|| CmdError::msg("invalid start ID for the interval"))
        } else {
            id.prev().ok_or_else(|| CmdError::msg("invalid end ID for the interval"))
        };
    }
    parse_id(b, if start { 0 } else { u64::MAX })
}

pub fn stream<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c StreamPart>, CmdError> {
    match ctx.part(key) {
        None => Ok(None),
        Some(Part::Stream(s)) => Ok(Some(s)),
        Some(_) => Err(CmdError::WrongType),
    }
}

fn stream_mut<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Option<&'c mut StreamPart> {
    let db = ctx.db();
    match ctx.store.replica.db_mut(db).get_mut(key)?.visible_mut()? {
        Part::Stream(s) => Some(s),
        _ => None,
    }
}

fn write_entry(ctx: &mut Ctx, id: StreamId, fields: Option<&[(Blob, Blob)]>) {
    ctx.out.array(2);
    ctx.out.bulk(id.to_string().as_bytes());
    match fields {
        None => ctx.out.null_array(),
        Some(fields) => {
            ctx.out.array(fields.len() * 2);
            for (f, v) in fields {
                ctx.out.bulk(f);
                ctx.out.bulk(v);
            }
        }
    }
}

type Entries = Vec<(StreamId, Vec<(Blob, Blob)>)>;
/// Entries as read for a consumer: a deleted entry still pending shows as None.
type MaybeEntries = Vec<(StreamId, Option<Vec<(Blob, Blob)>>)>;

fn write_entries(ctx: &mut Ctx, entries: &Entries) {
    ctx.out.array(entries.len());
    for (id, fields) in entries {
        write_entry(ctx, *id, Some(fields));
    }
}

/// Trimming options: MAXLEN or MINID, `=` or `~`, LIMIT.
#[derive(Clone, Debug)]
enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

#[derive(Clone, Debug)]
struct TrimSpec {
    trim: Trim,
    approx: bool,
    limit: Option<u64>,
}

/// Parses a trim clause starting at `args[i]`; returns the spec and the index after it.
fn parse_trim(args: &[Bytes], mut i: usize) -> Result<(TrimSpec, usize), CmdError> {
    let maxlen = eq_ic(&args[i], "maxlen");
    i += 1;
    let mut approx = false;
    if i < args.len() && (&args[i][..] == b"~" || &args[i][..] == b"=") {
        approx = &args[i][..] == b"~";
        i += 1;
    }
    let Some(threshold) = args.get(i) else { return Err(CmdError::Syntax) };
    let trim = if maxlen {
        let n = arg_i64(threshold)?;
        if n < 0 {
            return Err(CmdError::msg("The MAXLEN argument must be >= 0."));
        }
        Trim::MaxLen(n as u64)
    } else {
        Trim::MinId(parse_id(threshold, 0)?)
    };
    i += 1;
    let mut limit = None;
    if i + 1 < args.len() && eq_ic(&args[i], "limit") {
        let n = arg_i64(&args[i + 1])?;
        if n < 0 {
            return Err(CmdError::msg("The LIMIT argument must be >= 0."));
        }
        if !approx {
            return Err(CmdError::msg("syntax error, LIMIT cannot be used without the special ~ option"));
        }
        limit = Some(n as u64);
        i += 2;
    }
    Ok((TrimSpec { trim, approx, limit }, i))
}

/// Redis keeps entries in nodes of up to 100; `~` trims whole nodes only.
const NODE_ENTRIES: usize = 100;

/// The ids a trim removes, oldest first. With `~`, only whole nodes of 100 entries go, and at
/// most LIMIT entries (default 100 nodes; 0 = no limit), as in Redis.
fn ids_to_trim(s: &StreamPart, spec: &TrimSpec) -> Vec<StreamId> {
    let mut doomed: Vec<StreamId> = match spec.trim {
        Trim::MaxLen(max) => {
            let excess = s.entries.len().saturating_sub(max as usize);
            s.entries.keys().take(excess).copied().collect()
        }
        Trim::MinId(min) => s.entries.range(..min).map(|(id, _)| *id).collect(),
    };
    if spec.approx {
        let limit = match spec.limit {
            Some(0) => usize::MAX,
            Some(l) => l as usize,
            None => NODE_ENTRIES * 100,
        };
        let n = doomed.len().min(limit) / NODE_ENTRIES * NODE_ENTRIES;
        doomed.truncate(n);
    }
    doomed
}

/// Bits of the replica id that `XADD *` puts into the sequence part of an id (see
/// [`tagged_auto_id`]); the sequence's upper 16 bits count entries within one millisecond.
const ID_TAG_BITS: u32 = 48;

/// The tag of this replica's auto-generated stream ids while it is part of a mesh; `None` alone,
/// where ids are exactly Redis's (`<ms>-0`, `<ms>-1`, …).
fn mesh_id_tag(ctx: &Ctx) -> Option<u64> {
    if ctx.server.mesh.is_none() || ctx.store.replica.is_solo() {
        return None;
    }
    Some(ctx.server.replica_id & ((1 << ID_TAG_BITS) - 1))
}

/// The id `XADD *` picks in a mesh: `<ms>-<n·2^48 + tag>`, greater than the stream's top id.
///
/// Two replicas adding to one stream in the same millisecond, before either has the other's
/// entry, would both pick `<ms>-0` with Redis's rule, and one of the two acknowledged entries
/// would be hidden behind the other. With the replica's tag in the sequence they pick different
/// ids (equal tags need two replica ids equal in 48 random bits). `n` counts up from the top
/// id's so a replica's ids still increase within a millisecond; past 65535 entries in one
/// millisecond the id moves to the next millisecond.
fn tagged_auto_id(ms: u64, last: StreamId, tag: u64) -> Option<StreamId> {
    if ms > last.ms {
        return Some(StreamId::new(ms, tag));
    }
    let n = (last.seq >> ID_TAG_BITS) + 1;
    if n < 1 << (64 - ID_TAG_BITS) {
        Some(StreamId::new(ms, (n << ID_TAG_BITS) | tag))
    } else {
        ms.checked_add(1).map(|next| StreamId::new(next, tag))
    }
}

fn xadd(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let mut nomkstream = false;
    let mut trim = None;
    let mut i = 2;
    loop {
        let Some(a) = args.get(i) else { return Err(CmdError::Syntax) };
        if eq_ic(a, "nomkstream") {
            nomkstream = true;
            i += 1;
        } else if eq_ic(a, "maxlen") || eq_ic(a, "minid") {
            if trim.is_some() {
                return Err(CmdError::msg(
                    "syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            let (spec, next) = parse_trim(args, i)?;
            trim = Some(spec);
            i = next;
        } else {
            break;
        }
    }
    let id_arg = &args[i];
    let fields = &args[i + 1..];
    if &id_arg[..] != b"*" {
        parse_id(id_arg.strip_suffix(b"-*").unwrap_or(id_arg), 0)?;
    }
    if fields.is_empty() || !fields.len().is_multiple_of(2) {
        return Err(CmdError::Arity("xadd".into()));
    }
    let existing = stream(ctx, key)?.map(|s| s.last_id());
    if existing.is_none() && nomkstream {
        ctx.out.null();
        return Ok(());
    }
    let last = existing.unwrap_or_default();
    let too_small =
        || CmdError::msg("The ID specified in XADD is equal or smaller than the target stream top item");
    let id = if &id_arg[..] == b"*" {
        let ms = ctx.now.max(last.ms);
        match mesh_id_tag(ctx) {
            Some(tag) => tagged_auto_id(ms, last, tag).ok_or_else(|| {
                CmdError::msg("The stream has exhausted the last possible ID, unable to add more items")
            })?,
            None if ms == last.ms => last.next().ok_or_else(|| {
                CmdError::msg("The stream has exhausted the last possible ID, unable to add more items")
            })?,
            None => StreamId::new(ms, 0),
        }
    } else if let Some(ms) = id_arg.strip_suffix(b"-*") {
        let ms = parse_id(ms, 0)?.ms;
        if ms < last.ms {
            return Err(too_small());
        }
        if ms == last.ms {
            if last.seq == u64::MAX {
                return Err(CmdError::msg(
                    "The stream has exhausted the last possible ID, unable to add more items",
                ));
            }
            StreamId::new(ms, last.seq + 1)
        } else {
            StreamId::new(ms, 0)
        }
    } else {
        let id = parse_id(id_arg, 0)?;
        if id == StreamId::MIN {
            return Err(CmdError::msg("The ID specified in XADD must be greater than 0-0"));
        }
        if id <= last {
            return Err(too_small());
        }
        id
    };
    let fields: Vec<(Blob, Blob)> =
        fields.chunks(2).map(|p| (Blob::from_slice(&p[0]), Blob::from_slice(&p[1]))).collect();
    ctx.write(key, Effect::StreamAdd { id, fields });
    if let Some(spec) = trim {
        let doomed = stream(ctx, key)?.map(|s| ids_to_trim(s, &spec)).unwrap_or_default();
        delete_entries(ctx, key, doomed)?;
    }
    ctx.out.bulk(id.to_string().as_bytes());
    Ok(())
}

/// Deletes the entries `ids` (present ones) and raises the stream's greatest deleted id;
/// returns how many.
fn delete_entries(ctx: &mut Ctx, key: &[u8], ids: Vec<StreamId>) -> Result<usize, CmdError> {
    let n = ids.len();
    if n > 0 {
        let current = stream(ctx, key)?.map(|s| s.max_deleted_id()).unwrap_or_default();
        let max_deleted = ids.iter().copied().fold(current, StreamId::max);
        ctx.write(key, Effect::StreamDel { ids, max_deleted });
    }
    Ok(n)
}

fn xlen(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = stream(ctx, &args[1])?.map(|s| s.entries.len()).unwrap_or(0);
    ctx.out.int(n as i64);
    Ok(())
}

fn xrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let rev = eq_ic(&args[0], "xrevrange");
    let (start, end) = if rev { (&args[3], &args[2]) } else { (&args[2], &args[3]) };
    let (start, end) = (parse_bound(start, true)?, parse_bound(end, false)?);
    let mut count = usize::MAX;
    match args.len() {
        4 => {}
        6 if eq_ic(&args[4], "count") => {
            let c = arg_i64(&args[5])?;
            if c <= 0 {
                ctx.out.null_array();
                return Ok(());
            }
            count = c as usize;
        }
        _ => return Err(CmdError::Syntax),
    }
    let entries: Entries = match stream(ctx, &args[1])? {
        Some(s) if start <= end => {
            let (a, b) = (start, end);
            let range = s.entries.range(a..=b).map(|(id, e)| (*id, e.fields.clone()));
            if rev {
                range.rev().take(count).collect()
            } else {
                range.take(count).collect()
            }
        }
        _ => vec![],
    };
    write_entries(ctx, &entries);
    Ok(())
}

/// XREAD and XREADGROUP.
fn xread(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let group_mode = eq_ic(&args[0], "xreadgroup");
    let mut count = usize::MAX;
    let mut block: Option<Option<u64>> = None;
    let mut noack = false;
    let mut group: Option<(Blob, Blob)> = None;
    let mut i = 1;
    let streams_at = loop {
        let Some(a) = args.get(i) else { return Err(CmdError::Syntax) };
        if eq_ic(a, "count") && i + 1 < args.len() {
            let c = arg_i64(&args[i + 1])?;
            count = if c <= 0 { usize::MAX } else { c as usize };
            i += 2;
        } else if eq_ic(a, "block") && i + 1 < args.len() {
            let ms = arg_i64(&args[i + 1])
                .map_err(|_| CmdError::msg("timeout is not an integer or out of range"))?;
            if ms < 0 {
                return Err(CmdError::msg("timeout is negative"));
            }
            block = Some((ms > 0).then_some(ms as u64));
            i += 2;
        } else if group_mode && eq_ic(a, "group") && i + 2 < args.len() {
            group = Some((Blob::from_slice(&args[i + 1]), Blob::from_slice(&args[i + 2])));
            i += 3;
        } else if eq_ic(a, "noack") {
            if !group_mode {
                return Err(CmdError::msg(
                    "The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            noack = true;
            i += 1;
        } else if eq_ic(a, "streams") {
            break i + 1;
        } else {
            return Err(CmdError::Syntax);
        }
    };
    let rest = &args[streams_at..];
    if rest.is_empty() {
        return Err(CmdError::Syntax);
    }
    if !rest.len().is_multiple_of(2) {
        return Err(CmdError::msg(
            "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
        ));
    }
    if group_mode && group.is_none() {
        return Err(CmdError::msg("Missing GROUP option for XREADGROUP"));
    }
    let n = rest.len() / 2;
    let (keys, ids) = rest.split_at(n);
    // Resolve ids ($ means "after what is there now"; > means "new to the group").
    let mut after: Vec<Option<StreamId>> = Vec::with_capacity(n);
    for (key, id) in keys.iter().zip(ids) {
        let s = stream(ctx, key)?;
        if let Some((g, _)) = &group {
            let exists = s.is_some_and(|s| s.groups.contains_key(g));
            if !exists {
                return Err(CmdError::Raw(format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(g)
                )));
            }
            if &id[..] == b">" {
                after.push(None);
            } else if &id[..] == b"$" {
                return Err(CmdError::msg("The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set."));
            } else {
                after.push(Some(parse_id(id, 0)?));
            }
        } else if &id[..] == b">" {
            return Err(CmdError::msg("The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."));
        } else if &id[..] == b"$" {
            after.push(Some(s.map(|s| s.last_id()).unwrap_or_default()));
        } else {
            after.push(Some(parse_id(id, 0)?));
        }
    }
    let mut results: Vec<(Bytes, MaybeEntries)> = Vec::new();
    for (key, from) in keys.iter().zip(&after) {
        let entries = match &group {
            None => {
                let from = from.expect("resolved");
                let s = stream(ctx, key)?;
                s.map(|s| {
                    s.entries
                        .range((std::ops::Bound::Excluded(from), std::ops::Bound::Unbounded))
                        .take(count)
                        .map(|(id, e)| (*id, Some(e.fields.clone())))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
            }
            Some((g, consumer)) => read_group(ctx, key, g, consumer, *from, count, noack),
        };
        if !entries.is_empty() || (group.is_some() && from.is_some()) {
            results.push((key.clone(), entries));
        }
    }
    if results.is_empty() {
        match block {
            Some(timeout) => {
                // Retry with concrete ids, so `$` keeps meaning "after what was there".
                let mut retry = args.to_vec();
                for (j, from) in after.iter().enumerate() {
                    if let Some(f) = from {
                        retry[streams_at + n + j] = Bytes::from(f.to_string());
                    }
                }
                ctx.block_on(keys, timeout, TimeoutReply::NullArray);
                if let Some(b) = ctx.block.as_mut() {
                    b.retry_args = Some(retry);
                }
            }
            None => ctx.out.null_array(),
        }
        return Ok(());
    }
    if ctx.out.resp3() {
        ctx.out.map(results.len());
    } else {
        ctx.out.array(results.len());
    }
    for (key, entries) in &results {
        if !ctx.out.resp3() {
            ctx.out.array(2);
        }
        ctx.out.bulk(key);
        ctx.out.array(entries.len());
        for (id, fields) in entries {
            write_entry(ctx, *id, fields.as_deref());
        }
    }
    Ok(())
}

/// Reads for a consumer: new entries (`from` None: `>`) or its own pending history.
fn read_group(
    ctx: &mut Ctx,
    key: &[u8],
    group: &[u8],
    consumer: &[u8],
    from: Option<StreamId>,
    count: usize,
    noack: bool,
) -> MaybeEntries {
    let now = ctx.now;
    let Some(s) = stream_mut(ctx, key) else { return vec![] };
    let added = s.entries_added();
    let gapless = s.max_deleted_id() < s.entries.keys().next().copied().unwrap_or(StreamId::MAX);
    let StreamPart { entries, groups, .. } = s;
    let Some(g) = groups.get_mut(group) else { return vec![] };
    let c = g
        .consumers
        .entry(Blob::from_slice(consumer))
        .or_insert_with(|| Consumer { seen_ms: now, active_ms: None });
    c.seen_ms = now;
    match from {
        None => {
            let after = g.last_delivered();
            let fresh: Vec<(StreamId, Vec<(Blob, Blob)>)> = entries
                .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .filter(|(id, _)| !g.acked.contains_key(id))
                .take(count)
                .map(|(id, e)| (*id, e.fields.clone()))
                .collect();
            if let Some((last, _)) = fresh.last() {
                g.delivered = *last;
                // Counted exactly once known; estimated (as Redis does) while the stream has no
                // deletions in the middle.
                g.entries_read = match g.entries_read {
                    Some(n) => Some(n + fresh.len() as i64),
                    None if gapless => Some(
                        added
                            - entries
                                .range((std::ops::Bound::Excluded(*last), std::ops::Bound::Unbounded))
                                .count() as i64,
                    ),
                    None => None,
                };
                if let Some(c) = g.consumers.get_mut(consumer) {
                    c.active_ms = Some(now);
                }
                if !noack {
                    for (id, _) in &fresh {
                        g.pending.insert(
                            *id,
                            Pending {
                                consumer: Blob::from_slice(consumer),
                                delivered_ms: now,
                                deliveries: 1,
                            },
                        );
                    }
                }
            }
            fresh.into_iter().map(|(id, f)| (id, Some(f))).collect()
        }
        Some(from) => {
            let history: MaybeEntries = g
                .pending
                .range((std::ops::Bound::Excluded(from), std::ops::Bound::Unbounded))
                .filter(|(_, p)| p.consumer[..] == consumer[..])
                .take(count)
                .map(|(id, _)| (*id, entries.get(id).map(|e| e.fields.clone())))
                .collect();
            // Reading the history delivers those entries again.
            for (id, fields) in &history {
                if fields.is_some() {
                    if let Some(p) = g.pending.get_mut(id) {
                        p.deliveries += 1;
                        p.delivered_ms = now;
                    }
                }
            }
            history
        }
    }
}

fn parse_ids(args: &[Bytes]) -> Result<Vec<StreamId>, CmdError> {
    args.iter().map(|a| parse_id(a, 0)).collect()
}

/// The distinct ids `present` accepts, in order (what XDEL and XACK act on).
fn distinct_present(mut ids: Vec<StreamId>, present: impl Fn(&StreamId) -> bool) -> Vec<StreamId> {
    ids.retain(present);
    ids.sort();
    ids.dedup();
    ids
}

fn xdel(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let ids = parse_ids(&args[2..])?;
    let present = match stream(ctx, &args[1])? {
        None => vec![],
        Some(s) => distinct_present(ids, |id| s.entries.contains_key(id)),
    };
    let n = delete_entries(ctx, &args[1], present)?;
    ctx.out.int(n as i64);
    Ok(())
}

fn xtrim(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if !(eq_ic(&args[2], "maxlen") || eq_ic(&args[2], "minid")) {
        return Err(CmdError::Syntax);
    }
    let (spec, next) = parse_trim(args, 2)?;
    if next != args.len() {
        if eq_ic(&args[next], "maxlen") || eq_ic(&args[next], "minid") {
            return Err(CmdError::msg(
                "syntax error, MAXLEN and MINID options at the same time are not compatible",
            ));
        }
        return Err(CmdError::Syntax);
    }
    let doomed = stream(ctx, &args[1])?.map(|s| ids_to_trim(s, &spec)).unwrap_or_default();
    let n = delete_entries(ctx, &args[1], doomed)?;
    ctx.out.int(n as i64);
    Ok(())
}

fn xsetid(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let last = parse_id(&args[2], 0)?;
    let (mut added, mut max_deleted) = (None, None);
    let mut i = 3;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(CmdError::Syntax);
        }
        if eq_ic(&args[i], "entriesadded") {
            let n = arg_i64(&args[i + 1])?;
            if n < 0 {
                return Err(CmdError::msg("entries_added must be positive"));
            }
            added = Some(n);
        } else if eq_ic(&args[i], "maxdeletedid") {
            max_deleted = Some(parse_id(&args[i + 1], 0)?);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    if max_deleted.is_some_and(|m| last < m) {
        return Err(CmdError::msg(
            "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
        ));
    }
    let Some(s) = stream(ctx, &args[1])? else { return Err(CmdError::NoSuchKey) };
    if added.is_some_and(|a| (a as usize) < s.entries.len()) {
        return Err(CmdError::msg(
            "The entries_added specified in XSETID is smaller than the target stream length",
        ));
    }
    if s.entries.keys().next_back().is_some_and(|top| last < *top) {
        return Err(CmdError::msg("The ID specified in XSETID is smaller than the target stream top item"));
    }
    ctx.write(&args[1], Effect::StreamSetId { last, entries_added: added, max_deleted });
    ctx.out.ok();
    Ok(())
}

fn nogroup(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::Raw(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

fn xgroup(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let arity = |min: usize, max: usize| {
        if args.len() < min {
            Err(super::sub_arity_error(args))
        } else if args.len() > max {
            Err(super::sub_syntax_error(args))
        } else {
            Ok(())
        }
    };
    match sub.as_str() {
        "create" => {
            arity(5, 8)?;
            let (key, group) = (&args[2], &args[3]);
            let (mut mkstream, mut entries_read) = (false, None);
            let mut i = 5;
            while i < args.len() {
                if eq_ic(&args[i], "mkstream") {
                    mkstream = true;
                    i += 1;
                } else if eq_ic(&args[i], "entriesread") && i + 1 < args.len() {
                    let n = arg_i64(&args[i + 1])?;
                    if n < -1 {
                        return Err(CmdError::msg("value for ENTRIESREAD must be positive or -1"));
                    }
                    entries_read = (n >= 0).then_some(n);
                    i += 2;
                } else {
                    return Err(super::sub_syntax_error(args));
                }
            }
            let dollar = &args[4][..] == b"$";
            let given = if dollar { None } else { Some(parse_id(&args[4], 0)?) };
            let s = stream(ctx, key)?;
            if s.is_none() && !mkstream {
                return Err(CmdError::msg("The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."));
            }
            if s.is_some_and(|s| s.groups.contains_key(&group[..])) {
                return Err(CmdError::Raw("BUSYGROUP Consumer Group name already exists".into()));
            }
            let last = given.unwrap_or_else(|| s.map(|s| s.last_id()).unwrap_or_default());
            if s.is_none() {
                ctx.write(
                    key,
                    Effect::StreamSetId { last: StreamId::MIN, entries_added: None, max_deleted: None },
                );
            }
            ctx.write(key, Effect::GroupCreate { group: Blob::from_slice(group), last, entries_read });
            ctx.out.ok();
        }
        "setid" => {
            arity(5, 7)?;
            let (key, group) = (&args[2], &args[3]);
            let mut entries_read = None;
            if args.len() > 5 {
                if args.len() != 7 || !eq_ic(&args[5], "entriesread") {
                    return Err(CmdError::Syntax);
                }
                let n = arg_i64(&args[6])?;
                if n < -1 {
                    return Err(CmdError::msg("value for ENTRIESREAD must be positive or -1"));
                }
                entries_read = (n >= 0).then_some(n);
            }
            let Some(s) = stream(ctx, key)? else {
                return Err(CmdError::msg("The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."));
            };
            if !s.groups.contains_key(&group[..]) {
                return Err(CmdError::Raw(format!(
                    "NOGROUP No such consumer group '{}' for key name '{}'",
                    String::from_utf8_lossy(group),
                    String::from_utf8_lossy(key)
                )));
            }
            let last = if &args[4][..] == b"$" { s.last_id() } else { parse_id(&args[4], 0)? };
            ctx.write(key, Effect::GroupSetId { group: Blob::from_slice(group), last, entries_read });
            ctx.out.ok();
        }
        "destroy" => {
            arity(4, 4)?;
            let Some(s) = stream(ctx, &args[2])? else {
                return Err(CmdError::msg("The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."));
            };
            let exists = s.groups.contains_key(&args[3][..]);
            if exists {
                ctx.write(&args[2], Effect::GroupDestroy { group: Blob::from_slice(&args[3]) });
            }
            ctx.out.int(exists as i64);
        }
        "createconsumer" | "delconsumer" => {
            arity(5, 5)?;
            let (key, group, consumer) = (&args[2], &args[3], &args[4]);
            let Some(s) = stream(ctx, key)? else {
                return Err(CmdError::msg("The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."));
            };
            if !s.groups.contains_key(&group[..]) {
                return Err(CmdError::Raw(format!(
                    "NOGROUP No such consumer group '{}' for key name '{}'",
                    String::from_utf8_lossy(group),
                    String::from_utf8_lossy(key)
                )));
            }
            let now = ctx.now;
            let g = stream_mut(ctx, key).and_then(|s| s.groups.get_mut(&group[..])).expect("group exists");
            if sub == "createconsumer" {
                let created = !g.consumers.contains_key(&consumer[..]);
                if created {
                    g.consumers
                        .insert(Blob::from_slice(consumer), Consumer { seen_ms: now, active_ms: None });
                }
                ctx.out.int(created as i64);
            } else {
                let pending = g.pending.values().filter(|p| p.consumer[..] == consumer[..]).count();
                g.pending.retain(|_, p| p.consumer[..] != consumer[..]);
                g.consumers.remove(&consumer[..]);
                ctx.out.int(pending as i64);
            }
        }
        "help" => {
            super::reply_help(ctx, &["XGROUP <CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER|HELP>"]);
        }
        _ => return Err(unknown_subcommand(args)),
    }
    Ok(())
}

fn xack(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let ids = parse_ids(&args[3..])?;
    let pending = match stream(ctx, &args[1])?.and_then(|s| s.groups.get(&args[2][..])) {
        None => vec![],
        Some(g) => distinct_present(ids, |id| g.pending.contains_key(id)),
    };
    let n = pending.len();
    if n > 0 {
        ctx.write(&args[1], Effect::GroupAck { group: Blob::from_slice(&args[2]), ids: pending });
    }
    ctx.out.int(n as i64);
    Ok(())
}

fn xpending(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (key, group) = (&args[1], &args[2]);
    let now = ctx.now;
    let mut min_idle = None;
    let mut i = 3;
    if args.len() > 3 && eq_ic(&args[3], "idle") {
        if args.len() < 5 {
            return Err(CmdError::Syntax);
        }
        min_idle = Some(arg_i64(&args[4])?.max(0) as u64);
        i = 5;
    }
    let extended = args.len() > i;
    if extended && args.len() < i + 3 {
        return Err(CmdError::Syntax);
    }
    if min_idle.is_some() && !extended {
        return Err(CmdError::Syntax);
    }
    let bounds = if extended {
        let count = arg_i64(&args[i + 2])?;
        let consumer = args.get(i + 3).cloned();
        if args.len() > i + 4 {
            return Err(CmdError::Syntax);
        }
        Some((
            parse_bound(&args[i], true)?,
            parse_bound(&args[i + 1], false)?,
            count.max(0) as usize,
            consumer,
        ))
    } else {
        None
    };
    let Some(g) = stream(ctx, key)?.and_then(|s| s.groups.get(&group[..])) else {
        return Err(nogroup(key, group));
    };
    match bounds {
        None => {
            if g.pending.is_empty() {
                ctx.out.array(4);
                ctx.out.int(0);
                ctx.out.null();
                ctx.out.null();
                ctx.out.null_array();
                return Ok(());
            }
            let first = *g.pending.keys().next().expect("non-empty");
            let last = *g.pending.keys().next_back().expect("non-empty");
            let mut per: Vec<(Blob, usize)> = Vec::new();
            for p in g.pending.values() {
                match per.iter_mut().find(|(c, _)| *c == p.consumer) {
                    Some(e) => e.1 += 1,
                    None => per.push((p.consumer.clone(), 1)),
                }
            }
            per.sort();
            let total = g.pending.len();
            ctx.out.array(4);
            ctx.out.int(total as i64);
            ctx.out.bulk(first.to_string().as_bytes());
            ctx.out.bulk(last.to_string().as_bytes());
            ctx.out.array(per.len());
            for (c, n) in per {
                ctx.out.array(2);
                ctx.out.bulk(&c);
                ctx.out.bulk(n.to_string().as_bytes());
            }
        }
        Some((start, end, count, consumer)) => {
            let rows: Vec<(StreamId, Pending)> = match (start, end) {
                (a, b) if a <= b => g
                    .pending
                    .range(a..=b)
                    .filter(|(_, p)| consumer.as_ref().is_none_or(|c| p.consumer[..] == c[..]))
                    .filter(|(_, p)| min_idle.is_none_or(|m| now.saturating_sub(p.delivered_ms) >= m))
                    .take(count)
                    .map(|(id, p)| (*id, p.clone()))
                    .collect(),
                _ => vec![],
            };
            ctx.out.array(rows.len());
            for (id, p) in rows {
                ctx.out.array(4);
                ctx.out.bulk(id.to_string().as_bytes());
                ctx.out.bulk(&p.consumer);
                ctx.out.int(now.saturating_sub(p.delivered_ms) as i64);
                ctx.out.int(p.deliveries as i64);
            }
        }
    }
    Ok(())
}

fn xclaim(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (key, group, consumer) = (&args[1], &args[2], &args[3]);
    let min_idle = arg_i64(&args[4])
        .map_err(|_| CmdError::msg("Invalid min-idle-time argument for XCLAIM"))?
        .max(0) as u64;
    let mut ids = Vec::new();
    let mut i = 5;
    while i < args.len() {
        match parse_id(&args[i], 0) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        i += 1;
    }
    let now = ctx.now;
    let (mut idle, mut retry, mut force, mut justid) = (None, None, false, false);
    while i < args.len() {
        let o = String::from_utf8_lossy(&args[i]).to_ascii_lowercase();
        match o.as_str() {
            "force" => force = true,
            "justid" => justid = true,
            "idle" | "time" | "retrycount" | "lastid" if i + 1 < args.len() => {
                let v = &args[i + 1];
                match o.as_str() {
                    "idle" => {
                        idle = Some(
                            arg_i64(v)
                                .map_err(|_| CmdError::msg("Invalid IDLE option argument for XCLAIM"))?
                                .max(0) as u64,
                        )
                    }
                    "time" => {
                        let t = arg_i64(v)
                            .map_err(|_| CmdError::msg("Invalid TIME option argument for XCLAIM"))?;
                        idle = Some(now.saturating_sub(t.max(0) as u64));
                    }
                    "retrycount" => {
                        retry = Some(
                            arg_i64(v)
                                .map_err(|_| CmdError::msg("Invalid RETRYCOUNT option argument for XCLAIM"))?
                                .max(0) as u64,
                        )
                    }
                    _ => {
                        parse_id(v, 0)?;
                    }
                }
                i += 1;
            }
            _ => {
                return Err(CmdError::msg(format!(
                    "Unrecognized XCLAIM option '{}'",
                    String::from_utf8_lossy(&args[i])
                )))
            }
        }
        i += 1;
    }
    stream(ctx, key)?;
    let Some(s) = stream_mut(ctx, key).filter(|s| s.groups.contains_key(&group[..])) else {
        return Err(nogroup(key, group));
    };
    let StreamPart { entries, groups, .. } = s;
    let g = groups.get_mut(&group[..]).expect("checked");
    let mut claimed: MaybeEntries = Vec::new();
    for id in ids {
        let exists = entries.contains_key(&id);
        if let std::collections::btree_map::Entry::Vacant(slot) = g.pending.entry(id) {
            if force && exists {
                slot.insert(Pending { consumer: Blob::new(), delivered_ms: now, deliveries: 1 });
            } else {
                continue;
            }
        }
        if !exists {
            g.pending.remove(&id);
            continue;
        }
        let p = g.pending.get_mut(&id).expect("pending");
        if now.saturating_sub(p.delivered_ms) < min_idle {
            continue;
        }
        p.consumer = Blob::from_slice(consumer);
        p.delivered_ms = idle.map(|i| now.saturating_sub(i)).unwrap_or(now);
        if let Some(r) = retry {
            p.deliveries = r;
        } else if !justid {
            p.deliveries += 1;
        }
        claimed.push((id, entries.get(&id).map(|e| e.fields.clone())));
    }
    let c = g.consumers.entry(Blob::from_slice(consumer)).or_default();
    c.seen_ms = now;
    if !claimed.is_empty() {
        c.active_ms = Some(now);
    }
    ctx.out.array(claimed.len());
    for (id, fields) in claimed {
        if justid {
            ctx.out.bulk(id.to_string().as_bytes());
        } else {
            write_entry(ctx, id, fields.as_deref());
        }
    }
    Ok(())
}

fn xautoclaim(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (key, group, consumer) = (&args[1], &args[2], &args[3]);
    let min_idle = arg_i64(&args[4])
        .map_err(|_| CmdError::msg("Invalid min-idle-time argument for XAUTOCLAIM"))?
        .max(0) as u64;
    let start = parse_bound(&args[5], true)?;
    let (mut count, mut justid) = (100usize, false);
    let mut i = 6;
    while i < args.len() {
        if eq_ic(&args[i], "count") && i + 1 < args.len() {
            let c = arg_i64(&args[i + 1]).map_err(|_| CmdError::msg("COUNT must be > 0"))?;
            if !(1..=i64::MAX / 10).contains(&c) {
                return Err(CmdError::msg("COUNT must be > 0"));
            }
            count = c as usize;
            i += 2;
        } else if eq_ic(&args[i], "justid") {
            justid = true;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let now = ctx.now;
    stream(ctx, key)?;
    let Some(s) = stream_mut(ctx, key).filter(|s| s.groups.contains_key(&group[..])) else {
        return Err(nogroup(key, group));
    };
    let StreamPart { entries, groups, .. } = s;
    let g = groups.get_mut(&group[..]).expect("checked");
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut next = StreamId::MIN;
    let candidates: Vec<StreamId> = g.pending.range(start..).map(|(id, _)| *id).collect();
    let mut iter = candidates.into_iter();
    for (scanned, id) in iter.by_ref().enumerate() {
        if scanned >= count * 10 || claimed.len() >= count {
            next = id;
            break;
        }
        if !entries.contains_key(&id) {
            g.pending.remove(&id);
            deleted.push(id);
            continue;
        }
        let p = g.pending.get_mut(&id).expect("pending");
        if now.saturating_sub(p.delivered_ms) < min_idle {
            continue;
        }
        p.consumer = Blob::from_slice(consumer);
        p.delivered_ms = now;
        if !justid {
            p.deliveries += 1;
        }
        claimed.push((id, entries.get(&id).map(|e| e.fields.clone())));
    }
    g.consumers.entry(Blob::from_slice(consumer)).or_default().seen_ms = now;
    ctx.out.array(3);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.array(claimed.len());
    for (id, fields) in claimed {
        if justid {
            ctx.out.bulk(id.to_string().as_bytes());
        } else {
            write_entry(ctx, id, fields.as_deref());
        }
    }
    ctx.out.array(deleted.len());
    for id in deleted {
        ctx.out.bulk(id.to_string().as_bytes());
    }
    Ok(())
}

fn xinfo(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let now = ctx.now;
    match sub.as_str() {
        "stream" if args.len() >= 3 => {
            let full = args.len() >= 4 && eq_ic(&args[3], "full");
            let mut count = 10usize;
            if full && args.len() == 6 && eq_ic(&args[4], "count") {
                let c = arg_i64(&args[5])?;
                count = if c <= 0 { usize::MAX } else { c as usize };
            } else if (full && args.len() != 4) || (!full && args.len() != 3) {
                return Err(super::sub_syntax_error(args));
            }
            let Some(s) = stream(ctx, &args[2])? else { return Err(CmdError::NoSuchKey) };
            let s = s.clone();
            write_stream_info(ctx, &s, full, count, now);
        }
        "groups" if args.len() == 3 => {
            let Some(s) = stream(ctx, &args[2])? else { return Err(CmdError::NoSuchKey) };
            let s = s.clone();
            ctx.out.array(s.groups.len());
            for (name, g) in &s.groups {
                let lag = group_lag(&s, g);
                ctx.out.map(6);
                ctx.out.bulk(b"name");
                ctx.out.bulk(name);
                ctx.out.bulk(b"consumers");
                ctx.out.int(g.consumers.len() as i64);
                ctx.out.bulk(b"pending");
                ctx.out.int(g.pending.len() as i64);
                ctx.out.bulk(b"last-delivered-id");
                ctx.out.bulk(g.last_delivered().to_string().as_bytes());
                ctx.out.bulk(b"entries-read");
                match g.entries_read {
                    Some(n) => ctx.out.int(n),
                    None => ctx.out.null(),
                }
                ctx.out.bulk(b"lag");
                match lag {
                    Some(l) => ctx.out.int(l),
                    None => ctx.out.null(),
                }
            }
        }
        "consumers" if args.len() == 4 => {
            let Some(s) = stream(ctx, &args[2])? else { return Err(CmdError::NoSuchKey) };
            let Some(g) = s.groups.get(&args[3][..]).cloned() else {
                return Err(CmdError::Raw(format!(
                    "NOGROUP No such consumer group '{}' for key name '{}'",
                    String::from_utf8_lossy(&args[3]),
                    String::from_utf8_lossy(&args[2])
                )));
            };
            ctx.out.array(g.consumers.len());
            for (name, c) in &g.consumers {
                let pending = g.pending.values().filter(|p| p.consumer == *name).count();
                ctx.out.map(3);
                ctx.out.bulk(b"name");
                ctx.out.bulk(name);
                ctx.out.bulk(b"pending");
                ctx.out.int(pending as i64);
                ctx.out.bulk(b"idle");
                ctx.out.int(now.saturating_sub(c.seen_ms) as i64);
            }
        }
        "help" => {
            super::reply_help(ctx, &["XINFO <CONSUMERS|GROUPS|STREAM|HELP>"]);
        }
        "stream" | "groups" | "consumers" => return Err(super::sub_arity_error(args)),
        _ => return Err(unknown_subcommand(args)),
    }
    Ok(())
}

/// How many entries the group has yet to read, when that is known (as Redis 7.0 reckons it:
/// unknown once entries after the group's position were deleted and its read count is unknown).
fn group_lag(s: &StreamPart, g: &crate::crdt::stream::Group) -> Option<i64> {
    let added = s.entries_added();
    if added == 0 {
        return Some(0);
    }
    let last = g.last_delivered();
    let tombstones_after = s.max_deleted_id() > last;
    match g.entries_read {
        Some(read) if !tombstones_after => Some(added - read),
        _ if last >= s.last_id() => Some(0),
        _ if s.max_deleted_id() == StreamId::MIN && s.entries.keys().next().is_some_and(|f| last < *f) => {
            Some(added)
        }
        _ => None,
    }
}

fn write_stream_info(ctx: &mut Ctx, s: &StreamPart, full: bool, count: usize, now: u64) {
    let first = s.entries.iter().next();
    let last = s.entries.iter().next_back();
    let recorded_first = first.map(|(id, _)| *id).unwrap_or_default();
    ctx.out.map(if full { 9 } else { 10 });
    ctx.out.bulk(b"length");
    ctx.out.int(s.entries.len() as i64);
    ctx.out.bulk(b"radix-tree-keys");
    ctx.out.int(s.entries.len().div_ceil(NODE_ENTRIES) as i64);
    ctx.out.bulk(b"radix-tree-nodes");
    ctx.out.int((s.entries.len().div_ceil(NODE_ENTRIES) + 1) as i64);
    ctx.out.bulk(b"last-generated-id");
    ctx.out.bulk(s.last_id().to_string().as_bytes());
    ctx.out.bulk(b"max-deleted-entry-id");
    ctx.out.bulk(s.max_deleted_id().to_string().as_bytes());
    ctx.out.bulk(b"entries-added");
    ctx.out.int(s.entries_added());
    ctx.out.bulk(b"recorded-first-entry-id");
    ctx.out.bulk(recorded_first.to_string().as_bytes());
    if !full {
        ctx.out.bulk(b"groups");
        ctx.out.int(s.groups.len() as i64);
        ctx.out.bulk(b"first-entry");
        match first {
            Some((id, e)) => write_entry(ctx, *id, Some(&e.fields)),
            None => ctx.out.null(),
        }
        ctx.out.bulk(b"last-entry");
        match last {
            Some((id, e)) => write_entry(ctx, *id, Some(&e.fields)),
            None => ctx.out.null(),
        }
        return;
    }
    ctx.out.bulk(b"entries");
    let entries: Entries = s.entries.iter().take(count).map(|(id, e)| (*id, e.fields.clone())).collect();
    write_entries(ctx, &entries);
    ctx.out.bulk(b"groups");
    ctx.out.array(s.groups.len());
    for (name, g) in &s.groups {
        ctx.out.map(7);
        ctx.out.bulk(b"name");
        ctx.out.bulk(name);
        ctx.out.bulk(b"last-delivered-id");
        ctx.out.bulk(g.last_delivered().to_string().as_bytes());
        ctx.out.bulk(b"entries-read");
        match g.entries_read {
            Some(n) => ctx.out.int(n),
            None => ctx.out.null(),
        }
        ctx.out.bulk(b"lag");
        match group_lag(s, g) {
            Some(l) => ctx.out.int(l),
            None => ctx.out.null(),
        }
        ctx.out.bulk(b"pel-count");
        ctx.out.int(g.pending.len() as i64);
        ctx.out.bulk(b"pending");
        let pel: Vec<_> = g.pending.iter().take(count).collect();
        ctx.out.array(pel.len());
        for (id, p) in pel {
            ctx.out.array(4);
            ctx.out.bulk(id.to_string().as_bytes());
            ctx.out.bulk(&p.consumer);
            ctx.out.int(p.delivered_ms as i64);
            ctx.out.int(p.deliveries as i64);
        }
        ctx.out.bulk(b"consumers");
        ctx.out.array(g.consumers.len());
        for (cname, c) in &g.consumers {
            let mine: Vec<_> = g.pending.iter().filter(|(_, p)| p.consumer == *cname).take(count).collect();
            ctx.out.map(4);
            ctx.out.bulk(b"name");
            ctx.out.bulk(cname);
            ctx.out.bulk(b"seen-time");
            ctx.out.int(c.seen_ms as i64);
            ctx.out.bulk(b"pel-count");
            ctx.out.int(g.pending.values().filter(|p| p.consumer == *cname).count() as i64);
            ctx.out.bulk(b"pending");
            ctx.out.array(mine.len());
            for (id, p) in mine {
                ctx.out.array(3);
                ctx.out.bulk(id.to_string().as_bytes());
                ctx.out.int(p.delivered_ms as i64);
                ctx.out.int(p.deliveries as i64);
            }
        }
    }
    let _ = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG_A: u64 = 0x0000_1234_5678_9abc;
    const TAG_B: u64 = 0x0000_fedc_ba98_7654;

    #[test]
    fn tagged_ids_of_two_replicas_in_one_millisecond_differ_and_increase() {
        let empty = StreamId::new(0, 0);
        let a = tagged_auto_id(1000, empty, TAG_A).unwrap();
        let b = tagged_auto_id(1000, empty, TAG_B).unwrap();
        assert_ne!(a, b);
        assert_eq!(a, StreamId::new(1000, TAG_A));
        // After b's entry arrived, a's next id in the same millisecond is above it.
        let a2 = tagged_auto_id(1000, b.max(a), TAG_A).unwrap();
        assert!(a2 > a && a2 > b);
        assert_eq!(a2.seq & ((1 << ID_TAG_BITS) - 1), TAG_A);
        // A clock behind the top id continues after it (the caller passes max(now, top.ms)).
        let a3 = tagged_auto_id(2000, StreamId::new(2000, 7), TAG_A).unwrap();
        assert!(a3 > StreamId::new(2000, 7));
    }

    #[test]
    fn a_full_millisecond_moves_to_the_next_one() {
        let top = StreamId::new(1000, u64::MAX);
        assert_eq!(tagged_auto_id(1000, top, TAG_A), Some(StreamId::new(1001, TAG_A)));
        assert_eq!(tagged_auto_id(u64::MAX, StreamId::new(u64::MAX, u64::MAX), TAG_A), None);
    }
}
