//! The mesh: replicas of one database replicating to each other, active-active.
//!
//! - [`wire`]: frames and messages.
//! - [`log`]: the replication log every peer is streamed from.
//! - [`peer`]: one connection (handshake, then updates, acks, snapshots, Pub/Sub both ways).
//! - [`tls`]: mutual TLS.
//! - this file: membership (who is in the mesh, what each has applied), discovery (static
//!   seeds, DNS, peer exchange), causal stability and retirement, and cross-replica Pub/Sub.
//!
//! The design is written down in `docs/design.md`.

pub mod client;
pub mod log;
pub mod membership;
pub mod peer;
pub mod tls;
pub mod wire;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::crdt::{Dot, ReplicaId, VersionVector};
use crate::server::Server;
use wire::Message;

/// Bytes of control messages (relayed Pub/Sub) that may wait for one peer's writer. A slow or
/// stalled peer otherwise makes them pile up in memory; past this they are dropped for that
/// peer (Pub/Sub is at-most-once) and counted. Redis's hard limit for a Pub/Sub client's output
/// buffer. (Updates need no such limit: they wait in the replication log, which is capped.)
pub const CONTROL_QUEUE_BYTES: usize = crate::server::PUBSUB_BUFFER_LIMIT as usize;

fn control_size(msg: &Message) -> usize {
    match msg {
        Message::Publish { channel, payload, .. } => 64 + channel.len() + payload.len(),
        _ => 64,
    }
}

/// The sending side of a peer writer's control queue, bounded in bytes.
#[derive(Clone)]
pub struct ControlTx {
    tx: mpsc::UnboundedSender<Message>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

/// The writer's side of its control queue.
pub struct ControlRx {
    rx: mpsc::UnboundedReceiver<Message>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

pub fn control_queue() -> (ControlTx, ControlRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    (ControlTx { tx, queued: queued.clone() }, ControlRx { rx, queued })
}

impl ControlTx {
    /// Queues a message unless the queue is full; false if it was dropped.
    pub fn send(&self, msg: Message) -> bool {
        let size = control_size(&msg);
        if self.queued.fetch_add(size, Ordering::AcqRel) + size > CONTROL_QUEUE_BYTES {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return false;
        }
        let _ = self.tx.send(msg);
        true
    }
}

impl ControlRx {
    pub async fn recv(&mut self) -> Option<Message> {
        let msg = self.rx.recv().await?;
        self.queued.fetch_sub(control_size(&msg), Ordering::AcqRel);
        Some(msg)
    }
}

/// Bytes sent and received on mesh connections since start (INFO, metrics).
#[derive(Default)]
pub struct Traffic {
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

/// What a peer connection does with control messages (Pub/Sub, stop).
pub struct PeerHandle {
    pub id: ReplicaId,
    pub addr: SocketAddr,
    /// The replica that opened the connection (decides which of two duplicates survives).
    pub dialer: ReplicaId,
    pub tx: ControlTx,
    pub connected_at: Instant,
    pub conn_id: u64,
}

/// What this replica knows of a member: what it has applied, and whether it is alive.
#[derive(Clone, Debug)]
pub struct Member {
    pub ack: VersionVector,
    /// The last ack that counts for stability: one whose own writes this replica has applied.
    pub stable_ack: VersionVector,
    pub beat: u64,
    pub last_change: Instant,
}

pub struct Mesh {
    pub id: ReplicaId,
    pub database: String,
    pub listen_port: u16,
    pub advertise: Option<String>,
    pub tls: Option<Arc<tls::MeshTls>>,
    pub peers: Mutex<HashMap<ReplicaId, PeerHandle>>,
    pub members: Mutex<HashMap<ReplicaId, Member>>,
    pub retired: Mutex<HashSet<ReplicaId>>,
    /// Mesh addresses learned from seeds, DNS and peers; and addresses that turned out to be us.
    pub known_addrs: Mutex<BTreeSet<String>>,
    pub self_addrs: Mutex<HashSet<String>>,
    /// Bumped whenever the replication log grows: peer writers wait on it.
    pub log_seq: watch::Sender<u64>,
    /// Bumped whenever an ack arrives: WAIT waits on it.
    pub ack_seq: watch::Sender<u64>,
    pub beat: AtomicU64,
    pub publish_seq: AtomicU64,
    pub publish_seen: Mutex<HashMap<ReplicaId, u64>>,
    /// The version vector the first peer had when we met it: ready once we have it all.
    pub sync_target: Mutex<Option<VersionVector>>,
    pub retire_after: Duration,
    /// Silence after which a connection counts as dead (`--peer-timeout-ms`).
    pub peer_timeout: Duration,
    pub started: Instant,
    pub next_conn: AtomicU64,
    pub traffic: Traffic,
    pub updates_sent: AtomicU64,
    pub snapshots_sent: AtomicU64,
    /// Pub/Sub messages dropped for peers whose control queue was full.
    pub control_dropped: AtomicU64,
    pub has_seeds: bool,
    /// Some other member has been seen (until then, and without seeds, writes are stable at once).
    pub members_known: AtomicBool,
    pub peer_exchange: bool,
    pub stopped: AtomicBool,
    /// What members derive from the database name and the mesh secret to prove membership.
    pub membership: membership::MembershipKey,
    /// Members refused for claiming history of this replica that it does not hold, or for
    /// sending writes under this replica's id (see [`Mesh::quarantine`]).
    quarantine: Mutex<HashMap<ReplicaId, Quarantined>>,
    /// Handshakes this replica refused, by reason (`syncmesh_mesh_handshakes_refused_total`).
    pub handshakes_refused: prometheus::IntCounterVec,
}

/// Why and since when a member is quarantined.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub reason: String,
    pub since_unix: u64,
}

impl Mesh {
    /// Builds the mesh from the flags; None when the replica runs alone (no TLS and no
    /// `--mesh-insecure`).
    /// Whether the configuration asks for a mesh at all (TLS material or `--mesh-insecure`);
    /// [`Mesh::from_config`] checks the details.
    pub fn wanted(config: &Config) -> bool {
        config.tls_ca.is_some()
            || config.tls_cert.is_some()
            || config.tls_key.is_some()
            || config.mesh_insecure
    }

