//! One mesh connection. Both ends prove membership ([`super::proof`]), then send `Hello`; each
//! side then streams the other everything it lacks from its host's replication log (a snapshot
//! first when the log no longer reaches back far enough), acks what it applied, shares the
//! addresses it knows, and relays Pub/Sub messages. Everything about the replica goes through
//! [`Host`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tracing::{debug, info, warn};

use super::proof::{FirstFrame, Greeting, MembershipKey, Side};
use super::wire::{self, Decoder, Encoder, Hello, Message};
use super::{Host, Mesh, PeerHandle, Traffic};
use crate::crdt::replica::Update;
use crate::crdt::{ReplicaId, VersionVector};

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A peer that lacks more than this many log entries gets a snapshot instead.
const SNAPSHOT_THRESHOLD: usize = 50_000;
/// Updates per frame.
const BATCH: usize = 512;
/// Snapshot chunk size.
const SNAPSHOT_CHUNK: usize = 8 * 1024 * 1024;

/// Frames larger than this are refused before the other side has proven membership.
const UNPROVEN_FRAME_LIMIT: usize = 4096;
/// The membership proof and the `Hello` exchange must be over within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads one frame's body (at most `limit` bytes). With `idle`, fails with `TimedOut` when no
/// byte arrives for that long (a large message on a slow link is fine as long as it keeps moving).
async fn read_frame(
    rd: &mut ReadHalf<Box<dyn Io>>,
    buf: &mut BytesMut,
    traffic: &Traffic,
    idle: Option<Duration>,
    limit: usize,
) -> std::io::Result<Option<BytesMut>> {
    loop {
        match wire::take_frame(buf, limit) {
            Ok(Some(body)) => return Ok(Some(body)),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
        }
        if buf.capacity() - buf.len() < 64 * 1024 {
            buf.reserve(256 * 1024);
        }
        let n = match idle {
            None => rd.read_buf(buf).await?,
            Some(idle) => tokio::time::timeout(idle, rd.read_buf(buf)).await.map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("nothing received for {} ms: the peer or the link is gone", idle.as_millis()),
                )
            })??,
        };
        if n == 0 {
            return Ok(None);
        }
        traffic.received.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Reads one message (see [`read_frame`]).
pub(super) async fn read_message(
    rd: &mut ReadHalf<Box<dyn Io>>,
    buf: &mut BytesMut,
    traffic: &Traffic,
    idle: Option<Duration>,
    limit: usize,
) -> std::io::Result<Option<Message>> {
    match read_frame(rd, buf, traffic, idle, limit).await? {
        None => Ok(None),
        Some(body) => wire::decode_body(&body)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
    }
}

pub(super) async fn send(
    wr: &mut WriteHalf<Box<dyn Io>>,
    msg: &Message,
    traffic: &Traffic,
) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    wire::encode(msg, &mut buf);
    traffic.sent.fetch_add(buf.len() as u64, Ordering::Relaxed);
    wr.write_all(&buf).await
}

