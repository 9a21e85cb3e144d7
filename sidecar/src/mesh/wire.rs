//! The mesh wire protocol: length-prefixed frames, each one bincode-encoded [`Message`].
//!
//! A connection starts with the membership proof (`proof.rs`: a `Greeting` frame each way, the
//! dialer's first, then a `Proof` message each way), then both sides send `Hello`; after that,
//! updates flow in the order the sender applied them (a causal order), with each update's
//! dependency vector sent as a delta against the previous update of the same origin on this
//! connection.
//!
//! **Versioning.** Everything after the greeting (every `Message`, the `Update`s and `Op`s inside
//! them, the snapshot encoding) is what [`PROTOCOL_VERSION`] names: the greeting carries it, and
//! replicas of different protocols refuse each other before anything else is sent. Any change to
//! those bytes (a variant or field of `Message`, `Effect`, `Op`, `Update`, a CRDT type in a
//! snapshot, even one inserted in the middle of an enum) bumps it, and the golden fixtures
//! (`sidecar/tests/formats.rs`) fail until it is. The snapshot encoding is also the body of the
//! data directory's snapshot file and of its installed-snapshot records, so changing it bumps
//! `storage::FORMAT` too.

use std::collections::HashMap;

use bincode::Options;
use bytes::{Buf, BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use crate::crdt::replica::{Snapshot, Update};
use crate::crdt::{Op, ReplicaId, Timestamp, VersionVector};

pub const MAGIC: &str = "SYNCMESH";
/// 1: the first releases (Hello first). 2: the membership proof comes before anything else;
/// the effects `IncrFloat` and `HashIncrFloat`; the keyspace of function libraries (16).
pub const PROTOCOL_VERSION: u32 = 2;
/// Largest frame accepted (snapshots of big datasets are split into chunks below this).
pub const MAX_FRAME: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub magic: String,
    pub protocol: u32,
    pub database: String,
    pub replica: ReplicaId,
    /// The port this replica's mesh listener accepts on (its address is the one we see).
    pub listen_port: u16,
    /// An explicit address to reach it by, when it knows one (`--advertise-addr`).
    pub advertise: Option<String>,
    /// What it has applied.
    pub vv: VersionVector,
}

/// An update with its dependencies delta-encoded (see [`Encoder`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireUpdate {
    pub origin: ReplicaId,
    pub deps_delta: Vec<(ReplicaId, Timestamp)>,
    pub ops: Vec<(Timestamp, Op)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    Hello(Hello),
    /// The handshake was refused; the text says why. The one message every protocol encodes
    /// alike (variant 1, a string; protocol 1 did too), so a replica of another release can read
    /// why it was refused: it never moves and never changes.
    Refused(String),
    Updates(Vec<WireUpdate>),
    /// What the sender has applied, and what it knows every member has applied (gossip for
    /// causal stability and for WAIT).
    /// Each member entry carries a heartbeat that only its owner advances (liveness).
    Ack {
        vv: VersionVector,
        members: Vec<(ReplicaId, VersionVector, u64)>,
        retired: Vec<ReplicaId>,
    },
    /// A part of a snapshot; `last` marks the final part.
    Snapshot {
        part: Vec<u8>,
        last: bool,
    },
    /// Mesh addresses the sender knows (peer exchange).
    Peers(Vec<String>),
    /// A Pub/Sub message published on `origin`, its `seq`-th.
    Publish {
        origin: ReplicaId,
        seq: u64,
        channel: Vec<u8>,
        payload: Vec<u8>,
    },
    /// The answer to the other side's greeting nonce (`membership.rs`).
    Proof(Vec<u8>),
    /// Sent instead of a `Hello` after the proof: this connection carries the strong keys'
    /// group (Raft messages, forwarded commands; `strong/transport.rs`), not replication.
    Strong,
}

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_varint_encoding().with_limit(MAX_FRAME as u64)
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("frame of {0} bytes is larger than the limit")]
    TooLarge(usize),
    #[error("undecodable frame: {0}")]
    Decode(String),
}

pub fn encode(msg: &Message, out: &mut BytesMut) {
    let body = options().serialize(msg).expect("messages always serialize");
    out.put_u32(body.len() as u32);
    out.extend_from_slice(&body);
}

/// Frames a raw body (the greeting, which is not a bincode message).
pub fn encode_raw(body: &[u8], out: &mut BytesMut) {
    out.put_u32(body.len() as u32);
    out.extend_from_slice(body);
}

/// Takes one whole frame's body off the front of `buf`, if it has arrived; frames longer than
/// `limit` are refused before they are buffered.
pub fn take_frame(buf: &mut BytesMut, limit: usize) -> Result<Option<BytesMut>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > limit {
        return Err(WireError::TooLarge(len));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len)))
}

/// Takes one whole message off the front of `buf`, if it has arrived.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
    match take_frame(buf, MAX_FRAME)? {
        None => Ok(None),
        Some(body) => decode_body(&body).map(Some),
    }
}

/// Decodes one frame's body.
pub fn decode_body(body: &[u8]) -> Result<Message, WireError> {
    options().deserialize(body).map_err(|e| WireError::Decode(e.to_string()))
}

pub fn encode_snapshot(s: &Snapshot) -> Vec<u8> {
    options().with_no_limit().serialize(s).expect("snapshots always serialize")
}

pub fn decode_snapshot(b: &[u8]) -> Result<Snapshot, WireError> {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .deserialize(b)
        .map_err(|e| WireError::Decode(e.to_string()))
}

