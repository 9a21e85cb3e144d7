//! The mesh: replicas of one database replicating to each other, active-active.
//!
//! - [`wire`]: frames and messages; [`proof`]: the membership proof that opens a connection.
//! - [`peer`]: one connection (handshake, then updates, acks, snapshots, Pub/Sub both ways).
//! - [`members`]: the member table (connected peers, acks, retirement, quarantine, stability).
//! - [`discovery`]: listening, dialling, DNS and peer exchange.
//! - [`log`]: the replication log the host keeps and peers are streamed from.
//! - [`tls`]: mutual TLS; [`client`]: a plaintext connection from outside a replica (tests, tools).
//! - [`peer::StrongLink`]: a connection that carries the strong keys' group instead of
//!   replication (opened with [`peer::open_strong_link`], served by `strong/transport.rs`).
//! - this file: the [`Host`] interface, the [`Mesh`] state and its background work.
//!
//! The mesh knows the replica it serves only through [`Host`]: apply updates, install a
//! snapshot, read the log, wait for durability. It never takes the host's store itself.
//!
//! **Lock order.** A caller may hold the host's store lock when it calls into the mesh (INFO,
//! WAIT, status): so the mesh never calls the host while it holds one of its own locks, and the
//! host never holds its store lock while it waits on anything of the mesh. Inside the mesh:
//! `members` before `discovery`; `publish_seen` and `sync_target` are taken alone.
//!
//! The design is written down in `docs/design.md`.

pub mod client;
pub mod discovery;
pub mod log;
pub mod members;
pub mod peer;
pub mod proof;
pub mod tls;
pub mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::crdt::replica::{Snapshot, Update};
use crate::crdt::{Dot, ReplicaId, Timestamp, VersionVector};
pub use members::{Member, PeerHandle, PeerStatus, Quarantined};
use wire::Message;

/// A future a [`Host`] returns.
pub type HostFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the mesh needs of the replica it serves. Every method takes the host's own locks and
/// gives them back before it returns; the futures wait for durability without holding them.
pub trait Host: Send + Sync + 'static {
    /// What this replica has applied, once all of it is as durable as a reply would be (what a
    /// `Hello` or an ack may claim).
    fn durable_version_vector(&self) -> HostFuture<'_, VersionVector>;
    /// What this replica has applied (for stability and readiness; no durability wait).
    fn version_vector(&self) -> VersionVector;
    /// Refuses a peer's claim to hold writes of this replica up to `theirs` that this replica
    /// does not hold (the reason is sent to the peer).
    fn check_claim(&self, peer: ReplicaId, theirs: Timestamp) -> Result<(), String>;
    /// Applies a peer's updates, all or none: refused if they carry writes under this replica's
    /// own id that it never made.
    fn apply(&self, updates: Vec<Update>) -> Result<(), String>;
    /// Joins a peer's snapshot (`encoded` as it arrived); refused as [`Host::apply`].
    fn install(&self, snapshot: Snapshot, encoded: &[u8]) -> Result<(), String>;
    /// The state for a peer that needs a snapshot, and the log position it stands for, durable.
    fn snapshot(&self) -> HostFuture<'_, (Snapshot, u64)>;
    /// Where to start streaming the log to a peer that holds `sent`; None if it needs a
    /// snapshot (the log no longer reaches back that far, or it lacks more than `max_missing`).
    fn log_start(&self, sent: &VersionVector, max_missing: usize) -> Option<u64>;
    /// Up to `max` updates from position `cursor` on that a peer holding `sent` lacks, and the
    /// position after them, once they are durable; None if the log moved past `cursor`.
    fn read_log(
        &self,
        cursor: u64,
        sent: &VersionVector,
        peer: ReplicaId,
        max: usize,
    ) -> HostFuture<'_, Option<(Vec<Arc<Update>>, u64)>>;
    /// A Pub/Sub message published on another replica, for this replica's subscribers.
    fn deliver_publish(&self, channel: Bytes, payload: Bytes);
    /// Every member has applied `frontier`: collect what only served to reach them (log
    /// entries, tombstones), and compact a slice of the keyspace from `cursor` on; returns
    /// where the next pass continues.
    fn stable(&self, frontier: &VersionVector, cursor: (usize, usize)) -> (usize, usize);
    /// The initial sync is done (the replica may be reported ready).
    fn synced(&self);
    /// A member opened a connection for the strong keys' group ([`peer::StrongLink`]); the
    /// host serves it or drops it.
    fn strong_link(&self, link: peer::StrongLink) {
        drop(link);
    }
}