    pub fn from_config(config: &Config, id: ReplicaId) -> std::io::Result<Option<Mesh>> {
        let tls = match (&config.tls_ca, &config.tls_cert, &config.tls_key) {
            (Some(ca), Some(cert), Some(key)) => Some(Arc::new(tls::MeshTls::load(ca, cert, key)?)),
            (None, None, None) => None,
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "mesh TLS needs all of --tls-ca, --tls-cert and --tls-key",
                ))
            }
        };
        let has_seeds = !config.peers.is_empty() || config.peers_dns.is_some();
        if tls.is_none() && !config.mesh_insecure {
            if has_seeds {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the mesh needs --tls-ca, --tls-cert and --tls-key (or --mesh-insecure for local development)",
                ));
            }
            return Ok(None);
        }
        if tls.is_none() {
            let bind = mesh_bind(config);
            if !is_loopback(&bind) && config.mesh_secret.is_none() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "--mesh-insecure on {bind}, which is not a loopback address, needs a shared secret: set --mesh-secret (or SYNCMESH_MESH_SECRET) to the same value on every replica, or use TLS (--tls-ca, --tls-cert, --tls-key)"
                    ),
                ));
            }
        }
        let mut known = BTreeSet::new();
        for p in &config.peers {
            known.insert(p.clone());
        }
        Ok(Some(Mesh {
            id,
            database: config.database.clone(),
            listen_port: config.mesh_port,
            advertise: config.advertise_addr.clone(),
            tls,
            peers: Mutex::new(HashMap::new()),
            members: Mutex::new(HashMap::new()),
            retired: Mutex::new(HashSet::new()),
            known_addrs: Mutex::new(known),
            self_addrs: Mutex::new(HashSet::new()),
            log_seq: watch::channel(0).0,
            ack_seq: watch::channel(0).0,
            beat: AtomicU64::new(0),
            publish_seq: AtomicU64::new(0),
            publish_seen: Mutex::new(HashMap::new()),
            sync_target: Mutex::new(None),
            retire_after: Duration::from_secs(config.retire_after_secs),
            peer_timeout: Duration::from_millis(config.peer_timeout_ms.max(1)),
            started: Instant::now(),
            next_conn: AtomicU64::new(1),
            traffic: Traffic::default(),
            updates_sent: AtomicU64::new(0),
            snapshots_sent: AtomicU64::new(0),
            control_dropped: AtomicU64::new(0),
            has_seeds,
            members_known: AtomicBool::new(false),
            peer_exchange: config.peer_exchange,
            stopped: AtomicBool::new(false),
            membership: membership::MembershipKey::new(&config.database, config.mesh_secret.as_deref()),
            quarantine: Mutex::new(HashMap::new()),
            handshakes_refused: prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "syncmesh_mesh_handshakes_refused_total",
                    "Mesh connections this replica refused at the handshake, by reason (membership, protocol, database, own_history, quarantined)",
                ),
                &["reason"],
            )
            .expect("metric"),
        }))
    }

    /// Registers a connected peer. If one is already connected, the connection opened by the
    /// replica with the smaller id survives (both ends reach the same decision).
    pub fn register(&self, handle: PeerHandle) -> bool {
        let mut peers = self.peers.lock();
        if let Some(existing) = peers.get(&handle.id) {
            let winner = self.id.min(handle.id);
            if existing.dialer == winner || handle.dialer != winner {
                return false;
            }
        }
        self.members.lock().entry(handle.id).or_insert_with(|| Member {
            ack: VersionVector::new(),
            stable_ack: VersionVector::new(),
            beat: 0,
            last_change: Instant::now(),
        });
        self.retired.lock().remove(&handle.id);
        self.members_known.store(true, Ordering::Release);
        peers.insert(handle.id, handle);
        true
    }

    pub fn unregister(&self, id: ReplicaId, conn_id: u64) {
        let mut peers = self.peers.lock();
        if peers.get(&id).is_some_and(|p| p.conn_id == conn_id) {
            peers.remove(&id);
        }
    }

    /// An ack from a peer: what it has applied, and what it knows of every member.
    pub fn on_ack(
        &self,
        from: ReplicaId,
        vv: VersionVector,
        members: Vec<(ReplicaId, VersionVector, u64)>,
        retired: Vec<ReplicaId>,
    ) {
        {
            let mut retired_set = self.retired.lock();
            for r in retired {
                if r != self.id && !self.peers.lock().contains_key(&r) {
                    retired_set.insert(r);
                }
            }
        }
        let retired_set = self.retired.lock().clone();
        let mut table = self.members.lock();
        let now = Instant::now();
        let mut update = |id: ReplicaId, vv: VersionVector, beat: Option<u64>| {
            if id == self.id || retired_set.contains(&id) {
                return;
            }
            let m = table.entry(id).or_insert_with(|| Member {
                ack: VersionVector::new(),
                stable_ack: VersionVector::new(),
                beat: 0,
                last_change: now,
            });
            let mut merged = m.ack.clone();
            merged.merge(&vv);
            let newer_beat = beat.is_some_and(|b| b > m.beat);
            if merged != m.ack || newer_beat || beat.is_none() {
                m.last_change = now;
            }
            m.ack = merged;
            if let Some(b) = beat {
                m.beat = m.beat.max(b);
            }
        };
        update(from, vv, None);
        for (id, vv, beat) in members {
            update(id, vv, Some(beat));
        }
        drop(table);
        self.ack_seq.send_modify(|s| *s += 1);
    }

    /// The member table as gossiped in acks (this replica included).
    pub fn gossip(&self, my_vv: &VersionVector) -> (Vec<(ReplicaId, VersionVector, u64)>, Vec<ReplicaId>) {
        let beat = self.beat.fetch_add(1, Ordering::Relaxed) + 1;
        let mut v: Vec<(ReplicaId, VersionVector, u64)> =
            self.members.lock().iter().map(|(id, m)| (*id, m.ack.clone(), m.beat)).collect();
        v.push((self.id, my_vv.clone(), beat));
        (v, self.retired.lock().iter().copied().collect())
    }

    /// Members (other than this replica) whose acks cover `dot`: what WAIT counts.
    pub fn acked_count(&self, dot: Dot) -> usize {
        self.members.lock().values().filter(|m| m.ack.covers(dot)).count()
    }

    pub fn learn_addrs(&self, addrs: impl IntoIterator<Item = String>) {
        let selfs = self.self_addrs.lock().clone();
        let mut known = self.known_addrs.lock();
        for a in addrs {
            if !selfs.contains(&a) && a.parse::<SocketAddr>().is_ok() {
                known.insert(a);
            }
        }
    }

    /// Sends a control message to every connected peer except `except`.
    pub fn broadcast(&self, msg: &Message, except: Option<ReplicaId>) {
        for p in self.peers.lock().values() {
            if Some(p.id) == except || p.tx.send(msg.clone()) {
                continue;
            }
            // Counted in INFO mesh; logged once, not once per message.
            if self.control_dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                warn!(
                    peer = format!("{:016x}", p.id),
                    "a mesh peer is too slow to take Pub/Sub messages: dropping them for it"
                );
            }
        }
    }

    /// A local PUBLISH: to every replica, once each, in publish order.
    pub fn publish(&self, channel: &Bytes, payload: &Bytes) {
        let seq = self.publish_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let msg =
            Message::Publish { origin: self.id, seq, channel: channel.to_vec(), payload: payload.to_vec() };
        self.broadcast(&msg, None);
    }

    /// A PUBLISH from another replica: deliver it here and pass it on, unless already seen.
    /// Messages of one publisher that arrive out of order (over two paths) are dropped rather
    /// than delivered out of order (Pub/Sub is at-most-once).
    pub fn accept_publish(&self, origin: ReplicaId, seq: u64) -> bool {
        if origin == self.id {
            return false;
        }
        let mut seen = self.publish_seen.lock();
        let last = seen.entry(origin).or_insert(0);
        if seq <= *last {
            return false;
        }
        *last = seq;
        true
    }
}

