//! A plaintext mesh connection opened from outside a replica: it proves membership and
//! exchanges `Hello`s as a replica does, then sends and receives whatever its user wants.
//!
//! The tests use it to play a member that misbehaves (a forged `Hello`, writes under another
//! replica's id, duplicates), and so does the fault suite's lying member
//! (`examples/lying_member.rs`); it is also a small, readable reference of the handshake.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{ReadHalf, WriteHalf};

use super::membership::{MembershipKey, Side};
use super::peer::{self, Handshake, Io};
use super::wire::{self, Hello, Message};
use super::Traffic;
use crate::crdt::{ReplicaId, VersionVector};

pub struct MeshClient {
    rd: ReadHalf<Box<dyn Io>>,
    wr: WriteHalf<Box<dyn Io>>,
    buf: BytesMut,
    traffic: Traffic,
}

impl MeshClient {
    /// Connects and proves membership of `database` (with the mesh secret, if any). Fails with
    /// the other side's reason if it refuses.
    pub async fn connect(
        addr: SocketAddr,
        database: &str,
        secret: Option<&str>,
    ) -> std::io::Result<MeshClient> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let io: Box<dyn Io> = Box::new(stream);
        let (rd, wr) = tokio::io::split(io);
        let mut client = MeshClient { rd, wr, buf: BytesMut::new(), traffic: Traffic::default() };
        let key = MembershipKey::new(database, secret);
        peer::prove_membership(
            &mut client.rd,
            &mut client.wr,
            &mut client.buf,
            &client.traffic,
            &key,
            Side::Dialer,
        )
        .await
        .map_err(|h| match h {
            Handshake::Refused { reason, .. } | Handshake::RefusedBy(reason) | Handshake::Failed(reason) => {
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, reason)
            }
        })?;
        Ok(client)
    }

    /// The other side's `Hello` (a replica sends it right after the membership proof, without
    /// waiting for ours).
    pub async fn their_hello(&mut self) -> std::io::Result<Hello> {
        match self.recv(Duration::from_secs(5)).await? {
            Some(Message::Hello(h)) => Ok(h),
            Some(Message::Refused(why)) => {
                Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, why))
            }
            Some(_) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "expected a Hello")),
            None => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before its Hello")),
        }
    }

    /// Sends a `Hello` as member `replica` claiming to hold `vv`.
    pub async fn send_hello(
        &mut self,
        database: &str,
        replica: ReplicaId,
        vv: VersionVector,
    ) -> std::io::Result<()> {
        let hello = Hello {
            magic: wire::MAGIC.into(),
            protocol: wire::PROTOCOL_VERSION,
            database: database.into(),
            replica,
            listen_port: 0,
            advertise: None,
            vv,
        };
        self.send(&Message::Hello(hello)).await
    }

    pub async fn send(&mut self, msg: &Message) -> std::io::Result<()> {
        peer::send(&mut self.wr, msg, &self.traffic).await
    }

    /// The next message; None when the connection closed, an error when nothing came in time.
    pub async fn recv(&mut self, timeout: Duration) -> std::io::Result<Option<Message>> {
        peer::read_message(&mut self.rd, &mut self.buf, &self.traffic, Some(timeout), wire::MAX_FRAME).await
    }
}
