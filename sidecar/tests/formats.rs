//! The wire and disk formats, pinned by golden bytes in `tests/fixtures/formats/` (its README
//! says what each file holds).
//!
//! - Encoding today's fixture values gives exactly the committed bytes, and decoding the
//!   committed bytes gives the values back: every `Effect` variant in a log record, an update of
//!   several operations, the stability frontier, an installed snapshot, every mesh message and
//!   the greeting, a snapshot holding every kind of value, and a small data directory.
//! - Every variant of `Effect`, `Message`, `Ttl` and of a key's value (`Part`) has a fixture:
//!   the names below come from exhaustive matches (a new variant does not compile until it has
//!   a name) and the test compares their number with the variants serde knows.
//! - Every data directory format this release reads still opens: the committed directories of
//!   older formats, and one written by the previous release's binary (commit c23aa2d), which
//!   today's replica starts on with every key and value intact.
//! - A replica of the previous release (mesh protocol 1) dialling today's gets a refusal it can
//!   decode, naming both protocols.
//!
//! When a fixture differs, a format changed: see [`FORMAT_CHANGED`]. `SYNCMESH_BLESS=1 cargo test
//! -p syncmesh-replica --test formats` writes the fixtures of the current versions.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bincode::Options as _;
use bytes::BytesMut;
use redis::Value as Reply;
use serde::de::DeserializeOwned;
use smallvec::smallvec;

use common::{free_port, ReplicaProcess};
use syncmesh_replica::config::AppendFsync;
use syncmesh_replica::crdt::extended::Extended;
use syncmesh_replica::crdt::keyspace::Part;
use syncmesh_replica::crdt::list::Position;
use syncmesh_replica::crdt::replica::{Snapshot, Update, FUNCTIONS_DB};
use syncmesh_replica::crdt::stream::StreamId;
use syncmesh_replica::crdt::{Blob, Clock, Dot, Effect, Op, Replica, ReplicaId, Ttl, Value, VersionVector};
use syncmesh_replica::mesh::proof::{FirstFrame, Greeting};
use syncmesh_replica::mesh::wire::{self, Hello, Message, PROTOCOL_VERSION};
use syncmesh_replica::storage::log::{self, Decoded, LogEntry};
use syncmesh_replica::storage::{self, recover, snapshot, FORMAT, OLDEST_FORMAT};

/// What a failing comparison says.
const FORMAT_CHANGED: &str = "\
A format changed: what this build encodes differs from the committed fixture. Formats are \
pinned so that no replica ever misreads bytes another build wrote or sent.
- Not intended? The change altered the encoding by accident: an enum variant inserted or moved \
(add variants at the end, and still bump), a field added, removed, reordered or retyped in a \
type that is logged, sent or snapshotted (Effect, Op, Update, Message, the CRDT state).
- Intended? Bump the version of what changed: storage::FORMAT for the data directory (log \
records, snapshot file), mesh::wire::PROTOCOL_VERSION for the mesh (and both when the snapshot \
encoding changes). Keep a reader for the old data directory format (directories written by the \
previous release must still open), and make the mesh either still speak the old protocol or \
refuse it with a clear error. Then `SYNCMESH_BLESS=1 cargo test -p syncmesh-replica --test \
formats` writes the new version's fixtures; keep the old version's disk fixtures, they are read \
by `every_data_directory_format_this_release_reads_still_opens`.";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats")
}

fn disk_dir(format: u32) -> PathBuf {
    fixtures().join(format!("disk-{format}"))
}

fn mesh_dir() -> PathBuf {
    fixtures().join(format!("mesh-{PROTOCOL_VERSION}"))
}

fn prev_release_dir() -> PathBuf {
    fixtures().join("prev-release-c23aa2d")
}

fn bless() -> bool {
    std::env::var("SYNCMESH_BLESS").is_ok_and(|v| v == "1")
}

// ---- the fixture values ----

const A: ReplicaId = 0x0a1a_0a1a_0a1a_0a1a;
const B: ReplicaId = 0x0b2b_0b2b_0b2b_0b2b;
/// The wall clock of the first write (2023-11-14), in Unix milliseconds.
const T0: u64 = 1_700_000_000_000;
/// A deadline in 2100: far enough that the fixtures' keys never expire while tests read them.
const DEADLINE: u64 = 4_102_444_800_000;
/// When the fixtures' state is read (a day after the writes).
const NOW: u64 = T0 + 86_400_000;
const DATABASE: &str = "orders";

fn blob(s: &str) -> Blob {
    Blob::from_slice(s.as_bytes())
}

fn blobs(s: &[&str]) -> Vec<Blob> {
    s.iter().map(|s| blob(s)).collect()
}

fn pairs(s: &[(&str, &str)]) -> Vec<(Blob, Blob)> {
    s.iter().map(|(a, b)| (blob(a), blob(b))).collect()
}

fn ext(s: &str) -> Extended {
    Extended::parse(s.as_bytes()).expect("a number")
}

/// A list position at `digit` on the first level, inserted by `dot` (`Dot::default()`: by the
/// write that carries it, which the replica fills in).
fn position(digit: u64, dot: Dot) -> Position {
    Position(smallvec![(digit, dot)])
}

const MIDDLE: u64 = 1 << 63;
const STEP: u64 = 1 << 32;

/// Replicas A and B with a state of every kind of value: strings (one with a TTL, one grown by
/// `INCRBYFLOAT`), a counter incremented on both (a run per replica, two increments in A's),
/// hashes with integer and float increments, a set, a sorted set, a HyperLogLog, a list, a stream
/// with entries, a consumer group and acks, a key with an expiry, a key in another database and
/// a function library. A's writes are then A's snapshot: the data directory's `snapshot.bin`.
struct World {
    a: Replica,
    b: Replica,
    wall: u64,
    /// Dots of A's and B's list inserts, for the positions later operations name.
    list_dot: Dot,
}

