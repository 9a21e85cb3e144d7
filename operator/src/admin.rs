//! The admin HTTP server: `/metrics`, `/healthz` (the process runs) and `/readyz` (the webhook
//! has a certificate and the caches are synced, so this instance can answer admission reviews).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{info, warn};

/// What `/readyz` reports.
#[derive(Default)]
pub struct Readiness {
    pub webhook: AtomicBool,
    pub caches: AtomicBool,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.webhook.load(Ordering::Relaxed) && self.caches.load(Ordering::Relaxed)
    }
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

async fn handle(req: Request<Incoming>, ready: Arc<Readiness>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match req.uri().path() {
        "/metrics" => respond(StatusCode::OK, "text/plain; version=0.0.4", crate::metrics::render()),
        "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" if ready.ready() => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready\n".into()),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    })
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, ready: Arc<Readiness>) {
    info!(addr = ?listener.local_addr().ok(), "admin server listening");
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let ready = ready.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, ready.clone()));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                warn!(error = %e, "admin connection failed");
            }
        });
    }
}
