//! One client connection: read requests, run them, write replies, until the client leaves.
//!
//! All complete requests in the read buffer run in batches before the replies are written back,
//! so a pipelining client gets one write per batch. A blocking command parks the connection
//! until its reply arrives, its timeout passes, or the client goes away; Pub/Sub messages for the
//! client arrive on its queue and are written as they come.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::debug;

use super::client::{Blocked, Client, ClientInfo};
use super::pubsub::{Delivery, Sink};
use super::Server;
use crate::commands::TimeoutReply;
use crate::resp::{parse_request, Protocol, Reply, RequestLimits};

/// Flush replies early once this much is buffered (a huge pipeline should not hold it all).
const FLUSH_AT: usize = 1 << 20;
/// Redis's `client-query-buffer-limit` default.
const QUERY_BUFFER_LIMIT: usize = 1 << 30;
/// Most pipelined commands run under one lock acquisition (keeps other clients' latency low).
const MAX_BATCH: usize = 64;

pub async fn run(server: Arc<Server>, mut stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let laddr = stream.local_addr().unwrap_or(addr);
    let id = server.next_client_id.fetch_add(1, Ordering::Relaxed);
    if server.client_count() >= server.settings.read().maxclients {
        server.metrics.rejected_connections.inc();
        server.stats.rejected.fetch_add(1, Ordering::Relaxed);
        let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
        return;
    }
    let info = Arc::new(ClientInfo::new(id, addr, laddr));
    server.register_client(info.clone());
    let authenticated = server.settings.read().requirepass.is_none();
    let mut client = Client::new(info.clone(), authenticated);
    let (sink, pushes) = Sink::new(info.clone());
    client.set_sink(sink.clone());
    let mut conn = Connection {
        server: server.clone(),
        stream,
        client,
        sink,
        pushes,
        out: Reply::new(Protocol::Resp2),
        inbuf: BytesMut::with_capacity(16 * 1024),
        pending: VecDeque::new(),
    };
    if let Err(e) = conn.serve().await {
        debug!(client = id, error = %e, "connection closed with an error");
    }
    conn.cleanup();
}

struct Connection {
    server: Arc<Server>,
    stream: TcpStream,
    client: Client,
    sink: Arc<Sink>,
    pushes: mpsc::UnboundedReceiver<Delivery>,
    out: Reply,
    inbuf: BytesMut,
    /// Parsed requests not yet run (the rest of a pipeline behind a blocking command).
    pending: VecDeque<Vec<Bytes>>,
}

impl Connection {
    async fn serve(&mut self) -> std::io::Result<()> {
        let limits = RequestLimits::default();
        let info = self.client.info.clone();
        loop {
            let mut protocol_error = None;
            loop {
                match parse_request(&mut self.inbuf, &limits) {
                    Ok(Some(args)) if args.is_empty() => continue,
                    Ok(Some(args)) => self.pending.push_back(args),
                    Ok(None) => break,
                    Err(e) => {
                        protocol_error = Some(e);
                        break;
                    }
                }
            }
            while !self.pending.is_empty() && !self.client.close {
                let n = self.pending.len().min(MAX_BATCH);
                let batch: Vec<Vec<Bytes>> = self.pending.drain(..n).collect();
                let ran = self.server.execute_batch(&mut self.client, &mut self.out, &batch);
                for args in batch.into_iter().skip(ran).rev() {
                    self.pending.push_front(args);
                }
                if self.out.len() >= FLUSH_AT {
                    self.flush().await?;
                }
                if self.client.blocked.is_some() {
                    self.flush().await?;
                    if !self.wait_unblocked().await? {
                        return Ok(());
                    }
                }
                if let Some((dot, n, deadline)) = self.client.wait_for.take() {
                    self.flush().await?;
                    self.wait_acks(dot, n, deadline).await;
                }
            }
            if let Some(e) = protocol_error {
                if !self.client.close {
                    debug!(client = self.client.id, error = %e, "protocol error");
                    self.out.error(&format!("ERR {e}"));
                    self.client.close = true;
                }
            }
            self.flush().await?;
            if self.client.close || info.killed.load(Ordering::Acquire) {
                return Ok(());
            }
            if self.inbuf.len() > QUERY_BUFFER_LIMIT {
                debug!(client = self.client.id, "query buffer limit reached, closing");
                return Ok(());
            }
            if self.inbuf.capacity() - self.inbuf.len() < 4096 {
                self.inbuf.reserve(16 * 1024);
            }
            tokio::select! {
                n = self.stream.read_buf(&mut self.inbuf) => {
                    let n = n?;
                    if n == 0 {
                        return Ok(());
                    }
                    self.server.stats.net_input.fetch_add(n as u64, Ordering::Relaxed);
                }
                Some(d) = self.pushes.recv() => self.write_push(d),
                _ = info.kill.notified() => return Ok(()),
            }
            if info.killed.load(Ordering::Acquire) {
                return Ok(());
            }
        }
    }

