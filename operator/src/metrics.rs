//! Prometheus metrics of the operator, served on the admin port.
//!
//! The chart's alert rules and Grafana dashboard (charts/syncmesh) read these names; a test
//! checks every name they use against a live `/metrics`. Series with a fixed set of label
//! values are created at start with 0, so that `rate()` and alerts see them before the first
//! event. Per-database series (label `namespace`, `database`) exist on the leader only, from
//! its first reconcile of the database until the database is deleted.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

pub struct Metrics {
    pub registry: Registry,
    /// Reconciles by result (`ok`, `error`).
    pub reconciles: IntCounterVec,
    /// Reconcile errors by kind.
    pub reconcile_errors: IntCounterVec,
    /// Reconcile durations.
    pub reconcile_seconds: HistogramVec,
    /// Admission reviews by outcome (`injected`, `skipped`, `rejected`, `error`).
    pub admissions: IntCounterVec,
    /// Time to answer an admission review.
    pub admission_seconds: HistogramVec,
    /// TLS connections the webhook accepted (the API server keeps them open between calls).
    pub webhook_connections: IntCounter,
    /// TLS handshakes of the webhook that failed.
    pub webhook_handshake_errors: IntCounter,
    /// 1 while this instance holds the leader Lease.
    pub leader: IntGauge,
    /// Members of a database by state (`injected`, `ready`).
    pub database_members: IntGaugeVec,
    /// Pods that carry a database's opt-in label but no replica.
    pub database_uninjected_pods: IntGaugeVec,
    /// 1 if a database's condition is True, else 0, by condition type.
    pub database_condition: IntGaugeVec,
    /// Member pods of a database by the replica image they run.
    pub database_replica_pods: IntGaugeVec,
    /// When each certificate the operator manages expires (Unix seconds).
    pub certificate_expiry: GaugeVec,
    /// The image label values exported per database, to remove those no pod runs any more.
    images: Mutex<HashMap<DatabaseKey, Vec<ImageLabels>>>,
}

/// (namespace, database)
type DatabaseKey = (String, String);
/// (image, current) label values of `database_replica_pods`.
type ImageLabels = (String, &'static str);

/// What the reconciler exports about one database.
pub struct DatabaseFigures<'a> {
    pub injected: i64,
    pub ready: i64,
    pub uninjected: i64,
    /// (condition type, status is True)
    pub conditions: &'a [(&'a str, bool)],
    /// (image, whether it is the one injected now, pods)
    pub images: &'a [(String, bool, i64)],
}

/// The condition types a SyncedDatabase reports (`database_condition`'s label values).
pub const CONDITION_TYPES: [&str; 4] = ["Ready", "MeshFormed", "Degraded", "ReplicasUpToDate"];
/// The certificate label values: `ca` (a CA's own certificate), `tls` (a serving/member leaf).
pub const CERTIFICATE_KINDS: [&str; 2] = ["ca", "tls"];

/// The label values of [`Metrics::admissions`].
pub const ADMISSION_OUTCOMES: [&str; 4] = ["injected", "skipped", "rejected", "error"];
/// The label values of [`Metrics::reconciles`].
pub const RECONCILE_RESULTS: [&str; 2] = ["ok", "error"];
/// The label values of [`Metrics::reconcile_errors`] (`controller::Error::kind`).
pub const RECONCILE_ERROR_KINDS: [&str; 5] = ["conflict", "forbidden", "kube", "pki", "invalid"];

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new_custom(Some("syncmesh_operator".into()), None).expect("valid prefix");
    let reconciles = IntCounterVec::new(Opts::new("reconciles_total", "Reconciles by result"), &["result"])
        .expect("metric");
    let reconcile_errors =
        IntCounterVec::new(Opts::new("reconcile_errors_total", "Reconcile errors by kind"), &["kind"])
            .expect("metric");
    let reconcile_seconds = HistogramVec::new(
        HistogramOpts::new("reconcile_duration_seconds", "Duration of a reconcile")
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        &[],
    )
    .expect("metric");
    let admissions =
        IntCounterVec::new(Opts::new("admissions_total", "Admission reviews by outcome"), &["outcome"])
            .expect("metric");
    let admission_seconds = HistogramVec::new(
        HistogramOpts::new("admission_duration_seconds", "Time to answer an admission review")
            .buckets(vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0]),
        &[],
    )
    .expect("metric");
    let webhook_connections =
        IntCounter::new("webhook_connections_total", "TLS connections the webhook accepted").expect("metric");
    let webhook_handshake_errors =
        IntCounter::new("webhook_tls_handshake_errors_total", "TLS handshakes of the webhook that failed")
            .expect("metric");
    let leader = IntGauge::new("leader", "1 while this instance holds the leader Lease").expect("metric");
    let database_members = IntGaugeVec::new(
        Opts::new("database_members", "Members of a SyncedDatabase by state (injected, ready)"),
        &["namespace", "database", "state"],
    )
    .expect("metric");
    let database_uninjected_pods = IntGaugeVec::new(
        Opts::new("database_uninjected_pods", "Pods that carry a SyncedDatabase's label but no replica"),
        &["namespace", "database"],
    )
    .expect("metric");
    let database_condition = IntGaugeVec::new(
        Opts::new("database_condition", "1 if the SyncedDatabase's condition is True, else 0"),
        &["namespace", "database", "condition"],
    )
    .expect("metric");
    let database_replica_pods = IntGaugeVec::new(
        Opts::new(
            "database_replica_pods",
            "Member pods of a SyncedDatabase by the replica image they run (current: the image the operator injects now)",
        ),
        &["namespace", "database", "image", "current"],
    )
    .expect("metric");
    let certificate_expiry = GaugeVec::new(
        Opts::new(
            "certificate_expiry_timestamp_seconds",
            "When a certificate the operator manages expires (Unix time)",
        ),
        &["namespace", "secret", "certificate"],
    )
    .expect("metric");
    for c in [
        Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(reconcile_errors.clone()),
        Box::new(reconcile_seconds.clone()),
        Box::new(admissions.clone()),
        Box::new(admission_seconds.clone()),
        Box::new(webhook_connections.clone()),
        Box::new(webhook_handshake_errors.clone()),
        Box::new(leader.clone()),
        Box::new(database_members.clone()),
        Box::new(database_uninjected_pods.clone()),
        Box::new(database_condition.clone()),
        Box::new(database_replica_pods.clone()),
        Box::new(certificate_expiry.clone()),
    ] {
        registry.register(c).expect("unique metric");
    }
    for outcome in ADMISSION_OUTCOMES {
        admissions.with_label_values(&[outcome]);
    }
    for result in RECONCILE_RESULTS {
        reconciles.with_label_values(&[result]);
    }
    for kind in RECONCILE_ERROR_KINDS {
        reconcile_errors.with_label_values(&[kind]);
    }
    reconcile_seconds.with_label_values(&[] as &[&str]);
    admission_seconds.with_label_values(&[] as &[&str]);
    Metrics {
        registry,
        reconciles,
        reconcile_errors,
        reconcile_seconds,
        admissions,
        admission_seconds,
        webhook_connections,
        webhook_handshake_errors,
        leader,
        database_members,
        database_uninjected_pods,
        database_condition,
        database_replica_pods,
        certificate_expiry,
        images: Mutex::new(HashMap::new()),
    }
});