impl Mesh {
    /// Refuses a member from now on (until [`Mesh::release`] or a restart): it claimed writes of
    /// this replica that this replica does not hold, or sent writes under this replica's id.
    pub fn quarantine(&self, id: ReplicaId, reason: &str) {
        {
            let mut q = self.quarantine.lock();
            if q.contains_key(&id) {
                return;
            }
            q.insert(
                id,
                Quarantined { reason: reason.to_string(), since_unix: crate::server::unix_ms() / 1000 },
            );
        }
        error!(
            member = format!("{id:016x}"),
            reason,
            "mesh member quarantined: its connections are refused. If this replica's data directory was restored from an older copy, set it aside (syncmesh-replica check-data DIR --set-aside, docs/durability.md); otherwise the member is faulty or hostile"
        );
    }

    pub fn quarantined(&self, id: ReplicaId) -> Option<String> {
        self.quarantine.lock().get(&id).map(|q| q.reason.clone())
    }

    pub fn quarantined_count(&self) -> usize {
        self.quarantine.lock().len()
    }

    /// Lets quarantined members connect again (all of them with None); returns how many.
    pub fn release(&self, id: Option<ReplicaId>) -> usize {
        let mut q = self.quarantine.lock();
        match id {
            None => std::mem::take(&mut *q).len(),
            Some(id) => q.remove(&id).is_some() as usize,
        }
    }

