//! The Raft group on a voter: the openraft node (log and state machine in `--data-dir/raft/`),
//! the links other replicas open to it, and the leader's side of a forwarded command.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Raft, ServerState, SnapshotPolicy};
use tracing::{debug, info, warn};

use super::raft_log::LogStore;
use super::raft_state::{Shared, StateMachine};
use super::request::{Body, Outcome};
use super::transport::{self, BlockState, Execute, Executed, Network, Rpc, RpcReply};
use super::{TypeConfig, Voter};
use crate::mesh::peer::StrongLink;
use crate::mesh::Mesh;
use crate::resp::{Protocol, Reply};
use crate::server::Server;

/// A proposal that has not committed after this long is reported as unavailable (no majority).
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Group {
    pub raft: Raft<TypeConfig>,
    pub me: Voter,
    pub shared: Arc<Shared>,
    pub log: LogStore,
    server: Arc<Server>,
}

impl Group {
    /// Starts this voter's node from `dir` and, on a first start, initialises the group with
    /// every voter (each voter does the same with the same list, which openraft allows).
    pub async fn start(
        server: Arc<Server>,
        mesh: Arc<Mesh>,
        me: Voter,
        voters: &[Voter],
        dir: &Path,
    ) -> std::io::Result<Arc<Group>> {
        let config = openraft::Config {
            cluster_name: format!("syncmesh-{}", server.config.database),
            heartbeat_interval: 100,
            election_timeout_min: 500,
            election_timeout_max: 1000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(20_000),
            max_in_snapshot_log_to_keep: 1_000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        let log = LogStore::open(dir)?;
        let sm = StateMachine::open(server.clone(), dir)?;
        let shared = sm.shared.clone();
        let raft = Raft::new(me.id, Arc::new(config), Network { mesh }, log.clone(), sm)
            .await
            .map_err(|e| std::io::Error::other(format!("the strong keys' Raft node did not start: {e}")))?;
        let initialized = raft.is_initialized().await.map_err(|e| std::io::Error::other(e.to_string()))?;
        if !initialized {
            let members: BTreeMap<u64, BasicNode> =
                voters.iter().map(|v| (v.id, BasicNode::new(v.addr.clone()))).collect();
            match raft.initialize(members).await {
                Ok(()) => info!(voters = voters.len(), "strong keys: group initialised"),
                Err(e) => debug!(error = %e, "strong keys: the group was initialised already"),
            }
        }
        info!(me = %me.addr, "strong keys: voter started");
        Ok(Arc::new(Group { raft, me, shared, log, server }))
    }

    /// The leader's mesh address, if one is known.
    pub fn leader(&self) -> Option<String> {
        let m = self.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        m.membership_config.membership().get_node(&id).map(|n| n.addr.clone())
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Proposes a forwarded command and waits for its outcome. A blocking command that finds
    /// nothing waits here (up to `wait_ms`, or its own deadline) for a write to one of its keys,
    /// and is proposed again; every try carries the same request id, so a try that popped is
    /// never repeated.
    pub async fn execute(&self, ex: Execute) -> Executed {
        let Execute { mut req, keys, mut blocked, wait_ms } = ex;
        let until = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        loop {
            // Watch the keys before the try: a write applied after it wakes us, one before it
            // was seen by it.
            let watch = if keys.is_empty() {
                None
            } else {
                Some(self.shared.state.lock().machine.watch_keys(req.db, &keys))
            };
            req.now_ms = self.server.now_ms();
            let proposed = tokio::time::timeout(PROPOSE_TIMEOUT, self.raft.client_write(req.clone())).await;
            let unwatch = |id: u64| self.shared.state.lock().machine.unwatch(id);
            let outcome = match proposed {
                Err(_) => {
                    if let Some((id, _)) = watch {
                        unwatch(id);
                    }
                    return Executed::Unavailable(format!(
                        "no majority of the voters confirmed the command within {} s",
                        PROPOSE_TIMEOUT.as_secs()
                    ));
                }
                Ok(Err(e)) => {
                    if let Some((id, _)) = watch {
                        unwatch(id);
                    }
                    return match e {
                        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                            Executed::Redirect(f.leader_node.map(|n| n.addr))
                        }
                        other => Executed::Unavailable(other.to_string()),
                    };
                }
                Ok(Ok(resp)) => resp.data,
            };
            match outcome {
                Outcome::Reply(bytes) => {
                    if let Some((id, _)) = watch {
                        unwatch(id);
                    }
                    return Executed::Reply(bytes);
                }
                Outcome::Internal => return Executed::Unavailable("unexpected internal entry".into()),
                Outcome::WouldBlock { retry, keys: _, deadline_ms, null_bulk } => {
                    // The first try fixes the deadline (later tries would count from their own
                    // time).
                    let state = *blocked.get_or_insert(BlockState { deadline_ms, null_bulk });
                    req.body = Body::Command(retry.clone());
                    let Some((id, woken)) = watch else {
                        return Executed::Unavailable("a blocking command without keys".into());
                    };
                    let now = self.server.now_ms();
                    let left_ms = state.deadline_ms.map(|d| d.saturating_sub(now));
                    if left_ms == Some(0) {
                        unwatch(id);
                        return Executed::Reply(timeout_reply(req.resp3, state.null_bulk));
                    }
                    let deadline = match left_ms {
                        Some(ms) => (tokio::time::Instant::now() + Duration::from_millis(ms)).min(until),
                        None => until,
                    };
                    tokio::select! {
                        _ = woken => continue,
                        _ = tokio::time::sleep_until(deadline) => {
                            unwatch(id);
                            if deadline < until {
                                return Executed::Reply(timeout_reply(req.resp3, state.null_bulk));
                            }
                            return Executed::Blocked { retry, state };
                        }
                    }
                }
            }
        }
    }

    /// Serves a link another replica opened: Raft's messages and forwarded commands, one call
    /// after the other, until it closes.
    pub async fn serve(self: Arc<Self>, mut link: StrongLink) {
        loop {
            let rpc = match transport::recv::<Rpc>(&mut link).await {
                Ok(Some(rpc)) => rpc,
                Ok(None) => return,
                Err(e) => {
                    warn!(peer = %link.remote, error = %e, "strong keys: bad message on a link, closing it");
                    return;
                }
            };
            let reply = match rpc {
                Rpc::AppendEntries(r) => RpcReply::AppendEntries(self.raft.append_entries(r).await),
                Rpc::Vote(r) => RpcReply::Vote(self.raft.vote(r).await),
                Rpc::InstallSnapshot(r) => RpcReply::InstallSnapshot(self.raft.install_snapshot(r).await),
                Rpc::Execute(ex) => RpcReply::Execute(self.execute(ex).await),
            };
            if let Err(e) = transport::send(&mut link, &reply).await {
                debug!(peer = %link.remote, error = %e, "strong keys: link closed while answering");
                return;
            }
            transport::shrink(&mut link.buf);
        }
    }
}

/// What a blocking command answers when its timeout passes (as Redis: a null array, or a null
/// bulk string for BLMOVE and BRPOPLPUSH; RESP3's null for both).
fn timeout_reply(resp3: bool, null_bulk: bool) -> Vec<u8> {
    let mut out = Reply::new(if resp3 { Protocol::Resp3 } else { Protocol::Resp2 });
    if null_bulk {
        out.null();
    } else {
        out.null_array();
    }
    out.buf.to_vec()
}