/// Why a connection ended before or at the handshake.
#[derive(Debug)]
pub enum Handshake {
    /// This side refused the other; the reason was sent to it. `kind` labels the metric.
    Refused { kind: &'static str, reason: String },
    /// The other side refused us.
    RefusedBy(String),
    /// Not a SyncMesh peer, or it went away.
    Failed(String),
}

impl From<std::io::Error> for Handshake {
    fn from(e: std::io::Error) -> Handshake {
        Handshake::Failed(e.to_string())
    }
}

async fn refuse(
    wr: &mut WriteHalf<Box<dyn Io>>,
    traffic: &Traffic,
    kind: &'static str,
    reason: String,
) -> Handshake {
    let _ = send(wr, &Message::Refused(reason.clone()), traffic).await;
    Handshake::Refused { kind, reason }
}

async fn send_greeting(
    wr: &mut WriteHalf<Box<dyn Io>>,
    greeting: &Greeting,
    traffic: &Traffic,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    wire::encode_raw(&greeting.encode(), &mut out);
    traffic.sent.fetch_add(out.len() as u64, Ordering::Relaxed);
    wr.write_all(&out).await
}

/// The membership proof (`proof.rs`): a greeting each way, then a proof each way. Nothing
/// else is sent before the other side's proof checked out.
///
/// The dialer greets first; the acceptor greets back only when it speaks the dialer's protocol.
/// Otherwise the acceptor's first and only frame is a `Refused` naming both protocols, which
/// every release decodes (see [`wire::Message::Refused`]): a replica of the previous release
/// (protocol 1, which opens with its `Hello`) or of a later one that dials this one logs why.
pub(super) async fn prove_membership(
    rd: &mut ReadHalf<Box<dyn Io>>,
    wr: &mut WriteHalf<Box<dyn Io>>,
    buf: &mut BytesMut,
    traffic: &Traffic,
    key: &MembershipKey,
    side: Side,
) -> Result<(), Handshake> {
    let mine = Greeting::new(wire::PROTOCOL_VERSION);
    if side == Side::Dialer {
        send_greeting(wr, &mine, traffic).await?;
    }
    let Some(first) = read_frame(rd, buf, traffic, None, UNPROVEN_FRAME_LIMIT).await? else {
        return Err(Handshake::Failed("closed before its greeting".into()));
    };
    let theirs = match Greeting::decode(&first) {
        FirstFrame::Greeting(g) if g.protocol == wire::PROTOCOL_VERSION => g,
        FirstFrame::Greeting(g) => {
            let why = format!(
                "mesh protocol {} is not supported: this replica speaks protocol {}; run one release of syncmesh-replica across the mesh, or the release just before it",
                g.protocol,
                wire::PROTOCOL_VERSION
            );
            return Err(refuse(wr, traffic, "protocol", why).await);
        }
        FirstFrame::LegacyHello => {
            let why = format!(
                "mesh protocol 1 (a release without the membership proof) is not supported: this replica speaks protocol {}; upgrade the replica that sent it",
                wire::PROTOCOL_VERSION
            );
            return Err(refuse(wr, traffic, "protocol", why).await);
        }
        // An acceptor of another protocol refuses our greeting without greeting back.
        FirstFrame::NotSyncMesh => match wire::decode_body(&first) {
            Ok(Message::Refused(why)) => return Err(Handshake::RefusedBy(why)),
            _ => return Err(Handshake::Failed("not a SyncMesh peer".into())),
        },
    };
    if side == Side::Acceptor {
        send_greeting(wr, &mine, traffic).await?;
    }
    let proof = key.prove(side, &theirs.nonce, &mine.nonce);
    send(wr, &Message::Proof(proof), traffic).await?;
    match read_message(rd, buf, traffic, None, UNPROVEN_FRAME_LIMIT).await? {
        Some(Message::Proof(p)) if key.verify(side.other(), &mine.nonce, &theirs.nonce, &p) => {
            Ok(())
        }
        Some(Message::Proof(_)) => Err(refuse(
            wr,
            traffic,
            "membership",
            "membership proof failed: the replicas belong to different databases (--database) or have different mesh secrets (--mesh-secret)".into(),
        )
        .await),
        Some(Message::Refused(why)) => Err(Handshake::RefusedBy(why)),
        Some(_) => Err(Handshake::Failed("sent something other than its membership proof".into())),
        None => Err(Handshake::Failed("closed during the membership proof".into())),
    }
}

/// What the other side opened the connection for.
enum Opened {
    /// Replication: its `Hello`.
    Peer(Hello),
    /// The strong keys' group.
    Strong,
}

/// A mesh connection that carries the strong keys' group: membership proven as for a peer,
/// then length-prefixed frames whose contents `strong/transport.rs` defines.
pub struct StrongLink {
    pub rd: ReadHalf<Box<dyn Io>>,
    pub wr: WriteHalf<Box<dyn Io>>,
    /// Bytes read and not yet taken.
    pub buf: BytesMut,
    pub remote: SocketAddr,
}

/// Opens a strong link to the member at `addr`: TLS (as the mesh has it), the membership proof,
/// its `Hello` (read and checked), then `Strong` instead of ours.
pub async fn open_strong_link(mesh: &Mesh, addr: SocketAddr) -> std::io::Result<StrongLink> {
    let io = super::discovery::connect(mesh, addr).await?;
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut buf = BytesMut::new();
    let refused = |why: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why);
    let proving = prove_membership(&mut rd, &mut wr, &mut buf, &mesh.traffic, &mesh.proof_key, Side::Dialer);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, proving).await {
        Err(_) => {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "membership proof timed out"))
        }
        Ok(Err(
            Handshake::Refused { reason, .. } | Handshake::RefusedBy(reason) | Handshake::Failed(reason),
        )) => return Err(refused(reason)),
        Ok(Ok(())) => {}
    }
    let hello =
        read_message(&mut rd, &mut buf, &mesh.traffic, Some(HANDSHAKE_TIMEOUT), wire::MAX_FRAME).await?;
    match hello {
        Some(Message::Hello(h)) if h.database == mesh.database => {}
        Some(Message::Hello(h)) => return Err(refused(format!("{addr} serves database '{}'", h.database))),
        Some(Message::Refused(why)) => return Err(refused(why)),
        _ => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "expected a Hello")),
    }
    send(&mut wr, &Message::Strong, &mesh.traffic).await?;
    Ok(StrongLink { rd, wr, buf, remote: addr })
}

