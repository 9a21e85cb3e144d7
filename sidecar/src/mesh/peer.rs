//! One mesh connection. Both ends send `Hello`; if the database and protocol match, each side
//! streams the other everything it lacks from its replication log (a snapshot first when the log
//! no longer reaches back far enough), acks what it applied, shares the addresses it knows, and
//! relays Pub/Sub messages.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tracing::{debug, info, warn};

use super::wire::{self, Decoder, Encoder, Hello, Message};
use super::PeerHandle;
use crate::crdt::replica::Update;
use crate::crdt::{ReplicaId, VersionVector};
use crate::server::Server;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A peer that lacks more than this many log entries gets a snapshot instead.
const SNAPSHOT_THRESHOLD: usize = 50_000;
/// Updates per frame.
const BATCH: usize = 512;
/// Snapshot chunk size.
const SNAPSHOT_CHUNK: usize = 8 * 1024 * 1024;

/// Reads one message. With `idle`, fails with `TimedOut` when no byte arrives for that long
/// (a large message on a slow link is fine as long as it keeps moving).
async fn read_message(
    rd: &mut ReadHalf<Box<dyn Io>>,
    buf: &mut BytesMut,
    mesh: &super::Mesh,
    idle: Option<Duration>,
) -> std::io::Result<Option<Message>> {
    loop {
        match wire::decode(buf) {
            Ok(Some(m)) => return Ok(Some(m)),
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
        mesh.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
    }
}

async fn send(wr: &mut WriteHalf<Box<dyn Io>>, msg: &Message, mesh: &super::Mesh) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    wire::encode(msg, &mut buf);
    mesh.bytes_sent.fetch_add(buf.len() as u64, Ordering::Relaxed);
    wr.write_all(&buf).await
}

/// Runs a connection to the end. `dialed` is the address we dialled (None: they dialled us).
/// Returns true if the handshake succeeded.
pub async fn run(server: Arc<Server>, io: Box<dyn Io>, remote: SocketAddr, dialed: Option<String>) -> bool {
    let mesh = server.mesh.as_ref().expect("mesh");
    let (mut rd, mut wr) = tokio::io::split(io);
    let (my_vv, durable) = {
        let mut store = server.store.lock();
        (store.replica.version_vector().clone(), store.flush_storage())
    };
    // Nothing leaves for a peer before the data directory holds it (see storage/sync.rs).
    if let Some(seq) = durable {
        server.wait_durable(seq).await;
    }
    let hello = Hello {
        magic: wire::MAGIC.into(),
        protocol: wire::PROTOCOL_VERSION,
        database: mesh.database.clone(),
        replica: mesh.id,
        listen_port: mesh.listen_port,
        advertise: mesh.advertise.clone(),
        vv: my_vv,
    };
    if send(&mut wr, &Message::Hello(hello), mesh).await.is_err() {
        return false;
    }
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let theirs = match tokio::time::timeout(
        Duration::from_secs(5),
        read_message(&mut rd, &mut buf, mesh, None),
    )
    .await
    {
        Ok(Ok(Some(Message::Hello(h)))) => h,
        Ok(Ok(Some(Message::Refused(why)))) => {
            warn!(peer = %remote, reason = %why, "mesh peer refused us");
            return false;
        }
        Ok(Ok(Some(other))) => {
            warn!(peer = %remote, message = ?std::mem::discriminant(&other), "mesh peer did not start with a handshake");
            return false;
        }
        Ok(Err(e)) => {
            warn!(peer = %remote, error = %e, "refused a mesh connection: bad handshake");
            return false;
        }
        Ok(Ok(None)) | Err(_) => return false,
    };
    let refusal = if theirs.magic != wire::MAGIC {
        Some("not a SyncMesh peer".to_string())
    } else if theirs.protocol != wire::PROTOCOL_VERSION {
        Some(format!(
            "protocol version {} is not supported (this replica speaks {})",
            theirs.protocol,
            wire::PROTOCOL_VERSION
        ))
    } else if theirs.database != mesh.database {
        Some(format!("database '{}' does not match this replica's '{}'", theirs.database, mesh.database))
    } else {
        None
    };
    if let Some(why) = refusal {
        warn!(peer = %remote, reason = %why, "refused a mesh peer");
        let _ = send(&mut wr, &Message::Refused(why), mesh).await;
        return false;
    }
    let peer_id = theirs.replica;
    if peer_id == mesh.id {
        if let Some(a) = &dialed {
            mesh.self_addrs.lock().insert(a.clone());
            mesh.known_addrs.lock().remove(a);
        }
        return false;
    }
    server.check_own_history(peer_id, theirs.vv.get(mesh.id));
    // The address to reach it: what it advertises, else the address we see with its mesh port.
    let peer_addr = theirs
        .advertise
        .as_ref()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| SocketAddr::new(remote.ip(), theirs.listen_port));
    if dialed.is_none() && mesh.peer_exchange {
        mesh.learn_addrs([peer_addr.to_string()]);
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
    {
        let mut target = mesh.sync_target.lock();
        if target.is_none() {
            *target = Some(theirs.vv.clone());
        }
    }
    server.check_initial_sync();
    let ack_now = Arc::new(tokio::sync::Notify::new());
    let writer =
        tokio::spawn(write_loop(server.clone(), wr, peer_id, theirs.vv.clone(), control, ack_now.clone()));
    let result = read_loop(&server, &mut rd, buf, peer_id, &ack_now).await;
    writer.abort();
    mesh.unregister(peer_id, conn_id);
    match result {
        Ok(()) => info!(peer = format!("{peer_id:016x}"), "mesh peer disconnected"),
        Err(e) => warn!(peer = format!("{peer_id:016x}"), error = %e, "mesh connection dropped"),
    }
    true
}