/// Per-connection sender state: the last dependencies sent for each origin.
#[derive(Default)]
pub struct Encoder {
    last_deps: HashMap<ReplicaId, VersionVector>,
}

/// A [`WireUpdate`] that borrows its operations from the update it encodes: it serializes to the
/// same bytes, without copying keys and values.
#[derive(Serialize)]
struct WireUpdateRef<'a> {
    origin: ReplicaId,
    deps_delta: Vec<(ReplicaId, Timestamp)>,
    ops: &'a [(Timestamp, Op)],
}

impl Encoder {
    /// The update's dependencies as a change against the last ones sent for its origin.
    fn deps_delta(&mut self, u: &Update) -> Vec<(ReplicaId, Timestamp)> {
        let prev = self.last_deps.entry(u.origin).or_default();
        let mut delta: Vec<(ReplicaId, Timestamp)> =
            u.deps.iter().filter(|&(r, t)| prev.get(r) != t).collect();
        // Entries that disappeared (a retired member) are sent as zero.
        delta.extend(
            prev.iter().filter(|(r, _)| u.deps.get(*r) == Timestamp::ZERO).map(|(r, _)| (r, Timestamp::ZERO)),
        );
        *prev = u.deps.clone();
        delta
    }

    pub fn encode(&mut self, u: &Update) -> WireUpdate {
        WireUpdate { origin: u.origin, deps_delta: self.deps_delta(u), ops: u.ops.clone() }
    }
}

/// The index of `Message::Updates` in the enum: bincode writes it (as a varint) before the body.
const UPDATES_VARIANT: u32 = 2;

/// Appends one `Message::Updates` frame for `updates`, encoded from them in place: the bytes are
/// those of `encode(&Message::Updates(..))`, without copying the operations first.
pub fn encode_updates(encoder: &mut Encoder, updates: &[std::sync::Arc<Update>], out: &mut BytesMut) {
    let refs: Vec<WireUpdateRef<'_>> = updates
        .iter()
        .map(|u| WireUpdateRef { origin: u.origin, deps_delta: encoder.deps_delta(u), ops: &u.ops })
        .collect();
    let start = out.len();
    out.put_u32(0);
    let mut w = out.writer();
    options().serialize_into(&mut w, &UPDATES_VARIANT).expect("a variant index serializes");
    options().serialize_into(&mut w, &refs).expect("updates always serialize");
    let out = w.into_inner();
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Per-connection receiver state, the mirror of [`Encoder`].
#[derive(Default)]
pub struct Decoder {
    last_deps: HashMap<ReplicaId, VersionVector>,
}

impl Decoder {
    pub fn decode(&mut self, w: WireUpdate) -> Update {
        let prev = self.last_deps.entry(w.origin).or_default();
        let mut deps: VersionVector = prev.iter().collect();
        for (r, t) in w.deps_delta {
            if t == Timestamp::ZERO {
                deps.remove(r);
            } else {
                deps.set(r, t);
            }
        }
        *prev = deps.clone();
        Update { origin: w.origin, deps, ops: w.ops }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Blob, Effect};

    #[test]
    fn frames_round_trip_and_partial_frames_wait() {
        let msg = Message::Peers(vec!["10.0.0.1:7379".into()]);
        let mut buf = BytesMut::new();
        encode(&msg, &mut buf);
        let mut partial = BytesMut::from(&buf[..buf.len() - 1]);
        assert!(decode(&mut partial).unwrap().is_none());
        assert_eq!(decode(&mut buf).unwrap(), Some(msg));
        assert!(buf.is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x05hello"[..]);
        assert!(decode(&mut buf).is_err());
        let mut huge = BytesMut::from(&b"\xff\xff\xff\xff"[..]);
        assert!(matches!(decode(&mut huge), Err(WireError::TooLarge(_))));
    }

    #[test]
    fn updates_encoded_in_place_match_the_owned_encoding() {
        let op = Op { db: 0, key: Blob::from_slice(b"k"), effect: Effect::Delete };
        let updates: Vec<std::sync::Arc<Update>> = (1..5u64)
            .map(|i| {
                let mut deps = VersionVector::new();
                deps.set(i % 2 + 1, Timestamp(i * 10));
                std::sync::Arc::new(Update { origin: 7, deps, ops: vec![(Timestamp(i * 11), op.clone())] })
            })
            .collect();
        let mut owned = BytesMut::new();
        let mut enc = Encoder::default();
        encode(&Message::Updates(updates.iter().map(|u| enc.encode(u)).collect()), &mut owned);
        let mut in_place = BytesMut::new();
        encode_updates(&mut Encoder::default(), &updates, &mut in_place);
        assert_eq!(owned, in_place);
    }

    #[test]
    fn dependency_deltas_reconstruct_the_vector() {
        let (mut enc, mut dec) = (Encoder::default(), Decoder::default());
        let op = Op { db: 0, key: Blob::from_slice(b"k"), effect: Effect::Delete };
        let mut deps = VersionVector::new();
        for step in 1..20u64 {
            deps.set(step % 3 + 1, Timestamp(step * 10));
            let u = Update { origin: 7, deps: deps.clone(), ops: vec![(Timestamp(step * 11), op.clone())] };
            let w = enc.encode(&u);
            assert!(w.deps_delta.len() <= 1);
            assert_eq!(dec.decode(w), u);
        }
    }
}