/// Proves membership both ways, then exchanges `Hello`s; returns the other's `Hello` (or that
/// it opened a strong link).
async fn handshake(
    mesh: &Mesh,
    host: &dyn Host,
    rd: &mut ReadHalf<Box<dyn Io>>,
    wr: &mut WriteHalf<Box<dyn Io>>,
    buf: &mut BytesMut,
    side: Side,
) -> Result<Opened, Handshake> {
    prove_membership(rd, wr, buf, &mesh.traffic, &mesh.proof_key, side).await?;
    // Nothing leaves for a peer before the data directory holds it (see storage/sync.rs).
    let vv = host.durable_version_vector().await;
    let hello = Hello {
        magic: wire::MAGIC.into(),
        protocol: wire::PROTOCOL_VERSION,
        database: mesh.database.clone(),
        replica: mesh.id,
        listen_port: mesh.listen_port,
        advertise: mesh.advertise.clone(),
        vv,
    };
    send(wr, &Message::Hello(hello), &mesh.traffic).await?;
    let theirs = match read_message(rd, buf, &mesh.traffic, None, wire::MAX_FRAME).await? {
        Some(Message::Hello(h)) => h,
        Some(Message::Strong) if side == Side::Acceptor => return Ok(Opened::Strong),
        Some(Message::Refused(why)) => return Err(Handshake::RefusedBy(why)),
        Some(_) => return Err(Handshake::Failed("did not send its Hello after the proof".into())),
        None => return Err(Handshake::Failed("closed before its Hello".into())),
    };
    if theirs.database != mesh.database {
        let why = format!("database '{}' does not match this replica's '{}'", theirs.database, mesh.database);
        return Err(refuse(wr, &mesh.traffic, "database", why).await);
    }
    if theirs.replica != mesh.id {
        if let Some(q) = mesh.quarantined(theirs.replica) {
            let why = format!("replica {:016x} is quarantined by this replica: {q}", theirs.replica);
            return Err(refuse(wr, &mesh.traffic, "quarantined", why).await);
        }
        if let Err(why) = host.check_claim(theirs.replica, theirs.vv.get(mesh.id)) {
            mesh.quarantine(theirs.replica, &why);
            return Err(refuse(wr, &mesh.traffic, "own_history", why).await);
        }
    }
    Ok(Opened::Peer(theirs))
}