    pub fn count_refusal(&self, kind: &'static str) {
        self.handshakes_refused.with_label_values(&[kind]).inc();
    }
}

/// The address the mesh listens on: `--mesh-bind`, else all interfaces with TLS and loopback
/// without (`--mesh-insecure`).
pub fn mesh_bind(config: &Config) -> String {
    match &config.mesh_bind {
        Some(b) => b.clone(),
        None if config.mesh_insecure && config.tls_ca.is_none() => "127.0.0.1".into(),
        None => "0.0.0.0".into(),
    }
}

/// Whether an address (as given to a bind flag) only accepts connections from this host.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// One member as SYNCMESH.PEERS, INFO and /status show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerStatus {
    pub id: String,
    pub state: &'static str,
    pub addr: Option<String>,
    /// Log entries this replica applied that the member has not acknowledged.
    pub ops_lag: usize,
    /// Age of the oldest of those entries.
    pub time_lag_ms: u64,
    pub connected_secs: Option<u64>,
    /// Why a quarantined member is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Mesh {
    pub fn status(&self, store: &crate::server::store::Store, now_ms: u64) -> Vec<PeerStatus> {
        let peers = self.peers.lock();
        let members = self.members.lock();
        let quarantine = self.quarantine.lock();
        let mut out: Vec<PeerStatus> = members
            .iter()
            .filter(|(id, _)| !quarantine.contains_key(id))
            .map(|(id, m)| {
                let (ops_lag, oldest) = store.log.lag(&m.ack);
                let p = peers.get(id);
                PeerStatus {
                    id: format!("{id:016x}"),
                    state: if p.is_some() { "connected" } else { "known" },
                    addr: p.map(|p| p.addr.to_string()),
                    ops_lag,
                    time_lag_ms: oldest.map(|ms| now_ms.saturating_sub(ms)).unwrap_or(0),
                    connected_secs: p.map(|p| p.connected_at.elapsed().as_secs()),
                    reason: None,
                }
            })
            .collect();
        for (id, q) in quarantine.iter() {
            out.push(PeerStatus {
                id: format!("{id:016x}"),
                state: "quarantined",
                addr: None,
                ops_lag: 0,
                time_lag_ms: 0,
                connected_secs: None,
                reason: Some(format!("{} (since unix {})", q.reason, q.since_unix)),
            });
        }
        for id in self.retired.lock().iter() {
            out.push(PeerStatus {
                id: format!("{id:016x}"),
                state: "retired",
                addr: None,
                ops_lag: 0,
                time_lag_ms: 0,
                connected_secs: None,
                reason: None,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

/// Starts the mesh: listener, dialer, stability and retirement.
pub async fn start(server: Arc<Server>, config: &Config) -> std::io::Result<()> {
    let Some(mesh) = server.mesh.as_ref() else { return Ok(()) };
    let host = &mesh_bind(config);
    let addr = if host.contains(':') {
        format!("[{host}]:{}", config.mesh_port)
    } else {
        format!("{host}:{}", config.mesh_port)
    };
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr} (mesh): {e}")))?;
    info!(%addr, tls = mesh.tls.is_some(), "mesh listening");
    match &mesh.tls {
        Some(tls) => {
            drop(tokio::spawn(tls.clone().watch(Duration::from_secs(config.tls_reload_secs.max(1)))))
        }
        None => warn!("mesh runs WITHOUT TLS (--mesh-insecure): for local development only"),
    }
    tokio::spawn(accept_loop(server.clone(), listener));
    tokio::spawn(dial_loop(server.clone(), config.peers_dns.clone(), config.mesh_port));
    tokio::spawn(stability_loop(server.clone()));
    Ok(())
}

async fn accept_loop(server: Arc<Server>, listener: TcpListener) {
    let mut shutdown = server.shutdown.subscribe();
    let mut backoff = crate::server::AcceptBackoff::new("mesh");
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => { backoff.reset(); x }
                Err(e) => { backoff.pause(&e).await; continue; }
            },
            _ = shutdown.changed() => return,
        };
        let server = server.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mesh = server.mesh.as_ref().expect("mesh");
            let io: Box<dyn peer::Io> = match &mesh.tls {
                None => Box::new(stream),
                Some(tls) => {
                    match tokio::time::timeout(Duration::from_secs(5), tls.acceptor().accept(stream)).await {
                        Ok(Ok(s)) => Box::new(s),
                        Ok(Err(e)) => {
                            warn!(peer = %remote, error = %e, "mesh TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            warn!(peer = %remote, "mesh TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            peer::run(server, io, remote, None).await;
        });
    }
}

/// Keeps a connection to every known peer address: static seeds, the DNS name's addresses
/// (re-resolved every few seconds), and addresses learned from peers.
async fn dial_loop(server: Arc<Server>, dns: Option<String>, mesh_port: u16) {
    let mesh = server.mesh.as_ref().expect("mesh");
    let mut shutdown = server.shutdown.subscribe();
    let attempts: Arc<Mutex<HashMap<String, (Instant, u32)>>> = Arc::new(Mutex::new(HashMap::new()));
    let dialing: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
    let mut last_dns = Instant::now() - Duration::from_secs(60);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Some(name) = &dns {
            if last_dns.elapsed() >= Duration::from_secs(5) {
                last_dns = Instant::now();
                let target = if name.contains(':') { name.clone() } else { format!("{name}:{mesh_port}") };
                match tokio::net::lookup_host(target.clone()).await {
                    Ok(addrs) => mesh.learn_addrs(addrs.map(|a| a.to_string())),
                    Err(e) => debug!(name = %target, error = %e, "peer DNS lookup failed"),
                }
            }
        }
        let connected: HashSet<String> = mesh.peers.lock().values().map(|p| p.addr.to_string()).collect();
        let selfs = mesh.self_addrs.lock().clone();
        let known: Vec<String> = mesh.known_addrs.lock().iter().cloned().collect();
        for addr in known {
            if connected.contains(&addr) || selfs.contains(&addr) || dialing.lock().contains(&addr) {
                continue;
            }
            let due = attempts.lock().get(&addr).is_none_or(|(at, _)| Instant::now() >= *at);
            if !due {
                continue;
            }
            dialing.lock().insert(addr.clone());
            let (server, attempts, dialing) = (server.clone(), attempts.clone(), dialing.clone());
            tokio::spawn(async move {
                let ok = dial(server, &addr).await;
                let mut a = attempts.lock();
                let failures = if ok { 0 } else { a.get(&addr).map(|(_, f)| f + 1).unwrap_or(1) };
                let backoff = Duration::from_millis((100u64 << failures.min(6)).min(5_000));
                a.insert(addr.clone(), (Instant::now() + backoff, failures));
                dialing.lock().remove(&addr);
            });
        }
    }
}

/// One connection attempt; returns after the connection ends (true if it got past the
/// handshake).
async fn dial(server: Arc<Server>, addr: &str) -> bool {
    let mesh = server.mesh.as_ref().expect("mesh");
    let Ok(sockaddr) = addr.parse::<SocketAddr>() else { return false };
    let stream =
        match tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(sockaddr)).await {
            Ok(Ok(s)) => s,
            _ => return false,
        };
    let _ = stream.set_nodelay(true);
    let io: Box<dyn peer::Io> = match &mesh.tls {
        None => Box::new(stream),
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from("syncmesh-peer").expect("valid name");
            match tokio::time::timeout(Duration::from_secs(5), tls.connector().connect(name, stream)).await {
                Ok(Ok(s)) => Box::new(s),
                Ok(Err(e)) => {
                    warn!(peer = %addr, error = %e, "mesh TLS handshake failed");
                    return false;
                }
                Err(_) => return false,
            }
        }
    };
    peer::run(server, io, sockaddr, Some(addr.to_string())).await
}