impl World {
    fn new() -> World {
        let mut a = Replica::new(A, Clock::new(0));
        let mut b = Replica::new(B, Clock::new(0));
        // In a mesh: writes are not stable until the mesh says so, so increments stay apart.
        a.set_replicated(true);
        b.set_replicated(true);
        let mut w = World { a, b, wall: T0, list_dot: Dot::default() };
        let s = |w: &mut World, key: &str, effect: Effect| w.on_a(0, key, effect);
        s(&mut w, "str", Effect::Assign { value: Value::from_slice(b"hello"), ttl: Ttl::Clear });
        s(&mut w, "str:ttl", Effect::Assign { value: Value::from_slice(b"soon"), ttl: Ttl::At(DEADLINE) });
        s(&mut w, "counter", Effect::Incr { int: 5, float: 0.0, is_float: false, ext: None });
        s(&mut w, "counter", Effect::Incr { int: -2, float: 0.0, is_float: false, ext: None });
        w.on_b(0, "counter", Effect::Incr { int: 7, float: 0.0, is_float: false, ext: None });
        s(&mut w, "float", Effect::IncrFloat { by: ext("1.5"), value: blob("1.5") });
        s(&mut w, "hash", Effect::HashSet { fields: pairs(&[("f1", "v1"), ("f2", "v2")]) });
        s(
            &mut w,
            "hash",
            Effect::HashIncr { field: blob("n"), int: 3, float: 0.0, is_float: false, ext: None },
        );
        s(&mut w, "hash", Effect::HashIncrFloat { field: blob("x"), by: ext("0.25"), value: blob("0.25") });
        s(&mut w, "set", Effect::SetAdd { members: blobs(&["a", "b", "c"]) });
        s(&mut w, "zset", Effect::ZAdd { members: vec![(blob("m1"), 1.0), (blob("m2"), 2.5)] });
        s(&mut w, "zset", Effect::ZIncr { member: blob("m1"), delta: 0.5 });
        s(&mut w, "hll", Effect::HllAdd { updates: vec![(1, 3), (100, 5), (16_383, 1)] });
        let items = vec![
            (position(MIDDLE, Dot::default()), blob("x")),
            (position(MIDDLE + STEP, Dot::default()), blob("y")),
        ];
        w.list_dot = w.on_a(0, "list", Effect::ListInsert { items });
        w.on_b(
            0,
            "list",
            Effect::ListInsert { items: vec![(position(MIDDLE - STEP, Dot::default()), blob("w"))] },
        );
        s(&mut w, "stream", Effect::StreamAdd { id: StreamId::new(1, 1), fields: pairs(&[("f", "v1")]) });
        s(
            &mut w,
            "stream",
            Effect::StreamAdd { id: StreamId::new(1, 2), fields: pairs(&[("f", "v2"), ("g", "w")]) },
        );
        s(
            &mut w,
            "stream",
            Effect::GroupCreate { group: blob("g"), last: StreamId::MIN, entries_read: Some(0) },
        );
        s(&mut w, "stream", Effect::GroupAck { group: blob("g"), ids: vec![StreamId::new(1, 1)] });
        s(&mut w, "expiring", Effect::SetAdd { members: blobs(&["only"]) });
        s(&mut w, "expiring", Effect::Expire { deadline: Some(DEADLINE) });
        w.on_a(3, "other-db", Effect::Assign { value: Value::from_slice(b"in db 3"), ttl: Ttl::Clear });
        let library = "#!lua name=mylib\nredis.register_function('answer', function() return 42 end)";
        w.on_a(
            FUNCTIONS_DB as u8,
            "mylib",
            Effect::Assign { value: Value::from_slice(library.as_bytes()), ttl: Ttl::Clear },
        );
        w
    }

    fn tick(&mut self) -> u64 {
        self.wall += 1;
        self.wall
    }

    /// A write on A, as one command: its update goes to B. Returns its dot.
    fn on_a(&mut self, db: u8, key: &str, effect: Effect) -> Dot {
        let u = self.write_a(db, key, effect);
        assert_eq!(self.b.deliver(&u), syncmesh_replica::crdt::replica::Delivery::Applied);
        u.last_dot()
    }

    fn write_a(&mut self, db: u8, key: &str, effect: Effect) -> Update {
        let wall = self.tick();
        self.a.write(Op { db, key: blob(key), effect }, wall);
        self.a.take_update().expect("A records its writes")
    }

    /// A write on B, delivered to A.
    fn on_b(&mut self, db: u8, key: &str, effect: Effect) -> Update {
        let wall = self.tick();
        self.b.write(Op { db, key: blob(key), effect }, wall);
        let u = self.b.take_update().expect("B records its writes");
        assert_eq!(self.a.deliver(&u), syncmesh_replica::crdt::replica::Delivery::Applied);
        u
    }
}

/// The name of an effect's variant. Exhaustive: a new variant does not compile until it is
/// named here, and `every_effect_has_a_fixture` then fails until `every_effect` has one.
fn effect_name(e: &Effect) -> &'static str {
    match e {
        Effect::Assign { .. } => "assign",
        Effect::Incr { .. } => "incr",
        Effect::Delete => "delete",
        Effect::Expire { .. } => "expire",
        Effect::HashSet { .. } => "hash-set",
        Effect::HashIncr { .. } => "hash-incr",
        Effect::HashDel { .. } => "hash-del",
        Effect::SetAdd { .. } => "set-add",
        Effect::SetRem { .. } => "set-rem",
        Effect::ZAdd { .. } => "zadd",
        Effect::ZIncr { .. } => "zincr",
        Effect::ZRem { .. } => "zrem",
        Effect::HllAdd { .. } => "hll-add",
        Effect::Flush => "flush",
        Effect::ListInsert { .. } => "list-insert",
        Effect::ListRemove { .. } => "list-remove",
        Effect::ListSet { .. } => "list-set",
        Effect::StreamAdd { .. } => "stream-add",
        Effect::StreamDel { .. } => "stream-del",
        Effect::StreamSetId { .. } => "stream-set-id",
        Effect::GroupCreate { .. } => "group-create",
        Effect::GroupDestroy { .. } => "group-destroy",
        Effect::GroupSetId { .. } => "group-set-id",
        Effect::GroupAck { .. } => "group-ack",
        Effect::IncrFloat { .. } => "incr-float",
        Effect::HashIncrFloat { .. } => "hash-incr-float",
    }
}

fn ttl_name(t: &Ttl) -> &'static str {
    match t {
        Ttl::Keep => "keep",
        Ttl::Clear => "clear",
        Ttl::At(_) => "at",
    }
}

fn part_name(p: &Part) -> &'static str {
    match p {
        Part::Str(_) => "string",
        Part::Hash(_) => "hash",
        Part::Set(_) => "set",
        Part::ZSet(_) => "zset",
        Part::Hll(_) => "hll",
        Part::List(_) => "list",
        Part::Stream(_) => "stream",
    }
}

