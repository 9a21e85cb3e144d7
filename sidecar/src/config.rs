//! Command-line flags; every flag can also be set as `SYNCMESH_<FLAG>` in the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum AppendFsync {
    /// fsync before a write is acknowledged (one fsync covers every write waiting for it).
    Always,
    /// fsync once per second (about a second of acknowledged writes at risk on power loss).
    Everysec,
    /// never fsync explicitly; the operating system flushes when it likes.
    No,
}

impl AppendFsync {
    pub fn as_str(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::Everysec => "everysec",
            AppendFsync::No => "no",
        }
    }
}

/// A yes/no flag, spelt as Redis's configuration spells it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum YesNo {
    Yes,
    No,
}

impl YesNo {
    pub fn enabled(self) -> bool {
        self == YesNo::Yes
    }
}

/// SyncMesh replica: a Redis-compatible store whose replicas form an active-active CRDT mesh.
#[derive(Parser, Debug, Clone)]
#[command(name = "syncmesh-replica", version, about, long_about = None)]
pub struct Config {
    /// Without a subcommand the replica runs.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Addresses the client (Redis protocol) port listens on. Loopback by default: in a pod only
    /// the pod's own containers can reach the replica.
    #[arg(long, env = "SYNCMESH_BIND", value_delimiter = ',', default_value = "127.0.0.1,::1")]
    pub bind: Vec<String>,

    /// Client (Redis protocol) port.
    #[arg(long, env = "SYNCMESH_PORT", default_value_t = 6379)]
    pub port: u16,

    /// Address the mesh port listens on. Default: all interfaces with TLS; loopback with
    /// --mesh-insecure (a non-loopback address then needs --mesh-secret).
    #[arg(long, env = "SYNCMESH_MESH_BIND")]
    pub mesh_bind: Option<String>,

    /// Mesh (peer replication, mutual TLS) port.
    #[arg(long, env = "SYNCMESH_MESH_PORT", default_value_t = 7379)]
    pub mesh_port: u16,

    /// Address the admin HTTP port listens on (probes come from the kubelet, so all interfaces).
    #[arg(long, env = "SYNCMESH_ADMIN_BIND", default_value = "0.0.0.0")]
    pub admin_bind: String,

    /// Admin HTTP port: /metrics, /healthz, /readyz, /status.
    #[arg(long, env = "SYNCMESH_ADMIN_PORT", default_value_t = 9379)]
    pub admin_port: u16,

    /// A bearer token that opens /status to other hosts (`Authorization: Bearer TOKEN`).
    /// Without it, /status answers loopback clients only; /metrics, /healthz and /readyz stay
    /// open (the kubelet and Prometheus use them).
    #[arg(long, env = "SYNCMESH_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Admin connections open at once; more are closed on arrival.
    #[arg(long, env = "SYNCMESH_ADMIN_MAX_CONNECTIONS", default_value_t = 64)]
    pub admin_max_connections: usize,

    /// Name of the database this replica belongs to; peers of another database are refused.
    #[arg(long, env = "SYNCMESH_DATABASE", default_value = "default")]
    pub database: String,

    /// Static seed peers, HOST:PORT of their mesh ports.
    #[arg(long, env = "SYNCMESH_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,

    /// DNS name whose addresses are all peers (re-resolved periodically); the operator passes
    /// the mesh's headless Service.
    #[arg(long, env = "SYNCMESH_PEERS_DNS")]
    pub peers_dns: Option<String>,

    /// CA certificate (PEM) that peers' certificates must chain to.
    #[arg(long, env = "SYNCMESH_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// This replica's mesh certificate (PEM).
    #[arg(long, env = "SYNCMESH_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// This replica's mesh private key (PEM).
    #[arg(long, env = "SYNCMESH_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Seconds between checks of the TLS files: a renewed certificate or CA bundle (a Secret
    /// the kubelet updated) is used by new mesh connections without a restart.
    #[arg(long, env = "SYNCMESH_TLS_RELOAD_SECS", default_value_t = 10)]
    pub tls_reload_secs: u64,

    /// Address peers should dial to reach this replica's mesh port (HOST:PORT); by default the
    /// address a peer sees the connection come from, with --mesh-port.
    #[arg(long, env = "SYNCMESH_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,

    /// Learn peers' addresses from other peers (turn off to pin the topology to the seeds).
    #[arg(long, env = "SYNCMESH_PEER_EXCHANGE", default_value_t = true, action = clap::ArgAction::Set)]
    pub peer_exchange: bool,

    /// Seconds after which a member nobody has heard from is retired (its metadata collected).
    #[arg(long, env = "SYNCMESH_RETIRE_AFTER_SECS", default_value_t = 600)]
    pub retire_after_secs: u64,

