//! Operations: what one write does to one key.
//!
//! Commands turn into operations (the *prepare* step reads local state: `SETNX` checks
//! existence, `INCR` checks the value is an integer). Operations themselves are unconditional and
//! carry everything a peer needs to apply them exactly as the origin did; together with their dot
//! and causal context they are the unit of replication and of the on-disk log.

use serde::{Deserialize, Serialize};

use super::extended::Extended;
use super::list::Position;
use super::stream::StreamId;
use super::{Blob, Value};

/// How a string write treats the key's time to live.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Ttl {
    /// `KEEPTTL`, `APPEND`, `SETRANGE`: the observed TTL stays.
    Keep,
    /// Plain `SET`: the observed TTL goes, and the write wins over a concurrent `EXPIRE`.
    Clear,
    /// `SET … EX/PX/EXAT/PXAT`, `SETEX`: a new absolute deadline (Unix milliseconds).
    At(u64),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    /// The `SET` family: the key becomes this string; everything observed of it goes.
    Assign {
        value: Value,
        ttl: Ttl,
    },
    /// `INCR`/`INCRBY`/`DECR`/`DECRBY`/`INCRBYFLOAT`.
    Incr {
        int: i64,
        float: f64,
        is_float: bool,
        /// The exact increment of INCRBYFLOAT (x87 extended precision, as Redis computes).
        ext: Option<Extended>,
    },
    /// `DEL`, `UNLINK`, `FLUSHDB` per key, expiry: everything observed of the key goes.
    Delete,
    /// `EXPIRE` family (`Some(deadline)` in Unix ms) and `PERSIST` (`None`).
    Expire {
        deadline: Option<u64>,
    },
    HashSet {
        fields: Vec<(Blob, Blob)>,
    },
    HashIncr {
        field: Blob,
        int: i64,
        float: f64,
        is_float: bool,
        ext: Option<Extended>,
    },
    HashDel {
        fields: Vec<Blob>,
    },
    SetAdd {
        members: Vec<Blob>,
    },
    SetRem {
        members: Vec<Blob>,
    },
    ZAdd {
        members: Vec<(Blob, f64)>,
    },
    ZIncr {
        member: Blob,
        delta: f64,
    },
    ZRem {
        members: Vec<Blob>,
    },
    /// Register updates `(index, rank)` of a HyperLogLog (`PFADD`, `PFMERGE`).
    HllAdd {
        updates: Vec<(u16, u8)>,
    },
    /// `FLUSHDB`/`FLUSHALL`: every key of the database, as observed, goes (the op's key is empty).
    Flush,
    /// LPUSH/RPUSH/LINSERT/LMOVE: elements at positions chosen by the writer.
    ListInsert {
        items: Vec<(Position, Blob)>,
    },
    /// Pops, LREM, LTRIM: the elements at these positions go.
    ListRemove {
        positions: Vec<Position>,
    },
    /// LSET.
    ListSet {
        position: Position,
        value: Blob,
    },
    StreamAdd {
        id: StreamId,
        fields: Vec<(Blob, Blob)>,
    },
    /// XDEL, XTRIM.
    StreamDel {
        ids: Vec<StreamId>,
        /// The stream's greatest deleted id after this delete, as the writer computed it.
        max_deleted: StreamId,
    },
    /// XSETID, XGROUP CREATE MKSTREAM (creates an empty stream).
    StreamSetId {
        last: StreamId,
        entries_added: Option<i64>,
        max_deleted: Option<StreamId>,
    },
    GroupCreate {
        group: Blob,
        last: StreamId,
        entries_read: Option<i64>,
    },
    GroupDestroy {
        group: Blob,
    },
    GroupSetId {
        group: Blob,
        last: StreamId,
        entries_read: Option<i64>,
    },
    GroupAck {
        group: Blob,
        ids: Vec<StreamId>,
    },
    /// `INCRBYFLOAT`: the key becomes `value`, the writer's result printed as Redis prints it
    /// (so one replica shows Redis's digits), and `by` still adds up with the increments the
    /// writer did not observe (see `Cell::assign_increment`). The TTL stays.
    IncrFloat {
        by: Extended,
        value: Blob,
    },
    /// `HINCRBYFLOAT`: the same for one field of a hash.
    HashIncrFloat {
        field: Blob,
        by: Extended,
        value: Blob,
    },
}

/// One write to one key of one logical database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub db: u8,
    pub key: Blob,
    pub effect: Effect,
}
