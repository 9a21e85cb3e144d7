//! The client's side: any replica (voter or not) sends a command on strong keys to the leader
//! and relays its reply. The request keeps one id across every retry — after a lost answer, on a
//! new leader — so the group never applies it twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::debug;

use super::group::{Group, PROPOSE_TIMEOUT};
use super::request::{Body, Request, RequestId};
use super::transport::{self, BlockState, Execute, Executed, Rpc, RpcReply};
use crate::mesh::peer::StrongLink;
use crate::mesh::Mesh;

/// How long the leader holds a blocking command before answering `Blocked` (the forwarder then
/// sends it again): bounds how long a dead leader goes unnoticed by a waiting client.
const BLOCK_SLICE: Duration = Duration::from_millis(2_000);

/// A command on strong keys, as a connection hands it over.
#[derive(Debug, Clone)]
pub struct Forward {
    pub db: u8,
    pub resp3: bool,
    pub body: Body,
    /// For a blocking command (outside MULTI): its keys.
    pub block_keys: Vec<Vec<u8>>,
    /// For a blocking command: how long it asked to wait (None: for ever). It stays blocked
    /// through an election (no `-CLUSTERDOWN`), and times out as it would on Redis.
    pub block_ms: Option<Option<u64>>,
}

pub struct Forwarder {
    mesh: Arc<Mesh>,
    session: u64,
    seq: AtomicU64,
    voters: Vec<String>,
    /// The voter that answered last (the leader, most likely).
    leader: Mutex<Option<String>>,
    /// Idle links to voters, for reuse.
    idle: Mutex<HashMap<String, Vec<StrongLink>>>,
    /// The voter on this replica, if it is one: commands for it need no link.
    pub local: std::sync::OnceLock<Arc<Group>>,
    local_addr: Option<String>,
    unavailable_after: Duration,
    pub stats: Stats,
}

/// What the forwarder counts (INFO strong, and Prometheus: `syncmesh_strong_*`).
pub struct Stats {
    pub forwarded: prometheus::IntCounter,
    pub unavailable: prometheus::IntCounter,
    pub retries: prometheus::IntCounter,
    /// From the client's command to the group's reply (blocking waits included).
    pub latency: prometheus::Histogram,
}

impl Stats {
    fn new() -> Stats {
        let counter = |name: &str, help: &str| prometheus::IntCounter::new(name, help).expect("metric");
        Stats {
            forwarded: counter(
                "syncmesh_strong_commands_total",
                "Commands on strong keys this replica sent to the group's leader",
            ),
            unavailable: counter(
                "syncmesh_strong_unavailable_total",
                "Commands on strong keys answered -CLUSTERDOWN (no leader with a majority in time)",
            ),
            retries: counter(
                "syncmesh_strong_retries_total",
                "Tries of a command on strong keys at another voter (no answer, no leader, redirected)",
            ),
            latency: prometheus::Histogram::with_opts(
                prometheus::HistogramOpts::new(
                    "syncmesh_strong_command_duration_seconds",
                    "Time from a command on strong keys to the group's reply, blocking waits included",
                )
                .buckets(vec![0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0]),
            )
            .expect("metric"),
        }
    }

    pub fn register(&self, registry: &prometheus::Registry) {
        for c in [&self.forwarded, &self.unavailable, &self.retries] {
            registry.register(Box::new(c.clone())).expect("metric registers once");
        }
        registry.register(Box::new(self.latency.clone())).expect("metric registers once");
    }
}

impl Forwarder {
    pub fn new(
        mesh: Arc<Mesh>,
        voters: Vec<String>,
        local_addr: Option<String>,
        unavailable_after: Duration,
    ) -> Forwarder {
        Forwarder {
            mesh,
            session: rand::random::<u64>(),
            seq: AtomicU64::new(0),
            voters,
            leader: Mutex::new(None),
            idle: Mutex::new(HashMap::new()),
            local: std::sync::OnceLock::new(),
            local_addr,
            unavailable_after,
            stats: Stats::new(),
        }
    }

    /// The voter this replica believes leads.
    pub fn leader_hint(&self) -> Option<String> {
        self.leader.lock().clone()
    }

