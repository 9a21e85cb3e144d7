//! Clients: the per-connection state a command sees ([`Client`]) and the part other connections
//! can see for `CLIENT LIST` / `CLIENT KILL` ([`ClientInfo`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::pubsub::Sink;
use crate::commands::TimeoutReply;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::crdt::Blob;

/// What other connections can see of a client.
pub struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    pub name: Mutex<Option<String>>,
    pub lib_name: Mutex<Option<String>>,
    pub lib_ver: Mutex<Option<String>>,
    /// Index in the command registry of the last command (usize::MAX: none yet).
    pub last_cmd: AtomicUsize,
    /// Unix milliseconds (replica clock) of the last command.
    pub last_active_ms: AtomicU64,
    pub db: AtomicUsize,
    pub resp: AtomicU8,
    pub in_multi: AtomicBool,
    /// Channels plus patterns subscribed (for CLIENT LIST).
    pub subscriptions: AtomicUsize,
    /// Blocked in a blocking command (for INFO and CLIENT LIST).
    pub blocked: AtomicBool,
    pub killed: AtomicBool,
    pub kill: Notify,
    /// Reply bytes the connection is writing and has not finished writing (the output buffer
    /// the Pub/Sub limit sees besides the queued messages).
    pub out_pending: AtomicUsize,
    /// When the client went over its soft output limit (seconds + 1; 0: it is not over).
    pub obuf_soft_since: AtomicU64,
}

impl ClientInfo {
    pub fn new(id: u64, addr: SocketAddr, laddr: SocketAddr) -> ClientInfo {
        ClientInfo {
            id,
            addr,
            laddr,
            created: Instant::now(),
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            lib_ver: Mutex::new(None),
            last_cmd: AtomicUsize::new(usize::MAX),
            last_active_ms: AtomicU64::new(0),
            db: AtomicUsize::new(0),
            resp: AtomicU8::new(2),
            in_multi: AtomicBool::new(false),
            subscriptions: AtomicUsize::new(0),
            blocked: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
            out_pending: AtomicUsize::new(0),
            obuf_soft_since: AtomicU64::new(0),
        }
    }

    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill.notify_one();
    }

    /// One line of `CLIENT LIST` / `CLIENT INFO`.
    pub fn describe(&self) -> String {
        let now = self.created.elapsed();
        let last = self.last_active_ms.load(Ordering::Relaxed);
        let idle_ms =
            if last == 0 { now.as_millis() as u64 } else { crate::server::unix_ms().saturating_sub(last) };
        let flags = if self.in_multi.load(Ordering::Relaxed) {
            "x"
        } else if self.blocked.load(Ordering::Relaxed) {
            "b"
        } else if self.subscriptions.load(Ordering::Relaxed) > 0 {
            "P"
        } else {
            "N"
        };
        format!(
            "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={} db={} sub={} psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.name.lock().as_deref().unwrap_or(""),
            now.as_secs(),
            idle_ms / 1000,
            flags,
            self.db.load(Ordering::Relaxed),
            self.subscriptions.load(Ordering::Relaxed),
            crate::commands::registry()
                .commands
                .get(self.last_cmd.load(Ordering::Relaxed))
                .map(|c| c.name)
                .unwrap_or("NULL"),
            self.resp.load(Ordering::Relaxed),
            self.lib_name.lock().as_deref().unwrap_or(""),
            self.lib_ver.lock().as_deref().unwrap_or(""),
        )
    }
}

/// The state of one connection, owned by its task.
pub struct Client {
    pub id: u64,
    pub db: usize,
    pub authenticated: bool,
    /// Commands queued by `MULTI`, and whether one of them failed to queue.
    pub multi: Option<Vec<Vec<Bytes>>>,
    pub multi_error: bool,
    pub watched: Vec<(usize, Blob)>,
    pub watch_dirty: Arc<AtomicBool>,
    pub info: Arc<ClientInfo>,
    /// Set by `QUIT` (and protocol errors): close after flushing the reply.
    pub close: bool,
    /// Writes made by this connection (for `WAIT`).
    pub last_write: Option<crate::crdt::Dot>,
    pub channels: HashSet<Bytes>,
    pub patterns: HashSet<Bytes>,
    sink: Option<Arc<Sink>>,
    /// Set when the last command blocked: what the connection now waits for.
    pub blocked: Option<Blocked>,
    /// Set by WAIT: wait until this many peers have applied the write, or the deadline.
    pub wait_for: Option<(crate::crdt::Dot, usize, Option<u64>)>,
    /// The data directory's log must be durable up to this record before the replies to this
    /// client's writes go out (`appendfsync always`).
    pub durable_seq: u64,
    /// Set by a command on strong keys: the connection forwards it to the group's leader.
    pub forward: Option<crate::strong::Forward>,
    /// Whether the commands queued by `MULTI` so far name strong keys, and other keys (with
    /// `--strong-keys`: a transaction may not mix them).
    pub multi_keys: (bool, bool),
}

/// A client waiting in a blocking command.
pub struct Blocked {
    pub waiter: u64,
    pub reply: oneshot::Receiver<BytesMut>,
    pub deadline: Option<u64>,
    pub on_timeout: TimeoutReply,
}

impl Client {
    pub fn new(info: Arc<ClientInfo>, authenticated: bool) -> Client {
        Client {
            id: info.id,
            db: 0,
            authenticated,
            multi: None,
            multi_error: false,
            watched: Vec::new(),
            watch_dirty: Arc::new(AtomicBool::new(false)),
            info,
            close: false,
            last_write: None,
            channels: HashSet::new(),
            patterns: HashSet::new(),
            sink: None,
            blocked: None,
            wait_for: None,
            durable_seq: 0,
            forward: None,
            multi_keys: (false, false),
        }
    }

    /// The queue Pub/Sub messages reach this client through (its connection owns the other end).
    pub fn set_sink(&mut self, sink: Arc<Sink>) {
        self.sink = Some(sink);
    }

    pub fn subscriber_sink(&mut self) -> Arc<Sink> {
        self.sink.get_or_insert_with(|| Sink::new(self.info.clone()).0).clone()
    }

    pub fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    pub fn select(&mut self, db: usize) {
        self.db = db;
        self.info.db.store(db, Ordering::Relaxed);
    }
}