fn message_name(m: &Message) -> &'static str {
    match m {
        Message::Hello(_) => "hello",
        Message::Refused(_) => "refused",
        Message::Updates(_) => "updates",
        Message::Ack { .. } => "ack",
        Message::Snapshot { .. } => "snapshot",
        Message::Peers(_) => "peers",
        Message::Publish { .. } => "publish",
        Message::Proof(_) => "proof",
        Message::Strong => "strong",
    }
}

/// One write of every effect, each on A as its own command, on the state of [`World::new`].
fn every_effect(list: Dot) -> Vec<(u8, &'static str, Effect)> {
    let id = StreamId::new;
    vec![
        (0, "str", Effect::Assign { value: Value::from_slice(b"world"), ttl: Ttl::Keep }),
        (0, "counter", Effect::Incr { int: 1, float: 0.0, is_float: false, ext: None }),
        (0, "str:ttl", Effect::Delete),
        (0, "expiring", Effect::Expire { deadline: None }),
        (0, "hash", Effect::HashSet { fields: pairs(&[("f3", "v3")]) }),
        (0, "hash", Effect::HashIncr { field: blob("n"), int: 2, float: 0.0, is_float: false, ext: None }),
        (0, "hash", Effect::HashDel { fields: blobs(&["f1"]) }),
        (0, "set", Effect::SetAdd { members: blobs(&["d"]) }),
        (0, "set", Effect::SetRem { members: blobs(&["a"]) }),
        (0, "zset", Effect::ZAdd { members: vec![(blob("m3"), -1.0)] }),
        (0, "zset", Effect::ZIncr { member: blob("m2"), delta: 1.0 }),
        (0, "zset", Effect::ZRem { members: blobs(&["m1"]) }),
        (0, "hll", Effect::HllAdd { updates: vec![(2, 7)] }),
        (3, "", Effect::Flush),
        (
            0,
            "list",
            Effect::ListInsert { items: vec![(position(MIDDLE + 2 * STEP, Dot::default()), blob("z"))] },
        ),
        (0, "list", Effect::ListRemove { positions: vec![position(MIDDLE, list)] }),
        (0, "list", Effect::ListSet { position: position(MIDDLE + STEP, list), value: blob("Y") }),
        (0, "stream", Effect::StreamAdd { id: id(1, 3), fields: pairs(&[("f", "v3")]) }),
        (0, "stream", Effect::StreamDel { ids: vec![id(1, 1)], max_deleted: id(1, 1) }),
        (
            0,
            "stream",
            Effect::StreamSetId { last: id(5, 0), entries_added: Some(10), max_deleted: Some(id(1, 1)) },
        ),
        (0, "stream", Effect::GroupCreate { group: blob("g2"), last: id(1, 2), entries_read: Some(2) }),
        (0, "stream", Effect::GroupDestroy { group: blob("g2") }),
        (0, "stream", Effect::GroupSetId { group: blob("g"), last: id(1, 3), entries_read: None }),
        (0, "stream", Effect::GroupAck { group: blob("g"), ids: vec![id(1, 2)] }),
        (0, "float", Effect::IncrFloat { by: ext("2.25"), value: blob("3.75") }),
        (0, "hash", Effect::HashIncrFloat { field: blob("x"), by: ext("1"), value: blob("1.25") }),
    ]
}

/// Everything a format test needs, built once from the same deterministic writes.
struct Fixtures {
    /// A after the writes of [`World::new`]: the data directory's snapshot.
    snapshot: Snapshot,
    /// The log records of the segment after the snapshot, by name, in order: the stability
    /// frontier, one update per effect, a transaction of several operations from B, and B's
    /// snapshot installed.
    records: Vec<(String, Record)>,
    /// A after the records: what the data directory holds.
    state: Replica,
    /// B's snapshot (installed on A, and sent in a `Snapshot` message).
    peer_snapshot: Snapshot,
    /// Every update of the segment, in order.
    updates: Vec<Update>,
}

enum Record {
    Stable(VersionVector),
    Update(Update),
    Installed(Snapshot),
}

impl Record {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Stable(vv) => log::encode_stable(vv, out),
            Record::Update(u) => log::encode_update(u, out),
            Record::Installed(s) => {
                assert_eq!(log::encode_installed(&wire::encode_snapshot(s), out), 1, "one part");
            }
        }
    }
}

fn build() -> Fixtures {
    let mut w = World::new();
    let snapshot = w.a.snapshot();
    let mut records = Vec::new();
    // A segment starts with the stability frontier: here, everything B had when A snapshotted.
    let stable = w.b.version_vector().clone();
    w.a.set_stable(stable.clone());
    records.push(("stable".to_string(), Record::Stable(stable)));
    let mut updates = Vec::new();
    for (db, key, effect) in every_effect(w.list_dot) {
        let name = format!("update-{}", effect_name(&effect));
        let u = w.write_a(db, key, effect);
        w.b.deliver(&u);
        updates.push(u.clone());
        records.push((name, Record::Update(u)));
    }
    // A transaction on B: several operations in one update, with every kind of TTL.
    let wall = w.tick();
    for (key, ttl) in [("tx:1", Ttl::Clear), ("tx:2", Ttl::At(DEADLINE)), ("tx:1", Ttl::Keep)] {
        w.b.write(
            Op {
                db: 1,
                key: blob(key),
                effect: Effect::Assign { value: Value::from_slice(key.as_bytes()), ttl },
            },
            wall,
        );
    }
    let tx = w.b.take_update().expect("B records");
    w.a.deliver(&tx);
    updates.push(tx.clone());
    records.push(("update-transaction-from-peer".into(), Record::Update(tx)));
    // B's state, installed by A (as a peer's snapshot is, when A was far behind).
    w.b.write(
        Op { db: 2, key: blob("only-in-b"), effect: Effect::SetAdd { members: blobs(&["m"]) } },
        w.wall + 1,
    );
    w.b.take_update();
    let peer_snapshot = w.b.snapshot();
    w.a.install(peer_snapshot.clone());
    records.push(("installed-snapshot".into(), Record::Installed(peer_snapshot.clone())));
    Fixtures { snapshot, records, state: w.a, peer_snapshot, updates }
}

