//! The admin HTTP port: `/metrics` (Prometheus text), `/healthz`, `/readyz`, `/status` (JSON).
//!
//! It listens on all interfaces (the kubelet probes it, Prometheus scrapes it), so it is built to
//! be reachable by anyone in the cluster: only health and metrics are open, `/status` needs
//! loopback or the admin token, connections are capped and time out, and running out of file
//! descriptors slows the accept loop down instead of spinning it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::crdt::replica::DATABASES;
use crate::net::AcceptBackoff;
use crate::server::Server;

pub async fn bind(config: &Config) -> std::io::Result<TcpListener> {
    let host = &config.admin_bind;
    let addr = if host.contains(':') {
        format!("[{host}]:{}", config.admin_port)
    } else {
        format!("{host}:{}", config.admin_port)
    };
    TcpListener::bind(&addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr} (admin): {e}")))
}

/// Requests must send their headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection (kept alive or not) is closed after this long: probes and scrapes open a new one.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

pub async fn serve(server: Arc<Server>, listener: TcpListener) {
    let mut shutdown = server.shutdown.subscribe();
    let slots = Arc::new(Semaphore::new(server.config.admin_max_connections.max(1)));
    let mut backoff = AcceptBackoff::new("admin");
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => { backoff.reset(); x }
                Err(e) => { backoff.pause(&e).await; continue; }
            },
            _ = shutdown.changed() => return,
        };
        // Past the cap, a connection is closed at once rather than queued: probes retry.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            server.metrics.admin_connections_refused.inc();
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(handle(&server, remote, req)) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            drop(slot);
        });
    }
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .expect("valid response")
}

/// `/status` shows the replica's id, peers, version vector and data directory: it answers
/// loopback clients, and others that present `--admin-token` as a bearer token.
fn may_see_status(server: &Server, remote: SocketAddr, req: &Request<Incoming>) -> bool {
    if remote.ip().is_loopback() {
        return true;
    }
    let Some(token) = server.config.admin_token.as_deref() else { return false };
    let presented = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    crate::net::secret_eq(presented.as_bytes(), token.as_bytes())
}

fn handle(server: &Server, remote: SocketAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n");
    }
    match req.uri().path() {
        "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => {
            if server.ready.load(Ordering::Acquire) {
                respond(StatusCode::OK, "text/plain", "ready\n")
            } else {
                respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "initial sync in progress\n")
            }
        }
        "/metrics" => {
            refresh_gauges(server);
            respond(StatusCode::OK, "text/plain; version=0.0.4", metrics_text(server))
        }
        "/status" if may_see_status(server, remote, &req) => {
            respond(StatusCode::OK, "application/json", status_json(server).to_string())
        }
        "/status" => respond(
            StatusCode::UNAUTHORIZED,
            "text/plain",
            "/status needs the admin token (Authorization: Bearer TOKEN, see --admin-token) from other hosts\n",
        ),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// The registry's metrics, then the strong keys' group gauges (read from openraft at scrape time).
fn metrics_text(server: &Server) -> String {
    let mut text = server.metrics.render();
    if let Some(strong) = &server.strong {
        for (name, help, value) in strong.gauges() {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"));
        }
    }
    text
}

fn refresh_gauges(server: &Server) {
    let store = server.store.lock();
    for db in 0..DATABASES {
        server.metrics.keys.with_label_values(&[&db.to_string()]).set(store.replica.db(db).len() as i64);
    }
    server.metrics.expired_keys.set(store.stats.expired_keys as i64);
    let tombstones: usize =
        (0..DATABASES).map(|db| store.replica.db(db).slots() - store.replica.db(db).len()).sum();
    server.metrics.tombstones.set(tombstones as i64);
    server.metrics.log_entries.set(store.log.len() as i64);
    if let Some(mesh) = &server.mesh {
        let m = &server.metrics;
        let peers = mesh.status(|ack| store.log.lag(ack), server.now_ms());
        m.mesh_peers_connected.set(peers.iter().filter(|p| p.state == "connected").count() as i64);
        m.mesh_peer_ops_lag.reset();
        m.mesh_peer_time_lag.reset();
        for p in peers.iter().filter(|p| p.state != "retired" && p.state != "quarantined") {
            m.mesh_peer_ops_lag.with_label_values(&[&p.id]).set(p.ops_lag as i64);
            m.mesh_peer_time_lag.with_label_values(&[&p.id]).set(p.time_lag_ms as f64 / 1000.0);
        }
        m.mesh_bytes_sent.set(mesh.traffic.sent.load(Ordering::Relaxed) as i64);
        m.mesh_bytes_received.set(mesh.traffic.received.load(Ordering::Relaxed) as i64);
        m.mesh_updates_sent.set(mesh.updates_sent.load(Ordering::Relaxed) as i64);
        m.mesh_snapshots_sent.set(mesh.snapshots_sent.load(Ordering::Relaxed) as i64);
        m.mesh_quarantined_peers.set(mesh.quarantined_count() as i64);
    }
    if let (Some(storage), Some(st)) = (store.storage.as_ref(), &server.storage_status) {
        let m = &server.metrics;
        m.aof_size.set((st.log_size.load(Ordering::Relaxed) + st.base_size.load(Ordering::Relaxed)) as i64);
        m.aof_records_written.set(storage.appended() as i64);
        m.aof_records_fsynced.set(storage.durability.synced() as i64);
        m.aof_rewrites.set(st.rewrites.load(Ordering::Relaxed) as i64);
        m.aof_write_ok.set(!server.log_failing() as i64);
        m.aof_last_rewrite_ok.set(st.last_rewrite_ok.load(Ordering::Relaxed) as i64);
    }
    drop(store);
    server.metrics.memory_used.set(crate::server::allocated_bytes() as i64);
    server.metrics.maxmemory.set(server.settings.read().maxmemory as i64);
}

pub fn status_json(server: &Server) -> serde_json::Value {
    let store = server.store.lock();
    let keys: usize = (0..DATABASES).map(|db| store.replica.db(db).len()).sum();
    let peers =
        server.mesh.as_ref().map(|m| m.status(|ack| store.log.lag(ack), server.now_ms())).unwrap_or_default();
    let vv: serde_json::Map<String, serde_json::Value> = store
        .replica
        .version_vector()
        .iter()
        .map(|(r, t)| (format!("{r:016x}"), serde_json::json!(t.0)))
        .collect();
    serde_json::json!({
        "replica_id": format!("{:016x}", server.replica_id),
        "database": server.config.database,
        "version": env!("CARGO_PKG_VERSION"),
        "ready": server.ready.load(Ordering::Acquire),
        "uptime_seconds": server.started.elapsed().as_secs(),
        "keys": keys,
        "connected_clients": server.client_count(),
        "peers": peers,
        "mesh": server.mesh.is_some(),
        "version_vector": vv,
        "persistence": server.storage_status.as_ref().map(|st| serde_json::json!({
            "data_dir": server.config.data_dir,
            "appendfsync": server.config.appendfsync.as_str(),
            "last_save_unix": st.last_save_unix.load(Ordering::Relaxed),
            "rewrite_in_progress": st.rewrite_in_progress.load(Ordering::Relaxed),
            "write_ok": !server.log_failing(),
        })),
    })
}