impl Metrics {
    /// Sets every per-database series of `namespace/database`.
    pub fn record_database(&self, namespace: &str, database: &str, figures: &DatabaseFigures<'_>) {
        self.database_members.with_label_values(&[namespace, database, "injected"]).set(figures.injected);
        self.database_members.with_label_values(&[namespace, database, "ready"]).set(figures.ready);
        self.database_uninjected_pods.with_label_values(&[namespace, database]).set(figures.uninjected);
        for (type_, ok) in figures.conditions {
            self.database_condition.with_label_values(&[namespace, database, type_]).set(*ok as i64);
        }
        let key = (namespace.to_string(), database.to_string());
        let now: Vec<ImageLabels> = figures
            .images
            .iter()
            .map(|(image, current, _)| (image.clone(), if *current { "true" } else { "false" }))
            .collect();
        let mut exported = self.images.lock().expect("lock");
        for (image, current) in exported.get(&key).into_iter().flatten() {
            if !now.contains(&(image.clone(), current)) {
                let _ =
                    self.database_replica_pods.remove_label_values(&[namespace, database, image, current]);
            }
        }
        for ((image, current), (_, _, pods)) in now.iter().zip(figures.images) {
            self.database_replica_pods.with_label_values(&[namespace, database, image, current]).set(*pods);
        }
        exported.insert(key, now);
    }

    /// Forgets every per-database series of `namespace/database` (it was deleted).
    pub fn forget_database(&self, namespace: &str, database: &str) {
        for state in ["injected", "ready"] {
            let _ = self.database_members.remove_label_values(&[namespace, database, state]);
        }
        let _ = self.database_uninjected_pods.remove_label_values(&[namespace, database]);
        for type_ in CONDITION_TYPES {
            let _ = self.database_condition.remove_label_values(&[namespace, database, type_]);
        }
        let key = (namespace.to_string(), database.to_string());
        for (image, current) in self.images.lock().expect("lock").remove(&key).into_iter().flatten() {
            let _ = self.database_replica_pods.remove_label_values(&[namespace, database, &image, current]);
        }
    }

    /// Records when a certificate expires, from its PEM (an unparsable one is left out).
    pub fn record_certificate(&self, namespace: &str, secret: &str, kind: &str, cert_pem: &str) {
        match crate::pki::validity(cert_pem) {
            Ok((_, not_after)) => {
                self.certificate_expiry.with_label_values(&[namespace, secret, kind]).set(not_after as f64)
            }
            Err(_) => {
                let _ = self.certificate_expiry.remove_label_values(&[namespace, secret, kind]);
            }
        }
    }

    /// Forgets the certificates of a Secret (deleted, or no longer managed).
    pub fn forget_certificates(&self, namespace: &str, secret: &str) {
        for kind in CERTIFICATE_KINDS {
            let _ = self.certificate_expiry.remove_label_values(&[namespace, secret, kind]);
        }
    }
}

/// The registry in Prometheus's text format.
pub fn render() -> String {
    let mut out = String::new();
    prometheus::TextEncoder::new().encode_utf8(&METRICS.registry.gather(), &mut out).expect("text encoding");
    out
}