/// Each mesh message (and the greeting, which is not one), by name.
fn mesh_frames(f: &Fixtures) -> Vec<(String, Vec<u8>, Option<Message>)> {
    let vv = f.state.version_vector().clone();
    let mut out = Vec::new();
    let greeting = Greeting { protocol: PROTOCOL_VERSION, nonce: [7; 32] };
    let mut frame = BytesMut::new();
    wire::encode_raw(&greeting.encode(), &mut frame);
    out.push(("greeting".to_string(), frame.to_vec(), None));
    let mut encoder = wire::Encoder::default();
    let messages = vec![
        Message::Proof(vec![0x5a; 32]),
        Message::Hello(Hello {
            magic: wire::MAGIC.into(),
            protocol: PROTOCOL_VERSION,
            database: DATABASE.into(),
            replica: A,
            listen_port: 7379,
            advertise: Some("10.0.0.1:7379".into()),
            vv: vv.clone(),
        }),
        Message::Refused("database 'payments' does not match this replica's 'orders'".into()),
        Message::Updates(f.updates.iter().map(|u| encoder.encode(u)).collect()),
        Message::Ack {
            vv: vv.clone(),
            members: vec![(A, vv.clone(), 12), (B, vv, 7)],
            retired: vec![0xdead],
        },
        Message::Snapshot { part: wire::encode_snapshot(&f.peer_snapshot)[..48].to_vec(), last: false },
        Message::Peers(vec!["10.0.0.1:7379".into(), "[fd00::1]:7379".into()]),
        Message::Publish { origin: B, seq: 42, channel: b"news".to_vec(), payload: b"hello".to_vec() },
        Message::Strong,
    ];
    for m in messages {
        let mut frame = BytesMut::new();
        wire::encode(&m, &mut frame);
        out.push((message_name(&m).to_string(), frame.to_vec(), Some(m)));
    }
    out
}

// ---- comparing with (and writing) the committed fixtures ----

/// `name hex` lines, with `#` comments.
fn read_hex(path: &Path) -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (SYNCMESH_BLESS=1 writes it)", path.display()));
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, hex) = l.split_once(' ').expect("name hex");
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            (name.to_string(), bytes)
        })
        .collect()
}

fn write_hex(path: &Path, header: &str, items: &[(String, Vec<u8>)]) {
    let mut text = String::new();
    for line in header.lines() {
        text.push_str(&format!("# {line}\n"));
    }
    for (name, bytes) in items {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        text.push_str(&format!("{name} {hex}\n"));
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()))
}

/// Blessing writes the fixtures of a version that has none; it never changes the committed
/// bytes of a version, which replicas of the releases that wrote them rely on.
fn refuse_to_rewrite(path: &Path) -> ! {
    panic!(
        "SYNCMESH_BLESS=1 refuses to change {}: its version already has committed fixtures, and \
         a replica of that version reads and writes those bytes. Bump the version (its fixtures \
         then go to a new directory). Only if that version was never released: delete its \
         directory and bless again.\n{FORMAT_CHANGED}",
        path.display()
    )
}

/// Compares encoded `items` with the committed hex file (or writes it when blessing).
fn pin_hex(path: &Path, header: &str, items: &[(String, Vec<u8>)]) {
    if bless() {
        if path.exists() && read_hex(path) != items {
            refuse_to_rewrite(path);
        }
        write_hex(path, header, items);
        return;
    }
    let committed = read_hex(path);
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(items),
        names(&committed),
        "{}: the fixtures are not the same list\n{FORMAT_CHANGED}",
        path.display()
    );
    for ((name, ours), (_, theirs)) in items.iter().zip(&committed) {
        assert!(
            ours == theirs,
            "{}: `{name}` differs from the committed bytes at byte {} ({} bytes now, {} committed)\n{FORMAT_CHANGED}",
            path.display(),
            first_difference(ours, theirs),
            ours.len(),
            theirs.len()
        );
    }
}

/// Compares `bytes` with a committed binary fixture (or writes it when blessing).
fn pin_file(path: &Path, bytes: &[u8]) {
    if bless() {
        if std::fs::read(path).is_ok_and(|committed| committed != bytes) {
            refuse_to_rewrite(path);
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        return;
    }
    let committed = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e} (SYNCMESH_BLESS=1 writes it)", path.display()));
    assert!(
        committed == bytes,
        "{}: differs from the committed bytes at byte {} ({} bytes now, {} committed)\n{FORMAT_CHANGED}",
        path.display(),
        first_difference(bytes, &committed),
        bytes.len(),
        committed.len()
    );
}

/// How many variants serde knows the enum `T` to have. bincode reads an enum's variant index
/// first, and serde's derived code refuses an index past the last one ("expected variant index
/// 0 <= i < N"), while a valid index fails later, on the missing fields, or decodes.
fn variants<T: DeserializeOwned>() -> usize {
    let options = bincode::DefaultOptions::new().with_varint_encoding();
    (0..=250u8)
        .find(|&i| {
            options.deserialize::<T>(&[i]).is_err_and(|e| e.to_string().contains("expected variant index"))
        })
        .expect("an enum of at most 250 variants") as usize
}

// ---- (a) and (b): today's values encode to the committed bytes, which decode to the values ----

fn records_header() -> String {
    format!(
        "Log records of data directory format {FORMAT} (sidecar/src/storage/log.rs): length:u32 LE, crc32:u32 LE, payload.\n\
         One per Effect variant, a multi-operation update from a peer, the stability frontier and an installed snapshot.\n\
         Pinned by sidecar/tests/formats.rs; SYNCMESH_BLESS=1 rewrites this file: read that test's FORMAT_CHANGED first."
    )
}

fn encoded_records(f: &Fixtures) -> Vec<(String, Vec<u8>)> {
    f.records
        .iter()
        .map(|(name, r)| {
            let mut out = Vec::new();
            r.encode(&mut out);
            (name.clone(), out)
        })
        .collect()
}

#[test]
fn log_records_are_pinned() {
    let f = build();
    let ours = encoded_records(&f);
    pin_hex(&disk_dir(FORMAT).join("records.hex"), &records_header(), &ours);
    // The committed bytes decode to the values.
    for ((name, bytes), (_, record)) in read_hex(&disk_dir(FORMAT).join("records.hex")).iter().zip(&f.records)
    {
        let payload = &bytes[8..];
        let other = || panic!("{name}: decodes to another kind of entry");
        // Exhaustive: a new kind of log entry does not compile until it is checked here.
        match log::decode_record(payload).unwrap_or_else(|e| panic!("{name}: {e}")) {
            Decoded::Entry(LogEntry::Update(u)) => match record {
                Record::Update(want) => assert_eq!(&u, want, "{name}"),
                _ => other(),
            },
            Decoded::Entry(LogEntry::Stable(vv)) => match record {
                Record::Stable(want) => assert_eq!(&vv, want, "{name}"),
                _ => other(),
            },
            Decoded::Entry(LogEntry::Installed(_)) => {
                panic!("{name}: installed snapshots are logged in parts")
            }
            Decoded::InstalledPart { last, bytes } => match record {
                Record::Installed(want) => {
                    assert!(last, "{name}: one part");
                    assert_eq!(&wire::decode_snapshot(bytes).unwrap(), want, "{name}")
                }
                _ => other(),
            },
        }
    }
}

