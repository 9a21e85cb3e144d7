//! The strong keys' state machine: a keyspace of its own, holding only strong keys, changed
//! only by applying committed Raft entries in log order.
//!
//! Applying an entry runs its command through the ordinary command table (`commands/`) against
//! this keyspace — a [`Store`] over a replica that is never replicated — so lists, streams with
//! consumer groups, `SET … NX PX`, transactions and scripts behave on strong keys exactly as on
//! a single Redis. Every voter applies the same entries in the same order with the same inputs
//! (the entry's time, database and seed), so every voter computes the same state, and the
//! leader's reply is the one the client gets.
//!
//! No I/O here: Raft (`group.rs`) feeds it, and tests drive it directly.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::request::{Body, Outcome, Request, RequestId};
use crate::commands::{registry, Blocking, CmdError, Ctx, TimeoutReply};
use crate::crdt::keyspace::Part;
use crate::crdt::replica::Snapshot as KeyspaceSnapshot;
use crate::crdt::stream::{Consumer, Pending, StreamId};
use crate::crdt::{Blob, Clock, Replica, ReplicaId};
use crate::resp::{Protocol, Reply};
use crate::server::client::{Client, ClientInfo};
use crate::server::store::Store;
use crate::server::Server;

/// The replica id of the strong keyspace: the same on every voter, so that every voter's
/// writes get the same dots.
const STRONG_REPLICA: ReplicaId = 0x5354_524f_4e47; // "STRONG"

/// How long the reply of a finished request is kept for a retry of it (by the entries' time).
/// A forwarding replica gives up on a request long before (`forward.rs`).
const KEEP_REPLIES_MS: u64 = 10 * 60 * 1000;

/// Every this many entries, a slice of the keyspace is compacted (tombstones of popped list
/// elements and deleted fields are collected) — at the same entries on every voter.
const COMPACT_EVERY: u64 = 64;
const COMPACT_SLOTS: usize = 256;

pub struct Machine {
    store: Store,
    /// The client every command runs as (commands need one; it is nobody's connection).
    info: Arc<ClientInfo>,
    /// Replies of finished requests, for retries that carry the same id.
    done: HashMap<RequestId, (u64, Vec<u8>)>,
    /// The same, by the time they finished (what is dropped first).
    done_order: BTreeSet<(u64, RequestId)>,
    /// The greatest entry time applied: time never goes back, even across leaders.
    now_ms: u64,
    compact_cursor: (usize, usize),
    /// Entries applied (for INFO and tests).
    pub applied_entries: u64,
}

/// A consumer group's part that a keyspace snapshot leaves out (it is per replica in the mesh,
/// but here every voter holds the same).
#[derive(Serialize, Deserialize)]
struct GroupLocal {
    db: u8,
    key: Blob,
    group: Blob,
    delivered: StreamId,
    entries_read: Option<i64>,
    pending: BTreeMap<StreamId, Pending>,
    consumers: BTreeMap<Blob, Consumer>,
}

/// Everything a snapshot of the machine holds.
#[derive(Serialize, Deserialize)]
struct Image {
    keyspace: KeyspaceSnapshot,
    groups: Vec<GroupLocal>,
    done: Vec<(RequestId, u64, Vec<u8>)>,
    now_ms: u64,
    compact_cursor: (usize, usize),
    applied_entries: u64,
}

fn new_store() -> Store {
    let mut replica = Replica::new(STRONG_REPLICA, Clock::new(0));
    // Not part of the mesh: no updates are recorded, every write is stable at once.
    replica.set_replicated(false);
    replica.set_solo(true);
    Store::new(replica)
}

impl Default for Machine {
    fn default() -> Self {
        Machine::new()
    }
}

impl Machine {
    pub fn new() -> Machine {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        Machine {
            store: new_store(),
            info: Arc::new(ClientInfo::new(0, addr, addr)),
            done: HashMap::new(),
            done_order: BTreeSet::new(),
            now_ms: 0,
            compact_cursor: (0, 0),
            applied_entries: 0,
        }
    }

