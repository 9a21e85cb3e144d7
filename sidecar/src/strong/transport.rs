//! The strong keys' traffic between replicas, over mesh connections ([`StrongLink`]: the mesh's
//! TLS and membership proof, then `Strong` instead of `Hello`).
//!
//! A link carries calls and their answers in turn, each a length-prefixed bincode frame: Raft's
//! own messages between voters (append entries, vote, snapshot chunks), and commands that a
//! replica forwards to the leader for its clients ([`Rpc::Execute`]). openraft's
//! [`RaftNetwork`] is implemented here on top of that.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bincode::Options;
use bytes::BytesMut;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::debug;

use super::request::{Argv, Request};
use super::TypeConfig;
use crate::mesh::peer::{open_strong_link, StrongLink};
use crate::mesh::{wire, Mesh};

type NodeId = u64;

/// A call on a strong link.
#[derive(Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Rpc {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A command for the leader to propose (see [`super::group::Group::execute`]).
    Execute(Execute),
}

/// A forwarded command.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Execute {
    pub req: Request,
    /// For a blocking command: the keys it waits on (empty for others).
    pub keys: Vec<Vec<u8>>,
    /// For a blocking command that already found nothing once: its deadline and timeout reply.
    pub blocked: Option<BlockState>,
    /// How long the leader may wait for a blocking command before answering `Blocked`.
    pub wait_ms: u64,
}

/// What a blocking command keeps across its tries.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockState {
    /// Unix ms (leader's clock) after which it replies as timed out; None waits for ever.
    pub deadline_ms: Option<u64>,
    /// Its timeout reply is a null bulk string (BLMOVE) rather than a null array (BLPOP).
    pub null_bulk: bool,
}

#[derive(Serialize, Deserialize)]
pub enum RpcReply {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    Execute(Executed),
}

/// The answer to a forwarded command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Executed {
    /// Applied (or answered from an earlier apply of the same request id): the client's reply.
    Reply(Vec<u8>),
    /// A blocking command still found nothing: send it again as `retry`.
    Blocked { retry: Argv, state: BlockState },
    /// Not the leader: the leader's mesh address, if known.
    Redirect(Option<String>),
    /// No leader can commit now (no majority): why.
    Unavailable(String),
}

/// Frames larger than this are refused (snapshots travel in chunks well below it).
const MAX_FRAME: usize = wire::MAX_FRAME;

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_varint_encoding().with_limit(MAX_FRAME as u64)
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

pub async fn send<T: Serialize>(link: &mut StrongLink, msg: &T) -> std::io::Result<()> {
    let body = options().serialize(msg).map_err(invalid)?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    link.wr.write_all(&frame).await
}

/// The next frame, decoded; None when the other side closed.
pub async fn recv<T: for<'de> Deserialize<'de>>(link: &mut StrongLink) -> std::io::Result<Option<T>> {
    loop {
        if let Some(body) = wire::take_frame(&mut link.buf, MAX_FRAME).map_err(invalid)? {
            return options().deserialize(&body).map(Some).map_err(invalid);
        }
        if link.buf.capacity() - link.buf.len() < 16 * 1024 {
            link.buf.reserve(64 * 1024);
        }
        if link.rd.read_buf(&mut link.buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// One call and its answer, within `timeout`.
pub async fn call(link: &mut StrongLink, rpc: &Rpc, timeout: Duration) -> std::io::Result<RpcReply> {
    let exchange = async {
        send(link, rpc).await?;
        recv::<RpcReply>(link).await?.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the voter closed the connection")
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"))?
}

/// Opens a link to a mesh address given as `HOST:PORT` (a name is resolved each time).
pub async fn connect(mesh: &Mesh, addr: &str) -> std::io::Result<StrongLink> {
    let sockaddr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(_) => tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("{addr} resolves to nothing"))
        })?,
    };
    open_strong_link(mesh, sockaddr).await
}

// ---------------------------------------------------------------------- openraft's network

/// Makes a [`Peer`] per voter that openraft replicates to or asks for votes.
pub struct Network {
    pub mesh: Arc<Mesh>,
}

/// openraft's view of one other voter: a link, opened when first needed and again after an
/// error.
pub struct Peer {
    mesh: Arc<Mesh>,
    target: NodeId,
    addr: String,
    /// Taken out for a call and put back after it (a Mutex only to make `Peer` `Sync`).
    link: parking_lot::Mutex<Option<StrongLink>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer { mesh: self.mesh.clone(), target, addr: node.addr.clone(), link: parking_lot::Mutex::new(None) }
    }
}

impl Peer {
    async fn call(&mut self, rpc: Rpc, timeout: Duration) -> std::io::Result<RpcReply> {
        let taken = self.link.lock().take();
        let mut link = match taken {
            Some(l) => l,
            None => tokio::time::timeout(timeout, connect(&self.mesh, &self.addr))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connecting timed out"))??,
        };
        let result = call(&mut link, &rpc, timeout).await;
        // After an error the link may hold half an answer: it is dropped, the next call opens
        // another.
        if result.is_ok() {
            *self.link.lock() = Some(link);
        }
        result
    }

    fn unreachable<E: std::error::Error + 'static>(&self, e: &E) -> Unreachable {
        debug!(voter = %self.addr, error = %e, "strong keys: voter unreachable");
        Unreachable::new(e)
    }
}

fn unexpected() -> std::io::Error {
    invalid("the voter answered another call")
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.call(Rpc::AppendEntries(rpc), option.hard_ttl()).await {
            Ok(RpcReply::AppendEntries(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(RPCError::Network(NetworkError::new(&unexpected()))),
            Err(e) => Err(RPCError::Unreachable(self.unreachable(&e))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self.call(Rpc::InstallSnapshot(rpc), option.hard_ttl()).await {
            Ok(RpcReply::InstallSnapshot(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(RPCError::Network(NetworkError::new(&unexpected()))),
            Err(e) => Err(RPCError::Unreachable(self.unreachable(&e))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.call(Rpc::Vote(rpc), option.hard_ttl()).await {
            Ok(RpcReply::Vote(r)) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            Ok(_) => Err(RPCError::Network(NetworkError::new(&unexpected()))),
            Err(e) => Err(RPCError::Unreachable(self.unreachable(&e))),
        }
    }
}

/// Keeps an unused buffer small (a link that carried a snapshot chunk gives the memory back).
pub fn shrink(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > 1 << 20 {
        *buf = BytesMut::new();
    }
}
