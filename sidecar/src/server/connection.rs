//! One client connection: read requests, run them, write replies, until the client leaves.
//!
//! All complete requests in the read buffer run in batches before the replies are written back,
//! so a pipelining client gets one write per batch. A blocking command parks the connection
//! until its reply arrives, its timeout passes, or the client goes away; Pub/Sub messages for the
//! client arrive on its queue and are written as they come.
//!
//! Limits hold in every state of the connection (running commands, blocked, subscribed): the
//! bytes buffered for requests not yet run may not pass `client-query-buffer-limit`, and output
//! may not pass the client class's `client-output-buffer-limit`; a client over either is closed,
//! as Redis does. A read buffer that grew for a large request is given back once the client is
//! idle.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

// The TSC-based clock: a read costs a few nanoseconds (the system clock is much dearer on VMs),
// and the loop below looks at it on every read.
use quanta::Instant;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::client::{Blocked, Client, ClientInfo};
use super::pubsub::{Delivery, Sink};
use super::Server;
use crate::commands::TimeoutReply;
use crate::resp::{Protocol, Reply, RequestLimits, RequestParser};

/// Flush replies early once this much is buffered (a huge pipeline should not hold it all).
const FLUSH_AT: usize = 1 << 20;
/// Most pipelined commands run under one lock acquisition (keeps other clients' latency low).
const MAX_BATCH: usize = 64;
/// A client that sent nothing for this long gets its spare read-buffer space taken back
/// (Redis: idle for more than 2 seconds, checked by `clientsCron`).
const IDLE_RESIZE: Duration = Duration::from_secs(3);
/// How often a busy client's read buffer is checked against its recent peak.
const RESIZE_EVERY: Duration = Duration::from_secs(1);

/// Redis's reply to a client from another host while protected mode is on and no password is
/// set.
const DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

pub async fn run(server: Arc<Server>, mut stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let laddr = stream.local_addr().unwrap_or(addr);
    let id = server.next_client_id.fetch_add(1, Ordering::Relaxed);
    if server.protected_mode_refuses(addr) {
        server.metrics.rejected_connections.inc();
        server.stats.rejected.fetch_add(1, Ordering::Relaxed);
        let _ = stream.write_all(DENIED).await;
        return;
    }
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
        out: Reply::sharing(Protocol::Resp2),
        parser: RequestParser::new(),
        pending: VecDeque::new(),
        last_read: Instant::now(),
        last_resize: Instant::now(),
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
    /// The read buffer and the request being read.
    parser: RequestParser,
    /// Parsed requests not yet run (at most a batch; the rest of a pipeline behind a blocking
    /// command).
    pending: VecDeque<Vec<Bytes>>,
    last_read: Instant,
    last_resize: Instant,
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep(d.saturating_duration_since(Instant::now())).await,
        None => std::future::pending().await,
    }
}