    /// Applies one committed entry (its log index seeds the random choices of commands such as
    /// `SPOP`). A request already applied (a retry) gets the reply it got then.
    pub fn apply(&mut self, server: &Server, index: u64, req: &Request) -> Outcome {
        self.applied_entries += 1;
        self.now_ms = self.now_ms.max(req.now_ms);
        self.forget_old_replies();
        if index.is_multiple_of(COMPACT_EVERY) {
            self.compact_cursor = self.store.replica.compact_some(self.compact_cursor, COMPACT_SLOTS);
        }
        if let Some((_, reply)) = self.done.get(&req.id) {
            return Outcome::Reply(reply.clone());
        }
        let proto = if req.resp3 { Protocol::Resp3 } else { Protocol::Resp2 };
        let mut out = Reply::new(proto);
        let mut client = Client::new(self.info.clone(), true);
        client.select((req.db as usize).min(crate::crdt::replica::DATABASES - 1));
        let outcome = match &req.body {
            Body::Command(argv) => {
                let args: Vec<Bytes> = argv.iter().map(|a| Bytes::copy_from_slice(a)).collect();
                self.run(server, &mut client, &mut out, &args, index)
            }
            Body::Transaction(cmds) => {
                client.multi = Some(
                    cmds.iter().map(|c| c.iter().map(|a| Bytes::copy_from_slice(a)).collect()).collect(),
                );
                self.run(server, &mut client, &mut out, &[Bytes::from_static(b"EXEC")], index)
            }
        };
        self.wake_waiters();
        if let Outcome::Reply(bytes) = &outcome {
            self.done.insert(req.id, (self.now_ms, bytes.clone()));
            self.done_order.insert((self.now_ms, req.id));
        }
        outcome
    }

    fn run(
        &mut self,
        server: &Server,
        client: &mut Client,
        out: &mut Reply,
        args: &[Bytes],
        index: u64,
    ) -> Outcome {
        let Some((_, cmd)) = registry().get(&args[0]) else {
            out.error(&crate::server::unknown_command(args));
            return Outcome::Reply(out.buf.to_vec());
        };
        if !cmd.arity_ok(args.len()) {
            out.error(&CmdError::Arity(cmd.name.to_string()).to_string());
            return Outcome::Reply(out.buf.to_vec());
        }
        let mut ctx = Ctx::new(&mut self.store, client, out, server, self.now_ms);
        ctx.seed = Some(index);
        // A blocking command that finds nothing reports what it would wait for (`ctx.block`)
        // instead of waiting: the leader waits outside the state machine, and proposes it again.
        debug_assert!(ctx.blocking != Blocking::Serving);
        let result = (cmd.run)(&mut ctx, args);
        let block = ctx.block.take();
        match (result, block) {
            (Err(e), _) => out.error(&e.to_string()),
            (Ok(()), Some(b)) => {
                return Outcome::WouldBlock {
                    retry: b.retry_args.unwrap_or_else(|| args.to_vec()).iter().map(|a| a.to_vec()).collect(),
                    keys: b.keys.iter().map(|k| k.to_vec()).collect(),
                    deadline_ms: b.deadline,
                    null_bulk: b.on_timeout == TimeoutReply::NullBulk,
                };
            }
            (Ok(()), None) => {}
        }
        Outcome::Reply(out.buf.to_vec())
    }

    fn forget_old_replies(&mut self) {
        let horizon = self.now_ms.saturating_sub(KEEP_REPLIES_MS);
        while let Some(&(at, id)) = self.done_order.first() {
            if at >= horizon {
                break;
            }
            self.done_order.pop_first();
            self.done.remove(&id);
        }
    }

    /// Registers interest in keys: the receiver fires once an applied entry writes one of them
    /// (or the database is flushed). Used by the leader while a blocking command waits.
    pub fn watch_keys(&mut self, db: u8, keys: &[Vec<u8>]) -> (u64, oneshot::Receiver<BytesMut>) {
        let keys = keys.iter().map(|k| Blob::from_slice(k)).collect();
        self.store.block(self.info.clone(), db as usize, Protocol::Resp2, Vec::new(), keys)
    }

    /// Stops watching (the wait ended some other way).
    pub fn unwatch(&mut self, id: u64) {
        self.store.unblock(id);
    }

    /// Fires the watchers of the keys the last entry wrote.
    fn wake_waiters(&mut self) {
        while let Some((db, key)) = self.store.ready.pop() {
            for w in self.store.waiters_on(db, &key) {
                self.store.unblock(w.id);
                if let Some(tx) = w.reply.lock().take() {
                    let _ = tx.send(BytesMut::new());
                }
            }
        }
    }

    /// The number of keys in the strong keyspace (all databases).
    pub fn keys(&self) -> usize {
        (0..crate::crdt::replica::DATABASES).map(|db| self.store.replica.db(db).len()).sum()
    }

    /// Whether the strong keyspace holds `key` (visible, not expired) in `db`.
    pub fn contains(&self, db: u8, key: &[u8]) -> bool {
        self.store
            .replica
            .db(db as usize)
            .get(key)
            .is_some_and(|e| e.is_visible() && !e.is_expired(self.now_ms))
    }