    /// A mesh connection on which nothing arrives for this long (milliseconds) is closed and
    /// dialled again. Peers send an ack every 100 ms, so only a dead link or a vanished peer is
    /// that silent; without it, a partition leaves connections that look alive until TCP gives up.
    #[arg(long, env = "SYNCMESH_PEER_TIMEOUT_MS", default_value_t = 10_000)]
    pub peer_timeout_ms: u64,

    /// Size cap of the replication log in bytes (a peer that falls further behind gets a
    /// snapshot).
    #[arg(long, env = "SYNCMESH_LOG_CAP", default_value = "64mb", value_parser = parse_memory)]
    pub log_cap: u64,

    /// Allow a plaintext mesh without TLS. For local development only: the mesh then listens on
    /// loopback unless --mesh-bind names another address, which needs --mesh-secret.
    #[arg(long, env = "SYNCMESH_MESH_INSECURE")]
    pub mesh_insecure: bool,

    /// A secret every replica of the database shares: a peer must prove it knows it (challenge
    /// and response, before anything about the database is sent). Required for --mesh-insecure
    /// on a non-loopback address; with TLS it is checked in addition to the certificate.
    #[arg(long, env = "SYNCMESH_MESH_SECRET", hide_env_values = true)]
    pub mesh_secret: Option<String>,

    /// Directory for the append-only log and snapshots: a replica restarted on it keeps its
    /// identity and data and catches up from peers on what it missed. Absent: memory only (a
    /// restarted replica is a new member and bootstraps from its peers).
    #[arg(long, env = "SYNCMESH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// On a damaged data directory, move its files into DIR/damaged-<unix time>/ (kept) and start
    /// as a new member that rebuilds from its peers, instead of refusing to start. Needs peers
    /// (--peers or --peers-dns); without them a damaged directory still stops the replica.
    #[arg(long, env = "SYNCMESH_RECOVER_FROM_PEERS")]
    pub recover_from_peers: bool,

    /// When the append-only log is fsynced (see docs/durability.md).
    #[arg(long, env = "SYNCMESH_APPENDFSYNC", value_enum, default_value_t = AppendFsync::Everysec)]
    pub appendfsync: AppendFsync,

    /// The log is compacted into a snapshot once it is larger than this and than the last
    /// snapshot (as Redis's auto-aof-rewrite-min-size with auto-aof-rewrite-percentage 100).
    #[arg(long, env = "SYNCMESH_AOF_REWRITE_MIN_SIZE", default_value = "64mb", value_parser = parse_memory)]
    pub aof_rewrite_min_size: u64,

    /// Memory limit in bytes (suffixes kb, mb, gb accepted); past it writes get -OOM and reads
    /// keep working. 0 = no limit.
    #[arg(long, env = "SYNCMESH_MAXMEMORY", default_value = "0", value_parser = parse_memory)]
    pub maxmemory: u64,

    /// Password clients must give with AUTH.
    #[arg(long, env = "SYNCMESH_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,

    /// Protected mode, as in Redis: while no password is set (--requirepass), clients connecting
    /// from an address other than loopback get a -DENIED error and are disconnected. It only
    /// matters with a --bind address other than loopback; `CONFIG SET protected-mode` changes it.
    #[arg(long, env = "SYNCMESH_PROTECTED_MODE", value_enum, default_value_t = YesNo::Yes)]
    pub protected_mode: YesNo,

    /// Maximum number of simultaneous client connections.
    #[arg(long, env = "SYNCMESH_MAXCLIENTS", default_value_t = 10000)]
    pub maxclients: usize,

    /// How long to wait for a reachable peer before declaring the replica ready on its own.
    #[arg(long, env = "SYNCMESH_BOOTSTRAP_TIMEOUT_MS", default_value_t = 3000)]
    pub bootstrap_timeout_ms: u64,

    /// Skews this replica's clock (milliseconds, may be negative). For fault tests.
    #[arg(long, env = "SYNCMESH_CLOCK_OFFSET_MS", default_value_t = 0, allow_hyphen_values = true)]
    pub clock_offset_ms: i64,

    /// How long a Lua script or function may run before other clients get `-BUSY` and
    /// `SCRIPT KILL` / `FUNCTION KILL` may stop it (Redis's `busy-reply-threshold`); 0 = never.
    #[arg(long, env = "SYNCMESH_BUSY_REPLY_THRESHOLD_MS", default_value_t = 5000)]
    pub busy_reply_threshold_ms: u64,

    /// A script or function that runs longer than this is stopped with an error, even if it
    /// has written (its writes so far stay, as after any script error). 0 = no limit (as
    /// Redis: only SCRIPT KILL stops a script).
    #[arg(long, env = "SYNCMESH_SCRIPT_TIME_LIMIT_MS", default_value_t = 0)]
    pub script_time_limit_ms: u64,