/// Every half second: advance the causal-stability frontier, drop log entries every member has,
/// compact a slice of the keyspace, and retire members that have been gone too long.
async fn stability_loop(server: Arc<Server>) {
    let mesh = server.mesh.as_ref().expect("mesh");
    let mut shutdown = server.shutdown.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut cursor = (0usize, 0usize);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        // Retire members nobody has heard from for the grace period.
        {
            let connected: HashSet<ReplicaId> = mesh.peers.lock().keys().copied().collect();
            let mut members = mesh.members.lock();
            let gone: Vec<ReplicaId> = members
                .iter()
                .filter(|(id, m)| !connected.contains(id) && m.last_change.elapsed() > mesh.retire_after)
                .map(|(id, _)| *id)
                .collect();
            for id in gone {
                info!(member = format!("{id:016x}"), "retiring a member that left");
                members.remove(&id);
                mesh.retired.lock().insert(id);
            }
        }
        let mut store = server.store.lock();
        let mine = store.replica.version_vector().clone();
        let mut frontier = mine.clone();
        {
            let mut members = mesh.members.lock();
            if members.is_empty() && mesh.has_seeds && mesh.peers.lock().is_empty() {
                continue; // peers are expected but none is known yet: nothing is stable
            }
            for (id, m) in members.iter_mut() {
                // An ack counts once this replica has applied the member's own writes up to it:
                // then nothing that member wrote concurrently can still be on its way.
                if mine.get(*id) >= m.ack.get(*id) {
                    m.stable_ack = m.ack.clone();
                }
                frontier = frontier.meet(&m.stable_ack);
            }
        }
        if let Some(storage) = &mut store.storage {
            storage.log_stable(&frontier);
        }
        store.replica.set_stable(frontier.clone());
        store.log.truncate_acked(&frontier);
        cursor = store.replica.compact_some(cursor, 2_000);
    }
}