    /// Serializes the whole state (keyspace, consumer groups' pending entries, replies kept for
    /// retries).
    pub fn snapshot(&self) -> Vec<u8> {
        let image = Image {
            keyspace: self.store.replica.snapshot(),
            groups: self.group_locals(),
            done: self.done_order.iter().map(|(at, id)| (*id, *at, self.done[id].1.clone())).collect(),
            now_ms: self.now_ms,
            compact_cursor: self.compact_cursor,
            applied_entries: self.applied_entries,
        };
        bincode::serialize(&image).expect("the strong state always serializes")
    }

    /// Replaces the whole state with a snapshot's.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        let image: Image =
            bincode::deserialize(bytes).map_err(|e| format!("undecodable strong-keys snapshot: {e}"))?;
        let mut store = new_store();
        store.replica.install(image.keyspace);
        for g in image.groups {
            let Some(entry) = store.replica.db_mut(g.db as usize).get_mut(&g.key) else { continue };
            let Some(Part::Stream(s)) = entry.visible_mut() else { continue };
            if let Some(group) = s.groups.get_mut(&g.group) {
                group.delivered = g.delivered;
                group.entries_read = g.entries_read;
                group.pending = g.pending;
                group.consumers = g.consumers;
            }
        }
        self.store = store;
        self.done.clear();
        self.done_order.clear();
        for (id, at, reply) in image.done {
            self.done.insert(id, (at, reply));
            self.done_order.insert((at, id));
        }
        self.now_ms = image.now_ms;
        self.compact_cursor = image.compact_cursor;
        self.applied_entries = image.applied_entries;
        Ok(())
    }

    fn group_locals(&self) -> Vec<GroupLocal> {
        let mut out = Vec::new();
        for db in 0..crate::crdt::replica::DATABASES {
            for (key, entry) in self.store.replica.db(db).iter() {
                let Some(Part::Stream(s)) = entry.visible() else { continue };
                for (name, g) in &s.groups {
                    out.push(GroupLocal {
                        db: db as u8,
                        key: key.clone(),
                        group: name.clone(),
                        delivered: g.delivered,
                        entries_read: g.entries_read,
                        pending: g.pending.clone(),
                        consumers: g.consumers.clone(),
                    });
                }
            }
        }
        out
    }

    /// A fingerprint of the whole state: two voters that applied the same entries have the same
    /// (`SYNCMESH.STRONG DIGEST`).
    pub fn fingerprint(&self) -> String {
        let mut keyspace = self.store.replica.snapshot();
        // When a key was last read (OBJECT IDLETIME) counts from each process's start: not state.
        for (_, entries) in &mut keyspace.dbs {
            for (_, e) in entries.iter_mut() {
                e.accessed = 0;
            }
        }
        let image = Image {
            keyspace,
            groups: self.group_locals(),
            done: self.done_order.iter().map(|(at, id)| (*id, *at, self.done[id].1.clone())).collect(),
            now_ms: self.now_ms,
            compact_cursor: self.compact_cursor,
            applied_entries: self.applied_entries,
        };
        let bytes = bincode::serialize(&image).expect("the strong state always serializes");
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strong::request::Argv;

    fn server() -> Arc<Server> {
        use clap::Parser;
        Server::new(crate::config::Config::parse_from(["syncmesh-replica"]))
    }

    fn argv(s: &str) -> Argv {
        s.split(' ').map(|a| a.as_bytes().to_vec()).collect()
    }

    fn req(seq: u64, now_ms: u64, cmd: &str) -> Request {
        Request {
            id: RequestId { session: 7, seq },
            db: 0,
            resp3: false,
            now_ms,
            body: Body::Command(argv(cmd)),
        }
    }

    fn reply(o: Outcome) -> String {
        match o {
            Outcome::Reply(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("not a reply: {other:?}"),
        }
    }

    #[test]
    fn two_machines_fed_the_same_entries_hold_the_same_state() {
        let server = server();
        let (mut a, mut b) = (Machine::new(), Machine::new());
        let cmds = [
            "RPUSH jobs a b c d e f",
            "SADD s x y z w v u",
            "SPOP s 2",
            "LPOP jobs",
            "SET lock me NX PX 500",
            "XADD st * f 1",
            "XGROUP CREATE st g 0",
            "XADD st * f 2",
            "XREADGROUP GROUP g c1 COUNT 1 STREAMS st >",
            "INCR n",
        ];
        let mut replies = Vec::new();
        for (i, c) in cmds.iter().enumerate() {
            let r = req(i as u64, 1_700_000_000_000 + i as u64, c);
            let ra = reply(a.apply(&server, i as u64 + 1, &r));
            let rb = reply(b.apply(&server, i as u64 + 1, &r));
            assert_eq!(ra, rb, "{c}: the same reply on both");
            replies.push(ra);
        }
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(replies[4], "+OK\r\n");
        assert_eq!(replies[3], "$1\r\na\r\n");
        // A restored snapshot is the same state, pending entries of the group included.
        let mut c = Machine::new();
        c.restore(&a.snapshot()).unwrap();
        assert_eq!(c.fingerprint(), a.fingerprint());
        let pending = req(100, 1_700_000_001_000, "XPENDING st g");
        assert_eq!(reply(c.apply(&server, 11, &pending)), reply(a.apply(&server, 11, &pending)));
        assert!(reply(a.apply(&server, 12, &req(101, 1_700_000_001_000, "XPENDING st g")))
            .starts_with("*4\r\n:1\r\n"));
    }

    #[test]
    fn a_retried_request_gets_its_first_reply_and_runs_once() {
        let server = server();
        let mut m = Machine::new();
        m.apply(&server, 1, &req(1, 1000, "RPUSH q a b"));
        let first = reply(m.apply(&server, 2, &req(2, 1001, "LPOP q")));
        let retry = reply(m.apply(&server, 3, &req(2, 1002, "LPOP q")));
        assert_eq!(first, "$1\r\na\r\n");
        assert_eq!(retry, first, "the retry is answered from the first run");
        assert_eq!(reply(m.apply(&server, 4, &req(3, 1003, "LLEN q"))), ":1\r\n", "b is still there");
    }

    #[test]
    fn a_blocking_pop_on_nothing_would_block_and_changes_nothing() {
        let server = server();
        let mut m = Machine::new();
        let before = m.fingerprint();
        match m.apply(&server, 1, &req(1, 1000, "BRPOP q 0")) {
            Outcome::WouldBlock { keys, null_bulk, .. } => {
                assert_eq!(keys, vec![b"q".to_vec()]);
                assert!(!null_bulk);
            }
            other => panic!("{other:?}"),
        }
        let (_, mut woken) = m.watch_keys(0, &[b"q".to_vec()]);
        assert!(woken.try_recv().is_err());
        m.apply(&server, 2, &req(2, 1001, "LPUSH q x"));
        assert!(woken.try_recv().is_ok(), "a write to the key wakes the watcher");
        // Not remembered as done: the retry with the same id pops.
        assert_eq!(reply(m.apply(&server, 3, &req(1, 1002, "BRPOP q 0"))), "*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
        assert_ne!(before, m.fingerprint());
    }

    #[test]
    fn xread_dollar_is_retried_as_the_id_it_meant() {
        let server = server();
        let mut m = Machine::new();
        m.apply(&server, 1, &req(1, 5000, "XADD st 1-1 f v"));
        match m.apply(&server, 2, &req(2, 5001, "XREAD BLOCK 0 STREAMS st $")) {
            Outcome::WouldBlock { retry, .. } => assert_eq!(retry.last().unwrap(), b"1-1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn transactions_run_as_one_exec() {
        let server = server();
        let mut m = Machine::new();
        let r = Request {
            id: RequestId { session: 1, seq: 1 },
            db: 3,
            resp3: false,
            now_ms: 1,
            body: Body::Transaction(vec![argv("SET k 1"), argv("INCR k"), argv("GET k")]),
        };
        assert_eq!(reply(m.apply(&server, 1, &r)), "*3\r\n+OK\r\n:2\r\n$1\r\n2\r\n");
        assert!(m.contains(3, b"k") && !m.contains(0, b"k"));
    }

    #[test]
    fn expiry_follows_the_entries_time_not_the_wall_clock() {
        let server = server();
        let mut m = Machine::new();
        m.apply(&server, 1, &req(1, 10_000, "SET lock a NX PX 100"));
        assert_eq!(reply(m.apply(&server, 2, &req(2, 10_050, "SET lock b NX PX 100"))), "$-1\r\n");
        assert_eq!(reply(m.apply(&server, 3, &req(3, 10_101, "SET lock b NX PX 100"))), "+OK\r\n");
        // An entry whose leader's clock is behind does not move time back.
        assert_eq!(reply(m.apply(&server, 4, &req(4, 9_000, "GET lock"))), "$1\r\nb\r\n");
    }
}