#[test]
fn every_effect_ttl_and_kind_of_value_has_a_fixture() {
    let f = build();
    let effects: BTreeSet<&str> = f
        .records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Update(u) if u.origin == A => Some(effect_name(&u.ops[0].1.effect)),
            _ => None,
        })
        .collect();
    assert_eq!(
        effects.len(),
        variants::<Effect>(),
        "every Effect variant has a log record fixture: {effects:?}"
    );
    let ttls: BTreeSet<&str> = f
        .updates
        .iter()
        .flat_map(|u| &u.ops)
        .filter_map(|(_, op)| match &op.effect {
            Effect::Assign { ttl, .. } => Some(ttl_name(ttl)),
            _ => None,
        })
        .collect();
    assert_eq!(ttls.len(), variants::<Ttl>(), "every Ttl has a fixture: {ttls:?}");
    let parts: BTreeSet<&str> = f
        .snapshot
        .dbs
        .iter()
        .flat_map(|(_, entries)| entries)
        .filter_map(|(_, e)| e.visible().map(part_name))
        .collect();
    assert_eq!(parts.len(), variants::<Part>(), "the snapshot holds every kind of value: {parts:?}");
    let dbs: Vec<u8> = f.snapshot.dbs.iter().map(|(db, _)| *db).collect();
    assert!(dbs.contains(&0) && dbs.contains(&3) && dbs.contains(&(FUNCTIONS_DB as u8)), "{dbs:?}");
    let messages: BTreeSet<&str> =
        mesh_frames(&f).iter().filter_map(|(_, _, m)| m.as_ref().map(message_name)).collect();
    assert_eq!(messages.len(), variants::<Message>(), "every mesh message has a fixture: {messages:?}");
}