async fn read_loop(
    server: &Arc<Server>,
    rd: &mut ReadHalf<Box<dyn Io>>,
    mut buf: BytesMut,
    peer: ReplicaId,
    ack_now: &tokio::sync::Notify,
) -> std::io::Result<()> {
    let mesh = server.mesh.as_ref().expect("mesh");
    let mut decoder = Decoder::default();
    let mut snapshot: Vec<u8> = Vec::new();
    let mut shutdown = server.shutdown.subscribe();
    loop {
        let msg = tokio::select! {
            m = read_message(rd, &mut buf, mesh, Some(mesh.peer_timeout)) => m?,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(msg) = msg else { return Ok(()) };
        match msg {
            Message::Updates(batch) => {
                let updates: Vec<Update> = batch.into_iter().map(|w| decoder.decode(w)).collect();
                server.apply_remote(updates);
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
                    match decoded {
                        Ok(s) => server.install_snapshot(s, &bytes),
                        Err(e) => {
                            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
                        }
                    }
                }
            }
            Message::Peers(addrs) => {
                if mesh.peer_exchange {
                    mesh.learn_addrs(addrs)
                }
            }
            Message::Publish { origin, seq, channel, payload } => {
                if mesh.accept_publish(origin, seq) {
                    server.pubsub.lock().publish(&channel.clone().into(), &payload.clone().into());
                    mesh.broadcast(&Message::Publish { origin, seq, channel, payload }, Some(peer));
                }
            }
            Message::Hello(_) | Message::Refused(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "handshake message after the handshake",
                ));
            }
        }
    }
}

async fn write_loop(
    server: Arc<Server>,
    mut wr: WriteHalf<Box<dyn Io>>,
    peer: ReplicaId,
    peer_vv: VersionVector,
    mut control: super::ControlRx,
    ack_now: Arc<tokio::sync::Notify>,
) {
    if let Err(e) = stream_to_peer(&server, &mut wr, peer, peer_vv, &mut control, &ack_now).await {
        debug!(error = %e, "mesh writer stopped");
    }
    let _ = wr.shutdown().await;
}

