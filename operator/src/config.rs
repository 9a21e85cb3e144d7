//! Command-line flags (each also an environment variable `SYNCMESH_OPERATOR_<FLAG>`).

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "syncmesh-operator",
    version,
    about = "Reconciles SyncedDatabases and injects the SyncMesh replica"
)]
pub struct Config {
    /// Namespace the operator runs in: its Lease, webhook Secret and Service live here.
    #[arg(long, env = "SYNCMESH_OPERATOR_NAMESPACE", default_value = "syncmesh-system")]
    pub namespace: String,

    /// This instance's name in the leader-election Lease (the pod name in a cluster).
    #[arg(long, env = "SYNCMESH_OPERATOR_IDENTITY")]
    pub identity: Option<String>,

    /// Address of the admin HTTP server (/metrics, /healthz, /readyz).
    #[arg(long, env = "SYNCMESH_OPERATOR_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: String,

    /// Address of the webhook's HTTPS server.
    #[arg(long, env = "SYNCMESH_OPERATOR_WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
    pub webhook_addr: String,

    /// The Service in front of the webhook (its DNS names go into the serving certificate).
    #[arg(long, env = "SYNCMESH_OPERATOR_WEBHOOK_SERVICE", default_value = "syncmesh-webhook")]
    pub webhook_service: String,

    /// The Secret holding the webhook's CA and serving certificate (created and renewed by the
    /// operator).
    #[arg(long, env = "SYNCMESH_OPERATOR_WEBHOOK_SECRET", default_value = "syncmesh-webhook-tls")]
    pub webhook_secret: String,

    /// The MutatingWebhookConfiguration whose caBundle the operator keeps current.
    #[arg(long, env = "SYNCMESH_OPERATOR_WEBHOOK_CONFIGURATION", default_value = "syncmesh-injector")]
    pub webhook_configuration: String,

    /// Extra names (DNS or IP) for the serving certificate, e.g. 127.0.0.1 when the API server
    /// calls a webhook on loopback during development.
    #[arg(long, env = "SYNCMESH_OPERATOR_WEBHOOK_EXTRA_SAN", value_delimiter = ',')]
    pub webhook_extra_san: Vec<String>,

    /// Create the webhook Secret and the leader-election Lease when they do not exist. The Helm
    /// chart creates both, so that `helm uninstall` removes them, and turns this off: an
    /// operator that is being uninstalled then cannot bring them back.
    #[arg(long, env = "SYNCMESH_OPERATOR_CREATE_MISSING", default_value_t = true, action = clap::ArgAction::Set)]
    pub create_missing: bool,

    /// Seconds between checks of the webhook certificate (renewed when a third of its lifetime
    /// is left, or when its Secret was deleted) and of the webhook configuration's caBundle.
    #[arg(long, env = "SYNCMESH_OPERATOR_CERT_REFRESH_SECONDS", default_value_t = 60)]
    pub cert_refresh_seconds: u64,

    /// Replica image injected when a SyncedDatabase does not name one.
    #[arg(long, env = "SYNCMESH_OPERATOR_REPLICA_IMAGE", default_value = "syncmesh/syncmesh-replica:0.1.0")]
    pub replica_image: String,

    /// Name of the leader-election Lease.
    #[arg(long, env = "SYNCMESH_OPERATOR_LEASE_NAME", default_value = "syncmesh-operator")]
    pub lease_name: String,

    /// Seconds a leader's Lease lasts without renewal before another instance may take over.
    #[arg(long, env = "SYNCMESH_OPERATOR_LEASE_SECONDS", default_value_t = 15)]
    pub lease_seconds: u32,

    /// Log filter (tracing's EnvFilter syntax: `info`, `syncmesh_operator=debug,kube=info`).
    #[arg(long, env = "SYNCMESH_OPERATOR_LOG", default_value = "info")]
    pub log: String,

    /// Log format: `text` or `json`.
    #[arg(long, env = "SYNCMESH_OPERATOR_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl Config {
    /// The Lease holder identity: `--identity`, or the host name (the pod name in a cluster).
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| format!("syncmesh-operator-{}", std::process::id()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_help_text() {
        use clap::CommandFactory;
        for arg in Config::command().get_arguments() {
            if arg.get_id() != "help" && arg.get_id() != "version" {
                assert!(arg.get_help().is_some(), "flag {} has no help", arg.get_id());
            }
        }
    }
}