    /// Runs a command on strong keys through the leader; returns the client's reply (encoded in
    /// its protocol), or `-CLUSTERDOWN …` when no leader with a majority answered in time.
    pub async fn run(&self, f: Forward) -> Vec<u8> {
        self.stats.forwarded.inc();
        let _timer = self.stats.latency.start_timer();
        let id = RequestId { session: self.session, seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1 };
        let (blocking, resp3) = (f.block_ms, f.resp3);
        let mut ex = Execute {
            req: Request { id, db: f.db, resp3, now_ms: 0, body: f.body },
            keys: f.block_keys,
            blocked: None::<BlockState>,
            wait_ms: BLOCK_SLICE.as_millis() as u64,
        };
        let mut give_up = Instant::now() + self.unavailable_after;
        let mut target = self.leader_hint().unwrap_or_else(|| self.voters[0].clone());
        let mut next_voter = 0usize;
        let mut last_error;
        loop {
            let answer = self.call(&target, &ex, give_up).await;
            match answer {
                Ok(Executed::Reply(bytes)) => {
                    *self.leader.lock() = Some(target);
                    return bytes;
                }
                Ok(Executed::Blocked { retry, state }) => {
                    // The group is alive: the wait for availability starts again.
                    *self.leader.lock() = Some(target.clone());
                    ex.req.body = Body::Command(retry);
                    ex.blocked = Some(state);
                    give_up = Instant::now() + self.unavailable_after;
                    continue;
                }
                Ok(Executed::Redirect(Some(leader))) if leader != target => {
                    debug!(from = %target, to = %leader, "strong keys: redirected to the leader");
                    target = leader;
                    continue;
                }
                Ok(Executed::Redirect(_)) => last_error = "no leader elected".into(),
                Ok(Executed::Unavailable(why)) => last_error = why,
                Err(e) => last_error = format!("{target}: {e}"),
            }
            if blocking.is_some() {
                // A blocking command stays blocked while there is no leader, and resumes on the
                // new one with the same id. Even past its own timeout it waits for a leader's
                // answer: a try may have popped before the leader died, and only the group
                // knows (the leader answers the timeout reply, or that pop from its replies).
                give_up = Instant::now() + self.unavailable_after;
            } else if Instant::now() >= give_up {
                self.stats.unavailable.inc();
                *self.leader.lock() = None;
                return format!(
                    "-CLUSTERDOWN strong keys unavailable: no leader with a majority of the {} voters answered within {} ms ({last_error}); the command may not have run\r\n",
                    self.voters.len(),
                    self.unavailable_after.as_millis()
                )
                .into_bytes();
            }
            self.stats.retries.inc();
            // Try the voters in turn: one of them leads, or will.
            target = self.voters[next_voter % self.voters.len()].clone();
            next_voter += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One try at one voter (this replica's own voter without a link).
    async fn call(&self, target: &str, ex: &Execute, give_up: Instant) -> std::io::Result<Executed> {
        if self.local_addr.as_deref() == Some(target) {
            if let Some(group) = self.local.get() {
                return Ok(group.execute(ex.clone()).await);
            }
        }
        let budget = give_up.saturating_duration_since(Instant::now()).max(PROPOSE_TIMEOUT)
            + Duration::from_millis(ex.wait_ms)
            + Duration::from_millis(500);
        let rpc = Rpc::Execute(ex.clone());
        let pooled = self.idle.lock().get_mut(target).and_then(|v| v.pop());
        let (mut link, answer) = match pooled {
            Some(mut link) => match transport::call(&mut link, &rpc, budget).await {
                Ok(answer) => (link, answer),
                // The voter may have closed an idle link (it restarted): once more on a new one
                // (the same request id: never applied twice).
                Err(_) => self.call_fresh(target, &rpc, budget).await?,
            },
            None => self.call_fresh(target, &rpc, budget).await?,
        };
        match answer {
            RpcReply::Execute(answer) => {
                transport::shrink(&mut link.buf);
                self.idle.lock().entry(target.to_string()).or_default().push(link);
                Ok(answer)
            }
            _ => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the voter answered another call")),
        }
    }

    async fn call_fresh(
        &self,
        target: &str,
        rpc: &Rpc,
        budget: Duration,
    ) -> std::io::Result<(StrongLink, RpcReply)> {
        let mut link = tokio::time::timeout(Duration::from_secs(3), transport::connect(&self.mesh, target))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connecting timed out"))??;
        let answer = transport::call(&mut link, rpc, budget).await?;
        Ok((link, answer))
    }
}
