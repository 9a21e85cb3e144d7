//! Prometheus metrics of the operator, served on the admin port.

use std::sync::LazyLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

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
    /// 1 while this instance holds the leader Lease.
    pub leader: IntGauge,
}

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
    let leader = IntGauge::new("leader", "1 while this instance holds the leader Lease").expect("metric");
    for c in [
        Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(reconcile_errors.clone()),
        Box::new(reconcile_seconds.clone()),
        Box::new(admissions.clone()),
        Box::new(admission_seconds.clone()),
        Box::new(leader.clone()),
    ] {
        registry.register(c).expect("unique metric");
    }
    Metrics {
        registry,
        reconciles,
        reconcile_errors,
        reconcile_seconds,
        admissions,
        admission_seconds,
        leader,
    }
});

/// The registry in Prometheus's text format.
pub fn render() -> String {
    let mut out = String::new();
    prometheus::TextEncoder::new().encode_utf8(&METRICS.registry.gather(), &mut out).expect("text encoding");
    out
}
