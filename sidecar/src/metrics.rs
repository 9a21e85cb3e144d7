//! Prometheus metrics. Per-command handles are resolved once at startup so that the hot path
//! only touches atomics.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

pub struct Metrics {
    pub registry: Registry,
    /// Indexed like `commands::registry().commands`.
    pub per_command: Vec<(IntCounter, Histogram)>,
    pub command_errors: IntCounter,
    pub connections: IntGauge,
    pub connections_total: IntCounter,
    pub rejected_connections: IntCounter,
    pub keys: IntGaugeVec,
    pub memory_used: IntGauge,
    pub maxmemory: IntGauge,
    pub oom_rejections: IntCounter,
    pub expired_keys: IntGauge,
    pub mesh_peers_connected: IntGauge,
    pub mesh_peer_ops_lag: IntGaugeVec,
    pub mesh_peer_time_lag: prometheus::GaugeVec,
    pub mesh_bytes_sent: IntGauge,
    pub mesh_bytes_received: IntGauge,
    pub mesh_updates_sent: IntGauge,
    pub mesh_snapshots_sent: IntGauge,
    pub mesh_quarantined_peers: IntGauge,
    pub admin_connections_refused: IntCounter,
    pub tombstones: IntGauge,
    pub log_entries: IntGauge,
    pub aof_size: IntGauge,
    pub aof_records_written: IntGauge,
    pub aof_records_fsynced: IntGauge,
    pub aof_rewrites: IntGauge,
    pub aof_write_ok: IntGauge,
    pub aof_last_rewrite_ok: IntGauge,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 1.0,
];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let calls = IntCounterVec::new(
            Opts::new("syncmesh_commands_total", "Commands processed, by command name"),
            &["cmd"],
        )
        .expect("metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "syncmesh_command_duration_seconds",
                "Time to execute a command, by command name",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["cmd"],
        )
        .expect("metric");
        let per_command = crate::commands::registry()
            .commands
            .iter()
            .map(|c| (calls.with_label_values(&[c.name]), latency.with_label_values(&[c.name])))
            .collect();
        let command_errors =
            IntCounter::new("syncmesh_command_errors_total", "Commands that replied with an error")
                .expect("metric");
        let connections =
            IntGauge::new("syncmesh_connected_clients", "Client connections open now").expect("metric");
        let connections_total =
            IntCounter::new("syncmesh_connections_total", "Client connections accepted since start")
                .expect("metric");
        let rejected_connections = IntCounter::new(
            "syncmesh_rejected_connections_total",
            "Client connections refused because maxclients was reached",
        )
        .expect("metric");
        let keys = IntGaugeVec::new(Opts::new("syncmesh_keys", "Keys, by logical database"), &["db"])
            .expect("metric");
        let memory_used =
            IntGauge::new("syncmesh_memory_used_bytes", "Bytes allocated by the replica (jemalloc)")
                .expect("metric");
        let maxmemory =
            IntGauge::new("syncmesh_maxmemory_bytes", "The --maxmemory limit (0: none)").expect("metric");
        let oom_rejections = IntCounter::new(
            "syncmesh_oom_rejections_total",
            "Writes refused with -OOM because memory was past --maxmemory",
        )
        .expect("metric");
        let expired_keys =
            IntGauge::new("syncmesh_expired_keys", "Keys expired since start").expect("metric");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("metric");
        let mesh_peers_connected = gauge("syncmesh_mesh_peers_connected", "Mesh peers connected now");
        let mesh_peer_ops_lag = IntGaugeVec::new(
            Opts::new(
                "syncmesh_mesh_peer_ops_lag",
                "Updates applied here that a member has not acknowledged",
            ),
            &["peer"],
        )
        .expect("metric");
        let mesh_peer_time_lag = prometheus::GaugeVec::new(
            Opts::new(
                "syncmesh_mesh_peer_time_lag_seconds",
                "Age of the oldest update a member has not acknowledged",
            ),
            &["peer"],
        )
        .expect("metric");
        let mesh_bytes_sent = gauge("syncmesh_mesh_bytes_sent", "Bytes sent to mesh peers since start");
        let mesh_bytes_received =
            gauge("syncmesh_mesh_bytes_received", "Bytes received from mesh peers since start");
        let mesh_updates_sent =
            gauge("syncmesh_mesh_updates_sent", "Updates streamed to mesh peers since start");
        let mesh_snapshots_sent =
            gauge("syncmesh_mesh_snapshots_sent", "Snapshots sent to mesh peers since start");
        let mesh_quarantined_peers = gauge(
            "syncmesh_mesh_quarantined_peers",
            "Members this replica refuses because they claimed or sent history of this replica it does not hold",
        );
        let admin_connections_refused = IntCounter::new(
            "syncmesh_admin_connections_refused_total",
            "Admin HTTP connections closed on arrival because --admin-max-connections were open",
        )
        .expect("metric");
        let tombstones =
            gauge("syncmesh_tombstones_pending_gc", "Deleted keys whose metadata awaits causal stability");
        let log_entries = gauge("syncmesh_replication_log_entries", "Updates held in the replication log");
        let aof_size =
            gauge("syncmesh_aof_size_bytes", "Bytes of the data directory's snapshot and log segments");
        let aof_records_written =
            gauge("syncmesh_aof_records_written", "Log records handed to the operating system since start");
        let aof_records_fsynced = gauge(
            "syncmesh_aof_records_fsynced",
            "Log records known to be fsynced since start (0 under appendfsync no)",
        );
        let aof_rewrites =
            gauge("syncmesh_aof_rewrites", "Compactions of the log into a snapshot since start");
        let aof_write_ok =
            gauge("syncmesh_aof_write_ok", "1 while writing and fsyncing the log works, 0 while it fails");
        let aof_last_rewrite_ok = gauge("syncmesh_aof_last_rewrite_ok", "1 if the last compaction succeeded");
        // Without --data-dir nothing can fail: 1, so that alerts on 0 mean a real failure.
        aof_write_ok.set(1);
        aof_last_rewrite_ok.set(1);
        for m in [
            Box::new(calls) as Box<dyn prometheus::core::Collector>,
            Box::new(latency),
            Box::new(command_errors.clone()),
            Box::new(connections.clone()),
            Box::new(connections_total.clone()),
            Box::new(rejected_connections.clone()),
            Box::new(keys.clone()),
            Box::new(memory_used.clone()),
            Box::new(maxmemory.clone()),
            Box::new(oom_rejections.clone()),
            Box::new(expired_keys.clone()),
            Box::new(mesh_peers_connected.clone()),
            Box::new(mesh_peer_ops_lag.clone()),
            Box::new(mesh_peer_time_lag.clone()),
            Box::new(mesh_bytes_sent.clone()),
            Box::new(mesh_bytes_received.clone()),
            Box::new(mesh_updates_sent.clone()),
            Box::new(mesh_snapshots_sent.clone()),
            Box::new(mesh_quarantined_peers.clone()),
            Box::new(admin_connections_refused.clone()),
            Box::new(tombstones.clone()),
            Box::new(log_entries.clone()),
            Box::new(aof_size.clone()),
            Box::new(aof_records_written.clone()),
            Box::new(aof_records_fsynced.clone()),
            Box::new(aof_rewrites.clone()),
            Box::new(aof_write_ok.clone()),
            Box::new(aof_last_rewrite_ok.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        Metrics {
            registry,
            per_command,
            command_errors,
            connections,
            connections_total,
            rejected_connections,
            keys,
            memory_used,
            maxmemory,
            oom_rejections,
            expired_keys,
            mesh_peers_connected,
            mesh_peer_ops_lag,
            mesh_peer_time_lag,
            mesh_bytes_sent,
            mesh_bytes_received,
            mesh_updates_sent,
            mesh_snapshots_sent,
            mesh_quarantined_peers,
            admin_connections_refused,
            tombstones,
            log_entries,
            aof_size,
            aof_records_written,
            aof_records_fsynced,
            aof_rewrites,
            aof_write_ok,
            aof_last_rewrite_ok,
        }
    }

    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder.encode_to_string(&self.registry.gather()).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