#[test]
fn the_snapshot_encoding_is_pinned() {
    let f = build();
    let path = disk_dir(FORMAT).join("data-dir").join(snapshot::FILE_NAME);
    pin_file(&path, &snapshot::encode(A, 2, &f.snapshot));
    let file = snapshot::decode(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!((file.replica, file.next_segment), (A, 2));
    assert_eq!(file.snapshot, f.snapshot);
    // The body is the mesh's snapshot encoding.
    assert_eq!(wire::decode_snapshot(&std::fs::read(&path).unwrap()[44..]).unwrap(), f.snapshot);
}

#[test]
fn mesh_frames_are_pinned() {
    let f = build();
    let frames = mesh_frames(&f);
    let items: Vec<(String, Vec<u8>)> = frames.iter().map(|(n, b, _)| (n.clone(), b.clone())).collect();
    let header = format!(
        "Mesh frames of protocol {PROTOCOL_VERSION} (sidecar/src/mesh/wire.rs): length:u32 BE, body.\n\
         The greeting (proof.rs) and one of each Message.\n\
         Pinned by sidecar/tests/formats.rs; SYNCMESH_BLESS=1 rewrites this file: read that test's FORMAT_CHANGED first."
    );
    let path = mesh_dir().join("frames.hex");
    pin_hex(&path, &header, &items);
    // The committed bytes decode to the values.
    for ((name, bytes), (_, _, message)) in read_hex(&path).iter().zip(&frames) {
        let mut buf = BytesMut::from(&bytes[..]);
        match message {
            None => {
                let body = wire::take_frame(&mut buf, 1024).unwrap().expect("a whole frame");
                let want = Greeting { protocol: PROTOCOL_VERSION, nonce: [7; 32] };
                assert_eq!(Greeting::decode(&body), FirstFrame::Greeting(want), "{name}");
            }
            Some(want) => {
                assert_eq!(&wire::decode(&mut buf).unwrap().expect("a whole frame"), want, "{name}")
            }
        }
        assert!(buf.is_empty(), "{name}: one frame");
    }
    // Updates are sent encoded in place; the same bytes, and they decode to the updates.
    let shared: Vec<std::sync::Arc<Update>> = f.updates.iter().cloned().map(std::sync::Arc::new).collect();
    let mut in_place = BytesMut::new();
    wire::encode_updates(&mut wire::Encoder::default(), &shared, &mut in_place);
    assert_eq!(Some(&in_place.to_vec()), items.iter().find(|(n, _)| n == "updates").map(|(_, b)| b));
    let Some(Message::Updates(wire_updates)) = wire::decode(&mut in_place).unwrap() else {
        panic!("updates")
    };
    let mut decoder = wire::Decoder::default();
    let decoded: Vec<Update> = wire_updates.into_iter().map(|w| decoder.decode(w)).collect();
    assert_eq!(decoded, f.updates);
}

/// The files of the golden data directory: `database`, `snapshot.bin`, `log-0000000002.aof`.
fn data_dir_files(f: &Fixtures) -> Vec<(&'static str, Vec<u8>)> {
    let mut segment = log::encode_header(A, 2).to_vec();
    for (_, bytes) in encoded_records(f) {
        segment.extend_from_slice(&bytes);
    }
    vec![
        ("database", format!("{DATABASE}\n").into_bytes()),
        (snapshot::FILE_NAME, snapshot::encode(A, 2, &f.snapshot)),
        ("log-0000000002.aof", segment),
    ]
}

/// A fresh directory under the system's temporary directory, removed when dropped (a failing
/// test included).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("syncmesh-formats-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// A copy of a fixture's data directory to open (a start writes a new segment and a lock
    /// file).
    fn copy_of(&self, data_dir: &Path) -> PathBuf {
        let to = self.0.join("data");
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(data_dir).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
        to
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Opens a data directory as a replica does at start; the replica it recovers.
fn open(dir: &Path) -> Replica {
    let options = recover::Options {
        database: DATABASE.into(),
        policy: AppendFsync::No,
        rewrite_min: 1 << 30,
        standalone: false,
        on_damage: recover::OnDamage::Stop,
    };
    let mut r = recover::open(dir, &options).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    r.storage.close();
    r.replica
}

fn digest_file(format: u32) -> PathBuf {
    disk_dir(format).join("digest")
}

#[test]
fn a_data_directory_is_pinned_and_opens_with_its_state() {
    let f = build();
    let dir = disk_dir(FORMAT).join("data-dir");
    for (name, bytes) in data_dir_files(&f) {
        pin_file(&dir.join(name), &bytes);
    }
    let digest = format!("{NOW} {:032x}\n", f.state.digest(NOW));
    if bless() {
        if std::fs::read_to_string(digest_file(FORMAT)).is_ok_and(|committed| committed != digest) {
            refuse_to_rewrite(&digest_file(FORMAT));
        }
        std::fs::write(digest_file(FORMAT), &digest).unwrap();
    }
    assert_eq!(std::fs::read_to_string(digest_file(FORMAT)).unwrap(), digest, "{FORMAT_CHANGED}");
    let scratch = Scratch::new("golden");
    let copy = scratch.copy_of(&dir);
    let recovered = open(&copy);
    assert_eq!(recovered.id, A);
    assert_eq!(recovered.version_vector(), f.state.version_vector());
    assert_eq!(
        recovered.digest(NOW),
        f.state.digest(NOW),
        "the directory holds the state it was written from"
    );
}

/// Every `disk-N/data-dir` committed for a format this release reads (today's and the older
/// ones kept when the format was bumped) opens without damage and holds the state its `digest`
/// file records (`SYNCMESH.DIGEST` of the state at that time).
#[test]
fn every_data_directory_format_this_release_reads_still_opens() {
    let mut opened = Vec::new();
    for format in OLDEST_FORMAT..=FORMAT {
        let dir = disk_dir(format).join("data-dir");
        // Today's is being rewritten when blessing (by the test above).
        if !dir.is_dir() || (bless() && format == FORMAT) {
            continue;
        }
        let recorded = std::fs::read_to_string(digest_file(format)).unwrap();
        let (now, digest) = recorded.trim().split_once(' ').expect("now digest");
        let scratch = Scratch::new(&format!("disk-{format}"));
        let copy = scratch.copy_of(&dir);
        let replica = open(&copy);
        assert_eq!(format!("{:032x}", replica.digest(now.parse().unwrap())), digest, "format {format}");
        opened.push(format);
    }
    assert!(bless() || opened.contains(&FORMAT), "today's format has a committed data directory");
}

// ---- the previous release: its data directory and its mesh handshake ----

/// A replica process of this build on `data` (a copy of a fixture), logging to `log`.
fn start_on(data: &Path, log: &Path, extra: &[&str]) -> ReplicaProcess {
    let mut args = vec!["--data-dir", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    ReplicaProcess::start_logged_on((free_port(), free_port(), free_port()), &args, log)
}

/// What the previous release was given to write, database by database: what
/// `write_prev_release_fixture` sends, and what today's replica must read back. Each entry is a
/// command; the checks below read every key.
const PREV_WRITES_BEFORE_REWRITE: &[&[&str]] = &[
    &["SET", "str", "hello"],
    &["SET", "str:ttl", "soon", "PXAT", "4102444800000"],
    &["INCR", "counter"],
    &["INCRBY", "counter", "41"],
    &["INCRBYFLOAT", "float", "1.5"],
    &["HSET", "hash", "f1", "v1", "f2", "v2"],
    &["HINCRBY", "hash", "n", "3"],
    &["SADD", "set", "a", "b", "c"],
    &["ZADD", "zset", "1", "m1", "2.5", "m2"],
    &["PFADD", "hll", "x", "y", "z"],
    &["RPUSH", "list", "x", "y", "z"],
    &["XADD", "stream", "1-1", "f", "v1"],
    &["XADD", "stream", "1-2", "f", "v2"],
    &["XGROUP", "CREATE", "stream", "g", "0"],
    &["SADD", "expiring", "only"],
    &["PEXPIREAT", "expiring", "4102444800000"],
];

const PREV_WRITES_AFTER_REWRITE: &[&[&str]] = &[
    &["INCR", "counter"],
    &["DECRBY", "counter", "2"],
    &["INCRBYFLOAT", "float", "2.25"],
    &["HINCRBYFLOAT", "hash", "x", "0.5"],
    &["HDEL", "hash", "f1"],
    &["SREM", "set", "a"],
    &["ZINCRBY", "zset", "0.5", "m1"],
    &["LPOP", "list"],
    &["LSET", "list", "0", "Y"],
    &["XADD", "stream", "*", "f", "v3"],
    &["XACK", "stream", "g", "1-1"],
    &["XGROUP", "SETID", "stream", "g", "1-2"],
    &["MULTI"],
    &["SET", "tx:1", "a"],
    &["SET", "tx:2", "b"],
    &["EXEC"],
    &["SELECT", "3"],
    &["SET", "db3", "three"],
    &["SELECT", "0"],
];

/// Writes on the peer (B) of the previous release's replica, which A logs as updates from a
/// peer: a counter then has a run per replica.
const PREV_WRITES_ON_PEER: &[&[&str]] = &[&["INCRBY", "counter", "100"], &["SET", "from-peer", "b"]];

fn run(c: &mut redis::Connection, commands: &[&[&str]]) {
    for command in commands {
        let mut cmd = redis::cmd(command[0]);
        for a in &command[1..] {
            cmd.arg(*a);
        }
        let _: Reply = cmd.query(c).unwrap_or_else(|e| panic!("{command:?}: {e}"));
    }
}

fn query<T: redis::FromRedisValue>(c: &mut redis::Connection, command: &[&str]) -> T {
    let mut cmd = redis::cmd(command[0]);
    for a in &command[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap_or_else(|e| panic!("{command:?}: {e}"))
}

/// Reads back, through a client, everything `PREV_WRITES_*` wrote.
fn check_prev_release_keys(c: &mut redis::Connection) {
    let get = |c: &mut redis::Connection, k: &str| query::<Option<String>>(c, &["GET", k]);
    assert_eq!(get(c, "str").as_deref(), Some("hello"));
    assert_eq!(get(c, "str:ttl").as_deref(), Some("soon"));
    assert_eq!(query::<i64>(c, &["PEXPIRETIME", "str:ttl"]), 4_102_444_800_000);
    assert_eq!(query::<i64>(c, &["PEXPIRETIME", "str"]), -1);
    // 1 + 41 on A, 100 on B, then +1 -2 on A.
    assert_eq!(get(c, "counter").as_deref(), Some("141"));
    assert_eq!(query::<i64>(c, &["INCR", "counter"]), 142, "the counter still counts");
    assert_eq!(query::<i64>(c, &["DECR", "counter"]), 141);
    assert_eq!(get(c, "float").as_deref(), Some("3.75"));
    let mut hash: Vec<(String, String)> = query(c, &["HGETALL", "hash"]);
    hash.sort();
    let want = [("f2", "v2"), ("n", "3"), ("x", "0.5")].map(|(a, b)| (a.to_string(), b.to_string()));
    assert_eq!(hash, want);
    let mut set: Vec<String> = query(c, &["SMEMBERS", "set"]);
    set.sort();
    assert_eq!(set, ["b", "c"]);
    assert_eq!(
        query::<Vec<String>>(c, &["ZRANGE", "zset", "0", "-1", "WITHSCORES"]),
        ["m1", "1.5", "m2", "2.5"]
    );
    assert_eq!(query::<i64>(c, &["PFCOUNT", "hll"]), 3);
    assert_eq!(query::<Vec<String>>(c, &["LRANGE", "list", "0", "-1"]), ["Y", "z"]);
    let entries: Vec<(String, Vec<String>)> = query(c, &["XRANGE", "stream", "-", "+"]);
    let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{entries:?}");
    assert_eq!(&ids[..2], ["1-1", "1-2"]);
    assert!(ids[2].split_once('-').is_some_and(|(ms, _)| ms.parse::<u64>().unwrap() > 1), "XADD *: {ids:?}");
    assert_eq!(entries[1].1, ["f", "v2"]);
    assert_eq!(query::<i64>(c, &["XLEN", "stream"]), 3);
    // The group and its position (XGROUP SETID 1-2).
    let groups: Vec<Vec<Reply>> = query(c, &["XINFO", "GROUPS", "stream"]);
    assert_eq!(groups.len(), 1);
    let fields: Vec<Option<String>> = groups[0].iter().map(|v| redis::from_redis_value(v).ok()).collect();
    let field =
        |name: &str| fields.iter().position(|f| f.as_deref() == Some(name)).map(|i| fields[i + 1].clone());
    assert_eq!(field("name"), Some(Some("g".into())), "{fields:?}");
    assert_eq!(field("last-delivered-id"), Some(Some("1-2".into())), "{fields:?}");
    assert_eq!(query::<Vec<String>>(c, &["SMEMBERS", "expiring"]), ["only"]);
    assert_eq!(query::<i64>(c, &["PEXPIRETIME", "expiring"]), 4_102_444_800_000);
    assert_eq!(get(c, "tx:1").as_deref(), Some("a"));
    assert_eq!(get(c, "tx:2").as_deref(), Some("b"));
    assert_eq!(get(c, "from-peer").as_deref(), Some("b"));
    assert_eq!(query::<i64>(c, &["DBSIZE"]), 14);
    let _: () = query(c, &["SELECT", "3"]);
    assert_eq!(get(c, "db3").as_deref(), Some("three"));
    assert_eq!(query::<i64>(c, &["DBSIZE"]), 1);
    let _: () = query(c, &["SELECT", "0"]);
}

/// A data directory written by the previous release (commit c23aa2d, data directory format 1):
/// today's replica starts on it with every key and value, keeps its identity, and writes on.
#[test]
fn a_data_directory_of_the_previous_release_opens_with_every_key() {
    let fixture = prev_release_dir().join("data-dir");
    let files: Vec<String> = std::fs::read_dir(&fixture)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().any(|f| f == "snapshot.bin") && files.iter().any(|f| f.starts_with("log-")),
        "{files:?}"
    );
    for name in &files {
        if name == "snapshot.bin" || name.starts_with("log-") {
            let bytes = std::fs::read(fixture.join(name)).unwrap();
            assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1, "{name} is of format 1");
        }
    }
    let scratch = Scratch::new("prev");
    let data = scratch.copy_of(&fixture);
    let log = scratch.path().join("replica.log");
    let id_before = storage::survey::survey(&data, true).unwrap().replica_id.expect("an identity");
    let mut r = start_on(&data, &log, &["--database", "default"]);
    let status = r.http_get("/status").1;
    assert!(status.contains(&format!("{id_before:016x}")), "the replica keeps its id: {status}");
    let mut c = r.client();
    check_prev_release_keys(&mut c);
    // Writes go on, in today's format, and everything survives a restart.
    run(&mut c, &[&["SELECT", "5"], &["SET", "after-upgrade", "yes"], &["SELECT", "0"]]);
    drop(c);
    r.kill9_and_restart();
    let mut c = r.client();
    check_prev_release_keys(&mut c);
    run(&mut c, &[&["SELECT", "5"]]);
    assert_eq!(query::<Option<String>>(&mut c, &["GET", "after-upgrade"]).as_deref(), Some("yes"));
    drop(c);
    drop(r);
    let survey = storage::survey::survey(&data, true).unwrap();
    assert!(survey.damage.is_none());
}

/// Reads one frame (4-byte big-endian length, body) from a socket; None at the end.
fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

/// The first frame a replica of the previous release (mesh protocol 1) sends when it dials, as
/// it sent it, gets a `Refused` as the only frame back: in protocol 1's `Message` enum, variant
/// 1 is `Refused(String)`, which is how it reads it, and the text names both protocols.
#[test]
fn a_previous_release_replica_dialling_in_is_refused_with_a_reason_it_can_read() {
    let hello = std::fs::read(prev_release_dir().join("hello-frame.bin")).unwrap();
    assert_eq!(Greeting::decode(&hello[4..]), FirstFrame::LegacyHello);
    let r = ReplicaProcess::start(&[]);
    let mut s = TcpStream::connect(("127.0.0.1", r.mesh_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&hello).unwrap();
    let body = read_frame(&mut s).expect("a reply");
    assert_eq!(body[0], 1, "variant 1: Refused, in protocol 1 as in protocol 2");
    let Message::Refused(why) = wire::decode_body(&body).unwrap() else { panic!("not a refusal: {body:?}") };
    assert!(
        why.contains("mesh protocol 1") && why.contains(&format!("protocol {PROTOCOL_VERSION}")),
        "{why}"
    );
    assert!(read_frame(&mut s).is_none(), "nothing else is sent: the connection closes");
    let refused = r.http_get("/metrics").1;
    assert!(refused.contains("syncmesh_mesh_handshakes_refused_total{reason=\"protocol\"} 1"), "{refused}");
}

/// A greeting of another protocol version (a later release) is refused with both versions named,
/// before this replica sends anything of its own.
#[test]
fn a_greeting_of_another_protocol_is_refused_naming_both() {
    let r = ReplicaProcess::start(&[]);
    let mut s = TcpStream::connect(("127.0.0.1", r.mesh_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut frame = BytesMut::new();
    wire::encode_raw(&Greeting { protocol: PROTOCOL_VERSION + 1, nonce: [1; 32] }.encode(), &mut frame);
    s.write_all(&frame).unwrap();
    let body = read_frame(&mut s).expect("a reply");
    let Message::Refused(why) = wire::decode_body(&body).unwrap() else { panic!("not a refusal: {body:?}") };
    let both = format!(
        "mesh protocol {} is not supported: this replica speaks protocol {PROTOCOL_VERSION}",
        PROTOCOL_VERSION + 1
    );
    assert!(why.contains(&both), "{why}");
    assert!(read_frame(&mut s).is_none());
}

/// The previous release's own binary, when `SYNCMESH_PREV_BIN` names it (built from commit
/// c23aa2d, see the fixtures' README): it dials today's replica and logs the refusal, and today's
/// replica dialling it refuses it. Without the binary this prints why it did not run: the
/// committed `hello-frame.bin` test above covers the handshake.
#[test]
fn the_previous_release_and_this_one_refuse_each_other_with_a_reason() {
    let Some(prev) = std::env::var_os("SYNCMESH_PREV_BIN").map(PathBuf::from) else {
        eprintln!("skipped: SYNCMESH_PREV_BIN does not name the previous release's binary");
        return;
    };
    let scratch = Scratch::new("mixed");
    let dir = scratch.path();
    let (new_log, old_log) = (dir.join("new.log"), dir.join("old.log"));
    let new = ReplicaProcess::start_logged_on((free_port(), free_port(), free_port()), &[], &new_log);
    let seed = format!("127.0.0.1:{}", new.mesh_port);
    let old_args = ["--peers", &seed, "--bootstrap-timeout-ms", "300"];
    let old = ReplicaProcess::start_binary_logged_on(
        &prev,
        (free_port(), free_port(), free_port()),
        &old_args,
        &old_log,
    );
    let wait_for = |path: &Path, text: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let log = std::fs::read_to_string(path).unwrap_or_default();
            if log.contains(text) {
                return log;
            }
            assert!(std::time::Instant::now() < deadline, "{} never logged {text:?}:\n{log}", path.display());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The old replica dialled the new one: it was refused and says why.
    let log = wait_for(&old_log, "mesh peer refused us");
    assert!(log.contains("mesh protocol 1") && log.contains("protocol 2"), "{log}");
    wait_for(&new_log, "refused a mesh peer");
    // And the new one dialling the old one refuses it in turn (the old one opened with its Hello).
    let new_dialling = ReplicaProcess::start_logged_on(
        (free_port(), free_port(), free_port()),
        &["--peers", &format!("127.0.0.1:{}", old.mesh_port)],
        &dir.join("dialler.log"),
    );
    let log = wait_for(&dir.join("dialler.log"), "refused a mesh peer");
    assert!(log.contains("mesh protocol 1"), "{log}");
    drop(new_dialling);
    drop((new, old));
}

/// Writes `prev-release-c23aa2d/` with the previous release's binary (`SYNCMESH_PREV_BIN`):
/// `cargo test -p syncmesh-replica --test formats write_prev_release_fixture -- --ignored`.
/// Its replica A (with a data directory) and B (memory only) form a mesh; the writes above go to
/// A, a snapshot is taken half way (`BGREWRITEAOF`), B's writes reach A; then A stops and its
/// directory becomes the fixture. A third replica dials a listener to record its `Hello`.
#[test]
#[ignore = "writes a committed fixture with the previous release's binary"]
fn write_prev_release_fixture() {
    let prev = PathBuf::from(std::env::var_os("SYNCMESH_PREV_BIN").expect("SYNCMESH_PREV_BIN"));
    let out = prev_release_dir();
    let scratch = Scratch::new("write-prev");
    let work = scratch.path();
    let data = work.join("data");
    let ports_a = (free_port(), free_port(), free_port());
    let b = ReplicaProcess::start_binary_logged_on(
        &prev,
        (free_port(), free_port(), free_port()),
        &["--peers", &format!("127.0.0.1:{}", ports_a.2)],
        &work.join("b.log"),
    );
    let a_args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--peers",
        &format!("127.0.0.1:{}", b.mesh_port),
        "--appendfsync",
        "always",
    ];
    let a = ReplicaProcess::start_binary_logged_on(&prev, ports_a, &a_args, &work.join("a.log"));
    let mut c = a.client();
    run(&mut c, PREV_WRITES_BEFORE_REWRITE);
    run(&mut c, &[&["BGREWRITEAOF"]]);
    let snapshot = data.join("snapshot.bin");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !snapshot.exists() {
        assert!(std::time::Instant::now() < deadline, "no snapshot");
        std::thread::sleep(Duration::from_millis(50));
    }
    run(&mut c, PREV_WRITES_AFTER_REWRITE);
    run(&mut b.client(), PREV_WRITES_ON_PEER);
    common::converge(&[&a, &b], Duration::from_secs(20));
    check_prev_release_keys(&mut c);
    drop(c);
    a.signal("TERM");
    assert!(a.wait_exit(Duration::from_secs(20)).is_some(), "A stops");
    let _ = std::fs::remove_dir_all(out.join("data-dir"));
    std::fs::create_dir_all(out.join("data-dir")).unwrap();
    for e in std::fs::read_dir(&data).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "database" || name == "snapshot.bin" || name.starts_with("log-") {
            std::fs::copy(e.path(), out.join("data-dir").join(&name)).unwrap();
        }
    }
    // Its first frame when it dials: a protocol-1 Hello.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _dialler = ReplicaProcess::start_binary_logged_on(
        &prev,
        (free_port(), free_port(), free_port()),
        &["--peers", &format!("127.0.0.1:{port}"), "--bootstrap-timeout-ms", "300"],
        &work.join("c.log"),
    );
    let (mut s, _) = listener.accept().unwrap();
    let body = read_frame(&mut s).expect("a Hello");
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    std::fs::write(out.join("hello-frame.bin"), frame).unwrap();
    drop((a, b));
}