impl Connection {
    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_bulk_len: self.server.limits.proto_max_bulk_len(),
            // Redis's authRequired: the password in force now, not at connection time.
            auth_required: !self.client.authenticated && self.server.settings.read().requirepass.is_some(),
        }
    }

    /// Parses requests into `pending`, up to a batch. Before authentication one at a time:
    /// whether the next request may be large depends on the AUTH before it, which must run
    /// first (Redis parses and runs one request at a time). True if the batch filled up (more
    /// may be buffered).
    fn parse_batch(&mut self) -> Result<bool, crate::resp::ProtocolError> {
        let limits = self.limits();
        loop {
            if self.pending.len() >= MAX_BATCH || (limits.auth_required && !self.pending.is_empty()) {
                return Ok(true);
            }
            match self.parser.next_request(&limits)? {
                Some(args) if args.is_empty() => continue,
                Some(args) => self.pending.push_back(args),
                None => return Ok(false),
            }
        }
    }

    /// True when the bytes held for requests not yet run pass `client-query-buffer-limit`
    /// (`queued`: what the parsed requests waiting behind a blocked command hold).
    fn query_buffer_exceeded(&self, queued: usize) -> bool {
        let held = self.parser.buffered() + queued;
        if held > self.server.limits.query_buffer() {
            warn!(
                client = self.client.id,
                addr = %self.client.info.addr,
                bytes = held,
                "closing a client that reached the max query buffer length (client-query-buffer-limit)"
            );
            return true;
        }
        false
    }

    /// True when the output waiting for the client passes its class's limit (the connection
    /// closes it without writing more).
    fn output_exceeded(&self) -> bool {
        let over = self.server.limits.output_exceeded(&self.client.info, self.out.len());
        if over {
            warn!(
                client = self.client.id,
                addr = %self.client.info.addr,
                bytes = self.out.len(),
                "closing a client over its output buffer limit (client-output-buffer-limit)"
            );
        }
        over
    }

    async fn serve(&mut self) -> std::io::Result<()> {
        let info = self.client.info.clone();
        loop {
            let mut protocol_error = None;
            let mut more = true;
            while more && protocol_error.is_none() && !self.client.close {
                more = match self.parse_batch() {
                    Ok(more) => more,
                    Err(e) => {
                        protocol_error = Some(e);
                        false
                    }
                };
                while !self.pending.is_empty() && !self.client.close {
                    let n = self.pending.len().min(MAX_BATCH);
                    let batch: Vec<Vec<Bytes>> = self.pending.drain(..n).collect();
                    let ran = self.server.execute_batch(&mut self.client, &mut self.out, &batch);
                    for args in batch.into_iter().skip(ran).rev() {
                        self.pending.push_front(args);
                    }
                    if self.output_exceeded() {
                        return Ok(());
                    }
                    if self.out.len() >= FLUSH_AT {
                        self.flush().await?;
                    }
                    if self.client.blocked.is_some() {
                        self.flush().await?;
                        if !self.wait_unblocked().await? {
                            return Ok(());
                        }
                        // What arrived meanwhile waits in the read buffer: parse it before the
                        // next read.
                        more = true;
                    }
                    if let Some((dot, n, deadline)) = self.client.wait_for.take() {
                        self.flush().await?;
                        self.wait_acks(dot, n, deadline).await;
                    }
                    if let Some(f) = self.client.forward.take() {
                        // What ran before it answers first.
                        self.flush().await?;
                        if !self.forward(f).await? {
                            return Ok(());
                        }
                        more = true;
                    }
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
            let idle_resize = (self.parser.wasteful() || self.out.buf.capacity() > 64 * 1024)
                .then(|| self.last_read + IDLE_RESIZE);
            tokio::select! {
                n = read_into(&mut self.stream, &mut self.parser) => {
                    let n = n?;
                    if n == 0 {
                        return Ok(());
                    }
                    self.after_read(n);
                    if self.query_buffer_exceeded(0) {
                        return Ok(());
                    }
                }
                Some(d) = self.pushes.recv() => self.write_push(d),
                _ = info.kill.notified() => return Ok(()),
                _ = sleep_until(idle_resize), if idle_resize.is_some() => {
                    self.parser.resize(true);
                    self.out.shrink();
                    self.last_read = Instant::now();
                }
            }
            if info.killed.load(Ordering::Acquire) {
                return Ok(());
            }
        }
    }

    fn after_read(&mut self, n: usize) {
        self.server.stats.net_input.fetch_add(n as u64, Ordering::Relaxed);
        self.parser.note_read();
        let now = Instant::now();
        self.last_read = now;
        if now.duration_since(self.last_resize) >= RESIZE_EVERY {
            self.parser.resize(false);
            self.last_resize = now;
        }
    }

    /// Waits for a blocked command's reply or timeout; false if the client went away.
    async fn wait_unblocked(&mut self) -> std::io::Result<bool> {
        let Blocked { waiter, mut reply, deadline, on_timeout } =
            self.client.blocked.take().expect("blocked");
        let info = self.client.info.clone();
        // What the requests parsed behind the blocking one hold counts against the query buffer
        // limit along with what arrives meanwhile.
        let queued: usize = self.pending.iter().flatten().map(|a| a.len()).sum();
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
                n = read_into(&mut self.stream, &mut self.parser) => {
                    // Requests behind the blocking one wait; a closed socket ends the wait, and
                    // so does a client that sends more than the query buffer limit meanwhile.
                    let n = n?;
                    if n == 0 {
                        self.server.store.lock().unblock(waiter);
                        return Ok(false);
                    }
                    self.after_read(n);
                    if self.query_buffer_exceeded(queued) {
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

    /// Runs a command on strong keys through the group's leader and appends its reply; false if
    /// the client went away meanwhile (what arrives from it waits in the read buffer, as behind
    /// a blocked command).
    async fn forward(&mut self, f: crate::strong::Forward) -> std::io::Result<bool> {
        let Some(strong) = self.server.strong.clone() else { return Ok(true) };
        let info = self.client.info.clone();
        let blocking = !f.block_keys.is_empty();
        if blocking {
            info.blocked.store(true, Ordering::Relaxed);
        }
        let queued: usize = self.pending.iter().flatten().map(|a| a.len()).sum();
        let run = strong.forwarder.run(f);
        tokio::pin!(run);
        let result = loop {
            tokio::select! {
                reply = &mut run => {
                    self.out.buf.extend_from_slice(&reply);
                    break Ok(true);
                }
                n = read_into(&mut self.stream, &mut self.parser) => {
                    let n = n?;
                    if n == 0 {
                        break Ok(false);
                    }
                    self.after_read(n);
                    if self.query_buffer_exceeded(queued) {
                        break Ok(false);
                    }
                }
                Some(d) = self.pushes.recv() => {
                    self.write_push(d);
                    self.flush().await?;
                }
                _ = info.kill.notified() => break Ok(false),
            }
        };
        info.blocked.store(false, Ordering::Relaxed);
        result
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
        let total = self.out.len();
        self.server.stats.net_output.fetch_add(total as u64, Ordering::Relaxed);
        let info = self.client.info.clone();
        info.out_pending.store(total, Ordering::Relaxed);
        // Large values go out from where they are stored, then the buffer.
        for piece in self.out.take_pieces() {
            write_or_killed(&mut self.stream, &piece, &info).await?;
        }
        write_or_killed(&mut self.stream, &self.out.buf, &info).await?;
        self.out.buf.clear();
        info.out_pending.store(0, Ordering::Relaxed);
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

/// Reads what the socket has into the parser's read target (cancel-safe, as `read_buf`).
async fn read_into(stream: &mut TcpStream, parser: &mut RequestParser) -> std::io::Result<usize> {
    let mut target = parser.read_target();
    stream.read_buf(&mut target).await
}

/// Writes all of `bytes`. A client that does not read must not pin the connection's task: a
/// kill (for example by the Pub/Sub output-buffer limit) interrupts the write.
async fn write_or_killed(stream: &mut TcpStream, bytes: &[u8], info: &ClientInfo) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    tokio::select! {
        r = stream.write_all(bytes) => r,
        _ = info.kill.notified() => {
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "client killed"))
        }
    }
}