/// Bytes of control messages (relayed Pub/Sub) that may wait for one peer's writer. A slow or
/// stalled peer otherwise makes them pile up in memory; past this they are dropped for that
/// peer (Pub/Sub is at-most-once) and counted. Redis's default hard limit for a Pub/Sub client's
/// output buffer. (Updates need no such limit: they wait in the replication log, which is capped.)
pub const CONTROL_QUEUE_BYTES: usize = 32 * 1024 * 1024;

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

pub struct Mesh {
    pub id: ReplicaId,
    pub database: String,
    pub listen_port: u16,
    pub advertise: Option<String>,
    pub tls: Option<Arc<tls::MeshTls>>,
    /// What members derive from the database name and the mesh secret to prove membership.
    pub proof_key: proof::MembershipKey,
    /// The member table ([`members::Members`]): one lock for all of it.
    members: Mutex<members::Members>,
    /// Mesh addresses learned from seeds, DNS and peers, and those that turned out to be us.
    pub discovery: Mutex<discovery::Addresses>,
    /// Bumped whenever the replication log grows: peer writers wait on it.
    log_seq: watch::Sender<u64>,
    /// Bumped whenever an ack arrives: WAIT waits on it.
    pub ack_seq: watch::Sender<u64>,
    beat: AtomicU64,
    publish_seq: AtomicU64,
    publish_seen: Mutex<HashMap<ReplicaId, u64>>,
    /// The version vector the first peer had when we met it: ready once we have it all.
    sync_target: Mutex<Option<VersionVector>>,
    synced: AtomicBool,
    pub retire_after: Duration,
    /// Silence after which a connection counts as dead (`--peer-timeout-ms`).
    pub peer_timeout: Duration,
    pub started: Instant,
    next_conn: AtomicU64,
    pub traffic: Traffic,
    pub updates_sent: AtomicU64,
    pub snapshots_sent: AtomicU64,
    /// Pub/Sub messages dropped for peers whose control queue was full.
    pub control_dropped: AtomicU64,
    pub has_seeds: bool,
    /// Some other member has been seen (until then, and without seeds, writes are stable at once).
    members_known: AtomicBool,
    pub peer_exchange: bool,
    /// Handshakes this replica refused, by reason (`syncmesh_mesh_handshakes_refused_total`).
    pub handshakes_refused: prometheus::IntCounterVec,
    shutdown: watch::Sender<bool>,
}

impl Mesh {
    /// Whether the configuration asks for a mesh at all (TLS material or `--mesh-insecure`);
    /// [`Mesh::from_config`] checks the details.
    pub fn wanted(config: &Config) -> bool {
        config.tls_ca.is_some()
            || config.tls_cert.is_some()
            || config.tls_key.is_some()
            || config.mesh_insecure
    }