    /// Waits for a blocked command's reply or timeout; false if the client went away.
    async fn wait_unblocked(&mut self) -> std::io::Result<bool> {
        let Blocked { waiter, mut reply, deadline, on_timeout } =
            self.client.blocked.take().expect("blocked");
        let info = self.client.info.clone();
        let timeout = deadline.map(|d| Duration::from_millis(d.saturating_sub(self.server.now_ms())));
        let sleep = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(86400 * 365)));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                r = &mut reply => {
                    if let Ok(bytes) = r {
                        // Served by another connection's write: its pop is in the log before
                        // this reply acknowledges it.
                        self.server.durable_barrier().await;
                        self.out.buf.extend_from_slice(&bytes);
                    }
                    return Ok(true);
                }
                _ = &mut sleep, if timeout.is_some() => {
                    if self.server.store.lock().unblock(waiter) {
                        info.blocked.store(false, Ordering::Relaxed);
                        match on_timeout {
                            TimeoutReply::NullArray => self.out.null_array(),
                            TimeoutReply::NullBulk => self.out.null(),
                        }
                        return Ok(true);
                    }
                    // Served at the same moment: the reply is on its way.
                    if let Ok(bytes) = (&mut reply).await {
                        self.server.durable_barrier().await;
                        self.out.buf.extend_from_slice(&bytes);
                    }
                    return Ok(true);
                }
                n = self.stream.read_buf(&mut self.inbuf) => {
                    // Requests behind the blocking one wait; a closed socket ends the wait.
                    if n? == 0 {
                        self.server.store.lock().unblock(waiter);
                        return Ok(false);
                    }
                }
                Some(d) = self.pushes.recv() => {
                    self.write_push(d);
                    self.flush().await?;
                }
                _ = info.kill.notified() => {
                    self.server.store.lock().unblock(waiter);
                    return Ok(false);
                }
            }
        }
    }

    /// WAIT: replies with the number of peers that applied `dot` once `n` have, or at the
    /// deadline.
    async fn wait_acks(&mut self, dot: crate::crdt::Dot, n: usize, deadline: Option<u64>) {
        let Some(mesh) = self.server.mesh.as_ref() else { return };
        let mut acks = mesh.ack_seq.subscribe();
        loop {
            let count = mesh.acked_count(dot);
            let now = self.server.now_ms();
            if count >= n || deadline.is_some_and(|d| now >= d) {
                self.out.int(count as i64);
                return;
            }
            let left = deadline.map(|d| Duration::from_millis(d - now)).unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = acks.changed() => {}
                _ = tokio::time::sleep(left) => {}
            }
        }
    }

    fn write_push(&mut self, d: Delivery) {
        self.sink.queued.fetch_sub(d.size(), Ordering::AcqRel);
        let out = &mut self.out;
        match &d.pattern {
            None => {
                out.push(3);
                out.bulk(b"message");
            }
            Some(p) => {
                out.push(4);
                out.bulk(b"pmessage");
                out.bulk(p);
            }
        }
        out.bulk(&d.channel);
        out.bulk(&d.payload);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        if self.client.durable_seq > 0 {
            // appendfsync always: the replies to writes go out once the log holds them.
            let seq = std::mem::take(&mut self.client.durable_seq);
            self.server.wait_durable(seq).await;
        }
        self.server.stats.net_output.fetch_add(self.out.buf.len() as u64, Ordering::Relaxed);
        let info = self.client.info.clone();
        // A client that does not read must not pin this task: a kill (for example by the Pub/Sub
        // output-buffer limit) interrupts the write.
        tokio::select! {
            r = self.stream.write_all(&self.out.buf) => r?,
            _ = info.kill.notified() => {
                return Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "client killed"));
            }
        }
        self.out.buf.clear();
        Ok(())
    }

    fn cleanup(&mut self) {
        let id = self.client.id;
        if self.client.subscriptions() > 0 {
            self.server.pubsub.lock().remove_client(id);
        }
        if !self.client.watched.is_empty() {
            self.server.store.lock().unwatch(&self.client.watched, &self.client.watch_dirty);
        }
        self.server.unregister_client(id);
    }
}