/// Runs a connection to the end. `dialed` is the address we dialled (None: they dialled us).
/// Returns true if the handshake succeeded.
pub async fn run(
    mesh: Arc<Mesh>,
    host: Arc<dyn Host>,
    io: Box<dyn Io>,
    remote: SocketAddr,
    dialed: Option<String>,
) -> bool {
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let side = if dialed.is_some() { Side::Dialer } else { Side::Acceptor };
    let shaking = handshake(&mesh, host.as_ref(), &mut rd, &mut wr, &mut buf, side);
    let theirs = match tokio::time::timeout(HANDSHAKE_TIMEOUT, shaking).await {
        Ok(Ok(Opened::Peer(h))) => h,
        Ok(Ok(Opened::Strong)) => {
            host.strong_link(StrongLink { rd, wr, buf, remote });
            return true;
        }
        Ok(Err(Handshake::Refused { kind, reason })) => {
            mesh.count_refusal(kind);
            if kind == "own_history" || kind == "quarantined" {
                debug!(peer = %remote, reason = %reason, "refused a mesh peer");
            } else {
                warn!(peer = %remote, reason = %reason, "refused a mesh peer");
            }
            return false;
        }
        Ok(Err(Handshake::RefusedBy(why))) => {
            warn!(peer = %remote, reason = %why, "mesh peer refused us");
            return false;
        }
        Ok(Err(Handshake::Failed(why))) => {
            debug!(peer = %remote, reason = %why, "mesh handshake failed");
            return false;
        }
        Err(_) => {
            debug!(peer = %remote, "mesh handshake timed out");
            return false;
        }
    };
    let peer_id = theirs.replica;
    if peer_id == mesh.id {
        if let Some(a) = &dialed {
            mesh.discovery.lock().is_us(a);
        }
        return false;
    }
    // The address to reach it: what it advertises, else the address we see with its mesh port.
    let peer_addr = theirs
        .advertise
        .as_ref()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| SocketAddr::new(remote.ip(), theirs.listen_port));
    if dialed.is_none() && mesh.peer_exchange {
        mesh.discovery.lock().learn([peer_addr.to_string()]);
    }
    let (tx, control) = super::control_queue();
    let conn_id = mesh.next_conn.fetch_add(1, Ordering::Relaxed);
    let dialer = if dialed.is_some() { mesh.id } else { peer_id };
    let handle =
        PeerHandle { id: peer_id, addr: peer_addr, dialer, tx, connected_at: Instant::now(), conn_id };
    if !mesh.register(handle) {
        debug!(peer = format!("{peer_id:016x}"), "duplicate mesh connection closed");
        return true;
    }
    info!(peer = format!("{peer_id:016x}"), addr = %peer_addr, "mesh peer connected");
    mesh.set_sync_target(&theirs.vv);
    mesh.check_initial_sync(host.as_ref());
    let ack_now = Arc::new(tokio::sync::Notify::new());
    let writer = tokio::spawn(write_loop(
        mesh.clone(),
        host.clone(),
        wr,
        peer_id,
        theirs.vv.clone(),
        control,
        ack_now.clone(),
    ));
    let result = read_loop(&mesh, host.as_ref(), &mut rd, buf, peer_id, &ack_now).await;
    writer.abort();
    mesh.unregister(peer_id, conn_id);
    match result {
        Ok(()) => info!(peer = format!("{peer_id:016x}"), "mesh peer disconnected"),
        Err(e) => warn!(peer = format!("{peer_id:016x}"), error = %e, "mesh connection dropped"),
    }
    true
}

fn invalid(why: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why.into())
}

