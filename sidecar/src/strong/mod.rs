//! Strong keys: keys (`--strong-keys` patterns) whose every command runs linearizably through a
//! Raft group of the durable replicas (`--strong-voters`), instead of being CRDT state merged
//! across the mesh. A popped element goes to one consumer, a consumer group divides its entries,
//! a lock has one holder.
//!
//! - [`route`]: which commands are strong (all their keys match a pattern).
//! - [`request`]: the Raft log entry (a command, with its time and id) and its outcome.
//! - [`machine`]: the state machine: a keyspace of strong keys driven by the command table.
//! - [`raft_log`], [`raft_state`]: openraft's storage (in `--data-dir/raft/`).
//! - [`transport`]: links over the mesh port, openraft's network.
//! - [`group`]: the Raft node on a voter, and the leader's side of a forwarded command.
//! - [`forward`]: the client's side, on every replica.
//! - this file: [`Strong`], what the server holds, and the dispatcher's hook.
//!
//! Without `--strong-keys` none of this exists (`Server::strong` is None) and commands take the
//! CRDT path as before, with no extra check.
//!
//! The design is written down in `docs/design.md`, "Strong keys".

pub mod forward;
pub mod group;
pub mod machine;
pub mod raft_log;
pub mod raft_state;
pub mod request;
pub mod route;
pub mod transport;

use std::io::Cursor;
use std::net::ToSocketAddrs;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::commands::{flags, Command};
use crate::config::Config;
use crate::mesh::peer::StrongLink;
use crate::mesh::Mesh;
use crate::resp::Protocol;
use crate::server::client::Client;
use crate::server::Server;
pub use forward::Forward;
use request::{Body, Outcome, Request};
use route::{Patterns, Route};

openraft::declare_raft_types!(
    /// The strong keys' Raft types: entries carry [`Request`]s, applying one gives an
    /// [`Outcome`]; nodes are voters' mesh addresses.
    pub TypeConfig:
        D = Request,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// A member of the group: its mesh address as `--strong-voters` spells it, and the Raft node id
/// every replica derives from that spelling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voter {
    pub id: u64,
    pub addr: String,
}

impl Voter {
    fn new(addr: &str) -> Voter {
        Voter { id: xxhash_rust::xxh3::xxh3_64(addr.as_bytes()) | 1, addr: addr.to_string() }
    }
}

/// How long a blocking command asked to wait: `Some(None)` for ever, `Some(Some(ms))`, or None
/// when it does not block (`XREAD` without `BLOCK`, or a timeout that does not parse: the
/// command then gets its own error from the group).
fn block_timeout(name: &str, args: &[Bytes]) -> Option<Option<u64>> {
    let secs = |a: &Bytes| crate::commands::arg_timeout_secs(a).ok();
    match name {
        "xread" | "xreadgroup" => {
            let at = args.iter().position(|a| a.eq_ignore_ascii_case(b"block"))?;
            let ms: u64 = std::str::from_utf8(args.get(at + 1)?).ok()?.parse().ok()?;
            Some((ms > 0).then_some(ms))
        }
        "blmpop" | "bzmpop" => secs(args.get(1)?),
        _ => secs(args.last()?),
    }
}

