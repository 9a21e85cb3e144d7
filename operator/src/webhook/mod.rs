//! The mutating admission webhook: injects the replica into pods labelled
//! `syncmesh.io/database` (see [`patch`] for what it adds).
//!
//! Every operator instance serves it (not only the leader). SyncedDatabases are looked up in a
//! watch-fed cache, so an admission review is answered without a round trip to the API
//! server; a miss (a database created a moment ago) falls back to one GET before the pod is
//! refused.

pub mod certs;
pub mod patch;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::crd::{SyncedDatabase, DATABASE_LABEL};
use crate::metrics::METRICS;
use patch::{injection_patch, Decision, Defaults};

/// The path the MutatingWebhookConfiguration calls.
pub const MUTATE_PATH: &str = "/mutate-pods";
/// Admission reviews larger than this are refused (a Pod is far smaller).
const MAX_BODY: usize = 4 * 1024 * 1024;

pub struct Webhook {
    pub client: Client,
    pub databases: Store<SyncedDatabase>,
    pub defaults: Defaults,
}

impl Webhook {
    /// Finds a SyncedDatabase: the cache first, then the API server.
    async fn database(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<SyncedDatabase>>, kube::Error> {
        if let Some(db) = self.databases.get(&ObjectRef::new(name).within(namespace)) {
            return Ok(Some(db));
        }
        let api: Api<SyncedDatabase> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.get_opt(name).await?.map(Arc::new))
    }

    /// Answers one admission request.
    pub async fn review(&self, req: &AdmissionRequest<Pod>) -> (AdmissionResponse, &'static str) {
        let resp = AdmissionResponse::from(req);
        if req.operation != Operation::Create {
            return (resp, "skipped");
        }
        let Some(pod) = req.object.as_ref() else { return (resp, "skipped") };
        let Some(db_name) = pod.metadata.labels.as_ref().and_then(|l| l.get(DATABASE_LABEL)) else {
            return (resp, "skipped");
        };
        let namespace = req.namespace.clone().or_else(|| pod.metadata.namespace.clone()).unwrap_or_default();
        let db = match self.database(&namespace, db_name).await {
            Ok(Some(db)) => db,
            Ok(None) => {
                let msg = format!(
                    "SyncedDatabase \"{db_name}\" does not exist in namespace \"{namespace}\": create it first, \
                     or fix the pod's label {DATABASE_LABEL}"
                );
                return (resp.deny(msg), "rejected");
            }
            Err(e) => {
                warn!(%namespace, database = %db_name, error = %e, "cannot look up the SyncedDatabase");
                return (resp.deny(format!("cannot look up SyncedDatabase \"{db_name}\": {e}")), "error");
            }
        };
        if db.is_deleting() {
            let msg = format!("SyncedDatabase \"{db_name}\" in namespace \"{namespace}\" is being deleted; new pods cannot join it");
            return (resp.deny(msg), "rejected");
        }
        match injection_patch(pod, &db, &self.defaults) {
            Decision::Skip(reason) => {
                debug!(%namespace, reason, "pod admitted unchanged");
                (resp, "skipped")
            }
            Decision::Patch(ops) => {
                let patch: json_patch::Patch =
                    serde_json::from_value(serde_json::Value::Array(ops)).expect("valid patch");
                match resp.clone().with_patch(patch) {
                    Ok(resp) => (resp, "injected"),
                    Err(e) => (resp.deny(format!("cannot serialise the patch: {e}")), "error"),
                }
            }
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let started = Instant::now();
        if req.method() != Method::POST || req.uri().path() != MUTATE_PATH {
            return Ok(text(StatusCode::NOT_FOUND, "not found\n"));
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return Ok(text(StatusCode::BAD_REQUEST, &format!("cannot read the request: {e}\n"))),
        };
        let review: AdmissionReview<Pod> = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return Ok(text(StatusCode::BAD_REQUEST, &format!("not an AdmissionReview: {e}\n"))),
        };
        let request: AdmissionRequest<Pod> = match review.try_into() {
            Ok(r) => r,
            Err(e) => {
                return Ok(text(
                    StatusCode::BAD_REQUEST,
                    &format!("AdmissionReview without a request: {e}\n"),
                ))
            }
        };
        let (resp, outcome) = self.review(&request).await;
        METRICS.admissions.with_label_values(&[outcome]).inc();
        METRICS.admission_seconds.with_label_values(&[] as &[&str]).observe(started.elapsed().as_secs_f64());
        if outcome == "rejected" {
            info!(namespace = ?request.namespace, reason = %resp.result.message, "pod refused");
        }
        let body = serde_json::to_vec(&resp.into_review()).expect("review serialises");
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("valid response"))
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

/// Serves HTTPS with the certificate the resolver currently holds, until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, webhook: Arc<Webhook>) {
    info!(addr = ?listener.local_addr().ok(), path = MUTATE_PATH, "webhook listening");
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let webhook = webhook.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(s) => s,
                Err(e) => {
                    METRICS.webhook_handshake_errors.inc();
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            METRICS.webhook_connections.inc();
            let service = hyper::service::service_fn(move |req| webhook.clone().handle(req));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, "webhook connection ended with an error");
            }
        });
    }
}