async fn read_loop(
    mesh: &Mesh,
    host: &dyn Host,
    rd: &mut ReadHalf<Box<dyn Io>>,
    mut buf: BytesMut,
    peer: ReplicaId,
    ack_now: &tokio::sync::Notify,
) -> std::io::Result<()> {
    let mut decoder = Decoder::default();
    let mut snapshot: Vec<u8> = Vec::new();
    let mut shutdown = mesh.stopping();
    loop {
        let msg = tokio::select! {
            m = read_message(rd, &mut buf, &mesh.traffic, Some(mesh.peer_timeout), wire::MAX_FRAME) => m?,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(msg) = msg else { return Ok(()) };
        match msg {
            Message::Updates(batch) => {
                let updates: Vec<Update> = batch.into_iter().map(|w| decoder.decode(w)).collect();
                if let Err(why) = host.apply(updates) {
                    mesh.quarantine(peer, &why);
                    return Err(invalid(why));
                }
                mesh.check_initial_sync(host);
                // Tell the sender at once (WAIT is waiting for it).
                ack_now.notify_one();
            }
            Message::Ack { vv, members, retired } => mesh.on_ack(peer, vv, members, retired),
            Message::Snapshot { part, last } => {
                snapshot.extend_from_slice(&part);
                if last {
                    let bytes = std::mem::take(&mut snapshot);
                    let (decoded, bytes) =
                        tokio::task::spawn_blocking(move || (wire::decode_snapshot(&bytes), bytes))
                            .await
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                    let s = decoded.map_err(|e| invalid(e.to_string()))?;
                    if let Err(why) = host.install(s, &bytes) {
                        mesh.quarantine(peer, &why);
                        return Err(invalid(why));
                    }
                    mesh.check_initial_sync(host);
                }
            }
            Message::Peers(addrs) => {
                if mesh.peer_exchange {
                    mesh.discovery.lock().learn(addrs)
                }
            }
            Message::Publish { origin, seq, channel, payload } => {
                if mesh.accept_publish(origin, seq) {
                    host.deliver_publish(channel.clone().into(), payload.clone().into());
                    mesh.broadcast(&Message::Publish { origin, seq, channel, payload }, Some(peer));
                }
            }
            Message::Hello(_) | Message::Refused(_) | Message::Proof(_) | Message::Strong => {
                return Err(invalid("handshake message after the handshake"));
            }
        }
    }
}

async fn write_loop(
    mesh: Arc<Mesh>,
    host: Arc<dyn Host>,
    mut wr: WriteHalf<Box<dyn Io>>,
    peer: ReplicaId,
    peer_vv: VersionVector,
    mut control: super::ControlRx,
    ack_now: Arc<tokio::sync::Notify>,
) {
    if let Err(e) = stream_to_peer(&mesh, host.as_ref(), &mut wr, peer, peer_vv, &mut control, &ack_now).await
    {
        debug!(error = %e, "mesh writer stopped");
    }
    let _ = wr.shutdown().await;
}

async fn send_snapshot(
    mesh: &Mesh,
    host: &dyn Host,
    wr: &mut WriteHalf<Box<dyn Io>>,
) -> std::io::Result<(VersionVector, u64)> {
    let (snapshot, seq) = host.snapshot().await;
    let vv = snapshot.vv.clone();
    let bytes = tokio::task::spawn_blocking(move || wire::encode_snapshot(&snapshot))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let chunks: Vec<&[u8]> = bytes.chunks(SNAPSHOT_CHUNK).collect();
    let n = chunks.len().max(1);
    if chunks.is_empty() {
        send(wr, &Message::Snapshot { part: vec![], last: true }, &mesh.traffic).await?;
    }
    for (i, c) in chunks.into_iter().enumerate() {
        send(wr, &Message::Snapshot { part: c.to_vec(), last: i + 1 == n }, &mesh.traffic).await?;
    }
    mesh.snapshots_sent.fetch_add(1, Ordering::Relaxed);
    Ok((vv, seq))
}

async fn stream_to_peer(
    mesh: &Mesh,
    host: &dyn Host,
    wr: &mut WriteHalf<Box<dyn Io>>,
    peer: ReplicaId,
    mut sent: VersionVector,
    control: &mut super::ControlRx,
    ack_now: &tokio::sync::Notify,
) -> std::io::Result<()> {
    let mut log_seq = mesh.log_seq.subscribe();
    let mut encoder = Encoder::default();
    let mut frame = BytesMut::new();
    let mut cursor = host.log_start(&sent, SNAPSHOT_THRESHOLD);
    let mut ack_tick = tokio::time::interval(Duration::from_millis(100));
    let mut peers_tick = tokio::time::interval(Duration::from_secs(3));
    loop {
        let c = match cursor {
            Some(c) => c,
            None => {
                let (vv, seq) = send_snapshot(mesh, host, wr).await?;
                sent.merge(&vv);
                seq
            }
        };
        // What the peer acknowledged (it may have got updates from other peers too).
        if let Some(ack) = mesh.acked_by(peer) {
            sent.merge(&ack);
        }
        match host.read_log(c, &sent, peer, BATCH).await {
            None => cursor = None, // the log moved past what this peer needs: snapshot
            Some((updates, next)) => {
                cursor = Some(next);
                if !updates.is_empty() {
                    for u in &updates {
                        sent.observe(u.last_dot());
                    }
                    mesh.updates_sent.fetch_add(updates.len() as u64, Ordering::Relaxed);
                    // Encoded straight from the log's updates: no copy of keys and values.
                    frame.clear();
                    wire::encode_updates(&mut encoder, &updates, &mut frame);
                    mesh.traffic.sent.fetch_add(frame.len() as u64, Ordering::Relaxed);
                    wr.write_all(&frame).await?;
                    continue;
                }
            }
        }
        tokio::select! {
            r = log_seq.changed() => {
                if r.is_err() {
                    return Ok(());
                }
            }
            Some(msg) = control.recv() => send(wr, &msg, &mesh.traffic).await?,
            _ = async { tokio::select! { _ = ack_tick.tick() => {}, _ = ack_now.notified() => {} } } => {
                // An ack lets peers forget what it covers: only for what is durable here.
                let vv = host.durable_version_vector().await;
                let (members, retired) = mesh.gossip(&vv);
                send(wr, &Message::Ack { vv, members, retired }, &mesh.traffic).await?;
            }
            _ = peers_tick.tick() => {
                let addrs: Vec<String> = mesh.members.lock().peers.values().map(|p| p.addr.to_string()).collect();
                send(wr, &Message::Peers(addrs), &mesh.traffic).await?;
            }
        }
    }
}