async fn send_snapshot(
    server: &Arc<Server>,
    wr: &mut WriteHalf<Box<dyn Io>>,
) -> std::io::Result<(VersionVector, u64)> {
    let mesh = server.mesh.as_ref().expect("mesh");
    // Clone under the lock (brief), serialise outside it.
    let (snapshot, seq, durable) = {
        let mut store = server.store.lock();
        (store.replica.snapshot(), store.log.end_seq(), store.flush_storage())
    };
    if let Some(d) = durable {
        server.wait_durable(d).await;
    }
    let vv = snapshot.vv.clone();
    let bytes = tokio::task::spawn_blocking(move || wire::encode_snapshot(&snapshot))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let chunks: Vec<&[u8]> = bytes.chunks(SNAPSHOT_CHUNK).collect();
    let n = chunks.len().max(1);
    if chunks.is_empty() {
        send(wr, &Message::Snapshot { part: vec![], last: true }, mesh).await?;
    }
    for (i, c) in chunks.into_iter().enumerate() {
        send(wr, &Message::Snapshot { part: c.to_vec(), last: i + 1 == n }, mesh).await?;
    }
    mesh.snapshots_sent.fetch_add(1, Ordering::Relaxed);
    Ok((vv, seq))
}

async fn stream_to_peer(
    server: &Arc<Server>,
    wr: &mut WriteHalf<Box<dyn Io>>,
    peer: ReplicaId,
    mut sent: VersionVector,
    control: &mut super::ControlRx,
    ack_now: &tokio::sync::Notify,
) -> std::io::Result<()> {
    let mesh = server.mesh.as_ref().expect("mesh");
    let mut log_seq = mesh.log_seq.subscribe();
    let mut encoder = Encoder::default();
    let mut cursor = {
        let store = server.store.lock();
        let behind = !sent.dominates(&store.log.truncated)
            || store.log.missing(store.log.first_seq(), &sent) > SNAPSHOT_THRESHOLD;
        if behind {
            None
        } else {
            Some(store.log.first_seq())
        }
    };
    let mut ack_tick = tokio::time::interval(Duration::from_millis(100));
    let mut peers_tick = tokio::time::interval(Duration::from_secs(3));
    loop {
        let c = match cursor {
            Some(c) => c,
            None => {
                let (vv, seq) = send_snapshot(server, wr).await?;
                sent.merge(&vv);
                seq
            }
        };
        // What the peer acknowledged (it may have got updates from other peers too).
        if let Some(m) = mesh.members.lock().get(&peer) {
            sent.merge(&m.ack);
        }
        let (batch, durable) = {
            let mut store = server.store.lock();
            (store.log.read(c, &sent, peer, BATCH), store.flush_storage())
        };
        match batch {
            None => cursor = None, // the log moved past what this peer needs: snapshot
            Some((updates, next)) => {
                cursor = Some(next);
                if !updates.is_empty() {
                    if let Some(d) = durable {
                        server.wait_durable(d).await;
                    }
                    let wire_updates = updates.iter().map(|u| encoder.encode(u)).collect();
                    for u in &updates {
                        sent.observe(u.last_dot());
                    }
                    mesh.updates_sent.fetch_add(updates.len() as u64, Ordering::Relaxed);
                    send(wr, &Message::Updates(wire_updates), mesh).await?;
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
            Some(msg) = control.recv() => send(wr, &msg, mesh).await?,
            _ = async { tokio::select! { _ = ack_tick.tick() => {}, _ = ack_now.notified() => {} } } => {
                let (vv, durable) = {
                    let mut store = server.store.lock();
                    (store.replica.version_vector().clone(), store.flush_storage())
                };
                // An ack lets peers forget what it covers: only for what is on disk here.
                if let Some(d) = durable {
                    server.wait_durable(d).await;
                }
                let (members, retired) = mesh.gossip(&vv);
                send(wr, &Message::Ack { vv, members, retired }, mesh).await?;
            }
            _ = peers_tick.tick() => {
                let addrs: Vec<String> = mesh.peers.lock().values().map(|p| p.addr.to_string()).collect();
                send(wr, &Message::Peers(addrs), mesh).await?;
            }
        }
    }
}