    /// Builds the mesh from the flags; None when the replica runs alone (no TLS and no
    /// `--mesh-insecure`).
    pub fn from_config(config: &Config, id: ReplicaId) -> std::io::Result<Option<Arc<Mesh>>> {
        let invalid = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg);
        let tls = match (&config.tls_ca, &config.tls_cert, &config.tls_key) {
            (Some(ca), Some(cert), Some(key)) => Some(Arc::new(tls::MeshTls::load(ca, cert, key)?)),
            (None, None, None) => None,
            _ => return Err(invalid("mesh TLS needs all of --tls-ca, --tls-cert and --tls-key".into())),
        };
        let has_seeds = !config.peers.is_empty() || config.peers_dns.is_some();
        if tls.is_none() && !config.mesh_insecure {
            if has_seeds {
                return Err(invalid(
                    "the mesh needs --tls-ca, --tls-cert and --tls-key (or --mesh-insecure for local development)"
                        .into(),
                ));
            }
            return Ok(None);
        }
        if tls.is_none() {
            let bind = discovery::mesh_bind(config);
            if !discovery::is_loopback(&bind) && config.mesh_secret.is_none() {
                return Err(invalid(format!(
                    "--mesh-insecure on {bind}, which is not a loopback address, needs a shared secret: set --mesh-secret (or SYNCMESH_MESH_SECRET) to the same value on every replica, or use TLS (--tls-ca, --tls-cert, --tls-key)"
                )));
            }
        }
        Ok(Some(Arc::new(Mesh {
            id,
            database: config.database.clone(),
            listen_port: config.mesh_port,
            advertise: config.advertise_addr.clone(),
            tls,
            proof_key: proof::MembershipKey::new(&config.database, config.mesh_secret.as_deref()),
            members: Mutex::new(members::Members::default()),
            discovery: Mutex::new(discovery::Addresses::seeded(&config.peers)),
            log_seq: watch::channel(0).0,
            ack_seq: watch::channel(0).0,
            beat: AtomicU64::new(0),
            publish_seq: AtomicU64::new(0),
            publish_seen: Mutex::new(HashMap::new()),
            sync_target: Mutex::new(None),
            synced: AtomicBool::new(false),
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
            handshakes_refused: prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "syncmesh_mesh_handshakes_refused_total",
                    "Mesh connections this replica refused at the handshake, by reason (membership, protocol, database, own_history, quarantined)",
                ),
                &["reason"],
            )
            .expect("metric"),
            shutdown: watch::channel(false).0,
        })))
    }

    /// Whether this replica is alone for now: no seeds and no member seen yet (its writes are
    /// stable at once, and a member that turns up later gets a snapshot).
    pub fn alone(&self) -> bool {
        !self.has_seeds && !self.members_known.load(Ordering::Acquire)
    }

    /// The host's replication log grew to `seq`: wakes the peer writers.
    pub fn log_grew(&self, seq: u64) {
        self.log_seq.send_replace(seq);
    }

    pub fn stop(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    // ------------------------------------------------------------------ the member table

    fn register(&self, handle: PeerHandle) -> bool {
        let ok = self.members.lock().register(self.id, handle);
        if ok {
            self.members_known.store(true, Ordering::Release);
        }
        ok
    }

    fn unregister(&self, id: ReplicaId, conn_id: u64) {
        self.members.lock().unregister(id, conn_id);
    }

    fn on_ack(
        &self,
        from: ReplicaId,
        vv: VersionVector,
        members: Vec<(ReplicaId, VersionVector, u64)>,
        retired: Vec<ReplicaId>,
    ) {
        self.members.lock().on_ack(self.id, from, vv, members, retired);
        self.ack_seq.send_modify(|s| *s += 1);
    }

    /// The member table as gossiped in acks (this replica included).
    fn gossip(&self, my_vv: &VersionVector) -> (Vec<(ReplicaId, VersionVector, u64)>, Vec<ReplicaId>) {
        let beat = self.beat.fetch_add(1, Ordering::Relaxed) + 1;
        self.members.lock().gossip(self.id, my_vv, beat)
    }

    /// What `peer` acknowledged having applied.
    fn acked_by(&self, peer: ReplicaId) -> Option<VersionVector> {
        self.members.lock().members.get(&peer).map(|m| m.ack.clone())
    }

    /// Members (other than this replica) whose acks cover `dot`: what WAIT counts.
    pub fn acked_count(&self, dot: Dot) -> usize {
        self.members.lock().acked_count(dot)
    }

    /// Members this replica knows of (connected or not, not retired).
    pub fn member_count(&self) -> usize {
        self.members.lock().members.len()
    }

    pub fn connected(&self) -> usize {
        self.members.lock().peers.len()
    }

    /// The members as SYNCMESH.PEERS, INFO and /status show them; `lag` measures an ack against
    /// the host's log (its caller holds the store).
    pub fn status(
        &self,
        lag: impl Fn(&VersionVector) -> (usize, Option<u64>),
        now_ms: u64,
    ) -> Vec<PeerStatus> {
        self.members.lock().status(lag, now_ms)
    }

    /// Refuses a member from now on (until [`Mesh::release`] or a restart): it claimed writes of
    /// this replica that this replica does not hold, or sent writes under this replica's id.
    pub fn quarantine(&self, id: ReplicaId, reason: &str) {
        let new = {
            let mut table = self.members.lock();
            table.peers.remove(&id);
            table.quarantine(id, reason)
        };
        if new {
            error!(
                member = format!("{id:016x}"),
                reason,
                "mesh member quarantined: its connections are refused. If this replica's data directory was restored from an older copy, set it aside (syncmesh-replica check-data DIR --set-aside, docs/durability.md); otherwise the member is faulty or hostile"
            );
        }
    }

    pub fn quarantined(&self, id: ReplicaId) -> Option<String> {
        self.members.lock().quarantine.get(&id).map(|q| q.reason.clone())
    }

    pub fn quarantined_count(&self) -> usize {
        self.members.lock().quarantine.len()
    }

    /// Lets quarantined members connect again (all of them with None); returns how many.
    pub fn release(&self, id: Option<ReplicaId>) -> usize {
        let mut table = self.members.lock();
        match id {
            None => std::mem::take(&mut table.quarantine).len(),
            Some(id) => table.quarantine.remove(&id).is_some() as usize,
        }
    }

    fn count_refusal(&self, kind: &'static str) {
        self.handshakes_refused.with_label_values(&[kind]).inc();
    }

    // ------------------------------------------------------------------ readiness

    /// Remembers what the first peer held when we met it.
    fn set_sync_target(&self, vv: &VersionVector) {
        let mut target = self.sync_target.lock();
        if target.is_none() {
            *target = Some(vv.clone());
        }
    }

    /// Tells the host it is synced once it holds everything its first peer had.
    pub fn check_initial_sync(&self, host: &dyn Host) {
        if self.synced.load(Ordering::Acquire) {
            return;
        }
        let Some(target) = self.sync_target.lock().clone() else { return };
        if host.version_vector().dominates(&target) {
            self.synced.store(true, Ordering::Release);
            info!(ms = self.started.elapsed().as_millis() as u64, "initial sync done: ready");
            host.synced();
        }
    }

    // ------------------------------------------------------------------ Pub/Sub across replicas

    /// Sends a control message to every connected peer except `except`.
    fn broadcast(&self, msg: &Message, except: Option<ReplicaId>) {
        let table = self.members.lock();
        for p in table.peers.values() {
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
    fn accept_publish(&self, origin: ReplicaId, seq: u64) -> bool {
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

/// Starts the mesh: listener, dialer, stability and retirement.
pub async fn start(mesh: Arc<Mesh>, host: Arc<dyn Host>, config: &Config) -> std::io::Result<()> {
    let listener = discovery::listen(&mesh, config).await?;
    match &mesh.tls {
        Some(tls) => {
            drop(tokio::spawn(tls.clone().watch(Duration::from_secs(config.tls_reload_secs.max(1)))))
        }
        None => warn!("mesh runs WITHOUT TLS (--mesh-insecure): for local development only"),
    }
    tokio::spawn(discovery::accept_loop(mesh.clone(), host.clone(), listener));
    tokio::spawn(discovery::dial_loop(
        mesh.clone(),
        host.clone(),
        config.peers_dns.clone(),
        config.mesh_port,
    ));
    tokio::spawn(stability_loop(mesh, host));
    Ok(())
}

/// Every half second: retire members that have been gone too long, advance the causal-stability
/// frontier, and let the host collect what every member has.
async fn stability_loop(mesh: Arc<Mesh>, host: Arc<dyn Host>) {
    let mut shutdown = mesh.stopping();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut cursor = (0usize, 0usize);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        cursor = stability_pass(&mesh, host.as_ref(), cursor);
    }
}

/// One pass of the stability loop; returns where the next pass continues compacting. Takes the
/// store lock (through the host) and the members lock one after the other, never together.
fn stability_pass(mesh: &Mesh, host: &dyn Host, cursor: (usize, usize)) -> (usize, usize) {
    let mine = host.version_vector();
    let frontier = {
        let mut table = mesh.members.lock();
        for id in table.retire_silent(mesh.retire_after) {
            info!(member = format!("{id:016x}"), "retiring a member that left");
        }
        if table.members.is_empty() && mesh.has_seeds && table.peers.is_empty() {
            return cursor; // peers are expected but none is known yet: nothing is stable
        }
        table.stability_frontier(&mine)
    };
    host.stable(&frontier, cursor)
}

#[cfg(test)]
mod tests;
