//! What goes into the strong keys' Raft log, and what applying it gives back.
//!
//! A log entry is a client's *command*, not its effects: every voter runs it through the same
//! command implementations against its own copy of the strong keyspace. What makes that give
//! the same state everywhere is that everything a command reads besides the keyspace comes from
//! the entry: the time (`now_ms`, the leader's clock when it proposed), the database, and the
//! random seed (the entry's log index).

use serde::{Deserialize, Serialize};

/// Identifies a client request across retries: a forwarded request that is retried (on a new
/// leader, after a lost reply) carries the same id, and a state machine that already applied it
/// answers with the reply it gave then instead of running it again.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId {
    /// Chosen at random by the replica that forwards (once per process).
    pub session: u64,
    /// Counts that replica's requests.
    pub seq: u64,
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}/{}", self.session, self.seq)
    }
}

/// One command line: the command's name and arguments.
pub type Argv = Vec<Vec<u8>>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// A single command (for a blocking command: one attempt that does not wait).
    Command(Argv),
    /// The commands of a `MULTI` … `EXEC`, run as one `EXEC`.
    Transaction(Vec<Argv>),
}

impl Body {
    pub fn describe(&self) -> String {
        let name = |argv: &Argv| {
            String::from_utf8_lossy(argv.first().map(|a| &a[..]).unwrap_or(b"?")).to_lowercase()
        };
        match self {
            Body::Command(argv) => name(argv),
            Body::Transaction(cmds) => {
                format!("exec({})", cmds.iter().map(name).collect::<Vec<_>>().join(","))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: RequestId,
    pub db: u8,
    /// The reply is encoded in RESP3 (the client sent `HELLO 3`), else RESP2.
    pub resp3: bool,
    /// The leader's clock when it proposed the entry (Unix ms): the command's `now`.
    pub now_ms: u64,
    pub body: Body,
}

/// What applying an entry gave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// The reply to send to the client, encoded in its protocol.
    Reply(Vec<u8>),
    /// A blocking command found nothing and changed nothing: the leader waits until one of its
    /// keys is written, then proposes `retry` (the command as it should run again: `XREAD … $`
    /// becomes the id it meant).
    /// `deadline_ms` is when its timeout passes (the entry's time plus the timeout it asked
    /// for; None: it waits for ever); `null_bulk` says what it then answers.
    WouldBlock { retry: Argv, keys: Vec<Vec<u8>>, deadline_ms: Option<u64>, null_bulk: bool },
    /// A Raft entry of its own (blank or membership): nobody waits for a reply.
    Internal,
}
