//! One client connection: read requests, run them, write replies, until the client leaves.
//!
//! All complete requests in the read buffer run before the replies are written back, so a
//! pipelining client gets one write per batch.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use super::client::{Client, ClientInfo};
use super::Server;
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
    let mut out = Reply::new(Protocol::Resp2);
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let limits = RequestLimits::default();
    let mut protocol_error = None;
    let result: std::io::Result<()> = async {
        loop {
            // Run every complete request in the buffer, in batches under one store lock.
            let mut batch: Vec<Vec<Bytes>> = Vec::new();
            loop {
                let parsed = parse_request(&mut inbuf, &limits);
                let done = !matches!(parsed, Ok(Some(_)));
                match parsed {
                    Ok(Some(args)) if args.is_empty() => continue,
                    Ok(Some(args)) => batch.push(args),
                    Ok(None) => {}
                    Err(e) => {
                        debug!(client = id, error = %e, "protocol error");
                        protocol_error = Some(e);
                    }
                }
                if batch.len() >= MAX_BATCH || (done && !batch.is_empty()) {
                    server.execute_batch(&mut client, &mut out, &batch);
                    batch.clear();
                    if client.close {
                        break;
                    }
                    if out.len() >= FLUSH_AT {
                        write_out(&server, &mut stream, &mut out).await?;
                    }
                }
                if done {
                    break;
                }
            }
            if let Some(e) = protocol_error.take() {
                if !client.close {
                    out.error(&format!("ERR {e}"));
                    client.close = true;
                }
            }
            if !out.is_empty() {
                write_out(&server, &mut stream, &mut out).await?;
            }
            if client.close {
                return Ok(());
            }
            if inbuf.len() > QUERY_BUFFER_LIMIT {
                debug!(client = id, "query buffer limit reached, closing");
                return Ok(());
            }
            if inbuf.capacity() - inbuf.len() < 4096 {
                inbuf.reserve(16 * 1024);
            }
            tokio::select! {
                n = stream.read_buf(&mut inbuf) => {
                    let n = n?;
                    if n == 0 {
                        return Ok(());
                    }
                    server.stats.net_input.fetch_add(n as u64, Ordering::Relaxed);
                }
                _ = info.kill.notified() => return Ok(()),
            }
            if info.killed.load(Ordering::Acquire) {
                return Ok(());
            }
        }
    }
    .await;
    if let Err(e) = result {
        debug!(client = id, error = %e, "connection closed with an error");
    }
    // A transaction's watches die with its connection.
    if !client.watched.is_empty() {
        server.store.lock().unwatch(&client.watched, &client.watch_dirty);
    }
    server.unregister_client(id);
}

async fn write_out(server: &Server, stream: &mut TcpStream, out: &mut Reply) -> std::io::Result<()> {
    server.stats.net_output.fetch_add(out.buf.len() as u64, Ordering::Relaxed);
    stream.write_all(&out.buf).await?;
    out.buf.clear();
    Ok(())
}