/// The strong keys on this replica: what is strong, the group's members, the way to the leader,
/// and (on a voter) the group itself.
pub struct Strong {
    pub patterns: Patterns,
    pub voters: Vec<Voter>,
    /// This replica, if it is a voter.
    pub me: Option<Voter>,
    pub forwarder: forward::Forwarder,
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

/// Whether a `--strong-voters` address is this replica's: its `--advertise-addr`, or an address
/// of this host with its mesh port.
fn is_me(addr: &str, config: &Config) -> bool {
    if config.advertise_addr.as_deref() == Some(addr) {
        return true;
    }
    let Some((_, port)) = addr.rsplit_once(':') else { return false };
    if port.parse::<u16>().ok() != Some(config.mesh_port) {
        return false;
    }
    // An address is this host's if a socket can bind to it.
    addr.to_socket_addrs()
        .map(|mut ips| ips.any(|a| std::net::UdpSocket::bind((a.ip(), 0)).is_ok()))
        .unwrap_or(false)
}

impl Strong {
    /// None without `--strong-keys`. Checks the flags: voters are needed, a voter needs a data
    /// directory, and the mesh must be on (the group talks over it).
    pub fn from_config(config: &Config, mesh: Option<&Arc<Mesh>>) -> std::io::Result<Option<Arc<Strong>>> {
        let patterns = Patterns::new(&config.strong_keys);
        if patterns.is_empty() {
            if !config.strong_voters.is_empty() {
                return Err(invalid(
                    "--strong-voters is set but --strong-keys is not: name the strong key patterns too"
                        .into(),
                ));
            }
            return Ok(None);
        }
        let mut addrs: Vec<String> = config.strong_voters.iter().filter(|a| !a.is_empty()).cloned().collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(invalid(
                "--strong-keys needs --strong-voters: the mesh addresses (HOST:PORT) of the durable replicas that form the group".into(),
            ));
        }
        for a in &addrs {
            if a.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
                return Err(invalid(format!("--strong-voters: '{a}' is not HOST:PORT")));
            }
        }
        let Some(mesh) = mesh else {
            return Err(invalid(
                "--strong-keys needs the mesh (the group talks over it): set --tls-ca/--tls-cert/--tls-key, or --mesh-insecure".into(),
            ));
        };
        let voters: Vec<Voter> = addrs.iter().map(|a| Voter::new(a)).collect();
        let me = voters.iter().find(|v| is_me(&v.addr, config)).cloned();
        if me.is_some() && config.data_dir.is_none() {
            return Err(invalid(format!(
                "this replica is a strong-keys voter ({}) and needs --data-dir: the group's log and vote must survive a restart",
                me.as_ref().map(|m| m.addr.as_str()).unwrap_or_default()
            )));
        }
        let forwarder = forward::Forwarder::new(
            mesh.clone(),
            addrs,
            me.as_ref().map(|m| m.addr.clone()),
            Duration::from_millis(config.strong_timeout_ms.max(1)),
        );
        Ok(Some(Arc::new(Strong { patterns, voters, me, forwarder })))
    }

    /// Starts this replica's voter (if it is one).
    pub async fn start(&self, server: Arc<Server>, mesh: Arc<Mesh>) -> std::io::Result<()> {
        let Some(me) = self.me.clone() else { return Ok(()) };
        let dir = server.config.data_dir.as_ref().expect("checked at start").join("raft");
        let group = group::Group::start(server, mesh, me, &self.voters, &dir).await?;
        let _ = self.forwarder.local.set(group);
        Ok(())
    }

    pub fn group(&self) -> Option<&Arc<group::Group>> {
        self.forwarder.local.get()
    }

    /// Serves a link another replica opened to this one (only voters serve them).
    pub fn serve_link(&self, link: StrongLink) {
        if let Some(group) = self.group() {
            tokio::spawn(group.clone().serve(link));
        }
    }

    /// The dispatcher's hook, before a command runs here: a command on strong keys is handed to
    /// the connection to forward (`client.forward`), a command that mixes strong and other keys
    /// gets an error. False: it runs here as usual.
    ///
    /// `scripts` is this replica's script cache: `EVALSHA` goes to the group as the `EVAL` of
    /// the body cached here (a SHA1 unknown here gets `NOSCRIPT` here, as it should).
    pub fn intercept(
        &self,
        cmd: &Command,
        args: &[Bytes],
        client: &mut Client,
        out: &mut crate::resp::Reply,
        scripts: &crate::scripting::Engine,
    ) -> bool {
        if route::always_local(cmd, args) {
            return false;
        }
        let resp3 = out.proto == Protocol::Resp3;
        let db = client.db as u8;
        match cmd.name {
            "exec" => {
                let Some(queued) = client.multi.as_ref() else { return false };
                if client.multi_error {
                    return false; // EXECABORT, here
                }
                match self.patterns.route_transaction(queued) {
                    Route::Local => false,
                    route => {
                        let queued = client.multi.take().unwrap_or_default();
                        client.info.in_multi.store(false, Ordering::Relaxed);
                        if route == Route::Mixed {
                            out.error(&format!(
                                "EXECABORT Transaction discarded because of: {}",
                                route::MIXED
                            ));
                            return true;
                        }
                        let body = Body::Transaction(
                            queued.iter().map(|c| c.iter().map(|a| a.to_vec()).collect()).collect(),
                        );
                        client.forward =
                            Some(Forward { db, resp3, body, block_keys: Vec::new(), block_ms: None });
                        true
                    }
                }
            }
            _ => match self.patterns.route(cmd, args) {
                Route::Local => false,
                Route::Mixed => {
                    out.error(route::MIXED);
                    true
                }
                Route::Strong if cmd.name == "watch" => {
                    out.error("ERR WATCH is not supported on strong keys (--strong-keys): a MULTI/EXEC or a script on strong keys already runs atomically on the group");
                    true
                }
                Route::Strong => {
                    let block_ms = if cmd.is(flags::BLOCKING) { block_timeout(cmd.name, args) } else { None };
                    let block_keys = if block_ms.is_some() {
                        crate::commands::key_args(cmd, args)
                            .map(|ks| ks.into_iter().map(|k| k.to_vec()).collect())
                            .unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    let mut argv: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
                    if cmd.name == "evalsha" || cmd.name == "evalsha_ro" {
                        let Some(body) = scripts.script_body(&args[1]) else { return false };
                        argv[0] = if cmd.name == "evalsha" { b"EVAL".to_vec() } else { b"EVAL_RO".to_vec() };
                        argv[1] = body.to_vec();
                    }
                    client.forward =
                        Some(Forward { db, resp3, body: Body::Command(argv), block_keys, block_ms });
                    true
                }
            },
        }
    }

    /// Checks a command queued by `MULTI` against those queued before it: a transaction on
    /// strong keys runs on the group, one on other keys here; one that would do both is refused
    /// (`CROSSSLOT`, and `EXEC` then answers `EXECABORT`, as Redis Cluster does).
    pub fn check_queued(
        &self,
        cmd: &Command,
        args: &[Bytes],
        seen: &mut (bool, bool),
    ) -> Result<(), &'static str> {
        let (strong, other) = match self.patterns.route(cmd, args) {
            Route::Mixed => return Err(route::MIXED),
            Route::Strong => (true, false),
            // Keyless commands (PING, ECHO) go with either kind.
            Route::Local if crate::commands::key_args(cmd, args).is_ok_and(|k| k.is_empty()) => {
                (false, false)
            }
            Route::Local => (false, true),
        };
        if (strong || seen.0) && (other || seen.1) {
            return Err(route::MIXED);
        }
        seen.0 |= strong;
        seen.1 |= other;
        Ok(())
    }

    /// The `# Strong` section of INFO.
    pub fn info(&self) -> String {
        let mut s = String::from("# Strong\r\n");
        let patterns = self.patterns_text();
        s.push_str(&format!("strong_keys:{patterns}\r\n"));
        s.push_str(&format!(
            "strong_voters:{}\r\n",
            self.voters.iter().map(|v| v.addr.as_str()).collect::<Vec<_>>().join(",")
        ));
        match self.group() {
            Some(g) => {
                let m = g.raft.metrics().borrow().clone();
                let role = format!("{:?}", m.state).to_lowercase();
                s.push_str(&format!("strong_role:{role}\r\n"));
                s.push_str(&format!("strong_self:{}\r\n", g.me.addr));
                s.push_str(&format!("strong_leader:{}\r\n", g.leader().unwrap_or_default()));
                s.push_str(&format!("strong_term:{}\r\n", m.current_term));
                let last_log = m.last_log_index.unwrap_or(0);
                let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
                s.push_str(&format!("strong_last_log_index:{last_log}\r\n"));
                s.push_str(&format!("strong_applied_index:{applied}\r\n"));
                s.push_str(&format!("strong_apply_lag:{}\r\n", last_log.saturating_sub(applied)));
                if let Some(repl) = &m.replication {
                    let lag: u64 = repl
                        .values()
                        .map(|matched| last_log.saturating_sub(matched.map(|l| l.index).unwrap_or(0)))
                        .max()
                        .unwrap_or(0);
                    s.push_str(&format!("strong_replication_lag:{lag}\r\n"));
                }
                // try_lock: INFO may run inside a strong transaction, which holds the machine.
                if let Some(st) = g.shared.state.try_lock() {
                    s.push_str(&format!("strong_keys_held:{}\r\n", st.machine.keys()));
                }
            }
            None => {
                s.push_str("strong_role:forwarder\r\n");
                s.push_str(&format!(
                    "strong_leader:{}\r\n",
                    self.forwarder.leader_hint().unwrap_or_default()
                ));
            }
        }
        let st = &self.forwarder.stats;
        s.push_str(&format!("strong_forwarded:{}\r\n", st.forwarded.get()));
        s.push_str(&format!("strong_retries:{}\r\n", st.retries.get()));
        s.push_str(&format!("strong_unavailable:{}\r\n", st.unavailable.get()));
        s
    }

    /// Gauges of the group for Prometheus, read at scrape time: role, term, indexes, lag.
    pub fn gauges(&self) -> Vec<(&'static str, &'static str, i64)> {
        let Some(g) = self.group() else { return Vec::new() };
        let m = g.raft.metrics().borrow().clone();
        let last_log = m.last_log_index.unwrap_or(0);
        let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
        let lag = m
            .replication
            .as_ref()
            .and_then(|r| r.values().map(|x| last_log.saturating_sub(x.map(|l| l.index).unwrap_or(0))).max())
            .unwrap_or(0);
        vec![
            (
                "syncmesh_strong_is_leader",
                "1 if this voter leads the strong keys' group",
                (m.state == openraft::ServerState::Leader) as i64,
            ),
            (
                "syncmesh_strong_term",
                "The strong keys' group's Raft term as this voter knows it",
                m.current_term as i64,
            ),
            ("syncmesh_strong_last_log_index", "The last entry in this voter's Raft log", last_log as i64),
            (
                "syncmesh_strong_applied_index",
                "The last entry this voter applied to its strong keys",
                applied as i64,
            ),
            ("syncmesh_strong_replication_lag", "On the leader: entries the slowest voter lacks", lag as i64),
        ]
    }

    pub fn patterns_text(&self) -> String {
        self.patterns.text()
    }
}
