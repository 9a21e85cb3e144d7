//! syncmesh-demo: a microservice whose shared state lives in its pod's SyncMesh replica.
//!
//! It reads `REDIS_URL` (set by the injection webhook; `DEMO_REPLICA_ADMIN` is the replica's
//! admin address, default `127.0.0.1:9379`) and serves a small HTTP API on
//! `DEMO_ADDR` (default `0.0.0.0:8080`) that the end-to-end test and the README's demo use:
//!
//! | request | Redis |
//! | --- | --- |
//! | `GET /kv/KEY`, `PUT /kv/KEY` (body = value) | GET, SET |
//! | `POST /incr/KEY?by=N` | INCRBY |
//! | `POST /publish/CHANNEL` (body = message) | PUBLISH (the answer explains its number) |
//! | `GET /subscribe/CHANNEL?timeout=S` | SUBSCRIBE, first message |
//! | `POST /push/LIST` (body = element) | LPUSH |
//! | `GET /pop/LIST?timeout=S` | BRPOP |
//! | `GET /wait?replicas=N&timeout=MS` | WAIT |
//! | `GET /startup` | what the service saw when it started |
//! | `GET /healthz` | PING |
//!
//! At start it records whether its replica was already synced (`/readyz` of the replica's admin
//! port) and how many keys it held: the native sidecar must be ready before the app starts.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use redis::AsyncCommands;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct App {
    client: redis::Client,
    conn: redis::aio::MultiplexedConnection,
    startup: String,
}

type Reply = Result<Response<Full<Bytes>>, Infallible>;

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    Ok(Response::builder().status(status).body(Full::new(body.into())).expect("valid response"))
}

fn query(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Asks the replica's admin port whether it is ready (its initial sync is done).
async fn replica_ready() -> bool {
    let admin = std::env::var("DEMO_REPLICA_ADMIN").unwrap_or_else(|_| "127.0.0.1:9379".into());
    let Ok(mut s) = tokio::net::TcpStream::connect(admin).await else { return false };
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    buf.starts_with(b"HTTP/1.1 200")
}

impl App {
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Reply {
        let path: Vec<String> =
            req.uri().path().trim_start_matches('/').split('/').map(String::from).collect();
        let method = req.method().clone();
        let timeout = query(&req, "timeout").and_then(|t| t.parse::<f64>().ok()).unwrap_or(10.0);
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<(StatusCode, String)> = match (&method, path[0].as_str(), path.get(1))
        {
            (&Method::GET, "healthz", _) => {
                redis::cmd("PING").query_async::<String>(&mut conn).await.map(|p| (StatusCode::OK, p))
            }
            (&Method::GET, "startup", _) => Ok((StatusCode::OK, self.startup.clone())),
            (&Method::GET, "kv", Some(key)) => conn.get::<_, Option<String>>(key).await.map(|v| match v {
                Some(v) => (StatusCode::OK, v),
                None => (StatusCode::NOT_FOUND, String::new()),
            }),
            (&Method::PUT, "kv", Some(key)) => {
                let value = body(req).await;
                conn.set::<_, _, ()>(key, value).await.map(|_| (StatusCode::OK, "OK".into()))
            }
            (&Method::POST, "incr", Some(key)) => {
                let by = query(&req, "by").and_then(|b| b.parse::<i64>().ok()).unwrap_or(1);
                conn.incr::<_, _, i64>(key, by).await.map(|v| (StatusCode::OK, v.to_string()))
            }
            (&Method::POST, "publish", Some(channel)) => {
                let message = body(req).await;
                // PUBLISH counts the subscribers of this pod's replica only (as Redis counts its
                // own); say so, or a 0 reads as a failure while other pods receive the message.
                conn.publish::<_, _, i64>(channel, message).await.map(|n| {
                    let text = format!(
                        "published; {n} subscriber(s) on this pod's replica (PUBLISH counts only those; \
                         subscribers in other pods receive the message through the mesh, uncounted)\n"
                    );
                    (StatusCode::OK, text)
                })
            }
            (&Method::GET, "subscribe", Some(channel)) => self.first_message(channel, timeout).await,
            (&Method::POST, "push", Some(list)) => {
                let element = body(req).await;
                conn.lpush::<_, _, i64>(list, element).await.map(|n| (StatusCode::OK, n.to_string()))
            }
            (&Method::GET, "pop", Some(list)) => {
                // A connection of its own: a blocking pop must not hold up other requests.
                match self.client.get_multiplexed_async_connection().await {
                    Ok(mut blocking) => {
                        blocking.brpop::<_, Option<(String, String)>>(list, timeout).await.map(|v| match v {
                            Some((_, element)) => (StatusCode::OK, element),
                            None => (StatusCode::NO_CONTENT, String::new()),
                        })
                    }
                    Err(e) => Err(e),
                }
            }
            (&Method::GET, "wait", _) => {
                let replicas = query(&req, "replicas").unwrap_or_else(|| "1".into());
                let ms = query(&req, "timeout").unwrap_or_else(|| "1000".into());
                redis::cmd("WAIT")
                    .arg(replicas)
                    .arg(ms)
                    .query_async::<i64>(&mut conn)
                    .await
                    .map(|n| (StatusCode::OK, n.to_string()))
            }
            _ => Ok((StatusCode::NOT_FOUND, "unknown request\n".into())),
        };
        match result {
            Ok((status, text)) => reply(status, text),
            Err(e) => reply(StatusCode::BAD_GATEWAY, format!("replica error: {e}\n")),
        }
    }

    /// Subscribes and returns the first message published on the channel (204 after the timeout).
    async fn first_message(&self, channel: &str, timeout: f64) -> redis::RedisResult<(StatusCode, String)> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        let mut messages = pubsub.on_message();
        match tokio::time::timeout(Duration::from_secs_f64(timeout), messages.next()).await {
            Ok(Some(msg)) => Ok((StatusCode::OK, msg.get_payload::<String>()?)),
            _ => Ok((StatusCode::NO_CONTENT, String::new())),
        }
    }
}

async fn body(req: Request<Incoming>) -> Vec<u8> {
    req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| "0.0.0.0:8080".into());
    let ready_at_start = replica_ready().await;
    let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| {
        eprintln!("syncmesh-demo: invalid REDIS_URL {url}: {e}");
        std::process::exit(2);
    });
    let mut conn = loop {
        match client.get_multiplexed_async_connection().await {
            Ok(c) => break c,
            Err(e) => {
                eprintln!("syncmesh-demo: cannot reach the replica at {url}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let keys: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap_or(-1);
    let startup = format!("replica_ready_at_start={ready_at_start} keys_at_start={keys}");
    eprintln!("syncmesh-demo: {startup}; serving on {addr}");
    let app = Arc::new(App { client, conn, startup });
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap_or_else(|e| {
        eprintln!("syncmesh-demo: cannot listen on {addr}: {e}");
        std::process::exit(2);
    });
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let app = app.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| app.clone().handle(req));
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
            _ = term.recv() => break,
        }
    }
}