    /// Memory cap of the Lua state that runs scripts (suffixes kb, mb, gb accepted): a script
    /// that allocates past it gets an error instead of growing the process. 0 = no cap.
    #[arg(long, env = "SYNCMESH_SCRIPT_MEMORY_LIMIT", default_value = "256mb", value_parser = parse_memory)]
    pub script_memory_limit: u64,

    /// Key patterns (glob, as KEYS reads them) whose commands are linearizable: every command,
    /// transaction or script on them runs through the Raft group of --strong-voters, so a
    /// popped element goes to one consumer and a lock has one holder (docs/semantics.md,
    /// "Strong keys"). Every replica of the database must be given the same patterns.
    #[arg(long, env = "SYNCMESH_STRONG_KEYS", value_delimiter = ',')]
    pub strong_keys: Vec<String>,

    /// Mesh addresses (HOST:PORT) of the replicas that form the strong keys' Raft group: durable
    /// replicas, each with --data-dir. A replica whose own mesh address is listed (its
    /// --advertise-addr, or a local address with its --mesh-port) is a voter. Every replica of
    /// the database must be given the same list; 3 voters survive the loss of one.
    #[arg(long, env = "SYNCMESH_STRONG_VOTERS", value_delimiter = ',')]
    pub strong_voters: Vec<String>,

    /// How long a command on strong keys waits for a leader with a majority before it gets
    /// -CLUSTERDOWN (milliseconds). Blocking commands wait as long as they asked to.
    #[arg(long, env = "SYNCMESH_STRONG_TIMEOUT_MS", default_value_t = 5000)]
    pub strong_timeout_ms: u64,

    /// Log filter (error, warn, info, debug, trace, or a tracing filter expression).
    #[arg(long, env = "SYNCMESH_LOG", default_value = "info")]
    pub log: String,
}

/// Tools that run instead of the replica.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Reports what a data directory holds: per file the records read, how far it reads, where
    /// damage starts, and the keys a replica would recover. Exit status: 0 a replica starts on
    /// it, 1 damaged (a replica refuses to start), 2 the check itself failed. See
    /// docs/durability.md.
    CheckData(CheckData),
}

#[derive(Args, Debug, Clone)]
pub struct CheckData {
    /// The data directory (the replica's --data-dir). The replica must be stopped for --fix and
    /// --set-aside.
    pub dir: PathBuf,

    /// Cut the damage and everything after it, after copying what is cut into
    /// DIR/damaged-<unix time>/ (nothing is deleted): the next start recovers what was readable
    /// up to the damage.
    #[arg(long, conflicts_with = "set_aside")]
    pub fix: bool,

    /// Move the directory's snapshot and log into DIR/set-aside-<unix time>/ (kept): the next
    /// start is a new member that bootstraps from its peers. For a replica whose history is
    /// behind what its peers hold of it.
    #[arg(long)]
    pub set_aside: bool,
}

/// Parses `1000`, `100kb`, `64mb`, `2gb` (and `k`, `m`, `g`), as Redis's config does.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let split = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid memory amount '{s}'"))?;
    let mult = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return Err(format!("invalid memory unit in '{s}'")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("memory amount '{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("100").unwrap(), 100);
        assert_eq!(parse_memory("1kb").unwrap(), 1024);
        assert_eq!(parse_memory("2mb").unwrap(), 2 * 1024 * 1024);
        assert!(parse_memory("2xb").is_err());
    }

    #[test]
    fn flags_without_a_subcommand_run_the_replica() {
        let c =
            Config::try_parse_from(["syncmesh-replica", "--port", "7000", "--recover-from-peers"]).unwrap();
        assert!(c.command.is_none());
        assert_eq!(c.port, 7000);
        assert!(c.recover_from_peers);
        let c = Config::try_parse_from(["syncmesh-replica", "check-data", "/d", "--fix"]).unwrap();
        match c.command {
            Some(Command::CheckData(c)) => {
                assert!(c.fix && !c.set_aside && c.dir == std::path::Path::new("/d"))
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Config::try_parse_from(["syncmesh-replica", "check-data", "/d", "--fix", "--set-aside"]).is_err()
        );
        assert!(
            Config::try_parse_from(["syncmesh-replica", "check-data"]).is_err(),
            "the directory is needed"
        );
    }

    #[test]
    fn every_flag_has_help_text() {
        use clap::CommandFactory;
        let cmd = Config::command();
        for arg in cmd.get_arguments() {
            if arg.get_id() != "help" && arg.get_id() != "version" {
                assert!(arg.get_help().is_some(), "flag {} has no help", arg.get_id());
            }
        }
    }
}
